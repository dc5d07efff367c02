/* SPDX-License-Identifier: MIT */
/*
 * deliver.h - writing to ports (deliver.c): delivered batches, drops and
 * their OVERFLOW reports, a port's pending system events, room requests,
 * publishing tails and waking consumers.
 *
 * Who writes what of a port's delivery ring: the broker writes the ring,
 * its producer line (tail, room_head) and every record; the consumer
 * writes only its consumer line (head, sleep_seq, the SYNC ack line),
 * which the broker reads as hostile.
 */
#ifndef SHND_DELIVER_H
#define SHND_DELIVER_H

#include <stdbool.h>
#include <stdint.h>

#include "broker.h"

/* The header of a user batch delivered to p: a port of a client that asked
 * for the direct path gets the one that names the publisher. */
static inline uint32_t shnd_deliver_hdr_size(const struct shnd_port *p)
{
	return (p->direct ? (uint32_t)sizeof(struct shn_del_batch2)
			  : (uint32_t)sizeof(struct shn_del_batch));
}

/* Write, for port p, the notes of the batch in b->router.scratch that
 * matched it (match.h) as one delivered batch, or drop them all and report
 * the count by SHN_EV_OVERFLOW (docs/design.md, rule 4): no room (p is
 * parked until its consumer moves), never fits, or out of memory matching
 * it (p->lost).  A non-zero token marks the record SHN_DEL_SYNC with it.
 * src: the publisher.  True when written (false: dropped, or p's owner is
 * gone or was cut off). */
bool shnd_deliver(struct shnd_broker *b, struct shnd_client *src, struct shnd_port *p,
		  const struct shn_pub_batch *pb, uint32_t token);

/* Write p's pending system events in order.  True when none is left;
 * false parks p (retried once its consumer moved). */
bool shnd_deliver_flush(struct shnd_broker *b, struct shnd_port *p);

/* Would a record of len bytes fit ring r now?  1 yes, 0 no, -EBADMSG when
 * the consumer's head is out of range. */
int shnd_deliver_fits(struct shn_ring *r, uint32_t len);

/* p's consumer head is out of range: cut its owner off (ring_errors). */
void shnd_deliver_port_corrupt(struct shnd_port *p);

/* Queue a system event (SHN_EV_HANDLE_CLOSE_WIRE with conn in val) for p,
 * behind its other pending events, and write what fits now.  0 or
 * -ENOMEM. */
int shnd_deliver_queue_event(struct shnd_broker *b, struct shnd_port *p, uint32_t event,
			     uint64_t val);

/* The same for SHN_EV_HANDLE_CLOSE of conn, with the direct rings' barrier
 * (n entries, malloc'd, owned from here on; NULL: none) as its data. */
int shnd_deliver_queue_close(struct shnd_broker *b, struct shnd_port *p, uint64_t conn,
			     struct shn_direct_barrier *barrier, uint32_t n);

/* Publish the tails of ports written to since the last call; wake their
 * sleeping consumers (one eventfd write per sleep). */
void shnd_deliver_publish(struct shnd_broker *b);

/* Retry every parked port's pending system events (after progress or a
 * doorbell). */
void shnd_deliver_retry_pending(struct shnd_broker *b);

/* Ask p's consumer for room: it rings its doorbell once it released a
 * head past head_cache (the head the caller just loaded and found short).
 * A position rather than a count of requests, so that a consumer that
 * reads the request right after releasing that very head does not spend
 * its one doorbell on a move the broker has already seen (the wake-up
 * that used to be lost under SHN_OVERFLOW_BLOCK, docs/ring.md).  The
 * broker's sleep re-check (full fence, then the consumer's head against
 * want_head / stall_head) closes the other side. */
static inline void shnd_deliver_ask_room(struct shnd_port *p)
{
	if (p->asked && p->ring.head_cache == p->want_head)
		return;   /* the same request is still out */
	p->asked = true;
	p->want_head = p->ring.head_cache;
	shn_ring_ask_room(&p->ring, p->want_head);
}

#endif
