/* SPDX-License-Identifier: MIT */
/*
 * test_ring.c - unit tests of shm/ring.h, the SPSC byte ring.
 *
 * Single process, single thread: both views (producer and consumer) of one
 * ring live in this process, over one heap block laid out like a publish
 * ring segment (prod line at 0, cons line at 64, data at SHN_RING_HDR_SIZE).
 * The concurrent behaviour is exercised by test_ring_stress.
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

#include "shm/proto.h"
#include "shm/ring.h"

#define REC_TYPE 7u

struct tring {
	uint8_t *mem;
	struct shn_ring_prod *prod;
	struct shn_ring_cons *cons;
	uint8_t *data;
	uint32_t cap;
	struct shn_ring p; /* producer's view */
	struct shn_ring c; /* consumer's view */
};

static void tring_init(struct tring *t, uint32_t cap)
{
	assert_true(shn_ring_capacity_ok(cap));
	t->mem = aligned_alloc(SHN_CACHELINE, SHN_RING_HDR_SIZE + (size_t)cap);
	assert_non_null(t->mem);
	memset(t->mem, 0, SHN_RING_HDR_SIZE + (size_t)cap);
	t->prod = (struct shn_ring_prod *)(t->mem + SHN_PUB_PROD_OFF);
	t->cons = (struct shn_ring_cons *)(t->mem + SHN_PUB_CONS_OFF);
	t->data = t->mem + SHN_RING_HDR_SIZE;
	t->cap = cap;
	t->prod->capacity = cap;
	t->prod->magic = SHN_RING_MAGIC;
	shn_ring_init_view(&t->p, t->prod, t->cons, t->data, cap);
	shn_ring_init_view(&t->c, t->prod, t->cons, t->data, cap);
}

static void tring_free(struct tring *t)
{
	free(t->mem);
	t->mem = NULL;
}

static uint8_t pattern(uint64_t seq, uint32_t i)
{
	return (uint8_t)(seq * 131u + i * 7u + 1u);
}

/* Write one record of len bytes (header, u64 seq, pattern).  Returns the
 * record's address, or NULL when the ring has no room (asserting no error). */
static uint8_t *put_rec(struct shn_ring *r, uint32_t len, uint64_t seq)
{
	int err = 12345;
	uint8_t *p = shn_ring_reserve(r, len, &err);

	assert_int_equal(err, 0);
	if (p == NULL)
		return NULL;
	struct shn_rec_hdr h = { .len = len, .type = REC_TYPE, .flags = 0 };
	memcpy(p, &h, sizeof(h));
	if (len >= 16)
		memcpy(p + 8, &seq, 8);
	for (uint32_t i = 16; i < len; i++)
		p[i] = pattern(seq, i);
	shn_ring_commit(r, len);
	return p;
}

/* Read the next record; checks it is ours and intact.  Returns its length
 * (0: ring empty). */
static uint32_t get_rec(struct shn_ring *r, uint64_t *seq)
{
	const uint8_t *rec = NULL;
	uint32_t len = 0;
	int ret = shn_ring_next(r, &rec, &len);

	assert_true(ret == 0 || ret == 1);
	if (ret == 0)
		return 0;
	assert_non_null(rec);
	struct shn_rec_hdr h;
	memcpy(&h, rec, sizeof(h));
	assert_int_equal(h.len, len);
	assert_int_equal(h.type, REC_TYPE);
	assert_int_equal(len % 8, 0);
	if (len >= 16) {
		memcpy(seq, rec + 8, 8);
		for (uint32_t i = 16; i < len; i++)
			if (rec[i] != pattern(*seq, i))
				fail_msg("record seq %llu byte %u: got %u want %u",
					 (unsigned long long)*seq, i, rec[i], pattern(*seq, i));
	}
	shn_ring_consume(r, len);
	return len;
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rnd(void)
{
	uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* ---- capacities ------------------------------------------------------- */

static void test_capacity(void **state)
{
	(void)state;
	assert_false(shn_ring_capacity_ok(0));
	assert_false(shn_ring_capacity_ok(1));
	assert_false(shn_ring_capacity_ok(2048));
	assert_false(shn_ring_capacity_ok(4095));
	assert_true(shn_ring_capacity_ok(4096));
	assert_false(shn_ring_capacity_ok(4097));
	assert_false(shn_ring_capacity_ok(6144));
	assert_true(shn_ring_capacity_ok(8192));
	assert_true(shn_ring_capacity_ok(1u << 20));
	assert_true(shn_ring_capacity_ok(1u << 30));
	assert_false(shn_ring_capacity_ok((1u << 30) + 4096));
	assert_false(shn_ring_capacity_ok(1ull << 31));
	assert_false(shn_ring_capacity_ok(1ull << 32));
	assert_false(shn_ring_capacity_ok(1ull << 63));

	assert_int_equal(shn_ring_round_capacity(0), 4096);
	assert_int_equal(shn_ring_round_capacity(1), 4096);
	assert_int_equal(shn_ring_round_capacity(4095), 4096);
	assert_int_equal(shn_ring_round_capacity(4096), 4096);
	assert_int_equal(shn_ring_round_capacity(4097), 8192);
	assert_int_equal(shn_ring_round_capacity(5000), 8192);
	assert_int_equal(shn_ring_round_capacity((1u << 20) - 1), 1u << 20);
	assert_int_equal(shn_ring_round_capacity(1u << 20), 1u << 20);
	assert_int_equal(shn_ring_round_capacity((1u << 20) + 1), 1u << 21);
	assert_int_equal(shn_ring_round_capacity((1u << 29) + 1), 1u << 30);
	assert_int_equal(shn_ring_round_capacity(1u << 30), 1u << 30);
	assert_int_equal(shn_ring_round_capacity((1u << 30) + 1), 0);
	assert_int_equal(shn_ring_round_capacity(1ull << 31), 0);
	assert_int_equal(shn_ring_round_capacity(UINT64_MAX), 0);
	/* every rounded value is a valid capacity */
	for (uint64_t want = 0; want < (1u << 22); want += 977) {
		uint32_t cap = shn_ring_round_capacity(want);
		assert_true(shn_ring_capacity_ok(cap));
		assert_true(cap >= want);
		assert_true(cap == 4096 || cap / 2 < want);
	}

	assert_int_equal(shn_ring_max_record(4096), 2048);
	assert_int_equal(shn_ring_max_record(1u << 20), 1u << 19);
	assert_int_equal(SHN_ALIGN8(0), 0);
	assert_int_equal(SHN_ALIGN8(1), 8);
	assert_int_equal(SHN_ALIGN8(8), 8);
	assert_int_equal(SHN_ALIGN8(9), 16);
}

static void test_layout(void **state)
{
	(void)state;
	assert_int_equal(sizeof(struct shn_ring_prod), SHN_CACHELINE);
	assert_int_equal(sizeof(struct shn_ring_cons), SHN_CACHELINE);
	assert_int_equal(offsetof(struct shn_ring_prod, tail), 0);
	assert_int_equal(offsetof(struct shn_ring_cons, head), 0);
	assert_int_equal(sizeof(struct shn_rec_hdr), 8);
	assert_true(SHN_PUB_CONS_OFF >= sizeof(struct shn_ring_prod));
	assert_true(SHN_RING_HDR_SIZE >= SHN_PUB_CONS_OFF + sizeof(struct shn_ring_cons));
	assert_int_equal(SHN_RING_HDR_SIZE % SHN_CACHELINE, 0);
}

/* ---- round trip ------------------------------------------------------- */

static void test_roundtrip(void **state)
{
	struct tring t;
	uint64_t seq = 0;
	(void)state;

	tring_init(&t, 4096);
	assert_int_equal(get_rec(&t.c, &seq), 0);
	assert_false(shn_ring_readable(&t.c));
	assert_int_equal(shn_ring_used(&t.p), 0);

	assert_ptr_equal(put_rec(&t.p, 24, 1), t.data);
	assert_ptr_equal(put_rec(&t.p, 40, 2), t.data + 24);
	assert_int_equal(shn_ring_used(&t.p), 64);
	/* committed but not published: invisible */
	assert_int_equal(atomic_load(&t.prod->tail), 0);
	assert_false(shn_ring_readable(&t.c));
	assert_int_equal(get_rec(&t.c, &seq), 0);

	shn_ring_publish(&t.p);
	assert_int_equal(atomic_load(&t.prod->tail), 64);
	assert_true(shn_ring_readable(&t.c));

	const uint8_t *rec = NULL;
	uint32_t len = 0;
	assert_int_equal(shn_ring_next(&t.c, &rec, &len), 1);
	assert_ptr_equal(rec, t.data);
	assert_int_equal(len, 24);
	/* next without consume returns the same record again */
	assert_int_equal(shn_ring_next(&t.c, &rec, &len), 1);
	assert_ptr_equal(rec, t.data);
	assert_int_equal(get_rec(&t.c, &seq), 24);
	assert_int_equal(seq, 1);
	assert_int_equal(get_rec(&t.c, &seq), 40);
	assert_int_equal(seq, 2);
	assert_int_equal(get_rec(&t.c, &seq), 0);
	assert_false(shn_ring_readable(&t.c));

	/* consumed but not released: the producer still counts the bytes */
	assert_int_equal(atomic_load(&t.cons->head), 0);
	assert_int_equal(shn_ring_load_head(&t.p), 0);
	assert_int_equal(shn_ring_used(&t.p), 64);
	shn_ring_release(&t.c);
	assert_int_equal(atomic_load(&t.cons->head), 64);
	assert_int_equal(shn_ring_load_head(&t.p), 0);
	assert_int_equal(shn_ring_used(&t.p), 0);

	/* fill the ring exactly: (4096 - 64) / 64 more records after the first 64 bytes */
	uint64_t n = 0;
	while (put_rec(&t.p, 64, 100 + n) != NULL)
		n++;
	assert_int_equal(n, 4096 / 64);
	assert_int_equal(shn_ring_used(&t.p), 4096);
	/* full and unpublished: still nothing readable */
	assert_int_equal(get_rec(&t.c, &seq), 0);
	shn_ring_publish(&t.p);
	/* a ring exactly full is legal for the consumer */
	assert_int_equal(get_rec(&t.c, &seq), 64);
	assert_int_equal(seq, 100);
	/* not released yet: the producer still has no room */
	assert_null(put_rec(&t.p, 64, 999));
	shn_ring_release(&t.c);
	assert_non_null(put_rec(&t.p, 64, 100 + n));
	n++;
	assert_null(put_rec(&t.p, 8, 999));
	shn_ring_publish(&t.p);
	for (uint64_t i = 1; i < n; i++) {
		assert_int_equal(get_rec(&t.c, &seq), 64);
		assert_int_equal(seq, 100 + i);
	}
	assert_int_equal(get_rec(&t.c, &seq), 0);
	shn_ring_release(&t.c);
	assert_int_equal(atomic_load(&t.cons->head), atomic_load(&t.prod->tail));
	tring_free(&t);
}

/* A record with nothing but the header (8 bytes) is legal. */
static void test_min_record(void **state)
{
	struct tring t;
	const uint8_t *rec = NULL;
	uint32_t len = 0;
	(void)state;

	tring_init(&t, 4096);
	for (int i = 0; i < 1000; i++) {
		assert_non_null(put_rec(&t.p, 8, 0));
		shn_ring_publish(&t.p);
		assert_int_equal(shn_ring_next(&t.c, &rec, &len), 1);
		assert_int_equal(len, 8);
		shn_ring_consume(&t.c, len);
		shn_ring_release(&t.c);
	}
	assert_int_equal(atomic_load(&t.cons->head), 8000);
	tring_free(&t);
}

/* ---- wrap-around ------------------------------------------------------ */

static void run_laps(uint32_t cap, uint32_t maxlen, unsigned laps)
{
	struct tring t;
	uint64_t wseq = 0, rseq = 0, pads = 0;

	tring_init(&t, cap);
	while (t.p.tail < (uint64_t)laps * cap) {
		/* producer: a batch of random size, as much as fits */
		unsigned nb = 1 + (unsigned)(rnd() % 12);
		for (unsigned i = 0; i < nb; i++) {
			uint32_t len = 16 + 8 * (uint32_t)(rnd() % ((maxlen - 16) / 8 + 1));
			uint32_t off = (uint32_t)(t.p.tail & t.p.mask);
			uint64_t before = t.p.tail;
			uint8_t *p = put_rec(&t.p, len, wseq + 1);
			if (p == NULL) {
				assert_int_equal(t.p.tail, before); /* nothing written */
				break;
			}
			wseq++;
			assert_true(p + len <= t.data + cap);   /* never straddles the end */
			if (len > cap - off) {
				/* had to wrap: a PAD covers the rest */
				assert_ptr_equal(p, t.data);
				const struct shn_rec_hdr *pad = (const void *)(t.data + off);
				assert_int_equal(pad->type, SHN_REC_PAD);
				assert_int_equal(pad->len, cap - off);
				pads++;
			} else {
				assert_ptr_equal(p, t.data + off);
			}
		}
		shn_ring_publish(&t.p);
		/* consumer: a random number of records, sometimes all */
		unsigned nr = (rnd() % 4 == 0) ? UINT32_MAX : (unsigned)(rnd() % 16);
		for (unsigned i = 0; i < nr; i++) {
			uint64_t s = 0;
			if (get_rec(&t.c, &s) == 0)
				break;
			assert_int_equal(s, rseq + 1);
			rseq = s;
		}
		if (rnd() % 3 != 0)
			shn_ring_release(&t.c);
	}
	for (;;) {
		uint64_t s = 0;
		if (get_rec(&t.c, &s) == 0)
			break;
		assert_int_equal(s, rseq + 1);
		rseq = s;
	}
	shn_ring_release(&t.c);
	assert_int_equal(rseq, wseq);
	assert_true(pads > laps / 2);
	/* every byte, PADs included, consumed */
	assert_int_equal(atomic_load(&t.cons->head), atomic_load(&t.prod->tail));
	assert_int_equal(shn_ring_load_head(&t.p), 0);
	assert_int_equal(shn_ring_used(&t.p), 0);
	tring_free(&t);
}

static void test_wrap_small(void **state)
{
	(void)state;
	run_laps(4096, 2048, 500);
}

static void test_wrap_varied(void **state)
{
	(void)state;
	run_laps(4096, 256, 300);
	run_laps(8192, 1024, 300);
	run_laps(65536, 32768, 100);
}

/* Advance an empty ring's position to byte offset off (using records of
 * at most 512 bytes, all consumed and released). */
static void advance_to(struct tring *t, uint32_t off)
{
	uint64_t seq;

	while ((uint32_t)(t->p.tail & t->p.mask) != off) {
		uint32_t cur = (uint32_t)(t->p.tail & t->p.mask);
		uint32_t need = (off - cur) & t->p.mask;
		uint32_t len = need > 512 ? 512 : need;
		if (len > t->cap - cur)
			len = t->cap - cur; /* never pad while positioning */
		assert_non_null(put_rec(&t->p, len, 0));
		shn_ring_publish(&t->p);
		while (get_rec(&t->c, &seq) != 0)
			;
		shn_ring_release(&t->c);
	}
	assert_int_equal(shn_ring_load_head(&t->p), 0);
	assert_int_equal(shn_ring_used(&t->p), 0);
}

/* capacity/2 always eventually fits: from every 8-aligned position of an
 * empty ring; capacity/2 + 8 does not fit from the middle. */
static void test_max_record_fits(void **state)
{
	struct tring t;
	uint64_t seq;
	(void)state;

	for (uint32_t cap = 4096; cap <= 16384; cap *= 2) {
		tring_init(&t, cap);
		uint32_t max = shn_ring_max_record(cap);
		for (uint32_t off = 0; off < cap; off += 8) {
			advance_to(&t, off);
			uint8_t *p = put_rec(&t.p, max, off + 1);
			assert_non_null(p);
			assert_true(p + max <= t.data + cap);
			shn_ring_publish(&t.p);
			assert_int_equal(get_rec(&t.c, &seq), max);
			assert_int_equal(seq, off + 1);
			assert_int_equal(get_rec(&t.c, &seq), 0);
			shn_ring_release(&t.c);
		}
		/* one more than the largest: not from the middle of an empty ring */
		advance_to(&t, cap / 2);
		int err = 1;
		uint64_t before = t.p.tail;
		assert_int_equal(shn_ring_cost(&t.p, max + 8), (uint64_t)cap / 2 + max + 8);
		assert_null(shn_ring_reserve(&t.p, max + 8, &err));
		assert_int_equal(err, 0);
		assert_int_equal(t.p.tail, before); /* no PAD written */
		tring_free(&t);
	}
}

static void test_cost(void **state)
{
	struct tring t;
	(void)state;

	tring_init(&t, 4096);
	assert_int_equal(shn_ring_cost(&t.p, 64), 64);
	assert_int_equal(shn_ring_cost(&t.p, 4096), 4096);
	advance_to(&t, 4096 - 64);
	assert_int_equal(shn_ring_cost(&t.p, 64), 64);
	assert_int_equal(shn_ring_cost(&t.p, 72), 64 + 72);
	assert_int_equal(shn_ring_cost(&t.p, 8), 8);
	tring_free(&t);
}

/* ---- rollback --------------------------------------------------------- */

static void test_rollback(void **state)
{
	struct tring t;
	uint64_t seq = 0;
	(void)state;

	tring_init(&t, 4096);
	assert_non_null(put_rec(&t.p, 32, 1));
	shn_ring_publish(&t.p);
	uint64_t saved = t.p.tail;
	assert_non_null(put_rec(&t.p, 64, 2));
	assert_non_null(put_rec(&t.p, 64, 3));
	shn_ring_rollback(&t.p, saved);
	assert_int_equal(shn_ring_used(&t.p), 32);
	shn_ring_publish(&t.p);
	assert_int_equal(atomic_load(&t.prod->tail), 32);
	assert_int_equal(get_rec(&t.c, &seq), 32);
	assert_int_equal(seq, 1);
	assert_int_equal(get_rec(&t.c, &seq), 0);
	/* the space is reused */
	assert_ptr_equal(put_rec(&t.p, 48, 4), t.data + 32);
	shn_ring_publish(&t.p);
	assert_int_equal(get_rec(&t.c, &seq), 48);
	assert_int_equal(seq, 4);
	assert_int_equal(get_rec(&t.c, &seq), 0);
	shn_ring_release(&t.c);

	/* rollback of a batch whose reserve wrote a PAD undoes the PAD too */
	advance_to(&t, 4096 - 16);
	saved = t.p.tail;
	assert_ptr_equal(put_rec(&t.p, 64, 5), t.data); /* wrapped */
	assert_int_equal(t.p.tail, saved + 16 + 64);
	shn_ring_rollback(&t.p, saved);
	shn_ring_publish(&t.p);
	assert_int_equal(get_rec(&t.c, &seq), 0);
	assert_ptr_equal(put_rec(&t.p, 16, 6), t.data + 4096 - 16); /* no PAD in the way */
	shn_ring_publish(&t.p);
	assert_int_equal(get_rec(&t.c, &seq), 16);
	assert_int_equal(seq, 6);
	assert_int_equal(get_rec(&t.c, &seq), 0);
	shn_ring_release(&t.c);
	assert_int_equal(atomic_load(&t.cons->head), atomic_load(&t.prod->tail));
	tring_free(&t);
}

/* ---- corruption ------------------------------------------------------- */

static void test_bad_head(void **state)
{
	struct tring t;
	int err;
	uint64_t seq;
	(void)state;

	tring_init(&t, 4096);
	for (int i = 0; i < 4; i++)
		assert_non_null(put_rec(&t.p, 64, (uint64_t)i + 1));
	shn_ring_publish(&t.p);
	assert_int_equal(get_rec(&t.c, &seq), 64);
	assert_int_equal(get_rec(&t.c, &seq), 64);
	shn_ring_release(&t.c);                         /* head 128, tail 256 */
	assert_int_equal(shn_ring_load_head(&t.p), 0);
	assert_int_equal(shn_ring_used(&t.p), 128);

	/* head equal to itself and to the tail are fine */
	assert_int_equal(shn_ring_load_head(&t.p), 0);
	atomic_store(&t.cons->head, 256);
	assert_int_equal(shn_ring_load_head(&t.p), 0);
	assert_int_equal(shn_ring_used(&t.p), 0);
	atomic_store(&t.cons->head, 128);               /* backwards */
	assert_int_equal(shn_ring_load_head(&t.p), -EBADMSG);
	atomic_store(&t.cons->head, 8);
	assert_int_equal(shn_ring_load_head(&t.p), -EBADMSG);
	atomic_store(&t.cons->head, 264);               /* beyond the tail */
	assert_int_equal(shn_ring_load_head(&t.p), -EBADMSG);
	atomic_store(&t.cons->head, UINT64_MAX);
	assert_int_equal(shn_ring_load_head(&t.p), -EBADMSG);
	atomic_store(&t.cons->head, 256 + 4096);
	assert_int_equal(shn_ring_load_head(&t.p), -EBADMSG);
	/* a rejected value did not replace the last good one */
	assert_int_equal(shn_ring_used(&t.p), 0);

	/* reserve on a full ring reports it */
	tring_free(&t);
	tring_init(&t, 4096);
	while (put_rec(&t.p, 512, 0) != NULL)
		;
	shn_ring_publish(&t.p);
	atomic_store(&t.cons->head, 4096 + 8);
	err = 0;
	assert_null(shn_ring_reserve(&t.p, 64, &err));
	assert_int_equal(err, -EBADMSG);
	/* so does prepare_wait, leaving the wait word even */
	err = 0;
	assert_false(shn_ring_prepare_wait(&t.p, 64, &err));
	assert_int_equal(err, -EBADMSG);
	assert_int_equal(atomic_load(&t.prod->wait_seq) & 1u, 0);
	tring_free(&t);
}

/* Set up the consumer's view at head 0 of a fresh ring, write raw bytes at
 * offset off, and publish a raw tail. */
static int next_with_raw(uint32_t cap, uint32_t off, uint32_t len, uint16_t type,
			 uint64_t tail_extra)
{
	struct tring t;
	const uint8_t *rec = NULL;
	uint32_t l = 0;
	int ret;

	tring_init(&t, cap);
	advance_to(&t, off);
	shn_ring_init_view(&t.c, t.prod, t.cons, t.data, cap);
	struct shn_rec_hdr h = { .len = len, .type = type, .flags = 0 };
	memcpy(t.data + off, &h, sizeof(h));
	atomic_store(&t.prod->tail, t.c.head + tail_extra);
	ret = shn_ring_next(&t.c, &rec, &l);
	tring_free(&t);
	return ret;
}

static void test_bad_records(void **state)
{
	(void)state;
	/* sanity: a good record is accepted by the same path */
	assert_int_equal(next_with_raw(4096, 0, 64, REC_TYPE, 64), 1);
	assert_int_equal(next_with_raw(4096, 64, 64, REC_TYPE, 128), 1);
	assert_int_equal(next_with_raw(4096, 4096 - 64, 64, REC_TYPE, 64), 1);
	assert_int_equal(next_with_raw(4096, 4096 - 64, 64, SHN_REC_PAD, 64), 0);

	/* len not a multiple of 8 */
	assert_int_equal(next_with_raw(4096, 0, 12, REC_TYPE, 64), -EBADMSG);
	assert_int_equal(next_with_raw(4096, 0, 63, REC_TYPE, 64), -EBADMSG);
	/* len zero, len shorter than a header */
	assert_int_equal(next_with_raw(4096, 0, 0, REC_TYPE, 64), -EBADMSG);
	assert_int_equal(next_with_raw(4096, 0, 4, REC_TYPE, 64), -EBADMSG);
	/* len crossing the end of the data area */
	assert_int_equal(next_with_raw(4096, 4096 - 16, 32, REC_TYPE, 64), -EBADMSG);
	assert_int_equal(next_with_raw(4096, 4096 - 8, 16, REC_TYPE, 16), -EBADMSG);
	/* len larger than what was published */
	assert_int_equal(next_with_raw(4096, 0, 64, REC_TYPE, 32), -EBADMSG);
	assert_int_equal(next_with_raw(4096, 128, 72, REC_TYPE, 64), -EBADMSG);
	assert_int_equal(next_with_raw(4096, 0, 8192, REC_TYPE, 4096), -EBADMSG);
	assert_int_equal(next_with_raw(4096, 0, UINT32_MAX - 7, REC_TYPE, 4096), -EBADMSG);
	/* PAD not reaching the end */
	assert_int_equal(next_with_raw(4096, 0, 16, SHN_REC_PAD, 64), -EBADMSG);
	assert_int_equal(next_with_raw(4096, 4096 - 64, 32, SHN_REC_PAD, 64), -EBADMSG);
	/* PAD longer than the rest (crossing the end) */
	assert_int_equal(next_with_raw(4096, 4096 - 64, 128, SHN_REC_PAD, 128), -EBADMSG);
	/* PAD at the end but the tail does not cover it */
	assert_int_equal(next_with_raw(4096, 4096 - 64, 64, SHN_REC_PAD, 32), -EBADMSG);
}

static void test_bad_tail(void **state)
{
	struct tring t;
	const uint8_t *rec = NULL;
	uint32_t len = 0;
	uint64_t seq;
	(void)state;

	tring_init(&t, 4096);
	/* tail more than a capacity ahead of the head */
	atomic_store(&t.prod->tail, 4096 + 8);
	assert_int_equal(shn_ring_next(&t.c, &rec, &len), -EBADMSG);
	assert_int_equal(shn_ring_load_tail(&t.c), -EBADMSG);
	atomic_store(&t.prod->tail, UINT64_MAX - 7);
	assert_int_equal(shn_ring_load_tail(&t.c), -EBADMSG);
	assert_true(shn_ring_readable(&t.c)); /* corruption is "something to do" */
	atomic_store(&t.prod->tail, 0);
	assert_int_equal(shn_ring_load_tail(&t.c), 0);
	tring_free(&t);

	/* tail moving backwards */
	tring_init(&t, 4096);
	for (int i = 0; i < 4; i++)
		assert_non_null(put_rec(&t.p, 64, (uint64_t)i + 1));
	shn_ring_publish(&t.p);
	assert_int_equal(get_rec(&t.c, &seq), 64);      /* tail_cache 256 */
	atomic_store(&t.prod->tail, 128);
	assert_int_equal(shn_ring_load_tail(&t.c), -EBADMSG);
	atomic_store(&t.prod->tail, 256);
	assert_int_equal(shn_ring_load_tail(&t.c), 0);
	assert_int_equal(get_rec(&t.c, &seq), 64);
	assert_int_equal(seq, 2);
	/* tail exactly one capacity ahead of the (private) head: legal */
	atomic_store(&t.prod->tail, 128 + 4096);
	assert_int_equal(shn_ring_load_tail(&t.c), 0);
	atomic_store(&t.prod->tail, 128 + 4096 + 8);
	assert_int_equal(shn_ring_load_tail(&t.c), -EBADMSG);
	tring_free(&t);
}

/* A hostile producer rewriting a record's header after the consumer saw the
 * tail: the consumer reads len once and validates it. */
static void test_len_read_once(void **state)
{
	struct tring t;
	const uint8_t *rec = NULL;
	uint32_t len = 0;
	(void)state;

	tring_init(&t, 4096);
	assert_non_null(put_rec(&t.p, 64, 1));
	shn_ring_publish(&t.p);
	assert_int_equal(shn_ring_next(&t.c, &rec, &len), 1);
	assert_int_equal(len, 64);
	/* the producer now rewrites len: the consumer keeps the validated value */
	((struct shn_rec_hdr *)t.data)->len = 4096;
	shn_ring_consume(&t.c, len);
	assert_int_equal(t.c.head, 64);
	tring_free(&t);
}

/* ---- need-wakeup ------------------------------------------------------ */

static void test_sleep_protocol(void **state)
{
	struct tring t;
	uint32_t woke = 0;
	uint64_t seq;
	(void)state;

	tring_init(&t, 4096);
	assert_int_equal(atomic_load(&t.cons->sleep_seq), 0);
	/* nobody sleeps: no wake-up needed */
	assert_false(shn_wake_needed(&t.cons->sleep_seq, &woke));

	/* empty ring: may sleep; word odd */
	assert_true(shn_ring_prepare_sleep(&t.c));
	assert_int_equal(atomic_load(&t.cons->sleep_seq), 1);
	/* exactly one wake-up for this sleep */
	assert_true(shn_wake_needed(&t.cons->sleep_seq, &woke));
	assert_false(shn_wake_needed(&t.cons->sleep_seq, &woke));
	assert_false(shn_wake_needed(&t.cons->sleep_seq, &woke));
	/* a second waker with its own memory wakes too (separate producers) */
	uint32_t woke2 = 0;
	assert_true(shn_wake_needed(&t.cons->sleep_seq, &woke2));
	shn_ring_finish_sleep(&t.c);
	assert_int_equal(atomic_load(&t.cons->sleep_seq), 2);
	shn_ring_finish_sleep(&t.c);                     /* no-op when awake */
	assert_int_equal(atomic_load(&t.cons->sleep_seq), 2);
	assert_false(shn_wake_needed(&t.cons->sleep_seq, &woke));

	/* a new sleep is a new value: one more wake-up */
	assert_true(shn_ring_prepare_sleep(&t.c));
	assert_int_equal(atomic_load(&t.cons->sleep_seq), 3);
	/* preparing again while asleep keeps the same value */
	assert_true(shn_ring_prepare_sleep(&t.c));
	assert_int_equal(atomic_load(&t.cons->sleep_seq), 3);
	assert_true(shn_wake_needed(&t.cons->sleep_seq, &woke));
	assert_false(shn_wake_needed(&t.cons->sleep_seq, &woke));
	shn_ring_finish_sleep(&t.c);
	assert_int_equal(atomic_load(&t.cons->sleep_seq), 4);

	/* data present (published, unread): prepare_sleep says no, word even */
	assert_non_null(put_rec(&t.p, 32, 1));
	shn_ring_publish(&t.p);
	assert_false(shn_ring_prepare_sleep(&t.c));
	assert_int_equal(atomic_load(&t.cons->sleep_seq) & 1u, 0);
	assert_false(shn_wake_needed(&t.cons->sleep_seq, &woke));
	/* data seen (tail cached) but not consumed: still no sleep */
	const uint8_t *rec = NULL;
	uint32_t len = 0;
	assert_int_equal(shn_ring_next(&t.c, &rec, &len), 1);
	assert_false(shn_ring_prepare_sleep(&t.c));
	assert_int_equal(atomic_load(&t.cons->sleep_seq) & 1u, 0);
	shn_ring_consume(&t.c, len);
	/* committed but unpublished data does not count */
	assert_non_null(put_rec(&t.p, 32, 2));
	uint32_t s0 = atomic_load(&t.cons->sleep_seq);
	assert_true(shn_ring_prepare_sleep(&t.c));
	assert_int_equal(atomic_load(&t.cons->sleep_seq), s0 + 1);
	/* producer publishes and checks: exactly one wake-up */
	shn_ring_publish(&t.p);
	assert_true(shn_wake_needed(&t.cons->sleep_seq, &t.p.woke_sleep_seq));
	assert_false(shn_wake_needed(&t.cons->sleep_seq, &t.p.woke_sleep_seq));
	shn_ring_finish_sleep(&t.c);
	assert_int_equal(get_rec(&t.c, &seq), 32);
	assert_int_equal(seq, 2);
	shn_ring_release(&t.c);
	/* sleeping word from a previous value does not fool a waker */
	assert_false(shn_wake_needed(&t.cons->sleep_seq, &t.p.woke_sleep_seq));
	tring_free(&t);
}

static void test_wait_protocol(void **state)
{
	struct tring t;
	int err;
	uint64_t seq;
	(void)state;

	tring_init(&t, 4096);
	assert_int_equal(atomic_load(&t.prod->wait_seq), 0);
	/* room present: no wait */
	err = 1;
	assert_false(shn_ring_prepare_wait(&t.p, 64, &err));
	assert_int_equal(err, 0);
	assert_int_equal(atomic_load(&t.prod->wait_seq) & 1u, 0);
	assert_false(shn_wake_needed(&t.prod->wait_seq, &t.c.woke_wait_seq));

	/* fill the ring */
	while (put_rec(&t.p, 256, 0) != NULL)
		;
	shn_ring_publish(&t.p);
	uint32_t s0 = atomic_load(&t.prod->wait_seq);
	err = 1;
	assert_true(shn_ring_prepare_wait(&t.p, 64, &err));
	assert_int_equal(err, 0);
	assert_int_equal(atomic_load(&t.prod->wait_seq), s0 + 1);
	/* the consumer frees room: exactly one wake-up */
	assert_int_equal(get_rec(&t.c, &seq), 256);
	shn_ring_release(&t.c);
	assert_true(shn_wake_needed(&t.prod->wait_seq, &t.c.woke_wait_seq));
	assert_false(shn_wake_needed(&t.prod->wait_seq, &t.c.woke_wait_seq));
	shn_ring_finish_wait(&t.p);
	assert_int_equal(atomic_load(&t.prod->wait_seq), s0 + 2);
	shn_ring_finish_wait(&t.p);                      /* no-op when awake */
	assert_int_equal(atomic_load(&t.prod->wait_seq), s0 + 2);
	assert_false(shn_wake_needed(&t.prod->wait_seq, &t.c.woke_wait_seq));
	/* room now: the record fits */
	assert_non_null(put_rec(&t.p, 64, 0));

	/* full again; room freed between "wants to wait" and the re-check:
	 * prepare_wait sees it (the fence) and declines, word even */
	while (put_rec(&t.p, 64, 0) != NULL)
		;
	shn_ring_publish(&t.p);
	assert_int_equal(get_rec(&t.c, &seq), 256);
	shn_ring_release(&t.c);
	err = 1;
	assert_false(shn_ring_prepare_wait(&t.p, 64, &err));
	assert_int_equal(err, 0);
	assert_int_equal(atomic_load(&t.prod->wait_seq) & 1u, 0);
	/* not enough room for a larger record: waits */
	err = 1;
	assert_true(shn_ring_prepare_wait(&t.p, 512, &err));
	assert_int_equal(err, 0);
	uint32_t s1 = atomic_load(&t.prod->wait_seq);
	assert_int_equal(s1 & 1u, 1);
	assert_true(shn_wake_needed(&t.prod->wait_seq, &t.c.woke_wait_seq));
	assert_false(shn_wake_needed(&t.prod->wait_seq, &t.c.woke_wait_seq));
	shn_ring_finish_wait(&t.p);
	/* a later wait is a new odd value: wakes again */
	err = 1;
	assert_true(shn_ring_prepare_wait(&t.p, 512, &err));
	assert_int_equal(atomic_load(&t.prod->wait_seq), s1 + 2);
	assert_true(shn_wake_needed(&t.prod->wait_seq, &t.c.woke_wait_seq));
	shn_ring_finish_wait(&t.p);
	tring_free(&t);
}

/* The producer's room request (shn_ring_ask_room / shn_ring_room_wanted),
 * including the interleaving that lost a wake-up when the request was a
 * counter: the consumer releases head H, the producer loads that same H
 * and asks; the consumer must not ring for H (nothing new for the
 * producer), and must ring on its next release. */
static void test_room_request(void **state)
{
	struct tring t;
	uint64_t seq, rung = 0, h;
	int err;
	(void)state;

	tring_init(&t, 4096);
	while (put_rec(&t.p, 256, 0) != NULL)
		;
	shn_ring_publish(&t.p);
	/* no request: releasing never asks for a doorbell */
	assert_int_equal(get_rec(&t.c, &seq), 256);
	shn_ring_release(&t.c);
	assert_false(shn_ring_room_wanted(&t.c, &rung));

	/* the producer loads the head the consumer just released, finds no
	 * room for a big record, asks */
	assert_int_equal(shn_ring_load_head(&t.p), 0);
	h = t.p.head_cache;
	assert_int_equal(h, t.c.head);
	assert_null(shn_ring_reserve(&t.p, 1024, &err));
	assert_int_equal(err, 0);
	shn_ring_ask_room(&t.p, h);
	/* the consumer reads the request right after that release: no ring */
	assert_false(shn_ring_room_wanted(&t.c, &rung));
	/* its next release moved past h: exactly one ring */
	assert_int_equal(get_rec(&t.c, &seq), 256);
	shn_ring_release(&t.c);
	assert_true(shn_ring_room_wanted(&t.c, &rung));
	assert_false(shn_ring_room_wanted(&t.c, &rung));
	assert_int_equal(get_rec(&t.c, &seq), 256);
	shn_ring_release(&t.c);
	assert_false(shn_ring_room_wanted(&t.c, &rung));   /* answered already */

	/* a new request at the new head rings again once the head passes it */
	assert_int_equal(shn_ring_load_head(&t.p), 0);
	shn_ring_ask_room(&t.p, t.p.head_cache);
	assert_false(shn_ring_room_wanted(&t.c, &rung));
	assert_int_equal(get_rec(&t.c, &seq), 256);
	shn_ring_release(&t.c);
	assert_true(shn_ring_room_wanted(&t.c, &rung));
	tring_free(&t);
}

int main(void)
{
	const char *s = getenv("SHN_TEST_SEED");
	if (s != NULL)
		rng_state = strtoull(s, NULL, 0);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_capacity),
		cmocka_unit_test(test_layout),
		cmocka_unit_test(test_roundtrip),
		cmocka_unit_test(test_min_record),
		cmocka_unit_test(test_wrap_small),
		cmocka_unit_test(test_wrap_varied),
		cmocka_unit_test(test_max_record_fits),
		cmocka_unit_test(test_cost),
		cmocka_unit_test(test_rollback),
		cmocka_unit_test(test_bad_head),
		cmocka_unit_test(test_bad_records),
		cmocka_unit_test(test_bad_tail),
		cmocka_unit_test(test_len_read_once),
		cmocka_unit_test(test_sleep_protocol),
		cmocka_unit_test(test_wait_protocol),
		cmocka_unit_test(test_room_request),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
