/* SPDX-License-Identifier: MIT */
/*
 * fault.h - fault injection for tests: make an allocation of the data
 * plane fail on demand, so that tests can check how the broker reports it.
 *
 * SHMNOTIFYD_TEST_FAIL_ALLOC=SITE:N, read once at startup: the N-th
 * allocation attempt (counting from 1) at SITE fails, once.  Sites:
 *
 *   match   growing the router's list of (note, port) matches of the batch
 *           being routed (match.c)
 *
 * For tests only; nothing else sets it.  Production cost: one load and a
 * branch that is never taken, on the allocation's own growth path (which
 * runs a handful of times in a broker's life).
 */
#ifndef SHND_FAULT_H
#define SHND_FAULT_H

#include <stdbool.h>
#include <stdint.h>

enum shnd_fault_site {
	SHND_FAULT_MATCH,
	SHND_FAULT_NSITES,
};

/* Per site, the attempt that fails (0: none); written once by
 * shnd_fault_init, before the loop starts. */
extern uint64_t shnd_fault_fail_at[SHND_FAULT_NSITES];

/* Read SHMNOTIFYD_TEST_FAIL_ALLOC.  0 (unset, or armed: logged as a
 * warning), or -EINVAL when it is malformed (logged). */
int shnd_fault_init(void);

/* Count an attempt at site s; true when this one must fail. */
bool shnd_fault_count(enum shnd_fault_site s);

/* True when the allocation attempt about to be made at site s must fail. */
static inline bool shnd_fault_alloc(enum shnd_fault_site s)
{
	if (__builtin_expect(shnd_fault_fail_at[s] == 0, 1))
		return (false);
	return (shnd_fault_count(s));
}

#endif
