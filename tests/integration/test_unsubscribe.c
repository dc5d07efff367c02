/* SPDX-License-Identifier: MIT */
/*
 * test_unsubscribe.c - ending a filter (docs/design.md, rule 8;
 * SHN_EV_HANDLE_CLOSE), an unsubscribe the broker refuses (the client's
 * state follows the broker's answer), and shn_port_unblock() (rule 1: an
 * outstanding get returns -ECANCELED).
 */
#define _GNU_SOURCE
#include "harness.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <time.h>

#include "shm/proto.h"

#define S(str) (str), (sizeof(str) - 1)

static shn_notification note(const void *key, size_t klen, uint32_t ev, const void *data,
			     size_t dlen)
{
	shn_notification n;

	memset(&n, 0, sizeof(n));
	n.key = key;
	n.key_len = (uint16_t)klen;
	n.event = ev;
	n.data = data;
	n.data_len = (uint32_t)dlen;
	return n;
}

static void check_user(const shn_notification *n, const char *key, const char *data,
		       shn_conn conn, uint64_t seq)
{
	assert_int_equal(n->event, 1);
	assert_int_equal(n->key_len, strlen(key));
	assert_memory_equal(n->key, key, strlen(key));
	assert_int_equal(n->data_len, strlen(data));
	assert_memory_equal(n->data, data, strlen(data));
	assert_int_equal(n->conn, conn);
	assert_int_equal(n->seq, seq);
}

/* A system event: only event, conn (and batch position) set. */
static void check_handle_close(const shn_notification *n, shn_conn conn)
{
	assert_int_equal(n->event, SHN_EV_HANDLE_CLOSE);
	assert_int_equal(n->conn, conn);
	assert_int_equal(n->seq, 0);
	assert_int_equal(n->key_len, 0);
	assert_null(n->key);
	assert_int_equal(n->data_len, 0);
	assert_null(n->data);
	assert_int_equal(n->sender_pid, 0);
	assert_int_equal(n->sender_uid, 0);
	assert_true(n->batch_index < n->batch_count);
}

/* ---- 4: unsubscribe ---------------------------------------------------- */

struct pub_ctx {
	const char *sock;
	struct h_chan go;
};

static int child_pub(void *arg)
{
	struct pub_ctx *x = arg;
	shn_client *c = NULL;
	uint8_t b;

	CHILD_CHECK_EQ(shn_connect(x->sock, &c), 0);
	shn_notification b1[] = { note(S("u"), 1, S("u1")), note(S("u"), 1, S("u2")) };
	CHILD_CHECK_EQ(shn_notify(c, b1, 2, 0), 0);
	CHILD_CHECK(h_recv(&x->go, &b, H_TIMEOUT_MS));
	shn_notification b2[] = { note(S("u"), 1, S("u3")), note(S("v"), 1, S("v1")) };
	CHILD_CHECK_EQ(shn_notify(c, b2, 2, 0), 0);
	shn_disconnect(c);
	return 0;
}

static void test_unsubscribe(void **state)
{
	struct harness *h = *state;
	struct pub_ctx x = { .sock = h->sock };
	shn_notification out[16];
	shn_conn cu, cv = 0, cw;

	h_chan_init(&x.go);
	shn_client *c = h_connect(h);
	shn_port *p = h_port_sub(c, 0, S("u"), SHN_EV_ALL, &cu);
	assert_int_equal(shn_subscribe(p, S("v"), SHN_EV_ALL, 0, &cv), 0);
	shn_port *w = h_port_sub(c, 0, S("u"), SHN_EV_ALL, &cw);   /* witness */
	pid_t pid = h_fork(child_pub, &x);

	/* batch 1 routed (the witness has it), not yet read from p */
	assert_int_equal(h_get(w, out, 16), 2);
	assert_int_equal(shn_unsubscribe(c, cu), 0);
	/* a second unsubscribe of the same conn, and unknown conns */
	assert_int_equal(shn_unsubscribe(c, cu), -ENOENT);
	assert_int_equal(shn_unsubscribe(c, cu + 1000), -ENOENT);
	/* another client cannot end our subscription */
	shn_client *other = h_connect(h);
	assert_int_equal(shn_unsubscribe(other, cv), -ENOENT);
	h_disconnect(other);

	/* batch 2 is published after the unsubscribe returned */
	assert_true(h_send(&x.go, 1));
	assert_int_equal(h_get(w, out, 16), 1);
	check_user(&out[0], "u", "u3", cw, 3);
	h_wait_ok(pid, H_CHILD_TIMEOUT_MS);

	/* p: batch 1 (queued before the unsubscribe), then HANDLE_CLOSE for
	 * cu after it, and v1 from batch 2; never u3 */
	int n = h_get(p, out, 16);
	assert_int_equal(n, 2);
	check_user(&out[0], "u", "u1", cu, 1);
	check_user(&out[1], "u", "u2", cu, 2);
	assert_int_equal(out[0].batch_count, 2);
	bool closed = false, got_v1 = false;
	while (!(closed && got_v1)) {
		n = h_get(p, out, 16);
		for (int i = 0; i < n; i++) {
			if (out[i].event == SHN_EV_HANDLE_CLOSE) {
				assert_false(closed);
				check_handle_close(&out[i], cu);
				closed = true;
			} else {
				assert_false(got_v1);
				check_user(&out[i], "v", "v1", cv, 3);
				assert_int_equal(out[i].batch_count, 1); /* u3 not in it */
				got_v1 = true;
			}
		}
	}
	assert_int_equal(shn_port_get(p, out, 16, 0), -ETIMEDOUT);

	/* the remaining subscription ends the same way */
	assert_int_equal(shn_unsubscribe(c, cv), 0);
	assert_int_equal(h_get(p, out, 16), 1);
	check_handle_close(&out[0], cv);
	assert_int_equal(shn_port_get(p, out, 16, 0), -ETIMEDOUT);
	assert_int_equal(shn_unsubscribe(c, cv), -ENOENT);
	h_chan_close(&x.go);
	h_disconnect(c);
}

/* An unsubscribe right after a flood: HANDLE_CLOSE comes after the last
 * notification of the subscription, however many were queued. */
static void test_handle_close_last(void **state)
{
	struct harness *h = *state;
	shn_notification out[64];
	shn_conn conn, wconn;

	shn_client *pubc = h_connect(h);
	shn_client *c = h_connect(h);
	shn_port *p = h_port_sub(c, 4u << 20, S("flood"), SHN_EV_ALL, &conn);
	shn_port *w = h_port_sub(c, 4u << 20, S("flood"), SHN_EV_ALL, &wconn);
	const int N = 2000;
	for (int i = 0; i < N; i++) {
		shn_notification one = note(S("flood"), 1, &i, sizeof(i));
		assert_int_equal(shn_notify(pubc, &one, 1, 0), 0);
	}
	/* wait until the witness saw the last one: all N are routed */
	for (int got = 0; got < N;) {
		int n = h_get(w, out, 64);
		got += n;
	}
	assert_int_equal(shn_unsubscribe(c, conn), 0);
	for (int i = 0; i < N; i++) {
		assert_int_equal(h_get(p, out, 1), 1);
		assert_int_equal(out[0].event, 1);
		assert_int_equal(out[0].seq, (uint64_t)i + 1);
		assert_memory_equal(out[0].data, &i, sizeof(i));
	}
	assert_int_equal(h_get(p, out, 64), 1);
	check_handle_close(&out[0], conn);
	assert_int_equal(shn_port_get(p, out, 64, 0), -ETIMEDOUT);
	h_disconnect(pubc);
	h_disconnect(c);
}

/* ---- HANDLE_CLOSE after the last notification, across processes ------- */

#define STREAM_BATCHES 20000

struct stream {
	_Atomic int go;
	_Atomic int started;   /* batches whose shn_notify has begun */
	_Atomic int done;
};

struct stream_ctx {
	const char *sock;
	struct stream *st;
};

/* Another process publishes STREAM_BATCHES batches [u:i, v:i], as fast as
 * it can, while the test unsubscribes "u" in the middle of the stream. */
static int child_stream(void *arg)
{
	struct stream_ctx *x = arg;
	shn_client *c = NULL;

	CHILD_CHECK_EQ(shn_connect(x->sock, &c), 0);
	while (!atomic_load(&x->st->go))
		h_sleep_ms(1);
	for (int i = 0; i < STREAM_BATCHES; i++) {
		shn_notification b[2] = { note(S("u"), 1, &i, sizeof(i)),
					  note(S("v"), 1, &i, sizeof(i)) };
		atomic_store(&x->st->started, i + 1);
		CHILD_CHECK_EQ(shn_notify(c, b, 2, 0), 0);
	}
	atomic_store(&x->st->done, 1);
	shn_disconnect(c);
	return 0;
}

static void test_handle_close_mid_stream(void **state)
{
	struct harness *h = *state;
	struct stream *st = h_shared(sizeof(*st));
	struct stream_ctx x = { .sock = h->sock, .st = st };
	shn_notification out[64];
	shn_conn cu, cv = 0;
	int next_u = 0, next_v = 0, started_at_unsub = -1, closes = 0;

	pid_t pid = h_fork(child_stream, &x);
	shn_client *c = h_connect(h);
	/* room for the whole stream: nothing is dropped */
	shn_port *p = h_port_sub(c, 4u << 20, S("u"), SHN_EV_ALL, &cu);
	assert_int_equal(shn_subscribe(p, S("v"), SHN_EV_ALL, 0, &cv), 0);
	atomic_store(&st->go, 1);

	int64_t end = h_now_ms() + H_CHILD_TIMEOUT_MS;
	while (next_v < STREAM_BATCHES || closes == 0) {
		if (h_now_ms() > end)
			fail_msg("stream incomplete: u %d, v %d, closes %d", next_u, next_v, closes);
		int n = h_get(p, out, 64);
		for (int i = 0; i < n; i++) {
			const shn_notification *o = &out[i];
			if (o->event == SHN_EV_HANDLE_CLOSE) {
				check_handle_close(o, cu);
				assert_true(started_at_unsub >= 0);   /* only after we asked */
				closes++;
				continue;
			}
			int v;
			assert_int_equal(o->data_len, sizeof(v));
			memcpy(&v, o->data, sizeof(v));
			assert_int_equal(o->key_len, 1);
			if (((const char *)o->key)[0] == 'u') {
				/* nothing of the subscription after its close */
				if (closes != 0)
					fail_msg("u:%d after the HANDLE_CLOSE of its subscription", v);
				assert_int_equal(o->conn, cu);
				assert_int_equal(v, next_u);   /* gapless until the end */
				next_u++;
			} else {
				assert_int_equal(o->conn, cv);
				assert_int_equal(v, next_v);
				next_v++;
			}
		}
		if (started_at_unsub < 0 && next_v >= STREAM_BATCHES / 4) {
			assert_int_equal(shn_unsubscribe(c, cu), 0);
			started_at_unsub = atomic_load(&st->started);
		}
	}
	h_wait_ok(pid, H_CHILD_TIMEOUT_MS);
	assert_int_equal(closes, 1);
	/* the subscription's notifications were gapless up to its close, and
	 * none of a batch begun after the unsubscribe returned came (rule 8) */
	assert_true(next_u >= STREAM_BATCHES / 4);
	assert_true(next_u <= started_at_unsub);
	assert_int_equal(shn_port_get(p, out, 64, 0), -ETIMEDOUT);
	fprintf(stderr, "unsubscribed at v %d: %d u delivered, %d batches begun by then\n",
		STREAM_BATCHES / 4, next_u, started_at_unsub);
	h_disconnect(c);
}

/* ---- connection numbers: non-zero, paired, never reused (MAPI's
 * "número de conexión distinto de cero ... válido hasta ... Unadvise";
 * "las llamadas a Subscribe y Unsubscribe deben emparejarse") ----------- */

static unsigned nop_sink(void *ctx, const shn_notification *b, size_t n)
{
	(void)ctx;
	(void)b;
	(void)n;
	return SHN_CALLBACK_CONTINUE;
}

static void test_conn_pairs_never_reused(void **state)
{
	struct harness *h = *state;
	enum { CYCLES = 500 };
	static shn_conn seen[CYCLES];
	shn_notification out[4];
	shn_port *p = NULL, *w = NULL;
	shn_conn conn = 0, wc;
	char keybuf[8];

	shn_client *c = h_connect(h);
	shn_client *pubc = h_connect(h);
	assert_int_equal(shn_port_open(c, NULL, &p), 0);
	/* the NOTIFY_SYNC of MAPI's Subscribe is a shn_notify flag here:
	 * subscription flags are SHN_SUBSCRIBE_PREFIX and _MONITOR only (1u,
	 * the value SHN_NOTIFY_SYNC also has, is SHN_SUBSCRIBE_PREFIX) */
	assert_int_equal(shn_subscribe(p, S("k"), SHN_EV_ALL, SHN_NOTIFY_NONBLOCK, &conn), -EINVAL);
	assert_int_equal(shn_advise(p, S("k"), SHN_EV_ALL, 2, nop_sink, NULL, &conn), -EINVAL);
	assert_int_equal(shn_advise(p, S("k"), SHN_EV_ALL, 0x200, nop_sink, NULL, &conn), -EINVAL);

	for (int i = 0; i < CYCLES; i++) {
		conn = 0;
		assert_int_equal(shn_subscribe(p, S("cyc"), SHN_EV_ALL, 0, &conn), 0);
		assert_true(conn != 0);
		for (int k = 0; k < i; k++)
			if (seen[k] == conn)
				fail_msg("connection number %llu given twice (cycles %d and %d)",
					 (unsigned long long)conn, k, i);
		seen[i] = conn;
		assert_int_equal(shn_unsubscribe(c, conn), 0);
		assert_int_equal(h_get(p, out, 4), 1);
		check_handle_close(&out[0], conn);
		/* each subscribe pairs with exactly one unsubscribe */
		assert_int_equal(shn_unsubscribe(c, conn), -ENOENT);
	}
	for (int i = 0; i < CYCLES; i++)
		assert_int_equal(shn_unsubscribe(c, seen[i]), -ENOENT);
	assert_int_equal(shn_port_get(p, out, 4, 0), -ETIMEDOUT);

	/* once Subscribe returned, the caller's key buffer is no longer needed
	 * ("ya no tendrá que conservar la copia"): the library copied it */
	memcpy(keybuf, "copied", 7);
	assert_int_equal(shn_subscribe(p, keybuf, 6, SHN_EV_ALL, 0, &conn), 0);
	memcpy(keybuf, "XXXXXX", 7);
	w = h_port_sub(c, 0, NULL, 0, SHN_EV_ALL, &wc);   /* witness: both routed */
	shn_notification b[2] = { note(S("XXXXXX"), 1, S("no")), note(S("copied"), 1, S("yes")) };
	assert_int_equal(shn_notify(pubc, b, 2, 0), 0);
	assert_int_equal(h_get(w, out, 4), 2);
	assert_int_equal(h_get(p, out, 4), 1);
	check_user(&out[0], "copied", "yes", conn, out[0].seq);
	assert_int_equal(shn_port_get(p, out, 4, 0), -ETIMEDOUT);
	h_disconnect(pubc);
	h_disconnect(c);
}

/* ---- 5: shn_port_unblock ----------------------------------------------- */

struct getter {
	shn_port *p;
	_Atomic int tid;
	_Atomic int result;
	_Atomic bool done;
	int timeout_ms;
};

static void *getter_main(void *arg)
{
	struct getter *g = arg;
	shn_notification out[4];

	atomic_store(&g->tid, (int)syscall(SYS_gettid));
	atomic_store(&g->result, shn_port_get(g->p, out, 4, g->timeout_ms));
	atomic_store(&g->done, true);
	return NULL;
}

/* The thread is blocked (sleeping in the kernel), per /proc. */
static bool thread_sleeps(void *arg)
{
	struct getter *g = arg;
	char path[64], buf[512];
	int tid = atomic_load(&g->tid);

	if (tid == 0)
		return false;
	snprintf(path, sizeof(path), "/proc/self/task/%d/stat", tid);
	FILE *f = fopen(path, "r");
	if (f == NULL)
		return false;
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	char *rp = strrchr(buf, ')');
	return rp != NULL && rp[1] == ' ' && rp[2] == 'S';
}

static bool getter_done(void *arg)
{
	return atomic_load(&((struct getter *)arg)->done);
}

static int join_bounded(pthread_t t, struct getter *g)
{
	if (!h_poll_until(getter_done, g, H_TIMEOUT_MS))
		fail_msg("shn_port_get did not return within %d ms of shn_port_unblock",
			 H_TIMEOUT_MS);
	pthread_join(t, NULL);
	return atomic_load(&g->result);
}

static void test_unblock(void **state)
{
	struct harness *h = *state;
	shn_notification out[4];
	shn_conn conn;
	pthread_t t;

	shn_client *c = h_connect(h);
	shn_port *p = h_port_sub(c, 0, S("ub"), SHN_EV_ALL, &conn);

	/* a get blocked with no time limit returns -ECANCELED */
	for (int round = 0; round < 3; round++) {
		struct getter g = { .p = p, .timeout_ms = -1 };
		assert_int_equal(pthread_create(&t, NULL, getter_main, &g), 0);
		if (!h_poll_until(thread_sleeps, &g, H_TIMEOUT_MS))
			fail_msg("the getter thread never blocked");
		assert_false(atomic_load(&g.done));
		assert_int_equal(shn_port_unblock(p), 0);
		assert_int_equal(join_bounded(t, &g), -ECANCELED);
		/* the unblock is used up: the port behaves normally again */
		assert_int_equal(shn_port_get(p, out, 4, 0), -ETIMEDOUT);
	}

	/* a get with a long (finite) timeout too */
	struct getter g2 = { .p = p, .timeout_ms = 600000 };
	assert_int_equal(pthread_create(&t, NULL, getter_main, &g2), 0);
	if (!h_poll_until(thread_sleeps, &g2, H_TIMEOUT_MS))
		fail_msg("the getter thread never blocked");
	assert_int_equal(shn_port_unblock(p), 0);
	assert_int_equal(join_bounded(t, &g2), -ECANCELED);

	/* unblock with no get outstanding: the next get returns -ECANCELED */
	assert_int_equal(shn_port_unblock(p), 0);
	struct getter g3 = { .p = p, .timeout_ms = -1 };
	assert_int_equal(pthread_create(&t, NULL, getter_main, &g3), 0);
	assert_int_equal(join_bounded(t, &g3), -ECANCELED);
	assert_int_equal(shn_port_get(p, out, 4, 0), -ETIMEDOUT);

	/* and the port still delivers */
	shn_notification one = note(S("ub"), 1, S("after"));
	assert_int_equal(shn_notify(c, &one, 1, 0), 0);
	assert_int_equal(h_get(p, out, 4), 1);
	check_user(&out[0], "ub", "after", conn, 1);
	assert_int_equal(out[0].sender_pid, getpid());
	/* the cluster API's order: unblock any outstanding get (done above), then
	 * release the handle; its subscription ends with it */
	assert_int_equal(shn_port_close(p), 0);
	h_disconnect(c);
}

/* ---- an unsubscribe the broker refuses ---------------------------------- */

/* A relay between one client and the real broker: it passes every message
 * and descriptor both ways, except the UNSUBSCRIBE requests it is told to
 * refuse, which it answers itself with `status` and never forwards -- so
 * the broker keeps the filter, exactly as if it had answered that error. */
struct relay {
	char path[300];          /* where the client connects */
	const char *broker;      /* the broker's socket */
	int listen_fd;
	_Atomic int refuse;      /* UNSUBSCRIBE requests still to refuse */
	int status;              /* their answer */
	_Atomic int refused;     /* answered by the relay */
	_Atomic int forwarded;   /* UNSUBSCRIBE requests the broker got */
	pthread_t thread;
};

/* Pass one message from `from` to `to`.  false: a side closed. */
static bool relay_pass(struct relay *r, int from, int to, bool from_client)
{
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(sizeof(int) * SHN_MSG_MAX_FDS)];
	} cin, cout;
	uint8_t msg[SHN_MSG_MAX];
	struct iovec iov = { .iov_base = msg, .iov_len = sizeof(msg) };
	struct msghdr mh = {
		.msg_iov = &iov, .msg_iovlen = 1,
		.msg_control = cin.buf, .msg_controllen = sizeof(cin.buf),
	};
	int fds[SHN_MSG_MAX_FDS], nfds = 0;
	ssize_t n = recvmsg(from, &mh, MSG_CMSG_CLOEXEC);
	bool ok = true;

	if (n <= 0)
		return false;
	for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm))
		if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS)
			for (size_t i = 0; i < (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int); i++)
				memcpy(&fds[nfds++], CMSG_DATA(cm) + i * sizeof(int), sizeof(int));
	struct shn_msg_hdr *hdr = (void *)msg;
	if (from_client && (size_t)n == sizeof(struct shn_msg_unsubscribe) &&
	    hdr->type == SHN_MSG_UNSUBSCRIBE) {
		if (atomic_load(&r->refuse) > 0) {
			struct shn_msg_reply rep = { .hdr = *hdr };

			/* counted before the answer: the client reads the
			 * counters once it has the answer */
			atomic_fetch_sub(&r->refuse, 1);
			atomic_fetch_add(&r->refused, 1);
			rep.hdr.status = r->status;
			return send(from, &rep, sizeof(rep), MSG_NOSIGNAL) == sizeof(rep);
		}
		atomic_fetch_add(&r->forwarded, 1);
	}
	iov.iov_len = (size_t)n;
	mh.msg_control = NULL;
	mh.msg_controllen = 0;
	if (nfds > 0) {
		/* CMSG_SPACE pads past CMSG_LEN: send no uninitialised byte */
		memset(&cout, 0, sizeof(cout));
		mh.msg_control = cout.buf;
		mh.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)nfds);
		struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)nfds);
		memcpy(CMSG_DATA(cm), fds, sizeof(int) * (size_t)nfds);
	}
	ok = sendmsg(to, &mh, MSG_NOSIGNAL) == n;
	for (int i = 0; i < nfds; i++)
		close(fds[i]);
	return ok;
}

static void *relay_main(void *arg)
{
	struct relay *r = arg;
	struct pollfd lp = { .fd = r->listen_fd, .events = POLLIN };
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int cl, br;

	if (poll(&lp, 1, H_TIMEOUT_MS) != 1)
		return NULL;
	cl = accept4(r->listen_fd, NULL, NULL, SOCK_CLOEXEC);
	br = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	strcpy(sa.sun_path, r->broker);
	if (cl >= 0 && br >= 0 && connect(br, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
		for (;;) {
			struct pollfd pfd[2] = { { .fd = cl, .events = POLLIN },
						 { .fd = br, .events = POLLIN } };
			if (poll(pfd, 2, H_CHILD_TIMEOUT_MS) <= 0)
				break;
			if (pfd[0].revents && !relay_pass(r, cl, br, true))
				break;
			if (pfd[1].revents && !relay_pass(r, br, cl, false))
				break;
		}
	}
	if (cl >= 0)
		close(cl);
	if (br >= 0)
		close(br);
	return NULL;
}

static void relay_start(struct relay *r, const struct harness *h)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };

	snprintf(r->path, sizeof(r->path), "%s/relay.sock", h->dir);
	r->broker = h->sock;
	r->listen_fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	assert_true(r->listen_fd >= 0);
	assert_true(strlen(r->path) < sizeof(sa.sun_path));
	strcpy(sa.sun_path, r->path);
	assert_int_equal(bind(r->listen_fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(r->listen_fd, 1), 0);
	assert_int_equal(pthread_create(&r->thread, NULL, relay_main, r), 0);
}

static void relay_stop(struct relay *r)
{
	pthread_join(r->thread, NULL);   /* ends when the client disconnected */
	close(r->listen_fd);
	unlink(r->path);
}

static int refused_sink_calls;
static uint32_t refused_sink_last_event;

static unsigned refused_sink(void *ctx, const shn_notification *b, size_t n)
{
	(void)ctx;
	refused_sink_calls++;
	refused_sink_last_event = b[n - 1].event;
	return SHN_CALLBACK_CONTINUE;
}

/* The broker answers an unsubscribe with an error other than -ENOTCONN: it
 * kept the filter, so the client keeps it too -- its notifications still
 * arrive (to a pull port and to an advise sink), and a later unsubscribe
 * asks the broker again and ends it.  (The library used to forget the
 * filter before the broker answered: the second unsubscribe said -ENOENT
 * and the filter could never be removed.) */
static void test_unsubscribe_refused(void **state)
{
	struct harness *h = *state;
	struct relay r = { .status = -EIO };
	shn_notification out[8];
	shn_client *c = NULL;
	shn_conn cp, cs, cw;
	shn_port *p, *q = NULL;

	relay_start(&r, h);
	assert_int_equal(shn_connect(r.path, &c), 0);
	p = h_port_sub(c, 0, S("k"), SHN_EV_ALL, &cp);
	assert_int_equal(shn_port_open(c, NULL, &q), 0);
	assert_int_equal(shn_advise(q, S("k"), SHN_EV_ALL, 0, refused_sink, NULL, &cs), 0);
	shn_client *direct = h_connect(h);
	shn_port *w = h_port_sub(direct, 0, S("k"), SHN_EV_ALL, &cw);   /* witness */

	atomic_store(&r.refuse, 2);
	assert_int_equal(shn_unsubscribe(c, cp), -EIO);
	assert_int_equal(shn_unsubscribe(c, cs), -EIO);
	assert_int_equal(atomic_load(&r.refused), 2);
	assert_int_equal(atomic_load(&r.forwarded), 0);

	/* both filters are still the broker's: their notifications arrive */
	shn_notification k1 = note(S("k"), 1, S("k1"));
	assert_int_equal(shn_notify(direct, &k1, 1, 0), 0);
	assert_int_equal(h_get(w, out, 8), 1);
	assert_int_equal(h_get(p, out, 8), 1);
	check_user(&out[0], "k", "k1", cp, 1);
	refused_sink_calls = 0;
	assert_int_equal(shn_port_dispatch(q, H_TIMEOUT_MS), 1);
	assert_int_equal(refused_sink_calls, 1);   /* not skipped as if it were closing */

	/* and the client can still end them: the broker is asked again */
	assert_int_equal(shn_unsubscribe(c, cp), 0);
	assert_int_equal(shn_unsubscribe(c, cs), 0);
	assert_int_equal(atomic_load(&r.forwarded), 2);
	assert_int_equal(h_get(p, out, 8), 1);
	check_handle_close(&out[0], cp);
	refused_sink_calls = 0;
	assert_int_equal(shn_port_dispatch(q, H_TIMEOUT_MS), 1);
	assert_int_equal(refused_sink_calls, 1);
	assert_int_equal(refused_sink_last_event, SHN_EV_HANDLE_CLOSE);
	assert_int_equal(shn_unsubscribe(c, cp), -ENOENT);
	assert_int_equal(shn_unsubscribe(c, cs), -ENOENT);
	assert_int_equal(atomic_load(&r.forwarded), 2);   /* answered here: it is gone */

	/* gone for good: a later "k" reaches the witness only */
	shn_notification k2 = note(S("k"), 1, S("k2"));
	assert_int_equal(shn_notify(direct, &k2, 1, 0), 0);
	assert_int_equal(h_get(w, out, 8), 1);
	check_user(&out[0], "k", "k2", cw, 2);
	assert_int_equal(shn_port_get(p, out, 8, 0), -ETIMEDOUT);
	refused_sink_calls = 0;
	assert_int_equal(shn_port_dispatch(q, 0), -ETIMEDOUT);
	assert_int_equal(refused_sink_calls, 0);
	shn_disconnect(c);
	relay_stop(&r);
	h_disconnect(direct);
}

int main(int argc, char **argv)
{
	h_parse_args(argc, argv);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_unsubscribe, h_setup, h_teardown),
		cmocka_unit_test_setup_teardown(test_handle_close_last, h_setup, h_teardown),
		cmocka_unit_test_setup_teardown(test_handle_close_mid_stream, h_setup, h_teardown),
		cmocka_unit_test_setup_teardown(test_conn_pairs_never_reused, h_setup, h_teardown),
		cmocka_unit_test_setup_teardown(test_unblock, h_setup, h_teardown),
		cmocka_unit_test_setup_teardown(test_unsubscribe_refused, h_setup, h_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
