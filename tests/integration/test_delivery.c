/* SPDX-License-Identifier: MIT */
/*
 * test_delivery.c - batches from one process reach subscribers in another:
 * exactly the matching notifications, in published order, as one delivered
 * batch, with the broker's fields set and nothing else (docs/design.md,
 * "Semantics", rules 2, 3, 8, 9, 11, 15).
 *
 * Each test starts its own broker (harness.h); run with --io epoll|uring.
 */
#define _GNU_SOURCE
#include "harness.h"

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <time.h>

static shn_notification note(const void *key, size_t klen, uint32_t ev, const void *data,
			     size_t dlen)
{
	shn_notification n;

	memset(&n, 0, sizeof(n));
	n.key = key;
	n.key_len = (uint16_t)klen;
	n.event = ev;
	n.data = data;
	n.data_len = (uint32_t)dlen;
	return n;
}

#define S(str) (str), (sizeof(str) - 1)

/* Delivered notification n carries exactly this key, event and data. */
static void check_note(const shn_notification *n, const void *key, size_t klen, uint32_t ev,
		       const void *data, size_t dlen)
{
	assert_int_equal(n->event, ev);
	assert_int_equal(n->key_len, klen);
	assert_non_null(n->key);
	assert_memory_equal(n->key, key, klen);
	assert_int_equal(n->data_len, dlen);
	if (dlen == 0)
		assert_null(n->data);      /* unused members are zero */
	else
		assert_memory_equal(n->data, data, dlen);
}

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* ---- 1: one batch, one process to another ------------------------------ */

static uint8_t big[1000];

struct pub_ctx {
	const char *sock;
	struct h_chan go;
	int mode;
};

static int child_batch(void *arg)
{
	struct pub_ctx *x = arg;
	shn_client *c = NULL;

	CHILD_CHECK_EQ(shn_connect(x->sock, &c), 0);
	shn_notification b[8] = {
		note(S("alpha"), 0x1, S("d0")),
		note(S("beta"), 0x1, S("not for you")),
		note(S("alpha"), 0x2, S("d1")),
		note(S("alphaX"), 0x1, S("prefix match is no match")),
		note(S("alpha"), 0x4, NULL, 0),
		note(S("alph"), 0x1, S("shorter key")),
		note(S("alpha"), 0x8000000, big, sizeof(big)),
		note(S("gamma"), 0x2, S("g")),
	};
	/* fields the broker sets are ignored on publish: fill them with junk */
	for (int i = 0; i < 8; i++) {
		b[i].conn = 0xdeadbeef;
		b[i].seq = 77;
		b[i].batch_id = 99;
		b[i].batch_index = 5;
		b[i].batch_count = 6;
		b[i].sender_pid = 1;
		b[i].sender_uid = 12345;
		b[i].time_ns = 42;
	}
	CHILD_CHECK_EQ(shn_notify(c, b, 8, 0), 0);
	shn_notification end = note(S("alpha"), 0x1, S("end"));
	CHILD_CHECK_EQ(shn_notify(c, &end, 1, 0), 0);
	shn_disconnect(c);
	return 0;
}

static void test_one_batch(void **state)
{
	struct harness *h = *state;
	struct pub_ctx x = { .sock = h->sock };
	shn_notification out[64];
	shn_conn conn;

	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = (uint8_t)(i * 7 + 3);
	shn_client *c = h_connect(h);
	shn_port *p = h_port_sub(c, 0, S("alpha"), SHN_EV_ALL, &conn);
	uint64_t t0 = mono_ns();
	pid_t pid = h_fork(child_batch, &x);

	memset(out, 0xa5, sizeof(out)); /* garbage the library must overwrite */
	int n = h_get(p, out, 64);
	assert_int_equal(n, 4);
	check_note(&out[0], S("alpha"), 0x1, S("d0"));
	check_note(&out[1], S("alpha"), 0x2, S("d1"));
	check_note(&out[2], S("alpha"), 0x4, NULL, 0);
	check_note(&out[3], S("alpha"), 0x8000000, big, sizeof(big));
	for (int i = 0; i < n; i++) {
		assert_int_equal(out[i].conn, conn);
		assert_int_equal(out[i].seq, (uint64_t)i + 1);
		assert_int_equal(out[i].batch_id, 1);    /* the child's first batch */
		assert_int_equal(out[i].batch_index, i);
		assert_int_equal(out[i].batch_count, 4);
		assert_int_equal(out[i].sender_pid, pid);
		assert_int_equal(out[i].sender_uid, getuid());
		assert_true(out[i].time_ns >= t0 && out[i].time_ns <= mono_ns());
		assert_int_equal(out[i].time_ns, out[0].time_ns);
	}

	/* the next batch of the same publisher, alone */
	n = h_get(p, out, 64);
	assert_int_equal(n, 1);
	check_note(&out[0], S("alpha"), 0x1, S("end"));
	assert_int_equal(out[0].seq, 5);
	assert_int_equal(out[0].batch_id, 2);
	assert_int_equal(out[0].batch_index, 0);
	assert_int_equal(out[0].batch_count, 1);
	assert_int_equal(out[0].conn, conn);
	assert_int_equal(out[0].sender_pid, pid);
	h_wait_ok(pid, H_CHILD_TIMEOUT_MS);
	/* and nothing else: the other keys never reached this port */
	assert_int_equal(shn_port_get(p, out, 64, 0), -ETIMEDOUT);
	assert_int_equal(shn_port_close(p), 0);
	h_disconnect(c);
}

/* ---- a batch read in pieces; two batches never merge ------------------- */

static int child_two_batches(void *arg)
{
	struct pub_ctx *x = arg;
	shn_client *c = NULL;
	char d[5][8];

	CHILD_CHECK_EQ(shn_connect(x->sock, &c), 0);
	shn_notification a[5], b[2];
	for (int i = 0; i < 5; i++) {
		snprintf(d[i], sizeof(d[i]), "a%d", i);
		a[i] = note(S("pieces"), 1, d[i], strlen(d[i]));
	}
	b[0] = note(S("pieces"), 1, S("b0"));
	b[1] = note(S("pieces"), 1, S("b1"));
	CHILD_CHECK_EQ(shn_notify(c, a, 5, 0), 0);
	CHILD_CHECK_EQ(shn_notify(c, b, 2, 0), 0);
	shn_disconnect(c);
	return 0;
}

static void test_partial_get(void **state)
{
	struct harness *h = *state;
	struct pub_ctx x = { .sock = h->sock };
	shn_notification out[64];
	shn_conn conn;

	shn_client *c = h_connect(h);
	shn_port *p = h_port_sub(c, 0, S("pieces"), SHN_EV_ALL, &conn);
	pid_t pid = h_fork(child_two_batches, &x);
	/* the child is done: both batches are accepted (maybe not routed yet:
	 * only their order matters here) */
	h_wait_ok(pid, H_CHILD_TIMEOUT_MS);

	uint32_t idx = 0;
	for (int round = 0; round < 3; round++) {
		int n = h_get(p, out, 2);
		assert_int_equal(n, round < 2 ? 2 : 1);
		for (int i = 0; i < n; i++, idx++) {
			char want[8];
			snprintf(want, sizeof(want), "a%u", idx);
			check_note(&out[i], S("pieces"), 1, want, strlen(want));
			assert_int_equal(out[i].batch_index, idx);
			assert_int_equal(out[i].batch_count, 5);
			assert_int_equal(out[i].batch_id, 1);
			assert_int_equal(out[i].seq, idx + 1);
		}
	}
	/* the second batch: a get with room for 64 returns its 2, never
	 * anything of another batch */
	int n = h_get(p, out, 64);
	assert_int_equal(n, 2);
	check_note(&out[0], S("pieces"), 1, S("b0"));
	check_note(&out[1], S("pieces"), 1, S("b1"));
	assert_int_equal(out[0].batch_id, 2);
	assert_int_equal(out[1].batch_index, 1);
	assert_int_equal(out[1].batch_count, 2);
	assert_int_equal(out[1].seq, 7);
	assert_int_equal(shn_port_get(p, out, 64, 0), -ETIMEDOUT);
	h_disconnect(c);
}

/* ---- 2: no user event before the first filter (rule 11) ---------------- */

static int child_before_filter(void *arg)
{
	struct pub_ctx *x = arg;
	shn_client *c = NULL;
	uint8_t b;

	CHILD_CHECK_EQ(shn_connect(x->sock, &c), 0);
	shn_notification one = note(S("k"), 1, S("one"));
	CHILD_CHECK_EQ(shn_notify(c, &one, 1, 0), 0);
	CHILD_CHECK(h_recv(&x->go, &b, H_TIMEOUT_MS));
	shn_notification two = note(S("k"), 1, S("two"));
	CHILD_CHECK_EQ(shn_notify(c, &two, 1, 0), 0);
	shn_disconnect(c);
	return 0;
}

static void test_no_event_before_filter(void **state)
{
	struct harness *h = *state;
	struct pub_ctx x = { .sock = h->sock };
	shn_notification out[8];
	shn_conn wconn, aconn = 0;
	shn_port *a = NULL;

	h_chan_init(&x.go);
	shn_client *c = h_connect(h);
	assert_int_equal(shn_port_open(c, NULL, &a), 0);       /* no filter yet */
	shn_port *w = h_port_sub(c, 0, S("k"), SHN_EV_ALL, &wconn); /* witness */
	pid_t pid = h_fork(child_before_filter, &x);

	/* the witness got batch 1: the broker routed it, and not to a */
	assert_int_equal(h_get(w, out, 8), 1);
	check_note(&out[0], S("k"), 1, S("one"));
	assert_int_equal(shn_port_get(a, out, 8, 0), -ETIMEDOUT);
	assert_int_equal(shn_port_get(a, out, 8, 50), -ETIMEDOUT);

	assert_int_equal(shn_subscribe(a, S("k"), SHN_EV_ALL, 0, &aconn), 0);
	assert_true(aconn != 0 && aconn != wconn);
	assert_true(h_send(&x.go, 1));
	assert_int_equal(h_get(a, out, 8), 1);
	check_note(&out[0], S("k"), 1, S("two"));
	assert_int_equal(out[0].conn, aconn);
	assert_int_equal(out[0].seq, 1);         /* batch 1 was never routed to a */
	assert_int_equal(out[0].batch_id, 2);
	assert_int_equal(h_get(w, out, 8), 1);
	check_note(&out[0], S("k"), 1, S("two"));
	assert_int_equal(out[0].seq, 2);
	h_wait_ok(pid, H_CHILD_TIMEOUT_MS);
	assert_int_equal(shn_port_get(a, out, 8, 0), -ETIMEDOUT);
	h_chan_close(&x.go);
	h_disconnect(c);
}

/* ---- 3: event masks and wildcard subscriptions -------------------------- */

static uint8_t key256[256];

static int child_masks(void *arg)
{
	struct pub_ctx *x = arg;
	shn_client *c = NULL;

	CHILD_CHECK_EQ(shn_connect(x->sock, &c), 0);
	shn_notification b[] = {
		note(S("m"), 0x1, S("a")),
		note(S("m"), 0x2, S("b")),
		note(S("m"), 0x3, S("c")),
		note(S("n"), 0x2, S("d")),
		note(S("m"), 0x4, S("e")),
		note(S("m"), 0x6, S("f")),
		note(S("m"), 0x8000000, S("g")),
		note("\0\xff", 2, 0x8, S("h")),
		note(key256, sizeof(key256), 0x2, S("i")),
	};
	CHILD_CHECK_EQ(shn_notify(c, b, sizeof(b) / sizeof(b[0]), 0), 0);
	shn_disconnect(c);
	return 0;
}

struct expect {
	const char *key;
	size_t klen;
	uint32_t ev;
	const char *data;
};

static void check_batch(shn_port *p, shn_conn conn, const struct expect *e, int n, pid_t pid)
{
	shn_notification out[32];

	assert_int_equal(h_get(p, out, 32), n);
	for (int i = 0; i < n; i++) {
		check_note(&out[i], e[i].key, e[i].klen, e[i].ev, e[i].data, strlen(e[i].data));
		assert_int_equal(out[i].conn, conn);
		assert_int_equal(out[i].seq, (uint64_t)i + 1);
		assert_int_equal(out[i].batch_index, i);
		assert_int_equal(out[i].batch_count, n);
		assert_int_equal(out[i].batch_id, 1);
		assert_int_equal(out[i].sender_pid, pid);
	}
	assert_int_equal(shn_port_get(p, out, 32, 0), -ETIMEDOUT);
}

static void test_masks_and_wildcard(void **state)
{
	struct harness *h = *state;
	struct pub_ctx x = { .sock = h->sock };
	shn_conn cm, cx, cw, cw8;

	memset(key256, 'z', sizeof(key256));
	shn_client *c = h_connect(h);
	shn_port *pm = h_port_sub(c, 0, S("m"), 0x2, &cm);
	shn_port *px = h_port_sub(c, 0, S("m"), 0x5, &cx);
	shn_port *pw = h_port_sub(c, 0, NULL, 0, SHN_EV_ALL, &cw);
	shn_port *pw8 = h_port_sub(c, 0, NULL, 0, 0x8, &cw8);
	pid_t pid = h_fork(child_masks, &x);
	h_wait_ok(pid, H_CHILD_TIMEOUT_MS);

	const struct expect em[] = {
		{ S("m"), 0x2, "b" }, { S("m"), 0x3, "c" }, { S("m"), 0x6, "f" },
	};
	check_batch(pm, cm, em, 3, pid);
	const struct expect ex[] = {
		{ S("m"), 0x1, "a" }, { S("m"), 0x3, "c" }, { S("m"), 0x4, "e" },
		{ S("m"), 0x6, "f" },
	};
	check_batch(px, cx, ex, 4, pid);
	const struct expect ew[] = {
		{ S("m"), 0x1, "a" }, { S("m"), 0x2, "b" }, { S("m"), 0x3, "c" },
		{ S("n"), 0x2, "d" }, { S("m"), 0x4, "e" }, { S("m"), 0x6, "f" },
		{ S("m"), 0x8000000, "g" }, { "\0\xff", 2, 0x8, "h" },
		{ (const char *)key256, 256, 0x2, "i" },
	};
	check_batch(pw, cw, ew, 9, pid);
	const struct expect e8[] = { { "\0\xff", 2, 0x8, "h" } };
	check_batch(pw8, cw8, e8, 1, pid);
	h_disconnect(c);
}

/* ---- rule 15: several subscriptions of one port match ------------------- */

static int child_ab(void *arg)
{
	struct pub_ctx *x = arg;
	shn_client *c = NULL;

	CHILD_CHECK_EQ(shn_connect(x->sock, &c), 0);
	shn_notification b[] = { note(S("a"), 1, S("x")), note(S("b"), 1, S("y")) };
	CHILD_CHECK_EQ(shn_notify(c, b, 2, 0), 0);
	shn_disconnect(c);
	return 0;
}

static void test_overlapping_filters(void **state)
{
	struct harness *h = *state;
	struct pub_ctx x = { .sock = h->sock };
	shn_notification out[8];
	shn_conn c1, c2 = 0, c3, c4 = 0;

	shn_client *c = h_connect(h);
	shn_port *p = h_port_sub(c, 0, NULL, 0, SHN_EV_ALL, &c1);       /* older: any key */
	assert_int_equal(shn_subscribe(p, S("a"), SHN_EV_ALL, 0, &c2), 0);
	shn_port *q = h_port_sub(c, 0, S("a"), SHN_EV_ALL, &c3);        /* older: "a" */
	assert_int_equal(shn_subscribe(q, NULL, 0, SHN_EV_ALL, 0, &c4), 0);
	/* connection numbers: non-zero, distinct */
	assert_true(c1 && c2 && c3 && c4);
	assert_true(c1 != c2 && c1 != c3 && c1 != c4 && c2 != c3 && c2 != c4 && c3 != c4);
	pid_t pid = h_fork(child_ab, &x);
	h_wait_ok(pid, H_CHILD_TIMEOUT_MS);

	/* each notification once per port; conn: the oldest matching filter */
	assert_int_equal(h_get(p, out, 8), 2);
	check_note(&out[0], S("a"), 1, S("x"));
	check_note(&out[1], S("b"), 1, S("y"));
	assert_int_equal(out[0].conn, c1);
	assert_int_equal(out[1].conn, c1);
	assert_int_equal(out[1].seq, 2);
	assert_int_equal(shn_port_get(p, out, 8, 0), -ETIMEDOUT);

	assert_int_equal(h_get(q, out, 8), 2);
	check_note(&out[0], S("a"), 1, S("x"));
	check_note(&out[1], S("b"), 1, S("y"));
	assert_int_equal(out[0].conn, c3);
	assert_int_equal(out[1].conn, c4);
	assert_int_equal(out[1].batch_count, 2);
	assert_int_equal(shn_port_get(q, out, 8, 0), -ETIMEDOUT);
	h_disconnect(c);
}

/* ---- 9: the publisher exits right after publishing (rule 9) ------------- */

#define EXIT_BATCHES 500

static int child_publish_and_die(void *arg)
{
	struct pub_ctx *x = arg;
	shn_client *c = NULL;

	CHILD_CHECK_EQ(shn_connect(x->sock, &c), 0);
	shn_notification b[3] = {
		note(S("bye"), 1, S("0")), note(S("bye"), 1, S("1")), note(S("bye"), 1, S("2")),
	};
	CHILD_CHECK_EQ(shn_notify(c, b, 3, 0), 0);
	for (uint32_t i = 0; i < EXIT_BATCHES; i++) {
		shn_notification one = note(S("bye"), 2, &i, sizeof(i));
		CHILD_CHECK_EQ(shn_notify(c, &one, 1, 0), 0);
	}
	switch (x->mode) {
	case 0:
		_exit(0);                /* no disconnect, no atexit */
	case 1:
		raise(SIGKILL);          /* dies; the kernel closes everything */
		break;
	case 2:
		shn_disconnect(c);       /* the polite way */
		_exit(0);
	}
	return 3;
}

static void test_publisher_exit(void **state)
{
	struct harness *h = *state;
	shn_notification out[8];
	shn_conn conn;

	shn_client *c = h_connect(h);
	shn_port *p = h_port_sub(c, 0, S("bye"), SHN_EV_ALL, &conn);
	uint64_t seq = 0;
	for (int mode = 0; mode < 3; mode++) {
		struct pub_ctx x = { .sock = h->sock, .mode = mode };
		pid_t pid = h_fork(child_publish_and_die, &x);
		int st = h_wait(pid, H_CHILD_TIMEOUT_MS);
		assert_true(st != -1);
		if (mode == 1)
			assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
		else
			assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
		/* the publisher is gone; everything it published arrives */
		assert_int_equal(h_get(p, out, 8), 3);
		for (int i = 0; i < 3; i++) {
			char d[2] = { (char)('0' + i), 0 };
			check_note(&out[i], S("bye"), 1, d, 1);
			assert_int_equal(out[i].sender_pid, pid);
			assert_int_equal(out[i].seq, ++seq);
		}
		for (uint32_t i = 0; i < EXIT_BATCHES; i++) {
			assert_int_equal(h_get(p, out, 8), 1);
			check_note(&out[0], S("bye"), 2, &i, sizeof(i));
			assert_int_equal(out[0].batch_id, i + 2);
			assert_int_equal(out[0].seq, ++seq);
		}
		assert_int_equal(shn_port_get(p, out, 8, 0), -ETIMEDOUT);
	}
	h_disconnect(c);
}

/* ---- MAPI's example: three clients watch a table, five rows are added:
 * one Notify with five NOTIFICATION structures, each client's sink called
 * once with all five, in order ---------------------------------------- */

struct table_ctx {
	const char *sock;
	struct h_chan ready;   /* child -> test: subscribed */
	int id;
};

static int child_table(void *arg)
{
	struct table_ctx *x = arg;
	shn_notification out[16];
	shn_client *c = NULL;
	shn_port *p = NULL;
	shn_conn conn = 0;

	CHILD_CHECK_EQ(shn_connect(x->sock, &c), 0);
	CHILD_CHECK_EQ(shn_port_open(c, NULL, &p), 0);
	CHILD_CHECK_EQ(shn_subscribe(p, S("table"), 0x1, 0, &conn), 0);
	CHILD_CHECK(h_send(&x->ready, 1));
	/* one get: the whole batch of five, as published */
	int n = shn_port_get(p, out, 16, H_TIMEOUT_MS);
	CHILD_CHECK_EQ(n, 5);
	for (int i = 0; i < 5; i++) {
		char want[8];
		snprintf(want, sizeof(want), "row%d", i);
		CHILD_CHECK_EQ(out[i].event, 0x1);
		CHILD_CHECK_EQ(out[i].data_len, 4);
		CHILD_CHECK(memcmp(out[i].data, want, 4) == 0);
		CHILD_CHECK_EQ(out[i].conn, conn);
		CHILD_CHECK_EQ(out[i].seq, i + 1);
		CHILD_CHECK_EQ(out[i].batch_index, i);
		CHILD_CHECK_EQ(out[i].batch_count, 5);
		CHILD_CHECK_EQ(out[i].batch_id, out[0].batch_id);
		CHILD_CHECK_EQ(out[i].sender_pid, getppid());
	}
	CHILD_CHECK_EQ(shn_port_get(p, out, 16, 200), -ETIMEDOUT);
	shn_disconnect(c);
	return 0;
}

static void test_three_clients_five_rows(void **state)
{
	struct harness *h = *state;
	static struct table_ctx x[3];
	pid_t pid[3];
	uint8_t b;

	for (int i = 0; i < 3; i++) {
		x[i].sock = h->sock;
		x[i].id = i;
		h_chan_init(&x[i].ready);
		pid[i] = h_fork(child_table, &x[i]);
	}
	for (int i = 0; i < 3; i++)
		if (!h_recv(&x[i].ready, &b, H_TIMEOUT_MS))
			fail_msg("client %d did not subscribe", i);
	shn_client *c = h_connect(h);
	shn_notification rows[5];
	char d[5][8];
	for (int i = 0; i < 5; i++) {
		snprintf(d[i], sizeof(d[i]), "row%d", i);
		rows[i] = note(S("table"), 0x1, d[i], 4);
	}
	assert_int_equal(shn_notify(c, rows, 5, 0), 0);
	for (int i = 0; i < 3; i++) {
		h_wait_ok(pid[i], H_CHILD_TIMEOUT_MS);
		h_chan_close(&x[i].ready);
	}
	h_disconnect(c);
}

int main(int argc, char **argv)
{
	h_parse_args(argc, argv);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_one_batch, h_setup, h_teardown),
		cmocka_unit_test_setup_teardown(test_partial_get, h_setup, h_teardown),
		cmocka_unit_test_setup_teardown(test_no_event_before_filter, h_setup, h_teardown),
		cmocka_unit_test_setup_teardown(test_masks_and_wildcard, h_setup, h_teardown),
		cmocka_unit_test_setup_teardown(test_overlapping_filters, h_setup, h_teardown),
		cmocka_unit_test_setup_teardown(test_publisher_exit, h_setup, h_teardown),
		cmocka_unit_test_setup_teardown(test_three_clients_five_rows, h_setup, h_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
