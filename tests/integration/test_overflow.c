/* SPDX-License-Identifier: MIT */
/*
 * test_overflow.c - a full delivery ring drops for that port only, counts,
 * and reports (docs/design.md, "Overflow", rules 3 and 4): received +
 * reported lost == published, seq gaps equal the reported counts, the report
 * comes before anything published after the loss and without further traffic,
 * batches are dropped whole, and other ports lose nothing.
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

struct acct {
	uint64_t received, dropped, last_seq, pending, overflows;
};

/* Drain p until received + dropped reaches total (each wait bounded). */
static void drain(shn_port *p, shn_conn conn, struct acct *a, uint64_t total)
{
	shn_notification out[64];

	while (a->received + a->dropped < total) {
		int n = shn_port_get(p, out, 64, H_TIMEOUT_MS);
		if (n < 1)
			fail_msg("get: %d (%s) with %llu received + %llu reported lost of %llu: "
				 "an overflow report missing?", n, shn_strerror(n),
				 (unsigned long long)a->received, (unsigned long long)a->dropped,
				 (unsigned long long)total);
		for (int i = 0; i < n; i++) {
			const shn_notification *o = &out[i];
			if (o->event == SHN_EV_OVERFLOW) {
				uint8_t le[8];
				assert_int_equal(o->data_len, 8);
				assert_non_null(o->data);
				memcpy(le, o->data, 8);
				uint64_t lost = 0;
				for (int k = 7; k >= 0; k--)
					lost = (lost << 8) | le[k];   /* little-endian */
				assert_true(lost > 0);
				assert_int_equal(o->seq, 0);
				assert_int_equal(o->key_len, 0);
				assert_null(o->key);
				assert_int_equal(o->sender_pid, 0);
				/* whole batches only */
				assert_int_equal(lost % BATCH, 0);
				a->dropped += lost;
				a->pending += lost;
				a->overflows++;
				continue;
			}
			assert_int_equal(o->event, 1);
			assert_int_equal(o->conn, conn);
			assert_int_equal(o->data_len, 4);
			/* the gap before this one is exactly what was reported */
			if (o->seq != a->last_seq + 1 + a->pending)
				fail_msg("seq %llu after %llu with %llu reported lost",
					 (unsigned long long)o->seq,
					 (unsigned long long)a->last_seq,
					 (unsigned long long)a->pending);
			a->last_seq = o->seq;
			a->pending = 0;
			/* seq numbers every notification routed here: the value
			 * published as number k has seq k + 1 */
			uint32_t v;
			memcpy(&v, o->data, 4);
			assert_int_equal(v, o->seq - 1);
			/* never a batch in part */
			assert_int_equal(o->batch_count, BATCH);
			assert_int_equal(o->batch_index, v % BATCH);
			a->received++;
		}
	}
}

static void test_overflow(void **state)
{
	struct harness *h = *state;
	struct pub_ctx x = { .sock = h->sock, .first = 0, .count = TOTAL, .batch = BATCH };
	shn_conn conn, bigconn;
	shn_notification out[64];

	shn_client *c = h_connect(h);
	shn_port *p = h_port_sub(c, 4096, "o", 1, SHN_EV_ALL, &conn);
	/* a second port with room for everything: loses nothing */
	shn_port *big = h_port_sub(c, 4u << 20, "o", 1, SHN_EV_ALL, &bigconn);

	pid_t pid = h_fork(publisher, &x);
	h_wait_ok(pid, H_CHILD_TIMEOUT_MS);   /* published everything; we read nothing */

	struct acct a = { 0 };
	drain(p, conn, &a, TOTAL);
	assert_int_equal(a.received + a.dropped, TOTAL);
	assert_int_equal(a.last_seq + a.pending, TOTAL);
	assert_true(a.dropped > 0);                 /* 4096 bytes cannot hold 10000 */
	assert_true(a.received > 0);
	assert_true(a.overflows > 0);
	assert_int_equal(shn_port_get(p, out, 64, 0), -ETIMEDOUT);

	struct acct ab = { 0 };
	drain(big, bigconn, &ab, TOTAL);
	assert_int_equal(ab.dropped, 0);
	assert_int_equal(ab.received, TOTAL);
	assert_int_equal(ab.last_seq, TOTAL);
	assert_int_equal(shn_port_get(big, out, 64, 0), -ETIMEDOUT);

	/* the port works normally afterwards; seq goes on */
	struct pub_ctx y = { .sock = h->sock, .first = TOTAL, .count = BATCH, .batch = BATCH };
	pid = h_fork(publisher, &y);
	h_wait_ok(pid, H_CHILD_TIMEOUT_MS);
	int n = h_get(p, out, 64);
	assert_int_equal(n, BATCH);
	for (int i = 0; i < n; i++) {
		uint32_t v;
		memcpy(&v, out[i].data, 4);
		assert_int_equal(v, TOTAL + i);
		assert_int_equal(out[i].seq, TOTAL + 1 + i);
	}
	assert_int_equal(shn_port_get(p, out, 64, 0), -ETIMEDOUT);
	fprintf(stderr, "overflow: %llu received, %llu lost in %llu reports\n",
		(unsigned long long)a.received, (unsigned long long)a.dropped,
		(unsigned long long)a.overflows);
	h_disconnect(c);
}

/* The loss is reported even when nothing is published after it: a
 * subscriber that drains gets the OVERFLOW without further traffic. */
static void test_overflow_reported_without_traffic(void **state)
{
	struct harness *h = *state;
	shn_conn conn, wconn;
	shn_notification out[64];
	static uint8_t data[600];

	shn_client *c = h_connect(h);
	shn_port *p = h_port_sub(c, 4096, "q", 1, SHN_EV_ALL, &conn);
	shn_port *w = h_port_sub(c, 1u << 20, "q", 1, SHN_EV_ALL, &wconn);
	/* 10 batches of 3 x 600 bytes (a ~2 KB record, at most half the
	 * ring): the first two fit 4096, the others are lost */
	for (int i = 0; i < 10; i++) {
		shn_notification b[3];
		for (int k = 0; k < 3; k++)
			b[k] = (shn_notification){ .event = 1, .key = "q", .key_len = 1,
						   .data = data, .data_len = sizeof(data) };
		assert_int_equal(shn_notify(c, b, 3, 0), 0);
	}
	/* all routed: the witness has all 10 */
	for (int i = 0; i < 10; i++)
		assert_int_equal(h_get(w, out, 64), 3);
	uint64_t got = 0, lost = 0, last = 0, pending = 0;
	while (got + lost < 30) {
		int n = h_get(p, out, 64);   /* bounded: fails if the report never comes */
		for (int i = 0; i < n; i++) {
			if (out[i].event == SHN_EV_OVERFLOW) {
				uint64_t l;
				assert_int_equal(out[i].data_len, 8);
				memcpy(&l, out[i].data, 8);
				assert_true(l > 0);
				lost += l;
				pending += l;
			} else {
				assert_int_equal(out[i].seq, last + 1 + pending);
				assert_int_equal(out[i].batch_count, 3);
				last = out[i].seq;
				pending = 0;
				got++;
			}
		}
	}
	/* the first were delivered; the last were lost, and that was reported */
	assert_true(got >= 3);
	assert_true(pending > 0);
	assert_int_equal(last + pending, 30);
	assert_int_equal(got + lost, 30);
	assert_true(lost >= 3);
	assert_int_equal(got % 3, 0);
	assert_int_equal(shn_port_get(p, out, 64, 0), -ETIMEDOUT);
	h_disconnect(c);
}

/* A 4096-byte port fed 10,000 notifications by another process,
 * unread until every batch was routed (a witness port has them all), gets
 * exactly ONE SHN_EV_OVERFLOW when drained: what fitted (seq 1..k, whole
 * batches), then the report of 10,000 - k; nothing after it. */
static void test_overflow_one_report(void **state)
{
	struct harness *h = *state;
	struct pub_ctx x = { .sock = h->sock, .first = 0, .count = TOTAL, .batch = BATCH };
	shn_conn conn, wconn;
	shn_notification out[64];

	shn_client *c = h_connect(h);
	shn_port *p = h_port_sub(c, 4096, "o", 1, SHN_EV_ALL, &conn);
	shn_port *w = h_port_sub(c, 4u << 20, "o", 1, SHN_EV_ALL, &wconn);
	pid_t pid = h_fork(publisher, &x);
	h_wait_ok(pid, H_CHILD_TIMEOUT_MS);   /* published everything; we read nothing */

	struct acct aw = { 0 };
	drain(w, wconn, &aw, TOTAL);    /* all 10,000 routed */
	assert_int_equal(aw.dropped, 0);

	struct acct a = { 0 };
	drain(p, conn, &a, TOTAL);
	if (a.overflows != 1)
		fail_msg("%llu overflow reports (%llu received, %llu lost), expected exactly one",
			 (unsigned long long)a.overflows, (unsigned long long)a.received,
			 (unsigned long long)a.dropped);
	assert_true(a.received > 0);
	assert_true(a.dropped > 0);
	assert_int_equal(a.received + a.dropped, TOTAL);
	/* what was received is the prefix seq 1..k; the report is the gap */
	assert_int_equal(a.last_seq, a.received);
	assert_int_equal(a.pending, a.dropped);
	assert_int_equal(a.last_seq + a.pending, TOTAL);
	assert_int_equal(shn_port_get(p, out, 64, 0), -ETIMEDOUT);
	h_disconnect(c);
}

int main(int argc, char **argv)
{
	h_parse_args(argc, argv);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_overflow, h_setup, h_teardown),
		cmocka_unit_test_setup_teardown(test_overflow_one_report, h_setup, h_teardown),
		cmocka_unit_test_setup_teardown(test_overflow_reported_without_traffic, h_setup,
						h_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
