/* SPDX-License-Identifier: MIT */
/*
 * ftab.h - the direct path's filter table (docs/direct-path.md; layout in
 * shm/direct.h): one segment for the broker, read-only to every client that
 * asked for the direct path, rebuilt from the index into its inactive half
 * after every change of the filters, then published by storing gen + 1
 * before the reply that makes the change visible (docs/design.md, rule 8).
 * Also each such client's port map segment.
 *
 * While no client holds the table, nothing is rebuilt: a broker that no
 * direct client uses pays nothing per SUBSCRIBE.
 */
#ifndef SHND_FTAB_H
#define SHND_FTAB_H

#include <stdint.h>

#include "broker.h"

/* Create the table when the configuration says direct auto (a no-op under
 * off).  0 or -errno. */
int shnd_ftab_init(struct shnd_broker *b);
void shnd_ftab_fini(struct shnd_broker *b);

/* After the index changed, before the reply that makes the change visible:
 * rewrite the inactive half and store gen + 1.  Nothing when the index did
 * not change since the last build, or no client holds the table. */
void shnd_ftab_sync(struct shnd_broker *b);

/* A port map changed (dring.c): rewrite the inactive half from the index
 * all the same and store gen + 1, so that publishers re-check. */
void shnd_ftab_bump(struct shnd_broker *b);

/* DIRECT_SETUP for c: a port map of its own, the table brought up to date.
 * On success fds[SHN_DSETUP_FD_TABLE] and fds[SHN_DSETUP_FD_PMAP] are new
 * descriptors for the reply (the caller sends and closes them).  0 or
 * -errno. */
int shnd_ftab_setup_client(struct shnd_broker *b, struct shnd_client *c,
			   int fds[SHN_DSETUP_NFDS], uint64_t *table_size);

/* c goes away: it no longer holds the table (its port map stays until
 * shnd_dring_publisher_gone). */
void shnd_ftab_drop_client(struct shnd_broker *b, struct shnd_client *c);

#endif
