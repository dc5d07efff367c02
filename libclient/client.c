/* SPDX-License-Identifier: MIT */
/*
 * client.c - a client: connecting (HELLO), its name, the watcher thread that
 * sees the broker go and reconnects (reopening every port and restoring
 * every subscription: the top of libclient, calling port.c and acl.c),
 * disconnecting, statistics.  The control conversation itself is call.c's.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "call.h"
#include "port.h"
#include "acl.h"
#include "direct.h"
#include "direct_pub.h"
#include "shm/sockpath.h"

int shn_default_socket_path(char *buf, size_t len)
{
	if (buf == NULL)
		return (-EINVAL);
	return (shn__default_socket_path(buf, len));
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

/* DIRECT_SETUP, once after a HELLO that granted the direct path: the
 * filter table and our port map (docs/direct-path.md). */
static int direct_setup(shn_client *c)
{
	struct shn_msg_direct_setup req = { .hdr.type = SHN_MSG_DIRECT_SETUP,
					    .fanout = c->dp_fanout };
	struct shn_msg_direct_setup_reply rep;
	int fds[SHN_DSETUP_NFDS], nfds = SHN_DSETUP_NFDS, err;
	size_t rlen = 0;

	err = shn__call(c, &req, sizeof(req), &rep, sizeof(rep), &rlen, fds, &nfds);
	if (err < 0) {
		shn__close_fds(fds, nfds);
		return (err);
	}
	if (rlen != sizeof(rep)) {
		shn__close_fds(fds, nfds);
		return (-EPROTO);
	}
	return (shn__direct_map(c, &rep, fds, nfds));
}

/* HELLO: learn the broker's limits and receive the publish ring; ask for
 * the direct path unless SHMNOTIFY_DIRECT=off. */
static int hello(shn_client *c)
{
	struct shn_msg_hello req = { .hdr.type = SHN_MSG_HELLO, .flags = c->hello_ask };
	struct shn_msg_hello_reply rep;
	int fds[SHN_HELLO_NFDS], nfds = SHN_HELLO_NFDS, err;
	size_t rlen = 0;
	struct shn_ring_prod *prod;

	err = shn__call(c, &req, sizeof(req), &rep, sizeof(rep), &rlen, fds, &nfds);
	if (err < 0) {
		shn__close_fds(fds, nfds);
		/* -EPROTONOSUPPORT: the broker speaks another protocol version */
		return (err == -EPROTONOSUPPORT ? -EPROTO : err);
	}
	if (rlen != sizeof(rep) || nfds != SHN_HELLO_NFDS ||
	    !shn_ring_capacity_ok(rep.pub_capacity)) {
		shn__close_fds(fds, nfds);
		return (-EPROTO);
	}
	c->pub_capacity = rep.pub_capacity;
	c->max_capacity = rep.max_capacity;
	c->default_capacity = rep.default_capacity;
	c->hello_flags = rep.flags;
	atomic_store(&c->pub_acl, (rep.flags & SHN_HELLO_F_PUB_ACL) != 0);
	c->doorbell_fd = fds[SHN_HELLO_FD_DOORBELL];
	c->room_fd = fds[SHN_HELLO_FD_ROOM];
	err = shn_segment_map(&c->pub_seg, fds[SHN_HELLO_FD_PUB],
			      SHN_RING_HDR_SIZE + (size_t)rep.pub_capacity, 1);
	if (err < 0) {
		close(fds[SHN_HELLO_FD_BROKER]);
		return (err == -EBADMSG ? -EPROTO : err);
	}
	err = shn_segment_map(&c->broker_seg, fds[SHN_HELLO_FD_BROKER], SHN_BROKER_SHM_SIZE, 0);
	if (err < 0)
		return (err == -EBADMSG ? -EPROTO : err);
	c->interest = (const void *)((const uint8_t *)c->broker_seg.addr + SHN_INTEREST_OFF);
	prod = (void *)((uint8_t *)c->pub_seg.addr + SHN_PUB_PROD_OFF);
	c->bshm = c->broker_seg.addr;
	if (prod->magic != SHN_RING_MAGIC || prod->capacity != rep.pub_capacity ||
	    c->bshm->magic != SHN_BROKER_SHM_MAGIC)
		return (-EPROTO);
	/* the broker's configured maxima: a record beyond them is a ring error */
	c->max_key = SHN_KEY_MAX;
	c->max_data = SHN_DATA_MAX;
	if (c->bshm->flags & SHN_BROKER_F_LIMITS) {
		if (c->bshm->max_key_len < SHN_KEY_MAX)
			c->max_key = c->bshm->max_key_len;
		if (c->bshm->max_data_len < SHN_DATA_MAX)
			c->max_data = c->bshm->max_data_len;
	}
	shn_ring_init_view(&c->pub, prod,
			   (void *)((uint8_t *)c->pub_seg.addr + SHN_PUB_CONS_OFF),
			   (uint8_t *)c->pub_seg.addr + SHN_RING_HDR_SIZE, rep.pub_capacity);
	if (c->hello_flags & SHN_HELLO_F_DIRECT)
		return (direct_setup(c));
	return (0);
}

_Static_assert(SHN_NAME_MAX == SHN_NAME_MAX_WIRE, "one name limit");

/* SET_NAME with name (len bytes, 0: none) to the broker behind c, whose
 * ctl_lock the caller holds.  -EOPNOTSUPP when that broker does not take
 * names (an older one: it would disconnect us for an unknown message). */
static int send_name_locked(shn_client *c, const char *name, size_t len)
{
	union {
		struct shn_msg_set_name m;
		uint8_t raw[sizeof(struct shn_msg_set_name) + SHN_NAME_MAX];
	} req;
	struct shn_msg_reply rep;

	if (!(c->hello_flags & SHN_HELLO_F_NAME))
		return (-EOPNOTSUPP);
	memset(&req, 0, sizeof(req));
	req.m.hdr.type = SHN_MSG_SET_NAME;
	req.m.name_len = (uint16_t)len;
	memcpy(req.m.name, name, len);
	return (shn__call_locked(c, &req, sizeof(req.m) + len, &rep, sizeof(rep), NULL, NULL,
				 NULL));
}

int shn_set_name(shn_client *c, const char *name)
{
	size_t len = name ? strnlen(name, SHN_NAME_MAX + 1) : 0;
	int err;

	if (c == NULL || (len > 0 && !shn_name_valid((const uint8_t *)name, len)))
		return (-EINVAL);
	pthread_mutex_lock(&c->ctl_lock);
	/* Kept whatever this broker answers: it is the client's name, and the
	 * watcher sends it to every broker it reconnects to. */
	memcpy(c->name, name ? name : "", len);
	c->name[len] = '\0';
	err = atomic_load(&c->broker_gone) ? -ENOTCONN : send_name_locked(c, c->name, len);
	pthread_mutex_unlock(&c->ctl_lock);
	return (err);
}

/* The watcher runs on a stack of its own mapping.  Why not glibc's: after
 * fork(), glibc hands the dead parent thread's cached stack to the child's
 * next thread, which then gets the same pthread_t; ThreadSanitizer aborts on
 * that ("dup thread with used id") whenever a test forks a connected
 * process, and a child that connects is the normal case here. */
#define SHN__WATCHER_STACK (2u * 1024u * 1024u)  /* sanitizers put TLS here too */

/* Free the connection-level resources of c (not its ports or lists). */
static void conn_close(shn_client *c)
{
	shn_segment_close(&c->pub_seg);
	shn_segment_close(&c->broker_seg);
	shn__direct_unmap(c);
	shn__dpub_free(c);
	if (c->doorbell_fd >= 0)
		close(c->doorbell_fd);
	if (c->room_fd >= 0)
		close(c->room_fd);
	if (c->sock >= 0)
		close(c->sock);
	c->doorbell_fd = c->room_fd = c->sock = -1;
	c->bshm = NULL;
	c->interest = NULL;
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
	conn_close(c);
	free(c->dp_runs);
	if (c->stop_fd >= 0)
		close(c->stop_fd);
	if (c->sync_kick >= 0)
		close(c->sync_kick);
	if (c->watcher_stack != NULL)
		munmap(c->watcher_stack, SHN__WATCHER_STACK);
	pthread_mutex_destroy(&c->ctl_lock);
	pthread_cond_destroy(&c->sync_cond);
	pthread_mutex_destroy(&c->pub_lock);
	pthread_mutex_destroy(&c->room_lock);
	shn__acl_fini(c);
	free(c);
}

static shn_client *client_alloc(void)
{
	shn_client *c = calloc(1, sizeof(*c));

	if (c == NULL)
		return (NULL);
	c->sock = c->doorbell_fd = c->room_fd = c->stop_fd = c->sync_kick = -1;
	c->pub_seg.fd = c->broker_seg.fd = -1;
	c->ftab_seg.fd = c->pmap_seg.fd = -1;
	c->next_conn = 1;
	c->next_batch_id = 1;
	c->sync_timeout_ms = -1;
	pthread_mutex_init(&c->ctl_lock, NULL);
	{
		pthread_condattr_t ca;

		pthread_condattr_init(&ca);
		pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
		pthread_cond_init(&c->sync_cond, &ca);
		pthread_condattr_destroy(&ca);
	}
	pthread_mutex_init(&c->pub_lock, NULL);
	pthread_mutex_init(&c->room_lock, NULL);
	shn__acl_init(c);
	return (c);
}

/* Wake every port's reader, so that it notices a loss or new rings. */
static void wake_ports(shn_client *c)
{
	uint64_t one = 1;

	for (shn_port *p = c->ports; p; p = p->next) {
		pthread_mutex_lock(&p->swap_lock);
		if (write(p->event_fd, &one, sizeof(one)) < 0) {
			/* EAGAIN: already readable */
		}
		atomic_store(&p->efd_dirty, true);
		pthread_mutex_unlock(&p->swap_lock);
	}
}

/* Bring up a new connection n to the broker at c->path, reopen every port
 * of c on it and restore every live subscription under its old conn, then
 * switch c over.  Caller holds c->ctl_lock (so the lists stay still).
 * On failure nothing of c changed. */
static int reconnect(shn_client *c)
{
	shn_client *n = client_alloc();
	int err;

	if (n == NULL)
		return (-ENOMEM);
	n->hello_ask = c->hello_ask;
	n->dp_fanout = c->dp_fanout;   /* DIRECT_SETUP tells the new broker */
	err = connect_socket(c->path, &n->sock);
	if (err == 0)
		err = hello(n);
	for (shn_port *p = c->ports; p && err == 0; p = p->next) {
		struct shn__port_rings r;
		uint32_t id = 0;

		err = shn__port_request(n, &p->opt, &id, &r);
		if (err < 0)
			break;
		pthread_mutex_lock(&p->swap_lock);
		if (p->next_rings.ready || p->next_rings.staged)
			shn__port_rings_close(&p->next_rings);   /* an older attempt's */
		p->next_rings = r;
		/* offered to the reader only once every filter is back: a
		 * RECONNECT event means the port works again */
		p->next_rings.staged = true;
		pthread_mutex_unlock(&p->swap_lock);
		atomic_store(&p->id, id);
	}
	for (struct shn__sub *s = c->subs; s && err == 0; s = s->next)
		if (!s->closing)   /* same conn, same filter, the new port number */
			err = shn__send_subscribe(n, s);
	if (err == 0 && c->name[0] != '\0') {
		/* the name too, before the switch: once a port sees RECONNECT
		 * the new broker shows it; one that takes no names shows none */
		pthread_mutex_lock(&n->ctl_lock);
		err = send_name_locked(n, c->name, strlen(c->name));
		pthread_mutex_unlock(&n->ctl_lock);
		if (err == -EOPNOTSUPP)
			err = 0;
	}
	if (err < 0) {
		/* ports keep next_rings until a later attempt replaces them or
		 * they close; the reader only switches once we say so below */
		for (shn_port *p = c->ports; p; p = p->next) {
			pthread_mutex_lock(&p->swap_lock);
			if (p->next_rings.staged)
				shn__port_rings_close(&p->next_rings);
			pthread_mutex_unlock(&p->swap_lock);
		}
		client_free(n);
		return (err);
	}

	/* Switch the publish side.  The doorbell keeps its descriptor number
	 * (dup2), because port readers write it without a lock. */
	pthread_mutex_lock(&c->pub_lock);
	shn_segment_close(&c->pub_seg);
	shn_segment_close(&c->broker_seg);
	c->pub_seg = n->pub_seg;
	c->broker_seg = n->broker_seg;
	n->pub_seg.addr = n->broker_seg.addr = NULL;
	n->pub_seg.fd = n->broker_seg.fd = -1;
	shn__direct_unmap(c);
	shn__dpub_free(c);   /* the old broker's rings: the new one offers its own */
	c->ftab_seg = n->ftab_seg;
	c->pmap_seg = n->pmap_seg;
	c->ftab = n->ftab;
	c->pmap = n->pmap;
	n->ftab_seg.addr = n->pmap_seg.addr = NULL;
	n->ftab_seg.fd = n->pmap_seg.fd = -1;
	n->ftab = NULL;
	n->pmap = NULL;
	c->pub = n->pub;
	c->bshm = n->bshm;
	c->interest = n->interest;
	c->rung_seq = 0;
	c->pub_capacity = n->pub_capacity;
	c->max_capacity = n->max_capacity;
	c->default_capacity = n->default_capacity;
	c->max_key = n->max_key;
	c->max_data = n->max_data;
	c->hello_flags = n->hello_flags;
	shn__acl_reset(c, n->hello_flags);
	if (dup3(n->doorbell_fd, c->doorbell_fd, O_CLOEXEC) < 0) {
		close(c->doorbell_fd);
		c->doorbell_fd = n->doorbell_fd;
		n->doorbell_fd = -1;
	}
	close(c->room_fd);
	c->room_fd = n->room_fd;
	n->room_fd = -1;
	close(c->sock);
	c->sock = n->sock;
	n->sock = -1;
	c->next_msg_id = n->next_msg_id;
	atomic_store(&c->broker_gone, false);
	pthread_mutex_unlock(&c->pub_lock);
	client_free(n);
	for (shn_port *p = c->ports; p; p = p->next) {
		pthread_mutex_lock(&p->swap_lock);
		if (p->next_rings.staged) {
			p->next_rings.staged = false;
			p->next_rings.ready = true;
			atomic_store_explicit(&p->next_ready, true, memory_order_release);
		}
		pthread_mutex_unlock(&p->swap_lock);
	}
	wake_ports(c);   /* readers finish the old rings, then take the new ones */
	return (0);
}

/* The watcher thread: blocks until the control socket closes (the broker
 * went away), tells every port, then reconnects with backoff.  Costs
 * nothing while the broker lives: it sleeps in poll(). */
static void *watcher_main(void *arg)
{
	shn_client *c = arg;
	sigset_t all;

	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, NULL);
	sem_post(&c->watcher_started);   /* started: see start_watcher */
	for (;;) {
		if (!atomic_load(&c->broker_gone)) {
			struct pollfd pfd[2] = {
				{ .fd = c->stop_fd, .events = POLLIN },
				{ .fd = -1, .events = 0 },
			};
			pthread_mutex_lock(&c->pub_lock);
			pfd[1].fd = c->sock;
			pthread_mutex_unlock(&c->pub_lock);
			pfd[1].events = POLLIN;
			if (poll(pfd, 2, -1) < 0 && errno != EINTR)
				return (NULL);
			if (pfd[0].revents)
				return (NULL);
			if (!(pfd[1].revents & (POLLHUP | POLLERR | POLLNVAL))) {
				if (pfd[1].revents & POLLIN)
					shn__take_unasked(c);
				continue;
			}
		}
		atomic_store(&c->broker_gone, true);
		atomic_fetch_add(&c->loss_epoch, 1);
		pthread_mutex_lock(&c->ctl_lock);
		wake_ports(c);
		pthread_mutex_unlock(&c->ctl_lock);

		for (int backoff = 20;; backoff = backoff < 1000 ? backoff * 2 : 1000) {
			struct pollfd stop = { .fd = c->stop_fd, .events = POLLIN };
			if (poll(&stop, 1, backoff) > 0)
				return (NULL);
			pthread_mutex_lock(&c->ctl_lock);
			int err = reconnect(c);
			pthread_mutex_unlock(&c->ctl_lock);
			if (err == 0)
				break;
		}
	}
}


static int start_watcher(shn_client *c)
{
	pthread_attr_t attr;
	int err;

	c->watcher_stack = mmap(NULL, SHN__WATCHER_STACK, PROT_READ | PROT_WRITE,
				MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK | MAP_NORESERVE, -1, 0);
	if (c->watcher_stack == MAP_FAILED) {
		c->watcher_stack = NULL;
		return (-errno);
	}
	if (sem_init(&c->watcher_started, 0, 0) < 0)
		return (-errno);
	pthread_attr_init(&attr);
	pthread_attr_setstack(&attr, c->watcher_stack, SHN__WATCHER_STACK);
	err = -pthread_create(&c->watcher, &attr, watcher_main, c);
	pthread_attr_destroy(&attr);
	c->watcher_running = (err == 0);
	/* Return only once the thread runs our code: a thread still
	 * starting may hold a lock of the runtime (the sanitizers' allocator
	 * takes one as a thread begins), and a fork() by the caller right
	 * after shn_connect would copy it into the child locked, where the
	 * child's own first thread then waits for it forever
	 * (test_threads: test_fork_after_connect). */
	while (err == 0 && sem_wait(&c->watcher_started) < 0 && errno == EINTR)
		;
	sem_destroy(&c->watcher_started);
	return (err);
}

int shn_connect(const char *socket_path, shn_client **out)
{
	shn_client *c;
	int err;

	if (out == NULL)
		return (-EINVAL);
	*out = NULL;
	c = client_alloc();
	if (c == NULL)
		return (-ENOMEM);
	c->hello_ask = shn__direct_hello_flag();   /* once: a reconnect asks the same */
	c->dp_fanout = shn__direct_fanout();
	c->swept_gen = UINT64_MAX;   /* direct_pub.c: not swept yet */
	c->dp_wait_ns = shn__direct_wait_ns();
	c->dp_prewake = shn__direct_prewake();
	err = shn__resolve_socket_path(socket_path, c->path, sizeof(c->path));
	if (err >= 0)
		err = connect_socket(c->path, &c->sock);
	if (err >= 0)
		err = hello(c);
	if (err >= 0) {
		c->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		err = c->stop_fd < 0 ? -errno : 0;
	}
	if (err >= 0)
		err = start_watcher(c);
	if (err < 0) {
		client_free(c);
		return (err);
	}
	*out = c;
	return (0);
}

void shn_disconnect(shn_client *c)
{
	uint64_t one = 1;

	if (c == NULL)
		return;
	if (c->watcher_running) {
		if (write(c->stop_fd, &one, sizeof(one)) < 0) {
			/* cannot fail: a fresh eventfd */
		}
		pthread_join(c->watcher, NULL);
	}
	/* Closing the socket is the goodbye: the broker routes what is left
	 * in our publish ring, then reclaims our ports (docs/design.md, rule 9). */
	client_free(c);
}


int shn_set_sync_timeout(shn_client *c, int timeout_ms)
{
	if (c == NULL || timeout_ms < -1)
		return (-EINVAL);
	atomic_store(&c->sync_timeout_ms, timeout_ms);
	return (0);
}

int shn_stats_json(shn_client *c, char **json)
{
	return (shn_stats_json_ex(c, 0, json));
}

int shn_stats_json_ex(shn_client *c, unsigned flags, char **json)
{
	/* flags 0 is the header alone, which every broker takes */
	struct shn_msg_stats req = { .hdr.type = SHN_MSG_STATS };
	size_t req_len = flags ? sizeof(req) : sizeof(req.hdr);
	union {
		struct shn_msg_stats_reply r;
		char buf[SHN_MSG_MAX];
	} rep;
	char *doc = NULL;
	size_t len = 0;
	int fds[SHN_MSG_MAX_FDS], nfds;
	ssize_t n;
	int err;

	if (c == NULL || json == NULL)
		return (-EINVAL);
	*json = NULL;
	if ((flags & ~(unsigned)SHN_STATS_SUBSCRIPTIONS) != 0)
		return (-EINVAL);
	if (atomic_load(&c->broker_gone))
		return (-ENOTCONN);
	pthread_mutex_lock(&c->ctl_lock);
	if (flags && !(c->hello_flags & SHN_HELLO_F_STATS_FLAGS)) {
		err = -EOPNOTSUPP;   /* an older broker would disconnect us for it */
		pthread_mutex_unlock(&c->ctl_lock);
		return (err);
	}
	req.flags = flags & SHN_STATS_SUBSCRIPTIONS ? SHN_STATS_F_SUBSCRIPTIONS : 0;
	req.hdr.magic = SHN_PROTO_MAGIC;
	req.hdr.version = SHN_PROTO_VERSION;
	req.hdr.id = ++c->next_msg_id;
	if (send(c->sock, &req, req_len, MSG_NOSIGNAL) < 0) {
		err = (errno == EPIPE || errno == ECONNRESET) ? -ENOTCONN : -errno;
		goto out;
	}
	for (;;) {
		/* with room for an unasked message's descriptors: a DIRECT_OPEN
		 * read here without them was declined, and what its publisher
		 * had written into the ring lost without a loss report */
		nfds = SHN_MSG_MAX_FDS;
		n = shn__recv(c, rep.buf, sizeof(rep.buf), fds, &nfds, SHN__CTL_TIMEOUT_MS);
		if (n < 0) {
			err = (int)n;
			goto out;
		}
		bool unasked = shn__async_message(c, rep.buf, (size_t)n, fds, nfds);
		shn__close_fds(fds, nfds);   /* what is left of them; a reply carries none */
		if (unasked)
			continue;
		if ((size_t)n < sizeof(rep.r) || rep.r.hdr.magic != SHN_PROTO_MAGIC ||
		    rep.r.hdr.type != SHN_MSG_STATS || rep.r.hdr.id != req.hdr.id ||
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
