/* SPDX-License-Identifier: MIT */
/*
 * fuzz_ring.c - libFuzzer target for what the broker does with a ring a
 * client can write: shn_ring_next() over a hostile publish ring (any tail,
 * any bytes), the copy, and the record validator (broker/validate.c:
 * shnd_pub_batch_check, shnd_pub_notes_check), exactly as the router drains
 * a publish ring; then the producer side over a hostile consumer head
 * (shn_ring_load_head, shn_ring_reserve), as the broker writes a delivery
 * ring.
 *
 * Input (little-endian, missing bytes read as zero):
 *   [0]      capacity: 4096 << (b % 5)
 *   [1]      mode: bit 0 tail near the head, bit 1 rewrite each record
 *            after the first check (a publisher racing the broker)
 *   [2..9]   the consumer's head before (its own, so a multiple of 8)
 *   [10..17] the tail the client publishes
 *   [18]     n: how many later tails follow (n % 8), 8 bytes each
 *   then     the ring's bytes, laid from the head's offset (wrapping), and
 *            the same bytes again as the producer-side script
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

#include "broker/validate.h"
#include "shm/proto.h"
#include "shm/ring.h"

#define FUZZ_NAME "fuzz_ring"
#include "hostile_ring.h"

static volatile uint64_t sink;

/* What the router (pubring.c) does with a record shn_ring_next() returned: copy it, then
 * believe nothing but the copy.  True when the broker would route it. */
static bool check_record(const uint8_t *rec, uint32_t len)
{
	uint8_t *copy = malloc(len);
	uint32_t *notes;
	uint64_t del = sizeof(struct shn_del_batch), prev_end;
	int count, n;

	CHECK(copy != NULL);
	memcpy(copy, rec, len);
	count = shnd_pub_batch_check(copy, len);
	if (count < 0) {
		CHECK(count == -EBADMSG);
		free(copy);
		return false;
	}
	CHECK(count >= 1);
	CHECK((uint64_t)count * sizeof(struct shn_pub_note) + sizeof(struct shn_pub_batch) <= len);
	notes = malloc((size_t)count * sizeof(*notes));
	CHECK(notes != NULL);
	n = shnd_pub_notes_check(copy, len, (uint32_t)count, notes);
	if (n < 0) {
		CHECK(n == -EBADMSG);
		free(notes);
		free(copy);
		return false;
	}
	CHECK(n == count);
	/* the notes tile the record, each inside it, fields in range */
	prev_end = sizeof(struct shn_pub_batch);
	for (int i = 0; i < n; i++) {
		const struct shn_pub_note *pn = (const void *)(copy + notes[i]);
		const uint8_t *body = (const uint8_t *)(pn + 1);
		uint64_t x = 0;

		CHECK(notes[i] == prev_end);
		CHECK(notes[i] % 8 == 0);
		CHECK(pn->key_len >= 1 && pn->key_len <= SHN_KEY_MAX_WIRE);
		CHECK(pn->data_len <= SHN_DATA_MAX_WIRE);
		CHECK(pn->event != 0);
		if (pn->event & SHN_EV_SYSTEM_WIRE) {
			/* only a gap report (shn_notify_gap): OVERFLOW alone, data an
			 * 8-byte little-endian count that is not 0 */
			uint64_t lost = 0;

			CHECK(pn->event == SHN_EV_OVERFLOW_WIRE && pn->data_len == 8);
			for (int b = 7; b >= 0; b--)
				lost = lost << 8 | body[pn->key_len + b];
			CHECK(lost != 0);
		}
		prev_end = notes[i] + shn_pub_note_size(pn->key_len, pn->data_len);
		CHECK(prev_end <= len);
		/* what collect() hashes and deliver() copies */
		for (uint32_t k = 0; k < (uint32_t)pn->key_len + pn->data_len; k++)
			x = x * 31 + body[k];
		sink += x;
		del += shn_del_note_size(pn->key_len, pn->data_len);
	}
	CHECK(prev_end == len);
	/* a delivered record of these notes fits a uint32_t length */
	CHECK(del <= UINT32_MAX);
	free(notes);
	free(copy);
	return true;
}

/* The broker as the consumer of a publish ring: each record is copied and
 * validated; with mode bit 1 the publisher then rewrites it, and a SYNC
 * batch is copied and validated again (sync.c sync_load). */
static bool broker_record(void *ctx, const uint8_t *rec, uint32_t len, uint8_t *w, int iter)
{
	uint8_t mode = *(const uint8_t *)ctx;

	if (!check_record(rec, len))
		return false;
	if (mode & 2) {
		w[(iter * 7u) % len] ^= (uint8_t)(0x5a + iter);
		if (len > 8)
			w[8 + (iter * 13u) % (len - 8)] ^= 0xff;
		(void)check_record(rec, len);
	}
	return true;
}

static void consume(struct input *in, uint32_t cap, uint8_t mode)
{
	hostile_ring_drain(in, cap, mode, broker_record, &mode);
}

/* The broker as the producer of a delivery ring whose consumer head the
 * client writes: the script is the input's bytes again. */
static void produce(const uint8_t *script, size_t n, uint32_t cap)
{
	struct shn_ring_prod *prod = aligned_alloc(64, 64);
	struct shn_ring_cons *cons = aligned_alloc(64, 64);
	uint8_t *data = malloc(cap);
	struct shn_ring w;
	uint64_t last_head = 0;

	CHECK(prod != NULL && cons != NULL && data != NULL);
	memset(prod, 0, 64);
	memset(cons, 0, 64);
	prod->capacity = cap;
	shn_ring_init_view(&w, prod, cons, data, cap);

	for (size_t i = 0; i + 3 <= n; i += 3) {
		uint8_t op = script[i];
		uint32_t arg = (uint32_t)script[i + 1] | (uint32_t)script[i + 2] << 8;
		int err = 0;

		if (op & 1) {
			/* the consumer writes its head: plausible or not */
			uint64_t h;

			if (op & 2)
				h = w.head_cache + (arg % (shn_ring_used(&w) + 1)) / 8 * 8;
			else
				h = (uint64_t)arg << (op >> 2);
			atomic_store(&cons->head, h);
			if (op & 4) {
				err = shn_ring_load_head(&w);
				if (err) {
					CHECK(err == -EBADMSG);
					break;   /* the owner is cut off */
				}
			}
		} else {
			uint32_t len = 8 + (arg % (shn_ring_max_record(cap) / 8)) * 8;
			uint8_t *p = shn_ring_reserve(&w, len, &err);

			if (err) {
				CHECK(err == -EBADMSG && p == NULL);
				break;
			}
			if (p != NULL) {
				struct shn_rec_hdr *h = (void *)p;

				CHECK(p >= data && (uint64_t)(p - data) + len <= cap);
				memset(p, 0xab, len);
				h->len = len;
				h->type = SHN_REC_DELIVERY;
				h->flags = 0;
				shn_ring_commit(&w, len);
				shn_ring_publish(&w);
			}
		}
		CHECK(w.head_cache >= last_head);
		CHECK(shn_ring_used(&w) <= cap);
		last_head = w.head_cache;
	}
	free(data);
	free(cons);
	free(prod);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct input in = { data, size, 0 };
	uint32_t cap = 4096u << (take(&in, 1) % 5);
	uint8_t mode = (uint8_t)take(&in, 1);
	size_t script;

	consume(&in, cap, mode);
	script = in.pos < size ? in.pos : size;
	produce(data + script, size - script, cap);
	return 0;
}
