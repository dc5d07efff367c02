/* SPDX-License-Identifier: MIT */
/*
 * filter_cache.h - a port's copy of its own filters for the reader of its
 * direct rings (filter_cache.c): the conn a direct note gets, without
 * ctl_lock (docs/design.md, rule 15).  Exact keys and prefixes in one
 * open-addressed table by hash, bloom bits of their hashes (a key or
 * prefix length whose bit is clear costs no probe), the any-key filters
 * in a list, and a memo of the conns found (floods repeat keys).  The
 * reader's own: built under ctl_lock, read by the port's reader only.
 */
#ifndef SHN_FILTER_CACHE_H
#define SHN_FILTER_CACHE_H

#include <stdint.h>

#include "internal.h"

#define SHN__FC_MEMO_SLOTS   2048  /* a power of two: sets of two ways */
#define SHN__FC_MEMO_KEY     32    /* longer keys are looked up every time */
#define SHN__FC_MEMO_MIN_CAP 64    /* smaller tables: no memo */

/* Copy the port's filters (live, and ended ones still owed their queued
 * notes: rule 8) into the cache.  Caller holds ctl_lock.  0 or -ENOMEM. */
int shn__fc_build(shn_port *p);

/* The oldest filter of the cache that takes this note: its conn, or 0
 * (none, as far as this cache knows). */
shn_conn shn__fc_lookup(shn_port *p, uint32_t event, const uint8_t *key, uint32_t key_len);

/* Drop the cache (and its memo). */
void shn__fc_free(shn_port *p);

#endif
