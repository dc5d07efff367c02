/* SPDX-License-Identifier: MIT */
/*
 * pubring.c - a publisher's ring as the router reads it: a record copied
 * into private scratch memory and checked (validate.c: framing and notes;
 * acl.c: limits and rules) before a single field of it is believed; room
 * released and a publisher waiting for it woken; a client whose ring holds
 * what it could not have written cut off.
 */
#define _GNU_SOURCE
#include "pubring.h"

#include <errno.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

#include "acl.h"
#include "array.h"
#include "client.h"
#include "deliver.h"
#include "log.h"
#include "validate.h"

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

/* The configured limits and ACL on the validated batch in r->scratch
 * (acl.c): its count, -EACCES (refused whole), or -EBADMSG (a key or
 * payload above the configured maximum: a ring error). */
static int policy(struct shnd_broker *b, struct shnd_client *c, int count)
{
	int err = shnd_policy_check_batch(b, c, b->router.scratch, b->router.notes, count);

	return (err == -EMSGSIZE ? -EBADMSG : err < 0 ? err : count);
}

int shnd_pub_load(struct shnd_broker *b, struct shnd_client *c, const uint8_t *rec, uint32_t len)
{
	struct shnd_router *r = &b->router;
	int count;

	if (shnd_array_reserve((void **)&r->scratch, &r->scratch_cap, len, 1) < 0)
		return (-ENOMEM);
	memcpy(r->scratch, rec, len);
	count = validate(r, len);
	if (count >= 0)
		count = policy(b, c, count);
	return (count);
}

/* Wake a publisher sleeping on a full ring, with hysteresis: only once the
 * ring is at most half full, and once per sleep. */
void shnd_pub_wake_room(struct shnd_client *c)
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

void shnd_pub_ring_bad(struct shnd_client *c, int err, const char *what)
{
	c->ring_failed = true;
	shnd_client_fail(c, err == -ENOMEM ? &c->b->tot.alloc_failures : &c->b->tot.ring_errors,
			 "%s: %s", what, err == -ENOMEM ? "out of memory" : "malformed record");
}

/* Give c back the room of the records routed so far.  A direct publisher
 * writes directly once its publish ring is empty: the ports must already
 * hold what it routed, so their tails go out before its head
 * (docs/direct-path.md, the broker's rule of the merge).  A loss report a
 * port still owes for a batch of c is guarded by SHN_PMAP_F_LOSS, set
 * while routing, before this. */
void shnd_pub_release(struct shnd_broker *b, struct shnd_client *c)
{
	struct shn_ring *r = &c->pub;

	if (r->head == c->pub_released)
		return;
	if (c->direct_setup)
		shnd_deliver_publish(b);
	c->pub_released = r->head;
	shn_ring_release(r);
	shnd_pub_wake_room(c);
}
