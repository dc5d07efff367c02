/* SPDX-License-Identifier: MIT */
/*
 * sync.c - synchronous notify (docs/design.md, rule 7).
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
 * batch (no room, DROP, or no memory to match it) counts as served; a
 * SHN_OVERFLOW_BLOCK port without room is waited for like any blocking
 * port.
 */
#define _GNU_SOURCE
#include "sync.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "client.h"
#include "deliver.h"
#include "match.h"
#include "pubring.h"

/* shn_sync_ack.status: a sink answered SHN_CALLBACK_DISCONTINUE */
#define SYNC_ACK_DISCONTINUE 1u

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

void shnd_sync_send_done(struct shnd_client *c, uint64_t batch_id, int status)
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

int shnd_sync_start(struct shnd_broker *b, struct shnd_client *c, uint32_t count,
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

void shnd_sync_forget(struct shnd_broker *b, struct shnd_client *c)
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
	shnd_sync_forget(b, c);
	shnd_pub_account(b, c, count);
	b->tot.sync_batches++;
	if (canceled)
		b->tot.sync_canceled++;
	shnd_pub_release(b, c);
	shnd_sync_send_done(c, batch_id, canceled ? SHN_SYNC_CANCELED_WIRE : 0);
}

/* Copy the SYNC record at the head of c's ring into r->scratch again and
 * validate it (the publisher can rewrite it meanwhile).  Count or -errno. */
static int sync_load(struct shnd_broker *b, struct shnd_client *c)
{
	const struct shn_pub_batch *pb;
	int count;

	/* [head, head + len) was bounded against the ring when first read */
	count = shnd_pub_load(b, c, c->pub.data + (c->pub.head & c->pub.mask), c->sync.len);
	if (count < 0)   /* refused now, accepted before: the publisher rewrote it */
		return (count == -EACCES ? -EBADMSG : count);
	pb = (const void *)b->router.scratch;
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
		shnd_pub_ring_bad(c, count, "publish ring");
		return (SYNC_FAILED);
	}
	shnd_match_collect(b, count, p);
	if (r->ntouched == 0)
		return (SYNC_SERVED);   /* its matching filters are gone */
	size = shnd_deliver_hdr_size(p) + p->bytes;
	if (p->overflow == SHN_OVERFLOW_BLOCK_WIRE && !p->lost &&
	    size <= shn_ring_max_record(p->capacity)) {
		/* the head before the check: a move after it is seen later */
		uint64_t head = atomic_load_explicit(&p->ring.cons->head, memory_order_acquire);
		int ok = shnd_deliver_flush(b, p) ? shnd_deliver_fits(&p->ring, (uint32_t)size) : 0;

		if (ok < 0) {
			shnd_deliver_port_corrupt(p);
			return (SYNC_SERVED);
		}
		if (ok == 0) {
			s->room_head = head;
			shnd_deliver_ask_room(p);
			return (SYNC_WAIT_ROOM);
		}
	}
	token = new_token(b, p);
	if (!shnd_deliver(b, c, p, (const struct shn_pub_batch *)r->scratch, token))
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

bool shnd_sync_run(struct shnd_broker *b)
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

bool shnd_sync_any_ready(struct shnd_broker *b)
{
	struct shnd_list *pos;

	shnd_list_for_each(pos, &b->router.syncs) {
		if (sync_ready(b, shnd_list_entry(pos, struct shnd_client, sync.link)))
			return (true);
	}
	return (false);
}
