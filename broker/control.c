/* SPDX-License-Identifier: MIT */
/*
 * control.c - the control protocol (shm/proto.h, docs/protocol.md): one
 * handler per message type.  Every request gets exactly one reply (STATS:
 * its chunks) with the request's type and id, queued in request order;
 * anything malformed at the framing level disconnects the client and is
 * counted in protocol_errors.  Never answers garbage.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "control.h"

#include "client.h"
#include "deliver.h"
#include "dring.h"
#include "ftab.h"
#include "log.h"
#include "port.h"
#include "stats.h"
#include "validate.h"

static void proto_error(struct shnd_client *c, const char *why, unsigned type)
{
	shnd_client_fail(c, &c->b->tot.protocol_errors, "protocol error: %s (type %u)", why, type);
}

static void fill_hdr(struct shn_msg_hdr *h, const struct shn_msg_hdr *req, int status)
{
	h->magic = SHN_PROTO_MAGIC;
	h->version = SHN_PROTO_VERSION;
	h->type = req->type;
	h->id = req->id;
	h->status = status;
}

/* A reply with no body. */
static void reply_status(struct shnd_client *c, const struct shn_msg_hdr *req, int status)
{
	struct shn_msg_reply r;

	memset(&r, 0, sizeof(r));
	fill_hdr(&r.hdr, req, status);
	shnd_client_send(c, &r, sizeof(r), NULL, 0, false);
}

/* A requested capacity (0: default) rounded up, or 0 when above the
 * configured maximum. */
static uint32_t grant_capacity(const struct shnd_broker *b, uint32_t want)
{
	uint32_t cap = shn_ring_round_capacity(want ? want : b->cfg.default_capacity);

	return (cap != 0 && cap <= b->cfg.max_capacity ? cap : 0);
}

/* Bytes of ring the client holds: its publish ring and every port's. */
static uint64_t ring_bytes(const struct shnd_client *c)
{
	const struct shnd_list *pos;
	uint64_t n = c->has_pub ? c->pub.capacity : 0;

	shnd_list_for_each(pos, &c->ports)
		n += shnd_list_entry(pos, const struct shnd_port, by_client)->capacity;
	return (n);
}

/* A request refused by a [limits] cap: one log line, one counter. */
static void over_limit(struct shnd_client *c, const struct shn_msg_hdr *req, int err,
		       uint64_t *counter, const char *what, unsigned long long limit)
{
	(*counter)++;
	shnd_warn("client %llu (pid %d, uid %u): %s refused: %s (limit %llu; raise it in [limits])",
		  (unsigned long long)c->id, (int)c->pid, (unsigned)c->uid,
		  req->type == SHN_MSG_HELLO ? "hello" :
		  req->type == SHN_MSG_PORT_OPEN ? "port open" : "subscribe", what, limit);
	reply_status(c, req, err);
}

/* A key for a log line: quoted, escaped, cut to fit. */
static const char *show_key(const void *key, size_t len, char *buf, size_t buflen)
{
	shnd_acl_quote(key, len, buf, buflen);
	return (buf);
}

static int dup_fd(int fd)
{
	return (fcntl(fd, F_DUPFD_CLOEXEC, 0));
}

static void close_fds(int *fds, int n)
{
	int i;

	for (i = 0; i < n; i++) {
		if (fds[i] >= 0)
			close(fds[i]);
		fds[i] = -1;
	}
}

static void do_hello(struct shnd_client *c, const struct shn_msg_hello *req)
{
	struct shnd_broker *b = c->b;
	struct shn_msg_hello_reply rep;
	struct shn_ring_prod *prod;
	struct shn_ring_cons *cons;
	int fds[SHN_HELLO_NFDS] = { -1, -1, -1, -1 };
	uint32_t cap;
	int err;

	if (c->refuse) {
		/* beyond max-clients, or another user of a private broker
		 * (logged at accept): told so, then closed */
		struct shn_msg_reply r;

		if (c->refuse == -EUSERS) {
			b->tot.limit_clients++;
			shnd_warn("client %llu (pid %d, uid %u): connection refused: too many "
				  "clients (limit %u; raise max-clients in [limits])",
				  (unsigned long long)c->id, (int)c->pid, (unsigned)c->uid,
				  b->cfg.lim.max_clients);
		}
		memset(&r, 0, sizeof(r));
		fill_hdr(&r.hdr, &req->hdr, c->refuse);
		c->close_after_reply = true;
		shnd_client_send(c, &r, sizeof(r), NULL, 0, true);
		return;
	}
	cap = grant_capacity(b, req->pub_capacity);
	if (cap == 0) {
		reply_status(c, &req->hdr, -EINVAL);
		return;
	}
	if (cap > b->cfg.lim.max_ring_bytes) {
		over_limit(c, &req->hdr, -ENOSPC, &b->tot.limit_ring_bytes,
			   "its publish ring alone is above max-ring-bytes", b->cfg.lim.max_ring_bytes);
		return;
	}
	err = shn_segment_create(&c->pub_seg, "shmnotify-pub", SHN_RING_HDR_SIZE + (size_t)cap);
	if (err)
		goto fail;
	prod = (struct shn_ring_prod *)((uint8_t *)c->pub_seg.addr + SHN_PUB_PROD_OFF);
	cons = (struct shn_ring_cons *)((uint8_t *)c->pub_seg.addr + SHN_PUB_CONS_OFF);
	prod->capacity = cap;
	prod->magic = SHN_RING_MAGIC;
	shn_ring_init_view(&c->pub, prod, cons, (uint8_t *)c->pub_seg.addr + SHN_RING_HDR_SIZE,
			   cap);
	c->pub_released = 0;
	c->doorbell_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	c->room_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (c->doorbell_fd < 0 || c->room_fd < 0) {
		err = -errno;
		goto fail;
	}
	fds[SHN_HELLO_FD_DOORBELL] = dup_fd(c->doorbell_fd);
	fds[SHN_HELLO_FD_ROOM] = dup_fd(c->room_fd);
	fds[SHN_HELLO_FD_BROKER] = dup_fd(b->bshm_seg.fd);
	if (fds[SHN_HELLO_FD_DOORBELL] < 0 || fds[SHN_HELLO_FD_ROOM] < 0 ||
	    fds[SHN_HELLO_FD_BROKER] < 0) {
		err = -errno;
		goto fail;
	}
	err = shnd_client_watch_doorbell(c);
	if (err)
		goto fail;
	/* the broker keeps its mapping; the descriptor is the client's */
	fds[SHN_HELLO_FD_PUB] = c->pub_seg.fd;
	c->pub_seg.fd = -1;
	c->has_pub = true;
	c->state = SHND_CLIENT_READY;

	memset(&rep, 0, sizeof(rep));
	fill_hdr(&rep.hdr, &req->hdr, 0);
	rep.client_id = c->id;
	rep.pub_capacity = cap;
	rep.max_capacity = b->cfg.max_capacity;
	rep.default_capacity = b->cfg.default_capacity;
	rep.flags = (c->acl.pub_all ? 0 : SHN_HELLO_F_PUB_ACL) | SHN_HELLO_F_NAME |
		    SHN_HELLO_F_STATS_FLAGS;
	/* the direct path only for a client that asked, under --direct auto */
	c->direct = (req->flags & SHN_HELLO_F_DIRECT) != 0 && b->ftab.t != NULL;
	if (c->direct)
		rep.flags |= SHN_HELLO_F_DIRECT;
	shnd_client_send(c, &rep, sizeof(rep), fds, SHN_HELLO_NFDS, false);
	shnd_debug("client %llu (pid %d): hello, publish ring %u bytes",
		   (unsigned long long)c->id, (int)c->pid, cap);
	return;
fail:
	close_fds(fds, SHN_HELLO_NFDS);
	if (c->room_fd >= 0)
		close(c->room_fd);
	c->room_fd = -1;
	if (!c->doorbell.active && c->doorbell_fd >= 0)
		close(c->doorbell_fd);
	if (!c->doorbell.active)
		c->doorbell_fd = -1;
	shn_segment_close(&c->pub_seg);
	shnd_warn("client %llu (pid %d): hello failed: %s", (unsigned long long)c->id,
		  (int)c->pid, strerror(-err));
	reply_status(c, &req->hdr, err);
}

static void do_port_open(struct shnd_client *c, const struct shn_msg_port_open *req)
{
	struct shnd_broker *b = c->b;
	struct shn_msg_port_open_reply rep;
	int fds[SHN_PORT_NFDS];
	struct shnd_port *p;
	uint32_t cap;
	int err;

	cap = grant_capacity(b, req->capacity);
	if (cap == 0) {
		reply_status(c, &req->hdr, -EINVAL);
		return;
	}
	if (c->nports >= b->cfg.lim.max_ports) {
		over_limit(c, &req->hdr, -ENOSPC, &b->tot.limit_ports, "too many ports",
			   b->cfg.lim.max_ports);
		return;
	}
	if (ring_bytes(c) + cap > b->cfg.lim.max_ring_bytes) {
		over_limit(c, &req->hdr, -ENOSPC, &b->tot.limit_ring_bytes,
			   "its rings would exceed max-ring-bytes", b->cfg.lim.max_ring_bytes);
		return;
	}
	err = shnd_port_create(b, c, cap, req->overflow, &p, fds);
	if (err) {
		shnd_warn("client %llu (pid %d): port open failed: %s", (unsigned long long)c->id,
			  (int)c->pid, strerror(-err));
		reply_status(c, &req->hdr, err);
		return;
	}
	memset(&rep, 0, sizeof(rep));
	fill_hdr(&rep.hdr, &req->hdr, 0);
	rep.port_id = p->id;
	rep.capacity = cap;
	shnd_client_send(c, &rep, sizeof(rep), fds, SHN_PORT_NFDS, false);
	shnd_debug("client %llu: port %u open, %u bytes", (unsigned long long)c->id, p->id, cap);
}

static void do_port_close(struct shnd_client *c, const struct shn_msg_port_close *req)
{
	struct shnd_port *p = shnd_port_find(c->b, c, req->port_id);

	if (p == NULL) {
		reply_status(c, &req->hdr, -ENOENT);
		return;
	}
	shnd_port_free(c->b, p);
	shnd_ftab_sync(c->b);   /* its filters gone before the reply (rule 8) */
	reply_status(c, &req->hdr, 0);
}

/* Arguments already checked (shnd_ctl_decode). */
static void do_subscribe(struct shnd_client *c, const struct shn_msg_subscribe *req)
{
	struct shnd_broker *b = c->b;
	bool any = (req->flags & SHN_SUB_ANY_KEY) != 0;
	bool prefix = (req->flags & SHN_SUB_PREFIX) != 0;
	struct shnd_port *p;
	int err, rule;

	p = shnd_port_find(b, c, req->port_id);
	if (p == NULL) {
		reply_status(c, &req->hdr, -ENOENT);
		return;
	}
	if (shnd_sub_find(c, req->conn) != NULL) {
		reply_status(c, &req->hdr, -EEXIST);
		return;
	}
	/* A monitor sees all traffic, whoever may read it: only root or the
	 * broker's own user may ask (docs/design.md, rule 14). */
	if ((req->flags & SHN_SUB_MONITOR) && c->uid != 0 && c->uid != geteuid()) {
		shnd_warn("client %llu (pid %d, uid %u): monitor refused: only root or uid %u",
			  (unsigned long long)c->id, (int)c->pid, (unsigned)c->uid,
			  (unsigned)geteuid());
		reply_status(c, &req->hdr, -EACCES);
		return;
	}
	if (!any && req->key_len > b->cfg.lim.max_key) {
		over_limit(c, &req->hdr, -EMSGSIZE, &b->tot.limit_key_size,
			   "key longer than max-key-size", b->cfg.lim.max_key);
		return;
	}
	if (!(req->flags & SHN_SUB_MONITOR) &&
	    !shnd_acl_may_subscribe(&b->cfg.acl, &c->acl, any ? NULL : req->key, req->key_len,
				    prefix, &rule)) {
		const struct shnd_acl_rule *r = &b->cfg.acl.rules[rule];
		char k[200], q[200];

		b->tot.acl_subscribe_denied++;
		c->acl_denied++;
		shnd_acl_quote(r->prefix, r->len, q, sizeof(q));
		shnd_warn("client %llu (pid %d, uid %u): subscribe to %s%s refused: [acl %s] "
			  "(config line %d) does not let it subscribe%s", (unsigned long long)c->id,
			  (int)c->pid, (unsigned)c->uid, prefix ? "the keys under prefix " : "",
			  any ? "every key" : show_key(req->key, req->key_len, k, sizeof(k)), q,
			  r->line, prefix ? " (a prefix filter needs every key under it: subscribe "
			  "to a longer prefix or to exact keys)" : "");
		reply_status(c, &req->hdr, -EACCES);
		return;
	}
	if (c->subs.count >= b->cfg.lim.max_subs) {
		over_limit(c, &req->hdr, -ENOSPC, &b->tot.limit_subscriptions,
			   "too many subscriptions", b->cfg.lim.max_subs);
		return;
	}
	if (p->pend_n >= SHND_PENDING_MAX) {
		/* the port holds that many undelivered system events */
		reply_status(c, &req->hdr, -ENOBUFS);
		return;
	}
	err = shnd_sub_create(b, c, p, req->conn, req->event_mask, any ? NULL : req->key,
			      req->key_len, prefix);
	/* live in the index, and in the direct path's filter table, before the
	 * reply leaves (docs/design.md, rule 8) */
	if (err == 0)
		shnd_ftab_sync(b);
	reply_status(c, &req->hdr, err);
}

static void do_unsubscribe(struct shnd_client *c, const struct shn_msg_unsubscribe *req)
{
	struct shnd_sub *s = shnd_sub_find(c, req->conn);
	struct shn_direct_barrier *barrier;
	struct shnd_port *p;
	uint32_t nbarrier;

	if (s == NULL) {
		reply_status(c, &req->hdr, -ENOENT);
		return;
	}
	p = s->port;
	shnd_sub_free(c->b, s);
	shnd_ftab_sync(c->b);
	/* behind everything already routed for it (docs/design.md, rule 8),
	 * and, on a port with direct rings, behind what they hold now: the
	 * barrier is read after the new generation was stored */
	barrier = shnd_dring_barrier(p, &nbarrier);
	if (shnd_deliver_queue_close(c->b, p, req->conn, barrier, nbarrier) < 0)
		shnd_err("port %u: out of memory, HANDLE_CLOSE for conn %llu lost", p->id,
			 (unsigned long long)req->conn);
	reply_status(c, &req->hdr, 0);
}

/* May c publish this key?  Asked by the library before it first
 * publishes a key when HELLO said SHN_HELLO_F_PUB_ACL. */
static void do_pub_check(struct shnd_client *c, const struct shn_msg_pub_check *req)
{
	struct shnd_broker *b = c->b;
	char k[200], q[200];
	int rule;

	if (shnd_acl_may_publish(&b->cfg.acl, &c->acl, req->key, req->key_len, &rule)) {
		reply_status(c, &req->hdr, 0);
		return;
	}
	b->tot.acl_publish_denied++;
	if (c->acl_denied++ == 0 || shnd_log_level >= SHND_LOG_DEBUG) {
		const struct shnd_acl_rule *r = &b->cfg.acl.rules[rule];

		shnd_acl_quote(r->prefix, r->len, q, sizeof(q));
		shnd_log(c->acl_denied == 1 ? SHND_LOG_WARN : SHND_LOG_DEBUG,
			 "client %llu (pid %d, uid %u): may not publish %s: [acl %s] (config line %d)",
			 (unsigned long long)c->id, (int)c->pid, (unsigned)c->uid,
			 show_key(req->key, req->key_len, k, sizeof(k)), q, r->line);
	}
	reply_status(c, &req->hdr, -EACCES);
}

/* Arguments already checked (shnd_ctl_decode): a valid name or none. */
static void do_set_name(struct shnd_client *c, const struct shn_msg_set_name *req)
{
	memcpy(c->name, req->name, req->name_len);
	c->name[req->name_len] = '\0';
	shnd_debug("client %llu (pid %d): name \"%s\"", (unsigned long long)c->id, (int)c->pid,
		   c->name);
	reply_status(c, &req->hdr, 0);
}

/* len: the header alone, or struct shn_msg_stats (its flags checked by
 * shnd_ctl_decode). */
static void do_stats(struct shnd_client *c, const struct shn_msg_hdr *req, size_t len)
{
	const size_t room = SHN_MSG_MAX - sizeof(struct shn_msg_stats_reply);
	union {
		struct shn_msg_stats_reply r;
		unsigned char raw[SHN_MSG_MAX];
	} u;
	char *doc;
	uint32_t flags = len >= sizeof(struct shn_msg_stats) ?
			 ((const struct shn_msg_stats *)(const void *)req)->flags : 0;
	long n;
	size_t off = 0;

	/* Every filter's key, whoever may subscribe to it ([acl]): like a
	 * monitor, only root or the broker's own user may ask. */
	if ((flags & SHN_STATS_F_SUBSCRIPTIONS) && c->uid != 0 && c->uid != geteuid()) {
		shnd_warn("client %llu (pid %d, uid %u): subscriptions list refused: only root or "
			  "uid %u", (unsigned long long)c->id, (int)c->pid, (unsigned)c->uid,
			  (unsigned)geteuid());
		reply_status(c, req, -EACCES);
		return;
	}
	n = shnd_stats_json(c->b, flags, &doc);
	if (n < 0) {
		reply_status(c, req, (int)n);
		return;
	}
	do {
		size_t chunk = (size_t)n - off < room ? (size_t)n - off : room;

		memset(&u.r, 0, sizeof(u.r));
		fill_hdr(&u.r.hdr, req, 0);
		u.r.len = (uint32_t)chunk;
		memcpy(u.r.text, doc + off, chunk);
		off += chunk;
		u.r.flags = off == (size_t)n ? SHN_STATS_LAST : 0;
		if (shnd_client_send(c, &u, (uint32_t)(sizeof(u.r) + chunk), NULL, 0, false) < 0)
			break;
	} while (off < (size_t)n);
	free(doc);
}

/* DIRECT_SETUP: once, and only after a HELLO that granted the direct path
 * (the library never sends it otherwise: a protocol error). */
static void do_direct_setup(struct shnd_client *c, const struct shn_msg_direct_setup *ds)
{
	const struct shn_msg_hdr *req = &ds->hdr;
	struct shn_msg_direct_setup_reply rep;
	int fds[SHN_DSETUP_NFDS];
	uint64_t size = 0;
	int err;

	if (!c->direct) {
		proto_error(c, "DIRECT_SETUP without SHN_HELLO_F_DIRECT granted", req->type);
		return;
	}
	if (c->direct_setup) {
		proto_error(c, "second DIRECT_SETUP", req->type);
		return;
	}
	c->direct_fanout = ds->fanout;   /* 1..64: checked (validate.c) */
	err = shnd_ftab_setup_client(c->b, c, fds, &size);
	if (err) {
		shnd_warn("client %llu (pid %d): direct path setup failed: %s",
			  (unsigned long long)c->id, (int)c->pid, strerror(-err));
		reply_status(c, req, err);
		return;
	}
	memset(&rep, 0, sizeof(rep));
	fill_hdr(&rep.hdr, req, 0);
	rep.table_size = size;
	rep.pmap_size = (uint32_t)SHN_PMAP_SEG_SIZE;
	shnd_client_send(c, &rep, sizeof(rep), fds, SHN_DSETUP_NFDS, false);
}

/* DIRECT_CLOSE and DIRECT_FAULT name a direct ring (dring.c).  Either
 * from a client not granted the direct path is a protocol error; so is a
 * DIRECT_FAULT about a ring the client does not hold. */
static void do_direct_close(struct shnd_client *c, const struct shn_msg_direct_close *req)
{
	if (!c->direct) {
		proto_error(c, "DIRECT_CLOSE without SHN_HELLO_F_DIRECT granted", req->hdr.type);
		return;
	}
	reply_status(c, &req->hdr, shnd_dring_close_request(c->b, c, req));
}

static void do_direct_fault(struct shnd_client *c, const struct shn_msg_direct_fault *req)
{
	if (!c->direct) {
		proto_error(c, "DIRECT_FAULT without SHN_HELLO_F_DIRECT granted", req->hdr.type);
		return;
	}
	if (!shnd_dring_fault(c->b, c, req)) {
		shnd_client_fail(c, &c->b->tot.protocol_errors,
				 "protocol error: DIRECT_FAULT for port %u slot %u ring %u, which "
				 "it does not hold", req->port_id, req->slot, req->ring_id);
		return;
	}
	reply_status(c, &req->hdr, 0);
}

/* Framing, type, state, length and argument checks are validate.c's
 * (shnd_ctl_frame, shnd_ctl_decode); the handlers see only messages that
 * passed them. */
void shnd_control_handle(struct shnd_client *c, size_t len)
{
	const struct shn_msg_hdr *h = (const void *)c->rxbuf;
	const void *m = c->rxbuf;
	struct shnd_ctl_verdict v;

	if (!shnd_ctl_frame(c->rxbuf, len, &v)) {
		proto_error(c, v.why, v.type);
		return;
	}
	if (c->conn.nqueued >= SHND_SENDQ_MAX) {
		shnd_client_fail(c, NULL, "%u replies unread", c->conn.nqueued);
		return;
	}
	shnd_ctl_decode(c->rxbuf, len, c->state == SHND_CLIENT_HANDSHAKE, &v);
	switch (v.action) {
	case SHND_CTL_DROP:
		proto_error(c, v.why, v.type);
		break;
	case SHND_CTL_VERSION: {
		struct shn_msg_reply r;

		shnd_warn("client %llu (pid %d) speaks protocol version %u, this broker %u; "
			  "disconnecting", (unsigned long long)c->id, (int)c->pid,
			  (unsigned)h->version, SHN_PROTO_VERSION);
		memset(&r, 0, sizeof(r));
		fill_hdr(&r.hdr, h, -EPROTONOSUPPORT);
		c->close_after_reply = true;
		c->b->tot.disconnects++;
		shnd_client_send(c, &r, sizeof(r), NULL, 0, true);
		break;
	}
	case SHND_CTL_REPLY:
		reply_status(c, h, v.status);
		break;
	case SHND_CTL_HELLO:
		do_hello(c, m);
		break;
	case SHND_CTL_PORT_OPEN:
		do_port_open(c, m);
		break;
	case SHND_CTL_PORT_CLOSE:
		do_port_close(c, m);
		break;
	case SHND_CTL_SUBSCRIBE:
		do_subscribe(c, m);
		break;
	case SHND_CTL_UNSUBSCRIBE:
		do_unsubscribe(c, m);
		break;
	case SHND_CTL_STATS:
		do_stats(c, h, len);
		break;
	case SHND_CTL_PUB_CHECK:
		do_pub_check(c, m);
		break;
	case SHND_CTL_SET_NAME:
		do_set_name(c, m);
		break;
	case SHND_CTL_DIRECT_SETUP:
		do_direct_setup(c, m);
		break;
	case SHND_CTL_DIRECT_CLOSE:
		do_direct_close(c, m);
		break;
	case SHND_CTL_DIRECT_FAULT:
		do_direct_fault(c, m);
		break;
	}
}
