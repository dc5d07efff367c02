/* SPDX-License-Identifier: MIT */
/*
 * config.c - shmnotify-bridge's INI file (see config.h).
 *
 *   [bridge]
 *   node = host-a                     this bridge's id: 1..32 of [A-Za-z0-9_-]
 *   servers = nats://127.0.0.1:4222   comma-separated NATS URLs
 *   socket = /run/shmnotify.sock      the local broker (default: libshmnotify's)
 *   mode = core | jetstream
 *   stream = SHMNOTIFY                jetstream: the stream (created when missing)
 *   durable = host-a                  jetstream: durable consumer names' prefix
 *   state-file = PATH | none          last sequence seen per origin and subject
 *   stats-file = PATH | none          the counters, rewritten every second
 *
 *   [rule NAME]
 *   keys = "orders."                  local key prefix, quoted; \\, \" and \xHH
 *   subject = shn.orders              NATS subject prefix
 *   direction = out | in | both
 *   events = 0x0fffffff               application event bits carried
 *
 * As for the broker's file, util/ini.c hands inih one line at a time: we
 * get line numbers for every message, leading blanks never turn a line
 * into a continuation, and section headers are parsed here (inih never
 * reports a section without keys, and a rule missing its keys must be an
 * error, not silently no rule).
 */
#define _GNU_SOURCE
#include "config.h"
#include "subject.h"

#include <errno.h>
#include <ini.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/ini.h"
#include "util/prefix.h"

enum section { SEC_NONE, SEC_BRIDGE, SEC_RULE, SEC_BAD };

struct reader {
	struct shu_ini ini;           /* first: the section callback gets &r->ini */
	struct br_config *cfg;
	const char *path;
	enum section sec;
	bool has_node, has_servers, has_mode, has_stream, has_durable, has_state, has_stats;
	bool has_socket;
};

/* Record the first error, at the current line (util/ini.h). */
#define fail(r, ...) shu_ini_fail(&(r)->ini, __VA_ARGS__)

static bool name_ok(const char *s, size_t max)
{
	size_t n = strlen(s);

	if (n == 0 || n > max)
		return (false);
	for (size_t i = 0; i < n; i++)
		if (!br_token_char((unsigned char)s[i]))
			return (false);
	return (true);
}

bool br_subject_prefix_ok(const char *s)
{
	size_t n = strlen(s);

	return (n <= BR_SUBJECT_MAX && br_dotted_tokens(s, n));
}

/* "[bridge]" or "[rule NAME]" (s: after the '[').  struct reader starts
 * with its struct shu_ini: ini is r. */
static void section_header(struct shu_ini *ini, const char *s, char *out, size_t outlen)
{
	struct reader *r = (struct reader *)ini;
	const char *end = strchr(s, ']');
	char name[64];
	size_t n;

	snprintf(out, outlen, "[x]\n");
	r->sec = SEC_BAD;
	if (end == NULL) {
		fail(r, "a section header without ']'");
		return;
	}
	for (const char *p = end + 1; *p; p++)
		if (*p == ';' || *p == '#') {
			break;
		} else if (*p != ' ' && *p != '\t') {
			fail(r, "unexpected text after the section header's ']'");
			return;
		}
	n = (size_t)(end - s);
	if (n >= sizeof(name)) {
		fail(r, "section name too long");
		return;
	}
	memcpy(name, s, n);
	name[n] = '\0';
	if (strcmp(name, "bridge") == 0) {
		r->sec = SEC_BRIDGE;
		return;
	}
	if (strncmp(name, "rule ", 5) == 0) {
		struct br_config *cfg = r->cfg;
		const char *rn = name + 5;
		struct br_rule *nr;

		while (*rn == ' ')
			rn++;
		if (!name_ok(rn, BR_NAME_MAX)) {
			fail(r, "rule name '%s': expected 1 to %d characters of A-Z a-z 0-9 _ -",
			     rn, BR_NAME_MAX);
			return;
		}
		for (int i = 0; i < cfg->nrules; i++)
			if (strcmp(cfg->rules[i].name, rn) == 0) {
				fail(r, "a second [rule %s] (the first is at line %d): rename one", rn,
				     cfg->rules[i].line);
				return;
			}
		nr = realloc(cfg->rules, (size_t)(cfg->nrules + 1) * sizeof(*nr));
		if (nr == NULL) {
			fail(r, "out of memory");
			return;
		}
		cfg->rules = nr;
		memset(&nr[cfg->nrules], 0, sizeof(*nr));
		memcpy(nr[cfg->nrules].name, rn, strlen(rn) + 1);   /* name_ok: it fits */
		nr[cfg->nrules].line = r->ini.lineno;
		nr[cfg->nrules].events = SHN_EV_ALL;
		cfg->nrules++;
		r->sec = SEC_RULE;
		return;
	}
	fail(r, "unknown section [%s]: expected [bridge] or [rule NAME]", name);
}

/* keys = "PREFIX": the quoted prefix and nothing after it. */
static int parse_keys(const char *v, struct br_rule *ru, char *why, size_t whylen)
{
	const char *end;
	size_t len;
	int rc;

	rc = shu_prefix_parse(v, &end, ru->prefix, sizeof(ru->prefix), &len, why, whylen);
	if (rc < 0)
		return (rc);
	if (*end != '\0') {
		snprintf(why, whylen, "unexpected text after the closing '\"'");
		return (-EINVAL);
	}
	ru->prefix_len = (uint16_t)len;
	return (0);
}

static bool parse_u32(const char *v, uint32_t *out)
{
	char *end;
	unsigned long long x;

	if (*v < '0' || *v > '9')
		return (false);
	errno = 0;
	x = strtoull(v, &end, 0);
	if (errno || *end != '\0' || x > UINT32_MAX)
		return (false);
	*out = (uint32_t)x;
	return (true);
}

static bool once(struct reader *r, bool *seen, const char *name)
{
	if (*seen) {
		fail(r, "%s is set twice", name);
		return (false);
	}
	*seen = true;
	return (true);
}

static void copy_path(struct reader *r, char *dst, const char *v, const char *name)
{
	if (strcmp(v, "none") == 0) {
		dst[0] = '\0';
		return;
	}
	if (v[0] != '/' || strlen(v) >= BR_PATH_MAX)
		fail(r, "%s '%s': expected an absolute path or none", name, v);
	else
		snprintf(dst, BR_PATH_MAX, "%s", v);
}

static void set_servers(struct reader *r, const char *v)
{
	struct br_config *cfg = r->cfg;
	char *copy = strdup(v), *save = NULL, *tok;

	if (copy == NULL) {
		fail(r, "out of memory");
		return;
	}
	for (tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		while (*tok == ' ' || *tok == '\t')
			tok++;
		for (char *e = tok + strlen(tok); e > tok && (e[-1] == ' ' || e[-1] == '\t'); e--)
			e[-1] = '\0';
		if (strncmp(tok, "nats://", 7) != 0 && strncmp(tok, "tls://", 6) != 0) {
			fail(r, "servers: '%s' is not a NATS URL (nats://HOST:PORT)", tok);
			break;
		}
		if (cfg->nservers == BR_SERVERS_MAX) {
			fail(r, "servers: more than %d URLs", BR_SERVERS_MAX);
			break;
		}
		cfg->servers[cfg->nservers] = strdup(tok);
		if (cfg->servers[cfg->nservers] == NULL) {
			fail(r, "out of memory");
			break;
		}
		cfg->nservers++;
	}
	if (cfg->nservers == 0 && !r->ini.err_line)
		fail(r, "servers: no URL given");
	free(copy);
}

static void bridge_key(struct reader *r, const char *name, const char *v)
{
	struct br_config *cfg = r->cfg;

	if (strcmp(name, "node") == 0) {
		if (!once(r, &r->has_node, name))
			return;
		if (!name_ok(v, BR_NODE_MAX))
			fail(r, "node '%s': expected 1 to %d characters of A-Z a-z 0-9 _ - "
			     "(unique among the bridges on one NATS system)", v, BR_NODE_MAX);
		else
			snprintf(cfg->node, sizeof(cfg->node), "%s", v);
	} else if (strcmp(name, "servers") == 0) {
		if (once(r, &r->has_servers, name))
			set_servers(r, v);
	} else if (strcmp(name, "socket") == 0) {
		if (!once(r, &r->has_socket, name))
			return;
		if (v[0] != '/' || strlen(v) >= sizeof(cfg->socket))
			fail(r, "socket '%s': expected an absolute path shorter than %zu bytes", v,
			     sizeof(cfg->socket));
		else
			snprintf(cfg->socket, sizeof(cfg->socket), "%s", v);
	} else if (strcmp(name, "mode") == 0) {
		if (!once(r, &r->has_mode, name))
			return;
		if (strcmp(v, "core") == 0)
			cfg->mode = BR_CORE;
		else if (strcmp(v, "jetstream") == 0)
			cfg->mode = BR_JETSTREAM;
		else
			fail(r, "mode '%s': expected core or jetstream", v);
	} else if (strcmp(name, "stream") == 0 || strcmp(name, "durable") == 0) {
		bool st = name[0] == 's';

		if (!once(r, st ? &r->has_stream : &r->has_durable, name))
			return;
		if (!name_ok(v, BR_NAME_MAX))
			fail(r, "%s '%s': expected 1 to %d characters of A-Z a-z 0-9 _ -", name, v,
			     BR_NAME_MAX);
		else
			snprintf(st ? cfg->stream : cfg->durable, BR_NAME_MAX + 1, "%s", v);
	} else if (strcmp(name, "state-file") == 0) {
		if (once(r, &r->has_state, name))
			copy_path(r, cfg->state_file, v, name);
	} else if (strcmp(name, "stats-file") == 0) {
		if (once(r, &r->has_stats, name))
			copy_path(r, cfg->stats_file, v, name);
	} else {
		fail(r, "unknown key '%s' in [bridge]: expected node, servers, socket, mode, "
		     "stream, durable, state-file or stats-file", name);
	}
}

static void rule_key(struct reader *r, const char *name, const char *v)
{
	struct br_rule *ru = &r->cfg->rules[r->cfg->nrules - 1];
	char why[160];

	if (strcmp(name, "keys") == 0) {
		if (!once(r, &ru->has_keys, name))
			return;
		if (parse_keys(v, ru, why, sizeof(why)) < 0)
			fail(r, "keys: %s", why);
	} else if (strcmp(name, "subject") == 0) {
		if (!once(r, &ru->has_subject, name))
			return;
		if (!br_subject_prefix_ok(v))
			fail(r, "subject '%s': expected 1 to %d characters of tokens of A-Z a-z "
			     "0-9 _ - joined by '.' (no wildcard, no empty token)", v,
			     BR_SUBJECT_MAX);
		else
			snprintf(ru->subject, sizeof(ru->subject), "%s", v);
	} else if (strcmp(name, "direction") == 0) {
		if (!once(r, &ru->has_dir, name))
			return;
		if (strcmp(v, "out") == 0)
			ru->dir = BR_OUT;
		else if (strcmp(v, "in") == 0)
			ru->dir = BR_IN;
		else if (strcmp(v, "both") == 0)
			ru->dir = BR_BOTH;
		else
			fail(r, "direction '%s': expected out, in or both", v);
	} else if (strcmp(name, "events") == 0) {
		if (!parse_u32(v, &ru->events) || (ru->events & SHN_EV_ALL) == 0 ||
		    (ru->events & SHN_EV_SYSTEM) != 0)
			fail(r, "events '%s': expected a mask of application bits (decimal or 0x "
			     "hex, within 0x%08x)", v, SHN_EV_ALL);
	} else {
		fail(r, "unknown key '%s' in [rule %s]: expected keys, subject, direction or "
		     "events", name, ru->name);
	}
}

static int handler(void *user, const char *section, const char *name, const char *value)
{
	struct reader *r = user;

	(void)section;   /* section_header keeps it: inih's copy is cut at 49 bytes */
	if (r->ini.err_line)
		return (1);
	switch (r->sec) {
	case SEC_NONE:
		fail(r, "'%s' outside a section: put it under [bridge] or [rule NAME]", name);
		break;
	case SEC_BRIDGE:
		bridge_key(r, name, value);
		break;
	case SEC_RULE:
		rule_key(r, name, value);
		break;
	case SEC_BAD:
		break;
	}
	return (1);
}

/* Two rules whose subject prefixes overlap would carry one subject twice
 * (or take one message for two keys): refuse.  One is a prefix of the
 * other at a token boundary. */
static bool subjects_overlap(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b), n = la < lb ? la : lb;

	if (strncmp(a, b, n) != 0)
		return (false);
	return (la == lb || (la < lb ? b[la] == '.' : a[lb] == '.'));
}

static int check(struct reader *r)
{
	struct br_config *cfg = r->cfg;

	r->ini.lineno = 0;
	if (!r->has_node)
		fail(r, "[bridge] node is missing: give this bridge an id (node = host-a)");
	else if (!r->has_servers)
		fail(r, "[bridge] servers is missing: the NATS URLs (servers = nats://HOST:4222)");
	else if (cfg->nrules == 0)
		fail(r, "no [rule NAME] section: nothing would be carried");
	else if (cfg->nrules > BR_RULES_MAX)
		fail(r, "%d rules: at most %d (widen a key prefix to merge some)", cfg->nrules,
		     BR_RULES_MAX);
	if (r->ini.err_line || r->ini.err[0])
		return (-1);
	if (cfg->mode == BR_JETSTREAM && !r->has_stream)
		snprintf(cfg->stream, sizeof(cfg->stream), "SHMNOTIFY");
	if (!r->has_durable)
		snprintf(cfg->durable, sizeof(cfg->durable), "%s", cfg->node);
	for (int i = 0; i < cfg->nrules && !r->ini.err[0]; i++) {
		struct br_rule *ru = &cfg->rules[i];

		r->ini.lineno = ru->line;
		if (!ru->has_keys)
			fail(r, "[rule %s] has no keys = \"PREFIX\" (\"\" for every key)", ru->name);
		else if (!ru->has_subject)
			fail(r, "[rule %s] has no subject = NATS.SUBJECT.PREFIX", ru->name);
		else if (!ru->has_dir)
			fail(r, "[rule %s] has no direction = out, in or both", ru->name);
		for (int j = 0; j < i && !r->ini.err[0]; j++)
			if (subjects_overlap(cfg->rules[j].subject, ru->subject))
				fail(r, "[rule %s]: subject %s overlaps [rule %s]'s %s (line %d): "
				     "give each rule its own subject prefix", ru->name, ru->subject,
				     cfg->rules[j].name, cfg->rules[j].subject, cfg->rules[j].line);
	}
	return (r->ini.err[0] ? -1 : 0);
}

static void report(const struct reader *r)
{
	if (r->ini.err_line > 0)
		fprintf(stderr, "shmnotify-bridge: %s:%d: %s\n", r->path, r->ini.err_line,
			r->ini.err);
	else
		fprintf(stderr, "shmnotify-bridge: %s: %s\n", r->path, r->ini.err);
}

static void default_state_file(struct br_config *cfg)
{
	const char *base = getenv("XDG_STATE_HOME"), *home = getenv("HOME");

	if (geteuid() == 0)
		snprintf(cfg->state_file, sizeof(cfg->state_file),
			 "/var/lib/shmnotify-bridge/%s.state", cfg->node);
	else if (base != NULL && base[0] == '/')
		snprintf(cfg->state_file, sizeof(cfg->state_file),
			 "%s/shmnotify-bridge/%s.state", base, cfg->node);
	else if (home != NULL && home[0] == '/')
		snprintf(cfg->state_file, sizeof(cfg->state_file),
			 "%s/.local/state/shmnotify-bridge/%s.state", home, cfg->node);
}

int br_config_load(struct br_config *cfg, const char *path)
{
	struct reader r;
	char *buf;
	size_t len;
	int rc;

	memset(cfg, 0, sizeof(*cfg));
	memset(&r, 0, sizeof(r));
	cfg->file = path;
	r.cfg = cfg;
	r.path = path;
	rc = shu_ini_read_file(path, &buf, &len);
	if (rc == -EFBIG) {
		snprintf(r.ini.err, sizeof(r.ini.err), "larger than %u bytes", SHU_INI_FILE_MAX);
		report(&r);
		return (-1);
	}
	if (rc < 0) {
		fprintf(stderr, "shmnotify-bridge: %s: %s: give an existing file with --config\n",
			path, strerror(-rc));
		return (-1);
	}
	shu_ini_init(&r.ini, buf, len, section_header);
	rc = ini_parse_stream(shu_ini_read_line, &r.ini, handler, &r);
	free(buf);
	if (rc != 0 && !r.ini.err_line) {
		r.ini.lineno = rc;
		fail(&r, "syntax error: expected key = value, [bridge] or [rule NAME]");
	}
	if (r.ini.err_line || check(&r) < 0) {
		report(&r);
		br_config_free(cfg);   /* what was read up to the error */
		return (-1);
	}
	if (!r.has_state)
		default_state_file(cfg);
	return (0);
}

void br_config_free(struct br_config *cfg)
{
	for (int i = 0; i < cfg->nservers; i++)
		free(cfg->servers[i]);
	free(cfg->rules);
	memset(cfg, 0, sizeof(*cfg));
}

void br_config_print(const struct br_config *cfg, FILE *out)
{
	fprintf(out, "node %s, %s mode", cfg->node,
		cfg->mode == BR_JETSTREAM ? "jetstream" : "core");
	if (cfg->mode == BR_JETSTREAM)
		fprintf(out, " (stream %s, durable %s_RULE)", cfg->stream, cfg->durable);
	fprintf(out, "\nlocal broker: %s\nNATS:", cfg->socket[0] ? cfg->socket : "(default socket)");
	for (int i = 0; i < cfg->nservers; i++)
		fprintf(out, " %s", cfg->servers[i]);
	fprintf(out, "\nstate file: %s\nstats file: %s\n",
		cfg->state_file[0] ? cfg->state_file : "none (a restart cannot count what it missed)",
		cfg->stats_file[0] ? cfg->stats_file : "none");
	for (int i = 0; i < cfg->nrules; i++) {
		const struct br_rule *ru = &cfg->rules[i];
		char q[4 * SHN_KEY_MAX + 3];

		fprintf(out, "rule %s: keys %s %s %s.>, events 0x%08x\n", ru->name,
			shu_prefix_quote(ru->prefix, ru->prefix_len, q, sizeof(q)),
			ru->dir == BR_OUT ? "->" : ru->dir == BR_IN ? "<-" : "<->", ru->subject,
			ru->events);
	}
}
