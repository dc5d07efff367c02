/* SPDX-License-Identifier: MIT */
/*
 * router.c - drain, validate, route, deliver, wake.
 *
 * Every byte a client can write is hostile: a publish record is copied into
 * private scratch memory before a single field of it is believed, and a
 * consumer head is range-checked (shn_ring_load_head) before it frees room.
 */
#define _GNU_SOURCE
#include "router.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "acl.h"
#include "array.h"
#include "fault.h"
#include "index.h"
#include "log.h"
#include "server.h"
#include "validate.h"

#define NO_MATCH UINT32_MAX
/* shn_sync_ack.status: a sink answered SHN_CALLBACK_DISCONTINUE */
#define SYNC_ACK_DISCONTINUE 1u

void shnd_router_init(struct shnd_router *r)
{
	memset(r, 0, sizeof(*r));
	shnd_list_init(&r->dirty);
	shnd_list_init(&r->pending);
	shnd_list_init(&r->syncs);
}

void shnd_router_fini(struct shnd_router *r)
{
	free(r->scratch);
	free(r->notes);
	free(r->match);
	free(r->touched);
	memset(r, 0, sizeof(*r));
}

/* ---- delivery side ---------------------------------------------------- */

/* Saturating: gap reports carry client-chosen counts. */
static inline uint64_t add_sat(uint64_t a, uint64_t b)
{
	return (a + b < a ? UINT64_MAX : a + b);
}


static void mark_dirty(struct shnd_broker *b, struct shnd_port *p)
{
	if (!p->dirty) {
		p->dirty = true;
		shnd_list_add_tail(&b->router.dirty, &p->dirty_link);
	}
}

static void port_corrupt(struct shnd_port *p)
{
	struct shnd_client *c = p->owner;

	c->ring_failed = true;
	shnd_client_fail(c, &c->b->tot.ring_errors,
			 "port %u: consumer head out of range", p->id);
}

static void put_le64(uint8_t *d, uint64_t v)
{
	int i;

	for (i = 0; i < 8; i++)
		d[i] = (uint8_t)(v >> (8 * i));
}

/* Write one system event.  True when written; false when there is no room
 * (or the consumer line is corrupt: then the owner is failed too). */
static bool write_sysev(struct shnd_broker *b, struct shnd_port *p, const struct shnd_sysev *ev)
{
	uint32_t data_len = (ev->event == SHN_EV_OVERFLOW_WIRE) ? 8u : 0u;
	uint32_t size = (uint32_t)sizeof(struct shn_del_batch) + shn_del_note_size(0, data_len);
	struct shn_del_batch *db;
	struct shn_del_note *dn;
	int err;

	db = shn_ring_reserve(&p->ring, size, &err);
	if (err) {
		port_corrupt(p);
		return (false);
	}
	if (db == NULL)
		return (false);
	memset(db, 0, size);
	db->h.len = size;
	db->h.type = SHN_REC_DELIVERY;
	db->count = 1;
	dn = (struct shn_del_note *)(db + 1);
	dn->event = ev->event;
	dn->data_len = data_len;
	if (ev->event == SHN_EV_OVERFLOW_WIRE)
		put_le64((uint8_t *)(dn + 1), ev->val);
	else
		dn->conn = ev->val;
	shn_ring_commit(&p->ring, size);
	mark_dirty(b, p);
	return (true);
}

/* Ask p's consumer for room: it rings its doorbell once it released a
 * head past head_cache (the head the caller just loaded and found short).
 * A position rather than a count of requests, so that a consumer that
 * reads the request right after releasing that very head does not spend
 * its one doorbell on a move the broker has already seen (the wake-up
 * that used to be lost under SHN_OVERFLOW_BLOCK, docs/ring.md).  The
 * broker's sleep re-check (full fence, then the consumer's head against
 * want_head / stall_head) closes the other side. */
static void ask_room(struct shnd_port *p)
{
	if (p->asked && p->ring.head_cache == p->want_head)
		return;   /* the same request is still out */
	p->asked = true;
	p->want_head = p->ring.head_cache;
	shn_ring_ask_room(&p->ring, p->want_head);
}

/* Put p, which holds system events it could not write, on the pending
 * list (once) and ask its consumer for room. */
static void park(struct shnd_broker *b, struct shnd_port *p)
{
	if (p->owner->state == SHND_CLIENT_DOOMED)
		return;
	if (!p->on_pending) {
		p->on_pending = true;
		shnd_list_add_tail(&b->router.pending, &p->pending_link);
	}
	ask_room(p);
}

/* Write p's pending system events in order.  True when none is left.
 * A parked port is retried only once its consumer has moved: until then
 * nothing can have changed, and consecutive drops keep merging into one
 * pending OVERFLOW instead of trickling out as one small record each. */
static bool flush_pending(struct shnd_broker *b, struct shnd_port *p)
{
	if (p->pend_n == 0)
		return (true);
	if (p->on_pending &&
	    atomic_load_explicit(&p->ring.cons->head, memory_order_relaxed) == p->want_head)
		return (false);
	while (p->pend_n > 0) {
		if (!write_sysev(b, p, &p->pend[p->pend_head]))
			break;
		p->pend_head = (p->pend_head + 1) % p->pend_cap;
		p->pend_n--;
	}
	if (p->pend_n == 0) {
		p->pend_head = 0;
		if (p->on_pending) {
			p->on_pending = false;
			shnd_list_del(&p->pending_link);
		}
		return (true);
	}
	park(b, p);
	return (false);
}

static int push_sysev(struct shnd_port *p, uint32_t event, uint64_t val)
{
	if (p->pend_n == p->pend_cap) {
		uint32_t ncap = p->pend_cap ? p->pend_cap * 2 : 4;
		struct shnd_sysev *n = malloc(ncap * sizeof(*n));
		uint32_t i;

		if (n == NULL)
			return (-ENOMEM);
		for (i = 0; i < p->pend_n; i++)
			n[i] = p->pend[(p->pend_head + i) % p->pend_cap];
		free(p->pend);
		p->pend = n;
		p->pend_cap = ncap;
		p->pend_head = 0;
	}
	p->pend[(p->pend_head + p->pend_n) % p->pend_cap] = (struct shnd_sysev){ event, val };
	p->pend_n++;
	return (0);
}

/* count user notifications were lost for p: merge into the OVERFLOW at the
 * queue's tail, or start one. */
static void add_overflow(struct shnd_broker *b, struct shnd_port *p, uint64_t count)
{
	if (p->pend_n > 0) {
		struct shnd_sysev *t = &p->pend[(p->pend_head + p->pend_n - 1) % p->pend_cap];

		if (t->event == SHN_EV_OVERFLOW_WIRE) {
			t->val = add_sat(t->val, count);
			return;
		}
	}
	if (push_sysev(p, SHN_EV_OVERFLOW_WIRE, count) < 0) {
		b->tot.alloc_failures++;
		shnd_err("port %u: out of memory, an overflow report of %llu is lost",
			 p->id, (unsigned long long)count);
	}
}

int shnd_router_queue_event(struct shnd_broker *b, struct shnd_port *p, uint32_t event,
			    uint64_t val)
{
	int err = push_sysev(p, event, val);

	if (err == 0)
		flush_pending(b, p);
	return (err);
}

void shnd_router_forget_port(struct shnd_broker *b, struct shnd_port *p)
{
	size_t i;

	/* publishers held back by it go on */
	for (i = 0; i < b->nclients; i++)
		if (b->clients[i]->stall_port == p)
			b->clients[i]->stall_port = NULL;
	if (p->dirty) {
		p->dirty = false;
		shnd_list_del(&p->dirty_link);
	}
	if (p->on_pending) {
		p->on_pending = false;
		shnd_list_del(&p->pending_link);
	}
}

/* The batch being routed is dropped for p: its user notes leave a gap in
 * p's seq, and the OVERFLOW reported covers them plus the counts of the
 * gap reports (shn_notify_gap) it carried, so the total stays exact.  The
 * notes left unrecorded for lack of memory (p->lost) were counted as they
 * matched. */
static void drop_counted(struct shnd_broker *b, struct shnd_port *p)
{
	struct shnd_router *r = &b->router;
	uint64_t users = p->count - p->gaps, lost = p->lost_gap_sum;
	uint32_t m;

	if (p->gaps > 0) {
		for (m = p->first; m != NO_MATCH; m = r->match[m].next) {
			const struct shn_pub_note *pn = (const void *)(r->scratch + r->match[m].note);

			if (pn->event == SHN_EV_OVERFLOW_WIRE)
				lost = add_sat(lost, shn_gap_count(pn));
		}
	}
	p->seq += users;
	p->dropped += users;
	b->tot.notifications_dropped += users;
	add_overflow(b, p, add_sat(lost, users));
}

/* Write, for port p, the notes of the batch being routed that matched it,
 * as one delivered batch, or drop them all (DESIGN rule 4).  A non-zero
 * token marks the record SHN_DEL_SYNC with that token.  True when written
 * (false: dropped, or the port's owner is gone or failed). */
static bool deliver(struct shnd_broker *b, struct shnd_client *src, struct shnd_port *p,
		    const struct shn_pub_batch *pb, uint32_t token)
{
	struct shnd_router *r = &b->router;
	uint64_t size = sizeof(struct shn_del_batch) + p->bytes;
	bool clear = flush_pending(b, p);
	/* out of memory matching it, or it can never fit: dropped, reported now */
	bool never = p->lost || size > shn_ring_max_record(p->capacity);
	struct shn_del_batch *db;
	uint8_t *out;
	uint32_t m;
	int err;

	if (p->owner->state == SHND_CLIENT_DOOMED)
		return (false);
	if (!clear || never)
		goto drop;
	db = shn_ring_reserve(&p->ring, (uint32_t)size, &err);
	if (err) {
		port_corrupt(p);
		return (false);
	}
	if (db == NULL)
		goto drop;
	db->h.len = (uint32_t)size;
	db->h.type = SHN_REC_DELIVERY;
	db->h.flags = token != 0 ? SHN_DEL_SYNC : 0;
	db->count = p->count;
	db->sender_pid = src->pid;
	db->sender_uid = src->uid;
	db->sync_token = token;
	db->batch_id = pb->batch_id;
	db->time_ns = pb->time_ns;
	out = (uint8_t *)(db + 1);
	for (m = p->first; m != NO_MATCH; m = r->match[m].next) {
		const struct shn_pub_note *pn = (const void *)(r->scratch + r->match[m].note);
		struct shn_del_note *dn = (void *)out;
		uint32_t body = (uint32_t)pn->key_len + pn->data_len;
		uint32_t sz = shn_del_note_size(pn->key_len, pn->data_len);

		dn->event = pn->event;
		dn->key_len = pn->key_len;
		dn->reserved = 0;
		dn->data_len = pn->data_len;
		dn->reserved2 = 0;
		dn->conn = r->match[m].conn;
		/* a gap report is a system event: no number of its own */
		dn->seq = pn->event == SHN_EV_OVERFLOW_WIRE ? 0 : ++p->seq;
		memcpy(dn + 1, pn + 1, body);
		memset((uint8_t *)(dn + 1) + body, 0, sz - sizeof(*dn) - body);
		out += sz;
	}
	shn_ring_commit(&p->ring, (uint32_t)size);
	mark_dirty(b, p);
	p->delivered += p->count;
	b->tot.notifications_delivered += p->count;
	return (true);
drop:
	drop_counted(b, p);
	if (clear && never)
		flush_pending(b, p); /* room for the report is likely there now */
	else
		park(b, p);          /* report once the consumer makes room */
	return (false);
}

/* ---- publish side ----------------------------------------------------- */

/* Check a private copy of a batch record (validate.c); fill r->notes with
 * the offsets of its notes.  Returns the note count, or -EBADMSG. */
static int validate(struct shnd_router *r, uint32_t len)
{
	int count = shnd_pub_batch_check(r->scratch, len);

	if (count < 0)
		return (count);
	if (shnd_array_reserve((void **)&r->notes, &r->notes_cap, (size_t)count, sizeof(*r->notes)) < 0)
		return (-ENOMEM);
	return (shnd_pub_notes_check(r->scratch, len, (uint32_t)count, r->notes));
}

/* Note i matched p but could not be recorded (out of memory): p loses the
 * whole batch (a batch arrives whole or not at all), so its other notes
 * are only counted, for the OVERFLOW deliver() reports instead. */
static void count_lost(struct shnd_port *p, uint32_t i, const struct shn_pub_note *pn)
{
	p->lost = true;
	p->cur_note = i;
	p->count++;
	if (pn->event == SHN_EV_OVERFLOW_WIRE) {
		p->gaps++;
		p->lost_gap_sum = add_sat(p->lost_gap_sum, shn_gap_count(pn));
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
 * (the port's oldest matching subscription, DESIGN rule 15), and the
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
		p->cur_note = NO_MATCH;
		p->first = p->last = NO_MATCH;
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
	if (__builtin_expect(p->lost, 0) ||
	    (r->nmatch == r->match_cap && grow_match(b, p) < 0)) {
		count_lost(p, i, pn);
		return;
	}
	mt = &r->match[r->nmatch];
	mt->note = r->notes[i];
	mt->next = NO_MATCH;
	mt->conn = sub->conn;
	if (p->first == NO_MATCH)
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

/* Would a record of len bytes fit p's ring now?  1 yes, 0 no, -EBADMSG
 * when the consumer's head is corrupt. */
static int fits(struct shn_ring *r, uint32_t len)
{
	uint64_t cost = shn_ring_cost(r, len);

	if (r->capacity - shn_ring_used(r) >= cost)
		return (1);
	if (shn_ring_load_head(r) < 0)
		return (-EBADMSG);
	return (r->capacity - shn_ring_used(r) >= cost);
}

/* SHN_OVERFLOW_BLOCK: the batch goes to every matching port or, while a
 * blocking port has no room for it (its pending system events first), to
 * none: the publisher's ring holds it, and so holds back everything the
 * publisher sends after it (per-publisher order).  A batch that can never
 * fit such a port is dropped and reported there as with DROP, or it would
 * block forever.  True when c must wait. */
static bool must_wait(struct shnd_broker *b, struct shnd_client *c)
{
	struct shnd_router *r = &b->router;
	size_t t;

	for (t = 0; t < r->ntouched; t++) {
		struct shnd_port *p = r->touched[t];
		uint64_t size = sizeof(struct shn_del_batch) + p->bytes;
		int ok;

		if (p->overflow != SHN_OVERFLOW_BLOCK_WIRE || p->lost ||
		    size > shn_ring_max_record(p->capacity))
			continue;   /* dropped and reported there instead */
		ok = flush_pending(b, p) ? fits(&p->ring, (uint32_t)size) : 0;
		if (ok < 0)
			port_corrupt(p);
		if (ok != 0 || p->owner->state == SHND_CLIENT_DOOMED)
			continue;
		c->stall_port = p;
		c->stall_head = p->ring.head_cache;
		ask_room(p);
		return (true);
	}
	return (false);
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

/* Match the count notes of the validated batch in r->scratch against the
 * index: fills r->touched (each port once) and each port's match chain.
 * With only set, just that port's subscriptions count. */
static void collect(struct shnd_broker *b, int count, const struct shnd_port *only)
{
	struct shnd_router *r = &b->router;
	struct shnd_index *ix = &b->index;
	uint64_t hq[COLLECT_AHEAD];   /* hashes of the notes i .. i + COLLECT_AHEAD - 1 */
	bool sq[COLLECT_AHEAD];       /* and whether each has the previous note's key */
	uint64_t prev_h = 0;
	struct shnd_keyent *prev_ke = NULL;
	int i;

	r->gen++;
	r->nmatch = 0;
	r->ntouched = 0;
	if (ix->nkeys == 0 && ix->nwild == 0)
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
		}
		shnd_list_for_each(pos, &ix->wild) {
			struct shnd_sub *s = shnd_list_entry(pos, struct shnd_sub, by_key);

			if (ev & s->mask)
				match(b, s, (uint32_t)i, pn, only);
		}
	}
}

static void account(struct shnd_broker *b, struct shnd_client *c, uint32_t count)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);   /* vDSO, a tick's precision is plenty */
	c->last_publish_ns = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
	c->published += count;
	c->batches++;
	b->tot.batches_routed++;
	b->tot.notifications_routed += count;
}

static int sync_start(struct shnd_broker *b, struct shnd_client *c, uint32_t count,
		      uint32_t len);
static void send_sync_done(struct shnd_client *c, uint64_t batch_id, int status);

/* The configured limits and ACL on the validated batch in r->scratch
 * (acl.c): its count, -EACCES (refused whole), or -EBADMSG (a key or
 * payload above the configured maximum: a ring error). */
static int policy(struct shnd_broker *b, struct shnd_client *c, int count)
{
	int err = shnd_policy_check_batch(b, c, b->router.scratch, b->router.notes, count);

	return (err == -EMSGSIZE ? -EBADMSG : err < 0 ? err : count);
}

/* Route one publish record of len bytes (already bounded by the ring).
 * 0 routed, 1 held back (not consumed) by a SHN_OVERFLOW_BLOCK port or
 * because it is a SYNC batch now being served, or -EBADMSG when it is
 * malformed (the caller fails the client), -ENOMEM. */
static int route_record(struct shnd_broker *b, struct shnd_client *c, const uint8_t *rec,
			uint32_t len)
{
	struct shnd_router *r = &b->router;
	const struct shn_pub_batch *pb;
	int count;
	size_t t;

	if (shnd_array_reserve((void **)&r->scratch, &r->scratch_cap, len, 1) < 0)
		return (-ENOMEM);
	memcpy(r->scratch, rec, len);
	count = validate(r, len);
	if (count >= 0)
		count = policy(b, c, count);
	pb = (const void *)r->scratch;
	if (count == -EACCES) {
		/* dropped whole, counted (acl_publish_denied); a SYNC publisher
		 * is told */
		if (pb->flags & SHN_PUB_SYNC)
			send_sync_done(c, pb->batch_id, -EACCES);
		return (0);
	}
	if (count < 0)
		return (count);
	collect(b, count, NULL);
	if (pb->flags & SHN_PUB_SYNC) {
		if (r->ntouched > 0)
			return (sync_start(b, c, (uint32_t)count, len));
		/* nobody matches: done at once */
		b->tot.sync_batches++;
		send_sync_done(c, pb->batch_id, 0);
	} else {
		if (must_wait(b, c))
			return (1);
		for (t = 0; t < r->ntouched; t++)
			deliver(b, c, r->touched[t], pb, 0);
	}
	account(b, c, (uint32_t)count);
	return (0);
}

/* Wake a publisher sleeping on a full ring, with hysteresis: only once the
 * ring is at most half full, and once per sleep. */
static void wake_room(struct shnd_client *c)
{
	struct shn_ring *r = &c->pub;
	uint64_t one = 1;
	uint32_t s;

	atomic_thread_fence(memory_order_seq_cst);
	s = atomic_load_explicit(&r->prod->wait_seq, memory_order_relaxed);
	if (!(s & 1u) || s == r->woke_wait_seq)
		return;
	if (r->tail_cache - r->head > r->capacity / 2)
		return;
	r->woke_wait_seq = s;
	c->room_wakeups++;
	if (write(c->room_fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		shnd_debug("client %llu: room eventfd: %s", (unsigned long long)c->id,
			   strerror(errno));
}

static void ring_bad(struct shnd_client *c, int err, const char *what)
{
	c->ring_failed = true;
	shnd_client_fail(c, err == -ENOMEM ? &c->b->tot.alloc_failures : &c->b->tot.ring_errors,
			 "%s: %s", what, err == -ENOMEM ? "out of memory" : "malformed record");
}

/* Drain up to max_records / max_bytes from c's publish ring.  Returns the
 * records consumed, or -1 when the client was failed. */
static long drain(struct shnd_broker *b, struct shnd_client *c, uint64_t max_records,
		  uint64_t max_bytes)
{
	struct shn_ring *r = &c->pub;
	uint64_t start = r->head;
	long n = 0;
	int ret = 0;

	while ((uint64_t)n < max_records && r->head - start < max_bytes) {
		const uint8_t *rec;
		uint32_t len;

		ret = shn_ring_next(r, &rec, &len);
		if (ret <= 0)
			break;
		ret = route_record(b, c, rec, len);
		if (ret != 0)
			break;
		shn_ring_consume(r, len);
		n++;
	}
	if (r->head != c->pub_released) {
		c->pub_released = r->head;
		shn_ring_release(r);
		wake_room(c);
	}
	if (ret < 0) {
		ring_bad(c, ret, "publish ring");
		return (-1);
	}
	return (n);
}

/* ---- synchronous notify (DESIGN rule 7) -------------------------------
 *
 * A SHN_PUB_SYNC batch is matched when it is read, and its ports are
 * sorted by their oldest matching subscription.  It is then served to one
 * port at a time: written there flagged SHN_DEL_SYNC with a fresh token,
 * and the next port is only served once the consumer stored that token in
 * its ack line (struct shn_sync_ack, at SHN_SYNC_ACK_OFF of the consumer
 * segment).  Meanwhile the record stays at the head of the publisher's
 * ring, so nothing the publisher sent after it is routed; other publishers
 * go on.  Nothing here blocks: each round re-checks every batch being
 * served (one load per batch), and the sleep re-check does too, so a
 * consumer's doorbell after acknowledging wakes the broker.
 *
 * A port gets the record matched against its subscriptions as they are
 * when its turn comes (one that lost its matching filters meanwhile is
 * skipped, so no notification follows its HANDLE_CLOSE, rule 8).  Only one
 * SYNC record per port awaits its acknowledgement at a time: the ack line
 * holds one token.  A port that closed, whose owner died, that dropped the
 * batch (no room, DROP) counts as served; a SHN_OVERFLOW_BLOCK port
 * without room is waited for like any blocking port. */

static struct shn_sync_ack *ack_line(const struct shnd_port *p)
{
	return ((struct shn_sync_ack *)(void *)((uint8_t *)p->cons_seg.addr + SHN_SYNC_ACK_OFF));
}

static struct shnd_port *port_by_id(struct shnd_broker *b, uint32_t id)
{
	struct shnd_hnode *n = shnd_map_find(&b->ports, id);

	return (n ? shnd_container_of(n, struct shnd_port, by_id) : NULL);
}

/* A token no SYNC record awaiting an acknowledgement has, and not the one
 * p's ack line already shows (a stale acknowledgement never counts). */
static uint32_t new_token(struct shnd_broker *b, const struct shnd_port *p)
{
	uint32_t shown = atomic_load_explicit(&ack_line(p)->token, memory_order_relaxed);

	for (;;) {
		uint32_t t = ++b->router.next_token;
		struct shnd_list *pos;
		bool live = false;

		if (t == 0 || t == shown)
			continue;
		shnd_list_for_each(pos, &b->router.syncs) {
			const struct shnd_client *c = shnd_list_entry(pos, struct shnd_client, sync.link);

			if (c->sync.state == SHND_SYNC_ACK && c->sync.token == t)
				live = true;
		}
		if (!live)
			return (t);
	}
}

/* status: 0, SHN_SYNC_CANCELED_WIRE, or -EACCES (refused by the ACL) */
static void send_sync_done(struct shnd_client *c, uint64_t batch_id, int status)
{
	struct shn_msg_sync_done m;

	/* a publisher that left is still served (rule 9), just not told */
	if (c->state != SHND_CLIENT_READY)
		return;
	if (c->conn.nqueued >= SHND_SENDQ_MAX) {
		shnd_client_fail(c, NULL, "%u replies unread", c->conn.nqueued);
		return;
	}
	memset(&m, 0, sizeof(m));
	m.hdr.magic = SHN_PROTO_MAGIC;
	m.hdr.version = SHN_PROTO_VERSION;
	m.hdr.type = SHN_MSG_SYNC_DONE;
	m.hdr.id = 0;
	m.hdr.status = status;
	m.batch_id = batch_id;
	shnd_client_send(c, &m, sizeof(m), NULL, 0, false);
}

struct sync_order {
	uint64_t serial;
	uint32_t id;
};

static int by_serial(const void *a, const void *b)
{
	const struct sync_order *x = a, *y = b;

	return ((x->serial > y->serial) - (x->serial < y->serial));
}

/* The batch in r->scratch (count notes, len bytes at the head of c's
 * ring) matched r->touched: start serving it.  1 (held), or -ENOMEM. */
static int sync_start(struct shnd_broker *b, struct shnd_client *c, uint32_t count,
		      uint32_t len)
{
	struct shnd_router *r = &b->router;
	const struct shn_pub_batch *pb = (const void *)r->scratch;
	struct shnd_sync *s = &c->sync;
	struct sync_order *o = malloc(r->ntouched * sizeof(*o));
	size_t t;

	s->ports = malloc(r->ntouched * sizeof(*s->ports));
	if (o == NULL || s->ports == NULL) {
		free(o);
		free(s->ports);
		s->ports = NULL;
		return (-ENOMEM);
	}
	for (t = 0; t < r->ntouched; t++) {
		o[t].serial = r->touched[t]->first_serial;
		o[t].id = r->touched[t]->id;
	}
	qsort(o, r->ntouched, sizeof(*o), by_serial);
	for (t = 0; t < r->ntouched; t++)
		s->ports[t] = o[t].id;
	free(o);
	s->nports = (uint32_t)r->ntouched;
	s->cur = 0;
	s->len = len;
	s->count = count;
	s->batch_id = pb->batch_id;
	s->token = 0;
	s->state = SHND_SYNC_NEXT;
	shnd_list_add_tail(&r->syncs, &s->link);
	return (1);
}

void shnd_router_forget_client(struct shnd_broker *b, struct shnd_client *c)
{
	struct shnd_sync *s = &c->sync;

	if (s->state == SHND_SYNC_NONE)
		return;
	if (s->state == SHND_SYNC_ACK && s->cur < s->nports) {
		struct shnd_port *p = port_by_id(b, s->ports[s->cur]);

		if (p != NULL && p->sync_token == s->token)
			p->sync_token = 0;   /* other SYNC batches may use it now */
	}
	shnd_list_del(&s->link);
	free(s->ports);
	memset(s, 0, sizeof(*s));
	shnd_list_init(&s->link);
}

/* Served to the end, or canceled: consume the record, tell the publisher,
 * let its ring go on. */
static void sync_finish(struct shnd_broker *b, struct shnd_client *c, bool canceled)
{
	struct shnd_sync *s = &c->sync;
	struct shn_ring *r = &c->pub;
	uint64_t batch_id = s->batch_id;
	uint32_t count = s->count;

	shn_ring_consume(r, s->len);
	shnd_router_forget_client(b, c);
	account(b, c, count);
	b->tot.sync_batches++;
	if (canceled)
		b->tot.sync_canceled++;
	c->pub_released = r->head;
	shn_ring_release(r);
	wake_room(c);
	send_sync_done(c, batch_id, canceled ? SHN_SYNC_CANCELED_WIRE : 0);
}

/* Copy the SYNC record at the head of c's ring into r->scratch again and
 * validate it (the publisher can rewrite it meanwhile).  Count or -errno. */
static int sync_load(struct shnd_broker *b, struct shnd_client *c)
{
	struct shnd_router *r = &b->router;
	const struct shn_pub_batch *pb;
	int count;

	/* [head, head + len) was bounded against the ring when first read */
	memcpy(r->scratch, c->pub.data + (c->pub.head & c->pub.mask), c->sync.len);
	count = validate(r, c->sync.len);
	if (count >= 0)
		count = policy(b, c, count);
	if (count < 0)   /* refused now, accepted before: the publisher rewrote it */
		return (count == -EACCES ? -EBADMSG : count);
	pb = (const void *)r->scratch;
	if (!(pb->flags & SHN_PUB_SYNC) || pb->batch_id != c->sync.batch_id)
		return (-EBADMSG);
	return (count);
}

enum sync_write_result { SYNC_SERVED, SYNC_WRITTEN, SYNC_WAIT_ROOM, SYNC_FAILED };

/* Serve the current port p of c's SYNC batch. */
static enum sync_write_result sync_write(struct shnd_broker *b, struct shnd_client *c,
					 struct shnd_port *p)
{
	struct shnd_router *r = &b->router;
	struct shnd_sync *s = &c->sync;
	uint64_t size;
	uint32_t token;
	int count;

	count = sync_load(b, c);
	if (count < 0) {
		ring_bad(c, count, "publish ring");
		return (SYNC_FAILED);
	}
	collect(b, count, p);
	if (r->ntouched == 0)
		return (SYNC_SERVED);   /* its matching filters are gone */
	size = sizeof(struct shn_del_batch) + p->bytes;
	if (p->overflow == SHN_OVERFLOW_BLOCK_WIRE && !p->lost &&
	    size <= shn_ring_max_record(p->capacity)) {
		/* the head before the check: a move after it is seen later */
		uint64_t head = atomic_load_explicit(&p->ring.cons->head, memory_order_acquire);
		int ok = flush_pending(b, p) ? fits(&p->ring, (uint32_t)size) : 0;

		if (ok < 0) {
			port_corrupt(p);
			return (SYNC_SERVED);
		}
		if (ok == 0) {
			s->room_head = head;
			ask_room(p);
			return (SYNC_WAIT_ROOM);
		}
	}
	token = new_token(b, p);
	if (!deliver(b, c, p, (const struct shn_pub_batch *)r->scratch, token))
		return (SYNC_SERVED);   /* dropped (reported as overflow), or the owner failed */
	p->sync_token = token;
	s->token = token;
	return (SYNC_WRITTEN);
}

/* Advance c's SYNC batch as far as it goes now.  True when it moved. */
static bool sync_step(struct shnd_broker *b, struct shnd_client *c)
{
	struct shnd_sync *s = &c->sync;
	bool moved = false;

	while (s->state != SHND_SYNC_NONE) {
		struct shnd_port *p;
		uint32_t status;

		if (s->cur >= s->nports) {
			sync_finish(b, c, false);
			return (true);
		}
		p = port_by_id(b, s->ports[s->cur]);
		if (p == NULL || p->owner->state == SHND_CLIENT_DOOMED) {
			/* closed, or its owner died or was cut off: served */
			if (p != NULL && s->state == SHND_SYNC_ACK && p->sync_token == s->token)
				p->sync_token = 0;
			s->cur++;
			s->state = SHND_SYNC_NEXT;
			moved = true;
			continue;
		}
		switch (s->state) {
		case SHND_SYNC_ACK:
			/* client-written: only compared */
			if (atomic_load_explicit(&ack_line(p)->token, memory_order_acquire) != s->token)
				return (moved);
			status = atomic_load_explicit(&ack_line(p)->status, memory_order_relaxed);
			p->sync_token = 0;
			if (status == SYNC_ACK_DISCONTINUE) {
				sync_finish(b, c, true);
				return (true);
			}
			s->cur++;
			s->state = SHND_SYNC_NEXT;
			moved = true;
			continue;
		case SHND_SYNC_ROOM:
			if (atomic_load_explicit(&p->ring.cons->head, memory_order_relaxed) ==
			    s->room_head)
				return (moved);
			s->state = SHND_SYNC_NEXT;
			moved = true;
			/* fall through */
		case SHND_SYNC_NEXT:
			if (p->sync_token != 0)
				return (moved);   /* another SYNC record there awaits its ack */
			switch (sync_write(b, c, p)) {
			case SYNC_SERVED:
				s->cur++;
				moved = true;
				continue;
			case SYNC_WRITTEN:
				s->state = SHND_SYNC_ACK;
				return (true);
			case SYNC_WAIT_ROOM:
				s->state = SHND_SYNC_ROOM;
				return (moved);
			case SYNC_FAILED:
				return (true);
			}
			return (moved);
		case SHND_SYNC_NONE:
			break;
		}
	}
	return (moved);
}

/* Could c's SYNC batch move now?  (The sleep re-check: no side effects.) */
static bool sync_ready(struct shnd_broker *b, const struct shnd_client *c)
{
	const struct shnd_sync *s = &c->sync;
	const struct shnd_port *p;

	if (c->ring_failed)
		return (false);
	if (s->cur >= s->nports)
		return (true);
	p = port_by_id(b, s->ports[s->cur]);
	if (p == NULL || p->owner->state == SHND_CLIENT_DOOMED)
		return (true);
	switch (s->state) {
	case SHND_SYNC_ACK:
		return (atomic_load_explicit(&ack_line(p)->token, memory_order_acquire) == s->token);
	case SHND_SYNC_ROOM:
		return (atomic_load_explicit(&p->ring.cons->head, memory_order_acquire) !=
			s->room_head);
	case SHND_SYNC_NEXT:
		return (p->sync_token == 0);
	case SHND_SYNC_NONE:
		break;
	}
	return (false);
}

static bool sync_run(struct shnd_broker *b)
{
	struct shnd_list *pos, *tmp;
	bool moved = false;

	shnd_list_for_each_safe(pos, tmp, &b->router.syncs) {
		struct shnd_client *c = shnd_list_entry(pos, struct shnd_client, sync.link);

		/* a corrupt ring is not served: the client is reaped */
		if (!c->ring_failed && sync_step(b, c))
			moved = true;
	}
	return (moved);
}

void shnd_router_publish(struct shnd_broker *b)
{
	struct shnd_list *pos, *tmp;
	uint64_t one = 1;

	shnd_list_for_each_safe(pos, tmp, &b->router.dirty) {
		struct shnd_port *p = shnd_list_entry(pos, struct shnd_port, dirty_link);

		shnd_list_del(&p->dirty_link);
		p->dirty = false;
		shn_ring_publish(&p->ring);
		/* against the last head seen: an upper bound, as a high-water
		 * mark should be */
		if (p->ring.tail - p->ring.head_cache > p->high_water)
			p->high_water = p->ring.tail - p->ring.head_cache;
		if (!shn_wake_needed(&p->ring.cons->sleep_seq, &p->ring.woke_sleep_seq))
			continue;
		p->wakeups++;
		if (write(p->event_fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
			shnd_debug("port %u: eventfd: %s", p->id, strerror(errno));
	}
}

static void retry_pending(struct shnd_broker *b)
{
	struct shnd_list *pos, *tmp;

	b->router.kick = false;
	shnd_list_for_each_safe(pos, tmp, &b->router.pending) {
		struct shnd_port *p = shnd_list_entry(pos, struct shnd_port, pending_link);

		flush_pending(b, p);
	}
}

/* True while c waits for room in a SHN_OVERFLOW_BLOCK port whose
 * consumer has not moved since. */
static bool stalled(struct shnd_client *c)
{
	struct shnd_port *p = c->stall_port;

	if (c->sync.state != SHND_SYNC_NONE)
		return (true);   /* its SYNC batch is being served */
	if (p == NULL)
		return (false);
	if (atomic_load_explicit(&p->ring.cons->head, memory_order_relaxed) == c->stall_head)
		return (true);
	c->stall_port = NULL;
	return (false);
}

/* Clients whose publish ring the router reads: ready ones, and departed
 * ones still holding batches back (draining). */
static bool drains(const struct shnd_client *c)
{
	return (c->has_pub && (c->state == SHND_CLIENT_READY || c->draining));
}

bool shnd_router_holds(const struct shnd_client *c)
{
	return (c->stall_port != NULL || c->sync.state != SHND_SYNC_NONE);
}

bool shnd_router_round(struct shnd_broker *b)
{
	bool progress = false;
	size_t i;

	for (i = 0; i < b->nclients; i++) {
		struct shnd_client *c = b->clients[i];

		if (drains(c) && !stalled(c) &&
		    drain(b, c, SHND_DRAIN_RECORDS, SHND_DRAIN_BYTES) > 0)
			progress = true;
		/* a departed client is reclaimed once its ring is empty */
		if (c->draining && shnd_list_empty(&c->doom_link) &&
		    (c->ring_failed || (!shnd_router_holds(c) && !shn_ring_readable(&c->pub))))
			shnd_list_add_tail(&b->doomed, &c->doom_link);
	}
	if (!shnd_list_empty(&b->router.syncs) && sync_run(b))
		progress = true;
	if (progress || b->router.kick)
		retry_pending(b);
	shnd_router_publish(b);
	return (progress);
}

void shnd_router_drain_all(struct shnd_broker *b, struct shnd_client *c)
{
	if (!c->has_pub || c->ring_failed || stalled(c))
		return;
	/* bounded: the client is gone, so at most one ring of data remains */
	drain(b, c, UINT64_MAX, (uint64_t)c->pub.capacity + 1);
	shnd_router_publish(b);
}

bool shnd_router_has_work(struct shnd_broker *b)
{
	struct shnd_list *pos;
	size_t i;

	if (b->router.kick)
		return (true);
	for (i = 0; i < b->nclients; i++) {
		struct shnd_client *c = b->clients[i];

		if (drains(c) && !stalled(c) && shn_ring_readable(&c->pub))
			return (true);
	}
	shnd_list_for_each(pos, &b->router.syncs) {
		if (sync_ready(b, shnd_list_entry(pos, struct shnd_client, sync.link)))
			return (true);
	}
	shnd_list_for_each(pos, &b->router.pending) {
		struct shnd_port *p = shnd_list_entry(pos, struct shnd_port, pending_link);

		if (atomic_load_explicit(&p->ring.cons->head, memory_order_acquire) !=
		    p->want_head) {
			b->router.kick = true;
			return (true);
		}
	}
	return (false);
}
