/* SPDX-License-Identifier: MIT */
/*
 * direct_pub.c - the publisher's end of the direct path (docs/direct-path.md,
 * "Routing reaches the publisher"): the rings this client writes, the match
 * of a batch against the broker's filter table and this client's port map,
 * one record per direct port written unpublished, then published (or rolled
 * back when the generation moved), and each sleeping port woken once.
 *
 * What the broker wrote (the table, the port map) is read with every index
 * bounded (shm/direct.h); a torn read can only make the match wrong at a
 * generation the caller's re-check then finds stale.  What the port's reader
 * wrote (the head of our ring) is validated by shn_ring_reserve: a bad head
 * makes this ring "broken", reported to the broker, and the batch takes the
 * broker path.
 *
 * Whenever a batch cannot be sent exactly as the table says (a ring not
 * mapped, closed, broken, too small for the record, a table the broker
 * disabled, more ports than a plan holds), the whole batch goes through the
 * broker stamped with generation 0: the broker then skips no port and
 * routes it from its own index, as without the direct path.
 *
 * Calls nothing else of libclient: publish.c drives it, direct.c feeds it.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "direct_pub.h"
#include "ftab_memo.h"
#include "util/copy.h"

#define XXH_INLINE_ALL
#include <xxhash.h>

static const struct shn_pmap_slot *pmap_slots(const shn_client *c)
{
	return (const struct shn_pmap_slot *)((const uint8_t *)c->pmap +
					      sizeof(struct shn_pmap_hdr));
}

static void pring_unmap(struct shn__pring *r)
{
	shn_segment_close(&r->ring_seg);
	shn_segment_close(&r->cons_seg);
	shn_segment_close(&r->pcons_seg);
	if (r->port_efd >= 0)
		close(r->port_efd);
	r->port_efd = -1;
	r->mapped = false;
}

/* Keep r in c's list.  Caller holds pub_lock. */
static int remember(shn_client *c, struct shn__pring *r)
{
	if (c->nprings == c->prings_cap) {
		uint32_t cap = c->prings_cap ? c->prings_cap * 2 : 8;
		struct shn__pring **grown = realloc(c->prings, cap * sizeof(*grown));

		if (grown == NULL)
			return (-ENOMEM);
		c->prings = grown;
		c->prings_cap = cap;
	}
	c->prings[c->nprings++] = r;
	if (r->slot + 1 > c->pmap_known)
		c->pmap_known = r->slot + 1;
	return (0);
}

static int map_ring(struct shn__pring *r, const struct shn_msg_direct_open *m, int *fds)
{
	struct shn_ring_prod *prod;
	struct shn_ring_cons *cons;
	int err;

	err = shn_segment_map(&r->ring_seg, fds[SHN_DOPEN_FD_RING],
			      SHN_RING_HDR_SIZE + (size_t)m->capacity, 1);
	fds[SHN_DOPEN_FD_RING] = -1;
	if (err == 0)
		err = shn_segment_map(&r->cons_seg, fds[SHN_DOPEN_FD_CONS], SHN_DIRECT_CONS_SEG_SIZE, 0);
	fds[SHN_DOPEN_FD_CONS] = -1;
	if (err == 0)
		err = shn_segment_map(&r->pcons_seg, fds[SHN_DOPEN_FD_PORT_CONS],
				      sizeof(struct shn_ring_cons), 0);
	fds[SHN_DOPEN_FD_PORT_CONS] = -1;
	r->port_efd = fds[SHN_DOPEN_FD_PORT_EVENT];
	fds[SHN_DOPEN_FD_PORT_EVENT] = -1;
	if (err < 0)
		return (err);
	prod = (void *)((uint8_t *)r->ring_seg.addr + SHN_DIRECT_PROD_OFF);
	if (prod->magic != SHN_RING_MAGIC || prod->capacity != m->capacity)
		return (-EPROTO);
	cons = (void *)((uint8_t *)r->cons_seg.addr + SHN_DIRECT_CONS_OFF);
	shn_ring_init_view(&r->ring, prod, cons, (uint8_t *)r->ring_seg.addr + SHN_RING_HDR_SIZE,
			   m->capacity);
	/* a new ring: nothing written, nothing read; anything else is not the
	 * broker's fresh segment */
	if (r->ring.tail != 0 || r->ring.head_cache != 0)
		return (-EPROTO);
	r->stats = (void *)((uint8_t *)r->ring_seg.addr + SHN_DIRECT_PSTATS_OFF);
	r->port_sleep = &((struct shn_ring_cons *)r->pcons_seg.addr)->sleep_seq;
	r->mapped = true;
	return (0);
}

int shn__dpub_open(shn_client *c, const struct shn_msg_direct_open *m, int *fds, int nfds)
{
	struct shn__pring *r;
	int err;

	if (m->slot >= SHN_PMAP_SLOTS)
		return (-EINVAL);
	r = calloc(1, sizeof(*r));
	if (r == NULL) {
		pthread_mutex_lock(&c->pub_lock);
		c->dp_untracked = true;   /* see shn__dpub_plan */
		pthread_mutex_unlock(&c->pub_lock);
		return (-ENOMEM);
	}
	r->ring_seg.fd = r->cons_seg.fd = r->pcons_seg.fd = -1;
	r->port_efd = -1;
	r->slot = m->slot;
	r->port_id = m->port_id;
	r->ring_id = m->ring_id;
	r->block = m->overflow == SHN_OVERFLOW_BLOCK_WIRE;
	err = -EPROTO;
	if (nfds == SHN_DOPEN_PUB_NFDS && shn_ring_capacity_ok(m->capacity))
		err = map_ring(r, m, fds);
	if (err < 0)
		pring_unmap(r);   /* declined: remembered unmapped */
	pthread_mutex_lock(&c->pub_lock);
	if (remember(c, r) < 0) {
		c->dp_untracked = true;
		free(r);
		err = -ENOMEM;
	}
	pthread_mutex_unlock(&c->pub_lock);
	return (err);
}

void shn__dpub_close(shn_client *c, uint32_t ring_id)
{
	pthread_mutex_lock(&c->pub_lock);
	for (uint32_t i = 0; i < c->nprings; i++)
		if (c->prings[i]->ring_id == ring_id)
			atomic_store(&c->prings[i]->closed, true);
	pthread_mutex_unlock(&c->pub_lock);
}

void shn__dpub_free(shn_client *c)
{
	for (uint32_t i = 0; i < c->nprings; i++) {
		pring_unmap(c->prings[i]);
		free(c->prings[i]);
	}
	free(c->prings);
	c->prings = NULL;
	c->pw_ring = NULL;
	c->nprings = c->prings_cap = 0;
	c->pmap_known = 0;
	c->mail_looked = 0;
	c->swept_gen = UINT64_MAX;
	c->dp_untracked = false;
	shn__ftab_memo_free(c);   /* a new table comes with the rings */
}

/* Forget the rings the broker closed before generation gen (their slot's
 * close_gen <= gen: no generation from gen on names them). */
static void sweep(shn_client *c, uint64_t gen)
{
	const struct shn_pmap_slot *slots = pmap_slots(c);

	for (uint32_t i = 0; i < c->nprings;) {
		struct shn__pring *r = c->prings[i];
		uint64_t open = atomic_load_explicit(&slots[r->slot].open_gen, memory_order_acquire);
		uint64_t close = atomic_load_explicit(&slots[r->slot].close_gen,
						      memory_order_relaxed);

		/* slots are never reused: closed before gen means closed for
		 * good, whether or not its DIRECT_CLOSE reached us yet */
		if (open != 0 && close != 0 && close <= gen) {
			if (c->pw_ring == r)
				c->pw_ring = NULL;
			pring_unmap(r);
			free(r);
			c->prings[i] = c->prings[--c->nprings];
			continue;
		}
		i++;
	}
}

/* The ring that feeds port_id at generation gen, by the port map: the
 * ring (NULL: none, the port takes the broker path), or *odd set when the
 * map names a ring this client cannot write (declined, closed, broken) or
 * must not write now (the broker owes the port a loss of ours). */
static struct shn__pring *ring_for(shn_client *c, uint32_t port_id, uint64_t gen, bool *odd)
{
	const struct shn_pmap_slot *slots = pmap_slots(c);

	for (uint32_t i = 0; i < c->nprings; i++) {
		struct shn__pring *r = c->prings[i];
		const struct shn_pmap_slot *s = &slots[r->slot];
		uint64_t open, close;

		if (r->port_id != port_id)
			continue;
		open = atomic_load_explicit(&s->open_gen, memory_order_relaxed);
		close = atomic_load_explicit(&s->close_gen, memory_order_relaxed);
		if (open == 0 || open > gen || gen >= close ||
		    *(const volatile uint32_t *)&s->ring_id != r->ring_id)
			continue;
		if (!r->mapped || r->broken || atomic_load_explicit(&r->closed, memory_order_relaxed) ||
		    (atomic_load_explicit(&s->flags, memory_order_acquire) & SHN_PMAP_F_LOSS)) {
			*odd = true;
			return (NULL);
		}
		return (r);
	}
	return (NULL);
}

static int plan_at(shn_client *c, const shn_notification *batch, size_t n,
		   const struct shn__drun *known, uint32_t nknown, struct shn__dplan *pl,
		   uint64_t gen)
{
	struct shn_ftab_match m[SHN__DPLAN_PORTS];
	struct shn__drun *runs = c->dp_runs;
	const void *prev_key = NULL;
	uint32_t prev_len = 0, nruns = 0;
	int nm = 0;

	pl->gen = gen;
	pl->brokered = false;
	pl->nports = 0;
	pl->nruns = 0;

	for (size_t i = 0, j; i < n; i = j) {
		const shn_notification *x = &batch[i];
		const void *key = x->key;
		uint32_t kl = x->key_len, ev = x->event;
		uint64_t bits = 0, bytes, hash = 0;
		uint32_t same_len;

		if (nknown != 0) {
			/* the caller's check of the batch found the runs (and
			 * may have hashed the first key) */
			j = i + known[nruns].count;
			bytes = known[nruns].bytes;
			hash = known[nruns].hash;
			same_len = known[nruns].same_len;
		} else {
			/* the run: the notes after x with its key (floods pass
			 * the same pointer; else the same bytes) and its event
			 * go where it goes, in one record run (shm/direct.h) */
			uint64_t items = shn_direct_item_size(x->data_len);

			same_len = x->data_len;
			for (j = i + 1; j < n && batch[j].event == ev && batch[j].key_len == kl &&
					(batch[j].key == key || shn__key_eq(batch[j].key, key, kl));
			     j++) {
				items += shn_direct_item_size(batch[j].data_len);
				if (batch[j].data_len != same_len)
					same_len = 0;
			}
			bytes = shn__drun_bytes((uint32_t)(j - i), same_len, items);
		}
		/* the key of the run before (another event) is matched
		 * already (prev_len 0 before the first: no key is that short) */
		if (kl != prev_len || (key != prev_key && !shn__key_eq(key, prev_key, kl))) {
			if (hash == 0)
				hash = XXH3_64bits(key, kl);
			nm = shn__ftab_memo_lookup(c, gen, hash, key, kl, m, SHN__DPLAN_PORTS);
			if (nm == -EBADMSG)
				return (-EAGAIN);   /* torn: the broker rewrote this half */
			if (nm < 0)
				return (SHN__DP_BROKER);   /* disabled, or too many ports */
			prev_key = key;
			prev_len = kl;
		}
		/* wider than a batch goes directly: the broker's, before a
		 * ring is looked for per port (1 -> 32: 32 walks of our rings) */
		uint32_t takers = 0;

		for (int e = 0; e < nm; e++)
			takers += (ev & m[e].mask) != 0;
		if (takers > c->dp_fanout)
			return (SHN__DP_BROKER);
		for (int e = 0; e < nm; e++) {
			struct shn__pring *r;
			bool odd = false;
			uint32_t k;

			if ((ev & m[e].mask) == 0)
				continue;
			r = ring_for(c, m[e].port_id, gen, &odd);
			if (odd)
				return (SHN__DP_BROKER);
			if (r == NULL) {
				pl->brokered = true;
				continue;
			}
			for (k = 0; k < pl->nports && pl->port[k] != r; k++)
				;
			if (k == pl->nports) {
				if (k == SHN__DPLAN_PORTS || k == c->dp_fanout)
					return (SHN__DP_BROKER);   /* fan-out: the broker's */
				pl->port[pl->nports++] = r;
			}
			bits |= 1ull << k;
		}
		runs[nruns].first = (uint32_t)i;
		runs[nruns].count = (uint32_t)(j - i);
		runs[nruns].bytes = bytes;
		runs[nruns].same_len = same_len;
		runs[nruns].bits = bits;
		nruns++;
	}
	pl->nruns = nruns;
	return (0);
}

int shn__dpub_plan(shn_client *c, const shn_notification *batch, size_t n,
		   const struct shn__drun *known, uint32_t nknown, struct shn__dplan *pl,
		   bool waiting)
{
	const struct shn_pmap_slot *slots;
	uint64_t gen;
	int r;

	pl->nports = 0;
	pl->brokered = true;
	pl->gen = 0;
	if (c->ftab == NULL || c->pmap == NULL || c->dp_untracked)
		return (SHN__DP_BROKER);
	if (n > c->dp_cap) {
		struct shn__drun *grown = realloc(c->dp_runs, n * sizeof(*grown));

		if (grown == NULL)
			return (-ENOMEM);
		c->dp_runs = grown;
		c->dp_cap = n;
	}
	slots = pmap_slots(c);
	for (int tries = 0; tries < 64; tries++) {
		gen = atomic_load_explicit(&c->ftab->gen, memory_order_acquire);
		/* a slot the broker stamped live that we were not told of:
		 * its DIRECT_OPEN is on its way (a broker on io_uring sends it
		 * asynchronously, so it may not be in the socket yet).  Read
		 * the socket for it once; while it has not come, batches take
		 * the broker path (generation 0: always right), and the socket
		 * is read again every SHN__MAIL_EVERY of them -- not three
		 * reads a batch, which cost a fan-out publisher 1,800 system
		 * calls in 0.3 s while the broker was busy routing */
		if (c->pmap_known < SHN_PMAP_SLOTS) {
			uint64_t open = atomic_load_explicit(&slots[c->pmap_known].open_gen,
							     memory_order_relaxed);

			if (open != 0 && open <= gen) {
				if (!waiting && c->mail_looked == open &&
				    ++c->mail_skips % SHN__MAIL_EVERY != 0)
					return (SHN__DP_BROKER);
				c->mail_looked = open;
				c->mail_skips = 0;
				return (SHN__DP_MAIL);
			}
		}
		/* rings close only with a new generation */
		if (gen != c->swept_gen) {
			sweep(c, gen);
			c->swept_gen = gen;
		}
		r = plan_at(c, batch, n, known, nknown, pl, gen);
		if (r != -EAGAIN)
			return (r);
	}
	return (SHN__DP_BROKER);
}

bool shn__dpub_owes_loss(const struct shn__dplan *pl)
{
	for (uint32_t k = 0; k < pl->nports; k++)
		if (pl->port[k]->dropped != pl->port[k]->told)
			return (true);
	return (false);
}

/* The notes [x, end) of a run of one data length dl (>= 1): each its data
 * over a zeroed last word, in a slot of SHN_ALIGN8(dl) bytes, no length
 * word.  A flood's 64-byte notes are each one fixed-size copy, which the
 * compiler inlines as a few vector moves; other lengths go through
 * shu_copy_small.  Returns the end. */
static uint8_t *write_same_len(uint8_t *w, const shn_notification *x,
			       const shn_notification *end, uint32_t dl)
{
	const uint32_t dsz = (uint32_t)SHN_ALIGN8(dl);
	const uint64_t zero = 0;

	if (dl == 64) {
		for (; x < end; x++, w += 64)
			memcpy(w, x->data, 64);
		return (w);
	}
	for (; x < end; x++, w += dsz) {
		memcpy(w + dsz - 8, &zero, 8);
		shu_copy_small(w, x->data, dl);
	}
	return (w);
}

static void write_one(struct shn__pring *r, uint8_t *dst, const shn_notification *batch,
		      const struct shn__drun *runs, uint32_t nruns, uint64_t bit,
		      uint64_t batch_id, uint64_t time_ns, uint64_t gen)
{
	struct shn_direct_batch *b = (void *)dst;
	uint8_t *w = dst + sizeof(*b);
	const uint64_t zero = 0;

	memset(b, 0, sizeof(*b));
	b->h.len = r->size;
	b->h.type = SHN_REC_DIRECT;
	b->count = r->nnotes;
	b->batch_id = batch_id;
	b->time_ns = time_ns;
	b->gen = gen;
	b->lost = r->dropped;   /* all told: the reader reports what is new */
	for (uint32_t j = 0; j < nruns; j++) {
		const struct shn__drun *ru = &runs[j];
		const shn_notification *x = &batch[ru->first], *end = x + ru->count;
		uint32_t kl = x->key_len, ksz = (uint32_t)SHN_ALIGN8(kl);
		uint64_t w0 = x->event | (uint64_t)kl << 32, w1 = ru->count;

		if (!(ru->bits & bit))
			continue;
		if (ru->same_len != 0) {
			w0 |= (uint64_t)SHN_DIRECT_RUN_SAME_LEN << 48;
			w1 |= (uint64_t)ru->same_len << 32;
		}
		/* the run's head (conn zero), then the key over a zeroed last
		 * word: the padding after it is zero, as the reader checks */
		memcpy(w, &w0, 8);
		memcpy(w + 8, &w1, 8);
		memcpy(w + 16, &zero, 8);
		w += sizeof(struct shn_direct_run);
		memcpy(w + ksz - 8, &zero, 8);
		shu_copy_small(w, x->key, kl);
		w += ksz;
		if (ru->same_len != 0) {
			w = write_same_len(w, x, end, ru->same_len);
			continue;
		}
		/* each note: its length as a word, its data over a zeroed
		 * last word */
		for (; x < end; x++) {
			uint64_t dl = x->data_len;

			memcpy(w, &dl, 8);
			w += sizeof(struct shn_direct_item);
			if (dl != 0) {
				uint32_t dsz = (uint32_t)SHN_ALIGN8(dl);

				memcpy(w + dsz - 8, &zero, 8);
				shu_copy_small(w, x->data, (uint32_t)dl);
				w += dsz;
			}
		}
	}
}

int shn__dpub_write(shn_client *c, const shn_notification *batch, struct shn__dplan *pl,
		    uint64_t batch_id, uint64_t time_ns)
{
	const struct shn__drun *runs = c->dp_runs;

	for (uint32_t k = 0; k < pl->nports; k++) {
		struct shn__pring *r = pl->port[k];
		uint64_t bit = 1ull << k, size = sizeof(struct shn_direct_batch);
		uint32_t count = 0;
		uint8_t *dst;
		int err;

		for (uint32_t j = 0; j < pl->nruns; j++)
			if (runs[j].bits & bit) {
				size += shn_direct_run_size(batch[runs[j].first].key_len) + runs[j].bytes;
				count += runs[j].count;
			}
		r->written = false;
		r->nnotes = count;
		r->save_tail = r->ring.tail;
		if (size > shn_ring_max_record(r->ring.capacity)) {
			pl->nports = k;
			shn__dpub_rollback(pl);
			return (SHN__DP_BROKER);   /* the broker's ring for the port is larger */
		}
		r->size = (uint32_t)size;
		dst = shn_ring_reserve(&r->ring, r->size, &err);
		if (dst == NULL) {
			if (err < 0) {
				r->broken = true;   /* reported by the caller, unlocked */
				pl->nports = k;
				shn__dpub_rollback(pl);
				return (SHN__DP_BROKER);
			}
			if (r->block) {
				/* SHN_OVERFLOW_BLOCK: the caller waits a moment
				 * for room (shn__dpub_wait_room), or the broker
				 * path holds the batch back, behind it our publish
				 * ring, and we wait when that is full too: the same
				 * back-pressure and buffering as without the direct
				 * path */
				pl->nports = k;
				shn__dpub_rollback(pl);
				pl->full = r;
				pl->full_size = r->size;
				return (SHN__DP_FULL);
			}
			continue;   /* SHN_OVERFLOW_DROP: lost for this port, told later */
		}
		write_one(r, dst, batch, runs, pl->nruns, bit, batch_id, time_ns, pl->gen);
		shn_ring_commit(&r->ring, r->size);
		r->written = true;
	}
	return (0);
}

bool shn__spin_turn(struct shn__spin *s, uint64_t pos, uint64_t wait_ns)
{
	if ((++s->turns & 15u) == 0) {
		uint64_t now = shn__now_ns();

		if (s->deadline == 0 || pos != s->pos) {
			s->deadline = now + wait_ns;
			s->pos = pos;
		} else if (now >= s->deadline) {
			return (false);
		}
		sched_yield();
	}
	for (int i = 0; i < 32; i++)
		shn_cpu_relax();
	return (true);
}

bool shn__dpub_wait_room(shn_client *c, struct shn__pring *r, uint32_t size)
{
	struct shn_ring *v = &r->ring;
	struct shn__spin spin = { 0 };
	/* hysteresis, as the floor's producer: once waiting, go on when a
	 * quarter of the ring is free, not at the first byte, so that writer
	 * and reader do not trade every cache line of the ring */
	uint64_t want = shn_ring_cost(v, size) > v->capacity / 4 ? shn_ring_cost(v, size)
								   : v->capacity / 4;

	for (;;) {
		if (shn_ring_load_head(v) != 0) {
			r->broken = true;   /* reported by the caller, unlocked */
			return (false);
		}
		if (v->capacity - shn_ring_used(v) >= want) {
			r->stalled_at = 0;
			return (true);
		}
		if (r->stalled_at == v->head_cache + 1)
			return (false);   /* not read since the last wait ran out */
		if (!shn__spin_turn(&spin, v->head_cache, c->dp_wait_ns)) {
			if (v->capacity - shn_ring_used(v) >= shn_ring_cost(v, size))
				return (true);   /* room, if not a quarter */
			r->stalled_at = v->head_cache + 1;
			return (false);
		}
	}
}

void shn__dpub_rollback(struct shn__dplan *pl)
{
	for (uint32_t k = 0; k < pl->nports; k++) {
		struct shn__pring *r = pl->port[k];

		if (r->written)
			shn_ring_rollback(&r->ring, r->save_tail);
		r->written = false;
	}
}

static void add_stat(_Atomic uint64_t *v, uint64_t d)
{
	/* we are the only writer: no read-modify-write needed */
	atomic_store_explicit(v, atomic_load_explicit(v, memory_order_relaxed) + d,
			      memory_order_relaxed);
}

static void prewake_ring(struct shn__pring *r)
{
	uint64_t one = 1;
	uint32_t s;

	s = atomic_load_explicit(r->port_sleep, memory_order_relaxed);
	if ((s & 1u) == 0 || s == r->rung)
		return;
	r->rung = s;
	if (write(r->port_efd, &one, sizeof(one)) < 0) {
		/* EAGAIN: the port has a wake-up pending */
	}
}

void shn__dpub_prewake(shn_client *c, const shn_notification *batch, struct shn__dplan *pl)
{
	struct shn__pring *r = pl->port[0];

	if (pl->nports != 1)
		return;
	prewake_ring(r);
	/* remembered for the next batch alike (shn__dpub_prewake_early) */
	if (c->pw_ring != r || c->pw_gen != pl->gen || c->pw_event != batch[0].event ||
	    c->pw_key_len != batch[0].key_len ||
	    !shn__key_eq(c->pw_key, batch[0].key, batch[0].key_len)) {
		c->pw_ring = r;
		c->pw_gen = pl->gen;
		c->pw_event = batch[0].event;
		c->pw_key_len = batch[0].key_len;
		memcpy(c->pw_key, batch[0].key, batch[0].key_len);
	}
}

void shn__dpub_prewake_early(shn_client *c, const shn_notification *batch)
{
	struct shn__pring *r = c->pw_ring;

	if (r == NULL || c->ftab == NULL || batch[0].event != c->pw_event ||
	    batch[0].key_len != c->pw_key_len || batch[0].key == NULL ||
	    atomic_load_explicit(&c->ftab->gen, memory_order_relaxed) != c->pw_gen ||
	    !shn__key_eq(c->pw_key, batch[0].key, c->pw_key_len))
		return;
	if (!r->mapped || r->broken || atomic_load_explicit(&r->closed, memory_order_relaxed))
		return;
	prewake_ring(r);
}

/* Say in each ring of the plan that we wake its readers from this CPU;
 * returns 1 + the CPU (never 0). */
static uint32_t mark_on_cpu(struct shn__dplan *pl)
{
	int c = sched_getcpu();
	uint32_t cpu = c < 0 ? UINT32_MAX : (uint32_t)c + 1;

	for (uint32_t k = 0; k < pl->nports; k++)
		atomic_store_explicit(&pl->port[k]->stats->on_cpu, cpu, memory_order_relaxed);
	return (cpu);
}

bool shn__dpub_publish(struct shn__dplan *pl)
{
	uint64_t one = 1;
	bool lost = false;

	for (uint32_t k = 0; k < pl->nports; k++) {
		struct shn__pring *r = pl->port[k];

		if (!r->written) {
			/* the reader reports it from this counter once it read
			 * every record before it, or from our next record */
			r->dropped += r->nnotes;
			atomic_store_explicit(&r->stats->dropped, r->dropped, memory_order_release);
			lost = true;
			continue;
		}
		shn_ring_publish(&r->ring);
		r->told = r->dropped;
		add_stat(&r->stats->routed, r->nnotes);
	}
	/* every tail first, then the wake-ups: the need-wakeup fence per port.
	 * While we wake, each ring says on which CPU (on_cpu): a reader woken
	 * there preempts us, and yields back once before it sleeps again
	 * rather than hold the CPU while its siblings wait for their wake-up
	 * (docs/direct-path.md, "Wake-ups"). */
	uint32_t cpu = 0;

	for (uint32_t k = 0; k < pl->nports; k++) {
		struct shn__pring *r = pl->port[k];

		if (shn_wake_needed(r->port_sleep, &r->rung)) {
			if (cpu == 0 && pl->nports > 1)
				cpu = mark_on_cpu(pl);
			if (write(r->port_efd, &one, sizeof(one)) < 0) {
				/* EAGAIN: the port has a wake-up pending */
			}
		}
		r->written = false;
	}
	if (cpu != 0)
		for (uint32_t k = 0; k < pl->nports; k++)
			atomic_store_explicit(&pl->port[k]->stats->on_cpu, 0, memory_order_relaxed);
	return (lost);
}

uint32_t shn__dpub_take_broken(shn_client *c, uint32_t *slot, uint32_t *port_id)
{
	for (uint32_t i = 0; i < c->nprings; i++) {
		struct shn__pring *r = c->prings[i];

		if (r->broken && !r->reported) {
			r->reported = true;
			*slot = r->slot;
			*port_id = r->port_id;
			return (r->ring_id);
		}
	}
	return (0);
}
