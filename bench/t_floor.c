/* SPDX-License-Identifier: MIT */
/*
 * t_floor.c - the floor: what two processes get from a shared-memory ring
 * with no broker at all.  The project's own ring (shm/ring.h), eventfd
 * need-wakeup in both directions (the eventfd that woke a receive reset at
 * the next receive, as libshmnotify's port does), one release of the tail
 * per batch, and libshmnotify's pre-wake: a sleeping reader of a ring with
 * one reader is rung before the record is written, so that its wake-up and
 * the writing overlap (off with SHMNOTIFY_DIRECT_PREWAKE=off, as the
 * library's).
 *
 * Shapes: 1 -> 1 is one SPSC ring.  1 -> N is ONE BROADCAST RING: the
 * publisher writes each record once, every subscriber reads it through its
 * own consumer line (head and sleep word), and the publisher's free space is
 * bounded by the slowest head.  N -> 1 is one SPSC ring per publisher, the
 * subscriber sleeping on all of them with one eventfd.  Latency is one ring
 * each way.  The floor does no routing: in `keys` its records carry random
 * keys that nobody looks up.
 *
 * Lossless: a publisher that finds no room sleeps until the subscribers
 * have freed half the ring (the hysteresis of docs/ring.md).
 */
#include "bench.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include "shm/ring.h"

#define FLOOR_CAPACITY (1u << 20)   /* shmnotify's default ring size */
#define FLOOR_MAX_RINGS BENCH_MAX_PUB
#define FLOOR_REC 2u                /* record type (PAD is 1) */

struct floor_ctl {                      /* one per ring, in shared memory */
	struct shn_ring_prod prod;
	struct shn_ring_cons cons[BENCH_MAX_SUB];
};

struct floor {
	unsigned nrings, ncons;             /* consumer lines in use per ring */
	size_t size;
	uint8_t *base;
	struct floor_ctl *ctl[FLOOR_MAX_RINGS];
	uint8_t *data[FLOOR_MAX_RINGS];
	int room_efd[FLOOR_MAX_RINGS];      /* the ring's producer sleeps on it */
	int cons_efd[FLOOR_MAX_RINGS][BENCH_MAX_SUB];  /* line i of ring r wakes this fd */
	int efds[BENCH_MAX_SUB + FLOOR_MAX_RINGS];     /* every fd, to close */
	unsigned nefd;
	bool fanin, latency;
};

static int floor_start(void **st, char *why, size_t whylen)
{
	(void)why;
	(void)whylen;
	*st = calloc(1, sizeof(struct floor));
	return *st ? 0 : -ENOMEM;
}

static void floor_stop(void *st)
{
	free(st);
}

static int new_efd(struct floor *f)
{
	int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);

	if (fd >= 0)
		f->efds[f->nefd++] = fd;
	return fd;
}

static void floor_finish(void *st)
{
	struct floor *f = st;

	for (unsigned i = 0; i < f->nefd; i++)
		close(f->efds[i]);
	if (f->base)
		munmap(f->base, f->size);
	memset(f, 0, sizeof *f);
}

static int floor_prepare(void *st, const struct params *p)
{
	struct floor *f = st;
	size_t ctl = (sizeof(struct floor_ctl) + 4095) & ~(size_t)4095;

	floor_finish(f);
	f->latency = p->wl == WL_LATENCY;
	f->fanin = p->npub > 1;
	f->nrings = f->latency ? 2 : (f->fanin ? p->npub : 1);
	f->ncons = (f->latency || f->fanin) ? 1 : p->nsub;
	f->size = (size_t)f->nrings * (ctl + FLOOR_CAPACITY);
	f->base = mmap(NULL, f->size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (f->base == MAP_FAILED) {
		f->base = NULL;
		return -errno;
	}
	for (unsigned r = 0; r < f->nrings; r++) {
		f->ctl[r] = (void *)(f->base + r * (ctl + FLOOR_CAPACITY));
		f->data[r] = (uint8_t *)f->ctl[r] + ctl;
		f->ctl[r]->prod.capacity = FLOOR_CAPACITY;
		f->ctl[r]->prod.magic = SHN_RING_MAGIC;
		if ((f->room_efd[r] = new_efd(f)) < 0)
			return -errno;
	}
	if (f->fanin) {                 /* one subscriber, one fd for all its rings */
		int fd = new_efd(f);

		if (fd < 0)
			return -errno;
		for (unsigned r = 0; r < f->nrings; r++)
			f->cons_efd[r][0] = fd;
	} else {
		for (unsigned r = 0; r < f->nrings; r++)
			for (unsigned i = 0; i < f->ncons; i++)
				if ((f->cons_efd[r][i] = new_efd(f)) < 0)
					return -errno;
	}
	return 0;
}

static int floor_supports(void *st, const struct params *p, char *why, size_t whylen)
{
	(void)st;
	if (p->npub > 1 && p->nsub > 1) {
		bench_fmt_why(why, whylen, "the floor has no N -> M shape");
		return -ENOTSUP;
	}
	return 0;
}

/* ---- publisher ------------------------------------------------------------ */

struct fpub {
	struct floor *f;
	unsigned r;
	struct shn_ring v;
	struct shn_ring_cons agg;           /* private: the slowest consumer's head */
	uint32_t woke[BENCH_MAX_SUB];
};

/* The broadcast ring's free space is bounded by its slowest reader: feed
 * ring.h's producer a private consumer line holding the minimum head. */
static void refresh_min(struct fpub *e)
{
	struct floor_ctl *c = e->f->ctl[e->r];
	uint64_t min = e->v.tail;

	for (unsigned i = 0; i < e->f->ncons; i++) {
		uint64_t h = atomic_load_explicit(&c->cons[i].head, memory_order_acquire);

		if (h < min)
			min = h;
	}
	atomic_store_explicit(&e->agg.head, min, memory_order_relaxed);
}

static void *floor_pub_open(void *st, const struct ep_args *a, int *err)
{
	struct floor *f = st;
	struct fpub *e = calloc(1, sizeof *e);

	if (!e) {
		*err = -ENOMEM;
		return NULL;
	}
	e->f = f;
	e->r = a->channel == BENCH_CH_PING ? 0 : a->channel == BENCH_CH_PONG ? 1 : (f->fanin ? a->idx : 0);
	shn_ring_init_view(&e->v, &f->ctl[e->r]->prod, &e->agg, f->data[e->r], FLOOR_CAPACITY);
	return e;
}

/* The waker's half, once for all readers of the ring: one fence, then each
 * reader's sleep word. */
static void wake_readers(struct fpub *e)
{
	struct floor_ctl *c = e->f->ctl[e->r];
	static const uint64_t one = 1;

	atomic_thread_fence(memory_order_seq_cst);
	for (unsigned i = 0; i < e->f->ncons; i++) {
		uint32_t s = atomic_load_explicit(&c->cons[i].sleep_seq, memory_order_relaxed);

		if ((s & 1u) && s != e->woke[i]) {
			e->woke[i] = s;
			if (write(e->f->cons_efd[e->r][i], &one, 8) < 0 && errno != EAGAIN)
				abort();
		}
	}
}

/* The pre-wake (docs/direct-path.md, "Wake-ups"): a ring with one reader
 * rings that reader, when it sleeps, before the record is written;
 * wake_readers' fenced look after the tail then finds that sleep rung. */
static void prewake_reader(struct fpub *e)
{
	static int on = -1;
	struct floor_ctl *c = e->f->ctl[e->r];
	static const uint64_t one = 1;
	uint32_t s;

	if (on < 0) {
		const char *v = getenv("SHMNOTIFY_DIRECT_PREWAKE");

		on = v == NULL || (strcasecmp(v, "off") != 0 && strcmp(v, "0") != 0);
	}
	if (!on || e->f->ncons != 1)
		return;
	s = atomic_load_explicit(&c->cons[0].sleep_seq, memory_order_relaxed);
	if ((s & 1u) && s != e->woke[0]) {
		e->woke[0] = s;
		if (write(e->f->cons_efd[e->r][0], &one, 8) < 0 && errno != EAGAIN)
			abort();
	}
}

/* Sleep until a record of len bytes fits: the sleeper's half of the
 * need-wakeup protocol on the ring's wait word. */
static void wait_room(struct fpub *e, uint32_t len)
{
	_Atomic uint32_t *w = &e->v.prod->wait_seq;
	int fd = e->f->room_efd[e->r];

	for (;;) {
		uint32_t s = atomic_load_explicit(w, memory_order_relaxed) | 1u;
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		uint64_t v;
		bool room;

		atomic_store_explicit(w, s, memory_order_relaxed);
		atomic_thread_fence(memory_order_seq_cst);
		refresh_min(e);
		shn_ring_load_head(&e->v);
		room = e->v.capacity - shn_ring_used(&e->v) >= shn_ring_cost(&e->v, len);
		if (!room) {
			poll(&pfd, 1, 100);
			if (read(fd, &v, 8) < 0 && errno != EAGAIN)
				abort();
		}
		atomic_store_explicit(w, s + 1u, memory_order_relaxed);
		if (room)
			return;
		refresh_min(e);
		shn_ring_load_head(&e->v);
		if (e->v.capacity - shn_ring_used(&e->v) >= shn_ring_cost(&e->v, len))
			return;
	}
}

static int floor_pub_send(void *ep, const struct bmsg *m, unsigned n)
{
	struct fpub *e = ep;

	prewake_reader(e);
	for (unsigned i = 0; i < n; i++) {
		uint32_t len = (uint32_t)SHN_ALIGN8(16u + m[i].key_len + m[i].data_len);
		uint8_t *rec;
		int err;

		while ((rec = shn_ring_reserve(&e->v, len, &err)) == NULL) {
			if (err)
				return err;
			refresh_min(e);
			if ((rec = shn_ring_reserve(&e->v, len, &err)) != NULL)
				break;
			/* make what is written visible before sleeping for room */
			shn_ring_publish(&e->v);
			wake_readers(e);
			wait_room(e, len);
		}
		((struct shn_rec_hdr *)rec)->len = len;
		((struct shn_rec_hdr *)rec)->type = FLOOR_REC;
		((struct shn_rec_hdr *)rec)->flags = 0;
		memcpy(rec + 8, &m[i].key_len, 4);
		memcpy(rec + 12, &m[i].data_len, 4);
		memcpy(rec + 16, m[i].key, m[i].key_len);
		memcpy(rec + 16 + m[i].key_len, m[i].data, m[i].data_len);
		shn_ring_commit(&e->v, len);
	}
	shn_ring_publish(&e->v);
	wake_readers(e);
	return 0;
}

static void floor_pub_close(void *ep)
{
	free(ep);
}

/* ---- subscriber ----------------------------------------------------------- */

struct fsub {
	struct floor *f;
	unsigned n;                         /* rings read */
	unsigned r[FLOOR_MAX_RINGS];
	struct shn_ring v[FLOOR_MAX_RINGS];
	int efd;
	bool woke;   /* the wake-up that ended the last poll is still in efd */
};

static void *floor_sub_open(void *st, const struct ep_args *a, int *err)
{
	struct floor *f = st;
	struct fsub *e = calloc(1, sizeof *e);
	unsigned line = 0;

	if (!e) {
		*err = -ENOMEM;
		return NULL;
	}
	e->f = f;
	if (a->channel == BENCH_CH_PING || a->channel == BENCH_CH_PONG) {
		e->n = 1;
		e->r[0] = a->channel == BENCH_CH_PING ? 0 : 1;
	} else if (f->fanin) {
		e->n = f->nrings;
		for (unsigned r = 0; r < f->nrings; r++)
			e->r[r] = r;
	} else {
		e->n = 1;
		e->r[0] = 0;
		line = a->idx;
	}
	for (unsigned i = 0; i < e->n; i++)
		shn_ring_init_view(&e->v[i], &f->ctl[e->r[i]]->prod, &f->ctl[e->r[i]]->cons[line],
				   f->data[e->r[i]], FLOOR_CAPACITY);
	e->efd = f->cons_efd[e->r[0]][line];
	return e;
}

static int drain(struct fsub *e, unsigned i, struct rx *rx)
{
	struct shn_ring *v = &e->v[i];
	const uint8_t *rec;
	uint32_t len, kl, dl;
	uint64_t start = v->head;
	int n = 0, rc;
	static const uint64_t one = 1;

	while ((rc = shn_ring_next(v, &rec, &len)) == 1) {
		memcpy(&kl, rec + 8, 4);
		memcpy(&dl, rec + 12, 4);
		bench_rx(rx, rec + 16 + kl, dl);
		shn_ring_consume(v, len);
		n++;
		if (v->head - start >= FLOOR_CAPACITY / 4) {
			shn_ring_release(v);   /* let a waiting producer go on */
			start = v->head;
		}
	}
	if (rc < 0)
		return rc;
	if (n) {
		shn_ring_release(v);
		/* hysteresis: wake a producer waiting for room only once half is free */
		if (v->tail_cache - v->head <= FLOOR_CAPACITY / 2 &&
		    shn_wake_needed(&v->prod->wait_seq, &v->woke_wait_seq) &&
		    write(e->f->room_efd[e->r[i]], &one, 8) < 0 && errno != EAGAIN)
			return -errno;
	}
	return n;
}

static int drain_all(struct fsub *e, struct rx *rx)
{
	int total = 0;

	for (unsigned i = 0; i < e->n; i++) {
		int n = drain(e, i, rx);

		if (n < 0)
			return n;
		total += n;
	}
	return total;
}

static int floor_sub_recv(void *ep, int timeout_ms, struct rx *rx)
{
	struct fsub *e = ep;
	bool may_sleep = true;
	uint64_t v;
	int n;

	/* the wake-up drained here, after the caller handled what it woke
	 * us for, not between the writer's wake-up and the notes (as
	 * libshmnotify's port does: one system call off each delivery) */
	if (e->woke && read(e->efd, &v, 8) < 0 && errno != EAGAIN)
		return -errno;
	e->woke = false;
	n = drain_all(e, rx);
	if (n != 0 || timeout_ms == 0)
		return n ? n : -ETIMEDOUT;
	for (unsigned i = 0; i < e->n && may_sleep; i++)
		may_sleep = shn_ring_prepare_sleep(&e->v[i]);
	if (may_sleep) {
		struct pollfd pfd = { .fd = e->efd, .events = POLLIN };

		e->woke = poll(&pfd, 1, timeout_ms) == 1;
	}
	for (unsigned i = 0; i < e->n; i++)
		shn_ring_finish_sleep(&e->v[i]);
	n = drain_all(e, rx);
	return n ? n : -ETIMEDOUT;
}

static void floor_sub_close(void *ep)
{
	free(ep);
}

const struct transport t_floor = {
	.name = "floor",
	.loss_policy = "lossless: a publisher with no room sleeps (eventfd need-wakeup) until "
		       "the readers have freed half the ring",
	.fanout_note = "one broadcast ring: each record written once, read by every subscriber "
		       "through its own head; the publisher waits for the slowest",
	.start = floor_start,
	.stop = floor_stop,
	.supports = floor_supports,
	.prepare = floor_prepare,
	.finish = floor_finish,
	.pub_open = floor_pub_open,
	.pub_send = floor_pub_send,
	.pub_close = floor_pub_close,
	.sub_open = floor_sub_open,
	.sub_recv = floor_sub_recv,
	.sub_close = floor_sub_close,
};
