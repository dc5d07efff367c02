/* SPDX-License-Identifier: MIT */
/*
 * stats_doc.c - what every view of the broker's statistics document does
 * to it before showing it (the tables, OpenMetrics, --watch): name the
 * refusal counters for what they count, and leave out the client asking.
 */
#include <string.h>
#include <unistd.h>

#include "cli.h"

void cli_member_name(const char *name, char *buf, size_t len)
{
	/* "limit_clients 0" next to "limits.max_clients 4096" reads as a
	 * limit of 0; it counts refusals */
	if (!strncmp(name, "limit_", 6) && name[6])
		snprintf(buf, len, "refused_%s_limit", name + 6);
	else
		snprintf(buf, len, "%s", name);
}

void cli_drop_self(json_t *doc)
{
	json_t *clients = json_object_get(doc, "clients");
	json_t *broker = json_object_get(doc, "broker");
	json_t *cl, *n;
	size_t i;

	json_array_foreach(clients, i, cl) {
		if (json_integer_value(json_object_get(cl, "pid")) != (json_int_t)getpid())
			continue;
		json_array_remove(clients, i);
		n = json_object_get(broker, "clients");
		if (json_is_integer(n) && json_integer_value(n) > 0)
			json_integer_set(n, json_integer_value(n) - 1);
		return;
	}
}
