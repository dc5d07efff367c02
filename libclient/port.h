/* SPDX-License-Identifier: MIT */
/*
 * port.h - port.c: a port's rings (request, attach, close), the pull side
 * that dispatch.c shares (wait for a record, hand out its notes, the SYNC
 * acknowledgement), and registering filters.
 */
#ifndef SHN_LIBCLIENT_PORT_H
#define SHN_LIBCLIENT_PORT_H

#include <stddef.h>
#include <stdint.h>

#include "internal.h"

/* Ask the broker behind c for a port with opt; on success r holds its
 * mapped rings (not yet attached) and *port_id its number.  On failure
 * nothing is left open. */
int shn__port_request(shn_client *c, const shn_port_options *opt, uint32_t *port_id,
		      struct shn__port_rings *r);

/* Unmap and close rings that were never attached. */
void shn__port_rings_close(struct shn__port_rings *r);

/* Install the current rings of p from mapped segments (open, reconnect). */
int shn__port_attach(shn_port *p, struct shn__port_rings *r);

/* Close a port's local resources, no message to the broker. */
void shn__port_free(shn_port *p);

/* timeout_ms of shn__port_wait_record for shn_port_try_get: look once,
 * and leave an empty port unarmed. */
#define SHN__TRY (-2)

/* Release the record fully handed out, then wait (bounded by timeout_ms,
 * -1 none) until a delivered record is current.  1, -ETIMEDOUT,
 * -ECANCELED, -EBADMSG or another -errno; with SHN__TRY, -EAGAIN when
 * nothing is there (and the port is left unarmed). */
int shn__port_wait_record(shn_port *p, int timeout_ms);

/* Hand out up to max notes of the current record, from the first one not
 * handed out yet.  Returns how many, or -EBADMSG. */
int shn__port_fill(shn_port *p, shn_notification *out, size_t max);

/* Tell the broker the current SYNC record was consumed (status 0) or a
 * sink discontinued (1). */
void shn__sync_ack(shn_port *p, uint32_t status);

/* Send s's filter to the broker behind c (SUBSCRIBE with s's conn, key,
 * mask and its port's current number).  0 or -errno. */
int shn__send_subscribe(shn_client *c, const struct shn__sub *s);

/* Register a subscription (pull when fn is NULL) with the broker. */
int shn__subscribe(shn_port *p, const void *key, size_t key_len, uint32_t event_mask,
		   unsigned flags, shn_sink_fn fn, void *ctx, shn_conn *conn);

#endif
