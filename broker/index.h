/* SPDX-License-Identifier: MIT */
/*
 * index.h - the subscription index: XXH3_64bits(key) → key entry (full key
 * compared on a hit) → its subscriptions; the same for prefix filters
 * (hash of the prefix bytes → prefix entry → its subscriptions) with the
 * set of prefix lengths in use; plus one list of any-key subscriptions.
 * The router only reads it; the server changes it between routing rounds.
 */
#ifndef SHND_INDEX_H
#define SHND_INDEX_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "broker.h"

/* A distinct filter key: an exact key, or a prefix (never both: "ab"
 * exact and "ab" prefix are two entries, in two tables). */
struct shnd_keyent {
	struct shnd_keyent *next;  /* hash chain */
	uint64_t hash;
	struct shnd_list subs;     /* struct shnd_sub.by_key */
	uint32_t nsubs;
	uint16_t key_len;
	bool prefix;               /* in the prefix table */
	uint8_t key[];
};

/* An empty index; allocates nothing. */
void shnd_index_init(struct shnd_index *ix);

/* Publish the interest summary ("nobody listening costs nothing") in the
 * broker segment bs (the broker's own writable mapping, SHN_BROKER_SHM_SIZE
 * bytes): from now on any_key_subs counts the live any-key subscriptions,
 * bit XXH3_64bits(key) & (SHN_INTEREST_BITS - 1) of the bitmap at
 * SHN_INTEREST_OFF is set while some live key entry or prefix entry hashes
 * there (a private count per bit), and prefix_lens has bit p - 1 set while
 * a prefix entry of p bytes lives.  Bits are set (release) inside
 * shnd_index_add, so before the SUBSCRIBE reply leaves, the prefix's hash
 * bit before its length's, and cleared when their count drops to 0.
 * 0 or -ENOMEM. */
int shnd_index_attach(struct shnd_index *ix, struct shn_broker_shm *bs);

/* Free the index's own memory; every subscription must be gone. */
void shnd_index_fini(struct shnd_index *ix);

/* False only when no entry (key or prefix) of this hash exists: its bit
 * of the interest summary is clear.  Always true before
 * shnd_index_attach. */
static inline bool shnd_index_may_have(const struct shnd_index *ix, uint64_t hash)
{
	uint32_t bit = (uint32_t)(hash & (SHN_INTEREST_BITS - 1));

	if (ix->interest_map == NULL)
		return (true);
	/* the 64 KiB bitmap, not the 2 MiB of counts: it stays in cache */
	return ((atomic_load_explicit(&ix->interest_map[bit / 64], memory_order_relaxed) >>
		 (bit % 64)) & 1u);
}

/* Hash a key (or a prefix) the way the index does. */
uint64_t shnd_index_hash(const void *key, size_t len);

/* The exact entry for this key (hash from shnd_index_hash), or NULL. */
struct shnd_keyent *shnd_index_find(const struct shnd_index *ix, const void *key,
				    size_t len, uint64_t hash);

/* The prefix entry for these prefix bytes (hash of them), or NULL. */
struct shnd_keyent *shnd_index_find_prefix(const struct shnd_index *ix, const void *prefix,
					   size_t len, uint64_t hash);

/* Link sub under key (len 1..SHN_KEY_MAX_WIRE) in the exact table, or in
 * the prefix table when sub->prefix is set, or under the any-key list
 * when key is NULL.  Sets sub->ke.  0 or -ENOMEM. */
int shnd_index_add(struct shnd_index *ix, struct shnd_sub *sub, const void *key, size_t len);

/* Unlink sub; frees its entry when it was the last one. */
void shnd_index_del(struct shnd_index *ix, struct shnd_sub *sub);

/* Live filters as the direct path's table counts them: distinct exact
 * keys, prefixes and any-key subscriptions. */
static inline size_t shnd_index_entries(const struct shnd_index *ix)
{
	return (ix->nkeys + ix->nprefixes + ix->nwild);
}

#endif
