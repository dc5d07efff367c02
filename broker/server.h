/* SPDX-License-Identifier: MIT */
/*
 * server.h - the listening socket, accepting clients (their control
 * messages go to control.c), and reclaiming doomed clients (client.h) at
 * safe points.
 */
#ifndef SHND_SERVER_H
#define SHND_SERVER_H

#include "broker.h"

/* Bind and listen on b->cfg.socket_path (docs/design.md, rule 12: a live broker
 * there → exit status 1 with a clear message; a stale socket → replaced),
 * and watch the socket in b->loop.  0 or -errno (already logged);
 * -EADDRINUSE when another broker answers. */
int shnd_server_listen(struct shnd_broker *b);

/* Stop listening and unlink the socket if it is still ours. */
void shnd_server_unlisten(struct shnd_broker *b);

/* Reclaim every doomed client: free its ports, subscriptions, socket and
 * doorbell, route what is left in its publish ring (docs/design.md, rule 9), then
 * free the ring too, unless a SHN_OVERFLOW_BLOCK port holds batches back
 * or a SYNC batch of it is being served: then the ring stays ("draining")
 * until rounds have routed them. */
void shnd_server_reap(struct shnd_broker *b);

/* Reclaim every client now, draining ones included (shutdown). */
void shnd_server_drop_all(struct shnd_broker *b);

#endif
