/* SPDX-License-Identifier: MIT */
/*
 * openmetrics.c - the broker's statistics document as OpenMetrics text,
 * for a Prometheus textfile collector (shmnotify stats --openmetrics).
 *
 * Every numeric member becomes a metric family: broker members
 * shmnotify_broker_NAME, client members shmnotify_client_NAME{client,pid,uid},
 * port members shmnotify_port_NAME{client,port}.  Members that count events
 * since the broker started are counters (samples end in _total); sizes,
 * occupancy and populations are gauges.  Names the broker adds later are
 * exported too, as counters unless listed below as gauges.
 */
#include <ctype.h>
#include <string.h>

#include "cli.h"

static const char *const gauges[] = {
	"pid", "clients", "ports", "subscriptions", "default_capacity", "max_capacity",
	"pub_ring_used", "pub_ring_capacity", "capacity", "used", "high_water", "sync_port",
	"uptime_s", "uptime_seconds", "waiting_for_port", "state", "pending_events",
	"last_publish_ms_ago", NULL,
};

/* identity members: labels, not metrics */
static bool is_label(const char *name)
{
	return !strcmp(name, "id") || !strcmp(name, "pid") || !strcmp(name, "uid");
}

static bool is_gauge(const char *name)
{
	for (int i = 0; gauges[i]; i++)
		if (!strcmp(gauges[i], name))
			return true;
	return false;
}

/* Metric names allow [a-zA-Z0-9_:]; anything else becomes '_'. */
static void put_name(FILE *f, const char *prefix, const char *name)
{
	fputs(prefix, f);
	for (const char *p = name; *p; p++)
		fputc(isalnum((unsigned char)*p) || *p == '_' ? *p : '_', f);
}

static const char *num(const struct json *obj, const char *name)
{
	const struct json *v = json_get(obj, name);

	return (v && v->type == JSON_NUMBER) ? v->str : "";
}

static void family_header(FILE *f, const char *prefix, const char *name)
{
	bool gauge = is_gauge(name);

	fputs("# TYPE ", f);
	put_name(f, prefix, name);
	fprintf(f, " %s\n", gauge ? "gauge" : "counter");
}

static void sample(FILE *f, const char *prefix, const char *name, const char *labels,
		   const char *value)
{
	put_name(f, prefix, name);
	if (!is_gauge(name))
		fputs("_total", f);
	fprintf(f, "%s %s\n", labels, value);
}

/* Was a numeric member `name` already emitted by an earlier element? */
static bool seen_before(const struct json *first, const struct json *upto, const char *name)
{
	for (const struct json *e = first; e && e != upto; e = e->next) {
		const struct json *v = json_get(e, name);
		if (v && v->type == JSON_NUMBER)
			return true;
	}
	return false;
}

/* One family per numeric member name found in any element of list; the
 * samples of a family stay together, as the format requires. */
static void emit_list(FILE *f, const char *prefix, const struct json *list,
		      void (*labels)(const struct json *e, char *buf, size_t len))
{
	char lab[160];

	for (const struct json *e = list ? list->child : NULL; e; e = e->next)
		for (const struct json *m = e->child; m; m = m->next) {
			if (m->type != JSON_NUMBER || is_label(m->name) ||
			    seen_before(list->child, e, m->name))
				continue;
			family_header(f, prefix, m->name);
			for (const struct json *x = e; x; x = x->next) {
				const struct json *v = json_get(x, m->name);
				if (!v || v->type != JSON_NUMBER)
					continue;
				labels(x, lab, sizeof lab);
				sample(f, prefix, m->name, lab, v->str);
			}
		}
}

static void client_labels(const struct json *c, char *buf, size_t len)
{
	snprintf(buf, len, "{client=\"%s\",pid=\"%s\",uid=\"%s\"}", num(c, "id"), num(c, "pid"),
		 num(c, "uid"));
}

/* Was numeric member `name` emitted for a port before port `upto`? */
static bool port_name_seen(const struct json *clients, const struct json *upto, const char *name)
{
	for (const struct json *c = clients->child; c; c = c->next) {
		const struct json *ports = json_get(c, "ports");
		for (const struct json *p = ports ? ports->child : NULL; p; p = p->next) {
			if (p == upto)
				return false;
			const struct json *v = json_get(p, name);
			if (v && v->type == JSON_NUMBER)
				return true;
		}
	}
	return false;
}

/* Port families span every client's ports. */
static void emit_ports(FILE *f, const struct json *clients)
{
	char lab[160];

	for (const struct json *c = clients->child; c; c = c->next) {
		const struct json *ports = json_get(c, "ports");
		for (const struct json *p = ports ? ports->child : NULL; p; p = p->next)
			for (const struct json *m = p->child; m; m = m->next) {
				if (m->type != JSON_NUMBER || is_label(m->name) ||
				    port_name_seen(clients, p, m->name))
					continue;
				family_header(f, "shmnotify_port_", m->name);
				for (const struct json *c2 = clients->child; c2; c2 = c2->next) {
					const struct json *ps = json_get(c2, "ports");
					for (const struct json *x = ps ? ps->child : NULL; x; x = x->next) {
						const struct json *v = json_get(x, m->name);
						if (!v || v->type != JSON_NUMBER)
							continue;
						snprintf(lab, sizeof lab, "{client=\"%s\",port=\"%s\"}",
							 num(c2, "id"), num(x, "id"));
						sample(f, "shmnotify_port_", m->name, lab, v->str);
					}
				}
			}
	}
}

int cli_print_openmetrics(FILE *f, const struct json *doc)
{
	const struct json *broker = json_get(doc, "broker");
	const struct json *clients = json_get(doc, "clients");

	if (broker == NULL || broker->type != JSON_OBJECT)
		return -1;
	for (const struct json *m = broker->child; m; m = m->next) {
		if (m->type != JSON_NUMBER)
			continue;
		family_header(f, "shmnotify_broker_", m->name);
		sample(f, "shmnotify_broker_", m->name, "", m->str);
	}
	if (clients && clients->type == JSON_ARRAY) {
		emit_list(f, "shmnotify_client_", clients, client_labels);
		emit_ports(f, clients);
	}
	fputs("# EOF\n", f);
	return 0;
}
