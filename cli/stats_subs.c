/* SPDX-License-Identifier: MIT */
/*
 * stats_subs.c - shmnotify stats --subscriptions: the "subscriptions"
 * section of the statistics document (shn_stats_json_ex with
 * SHN_STATS_SUBSCRIPTIONS, docs/protocol.md) for people: per key or prefix
 * how many ports and filters watch it, then every filter with its owner.
 *
 *   "subscriptions":{"limit","filters_total","filters_truncated",
 *     "filters":[{"client","pid","name","port","conn","kind","key"
 *                 (or null and "key_base64"),"mask"}],
 *     "keys_total","keys_truncated",
 *     "keys":[{"kind","key"(/"key_base64"),"ports","filters"}]}
 *
 * A key is printed as listen prints one (cli_put_value: bare, or quoted and
 * escaped), the last column so that a long key widens nothing; one that is
 * not UTF-8 as base64:..., the any-key filter as "(every key)".
 */
#include <stdlib.h>
#include <string.h>

#include "cli.h"

#define COLS 7
#define CELL (SHN_NAME_MAX + 16)

static void cell_of(const json_t *o, const char *member, char *buf, size_t len)
{
	const json_t *v = json_object_get(o, member);

	if (json_is_string(v))
		snprintf(buf, len, "%s", json_string_value(v));
	else if (!cli_json_number(v, buf, len))
		snprintf(buf, len, "-");
}

static void mask_of(const json_t *o, char *buf, size_t len)
{
	const json_t *v = json_object_get(o, "mask");

	if (json_is_integer(v))
		snprintf(buf, len, "0x%08llx", (unsigned long long)json_integer_value(v));
	else
		snprintf(buf, len, "-");
}

static void put_key(const json_t *o)
{
	const json_t *k = json_object_get(o, "key");
	const char *b64 = json_string_value(json_object_get(o, "key_base64"));
	const char *kind = json_string_value(json_object_get(o, "kind"));

	if (json_is_string(k))
		cli_put_value(stdout, json_string_value(k), json_string_length(k));
	else if (b64)
		printf("base64:%s", b64);
	else if (kind && !strcmp(kind, "any"))
		fputs("(every key)", stdout);
	else
		fputs("-", stdout);
}

/* The row's cells but the key (the last column). */
typedef void (*row_fn)(const json_t *o, char cells[COLS][CELL]);

static void key_row(const json_t *o, char cells[COLS][CELL])
{
	cell_of(o, "ports", cells[0], CELL);
	cell_of(o, "filters", cells[1], CELL);
	cell_of(o, "kind", cells[2], CELL);
}

static void filter_row(const json_t *o, char cells[COLS][CELL])
{
	cell_of(o, "client", cells[0], CELL);
	cell_of(o, "pid", cells[1], CELL);
	cli_client_name(o, cells[2], CELL);
	cell_of(o, "port", cells[3], CELL);
	cell_of(o, "conn", cells[4], CELL);
	mask_of(o, cells[5], CELL);
	cell_of(o, "kind", cells[6], CELL);
}

/* A header and a row per object of list, columns as wide as their widest
 * cell, the key last. */
static void table(const json_t *list, const char *const *head, int ncols, row_fn row)
{
	size_t w[COLS] = { 0 }, i;
	char cells[COLS][CELL];
	const json_t *o;
	int c;

	for (c = 0; c < ncols; c++)
		w[c] = cli_text_width(head[c]);
	json_array_foreach(list, i, o) {
		row(o, cells);
		for (c = 0; c < ncols; c++)
			if (cli_text_width(cells[c]) > w[c])
				w[c] = cli_text_width(cells[c]);
	}
	fputs("  ", stdout);
	for (c = 0; c < ncols; c++)
		printf("%s%*s  ", head[c], (int)(w[c] - cli_text_width(head[c])), "");
	printf("%s\n", head[ncols]);
	json_array_foreach(list, i, o) {
		if (!json_is_object(o))
			continue;
		row(o, cells);
		fputs("  ", stdout);
		for (c = 0; c < ncols; c++)
			printf("%s%*s  ", cells[c], (int)(w[c] - cli_text_width(cells[c])), "");
		put_key(o);
		putchar('\n');
	}
}

static long long member_int(const json_t *o, const char *name)
{
	return json_integer_value(json_object_get(o, name));
}

int cli_print_subscriptions(const json_t *doc, const char *socket_shown)
{
	static const char *const key_head[] = { "PORTS", "FILTERS", "KIND", "KEY OR PREFIX" };
	static const char *const filter_head[] = { "CLIENT", "PID", "NAME", "PORT", "CONN",
						   "EVENTS", "KIND", "KEY OR PREFIX" };
	const json_t *subs = json_object_get(doc, "subscriptions");
	const json_t *keys = json_object_get(subs, "keys");
	const json_t *filters = json_object_get(subs, "filters");
	long long nf = member_int(subs, "filters_total"), nk = member_int(subs, "keys_total");

	if (!json_is_array(keys) || !json_is_array(filters)) {
		cli_err("the broker's statistics have no \"subscriptions\" section; see them raw "
			"with `shmnotify stats --subscriptions --json`");
		return EXIT_RUNTIME;
	}
	printf("broker at %s: %lld filter%s on %lld distinct key%s, prefixes or any-key\n",
	       socket_shown, nf, nf == 1 ? "" : "s", nk, nk == 1 ? "" : "s");
	printf("\nkeys and prefixes: %lld\n", nk);
	if (json_array_size(keys))
		table(keys, key_head, 3, key_row);
	if (json_is_true(json_object_get(subs, "keys_truncated")))
		printf("  (the first %zu of %lld, in byte order: the broker lists at most %lld)\n",
		       json_array_size(keys), nk, member_int(subs, "limit"));
	printf("\nfilters: %lld\n", nf);
	if (json_array_size(filters))
		table(filters, filter_head, 7, filter_row);
	if (json_is_true(json_object_get(subs, "filters_truncated")))
		printf("  (the first %zu of %lld, client by client: the broker lists at most %lld)\n",
		       json_array_size(filters), nf, member_int(subs, "limit"));
	if (fflush(stdout) == EOF) {
		cli_err("cannot write to stdout");
		return EXIT_RUNTIME;
	}
	return 0;
}
