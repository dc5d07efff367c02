/* SPDX-License-Identifier: MIT */
/*
 * match.c - matching a validated batch against the subscription index:
 * for each note, the subscriptions whose key (exact, prefix of it, or any)
 * and mask take it; per port,
 * one chain of the notes it takes (ranges of notes, the port's oldest
 * matching conn on each), their count and bytes, and the list of ports
 * touched.  A note with the key and event of the note before it is not
 * looked up: it goes where that one went (repeat()).  Reads the
 * index only; writes the router's per-batch arrays and the ports' routing
 * scratch (struct shnd_port: gen .. lost_gap_sum).
 *
 * The match list grows while routing; when it cannot (out of memory) the
 * port whose match is not recorded loses the batch whole and deliver.c
 * reports it (docs/protocol.md, stats alloc_failures).
 */
#define _GNU_SOURCE
#include "match.h"

#include <stdlib.h>
#include <string.h>

#include "array.h"
#include "fault.h"
#include "index.h"
#include "log.h"

/* Note i matched p but could not be recorded (out of memory): p loses the
 * whole batch (a batch arrives whole or not at all), so its other notes
 * are only counted, for the OVERFLOW deliver.c reports instead. */
static void count_lost(struct shnd_port *p, uint32_t i, const struct shn_pub_note *pn)
{
	p->lost = true;
	p->cur_note = i;
	p->count++;
	if (pn->event == SHN_EV_OVERFLOW_WIRE) {
		p->gaps++;
		p->lost_gap_sum = shnd_add_sat(p->lost_gap_sum, shn_gap_count(pn));
	}
}

/* The match list is full: grow it.  0, or -ENOMEM (logged, counted). */
static int grow_match(struct shnd_broker *b, const struct shnd_port *p)
{
	struct shnd_router *r = &b->router;

	if (!shnd_fault_alloc(SHND_FAULT_MATCH) &&
	    shnd_array_reserve((void **)&r->match, &r->match_cap, r->nmatch + 1,
			       sizeof(*r->match)) == 0)
		return (0);
	b->tot.alloc_failures++;
	shnd_err("out of memory routing a batch (%zu matches): port %u loses it, and is told "
		 "so by an overflow report", r->nmatch + 1, p->id);
	return (-ENOMEM);
}

/* Note i matched sub: record it once per port, keeping the smallest conn
 * (the port's oldest matching subscription, docs/design.md, rule 15), and the
 * smallest subscription serial (the order SYNC serves ports in).  With
 * only set, subscriptions of other ports are ignored. */
static void match(struct shnd_broker *b, struct shnd_sub *sub, uint32_t i,
		  const struct shn_pub_note *pn, const struct shnd_port *only)
{
	struct shnd_router *r = &b->router;
	struct shnd_port *p = sub->port;
	struct shnd_match *mt;

	if (only != NULL && p != only)
		return;
	if (p->gen != r->gen) {
		if (p->owner->state == SHND_CLIENT_DOOMED)
			return;
		p->gen = r->gen;
		p->cur_note = SHND_NO_MATCH;
		p->first = p->last = SHND_NO_MATCH;
		p->count = 0;
		p->gaps = 0;
		p->bytes = 0;
		p->lost = false;
		p->lost_gap_sum = 0;
		p->first_serial = sub->serial;
		/* room for every port was made when it opened (port.c) */
		r->touched[r->ntouched++] = p;
	}
	if (sub->serial < p->first_serial)
		p->first_serial = sub->serial;
	if (p->cur_note == i) {
		/* another of p's subscriptions takes the same note */
		if (!p->lost && sub->conn < r->match[p->last].conn)
			r->match[p->last].conn = sub->conn;
		return;
	}
	/* p takes note i (recorded or, out of memory, counted): a repeat of
	 * it goes to p too */
	r->took[r->ntook++] = p;
	if (__builtin_expect(p->lost, 0) ||
	    (r->nmatch == r->match_cap && grow_match(b, p) < 0)) {
		count_lost(p, i, pn);
		return;
	}
	mt = &r->match[r->nmatch];
	mt->idx = i;
	mt->n = 1;
	mt->next = SHND_NO_MATCH;
	mt->conn = sub->conn;
	if (p->first == SHND_NO_MATCH)
		p->first = (uint32_t)r->nmatch;
	else
		r->match[p->last].next = (uint32_t)r->nmatch;
	p->last = (uint32_t)r->nmatch;
	p->cur_note = i;
	p->count++;
	p->gaps += pn->event == SHN_EV_OVERFLOW_WIRE;
	p->bytes += shn_del_note_size(pn->key_len, pn->data_len);
	r->nmatch++;
}

/* Note i has the key and event of note i - 1: the same subscriptions take
 * it, under the same conns, so it goes to the ports that took note i - 1
 * (r->took), each match extended by one note -- a flood's run of one key
 * is matched once, not once a note and port. */
static void repeat(struct shnd_router *r, uint32_t i, const struct shn_pub_note *pn)
{
	for (size_t t = 0; t < r->ntook; t++) {
		struct shnd_port *p = r->took[t];

		if (__builtin_expect(p->lost, 0)) {
			count_lost(p, i, pn);
			continue;
		}
		r->match[p->last].n++;
		p->cur_note = i;
		p->count++;
		p->gaps += pn->event == SHN_EV_OVERFLOW_WIRE;
		p->bytes += shn_del_note_size(pn->key_len, pn->data_len);
	}
}

#define COLLECT_AHEAD 8   /* notes; a power of two */

/* True when notes i and i - 1 carry the same key.  Floods repeat keys:
 * such a note reuses the previous note's hash and index entry, which costs
 * one short compare instead of a hash and a lookup. */
static inline bool same_key_as_previous(const struct shnd_router *r, int i)
{
	const struct shn_pub_note *pn, *pp;

	if (i == 0)
		return (false);
	pn = (const void *)(r->scratch + r->notes[i]);
	pp = (const void *)(r->scratch + r->notes[i - 1]);
	return (pn->key_len == pp->key_len && memcmp(pn + 1, pp + 1, pn->key_len) == 0);
}

/* Hash note i's key (prev_h: note i - 1's hash) and prefetch its index
 * bucket; *same: the key is note i - 1's. */
static inline uint64_t collect_prefetch(const struct shnd_index *ix, const struct shnd_router *r,
					int i, uint64_t prev_h, bool *same)
{
	const struct shn_pub_note *pn = (const void *)(r->scratch + r->notes[i]);
	uint64_t h;

	*same = same_key_as_previous(r, i);
	if (*same)
		return (prev_h);
	h = shnd_index_hash(pn + 1, pn->key_len);

	__builtin_prefetch(&ix->buckets[h & (ix->nbuckets - 1)]);
	return (h);
}

/* The prefix entries that take a key: one lookup per distinct prefix
 * length in use no longer than the key (O(P), never a scan of the
 * filters).  Fills pke[] and returns how many. */
static uint32_t lookup_prefixes(const struct shnd_index *ix, const uint8_t *key, uint32_t len,
				struct shnd_keyent **pke)
{
	uint32_t n = 0;

	for (uint32_t j = 0; j < ix->nplens && ix->plens[j] <= len; j++) {
		uint32_t p = ix->plens[j];
		uint64_t h = shnd_index_hash(key, p);
		struct shnd_keyent *ke;

		/* a prefix nobody named has its interest bit clear (most
		 * lengths, with many in use): a bit of 64 KiB instead of a
		 * bucket and an entry, each a cache miss */
		if (!shnd_index_may_have(ix, h))
			continue;
		ke = shnd_index_find_prefix(ix, key, p, h);
		if (ke != NULL)
			pke[n++] = ke;
	}
	return (n);
}

/* A key's prefix entries, remembered: they change only when the index
 * does (its change count moves on every SUBSCRIBE and UNSUBSCRIBE), so an
 * entry tagged with the count is right while the count is the same, and
 * its entry pointers are alive (an entry is freed only by a change).
 * Floods publish the same keys again and again: one hash and one compare
 * instead of a hash and a bit test per prefix length in use. */
#define PMEMO_SLOTS 2048   /* a power of two: 1024 sets of two ways */
#define PMEMO_KEY   32     /* longer keys: looked up every time */
#define PMEMO_ENTS  4      /* more prefix entries: looked up every time */

struct shnd_prefix_memo {
	uint64_t hash;
	uint64_t changes1;      /* ix->changes + 1; 0: empty */
	uint16_t key_len;
	uint8_t n;
	struct shnd_keyent *pke[PMEMO_ENTS];
	uint8_t key[PMEMO_KEY];
};

static uint32_t find_prefixes(struct shnd_router *r, const struct shnd_index *ix,
			      const uint8_t *key, uint32_t len, struct shnd_keyent **pke)
{
	struct shnd_prefix_memo *m = NULL;
	uint64_t h = 0;
	uint32_t n;

	if (len <= PMEMO_KEY) {
		if (r->pmemo == NULL)
			r->pmemo = calloc(PMEMO_SLOTS, sizeof(*r->pmemo));
		if (r->pmemo != NULL) {
			h = shnd_index_hash(key, len);
			m = &r->pmemo[2 * ((h >> 20) & (PMEMO_SLOTS / 2 - 1))];
			for (int w = 0; w < 2; w++)
				if (m[w].changes1 == ix->changes + 1 && m[w].hash == h &&
				    m[w].key_len == len && memcmp(m[w].key, key, len) == 0) {
					memcpy(pke, m[w].pke, m[w].n * sizeof(*pke));
					return (m[w].n);
				}
			m[1] = m[0];   /* two ways, the newest first */
		}
	}
	n = lookup_prefixes(ix, key, len, pke);
	if (m != NULL && n <= PMEMO_ENTS) {
		m->hash = h;
		m->changes1 = ix->changes + 1;
		m->key_len = (uint16_t)len;
		m->n = (uint8_t)n;
		memcpy(m->pke, pke, n * sizeof(*pke));
		memcpy(m->key, key, len);
	}
	return (n);
}

/* The index does not change while a batch is collected (it changes only
 * on control messages, between rounds). */
void shnd_match_collect(struct shnd_broker *b, int count, const struct shnd_port *only)
{
	struct shnd_router *r = &b->router;
	struct shnd_index *ix = &b->index;
	uint64_t hq[COLLECT_AHEAD];   /* hashes of the notes i .. i + COLLECT_AHEAD - 1 */
	bool sq[COLLECT_AHEAD];       /* and whether each has the previous note's key */
	uint64_t prev_h = 0;
	uint32_t prev_ev = 0;   /* note i - 1's event (none is 0) */
	struct shnd_keyent *prev_ke = NULL;
	/* the prefix entries of the last note looked up, and which note: a
	 * flood repeating a key looks them up once */
	struct shnd_keyent *pke[SHN_KEY_MAX_WIRE];
	uint32_t npke = 0;
	int pke_note = -1;
	int i;

	r->gen++;
	r->nmatch = 0;
	r->ntouched = 0;
	r->ntook = 0;
	if (shnd_index_entries(ix) == 0)
		return;
	/* With many keys each lookup misses the cache on the bucket, then on
	 * the entry, then on the subscription: hash COLLECT_AHEAD notes ahead
	 * and prefetch their buckets, their entries half as far ahead and their
	 * first subscriptions a quarter as far, so that the misses overlap
	 * instead of following one another. */
	for (i = 0; ix->nkeys > 0 && i < count && i < COLLECT_AHEAD; i++)
		prev_h = hq[i] = collect_prefetch(ix, r, i, prev_h, &sq[i]);
	for (i = 0; i < count; i++) {
		const struct shn_pub_note *pn = (const void *)(r->scratch + r->notes[i]);
		/* a gap report (shn_notify_gap) reaches every filter on its key */
		uint32_t ev = pn->event == SHN_EV_OVERFLOW_WIRE ? UINT32_MAX : pn->event;
		struct shnd_list *pos;

		if (ix->nkeys > 0) {
			uint64_t h = hq[i % COLLECT_AHEAD];
			bool same = sq[i % COLLECT_AHEAD];
			struct shnd_keyent *ke;

			if (i + COLLECT_AHEAD / 2 < count)
				__builtin_prefetch(ix->buckets[hq[(i + COLLECT_AHEAD / 2) % COLLECT_AHEAD] &
							       (ix->nbuckets - 1)]);
			if (i + COLLECT_AHEAD / 4 < count) {
				/* the entry is in cache by now: prefetch its first subscription */
				const struct shnd_keyent *e =
					ix->buckets[hq[(i + COLLECT_AHEAD / 4) % COLLECT_AHEAD] &
						    (ix->nbuckets - 1)];
				if (e != NULL)
					__builtin_prefetch(e->subs.next);
			}
			if (i + COLLECT_AHEAD < count)
				hq[i % COLLECT_AHEAD] =
					collect_prefetch(ix, r, i + COLLECT_AHEAD,
							 hq[(i + COLLECT_AHEAD - 1) % COLLECT_AHEAD],
							 &sq[i % COLLECT_AHEAD]);
			if (same && pn->event == prev_ev) {
				repeat(r, (uint32_t)i, pn);
				if (pke_note == i - 1)
					pke_note = i;   /* same key: same prefix entries */
				continue;
			}
			r->ntook = 0;
			/* the index does not change while a batch is collected */
			ke = same ? prev_ke : shnd_index_find(ix, pn + 1, pn->key_len, h);
			prev_ke = ke;

			if (ke != NULL) {
				shnd_list_for_each(pos, &ke->subs) {
					struct shnd_sub *s = shnd_list_entry(pos, struct shnd_sub, by_key);

					if (ev & s->mask)
						match(b, s, (uint32_t)i, pn, only);
				}
			}
		} else {
			r->ntook = 0;
		}
		prev_ev = pn->event;
		if (ix->nplens > 0) {
			/* match() keeps each port once per note, with the
			 * smallest conn, whatever mix of filters took it */
			if (pke_note != i - 1 || !same_key_as_previous(r, i))
				npke = find_prefixes(r, ix, (const uint8_t *)(pn + 1), pn->key_len, pke);
			pke_note = i;
			for (uint32_t j = 0; j < npke; j++)
				shnd_list_for_each(pos, &pke[j]->subs) {
					struct shnd_sub *s = shnd_list_entry(pos, struct shnd_sub, by_key);

					if (ev & s->mask)
						match(b, s, (uint32_t)i, pn, only);
				}
		}
		shnd_list_for_each(pos, &ix->wild) {
			struct shnd_sub *s = shnd_list_entry(pos, struct shnd_sub, by_key);

			if (ev & s->mask)
				match(b, s, (uint32_t)i, pn, only);
		}
	}
}
