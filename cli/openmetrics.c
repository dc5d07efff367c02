/* SPDX-License-Identifier: MIT */
/*
 * openmetrics.c - the broker's statistics document as OpenMetrics text,
 * for a Prometheus textfile collector (shmnotify stats --openmetrics).
 *
 * Every numeric or boolean member becomes a metric family with a # TYPE
 * and a # HELP line: broker members shmnotify_broker_NAME (a nested object
 * such as "limits" gives shmnotify_broker_limits_NAME), client members
 * shmnotify_client_NAME{client,uid[,name]} (name: the one the client gave
 * with shn_set_name, when it gave one), port members
 * shmnotify_port_NAME{client,port}.  The broker's strings (its I/O
 * backend, the direct path's mode) are the labels of the info family
 * shmnotify_broker_info.  Members that count events since the broker
 * started are counters (samples end in _total); sizes, occupancy,
 * populations and configured values are gauges.  A refusal counter
 * limit_X is named refused_X_limit, as in the human table.  No label
 * carries a pid: it would start a new series every run.  Names the broker
 * adds later are exported too, as counters, with a generic help text.
 */
#include <ctype.h>
#include <string.h>

#include "cli.h"

struct family {
	const char *name;   /* after flattening and cli_member_name() */
	bool gauge;
	const char *help;
};

static const struct family broker_families[] = {
	{ "pid", true, "Process id of the broker" },
	{ "uptime_seconds", true, "Seconds since the broker started" },
	{ "clients", true, "Clients connected (this stats client not counted)" },
	{ "ports", true, "Ports open" },
	{ "subscriptions", true, "Subscriptions active" },
	{ "protocol_errors", false, "Messages that broke the protocol" },
	{ "ring_errors", false, "Malformed records found in publish rings" },
	{ "disconnects", false, "Clients disconnected by the broker" },
	{ "batches_routed", false, "Batches routed" },
	{ "notifications_routed", false, "Notifications routed" },
	{ "notifications_delivered", false, "Notifications written into ports' rings" },
	{ "notifications_dropped", false, "Notifications lost because a port was full" },
	{ "sync_batches", false, "Synchronous batches finished, canceled ones included" },
	{ "sync_canceled", false, "Synchronous batches canceled by a sink" },
	{ "alloc_failures", false, "Allocations that failed while routing" },
	{ "connections", false, "Connections accepted" },
	{ "refused", false, "Connections refused" },
	{ "default_capacity", true, "Configured default port ring capacity in bytes" },
	{ "max_capacity", true, "Configured largest port ring capacity in bytes" },
	{ "refused_clients_limit", false, "Connections refused by limits.max_clients" },
	{ "refused_ports_limit", false, "Port opens refused by limits.max_ports" },
	{ "refused_subscriptions_limit", false,
	  "Subscriptions refused by limits.max_subscriptions" },
	{ "refused_ring_bytes_limit", false, "Ring allocations refused by limits.max_ring_bytes" },
	{ "refused_key_size_limit", false, "Requests refused by limits.max_key_size" },
	{ "refused_data_size_limit", false, "Requests refused by limits.max_data_size" },
	{ "acl_subscribe_denied", false, "Subscriptions refused by an [acl] rule" },
	{ "acl_publish_denied", false, "Publishes refused by an [acl] rule" },
	{ "limits_max_clients", true, "Configured limit: clients" },
	{ "limits_max_ports", true, "Configured limit: ports" },
	{ "limits_max_subscriptions", true, "Configured limit: subscriptions" },
	{ "limits_max_ring_bytes", true, "Configured limit: ring bytes" },
	{ "limits_max_key_size", true, "Configured limit: key bytes" },
	{ "limits_max_data_size", true, "Configured limit: data bytes" },
	{ "acl_rules", true, "Configured [acl] rules" },
	{ "direct_rings", true, "Direct rings open" },
	{ "direct_bytes", true, "Bytes of the direct rings open" },
	{ "direct_rings_opened", false, "Direct rings opened" },
	{ "direct_refused", false, "Direct ring offers turned down by a [limits] cap" },
	{ "direct_faults", false, "Direct path faults" },
	{ "direct_clients", true, "Clients holding the direct filter table" },
	{ "direct_generation", true, "Generation of the direct filter table" },
	{ "direct_table_builds", false, "Direct filter table builds" },
	{ "direct_table_disabled", true, "1 while the direct filter table is disabled" },
	{ "direct_table_disabled_builds", false,
	  "Direct filter table builds that found more filters than max_filters" },
	{ "direct_max_filters", true, "Configured most filters of the direct table" },
	{ NULL, false, NULL },
};

static const struct family client_families[] = {
	{ "published", false, "Notifications the client published" },
	{ "batches", false, "Batches the client published" },
	{ "pub_ring_used", true, "Bytes waiting in the client's publish ring" },
	{ "pub_ring_capacity", true, "Capacity of the client's publish ring in bytes" },
	{ "room_wakeups", false, "Times the client was woken for publish ring room" },
	{ "waiting_for_port", true, "Ports the client's publishing waits on" },
	{ "sync_port", true, "Port the client's synchronous batch waits on (0: none)" },
	{ "acl_denied", false, "The client's requests refused by an [acl] rule" },
	{ "last_publish_ms_ago", true, "Milliseconds since the client's last batch (-1: none)" },
	{ "direct", true, "1 once the client holds the direct filter table" },
	{ "direct_fanout", true, "Most ports a batch of the client is written to directly (0: no direct path)" },
	{ "direct_rings", true, "Direct rings the client writes" },
	{ "direct_routed", false, "Notifications the client says it wrote to direct rings" },
	{ "direct_dropped", false, "Notifications the client says it dropped on direct rings" },
	{ NULL, false, NULL },
};

static const struct family port_families[] = {
	{ "capacity", true, "Capacity of the port's ring in bytes" },
	{ "used", true, "Bytes waiting in the port's ring" },
	{ "high_water", true, "Most bytes seen waiting in the port's ring" },
	{ "delivered", false, "Notifications written into the port's ring" },
	{ "dropped", false, "Notifications lost because the port was full" },
	{ "subscriptions", true, "Subscriptions of the port" },
	{ "pending_events", true, "System events waiting for room in the port's ring" },
	{ "direct_rings", true, "Direct rings the port reads" },
	{ "direct_delivered", false, "Notifications the port's reader took from direct rings" },
	{ "direct_late", false, "Direct notifications the port's reader found late" },
	{ NULL, false, NULL },
};

static const struct family *find(const struct family *t, const char *name)
{
	for (; t->name; t++)
		if (!strcmp(t->name, name))
			return t;
	return NULL;
}

/* identity members: labels, not metrics; "pid" of a client would start a
 * new series at every run of it, so it is neither */
static bool is_label(const char *name)
{
	return !strcmp(name, "id") || !strcmp(name, "pid") || !strcmp(name, "uid");
}

static bool is_sample(const json_t *v)
{
	return json_is_number(v) || json_is_boolean(v);
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

static bool gauge(const struct family *t, const char *name)
{
	const struct family *fam = find(t, name);

	return fam && fam->gauge;
}

static void family_header(FILE *f, const struct family *t, const char *prefix,
			  const char *name)
{
	const struct family *fam = find(t, name);

	fputs("# TYPE ", f);
	put_name(f, prefix, name);
	fprintf(f, " %s\n# HELP ", fam && fam->gauge ? "gauge" : "counter");
	put_name(f, prefix, name);
	if (fam)
		fprintf(f, " %s\n", fam->help);
	else   /* a member this command does not know yet: its name */
		fprintf(f, " The broker's statistics member %s\n", name);
}

static void sample(FILE *f, const struct family *t, const char *prefix, const char *name,
		   const char *labels, const json_t *v)
{
	char val[64];

	if (json_is_boolean(v))
		snprintf(val, sizeof val, "%d", json_is_true(v) ? 1 : 0);
	else
		cli_json_number(v, val, sizeof val);
	put_name(f, prefix, name);
	if (!gauge(t, name))
		fputs("_total", f);
	fprintf(f, "%s %s\n", labels, val);
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

/* ---- the broker object ------------------------------------------------ */

/* NAME, or OUTER_NAME for a member of a nested object (not doubled when
 * NAME already starts with OUTER_), then as the human table names it. */
static void broker_name(const char *outer, const char *name, char *buf, size_t len)
{
	char flat[128];
	size_t ol = outer ? strlen(outer) : 0;

	if (outer && !(strncmp(name, outer, ol) == 0 && name[ol] == '_'))
		snprintf(flat, sizeof flat, "%s_%s", outer, name);
	else
		snprintf(flat, sizeof flat, "%s", name);
	cli_member_name(flat, buf, len);
}

static void emit_broker_object(FILE *f, const json_t *obj, const char *outer)
{
	const char *name;
	const json_t *m;
	char full[160];

	json_object_foreach((json_t *)obj, name, m) {
		if (json_is_object(m) && !outer) {
			emit_broker_object(f, m, name);
			continue;
		}
		if (!is_sample(m))
			continue;
		broker_name(outer, name, full, sizeof full);
		family_header(f, broker_families, "shmnotify_broker_", full);
		sample(f, broker_families, "shmnotify_broker_", full, "", m);
	}
}

/* The broker's strings: io, direct.mode (as direct_mode). */
static void info_labels(const json_t *obj, const char *outer, char *buf, size_t len)
{
	const char *name;
	const json_t *m;
	char full[160], val[256];

	json_object_foreach((json_t *)obj, name, m) {
		size_t n = strlen(buf);

		if (json_is_object(m) && !outer) {
			info_labels(m, name, buf, len);
			continue;
		}
		if (!json_is_string(m))
			continue;
		broker_name(outer, name, full, sizeof full);
		label_value(val, sizeof val, json_string_value(m));
		snprintf(buf + n, len - n, "%s%s=\"%s\"", n ? "," : "", full, val);
	}
}

static void emit_info(FILE *f, const json_t *broker)
{
	char labels[512] = "";

	info_labels(broker, NULL, labels, sizeof labels);
	if (!labels[0])
		return;
	fputs("# TYPE shmnotify_broker info\n"
	      "# HELP shmnotify_broker The broker's I/O backend and direct path mode\n", f);
	fprintf(f, "shmnotify_broker_info{%s} 1\n", labels);
}

/* ---- clients and ports ------------------------------------------------- */

/* Was a sample member `name` already emitted by an element before `upto`? */
static bool seen_before(const json_t *list, size_t upto, const char *name)
{
	for (size_t i = 0; i < upto; i++)
		if (is_sample(json_object_get(json_array_get(list, i), name)))
			return true;
	return false;
}

/* client, uid, and name when the client gave one (shn_set_name) */
static void client_labels(const json_t *c, char *buf, size_t len)
{
	char id[32], uid[32], name[2 * SHN_NAME_MAX + 1];
	const char *given = json_string_value(json_object_get(c, "name"));

	snprintf(buf, len, "{client=\"%s\",uid=\"%s\"", num(c, "id", id, sizeof id),
		 num(c, "uid", uid, sizeof uid));
	if (given && *given) {
		size_t n = strlen(buf);

		label_value(name, sizeof name, given);
		snprintf(buf + n, len - n, ",name=\"%s\"", name);
	}
	strncat(buf, "}", len - strlen(buf) - 1);
}

/* One family per sample member name found in any client; the samples of a
 * family stay together, as the format requires. */
static void emit_clients(FILE *f, const json_t *list)
{
	char lab[512];
	const char *name;
	const json_t *e, *m;
	size_t i, j;

	json_array_foreach(list, i, e) {
		json_object_foreach((json_t *)e, name, m) {
			if (!is_sample(m) || is_label(name) || seen_before(list, i, name))
				continue;
			family_header(f, client_families, "shmnotify_client_", name);
			for (j = i; j < json_array_size(list); j++) {
				const json_t *x = json_array_get(list, j);
				const json_t *v = json_object_get(x, name);

				if (!is_sample(v))
					continue;
				client_labels(x, lab, sizeof lab);
				sample(f, client_families, "shmnotify_client_", name, lab, v);
			}
		}
	}
}

/* Was sample member `name` emitted for a port before port `upto`? */
static bool port_name_seen(const json_t *clients, const json_t *upto, const char *name)
{
	const json_t *c, *p;
	size_t i, j;

	json_array_foreach(clients, i, c) {
		json_array_foreach(json_object_get(c, "ports"), j, p) {
			if (p == upto)
				return false;
			if (is_sample(json_object_get(p, name)))
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
				if (!is_sample(m) || is_label(name) ||
				    port_name_seen(clients, p, name))
					continue;
				family_header(f, port_families, "shmnotify_port_", name);
				json_array_foreach(clients, i2, c2) {
					json_array_foreach(json_object_get(c2, "ports"), j2, x) {
						const json_t *v = json_object_get(x, name);

						if (!is_sample(v))
							continue;
						snprintf(lab, sizeof lab, "{client=\"%s\",port=\"%s\"}",
							 num(c2, "id", cid, sizeof cid),
							 num(x, "id", pid, sizeof pid));
						sample(f, port_families, "shmnotify_port_", name, lab,
						       v);
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

	if (!json_is_object(broker))
		return -1;
	emit_info(f, broker);
	emit_broker_object(f, broker, NULL);
	if (json_is_array(clients)) {
		emit_clients(f, clients);
		emit_ports(f, clients);
	}
	fputs("# EOF\n", f);
	return 0;
}
