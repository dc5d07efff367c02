/* SPDX-License-Identifier: MIT */
/*
 * test_interest.c - "nobody listening costs nothing" (docs/design.md,
 * "Interest summary"; MAPI's "Supporting Event Notification": if no advise
 * sinks are registered, MAPI skips the call): publishing to a key nobody
 * subscribed to costs the broker (almost) no CPU, measured as utime + stime
 * from /proc/PID/stat of the broker; and the interest summary never drops a
 * notification that has a subscriber, however soon after the subscription it
 * is published.
 *
 * The CPU comparison is a ratio of clock ticks, not a timing: N
 * notifications to an unwatched key must cost the broker less than 5% of
 * what N to a watched key cost (the watched run's subscriber drains
 * everything).  N starts at 1,000,000 ($SHN_TEST_INTEREST_NOTES; an eighth
 * of it in sanitizer builds, where the broker is slower anyway) and doubles
 * until the watched run costs at least MIN_TICKS ticks, so that one tick of
 * rounding in the unwatched run cannot fail the test.
 */
#define _GNU_SOURCE
#include "harness.h"

#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>

#define BATCH 64
#define MIN_TICKS 40            /* watched cost: 5% of it is 2 ticks */
#define MAX_NOTES (64u << 20)   /* give up doubling here */

enum { CMD_IDLE, CMD_RUN, CMD_EXIT };

struct cpu_shared {
	_Atomic int cmd;            /* test -> publisher */
	_Atomic int runs_done;      /* publisher -> test */
	_Atomic int run;            /* the run number the test asked for */
	uint64_t notes;             /* how many to publish in this run */
	char key[32];               /* to which key */
	_Atomic int failed;
};

struct cpu_ctx {
	const char *sock;
	struct cpu_shared *sh;
};

/* The publisher process: each run publishes sh->notes notifications to
 * sh->key in batches of BATCH, then one marker to the watched key "mark":
 * per-publisher order makes its arrival mean that the broker is done with
 * the run. */
static int child_cpu_pub(void *arg)
{
	struct cpu_ctx *x = arg;
	struct cpu_shared *sh = x->sh;
	shn_notification b[BATCH];
	uint64_t v[BATCH];
	shn_client *c = NULL;
	int done = 0;

	/* the broker's cost of a watched key is what this compares: the
	 * direct path would take that cost out of the broker */
	setenv("SHMNOTIFY_DIRECT", "off", 1);
	CHILD_CHECK_EQ(shn_connect(x->sock, &c), 0);
	for (;;) {
		while (atomic_load(&sh->cmd) == CMD_IDLE || atomic_load(&sh->run) == done) {
			if (atomic_load(&sh->cmd) == CMD_EXIT)
				goto out;
			h_sleep_ms(1);
		}
		uint16_t klen = (uint16_t)strlen(sh->key);
		for (uint64_t i = 0; i < sh->notes; i += BATCH) {
			size_t n = sh->notes - i < BATCH ? (size_t)(sh->notes - i) : BATCH;
			for (size_t k = 0; k < n; k++) {
				v[k] = i + k;
				b[k] = (shn_notification){ .event = 1, .key = sh->key, .key_len = klen,
							   .data = &v[k], .data_len = sizeof(v[k]) };
			}
			int r = shn_notify(c, b, n, 0);
			if (r != 0) {
				fprintf(stderr, "publisher: shn_notify: %d (%s)\n", r, shn_strerror(r));
				atomic_store(&sh->failed, 1);
				_exit(1);
			}
		}
		shn_notification mark = { .event = 1, .key = "mark", .key_len = 4, .data = "m",
					  .data_len = 1 };
		CHILD_CHECK_EQ(shn_notify(c, &mark, 1, 0), 0);
		done = atomic_load(&sh->run);
		atomic_store(&sh->runs_done, done);
	}
out:
	shn_disconnect(c);
	return 0;
}

static shn_client *stats_client;   /* for the broker's stats on a stall */

static uint64_t env_notes(void)
{
	const char *e = getenv("SHN_TEST_INTEREST_NOTES");
	uint64_t n = 1000000;

	if (e != NULL && *e != '\0')
		n = strtoull(e, NULL, 10);
#ifdef SHN_TEST_SANITIZED
	else
		n /= 8;
#endif
	return n < BATCH ? BATCH : n;
}

/* Wait for the marker on mp (and count what reaches wp meanwhile, checking
 * order): returns the notifications wp received. */
static uint64_t run_once(struct cpu_shared *sh, pid_t pub, shn_port *wp, shn_port *mp,
			 const char *key, uint64_t notes)
{
	static shn_notification out[256];
	uint64_t got = 0;
	bool marked = false;
	/* bounded by progress: H_TIMEOUT_MS without a notification fails */
	int64_t end = h_now_ms() + H_TIMEOUT_MS;

	snprintf(sh->key, sizeof(sh->key), "%s", key);
	sh->notes = notes;
	int run = atomic_load(&sh->run) + 1;
	atomic_store(&sh->run, run);
	atomic_store(&sh->cmd, CMD_RUN);
	while (!marked) {
		if (h_now_ms() > end) {
			char *js = h_stats(stats_client);
			fprintf(stderr, "broker stats: %s\n", js);
			free(js);
			fail_msg("run of %llu to '%s': %llu received, no progress and no marker "
				 "for %d ms (publisher state %c)", (unsigned long long)notes, key,
				 (unsigned long long)got, H_TIMEOUT_MS, h_proc_state(pub));
		}
		if (atomic_load(&sh->failed) || kill(pub, 0) != 0)
			fail_msg("the publisher failed");
		if (wp != NULL) {
			int n = shn_port_get(wp, out, 256, 0);
			if (n > 0) {
				end = h_now_ms() + H_TIMEOUT_MS;
				for (int i = 0; i < n; i++) {
					uint64_t v;
					if (out[i].event == SHN_EV_OVERFLOW)
						fail_msg("the watched port lost notifications");
					memcpy(&v, out[i].data, sizeof(v));
					if (v != got)
						fail_msg("watched: %llu after %llu", (unsigned long long)v,
							 (unsigned long long)got);
					got++;
				}
				continue;
			}
			assert_int_equal(n, -ETIMEDOUT);
		}
		shn_notification m[4];
		int n = shn_port_get(mp, m, 4, wp != NULL ? 0 : 100);
		if (n > 0) {
			assert_int_equal(n, 1);
			marked = true;
		} else {
			assert_int_equal(n, -ETIMEDOUT);
		}
	}
	/* the marker came after the run: the watched port has it all */
	if (wp != NULL) {
		while (got < notes) {
			int n = h_get(wp, out, 256);
			for (int i = 0; i < n; i++) {
				uint64_t v;
				memcpy(&v, out[i].data, sizeof(v));
				assert_int_equal(v, got);
				got++;
			}
		}
		assert_int_equal(shn_port_get(wp, out, 256, 0), -ETIMEDOUT);
	}
	int64_t wend = h_now_ms() + H_TIMEOUT_MS;
	while (atomic_load(&sh->runs_done) != run) {
		if (h_now_ms() > wend)
			fail_msg("the publisher did not finish its run");
		h_sleep_ms(1);
	}
	return got;
}

static long long schedstat_ns(pid_t pid)
{
	char path[64];
	long long ns = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/schedstat", (int)pid);
	f = fopen(path, "r");
	if (f == NULL)
		return -1;
	if (fscanf(f, "%lld", &ns) != 1)
		ns = -1;
	fclose(f);
	return ns;
}

static void test_unwatched_costs_nothing(void **state)
{
	struct harness *h = *state;
	struct cpu_shared *sh = h_shared(sizeof(*sh));
	struct cpu_ctx x = { .sock = h->sock, .sh = sh };
	shn_port_options big = { .capacity = 4u << 20, .overflow = SHN_OVERFLOW_BLOCK };
	shn_port *wp = NULL, *mp = NULL;
	shn_conn wc = 0, mc = 0, oc = 0;
	pid_t broker = h->broker;

	pid_t pub = h_fork(child_cpu_pub, &x);
	shn_client *c = h_connect(h);
	stats_client = c;
	/* the watched key: a subscriber that drains everything (back-pressure,
	 * so the broker delivers every one of them) */
	assert_int_equal(shn_port_open(c, &big, &wp), 0);
	assert_int_equal(shn_subscribe(wp, "watched", 7, SHN_EV_ALL, 0, &wc), 0);
	assert_int_equal(shn_port_open(c, NULL, &mp), 0);
	assert_int_equal(shn_subscribe(mp, "mark", 4, SHN_EV_ALL, 0, &mc), 0);
	/* a subscription on another key of the unwatched key's port: keys
	 * matter, not whether the broker has subscribers at all */
	assert_int_equal(shn_subscribe(mp, "other", 5, SHN_EV_ALL, 0, &oc), 0);

	uint64_t notes = env_notes();
	long long tw, tu;
	long long nsw, nsu;
	for (;;) {
		long long t0 = h_cpu_ticks(broker), s0 = schedstat_ns(broker);
		assert_true(t0 >= 0);
		uint64_t got = run_once(sh, pub, wp, mp, "watched", notes);
		tw = h_cpu_ticks(broker) - t0;
		nsw = schedstat_ns(broker) - s0;
		assert_int_equal(got, notes);
		fprintf(stderr, "watched:   %llu notifications, broker %lld ticks (%.1f ms run time)\n",
			(unsigned long long)notes, tw, (double)nsw / 1e6);
		if (tw >= MIN_TICKS || notes >= MAX_NOTES)
			break;
		/* too little to measure: more of both, aiming at 1.5 x MIN_TICKS */
		uint64_t scale = tw > 0 ? (uint64_t)(MIN_TICKS * 3 / 2 / tw) + 1 : 16;
		notes *= scale < 2 ? 2 : scale > 16 ? 16 : scale;
	}
	if (tw < MIN_TICKS)
		fail_msg("%llu watched notifications cost the broker only %lld ticks: cannot "
			 "compare", (unsigned long long)notes, tw);

	long long t0 = h_cpu_ticks(broker), s0 = schedstat_ns(broker);
	uint64_t got = run_once(sh, pub, NULL, mp, "unwatched", notes);
	tu = h_cpu_ticks(broker) - t0;
	nsu = schedstat_ns(broker) - s0;
	assert_int_equal(got, 0);
	fprintf(stderr, "unwatched: %llu notifications, broker %lld ticks (%.1f ms run time)\n",
		(unsigned long long)notes, tu, (double)nsu / 1e6);
	/* below 5% of the watched cost */
	if (tu * 20 >= tw)
		fail_msg("%llu notifications to an unwatched key cost the broker %lld ticks, "
			 "%.1f%% of the %lld ticks the same to a watched key cost (limit 5%%)",
			 (unsigned long long)notes, tu, 100.0 * (double)tu / (double)tw, tw);
	/* and nothing of it reached the other subscriptions */
	shn_notification out[4];
	assert_int_equal(shn_port_get(mp, out, 4, 0), -ETIMEDOUT);

	atomic_store(&sh->cmd, CMD_EXIT);
	h_wait_ok(pub, H_CHILD_TIMEOUT_MS);
	h_disconnect(c);
}

/* ---- the summary never loses a notification that has a subscriber ------- */

#define ROUNDS 300

struct race_ctx {
	const char *sock;
	struct h_chan go;     /* test -> publisher: the round's key is subscribed */
	struct h_chan back;   /* publisher -> test: published */
};

static void round_key(char *buf, size_t len, int i)
{
	snprintf(buf, len, "fresh-%d", i);
}

static int child_race_pub(void *arg)
{
	struct race_ctx *x = arg;
	shn_client *c = NULL;
	char key[32];
	uint8_t b;

	CHILD_CHECK_EQ(shn_connect(x->sock, &c), 0);
	for (int i = 0; i < ROUNDS; i++) {
		CHILD_CHECK(h_recv(&x->go, &b, H_TIMEOUT_MS));
		round_key(key, sizeof(key), i);
		/* published the moment the subscriber's shn_subscribe returned */
		shn_notification n = { .event = 1, .key = key, .key_len = (uint16_t)strlen(key),
				       .data = &i, .data_len = sizeof(i) };
		CHILD_CHECK_EQ(shn_notify(c, &n, 1, 0), 0);
		CHILD_CHECK(h_send(&x->back, 1));
	}
	shn_disconnect(c);
	return 0;
}

/* Rule 8 through the interest summary: a subscription to a brand-new key,
 * then at once a publish from another process that started before it (its
 * client mapped the summary long ago): delivered every time.  Between
 * rounds the key's last subscription ends, so its bit is cleared again. */
static void test_new_subscription_never_missed(void **state)
{
	struct harness *h = *state;
	static struct race_ctx x;
	shn_notification out[4];
	shn_port *p = NULL;
	char key[32];
	uint8_t b;

	x.sock = h->sock;
	h_chan_init(&x.go);
	h_chan_init(&x.back);
	pid_t pid = h_fork(child_race_pub, &x);
	shn_client *c = h_connect(h);
	assert_int_equal(shn_port_open(c, NULL, &p), 0);
	for (int i = 0; i < ROUNDS; i++) {
		shn_conn conn = 0;
		round_key(key, sizeof(key), i);
		assert_int_equal(shn_subscribe(p, key, strlen(key), SHN_EV_ALL, 0, &conn), 0);
		assert_true(h_send(&x.go, 1));
		if (!h_recv(&x.back, &b, H_TIMEOUT_MS))
			fail_msg("round %d: the publisher did not publish", i);
		int n = shn_port_get(p, out, 4, H_TIMEOUT_MS);
		if (n != 1)
			fail_msg("round %d: the notification to a key subscribed just before was "
				 "not delivered (%d: %s)", i, n, shn_strerror(n));
		int v;
		memcpy(&v, out[0].data, sizeof(v));
		assert_int_equal(v, i);
		assert_int_equal(out[0].conn, conn);
		assert_int_equal(shn_unsubscribe(c, conn), 0);
		assert_int_equal(h_get(p, out, 4), 1);
		assert_int_equal(out[0].event, SHN_EV_HANDLE_CLOSE);
		assert_int_equal(shn_port_get(p, out, 4, 0), -ETIMEDOUT);
	}
	h_wait_ok(pid, H_CHILD_TIMEOUT_MS);
	h_chan_close(&x.go);
	h_chan_close(&x.back);
	h_disconnect(c);
}

/* An any-key subscription wants every key: nothing is skipped, and once it
 * ends, nothing more arrives. */
static void test_any_key_wants_everything(void **state)
{
	struct harness *h = *state;
	shn_notification out[4];
	shn_conn conn;
	char key[32];

	shn_client *pubc = h_connect(h);
	shn_client *c = h_connect(h);
	shn_port *p = h_port_sub(c, 0, NULL, 0, SHN_EV_ALL, &conn);
	for (int i = 0; i < 100; i++) {
		snprintf(key, sizeof(key), "any-%d", i * 7919);
		shn_notification n = { .event = 1, .key = key, .key_len = (uint16_t)strlen(key),
				       .data = &i, .data_len = sizeof(i) };
		assert_int_equal(shn_notify(pubc, &n, 1, 0), 0);
		assert_int_equal(h_get(p, out, 4), 1);
		assert_int_equal(out[0].key_len, strlen(key));
		assert_memory_equal(out[0].key, key, strlen(key));
	}
	assert_int_equal(shn_unsubscribe(c, conn), 0);
	assert_int_equal(h_get(p, out, 4), 1);
	assert_int_equal(out[0].event, SHN_EV_HANDLE_CLOSE);
	shn_notification n = { .event = 1, .key = "any-late", .key_len = 8 };
	assert_int_equal(shn_notify(pubc, &n, 1, 0), 0);
	assert_int_equal(shn_port_get(p, out, 4, 200), -ETIMEDOUT);
	h_disconnect(c);
	h_disconnect(pubc);
}

int main(int argc, char **argv)
{
	h_parse_args(argc, argv);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_new_subscription_never_missed, h_setup,
						h_teardown),
		cmocka_unit_test_setup_teardown(test_any_key_wants_everything, h_setup, h_teardown),
		cmocka_unit_test_setup_teardown(test_unwatched_costs_nothing, h_setup, h_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
