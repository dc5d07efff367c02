/* SPDX-License-Identifier: MIT */
/*
 * test_reconnect.c - clients outlive a broker crash and learn of it
 * (docs/design.md, rule 10, and "Broker loss"): every port gets
 * SHN_EV_BROKER_STATE, publishing returns -ENOTCONN, and once a broker runs
 * again the library reconnects, restores every filter with the same
 * connection numbers, and each port gets SHN_EV_RECONNECT.  A prefix
 * filter comes back a prefix filter (test_prefix_restored).  shn_port_fd()
 * stays the same descriptor and wakes on the new broker's notes, asked for
 * before the loss or first after it (test_port_fd_across_restart).
 */
#define _GNU_SOURCE
#include "harness.h"
#include "harness_stats.h"

#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

static void roundtrip(shn_client *c, shn_port *p, shn_conn conn, const char *key)
{
	shn_notification out[4];
	shn_notification n = { .event = 1, .key = key, .key_len = (uint16_t)strlen(key),
			       .data = "rt", .data_len = 2 };

	assert_int_equal(shn_notify(c, &n, 1, 0), 0);
	assert_int_equal(h_get(p, out, 4), 1);
	assert_int_equal(out[0].event, 1);
	assert_int_equal(out[0].conn, conn);
	assert_memory_equal(out[0].data, "rt", 2);
}

/* Rule 10: the broker crashes; every port gets SHN_EV_BROKER_STATE,
 * publishing returns -ENOTCONN; once a broker runs again the library
 * reconnects, restores the filters with the same conns, and each port gets
 * SHN_EV_RECONNECT. */
static void expect_system(shn_port *p, uint32_t event, const char *what)
{
	shn_notification out[8];
	int n = shn_port_get(p, out, 8, H_TIMEOUT_MS);

	if (n < 1)
		fail_msg("%s: shn_port_get returned %d (%s) instead of the event", what, n,
			 shn_strerror(n));
	if (out[0].event != event)
		fail_msg("%s: got event 0x%x, expected 0x%x", what, out[0].event, event);
	assert_int_equal(out[0].seq, 0);
	assert_int_equal(out[0].key_len, 0);
	assert_int_equal(out[0].data_len, 0);
	assert_int_equal(out[0].sender_pid, 0);
}

static void test_broker_loss(void **state)
{
	struct harness *h = *state;
	shn_notification out[8];
	shn_conn c1, c2;

	shn_client *c = h_connect(h);
	shn_port *p1 = h_port_sub(c, 0, "loss", 4, SHN_EV_ALL, &c1);
	shn_port *p2 = h_port_sub(c, 0, NULL, 0, 0x2, &c2);
	roundtrip(c, p1, c1, "loss");
	assert_int_equal(shn_port_get(p2, out, 8, 0), -ETIMEDOUT);  /* mask 0x2: not event 1 */

	int st = h_kill_broker(h);                  /* a crash */
	assert_true(WIFSIGNALED(st));

	/* every port learns that its stream broke */
	expect_system(p1, SHN_EV_BROKER_STATE, "port 1 after the broker died");
	expect_system(p2, SHN_EV_BROKER_STATE, "port 2 after the broker died");
	/* the library has seen the socket close: publishing is refused */
	shn_notification lost = { .event = 3, .key = "loss", .key_len = 4, .data = "lost",
				  .data_len = 4 };
	assert_int_equal(shn_notify(c, &lost, 1, 0), -ENOTCONN);

	/* a broker runs again on the same socket: the library reconnects */
	h_launch(h, NULL);
	expect_system(p1, SHN_EV_RECONNECT, "port 1 after the broker came back");
	expect_system(p2, SHN_EV_RECONNECT, "port 2 after the broker came back");

	/* filters restored with the same connection numbers; the refused
	 * batch is never delivered (at most once) */
	shn_client *pub = h_connect(h);
	shn_notification again = { .event = 3, .key = "loss", .key_len = 4, .data = "again",
				   .data_len = 5 };
	assert_int_equal(shn_notify(pub, &again, 1, 0), 0);
	assert_int_equal(h_get(p1, out, 8), 1);
	assert_int_equal(out[0].conn, c1);
	assert_int_equal(out[0].data_len, 5);
	assert_memory_equal(out[0].data, "again", 5);
	assert_int_equal(h_get(p2, out, 8), 1);
	assert_int_equal(out[0].conn, c2);
	assert_memory_equal(out[0].data, "again", 5);
	/* and the reconnected client publishes again */
	roundtrip(c, p1, c1, "loss");
	assert_int_equal(shn_port_get(p2, out, 8, 0), -ETIMEDOUT);   /* event 1: not 0x2 */
	h_disconnect(pub);
	h_disconnect(c);
}

/* A prefix filter comes back a prefix filter, with its conn: it takes
 * keys under it, not the prefix alone, and not a shorter key. */
static void test_prefix_restored(void **state)
{
	struct harness *h = *state;
	shn_notification out[8];
	shn_conn cp, ce;
	shn_port *p;

	shn_client *c = h_connect(h);
	assert_int_equal(shn_port_open(c, NULL, &p), 0);
	assert_int_equal(shn_subscribe(p, "pre/", 4, SHN_EV_ALL, SHN_SUBSCRIBE_PREFIX, &cp), 0);
	assert_int_equal(shn_subscribe(p, "pre/x", 5, SHN_EV_ALL, 0, &ce), 0);   /* exact */
	roundtrip(c, p, cp, "pre/abc");
	roundtrip(c, p, cp, "pre/x");   /* both take it: the prefix is older */

	int st = h_kill_broker(h);
	assert_true(WIFSIGNALED(st));
	expect_system(p, SHN_EV_BROKER_STATE, "the port after the broker died");
	h_launch(h, NULL);
	expect_system(p, SHN_EV_RECONNECT, "the port after the broker came back");

	shn_client *pub = h_connect(h);
	const char *keys[] = { "pre", "pre/", "pre/abc", "pre/x", "pr", "pre/\0z" };
	for (int i = 0; i < 6; i++) {
		shn_notification n = { .event = 1, .key = keys[i], .key_len = (uint16_t)strlen(keys[i]),
				       .data = "p", .data_len = 1 };
		assert_int_equal(shn_notify(pub, &n, 1, 0), 0);
	}
	for (int i = 1; i < 6; i++) {
		if (i == 4)
			continue;   /* "pr": shorter than the prefix */
		assert_int_equal(h_get(p, out, 8), 1);
		assert_int_equal(out[0].key_len, strlen(keys[i]));
		assert_memory_equal(out[0].key, keys[i], strlen(keys[i]));
		assert_int_equal(out[0].conn, cp);
	}
	assert_int_equal(shn_port_get(p, out, 8, 200), -ETIMEDOUT);
	/* ended after the reconnect: nothing of it after its HANDLE_CLOSE */
	assert_int_equal(shn_unsubscribe(c, cp), 0);
	assert_int_equal(h_get(p, out, 8), 1);
	assert_int_equal(out[0].event, SHN_EV_HANDLE_CLOSE);
	assert_int_equal(out[0].conn, cp);
	roundtrip(pub, p, ce, "pre/x");
	shn_notification n = { .event = 1, .key = "pre/abc", .key_len = 7, .data = "p",
			       .data_len = 1 };
	assert_int_equal(shn_notify(pub, &n, 1, 0), 0);
	assert_int_equal(shn_port_get(p, out, 8, 200), -ETIMEDOUT);
	h_disconnect(pub);
	h_disconnect(c);
}

/* SIGTERM is a clean shutdown: the broker exits 0 and
 * removes its socket, and every client is told (SHN_EV_BROKER_STATE on
 * each port, -ENOTCONN on publish); a new broker on the same path is
 * found again (SHN_EV_RECONNECT).  (SIGKILL, which leaves a stale socket
 * file behind, is test_broker_loss above and test_broker's stale socket.) */
static void test_broker_sigterm(void **state)
{
	struct harness *h = *state;
	shn_conn c1, c2;
	struct stat st;
	int status;

	shn_client *c = h_connect(h);
	shn_port *p1 = h_port_sub(c, 0, "term", 4, SHN_EV_ALL, &c1);
	shn_port *p2 = h_port_sub(c, 0, NULL, 0, SHN_EV_ALL, &c2);
	roundtrip(c, p1, c1, "term");
	shn_notification out[8];
	assert_int_equal(h_get(p2, out, 8), 1);      /* the any-key port saw it too */

	assert_int_equal(kill(h->broker, SIGTERM), 0);
	status = h_wait(h->broker, H_TIMEOUT_MS);
	h->broker = -1;
	if (status == -1)
		fail_msg("shmnotifyd did not exit within %d ms of SIGTERM", H_TIMEOUT_MS);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	/* clean: its socket is gone, nothing stale left behind */
	assert_int_equal(stat(h->sock, &st), -1);
	assert_int_equal(errno, ENOENT);

	expect_system(p1, SHN_EV_BROKER_STATE, "port 1 after SIGTERM");
	expect_system(p2, SHN_EV_BROKER_STATE, "port 2 after SIGTERM");
	shn_notification n = { .event = 1, .key = "term", .key_len = 4 };
	assert_int_equal(shn_notify(c, &n, 1, 0), -ENOTCONN);

	h_launch(h, NULL);
	expect_system(p1, SHN_EV_RECONNECT, "port 1 after the restart");
	expect_system(p2, SHN_EV_RECONNECT, "port 2 after the restart");
	roundtrip(c, p1, c1, "term");
	assert_int_equal(h_get(p2, out, 8), 1);
	assert_int_equal(out[0].conn, c2);
	h_disconnect(c);
}

/* shn_port_fd() is the same descriptor across a restart, and becomes
 * readable on the new broker's notes: for a port whose descriptor was
 * asked for before the loss (the new eventfd replaced the old one in its
 * epoll) and for one asked for the first time after it (its epoll gets
 * the eventfd of the rings it reads now, not the closed one). */
static void test_port_fd_across_restart(void **state)
{
	struct harness *h = *state;
	shn_notification out[8];
	shn_conn c1, c2;

	shn_client *c = h_connect(h);
	shn_port *p1 = h_port_sub(c, 0, "fd", 2, SHN_EV_ALL, &c1);
	shn_port *p2 = h_port_sub(c, 0, "fd", 2, SHN_EV_ALL, &c2);
	int fd1 = shn_port_fd(p1);

	assert_true(fd1 >= 0);
	roundtrip(c, p1, c1, "fd");
	assert_int_equal(h_get(p2, out, 8), 1);

	int st = h_kill_broker(h);
	assert_true(WIFSIGNALED(st));
	assert_true(h_fd_readable(fd1, H_TIMEOUT_MS));   /* a broker loss wakes it */
	expect_system(p1, SHN_EV_BROKER_STATE, "port 1 after the broker died");
	expect_system(p2, SHN_EV_BROKER_STATE, "port 2 after the broker died");
	h_launch(h, NULL);
	expect_system(p1, SHN_EV_RECONNECT, "port 1 after the broker came back");
	expect_system(p2, SHN_EV_RECONNECT, "port 2 after the broker came back");

	int fd2 = shn_port_fd(p2);   /* first asked for now */

	assert_true(fd2 >= 0);
	assert_int_equal(shn_port_fd(p1), fd1);
	assert_int_equal(shn_port_get(p1, out, 8, 0), -ETIMEDOUT);   /* armed */
	assert_int_equal(shn_port_get(p2, out, 8, 0), -ETIMEDOUT);
	assert_false(h_fd_readable(fd1, 0));
	assert_false(h_fd_readable(fd2, 0));

	shn_client *pub = h_connect(h);
	shn_notification n = { .event = 1, .key = "fd", .key_len = 2, .data = "new",
			       .data_len = 3 };

	assert_int_equal(shn_notify(pub, &n, 1, 0), 0);
	if (!h_fd_readable(fd1, H_TIMEOUT_MS))
		fail_msg("port 1's descriptor (asked for before the restart) did not become "
			 "readable on a note of the new broker");
	if (!h_fd_readable(fd2, H_TIMEOUT_MS))
		fail_msg("port 2's descriptor (first asked for after the restart) did not "
			 "become readable on a note of the new broker");
	/* readable may mean the ring's offer (the library wakes the port to
	 * take it) before the broker routed the note: wait for the note */
	assert_int_equal(h_get(p1, out, 8), 1);
	assert_int_equal(out[0].conn, c1);
	assert_memory_equal(out[0].data, "new", 3);
	assert_int_equal(h_get(p2, out, 8), 1);
	assert_int_equal(out[0].conn, c2);
	assert_memory_equal(out[0].data, "new", 3);
	h_disconnect(pub);
	h_disconnect(c);
}

/* ---- restart, with publishers in other processes and sinks ------------- */

struct rshared {
	_Atomic int cmd1;           /* P1: 1 publish "before", 2 publish in the outage, 3 after */
	_Atomic int state1;         /* P1: the last command it completed */
	_Atomic int accepted_in_outage;  /* P1: publishes that returned 0 before -ENOTCONN */
	_Atomic int go2;            /* P2: connect and publish */
	_Atomic int state2;
};

struct rctx {
	const char *sock;
	struct rshared *sh;
};

static shn_notification rnote(const char *data)
{
	shn_notification n = { .event = 3, .key = "r", .key_len = 1, .data = data,
			       .data_len = (uint32_t)strlen(data) };
	return n;
}

static void child_wait(_Atomic int *v, int want)
{
	int64_t end = h_now_ms() + H_CHILD_TIMEOUT_MS;

	while (atomic_load(v) < want) {
		CHILD_CHECK(h_now_ms() < end);
		h_sleep_ms(1);
	}
}

/* P1: a publisher connected before the crash (it has no port). */
static int child_p1(void *arg)
{
	struct rctx *x = arg;
	shn_client *c = NULL;
	shn_notification n;

	CHILD_CHECK_EQ(shn_connect(x->sock, &c), 0);
	child_wait(&x->sh->cmd1, 1);
	n = rnote("before");
	CHILD_CHECK_EQ(shn_notify(c, &n, 1, 0), 0);
	atomic_store(&x->sh->state1, 1);

	/* the broker is dead: publishing fails once the library saw it */
	child_wait(&x->sh->cmd1, 2);
	int64_t end = h_now_ms() + H_TIMEOUT_MS;
	int r;
	n = rnote("outage");
	while ((r = shn_notify(c, &n, 1, 0)) == 0) {
		atomic_fetch_add(&x->sh->accepted_in_outage, 1);
		CHILD_CHECK(h_now_ms() < end);
		h_sleep_ms(1);
	}
	CHILD_CHECK_EQ(r, -ENOTCONN);
	/* and keeps failing while the broker is away */
	for (int i = 0; i < 10; i++)
		CHILD_CHECK_EQ(shn_notify(c, &n, 1, 0), -ENOTCONN);
	atomic_store(&x->sh->state1, 2);

	/* a broker again: the library reconnects, publishing works */
	child_wait(&x->sh->cmd1, 3);
	end = h_now_ms() + H_TIMEOUT_MS;
	n = rnote("p1-after");
	while ((r = shn_notify(c, &n, 1, 0)) == -ENOTCONN) {
		CHILD_CHECK(h_now_ms() < end);
		h_sleep_ms(2);
	}
	CHILD_CHECK_EQ(r, 0);
	atomic_store(&x->sh->state1, 3);
	shn_disconnect(c);
	return 0;
}

/* P2: a new publisher process, connecting after the restart. */
static int child_p2(void *arg)
{
	struct rctx *x = arg;
	shn_client *c = NULL;

	child_wait(&x->sh->go2, 1);
	CHILD_CHECK_EQ(shn_connect(x->sock, &c), 0);
	shn_notification n = rnote("new");
	CHILD_CHECK_EQ(shn_notify(c, &n, 1, 0), 0);
	atomic_store(&x->sh->state2, 1);
	shn_disconnect(c);
	return 0;
}

struct rlog {
	int sink;
	uint32_t event;
	shn_conn conn;
	int32_t pid;
	char data[16];
};

static struct rlog rlogs[64];
static int nrlogs;

static unsigned rsink(void *ctx, const shn_notification *b, size_t n)
{
	for (size_t i = 0; i < n && nrlogs < 64; i++) {
		struct rlog *l = &rlogs[nrlogs++];
		memset(l, 0, sizeof(*l));
		l->sink = (int)(intptr_t)ctx;
		l->event = b[i].event;
		l->conn = b[i].conn;
		l->pid = b[i].sender_pid;
		if (b[i].data_len < sizeof(l->data) && b[i].data_len > 0)
			memcpy(l->data, b[i].data, b[i].data_len);
	}
	return SHN_CALLBACK_CONTINUE;
}

/* Dispatch p until nrlogs reaches want (bounded). */
static void rdispatch(shn_port *p, int want)
{
	int64_t end = h_now_ms() + H_TIMEOUT_MS;

	while (nrlogs < want) {
		int r = shn_port_dispatch(p, 100);
		assert_true(r > 0 || r == -ETIMEDOUT);
		if (h_now_ms() > end)
			fail_msg("%d sink calls logged after %d ms, expected %d", nrlogs,
				 H_TIMEOUT_MS, want);
	}
}

static void check_rlog(int i, int sink, uint32_t event, shn_conn conn, const char *data)
{
	const struct rlog *l = &rlogs[i];

	if (l->sink != sink || l->event != event)
		fail_msg("sink log %d: sink %d event 0x%x, expected sink %d event 0x%x", i,
			 l->sink, l->event, sink, event);
	if (data != NULL) {
		assert_int_equal(l->conn, conn);
		assert_string_equal(l->data, data);
	} else {
		assert_int_equal(l->pid, 0);
	}
}

/* SIGKILL of the broker and a restart on the same socket: each
 * port (a pull port, and a port with two advise sinks: every sink) gets
 * SHN_EV_BROKER_STATE then SHN_EV_RECONNECT; publishing during the outage
 * fails with -ENOTCONN, in this process and in a publisher process; what
 * was refused never arrives; afterwards a new publisher process's
 * notification arrives under the same connection numbers as before. */
static void test_restart_new_publisher(void **state)
{
	struct harness *h = *state;
	struct rshared *sh = h_shared(sizeof(*sh));
	struct rctx x = { .sock = h->sock, .sh = sh };
	shn_notification out[8];
	shn_conn c1, ca = 0, cb = 0;
	shn_port *p2 = NULL;

	pid_t pid1 = h_fork(child_p1, &x);
	pid_t pid2 = h_fork(child_p2, &x);
	nrlogs = 0;
	shn_client *c = h_connect(h);
	shn_port *p1 = h_port_sub(c, 0, "r", 1, SHN_EV_ALL, &c1);
	assert_int_equal(shn_port_open(c, NULL, &p2), 0);
	assert_int_equal(shn_advise(p2, "r", 1, SHN_EV_ALL, 0, rsink, (void *)1, &ca), 0);
	assert_int_equal(shn_advise(p2, NULL, 0, 0x2, 0, rsink, (void *)2, &cb), 0);

	/* before: P1's notification under c1, ca, cb */
	atomic_store(&sh->cmd1, 1);
	assert_int_equal(h_get(p1, out, 8), 1);
	assert_int_equal(out[0].conn, c1);
	assert_int_equal(out[0].sender_pid, pid1);
	rdispatch(p2, 2);
	check_rlog(0, 1, 3, ca, "before");
	check_rlog(1, 2, 3, cb, "before");

	int st = h_kill_broker(h);
	assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);

	/* BROKER_STATE on each port, to every sink */
	expect_system(p1, SHN_EV_BROKER_STATE, "pull port after the broker died");
	rdispatch(p2, 4);
	check_rlog(2, 1, SHN_EV_BROKER_STATE, 0, NULL);
	check_rlog(3, 2, SHN_EV_BROKER_STATE, 0, NULL);
	/* this client saw the loss (its ports were told): publishing fails */
	shn_notification lost = rnote("outage");
	assert_int_equal(shn_notify(c, &lost, 1, 0), -ENOTCONN);
	assert_int_equal(shn_notify(c, &lost, 1, SHN_NOTIFY_SYNC), -ENOTCONN);
	/* and in the publisher process */
	atomic_store(&sh->cmd1, 2);
	{
		int64_t end = h_now_ms() + H_TIMEOUT_MS;
		while (atomic_load(&sh->state1) < 2) {
			if (h_now_ms() > end)
				fail_msg("publisher process never got -ENOTCONN during the outage");
			h_sleep_ms(2);
		}
	}
	/* nothing else reached the ports meanwhile */
	assert_int_equal(shn_port_get(p1, out, 8, 0), -ETIMEDOUT);
	assert_int_equal(shn_port_dispatch(p2, 0), -ETIMEDOUT);

	/* restart on the same socket: RECONNECT on each port, every sink */
	h_launch(h, NULL);
	expect_system(p1, SHN_EV_RECONNECT, "pull port after the restart");
	rdispatch(p2, 6);
	check_rlog(4, 1, SHN_EV_RECONNECT, 0, NULL);
	check_rlog(5, 2, SHN_EV_RECONNECT, 0, NULL);

	/* a new publisher process: same conn numbers as before the crash */
	atomic_store(&sh->go2, 1);
	h_wait_ok(pid2, H_CHILD_TIMEOUT_MS);
	assert_int_equal(h_get(p1, out, 8), 1);
	assert_int_equal(out[0].event, 3);
	assert_int_equal(out[0].data_len, 3);
	assert_memory_equal(out[0].data, "new", 3);
	assert_int_equal(out[0].conn, c1);
	assert_int_equal(out[0].sender_pid, pid2);
	assert_int_equal(out[0].seq, 1);   /* seq restarts with the new broker's port */
	rdispatch(p2, 8);
	check_rlog(6, 1, 3, ca, "new");
	check_rlog(7, 2, 3, cb, "new");
	assert_int_equal(rlogs[6].pid, pid2);

	/* the old publisher process publishes again, under the same conns;
	 * nothing it published in the outage ever arrives (at most once) */
	atomic_store(&sh->cmd1, 3);
	h_wait_ok(pid1, H_CHILD_TIMEOUT_MS);
	assert_int_equal(h_get(p1, out, 8), 1);
	assert_int_equal(out[0].data_len, 8);
	assert_memory_equal(out[0].data, "p1-after", 8);
	assert_int_equal(out[0].conn, c1);
	assert_int_equal(out[0].sender_pid, pid1);
	rdispatch(p2, 10);
	check_rlog(8, 1, 3, ca, "p1-after");
	check_rlog(9, 2, 3, cb, "p1-after");
	/* and so does this client (event 1: sink A only, not B's mask 0x2) */
	roundtrip(c, p1, c1, "r");
	rdispatch(p2, 11);
	check_rlog(10, 1, 1, ca, "rt");
	assert_int_equal(shn_port_get(p1, out, 8, 0), -ETIMEDOUT);
	assert_int_equal(shn_port_dispatch(p2, 0), -ETIMEDOUT);
	assert_int_equal(nrlogs, 11);
	fprintf(stderr, "publisher process: %d accepted before it saw the loss\n",
		atomic_load(&sh->accepted_in_outage));
	h_disconnect(c);
}

/* ---- nothing of a lost broker's direct rings after BROKER_STATE ----------- */

#define DL_ROUNDS 12

struct dl_shared {
	_Atomic uint64_t accepted;   /* publishes that returned 0 */
	_Atomic int refused;         /* the publisher saw -ENOTCONN */
};

struct dl_ctx {
	const char *sock;
	struct dl_shared *sh;
};

/* Publish "dl" as fast as it can until the library says the broker is
 * gone: the last of these go into the direct ring after the broker died,
 * before this library saw it. */
static int dl_publisher(void *arg)
{
	struct dl_ctx *x = arg;
	shn_client *c = NULL;
	uint64_t v = 0;
	int r;

	/* a broker slowed by a sanitizer or valgrind takes longer than the
	 * default bound to route a batch: wait for it, so as to go directly */
	setenv("SHMNOTIFY_DIRECT_WAIT_US", "10000000", 1);
	CHILD_CHECK_EQ(shn_connect(x->sock, &c), 0);
	for (int64_t end = h_now_ms() + H_CHILD_TIMEOUT_MS;;) {
		shn_notification n = { .event = 1, .key = "dl", .key_len = 2, .data = &v,
				       .data_len = sizeof(v) };

		r = shn_notify(c, &n, 1, 0);
		if (r != 0)
			break;
		atomic_store(&x->sh->accepted, ++v);
		CHILD_CHECK(h_now_ms() < end);
	}
	CHILD_CHECK_EQ(r, -ENOTCONN);
	atomic_store(&x->sh->refused, 1);
	shn_disconnect(c);
	return 0;
}

/* Rule 10 with the direct path: a publisher that floods while its broker
 * is killed writes its last notes straight into the port's direct ring
 * before its library sees the loss (here it is stopped meanwhile, and
 * resumed once the port delivered BROKER_STATE).  The port delivers what its rings held
 * when it found them empty, then SHN_EV_BROKER_STATE -- and nothing after
 * it until SHN_EV_RECONNECT: those notes were accepted, never routed, and
 * the stream already said it broke.  In a loop (the publisher's last
 * writes race the reader's last look); fails when a note follows
 * BROKER_STATE (the reader kept reading the dead broker's rings). */
static void test_nothing_after_broker_state(void **state)
{
	struct harness *h = *state;
	struct dl_shared *sh = h_shared(sizeof(*sh));
	struct dl_ctx x = { .sock = h->sock, .sh = sh };
	shn_notification out[64];
	int after = 0;

	for (int round = 0; round < DL_ROUNDS; round++) {
		shn_conn conn;
		uint64_t got = 0, last = 0;
		bool state_seen = false;

		atomic_store(&sh->accepted, 0);
		atomic_store(&sh->refused, 0);
		shn_client *c = h_connect(h);
		shn_port *p = h_port_sub(c, 0, "dl", 2, SHN_EV_ALL, &conn);
		pid_t pid = h_fork(dl_publisher, &x);

		/* until it floods directly (its first batches take the broker
		 * path until the broker offered the ring and took them) */
		for (int64_t end = h_now_ms() + H_TIMEOUT_MS;
		     got < 1000 || (h_direct_on() && hs_client_stat(c, pid, "direct_routed") < 1000);) {
			int n = h_get(p, out, 64);

			if (h_now_ms() > end)
				fail_msg("round %d: the publisher never went directly", round);
			for (int i = 0; i < n; i++)
				if (out[i].event == 1)
					got++;
		}
		/* the publisher stopped mid-flood while the broker dies, so that
		 * it resumes writing into the ring before its library can see
		 * the loss, after this reader has drained it */
		assert_int_equal(kill(pid, SIGSTOP), 0);
		for (int64_t end = h_now_ms() + H_TIMEOUT_MS; h_proc_state(pid) != 'T';) {
			if (h_now_ms() > end)
				fail_msg("round %d: the publisher did not stop", round);
			h_sleep_ms(1);
		}
		int st = h_kill_broker(h);
		assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
		while (!state_seen) {
			int n = h_get(p, out, 64);

			for (int i = 0; i < n; i++) {
				if (out[i].event == SHN_EV_BROKER_STATE) {
					state_seen = true;
					if (i + 1 < n)
						fail_msg("round %d: %d notes after BROKER_STATE in "
							 "one get", round, n - i - 1);
				} else if (out[i].event == 1) {
					memcpy(&last, out[i].data, sizeof(last));
				}
			}
		}
		assert_int_equal(kill(pid, SIGCONT), 0);
		h_wait_ok(pid, H_CHILD_TIMEOUT_MS);
		assert_int_equal(atomic_load(&sh->refused), 1);
		/* the publisher is gone: whatever it wrote is written */
		int n = shn_port_get(p, out, 64, 0);
		if (n > 0) {
			uint64_t v = 0;

			if (out[0].data_len == sizeof(v))
				memcpy(&v, out[0].data, sizeof(v));
			fail_msg("round %d: event 0x%x (note %llu; the last before BROKER_STATE "
				 "%llu, %llu accepted) after BROKER_STATE, before RECONNECT",
				 round, out[0].event, (unsigned long long)v,
				 (unsigned long long)last,
				 (unsigned long long)atomic_load(&sh->accepted));
		}
		assert_int_equal(n, -ETIMEDOUT);
		after += (int)(atomic_load(&sh->accepted) - last);
		h_launch(h, NULL);
		expect_system(p, SHN_EV_RECONNECT, "the port after the restart");
		h_disconnect(c);
	}
	fprintf(stderr, "nothing_after_broker_state: %d accepted notes never delivered in %d "
		"rounds\n", after, DL_ROUNDS);
}

int main(int argc, char **argv)
{
	h_parse_args(argc, argv);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_broker_loss, h_setup, h_teardown),
		cmocka_unit_test_setup_teardown(test_broker_sigterm, h_setup, h_teardown),
		cmocka_unit_test_setup_teardown(test_port_fd_across_restart, h_setup, h_teardown),
		cmocka_unit_test_setup_teardown(test_prefix_restored, h_setup, h_teardown),
		cmocka_unit_test_setup_teardown(test_restart_new_publisher, h_setup, h_teardown),
		cmocka_unit_test_setup_teardown(test_nothing_after_broker_state, h_setup, h_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
