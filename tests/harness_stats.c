/* SPDX-License-Identifier: MIT */
/*
 * harness_stats.c - see harness_stats.h.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>

#include "harness.h"
#include "harness_stats.h"

json_t *hs_stats_doc(shn_client *c)
{
	char *js = h_stats(c);
	json_error_t err;
	json_t *doc = json_loads(js, 0, &err);

	if (doc == NULL)
		fail_msg("stats are not JSON (%s at byte %d): %s", err.text, err.position, js);
	free(js);
	return doc;
}

long long hs_client_stat(shn_client *c, pid_t pid, const char *field)
{
	json_t *doc = hs_stats_doc(c), *cl;
	long long v = -1;
	size_t i;

	json_array_foreach(json_object_get(doc, "clients"), i, cl) {
		const json_t *p = json_object_get(cl, "pid"), *f = json_object_get(cl, field);

		if (json_is_integer(p) && json_integer_value(p) == pid) {
			if (!json_is_integer(f))
				fail_msg("client %d has no integer \"%s\" in the stats", (int)pid,
					 field);
			v = json_integer_value(f);
		}
	}
	json_decref(doc);
	return v;
}

long long hs_broker_stat(shn_client *c, const char *field)
{
	json_t *doc = hs_stats_doc(c);
	const json_t *f = json_object_get(json_object_get(doc, "broker"), field);
	long long v;

	if (!json_is_integer(f))
		fail_msg("no integer broker.%s in the stats", field);
	v = json_integer_value(f);
	json_decref(doc);
	return v;
}
