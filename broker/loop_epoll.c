/* SPDX-License-Identifier: MIT */
/*
 * loop_epoll.c - the epoll backend: level-triggered readiness, recvmsg and
 * sendmsg called directly.  Used where io_uring is unavailable.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "log.h"
#include "loop_impl.h"

/* Messages read from one connection per readiness event: one chatty
 * client cannot starve the others or the data plane. */
#define EP_RECV_BUDGET 16
#define EP_EVENTS 64

struct ep_loop {
	struct shnd_loop base; /* first: the loop pointer is this struct's */
	int epfd;
	struct shnd_watch *zombie_watches;
	struct shnd_conn *zombie_conns;
	struct shnd_conn *failed;
};

static struct ep_loop *to_ep(struct shnd_loop *l)
{
	return ((struct ep_loop *)l);
}

/* A connection whose socket failed: report it from poll, never from inside
 * the owner's own call, and stop listening to it meanwhile. */
static void ep_fail(struct ep_loop *e, struct shnd_conn *c, int err)
{
	if (c->failed)
		return;
	c->failed = true;
	c->err = err;
	epoll_ctl(e->epfd, EPOLL_CTL_DEL, c->fd, NULL);
	c->next_failed = e->failed;
	e->failed = c;
}

static void ep_release_zombies(struct ep_loop *e)
{
	struct shnd_conn *c, *fc;
	struct shnd_watch *w;

	/* failed before zombies: a stopped conn may sit on both lists */
	while ((fc = e->failed) != NULL) {
		e->failed = fc->next_failed;
		fc->next_failed = NULL;
		if (fc->active && !fc->closed_reported) {
			fc->closed_reported = true;
			fc->on_close(fc, fc->err);
		}
	}
	while ((w = e->zombie_watches) != NULL) {
		e->zombie_watches = w->next_zombie;
		if (w->on_released)
			w->on_released(w);
	}
	while ((c = e->zombie_conns) != NULL) {
		e->zombie_conns = c->next_zombie;
		if (c->on_released)
			c->on_released(c);
	}
}

static void ep_destroy(struct shnd_loop *l)
{
	struct ep_loop *e = to_ep(l);

	ep_release_zombies(e);
	close(e->epfd);
	free(e);
}

static int ep_watch_add(struct shnd_loop *l, struct shnd_watch *w)
{
	/* EPOLLET reports every write to an eventfd, read or not */
	struct epoll_event ev = { .events = EPOLLIN | (w->edge ? EPOLLET : 0) };

	w->op.kind = SHND_OP_WATCH;
	w->op.obj = w;
	ev.data.ptr = &w->op;
	if (epoll_ctl(to_ep(l)->epfd, EPOLL_CTL_ADD, w->fd, &ev) < 0)
		return (-errno);
	w->active = true;
	return (0);
}

static void ep_watch_del(struct shnd_loop *l, struct shnd_watch *w)
{
	struct ep_loop *e = to_ep(l);

	if (!w->active)
		return;
	w->active = false;
	epoll_ctl(e->epfd, EPOLL_CTL_DEL, w->fd, NULL);
	w->next_zombie = e->zombie_watches;
	e->zombie_watches = w;
}

static int ep_conn_start(struct shnd_loop *l, struct shnd_conn *c)
{
	struct epoll_event ev = { .events = EPOLLIN };

	c->recv_op.kind = SHND_OP_RECV;
	c->recv_op.obj = c;
	ev.data.ptr = &c->recv_op;
	if (epoll_ctl(to_ep(l)->epfd, EPOLL_CTL_ADD, c->fd, &ev) < 0)
		return (-errno);
	c->active = true;
	return (0);
}

static void ep_want_out(struct ep_loop *e, struct shnd_conn *c, bool on)
{
	struct epoll_event ev = { .events = EPOLLIN | (on ? EPOLLOUT : 0) };

	if (c->want_out == on || c->failed)
		return;
	c->want_out = on;
	ev.data.ptr = &c->recv_op;
	if (epoll_ctl(e->epfd, EPOLL_CTL_MOD, c->fd, &ev) < 0)
		ep_fail(e, c, -errno);
}

/* Send queued messages until the socket is full; then wait for EPOLLOUT. */
static void ep_flush(struct ep_loop *e, struct shnd_conn *c)
{
	struct shnd_out *o;

	while (c->active && !c->failed && (o = c->sendq) != NULL) {
		if (sendmsg(c->fd, &o->msg, MSG_DONTWAIT | MSG_NOSIGNAL) < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN) {
				ep_want_out(e, c, true);
				return;
			}
			ep_fail(e, c, -errno);
			return;
		}
		shnd_sendq_pop(c);
		if (o->close_after)
			ep_fail(e, c, 0);
		shnd_out_free(o);
	}
	if (c->sendq == NULL)
		ep_want_out(e, c, false);
}

static int ep_conn_send(struct shnd_loop *l, struct shnd_conn *c, struct shnd_out *o)
{
	shnd_sendq_push(c, o);
	if (!c->want_out)
		ep_flush(to_ep(l), c);
	return (0);
}

static void ep_conn_stop(struct shnd_loop *l, struct shnd_conn *c)
{
	struct ep_loop *e = to_ep(l);

	c->active = false;
	if (!c->failed)
		epoll_ctl(e->epfd, EPOLL_CTL_DEL, c->fd, NULL);
	shnd_sendq_drop(c, false);
	c->next_zombie = e->zombie_conns;
	e->zombie_conns = c;
}

static void ep_recv(struct ep_loop *e, struct shnd_conn *c)
{
	int i;

	for (i = 0; i < EP_RECV_BUDGET && c->active && !c->failed; i++) {
		ssize_t n;

		shnd_conn_prep_rx(c);
		n = recvmsg(c->fd, &c->rxmsg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
		if (n > 0) {
			c->on_msg(c, (size_t)n);
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return;
		ep_fail(e, c, n == 0 ? 0 : -errno);
		return;
	}
}

static int ep_poll(struct shnd_loop *l, int timeout_ms)
{
	struct ep_loop *e = to_ep(l);
	struct epoll_event evs[EP_EVENTS];
	int n, i;

	ep_release_zombies(e);
	n = epoll_wait(e->epfd, evs, EP_EVENTS, timeout_ms);
	if (n < 0)
		return (errno == EINTR ? 0 : -errno);
	for (i = 0; i < n; i++) {
		struct shnd_op *op = evs[i].data.ptr;

		if (op->kind == SHND_OP_WATCH) {
			struct shnd_watch *w = op->obj;

			if (w->active)
				w->on_ready(w);
			continue;
		}
		struct shnd_conn *c = op->obj;

		if (!c->active || c->failed)
			continue;
		if (evs[i].events & EPOLLOUT)
			ep_flush(e, c);
		if (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))
			ep_recv(e, c);
	}
	ep_release_zombies(e);
	return (n);
}

static const struct shnd_loop_ops ep_ops = {
	.name = "epoll",
	.poll_free = false,
	.destroy = ep_destroy,
	.watch_add = ep_watch_add,
	.watch_del = ep_watch_del,
	.conn_start = ep_conn_start,
	.conn_send = ep_conn_send,
	.conn_stop = ep_conn_stop,
	.poll = ep_poll,
};

int shnd_loop_epoll_create(struct shnd_loop **out)
{
	struct ep_loop *e = calloc(1, sizeof(*e));

	if (e == NULL)
		return (-ENOMEM);
	e->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (e->epfd < 0) {
		int err = -errno;

		free(e);
		return (err);
	}
	e->base.ops = &ep_ops;
	*out = &e->base;
	return (0);
}
