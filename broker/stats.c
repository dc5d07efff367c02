/* SPDX-License-Identifier: MIT */
/*
 * stats.c - the STATS document (docs/protocol.md): broker totals, then
 * every client with its publish ring and ports (and, when asked, the
 * subscriptions: stats_subs.c).  Ring fill levels are read
 * from client-writable memory, so they are clamped, never trusted.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <jansson.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "stats.h"
#include "stats_subs.h"

#include "dring.h"
#include "loop.h"

/* jansson's integers are signed (json_int_t, long long) and our counters
 * are uint64_t: a value past INT64_MAX would come out negative, so it is
 * clamped instead.  No counter gets there in practice. */
static json_int_t ju(uint64_t v)
{
	return (v > (uint64_t)INT64_MAX ? (json_int_t)INT64_MAX : (json_int_t)v);
}

/* Bytes published by the client and not yet consumed by the broker. */
static uint64_t pub_used(const struct shnd_client *c)
{
	uint64_t t = atomic_load_explicit(&c->pub.prod->tail, memory_order_acquire);
	uint64_t used = t - c->pub.head;

	return (used > c->pub.capacity ? c->pub.capacity : used);
}

/* Bytes the broker wrote to the port and its client has not released. */
static uint64_t port_used(const struct shnd_port *p)
{
	uint64_t h = atomic_load_explicit(&p->ring.cons->head, memory_order_acquire);

	if (h - p->ring.head_cache > p->ring.tail - p->ring.head_cache)
		h = p->ring.head_cache;
	return (p->ring.tail - h);
}

static uint64_t coarse_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return ((uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec);
}

static const char *client_state(const struct shnd_client *c)
{
	return (c->state == SHND_CLIENT_READY ? "ready" :
		c->state == SHND_CLIENT_HANDSHAKE ? "handshake" :
		c->draining ? "draining" : "closing");
}

/* One port's object, or NULL when out of memory.  direct_*: its direct
 * rings and what their reader says it did (untrusted, clamped). */
static json_t *port_json(const struct shnd_port *p)
{
	struct shnd_dring_counts dc;

	shnd_dring_port_counts(p, &dc);
	return (json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}",
			  "direct_rings", (json_int_t)dc.rings, "direct_delivered", ju(dc.a),
			  "direct_late", ju(dc.b),
			  "id", (json_int_t)p->id, "capacity", (json_int_t)p->capacity,
			  "used", ju(port_used(p)), "delivered", ju(p->delivered),
			  "dropped", ju(p->dropped), "subscriptions", (json_int_t)p->nsubs,
			  "pending_events", (json_int_t)p->pend_n, "wakeups", ju(p->wakeups),
			  "high_water", ju(p->high_water)));
}

/* One client's object with its ports, or NULL when out of memory (nothing
 * leaks: the *_new calls drop the value they were given when they fail). */
static json_t *client_json(const struct shnd_client *c)
{
	const struct shnd_list *pos;
	struct shnd_dring_counts dc;
	json_t *o, *ports;

	/* name: null when the client gave none (shn_set_name); it passed
	 * shn_name_valid, which is stricter than jansson's UTF-8 check */
	o = json_pack("{s:I, s:i, s:I, s:s?, s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}",
		      "id", ju(c->id), "pid", (int)c->pid, "uid", (json_int_t)c->uid,
		      "name", c->name[0] ? c->name : NULL, "state", client_state(c), "published", ju(c->published),
		      "batches", ju(c->batches),
		      "pub_ring_used", ju(c->has_pub ? pub_used(c) : 0),
		      "pub_ring_capacity", (json_int_t)(c->has_pub ? c->pub.capacity : 0),
		      "room_wakeups", ju(c->room_wakeups),
		      "waiting_for_port", (json_int_t)(c->stall_port ? c->stall_port->id : 0),
		      "sync_port", (json_int_t)(c->sync.state != SHND_SYNC_NONE &&
						c->sync.cur < c->sync.nports ?
						c->sync.ports[c->sync.cur] : 0),
		      "acl_denied", ju(c->acl_denied),
		      "last_publish_ms_ago",
		      c->last_publish_ns ?
		      (json_int_t)((coarse_now_ns() - c->last_publish_ns) / 1000000) : -1);
	ports = json_array();
	if (o == NULL || ports == NULL)
		goto fail;
	shnd_list_for_each(pos, &c->ports) {
		const struct shnd_port *p = shnd_list_entry(pos, struct shnd_port, by_client);

		if (json_array_append_new(ports, port_json(p)) < 0)
			goto fail;
	}
	shnd_dring_pub_counts(c, &dc);
	if (json_object_set_new(o, "ports", ports) < 0 ||
	    json_object_set_new(o, "direct", json_boolean(c->direct_setup)) < 0 ||
	    json_object_set_new(o, "direct_fanout",
				json_integer(c->direct_setup ? (json_int_t)c->direct_fanout : 0)) < 0 ||
	    json_object_set_new(o, "direct_rings", json_integer((json_int_t)dc.rings)) < 0 ||
	    json_object_set_new(o, "direct_routed", json_integer(ju(dc.a))) < 0 ||
	    json_object_set_new(o, "direct_dropped", json_integer(ju(dc.b))) < 0) {
		json_decref(o);
		return (NULL);
	}
	return (o);
fail:
	json_decref(ports);
	json_decref(o);
	return (NULL);
}

/* The direct path (docs/direct-path.md): the switch and the filter table. */
static json_t *direct_json(const struct shnd_broker *b)
{
	const struct shnd_ftab *f = &b->ftab;

	return (json_pack("{s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:b, s:I, s:I}",
			  "mode", b->cfg.direct ? "auto" : "off",
			  "rings", (json_int_t)b->ndrings, "bytes", ju(b->dring_bytes),
			  "rings_opened", ju(b->tot.direct_rings_opened),
			  "direct_refused", ju(b->tot.direct_refused),
			  "direct_faults", ju(b->tot.direct_faults),
			  "clients", (json_int_t)f->holders,
			  "generation", ju(f->t ? atomic_load(&f->t->gen) : 0),
			  "table_builds", ju(f->builds),
			  "table_disabled", (int)f->disabled,
			  "table_disabled_builds", ju(f->disabled_builds),
			  "max_filters", (json_int_t)b->cfg.lim.direct_max_filters));
}

/* The broker object: totals, capacities, limits. */
static json_t *broker_json(struct shnd_broker *b)
{
	const struct shnd_totals *t = &b->tot;
	json_t *o;

	o = json_pack("{s:i, s:I, s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I,"
		      " s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I,"
		      " s:I, s:I}",
		      "pid", (int)getpid(),
		      "uptime_seconds", ju((coarse_now_ns() - b->started_ns) / 1000000000u),
		      "io", shnd_loop_name(b->loop), "clients", ju(b->nclients),
		      "ports", ju(b->nports), "subscriptions", ju(b->nsubs),
		      "protocol_errors", ju(t->protocol_errors), "ring_errors", ju(t->ring_errors),
		      "disconnects", ju(t->disconnects), "batches_routed", ju(t->batches_routed),
		      "notifications_routed", ju(t->notifications_routed),
		      "notifications_delivered", ju(t->notifications_delivered),
		      "notifications_dropped", ju(t->notifications_dropped),
		      "sync_batches", ju(t->sync_batches), "sync_canceled", ju(t->sync_canceled),
		      "alloc_failures", ju(t->alloc_failures),
		      "connections", ju(t->accepted), "refused", ju(t->refused),
		      "default_capacity", (json_int_t)b->cfg.default_capacity,
		      "max_capacity", (json_int_t)b->cfg.max_capacity,
		      "limit_clients", ju(t->limit_clients), "limit_ports", ju(t->limit_ports),
		      "limit_subscriptions", ju(t->limit_subscriptions),
		      "limit_ring_bytes", ju(t->limit_ring_bytes),
		      "limit_key_size", ju(t->limit_key_size),
		      "limit_data_size", ju(t->limit_data_size),
		      "acl_subscribe_denied", ju(t->acl_subscribe_denied),
		      "acl_publish_denied", ju(t->acl_publish_denied));
	if (o == NULL)
		return (NULL);
	if (json_object_set_new(o, "limits",
				json_pack("{s:I, s:I, s:I, s:I, s:I, s:I}",
					  "max_clients", (json_int_t)b->cfg.lim.max_clients,
					  "max_ports", (json_int_t)b->cfg.lim.max_ports,
					  "max_subscriptions", (json_int_t)b->cfg.lim.max_subs,
					  "max_ring_bytes", ju(b->cfg.lim.max_ring_bytes),
					  "max_key_size", (json_int_t)b->cfg.lim.max_key,
					  "max_data_size", (json_int_t)b->cfg.lim.max_data)) < 0 ||
	    json_object_set_new(o, "acl_rules", json_integer((json_int_t)b->cfg.acl.n)) < 0 ||
	    json_object_set_new(o, "direct", direct_json(b)) < 0) {
		json_decref(o);
		return (NULL);
	}
	return (o);
}

long shnd_stats_json(struct shnd_broker *b, uint32_t flags, char **out)
{
	json_t *doc = json_object(), *clients = json_array();
	char *text = NULL;
	size_t i;

	if (doc == NULL || clients == NULL)
		goto done;
	for (i = 0; i < b->nclients; i++)
		if (json_array_append_new(clients, client_json(b->clients[i])) < 0)
			goto done;
	if (json_object_set_new(doc, "broker", broker_json(b)) < 0)
		goto done;
	if (json_object_set_new(doc, "clients", clients) < 0) {
		clients = NULL;   /* dropped by the failed call */
		goto done;
	}
	clients = NULL;
	if ((flags & SHN_STATS_F_SUBSCRIPTIONS) &&
	    json_object_set_new(doc, "subscriptions", shnd_stats_subs_json(b)) < 0)
		goto done;
	/* compact, members in insertion order (jansson >= 2.8 keeps it) */
	text = json_dumps(doc, JSON_COMPACT);
done:
	json_decref(clients);
	json_decref(doc);
	if (text == NULL)
		return (-ENOMEM);
	*out = text;
	return ((long)strlen(text));
}
