/* SPDX-License-Identifier: MIT */
/*
 * direct.h - the shared memory of the direct data path (docs/direct-path.md):
 * the segments the broker creates so that a publisher writes straight into a
 * subscriber's ring, the record it writes there, and the pure checks both
 * ends run on them.  The control messages that hand these segments over are
 * in proto.h; docs/ring.md has the tables of who writes what.
 *
 *   direct ring        one per (publisher, port): a normal shn_ring segment
 *                      ([0] prod line, [64] publisher's counters, [256] data);
 *                      publisher rw, subscriber read-only, broker rw.
 *   direct cons line   one per direct ring: [0] shn_ring_cons (head), [64]
 *                      the reader's counters; subscriber rw, publisher
 *                      read-only, broker rw.
 *   filter table       one per broker: every live filter, double-buffered,
 *                      with the generation; broker rw, clients read-only.
 *   port map           one per publisher: which ports it feeds directly, and
 *                      from which generation to which; broker rw, that
 *                      publisher read-only.
 *
 * The port's sleep word stays where it is (the port's consumer segment): the
 * broker hands each publisher of a direct ring a read-only descriptor of that
 * segment, so the publisher reads the word and writes nothing of the
 * subscriber's.  Who the publisher is (client id, pid, uid) reaches the
 * subscriber in DIRECT_OPEN, from the broker, never from the ring.
 *
 * Everything read from these segments may be torn or hostile: each function
 * here bounds every index and length it reads before it uses it, and the
 * record checks run on a private copy.  No sockets, no policy, libc only.
 */
#ifndef SHN_SHM_DIRECT_H
#define SHN_SHM_DIRECT_H

#include <errno.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "ring.h"

/* The record checks read padding as little-endian words. */
_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "little-endian host");

/* ---- direct ring and its consumer line -------------------------------- */

/* Direct ring segment: [SHN_DIRECT_PROD_OFF] struct shn_ring_prod (the
 * publisher writes tail; wait_seq and room_head stay 0, nobody sleeps for
 * room on a direct ring and its reader reads neither; the broker sets
 * capacity and magic once, before anyone maps it), [SHN_DIRECT_PSTATS_OFF] struct
 * shn_direct_pub_stats, [SHN_RING_HDR_SIZE] data.  The subscriber maps it
 * read-only (its descriptor is sealed F_SEAL_FUTURE_WRITE after the
 * publisher mapped it). */
#define SHN_DIRECT_PROD_OFF   0u
#define SHN_DIRECT_PSTATS_OFF 64u

/* Publisher writes (monotonic; dropped with a release store).  The broker
 * reads them for stats, untrusted: clamped, never used for a decision.  The
 * ring's reader reads dropped too: once it has read every record published
 * before it loaded the value, the difference from the losses the records
 * told is a loss no record will tell before the publisher's next one, and
 * it reports it at once (docs/direct-path.md, overflow).  A publisher that
 * lies here only misreports its own losses. */
struct shn_direct_pub_stats {
	alignas(SHN_CACHELINE) _Atomic uint64_t routed;  /* notifications written */
	/* 1 + the CPU the publisher runs on while it wakes this batch's
	 * sleeping readers, 0 otherwise: a reader woken on that CPU has
	 * preempted its own publisher mid-wake, and yields once before it
	 * sleeps again (docs/direct-path.md, "Wake-ups").  A hint only: the
	 * reader compares it with its own CPU and nothing else, so a lie
	 * costs the liar's readers one sched_yield() per get at most. */
	_Atomic uint32_t on_cpu;
	/* a line of its own: the reader loads it on every look at an empty
	 * ring, and the publisher stores it only when it drops; beside
	 * routed (stored per batch) each look would fetch the line anew */
	alignas(SHN_CACHELINE) _Atomic uint64_t dropped;  /* lost for lack of room (DROP) */
};

/* Direct consumer-line segment, SHN_DIRECT_CONS_SEG_SIZE bytes:
 * [SHN_DIRECT_CONS_OFF] struct shn_ring_cons (the subscriber writes head;
 * sleep_seq is unused: the port's sleep word is in the port's consumer
 * segment), [SHN_DIRECT_RSTATS_OFF] struct shn_direct_reader_stats.  The
 * publisher maps it read-only. */
#define SHN_DIRECT_CONS_OFF      0u
#define SHN_DIRECT_RSTATS_OFF    64u
#define SHN_DIRECT_CONS_SEG_SIZE 4096u

/* Subscriber writes (relaxed, monotonic); broker reads, untrusted. */
struct shn_direct_reader_stats {
	alignas(SHN_CACHELINE) _Atomic uint64_t delivered;  /* notifications handed out */
	_Atomic uint64_t late;  /* dropped: matched a filter removed since (rule 8) */
};

_Static_assert(sizeof(struct shn_direct_pub_stats) == 2 * SHN_CACHELINE, "pub stats");
_Static_assert(sizeof(struct shn_direct_reader_stats) == SHN_CACHELINE, "reader stats");
_Static_assert(SHN_DIRECT_PSTATS_OFF + sizeof(struct shn_direct_pub_stats) <= SHN_RING_HDR_SIZE,
	       "direct ring header");

/* ---- the direct record ------------------------------------------------ */

/* A direct ring carries records of runs: this header, then one or more
 * runs.  A run is notes with one key and one event, consecutive in publish
 * order: a struct shn_direct_run, its key (zero padding to a multiple of 8),
 * then its count notes, in one of two forms:
 *
 *   lengths per note (flags 0): each note a struct shn_direct_item (its
 *     data length, one word) followed by its data (zero padding to a
 *     multiple of 8);
 *   one length (flags SHN_DIRECT_RUN_SAME_LEN): every note's data is
 *     data_len (>= 1) bytes, said once in the run's head; the notes are
 *     count slots of SHN_ALIGN8(data_len) bytes, each its data and zero
 *     padding, with no word per note.
 *
 * A flood's batch of 64 notes of 64 bytes to one key is one run of one
 * length: its key is written, checked and matched once, and each note
 * costs the writer and the reader its data alone (docs/direct-path.md,
 * "The record").  Every part starts 8-byte aligned.  A note takes at least
 * 8 bytes in either form (data_len >= 1 in a run of one length), so a
 * record's count is bounded by its length.
 *
 * The first 40 bytes of the header have the layout of struct shn_del_batch,
 * so the port reads batch_id, time_ns, sender_pid and sender_uid where it
 * reads them in a record from the broker.
 *
 * The publisher writes every field.  The reader believes only what it
 * checked (shn_direct_record_check) and sets the rest itself: sender_pid,
 * sender_uid (from DIRECT_OPEN; 0 on the wire), each run's conn (from the
 * port's live filters, rule 15; 0 on the wire) and each note's seq (its own
 * counter; not on the wire). */
#define SHN_REC_DIRECT 4u

struct shn_direct_batch {
	struct shn_rec_hdr h;  /* type SHN_REC_DIRECT, flags 0, len = whole record */
	uint32_t count;        /* notes, all runs together; >= 1 */
	int32_t  sender_pid;   /* 0 on the wire; the reader fills it */
	uint32_t sender_uid;   /* 0 on the wire; the reader fills it */
	uint32_t flags;        /* SHN_DIRECT_F_*: none defined, must be 0 (where
	                          shn_del_batch has sync_token: SYNC never goes direct) */
	uint64_t batch_id;     /* the publisher's batch id, increasing per ring */
	uint64_t time_ns;      /* CLOCK_MONOTONIC at publish */
	uint64_t gen;          /* filter-table generation the publisher matched at */
	uint64_t lost;         /* notifications this ring dropped before this
	                          record, all told (= its shn_direct_pub_stats
	                          dropped then): never less than the previous
	                          record's, at most SHN_DIRECT_LOST_MAX more */
};
#define SHN_DIRECT_F_KNOWN  0u
#define SHN_DIRECT_LOST_MAX 0xffffffffull
/* = SHN_EV_SYSTEM_WIRE (proto.h): no system bit is ever accepted in a
 * direct note, gap reports included (those take the broker path). */
#define SHN_DIRECT_EV_SYSTEM 0xf0000000u

_Static_assert(sizeof(struct shn_direct_batch) == 56, "direct batch");
_Static_assert(offsetof(struct shn_direct_batch, flags) == 20, "flags where sync_token is");
_Static_assert(offsetof(struct shn_direct_batch, batch_id) == 24, "batch_id as in del_batch");

/* The head of a run: three words, event | key_len << 32 | flags << 48,
 * count | data_len << 32, conn. */
struct shn_direct_run {
	uint32_t event;      /* not 0, no system bit */
	uint16_t key_len;    /* 1..the broker's max_key_len */
	uint16_t flags;      /* 0 or SHN_DIRECT_RUN_SAME_LEN; no other bit */
	uint32_t count;      /* notes in the run, >= 1 */
	uint32_t data_len;   /* SAME_LEN: every note's, 1..max_data_len; else 0 */
	uint64_t conn;       /* 0 on the wire; the reader fills it */
};
/* The run's notes have one data length, data_len: no length word per note
 * (protocol version 5; a version-4 reader took the bit for a hostile one,
 * and the broker lets no two versions meet). */
#define SHN_DIRECT_RUN_SAME_LEN 1u
_Static_assert(sizeof(struct shn_direct_run) == 24, "direct run");

/* One note of a run: its data length as one word, the upper half 0 (so
 * that one compare checks both), then its data. */
struct shn_direct_item {
	uint32_t data_len;   /* 0..the broker's max_data_len */
	uint32_t reserved;   /* 0 */
};
_Static_assert(sizeof(struct shn_direct_item) == 8, "direct item");

/* Bytes of a run's head and key, and of one note of it (with its length
 * word; a note of a run of one length takes SHN_ALIGN8(data_len)). */
static inline uint32_t shn_direct_run_size(uint32_t key_len)
{
	return (uint32_t)(sizeof(struct shn_direct_run) + SHN_ALIGN8(key_len));
}
static inline uint32_t shn_direct_item_size(uint32_t data_len)
{
	return (uint32_t)(sizeof(struct shn_direct_item) + SHN_ALIGN8(data_len));
}

/* Are the len (>= 1) bytes of two keys of a checked copy the same?  Each
 * key follows its 24-byte run head, so it begins 8-byte aligned, and runs
 * to the next multiple of 8 past it (shn_direct_run_size): whole words are
 * read, the bytes past len masked off. */
static inline bool shn_direct_key_eq(const uint8_t *a, const uint8_t *b, uint32_t len)
{
	uint64_t u, v, x;

	memcpy(&u, a, 8);
	memcpy(&v, b, 8);
	x = u ^ v;
	if (len <= 8)
		return (x << (8 * (8 - len))) == 0;   /* the bytes past len shifted out */
	if (x != 0)
		return false;
	for (a += 8, b += 8, len -= 8; len > 8; len -= 8, a += 8, b += 8) {
		memcpy(&u, a, 8);
		memcpy(&v, b, 8);
		if (u != v)
			return false;
	}
	memcpy(&u, a, 8);
	memcpy(&v, b, 8);
	return ((u ^ v) << (8 * (8 - len))) == 0;   /* len is 1..8 here */
}

/* Is the padding after a field of len bytes that ends (padded) at end
 * zero?  len % 8 is rem, 1..7: the pad is the top 8 - rem bytes of the
 * last word, so nothing hides there. */
static inline bool shn_direct_pad_zero(const uint8_t *end, uint32_t rem)
{
	uint64_t last;

	memcpy(&last, end - 8, 8);
	return (last >> (8 * rem)) == 0;
}

/* What the reader checks a record against.  max_key_len / max_data_len: the
 * broker's limits (broker segment, SHN_BROKER_F_LIMITS), at most the
 * protocol's.  min_gen: the generation the ring opened at (DIRECT_OPEN). */
struct shn_direct_limits {
	uint32_t max_key_len;
	uint32_t max_data_len;
	uint64_t min_gen;
};

/* The reader's memory of one ring, updated by each accepted record. */
struct shn_direct_seen {
	uint64_t batch_id;  /* last accepted; 0 before the first */
	uint64_t gen;       /* last accepted; a publisher's gen never decreases */
	uint64_t lost;      /* the ring's losses reported so far, all told */
};

/* The library's part of the check: does this run (its key follows it)
 * match a filter of the port live at generation gen?  It may write the
 * run's conn (the copy is private).  Called for the first run of a record
 * and for each whose key or event differs from the run before it; any
 * other run takes the conn of the run before it.  Returns 0, or -EBADMSG
 * for a hostile run.  A run that matched a filter removed since is the
 * hook's to count as late and to mark (e.g. conn 0) so that delivery skips
 * it: that is not an error. */
typedef int (*shn_direct_run_hook)(void *ctx, struct shn_direct_run *run,
				   const uint8_t *key, uint64_t gen);

/* Check one direct record that shn_ring_next() returned and the reader
 * copied into private, 8-byte aligned memory: rec[0..len).  Returns the
 * note count, or -EBADMSG (nothing in *seen changed).  On success *seen
 * holds the record's batch_id and gen.  hook may be NULL (unit tests, the
 * fuzz target).  Every length is bounded by what is left of the record
 * before it is used, so that the walk ends within len whatever it reads. */
static inline int shn_direct_record_check(uint8_t *rec, uint32_t len,
					  const struct shn_direct_limits *lim,
					  struct shn_direct_seen *seen,
					  shn_direct_run_hook hook, void *ctx)
{
	const struct shn_direct_batch *b = (const void *)rec;
	const uint8_t *prev_key = NULL;
	uint64_t prev_w0 = 0, prev_conn = 0, gen, max_data;
	uint32_t off = sizeof(*b), count, left, max_key;

	if (len < sizeof(*b) || (len & 7u) || b->h.len != len || b->h.type != SHN_REC_DIRECT ||
	    b->h.flags != 0 || b->sender_pid != 0 || b->sender_uid != 0 ||
	    (b->flags & ~SHN_DIRECT_F_KNOWN) != 0 || b->lost < seen->lost ||
	    b->lost - seen->lost > SHN_DIRECT_LOST_MAX ||
	    b->batch_id <= seen->batch_id || b->gen < seen->gen || b->gen < lim->min_gen)
		return -EBADMSG;
	count = b->count;
	if (count == 0 || count > (len - off) / sizeof(struct shn_direct_item))
		return -EBADMSG;
	/* in locals: the hook may write memory, so the compiler would load
	 * these again for every run */
	max_key = lim->max_key_len;
	max_data = lim->max_data_len;
	gen = b->gen;
	left = count;
	while (off != len) {
		struct shn_direct_run *run = (void *)(rec + off);
		const uint8_t *key;
		uint64_t w[3];
		uint32_t event, key_len, rflags, n, dlen, ksz;

		if (len - off < sizeof(*run))
			return -EBADMSG;
		/* the head as three words (little-endian, as the struct) */
		memcpy(w, run, sizeof(w));
		event = (uint32_t)w[0];
		key_len = (uint16_t)(w[0] >> 32);
		rflags = (uint32_t)(w[0] >> 48);
		n = (uint32_t)w[1];
		dlen = (uint32_t)(w[1] >> 32);
		if (w[2] != 0 ||                             /* conn */
		    event - 1u >= ~SHN_DIRECT_EV_SYSTEM ||   /* 0, or a system bit */
		    key_len - 1u >= max_key ||               /* 0, or too long */
		    n - 1u >= left ||                        /* 0, or more than the header's */
		    (rflags == 0 ? dlen != 0                 /* lengths per note */
				 : rflags != SHN_DIRECT_RUN_SAME_LEN ||
				   dlen - 1u >= max_data))   /* one length: 1..max_data */
			return -EBADMSG;
		off += sizeof(*run);
		key = rec + off;
		ksz = (uint32_t)SHN_ALIGN8(key_len);
		if (ksz > len - off || ((key_len & 7u) && !shn_direct_pad_zero(key + ksz, key_len & 7u)))
			return -EBADMSG;
		if (hook != NULL) {
			/* a run with the key and event of the run before it (w[0]
			 * holds both the event and the key's length) takes that
			 * run's conn */
			if (w[0] == prev_w0 && shn_direct_key_eq(key, prev_key, key_len)) {
				run->conn = prev_conn;
			} else {
				if (hook(ctx, run, key, gen) != 0)
					return -EBADMSG;
				prev_w0 = w[0];
				prev_key = key;
				prev_conn = run->conn;
			}
		}
		off += ksz;
		left -= n;
		/* the notes.  off and len are multiples of 8; noff is 64-bit,
		 * so adding a bounded length (or n slots of one) cannot wrap. */
		uint64_t noff = off;

		if (rflags != 0) {
			/* one length: n slots of dsz bytes, bounded at once;
			 * only a length that is not a multiple of 8 leaves
			 * padding to look at */
			uint64_t dsz = SHN_ALIGN8(dlen);

			if ((uint64_t)n * dsz > len - noff)
				return -EBADMSG;
			if (dlen & 7u)
				for (uint32_t k = 0; k < n; k++)
					if (!shn_direct_pad_zero(rec + noff + (k + 1) * dsz, dlen & 7u))
						return -EBADMSG;
			off = (uint32_t)(noff + (uint64_t)n * dsz);
			continue;
		}
		/* lengths per note: a length word, bounded with its reserved
		 * half in one compare, then the data and its padding; off <
		 * len leaves the word whole */
		for (; n != 0; n--) {
			uint64_t item;

			if (noff >= len)
				return -EBADMSG;
			memcpy(&item, rec + noff, 8);
			if (item > max_data)
				return -EBADMSG;
			noff += sizeof(struct shn_direct_item) + SHN_ALIGN8(item);
			if (noff > len || ((item & 7u) && !shn_direct_pad_zero(rec + noff, (uint32_t)item & 7u)))
				return -EBADMSG;
		}
		off = (uint32_t)noff;
	}
	if (left != 0)
		return -EBADMSG;
	seen->batch_id = b->batch_id;
	seen->gen = b->gen;
	seen->lost = b->lost;
	return (int)count;
}

/* ---- the filter table ------------------------------------------------- */

/* One segment per broker, created at start when direct is auto, handed to
 * every client that asked for the direct path (DIRECT_SETUP reply),
 * read-only.  Layout:
 *   [0]                    struct shn_ftab_hdr
 *   [hdr.half_off[0]]      half 0: struct shn_ftab_half (with the set of
 *                          prefix lengths in use), then
 *                          any[max_filters] struct shn_ftab_any,
 *                          slots[nslots] struct shn_ftab_slot (exact keys
 *                          and prefixes, SHN_FTAB_SLOT_PREFIX),
 *                          keys[key_bytes]
 *   [hdr.half_off[1]]      half 1, the same.
 * The broker rebuilds the half not in use from its index on every change of
 * the filters or of any port map, then stores gen + 1 (seq_cst), and only
 * then replies (rule 8).  The half in use is gen & 1. */
/* "SFT2": version 2 holds prefix filters; a library that knows only
 * version 1 ("SFTB") refuses the table and keeps the broker path. */
#define SHN_FTAB_MAGIC 0x32544653u

struct shn_ftab_hdr {
	/* broker writes once, before it hands out a descriptor */
	uint32_t magic;        /* SHN_FTAB_MAGIC */
	uint32_t max_filters;  /* any[] entries per half; also bounds slots used */
	uint32_t nslots;       /* slots per half: a power of two > max_filters */
	uint32_t key_bytes;    /* key bytes per half */
	uint64_t half_off[2];  /* byte offset of each half, 64-byte aligned */
	uint64_t half_size;
	/* broker writes (seq_cst store), after the half gen+1 & 1 is complete */
	alignas(SHN_CACHELINE) _Atomic uint64_t gen;
};

/* Broker writes, in the inactive half only. */
struct shn_ftab_half {
	uint32_t flags;    /* SHN_FTAB_DISABLED: more live filters than fit */
	uint32_t n_any;    /* any-key entries used, <= max_filters */
	uint32_t n_exact;  /* exact-key and prefix filters (slots used), < nslots */
	uint32_t key_used; /* key bytes used, <= key_bytes */
	/* bit p - 1 (word (p - 1) / 64): some prefix slot of p bytes is in
	 * this half.  A lookup of a key of length L probes once per length
	 * p <= L set here (O(P)). */
	uint64_t plens[4];
	uint8_t  pad[16];
};
/* The broker has more live filters than the table holds: nothing goes
 * direct at this generation, every batch takes the broker path. */
#define SHN_FTAB_DISABLED 1u

/* Any-key filters of one port, their event masks ORed. */
struct shn_ftab_any {
	uint32_t port_id;
	uint32_t mask;
};

/* An exact-key or prefix filter: one slot per (key, prefix bit, port),
 * masks ORed; open addressing with linear probing from hash & (nslots - 1);
 * key_len 0 marks an empty slot, which ends a probe.  "ab" exact and "ab"
 * prefix share a hash and a probe chain, and never match for each other. */
struct shn_ftab_slot {
	uint64_t hash;     /* XXH3_64bits(key), of the prefix bytes for a prefix */
	uint32_t port_id;
	uint32_t mask;
	uint32_t key_off;  /* into keys[] of this half */
	uint16_t key_len;  /* 1..SHN_KEY_MAX_WIRE; 0: empty */
	uint16_t flags;    /* SHN_FTAB_SLOT_PREFIX, or 0: an exact key */
};
#define SHN_FTAB_SLOT_PREFIX 1u   /* key[0..key_len) is a prefix */
#define SHN_FTAB_SLOT_KNOWN  1u
#define SHN_FTAB_PLEN_MAX    256u /* = SHN_KEY_MAX_WIRE (proto.h asserts it) */

/* The hash the table's slots use (XXH3_64bits); the lookup hashes each
 * prefix of the key with it. */
typedef uint64_t (*shn_ftab_hash_fn)(const void *key, size_t len);

_Static_assert(sizeof(struct shn_ftab_hdr) == 2 * SHN_CACHELINE, "ftab hdr");
_Static_assert(sizeof(struct shn_ftab_half) == SHN_CACHELINE, "ftab half");
_Static_assert(sizeof(struct shn_ftab_slot) == 24, "ftab slot");
_Static_assert(SHN_FTAB_PLEN_MAX == 64 * 4, "a bit per prefix length");

/* Where the parts of a half lie, relative to the half's start. */
static inline uint64_t shn_ftab_any_off(void)
{
	return sizeof(struct shn_ftab_half);
}
static inline uint64_t shn_ftab_slots_off(uint32_t max_filters)
{
	return SHN_ALIGN8(shn_ftab_any_off() + (uint64_t)max_filters * sizeof(struct shn_ftab_any));
}
static inline uint64_t shn_ftab_keys_off(uint32_t max_filters, uint32_t nslots)
{
	return shn_ftab_slots_off(max_filters) + (uint64_t)nslots * sizeof(struct shn_ftab_slot);
}
static inline uint64_t shn_ftab_half_size(uint32_t max_filters, uint32_t nslots,
					  uint32_t key_bytes)
{
	uint64_t s = shn_ftab_keys_off(max_filters, nslots) + key_bytes;

	return (s + SHN_CACHELINE - 1) & ~(uint64_t)(SHN_CACHELINE - 1);
}

/* Fill the header of a new table (broker).  The halves must be zero. */
static inline void shn_ftab_layout(struct shn_ftab_hdr *t, uint32_t max_filters,
				   uint32_t nslots, uint32_t key_bytes)
{
	memset(t, 0, sizeof(*t));
	t->magic = SHN_FTAB_MAGIC;
	t->max_filters = max_filters;
	t->nslots = nslots;
	t->key_bytes = key_bytes;
	t->half_size = shn_ftab_half_size(max_filters, nslots, key_bytes);
	t->half_off[0] = sizeof(*t);
	t->half_off[1] = sizeof(*t) + t->half_size;
}

static inline uint64_t shn_ftab_seg_size(uint32_t max_filters, uint32_t nslots,
					 uint32_t key_bytes)
{
	return sizeof(struct shn_ftab_hdr) + 2 * shn_ftab_half_size(max_filters, nslots, key_bytes);
}

/* Is this header one a table of seg_size bytes can have?  The library
 * checks it once, when it maps the table; the header never changes. */
static inline bool shn_ftab_geometry_ok(const struct shn_ftab_hdr *t, uint64_t seg_size)
{
	if (seg_size < sizeof(*t) || t->magic != SHN_FTAB_MAGIC || t->max_filters == 0 ||
	    t->nslots == 0 || (t->nslots & (t->nslots - 1)) != 0 ||
	    t->nslots <= t->max_filters || t->nslots > (1u << 26) ||
	    t->half_size != shn_ftab_half_size(t->max_filters, t->nslots, t->key_bytes))
		return false;
	for (int h = 0; h < 2; h++)
		if (t->half_off[h] < sizeof(*t) || (t->half_off[h] & (SHN_CACHELINE - 1)) ||
		    t->half_off[h] > seg_size || seg_size - t->half_off[h] < t->half_size)
			return false;
	return true;
}

/* One port a key reaches, and the events it takes there. */
struct shn_ftab_match {
	uint32_t port_id;
	uint32_t mask;
};

static inline int shn_ftab_add_match(struct shn_ftab_match *out, uint32_t *n, uint32_t max,
				     uint32_t port_id, uint32_t mask)
{
	for (uint32_t i = 0; i < *n; i++)
		if (out[i].port_id == port_id) {
			out[i].mask |= mask;
			return 0;
		}
	if (*n == max)
		return -ENOSPC;
	out[*n].port_id = port_id;
	out[*n].mask = mask;
	(*n)++;
	return 0;
}

/* One probe chain of the lookup: the slots of key[0..len) (hash h) whose
 * prefix bit is want, added to out.  0, -ENOSPC or -EBADMSG. */
static inline int shn_ftab_probe(const struct shn_ftab_hdr *t,
				 const volatile struct shn_ftab_slot *slots, const uint8_t *keys,
				 uint64_t h, const uint8_t *key, uint32_t len, uint16_t want,
				 struct shn_ftab_match *out, uint32_t *n, uint32_t max)
{
	uint32_t smask = t->nslots - 1, i = (uint32_t)h & smask, probes;

	for (probes = 0; probes < t->nslots; probes++, i = (i + 1) & smask) {
		struct shn_ftab_slot s;

		s.hash = slots[i].hash;
		s.port_id = slots[i].port_id;
		s.mask = slots[i].mask;
		s.key_off = slots[i].key_off;
		s.key_len = slots[i].key_len;
		s.flags = slots[i].flags;
		if (s.key_len == 0)
			return 0;
		if (s.flags & ~SHN_FTAB_SLOT_KNOWN)
			return -EBADMSG;
		if (s.hash != h || s.key_len != len || (s.flags & SHN_FTAB_SLOT_PREFIX) != want)
			continue;
		if (s.key_off > t->key_bytes || t->key_bytes - s.key_off < s.key_len)
			return -EBADMSG;
		if (memcmp(keys + s.key_off, key, len) != 0 || s.mask == 0)
			continue;
		if (shn_ftab_add_match(out, n, max, s.port_id, s.mask) != 0)
			return -ENOSPC;
	}
	return -EBADMSG;   /* no empty slot: the broker always leaves one */
}

/* The publisher's lookup: every port whose filters at generation gen take
 * key[0..key_len) (hash = XXH3_64bits of it), with the union of their event
 * masks, one entry per port, into out[0..max): its any-key filters, its
 * exact key, and each prefix of it that some prefix filter names (one probe
 * per prefix length in use no longer than the key, each prefix hashed with
 * hash_fn).  t was checked with shn_ftab_geometry_ok().  Returns the number
 * of entries; -EAGAIN when the table is disabled at this generation (take
 * the broker path); -ENOSPC when more than max ports match; -EBADMSG when
 * what it read cannot be a table the broker wrote (a torn read: the broker
 * is rewriting this half, so the caller's re-load of gen will differ; it
 * matches again).  Reads each slot once into private memory, bounds every
 * count, length and offset.
 *
 * hint, hint_bits: a bitmap of hint_bits bits (a power of two) in which bit
 * hash & (hint_bits - 1) of every exact key of the table and bit
 * hash_fn(prefix) & (hint_bits - 1) of every prefix is set, or NULL.  A key
 * or prefix whose bit is clear is not probed: the table's slots are cache
 * misses, with many prefix lengths in use most probes miss, and a bit of a
 * small bitmap is far cheaper.  The publisher passes the
 * broker segment's interest summary, loaded after gen (acquire): the broker
 * sets a prefix's bit before it publishes the generation that holds it
 * (shm/proto.h), so no filter of generation gen is skipped. */
static inline int shn_ftab_lookup_hinted(const struct shn_ftab_hdr *t, uint64_t gen,
					 uint64_t hash, const uint8_t *key, uint32_t key_len,
					 struct shn_ftab_match *out, uint32_t max,
					 shn_ftab_hash_fn hash_fn, const _Atomic uint64_t *hint,
					 uint32_t hint_bits)
{
	const uint8_t *half = (const uint8_t *)t + t->half_off[gen & 1];
	const volatile struct shn_ftab_half *hh = (const volatile void *)half;
	const volatile struct shn_ftab_any *any =
		(const volatile void *)(half + shn_ftab_any_off());
	const volatile struct shn_ftab_slot *slots =
		(const volatile void *)(half + shn_ftab_slots_off(t->max_filters));
	const uint8_t *keys = half + shn_ftab_keys_off(t->max_filters, t->nslots);
	uint32_t flags = hh->flags, n_any = hh->n_any, n = 0, i;
	int err;

	if (flags & SHN_FTAB_DISABLED)
		return -EAGAIN;
	if (n_any > t->max_filters || key_len == 0 || key_len > 0xffffu)
		return -EBADMSG;
	for (i = 0; i < n_any; i++) {
		struct shn_ftab_any a = { any[i].port_id, any[i].mask };

		if (a.mask != 0 && shn_ftab_add_match(out, &n, max, a.port_id, a.mask) != 0)
			return -ENOSPC;
	}
	uint32_t kbit = (uint32_t)hash & (hint_bits - 1);

	if (hint == NULL ||
	    ((atomic_load_explicit(&hint[kbit / 64], memory_order_relaxed) >> (kbit % 64)) & 1u)) {
		err = shn_ftab_probe(t, slots, keys, hash, key, key_len, 0, out, &n, max);
		if (err)
			return err;
	}
	for (uint32_t w = 0; w < 4 && 64 * w < key_len; w++) {
		uint64_t bits = hh->plens[w];

		while (bits != 0) {
			uint32_t p = 64 * w + (uint32_t)__builtin_ctzll(bits) + 1;

			bits &= bits - 1;
			if (p > key_len)
				break;
			uint64_t ph = hash_fn(key, p);
			uint32_t bit = (uint32_t)ph & (hint_bits - 1);

			if (hint != NULL && !((atomic_load_explicit(&hint[bit / 64],
								    memory_order_relaxed) >>
					       (bit % 64)) & 1u))
				continue;   /* no filter has this prefix: no probe */
			err = shn_ftab_probe(t, slots, keys, ph, key, p,
					     SHN_FTAB_SLOT_PREFIX, out, &n, max);
			if (err)
				return err;
		}
	}
	return (int)n;
}

/* Does half gen & 1 hold prefix filters (some prefix length in use)?  A
 * hint for the caller's choice of how to look up; a torn read only makes
 * that choice worse, never the answer wrong. */
static inline bool shn_ftab_has_prefixes(const struct shn_ftab_hdr *t, uint64_t gen)
{
	const volatile struct shn_ftab_half *hh =
		(const volatile void *)((const uint8_t *)t + t->half_off[gen & 1]);

	return ((hh->plens[0] | hh->plens[1] | hh->plens[2] | hh->plens[3]) != 0);
}

/* shn_ftab_lookup_hinted with no hint: every prefix length probed. */
static inline int shn_ftab_lookup(const struct shn_ftab_hdr *t, uint64_t gen, uint64_t hash,
				  const uint8_t *key, uint32_t key_len,
				  struct shn_ftab_match *out, uint32_t max, shn_ftab_hash_fn hash_fn)
{
	return shn_ftab_lookup_hinted(t, gen, hash, key, key_len, out, max, hash_fn, NULL, 0);
}

/* The broker's writer of one half (the inactive one: half gen+1 & 1):
 * clear it, add each filter, then store gen + 1.  Pure; the broker's index
 * decides what goes in.  Returns 0, or -ENOSPC when the half is full (the
 * broker then writes SHN_FTAB_DISABLED instead). */
static inline uint8_t *shn_ftab_half_at(struct shn_ftab_hdr *t, unsigned h)
{
	return (uint8_t *)t + t->half_off[h & 1];
}

static inline void shn_ftab_half_clear(struct shn_ftab_hdr *t, unsigned h, uint32_t flags)
{
	uint8_t *half = shn_ftab_half_at(t, h);
	struct shn_ftab_half *hh = (void *)half;

	/* only the slots need zeroing (key_len 0: empty); the rest is bounded
	 * by the counts */
	memset(half + shn_ftab_slots_off(t->max_filters), 0,
	       (size_t)t->nslots * sizeof(struct shn_ftab_slot));
	hh->n_any = 0;
	hh->n_exact = 0;
	hh->key_used = 0;
	memset(hh->plens, 0, sizeof(hh->plens));
	hh->flags = flags;
}

static inline int shn_ftab_half_add_any(struct shn_ftab_hdr *t, unsigned h, uint32_t port_id,
					uint32_t mask)
{
	uint8_t *half = shn_ftab_half_at(t, h);
	struct shn_ftab_half *hh = (void *)half;
	struct shn_ftab_any *any = (void *)(half + shn_ftab_any_off());

	for (uint32_t i = 0; i < hh->n_any; i++)
		if (any[i].port_id == port_id) {
			any[i].mask |= mask;
			return 0;
		}
	if (hh->n_any == t->max_filters)
		return -ENOSPC;
	any[hh->n_any].port_id = port_id;
	any[hh->n_any].mask = mask;
	hh->n_any++;
	return 0;
}

/* A filter on key (sflags 0) or on the prefix key (SHN_FTAB_SLOT_PREFIX,
 * key_len <= SHN_FTAB_PLEN_MAX), hash = XXH3_64bits of those bytes.
 * *slot (may be NULL): the slot written or merged into, so that a writer
 * can later clear only the slots it used. */
static inline int shn_ftab_half_add_filter(struct shn_ftab_hdr *t, unsigned h, uint64_t hash,
					   const uint8_t *key, uint32_t key_len, uint16_t sflags,
					   uint32_t port_id, uint32_t mask, uint32_t *slot)
{
	uint8_t *half = shn_ftab_half_at(t, h);
	struct shn_ftab_half *hh = (void *)half;
	struct shn_ftab_slot *slots = (void *)(half + shn_ftab_slots_off(t->max_filters));
	uint8_t *keys = half + shn_ftab_keys_off(t->max_filters, t->nslots);
	uint32_t smask = t->nslots - 1, i = (uint32_t)hash & smask;

	if (key_len == 0 || key_len > 0xffffu || (sflags & ~SHN_FTAB_SLOT_KNOWN) != 0 ||
	    ((sflags & SHN_FTAB_SLOT_PREFIX) && key_len > SHN_FTAB_PLEN_MAX))
		return -EINVAL;
	for (;;) {
		struct shn_ftab_slot *s = &slots[i];

		if (s->key_len == 0)
			break;
		if (s->hash == hash && s->port_id == port_id && s->key_len == key_len &&
		    s->flags == sflags && memcmp(keys + s->key_off, key, key_len) == 0) {
			s->mask |= mask;
			if (slot != NULL)
				*slot = i;
			return 0;
		}
		i = (i + 1) & smask;
	}
	/* keep one slot empty so that every probe ends */
	if (hh->n_exact + 1 >= t->nslots || hh->n_exact >= t->max_filters ||
	    t->key_bytes - hh->key_used < key_len)
		return -ENOSPC;
	memcpy(keys + hh->key_used, key, key_len);
	slots[i].hash = hash;
	slots[i].port_id = port_id;
	slots[i].mask = mask;
	slots[i].key_off = hh->key_used;
	slots[i].flags = sflags;
	slots[i].key_len = (uint16_t)key_len;
	hh->key_used += key_len;
	hh->n_exact++;
	if (sflags & SHN_FTAB_SLOT_PREFIX)
		hh->plens[(key_len - 1) / 64] |= (uint64_t)1 << ((key_len - 1) % 64);
	if (slot != NULL)
		*slot = i;
	return 0;
}

/* An exact-key filter (shn_ftab_half_add_filter with sflags 0). */
static inline int shn_ftab_half_add_key(struct shn_ftab_hdr *t, unsigned h, uint64_t hash,
					const uint8_t *key, uint32_t key_len,
					uint32_t port_id, uint32_t mask, uint32_t *slot)
{
	return shn_ftab_half_add_filter(t, h, hash, key, key_len, 0, port_id, mask, slot);
}

/* ---- the port map ----------------------------------------------------- */

/* One segment per publisher that asked for the direct path (DIRECT_SETUP
 * reply), that publisher read-only, SHN_PMAP_SEG_SIZE bytes:
 *   [0]  struct shn_pmap_hdr
 *   [64] slots[SHN_PMAP_SLOTS] struct shn_pmap_slot
 * Slot s describes the publisher's direct ring s.  The port is direct for
 * this publisher at generation g when open_gen <= g < close_gen.  The
 * broker writes a slot (it queues DIRECT_OPEN to the publisher first, so a
 * library that finds a live ring_id it has not mapped yet finds the message
 * in its socket or on its way), then stores the table's gen + 1 with open_gen /
 * close_gen = that new gen: a slot changes only between generations the
 * publisher re-checks.  The broker's skip of brokered batches (gen stamp in
 * shn_pub_batch) uses the same interval, so no port gets a batch twice and
 * none is missed. */
#define SHN_PMAP_MAGIC    0x504d4e53u /* "SNMP" */
#define SHN_PMAP_SLOTS    1024u
#define SHN_PMAP_GEN_OPEN UINT64_MAX  /* close_gen of a ring still open */

struct shn_pmap_hdr {
	uint32_t magic;   /* SHN_PMAP_MAGIC; broker writes once */
	uint32_t nslots;  /* SHN_PMAP_SLOTS; broker writes once */
	uint8_t  pad[56];
};

/* Broker writes every field. */
struct shn_pmap_slot {
	_Atomic uint64_t open_gen;   /* 0: never used */
	_Atomic uint64_t close_gen;  /* SHN_PMAP_GEN_OPEN while open */
	uint32_t port_id;
	uint32_t ring_id;            /* DIRECT_OPEN's ring_id for this slot */
	_Atomic uint32_t flags;      /* SHN_PMAP_F_*, stored with release */
	uint32_t reserved;           /* 0 */
};
/* The broker dropped a batch of this publisher for this port (no room)
 * and has not written the port's loss report yet: the publisher's batches
 * for the port take the broker path (generation 0) until the flag clears,
 * which the broker does once the report is in the port's published ring.
 * So a direct batch never overtakes a loss the broker still owes the port
 * ("exactly one OVERFLOW, before that publisher's next delivered batch").
 * Set before the broker releases the publish ring's bytes of the dropped
 * batch: a publisher that sees them released sees the flag. */
#define SHN_PMAP_F_LOSS 1u

#define SHN_PMAP_SEG_SIZE (sizeof(struct shn_pmap_hdr) + SHN_PMAP_SLOTS * sizeof(struct shn_pmap_slot))
_Static_assert(sizeof(struct shn_pmap_hdr) == SHN_CACHELINE, "pmap hdr");
_Static_assert(sizeof(struct shn_pmap_slot) == 32, "pmap slot");

/* The publisher's question: at generation gen, which slot (if any) feeds
 * port_id directly?  Returns the slot and its ring_id, or -ENOENT.  Reads
 * each slot once; a torn read is caught by the caller's re-check of gen. */
static inline int shn_pmap_find(const struct shn_pmap_slot *slots, uint32_t nslots,
				uint32_t port_id, uint64_t gen, uint32_t *ring_id)
{
	if (nslots > SHN_PMAP_SLOTS)
		nslots = SHN_PMAP_SLOTS;
	for (uint32_t s = 0; s < nslots; s++) {
		uint64_t open = atomic_load_explicit(&slots[s].open_gen, memory_order_relaxed);
		uint64_t close = atomic_load_explicit(&slots[s].close_gen, memory_order_relaxed);
		uint32_t port = *(const volatile uint32_t *)&slots[s].port_id;

		if (open != 0 && open <= gen && gen < close && port == port_id) {
			*ring_id = *(const volatile uint32_t *)&slots[s].ring_id;
			return (int)s;
		}
	}
	return -ENOENT;
}

/* ---- the HANDLE_CLOSE barrier ----------------------------------------- */

/* For a port of a client that asked for the direct path, the broker writes
 * into an UNSUBSCRIBE's (or a closed filter's) SHN_EV_HANDLE_CLOSE note, as
 * its data, one entry per direct ring of the port: the ring's tail as the
 * broker read it after storing the new gen (untrusted, a bound only).  The
 * reader, reaching that note, first delivers each ring up to its tail.
 * data_len = n * 16 (0: no direct ring); a port of a client that did not
 * ask gets data_len 0 as before. */
struct shn_direct_barrier {
	uint32_t slot;     /* the port's direct ring slot (DIRECT_OPEN) */
	uint32_t reserved; /* 0 */
	uint64_t tail;
};
_Static_assert(sizeof(struct shn_direct_barrier) == 16, "barrier");

/* The reader's check of a HANDLE_CLOSE data area: n entries, each slot
 * below nslots, reserved 0.  Returns n or -EBADMSG. */
static inline int shn_direct_barrier_check(const uint8_t *data, uint32_t data_len,
					   uint32_t nslots)
{
	uint32_t n = data_len / sizeof(struct shn_direct_barrier);

	if (data_len % sizeof(struct shn_direct_barrier))
		return -EBADMSG;
	for (uint32_t i = 0; i < n; i++) {
		struct shn_direct_barrier e;

		memcpy(&e, data + i * sizeof(e), sizeof(e));
		if (e.slot >= nslots || e.reserved != 0)
			return -EBADMSG;
	}
	return (int)n;
}

#endif /* SHN_SHM_DIRECT_H */
