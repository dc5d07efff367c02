/* SPDX-License-Identifier: MIT */
/*
 * test_sync.c - SHN_NOTIFY_SYNC (docs/design.md, rule 7; MAPI's NOTIFY_SYNC):
 * returns once every matching sink consumed the batch, pull ports and
 * advise sinks alike; a sink returning SHN_CALLBACK_DISCONTINUE stops the
 * rest and the call returns SHN_NOTIFY_CANCELED; no matching subscription:
 * 0 at once.
 */
#define _GNU_SOURCE
#include "harness.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>

struct sink {
	_Atomic int calls;
	unsigned ret;
	char last[16];
};

/* The dispatcher thread writes last, the test thread reads it after a SYNC
 * returned: ordered through the broker (another process), which TSan does
 * not see, so a lock says it. */
static pthread_mutex_t last_lock = PTHREAD_MUTEX_INITIALIZER;

static unsigned sink_fn(void *ctx, const shn_notification *b, size_t n)
{
	struct sink *s = ctx;

	pthread_mutex_lock(&last_lock);
	if (n > 0 && b[n - 1].data_len < sizeof(s->last)) {
		if (b[n - 1].data_len > 0)
			memcpy(s->last, b[n - 1].data, b[n - 1].data_len);
		s->last[b[n - 1].data_len] = '\0';
	}
	pthread_mutex_unlock(&last_lock);
	atomic_fetch_add(&s->calls, 1);
	return s->ret;
}

static void check_last(struct sink *s, const char *want)
{
	char got[sizeof(s->last)];

	pthread_mutex_lock(&last_lock);
	memcpy(got, s->last, sizeof(got));
	pthread_mutex_unlock(&last_lock);
	got[sizeof(got) - 1] = '\0';
	assert_string_equal(got, want);
}

struct dispatcher {
	shn_port *p;
	_Atomic bool stop;
	bool running;
	pthread_t t;
};

/* Static, so that a failed test's threads never point into a dead frame;
 * the teardown stops whatever is still running. */
static struct dispatcher disp[2];
static struct sink sinks[2];

static void *dispatch_main(void *arg)
{
	struct dispatcher *d = arg;

	while (!atomic_load(&d->stop)) {
		int r = shn_port_dispatch(d->p, 50);
		if (r < 0 && r != -ETIMEDOUT && r != -ECANCELED)
			break;
	}
	return NULL;
}

static void start_dispatcher(struct dispatcher *d, shn_port *p)
{
	d->p = p;
	atomic_store(&d->stop, false);
	assert_int_equal(pthread_create(&d->t, NULL, dispatch_main, d), 0);
	d->running = true;
}

static void stop_dispatcher(struct dispatcher *d)
{
	if (!d->running)
		return;
	atomic_store(&d->stop, true);
	shn_port_unblock(d->p);
	pthread_join(d->t, NULL);
	d->running = false;
}

static int teardown(void **state)
{
	stop_dispatcher(&disp[0]);
	stop_dispatcher(&disp[1]);
	return h_teardown(state);
}

static shn_notification note(const char *key, const char *data)
{
	shn_notification n;

	memset(&n, 0, sizeof(n));
	n.event = 1;
	n.key = key;
	n.key_len = (uint16_t)strlen(key);
	n.data = data;
	n.data_len = (uint32_t)strlen(data);
	return n;
}

/* A pull port has consumed the batch when shn_port_get returned it: until
 * somebody reads, the synchronous publisher waits. */
struct sync_pub {
	shn_client *c;
	shn_notification n;
	_Atomic bool returned;
	_Atomic int result;
};

static void *sync_pub_main(void *arg)
{
	struct sync_pub *x = arg;

	atomic_store(&x->result, shn_notify(x->c, &x->n, 1, SHN_NOTIFY_SYNC));
	atomic_store(&x->returned, true);
	return NULL;
}

static bool returned(void *arg)
{
	return atomic_load(&((struct sync_pub *)arg)->returned);
}

/* shn_notify(SYNC) of one notification, bounded: fails the test if it does
 * not return within H_TIMEOUT_MS. */
static int sync_notify(shn_client *c, shn_notification n)
{
	static struct sync_pub x;   /* outlives a failed test's thread */
	pthread_t t;

	x.c = c;
	x.n = n;
	atomic_store(&x.returned, false);
	assert_int_equal(pthread_create(&t, NULL, sync_pub_main, &x), 0);
	if (!h_poll_until(returned, &x, H_TIMEOUT_MS))
		fail_msg("shn_notify(SYNC) did not return within %d ms", H_TIMEOUT_MS);
	pthread_join(t, NULL);
	return atomic_load(&x.result);
}

static void test_sync_no_subscriber(void **state)
{
	struct harness *h = *state;
	shn_client *c = h_connect(h);
	shn_notification n = note("nobody", "x");

	assert_int_equal(sync_notify(c, n), 0);
	h_disconnect(c);
}

/* When shn_notify(SYNC) returns, the sink has run. */
static void test_sync_sink_consumed(void **state)
{
	struct harness *h = *state;
	struct sink *s = &sinks[0];
	struct dispatcher *d = &disp[0];
	shn_port *p = NULL;
	shn_conn conn;

	shn_client *sub = h_connect(h);
	shn_client *pub = h_connect(h);
	assert_int_equal(shn_port_open(sub, NULL, &p), 0);
	*s = (struct sink){ .ret = SHN_CALLBACK_CONTINUE };
	assert_int_equal(shn_advise(p, "s", 1, SHN_EV_ALL, 0, sink_fn, s, &conn), 0);
	start_dispatcher(d, p);
	for (int i = 1; i <= 20; i++) {
		char data[8];
		snprintf(data, sizeof(data), "%d", i);
		shn_notification n = note("s", data);
		int r = sync_notify(pub, n);
		if (r != 0)
			fail_msg("shn_notify(SYNC): %d (%s)", r, shn_strerror(r));
		assert_int_equal(atomic_load(&s->calls), i);
		check_last(s, data);
	}
	stop_dispatcher(d);
	h_disconnect(pub);
	h_disconnect(sub);
}

/* A SYNC batch to a port of the publisher's own client, served by a
 * dispatcher thread of that client: a fresh port each round, so that the
 * dispatcher's first look at its sinks, when the batch arrives, takes
 * ctl_lock while the publisher waits for SYNC_DONE.  The wait held that lock
 * in 20-ms turns with an unlock and a relock between them, which gave the
 * dispatcher no turn: it ran once the SYNC had timed out (shn_notify(3)'s
 * example failed so on a loaded machine).  Now the wait leaves the lock
 * free. */
static void test_sync_own_dispatcher(void **state)
{
	struct harness *h = *state;
	struct sink *s = &sinks[0];
	struct dispatcher *d = &disp[0];

	shn_client *c = h_connect(h);
	shn_set_sync_timeout(c, 2000);
	for (int i = 1; i <= 20; i++) {
		shn_port *p = NULL;
		shn_conn conn;
		char data[8];

		assert_int_equal(shn_port_open(c, NULL, &p), 0);
		*s = (struct sink){ .ret = SHN_CALLBACK_CONTINUE };
		assert_int_equal(shn_advise(p, "o", 1, SHN_EV_ALL, 0, sink_fn, s, &conn), 0);
		start_dispatcher(d, p);
		snprintf(data, sizeof(data), "%d", i);
		int r = sync_notify(c, note("o", data));
		if (r != 0)
			fail_msg("round %d: shn_notify(SYNC) to a port of its own client: %d (%s)", i,
				 r, shn_strerror(r));
		assert_int_equal(atomic_load(&s->calls), 1);
		check_last(s, data);
		stop_dispatcher(d);
		assert_int_equal(shn_port_close(p), 0);
	}
	h_disconnect(c);
}

/* Several threads of one client in SYNC waits at once: one of them reads
 * the control socket for all while the others sleep, and the role passes
 * on as each returns.  Every call returns 0, and the sink saw every batch. */
#define MW_THREADS 4
#define MW_ROUNDS 50

struct mw_pub {
	shn_client *c;
	int failed;   /* the first bad result, 0 if none */
};

static void *mw_main(void *arg)
{
	struct mw_pub *x = arg;

	for (int i = 0; i < MW_ROUNDS && x->failed == 0; i++) {
		shn_notification n = note("w", "x");
		int r = shn_notify(x->c, &n, 1, SHN_NOTIFY_SYNC);

		if (r != 0)
			x->failed = r;
	}
	return NULL;
}

static void test_sync_many_waiters(void **state)
{
	struct harness *h = *state;
	struct sink *s = &sinks[0];
	struct dispatcher *d = &disp[0];
	static struct mw_pub x[MW_THREADS];   /* outlives a failed test's threads */
	pthread_t t[MW_THREADS];
	shn_port *p = NULL;
	shn_conn conn;

	shn_client *sub = h_connect(h);
	shn_client *pub = h_connect(h);
	shn_set_sync_timeout(pub, 5000);
	assert_int_equal(shn_port_open(sub, NULL, &p), 0);
	*s = (struct sink){ .ret = SHN_CALLBACK_CONTINUE };
	assert_int_equal(shn_advise(p, "w", 1, SHN_EV_ALL, 0, sink_fn, s, &conn), 0);
	start_dispatcher(d, p);
	for (int i = 0; i < MW_THREADS; i++) {
		x[i] = (struct mw_pub){ .c = pub };
		assert_int_equal(pthread_create(&t[i], NULL, mw_main, &x[i]), 0);
	}
	for (int i = 0; i < MW_THREADS; i++) {
		pthread_join(t[i], NULL);
		if (x[i].failed != 0)
			fail_msg("thread %d: shn_notify(SYNC): %d (%s)", i, x[i].failed,
				 shn_strerror(x[i].failed));
	}
	assert_int_equal(atomic_load(&s->calls), MW_THREADS * MW_ROUNDS);
	stop_dispatcher(d);
	h_disconnect(pub);
	h_disconnect(sub);
}

/* The first sink (oldest subscription) says DISCONTINUE: the second is not
 * served, and the publisher learns it. */
static void test_sync_discontinue(void **state)
{
	struct harness *h = *state;
	struct sink *a = &sinks[0], *b = &sinks[1];
	struct dispatcher *da = &disp[0], *db = &disp[1];
	shn_port *pa = NULL, *pb = NULL;
	shn_conn ca, cb;

	shn_client *sa = h_connect(h);
	shn_client *sb = h_connect(h);
	shn_client *pub = h_connect(h);
	assert_int_equal(shn_port_open(sa, NULL, &pa), 0);
	assert_int_equal(shn_port_open(sb, NULL, &pb), 0);
	*a = (struct sink){ .ret = SHN_CALLBACK_DISCONTINUE };
	*b = (struct sink){ .ret = SHN_CALLBACK_CONTINUE };
	assert_int_equal(shn_advise(pa, "d", 1, SHN_EV_ALL, 0, sink_fn, a, &ca), 0);
	assert_int_equal(shn_advise(pb, "d", 1, SHN_EV_ALL, 0, sink_fn, b, &cb), 0);
	start_dispatcher(da, pa);
	start_dispatcher(db, pb);

	shn_notification n = note("d", "stop");
	int r = sync_notify(pub, n);
	if (r != SHN_NOTIFY_CANCELED)
		fail_msg("shn_notify(SYNC) with a discontinuing sink: %d (%s), expected "
			 "SHN_NOTIFY_CANCELED", r, shn_strerror(r));
	assert_int_equal(atomic_load(&a->calls), 1);
	/* b never gets it: a later asynchronous batch is the first it sees */
	shn_notification m = note("d", "later");
	assert_int_equal(shn_notify(pub, &m, 1, 0), 0);
	int64_t end = h_now_ms() + H_TIMEOUT_MS;
	while (atomic_load(&b->calls) == 0 && h_now_ms() < end) {
		struct timespec ts = { 0, 2000000 };
		nanosleep(&ts, NULL);
	}
	assert_int_equal(atomic_load(&b->calls), 1);
	check_last(b, "later");
	stop_dispatcher(da);
	stop_dispatcher(db);
	h_disconnect(pub);
	h_disconnect(sa);
	h_disconnect(sb);
}

static void test_sync_pull_port(void **state)
{
	struct harness *h = *state;
	static struct sync_pub x;   /* the thread may outlive a failed test */
	shn_notification out[4];
	shn_conn conn;
	pthread_t t;

	shn_client *sub = h_connect(h);
	shn_port *p = h_port_sub(sub, 0, "pull", 4, SHN_EV_ALL, &conn);
	x.c = h_connect(h);
	x.n = note("pull", "sync");
	atomic_store(&x.returned, false);
	atomic_store(&x.result, 12345);
	assert_int_equal(pthread_create(&t, NULL, sync_pub_main, &x), 0);
	/* nobody read it yet: the publisher is still waiting (this cannot
	 * pass by luck when the wait is missing: it would have returned) */
	assert_false(h_poll_until(returned, &x, 300));
	assert_int_equal(h_get(p, out, 4), 1);
	assert_memory_equal(out[0].data, "sync", 4);
	if (!h_poll_until(returned, &x, H_TIMEOUT_MS))
		fail_msg("shn_notify(SYNC) still waiting after the batch was read");
	pthread_join(t, NULL);
	assert_int_equal(atomic_load(&x.result), 0);
	h_disconnect(x.c);
	h_disconnect(sub);
}

/* ==== across processes ===================================================
 *
 * Subscribers and the publisher are separate processes forked before this
 * process connects anywhere; they talk through shared memory (h_shared).
 * The publisher runs a script of shn_notify calls, one step each time the
 * test says go, and records each result, when the call started and
 * returned (CLOCK_MONOTONIC, shared by all processes), and what each
 * subscriber had consumed at the moment the call returned.  A SYNC call
 * that never returns fails the test after H_TIMEOUT_MS; the children are
 * killed at teardown. */

#define XSUBS 3
#define XSTEPS 4
#define XSEEN 16

enum { CMD_NONE, CMD_READ, CMD_CLOSE, CMD_STOP };

struct xsub {
	_Atomic int ready;          /* 1: subscribed (the filter is active); 2: port closed */
	_Atomic int cmd;            /* CMD_*, from the test */
	_Atomic int narrived;       /* pull: times the port's fd said a batch waits */
	_Atomic int nseen;          /* notifications consumed */
	char seen[XSEEN][16];       /* their data, in order */
	_Atomic int64_t consumed_ns;/* advise: before the callback returned;
				     * pull: before the latest shn_port_get call */
};

struct xstep {
	const char *key;
	uint32_t event;
	unsigned flags;
	int timeout_ms;             /* shn_set_sync_timeout before the call */
	const char *data;
};

struct xpub {
	_Atomic int go;             /* steps the test allowed */
	_Atomic int done;           /* steps completed */
	int result[XSTEPS];
	int64_t t0[XSTEPS], t1[XSTEPS];
	int nseen_at[XSTEPS][XSUBS];
	int64_t consumed_at[XSTEPS][XSUBS];
};

struct xshared {
	struct xsub sub[XSUBS];
	struct xpub pub;
};

struct sub_cfg {
	struct xshared *sh;
	int id;
	const char *sock;
	const char *key;
	bool pull;
	bool hold;                  /* pull: consume nothing before CMD_READ */
	int delay_ms;               /* wait before consuming each batch */
	unsigned ret;               /* advise: the callback's answer */
};

struct pub_cfg {
	struct xshared *sh;
	const char *sock;
	const struct xstep *steps;
	int nsteps;
};

static void record(struct xsub *x, const shn_notification *n)
{
	int i = atomic_load(&x->nseen);

	if (i < XSEEN) {
		size_t len = n->data_len < 15 ? n->data_len : 15;
		if (len > 0)
			memcpy(x->seen[i], n->data, len);
		x->seen[i][len] = '\0';
	}
	atomic_store(&x->nseen, i + 1);
}

static unsigned xsink(void *ctx, const shn_notification *b, size_t n)
{
	struct sub_cfg *g = ctx;
	struct xsub *x = &g->sh->sub[g->id];

	if (g->delay_ms > 0)
		h_sleep_ms(g->delay_ms);
	for (size_t i = 0; i < n; i++)
		if ((b[i].event & SHN_EV_SYSTEM) == 0)
			record(x, &b[i]);
	atomic_store(&x->consumed_ns, h_now_ns());   /* before we return */
	return g->ret;
}

static int sub_child(void *arg)
{
	struct sub_cfg *g = arg;
	struct xsub *x = &g->sh->sub[g->id];
	shn_notification out[16];
	shn_client *c = NULL;
	shn_port *p = NULL;
	shn_conn conn = 0;

	CHILD_CHECK_EQ(shn_connect(g->sock, &c), 0);
	CHILD_CHECK_EQ(shn_port_open(c, NULL, &p), 0);
	if (g->pull) {
		CHILD_CHECK_EQ(shn_subscribe(p, g->key, strlen(g->key), SHN_EV_ALL, 0, &conn), 0);
		/* an empty get arms the port's fd */
		CHILD_CHECK_EQ(shn_port_get(p, out, 16, 0), -ETIMEDOUT);
	} else {
		CHILD_CHECK_EQ(shn_advise(p, g->key, strlen(g->key), SHN_EV_ALL, 0, xsink, g,
					  &conn), 0);
	}
	CHILD_CHECK(conn != 0);
	atomic_store(&x->ready, 1);
	for (;;) {
		int cmd = atomic_load(&x->cmd);
		if (cmd == CMD_STOP)
			break;
		if (cmd == CMD_CLOSE && p != NULL) {
			CHILD_CHECK_EQ(shn_port_close(p), 0);
			p = NULL;
			atomic_store(&x->ready, 2);
		}
		if (p == NULL) {
			h_sleep_ms(2);
			continue;
		}
		if (!g->pull) {
			int r = shn_port_dispatch(p, 20);
			CHILD_CHECK(r > 0 || r == -ETIMEDOUT);
			continue;
		}
		struct pollfd pfd = { .fd = shn_port_fd(p), .events = POLLIN };
		if (poll(&pfd, 1, 20) <= 0)
			continue;
		if (g->hold && cmd < CMD_READ) {
			/* a batch waits; we do not take it yet */
			if (atomic_load(&x->narrived) == 0)
				atomic_store(&x->narrived, 1);
			h_sleep_ms(2);
			continue;
		}
		atomic_fetch_add(&x->narrived, 1);
		if (g->delay_ms > 0)
			h_sleep_ms(g->delay_ms);
		for (;;) {
			/* stamped before the get that may consume a batch:
			 * a SYNC publisher returns after this */
			atomic_store(&x->consumed_ns, h_now_ns());
			/* 1 ms, not 0: an empty get that waits also clears the
			 * port's wake-up, so poll() does not spin on it */
			int r = shn_port_get(p, out, 16, 1);
			if (r == -ETIMEDOUT)
				break;   /* empty: the fd is armed again */
			CHILD_CHECK(r > 0);
			for (int i = 0; i < r; i++)
				if ((out[i].event & SHN_EV_SYSTEM) == 0)
					record(x, &out[i]);
		}
	}
	shn_disconnect(c);
	return 0;
}

static int pub_child(void *arg)
{
	struct pub_cfg *g = arg;
	struct xpub *x = &g->sh->pub;
	shn_client *c = NULL;

	CHILD_CHECK_EQ(shn_connect(g->sock, &c), 0);
	for (int i = 0; i < g->nsteps; i++) {
		const struct xstep *st = &g->steps[i];
		shn_notification n;

		while (atomic_load(&x->go) <= i)
			h_sleep_ms(1);   /* bounded by the child's alarm */
		memset(&n, 0, sizeof(n));
		n.event = st->event;
		n.key = st->key;
		n.key_len = (uint16_t)strlen(st->key);
		n.data = st->data;
		n.data_len = (uint32_t)strlen(st->data);
		CHILD_CHECK_EQ(shn_set_sync_timeout(c, st->timeout_ms), 0);
		x->t0[i] = h_now_ns();
		x->result[i] = shn_notify(c, &n, 1, st->flags);
		x->t1[i] = h_now_ns();
		for (int k = 0; k < XSUBS; k++) {
			x->nseen_at[i][k] = atomic_load(&g->sh->sub[k].nseen);
			x->consumed_at[i][k] = atomic_load(&g->sh->sub[k].consumed_ns);
		}
		atomic_store(&x->done, i + 1);
	}
	shn_disconnect(c);
	return 0;
}

struct wait_ctx {
	_Atomic int *v;
	int want;
};

static bool reached(void *arg)
{
	struct wait_ctx *w = arg;

	return atomic_load(w->v) >= w->want;
}

/* Wait (bounded) until *v >= want. */
static void wait_for(_Atomic int *v, int want, int timeout_ms, const char *what)
{
	struct wait_ctx w = { v, want };

	if (!h_poll_until(reached, &w, timeout_ms))
		fail_msg("%s: still %d after %d ms, expected %d", what, atomic_load(v),
			 timeout_ms, want);
}

static pid_t start_sub(struct sub_cfg *g)
{
	pid_t pid = h_fork(sub_child, g);

	wait_for(&g->sh->sub[g->id].ready, 1, H_TIMEOUT_MS, "subscriber ready");
	return pid;
}

/* Let the publisher run step i and wait for its return (bounded). */
static int run_step(struct xshared *sh, int i, int timeout_ms)
{
	atomic_store(&sh->pub.go, i + 1);
	wait_for(&sh->pub.done, i + 1, timeout_ms, "shn_notify returned (publisher steps)");
	return sh->pub.result[i];
}

static int64_t step_ms(const struct xshared *sh, int i)
{
	return (sh->pub.t1[i] - sh->pub.t0[i]) / 1000000;
}

static void stop_all(struct xshared *sh, const pid_t *subs, int nsubs, pid_t pub)
{
	for (int i = 0; i < nsubs; i++)
		atomic_store(&sh->sub[i].cmd, CMD_STOP);
	for (int i = 0; i < nsubs; i++)
		if (subs[i] > 0)
			h_wait_ok(subs[i], H_TIMEOUT_MS);
	if (pub > 0)
		h_wait_ok(pub, H_TIMEOUT_MS);
}

/* SHN_NOTIFY_SYNC returns only after a subscriber in another
 * process, which waits 300 ms before consuming, has consumed: an advise
 * sink sleeping 300 ms in its callback. */
static void test_sync_slow_sink_process(void **state)
{
	struct harness *h = *state;
	struct xshared *sh = h_shared(sizeof(*sh));
	struct sub_cfg s0 = { .sh = sh, .id = 0, .sock = h->sock, .key = "slow", .delay_ms = 300 };
	static const struct xstep steps[] = {
		{ "slow", 1, SHN_NOTIFY_SYNC, -1, "s1" },
		{ "slow", 1, SHN_NOTIFY_SYNC, -1, "s2" },
	};
	struct pub_cfg pc = { .sh = sh, .sock = h->sock, .steps = steps, .nsteps = 2 };
	pid_t subs[1];

	subs[0] = start_sub(&s0);
	pid_t pub = h_fork(pub_child, &pc);
	for (int i = 0; i < 2; i++) {
		int r = run_step(sh, i, H_TIMEOUT_MS);
		if (r != 0)
			fail_msg("shn_notify(SYNC) step %d: %d (%s)", i, r, shn_strerror(r));
		/* the callback had returned: it counted the notification and
		 * stamped its time before returning */
		assert_int_equal(sh->pub.nseen_at[i][0], i + 1);
		assert_true(sh->pub.consumed_at[i][0] != 0);
		assert_true(sh->pub.consumed_at[i][0] <= sh->pub.t1[i]);
		assert_true(sh->pub.consumed_at[i][0] >= sh->pub.t0[i]);
		/* a lower bound only: it cannot fail spuriously */
		assert_true(step_ms(sh, i) >= 250);
	}
	assert_string_equal(sh->sub[0].seen[0], "s1");
	assert_string_equal(sh->sub[0].seen[1], "s2");
	stop_all(sh, subs, 1, pub);
	assert_int_equal(atomic_load(&sh->sub[0].nseen), 2);
}

/* The same with a pull port: the subscriber process sees the batch waiting
 * (its port's fd), waits 300 ms, then takes it with shn_port_get. */
static void test_sync_slow_pull_process(void **state)
{
	struct harness *h = *state;
	struct xshared *sh = h_shared(sizeof(*sh));
	struct sub_cfg s0 = { .sh = sh, .id = 0, .sock = h->sock, .key = "slowpull",
			      .pull = true, .delay_ms = 300 };
	static const struct xstep steps[] = {
		{ "slowpull", 1, SHN_NOTIFY_SYNC, -1, "p1" },
	};
	struct pub_cfg pc = { .sh = sh, .sock = h->sock, .steps = steps, .nsteps = 1 };
	pid_t subs[1];

	subs[0] = start_sub(&s0);
	pid_t pub = h_fork(pub_child, &pc);
	int r = run_step(sh, 0, H_TIMEOUT_MS);
	if (r != 0)
		fail_msg("shn_notify(SYNC): %d (%s)", r, shn_strerror(r));
	/* the subscriber had started the get that consumed it, after its
	 * 300 ms wait, before shn_notify returned */
	assert_true(sh->pub.consumed_at[0][0] != 0);
	assert_true(sh->pub.consumed_at[0][0] >= sh->pub.t0[0]);
	assert_true(sh->pub.consumed_at[0][0] <= sh->pub.t1[0]);
	assert_true(step_ms(sh, 0) >= 250);
	stop_all(sh, subs, 1, pub);
	assert_int_equal(atomic_load(&sh->sub[0].nseen), 1);
	assert_string_equal(sh->sub[0].seen[0], "p1");
}

/* DISCONTINUE in the first of two sinks, in two processes, gives
 * SHN_NOTIFY_CANCELED, and the second sink never sees that batch: the first
 * thing it sees is a later asynchronous batch of the same publisher (which
 * would come after the canceled one, per-publisher order). */
static void test_sync_discontinue_two_processes(void **state)
{
	struct harness *h = *state;
	struct xshared *sh = h_shared(sizeof(*sh));
	struct sub_cfg s0 = { .sh = sh, .id = 0, .sock = h->sock, .key = "disc",
			      .ret = SHN_CALLBACK_DISCONTINUE };
	struct sub_cfg s1 = { .sh = sh, .id = 1, .sock = h->sock, .key = "disc",
			      .ret = SHN_CALLBACK_CONTINUE };
	static const struct xstep steps[] = {
		{ "disc", 1, SHN_NOTIFY_SYNC, -1, "stop" },
		{ "disc", 1, 0, -1, "later" },
		{ "disc", 2, SHN_NOTIFY_SYNC, -1, "again" },
	};
	struct pub_cfg pc = { .sh = sh, .sock = h->sock, .steps = steps, .nsteps = 3 };
	pid_t subs[2];

	subs[0] = start_sub(&s0);   /* the older subscription: served first */
	subs[1] = start_sub(&s1);
	pid_t pub = h_fork(pub_child, &pc);

	int r = run_step(sh, 0, H_TIMEOUT_MS);
	if (r != SHN_NOTIFY_CANCELED)
		fail_msg("shn_notify(SYNC) with a discontinuing first sink: %d (%s), expected "
			 "SHN_NOTIFY_CANCELED (%d)", r, shn_strerror(r), SHN_NOTIFY_CANCELED);
	assert_int_equal(sh->pub.nseen_at[0][0], 1);   /* the first sink ran */
	assert_int_equal(sh->pub.nseen_at[0][1], 0);   /* the second did not */

	/* a later asynchronous batch reaches both; the second sink's first
	 * notification is that one */
	assert_int_equal(run_step(sh, 1, H_TIMEOUT_MS), 0);
	wait_for(&sh->sub[1].nseen, 1, H_TIMEOUT_MS, "second sink got the later batch");
	wait_for(&sh->sub[0].nseen, 2, H_TIMEOUT_MS, "first sink got the later batch");
	assert_string_equal(sh->sub[1].seen[0], "later");
	assert_string_equal(sh->sub[0].seen[0], "stop");
	assert_string_equal(sh->sub[0].seen[1], "later");

	/* DISCONTINUE on every batch: each SYNC is canceled after the first
	 * sink; the second still sees only "later" */
	r = run_step(sh, 2, H_TIMEOUT_MS);
	assert_int_equal(r, SHN_NOTIFY_CANCELED);
	assert_int_equal(sh->pub.nseen_at[2][0], 3);
	stop_all(sh, subs, 2, pub);
	assert_int_equal(atomic_load(&sh->sub[1].nseen), 1);
	assert_int_equal(atomic_load(&sh->sub[0].nseen), 3);
	assert_string_equal(sh->sub[0].seen[2], "again");
}

/* DISCONTINUE on each of 200 SYNC batches in a row, the sink in another
 * process, half of them from a publisher that just connected: every one
 * returns SHN_NOTIFY_CANCELED. */
static void test_sync_discontinue_repeated(void **state)
{
	struct harness *h = *state;
	struct xshared *sh = h_shared(sizeof(*sh));
	struct sub_cfg s0 = { .sh = sh, .id = 0, .sock = h->sock, .key = "again",
			      .ret = SHN_CALLBACK_DISCONTINUE };
	pid_t subs[1];
	shn_client *c = h_connect(h);
	int canceled = 0, zero = 0, other = 0;

	subs[0] = start_sub(&s0);
	for (int i = 0; i < 200; i++) {
		shn_notification n;

		if (i % 2 == 1) {   /* a new publisher every other batch, as a CLI's */
			h_disconnect(c);
			c = h_connect(h);
		}

		memset(&n, 0, sizeof(n));
		n.event = 1;
		n.key = "again";
		n.key_len = 5;
		n.data = "x";
		n.data_len = 1;
		int r = shn_notify(c, &n, 1, SHN_NOTIFY_SYNC);
		if (r == SHN_NOTIFY_CANCELED)
			canceled++;
		else if (r == 0)
			zero++;
		else
			other++;
	}
	if (canceled != 200)
		fail_msg("200 SYNC batches to a discontinuing sink: %d canceled, %d returned 0, "
			 "%d failed", canceled, zero, other);
	stop_all(sh, subs, 1, 0);
	assert_int_equal(atomic_load(&sh->sub[0].nseen), 200);
	h_disconnect(c);
}

/* Rule 7: no matching subscription returns 0 at once, whether the key has
 * no subscriber at all or its subscribers' masks do not match.  A matching
 * subscriber that never reads would hold a wrong implementation forever. */
static void test_sync_no_match_process(void **state)
{
	struct harness *h = *state;
	struct xshared *sh = h_shared(sizeof(*sh));
	/* another key's subscriber that reads nothing, ever: a SYNC that waited
	 * for every sink rather than the matching ones would never return */
	struct sub_cfg s0 = { .sh = sh, .id = 0, .sock = h->sock, .key = "nm", .pull = true,
			      .hold = true };
	static const struct xstep steps[] = {
		{ "nobody", 1, SHN_NOTIFY_SYNC, -1, "x" },
		{ "nm2", 1, SHN_NOTIFY_SYNC, -1, "y" },   /* a key nobody watches */
	};
	struct pub_cfg pc = { .sh = sh, .sock = h->sock, .steps = steps, .nsteps = 2 };
	pid_t subs[1];

	subs[0] = start_sub(&s0);
	pid_t pub = h_fork(pub_child, &pc);
	for (int i = 0; i < 2; i++) {
		int r = run_step(sh, i, 5000);
		if (r != 0)
			fail_msg("shn_notify(SYNC) to no subscriber: %d (%s)", r, shn_strerror(r));
	}
	stop_all(sh, subs, 1, pub);
	assert_int_equal(atomic_load(&sh->sub[0].narrived), 0);
}

/* Rule 7 with masks: the key has subscribers, none of whose masks match. */
static void test_sync_no_match_mask(void **state)
{
	struct harness *h = *state;
	shn_conn conn;

	shn_client *c = h_connect(h);
	shn_port *p = h_port_sub(c, 0, "mask", 4, 0x2, &conn);   /* never read */
	shn_notification n = note("mask", "ev1");               /* event 1: no match */
	assert_int_equal(sync_notify(c, n), 0);
	shn_notification out[4];
	assert_int_equal(shn_port_get(p, out, 4, 0), -ETIMEDOUT);
	h_disconnect(c);
}

/* Rule 7: shn_set_sync_timeout → -ETIMEDOUT while the first sink (another
 * process) holds the batch; delivery goes on: once the first consumes, the
 * second sink gets it.  The client then waits for a later SYNC normally. */
static void test_sync_timeout_delivery_goes_on(void **state)
{
	struct harness *h = *state;
	struct xshared *sh = h_shared(sizeof(*sh));
	struct sub_cfg s0 = { .sh = sh, .id = 0, .sock = h->sock, .key = "to", .pull = true,
			      .hold = true };
	struct sub_cfg s1 = { .sh = sh, .id = 1, .sock = h->sock, .key = "to" };
	static const struct xstep steps[] = {
		{ "to", 1, SHN_NOTIFY_SYNC, 200, "late" },
		{ "to", 1, SHN_NOTIFY_SYNC, -1, "next" },
	};
	struct pub_cfg pc = { .sh = sh, .sock = h->sock, .steps = steps, .nsteps = 2 };
	pid_t subs[2];

	subs[0] = start_sub(&s0);   /* older: served first */
	subs[1] = start_sub(&s1);
	pid_t pub = h_fork(pub_child, &pc);

	int r = run_step(sh, 0, H_TIMEOUT_MS);
	if (r != -ETIMEDOUT)
		fail_msg("shn_notify(SYNC) with a 200 ms limit and a sink that holds the batch: "
			 "%d (%s), expected -ETIMEDOUT", r, shn_strerror(r));
	if (step_ms(sh, 0) < 200)
		fail_msg("-ETIMEDOUT after %.3f ms, before the 200 ms limit",
			 (double)(sh->pub.t1[0] - sh->pub.t0[0]) / 1e6);
	/* served one after another: the second has not seen it yet */
	assert_int_equal(sh->pub.nseen_at[0][1], 0);
	assert_int_equal(sh->pub.nseen_at[0][0], 0);
	/* the batch did reach the first sink's port */
	wait_for(&sh->sub[0].narrived, 1, H_TIMEOUT_MS, "the batch reached the first sink");
	assert_int_equal(atomic_load(&sh->sub[1].nseen), 0);

	/* the first consumes: delivery goes on to the second */
	atomic_store(&sh->sub[0].cmd, CMD_READ);
	wait_for(&sh->sub[0].nseen, 1, H_TIMEOUT_MS, "the first sink read the batch");
	wait_for(&sh->sub[1].nseen, 1, H_TIMEOUT_MS,
		 "the second sink got the batch after the publisher timed out");
	assert_string_equal(sh->sub[0].seen[0], "late");
	assert_string_equal(sh->sub[1].seen[0], "late");

	/* no limit now: the next SYNC waits for both and returns 0 (the late
	 * completion of the first does not end this wait) */
	r = run_step(sh, 1, H_TIMEOUT_MS);
	if (r != 0)
		fail_msg("shn_notify(SYNC) after a timed-out one: %d (%s)", r, shn_strerror(r));
	/* the second sink (served after the first) had consumed it */
	assert_int_equal(sh->pub.nseen_at[1][1], 2);
	stop_all(sh, subs, 2, pub);
	assert_string_equal(sh->sub[1].seen[1], "next");
}

/* Rule 7: a subscriber process that dies while the publisher waits counts
 * as served (the call returns 0), and the next sink still gets the batch
 * before the call returns.  With close_port, the first sink's port closes
 * instead: the same. */
static void sync_served_when_gone(struct harness *h, bool close_port)
{
	struct xshared *sh = h_shared(sizeof(*sh));
	struct sub_cfg s0 = { .sh = sh, .id = 0, .sock = h->sock, .key = "gone", .pull = true,
			      .hold = true };
	struct sub_cfg s1 = { .sh = sh, .id = 1, .sock = h->sock, .key = "gone" };
	static const struct xstep steps[] = {
		{ "gone", 1, SHN_NOTIFY_SYNC, -1, "bye" },
	};
	struct pub_cfg pc = { .sh = sh, .sock = h->sock, .steps = steps, .nsteps = 1 };
	pid_t subs[2];

	subs[0] = start_sub(&s0);
	subs[1] = start_sub(&s1);
	pid_t pub = h_fork(pub_child, &pc);
	atomic_store(&sh->pub.go, 1);
	/* the batch waits in the first sink's port; the publisher waits */
	wait_for(&sh->sub[0].narrived, 1, H_TIMEOUT_MS, "the batch reached the first sink");
	h_sleep_ms(100);
	assert_int_equal(atomic_load(&sh->pub.done), 0);
	assert_int_equal(atomic_load(&sh->sub[1].nseen), 0);

	if (close_port) {
		atomic_store(&sh->sub[0].cmd, CMD_CLOSE);
		wait_for(&sh->sub[0].ready, 2, H_TIMEOUT_MS, "the first sink closed its port");
	} else {
		kill(subs[0], SIGKILL);
		int st = h_wait(subs[0], H_TIMEOUT_MS);
		assert_true(st != -1 && WIFSIGNALED(st));
		subs[0] = -1;
	}
	wait_for(&sh->pub.done, 1, H_TIMEOUT_MS, "shn_notify(SYNC) returned after the sink went");
	if (sh->pub.result[0] != 0)
		fail_msg("shn_notify(SYNC): %d (%s), expected 0", sh->pub.result[0],
			 shn_strerror(sh->pub.result[0]));
	/* the second sink was served before the call returned */
	assert_int_equal(sh->pub.nseen_at[0][1], 1);
	assert_string_equal(sh->sub[1].seen[0], "bye");
	assert_int_equal(atomic_load(&sh->sub[0].nseen), 0);
	if (subs[0] < 0) {
		atomic_store(&sh->sub[1].cmd, CMD_STOP);
		h_wait_ok(subs[1], H_TIMEOUT_MS);
		h_wait_ok(pub, H_TIMEOUT_MS);
	} else {
		stop_all(sh, subs, 2, pub);
	}
}

static void test_sync_dead_subscriber_served(void **state)
{
	sync_served_when_gone(*state, false);
}

static void test_sync_closed_port_served(void **state)
{
	sync_served_when_gone(*state, true);
}

/* A broker that goes away must not hang a synchronous publisher:
 * it returns -ENOTCONN (rule 10). */
static void test_sync_broker_loss(void **state)
{
	struct harness *h = *state;
	struct xshared *sh = h_shared(sizeof(*sh));
	struct sub_cfg s0 = { .sh = sh, .id = 0, .sock = h->sock, .key = "bl", .pull = true,
			      .hold = true };
	static const struct xstep steps[] = {
		{ "bl", 1, SHN_NOTIFY_SYNC, -1, "x" },
	};
	struct pub_cfg pc = { .sh = sh, .sock = h->sock, .steps = steps, .nsteps = 1 };
	pid_t subs[1];

	subs[0] = start_sub(&s0);
	pid_t pub = h_fork(pub_child, &pc);
	atomic_store(&sh->pub.go, 1);
	wait_for(&sh->sub[0].narrived, 1, H_TIMEOUT_MS, "the batch reached the sink");
	assert_int_equal(atomic_load(&sh->pub.done), 0);
	h_kill_broker(h);
	wait_for(&sh->pub.done, 1, H_TIMEOUT_MS, "shn_notify(SYNC) returned after the broker died");
	if (sh->pub.result[0] != -ENOTCONN)
		fail_msg("shn_notify(SYNC) when the broker died: %d (%s), expected -ENOTCONN",
			 sh->pub.result[0], shn_strerror(sh->pub.result[0]));
	stop_all(sh, subs, 1, pub);
}

int main(int argc, char **argv)
{
	h_parse_args(argc, argv);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_sync_no_subscriber, h_setup, teardown),
		cmocka_unit_test_setup_teardown(test_sync_sink_consumed, h_setup, teardown),
		cmocka_unit_test_setup_teardown(test_sync_own_dispatcher, h_setup, teardown),
		cmocka_unit_test_setup_teardown(test_sync_many_waiters, h_setup, teardown),
		cmocka_unit_test_setup_teardown(test_sync_discontinue, h_setup, teardown),
		cmocka_unit_test_setup_teardown(test_sync_pull_port, h_setup, teardown),
		cmocka_unit_test_setup_teardown(test_sync_slow_sink_process, h_setup, teardown),
		cmocka_unit_test_setup_teardown(test_sync_slow_pull_process, h_setup, teardown),
		cmocka_unit_test_setup_teardown(test_sync_discontinue_two_processes, h_setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_sync_discontinue_repeated, h_setup, teardown),
		cmocka_unit_test_setup_teardown(test_sync_no_match_process, h_setup, teardown),
		cmocka_unit_test_setup_teardown(test_sync_no_match_mask, h_setup, teardown),
		cmocka_unit_test_setup_teardown(test_sync_timeout_delivery_goes_on, h_setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_sync_dead_subscriber_served, h_setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_sync_closed_port_served, h_setup, teardown),
		cmocka_unit_test_setup_teardown(test_sync_broker_loss, h_setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
