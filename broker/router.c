/* SPDX-License-Identifier: MIT */
/*
 * router.c - the data plane's round: drain every publish ring (bounded per
 * ring), route each record (pubring.c loads and checks it, match.c matches
 * it, deliver.c writes it to each port, sync.c serves a SYNC batch),
 * hold a publisher back while a SHN_OVERFLOW_BLOCK port it feeds has no
 * room, then publish every written port once; and the sleep re-check.
 *
 * Every byte a client can write is hostile: a publish record is copied
 * into private scratch memory before a single field of it is believed
 * (pubring.c), and a consumer head is range-checked before it frees room
 * (deliver.c).
 */
#define _GNU_SOURCE
#include "router.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "deliver.h"
#include "dring.h"
#include "match.h"
#include "pubring.h"
#include "sync.h"

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
	free(r->took);
	free(r->pmemo);
	memset(r, 0, sizeof(*r));
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
		uint64_t size = shnd_deliver_hdr_size(p) + p->bytes;
		int ok;

		if (p->overflow != SHN_OVERFLOW_BLOCK_WIRE || p->lost ||
		    size > shn_ring_max_record(p->capacity))
			continue;   /* dropped and reported there instead */
		ok = shnd_deliver_flush(b, p) ? shnd_deliver_fits(&p->ring, (uint32_t)size) : 0;
		if (ok < 0)
			shnd_deliver_port_corrupt(p);
		if (ok != 0 || p->owner->state == SHND_CLIENT_DOOMED)
			continue;
		c->stall_port = p;
		c->stall_head = p->ring.head_cache;
		shnd_deliver_ask_room(p);
		return (true);
	}
	return (false);
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

	count = shnd_pub_load(b, c, rec, len);
	pb = (const void *)r->scratch;
	if (count == -EACCES) {
		/* dropped whole, counted (acl_publish_denied); a SYNC publisher
		 * is told */
		if (pb->flags & SHN_PUB_SYNC)
			shnd_sync_send_done(c, pb->batch_id, -EACCES);
		return (0);
	}
	if (count < 0)
		return (count);
	shnd_match_collect(b, count, NULL);
	if (pb->flags & SHN_PUB_SYNC) {
		if (r->ntouched > 0)
			return (shnd_sync_start(b, c, (uint32_t)count, len));
		/* nobody matches: done at once */
		b->tot.sync_batches++;
		shnd_sync_send_done(c, pb->batch_id, 0);
	} else {
		if (must_wait(b, c))
			return (1);
		/* a ring is offered only for a batch the publisher would write
		 * directly: one reaching more ports than its fan-out stays
		 * here (its library sends it to the broker), and eight rings
		 * offered to a 1 -> 8 publisher cost both sides for nothing */
		bool offer = c->direct_setup && r->ntouched <= c->direct_fanout;

		for (t = 0; t < r->ntouched; t++) {
			struct shnd_port *p = r->touched[t];

			/* written to p directly at the generation it was matched at */
			if (shnd_dring_skips(c, p, pb->gen))
				continue;
			if (shnd_deliver(b, c, p, pb, 0) && offer)
				shnd_dring_offer(b, c, p);
		}
	}
	shnd_pub_account(b, c, (uint32_t)count);
	return (0);
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
	shnd_pub_release(b, c);
	if (ret < 0) {
		shnd_pub_ring_bad(c, ret, "publish ring");
		return (-1);
	}
	return (n);
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
	if (!shnd_list_empty(&b->router.syncs) && shnd_sync_run(b))
		progress = true;
	if (progress || b->router.kick)
		shnd_deliver_retry_pending(b);
	shnd_deliver_publish(b);
	return (progress);
}

void shnd_router_drain_all(struct shnd_broker *b, struct shnd_client *c)
{
	if (!c->has_pub || c->ring_failed || stalled(c))
		return;
	/* bounded: the client is gone, so at most one ring of data remains */
	drain(b, c, UINT64_MAX, (uint64_t)c->pub.capacity + 1);
	shnd_deliver_publish(b);
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
	if (shnd_sync_any_ready(b))
		return (true);
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
