/* SPDX-License-Identifier: MIT */
/*
 * test_sync.c - SHN_NOTIFY_SYNC (DESIGN rule 7, the seed's NOTIFY_SYNC):
 * returns once every matching sink consumed the batch, pull ports and
 * advise sinks alike; a sink returning SHN_CALLBACK_DISCONTINUE stops the
 * rest and the call returns SHN_NOTIFY_CANCELED; no matching subscription:
 * 0 at once.
 */
#define _GNU_SOURCE
#include "harness.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>

struct sink {
	_Atomic int calls;
	unsigned ret;
	char last[16];
};

static unsigned sink_fn(void *ctx, const shn_notification *b, size_t n)
{
	struct sink *s = ctx;

	if (n > 0 && b[n - 1].data_len < sizeof(s->last)) {
		if (b[n - 1].data_len > 0)
			memcpy(s->last, b[n - 1].data, b[n - 1].data_len);
		s->last[b[n - 1].data_len] = '\0';
	}
	atomic_fetch_add(&s->calls, 1);
	return s->ret;
}

struct dispatcher {
	shn_port *p;
	_Atomic bool stop;
	bool running;
	pthread_t t;
};

/* Static, so that a failed test's threads never point into a dead frame;
 * the teardown stops whatever is still running. */
static struct dispatcher disp[2];
static struct sink sinks[2];

static void *dispatch_main(void *arg)
{
	struct dispatcher *d = arg;

	while (!atomic_load(&d->stop)) {
		int r = shn_port_dispatch(d->p, 50);
		if (r < 0 && r != -ETIMEDOUT && r != -ECANCELED)
			break;
	}
	return NULL;
}

static void start_dispatcher(struct dispatcher *d, shn_port *p)
{
	d->p = p;
	atomic_store(&d->stop, false);
	assert_int_equal(pthread_create(&d->t, NULL, dispatch_main, d), 0);
	d->running = true;
}

static void stop_dispatcher(struct dispatcher *d)
{
	if (!d->running)
		return;
	atomic_store(&d->stop, true);
	shn_port_unblock(d->p);
	pthread_join(d->t, NULL);
	d->running = false;
}

static int teardown(void **state)
{
	stop_dispatcher(&disp[0]);
	stop_dispatcher(&disp[1]);
	return h_teardown(state);
}

static shn_notification note(const char *key, const char *data)
{
	shn_notification n;

	memset(&n, 0, sizeof(n));
	n.event = 1;
	n.key = key;
	n.key_len = (uint16_t)strlen(key);
	n.data = data;
	n.data_len = (uint32_t)strlen(data);
	return n;
}

/* A pull port has consumed the batch when shn_port_get returned it: until
 * somebody reads, the synchronous publisher waits. */
struct sync_pub {
	shn_client *c;
	shn_notification n;
	_Atomic bool returned;
	_Atomic int result;
};

static void *sync_pub_main(void *arg)
{
	struct sync_pub *x = arg;

	atomic_store(&x->result, shn_notify(x->c, &x->n, 1, SHN_NOTIFY_SYNC));
	atomic_store(&x->returned, true);
	return NULL;
}

static bool returned(void *arg)
{
	return atomic_load(&((struct sync_pub *)arg)->returned);
}

/* shn_notify(SYNC) of one notification, bounded: fails the test if it does
 * not return within H_TIMEOUT_MS. */
static int sync_notify(shn_client *c, shn_notification n)
{
	static struct sync_pub x;   /* outlives a failed test's thread */
	pthread_t t;

	x.c = c;
	x.n = n;
	atomic_store(&x.returned, false);
	assert_int_equal(pthread_create(&t, NULL, sync_pub_main, &x), 0);
	if (!h_poll_until(returned, &x, H_TIMEOUT_MS))
		fail_msg("shn_notify(SYNC) did not return within %d ms", H_TIMEOUT_MS);
	pthread_join(t, NULL);
	return atomic_load(&x.result);
}

static void test_sync_no_subscriber(void **state)
{
	struct harness *h = *state;
	shn_client *c = h_connect(h);
	shn_notification n = note("nobody", "x");

	assert_int_equal(sync_notify(c, n), 0);
	h_disconnect(c);
}

/* When shn_notify(SYNC) returns, the sink has run. */
static void test_sync_sink_consumed(void **state)
{
	struct harness *h = *state;
	struct sink *s = &sinks[0];
	struct dispatcher *d = &disp[0];
	shn_port *p = NULL;
	shn_conn conn;

	shn_client *sub = h_connect(h);
	shn_client *pub = h_connect(h);
	assert_int_equal(shn_port_open(sub, NULL, &p), 0);
	*s = (struct sink){ .ret = SHN_CALLBACK_CONTINUE };
	assert_int_equal(shn_advise(p, "s", 1, SHN_EV_ALL, 0, sink_fn, s, &conn), 0);
	start_dispatcher(d, p);
	for (int i = 1; i <= 20; i++) {
		char data[8];
		snprintf(data, sizeof(data), "%d", i);
		shn_notification n = note("s", data);
		int r = sync_notify(pub, n);
		if (r != 0)
			fail_msg("shn_notify(SYNC): %d (%s)", r, shn_strerror(r));
		assert_int_equal(atomic_load(&s->calls), i);
		assert_string_equal(s->last, data);
	}
	stop_dispatcher(d);
	h_disconnect(pub);
	h_disconnect(sub);
}

/* The first sink (oldest subscription) says DISCONTINUE: the second is not
 * served, and the publisher learns it. */
static void test_sync_discontinue(void **state)
{
	struct harness *h = *state;
	struct sink *a = &sinks[0], *b = &sinks[1];
	struct dispatcher *da = &disp[0], *db = &disp[1];
	shn_port *pa = NULL, *pb = NULL;
	shn_conn ca, cb;

	shn_client *sa = h_connect(h);
	shn_client *sb = h_connect(h);
	shn_client *pub = h_connect(h);
	assert_int_equal(shn_port_open(sa, NULL, &pa), 0);
	assert_int_equal(shn_port_open(sb, NULL, &pb), 0);
	*a = (struct sink){ .ret = SHN_CALLBACK_DISCONTINUE };
	*b = (struct sink){ .ret = SHN_CALLBACK_CONTINUE };
	assert_int_equal(shn_advise(pa, "d", 1, SHN_EV_ALL, 0, sink_fn, a, &ca), 0);
	assert_int_equal(shn_advise(pb, "d", 1, SHN_EV_ALL, 0, sink_fn, b, &cb), 0);
	start_dispatcher(da, pa);
	start_dispatcher(db, pb);

	shn_notification n = note("d", "stop");
	int r = sync_notify(pub, n);
	if (r != SHN_NOTIFY_CANCELED)
		fail_msg("shn_notify(SYNC) with a discontinuing sink: %d (%s), expected "
			 "SHN_NOTIFY_CANCELED", r, shn_strerror(r));
	assert_int_equal(atomic_load(&a->calls), 1);
	/* b never gets it: a later asynchronous batch is the first it sees */
	shn_notification m = note("d", "later");
	assert_int_equal(shn_notify(pub, &m, 1, 0), 0);
	int64_t end = h_now_ms() + H_TIMEOUT_MS;
	while (atomic_load(&b->calls) == 0 && h_now_ms() < end) {
		struct timespec ts = { 0, 2000000 };
		nanosleep(&ts, NULL);
	}
	assert_int_equal(atomic_load(&b->calls), 1);
	assert_string_equal(b->last, "later");
	stop_dispatcher(da);
	stop_dispatcher(db);
	h_disconnect(pub);
	h_disconnect(sa);
	h_disconnect(sb);
}

static void test_sync_pull_port(void **state)
{
	struct harness *h = *state;
	static struct sync_pub x;   /* the thread may outlive a failed test */
	shn_notification out[4];
	shn_conn conn;
	pthread_t t;

	shn_client *sub = h_connect(h);
	shn_port *p = h_port_sub(sub, 0, "pull", 4, SHN_EV_ALL, &conn);
	x.c = h_connect(h);
	x.n = note("pull", "sync");
	atomic_store(&x.returned, false);
	atomic_store(&x.result, 12345);
	assert_int_equal(pthread_create(&t, NULL, sync_pub_main, &x), 0);
	/* nobody read it yet: the publisher is still waiting (this cannot
	 * pass by luck when the wait is missing: it would have returned) */
	assert_false(h_poll_until(returned, &x, 300));
	assert_int_equal(h_get(p, out, 4), 1);
	assert_memory_equal(out[0].data, "sync", 4);
	if (!h_poll_until(returned, &x, H_TIMEOUT_MS))
		fail_msg("shn_notify(SYNC) still waiting after the batch was read");
	pthread_join(t, NULL);
	assert_int_equal(atomic_load(&x.result), 0);
	h_disconnect(x.c);
	h_disconnect(sub);
}

int main(int argc, char **argv)
{
	h_parse_args(argc, argv);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_sync_no_subscriber, h_setup, teardown),
		cmocka_unit_test_setup_teardown(test_sync_sink_consumed, h_setup, teardown),
		cmocka_unit_test_setup_teardown(test_sync_discontinue, h_setup, teardown),
		cmocka_unit_test_setup_teardown(test_sync_pull_port, h_setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
