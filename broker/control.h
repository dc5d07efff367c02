/* SPDX-License-Identifier: MIT */
/*
 * control.h - the control protocol (control.c, docs/protocol.md): one
 * handler per message type, above ports, subscriptions and delivery.
 */
#ifndef SHND_CONTROL_H
#define SHND_CONTROL_H

#include <stddef.h>

#include "broker.h"

/* Handle one control message of len bytes in c->rxbuf: exactly one reply
 * (STATS: its chunks) queued in request order, or c cut off for anything
 * malformed (protocol_errors). */
void shnd_control_handle(struct shnd_client *c, size_t len);

#endif
