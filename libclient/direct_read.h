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

/* Unmap every direct ring of p, adopted or not (the port closes). */
void shn__dread_free(shn_port *p);

#endif
