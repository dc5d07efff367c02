/* SPDX-License-Identifier: MIT */
/*
 * filter_cache.c - a port's copy of its own filters, for the reader of its
 * direct rings: see filter_cache.h.  Calls nothing else of libclient.
 */
#include "filter_cache.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

void shn__fc_free(shn_port *p)
{
	free(p->fc_tab);
	free(p->fc_any);
	free(p->fc_keys);
	free(p->fc_pbloom);
	p->fc_tab = NULL;
	p->fc_any = NULL;
	p->fc_keys = NULL;
	p->fc_pbloom = NULL;
	p->fc_cap = p->fc_nany = p->fc_pbloom_bits = 0;
	memset(p->fc_plens, 0, sizeof(p->fc_plens));
	free(p->fc_memo);
	p->fc_memo = NULL;
	p->fc_valid = false;
}

/* A filter hash's bit in the cache's bloom bits (the high half: the low
 * one places it in the table). */
static inline uint32_t fc_pbloom_bit(const shn_port *p, uint64_t h)
{
	return ((uint32_t)(h >> 32) & (p->fc_pbloom_bits - 1));
}

int shn__fc_build(shn_port *p)
{
	shn_client *c = p->client;
	uint32_t nexact = 0, nany = 0, nprefix = 0, cap = 8, keys = 0, pbits = 64;

	shn__fc_free(p);
	p->fc_gen = atomic_load(&p->sinks_gen);
	for (const struct shn__sub *s = c->subs; s; s = s->next) {
		if (s->port != p)
			continue;
		if (s->any_key || s->monitor) {
			nany++;
		} else {
			nexact++;
			nprefix += s->prefix;
			keys += s->key_len;
		}
	}
	while (cap < 2 * nexact)
		cap <<= 1;
	/* 16 bits a filter: a key that is not a filter's, and most prefix
	 * lengths of a note, find their bit clear and cost no probe of the
	 * table */
	while (pbits < 16 * nexact && pbits < (1u << 20))
		pbits <<= 1;
	p->fc_tab = calloc(cap, sizeof(*p->fc_tab));
	p->fc_any = calloc(nany ? nany : 1, sizeof(*p->fc_any));
	p->fc_keys = malloc(keys ? keys : 1);
	p->fc_pbloom = calloc(pbits / 64, sizeof(uint64_t));
	if (p->fc_tab == NULL || p->fc_any == NULL || p->fc_keys == NULL || p->fc_pbloom == NULL) {
		shn__fc_free(p);
		return (-ENOMEM);
	}
	p->fc_cap = cap;
	p->fc_pbloom_bits = pbits;
	keys = 0;
	for (const struct shn__sub *s = c->subs; s; s = s->next) {
		struct shn__fc_ent *e;
		uint64_t h;

		if (s->port != p)
			continue;
		if (s->any_key || s->monitor) {
			p->fc_any[p->fc_nany++] = (struct shn__fc_any){ s->conn, s->mask };
			continue;
		}
		h = XXH3_64bits(s->key, s->key_len);
		for (e = &p->fc_tab[h & (cap - 1)]; e->key_len != 0;
		     e = &p->fc_tab[(uint32_t)(e - p->fc_tab + 1) & (cap - 1)])
			;
		memcpy(p->fc_keys + keys, s->key, s->key_len);
		*e = (struct shn__fc_ent){ .hash = h, .conn = s->conn, .mask = s->mask,
					   .key_off = keys, .key_len = s->key_len,
					   .prefix = s->prefix };
		p->fc_pbloom[fc_pbloom_bit(p, h) / 64] |= 1ull << (fc_pbloom_bit(p, h) % 64);
		if (s->prefix)
			p->fc_plens[(s->key_len - 1) / 64] |= 1ull << ((s->key_len - 1) % 64);
		keys += s->key_len;
	}
	p->fc_valid = true;
	return (0);
}

/* The oldest entry of the cache's chain for key[0..len) (hash h, exact or
 * prefix as asked) that takes event, or best. */
static shn_conn fc_probe(const shn_port *p, uint64_t h, bool prefix, uint32_t event,
			 const uint8_t *key, uint32_t len, shn_conn best)
{
	for (uint32_t i = (uint32_t)h & (p->fc_cap - 1);; i = (i + 1) & (p->fc_cap - 1)) {
		const struct shn__fc_ent *e = &p->fc_tab[i];

		if (e->key_len == 0)
			break;
		if (e->hash == h && e->key_len == len && e->prefix == prefix && (event & e->mask) &&
		    memcmp(p->fc_keys + e->key_off, key, len) == 0 &&
		    (best == 0 || e->conn < best))
			best = e->conn;
	}
	return (best);
}

/* fc_probe, unless the filter's bloom bit says no filter has hash h. */
static inline shn_conn fc_maybe_probe(const shn_port *p, uint64_t h, bool prefix, uint32_t event,
				      const uint8_t *key, uint32_t len, shn_conn best)
{
	uint32_t bit = fc_pbloom_bit(p, h);

	if (!((p->fc_pbloom[bit / 64] >> (bit % 64)) & 1u))
		return (best);
	return (fc_probe(p, h, prefix, event, key, len, best));
}

/* The oldest filter of the cache that takes this note (any-key, its exact
 * key, or a prefix of it: one probe per prefix length the port's filters
 * use, no longer than the key, unless the bloom bits rule it out): its
 * conn, or 0. */
static shn_conn fc_find(const shn_port *p, uint32_t event, const uint8_t *key, uint32_t key_len)
{
	shn_conn best = 0;

	for (uint32_t i = 0; i < p->fc_nany; i++)
		if ((event & p->fc_any[i].mask) && (best == 0 || p->fc_any[i].conn < best))
			best = p->fc_any[i].conn;
	if (p->fc_cap == 0)
		return (best);
	best = fc_maybe_probe(p, XXH3_64bits(key, key_len), false, event, key, key_len, best);
	for (uint32_t w = 0; w < SHN_PREFIX_LEN_WORDS && 64 * w < key_len; w++)
		for (uint64_t bits = p->fc_plens[w]; bits != 0; bits &= bits - 1) {
			uint32_t len = 64 * w + (uint32_t)__builtin_ctzll(bits) + 1;

			if (len > key_len)
				break;
			best = fc_maybe_probe(p, XXH3_64bits(key, len), true, event, key, len, best);
		}
	return (best);
}

/* A note's conn, remembered: (key, event) -> conn is a function of the
 * cache's content, so an entry is right until the cache is rebuilt
 * (shn__fc_free drops the memo with it).  Only a conn found is kept: 0
 * sends match_note to ask again under ctl_lock. */
struct shn__fc_memo_ent {
	uint64_t hash;
	uint64_t conn;                 /* 0: empty */
	uint32_t event;
	uint16_t key_len;
	uint8_t key[SHN__FC_MEMO_KEY];
};

shn_conn shn__fc_lookup(shn_port *p, uint32_t event, const uint8_t *key, uint32_t key_len)
{
	struct shn__fc_memo_ent *e = NULL;
	uint64_t h = 0;
	shn_conn conn;

	/* with a few filters, or exact keys only (one probe), the lookup is
	 * as cheap as the memo */
	if (p->fc_cap >= SHN__FC_MEMO_MIN_CAP && key_len <= SHN__FC_MEMO_KEY &&
	    (p->fc_plens[0] | p->fc_plens[1] | p->fc_plens[2] | p->fc_plens[3]) != 0) {
		if (p->fc_memo == NULL)
			p->fc_memo = calloc(SHN__FC_MEMO_SLOTS, sizeof(*p->fc_memo));
		if (p->fc_memo != NULL) {
			h = XXH3_64bits(key, key_len);
			e = &p->fc_memo[2 * ((h >> 20) & (SHN__FC_MEMO_SLOTS / 2 - 1))];
			for (int w = 0; w < 2; w++)
				if (e[w].conn != 0 && e[w].hash == h && e[w].event == event &&
				    e[w].key_len == key_len &&
				    memcmp(e[w].key, key, key_len) == 0)
					return (e[w].conn);
			e[1] = e[0];   /* two ways, the newest first */
		}
	}
	conn = fc_find(p, event, key, key_len);
	if (e != NULL && conn != 0) {
		e->hash = h;
		e->conn = conn;
		e->event = event;
		e->key_len = (uint16_t)key_len;
		memcpy(e->key, key, key_len);
	}
	return (conn);
}
