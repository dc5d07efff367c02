/* SPDX-License-Identifier: MIT */
/*
 * hostile_ring.h - what the ring fuzz targets share: the input reader, and
 * a consumer draining a ring whose producer is hostile (every byte of the
 * data, the tail and its later values come from the fuzzer's input).
 *
 * fuzz_ring drains a publish ring as the broker does, fuzz_direct a direct
 * ring as a subscriber's library does; each passes its own record check.
 * Header-only, included by one fuzz target each (FUZZ_NAME names it in
 * failure messages).
 */
#ifndef SHN_TESTS_FUZZ_HOSTILE_RING_H
#define SHN_TESTS_FUZZ_HOSTILE_RING_H

#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shm/ring.h"

#ifndef FUZZ_NAME
#error "define FUZZ_NAME before including hostile_ring.h"
#endif

#define CHECK(cond)                                                                  \
	do {                                                                         \
		if (!(cond)) {                                                       \
			fprintf(stderr, FUZZ_NAME ": %s:%d: %s\n", __FILE__, __LINE__, #cond); \
			abort();                                                     \
		}                                                                    \
	} while (0)

struct input {
	const uint8_t *p;
	size_t n, pos;
};

/* The next `bytes` bytes of input, little-endian; zeros past its end. */
static inline uint64_t take(struct input *in, size_t bytes)
{
	uint64_t v = 0;

	for (size_t i = 0; i < bytes; i++) {
		uint8_t b = in->pos < in->n ? in->p[in->pos] : 0;

		in->pos++;
		v |= (uint64_t)b << (8 * i);
	}
	return v;
}

/* A record shn_ring_next() returned: true to consume it and go on, false
 * when the consumer gives the ring up (the broker cuts the client off, the
 * library sends DIRECT_FAULT).  w is the record's writable bytes (the
 * hostile producer may rewrite them after the check), iter the step. */
typedef bool (*hostile_record_fn)(void *ctx, const uint8_t *rec, uint32_t len, uint8_t *w,
				  int iter);

/* Lay a ring of capacity cap from the input (head, tail, up to 8 later
 * tails, then the data bytes from the head's offset; mode bit 0 keeps the
 * tails near the head), then drain it with shn_ring_next(), checking its
 * promises on every record it returns and passing each to fn. */
static inline void hostile_ring_drain(struct input *in, uint32_t cap, uint8_t mode,
				      hostile_record_fn fn, void *ctx)
{
	struct shn_ring_prod *prod = aligned_alloc(64, 64);
	struct shn_ring_cons *cons = aligned_alloc(64, 64);
	uint8_t *data = malloc(cap);
	struct shn_ring r;
	uint64_t head0 = take(in, 8) & ~(uint64_t)7;
	uint64_t tail = take(in, 8);
	unsigned ntails = (unsigned)take(in, 1) % 8;
	uint64_t tails[8];
	unsigned next_tail = 0;
	size_t body;

	CHECK(prod != NULL && cons != NULL && data != NULL);
	for (unsigned i = 0; i < ntails; i++)
		tails[i] = take(in, 8);
	if (mode & 1) {
		tail = head0 + tail % ((uint64_t)cap + 64);
		for (unsigned i = 0; i < ntails; i++)
			tails[i] = head0 + tails[i] % (2ull * cap + 64);
	}
	/* the ring's bytes, laid from the head's offset */
	memset(data, 0, cap);
	body = in->pos < in->n ? in->n - in->pos : 0;
	for (size_t i = 0; i < body && i < cap; i++)
		data[(head0 + i) & (cap - 1)] = in->p[in->pos + i];

	memset(prod, 0, 64);
	memset(cons, 0, 64);
	prod->capacity = cap;
	prod->magic = SHN_RING_MAGIC;
	atomic_store(&prod->tail, head0);
	atomic_store(&cons->head, head0);
	shn_ring_init_view(&r, prod, cons, data, cap);
	atomic_store(&prod->tail, tail);

	for (int iter = 0; iter < 4096; iter++) {
		const uint8_t *rec;
		uint32_t len;
		int ret = shn_ring_next(&r, &rec, &len);

		if (ret < 0) {
			CHECK(ret == -EBADMSG);
			break;               /* the ring is never read again */
		}
		if (ret == 0) {
			if (next_tail >= ntails)
				break;
			atomic_store(&prod->tail, tails[next_tail++]);
			continue;
		}
		/* shn_ring_next's promises */
		CHECK(ret == 1);
		CHECK(rec >= data && len >= sizeof(struct shn_rec_hdr) && len % 8 == 0);
		CHECK((uint64_t)(rec - data) + len <= cap);
		CHECK((uint64_t)(rec - data) == (r.head & (cap - 1)));
		CHECK(len <= r.tail_cache - r.head);
		CHECK(r.tail_cache - r.head <= cap);
		if (!fn(ctx, rec, len, data + (r.head & (cap - 1)), iter))
			break;
		shn_ring_consume(&r, len);
		if (iter % 4 == 3)
			shn_ring_release(&r);
	}
	shn_ring_release(&r);
	CHECK(atomic_load(&cons->head) == r.head);
	free(data);
	free(cons);
	free(prod);
}

#endif /* SHN_TESTS_FUZZ_HOSTILE_RING_H */
