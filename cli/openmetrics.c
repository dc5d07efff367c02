/* SPDX-License-Identifier: MIT */
/*
 * openmetrics.c - the broker's statistics document as OpenMetrics text,
 * for a Prometheus textfile collector (shmnotify stats --openmetrics).
 *
 * Every numeric member becomes a metric family: broker members
 * shmnotify_broker_NAME, client members
 * shmnotify_client_NAME{client,pid,uid[,name]} (name: the one the client
 * gave with shn_set_name, when it gave one),
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

/* A number member's text, or "" when missing or not a number. */
static const char *num(const json_t *obj, const char *name, char *buf, size_t len)
{
	if (!cli_json_number(json_object_get(obj, name), buf, len))
		buf[0] = '\0';
	return buf;
}

static void family_header(FILE *f, const char *prefix, const char *name)
{
	bool gauge = is_gauge(name);

	fputs("# TYPE ", f);
	put_name(f, prefix, name);
	fprintf(f, " %s\n", gauge ? "gauge" : "counter");
}

static void sample(FILE *f, const char *prefix, const char *name, const char *labels,
		   const json_t *v)
{
	char val[64];

	cli_json_number(v, val, sizeof val);
	put_name(f, prefix, name);
	if (!is_gauge(name))
		fputs("_total", f);
	fprintf(f, "%s %s\n", labels, val);
}

/* Was a numeric member `name` already emitted by an element before `upto`? */
static bool seen_before(const json_t *list, size_t upto, const char *name)
{
	for (size_t i = 0; i < upto; i++)
		if (json_is_number(json_object_get(json_array_get(list, i), name)))
			return true;
	return false;
}

/* One family per numeric member name found in any element of list; the
 * samples of a family stay together, as the format requires. */
static void emit_list(FILE *f, const char *prefix, const json_t *list,
		      void (*labels)(const json_t *e, char *buf, size_t len))
{
	char lab[512];
	const char *name;
	const json_t *e, *m;
	size_t i, j;

	json_array_foreach(list, i, e) {
		json_object_foreach((json_t *)e, name, m) {
			if (!json_is_number(m) || is_label(name) || seen_before(list, i, name))
				continue;
			family_header(f, prefix, name);
			for (j = i; j < json_array_size(list); j++) {
				const json_t *x = json_array_get(list, j);
				const json_t *v = json_object_get(x, name);

				if (!json_is_number(v))
					continue;
				labels(x, lab, sizeof lab);
				sample(f, prefix, name, lab, v);
			}
		}
	}
}

/* A label value: backslash, double quote and newline escaped, as the text
 * format requires (the broker refuses control characters in names, but this
 * does not rely on it). */
static void label_value(char *out, size_t len, const char *s)
{
	size_t o = 0;

	for (; *s && o + 3 < len; s++) {
		if (*s == '\\' || *s == '"') {
			out[o++] = '\\';
			out[o++] = *s;
		} else if (*s == '\n') {
			out[o++] = '\\';
			out[o++] = 'n';
		} else {
			out[o++] = *s;
		}
	}
	out[o] = '\0';
}

/* client, pid, uid, and name when the client gave one (shn_set_name) */
static void client_labels(const json_t *c, char *buf, size_t len)
{
	char id[32], pid[32], uid[32], name[2 * SHN_NAME_MAX + 1];
	const char *given = json_string_value(json_object_get(c, "name"));

	snprintf(buf, len, "{client=\"%s\",pid=\"%s\",uid=\"%s\"", num(c, "id", id, sizeof id),
		 num(c, "pid", pid, sizeof pid), num(c, "uid", uid, sizeof uid));
	if (given && *given) {
		size_t n = strlen(buf);

		label_value(name, sizeof name, given);
		snprintf(buf + n, len - n, ",name=\"%s\"", name);
	}
	strncat(buf, "}", len - strlen(buf) - 1);
}

/* Was numeric member `name` emitted for a port before port `upto`? */
static bool port_name_seen(const json_t *clients, const json_t *upto, const char *name)
{
	const json_t *c, *p;
	size_t i, j;

	json_array_foreach(clients, i, c) {
		json_array_foreach(json_object_get(c, "ports"), j, p) {
			if (p == upto)
				return false;
			if (json_is_number(json_object_get(p, name)))
				return true;
		}
	}
	return false;
}

/* Port families span every client's ports. */
static void emit_ports(FILE *f, const json_t *clients)
{
	char lab[160], cid[32], pid[32];
	const json_t *c, *p, *m, *c2, *x;
	const char *name;
	size_t i, j, i2, j2;

	json_array_foreach(clients, i, c) {
		json_array_foreach(json_object_get(c, "ports"), j, p) {
			json_object_foreach((json_t *)p, name, m) {
				if (!json_is_number(m) || is_label(name) ||
				    port_name_seen(clients, p, name))
					continue;
				family_header(f, "shmnotify_port_", name);
				json_array_foreach(clients, i2, c2) {
					json_array_foreach(json_object_get(c2, "ports"), j2, x) {
						const json_t *v = json_object_get(x, name);

						if (!json_is_number(v))
							continue;
						snprintf(lab, sizeof lab, "{client=\"%s\",port=\"%s\"}",
							 num(c2, "id", cid, sizeof cid),
							 num(x, "id", pid, sizeof pid));
						sample(f, "shmnotify_port_", name, lab, v);
					}
				}
			}
		}
	}
}

int cli_print_openmetrics(FILE *f, const json_t *doc)
{
	const json_t *broker = json_object_get(doc, "broker");
	const json_t *clients = json_object_get(doc, "clients");
	const char *name;
	const json_t *m;

	if (!json_is_object(broker))
		return -1;
	json_object_foreach((json_t *)broker, name, m) {
		if (!json_is_number(m))
			continue;
		family_header(f, "shmnotify_broker_", name);
		sample(f, "shmnotify_broker_", name, "", m);
	}
	if (json_is_array(clients)) {
		emit_list(f, "shmnotify_client_", clients, client_labels);
		emit_ports(f, clients);
	}
	fputs("# EOF\n", f);
	return 0;
}
