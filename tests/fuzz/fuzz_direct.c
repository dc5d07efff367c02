/* SPDX-License-Identifier: MIT */
/*
 * fuzz_direct.c - libFuzzer target for what a subscriber's library does with
 * a direct ring a hostile publisher writes (docs/direct-path.md, "Trust does
 * not move to the publisher"): shn_ring_next() over any tail and any bytes,
 * the copy into private memory, and shn_direct_record_check() (shm/direct.h),
 * record after record, as the reader drains a ring; then the publisher's
 * filter-table lookup (shn_ftab_lookup) over a half made of the same bytes
 * (a torn read, or a broker mid-rewrite).
 *
 * Input (little-endian, missing bytes read as zero):
 *   [0]      capacity: 4096 << (b % 5)
 *   [1]      mode: bit 0 tail near the head, bit 1 rewrite each record
 *            after the check (the publisher racing the reader), bit 2
 *            the reader has told 2^40 lost already, bit 3 UINT64_MAX -
 *            2^16 (a record's lost, all told, may not go back, nor on by
 *            more than SHN_DIRECT_LOST_MAX)
 *   [2..9]   the consumer's head before (its own, so a multiple of 8)
 *   [10..17] the tail the publisher publishes
 *   [18]     n: how many later tails follow (n % 8), 8 bytes each
 *   then     the ring's bytes, laid from the head's offset (wrapping), and
 *            the same bytes again as a filter-table half
 * The data area is its own allocation of exactly capacity bytes, so
 * AddressSanitizer reports any access outside it.
 */
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shm/direct.h"
#include "shm/proto.h"
#include "shm/ring.h"

#define FUZZ_NAME "fuzz_direct"
#include "hostile_ring.h"

static volatile uint64_t sink;

static const struct shn_direct_limits limits = {
	.max_key_len = SHN_KEY_MAX_WIRE, .max_data_len = SHN_DATA_MAX_WIRE, .min_gen = 1,
};

/* The conn a run's key and event earn: what the hook below gives, and
 * what every run must carry after the check, whether the hook saw it or
 * it took the conn of the run before it (the repeated-key shortcut). */
static uint64_t conn_of(uint32_t event, const uint8_t *key, uint32_t key_len)
{
	uint64_t h = 1469598103934665603ull ^ event;

	for (uint32_t k = 0; k < key_len; k++)
		h = (h ^ key[k]) * 1099511628211ull;
	return h | 1u;
}

static int hook(void *ctx, struct shn_direct_run *n, const uint8_t *key, uint64_t gen)
{
	(void)ctx;
	(void)gen;
	n->conn = conn_of(n->event, key, n->key_len);
	return 0;
}

/* The bytes from used up to sz of a checked part are zero. */
static void check_pad(const uint8_t *copy, uint64_t at, uint32_t used, uint32_t sz)
{
	for (uint32_t k = used; k < sz; k++)
		CHECK(copy[at + k] == 0);
}

/* What the reader does with a record shn_ring_next() returned: copy it, then
 * believe nothing but the copy.  True when it would deliver it. */
static bool check_record(const uint8_t *rec, uint32_t len, struct shn_direct_seen *seen)
{
	uint8_t *copy = aligned_alloc(8, len);
	struct shn_direct_seen before = *seen;
	const struct shn_direct_batch *b;
	uint64_t off = sizeof(*b);
	uint32_t notes = 0;
	int count;

	CHECK(copy != NULL);
	memcpy(copy, rec, len);
	count = shn_direct_record_check(copy, len, &limits, seen, hook, NULL);
	if (count < 0) {
		CHECK(count == -EBADMSG);
		CHECK(seen->batch_id == before.batch_id && seen->gen == before.gen &&
		      seen->lost == before.lost);
		free(copy);
		return false;
	}
	/* the promises: a record of runs holding count notes that tile it,
	 * every field in range, the ring's order respected */
	b = (const void *)copy;
	CHECK(count >= 1 && (uint32_t)count == b->count);
	CHECK(b->h.len == len && b->h.type == SHN_REC_DIRECT && b->h.flags == 0);
	CHECK(b->sender_pid == 0 && b->sender_uid == 0 && b->flags == 0);
	CHECK(b->batch_id > before.batch_id && b->gen >= before.gen && b->gen >= limits.min_gen);
	/* lost counts all told: never back, at most SHN_DIRECT_LOST_MAX on
	 * (what the reader reports is the difference) */
	CHECK(b->lost >= before.lost && b->lost - before.lost <= SHN_DIRECT_LOST_MAX);
	CHECK(seen->batch_id == b->batch_id && seen->gen == b->gen && seen->lost == b->lost);
	while (off < len) {
		const struct shn_direct_run *n = (const void *)(copy + off);
		const uint8_t *key = (const uint8_t *)(n + 1);
		uint32_t sz = shn_direct_run_size(n->key_len);
		uint64_t x = 0;

		CHECK(off % 8 == 0 && off + sizeof(*n) <= len);
		CHECK(n->event != 0 && (n->event & SHN_EV_SYSTEM_WIRE) == 0);
		CHECK(n->key_len >= 1 && n->key_len <= limits.max_key_len);
		CHECK(n->flags == 0 ? n->data_len == 0
				    : n->flags == SHN_DIRECT_RUN_SAME_LEN && n->data_len >= 1 &&
				      n->data_len <= limits.max_data_len);
		CHECK(n->count >= 1 && n->count <= b->count - notes);
		CHECK(off + sz <= len);
		CHECK(n->conn == conn_of(n->event, key, n->key_len));   /* the hook's, or a twin's */
		check_pad(copy, off, (uint32_t)sizeof(*n) + n->key_len, sz);
		for (uint32_t k = 0; k < n->key_len; k++)
			x = x * 31 + key[k];
		off += sz;
		notes += n->count;
		/* a run of one length: count slots of it, each data and zero
		 * padding */
		for (uint32_t i = 0; i < n->count && n->flags != 0; i++) {
			const uint8_t *data = copy + off;

			sz = (uint32_t)SHN_ALIGN8(n->data_len);
			CHECK(off % 8 == 0 && off + sz <= len);
			check_pad(copy, off, n->data_len, sz);
			for (uint32_t k = 0; k < n->data_len; k++)
				x = x * 31 + data[k];
			off += sz;
		}
		for (uint32_t i = 0; i < n->count && n->flags == 0; i++) {
			const struct shn_direct_item *it = (const void *)(copy + off);
			const uint8_t *data = (const uint8_t *)(it + 1);

			CHECK(off % 8 == 0 && off + sizeof(*it) <= len);
			CHECK(it->reserved == 0 && it->data_len <= limits.max_data_len);
			sz = shn_direct_item_size(it->data_len);
			CHECK(off + sz <= len);
			check_pad(copy, off, (uint32_t)sizeof(*it) + it->data_len, sz);
			/* what the reader hands out as key and data */
			for (uint32_t k = 0; k < it->data_len; k++)
				x = x * 31 + data[k];
			off += sz;
		}
		sink += x;
	}
	CHECK(off == len && notes == b->count);
	free(copy);
	return true;
}

/* The subscriber's library as the reader of a direct ring: each record is
 * copied and checked; with mode bit 1 the publisher rewrites it after the
 * copy (the copy already decided: a second look would be a new record). */
struct reader_ctx {
	uint8_t mode;
	struct shn_direct_seen seen;
};

static bool reader_record(void *ctx, const uint8_t *rec, uint32_t len, uint8_t *w, int iter)
{
	struct reader_ctx *rc = ctx;

	if (!check_record(rec, len, &rc->seen))
		return false;
	if (rc->mode & 2)
		w[(iter * 7u) % len] ^= (uint8_t)(0x5a + iter);
	return true;
}

static void consume(struct input *in, uint32_t cap, uint8_t mode)
{
	struct reader_ctx rc = { .mode = mode, .seen = { 0, 0, 0 } };

	if (mode & 4)
		rc.seen.lost = 1ull << 40;
	if (mode & 8)
		rc.seen.lost = UINT64_MAX - 0xffff;

	hostile_ring_drain(in, cap, mode, reader_record, &rc);
}

/* Any hash does: the half is garbage.  A weak one (the key's first bytes)
 * makes the prefix probes land where the input's slots are. */
static uint64_t weak_hash(const void *key, size_t len)
{
	uint64_t h = len;

	memcpy(&h, key, len < 8 ? len : 8);
	return h ^ len;
}

/* The publisher's lookup over a half of the input's bytes: it reads only
 * inside the segment and answers something sane (prefix lengths and slots
 * of garbage included). */
static void lookup(const uint8_t *p, size_t n)
{
	const uint32_t max_filters = 16, nslots = 32, key_bytes = 512;
	uint64_t size = shn_ftab_seg_size(max_filters, nslots, key_bytes);
	struct shn_ftab_hdr *t = aligned_alloc(64, (size_t)size);
	struct shn_ftab_match m[8];
	uint8_t *half;
	uint64_t hash = 0;
	int rc;

	CHECK(t != NULL);
	memset(t, 0, (size_t)size);
	shn_ftab_layout(t, max_filters, nslots, key_bytes);
	CHECK(shn_ftab_geometry_ok(t, size));
	half = shn_ftab_half_at(t, 1);
	for (uint64_t i = 0; i < t->half_size && i < n; i++)
		half[i] = p[i];
	uint8_t key[64] = { 'k' };
	uint32_t key_len = n == 0 ? 1 : (n > sizeof(key) ? (uint32_t)sizeof(key) : (uint32_t)n);

	memcpy(key, p, n < key_len ? n : key_len);
	if (n >= 8)
		memcpy(&hash, p, 8);
	rc = shn_ftab_lookup(t, 1, hash, key, key_len, m, 8, weak_hash);
	CHECK(rc == -EAGAIN || rc == -EBADMSG || rc == -ENOSPC || (rc >= 0 && rc <= 8));
	for (int i = 0; i < rc; i++)
		CHECK(m[i].mask != 0);
	free(t);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct input in = { data, size, 0 };
	uint32_t cap = 4096u << (take(&in, 1) % 5);
	uint8_t mode = (uint8_t)take(&in, 1);
	size_t body_at;

	consume(&in, cap, mode);
	body_at = in.pos < size ? in.pos : size;
	lookup(data + body_at, size - body_at);
	return 0;
}
