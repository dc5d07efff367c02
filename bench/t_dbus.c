/* SPDX-License-Identifier: MIT */
/*
 * t_dbus.c - D-Bus signals through a private dbus-daemon, with sd-bus.
 *
 * The bench writes a bus configuration into a private directory (a session
 * bus listening on unix:path=DIR/bus, EXTERNAL auth, everything allowed,
 * match-rule and queue limits stated below), starts dbus-daemon --nofork
 * --print-address on it and stops it by PID.  A message is the signal
 * org.shmnotify.Bench.N on /org/shmnotify/bench with (key string, payload
 * byte array); a subscriber adds one match rule per key (arg0='KEY'), so the
 * daemon does the routing.  A batch is N signals queued, then one
 * sd_bus_flush().
 *
 * Loss: dbus-daemon drops a message for a recipient whose outgoing queue is
 * over max_outgoing_bytes / max_outgoing_unix_fds (the recipient alone loses
 * it); counted as published - delivered.
 */
#include "bench.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <systemd/sd-bus.h>

#define DBUS_MAX_MATCH 5000   /* matches per connection the private bus allows */

struct dst {
	char *dir;
	char addr[700];
	char sock[600];
	pid_t pid;
};

static int d_start(void **st, char *why, size_t whylen)
{
	const char *bin = bench_which("dbus-daemon");
	struct dst *s;
	char conf[700], logp[700], binc[4096], cfarg[800];
	FILE *f;
	int pfd[2], err;

	if (!bin) {
		bench_fmt_why(why, whylen, "dbus-daemon not installed (apt-get install dbus-daemon)");
		return -ENOENT;
	}
	snprintf(binc, sizeof binc, "%s", bin);
	s = calloc(1, sizeof *s);
	if (!s)
		return -ENOMEM;
	s->dir = bench_tmpdir("dbus");
	if (!s->dir) {
		free(s);
		return -errno;
	}
	snprintf(s->sock, sizeof s->sock, "%s/bus", s->dir);
	snprintf(conf, sizeof conf, "%s/bus.conf", s->dir);
	snprintf(logp, sizeof logp, "%s/dbus.log", s->dir);
	f = fopen(conf, "w");
	if (!f) {
		err = -errno;
		goto fail;
	}
	fprintf(f,
		"<!DOCTYPE busconfig PUBLIC \"-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN\"\n"
		" \"http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd\">\n"
		"<busconfig>\n"
		"  <type>session</type>\n"
		"  <listen>unix:path=%s</listen>\n"
		"  <auth>EXTERNAL</auth>\n"
		"  <policy context=\"default\">\n"
		"    <allow send_destination=\"*\" eavesdrop=\"true\"/>\n"
		"    <allow eavesdrop=\"true\"/>\n"
		"    <allow own=\"*\"/>\n"
		"  </policy>\n"
		"  <limit name=\"max_incoming_bytes\">1000000000</limit>\n"
		"  <limit name=\"max_outgoing_bytes\">1000000000</limit>\n"
		"  <limit name=\"max_message_size\">1000000000</limit>\n"
		"  <limit name=\"max_match_rules_per_connection\">%d</limit>\n"
		"  <limit name=\"max_connections_per_user\">1000</limit>\n"
		"</busconfig>\n", s->sock, DBUS_MAX_MATCH);
	fclose(f);
	if (pipe(pfd) < 0) {
		err = -errno;
		goto fail;
	}
	{
		char pa[32];
		char *argv[] = { binc, cfarg, "--nofork", pa, NULL };

		snprintf(cfarg, sizeof cfarg, "--config-file=%s", conf);
		snprintf(pa, sizeof pa, "--print-address=%d", pfd[1]);
		s->pid = bench_spawn(argv, logp, pfd[1]);
	}
	close(pfd[1]);
	if (s->pid < 0) {
		close(pfd[0]);
		err = s->pid;
		goto fail;
	}
	/* the daemon prints its address once it listens: that is readiness */
	{
		ssize_t n = read(pfd[0], s->addr, sizeof s->addr - 1);

		close(pfd[0]);
		if (n <= 0) {
			bench_stop_pid(s->pid, 2000);
			err = -EIO;
			goto fail;
		}
		s->addr[n] = 0;
		s->addr[strcspn(s->addr, "\n")] = 0;
	}
	*st = s;
	return 0;
fail:
	bench_fmt_why(why, whylen, "dbus-daemon did not start (%s; see %s)", strerror(-err), logp);
	free(s->dir);
	free(s);
	return err;
}

static void d_stop(void *st)
{
	struct dst *s = st;

	bench_stop_pid(s->pid, 5000);
	bench_rmtree(s->dir);
	free(s->dir);
	free(s);
}

static int d_server_pids(void *st, pid_t *pids, int max)
{
	if (max < 1)
		return 0;
	pids[0] = ((struct dst *)st)->pid;
	return 1;
}

static int d_supports(void *st, const struct params *p, char *why, size_t whylen)
{
	(void)st;
	if (p->prefix) {
		bench_fmt_why(why, whylen, "a D-Bus match rule compares an argument whole "
			      "(arg0namespace takes only whole dot-separated names): no byte prefix");
		return -ENOTSUP;
	}
	if (p->nkeys > DBUS_MAX_MATCH) {
		bench_fmt_why(why, whylen, "dbus-daemon keeps match rules in a list per connection and "
			      "bounds them (max_match_rules_per_connection; %d here, 50,000 on a session bus)",
			      DBUS_MAX_MATCH);
		return -ENOTSUP;
	}
	return 0;
}

struct dep {
	sd_bus *bus;
	struct rx *rx;   /* the receive call in progress, for the callback */
	int got;
};

static sd_bus *d_connect(struct dst *s, const char *name, int *err)
{
	sd_bus *b = NULL;

	if ((*err = sd_bus_new(&b)) < 0)
		return NULL;
	if ((*err = sd_bus_set_address(b, s->addr)) < 0 ||
	    (*err = sd_bus_set_bus_client(b, 1)) < 0 ||
	    (*err = sd_bus_set_description(b, name)) < 0 ||
	    (*err = sd_bus_start(b)) < 0) {
		sd_bus_unref(b);
		return NULL;
	}
	return b;
}

static void *d_pub_open(void *st, const struct ep_args *a, int *err)
{
	struct dep *e = calloc(1, sizeof *e);

	if (!e) {
		*err = -ENOMEM;
		return NULL;
	}
	e->bus = d_connect(st, a->name, err);
	if (!e->bus) {
		free(e);
		return NULL;
	}
	return e;
}

static int d_pub_send(void *ep, const struct bmsg *m, unsigned n)
{
	struct dep *e = ep;
	int r;

	for (unsigned i = 0; i < n; i++) {
		sd_bus_message *msg = NULL;
		char key[64];

		if (m[i].key_len >= sizeof key)
			return -EINVAL;
		memcpy(key, m[i].key, m[i].key_len);
		key[m[i].key_len] = 0;
		if ((r = sd_bus_message_new_signal(e->bus, &msg, "/org/shmnotify/bench",
						   "org.shmnotify.Bench", "N")) < 0)
			return r;
		if ((r = sd_bus_message_append(msg, "s", key)) < 0 ||
		    (r = sd_bus_message_append_array(msg, 'y', m[i].data, m[i].data_len)) < 0 ||
		    (r = sd_bus_send(e->bus, msg, NULL)) < 0) {
			sd_bus_message_unref(msg);
			return r;
		}
		sd_bus_message_unref(msg);
	}
	r = sd_bus_flush(e->bus);
	return r < 0 ? r : 0;
}

static void d_close(void *ep)
{
	struct dep *e = ep;

	sd_bus_flush_close_unref(e->bus);
	free(e);
}

static int on_signal(sd_bus_message *m, void *ud, sd_bus_error *err)
{
	struct dep *e = ud;
	const void *data;
	size_t len;
	const char *key;

	(void)err;
	if (sd_bus_message_read(m, "s", &key) < 0 ||
	    sd_bus_message_read_array(m, 'y', &data, &len) < 0)
		return 0;
	bench_rx(e->rx, data, len);
	e->got++;
	return 0;
}

static void *d_sub_open(void *st, const struct ep_args *a, int *err)
{
	struct dep *e = calloc(1, sizeof *e);
	char rule[256];

	if (!e) {
		*err = -ENOMEM;
		return NULL;
	}
	e->bus = d_connect(st, a->name, err);
	if (!e->bus) {
		free(e);
		return NULL;
	}
	for (unsigned i = 0; i < (a->channel == BENCH_CH_DATA ? a->p->nkeys : 1); i++) {
		if (a->channel == BENCH_CH_DATA)
			snprintf(rule, sizeof rule, "type='signal',interface='org.shmnotify.Bench',"
				 "member='N',arg0='%.*s'", BENCH_KEY_LEN, bench_key(a->p, i));
		else
			snprintf(rule, sizeof rule, "type='signal',interface='org.shmnotify.Bench',"
				 "member='N',arg0='%s'", a->channel == BENCH_CH_PING ? "ping" : "pong");
		/* synchronous AddMatch: active when it returns */
		if ((*err = sd_bus_add_match(e->bus, NULL, rule, on_signal, e)) < 0) {
			d_close(e);
			return NULL;
		}
	}
	return e;
}

static int d_sub_recv(void *ep, int timeout_ms, struct rx *rx)
{
	struct dep *e = ep;
	int r;
	bool waited = false;

	e->rx = rx;
	e->got = 0;
	for (;;) {
		while ((r = sd_bus_process(e->bus, NULL)) > 0)
			if (e->got >= 4096)
				return e->got;
		if (r < 0)
			return r == -ECONNRESET || r == -ENOTCONN ? -EPIPE : r;
		if (e->got || waited || timeout_ms == 0)
			break;
		r = sd_bus_wait(e->bus, (uint64_t)timeout_ms * 1000u);
		if (r < 0)
			return r;
		waited = true;
	}
	return e->got ? e->got : -ETIMEDOUT;
}

const struct transport t_dbus = {
	.name = "dbus",
	.loss_policy = "dbus-daemon drops a message for a recipient over its outgoing-queue limit "
		       "(max_outgoing_bytes, 1 GB here); counted as published - delivered",
	.fanout_note = "dbus-daemon matches every signal against the rules and writes a copy to each "
		       "matching connection",
	.start = d_start,
	.stop = d_stop,
	.server_pids = d_server_pids,
	.supports = d_supports,
	.pub_open = d_pub_open,
	.pub_send = d_pub_send,
	.pub_close = d_close,
	.sub_open = d_sub_open,
	.sub_recv = d_sub_recv,
	.sub_close = d_close,
};
