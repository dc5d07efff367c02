/* SPDX-License-Identifier: MIT */
/*
 * test_try_get.c - shn_port_try_get, the get of a reader that spins: it
 * returns what is there, -EAGAIN when nothing is, and leaves an empty port
 * unarmed, so that the notifications that follow cost their writer (the
 * broker, or the publisher on the direct path) no wake-up: the port's
 * descriptor stays unreadable (but for the library's own wake-up when a
 * direct ring arrives).  A get with a timeout of 0 arms the port
 * again, as documented, and the descriptor then wakes a poll.
 *
 * And the wake-up of a get that blocks: it is drained by the next get,
 * not before the notes it woke the get for are returned (one system call
 * off each blocking delivery, docs/ring.md), so a get woken for nothing
 * must drain it before it sleeps again, or it would poll a readable
 * descriptor until its timeout.
 *
 * shn_port_fd() asked for only after the port was armed and written is
 * readable at once (test_fd_asked_late: the library adds the eventfd to the
 * descriptor's epoll at the first call, not at open).
 *
 * A reader that sleeps is rung once per delivery, also by a direct
 * publisher that rings it before it writes the batch
 * (test_one_wakeup_per_delivery), and a blocking ping-pong between two
 * processes never loses a wake-up (test_pingpong_wakeups, 3000 rounds).
 *
 * Each test starts its own broker (harness.h); run with --io epoll|uring.
 */
#define _GNU_SOURCE
#include "harness.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* One note to "spin": 0 or shn_notify's error (callable from any thread). */
static int notify_one(shn_client *pub, const char *data)
{
	shn_notification n;

	memset(&n, 0, sizeof(n));
	n.key = "spin";
	n.key_len = 4;
	n.event = 1;
	n.data = data;
	n.data_len = (uint32_t)strlen(data);
	return (shn_notify(pub, &n, 1, 0));
}

static void publish_one(shn_client *pub, const char *data)
{
	assert_int_equal(notify_one(pub, data), 0);
}

/* Spin until something is there; a bounded spin, failing after 10 s. */
static int spin_get(shn_port *p, shn_notification *out, size_t max)
{
	int64_t end = h_now_ms() + 10000;
	int n;

	while ((n = shn_port_try_get(p, out, max)) == -EAGAIN)
		if (h_now_ms() > end)
			fail_msg("shn_port_try_get: nothing within 10 s");
	return (n);
}

static void test_spin_arms_nothing(void **state)
{
	struct harness *h = *state;
	shn_notification out[8];
	shn_conn conn;
	char want[16];

	shn_client *sub = h_connect(h);
	shn_client *pub = h_connect(h);
	shn_port *p = h_port_sub(sub, 0, "spin", 4, SHN_EV_ALL, &conn);
	int fd = shn_port_fd(p);

	assert_true(fd >= 0);
	assert_int_equal(shn_port_try_get(p, out, 8), -EAGAIN);
	/* the first batch of the pair goes through the broker, the rest
	 * directly (when on): both writers see an unarmed port.  The library
	 * itself may wake the port once when a direct ring arrives (its
	 * DIRECT_OPEN: the reader must adopt it, and the next get drains that
	 * wake-up); a wake-up per notification would leave the descriptor
	 * readable round after round. */
	int woken = 0;

	for (int round = 0; round < 20; round++) {
		snprintf(want, sizeof(want), "r%d", round);
		publish_one(pub, want);
		assert_int_equal(spin_get(p, out, 8), 1);
		assert_int_equal(out[0].key_len, 4);
		assert_memory_equal(out[0].key, "spin", 4);
		assert_int_equal(out[0].data_len, strlen(want));
		assert_memory_equal(out[0].data, want, strlen(want));
		assert_int_equal(out[0].seq, (uint64_t)round + 1);
		assert_int_equal(out[0].conn, conn);
		assert_int_equal(shn_port_try_get(p, out, 8), -EAGAIN);
		woken += h_fd_readable(fd, 0);
	}
	if (woken > 2)
		fail_msg("the port's descriptor was readable after %d of 20 notifications: their "
			 "writers paid a wake-up", woken);

	/* back to waiting, the documented way: a get with timeout 0 arms */
	assert_int_equal(shn_port_get(p, out, 8, 0), -ETIMEDOUT);
	publish_one(pub, "armed");
	assert_true(h_fd_readable(fd, H_TIMEOUT_MS));
	assert_int_equal(shn_port_get(p, out, 8, 0), 1);
	assert_memory_equal(out[0].data, "armed", 5);
	assert_int_equal(out[0].seq, 21);

	/* a batch larger than max comes in pieces, as with shn_port_get */
	shn_notification b[5];
	for (int i = 0; i < 5; i++) {
		memset(&b[i], 0, sizeof(b[i]));
		b[i].key = "spin";
		b[i].key_len = 4;
		b[i].event = 1;
	}
	assert_int_equal(shn_notify(pub, b, 5, 0), 0);
	assert_int_equal(spin_get(p, out, 3), 3);
	assert_int_equal(out[2].batch_index, 2);
	assert_int_equal(shn_port_try_get(p, out, 8), 2);
	assert_int_equal(out[1].batch_index, 4);
	assert_int_equal(out[1].batch_count, 5);

	/* unblock reaches a try_get too */
	assert_int_equal(shn_port_unblock(p), 0);
	assert_int_equal(shn_port_try_get(p, out, 8), -ECANCELED);
	assert_int_equal(shn_port_try_get(p, out, 8), -EAGAIN);

	assert_int_equal(shn_port_try_get(NULL, out, 8), -EINVAL);
	assert_int_equal(shn_port_try_get(p, NULL, 8), -EINVAL);
	assert_int_equal(shn_port_try_get(p, out, 0), -EINVAL);
	h_disconnect(pub);
	h_disconnect(sub);
}

/* The port's eventfd: shn_port_fd() is an epoll descriptor holding it, and
 * the kernel lists what an epoll descriptor watches in its fdinfo. */
static int port_eventfd(int epfd)
{
	char path[64], line[256];
	int fd = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", epfd);
	f = fopen(path, "r");
	assert_non_null(f);
	while (fd < 0 && fgets(line, sizeof(line), f) != NULL)
		if (sscanf(line, "tfd: %d", &fd) != 1)
			fd = -1;
	fclose(f);
	assert_true(fd >= 0);
	return (fd);
}

static void *ring_later(void *arg)
{
	uint64_t one = 1;

	usleep(50 * 1000);
	if (write(*(int *)arg, &one, sizeof(one)) != sizeof(one))
		abort();
	return (NULL);
}

struct later_note {
	shn_client *pub;
	char data[16];
};

/* 100 ms later (the get is asleep by then): one note */
static void *publish_later(void *arg)
{
	struct later_note *ln = arg;

	usleep(100 * 1000);
	if (notify_one(ln->pub, ln->data) != 0)
		abort();
	return (NULL);
}

/* A client whose batches take the broker path (SHMNOTIFY_DIRECT=off for
 * its connect only), whose wake-up always follows its record.  A direct
 * publisher's first notes may wake the port before its reader has the ring
 * (the ring's offer reaches the subscriber's library on its own): that get
 * finds nothing, drains the wake-up, then takes the ring and returns the
 * note with the descriptor rightly not readable -- which
 * test_blocking_wakeup would take for an early drain. */
static shn_client *connect_brokered(const struct harness *h)
{
	char *saved = h_env_set("SHMNOTIFY_DIRECT", "off");
	shn_client *c = h_connect(h);

	h_env_restore("SHMNOTIFY_DIRECT", saved);
	return (c);
}

static void test_blocking_wakeup(void **state)
{
	struct harness *h = *state;
	shn_notification out[8];
	shn_conn conn;
	pthread_t t;

	shn_client *sub = h_connect(h);
	shn_client *pub = connect_brokered(h);
	shn_port *p = h_port_sub(sub, 0, "spin", 4, SHN_EV_ALL, &conn);
	int fd = shn_port_fd(p), efd = port_eventfd(fd);

	/* a wake-up with nothing behind it, 50 ms into a get of 400 ms: the
	 * get drains it and sleeps on, rather than poll a readable eventfd
	 * (a spin: about 350 ms of this thread's CPU) */
	int64_t t0 = h_now_ms(), c0 = h_thread_cpu_ms();

	assert_int_equal(pthread_create(&t, NULL, ring_later, &efd), 0);
	assert_int_equal(shn_port_get(p, out, 8, 400), -ETIMEDOUT);
	assert_int_equal(pthread_join(t, NULL), 0);
	assert_true(h_now_ms() - t0 >= 390);
	if (h_thread_cpu_ms() - c0 > 150)
		fail_msg("a get woken for nothing used %lld ms of CPU in 400: it spun on the "
			 "wake-up instead of draining it", (long long)(h_thread_cpu_ms() - c0));
	assert_false(h_fd_readable(fd, 0));

	/* a get that slept and got what woke it: the descriptor stays
	 * readable until the next get drains that wake-up */
	for (int round = 0; round < 3; round++) {
		struct later_note ln = { .pub = pub };

		snprintf(ln.data, sizeof(ln.data), "b%d", round);
		assert_int_equal(pthread_create(&t, NULL, publish_later, &ln), 0);
		assert_int_equal(shn_port_get(p, out, 8, H_TIMEOUT_MS), 1);
		assert_int_equal(pthread_join(t, NULL), 0);
		assert_int_equal(out[0].data_len, strlen(ln.data));
		assert_memory_equal(out[0].data, ln.data, strlen(ln.data));
		assert_int_equal(out[0].seq, (uint64_t)round + 1);
		assert_true(h_fd_readable(fd, 0));
		assert_int_equal(shn_port_try_get(p, out, 8), -EAGAIN);
		assert_false(h_fd_readable(fd, 0));   /* drained, and nothing armed */
	}
	h_disconnect(pub);
	h_disconnect(sub);
}

/* One wake-up per delivery when the reader sleeps: a direct publisher
 * rings a sleeping reader before it writes a batch for one port (the
 * reader's wake-up and the writing overlap, docs/direct-path.md) and looks
 * at the sleep word again once the batch is in: the same sleep must not be
 * rung twice.  The eventfd's counter holds the number of writes. */
static void test_one_wakeup_per_delivery(void **state)
{
	struct harness *h = *state;
	shn_notification out[8];
	shn_conn conn;
	char want[16];
	uint64_t v;

	shn_client *sub = h_connect(h);
	shn_client *pub = h_connect(h);
	shn_port *p = h_port_sub(sub, 0, "spin", 4, SHN_EV_ALL, &conn);
	int efd = port_eventfd(shn_port_fd(p));

	/* the pair's first batch goes through the broker while the ring is
	 * offered; then directly (when on) */
	for (int round = 0; round < 10; round++) {
		publish_one(pub, "warm");
		assert_int_equal(spin_get(p, out, 8), 1);
	}
	for (int round = 0; round < 50; round++) {
		assert_int_equal(shn_port_try_get(p, out, 8), -EAGAIN);
		if (read(efd, &v, sizeof(v)) < 0) {
			/* EAGAIN: nothing left over */
		}
		/* a get of 0 ms arms the sleep word: the reader "sleeps" */
		assert_int_equal(shn_port_get(p, out, 8, 0), -ETIMEDOUT);
		snprintf(want, sizeof(want), "w%d", round);
		publish_one(pub, want);
		/* a direct publisher wrote it before shn_notify returned; the
		 * broker writes it once it routed the batch */
		assert_true(h_fd_readable(efd, H_TIMEOUT_MS));
		v = 0;
		assert_int_equal(read(efd, &v, sizeof(v)), (ssize_t)sizeof(v));
		if (v != 1)
			fail_msg("round %d: one note to a sleeping reader wrote its eventfd %llu "
				 "times", round, (unsigned long long)v);
		assert_int_equal(shn_port_get(p, out, 8, 0), 1);
		assert_int_equal(out[0].data_len, strlen(want));
		assert_memory_equal(out[0].data, want, strlen(want));
		assert_int_equal(out[0].seq, (uint64_t)round + 11);
	}
	h_disconnect(pub);
	h_disconnect(sub);
}

/* The port's eventfd joins shn_port_fd()'s epoll at the first call, not at
 * open (an epoll on it costs every wake-up, docs/performance.md): a
 * descriptor asked for only after the port was armed and written is
 * readable at once, holds the port's eventfd, and is the same on every
 * call. */
static void test_fd_asked_late(void **state)
{
	struct harness *h = *state;
	shn_notification out[8];
	shn_conn conn;

	shn_client *sub = h_connect(h);
	/* brokered: no ring offer wakes the port behind the test's back (see
	 * connect_brokered); the broker writes the eventfd after the record */
	shn_client *pub = connect_brokered(h);
	shn_port *p = h_port_sub(sub, 0, "spin", 4, SHN_EV_ALL, &conn);

	for (int round = 0; round < 10; round++) {
		publish_one(pub, "warm");
		assert_int_equal(spin_get(p, out, 8), 1);
	}
	assert_int_equal(shn_port_get(p, out, 8, 0), -ETIMEDOUT);   /* armed */
	publish_one(pub, "late");
	h_sleep_ms(50);   /* routed and rung by now, but under valgrind */

	int fd = shn_port_fd(p);

	assert_true(fd >= 0);
	assert_true(port_eventfd(fd) >= 0);
	assert_true(h_fd_readable(fd, H_TIMEOUT_MS));
	assert_int_equal(shn_port_fd(p), fd);
	assert_int_equal(shn_port_get(p, out, 8, 0), 1);
	assert_int_equal(out[0].data_len, 4);
	assert_memory_equal(out[0].data, "late", 4);
	assert_int_equal(out[0].seq, 11);
	assert_int_equal(shn_port_try_get(p, out, 8), -EAGAIN);
	assert_false(h_fd_readable(fd, 0));   /* drained, and nothing armed */

	/* armed again: the next note makes it readable, as it always did */
	assert_int_equal(shn_port_get(p, out, 8, 0), -ETIMEDOUT);
	publish_one(pub, "next");
	assert_true(h_fd_readable(fd, H_TIMEOUT_MS));
	assert_int_equal(shn_port_get(p, out, 8, 0), 1);
	assert_memory_equal(out[0].data, "next", 4);
	assert_int_equal(shn_port_fd(p), fd);
	h_disconnect(pub);
	h_disconnect(sub);
}

#define PP_ROUNDS 3000

struct pingpong {
	const struct harness *h;
	struct h_chan ready;
};

/* The echo: every "ping" note back as a "pong" note with its data. */
static int ponger(void *arg)
{
	struct pingpong *pp = arg;
	shn_notification in[8], out;
	shn_client *c;
	shn_port *p;
	shn_conn conn;

	CHILD_CHECK_EQ(shn_connect(pp->h->sock, &c), 0);
	CHILD_CHECK_EQ(shn_port_open(c, NULL, &p), 0);
	CHILD_CHECK_EQ(shn_subscribe(p, "ping", 4, SHN_EV_ALL, 0, &conn), 0);
	h_send(&pp->ready, 1);
	for (int i = 0; i < PP_ROUNDS; i++) {
		int n = shn_port_get(p, in, 8, 3000);

		if (n != 1) {
			fprintf(stderr, "ponger: round %d: shn_port_get %d (a lost wake-up "
				"times out)\n", i, n);
			return (1);
		}
		out = in[0];
		out.key = "pong";
		CHILD_CHECK_EQ(shn_notify(c, &out, 1, 0), 0);
	}
	shn_disconnect(c);
	return (0);
}

/* Blocking ping-pong between two processes, each get asleep when the other
 * side's note comes: the wake-up rung before the record is written, the
 * reader woken before the record is in (it finds nothing, sleeps again and
 * is rung again) -- every round must still end well before its timeout. */
static void test_pingpong_wakeups(void **state)
{
	struct harness *h = *state;
	struct pingpong pp = { .h = h };
	shn_notification in[8], n;
	shn_conn conn;
	uint8_t b;
	char data[16];

	h_chan_init(&pp.ready);
	shn_client *c = h_connect(h);
	shn_port *p = h_port_sub(c, 0, "pong", 4, SHN_EV_ALL, &conn);
	pid_t child = h_fork(ponger, &pp);

	assert_int_equal(h_recv(&pp.ready, &b, H_TIMEOUT_MS), 1);
	memset(&n, 0, sizeof(n));
	n.key = "ping";
	n.key_len = 4;
	n.event = 1;
	n.data = data;
	for (int i = 0; i < PP_ROUNDS; i++) {
		n.data_len = (uint32_t)snprintf(data, sizeof(data), "%d", i);
		assert_int_equal(shn_notify(c, &n, 1, 0), 0);
		int got = shn_port_get(p, in, 8, 3000);

		if (got != 1)
			fail_msg("round %d: shn_port_get %d (a lost wake-up times out)", i, got);
		assert_int_equal(in[0].data_len, n.data_len);
		assert_memory_equal(in[0].data, data, n.data_len);
		assert_int_equal(in[0].seq, (uint64_t)i + 1);
	}
	h_wait_ok(child, H_TIMEOUT_MS);
	h_chan_close(&pp.ready);
	h_disconnect(c);
}

int main(int argc, char **argv)
{
	h_parse_args(argc, argv);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_spin_arms_nothing, h_setup, h_teardown),
		cmocka_unit_test_setup_teardown(test_blocking_wakeup, h_setup, h_teardown),
		cmocka_unit_test_setup_teardown(test_one_wakeup_per_delivery, h_setup, h_teardown),
		cmocka_unit_test_setup_teardown(test_fd_asked_late, h_setup, h_teardown),
		cmocka_unit_test_setup_teardown(test_pingpong_wakeups, h_setup, h_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
