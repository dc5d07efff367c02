/* SPDX-License-Identifier: MIT */
/*
 * test_backpressure.c - SHN_OVERFLOW_BLOCK (a port that asks for
 * back-pressure loses nothing; docs/design.md, "Overflow", rules 5 and 7) and
 * SHN_NOTIFY_NONBLOCK on a full publish ring (rule 6: -EAGAIN, never part of
 * a batch; at once, also while another thread of the client waits for room).
 */
#define _GNU_SOURCE
#include "harness.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#define TOTAL 10000u
#define BATCH 10u

struct pub_ctx {
	const char *sock;
	uint32_t first, count, batch;
};

static int publisher(void *arg)
{
	struct pub_ctx *x = arg;
	shn_client *c = NULL;
	shn_notification b[64];
	uint32_t v[64];

	CHILD_CHECK_EQ(shn_connect(x->sock, &c), 0);
	for (uint32_t i = 0; i < x->count; i += x->batch) {
		uint32_t n = x->batch;
		for (uint32_t k = 0; k < n; k++) {
			v[k] = x->first + i + k;
			memset(&b[k], 0, sizeof(b[k]));
			b[k].event = 1;
			b[k].key = "o";
			b[k].key_len = 1;
			b[k].data = &v[k];
			b[k].data_len = sizeof(v[k]);
		}
		CHILD_CHECK_EQ(shn_notify(c, b, n, 0), 0);
	}
	shn_disconnect(c);
	return 0;
}

/* SHN_OVERFLOW_BLOCK: back-pressure instead of loss.  The subscriber reads
 * nothing while the publisher publishes everything (it fits the publisher's
 * ring) and exits; the broker holds what does not fit the port (rule 9: the
 * batches are still routed), and the subscriber then gets all of it, in
 * order, with no OVERFLOW. */
static void test_backpressure(void **state)
{
	struct harness *h = *state;
	struct pub_ctx x = { .sock = h->sock, .first = 0, .count = 2000, .batch = BATCH };
	shn_port_options o = { .capacity = 4096, .overflow = SHN_OVERFLOW_BLOCK };
	shn_notification out[64];
	shn_port *p = NULL;
	shn_conn conn = 0;

	shn_client *c = h_connect(h);
	assert_int_equal(shn_port_open(c, &o, &p), 0);
	assert_int_equal(shn_subscribe(p, "o", 1, SHN_EV_ALL, 0, &conn), 0);
	pid_t pid = h_fork(publisher, &x);
	h_wait_ok(pid, H_CHILD_TIMEOUT_MS);

	uint64_t seq = 0;
	while (seq < 2000) {
		int n = h_get(p, out, 64);
		for (int i = 0; i < n; i++) {
			if (out[i].event == SHN_EV_OVERFLOW) {
				uint64_t lost = 0;
				if (out[i].data_len == 8)
					memcpy(&lost, out[i].data, 8);
				fail_msg("SHN_OVERFLOW_BLOCK port reported %llu lost after seq %llu",
					 (unsigned long long)lost, (unsigned long long)seq);
			}
			uint32_t v;
			assert_int_equal(out[i].data_len, 4);
			memcpy(&v, out[i].data, 4);
			assert_int_equal(out[i].seq, ++seq);
			assert_int_equal(v, seq - 1);
		}
	}
	assert_int_equal(shn_port_get(p, out, 64, 0), -ETIMEDOUT);
	h_disconnect(c);
}

/* Rule 6: a full publish ring makes SHN_NOTIFY_NONBLOCK return -EAGAIN,
 * never writing part of a batch.  The ring fills behind a blocked port
 * nobody reads (back-pressure). */
static void test_nonblock_full_ring(void **state)
{
	struct harness *h = *state;
	shn_port_options o = { .capacity = 4096, .overflow = SHN_OVERFLOW_BLOCK };
	static uint8_t data[500];   /* 3 of them: a record under half the 4096-byte port */
	shn_notification out[64];
	shn_port *p = NULL;
	shn_conn conn = 0;

	shn_client *sub = h_connect(h);
	shn_client *pub = h_connect(h);
	assert_int_equal(shn_port_open(sub, &o, &p), 0);
	assert_int_equal(shn_subscribe(p, "nb", 2, SHN_EV_ALL, 0, &conn), 0);
	uint32_t accepted = 0;
	int r = 0;
	/* 1 MiB publish ring, ~3 KiB a batch: -EAGAIN long before 100000 */
	for (uint32_t i = 0; i < 100000; i++) {
		shn_notification b[3];
		for (int k = 0; k < 3; k++) {
			b[k] = (shn_notification){ .event = 1, .key = "nb", .key_len = 2,
						   .data = data, .data_len = sizeof(data) };
		}
		memcpy(data, &i, sizeof(i));
		r = shn_notify(pub, b, 3, SHN_NOTIFY_NONBLOCK);
		if (r != 0)
			break;
		accepted++;
	}
	if (r != -EAGAIN)
		fail_msg("shn_notify(NONBLOCK) on a full ring: %d (%s) after %u batches, "
			 "expected -EAGAIN", r, shn_strerror(r), accepted);
	/* now read everything: exactly the accepted batches, whole */
	uint32_t got = 0;
	while (got < accepted) {
		int n = h_get(p, out, 64);
		if (out[0].event == SHN_EV_OVERFLOW)
			fail_msg("SHN_OVERFLOW_BLOCK port reported a loss after %u batches", got);
		assert_int_equal(n, 3);
		uint32_t v;
		memcpy(&v, out[0].data, sizeof(v));
		assert_int_equal(v, got);
		assert_int_equal(out[0].batch_count, 3);
		assert_int_equal(out[2].seq, 3ull * got + 3);
		got++;
	}
	assert_int_equal(shn_port_get(p, out, 64, 0), -ETIMEDOUT);
	/* room again: a non-blocking publish goes through */
	shn_notification one = { .event = 1, .key = "nb", .key_len = 2, .data = "z",
				 .data_len = 1 };
	int64_t end = h_now_ms() + H_TIMEOUT_MS;
	while ((r = shn_notify(pub, &one, 1, SHN_NOTIFY_NONBLOCK)) == -EAGAIN &&
	       h_now_ms() < end)
		;
	assert_int_equal(r, 0);
	assert_int_equal(h_get(p, out, 64), 1);
	h_disconnect(pub);
	h_disconnect(sub);
}

/* ---- who waits under SHN_OVERFLOW_BLOCK ---------------------------------- */

#define HELD_BATCHES 2000   /* 3 x 500 bytes each: ~3 MiB, more than the
			     * publisher's 1 MiB ring plus the 4 KiB port */
#define FREE_TOTAL 10000u

struct held {
	_Atomic int done_a;         /* publisher A: batches accepted */
	_Atomic int finished_a, finished_b;
};

struct held_ctx {
	const char *sock;
	struct held *sh;
};

/* A feeds the blocking port ("held") only. */
static int child_held(void *arg)
{
	struct held_ctx *x = arg;
	static uint8_t data[500];
	shn_client *c = NULL;

	CHILD_CHECK_EQ(shn_connect(x->sock, &c), 0);
	for (int i = 0; i < HELD_BATCHES; i++) {
		shn_notification b[3];
		for (int k = 0; k < 3; k++)
			b[k] = (shn_notification){ .event = 1, .key = "held", .key_len = 4,
						   .data = data, .data_len = sizeof(data) };
		memcpy(data, &i, sizeof(i));
		CHILD_CHECK_EQ(shn_notify(c, b, 3, 0), 0);   /* waits for room */
		atomic_store(&x->sh->done_a, i + 1);
	}
	atomic_store(&x->sh->finished_a, 1);
	shn_disconnect(c);
	return 0;
}

/* B feeds an unrelated port ("free") only. */
static int child_free(void *arg)
{
	struct held_ctx *x = arg;
	struct pub_ctx p = { .sock = x->sock, .first = 0, .count = FREE_TOTAL, .batch = BATCH };
	shn_client *c = NULL;
	shn_notification b[BATCH];
	uint32_t v[BATCH];

	CHILD_CHECK_EQ(shn_connect(p.sock, &c), 0);
	for (uint32_t i = 0; i < p.count; i += p.batch) {
		for (uint32_t k = 0; k < p.batch; k++) {
			v[k] = i + k;
			b[k] = (shn_notification){ .event = 1, .key = "free", .key_len = 4,
						   .data = &v[k], .data_len = sizeof(v[k]) };
		}
		CHILD_CHECK_EQ(shn_notify(c, b, p.batch, 0), 0);
	}
	atomic_store(&x->sh->finished_b, 1);
	shn_disconnect(c);
	return 0;
}

/* SHN_OVERFLOW_BLOCK makes the publisher feeding the full port
 * wait, and nobody else: while it waits (asleep, with most of its batches
 * not accepted), another publisher's 10,000 notifications all reach an
 * unrelated port, and the broker answers control requests.  Then the held
 * port is read and everything arrives, in order, nothing lost. */
static void test_block_waits_only_its_publishers(void **state)
{
	struct harness *h = *state;
	struct held *sh = h_shared(sizeof(*sh));
	struct held_ctx x = { .sock = h->sock, .sh = sh };
	shn_port_options o = { .capacity = 4096, .overflow = SHN_OVERFLOW_BLOCK };
	shn_notification out[64];
	shn_port *held = NULL;
	shn_conn hc = 0, fc;

	shn_client *c = h_connect(h);
	assert_int_equal(shn_port_open(c, &o, &held), 0);
	assert_int_equal(shn_subscribe(held, "held", 4, SHN_EV_ALL, 0, &hc), 0);
	shn_client *c2 = h_connect(h);
	shn_port *fr = h_port_sub(c2, 0, "free", 4, SHN_EV_ALL, &fc);

	pid_t pa = h_fork(child_held, &x);
	/* A fills the port and its own ring, then sleeps in shn_notify
	 * (a heuristic for when to start B only; nothing depends on it) */
	int64_t end = h_now_ms() + H_TIMEOUT_MS;
	int last = -1;
	for (;;) {
		int now = atomic_load(&sh->done_a);
		if (now == last && h_proc_state(pa) == 'S')
			break;
		last = now;
		if (h_now_ms() > end)
			fail_msg("publisher A never settled (accepted %d, state %c)", now,
				 h_proc_state(pa));
		h_sleep_ms(50);
	}
	assert_false(atomic_load(&sh->finished_a));

	/* B's whole stream reaches the unrelated port meanwhile */
	pid_t pb = h_fork(child_free, &x);
	uint32_t got = 0;
	while (got < FREE_TOTAL) {
		int n = h_get(fr, out, 64);
		for (int i = 0; i < n; i++) {
			uint32_t v;
			if (out[i].event == SHN_EV_OVERFLOW)
				fail_msg("the unrelated port lost notifications after %u", got);
			memcpy(&v, out[i].data, sizeof(v));
			assert_int_equal(v, got);
			assert_int_equal(out[i].seq, got + 1);
			got++;
		}
	}
	h_wait_ok(pb, H_CHILD_TIMEOUT_MS);
	free(h_stats(c2));   /* the broker loop answers too */

	/* A is still held (it cannot have finished: its batches do not fit
	 * its ring plus the port), asleep in shn_notify */
	int held_at = atomic_load(&sh->done_a);
	assert_false(atomic_load(&sh->finished_a));
	assert_true(held_at < HELD_BATCHES);
	end = h_now_ms() + H_TIMEOUT_MS;
	while (h_proc_state(pa) != 'S') {
		if (h_now_ms() > end)
			fail_msg("held publisher not asleep (state %c)", h_proc_state(pa));
		h_sleep_ms(5);
	}

	/* read the held port: everything A published arrives, nothing lost */
	int batches = 0;
	while (batches < HELD_BATCHES) {
		int n = h_get(held, out, 64);
		if (out[0].event == SHN_EV_OVERFLOW)
			fail_msg("SHN_OVERFLOW_BLOCK port reported a loss after %d batches", batches);
		assert_int_equal(n, 3);
		int v;
		memcpy(&v, out[0].data, sizeof(v));
		assert_int_equal(v, batches);
		assert_int_equal(out[0].conn, hc);
		assert_int_equal(out[2].seq, 3ull * (uint64_t)batches + 3);
		batches++;
	}
	h_wait_ok(pa, H_CHILD_TIMEOUT_MS);
	assert_true(atomic_load(&sh->finished_a));
	assert_int_equal(shn_port_get(held, out, 64, 0), -ETIMEDOUT);
	assert_int_equal(shn_port_get(fr, out, 64, 0), -ETIMEDOUT);
	fprintf(stderr, "publisher A held after %d of %d batches\n", held_at, HELD_BATCHES);
	h_disconnect(c2);
	h_disconnect(c);
}

/* ---- a thread waiting for room holds up nobody -------------------------- */

struct waiter {
	shn_client *c;
	_Atomic int started, done;
	int result;
};

static void *blocking_publish(void *arg)
{
	struct waiter *w = arg;
	static uint8_t data[500];
	shn_notification b[3];

	for (int k = 0; k < 3; k++)
		b[k] = (shn_notification){ .event = 1, .key = "nw", .key_len = 2, .data = data,
					   .data_len = sizeof(data) };
	atomic_store(&w->started, 1);
	w->result = shn_notify(w->c, b, 3, 0);   /* the ring is full: waits */
	atomic_store(&w->done, 1);
	return NULL;
}

struct fast {
	shn_client *c;
	_Atomic int done;
	int full, nobody, nobody_blocking;
	int64_t took_ms;
};

static void *fast_publishes(void *arg)
{
	struct fast *f = arg;
	shn_notification nw = { .event = 1, .key = "nw", .key_len = 2, .data = "x",
				.data_len = 1 };
	shn_notification nobody = { .event = 1, .key = "nobody", .key_len = 6 };
	int64_t t0 = h_now_ms();

	f->full = shn_notify(f->c, &nw, 1, SHN_NOTIFY_NONBLOCK);
	f->nobody = shn_notify(f->c, &nobody, 1, SHN_NOTIFY_NONBLOCK);
	f->nobody_blocking = shn_notify(f->c, &nobody, 1, 0);
	f->took_ms = h_now_ms() - t0;
	atomic_store(&f->done, 1);
	return NULL;
}

static bool fast_done(void *arg)
{
	return atomic_load(&((struct fast *)arg)->done) != 0;
}

static bool waiter_started(void *arg)
{
	return atomic_load(&((struct waiter *)arg)->started) != 0;
}

/* While one thread of a client waits for room in its full publish ring
 * (behind a SHN_OVERFLOW_BLOCK port nobody reads), another thread of the
 * same client publishes: with SHN_NOTIFY_NONBLOCK it gets -EAGAIN at once,
 * and a batch for a key nobody watches returns 0 at once, blocking or not.
 * (The waiting thread used to hold the client's publish lock while it
 * slept, so the others waited for it, NONBLOCK or not.) */
static void test_nonblock_while_another_waits(void **state)
{
	struct harness *h = *state;
	shn_port_options o = { .capacity = 4096, .overflow = SHN_OVERFLOW_BLOCK };
	static uint8_t data[500];
	shn_notification out[64];
	struct waiter w = { 0 };
	struct fast f = { 0 };
	pthread_t tw, tf;
	shn_port *p = NULL;
	shn_conn conn = 0;
	uint32_t accepted = 0;
	int r = 0;

	shn_client *sub = h_connect(h);
	shn_client *pub = h_connect(h);
	assert_int_equal(shn_port_open(sub, &o, &p), 0);
	assert_int_equal(shn_subscribe(p, "nw", 2, SHN_EV_ALL, 0, &conn), 0);
	/* fill the ring until it stays full: the broker, still routing into
	 * the port when the first -EAGAIN came, may free a little room */
	for (int settled = 0; !settled;) {
		uint32_t round = 0;
		r = 0;
		for (uint32_t i = 0; i < 100000 && r == 0; i++) {
			shn_notification b[3];
			for (int k = 0; k < 3; k++)
				b[k] = (shn_notification){ .event = 1, .key = "nw", .key_len = 2,
							   .data = data,
							   .data_len = sizeof(data) };
			r = shn_notify(pub, b, 3, SHN_NOTIFY_NONBLOCK);
			if (r == 0)
				round++;
		}
		assert_int_equal(r, -EAGAIN);
		accepted += round;
		settled = (round == 0);
		if (!settled)
			h_sleep_ms(50);
	}

	w.c = pub;
	f.c = pub;
	assert_int_equal(pthread_create(&tw, NULL, blocking_publish, &w), 0);
	assert_true(h_poll_until(waiter_started, &w, H_TIMEOUT_MS));
	h_sleep_ms(100);   /* well inside its wait by now */
	bool waited = !atomic_load(&w.done);
	assert_int_equal(pthread_create(&tf, NULL, fast_publishes, &f), 0);
	bool fast_returned = h_poll_until(fast_done, &f, 3000);

	/* read the port: room again, the waiter's batch goes in (and, before
	 * the fix, the fast publishes behind it) */
	uint32_t got = 0, want = accepted + 1;
	while (got < want) {
		int n = h_get(p, out, 64);
		if (out[0].event == SHN_EV_OVERFLOW)
			fail_msg("SHN_OVERFLOW_BLOCK port reported a loss");
		if (n == 3)
			got++;
	}
	pthread_join(tw, NULL);
	pthread_join(tf, NULL);
	assert_true(waited);
	assert_int_equal(w.result, 0);
	if (!fast_returned)
		fail_msg("shn_notify from a second thread did not return within 3 s while "
			 "the first waited for room (it took %lld ms, until the port was read)",
			 (long long)f.took_ms);
	assert_int_equal(f.full, -EAGAIN);
	assert_int_equal(f.nobody, 0);
	assert_int_equal(f.nobody_blocking, 0);
	assert_int_equal(shn_port_get(p, out, 64, 0), -ETIMEDOUT);
	h_disconnect(pub);
	h_disconnect(sub);
}

int main(int argc, char **argv)
{
	h_parse_args(argc, argv);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_backpressure, h_setup, h_teardown),
		cmocka_unit_test_setup_teardown(test_nonblock_full_ring, h_setup, h_teardown),
		cmocka_unit_test_setup_teardown(test_block_waits_only_its_publishers, h_setup,
						h_teardown),
		cmocka_unit_test_setup_teardown(test_nonblock_while_another_waits, h_setup,
						h_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
