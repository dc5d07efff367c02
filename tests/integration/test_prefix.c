/* SPDX-License-Identifier: MIT */
/*
 * test_prefix.c - prefix filters (SHN_SUBSCRIBE_PREFIX, docs/design.md,
 * "Filters"), a subscriber and a publisher on separate connections to a
 * real broker.  Run as _epoll and _uring (direct path on: after each
 * pair's first routed batch the publisher matches the prefixes itself, in
 * the filter table) and _brokered (the broker's index matches them):
 *
 *   test_binary_prefix     a prefix with zero bytes in it takes exactly the
 *                          keys that start with it (itself included, a
 *                          256-byte key too), not a shorter key nor one
 *                          that differs in a byte, batch after batch and
 *                          in one mixed batch; each once, with its conn
 *   test_overlapping       "a", "ab", "abc" on one port: one delivery per
 *                          note, conn the oldest filter that takes it; on a
 *                          second port with "abc" oldest and an exact "ab"
 *                          among them the conn follows each note's oldest
 *   test_mixed_pull        exact, prefix and any-key filters on one port,
 *                          masks included: conn is the oldest filter that
 *                          takes each note (rule 15), each note once
 *   test_mixed_sinks       advise sinks with an exact, two prefix and an
 *                          any-key filter: each sink gets the subset its
 *                          own filter takes, with its conn and its own
 *                          batch_index / batch_count; a keyed gap report
 *                          reaches the sinks whose filter takes its key,
 *                          whatever their masks
 *   test_empty_prefix      an empty prefix (key NULL, or key_len 0) takes
 *                          every key; the arguments refused (-EINVAL)
 *   test_unsubscribe       unsubscribing a prefix filter: its
 *                          SHN_EV_HANDLE_CLOSE, nothing after it (an exact
 *                          filter of another port on a key under it goes
 *                          on)
 *   test_memo_follows_filters  a key published again after a filter was
 *                          added or removed reaches what the filters now
 *                          say (the broker, the publisher's table lookups
 *                          and the reader each remember a key's matches),
 *                          and its conn follows its event
 */
#define _GNU_SOURCE
#include "harness.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

struct pk {
	const char *key;
	size_t len;
};

#define PK(s) { s, sizeof(s) - 1 }

/* Publish one note of key k, event ev, data one byte d, as its own batch. */
static void pub1(shn_client *c, const void *k, size_t len, uint32_t ev, uint8_t d)
{
	static uint8_t data[256];
	shn_notification n = { .event = ev, .key = k, .key_len = (uint16_t)len, .data = data,
			       .data_len = 1 };

	data[d] = d;
	n.data = &data[d];
	assert_int_equal(shn_notify(c, &n, 1, 0), 0);
}

/* The next note on p (waiting), one at a time. */
static void next_note(shn_port *p, shn_notification *out)
{
	assert_int_equal(h_get(p, out, 1), 1);
}

static void expect_key(shn_port *p, const void *k, size_t len, uint8_t d, shn_conn conn)
{
	shn_notification n;

	next_note(p, &n);
	if (n.key_len != len || memcmp(n.key, k, len) != 0 || n.data_len != 1 ||
	    *(const uint8_t *)n.data != d || n.conn != conn)
		fail_msg("got key of %u bytes, data %u, conn %llu, event %#x; expected %zu bytes, "
			 "data %u, conn %llu", n.key_len,
			 n.data_len ? (unsigned)*(const uint8_t *)n.data : 999u,
			 (unsigned long long)n.conn, n.event, len, d, (unsigned long long)conn);
	assert_int_equal(n.event & SHN_EV_SYSTEM, 0);
}

static void expect_nothing(shn_port *p)
{
	shn_notification out[4];
	int n = shn_port_get(p, out, 4, 200);

	if (n > 0)
		fail_msg("%d more notes (first key of %u bytes, event %#x)", n, out[0].key_len,
			 out[0].event);
	assert_int_equal(n, -ETIMEDOUT);
}

static shn_port *port_prefix(shn_client *c, const void *k, size_t len, shn_conn *conn)
{
	shn_port *p;

	assert_int_equal(shn_port_open(c, NULL, &p), 0);
	assert_int_equal(shn_subscribe(p, k, len, SHN_EV_ALL, SHN_SUBSCRIBE_PREFIX, conn), 0);
	return p;
}

/* ---- binary prefixes ------------------------------------------------------ */

static void test_binary_prefix(void **state)
{
	struct harness *h = *state;
	static const char prefix[] = "\0a\0";
	char longkey[256];
	const struct pk keys[] = {
		PK("\0a\0"),       /* the prefix itself: taken */
		PK("\0a"),         /* shorter: not */
		PK("\0a\0\0"),     /* taken */
		PK("\0b\0\0"),     /* differs in a byte: not */
		PK("\0a\0zz"),     /* taken */
		PK("\0a\1"),       /* not */
		PK("a\0"),         /* not */
		{ longkey, sizeof(longkey) },   /* taken */
	};
	const bool taken[] = { true, false, true, false, true, false, false, true };
	const size_t nk = sizeof(keys) / sizeof(keys[0]);
	shn_conn conn;

	memset(longkey, 0, sizeof(longkey));
	memcpy(longkey, prefix, 3);
	longkey[255] = 'z';
	shn_client *c = h_connect(h);
	shn_port *p = port_prefix(c, prefix, 3, &conn);
	shn_client *pub = h_connect(h);

	/* round 0 goes through the broker (the pair's first batch); the
	 * rounds after it directly, where the path is on */
	for (int round = 0; round < 4; round++) {
		for (size_t i = 0; i < nk; i++)
			pub1(pub, keys[i].key, keys[i].len, 1, (uint8_t)(round * 16 + i));
		for (size_t i = 0; i < nk; i++)
			if (taken[i])
				expect_key(p, keys[i].key, keys[i].len, (uint8_t)(round * 16 + i), conn);
		expect_nothing(p);
	}
	/* all in one batch: the port's batch holds only what it takes, in
	 * order */
	shn_notification batch[8];
	uint8_t d[8];
	for (size_t i = 0; i < nk; i++) {
		d[i] = (uint8_t)(100 + i);
		batch[i] = (shn_notification){ .event = 1, .key = keys[i].key,
					       .key_len = (uint16_t)keys[i].len, .data = &d[i],
					       .data_len = 1 };
	}
	assert_int_equal(shn_notify(pub, batch, nk, 0), 0);
	shn_notification out[8];
	assert_int_equal(h_get(p, out, 8), 4);
	for (size_t i = 0, k = 0; i < nk; i++) {
		if (!taken[i])
			continue;
		assert_int_equal(out[k].key_len, keys[i].len);
		assert_memory_equal(out[k].key, keys[i].key, keys[i].len);
		assert_int_equal(*(const uint8_t *)out[k].data, 100 + i);
		assert_int_equal(out[k].conn, conn);
		assert_int_equal(out[k].batch_index, k);
		assert_int_equal(out[k].batch_count, 4);
		k++;
	}
	expect_nothing(p);
	h_disconnect(pub);
	h_disconnect(c);
}

/* ---- overlapping prefixes ------------------------------------------------- */

static void test_overlapping(void **state)
{
	struct harness *h = *state;
	shn_conn c1, c2, c3, d1, d2, d3;
	shn_port *p, *q;
	const struct pk keys[] = { PK("abcd"), PK("abc"), PK("ab"), PK("a"), PK("b"), PK("abx"),
				   PK("ax") };
	const size_t nk = sizeof(keys) / sizeof(keys[0]);

	shn_client *c = h_connect(h);
	assert_int_equal(shn_port_open(c, NULL, &p), 0);
	assert_int_equal(shn_subscribe(p, "a", 1, SHN_EV_ALL, SHN_SUBSCRIBE_PREFIX, &c1), 0);
	assert_int_equal(shn_subscribe(p, "ab", 2, SHN_EV_ALL, SHN_SUBSCRIBE_PREFIX, &c2), 0);
	assert_int_equal(shn_subscribe(p, "abc", 3, SHN_EV_ALL, SHN_SUBSCRIBE_PREFIX, &c3), 0);
	assert_int_equal(shn_port_open(c, NULL, &q), 0);
	assert_int_equal(shn_subscribe(q, "abc", 3, SHN_EV_ALL, SHN_SUBSCRIBE_PREFIX, &d1), 0);
	assert_int_equal(shn_subscribe(q, "a", 1, SHN_EV_ALL, SHN_SUBSCRIBE_PREFIX, &d2), 0);
	assert_int_equal(shn_subscribe(q, "ab", 2, SHN_EV_ALL, 0, &d3), 0);   /* exact */
	assert_true(c1 < c2 && c2 < c3 && c3 < d1 && d1 < d2 && d2 < d3);
	shn_client *pub = h_connect(h);

	for (int round = 0; round < 3; round++) {
		for (size_t i = 0; i < nk; i++)
			pub1(pub, keys[i].key, keys[i].len, 1, (uint8_t)(round * 16 + i));
		/* p: every key starting with "a", once, conn of "a" */
		for (size_t i = 0; i < nk; i++)
			if (keys[i].key[0] == 'a')
				expect_key(p, keys[i].key, keys[i].len, (uint8_t)(round * 16 + i), c1);
		expect_nothing(p);
		/* q: "abc..." by "abc" (oldest), the rest by "a" (older than
		 * the exact "ab") */
		for (size_t i = 0; i < nk; i++) {
			if (keys[i].key[0] != 'a')
				continue;
			expect_key(q, keys[i].key, keys[i].len, (uint8_t)(round * 16 + i),
				   keys[i].len >= 3 && memcmp(keys[i].key, "abc", 3) == 0 ? d1 : d2);
		}
		expect_nothing(q);
	}
	h_disconnect(pub);
	h_disconnect(c);
}

/* ---- exact, prefix and any-key on one port -------------------------------- */

static void test_mixed_pull(void **state)
{
	struct harness *h = *state;
	shn_conn c1, c2, c3, c4, d1, d2;
	shn_port *p, *q;

	shn_client *c = h_connect(h);
	assert_int_equal(shn_port_open(c, NULL, &p), 0);
	assert_int_equal(shn_subscribe(p, "k1", 2, SHN_EV_ALL, 0, &c1), 0);
	assert_int_equal(shn_subscribe(p, "k", 1, SHN_EV_ALL, SHN_SUBSCRIBE_PREFIX, &c2), 0);
	assert_int_equal(shn_subscribe(p, "m", 1, 0x2, SHN_SUBSCRIBE_PREFIX, &c3), 0);
	assert_int_equal(shn_subscribe(p, NULL, 0, 0x4, 0, &c4), 0);
	assert_int_equal(shn_port_open(c, NULL, &q), 0);
	assert_int_equal(shn_subscribe(q, NULL, 0, SHN_EV_ALL, 0, &d1), 0);
	assert_int_equal(shn_subscribe(q, "k", 1, SHN_EV_ALL, SHN_SUBSCRIBE_PREFIX, &d2), 0);
	shn_client *pub = h_connect(h);

	for (int round = 0; round < 3; round++) {
		uint8_t b = (uint8_t)(round * 16);

		pub1(pub, "k1", 2, 1, b + 0);    /* p: exact (oldest) */
		pub1(pub, "k2", 2, 1, b + 1);    /* p: prefix "k" */
		pub1(pub, "k", 1, 1, b + 2);     /* p: prefix "k" (the prefix itself) */
		pub1(pub, "k1x", 3, 1, b + 3);   /* p: prefix "k" (exact "k1" does not take it) */
		pub1(pub, "m1", 2, 1, b + 4);    /* p: nothing (mask 0x2) */
		pub1(pub, "m1", 2, 2, b + 5);    /* p: prefix "m" */
		pub1(pub, "k1", 2, 4, b + 6);    /* p: exact k1 (older than the any-key) */
		pub1(pub, "z", 1, 4, b + 7);     /* p: any-key (mask 0x4) */
		pub1(pub, "z", 1, 1, b + 8);     /* p: nothing */
		expect_key(p, "k1", 2, b + 0, c1);
		expect_key(p, "k2", 2, b + 1, c2);
		expect_key(p, "k", 1, b + 2, c2);
		expect_key(p, "k1x", 3, b + 3, c2);
		expect_key(p, "m1", 2, b + 5, c3);
		expect_key(p, "k1", 2, b + 6, c1);
		expect_key(p, "z", 1, b + 7, c4);
		expect_nothing(p);
		/* q: the any-key filter is the oldest: every note by it */
		const char *qk[] = { "k1", "k2", "k", "k1x", "m1", "m1", "k1", "z", "z" };
		for (int i = 0; i < 9; i++)
			expect_key(q, qk[i], strlen(qk[i]), b + (uint8_t)i, d1);
		expect_nothing(q);
	}
	h_disconnect(pub);
	h_disconnect(c);
}

/* ---- advise sinks --------------------------------------------------------- */

struct sink_rec {
	int sink;
	char key[8];
	uint16_t key_len;
	uint32_t event;
	shn_conn conn;
	uint32_t index, count;
};

static struct sink_rec recs[64];
static int nrecs;

static unsigned sink(void *ctx, const shn_notification *b, size_t n)
{
	for (size_t i = 0; i < n && nrecs < 64; i++) {
		struct sink_rec *r = &recs[nrecs++];

		r->sink = (int)(intptr_t)ctx;
		r->key_len = b[i].key_len;
		memcpy(r->key, b[i].key, b[i].key_len < 8 ? b[i].key_len : 8);
		r->event = b[i].event;
		r->conn = b[i].conn;
		r->index = b[i].batch_index;
		r->count = b[i].batch_count;
	}
	return SHN_CALLBACK_CONTINUE;
}

/* Dispatch until want records were logged (bounded), then a little more
 * to see that nothing else comes. */
static void dispatch_until(shn_port *p, int want)
{
	int64_t end = h_now_ms() + H_TIMEOUT_MS;

	while (nrecs < want && h_now_ms() < end) {
		int r = shn_port_dispatch(p, 100);
		assert_true(r >= 0 || r == -ETIMEDOUT);
	}
	assert_int_equal(shn_port_dispatch(p, 200), -ETIMEDOUT);
	assert_int_equal(nrecs, want);
}

static void expect_rec(int i, int sinkno, const char *key, uint32_t event, shn_conn conn,
		       uint32_t index, uint32_t count)
{
	const struct sink_rec *r = &recs[i];

	if (r->sink != sinkno || r->key_len != strlen(key) || memcmp(r->key, key, r->key_len) ||
	    r->event != event || r->conn != conn || r->index != index || r->count != count)
		fail_msg("record %d: sink %d key %.*s event %#x conn %llu [%u/%u]; expected sink %d "
			 "key %s event %#x conn %llu [%u/%u]", i, r->sink, r->key_len, r->key,
			 r->event, (unsigned long long)r->conn, r->index, r->count, sinkno, key,
			 event, (unsigned long long)conn, index, count);
}

static void test_mixed_sinks(void **state)
{
	struct harness *h = *state;
	shn_conn a, b, c_, d;
	shn_port *p;

	shn_client *c = h_connect(h);
	assert_int_equal(shn_port_open(c, NULL, &p), 0);
	/* sinks run oldest first: A, B, C, D */
	assert_int_equal(shn_advise(p, "k1", 2, SHN_EV_ALL, 0, sink, (void *)1, &a), 0);
	assert_int_equal(shn_advise(p, "k", 1, SHN_EV_ALL, SHN_SUBSCRIBE_PREFIX, sink, (void *)2,
				    &b), 0);
	assert_int_equal(shn_advise(p, NULL, 0, SHN_EV_ALL, 0, sink, (void *)3, &c_), 0);
	assert_int_equal(shn_advise(p, "k1", 2, 0x2, SHN_SUBSCRIBE_PREFIX, sink, (void *)4, &d), 0);
	shn_client *pub = h_connect(h);

	for (int round = 0; round < 3; round++) {
		shn_notification batch[5] = {
			{ .event = 1, .key = "k1", .key_len = 2 },
			{ .event = 1, .key = "k2", .key_len = 2 },
			{ .event = 1, .key = "z", .key_len = 1 },
			{ .event = 1, .key = "k", .key_len = 1 },
			{ .event = 2, .key = "k1x", .key_len = 3 },
		};

		nrecs = 0;
		assert_int_equal(shn_notify(pub, batch, 5, 0), 0);
		dispatch_until(p, 1 + 4 + 5 + 1);
		expect_rec(0, 1, "k1", 1, a, 0, 1);
		expect_rec(1, 2, "k1", 1, b, 0, 4);
		expect_rec(2, 2, "k2", 1, b, 1, 4);
		expect_rec(3, 2, "k", 1, b, 2, 4);
		expect_rec(4, 2, "k1x", 2, b, 3, 4);
		expect_rec(5, 3, "k1", 1, c_, 0, 5);
		expect_rec(6, 3, "k2", 1, c_, 1, 5);
		expect_rec(7, 3, "z", 1, c_, 2, 5);
		expect_rec(8, 3, "k", 1, c_, 3, 5);
		expect_rec(9, 3, "k1x", 2, c_, 4, 5);
		expect_rec(10, 4, "k1x", 2, d, 0, 1);
	}
	/* a keyed gap report: to the sinks whose filter takes its key,
	 * whatever their masks */
	nrecs = 0;
	assert_int_equal(shn_notify_gap(pub, "k2", 2, 7, 0), 0);
	dispatch_until(p, 2);
	expect_rec(0, 2, "k2", SHN_EV_OVERFLOW, b, 0, 1);
	expect_rec(1, 3, "k2", SHN_EV_OVERFLOW, c_, 0, 1);
	nrecs = 0;
	assert_int_equal(shn_notify_gap(pub, "k1zz", 4, 3, 0), 0);
	dispatch_until(p, 3);
	expect_rec(0, 2, "k1zz", SHN_EV_OVERFLOW, b, 0, 1);
	expect_rec(1, 3, "k1zz", SHN_EV_OVERFLOW, c_, 0, 1);
	expect_rec(2, 4, "k1zz", SHN_EV_OVERFLOW, d, 0, 1);
	nrecs = 0;
	assert_int_equal(shn_notify_gap(pub, "k1", 2, 3, 0), 0);
	dispatch_until(p, 4);
	expect_rec(0, 1, "k1", SHN_EV_OVERFLOW, a, 0, 1);
	expect_rec(1, 2, "k1", SHN_EV_OVERFLOW, b, 0, 1);
	expect_rec(2, 3, "k1", SHN_EV_OVERFLOW, c_, 0, 1);
	expect_rec(3, 4, "k1", SHN_EV_OVERFLOW, d, 0, 1);
	h_disconnect(pub);
	h_disconnect(c);
}

/* ---- the empty prefix, and arguments -------------------------------------- */

static void test_empty_prefix(void **state)
{
	struct harness *h = *state;
	shn_conn c1, c2, bad;
	shn_port *p, *q;

	shn_client *c = h_connect(h);
	assert_int_equal(shn_port_open(c, NULL, &p), 0);
	assert_int_equal(shn_port_open(c, NULL, &q), 0);
	assert_int_equal(shn_subscribe(p, NULL, 0, SHN_EV_ALL, SHN_SUBSCRIBE_PREFIX, &c1), 0);
	assert_int_equal(shn_subscribe(q, "ignored", 0, SHN_EV_ALL, SHN_SUBSCRIBE_PREFIX, &c2), 0);
	/* refused: a monitor has no prefix; a key without its length; a
	 * prefix longer than a key can be; a flag nobody defined */
	assert_int_equal(shn_subscribe(q, NULL, 0, SHN_EV_ALL,
				       SHN_SUBSCRIBE_PREFIX | SHN_SUBSCRIBE_MONITOR, &bad), -EINVAL);
	assert_int_equal(shn_subscribe(q, NULL, 3, SHN_EV_ALL, SHN_SUBSCRIBE_PREFIX, &bad), -EINVAL);
	static const char big[SHN_KEY_MAX + 1];
	assert_int_equal(shn_subscribe(q, big, sizeof(big), SHN_EV_ALL, SHN_SUBSCRIBE_PREFIX, &bad),
			 -EINVAL);
	assert_int_equal(shn_subscribe(q, "x", 1, SHN_EV_ALL, 2u, &bad), -EINVAL);
	assert_int_equal(shn_subscribe(q, "x", 1, 0, SHN_SUBSCRIBE_PREFIX, &bad), -EINVAL);
	shn_client *pub = h_connect(h);

	for (int round = 0; round < 3; round++) {
		uint8_t b = (uint8_t)(round * 16);

		pub1(pub, "anything", 8, 1, b);
		pub1(pub, "\0", 1, 1, b + 1);
		expect_key(p, "anything", 8, b, c1);
		expect_key(p, "\0", 1, b + 1, c1);
		expect_key(q, "anything", 8, b, c2);
		expect_key(q, "\0", 1, b + 1, c2);
	}
	expect_nothing(p);
	expect_nothing(q);
	h_disconnect(pub);
	h_disconnect(c);
}

/* ---- unsubscribe ---------------------------------------------------------- */

static void test_unsubscribe(void **state)
{
	struct harness *h = *state;
	shn_conn conn, other;
	shn_notification n;

	shn_client *c = h_connect(h);
	shn_port *p = port_prefix(c, "u/", 2, &conn);
	shn_port *w = h_port_sub(c, 0, "u/1", 3, SHN_EV_ALL, &other);   /* keeps the key watched */
	shn_client *pub = h_connect(h);

	for (int i = 0; i < 3; i++) {
		pub1(pub, "u/1", 3, 1, (uint8_t)i);
		expect_key(p, "u/1", 3, (uint8_t)i, conn);
		expect_key(w, "u/1", 3, (uint8_t)i, other);
	}
	pub1(pub, "u/2", 3, 1, 9);
	expect_key(p, "u/2", 3, 9, conn);
	assert_int_equal(shn_unsubscribe(c, conn), 0);
	pub1(pub, "u/1", 3, 1, 10);   /* after: not to p */
	pub1(pub, "u/3", 3, 1, 11);
	next_note(p, &n);
	assert_int_equal(n.event, SHN_EV_HANDLE_CLOSE);
	assert_int_equal(n.conn, conn);
	expect_nothing(p);
	expect_key(w, "u/1", 3, 10, other);
	expect_nothing(w);
	assert_int_equal(shn_unsubscribe(c, conn), -ENOENT);
	h_disconnect(pub);
	h_disconnect(c);
}

/* ---- what a key matched is remembered, and forgotten on a change -------- */

/* Subscribe p to 40 exact keys nobody publishes: with that many filters
 * the port's reader of direct rings keeps a memo of the conns it found. */
static void pad_filters(shn_port *p)
{
	shn_conn pad;
	char k[16];

	for (int i = 0; i < 40; i++) {
		snprintf(k, sizeof(k), "pad/%d", i);
		assert_int_equal(shn_subscribe(p, k, strlen(k), SHN_EV_ALL, 0, &pad), 0);
	}
}

static void test_memo_follows_filters(void **state)
{
	struct harness *h = *state;
	shn_conn ca, cb, c1, c2;
	shn_notification n;
	shn_client *c = h_connect(h);
	shn_client *pub = h_connect(h);
	shn_port *a = port_prefix(c, "m/ab", 4, &ca);
	shn_port *b, *d;

	pad_filters(a);
	for (int i = 0; i < 3; i++) {
		pub1(pub, "m/ab1", 5, 1, (uint8_t)i);
		expect_key(a, "m/ab1", 5, (uint8_t)i, ca);
	}
	/* a prefix added on another port takes the key at once */
	assert_int_equal(shn_port_open(c, NULL, &b), 0);
	assert_int_equal(shn_subscribe(b, "m/a", 3, SHN_EV_ALL, SHN_SUBSCRIBE_PREFIX, &cb), 0);
	for (int i = 10; i < 13; i++) {
		pub1(pub, "m/ab1", 5, 1, (uint8_t)i);
		expect_key(a, "m/ab1", 5, (uint8_t)i, ca);
		expect_key(b, "m/ab1", 5, (uint8_t)i, cb);
	}
	/* and once it is removed, the key reaches a only */
	assert_int_equal(shn_unsubscribe(c, cb), 0);
	pub1(pub, "m/ab1", 5, 1, 20);
	expect_key(a, "m/ab1", 5, 20, ca);
	next_note(b, &n);
	assert_int_equal(n.event, SHN_EV_HANDLE_CLOSE);
	expect_nothing(b);

	/* the conn of the same key follows its event: the oldest filter
	 * that takes event 1 is c1, event 2 only c2 takes */
	assert_int_equal(shn_port_open(c, NULL, &d), 0);
	assert_int_equal(shn_subscribe(d, "m/", 2, 0x1, SHN_SUBSCRIBE_PREFIX, &c1), 0);
	assert_int_equal(shn_subscribe(d, "m/a", 3, 0x2, SHN_SUBSCRIBE_PREFIX, &c2), 0);
	pad_filters(d);
	for (int i = 0; i < 4; i++) {
		uint32_t ev = (i % 2) ? 0x2 : 0x1;

		pub1(pub, "m/ab1", 5, ev, (uint8_t)(30 + i));
		expect_key(a, "m/ab1", 5, (uint8_t)(30 + i), ca);
		expect_key(d, "m/ab1", 5, (uint8_t)(30 + i), ev == 0x1 ? c1 : c2);
	}
	expect_nothing(a);
	expect_nothing(d);
	h_disconnect(pub);
	h_disconnect(c);
}

int main(int argc, char **argv)
{
	h_parse_args(argc, argv);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_binary_prefix, h_setup, h_teardown),
		cmocka_unit_test_setup_teardown(test_overlapping, h_setup, h_teardown),
		cmocka_unit_test_setup_teardown(test_mixed_pull, h_setup, h_teardown),
		cmocka_unit_test_setup_teardown(test_mixed_sinks, h_setup, h_teardown),
		cmocka_unit_test_setup_teardown(test_empty_prefix, h_setup, h_teardown),
		cmocka_unit_test_setup_teardown(test_unsubscribe, h_setup, h_teardown),
		cmocka_unit_test_setup_teardown(test_memo_follows_filters, h_setup, h_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
