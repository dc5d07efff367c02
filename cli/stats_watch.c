/* SPDX-License-Identifier: MIT */
/*
 * stats_watch.c - shmnotify stats --watch [SECONDS]: one line every
 * SECONDS with the broker's populations and its counters' rates per
 * second, like `redis-cli --stat`.  One connection for the whole run, so
 * the watcher is one client the whole time, and left out of the count.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"

/* the rate columns: a broker counter each, "refused" summing every refusal */
static const struct {
	const char *title, *member;
} rates[] = {
	{ "batches/s", "batches_routed" },
	{ "routed/s", "notifications_routed" },
	{ "delivered/s", "notifications_delivered" },
	{ "dropped/s", "notifications_dropped" },
	{ "refused/s", NULL },
};
#define NRATES (sizeof rates / sizeof rates[0])

struct sample {
	bool ok;
	double t;                 /* CLOCK_MONOTONIC seconds */
	long long clients, ports, subs;
	double v[NRATES];
};

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static double member(const json_t *o, const char *name)
{
	const json_t *v = json_object_get(o, name);

	return json_is_integer(v) ? (double)json_integer_value(v) :
	       json_is_real(v)    ? json_real_value(v) : 0;
}

/* every refusal the broker counts: connections, [limits] caps, [acl] */
static double refusals(const json_t *b)
{
	const char *name;
	const json_t *v;
	double sum = 0;

	json_object_foreach((json_t *)b, name, v) {
		if (!strcmp(name, "refused") || !strncmp(name, "limit_", 6) ||
		    (!strncmp(name, "acl_", 4) && strstr(name, "_denied")))
			sum += member(b, name);
	}
	return sum;
}

static int take(shn_client *c, struct sample *s)
{
	char *doc = NULL;
	json_t *tree, *b;
	int rc;

	memset(s, 0, sizeof *s);
	rc = shn_stats_json(c, &doc);
	s->t = now_s();
	if (rc < 0)
		return rc;
	tree = json_loads(doc, 0, NULL);
	free(doc);
	b = json_object_get(tree, "broker");
	if (!json_is_object(b)) {
		json_decref(tree);
		return -EPROTO;
	}
	cli_drop_self(tree);
	s->clients = (long long)member(b, "clients");
	s->ports = (long long)member(b, "ports");
	s->subs = (long long)member(b, "subscriptions");
	for (size_t i = 0; i < NRATES; i++)
		s->v[i] = rates[i].member ? member(b, rates[i].member) : refusals(b);
	s->ok = true;
	json_decref(tree);
	return 0;
}

static void header(void)
{
	printf("%-8s  %7s  %5s  %6s", "time", "clients", "ports", "subs");
	for (size_t i = 0; i < NRATES; i++)
		printf("  %11s", rates[i].title);
	putchar('\n');
}

static void sleep_s(double s)
{
	struct timespec ts = { .tv_sec = (time_t)s,
			       .tv_nsec = (long)((s - (double)(time_t)s) * 1e9) };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

int cli_stats_watch(shn_client *c, double interval_s, uint64_t count)
{
	struct sample prev, cur;
	uint64_t rows = 0;
	int rc;

	rc = take(c, &prev);
	if (rc < 0) {
		cli_err("cannot get the broker's statistics: %s", shn_strerror(rc));
		shn_disconnect(c);
		return EXIT_RUNTIME;
	}
	while (!count || rows < count) {
		char when[16];
		time_t t;

		sleep_s(interval_s);
		rc = take(c, &cur);
		if (rows % 20 == 0)
			header();
		t = time(NULL);
		strftime(when, sizeof when, "%H:%M:%S", localtime(&t));
		if (rc < 0) {
			printf("%-8s  (no statistics: %s; the library reconnects)\n", when,
			       shn_strerror(rc));
		} else {
			double dt = prev.ok ? cur.t - prev.t : 0;

			printf("%-8s  %7lld  %5lld  %6lld", when, cur.clients, cur.ports, cur.subs);
			for (size_t i = 0; i < NRATES; i++) {
				/* a counter that went down: another broker */
				double d = cur.v[i] >= prev.v[i] ? cur.v[i] - prev.v[i] : cur.v[i];

				if (dt > 0)
					printf("  %11.1f", d / dt);
				else
					printf("  %11s", "-");
			}
			putchar('\n');
		}
		rows++;
		if (fflush(stdout) == EOF) {
			shn_disconnect(c);
			return EXIT_RUNTIME;
		}
		prev = cur;
	}
	shn_disconnect(c);
	return 0;
}
