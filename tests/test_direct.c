/* SPDX-License-Identifier: MIT */
/*
 * test_direct.c - unit tests of shm/direct.h: the reader's check of a
 * direct record (shn_direct_record_check), the filter table (the broker's
 * writer, the publisher's lookup, torn and hostile halves), the port map's
 * generation intervals and the HANDLE_CLOSE barrier check.
 *
 * Single process: the segments are heap blocks laid out as the broker lays
 * them out; the concurrent behaviour is the integration tests'.
 */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "shm/direct.h"
#include "shm/proto.h"

/* ---- records ---------------------------------------------------------- */

struct rec {
	alignas(8) uint8_t b[4096];
	uint32_t len;
	uint32_t run;   /* offset of the run notes are added to */
};

static void rec_start(struct rec *r, uint64_t batch_id, uint64_t gen)
{
	struct shn_direct_batch *h = (void *)r->b;

	memset(r->b, 0, sizeof(r->b));
	h->h.type = SHN_REC_DIRECT;
	h->batch_id = batch_id;
	h->time_ns = 1;
	h->gen = gen;
	r->len = sizeof(*h);
	r->run = 0;
	h->h.len = r->len;
}

/* Begin a run (no notes yet); returns its offset. */
static uint32_t rec_run(struct rec *r, uint32_t event, const char *key)
{
	struct shn_direct_batch *h = (void *)r->b;
	struct shn_direct_run *run = (void *)(r->b + r->len);
	uint32_t klen = (uint32_t)strlen(key);

	run->event = event;
	run->key_len = (uint16_t)klen;
	memcpy(run + 1, key, klen);
	r->run = r->len;
	r->len += shn_direct_run_size(klen);
	h->h.len = r->len;
	return r->run;
}

/* Add a note of data_len bytes (0xab) to the current run; returns the
 * offset of its length word. */
static uint32_t rec_item(struct rec *r, uint32_t data_len)
{
	struct shn_direct_batch *h = (void *)r->b;
	struct shn_direct_run *run = (void *)(r->b + r->run);
	struct shn_direct_item *it = (void *)(r->b + r->len);
	uint32_t off = r->len;

	it->data_len = data_len;
	memset(it + 1, 0xab, data_len);
	r->len += shn_direct_item_size(data_len);
	run->count++;
	h->count++;
	h->h.len = r->len;
	return off;
}

/* A run of one data length (SHN_DIRECT_RUN_SAME_LEN): n notes of dl bytes
 * (0xab), each in a zero-padded slot; returns the run's offset. */
static uint32_t rec_same(struct rec *r, uint32_t event, const char *key, uint32_t n,
			 uint32_t dl)
{
	struct shn_direct_batch *h = (void *)r->b;
	uint32_t off = rec_run(r, event, key);
	struct shn_direct_run *run = (void *)(r->b + off);

	for (uint32_t i = 0; i < n; i++) {
		memset(r->b + r->len, 0xab, dl);
		r->len += (uint32_t)SHN_ALIGN8(dl);
	}
	run->flags = SHN_DIRECT_RUN_SAME_LEN;
	run->data_len = dl;
	run->count = n;
	h->count += n;
	h->h.len = r->len;
	return off;
}

/* A run of one note; returns the run's offset. */
static uint32_t rec_note(struct rec *r, uint32_t event, const char *key, uint32_t data_len)
{
	uint32_t off = rec_run(r, event, key);

	rec_item(r, data_len);
	return off;
}

static const struct shn_direct_limits lim = {
	.max_key_len = SHN_KEY_MAX_WIRE, .max_data_len = 1024, .min_gen = 2,
};

static int check(struct rec *r, struct shn_direct_seen *seen)
{
	/* the validator gets a private copy, as the reader makes */
	uint8_t *copy = aligned_alloc(8, (r->len + 7) & ~7u);
	int rc;

	assert_non_null(copy);
	memcpy(copy, r->b, r->len);
	rc = shn_direct_record_check(copy, r->len, &lim, seen, NULL, NULL);
	free(copy);
	return rc;
}

/* Three runs, five notes: one run of three (data of 3, 0 and 17 bytes),
 * two of one. */
static void good(struct rec *r)
{
	rec_start(r, 10, 5);
	rec_run(r, 1, "alpha");
	rec_item(r, 3);
	rec_item(r, 0);
	rec_item(r, 17);
	rec_note(r, 6, "b", 0);
	rec_note(r, 0x0fffffff, "gamma.delta", 8);
}

static void test_record_good(void **state)
{
	struct rec r;
	struct shn_direct_seen seen = { 0, 0, 0 };

	(void)state;
	good(&r);
	assert_int_equal(check(&r, &seen), 5);
	assert_int_equal(seen.batch_id, 10);
	assert_int_equal(seen.gen, 5);
	/* the next batch, same gen, and one with a loss report */
	rec_start(&r, 11, 5);
	rec_note(&r, 2, "k", 1024);
	((struct shn_direct_batch *)(void *)r.b)->lost = SHN_DIRECT_LOST_MAX;
	assert_int_equal(check(&r, &seen), 1);
	assert_int_equal(seen.batch_id, 11);
	/* a full-size key */
	char key[SHN_KEY_MAX_WIRE + 1];
	memset(key, 'k', SHN_KEY_MAX_WIRE);
	key[SHN_KEY_MAX_WIRE] = 0;
	rec_start(&r, 12, 9);
	((struct shn_direct_batch *)(void *)r.b)->lost = SHN_DIRECT_LOST_MAX;   /* none since */
	rec_note(&r, 2, key, 0);
	assert_int_equal(check(&r, &seen), 1);
	assert_int_equal(seen.gen, 9);
	/* two runs of the same key and event one after the other: valid */
	rec_start(&r, 13, 9);
	((struct shn_direct_batch *)(void *)r.b)->lost = SHN_DIRECT_LOST_MAX;
	rec_note(&r, 2, "k", 1);
	rec_note(&r, 2, "k", 2);
	assert_int_equal(check(&r, &seen), 2);
}

/* Each bad record is refused, and *seen is left as it was. */
static void expect_bad(struct rec *r, uint32_t len)
{
	struct shn_direct_seen seen = { 3, 4, 0 };
	uint8_t *copy = aligned_alloc(8, 4096);

	assert_non_null(copy);
	memcpy(copy, r->b, sizeof(r->b) < 4096 ? sizeof(r->b) : 4096);
	assert_int_equal(shn_direct_record_check(copy, len, &lim, &seen, NULL, NULL), -EBADMSG);
	assert_int_equal(seen.batch_id, 3);
	assert_int_equal(seen.gen, 4);
	free(copy);
}

#define HDR(r) ((struct shn_direct_batch *)(void *)(r).b)
#define RUN(r, off) ((struct shn_direct_run *)(void *)((r).b + (off)))
#define ITEM(r, off) ((struct shn_direct_item *)(void *)((r).b + (off)))

static void test_record_bad_header(void **state)
{
	struct rec r;

	(void)state;
	good(&r);
	expect_bad(&r, sizeof(struct shn_direct_batch) - 8);       /* shorter than a header */
	expect_bad(&r, r.len - 8);                                 /* h.len != len */
	expect_bad(&r, r.len + 8);
	good(&r); HDR(r)->h.len = r.len - 1; expect_bad(&r, r.len - 1);   /* not a multiple of 8 */
	good(&r); HDR(r)->h.type = SHN_REC_DELIVERY; expect_bad(&r, r.len);
	good(&r); HDR(r)->h.type = SHN_REC_PAD; expect_bad(&r, r.len);
	good(&r); HDR(r)->h.flags = SHN_DEL_SYNC; expect_bad(&r, r.len);  /* SYNC never direct */
	good(&r); HDR(r)->sender_pid = 1; expect_bad(&r, r.len);  /* forged sender */
	good(&r); HDR(r)->sender_uid = 0; HDR(r)->sender_uid = 1000; expect_bad(&r, r.len);
	good(&r); HDR(r)->flags = 1; expect_bad(&r, r.len);       /* unknown flag */
	good(&r); HDR(r)->lost = SHN_DIRECT_LOST_MAX + 1; expect_bad(&r, r.len);
	good(&r); HDR(r)->count = 0; expect_bad(&r, r.len);
	/* lost counts all losses so far: it never goes back */
	{
		struct shn_direct_seen s0 = { 3, 4, 10 };
		good(&r); HDR(r)->lost = 9;
		assert_int_equal(check(&r, &s0), -EBADMSG);
		HDR(r)->lost = 10 + SHN_DIRECT_LOST_MAX + 1;
		assert_int_equal(check(&r, &s0), -EBADMSG);
		HDR(r)->lost = 10 + SHN_DIRECT_LOST_MAX;
		assert_int_equal(check(&r, &s0), 5);
		assert_int_equal(s0.lost, 10 + SHN_DIRECT_LOST_MAX);
	}
	good(&r); HDR(r)->count = 4; expect_bad(&r, r.len);       /* fewer than the runs hold */
	good(&r); HDR(r)->count = 6; expect_bad(&r, r.len);       /* more than the runs hold */
	good(&r); HDR(r)->count = UINT32_MAX; expect_bad(&r, r.len);
	/* batch_id must increase, gen must not decrease nor precede the ring */
	good(&r); HDR(r)->batch_id = 3; expect_bad(&r, r.len);
	good(&r); HDR(r)->batch_id = 2; expect_bad(&r, r.len);
	good(&r); HDR(r)->gen = 3; expect_bad(&r, r.len);        /* below seen.gen 4 */
	good(&r); HDR(r)->gen = 1;
	{
		struct shn_direct_seen fresh = { 0, 0, 0 };   /* below lim.min_gen 2 */
		assert_int_equal(check(&r, &fresh), -EBADMSG);
		HDR(r)->gen = 2;
		assert_int_equal(check(&r, &fresh), 5);
	}
}

static void test_record_bad_runs(void **state)
{
	struct rec r;
	uint32_t off, it;

	(void)state;
	/* every system bit, one at a time, alone and with an application bit */
	for (int bit = 28; bit < 32; bit++) {
		rec_start(&r, 10, 5);
		rec_note(&r, 1u << bit, "k", 0);
		expect_bad(&r, r.len);
		rec_start(&r, 10, 5);
		rec_note(&r, 1, "k", 0);
		rec_note(&r, (1u << bit) | 1u, "k", 0);
		expect_bad(&r, r.len);
	}
	/* a gap report (OVERFLOW with a count) is a broker-path note */
	rec_start(&r, 10, 5);
	rec_run(&r, SHN_EV_OVERFLOW_WIRE, "k");
	it = rec_item(&r, 8);
	memset(r.b + it + 8, 0, 8);
	r.b[it + 8 + 1] = 7;
	expect_bad(&r, r.len);
	/* event 0 */
	rec_start(&r, 10, 5); rec_note(&r, 0, "k", 0); expect_bad(&r, r.len);
	/* key too long for the broker's limit, key_len 0 */
	{
		struct shn_direct_limits small = lim;
		struct shn_direct_seen seen = { 0, 0, 0 };

		small.max_key_len = 4;
		rec_start(&r, 10, 5); rec_note(&r, 1, "abcde", 0);
		assert_int_equal(shn_direct_record_check(r.b, r.len, &small, &seen, NULL, NULL),
				 -EBADMSG);
		rec_start(&r, 10, 5); rec_note(&r, 1, "abcd", 0);
		assert_int_equal(shn_direct_record_check(r.b, r.len, &small, &seen, NULL, NULL), 1);
	}
	rec_start(&r, 10, 5); off = rec_note(&r, 1, "k", 0);
	RUN(r, off)->key_len = 0; expect_bad(&r, r.len);
	/* data beyond the limit (1024), in the first or a later note of a run */
	rec_start(&r, 10, 5); rec_note(&r, 1, "k", 1025); expect_bad(&r, r.len);
	rec_start(&r, 10, 5); rec_run(&r, 1, "k"); rec_item(&r, 1); rec_item(&r, 1025);
	expect_bad(&r, r.len);
	/* reserved fields; conn is the reader's */
	rec_start(&r, 10, 5); off = rec_note(&r, 1, "k", 0);
	RUN(r, off)->flags = 2; expect_bad(&r, r.len);   /* no such form */
	rec_start(&r, 10, 5); off = rec_note(&r, 1, "k", 0);
	RUN(r, off)->data_len = 1; expect_bad(&r, r.len);   /* a length in a per-note run */
	rec_start(&r, 10, 5); off = rec_note(&r, 1, "k", 0);
	RUN(r, off)->conn = 7; expect_bad(&r, r.len);
	rec_start(&r, 10, 5); rec_run(&r, 1, "k"); rec_item(&r, 1); it = rec_item(&r, 0);
	ITEM(r, it)->reserved = 1; expect_bad(&r, r.len);
	/* a byte in the padding after the key, after the data */
	rec_start(&r, 10, 5); off = rec_note(&r, 1, "abc", 2);
	r.b[off + sizeof(struct shn_direct_run) + 5] = 1; expect_bad(&r, r.len);
	rec_start(&r, 10, 5); off = rec_note(&r, 1, "abcdefgh", 2);   /* a key without padding */
	r.b[off + sizeof(struct shn_direct_run) + 8 + 8 + 7] = 1; expect_bad(&r, r.len);
	rec_start(&r, 10, 5); rec_run(&r, 1, "k"); rec_item(&r, 1); it = rec_item(&r, 9);
	r.b[it + 8 + 9] = 1; expect_bad(&r, r.len);
	/* lengths that run past the record */
	rec_start(&r, 10, 5); rec_run(&r, 1, "abc"); it = rec_item(&r, 2);
	ITEM(r, it)->data_len = 1000; expect_bad(&r, r.len);
	rec_start(&r, 10, 5); rec_note(&r, 1, "abc", 2); off = rec_note(&r, 1, "abc", 2);
	RUN(r, off)->key_len = 200; expect_bad(&r, r.len);
	/* a run's count: 0, more notes than follow it, more than the header's */
	rec_start(&r, 10, 5); off = rec_note(&r, 1, "abc", 2);
	RUN(r, off)->count = 0; expect_bad(&r, r.len);
	rec_start(&r, 10, 5); off = rec_note(&r, 1, "abc", 2); rec_note(&r, 2, "abc", 2);
	RUN(r, off)->count = 2; expect_bad(&r, r.len);   /* the next run read as a note */
	rec_start(&r, 10, 5); off = rec_note(&r, 1, "abc", 2);
	RUN(r, off)->count = 2; HDR(r)->count = 1;
	r.len += 8; HDR(r)->h.len = r.len; expect_bad(&r, r.len);
	/* trailing bytes after the last note */
	rec_start(&r, 10, 5); rec_note(&r, 1, "abc", 2);
	r.len += 8; HDR(r)->h.len = r.len; expect_bad(&r, r.len);
	/* a run head cut by the end of the record */
	rec_start(&r, 10, 5); rec_note(&r, 1, "abc", 2);
	HDR(r)->count = 2; r.len += 16; HDR(r)->h.len = r.len; expect_bad(&r, r.len);
	/* a note's length word cut by the end (a run of 2 with one note) */
	rec_start(&r, 10, 5); off = rec_note(&r, 1, "abc", 2);
	RUN(r, off)->count = 2; HDR(r)->count = 2; expect_bad(&r, r.len);
}

/* Runs of one data length: the one length bounds every note at once, and
 * each note's padding is still looked at. */
static void test_record_same_len(void **state)
{
	struct rec r;
	struct shn_direct_seen seen = { 0, 0, 0 };
	uint32_t off, off2;

	(void)state;
	/* 3 of 64 bytes, a run with a length word per note, 5 of 13, 1 of
	 * the limit (1024) */
	rec_start(&r, 10, 5);
	rec_same(&r, 1, "alpha", 3, 64);
	rec_run(&r, 1, "alpha"); rec_item(&r, 3); rec_item(&r, 0);
	rec_same(&r, 2, "beta.gamma", 5, 13);
	rec_same(&r, 2, "b", 1, 1024);
	assert_int_equal(check(&r, &seen), 11);
	assert_int_equal(seen.batch_id, 10);

	/* the flag and the length: every other flag bit, length 0, above
	 * the limit, a length in a run without the flag */
	for (uint16_t f = 2; f != 0; f = (uint16_t)(f << 1)) {
		rec_start(&r, 10, 5); off = rec_same(&r, 1, "k", 2, 8);
		RUN(r, off)->flags |= f; expect_bad(&r, r.len);
	}
	rec_start(&r, 10, 5); off = rec_same(&r, 1, "k", 2, 8);
	RUN(r, off)->data_len = 0; expect_bad(&r, r.len);   /* read as no bytes */
	rec_start(&r, 10, 5); off = rec_same(&r, 1, "k", 1, 1024);
	RUN(r, off)->data_len = 1025; expect_bad(&r, r.len);
	RUN(r, off)->data_len = UINT32_MAX; expect_bad(&r, r.len);
	rec_start(&r, 10, 5); off = rec_same(&r, 1, "k", 2, 8);
	RUN(r, off)->flags = 0; expect_bad(&r, r.len);   /* read with length words */

	/* slots past the record: a larger count (and header count), a
	 * larger length, one that wraps 32 bits when multiplied */
	rec_start(&r, 10, 5); off = rec_same(&r, 1, "k", 2, 16);
	RUN(r, off)->count = 3; HDR(r)->count = 3; expect_bad(&r, r.len);
	rec_start(&r, 10, 5); off = rec_same(&r, 1, "k", 2, 16);
	RUN(r, off)->data_len = 24; expect_bad(&r, r.len);
	rec_start(&r, 10, 5); off = rec_same(&r, 1, "k", 1, 8);
	rec_same(&r, 1, "k", 1, 8);
	RUN(r, off)->count = 0x20000001u; HDR(r)->count = 0x20000002u;   /* 8 * count wraps */
	expect_bad(&r, r.len);
	/* fewer slots than follow: the next run's head read as one */
	rec_start(&r, 10, 5); off = rec_same(&r, 1, "k", 2, 8); rec_same(&r, 1, "k", 1, 8);
	RUN(r, off)->count = 1; HDR(r)->count = 2; expect_bad(&r, r.len);

	/* a byte in the padding of the first, a middle, the last note */
	for (uint32_t k = 0; k < 3; k++) {
		rec_start(&r, 10, 5); off = rec_same(&r, 1, "k", 3, 13);
		off2 = off + shn_direct_run_size(1) + k * 16 + 13;
		r.b[off2] = 1; expect_bad(&r, r.len);
		r.b[off2] = 0; r.b[off2 + 2] = 0x80; expect_bad(&r, r.len);
		r.b[off2 + 2] = 0;
		seen.batch_id = 0;
		assert_int_equal(check(&r, &seen), 3);
	}
}

/* The library's hook sees each run and its key, may refuse, may set conn. */
struct hook_ctx {
	int calls;
	const char *refuse;
};

static int hook(void *ctx, struct shn_direct_run *n, const uint8_t *key, uint64_t gen)
{
	struct hook_ctx *h = ctx;

	assert_int_equal(gen, 5);
	h->calls++;
	if (h->refuse != NULL && n->key_len == strlen(h->refuse) &&
	    memcmp(key, h->refuse, n->key_len) == 0)
		return -EBADMSG;
	n->conn = 42 + (uint64_t)h->calls;   /* a conn per call: who took whose */
	return 0;
}

static void test_record_hook(void **state)
{
	struct rec r;
	struct shn_direct_seen seen = { 0, 0, 0 };
	struct hook_ctx h = { 0, NULL };
	uint32_t a, b;

	(void)state;
	rec_start(&r, 10, 5);
	a = rec_run(&r, 1, "alpha");
	rec_item(&r, 3);
	rec_item(&r, 4);
	b = rec_note(&r, 1, "beta", 0);
	assert_int_equal(shn_direct_record_check(r.b, r.len, &lim, &seen, hook, &h), 3);
	assert_int_equal(h.calls, 2);   /* once per run, not per note */
	assert_int_equal(RUN(r, a)->conn, 43);
	assert_int_equal(RUN(r, b)->conn, 44);
	/* a run the port's filters never took: the record is hostile */
	rec_start(&r, 11, 5);
	rec_note(&r, 1, "alpha", 3);
	rec_note(&r, 1, "beta", 0);
	h.refuse = "beta";
	assert_int_equal(shn_direct_record_check(r.b, r.len, &lim, &seen, hook, &h), -EBADMSG);
	assert_int_equal(seen.batch_id, 10);
}

/* A run with the key and event of the run before it takes that run's
 * conn without a call of the hook; any difference -- a byte of the key at
 * any place (within the first word, the last byte of a 9- or 17-byte key,
 * a byte that only the next word holds), its length, the event -- calls
 * it.  Fails when the shortcut compares too little (a key differing past
 * the first word, or in the bytes masked off) or ignores the event. */
static void test_record_hook_repeats(void **state)
{
	static const struct {
		const char *a, *b;
		uint32_t ev_a, ev_b;
		bool same;
	} cases[] = {
		{ "flood/key", "flood/key", 1, 1, true },
		{ "flood/key", "flood/kez", 1, 1, false },   /* the 9th byte: the second word */
		{ "flood/key", "flood/ke", 1, 1, false },    /* a prefix of it */
		{ "k", "k", 1, 1, true },
		{ "k", "j", 1, 1, false },
		{ "k", "k", 1, 2, false },                   /* another event */
		{ "abcdefgh", "abcdefgh", 3, 3, true },      /* one whole word */
		{ "abcdefgh", "abcdefgX", 3, 3, false },
		{ "0123456789abcdefg", "0123456789abcdefg", 1, 1, true },
		{ "0123456789abcdefg", "0123456789abcdefh", 1, 1, false },
		{ "0123456789abcdefg", "X123456789abcdefg", 1, 1, false },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct rec r;
		struct shn_direct_seen seen = { 0, 0, 0 };
		struct hook_ctx h = { 0, NULL };
		uint32_t a, b, c;

		rec_start(&r, 10, 5);
		a = rec_note(&r, cases[i].ev_a, cases[i].a, 3);
		b = rec_note(&r, cases[i].ev_b, cases[i].b, 0);
		c = rec_note(&r, cases[i].ev_b, cases[i].b, 5);
		assert_int_equal(shn_direct_record_check(r.b, r.len, &lim, &seen, hook, &h), 3);
		if (cases[i].same) {
			assert_int_equal(h.calls, 1);
			assert_int_equal(RUN(r, b)->conn, RUN(r, a)->conn);
		} else {
			assert_int_equal(h.calls, 2);
			assert_int_not_equal(RUN(r, b)->conn, RUN(r, a)->conn);
		}
		assert_int_equal(RUN(r, c)->conn, RUN(r, b)->conn);   /* always the same as b */
	}
}

/* ---- the filter table ------------------------------------------------- */

struct table {
	struct shn_ftab_hdr *t;
	uint64_t size;
};

static void table_new(struct table *tb, uint32_t max_filters, uint32_t nslots, uint32_t key_bytes)
{
	tb->size = shn_ftab_seg_size(max_filters, nslots, key_bytes);
	tb->t = aligned_alloc(SHN_CACHELINE, (size_t)tb->size);
	assert_non_null(tb->t);
	memset(tb->t, 0, (size_t)tb->size);
	shn_ftab_layout(tb->t, max_filters, nslots, key_bytes);
	assert_true(shn_ftab_geometry_ok(tb->t, tb->size));
	shn_ftab_half_clear(tb->t, 0, 0);
	shn_ftab_half_clear(tb->t, 1, 0);
}

/* The table's hash in these tests (the broker's is XXH3; any works as
 * long as writer and lookup agree). */
static uint64_t hash_bytes(const void *key, size_t len)
{
	const uint8_t *k = key;
	uint64_t h = 1469598103934665603ull;

	for (size_t i = 0; i < len; i++)
		h = (h ^ k[i]) * 1099511628211ull;
	return h;
}

static uint64_t hash_of(const char *k)
{
	return hash_bytes(k, strlen(k));
}

static int add_key(struct table *tb, unsigned half, const char *key, uint32_t port, uint32_t mask)
{
	return shn_ftab_half_add_key(tb->t, half, hash_of(key), (const uint8_t *)key,
				     (uint32_t)strlen(key), port, mask, NULL);
}

static int lookup(struct table *tb, uint64_t gen, const char *key, struct shn_ftab_match *m,
		  uint32_t max)
{
	return shn_ftab_lookup(tb->t, gen, hash_of(key), (const uint8_t *)key,
			       (uint32_t)strlen(key), m, max, hash_bytes);
}

static uint32_t mask_of(const struct shn_ftab_match *m, int n, uint32_t port)
{
	for (int i = 0; i < n; i++)
		if (m[i].port_id == port)
			return m[i].mask;
	return 0;
}

static void test_table_lookup(void **state)
{
	struct table tb;
	struct shn_ftab_match m[8];
	int n;

	(void)state;
	table_new(&tb, 16, 32, 256);
	/* half 1 is what generation 1 reads */
	assert_int_equal(add_key(&tb, 1, "alpha", 7, 1), 0);
	assert_int_equal(add_key(&tb, 1, "alpha", 7, 4), 0);   /* same port: masks ORed */
	assert_int_equal(add_key(&tb, 1, "alpha", 9, 2), 0);
	assert_int_equal(add_key(&tb, 1, "beta", 9, 8), 0);
	assert_int_equal(shn_ftab_half_add_any(tb.t, 1, 11, 16), 0);
	assert_int_equal(shn_ftab_half_add_any(tb.t, 1, 9, 32), 0);  /* any + exact on port 9 */

	n = lookup(&tb, 1, "alpha", m, 8);
	assert_int_equal(n, 3);
	assert_int_equal(mask_of(m, n, 7), 5);
	assert_int_equal(mask_of(m, n, 9), 2 | 32);
	assert_int_equal(mask_of(m, n, 11), 16);
	n = lookup(&tb, 1, "beta", m, 8);
	assert_int_equal(n, 2);
	assert_int_equal(mask_of(m, n, 9), 8 | 32);
	n = lookup(&tb, 1, "gamma", m, 8);    /* only the any-key filters */
	assert_int_equal(n, 2);
	assert_int_equal(mask_of(m, n, 7), 0);
	/* a prefix or extension of a key is another key */
	n = lookup(&tb, 1, "alph", m, 8);
	assert_int_equal(n, 2);
	n = lookup(&tb, 1, "alphab", m, 8);
	assert_int_equal(n, 2);
	/* generation 2 reads half 0, still empty */
	assert_int_equal(lookup(&tb, 2, "alpha", m, 8), 0);
	/* out of room in the caller's array */
	assert_int_equal(lookup(&tb, 1, "alpha", m, 2), -ENOSPC);
	/* disabled at generation 3 (half 1 again) */
	shn_ftab_half_clear(tb.t, 1, SHN_FTAB_DISABLED);
	assert_int_equal(lookup(&tb, 3, "alpha", m, 8), -EAGAIN);
	free(tb.t);
}

/* Different keys with the same hash live in one probe chain and never match
 * each other. */
/* Prefix slots: "ab" exact and "ab" prefix are two filters; a key takes
 * every prefix of it in use (binary ones too), never a longer prefix, and
 * the half says which lengths are in use. */
static int lookup_n(struct table *tb, const void *key, uint32_t len, struct shn_ftab_match *m)
{
	return shn_ftab_lookup(tb->t, 0, hash_bytes(key, len), key, len, m, 8, hash_bytes);
}

static int add_prefix(struct table *tb, const void *p, uint32_t len, uint32_t port, uint32_t mask)
{
	return shn_ftab_half_add_filter(tb->t, 0, hash_bytes(p, len), p, len,
					SHN_FTAB_SLOT_PREFIX, port, mask, NULL);
}

/* The lookup's hint (the interest summary): a key or prefix whose bit is
 * clear is not probed, one whose bit is set is; no hint probes all. */
static void hint_set(_Atomic uint64_t *bits, uint32_t nbits, const void *k, size_t len)
{
	uint32_t b = (uint32_t)hash_bytes(k, len) & (nbits - 1);

	atomic_fetch_or(&bits[b / 64], 1ull << (b % 64));
}

static void test_table_hint(void **state)
{
	struct table tb;
	struct shn_ftab_match m[8];
	_Atomic uint64_t bits[4] = { 0 };   /* 256 bits */
	int n;

	(void)state;
	table_new(&tb, 16, 32, 1024);
	assert_int_equal(add_key(&tb, 0, "abc", 1, 0x1), 0);
	assert_int_equal(add_prefix(&tb, "ab", 2, 2, 0x2), 0);
	assert_int_equal(add_prefix(&tb, "a", 1, 3, 0x4), 0);
	/* no bit set: nothing probed, nothing found */
	n = shn_ftab_lookup_hinted(tb.t, 0, hash_bytes("abc", 3), (const uint8_t *)"abc", 3, m,
				   8, hash_bytes, bits, 256);
	assert_int_equal(n, 0);
	/* the prefix "ab" and the key: those two found, not "a" */
	hint_set(bits, 256, "ab", 2);
	hint_set(bits, 256, "abc", 3);
	n = shn_ftab_lookup_hinted(tb.t, 0, hash_bytes("abc", 3), (const uint8_t *)"abc", 3, m,
				   8, hash_bytes, bits, 256);
	assert_int_equal(n, 2);
	assert_int_equal(mask_of(m, n, 1), 0x1);
	assert_int_equal(mask_of(m, n, 2), 0x2);
	assert_int_equal(mask_of(m, n, 3), 0);
	/* every bit set, or no hint: all three */
	hint_set(bits, 256, "a", 1);
	n = shn_ftab_lookup_hinted(tb.t, 0, hash_bytes("abc", 3), (const uint8_t *)"abc", 3, m,
				   8, hash_bytes, bits, 256);
	assert_int_equal(n, 3);
	assert_int_equal(lookup_n(&tb, "abc", 3, m), 3);
	free(tb.t);
}

static void test_table_prefix(void **state)
{
	struct table tb;
	struct shn_ftab_match m[8];
	const struct shn_ftab_half *hh;
	static const uint8_t bin[] = { 0, 'x', 0 };
	uint8_t key[300] = { 0, 'x', 0, 0, 'y' };
	char big[257];
	int n;

	(void)state;
	table_new(&tb, 16, 32, 1024);
	hh = (const void *)shn_ftab_half_at(tb.t, 0);
	assert_int_equal(add_key(&tb, 0, "ab", 1, 0x1), 0);
	assert_int_equal(add_prefix(&tb, "ab", 2, 2, 0x2), 0);
	assert_int_equal(add_prefix(&tb, "a", 1, 3, 0x4), 0);
	assert_int_equal(add_prefix(&tb, "a", 1, 3, 0x8), 0);   /* merged */
	assert_int_equal(add_prefix(&tb, bin, 3, 4, 0x1), 0);
	assert_int_equal(hh->n_exact, 4);
	assert_int_equal(hh->plens[0], 0x7u);   /* lengths 1, 2, 3 */

	n = lookup_n(&tb, "ab", 2, m);
	assert_int_equal(n, 3);
	assert_int_equal(mask_of(m, n, 1), 0x1);
	assert_int_equal(mask_of(m, n, 2), 0x2);
	assert_int_equal(mask_of(m, n, 3), 0xc);
	n = lookup_n(&tb, "abc", 3, m);   /* not the exact "ab" */
	assert_int_equal(n, 2);
	assert_int_equal(mask_of(m, n, 1), 0);
	assert_int_equal(mask_of(m, n, 2), 0x2);
	n = lookup_n(&tb, "a", 1, m);   /* shorter than "ab" */
	assert_int_equal(n, 1);
	assert_int_equal(mask_of(m, n, 3), 0xc);
	assert_int_equal(lookup_n(&tb, "b", 1, m), 0);
	assert_int_equal(lookup_n(&tb, bin, 2, m), 0);   /* shorter than the binary prefix */
	n = lookup_n(&tb, key, 5, m);
	assert_int_equal(n, 1);
	assert_int_equal(mask_of(m, n, 4), 0x1);
	n = lookup_n(&tb, key, 300, m);   /* longer than any prefix can be */
	assert_int_equal(n, 1);

	/* a prefix is at most SHN_FTAB_PLEN_MAX bytes; a length of 256 is
	 * the last bit */
	memset(big, 'b', sizeof(big));
	assert_int_equal(add_prefix(&tb, big, 257, 5, 0x1), -EINVAL);
	assert_int_equal(add_prefix(&tb, big, 256, 5, 0x1), 0);
	assert_int_equal(hh->plens[3], 1ull << 63);
	assert_int_equal(lookup_n(&tb, big, 256, m), 1);
	assert_int_equal(lookup_n(&tb, big, 255, m), 0);
	/* an unknown slot flag is not a table the broker wrote */
	struct shn_ftab_slot *slots = (void *)((uint8_t *)shn_ftab_half_at(tb.t, 0) +
					       shn_ftab_slots_off(tb.t->max_filters));
	for (uint32_t i = 0; i < tb.t->nslots; i++)
		if (slots[i].key_len == 2 && slots[i].flags == SHN_FTAB_SLOT_PREFIX)
			slots[i].flags = 0x8000;
	assert_int_equal(lookup_n(&tb, "ab", 2, m), -EBADMSG);
	/* clearing the half clears its lengths */
	shn_ftab_half_clear(tb.t, 0, 0);
	for (int w = 0; w < 4; w++)
		assert_int_equal(hh->plens[w], 0);
	assert_int_equal(lookup_n(&tb, "ab", 2, m), 0);
	free(tb.t);
}

static void test_table_collisions(void **state)
{
	struct table tb;
	struct shn_ftab_match m[4];
	const char *keys[] = { "k0", "k1", "k2", "k3", "k4", "k5" };

	(void)state;
	table_new(&tb, 8, 16, 64);
	for (uint32_t i = 0; i < 6; i++)
		assert_int_equal(shn_ftab_half_add_key(tb.t, 0, 99, (const uint8_t *)keys[i], 2,
						       100 + i, 1u << i, NULL), 0);
	for (uint32_t i = 0; i < 6; i++) {
		int n = shn_ftab_lookup(tb.t, 0, 99, (const uint8_t *)keys[i], 2, m, 4, hash_bytes);

		assert_int_equal(n, 1);
		assert_int_equal(m[0].port_id, 100 + i);
		assert_int_equal(m[0].mask, 1u << i);
	}
	/* the right key under another hash is not found */
	assert_int_equal(shn_ftab_lookup(tb.t, 0, 98, (const uint8_t *)"k0", 2, m, 4, hash_bytes), 0);
	free(tb.t);
}

/* Bounded: filters past max_filters, key bytes past key_bytes; a probe
 * always ends because one slot stays empty. */
static void test_table_full(void **state)
{
	struct table tb;
	char key[16];
	int i, rc = 0;
	struct shn_ftab_match m[4];

	(void)state;
	table_new(&tb, 4, 8, 1024);
	for (i = 0; i < 10 && rc == 0; i++) {
		snprintf(key, sizeof(key), "key%d", i);
		rc = add_key(&tb, 0, key, 1, 1);
	}
	assert_int_equal(rc, -ENOSPC);
	assert_int_equal(i, 5);
	for (i = 0; i < 4; i++)
		assert_int_equal(shn_ftab_half_add_any(tb.t, 0, (uint32_t)i, 1), 0);
	assert_int_equal(shn_ftab_half_add_any(tb.t, 0, 99, 1), -ENOSPC);
	assert_int_equal(lookup(&tb, 0, "absent", m, 4), 4);
	free(tb.t);

	table_new(&tb, 8, 16, 10);
	assert_int_equal(add_key(&tb, 0, "0123456789", 1, 1), 0);
	assert_int_equal(add_key(&tb, 0, "x", 1, 1), -ENOSPC);
	free(tb.t);
}

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint64_t rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

/* A half full of garbage (a torn read, or a broker mid-rewrite): the lookup
 * reads only inside the segment and answers a count, -ENOSPC or -EBADMSG. */
static void test_table_garbage(void **state)
{
	struct table tb;
	struct shn_ftab_match m[8];

	(void)state;
	table_new(&tb, 64, 128, 512);
	for (int round = 0; round < 2000; round++) {
		uint8_t *half = shn_ftab_half_at(tb.t, 1);

		for (uint64_t i = 0; i < tb.t->half_size; i++)
			half[i] = (uint8_t)rnd();
		if (round % 3 == 0)
			((struct shn_ftab_half *)(void *)half)->flags = 0;
		if (round % 5 == 0)
			((struct shn_ftab_half *)(void *)half)->n_any = (uint32_t)rnd() % 70;
		/* the header line the broker writes once stays valid */
		assert_true(shn_ftab_geometry_ok(tb.t, tb.size));
		int n = shn_ftab_lookup(tb.t, 1, rnd() % 4, (const uint8_t *)"k", 1, m, 8, hash_bytes);
		assert_true(n == -EAGAIN || n == -EBADMSG || n == -ENOSPC || (n >= 0 && n <= 8));
	}
	free(tb.t);
}

static void test_table_geometry(void **state)
{
	struct table tb;

	(void)state;
	table_new(&tb, 16, 32, 256);
	assert_false(shn_ftab_geometry_ok(tb.t, tb.size - 1));
	assert_false(shn_ftab_geometry_ok(tb.t, 10));
	tb.t->nslots = 16;      /* not above max_filters */
	assert_false(shn_ftab_geometry_ok(tb.t, tb.size));
	tb.t->nslots = 48;      /* not a power of two */
	assert_false(shn_ftab_geometry_ok(tb.t, tb.size));
	tb.t->nslots = 32;
	tb.t->half_off[1] += 64;
	assert_false(shn_ftab_geometry_ok(tb.t, tb.size));
	tb.t->half_off[1] -= 32;
	assert_false(shn_ftab_geometry_ok(tb.t, tb.size));
	tb.t->half_off[1] -= 32;
	tb.t->magic = 0;
	assert_false(shn_ftab_geometry_ok(tb.t, tb.size));
	tb.t->magic = SHN_FTAB_MAGIC;
	assert_true(shn_ftab_geometry_ok(tb.t, tb.size));
	free(tb.t);
}

/* ---- the port map ----------------------------------------------------- */

static void test_port_map(void **state)
{
	struct shn_pmap_slot *s = calloc(SHN_PMAP_SLOTS, sizeof(*s));
	uint32_t ring = 0;

	(void)state;
	assert_non_null(s);
	assert_int_equal(shn_pmap_find(s, SHN_PMAP_SLOTS, 0, 5, &ring), -ENOENT);  /* unused */
	s[3].port_id = 7;
	s[3].ring_id = 70;
	atomic_store(&s[3].close_gen, SHN_PMAP_GEN_OPEN);
	atomic_store(&s[3].open_gen, 4);
	assert_int_equal(shn_pmap_find(s, SHN_PMAP_SLOTS, 7, 3, &ring), -ENOENT);  /* before */
	assert_int_equal(shn_pmap_find(s, SHN_PMAP_SLOTS, 7, 4, &ring), 3);
	assert_int_equal(ring, 70);
	assert_int_equal(shn_pmap_find(s, SHN_PMAP_SLOTS, 8, 4, &ring), -ENOENT);
	atomic_store(&s[3].close_gen, 9);
	assert_int_equal(shn_pmap_find(s, SHN_PMAP_SLOTS, 7, 8, &ring), 3);
	assert_int_equal(shn_pmap_find(s, SHN_PMAP_SLOTS, 7, 9, &ring), -ENOENT);   /* closed */
	/* the slot reused for another ring of the same port */
	s[5].port_id = 7;
	s[5].ring_id = 71;
	atomic_store(&s[5].close_gen, SHN_PMAP_GEN_OPEN);
	atomic_store(&s[5].open_gen, 12);
	assert_int_equal(shn_pmap_find(s, SHN_PMAP_SLOTS, 7, 12, &ring), 5);
	assert_int_equal(ring, 71);
	assert_int_equal(shn_pmap_find(s, SHN_PMAP_SLOTS, 7, 10, &ring), -ENOENT);
	/* a count past the segment is clamped */
	assert_int_equal(shn_pmap_find(s, UINT32_MAX, 7, 12, &ring), 5);
	free(s);
}

/* ---- the HANDLE_CLOSE barrier ----------------------------------------- */

static void test_barrier(void **state)
{
	struct shn_direct_barrier e[3] = {
		{ .slot = 0, .tail = 100 }, { .slot = 15, .tail = 0 }, { .slot = 2, .tail = ~0ull },
	};

	(void)state;
	assert_int_equal(shn_direct_barrier_check((const uint8_t *)e, 0, 16), 0);
	assert_int_equal(shn_direct_barrier_check((const uint8_t *)e, sizeof(e), 16), 3);
	assert_int_equal(shn_direct_barrier_check((const uint8_t *)e, sizeof(e) - 8, 16), -EBADMSG);
	assert_int_equal(shn_direct_barrier_check((const uint8_t *)e, sizeof(e), 15), -EBADMSG);
	e[1].slot = 1;
	e[2].reserved = 1;
	assert_int_equal(shn_direct_barrier_check((const uint8_t *)e, sizeof(e), 16), -EBADMSG);
	assert_int_equal(shn_direct_barrier_check((const uint8_t *)e, 2 * sizeof(e[0]), 16), 2);
}

/* ---- layouts ---------------------------------------------------------- */

static void test_layout(void **state)
{
	(void)state;
	assert_int_equal(offsetof(struct shn_ftab_hdr, gen), 64);
	assert_true(SHN_PMAP_SEG_SIZE <= 9 * 4096);   /* 1024 slots of 32 bytes and a header */
	assert_int_equal(sizeof(struct shn_direct_batch), 56);
	/* a direct record's header reads as a delivered one's where the port
	 * reads it; a run is three words, a note's length one */
	assert_int_equal(offsetof(struct shn_direct_batch, batch_id), offsetof(struct shn_del_batch, batch_id));
	assert_int_equal(offsetof(struct shn_direct_batch, time_ns), offsetof(struct shn_del_batch, time_ns));
	assert_int_equal(sizeof(struct shn_direct_run), 24);
	assert_int_equal(shn_direct_run_size(1), 32);
	assert_int_equal(shn_direct_run_size(8), 32);
	assert_int_equal(shn_direct_item_size(0), 8);
	assert_int_equal(shn_direct_item_size(64), 72);
	assert_int_equal(shn_direct_item_size(65), 80);
	assert_int_equal(SHN_HELLO_F_DIRECT & (SHN_HELLO_F_PUB_ACL | SHN_HELLO_F_NAME), 0);
}

int main(void)
{
	const char *s = getenv("SHN_TEST_SEED");

	if (s != NULL)
		rng = strtoull(s, NULL, 0) | 1;
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_record_good),
		cmocka_unit_test(test_record_bad_header),
		cmocka_unit_test(test_record_bad_runs),
		cmocka_unit_test(test_record_same_len),
		cmocka_unit_test(test_record_hook),
		cmocka_unit_test(test_record_hook_repeats),
		cmocka_unit_test(test_table_lookup),
		cmocka_unit_test(test_table_prefix),
		cmocka_unit_test(test_table_hint),
		cmocka_unit_test(test_table_collisions),
		cmocka_unit_test(test_table_full),
		cmocka_unit_test(test_table_garbage),
		cmocka_unit_test(test_table_geometry),
		cmocka_unit_test(test_port_map),
		cmocka_unit_test(test_barrier),
		cmocka_unit_test(test_layout),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
