/* SPDX-License-Identifier: MIT */
/*
 * stats.c - the bridge's counters as one JSON object in stats-file,
 * rewritten every second and at exit (written to FILE.tmp, then renamed:
 * a reader never sees half a document).  `shmnotify stats --bridge FILE`
 * prints it; docs/multi-host.md lists the members.
 */
#define _GNU_SOURCE
#include "bridge.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int br_stats_write(struct bridge *b)
{
	char tmp[BR_PATH_MAX + 8], url[256];
	const struct br_stats *s = &b->st;
	FILE *f;
	int err = 0;

	if (b->cfg.stats_file[0] == '\0')
		return (0);
	snprintf(tmp, sizeof(tmp), "%s.tmp", b->cfg.stats_file);
	f = fopen(tmp, "w");
	if (f == NULL)
		return (-errno);
	pthread_mutex_lock(&b->url_lock);
	snprintf(url, sizeof(url), "%s", b->nats_url);
	pthread_mutex_unlock(&b->url_lock);
	/* node and url are token characters and a URL we were configured
	 * with: nothing in them needs JSON escaping but '"' and '\\' */
	for (char *p = url; *p; p++)
		if (*p == '"' || *p == '\\' || (unsigned char)*p < 0x20)
			*p = '?';
	fprintf(f,
		"{\"bridge\":{\"node\":\"%s\",\"pid\":%d,\"mode\":\"%s\",\"uptime_seconds\":%lld,"
		"\"stopped\":%s,\"ready\":%s,\"nats\":\"%s\",\"nats_url\":\"%s\",\"local\":\"%s\","
		"\"forwarded\":%llu,\"forwarded_batches\":%llu,\"publish_errors\":%llu,"
		"\"received\":%llu,\"received_batches\":%llu,\"gaps\":%llu,\"lost\":%llu,"
		"\"duplicates\":%llu,\"rejected\":%llu,\"filtered\":%llu,\"local_refused\":%llu,"
		"\"local_overflow\":%llu,\"nats_disconnects\":%llu,\"nats_reconnects\":%llu,"
		"\"nats_errors\":%llu,\"local_reconnects\":%llu}}\n",
		b->cfg.node, (int)b->pid, b->cfg.mode == BR_JETSTREAM ? "jetstream" : "core",
		(long long)((br_now_ms() - b->started_ms) / 1000), b->stop ? "true" : "false",
		atomic_load(&b->ready) ? "true" : "false",
		br_nats_state_name(atomic_load(&b->nats_state)), url,
		atomic_load(&b->local_up) ? "connected" : "away",
		(unsigned long long)s->forwarded, (unsigned long long)s->forwarded_batches,
		(unsigned long long)s->publish_errors, (unsigned long long)s->received,
		(unsigned long long)s->received_batches, (unsigned long long)s->gaps,
		(unsigned long long)s->lost, (unsigned long long)s->duplicates,
		(unsigned long long)s->rejected, (unsigned long long)s->filtered,
		(unsigned long long)s->local_refused, (unsigned long long)s->local_overflow,
		(unsigned long long)s->nats_disconnects, (unsigned long long)s->nats_reconnects,
		(unsigned long long)s->nats_errors, (unsigned long long)s->local_reconnects);
	if (fflush(f) != 0 || ferror(f))
		err = -EIO;
	if (fclose(f) != 0 && err == 0)
		err = -errno;
	if (err == 0 && rename(tmp, b->cfg.stats_file) < 0)
		err = -errno;
	if (err < 0)
		unlink(tmp);
	return (err);
}
