/* SPDX-License-Identifier: MIT */
/*
 * bridge_stats.c - shmnotify stats --bridge FILE (see bridge_stats.h).
 *
 * The bridge writes {"bridge":{...}} (bridge/stats.c; members listed in
 * docs/multi-host.md).  Every member is printed, in the file's order, so a
 * counter added there shows up here without a change.
 */
#include "bridge_stats.h"

#include <errno.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>

#include "cli.h"

int cli_bridge_stats(const char *path, bool json)
{
	json_error_t jerr;
	json_t *doc, *br, *v;
	const char *name;
	struct stat st;
	size_t w = 0;

	doc = json_load_file(path, 0, &jerr);
	if (doc == NULL) {
		cli_err("cannot read the bridge's stats file %s: %s (is stats-file set in the "
			"bridge's [bridge] section, and the bridge running?)", path, jerr.text);
		return EXIT_RUNTIME;
	}
	br = json_object_get(doc, "bridge");
	if (!json_is_object(br)) {
		cli_err("%s is not a shmnotify-bridge stats file (no \"bridge\" object)", path);
		json_decref(doc);
		return EXIT_RUNTIME;
	}
	if (json) {
		json_dumpf(doc, stdout, JSON_COMPACT | JSON_PRESERVE_ORDER);
		putchar('\n');
		json_decref(doc);
		return fflush(stdout) == EOF ? EXIT_RUNTIME : 0;
	}
	json_object_foreach(br, name, v)
		if (strlen(name) > w)
			w = strlen(name);
	printf("bridge %s (%s)\n", path,
	       stat(path, &st) == 0 && time(NULL) - st.st_mtime > 5
		       ? "stale: not rewritten for more than 5 s, is the bridge running?"
		       : "current");
	json_object_foreach(br, name, v) {
		char buf[256];

		if (json_is_string(v))
			snprintf(buf, sizeof buf, "%s", json_string_value(v));
		else if (json_is_boolean(v))
			snprintf(buf, sizeof buf, "%s", json_is_true(v) ? "true" : "false");
		else if (!cli_json_number(v, buf, sizeof buf))
			snprintf(buf, sizeof buf, "-");
		for (char *p = buf; *p; p++)
			if ((unsigned char)*p < 0x20 || *p == 0x7f)
				*p = '?';   /* a file anyone could have written */
		printf("  %-*s  %s\n", (int)w, name, buf);
	}
	json_decref(doc);
	return fflush(stdout) == EOF ? EXIT_RUNTIME : 0;
}
