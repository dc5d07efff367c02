/* SPDX-License-Identifier: MIT */
/*
 * publish.c - shn_notify(): one batch, one record, one release of the tail.
 *
 * The hot path makes no system call: the broker is rung only when it
 * announced it sleeps (its sleep word is odd and we have not rung for that
 * value yet), and a publisher sleeps only when the ring is full.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

/* Validate the batch and compute its record size. */
static int batch_size(const shn_notification *batch, size_t n, uint64_t *size)
{
	uint64_t sz = sizeof(struct shn_pub_batch);

	for (size_t i = 0; i < n; i++) {
		const shn_notification *x = &batch[i];

		if (x->event == 0 || (x->event & SHN_EV_SYSTEM) != 0)
			return (-EINVAL);
		if (x->key == NULL || x->key_len == 0 || x->key_len > SHN_KEY_MAX)
			return (-EINVAL);
		if (x->data_len > SHN_DATA_MAX || (x->data_len != 0 && x->data == NULL))
			return (-EINVAL);
		sz += shn_pub_note_size(x->key_len, x->data_len);
	}
	*size = sz;
	return (0);
}

static void write_record(shn_client *c, uint8_t *dst, const shn_notification *batch, size_t n,
			 uint32_t len)
{
	struct shn_pub_batch *b = (void *)dst;
	struct timespec ts;
	uint8_t *w = dst + sizeof(*b);

	clock_gettime(CLOCK_MONOTONIC, &ts);
	b->h.len = len;
	b->h.type = SHN_REC_BATCH;
	b->h.flags = 0;
	b->count = (uint32_t)n;
	b->flags = 0;
	b->batch_id = c->next_batch_id++;
	b->time_ns = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
	b->reserved = 0;
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
 * most half full: hysteresis), or the broker goes away. */
static int wait_for_room(shn_client *c, uint32_t len)
{
	struct pollfd pfd[2] = {
		{ .fd = c->room_fd, .events = POLLIN },
		{ .fd = c->sock, .events = 0 },
	};
	int err, r;

	if (!shn_ring_prepare_wait(&c->pub, len, &err))
		return (err);
	do {
		r = poll(pfd, 2, -1);
	} while (r < 0 && errno == EINTR);
	shn_ring_finish_wait(&c->pub);
	if (r < 0)
		return (-errno);
	if (pfd[0].revents & POLLIN) {
		uint64_t v;
		if (read(c->room_fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
			return (-errno);
	}
	if (pfd[1].revents & (POLLHUP | POLLERR)) {
		shn__broker_lost(c);
		return (-ENOTCONN);
	}
	return (0);
}

int shn_notify(shn_client *c, const shn_notification *batch, size_t n, unsigned flags)
{
	uint64_t size;
	uint8_t *dst;
	int err;

	if (c == NULL || batch == NULL || n == 0 || n > UINT32_MAX)
		return (-EINVAL);
	if (flags & ~(SHN_NOTIFY_SYNC | SHN_NOTIFY_NONBLOCK))
		return (-EINVAL);
	if (flags & SHN_NOTIFY_SYNC)
		return (-EOPNOTSUPP);   /* synchronous delivery: not in this version */
	err = batch_size(batch, n, &size);
	if (err < 0)
		return (err);
	if (size > shn_ring_max_record(c->pub_capacity))
		return (-EMSGSIZE);
	if (atomic_load_explicit(&c->broker_gone, memory_order_relaxed))
		return (-ENOTCONN);

	pthread_mutex_lock(&c->pub_lock);
	for (;;) {
		dst = shn_ring_reserve(&c->pub, (uint32_t)size, &err);
		if (dst != NULL)
			break;
		if (err == 0 && (flags & SHN_NOTIFY_NONBLOCK))
			err = -EAGAIN;
		if (err == 0)
			err = wait_for_room(c, (uint32_t)size);
		if (err < 0) {
			pthread_mutex_unlock(&c->pub_lock);
			return (err == -EBADMSG ? -EPROTO : err);
		}
	}
	write_record(c, dst, batch, n, (uint32_t)size);
	shn_ring_commit(&c->pub, (uint32_t)size);
	shn_ring_publish(&c->pub);
	if (shn_wake_needed(&c->bshm->sleep_seq, &c->rung_seq)) {
		uint64_t one = 1;
		if (write(c->doorbell_fd, &one, sizeof(one)) < 0) {
			/* EAGAIN: counter saturated, the broker has a wake-up pending */
		}
	}
	pthread_mutex_unlock(&c->pub_lock);
	return (0);
}
