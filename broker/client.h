/* SPDX-License-Identifier: MIT */
/*
 * client.h - a client's lifetime (client.c): being cut off, going away,
 * replies, its doorbell watch, and its references.
 *
 * A client that goes away, or that the broker cuts off, is "doomed": it
 * stops being served at once, and is reclaimed at the next safe point
 * (shnd_server_reap), never in the middle of routing a batch, so no
 * pointer the router holds can dangle.  Everything here may be called from
 * anywhere in the broker, the router included.
 */
#ifndef SHND_CLIENT_H
#define SHND_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "broker.h"

/* Cut c off: log one line (with its pid) and the reason, count it in
 * *counter (when not NULL) and in disconnects, and doom it.  Safe to call
 * from anywhere, also on a client already doomed (then only counted). */
void shnd_client_fail(struct shnd_client *c, uint64_t *counter, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* The client closed its socket: doom it without blame. */
void shnd_client_gone(struct shnd_client *c);

/* Doom c (put it on b->doomed) unless it already is. */
void shnd_client_doom(struct shnd_client *c);

/* Queue a reply carrying nfds descriptors (owned by the reply from now
 * on, also on failure).  0 or -errno (then the client has been failed). */
int shnd_client_send(struct shnd_client *c, const void *msg, uint32_t len, const int *fds,
		     int nfds, bool close_after);

/* Start watching c->doorbell_fd: a ring makes the next round retry
 * ports waiting for room.  0 or -errno. */
int shnd_client_watch_doorbell(struct shnd_client *c);

/* A new client structure holds its first reference (its connection). */
void shnd_client_born(struct shnd_client *c);

/* Drop one reference; the last frees c. */
void shnd_client_unref(struct shnd_client *c);

/* Client structures not yet freed (the loop may still hold some). */
size_t shnd_client_live(void);

#endif
