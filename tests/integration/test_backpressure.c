/* SPDX-License-Identifier: MIT */
/*
 * test_backpressure.c - SHN_OVERFLOW_BLOCK (a port that asks for
 * back-pressure loses nothing; DESIGN "Overflow", rules 5 and 7) and
 * SHN_NOTIFY_NONBLOCK on a full publish ring (rule 6: -EAGAIN, never part of
 * a batch).
 */
#define _GNU_SOURCE
#include "harness.h"

#include <errno.h>
#include <string.h>

#define TOTAL 10000u
#define BATCH 10u

struct pub_ctx {
	const char *sock;
	uint32_t first, count, batch;
};

static int publisher(void *arg)
{
	struct pub_ctx *x = arg;
	shn_client *c = NULL;
	shn_notification b[64];
	uint32_t v[64];

	CHILD_CHECK_EQ(shn_connect(x->sock, &c), 0);
	for (uint32_t i = 0; i < x->count; i += x->batch) {
		uint32_t n = x->batch;
		for (uint32_t k = 0; k < n; k++) {
			v[k] = x->first + i + k;
			memset(&b[k], 0, sizeof(b[k]));
			b[k].event = 1;
			b[k].key = "o";
			b[k].key_len = 1;
			b[k].data = &v[k];
			b[k].data_len = sizeof(v[k]);
		}
		CHILD_CHECK_EQ(shn_notify(c, b, n, 0), 0);
	}
	shn_disconnect(c);
	return 0;
}

/* SHN_OVERFLOW_BLOCK: back-pressure instead of loss.  The subscriber reads
 * nothing while the publisher publishes everything (it fits the publisher's
 * ring) and exits; the broker holds what does not fit the port (rule 9: the
 * batches are still routed), and the subscriber then gets all of it, in
 * order, with no OVERFLOW. */
static void test_backpressure(void **state)
{
	struct harness *h = *state;
	struct pub_ctx x = { .sock = h->sock, .first = 0, .count = 2000, .batch = BATCH };
	shn_port_options o = { .capacity = 4096, .overflow = SHN_OVERFLOW_BLOCK };
	shn_notification out[64];
	shn_port *p = NULL;
	shn_conn conn = 0;

	shn_client *c = h_connect(h);
	assert_int_equal(shn_port_open(c, &o, &p), 0);
	assert_int_equal(shn_subscribe(p, "o", 1, SHN_EV_ALL, 0, &conn), 0);
	pid_t pid = h_fork(publisher, &x);
	h_wait_ok(pid, H_CHILD_TIMEOUT_MS);

	uint64_t seq = 0;
	while (seq < 2000) {
		int n = h_get(p, out, 64);
		for (int i = 0; i < n; i++) {
			if (out[i].event == SHN_EV_OVERFLOW) {
				uint64_t lost = 0;
				if (out[i].data_len == 8)
					memcpy(&lost, out[i].data, 8);
				fail_msg("SHN_OVERFLOW_BLOCK port reported %llu lost after seq %llu",
					 (unsigned long long)lost, (unsigned long long)seq);
			}
			uint32_t v;
			assert_int_equal(out[i].data_len, 4);
			memcpy(&v, out[i].data, 4);
			assert_int_equal(out[i].seq, ++seq);
			assert_int_equal(v, seq - 1);
		}
	}
	assert_int_equal(shn_port_get(p, out, 64, 0), -ETIMEDOUT);
	h_disconnect(c);
}

/* Rule 6: a full publish ring makes SHN_NOTIFY_NONBLOCK return -EAGAIN,
 * never writing part of a batch.  The ring fills behind a blocked port
 * nobody reads (back-pressure). */
static void test_nonblock_full_ring(void **state)
{
	struct harness *h = *state;
	shn_port_options o = { .capacity = 4096, .overflow = SHN_OVERFLOW_BLOCK };
	static uint8_t data[500];   /* 3 of them: a record under half the 4096-byte port */
	shn_notification out[64];
	shn_port *p = NULL;
	shn_conn conn = 0;

	shn_client *sub = h_connect(h);
	shn_client *pub = h_connect(h);
	assert_int_equal(shn_port_open(sub, &o, &p), 0);
	assert_int_equal(shn_subscribe(p, "nb", 2, SHN_EV_ALL, 0, &conn), 0);
	uint32_t accepted = 0;
	int r = 0;
	/* 1 MiB publish ring, ~3 KiB a batch: -EAGAIN long before 100000 */
	for (uint32_t i = 0; i < 100000; i++) {
		shn_notification b[3];
		for (int k = 0; k < 3; k++) {
			b[k] = (shn_notification){ .event = 1, .key = "nb", .key_len = 2,
						   .data = data, .data_len = sizeof(data) };
		}
		memcpy(data, &i, sizeof(i));
		r = shn_notify(pub, b, 3, SHN_NOTIFY_NONBLOCK);
		if (r != 0)
			break;
		accepted++;
	}
	if (r != -EAGAIN)
		fail_msg("shn_notify(NONBLOCK) on a full ring: %d (%s) after %u batches, "
			 "expected -EAGAIN", r, shn_strerror(r), accepted);
	/* now read everything: exactly the accepted batches, whole */
	uint32_t got = 0;
	while (got < accepted) {
		int n = h_get(p, out, 64);
		if (out[0].event == SHN_EV_OVERFLOW)
			fail_msg("SHN_OVERFLOW_BLOCK port reported a loss after %u batches", got);
		assert_int_equal(n, 3);
		uint32_t v;
		memcpy(&v, out[0].data, sizeof(v));
		assert_int_equal(v, got);
		assert_int_equal(out[0].batch_count, 3);
		assert_int_equal(out[2].seq, 3ull * got + 3);
		got++;
	}
	assert_int_equal(shn_port_get(p, out, 64, 0), -ETIMEDOUT);
	/* room again: a non-blocking publish goes through */
	shn_notification one = { .event = 1, .key = "nb", .key_len = 2, .data = "z",
				 .data_len = 1 };
	int64_t end = h_now_ms() + H_TIMEOUT_MS;
	while ((r = shn_notify(pub, &one, 1, SHN_NOTIFY_NONBLOCK)) == -EAGAIN &&
	       h_now_ms() < end)
		;
	assert_int_equal(r, 0);
	assert_int_equal(h_get(p, out, 64), 1);
	h_disconnect(pub);
	h_disconnect(sub);
}

int main(int argc, char **argv)
{
	h_parse_args(argc, argv);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_backpressure, h_setup, h_teardown),
		cmocka_unit_test_setup_teardown(test_nonblock_full_ring, h_setup, h_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
