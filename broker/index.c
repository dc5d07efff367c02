/* SPDX-License-Identifier: MIT */
#include "index.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

void shnd_index_init(struct shnd_index *ix)
{
	ix->buckets = NULL;
	ix->nbuckets = 0;
	ix->nkeys = 0;
	shnd_list_init(&ix->wild);
	ix->nwild = 0;
	ix->interest_count = NULL;
	ix->interest_map = NULL;
	ix->any_key_subs = NULL;
	ix->changes = 0;
}

int shnd_index_attach(struct shnd_index *ix, struct shn_broker_shm *bs)
{
	/* 2 MiB of counters, untouched (so not resident) until keys use them */
	ix->interest_count = calloc(SHN_INTEREST_BITS, sizeof(*ix->interest_count));
	if (ix->interest_count == NULL)
		return (-ENOMEM);
	ix->interest_map = (_Atomic uint64_t *)(void *)((uint8_t *)bs + SHN_INTEREST_OFF);
	ix->any_key_subs = &bs->any_key_subs;
	return (0);
}

/* A key entry of this hash appeared: the first one sets its bit. */
static void interest_add(struct shnd_index *ix, uint64_t hash)
{
	uint32_t bit = (uint32_t)(hash & (SHN_INTEREST_BITS - 1));

	if (ix->interest_count == NULL)
		return;
	if (ix->interest_count[bit]++ == 0)
		atomic_fetch_or_explicit(&ix->interest_map[bit / 64], (uint64_t)1 << (bit % 64),
					 memory_order_release);
}

/* A key entry of this hash went away: the last one clears its bit. */
static void interest_del(struct shnd_index *ix, uint64_t hash)
{
	uint32_t bit = (uint32_t)(hash & (SHN_INTEREST_BITS - 1));

	if (ix->interest_count == NULL)
		return;
	if (--ix->interest_count[bit] == 0)
		atomic_fetch_and_explicit(&ix->interest_map[bit / 64],
					  ~((uint64_t)1 << (bit % 64)), memory_order_release);
}

void shnd_index_fini(struct shnd_index *ix)
{
	size_t i;

	for (i = 0; i < ix->nbuckets; i++) {
		struct shnd_keyent *ke, *next;

		for (ke = ix->buckets[i]; ke != NULL; ke = next) {
			next = ke->next;
			free(ke);
		}
	}
	free(ix->buckets);
	ix->buckets = NULL;
	ix->nbuckets = 0;
	ix->nkeys = 0;
	free(ix->interest_count);
	ix->interest_count = NULL;
	ix->interest_map = NULL;
	ix->any_key_subs = NULL;
}

uint64_t shnd_index_hash(const void *key, size_t len)
{
	return (XXH3_64bits(key, len));
}

struct shnd_keyent *shnd_index_find(const struct shnd_index *ix, const void *key,
				    size_t len, uint64_t hash)
{
	struct shnd_keyent *ke;

	if (ix->nbuckets == 0)
		return (NULL);
	for (ke = ix->buckets[hash & (ix->nbuckets - 1)]; ke != NULL; ke = ke->next)
		if (ke->hash == hash && ke->key_len == len && memcmp(ke->key, key, len) == 0)
			return (ke);
	return (NULL);
}

/* Keep chains short: the router walks one per published notification. */
static int grow(struct shnd_index *ix)
{
	size_t nb = ix->nbuckets ? ix->nbuckets * 2 : 64;
	struct shnd_keyent **b = calloc(nb, sizeof(*b));
	size_t i;

	if (b == NULL)
		return (-ENOMEM);
	for (i = 0; i < ix->nbuckets; i++) {
		struct shnd_keyent *ke, *next;

		for (ke = ix->buckets[i]; ke != NULL; ke = next) {
			next = ke->next;
			ke->next = b[ke->hash & (nb - 1)];
			b[ke->hash & (nb - 1)] = ke;
		}
	}
	free(ix->buckets);
	ix->buckets = b;
	ix->nbuckets = nb;
	return (0);
}

int shnd_index_add(struct shnd_index *ix, struct shnd_sub *sub, const void *key, size_t len)
{
	struct shnd_keyent *ke;
	uint64_t hash;

	ix->changes++;
	if (key == NULL) {
		sub->ke = NULL;
		shnd_list_add_tail(&ix->wild, &sub->by_key);
		ix->nwild++;
		if (ix->any_key_subs != NULL)
			atomic_fetch_add_explicit(ix->any_key_subs, 1, memory_order_release);
		return (0);
	}
	hash = shnd_index_hash(key, len);
	ke = shnd_index_find(ix, key, len, hash);
	if (ke == NULL) {
		if (ix->nkeys >= ix->nbuckets && grow(ix) < 0 && ix->nbuckets == 0)
			return (-ENOMEM);
		ke = malloc(sizeof(*ke) + len);
		if (ke == NULL)
			return (-ENOMEM);
		ke->hash = hash;
		shnd_list_init(&ke->subs);
		ke->nsubs = 0;
		ke->key_len = (uint16_t)len;
		memcpy(ke->key, key, len);
		ke->next = ix->buckets[hash & (ix->nbuckets - 1)];
		ix->buckets[hash & (ix->nbuckets - 1)] = ke;
		ix->nkeys++;
		interest_add(ix, hash);
	}
	shnd_list_add_tail(&ke->subs, &sub->by_key);
	ke->nsubs++;
	sub->ke = ke;
	return (0);
}

void shnd_index_del(struct shnd_index *ix, struct shnd_sub *sub)
{
	struct shnd_keyent *ke = sub->ke, **pp;

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
	for (pp = &ix->buckets[ke->hash & (ix->nbuckets - 1)]; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == ke) {
			*pp = ke->next;
			break;
		}
	}
	ix->nkeys--;
	interest_del(ix, ke->hash);
	free(ke);
}
