/* SPDX-License-Identifier: MIT */
/*
 * direct_read.c - a port's reader of its rings as one stream
 * (docs/direct-path.md, "A port reads several rings, as one stream"): the
 * broker ring and the direct rings publishers write, merged so that each
 * publisher's batches come in its order; each direct record copied into
 * private memory and checked (shm/direct.h) before anything of it is
 * believed, its notes matched against the port's own live filters (conn),
 * its sender taken from DIRECT_OPEN, its losses turned into one
 * SHN_EV_OVERFLOW before it (and into a jump of the port's seq, which
 * port.c's shn__port_fill numbers across the rings).  A bad record ends that ring only: the reader
 * stops reading it and tells the broker (DIRECT_FAULT).
 *
 * The merge (why it keeps each publisher's order is argued in
 * docs/direct-path.md): load every direct ring's tail, then the broker
 * ring's.  A brokered batch R of publisher P: when P has a direct ring
 * here, re-load its tail and deliver its batches older than R first.  A
 * HANDLE_CLOSE: deliver each direct ring up to the tail the broker wrote
 * in it first (the barrier).  The broker ring empty: the direct rings,
 * round robin, up to the tails loaded before the broker's.
 *
 * Calls call.c (DIRECT_FAULT) and direct.c (DIRECT_CLOSE, whose reply
 * nobody waits for); nothing calls back.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "call.h"
#include "direct.h"
#include "direct_read.h"
#include "filter_cache.h"


static void dring_unmap(struct shn__dring *d)
{
	shn_segment_close(&d->ring_seg);
	shn_segment_close(&d->cons_seg);
	d->live = false;
}

void shn__dread_free(shn_port *p)
{
	for (uint32_t i = 0; i < SHN__DRINGS; i++) {
		if (p->inbox[i].live)
			dring_unmap(&p->inbox[i]);
		if (p->dr[i].live)
			dring_unmap(&p->dr[i]);
	}
	free(p->dbuf);
	p->dbuf = NULL;
	shn__fc_free(p);
}

void shn__dread_broker_lost(shn_port *p, uint32_t epoch)
{
	pthread_mutex_lock(&p->swap_lock);
	for (uint32_t i = 0; i < SHN__DRINGS; i++) {
		if (p->inbox[i].live && p->inbox[i].epoch != epoch)
			dring_unmap(&p->inbox[i]);
		if (p->dr[i].live && p->dr[i].epoch != epoch)
			dring_unmap(&p->dr[i]);
	}
	while (p->ndr > 0 && !p->dr[p->ndr - 1].live)
		p->ndr--;
	pthread_mutex_unlock(&p->swap_lock);
}

/* Tell the broker, without keeping the reader from its other rings any
 * longer than one request. */
static void send_fault(shn_port *p, const struct shn__dring *d)
{
	struct shn_msg_direct_fault req = { .hdr.type = SHN_MSG_DIRECT_FAULT };
	struct shn_msg_reply rep;

	req.port_id = atomic_load(&p->id);
	req.slot = d->slot;
	req.ring_id = d->ring_id;
	(void)shn__call(p->client, &req, sizeof(req), &rep, sizeof(rep), NULL, NULL, NULL);
}

static void send_closed(shn_port *p, const struct shn__dring *d)
{
	shn__direct_tell_closed(p->client, SHN_DIRECT_SUBSCRIBER, d->slot, atomic_load(&p->id), d->ring_id);
}

/* A ring held something the library refuses: never read it again. */
static void fault(shn_port *p, struct shn__dring *d)
{
	d->faulted = true;
	send_fault(p, d);
	dring_unmap(d);
}

/* Take what the thread that read DIRECT_OPEN / DIRECT_CLOSE left. */
static void adopt(shn_port *p)
{
	/* a plain load first: the exchange is a locked instruction, and
	 * mail is rare next to the looks a spinning reader takes */
	if (!atomic_load_explicit(&p->dmail, memory_order_relaxed) ||
	    !atomic_exchange(&p->dmail, false))
		return;
	pthread_mutex_lock(&p->swap_lock);
	for (uint32_t i = 0; i < SHN__DRINGS; i++) {
		uint32_t k;

		if (!p->inbox[i].live)
			continue;
		for (k = 0; k < SHN__DRINGS && p->dr[k].live; k++)
			;
		if (k == SHN__DRINGS)
			break;   /* the broker offers at most this many */
		p->dr[k] = p->inbox[i];
		memset(&p->inbox[i], 0, sizeof(p->inbox[i]));
		if (k >= p->ndr)
			p->ndr = k + 1;
	}
	for (uint32_t j = 0; j < p->nclose; j++)
		for (uint32_t k = 0; k < p->ndr; k++)
			if (p->dr[k].live && p->dr[k].ring_id == p->close_ids[j])
				p->dr[k].closing = true;
	p->nclose = 0;
	pthread_mutex_unlock(&p->swap_lock);
}

/* The conn hook of shn_direct_record_check: the oldest filter of the port
 * that takes this run's key and event, live or ended but still owed its
 * queued notes (rule 15; rule 8); none: the run is dropped (conn 0).  ctx:
 * the port.  The cache answers without a lock; a run it finds no filter for is
 * asked again under ctl_lock, with the cache rebuilt if the port's
 * filters changed: a subscription is listed (under ctl_lock) before the
 * broker knows it, so a note a publisher matched against it is never
 * taken for one nobody asked for. */
static int match_run(void *ctx, struct shn_direct_run *n, const uint8_t *key, uint64_t gen)
{
	shn_port *p = ctx;
	shn_client *c = p->client;
	shn_conn best = 0;
	uint32_t sgen = atomic_load_explicit(&p->sinks_gen, memory_order_acquire);
	uint64_t w0 = n->event | (uint64_t)n->key_len << 32;

	(void)gen;
	/* the key of the last run, the filters unchanged since: its answer
	 * (the key is of the checked copy, padded to whole words, as
	 * mr_key is) */
	if (p->mr_valid && p->mr_gen == sgen && p->mr_w0 == w0 &&
	    shn_direct_key_eq(key, p->mr_key, n->key_len)) {
		n->conn = p->mr_conn;
		return (0);
	}
	if (p->fc_valid && p->fc_gen == sgen)
		best = shn__fc_lookup(p, n->event, key, n->key_len);
	if (best == 0) {
		pthread_mutex_lock(&c->ctl_lock);
		if ((!p->fc_valid || p->fc_gen != atomic_load(&p->sinks_gen)) && shn__fc_build(p) < 0) {
			pthread_mutex_unlock(&c->ctl_lock);
			return (-ENOMEM);
		}
		best = shn__fc_lookup(p, n->event, key, n->key_len);
		pthread_mutex_unlock(&c->ctl_lock);
	}
	/* A run no filter takes was forged, or matched a filter ended and
	 * closed since (its HANDLE_CLOSE read): dropped quietly either way;
	 * a forged run harms nobody once dropped. */
	n->conn = best;
	p->mn_late += best == 0;   /* compact() drops it, and any run that follows with its key */
	/* remembered under the generation loaded before the lookup: a change
	 * of the filters since makes the next run look again */
	p->mr_valid = best != 0;
	if (best != 0) {
		p->mr_gen = sgen;
		p->mr_w0 = w0;
		p->mr_conn = best;
		memcpy(p->mr_key, key, SHN_ALIGN8(n->key_len));
	}
	return (0);
}

/* Drop the runs marked late (conn 0) from the private copy; returns the
 * notes left. */
static uint32_t compact(uint8_t *rec)
{
	struct shn_direct_batch *b = (void *)rec;
	uint32_t off = sizeof(*b), out = sizeof(*b), kept = 0;

	while (off < b->h.len) {
		const struct shn_direct_run *run = (const void *)(rec + off);
		uint32_t sz = shn_direct_run_size(run->key_len), n = run->count;
		bool keep = run->conn != 0;

		if (run->flags != 0) {   /* one length (checked: the sum fits the record) */
			sz += n * (uint32_t)SHN_ALIGN8(run->data_len);
		} else {
			for (uint32_t i = 0; i < n; i++) {
				const struct shn_direct_item *it = (const void *)(rec + off + sz);

				sz += shn_direct_item_size(it->data_len);
			}
		}
		if (keep) {
			if (out != off)
				memmove(rec + out, rec + off, sz);
			out += sz;
			kept += n;
		}
		off += sz;
	}
	b->count = kept;
	b->h.len = out;
	return (kept);
}

/* The OVERFLOW a direct record's lost count becomes, current now. */
static void synth_overflow(shn_port *p, uint64_t lost)
{
	uint8_t le[8];

	for (int i = 0; i < 8; i++)
		le[i] = (uint8_t)(lost >> (8 * i));   /* little-endian */
	shn__port_synth(p, SHN_EV_OVERFLOW, le, sizeof(le));
	p->next_seq += lost;   /* seq skips what was lost, as the broker's does */
	p->seq_off += lost;
}

static void make_current_direct(shn_port *p, int i)
{
	const struct shn_direct_batch *b = (const void *)p->dbuf;

	p->cur = p->dbuf;
	p->cur_len = b->h.len;
	p->cur_count = b->count;
	p->cur_index = 0;
	p->cur_off = sizeof(*b);
	p->cur_sync_token = 0;
	p->cur_dring = i;
	p->last_dring = i;
	p->run_left = 0;   /* the first note starts a run */
}

/* Consume the direct record at d's head (already copied).  A release
 * store and nothing else: a direct ring's publisher never sleeps for room
 * (it spins while we make progress, then takes the broker path:
 * docs/direct-path.md, "Waiting for room"), so there is no room request to
 * fence and look for, as the broker ring's release does (protocol 6). */
static void consume(struct shn__dring *d, uint32_t len)
{
	shn_ring_consume(&d->ring, len);
	shn_ring_release(&d->ring);
}

/* Does dr[i] hold a record below the tail loaded last (no re-load)? */
static bool has_loaded(const struct shn__dring *d)
{
	return d->live && !d->faulted && d->ring.head != d->ring.tail_cache;
}

/* Take the record at dr[i]'s head: copy, check, and make it (or the
 * OVERFLOW before it) current.  1: current; 0: nothing to deliver from it
 * (every note late, or the ring faulted); the caller looks again. */
static int take_direct(shn_port *p, int i)
{
	struct shn__dring *d = &p->dr[i];
	const uint8_t *rec;
	uint32_t len;
	struct shn_direct_batch *b;
	uint64_t told;
	int r;

	r = shn_ring_next(&d->ring, &rec, &len);
	if (r == 0)
		return (0);
	if (r < 0 || len > d->ring.capacity / 2) {
		fault(p, d);
		return (0);
	}
	if (len > p->dbuf_cap) {
		uint8_t *grown = realloc(p->dbuf, len);

		if (grown == NULL)
			return (-ENOMEM);
		p->dbuf = grown;
		p->dbuf_cap = len;
	}
	memcpy(p->dbuf, rec, len);   /* from here on the publisher cannot change it */
	told = d->seen.lost;
	p->mn_late = 0;
	r = shn_direct_record_check(p->dbuf, len, &d->lim, &d->seen, match_run, p);
	if (r < 0) {
		fault(p, d);
		return (0);
	}
	consume(d, len);
	b = (void *)p->dbuf;
	b->sender_pid = d->sender_pid;   /* the broker's word, never the ring's */
	b->sender_uid = d->sender_uid;
	uint64_t lost = b->lost - told;   /* all told, checked not to go back */
	if (p->mn_late != 0 && compact(p->dbuf) == 0) {   /* only when some note was late */
		if (lost == 0)
			return (0);
		synth_overflow(p, lost);   /* the loss is still reported */
		return (1);
	}
	if (lost != 0) {
		p->held = i;
		synth_overflow(p, lost);
		return (1);
	}
	make_current_direct(p, i);
	return (1);
}

/* The broker ring's record becomes current (the path every port took
 * before direct rings). */
static int take_broker(shn_port *p, const uint8_t *rec, uint32_t len)
{
	const struct shn_del_batch *b = (const void *)rec;

	if (b->h.type == SHN_REC_DELIVERY)
		p->cur_off = sizeof(*b);
	else if (b->h.type == SHN_REC_DELIVERY2 && len >= sizeof(struct shn_del_batch2))
		p->cur_off = sizeof(struct shn_del_batch2);   /* names its publisher */
	else
		return (-EBADMSG);
	p->cur = rec;
	p->cur_len = len;
	p->cur_count = b->count;
	p->cur_index = 0;
	p->cur_dring = -1;
	p->cur_sync_token = (b->h.flags & SHN_DEL_SYNC) ? b->sync_token : 0;
	return (1);
}

/* A HANDLE_CLOSE with a barrier: a direct ring still short of its barrier
 * tail, or -1. */
static int below_barrier(shn_port *p, const uint8_t *rec, uint32_t len)
{
	const struct shn_del_batch *b = (const void *)rec;
	const struct shn_del_note *n = (const void *)(rec + sizeof(*b));
	const uint8_t *data;
	int k;

	if (b->h.type != SHN_REC_DELIVERY || len < sizeof(*b) + sizeof(*n) ||
	    n->event != SHN_EV_HANDLE_CLOSE || n->data_len == 0 ||
	    len - sizeof(*b) - sizeof(*n) < (uint64_t)n->key_len + n->data_len)
		return (-1);
	data = (const uint8_t *)(n + 1) + n->key_len;
	k = shn_direct_barrier_check(data, n->data_len, SHN__DRINGS);
	for (int e = 0; e < k; e++) {
		struct shn_direct_barrier bar;

		memcpy(&bar, data + (size_t)e * sizeof(bar), sizeof(bar));
		for (uint32_t i = 0; i < p->ndr; i++) {
			struct shn__dring *d = &p->dr[i];

			if (!d->live || d->faulted || d->slot != bar.slot || d->ring.head >= bar.tail)
				continue;
			if (d->ring.head == d->ring.tail_cache && shn_ring_load_tail(&d->ring) < 0) {
				fault(p, d);
				continue;
			}
			if (has_loaded(d))
				return ((int)i);
		}
	}
	return (-1);
}

/* The publisher's count of what it dropped on d, all told (untrusted). */
static uint64_t dropped_count(const struct shn__dring *d)
{
	const struct shn_direct_pub_stats *ps =
		(const void *)((const uint8_t *)d->ring_seg.addr + SHN_DIRECT_PSTATS_OFF);

	return (atomic_load_explicit(&ps->dropped, memory_order_acquire));
}

/* A loss d's publisher counted that no record of it told yet, while d is
 * empty: report it now, without waiting for its next record (which would
 * tell it too; the broker path reports a loss without more traffic as
 * well).  The count is loaded before the tail: every record published
 * before the count was stored is then below the tail, so a ring empty at
 * that tail holds no older record that could still tell this loss.
 * 1: the OVERFLOW is current; 0: nothing owed. */
static int empty_ring_loss(shn_port *p, struct shn__dring *d)
{
	uint64_t cnt;

	if (!d->live || d->faulted || d->ring.head != d->ring.tail_cache)
		return (0);
	cnt = dropped_count(d);
	if (cnt == d->seen.lost)
		return (0);
	if (shn_ring_load_tail(&d->ring) < 0 || cnt < d->seen.lost ||
	    cnt - d->seen.lost > SHN_DIRECT_LOST_MAX) {
		fault(p, d);   /* a count that goes back, or more than it could lose */
		return (0);
	}
	if (d->ring.head != d->ring.tail_cache)
		return (0);   /* a record came: it tells the loss itself */
	synth_overflow(p, cnt - d->seen.lost);
	d->seen.lost = cnt;
	return (1);
}

/* A closed ring that is drained: unmap it and tell the broker. */
static void finish_closed(shn_port *p)
{
	for (uint32_t i = 0; i < p->ndr; i++) {
		struct shn__dring *d = &p->dr[i];

		if (!d->live || !d->closing)
			continue;
		if (shn_ring_load_tail(&d->ring) < 0 || d->ring.head == d->ring.tail_cache) {
			struct shn__dring gone = *d;

			dring_unmap(d);
			send_closed(p, &gone);
		}
	}
}

/* Does rec, a brokered batch, name a direct ring of its publisher to this
 * port that the reader does not hold (SHN_REC_DELIVERY2's ring_id)?  Asked
 * once per ring_id: a ring declined, or already drained and unmapped, is
 * not looked for again. */
static bool ring_unknown(shn_port *p, const uint8_t *rec, uint32_t len)
{
	const struct shn_del_batch2 *b2 = (const void *)rec;
	uint32_t id;

	if (b2->b.h.type != SHN_REC_DELIVERY2 || len < sizeof(*b2))
		return (false);
	id = b2->ring_id;
	if (id == 0 || id == p->asked_ring)
		return (false);
	for (uint32_t i = 0; i < p->ndr; i++)
		if (p->dr[i].live && p->dr[i].ring_id == id)
			return (false);
	p->asked_ring = id;
	return (true);
}

/* Has the broker of our current connection offered ring id to p (its
 * DIRECT_OPEN read, the ring adopted or declined)? */
static bool offered(shn_port *p, uint32_t id)
{
	bool yes;

	pthread_mutex_lock(&p->swap_lock);
	yes = p->offered_epoch == atomic_load(&p->client->loss_epoch) && p->offered_max >= id;
	pthread_mutex_unlock(&p->swap_lock);
	return (yes);
}

/* A brokered batch named ring id, not offered to us yet: its DIRECT_OPEN
 * was queued before the batch was routed, but a broker on io_uring sends
 * asynchronously, so it may reach our socket after the batch reached our
 * ring -- and that ring may hold an older batch of the same publisher.
 * Read the socket (the watcher thread may read it first: its offer then
 * waits in the inbox) until the offer came, bounded by SHN__OFFER_WAIT_NS
 * in case the broker never sends it. */
#define SHN__OFFER_WAIT_NS (1000u * 1000u * 1000u)
static void await_offer(shn_port *p, uint32_t id)
{
	uint64_t end = shn__now_ns() + SHN__OFFER_WAIT_NS;

	for (;;) {
		shn__take_unasked(p->client);
		adopt(p);
		if (offered(p, id) || atomic_load(&p->client->broker_gone) || shn__now_ns() >= end)
			return;
		nanosleep(&(struct timespec){ .tv_nsec = 50000 }, NULL);
	}
}

int shn__dread_load(shn_port *p)
{
	const uint8_t *rec;
	uint32_t len;
	int r;

	if (p->held >= 0) {
		int i = p->held;

		p->held = -1;
		make_current_direct(p, i);
		return (1);
	}
	adopt(p);
	for (;;) {
		bool any = false;

		for (uint32_t i = 0; i < p->ndr; i++) {
			struct shn__dring *d = &p->dr[i];

			if (!d->live || d->faulted)
				continue;
			any = true;
			if (shn_ring_load_tail(&d->ring) < 0)
				fault(p, d);
		}
		/* acquire after every direct tail: see the top of this file */
		r = shn_ring_next(&p->ring, &rec, &len);
		if (r < 0)
			return (r);
		if (r == 1 && ring_unknown(p, rec, len)) {
			/* its publisher writes a ring here we were not told of
			 * yet: take its DIRECT_OPEN before this batch (an older
			 * one of it may be in that ring) */
			await_offer(p, p->asked_ring);
			continue;
		}
		if (r == 1 && any) {
			const struct shn_del_batch *b = (const void *)rec;
			int i = below_barrier(p, rec, len);

			if (i < 0 && b->h.type == SHN_REC_DELIVERY2 &&
			    len >= sizeof(struct shn_del_batch2)) {
				uint64_t pub = ((const struct shn_del_batch2 *)rec)->client_id;

				for (uint32_t k = 0; k < p->ndr && i < 0; k++) {
					struct shn__dring *d = &p->dr[k];
					const uint8_t *drec;
					uint32_t dlen;
					int dr;

					if (!d->live || d->faulted || d->publisher != pub)
						continue;
					if (shn_ring_load_tail(&d->ring) < 0) {
						fault(p, d);
						continue;
					}
					/* past a PAD to the record itself: the one after
					 * the wrap may be newer than R */
					dr = shn_ring_next(&d->ring, &drec, &dlen);
					if (dr < 0) {
						fault(p, d);
						continue;
					}
					/* nothing older of it here: a loss it counted
					 * before R (a SYNC batch takes the broker path
					 * even while a loss is untold) comes first */
					if (dr == 0 && empty_ring_loss(p, d))
						return (1);
					if (dr == 0)
						continue;
					/* the batch id there is the publisher's word:
					 * it only orders that publisher's own batches
					 * (a record too short to hold one is taken, and
					 * refused by the check) */
					if (dlen < sizeof(struct shn_direct_batch) ||
					    *(const volatile uint64_t *)&((const struct shn_direct_batch *)(const void *)drec)->batch_id <
						    b->batch_id)
						i = (int)k;
				}
			}
			if (i >= 0) {
				r = take_direct(p, i);
				if (r != 0)
					return (r);
				continue;
			}
		}
		if (r == 1)
			return (take_broker(p, rec, len));
		if (!any)
			return (0);
		/* the broker ring is empty at the tail just loaded: round
		 * robin from p->rr, without a division per record (rr
		 * may be past ndr: a ring went away) */
		uint32_t start = p->rr < p->ndr ? p->rr : 0;

		for (uint32_t n = 0; n < p->ndr; n++) {
			int i = (int)(start + n < p->ndr ? start + n : start + n - p->ndr);

			if (!has_loaded(&p->dr[i]))
				continue;
			p->rr = (uint32_t)i + 1;
			r = take_direct(p, i);
			if (r != 0)
				return (r);
			n = (uint32_t)-1;   /* something was dropped: look again from the start */
			if (p->ndr == 0)
				break;
			start = p->rr < p->ndr ? p->rr : 0;
		}
		for (uint32_t i = 0; i < p->ndr; i++)
			if (empty_ring_loss(p, &p->dr[i]))
				return (1);
		finish_closed(p);
		return (0);
	}
}

void shn__dread_release(shn_port *p)
{
	p->cur_dring = -1;   /* consumed when it was copied */
}

bool shn__dread_preempted_publisher(const shn_port *p)
{
	const struct shn_direct_pub_stats *ps;
	uint32_t v;
	int cpu;

	if (p->last_dring < 0 || (uint32_t)p->last_dring >= p->ndr || !p->dr[p->last_dring].live)
		return (false);
	ps = (const void *)((const uint8_t *)p->dr[p->last_dring].ring_seg.addr +
			    SHN_DIRECT_PSTATS_OFF);
	v = atomic_load_explicit(&ps->on_cpu, memory_order_relaxed);
	if (v == 0)
		return (false);
	cpu = sched_getcpu();
	return (cpu >= 0 && v == (uint32_t)cpu + 1);
}

bool shn__dread_readable(shn_port *p)
{
	if (atomic_load(&p->dmail))
		return (true);
	for (uint32_t i = 0; i < p->ndr; i++) {
		struct shn__dring *d = &p->dr[i];

		if (d->live && !d->faulted &&
		    (d->closing || shn_ring_readable(&d->ring) || dropped_count(d) != d->seen.lost))
			return (true);
	}
	return (false);
}
