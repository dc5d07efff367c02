/* SPDX-License-Identifier: MIT */
/*
 * call.c - the control conversation with the broker: send a request and
 * wait for its reply (shn__call), receive one message with its descriptors
 * (shn__recv), note the messages that are not replies (SYNC_DONE, for the
 * publisher waiting for it; the direct path's, which direct.c answers),
 * and mark the connection lost when the stream broke.  Near the bottom of
 * libclient: it calls only direct.c (which calls nothing of libclient), so
 * that the files that ask the broker something (client.c, port.c, acl.c)
 * do not call each other to do so.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "call.h"
#include "direct.h"

void shn__broker_lost(shn_client *c)
{
	/* Shutting our end down makes the watcher see a hang-up even when the
	 * broker is alive but the stream broke (timeout, protocol error): it
	 * then reconnects, and the broker reclaims the old connection. */
	if (!atomic_exchange(&c->broker_gone, true) && c->sock >= 0)
		shutdown(c->sock, SHUT_RDWR);
}

void shn__close_fds(int *fds, int n)
{
	for (int i = 0; i < n; i++)
		if (fds[i] >= 0)
			close(fds[i]);
}

ssize_t shn__recv(shn_client *c, void *buf, size_t len, int *fds, int *nfds, int timeout_ms)
{
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(sizeof(int) * SHN_MSG_MAX_FDS)];
	} cbuf;
	struct iovec iov = { .iov_base = buf, .iov_len = len };
	struct msghdr mh = {
		.msg_iov = &iov, .msg_iovlen = 1,
		.msg_control = cbuf.buf, .msg_controllen = sizeof(cbuf.buf),
	};
	struct pollfd pfd = { .fd = c->sock, .events = POLLIN };
	int room = nfds ? *nfds : 0, got = 0;
	ssize_t n;

	if (nfds)
		*nfds = 0;
	for (;;) {
		int r = poll(&pfd, 1, timeout_ms);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return (-errno);
		if (r == 0)
			return (-ETIMEDOUT);
		break;
	}
	do {
		n = recvmsg(c->sock, &mh, MSG_CMSG_CLOEXEC);
	} while (n < 0 && errno == EINTR);
	if (n < 0) {
		int err = -errno;
		if (err == -ECONNRESET || err == -EPIPE)
			shn__broker_lost(c);
		return (err == -ECONNRESET || err == -EPIPE) ? -ENOTCONN : err;
	}
	if (n == 0) {
		shn__broker_lost(c);
		return (-ENOTCONN);
	}
	for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm)) {
		if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
			continue;
		int k = (int)((cm->cmsg_len - CMSG_LEN(0)) / sizeof(int));
		int *in = (int *)CMSG_DATA(cm);
		for (int i = 0; i < k; i++) {
			int fd;
			memcpy(&fd, &in[i], sizeof(fd));
			if (got < room)
				fds[got++] = fd;
			else
				close(fd);   /* more than we asked for: never leak */
		}
	}
	if (nfds)
		*nfds = got;
	if (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) {
		shn__close_fds(fds, got);
		if (nfds)
			*nfds = 0;
		return (-EPROTO);
	}
	return (n);
}

int shn__call_locked(shn_client *c, void *req, size_t req_len, void *reply, size_t reply_max,
		     size_t *reply_len, int *fds, int *nfds)
{
	struct shn_msg_hdr *h = req;
	struct shn_msg_hdr *rh = reply;
	union {
		struct shn_msg_hdr h;
		uint8_t buf[SHN_MSG_MAX];
	} msg;
	int room = nfds ? *nfds : 0;
	int got[SHN_MSG_MAX_FDS], ngot = 0;
	ssize_t n;
	int err;

	if (atomic_load(&c->broker_gone))
		return (-ENOTCONN);
	h->magic = SHN_PROTO_MAGIC;
	h->version = SHN_PROTO_VERSION;
	h->id = ++c->next_msg_id;
	h->status = 0;
	do {
		n = send(c->sock, req, req_len, MSG_NOSIGNAL);
	} while (n < 0 && errno == EINTR);
	if (n < 0) {
		err = -errno;
		if (err == -EPIPE || err == -ECONNRESET || err == -ENOTCONN) {
			shn__broker_lost(c);
			return (-ENOTCONN);
		}
		return (err);
	}
	if (nfds)
		*nfds = 0;
	for (;;) {
		/* into a buffer for any message: one sent unasked (DIRECT_OPEN)
		 * may be longer than the reply expected, and carry more
		 * descriptors than the reply (which often carries none).
		 * Received with no room for them, they were closed and the
		 * ring declined: what its publisher had written there already
		 * was lost without a loss report. */
		ngot = SHN_MSG_MAX_FDS;
		n = shn__recv(c, msg.buf, sizeof(msg.buf), got, &ngot, SHN__CTL_TIMEOUT_MS);
		if (n < 0 || !shn__async_message(c, msg.buf, (size_t)n, got, ngot))
			break;
		shn__close_fds(got, ngot);   /* an unasked message's are not the reply's */
	}
	if (n >= 0) {
		/* the reply's descriptors, as many as the caller has room for */
		int keep = ngot < room ? ngot : room;

		if (keep > 0)
			memcpy(fds, got, (size_t)keep * sizeof(int));
		shn__close_fds(got + keep, ngot - keep);
		if (nfds)
			*nfds = keep;
	}
	if (n == -ETIMEDOUT || n == -EPROTO)
		shn__broker_lost(c);   /* a late reply would desynchronise the stream */
	if (n < 0)
		return ((int)n);
	if ((size_t)n > reply_max) {
		shn__broker_lost(c);   /* as a truncated reply was before */
		n = -EPROTO;
	} else {
		memcpy(reply, msg.buf, (size_t)n);
	}
	if (n < 0 || (size_t)n < sizeof(*rh) || rh->magic != SHN_PROTO_MAGIC || rh->type != h->type ||
	    rh->id != h->id) {
		if (nfds) {
			shn__close_fds(fds, *nfds);
			*nfds = 0;
		}
		return (-EPROTO);
	}
	if (reply_len)
		*reply_len = (size_t)n;
	return (rh->status);
}

int shn__call(shn_client *c, void *req, size_t req_len, void *reply, size_t reply_max,
	      size_t *reply_len, int *fds, int *nfds)
{
	int err;

	if (atomic_load(&c->broker_gone))
		return (-ENOTCONN);
	pthread_mutex_lock(&c->ctl_lock);
	err = shn__call_locked(c, req, req_len, reply, reply_max, reply_len, fds, nfds);
	pthread_mutex_unlock(&c->ctl_lock);
	return (err);
}

bool shn__async_message(shn_client *c, const void *msg, size_t len, int *fds, int nfds)
{
	const struct shn_msg_sync_done *m = msg;

	if (shn__direct_async(c, msg, len, fds, nfds))
		return (true);
	if (len != sizeof(*m) || m->hdr.magic != SHN_PROTO_MAGIC ||
	    m->hdr.type != SHN_MSG_SYNC_DONE)
		return (false);
	for (struct shn__sync_wait *w = c->sync_waits; w; w = w->next)
		if (atomic_load(&w->batch_id) == m->batch_id && !w->done) {
			uint64_t one = 1;

			w->done = true;
			/* -EACCES: refused by the broker's ACL, nobody saw it */
			w->status = m->hdr.status == SHN_SYNC_CANCELED_WIRE ? SHN_NOTIFY_CANCELED :
				    m->hdr.status == -EACCES ? -EACCES : 0;
			/* the waiters asleep on the condition, and the one
			 * polling the socket that this thread read instead */
			pthread_cond_broadcast(&c->sync_cond);
			if (c->sync_reading && c->sync_kick >= 0 &&
			    write(c->sync_kick, &one, sizeof(one)) < 0) {
				/* EAGAIN: a kick is pending already */
			}
			break;
		}
	return (true);   /* a waiter that gave up (timeout) no longer listens */
}

int shn__take_unasked_locked(shn_client *c)
{
	union {
		struct shn_msg_hdr h;
		uint8_t buf[SHN_MSG_MAX];
	} msg;
	int fds[SHN_MSG_MAX_FDS], nfds;
	ssize_t n;

	for (;;) {
		nfds = SHN_MSG_MAX_FDS;
		n = shn__recv(c, msg.buf, sizeof(msg.buf), fds, &nfds, 0);
		if (n < 0)
			return ((int)n);   /* -ETIMEDOUT: nothing left; a hang-up: the watcher's */
		if (!shn__async_message(c, msg.buf, (size_t)n, fds, nfds))
			shn__broker_lost(c);   /* a reply nobody asked for */
		shn__close_fds(fds, nfds);
		if (atomic_load(&c->broker_gone))
			return (-ENOTCONN);
	}
}

void shn__take_unasked(shn_client *c)
{
	pthread_mutex_lock(&c->ctl_lock);
	(void)shn__take_unasked_locked(c);
	pthread_mutex_unlock(&c->ctl_lock);
}
