/* SPDX-License-Identifier: MIT */
/*
 * bridge.h - shmnotify-bridge's parts and what they share.
 *
 *   main.c     command line, signals, the main loop, the local connection
 *   log.c      the log lines
 *   clock.c    the monotonic clock in milliseconds
 *   config.c   the INI file
 *   subject.c  keys <-> NATS subjects
 *   wire.c     the NATS headers of one notification: build, parse, check
 *   out.c      local batches -> NATS (the main thread)
 *   in.c       NATS -> local batches (libnats' delivery threads)
 *   nats.c     the NATS connection, JetStream stream and consumers
 *   state.c    last sequence seen per origin and subject, in a mapped file
 *   stats.c    the counters, as a JSON file
 *
 * docs/multi-host.md is the user's side of all this.
 */
#ifndef BR_BRIDGE_H
#define BR_BRIDGE_H

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <nats/nats.h>
#include <shmnotify.h>

#include "config.h"
#include "state.h"

struct br_in;      /* in.c */
struct br_out;     /* out.c */

/* NATS connection state, as stats show it */
enum br_nats_state { BR_NATS_CONNECTING, BR_NATS_CONNECTED, BR_NATS_RECONNECTING,
		     BR_NATS_CLOSED };

struct br_stats {
	_Atomic uint64_t forwarded;          /* notifications published to NATS */
	_Atomic uint64_t forwarded_batches;  /* units (a local batch's notes of one rule) */
	_Atomic uint64_t publish_errors;     /* NATS publishes that failed (the receivers see a gap) */
	_Atomic uint64_t received;           /* remote notifications delivered locally */
	_Atomic uint64_t received_batches;
	_Atomic uint64_t gaps;               /* gap reports delivered locally */
	_Atomic uint64_t lost;               /* the sum of their counts */
	_Atomic uint64_t duplicates;         /* remote notifications seen before (dropped) */
	_Atomic uint64_t rejected;           /* malformed remote messages (dropped) */
	_Atomic uint64_t filtered;           /* remote notifications outside the rule's events */
	_Atomic uint64_t local_refused;      /* the local broker refused a remote batch */
	_Atomic uint64_t local_overflow;     /* local notes lost before export (port overflow) */
	_Atomic uint64_t nats_reconnects;
	_Atomic uint64_t nats_disconnects;
	_Atomic uint64_t nats_errors;        /* async errors: slow consumer, permissions */
	_Atomic uint64_t local_reconnects;
};

struct bridge {
	struct br_config cfg;
	pid_t pid;
	uint64_t epoch;                  /* drawn at start: our sequence numbers restart */
	int64_t started_ms;

	/* local side */
	shn_client *c;
	shn_port *port;                  /* out: one any-key subscription */
	_Atomic bool local_up;
	bool unflushed;                  /* core: published since the last flush */

	/* NATS side */
	natsOptions *opts;
	natsConnection *nc;
	jsCtx *js;
	_Atomic int nats_state;          /* enum br_nats_state */
	_Atomic bool ready;              /* every subscription made: traffic flows */
	char nats_url[256];              /* the server connected to, for stats */
	pthread_mutex_t url_lock;

	struct br_out *out;
	struct br_in *in;
	struct br_state state;           /* under the in lock */
	struct br_stats st;
	volatile sig_atomic_t stop;
};

/* out.c: the rules with direction out; local notifications to NATS. */
int br_out_init(struct bridge *b);
bool br_out_wanted(const struct bridge *b);   /* any out rule */
uint32_t br_out_mask(const struct bridge *b); /* the union of their events */
void br_out_batch(struct bridge *b, const shn_notification *n, size_t count);
void br_out_fini(struct bridge *b);

/* in.c: the rules with direction in; NATS messages to local batches. */
int br_in_init(struct bridge *b);
bool br_in_wanted(const struct bridge *b);
void br_in_message(struct bridge *b, int rule, natsMsg *m);   /* takes m */
void br_in_tick(struct bridge *b);       /* deliver what waited too long */
void br_in_flush(struct bridge *b);      /* deliver every assembly now */
void br_in_fini(struct bridge *b);

/* nats.c */
int br_nats_connect(struct bridge *b);   /* returns at once; libnats retries */
int br_nats_setup(struct bridge *b);     /* once connected: stream, subscriptions */
void br_nats_close(struct bridge *b);
const char *br_nats_state_name(int s);

/* stats.c */
int br_stats_write(struct bridge *b);

#endif
