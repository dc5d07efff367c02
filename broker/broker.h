/* SPDX-License-Identifier: MIT */
/*
 * broker.h - the broker's objects: the broker itself, clients, ports and
 * subscriptions, and how they point at each other.
 *
 *   broker ── clients[] ── client ── ports (list) ── port ── subs (list)
 *                             └──── subs by conn (map) ─────────┘
 *   broker ── index: key hash → key entry ── subs;  wildcard list ── subs
 *
 * Ownership: the broker owns clients; a client owns its ports and
 * subscriptions; the index and the router's lists only borrow them, and
 * every free unlinks from those first.
 */
#ifndef SHND_BROKER_H
#define SHND_BROKER_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "shm/direct.h"
#include "shm/proto.h"
#include "shm/ring.h"
#include "shm/segment.h"

#include "acl.h"
#include "config.h"
#include "list.h"
#include "loop.h"
#include "map.h"

/* Replies queued for a client that does not read them: past this the
 * client is cut off (a STATS reply of many chunks counts once per chunk,
 * but a client waiting for its reply reads them as they come). */
#define SHND_SENDQ_MAX 64u
/* System events waiting in broker memory for room in one port's ring: at
 * most this many plus the port's live subscriptions (SUBSCRIBE fails with
 * -ENOBUFS meanwhile), so a client cannot grow the queue by subscribing
 * and unsubscribing on a port it never reads. */
#define SHND_PENDING_MAX 1024u

/* Broker-wide totals; they survive the clients they count. */
struct shnd_totals {
	uint64_t accepted;
	uint64_t refused;     /* connections from other users */
	uint64_t protocol_errors;
	uint64_t ring_errors;
	uint64_t disconnects; /* clients the broker cut off, for any reason */
	uint64_t batches_routed;
	uint64_t notifications_routed;  /* user notifications in routed batches */
	uint64_t notifications_delivered; /* written to delivery rings (per port) */
	uint64_t notifications_dropped;   /* dropped for full ports (per port) */
	uint64_t sync_batches;  /* SHN_PUB_SYNC batches served to the end or canceled */
	uint64_t sync_canceled; /* of those, stopped by a sink's DISCONTINUE */
	/* allocations that failed while routing: a match (that port loses the
	 * batch, reported as an overflow), or a buffer a publisher's record
	 * needs (that publisher is cut off) */
	uint64_t alloc_failures;
	/* requests refused by a [limits] cap (docs/config.md) */
	uint64_t limit_clients;       /* HELLO answered -EUSERS */
	uint64_t limit_ports;         /* PORT_OPEN -ENOSPC */
	uint64_t limit_subscriptions; /* SUBSCRIBE -ENOSPC */
	uint64_t limit_ring_bytes;    /* HELLO or PORT_OPEN -ENOSPC */
	uint64_t limit_key_size;      /* SUBSCRIBE -EMSGSIZE, or a publish record (ring error) */
	uint64_t limit_data_size;     /* a publish record (ring error) */
	/* refused by an [acl "PREFIX"] rule */
	uint64_t acl_subscribe_denied;  /* SUBSCRIBE -EACCES */
	uint64_t acl_publish_denied;    /* publish batches dropped (and PUB_CHECK -EACCES) */
	/* the direct path (dring.c) */
	uint64_t direct_rings_opened;
	uint64_t direct_refused;        /* offers a [limits] cap turned down */
	uint64_t direct_faults;         /* DIRECT_FAULTs that cut a publisher off */
};

/* A pending system event of one port (FIFO in broker memory). */
struct shnd_sysev {
	uint32_t event; /* SHN_EV_OVERFLOW_WIRE or SHN_EV_HANDLE_CLOSE_WIRE */
	uint64_t val;   /* OVERFLOW: lost count; HANDLE_CLOSE: conn */
	/* HANDLE_CLOSE on a port with direct rings: its data, the barrier
	 * (shm/direct.h), malloc'd, freed once written or with the port */
	struct shn_direct_barrier *barrier;
	uint32_t nbarrier;
};

struct shnd_client;
struct shnd_port;

/* A direct ring (dring.c): one publisher writes, one port's owner reads. */
struct shnd_dring {
	struct shnd_list by_pub;      /* pub->drings */
	struct shnd_list by_port;     /* port->drings */
	struct shnd_client *pub;
	struct shnd_port *port;
	uint32_t ring_id;             /* broker-wide, never reused */
	uint32_t pmap_slot;           /* in the publisher's port map */
	uint32_t port_slot;           /* among the port's direct rings */
	uint32_t capacity;
	uint64_t open_gen;
	struct shn_segment ring_seg;  /* the broker's mappings (stats); fds handed out */
	struct shn_segment cons_seg;
};

struct shnd_port {
	struct shnd_hnode by_id;      /* broker->ports; key: id */
	struct shnd_list by_client;   /* owner->ports */
	struct shnd_list dirty_link;  /* router: records written, tail unpublished */
	struct shnd_list pending_link;/* router: system events waiting for room */
	struct shnd_client *owner;
	uint32_t id;
	uint32_t capacity;
	uint32_t overflow;
	bool dirty, on_pending;
	bool dloss;                   /* some direct publisher's SHN_PMAP_F_LOSS set */
	bool asked;                   /* a room request (ring.prod->room_head) is out */
	struct shn_segment ring_seg;  /* broker writes; sealed read-only to the client */
	struct shn_segment cons_seg;  /* the client's consumer line: hostile */
	struct shn_ring ring;         /* broker's producer view */
	int event_fd;
	struct shnd_list subs;        /* struct shnd_sub.by_port */
	uint32_t nsubs;
	/* the direct path: its rings (struct shnd_dring.by_port), which port
	 * slots they use, and a read-only descriptor of the consumer segment
	 * for their publishers (the sleep word); -1 unless the owner asked */
	struct shnd_list drings;
	uint32_t ndrings, dring_slots;
	int cons_ro_fd;
	/* its owner asked for the direct path before opening it: user batches
	 * are written as SHN_REC_DELIVERY2 (they name their publisher) */
	bool direct;
	uint64_t seq;
	uint64_t delivered, dropped;
	uint64_t wakeups;             /* eventfd writes to a sleeping consumer */
	uint64_t high_water;          /* most bytes seen waiting in the ring at a publish */
	/* pending system events: a ring buffer of pend_cap entries */
	struct shnd_sysev *pend;
	uint32_t pend_head, pend_n, pend_cap;
	uint64_t want_head;           /* consumer head the room request is past */
	/* the token of the SYNC record written here whose acknowledgement a
	 * publisher waits for (one at a time per port: the ack line holds one
	 * token), or 0 */
	uint32_t sync_token;
	/* router scratch for the batch being routed */
	uint64_t gen;
	uint64_t first_serial;        /* oldest matching subscription's serial */
	uint32_t cur_note, first, last, count;
	uint32_t gaps;                /* of count, gap reports (shn_notify_gap) */
	uint64_t bytes;
	/* out of memory recording a match: the batch is dropped here; the
	 * counts of the gap reports among the notes not recorded */
	bool lost;
	uint64_t lost_gap_sum;
};

struct shnd_keyent;

struct shnd_sub {
	struct shnd_list by_key;      /* keyent->subs or index wildcard list */
	struct shnd_list by_port;     /* port->subs */
	struct shnd_hnode by_conn;    /* client->subs; key: conn */
	struct shnd_keyent *ke;       /* NULL: any key */
	struct shnd_port *port;
	uint64_t conn;
	uint64_t serial;              /* broker-wide creation order (SYNC service order) */
	uint32_t mask;
	bool prefix;                  /* ke->key is a prefix (SHN_SUB_PREFIX) */
};

/* A publisher's SHN_PUB_SYNC batch being served (docs/design.md, rule 7): the
 * matching ports one after another, each until its consumer acknowledged.
 * The record stays at the head of the publisher's ring meanwhile, holding
 * back everything the publisher sent after it. */
enum shnd_sync_state {
	SHND_SYNC_NONE,
	SHND_SYNC_NEXT,  /* write the record to ports[cur] */
	SHND_SYNC_ROOM,  /* ports[cur] (SHN_OVERFLOW_BLOCK) has no room until its consumer moves */
	SHND_SYNC_ACK,   /* written to ports[cur]: waiting for token in its ack line */
};

struct shnd_sync {
	enum shnd_sync_state state;
	uint32_t len;                 /* the record's bytes at the head of the publish ring */
	uint32_t count;               /* its notifications */
	uint64_t batch_id;
	uint32_t *ports;              /* ids of the matching ports, in service order */
	uint32_t nports, cur;
	uint32_t token;               /* ACK: expected in ports[cur]'s ack line */
	uint64_t room_head;           /* ROOM: the consumer head before room was found short */
	struct shnd_list link;        /* router->syncs */
};

enum shnd_client_state {
	SHND_CLIENT_HANDSHAKE, /* waiting for HELLO */
	SHND_CLIENT_READY,
	SHND_CLIENT_DOOMED,    /* cut off or gone; reclaimed at the next safe point */
};

struct shnd_client {
	struct shnd_broker *b;
	uint64_t id;
	size_t slot;                  /* index in b->clients */
	enum shnd_client_state state;
	bool ring_failed;             /* its rings are corrupt: do not drain on exit */
	/* gone, but its publish ring still holds batches held back by a
	 * SHN_OVERFLOW_BLOCK port: routed as room appears (docs/design.md, rule 9) */
	bool draining;
	/* back-pressure: the next batch waits for room in this port, until
	 * its consumer moves from stall_head */
	struct shnd_port *stall_port;
	uint64_t stall_head;
	struct shnd_sync sync;        /* its SYNC batch being served, if any */
	bool close_after_reply;
	pid_t pid;
	uid_t uid;
	gid_t gid;
	int refuse;                   /* HELLO gets this (-EUSERS beyond max-clients,
	                                 -EACCES another user of a private broker),
	                                 then the connection closes */
	struct shnd_acl_client acl;   /* what its uid/gids may do */
	uint64_t acl_denied;          /* its subscriptions and batches refused by the ACL */
	/* what it calls itself (SET_NAME, checked: shn_name_valid), for stats;
	 * NUL-terminated, "" when it gave none */
	char name[SHN_NAME_MAX_WIRE + 1];
	/* the direct path: granted in HELLO (it asked, --direct auto); set up
	 * (DIRECT_SETUP): it holds the filter table and its port map */
	bool direct, direct_setup;
	/* the most ports its library writes one batch to directly
	 * (DIRECT_SETUP): a wider batch offers it no ring (router.c) */
	uint32_t direct_fanout;
	struct shn_segment pmap_seg;  /* its port map: the broker writes, sealed read-only */
	uint32_t pmap_used;           /* port map slots used (never reused) */
	/* ports whose ring this publisher gave back (it could not map it, or
	 * its reader's head was not valid): not offered again, so the pair
	 * stays on the broker path instead of a ring offered per batch; the
	 * last SHND_DECLINED of them, oldest forgotten first */
#define SHND_DECLINED 16
	uint32_t declined[SHND_DECLINED];
	uint32_t ndeclined;
	struct shnd_list drings;      /* the direct rings it writes (shnd_dring.by_pub) */
	struct shnd_conn conn;
	int refs;                     /* loop objects not yet released */
	struct shnd_list doom_link;
	/* publish ring: the client produces, the broker consumes */
	bool has_pub;
	struct shn_segment pub_seg;
	struct shn_ring pub;
	uint64_t pub_released;        /* head last stored into the consumer line */
	int doorbell_fd;
	int room_fd;
	struct shnd_watch doorbell;
	uint64_t published, batches;
	uint64_t room_wakeups;        /* eventfd writes to a publisher waiting for room */
	uint64_t last_publish_ns;     /* CLOCK_MONOTONIC_COARSE of its last routed batch, 0: none */
	/* ports and subscriptions */
	struct shnd_list ports;
	uint32_t nports;
	struct shnd_map subs;
	alignas(16) unsigned char rxbuf[SHN_MSG_MAX + 8];
};

struct shnd_keyent;

struct shnd_index {
	/* exact keys: hash → entry (struct shnd_keyent, prefix false) */
	struct shnd_keyent **buckets;
	size_t nbuckets;
	size_t nkeys;
	struct shnd_list wild;
	size_t nwild;
	/* prefixes (SHN_SUB_PREFIX): hash of the prefix bytes → entry
	 * (prefix true; "ab" exact and "ab" prefix are two entries), and the
	 * distinct prefix lengths in use: plen_count[p] entries of p bytes,
	 * plens[0 .. nplens) the lengths with a non-zero count, ascending.  A
	 * note of key length L costs one lookup per plens[i] <= L. */
	struct shnd_keyent **pbuckets;
	size_t npbuckets;
	size_t nprefixes;
	uint32_t plen_count[SHN_KEY_MAX_WIRE + 1];
	uint16_t plens[SHN_KEY_MAX_WIRE];
	uint32_t nplens;
	/* the broker segment's prefix_lens (NULL until shnd_index_attach) */
	_Atomic uint64_t *prefix_lens;
	/* the interest summary published in the broker segment (NULL until
	 * shnd_index_attach): per bit, how many key entries hash there */
	uint32_t *interest_count;
	_Atomic uint64_t *interest_map;
	_Atomic uint32_t *any_key_subs;
	/* bumped by every add and del: the direct path's filter table is
	 * rebuilt when it moved (ftab.c) */
	uint64_t changes;
};

/* The direct path's filter table (ftab.c, shm/direct.h), broker-wide. */
struct shnd_ftab {
	struct shn_segment seg;       /* the broker writes; sealed read-only to clients */
	struct shn_ftab_hdr *t;       /* NULL: --direct off */
	uint32_t holders;             /* clients that got it (DIRECT_SETUP) */
	uint64_t built_changes;       /* index.changes the half in use was built from */
	uint32_t *used[2];            /* per half, the slots its last build wrote */
	uint32_t nused[2];
	bool disabled;                /* the half in use says SHN_FTAB_DISABLED */
	uint64_t builds, disabled_builds;
};

/* The notes idx .. idx + n - 1 of the batch (indices into router.notes),
 * taken by one port under one conn: a run of notes with one key and one
 * event is matched once and then extended (match.c). */
struct shnd_match {
	uint32_t idx;   /* the first note's index in router.notes */
	uint32_t n;     /* notes in the range, at least 1 */
	uint32_t next;  /* next match of the same port, or UINT32_MAX */
	uint64_t conn;
};

struct shnd_router {
	uint8_t *scratch;
	size_t scratch_cap;
	uint32_t *notes;     /* offsets of the notes of the batch being routed */
	size_t notes_cap;
	struct shnd_match *match;
	size_t nmatch, match_cap;
	/* the ports the batch matched; room for every port is made when a
	 * port opens (port.c), so matching never grows it */
	struct shnd_port **touched;
	size_t ntouched, touched_cap;
	/* the ports that took the note being matched (a note with the key
	 * and event of the one before goes to the same ones); as large as
	 * touched, made with it */
	struct shnd_port **took;
	size_t ntook, took_cap;
	uint64_t gen;
	struct shnd_list dirty;
	struct shnd_list pending;
	struct shnd_list syncs;   /* clients whose SYNC batch is being served */
	uint32_t next_token;      /* the last SYNC token handed out */
	bool kick;           /* a doorbell rang: retry pending ports */
	/* match.c: the prefix entries of recent keys, valid while the
	 * index's change count is the one recorded (NULL until used) */
	struct shnd_prefix_memo *pmemo;
};

/* at most this many other users' connections wait for their -EACCES */
#define SHND_FOREIGN_REFUSING_MAX 16

struct shnd_broker {
	struct shnd_config cfg;
	struct shnd_loop *loop;
	int listen_fd;
	bool activated;               /* listen_fd came from the service manager */
	unsigned foreign_refusing;    /* other users' connections awaiting -EACCES */
	dev_t sock_dev;
	ino_t sock_ino;
	struct shnd_watch listen_watch;
	int signal_fd;
	struct shnd_watch signal_watch;
	int spare_fd;                 /* given up to accept-and-close under EMFILE */
	struct shn_segment bshm_seg;
	struct shn_broker_shm *bshm;
	struct shnd_client **clients;
	size_t nclients, clients_cap;
	struct shnd_list doomed;
	struct shnd_map ports;
	struct shnd_index index;
	struct shnd_ftab ftab;
	struct shnd_router router;
	uint64_t next_client_id;
	uint32_t next_port_id;
	uint64_t next_sub_serial;
	size_t nports, nsubs;
	uint32_t next_ring_id, ndrings; /* direct rings: the last id, how many open */
	uint64_t dring_bytes;         /* their capacities together */
	struct shnd_totals tot;
	uint64_t started_ns;          /* CLOCK_MONOTONIC at start, for uptime */
	bool stop;
};

/* Set up everything a running broker needs from cfg: the loop (io_uring
 * or epoll), the broker segment, SIGINT/SIGTERM through a signalfd (the
 * caller has blocked them), and the listening socket.  Logs "listening on
 * PATH (io: NAME)" when ready.  0 or -errno (logged); -EADDRINUSE: another
 * broker answers on the socket. */
int shnd_broker_init(struct shnd_broker *b, const struct shnd_config *cfg);

/* Serve until SIGINT/SIGTERM.  0, or -errno when the loop failed. */
int shnd_broker_run(struct shnd_broker *b);

/* Close every client (routing what they left first), unlink the socket
 * and free everything.  Safe after a failed init. */
void shnd_broker_fini(struct shnd_broker *b);

#endif
