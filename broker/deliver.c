/* SPDX-License-Identifier: MIT */
/*
 * deliver.c - writing to ports: one delivered batch per matching port, or
 * the whole batch dropped and counted (no room, never fits, or no memory to
 * match it); a port's pending system events (OVERFLOW, HANDLE_CLOSE) kept
 * in order in broker memory and written before anything else; parking a
 * port that has no room and asking its consumer for a doorbell; publishing
 * each written port's tail once per round and waking only sleepers.
 *
 * The consumer's head is client-written: range-checked
 * (shn_ring_load_head) before it frees room; one out of range cuts the
 * port's owner off.
 */
#define _GNU_SOURCE
#include "deliver.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "client.h"
#include "dring.h"
#include "log.h"
#include "match.h"
#include "util/copy.h"

static void mark_dirty(struct shnd_broker *b, struct shnd_port *p)
{
	if (!p->dirty) {
		p->dirty = true;
		shnd_list_add_tail(&b->router.dirty, &p->dirty_link);
	}
}

void shnd_deliver_port_corrupt(struct shnd_port *p)
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
	uint32_t data_len = (ev->event == SHN_EV_OVERFLOW_WIRE) ? 8u :
			    ev->nbarrier * (uint32_t)sizeof(struct shn_direct_barrier);
	uint32_t size = (uint32_t)sizeof(struct shn_del_batch) + shn_del_note_size(0, data_len);
	struct shn_del_batch *db;
	struct shn_del_note *dn;
	int err;

	db = shn_ring_reserve(&p->ring, size, &err);
	if (err) {
		shnd_deliver_port_corrupt(p);
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
	if (ev->event == SHN_EV_OVERFLOW_WIRE) {
		put_le64((uint8_t *)(dn + 1), ev->val);
	} else {
		dn->conn = ev->val;
		if (data_len != 0)
			memcpy(dn + 1, ev->barrier, data_len);
	}
	shn_ring_commit(&p->ring, size);
	mark_dirty(b, p);
	return (true);
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
	shnd_deliver_ask_room(p);
}

/* A parked port is retried only once its consumer has moved: until then
 * nothing can have changed, and consecutive drops keep merging into one
 * pending OVERFLOW instead of trickling out as one small record each. */
bool shnd_deliver_flush(struct shnd_broker *b, struct shnd_port *p)
{
	if (p->pend_n == 0)
		return (true);
	if (p->on_pending &&
	    atomic_load_explicit(&p->ring.cons->head, memory_order_relaxed) == p->want_head)
		return (false);
	while (p->pend_n > 0) {
		if (!write_sysev(b, p, &p->pend[p->pend_head]))
			break;
		free(p->pend[p->pend_head].barrier);
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
	p->pend[(p->pend_head + p->pend_n) % p->pend_cap] =
		(struct shnd_sysev){ .event = event, .val = val };
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
			t->val = shnd_add_sat(t->val, count);
			return;
		}
	}
	if (push_sysev(p, SHN_EV_OVERFLOW_WIRE, count) < 0) {
		b->tot.alloc_failures++;
		shnd_err("port %u: out of memory, an overflow report of %llu is lost",
			 p->id, (unsigned long long)count);
	}
}

int shnd_deliver_queue_event(struct shnd_broker *b, struct shnd_port *p, uint32_t event,
			    uint64_t val)
{
	int err = push_sysev(p, event, val);

	if (err == 0)
		shnd_deliver_flush(b, p);
	return (err);
}

int shnd_deliver_queue_close(struct shnd_broker *b, struct shnd_port *p, uint64_t conn,
			     struct shn_direct_barrier *barrier, uint32_t n)
{
	int err = push_sysev(p, SHN_EV_HANDLE_CLOSE_WIRE, conn);

	if (err) {
		free(barrier);
		return (err);
	}
	p->pend[(p->pend_head + p->pend_n - 1) % p->pend_cap].barrier = barrier;
	p->pend[(p->pend_head + p->pend_n - 1) % p->pend_cap].nbarrier = barrier ? n : 0;
	shnd_deliver_flush(b, p);
	return (0);
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
		for (m = p->first; m != SHND_NO_MATCH; m = r->match[m].next)
			for (uint32_t k = 0; k < r->match[m].n; k++) {
				const struct shn_pub_note *pn =
					(const void *)(r->scratch + r->notes[r->match[m].idx + k]);

				if (pn->event == SHN_EV_OVERFLOW_WIRE)
					lost = shnd_add_sat(lost, shn_gap_count(pn));
			}
	}
	p->seq += users;
	p->dropped += users;
	b->tot.notifications_dropped += users;
	add_overflow(b, p, shnd_add_sat(lost, users));
}

bool shnd_deliver(struct shnd_broker *b, struct shnd_client *src, struct shnd_port *p,
		    const struct shn_pub_batch *pb, uint32_t token)
{
	struct shnd_router *r = &b->router;
	uint32_t hdr = shnd_deliver_hdr_size(p);
	uint64_t size = hdr + p->bytes;
	bool clear = shnd_deliver_flush(b, p);
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
		shnd_deliver_port_corrupt(p);
		return (false);
	}
	if (db == NULL)
		goto drop;
	db->h.len = (uint32_t)size;
	db->h.type = p->direct ? SHN_REC_DELIVERY2 : SHN_REC_DELIVERY;
	db->h.flags = token != 0 ? SHN_DEL_SYNC : 0;
	db->count = p->count;
	db->sender_pid = src->pid;
	db->sender_uid = src->uid;
	db->sync_token = token;
	db->batch_id = pb->batch_id;
	db->time_ns = pb->time_ns;
	if (p->direct) {
		struct shn_del_batch2 *db2 = (void *)db;

		db2->client_id = src->id;
		db2->ring_id = shnd_dring_ring_id(src, p);
		db2->reserved = 0;
	}
	out = (uint8_t *)db + hdr;
	const uint64_t zero = 0;

	for (m = p->first; m != SHND_NO_MATCH; m = r->match[m].next) {
		const struct shnd_match *mt = &r->match[m];

		for (uint32_t k = 0; k < mt->n; k++) {
			const struct shn_pub_note *pn =
				(const void *)(r->scratch + r->notes[mt->idx + k]);
			struct shn_del_note *dn = (void *)out;
			uint32_t body = (uint32_t)pn->key_len + pn->data_len;
			uint32_t sz = shn_del_note_size(pn->key_len, pn->data_len);

			dn->event = pn->event;
			dn->key_len = pn->key_len;
			dn->reserved = 0;
			dn->data_len = pn->data_len;
			dn->reserved2 = 0;
			dn->conn = mt->conn;
			/* a gap report is a system event: no number of its own */
			dn->seq = pn->event == SHN_EV_OVERFLOW_WIRE ? 0 : ++p->seq;
			if (body != 0) {
				/* the padding (under 8 bytes) is in the last word:
				 * zero it, then the key and data over the rest */
				memcpy(out + sz - 8, &zero, 8);
				shu_copy_small(dn + 1, pn + 1, body);
			}
			out += sz;
		}
	}
	shn_ring_commit(&p->ring, (uint32_t)size);
	mark_dirty(b, p);
	p->delivered += p->count;
	b->tot.notifications_delivered += p->count;
	return (true);
drop:
	drop_counted(b, p);
	if (src->direct_setup)
		shnd_dring_loss_pending(p, src);
	if (clear && never)
		shnd_deliver_flush(b, p); /* room for the report is likely there now */
	else
		park(b, p);          /* report once the consumer makes room */
	return (false);
}

int shnd_deliver_fits(struct shn_ring *r, uint32_t len)
{
	uint64_t cost = shn_ring_cost(r, len);

	if (r->capacity - shn_ring_used(r) >= cost)
		return (1);
	if (shn_ring_load_head(r) < 0)
		return (-EBADMSG);
	return (r->capacity - shn_ring_used(r) >= cost);
}

void shnd_deliver_publish(struct shnd_broker *b)
{
	struct shnd_list *pos, *tmp;
	uint64_t one = 1;

	shnd_list_for_each_safe(pos, tmp, &b->router.dirty) {
		struct shnd_port *p = shnd_list_entry(pos, struct shnd_port, dirty_link);

		shnd_list_del(&p->dirty_link);
		p->dirty = false;
		shn_ring_publish(&p->ring);
		if (p->dloss && p->pend_n == 0)
			shnd_dring_loss_told(p);   /* the report is out: direct again */
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

void shnd_deliver_retry_pending(struct shnd_broker *b)
{
	struct shnd_list *pos, *tmp;

	b->router.kick = false;
	shnd_list_for_each_safe(pos, tmp, &b->router.pending) {
		struct shnd_port *p = shnd_list_entry(pos, struct shnd_port, pending_link);

		shnd_deliver_flush(b, p);
	}
}
