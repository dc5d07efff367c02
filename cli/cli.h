/* SPDX-License-Identifier: MIT */
/*
 * cli.h - the pieces of the shmnotify command shared by its subcommands.
 *
 * Exit statuses: 0 success, 1 runtime error (broker unreachable, publish
 * refused, ...), 2 bad arguments (a usage line goes to stderr), 3 publish
 * --sync was cancelled by a sink (SHN_NOTIFY_CANCELED).
 */
#ifndef SHN_CLI_H
#define SHN_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <jansson.h>
#include <shmnotify.h>

#define EXIT_RUNTIME  1
#define EXIT_USAGE    2
#define EXIT_CANCELED 3

/* subcommands: argv[0] is the subcommand's name */
int cmd_publish(int argc, char **argv);
int cmd_listen(int argc, char **argv);
int cmd_stats(int argc, char **argv);

/* stats --watch (stats_watch.c): a line of rates every interval until
 * count lines (0: until interrupted).  Takes the connection. */
int cli_stats_watch(shn_client *c, double interval_s, uint64_t count);

/* "shmnotify: " + message on stderr */
void cli_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* "shmnotify CMD: message", then the command's usage line and a hint, on
 * stderr; returns EXIT_USAGE. */
int cli_usage_error(const char *cmd, const char *usage, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* After getopt_long returned ':' or '?': the option it complains about. */
const char *cli_bad_option(char **argv, int getopt_result);

/* Parse a decimal or 0x-hexadecimal unsigned number, no sign, no junk.
 * Returns false if s is not such a number or exceeds max. */
bool cli_parse_uint(const char *s, uint64_t max, uint64_t *out);

/* Parse --event / --events: a number in 1..SHN_EV_ALL.  On failure writes a
 * message saying why into why (size whylen) and returns false. */
bool cli_parse_event(const char *s, uint32_t *out, char *why, size_t whylen);

/* --socket PATH: *path = arg, or (an empty arg, which would otherwise
 * quietly mean the default socket) a usage error: returns 0 or EXIT_USAGE. */
int cli_socket_option(const char *cmd, const char *usage, const char *arg, const char **path);

/* The socket path shn_connect(path) will use, for messages. */
const char *cli_socket_display(const char *path, char *buf, size_t len);

/* Check --name: what shn_set_name() takes (1..SHN_NAME_MAX bytes of UTF-8,
 * no control character).  On failure writes why into why (size whylen). */
bool cli_parse_name(const char *s, char *why, size_t whylen);

/* shn_connect with an error message that says what to do, then name the
 * client for the broker's stats: name (the user's --name), or NULL for
 * "shmnotify CMD".  Returns 0 or EXIT_RUNTIME. */
int cli_connect(const char *path, const char *cmd, const char *name, shn_client **out);

/* ---- keys and prefixes named on the command line (filters.c) -------- */

/* One KEY / --key (exact) or --prefix; s points into argv. */
struct cli_filter {
	const char *s;
	size_t len;
	bool prefix;
};

struct cli_filters {
	struct cli_filter *v;
	size_t n, cap;
};

/* Add s as a key (1..SHN_KEY_MAX bytes; one that looks like a pattern gets
 * cli_key_hint) or a prefix (0..SHN_KEY_MAX bytes).  0, EXIT_USAGE (a
 * usage error printed) or EXIT_RUNTIME (out of memory). */
int cli_filters_add(struct cli_filters *f, const char *cmd, const char *usage,
		    const char *s, bool prefix);
void cli_filters_free(struct cli_filters *f);

/* Does key[0..len) equal one of f's keys or start with one of its
 * prefixes?  An empty f takes every key. */
bool cli_filters_match(const struct cli_filters *f, const void *key, size_t len);

/* A KEY with '*' or '>' in it: a note on stderr that keys match exactly
 * and which --prefix was probably meant.  Nothing for other keys. */
void cli_key_hint(const char *cmd, const char *key);

/* ---- output helpers (out.c) ----------------------------------------- */

/* A value of a key=value line that reads back one way: bare when it has
 * nothing but visible characters other than '"', '\\' and '='; else in
 * double quotes, C-escaped (\", \\, \n, \xHH, \uXXXX for invisible
 * characters).  Empty: "". */
void cli_put_value(FILE *f, const void *s, size_t n);

/* --color WHEN */
#define CLI_COLOR_AUTO   0
#define CLI_COLOR_ALWAYS 1
#define CLI_COLOR_NEVER  2

/* auto/always/never (and yes/no/force/none); -1 when none of them. */
int cli_parse_color(const char *s);

/* Colour on fd?  always/never as said; auto: fd is a terminal, $NO_COLOR
 * is unset or empty (no-color.org) and $TERM is not "dumb". */
bool cli_use_color(int when, int fd);

/* ---- the statistics document (JSON, parsed by jansson) ---------------- */

/* A number member's text as the broker wrote it (integers exactly); false
 * when v is not a number. */
bool cli_json_number(const json_t *v, char *buf, size_t len);

/* Columns a string takes on a terminal: UTF-8 continuation bytes take
 * none of their own. */
size_t cli_text_width(const char *s);

/* A client's name (member "name" of a stats client object) for a table:
 * "-" when it gave none; anything a terminal would act on (the broker
 * refuses control characters; this does not rely on it) shown as '?'. */
void cli_client_name(const json_t *client, char *buf, size_t len);

/* A broker member as the human table and OpenMetrics name it: a refusal
 * counter limit_X is refused_X_limit (what it counts: requests refused by
 * limits.max_X), the rest as is. */
void cli_member_name(const char *name, char *buf, size_t len);

/* Remove the asking client from a statistics document: its entry in
 * "clients" (matched by this process's pid) and one from the broker's
 * "clients" count, so that `shmnotify stats` shows the broker as it is
 * without it. */
void cli_drop_self(json_t *doc);

/* stats --subscriptions (stats_subs.c): the document's "subscriptions"
 * section as tables.  0 or EXIT_RUNTIME (said why). */
int cli_print_subscriptions(const json_t *doc, const char *socket_shown);
/* how many entries of each list the broker sends at most (shmnotify.h:
 * SHN_STATS_SUBSCRIPTIONS) */
#define CLI_SUBS_MAX 10000u

/* The statistics document as OpenMetrics text (openmetrics.c); -1 when it
 * has no broker object. */
int cli_print_openmetrics(FILE *f, const json_t *doc);

/* shmnotify doctor (doctor.c) */
int cmd_doctor(int argc, char **argv);

#endif
