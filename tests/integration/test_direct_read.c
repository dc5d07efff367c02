/* SPDX-License-Identifier: MIT */
/*
 * test_direct_read.c - the library's reader of direct rings
 * (docs/direct-path.md, "A port reads several rings, as one stream",
 * "Trust does not move to the publisher"), against a real broker and a
 * publisher spoken raw that writes its direct ring by hand:
 *
 *   test_direct_record     a record written into the ring reaches the
 *                          library's port after the brokered batch before
 *                          it: its lost count first, as one SHN_EV_OVERFLOW,
 *                          then its note, with seq continuing across the
 *                          two paths (and jumping by the loss), the sender
 *                          from the broker, conn from the port's filter
 *   test_publisher_order   one publisher's batches, some direct and some
 *                          brokered, come in its order: a direct batch
 *                          before a brokered one (the reader re-loads that
 *                          publisher's ring before the brokered batch),
 *                          and a brokered one before a direct one written
 *                          once the broker had routed it
 *   test_barrier           a direct record written before an UNSUBSCRIBE
 *                          returned comes before that subscription's
 *                          HANDLE_CLOSE (the barrier the broker put in it),
 *                          with the conn of the oldest filter that took it
 *                          when it was sent (the ended one, rule 15); the
 *                          HANDLE_CLOSE shows no data
 *   test_hostile_record    a record with a reserved event bit: the reader
 *                          stops reading that ring, reports it
 *                          (DIRECT_FAULT: the broker cuts the publisher
 *                          off), delivers nothing of it, and the port goes
 *                          on with what other publishers send
 */
#define _GNU_SOURCE
#include "harness_direct.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>


/* A publisher that asked for the direct path, spoken raw
 * (harness_direct.h), with its direct ring once offered. */
struct rawpub {
	struct hd_client dc;
	struct shn_msg_direct_open open;
	int dfds[4];
	uint8_t *ring;
	uint64_t dtail;
};

static void rawpub_start(struct harness *h, struct rawpub *rp)
{
	memset(rp, 0, sizeof(*rp));
	for (int i = 0; i < 4; i++)
		rp->dfds[i] = -1;
	hd_start(h, &rp->dc);
}

static void rawpub_stop(struct rawpub *rp)
{
	if (rp->ring != NULL)
		munmap(rp->ring, SHN_RING_HDR_SIZE + (size_t)rp->open.capacity);
	for (int i = 0; i < 4; i++)
		if (rp->dfds[i] >= 0)
			close(rp->dfds[i]);
	hd_stop(&rp->dc);
}

/* One brokered batch of one note (key, 2 data bytes), stamped gen 0. */
static uint64_t rawpub_broker(struct rawpub *rp, const char *key, const char *data)
{
	return hd_publish(&rp->dc, key, data, 0);
}

/* Wait for the DIRECT_OPEN the broker sends after the first routed batch. */
static void rawpub_take_ring(struct rawpub *rp)
{
	int n = 4;

	for (int i = 0; i < 4; i++)
		rp->dfds[i] = -1;
	assert_int_equal(h_raw_recv(rp->dc.r.sock, &rp->open, sizeof(rp->open), rp->dfds, &n,
				    H_TIMEOUT_MS), sizeof(rp->open));
	assert_int_equal(rp->open.hdr.type, SHN_MSG_DIRECT_OPEN);
	assert_int_equal(rp->open.role, SHN_DIRECT_PUBLISHER);
	assert_int_equal(n, SHN_DOPEN_PUB_NFDS);
	rp->ring = mmap(NULL, SHN_RING_HDR_SIZE + (size_t)rp->open.capacity,
			PROT_READ | PROT_WRITE, MAP_SHARED, rp->dfds[SHN_DOPEN_FD_RING], 0);
	assert_true(rp->ring != MAP_FAILED);
}

/* Write one direct record of one note and publish it; event as given (a
 * hostile publisher sets what it likes). */
static void rawpub_direct(struct rawpub *rp, uint32_t event, const char *key, const char *data,
			  uint64_t lost)
{
	struct shn_ring_prod *prod = (void *)(rp->ring + SHN_DIRECT_PROD_OFF);
	uint8_t *d = rp->ring + SHN_RING_HDR_SIZE;
	uint32_t klen = (uint32_t)strlen(key);
	uint32_t len = sizeof(struct shn_direct_batch) + shn_direct_note_size(klen, 2);
	struct shn_direct_batch *b = (void *)(d + (rp->dtail & (rp->open.capacity - 1)));
	struct shn_direct_note *n = (void *)(b + 1);
	uint64_t one = 1;

	memset(b, 0, len);
	b->h.len = len;
	b->h.type = SHN_REC_DIRECT;
	b->count = 1;
	b->batch_id = rp->dc.next_batch++;
	b->time_ns = 1;
	b->gen = hd_gen(&rp->dc.d);
	b->lost = lost;   /* all told; the counter says so first, as a real publisher's */
	atomic_store_explicit(&((struct shn_direct_pub_stats *)(void *)(rp->ring + SHN_DIRECT_PSTATS_OFF))->dropped,
			      lost, memory_order_release);
	n->event = event;
	n->key_len = (uint16_t)klen;
	n->data_len = 2;
	memcpy(n + 1, key, klen);
	memcpy((uint8_t *)(n + 1) + klen, data, 2);
	rp->dtail += len;
	atomic_store_explicit(&prod->tail, rp->dtail, memory_order_release);
	assert_int_equal(write(rp->dfds[SHN_DOPEN_FD_PORT_EVENT], &one, sizeof(one)), 8);
}

static shn_client *connect_direct(struct harness *h)
{
	shn_client *c;

	setenv("SHMNOTIFY_DIRECT", "on", 1);
	c = h_connect(h);
	unsetenv("SHMNOTIFY_DIRECT");
	return c;
}

static void expect_note(const shn_notification *x, const char *data, uint64_t seq, shn_conn conn)
{
	assert_int_equal(x->event, 1);
	assert_int_equal(x->key_len, 1);
	assert_memory_equal(x->key, "k", 1);
	assert_int_equal(x->data_len, 2);
	assert_memory_equal(x->data, data, 2);
	assert_int_equal(x->seq, seq);
	assert_int_equal(x->conn, conn);
	assert_int_equal(x->sender_pid, getpid());
	assert_int_equal(x->sender_uid, getuid());
}

/* The library's reader adopts the ring once its DIRECT_OPEN was read (by
 * its watcher thread): give it the time. */
static void let_reader_adopt(void)
{
	h_sleep_ms(200);
}

static void test_direct_record(void **state)
{
	struct harness *h = *state;
	shn_client *c = connect_direct(h);
	shn_conn conn;
	shn_port *p = h_port_sub(c, 0, "k", 1, SHN_EV_ALL, &conn);
	struct rawpub rp;
	shn_notification out[8];

	rawpub_start(h, &rp);
	rawpub_broker(&rp, "k", "b1");
	assert_int_equal(h_get(p, out, 8), 1);
	expect_note(&out[0], "b1", 1, conn);
	rawpub_take_ring(&rp);
	let_reader_adopt();

	rawpub_direct(&rp, 1, "k", "d2", 3);   /* 3 lost before it */
	assert_int_equal(h_get(p, out, 8), 1);
	assert_int_equal(out[0].event, SHN_EV_OVERFLOW);
	assert_int_equal(out[0].data_len, 8);
	assert_int_equal(h_le64(out[0].data), 3);
	assert_int_equal(h_get(p, out, 8), 1);
	expect_note(&out[0], "d2", 5, conn);   /* 1, then 3 lost, then this */
	rawpub_direct(&rp, 1, "k", "d3", 3);   /* none lost since */
	assert_int_equal(h_get(p, out, 8), 1);
	expect_note(&out[0], "d3", 6, conn);
	assert_int_equal(shn_port_get(p, out, 8, 100), -ETIMEDOUT);
	rawpub_stop(&rp);
	h_disconnect(c);
}

/* The broker released every byte of rp's publish ring: each brokered
 * batch was routed (a real publisher's condition for writing directly). */
static void wait_routed(struct rawpub *rp)
{
	const struct shn_ring_cons *cons = (const void *)(rp->dc.pub + SHN_PUB_CONS_OFF);
	int64_t end = h_now_ms() + H_TIMEOUT_MS;

	while (atomic_load_explicit(&cons->head, memory_order_acquire) != rp->dc.tail) {
		assert_true(h_now_ms() < end);
		h_sleep_ms(1);
	}
}

static void test_publisher_order(void **state)
{
	struct harness *h = *state;
	shn_client *c = connect_direct(h);
	shn_conn conn;
	shn_port *p = h_port_sub(c, 0, "k", 1, SHN_EV_ALL, &conn);
	struct rawpub rp;
	shn_notification out[8];

	rawpub_start(h, &rp);
	rawpub_broker(&rp, "k", "b1");
	assert_int_equal(h_get(p, out, 8), 1);
	rawpub_take_ring(&rp);
	let_reader_adopt();

	/* direct 2, then brokered 3: both there when the reader looks */
	rawpub_direct(&rp, 1, "k", "d2", 0);
	rawpub_broker(&rp, "k", "b3");
	wait_routed(&rp);
	h_sleep_ms(50);   /* the broker wrote the port's ring before it released ours */
	/* brokered 4, routed, then direct 5 */
	rawpub_broker(&rp, "k", "b4");
	wait_routed(&rp);
	rawpub_direct(&rp, 1, "k", "d5", 0);

	static const char *const want[] = { "d2", "b3", "b4", "d5" };
	for (int i = 0; i < 4; i++) {
		assert_int_equal(h_get(p, out, 1), 1);
		expect_note(&out[0], want[i], (uint64_t)i + 2, conn);
		assert_int_equal(out[0].batch_id, (uint64_t)i + 2);
	}
	assert_int_equal(shn_port_get(p, out, 8, 100), -ETIMEDOUT);
	rawpub_stop(&rp);
	h_disconnect(c);
}

static void test_barrier(void **state)
{
	struct harness *h = *state;
	shn_client *c = connect_direct(h);
	shn_conn conn, any;
	shn_port *p = h_port_sub(c, 0, "k", 1, SHN_EV_ALL, &conn);
	struct rawpub rp;
	shn_notification out[8];

	assert_int_equal(shn_subscribe(p, NULL, 0, SHN_EV_ALL, 0, &any), 0);
	rawpub_start(h, &rp);
	rawpub_broker(&rp, "k", "b1");
	assert_int_equal(h_get(p, out, 8), 1);
	rawpub_take_ring(&rp);
	let_reader_adopt();

	rawpub_direct(&rp, 1, "k", "d2", 0);
	assert_int_equal(shn_unsubscribe(c, conn), 0);
	assert_int_equal(h_get(p, out, 1), 1);
	expect_note(&out[0], "d2", 2, conn);   /* the oldest filter when it was sent */
	assert_int_equal(h_get(p, out, 1), 1);
	assert_int_equal(out[0].event, SHN_EV_HANDLE_CLOSE);
	assert_int_equal(out[0].conn, conn);
	assert_int_equal(out[0].data_len, 0);
	assert_int_equal(shn_port_get(p, out, 8, 100), -ETIMEDOUT);
	rawpub_stop(&rp);
	h_disconnect(c);
}

static void test_hostile_record(void **state)
{
	struct harness *h = *state;
	shn_client *c = connect_direct(h);
	shn_client *other = h_connect(h);
	shn_conn conn;
	shn_port *p = h_port_sub(c, 0, "k", 1, SHN_EV_ALL, &conn);
	struct rawpub rp;
	shn_notification out[8];
	uint8_t b[64];
	int fds[4], n = 4;

	rawpub_start(h, &rp);
	rawpub_broker(&rp, "k", "b1");
	assert_int_equal(h_get(p, out, 8), 1);
	rawpub_take_ring(&rp);
	let_reader_adopt();

	/* SHN_EV_HANDLE_CLOSE from a publisher: never accepted */
	rawpub_direct(&rp, 1u | SHN_EV_HANDLE_CLOSE, "k", "xx", 0);
	assert_int_equal(shn_port_get(p, out, 8, 300), -ETIMEDOUT);
	/* reported: the broker cut the publisher off (its socket ends) */
	for (;;) {
		ssize_t r = h_raw_recv(rp.dc.r.sock, b, sizeof(b), fds, &n, H_TIMEOUT_MS);

		for (int i = 0; i < n; i++)
			close(fds[i]);
		n = 4;
		if (r <= 0) {
			assert_int_equal(r, 0);   /* EOF, not a timeout */
			break;
		}
	}
	/* the port goes on: another publisher's batch, numbered on */
	shn_notification x = { .event = 1, .key = "k", .key_len = 1, .data = "o1", .data_len = 2 };
	assert_int_equal(shn_notify(other, &x, 1, 0), 0);
	assert_int_equal(h_get(p, out, 8), 1);
	assert_int_equal(out[0].event, 1);
	assert_memory_equal(out[0].data, "o1", 2);
	assert_int_equal(out[0].seq, 2);
	rawpub_stop(&rp);
	h_disconnect(other);
	h_disconnect(c);
}

int main(int argc, char **argv)
{
	h_parse_args(argc, argv);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_direct_record, h_setup, h_teardown),
		cmocka_unit_test_setup_teardown(test_publisher_order, h_setup, h_teardown),
		cmocka_unit_test_setup_teardown(test_barrier, h_setup, h_teardown),
		cmocka_unit_test_setup_teardown(test_hostile_record, h_setup, h_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
