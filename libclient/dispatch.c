/* SPDX-License-Identifier: MIT */
/*
 * dispatch.c - advise sinks (MAPI's Subscribe with an advise sink):
 * shn_advise() registers a callback filter, shn_port_dispatch() runs the
 * callbacks in the calling thread, once per delivered batch per sink, with
 * the notifications of that batch that match the sink's own filter
 * (docs/design.md, rule 15).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "port.h"

/* Most batches a dispatch call handles without waiting again, so one busy
 * port cannot keep its thread forever. */
#define SHN__DISPATCH_MAX_BATCHES 64

int shn_advise(shn_port *p, const void *key, size_t key_len, uint32_t event_mask,
	       unsigned flags, shn_sink_fn fn, void *ctx, shn_conn *conn)
{
	if (fn == NULL)
		return (-EINVAL);
	return (shn__subscribe(p, key, key_len, event_mask, flags, fn, ctx, conn));
}

/* Copy this port's sinks (filters included) when they changed, so that
 * callbacks can subscribe and unsubscribe freely while we iterate. */
static int refresh_snapshot(shn_port *p)
{
	shn_client *c = p->client;
	uint32_t gen = atomic_load(&p->sinks_gen);
	size_t n = 0;

	if (p->snap != NULL && gen == p->snap_gen)
		return (0);
	pthread_mutex_lock(&c->ctl_lock);
	gen = atomic_load(&p->sinks_gen);
	for (struct shn__sub *s = c->subs; s; s = s->next)
		if (s->port == p && s->fn != NULL)
			n++;
	if (n > p->snap_cap || p->snap == NULL) {
		struct shn__sub *grown = realloc(p->snap, (n ? n : 1) * sizeof(*grown));
		if (grown == NULL) {
			pthread_mutex_unlock(&c->ctl_lock);
			return (-ENOMEM);
		}
		p->snap = grown;
		p->snap_cap = n ? n : 1;
	}
	n = 0;
	for (struct shn__sub *s = c->subs; s; s = s->next)
		if (s->port == p && s->fn != NULL)
			p->snap[n++] = *s;
	pthread_mutex_unlock(&c->ctl_lock);
	/* oldest first: callbacks run in subscription order */
	for (size_t i = 1; i < n; i++)
		for (size_t j = i; j > 0 && p->snap[j - 1].conn > p->snap[j].conn; j--) {
			struct shn__sub t = p->snap[j];
			p->snap[j] = p->snap[j - 1];
			p->snap[j - 1] = t;
		}
	p->nsnap = n;
	p->snap_gen = gen;
	return (0);
}

static bool sink_matches(const struct shn__sub *s, const shn_notification *x)
{
	/* a gap report (shn_notify_gap) carries a key: it goes to the sinks
	 * whose filter takes the key, whatever their masks */
	if (s->closing || ((x->event & s->mask) == 0 && x->event != SHN_EV_OVERFLOW))
		return (false);
	if (s->any_key)
		return (true);
	if (s->prefix)   /* the key starts with the prefix (or is it) */
		return (x->key_len >= s->key_len && memcmp(x->key, s->key, s->key_len) == 0);
	return (x->key_len == s->key_len && memcmp(x->key, s->key, s->key_len) == 0);
}

/* The sink saw its HANDLE_CLOSE: forget it for good. */
static void drop_closed_sink(shn_port *p, shn_conn conn)
{
	shn_client *c = p->client;
	struct shn__sub *gone = NULL;

	pthread_mutex_lock(&c->ctl_lock);
	for (struct shn__sub **sp = &c->subs; *sp; sp = &(*sp)->next)
		if ((*sp)->conn == conn && (*sp)->closing) {
			gone = *sp;
			*sp = gone->next;
			break;
		}
	atomic_fetch_add(&p->sinks_gen, 1);
	pthread_mutex_unlock(&c->ctl_lock);
	free(gone);
}

static int ensure_scratch(shn_port *p, size_t n)
{
	if (n <= p->all_cap)
		return (0);
	shn_notification *a = realloc(p->all, n * sizeof(*a));
	if (a == NULL)
		return (-ENOMEM);
	p->all = a;
	shn_notification *b = realloc(p->subset, n * sizeof(*b));
	if (b == NULL)
		return (-ENOMEM);
	p->subset = b;
	p->all_cap = n;
	return (0);
}

/* Run the sinks for what is left of the current record: all of it, or,
 * after a shn_port_get() that took part of it, the notes that get did not
 * hand out (each note reaches the reader once, whichever call reads it).
 * Returns the number of notes handed to the sinks' filters. */
static int dispatch_record(shn_port *p)
{
	size_t n = p->cur_count - p->cur_index, k;
	int err, got;

	err = ensure_scratch(p, n);
	if (err == 0)
		err = refresh_snapshot(p);
	if (err < 0)
		return (err);
	got = shn__port_fill(p, p->all, n);
	if (got < 0)
		return (got);
	n = (size_t)got;   /* p->all[0..n) is what this call read, nothing older */
	if (n == 1 && (p->all[0].event & SHN_EV_SYSTEM) && p->all[0].key_len == 0) {
		shn_notification *x = &p->all[0];
		bool close_ev = (x->event & SHN_EV_HANDLE_CLOSE) != 0;

		for (size_t i = 0; i < p->nsnap; i++) {
			struct shn__sub *s = &p->snap[i];
			if (close_ev && s->conn != x->conn)
				continue;
			if (!close_ev && s->closing)
				continue;
			p->subset[0] = *x;
			if (!close_ev)
				p->subset[0].conn = s->conn;
			s->fn(s->ctx, p->subset, 1);
		}
		if (close_ev)
			drop_closed_sink(p, x->conn);
		return (1);
	}
	uint32_t status = 0;

	for (size_t i = 0; i < p->nsnap && status == 0; i++) {
		struct shn__sub *s = &p->snap[i];

		k = 0;
		for (size_t j = 0; j < n; j++)
			if (sink_matches(s, &p->all[j]))
				p->subset[k++] = p->all[j];
		if (k == 0)
			continue;
		for (size_t j = 0; j < k; j++) {
			p->subset[j].conn = s->conn;
			p->subset[j].batch_index = (uint32_t)j;
			p->subset[j].batch_count = (uint32_t)k;
		}
		/* DISCONTINUE matters for a synchronous batch only: the rest
		 * of the sinks are skipped and the publisher learns it. */
		if (s->fn(s->ctx, p->subset, k) == SHN_CALLBACK_DISCONTINUE && p->cur_sync_token)
			status = 1;
	}
	shn__sync_ack(p, status);
	return ((int)n);
}

int shn_port_dispatch(shn_port *p, int timeout_ms)
{
	int total = 0, r;

	if (p == NULL || timeout_ms < -1)
		return (-EINVAL);
	r = shn__port_wait_record(p, timeout_ms);
	if (r < 0)
		return (r);
	for (int batches = 0;;) {
		r = dispatch_record(p);
		if (r < 0)
			return (total ? total : r);
		total += r;
		if (++batches == SHN__DISPATCH_MAX_BATCHES)
			break;
		r = shn__port_wait_record(p, 0);
		if (r == -ETIMEDOUT)
			break;
		if (r == -ECANCELED)
			atomic_store(&p->unblock, true);   /* for the next call: never lost */
		if (r < 0)
			return (total);
	}
	return (total);
}
