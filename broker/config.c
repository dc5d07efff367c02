/* SPDX-License-Identifier: MIT */
/*
 * config.c - the configuration file (INI, parsed by libinih), the command
 * line over it, and --print-config.  docs/config.md is the reference.
 *
 * inih parses "key = value"; util/ini.c hands it the lines one at a time
 * (line numbers for every message, no indented line taken for a
 * continuation, lines too long reported instead of cut) and this file
 * checks and rewrites each section header before inih sees it: inih keeps
 * only 49 characters of a section name and never reports a section
 * without keys, but [acl "PREFIX"] carries up to 256 bytes of prefix
 * (escaped) and an empty one still denies.  The header is parsed here and
 * inih sees a short name ("acl#N").
 *
 * Every error is reported, not only the first: the reader keeps going
 * after a bad line (a bad section header hides the keys under it, which
 * would only repeat the mistake), and shnd_config_finish runs every check
 * across values, so that one --check-config lists all there is to fix.
 */
#define _GNU_SOURCE
#include "config.h"

#include <errno.h>
#include <grp.h>
#include <ini.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "shm/ring.h"
#include "shm/sockpath.h"
#include "util/ini.h"
#include "util/prefix.h"

void shnd_config_defaults(struct shnd_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->io = SHND_IO_AUTO;
	cfg->log_level = SHND_LOG_INFO;
	cfg->default_capacity = SHND_DEFAULT_CAPACITY;
	cfg->max_capacity = SHND_DEFAULT_MAX_CAPACITY;
	cfg->lim.max_clients = SHND_DEFAULT_MAX_CLIENTS;
	cfg->lim.max_ports = SHND_DEFAULT_MAX_PORTS;
	cfg->lim.max_subs = SHND_DEFAULT_MAX_SUBS;
	cfg->lim.max_ring_bytes = SHND_DEFAULT_MAX_RING_BYTES;
	cfg->lim.max_key = SHN_KEY_MAX_WIRE;
	cfg->lim.max_data = SHN_DATA_MAX_WIRE;
	cfg->lim.direct_max_filters = SHND_DEFAULT_DIRECT_MAX_FILTERS;
	cfg->lim.max_direct_rings = SHND_DEFAULT_MAX_DIRECT_RINGS;
	cfg->lim.direct_rings_per_port = SHND_DEFAULT_DIRECT_RINGS_PER_PORT;
	cfg->lim.direct_ring_size = SHND_DEFAULT_DIRECT_RING_SIZE;
	cfg->lim.max_direct_bytes = SHND_DEFAULT_MAX_DIRECT_BYTES;
	cfg->direct = true;
	cfg->sock_mode = -1;
}

int shnd_parse_size(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
	char *end;
	unsigned long long v;
	unsigned shift = 0;

	if (s[0] < '0' || s[0] > '9')
		return (-EINVAL);
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno)
		return (-EINVAL);
	switch (*end) {
	case 'k': case 'K': shift = 10; end++; break;
	case 'm': case 'M': shift = 20; end++; break;
	case 'g': case 'G': shift = 30; end++; break;
	}
	if (shift && *end == 'i' && end[1] == 'B')
		end += 2;
	else if (*end == 'B')
		end++;
	if (*end != '\0' || (shift && v > (UINT64_MAX >> shift)))
		return (-EINVAL);
	v <<= shift;
	if (v < min || v > max)
		return (-EINVAL);
	*out = v;
	return (0);
}

static int parse_io(const char *s, enum shnd_io *io)
{
	if (strcmp(s, "uring") == 0 || strcmp(s, "io_uring") == 0)
		*io = SHND_IO_URING;
	else if (strcmp(s, "epoll") == 0)
		*io = SHND_IO_EPOLL;
	else if (strcmp(s, "auto") == 0)
		*io = SHND_IO_AUTO;
	else
		return (-EINVAL);
	return (0);
}

static int parse_direct(const char *s, bool *direct)
{
	if (strcmp(s, "auto") == 0)
		*direct = true;
	else if (strcmp(s, "off") == 0)
		*direct = false;
	else
		return (-EINVAL);
	return (0);
}

/* The largest power of two <= v, at least the smallest ring. */
static uint32_t round_down_capacity(uint64_t v)
{
	uint32_t cap = SHN_RING_MIN_CAPACITY;

	while ((uint64_t)cap * 2 <= v && cap * 2 <= SHN_RING_MAX_CAPACITY)
		cap *= 2;
	return (cap);
}

/* ---- reading the file --------------------------------------------------- */

enum section { SEC_BROKER, SEC_LIMITS, SEC_SOCKET, SEC_ACL, SEC_BAD };

/* Keys that may be set once; the line each was set on. */
enum key_id {
	K_SOCKET, K_LOG_LEVEL, K_IO, K_DEFAULT_CAP, K_MAX_CAP, K_FOREGROUND, K_SPIN_US,
	K_DIRECT,
	K_MAX_CLIENTS, K_MAX_PORTS, K_MAX_SUBS, K_MAX_RING_BYTES, K_MAX_KEY, K_MAX_DATA,
	K_DIRECT_MAX_FILTERS, K_MAX_DIRECT_RINGS, K_DIRECT_RINGS_PER_PORT, K_DIRECT_RING_SIZE,
	K_MAX_DIRECT_BYTES,
	K_MODE, K_GROUP,
	K_COUNT
};

static const struct {
	enum section sec;
	const char *name;
} keys[K_COUNT] = {
	[K_SOCKET] = { SEC_BROKER, "socket" },
	[K_LOG_LEVEL] = { SEC_BROKER, "log-level" },
	[K_IO] = { SEC_BROKER, "io" },
	[K_DEFAULT_CAP] = { SEC_BROKER, "default-capacity" },
	[K_MAX_CAP] = { SEC_BROKER, "max-capacity" },
	[K_FOREGROUND] = { SEC_BROKER, "foreground" },
	[K_SPIN_US] = { SEC_BROKER, "spin-us" },
	[K_DIRECT] = { SEC_BROKER, "direct" },
	[K_MAX_CLIENTS] = { SEC_LIMITS, "max-clients" },
	[K_MAX_PORTS] = { SEC_LIMITS, "max-ports" },
	[K_MAX_SUBS] = { SEC_LIMITS, "max-subscriptions" },
	[K_MAX_RING_BYTES] = { SEC_LIMITS, "max-ring-bytes" },
	[K_MAX_KEY] = { SEC_LIMITS, "max-key-size" },
	[K_MAX_DATA] = { SEC_LIMITS, "max-data-size" },
	[K_DIRECT_MAX_FILTERS] = { SEC_LIMITS, "direct-max-filters" },
	[K_MAX_DIRECT_RINGS] = { SEC_LIMITS, "max-direct-rings" },
	[K_DIRECT_RINGS_PER_PORT] = { SEC_LIMITS, "direct-rings-per-port" },
	[K_DIRECT_RING_SIZE] = { SEC_LIMITS, "direct-ring-size" },
	[K_MAX_DIRECT_BYTES] = { SEC_LIMITS, "max-direct-bytes" },
	[K_MODE] = { SEC_SOCKET, "mode" },
	[K_GROUP] = { SEC_SOCKET, "group" },
};

static const char *const section_names[] = {
	[SEC_BROKER] = "broker", [SEC_LIMITS] = "limits", [SEC_SOCKET] = "socket",
};

struct reader {
	struct shu_ini ini;           /* first: the section callback gets &r->ini */
	struct shnd_config *cfg;
	int key_line[K_COUNT];
	char *socket_value;           /* [broker] socket, until finish */
};

/* Record the first error, at the current line (util/ini.h). */
#define fail(r, ...) shu_ini_fail(&(r)->ini, __VA_ARGS__)

/* A section header line (after '['): write what inih is to see into out.
 * struct reader starts with its struct shu_ini: ini is r. */
static void section_header(struct shu_ini *ini, const char *s, char *out, size_t outlen)
{
	struct reader *r = (struct reader *)ini;
	struct shnd_acl *acl = &r->cfg->acl;
	const char *p = s, *end;
	char name[32];
	size_t n = 0;
	uint32_t i;

	snprintf(out, outlen, "[!]\n");
	while (*p == ' ' || *p == '\t')
		p++;
	while (*p != '\0' && *p != ']' && *p != ' ' && *p != '\t' && *p != '"' && n + 1 < sizeof(name))
		name[n++] = *p++;
	name[n] = '\0';
	while (*p == ' ' || *p == '\t')
		p++;
	if (strcmp(name, "acl") == 0 && *p == '"') {
		struct shnd_acl_rule rule, *nr;
		char why[160];
		size_t len;

		memset(&rule, 0, sizeof(rule));
		if (shu_prefix_parse(p, &end, rule.prefix, sizeof(rule.prefix), &len, why,
				     sizeof(why)) < 0) {
			fail(r, "%s", why);
			return;
		}
		rule.len = (uint16_t)len;
		p = end;
		while (*p == ' ' || *p == '\t')
			p++;
		if (*p != ']') {
			fail(r, "expected ']' after the quoted prefix of [acl \"PREFIX\"]");
			return;
		}
		for (i = 0; i < acl->n; i++)
			if (acl->rules[i].len == rule.len &&
			    memcmp(acl->rules[i].prefix, rule.prefix, rule.len) == 0) {
				fail(r, "a second [acl] section for the same prefix (the first is at "
				     "line %d): merge them", acl->rules[i].line);
				return;
			}
		nr = realloc(acl->rules, (acl->n + 1) * sizeof(*nr));
		if (nr == NULL) {
			fail(r, "out of memory");
			return;
		}
		acl->rules = nr;
		rule.line = r->ini.lineno;
		acl->rules[acl->n] = rule;
		snprintf(out, outlen, "[acl#%u]\n", acl->n);
		acl->n++;
		p++;
	} else if (*p == ']' && n > 0 && n + 1 < sizeof(name)) {
		for (i = 0; i < sizeof(section_names) / sizeof(section_names[0]); i++)
			if (strcmp(name, section_names[i]) == 0)
				break;
		if (i == sizeof(section_names) / sizeof(section_names[0])) {
			fail(r, "unknown section [%s]: expected [broker], [limits], [socket] or "
			     "[acl \"PREFIX\"]", name);
			return;
		}
		snprintf(out, outlen, "[%s]\n", name);
		p++;
	} else if (strcmp(name, "acl") == 0) {
		fail(r, "an [acl] section names its key prefix in double quotes: [acl \"PREFIX\"]");
		return;
	} else {
		fail(r, "bad section header: expected [broker], [limits], [socket] or "
		     "[acl \"PREFIX\"]");
		return;
	}
	while (*p == ' ' || *p == '\t')
		p++;
	if (*p != '\0' && *p != ';' && *p != '#') {
		snprintf(out, outlen, "[!]\n");
		fail(r, "unexpected text after the section header's ']'");
	}
}

static bool parse_u32(const char *v, uint32_t min, uint32_t max, uint32_t *out)
{
	uint64_t x;

	if (shnd_parse_size(v, min, max, &x) < 0)
		return (false);
	*out = (uint32_t)x;
	return (true);
}

static void set_key(struct reader *r, enum key_id k, const char *v)
{
	struct shnd_config *cfg = r->cfg;
	uint64_t x;

	switch (k) {
	case K_SOCKET:
		free(r->socket_value);
		r->socket_value = strdup(v);
		if (r->socket_value == NULL)
			fail(r, "out of memory");
		break;
	case K_LOG_LEVEL:
		if (shnd_log_parse_level(v, &cfg->log_level) < 0)
			fail(r, "log-level '%s': expected error, warn, info or debug", v);
		break;
	case K_IO:
		if (parse_io(v, &cfg->io) < 0)
			fail(r, "io '%s': expected uring, epoll or auto", v);
		break;
	case K_DEFAULT_CAP:
		if (shnd_parse_size(v, 1, SHN_RING_MAX_CAPACITY, &x) < 0)
			fail(r, "default-capacity '%s': expected bytes (K, M, G suffixes) from 1 "
			     "to %u", v, SHN_RING_MAX_CAPACITY);
		else {
			cfg->default_capacity = shn_ring_round_capacity((uint32_t)x);
			cfg->line_default_capacity = r->ini.lineno;
		}
		break;
	case K_MAX_CAP:
		if (shnd_parse_size(v, 1, SHN_RING_MAX_CAPACITY, &x) < 0)
			fail(r, "max-capacity '%s': expected bytes (K, M, G suffixes) from 1 to %u",
			     v, SHN_RING_MAX_CAPACITY);
		else {
			cfg->max_capacity = round_down_capacity(x);
			cfg->line_max_capacity = r->ini.lineno;
		}
		break;
	case K_FOREGROUND:
		break;   /* always in the foreground; accepted for old files */
	case K_SPIN_US:
		if (!parse_u32(v, 0, SHND_SPIN_US_MAX, &cfg->spin_us))
			fail(r, "spin-us '%s': expected microseconds from 0 (never spin, the "
			     "default) to %u", v, SHND_SPIN_US_MAX);
		break;
	case K_DIRECT:
		if (parse_direct(v, &cfg->direct) < 0)
			fail(r, "direct '%s': expected auto (publishers write straight into "
			     "subscribers' rings where they may) or off (everything through the "
			     "broker)", v);
		break;
	case K_DIRECT_MAX_FILTERS:
		if (!parse_u32(v, 1, SHND_DIRECT_MAX_FILTERS_MAX, &cfg->lim.direct_max_filters))
			fail(r, "direct-max-filters '%s': expected a number from 1 to %u", v,
			     SHND_DIRECT_MAX_FILTERS_MAX);
		break;
	case K_MAX_DIRECT_RINGS:
		if (!parse_u32(v, 0, 1000000, &cfg->lim.max_direct_rings))
			fail(r, "max-direct-rings '%s': expected a number from 0 (no direct ring) "
			     "to 1000000", v);
		break;
	case K_DIRECT_RINGS_PER_PORT:
		if (!parse_u32(v, 0, SHND_DIRECT_RINGS_PER_PORT_MAX, &cfg->lim.direct_rings_per_port))
			fail(r, "direct-rings-per-port '%s': expected a number from 0 to %u", v,
			     SHND_DIRECT_RINGS_PER_PORT_MAX);
		break;
	case K_DIRECT_RING_SIZE:
		if (shnd_parse_size(v, 1, SHN_RING_MAX_CAPACITY, &x) < 0)
			fail(r, "direct-ring-size '%s': expected bytes (K, M, G suffixes) from 1 "
			     "to %u", v, SHN_RING_MAX_CAPACITY);
		else
			cfg->lim.direct_ring_size = shn_ring_round_capacity((uint32_t)x);
		break;
	case K_MAX_DIRECT_BYTES:
		if (shnd_parse_size(v, 0, 1ull << 40, &cfg->lim.max_direct_bytes) < 0)
			fail(r, "max-direct-bytes '%s': expected bytes (K, M, G suffixes) from 0 "
			     "to 1024G", v);
		break;
	case K_MAX_CLIENTS:
		if (!parse_u32(v, 1, 1000000, &cfg->lim.max_clients))
			fail(r, "max-clients '%s': expected a number from 1 to 1000000", v);
		break;
	case K_MAX_PORTS:
		if (!parse_u32(v, 1, 1000000, &cfg->lim.max_ports))
			fail(r, "max-ports '%s': expected a number from 1 to 1000000", v);
		break;
	case K_MAX_SUBS:
		if (!parse_u32(v, 1, 100000000, &cfg->lim.max_subs))
			fail(r, "max-subscriptions '%s': expected a number from 1 to 100000000", v);
		break;
	case K_MAX_RING_BYTES:
		if (shnd_parse_size(v, SHN_RING_MIN_CAPACITY, 1ull << 40, &cfg->lim.max_ring_bytes) < 0)
			fail(r, "max-ring-bytes '%s': expected bytes (K, M, G suffixes) from %u to 1024G",
			     v, SHN_RING_MIN_CAPACITY);
		cfg->line_max_ring_bytes = r->ini.lineno;
		break;
	case K_MAX_KEY:
		if (!parse_u32(v, 1, SHN_KEY_MAX_WIRE, &cfg->lim.max_key))
			fail(r, "max-key-size '%s': expected bytes from 1 to %u (the protocol's maximum)",
			     v, SHN_KEY_MAX_WIRE);
		break;
	case K_MAX_DATA:
		if (!parse_u32(v, 0, SHN_DATA_MAX_WIRE, &cfg->lim.max_data))
			fail(r, "max-data-size '%s': expected bytes from 0 to %u (the protocol's maximum)",
			     v, SHN_DATA_MAX_WIRE);
		break;
	case K_MODE: {
		char *end;
		unsigned long m;

		errno = 0;
		m = strtoul(v, &end, 8);
		if (errno || *end != '\0' || *v < '0' || *v > '7' || m > 0777 || (m & 0600) != 0600)
			fail(r, "mode '%s': expected an octal mode such as 0660 or 0666 (the owner "
			     "keeps read and write)", v);
		else
			cfg->sock_mode = (int)m;
		break;
	}
	case K_GROUP: {
		struct group *gr = getgrnam(v);
		char *end;
		unsigned long g;

		if (gr != NULL) {
			cfg->sock_group = gr->gr_gid;
		} else {
			errno = 0;
			g = strtoul(v, &end, 10);
			if (errno || *end != '\0' || *v < '0' || *v > '9' || g >= UINT32_MAX) {
				fail(r, "group '%s': no such group (a name from /etc/group or a number)",
				     v);
				break;
			}
			cfg->sock_group = (gid_t)g;
		}
		cfg->has_group = true;
		break;
	}
	case K_COUNT:
		break;
	}
}

static int handler(void *user, const char *section, const char *name, const char *value)
{
	struct reader *r = user;
	enum section sec;
	unsigned k;

	if (strcmp(section, "!") == 0)
		return (1);   /* under a bad header: already reported */
	if (section[0] == '\0' || strcmp(section, "broker") == 0)
		sec = SEC_BROKER;   /* keys before any section: [broker], as old files have them */
	else if (strcmp(section, "limits") == 0)
		sec = SEC_LIMITS;
	else if (strcmp(section, "socket") == 0)
		sec = SEC_SOCKET;
	else if (strncmp(section, "acl#", 4) == 0)
		sec = SEC_ACL;
	else
		sec = SEC_BAD;
	if (sec == SEC_ACL) {
		struct shnd_acl_rule *rule = &r->cfg->acl.rules[strtoul(section + 4, NULL, 10)];
		struct shnd_who_list *l;
		char why[256];

		if (strcmp(name, "publish") == 0) {
			l = &rule->pub;
		} else if (strcmp(name, "subscribe") == 0) {
			l = &rule->sub;
		} else {
			fail(r, "unknown key '%s' in an [acl] section: expected publish or subscribe",
			     name);
			return (1);
		}
		if (l->line) {
			fail(r, "'%s' set twice in this [acl] section (first at line %d)", name,
			     l->line);
			return (1);
		}
		l->line = r->ini.lineno;
		if (shnd_acl_parse_who(value, l, why, sizeof(why)) < 0)
			fail(r, "%s: %s", name, why);
		return (1);
	}
	for (k = 0; k < K_COUNT; k++)
		if (keys[k].sec == sec && strcmp(keys[k].name, name) == 0)
			break;
	if (k == K_COUNT) {
		if (sec == SEC_BROKER)
			fail(r, "unknown key '%s' in [broker]: expected socket, log-level, io, "
			     "default-capacity, max-capacity, spin-us or direct", name);
		else if (sec == SEC_LIMITS)
			fail(r, "unknown key '%s' in [limits]: expected max-clients, max-ports, "
			     "max-subscriptions, max-ring-bytes, max-key-size, max-data-size, "
			     "direct-max-filters, max-direct-rings, direct-rings-per-port, "
			     "direct-ring-size or max-direct-bytes", name);
		else
			fail(r, "unknown key '%s' in [socket]: expected mode or group (the path is "
			     "[broker] socket)", name);
		return (1);
	}
	if (r->key_line[k]) {
		fail(r, "'%s' set twice (first at line %d)", name, r->key_line[k]);
		return (1);
	}
	r->key_line[k] = r->ini.lineno;
	if (*value == '\0' && k != K_FOREGROUND) {
		fail(r, "'%s' needs a value", name);
		return (1);
	}
	set_key(r, k, value);
	return (1);
}

/* Every error, as it is found: "shmnotifyd: FILE:LINE: what is wrong".
 * struct reader starts with its struct shu_ini: ini is r. */
static void report(struct shu_ini *ini, int line, const char *msg)
{
	struct reader *r = (struct reader *)ini;

	shnd_log_untagged(SHND_LOG_ERROR, "%s:%d: %s", r->cfg->file, line, msg);
}

/* util/ini.c's reader, then a look at what inih is to parse: a line that
 * is neither a comment, nor a section, nor "key = value" is reported here
 * and handed on empty, so that every such line is listed (inih would only
 * return the first one's number). */
static char *read_line(char *str, int num, void *stream)
{
	struct shu_ini *ini = stream;

	if (shu_ini_read_line(str, num, stream) == NULL)
		return (NULL);
	if (str[0] != '\n' && str[0] != '[' && str[0] != ';' && str[0] != '#' &&
	    strpbrk(str, "=:") == NULL) {
		shu_ini_fail(ini, "expected 'key = value', '[section]' or a comment ('#' or ';' "
			     "first on the line)");
		snprintf(str, (size_t)num, "\n");
	}
	return (str);
}

/* The [broker] socket value, kept until finish (the command line wins). */
static char *file_socket;

int shnd_config_load(struct shnd_config *cfg, const char *path)
{
	struct reader r;
	char *buf;
	size_t len;
	int rc, err;

	cfg->file = path;
	err = shu_ini_read_file(path, &buf, &len);
	if (err < 0) {
		shnd_log_untagged(SHND_LOG_ERROR, "cannot read the configuration file %s: %s", path,
				  err == -EFBIG ? "larger than 1 MiB" : strerror(-err));
		return (-1);
	}
	memset(&r, 0, sizeof(r));
	shu_ini_init(&r.ini, buf, len, section_header);
	r.ini.report = report;
	r.cfg = cfg;
	rc = ini_parse_stream(read_line, &r.ini, handler, &r);
	free(buf);
	if (rc > 0) {
		/* a line read_line let through that inih still refused */
		r.ini.lineno = rc;
		fail(&r, "expected 'key = value', '[section]' or a comment ('#' or ';' first on "
		     "the line)");
	} else if (rc < 0) {
		shnd_log_untagged(SHND_LOG_ERROR, "%s: cannot parse (inih error %d)", path, rc);
		r.ini.nerr++;
	}
	if (r.ini.nerr > 0) {
		free(r.socket_value);
		return (-1);
	}
	free(file_socket);
	file_socket = r.socket_value;
	return (0);
}

/* ---- the command line, checks, the socket path -------------------------- */

static int cfg_error(const struct shnd_config *cfg, int line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int cfg_error(const struct shnd_config *cfg, int line, const char *fmt, ...)
{
	char msg[768];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (line > 0 && cfg->file != NULL)
		shnd_log_untagged(SHND_LOG_ERROR, "%s:%d: %s", cfg->file, line, msg);
	else
		shnd_log_untagged(SHND_LOG_ERROR, "%s", msg);
	return (-1);
}

/* v as --print-config writes it: 64M, 512K, 1000. */
static const char *size_str(uint64_t v, char *buf, size_t len)
{
	if (v != 0 && v % (1ull << 30) == 0)
		snprintf(buf, len, "%lluG", (unsigned long long)(v >> 30));
	else if (v != 0 && v % (1ull << 20) == 0)
		snprintf(buf, len, "%lluM", (unsigned long long)(v >> 20));
	else if (v != 0 && v % (1ull << 10) == 0)
		snprintf(buf, len, "%lluK", (unsigned long long)(v >> 10));
	else
		snprintf(buf, len, "%llu", (unsigned long long)v);
	return (buf);
}

/* Where a capacity came from, for the message. */
static const char *origin(const char *opt, bool on_cmdline, int line, char *buf, size_t len)
{
	if (on_cmdline)
		snprintf(buf, len, "%s", opt);
	else if (line > 0)
		snprintf(buf, len, "line %d", line);
	else
		snprintf(buf, len, "the default");
	return (buf);
}

/* default-capacity and max-capacity are one set: a default above the
 * largest ring a client may get would have every client that asks for the
 * default refused, and changing either for the other would hide the
 * mistake, whichever of the two was given last or alone.  -1 after the
 * message. */
static int check_capacities(const struct shnd_config *cfg, const struct shnd_cmdline *cl)
{
	char d[24], m[24], dfrom[32], mfrom[32];
	int line;

	if (cfg->default_capacity <= cfg->max_capacity)
		return (0);
	/* the file's line when one of the two is from the file: the later */
	line = cfg->line_max_capacity > cfg->line_default_capacity ? cfg->line_max_capacity :
								     cfg->line_default_capacity;
	return (cfg_error(cfg, line, "default-capacity %s (%s) is above max-capacity %s (%s): "
			  "lower default-capacity or raise max-capacity; neither is changed "
			  "to fit the other",
			  size_str(cfg->default_capacity, d, sizeof(d)),
			  origin("--default-capacity", cl->default_cap != NULL,
				 cfg->line_default_capacity, dfrom, sizeof(dfrom)),
			  size_str(cfg->max_capacity, m, sizeof(m)),
			  origin("--max-capacity", cl->max_cap != NULL, cfg->line_max_capacity,
				 mfrom, sizeof(mfrom))));
}

int shnd_config_finish(struct shnd_config *cfg, const struct shnd_cmdline *cl)
{
	const char *sock = (cl->socket != NULL && cl->socket[0] != '\0') ? cl->socket : file_socket;
	const char *env = getenv("SHMNOTIFY_SOCKET");
	bool caps_ok = true;
	int rc = 0;
	uint64_t v;

	/* every check runs, so that one run lists every mistake */
	if (cl->log_level && shnd_log_parse_level(cl->log_level, &cfg->log_level) < 0)
		rc = cfg_error(cfg, 0, "bad --log-level '%s' (error, warn, info or debug)",
			       cl->log_level);
	if (cl->io && parse_io(cl->io, &cfg->io) < 0)
		rc = cfg_error(cfg, 0, "bad --io '%s' (uring, epoll or auto)", cl->io);
	if (cl->direct && parse_direct(cl->direct, &cfg->direct) < 0)
		rc = cfg_error(cfg, 0, "bad --direct '%s' (auto or off)", cl->direct);
	if (cl->spin_us) {
		if (shnd_parse_size(cl->spin_us, 0, SHND_SPIN_US_MAX, &v) < 0)
			rc = cfg_error(cfg, 0, "bad --spin-us '%s' (microseconds, 0 to %u)",
				       cl->spin_us, SHND_SPIN_US_MAX);
		else
			cfg->spin_us = (uint32_t)v;
	}
	if (cl->max_cap) {
		if (shnd_parse_size(cl->max_cap, 1, SHN_RING_MAX_CAPACITY, &v) < 0) {
			rc = cfg_error(cfg, 0, "bad --max-capacity '%s' (bytes, K/M/G suffixes, "
				       "at most %u)", cl->max_cap, SHN_RING_MAX_CAPACITY);
			caps_ok = false;
		} else {
			cfg->max_capacity = round_down_capacity(v);
			cfg->line_max_capacity = 0;
		}
	}
	if (cl->default_cap) {
		if (shnd_parse_size(cl->default_cap, 1, SHN_RING_MAX_CAPACITY, &v) < 0) {
			rc = cfg_error(cfg, 0, "bad --default-capacity '%s' (bytes, K/M/G "
				       "suffixes, at most %u)", cl->default_cap,
				       SHN_RING_MAX_CAPACITY);
			caps_ok = false;
		} else {
			cfg->default_capacity = shn_ring_round_capacity((uint32_t)v);
			cfg->line_default_capacity = 0;
		}
	}
	if (caps_ok && check_capacities(cfg, cl) < 0)
		rc = -1;
	if (cfg->lim.max_ring_bytes < cfg->default_capacity)
		rc = cfg_error(cfg, cfg->line_max_ring_bytes,
			       "max-ring-bytes %llu is below default-capacity %u: no client "
			       "could even get its publish ring; raise it",
			       (unsigned long long)cfg->lim.max_ring_bytes, cfg->default_capacity);
	cfg->default_path = (sock == NULL || sock[0] == '\0') && (env == NULL || env[0] == '\0');
	if (cfg->default_path && (cfg->sock_mode >= 0 || cfg->has_group))
		rc = cfg_error(cfg, 0, "[socket] mode and group are for a system broker's "
			       "socket: also set [broker] socket or --socket (the per-user "
			       "default socket stays private: 0700 directory, 0600 socket)");
	if (cfg->has_group && cfg->sock_mode < 0)
		cfg->sock_mode = 0660;
	cfg->shared = cfg->sock_mode >= 0 && (cfg->sock_mode & 0077) != 0;
	if (shn__resolve_socket_path(sock, cfg->socket_path, sizeof(cfg->socket_path)) < 0)
		rc = cfg_error(cfg, 0, "socket path too long (at most %zu bytes)",
			       sizeof(cfg->socket_path) - 1);
	shnd_acl_sort(&cfg->acl);
	return (rc);
}

/* ---- --print-config ----------------------------------------------------- */

static void print_size(FILE *f, const char *key, uint64_t v)
{
	char buf[24];

	fprintf(f, "%s = %s\n", key, size_str(v, buf, sizeof(buf)));
}

void shnd_config_print(const struct shnd_config *cfg, FILE *f)
{
	static const char *const levels[] = { "error", "warn", "info", "debug" };
	static const char *const ios[] = { "auto", "uring", "epoll" };
	struct group *gr;

	fprintf(f, "; shmnotifyd: the effective configuration (defaults, then %s%s, then the "
		"command line)\n", cfg->file ? "the file " : "no file", cfg->file ? cfg->file : "");
	fprintf(f, "[broker]\n");
	if (cfg->default_path)
		fprintf(f, "; socket = %s   (the per-user default)\n", cfg->socket_path);
	else
		fprintf(f, "socket = %s\n", cfg->socket_path);
	fprintf(f, "log-level = %s\n", levels[cfg->log_level]);
	fprintf(f, "io = %s\n", ios[cfg->io]);
	print_size(f, "default-capacity", cfg->default_capacity);
	print_size(f, "max-capacity", cfg->max_capacity);
	fprintf(f, "spin-us = %u\n", cfg->spin_us);
	fprintf(f, "direct = %s\n", cfg->direct ? "auto" : "off");
	fprintf(f, "\n[limits]\n");
	fprintf(f, "max-clients = %u\n", cfg->lim.max_clients);
	fprintf(f, "max-ports = %u\n", cfg->lim.max_ports);
	fprintf(f, "max-subscriptions = %u\n", cfg->lim.max_subs);
	print_size(f, "max-ring-bytes", cfg->lim.max_ring_bytes);
	fprintf(f, "max-key-size = %u\n", cfg->lim.max_key);
	fprintf(f, "max-data-size = %u\n", cfg->lim.max_data);
	fprintf(f, "direct-max-filters = %u\n", cfg->lim.direct_max_filters);
	fprintf(f, "max-direct-rings = %u\n", cfg->lim.max_direct_rings);
	fprintf(f, "direct-rings-per-port = %u\n", cfg->lim.direct_rings_per_port);
	print_size(f, "direct-ring-size", cfg->lim.direct_ring_size);
	print_size(f, "max-direct-bytes", cfg->lim.max_direct_bytes);
	fprintf(f, "\n[socket]\n");
	if (cfg->sock_mode >= 0)
		fprintf(f, "mode = 0%03o\n", (unsigned)cfg->sock_mode);
	else
		fprintf(f, "; mode = 0600   (not set: only the broker's uid and root may connect)\n");
	if (cfg->has_group) {
		gr = getgrgid(cfg->sock_group);
		if (gr != NULL)
			fprintf(f, "group = %s\n", gr->gr_name);
		else
			fprintf(f, "group = %u\n", (unsigned)cfg->sock_group);
	} else {
		fprintf(f, "; group: not set (the broker's own)\n");
	}
	fputc('\n', f);
	shnd_acl_print(&cfg->acl, f);
}
