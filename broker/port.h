/* SPDX-License-Identifier: MIT */
/*
 * port.h - ports (a delivery ring, a consumer segment and an eventfd per
 * port) and subscriptions, with everything that links them.
 */
#ifndef SHND_PORT_H
#define SHND_PORT_H

#include "broker.h"

/* Create a port for c with capacity bytes (already rounded and checked).
 * The delivery ring is mapped read-write here and then sealed with
 * F_SEAL_FUTURE_WRITE, so the descriptor handed out can only be mapped
 * read-only (docs/design.md, rule 13).  On success *out is linked everywhere and
 * fds[SHN_PORT_FD_*] hold descriptors the caller must send or close.
 * 0 or -errno. */
int shnd_port_create(struct shnd_broker *b, struct shnd_client *c, uint32_t capacity,
		     uint32_t overflow, struct shnd_port **out, int fds[SHN_PORT_NFDS]);

/* c's port with this id, or NULL (also when it is another client's). */
struct shnd_port *shnd_port_find(struct shnd_broker *b, struct shnd_client *c, uint32_t id);

/* Remove every subscription of p, unlink p from everything and free it. */
void shnd_port_free(struct shnd_broker *b, struct shnd_port *p);

/* Add a subscription (fields validated by the caller) and make it live in
 * the index before returning.  key NULL: any key; prefix: key is a prefix
 * (SHN_SUB_PREFIX).  0, -EEXIST (conn live for c) or -ENOMEM. */
int shnd_sub_create(struct shnd_broker *b, struct shnd_client *c, struct shnd_port *p,
		    uint64_t conn, uint32_t mask, const void *key, size_t key_len, bool prefix);

/* c's live subscription conn, or NULL. */
struct shnd_sub *shnd_sub_find(struct shnd_client *c, uint64_t conn);

/* Remove sub from the index, its port and its client, and free it. */
void shnd_sub_free(struct shnd_broker *b, struct shnd_sub *sub);

#endif
