/* SPDX-License-Identifier: MIT */
/*
 * test_publishers.c - several publisher processes, one subscriber: each
 * publisher's order is kept, batches arrive whole, and every notification
 * is accounted for (received, or reported lost by SHN_EV_OVERFLOW).
 *
 * SHN_TEST_PUBLISHERS and SHN_TEST_PER_PUBLISHER change the load
 * (default 4 x 20000).
 */
#define _GNU_SOURCE
#include "harness.h"

#include <errno.h>
#include <string.h>

#define MAX_PUB 32

struct payload {
	uint32_t pub;      /* publisher id */
	uint16_t bcount;   /* size of the published batch */
	uint16_t bindex;   /* position in it */
	uint64_t counter;  /* per publisher, from 0 */
};
_Static_assert(sizeof(struct payload) == 16, "payload");

struct pub_ctx {
	const char *sock;
	uint32_t id;
	uint32_t count;
	struct h_chan ready, go;
};

static uint64_t mix(uint64_t z)
{
	z += 0x9e3779b97f4a7c15ull;
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static int publisher(void *arg)
{
	struct pub_ctx *x = arg;
	shn_client *c = NULL;
	shn_notification b[64];
	struct payload pl[64];
	uint64_t rng = 0x5eed + x->id, counter = 0;
	uint8_t byte;

	CHILD_CHECK_EQ(shn_connect(x->sock, &c), 0);
	CHILD_CHECK(h_send(&x->ready, 1));
	CHILD_CHECK(h_recv(&x->go, &byte, H_TIMEOUT_MS));
	while (counter < x->count) {
		rng = mix(rng);
		uint32_t n = 1 + (uint32_t)(rng % 64);
		if (n > x->count - counter)
			n = (uint32_t)(x->count - counter);
		for (uint32_t i = 0; i < n; i++) {
			pl[i] = (struct payload){ .pub = x->id, .bcount = (uint16_t)n,
						  .bindex = (uint16_t)i, .counter = counter + i };
			memset(&b[i], 0, sizeof(b[i]));
			b[i].event = 1u << (x->id % 28);
			b[i].key = "load";
			b[i].key_len = 4;
			b[i].data = &pl[i];
			b[i].data_len = sizeof(pl[i]);
		}
		CHILD_CHECK_EQ(shn_notify(c, b, n, 0), 0);
		counter += n;
	}
	shn_disconnect(c);
	return 0;
}

static uint32_t env_u32(const char *name, uint32_t def, uint32_t max)
{
	const char *s = getenv(name);
	unsigned long v = (s && *s) ? strtoul(s, NULL, 0) : def;

	return (v == 0 || v > max) ? def : (uint32_t)v;
}

static void run_load(struct harness *h, uint32_t npub, uint32_t per, uint32_t capacity,
		     uint64_t *dropped_out)
{
	struct pub_ctx x[MAX_PUB];
	pid_t pids[MAX_PUB];
	uint64_t next[MAX_PUB] = { 0 }, last_batch[MAX_PUB] = { 0 };
	shn_notification out[64];
	shn_conn conn;
	const uint64_t total = (uint64_t)npub * per;

	shn_client *c = h_connect(h);
	shn_port *p = h_port_sub(c, capacity, "load", 4, SHN_EV_ALL, &conn);
	for (uint32_t i = 0; i < npub; i++) {
		x[i] = (struct pub_ctx){ .sock = h->sock, .id = i, .count = per };
		h_chan_init(&x[i].ready);
		h_chan_init(&x[i].go);
		pids[i] = h_fork(publisher, &x[i]);
	}
	/* start them together: the most interleaving */
	for (uint32_t i = 0; i < npub; i++) {
		uint8_t b;
		assert_true(h_recv(&x[i].ready, &b, H_TIMEOUT_MS));
	}
	for (uint32_t i = 0; i < npub; i++)
		assert_true(h_send(&x[i].go, 1));

	uint64_t received = 0, dropped = 0, last_seq = 0, pending = 0;
	while (received + dropped < total) {
		int n = shn_port_get(p, out, 64, H_TIMEOUT_MS);
		if (n < 1)
			fail_msg("get: %d (%s) with %llu received + %llu dropped of %llu", n,
				 shn_strerror(n), (unsigned long long)received,
				 (unsigned long long)dropped, (unsigned long long)total);
		for (int i = 0; i < n; i++) {
			const shn_notification *o = &out[i];
			if (o->event == SHN_EV_OVERFLOW) {
				uint64_t lost;
				assert_int_equal(o->data_len, 8);
				memcpy(&lost, o->data, 8); /* little-endian host */
				assert_true(lost > 0);
				assert_int_equal(o->seq, 0);
				dropped += lost;
				pending += lost;
				continue;
			}
			struct payload pl;
			assert_int_equal(o->data_len, sizeof(pl));
			assert_int_equal(o->key_len, 4);
			assert_memory_equal(o->key, "load", 4);
			memcpy(&pl, o->data, sizeof(pl));
			assert_true(pl.pub < npub);
			assert_int_equal(o->event, 1u << (pl.pub % 28));
			assert_int_equal(o->sender_pid, pids[pl.pub]);
			assert_int_equal(o->conn, conn);
			/* seq: gapless except across a reported loss */
			assert_int_equal(o->seq, last_seq + 1 + pending);
			last_seq = o->seq;
			pending = 0;
			/* per publisher order; losses only in whole batches */
			if (pl.counter != next[pl.pub]) {
				assert_true(pl.counter > next[pl.pub]);
				assert_true(dropped > 0);
				assert_int_equal(pl.bindex, 0);
			}
			next[pl.pub] = pl.counter + 1;
			/* the published batch arrives whole, as one delivered batch */
			assert_int_equal(o->batch_count, pl.bcount);
			assert_int_equal(o->batch_index, pl.bindex);
			assert_int_equal(o->batch_index, (uint32_t)i);
			if (pl.bindex == 0) {
				assert_true(o->batch_id > last_batch[pl.pub]);
				last_batch[pl.pub] = o->batch_id;
			} else {
				assert_int_equal(o->batch_id, last_batch[pl.pub]);
				assert_int_equal(out[i - 1].sender_pid, o->sender_pid);
			}
			received++;
		}
	}
	assert_int_equal(received + dropped, total);
	assert_int_equal(last_seq + pending, total);
	if (dropped == 0)
		for (uint32_t i = 0; i < npub; i++)
			assert_int_equal(next[i], per);
	for (uint32_t i = 0; i < npub; i++) {
		h_wait_ok(pids[i], H_CHILD_TIMEOUT_MS);
		h_chan_close(&x[i].ready);
		h_chan_close(&x[i].go);
	}
	assert_int_equal(shn_port_get(p, out, 64, 0), -ETIMEDOUT);
	fprintf(stderr, "%u publishers x %u: %llu received, %llu reported lost\n", npub, per,
		(unsigned long long)received, (unsigned long long)dropped);
	*dropped_out = dropped;
	h_disconnect(c);
}

/* 64 MiB holds everything even if the subscriber never read: zero loss. */
static void test_four_publishers(void **state)
{
	uint64_t dropped = 1;
	uint32_t npub = env_u32("SHN_TEST_PUBLISHERS", 4, MAX_PUB);
	uint32_t per = env_u32("SHN_TEST_PER_PUBLISHER", 20000, 10000000);

	run_load(*state, npub, per, 64u << 20, &dropped);
	if ((uint64_t)npub * per <= 500000)
		assert_int_equal(dropped, 0);
}

/* A small port: losses are likely; the accounting must still be exact. */
static void test_four_publishers_small_port(void **state)
{
	uint64_t dropped = 0;

	run_load(*state, 4, 20000, 16384, &dropped);
}

int main(int argc, char **argv)
{
	h_parse_args(argc, argv);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_four_publishers, h_setup, h_teardown),
		cmocka_unit_test_setup_teardown(test_four_publishers_small_port, h_setup,
						h_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
