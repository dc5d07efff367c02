/* SPDX-License-Identifier: MIT */
/*
 * port.c - ports (delivery rings), subscriptions, and the pull side:
 * shn_port_get() with the need-wakeup sleep, shn_port_unblock().
 */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <stddef.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "call.h"
#include "direct_read.h"
#include "port.h"

void shn__port_free(shn_port *p)
{
	free(p->snap);
	free(p->all);
	free(p->subset);
	shn__dread_free(p);
	shn_segment_close(&p->ring_seg);
	shn_segment_close(&p->cons_seg);
	if (p->event_fd >= 0)
		close(p->event_fd);
	if (p->next_rings.ready || p->next_rings.staged)
		shn__port_rings_close(&p->next_rings);
	if (p->poll_fd >= 0)
		close(p->poll_fd);
	pthread_mutex_destroy(&p->swap_lock);
	free(p);
}

int shn__port_attach(shn_port *p, struct shn__port_rings *r)
{
	struct shn_ring_prod *prod = (void *)((uint8_t *)r->ring_seg.addr + SHN_DEL_PROD_OFF);
	struct epoll_event ev = { .events = EPOLLIN };

	if (!shn_ring_capacity_ok(r->capacity) || prod->magic != SHN_RING_MAGIC ||
	    prod->capacity != r->capacity)
		return (-EPROTO);
	/* the new eventfd joins the epoll before the old one leaves it, so
	 * that a failed attach leaves the port as it was (retried later) */
	if (atomic_load_explicit(&p->fd_watched, memory_order_relaxed)) {
		if (epoll_ctl(p->poll_fd, EPOLL_CTL_ADD, r->event_fd, &ev) < 0)
			return (-errno);
		if (p->event_fd >= 0)
			epoll_ctl(p->poll_fd, EPOLL_CTL_DEL, p->event_fd, NULL);
	}
	shn_segment_close(&p->ring_seg);
	shn_segment_close(&p->cons_seg);
	if (p->event_fd >= 0)
		close(p->event_fd);
	p->ring_seg = r->ring_seg;
	p->cons_seg = r->cons_seg;
	p->event_fd = r->event_fd;
	atomic_store(&p->efd_dirty, true);   /* whatever it holds is from before us */
	p->capacity = r->capacity;
	r->ready = false;
	shn_ring_init_view(&p->ring, prod, p->cons_seg.addr,
			   (uint8_t *)p->ring_seg.addr + SHN_RING_HDR_SIZE, r->capacity);
	p->room_rung = 0;   /* a new ring: no request answered yet */
	return (0);
}

void shn__port_rings_close(struct shn__port_rings *r)
{
	shn_segment_close(&r->ring_seg);
	shn_segment_close(&r->cons_seg);
	if (r->event_fd >= 0)
		close(r->event_fd);
	r->event_fd = -1;
	r->ready = false;
	r->staged = false;
}

int shn__port_request(shn_client *c, const shn_port_options *opt, uint32_t *port_id,
		      struct shn__port_rings *r)
{
	struct shn_msg_port_open req = { .hdr.type = SHN_MSG_PORT_OPEN };
	struct shn_msg_port_open_reply rep;
	int fds[SHN_PORT_NFDS], nfds = SHN_PORT_NFDS, err;
	size_t rlen = 0;

	memset(r, 0, sizeof(*r));
	r->ring_seg.fd = r->cons_seg.fd = r->event_fd = -1;
	req.capacity = opt->capacity;
	req.overflow = opt->overflow;
	err = shn__call(c, &req, sizeof(req), &rep, sizeof(rep), &rlen, fds, &nfds);
	if (err == 0 && (rlen != sizeof(rep) || nfds != SHN_PORT_NFDS))
		err = -EPROTO;
	if (err < 0) {
		for (int i = 0; i < nfds; i++)
			close(fds[i]);
		return (err);
	}
	r->capacity = rep.capacity;
	r->event_fd = fds[SHN_PORT_FD_EVENT];
	err = shn_segment_map(&r->ring_seg, fds[SHN_PORT_FD_RING],
			      SHN_RING_HDR_SIZE + (size_t)rep.capacity, 0);
	if (err == 0)
		err = shn_segment_map(&r->cons_seg, fds[SHN_PORT_FD_CONS], SHN_CONS_SEG_SIZE, 1);
	else
		close(fds[SHN_PORT_FD_CONS]);
	if (err < 0) {
		/* the broker reclaims the port with the connection, or at close */
		shn__port_rings_close(r);
		return (err == -EBADMSG ? -EPROTO : err);
	}
	*port_id = rep.port_id;
	return (0);
}

int shn_port_open(shn_client *c, const shn_port_options *opt, shn_port **out)
{
	struct shn__port_rings r;
	uint32_t id = 0;
	shn_port *p;
	int err;

	if (c == NULL || out == NULL)
		return (-EINVAL);
	*out = NULL;
	if (opt != NULL && opt->overflow > SHN_OVERFLOW_BLOCK)
		return (-EINVAL);
	p = calloc(1, sizeof(*p));
	if (p == NULL)
		return (-ENOMEM);
	p->event_fd = -1;
	p->ring_seg.fd = p->cons_seg.fd = -1;
	p->held = p->cur_dring = p->last_dring = -1;
	p->client = c;
	if (opt != NULL)
		p->opt = *opt;
	pthread_mutex_init(&p->swap_lock, NULL);
	p->poll_fd = epoll_create1(EPOLL_CLOEXEC);
	err = p->poll_fd < 0 ? -errno : shn__port_request(c, &p->opt, &id, &r);
	if (err == 0) {
		err = shn__port_attach(p, &r);
		if (err < 0)
			shn__port_rings_close(&r);
	}
	if (err < 0) {
		shn__port_free(p);
		return (err);
	}
	p->id = id;
	pthread_mutex_lock(&c->ctl_lock);
	p->told_epoch = atomic_load(&c->loss_epoch);
	p->next = c->ports;
	c->ports = p;
	pthread_mutex_unlock(&c->ctl_lock);
	*out = p;
	return (0);
}

int shn_port_close(shn_port *p)
{
	struct shn_msg_port_close req = { .hdr.type = SHN_MSG_PORT_CLOSE };
	struct shn_msg_reply rep;
	shn_client *c;
	int err;

	if (p == NULL)
		return (-EINVAL);
	c = p->client;
	req.port_id = atomic_load(&p->id);
	err = shn__call(c, &req, sizeof(req), &rep, sizeof(rep), NULL, NULL, NULL);
	if (err == -ENOTCONN)
		err = 0;   /* nothing left to close on the broker's side */
	pthread_mutex_lock(&c->ctl_lock);
	for (shn_port **pp = &c->ports; *pp; pp = &(*pp)->next)
		if (*pp == p) {
			*pp = p->next;
			break;
		}
	for (struct shn__sub **sp = &c->subs; *sp;) {
		struct shn__sub *s = *sp;
		if (s->port == p) {
			*sp = s->next;
			free(s);
		} else {
			sp = &s->next;
		}
	}
	pthread_mutex_unlock(&c->ctl_lock);
	shn__port_free(p);
	return (err);
}

/* The port's eventfd joins poll_fd here, at the first call, not when the
 * port opens: an eventfd that an epoll instance watches runs the epoll's
 * callback in every write to it -- in the publisher's system call, before
 * the sleeping get is woken -- and that cost a blocking get which never
 * asked for the descriptor about 0.2 us a wake-up (docs/performance.md,
 * "tenth pass").  The descriptor itself is made at open, so that it is the
 * same for the port's whole life.  The port is not const: the cast only
 * undoes the prototype's promise, kept for the caller (nothing it sees
 * changes but the readiness the descriptor was asked for). */
int shn_port_fd(const shn_port *cp)
{
	shn_port *p = (shn_port *)(uintptr_t)cp;
	struct epoll_event ev = { .events = EPOLLIN };
	int err = 0;

	if (p == NULL)
		return (-EINVAL);
	if (atomic_load_explicit(&p->fd_watched, memory_order_acquire))
		return (p->poll_fd);
	pthread_mutex_lock(&p->swap_lock);   /* event_fd changes under it */
	if (!atomic_load_explicit(&p->fd_watched, memory_order_relaxed)) {
		if (epoll_ctl(p->poll_fd, EPOLL_CTL_ADD, p->event_fd, &ev) < 0)
			err = -errno;
		else
			atomic_store_explicit(&p->fd_watched, true, memory_order_release);
	}
	pthread_mutex_unlock(&p->swap_lock);
	return (err < 0 ? err : p->poll_fd);
}

int shn_port_unblock(shn_port *p)
{
	uint64_t one = 1;

	if (p == NULL)
		return (-EINVAL);
	int err = 0;

	atomic_store(&p->unblock, true);
	/* The port's eventfd is what a getter sleeps on: ring it ourselves. */
	pthread_mutex_lock(&p->swap_lock);
	if (write(p->event_fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		err = -errno;
	atomic_store(&p->efd_dirty, true);   /* after the write: the reader drains it */
	pthread_mutex_unlock(&p->swap_lock);
	return (err);
}

/* Give the consumed record back to the broker, and ring the doorbell if
 * the broker asked for room (it holds system events for this port, or a
 * SHN_OVERFLOW_BLOCK batch waits for it) and this release reached it. */
static void release_current(shn_port *p)
{
	if (p->cur == NULL || p->cur_index < p->cur_count)
		return;
	if (p->cur_synth) {
		p->cur = NULL;
		p->cur_synth = false;
		return;
	}
	if (p->cur_dring >= 0) {   /* a private copy: its ring was released */
		p->cur = NULL;
		shn__dread_release(p);
		return;
	}
	shn_ring_consume(&p->ring, p->cur_len);
	shn_ring_release(&p->ring);
	p->cur = NULL;
	if (shn_ring_room_wanted(&p->ring, &p->room_rung)) {
		uint64_t one = 1;
		if (write(p->client->doorbell_fd, &one, sizeof(one)) < 0) {
			/* EAGAIN: the counter is saturated, the broker is awake */
		}
	}
}

/* Take the next delivered record as the current one: direct_read.c
 * merges the broker ring with the port's direct rings.  1: got one, 0:
 * empty, -EBADMSG: the broker ring holds something the broker never
 * writes. */
static int load_record(shn_port *p)
{
	return (shn__dread_load(p));
}

void shn__sync_ack(shn_port *p, uint32_t status)
{
	struct shn_sync_ack *ack = (void *)((uint8_t *)p->cons_seg.addr + SHN_SYNC_ACK_OFF);
	uint64_t one = 1;

	if (p->cur_sync_token == 0)
		return;
	atomic_store_explicit(&ack->status, status, memory_order_relaxed);
	atomic_store_explicit(&ack->token, p->cur_sync_token, memory_order_release);
	p->cur_sync_token = 0;
	if (write(p->client->doorbell_fd, &one, sizeof(one)) < 0) {
		/* EAGAIN: counter saturated, the broker has a wake-up pending */
	}
}

/* The ring is empty: was the broker lost since we last said so (then
 * BROKER_STATE), or are new rings waiting (switch, then RECONNECT)?
 * 1 when a system event is now current. */
static int check_broker(shn_port *p)
{
	shn_client *c = p->client;
	uint32_t epoch = atomic_load(&c->loss_epoch);
	int r = 0;

	if (p->told_epoch != epoch) {
		p->told_epoch = epoch;
		shn__dread_broker_lost(p, epoch);   /* nothing of them after BROKER_STATE */
		shn__port_synth(p, SHN_EV_BROKER_STATE, NULL, 0);
		return (1);
	}
	/* an empty poll of a spinning reader: no lock unless new rings came */
	if (!atomic_load_explicit(&p->next_ready, memory_order_acquire))
		return (0);
	pthread_mutex_lock(&p->swap_lock);
	if (p->next_rings.ready && shn__port_attach(p, &p->next_rings) == 0) {
		shn__port_synth(p, SHN_EV_RECONNECT, NULL, 0);
		r = 1;
	}
	/* still ready when the attach failed: the next empty poll tries again */
	atomic_store_explicit(&p->next_ready, p->next_rings.ready, memory_order_relaxed);
	pthread_mutex_unlock(&p->swap_lock);
	return (r);
}

/* A pull subscription kept for its direct rings' late notes (see
 * shn_unsubscribe) reached its HANDLE_CLOSE: nothing of it can follow. */
static void forget_ended(shn_port *p, shn_conn conn)
{
	shn_client *c = p->client;
	struct shn__sub *gone = NULL;

	pthread_mutex_lock(&c->ctl_lock);
	for (struct shn__sub **sp = &c->subs; *sp; sp = &(*sp)->next)
		if ((*sp)->conn == conn && (*sp)->closing && (*sp)->fn == NULL) {
			gone = *sp;
			*sp = gone->next;
			atomic_fetch_add(&p->sinks_gen, 1);
			break;
		}
	pthread_mutex_unlock(&c->ctl_lock);
	free(gone);
}

/* The word layout fill_direct writes a notification in (x86-64 and every
 * LP64 target: two 32-bit fields or a field and its padding per word). */
_Static_assert(sizeof(shn_notification) == 80 && offsetof(shn_notification, data_len) == 8 &&
	       offsetof(shn_notification, key) == 16 && offsetof(shn_notification, data) == 24 &&
	       offsetof(shn_notification, conn) == 32 && offsetof(shn_notification, seq) == 40 &&
	       offsetof(shn_notification, batch_id) == 48 &&
	       offsetof(shn_notification, batch_index) == 56 &&
	       offsetof(shn_notification, sender_pid) == 64 &&
	       offsetof(shn_notification, time_ns) == 72,
	       "shn_notification as ten words");
/* ... and a run's first word, its flags masked off, and a note's length
 * word are the notification's first two: event, key_len and zero; data_len
 * and zero (the record check saw the reserved fields zero). */
_Static_assert(offsetof(shn_notification, event) == 0 && offsetof(shn_notification, key_len) == 4 &&
	       offsetof(struct shn_direct_run, key_len) == 4 &&
	       offsetof(struct shn_direct_run, flags) == 6 &&
	       offsetof(struct shn_direct_item, data_len) == 0, "direct words");
#define RUN_W0_MASK 0x0000ffffffffffffull   /* event, key_len: flags off */

static inline void put64(uint8_t *o, size_t at, uint64_t v)
{
	memcpy(o + at, &v, 8);
}

/* Two words of a notification, stored as one (GCC and Clang vectors). */
typedef uint64_t v2u64 __attribute__((vector_size(16)));

/* shn__port_fill for a direct record: the reader's private copy, checked
 * whole by shn_direct_record_check and each run given its conn
 * (direct_read.c), no system event in it, so nothing is checked again.
 * Each notification is written whole as ten words, padding included, with
 * the port's own seq: the per-note cost of a flood's reader.  A run's
 * key, event, conn and (one length) data length are read once, when the
 * run begins; a note of a run of one length is then its data's address. */
static int fill_direct(shn_port *p, shn_notification *out, size_t max)
{
	const struct shn_del_batch *b = (const void *)p->cur;
	const uint8_t *q = p->cur + p->cur_off, *key = p->run_key;
	uint32_t left = p->run_left, same = p->run_same_len, todo = p->cur_count - p->cur_index;
	uint64_t seq = p->next_seq, batch_id = b->batch_id, time_ns = b->time_ns;
	uint64_t who = (uint32_t)b->sender_pid | (uint64_t)b->sender_uid << 32;
	uint64_t w0 = p->run_w0, conn = p->run_conn;
	uint64_t pos = p->cur_index | (uint64_t)p->cur_count << 32;   /* batch_index, _count */
	uint8_t *o = (uint8_t *)out;

	if (todo > max)
		todo = (uint32_t)max;
	for (uint32_t done = 0; done < todo;) {
		uint32_t k;

		if (left == 0) {
			/* a run begins: event | key_len, count, conn; the key */
			const struct shn_direct_run *run = (const void *)q;

			memcpy(&w0, q, 8);
			left = run->count;
			same = run->flags != 0 ? run->data_len : 0;
			conn = run->conn;
			key = q + sizeof(*run);
			q += shn_direct_run_size((uint16_t)(w0 >> 32));
			w0 &= RUN_W0_MASK;
		}
		k = left < todo - done ? left : todo - done;
		left -= k;
		done += k;
		if (same != 0) {
			/* one length: every word but data, seq and
			 * batch_index is the run's, so a notification is five
			 * stores of two words, three of them stepped by one
			 * vector add each */
			const uint64_t dsz = SHN_ALIGN8(same);
			const v2u64 ev_dl = { w0, same }, who_time = { who, time_ns };
			const v2u64 by_data = { 0, dsz }, by_one = { 0, 1 };
			v2u64 key_data = { (uintptr_t)key, (uintptr_t)q };
			v2u64 conn_seq = { conn, seq + 1 }, id_pos = { batch_id, pos };

			for (; k != 0; k--, o += sizeof(shn_notification)) {
				memcpy(o, &ev_dl, 16);
				memcpy(o + 16, &key_data, 16);
				memcpy(o + 32, &conn_seq, 16);
				memcpy(o + 48, &id_pos, 16);
				memcpy(o + 64, &who_time, 16);
				key_data += by_data;
				conn_seq += by_one;
				id_pos += by_one;
			}
			q = (const uint8_t *)(uintptr_t)key_data[1];
			seq = conn_seq[1] - 1;
			pos = id_pos[1];
			continue;
		}
		for (; k != 0; k--, o += sizeof(shn_notification)) {
			uint64_t dl;

			memcpy(&dl, q, 8);   /* data_len, 0 */
			q += sizeof(struct shn_direct_item);
			put64(o, 0, w0);
			put64(o, 8, dl);
			put64(o, 16, (uintptr_t)key);
			put64(o, 24, dl ? (uintptr_t)q : 0);
			put64(o, 32, conn);
			put64(o, 40, ++seq);
			put64(o, 48, batch_id);
			put64(o, 56, pos++);
			put64(o, 64, who);
			put64(o, 72, time_ns);
			q += SHN_ALIGN8(dl);
		}
	}
	p->seq_off += seq - p->next_seq;
	p->next_seq = seq;
	p->cur_off = (uint32_t)(q - p->cur);
	p->cur_index += todo;
	p->run_left = left;
	p->run_same_len = same;
	p->run_w0 = w0;
	p->run_key = key;
	p->run_conn = conn;
	return ((int)todo);
}

int shn__port_fill(shn_port *p, shn_notification *out, size_t max)
{
	const struct shn_del_batch *b = (const void *)p->cur;
	size_t n = 0;

	if (p->cur_dring >= 0 && !p->cur_synth)
		return (fill_direct(p, out, max));

	while (n < max && p->cur_index < p->cur_count) {
		const struct shn_del_note *dn;
		uint32_t sz;

		if (p->cur_len - p->cur_off < sizeof(*dn))
			return (-EBADMSG);
		dn = (const void *)(p->cur + p->cur_off);
		sz = shn_del_note_size(dn->key_len, dn->data_len);
		if (dn->data_len > SHN_DATA_MAX_WIRE || sz > p->cur_len - p->cur_off)
			return (-EBADMSG);
		shn_notification *o = &out[n++];
		memset(o, 0, sizeof(*o));
		o->event = dn->event;
		o->key_len = dn->key_len;
		o->data_len = dn->data_len;
		o->key = dn->key_len ? (const void *)(dn + 1) : NULL;
		o->data = dn->data_len ? (const uint8_t *)(dn + 1) + dn->key_len : NULL;
		if (dn->event == SHN_EV_HANDLE_CLOSE) {
			/* its data is the direct rings' barrier, for the reader
			 * (direct_read.c), not the application's */
			o->data_len = 0;
			o->data = NULL;
			forget_ended(p, dn->conn);
		}
		o->conn = dn->conn;
		o->seq = dn->seq;
		if ((dn->event & SHN_EV_SYSTEM) == 0) {
			/* one sequence for the port across its rings: the
			 * broker's numbers shifted by what came directly */
			if (p->cur_dring >= 0) {
				o->seq = ++p->next_seq;
				p->seq_off++;
			} else {
				o->seq = dn->seq + p->seq_off;
				p->next_seq = o->seq;
			}
		} else if (dn->event == SHN_EV_OVERFLOW && !p->cur_synth && dn->data_len == 8 &&
			   dn->key_len == 0) {
			/* the broker's own loss (a publisher's gap report
			 * has a key and no number): the broker's numbers jump
			 * by it, so must the next direct note's */
			const uint8_t *le = o->data;
			uint64_t lost = 0;

			for (int k = 7; k >= 0; k--)
				lost = lost << 8 | le[k];
			p->next_seq += lost;
		}
		o->batch_id = b->batch_id;
		o->batch_index = p->cur_index;
		o->batch_count = p->cur_count;
		o->sender_pid = b->sender_pid;
		o->sender_uid = b->sender_uid;
		o->time_ns = b->time_ns;
		p->cur_index++;
		p->cur_off += sz;
	}
	return ((int)n);
}

/* Reset the port's eventfd counter (it is non-blocking: the broker made it
 * with EFD_NONBLOCK, and the flag belongs to the shared file description). */
static void drain_eventfd(int fd)
{
	uint64_t v;

	if (read(fd, &v, sizeof(v)) < 0) {
		/* EAGAIN: nothing to drain */
	}
}

int shn__port_wait_record(shn_port *p, int timeout_ms)
{
	int64_t deadline = 0;
	bool woke = false;   /* the wake-up that ended our poll is still in event_fd */
	bool yielded = false;   /* to our preempted publisher, once a get */
	int r;

	/* the deadline is taken when the get first has to sleep, not at the
	 * call: a get that finds its notes waiting reads no clock (a reader
	 * under load, one get per batch, spent a twentieth of its time
	 * there); the wait is then a little longer, never shorter */
	release_current(p);
	for (;;) {
		/* Drain a stale wake-up before looking at anything: a write
		 * that comes after this (unblock, broker loss) stays pending
		 * for the poll below.  Not the one that just woke us: what it
		 * woke us for is returned first and the wake-up drained by
		 * the next get (efd_dirty stays set), so that the read is not
		 * between the writer's wake-up and the caller's notes (one
		 * system call off every blocking delivery's latency). */
		if (!woke && atomic_load_explicit(&p->efd_dirty, memory_order_relaxed) &&
		    atomic_exchange(&p->efd_dirty, false))
			drain_eventfd(p->event_fd);
		/* Awake, until prepare_sleep below arms the word again with a
		 * new value.  Left armed (a poll that returned, a wake-up
		 * drained above, a get that timed out), the word kept its old
		 * odd value, which a waker that signalled it once does not
		 * signal again: when what it woke us for gave us nothing (a
		 * late direct note, dropped) or its wake-up was drained above
		 * as stale, its next record came with no wake-up and the get
		 * slept to its timeout (test_direct_semantics). */
		shn_ring_finish_sleep(&p->ring);
		/* a load first: a locked exchange per empty poll is most of
		 * what a spinning reader's poll costs */
		if (atomic_load_explicit(&p->unblock, memory_order_relaxed) &&
		    atomic_exchange(&p->unblock, false))
			return (-ECANCELED);
		if (p->cur == NULL) {
			r = load_record(p);
			if (r == 0)
				r = check_broker(p);
			if (r < 0)
				return (r);
		}
		if (p->cur != NULL) {
			shn_ring_finish_sleep(&p->ring);
			return (1);
		}
		/* shn_port_try_get: empty, and left unarmed, so that nobody
		 * pays a wake-up for a reader that spins (the word is even:
		 * finish_sleep above) */
		if (timeout_ms == SHN__TRY)
			return (-EAGAIN);
		if (woke) {
			/* woken for nothing we can return (a late direct
			 * note, dropped; a broker loss seen above): drain the
			 * wake-up above before arming, or the poll below
			 * would return at once, for ever */
			woke = false;
			continue;
		}
		/* Our publisher, waking readers, was preempted by us on this
		 * CPU: give it the CPU back once before we sleep, or the
		 * readers it has still to wake wait for our sleep and its
		 * next slice (a sleep costs its wake-up again; yielding to
		 * anyone else is not done: behind a CPU-bound task a yield
		 * waits out its slice, a sleeper is woken with preemption) */
		if (!yielded && shn__dread_preempted_publisher(p)) {
			yielded = true;
			sched_yield();
			continue;
		}
		/* Empty: arm the need-wakeup flag; it stays armed when we
		 * return, so shn_port_fd() becomes readable on new data --
		 * and only then: a wake-up left from an earlier sleep is
		 * drained first, or a caller's poll loop would spin. */
		if (!shn_ring_prepare_sleep(&p->ring))
			continue;
		if (shn__dread_readable(p)) {   /* after the fence: every ring */
			shn_ring_finish_sleep(&p->ring);
			continue;
		}
		atomic_store(&p->efd_dirty, true);   /* armed: the broker may write it */
		if (timeout_ms == 0)
			return (-ETIMEDOUT);

		int wait = -1;
		if (timeout_ms > 0) {
			int64_t now = (int64_t)shn__now_ns();

			if (deadline == 0)
				deadline = now + (int64_t)timeout_ms * 1000000;
			int64_t left = deadline - now;
			if (left <= 0)
				return (-ETIMEDOUT);
			left = (left + 999999) / 1000000;   /* never wake before the deadline */
			wait = left > 1000000 ? 1000000 : (int)left;
		}
		struct pollfd pfd = { .fd = p->event_fd, .events = POLLIN };
		r = poll(&pfd, 1, wait);
		if (r < 0 && errno != EINTR)
			return (-errno);
		if (r > 0 && (pfd.revents & (POLLERR | POLLNVAL)))
			return (-EBADF);
		woke = r > 0 && (pfd.revents & POLLIN);   /* efd_dirty is still set */
	}
}

/* Get with timeout_ms (or SHN__TRY): the record, then the notes. */
static int port_get(shn_port *p, shn_notification *out, size_t max, int timeout_ms)
{
	int r = shn__port_wait_record(p, timeout_ms);

	if (r < 0)
		return (r);
	r = shn__port_fill(p, out, max);
	if (r > 0 && p->cur_index == p->cur_count)
		shn__sync_ack(p, 0);   /* a pull port consumed a batch when get returned it */
	return (r);
}

int shn_port_get(shn_port *p, shn_notification *out, size_t max, int timeout_ms)
{
	if (p == NULL || out == NULL || max == 0 || timeout_ms < -1)
		return (-EINVAL);
	return (port_get(p, out, max, timeout_ms));
}

int shn_port_try_get(shn_port *p, shn_notification *out, size_t max)
{
	if (p == NULL || out == NULL || max == 0)
		return (-EINVAL);
	return (port_get(p, out, max, SHN__TRY));
}

int shn__send_subscribe(shn_client *c, const struct shn__sub *s)
{
	union {
		struct shn_msg_subscribe m;
		uint8_t buf[sizeof(struct shn_msg_subscribe) + SHN_KEY_MAX];
	} req;
	struct shn_msg_reply rep;

	memset(&req.m, 0, sizeof(req.m));
	req.m.hdr.type = SHN_MSG_SUBSCRIBE;
	req.m.conn = s->conn;
	req.m.port_id = atomic_load(&s->port->id);
	req.m.event_mask = s->mask;
	req.m.flags = (s->any_key ? SHN_SUB_ANY_KEY : 0) | (s->monitor ? SHN_SUB_MONITOR : 0) |
		      (s->prefix ? SHN_SUB_PREFIX : 0);
	req.m.key_len = s->key_len;
	memcpy(req.m.key, s->key, s->key_len);
	return (shn__call(c, &req, sizeof(req.m) + s->key_len, &rep, sizeof(rep), NULL, NULL, NULL));
}

int shn__subscribe(shn_port *p, const void *key, size_t key_len, uint32_t event_mask,
		   unsigned flags, shn_sink_fn fn, void *ctx, shn_conn *conn)
{
	struct shn__sub *s;
	shn_client *c;
	int err;

	bool prefix = (flags & SHN_SUBSCRIBE_PREFIX) != 0;

	if (p == NULL || conn == NULL ||
	    (flags & ~(SHN_SUBSCRIBE_MONITOR | SHN_SUBSCRIBE_PREFIX)) != 0 ||
	    ((flags & SHN_SUBSCRIBE_MONITOR) && (key != NULL || prefix)))
		return (-EINVAL);
	/* an empty prefix (key NULL or key_len 0) takes every key: it is an
	 * any-key filter, and goes to the broker as one */
	if (prefix && key_len == 0)
		key = NULL;
	if ((key == NULL) != (key_len == 0) || key_len > SHN_KEY_MAX)
		return (-EINVAL);
	if ((event_mask & SHN_EV_ALL) == 0 || (event_mask & SHN_EV_SYSTEM) != 0)
		return (-EINVAL);
	c = p->client;
	s = calloc(1, sizeof(*s));
	if (s == NULL)
		return (-ENOMEM);
	s->conn = atomic_fetch_add(&c->next_conn, 1);
	s->port = p;
	s->fn = fn;
	s->ctx = ctx;
	s->any_key = (key == NULL);
	s->monitor = (flags & SHN_SUBSCRIBE_MONITOR) != 0;
	s->prefix = prefix && key != NULL;
	s->key_len = (uint16_t)key_len;
	s->mask = event_mask;
	if (key_len)
		memcpy(s->key, key, key_len);

	/* Listed before the broker knows it, so that a batch delivered the
	 * moment the filter is active finds its sink. */
	pthread_mutex_lock(&c->ctl_lock);
	s->next = c->subs;
	c->subs = s;
	atomic_fetch_add(&p->sinks_gen, 1);
	pthread_mutex_unlock(&c->ctl_lock);
	err = shn__send_subscribe(c, s);
	if (err < 0) {
		pthread_mutex_lock(&c->ctl_lock);
		for (struct shn__sub **sp = &c->subs; *sp; sp = &(*sp)->next)
			if (*sp == s) {
				*sp = s->next;
				break;
			}
		atomic_fetch_add(&p->sinks_gen, 1);
		pthread_mutex_unlock(&c->ctl_lock);
		free(s);
		return (err);
	}
	*conn = s->conn;
	return (0);
}

int shn_subscribe(shn_port *p, const void *key, size_t key_len, uint32_t event_mask,
		  unsigned flags, shn_conn *conn)
{
	return (shn__subscribe(p, key, key_len, event_mask, flags, NULL, NULL, conn));
}

/* The client's record of a subscription follows the broker's answer, so
 * the two never disagree: the request is made under ctl_lock (no other
 * unsubscribe of it, no reconnect that would restore it, meanwhile), and
 * the subscription ends here only when the broker removed the filter (0),
 * does not know it (-ENOENT) or is gone with it (-ENOTCONN: the connection
 * took the filter along, and a reconnect must not restore it).  On any
 * other answer the broker kept the filter, and so does the client: its
 * notifications still arrive, and a later call can end it. */
int shn_unsubscribe(shn_client *c, shn_conn conn)
{
	struct shn_msg_unsubscribe req = { .hdr.type = SHN_MSG_UNSUBSCRIBE };
	struct shn_msg_reply rep;
	struct shn__sub **sp, *s = NULL;
	int err;

	if (c == NULL || conn == 0)
		return (-EINVAL);
	pthread_mutex_lock(&c->ctl_lock);
	for (sp = &c->subs; *sp; sp = &(*sp)->next)
		if ((*sp)->conn == conn && !(*sp)->closing) {
			s = *sp;
			break;
		}
	if (s == NULL) {
		pthread_mutex_unlock(&c->ctl_lock);
		return (-ENOENT);
	}
	req.conn = conn;
	err = shn__call_locked(c, &req, sizeof(req), &rep, sizeof(rep), NULL, NULL, NULL);
	if (err == 0 || err == -ENOENT || err == -ENOTCONN) {
		atomic_fetch_add(&s->port->sinks_gen, 1);   /* dispatch re-reads its sinks */
		if (err == 0 && (s->fn != NULL || (c->hello_flags & SHN_HELLO_F_DIRECT))) {
			/* an advise sink stays listed until its HANDLE_CLOSE
			 * has been dispatched to it; with direct rings, any
			 * subscription does, until the reader passed its
			 * HANDLE_CLOSE: notes a publisher matched before the
			 * unsubscribe may still be in a direct ring, and the
			 * reader takes them by this filter (direct_read.c) */
			s->closing = true;
		} else {
			*sp = s->next;   /* no HANDLE_CLOSE will come for it */
			free(s);
		}
	}
	pthread_mutex_unlock(&c->ctl_lock);
	return (err);
}
