/* SPDX-License-Identifier: MIT */
/*
 * ftab_memo.h - the publisher's memo of filter-table lookups
 * (ftab_memo.c): a key's matching ports, as the broker's filter table said
 * at one generation.
 *
 * A half of the table does not change while its generation is current, so
 * (generation, key) -> matches is a function, and an entry tagged with its
 * generation is right whenever the table is still at that generation.  A
 * lookup torn by the broker rewriting the half is memoized under a
 * generation that has already passed (the broker rewrites a half only
 * once the next generation is out): no later lookup hits it, and the
 * publish that made it re-checks the generation after its fence and rolls
 * back, as without the memo (docs/design.md, rule 8).
 *
 * Why: a key's lookup probes the table once per prefix length in use and
 * once for the key itself, each probe a likely cache miss; floods publish
 * the same keys again and again.  Two ways a set, keys up to
 * SHN__FTAB_MEMO_KEY bytes, at most SHN__FTAB_MEMO_PORTS ports an entry,
 * used when the table holds prefixes; and, whatever the table holds, the
 * last answer (up to SHN__FTAB_LAST_PORTS ports: a flood's key, a wide
 * fan-out's, is then one compare).  Anything else is looked up every time.
 * Under pub_lock.
 */
#ifndef SHN_FTAB_MEMO_H
#define SHN_FTAB_MEMO_H

#include <stdbool.h>
#include <stdint.h>

#include "internal.h"

#define SHN__FTAB_MEMO_SLOTS 2048   /* a power of two: sets of two ways */
#define SHN__FTAB_MEMO_KEY   32
#define SHN__FTAB_MEMO_PORTS 4
#define SHN__FTAB_LAST_PORTS 64    /* = SHN__DPLAN_PORTS, the most a plan asks for */

/* The ports whose filters at generation gen take key[0..len) (hash:
 * XXH3_64bits of it), as shn_ftab_lookup_hinted answers: the count, or
 * -EAGAIN, -ENOSPC, -EBADMSG as it does. */
int shn__ftab_memo_lookup(shn_client *c, uint64_t gen, uint64_t hash, const void *key,
			  uint32_t len, struct shn_ftab_match *out, uint32_t max);

/* True when the memo holds, at the table's current generation, a port
 * that takes key (hash: XXH3_64bits of it): somebody listens, no need to
 * test its prefixes in the interest summary.  False means "not known". */
bool shn__ftab_memo_listens(shn_client *c, uint64_t hash, const void *key, uint32_t len);

/* Forget everything (a new broker, a new table). */
void shn__ftab_memo_free(shn_client *c);

#endif
