/* SPDX-License-Identifier: MIT */
/*
 * map.h - an intrusive chained hash map keyed by uint64_t.
 *
 * Used for ports by id and for a client's subscriptions by conn.  Keys come
 * from clients (conn numbers), so the bucket is chosen by a mixed hash, not
 * the raw key, to keep a hostile choice of keys from piling into one chain.
 */
#ifndef SHND_MAP_H
#define SHND_MAP_H

#include <stddef.h>
#include <stdint.h>

struct shnd_hnode {
	struct shnd_hnode *next;
	uint64_t key;
};

struct shnd_map {
	struct shnd_hnode **buckets;
	size_t nbuckets; /* power of two, or 0 before the first insert */
	size_t count;
};

/* An empty map; allocates nothing. */
void shnd_map_init(struct shnd_map *m);

/* Free the bucket array; the nodes belong to the caller. */
void shnd_map_fini(struct shnd_map *m);

/* The node with this key, or NULL. */
struct shnd_hnode *shnd_map_find(const struct shnd_map *m, uint64_t key);

/* Insert n (n->key set by the caller; the caller checks for duplicates).
 * 0 or -ENOMEM (then n is not inserted). */
int shnd_map_insert(struct shnd_map *m, struct shnd_hnode *n);

/* Remove n, which must be in m. */
void shnd_map_remove(struct shnd_map *m, struct shnd_hnode *n);

#endif
