/* SPDX-License-Identifier: MIT */
/*
 * main.c - shmnotifyd: arguments, configuration file, signals, startup.
 *
 * The broker always runs in the foreground (a service manager or the
 * shell's & detaches it); --foreground is accepted for compatibility.
 * Exit status: 0 after SIGTERM/SIGINT, 1 when it cannot start (2 for bad
 * arguments).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "shm/sockpath.h"

#include "broker.h"
#include "log.h"

static const char usage_line[] =
	"usage: shmnotifyd [--socket PATH] [--config FILE] [--foreground] "
	"[--log-level error|warn|info|debug] [--io uring|epoll|auto] "
	"[--default-capacity BYTES] [--max-capacity BYTES] [--help]\n";

static const char help_text[] =
	"\n"
	"The shmnotify broker: routes notifications between local processes through\n"
	"shared-memory rings.  Runs in the foreground; SIGTERM or SIGINT stop it.\n"
	"\n"
	"  --socket PATH           control socket (default: $SHMNOTIFY_SOCKET, else\n"
	"                          $XDG_RUNTIME_DIR/shmnotify/shmnotify.sock, /run/... for\n"
	"                          root, /tmp/shmnotify-UID/...)\n"
	"  --config FILE           read 'key = value' lines (socket, log-level, io,\n"
	"                          default-capacity, max-capacity); options win\n"
	"  --foreground            accepted for compatibility (always in the foreground)\n"
	"  --log-level LEVEL       error, warn, info (default) or debug; logs go to stderr\n"
	"  --io BACKEND            uring, epoll or auto (default: io_uring, else epoll)\n"
	"  --default-capacity N    ring bytes when a client asks 0 (default 1M)\n"
	"  --max-capacity N        largest ring a client may get (default 64M)\n"
	"                          N: bytes, or with a K, M or G suffix (powers of 1024)\n";

/* What the command line and the configuration file may set; NULL or 0:
 * not given. */
struct opts {
	const char *socket;
	const char *config;
	const char *log_level;
	const char *io;
	const char *default_cap;
	const char *max_cap;
};

static int usage_error(const char *fmt, const char *arg)
{
	fprintf(stderr, "shmnotifyd: ");
	fprintf(stderr, fmt, arg);
	fprintf(stderr, "\n%s", usage_line);
	return (2);
}

/* Bytes with an optional K/M/G suffix.  0 or -EINVAL. */
static int parse_size(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;

	if (s[0] < '0' || s[0] > '9')
		return (-EINVAL);
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno)
		return (-EINVAL);
	switch (*end) {
	case 'k': case 'K': v <<= 10; end++; break;
	case 'm': case 'M': v <<= 20; end++; break;
	case 'g': case 'G': v <<= 30; end++; break;
	}
	if (*end == 'i' && end[1] == 'B')
		end += 2;
	else if (*end == 'B')
		end++;
	if (*end != '\0' || v == 0 || v > SHN_RING_MAX_CAPACITY)
		return (-EINVAL);
	*out = v;
	return (0);
}

static char *trim(char *s)
{
	char *e;

	while (*s == ' ' || *s == '\t')
		s++;
	e = s + strlen(s);
	while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\n' || e[-1] == '\r'))
		*--e = '\0';
	return (s);
}

/* Fill what the command line left unset from a 'key = value' file.  The
 * strings are leaked on purpose: they live as long as the process. */
static int read_config(const char *path, struct opts *o)
{
	FILE *f = fopen(path, "re");
	char line[512];
	int lineno = 0;

	if (f == NULL) {
		fprintf(stderr, "shmnotifyd: cannot read %s: %s\n", path, strerror(errno));
		return (-1);
	}
	while (fgets(line, sizeof(line), f) != NULL) {
		char *k = trim(line), *v, *eq;
		const char **slot = NULL;

		lineno++;
		if (*k == '\0' || *k == '#')
			continue;
		eq = strchr(k, '=');
		if (eq == NULL) {
			fprintf(stderr, "shmnotifyd: %s:%d: expected 'key = value'\n", path, lineno);
			fclose(f);
			return (-1);
		}
		*eq = '\0';
		k = trim(k);
		v = trim(eq + 1);
		if (strcmp(k, "socket") == 0)
			slot = &o->socket;
		else if (strcmp(k, "log-level") == 0)
			slot = &o->log_level;
		else if (strcmp(k, "io") == 0)
			slot = &o->io;
		else if (strcmp(k, "default-capacity") == 0)
			slot = &o->default_cap;
		else if (strcmp(k, "max-capacity") == 0)
			slot = &o->max_cap;
		else if (strcmp(k, "foreground") == 0)
			continue;
		if (slot == NULL) {
			fprintf(stderr, "shmnotifyd: %s:%d: unknown key '%s'\n", path, lineno, k);
			fclose(f);
			return (-1);
		}
		if (*slot == NULL)
			*slot = strdup(v);
	}
	fclose(f);
	return (0);
}

/* Turn options into a configuration.  0, or an exit status. */
static int configure(const struct opts *o, struct shnd_config *cfg)
{
	uint64_t v;
	int n;

	memset(cfg, 0, sizeof(*cfg));
	if (o->log_level && shnd_log_parse_level(o->log_level, &shnd_log_level) < 0)
		return (usage_error("bad --log-level '%s'", o->log_level));
	cfg->io = SHND_IO_AUTO;
	if (o->io) {
		if (strcmp(o->io, "uring") == 0 || strcmp(o->io, "io_uring") == 0)
			cfg->io = SHND_IO_URING;
		else if (strcmp(o->io, "epoll") == 0)
			cfg->io = SHND_IO_EPOLL;
		else if (strcmp(o->io, "auto") != 0)
			return (usage_error("bad --io '%s' (uring, epoll or auto)", o->io));
	}
	cfg->max_capacity = SHND_DEFAULT_MAX_CAPACITY;
	if (o->max_cap) {
		if (parse_size(o->max_cap, &v) < 0)
			return (usage_error("bad --max-capacity '%s'", o->max_cap));
		/* round down: nothing granted may exceed what was configured */
		cfg->max_capacity = SHN_RING_MIN_CAPACITY;
		while ((uint64_t)cfg->max_capacity * 2 <= v)
			cfg->max_capacity *= 2;
	}
	cfg->default_capacity = SHND_DEFAULT_CAPACITY;
	if (o->default_cap) {
		if (parse_size(o->default_cap, &v) < 0)
			return (usage_error("bad --default-capacity '%s'", o->default_cap));
		cfg->default_capacity = shn_ring_round_capacity(v);
	}
	if (cfg->default_capacity > cfg->max_capacity) {
		if (o->default_cap)
			return (usage_error("--default-capacity %s is above the maximum capacity",
					    o->default_cap));
		cfg->default_capacity = cfg->max_capacity;
	}
	cfg->default_path = (o->socket == NULL || o->socket[0] == '\0') &&
			    (getenv("SHMNOTIFY_SOCKET") == NULL || getenv("SHMNOTIFY_SOCKET")[0] == '\0');
	n = shn__resolve_socket_path(o->socket, cfg->socket_path, sizeof(cfg->socket_path));
	if (n < 0) {
		fprintf(stderr, "shmnotifyd: socket path too long\n");
		return (2);
	}
	return (0);
}

/* More clients: each holds a few descriptors (socket, eventfds). */
static void raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "config", required_argument, NULL, 'c' },
		{ "foreground", no_argument, NULL, 'f' },
		{ "log-level", required_argument, NULL, 'l' },
		{ "io", required_argument, NULL, 'i' },
		{ "default-capacity", required_argument, NULL, 'd' },
		{ "max-capacity", required_argument, NULL, 'm' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct opts o = { 0 };
	struct shnd_config cfg;
	struct shnd_broker b;
	sigset_t set;
	int opt, rc;

	opterr = 0;
	while ((opt = getopt_long(argc, argv, ":s:c:fl:i:d:m:h", longopts, NULL)) != -1) {
		switch (opt) {
		case 's': o.socket = optarg; break;
		case 'c': o.config = optarg; break;
		case 'f': break;
		case 'l': o.log_level = optarg; break;
		case 'i': o.io = optarg; break;
		case 'd': o.default_cap = optarg; break;
		case 'm': o.max_cap = optarg; break;
		case 'h':
			fputs(usage_line, stdout);
			fputs(help_text, stdout);
			return (0);
		case ':':
			return (usage_error("option '%s' needs an argument", argv[optind - 1]));
		default:
			return (usage_error("unknown option '%s'", argv[optind - 1]));
		}
	}
	if (optind < argc)
		return (usage_error("unexpected argument '%s'", argv[optind]));
	if (o.config && read_config(o.config, &o) < 0)
		return (2);
	rc = configure(&o, &cfg);
	if (rc)
		return (rc);

	/* signals arrive through a signalfd in the loop; a vanished client
	 * must not kill the broker through SIGPIPE */
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigprocmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);
	raise_nofile();

	rc = shnd_broker_init(&b, &cfg);
	if (rc == 0)
		rc = shnd_broker_run(&b);
	else
		rc = 1;
	if (rc < 0) {
		shnd_err("event loop failed: %s", strerror(-rc));
		rc = 1;
	}
	shnd_broker_fini(&b);
	return (rc);
}
