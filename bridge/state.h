/* SPDX-License-Identifier: MIT */
/*
 * state.h - what a receiving bridge remembers per (origin node, subject):
 * the origin's epoch (a number it draws at start) and the last sequence
 * number it delivered.  Kept in a file mapped MAP_SHARED, so an update is
 * in the kernel's page cache as soon as it is stored: a bridge killed with
 * SIGKILL and restarted still knows exactly where it stopped, and counts
 * what it missed in between.  (A machine crash may lose the last writes:
 * then a restart counts too few or too many; docs/multi-host.md.)
 *
 * The table is open addressing on a 128-bit hash of origin and subject;
 * only the receiving path touches it, under its lock.
 */
#ifndef BR_STATE_H
#define BR_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct br_seq {
	uint64_t h0, h1;      /* XXH3_128 of "origin\0subject"; 0/0: free */
	uint64_t epoch;
	uint64_t last;        /* last sequence number delivered (or skipped on purpose) */
};

struct br_state_hdr;

struct br_state {
	int fd;               /* -1: in memory only */
	struct br_state_hdr *h;
	struct br_seq *e;
	size_t size;
	char path[4096];
};

/* Open (create) the table in path, or in memory when path is "".  A file
 * that is not a table we wrote is refused (-EINVAL) after saying so; one
 * whose growth was cut off is started afresh with a warning.  0 or -errno. */
int br_state_open(struct br_state *s, const char *path);
void br_state_close(struct br_state *s);

/* The entry of (origin, subject); create: add it (epoch and last 0) when
 * missing.  NULL: missing (create false) or out of memory.  The pointer is
 * valid until the next call with create. */
struct br_seq *br_state_get(struct br_state *s, const char *origin, const char *subject,
			    bool create);

/* Entries in use. */
uint64_t br_state_count(const struct br_state *s);

#endif
