/* SPDX-License-Identifier: MIT */
/*
 * direct.h - direct.c: the library's end of the direct path's control plane
 * (docs/direct-path.md): whether to ask for it, the filter table and port
 * map a DIRECT_SETUP hands over, and the DIRECT_OPEN / DIRECT_CLOSE messages
 * the broker sends unasked.
 */
#ifndef SHN_LIBCLIENT_DIRECT_H
#define SHN_LIBCLIENT_DIRECT_H

#include <stdbool.h>
#include <stddef.h>

#include "internal.h"

/* The HELLO flag to ask for: SHN_HELLO_F_DIRECT, or 0 when the environment
 * says SHMNOTIFY_DIRECT=off. */
uint32_t shn__direct_hello_flag(void);

/* The most ports one batch is written to directly: SHMNOTIFY_DIRECT_FANOUT
 * (1..64), default SHN__DIRECT_FANOUT. */
uint32_t shn__direct_fanout(void);

/* How long a publisher waits for a reader or a broker that moves nothing
 * before it takes the broker path (direct_pub.h, SHN__DP_WAIT_NS):
 * SHMNOTIFY_DIRECT_WAIT_US (0..SHN__DP_WAIT_MAX_US microseconds). */
uint64_t shn__direct_wait_ns(void);

/* Does a publisher ring a sleeping reader before it writes a one-port
 * batch's record (shn__dpub_prewake)?  Yes unless SHMNOTIFY_DIRECT_PREWAKE
 * is off (or 0). */
bool shn__direct_prewake(void);

/* Map the DIRECT_SETUP reply's descriptors into c (both are consumed,
 * whatever the result).  0, or -EPROTO when they are not what the
 * protocol says. */
int shn__direct_map(shn_client *c, const struct shn_msg_direct_setup_reply *rep, int *fds,
		    int nfds);

/* Unmap what shn__direct_map mapped.  Safe when nothing is. */
void shn__direct_unmap(shn_client *c);

/* Tell the broker we are done with a ring (DIRECT_CLOSE), without waiting
 * for the reply, which shn__direct_async takes like every DIRECT_CLOSE:
 * role SHN_DIRECT_SUBSCRIBER, a port's reader drained and unmapped a ring
 * the broker closed; SHN_DIRECT_PUBLISHER, a publisher found the ring's
 * head not valid.  Takes ctl_lock. */
void shn__direct_tell_closed(shn_client *c, uint32_t role, uint32_t slot, uint32_t port_id,
			     uint32_t ring_id);

/* A DIRECT_OPEN or DIRECT_CLOSE from the broker, or the reply to a
 * DIRECT_CLOSE this library sent without waiting: handle it; the
 * descriptors it keeps are set to -1 in fds, the caller closes the rest.
 * Caller holds c->ctl_lock.  Returns true when msg was one of these. */
bool shn__direct_async(shn_client *c, const void *msg, size_t len, int *fds, int nfds);

#endif
