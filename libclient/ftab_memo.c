/* SPDX-License-Identifier: MIT */
/*
 * ftab_memo.c - the publisher's memo of filter-table lookups: see
 * ftab_memo.h for why it is right.  Calls nothing else of libclient.
 */
#include "ftab_memo.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

/* What an entry answers for: a key at a generation, and how many ports. */
struct memo_tag {
	uint64_t hash;
	uint64_t gen1;                 /* generation + 1; 0: empty */
	uint16_t key_len;
	uint8_t nm;
	uint8_t key[SHN__FTAB_MEMO_KEY];
};

struct shn__ftab_memo_ent {
	struct memo_tag t;
	struct shn_ftab_match m[SHN__FTAB_MEMO_PORTS];
};

/* The last answer: an entry with room for a wide fan-out's ports. */
struct shn__ftab_last {
	struct memo_tag t;
	struct shn_ftab_match m[SHN__FTAB_LAST_PORTS];
};

/* The table's hash, for the lookup's prefixes of a key. */
static uint64_t ftab_hash(const void *key, size_t len)
{
	return (XXH3_64bits(key, len));
}

/* The interest summary as the lookup's hint (shm/direct.h), when the
 * broker keeps it with prefixes in it; else NULL (probe everything). */
static const _Atomic uint64_t *lookup_hint(const shn_client *c)
{
	const uint32_t want = SHN_BROKER_F_INTEREST | SHN_BROKER_F_PREFIX;

	return ((c->bshm->flags & want) == want ? c->interest : NULL);
}

static struct shn__ftab_memo_ent *slot_of(shn_client *c, uint64_t hash)
{
	if (c->ftab_memo == NULL) {
		c->ftab_memo = calloc(SHN__FTAB_MEMO_SLOTS, sizeof(*c->ftab_memo));
		if (c->ftab_memo == NULL)
			return (NULL);   /* no memo: every lookup asks the table */
	}
	return (&c->ftab_memo[2 * ((hash >> 20) & (SHN__FTAB_MEMO_SLOTS / 2 - 1))]);
}

static bool holds(const struct memo_tag *t, uint64_t gen, uint64_t hash, const void *key,
		  uint32_t len)
{
	return (t->gen1 == gen + 1 && t->hash == hash && t->key_len == len &&
		memcmp(t->key, key, len) == 0);
}

/* The one-entry memo of the last answer, for any table: a flood (or a
 * latency test) sends one key, whose lookup is then a compare; a miss
 * costs one compare of the hash. */
static struct shn__ftab_last *last_of(shn_client *c)
{
	if (c->ftab_last == NULL)
		c->ftab_last = calloc(1, sizeof(*c->ftab_last));
	return (c->ftab_last);
}

/* Keep an answer in an entry of either kind (m: the entry's room). */
static void remember(struct memo_tag *t, struct shn_ftab_match *m, uint64_t gen, uint64_t hash,
		     const void *key, uint32_t len, const struct shn_ftab_match *out, int nm)
{
	t->hash = hash;
	t->gen1 = gen + 1;
	t->key_len = (uint16_t)len;
	t->nm = (uint8_t)nm;
	memcpy(t->key, key, len);
	memcpy(m, out, (size_t)nm * sizeof(*m));
}

int shn__ftab_memo_lookup(shn_client *c, uint64_t gen, uint64_t hash, const void *key,
			  uint32_t len, struct shn_ftab_match *out, uint32_t max)
{
	struct shn__ftab_memo_ent *e = NULL;
	struct shn__ftab_last *last = NULL;
	int nm;

	if (len <= SHN__FTAB_MEMO_KEY) {
		last = last_of(c);
		if (last != NULL && holds(&last->t, gen, hash, key, len) && last->t.nm <= max) {
			memcpy(out, last->m, last->t.nm * sizeof(*out));
			return (last->t.nm);
		}
		/* with exact keys only, the lookup is one probe: no cheaper
		 * than the memo's sets (measured: 1000 keys 20.7 M/s without
		 * them, 16.0 with) */
		if (shn_ftab_has_prefixes(c->ftab, gen))
			e = slot_of(c, hash);
	}

	if (e != NULL) {
		for (int w = 0; w < 2; w++)
			if (holds(&e[w].t, gen, hash, key, len) && e[w].t.nm <= max) {
				memcpy(out, e[w].m, e[w].t.nm * sizeof(*out));
				return (e[w].t.nm);
			}
		e[1] = e[0];   /* two ways, the newest first */
	}
	nm = shn_ftab_lookup_hinted(c->ftab, gen, hash, key, len, out, max, ftab_hash,
				    lookup_hint(c), SHN_INTEREST_BITS);
	if (e != NULL && nm >= 0 && nm <= SHN__FTAB_MEMO_PORTS)
		remember(&e->t, e->m, gen, hash, key, len, out, nm);
	if (last != NULL && nm >= 0 && nm <= SHN__FTAB_LAST_PORTS)
		remember(&last->t, last->m, gen, hash, key, len, out, nm);
	return (nm);
}

bool shn__ftab_memo_listens(shn_client *c, uint64_t hash, const void *key, uint32_t len)
{
	const struct shn__ftab_memo_ent *e;
	uint64_t gen;

	if (c->ftab == NULL || c->ftab_memo == NULL || len > SHN__FTAB_MEMO_KEY)
		return (false);
	e = &c->ftab_memo[2 * ((hash >> 20) & (SHN__FTAB_MEMO_SLOTS / 2 - 1))];
	gen = atomic_load_explicit(&c->ftab->gen, memory_order_acquire);
	return ((holds(&e[0].t, gen, hash, key, len) && e[0].t.nm > 0) ||
		(holds(&e[1].t, gen, hash, key, len) && e[1].t.nm > 0));
}

void shn__ftab_memo_free(shn_client *c)
{
	free(c->ftab_memo);
	c->ftab_memo = NULL;
	free(c->ftab_last);
	c->ftab_last = NULL;
}
