/* SPDX-License-Identifier: MIT */
/*
 * test_alloc.c - the broker running out of memory while routing is
 * reported as what it is.  The broker is started with the test-only fault
 * hook SHMNOTIFYD_TEST_FAIL_ALLOC=match:1 (broker/fault.h): its first
 * attempt to grow the list of matches (a run of notes and a port) fails.
 * The port whose match could not be recorded loses that batch, whole (its
 * repeated notes counted with it), and learns it the
 * way a loss is reported (SHN_EV_OVERFLOW with the exact count, then a seq
 * gap of that size); the other port on the same key, whose allocation
 * succeeded, receives it; the next batch reaches both; the broker counts
 * the failure (alloc_failures) and the loss (notifications_dropped) in its
 * stats and logs "out of memory".  Before the fix the port got a record of
 * zero notes, which its library rightly took for a corrupt ring
 * (-EBADMSG).  A malformed hook value stops the broker at startup.
 */
#define _GNU_SOURCE
#include "harness.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <string.h>
#include <sys/wait.h>

#define FAULT_ENV "SHMNOTIFYD_TEST_FAIL_ALLOC"

static struct harness the_broker;

/* A broker whose first match allocation fails. */
static int setup_fail_match(void **state)
{
	assert_int_equal(setenv(FAULT_ENV, "match:1", 1), 0);
	h_start(&the_broker, NULL);
	unsetenv(FAULT_ENV);
	*state = &the_broker;
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	h_kill_children();
	h_disconnect_all();
	h_stop(&the_broker);
	return 0;
}

struct pub_ctx {
	const char *sock;
	int a;            /* notes in batch A: values 0 .. a - 1; batch B: a, a + 1 */
};

/* Publishes batch A then batch B to key "k" from its own process, and
 * leaves (rule 9: both are routed anyway). */
static int publisher(void *arg)
{
	const struct pub_ctx *x = arg;
	shn_client *c = NULL;
	shn_notification b[4];
	uint32_t v[6] = { 0, 1, 2, 3, 4, 5 };

	CHILD_CHECK_EQ(shn_connect(x->sock, &c), 0);
	for (int batch = 0, first = 0; batch < 2; batch++) {
		int n = batch == 0 ? x->a : 2;

		for (int k = 0; k < n; k++)
			b[k] = (shn_notification){ .event = 1, .key = "k", .key_len = 1,
						   .data = &v[first + k], .data_len = 4 };
		CHILD_CHECK_EQ(shn_notify(c, b, (size_t)n, 0), 0);
		first += n;
	}
	shn_disconnect(c);
	return 0;
}

/* What one port saw: 1 when it lost batch A (an OVERFLOW of exactly a
 * first), 0 when it received it whole; either way then batch B, numbered
 * a + 1 and a + 2. */
static int read_port(shn_port *p, shn_conn conn, int a)
{
	shn_notification out[8];
	uint32_t v;
	int lost, n = shn_port_get(p, out, 8, H_TIMEOUT_MS);

	if (n < 1)
		fail_msg("port of conn %llu: get %d (%s): expected batch A or an overflow report",
			 (unsigned long long)conn, n, shn_strerror(n));
	if (out[0].event == SHN_EV_OVERFLOW) {
		assert_int_equal(n, 1);
		assert_int_equal(out[0].data_len, 8);
		assert_int_equal(h_le64(out[0].data), a);   /* batch A, exactly */
		assert_int_equal(out[0].seq, 0);
		lost = 1;
	} else {
		assert_int_equal(n, a);                   /* batch A whole */
		for (int i = 0; i < a; i++) {
			assert_int_equal(out[i].event, 1);
			assert_int_equal(out[i].conn, conn);
			assert_int_equal(out[i].seq, i + 1);
			assert_int_equal(out[i].batch_count, a);
			memcpy(&v, out[i].data, 4);
			assert_int_equal(v, i);
		}
		lost = 0;
	}
	n = shn_port_get(p, out, 8, H_TIMEOUT_MS);
	assert_int_equal(n, 2);
	for (int i = 0; i < 2; i++) {
		assert_int_equal(out[i].event, 1);
		assert_int_equal(out[i].conn, conn);
		/* numbered after the lost notes: the gap is the count reported */
		assert_int_equal(out[i].seq, a + 1 + i);
		assert_int_equal(out[i].batch_count, 2);
		memcpy(&v, out[i].data, 4);
		assert_int_equal(v, a + i);
	}
	assert_int_equal(shn_port_get(p, out, 8, 0), -ETIMEDOUT);
	return lost;
}

static json_int_t broker_counter(const json_t *doc, const char *name)
{
	const json_t *v = json_object_get(json_object_get(doc, "broker"), name);

	if (!json_is_integer(v))
		fail_msg("stats: broker.%s missing", name);
	return json_integer_value(v);
}

static bool log_has(const struct harness *h, const char *what)
{
	char buf[65536];
	int fd = open(h->log, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	assert_true(fd >= 0);
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	assert_true(n >= 0);
	buf[n] = '\0';
	return strstr(buf, what) != NULL;
}

/* Two ports on key "k"; batch A of a notes, then batch B of 2. */
static void match_alloc_fails(struct harness *h, int a)
{
	shn_client *sub = h_connect(h);
	shn_conn c1, c2;
	shn_port *p1 = h_port_sub(sub, 0, "k", 1, SHN_EV_ALL, &c1);
	shn_port *p2 = h_port_sub(sub, 0, "k", 1, SHN_EV_ALL, &c2);
	struct pub_ctx x = { .sock = h->sock, .a = a };
	json_error_t jerr;
	json_t *doc;
	char *js;

	h_wait_ok(h_fork(publisher, &x), H_CHILD_TIMEOUT_MS);
	/* one port lost batch A (the one allocation that failed), the other
	 * received it: nothing else is lost */
	assert_int_equal(read_port(p1, c1, a) + read_port(p2, c2, a), 1);

	js = h_stats(sub);
	doc = json_loads(js, 0, &jerr);
	if (doc == NULL)
		fail_msg("stats are not JSON (%s): %s", jerr.text, js);
	free(js);
	assert_int_equal(broker_counter(doc, "alloc_failures"), 1);
	assert_int_equal(broker_counter(doc, "notifications_dropped"), a);
	assert_int_equal(broker_counter(doc, "notifications_delivered"), a + 2 + 2);
	assert_int_equal(broker_counter(doc, "ring_errors"), 0);
	assert_int_equal(broker_counter(doc, "disconnects"), 0);
	json_decref(doc);
	assert_true(log_has(h, "out of memory"));
}

/* The failure on the batch's first note of three: before the fix the
 * port got the other two as a batch of two, and no report of the third. */
static void test_match_alloc_fails(void **state)
{
	match_alloc_fails(*state, 3);
}

/* The failure on a batch of one note: before the fix the port got a
 * record of zero notes, which its library reported as -EBADMSG. */
static void test_match_alloc_fails_single(void **state)
{
	match_alloc_fails(*state, 1);
}

/* A value the hook does not understand stops the broker: exit status 1
 * and a message naming the variable. */
static void test_bad_hook_value(void **state)
{
	struct harness h;
	pid_t pid;
	int st;

	(void)state;
	h_prepare(&h);
	assert_int_equal(setenv(FAULT_ENV, "match:0", 1), 0);
	pid = h_spawn_broker(&h, NULL);
	unsetenv(FAULT_ENV);
	assert_true(pid > 0);
	for (int64_t end = h_now_ms() + H_TIMEOUT_MS;;) {
		pid_t r = waitpid(pid, &st, WNOHANG);

		if (r == pid)
			break;
		if (h_now_ms() > end) {
			kill(pid, SIGKILL);
			waitpid(pid, &st, 0);
			fail_msg("the broker started with %s=match:0", FAULT_ENV);
		}
		h_sleep_ms(10);
	}
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 1);
	assert_true(log_has(&h, FAULT_ENV));
	h.broker = -1;
	h_stop(&h);
}

int main(int argc, char **argv)
{
	h_parse_args(argc, argv);
	/* the broker's router running out of memory: its clients take the
	 * broker path (a direct ring would carry the batch past the router) */
	setenv("SHMNOTIFY_DIRECT", "off", 1);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_match_alloc_fails, setup_fail_match, teardown),
		cmocka_unit_test_setup_teardown(test_match_alloc_fails_single, setup_fail_match,
						teardown),
		cmocka_unit_test(test_bad_hook_value),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
