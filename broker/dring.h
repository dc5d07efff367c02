/* SPDX-License-Identifier: MIT */
/*
 * dring.h - the direct path's rings (docs/direct-path.md): one per
 * (publisher, port) pair, offered when the router delivers a batch of a
 * publisher that asked for the direct path to a port whose owner asked for
 * it; stamped in the publisher's port map under a new generation;
 * closed when either side goes away, the port closes, a side reports it
 * broken, or the subscriber reports a bad record (DIRECT_FAULT).
 *
 * The broker keeps its own mapping of each ring and consumer line only
 * for stats; the memory lives on in the clients' mappings after it closes
 * its side, so closing never waits for a reader to drain.
 */
#ifndef SHND_DRING_H
#define SHND_DRING_H

#include <stdbool.h>
#include <stdint.h>

#include "broker.h"

/* Would a batch of publisher c matched at generation gen (its publish
 * record's stamp) have been written to port p directly?  Then the router
 * skips p for it. */
bool shnd_dring_skips(const struct shnd_client *c, const struct shnd_port *p, uint64_t gen);

/* A batch of c was dropped for p: while p's loss report is not written,
 * c's batches for p must take the broker path (SHN_PMAP_F_LOSS). */
void shnd_dring_loss_pending(struct shnd_port *p, const struct shnd_client *c);

/* p's tail is published with no loss report pending: clear the flags. */
void shnd_dring_loss_told(struct shnd_port *p);

/* The ring_id of c's open direct ring to p, or 0 (SHN_REC_DELIVERY2's
 * ring_id). */
uint32_t shnd_dring_ring_id(const struct shnd_client *c, const struct shnd_port *p);

/* The router delivered a user batch of c to p: open a direct ring for the
 * pair when both asked for the direct path, the ACL lets c publish every
 * key (an unrestricted publisher), and [limits] allow. */
void shnd_dring_offer(struct shnd_broker *b, struct shnd_client *c, struct shnd_port *p);

/* The HANDLE_CLOSE barrier of p (docs/direct-path.md): each direct ring's
 * tail as read now, after the new generation was stored.  malloc'd array
 * of *n entries, or NULL (no ring, or out of memory: *n 0). */
struct shn_direct_barrier *shnd_dring_barrier(const struct shnd_port *p, uint32_t *n);

/* What the rings' counter lines say (written by the clients: untrusted,
 * each value clamped to what a ring could hold, sums saturating): for a
 * port, notifications its reader delivered and dropped as late; for a
 * publisher, notifications it wrote and dropped for lack of room. */
struct shnd_dring_counts {
	uint32_t rings;
	uint64_t a, b;
};
void shnd_dring_port_counts(const struct shnd_port *p, struct shnd_dring_counts *out);
void shnd_dring_pub_counts(const struct shnd_client *c, struct shnd_dring_counts *out);

/* p is closing: close its rings (DIRECT_CLOSE to each publisher). */
void shnd_dring_port_gone(struct shnd_broker *b, struct shnd_port *p);

/* Publisher c is gone and its publish ring drained: close its rings
 * (DIRECT_CLOSE to each subscriber) and unmap its port map. */
void shnd_dring_publisher_gone(struct shnd_broker *b, struct shnd_client *c);

/* DIRECT_CLOSE from c: 0 (closed now, or already closed), -ENOENT (a ring
 * id never issued). */
int shnd_dring_close_request(struct shnd_broker *b, struct shnd_client *c,
			     const struct shn_msg_direct_close *req);

/* DIRECT_FAULT from c: false when c does not hold that ring (a protocol
 * error); true: the ring's publisher was cut off (ring_errors). */
bool shnd_dring_fault(struct shnd_broker *b, struct shnd_client *c,
		      const struct shn_msg_direct_fault *req);

#endif
