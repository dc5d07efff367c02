/* SPDX-License-Identifier: MIT */
/*
 * internal.h - libshmnotify's private structures (shn__ names).
 */
#ifndef SHN_LIBCLIENT_INTERNAL_H
#define SHN_LIBCLIENT_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
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
	void *watcher_stack;
	int stop_fd;                   /* eventfd: tells the watcher to exit */
	_Atomic int sync_timeout_ms;   /* -1: none */
	struct shn__sync_wait *sync_waits;  /* under ctl_lock */

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
	/* acl.c: publish permissions asked with PUB_CHECK, per key */
	_Atomic bool pub_acl;          /* SHN_HELLO_F_PUB_ACL: ask before publishing */
	pthread_mutex_t acl_lock;
	uint64_t acl_gen;              /* +1 per connection: older answers are void */
	struct shn__acl_slot *acl_slots;
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
	struct shn_ring ring;
	_Atomic bool unblock;          /* shn_port_unblock() pending */
	_Atomic bool efd_dirty;        /* event_fd may hold a stale wake-up */
	uint64_t room_rung;            /* the broker's room request we rang for */

	pthread_mutex_t swap_lock;     /* guards event_fd changes and next_rings */
	struct shn__port_rings next_rings;
	uint32_t told_epoch;           /* loss_epoch we delivered BROKER_STATE for */
	uint64_t synth[(sizeof(struct shn_del_batch) + sizeof(struct shn_del_note)) / 8 + 2];
	bool cur_synth;                /* cur points into synth, not the ring */
	uint32_t cur_sync_token;       /* non-zero: acknowledge when consumed */

	/* advise sinks: a snapshot of this port's sinks, rebuilt when the
	 * generation changes, so callbacks run without the client lock */
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
};

/* Send one request and wait for its reply (same type and id).  req->hdr is
 * filled in here.  fds: where received descriptors go (*nfds in: room, out:
 * count).  Returns the reply's status (0 or -errno) or a transport -errno;
 * reply_len receives the reply's length.  Caller holds no lock. */
int shn__call(shn_client *c, void *req, size_t req_len, void *reply, size_t reply_max,
	      size_t *reply_len, int *fds, int *nfds);
/* The same, for a caller that holds c->ctl_lock already. */
int shn__call_locked(shn_client *c, void *req, size_t req_len, void *reply, size_t reply_max,
		     size_t *reply_len, int *fds, int *nfds);

/* Receive one message on the control socket (blocking, bounded by
 * timeout_ms).  Returns its length or -errno; -ENOTCONN once the broker is
 * gone. */
ssize_t shn__recv(shn_client *c, void *buf, size_t len, int *fds, int *nfds, int timeout_ms);

/* Mark the broker gone (socket closed or protocol broken). */
void shn__broker_lost(shn_client *c);

/* A message that is not a reply (SYNC_DONE): note it for its waiter.
 * Caller holds ctl_lock.  Returns true when msg was such a message. */
bool shn__async_message(shn_client *c, const void *msg, size_t len);

/* Tell the broker the current SYNC record was consumed (status 0) or a
 * sink discontinued (1). */
void shn__sync_ack(shn_port *p, uint32_t status);

/* Ask the broker behind c for a port with opt; on success r holds its
 * mapped rings (not yet attached) and *port_id its number.  On failure
 * nothing is left open. */
int shn__port_request(shn_client *c, const shn_port_options *opt, uint32_t *port_id,
		      struct shn__port_rings *r);

/* Unmap and close rings that were never attached. */
void shn__port_rings_close(struct shn__port_rings *r);

/* acl.c: may c publish every key of the batch?  0, -EACCES, or the error
 * of asking the broker.  Call only while c->pub_acl is set. */
#define SHN__ACL_SLOTS 256
struct shn__acl_slot;
void shn__acl_init(shn_client *c);
void shn__acl_fini(shn_client *c);
/* A new connection: forget every answer; ask again if its flags say so. */
void shn__acl_reset(shn_client *c, uint32_t hello_flags);
int shn__acl_check(shn_client *c, const shn_notification *batch, size_t n);

/* Install the current rings of p from mapped segments (open, reconnect). */
int shn__port_attach(shn_port *p, struct shn__port_rings *r);


/* Close a port's local resources, no message to the broker. */
void shn__port_free(shn_port *p);

/* Release the record fully handed out, then wait (bounded by timeout_ms,
 * -1 none) until a delivered record is current.  1, -ETIMEDOUT,
 * -ECANCELED, -EBADMSG or another -errno. */
int shn__port_wait_record(shn_port *p, int timeout_ms);

/* Hand out up to max notes of the current record. */
int shn__port_fill(shn_port *p, shn_notification *out, size_t max);

/* Send s's filter to the broker behind c (SUBSCRIBE with s's conn, key,
 * mask and its port's current number).  0 or -errno. */
int shn__send_subscribe(shn_client *c, const struct shn__sub *s);

/* Register a subscription (pull when fn is NULL) with the broker. */
int shn__subscribe(shn_port *p, const void *key, size_t key_len, uint32_t event_mask,
		   unsigned flags, shn_sink_fn fn, void *ctx, shn_conn *conn);

/* shn_notify() without the check of its public flags, for the library's
 * own publishers; flags may add SHN__NOTIFY_GAP: every note must then be a
 * gap report (event SHN_EV_OVERFLOW alone, data_len 8), see gap.c. */
#define SHN__NOTIFY_GAP 0x10000u
int shn__notify(shn_client *c, const shn_notification *batch, size_t n, unsigned flags);

#define SHN__CTL_TIMEOUT_MS 30000

#endif
