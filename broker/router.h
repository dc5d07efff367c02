/* SPDX-License-Identifier: MIT */
/*
 * router.h - the data plane's round (router.c): drain publish rings,
 * route each batch (pubring.c, match.c, deliver.c, sync.c), publish each
 * touched port's tail once per round and wake only sleepers.
 *
 * Nothing here makes a system call per notification: the only calls are
 * eventfd writes to peers whose sleep word says they sleep, once per sleep.
 */
#ifndef SHND_ROUTER_H
#define SHND_ROUTER_H

#include <stdbool.h>

#include "broker.h"

/* Records and bytes drained from one publish ring per round: a flooding
 * publisher cannot starve the others. */
#define SHND_DRAIN_RECORDS 64u
#define SHND_DRAIN_BYTES (256u << 10)

/* An empty router; allocates nothing until the first batch. */
void shnd_router_init(struct shnd_router *r);
void shnd_router_fini(struct shnd_router *r);

/* One round: drain every ready client's publish ring (bounded), route,
 * retry ports holding system events when anything moved or a doorbell
 * rang, publish every port written to and wake its consumer if it sleeps.
 * Returns true when any publish record was consumed. */
bool shnd_router_round(struct shnd_broker *b);

/* Route every complete batch left in c's publish ring (a client that is
 * going away, docs/design.md, rule 9), then publish.  Stops early when a
 * batch is held back by a SHN_OVERFLOW_BLOCK port (c->stall_port set): the
 * caller keeps the ring and rounds go on draining it.  Does nothing when c has no
 * publish ring or its ring was found corrupt. */
void shnd_router_drain_all(struct shnd_broker *b, struct shnd_client *c);

/* The sleep re-check, called after the broker made its sleep word odd and
 * fenced: true when a publish ring has data, a doorbell rang, or a port
 * holding system events has seen its consumer move. */
bool shnd_router_has_work(struct shnd_broker *b);

/* True while c's publish ring is held back: its next batch waits for room
 * in a SHN_OVERFLOW_BLOCK port, or its SYNC batch is being served. */
bool shnd_router_holds(const struct shnd_client *c);

#endif
