/* SPDX-License-Identifier: MIT */
/*
 * pubring.h - a publisher's ring as the router reads it (pubring.c):
 * loading a record into the router's scratch copy and checking it,
 * waking a publisher waiting for room, counting what it published, and
 * cutting off a client whose ring is corrupt.
 */
#ifndef SHND_PUBRING_H
#define SHND_PUBRING_H

#include <stdint.h>
#include <time.h>

#include "broker.h"

/* Copy the record rec (len bytes, already bounded by the ring) into
 * b->router.scratch and check it: framing and notes (validate.c), then
 * the configured limits and [acl] rules (acl.c); b->router.notes gets the
 * offsets of its notes.  Returns the note count, -EACCES (an [acl] rule
 * refuses one of its keys: the batch is dropped whole, counted), -EBADMSG
 * (malformed, or beyond a configured limit: a ring error) or -ENOMEM. */
int shnd_pub_load(struct shnd_broker *b, struct shnd_client *c, const uint8_t *rec,
		  uint32_t len);

/* Wake c if it sleeps waiting for room in its publish ring, with
 * hysteresis: only once the ring is at most half full, and once per
 * sleep.  Call after releasing room (shn_ring_release). */
void shnd_pub_wake_room(struct shnd_client *c);

/* c's publish ring holds what it could not have written (err -EBADMSG,
 * counted in ring_errors), or the broker could not copy a record of it
 * (-ENOMEM, counted in alloc_failures): mark it failed (never drained
 * again) and cut c off. */
void shnd_pub_ring_bad(struct shnd_client *c, int err, const char *what);

/* A batch of count notifications of c was routed: count it. */
static inline void shnd_pub_account(struct shnd_broker *b, struct shnd_client *c, uint32_t count)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);   /* vDSO, a tick's precision is plenty */
	c->last_publish_ns = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
	c->published += count;
	c->batches++;
	b->tot.batches_routed++;
	b->tot.notifications_routed += count;
}

/* Release the publish ring's head up to what was routed (and wake a
 * publisher waiting for room).  For a client with the direct path the
 * ports' tails are published first (docs/direct-path.md). */
void shnd_pub_release(struct shnd_broker *b, struct shnd_client *c);

#endif
