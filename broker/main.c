/* SPDX-License-Identifier: MIT */
/*
 * main.c - shmnotifyd: arguments, configuration file, signals, startup.
 *
 * The broker always runs in the foreground (a service manager or the
 * shell's & detaches it); --foreground is accepted for compatibility.
 * Exit status: 0 after SIGTERM/SIGINT (and after --print-config), 1 when
 * it cannot start, 2 for bad arguments or a bad configuration file.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "broker.h"
#include "config.h"
#include "log.h"

static const char usage_line[] =
	"usage: shmnotifyd [--socket PATH] [--config FILE] [--foreground] "
	"[--log-level error|warn|info|debug] [--io uring|epoll|auto] "
	"[--default-capacity BYTES] [--max-capacity BYTES] [--spin-us N] [--direct auto|off] "
	"[--print-config] "
	"[--check-config FILE] [--help] [--version]\n";

static const char help_text[] =
	"\n"
	"The shmnotify broker: routes notifications between local processes through\n"
	"shared-memory rings.  Runs in the foreground; SIGTERM or SIGINT stop it.\n"
	"\n"
	"  --socket PATH           control socket (default: $SHMNOTIFY_SOCKET, else\n"
	"                          $XDG_RUNTIME_DIR/shmnotify/shmnotify.sock, /run/... for\n"
	"                          root, /tmp/shmnotify-UID/...)\n"
	"  --config FILE           an INI file: [broker], [limits], [socket] and\n"
	"                          [acl \"PREFIX\"] sections (docs/config.md); options win.\n"
	"                          Without it: $SHMNOTIFY_CONFIG, else the first that\n"
	"                          exists of $XDG_CONFIG_HOME/shmnotify/shmnotifyd.conf\n"
	"                          (~/.config/...) and /etc/shmnotify/shmnotifyd.conf\n"
	"  --version               print the version and exit\n"
	"  --print-config          print the effective configuration and exit\n"
	"  --check-config FILE     check FILE and exit: 0 and 'FILE: ok', or 2 and\n"
	"                          FILE:LINE: what is wrong, for every error\n"
	"  --foreground            accepted for compatibility (always in the foreground)\n"
	"  --log-level LEVEL       error, warn, info (default) or debug; logs go to stderr,\n"
	"                          with <N> priority prefixes for the journal when\n"
	"                          JOURNAL_STREAM is set or stderr is no terminal, with\n"
	"                          timestamps on a terminal\n"
	"  --io BACKEND            uring, epoll or auto (default: io_uring, else epoll)\n"
	"  --default-capacity N    ring bytes when a client asks 0 (default 1M)\n"
	"  --max-capacity N        largest ring a client may get (default 64M)\n"
	"  --direct MODE           auto (default): clients that ask may get the direct\n"
	"                          path (docs/direct-path.md); off: everything through the\n"
	"                          broker\n"
	"  --spin-us N             low-latency mode: before sleeping, keep looking for work\n"
	"                          for N microseconds (0-1000; default 0: never spin).\n"
	"                          Costs up to N us of CPU per wake-up (docs/performance.md)\n"	"                          N: bytes, or with a K, M or G suffix (powers of 1024)\n";

static int usage_error(const char *fmt, const char *arg)
{
	fprintf(stderr, "shmnotifyd: ");
	fprintf(stderr, fmt, arg);
	fprintf(stderr, "\n%s", usage_line);
	return (2);
}

/* The configuration file when --config does not name one: $SHMNOTIFY_CONFIG
 * (which must exist), else the first existing of the per-user and the
 * system file.  NULL: none, the defaults apply.  *why: where it came from. */
static const char *find_config(char *buf, size_t len, const char **why)
{
	const char *env = getenv("SHMNOTIFY_CONFIG"), *xdg = getenv("XDG_CONFIG_HOME");
	const char *home = getenv("HOME");

	if (env != NULL && env[0] != '\0') {
		*why = "$SHMNOTIFY_CONFIG";
		return (env);
	}
	*why = "found";
	if (xdg != NULL && xdg[0] == '/')
		snprintf(buf, len, "%s/shmnotify/shmnotifyd.conf", xdg);
	else if (home != NULL && home[0] == '/')
		snprintf(buf, len, "%s/.config/shmnotify/shmnotifyd.conf", home);
	else
		buf[0] = '\0';
	if (buf[0] != '\0' && access(buf, F_OK) == 0)
		return (buf);
	if (access("/etc/shmnotify/shmnotifyd.conf", F_OK) == 0)
		return ("/etc/shmnotify/shmnotifyd.conf");
	return (NULL);
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
		{ "spin-us", required_argument, NULL, 'S' },
		{ "direct", required_argument, NULL, 'D' },
		{ "print-config", no_argument, NULL, 'p' },
		{ "check-config", required_argument, NULL, 'k' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	struct shnd_cmdline o = { 0 };
	const char *config = NULL, *check = NULL, *why = "--config";
	char found[PATH_MAX];
	bool print = false;
	struct shnd_config cfg;
	struct shnd_broker b;
	sigset_t set;
	int opt, rc;

	opterr = 0;
	while ((opt = getopt_long(argc, argv, ":s:c:fl:i:d:m:S:pk:hV", longopts, NULL)) != -1) {
		switch (opt) {
		case 's': o.socket = optarg; break;
		case 'c': config = optarg; break;
		case 'p': print = true; break;
		case 'k': check = optarg; break;
		case 'f': break;
		case 'l': o.log_level = optarg; break;
		case 'i': o.io = optarg; break;
		case 'd': o.default_cap = optarg; break;
		case 'm': o.max_cap = optarg; break;
		case 'S': o.spin_us = optarg; break;
		case 'D': o.direct = optarg; break;
		case 'h':
			fputs(usage_line, stdout);
			fputs(help_text, stdout);
			return (0);
		case 'V':
			printf("shmnotifyd %s\n", SHN_VERSION_STRING);
			return (0);
		case ':':
			return (usage_error("option '%s' needs an argument", argv[optind - 1]));
		default:
			return (usage_error("unknown option '%s'", argv[optind - 1]));
		}
	}
	if (optind < argc)
		return (usage_error("unexpected argument '%s'", argv[optind]));
	shnd_config_defaults(&cfg);
	if (check != NULL) {
		/* the file alone, as the broker would read it; every error, as
		 * plain FILE:LINE: lines (a person or an editor reads them),
		 * then the checks across values */
		struct shnd_cmdline none = { 0 };
		int loaded;

		shnd_log_set_style(SHND_LOG_PLAIN);
		loaded = shnd_config_load(&cfg, check);
		rc = shnd_config_finish(&cfg, &none) < 0 || loaded < 0;
		shnd_acl_free(&cfg.acl);
		if (rc)
			return (2);
		printf("%s: ok\n", check);
		return (0);
	}
	shnd_log_init();
	if (config == NULL)
		config = find_config(found, sizeof(found), &why);
	if (config != NULL)
		shnd_debug("configuration file %s (%s)", config, why);
	/* every mistake of the file and the options, then exit 2 */
	rc = config != NULL ? shnd_config_load(&cfg, config) : 0;
	if (shnd_config_finish(&cfg, &o) < 0 || rc < 0) {
		shnd_acl_free(&cfg.acl);
		return (2);
	}
	shnd_log_level = cfg.log_level;
	if (print) {
		shnd_config_print(&cfg, stdout);
		shnd_acl_free(&cfg.acl);
		return (fflush(stdout) == 0 ? 0 : 1);
	}

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
	shnd_acl_free(&cfg.acl);
	return (rc);
}
