/* SPDX-License-Identifier: MIT */
/*
 * test_dispatch.c - advise sinks and shn_port_dispatch (docs/design.md, rules
 * 1 and 15): each sink is called once per delivered batch with the
 * notifications of that batch that match its own filter (its own conn,
 * batch_index / batch_count describing the subset), oldest sink first,
 * skipping a sink with none; system events go to every sink except
 * SHN_EV_HANDLE_CLOSE, which goes to the sink whose subscription ended.
 */
#define _GNU_SOURCE
#include "harness.h"

#include <errno.h>
#include <stdatomic.h>
#include <string.h>

#define MAX_CALLS 256
#define MAX_NOTES 16

struct call {
	int sink;
	size_t n;
	uint32_t event[MAX_NOTES];
	shn_conn conn[MAX_NOTES];
	uint32_t index[MAX_NOTES], count[MAX_NOTES];
	uint64_t seq[MAX_NOTES], batch_id[MAX_NOTES];
	char data[MAX_NOTES][16];
	uint64_t lost[MAX_NOTES];
};

static struct call calls[MAX_CALLS];
static int ncalls;

struct sink {
	int id;
	unsigned ret;
};

static unsigned sink_fn(void *ctx, const shn_notification *b, size_t n)
{
	struct sink *s = ctx;

	if (ncalls >= MAX_CALLS)
		return s->ret;
	struct call *c = &calls[ncalls++];
	memset(c, 0, sizeof(*c));
	c->sink = s->id;
	c->n = n;
	for (size_t i = 0; i < n && i < MAX_NOTES; i++) {
		c->event[i] = b[i].event;
		c->conn[i] = b[i].conn;
		c->index[i] = b[i].batch_index;
		c->count[i] = b[i].batch_count;
		c->seq[i] = b[i].seq;
		c->batch_id[i] = b[i].batch_id;
		if (b[i].event == SHN_EV_OVERFLOW && b[i].data_len == 8)
			memcpy(&c->lost[i], b[i].data, 8);
		else if (b[i].data_len > 0 && b[i].data_len < sizeof(c->data[i]))
			memcpy(c->data[i], b[i].data, b[i].data_len);
	}
	return s->ret;
}

/* Dispatch until at least want sink calls were logged (bounded). */
static void dispatch_until(shn_port *p, int want)
{
	int64_t end = h_now_ms() + H_TIMEOUT_MS;

	while (ncalls < want) {
		int r = shn_port_dispatch(p, 200);
		assert_true(r > 0 || r == -ETIMEDOUT);
		if (h_now_ms() > end)
			fail_msg("only %d sink calls after %d ms, expected %d", ncalls,
				 H_TIMEOUT_MS, want);
	}
}

static shn_notification note(const char *key, uint32_t ev, const char *data)
{
	shn_notification n;

	memset(&n, 0, sizeof(n));
	n.key = key;
	n.key_len = (uint16_t)strlen(key);
	n.event = ev;
	n.data = data;
	n.data_len = (uint32_t)strlen(data);
	return n;
}

static void test_sink_subsets(void **state)
{
	struct harness *h = *state;
	struct sink A = { .id = 1 }, B = { .id = 2 };
	shn_conn ca = 0, cb = 0;
	shn_port *p = NULL;

	ncalls = 0;
	shn_client *c = h_connect(h);
	assert_int_equal(shn_port_open(c, NULL, &p), 0);
	assert_int_equal(shn_advise(p, "a", 1, SHN_EV_ALL, 0, sink_fn, &A, &ca), 0);
	assert_int_equal(shn_advise(p, NULL, 0, 0x2, 0, sink_fn, &B, &cb), 0);
	assert_true(ca != 0 && cb != 0 && ca != cb);
	assert_int_equal(shn_advise(p, "a", 1, SHN_EV_ALL, 0, NULL, NULL, &ca), -EINVAL);

	shn_notification b[] = { note("a", 1, "1"), note("b", 2, "2"), note("a", 2, "3"),
				 note("c", 1, "4") };
	assert_int_equal(shn_notify(c, b, 4, 0), 0);
	/* delivered to the port: 1, 2, 3 (4 matches nothing) */
	int r = shn_port_dispatch(p, H_TIMEOUT_MS);
	assert_int_equal(r, 3);
	assert_int_equal(ncalls, 2);
	/* A first (older): "1" and "3" */
	assert_int_equal(calls[0].sink, 1);
	assert_int_equal(calls[0].n, 2);
	assert_string_equal(calls[0].data[0], "1");
	assert_string_equal(calls[0].data[1], "3");
	for (int i = 0; i < 2; i++) {
		assert_int_equal(calls[0].conn[i], ca);
		assert_int_equal(calls[0].index[i], i);
		assert_int_equal(calls[0].count[i], 2);
		assert_int_equal(calls[0].batch_id[i], 1);
	}
	assert_int_equal(calls[0].seq[0], 1);
	assert_int_equal(calls[0].seq[1], 3);
	/* then B: "2" and "3" (event 2 on any key) */
	assert_int_equal(calls[1].sink, 2);
	assert_int_equal(calls[1].n, 2);
	assert_string_equal(calls[1].data[0], "2");
	assert_string_equal(calls[1].data[1], "3");
	for (int i = 0; i < 2; i++) {
		assert_int_equal(calls[1].conn[i], cb);
		assert_int_equal(calls[1].index[i], i);
		assert_int_equal(calls[1].count[i], 2);
	}
	assert_int_equal(shn_port_dispatch(p, 0), -ETIMEDOUT);

	/* a sink with nothing in the batch is not called */
	ncalls = 0;
	shn_notification only_a = note("a", 1, "x");
	assert_int_equal(shn_notify(c, &only_a, 1, 0), 0);
	assert_int_equal(shn_port_dispatch(p, H_TIMEOUT_MS), 1);
	assert_int_equal(ncalls, 1);
	assert_int_equal(calls[0].sink, 1);
	assert_int_equal(calls[0].count[0], 1);

	/* three batches: each sink once per batch, in order */
	ncalls = 0;
	for (int i = 0; i < 3; i++) {
		char d[2] = { (char)('p' + i), 0 };
		shn_notification x = note("a", 2, d);
		assert_int_equal(shn_notify(c, &x, 1, 0), 0);
	}
	dispatch_until(p, 6);
	assert_int_equal(ncalls, 6);
	for (int i = 0; i < 3; i++) {
		char d[2] = { (char)('p' + i), 0 };
		assert_int_equal(calls[2 * i].sink, 1);
		assert_int_equal(calls[2 * i + 1].sink, 2);
		assert_string_equal(calls[2 * i].data[0], d);
		assert_string_equal(calls[2 * i + 1].data[0], d);
		assert_int_equal(calls[2 * i].batch_id[0], calls[2 * i + 1].batch_id[0]);
	}
	assert_int_equal(shn_port_dispatch(p, 0), -ETIMEDOUT);

	/* HANDLE_CLOSE goes to the ended sink only */
	ncalls = 0;
	shn_notification last = note("a", 1, "last");
	assert_int_equal(shn_notify(c, &last, 1, 0), 0);
	dispatch_until(p, 1);
	assert_int_equal(calls[0].sink, 1);
	assert_string_equal(calls[0].data[0], "last");
	ncalls = 0;
	assert_int_equal(shn_unsubscribe(c, ca), 0);
	dispatch_until(p, 1);
	assert_int_equal(ncalls, 1);
	assert_int_equal(calls[0].sink, 1);
	assert_int_equal(calls[0].n, 1);
	assert_int_equal(calls[0].event[0], SHN_EV_HANDLE_CLOSE);
	assert_int_equal(calls[0].conn[0], ca);
	assert_int_equal(calls[0].seq[0], 0);
	assert_int_equal(shn_port_dispatch(p, 0), -ETIMEDOUT);
	assert_int_equal(ncalls, 1);
	shn_conn wc;
	shn_notification out[4];
	shn_port *w = h_port_sub(c, 0, "a", 1, SHN_EV_ALL, &wc);   /* a witness */
	/* A is gone for good: a new "a" notification reaches nobody on p */
	ncalls = 0;
	assert_int_equal(shn_notify(c, &only_a, 1, 0), 0);
	assert_int_equal(h_get(w, out, 4), 1);
	assert_int_equal(shn_port_dispatch(p, 0), -ETIMEDOUT);
	assert_int_equal(ncalls, 0);
	h_disconnect(c);
}

/* An overflow report reaches every sink of the port. */
static void test_system_events_to_every_sink(void **state)
{
	struct harness *h = *state;
	struct sink A = { .id = 1 }, B = { .id = 2 };
	shn_conn ca = 0, cb = 0, wc;
	shn_port *p = NULL;
	shn_port_options o = { .capacity = 4096 };
	static char big[1001];

	memset(big, 'x', 1000);
	ncalls = 0;
	shn_client *c = h_connect(h);
	assert_int_equal(shn_port_open(c, &o, &p), 0);
	assert_int_equal(shn_advise(p, "o", 1, 0x1, 0, sink_fn, &A, &ca), 0);
	assert_int_equal(shn_advise(p, "o", 1, 0x2, 0, sink_fn, &B, &cb), 0);
	shn_port *w = h_port_sub(c, 1u << 20, "o", 1, SHN_EV_ALL, &wc);
	for (int i = 0; i < 20; i++) {
		shn_notification x = note("o", (i % 2) ? 0x2 : 0x1, big);
		assert_int_equal(shn_notify(c, &x, 1, 0), 0);
	}
	shn_notification out[4];
	for (int i = 0; i < 20; i++)
		assert_int_equal(h_get(w, out, 4), 1);      /* all routed */

	uint64_t seen_a = 0, seen_b = 0, lost_a = 0, lost_b = 0;
	int64_t end = h_now_ms() + H_TIMEOUT_MS;
	while (seen_a + seen_b + lost_a < 20) {
		int before = ncalls;
		int r = shn_port_dispatch(p, 200);
		assert_true(r > 0 || r == -ETIMEDOUT);
		for (int i = before; i < ncalls; i++) {
			for (size_t k = 0; k < calls[i].n; k++) {
				if (calls[i].event[k] == SHN_EV_OVERFLOW) {
					if (calls[i].sink == 1)
						lost_a += calls[i].lost[k];
					else
						lost_b += calls[i].lost[k];
				} else if (calls[i].sink == 1) {
					assert_int_equal(calls[i].event[k], 0x1);
					seen_a++;
				} else {
					assert_int_equal(calls[i].event[k], 0x2);
					seen_b++;
				}
			}
		}
		ncalls = 0;
		if (h_now_ms() > end)
			fail_msg("sinks saw %llu (lost %llu) and %llu (lost %llu) of 20",
				 (unsigned long long)seen_a, (unsigned long long)lost_a,
				 (unsigned long long)seen_b, (unsigned long long)lost_b);
		if (seen_a + seen_b + lost_b > 20)
			fail_msg("more than 20 accounted for");
	}
	/* the same reports went to both sinks */
	assert_true(lost_a > 0);
	assert_int_equal(lost_a, lost_b);
	/* reports count the port's losses: both sinks' notifications */
	assert_int_equal(seen_a + seen_b + lost_a, 20);
	h_disconnect(c);
}

/* ---- across processes ---------------------------------------------------- */

struct xpub_ctx {
	const char *sock;
	struct h_chan go;      /* parent -> child: 1 publish batches 1-3, 2 batch 4 */
};

/* The publisher, another process: four batches, the fourth once told. */
static int child_xpub(void *arg)
{
	struct xpub_ctx *x = arg;
	shn_client *c = NULL;
	uint8_t b;

	CHILD_CHECK(h_recv(&x->go, &b, H_TIMEOUT_MS));
	CHILD_CHECK_EQ(shn_connect(x->sock, &c), 0);
	shn_notification b1[] = { note("a", 1, "1"), note("b", 2, "2"), note("a", 2, "3"),
				  note("c", 1, "4"), note("c", 4, "5"), note("z", 8, "6") };
	CHILD_CHECK_EQ(shn_notify(c, b1, 6, 0), 0);
	shn_notification b2[] = { note("c", 4, "7") };
	CHILD_CHECK_EQ(shn_notify(c, b2, 1, 0), 0);
	shn_notification b3[] = { note("a", 1, "8"), note("a", 1, "9"), note("a", 1, "10") };
	CHILD_CHECK_EQ(shn_notify(c, b3, 3, 0), 0);
	CHILD_CHECK(h_recv(&x->go, &b, H_TIMEOUT_MS));
	shn_notification b4[] = { note("a", 3, "11"), note("b", 2, "12") };
	CHILD_CHECK_EQ(shn_notify(c, b4, 2, 0), 0);
	shn_disconnect(c);
	return 0;
}

/* One logged sink call: which sink, which data in which order, all with the
 * sink's own conn, batch_index 0..n-1 and batch_count n of the subset, the
 * publisher's batch_id and pid, and the port's seq numbers. */
static void check_call(const struct call *k, int sink, shn_conn conn, uint64_t batch_id,
		       const char *const *data, const uint64_t *seq, size_t n)
{
	if (k->sink != sink || k->n != n)
		fail_msg("sink call: sink %d with %zu notifications, expected sink %d with %zu",
			 k->sink, k->n, sink, n);
	for (size_t i = 0; i < n; i++) {
		assert_string_equal(k->data[i], data[i]);
		assert_int_equal(k->conn[i], conn);
		assert_int_equal(k->index[i], i);
		assert_int_equal(k->count[i], n);
		assert_int_equal(k->batch_id[i], batch_id);
		assert_int_equal(k->seq[i], seq[i]);
		assert_true((k->event[i] & SHN_EV_SYSTEM) == 0);
	}
}

static pid_t call_pid[MAX_CALLS][MAX_NOTES];

static unsigned sink_pid_fn(void *ctx, const shn_notification *b, size_t n)
{
	int i = ncalls;
	unsigned r = sink_fn(ctx, b, n);

	for (size_t k = 0; k < n && k < MAX_NOTES && i < MAX_CALLS; k++)
		call_pid[i][k] = b[k].sender_pid;
	return r;
}

/* Callbacks receive the right batches: a publisher in another
 * process; three sinks on one port (rule 15).  Each sink is called once per
 * delivered batch with its own subset, oldest sink first, skipping sinks
 * with nothing; a DISCONTINUE answer to an asynchronous batch cancels
 * nothing; HANDLE_CLOSE goes only to the ended sink, after its last
 * notification, and nothing of it comes after. */
static void test_dispatch_across_processes(void **state)
{
	struct harness *h = *state;
	static struct xpub_ctx x;
	struct sink A = { .id = 1, .ret = SHN_CALLBACK_DISCONTINUE };  /* async: no effect */
	struct sink B = { .id = 2 }, C = { .id = 3 };
	shn_conn ca = 0, cb = 0, cc = 0, wc = 0;
	shn_notification out[16];
	shn_port *p = NULL;

	x.sock = h->sock;
	h_chan_init(&x.go);
	pid_t pid = h_fork(child_xpub, &x);   /* before our client has threads */
	ncalls = 0;
	shn_client *c = h_connect(h);
	assert_int_equal(shn_port_open(c, NULL, &p), 0);
	assert_int_equal(shn_advise(p, "a", 1, SHN_EV_ALL, 0, sink_pid_fn, &A, &ca), 0);
	assert_int_equal(shn_advise(p, NULL, 0, 0x2, 0, sink_pid_fn, &B, &cb), 0);
	assert_int_equal(shn_advise(p, "c", 1, 0x4, 0, sink_pid_fn, &C, &cc), 0);
	assert_true(ca != 0 && cb != 0 && cc != 0);
	assert_true(ca != cb && cb != cc && ca != cc);
	/* a witness: every batch of the child reaches it */
	shn_port *w = h_port_sub(c, 0, NULL, 0, SHN_EV_ALL, &wc);

	assert_true(h_send(&x.go, 1));
	/* wait until batches 1-3 are routed (the witness has them) */
	uint64_t wbatch = 0;
	while (wbatch < 3) {
		int n = h_get(w, out, 16);
		assert_int_equal(out[0].sender_pid, pid);
		wbatch = out[n - 1].batch_id;
	}
	/* batch 1: the port got 1, 2, 3, 5 ("4" is c/1, "6" z/8: no filter) */
	int delivered = 0;
	int64_t end = h_now_ms() + H_TIMEOUT_MS;
	while (ncalls < 5 && h_now_ms() < end) {   /* 3 + 1 + 1 calls */
		int r = shn_port_dispatch(p, 200);
		assert_true(r > 0 || r == -ETIMEDOUT);
		if (r > 0)
			delivered += r;
	}
	if (ncalls != 5) {
		for (int i = 0; i < ncalls; i++) {
			fprintf(stderr, "call %d: sink %d:", i, calls[i].sink);
			for (size_t k = 0; k < calls[i].n && k < MAX_NOTES; k++)
				fprintf(stderr, " [ev 0x%x conn %llu seq %llu batch %llu %u/%u '%s']",
					calls[i].event[k], (unsigned long long)calls[i].conn[k],
					(unsigned long long)calls[i].seq[k],
					(unsigned long long)calls[i].batch_id[k], calls[i].index[k],
					calls[i].count[k], calls[i].data[k]);
			fprintf(stderr, "\n");
		}
		fail_msg("%d sink calls for batches 1-3, expected 5", ncalls);
	}
	/* dispatch counts the notifications delivered to the port: 4 + 1 + 3 */
	assert_int_equal(delivered, 4 + 1 + 3);
	assert_int_equal(shn_port_dispatch(p, 0), -ETIMEDOUT);

	check_call(&calls[0], 1, ca, 1, (const char *const[]){ "1", "3" },
		   (const uint64_t[]){ 1, 3 }, 2);
	check_call(&calls[1], 2, cb, 1, (const char *const[]){ "2", "3" },
		   (const uint64_t[]){ 2, 3 }, 2);
	check_call(&calls[2], 3, cc, 1, (const char *const[]){ "5" }, (const uint64_t[]){ 4 }, 1);
	assert_int_equal(calls[2].event[0], 4);
	/* batch 2: only C; batch 3: only A (B's mask 0x2, C's key "c") */
	check_call(&calls[3], 3, cc, 2, (const char *const[]){ "7" }, (const uint64_t[]){ 5 }, 1);
	check_call(&calls[4], 1, ca, 3, (const char *const[]){ "8", "9", "10" },
		   (const uint64_t[]){ 6, 7, 8 }, 3);
	for (int i = 0; i < 5; i++)
		for (size_t k = 0; k < calls[i].n; k++)
			assert_int_equal(call_pid[i][k], pid);

	/* end A: its HANDLE_CLOSE goes to A only */
	ncalls = 0;
	assert_int_equal(shn_unsubscribe(c, ca), 0);
	assert_int_equal(shn_port_dispatch(p, H_TIMEOUT_MS), 1);
	assert_int_equal(ncalls, 1);
	assert_int_equal(calls[0].sink, 1);
	assert_int_equal(calls[0].n, 1);
	assert_int_equal(calls[0].event[0], SHN_EV_HANDLE_CLOSE);
	assert_int_equal(calls[0].conn[0], ca);
	assert_int_equal(calls[0].seq[0], 0);
	assert_int_equal(call_pid[0][0], 0);
	assert_int_equal(shn_port_dispatch(p, 0), -ETIMEDOUT);

	/* batch 4, published after A ended: "11" (a/3) and "12" to B only */
	ncalls = 0;
	assert_true(h_send(&x.go, 2));
	h_wait_ok(pid, H_CHILD_TIMEOUT_MS);
	dispatch_until(p, 1);
	assert_int_equal(ncalls, 1);
	check_call(&calls[0], 2, cb, 4, (const char *const[]){ "11", "12" },
		   (const uint64_t[]){ 9, 10 }, 2);
	assert_int_equal(shn_port_dispatch(p, 0), -ETIMEDOUT);
	assert_int_equal(ncalls, 1);
	h_chan_close(&x.go);
	h_disconnect(c);
}

/* ---- asynchronous notify returns first (MAPI's "la llamada ... volverá
 * al cliente antes de realizar cualquiera de las llamadas a OnNotify") ---- */

struct async_shared {
	_Atomic int ready;
	_Atomic int returned;     /* the publisher's shn_notify returned */
	_Atomic int calls;
};

struct async_ctx {
	const char *sock;
	struct async_shared *sh;
};

static unsigned waiting_sink(void *ctx, const shn_notification *b, size_t n)
{
	struct async_shared *sh = ctx;
	int64_t end = h_now_ms() + H_TIMEOUT_MS;

	(void)b;
	(void)n;
	/* a sink that does not return until the publisher's call has: an
	 * asynchronous publisher never waits for it */
	while (!atomic_load(&sh->returned)) {
		CHILD_CHECK(h_now_ms() < end);
		h_sleep_ms(1);
	}
	atomic_fetch_add(&sh->calls, 1);
	return SHN_CALLBACK_CONTINUE;
}

static int child_waiting_sink(void *arg)
{
	struct async_ctx *x = arg;
	shn_client *c = NULL;
	shn_port *p = NULL;
	shn_conn conn;

	CHILD_CHECK_EQ(shn_connect(x->sock, &c), 0);
	CHILD_CHECK_EQ(shn_port_open(c, NULL, &p), 0);
	CHILD_CHECK_EQ(shn_advise(p, "as", 2, SHN_EV_ALL, 0, waiting_sink, x->sh, &conn), 0);
	atomic_store(&x->sh->ready, 1);
	CHILD_CHECK_EQ(shn_port_dispatch(p, H_TIMEOUT_MS), 1);
	CHILD_CHECK_EQ(atomic_load(&x->sh->calls), 1);
	shn_disconnect(c);
	return 0;
}

static bool async_ready(void *arg)
{
	return atomic_load(&((struct async_shared *)arg)->ready) != 0;
}

static void test_async_notify_returns_first(void **state)
{
	struct harness *h = *state;
	struct async_shared *sh = h_shared(sizeof(*sh));
	struct async_ctx x = { .sock = h->sock, .sh = sh };
	struct sink A = { .id = 1 };
	shn_conn ca;
	shn_port *p = NULL;

	/* another process's sink: it cannot finish before we returned */
	pid_t pid = h_fork(child_waiting_sink, &x);
	if (!h_poll_until(async_ready, sh, H_TIMEOUT_MS))
		fail_msg("the sink process did not subscribe");
	shn_client *c = h_connect(h);
	shn_notification n = note("as", 1, "x");
	assert_int_equal(shn_notify(c, &n, 1, 0), 0);
	atomic_store(&sh->returned, 1);
	h_wait_ok(pid, H_CHILD_TIMEOUT_MS);
	assert_int_equal(atomic_load(&sh->calls), 1);

	/* in one process, literally: the callback runs only inside
	 * shn_port_dispatch, never inside shn_notify */
	ncalls = 0;
	assert_int_equal(shn_port_open(c, NULL, &p), 0);
	assert_int_equal(shn_advise(p, "as", 2, SHN_EV_ALL, 0, sink_fn, &A, &ca), 0);
	assert_int_equal(shn_notify(c, &n, 1, 0), 0);
	assert_int_equal(ncalls, 0);
	assert_int_equal(shn_port_dispatch(p, H_TIMEOUT_MS), 1);
	assert_int_equal(ncalls, 1);
	h_disconnect(c);
}

/* Every notification reaches the port's reader once, whichever mix of
 * shn_port_get and shn_port_dispatch reads it: a dispatch after a get that
 * took part of a batch runs the sinks for the rest of that batch only (it
 * handed the sink the get's and an older batch's notes again, from ring
 * memory already released). */
static void test_dispatch_after_partial_get(void **state)
{
	struct harness *h = *state;
	struct sink A = { .id = 1 };
	shn_notification out[4];
	shn_conn ca;
	shn_port *p = NULL;

	ncalls = 0;
	shn_client *c = h_connect(h);
	assert_int_equal(shn_port_open(c, NULL, &p), 0);
	assert_int_equal(shn_advise(p, NULL, 0, SHN_EV_ALL, 0, sink_fn, &A, &ca), 0);

	shn_notification a[] = { note("k", 1, "a1"), note("k", 1, "a2"), note("k", 1, "a3") };
	assert_int_equal(shn_notify(c, a, 3, 0), 0);
	assert_int_equal(shn_port_dispatch(p, H_TIMEOUT_MS), 3);
	assert_int_equal(ncalls, 1);
	assert_int_equal(calls[0].n, 3);

	shn_notification b[] = { note("k", 1, "b1"), note("k", 1, "b2"), note("k", 1, "b3") };
	assert_int_equal(shn_notify(c, b, 3, 0), 0);
	assert_int_equal(shn_port_get(p, out, 1, H_TIMEOUT_MS), 1);
	assert_int_equal(out[0].data_len, 2);
	assert_memory_equal(out[0].data, "b1", 2);
	ncalls = 0;
	/* the rest of b: b2 and b3, each once, as a subset of two */
	int r = shn_port_dispatch(p, H_TIMEOUT_MS);
	assert_int_equal(ncalls, 1);
	for (size_t i = 2; i < calls[0].n && i < MAX_NOTES; i++)
		print_error("sink got %s again\n", calls[0].data[i]);
	assert_int_equal(calls[0].n, 2);
	assert_string_equal(calls[0].data[0], "b2");
	assert_string_equal(calls[0].data[1], "b3");
	assert_int_equal(r, 2);
	for (int i = 0; i < 2; i++) {
		assert_int_equal(calls[0].index[i], i);
		assert_int_equal(calls[0].count[i], 2);
		assert_int_equal(calls[0].conn[i], ca);
	}
	assert_int_equal(calls[0].seq[0], 5);
	assert_int_equal(calls[0].seq[1], 6);
	assert_int_equal(shn_port_dispatch(p, 0), -ETIMEDOUT);

	/* two of a batch by get, the last one by dispatch */
	shn_notification d[] = { note("k", 1, "c1"), note("k", 1, "c2"), note("k", 1, "c3") };
	assert_int_equal(shn_notify(c, d, 3, 0), 0);
	assert_int_equal(shn_port_get(p, out, 2, H_TIMEOUT_MS), 2);
	ncalls = 0;
	assert_int_equal(shn_port_dispatch(p, H_TIMEOUT_MS), 1);
	assert_int_equal(ncalls, 1);
	assert_int_equal(calls[0].n, 1);
	assert_string_equal(calls[0].data[0], "c3");
	assert_int_equal(calls[0].seq[0], 9);
	assert_int_equal(shn_port_dispatch(p, 0), -ETIMEDOUT);
	assert_int_equal(shn_port_get(p, out, 4, 0), -ETIMEDOUT);
	h_disconnect(c);
}

int main(int argc, char **argv)
{
	h_parse_args(argc, argv);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_sink_subsets, h_setup, h_teardown),
		cmocka_unit_test_setup_teardown(test_system_events_to_every_sink, h_setup,
						h_teardown),
		cmocka_unit_test_setup_teardown(test_dispatch_across_processes, h_setup,
						h_teardown),
		cmocka_unit_test_setup_teardown(test_async_notify_returns_first, h_setup,
						h_teardown),
		cmocka_unit_test_setup_teardown(test_dispatch_after_partial_get, h_setup,
						h_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
