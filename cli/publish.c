/* SPDX-License-Identifier: MIT */
/*
 * publish.c - shmnotify publish [OPTIONS] KEY [DATA...]
 *             shmnotify publish [OPTIONS] KEY -
 *             shmnotify publish --json [OPTIONS] -
 *
 * Every DATA argument becomes one notification with key KEY; together they
 * are one batch, published with one shn_notify() call.  With '-' the
 * notifications come from standard input (publish_input.c builds the
 * batches): one per line, or the JSON lines `listen --json` writes, so that
 * a captured stream replays.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "publish_input.h"

static const char usage[] =
	"usage: shmnotify publish [--socket PATH] [--event BITS] [--sync [--timeout MS]] "
	"[--name NAME] [--data-base64] KEY [DATA...]\n"
	"       shmnotify publish [OPTIONS] [--batch N] KEY -\n"
	"       shmnotify publish [OPTIONS] [--batch N] --json -";

static void help(void)
{
	printf("%s\n"
	       "\n"
	       "Publish one batch: each DATA is one notification with key KEY, in order.\n"
	       "Without DATA one notification with empty data is published.\n"
	       "\n"
	       "With '-' instead of DATA the notifications come from standard input, one\n"
	       "per line (the newline is not part of the data), all lines one batch\n"
	       "published at end of input, or a batch every N lines with --batch N.\n"
	       "With --json each input line is a JSON object as `shmnotify listen --json`\n"
	       "and `shmnotify monitor` print them: key or key_base64, data or\n"
	       "data_base64, event; lines of one delivered batch (batch_id, batch_index,\n"
	       "batch_count) are published again as one batch; system events (overflow,\n"
	       "...) are skipped. So `listen --json > FILE` replays with\n"
	       "`publish --json - < FILE`.\n"
	       "\n"
	       "  -s, --socket PATH   the broker's socket (default: $SHMNOTIFY_SOCKET, then\n"
	       "                      the per-user default)\n"
	       "  -e, --event BITS    event bits, decimal or 0x hex, bits 0-27 only\n"
	       "                      (1 to 0x%08x; default 1; with --json: for lines\n"
	       "                      without \"event\")\n"
	       "      --sync          wait until every matching subscriber has consumed the\n"
	       "                      batch (exit 3 if a subscriber's sink cancelled it)\n"
	       "  -t, --timeout MS    with --sync: wait at most MS milliseconds (exit 1;\n"
	       "                      the batch is still delivered, only the wait stops)\n"
	       "  -b, --batch N       with '-': publish every N lines as one batch\n"
	       "      --data-base64   each DATA (argument or line) is base64, for binary\n"
	       "                      payloads\n"
	       "  -j, --json          read JSON lines from standard input ('-')\n"
	       "      --name NAME     how `shmnotify stats` shows this client (default\n"
	       "                      \"shmnotify publish\"; 1 to %d bytes of UTF-8)\n"
	       "  -h, --help          show this help\n"
	       "\n"
	       "KEY is 1 to %d bytes, each DATA at most %d bytes. Use -- before a KEY or\n"
	       "DATA that starts with '-'.\n"
	       "Ctrl-C during a --sync wait ends it with status 130 and says what became\n"
	       "of the batch.\n"
	       "\n"
	       "Examples: shmnotify publish --event 0x4 printers/lp0 jam cleared\n"
	       "          tail -f log | shmnotify publish --batch 1 logs/app -\n"
	       "          shmnotify listen --json > capture; shmnotify publish --json - < capture\n",
	       usage, SHN_EV_ALL, SHN_NAME_MAX, SHN_KEY_MAX, SHN_DATA_MAX);
}

/* ---- Ctrl-C during a --sync wait -------------------------------------- */

/* Written before each synchronous shn_notify(), read by the handler: the
 * handler may only write(2) and _exit(2). */
static char sync_msg[256];
static size_t sync_msg_len;

static void on_sync_signal(int sig)
{
	if (write(STDERR_FILENO, sync_msg, sync_msg_len) < 0) {
		/* nothing left to tell */
	}
	_exit(128 + sig);
}

static void sync_signals(bool on)
{
	struct sigaction sa = { .sa_handler = on ? on_sync_signal : SIG_DFL };

	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
}

/* ---- publishing --------------------------------------------------------- */

struct pub {
	shn_client *client;
	unsigned flags;
	int timeout_ms;
	uint64_t batches;   /* published so far, for messages */
};

/* Publish one batch; returns 0 or an exit status, with the message said. */
static int send_batch(struct pub *p, const shn_notification *notes, size_t n)
{
	int rc;

	if (p->flags & SHN_NOTIFY_SYNC) {
		int len = snprintf(sync_msg, sizeof sync_msg,
				   "shmnotify: publish --sync interrupted while batch %llu waited "
				   "(for ring room or its subscribers): an accepted batch is still "
				   "delivered, nothing was cancelled\n",
				   (unsigned long long)p->batches + 1);

		sync_msg_len = len > 0 ? (size_t)len : 0;
		if (sync_msg_len >= sizeof sync_msg)
			sync_msg_len = sizeof sync_msg - 1;
		sync_signals(true);
	}
	rc = shn_notify(p->client, notes, n, p->flags);
	if (p->flags & SHN_NOTIFY_SYNC)
		sync_signals(false);
	if (rc == 0) {
		p->batches++;
		return 0;
	}
	if (rc == SHN_NOTIFY_CANCELED) {
		cli_err("publish --sync: a subscriber's sink answered DISCONTINUE; the batch "
			"was not offered to the remaining sinks (SHN_NOTIFY_CANCELED)");
		return EXIT_CANCELED;
	}
	switch (-rc) {
	case ENOTCONN:
	case EPIPE:
	case ECONNRESET:
		cli_err("publish failed: the broker went away (%s): restart shmnotifyd and "
			"publish again", strerror(-rc));
		break;
	case EMSGSIZE:
		cli_err("publish failed: the batch of %zu notifications can never fit the "
			"publish ring (%s): publish fewer or smaller DATA per call%s", n,
			strerror(-rc), n > 1 ? " (with '-': --batch N)" : "");
		break;
	case EOPNOTSUPP:
		if (p->flags & SHN_NOTIFY_SYNC) {
			cli_err("publish --sync failed: this libshmnotify does not support "
				"synchronous notify yet (%s): publish without --sync",
				strerror(-rc));
			break;
		}
		cli_err("publish failed: %s", shn_strerror(rc));
		break;
	case ETIMEDOUT:
		cli_err("publish --sync: the subscribers did not consume the batch within "
			"%d ms (%s); it stays published and they still receive it, only the "
			"wait stopped", p->timeout_ms, strerror(-rc));
		break;
	default:
		cli_err("publish failed: %s", shn_strerror(rc));
		break;
	}
	return EXIT_RUNTIME;
}

/* A line of standard input without its newline; NULL at end of input. */
static char *next_line(char **line, size_t *cap, size_t *len)
{
	ssize_t r = getline(line, cap, stdin);

	if (r < 0)
		return NULL;
	*len = (size_t)r;
	if (*len && (*line)[*len - 1] == '\n')
		(*len)--;
	return *line;
}

static int flush(struct pub *p, struct pub_batch *b)
{
	int rc = 0;

	if (b->n)
		rc = send_batch(p, b->notes, b->n);
	pub_batch_clear(b);
	return rc;
}

static int input_error(uint64_t lineno, const char *what)
{
	cli_err("standard input, line %llu: %s; nothing from this line on was published",
		(unsigned long long)lineno, what);
	return EXIT_RUNTIME;
}

/* publish KEY -: one notification per line */
static int publish_lines(struct pub *p, const char *key, uint32_t event, bool b64,
			 uint64_t per_batch)
{
	struct pub_batch b = { 0 };
	char *line = NULL, why[128];
	size_t cap = 0, len;
	uint64_t lineno = 0;
	int rc = 0;

	while (rc == 0 && next_line(&line, &cap, &len)) {
		uint8_t *bytes = NULL;
		const void *data = line;

		lineno++;
		if (b64) {
			int n = pub_b64_decode(line, len, &bytes);

			if (n < 0) {
				rc = input_error(lineno, "not base64 (--data-base64: the standard "
						 "alphabet, '=' padding optional)");
				break;
			}
			data = bytes;
			len = (size_t)n;
		}
		if (len > SHN_DATA_MAX) {
			snprintf(why, sizeof why, "%zu bytes of data; the most is %d", len,
				 SHN_DATA_MAX);
			free(bytes);
			rc = input_error(lineno, why);
			break;
		}
		if (!pub_batch_add(&b, event, key, strlen(key), data, len)) {
			free(bytes);
			cli_err("out of memory at line %llu of standard input: publish in "
				"smaller batches with --batch N", (unsigned long long)lineno);
			rc = EXIT_RUNTIME;
			break;
		}
		free(bytes);
		if (per_batch && b.n == per_batch)
			rc = flush(p, &b);
	}
	if (rc == 0)
		rc = flush(p, &b);
	free(line);
	pub_batch_free(&b);
	return rc;
}

/* publish --json -: listen --json's lines */
static int publish_json(struct pub *p, uint32_t event, uint64_t per_batch)
{
	struct pub_batch b = { 0 };
	struct pub_json_line l;
	char *line = NULL, why[192];
	size_t cap = 0, len;
	uint64_t lineno = 0, skipped = 0;
	int rc = 0;

	while (rc == 0 && next_line(&line, &cap, &len)) {
		bool last = false;

		lineno++;
		if (strspn(line, " \t\r") == len)
			continue;   /* a blank line */
		if (!pub_parse_json_line(line, len, event, &l, why, sizeof why)) {
			rc = input_error(lineno, why);
			break;
		}
		if (l.system) {
			skipped++;
			continue;
		}
		if (!per_batch) {
			/* a line of another batch ends the one being built */
			if (b.n && (!l.has_origin || !b.has_origin || l.batch_id != b.origin_batch ||
				    l.sender_pid != b.origin_pid || l.batch_count != b.origin_count))
				rc = flush(p, &b);
			last = !l.has_origin || l.batch_index + 1 >= l.batch_count;
		}
		if (rc == 0 && !pub_batch_add(&b, l.event, l.key, l.key_len, l.data, l.data_len)) {
			cli_err("out of memory at line %llu of standard input",
				(unsigned long long)lineno);
			rc = EXIT_RUNTIME;
		}
		b.has_origin = l.has_origin;
		b.origin_batch = l.batch_id;
		b.origin_pid = l.sender_pid;
		b.origin_count = l.batch_count;
		pub_json_line_free(&l);
		if (rc == 0 && (last || (per_batch && b.n == per_batch)))
			rc = flush(p, &b);
	}
	if (rc == 0)
		rc = flush(p, &b);
	if (skipped)
		cli_err("note: skipped %llu system event line%s (overflow, broker_state, ...): "
			"only the broker and the library make those", (unsigned long long)skipped,
			skipped == 1 ? "" : "s");
	free(line);
	pub_batch_free(&b);
	return rc;
}

/* publish KEY [DATA...] */
static int publish_args(struct pub *p, const char *key, uint32_t event, bool b64,
			char **data, size_t n)
{
	struct pub_batch b = { 0 };
	int rc = 0;

	for (size_t i = 0; i < (n ? n : 1) && rc == 0; i++) {
		uint8_t *bytes = NULL;
		const void *d = n ? data[i] : "";
		size_t len = n ? strlen(data[i]) : 0;

		if (n && b64) {
			int r = pub_b64_decode(data[i], len, &bytes);

			if (r < 0) {
				cli_err("DATA #%zu is not base64 (--data-base64: the standard "
					"alphabet, '=' padding optional)", i + 1);
				rc = EXIT_USAGE;
				break;
			}
			d = bytes;
			len = (size_t)r;
		}
		if (len > SHN_DATA_MAX) {
			cli_err("DATA #%zu is %zu bytes; the most is %d", i + 1, len, SHN_DATA_MAX);
			rc = EXIT_USAGE;
		} else if (!pub_batch_add(&b, event, key, strlen(key), d, len)) {
			cli_err("out of memory");
			rc = EXIT_RUNTIME;
		}
		free(bytes);
	}
	if (rc == 0)
		rc = flush(p, &b);
	pub_batch_free(&b);
	return rc;
}

int cmd_publish(int argc, char **argv)
{
	enum { OPT_SYNC = 0x100, OPT_NAME, OPT_B64 };
	static const struct option opts[] = {
		{ "socket",      required_argument, NULL, 's' },
		{ "event",       required_argument, NULL, 'e' },
		{ "sync",        no_argument,       NULL, OPT_SYNC },
		{ "timeout",     required_argument, NULL, 't' },
		{ "batch",       required_argument, NULL, 'b' },
		{ "data-base64", no_argument,       NULL, OPT_B64 },
		{ "json",        no_argument,       NULL, 'j' },
		{ "name",        required_argument, NULL, OPT_NAME },
		{ "help",        no_argument,       NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *socket_path = NULL, *key = NULL, *name = NULL;
	uint32_t event = 1;
	uint64_t per_batch = 0, v;
	bool json = false, b64 = false, from_stdin = false, have_timeout = false;
	struct pub p = { .timeout_ms = -1 };
	char why[256];
	size_t key_len;
	int c, rc;

	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":s:e:t:b:jh", opts, NULL)) != -1) {
		switch (c) {
		case 's':
			if (cli_socket_option("publish", usage, optarg, &socket_path))
				return EXIT_USAGE;
			break;
		case 'e':
			if (!cli_parse_event(optarg, &event, why, sizeof why))
				return cli_usage_error("publish", usage, "--event: %s", why);
			break;
		case OPT_SYNC:
			p.flags |= SHN_NOTIFY_SYNC;
			break;
		case 't':
			if (!cli_parse_uint(optarg, INT32_MAX, &v))
				return cli_usage_error("publish", usage,
						       "--timeout: '%s' is not a number of milliseconds "
						       "(0 to %d)", optarg, INT32_MAX);
			p.timeout_ms = (int)v;
			have_timeout = true;
			break;
		case 'b':
			if (!cli_parse_uint(optarg, UINT32_MAX, &per_batch) || per_batch == 0)
				return cli_usage_error("publish", usage,
						       "--batch: '%s' is not a positive number of lines",
						       optarg);
			break;
		case OPT_B64:
			b64 = true;
			break;
		case 'j':
			json = true;
			break;
		case OPT_NAME:
			if (!cli_parse_name(optarg, why, sizeof why))
				return cli_usage_error("publish", usage, "--name: %s", why);
			name = optarg;
			break;
		case 'h':
			help();
			return 0;
		case ':':
			return cli_usage_error("publish", usage, "option '%s' needs an argument",
					       cli_bad_option(argv, c));
		default:
			return cli_usage_error("publish", usage, "unknown option '%s'",
					       cli_bad_option(argv, c));
		}
	}
	if (have_timeout && !(p.flags & SHN_NOTIFY_SYNC))
		return cli_usage_error("publish", usage, "--timeout bounds the wait of --sync: "
				       "give --sync too (a plain publish does not wait)");
	if (json) {
		if (argc - optind != 1 || strcmp(argv[optind], "-"))
			return cli_usage_error("publish", usage, "--json reads JSON lines from "
					       "standard input: give '-' and no KEY (each line "
					       "has its key)");
		if (b64)
			return cli_usage_error("publish", usage, "--data-base64 does not apply to "
					       "--json: a line carries binary data as "
					       "\"data_base64\"");
		from_stdin = true;
	} else {
		if (optind >= argc)
			return cli_usage_error("publish", usage, "missing KEY");
		key = argv[optind++];
		key_len = strlen(key);
		if (key_len == 0 || key_len > SHN_KEY_MAX)
			return cli_usage_error("publish", usage, "KEY must be 1 to %d bytes, not %zu",
					       SHN_KEY_MAX, key_len);
		from_stdin = argc - optind == 1 && !strcmp(argv[optind], "-");
	}
	if (per_batch && !from_stdin)
		return cli_usage_error("publish", usage, "--batch applies to standard input ('-'): "
				       "with DATA arguments they are one batch");
	if (!from_stdin && !b64)
		for (int i = optind; i < argc; i++) {
			size_t len = strlen(argv[i]);

			if (len > SHN_DATA_MAX)
				return cli_usage_error("publish", usage,
						       "DATA #%d is %zu bytes; the most is %d",
						       i - optind + 1, len, SHN_DATA_MAX);
		}

	rc = cli_connect(socket_path, "publish", name, &p.client);
	if (rc)
		return rc;
	if (p.timeout_ms >= 0) {
		rc = shn_set_sync_timeout(p.client, p.timeout_ms);
		if (rc < 0) {
			cli_err("publish --timeout: %s", shn_strerror(rc));
			shn_disconnect(p.client);
			return EXIT_RUNTIME;
		}
	}
	if (json)
		rc = publish_json(&p, event, per_batch);
	else if (from_stdin)
		rc = publish_lines(&p, key, event, b64, per_batch);
	else
		rc = publish_args(&p, key, event, b64, argv + optind, (size_t)(argc - optind));
	shn_disconnect(p.client);
	if (rc == EXIT_USAGE)
		fprintf(stderr, "%s\nTry 'shmnotify publish --help' for more information.\n",
			usage);
	return rc;
}
