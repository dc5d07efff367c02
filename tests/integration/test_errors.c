/* SPDX-License-Identifier: MIT */
/*
 * test_errors.c - what is refused, and that refusing never hurts anyone else:
 * publishing errors (rules 1, 5), port capacities, the protocol version rule,
 * the broker's validation of control messages, garbage on the socket and
 * corrupt publish rings from hostile clients (docs/design.md, "Trust": the
 * broker never trusts what a client wrote; it disconnects that client, never
 * crashes or stalls).
 */
#define _GNU_SOURCE
#include "harness.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "shm/proto.h"
#include "shm/ring.h"

#define S(str) (str), (sizeof(str) - 1)

/* ---- helpers: a well-behaved client that proves the broker still works --- */

struct good {
	shn_client *c;
	shn_port *p;
	shn_conn conn;
	uint64_t seq;
	uint32_t counter;
};

static void good_init(struct good *g, struct harness *h)
{
	memset(g, 0, sizeof(*g));
	g->c = h_connect(h);
	g->p = h_port_sub(g->c, 0, NULL, 0, SHN_EV_ALL, &g->conn);   /* every key */
}

/* Publish one notification and receive exactly it (and nothing else). */
static void good_roundtrip(struct good *g)
{
	shn_notification out[8];
	uint32_t v = ++g->counter;
	shn_notification n = { .event = 1, .key = "good", .key_len = 4, .data = &v,
			       .data_len = sizeof(v) };

	assert_int_equal(shn_notify(g->c, &n, 1, 0), 0);
	int r = h_get(g->p, out, 8);
	if (r != 1 || out[0].event != 1 || out[0].key_len != 4 ||
	    memcmp(out[0].key, "good", 4) != 0)
		fail_msg("the well-behaved client got %d notification(s), first event 0x%x "
			 "key_len %u pid %d, instead of its own", r, out[0].event,
			 out[0].key_len, out[0].sender_pid);
	assert_int_equal(out[0].data_len, sizeof(v));
	assert_memory_equal(out[0].data, &v, sizeof(v));
	assert_int_equal(out[0].seq, ++g->seq);
	assert_int_equal(out[0].sender_pid, getpid());
	assert_int_equal(shn_port_get(g->p, out, 8, 0), -ETIMEDOUT);
}

static void good_fini(struct good *g)
{
	h_disconnect(g->c);
}

/* ---- helpers: the raw protocol ------------------------------------------ */

struct raw_client {
	int sock;
	int fds[SHN_HELLO_NFDS];
	struct shn_msg_hello_reply rep;
};

static void raw_hello(struct harness *h, struct raw_client *r)
{
	struct shn_msg_hello req;
	int nfds = SHN_HELLO_NFDS;

	memset(&req, 0, sizeof(req));
	r->sock = h_raw_connect(h);
	h_hdr_init(&req.hdr, SHN_MSG_HELLO);
	h_raw_send(r->sock, &req, sizeof(req));
	ssize_t n = h_raw_recv(r->sock, &r->rep, sizeof(r->rep), r->fds, &nfds, H_TIMEOUT_MS);
	assert_int_equal(n, sizeof(r->rep));
	assert_int_equal(nfds, SHN_HELLO_NFDS);
	assert_int_equal(r->rep.hdr.magic, SHN_PROTO_MAGIC);
	assert_int_equal(r->rep.hdr.type, SHN_MSG_HELLO);
	assert_int_equal(r->rep.hdr.id, req.hdr.id);
	assert_int_equal(r->rep.hdr.status, 0);
	assert_true(shn_ring_capacity_ok(r->rep.pub_capacity));
	assert_true(shn_ring_capacity_ok(r->rep.max_capacity));
	assert_true(r->rep.default_capacity <= r->rep.max_capacity);
}

static void raw_close(struct raw_client *r)
{
	for (int i = 0; i < SHN_HELLO_NFDS; i++)
		close(r->fds[i]);
	close(r->sock);
}

/* A request expecting a header-only reply: returns its status. */
static int raw_call(int sock, void *req, size_t len, int *fds, int *nfds)
{
	union {
		struct shn_msg_hdr h;
		uint8_t b[SHN_MSG_MAX];
	} rep;
	struct shn_msg_hdr *rq = req;
	int dummy = 0;

	h_raw_send(sock, req, len);
	ssize_t n = h_raw_recv(sock, &rep, sizeof(rep), fds, nfds ? nfds : &dummy, H_TIMEOUT_MS);
	if (n <= 0)
		fail_msg("request type %u: no reply (%zd)", rq->type, n);
	assert_true(n >= (ssize_t)sizeof(rep.h));
	assert_int_equal(rep.h.magic, SHN_PROTO_MAGIC);
	assert_int_equal(rep.h.type, rq->type);
	assert_int_equal(rep.h.id, rq->id);
	return rep.h.status;
}

/* ---- 8a: publishing errors ---------------------------------------------- */

static void test_notify_errors(void **state)
{
	struct harness *h = *state;
	static uint8_t big[SHN_DATA_MAX];
	shn_notification out[16];
	shn_conn conn;

	shn_client *c = h_connect(h);
	shn_port *p = h_port_sub(c, 4u << 20, NULL, 0, SHN_EV_ALL, &conn);
	shn_notification n = { .event = 1, .key = "e", .key_len = 1 };

	/* system event bits, alone or with application bits; event 0 */
	const uint32_t bad[] = { SHN_EV_OVERFLOW, SHN_EV_BROKER_STATE, SHN_EV_RECONNECT,
				 SHN_EV_HANDLE_CLOSE, SHN_EV_SYSTEM, 0xffffffffu,
				 1u | SHN_EV_OVERFLOW, SHN_EV_ALL | SHN_EV_HANDLE_CLOSE, 0 };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		n.event = bad[i];
		if (shn_notify(c, &n, 1, 0) != -EINVAL)
			fail_msg("event 0x%x: not refused with -EINVAL", bad[i]);
	}
	/* one bad event in a batch refuses all of it */
	shn_notification two[2] = { { .event = 1, .key = "e", .key_len = 1 },
				    { .event = SHN_EV_OVERFLOW, .key = "e", .key_len = 1 } };
	assert_int_equal(shn_notify(c, two, 2, 0), -EINVAL);
	/* n == 0, NULL batch, unknown flags */
	n.event = 1;
	assert_int_equal(shn_notify(c, &n, 0, 0), -EINVAL);
	assert_int_equal(shn_notify(c, NULL, 1, 0), -EINVAL);
	assert_int_equal(shn_notify(c, &n, 1, 0x100), -EINVAL);
	/* payload over SHN_DATA_MAX; data_len without data */
	n.data = big;
	n.data_len = SHN_DATA_MAX + 1;
	assert_int_equal(shn_notify(c, &n, 1, 0), -EINVAL);
	n.data = NULL;
	n.data_len = 10;
	assert_int_equal(shn_notify(c, &n, 1, 0), -EINVAL);
	/* one bad note among notes like it (the check tests a stretch of
	 * notes with one key, event and data length once): data missing,
	 * too long, a system event at the end */
	{
		static uint8_t pay[8];
		shn_notification fl[10];

		for (int i = 0; i < 10; i++)
			fl[i] = (shn_notification){ .event = 1, .key = "e", .key_len = 1, .data = pay,
						    .data_len = sizeof(pay) };
		fl[6].data = NULL;
		assert_int_equal(shn_notify(c, fl, 10, 0), -EINVAL);
		fl[6].data = pay;
		fl[6].data_len = SHN_DATA_MAX + 1;
		assert_int_equal(shn_notify(c, fl, 10, 0), -EINVAL);
		fl[6].data_len = sizeof(pay);
		fl[9].event = SHN_EV_OVERFLOW;
		assert_int_equal(shn_notify(c, fl, 10, 0), -EINVAL);
	}

	/* a batch that can never fit the publish ring (half of 1 MiB at most):
	 * 9 x 64 KiB */
	shn_notification many[9];
	for (int i = 0; i < 9; i++)
		many[i] = (shn_notification){ .event = 1, .key = "e", .key_len = 1,
					      .data = big, .data_len = SHN_DATA_MAX };
	assert_int_equal(shn_notify(c, many, 9, 0), -EMSGSIZE);
	assert_int_equal(shn_notify(c, many, 9, SHN_NOTIFY_NONBLOCK), -EMSGSIZE);
	/* 7 x 64 KiB fits: accepted and delivered whole */
	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = (uint8_t)(i ^ (i >> 8));
	assert_int_equal(shn_notify(c, many, 7, 0), 0);
	assert_int_equal(h_get(p, out, 16), 7);
	for (int i = 0; i < 7; i++) {
		assert_int_equal(out[i].data_len, SHN_DATA_MAX);
		assert_memory_equal(out[i].data, big, SHN_DATA_MAX);
		assert_int_equal(out[i].seq, (uint64_t)i + 1);
		assert_int_equal(out[i].batch_count, 7);
	}
	assert_int_equal(out[0].batch_id, 1);   /* nothing refused above was published */
	/* after a batch that went to one port: a batch with its event and
	 * key length but no key (the pre-wake looks at the first note before
	 * the check does: it must not read through the NULL), and one with no
	 * key length */
	{
		shn_client *pc = h_connect(h);   /* a publisher of its own, fed directly */

		n = (shn_notification){ .event = 1, .key = "e", .key_len = 1 };
		for (int i = 0; i < 50; i++) {
			assert_int_equal(shn_notify(pc, &n, 1, 0), 0);
			assert_int_equal(h_get(p, out, 16), 1);
		}
		n = (shn_notification){ .event = 1, .key = NULL, .key_len = 1 };
		assert_int_equal(shn_notify(pc, &n, 1, 0), -EINVAL);
		h_disconnect(pc);
	}
	n = (shn_notification){ .event = 1, .key = NULL, .key_len = 1 };
	assert_int_equal(shn_notify(c, &n, 1, 0), -EINVAL);
	n = (shn_notification){ .event = 1, .key = "e", .key_len = 0 };
	assert_int_equal(shn_notify(c, &n, 1, 0), -EINVAL);
	/* nothing refused above was published */
	assert_int_equal(shn_port_get(p, out, 16, 0), -ETIMEDOUT);
	h_disconnect(c);
}

/* ---- 8b: port options --------------------------------------------------- */

static void test_port_open_errors(void **state)
{
	struct harness *h = *state;
	struct raw_client r;
	shn_port *p = NULL;

	/* the broker's maximum, as HELLO tells it */
	raw_hello(h, &r);
	uint32_t max = r.rep.max_capacity;
	raw_close(&r);

	shn_client *c = h_connect(h);
	shn_port_options o = { .capacity = max, .overflow = SHN_OVERFLOW_DROP };
	assert_int_equal(shn_port_open(c, &o, &p), 0);
	assert_int_equal(shn_port_close(p), 0);
	if (max < (1u << 30)) {
		o.capacity = max + 1;            /* rounds up to 2 * max */
		p = (shn_port *)0x1;
		assert_int_equal(shn_port_open(c, &o, &p), -EINVAL);
		assert_null(p);
		o.capacity = max * 2;
		assert_int_equal(shn_port_open(c, &o, &p), -EINVAL);
	}
	o.capacity = 1u << 31;
	assert_int_equal(shn_port_open(c, &o, &p), -EINVAL);
	o.capacity = UINT32_MAX;
	assert_int_equal(shn_port_open(c, &o, &p), -EINVAL);
	/* unknown overflow policy */
	o.capacity = 0;
	o.overflow = 2;
	assert_int_equal(shn_port_open(c, &o, &p), -EINVAL);
	o.overflow = 0xffffffffu;
	assert_int_equal(shn_port_open(c, &o, &p), -EINVAL);
	/* small capacities round up and work */
	o = (shn_port_options){ .capacity = 1, .overflow = SHN_OVERFLOW_DROP };
	shn_conn conn = 0;
	assert_int_equal(shn_port_open(c, &o, &p), 0);
	assert_int_equal(shn_subscribe(p, "x", 1, 1, 0, &conn), 0);
	shn_notification n = { .event = 1, .key = "x", .key_len = 1, .data = "y", .data_len = 1 };
	assert_int_equal(shn_notify(c, &n, 1, 0), 0);
	shn_notification out[2];
	assert_int_equal(h_get(p, out, 2), 1);
	assert_int_equal(out[0].conn, conn);
	/* the client is still fine after all the refusals */
	assert_int_equal(shn_port_close(p), 0);
	h_disconnect(c);
}

/* ---- 8c: protocol version ---------------------------------------------- */

static void test_version_mismatch(void **state)
{
	struct harness *h = *state;
	struct good g;
	union {
		struct shn_msg_hello_reply r;
		uint8_t b[SHN_MSG_MAX];
	} rep;
	struct shn_msg_hello req;
	int fds[8], nfds = 8;

	good_init(&g, h);
	int s = h_raw_connect(h);
	memset(&req, 0, sizeof(req));
	h_hdr_init(&req.hdr, SHN_MSG_HELLO);
	req.hdr.version = 99;
	h_raw_send(s, &req, sizeof(req));
	ssize_t n = h_raw_recv(s, &rep, sizeof(rep), fds, &nfds, H_TIMEOUT_MS);
	if (n <= 0)
		fail_msg("no reply to a HELLO of version 99: %zd", n);
	assert_int_equal(nfds, 0);                       /* nothing handed out */
	assert_int_equal(n, sizeof(struct shn_msg_hdr)); /* no body */
	assert_int_equal(rep.r.hdr.magic, SHN_PROTO_MAGIC);
	assert_int_equal(rep.r.hdr.type, SHN_MSG_HELLO);
	assert_int_equal(rep.r.hdr.id, req.hdr.id);
	assert_int_equal(rep.r.hdr.status, -EPROTONOSUPPORT);
	assert_int_equal(rep.r.hdr.version, SHN_PROTO_VERSION);  /* the broker's own */
	h_expect_eof(s, "after refusing version 99");
	close(s);
	good_roundtrip(&g);

	/* version 0 too */
	s = h_raw_connect(h);
	h_hdr_init(&req.hdr, SHN_MSG_HELLO);
	req.hdr.version = 0;
	h_raw_send(s, &req, sizeof(req));
	nfds = 8;
	n = h_raw_recv(s, &rep, sizeof(rep), fds, &nfds, H_TIMEOUT_MS);
	assert_true(n >= (ssize_t)sizeof(struct shn_msg_hdr));
	assert_int_equal(rep.r.hdr.status, -EPROTONOSUPPORT);
	h_expect_eof(s, "after refusing version 0");
	close(s);
	good_roundtrip(&g);
	good_fini(&g);
}

/* The library side of the version rule, against a fake broker: shn_connect
 * turns -EPROTONOSUPPORT into -EPROTO. */
struct fake {
	int lfd;
	int result;
};

static void *fake_broker(void *arg)
{
	struct fake *f = arg;
	struct pollfd pfd = { .fd = f->lfd, .events = POLLIN };
	struct shn_msg_hello req;

	f->result = -1;
	if (poll(&pfd, 1, H_TIMEOUT_MS) != 1)
		return NULL;
	int s = accept4(f->lfd, NULL, NULL, SOCK_CLOEXEC);
	if (s < 0)
		return NULL;
	pfd.fd = s;
	if (poll(&pfd, 1, H_TIMEOUT_MS) == 1 && recv(s, &req, sizeof(req), 0) >= 16) {
		struct shn_msg_hdr rep = { .magic = SHN_PROTO_MAGIC, .version = 2,
					   .type = SHN_MSG_HELLO, .id = req.hdr.id,
					   .status = -EPROTONOSUPPORT };
		send(s, &rep, sizeof(rep), MSG_NOSIGNAL);
		f->result = req.hdr.version;
	}
	close(s);
	return NULL;
}

static void test_version_mismatch_library(void **state)
{
	struct harness *h = *state;
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct fake f;
	pthread_t t;
	shn_client *c = (shn_client *)0x1;

	assert_true(strlen(h->dir) + 11 < sizeof(sa.sun_path));
	memcpy(sa.sun_path, h->dir, strlen(h->dir));
	strcat(sa.sun_path, "/fake.sock");
	f.lfd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	assert_true(f.lfd >= 0);
	assert_int_equal(bind(f.lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(f.lfd, 4), 0);
	assert_int_equal(pthread_create(&t, NULL, fake_broker, &f), 0);
	assert_int_equal(shn_connect(sa.sun_path, &c), -EPROTO);
	assert_null(c);
	pthread_join(t, NULL);
	assert_int_equal(f.result, SHN_PROTO_VERSION); /* the library sent its version */
	close(f.lfd);
	unlink(sa.sun_path);
}

/* ---- the broker validates control messages ------------------------------ */

static void test_control_validation(void **state)
{
	struct harness *h = *state;
	struct raw_client r;
	struct good g;
	union {
		struct shn_msg_subscribe m;
		uint8_t b[sizeof(struct shn_msg_subscribe) + 300];
	} sub;
	struct shn_msg_port_open po;
	struct shn_msg_port_open_reply *por;
	int fds[4], nfds;

	good_init(&g, h);
	raw_hello(h, &r);

	/* open a port the raw way */
	memset(&po, 0, sizeof(po));
	h_hdr_init(&po.hdr, SHN_MSG_PORT_OPEN);
	h_raw_send(r.sock, &po, sizeof(po));
	union {
		struct shn_msg_port_open_reply r;
		uint8_t b[SHN_MSG_MAX];
	} prep;
	nfds = 4;
	ssize_t n = h_raw_recv(r.sock, &prep, sizeof(prep), fds, &nfds, H_TIMEOUT_MS);
	assert_int_equal(n, sizeof(prep.r));
	por = &prep.r;
	assert_int_equal(por->hdr.status, 0);
	assert_int_equal(nfds, SHN_PORT_NFDS);
	assert_true(por->port_id != 0);
	assert_true(shn_ring_capacity_ok(por->capacity));
	for (int i = 0; i < nfds; i++)
		close(fds[i]);

#define SUB(conn_, port_, mask_, flags_, klen_, len_)                                  \
	({                                                                             \
		memset(&sub, 0, sizeof(sub));                                          \
		h_hdr_init(&sub.m.hdr, SHN_MSG_SUBSCRIBE);                               \
		sub.m.conn = (conn_);                                                  \
		sub.m.port_id = (port_);                                               \
		sub.m.event_mask = (mask_);                                            \
		sub.m.flags = (flags_);                                                \
		sub.m.key_len = (klen_);                                               \
		memset(sub.m.key, 'k', 300);                                           \
		raw_call(r.sock, &sub, sizeof(sub.m) + (len_), NULL, NULL);            \
	})
	uint32_t port = por->port_id;
	assert_int_equal(SUB(1, port, 1, 0, 257, 257), -EINVAL);       /* key too long */
	assert_int_equal(SUB(1, port, 1, 0, 0, 0), -EINVAL);           /* no key, not any-key */
	assert_int_equal(SUB(1, port, 1, SHN_SUB_ANY_KEY, 3, 3), -EINVAL); /* any-key with key */
	assert_int_equal(SUB(1, port, 1, 0x80, 3, 3), -EINVAL);        /* unknown flag */
	assert_int_equal(SUB(1, port, 1, SHN_SUB_PREFIX, 0, 0), -EINVAL);  /* empty prefix */
	assert_int_equal(SUB(1, port, 1, SHN_SUB_PREFIX | SHN_SUB_ANY_KEY, 0, 0), -EINVAL);
	assert_int_equal(SUB(1, port, 1, SHN_SUB_PREFIX | SHN_SUB_MONITOR | SHN_SUB_ANY_KEY, 0, 0),
			 -EINVAL);                                      /* a monitor takes every key */
	assert_int_equal(SUB(1, port, 1, SHN_SUB_PREFIX, 257, 257), -EINVAL);  /* prefix too long */
	assert_int_equal(SUB(1, port, 1, SHN_SUB_PREFIX, 3, 5), -EINVAL);  /* length disagrees */
	assert_int_equal(SUB(0, port, 1, 0, 3, 3), -EINVAL);           /* conn 0 */
	assert_int_equal(SUB(1, port, 0, 0, 3, 3), -EINVAL);           /* empty mask */
	assert_int_equal(SUB(1, port, SHN_EV_OVERFLOW, 0, 3, 3), -EINVAL); /* system bit */
	assert_int_equal(SUB(1, port, 1 | SHN_EV_HANDLE_CLOSE, 0, 3, 3), -EINVAL);
	assert_int_equal(SUB(1, port + 1000, 1, 0, 3, 3), -ENOENT);    /* not our port */
	assert_int_equal(SUB(1, port, 1, 0, 3, 3), 0);                 /* finally a good one */
	assert_int_equal(SUB(1, port, 1, 0, 4, 4), -EEXIST);           /* conn 1 is live */
	assert_int_equal(SUB(2, port, SHN_EV_ALL, SHN_SUB_ANY_KEY, 0, 0), 0);
	assert_int_equal(SUB(3, port, 1, 0, 256, 256), 0);             /* the longest key */
	assert_int_equal(SUB(4, port, 1, SHN_SUB_PREFIX, 3, 3), 0);    /* "kkk", a prefix */
	assert_int_equal(SUB(5, port, 1, SHN_SUB_PREFIX, 256, 256), 0); /* the longest prefix */
	/* the good client's port is not ours to subscribe */
	good_roundtrip(&g);

	struct shn_msg_unsubscribe un;
	memset(&un, 0, sizeof(un));
	h_hdr_init(&un.hdr, SHN_MSG_UNSUBSCRIBE);
	un.conn = 77;
	assert_int_equal(raw_call(r.sock, &un, sizeof(un), NULL, NULL), -ENOENT);
	h_hdr_init(&un.hdr, SHN_MSG_UNSUBSCRIBE);
	un.conn = 1;
	assert_int_equal(raw_call(r.sock, &un, sizeof(un), NULL, NULL), 0);
	h_hdr_init(&un.hdr, SHN_MSG_UNSUBSCRIBE);
	assert_int_equal(raw_call(r.sock, &un, sizeof(un), NULL, NULL), -ENOENT);
	/* conn numbers belong to their client: ours (2 is live) is not the
	 * good client's */
	assert_int_equal(shn_unsubscribe(g.c, 2), -ENOENT);

	struct shn_msg_port_close pc;
	memset(&pc, 0, sizeof(pc));
	h_hdr_init(&pc.hdr, SHN_MSG_PORT_CLOSE);
	pc.port_id = port + 1000;
	assert_int_equal(raw_call(r.sock, &pc, sizeof(pc), NULL, NULL), -ENOENT);
	h_hdr_init(&pc.hdr, SHN_MSG_PORT_CLOSE);
	pc.port_id = port;
	assert_int_equal(raw_call(r.sock, &pc, sizeof(pc), NULL, NULL), 0);
	h_hdr_init(&pc.hdr, SHN_MSG_PORT_CLOSE);
	assert_int_equal(raw_call(r.sock, &pc, sizeof(pc), NULL, NULL), -ENOENT);
	/* a port of capacity above the maximum, and an unknown policy */
	memset(&po, 0, sizeof(po));
	h_hdr_init(&po.hdr, SHN_MSG_PORT_OPEN);
	po.capacity = 1u << 31;
	nfds = 4;
	assert_int_equal(raw_call(r.sock, &po, sizeof(po), fds, &nfds), -EINVAL);
	assert_int_equal(nfds, 0);
	h_hdr_init(&po.hdr, SHN_MSG_PORT_OPEN);
	po.capacity = 0;
	po.overflow = 7;
	nfds = 4;
	assert_int_equal(raw_call(r.sock, &po, sizeof(po), fds, &nfds), -EINVAL);
	assert_int_equal(nfds, 0);
	good_roundtrip(&g);

	/* a SUBSCRIBE whose length disagrees with its key_len: refused, either
	 * as a bad key length (-EINVAL) or as a protocol error (closed) */
	memset(&sub, 0, sizeof(sub));
	h_hdr_init(&sub.m.hdr, SHN_MSG_SUBSCRIBE);
	sub.m.conn = 9;
	sub.m.port_id = port;
	sub.m.event_mask = 1;
	sub.m.key_len = 10;
	h_raw_send(r.sock, &sub, sizeof(sub.m) + 5);  /* key_len says 10, 5 sent */
	{
		union {
			struct shn_msg_hdr h;
			uint8_t b[SHN_MSG_MAX];
		} rep;
		ssize_t rn = h_raw_recv(r.sock, &rep, sizeof(rep), NULL, NULL, H_TIMEOUT_MS);
		if (rn > 0) {
			assert_int_equal(rn, sizeof(rep.h));
			assert_int_equal(rep.h.id, sub.m.hdr.id);
			assert_int_equal(rep.h.status, -EINVAL);
		} else if (rn != 0) {
			fail_msg("SUBSCRIBE with a short key: neither answered nor closed (%zd)", rn);
		} else {
			raw_close(&r);
			raw_hello(h, &r);
		}
	}
	good_roundtrip(&g);
	/* errors are answers, not protocol errors, and the connection lived
	 * on through all of them; a message shorter than its type's fixed part
	 * is a protocol error: closed without an answer */
	memset(&sub, 0, sizeof(sub));
	h_hdr_init(&sub.m.hdr, SHN_MSG_SUBSCRIBE);
	h_raw_send(r.sock, &sub, sizeof(sub.m) - 8);
	h_expect_eof(r.sock, "SUBSCRIBE shorter than its fixed part");
	raw_close(&r);
	good_roundtrip(&g);
	good_fini(&g);
#undef SUB
}

/* ---- 8d: garbage on the socket ------------------------------------------ */

static void test_garbage(void **state)
{
	struct harness *h = *state;
	struct good g;
	uint8_t junk[8192];
	struct raw_client r;

	for (size_t i = 0; i < sizeof(junk); i++)
		junk[i] = (uint8_t)(i * 37 + 11);
	good_init(&g, h);
	good_roundtrip(&g);

	/* an idle connection that never says anything blocks nobody */
	int idle = h_raw_connect(h);

	/* random bytes */
	int s = h_raw_connect(h);
	h_raw_send(s, junk, 100);
	h_expect_eof(s, "100 random bytes");
	close(s);
	good_roundtrip(&g);

	/* a HELLO with a wrong magic */
	struct shn_msg_hello hello;
	memset(&hello, 0, sizeof(hello));
	h_hdr_init(&hello.hdr, SHN_MSG_HELLO);
	hello.hdr.magic = 0x12345678;
	s = h_raw_connect(h);
	h_raw_send(s, &hello, sizeof(hello));
	h_expect_eof(s, "HELLO with a wrong magic");
	close(s);
	good_roundtrip(&g);

	/* shorter than a header */
	s = h_raw_connect(h);
	h_hdr_init(&hello.hdr, SHN_MSG_HELLO);
	h_raw_send(s, &hello, 8);
	h_expect_eof(s, "8-byte message");
	close(s);

	/* a HELLO cut short: header only */
	s = h_raw_connect(h);
	h_hdr_init(&hello.hdr, SHN_MSG_HELLO);
	h_raw_send(s, &hello, sizeof(hello.hdr));
	h_expect_eof(s, "HELLO without its body");
	close(s);
	good_roundtrip(&g);

	/* first message not a HELLO */
	struct shn_msg_port_open po;
	memset(&po, 0, sizeof(po));
	h_hdr_init(&po.hdr, SHN_MSG_PORT_OPEN);
	s = h_raw_connect(h);
	h_raw_send(s, &po, sizeof(po));
	h_expect_eof(s, "PORT_OPEN before HELLO");
	close(s);

	/* longer than SHN_MSG_MAX */
	s = h_raw_connect(h);
	memcpy(junk, &hello, sizeof(hello));
	h_raw_send(s, junk, SHN_MSG_MAX + 1000);
	h_expect_eof(s, "a message over SHN_MSG_MAX");
	close(s);
	good_roundtrip(&g);

	/* after a good HELLO: an unknown type, a second HELLO, garbage */
	raw_hello(h, &r);
	struct shn_msg_hdr unk;
	h_hdr_init(&unk, 99);
	h_raw_send(r.sock, &unk, sizeof(unk));
	h_expect_eof(r.sock, "unknown message type 99");
	raw_close(&r);

	raw_hello(h, &r);
	h_hdr_init(&unk, 0);
	h_raw_send(r.sock, &unk, sizeof(unk));
	h_expect_eof(r.sock, "message type 0");
	raw_close(&r);

	raw_hello(h, &r);
	h_hdr_init(&hello.hdr, SHN_MSG_HELLO);
	hello.hdr.magic = SHN_PROTO_MAGIC;
	h_raw_send(r.sock, &hello, sizeof(hello));
	h_expect_eof(r.sock, "a second HELLO");
	raw_close(&r);
	good_roundtrip(&g);

	raw_hello(h, &r);
	h_raw_send(r.sock, junk + 200, 300);
	h_expect_eof(r.sock, "garbage after HELLO");
	raw_close(&r);

	/* a client that vanishes mid-way */
	raw_hello(h, &r);
	raw_close(&r);
	good_roundtrip(&g);

	/* the idle one is still connected and still not answered */
	uint8_t b[64];
	assert_int_equal(h_raw_recv(idle, b, sizeof(b), NULL, NULL, 0), -ETIMEDOUT);
	close(idle);
	good_roundtrip(&g);
	good_fini(&g);
}

/* Garbage from another process while a well-behaved client works. */
struct spam_ctx {
	struct harness *h;
	int rounds;
};

static int spammer(void *arg)
{
	struct spam_ctx *x = arg;
	uint8_t junk[6000], buf[64];
	uint64_t rng = 12345;

	for (int i = 0; i < x->rounds; i++) {
		struct sockaddr_un sa = { .sun_family = AF_UNIX };
		int s = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
		CHILD_CHECK(s >= 0);
		strcpy(sa.sun_path, x->h->sock);
		CHILD_CHECK(connect(s, (struct sockaddr *)&sa, sizeof(sa)) == 0);
		rng = rng * 6364136223846793005ull + 1442695040888963407ull;
		size_t len = 1 + (size_t)((rng >> 33) % sizeof(junk));
		for (size_t k = 0; k < len; k++)
			junk[k] = (uint8_t)((rng >> 17) + k * 131);
		CHILD_CHECK(send(s, junk, len, MSG_NOSIGNAL) == (ssize_t)len);
		if (i % 2 == 0) {
			/* wait to be thrown out, never answered */
			ssize_t n = h_raw_recv(s, buf, sizeof(buf), NULL, NULL, H_TIMEOUT_MS);
			CHILD_CHECK_EQ(n, 0);
		}
		close(s);
	}
	return 0;
}

static void test_garbage_concurrent(void **state)
{
	struct harness *h = *state;
	struct spam_ctx x = { .h = h, .rounds = 400 };
	struct good g;

	good_init(&g, h);
	pid_t pid = h_fork(spammer, &x);
	for (int i = 0; i < 2000; i++)
		good_roundtrip(&g);
	h_wait_ok(pid, H_CHILD_TIMEOUT_MS);
	good_roundtrip(&g);
	good_fini(&g);
}

/* ---- hostile publish rings ---------------------------------------------- */

enum corruption {
	C_LEN_UNALIGNED,
	C_COUNT_ZERO,
	C_KEY_TOO_LONG,
	C_KEY_ZERO,
	C_NOTES_OVERRUN,
	C_DATA_TOO_LONG,
	C_EVENT_SYSTEM,
	C_EVENT_ZERO,
	C_TAIL_BEYOND,
	C_WRONG_TYPE,
	C_MAX
};

static const char *const cname[C_MAX] = {
	"record len not a multiple of 8", "batch count 0", "key_len 300", "key_len 0",
	"notes past the record", "data_len over SHN_DATA_MAX", "system event bit",
	"event 0", "tail beyond the capacity", "unknown record type",
};

static void corrupt(struct harness *h, enum corruption what, struct good *g)
{
	struct raw_client r;
	raw_hello(h, &r);
	uint32_t cap = r.rep.pub_capacity;
	size_t size = SHN_RING_HDR_SIZE + (size_t)cap;
	uint8_t *m = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED,
			  r.fds[SHN_HELLO_FD_PUB], 0);
	assert_true(m != MAP_FAILED);
	struct shn_ring_prod *prod = (void *)(m + SHN_PUB_PROD_OFF);
	uint8_t *data = m + SHN_RING_HDR_SIZE;
	assert_int_equal(prod->magic, SHN_RING_MAGIC);
	assert_int_equal(prod->capacity, cap);
	assert_int_equal(atomic_load(&prod->tail), 0);

	/* a well-formed batch of one note "good"/"x", then break it */
	struct shn_pub_batch *b = (void *)data;
	struct shn_pub_note *pn = (void *)(b + 1);
	uint32_t len = (uint32_t)sizeof(*b) + shn_pub_note_size(4, 1);
	memset(data, 0, 256);
	b->h = (struct shn_rec_hdr){ .len = len, .type = SHN_REC_BATCH };
	b->count = 1;
	b->batch_id = 1;
	*pn = (struct shn_pub_note){ .event = 1, .key_len = 4, .data_len = 1 };
	memcpy(pn + 1, "goodx", 5);
	uint64_t tail = len;
	switch (what) {
	case C_LEN_UNALIGNED: b->h.len = len - 4; break;
	case C_COUNT_ZERO: b->count = 0; break;
	case C_KEY_TOO_LONG: pn->key_len = 300; break;
	case C_KEY_ZERO: pn->key_len = 0; pn->data_len = 5; break;
	case C_NOTES_OVERRUN: b->count = 2; break;
	case C_DATA_TOO_LONG: pn->data_len = SHN_DATA_MAX_WIRE + 8; break;
	case C_EVENT_SYSTEM: pn->event = 1 | SHN_EV_OVERFLOW; break;
	case C_EVENT_ZERO: pn->event = 0; break;
	case C_TAIL_BEYOND: tail = 2ull * cap; break;
	case C_WRONG_TYPE: b->h.type = 77; break;
	case C_MAX: break;
	}
	atomic_store(&prod->tail, tail);
	uint64_t one = 1;
	assert_int_equal(write(r.fds[SHN_HELLO_FD_DOORBELL], &one, 8), 8);
	char what_s[128];
	snprintf(what_s, sizeof(what_s), "publish ring with %s", cname[what]);
	h_expect_eof(r.sock, what_s);
	munmap(m, size);
	raw_close(&r);
	/* nothing of it reached anyone, and the broker serves others */
	good_roundtrip(g);
}

static void test_hostile_publish_ring(void **state)
{
	struct harness *h = *state;
	struct good g;

	good_init(&g, h);
	good_roundtrip(&g);
	for (int w = 0; w < C_MAX; w++)
		corrupt(h, (enum corruption)w, &g);
	good_fini(&g);
}

/* A client writing nonsense into its consumer line: the broker must not
 * crash, stall, or stop serving others. */
static void test_hostile_consumer_line(void **state)
{
	struct harness *h = *state;
	struct raw_client r;
	struct good g;
	int fds[4], nfds = 4;

	good_init(&g, h);
	raw_hello(h, &r);
	struct shn_msg_port_open po;
	memset(&po, 0, sizeof(po));
	h_hdr_init(&po.hdr, SHN_MSG_PORT_OPEN);
	h_raw_send(r.sock, &po, sizeof(po));
	struct shn_msg_port_open_reply rep;
	assert_int_equal(h_raw_recv(r.sock, &rep, sizeof(rep), fds, &nfds, H_TIMEOUT_MS),
			 sizeof(rep));
	assert_int_equal(rep.hdr.status, 0);
	assert_int_equal(nfds, SHN_PORT_NFDS);
	struct shn_ring_cons *cons = mmap(NULL, SHN_CONS_SEG_SIZE, PROT_READ | PROT_WRITE,
					  MAP_SHARED, fds[SHN_PORT_FD_CONS], 0);
	assert_true(cons != MAP_FAILED);
	/* the delivery ring itself is read-only to us (rule 13) */
	void *w = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fds[SHN_PORT_FD_RING], 0);
	assert_true(w == MAP_FAILED);

	union {
		struct shn_msg_subscribe m;
		uint8_t b[sizeof(struct shn_msg_subscribe)];
	} sub;
	memset(&sub, 0, sizeof(sub));
	h_hdr_init(&sub.m.hdr, SHN_MSG_SUBSCRIBE);
	sub.m.conn = 1;
	sub.m.port_id = rep.port_id;
	sub.m.event_mask = SHN_EV_ALL;
	sub.m.flags = SHN_SUB_ANY_KEY;
	assert_int_equal(raw_call(r.sock, &sub, sizeof(sub.m), NULL, NULL), 0);

	atomic_store(&cons->head, 1ull << 40);       /* far beyond anything written */
	atomic_store(&cons->sleep_seq, 1);
	for (int i = 0; i < 50; i++)
		good_roundtrip(&g);
	atomic_store(&cons->head, UINT64_MAX - 5);   /* unaligned, backwards */
	for (int i = 0; i < 50; i++)
		good_roundtrip(&g);
	munmap(cons, SHN_CONS_SEG_SIZE);
	for (int i = 0; i < nfds; i++)
		close(fds[i]);
	raw_close(&r);
	good_roundtrip(&g);
	good_fini(&g);
}

int main(int argc, char **argv)
{
	h_parse_args(argc, argv);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_notify_errors, h_setup, h_teardown),
		cmocka_unit_test_setup_teardown(test_port_open_errors, h_setup, h_teardown),
		cmocka_unit_test_setup_teardown(test_version_mismatch, h_setup, h_teardown),
		cmocka_unit_test_setup_teardown(test_version_mismatch_library, h_setup, h_teardown),
		cmocka_unit_test_setup_teardown(test_control_validation, h_setup, h_teardown),
		cmocka_unit_test_setup_teardown(test_garbage, h_setup, h_teardown),
		cmocka_unit_test_setup_teardown(test_garbage_concurrent, h_setup, h_teardown),
		cmocka_unit_test_setup_teardown(test_hostile_publish_ring, h_setup, h_teardown),
		cmocka_unit_test_setup_teardown(test_hostile_consumer_line, h_setup, h_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
