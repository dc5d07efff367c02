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
	uint16_t key_len;
	uint32_t mask;
	uint8_t key[SHN_KEY_MAX];      /* the filter, for dispatch and re-registration */
};

struct shn_client {
	int sock;                      /* control socket (SOCK_SEQPACKET) */
	_Atomic bool broker_gone;      /* the broker closed the socket */

	pthread_mutex_t ctl_lock;      /* one control request at a time; guards the lists */
	uint32_t next_msg_id;
	shn_port *ports;               /* open ports */
	struct shn__sub *subs;         /* live subscriptions */
	_Atomic uint64_t next_conn;    /* never reused within the client's life */

	pthread_mutex_t pub_lock;      /* serialises publishers of this client */
	struct shn_segment pub_seg;    /* publish ring: we produce, the broker consumes */
	struct shn_ring pub;
	uint64_t next_batch_id;
	uint32_t rung_seq;             /* broker sleep value we already rang for */
	int doorbell_fd;               /* we write: wakes the broker */
	int room_fd;                   /* broker writes: room in the publish ring */

	struct shn_segment broker_seg; /* read-only: the broker's sleep word */
	struct shn_broker_shm *bshm;

	uint32_t pub_capacity;
	uint32_t max_capacity;
	uint32_t default_capacity;
};

struct shn_port {
	shn_port *next;                /* in the client's list */
	shn_client *client;
	uint32_t id;
	uint32_t capacity;
	struct shn_segment ring_seg;   /* read-only delivery ring */
	struct shn_segment cons_seg;   /* our consumer line */
	int event_fd;                  /* broker writes when we sleep; unblock writes too */
	struct shn_ring ring;
	_Atomic bool unblock;          /* shn_port_unblock() pending */
	uint32_t want_space_seen;

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

/* Receive one message on the control socket (blocking, bounded by
 * timeout_ms).  Returns its length or -errno; -ENOTCONN once the broker is
 * gone. */
ssize_t shn__recv(shn_client *c, void *buf, size_t len, int *fds, int *nfds, int timeout_ms);

/* Mark the broker gone (socket closed or protocol broken). */
void shn__broker_lost(shn_client *c);

/* True when the control socket reports hang-up.  No blocking. */
bool shn__broker_hung_up(shn_client *c);

/* Close a port's local resources, no message to the broker. */
void shn__port_free(shn_port *p);

/* Release the record fully handed out, then wait (bounded by timeout_ms,
 * -1 none) until a delivered record is current.  1, -ETIMEDOUT,
 * -ECANCELED, -EBADMSG or another -errno. */
int shn__port_wait_record(shn_port *p, int timeout_ms);

/* Hand out up to max notes of the current record. */
int shn__port_fill(shn_port *p, shn_notification *out, size_t max);

/* Register a subscription (pull when fn is NULL) with the broker. */
int shn__subscribe(shn_port *p, const void *key, size_t key_len, uint32_t event_mask,
		   unsigned flags, shn_sink_fn fn, void *ctx, shn_conn *conn);

#define SHN__CTL_TIMEOUT_MS 30000

#endif
