/* SPDX-License-Identifier: MIT */
/*
 * client.c - connecting to the broker and the control-message transport.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"
#include "shm/sockpath.h"

int shn_default_socket_path(char *buf, size_t len)
{
	if (buf == NULL)
		return (-EINVAL);
	return (shn__default_socket_path(buf, len));
}

void shn__broker_lost(shn_client *c)
{
	atomic_store(&c->broker_gone, true);
}

bool shn__broker_hung_up(shn_client *c)
{
	struct pollfd pfd = { .fd = c->sock, .events = 0 };

	if (atomic_load(&c->broker_gone))
		return (true);
	if (poll(&pfd, 1, 0) > 0 && (pfd.revents & (POLLHUP | POLLERR | POLLNVAL))) {
		shn__broker_lost(c);
		return (true);
	}
	return (false);
}

static void close_fds(int *fds, int n)
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
		close_fds(fds, got);
		if (nfds)
			*nfds = 0;
		return (-EPROTO);
	}
	return (n);
}

int shn__call(shn_client *c, void *req, size_t req_len, void *reply, size_t reply_max,
	      size_t *reply_len, int *fds, int *nfds)
{
	struct shn_msg_hdr *h = req;
	struct shn_msg_hdr *rh = reply;
	int room = nfds ? *nfds : 0;
	ssize_t n;
	int err;

	if (atomic_load(&c->broker_gone))
		return (-ENOTCONN);
	pthread_mutex_lock(&c->ctl_lock);
	h->magic = SHN_PROTO_MAGIC;
	h->version = SHN_PROTO_VERSION;
	h->id = ++c->next_msg_id;
	h->status = 0;
	do {
		n = send(c->sock, req, req_len, MSG_NOSIGNAL);
	} while (n < 0 && errno == EINTR);
	if (n < 0) {
		err = -errno;
		pthread_mutex_unlock(&c->ctl_lock);
		if (err == -EPIPE || err == -ECONNRESET || err == -ENOTCONN) {
			shn__broker_lost(c);
			return (-ENOTCONN);
		}
		return (err);
	}
	if (nfds)
		*nfds = room;
	n = shn__recv(c, reply, reply_max, fds, nfds, SHN__CTL_TIMEOUT_MS);
	pthread_mutex_unlock(&c->ctl_lock);
	if (n == -ETIMEDOUT || n == -EPROTO)
		shn__broker_lost(c);   /* a late reply would desynchronise the stream */
	if (n < 0)
		return ((int)n);
	if ((size_t)n < sizeof(*rh) || rh->magic != SHN_PROTO_MAGIC || rh->type != h->type ||
	    rh->id != h->id) {
		if (nfds) {
			close_fds(fds, *nfds);
			*nfds = 0;
		}
		return (-EPROTO);
	}
	if (reply_len)
		*reply_len = (size_t)n;
	return (rh->status);
}

static int connect_socket(const char *path, int *out)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd, err;

	if (strlen(path) >= sizeof(sa.sun_path))
		return (-ENAMETOOLONG);
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return (-errno);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		err = -errno;
		close(fd);
		return (err);
	}
	*out = fd;
	return (0);
}

/* HELLO: learn the broker's limits and receive the publish ring. */
static int hello(shn_client *c)
{
	struct shn_msg_hello req = { .hdr.type = SHN_MSG_HELLO };
	struct shn_msg_hello_reply rep;
	int fds[SHN_HELLO_NFDS], nfds = SHN_HELLO_NFDS, err;
	size_t rlen = 0;
	struct shn_ring_prod *prod;

	err = shn__call(c, &req, sizeof(req), &rep, sizeof(rep), &rlen, fds, &nfds);
	if (err < 0) {
		close_fds(fds, nfds);
		/* -EPROTONOSUPPORT: the broker speaks another protocol version */
		return (err == -EPROTONOSUPPORT ? -EPROTO : err);
	}
	if (rlen != sizeof(rep) || nfds != SHN_HELLO_NFDS ||
	    !shn_ring_capacity_ok(rep.pub_capacity)) {
		close_fds(fds, nfds);
		return (-EPROTO);
	}
	c->pub_capacity = rep.pub_capacity;
	c->max_capacity = rep.max_capacity;
	c->default_capacity = rep.default_capacity;
	c->doorbell_fd = fds[SHN_HELLO_FD_DOORBELL];
	c->room_fd = fds[SHN_HELLO_FD_ROOM];
	err = shn_segment_map(&c->pub_seg, fds[SHN_HELLO_FD_PUB],
			      SHN_RING_HDR_SIZE + (size_t)rep.pub_capacity, 1);
	if (err == 0)
		err = shn_segment_map(&c->broker_seg, fds[SHN_HELLO_FD_BROKER],
				      SHN_BROKER_SHM_SIZE, 0);
	else
		close(fds[SHN_HELLO_FD_BROKER]);
	if (err < 0)
		return (err == -EBADMSG ? -EPROTO : err);
	prod = (void *)((uint8_t *)c->pub_seg.addr + SHN_PUB_PROD_OFF);
	c->bshm = c->broker_seg.addr;
	if (prod->magic != SHN_RING_MAGIC || prod->capacity != rep.pub_capacity ||
	    c->bshm->magic != SHN_BROKER_SHM_MAGIC)
		return (-EPROTO);
	shn_ring_init_view(&c->pub, prod,
			   (void *)((uint8_t *)c->pub_seg.addr + SHN_PUB_CONS_OFF),
			   (uint8_t *)c->pub_seg.addr + SHN_RING_HDR_SIZE, rep.pub_capacity);
	return (0);
}

static void client_free(shn_client *c)
{
	while (c->ports) {
		shn_port *p = c->ports;
		c->ports = p->next;
		shn__port_free(p);
	}
	while (c->subs) {
		struct shn__sub *s = c->subs;
		c->subs = s->next;
		free(s);
	}
	shn_segment_close(&c->pub_seg);
	shn_segment_close(&c->broker_seg);
	if (c->doorbell_fd >= 0)
		close(c->doorbell_fd);
	if (c->room_fd >= 0)
		close(c->room_fd);
	if (c->sock >= 0)
		close(c->sock);
	pthread_mutex_destroy(&c->ctl_lock);
	pthread_mutex_destroy(&c->pub_lock);
	free(c);
}

int shn_connect(const char *socket_path, shn_client **out)
{
	char path[256];
	shn_client *c;
	int err;

	if (out == NULL)
		return (-EINVAL);
	*out = NULL;
	err = shn__resolve_socket_path(socket_path, path, sizeof(path));
	if (err < 0)
		return (err);
	c = calloc(1, sizeof(*c));
	if (c == NULL)
		return (-ENOMEM);
	c->sock = c->doorbell_fd = c->room_fd = -1;
	c->pub_seg.fd = c->broker_seg.fd = -1;
	c->next_conn = 1;
	c->next_batch_id = 1;
	pthread_mutex_init(&c->ctl_lock, NULL);
	pthread_mutex_init(&c->pub_lock, NULL);
	err = connect_socket(path, &c->sock);
	if (err == 0)
		err = hello(c);
	if (err < 0) {
		client_free(c);
		return (err);
	}
	*out = c;
	return (0);
}

void shn_disconnect(shn_client *c)
{
	if (c == NULL)
		return;
	/* Closing the socket is the goodbye: the broker routes what is left
	 * in our publish ring, then reclaims our ports (DESIGN rule 9). */
	client_free(c);
}

int shn_stats_json(shn_client *c, char **json)
{
	struct shn_msg_hdr req = { .type = SHN_MSG_STATS };
	union {
		struct shn_msg_stats_reply r;
		char buf[SHN_MSG_MAX];
	} rep;
	char *doc = NULL;
	size_t len = 0;
	ssize_t n;
	int err;

	if (c == NULL || json == NULL)
		return (-EINVAL);
	*json = NULL;
	if (atomic_load(&c->broker_gone))
		return (-ENOTCONN);
	pthread_mutex_lock(&c->ctl_lock);
	req.magic = SHN_PROTO_MAGIC;
	req.version = SHN_PROTO_VERSION;
	req.id = ++c->next_msg_id;
	if (send(c->sock, &req, sizeof(req), MSG_NOSIGNAL) < 0) {
		err = (errno == EPIPE || errno == ECONNRESET) ? -ENOTCONN : -errno;
		goto out;
	}
	for (;;) {
		n = shn__recv(c, rep.buf, sizeof(rep.buf), NULL, NULL, SHN__CTL_TIMEOUT_MS);
		if (n < 0) {
			err = (int)n;
			goto out;
		}
		if ((size_t)n < sizeof(rep.r) || rep.r.hdr.magic != SHN_PROTO_MAGIC ||
		    rep.r.hdr.type != SHN_MSG_STATS || rep.r.hdr.id != req.id ||
		    rep.r.len > (size_t)n - sizeof(rep.r)) {
			err = (n >= (ssize_t)sizeof(rep.r.hdr) && rep.r.hdr.status < 0)
				? rep.r.hdr.status : -EPROTO;
			goto out;
		}
		if (rep.r.hdr.status < 0) {
			err = rep.r.hdr.status;
			goto out;
		}
		char *grown = realloc(doc, len + rep.r.len + 1);
		if (grown == NULL) {
			err = -ENOMEM;
			goto out;
		}
		doc = grown;
		memcpy(doc + len, rep.r.text, rep.r.len);
		len += rep.r.len;
		doc[len] = '\0';
		if (rep.r.flags & SHN_STATS_LAST)
			break;
	}
	err = 0;
out:
	pthread_mutex_unlock(&c->ctl_lock);
	if (err < 0) {
		/* a half-read reply would desynchronise the stream: give up on it */
		free(doc);
		if (err != -ENOTCONN && err != -ENOMEM)
			shn__broker_lost(c);
		return (err);
	}
	if (doc == NULL && (doc = calloc(1, 1)) == NULL)
		return (-ENOMEM);
	*json = doc;
	return ((int)len);
}
