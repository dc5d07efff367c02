/* SPDX-License-Identifier: MIT */
/*
 * acl.h - acl.c: may this client publish these keys?  (PUB_CHECK answers,
 * remembered per connection.)
 */
#ifndef SHN_LIBCLIENT_ACL_H
#define SHN_LIBCLIENT_ACL_H

#include <stddef.h>
#include <stdint.h>

#include "internal.h"

#define SHN__ACL_SLOTS 256

void shn__acl_init(shn_client *c);
void shn__acl_fini(shn_client *c);
/* A new connection: forget every answer; ask again if its flags say so. */
void shn__acl_reset(shn_client *c, uint32_t hello_flags);
/* May c publish every key of the batch?  0, -EACCES, or the error of
 * asking the broker.  Call only while c->pub_acl is set. */
int shn__acl_check(shn_client *c, const shn_notification *batch, size_t n);

#endif
