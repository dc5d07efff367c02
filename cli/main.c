/* SPDX-License-Identifier: MIT */
/*
 * main.c - the shmnotify command: dispatch to the subcommands, and the
 * helpers they share (argument parsing, connecting with a useful message).
 */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "util/file_kind.h"
#include "util/utf8.h"

static const char main_usage[] =
	"usage: shmnotify [--help | --version] [--socket PATH] COMMAND [ARGS...]";

/* every command, for the help, the "did you mean" and the completions
 * (completion/ lists them too: test_cli_commands.sh compares) */
static const char *const commands[] = {
	"publish", "listen", "stats", "monitor", "doctor", "help", NULL,
};

static void print_main_help(FILE *f)
{
	char buf[256];

	fprintf(f,
		"%s\n"
		"\n"
		"Talk to shmnotifyd, the shared-memory notification broker.\n"
		"\n"
		"Commands:\n"
		"  publish   publish one batch of notifications under a key\n"
		"  listen    subscribe to keys and print notifications as they arrive\n"
		"  stats     show the broker's clients, ports and counters\n"
		"  monitor   print every notification the broker routes (root/owner only)\n"
		"  doctor    check what the broker needs from this machine\n"
		"  help      show the help of a command (same as COMMAND --help)\n"
		"\n"
		"Options:\n"
		"  -h, --help          show this help\n"
		"  -V, --version       show the version\n"
		"  -s, --socket PATH   the broker's socket, for any COMMAND\n"
		"\n"
		"Every command takes --socket PATH, before or after its name; without it\n"
		"$SHMNOTIFY_SOCKET is used, else the per-user default (here: %s).\n"
		"Run 'shmnotify COMMAND --help' for a command's options.\n"
		"\n"
		"Exit status: 0 success, 1 runtime error, 2 bad arguments,\n"
		"3 publish --sync cancelled by a subscriber.\n",
		main_usage, cli_socket_display(NULL, buf, sizeof buf));
}

void cli_err(const char *fmt, ...)
{
	va_list ap;

	fputs("shmnotify: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

int cli_usage_error(const char *cmd, const char *usage, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "shmnotify %s: ", cmd);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n%s\nTry 'shmnotify %s --help' for more information.\n", usage, cmd);
	return EXIT_USAGE;
}

const char *cli_bad_option(char **argv, int getopt_result)
{
	static char shortopt[3];

	if (getopt_result == '?' && optopt) {
		shortopt[0] = '-';
		shortopt[1] = (char)optopt;
		return shortopt;
	}
	return argv[optind - 1];
}

bool cli_parse_uint(const char *s, uint64_t max, uint64_t *out)
{
	int base = 10;
	const char *p = s;
	char *end;
	unsigned long long v;

	if (!s)
		return false;
	if (p[0] == '0' && (p[1] == 'x' || p[1] == 'X')) {
		base = 16;
		p += 2;
	}
	/* strtoull accepts leading blanks and a sign: refuse them */
	if (!((*p >= '0' && *p <= '9') || (base == 16 && ((*p >= 'a' && *p <= 'f') ||
							  (*p >= 'A' && *p <= 'F')))))
		return false;
	errno = 0;
	v = strtoull(p, &end, base);
	if (errno || *end != '\0' || v > max)
		return false;
	*out = v;
	return true;
}

bool cli_parse_event(const char *s, uint32_t *out, char *why, size_t whylen)
{
	uint64_t v;

	if (!cli_parse_uint(s, UINT32_MAX, &v)) {
		snprintf(why, whylen, "'%s' is not a 32-bit number (decimal or 0x hex)", s);
		return false;
	}
	if (v == 0) {
		snprintf(why, whylen, "event bits must not be 0: use bits 0-27 (1 to 0x%08x)",
			 SHN_EV_ALL);
		return false;
	}
	if (v & SHN_EV_SYSTEM) {
		snprintf(why, whylen,
			 "0x%08llx sets bits 28-31 (0x%08x), which are reserved for system events; "
			 "use bits 0-27 (1 to 0x%08x)",
			 (unsigned long long)v, SHN_EV_SYSTEM, SHN_EV_ALL);
		return false;
	}
	*out = (uint32_t)v;
	return true;
}

int cli_socket_option(const char *cmd, const char *usage, const char *arg, const char **path)
{
	if (arg[0] == '\0')
		return cli_usage_error(cmd, usage, "--socket: an empty path; give the broker's "
				       "socket, or leave --socket out for $SHMNOTIFY_SOCKET or the "
				       "per-user default");
	*path = arg;
	return 0;
}

const char *cli_socket_display(const char *path, char *buf, size_t len)
{
	const char *env;

	if (path && *path)
		return path;
	env = getenv("SHMNOTIFY_SOCKET");
	if (env && *env)
		return env;
	if (shn_default_socket_path(buf, len) < 0)
		return "(default socket path too long)";
	return buf;
}

bool cli_parse_name(const char *s, char *why, size_t whylen)
{
	size_t len = strlen(s), i;
	const unsigned char *p = (const unsigned char *)s;

	if (len == 0 || len > SHN_NAME_MAX) {
		snprintf(why, whylen, "a name is 1 to %d bytes, not %zu", SHN_NAME_MAX, len);
		return false;
	}
	if (!shu_utf8_valid(p, len)) {
		snprintf(why, whylen, "'%s' is not valid UTF-8", s);
		return false;
	}
	for (i = 0; i < len; i++)   /* C0, DEL, and C1 (U+0080..U+009F: 0xc2 0x80..0x9f) */
		if (p[i] < 0x20 || p[i] == 0x7f || (p[i] == 0xc2 && p[i + 1] <= 0x9f)) {
			snprintf(why, whylen, "a name may not contain control characters "
				 "(byte %zu)", i + 1);
			return false;
		}
	return true;
}

/* The client's name in the broker's stats.  A failure here is never worth
 * stopping for, except a name the broker can never take. */
static int name_client(shn_client *c, const char *cmd, const char *name, const char *shown)
{
	char dflt[SHN_NAME_MAX + 1];
	int rc;

	snprintf(dflt, sizeof dflt, "shmnotify %s", cmd);
	rc = shn_set_name(c, name ? name : dflt);
	if (rc == -EOPNOTSUPP && name)
		cli_err("warning: the broker at %s is too old to show client names; going on "
			"without --name (upgrade shmnotifyd to see it in `shmnotify stats`)", shown);
	if (rc == -EINVAL) {
		cli_err("cannot name this client '%s': %s", name ? name : dflt, shn_strerror(rc));
		return EXIT_RUNTIME;
	}
	return 0;   /* -ENOTCONN: the next call says so */
}

int cli_connect(const char *path, const char *cmd, const char *name, shn_client **out)
{
	char buf[256];
	const char *shown = cli_socket_display(path, buf, sizeof buf);
	int rc = shn_connect(path && *path ? path : NULL, out);
	struct stat st;

	if (rc == 0) {
		rc = name_client(*out, cmd, name, shown);
		if (rc) {
			shn_disconnect(*out);
			*out = NULL;
		}
		return rc;
	}
	/* connect(2) says ECONNREFUSED for a file that is no socket at all:
	 * then the stale-socket advice below would send the user to start a
	 * broker that refuses that path too */
	if (stat(shown, &st) == 0 && !S_ISSOCK(st.st_mode)) {
		cli_err("cannot connect to %s: it is %s, not a socket; pass the broker's socket "
			"with --socket (or set $SHMNOTIFY_SOCKET)", shown, shu_file_kind(st.st_mode));
		return EXIT_RUNTIME;
	}
	switch (-rc) {
	case ENOENT:
		cli_err("cannot connect to %s: %s; is shmnotifyd running? start it with "
			"`shmnotifyd --socket %s`, or pass the broker's socket with --socket",
			shown, strerror(-rc), shown);
		break;
	case ECONNREFUSED:
		cli_err("cannot connect to %s: %s; no broker listens there (a stale socket file "
			"left by a crash?): start it with `shmnotifyd --socket %s`, or pass the "
			"broker's socket with --socket", shown, strerror(-rc), shown);
		break;
	case EACCES:
	case EPERM:
		cli_err("cannot connect to %s: %s; the socket or its directory belongs to another "
			"user: run as that user, or start your own broker with "
			"`shmnotifyd --socket PATH`", shown, strerror(-rc));
		break;
	default:
		cli_err("cannot connect to %s: %s", shown, shn_strerror(rc));
		break;
	}
	return EXIT_RUNTIME;
}

static int dispatch(const char *name, int argc, char **argv)
{
	if (!strcmp(name, "publish"))
		return cmd_publish(argc, argv);
	if (!strcmp(name, "listen"))
		return cmd_listen(argc, argv);
	if (!strcmp(name, "stats"))
		return cmd_stats(argc, argv);
	if (!strcmp(name, "monitor"))
		return cmd_listen(argc, argv);
	if (!strcmp(name, "doctor"))
		return cmd_doctor(argc, argv);
	return -1;
}

/* Edit distance of a and b (short words: a row on the stack). */
static size_t distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b), row[32], i, j;

	if (lb >= sizeof row / sizeof row[0])
		return SIZE_MAX;
	for (j = 0; j <= lb; j++)
		row[j] = j;
	for (i = 1; i <= la; i++) {
		size_t diag = row[0], up;

		row[0] = i;
		for (j = 1; j <= lb; j++) {
			up = row[j];
			row[j] = diag + (a[i - 1] != b[j - 1]);
			if (up + 1 < row[j])
				row[j] = up + 1;
			if (row[j - 1] + 1 < row[j])
				row[j] = row[j - 1] + 1;
			diag = up;
		}
	}
	return row[lb];
}

/* "unknown command", every command, and the nearest one when it is near */
static int unknown_command(const char *prefix, const char *cmd)
{
	const char *best = NULL;
	size_t best_d = SIZE_MAX, d;

	for (int i = 0; commands[i]; i++) {
		d = distance(cmd, commands[i]);
		if (!strncmp(cmd, commands[i], strlen(cmd)) && *cmd)
			d = 1;   /* a prefix: "pub" */
		if (d < best_d) {
			best_d = d;
			best = commands[i];
		}
	}
	fprintf(stderr, "%s: unknown command '%s'", prefix, cmd);
	if (best && best_d <= 2 && best_d < strlen(cmd))
		fprintf(stderr, "; did you mean '%s'?", best);
	fputs("\nCommands:", stderr);
	for (int i = 0; commands[i]; i++)
		fprintf(stderr, " %s", commands[i]);
	fprintf(stderr, "\n%s\nTry 'shmnotify --help' for more information.\n", main_usage);
	return EXIT_USAGE;
}

static int main_usage_error(const char *fmt, const char *arg)
{
	fputs("shmnotify: ", stderr);
	fprintf(stderr, fmt, arg);
	fprintf(stderr, "\n%s\nTry 'shmnotify --help' for more information.\n", main_usage);
	return EXIT_USAGE;
}

int main(int argc, char **argv)
{
	const char *cmd, *sock = NULL;
	int rc, i;

	/* options before COMMAND: --help, --version, --socket PATH (for every
	 * command, as $SHMNOTIFY_SOCKET is; the command's own --socket wins) */
	for (i = 1; i < argc && argv[i][0] == '-'; i++) {
		const char *a = argv[i];

		if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			print_main_help(stdout);
			return 0;
		}
		if (!strcmp(a, "-V") || !strcmp(a, "--version")) {
			printf("shmnotify %s\n", SHN_VERSION_STRING);
			return 0;
		}
		if (!strcmp(a, "-s") || !strcmp(a, "--socket")) {
			if (i + 1 >= argc)
				return main_usage_error("option '%s' needs an argument", a);
			sock = argv[++i];
		} else if (!strncmp(a, "--socket=", 9)) {
			sock = a + 9;
		} else if (!strcmp(a, "--")) {
			i++;
			break;
		} else {
			return main_usage_error("unknown option '%s'", a);
		}
		if (!*sock)
			return main_usage_error("%s: an empty path; give the broker's socket, or "
						"leave --socket out for $SHMNOTIFY_SOCKET or the "
						"per-user default", "--socket");
	}
	if (i >= argc)
		return main_usage_error("no command given%s", "");
	if (sock && setenv("SHMNOTIFY_SOCKET", sock, 1) < 0) {
		cli_err("cannot use --socket %s: %s", sock, strerror(errno));
		return EXIT_RUNTIME;
	}
	cmd = argv[i];
	if (!strcmp(cmd, "help")) {
		char *help_argv[] = { i + 1 < argc ? argv[i + 1] : NULL, "--help", NULL };

		if (i + 1 >= argc) {
			print_main_help(stdout);
			return 0;
		}
		rc = dispatch(argv[i + 1], 2, help_argv);
		if (rc >= 0)
			return rc;
		return unknown_command("shmnotify help", argv[i + 1]);
	}
	rc = dispatch(cmd, argc - i, argv + i);
	if (rc >= 0)
		return rc;
	return unknown_command("shmnotify", cmd);
}
