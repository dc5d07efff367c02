/* SPDX-License-Identifier: MIT */
/*
 * publish.c - shmnotify publish [--socket PATH] [--event BITS] [--sync] KEY DATA...
 *
 * Every DATA argument becomes one notification with key KEY; together they
 * are one batch, published with one shn_notify() call.
 */
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static const char usage[] =
	"usage: shmnotify publish [--socket PATH] [--event BITS] [--sync] [--name NAME] KEY "
	"[DATA...]";

static void help(void)
{
	printf("%s\n"
	       "\n"
	       "Publish one batch: each DATA is one notification with key KEY, in order.\n"
	       "Without DATA one notification with empty data is published.\n"
	       "\n"
	       "  -s, --socket PATH   the broker's socket (default: $SHMNOTIFY_SOCKET, then\n"
	       "                      the per-user default)\n"
	       "  -e, --event BITS    event bits, decimal or 0x hex, bits 0-27 only\n"
	       "                      (1 to 0x%08x; default 1)\n"
	       "      --sync          wait until every matching subscriber has consumed the\n"
	       "                      batch (exit 3 if a subscriber's sink cancelled it)\n"
	       "      --name NAME     how `shmnotify stats` shows this client (default\n"
	       "                      \"shmnotify publish\"; 1 to %d bytes of UTF-8)\n"
	       "  -h, --help          show this help\n"
	       "\n"
	       "KEY is 1 to %d bytes, each DATA at most %d bytes. Use -- before a KEY or\n"
	       "DATA that starts with '-'.\n"
	       "\n"
	       "Example: shmnotify publish --event 0x4 printers/lp0 jam cleared\n",
	       usage, SHN_EV_ALL, SHN_NAME_MAX, SHN_KEY_MAX, SHN_DATA_MAX);
}

int cmd_publish(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "event",  required_argument, NULL, 'e' },
		{ "sync",   no_argument,       NULL, 'S' },
		{ "name",   required_argument, NULL, 'N' },
		{ "help",   no_argument,       NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *socket_path = NULL, *key, *name = NULL;
	uint32_t event = 1;
	unsigned flags = 0;
	char why[256];
	shn_notification *batch;
	shn_client *client;
	size_t n, i, key_len;
	int c, rc;

	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":s:e:h", opts, NULL)) != -1) {
		switch (c) {
		case 's':
			if (cli_socket_option("publish", usage, optarg, &socket_path))
				return EXIT_USAGE;
			break;
		case 'e':
			if (!cli_parse_event(optarg, &event, why, sizeof why))
				return cli_usage_error("publish", usage, "--event: %s", why);
			break;
		case 'S':
			flags |= SHN_NOTIFY_SYNC;
			break;
		case 'N':
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
	if (optind >= argc)
		return cli_usage_error("publish", usage, "missing KEY");
	key = argv[optind++];
	key_len = strlen(key);
	if (key_len == 0 || key_len > SHN_KEY_MAX)
		return cli_usage_error("publish", usage, "KEY must be 1 to %d bytes, not %zu",
				       SHN_KEY_MAX, key_len);
	n = (size_t)(argc - optind);
	for (i = 0; i < n; i++) {
		size_t len = strlen(argv[optind + i]);

		if (len > SHN_DATA_MAX)
			return cli_usage_error("publish", usage,
					       "DATA #%zu is %zu bytes; the most is %d", i + 1, len,
					       SHN_DATA_MAX);
	}

	batch = calloc(n ? n : 1, sizeof *batch);
	if (!batch) {
		cli_err("out of memory");
		return EXIT_RUNTIME;
	}
	for (i = 0; i < (n ? n : 1); i++) {
		batch[i].event = event;
		batch[i].key = key;
		batch[i].key_len = (uint16_t)key_len;
		batch[i].data = n ? argv[optind + i] : "";
		batch[i].data_len = n ? (uint32_t)strlen(argv[optind + i]) : 0;
	}
	if (!n)
		n = 1;

	rc = cli_connect(socket_path, "publish", name, &client);
	if (rc) {
		free(batch);
		return rc;
	}
	rc = shn_notify(client, batch, n, flags);
	shn_disconnect(client);
	free(batch);

	if (rc == 0)
		return 0;
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
			"publish ring (%s): publish fewer or smaller DATA per call", n,
			strerror(-rc));
		break;
	case EOPNOTSUPP:
		if (flags & SHN_NOTIFY_SYNC) {
			cli_err("publish --sync failed: this libshmnotify does not support "
				"synchronous notify yet (%s): publish without --sync",
				strerror(-rc));
			break;
		}
		cli_err("publish failed: %s", shn_strerror(rc));
		break;
	case ETIMEDOUT:
		cli_err("publish failed: the subscribers did not consume the batch in time (%s)",
			strerror(-rc));
		break;
	default:
		cli_err("publish failed: %s", shn_strerror(rc));
		break;
	}
	return EXIT_RUNTIME;
}
