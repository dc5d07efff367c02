/* SPDX-License-Identifier: MIT */
/*
 * shmnotify.h - the public interface of libshmnotify.
 *
 * A client connects to the broker (shmnotifyd) over a Unix socket, opens
 * ports (each a shared-memory delivery ring the broker writes, which wakes
 * the port's reader through an eventfd when it sleeps), registers filters on
 * them, and publishes batches of notifications through its own
 * shared-memory publish ring.  Under load neither side makes a system call
 * per notification.
 *
 * Conventions (liburing's): functions return 0 or a count on success and a
 * negative errno value on failure; shn_strerror() names every value
 * returned.  The exceptions are documented next to each function.  The
 * rules the broker and the library keep are numbered in docs/design.md
 * ("rule 9" below is that document's rule 9); man shmnotify(3) is the
 * overview.
 *
 * Threads.  Per object, which calls may run on which threads at once (the
 * library takes its own locks; none of these is callable from a signal
 * handler):
 *
 *   process-wide   shn_connect, shn_default_socket_path, shn_strerror: any
 *                  thread, any time.
 *   a client       shn_notify, shn_notify_gap, shn_set_sync_timeout,
 *                  shn_stats_json(_ex), shn_set_name, shn_port_open,
 *                  shn_subscribe, shn_advise, shn_unsubscribe: any threads,
 *                  several at once.  Each batch is written whole; the
 *                  batches of one thread keep their order; between threads
 *                  they go in in the order they found room.  A thread that
 *                  waits (for ring room, or for a SHN_NOTIFY_SYNC batch to
 *                  be served) holds up no other thread's call.
 *                  shn_disconnect: last, when no other thread is inside a
 *                  function on the client or on one of its ports.
 *   a port         shn_port_get, shn_port_dispatch: one thread at a time per
 *                  port; different ports may be read by different threads
 *                  at once.  shn_port_unblock, shn_port_fd: any thread, any
 *                  time while the port is open, also while another thread
 *                  waits in get or dispatch on it.  shn_port_close: when no
 *                  other thread is inside get, dispatch or unblock on it.
 *   a subscription shn_subscribe and shn_advise on a port, shn_unsubscribe
 *   (shn_conn)     of its subscriptions: any thread, also while another
 *                  thread reads that port, and from inside an advise sink.
 *                  Two threads ending the same subscription: one gets 0,
 *                  the other -ENOENT.
 *   an advise sink runs in the thread that calls shn_port_dispatch; it may
 *                  call shn_subscribe, shn_advise, shn_unsubscribe and
 *                  shn_notify (not SHN_NOTIFY_SYNC for a batch this very
 *                  thread would have to dispatch), and use other ports; not
 *                  get, dispatch or close on its own port, nor
 *                  shn_disconnect.
 *   notification   the shn_notification array and its key and data views
 *   views          from shn_port_get may be read from any thread until the
 *                  next get, dispatch or close on that port (after which
 *                  the ring memory they point into is reused); the array an
 *                  advise sink receives is valid during the call only.
 *
 * Read in one sitting: types, constants, then functions grouped by object.
 */
#ifndef SHMNOTIFY_H
#define SHMNOTIFY_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SHN_VERSION_MAJOR 0
#define SHN_VERSION_MINOR 1
#define SHN_VERSION_PATCH 0

typedef struct shn_client shn_client;
typedef struct shn_port   shn_port;
typedef uint64_t          shn_conn;          /* 0 is never a valid connection number */

#define SHN_KEY_MAX   256                    /* bytes in a key */
#define SHN_DATA_MAX  65536                  /* bytes of payload in one notification */
#define SHN_NAME_MAX  64                     /* bytes in a client's name (shn_set_name) */

/* Event bits.  Bits 0-27 belong to the application; a filter matches a
 * notification when (event & mask) != 0.  Bits 28-31 are system events: the
 * broker and the library generate them, shn_notify() refuses them, and they
 * reach a port whatever its filters. */
#define SHN_EV_OVERFLOW      (1u << 28)      /* data: little-endian uint64_t, count lost */
#define SHN_EV_BROKER_STATE  (1u << 29)      /* the broker went away */
#define SHN_EV_RECONNECT     (1u << 30)      /* reconnected, filters restored */
#define SHN_EV_HANDLE_CLOSE  (1u << 31)      /* subscription `conn` ended */
#define SHN_EV_ALL           0x0fffffffu     /* every application event bit */
#define SHN_EV_SYSTEM        0xf0000000u     /* every system event bit */

/* shn_notify() flags */
#define SHN_NOTIFY_SYNC      1u              /* wait until every matching sink consumed it */
#define SHN_NOTIFY_NONBLOCK  2u              /* -EAGAIN instead of waiting for ring room */

/* shn_port_options.overflow */
#define SHN_OVERFLOW_DROP    0u              /* default: drop for this port, count, report */
#define SHN_OVERFLOW_BLOCK   1u              /* back-pressure the publishers feeding it */

/* shn_subscribe flags */
#define SHN_SUBSCRIBE_PREFIX  1u             /* key is a prefix: a notification matches when
                                                its key starts with those bytes, byte for
                                                byte (zero bytes included; a key equal to
                                                the prefix matches, a shorter one never).
                                                An empty prefix (key NULL or key_len 0)
                                                takes every key.  A port still gets each
                                                note once, conn the oldest matching filter
                                                whatever their kinds; an advise sink gets
                                                the keys under its prefix.  Not with
                                                SHN_SUBSCRIBE_MONITOR (-EINVAL).  Restored
                                                as a prefix on reconnect. */
#define SHN_SUBSCRIBE_MONITOR 0x100u         /* every notification the broker routes,
                                                whatever its key (key NULL); root or the
                                                broker's own uid only (-EACCES) */

#define SHN_NOTIFY_CANCELED  1               /* shn_notify result with SHN_NOTIFY_SYNC */
#define SHN_CALLBACK_CONTINUE    0u
#define SHN_CALLBACK_DISCONTINUE 1u

typedef struct shn_port_options {
	uint32_t capacity;        /* delivery ring bytes; 0: the broker's default */
	uint32_t overflow;        /* SHN_OVERFLOW_DROP (default) or SHN_OVERFLOW_BLOCK */
} shn_port_options;

typedef struct shn_notification {
	uint32_t    event;        /* event bits */
	uint16_t    key_len;
	uint32_t    data_len;
	const void *key;          /* what the notification is about: a binary key
	                             naming an object (1..SHN_KEY_MAX bytes, compared
	                             byte for byte; NULL for system events) */
	const void *data;         /* opaque payload, 0..SHN_DATA_MAX bytes */
	/* set by the broker on delivery, ignored on publish: */
	shn_conn    conn;         /* the subscription that matched */
	uint64_t    seq;          /* per-port delivery sequence, from 1; 0 for system events */
	uint64_t    batch_id;     /* per-publisher batch number, from 1 */
	uint32_t    batch_index, batch_count;  /* position in the delivered batch, its size */
	int32_t     sender_pid;   /* from SO_PEERCRED: trustworthy */
	uint32_t    sender_uid;
	uint64_t    time_ns;      /* CLOCK_MONOTONIC at publish */
} shn_notification;

typedef unsigned (*shn_sink_fn)(void *ctx, const shn_notification *batch, size_t n);

/* --- client ------------------------------------------------------------ */

/* Connect to the broker at socket_path; NULL means $SHMNOTIFY_SOCKET, then
 * the default path (shn_default_socket_path()).  -ENOENT/-ECONNREFUSED: no
 * broker listens there; -EPROTO: the broker speaks another protocol version. */
int  shn_connect(const char *socket_path, shn_client **out);

/* Close every port of the client and the connection.  Batches already
 * accepted by shn_notify() are still routed (docs/design.md, rule 9).  No
 * other thread may be inside a function on c or its ports. */
void shn_disconnect(shn_client *c);

/* The default socket path (what shn_connect(NULL) uses when
 * $SHMNOTIFY_SOCKET is unset), written into buf.  Returns its length or
 * -ENAMETOOLONG. */
int  shn_default_socket_path(char *buf, size_t len);

/* Name the client for the broker's statistics (shmnotify stats: JSON
 * "name", the table's NAME column, an OpenMetrics label), e.g. "indexer" or
 * "shmnotify listen".  name: 1..SHN_NAME_MAX bytes of UTF-8 without control
 * characters, NUL-terminated; NULL or "" removes the name.  The client
 * keeps it and sends it again to every broker it reconnects to.  0 once
 * the broker has it; -EINVAL: a bad name (nothing changed); -EOPNOTSUPP:
 * this broker is too old to take names, -ENOTCONN: the broker is gone (the
 * name is kept for the next broker either way).  Safe from several threads. */
int  shn_set_name(shn_client *c, const char *name);

/* --- ports ------------------------------------------------------------- */

/* Open a port.  opt NULL: defaults.  -EINVAL: a capacity above the broker's
 * maximum or an unknown overflow policy. */
int  shn_port_open(shn_client *c, const shn_port_options *opt, shn_port **out);

/* Close a port: its subscriptions end, its memory is released.  No other
 * thread may be inside shn_port_get() on it (unblock and join it first). */
int  shn_port_close(shn_port *p);

/* A descriptor to put in your own poll/epoll/select/io_uring loop: an epoll
 * instance that watches the port's eventfd, owned by the library and the
 * same across a broker loss and reconnection.  Wait for it to be readable
 * (POLLIN); do not read, write or close it.  It becomes readable when
 * notifications arrive after shn_port_get() (or dispatch) last found the
 * port empty -- an empty get arms it, so drain with a timeout of 0 until
 * -ETIMEDOUT, then wait -- and on shn_port_unblock(), a broker loss and a
 * reconnection.  The first call adds the port's eventfd to the epoll (its
 * error, e.g. -ENOMEM, comes back then; call again); later calls return the
 * same descriptor. */
int  shn_port_fd(const shn_port *p);

/* Receive up to max notifications.  Returns the count (>= 1), -ETIMEDOUT
 * when nothing arrived within timeout_ms (0: poll, -1: no limit), or
 * -ECANCELED after shn_port_unblock().  One call never returns notifications
 * of two delivered batches.  Key and data pointers are zero-copy views that
 * stay valid until the next get, dispatch or close on this port. */
int  shn_port_get(shn_port *p, shn_notification *out, size_t max, int timeout_ms);

/* Like shn_port_get() with a timeout of 0, for a reader that spins on the
 * port and never waits on shn_port_fd(): -EAGAIN when nothing is there, and
 * an empty port is left unarmed, so that no publisher and no broker pays a
 * wake-up (an eventfd write, and the drain in the next get) per
 * notification.  After -EAGAIN, shn_port_fd() does not become readable on
 * new data: before waiting on it, call shn_port_get() with a timeout of 0
 * until it returns -ETIMEDOUT.  -ECANCELED after shn_port_unblock(). */
int  shn_port_try_get(shn_port *p, shn_notification *out, size_t max);

/* Make an outstanding shn_port_get() (or dispatch) on p return -ECANCELED,
 * or, if none is outstanding, the next one.  Callable from any thread while
 * the port is open; not from a signal handler (it takes a lock). */
int  shn_port_unblock(shn_port *p);

/* Wait like shn_port_get() (same timeout and cancel rules), then run the
 * port's advise sinks in the calling thread: each sink is called once per
 * delivered batch with the notifications of that batch matching its own
 * filter (conn set to its own number, batch_index/batch_count describing
 * that subset), oldest sink first, skipping a sink with none.  System events
 * go to every sink, except SHN_EV_HANDLE_CLOSE, which goes to the sink whose
 * subscription ended.  Handles every batch already waiting (up to 64).
 * After a shn_port_get() that returned part of a batch, the sinks get the
 * rest of that batch only: every notification is handed out once, whichever
 * mix of get and dispatch reads it.
 * Returns the number of notifications it consumed (>= 1: those given to
 * sinks, those no sink took, system events), or -ETIMEDOUT / -ECANCELED /
 * -errno.  Callbacks may call shn_advise and
 * shn_unsubscribe, but not get or dispatch on the same port. */
int  shn_port_dispatch(shn_port *p, int timeout_ms);

/* --- subscriptions ----------------------------------------------------- */

/* Register a filter on port p: notifications whose key equals key (key_len
 * bytes; key NULL and key_len 0 for every key) and whose event has a bit in
 * event_mask.  flags: 0; SHN_SUBSCRIBE_PREFIX: key is a prefix, the filter
 * takes every key that starts with it (see the flag; an [acl] rule must let
 * this user subscribe to every key under it, else -EACCES); or
 * SHN_SUBSCRIBE_MONITOR (with key NULL) to see all traffic, as `shmnotify
 * monitor` does.  *conn receives a non-zero connection number,
 * never reused within this client's life.  Returns once the filter is
 * active. */
int  shn_subscribe(shn_port *p, const void *key, size_t key_len, uint32_t event_mask,
                   unsigned flags, shn_conn *conn);

/* Like shn_subscribe(), with an advise sink: shn_port_dispatch() calls fn
 * with ctx for this subscription's notifications.  fn must not be NULL. */
int  shn_advise(shn_port *p, const void *key, size_t key_len, uint32_t event_mask,
                unsigned flags, shn_sink_fn fn, void *ctx, shn_conn *conn);

/* End subscription conn: returns once the broker removed the filter; the
 * port then receives SHN_EV_HANDLE_CLOSE for conn after the subscription's
 * last notification.  -ENOENT: conn is not a live subscription.  The
 * client's record follows the broker's answer: the subscription ended on
 * 0, -ENOENT and -ENOTCONN (the broker is gone: it is not restored when the
 * library reconnects, and no HANDLE_CLOSE comes); on any other error the
 * broker kept the filter, the subscription stays live, and the call may be
 * made again. */
int  shn_unsubscribe(shn_client *c, shn_conn conn);

/* --- publishing -------------------------------------------------------- */

/* Publish n notifications as one batch.  Only event, key_len, data_len, key
 * and data are read.  Returns 0 once the batch is accepted into the publish
 * ring (asynchronous: before any subscriber sees it), or at once when no
 * subscription can match any of its keys (the broker's interest summary:
 * nobody listening costs nothing).  With SHN_NOTIFY_SYNC it returns once
 * every matching sink, in every process, consumed the batch (pull ports:
 * shn_port_get returned it; advise sinks: the callback returned), sinks
 * served one after another in subscription order; SHN_NOTIFY_CANCELED when a
 * sink answered SHN_CALLBACK_DISCONTINUE (the rest never see the batch).
 * Never call it with SYNC from the only thread that dispatches a matching
 * port of the same process: it would wait for itself.  -EINVAL: a bad key,
 * an event with no application bit or with a system bit; -EMSGSIZE: the
 * batch can never fit the ring; -EAGAIN: ring full and SHN_NOTIFY_NONBLOCK;
 * -ENOTCONN: the broker is gone (the library reconnects by itself; retry
 * later with the same client).  Several threads may publish at once: see
 * "Threads" above for the order of their batches; a thread that waits for
 * room holds up no other, so -EAGAIN (NONBLOCK) and a batch nobody watches
 * come back at once while it waits. */
int  shn_notify(shn_client *c, const shn_notification *batch, size_t n, unsigned flags);

/* Report that lost notifications of key were lost before they reached this
 * broker (a bridge that saw a hole in a remote stream, shmnotify-bridge(1)).
 * The broker delivers one SHN_EV_OVERFLOW note, data the little-endian
 * uint64_t lost, key set, seq 0, sender_pid/uid this client's, to every
 * subscription whose filter takes the key (monitors and any-key filters
 * too), whatever its event mask, in publish order with this client's other
 * batches.  It is checked like a publish to key: the same ACL, key limits,
 * interest check (nobody subscribed: returns 0 at once).  flags: 0 or
 * SHN_NOTIFY_NONBLOCK.  -EINVAL: no key, lost 0, other flags. */
int  shn_notify_gap(shn_client *c, const void *key, size_t key_len, uint64_t lost,
                    unsigned flags);

/* Bound the wait of shn_notify(SHN_NOTIFY_SYNC): after timeout_ms it
 * returns -ETIMEDOUT, while delivery to the remaining sinks goes on (the
 * batch was accepted; only the waiting stops).  -1: no limit (default). */
int  shn_set_sync_timeout(shn_client *c, int timeout_ms);

/* --- introspection ----------------------------------------------------- */

/* Ask the broker for its statistics as one JSON document (clients with
 * published/delivered/dropped counts, ports with ring bytes used and
 * capacity, broker-wide counters; see docs/protocol.md).  *json is
 * malloc()ed and NUL-terminated: free() it.  Returns its length or -errno. */
int  shn_stats_json(shn_client *c, char **json);

/* shn_stats_json_ex flags */
#define SHN_STATS_SUBSCRIPTIONS 1u           /* add "subscriptions": every filter (its
                                                client, port, conn, kind exact/prefix/any,
                                                key, mask) and per key or prefix how many
                                                ports and filters watch it; each list at
                                                most 10000 entries, with its total and
                                                "truncated" (docs/protocol.md) */

/* shn_stats_json() with flags: 0 (the same document) or
 * SHN_STATS_SUBSCRIPTIONS.  -EINVAL: an unknown flag; -EOPNOTSUPP: this
 * broker is too old to take flags (shn_stats_json still works); -EACCES:
 * the subscriptions only for root or the broker's own uid. */
int  shn_stats_json_ex(shn_client *c, unsigned flags, char **json);

/* --- errors ------------------------------------------------------------ */

/* A message for every value this library returns (0, counts, -errno). */
const char *shn_strerror(int err);

#ifdef __cplusplus
}
#endif

#endif /* SHMNOTIFY_H */
