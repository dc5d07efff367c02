/* SPDX-License-Identifier: MIT */
/*
 * listen.c - shmnotify listen [--socket PATH] [--events MASK] [--count N]
 *            [--timeout MS] [--format json|plain|raw] [--color WHEN]
 *            [--prefix PREFIX]... [--key KEY]... [KEY...]
 *            and shmnotify monitor [--key KEY]... [--prefix PREFIX]...
 *
 * Opens one port, subscribes it to every KEY and PREFIX (none: every key)
 * and prints each notification it receives, one line each, flushed at once.
 * monitor subscribes with SHN_SUBSCRIBE_MONITOR and prints only what its
 * --key / --prefix take (filters.c; none: everything).  SIGINT and
 * SIGTERM are taken by a thread that calls shn_port_unblock(), so the main
 * thread leaves shn_port_get() with -ECANCELED and closes the port cleanly.
 */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "util/base64.h"
#include "util/utf8.h"

static const char usage[] =
	"usage: shmnotify listen [--socket PATH] [--events MASK] [--count N] [--timeout MS] "
	"[--format plain|json|raw | --json] [--color auto|always|never] [--name NAME] "
	"[--prefix PREFIX]... [KEY...]";

static void help(void)
{
	printf("%s\n"
	       "\n"
	       "Subscribe to each KEY and PREFIX (none: every key) and print every\n"
	       "notification received, one line each, including system events (overflow,\n"
	       "handle_close, broker_state, reconnect). A KEY matches exactly: '*' and '>'\n"
	       "are ordinary bytes of a key.\n"
	       "\n"
	       "  -p, --prefix PREFIX every key that starts with PREFIX (0 to %d bytes;\n"
	       "                      repeat it for more; KEYs and prefixes mix on one port,\n"
	       "                      and a notification two of them take arrives once)\n"
	       "  -k, --key KEY       the same as a KEY argument (for a KEY that starts\n"
	       "                      with '-', or beside --prefix)\n"
	       "  -s, --socket PATH   the broker's socket (default: $SHMNOTIFY_SOCKET, then\n"
	       "                      the per-user default)\n"
	       "  -e, --events MASK   only events with a bit in MASK, decimal or 0x hex,\n"
	       "                      bits 0-27 (default 0x%08x: all)\n"
	       "  -n, --count N       exit 0 after N notifications (system events not counted)\n"
	       "  -t, --timeout MS    exit when nothing arrives for MS milliseconds: status 0,\n"
	       "                      or 1 if --count N was given and fewer arrived\n"
	       "  -f, --format FMT    plain (default): key=value lines for people;\n"
	       "                      json: one JSON object per line: seq, event, key, data,\n"
	       "                      batch_id, batch_index, batch_count, conn, sender_pid,\n"
	       "                      sender_uid, time_ns; key/data are null plus\n"
	       "                      key_base64/data_base64 when not valid UTF-8; system\n"
	       "                      events add \"system\" (and \"lost\" for overflow);\n"
	       "                      `shmnotify publish --json -` replays these lines;\n"
	       "                      raw: the data alone and a newline (system events go\n"
	       "                      to stderr), like `nats sub --raw`\n"
	       "  -j, --json          the same as --format json\n"
	       "      --color WHEN    colour plain lines: auto (default: on a terminal, unless\n"
	       "                      $NO_COLOR is set), always, never\n"
	       "      --name NAME     how `shmnotify stats` shows this client (default\n"
	       "                      \"shmnotify listen\"; 1 to %d bytes of UTF-8)\n"
	       "  -h, --help          show this help\n"
	       "\n"
	       "Plain lines look like\n"
	       "  seq=3 event=0x1 key=foo data=\"bar baz\" batch=7 [0/2] pid=1234\n"
	       "A key or data with a blank, '\"', '\\', '=', a control character or invalid\n"
	       "UTF-8 is in double quotes, escaped (\\\", \\\\, \\n, \\xHH); empty data is \"\".\n"
	       "SIGINT/SIGTERM end it cleanly (status 0; 1 if --count N was not reached).\n",
	       usage, SHN_KEY_MAX, SHN_EV_ALL, SHN_NAME_MAX);
}

static const char monitor_usage[] =
	"usage: shmnotify monitor [--socket PATH] [--events MASK] [--count N] [--timeout MS] "
	"[--name NAME] [--key KEY]... [--prefix PREFIX]...";

static void monitor_help(void)
{
	printf("%s\n"
	       "\n"
	       "Print every notification the broker routes, whatever its key, one JSON\n"
	       "object per line as `shmnotify listen --json` prints them (like dbus-monitor).\n"
	       "Only root or the broker's own user may monitor (else: permission denied).\n"
	       "A monitor is a subscriber like any other: while it runs every key counts as\n"
	       "watched, and if it cannot keep up it gets overflow events, never the broker\n"
	       "or the other subscribers stalled.\n"
	       "\n"
	       "  -k, --key KEY       print only notifications with this key (repeat it for\n"
	       "                      more; with --prefix: those either takes)\n"
	       "  -p, --prefix PREFIX print only notifications whose key starts with PREFIX\n"
	       "                      (repeatable). The filter is this command's: the broker\n"
	       "                      still sends the monitor every notification, and system\n"
	       "                      events without a key are always printed\n"
	       "  -s, --socket PATH   the broker's socket (default: $SHMNOTIFY_SOCKET, then\n"
	       "                      the per-user default)\n"
	       "  -e, --events MASK   only events with a bit in MASK (default: all)\n"
	       "  -n, --count N       exit 0 after N notifications printed\n"
	       "  -t, --timeout MS    exit when nothing is printed for MS milliseconds\n"
	       "      --name NAME     how `shmnotify stats` shows this client (default\n"
	       "                      \"shmnotify monitor\"; 1 to %d bytes of UTF-8)\n"
	       "  -h, --help          show this help\n",
	       monitor_usage, SHN_NAME_MAX);
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static shn_port *sig_port;
static atomic_int sig_caught;

/* Every thread blocks SIGINT/SIGTERM/SIGUSR1; this one waits for them.
 * SIGUSR1 from the main thread means "stop". */
static void *signal_thread(void *arg)
{
	const sigset_t *set = arg;
	int sig;

	for (;;) {
		if (sigwait(set, &sig) != 0)
			continue;
		if (sig == SIGUSR1)
			return NULL;
		atomic_store(&sig_caught, sig);
		shn_port_unblock(sig_port);
	}
}

static const char *system_name(uint32_t event)
{
	if (event & SHN_EV_OVERFLOW)
		return "overflow";
	if (event & SHN_EV_BROKER_STATE)
		return "broker_state";
	if (event & SHN_EV_RECONNECT)
		return "reconnect";
	if (event & SHN_EV_HANDLE_CLOSE)
		return "handle_close";
	return "system";
}

/* SHN_EV_OVERFLOW payload: little-endian uint64_t */
static bool overflow_lost(const shn_notification *n, uint64_t *lost)
{
	const unsigned char *p = n->data;
	uint64_t v = 0;
	int i;

	if (n->data_len != 8 || !p)
		return false;
	for (i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	*lost = v;
	return true;
}

/* ANSI SGR: the key stands out; system events in yellow */
#define COL_KEY  "\033[1;36m"
#define COL_SYS  "\033[33m"
#define COL_OFF  "\033[0m"

static void print_plain(FILE *f, const shn_notification *n, bool color)
{
	uint64_t lost;

	if (n->event & SHN_EV_SYSTEM) {
		if (color)
			fputs(COL_SYS, f);
		fprintf(f, "event=0x%x %s", n->event, system_name(n->event));
		if (n->event & SHN_EV_OVERFLOW) {
			if (overflow_lost(n, &lost))
				fprintf(f, " lost=%llu", (unsigned long long)lost);
			else
				fputs(" lost=?", f);
		} else if (n->event & SHN_EV_HANDLE_CLOSE) {
			fprintf(f, " conn=%llu", (unsigned long long)n->conn);
		} else if (n->event & SHN_EV_BROKER_STATE) {
			fputs(" (the broker went away; the library reconnects)", f);
		} else if (n->event & SHN_EV_RECONNECT) {
			fputs(" (reconnected, filters restored)", f);
		}
		fputs(color ? COL_OFF "\n" : "\n", f);
		return;
	}
	fprintf(f, "seq=%llu event=0x%x key=", (unsigned long long)n->seq, n->event);
	if (color)
		fputs(COL_KEY, f);
	cli_put_value(f, n->key, n->key_len);
	if (color)
		fputs(COL_OFF, f);
	fputs(" data=", f);
	cli_put_value(f, n->data, n->data_len);
	fprintf(f, " batch=%llu [%u/%u] pid=%d\n", (unsigned long long)n->batch_id,
		n->batch_index, n->batch_count, n->sender_pid);
}

/* --format raw: the data bytes and a newline, nothing else on stdout;
 * a system event goes to stderr as a plain line, never mixed into the
 * data. */
static void print_raw(FILE *f, const shn_notification *n)
{
	if (n->event & SHN_EV_SYSTEM) {
		fflush(f);
		fputs("shmnotify listen: ", stderr);
		print_plain(stderr, n, false);
		return;
	}
	if (n->data_len)   /* empty data may come with a NULL pointer */
		fwrite(n->data, 1, n->data_len, f);
	fputc('\n', f);
}

/* key or data: a JSON string when the bytes are valid UTF-8
 * (docs/design.md, rule 14), else null plus NAME_base64 (padded, the
 * standard alphabet).  false when out of memory. */
static bool set_bytes(json_t *o, const char *name, const void *p, size_t len)
{
	char b64name[32];
	char *b64;
	int rc;

	if (!len || shu_utf8_valid(p, len))
		return json_object_set_new(o, name, json_stringn(len ? p : "", len)) == 0;
	b64 = malloc(shu_b64_size(len));
	if (!b64)
		return false;
	shu_b64_encode(p, len, b64, SHU_B64_PAD);
	snprintf(b64name, sizeof b64name, "%s_base64", name);
	rc = json_object_set_new(o, name, json_null()) |
	     json_object_set_new(o, b64name, json_string(b64));
	free(b64);
	return rc == 0;
}

/* jansson's integers are signed 64-bit: a value above INT64_MAX (an
 * overflow count a bridge saturated) goes out as a real, not negative. */
static json_t *ju(uint64_t v)
{
	return v > (uint64_t)INT64_MAX ? json_real((double)v) : json_integer((json_int_t)v);
}

/* One notification as a JSON object on one line; false when out of memory
 * (nothing written). */
static bool print_json(FILE *f, const shn_notification *n)
{
	json_t *o = json_object();
	uint64_t lost;
	bool ok;

	if (!o)
		return false;
	ok = json_object_set_new(o, "seq", ju(n->seq)) == 0 &&
	     json_object_set_new(o, "event", json_integer(n->event)) == 0;
	if (ok && (n->event & SHN_EV_SYSTEM)) {
		ok = json_object_set_new(o, "system", json_string(system_name(n->event))) == 0;
		if (ok && (n->event & SHN_EV_OVERFLOW))
			ok = json_object_set_new(o, "lost", overflow_lost(n, &lost) ? ju(lost)
										    : json_null()) == 0;
	}
	ok = ok && set_bytes(o, "key", n->key, n->key_len) &&
	     set_bytes(o, "data", n->data, n->data_len) &&
	     json_object_set_new(o, "batch_id", ju(n->batch_id)) == 0 &&
	     json_object_set_new(o, "batch_index", json_integer(n->batch_index)) == 0 &&
	     json_object_set_new(o, "batch_count", json_integer(n->batch_count)) == 0 &&
	     json_object_set_new(o, "conn", ju(n->conn)) == 0 &&
	     json_object_set_new(o, "sender_pid", json_integer(n->sender_pid)) == 0 &&
	     json_object_set_new(o, "sender_uid", json_integer(n->sender_uid)) == 0 &&
	     json_object_set_new(o, "time_ns", ju(n->time_ns)) == 0;
	/* compact, members in the order set (jansson >= 2.8 keeps it) */
	if (ok && json_dumpf(o, f, JSON_COMPACT) == 0)
		fputc('\n', f);
	json_decref(o);
	return ok;
}

enum listen_fmt { FMT_PLAIN, FMT_JSON, FMT_RAW };

/* What the command line of listen or monitor asks for. */
struct listen_args {
	bool monitor;
	const char *cmd, *use;
	const char *socket_path, *name;
	uint32_t mask;
	uint64_t count;
	int timeout_ms;
	enum listen_fmt fmt;
	int color_when;
	/* listen: what to subscribe to (none: every key); monitor: what to
	 * print (none: everything) */
	struct cli_filters filters;
};

/* -1 to go on, else the exit status (0 after --help, EXIT_USAGE with a
 * message printed).  a->filters is the caller's to free either way. */
static int parse_args(int argc, char **argv, struct listen_args *a)
{
	static const struct option opts[] = {
		{ "socket",  required_argument, NULL, 's' },
		{ "events",  required_argument, NULL, 'e' },
		{ "count",   required_argument, NULL, 'n' },
		{ "timeout", required_argument, NULL, 't' },
		{ "json",    no_argument,       NULL, 'j' },
		{ "format",  required_argument, NULL, 'f' },
		{ "color",   required_argument, NULL, 'C' },
		{ "colour",  required_argument, NULL, 'C' },
		{ "name",    required_argument, NULL, 'N' },
		{ "prefix",  required_argument, NULL, 'p' },
		{ "key",     required_argument, NULL, 'k' },
		{ "help",    no_argument,       NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *cmd = a->cmd, *use = a->use;
	char why[256];
	uint64_t v;
	int c, rc;

	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":s:e:n:t:jf:p:k:h", opts, NULL)) != -1) {
		switch (c) {
		case 'p':
		case 'k':
			rc = cli_filters_add(&a->filters, cmd, use, optarg, c == 'p');
			if (rc)
				return rc;
			break;
		case 's':
			if (cli_socket_option(cmd, use, optarg, &a->socket_path))
				return EXIT_USAGE;
			break;
		case 'e':
			if (!cli_parse_event(optarg, &a->mask, why, sizeof why))
				return cli_usage_error(cmd, use, "--events: %s", why);
			break;
		case 'n':
			if (!cli_parse_uint(optarg, UINT64_MAX, &a->count) || a->count == 0)
				return cli_usage_error(cmd, use,
						       "--count: '%s' is not a positive number", optarg);
			break;
		case 't':
			if (!cli_parse_uint(optarg, INT32_MAX, &v))
				return cli_usage_error(cmd, use,
						       "--timeout: '%s' is not a number of milliseconds "
						       "(0 to %d)", optarg, INT32_MAX);
			a->timeout_ms = (int)v;
			break;
		case 'N':
			if (!cli_parse_name(optarg, why, sizeof why))
				return cli_usage_error(cmd, use, "--name: %s", why);
			a->name = optarg;
			break;
		case 'j':
		case 'f':
			if (a->monitor)
				return cli_usage_error(cmd, use, "monitor always prints JSON lines");
			if (c == 'j' || !strcmp(optarg, "json"))
				a->fmt = FMT_JSON;
			else if (!strcmp(optarg, "plain"))
				a->fmt = FMT_PLAIN;
			else if (!strcmp(optarg, "raw"))
				a->fmt = FMT_RAW;
			else
				return cli_usage_error(cmd, use, "--format: '%s' is none of plain, "
						       "json, raw", optarg);
			break;
		case 'C':
			if (a->monitor)
				return cli_usage_error(cmd, use, "monitor prints JSON lines: no colour");
			a->color_when = cli_parse_color(optarg);
			if (a->color_when < 0)
				return cli_usage_error(cmd, use, "--color: '%s' is none of auto, "
						       "always, never", optarg);
			break;
		case 'h':
			if (a->monitor)
				monitor_help();
			else
				help();
			return 0;
		case ':':
			return cli_usage_error(cmd, use, "option '%s' needs an argument",
					       cli_bad_option(argv, c));
		default:
			return cli_usage_error(cmd, use, "unknown option '%s'",
					       cli_bad_option(argv, c));
		}
	}
	if (a->monitor && optind < argc)
		return cli_usage_error(cmd, use, "monitor takes no KEY argument: it shows every "
				       "key, or those --key KEY and --prefix PREFIX take");
	for (; optind < argc; optind++) {
		rc = cli_filters_add(&a->filters, cmd, use, argv[optind], false);
		if (rc)
			return rc;
	}
	return -1;
}

/* Subscribe port to what a asks for.  0 or EXIT_RUNTIME (said why). */
static int subscribe_all(shn_port *port, const struct listen_args *a)
{
	shn_conn conn;
	size_t i;
	int rc;

	if (a->monitor || a->filters.n == 0) {
		rc = shn_subscribe(port, NULL, 0, a->mask, a->monitor ? SHN_SUBSCRIBE_MONITOR : 0,
				   &conn);
		if (rc == -EACCES && a->monitor) {
			cli_err("cannot monitor: only root or the broker's own user may; run it as "
				"that user (or with sudo)");
			return EXIT_RUNTIME;
		}
		if (rc < 0) {
			cli_err("cannot subscribe to every key: %s", shn_strerror(rc));
			return EXIT_RUNTIME;
		}
		return 0;
	}
	for (i = 0; i < a->filters.n; i++) {
		const struct cli_filter *f = &a->filters.v[i];

		rc = shn_subscribe(port, f->s, f->len, a->mask, f->prefix ? SHN_SUBSCRIBE_PREFIX : 0,
				   &conn);
		if (rc < 0) {
			cli_err("cannot subscribe to %s '%s': %s%s", f->prefix ? "prefix" : "key",
				f->s, shn_strerror(rc),
				f->prefix && rc == -EINVAL ?
				" (a broker or library older than prefix filters refuses them: "
				"upgrade shmnotifyd and libshmnotify, or listen to the keys one by one)" :
				"");
			return EXIT_RUNTIME;
		}
	}
	return 0;
}

/* monitor: is n one to print?  A system event without a key (the broker's
 * own overflow report, broker_state, reconnect, handle_close) concerns the
 * monitor itself: always. */
static bool monitor_shows(const struct listen_args *a, const shn_notification *n)
{
	if ((n->event & SHN_EV_SYSTEM) && n->key_len == 0)
		return true;
	return cli_filters_match(&a->filters, n->key, n->key_len);
}

int cmd_listen(int argc, char **argv)
{
	const bool monitor = !strcmp(argv[0], "monitor");
	struct listen_args a = {
		.monitor = monitor, .cmd = monitor ? "monitor" : "listen",
		.use = monitor ? monitor_usage : usage, .mask = SHN_EV_ALL, .timeout_ms = -1,
		.fmt = monitor ? FMT_JSON : FMT_PLAIN, .color_when = CLI_COLOR_AUTO,
	};
	uint64_t got = 0;
	bool done = false, color;
	shn_client *client = NULL;
	shn_port *port = NULL;
	shn_notification buf[256];
	sigset_t set;
	pthread_t thread;
	bool have_thread = false;
	uint64_t shown_ns;
	int i, rc, status = 0;
	shn_port_options popt = { .capacity = monitor ? 16u << 20 : 0 };

	rc = parse_args(argc, argv, &a);
	if (rc >= 0) {
		cli_filters_free(&a.filters);
		return rc;
	}
	color = a.fmt == FMT_PLAIN && cli_use_color(a.color_when, STDOUT_FILENO);

	/* Block the signals in every thread (the library's too) before any
	 * exists; the signal thread takes them with sigwait(). */
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGUSR1);
	pthread_sigmask(SIG_BLOCK, &set, NULL);

	rc = cli_connect(a.socket_path, a.cmd, a.name, &client);
	if (rc) {
		status = rc;
		goto out;
	}
	rc = shn_port_open(client, &popt, &port);
	if (rc < 0) {
		cli_err("cannot open a port: %s", shn_strerror(rc));
		status = EXIT_RUNTIME;
		goto out;
	}
	status = subscribe_all(port, &a);
	if (status)
		goto out;

	sig_port = port;
	rc = pthread_create(&thread, NULL, signal_thread, &set);
	if (rc) {
		cli_err("cannot start the signal thread: %s", strerror(rc));
		status = EXIT_RUNTIME;
		goto out;
	}
	have_thread = true;

	/* --timeout: nothing printed for that long (a monitor's filter may
	 * pass over what arrives meanwhile) */
	shown_ns = now_ns();
	while (!done) {
		int wait_ms = a.timeout_ms;

		if (wait_ms > 0) {
			uint64_t idle_ms = (now_ns() - shown_ns) / 1000000u;

			wait_ms = idle_ms >= (uint64_t)wait_ms ? 0 : wait_ms - (int)idle_ms;
		}
		rc = shn_port_get(port, buf, sizeof buf / sizeof buf[0], wait_ms);
		if (rc == -ECANCELED) {
			if (!atomic_load(&sig_caught))
				continue;
			if (a.count && got < a.count) {
				cli_err("interrupted by %s: %llu of %llu notifications arrived",
					strsignal(atomic_load(&sig_caught)), (unsigned long long)got,
					(unsigned long long)a.count);
				status = EXIT_RUNTIME;
			}
			break;
		}
		if (rc == -ETIMEDOUT) {
			if (a.count) {
				cli_err("timed out: nothing arrived for %d ms; %llu of %llu "
					"notifications arrived", a.timeout_ms, (unsigned long long)got,
					(unsigned long long)a.count);
				status = EXIT_RUNTIME;
			}
			break;
		}
		if (rc == -EINTR)
			continue;
		if (rc < 0) {
			cli_err("receiving failed: %s", shn_strerror(rc));
			status = EXIT_RUNTIME;
			break;
		}
		for (i = 0; i < rc && !done; i++) {
			if (a.monitor && !monitor_shows(&a, &buf[i]))
				continue;
			shown_ns = now_ns();
			if (a.fmt == FMT_JSON && !print_json(stdout, &buf[i])) {
				cli_err("out of memory while printing notification seq %llu as JSON",
					(unsigned long long)buf[i].seq);
				status = EXIT_RUNTIME;
				done = true;
				break;
			}
			if (a.fmt == FMT_PLAIN)
				print_plain(stdout, &buf[i], color);
			if (a.fmt == FMT_RAW)
				print_raw(stdout, &buf[i]);
			if (fflush(stdout) == EOF) {
				cli_err("cannot write to stdout: %s", strerror(errno));
				status = EXIT_RUNTIME;
				done = true;
			}
			if (!(buf[i].event & SHN_EV_SYSTEM) && ++got == a.count)
				done = true;
		}
	}

out:
	if (have_thread) {
		pthread_kill(thread, SIGUSR1);
		pthread_join(thread, NULL);
	}
	if (port)
		shn_port_close(port);
	if (client)
		shn_disconnect(client);
	cli_filters_free(&a.filters);
	/* The signal mask stays: a SIGINT still pending must not kill us now. */
	return status;
}
