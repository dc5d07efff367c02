/* SPDX-License-Identifier: MIT */
/*
 * main.c - shmnotify-bridge: carries mapped keys between hosts over NATS.
 *
 *   shmnotify-bridge --config FILE [--check-config]
 *
 * The main thread connects to the local broker (with back-off until one
 * answers; the library reconnects by itself afterwards), reads the local
 * batches to export (out.c), delivers remote batches that waited too long
 * (in.c), keeps NATS set up (nats.c) and writes the stats file.  libnats'
 * threads deliver remote messages (in.c).  SIGTERM or SIGINT: deliver what
 * is assembled, let NATS take what was published, exit 0.
 */
#define _GNU_SOURCE
#include "bridge.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "log.h"
#include "util/file_kind.h"

#define GET_MAX 4096       /* notes per get */
#define TICK_MS 10         /* the longest the main loop waits on the port */

static struct bridge bridge;

static void on_signal(int sig)
{
	(void)sig;
	bridge.stop = 1;
}

static const char usage[] =
	"usage: shmnotify-bridge --config FILE [--check-config] | --help | --version";

static void help(void)
{
	printf("%s\n"
	       "\n"
	       "Carry notifications of mapped keys between this host's shmnotifyd and other\n"
	       "hosts over NATS (see shmnotify-bridge(1) and docs/multi-host.md).\n"
	       "\n"
	       "  -c, --config FILE   the bridge's INI file (default: $SHMNOTIFY_BRIDGE_CONFIG)\n"
	       "  -n, --check-config  read and check the file, print what it means, exit\n"
	       "  -h, --help          show this help\n"
	       "  -V, --version       show the version\n",
	       usage);
}

/* Connect to the local broker, retrying with back-off until it answers or
 * we are told to stop.  0 or -errno. */
static int local_connect(struct bridge *b)
{
	const char *sock = b->cfg.socket[0] ? b->cfg.socket : NULL;
	int64_t wait = 50;
	bool told = false;
	struct stat st;
	int r;

	for (;;) {
		r = shn_connect(sock, &b->c);
		if (r == 0)
			break;
		/* ECONNREFUSED is also connect(2)'s answer for a file that is no
		 * socket: no broker will ever listen there (it refuses such a
		 * path), so waiting would be for ever */
		if (r == -ECONNREFUSED && sock != NULL && stat(sock, &st) == 0 &&
		    !S_ISSOCK(st.st_mode)) {
			br_log(b, "cannot connect to the local broker at %s: it is %s, not a socket; "
			       "set socket in [bridge] to the broker's socket", sock,
			       shu_file_kind(st.st_mode));
			return (-ENOTSOCK);
		}
		if (r != -ENOENT && r != -ECONNREFUSED && r != -EAGAIN) {
			br_log(b, "cannot connect to the local broker at %s: %s", sock ? sock :
			       "the default socket", shn_strerror(r));
			return (r);
		}
		if (!told)
			br_log(b, "no local broker at %s yet (%s): retrying with back-off; start "
			       "shmnotifyd or set socket in [bridge]", sock ? sock : "the default socket",
			       shn_strerror(r));
		told = true;
		if (b->stop)
			return (-EINTR);
		nats_Sleep(wait);
		wait = wait * 2 > 2000 ? 2000 : wait * 2;
	}
	/* a port even for an in-only bridge: it brings BROKER_STATE and
	 * RECONNECT, so the bridge knows when the broker is away */
	r = shn_port_open(b->c, NULL, &b->port);
	if (r == 0 && br_out_wanted(b)) {
		shn_conn conn;

		r = shn_subscribe(b->port, NULL, 0, br_out_mask(b), 0, &conn);
	}
	if (r < 0) {
		br_log(b, "local broker: cannot open the export port: %s", shn_strerror(r));
		return (r);
	}
	atomic_store(&b->local_up, true);
	br_log(b, "connected to the local broker%s%s", sock ? " at " : "", sock ? sock : "");
	return (0);
}

static uint64_t le64(const void *p)
{
	const uint8_t *d = p;
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = (v << 8) | d[i];
	return (v);
}

/* A delivered batch larger than one get: copies of its notes. */
struct big {
	shn_notification *n;
	uint8_t **mem;
	size_t count, cap;
};

static void big_clear(struct big *g)
{
	for (size_t i = 0; i < g->count; i++)
		free(g->mem[i]);
	g->count = 0;
}

static int big_add(struct big *g, const shn_notification *x)
{
	uint8_t *m;

	if (g->count == g->cap) {
		size_t nc = g->cap ? g->cap * 2 : GET_MAX * 2;
		shn_notification *nn = realloc(g->n, nc * sizeof(*nn));
		uint8_t **nm;

		if (nn == NULL)
			return (-ENOMEM);
		g->n = nn;
		nm = realloc(g->mem, nc * sizeof(*nm));
		if (nm == NULL)
			return (-ENOMEM);
		g->mem = nm;
		g->cap = nc;
	}
	m = malloc((size_t)x->key_len + x->data_len + 1);
	if (m == NULL)
		return (-ENOMEM);
	memcpy(m, x->key, x->key_len);
	if (x->data_len)
		memcpy(m + x->key_len, x->data, x->data_len);
	g->n[g->count] = *x;
	g->n[g->count].key = m;
	g->n[g->count].data = m + x->key_len;
	g->mem[g->count++] = m;
	return (0);
}

static void system_event(struct bridge *b, const shn_notification *x)
{
	if (x->event & SHN_EV_BROKER_STATE) {
		atomic_store(&b->local_up, false);
		br_log(b, "the local broker went away: waiting for it to come back");
	} else if (x->event & SHN_EV_RECONNECT) {
		atomic_store(&b->local_up, true);
		atomic_fetch_add(&b->st.local_reconnects, 1);
		br_log(b, "reconnected to the local broker");
	} else if ((x->event & SHN_EV_OVERFLOW) && x->key_len == 0 && x->data_len == 8) {
		uint64_t lost = le64(x->data);

		atomic_fetch_add(&b->st.local_overflow, lost);
		br_log(b, "%llu local notifications were lost before export (the bridge's port "
		       "overflowed: is NATS keeping up?)", (unsigned long long)lost);
	}
}

/* Read what the port holds (waiting at most TICK_MS) and export it. */
static void pump(struct bridge *b, shn_notification *buf, struct big *g)
{
	int n = shn_port_get(b->port, buf, GET_MAX, b->unflushed ? 0 : TICK_MS);

	if (n == -ETIMEDOUT && b->unflushed) {
		/* nothing more to export now: push out what libnats buffered,
		 * or its flusher thread would add a millisecond to the last
		 * batch (docs/bench.md, "Bridge"); under load this is skipped */
		b->unflushed = false;
		natsConnection_FlushTimeout(b->nc, 1000);
		return;
	}
	if (n <= 0) {
		if (n != -ETIMEDOUT && n != -ECANCELED) {
			br_log(b, "local port: %s", shn_strerror(n));
			nats_Sleep(TICK_MS);
		}
		return;
	}
	if (n == 1 && (buf[0].event & SHN_EV_SYSTEM) && buf[0].key_len == 0) {
		system_event(b, &buf[0]);
		return;
	}
	/* a batch comes whole in one get unless it is larger than GET_MAX */
	if (g->count == 0 && buf[0].batch_index == 0 && (uint32_t)n == buf[0].batch_count) {
		br_out_batch(b, buf, (size_t)n);
		b->unflushed = b->js == NULL;
		return;
	}
	for (int i = 0; i < n; i++)
		if (big_add(g, &buf[i]) < 0) {
			br_log(b, "out of memory: a local batch is not exported");
			big_clear(g);
			return;
		}
	if (buf[n - 1].batch_index + 1 == buf[n - 1].batch_count) {
		br_out_batch(b, g->n, g->count);
		b->unflushed = b->js == NULL;
		big_clear(g);
	}
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "check-config", no_argument, NULL, 'n' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	struct bridge *b = &bridge;
	const char *path = getenv("SHMNOTIFY_BRIDGE_CONFIG");
	bool check = false;
	struct sigaction sa;
	shn_notification *buf = NULL;
	struct big g = { 0 };
	int64_t next_stats = 0, next_setup = 0, setup_wait = 100;
	int opt, rc = 0;

	while ((opt = getopt_long(argc, argv, "c:nhV", longopts, NULL)) != -1) {
		switch (opt) {
		case 'c':
			path = optarg;
			break;
		case 'n':
			check = true;
			break;
		case 'h':
			help();
			return (0);
		case 'V':
			printf("shmnotify-bridge %s\n", SHN_VERSION_STRING);
			return (0);
		default:
			fprintf(stderr, "%s\n", usage);
			return (2);
		}
	}
	if (optind < argc) {
		fprintf(stderr, "shmnotify-bridge: unexpected argument '%s'\n%s\n", argv[optind],
			usage);
		return (2);
	}
	if (path == NULL) {
		fprintf(stderr, "shmnotify-bridge: no configuration: give --config FILE (or set "
			"SHMNOTIFY_BRIDGE_CONFIG)\n%s\n", usage);
		return (2);
	}
	if (br_config_load(&b->cfg, path) < 0)
		return (1);
	if (check) {
		printf("%s: OK\n", path);
		br_config_print(&b->cfg, stdout);
		br_config_free(&b->cfg);
		return (0);
	}

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sa.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &sa, NULL);

	b->pid = getpid();
	b->started_ms = br_now_ms();
	pthread_mutex_init(&b->url_lock, NULL);
	if (getrandom(&b->epoch, sizeof(b->epoch), 0) != sizeof(b->epoch))
		b->epoch = (uint64_t)time(NULL) ^ ((uint64_t)b->pid << 32);
	b->epoch &= INT64_MAX;   /* a decimal that every JSON reader takes */
	srandom((unsigned)b->epoch);
	buf = calloc(GET_MAX, sizeof(*buf));
	if (buf == NULL || br_out_init(b) < 0) {
		fprintf(stderr, "shmnotify-bridge: out of memory\n");
		return (1);
	}
	if (br_in_wanted(b)) {
		if (br_state_open(&b->state, b->cfg.state_file) < 0)
			return (1);
		if (br_in_init(b) < 0) {
			fprintf(stderr, "shmnotify-bridge: out of memory\n");
			return (1);
		}
	}
	if (nats_Open(-1) != NATS_OK) {
		fprintf(stderr, "shmnotify-bridge: the NATS library did not start\n");
		return (1);
	}
	br_log(b, "starting: %s mode, %d rule(s), epoch %llu", b->cfg.mode == BR_JETSTREAM ?
	       "jetstream" : "core", b->cfg.nrules, (unsigned long long)b->epoch);
	br_stats_write(b);
	if (local_connect(b) < 0) {
		rc = b->stop ? 0 : 1;
		goto out;
	}
	if (br_nats_connect(b) < 0) {
		rc = 1;
		goto out;
	}
	while (!b->stop) {
		int64_t now = br_now_ms();

		if (!atomic_load(&b->ready) && atomic_load(&b->nats_state) == BR_NATS_CONNECTED &&
		    now >= next_setup) {
			if (br_nats_setup(b) == 0) {
				setup_wait = 100;
				br_log(b, "ready: subscriptions in place");
			} else {
				next_setup = now + setup_wait;   /* try again, backing off */
				setup_wait = setup_wait * 2 > 5000 ? 5000 : setup_wait * 2;
			}
		}
		pump(b, buf, &g);
		br_in_tick(b);
		if (now >= next_stats) {
			int err = br_stats_write(b);

			if (err < 0 && next_stats == 0)
				br_log(b, "stats file %s: %s (set stats-file to a writable path, or none)",
				       b->cfg.stats_file, strerror(-err));
			next_stats = now + 1000;
		}
	}
	br_log(b, "stopping");
out:
	br_in_flush(b);               /* deliver what is assembled, acknowledge it */
	br_nats_close(b);
	nats_CloseAndWait(2000);      /* no delivery thread runs past this */
	br_in_fini(b);
	b->stop = 1;
	br_stats_write(b);
	big_clear(&g);
	free(g.n);
	free(g.mem);
	br_out_fini(b);
	if (b->c != NULL) {
		if (b->port != NULL)
			shn_port_close(b->port);
		shn_disconnect(b->c);
	}
	if (b->state.h != NULL)
		br_state_close(&b->state);
	br_config_free(&b->cfg);
	free(buf);
	pthread_mutex_destroy(&b->url_lock);
	return (rc);
}
