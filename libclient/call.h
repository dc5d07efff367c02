/* SPDX-License-Identifier: MIT */
/*
 * call.h - call.c: the control conversation with the broker (requests and
 * their replies, messages that are not replies, losing the connection).
 */
#ifndef SHN_LIBCLIENT_CALL_H
#define SHN_LIBCLIENT_CALL_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "internal.h"

/* How long a request waits for its reply before the connection is taken
 * as broken. */
#define SHN__CTL_TIMEOUT_MS 30000

/* Send one request and wait for its reply (same type and id).  req->hdr is
 * filled in here.  fds: where received descriptors go (*nfds in: room, out:
 * count).  Returns the reply's status (0 or -errno) or a transport -errno
 * (-ENOTCONN once the broker is gone; after -ETIMEDOUT or -EPROTO the
 * connection is marked lost: a late reply would desynchronise the stream);
 * reply_len receives the reply's length.  Takes c->ctl_lock: caller holds
 * no lock. */
int shn__call(shn_client *c, void *req, size_t req_len, void *reply, size_t reply_max,
	      size_t *reply_len, int *fds, int *nfds);
/* The same, for a caller that holds c->ctl_lock already. */
int shn__call_locked(shn_client *c, void *req, size_t req_len, void *reply, size_t reply_max,
		     size_t *reply_len, int *fds, int *nfds);

/* Receive one message on the control socket (blocking, bounded by
 * timeout_ms).  Returns its length or -errno; -ENOTCONN once the broker is
 * gone.  Caller holds c->ctl_lock. */
ssize_t shn__recv(shn_client *c, void *buf, size_t len, int *fds, int *nfds, int timeout_ms);

/* Mark the broker gone (socket closed or protocol broken): the watcher
 * thread (client.c) then reconnects. */
void shn__broker_lost(shn_client *c);

/* A message that is not a reply (SYNC_DONE, DIRECT_OPEN, DIRECT_CLOSE):
 * note it for its waiter, or hand it to direct.c with its nfds
 * descriptors (those it keeps become -1; the caller closes the rest).
 * Caller holds ctl_lock.  Returns true when msg was such a message. */
bool shn__async_message(shn_client *c, const void *msg, size_t len, int *fds, int nfds);

/* Take every message waiting on the control socket that is not a reply
 * (DIRECT_OPEN for a port whose reader sleeps, or for a publisher that
 * found its port map ahead of its mail): for a caller that holds no lock.
 * Anything else is a reply nobody asked for: the connection is lost. */
void shn__take_unasked(shn_client *c);

/* The same for a caller that holds ctl_lock.  Returns -ETIMEDOUT once the
 * socket is empty, or the error that ended the reading (-ENOTCONN: the
 * connection is lost). */
int shn__take_unasked_locked(shn_client *c);

/* Close the n descriptors of fds that are open (>= 0). */
void shn__close_fds(int *fds, int n);

#endif
