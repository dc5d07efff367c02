/* SPDX-License-Identifier: MIT */
/*
 * wire.h - one notification on NATS: the subject names the key (subject.h),
 * the payload is its data, and these headers carry the rest:
 *
 *   Shn-Origin  node id of the bridge that exported it
 *   Shn-Epoch   that bridge's epoch (decimal): its numbering restarts
 *   Shn-Seq     sequence number of the subject from that origin and epoch, from 1
 *   Shn-Batch   the origin's batch number (a local batch's notes of one rule)
 *   Shn-Index   position in that batch, from 0
 *   Shn-Count   notes in that batch
 *   Shn-Event   the event bits (0x hex)
 *   Shn-Key     the exact key at the origin, base64url
 *   Nats-Msg-Id (JetStream) ORIGIN.EPOCH.N: the stream drops a resend
 *
 * Every field of a received message is checked (a remote bridge, or
 * anyone allowed on the subject, may send anything): br_wire_parse()
 * accepts a message or names what is wrong with it.
 */
#ifndef BR_WIRE_H
#define BR_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <nats/nats.h>
#include <shmnotify.h>

#include "config.h"

#define BR_BATCH_MAX 1000000u    /* notes in one carried batch */

struct br_wire {
	char origin[BR_NODE_MAX + 1];
	uint64_t epoch, seq, batch;
	uint32_t index, count, event;
	uint8_t key[SHN_KEY_MAX];        /* local key: the rule's prefix + the subject's suffix */
	uint16_t key_len;
	const void *data;                /* the message's payload */
	uint32_t data_len;
	const char *subject;
};

/* Set the headers on m (created with its subject and data). */
natsStatus br_wire_set(natsMsg *m, const char *origin, uint64_t epoch, uint64_t seq,
		       uint64_t batch, uint32_t index, uint32_t count, uint32_t event,
		       const uint8_t *key, size_t key_len, uint64_t msg_id);

/* Parse and check message m received on rule ru.  0, or -EINVAL with *why
 * set to a short reason. */
int br_wire_parse(natsMsg *m, const struct br_rule *ru, struct br_wire *w, const char **why);

#endif
