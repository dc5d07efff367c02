/* SPDX-License-Identifier: MIT */
/*
 * t_iox.c - Eclipse iceoryx 2.0 through its C binding, with a private
 * iox-roudi.
 *
 * The bench writes a RouDi configuration (mempools for the payloads used)
 * into a private directory, starts iox-roudi on it and stops it by PID.
 * iceoryx 2.0 has no instance isolation: RouDi's socket (/tmp/roudi) and
 * shared memory names are per machine, so when another RouDi already runs,
 * this peer is skipped rather than disturbing it.
 *
 * A key is a service ("bench", "data", KEY): iceoryx routes by service
 * only, with no content filter, so a subscriber to N keys needs N
 * subscriber ports (and each publisher N publisher ports); RouDi's compiled
 * limits (512 publishers, 1024 subscribers) bound the keys workload.
 * Lossless policy, the one measured before the project began: publishers
 * WAIT_FOR_CONSUMER, subscribers BLOCK_PRODUCER, queue capacity 256 (the
 * maximum).  iox_sub_has_lost_chunks() is polled; a loss would show as
 * published - delivered.  Waiting: a waitset on the subscriber's HAS_DATA
 * state.
 */
#include "bench.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <iceoryx_binding_c/api.h>

#define IOX_QUEUE 256

struct ist {
	char *dir;
	pid_t pid;
};

/* Is an iox-roudi other than ours running? */
static bool other_roudi(void)
{
	DIR *d = opendir("/proc");
	struct dirent *e;
	bool found = false;

	if (!d)
		return false;
	while (!found && (e = readdir(d)) != NULL) {
		char p[300], comm[64] = "";
		FILE *f;

		if (e->d_name[0] < '0' || e->d_name[0] > '9')
			continue;
		snprintf(p, sizeof p, "/proc/%s/comm", e->d_name);
		f = fopen(p, "r");
		if (!f)
			continue;
		if (fgets(comm, sizeof comm, f) && !strncmp(comm, "iox-roudi", 9))
			found = true;
		fclose(f);
	}
	closedir(d);
	return found;
}

static int i_start(void **st, char *why, size_t whylen)
{
	const char *bin = bench_which("iox-roudi");
	struct ist *s;
	char conf[700], logp[700], binc[4096];
	FILE *f;

	if (!bin) {
		bench_fmt_why(why, whylen, "iox-roudi not installed (apt-get install iceoryx)");
		return -ENOENT;
	}
	if (other_roudi()) {
		bench_fmt_why(why, whylen, "another iox-roudi runs on this machine (iceoryx 2.0 allows one "
			      "per machine; not disturbing it)");
		return -EBUSY;
	}
	snprintf(binc, sizeof binc, "%s", bin);
	s = calloc(1, sizeof *s);
	if (!s)
		return -ENOMEM;
	s->dir = bench_tmpdir("iox");
	if (!s->dir) {
		free(s);
		return -errno;
	}
	snprintf(conf, sizeof conf, "%s/roudi.toml", s->dir);
	snprintf(logp, sizeof logp, "%s/roudi.log", s->dir);
	f = fopen(conf, "w");
	if (!f) {
		free(s->dir);
		free(s);
		return -errno;
	}
	/* chunk = payload + iceoryx's chunk header; 4 KiB payloads need the 8 KiB pool */
	fprintf(f, "[general]\nversion = 1\n\n[[segment]]\n\n"
		   "[[segment.mempool]]\nsize = 128\ncount = 40000\n\n"
		   "[[segment.mempool]]\nsize = 1152\ncount = 10000\n\n"
		   "[[segment.mempool]]\nsize = 8192\ncount = 4000\n");
	fclose(f);
	{
		char *argv[] = { binc, "-c", conf, "-l", "warning", NULL };

		s->pid = bench_spawn(argv, logp, -1);
	}
	if (s->pid < 0) {
		bench_fmt_why(why, whylen, "iox-roudi did not start");
		free(s->dir);
		free(s);
		return -EIO;
	}
	/* RouDi is ready once its socket exists; runtimes also wait for it */
	for (int i = 0; i < 500; i++) {
		struct stat sb;
		int stt;

		if (stat("/tmp/roudi", &sb) == 0)
			break;
		if (waitpid(s->pid, &stt, WNOHANG) == s->pid) {
			bench_fmt_why(why, whylen, "iox-roudi exited at start (see %s)", logp);
			free(s->dir);
			free(s);
			return -EIO;
		}
		bench_sleep_ns(10000000);
	}
	bench_sleep_ns(100000000);
	*st = s;
	return 0;
}

static void i_stop(void *st)
{
	struct ist *s = st;

	bench_stop_pid(s->pid, 10000);
	bench_rmtree(s->dir);
	free(s->dir);
	free(s);
}

static int i_server_pids(void *st, pid_t *pids, int max)
{
	if (max < 1)
		return 0;
	pids[0] = ((struct ist *)st)->pid;
	return 1;
}

static int i_supports(void *st, const struct params *p, char *why, size_t whylen)
{
	(void)st;
	if (p->nkeys > 1) {
		bench_fmt_why(why, whylen, "iceoryx routes by service only (no content filter): %u keys "
			      "need %u publisher and subscriber ports, past RouDi's limits (512 publishers, "
			      "1024 subscribers)", p->nkeys, p->nkeys);
		return -ENOTSUP;
	}
	if (p->nsub > 32 || p->npub > 8)
		return -ENOTSUP;
	return 0;
}

static void service(const struct ep_args *a, char *inst, char *ev)
{
	snprintf(inst, 32, "%s", a->channel == BENCH_CH_PING ? "ping" :
				 a->channel == BENCH_CH_PONG ? "pong" : "data");
	snprintf(ev, 32, "%.*s", BENCH_KEY_LEN, a->p->keys);
}

static void runtime(const struct ep_args *a)
{
	static bool done;
	char name[100];

	if (done)
		return;
	/* one runtime per process, named uniquely */
	snprintf(name, sizeof name, "%s", a->name);
	iox_set_loglevel(Iceoryx_LogLevel_Warn);   /* its debug lines would bury the progress */
	iox_runtime_init(name);
	done = true;
}

struct ipub {
	iox_pub_storage_t storage;
	iox_pub_t pub;
};

static void *i_pub_open(void *st, const struct ep_args *a, int *err)
{
	struct ipub *e = calloc(1, sizeof *e);
	iox_pub_options_t o;
	char inst[32], ev[32];

	(void)st;
	if (!e) {
		*err = -ENOMEM;
		return NULL;
	}
	runtime(a);
	iox_pub_options_init(&o);
	o.historyCapacity = 0;
	o.subscriberTooSlowPolicy = ConsumerTooSlowPolicy_WAIT_FOR_CONSUMER;
	service(a, inst, ev);
	e->pub = iox_pub_init(&e->storage, "bench", inst, ev, &o);
	if (!e->pub) {
		*err = -EIO;
		free(e);
		return NULL;
	}
	return e;
}

static int i_pub_send(void *ep, const struct bmsg *m, unsigned n)
{
	struct ipub *e = ep;

	for (unsigned i = 0; i < n; i++) {
		void *chunk = NULL;
		enum iox_AllocationResult r;

		/* the mempool may be empty for a moment while subscribers hold chunks */
		while ((r = iox_pub_loan_chunk(e->pub, &chunk, m[i].data_len)) ==
		       AllocationResult_RUNNING_OUT_OF_CHUNKS)
			bench_sleep_ns(10000);
		if (r != AllocationResult_SUCCESS)
			return -ENOMEM;
		memcpy(chunk, m[i].data, m[i].data_len);
		iox_pub_publish_chunk(e->pub, chunk);
	}
	return 0;
}

static void i_pub_close(void *ep)
{
	struct ipub *e = ep;

	iox_pub_deinit(e->pub);
	free(e);
}

struct isub {
	iox_sub_storage_t storage;
	iox_sub_t sub;
	iox_ws_storage_t ws_storage;
	iox_ws_t ws;
	uint32_t len;   /* payload size: iceoryx chunks carry it, but our sizes are fixed */
};

static void *i_sub_open(void *st, const struct ep_args *a, int *err)
{
	struct isub *e = calloc(1, sizeof *e);
	iox_sub_options_t o;
	char inst[32], ev[32];

	(void)st;
	if (!e) {
		*err = -ENOMEM;
		return NULL;
	}
	runtime(a);
	iox_sub_options_init(&o);
	o.queueCapacity = IOX_QUEUE;
	o.historyRequest = 0;
	o.queueFullPolicy = QueueFullPolicy_BLOCK_PRODUCER;
	service(a, inst, ev);
	e->sub = iox_sub_init(&e->storage, "bench", inst, ev, &o);
	e->ws = e->sub ? iox_ws_init(&e->ws_storage) : NULL;
	if (!e->ws || iox_ws_attach_subscriber_state(e->ws, e->sub, SubscriberState_HAS_DATA, 0, NULL) !=
		      WaitSetResult_SUCCESS) {
		*err = -EIO;
		free(e);
		return NULL;
	}
	e->len = a->p->payload;
	return e;
}

static int i_sub_recv(void *ep, int timeout_ms, struct rx *rx)
{
	struct isub *e = ep;
	int n = 0;
	bool waited = false;

	for (;;) {
		const void *chunk;

		while (iox_sub_take_chunk(e->sub, &chunk) == ChunkReceiveResult_SUCCESS) {
			bench_rx(rx, chunk, e->len);
			iox_sub_release_chunk(e->sub, chunk);
			if (++n >= 4096)
				return n;
		}
		if (n || waited || timeout_ms == 0)
			break;
		{
			struct timespec ts = { .tv_sec = timeout_ms / 1000,
					       .tv_nsec = (long)(timeout_ms % 1000) * 1000000 };
			iox_notification_info_t info[4];
			uint64_t missed = 0;

			iox_ws_timed_wait(e->ws, ts, info, 4, &missed);
			waited = true;
		}
	}
	return n ? n : -ETIMEDOUT;
}

static void i_sub_close(void *ep)
{
	struct isub *e = ep;

	iox_ws_detach_subscriber_state(e->ws, e->sub, SubscriberState_HAS_DATA);
	iox_ws_deinit(e->ws);
	iox_sub_deinit(e->sub);
	free(e);
}

const struct transport t_iox = {
	.name = "iceoryx",
	.loss_policy = "lossless here: publishers WAIT_FOR_CONSUMER, subscribers BLOCK_PRODUCER "
		       "(iceoryx's default, DISCARD_OLDEST_DATA, drops silently); counted as "
		       "published - delivered",
	.fanout_note = "zero-copy: one chunk in shared memory, a reference queued to each subscriber",
	.needs_sync = true,
	.start = i_start,
	.stop = i_stop,
	.server_pids = i_server_pids,
	.supports = i_supports,
	.pub_open = i_pub_open,
	.pub_send = i_pub_send,
	.pub_close = i_pub_close,
	.sub_open = i_sub_open,
	.sub_recv = i_sub_recv,
	.sub_close = i_sub_close,
};
