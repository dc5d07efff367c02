/* SPDX-License-Identifier: MIT */
/*
 * loop_uring.c - the io_uring backend (liburing).
 *
 * Readiness: multishot poll (one SQE, a CQE per wake-up).  Control
 * messages: one IORING_OP_RECVMSG kept armed per connection, and at most one
 * IORING_OP_SENDMSG in flight per connection so replies leave in order; the
 * rest wait in the connection's queue.  Checking for completions is a read
 * of the CQ ring (no system call), so the busy broker loop may poll every
 * round; io_uring_submit() runs only when SQEs are queued.
 *
 * user_data is the address of the struct shnd_op embedded in the owner's
 * object; 0 marks our own cancel requests, whose completions carry nothing.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <liburing.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "loop_impl.h"

#define UR_SQ_ENTRIES 256
#define UR_CQ_ENTRIES 4096

struct ur_loop {
	struct shnd_loop base; /* first: the loop pointer is this struct's */
	struct io_uring ring;
	struct shnd_watch *zombie_watches;
	struct shnd_conn *zombie_conns;
};

static struct ur_loop *to_ur(struct shnd_loop *l)
{
	return ((struct ur_loop *)l);
}

/* An SQE, submitting what is queued when the SQ ring is full.  NULL only
 * when the kernel refuses to take any (then the caller fails the op). */
static struct io_uring_sqe *ur_sqe(struct ur_loop *u)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&u->ring);

	if (sqe == NULL) {
		io_uring_submit(&u->ring);
		sqe = io_uring_get_sqe(&u->ring);
	}
	return (sqe);
}

static int ur_cancel(struct ur_loop *u, struct shnd_op *op)
{
	struct io_uring_sqe *sqe;

	if (!op->inflight)
		return (0);
	sqe = ur_sqe(u);
	if (sqe == NULL)
		return (-EBUSY);
	io_uring_prep_cancel64(sqe, (uint64_t)(uintptr_t)op, 0);
	io_uring_sqe_set_data64(sqe, 0);
	return (0);
}

static void ur_release_zombies(struct ur_loop *u)
{
	struct shnd_watch *w;
	struct shnd_conn *c;

	while ((w = u->zombie_watches) != NULL) {
		u->zombie_watches = w->next_zombie;
		if (w->on_released)
			w->on_released(w);
	}
	while ((c = u->zombie_conns) != NULL) {
		u->zombie_conns = c->next_zombie;
		if (c->on_released)
			c->on_released(c);
	}
}

static void ur_destroy(struct shnd_loop *l)
{
	struct ur_loop *u = to_ur(l);

	ur_release_zombies(u);
	io_uring_queue_exit(&u->ring);
	free(u);
}

/* ---- watches ---------------------------------------------------------- */

/* A multishot poll posts a CQE per wake-up of the file (each eventfd
 * write), whether or not the owner read it: edge and level watches are
 * armed the same way, and level owners read until EAGAIN anyway. */

static int ur_arm_watch(struct ur_loop *u, struct shnd_watch *w)
{
	struct io_uring_sqe *sqe = ur_sqe(u);

	if (sqe == NULL)
		return (-EBUSY);
	io_uring_prep_poll_multishot(sqe, w->fd, POLLIN);
	io_uring_sqe_set_data(sqe, &w->op);
	w->op.inflight = true;
	return (0);
}

static int ur_watch_add(struct shnd_loop *l, struct shnd_watch *w)
{
	int err;

	w->op.kind = SHND_OP_WATCH;
	w->op.obj = w;
	w->op.inflight = false;
	err = ur_arm_watch(to_ur(l), w);
	if (err == 0)
		w->active = true;
	return (err);
}

static void ur_watch_maybe_release(struct ur_loop *u, struct shnd_watch *w)
{
	if (!w->active && !w->op.inflight) {
		w->next_zombie = u->zombie_watches;
		u->zombie_watches = w;
	}
}

static void ur_watch_del(struct shnd_loop *l, struct shnd_watch *w)
{
	struct ur_loop *u = to_ur(l);

	if (!w->active)
		return;
	w->active = false;
	if (ur_cancel(u, &w->op) < 0)
		shnd_err("cannot cancel a poll on fd %d", w->fd);
	ur_watch_maybe_release(u, w);
}

static void ur_watch_cqe(struct ur_loop *u, struct shnd_watch *w, int res, unsigned flags)
{
	if (!(flags & IORING_CQE_F_MORE))
		w->op.inflight = false;
	if (w->active && res > 0)
		w->on_ready(w);
	if (w->active && !w->op.inflight) {
		/* the kernel ended the multishot (overflow, cancel by
		 * someone else, error): arm again unless the fd is bad */
		if (res == -EBADF || res == -EINVAL || ur_arm_watch(u, w) < 0) {
			shnd_err("poll on fd %d ended: %s", w->fd, strerror(res < 0 ? -res : EIO));
			w->active = false;
		}
	}
	ur_watch_maybe_release(u, w);
}

/* ---- connections ------------------------------------------------------ */

static bool ur_conn_busy(const struct shnd_conn *c)
{
	return (c->recv_op.inflight || c->send_op.inflight || c->out_op.inflight);
}

static void ur_conn_maybe_release(struct ur_loop *u, struct shnd_conn *c)
{
	if (!c->active && !ur_conn_busy(c)) {
		/* the one message that was in flight is done now */
		shnd_sendq_drop(c, false);
		c->next_zombie = u->zombie_conns;
		u->zombie_conns = c;
	}
}

static void ur_report_close(struct shnd_conn *c, int err)
{
	if (c->active && !c->closed_reported) {
		c->closed_reported = true;
		c->on_close(c, err);
	}
}

static int ur_arm_recv(struct ur_loop *u, struct shnd_conn *c)
{
	struct io_uring_sqe *sqe = ur_sqe(u);

	if (sqe == NULL)
		return (-EBUSY);
	shnd_conn_prep_rx(c);
	io_uring_prep_recvmsg(sqe, c->fd, &c->rxmsg, MSG_CMSG_CLOEXEC);
	io_uring_sqe_set_data(sqe, &c->recv_op);
	c->recv_op.inflight = true;
	return (0);
}

static int ur_arm_send(struct ur_loop *u, struct shnd_conn *c)
{
	struct io_uring_sqe *sqe = ur_sqe(u);

	if (sqe == NULL)
		return (-EBUSY);
	io_uring_prep_sendmsg(sqe, c->fd, &c->sendq->msg, MSG_NOSIGNAL);
	io_uring_sqe_set_data(sqe, &c->send_op);
	c->send_op.inflight = true;
	return (0);
}

static int ur_arm_out(struct ur_loop *u, struct shnd_conn *c)
{
	struct io_uring_sqe *sqe = ur_sqe(u);

	if (sqe == NULL)
		return (-EBUSY);
	io_uring_prep_poll_add(sqe, c->fd, POLLOUT);
	io_uring_sqe_set_data(sqe, &c->out_op);
	c->out_op.inflight = true;
	return (0);
}

static int ur_conn_start(struct shnd_loop *l, struct shnd_conn *c)
{
	c->recv_op = (struct shnd_op){ .kind = SHND_OP_RECV, .obj = c };
	c->send_op = (struct shnd_op){ .kind = SHND_OP_SEND, .obj = c };
	c->out_op = (struct shnd_op){ .kind = SHND_OP_OUT, .obj = c };
	if (ur_arm_recv(to_ur(l), c) < 0)
		return (-EBUSY);
	c->active = true;
	return (0);
}

static int ur_conn_send(struct shnd_loop *l, struct shnd_conn *c, struct shnd_out *o)
{
	struct ur_loop *u = to_ur(l);

	shnd_sendq_push(c, o);
	if (!c->send_op.inflight && !c->out_op.inflight && c->sendq == o) {
		if (ur_arm_send(u, c) < 0) {
			c->failed = true;
			return (-EBUSY);
		}
	}
	return (0);
}

static void ur_conn_stop(struct shnd_loop *l, struct shnd_conn *c)
{
	struct ur_loop *u = to_ur(l);

	c->active = false;
	shnd_sendq_drop(c, c->send_op.inflight);
	ur_cancel(u, &c->recv_op);
	ur_cancel(u, &c->send_op);
	ur_cancel(u, &c->out_op);
	ur_conn_maybe_release(u, c);
}

static void ur_recv_cqe(struct ur_loop *u, struct shnd_conn *c, int res)
{
	c->recv_op.inflight = false;
	if (!c->active || c->closed_reported)
		return;
	if (res > 0) {
		c->on_msg(c, (size_t)res);
		if (!c->active || c->closed_reported)
			return;
	} else if (res == 0) {
		ur_report_close(c, 0);
		return;
	} else if (res != -EINTR && res != -EAGAIN && res != -ECANCELED) {
		ur_report_close(c, res);
		return;
	}
	if (ur_arm_recv(u, c) < 0)
		ur_report_close(c, -EBUSY);
}

static void ur_send_cqe(struct ur_loop *u, struct shnd_conn *c, int res)
{
	struct shnd_out *o;

	c->send_op.inflight = false;
	if (res == -EAGAIN && c->active) {
		/* a full socket: wait for room, then send the same message */
		if (ur_arm_out(u, c) < 0)
			ur_report_close(c, -EBUSY);
		return;
	}
	o = shnd_sendq_pop(c);
	if (res < 0)
		ur_report_close(c, res);
	else if (o != NULL && o->close_after)
		ur_report_close(c, 0);
	shnd_out_free(o);
	if (c->active && !c->closed_reported && c->sendq != NULL && ur_arm_send(u, c) < 0)
		ur_report_close(c, -EBUSY);
}

static void ur_out_cqe(struct ur_loop *u, struct shnd_conn *c, int res)
{
	c->out_op.inflight = false;
	if (!c->active || c->closed_reported)
		return;
	if (res < 0 && res != -ECANCELED && res != -EINTR) {
		ur_report_close(c, res);
		return;
	}
	if (c->sendq != NULL && ur_arm_send(u, c) < 0)
		ur_report_close(c, -EBUSY);
}

/* ---- polling ---------------------------------------------------------- */

static void ur_dispatch(struct ur_loop *u, uint64_t data, int res, unsigned flags)
{
	struct shnd_op *op = (struct shnd_op *)(uintptr_t)data;
	struct shnd_conn *c;

	if (op == NULL)
		return; /* a cancel request's own completion */
	if (op->kind == SHND_OP_WATCH) {
		ur_watch_cqe(u, op->obj, res, flags);
		return;
	}
	c = op->obj;
	switch (op->kind) {
	case SHND_OP_RECV:
		ur_recv_cqe(u, c, res);
		break;
	case SHND_OP_SEND:
		ur_send_cqe(u, c, res);
		break;
	case SHND_OP_OUT:
		ur_out_cqe(u, c, res);
		break;
	}
	ur_conn_maybe_release(u, c);
}

static int ur_poll(struct shnd_loop *l, int timeout_ms)
{
	struct ur_loop *u = to_ur(l);
	struct io_uring_cqe *cqe;
	int n = 0, ret = 0;

	ur_release_zombies(u);
	if (timeout_ms != 0 && io_uring_cq_ready(&u->ring) == 0) {
		if (timeout_ms < 0) {
			ret = io_uring_submit_and_wait(&u->ring, 1);
		} else {
			struct __kernel_timespec ts = {
				.tv_sec = timeout_ms / 1000,
				.tv_nsec = (long long)(timeout_ms % 1000) * 1000000,
			};

			ret = io_uring_submit_and_wait_timeout(&u->ring, &cqe, 1, &ts, NULL);
		}
	} else if (io_uring_sq_ready(&u->ring) > 0) {
		ret = io_uring_submit(&u->ring);
	}
	if (ret < 0 && ret != -EINTR && ret != -ETIME && ret != -EAGAIN && ret != -EBUSY)
		return (ret);
	while (io_uring_peek_cqe(&u->ring, &cqe) == 0) {
		uint64_t data = cqe->user_data;
		int res = cqe->res;
		unsigned flags = cqe->flags;

		/* mark it seen first: a callback may queue and submit */
		io_uring_cqe_seen(&u->ring, cqe);
		ur_dispatch(u, data, res, flags);
		n++;
	}
	/* re-armed receives and queued replies leave now, not a round later */
	if (n > 0 && io_uring_sq_ready(&u->ring) > 0)
		io_uring_submit(&u->ring);
	ur_release_zombies(u);
	return (n);
}

static const struct shnd_loop_ops ur_ops = {
	.name = "uring",
	.poll_free = true,
	.destroy = ur_destroy,
	.watch_add = ur_watch_add,
	.watch_del = ur_watch_del,
	.conn_start = ur_conn_start,
	.conn_send = ur_conn_send,
	.conn_stop = ur_conn_stop,
	.poll = ur_poll,
};

int shnd_loop_uring_create(struct shnd_loop **out)
{
	struct io_uring_params p;
	struct ur_loop *u = calloc(1, sizeof(*u));
	int err;

	if (u == NULL)
		return (-ENOMEM);
	memset(&p, 0, sizeof(p));
	/* no DEFER_TASKRUN: completions must show up in the CQ ring without
	 * entering the kernel, or peeking would not be free */
	p.flags = IORING_SETUP_CQSIZE | IORING_SETUP_SUBMIT_ALL;
	p.cq_entries = UR_CQ_ENTRIES;
	err = io_uring_queue_init_params(UR_SQ_ENTRIES, &u->ring, &p);
	if (err < 0) {
		free(u);
		return (err);
	}
	if (!(p.features & IORING_FEAT_NODROP)) {
		/* without it a CQ overflow would lose completions */
		io_uring_queue_exit(&u->ring);
		free(u);
		return (-ENOTSUP);
	}
	u->base.ops = &ur_ops;
	*out = &u->base;
	return (0);
}
