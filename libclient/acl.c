/* SPDX-License-Identifier: MIT */
/*
 * acl.c - "may I publish this key?" before a batch is written.
 *
 * The broker is authoritative: it checks every published record against its
 * [acl "PREFIX"] rules and drops a batch with a key the publisher may not
 * publish.  So that shn_notify() can say -EACCES instead of returning 0 for
 * a batch nobody will see, a broker whose rules may refuse this client says
 * so in HELLO (SHN_HELLO_F_PUB_ACL); the library then asks PUB_CHECK once
 * per key and remembers the answer for the connection's life (the broker's
 * rules do not change while it runs).  The memory is bounded: a
 * direct-mapped table of SHN__ACL_SLOTS keys, allocated on first use; a key
 * that lost its slot is asked again.  With the flag clear (no rules, or
 * none refuses this client) nothing here runs.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "acl.h"
#include "call.h"

#define XXH_INLINE_ALL
#include <xxhash.h>

struct shn__acl_slot {
	uint64_t hash;
	uint64_t gen;        /* the cache generation it was answered in; 0: empty */
	bool allowed;
	uint16_t key_len;
	uint8_t key[SHN_KEY_MAX];
};

void shn__acl_init(shn_client *c)
{
	pthread_mutex_init(&c->acl_lock, NULL);
	c->acl_gen = 1;
}

void shn__acl_fini(shn_client *c)
{
	free(c->acl_slots);
	c->acl_slots = NULL;
	pthread_mutex_destroy(&c->acl_lock);
}

void shn__acl_reset(shn_client *c, uint32_t hello_flags)
{
	pthread_mutex_lock(&c->acl_lock);
	c->acl_gen++;   /* every remembered answer was another broker's */
	atomic_store(&c->pub_acl, (hello_flags & SHN_HELLO_F_PUB_ACL) != 0);
	pthread_mutex_unlock(&c->acl_lock);
}

/* 1 allowed, 0 refused, -1 not known. */
static int lookup(shn_client *c, const void *key, uint16_t len, uint64_t h, uint64_t *gen)
{
	const struct shn__acl_slot *s;
	int r = -1;

	pthread_mutex_lock(&c->acl_lock);
	*gen = c->acl_gen;
	if (c->acl_slots != NULL) {
		s = &c->acl_slots[h % SHN__ACL_SLOTS];
		if (s->gen == c->acl_gen && s->hash == h && s->key_len == len &&
		    memcmp(s->key, key, len) == 0)
			r = s->allowed;
	}
	pthread_mutex_unlock(&c->acl_lock);
	return (r);
}

static void remember(shn_client *c, const void *key, uint16_t len, uint64_t h, uint64_t gen,
		     bool allowed)
{
	struct shn__acl_slot *s;

	pthread_mutex_lock(&c->acl_lock);
	if (c->acl_slots == NULL)
		c->acl_slots = calloc(SHN__ACL_SLOTS, sizeof(*c->acl_slots));
	/* an answer from before a reconnect is not kept */
	if (c->acl_slots != NULL && gen == c->acl_gen) {
		s = &c->acl_slots[h % SHN__ACL_SLOTS];
		s->hash = h;
		s->gen = gen;
		s->allowed = allowed;
		s->key_len = len;
		memcpy(s->key, key, len);
	}
	pthread_mutex_unlock(&c->acl_lock);
}

static int ask(shn_client *c, const void *key, uint16_t len)
{
	union {
		struct shn_msg_pub_check m;
		uint8_t buf[sizeof(struct shn_msg_pub_check) + SHN_KEY_MAX];
	} req;
	struct shn_msg_reply rep;

	memset(&req.m, 0, sizeof(req.m));
	req.m.hdr.type = SHN_MSG_PUB_CHECK;
	req.m.key_len = len;
	memcpy(req.m.key, key, len);
	return (shn__call(c, &req, sizeof(req.m) + len, &rep, sizeof(rep), NULL, NULL, NULL));
}

int shn__acl_check(shn_client *c, const shn_notification *batch, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		uint64_t h = XXH3_64bits(batch[i].key, batch[i].key_len), gen;
		int r = lookup(c, batch[i].key, batch[i].key_len, h, &gen);

		if (r < 0) {
			int err = ask(c, batch[i].key, batch[i].key_len);

			if (err < 0 && err != -EACCES)
				return (err);
			r = (err == 0);
			remember(c, batch[i].key, batch[i].key_len, h, gen, r);
		}
		if (r == 0)
			return (-EACCES);
	}
	return (0);
}
