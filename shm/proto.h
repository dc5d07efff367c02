/* SPDX-License-Identifier: MIT */
/*
 * proto.h - what the broker and the library agree on: the control messages
 * on the AF_UNIX SOCK_SEQPACKET socket, the segments they hand over, and the
 * records in the rings.  broker/ and libclient/ meet only here and in ring.h.
 * docs/protocol.md describes each message; docs/ring.md the memory layout.
 *
 * All integers are in host byte order (both ends share a machine).
 */
#ifndef SHN_SHM_PROTO_H
#define SHN_SHM_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "direct.h"
#include "ring.h"
#include "util/utf8.h"

#define SHN_PROTO_MAGIC   0x314e4853u /* "SHN1" */
#define SHN_PROTO_VERSION 6u   /* 2: ring producer line holds room_head;
                                  3: direct records carry runs (direct.h);
                                  4: DIRECT_SETUP carries the fan-out;
                                  5: a direct run may have one data length
                                     (SHN_DIRECT_RUN_SAME_LEN);
                                  6: DIRECT_OPEN gives the subscriber no
                                     room eventfd (nobody sleeps for room on
                                     a direct ring) */
#define SHN_MSG_MAX       4096u       /* bytes in one control message */
#define SHN_MSG_MAX_FDS   4

/* ---- control messages ------------------------------------------------- */

enum shn_msg_type {
	SHN_MSG_HELLO       = 1,  /* c->b first message; reply carries the publish ring */
	SHN_MSG_PORT_OPEN   = 2,
	SHN_MSG_PORT_CLOSE  = 3,
	SHN_MSG_SUBSCRIBE   = 4,
	SHN_MSG_UNSUBSCRIBE = 5,
	SHN_MSG_STATS       = 6,  /* reply: one or more STATS chunks of JSON text */
	SHN_MSG_SYNC_DONE   = 7,  /* b->c, unsolicited: a SYNC batch was served */
	SHN_MSG_PUB_CHECK   = 8,  /* may this client publish this key? (ACL) */
	SHN_MSG_SET_NAME    = 9,  /* the client's name, for stats (SHN_HELLO_F_NAME) */
	/* the direct path (SHN_HELLO_F_DIRECT; docs/direct-path.md) */
	SHN_MSG_DIRECT_SETUP = 10, /* c->b: the filter table and the port map */
	SHN_MSG_DIRECT_OPEN  = 11, /* b->c, unsolicited: a direct ring to use */
	SHN_MSG_DIRECT_CLOSE = 12, /* b->c unsolicited: stop using a ring;
	                              c->b request: done with a ring */
	SHN_MSG_DIRECT_FAULT = 13, /* c->b: a direct ring held a bad record */
	SHN_MSG_TYPE_MAX
};

/* Every message starts with this header.  A reply repeats type and id of
 * its request and sets status (0 or -errno). */
struct shn_msg_hdr {
	uint32_t magic;    /* SHN_PROTO_MAGIC */
	uint16_t version;  /* SHN_PROTO_VERSION of the sender */
	uint16_t type;     /* enum shn_msg_type */
	uint32_t id;       /* request id chosen by the client, echoed */
	int32_t  status;   /* replies: 0 or -errno; requests: 0 */
};

/* HELLO request.  A broker that does not speak hdr.version replies with
 * status -EPROTONOSUPPORT, its own version in hdr.version and no body, then
 * closes the connection. */
struct shn_msg_hello {
	struct shn_msg_hdr hdr;
	uint32_t pub_capacity;  /* publish ring bytes; 0: broker default */
	uint32_t flags;         /* 0 or SHN_HELLO_F_DIRECT */
};

/* HELLO reply; fds: [0] publish ring segment (rw), [1] doorbell eventfd
 * (client writes to wake the broker), [2] room eventfd (broker writes to
 * wake a publisher waiting for room), [3] broker segment (read-only). */
struct shn_msg_hello_reply {
	struct shn_msg_hdr hdr;
	uint64_t client_id;
	uint32_t pub_capacity;      /* actual publish ring data bytes */
	uint32_t max_capacity;      /* largest ring capacity the broker grants */
	uint32_t default_capacity;  /* delivery ring bytes when a port asks 0 */
	uint32_t flags;             /* SHN_HELLO_F_*; 0 from brokers before they existed */
};
/* Some [acl] rule may refuse this client's publishing: before it publishes a
 * key it has not asked about yet, the library sends PUB_CHECK (the broker
 * drops a batch with a refused key anyway). */
#define SHN_HELLO_F_PUB_ACL 1u
/* The broker takes SET_NAME.  A library sends SET_NAME only to a broker
 * that set this: an older one takes an unknown type for a protocol error
 * and disconnects. */
#define SHN_HELLO_F_NAME 2u
/* Request: the client can use the direct path.  Reply: the broker runs with
 * direct auto and will hand this client direct rings; the client may send
 * the SHN_MSG_DIRECT_* messages and must take DIRECT_OPEN / DIRECT_CLOSE.
 * A broker that does not set it (off, or older) never sends them, and its
 * records are the brokered ones only.  Any other request flag: -EINVAL. */
#define SHN_HELLO_F_DIRECT 4u
/* The broker takes a STATS request with flags (struct shn_msg_stats).  A
 * library sends one only to a broker that set this: an older one takes a
 * STATS longer than its header for a protocol error and disconnects. */
#define SHN_HELLO_F_STATS_FLAGS 8u
enum { SHN_HELLO_FD_PUB, SHN_HELLO_FD_DOORBELL, SHN_HELLO_FD_ROOM, SHN_HELLO_FD_BROKER,
       SHN_HELLO_NFDS };

struct shn_msg_port_open {
	struct shn_msg_hdr hdr;
	uint32_t capacity;  /* 0: default */
	uint32_t overflow;  /* SHN_OVERFLOW_* */
};

/* PORT_OPEN reply; fds: [0] ring segment (read-only, sealed), [1] consumer
 * segment (rw, SHN_CONS_SEG_SIZE bytes), [2] port eventfd (broker writes). */
struct shn_msg_port_open_reply {
	struct shn_msg_hdr hdr;
	uint32_t port_id;
	uint32_t capacity;
};
enum { SHN_PORT_FD_RING, SHN_PORT_FD_CONS, SHN_PORT_FD_EVENT, SHN_PORT_NFDS };

struct shn_msg_port_close {
	struct shn_msg_hdr hdr;
	uint32_t port_id;
	uint32_t reserved;
};

/* SUBSCRIBE: the client chooses conn (non-zero, unique within the client's
 * life) so that a reconnect can restore the same numbers. */
struct shn_msg_subscribe {
	struct shn_msg_hdr hdr;
	uint64_t conn;
	uint32_t port_id;
	uint32_t event_mask;
	uint32_t flags;     /* SHN_SUB_ANY_KEY: key_len must be 0 */
	uint16_t key_len;   /* 1..SHN_KEY_MAX_WIRE unless SHN_SUB_ANY_KEY */
	uint16_t reserved;
	uint8_t  key[];
};
#define SHN_SUB_ANY_KEY 1u
#define SHN_SUB_MONITOR 2u  /* with ANY_KEY: see every routed notification (shmnotify
                               monitor); root or the broker's own uid only, -EACCES else */
#define SHN_SUB_PREFIX  4u  /* key (1..SHN_KEY_MAX_WIRE bytes) is a prefix: the filter
                               takes every key that starts with it (the key itself
                               included); never with ANY_KEY or MONITOR (-EINVAL) */

struct shn_msg_unsubscribe {
	struct shn_msg_hdr hdr;
	uint64_t conn;
};

/* PUB_CHECK: may this client publish notifications with this key?  Reply:
 * header only, status 0 or -EACCES (-EINVAL: bad key length).  The answer
 * holds for the connection's life: the broker's rules never change while
 * it runs.  Sent only to brokers that set SHN_HELLO_F_PUB_ACL. */
struct shn_msg_pub_check {
	struct shn_msg_hdr hdr;
	uint16_t key_len;   /* 1..SHN_KEY_MAX_WIRE; the message is exactly hdr + 8 + key_len */
	uint16_t reserved;
	uint32_t reserved2;
	uint8_t  key[];
};

/* SET_NAME: the name stats show for this client (shn_set_name), replacing
 * any earlier one; name_len 0 clears it.  The message is exactly hdr + 8 +
 * name_len, the reserved fields are 0, and the name passes shn_name_valid();
 * anything else is a protocol error (disconnect), since the library checks
 * the same rule before sending.  Reply: header only, status 0. */
struct shn_msg_set_name {
	struct shn_msg_hdr hdr;
	uint16_t name_len;  /* 0..SHN_NAME_MAX_WIRE */
	uint16_t reserved;
	uint32_t reserved2;
	uint8_t  name[];    /* not NUL-terminated */
};
#define SHN_NAME_MAX_WIRE 64u  /* = SHN_NAME_MAX */

/* Is s[0..n) a client name: 1..SHN_NAME_MAX_WIRE bytes of UTF-8 (shortest
 * form, no surrogates, at most U+10FFFF) with no control character (C0,
 * DEL, C1: nothing a terminal or a log line would act on)?  Both ends
 * decide with this. */
static inline bool shn_name_valid(const uint8_t *s, size_t n)
{
	size_t i = 0, len;
	uint32_t cp;

	if (n == 0 || n > SHN_NAME_MAX_WIRE)
		return false;
	while (i < n) {
		len = shu_utf8_seq(s + i, n - i, &cp);
		if (len == 0 || cp < 0x20 || (cp >= 0x7f && cp <= 0x9f))
			return false;   /* not UTF-8 (util/utf8.h), C0, DEL, C1 */
		i += len;
	}
	return true;
}

/* STATS request: the header alone (the document as always), or this, to a
 * broker that set SHN_HELLO_F_STATS_FLAGS.  Reply: as for the header alone
 * (chunks); -EINVAL for a flag it does not know or reserved not 0. */
struct shn_msg_stats {
	struct shn_msg_hdr hdr;
	uint32_t flags;     /* SHN_STATS_F_* */
	uint32_t reserved;
};
/* add "subscriptions": every filter, and per key or prefix its ports
 * (docs/protocol.md; bounded: SHN_STATS_SUBS_MAX entries per list) */
#define SHN_STATS_F_SUBSCRIPTIONS 1u
#define SHN_STATS_SUBS_MAX 10000u

/* STATS reply chunk: text[len] of a JSON document; chunks arrive in order,
 * the last one has SHN_STATS_LAST in flags. */
struct shn_msg_stats_reply {
	struct shn_msg_hdr hdr;
	uint32_t flags;
	uint32_t len;
	char     text[];
};
#define SHN_STATS_LAST 1u

/* SYNC_DONE (broker -> publisher, unsolicited, hdr.id 0): every matching
 * subscription consumed the SYNC batch batch_id (hdr.status 0), or a sink
 * answered SHN_CALLBACK_DISCONTINUE and the rest were skipped (hdr.status
 * SHN_SYNC_CANCELED_WIRE).  Sent once per SYNC batch while the publisher is
 * connected. */
struct shn_msg_sync_done {
	struct shn_msg_hdr hdr;
	uint64_t batch_id;
};
#define SHN_SYNC_CANCELED_WIRE 1
/* hdr.status -EACCES: the batch was refused whole (an [acl] rule: the
 * publisher may not publish one of its keys); nobody saw it. */

/* ---- the direct path (docs/direct-path.md) ----------------------------- */

/* DIRECT_SETUP: sent once, after a HELLO whose reply set
 * SHN_HELLO_F_DIRECT, before the client publishes or subscribes.  fanout
 * (1..SHN_DIRECT_FANOUT_MAX) is the most ports the client's library writes
 * one batch to directly (SHMNOTIFY_DIRECT_FANOUT): the broker offers a
 * direct ring only for a batch that reached no more ports than that, since
 * a wider one stays on the broker path and its rings would cost both sides
 * for nothing.  Another fanout, or reserved not 0, is a protocol error.  Reply
 * (status 0) fds: [0] filter table segment (read-only, table_size bytes,
 * struct shn_ftab_hdr at 0), [1] this client's port map (read-only,
 * SHN_PMAP_SEG_SIZE bytes).  A second DIRECT_SETUP, or one from a client
 * that was not granted SHN_HELLO_F_DIRECT, is a protocol error. */
struct shn_msg_direct_setup {
	struct shn_msg_hdr hdr;
	uint32_t fanout;
	uint32_t reserved;
};
#define SHN_DIRECT_FANOUT_MAX 64u

struct shn_msg_direct_setup_reply {
	struct shn_msg_hdr hdr;
	uint64_t table_size;
	uint32_t pmap_size;
	uint32_t reserved;
};
enum { SHN_DSETUP_FD_TABLE, SHN_DSETUP_FD_PMAP, SHN_DSETUP_NFDS };

/* DIRECT_OPEN (broker -> client, unsolicited, hdr.id 0): one per side of a
 * new direct ring.  The broker queues the publisher's first, before it
 * stamps the port map (so a publisher that sees the slot live finds the
 * message in its socket or on its way: io_uring sends asynchronously),
 * the subscriber's right after.
 *
 * role SHN_DIRECT_PUBLISHER, fds: [0] ring segment (rw: prod line, stats,
 * data), [1] consumer-line segment (read-only), [2] the port's consumer
 * segment (read-only: the port's sleep word, shn_ring_cons.sleep_seq at 0),
 * [3] the port's eventfd (write it to wake the port).  slot indexes the
 * publisher's port map; peer_client_id is the port owner's; overflow is the
 * port's (SHN_OVERFLOW_*_WIRE: BLOCK waits on the HELLO room eventfd).
 *
 * role SHN_DIRECT_SUBSCRIBER, fds: [0] ring segment (read-only, sealed),
 * [1] consumer-line segment (rw).  No room eventfd: a direct ring's
 * publisher never sleeps for room (SHN_OVERFLOW_BLOCK spins while the reader
 * makes progress, then takes the broker path), so room_head stays 0 and
 * the reader releases its head with no fence (version 6).  slot indexes the
 * port's direct rings (< direct-rings-per-port); peer_client_id,
 * sender_pid and sender_uid are the publisher's, from SO_PEERCRED: the
 * reader stamps them on every note of the ring.  open_gen is the lowest gen
 * a record of this ring may carry (shn_direct_limits.min_gen). */
struct shn_msg_direct_open {
	struct shn_msg_hdr hdr;
	uint32_t role;            /* SHN_DIRECT_PUBLISHER or SHN_DIRECT_SUBSCRIBER */
	uint32_t slot;
	uint32_t port_id;
	uint32_t ring_id;         /* broker-wide, never reused while the broker runs */
	uint32_t capacity;        /* data bytes of the ring */
	uint32_t overflow;        /* the port's SHN_OVERFLOW_*_WIRE */
	uint64_t peer_client_id;
	uint64_t open_gen;
	int32_t  sender_pid;      /* SUBSCRIBER only; 0 for PUBLISHER */
	uint32_t sender_uid;      /* SUBSCRIBER only; 0 for PUBLISHER */
};
#define SHN_DIRECT_PUBLISHER  1u
#define SHN_DIRECT_SUBSCRIBER 2u
enum { SHN_DOPEN_FD_RING, SHN_DOPEN_FD_CONS, SHN_DOPEN_FD_PORT_CONS, SHN_DOPEN_FD_PORT_EVENT };
#define SHN_DOPEN_PUB_NFDS 4
#define SHN_DOPEN_SUB_NFDS 2

/* DIRECT_CLOSE.  Broker -> client (unsolicited, hdr.id 0, status: why, as
 * -errno: -ECONNRESET the peer went away, -EPIPE the filter or port ended,
 * -EBADMSG the publisher was cut off): the publisher stops writing the ring
 * at once (its port map already says so); the subscriber delivers what the
 * ring holds, unmaps it and answers with a DIRECT_CLOSE request.
 * Client -> broker (request, reply header only): the subscriber drained and
 * unmapped the ring (the broker frees it now), or the publisher found the
 * ring broken (a consumer head that is not valid, or BLOCK waited longer
 * than [limits] direct-block-ms): the broker closes it and the pair takes
 * the broker path.  A ring_id the client does not hold: status -ENOENT. */
struct shn_msg_direct_close {
	struct shn_msg_hdr hdr;
	uint32_t role;
	uint32_t slot;
	uint32_t port_id;
	uint32_t ring_id;
};

/* DIRECT_FAULT (subscriber -> broker): the ring in slot of port_id held a
 * record shn_direct_record_check() (or the library's filter hook) refused;
 * the reader stopped reading it.  The broker counts a ring error against the
 * publisher, cuts it off and closes its direct rings.  Reply: header only.
 * A port, slot or ring_id the client does not hold is a protocol error. */
struct shn_msg_direct_fault {
	struct shn_msg_hdr hdr;
	uint32_t port_id;
	uint32_t slot;
	uint32_t ring_id;
	uint32_t reserved;   /* 0 */
};

/* Generic reply with no body (PORT_CLOSE, SUBSCRIBE, UNSUBSCRIBE, errors). */
struct shn_msg_reply {
	struct shn_msg_hdr hdr;
};

/* ---- segments --------------------------------------------------------- */

#define SHN_KEY_MAX_WIRE  256u
#define SHN_DATA_MAX_WIRE 65536u
#define SHN_EV_SYSTEM_WIRE 0xf0000000u
#define SHN_EV_ALL_WIRE    0x0fffffffu  /* every application event bit */
#define SHN_EV_OVERFLOW_WIRE     (1u << 28)  /* = SHN_EV_OVERFLOW */
#define SHN_EV_HANDLE_CLOSE_WIRE (1u << 31)  /* = SHN_EV_HANDLE_CLOSE */
#define SHN_OVERFLOW_DROP_WIRE  0u           /* shn_msg_port_open.overflow */
#define SHN_OVERFLOW_BLOCK_WIRE 1u

/* Publish ring segment (client writes prod line and data; broker writes
 * cons line):  [0] struct shn_ring_prod  [64] struct shn_ring_cons
 *              [SHN_RING_HDR_SIZE] data, capacity bytes. */
#define SHN_PUB_PROD_OFF 0u
#define SHN_PUB_CONS_OFF 64u

/* Delivery ring segment (broker writes; client maps read-only):
 *   [0] struct shn_ring_prod   [SHN_RING_HDR_SIZE] data.
 * Consumer segment (client writes): [0] struct shn_ring_cons. */
#define SHN_DEL_PROD_OFF 0u
#define SHN_CONS_SEG_SIZE 4096u

/* A delivered record flagged SHN_DEL_SYNC is part of a synchronous notify:
 * once the client consumed it (shn_port_get handed out its last note, or
 * shn_port_dispatch ran every sink on it) it stores status, then token
 * (release), in this line at SHN_SYNC_ACK_OFF of the consumer segment, and
 * writes its doorbell.  status: 0 consumed, 1 a sink answered
 * SHN_CALLBACK_DISCONTINUE.  Client writes; broker reads, untrusted. */
#define SHN_DEL_SYNC 1u
#define SHN_SYNC_ACK_OFF 64u
struct shn_sync_ack {
	alignas(SHN_CACHELINE) _Atomic uint32_t status;
	_Atomic uint32_t token;
};

/* Broker segment, one per broker, read-only to clients. */
#define SHN_PREFIX_LEN_WORDS 4   /* 256 bits: prefix lengths 1..SHN_KEY_MAX_WIRE */
struct shn_broker_shm {
	uint32_t magic;           /* SHN_BROKER_SHM_MAGIC */
	uint32_t version;         /* SHN_PROTO_VERSION */
	int32_t  pid;
	uint32_t flags;           /* SHN_BROKER_F_*, set before the segment is sealed */
	/* broker writes: odd while the broker loop sleeps.  A publisher that
	 * published (store tail, full fence) and then reads an odd value it
	 * has not rung for yet writes its doorbell. */
	alignas(SHN_CACHELINE) _Atomic uint32_t sleep_seq;
	/* Interest summary ("nobody listening costs nothing"), broker writes:
	 * any_key_subs counts live any-key subscriptions (then every key is
	 * wanted); otherwise bit (XXH3_64bits(key) & (SHN_INTEREST_BITS - 1))
	 * of the bitmap at SHN_INTEREST_OFF is set while some subscription's
	 * key hashes there.  The broker sets a bit (release) before it replies
	 * to SUBSCRIBE and clears it only when no subscription needs it. */
	alignas(SHN_CACHELINE) _Atomic uint32_t any_key_subs;
	/* With SHN_BROKER_F_LIMITS: the broker's configured maxima ([limits]
	 * max-key-size, max-data-size), at most the protocol's.  A publish
	 * record beyond them is a ring error, so the library refuses such a
	 * notification with -EMSGSIZE before writing it. */
	alignas(SHN_CACHELINE) uint32_t max_key_len;
	uint32_t max_data_len;
	/* With SHN_BROKER_F_PREFIX, broker writes: the prefix lengths in use.
	 * Bit p - 1 (word (p - 1) / 64) is set while some prefix filter
	 * (SHN_SUB_PREFIX) of p bytes is live; each such prefix also sets
	 * bit XXH3_64bits(prefix) of the interest bitmap, as a key does.
	 * The broker sets the prefix's bit, then its length's (both release),
	 * before it replies to SUBSCRIBE, and clears a length only when no
	 * prefix of that length is left.  A publisher tests hash(key), then
	 * hash(key[0..p)) for each length p in use with p <= key_len. */
	alignas(SHN_CACHELINE) _Atomic uint64_t prefix_lens[SHN_PREFIX_LEN_WORDS];
};
#define SHN_BROKER_SHM_MAGIC 0x4b524253u /* "SBRK" */
#define SHN_BROKER_F_INTEREST 1u  /* the broker keeps the interest summary */
#define SHN_BROKER_F_LIMITS   2u  /* max_key_len and max_data_len are set */
#define SHN_BROKER_F_PREFIX   4u  /* prefix_lens is kept (prefix filters exist) */
#define SHN_INTEREST_OFF     4096u
#define SHN_INTEREST_BITS    (1u << 19)   /* 64 KiB of bitmap */
#define SHN_BROKER_SHM_SIZE  (SHN_INTEREST_OFF + SHN_INTEREST_BITS / 8)

/* Is some subscriber possibly interested in a key of hash h?  map is the
 * bitmap (64-bit words) at SHN_INTEREST_OFF of the broker segment. */
static inline bool shn_interest_test(const struct shn_broker_shm *b,
				     const _Atomic uint64_t *map, uint64_t h)
{
	uint32_t bit = (uint32_t)(h & (SHN_INTEREST_BITS - 1));

	if (atomic_load_explicit(&b->any_key_subs, memory_order_acquire) != 0)
		return true;
	return (atomic_load_explicit(&map[bit / 64], memory_order_acquire) >> (bit % 64)) & 1u;
}

/* Is bit h of the interest bitmap set (any_key_subs not looked at)? */
static inline bool shn_interest_bit(const _Atomic uint64_t *map, uint64_t h)
{
	uint32_t bit = (uint32_t)(h & (SHN_INTEREST_BITS - 1));

	return (atomic_load_explicit(&map[bit / 64], memory_order_acquire) >> (bit % 64)) & 1u;
}

/* ---- ring records ----------------------------------------------------- */

#define SHN_REC_BATCH    2u  /* publish ring: one published batch */
#define SHN_REC_DELIVERY 3u  /* delivery ring: one delivered batch */

/* Publish ring: a batch record is this header then count notes. */
struct shn_pub_batch {
	struct shn_rec_hdr h;     /* type SHN_REC_BATCH, len = whole record */
	uint32_t count;           /* >= 1 */
	uint32_t flags;           /* 0 or SHN_PUB_SYNC */
	uint64_t batch_id;        /* per-client, increasing from 1 */
	uint64_t time_ns;         /* CLOCK_MONOTONIC at publish */
	uint64_t gen;             /* 0, or (SHN_HELLO_F_DIRECT) the filter-table
	                             generation the batch was matched at: the broker
	                             skips each port fed directly by this publisher
	                             at that generation (struct shn_pmap_slot) */
};
#define SHN_PUB_SYNC 1u      /* SHN_NOTIFY_SYNC: answer with SYNC_DONE */
/* Each note: this header, key_len key bytes, data_len data bytes, zero pad
 * to a multiple of 8. */
struct shn_pub_note {
	uint32_t event;
	uint16_t key_len;
	uint16_t reserved;
	uint32_t data_len;
	uint32_t reserved2;
};

/* Delivery ring: a delivered batch. */
struct shn_del_batch {
	struct shn_rec_hdr h;     /* type SHN_REC_DELIVERY; flags SHN_DEL_SYNC */
	uint32_t count;
	int32_t  sender_pid;      /* 0 for system events */
	uint32_t sender_uid;
	uint32_t sync_token;      /* with SHN_DEL_SYNC: acknowledge with this */
	uint64_t batch_id;
	uint64_t time_ns;
};
/* Delivery ring of a port whose owner was granted SHN_HELLO_F_DIRECT: a
 * user batch comes as this record (type SHN_REC_DELIVERY2), which names its
 * publisher, so the reader can merge it with that publisher's direct ring
 * in order (docs/direct-path.md).  System-event batches stay
 * SHN_REC_DELIVERY.  The notes follow at sizeof(struct shn_del_batch2). */
#define SHN_REC_DELIVERY2 5u
struct shn_del_batch2 {
	struct shn_del_batch b;   /* b.h.type SHN_REC_DELIVERY2 */
	uint64_t client_id;       /* the publisher's (HELLO reply client_id) */
	uint32_t ring_id;         /* 0, or the direct ring this publisher had to
	                             this port when the broker routed the batch:
	                             its DIRECT_OPEN was sent before, so a reader
	                             that does not hold it yet finds it in its
	                             socket, and must, before it delivers this
	                             batch (older batches may be in that ring) */
	uint32_t reserved;        /* 0 */
};
struct shn_del_note {
	uint32_t event;
	uint16_t key_len;
	uint16_t reserved;
	uint32_t data_len;
	uint32_t reserved2;
	uint64_t conn;
	uint64_t seq;             /* 0 for system events */
};

/* A gap report (shn_notify_gap): a publish note whose event is
 * SHN_EV_OVERFLOW_WIRE alone, with data_len 8: a little-endian uint64_t,
 * the number of notifications of its key lost before they reached this
 * host, never 0.  The broker delivers it as SHN_EV_OVERFLOW, seq 0, to
 * every subscription that takes the key, whatever its event mask.  Reads
 * the count of such a note whose bounds were checked. */
static inline uint64_t shn_gap_count(const struct shn_pub_note *pn)
{
	const uint8_t *d = (const uint8_t *)(pn + 1) + pn->key_len;
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = (v << 8) | d[i];
	return (v);
}

static inline uint32_t shn_pub_note_size(uint32_t key_len, uint32_t data_len)
{
	return (uint32_t)SHN_ALIGN8(sizeof(struct shn_pub_note) + key_len + data_len);
}

static inline uint32_t shn_del_note_size(uint32_t key_len, uint32_t data_len)
{
	return (uint32_t)SHN_ALIGN8(sizeof(struct shn_del_note) + key_len + data_len);
}

_Static_assert(sizeof(struct shn_msg_hdr) == 16, "hdr");
_Static_assert(sizeof(struct shn_msg_hello_reply) == 40, "hello reply");
_Static_assert(sizeof(struct shn_msg_pub_check) == 24, "pub check");
_Static_assert(sizeof(struct shn_msg_set_name) == 24, "set name");
_Static_assert(sizeof(struct shn_broker_shm) <= SHN_INTEREST_OFF, "broker segment header");
_Static_assert(SHN_PREFIX_LEN_WORDS * 64 == SHN_KEY_MAX_WIRE, "a bit per prefix length");
_Static_assert(sizeof(struct shn_pub_batch) == 40, "pub batch");
_Static_assert(sizeof(struct shn_pub_note) == 16, "pub note");
_Static_assert(sizeof(struct shn_del_batch) == 40, "del batch");
_Static_assert(sizeof(struct shn_del_note) == 32, "del note");
_Static_assert(sizeof(struct shn_del_batch2) == 56, "del batch2");
_Static_assert(sizeof(struct shn_msg_direct_open) == 64, "direct open");
_Static_assert(sizeof(struct shn_msg_direct_close) == 32, "direct close");
_Static_assert(sizeof(struct shn_msg_direct_fault) == 32, "direct fault");
_Static_assert(sizeof(struct shn_msg_direct_setup) == 24, "direct setup");
_Static_assert(sizeof(struct shn_msg_direct_setup_reply) == 32, "direct setup reply");
_Static_assert(SHN_DOPEN_PUB_NFDS <= SHN_MSG_MAX_FDS, "fds");
/* direct.h restates these so that it needs nothing but libc */
_Static_assert(SHN_DIRECT_EV_SYSTEM == SHN_EV_SYSTEM_WIRE, "system bits");
_Static_assert(offsetof(struct shn_direct_batch, batch_id) == offsetof(struct shn_del_batch, batch_id) &&
	       offsetof(struct shn_direct_batch, time_ns) == offsetof(struct shn_del_batch, time_ns) &&
	       offsetof(struct shn_direct_batch, sender_pid) == offsetof(struct shn_del_batch, sender_pid),
	       "direct batch starts as del batch");

#endif
