/* SPDX-License-Identifier: MIT */
/*
 * sync.h - serving SHN_PUB_SYNC batches one port at a time (sync.c,
 * docs/design.md, rule 7).  A publisher's batch being served is
 * c->sync (struct shnd_sync), linked on b->router.syncs.
 */
#ifndef SHND_SYNC_H
#define SHND_SYNC_H

#include <stdbool.h>
#include <stdint.h>

#include "broker.h"

/* The SYNC batch loaded by shnd_pub_load (count notes, len bytes at the
 * head of c's publish ring) matched b->router.touched: start serving it.
 * The record stays in c's ring until served.  1 (held), or -ENOMEM. */
int shnd_sync_start(struct shnd_broker *b, struct shnd_client *c, uint32_t count, uint32_t len);

/* Advance every SYNC batch being served as far as it goes now.  True when
 * any moved. */
bool shnd_sync_run(struct shnd_broker *b);

/* The sleep re-check: could any SYNC batch move now?  No side effects. */
bool shnd_sync_any_ready(struct shnd_broker *b);

/* Tell publisher c its SYNC batch batch_id is done: status 0,
 * SHN_SYNC_CANCELED_WIRE, or -EACCES (refused by an [acl] rule).  Not sent
 * to a publisher that left (rule 9); one that does not read its replies is
 * cut off. */
void shnd_sync_send_done(struct shnd_client *c, uint64_t batch_id, int status);

/* Stop serving c's SYNC batch (c is being freed): the port it waited on
 * becomes free for other SYNC batches.  No SYNC_DONE is sent. */
void shnd_sync_forget(struct shnd_broker *b, struct shnd_client *c);

#endif
