/* SPDX-License-Identifier: MIT */
/*
 * bench.h - shmnotify-bench: the harness and the transport adapters.
 *
 * Every workload is a set of forked processes (publishers, subscribers, a
 * pinger and a ponger) that talk through one transport.  The harness
 * (harness.c) forks them, starts and stops them together through a block of
 * shared memory, and collects their counts; a transport (t_*.c) only knows
 * how to open a publishing and a subscribing endpoint and move messages.
 * So every transport is driven by exactly the same loops, and the figures
 * differ only by what the transport does.
 */
#ifndef SHN_BENCH_H
#define SHN_BENCH_H

#define _GNU_SOURCE
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/types.h>
#include <time.h>

#define BENCH_MAX_PUB 8
#define BENCH_MAX_SUB 32
#define BENCH_MAX_PROCS (BENCH_MAX_PUB + BENCH_MAX_SUB)
#define BENCH_KEY_LEN 8          /* "k0000042": fixed width, so no key is a prefix of another */
/* The prefix case: key i is "p042-abcdefghijk" (16 bytes) and filter i its
 * first 4, 6, 8, 10 or 12 bytes (i % 5); the first 4 differ, so no filter
 * is a prefix of another and each key falls under exactly one filter. */
#define BENCH_PKEY_LEN 16
#define BENCH_MAX_PREFIXES 1000
#define BENCH_MIN_PAYLOAD 16     /* tag + publisher + sequence number */
#define BENCH_WHY 256

enum workload { WL_THROUGHPUT, WL_FANOUT, WL_FANIN, WL_LATENCY, WL_KEYS, WL_IDLE, WL_COUNT };

/* Channels: which stream an endpoint opens.  Throughput-like workloads use
 * BENCH_CH_DATA with the key table; latency uses one channel each way. */
enum { BENCH_CH_DATA = 0, BENCH_CH_PING = 1, BENCH_CH_PONG = 2 };

/* First payload byte: what a message is.  Only 'D' counts as delivered. */
#define BENCH_TAG_DATA 'D'
#define BENCH_TAG_SYNC 'S'       /* publisher -> subscribers: "are you connected?" */
#define BENCH_TAG_PING 'P'
#define BENCH_TAG_QUIT 'Q'       /* pinger -> ponger: done */

/* One measurement's parameters. */
struct params {
	enum workload wl;
	unsigned npub, nsub;
	unsigned batch;          /* messages per publish call (or per flush) */
	unsigned payload;        /* bytes, >= BENCH_MIN_PAYLOAD */
	unsigned nkeys;          /* distinct keys subscribed; each message takes a random one */
	bool spin;               /* latency: busy-poll instead of blocking waits */
	double seconds;          /* publishing time; idle: observation time */
	unsigned lat_iters;      /* latency: measured round trips */
	const char *keys;        /* nkeys * bench_key_len(p) bytes, no NULs */
	bool prefix;             /* keys: the subscriber's nkeys filters are prefixes
	                            (bench_filter_len), the keys published fall under them */
};

/* Key i of the key table: what publishers send, and with bench_filter_len
 * what subscribers subscribe to. */
static inline unsigned bench_key_len(const struct params *p)
{
	return p->prefix ? BENCH_PKEY_LEN : BENCH_KEY_LEN;
}

static inline const char *bench_key(const struct params *p, unsigned i)
{
	return p->keys + (size_t)i * bench_key_len(p);
}

/* Filter i is the first bench_filter_len(p, i) bytes of key i: all of it,
 * or in the prefix case 4 to 12 bytes, five lengths in turn. */
static inline unsigned bench_filter_len(const struct params *p, unsigned i)
{
	return p->prefix ? 4 + 2 * (i % 5) : BENCH_KEY_LEN;
}

struct bmsg {
	const void *key;
	uint32_t key_len;
	const void *data;
	uint32_t data_len;
};

/* What an endpoint opens. */
struct ep_args {
	const struct params *p;
	unsigned idx;            /* publisher or subscriber number */
	unsigned channel;        /* BENCH_CH_* */
	const char *name;        /* unique process-wide name (some peers want one) */
};

/* Receive-side counters, updated by the transport for each message. */
struct rx {
	uint64_t delivered;      /* data messages */
	uint64_t lost;           /* reported by the transport itself (shmnotify overflow) */
	uint32_t sync_seen;      /* bit i: a sync message from publisher i arrived */
	bool got;                /* a ping/pong/quit arrived: last holds its first 16 bytes */
	uint8_t last[16];
};

/* The transport calls this for every message it hands to the application:
 * reading the first byte is what any real consumer does at least. */
static inline void bench_rx(struct rx *rx, const void *data, size_t len)
{
	const uint8_t *d = data;

	if (len >= 2 && d[0] == BENCH_TAG_DATA) {
		rx->delivered++;
		return;
	}
	if (len >= 2 && d[0] == BENCH_TAG_SYNC) {
		if (d[1] < 32)
			rx->sync_seen |= 1u << d[1];
		return;
	}
	if (len >= 16) {
		memcpy(rx->last, d, 16);
		rx->got = true;
	}
}

struct transport {
	const char *name;
	const char *loss_policy;       /* one sentence, printed and documented */
	const char *fanout_note;       /* how fan-out works, or NULL */
	bool needs_sync;               /* subscriptions take effect asynchronously (slow joiner):
	                                  the publisher sends sync messages until every
	                                  subscriber saw one */
	/* parent, once per invocation: start private servers.  0, or -errno
	 * with a reason in why (the transport is then reported skipped). */
	int  (*start)(void **st, char *why, size_t whylen);
	void (*stop)(void *st);
	/* server processes to account for in the idle workload; count */
	int  (*server_pids)(void *st, pid_t *pids, int max);
	/* 0 when the transport can run p; else a reason in why */
	int  (*supports)(void *st, const struct params *p, char *why, size_t whylen);
	/* parent, around each measurement (before the fork / after the wait) */
	int  (*prepare)(void *st, const struct params *p);
	void (*finish)(void *st);
	/* children */
	void *(*pub_open)(void *st, const struct ep_args *a, int *err);
	int  (*pub_send)(void *ep, const struct bmsg *m, unsigned n);      /* 0 or -errno */
	void (*pub_close)(void *ep);
	void *(*sub_open)(void *st, const struct ep_args *a, int *err);
	/* Wait up to timeout_ms (0: do not wait) for messages, hand each to
	 * bench_rx.  Returns how many arrived (>= 1), -ETIMEDOUT, -EPIPE when
	 * the transport dropped this subscriber (the rest counts as lost), or
	 * another -errno. */
	int  (*sub_recv)(void *ep, int timeout_ms, struct rx *rx);
	void (*sub_close)(void *ep);
};

/* shmnotify-bench --socket PATH: the shmnotify transports use the broker
 * already running there (NULL: each starts a private one). */
extern const char *bench_shn_socket;
/* The shmnotifyd program the bench started (NULL: none yet), for the table. */
extern const char *bench_shn_broker;

extern const struct transport t_floor;
extern const struct transport t_shmnotify;
extern const struct transport t_shmnotify_block;
extern const struct transport t_shmnotify_brokered;
extern const struct transport t_shmnotify_lowlat;
#ifdef BENCH_HAVE_ZMQ
extern const struct transport t_zmq;
#endif
#ifdef BENCH_HAVE_REDIS
extern const struct transport t_redis;
#endif
#ifdef BENCH_HAVE_DBUS
extern const struct transport t_dbus;
#endif
#ifdef BENCH_HAVE_IOX
extern const struct transport t_iox;
#endif

/* What one measurement produced. */
struct measure {
	int status;              /* 0, or -errno: see why */
	char why[BENCH_WHY];
	uint64_t published;      /* accepted by the publishers' send calls */
	uint64_t delivered;      /* summed over subscribers */
	uint64_t lost_reported;  /* the transport said so (counted) */
	uint64_t lost_silent;    /* expected - delivered - reported, after a quiet period */
	double elapsed;          /* go -> last subscriber's last message, s */
	double rate;             /* delivered / elapsed, aggregate */
	double p50, p99, p999;   /* latency: one-way (RTT / 2), microseconds */
	double *lat_samples;     /* malloc()ed, sorted, one-way us; lat_n of them */
	unsigned lat_n;
	double cpu_server, cpu_clients;  /* idle: CPU percent of one core */
	double server_ns_per_msg;        /* servers' CPU per message published (0: no server) */
};

int  bench_measure(const struct transport *t, void *st, const struct params *p, struct measure *m);

/* helpers (harness.c) */
uint64_t bench_now_ns(void);
void bench_sleep_ns(uint64_t ns);
char *bench_tmpdir(const char *tag);                  /* mkdtemp under $TMPDIR; free() */
void bench_rmtree(const char *dir);                    /* the transport's private directory */
pid_t bench_spawn(char *const argv[], const char *log_path, int keep_fd);  /* fork+exec; -errno */
int  bench_stop_pid(pid_t pid, int timeout_ms);        /* SIGTERM, then SIGKILL; reaps */
int  bench_wait_unix(const char *path, int type, int timeout_ms, pid_t pid); /* until connect() works */
const char *bench_which(const char *prog);             /* in $PATH, static buffer or NULL */
void bench_fmt_why(char *why, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif /* SHN_BENCH_H */
