/* SPDX-License-Identifier: MIT */
/*
 * server.h - the listening socket and the life of a client: accept, the
 * control messages (control.c), being cut off, and reclaiming.
 *
 * A client that goes away, or that the broker cuts off, is "doomed": it
 * stops being served at once, and is reclaimed at the next safe point
 * (shnd_server_reap), never in the middle of routing a batch, so no
 * pointer the router holds can dangle.
 */
#ifndef SHND_SERVER_H
#define SHND_SERVER_H

#include "broker.h"

/* Bind and listen on b->cfg.socket_path (DESIGN rule 12: a live broker
 * there → exit status 1 with a clear message; a stale socket → replaced),
 * and watch the socket in b->loop.  0 or -errno (already logged);
 * -EADDRINUSE when another broker answers. */
int shnd_server_listen(struct shnd_broker *b);

/* Stop listening and unlink the socket if it is still ours. */
void shnd_server_unlisten(struct shnd_broker *b);

/* Cut c off: log one line (with its pid) and the reason, count it in
 * *counter (when not NULL) and in disconnects, and doom it.  Safe to call
 * from anywhere, also on a client already doomed (then only counted). */
void shnd_client_fail(struct shnd_client *c, uint64_t *counter, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* The client closed its socket: doom it without blame. */
void shnd_client_gone(struct shnd_client *c);

/* Queue a reply carrying nfds descriptors (owned by the reply from now
 * on, also on failure).  0 or -errno (then the client has been failed). */
int shnd_client_send(struct shnd_client *c, const void *msg, uint32_t len, const int *fds,
		     int nfds, bool close_after);

/* Start watching c->doorbell_fd: a ring makes the next round retry
 * ports waiting for room.  0 or -errno. */
int shnd_client_watch_doorbell(struct shnd_client *c);

/* Reclaim every doomed client: free its ports, subscriptions, socket and
 * doorbell, route what is left in its publish ring (DESIGN rule 9), then
 * free the ring too, unless a SHN_OVERFLOW_BLOCK port holds batches back
 * or a SYNC batch of it is being served: then the ring stays ("draining")
 * until rounds have routed them. */
void shnd_server_reap(struct shnd_broker *b);

/* Reclaim every client now, draining ones included (shutdown). */
void shnd_server_drop_all(struct shnd_broker *b);

/* Client structures not yet freed (the loop may still hold some). */
size_t shnd_server_live(void);

/* Handle one control message of len bytes in c->rxbuf (control.c). */
void shnd_control_handle(struct shnd_client *c, size_t len);

/* The STATS document, NUL-terminated, in *out (malloc'd) (stats.c).
 * Its length or -ENOMEM. */
long shnd_stats_json(struct shnd_broker *b, char **out);

#endif
