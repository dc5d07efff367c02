/* SPDX-License-Identifier: MIT */
/*
 * test_hostile.c - the broker survives anything a client can do, and
 * nobody else notices (docs/security.md).  Real processes, a real broker:
 *
 *   test_garbage_storm  random and truncated control messages from many
 *                       connections at once, some after a good HELLO
 *   test_unread_and_fds descriptors pushed at the broker with requests and
 *                       garbage; a client that never reads its replies
 *   test_scribble       clients overwrite their writable shared mappings
 *                       (publish ring, consumer segments) with random bytes
 *                       and ring their doorbell; one keeps rewriting its
 *                       ring while the broker reads it
 *   test_truncate       a client tries to ftruncate (and grow, and punch
 *                       holes in) every segment descriptor it received
 *   test_kill_storm     hundreds of clients killed with SIGKILL at random
 *                       moments (mid-batch, mid-SYNC, holding publishers back
 *                       with full blocking ports, mid-handshake) while
 *                       others publish and receive
 *
 * Each misbehaving client is disconnected and counted in the stats
 * (protocol_errors, ring_errors, disconnects): the deltas are asserted
 * exactly.  Well-behaved clients keep a round trip going meanwhile and must
 * see exactly their own notifications.  The kill storm also checks that
 * the broker's descriptors (/proc/PID/fd) and RSS (/proc/PID/status) return
 * to their baseline, and that surviving subscribers received everything or
 * were told what they lost (SHN_EV_OVERFLOW).  Each test prints its
 * figures on stdout, lines starting "hostile:".
 *
 * Environment: SHN_TEST_SEED (the random seed), SHN_TEST_KILLS (clients to
 * kill, default 300), SHN_TEST_VALGRIND (smaller volumes).
 */
#define _GNU_SOURCE
#include "harness.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>

#include "broker/validate.h"
#include "shm/proto.h"
#include "shm/ring.h"

/* ---- small helpers ------------------------------------------------------ */

static uint64_t seed = 0x5eed1234abcdull;

static uint64_t rnd(uint64_t *s)
{
	/* xorshift64* */
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 2685821657736338717ull;
}

static void fill_random(uint64_t *s, void *p, size_t n)
{
	uint8_t *b = p;

	for (size_t i = 0; i < n; i++)
		b[i] = (uint8_t)(rnd(s) >> 56);
}

static bool under_valgrind(void)
{
	const char *e = getenv("SHN_TEST_VALGRIND");

	return e != NULL && *e != '\0' && strcmp(e, "0") != 0;
}

static long env_long(const char *name, long dflt)
{
	const char *e = getenv(name);

	return (e != NULL && *e != '\0') ? strtol(e, NULL, 0) : dflt;
}

/* A child process of our own (h_fork keeps at most 64 and reaps them
 * itself): runs fn(arg) and exits with its result; dies with the test. */
static pid_t spawn(int (*fn)(void *), void *arg)
{
	fflush(NULL);
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		alarm(H_CHILD_TIMEOUT_MS / 1000 + 5);
		int rc = fn(arg);
		fflush(NULL);
		_exit(rc);
	}
	return pid;
}

/* Does process pid run instrumented (ASan, TSan, valgrind)?  Then its RSS
 * says nothing about leaks (quarantine, shadow memory). */
static bool instrumented(pid_t pid)
{
	char path[64], line[512];
	bool yes = false;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/maps", (int)pid);
	f = fopen(path, "r");
	if (f == NULL)
		return false;
	while (!yes && fgets(line, sizeof(line), f) != NULL)
		yes = strstr(line, "libasan") || strstr(line, "libtsan") ||
		      strstr(line, "vgpreload") || strstr(line, "valgrind");
	fclose(f);
	return yes || under_valgrind();
}

/* The broker's counters, from its stats document (the "broker" object). */
struct bstats {
	uint64_t clients, ports, subscriptions, protocol_errors, ring_errors, disconnects,
		connections;
};

static uint64_t json_u64(const char *js, const char *name)
{
	char pat[64];
	const char *b = strstr(js, "\"broker\":{");
	const char *p;

	snprintf(pat, sizeof(pat), "\"%s\":", name);
	p = b ? strstr(b, pat) : NULL;
	if (p == NULL)
		fail_msg("stats: no \"%s\" in %s", name, js);
	return strtoull(p + strlen(pat), NULL, 10);
}

static struct bstats get_stats(shn_client *c)
{
	char *js = h_stats(c);
	struct bstats s = {
		.clients = json_u64(js, "clients"),
		.ports = json_u64(js, "ports"),
		.subscriptions = json_u64(js, "subscriptions"),
		.protocol_errors = json_u64(js, "protocol_errors"),
		.ring_errors = json_u64(js, "ring_errors"),
		.disconnects = json_u64(js, "disconnects"),
		.connections = json_u64(js, "connections"),
	};

	free(js);
	return s;
}

/* Open descriptors of process pid. */
static int count_fds(pid_t pid)
{
	char path[64];
	struct dirent *e;
	int n = 0;
	DIR *d;

	snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
	d = opendir(path);
	if (d == NULL)
		fail_msg("opendir(%s): %s", path, strerror(errno));
	while ((e = readdir(d)) != NULL)
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

/* The same, once it stopped changing: replies still in flight to clients
 * that just died own duplicates of the descriptors they carry until their
 * send completes (at most a moment, under io_uring asynchronously). */
static int count_fds_settled(pid_t pid)
{
	int64_t end = h_now_ms() + H_TIMEOUT_MS;
	int n = count_fds(pid);

	for (;;) {
		h_sleep_ms(20);
		int m = count_fds(pid);
		if (m == n || h_now_ms() > end)
			return m;
		n = m;
	}
}

/* Memory of process pid from /proc/PID/status, in KiB: VmRSS, and its
 * private (RssAnon) and shared-memory (RssShmem) parts; and how many
 * memfd segments it maps (/proc/PID/maps). */
struct mem {
	long rss, anon, shmem;
	int memfd_maps;
};

static struct mem mem_of(pid_t pid)
{
	char path[64], line[512];
	struct mem m = { -1, -1, -1, 0 };
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = fopen(path, "r");
	if (f == NULL)
		fail_msg("fopen(%s): %s", path, strerror(errno));
	while (fgets(line, sizeof(line), f) != NULL) {
		sscanf(line, "VmRSS: %ld kB", &m.rss);
		sscanf(line, "RssAnon: %ld kB", &m.anon);
		sscanf(line, "RssShmem: %ld kB", &m.shmem);
	}
	fclose(f);
	snprintf(path, sizeof(path), "/proc/%d/maps", (int)pid);
	f = fopen(path, "r");
	if (f == NULL)
		fail_msg("fopen(%s): %s", path, strerror(errno));
	while (fgets(line, sizeof(line), f) != NULL)
		if (strstr(line, "/memfd:") != NULL)
			m.memfd_maps++;
	fclose(f);
	return m;
}

/* ---- a well-behaved client: proves that nobody else notices ------------ */

struct good {
	const struct harness *h;
	shn_client *c;
	shn_port *p;
	shn_conn conn;
	char key[32];
	uint64_t seq;
	uint32_t counter;
};

static void good_init(struct good *g, struct harness *h, const char *name)
{
	memset(g, 0, sizeof(*g));
	g->h = h;
	snprintf(g->key, sizeof(g->key), "good-%s-%d", name, (int)getpid());
	g->c = h_connect(h);
	g->p = h_port_sub(g->c, 0, g->key, strlen(g->key), SHN_EV_ALL, &g->conn);
}

/* Publish one notification and receive exactly it, and nothing else. */
static void good_roundtrip(struct good *g)
{
	shn_notification out[8];
	uint32_t v = ++g->counter;
	shn_notification n = { .event = 1, .key = g->key, .key_len = (uint16_t)strlen(g->key),
			       .data = &v, .data_len = sizeof(v) };
	int r;

	assert_int_equal(shn_notify(g->c, &n, 1, 0), 0);
	r = h_get(g->p, out, 8);
	if (r != 1 || out[0].event != 1 || out[0].key_len != n.key_len ||
	    memcmp(out[0].key, g->key, n.key_len) != 0 || out[0].data_len != sizeof(v) ||
	    memcmp(out[0].data, &v, sizeof(v)) != 0 || out[0].seq != g->seq + 1 ||
	    out[0].sender_pid != getpid() || out[0].conn != g->conn)
		fail_msg("the well-behaved client got %d notification(s) (first: event 0x%x, "
			 "seq %llu, pid %d) instead of exactly its own #%u", r, out[0].event,
			 (unsigned long long)out[0].seq, out[0].sender_pid, v);
	g->seq++;
	assert_int_equal(shn_port_get(g->p, out, 8, 0), -ETIMEDOUT);
}

/* ---- the raw protocol ----------------------------------------------------- */

static int raw_connect_path(const char *sock)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -errno;
	strcpy(sa.sun_path, sock);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int e = -errno;
		close(fd);
		return e;
	}
	return fd;
}

static void close_fds(int *fds, int n)
{
	for (int i = 0; i < n; i++)
		if (fds[i] >= 0)
			close(fds[i]);
}

/* One request, its reply (header status, or -1000 - n on no reply: n 0 EOF,
 * n < 0 -errno / -ETIMEDOUT); descriptors in fds (closed when fds NULL). */
static int raw_call(int sock, const void *req, size_t len, void *rep, size_t rep_len, int *fds,
		    int *nfds)
{
	union {
		struct shn_msg_hdr h;
		uint8_t b[SHN_MSG_MAX];
	} buf;
	int tmp[8], ntmp = 8;
	ssize_t n;

	if (send(sock, req, len, MSG_NOSIGNAL) != (ssize_t)len)
		return -1000 + -errno;
	n = h_raw_recv(sock, &buf, sizeof(buf), fds ? fds : tmp, fds ? nfds : &ntmp, H_TIMEOUT_MS);
	if (fds == NULL)
		close_fds(tmp, ntmp);
	if (n < (ssize_t)sizeof(buf.h))
		return -1000 + (int)(n < 0 ? n : 0);
	if (rep != NULL)
		memcpy(rep, &buf, rep_len < (size_t)n ? rep_len : (size_t)n);
	/* STATS: the rest of its chunks */
	while (buf.h.type == SHN_MSG_STATS && buf.h.status == 0 &&
	       n >= (ssize_t)sizeof(struct shn_msg_stats_reply) &&
	       !(((struct shn_msg_stats_reply *)(void *)&buf)->flags & SHN_STATS_LAST)) {
		ntmp = 8;
		n = h_raw_recv(sock, &buf, sizeof(buf), tmp, &ntmp, H_TIMEOUT_MS);
		close_fds(tmp, ntmp);
		if (n < (ssize_t)sizeof(buf.h))
			return -1000 + (int)(n < 0 ? n : 0);
	}
	return ((const struct shn_msg_hdr *)req)->type == SHN_MSG_STATS ? 0 : buf.h.status;
}

/* True when the broker closes sock within timeout_ms, whatever it sent
 * before (SYNC_DONE for a batch that validated). */
static bool wait_closed(int sock, int timeout_ms)
{
	int64_t end = h_now_ms() + timeout_ms;

	for (;;) {
		uint8_t buf[SHN_MSG_MAX + 64];
		int fds[8], nfds = 8;
		int left = (int)(end - h_now_ms());
		ssize_t n = h_raw_recv(sock, buf, sizeof(buf), fds, &nfds, left > 0 ? left : 0);

		close_fds(fds, nfds);
		if (n == 0)
			return true;
		if (n < 0)
			return false;
	}
}

struct raw {
	int sock;
	int fds[SHN_HELLO_NFDS];
	struct shn_msg_hello_reply rep;
	uint8_t *pub;          /* the publish ring segment, mapped rw */
	size_t pub_size;
};

/* Connect and HELLO; 0 or -errno (no cmocka: usable in children). */
static int raw_hello(const char *sock, struct raw *r)
{
	struct shn_msg_hello req;
	int nfds = SHN_HELLO_NFDS;

	memset(r, 0, sizeof(*r));
	for (int i = 0; i < SHN_HELLO_NFDS; i++)
		r->fds[i] = -1;
	r->sock = raw_connect_path(sock);
	if (r->sock < 0)
		return r->sock;
	memset(&req, 0, sizeof(req));
	h_hdr_init(&req.hdr, SHN_MSG_HELLO);
	int st = raw_call(r->sock, &req, sizeof(req), &r->rep, sizeof(r->rep), r->fds, &nfds);
	if (st != 0 || nfds != SHN_HELLO_NFDS)
		return st != 0 ? st : -EPROTO;
	return 0;
}

static int raw_map_pub(struct raw *r)
{
	r->pub_size = SHN_RING_HDR_SIZE + (size_t)r->rep.pub_capacity;
	r->pub = mmap(NULL, r->pub_size, PROT_READ | PROT_WRITE, MAP_SHARED,
		      r->fds[SHN_HELLO_FD_PUB], 0);
	if (r->pub == MAP_FAILED) {
		r->pub = NULL;
		return -errno;
	}
	return 0;
}

static void raw_close(struct raw *r)
{
	if (r->pub != NULL)
		munmap(r->pub, r->pub_size);
	close_fds(r->fds, SHN_HELLO_NFDS);
	if (r->sock >= 0)
		close(r->sock);
	r->sock = -1;
	r->pub = NULL;
}

static void doorbell(struct raw *r)
{
	uint64_t one = 1;

	(void)!write(r->fds[SHN_HELLO_FD_DOORBELL], &one, sizeof(one));
}

struct raw_port {
	uint32_t id, capacity;
	int fds[SHN_PORT_NFDS];
};

static int raw_port_open(struct raw *r, uint32_t capacity, uint32_t overflow,
			 struct raw_port *p)
{
	struct shn_msg_port_open req;
	struct shn_msg_port_open_reply rep;
	int nfds = SHN_PORT_NFDS;

	memset(&req, 0, sizeof(req));
	h_hdr_init(&req.hdr, SHN_MSG_PORT_OPEN);
	req.capacity = capacity;
	req.overflow = overflow;
	memset(&rep, 0, sizeof(rep));
	for (int i = 0; i < SHN_PORT_NFDS; i++)
		p->fds[i] = -1;
	int st = raw_call(r->sock, &req, sizeof(req), &rep, sizeof(rep), p->fds, &nfds);
	if (st != 0)
		return st;
	if (nfds != SHN_PORT_NFDS)
		return -EPROTO;
	p->id = rep.port_id;
	p->capacity = rep.capacity;
	return 0;
}

static int raw_subscribe(struct raw *r, uint32_t port, uint64_t conn, const char *key)
{
	union {
		struct shn_msg_subscribe m;
		uint8_t b[sizeof(struct shn_msg_subscribe) + SHN_KEY_MAX_WIRE];
	} u;
	size_t klen = key ? strlen(key) : 0;

	memset(&u, 0, sizeof(u));
	h_hdr_init(&u.m.hdr, SHN_MSG_SUBSCRIBE);
	u.m.conn = conn;
	u.m.port_id = port;
	u.m.event_mask = SHN_EV_ALL_WIRE;
	u.m.flags = key ? 0 : SHN_SUB_ANY_KEY;
	u.m.key_len = (uint16_t)klen;
	memcpy(u.m.key, key ? key : "", klen);
	return raw_call(r->sock, &u, sizeof(u.m) + klen, NULL, 0, NULL, NULL);
}

/* Write one batch record of n notes to key at the publish ring's tail (no
 * publish).  Returns its length. */
static uint32_t raw_put_batch(struct raw *r, uint64_t at, uint32_t n, const char *key,
			      uint32_t dlen, uint64_t batch_id)
{
	uint8_t *data = r->pub + SHN_RING_HDR_SIZE;
	uint32_t mask = r->rep.pub_capacity - 1;
	uint32_t klen = (uint32_t)strlen(key), len = sizeof(struct shn_pub_batch);
	struct shn_pub_batch *b = (void *)(data + (at & mask));
	uint8_t *o;

	for (uint32_t i = 0; i < n; i++)
		len += shn_pub_note_size(klen, dlen);
	memset(b, 0, len);
	b->h.len = len;
	b->h.type = SHN_REC_BATCH;
	b->count = n;
	b->batch_id = batch_id;
	o = (uint8_t *)(b + 1);
	for (uint32_t i = 0; i < n; i++) {
		struct shn_pub_note *pn = (void *)o;

		pn->event = 1;
		pn->key_len = (uint16_t)klen;
		pn->data_len = dlen;
		memcpy(pn + 1, key, klen);
		memset((uint8_t *)(pn + 1) + klen, 'd', dlen);
		o += shn_pub_note_size(klen, dlen);
	}
	return len;
}

/* ---- 1. garbage: random and truncated messages from many connections ---- */

#define STORM_PROCS 6
#define STORM_OPEN 8      /* connections each storm process holds open at once */

struct storm_result {
	_Atomic uint64_t garbage;        /* protocol-error messages sent (one per connection) */
	_Atomic uint64_t answered;       /* well-formed requests answered meanwhile */
	_Atomic uint64_t random_bytes, truncated, bad_header, oversize, after_hello;
};

struct storm_ctx {
	const char *sock;
	int per_proc;                    /* connections each process ends with garbage */
	uint64_t seed;
	struct storm_result *res;
};

/* A request the broker answers (whatever the status): a well-formed type
 * and length with random fields. */
static size_t random_request(uint64_t *s, uint8_t *m)
{
	static const uint16_t types[] = { SHN_MSG_PORT_OPEN, SHN_MSG_PORT_CLOSE,
					  SHN_MSG_SUBSCRIBE, SHN_MSG_UNSUBSCRIBE, SHN_MSG_STATS };
	uint16_t type = types[rnd(s) % 5];
	size_t len;

	switch (type) {
	case SHN_MSG_PORT_OPEN: len = sizeof(struct shn_msg_port_open); break;
	case SHN_MSG_PORT_CLOSE: len = sizeof(struct shn_msg_port_close); break;
	case SHN_MSG_UNSUBSCRIBE: len = sizeof(struct shn_msg_unsubscribe); break;
	case SHN_MSG_STATS: len = sizeof(struct shn_msg_hdr); break;
	default: len = sizeof(struct shn_msg_subscribe); break;
	}
	fill_random(s, m, len);
	if (type == SHN_MSG_PORT_OPEN) {
		struct shn_msg_port_open *po = (void *)m;

		/* mostly refused; a few small rings granted */
		po->capacity = rnd(s) % 4 == 0 ? 4096 : po->capacity;
	}
	if (type == SHN_MSG_SUBSCRIBE) {
		struct shn_msg_subscribe *sub = (void *)m;

		sub->key_len = (uint16_t)(rnd(s) % 40);
		len += sub->key_len;
		fill_random(s, sub->key, sub->key_len);
		if (rnd(s) % 3 == 0) {
			sub->flags = 0;
			sub->event_mask = 1;
		}
	}
	h_hdr_init((struct shn_msg_hdr *)(void *)m, type);
	return len;
}

/* A message that is certainly a protocol error for a client past (or in)
 * its handshake: returns its length; *kind counts what it was. */
static size_t random_garbage(uint64_t *s, uint8_t *m, bool ready, struct storm_result *res)
{
	struct shn_msg_hdr *h = (void *)m;
	size_t len;

	switch (rnd(s) % 4) {
	case 0:     /* random bytes, a wrong magic */
		len = 1 + rnd(s) % (SHN_MSG_MAX + 400);
		fill_random(s, m, len);
		if (len >= 4 && h->magic == SHN_PROTO_MAGIC)
			h->magic ^= 1;
		atomic_fetch_add(&res->random_bytes, 1);
		return len;
	case 1: {   /* a well-formed message cut short */
		size_t full;

		if (!ready) {
			full = sizeof(struct shn_msg_hello);
			memset(m, 0, full);
			h_hdr_init(h, SHN_MSG_HELLO);
		} else {
			full = random_request(s, m);
			if (h->type == SHN_MSG_SUBSCRIBE)
				full = sizeof(struct shn_msg_subscribe); /* its fixed part */
			if (h->type == SHN_MSG_STATS) {
				/* a header cut short */
				full = sizeof(struct shn_msg_hdr);
			}
		}
		len = rnd(s) % full;
		if (len == 0)
			len = 1;
		atomic_fetch_add(&res->truncated, 1);
		return len;
	}
	case 2:     /* a header the broker refuses: unknown type, or HELLO at the wrong time */
		len = sizeof(struct shn_msg_hello);
		fill_random(s, m, len);
		h_hdr_init(h, (uint16_t)(ready ? (rnd(s) % 2 ? SHN_MSG_HELLO : 7 + rnd(s) % 60000)
				       : SHN_MSG_PORT_OPEN + rnd(s) % 10));
		atomic_fetch_add(&res->bad_header, 1);
		return len;
	default: {  /* longer than its type allows, or than SHN_MSG_MAX */
		size_t full = ready ? random_request(s, m) : sizeof(struct shn_msg_hello);

		if (!ready) {
			memset(m, 0, full);
			h_hdr_init(h, SHN_MSG_HELLO);
		}
		if (h->type == SHN_MSG_SUBSCRIBE || rnd(s) % 4 == 0)
			len = SHN_MSG_MAX + 1 + rnd(s) % 300;   /* SUBSCRIBE: only past the max */
		else
			len = full + 1 + rnd(s) % 64;
		fill_random(s, m + full, len - full);
		atomic_fetch_add(&res->oversize, 1);
		return len;
	}
	}
}

struct storm_conn {
	int sock;
	bool ready;
	int requests;                    /* well-formed requests still to send first */
};

static int storm_open(struct storm_ctx *x, uint64_t *s, struct storm_conn *c)
{
	c->ready = false;
	c->requests = 0;
	if (rnd(s) % 2 == 0) {
		struct raw r;
		int err = raw_hello(x->sock, &r);

		CHILD_CHECK_EQ(err, 0);
		close_fds(r.fds, SHN_HELLO_NFDS);
		c->sock = r.sock;
		c->ready = true;
		c->requests = (int)(rnd(s) % 6);
		atomic_fetch_add(&x->res->after_hello, 1);
	} else {
		c->sock = raw_connect_path(x->sock);
		CHILD_CHECK(c->sock >= 0);
	}
	return 0;
}

static int storm_proc(void *arg)
{
	struct storm_ctx *x = arg;
	uint64_t s = x->seed;
	static uint8_t m[SHN_MSG_MAX + 512];
	struct storm_conn conns[STORM_OPEN];
	int done = 0;

	for (int i = 0; i < STORM_OPEN; i++)
		storm_open(x, &s, &conns[i]);
	while (done < x->per_proc) {
		struct storm_conn *c = &conns[rnd(&s) % STORM_OPEN];

		if (c->requests > 0) {
			size_t len = random_request(&s, m);
			int st = raw_call(c->sock, m, len, NULL, 0, NULL, NULL);

			if (st <= -1000) {
				fprintf(stderr, "storm: a well-formed request (type %u, %zu bytes) "
					"got no answer (%d)\n", ((struct shn_msg_hdr *)(void *)m)->type,
					len, st + 1000);
				return 1;
			}
			atomic_fetch_add(&x->res->answered, 1);
			c->requests--;
			continue;
		}
		size_t len = random_garbage(&s, m, c->ready, x->res);
		ssize_t n = send(c->sock, m, len, MSG_NOSIGNAL);
		CHILD_CHECK_EQ(n, (ssize_t)len);
		atomic_fetch_add(&x->res->garbage, 1);
		uint8_t rb[SHN_MSG_MAX];
		int rfds[8], nrfds = 8;
		ssize_t rn = h_raw_recv(c->sock, rb, sizeof(rb), rfds, &nrfds, H_TIMEOUT_MS);
		close_fds(rfds, nrfds);
		if (rn != 0) {
			fprintf(stderr, "storm: garbage (%zu bytes, ready %d, type %u) was "
				"answered or not closed: %zd\n", len, c->ready,
				len >= 8 ? ((struct shn_msg_hdr *)(void *)m)->type : 0, rn);
			return 1;
		}
		close(c->sock);
		done++;
		storm_open(x, &s, c);
	}
	for (int i = 0; i < STORM_OPEN; i++)
		close(conns[i].sock);
	return 0;
}

static void test_garbage_storm(void **state)
{
	struct harness *h = *state;
	struct storm_result *res = h_shared(sizeof(*res));
	struct storm_ctx x[STORM_PROCS];
	pid_t pids[STORM_PROCS];
	struct good g;
	int per_proc = under_valgrind() ? 10 : 100, trips = 0;

	good_init(&g, h, "storm");
	good_roundtrip(&g);
	struct bstats before = get_stats(g.c);
	int fds0 = count_fds_settled(h->broker);

	for (int i = 0; i < STORM_PROCS; i++) {
		x[i] = (struct storm_ctx){ .sock = h->sock, .per_proc = per_proc,
					   .seed = seed + 7919u * (uint64_t)(i + 1), .res = res };
		pids[i] = spawn(storm_proc, &x[i]);
	}
	/* the well-behaved client works throughout */
	int64_t deadline = h_now_ms() + H_CHILD_TIMEOUT_MS;
	for (int left = STORM_PROCS; left > 0;) {
		for (int i = 0; i < STORM_PROCS; i++) {
			int st;

			if (pids[i] <= 0 || waitpid(pids[i], &st, WNOHANG) != pids[i])
				continue;
			if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
				fail_msg("storm process %d ended with status 0x%x", (int)pids[i], st);
			pids[i] = 0;
			left--;
		}
		if (h_now_ms() > deadline)
			fail_msg("the storm processes did not finish in %d ms", H_CHILD_TIMEOUT_MS);
		good_roundtrip(&g);
		trips++;
	}
	good_roundtrip(&g);

	uint64_t garbage = atomic_load(&res->garbage);
	struct bstats after;
	int64_t end = h_now_ms() + H_TIMEOUT_MS;
	do {   /* closed connections are reclaimed at the broker's next round */
		after = get_stats(g.c);
	} while (after.clients != before.clients && h_now_ms() < end && (h_sleep_ms(5), 1));
	int fds1 = count_fds_settled(h->broker);

	printf("hostile: garbage storm: %llu garbage messages on %llu connections from %d "
	       "processes (%llu random bytes, %llu truncated, %llu bad headers, %llu too long; "
	       "%llu after a good HELLO), %llu well-formed requests answered; protocol_errors "
	       "+%llu, disconnects +%llu; the good client made %d round trips meanwhile; "
	       "broker fds %d before, %d after\n",
	       (unsigned long long)garbage, (unsigned long long)garbage, STORM_PROCS,
	       (unsigned long long)res->random_bytes, (unsigned long long)res->truncated,
	       (unsigned long long)res->bad_header, (unsigned long long)res->oversize,
	       (unsigned long long)res->after_hello, (unsigned long long)res->answered,
	       (unsigned long long)(after.protocol_errors - before.protocol_errors),
	       (unsigned long long)(after.disconnects - before.disconnects), trips, fds0, fds1);
	assert_int_equal(garbage, (uint64_t)STORM_PROCS * (uint64_t)per_proc);
	assert_int_equal(after.protocol_errors - before.protocol_errors, garbage);
	assert_int_equal(after.disconnects - before.disconnects, garbage);
	assert_int_equal(after.ring_errors, before.ring_errors);
	assert_int_equal(after.clients, before.clients);
	assert_int_equal(after.ports, before.ports);
	assert_int_equal(after.subscriptions, before.subscriptions);
	assert_int_equal(fds1, fds0);
	good_roundtrip(&g);
	h_disconnect(g.c);
}

/* ---- 1b. replies never read; descriptors pushed at the broker ------------ */

/* Send msg with n descriptors attached (SCM_RIGHTS). */
static ssize_t send_fds(int sock, const void *msg, size_t len, const int *fds, int n)
{
	union {
		struct cmsghdr align;
		char b[CMSG_SPACE(sizeof(int) * 8)];
	} cb;
	struct iovec iov = { .iov_base = (void *)msg, .iov_len = len };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cb.b,
			     .msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)n) };
	struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);

	memset(cb.b, 0, sizeof(cb.b));
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)n);
	memcpy(CMSG_DATA(cm), fds, sizeof(int) * (size_t)n);
	return sendmsg(sock, &mh, MSG_NOSIGNAL);
}

static void test_unread_and_fds(void **state)
{
	struct harness *h = *state;
	struct good g;
	struct raw r;
	int sent = 0, with_fds = 0;

	good_init(&g, h, "unread");
	good_roundtrip(&g);
	struct bstats before = get_stats(g.c);
	int fds0 = count_fds_settled(h->broker);

	/* descriptors of every kind the broker uses, attached to requests,
	 * to garbage, and to a HELLO: answered as if they were not there, and
	 * never kept (its receives take no control data) */
	int mine[4];
	mine[0] = memfd_create("hostile", MFD_CLOEXEC);
	mine[1] = eventfd(0, EFD_CLOEXEC);
	mine[2] = open("/dev/null", O_RDWR | O_CLOEXEC);
	mine[3] = dup(mine[2]);
	for (int i = 0; i < 4; i++)
		assert_true(mine[i] >= 0);
	for (int i = 0; i < 20; i++) {
		struct shn_msg_hello hello;
		int s = h_raw_connect(h), nfds = 8, got[8];
		uint8_t buf[SHN_MSG_MAX];

		memset(&hello, 0, sizeof(hello));
		h_hdr_init(&hello.hdr, SHN_MSG_HELLO);
		assert_int_equal(send_fds(s, &hello, sizeof(hello), mine, 4), sizeof(hello));
		assert_true(h_raw_recv(s, buf, sizeof(buf), got, &nfds, H_TIMEOUT_MS) > 0);
		assert_int_equal(((struct shn_msg_hdr *)(void *)buf)->status, 0);
		close_fds(got, nfds);
		struct shn_msg_port_close pc;
		memset(&pc, 0, sizeof(pc));
		h_hdr_init(&pc.hdr, SHN_MSG_PORT_CLOSE);
		pc.port_id = 12345;
		assert_int_equal(send_fds(s, &pc, sizeof(pc), mine, 1 + i % 4), sizeof(pc));
		nfds = 8;
		assert_int_equal(h_raw_recv(s, buf, sizeof(buf), got, &nfds, H_TIMEOUT_MS),
				 sizeof(struct shn_msg_hdr));
		assert_int_equal(((struct shn_msg_hdr *)(void *)buf)->status, -ENOENT);
		assert_int_equal(nfds, 0);
		/* and garbage with descriptors: cut off, nothing kept */
		assert_int_equal(send_fds(s, "garbage!garbage!garbage!", 24, mine, 4), 24);
		assert_true(wait_closed(s, H_TIMEOUT_MS));
		close(s);
		with_fds += 3;
	}
	for (int i = 0; i < 4; i++)
		close(mine[i]);
	good_roundtrip(&g);

	/* a client that sends requests and never reads the replies: cut off
	 * once 64 replies wait (SHND_SENDQ_MAX), never grows the broker */
	assert_int_equal(raw_hello(h->sock, &r), 0);
	struct pollfd pfd = { .fd = r.sock, .events = POLLOUT };
	for (sent = 0; sent < 20000; sent++) {
		struct shn_msg_port_close pc;

		memset(&pc, 0, sizeof(pc));
		h_hdr_init(&pc.hdr, SHN_MSG_PORT_CLOSE);
		pc.port_id = 999999;
		if (poll(&pfd, 1, 2000) != 1 || (pfd.revents & (POLLHUP | POLLERR)) ||
		    send(r.sock, &pc, sizeof(pc), MSG_NOSIGNAL | MSG_DONTWAIT) != sizeof(pc))
			break;   /* cut off (or the socket is full: it stops reading us) */
		if (sent % 500 == 499)
			good_roundtrip(&g);
	}
	assert_true(wait_closed(r.sock, H_TIMEOUT_MS));
	raw_close(&r);
	good_roundtrip(&g);

	struct bstats after;
	int64_t end = h_now_ms() + H_TIMEOUT_MS;
	do
		after = get_stats(g.c);
	while (after.clients != before.clients && h_now_ms() < end && (h_sleep_ms(5), 1));
	int fds1 = count_fds_settled(h->broker);
	printf("hostile: unread replies and descriptors: %d messages carried descriptors "
	       "(memfd, eventfd, /dev/null) to the broker, none kept; a client sent %d requests "
	       "without reading a reply and was cut off; disconnects +%llu (%llu of them "
	       "protocol errors); broker fds %d before, %d after\n", with_fds, sent,
	       (unsigned long long)(after.disconnects - before.disconnects),
	       (unsigned long long)(after.protocol_errors - before.protocol_errors), fds0, fds1);
	assert_int_equal(after.protocol_errors - before.protocol_errors, 20);
	assert_int_equal(after.disconnects - before.disconnects, 21);
	assert_int_equal(after.clients, before.clients);
	assert_int_equal(fds1, fds0);
	h_disconnect(g.c);
}

/* ---- 2. scribbling over the writable shared mappings --------------------- */

enum scribble {
	SCR_PUB_ALL,       /* the whole publish ring segment: control lines and data */
	SCR_PUB_DATA,      /* random data under a plausible tail */
	SCR_PUB_FLIP,      /* a valid batch with random bytes changed */
	SCR_CONS,          /* a port's consumer segment, then traffic to the port */
	SCR_MAX
};

static const char *const scr_name[SCR_MAX] = { "publish ring, all of it",
					       "publish ring data under a plausible tail",
					       "a valid batch with flipped bytes",
					       "consumer segment" };

/* Would the broker accept the record of len bytes at data[0]?  (The same
 * validator it runs, on a copy.) */
static bool broker_accepts(const uint8_t *rec, uint32_t len)
{
	uint8_t *copy = malloc(len);
	uint32_t *notes;
	int count;
	bool ok = false;

	assert_non_null(copy);
	memcpy(copy, rec, len);
	count = shnd_pub_batch_check(copy, len);
	if (count > 0) {
		notes = malloc((size_t)count * sizeof(*notes));
		assert_non_null(notes);
		ok = shnd_pub_notes_check(copy, len, (uint32_t)count, notes) == count;
		free(notes);
	}
	free(copy);
	return ok;
}

/* One attack; returns true when the broker must cut the client off. */
static bool scribble_once(struct harness *h, struct good *g, enum scribble what, uint64_t *s,
			  bool *cut)
{
	struct raw r;
	bool expect_cut = true;

	assert_int_equal(raw_hello(h->sock, &r), 0);
	assert_int_equal(raw_map_pub(&r), 0);
	uint8_t *data = r.pub + SHN_RING_HDR_SIZE;
	struct shn_ring_prod *prod = (void *)(r.pub + SHN_PUB_PROD_OFF);
	uint32_t cap = r.rep.pub_capacity;

	switch (what) {
	case SCR_PUB_ALL:
		fill_random(s, r.pub, r.pub_size);
		/* a tail within a ring of the head would be a plausible one */
		if (atomic_load(&prod->tail) <= cap)
			atomic_store(&prod->tail, (uint64_t)cap + 8);
		break;
	case SCR_PUB_DATA: {
		uint64_t tail = 8 * (1 + rnd(s) % (cap / 8));

		fill_random(s, data, cap);
		expect_cut = true;
		/* the first record's header decides: a PAD must reach the end
		 * exactly, a batch must validate (vanishingly unlikely) */
		struct shn_rec_hdr *hd = (void *)data;
		if (hd->len >= 8 && hd->len % 8 == 0 && hd->len <= tail &&
		    ((hd->type == SHN_REC_PAD && hd->len == cap) ||
		     (hd->type == SHN_REC_BATCH && broker_accepts(data, hd->len))))
			hd->len = 4;   /* keep the attack an attack */
		atomic_store(&prod->tail, tail);
		break;
	}
	case SCR_PUB_FLIP: {
		uint32_t n = 1 + (uint32_t)(rnd(s) % 4);
		uint32_t len = raw_put_batch(&r, 0, n, "scribble", (uint32_t)(rnd(s) % 40), 1);
		int flips = 1 + (int)(rnd(s) % 4);

		/* flip bytes after the record header: the record stays a record
		 * of len bytes, its contents decide */
		for (int i = 0; i < flips; i++)
			data[8 + rnd(s) % (len - 8)] ^= (uint8_t)(1u << (rnd(s) % 8));
		expect_cut = !broker_accepts(data, len);
		atomic_store(&prod->tail, len);
		break;
	}
	case SCR_CONS: {
		struct raw_port p;

		assert_int_equal(raw_port_open(&r, 4096, SHN_OVERFLOW_DROP_WIRE, &p), 0);
		assert_int_equal(raw_subscribe(&r, p.id, 1, "scribble-cons"), 0);
		uint8_t *cons = mmap(NULL, SHN_CONS_SEG_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED,
				     p.fds[SHN_PORT_FD_CONS], 0);
		assert_true(cons != MAP_FAILED);
		fill_random(s, cons, SHN_CONS_SEG_SIZE);
		struct shn_ring_cons *cl = (void *)cons;
		/* a head in [0, tail] would be a legal one: the ring is empty */
		if (atomic_load(&cl->head) == 0)
			atomic_store(&cl->head, 8);
		doorbell(&r);
		/* traffic to the port until the broker needs room there and reads
		 * the head: 12 KiB through a 4 KiB ring */
		for (int i = 0; i < 48; i++) {
			static const char blob[200];
			shn_notification n = { .event = 1, .key = "scribble-cons", .key_len = 13,
					       .data = blob, .data_len = sizeof(blob) };
			assert_int_equal(shn_notify(g->c, &n, 1, 0), 0);
		}
		munmap(cons, SHN_CONS_SEG_SIZE);
		close_fds(p.fds, SHN_PORT_NFDS);
		break;
	}
	case SCR_MAX:
		break;
	}
	doorbell(&r);
	*cut = wait_closed(r.sock, expect_cut ? H_TIMEOUT_MS : 200);
	raw_close(&r);
	return expect_cut;
}

/* A publisher that keeps rewriting its ring while the broker reads it:
 * valid batches under a moving tail, with random bytes thrown in, until the
 * broker cuts it off. */
static int racer(void *arg)
{
	const char *sock = arg;
	uint64_t s = seed ^ 0xabcdef;
	struct raw r;

	CHILD_CHECK_EQ(raw_hello(sock, &r), 0);
	CHILD_CHECK_EQ(raw_map_pub(&r), 0);
	struct shn_ring_prod *prod = (void *)(r.pub + SHN_PUB_PROD_OFF);
	uint8_t *data = r.pub + SHN_RING_HDR_SIZE;
	uint32_t cap = r.rep.pub_capacity;
	uint64_t tail = 0;
	struct pollfd pfd = { .fd = r.sock, .events = POLLIN };

	for (int i = 0; i < 200000; i++) {
		uint32_t len = raw_put_batch(&r, tail, 2, "racer", 16, (uint64_t)i + 1);

		if ((tail & (cap - 1)) + len > cap)
			break;   /* no wrap handling here: stop at the end */
		tail += len;
		atomic_store(&prod->tail, tail);
		doorbell(&r);
		/* rewrite what may already be read */
		for (int k = 0; k < 4; k++)
			data[rnd(&s) % (tail & (cap - 1) ? tail & (cap - 1) : 1)] ^= 0xff;
		if (poll(&pfd, 1, 0) == 1)
			break;   /* cut off */
	}
	/* and finally nonsense under the tail, surely caught */
	atomic_store(&prod->tail, tail + 2ull * cap);
	doorbell(&r);
	CHILD_CHECK(wait_closed(r.sock, H_TIMEOUT_MS));
	raw_close(&r);
	return 0;
}

/* A SYNC batch rewritten into garbage while the broker serves it: each
 * port's turn copies and validates the record again, so the next port never
 * sees it; the publisher is cut off; the subscriber that acknowledged and
 * the well-behaved one go on. */
static void sync_rewrite(struct harness *h, struct good *g)
{
	struct raw pub, sub;
	struct raw_port a;
	shn_port *p2 = NULL;
	shn_conn conn2;
	shn_notification out[4];

	/* the first subscription (served first): a raw port we acknowledge by
	 * hand; the second: the good client's */
	assert_int_equal(raw_hello(h->sock, &sub), 0);
	assert_int_equal(raw_port_open(&sub, 0, SHN_OVERFLOW_DROP_WIRE, &a), 0);
	assert_int_equal(raw_subscribe(&sub, a.id, 1, "sync-race"), 0);
	p2 = h_port_sub(g->c, 0, "sync-race", 9, SHN_EV_ALL, &conn2);

	assert_int_equal(raw_hello(h->sock, &pub), 0);
	assert_int_equal(raw_map_pub(&pub), 0);
	struct shn_ring_prod *prod = (void *)(pub.pub + SHN_PUB_PROD_OFF);
	uint32_t len = raw_put_batch(&pub, 0, 2, "sync-race", 8, 1);
	struct shn_pub_batch *pb = (void *)(pub.pub + SHN_RING_HDR_SIZE);
	pb->flags = SHN_PUB_SYNC;
	atomic_store(&prod->tail, len);
	doorbell(&pub);

	/* the record reaches port a first, flagged SYNC, with a token */
	size_t ring_size = SHN_RING_HDR_SIZE + (size_t)a.capacity;
	const uint8_t *ring = mmap(NULL, ring_size, PROT_READ, MAP_SHARED, a.fds[SHN_PORT_FD_RING], 0);
	uint8_t *cons = mmap(NULL, SHN_CONS_SEG_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED,
			     a.fds[SHN_PORT_FD_CONS], 0);
	assert_true(ring != MAP_FAILED && cons != MAP_FAILED);
	const struct shn_ring_prod *dprod = (const void *)ring;
	int64_t end = h_now_ms() + H_TIMEOUT_MS;
	while (atomic_load(&dprod->tail) == 0 && h_now_ms() < end)
		h_sleep_ms(1);
	assert_true(atomic_load(&dprod->tail) > 0);
	const struct shn_del_batch *db = (const void *)(ring + SHN_RING_HDR_SIZE);
	assert_int_equal(db->h.type, SHN_REC_DELIVERY);
	assert_true(db->h.flags & SHN_DEL_SYNC);
	assert_int_equal(db->count, 2);
	uint32_t token = db->sync_token;
	assert_true(token != 0);
	/* the good client's port waits its turn */
	assert_int_equal(shn_port_get(p2, out, 4, 50), -ETIMEDOUT);

	/* the publisher rewrites its record, then port a acknowledges */
	pb->count = 0;
	struct shn_sync_ack *ack = (void *)(cons + SHN_SYNC_ACK_OFF);
	atomic_store(&ack->status, 0);
	atomic_store(&ack->token, token);
	doorbell(&sub);
	assert_true(wait_closed(pub.sock, H_TIMEOUT_MS));   /* cut off */
	/* the good port never saw it; the good client and port a's owner go on */
	assert_int_equal(shn_port_get(p2, out, 4, 100), -ETIMEDOUT);
	good_roundtrip(g);
	uint8_t b[64];
	assert_int_equal(h_raw_recv(sub.sock, b, sizeof(b), NULL, NULL, 100), -ETIMEDOUT);
	munmap((void *)ring, ring_size);
	munmap(cons, SHN_CONS_SEG_SIZE);
	close_fds(a.fds, SHN_PORT_NFDS);
	raw_close(&pub);
	raw_close(&sub);
	assert_int_equal(shn_port_close(p2), 0);
}

static void test_scribble(void **state)
{
	struct harness *h = *state;
	int rounds = under_valgrind() ? 3 : 25;
	int tried[SCR_MAX] = { 0 }, cut[SCR_MAX] = { 0 }, tolerated[SCR_MAX] = { 0 };
	uint64_t s = seed ^ 0x5c41bb1e;
	struct good g;

	good_init(&g, h, "scribble");
	good_roundtrip(&g);
	struct bstats before = get_stats(g.c);

	for (int i = 0; i < rounds; i++) {
		for (int w = 0; w < SCR_MAX; w++) {
			bool was_cut;
			bool must = scribble_once(h, &g, (enum scribble)w, &s, &was_cut);

			tried[w]++;
			if (must && !was_cut)
				fail_msg("scribble '%s' (round %d): the broker did not cut the "
					 "client off", scr_name[w], i);
			if (!must && was_cut)
				fail_msg("scribble '%s' (round %d): a valid record cut the client "
					 "off", scr_name[w], i);
			cut[w] += was_cut;
			tolerated[w] += !was_cut;
			good_roundtrip(&g);
		}
	}
	pid_t pid = h_fork(racer, h->sock);
	h_wait_ok(pid, H_CHILD_TIMEOUT_MS);
	good_roundtrip(&g);
	sync_rewrite(h, &g);

	struct bstats after = get_stats(g.c);
	int total_cut = 2;   /* the racer, the SYNC rewriter */
	for (int w = 0; w < SCR_MAX; w++)
		total_cut += cut[w];
	printf("hostile: scribble: %d attacks (", rounds * SCR_MAX + 2);
	for (int w = 0; w < SCR_MAX; w++)
		printf("%s%d %s: %d cut off, %d valid and routed", w ? "; " : "", tried[w],
		       scr_name[w], cut[w], tolerated[w]);
	printf("; 1 racing rewriter: cut off; 1 SYNC batch rewritten while served: cut off "
	       "before the second port's turn); ring_errors +%llu, disconnects +%llu, "
	       "protocol_errors +%llu\n",
	       (unsigned long long)(after.ring_errors - before.ring_errors),
	       (unsigned long long)(after.disconnects - before.disconnects),
	       (unsigned long long)(after.protocol_errors - before.protocol_errors));
	assert_int_equal(after.ring_errors - before.ring_errors, (uint64_t)total_cut);
	assert_int_equal(after.disconnects - before.disconnects, (uint64_t)total_cut);
	assert_int_equal(after.protocol_errors, before.protocol_errors);
	h_disconnect(g.c);
}

/* ---- 3. truncating every segment received ------------------------------- */

struct trunc_tally {
	int tried, refused, punched;
};

/* Try to change the size of fd (size bytes) every way there is; every
 * attempt must fail.  Hole punching keeps the size: it may succeed on a
 * writable segment (it reads back as zeros, no SIGBUS), never on a
 * read-only one. */
static void try_truncate(int fd, size_t size, bool readonly, struct trunc_tally *t,
			 const char *what)
{
	const off_t sizes[] = { 0, 1, (off_t)size / 2, (off_t)size - 8, (off_t)size + 4096,
				(off_t)size * 2 };
	char path[64];
	int fds[2] = { fd, -1 };

	/* the same file reopened through /proc, read-write if it lets us */
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	fds[1] = open(path, O_RDWR | O_CLOEXEC);
	for (int k = 0; k < 2; k++) {
		if (fds[k] < 0)
			continue;
		for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
			t->tried++;
			if (ftruncate(fds[k], sizes[i]) == 0)
				fail_msg("%s: ftruncate(%lld) succeeded", what, (long long)sizes[i]);
			t->refused++;
		}
		/* grow by allocation, or by writing past the end */
		t->tried += 2;
		if (fallocate(fds[k], 0, 0, (off_t)size + 4096) == 0)
			fail_msg("%s: fallocate grew it", what);
		if (pwrite(fds[k], "x", 1, (off_t)size + 100) == 1)
			fail_msg("%s: pwrite past the end grew it", what);
		t->refused += 2;
		t->tried++;
		if (fallocate(fds[k], FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0,
			      (off_t)size) == 0) {
			if (readonly)
				fail_msg("%s: a hole punched in a read-only segment", what);
			t->punched++;
		} else {
			t->refused++;
		}
		struct stat st;
		assert_int_equal(fstat(fds[k], &st), 0);
		if ((size_t)st.st_size != size)
			fail_msg("%s: size %lld, was %zu", what, (long long)st.st_size, size);
	}
	if (fds[1] >= 0)
		close(fds[1]);
}

static void test_truncate(void **state)
{
	struct harness *h = *state;
	struct trunc_tally t = { 0 };
	struct raw r;
	struct raw_port p[3];
	struct good g;
	int segments = 0;

	good_init(&g, h, "truncate");
	good_roundtrip(&g);
	struct bstats before = get_stats(g.c);

	assert_int_equal(raw_hello(h->sock, &r), 0);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(raw_port_open(&r, 0, i == 2 ? SHN_OVERFLOW_BLOCK_WIRE
							    : SHN_OVERFLOW_DROP_WIRE, &p[i]), 0);
		assert_int_equal(raw_subscribe(&r, p[i].id, 10 + (uint64_t)i, i ? g.key : NULL),
				 0);
	}
	/* the publish ring and the broker segment, then each port's two */
	try_truncate(r.fds[SHN_HELLO_FD_PUB], SHN_RING_HDR_SIZE + (size_t)r.rep.pub_capacity,
		     false, &t, "publish ring");
	try_truncate(r.fds[SHN_HELLO_FD_BROKER], SHN_BROKER_SHM_SIZE, true, &t, "broker segment");
	segments += 2;
	for (int i = 0; i < 3; i++) {
		try_truncate(p[i].fds[SHN_PORT_FD_RING], SHN_RING_HDR_SIZE + (size_t)p[i].capacity,
			     true, &t, "delivery ring");
		try_truncate(p[i].fds[SHN_PORT_FD_CONS], SHN_CONS_SEG_SIZE, false, &t,
			     "consumer segment");
		segments += 2;
	}
	/* the broker now works on those segments: its doorbell, traffic to the
	 * three ports (one of them blocking), its publish ring read */
	doorbell(&r);
	for (int i = 0; i < 20; i++)
		good_roundtrip(&g);
	/* whatever the holes did to its rings, the broker is alive and serves */
	struct bstats after = get_stats(g.c);
	raw_close(&r);
	for (int i = 0; i < 3; i++)
		close_fds(p[i].fds, SHN_PORT_NFDS);
	for (int i = 0; i < 5; i++)
		good_roundtrip(&g);
	assert_int_equal(waitpid(h->broker, NULL, WNOHANG), 0);   /* no SIGBUS */
	printf("hostile: truncate: %d segments, %d size changes tried (ftruncate to 6 sizes, "
	       "fallocate, pwrite past the end, each also through a /proc reopen), %d refused, "
	       "%d hole punches allowed on writable segments (read back as zeros); broker "
	       "alive, no SIGBUS; ring_errors +%llu\n",
	       segments, t.tried, t.refused, t.punched,
	       (unsigned long long)(after.ring_errors - before.ring_errors));
	h_disconnect(g.c);
}

/* ---- 4. clients killed at random moments --------------------------------- */

#define SURV_PUBS 2
#define SURV_SUBS 2

struct storm_shared {
	_Atomic int stop;                       /* survivors' publishers: stop now */
	_Atomic uint64_t published[SURV_PUBS];  /* notifications each survivor published */
	_Atomic int pubs_done;
	_Atomic uint64_t received[SURV_SUBS], lost[SURV_SUBS], overflows[SURV_SUBS];
	_Atomic uint64_t victim_batches;        /* batches victims got accepted */
	_Atomic uint64_t roles[6];
	_Atomic int subs_ready;
	/* per victim (by serial % 4096): 1 while inside shn_notify */
	_Atomic uint8_t in_notify[4096];
};

struct kill_ctx {
	struct harness *h;
	struct storm_shared *sh;
	int idx;
	uint64_t seed;
};

static const char *const surv_key[SURV_PUBS] = { "survivor-0", "survivor-1" };

struct surv_data {
	uint32_t pub;
	uint32_t pad;
	uint64_t counter;
};

/* A surviving publisher: batches of 1..16 to its key, every 16th SYNC, until
 * told to stop. */
static int surv_pub(void *arg)
{
	struct kill_ctx *x = arg;
	shn_client *c = NULL;
	uint64_t counter = 0, s = x->seed;
	shn_notification batch[16];
	struct surv_data d[16];

	CHILD_CHECK_EQ(shn_connect(x->h->sock, &c), 0);
	shn_set_sync_timeout(c, 20000);
	while (!atomic_load(&x->sh->stop)) {
		int n = 1 + (int)(rnd(&s) % 16);
		unsigned flags = rnd(&s) % 16 == 0 ? SHN_NOTIFY_SYNC : 0;

		for (int i = 0; i < n; i++) {
			d[i] = (struct surv_data){ .pub = (uint32_t)x->idx, .counter = ++counter };
			batch[i] = (shn_notification){ .event = 1u << (i % 4),
						       .key = surv_key[x->idx],
						       .key_len = (uint16_t)strlen(surv_key[x->idx]),
						       .data = &d[i], .data_len = sizeof(d[i]) };
		}
		int err = shn_notify(c, batch, (size_t)n, flags);
		if (err != 0 && err != SHN_NOTIFY_CANCELED) {
			fprintf(stderr, "survivor publisher %d: shn_notify: %d (%s)\n", x->idx, err,
				shn_strerror(err));
			return 1;
		}
		atomic_store(&x->sh->published[x->idx], counter);
		if (rnd(&s) % 8 == 0)
			h_sleep_ms(1);
	}
	atomic_fetch_add(&x->sh->pubs_done, 1);
	shn_disconnect(c);
	return 0;
}

/* A surviving subscriber: both survivors' keys on one port; checks order
 * per publisher, seq gaps == reported losses, and at the end received +
 * lost == published. */
static int surv_sub(void *arg)
{
	struct kill_ctx *x = arg;
	shn_client *c = NULL;
	shn_port *p = NULL;
	shn_conn conn[SURV_PUBS];
	/* subscriber 1: a small ring and a slow reader, so that it overflows */
	shn_port_options o = { .capacity = x->idx == 1 ? 4096 : 1u << 16,
			       .overflow = SHN_OVERFLOW_DROP };
	uint64_t next[SURV_PUBS] = { 1, 1 }, last_seq = 0, lost = 0, lost_unseen = 0, got = 0;
	shn_notification out[64];
	int64_t end = 0;

	CHILD_CHECK_EQ(shn_connect(x->h->sock, &c), 0);
	CHILD_CHECK_EQ(shn_port_open(c, &o, &p), 0);
	for (int i = 0; i < SURV_PUBS; i++)
		CHILD_CHECK_EQ(shn_subscribe(p, surv_key[i], strlen(surv_key[i]), SHN_EV_ALL, 0,
					     &conn[i]), 0);
	atomic_fetch_add(&x->sh->subs_ready, 1);
	for (;;) {
		int n = shn_port_get(p, out, 64, 100);

		if (n == -ETIMEDOUT) {
			uint64_t want = 0;
			for (int i = 0; i < SURV_PUBS; i++)
				want += atomic_load(&x->sh->published[i]);
			if (atomic_load(&x->sh->pubs_done) == SURV_PUBS && got + lost == want)
				break;
			if (atomic_load(&x->sh->pubs_done) == SURV_PUBS) {
				if (end == 0)
					end = h_now_ms() + H_TIMEOUT_MS;
				if (h_now_ms() > end) {
					fprintf(stderr, "survivor subscriber %d: received %llu + lost "
						"%llu != published %llu\n", x->idx,
						(unsigned long long)got, (unsigned long long)lost,
						(unsigned long long)want);
					return 1;
				}
			}
			continue;
		}
		CHILD_CHECK(n > 0);
		/* slow down now and then, so that the ring overflows sometimes */
		if (x->idx == 1 && rnd(&x->seed) % 16 == 0)
			h_sleep_ms(10);
		for (int i = 0; i < n; i++) {
			const shn_notification *m = &out[i];

			if (m->event == SHN_EV_OVERFLOW) {
				uint64_t k;
				CHILD_CHECK_EQ(m->data_len, 8);
				memcpy(&k, m->data, 8);
				CHILD_CHECK(k > 0);
				lost += k;
				lost_unseen += k;
				atomic_fetch_add(&x->sh->overflows[x->idx], 1);
				continue;
			}
			CHILD_CHECK((m->event & 0xf0000000u) == 0);   /* no other system event */
			/* rule 3: seq is gapless but for what was reported lost */
			CHILD_CHECK_EQ(m->seq, last_seq + 1 + lost_unseen);
			last_seq = m->seq;
			lost_unseen = 0;
			CHILD_CHECK_EQ(m->data_len, sizeof(struct surv_data));
			struct surv_data d;
			memcpy(&d, m->data, sizeof(d));
			CHILD_CHECK(d.pub < SURV_PUBS);
			CHILD_CHECK(m->key_len == strlen(surv_key[d.pub]) &&
				    memcmp(m->key, surv_key[d.pub], m->key_len) == 0);
			CHILD_CHECK_EQ(m->conn, conn[d.pub]);
			/* per publisher: in order; a gap only where losses were reported */
			if (d.counter < next[d.pub])
				fprintf(stderr, "survivor subscriber %d: publisher %u's counter %llu after %llu "
					"(batch %llu, %u of %u, seq %llu, lost so far %llu)\n", x->idx, d.pub,
					(unsigned long long)d.counter, (unsigned long long)next[d.pub] - 1,
					(unsigned long long)m->batch_id, m->batch_index, m->batch_count,
					(unsigned long long)m->seq, (unsigned long long)lost);
			CHILD_CHECK(d.counter >= next[d.pub]);
			CHILD_CHECK(d.counter == next[d.pub] || lost > 0);
			next[d.pub] = d.counter + 1;
			got++;
		}
		atomic_store(&x->sh->received[x->idx], got);
		atomic_store(&x->sh->lost[x->idx], lost);
	}
	atomic_store(&x->sh->received[x->idx], got);
	atomic_store(&x->sh->lost[x->idx], lost);
	shn_disconnect(c);
	return 0;
}

/* A victim: does one thing until it is killed.  Never returns on its own
 * except on an unexpected failure. */
enum role { R_FLOOD, R_SUB, R_BLOCKER, R_SYNC, R_RAW, R_MAX };

static void victim(struct harness *h, struct storm_shared *sh, uint64_t s, unsigned serial)
{
	_Atomic uint8_t *busy = &sh->in_notify[serial % 4096];
	enum role role = (enum role)(rnd(&s) % R_MAX);
	shn_client *c = NULL;
	static uint8_t blob[4096];

	atomic_fetch_add(&sh->roles[role], 1);
	if (role == R_RAW) {
		/* killed somewhere in the handshake or a request */
		struct raw r;
		if (raw_hello(h->sock, &r) == 0) {
			struct raw_port p;
			for (;;) {
				if (raw_port_open(&r, 4096, 0, &p) == 0)
					close_fds(p.fds, SHN_PORT_NFDS);
			}
		}
		pause();
		_exit(0);
	}
	if (shn_connect(h->sock, &c) != 0)
		_exit(3);
	switch (role) {
	case R_FLOOD:
	case R_SYNC: {
		/* big batches to victims' keys: most kills land inside shn_notify */
		shn_notification b[64];
		for (uint64_t k = 0;; k++) {
			int n = 1 + (int)(rnd(&s) % 64);
			for (int i = 0; i < n; i++)
				b[i] = (shn_notification){ .event = 1, .key = "victim", .key_len = 6,
							   .data = blob,
							   .data_len = (uint32_t)(rnd(&s) % 2048) };
			atomic_store(busy, 1);
			int err = shn_notify(c, b, (size_t)n, role == R_SYNC ? SHN_NOTIFY_SYNC : 0);
			atomic_store(busy, 0);
			if (err == 0)
				atomic_fetch_add(&sh->victim_batches, 1);
		}
	}
	case R_SUB: {
		/* reads victims' traffic, slowly, on a small ring */
		shn_port_options o = { .capacity = 4096, .overflow = SHN_OVERFLOW_DROP };
		shn_port *p = NULL;
		shn_conn conn;
		shn_notification out[16];
		if (shn_port_open(c, &o, &p) != 0 ||
		    shn_subscribe(p, "victim", 6, SHN_EV_ALL, 0, &conn) != 0)
			_exit(4);
		for (;;) {
			(void)shn_port_get(p, out, 16, 5);
			h_sleep_ms(1);
		}
	}
	case R_BLOCKER: {
		/* a full blocking port that nobody reads, on a survivor's key (holds
		 * that publisher back until this process dies) or on the victims'
		 * key (flooders killed while held back leave batches to drain) */
		shn_port_options o = { .capacity = 4096, .overflow = SHN_OVERFLOW_BLOCK };
		shn_port *p = NULL;
		shn_conn conn;
		unsigned k = (unsigned)(rnd(&s) % 3);
		const char *key = k < SURV_PUBS ? surv_key[k] : "victim";
		if (shn_port_open(c, &o, &p) != 0 ||
		    shn_subscribe(p, key, strlen(key), SHN_EV_ALL, 0, &conn) != 0)
			_exit(5);
		pause();
		break;
	}
	default:
		break;
	}
	_exit(0);
}

struct live {
	pid_t pid;
	int64_t kill_at;
	unsigned serial;
};

static long kill_all(struct live *live, int *nlive)
{
	long n = 0;

	for (int i = 0; i < *nlive; i++) {
		kill(live[i].pid, SIGKILL);
		waitpid(live[i].pid, NULL, 0);
		n++;
	}
	*nlive = 0;
	return n;
}

/* Wait until the broker has reclaimed everyone but `clients` clients. */
static struct bstats settle(struct good *g, uint64_t clients)
{
	int64_t end = h_now_ms() + H_TIMEOUT_MS;
	struct bstats st;

	for (;;) {
		st = get_stats(g->c);
		if (st.clients == clients || h_now_ms() > end)
			break;
		h_sleep_ms(5);
	}
	if (st.clients != clients) {
		char *js = h_stats(g->c);

		fprintf(stderr, "stats: %s\n", js ? js : "(none)");
		free(js);
		h_dump_log(g->h);
		fail_msg("the broker still has %llu clients, %llu expected",
			 (unsigned long long)st.clients, (unsigned long long)clients);
	}
	return st;
}

static void test_kill_storm(void **state)
{
	struct harness *h = *state;
	struct storm_shared *sh = h_shared(sizeof(*sh));
	struct kill_ctx pubs[SURV_PUBS], subs[SURV_SUBS];
	pid_t pub_pid[SURV_PUBS], sub_pid[SURV_SUBS];
	long target = env_long("SHN_TEST_KILLS", under_valgrind() ? 40 : 300);
	int max_ms = under_valgrind() ? 60000 : 18000;
	const int alive_max = 6;
	struct live live[6];
	int nlive = 0, warmup = under_valgrind() ? 5 : 20;
	long kills = 0, exited = 0, mid_notify = 0;
	unsigned serial = 0;
	uint64_t s = seed ^ 0x4b111;
	struct good g;

	good_init(&g, h, "killstorm");
	good_roundtrip(&g);
	for (int i = 0; i < SURV_SUBS; i++) {
		subs[i] = (struct kill_ctx){ .h = h, .sh = sh, .idx = i, .seed = seed + (uint64_t)i };
		sub_pid[i] = h_fork(surv_sub, &subs[i]);
	}
	/* the subscribers subscribe before anything is published */
	int64_t ready_by = h_now_ms() + H_TIMEOUT_MS;
	while (atomic_load(&sh->subs_ready) < SURV_SUBS && h_now_ms() < ready_by)
		h_sleep_ms(2);
	assert_int_equal(atomic_load(&sh->subs_ready), SURV_SUBS);
	for (int i = 0; i < SURV_PUBS; i++) {
		pubs[i] = (struct kill_ctx){ .h = h, .sh = sh, .idx = i, .seed = seed * 3 + (uint64_t)i };
		pub_pid[i] = h_fork(surv_pub, &pubs[i]);
	}

	struct bstats base = { 0 }, after;
	struct mem base_mem = { 0 }, after_mem;
	int base_fds = -1, after_fds;
	int64_t start = h_now_ms(), storm_start = 0;

	while (kills < target + warmup && h_now_ms() - start < max_ms) {
		/* spawn up to alive_max victims, each killed 0..40 ms after birth */
		while (nlive < alive_max) {
			uint64_t vs = rnd(&s);
			unsigned me = serial++;
			atomic_store(&sh->in_notify[me % 4096], 0);
			fflush(NULL);
			pid_t pid = fork();
			assert_true(pid >= 0);
			if (pid == 0) {
				prctl(PR_SET_PDEATHSIG, SIGKILL);
				alarm(30);
				victim(h, sh, vs, me);
				_exit(0);
			}
			live[nlive++] = (struct live){ pid, h_now_ms() + (int64_t)(rnd(&s) % 41), me };
		}
		for (int i = 0; i < nlive; i++) {
			int st;
			pid_t r = waitpid(live[i].pid, &st, WNOHANG);
			if (r == live[i].pid) {
				/* it ended by itself: none may fail */
				if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
					fail_msg("victim %d ended with status 0x%x before its kill",
						 (int)live[i].pid, st);
				exited++;
				live[i--] = live[--nlive];
				continue;
			}
			if (h_now_ms() >= live[i].kill_at) {
				mid_notify += atomic_load(&sh->in_notify[live[i].serial % 4096]);
				kill(live[i].pid, SIGKILL);
				waitpid(live[i].pid, &st, 0);
				kills++;
				live[i--] = live[--nlive];
			}
		}
		if (kills >= warmup && base_fds < 0) {
			/* the baseline: after a warm-up that grew the broker's tables,
			 * with no victim connected */
			kills += kill_all(live, &nlive);
			base = settle(&g, 1 + SURV_PUBS + SURV_SUBS);
			base_fds = count_fds_settled(h->broker);
			base_mem = mem_of(h->broker);
			storm_start = h_now_ms();
			kills = warmup;   /* count the storm's own kills from here */
			mid_notify = 0;
		}
		good_roundtrip(&g);
		h_sleep_ms(1);
	}
	kills += kill_all(live, &nlive);
	int storm_ms = (int)(h_now_ms() - storm_start);
	long storm_kills = kills - warmup;

	/* the same clients as at the baseline: the good one and the survivors */
	after = settle(&g, 1 + SURV_PUBS + SURV_SUBS);
	after_fds = count_fds_settled(h->broker);
	after_mem = mem_of(h->broker);

	/* the survivors finish: everything accounted for */
	atomic_store(&sh->stop, 1);
	for (int i = 0; i < SURV_PUBS; i++)
		h_wait_ok(pub_pid[i], H_CHILD_TIMEOUT_MS);
	for (int i = 0; i < SURV_SUBS; i++)
		h_wait_ok(sub_pid[i], H_CHILD_TIMEOUT_MS);
	good_roundtrip(&g);
	struct bstats last = settle(&g, 1);
	uint64_t published = atomic_load(&sh->published[0]) + atomic_load(&sh->published[1]);

	printf("hostile: kill storm: %ld clients killed with SIGKILL in %d ms (after %d warm-up "
	       "kills; %ld ended by themselves), %ld of them inside shn_notify (mid-batch or "
	       "waiting for a SYNC batch); victims' roles: flood %llu, slow subscriber "
	       "%llu, full blocking port %llu, SYNC publisher %llu, raw "
	       "handshake/port opener %llu; victims got %llu batches accepted\n",
	       storm_kills, storm_ms, warmup, exited, mid_notify,
	       (unsigned long long)sh->roles[R_FLOOD],
	       (unsigned long long)sh->roles[R_SUB], (unsigned long long)sh->roles[R_BLOCKER],
	       (unsigned long long)sh->roles[R_SYNC], (unsigned long long)sh->roles[R_RAW],
	       (unsigned long long)sh->victim_batches);
	printf("hostile: kill storm: survivors published %llu notifications; subscriber 0 "
	       "received %llu + was told of %llu lost (%llu overflow reports), subscriber 1 "
	       "received %llu + %llu lost (%llu reports)\n", (unsigned long long)published,
	       (unsigned long long)sh->received[0], (unsigned long long)sh->lost[0],
	       (unsigned long long)sh->overflows[0], (unsigned long long)sh->received[1],
	       (unsigned long long)sh->lost[1], (unsigned long long)sh->overflows[1]);
	printf("hostile: kill storm: broker before/after: fds %d/%d, memfd mappings %d/%d, "
	       "VmRSS %ld/%ld KiB (RssAnon %ld/%ld, RssShmem %ld/%ld), clients %llu/%llu, "
	       "ports %llu/%llu, subscriptions %llu/%llu; protocol_errors +%llu, ring_errors "
	       "+%llu, disconnects +%llu\n", base_fds, after_fds, base_mem.memfd_maps,
	       after_mem.memfd_maps, base_mem.rss, after_mem.rss, base_mem.anon, after_mem.anon,
	       base_mem.shmem, after_mem.shmem, (unsigned long long)base.clients,
	       (unsigned long long)after.clients, (unsigned long long)base.ports,
	       (unsigned long long)after.ports, (unsigned long long)base.subscriptions,
	       (unsigned long long)after.subscriptions,
	       (unsigned long long)(last.protocol_errors - base.protocol_errors),
	       (unsigned long long)(last.ring_errors - base.ring_errors),
	       (unsigned long long)(last.disconnects - base.disconnects));

	assert_true(base_fds > 0);
	assert_true(storm_kills >= (target < 100 ? target : 100));
	for (int i = 0; i < SURV_SUBS; i++)
		assert_int_equal(sh->received[i] + sh->lost[i], published);
	assert_true(published > 0);
	/* back to the baseline */
	assert_int_equal(after_fds, base_fds);
	assert_int_equal(after_mem.memfd_maps, base_mem.memfd_maps);
	assert_int_equal(after.ports, base.ports);
	assert_int_equal(after.subscriptions, base.subscriptions);
	/* private memory: the victims' structures are freed (allocator slack
	 * allowed: freed memory the allocator keeps, scratch buffers grown to
	 * the largest batch seen; it does not grow with the number of kills);
	 * shared memory: their rings are unmapped, the survivors' rings may
	 * have been touched further meanwhile (at most theirs) */
	if (!instrumented(h->broker)) {
		if (after_mem.anon > base_mem.anon + 2048)
			fail_msg("broker RssAnon %ld KiB after the storm, %ld KiB at the baseline",
				 after_mem.anon, base_mem.anon);
		if (after_mem.shmem > base_mem.shmem + (SURV_PUBS + SURV_SUBS + 1) * 1024 + 256)
			fail_msg("broker RssShmem %ld KiB after the storm, %ld KiB at the baseline",
				 after_mem.shmem, base_mem.shmem);
	}
	/* nobody misbehaved: dying is not an error */
	assert_int_equal(last.protocol_errors, base.protocol_errors);
	assert_int_equal(last.ring_errors, base.ring_errors);
	assert_int_equal(last.disconnects, base.disconnects);
	assert_int_equal(last.ports, 1);
	assert_int_equal(last.subscriptions, 1);
	good_roundtrip(&g);
	h_disconnect(g.c);
}

int main(int argc, char **argv)
{
	h_parse_args(argc, argv);
	seed = (uint64_t)env_long("SHN_TEST_SEED", (long)seed);
	printf("hostile: seed %llu (SHN_TEST_SEED)\n", (unsigned long long)seed);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_garbage_storm, h_setup, h_teardown),
		cmocka_unit_test_setup_teardown(test_unread_and_fds, h_setup, h_teardown),
		cmocka_unit_test_setup_teardown(test_scribble, h_setup, h_teardown),
		cmocka_unit_test_setup_teardown(test_truncate, h_setup, h_teardown),
		cmocka_unit_test_setup_teardown(test_kill_storm, h_setup, h_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
