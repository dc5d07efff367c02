/* SPDX-License-Identifier: MIT */
/*
 * acl.h - access rules per key prefix (docs/config.md): which uids and gids
 * may publish and which may subscribe.  The longest configured prefix of a
 * key decides; a key no rule covers is open to every client the socket
 * admits, and with no rule at all nothing is checked.  Root and the
 * broker's own uid pass every rule (they could read the broker's memory
 * anyway).
 *
 * A client's standing is decided once, when it connects (its uid, primary
 * gid and supplementary groups from SO_PEERCRED / SO_PEERGROUPS): one byte
 * per rule, so a check on the data path is a prefix search and a load.
 */
#ifndef SHND_ACL_H
#define SHND_ACL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "shm/proto.h"

enum shnd_who_kind {
	SHND_WHO_ANY,   /* "*" */
	SHND_WHO_UID,   /* "uid:N" or "user:NAME" */
	SHND_WHO_GID,   /* "gid:N" or "group:NAME" */
};

struct shnd_who {
	uint32_t kind;  /* enum shnd_who_kind */
	uint32_t id;
};

/* One publish or subscribe list; empty (or absent): nobody. */
struct shnd_who_list {
	struct shnd_who *v;
	uint32_t n;
	int line;       /* where it was set, 0: not set */
};

struct shnd_acl_rule {
	uint8_t prefix[SHN_KEY_MAX_WIRE];
	uint16_t len;
	int line;       /* of its [acl "PREFIX"] header */
	struct shnd_who_list pub, sub;
};

struct shnd_acl {
	struct shnd_acl_rule *rules;  /* longest prefix first once sorted */
	uint32_t n;
};

#define SHND_ACL_PUB 1u
#define SHND_ACL_SUB 2u

/* What one client may do, decided when it connects. */
struct shnd_acl_client {
	uint8_t *may;   /* per rule: SHND_ACL_PUB | SHND_ACL_SUB; NULL: no rules */
	bool pub_all;   /* may publish under every rule: nothing to check */
	bool sub_all;   /* may subscribe under every rule: any-key allowed */
};

/* Parse "uid:1000, gid:100, user:NAME, group:NAME, *" (names resolved
 * now).  0, or -EINVAL with a message for the user in err. */
int shnd_acl_parse_who(const char *value, struct shnd_who_list *out, char *err, size_t errlen);

/* Write prefix as it is written in a config file: "...", escaped
 * (util/prefix.h, which also parses it; out: 4 * len + 3 bytes). */
void shnd_acl_quote(const uint8_t *p, size_t len, char *out, size_t outlen);

/* Order the rules longest prefix first.  Then shnd_acl_find() returns the
 * longest prefix of a key. */
void shnd_acl_sort(struct shnd_acl *a);

/* The index of the rule with the longest prefix of key, or -1. */
int shnd_acl_find(const struct shnd_acl *a, const void *key, size_t len);

/* Decide what a peer (uid, gid, and for gid rules its supplementary groups
 * read from the socket fd) may do.  0 or -ENOMEM. */
int shnd_acl_client_init(const struct shnd_acl *a, struct shnd_acl_client *ac, int fd,
			 uid_t uid, gid_t gid);
void shnd_acl_client_fini(struct shnd_acl_client *ac);

/* May the client publish a notification with this key?  *rule (may be
 * NULL) gets the deciding rule's index, -1 when none. */
static inline bool shnd_acl_may_publish(const struct shnd_acl *a, const struct shnd_acl_client *ac,
					const void *key, size_t len, int *rule)
{
	int r;

	if (rule != NULL)
		*rule = -1;
	if (ac->pub_all)
		return (true);
	r = shnd_acl_find(a, key, len);
	if (rule != NULL)
		*rule = r;
	return (r < 0 || (ac->may[r] & SHND_ACL_PUB) != 0);
}

/* May the client subscribe to key (NULL: any key, which needs every rule's
 * subscribe permission)?  With prefix, key is a prefix filter: the client
 * must be let subscribe to every key under it, so the rule governing the
 * prefix itself (the longest rule prefix that is a prefix of it) and every
 * rule whose prefix starts with it must allow subscribe.  *rule (may be
 * NULL) gets the refusing rule's index (-1 when allowed, or when no rule
 * decided). */
bool shnd_acl_may_subscribe(const struct shnd_acl *a, const struct shnd_acl_client *ac,
			    const void *key, size_t len, bool prefix, int *rule);

/* The rules as config sections, longest prefix first. */
void shnd_acl_print(const struct shnd_acl *a, FILE *f);

void shnd_acl_free(struct shnd_acl *a);

struct shnd_broker;
struct shnd_client;

/* The broker's checks on one validated publish record (rec, its count
 * notes at the offsets in notes): every key within the configured maximum
 * key size and every payload within the maximum data size, else -EMSGSIZE
 * (a ring error: the library never writes one; counted in limit_key_size
 * or limit_data_size); then every key one c may publish, else -EACCES
 * (the batch is refused whole; counted in acl_publish_denied and the
 * client's acl_denied, logged).  0 when the batch may be routed. */
int shnd_policy_check_batch(struct shnd_broker *b, struct shnd_client *c, const uint8_t *rec,
			    const uint32_t *notes, int count);

#endif
