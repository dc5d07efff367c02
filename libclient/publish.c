/* SPDX-License-Identifier: MIT */
/*
 * publish.c - shn_notify(): one batch, one record, one release of the tail.
 *
 * The hot path makes no system call: the broker is rung only when it
 * announced it sleeps (its sleep word is odd and we have not rung for that
 * value yet), and a publisher sleeps only when the ring is full.
 *
 * Threads: the ring has one producer, so every write to it is made under
 * the client's pub_lock -- reserve, write, publish, one batch at a time --
 * and the batches of one thread go in in call order.  Nobody sleeps with
 * pub_lock held: a publisher that finds the ring full queues on room_lock
 * (one room waiter at a time, since the ring's wait word has one sleeper)
 * and sleeps without pub_lock, so that meanwhile the other threads'
 * batches that fit go in, a SHN_NOTIFY_NONBLOCK call fails at once with
 * -EAGAIN, and a batch nobody listens to returns 0 at once.  Between
 * threads, batches therefore go in in the order they found room.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <fcntl.h>
#include <poll.h>
#include <stdbool.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/eventfd.h>

#include "acl.h"
#include "call.h"
#include "direct.h"
#include "direct_pub.h"
#include "ftab_memo.h"
#include "publish.h"

/* Header-only xxHash: the library needs no libxxhash at run time, and
 * computes exactly the broker's XXH3_64bits. */
#define XXH_INLINE_ALL
#include <xxhash.h>

/* The runs a check of a batch found (direct_pub.h): n of them, or 0 when
 * it had more than SHN__RUNS_KNOWN (or was not a user batch). */
struct batch_runs {
	uint32_t n;
	struct shn__drun r[SHN__RUNS_KNOWN];
};

/* How many notes from x on (n >= 1 of them) are like x: its key pointer,
 * key length, event and data length, and data where that length is not 0.
 * They pass every test of a note x passed, so the check tests x alone: a
 * flood's batch is one stretch, a few compares a note. */
static size_t stretch_len(const shn_notification *x, size_t n)
{
	const void *key = x->key;
	uint32_t ev = x->event, dl = x->data_len;
	uint16_t kl = x->key_len;
	size_t j = 1;

	if (dl != 0)
		while (j < n && x[j].key == key && x[j].event == ev && x[j].key_len == kl &&
		       x[j].data_len == dl && x[j].data != NULL)
			j++;
	else
		while (j < n && x[j].key == key && x[j].event == ev && x[j].key_len == kl &&
		       x[j].data_len == 0)
			j++;
	return (j);
}

/* A run of count notes that batch_size walked ends: its bytes in a direct
 * record and its form.  stretches: its stretches of one data length (the
 * last one's length is dl); items: its notes' bytes with a length word
 * each. */
static void close_run(struct shn__drun *r, size_t count, uint32_t stretches, uint32_t dl,
		      uint64_t items)
{
	r->count = (uint32_t)count;
	r->same_len = stretches == 1 ? dl : 0;
	r->bytes = shn__drun_bytes(r->count, r->same_len, items);
}

/* Validate the batch and compute its record size; note its runs (notes
 * with the key, by pointer, and the event of the note before) for the
 * direct path's plan.  A key or payload above the broker's configured
 * maximum (smaller than the protocol's) gives -EMSGSIZE: the broker would
 * take the record for a ring error. */
static int batch_size(shn_client *c, const shn_notification *batch, size_t n, bool gap,
		      uint64_t *size, struct batch_runs *runs)
{
	uint64_t sz = sizeof(struct shn_pub_batch);
	uint32_t max_key = atomic_load_explicit(&c->max_key, memory_order_relaxed);
	uint32_t max_data = atomic_load_explicit(&c->max_data, memory_order_relaxed);

	if (!gap) {
		/* every test of a note in a few compares; only a batch that
		 * fails one is walked again below for its error */
		uint32_t kmax = max_key < SHN_KEY_MAX ? max_key : SHN_KEY_MAX;
		uint32_t dmax = max_data < SHN_DATA_MAX ? max_data : SHN_DATA_MAX;
		const void *pk = NULL;
		uint32_t pkl = UINT32_MAX, pev = 0, pdl = 0;   /* no key_len is UINT32_MAX */
		uint32_t nr = 0, nstretch = 0;
		uint64_t items = 0;   /* the run's notes with a length word each */
		size_t i, start = 0, from = 0;   /* where the run and the stretch began */

		for (i = 0; i < n; i = from + stretch_len(&batch[from], n - from)) {
			const shn_notification *x = &batch[i];
			uint32_t kl = x->key_len, dl = x->data_len;

			/* a stretch of one data length ended at i: its sizes,
			 * once */
			if (i > 0) {
				sz += (uint64_t)(i - from) * shn_pub_note_size(pkl, pdl);
				items += (uint64_t)(i - from) * shn_direct_item_size(pdl);
			}
			/* event 1..SHN_EV_ALL, key_len 1..kmax: one compare
			 * each, and only where a run begins */
			if (x->key != pk || kl != pkl || x->event != pev) {
				if (x->event - 1u >= SHN_EV_ALL || x->key == NULL || kl - 1u >= kmax)
					break;
				if (nr - 1u < SHN__RUNS_KNOWN)
					close_run(&runs->r[nr - 1], i - start, nstretch, pdl, items);
				if (nr < SHN__RUNS_KNOWN) {
					runs->r[nr].first = (uint32_t)i;
					runs->r[nr].hash = 0;
				}
				nr++;
				start = i;
				items = 0;
				nstretch = 0;
				pk = x->key;
				pkl = kl;
				pev = x->event;
			}
			if (dl > dmax || (x->data == NULL && dl != 0))
				break;
			pdl = dl;
			from = i;
			nstretch++;
		}
		if (i == n) {
			sz += (uint64_t)(i - from) * shn_pub_note_size(pkl, pdl);
			items += (uint64_t)(i - from) * shn_direct_item_size(pdl);
			runs->n = 0;
			if (nr <= SHN__RUNS_KNOWN) {
				close_run(&runs->r[nr - 1], i - start, nstretch, pdl, items);
				runs->n = nr;
			}
			*size = sz;
			return (0);
		}
		sz = sizeof(struct shn_pub_batch);
	}
	runs->n = 0;
	for (size_t i = 0; i < n; i++) {
		const shn_notification *x = &batch[i];

		if (gap ? x->event != SHN_EV_OVERFLOW || x->data_len != 8
			: x->event == 0 || (x->event & SHN_EV_SYSTEM) != 0)
			return (-EINVAL);
		if (x->key == NULL || x->key_len == 0 || x->key_len > SHN_KEY_MAX)
			return (-EINVAL);
		if (x->data_len > SHN_DATA_MAX || (x->data_len != 0 && x->data == NULL))
			return (-EINVAL);
		if (x->key_len > max_key || x->data_len > max_data)
			return (-EMSGSIZE);
		sz += shn_pub_note_size(x->key_len, x->data_len);
	}
	*size = sz;
	return (0);
}

/* Does some prefix filter possibly take key?  One bit test per prefix
 * length in use (lens: the broker segment's prefix_lens) no longer than
 * the key: the prefix's hash sets its bit as a key's does. */
static bool prefix_listens(shn_client *c, const uint64_t *lens, const uint8_t *key, size_t len)
{
	for (uint32_t w = 0; w < SHN_PREFIX_LEN_WORDS && 64 * w < len; w++)
		for (uint64_t bits = lens[w]; bits != 0; bits &= bits - 1) {
			size_t p = 64 * w + (size_t)__builtin_ctzll(bits) + 1;

			if (p > len)
				break;
			if (shn_interest_bit(c->interest, XXH3_64bits(key, p)))
				return (true);
		}
	return (false);
}

/* "If no sink is registered, skip the call": does any key of the batch
 * possibly have a subscriber?  Reads the broker's interest summary; never
 * says no for a key someone subscribed to before this call began: the
 * broker set the key's (or prefix's) bit and the prefix's length before
 * that SUBSCRIBE's reply (shm/proto.h).  The first key's hash is kept in
 * runs for the direct path's plan.  Caller holds pub_lock (the summary
 * moves on reconnect). */
static bool anyone_listens(shn_client *c, const shn_notification *batch, size_t n,
			   struct batch_runs *runs)
{
	uint64_t lens[SHN_PREFIX_LEN_WORDS] = { 0 };
	bool prefixes = false;

	if (!(c->bshm->flags & SHN_BROKER_F_INTEREST))
		return (true);   /* a broker that keeps no summary */
	if (c->bshm->flags & SHN_BROKER_F_PREFIX)
		for (int w = 0; w < SHN_PREFIX_LEN_WORDS; w++) {
			lens[w] = atomic_load_explicit(&c->bshm->prefix_lens[w], memory_order_acquire);
			prefixes |= lens[w] != 0;
		}
	for (size_t i = 0; i < n; i++) {
		const shn_notification *x = &batch[i];

		uint64_t h = XXH3_64bits(x->key, x->key_len);

		if (i == 0 && runs->n != 0)
			runs->r[0].hash = h;   /* the plan's lookup needs it too */
		if (shn_interest_test(c->bshm, c->interest, h))
			return (true);
		/* a key the direct path matched at this generation is known to
		 * have a listener: no hash per prefix length */
		if (prefixes && (shn__ftab_memo_listens(c, h, x->key, x->key_len) ||
				 prefix_listens(c, lens, x->key, x->key_len)))
			return (true);
	}
	return (false);
}

static void write_record(uint8_t *dst, const shn_notification *batch, size_t n, uint32_t len,
			 uint32_t flags, uint64_t batch_id, uint64_t time_ns, uint64_t gen)
{
	struct shn_pub_batch *b = (void *)dst;
	uint8_t *w = dst + sizeof(*b);

	b->h.len = len;
	b->h.type = SHN_REC_BATCH;
	b->h.flags = 0;
	b->count = (uint32_t)n;
	b->flags = flags;
	b->batch_id = batch_id;
	b->time_ns = time_ns;
	b->gen = gen;   /* 0, or the generation the direct path matched at */
	for (size_t i = 0; i < n; i++) {
		const shn_notification *x = &batch[i];
		struct shn_pub_note *pn = (void *)w;
		uint32_t raw = (uint32_t)sizeof(*pn) + x->key_len + x->data_len;
		uint32_t sz = shn_pub_note_size(x->key_len, x->data_len);

		pn->event = x->event;
		pn->key_len = x->key_len;
		pn->reserved = 0;
		pn->data_len = x->data_len;
		pn->reserved2 = 0;
		memcpy(pn + 1, x->key, x->key_len);
		if (x->data_len)
			memcpy((uint8_t *)(pn + 1) + x->key_len, x->data, x->data_len);
		memset(w + raw, 0, sz - raw);   /* no stale bytes in the pad */
		w += sz;
	}
}

/* Sleep until the broker makes room (it writes room_fd once the ring is at
 * most half full: hysteresis), or the broker goes away.  Caller holds
 * room_lock (it is the client's one room waiter: the ring's wait word has
 * one sleeper) and pub_lock; pub_lock is dropped for the sleep, so that the
 * client's other threads publish meanwhile, and held again on return. */
static int wait_for_room(shn_client *c, uint32_t len)
{
	struct pollfd pfd[2] = {
		{ .fd = -1, .events = POLLIN },
		{ .fd = -1, .events = 0 },
	};
	uint32_t epoch = atomic_load(&c->loss_epoch);
	bool hup = false;
	int err, r;

	if (!shn_ring_prepare_wait(&c->pub, len, &err))
		return (err);
	/* Our own copies: a reconnect replaces and closes the client's
	 * descriptors under pub_lock, which we do not hold while asleep. */
	pfd[0].fd = fcntl(c->room_fd, F_DUPFD_CLOEXEC, 0);
	pfd[1].fd = pfd[0].fd < 0 ? -1 : fcntl(c->sock, F_DUPFD_CLOEXEC, 0);
	if (pfd[1].fd < 0) {
		err = -errno;
		if (pfd[0].fd >= 0)
			close(pfd[0].fd);
		shn_ring_finish_wait(&c->pub);
		return (err);
	}
	pthread_mutex_unlock(&c->pub_lock);
	do {
		r = poll(pfd, 2, -1);
	} while (r < 0 && errno == EINTR);
	err = r < 0 ? -errno : 0;
	if (r > 0 && (pfd[0].revents & POLLIN)) {
		uint64_t v;
		if (read(pfd[0].fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
			err = -errno;
	}
	if (r > 0 && (pfd[1].revents & (POLLHUP | POLLERR)))
		hup = true;
	close(pfd[0].fd);
	close(pfd[1].fd);
	pthread_mutex_lock(&c->pub_lock);
	shn_ring_finish_wait(&c->pub);   /* a no-op on a ring a reconnect brought */
	if (atomic_load(&c->loss_epoch) != epoch)
		return (-ENOTCONN);   /* the ring we waited on is gone */
	if (hup) {
		shn__broker_lost(c);   /* still the connection we waited on */
		return (-ENOTCONN);
	}
	return (err);
}

/* Queue up as the client's room waiter (the ring is full).  Lock order:
 * room_lock before pub_lock, never the other way.  0: look for room again
 * (it may have come while we queued), or -errno. */
static int become_room_waiter(shn_client *c, bool *room_waiter, uint32_t size)
{
	pthread_mutex_unlock(&c->pub_lock);
	pthread_mutex_lock(&c->room_lock);
	pthread_mutex_lock(&c->pub_lock);
	*room_waiter = true;
	if (atomic_load(&c->broker_gone))
		return (-ENOTCONN);
	if (size > shn_ring_max_record(c->pub.capacity))
		return (-EMSGSIZE);
	return (0);
}

/* Has the broker taken every batch of our publish ring (released every
 * byte)?  Only then may a batch go directly: it must not overtake one of
 * ours still on its way through the broker (docs/direct-path.md). */
static bool pub_ring_empty(shn_client *c)
{
	if (c->pub.head_cache == c->pub.tail)
		return (true);
	return (shn_ring_load_head(&c->pub) == 0 && c->pub.head_cache == c->pub.tail);
}

/* Wait for the broker to take every batch of our publish ring (spinning,
 * yielding the CPU: the broker may need it), for as long as it takes some
 * every c->dp_wait_ns.  true: it did, a batch may go directly; false: it
 * took nothing for that long (it holds a batch back for a full
 * SHN_OVERFLOW_BLOCK port), or an earlier wait ran out at the head the
 * broker still shows -- go through the broker at once, behind the rest.
 * Caller holds pub_lock. */
static bool wait_pub_taken(shn_client *c)
{
	struct shn__spin spin = { 0 };

	if (c->pub_stalled_at == c->pub.head_cache + 1 &&
	    (shn_ring_load_head(&c->pub) != 0 || c->pub_stalled_at == c->pub.head_cache + 1))
		return (false);   /* nothing taken since the last wait ran out */
	while (!pub_ring_empty(c)) {
		/* the bound is on a broker that takes nothing: one that
		 * routes our batches, however slowly, is waited for (as a
		 * full publish ring is) */
		if (!shn__spin_turn(&spin, c->pub.head_cache, c->dp_wait_ns)) {
			c->pub_stalled_at = c->pub.head_cache + 1;
			return (false);
		}
	}
	c->pub_stalled_at = 0;
	return (true);
}

/* A ring of ours is stamped open in the port map and its DIRECT_OPEN was
 * not in the socket: the broker queued the message before it stamped the
 * slot, and sends it when its loop gets to it (on io_uring one message in
 * flight per client).  Wait for it, reading the socket between naps,
 * rather than send batch after batch through the broker meanwhile: a
 * 1 -> 32 publisher sent 700 to 1,600 batches so (each copied 32 times by
 * the broker) while its 32 offers came one by one, and a broker that far
 * behind could keep it on the broker path for a whole run
 * (docs/direct-path.md).  true: that slot is known now, plan again; false:
 * the wait ran out (SHN__MAIL_WAIT_NS for the whole call, from *end), or
 * the broker went away.  Caller holds pub_lock; it is let go meanwhile. */
static bool await_mail(shn_client *c, uint64_t *end)
{
	uint32_t known = c->pmap_known;

	if (*end == 0)
		*end = shn__now_ns() + SHN__MAIL_WAIT_NS;
	while (c->pmap_known == known) {
		if (atomic_load(&c->broker_gone) || shn__now_ns() >= *end)
			return (false);
		pthread_mutex_unlock(&c->pub_lock);
		nanosleep(&(struct timespec){ .tv_nsec = 20000 }, NULL);
		shn__take_unasked(c);
		pthread_mutex_lock(&c->pub_lock);
	}
	return (true);
}

/* Write one batch: through the direct rings its notes reach (direct_pub.c)
 * and, for whatever they do not cover, through the publish ring stamped
 * with the generation matched at; or through the publish ring alone,
 * generation 0 (SYNC, gap reports, no direct path, or anything the direct
 * path cannot send exactly as the filter table says).  Caller holds
 * pub_lock (dropped and retaken while it waits for room or mail).
 * Returns 0 or -errno. */
static int publish_locked(shn_client *c, const shn_notification *batch, size_t n,
			  const struct batch_runs *runs, unsigned flags, uint32_t size,
			  struct shn__sync_wait *w, bool *room_waiter)
{
	struct shn__dplan pl;   /* not zeroed whole: port[] is read below nports only */

	pl.gen = 0;
	pl.brokered = true;
	pl.nports = 0;
	pl.nruns = 0;
	pl.full = NULL;
	pl.full_size = 0;
	int mail = 0, err;
	uint64_t mail_end = 0;   /* await_mail's deadline, set at its first wait */

	for (;;) {
		uint64_t bid = c->next_batch_id, pub_tail = c->pub.tail, t_ns;
		int route = SHN__DP_BROKER;
		bool need_pub;
		uint8_t *dst;

		if (atomic_load(&c->broker_gone))
			return (-ENOTCONN);
		if (!(flags & (SHN_NOTIFY_SYNC | SHN__NOTIFY_GAP)) && c->ftab != NULL) {
			route = shn__dpub_plan(c, batch, n, runs->r, runs->n, &pl, mail > 0);
			if (route < 0)
				return (route);
			/* looked once and it was not there: a call that may
			 * block waits for it */
			if (route == SHN__DP_MAIL && mail > 0 && !(flags & SHN_NOTIFY_NONBLOCK) &&
			    c->dp_wait_ns != 0 && await_mail(c, &mail_end))
				continue;
			if (route == SHN__DP_MAIL) {
				if (mail++ < 1) {   /* read once; the plan says when again */
					pthread_mutex_unlock(&c->pub_lock);
					shn__take_unasked(c);
					pthread_mutex_lock(&c->pub_lock);
					continue;
				}
				route = SHN__DP_BROKER;   /* the broker path is always right */
			}
			if (route == 0 && pl.nports > 0 && !pub_ring_empty(c)) {
				/* a loss this ring owes its port must reach it
				 * before our next batch does: wait for the broker
				 * to take our publish ring, then go directly */
				if (!shn__dpub_owes_loss(&pl)) {
					/* a batch all of which could go directly
					 * waits a moment for the broker to take what
					 * is ahead of it, rather than follow it
					 * through the broker (and the next batch
					 * with it, and the next...) */
					if (!pl.brokered && !(flags & SHN_NOTIFY_NONBLOCK) &&
					    c->dp_wait_ns != 0 && wait_pub_taken(c))
						continue;
					route = SHN__DP_BROKER;
				} else if (flags & SHN_NOTIFY_NONBLOCK) {
					return (-EAGAIN);
				} else {
					/* the broker routes on; a short nap, no spin */
					pthread_mutex_unlock(&c->pub_lock);
					nanosleep(&(struct timespec){ .tv_nsec = 20000 }, NULL);
					pthread_mutex_lock(&c->pub_lock);
					continue;
				}
			}
		}
		/* the reader's wake-up under way while we write its record */
		if (route == 0 && pl.nports == 1 && c->dp_prewake)
			shn__dpub_prewake(c, batch, &pl);
		t_ns = shn__now_ns();
		if (route == 0 && pl.nports > 0) {
			int dw = shn__dpub_write(c, batch, &pl, bid, t_ns);

			/* a full SHN_OVERFLOW_BLOCK ring: a moment's wait for
			 * its reader, then the broker path's buffering */
			if (dw == SHN__DP_FULL && !(flags & SHN_NOTIFY_NONBLOCK) && c->dp_wait_ns != 0 &&
			    shn__dpub_wait_room(c, pl.full, pl.full_size))
				continue;
			if (dw != 0)
				route = SHN__DP_BROKER;
		}
		need_pub = route != 0 || pl.brokered;
		if (need_pub) {
			dst = shn_ring_reserve(&c->pub, size, &err);
			if (dst == NULL) {
				if (route == 0)
					shn__dpub_rollback(&pl);
				if (err == 0 && (flags & SHN_NOTIFY_NONBLOCK))
					err = -EAGAIN;
				if (err == 0)
					err = *room_waiter ? wait_for_room(c, size)
							   : become_room_waiter(c, room_waiter, size);
				if (err < 0)
					return (err == -EBADMSG ? -EPROTO : err);
				continue;
			}
			write_record(dst, batch, n, size, w ? SHN_PUB_SYNC : 0, bid, t_ns,
				     route == 0 ? pl.gen : 0);
			shn_ring_commit(&c->pub, size);
		}
		if (route == 0) {
			/* rule 8 (docs/direct-path.md): written, not yet
			 * accepted; full fence, and only if the filters did not
			 * change since the match does the batch go in */
			atomic_thread_fence(memory_order_seq_cst);
			if (atomic_load_explicit(&c->ftab->gen, memory_order_relaxed) != pl.gen) {
				shn__dpub_rollback(&pl);
				shn_ring_rollback(&c->pub, pub_tail);
				continue;
			}
			/* the direct tails first */
			if (shn__dpub_publish(&pl))
				c->dp_lost = true;
		}
		c->next_batch_id = bid + 1;
		if (w != NULL)
			atomic_store(&w->batch_id, bid);
		if (need_pub) {
			shn_ring_publish(&c->pub);
			if (shn_wake_needed(&c->bshm->sleep_seq, &c->rung_seq)) {
				uint64_t one = 1;
				if (write(c->doorbell_fd, &one, sizeof(one)) < 0) {
					/* EAGAIN: counter saturated, the broker has a
					 * wake-up pending */
				}
			}
		}
		return (0);
	}
}

/* Let go of pub_lock (and room_lock), then tell the broker of a direct
 * ring whose reader wrote a head that is not valid: it closes the ring and
 * the pair takes the broker path. */
static void report_broken(shn_client *c, bool *room_waiter)
{
	uint32_t slot = 0, port_id = 0, ring_id = shn__dpub_take_broken(c, &slot, &port_id);

	pthread_mutex_unlock(&c->pub_lock);
	if (*room_waiter)
		pthread_mutex_unlock(&c->room_lock);
	*room_waiter = false;
	if (ring_id != 0)
		shn__direct_tell_closed(c, SHN_DIRECT_PUBLISHER, slot, port_id, ring_id);
}

/* Wait for the broker's SYNC_DONE for w.  One waiting thread at a time
 * reads the control socket for every waiter (c->sync_reading) and waits on
 * it with ctl_lock released.  Holding the lock across that wait, in turns
 * of 20 ms with an unlock and a relock between them, gave the other
 * threads of the client no turn at all (the relock wins): a SYNC batch to
 * a port of this process, dispatched by another of its threads that needed
 * the lock for its first look at the sinks, waited out the whole timeout
 * (shn_notify(3)'s example; test_sync: test_sync_own_dispatcher).  The
 * other waiters sleep on sync_cond; whoever takes a SYNC_DONE off the
 * socket (the reader, the watcher thread, a control call) marks its waiter
 * done and broadcasts, and kicks the reader's poll when that was another
 * thread (call.c).  Returns 0, SHN_NOTIFY_CANCELED, -EACCES, -ETIMEDOUT
 * or -ENOTCONN. */
static int wait_sync(shn_client *c, struct shn__sync_wait *w)
{
	int timeout = atomic_load(&c->sync_timeout_ms), err;
	struct timespec t0, t;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	pthread_mutex_lock(&c->ctl_lock);
	for (;;) {
		int slice = 20;

		clock_gettime(CLOCK_MONOTONIC, &t);
		if (timeout >= 0) {
			int64_t left_ns = (int64_t)timeout * 1000000 -
					  ((int64_t)(t.tv_sec - t0.tv_sec) * 1000000000 +
					   (t.tv_nsec - t0.tv_nsec));
			if (left_ns <= 0)
				slice = 0;
			else if (left_ns < (int64_t)slice * 1000000)
				slice = (int)((left_ns + 999999) / 1000000);   /* round up */
		}
		if (w->done) {
			err = w->status;
			break;
		}
		if (atomic_load(&c->broker_gone)) {
			err = -ENOTCONN;
			break;
		}
		if (slice == 0) {
			err = -ETIMEDOUT;
			break;
		}
		if (c->sync_kick < 0)   /* failed: the reader wakes by its turns alone */
			c->sync_kick = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (!c->sync_reading) {
			struct pollfd pfd[2] = {
				{ .fd = c->sock, .events = POLLIN },
				{ .fd = c->sync_kick, .events = POLLIN },   /* -1: ignored */
			};
			uint64_t kicks;
			int r;

			c->sync_reading = true;
			pthread_mutex_unlock(&c->ctl_lock);
			if (poll(pfd, 2, slice) < 0 && errno != EINTR) {
				/* the socket went with a reconnect: broker_gone says so */
			}
			pthread_mutex_lock(&c->ctl_lock);
			c->sync_reading = false;
			if (c->sync_kick >= 0 && read(c->sync_kick, &kicks, sizeof(kicks)) < 0) {
				/* EAGAIN: nobody kicked */
			}
			r = shn__take_unasked_locked(c);
			/* the next turn's reader may be another waiter */
			pthread_cond_broadcast(&c->sync_cond);
			if (r < 0 && r != -ETIMEDOUT && !w->done) {
				err = r;
				break;
			}
		} else {
			struct timespec until = t;

			until.tv_nsec += (long)slice * 1000000;
			if (until.tv_nsec >= 1000000000) {
				until.tv_sec++;
				until.tv_nsec -= 1000000000;
			}
			pthread_cond_timedwait(&c->sync_cond, &c->ctl_lock, &until);
		}
	}
	for (struct shn__sync_wait **wp = &c->sync_waits; *wp; wp = &(*wp)->next)
		if (*wp == w) {
			*wp = w->next;
			break;
		}
	pthread_mutex_unlock(&c->ctl_lock);
	return (err);
}

int shn_notify(shn_client *c, const shn_notification *batch, size_t n, unsigned flags)
{
	if (flags & ~(SHN_NOTIFY_SYNC | SHN_NOTIFY_NONBLOCK))
		return (-EINVAL);
	return (shn__notify(c, batch, n, flags));
}

int shn__notify(shn_client *c, const shn_notification *batch, size_t n, unsigned flags)
{
	struct shn__sync_wait *w = NULL;
	struct batch_runs runs;     /* batch_size's, for the direct path's plan */
	bool room_waiter = false;   /* holds room_lock */
	bool lost, locked = false;
	uint64_t size;
	int err;

	if (c == NULL || batch == NULL || n == 0 || n > UINT32_MAX)
		return (-EINVAL);
	/* A batch like the last one that went to one port alone: that port's
	 * reader is rung before anything else, even the batch's check, so
	 * that its wake-up overlaps all of the call (docs/direct-path.md,
	 * "Wake-ups").  The pre-wake's memory is pub_lock's, so the lock is
	 * taken first -- not by a SYNC batch (which lists itself under
	 * ctl_lock first) nor by a client under a publish ACL (whose check
	 * may ask the broker, which is not done holding pub_lock).  A batch
	 * the check then refuses cost its reader a wake-up for nothing. */
	if (!(flags & (SHN_NOTIFY_SYNC | SHN__NOTIFY_GAP)) &&
	    !atomic_load_explicit(&c->pub_acl, memory_order_relaxed)) {
		pthread_mutex_lock(&c->pub_lock);
		locked = true;
		shn__dpub_prewake_early(c, batch);
	}
	err = batch_size(c, batch, n, (flags & SHN__NOTIFY_GAP) != 0, &size, &runs);
	if (err == 0 && size > shn_ring_max_record(c->pub_capacity))
		err = -EMSGSIZE;
	if (err == 0 && atomic_load_explicit(&c->broker_gone, memory_order_relaxed))
		err = -ENOTCONN;
	/* the broker's ACL may refuse one of its keys: say so now, not by a
	 * batch dropped after shn_notify returned 0 (a reconnect may have
	 * brought the ACL since the look above: asked without the lock) */
	if (err == 0 && atomic_load_explicit(&c->pub_acl, memory_order_relaxed)) {
		if (locked)
			pthread_mutex_unlock(&c->pub_lock);
		locked = false;
		err = shn__acl_check(c, batch, n);
	}
	if (err < 0) {
		if (locked)
			pthread_mutex_unlock(&c->pub_lock);
		return (err);
	}
	if (flags & SHN_NOTIFY_SYNC) {
		/* listed before the batch exists, so its SYNC_DONE finds it */
		w = calloc(1, sizeof(*w));
		if (w == NULL)
			return (-ENOMEM);
		pthread_mutex_lock(&c->ctl_lock);
		w->next = c->sync_waits;
		c->sync_waits = w;
		pthread_mutex_unlock(&c->ctl_lock);
	}

	if (!locked) {
		pthread_mutex_lock(&c->pub_lock);
		/* as above, for a client under a publish ACL: once checked */
		if (!(flags & (SHN_NOTIFY_SYNC | SHN__NOTIFY_GAP)))
			shn__dpub_prewake_early(c, batch);
	}
	if (atomic_load(&c->broker_gone)) {
		err = -ENOTCONN;
		goto refused;
	}
	if (size > shn_ring_max_record(c->pub.capacity)) {
		err = -EMSGSIZE;   /* a reconnect brought a smaller ring */
		goto refused;
	}
	if (!anyone_listens(c, batch, n, &runs)) {
		err = 0;   /* no matching subscription: done, even for SYNC (rule 7) */
		goto refused;
	}
	err = publish_locked(c, batch, n, &runs, flags, (uint32_t)size, w, &room_waiter);
	if (err < 0)
		goto refused;
	lost = c->dp_lost;
	c->dp_lost = false;
	report_broken(c, &room_waiter);
	/* A SHN_OVERFLOW_DROP port's direct ring was full: its reader is
	 * behind.  Give up the CPU once (no wait: the call returns now), so
	 * that a publisher that outruns its reader does not also take the
	 * CPU the reader needs to catch up -- the broker path's publisher
	 * paused so on its full publish ring (docs/direct-path.md). */
	if (lost)
		sched_yield();
	if (w == NULL)
		return (0);
	err = wait_sync(c, w);
	free(w);
	return (err);

refused:
	report_broken(c, &room_waiter);
	if (w != NULL) {
		pthread_mutex_lock(&c->ctl_lock);
		for (struct shn__sync_wait **wp = &c->sync_waits; *wp; wp = &(*wp)->next)
			if (*wp == w) {
				*wp = w->next;
				break;
			}
		pthread_mutex_unlock(&c->ctl_lock);
		free(w);
	}
	return (err);
}
