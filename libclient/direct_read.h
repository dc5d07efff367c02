/* SPDX-License-Identifier: MIT */
/*
 * direct_read.h - direct_read.c: a port's reader of its direct rings
 * (docs/direct-path.md, "A port reads several rings, as one stream").
 */
#ifndef SHN_LIBCLIENT_DIRECT_READ_H
#define SHN_LIBCLIENT_DIRECT_READ_H

#include "internal.h"

/* Make the next record of p current, merging its broker ring with its
 * direct rings in each publisher's order.  1: one is current (p->cur ...),
 * 0: every ring is empty, -EBADMSG: the broker ring holds something the
 * broker never writes.  A bad direct record is not an error: that ring is
 * dropped and reported (DIRECT_FAULT). */
int shn__dread_load(shn_port *p);

/* Give the current direct record back to its publisher (head, room). */
void shn__dread_release(shn_port *p);

/* After the port's sleep word was armed: does a direct ring hold a record
 * (or news wait in the inbox)?  Then the reader must not sleep. */
bool shn__dread_readable(shn_port *p);

/* Before the reader sleeps: is the publisher of its last direct record
 * waking readers from this very CPU right now (the ring's on_cpu)?  Then
 * we preempted it mid-wake, and should yield to it once. */
bool shn__dread_preempted_publisher(const shn_port *p);

/* Unmap every direct ring of p, adopted or not (the port closes). */
void shn__dread_free(shn_port *p);

/* The broker was lost (the client's loss_epoch is now epoch) and p
 * delivers SHN_EV_BROKER_STATE now, every ring of it read to its end:
 * forget the direct rings offered before that loss, adopted or not (the
 * lost broker's; rings the new one offered since are kept).  A record a
 * publisher writes into one of them before its own library sees the loss
 * was accepted but never routed: rule 10 lets it be lost, and it must not
 * follow the BROKER_STATE that said the stream broke. */
void shn__dread_broker_lost(shn_port *p, uint32_t epoch);

#endif
