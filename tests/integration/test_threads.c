/* SPDX-License-Identifier: MIT */
/*
 * test_threads.c - what shmnotify.h promises about threads, tried with
 * threads (and meant to run under ThreadSanitizer: make test-tsan):
 *
 * - a client: several threads publish at once (blocking, SHN_NOTIFY_NONBLOCK,
 *   to keys nobody watches) while others subscribe, advise and unsubscribe,
 *   open and close ports, name the client and read its statistics; every
 *   batch arrives whole, the batches of one thread in order, none lost (the
 *   receiving port is SHN_OVERFLOW_BLOCK, so the publishers also take turns
 *   waiting for room);
 * - ports: a get on one port while another thread dispatches another, an
 *   advise sink added and removed on the dispatched port meanwhile;
 *   shn_port_unblock and shn_port_fd from another thread while a get
 *   blocks;
 * - a subscription: two threads ending the same one: one 0, one -ENOENT;
 * - fork() right after shn_connect: the child connects and publishes (its
 *   own watcher thread starts).  A library thread still starting when
 *   shn_connect returned could hold a lock of the runtime's allocator at
 *   the fork (AddressSanitizer's, in make test-asan), which the child then
 *   inherits locked forever: its own thread start hung on it
 *   (test_publishers failed that way under load, once in a few runs).
 */
#define _GNU_SOURCE
#include "harness.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <string.h>

#define PUBS 4
#define DEFAULT_PER_PUB 5000
#define D_EVERY 10           /* every 10th batch of a publisher also goes to "d" */

struct shared {
	shn_client *c;
	shn_port *p;             /* pull port, SHN_OVERFLOW_BLOCK, key "t" */
	shn_port *d;             /* dispatched port, an advise sink on "d" */
	shn_port *q;             /* a port nobody publishes to: its get blocks */
	shn_conn cp;
	int per_pub;
	_Atomic int pubs_done;
	_Atomic int stop;
	_Atomic int d_notes;     /* "d" notifications the sinks saw */
	_Atomic int churns;
	int pub_err[PUBS];
	char reader_err[200];
	char churn_err[200];
	int q_result;
};

struct pub_arg {
	struct shared *sh;
	uint32_t id;
};

static shn_notification mk(const char *key, const void *data, uint32_t len)
{
	shn_notification n = { .event = 1, .key = key, .key_len = (uint16_t)strlen(key),
			       .data = data, .data_len = len };
	return n;
}

static void *publisher(void *arg)
{
	struct pub_arg *a = arg;
	struct shared *sh = a->sh;

	for (uint32_t j = 0; j < (uint32_t)sh->per_pub; j++) {
		uint32_t v[2] = { a->id, j };
		shn_notification b[2] = { mk("t", v, sizeof(v)), mk("t", v, sizeof(v)) };
		unsigned flags = (j % 4 == 0) ? SHN_NOTIFY_NONBLOCK : 0;
		int r;

		while ((r = shn_notify(sh->c, b, 2, flags)) == -EAGAIN)
			sched_yield();   /* NONBLOCK on a full ring: try again */
		if (r == 0 && j % D_EVERY == 0) {
			shn_notification dn = mk("d", v, sizeof(v));
			r = shn_notify(sh->c, &dn, 1, 0);
		}
		if (r == 0) {
			shn_notification none = mk("nobody", NULL, 0);
			r = shn_notify(sh->c, &none, 1, SHN_NOTIFY_NONBLOCK);
		}
		if (r != 0) {
			sh->pub_err[a->id] = r;
			break;
		}
	}
	atomic_fetch_add(&sh->pubs_done, 1);
	return NULL;
}

/* Reads port p: every batch whole (two notes), each publisher's in order. */
static void *reader(void *arg)
{
	struct shared *sh = arg;
	uint32_t next[PUBS] = { 0 };
	uint32_t total = 0, want = (uint32_t)(PUBS * sh->per_pub);
	shn_notification out[16];

	while (total < want) {
		int n = shn_port_get(sh->p, out, 16, H_CHILD_TIMEOUT_MS);
		if (n < 0) {
			snprintf(sh->reader_err, sizeof(sh->reader_err),
				 "get: %d (%s) after %u batches", n, shn_strerror(n), total);
			return NULL;
		}
		if (n != 2 || out[0].batch_count != 2 || out[0].event != 1 ||
		    out[0].data_len != 8 || out[0].conn != sh->cp) {
			snprintf(sh->reader_err, sizeof(sh->reader_err),
				 "batch %u: %d notes, count %u, event 0x%x", total, n,
				 out[0].batch_count, out[0].event);
			return NULL;
		}
		uint32_t v[2];
		memcpy(v, out[0].data, sizeof(v));
		if (v[0] >= PUBS || v[1] != next[v[0]] || memcmp(out[1].data, v, 8) != 0) {
			snprintf(sh->reader_err, sizeof(sh->reader_err),
				 "publisher %u: batch %u, expected %u", v[0], v[1],
				 v[0] < PUBS ? next[v[0]] : 0);
			return NULL;
		}
		next[v[0]]++;
		total++;
	}
	return NULL;
}

static unsigned d_sink(void *ctx, const shn_notification *b, size_t n)
{
	struct shared *sh = ctx;

	for (size_t i = 0; i < n; i++)
		if (b[i].event == 1)
			atomic_fetch_add(&sh->d_notes, 1);
	return SHN_CALLBACK_CONTINUE;
}

static void *dispatcher(void *arg)
{
	struct shared *sh = arg;

	while (!atomic_load(&sh->stop)) {
		int r = shn_port_dispatch(sh->d, 100);
		if (r < 0 && r != -ETIMEDOUT)
			break;
	}
	return NULL;
}

/* Control requests on the same client while the others publish, read and
 * dispatch: filters added and removed (also an advise sink on the port the
 * dispatcher reads), ports opened and closed, the name, the statistics. */
static void *churn(void *arg)
{
	struct shared *sh = arg;
	int i = 0;

	while (atomic_load(&sh->pubs_done) < PUBS || i < 5) {
		shn_port *e = NULL;
		shn_conn ce = 0, cd = 0;
		char key[16], name[32];
		char *json = NULL;
		int r;

		snprintf(key, sizeof(key), "e%d", i);
		snprintf(name, sizeof(name), "churn %d", i);
		if ((r = shn_port_open(sh->c, NULL, &e)) != 0 ||
		    (r = shn_subscribe(e, key, strlen(key), SHN_EV_ALL, 0, &ce)) != 0 ||
		    (r = shn_advise(sh->d, "dx", 2, SHN_EV_ALL, 0, d_sink, sh, &cd)) != 0 ||
		    (r = shn_unsubscribe(sh->c, ce)) != 0 ||
		    (r = shn_unsubscribe(sh->c, cd)) != 0 || (r = shn_set_name(sh->c, name)) != 0 ||
		    (r = shn_stats_json(sh->c, &json)) <= 0 || (r = shn_port_close(e)) != 0) {
			snprintf(sh->churn_err, sizeof(sh->churn_err), "round %d: %d (%s)", i, r,
				 shn_strerror(r));
			free(json);
			return NULL;
		}
		free(json);
		atomic_fetch_add(&sh->churns, 1);
		i++;
	}
	return NULL;
}

static void *blocked_get(void *arg)
{
	struct shared *sh = arg;
	shn_notification out[4];

	sh->q_result = shn_port_get(sh->q, out, 4, -1);   /* until unblocked */
	return NULL;
}

static void test_one_client_many_threads(void **state)
{
	struct harness *h = *state;
	shn_port_options block = { .capacity = 8192, .overflow = SHN_OVERFLOW_BLOCK };
	struct shared sh = { .per_pub = DEFAULT_PER_PUB };
	struct pub_arg pa[PUBS];
	pthread_t tp[PUBS], tr, td, tc, tq;
	shn_conn cd, cq;
	const char *env = getenv("SHN_TEST_THREADS_PER_PUB");

	if (env != NULL && atoi(env) > 0)
		sh.per_pub = atoi(env);
	sh.c = h_connect(h);
	assert_int_equal(shn_port_open(sh.c, &block, &sh.p), 0);
	assert_int_equal(shn_subscribe(sh.p, "t", 1, SHN_EV_ALL, 0, &sh.cp), 0);
	assert_int_equal(shn_port_open(sh.c, NULL, &sh.d), 0);
	assert_int_equal(shn_advise(sh.d, "d", 1, SHN_EV_ALL, 0, d_sink, &sh, &cd), 0);
	sh.q = h_port_sub(sh.c, 0, "q", 1, SHN_EV_ALL, &cq);

	assert_int_equal(pthread_create(&tq, NULL, blocked_get, &sh), 0);
	assert_int_equal(pthread_create(&tr, NULL, reader, &sh), 0);
	assert_int_equal(pthread_create(&td, NULL, dispatcher, &sh), 0);
	assert_int_equal(pthread_create(&tc, NULL, churn, &sh), 0);
	for (uint32_t i = 0; i < PUBS; i++) {
		pa[i] = (struct pub_arg){ .sh = &sh, .id = i };
		assert_int_equal(pthread_create(&tp[i], NULL, publisher, &pa[i]), 0);
	}
	/* the descriptor of a port another thread blocks on, from this one */
	assert_true(shn_port_fd(sh.q) >= 0);
	for (int i = 0; i < PUBS; i++)
		pthread_join(tp[i], NULL);
	pthread_join(tr, NULL);
	pthread_join(tc, NULL);
	/* every "d" batch reaches the dispatcher's sink */
	int want_d = PUBS * ((sh.per_pub + D_EVERY - 1) / D_EVERY);
	int64_t end = h_now_ms() + H_TIMEOUT_MS;
	while (atomic_load(&sh.d_notes) < want_d && h_now_ms() < end)
		h_sleep_ms(5);
	atomic_store(&sh.stop, 1);
	pthread_join(td, NULL);
	/* a get blocked in another thread all along: unblocked from this one */
	assert_int_equal(shn_port_unblock(sh.q), 0);
	pthread_join(tq, NULL);

	for (int i = 0; i < PUBS; i++)
		if (sh.pub_err[i] != 0)
			fail_msg("publisher %d: %d (%s)", i, sh.pub_err[i],
				 shn_strerror(sh.pub_err[i]));
	if (sh.reader_err[0])
		fail_msg("reader: %s", sh.reader_err);
	if (sh.churn_err[0])
		fail_msg("churn: %s", sh.churn_err);
	assert_int_equal(atomic_load(&sh.d_notes), want_d);
	assert_true(atomic_load(&sh.churns) >= 5);
	assert_int_equal(sh.q_result, -ECANCELED);
	shn_notification out[4];
	assert_int_equal(shn_port_get(sh.p, out, 4, 0), -ETIMEDOUT);
	print_message("threads: %d publishers x %d batches, %d control rounds meanwhile\n",
		      PUBS, sh.per_pub, atomic_load(&sh.churns));
	h_disconnect(sh.c);
}

/* ---- one subscription ended by two threads at once ----------------------- */

struct race {
	shn_client *c;
	shn_conn conn;
	pthread_barrier_t go;
	int result[2];
};

struct race_arg {
	struct race *r;
	int i;
};

static void *unsub(void *arg)
{
	struct race_arg *a = arg;

	pthread_barrier_wait(&a->r->go);
	a->r->result[a->i] = shn_unsubscribe(a->r->c, a->r->conn);
	return NULL;
}

static void test_unsubscribe_race(void **state)
{
	struct harness *h = *state;
	struct race r;
	shn_notification out[4];
	shn_port *p = NULL;

	r.c = h_connect(h);
	assert_int_equal(shn_port_open(r.c, NULL, &p), 0);
	for (int round = 0; round < 50; round++) {
		struct race_arg a[2] = { { &r, 0 }, { &r, 1 } };
		pthread_t t[2];

		assert_int_equal(shn_subscribe(p, "r", 1, SHN_EV_ALL, 0, &r.conn), 0);
		pthread_barrier_init(&r.go, NULL, 2);
		for (int i = 0; i < 2; i++)
			assert_int_equal(pthread_create(&t[i], NULL, unsub, &a[i]), 0);
		for (int i = 0; i < 2; i++)
			pthread_join(t[i], NULL);
		pthread_barrier_destroy(&r.go);
		/* exactly one ended it */
		assert_true((r.result[0] == 0 && r.result[1] == -ENOENT) ||
			    (r.result[0] == -ENOENT && r.result[1] == 0));
		/* and the port gets one HANDLE_CLOSE for it */
		assert_int_equal(h_get(p, out, 4), 1);
		assert_int_equal(out[0].event, SHN_EV_HANDLE_CLOSE);
		assert_int_equal(out[0].conn, r.conn);
	}
	assert_int_equal(shn_port_get(p, out, 4, 0), -ETIMEDOUT);
	h_disconnect(r.c);
}

/* ---- fork right after connect ------------------------------------------ */

static int child_connect_publish(void *arg)
{
	const char *sock = arg;
	shn_client *c = NULL;
	shn_notification n;

	memset(&n, 0, sizeof(n));
	n.key = "forked";
	n.key_len = 6;
	n.event = 1;
	CHILD_CHECK_EQ(shn_connect(sock, &c), 0);
	CHILD_CHECK_EQ(shn_notify(c, &n, 1, 0), 0);
	shn_disconnect(c);
	return 0;
}

static void test_fork_after_connect(void **state)
{
	struct harness *h = *state;
	shn_notification out[4];
	shn_conn conn;
	shn_client *sub = h_connect(h);
	shn_port *p = h_port_sub(sub, 0, "forked", 6, SHN_EV_ALL, &conn);

	for (int i = 0; i < 300; i++) {
		shn_client *c = h_connect(h);   /* its watcher thread just started */
		pid_t pid = h_fork(child_connect_publish, (void *)h->sock);

		h_wait_ok(pid, 10000);
		assert_int_equal(h_get(p, out, 4), 1);
		assert_int_equal(out[0].sender_pid, pid);
		h_disconnect(c);
	}
	h_disconnect(sub);
}

int main(int argc, char **argv)
{
	h_parse_args(argc, argv);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_one_client_many_threads, h_setup, h_teardown),
		cmocka_unit_test_setup_teardown(test_unsubscribe_race, h_setup, h_teardown),
		cmocka_unit_test_setup_teardown(test_fork_after_connect, h_setup, h_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
