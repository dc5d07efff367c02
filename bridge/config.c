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
 * As in broker/config.c, our own reader hands inih one line at a time: we
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
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CONFIG_FILE_MAX (1u << 20)

enum section { SEC_NONE, SEC_BRIDGE, SEC_RULE, SEC_BAD };

struct reader {
	struct br_config *cfg;
	const char *path;
	char *buf;
	size_t len, pos;
	int lineno;
	int err_line;
	char err[512];
	enum section sec;
	bool has_node, has_servers, has_mode, has_stream, has_durable, has_state, has_stats;
	bool has_socket;
};

static void fail(struct reader *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void fail(struct reader *r, const char *fmt, ...)
{
	va_list ap;

	if (r->err_line)
		return;   /* the first error is the one reported */
	r->err_line = r->lineno;
	va_start(ap, fmt);
	vsnprintf(r->err, sizeof(r->err), fmt, ap);
	va_end(ap);
}

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

/* "[bridge]" or "[rule NAME]" (s: after the '['). */
static void section_header(struct reader *r, const char *s, char *out, size_t outlen)
{
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
		nr[cfg->nrules].line = r->lineno;
		nr[cfg->nrules].events = SHN_EV_ALL;
		cfg->nrules++;
		r->sec = SEC_RULE;
		return;
	}
	fail(r, "unknown section [%s]: expected [bridge] or [rule NAME]", name);
}

/* inih's reader: one line per call, so inih's count and ours agree. */
static char *read_line(char *str, int num, void *stream)
{
	struct reader *r = stream;
	const char *line, *nl;
	size_t n;

	if (r->pos >= r->len)
		return (NULL);
	line = r->buf + r->pos;
	nl = memchr(line, '\n', r->len - r->pos);
	n = nl ? (size_t)(nl - line) : r->len - r->pos;
	r->pos += n + (nl != NULL);
	r->lineno++;
	if (n > 0 && line[n - 1] == '\r')
		n--;
	while (n > 0 && (*line == ' ' || *line == '\t')) {
		line++;
		n--;
	}
	snprintf(str, (size_t)num, "\n");
	if (memchr(line, '\0', n) != NULL) {
		fail(r, "a NUL byte in the line");
	} else if (n > 0 && *line == '[') {
		char *hdr = strndup(line + 1, n - 1);

		if (hdr == NULL)
			fail(r, "out of memory");
		else
			section_header(r, hdr, str, (size_t)num);
		free(hdr);
	} else if (n + 2 > (size_t)num) {
		fail(r, "line too long (at most %d characters)", num - 2);
	} else {
		memcpy(str, line, n);
		str[n] = '\n';
		str[n + 1] = '\0';
	}
	return (str);
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return (c - '0');
	if (c >= 'a' && c <= 'f')
		return (c - 'a' + 10);
	if (c >= 'A' && c <= 'F')
		return (c - 'A' + 10);
	return (-1);
}

/* A quoted key prefix: "..." with \\, \" and \xHH; at most SHN_KEY_MAX bytes. */
static int parse_prefix(const char *v, uint8_t *out, uint16_t *len, char *why, size_t whylen)
{
	size_t n = 0;
	const char *p = v;

	if (*p != '"') {
		snprintf(why, whylen, "keys must be a quoted prefix such as \"orders.\" "
			 "(\"\" for every key; \\xHH for any byte)");
		return (-EINVAL);
	}
	for (p++; *p != '"'; p++) {
		int c = (unsigned char)*p;

		if (*p == '\0') {
			snprintf(why, whylen, "keys: the closing '\"' is missing");
			return (-EINVAL);
		}
		if (*p == '\\') {
			if (p[1] == '\\' || p[1] == '"') {
				c = (unsigned char)p[1];
				p++;
			} else if (p[1] == 'x' && hexval(p[2]) >= 0 && hexval(p[3]) >= 0) {
				c = hexval(p[2]) * 16 + hexval(p[3]);
				p += 3;
			} else {
				snprintf(why, whylen, "keys: unknown escape; use \\\\, \\\" or \\xHH");
				return (-EINVAL);
			}
		}
		if (n == SHN_KEY_MAX) {
			snprintf(why, whylen, "keys: a prefix longer than %d bytes", SHN_KEY_MAX);
			return (-EINVAL);
		}
		out[n++] = (uint8_t)c;
	}
	if (p[1] != '\0') {
		snprintf(why, whylen, "keys: unexpected text after the closing '\"'");
		return (-EINVAL);
	}
	*len = (uint16_t)n;
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
	if (cfg->nservers == 0 && !r->err_line)
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
		if (parse_prefix(v, ru->prefix, &ru->prefix_len, why, sizeof(why)) < 0)
			fail(r, "%s", why);
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

	(void)section;   /* read_line keeps the section: inih's copy is cut at 49 bytes */
	if (r->err_line)
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

	r->lineno = 0;
	if (!r->has_node)
		fail(r, "[bridge] node is missing: give this bridge an id (node = host-a)");
	else if (!r->has_servers)
		fail(r, "[bridge] servers is missing: the NATS URLs (servers = nats://HOST:4222)");
	else if (cfg->nrules == 0)
		fail(r, "no [rule NAME] section: nothing would be carried");
	else if (cfg->nrules > BR_RULES_MAX)
		fail(r, "%d rules: at most %d (widen a key prefix to merge some)", cfg->nrules,
		     BR_RULES_MAX);
	if (r->err_line || r->err[0])
		return (-1);
	if (cfg->mode == BR_JETSTREAM && !r->has_stream)
		snprintf(cfg->stream, sizeof(cfg->stream), "SHMNOTIFY");
	if (!r->has_durable)
		snprintf(cfg->durable, sizeof(cfg->durable), "%s", cfg->node);
	for (int i = 0; i < cfg->nrules && !r->err[0]; i++) {
		struct br_rule *ru = &cfg->rules[i];

		r->lineno = ru->line;
		if (!ru->has_keys)
			fail(r, "[rule %s] has no keys = \"PREFIX\" (\"\" for every key)", ru->name);
		else if (!ru->has_subject)
			fail(r, "[rule %s] has no subject = NATS.SUBJECT.PREFIX", ru->name);
		else if (!ru->has_dir)
			fail(r, "[rule %s] has no direction = out, in or both", ru->name);
		for (int j = 0; j < i && !r->err[0]; j++)
			if (subjects_overlap(cfg->rules[j].subject, ru->subject))
				fail(r, "[rule %s]: subject %s overlaps [rule %s]'s %s (line %d): "
				     "give each rule its own subject prefix", ru->name, ru->subject,
				     cfg->rules[j].name, cfg->rules[j].subject, cfg->rules[j].line);
	}
	return (r->err[0] ? -1 : 0);
}

static void report(const struct reader *r)
{
	if (r->err_line > 0)
		fprintf(stderr, "shmnotify-bridge: %s:%d: %s\n", r->path, r->err_line, r->err);
	else
		fprintf(stderr, "shmnotify-bridge: %s: %s\n", r->path, r->err);
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
	FILE *f;
	int rc;

	memset(cfg, 0, sizeof(*cfg));
	memset(&r, 0, sizeof(r));
	cfg->file = path;
	r.cfg = cfg;
	r.path = path;
	f = fopen(path, "r");
	if (f == NULL) {
		fprintf(stderr, "shmnotify-bridge: %s: %s: give an existing file with --config\n",
			path, strerror(errno));
		return (-1);
	}
	r.buf = malloc(CONFIG_FILE_MAX + 1);
	if (r.buf == NULL) {
		fclose(f);
		fprintf(stderr, "shmnotify-bridge: out of memory\n");
		return (-1);
	}
	r.len = fread(r.buf, 1, CONFIG_FILE_MAX + 1, f);
	fclose(f);
	if (r.len > CONFIG_FILE_MAX) {
		snprintf(r.err, sizeof(r.err), "larger than %u bytes", CONFIG_FILE_MAX);
		report(&r);
		free(r.buf);
		return (-1);
	}
	rc = ini_parse_stream(read_line, &r, handler, &r);
	free(r.buf);
	if (rc != 0 && !r.err_line) {
		r.lineno = rc;
		fail(&r, "syntax error: expected key = value, [bridge] or [rule NAME]");
	}
	if (r.err_line || check(&r) < 0) {
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

static void print_prefix(const struct br_rule *ru, FILE *out)
{
	fputc('"', out);
	for (int i = 0; i < ru->prefix_len; i++) {
		uint8_t c = ru->prefix[i];

		if (c == '"' || c == '\\')
			fprintf(out, "\\%c", c);
		else if (c >= 0x20 && c < 0x7f)
			fputc(c, out);
		else
			fprintf(out, "\\x%02x", c);
	}
	fputc('"', out);
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

		fprintf(out, "rule %s: keys ", ru->name);
		print_prefix(ru, out);
		fprintf(out, " %s %s.>, events 0x%08x\n",
			ru->dir == BR_OUT ? "->" : ru->dir == BR_IN ? "<-" : "<->", ru->subject,
			ru->events);
	}
}
