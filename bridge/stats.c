/* SPDX-License-Identifier: MIT */
/*
 * stats.c - the bridge's counters as one JSON object in stats-file, built
 * with jansson as the broker's stats are, rewritten every second and at
 * exit (written to FILE.tmp, then renamed: a reader never sees half a
 * document).  `shmnotify stats --bridge FILE` prints it;
 * docs/multi-host.md lists the members.
 */
#define _GNU_SOURCE
#include "bridge.h"

#include <errno.h>
#include <jansson.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "util/utf8.h"

/* jansson's integers are signed: a counter past INT64_MAX is clamped. */
static json_int_t ju(uint64_t v)
{
	return (v > (uint64_t)INT64_MAX ? (json_int_t)INT64_MAX : (json_int_t)v);
}

/* The counters, in the order the file lists them. */
static const struct {
	const char *name;
	size_t off;
} counters[] = {
#define C(m) { #m, offsetof(struct br_stats, m) }
	C(forwarded), C(forwarded_batches), C(publish_errors), C(received),
	C(received_batches), C(gaps), C(lost), C(duplicates), C(rejected), C(filtered),
	C(local_refused), C(local_overflow), C(nats_disconnects), C(nats_reconnects),
	C(nats_errors), C(local_reconnects),
#undef C
};

/* The document {"bridge":{...}}, or NULL when out of memory. */
static json_t *stats_json(struct bridge *b)
{
	char url[256];
	json_t *o, *doc;

	pthread_mutex_lock(&b->url_lock);
	snprintf(url, sizeof(url), "%s", b->nats_url);
	pthread_mutex_unlock(&b->url_lock);
	if (!shu_utf8_valid(url, strlen(url)))   /* jansson takes UTF-8 only */
		for (char *p = url; *p; p++)
			if ((unsigned char)*p >= 0x80)
				*p = '?';
	o = json_pack("{s:s, s:i, s:s, s:I, s:b, s:b, s:s, s:s, s:s}",
		      "node", b->cfg.node, "pid", (int)b->pid,
		      "mode", b->cfg.mode == BR_JETSTREAM ? "jetstream" : "core",
		      "uptime_seconds", (json_int_t)((br_now_ms() - b->started_ms) / 1000),
		      "stopped", b->stop != 0, "ready", atomic_load(&b->ready),
		      "nats", br_nats_state_name(atomic_load(&b->nats_state)), "nats_url", url,
		      "local", atomic_load(&b->local_up) ? "connected" : "away");
	if (o == NULL)
		return (NULL);
	for (size_t i = 0; i < sizeof(counters) / sizeof(counters[0]); i++) {
		const _Atomic uint64_t *c = (const void *)((const char *)&b->st + counters[i].off);

		if (json_object_set_new(o, counters[i].name, json_integer(ju(atomic_load(c)))) < 0) {
			json_decref(o);
			return (NULL);
		}
	}
	doc = json_object();
	if (doc == NULL || json_object_set_new(doc, "bridge", o) < 0) {
		json_decref(doc);   /* set_new dropped o when it failed */
		if (doc == NULL)
			json_decref(o);
		return (NULL);
	}
	return (doc);
}

int br_stats_write(struct bridge *b)
{
	char tmp[BR_PATH_MAX + 8];
	json_t *doc;
	FILE *f;
	int err = 0;

	if (b->cfg.stats_file[0] == '\0')
		return (0);
	doc = stats_json(b);
	if (doc == NULL)
		return (-ENOMEM);
	snprintf(tmp, sizeof(tmp), "%s.tmp", b->cfg.stats_file);
	f = fopen(tmp, "we");
	if (f == NULL) {
		err = -errno;
		json_decref(doc);
		return (err);
	}
	if (json_dumpf(doc, f, JSON_COMPACT | JSON_PRESERVE_ORDER) < 0 || fputc('\n', f) == EOF ||
	    fflush(f) != 0 || ferror(f))
		err = -EIO;
	json_decref(doc);
	if (fclose(f) != 0 && err == 0)
		err = -errno;
	if (err == 0 && rename(tmp, b->cfg.stats_file) < 0)
		err = -errno;
	if (err < 0)
		unlink(tmp);
	return (err);
}
