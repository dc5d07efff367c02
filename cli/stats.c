/* SPDX-License-Identifier: MIT */
/*
 * stats.c - shmnotify stats [--socket PATH] [--json | --openmetrics |
 *           --watch [SECONDS]] [--bridge FILE] [--subscriptions]
 *
 * Asks the broker for its statistics document (shn_stats_json) and prints
 * it as is (--json) or as tables.  The document looks like
 *   {"broker":{...counters...},
 *    "clients":[{"id","pid","uid","name","published","batches","pub_ring_used",
 *                "pub_ring_capacity","ports":[{"id","capacity","used",
 *                "delivered","dropped","subscriptions"}]}]}
 * and is parsed with jansson.  Members this file does not know are ignored
 * (broker counters are all printed, whatever their names); missing ones
 * print as "-".  The tables, OpenMetrics and --watch leave this command's
 * own client out (stats_doc.c); --json prints the document as it came.
 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bridge_stats.h"
#include "cli.h"

static const char usage[] = "usage: shmnotify stats [--socket PATH] [--json | --openmetrics | "
			    "--watch [SECONDS] [--count N]] [--bridge FILE] | "
			    "[--socket PATH] --subscriptions [--json]";

static void help(void)
{
	printf("%s\n"
	       "\n"
	       "Show the broker's counters, its clients and their ports.\n"
	       "\n"
	       "  -s, --socket PATH   the broker's socket (default: $SHMNOTIFY_SOCKET, then\n"
	       "                      the per-user default)\n"
	       "  -j, --json          print the broker's JSON document as is (this stats\n"
	       "                      client included)\n"
	       "  -m, --openmetrics   print OpenMetrics text (for a Prometheus textfile\n"
	       "                      collector): counters end in _total, # EOF last\n"
	       "  -w, --watch [SECONDS]  a live view: a line every SECONDS (default 1,\n"
	       "                      fractions allowed) with clients, ports, subscriptions\n"
	       "                      and rates per second, like `redis-cli --stat`\n"
	       "  -n, --count N       with --watch: stop after N lines\n"
	       "  -b, --bridge FILE   show a shmnotify-bridge's counters from its stats-file\n"
	       "                      instead (with --json: the file as is)\n"
	       "      --subscriptions which keys and prefixes are watched instead: per key or\n"
	       "                      prefix how many ports and filters watch it, then every\n"
	       "                      filter (exact, prefix or any-key) with its client, port,\n"
	       "                      conn and events (like Redis' PUBSUB NUMSUB); with\n"
	       "                      --json: the document with its \"subscriptions\" section.\n"
	       "                      At most %u entries per list, the totals counted all the\n"
	       "                      same\n"
	       "  -h, --help          show this help\n"
	       "\n"
	       "The tables and OpenMetrics leave this command's own client out. A refusal\n"
	       "counter is named for what it counts: refused_clients_limit is the number\n"
	       "of connections refused by limits.max_clients.\n",
	       usage, CLI_SUBS_MAX);
}

/* ---- a table whose columns size themselves ---------------------------- */

/* A cell holds a number or a client's name (shn_set_name). */
#define CELL (SHN_NAME_MAX + 16)
#define MAX_COLS 8

struct table {
	int ncols;
	size_t nrows, cap;
	char (*cells)[MAX_COLS][CELL];
	bool oom;
};

static void table_add(struct table *t, const char *const *vals)
{
	int i;

	if (t->oom)
		return;
	if (t->nrows == t->cap) {
		size_t ncap = t->cap ? t->cap * 2 : 16;
		void *n = realloc(t->cells, ncap * sizeof *t->cells);

		if (!n) {
			t->oom = true;
			return;
		}
		t->cells = n;
		t->cap = ncap;
	}
	for (i = 0; i < t->ncols; i++)
		snprintf(t->cells[t->nrows][i], CELL, "%s", vals[i]);
	t->nrows++;
}

static void table_print(const struct table *t, const char *indent)
{
	size_t w[MAX_COLS] = { 0 }, r;
	int i;

	for (r = 0; r < t->nrows; r++)
		for (i = 0; i < t->ncols; i++)
			if (cli_text_width(t->cells[r][i]) > w[i])
				w[i] = cli_text_width(t->cells[r][i]);
	for (r = 0; r < t->nrows; r++) {
		fputs(indent, stdout);
		for (i = 0; i < t->ncols; i++) {
			if (i == t->ncols - 1)
				printf("%s\n", t->cells[r][i]);
			else
				printf("%s%*s  ", t->cells[r][i],
				       (int)(w[i] - cli_text_width(t->cells[r][i])), "");
		}
	}
}

/* ---- values ----------------------------------------------------------- */

static void value_text(const json_t *v, char *buf, size_t len)
{
	if (!v) {
		snprintf(buf, len, "-");
		return;
	}
	switch (json_typeof(v)) {
	case JSON_NULL:    snprintf(buf, len, "null"); break;
	case JSON_TRUE:    snprintf(buf, len, "true"); break;
	case JSON_FALSE:   snprintf(buf, len, "false"); break;
	case JSON_INTEGER:
	case JSON_REAL:    cli_json_number(v, buf, len); break;
	case JSON_STRING:  snprintf(buf, len, "%s", json_string_value(v)); break;
	case JSON_ARRAY:   snprintf(buf, len, "[...]"); break;
	case JSON_OBJECT:  snprintf(buf, len, "{...}"); break;
	}
}

static void member_text(const json_t *obj, const char *name, char *buf, size_t len)
{
	value_text(json_object_get(obj, name), buf, len);
}

/* Every scalar member of obj, nested objects as "outer.inner". */
static void add_counters(struct table *t, const json_t *obj, const char *prefix)
{
	const char *key;
	const json_t *c;
	char name[2 * CELL], val[CELL];

	json_object_foreach((json_t *)obj, key, c) {
		char shown[CELL];

		cli_member_name(key, shown, sizeof shown);
		snprintf(name, sizeof name, "%s%s", prefix, *prefix ? key : shown);
		if (json_is_object(c)) {
			char sub[2 * CELL + 2];

			snprintf(sub, sizeof sub, "%s.", name);
			add_counters(t, c, sub);
			continue;
		}
		if (json_is_array(c))
			snprintf(val, sizeof val, "[%zu items]", json_array_size(c));
		else
			value_text(c, val, sizeof val);
		table_add(t, (const char *const[]){ name, val });
	}
}

static int print_tables(const json_t *doc, const char *socket_shown)
{
	const json_t *broker = json_object_get(doc, "broker");
	const json_t *clients = json_object_get(doc, "clients");
	const json_t *cl, *po;
	struct table bt = { .ncols = 2 };
	struct table ct = { .ncols = 7 };
	struct table pt = { .ncols = 7 };
	size_t nclients = 0, nports = 0, i, j;
	int status = 0;

	printf("broker at %s\n", socket_shown);
	if (json_is_object(broker)) {
		add_counters(&bt, broker, "");
		table_print(&bt, "  ");
	} else {
		printf("  (no broker counters in the document)\n");
	}

	table_add(&ct, (const char *const[]){ "ID", "PID", "UID", "NAME", "PUBLISHED", "BATCHES",
					      "PUB RING USED/CAPACITY" });
	table_add(&pt, (const char *const[]){ "CLIENT", "PORT", "CAPACITY", "USED", "DELIVERED",
					      "DROPPED", "SUBSCRIPTIONS" });
	json_array_foreach(clients, i, cl) {
		char id[CELL], pid[CELL], uid[CELL], name[CELL], pub[CELL], bat[CELL];
		char used[CELL / 2], cap[CELL / 2], ring[CELL];

		if (!json_is_object(cl))
			continue;
		nclients++;
		member_text(cl, "id", id, sizeof id);
		member_text(cl, "pid", pid, sizeof pid);
		member_text(cl, "uid", uid, sizeof uid);
		cli_client_name(cl, name, sizeof name);
		member_text(cl, "published", pub, sizeof pub);
		member_text(cl, "batches", bat, sizeof bat);
		member_text(cl, "pub_ring_used", used, sizeof used);
		member_text(cl, "pub_ring_capacity", cap, sizeof cap);
		snprintf(ring, sizeof ring, "%s/%s", used, cap);
		table_add(&ct, (const char *const[]){ id, pid, uid, name, pub, bat, ring });

		json_array_foreach(json_object_get(cl, "ports"), j, po) {
			char pid2[CELL], pcap[CELL], pused[CELL], del[CELL], drop[CELL], subs[CELL];

			if (!json_is_object(po))
				continue;
			nports++;
			member_text(po, "id", pid2, sizeof pid2);
			member_text(po, "capacity", pcap, sizeof pcap);
			member_text(po, "used", pused, sizeof pused);
			member_text(po, "delivered", del, sizeof del);
			member_text(po, "dropped", drop, sizeof drop);
			member_text(po, "subscriptions", subs, sizeof subs);
			table_add(&pt, (const char *const[]){ id, pid2, pcap, pused, del, drop, subs });
		}
	}
	if (bt.oom || ct.oom || pt.oom) {
		cli_err("out of memory while laying out the tables; see the statistics with "
			"`shmnotify stats --json`");
		status = EXIT_RUNTIME;
		goto out;
	}
	printf("\nclients: %zu\n", nclients);
	if (nclients)
		table_print(&ct, "  ");
	printf("\nports: %zu\n", nports);
	if (nports)
		table_print(&pt, "  ");
	if (fflush(stdout) == EOF)
		status = EXIT_RUNTIME;
out:
	free(bt.cells);
	free(ct.cells);
	free(pt.cells);
	return status;
}

int cmd_stats(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "json",   no_argument,       NULL, 'j' },
		{ "openmetrics", no_argument,  NULL, 'm' },
		{ "bridge", required_argument, NULL, 'b' },
		{ "watch",  optional_argument, NULL, 'w' },
		{ "count",  required_argument, NULL, 'n' },
		{ "subscriptions", no_argument, NULL, 'S' },
		{ "help",   no_argument,       NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *socket_path = NULL, *bridge = NULL;
	bool json = false, openmetrics = false, watch = false, subs = false;
	double interval = 1;
	uint64_t count = 0;
	char *doc = NULL, shown_buf[256];
	shn_client *client;
	json_t *tree;
	json_error_t jerr;
	int c, rc;

	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":s:jmb:w::n:h", opts, NULL)) != -1) {
		switch (c) {
		case 's':
			if (cli_socket_option("stats", usage, optarg, &socket_path))
				return EXIT_USAGE;
			break;
		case 'b':
			bridge = optarg;
			break;
		case 'j':
			json = true;
			break;
		case 'm':
			openmetrics = true;
			break;
		case 'S':
			subs = true;
			break;
		case 'w': {
			/* --watch 2 as well as --watch=2: a number after it is its own */
			const char *arg = optarg;
			char *end;

			watch = true;
			if (!arg && optind < argc && argv[optind][0] >= '0' && argv[optind][0] <= '9')
				arg = argv[optind++];
			if (!arg)
				break;
			interval = strtod(arg, &end);
			if (*end || !isfinite(interval) || interval < 0.01 || interval > 86400)
				return cli_usage_error("stats", usage, "--watch: '%s' is not a number "
						       "of seconds from 0.01 to 86400", arg);
			break;
		}
		case 'n':
			if (!cli_parse_uint(optarg, UINT64_MAX, &count) || count == 0)
				return cli_usage_error("stats", usage,
						       "--count: '%s' is not a positive number", optarg);
			break;
		case 'h':
			help();
			return 0;
		case ':':
			return cli_usage_error("stats", usage, "option '%s' needs an argument",
					       cli_bad_option(argv, c));
		default:
			return cli_usage_error("stats", usage, "unknown option '%s'",
					       cli_bad_option(argv, c));
		}
	}
	if (optind < argc)
		return cli_usage_error("stats", usage, "unexpected argument '%s'", argv[optind]);
	if (json + openmetrics + watch > 1)
		return cli_usage_error("stats", usage, "--json, --openmetrics and --watch exclude "
				       "each other");
	if (count && !watch)
		return cli_usage_error("stats", usage, "--count N counts the lines of --watch: "
				       "give --watch too");
	if (bridge != NULL && watch)
		return cli_usage_error("stats", usage, "--bridge reads a file: it takes no --watch");
	if (bridge != NULL && (openmetrics || socket_path != NULL))
		return cli_usage_error("stats", usage, "--bridge reads a file: it takes neither "
				       "--socket nor --openmetrics");
	if (subs && (openmetrics || watch || bridge != NULL))
		return cli_usage_error("stats", usage, "--subscriptions lists the broker's "
				       "filters: it takes --json, not --openmetrics, --watch or "
				       "--bridge");
	if (bridge != NULL)
		return cli_bridge_stats(bridge, json);

	rc = cli_connect(socket_path, "stats", NULL, &client);
	if (rc)
		return rc;
	if (watch)
		return cli_stats_watch(client, interval, count);
	rc = shn_stats_json_ex(client, subs ? SHN_STATS_SUBSCRIPTIONS : 0, &doc);
	shn_disconnect(client);
	if (rc == -EOPNOTSUPP && subs) {
		cli_err("the broker at %s cannot list its subscriptions (it is older than "
			"`stats --subscriptions`): upgrade shmnotifyd",
			cli_socket_display(socket_path, shown_buf, sizeof shown_buf));
		return EXIT_RUNTIME;
	}
	if (rc == -EACCES && subs) {
		cli_err("cannot list the broker's subscriptions: only root or the broker's own user "
			"may; run it as that user (or with sudo)");
		return EXIT_RUNTIME;
	}
	if (rc < 0) {
		cli_err("cannot get the broker's statistics: %s", shn_strerror(rc));
		return EXIT_RUNTIME;
	}
	if (json) {
		size_t len = strlen(doc);

		fputs(doc, stdout);
		if (len == 0 || doc[len - 1] != '\n')
			putchar('\n');
		free(doc);
		if (fflush(stdout) == EOF) {
			cli_err("cannot write to stdout");
			return EXIT_RUNTIME;
		}
		return 0;
	}
	tree = json_loads(doc, 0, &jerr);
	if (!tree) {
		cli_err("the broker's statistics are not valid JSON (at byte %d: %s); "
			"see them raw with `shmnotify stats --json`", jerr.position, jerr.text);
		free(doc);
		return EXIT_RUNTIME;
	}
	cli_drop_self(tree);
	if (subs) {
		rc = cli_print_subscriptions(tree, cli_socket_display(socket_path, shown_buf,
								      sizeof shown_buf));
	} else if (openmetrics) {
		rc = cli_print_openmetrics(stdout, tree) == 0 ? 0 : EXIT_RUNTIME;
		if (rc)
			cli_err("the broker's statistics have no \"broker\" object; "
				"see them raw with `shmnotify stats --json`");
		else if (fflush(stdout) == EOF)
			rc = EXIT_RUNTIME;
	} else {
		rc = print_tables(tree, cli_socket_display(socket_path, shown_buf, sizeof shown_buf));
	}
	json_decref(tree);
	free(doc);
	return rc;
}
