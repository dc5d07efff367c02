/* SPDX-License-Identifier: MIT */
/*
 * t_shmnotify.c - shmnotify through a private shmnotifyd.
 *
 * The bench starts its own broker on a socket in a private directory and
 * stops it by PID: $SHMNOTIFY_BENCH_BROKER, else the shmnotifyd installed
 * beside the bench, else the one CMake built, else shmnotifyd in $PATH.
 * With --socket PATH (bench_shn_socket) it uses the broker already running
 * there instead, as it is configured, and leaves it running, as
 * redis-benchmark -s and nats bench do; the variants that need a broker
 * configured their own way are then skipped.  The parent never links the
 * library into its own state: every client is made after fork() in a
 * child, since shn_connect starts a watcher thread.
 *
 * Variants: "shmnotify" uses the default overflow policy (a full port
 * drops, counts, and reports SHN_EV_OVERFLOW with the number lost) and the
 * broker's defaults; "shmnotify-block" opens its ports with
 * SHN_OVERFLOW_BLOCK (lossless: the publishers feeding a full port wait);
 * "shmnotify-brokered" runs the broker with the direct data path off;
 * "shmnotify-lowlat" runs it in its low-latency mode.
 */
#include "bench.h"

#include <errno.h>
#include <stdbool.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <limits.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <shmnotify.h>

#ifndef SHMNOTIFYD_PATH
#define SHMNOTIFYD_PATH "shmnotifyd"
#endif

#define BENCH_SHN_MAX_SUBS 2000000u
/* A broker's [limits] max-subscriptions unless configured otherwise
 * (broker/config.h): what a running broker is assumed to allow. */
#define BENCH_SHN_DEFAULT_MAX_SUBS 65536u

const char *bench_shn_socket;
const char *bench_shn_broker;

struct shn_state {
	char *dir;                    /* the private broker's directory; NULL: a running broker */
	char sock[512];
	pid_t pid;                    /* the broker's (0: unknown) */
	bool running;                 /* --socket: not ours to stop */
	unsigned overflow;
};

/* Which shmnotifyd to start: $SHMNOTIFY_BENCH_BROKER, else the one beside
 * this program (both installed in bin/), else the one built with it, else
 * shmnotifyd in $PATH. */
static const char *broker_binary(char *buf, size_t len)
{
	const char *env = getenv("SHMNOTIFY_BENCH_BROKER");
	char self[PATH_MAX];
	ssize_t n;

	if (env && *env)
		return env;
	n = readlink("/proc/self/exe", self, sizeof self - 1);
	if (n > 0) {
		char *slash;

		self[n] = '\0';
		slash = strrchr(self, '/');
		if (slash) {
			*slash = '\0';
			if (snprintf(buf, len, "%s/shmnotifyd", self) < (int)len &&
			    access(buf, X_OK) == 0)
				return buf;
		}
	}
	if (access(SHMNOTIFYD_PATH, X_OK) == 0)
		return SHMNOTIFYD_PATH;
	return "shmnotifyd";
}

/* --socket: the broker already running on bench_shn_socket. */
static int start_running(void **st, char *why, size_t whylen, unsigned overflow,
			 unsigned spin_us, bool direct_off)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct ucred cred;
	socklen_t clen = sizeof cred;
	struct shn_state *s;
	int fd, err;

	if (spin_us || direct_off) {
		bench_fmt_why(why, whylen, "needs a broker of its own (shmnotifyd %s); with --socket "
			      "the running broker is measured as it is configured",
			      spin_us ? "--spin-us" : "--direct off");
		return -ENOTSUP;
	}
	if (strlen(bench_shn_socket) >= sizeof sa.sun_path ||
	    strlen(bench_shn_socket) >= sizeof s->sock) {
		bench_fmt_why(why, whylen, "--socket %s: path too long", bench_shn_socket);
		return -ENAMETOOLONG;
	}
	strcpy(sa.sun_path, bench_shn_socket);
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
		err = -errno;
		close(fd);
		bench_fmt_why(why, whylen, "no broker answers on %s (%s): start shmnotifyd there, "
			      "or run without --socket", bench_shn_socket, strerror(-err));
		return err;
	}
	s = calloc(1, sizeof *s);
	if (!s) {
		close(fd);
		return -ENOMEM;
	}
	/* its pid, for the CPU it uses in the idle workload */
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &clen) == 0)
		s->pid = cred.pid;
	close(fd);
	strcpy(s->sock, bench_shn_socket);
	s->running = true;
	s->overflow = overflow;
	*st = s;
	return 0;
}

static int start(void **st, char *why, size_t whylen, unsigned overflow, unsigned spin_us,
		 bool direct_off)
{
	char binbuf[PATH_MAX];
	const char *bin;
	struct shn_state *s;
	char logp[600], conf[600];
	FILE *f;
	int err = 0;

	if (bench_shn_socket)
		return start_running(st, why, whylen, overflow, spin_us, direct_off);
	bin = broker_binary(binbuf, sizeof binbuf);
	{
		static char used[PATH_MAX];

		snprintf(used, sizeof used, "%s", bin);
		bench_shn_broker = used;
	}
	s = calloc(1, sizeof *s);
	if (!s)
		return -ENOMEM;
	s->overflow = overflow;
	if (!bench_which(bin)) {
		bench_fmt_why(why, whylen, "no broker binary at %s", bin);
		free(s);
		return -ENOENT;
	}
	s->dir = bench_tmpdir("shn");
	if (!s->dir) {
		free(s);
		return -errno;
	}
	snprintf(s->sock, sizeof s->sock, "%s/shmnotify.sock", s->dir);
	snprintf(logp, sizeof logp, "%s/broker.log", s->dir);
	snprintf(conf, sizeof conf, "%s/shmnotifyd.conf", s->dir);
	/* the keys workload subscribes one port to 1,000,000 keys: past the
	 * default per-client limit, which protects a shared broker */
	f = fopen(conf, "w");
	if (f) {
		fprintf(f, "[limits]\nmax-subscriptions = %u\n", BENCH_SHN_MAX_SUBS);
		if (spin_us || direct_off)
			fprintf(f, "[broker]\n");
		if (spin_us)
			fprintf(f, "spin-us = %u\n", spin_us);
		if (direct_off)
			fprintf(f, "direct = off\n");
		fclose(f);
	}
	{
		char *argv[] = { (char *)bin, "--socket", s->sock, "--log-level", "warn",
				 f ? "--config" : NULL, conf, NULL };

		s->pid = bench_spawn(argv, logp, -1);
	}
	if (s->pid < 0 || (err = bench_wait_unix(s->sock, SOCK_SEQPACKET, 10000, s->pid)) < 0) {
		err = s->pid < 0 ? s->pid : err;
		bench_fmt_why(why, whylen, "shmnotifyd did not start (%s; see its log)", strerror(-err));
		if (s->pid > 0)
			bench_stop_pid(s->pid, 2000);
		free(s->dir);
		free(s);
		return err;
	}
	*st = s;
	return 0;
}

static int shn_start_drop(void **st, char *why, size_t whylen)
{
	return start(st, why, whylen, SHN_OVERFLOW_DROP, 0, false);
}

static int shn_start_block(void **st, char *why, size_t whylen)
{
	return start(st, why, whylen, SHN_OVERFLOW_BLOCK, 0, false);
}

/* The opt-in low-latency mode: the broker keeps looking for work this long
 * after each wake-up before it sleeps (shmnotifyd --spin-us);
 * $SHMNOTIFY_BENCH_SPIN_US overrides it (1-1000). */
#define BENCH_LOWLAT_SPIN_US 200u

/* shmnotify with the direct data path off: every notification through the
 * broker (publisher -> broker -> subscriber), what each figure of the
 * default buys is the difference between the two rows. */
static int shn_start_brokered(void **st, char *why, size_t whylen)
{
	return start(st, why, whylen, SHN_OVERFLOW_DROP, 0, true);
}

static int shn_start_lowlat(void **st, char *why, size_t whylen)
{
	const char *e = getenv("SHMNOTIFY_BENCH_SPIN_US");
	unsigned us = BENCH_LOWLAT_SPIN_US;

	if (e && *e) {
		char *end;
		unsigned long v = strtoul(e, &end, 10);

		if (*end || v < 1 || v > 1000) {
			bench_fmt_why(why, whylen, "SHMNOTIFY_BENCH_SPIN_US='%s': expected 1 to 1000", e);
			return -EINVAL;
		}
		us = (unsigned)v;
	}
	return start(st, why, whylen, SHN_OVERFLOW_DROP, us, false);
}

/* A mode for latency: its throughput is shmnotify's (the spin only runs
 * when the broker would otherwise sleep), so only latency and idle run. */
static int shn_lowlat_supports(void *st, const struct params *p, char *why, size_t whylen)
{
	(void)st;
	if ((p->wl == WL_LATENCY && !p->spin) || p->wl == WL_IDLE)
		return 0;
	if (p->wl == WL_LATENCY)
		bench_fmt_why(why, whylen, "spinning clients beside a spinning broker "
			      "oversubscribe 2 CPUs: measured with blocking clients only");
	else
		bench_fmt_why(why, whylen, "the low-latency mode is measured on blocking latency "
			      "and idle only (under load the broker does not sleep, so it never spins)");
	return -ENOTSUP;
}

static void shn_stop(void *st)
{
	struct shn_state *s = st;

	if (!s->running) {
		bench_stop_pid(s->pid, 5000);
		bench_rmtree(s->dir);
		free(s->dir);
	}
	free(s);
}

/* A running broker has its own limits: the keys case past the default
 * max-subscriptions would only measure a refusal. */
static int shn_supports(void *st, const struct params *p, char *why, size_t whylen)
{
	struct shn_state *s = st;

	if (s->running && p->nkeys > BENCH_SHN_DEFAULT_MAX_SUBS) {
		bench_fmt_why(why, whylen, "%u subscriptions on one client: past a broker's default "
			      "[limits] max-subscriptions (%u); run without --socket for this case",
			      p->nkeys, BENCH_SHN_DEFAULT_MAX_SUBS);
		return -ENOTSUP;
	}
	return 0;
}

static int shn_server_pids(void *st, pid_t *pids, int max)
{
	struct shn_state *s = st;

	if (max < 1 || s->pid <= 0)
		return 0;
	pids[0] = s->pid;
	return 1;
}

/* ---- publisher ------------------------------------------------------------ */

struct spub {
	shn_client *c;
	shn_notification *b;
	unsigned cap;
};

static void *shn_pub_open(void *st, const struct ep_args *a, int *err)
{
	struct shn_state *s = st;
	struct spub *e = calloc(1, sizeof *e);

	if (!e) {
		*err = -ENOMEM;
		return NULL;
	}
	e->cap = a->p->batch > 1 ? a->p->batch : 1;
	e->b = calloc(e->cap, sizeof *e->b);
	if (!e->b || (*err = shn_connect(s->sock, &e->c)) < 0) {
		if (!e->b)
			*err = -ENOMEM;
		free(e->b);
		free(e);
		return NULL;
	}
	for (unsigned i = 0; i < e->cap; i++)
		e->b[i].event = 1;
	return e;
}

static int shn_pub_send(void *ep, const struct bmsg *m, unsigned n)
{
	struct spub *e = ep;

	if (n > e->cap)
		return -EINVAL;
	for (unsigned i = 0; i < n; i++) {
		e->b[i].key = m[i].key;
		e->b[i].key_len = (uint16_t)m[i].key_len;
		e->b[i].data = m[i].data;
		e->b[i].data_len = m[i].data_len;
	}
	return shn_notify(e->c, e->b, n, 0);
}

static void shn_pub_close(void *ep)
{
	struct spub *e = ep;

	shn_disconnect(e->c);   /* accepted batches are still routed (rule 9) */
	free(e->b);
	free(e);
}

/* ---- subscriber ----------------------------------------------------------- */

#define SUB_BUF 256

struct ssub {
	shn_client *c;
	shn_port *port;
	shn_notification buf[SUB_BUF];
};

static void *shn_sub_open(void *st, const struct ep_args *a, int *err)
{
	struct shn_state *s = st;
	struct ssub *e = calloc(1, sizeof *e);
	shn_port_options opt = { .capacity = 0, .overflow = s->overflow };
	shn_conn conn;

	if (!e) {
		*err = -ENOMEM;
		return NULL;
	}
	if ((*err = shn_connect(s->sock, &e->c)) < 0) {
		free(e);
		return NULL;
	}
	if ((*err = shn_port_open(e->c, &opt, &e->port)) < 0)
		goto fail;
	if (a->channel != BENCH_CH_DATA) {
		const char *k = a->channel == BENCH_CH_PING ? "ping" : "pong";

		if ((*err = shn_subscribe(e->port, k, 4, SHN_EV_ALL, 0, &conn)) < 0)
			goto fail;
		return e;
	}
	for (unsigned i = 0; i < a->p->nkeys; i++)
		if ((*err = shn_subscribe(e->port, bench_key(a->p, i), bench_filter_len(a->p, i),
					  SHN_EV_ALL, a->p->prefix ? SHN_SUBSCRIBE_PREFIX : 0,
					  &conn)) < 0)
			goto fail;
	return e;
fail:
	shn_disconnect(e->c);
	free(e);
	return NULL;
}

static int shn_sub_recv(void *ep, int timeout_ms, struct rx *rx)
{
	struct ssub *e = ep;
	/* a spinning reader (timeout 0) arms nothing: nobody pays it a wake-up */
	int n = timeout_ms == 0 ? shn_port_try_get(e->port, e->buf, SUB_BUF)
				: shn_port_get(e->port, e->buf, SUB_BUF, timeout_ms);

	if (n == -EAGAIN)
		n = -ETIMEDOUT;

	for (int i = 0; i < n; i++) {
		const shn_notification *x = &e->buf[i];

		if (x->event & SHN_EV_OVERFLOW) {
			uint64_t l = 0;

			if (x->data_len == 8)
				for (int k = 7; k >= 0; k--)
					l = l << 8 | ((const uint8_t *)x->data)[k];
			rx->lost += l;
		} else if (!(x->event & SHN_EV_SYSTEM)) {
			bench_rx(rx, x->data, x->data_len);
		}
	}
	return n;
}

static void shn_sub_close(void *ep)
{
	struct ssub *e = ep;

	shn_disconnect(e->c);
	free(e);
}

/* The shmnotify transports differ in how the broker is started (and
 * so in their loss policy), never in how clients talk to it. */
#define SHN_FANOUT_NOTE "the publisher writes each matching port's direct ring (up to 64 ports a " \
			"batch, SHMNOTIFY_DIRECT_FANOUT); a wider batch: the broker copies it into " \
			"every port's delivery ring"
#define SHN_FANOUT_NOTE_BROKERED "the broker copies each notification into every matching " \
				 "port's delivery ring"
#define SHN_TRANSPORT_OPS                                                              \
	.stop = shn_stop, .server_pids = shn_server_pids, .pub_open = shn_pub_open,    \
	.pub_send = shn_pub_send, .pub_close = shn_pub_close, .sub_open = shn_sub_open, \
	.sub_recv = shn_sub_recv, .sub_close = shn_sub_close

const struct transport t_shmnotify = {
	.name = "shmnotify",
	.loss_policy = "default SHN_OVERFLOW_DROP: a full port drops the batch for that port only, "
		       "counts it and reports SHN_EV_OVERFLOW with the exact number lost",
	.start = shn_start_drop,
	.supports = shn_supports,
	.fanout_note = SHN_FANOUT_NOTE,
	SHN_TRANSPORT_OPS,
};

const struct transport t_shmnotify_block = {
	.name = "shmnotify-block",
	.loss_policy = "SHN_OVERFLOW_BLOCK: lossless; the publishers feeding a full port wait "
		       "(back-pressure), other ports are not held",
	.start = shn_start_block,
	.supports = shn_supports,
	.fanout_note = SHN_FANOUT_NOTE,
	SHN_TRANSPORT_OPS,
};

const struct transport t_shmnotify_brokered = {
	.name = "shmnotify-brokered",
	.loss_policy = "as shmnotify (SHN_OVERFLOW_DROP); the broker runs with its direct data "
		       "path off (shmnotifyd --direct off): every notification takes two hops",
	.start = shn_start_brokered,
	.supports = shn_supports,
	.fanout_note = SHN_FANOUT_NOTE_BROKERED,
	SHN_TRANSPORT_OPS,
};

const struct transport t_shmnotify_lowlat = {
	.name = "shmnotify-lowlat",
	.loss_policy = "as shmnotify (SHN_OVERFLOW_DROP); the broker runs in its opt-in "
		       "low-latency mode (shmnotifyd --spin-us 200)",
	.start = shn_start_lowlat,
	.supports = shn_lowlat_supports,
	.fanout_note = SHN_FANOUT_NOTE,
	SHN_TRANSPORT_OPS,
};
