/* SPDX-License-Identifier: MIT */
/*
 * filters.c - the keys and prefixes named on the command line of listen and
 * monitor (KEY, --key K, --prefix P): checking them, the hint for a KEY
 * that looks like a pattern, and the match monitor applies to what it
 * prints (a monitor receives every notification the broker routes: its
 * filter is this process's, not the broker's).
 */
#include <stdlib.h>
#include <string.h>

#include "cli.h"

int cli_filters_add(struct cli_filters *f, const char *cmd, const char *usage,
		    const char *s, bool prefix)
{
	size_t len = strlen(s);

	if (prefix ? len > SHN_KEY_MAX : len == 0 || len > SHN_KEY_MAX)
		return cli_usage_error(cmd, usage, "%s must be %d to %d bytes, not %zu",
				       prefix ? "a --prefix" : "a KEY", prefix ? 0 : 1,
				       SHN_KEY_MAX, len);
	if (f->n == f->cap) {
		size_t ncap = f->cap ? f->cap * 2 : 8;
		struct cli_filter *v = realloc(f->v, ncap * sizeof *v);

		if (!v) {
			cli_err("out of memory for the keys given");
			return EXIT_RUNTIME;
		}
		f->v = v;
		f->cap = ncap;
	}
	f->v[f->n++] = (struct cli_filter){ .s = s, .len = len, .prefix = prefix };
	if (!prefix)
		cli_key_hint(cmd, s);
	return 0;
}

void cli_filters_free(struct cli_filters *f)
{
	free(f->v);
	*f = (struct cli_filters){ 0 };
}

bool cli_filters_match(const struct cli_filters *f, const void *key, size_t len)
{
	size_t i;

	if (f->n == 0)
		return true;
	for (i = 0; i < f->n; i++) {
		const struct cli_filter *x = &f->v[i];

		if (x->prefix ? len >= x->len && !memcmp(key, x->s, x->len)
			      : len == x->len && !memcmp(key, x->s, len))
			return true;
	}
	return false;
}

/* Keys are bytes compared whole (docs/design.md): '*' and '>' mean
 * nothing to the broker.  Someone who ends a key with '*' (a shell glob, a
 * Redis PSUBSCRIBE pattern) or '>' (a NATS wildcard) most likely wants a
 * prefix: say so, and subscribe to the key as written all the same, since
 * it is a key like any other. */
void cli_key_hint(const char *cmd, const char *key)
{
	size_t stem = strcspn(key, "*>");

	if (key[stem] == '\0')
		return;
	fprintf(stderr, "shmnotify %s: note: keys match exactly, so '%s' matches only the key "
		"'%s' ('*' and '>' are ordinary bytes); ", cmd, key, key);
	if (stem == 0)
		fprintf(stderr, "for every key, give no KEY%s\n",
			strcmp(cmd, "monitor") ? "" : " (monitor shows every key by itself)");
	else
		fprintf(stderr, "for every key that starts with '%.*s', use --prefix '%.*s'\n",
			(int)stem, key, (int)stem, key);
}
