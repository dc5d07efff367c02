/* SPDX-License-Identifier: MIT */
/*
 * match.h - matching the batch in the router's scratch copy against the
 * subscription index (match.c).  The result, read by deliver.c and sync.c:
 *
 *   b->router.touched[0 .. ntouched)   each matching port once
 *   per port p: p->first .. p->last    its chain of struct shnd_match in
 *                                      b->router.match, each a range of
 *                                      notes under one conn (next: the
 *                                      port's next range, SHND_NO_MATCH at
 *                                      the end)
 *               p->count, gaps, bytes  notes taken, gap reports among them,
 *                                      delivered size of their notes
 *               p->first_serial        its oldest matching subscription
 *               p->lost                out of memory recording a match: p
 *                                      loses the batch (count still exact)
 */
#ifndef SHND_MATCH_H
#define SHND_MATCH_H

#include <stdint.h>

#include "broker.h"

#define SHND_NO_MATCH UINT32_MAX

/* Saturating: gap reports carry client-chosen counts. */
static inline uint64_t shnd_add_sat(uint64_t a, uint64_t b)
{
	return (a + b < a ? UINT64_MAX : a + b);
}

/* Match the count notes of the validated batch in b->router.scratch
 * (offsets in b->router.notes).  With only set, just that port's
 * subscriptions count (a SYNC batch served to one port at a time).  Ports
 * whose owner is doomed are left out. */
void shnd_match_collect(struct shnd_broker *b, int count, const struct shnd_port *only);

#endif
