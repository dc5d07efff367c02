/* SPDX-License-Identifier: MIT */
/*
 * stats.c - the STATS document (docs/protocol.md): broker totals, then
 * every client with its publish ring and ports.  Ring fill levels are read
 * from client-writable memory, so they are clamped, never trusted.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "loop.h"
#include "server.h"

struct sbuf {
	char *p;
	size_t len, cap;
	bool oom;
};

static void sb_printf(struct sbuf *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void sb_printf(struct sbuf *s, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (s->oom)
		return;
	for (;;) {
		va_start(ap, fmt);
		n = vsnprintf(s->p + s->len, s->cap - s->len, fmt, ap);
		va_end(ap);
		if (n < 0) {
			s->oom = true;
			return;
		}
		if ((size_t)n < s->cap - s->len) {
			s->len += (size_t)n;
			return;
		}
		size_t ncap = (s->cap + (size_t)n + 1) * 2;
		char *np = realloc(s->p, ncap);

		if (np == NULL) {
			s->oom = true;
			return;
		}
		s->p = np;
		s->cap = ncap;
	}
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

static void client_json(struct sbuf *s, const struct shnd_client *c)
{
	const struct shnd_list *pos;
	bool first = true;

	sb_printf(s, "{\"id\":%llu,\"pid\":%d,\"uid\":%u,\"state\":\"%s\","
		  "\"published\":%llu,\"batches\":%llu,\"pub_ring_used\":%llu,"
		  "\"pub_ring_capacity\":%u,\"room_wakeups\":%llu,\"waiting_for_port\":%u,"
		  "\"sync_port\":%u,\"acl_denied\":%llu,\"last_publish_ms_ago\":%lld,\"ports\":[",
		  (unsigned long long)c->id, (int)c->pid, (unsigned)c->uid,
		  c->state == SHND_CLIENT_READY ? "ready" :
		  c->state == SHND_CLIENT_HANDSHAKE ? "handshake" :
		  c->draining ? "draining" : "closing",
		  (unsigned long long)c->published, (unsigned long long)c->batches,
		  (unsigned long long)(c->has_pub ? pub_used(c) : 0),
		  c->has_pub ? c->pub.capacity : 0, (unsigned long long)c->room_wakeups,
		  c->stall_port ? c->stall_port->id : 0,
		  c->sync.state != SHND_SYNC_NONE && c->sync.cur < c->sync.nports ?
		  c->sync.ports[c->sync.cur] : 0, (unsigned long long)c->acl_denied,
		  c->last_publish_ns ? (long long)((coarse_now_ns() - c->last_publish_ns) / 1000000)
				     : -1ll);
	shnd_list_for_each(pos, &c->ports) {
		const struct shnd_port *p = shnd_list_entry(pos, struct shnd_port, by_client);

		sb_printf(s, "%s{\"id\":%u,\"capacity\":%u,\"used\":%llu,\"delivered\":%llu,"
			  "\"dropped\":%llu,\"subscriptions\":%u,\"pending_events\":%u,"
			  "\"wakeups\":%llu,\"high_water\":%llu}",
			  first ? "" : ",", p->id, p->capacity,
			  (unsigned long long)port_used(p), (unsigned long long)p->delivered,
			  (unsigned long long)p->dropped, p->nsubs, p->pend_n,
			  (unsigned long long)p->wakeups, (unsigned long long)p->high_water);
		first = false;
	}
	sb_printf(s, "]}");
}

long shnd_stats_json(struct shnd_broker *b, char **out)
{
	const struct shnd_totals *t = &b->tot;
	struct sbuf s = { 0 };
	size_t i;

	sb_printf(&s, "{\"broker\":{\"pid\":%d,\"uptime_seconds\":%llu,\"io\":\"%s\",\"clients\":%zu,\"ports\":%zu,"
		  "\"subscriptions\":%zu,\"protocol_errors\":%llu,\"ring_errors\":%llu,"
		  "\"disconnects\":%llu,\"batches_routed\":%llu,\"notifications_routed\":%llu,"
		  "\"notifications_delivered\":%llu,\"notifications_dropped\":%llu,"
		  "\"sync_batches\":%llu,\"sync_canceled\":%llu,"
		  "\"connections\":%llu,\"refused\":%llu,\"default_capacity\":%u,\"max_capacity\":%u,"
		  "\"limit_clients\":%llu,\"limit_ports\":%llu,\"limit_subscriptions\":%llu,"
		  "\"limit_ring_bytes\":%llu,\"limit_key_size\":%llu,\"limit_data_size\":%llu,"
		  "\"acl_subscribe_denied\":%llu,\"acl_publish_denied\":%llu,"
		  "\"limits\":{\"max_clients\":%u,\"max_ports\":%u,\"max_subscriptions\":%u,"
		  "\"max_ring_bytes\":%llu,\"max_key_size\":%u,\"max_data_size\":%u},"
		  "\"acl_rules\":%u},"
		  "\"clients\":[",
		  (int)getpid(), (unsigned long long)((coarse_now_ns() - b->started_ns) / 1000000000u),
		  shnd_loop_name(b->loop), b->nclients, b->nports, b->nsubs,
		  (unsigned long long)t->protocol_errors, (unsigned long long)t->ring_errors,
		  (unsigned long long)t->disconnects, (unsigned long long)t->batches_routed,
		  (unsigned long long)t->notifications_routed,
		  (unsigned long long)t->notifications_delivered,
		  (unsigned long long)t->notifications_dropped,
		  (unsigned long long)t->sync_batches, (unsigned long long)t->sync_canceled,
		  (unsigned long long)t->accepted,
		  (unsigned long long)t->refused, b->cfg.default_capacity, b->cfg.max_capacity,
		  (unsigned long long)t->limit_clients, (unsigned long long)t->limit_ports,
		  (unsigned long long)t->limit_subscriptions, (unsigned long long)t->limit_ring_bytes,
		  (unsigned long long)t->limit_key_size, (unsigned long long)t->limit_data_size,
		  (unsigned long long)t->acl_subscribe_denied,
		  (unsigned long long)t->acl_publish_denied,
		  b->cfg.lim.max_clients, b->cfg.lim.max_ports, b->cfg.lim.max_subs,
		  (unsigned long long)b->cfg.lim.max_ring_bytes, b->cfg.lim.max_key,
		  b->cfg.lim.max_data, b->cfg.acl.n);
	for (i = 0; i < b->nclients; i++) {
		if (i > 0)
			sb_printf(&s, ",");
		client_json(&s, b->clients[i]);
	}
	sb_printf(&s, "]}");
	if (s.oom) {
		free(s.p);
		return (-ENOMEM);
	}
	*out = s.p;
	return ((long)s.len);
}
