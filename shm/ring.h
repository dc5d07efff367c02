/* SPDX-License-Identifier: MIT */
/*
 * ring.h - the single-producer/single-consumer byte ring in shared memory.
 *
 * Model: io_uring's SQ/CQ rings.  Indices are free-running 64-bit byte
 * counters masked by a power-of-two capacity.  Each index is written by
 * exactly one side: the producer owns `tail` (and its wait word), the
 * consumer owns `head` (and its sleep word).  The producer writes records,
 * then store-releases the tail once per batch; the consumer load-acquires
 * the tail, reads, then store-releases the head.
 *
 * Records are variable length, 8-byte aligned, and never straddle the end
 * of the data area: a producer that cannot fit a record before the end
 * writes a PAD record covering the rest and starts again at offset 0.
 * Hence the largest record that always eventually fits is capacity / 2.
 *
 * Wake-ups (the need-wakeup idea, see docs/ring.md for the proof):
 *   sleeper:  seq++ (odd: asleep); FULL FENCE; re-check the peer's index;
 *             block only if still nothing to do; on waking seq++ (even).
 *   waker:    store index (release); FULL FENCE; load seq; if odd and not
 *             already woken for this value, write the eventfd.
 * Either the waker sees the odd seq, or the sleeper's re-check sees the new
 * index: the two full fences forbid both loads missing both stores.
 *
 * Nothing here trusts the peer: every index read from shared memory is
 * range-checked, and shn_ring_next() reports corruption as -EBADMSG.
 * No sockets, no policy, libc only.
 */
#ifndef SHN_SHM_RING_H
#define SHN_SHM_RING_H

#include <errno.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define SHN_CACHELINE 64

/* Bytes reserved at the start of a ring segment for its control lines;
 * the data area begins here. */
#define SHN_RING_HDR_SIZE 256u
#define SHN_RING_MIN_CAPACITY 4096u
#define SHN_RING_MAX_CAPACITY (1u << 30)

/* Producer's control line.  Written by the producer only. */
struct shn_ring_prod {
	alignas(SHN_CACHELINE) _Atomic uint64_t tail; /* bytes ever published */
	_Atomic uint32_t wait_seq;   /* odd while the producer sleeps waiting for room */
	uint32_t capacity;           /* data bytes, power of two; set once at creation */
	_Atomic uint64_t room_head;  /* 0, or: the producer waits for room; ring its
	                                doorbell once you release a head >= this */
	uint32_t magic;              /* SHN_RING_MAGIC; set once at creation */
};

/* Consumer's control line.  Written by the consumer only. */
struct shn_ring_cons {
	alignas(SHN_CACHELINE) _Atomic uint64_t head; /* bytes ever consumed */
	_Atomic uint32_t sleep_seq;  /* odd while the consumer sleeps (need-wakeup) */
	uint32_t reserved;
};

#define SHN_RING_MAGIC 0x52484e53u /* "SNHR" */

_Static_assert(sizeof(struct shn_ring_prod) == SHN_CACHELINE, "prod line");
_Static_assert(sizeof(struct shn_ring_cons) == SHN_CACHELINE, "cons line");

/* Record header: every record starts with one.  len includes the header and
 * is a multiple of 8. */
struct shn_rec_hdr {
	uint32_t len;
	uint16_t type;
	uint16_t flags;
};
#define SHN_REC_PAD 1u /* skip to the end of the data area */

#define SHN_ALIGN8(x) (((x) + 7u) & ~(uint64_t)7u)

/* A process-local view of one ring.  The control lines may live in
 * different segments (delivery rings keep the consumer line in a separate
 * writable segment: docs/design.md, rule 13). */
struct shn_ring {
	struct shn_ring_prod *prod;
	struct shn_ring_cons *cons;
	uint8_t *data;
	uint32_t capacity;
	uint32_t mask;
	/* producer side, private */
	uint64_t tail;          /* written but maybe not yet published */
	uint64_t head_cache;    /* last validated consumer head */
	/* consumer side, private */
	uint64_t head;          /* consumed but maybe not yet released */
	uint64_t tail_cache;    /* last validated producer tail */
	/* waker side, private: sleep/wait values already signalled */
	uint32_t woke_sleep_seq;
	uint32_t woke_wait_seq;
};

static inline bool shn_ring_capacity_ok(uint64_t cap)
{
	return cap >= SHN_RING_MIN_CAPACITY && cap <= SHN_RING_MAX_CAPACITY &&
	       (cap & (cap - 1)) == 0;
}

/* Round a requested capacity up to a power of two, at least the minimum.
 * Returns 0 when it cannot be represented. */
static inline uint32_t shn_ring_round_capacity(uint64_t want)
{
	uint64_t cap = SHN_RING_MIN_CAPACITY;

	while (cap < want && cap <= SHN_RING_MAX_CAPACITY)
		cap <<= 1;
	return (cap > SHN_RING_MAX_CAPACITY) ? 0 : (uint32_t)cap;
}

/* The largest record a producer can always eventually write. */
static inline uint32_t shn_ring_max_record(uint32_t capacity)
{
	return capacity / 2;
}

/* Attach a view.  Both sides call it; indices start from what the control
 * lines hold now (zero for a new ring). */
static inline void shn_ring_init_view(struct shn_ring *r, struct shn_ring_prod *prod,
				      struct shn_ring_cons *cons, uint8_t *data,
				      uint32_t capacity)
{
	memset(r, 0, sizeof(*r));
	r->prod = prod;
	r->cons = cons;
	r->data = data;
	r->capacity = capacity;
	r->mask = capacity - 1;
	r->tail = atomic_load_explicit(&prod->tail, memory_order_relaxed);
	r->tail_cache = r->tail;
	r->head = atomic_load_explicit(&cons->head, memory_order_relaxed);
	r->head_cache = r->head;
}

/* ---- producer --------------------------------------------------------- */

/* Refresh head_cache from the consumer's line.  Returns -EBADMSG when the
 * consumer wrote a head that is not between the last one and our tail. */
static inline int shn_ring_load_head(struct shn_ring *r)
{
	uint64_t h = atomic_load_explicit(&r->cons->head, memory_order_acquire);

	if (h - r->head_cache > r->tail - r->head_cache)
		return -EBADMSG;
	r->head_cache = h;
	return 0;
}

/* Bytes the producer has written that the consumer has not released, as
 * of the last shn_ring_load_head(). */
static inline uint64_t shn_ring_used(const struct shn_ring *r)
{
	return r->tail - r->head_cache;
}

/* How many bytes writing a record of len bytes at the current tail takes,
 * counting the PAD needed to wrap. */
static inline uint64_t shn_ring_cost(const struct shn_ring *r, uint32_t len)
{
	uint32_t off = (uint32_t)(r->tail & r->mask);
	uint32_t room = r->capacity - off;

	return (len <= room) ? len : (uint64_t)room + len;
}

/* Reserve len bytes (a multiple of 8, at most capacity / 2) for one record.
 * Returns where to write it, or NULL when the ring has no room now (after
 * one refresh of the consumer's head).  Sets *err to -EBADMSG if the
 * consumer's head is corrupt.  The caller fills the record, including its
 * header, then calls shn_ring_commit(). */
static inline void *shn_ring_reserve(struct shn_ring *r, uint32_t len, int *err)
{
	uint64_t cost = shn_ring_cost(r, len);

	*err = 0;
	if (r->capacity - shn_ring_used(r) < cost) {
		*err = shn_ring_load_head(r);
		if (*err || r->capacity - shn_ring_used(r) < cost)
			return NULL;
	}
	if (cost != len) {
		/* wrap: pad out the end of the data area */
		struct shn_rec_hdr *pad = (void *)(r->data + (r->tail & r->mask));
		pad->len = (uint32_t)(cost - len);
		pad->type = SHN_REC_PAD;
		pad->flags = 0;
		r->tail += cost - len;
	}
	return r->data + (r->tail & r->mask);
}

static inline void shn_ring_commit(struct shn_ring *r, uint32_t len)
{
	r->tail += len;
}

/* Drop records written since the last publish (a batch that did not fit
 * entirely is never published in part). */
static inline void shn_ring_rollback(struct shn_ring *r, uint64_t tail)
{
	r->tail = tail;
}

/* Publish every record committed so far: one release store per batch. */
static inline void shn_ring_publish(struct shn_ring *r)
{
	atomic_store_explicit(&r->prod->tail, r->tail, memory_order_release);
}

/* The waker's half of the need-wakeup protocol, for any sleep word: after
 * publishing, full fence, then true once for each distinct sleep (odd value)
 * of the peer.  *woke remembers which value was already signalled. */
static inline bool shn_wake_needed(_Atomic uint32_t *seq, uint32_t *woke)
{
	uint32_t s;

	atomic_thread_fence(memory_order_seq_cst);
	s = atomic_load_explicit(seq, memory_order_relaxed);
	if ((s & 1u) == 0 || s == *woke)
		return false;
	*woke = s;
	return true;
}

/* Producer: announce that it will sleep until room frees, then re-check.
 * Returns true when it may sleep (room still short after the fence); false
 * when room appeared (the wait word is already back to even). */
static inline bool shn_ring_prepare_wait(struct shn_ring *r, uint32_t len, int *err)
{
	uint32_t s = atomic_load_explicit(&r->prod->wait_seq, memory_order_relaxed);

	atomic_store_explicit(&r->prod->wait_seq, s | 1u, memory_order_relaxed);
	atomic_thread_fence(memory_order_seq_cst);
	*err = shn_ring_load_head(r);
	if (*err || r->capacity - shn_ring_used(r) >= shn_ring_cost(r, len)) {
		atomic_store_explicit(&r->prod->wait_seq, (s | 1u) + 1u, memory_order_relaxed);
		return false;
	}
	return true;
}

static inline void shn_ring_finish_wait(struct shn_ring *r)
{
	uint32_t s = atomic_load_explicit(&r->prod->wait_seq, memory_order_relaxed);

	if (s & 1u)
		atomic_store_explicit(&r->prod->wait_seq, s + 1u, memory_order_relaxed);
}

/* Producer: ask the consumer for a doorbell once it has consumed past
 * `seen`, the head the producer last loaded (and found short of room).  A
 * position, not a counter: a consumer that releases `seen` itself and
 * reads the request right after does not ring (it freed nothing the
 * producer has not already seen), and rings on its next release, which
 * does.  The producer must full-fence and re-check the head before it
 * sleeps (the broker's sleep re-check does). */
static inline void shn_ring_ask_room(struct shn_ring *r, uint64_t seen)
{
	atomic_store_explicit(&r->prod->room_head, seen + 1, memory_order_seq_cst);
}

/* One step of a spin on a peer's index: the CPU's pause hint (a sibling
 * hyperthread, the peer itself perhaps, gets the core meanwhile). */
static inline void shn_cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ __volatile__("yield");
#endif
}

/* ---- consumer --------------------------------------------------------- */

/* Refresh tail_cache.  -EBADMSG when the producer's tail moved backwards or
 * claims more than a ring's worth of unread data. */
static inline int shn_ring_load_tail(struct shn_ring *r)
{
	uint64_t t = atomic_load_explicit(&r->prod->tail, memory_order_acquire);

	if (t - r->head > r->capacity || t < r->tail_cache)
		return -EBADMSG;
	r->tail_cache = t;
	return 0;
}

/* Next record, skipping PADs.  Returns 1 and sets *rec and *len (the length read
 * exactly once from shared memory, validated against the ring); 0 when the
 * ring is empty; -EBADMSG on corruption.  The record's bytes may still be
 * changed by a hostile producer: copy before trusting its contents. */
static inline int shn_ring_next(struct shn_ring *r, const uint8_t **rec, uint32_t *len)
{
	for (;;) {
		if (r->head == r->tail_cache) {
			int err = shn_ring_load_tail(r);
			if (err)
				return err;
			if (r->head == r->tail_cache)
				return 0;
		}
		uint32_t off = (uint32_t)(r->head & r->mask);
		const struct shn_rec_hdr *h = (const void *)(r->data + off);
		uint32_t l = *(const volatile uint32_t *)&h->len;
		uint16_t type = *(const volatile uint16_t *)&h->type;

		if (l < sizeof(*h) || (l & 7u) || l > r->tail_cache - r->head ||
		    l > r->capacity - off)
			return -EBADMSG;
		if (type == SHN_REC_PAD) {
			if (l != r->capacity - off)
				return -EBADMSG;
			r->head += l;
			continue;
		}
		*rec = (const uint8_t *)h;
		*len = l;
		return 1;
	}
}

/* Mark the record returned by shn_ring_next() consumed (privately). */
static inline void shn_ring_consume(struct shn_ring *r, uint32_t len)
{
	r->head += len;
}

/* Release everything consumed so far to the producer. */
static inline void shn_ring_release(struct shn_ring *r)
{
	atomic_store_explicit(&r->cons->head, r->head, memory_order_release);
}

/* True when records are waiting (re-reads the tail). */
static inline bool shn_ring_readable(struct shn_ring *r)
{
	if (r->head != r->tail_cache)
		return true;
	return shn_ring_load_tail(r) != 0 || r->head != r->tail_cache;
}

/* Consumer, after shn_ring_release(): full fence, then true once per
 * request when the producer asked for room (shn_ring_ask_room) and the
 * released head has reached it.  *rung remembers the request answered. */
static inline bool shn_ring_room_wanted(struct shn_ring *r, uint64_t *rung)
{
	uint64_t want;

	atomic_thread_fence(memory_order_seq_cst);
	want = atomic_load_explicit(&r->prod->room_head, memory_order_relaxed);
	if (want == 0 || want == *rung || r->head < want)
		return false;
	*rung = want;
	return true;
}

/* Consumer: announce sleep, full fence, re-check.  Returns true when it may
 * block on its eventfd; false when data arrived (sleep word back to even). */
static inline bool shn_ring_prepare_sleep(struct shn_ring *r)
{
	uint32_t s = atomic_load_explicit(&r->cons->sleep_seq, memory_order_relaxed);

	if (!(s & 1u))
		atomic_store_explicit(&r->cons->sleep_seq, s + 1u, memory_order_relaxed);
	atomic_thread_fence(memory_order_seq_cst);
	if (shn_ring_readable(r)) {
		s = atomic_load_explicit(&r->cons->sleep_seq, memory_order_relaxed);
		atomic_store_explicit(&r->cons->sleep_seq, s + 1u, memory_order_relaxed);
		return false;
	}
	return true;
}

/* Consumer: awake again (a no-op when it was not marked asleep). */
static inline void shn_ring_finish_sleep(struct shn_ring *r)
{
	uint32_t s = atomic_load_explicit(&r->cons->sleep_seq, memory_order_relaxed);

	if (s & 1u)
		atomic_store_explicit(&r->cons->sleep_seq, s + 1u, memory_order_relaxed);
}

#endif /* SHN_SHM_RING_H */
