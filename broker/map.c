/* SPDX-License-Identifier: MIT */
#include "map.h"

#include <errno.h>
#include <stdlib.h>

/* splitmix64's finalizer: conn numbers are often 1, 2, 3...; mixing spreads
 * both those and adversarial choices over the buckets. */
static size_t bucket_of(uint64_t key, size_t nbuckets)
{
	key ^= key >> 30;
	key *= 0xbf58476d1ce4e5b9ull;
	key ^= key >> 27;
	key *= 0x94d049bb133111ebull;
	key ^= key >> 31;
	return ((size_t)key & (nbuckets - 1));
}

void shnd_map_init(struct shnd_map *m)
{
	m->buckets = NULL;
	m->nbuckets = 0;
	m->count = 0;
}

void shnd_map_fini(struct shnd_map *m)
{
	free(m->buckets);
	shnd_map_init(m);
}

struct shnd_hnode *shnd_map_find(const struct shnd_map *m, uint64_t key)
{
	struct shnd_hnode *n;

	if (m->nbuckets == 0)
		return (NULL);
	for (n = m->buckets[bucket_of(key, m->nbuckets)]; n != NULL; n = n->next)
		if (n->key == key)
			return (n);
	return (NULL);
}

static int grow(struct shnd_map *m)
{
	size_t nb = m->nbuckets ? m->nbuckets * 2 : 16;
	struct shnd_hnode **b = calloc(nb, sizeof(*b));
	size_t i;

	if (b == NULL)
		return (-ENOMEM);
	for (i = 0; i < m->nbuckets; i++) {
		struct shnd_hnode *n = m->buckets[i], *next;

		for (; n != NULL; n = next) {
			size_t j = bucket_of(n->key, nb);

			next = n->next;
			n->next = b[j];
			b[j] = n;
		}
	}
	free(m->buckets);
	m->buckets = b;
	m->nbuckets = nb;
	return (0);
}

int shnd_map_insert(struct shnd_map *m, struct shnd_hnode *n)
{
	size_t j;

	if (m->count >= m->nbuckets) {
		int err = grow(m);

		/* a full table still works, only slower: fail only when empty */
		if (err && m->nbuckets == 0)
			return (err);
	}
	j = bucket_of(n->key, m->nbuckets);
	n->next = m->buckets[j];
	m->buckets[j] = n;
	m->count++;
	return (0);
}

void shnd_map_remove(struct shnd_map *m, struct shnd_hnode *n)
{
	struct shnd_hnode **pp = &m->buckets[bucket_of(n->key, m->nbuckets)];

	for (; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == n) {
			*pp = n->next;
			n->next = NULL;
			m->count--;
			return;
		}
	}
}
