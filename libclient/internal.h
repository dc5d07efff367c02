/* SPDX-License-Identifier: MIT */
/*
 * internal.h - libshmnotify's private structures (shn__ names): the client,
 * its ports and subscriptions, as this process sees them.  They live in the
 * process's own memory; each field says which lock guards it, or who
 * writes it.  The shared-memory structures (rings, the broker's segment)
 * are shm/'s.  The functions are declared by the header of the file that
 * defines them (call.h, port.h, acl.h, publish.h).
 */
#ifndef SHN_LIBCLIENT_INTERNAL_H
#define SHN_LIBCLIENT_INTERNAL_H

#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>
#include <string.h>
#include <sys/types.h>

#include "shm/proto.h"
#include "shm/segment.h"
#include "shmnotify.h"

/* A subscription as the client remembers it (to unsubscribe, and to tell
 * which port a conn belongs to). */
struct shn__sub {
	struct shn__sub *next;
	shn_conn conn;
	shn_port *port;
	shn_sink_fn fn;                /* NULL: a pull subscription (shn_subscribe) */
	void *ctx;
	bool closing;                  /* unsubscribed sink awaiting its HANDLE_CLOSE */
	bool any_key;
	bool monitor;
	bool prefix;                   /* key is a prefix (SHN_SUBSCRIBE_PREFIX) */
	uint16_t key_len;
	uint32_t mask;
	uint8_t key[SHN_KEY_MAX];      /* the filter, for dispatch and re-registration */
};

/* A publisher waiting in shn_notify(SHN_NOTIFY_SYNC) for SYNC_DONE.
 * Listed under ctl_lock; whichever thread reads the control socket fills
 * in the result. */
struct shn__sync_wait {
	struct shn__sync_wait *next;
	_Atomic uint64_t batch_id;     /* 0 until the batch is in the ring */
	bool done;
	int status;                    /* 0 or SHN_NOTIFY_CANCELED */
};

/* Everything one connection to a broker hands out; replaced whole by a
 * reconnect. */
struct shn_client {
	int sock;                      /* control socket (SOCK_SEQPACKET) */
	_Atomic bool broker_gone;      /* the broker closed the socket */
	_Atomic uint32_t loss_epoch;   /* +1 each time the broker is lost */
	char path[108];                /* where to reconnect */

	pthread_t watcher;             /* sees the socket close, reconnects */
	bool watcher_running;
	sem_t watcher_started;         /* posted by the watcher as it begins */
	void *watcher_stack;
	int stop_fd;                   /* eventfd: tells the watcher to exit */
	_Atomic int sync_timeout_ms;   /* -1: none */
	struct shn__sync_wait *sync_waits;  /* under ctl_lock */
	/* SYNC waiters (publish.c, wait_sync): one of them at a time reads
	 * the control socket for all, waiting for it with ctl_lock released
	 * (sync_reading, under ctl_lock); the others sleep on sync_cond
	 * (CLOCK_MONOTONIC).  Whoever takes a SYNC_DONE off the socket marks
	 * its waiter done and broadcasts sync_cond, and writes sync_kick
	 * (an eventfd the reader polls beside the socket, made at the first
	 * SYNC; -1 before) when the reader was another thread. */
	pthread_cond_t sync_cond;
	bool sync_reading;
	int sync_kick;

	pthread_mutex_t ctl_lock;      /* one control request at a time; guards the lists */
	char name[SHN_NAME_MAX + 1];   /* shn_set_name, sent again after a reconnect;
	                                  "" none; under ctl_lock */
	uint32_t next_msg_id;
	shn_port *ports;               /* open ports */
	struct shn__sub *subs;         /* live subscriptions */
	_Atomic uint64_t next_conn;    /* never reused within the client's life */

	/* Publishing (publish.c).  pub_lock guards the producer's side of the
	 * publish ring and the descriptors below; it is never held across a
	 * sleep.  room_lock makes the publishers that found the ring full wait
	 * for room one at a time (the ring's wait word has one sleeper); taken
	 * before pub_lock, never while holding it. */
	pthread_mutex_t pub_lock;
	pthread_mutex_t room_lock;
	struct shn_segment pub_seg;    /* publish ring: we produce, the broker consumes */
	struct shn_ring pub;
	uint64_t next_batch_id;
	bool dp_lost;                  /* the batch being published was dropped by a
	                                  direct ring (publish.c yields once) */
	uint64_t pub_stalled_at;       /* the broker's head + 1 when wait_pub_taken last
	                                  ran out (publish.c); 0: none */
	uint32_t rung_seq;             /* broker sleep value we already rang for */
	int doorbell_fd;               /* we write: wakes the broker */
	int room_fd;                   /* broker writes: room in the publish ring */

	struct shn_segment broker_seg; /* read-only: sleep word, interest summary */
	struct shn_broker_shm *bshm;
	const _Atomic uint64_t *interest;  /* bitmap in broker_seg */

	_Atomic uint32_t pub_capacity;  /* read by shn_notify before its lock */
	uint32_t max_capacity;
	uint32_t default_capacity;

	/* The broker's [limits] max-key-size and max-data-size (broker segment,
	 * SHN_BROKER_F_LIMITS), else the protocol's; read by shn_notify. */
	_Atomic uint32_t max_key, max_data;
	uint32_t hello_flags;          /* SHN_HELLO_F_* of the current connection */
	uint32_t hello_ask;            /* SHN_HELLO_F_* HELLO asks for (SHN_HELLO_F_DIRECT
	                                  when SHMNOTIFY_DIRECT=on as shn_connect ran) */
	/* direct.c: the direct path's filter table and this client's port map
	 * (DIRECT_SETUP), read-only, both written by the broker; unmapped
	 * (NULL) when the broker did not grant SHN_HELLO_F_DIRECT.  Replaced
	 * on reconnect under pub_lock. */
	struct shn_segment ftab_seg, pmap_seg;
	const struct shn_ftab_hdr *ftab;
	const struct shn_pmap_hdr *pmap;
	/* direct_pub.c: the direct rings this client publishes into, one per
	 * port-map slot it was told of (DIRECT_OPEN), and the matching
	 * scratch of shn_notify.  Under pub_lock; the thread that reads
	 * DIRECT_OPEN / DIRECT_CLOSE takes it after ctl_lock. */
	struct shn__pring **prings;
	uint32_t nprings, prings_cap;
	uint32_t pmap_known;           /* port-map slots below this were announced */
	uint64_t mail_looked;          /* open_gen of the unannounced slot we last read the
	                                  socket for (0: none); shn__dpub_plan */
	uint32_t mail_skips;           /* batches since, sent through the broker */
	uint64_t swept_gen;            /* the generation prings was last swept at
	                                  (UINT64_MAX: never) */
	uint32_t dp_fanout;            /* shn__direct_fanout(), read at shn_connect */
	uint64_t dp_wait_ns;           /* shn__direct_wait_ns(), read at shn_connect */
	bool dp_prewake;               /* shn__direct_prewake(), read at shn_connect */
	/* the last batch that went directly to one port alone: its first key
	 * and event, the generation it was matched at and the ring (under
	 * pub_lock; NULL: none), so that the next batch alike rings that
	 * port's sleeping reader before it is even planned (shn__dpub_prewake) */
	struct shn__pring *pw_ring;
	uint64_t pw_gen;
	uint32_t pw_event, pw_key_len;
	alignas(8) uint8_t pw_key[SHN_KEY_MAX_WIRE];
	bool dp_untracked;             /* a DIRECT_OPEN could not even be remembered:
	                                  every batch takes the broker path, gen 0 */
	struct shn__ftab_memo_ent *ftab_memo;  /* ftab_memo.c; NULL until first used */
	struct shn__ftab_last *ftab_last;      /* ftab_memo.c: the last answer; NULL until used */
	struct shn__drun *dp_runs;     /* the batch's runs (shn__dpub_plan) */
	size_t dp_cap;
	/* acl.c: publish permissions asked with PUB_CHECK, per key */
	_Atomic bool pub_acl;          /* SHN_HELLO_F_PUB_ACL: ask before publishing */
	pthread_mutex_t acl_lock;
	uint64_t acl_gen;              /* +1 per connection: older answers are void */
	struct shn__acl_slot *acl_slots;
};

/* A direct ring this client publishes into (docs/direct-path.md): it
 * writes the records and the tail; the port's reader writes the head.
 * Owned by the client, under pub_lock. */
struct shn__pring {
	uint32_t slot;                 /* in this client's port map */
	uint32_t port_id, ring_id;
	bool mapped;                   /* false: declined (could not map it) */
	bool block;                    /* the port's overflow is SHN_OVERFLOW_BLOCK */
	bool broken;                   /* the reader's head was not valid: told the
	                                  broker, the pair takes the broker path */
	bool reported;                 /* broken, and the broker was told */
	_Atomic bool closed;           /* the broker closed it (DIRECT_CLOSE) */
	struct shn_segment ring_seg;   /* rw: prod line, our counters, data */
	struct shn_segment cons_seg;   /* read-only: the reader's head */
	struct shn_segment pcons_seg;  /* read-only: the port's sleep word */
	int port_efd;                  /* the port's eventfd: wakes its reader */
	struct shn_ring ring;
	struct shn_direct_pub_stats *stats;
	_Atomic uint32_t *port_sleep;
	uint32_t rung;                 /* port sleep value we already rang for */
	uint64_t dropped;              /* notes dropped here, all told */
	uint64_t told;                 /* dropped, as of our last record */
	uint64_t stalled_at;           /* SHN_OVERFLOW_BLOCK: the reader's head + 1 when a
	                                  wait for room last ran out (0: none) */
	/* shn_notify's scratch for the batch being written */
	uint64_t save_tail;
	uint32_t nnotes, size;
	bool written;
};

/* filter_cache.c's copy of a port's filters (struct shn_port): one entry per exact-key
 * or prefix subscription of the port, one per any-key one. */
struct shn__fc_ent {
	uint64_t hash;                 /* XXH3_64bits(key); key_len 0: empty */
	uint64_t conn;
	uint32_t mask;
	uint32_t key_off;              /* into fc_keys */
	uint16_t key_len;
	bool prefix;                   /* the key is a prefix: hash is of its bytes */
};
struct shn__fc_any {
	uint64_t conn;
	uint32_t mask;
};

/* A port's rings from a new broker, waiting for the port's reader to
 * finish the old ones (the reader switches, so it never races itself). */
struct shn__port_rings {
	bool staged;                   /* mapped, the reconnect not complete yet */
	bool ready;                    /* the reader may switch to these */
	uint32_t capacity;
	struct shn_segment ring_seg;
	struct shn_segment cons_seg;
	int event_fd;
};

/* One direct ring a port reads (docs/direct-path.md): a publisher writes
 * it, this port's reader consumes it.  The reader owns it once adopted;
 * until then it waits in the port's inbox (under swap_lock), where the
 * thread that read DIRECT_OPEN put it. */
#define SHN__DRINGS 16                 /* the broker's direct-rings-per-port, at most */
struct shn__dring {
	bool live;                     /* mapped */
	bool faulted;                  /* held a bad record: never read again */
	uint32_t epoch;                /* the client's loss_epoch when it was offered */
	bool closing;                  /* the broker closed it: drain, unmap, answer */
	uint32_t slot, ring_id;
	uint64_t publisher;            /* the publisher's client id (DIRECT_OPEN) */
	int32_t sender_pid;            /* from DIRECT_OPEN, never from the ring */
	uint32_t sender_uid;
	struct shn_segment ring_seg;   /* read-only: the publisher's records */
	struct shn_segment cons_seg;   /* ours: the head */
	struct shn_ring ring;
	struct shn_direct_limits lim;
	struct shn_direct_seen seen;
};

struct shn_port {
	shn_port *next;                /* in the client's list */
	shn_client *client;
	_Atomic uint32_t id;           /* the broker's number; changes on reconnect */
	uint32_t capacity;
	shn_port_options opt;          /* to reopen it after a reconnect */
	struct shn_segment ring_seg;   /* read-only delivery ring */
	struct shn_segment cons_seg;   /* our consumer line and sync ack */
	int event_fd;                  /* broker writes when we sleep; unblock writes too */
	int poll_fd;                   /* epoll holding event_fd: shn_port_fd(), stable
	                                  across reconnects */
	_Atomic bool fd_watched;       /* poll_fd holds event_fd: set (under swap_lock)
	                                  by the first shn_port_fd(), never cleared */
	struct shn_ring ring;
	_Atomic bool unblock;          /* shn_port_unblock() pending */
	_Atomic bool efd_dirty;        /* event_fd may hold a stale wake-up */
	uint64_t room_rung;            /* the broker's room request we rang for */

	pthread_mutex_t swap_lock;     /* guards event_fd changes and next_rings */
	struct shn__port_rings next_rings;
	_Atomic bool next_ready;       /* next_rings.ready was set (under swap_lock):
	                                  an empty reader takes the lock only then */
	uint32_t told_epoch;           /* loss_epoch we delivered BROKER_STATE for */
	uint64_t synth[(sizeof(struct shn_del_batch) + sizeof(struct shn_del_note)) / 8 + 2];

	/* direct_read.c.  inbox and close_ids: under swap_lock, filled by
	 * whichever thread read DIRECT_OPEN / DIRECT_CLOSE; the rest the
	 * reader's own. */
	struct shn__dring inbox[SHN__DRINGS];
	uint32_t close_ids[SHN__DRINGS * 2];  /* a ring in the inbox or read, closed */
	uint32_t nclose;
	/* the highest ring_id offered to this port (DIRECT_OPEN, adopted or
	 * declined) by the broker of loss_epoch offered_epoch: the broker
	 * numbers rings in order and sends one client's messages in order,
	 * so a brokered batch naming a higher one names an offer still on
	 * its way */
	uint32_t offered_max, offered_epoch;
	_Atomic bool dmail;            /* inbox or close_ids has something */
	struct shn__dring dr[SHN__DRINGS];
	uint32_t ndr;                  /* dr[0..ndr) may be live */
	uint32_t rr;                   /* round robin among direct rings */
	uint32_t asked_ring;           /* the ring_id we last read the socket for */
	/* filter_cache.c's copy of this port's filters (live and ended), to
	 * give each direct note its conn without ctl_lock: rebuilt when
	 * sinks_gen moved; the reader's own */
	bool fc_valid;
	uint32_t fc_gen;
	struct shn__fc_ent *fc_tab;    /* exact keys and prefixes, open addressing by hash */
	uint32_t fc_cap;               /* a power of two, > the exact and prefix filters */
	uint64_t fc_plens[SHN_PREFIX_LEN_WORDS];  /* bit p - 1: a prefix of p bytes */
	uint64_t *fc_pbloom;           /* a bit per filter's hash (fc_pbloom_bit) */
	uint32_t fc_pbloom_bits;       /* a power of two */
	struct shn__fc_any *fc_any;    /* any-key (and monitor) filters */
	uint32_t fc_nany;
	uint8_t *fc_keys;
	struct shn__fc_memo_ent *fc_memo;  /* filter_cache.c; NULL until first used */
	uint32_t mn_late;              /* match_run: runs of the record no filter took (conn 0) */
	/* match_run's last answer: a run of event | key_len << 32 = mr_w0 and
	 * key mr_key earned mr_conn (not 0) while sinks_gen was mr_gen.  A
	 * flood, and a latency test, send one key: its runs skip the
	 * filter cache's hash */
	bool mr_valid;
	uint32_t mr_gen;
	uint64_t mr_w0;
	uint64_t mr_conn;
	alignas(8) uint8_t mr_key[SHN_KEY_MAX_WIRE];   /* zero past the key's words */
	uint8_t *dbuf;                 /* the private copy of the direct record */
	uint32_t dbuf_cap;
	int held;                      /* >= 0: dbuf holds a record of dr[held], due
	                                  after the OVERFLOW now current; -1 none */
	int cur_dring;                 /* >= 0: cur is dbuf, a record of dr[cur_dring] */
	int last_dring;                /* the direct ring of the last direct record, or
	                                  -1: whose publisher a sleep may yield to */
	/* seq: one sequence per port.  A brokered note's is the broker's plus
	 * seq_off, the notifications that came (or were lost) directly */
	uint64_t next_seq;             /* the last seq handed out */
	uint64_t seq_off;
	bool cur_synth;                /* cur points into synth, not the ring */
	uint32_t cur_sync_token;       /* non-zero: acknowledge when consumed */

	/* advise sinks: a snapshot of this port's sinks, rebuilt when the
	 * generation changes, so callbacks run without the client lock.
	 * sinks_gen moves (under ctl_lock) on every change of this port's
	 * subscriptions, pull ones too: filter_cache.c's copy follows
	 * it as well. */
	_Atomic uint32_t sinks_gen;
	uint32_t snap_gen;
	struct shn__sub *snap;
	size_t nsnap, snap_cap;
	shn_notification *all, *subset;  /* dispatch scratch, all_cap entries each */
	size_t all_cap;

	/* the delivered batch being read */
	const uint8_t *cur;            /* record start, NULL when none */
	uint32_t cur_len;
	uint32_t cur_count;
	uint32_t cur_index;            /* next note to hand out */
	uint32_t cur_off;              /* byte offset of that note in the record */
	/* a direct record (cur_dring >= 0): the run the next note is in, and
	 * how many of its notes are still to hand out (0: the next note
	 * starts a run at cur_off) */
	uint32_t run_left;
	uint32_t run_same_len;         /* its notes' one data length, or 0:
	                                  a length word per note */
	uint64_t run_w0;               /* event | key_len << 32 */
	const uint8_t *run_key;
	uint64_t run_conn;
};

/* CLOCK_MONOTONIC in nanoseconds (the vDSO: no system call): publish
 * times, get deadlines, a publisher's wait bounds. */
static inline uint64_t shn__now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ((uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec);
}

/* Are the len bytes at a and b the same?  The repeated-key checks of the
 * direct path run once per note: word loads, no call, for the short keys
 * floods use; memcmp past 32 bytes. */
static inline bool shn__key_eq(const void *a, const void *b, uint32_t len)
{
	const uint8_t *x = a, *y = b;
	uint64_t u, v;

	if (len > 32)
		return (memcmp(x, y, len) == 0);
	for (; len >= 8; len -= 8, x += 8, y += 8) {
		memcpy(&u, x, 8);
		memcpy(&v, y, 8);
		if (u != v)
			return (false);
	}
	for (; len > 0; len--, x++, y++)
		if (*x != *y)
			return (false);
	return (true);
}

/* Make a one-note system event of the library's own (BROKER_STATE,
 * RECONNECT, a direct ring's OVERFLOW) the port's current record, built in
 * port-local memory: data_len bytes of data (at most 8) follow the note. */
static inline void shn__port_synth(shn_port *p, uint32_t event, const void *data,
				   uint32_t data_len)
{
	struct shn_del_batch *b = (void *)p->synth;
	struct shn_del_note *n = (void *)(b + 1);

	memset(p->synth, 0, sizeof(p->synth));
	b->h.len = (uint32_t)(sizeof(*b) + sizeof(*n) + ((data_len + 7u) & ~7u));
	b->h.type = SHN_REC_DELIVERY;
	b->count = 1;
	n->event = event;
	n->data_len = data_len;
	if (data_len)
		memcpy(n + 1, data, data_len);
	p->cur = (const uint8_t *)p->synth;
	p->cur_len = b->h.len;
	p->cur_count = 1;
	p->cur_index = 0;
	p->cur_off = sizeof(*b);
	p->cur_synth = true;
	p->cur_sync_token = 0;
}

#endif
