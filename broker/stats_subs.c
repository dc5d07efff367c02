/* SPDX-License-Identifier: MIT */
/*
 * stats_subs.c - the "subscriptions" section of the STATS document, built
 * only when a client asks (SHN_STATS_F_SUBSCRIPTIONS, docs/protocol.md):
 * every filter with its port, mask and owner, and per key or prefix how
 * many ports and filters watch it.
 *
 * The walk goes client by client, port by port, through each port's own
 * list of subscriptions, so it needs nothing of the index but the key a
 * subscription holds (sub->ke, sub->prefix): exact keys, prefixes and
 * any-key filters are told apart the same way however the index keeps
 * them.  Because a port's filters come one after another, "how many ports"
 * is counted by remembering the last port seen per key.
 *
 * Bounded: each list holds at most SHN_STATS_SUBS_MAX entries, beside the
 * totals and a "truncated" flag, so a broker with a million keys sends a
 * reply of a few megabytes at most.  The per-key counts need every filter
 * looked at once and a table of the distinct keys (pointers to the keys
 * the subscriptions already hold: a few dozen bytes per key), freed before
 * the reply is sent.
 */
#include <stdlib.h>
#include <string.h>

#include "stats_subs.h"

#include "index.h"
#include "util/base64.h"
#include "util/utf8.h"

enum kind { KIND_ANY, KIND_EXACT, KIND_PREFIX };

static const char *const kind_name[] = { "any", "exact", "prefix" };

/* A distinct key or prefix (or "any key") and who watches it. */
struct group {
	const uint8_t *key;           /* the key bytes of one of its subscriptions */
	uint32_t len;
	enum kind kind;
	uint64_t hash;
	uint64_t filters, ports;
	const struct shnd_port *last_port;
};

/* Open addressing over groups[]: slot holds index + 1, 0 when empty. */
struct gtab {
	struct group *g;
	size_t n, cap;
	uint32_t *slot;
	size_t mask;
};

static enum kind sub_kind(const struct shnd_sub *s)
{
	if (s->prefix)
		return KIND_PREFIX;   /* an empty prefix may have no key entry */
	return s->ke ? KIND_EXACT : KIND_ANY;
}

static void sub_key(const struct shnd_sub *s, const uint8_t **key, uint32_t *len)
{
	*key = s->ke ? s->ke->key : NULL;
	*len = s->ke ? s->ke->key_len : 0;
}

/* The group of (kind, key), added when new; NULL when out of memory. */
static struct group *group_of(struct gtab *t, enum kind k, const uint8_t *key, uint32_t len)
{
	uint64_t h = shnd_index_hash(len ? (const void *)key : "", len) ^ (uint64_t)k;
	size_t i = (size_t)h & t->mask;
	struct group *g;

	for (; t->slot[i]; i = (i + 1) & t->mask) {
		g = &t->g[t->slot[i] - 1];
		if (g->hash == h && g->kind == k && g->len == len && (len == 0 || !memcmp(g->key, key, len)))
			return g;
	}
	if (t->n == t->cap)
		return NULL;   /* sized for every subscription: cannot happen */
	g = &t->g[t->n++];
	*g = (struct group){ .key = key, .len = len, .kind = k, .hash = h };
	t->slot[i] = (uint32_t)t->n;
	return g;
}

static int group_cmp(const void *a, const void *b)
{
	const struct group *x = a, *y = b;
	uint32_t n = x->len < y->len ? x->len : y->len;
	int d;

	if (x->kind == KIND_ANY || y->kind == KIND_ANY)
		return (int)(y->kind == KIND_ANY) - (int)(x->kind == KIND_ANY);
	d = n ? memcmp(x->key, y->key, n) : 0;
	if (d)
		return d;
	if (x->len != y->len)
		return x->len < y->len ? -1 : 1;
	return (int)x->kind - (int)y->kind;
}

/* "key": a JSON string when the bytes are UTF-8, else null and
 * "key_base64" (as listen --json writes them); "any" has null alone.
 * 0 or -1 (out of memory). */
static int set_key(json_t *o, enum kind k, const uint8_t *key, uint32_t len)
{
	char *b64;
	int rc;

	if (k == KIND_ANY)
		return json_object_set_new(o, "key", json_null());
	if (len == 0 || shu_utf8_valid(key, len))
		return json_object_set_new(o, "key", json_stringn(len ? (const char *)key : "", len));
	b64 = malloc(shu_b64_size(len));
	if (b64 == NULL)
		return -1;
	shu_b64_encode(key, len, b64, SHU_B64_PAD);
	rc = json_object_set_new(o, "key", json_null()) |
	     json_object_set_new(o, "key_base64", json_string(b64));
	free(b64);
	return rc;
}

static json_t *filter_json(const struct shnd_client *c, const struct shnd_port *p,
			   const struct shnd_sub *s)
{
	const uint8_t *key;
	uint32_t len;
	enum kind k = sub_kind(s);
	json_t *o;

	sub_key(s, &key, &len);
	/* name: null when the client gave none; it passed shn_name_valid */
	o = json_pack("{s:I, s:i, s:s?, s:I, s:I, s:s}", "client", (json_int_t)c->id,
		      "pid", (int)c->pid, "name", c->name[0] ? c->name : NULL,
		      "port", (json_int_t)p->id, "conn",
		      (json_int_t)(s->conn > INT64_MAX ? INT64_MAX : s->conn), "kind", kind_name[k]);
	if (o == NULL || set_key(o, k, key, len) < 0 ||
	    json_object_set_new(o, "mask", json_integer(s->mask)) < 0) {
		json_decref(o);
		return NULL;
	}
	return o;
}

static json_t *group_json(const struct group *g)
{
	json_t *o = json_pack("{s:s}", "kind", kind_name[g->kind]);

	if (o == NULL || set_key(o, g->kind, g->key, g->len) < 0 ||
	    json_object_set_new(o, "ports", json_integer((json_int_t)g->ports)) < 0 ||
	    json_object_set_new(o, "filters", json_integer((json_int_t)g->filters)) < 0) {
		json_decref(o);
		return NULL;
	}
	return o;
}

/* Every filter into filters (the first SHN_STATS_SUBS_MAX) and t; the
 * number of filters.  -1 when out of memory. */
static long walk(const struct shnd_broker *b, json_t *filters, struct gtab *t)
{
	const struct shnd_list *pp, *sp;
	long n = 0;
	size_t i;

	for (i = 0; i < b->nclients; i++) {
		const struct shnd_client *c = b->clients[i];

		shnd_list_for_each(pp, &c->ports) {
			const struct shnd_port *p = shnd_list_entry(pp, struct shnd_port, by_client);

			shnd_list_for_each(sp, &p->subs) {
				const struct shnd_sub *s = shnd_list_entry(sp, struct shnd_sub, by_port);
				const uint8_t *key;
				uint32_t len;
				struct group *g;

				if ((size_t)n < SHN_STATS_SUBS_MAX &&
				    json_array_append_new(filters, filter_json(c, p, s)) < 0)
					return -1;
				n++;
				sub_key(s, &key, &len);
				g = group_of(t, sub_kind(s), key, len);
				if (g == NULL)
					return -1;
				g->filters++;
				if (g->last_port != p) {
					g->ports++;
					g->last_port = p;
				}
			}
		}
	}
	return n;
}

/* The filters the walk will see, counted the way it goes (not trusting a
 * counter kept elsewhere to agree): the groups can be no more. */
static size_t count_subs(const struct shnd_broker *b)
{
	const struct shnd_list *pp, *sp;
	size_t i, n = 0;

	for (i = 0; i < b->nclients; i++)
		shnd_list_for_each(pp, &b->clients[i]->ports) {
			const struct shnd_port *p = shnd_list_entry(pp, struct shnd_port, by_client);

			shnd_list_for_each(sp, &p->subs)
				n++;
		}
	return n;
}

/* Room for nsubs groups, and a table of more than twice as many slots (so
 * that a probe always ends at an empty one). */
static int gtab_init(struct gtab *t, size_t nsubs)
{
	size_t slots = 16;

	while (slots < 2 * nsubs + 2)
		slots *= 2;
	t->cap = nsubs + 1;
	t->g = malloc(t->cap * sizeof(*t->g));
	t->slot = calloc(slots, sizeof(*t->slot));
	t->mask = slots - 1;
	t->n = 0;
	return (t->g && t->slot) ? 0 : -1;
}

json_t *shnd_stats_subs_json(const struct shnd_broker *b)
{
	json_t *o = NULL, *filters = json_array(), *keys = json_array();
	struct gtab t = { 0 };
	long nfilters;
	size_t i;

	if (filters == NULL || keys == NULL || gtab_init(&t, count_subs(b)) < 0)
		goto fail;
	nfilters = walk(b, filters, &t);
	if (nfilters < 0)
		goto fail;
	qsort(t.g, t.n, sizeof(*t.g), group_cmp);
	for (i = 0; i < t.n && i < SHN_STATS_SUBS_MAX; i++)
		if (json_array_append_new(keys, group_json(&t.g[i])) < 0)
			goto fail;
	o = json_pack("{s:I, s:I, s:b, s:o, s:I, s:b, s:o}",
		      "limit", (json_int_t)SHN_STATS_SUBS_MAX,
		      "filters_total", (json_int_t)nfilters,
		      "filters_truncated", nfilters > (long)SHN_STATS_SUBS_MAX,
		      "filters", filters,
		      "keys_total", (json_int_t)t.n,
		      "keys_truncated", t.n > SHN_STATS_SUBS_MAX,
		      "keys", keys);
	/* "o" took both arrays, also when it failed */
	filters = keys = NULL;
fail:
	json_decref(filters);
	json_decref(keys);
	free(t.g);
	free(t.slot);
	return o;
}
