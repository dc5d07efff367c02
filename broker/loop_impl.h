/* SPDX-License-Identifier: MIT */
/*
 * loop_impl.h - what loop.c and the two backends share; nothing outside
 * the loop includes it.
 */
#ifndef SHND_LOOP_IMPL_H
#define SHND_LOOP_IMPL_H

#include "loop.h"

enum {
	SHND_OP_WATCH = 1,
	SHND_OP_RECV,
	SHND_OP_SEND,
	SHND_OP_OUT, /* waiting for room to send after EAGAIN */
};

struct shnd_loop_ops {
	const char *name;
	bool poll_free;
	void (*destroy)(struct shnd_loop *l);
	int (*watch_add)(struct shnd_loop *l, struct shnd_watch *w);
	void (*watch_del)(struct shnd_loop *l, struct shnd_watch *w);
	int (*conn_start)(struct shnd_loop *l, struct shnd_conn *c);
	int (*conn_send)(struct shnd_loop *l, struct shnd_conn *c, struct shnd_out *o);
	void (*conn_stop)(struct shnd_loop *l, struct shnd_conn *c);
	int (*poll)(struct shnd_loop *l, int timeout_ms);
};

struct shnd_loop {
	const struct shnd_loop_ops *ops;
};

/* Each returns 0 and a loop, or -errno (the reason io_uring is unusable). */
int shnd_loop_uring_create(struct shnd_loop **out);
int shnd_loop_epoll_create(struct shnd_loop **out);

static inline void shnd_sendq_push(struct shnd_conn *c, struct shnd_out *o)
{
	o->next = NULL;
	if (c->sendq == NULL)
		c->sendq_tail = &c->sendq;
	*c->sendq_tail = o;
	c->sendq_tail = &o->next;
	c->nqueued++;
}

static inline struct shnd_out *shnd_sendq_pop(struct shnd_conn *c)
{
	struct shnd_out *o = c->sendq;

	if (o != NULL) {
		c->sendq = o->next;
		if (c->sendq == NULL)
			c->sendq_tail = &c->sendq;
		c->nqueued--;
	}
	return (o);
}

/* Drop every queued message except the first one when it is in flight
 * (its buffers must live until its completion). */
static inline void shnd_sendq_drop(struct shnd_conn *c, bool keep_first)
{
	struct shnd_out *keep = NULL, *o;

	if (keep_first)
		keep = shnd_sendq_pop(c);
	while ((o = shnd_sendq_pop(c)) != NULL)
		shnd_out_free(o);
	if (keep != NULL)
		shnd_sendq_push(c, keep);
}

/* Prepare the receive header for one message into rxbuf: no control
 * buffer, so descriptors a client passes are discarded by the kernel
 * (MSG_CTRUNC) instead of landing in the broker's table. */
static inline void shnd_conn_prep_rx(struct shnd_conn *c)
{
	c->rxiov.iov_base = c->rxbuf;
	c->rxiov.iov_len = c->rxcap;
	c->rxmsg.msg_name = NULL;
	c->rxmsg.msg_namelen = 0;
	c->rxmsg.msg_iov = &c->rxiov;
	c->rxmsg.msg_iovlen = 1;
	c->rxmsg.msg_control = NULL;
	c->rxmsg.msg_controllen = 0;
	c->rxmsg.msg_flags = 0;
}

#endif
