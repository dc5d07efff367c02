/* SPDX-License-Identifier: MIT */
/*
 * loop.c - backend selection and the parts both backends share.
 */
#include "loop_impl.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

int shnd_loop_create(enum shnd_io want, struct shnd_loop **out)
{
	int err;

	if (want == SHND_IO_URING || want == SHND_IO_AUTO) {
		err = shnd_loop_uring_create(out);
		if (err == 0)
			return (0);
		if (want == SHND_IO_URING) {
			shnd_err("--io uring: io_uring_queue_init failed: %s", strerror(-err));
			return (err);
		}
		shnd_warn("io_uring unavailable (io_uring_queue_init: %s); using epoll",
			  strerror(-err));
	}
	return (shnd_loop_epoll_create(out));
}

void shnd_loop_destroy(struct shnd_loop *l)
{
	if (l != NULL)
		l->ops->destroy(l);
}

const char *shnd_loop_name(const struct shnd_loop *l)
{
	return (l->ops->name);
}

bool shnd_loop_poll_is_free(const struct shnd_loop *l)
{
	return (l->ops->poll_free);
}

int shnd_watch_add(struct shnd_loop *l, struct shnd_watch *w)
{
	return (l->ops->watch_add(l, w));
}

void shnd_watch_del(struct shnd_loop *l, struct shnd_watch *w)
{
	l->ops->watch_del(l, w);
}

int shnd_conn_start(struct shnd_loop *l, struct shnd_conn *c)
{
	c->sendq = NULL;
	c->sendq_tail = &c->sendq;
	c->nqueued = 0;
	c->err = 0;
	c->closed_reported = false;
	c->want_out = false;
	c->failed = false;
	c->next_zombie = NULL;
	c->next_failed = NULL;
	return (l->ops->conn_start(l, c));
}

int shnd_conn_send(struct shnd_loop *l, struct shnd_conn *c, struct shnd_out *o)
{
	if (!c->active || c->failed) {
		shnd_out_free(o);
		return (-EPIPE);
	}
	return (l->ops->conn_send(l, c, o));
}

void shnd_conn_stop(struct shnd_loop *l, struct shnd_conn *c)
{
	if (c->active)
		l->ops->conn_stop(l, c);
}

int shnd_loop_poll(struct shnd_loop *l, int timeout_ms)
{
	return (l->ops->poll(l, timeout_ms));
}

struct shnd_out *shnd_out_new(const void *data, uint32_t len, const int *fds, int nfds)
{
	struct shnd_out *o = nfds <= SHN_MSG_MAX_FDS &&
			     CMSG_SPACE(sizeof(int) * SHN_MSG_MAX_FDS) <= sizeof(o->cmsg.buf)
			     ? malloc(sizeof(*o) + len) : NULL;
	int i;

	if (o == NULL) {
		for (i = 0; i < nfds; i++)
			close(fds[i]);
		return (NULL);
	}
	memset(o, 0, sizeof(*o));
	memcpy(o->data, data, len);
	o->len = len;
	o->nfds = nfds;
	for (i = 0; i < nfds; i++)
		o->fds[i] = fds[i];
	o->iov.iov_base = o->data;
	o->iov.iov_len = len;
	o->msg.msg_iov = &o->iov;
	o->msg.msg_iovlen = 1;
	if (nfds > 0) {
		struct cmsghdr *cm;

		o->msg.msg_control = o->cmsg.buf;
		o->msg.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)nfds);
		cm = CMSG_FIRSTHDR(&o->msg);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)nfds);
		memcpy(CMSG_DATA(cm), fds, sizeof(int) * (size_t)nfds);
	}
	return (o);
}

void shnd_out_free(struct shnd_out *o)
{
	int i;

	if (o == NULL)
		return;
	for (i = 0; i < o->nfds; i++)
		close(o->fds[i]);
	free(o);
}
