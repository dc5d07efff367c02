/* SPDX-License-Identifier: MIT */
/*
 * index.c - see index.h.  Two hash tables of the same shape (exact keys,
 * prefixes), the any-key list, the prefix lengths in use, and the interest
 * summary they publish in the broker segment.
 */
#include "index.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

void shnd_index_init(struct shnd_index *ix)
{
	memset(ix, 0, sizeof(*ix));
	shnd_list_init(&ix->wild);
}

int shnd_index_attach(struct shnd_index *ix, struct shn_broker_shm *bs)
{
	/* 2 MiB of counters, untouched (so not resident) until keys use them */
	ix->interest_count = calloc(SHN_INTEREST_BITS, sizeof(*ix->interest_count));
	if (ix->interest_count == NULL)
		return (-ENOMEM);
	ix->interest_map = (_Atomic uint64_t *)(void *)((uint8_t *)bs + SHN_INTEREST_OFF);
	ix->any_key_subs = &bs->any_key_subs;
	ix->prefix_lens = bs->prefix_lens;
	return (0);
}

/* An entry of this hash appeared: the first one sets its bit. */
static void interest_add(struct shnd_index *ix, uint64_t hash)
{
	uint32_t bit = (uint32_t)(hash & (SHN_INTEREST_BITS - 1));

	if (ix->interest_count == NULL)
		return;
	if (ix->interest_count[bit]++ == 0)
		atomic_fetch_or_explicit(&ix->interest_map[bit / 64], (uint64_t)1 << (bit % 64),
					 memory_order_release);
}

/* An entry of this hash went away: the last one clears its bit. */
static void interest_del(struct shnd_index *ix, uint64_t hash)
{
	uint32_t bit = (uint32_t)(hash & (SHN_INTEREST_BITS - 1));

	if (ix->interest_count == NULL)
		return;
	if (--ix->interest_count[bit] == 0)
		atomic_fetch_and_explicit(&ix->interest_map[bit / 64],
					  ~((uint64_t)1 << (bit % 64)), memory_order_release);
}

/* A prefix entry of len bytes appeared: the first of its length joins
 * plens (kept ascending) and sets the length's bit in the broker segment,
 * after the prefix's own interest bit (interest_add ran first), so a
 * publisher that sees the length finds the bit. */
static void plen_add(struct shnd_index *ix, size_t len)
{
	uint32_t i;

	if (ix->plen_count[len]++ != 0)
		return;
	for (i = ix->nplens; i > 0 && ix->plens[i - 1] > len; i--)
		ix->plens[i] = ix->plens[i - 1];
	ix->plens[i] = (uint16_t)len;
	ix->nplens++;
	if (ix->prefix_lens != NULL)
		atomic_fetch_or_explicit(&ix->prefix_lens[(len - 1) / 64],
					 (uint64_t)1 << ((len - 1) % 64), memory_order_release);
}

static void plen_del(struct shnd_index *ix, size_t len)
{
	uint32_t i;

	if (--ix->plen_count[len] != 0)
		return;
	for (i = 0; i < ix->nplens && ix->plens[i] != len; i++)
		;
	for (; i + 1 < ix->nplens; i++)
		ix->plens[i] = ix->plens[i + 1];
	ix->nplens--;
	if (ix->prefix_lens != NULL)
		atomic_fetch_and_explicit(&ix->prefix_lens[(len - 1) / 64],
					  ~((uint64_t)1 << ((len - 1) % 64)), memory_order_release);
}

static void free_table(struct shnd_keyent **buckets, size_t nbuckets)
{
	for (size_t i = 0; i < nbuckets; i++) {
		struct shnd_keyent *ke, *next;

		for (ke = buckets[i]; ke != NULL; ke = next) {
			next = ke->next;
			free(ke);
		}
	}
	free(buckets);
}

void shnd_index_fini(struct shnd_index *ix)
{
	free_table(ix->buckets, ix->nbuckets);
	free_table(ix->pbuckets, ix->npbuckets);
	ix->buckets = ix->pbuckets = NULL;
	ix->nbuckets = ix->npbuckets = 0;
	ix->nkeys = ix->nprefixes = 0;
	free(ix->interest_count);
	ix->interest_count = NULL;
	ix->interest_map = NULL;
	ix->any_key_subs = NULL;
	ix->prefix_lens = NULL;
}

uint64_t shnd_index_hash(const void *key, size_t len)
{
	return (XXH3_64bits(key, len));
}

static struct shnd_keyent *find_in(struct shnd_keyent *const *buckets, size_t nbuckets,
				   const void *key, size_t len, uint64_t hash)
{
	struct shnd_keyent *ke;

	if (nbuckets == 0)
		return (NULL);
	for (ke = buckets[hash & (nbuckets - 1)]; ke != NULL; ke = ke->next)
		if (ke->hash == hash && ke->key_len == len && memcmp(ke->key, key, len) == 0)
			return (ke);
	return (NULL);
}

struct shnd_keyent *shnd_index_find(const struct shnd_index *ix, const void *key,
				    size_t len, uint64_t hash)
{
	return (find_in(ix->buckets, ix->nbuckets, key, len, hash));
}

struct shnd_keyent *shnd_index_find_prefix(const struct shnd_index *ix, const void *prefix,
					   size_t len, uint64_t hash)
{
	return (find_in(ix->pbuckets, ix->npbuckets, prefix, len, hash));
}

/* Keep chains short: the router walks one per published notification
 * (and one per prefix length in use). */
static int grow(struct shnd_keyent ***buckets, size_t *nbuckets)
{
	size_t nb = *nbuckets ? *nbuckets * 2 : 64;
	struct shnd_keyent **b = calloc(nb, sizeof(*b));
	size_t i;

	if (b == NULL)
		return (-ENOMEM);
	for (i = 0; i < *nbuckets; i++) {
		struct shnd_keyent *ke, *next;

		for (ke = (*buckets)[i]; ke != NULL; ke = next) {
			next = ke->next;
			ke->next = b[ke->hash & (nb - 1)];
			b[ke->hash & (nb - 1)] = ke;
		}
	}
	free(*buckets);
	*buckets = b;
	*nbuckets = nb;
	return (0);
}

int shnd_index_add(struct shnd_index *ix, struct shnd_sub *sub, const void *key, size_t len)
{
	struct shnd_keyent ***buckets = sub->prefix ? &ix->pbuckets : &ix->buckets;
	size_t *nbuckets = sub->prefix ? &ix->npbuckets : &ix->nbuckets;
	size_t *n = sub->prefix ? &ix->nprefixes : &ix->nkeys;
	struct shnd_keyent *ke;
	uint64_t hash;

	ix->changes++;
	if (key == NULL) {
		sub->ke = NULL;
		sub->prefix = false;   /* an empty prefix is any key */
		shnd_list_add_tail(&ix->wild, &sub->by_key);
		ix->nwild++;
		if (ix->any_key_subs != NULL)
			atomic_fetch_add_explicit(ix->any_key_subs, 1, memory_order_release);
		return (0);
	}
	hash = shnd_index_hash(key, len);
	ke = find_in(*buckets, *nbuckets, key, len, hash);
	if (ke == NULL) {
		if (*n >= *nbuckets && grow(buckets, nbuckets) < 0 && *nbuckets == 0)
			return (-ENOMEM);
		ke = malloc(sizeof(*ke) + len);
		if (ke == NULL)
			return (-ENOMEM);
		ke->hash = hash;
		shnd_list_init(&ke->subs);
		ke->nsubs = 0;
		ke->key_len = (uint16_t)len;
		ke->prefix = sub->prefix;
		memcpy(ke->key, key, len);
		ke->next = (*buckets)[hash & (*nbuckets - 1)];
		(*buckets)[hash & (*nbuckets - 1)] = ke;
		(*n)++;
		interest_add(ix, hash);
		if (ke->prefix)
			plen_add(ix, len);
	}
	shnd_list_add_tail(&ke->subs, &sub->by_key);
	ke->nsubs++;
	sub->ke = ke;
	return (0);
}

void shnd_index_del(struct shnd_index *ix, struct shnd_sub *sub)
{
	struct shnd_keyent *ke = sub->ke, **pp, **buckets;
	size_t nbuckets;

	ix->changes++;
	shnd_list_del(&sub->by_key);
	if (ke == NULL) {
		ix->nwild--;
		if (ix->any_key_subs != NULL)
			atomic_fetch_sub_explicit(ix->any_key_subs, 1, memory_order_release);
		return;
	}
	sub->ke = NULL;
	if (--ke->nsubs > 0)
		return;
	buckets = ke->prefix ? ix->pbuckets : ix->buckets;
	nbuckets = ke->prefix ? ix->npbuckets : ix->nbuckets;
	for (pp = &buckets[ke->hash & (nbuckets - 1)]; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == ke) {
			*pp = ke->next;
			break;
		}
	}
	if (ke->prefix) {
		ix->nprefixes--;
		plen_del(ix, ke->key_len);
	} else {
		ix->nkeys--;
	}
	interest_del(ix, ke->hash);
	free(ke);
}
