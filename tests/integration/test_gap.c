/* SPDX-License-Identifier: MIT */
/*
 * test_gap.c - shn_notify_gap(): a gap report reaches every subscription
 * that takes its key (exact, any-key, monitor) whatever the event mask, as
 * SHN_EV_OVERFLOW with the count, the key, seq 0 and the sender's pid, in
 * publish order, and nobody else; advise sinks get it by key; the library
 * and the broker's validator refuse malformed ones; a gap report dropped for
 * a full port adds its count to the port's own OVERFLOW, so the totals stay
 * exact.
 */
#define _GNU_SOURCE
#include "harness.h"

#include <errno.h>
#include <string.h>

#include "broker/validate.h"
#include "shm/proto.h"

static void expect_gap(const shn_notification *o, const char *key, uint64_t lost)
{
	assert_int_equal(o->event, SHN_EV_OVERFLOW);
	assert_int_equal(o->key_len, strlen(key));
	assert_memory_equal(o->key, key, strlen(key));
	assert_int_equal(o->data_len, 8);
	assert_int_equal(h_le64(o->data), lost);
	assert_int_equal(o->seq, 0);
	assert_int_equal(o->sender_pid, getpid());
}

static void test_gap_routes(void **state)
{
	struct harness *h = *state;
	shn_client *sub = h_connect(h), *pub = h_connect(h);
	shn_conn ck, cany, cother;
	shn_port *pk = h_port_sub(sub, 0, "k", 1, 0x1, &ck);      /* mask without bit 1 */
	shn_port *pany = h_port_sub(sub, 0, NULL, 0, 0x4, &cany); /* any key, another mask */
	shn_port *pother = h_port_sub(sub, 0, "other", 5, SHN_EV_ALL, &cother);
	shn_notification out[8];
	shn_notification n2 = { .event = 2, .key = "k", .key_len = 1 };
	shn_notification n1 = { .event = 1, .key = "k", .key_len = 1, .data = "x", .data_len = 1 };
	shn_notification end = { .event = 0x4, .key = "other", .key_len = 5 };

	assert_int_equal(shn_notify_gap(pub, "k", 1, 5, 0), 0);
	assert_int_equal(shn_notify(pub, &n2, 1, 0), 0);   /* matches neither k's mask */
	assert_int_equal(shn_notify(pub, &n1, 1, 0), 0);
	assert_int_equal(shn_notify_gap(pub, "k", 1, UINT64_MAX, SHN_NOTIFY_NONBLOCK), 0);
	assert_int_equal(shn_notify(pub, &end, 1, 0), 0);

	/* exact key, mask 0x1: the gap, the event-1 note (seq 1), the gap */
	assert_int_equal(h_get(pk, out, 8), 1);
	expect_gap(&out[0], "k", 5);
	assert_int_equal(out[0].conn, ck);
	assert_int_equal(out[0].batch_count, 1);
	assert_int_equal(h_get(pk, out, 8), 1);
	assert_int_equal(out[0].event, 1);
	assert_int_equal(out[0].seq, 1);       /* the gap used no number */
	assert_int_equal(h_get(pk, out, 8), 1);
	expect_gap(&out[0], "k", UINT64_MAX);
	assert_int_equal(shn_port_get(pk, out, 8, 0), -ETIMEDOUT);

	/* any key, mask 0x4: both gaps, then "other" */
	assert_int_equal(h_get(pany, out, 8), 1);
	expect_gap(&out[0], "k", 5);
	assert_int_equal(h_get(pany, out, 8), 1);
	expect_gap(&out[0], "k", UINT64_MAX);
	assert_int_equal(h_get(pany, out, 8), 1);
	assert_int_equal(out[0].event, 0x4);
	assert_int_equal(out[0].seq, 1);

	/* another key: only its own note */
	assert_int_equal(h_get(pother, out, 8), 1);
	assert_int_equal(out[0].event, 0x4);
	assert_int_equal(shn_port_get(pother, out, 8, 0), -ETIMEDOUT);
	h_disconnect(pub);
	h_disconnect(sub);
}

static void test_gap_refused(void **state)
{
	struct harness *h = *state;
	shn_client *c = h_connect(h);
	shn_conn conn;
	shn_port *p = h_port_sub(c, 0, "k", 1, SHN_EV_ALL, &conn);
	shn_notification sys = { .event = SHN_EV_OVERFLOW, .key = "k", .key_len = 1,
				 .data = "12345678", .data_len = 8 };
	static uint8_t big[SHN_KEY_MAX + 1];

	(void)p;
	assert_int_equal(shn_notify_gap(NULL, "k", 1, 1, 0), -EINVAL);
	assert_int_equal(shn_notify_gap(c, "k", 1, 0, 0), -EINVAL);
	assert_int_equal(shn_notify_gap(c, NULL, 0, 1, 0), -EINVAL);
	assert_int_equal(shn_notify_gap(c, big, sizeof(big), 1, 0), -EINVAL);
	assert_int_equal(shn_notify_gap(c, "k", 1, 1, SHN_NOTIFY_SYNC), -EINVAL);
	/* shn_notify still refuses every system bit, OVERFLOW included */
	assert_int_equal(shn_notify(c, &sys, 1, 0), -EINVAL);
	h_disconnect(c);
}

/* The broker's validator on records built by hand: what a hostile client
 * could write into its ring instead of what the library writes. */
static int check_note(uint32_t event, uint32_t data_len, uint64_t count)
{
	union {
		uint8_t b[256];
		uint64_t align;
	} rec;
	struct shn_pub_batch *pb = (void *)rec.b;
	struct shn_pub_note *pn = (void *)(pb + 1);
	uint32_t len = sizeof(*pb) + shn_pub_note_size(1, data_len), notes[1];
	uint8_t *d = (uint8_t *)(pn + 1) + 1;

	memset(&rec, 0, sizeof(rec));
	pb->h.len = len;
	pb->h.type = SHN_REC_BATCH;
	pb->count = 1;
	pb->batch_id = 1;
	pn->event = event;
	pn->key_len = 1;
	pn->data_len = data_len;
	((uint8_t *)(pn + 1))[0] = 'k';
	for (uint32_t i = 0; i < data_len && i < 8; i++)
		d[i] = (uint8_t)(count >> (8 * i));
	if (shnd_pub_batch_check(rec.b, len) != 1)
		return -1;
	return shnd_pub_notes_check(rec.b, len, 1, notes);
}

static void test_gap_validator(void **state)
{
	(void)state;
	assert_int_equal(check_note(SHN_EV_OVERFLOW, 8, 7), 1);
	assert_int_equal(check_note(SHN_EV_OVERFLOW, 8, UINT64_MAX), 1);
	assert_int_equal(check_note(SHN_EV_OVERFLOW, 8, 0), -EBADMSG);   /* no count */
	assert_int_equal(check_note(SHN_EV_OVERFLOW, 4, 7), -EBADMSG);
	assert_int_equal(check_note(SHN_EV_OVERFLOW, 16, 7), -EBADMSG);
	assert_int_equal(check_note(SHN_EV_OVERFLOW, 0, 0), -EBADMSG);
	assert_int_equal(check_note(SHN_EV_OVERFLOW | 1u, 8, 7), -EBADMSG);
	assert_int_equal(check_note(SHN_EV_BROKER_STATE, 8, 7), -EBADMSG);
	assert_int_equal(check_note(SHN_EV_RECONNECT, 0, 0), -EBADMSG);
	assert_int_equal(check_note(SHN_EV_HANDLE_CLOSE, 0, 0), -EBADMSG);
	assert_int_equal(check_note(1, 8, 0), 1);   /* an ordinary note */
}

/* Dispatch: a sink on the gap's key gets it, a sink on another key of the
 * same port does not, an any-key sink does. */
struct seen {
	int gaps, other;
	uint64_t lost;
};

static unsigned sink(void *ctx, const shn_notification *b, size_t n)
{
	struct seen *s = ctx;

	for (size_t i = 0; i < n; i++) {
		if (b[i].event == SHN_EV_OVERFLOW && b[i].key_len == 1) {
			s->gaps++;
			s->lost += h_le64(b[i].data);
		} else {
			s->other++;
		}
	}
	return SHN_CALLBACK_CONTINUE;
}

static void test_gap_dispatch(void **state)
{
	struct harness *h = *state;
	shn_client *c = h_connect(h), *pub = h_connect(h);
	shn_port *p;
	shn_conn a, b, w;
	struct seen sk = { 0 }, so = { 0 }, sw = { 0 };
	shn_notification end = { .event = 1, .key = "z", .key_len = 1 };
	int64_t until;

	assert_int_equal(shn_port_open(c, NULL, &p), 0);
	assert_int_equal(shn_advise(p, "k", 1, 0x2, 0, sink, &sk, &a), 0);
	assert_int_equal(shn_advise(p, "z", 1, 0x1, 0, sink, &so, &b), 0);
	assert_int_equal(shn_advise(p, NULL, 0, 0x8, 0, sink, &sw, &w), 0);
	assert_int_equal(shn_notify_gap(pub, "k", 1, 42, 0), 0);
	assert_int_equal(shn_notify(pub, &end, 1, 0), 0);
	until = h_now_ms() + H_TIMEOUT_MS;
	while (so.other == 0 && h_now_ms() < until) {
		int r = shn_port_dispatch(p, 100);
		assert_true(r > 0 || r == -ETIMEDOUT);
	}
	assert_int_equal(so.other, 1);
	assert_int_equal(so.gaps, 0);
	assert_int_equal(sk.gaps, 1);
	assert_int_equal(sk.lost, 42);
	assert_int_equal(sw.gaps, 1);
	assert_int_equal(sw.lost, 42);
	h_disconnect(pub);
	h_disconnect(c);
}

/* A gap report in a batch dropped for a full port: that port's OVERFLOW
 * counts the dropped user notes plus the report's count. */
static void test_gap_dropped(void **state)
{
	struct harness *h = *state;
	shn_client *c = h_connect(h), *pub;
	/* The broker's handling of a gap report it drops for a full port: the
	 * publisher takes the broker path, so that its notifications fill the
	 * port's broker ring (a direct ring would take them, leave the broker
	 * ring room for the report, and the final SYNC batch would then wait
	 * for this very thread to read it). */
	setenv("SHMNOTIFY_DIRECT", "off", 1);
	pub = h_connect(h);
	unsetenv("SHMNOTIFY_DIRECT");
	shn_conn conn;
	shn_port *p = h_port_sub(c, 4096, "k", 1, SHN_EV_ALL, &conn);
	static uint8_t payload[512];
	shn_notification n = { .event = 1, .key = "k", .key_len = 1, .data = payload,
			       .data_len = sizeof(payload) };
	shn_notification out[8];
	const uint64_t users = 40, gap = 1000;
	uint64_t got = 0, lost = 0, gaps_seen = 0;

	/* far more than 4 KiB: most of it is dropped while nobody reads */
	for (uint64_t i = 0; i < users / 2; i++)
		assert_int_equal(shn_notify(pub, &n, 1, 0), 0);
	assert_int_equal(shn_notify_gap(pub, "k", 1, gap, 0), 0);
	for (uint64_t i = users / 2; i < users - 1; i++)
		assert_int_equal(shn_notify(pub, &n, 1, 0), 0);
	/* The last one SYNC: a batch a full DROP port drops counts as served,
	 * so it returns once the broker routed it, and so (per-publisher
	 * order) everything before it, before anything is read here.  Without
	 * it a slow broker (TSan) could still be routing when the reads below
	 * free room, and the gap report would then fit. */
	assert_int_equal(shn_notify(pub, &n, 1, SHN_NOTIFY_SYNC), 0);
	while (got + lost < users + gap) {
		int r = shn_port_get(p, out, 8, H_TIMEOUT_MS);

		if (r < 1)
			fail_msg("get: %d with %llu received, %llu reported lost of %llu",
				 r, (unsigned long long)got, (unsigned long long)lost,
				 (unsigned long long)(users + gap));
		for (int i = 0; i < r; i++) {
			if (out[i].event == SHN_EV_OVERFLOW) {
				lost += h_le64(out[i].data);
				gaps_seen += out[i].key_len != 0;
			} else {
				got++;
			}
		}
	}
	assert_int_equal(got + lost, users + gap);
	/* dropped whole with its batch: counted in the port's own report */
	assert_int_equal(gaps_seen, 0);
	assert_true(lost >= gap);
	print_message("received %llu, reported lost %llu (%llu as the gap report itself)\n",
		      (unsigned long long)got, (unsigned long long)lost,
		      (unsigned long long)gaps_seen);
	assert_int_equal(shn_port_get(p, out, 8, 0), -ETIMEDOUT);
	h_disconnect(pub);
	h_disconnect(c);
}

int main(int argc, char **argv)
{
	h_parse_args(argc, argv);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_gap_routes, h_setup, h_teardown),
		cmocka_unit_test_setup_teardown(test_gap_refused, h_setup, h_teardown),
		cmocka_unit_test(test_gap_validator),
		cmocka_unit_test_setup_teardown(test_gap_dispatch, h_setup, h_teardown),
		cmocka_unit_test_setup_teardown(test_gap_dropped, h_setup, h_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
