/* SPDX-License-Identifier: MIT */
/*
 * t_redis.c - Redis pub/sub on a Unix socket, through hiredis.
 *
 * A private redis-server (no TCP port: --port 0 --unixsocket, no
 * persistence) in a private directory, stopped by PID.  A publisher sends
 * one PUBLISH per message, pipelined: a batch is N commands written at once,
 * then N replies read.  A subscriber SUBSCRIBEs to its keys (1000 channels
 * per command) and reads pushed messages.  Loss: Redis never drops a message
 * for a subscriber it keeps, but disconnects a subscriber whose output
 * buffer passes the pub/sub limit (set explicitly to Redis's default: 32 MiB
 * hard, 8 MiB for 60 s); what that subscriber then misses is counted as
 * published - delivered.
 */
#include "bench.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

struct rst {
	char *dir;
	char sock[600];
	pid_t pid;
};

static int r_start(void **st, char *why, size_t whylen)
{
	const char *bin = bench_which("redis-server");
	struct rst *s;
	char logp[600];
	int err = 0;

	if (!bin) {
		bench_fmt_why(why, whylen, "redis-server not installed (apt-get install redis-server)");
		return -ENOENT;
	}
	s = calloc(1, sizeof *s);
	if (!s)
		return -ENOMEM;
	s->dir = bench_tmpdir("redis");
	if (!s->dir) {
		free(s);
		return -errno;
	}
	snprintf(s->sock, sizeof s->sock, "%s/redis.sock", s->dir);
	snprintf(logp, sizeof logp, "%s/redis.log", s->dir);
	{
		char bin_copy[4096];
		char *argv[] = { bin_copy, "--port", "0", "--unixsocket", s->sock, "--unixsocketperm", "700",
				 "--save", "", "--appendonly", "no", "--dir", s->dir, "--daemonize", "no",
				 "--client-output-buffer-limit", "pubsub 32mb 8mb 60",
				 "--maxclients", "1000", NULL };

		snprintf(bin_copy, sizeof bin_copy, "%s", bin);
		s->pid = bench_spawn(argv, logp, -1);
	}
	if (s->pid < 0 || (err = bench_wait_unix(s->sock, SOCK_STREAM, 10000, s->pid)) < 0) {
		err = s->pid < 0 ? s->pid : err;
		bench_fmt_why(why, whylen, "redis-server did not start (%s)", strerror(-err));
		if (s->pid > 0)
			bench_stop_pid(s->pid, 2000);
		bench_rmtree(s->dir);
		free(s->dir);
		free(s);
		return err;
	}
	*st = s;
	return 0;
}

static void r_stop(void *st)
{
	struct rst *s = st;

	bench_stop_pid(s->pid, 5000);
	bench_rmtree(s->dir);
	free(s->dir);
	free(s);
}

static int r_server_pids(void *st, pid_t *pids, int max)
{
	if (max < 1)
		return 0;
	pids[0] = ((struct rst *)st)->pid;
	return 1;
}

static redisContext *r_connect(struct rst *s, int *err)
{
	redisContext *c = redisConnectUnix(s->sock);

	if (!c || c->err) {
		*err = -ECONNREFUSED;
		if (c)
			redisFree(c);
		return NULL;
	}
	return c;
}

static void *r_pub_open(void *st, const struct ep_args *a, int *err)
{
	(void)a;
	return r_connect(st, err);
}

static int r_pub_send(void *ep, const struct bmsg *m, unsigned n)
{
	redisContext *c = ep;

	for (unsigned i = 0; i < n; i++)
		if (redisAppendCommand(c, "PUBLISH %b %b", m[i].key, (size_t)m[i].key_len, m[i].data,
				       (size_t)m[i].data_len) != REDIS_OK)
			return -EIO;
	for (unsigned i = 0; i < n; i++) {
		void *reply;

		if (redisGetReply(c, &reply) != REDIS_OK)
			return -EIO;
		freeReplyObject(reply);
	}
	return 0;
}

static void r_close(void *ep)
{
	redisFree(ep);
}

/* SUBSCRIBE (or PSUBSCRIBE) in chunks: argument i is tab + i * stride, len[i]
 * bytes (len NULL: stride); read every confirmation, so that the
 * subscription is active when this returns. */
static int r_subscribe(redisContext *c, const char *cmd, const char *tab, size_t stride,
		       const size_t *len, unsigned n)
{
	const unsigned chunk = 1000;
	const char **argv = malloc(sizeof(char *) * (chunk + 1));
	size_t *argl = malloc(sizeof(size_t) * (chunk + 1));
	int err = 0;

	if (!argv || !argl) {
		free(argv);
		free(argl);
		return -ENOMEM;
	}
	argv[0] = cmd;
	argl[0] = strlen(cmd);
	for (unsigned i = 0; i < n && !err; i += chunk) {
		unsigned k = n - i < chunk ? n - i : chunk;

		for (unsigned j = 0; j < k; j++) {
			argv[j + 1] = tab + (size_t)(i + j) * stride;
			argl[j + 1] = len ? len[i + j] : stride;
		}
		if (redisAppendCommandArgv(c, (int)k + 1, argv, argl) != REDIS_OK) {
			err = -EIO;
			break;
		}
		for (unsigned j = 0; j < k; j++) {
			redisReply *r;

			if (redisGetReply(c, (void **)&r) != REDIS_OK) {
				err = -EIO;
				break;
			}
			freeReplyObject(r);
		}
	}
	free(argv);
	free(argl);
	return err;
}

/* The prefix case: PSUBSCRIBE "PREFIX*" per filter (the keys have no glob
 * character, so the pattern takes exactly the keys under the prefix). */
static int r_psubscribe(redisContext *c, const struct params *p)
{
	char *pat = malloc((size_t)p->nkeys * BENCH_PKEY_LEN);
	size_t *len = malloc(sizeof(size_t) * p->nkeys);
	int err = -ENOMEM;

	if (pat && len) {
		for (unsigned i = 0; i < p->nkeys; i++) {
			len[i] = bench_filter_len(p, i) + 1;   /* < BENCH_PKEY_LEN */
			memcpy(pat + (size_t)i * BENCH_PKEY_LEN, bench_key(p, i), len[i] - 1);
			pat[(size_t)i * BENCH_PKEY_LEN + len[i] - 1] = '*';
		}
		err = r_subscribe(c, "PSUBSCRIBE", pat, BENCH_PKEY_LEN, len, p->nkeys);
	}
	free(pat);
	free(len);
	return err;
}

static void *r_sub_open(void *st, const struct ep_args *a, int *err)
{
	redisContext *c = r_connect(st, err);

	if (!c)
		return NULL;
	if (a->channel != BENCH_CH_DATA)
		*err = r_subscribe(c, "SUBSCRIBE", a->channel == BENCH_CH_PING ? "ping" : "pong", 4,
				   NULL, 1);
	else if (a->p->prefix)
		*err = r_psubscribe(c, a->p);
	else
		*err = r_subscribe(c, "SUBSCRIBE", a->p->keys, BENCH_KEY_LEN, NULL, a->p->nkeys);
	if (*err < 0) {
		redisFree(c);
		return NULL;
	}
	return c;
}

static int r_sub_recv(void *ep, int timeout_ms, struct rx *rx)
{
	redisContext *c = ep;
	int n = 0;
	bool waited = false;

	for (;;) {
		redisReply *r = NULL;

		if (redisGetReplyFromReader(c, (void **)&r) != REDIS_OK)
			return -EIO;
		if (r) {
			/* message: [message, channel, data]; a pattern's:
			 * [pmessage, pattern, channel, data] (confirmations
			 * end in a number) */
			if (r->type == REDIS_REPLY_ARRAY && (r->elements == 3 || r->elements == 4) &&
			    r->element[r->elements - 1]->type == REDIS_REPLY_STRING) {
				const redisReply *d = r->element[r->elements - 1];

				bench_rx(rx, d->str, (size_t)d->len);
				n++;
			}
			freeReplyObject(r);
			if (n >= 4096)
				break;
			continue;
		}
		if (n || waited)
			break;
		{
			struct pollfd pfd = { .fd = c->fd, .events = POLLIN };
			int pr = poll(&pfd, 1, timeout_ms);   /* never block in read() */

			if (pr < 0)
				return -errno;
			waited = true;
			if (pr == 0)
				break;
		}
		if (redisBufferRead(c) != REDIS_OK) {
			if (c->err == REDIS_ERR_IO && (errno == EAGAIN || errno == EWOULDBLOCK)) {
				c->err = 0;
				break;
			}
			return -EPIPE;   /* the server closed us: over the output-buffer limit */
		}
	}
	return n ? n : -ETIMEDOUT;
}

static int r_supports(void *st, const struct params *p, char *why, size_t whylen)
{
	(void)st;
	(void)p;
	(void)why;
	(void)whylen;
	return 0;
}

const struct transport t_redis = {
	.name = "redis",
	.loss_policy = "no drop while connected; a subscriber past the pub/sub output-buffer limit "
		       "(32 MiB hard, 8 MiB for 60 s) is disconnected; counted as published - delivered",
	.fanout_note = "redis-server writes each message to every subscribed connection",
	.start = r_start,
	.stop = r_stop,
	.server_pids = r_server_pids,
	.supports = r_supports,
	.pub_open = r_pub_open,
	.pub_send = r_pub_send,
	.pub_close = r_close,
	.sub_open = r_sub_open,
	.sub_recv = r_sub_recv,
	.sub_close = r_close,
};
