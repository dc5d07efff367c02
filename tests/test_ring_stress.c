/* SPDX-License-Identifier: MIT */
/*
 * test_ring_stress.c - two processes over one shared-memory ring.
 *
 * A forked producer writes millions of variable-length records (sequence
 * number, batch position, XXH3 checksum of a payload derived from the
 * sequence number) into a ring laid out like a publish ring (shm/proto.h:
 * prod line at 0, cons line at 64, data at SHN_RING_HDR_SIZE) in a sealed
 * memfd segment, publishing batches of random size.  The consumer (this
 * process) checks: no loss, no reordering, no torn record, no batch seen in
 * part.
 *
 * Both sides really sleep: the consumer on an eventfd after
 * shn_ring_prepare_sleep(), the producer (ring full) on another after
 * shn_ring_prepare_wait(); each wakes the other only when shn_wake_needed()
 * says so.  A lost wake-up leaves a side asleep: its 10 s poll timeout fires
 * and the test fails instead of hanging.
 *
 * SHN_STRESS_RECORDS raises (or lowers) the record count (default 3000000).
 */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#include "shm/proto.h"
#include "shm/ring.h"
#include "shm/segment.h"

#define REC_TYPE 9u
#define POLL_TIMEOUT_MS 10000
#define BIG_MAX 8192u

struct srec {
	struct shn_rec_hdr h;
	uint64_t seq;
	uint32_t batch_idx;
	uint32_t batch_cnt;
	uint64_t sum;
	/* payload follows */
};
_Static_assert(sizeof(struct srec) == 32, "srec");

/* exit codes of the producer */
enum {
	P_OK = 0,
	P_BADMSG = 10,
	P_LOST_WAKEUP = 11,
	P_SYSCALL = 12,
};

static pid_t child_pid = -1;

static uint64_t mix(uint64_t z)
{
	z += 0x9e3779b97f4a7c15ull;
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* Record length for a sequence number: mostly small, sometimes big. */
static uint32_t rec_len(uint64_t seq, uint32_t cap)
{
	uint64_t r = mix(seq ^ 0xabcdefull);
	uint32_t big = BIG_MAX < cap / 4 ? BIG_MAX : cap / 4;

	if (r % 997 == 0)
		return (uint32_t)SHN_ALIGN8(sizeof(struct srec) + 8 + (r >> 20) % (big - 48));
	return (uint32_t)(sizeof(struct srec) + 8 + 8 * ((r >> 12) % 40));
}

static void fill_payload(uint8_t *p, uint32_t n, uint64_t seq)
{
	uint64_t s = seq * 0x100000001b3ull;

	for (uint32_t i = 0; i < n; i += 8) {
		uint64_t w = mix(s + i);
		memcpy(p + i, &w, 8);
	}
}

/* Busy-wait about ns nanoseconds.  Used to widen the race windows of the
 * sleep protocol (between "found nothing" and prepare_sleep/prepare_wait),
 * so that a protocol without its re-check loses a wake-up here quickly. */
static void spin_ns(uint64_t ns)
{
	struct timespec a, b;

	clock_gettime(CLOCK_MONOTONIC, &a);
	do
		clock_gettime(CLOCK_MONOTONIC, &b);
	while ((uint64_t)(b.tv_sec - a.tv_sec) * 1000000000ull + (uint64_t)b.tv_nsec -
		       (uint64_t)a.tv_nsec < ns);
}

static int wait_efd(int efd)
{
	struct pollfd pfd = { .fd = efd, .events = POLLIN };
	uint64_t v;
	int r;

	do
		r = poll(&pfd, 1, POLL_TIMEOUT_MS);
	while (r < 0 && errno == EINTR);
	if (r == 0)
		return -ETIMEDOUT;
	if (r < 0)
		return -errno;
	if (read(efd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		return -errno;
	return 0;
}

static void ring_efd(int efd)
{
	uint64_t one = 1;

	if (write(efd, &one, sizeof(one)) != sizeof(one))
		_exit(P_SYSCALL);
}

struct stress_cfg {
	uint32_t cap;
	uint64_t records;
	unsigned max_batch;
};

/* The producer: runs in the child, reports by exit status. */
static int producer(struct shn_segment *seg, const struct stress_cfg *cfg, int efd_cons,
		    int efd_prod)
{
	struct shn_ring r;
	struct shn_ring_prod *prod = (void *)((uint8_t *)seg->addr + SHN_PUB_PROD_OFF);
	struct shn_ring_cons *cons = (void *)((uint8_t *)seg->addr + SHN_PUB_CONS_OFF);
	uint64_t rng = 0x1234567ull, seq = 1, waits = 0, wakes = 0;
	int err;

	alarm(115); /* last resort: never outlive ctest's timeout */
	shn_ring_init_view(&r, prod, cons, (uint8_t *)seg->addr + SHN_RING_HDR_SIZE, cfg->cap);
	while (seq <= cfg->records) {
		rng = mix(rng);
		unsigned want = 1 + (unsigned)(rng % cfg->max_batch);
		unsigned n = 0;
		uint32_t bytes = 0;
		/* choose the batch: at most cap/4 bytes (so it always fits) */
		while (n < want && seq + n <= cfg->records) {
			uint32_t l = rec_len(seq + n, cfg->cap);
			if (n > 0 && bytes + l > cfg->cap / 4)
				break;
			bytes += l;
			n++;
		}
		for (unsigned i = 0; i < n; i++) {
			uint64_t s = seq + i;
			uint32_t len = rec_len(s, cfg->cap);
			uint8_t *p;

			while ((p = shn_ring_reserve(&r, len, &err)) == NULL) {
				if (err)
					return P_BADMSG;
				rng = mix(rng);
				if (rng % 4 == 0)
					spin_ns((rng >> 8) % 20000);
				if (shn_ring_prepare_wait(&r, len, &err)) {
					waits++;
					if (wait_efd(efd_prod) < 0)
						return P_LOST_WAKEUP;
					shn_ring_finish_wait(&r);
				} else if (err) {
					return P_BADMSG;
				}
			}
			struct srec h = {
				.h = { .len = len, .type = REC_TYPE, .flags = 0 },
				.seq = s,
				.batch_idx = i,
				.batch_cnt = n,
			};
			uint32_t plen = len - (uint32_t)sizeof(h);
			fill_payload(p + sizeof(h), plen, s);
			h.sum = XXH3_64bits_withSeed(p + sizeof(h), plen, s);
			memcpy(p, &h, sizeof(h));
			shn_ring_commit(&r, len);
		}
		seq += n;
		shn_ring_publish(&r);
		if (shn_wake_needed(&cons->sleep_seq, &r.woke_sleep_seq)) {
			wakes++;
			ring_efd(efd_cons);
		}
		/* now and then stop for a moment so the consumer runs dry and
		 * sleeps: both wake-up paths get exercised whatever the speeds */
		if ((rng >> 40) % 4096 == 0) {
			struct timespec ts = { 0, 200000 };
			nanosleep(&ts, NULL);
		}
	}
	fprintf(stderr, "producer: %llu records, %llu waits for room, %llu consumer wake-ups\n",
		(unsigned long long)(seq - 1), (unsigned long long)waits,
		(unsigned long long)wakes);
	return P_OK;
}

static void kill_child(void)
{
	if (child_pid > 0) {
		kill(child_pid, SIGKILL);
		waitpid(child_pid, NULL, 0);
		child_pid = -1;
	}
}

static int teardown(void **state)
{
	(void)state;
	kill_child();
	return 0;
}

/* Wait for the child, at most timeout_ms; returns its status or -1. */
static int reap_child(int timeout_ms)
{
	int st;

	for (int waited = 0; waited <= timeout_ms; waited += 10) {
		pid_t r = waitpid(child_pid, &st, WNOHANG);
		if (r == child_pid) {
			child_pid = -1;
			return st;
		}
		struct timespec ts = { 0, 10 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
	return -1;
}

static void run_stress(const struct stress_cfg *cfg)
{
	struct shn_segment seg;
	struct shn_ring r;
	int efd_cons, efd_prod;

	assert_int_equal(shn_segment_create(&seg, "shn-stress", SHN_RING_HDR_SIZE + cfg->cap), 0);
	struct shn_ring_prod *prod = (void *)((uint8_t *)seg.addr + SHN_PUB_PROD_OFF);
	struct shn_ring_cons *cons = (void *)((uint8_t *)seg.addr + SHN_PUB_CONS_OFF);
	prod->capacity = cfg->cap;
	prod->magic = SHN_RING_MAGIC;
	efd_cons = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	efd_prod = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	assert_true(efd_cons >= 0 && efd_prod >= 0);

	fflush(NULL);
	child_pid = fork();
	assert_true(child_pid >= 0);
	if (child_pid == 0)
		_exit(producer(&seg, cfg, efd_cons, efd_prod));

	shn_ring_init_view(&r, prod, cons, (uint8_t *)seg.addr + SHN_RING_HDR_SIZE, cfg->cap);
	uint64_t expect = 1, sleeps = 0, wakes = 0, unreleased = 0, crng = 42;
	uint32_t expect_idx = 0, cur_cnt = 0;
	uint8_t *payload = malloc(BIG_MAX + 64);
	assert_non_null(payload);

	while (expect <= cfg->records) {
		const uint8_t *rec = NULL;
		uint32_t len = 0;
		int ret = shn_ring_next(&r, &rec, &len);

		if (ret < 0)
			fail_msg("shn_ring_next: %d at seq %llu", ret, (unsigned long long)expect);
		if (ret == 0) {
			if (expect_idx != 0)
				fail_msg("batch seen in part: seq %llu index %u of %u not published",
					 (unsigned long long)expect, expect_idx, cur_cnt);
			shn_ring_release(&r);
			unreleased = 0;
			if (shn_wake_needed(&prod->wait_seq, &r.woke_wait_seq)) {
				wakes++;
				uint64_t one = 1;
				assert_int_equal(write(efd_prod, &one, 8), 8);
			}
			crng = mix(crng);
			if (crng % 4 == 0)
				spin_ns((crng >> 8) % 20000);
			if (shn_ring_prepare_sleep(&r)) {
				sleeps++;
				int w = wait_efd(efd_cons);
				if (w == -ETIMEDOUT)
					fail_msg("lost wake-up: consumer slept %d ms at seq %llu "
						 "(producer tail %llu, head %llu, producer "
						 "wait_seq %u: %s)",
						 POLL_TIMEOUT_MS, (unsigned long long)expect,
						 (unsigned long long)atomic_load(&prod->tail),
						 (unsigned long long)r.head,
						 atomic_load(&prod->wait_seq),
						 (atomic_load(&prod->wait_seq) & 1u)
							 ? "producer asleep waiting for room"
							 : "producer awake");
				assert_int_equal(w, 0);
				shn_ring_finish_sleep(&r);
			}
			continue;
		}
		/* copy the header once: the producer could still be writing
		 * (it must not be), so never re-read shared memory */
		struct srec h;
		assert_true(len >= sizeof(h));
		memcpy(&h, rec, sizeof(h));
		if (h.seq != expect)
			fail_msg("got seq %llu, expected %llu", (unsigned long long)h.seq,
				 (unsigned long long)expect);
		assert_int_equal(h.h.type, REC_TYPE);
		assert_int_equal(len, rec_len(expect, cfg->cap));
		if (expect_idx == 0) {
			assert_int_equal(h.batch_idx, 0);
			assert_true(h.batch_cnt >= 1 && h.batch_cnt <= cfg->max_batch);
			cur_cnt = h.batch_cnt;
		} else {
			assert_int_equal(h.batch_idx, expect_idx);
			assert_int_equal(h.batch_cnt, cur_cnt);
		}
		uint32_t plen = len - (uint32_t)sizeof(h);
		memcpy(payload, rec + sizeof(h), plen);
		if (XXH3_64bits_withSeed(payload, plen, h.seq) != h.sum)
			fail_msg("checksum mismatch at seq %llu", (unsigned long long)h.seq);
		uint64_t w0;
		memcpy(&w0, payload, 8);
		assert_true(w0 == mix(h.seq * 0x100000001b3ull));
		shn_ring_consume(&r, len);
		expect++;
		if (++expect_idx == cur_cnt)
			expect_idx = 0;
		unreleased += len;
		if (unreleased >= cfg->cap / 8) {
			shn_ring_release(&r);
			unreleased = 0;
			if (shn_wake_needed(&prod->wait_seq, &r.woke_wait_seq)) {
				wakes++;
				uint64_t one = 1;
				assert_int_equal(write(efd_prod, &one, 8), 8);
			}
		}
	}
	shn_ring_release(&r);
	if (shn_wake_needed(&prod->wait_seq, &r.woke_wait_seq)) {
		uint64_t one = 1;
		assert_int_equal(write(efd_prod, &one, 8), 8);
	}
	free(payload);

	int st = reap_child(POLL_TIMEOUT_MS + 2000);
	if (st == -1)
		fail_msg("producer did not exit");
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), P_OK);
	/* nothing extra: the ring is empty and every byte was consumed */
	const uint8_t *rec = NULL;
	uint32_t len = 0;
	assert_int_equal(shn_ring_next(&r, &rec, &len), 0);
	assert_int_equal(atomic_load(&cons->head), atomic_load(&prod->tail));
	fprintf(stderr, "consumer: %llu records, %llu sleeps, %llu producer wake-ups, "
		"%llu bytes (%.1f laps)\n", (unsigned long long)(expect - 1),
		(unsigned long long)sleeps, (unsigned long long)wakes,
		(unsigned long long)atomic_load(&prod->tail),
		(double)atomic_load(&prod->tail) / cfg->cap);
	close(efd_cons);
	close(efd_prod);
	shn_segment_close(&seg);
}

static uint64_t records(void)
{
	const char *s = getenv("SHN_STRESS_RECORDS");
	uint64_t n = 3000000;

	if (s != NULL && *s != '\0')
		n = strtoull(s, NULL, 0);
	return n ? n : 1;
}

static void test_stress_64k(void **state)
{
	struct stress_cfg cfg = { .cap = 65536, .records = records(), .max_batch = 64 };
	(void)state;
	run_stress(&cfg);
}

/* The smallest ring: constantly full, constantly wrapping. */
static void test_stress_4k(void **state)
{
	struct stress_cfg cfg = { .cap = 4096, .records = records() / 6 + 1, .max_batch = 8 };
	(void)state;
	run_stress(&cfg);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_stress_64k, teardown),
		cmocka_unit_test_teardown(test_stress_4k, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
