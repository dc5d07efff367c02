/* SPDX-License-Identifier: MIT */
/*
 * direct_pub.h - direct_pub.c: the publisher's end of the direct path
 * (docs/direct-path.md): the rings the broker hands this client to write,
 * matching a batch against the filter table, writing one record per port,
 * the generation re-check, publishing and waking.  publish.c drives it from
 * shn_notify; direct.c hands it the DIRECT_OPEN / DIRECT_CLOSE messages.
 */
#ifndef SHN_LIBCLIENT_DIRECT_PUB_H
#define SHN_LIBCLIENT_DIRECT_PUB_H

#include <stdbool.h>
#include <stddef.h>

#include "internal.h"

/* The most ports one batch feeds directly; a batch matching more takes the
 * broker path whole (the broker copies it once per port in its own thread:
 * wide fan-out, docs/direct-path.md).  Two until the directed yield (a
 * reader that preempted its waking publisher yields back): before it, on 2
 * vCPUs 1 -> 4 delivered 32 M/s written directly against 50-53 through the
 * broker; with it, 1 -> 4 and 1 -> 8 87-98 against 65-82, 1 -> 32 71-81
 * against 47-56 (docs/performance.md#direct-path).  So every port a plan
 * holds: SHN__DPLAN_PORTS bounds the plan's arrays. */
#define SHN__DIRECT_FANOUT 64         /* SHMNOTIFY_DIRECT_FANOUT overrides it */
#define SHN__DPLAN_PORTS 64

/* A run of a batch: consecutive notes with one key and one event, so one
 * match and the same ports (the record's runs, shm/direct.h).  shn_notify's
 * check of a batch notes up to SHN__RUNS_KNOWN of them on its stack, so
 * that the plan need not walk the notes again. */
#define SHN__RUNS_KNOWN 32
struct shn__drun {
	uint32_t first;                /* its first note in the batch */
	uint32_t count;                /* its notes */
	uint64_t bytes;                /* its notes' bytes in a direct record */
	uint64_t bits;                 /* bit j: goes to plan port j */
	uint64_t hash;                 /* XXH3_64bits of its key, or 0: not known yet */
	uint32_t same_len;             /* every note's data length, when they are
	                                  all the same and not 0: the run goes in
	                                  the one-length form (shm/direct.h); 0:
	                                  a length word per note */
};

/* A run's notes' bytes in a direct record, and its same_len: count notes
 * whose data lengths are all same_len (>= 1) take SHN_ALIGN8(same_len)
 * each; otherwise each takes its length word and data (items: their sum). */
static inline uint64_t shn__drun_bytes(uint32_t count, uint32_t same_len, uint64_t items)
{
	return same_len != 0 ? (uint64_t)count * SHN_ALIGN8(same_len) : items;
}

/* Where shn__dpub_plan sent a batch. */
struct shn__dplan {
	uint64_t gen;                  /* the filter-table generation matched at */
	bool brokered;                 /* some matching port takes the broker path */
	uint32_t nports;
	uint32_t nruns;                /* c->dp_runs[0..nruns) */
	struct shn__pring *full;       /* SHN__DP_FULL: the ring without room */
	uint32_t full_size;            /* and the record that did not fit it */
	struct shn__pring *port[SHN__DPLAN_PORTS];
};

/* shn__dpub_plan's and shn__dpub_write's answers besides 0. */
enum {
	SHN__DP_BROKER = 1,  /* send the whole batch through the broker, gen 0 */
	SHN__DP_MAIL,        /* a ring the port map names is not ours yet: read
	                        the control socket (its DIRECT_OPEN is there, or on
	                        its way), retry */
	SHN__DP_FULL,        /* a SHN_OVERFLOW_BLOCK ring has no room: pl->full */
};

/* A DIRECT_OPEN not in the socket when a batch looked for it: a call that
 * may block waits for it (SHN__MAIL_WAIT_NS at most); when it still has not
 * come, or for SHN_NOTIFY_NONBLOCK, the batches that follow take the
 * broker path, and every SHN__MAIL_EVERY-th looks (and waits) again. */
#define SHN__MAIL_EVERY 16
/* How long one shn_notify waits in all for the DIRECT_OPENs of rings the
 * port map says are open (publish.c, await_mail). */
#define SHN__MAIL_WAIT_NS (20u * 1000u * 1000u)

/* How long a publisher waits, spinning and yielding, for a reader that
 * frees nothing of a full SHN_OVERFLOW_BLOCK direct ring, or a broker that
 * takes nothing of its publish ring before a batch may go directly, before
 * it takes the broker path instead.  A reader that is reading frees a batch's room within a few
 * microseconds; one that is not is met with the broker path's buffering
 * (docs/direct-path.md, "Waiting for room"). */
#define SHN__DP_WAIT_NS 1000000       /* SHMNOTIFY_DIRECT_WAIT_US overrides it */
#define SHN__DP_WAIT_MAX_US 10000000ull /* 10 s: a profiler's broker is that slow */

/* A DIRECT_OPEN for the publisher's side: map the ring (the descriptors
 * kept are set to -1 in fds).  Caller holds ctl_lock; takes pub_lock.
 * 0, or -errno: the ring is declined (remembered, so that batches matched
 * while the broker still counts it open take the broker path). */
int shn__dpub_open(shn_client *c, const struct shn_msg_direct_open *m, int *fds, int nfds);

/* A DIRECT_CLOSE for the publisher's side: stop writing the ring.  Takes
 * pub_lock only if no publisher waits on that ring. */
void shn__dpub_close(shn_client *c, uint32_t ring_id);

/* Unmap every ring (disconnect, reconnect).  Caller holds pub_lock, or is
 * the last user of c. */
void shn__dpub_free(shn_client *c);

/* Match the batch: which ports it reaches directly (pl->port, and per run
 * the bitmask c->dp_runs[j].bits), whether some take the broker path.
 * known[0..nknown): the batch's runs (first, count, bytes), found while it
 * was checked; nknown 0: find them here.  waiting: the caller looked at
 * the socket in this call already and will wait for the DIRECT_OPEN, so
 * SHN__DP_MAIL again rather than SHN__MAIL_EVERY's broker path.  0, or
 * SHN__DP_BROKER, SHN__DP_MAIL, -ENOMEM.  Caller holds pub_lock. */
int shn__dpub_plan(shn_client *c, const shn_notification *batch, size_t n,
		   const struct shn__drun *known, uint32_t nknown, struct shn__dplan *pl,
		   bool waiting);

/* True when some ring of the plan dropped notes since its last record: its
 * port's next notes from us must not overtake that loss through the broker
 * path (the reader may report it only once it read our records). */
bool shn__dpub_owes_loss(const struct shn__dplan *pl);

/* Write one record per planned port, unpublished; a SHN_OVERFLOW_DROP
 * ring without room loses the batch (counted at publish).  0, or
 * SHN__DP_BROKER (a ring turned out broken, a record cannot fit it) or
 * SHN__DP_FULL (a SHN_OVERFLOW_BLOCK ring has no room: pl->full; wait for
 * it, or let the broker path hold the batch back as it always did), with
 * everything written rolled back.  Caller
 * holds pub_lock. */
int shn__dpub_write(shn_client *c, const shn_notification *batch, struct shn__dplan *pl,
		    uint64_t batch_id, uint64_t time_ns);

/* A publisher's wait for a peer (the reader of a direct ring, the broker
 * behind its publish ring) that spins with the CPU's pause hint, yields the
 * CPU every 16 turns (the peer may need it), and ends only when the peer's
 * position has not moved for wait_ns: one that makes progress, however
 * slowly, is waited for.  Zero it before the first turn. */
struct shn__spin {
	uint64_t pos;        /* the peer's position when the bound was last reset */
	uint64_t deadline;   /* CLOCK_MONOTONIC ns; 0 before the first look */
	uint32_t turns;
};

/* One turn of the wait, the peer now at pos: false when it has not moved
 * for wait_ns (the caller gives up), else true after a short pause. */
bool shn__spin_turn(struct shn__spin *s, uint64_t pos, uint64_t wait_ns);

/* SHN__DP_FULL: wait for room for size bytes in r (a quarter of the ring,
 * hysteresis), spinning and yielding the CPU, for as long as the reader
 * frees some every c->dp_wait_ns.  true: room came, match and write
 * again; false: the reader read nothing for that long (or its head is bad:
 * r is then broken), or an earlier wait ran out at the head the reader
 * still shows -- take the broker path at once.  Caller holds pub_lock. */
bool shn__dpub_wait_room(shn_client *c, struct shn__pring *r, uint32_t size);

/* Undo shn__dpub_write (the generation moved). */
void shn__dpub_rollback(struct shn__dplan *pl);

/* A one-port plan whose reader sleeps: ring it now, before the record is
 * written.  Its wake-up takes the scheduler microseconds, and the writing
 * is done meanwhile rather than before it.  A reader woken too early finds
 * nothing, arms its sleep word anew and sleeps: shn__dpub_publish's fenced
 * look then sees a value it did not ring and rings again.  No ring is
 * rung twice for one sleep.  Caller holds pub_lock. */
void shn__dpub_prewake(shn_client *c, const shn_notification *batch, struct shn__dplan *pl);

/* The same before the batch is even planned: when its first note has the
 * key and event of the last batch shn__dpub_prewake rang for, and the
 * filters have not changed since (the generation), the plan will name
 * that port again -- ring it now.  A guess that turns out wrong (more
 * notes, other ports) costs that reader a look at empty rings.  The batch
 * may not be checked yet: a first note with no key rings nothing (the
 * check refuses it).  Caller holds pub_lock. */
void shn__dpub_prewake_early(shn_client *c, const shn_notification *batch);

/* Publish every record written, count, and wake each sleeping port (also
 * one that lost the batch: its reader reports the loss from our counter).
 * true when some SHN_OVERFLOW_DROP port lost the batch. */
bool shn__dpub_publish(struct shn__dplan *pl);

/* A ring found broken while writing, for the caller to report once it let
 * go of pub_lock (DIRECT_CLOSE): its ring_id, or 0 when none.  Clears it. */
uint32_t shn__dpub_take_broken(shn_client *c, uint32_t *slot, uint32_t *port_id);

#endif
