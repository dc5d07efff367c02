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
 *   test_on_cpu_hint       a publisher's ring that says for good that it
 *                          wakes readers from the reader's own CPU: the
 *                          reader yields once a get, then sleeps (three
 *                          gets of 300 ms with nothing to read use little
 *                          CPU), and the next record is still delivered
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
 *   test_outside_prefix    a hostile publisher's notes outside the port's
 *                          prefix filter (another key, one shorter than
 *                          the prefix) are dropped by the reader, those
 *                          under it kept with its conn; the ring goes on
 *   test_gap_then_direct   a brokered gap report (a bridge's remote loss,
 *                          naming its key) uses no number: the direct note
 *                          after it is numbered on by one, as the broker
 *                          numbers (before the port.c fix: by the gap's
 *                          count more)
 *   test_scribbled_rings   40 rounds, each a new hostile publisher (a
 *                          ring read once well) scribbling its ring one
 *                          way while a healthy library publisher floods
 *                          another key of the same SHN_OVERFLOW_BLOCK port:
 *                          every bad header field, count, note field,
 *                          padding, system event bit, batch id, gen, lost
 *                          or dropped counter going back or jumping, a
 *                          tail backwards or past a ring's worth, garbage
 *                          records, garbage over the whole segment.  Each:
 *                          every healthy note delivered in order, seq on
 *                          by one, nothing of the hostile ring after the
 *                          bad record (a good one written after it
 *                          included), the broker counts one more
 *                          direct_fault and cuts the publisher off (EOF).
 *                          Notes no filter takes (a key never subscribed,
 *                          an event outside the mask, both mixed with a
 *                          good note) are dropped quietly and the ring
 *                          goes on; a loss told by the counter alone is
 *                          one SHN_EV_OVERFLOW (a publisher may misreport
 *                          only its own losses).  The port goes on.
 *   test_scribbled_consumer_index
 *                          a raw subscriber (asking for the direct path,
 *                          port on key K) writes bad heads into the ring a
 *                          library publisher of K writes it (past a full
 *                          ring, far past, UINT64_MAX, a valid head then
 *                          one before it, a storm of random values), 30
 *                          rounds: the publisher's shn_notify returns 0
 *                          throughout, a healthy library subscriber of K
 *                          gets every note in order, the publisher gives
 *                          the ring up (DIRECT_CLOSE -EPIPE to the raw
 *                          subscriber), its next batches take the broker
 *                          path to that port, and no ring is offered to
 *                          that pair again (each round is a new raw
 *                          subscriber); no direct_fault is counted
 *   test_offer_during_call a ring offered while another thread of the
 *                          subscriber's process waits for a reply (stats,
 *                          over and over) is still read: the direct record
 *                          written into it is delivered, 100 rounds
 */
#define _GNU_SOURCE
#include "harness_direct.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
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

/* One note of a direct record written by hand (2 data bytes). */
struct wnote {
	uint32_t event;
	const char *key;
	uint32_t key_len;   /* 0: strlen(key) */
	const char *data;
};

/* Lay a well-formed direct record of n notes, a run each, in buf[0..cap): the next
 * batch id, the table's generation now, lost as given.  Notes 0, 2, 4...
 * take the form with a length word, the others the form of one length
 * (shm/direct.h), so that a record of several holds both.  Returns its
 * length. */
static uint32_t rec_build(struct rawpub *rp, uint8_t *buf, size_t cap, const struct wnote *w,
			  int n, uint64_t lost)
{
	struct shn_direct_batch *b = (void *)buf;
	uint32_t off = sizeof(*b);

	memset(buf, 0, cap);
	for (int i = 0; i < n; i++) {
		struct shn_direct_run *run = (void *)(buf + off);
		struct shn_direct_item *it;
		uint32_t klen = w[i].key_len ? w[i].key_len : (uint32_t)strlen(w[i].key);

		/* a run of one note each */
		assert_true(off + shn_direct_run_size(klen) + shn_direct_item_size(2) <= cap);
		run->event = w[i].event;
		run->key_len = (uint16_t)klen;
		run->count = 1;
		memcpy(run + 1, w[i].key, klen);
		off += shn_direct_run_size(klen);
		if (i % 2 == 1) {
			run->flags = SHN_DIRECT_RUN_SAME_LEN;
			run->data_len = 2;
			memcpy(buf + off, w[i].data, 2);
			off += 8;
			continue;
		}
		it = (void *)(buf + off);
		it->data_len = 2;
		memcpy(it + 1, w[i].data, 2);
		off += shn_direct_item_size(2);
	}
	b->h.len = off;
	b->h.type = SHN_REC_DIRECT;
	b->count = (uint32_t)n;
	b->batch_id = rp->dc.next_batch++;
	b->time_ns = 1;
	b->gen = hd_gen(&rp->dc.d);
	b->lost = lost;   /* all told */
	return off;
}

static struct shn_direct_pub_stats *rawpub_stats(struct rawpub *rp)
{
	return (void *)(rp->ring + SHN_DIRECT_PSTATS_OFF);
}

/* Wake the port (its eventfd, handed over in DIRECT_OPEN). */
static void rawpub_poke(struct rawpub *rp)
{
	uint64_t one = 1;

	assert_int_equal(write(rp->dfds[SHN_DOPEN_FD_PORT_EVENT], &one, sizeof(one)), 8);
}

/* Publish the ring's tail as t, and wake the port. */
static void rawpub_tail(struct rawpub *rp, uint64_t t)
{
	struct shn_ring_prod *prod = (void *)(rp->ring + SHN_DIRECT_PROD_OFF);

	rp->dtail = t;
	atomic_store_explicit(&prod->tail, t, memory_order_release);
	rawpub_poke(rp);
}

/* Copy buf[0..len) to the ring at its tail (no wrap) and publish the tail
 * advance bytes on. */
static void rec_put(struct rawpub *rp, const uint8_t *buf, uint32_t len, uint64_t advance)
{
	uint32_t off = (uint32_t)(rp->dtail & (rp->open.capacity - 1));

	assert_true(off + len <= rp->open.capacity && off + advance <= rp->open.capacity);
	memcpy(rp->ring + SHN_RING_HDR_SIZE + off, buf, len);
	rawpub_tail(rp, rp->dtail + advance);
}

/* Write one direct record of one note and publish it; event as given (a
 * hostile publisher sets what it likes). */
static void rawpub_direct(struct rawpub *rp, uint32_t event, const char *key, const char *data,
			  uint64_t lost)
{
	uint8_t buf[256];
	struct wnote w = { event, key, 0, data };
	uint32_t len = rec_build(rp, buf, sizeof(buf), &w, 1, lost);

	/* the counter says so first, as a real publisher's */
	atomic_store_explicit(&rawpub_stats(rp)->dropped, lost, memory_order_release);
	rec_put(rp, buf, len, len);
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

/* A raw publisher whose first batch ("b1" to key "k") reached port p
 * through the broker, and whose direct ring to p is now open; out[0]: that
 * note. */
static void rawpub_open(struct harness *h, struct rawpub *rp, shn_port *p, shn_notification *out)
{
	rawpub_start(h, rp);
	rawpub_broker(rp, "k", "b1");
	assert_int_equal(h_get(p, out, 1), 1);
	rawpub_take_ring(rp);
}

/* The library's reader adopts the ring once its DIRECT_OPEN was read (by
 * its watcher thread): give it the time. */
static void let_reader_adopt(void)
{
	h_sleep_ms(200);
}

/* A direct-path client *c with a port on "k" (*conn), and a raw publisher
 * rp whose first batch ("b1", through the broker) the port got and whose
 * ring the port's reader has adopted: where most tests here start. */
static shn_port *fed_port(struct harness *h, struct rawpub *rp, shn_client **c, shn_conn *conn)
{
	shn_notification out[1];
	shn_port *p;

	*c = connect_direct(h);
	p = h_port_sub(*c, 0, "k", 1, SHN_EV_ALL, conn);
	rawpub_open(h, rp, p, out);
	expect_note(&out[0], "b1", 1, *conn);
	let_reader_adopt();
	return p;
}

static long direct_faults(shn_client *c);

static void test_direct_record(void **state)
{
	struct rawpub rp;
	shn_client *c;
	shn_conn conn;
	shn_port *p = fed_port(*state, &rp, &c, &conn);
	shn_notification out[8];

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

/* A publisher that claims, for good, to be waking its readers from the
 * reader's own CPU (the on_cpu word of its ring's stats line, shm/direct.h):
 * the reader yields to it once a get, then sleeps -- a get with nothing
 * to read waits out its timeout without spinning (a reader that believed
 * the word on every look would yield in a loop: all of its CPU), and the
 * next record still wakes it. */
static void test_on_cpu_hint(void **state)
{
	struct rawpub rp;
	shn_client *c;
	shn_conn conn;
	shn_port *p = fed_port(*state, &rp, &c, &conn);
	shn_notification out[8];
	cpu_set_t one, was;

	rawpub_direct(&rp, 1, "k", "d2", 0);
	assert_int_equal(h_get(p, out, 8), 1);   /* the reader's last ring is rp's */
	expect_note(&out[0], "d2", 2, conn);

	/* this thread on CPU 0, the word saying CPU 0 */
	assert_int_equal(pthread_getaffinity_np(pthread_self(), sizeof(was), &was), 0);
	CPU_ZERO(&one);
	CPU_SET(0, &one);
	assert_int_equal(pthread_setaffinity_np(pthread_self(), sizeof(one), &one), 0);
	struct shn_direct_pub_stats *ps = (void *)(rp.ring + SHN_DIRECT_PSTATS_OFF);
	atomic_store(&ps->on_cpu, 1);

	for (int round = 0; round < 3; round++) {
		int64_t t0 = h_now_ms(), c0 = h_thread_cpu_ms();

		assert_int_equal(shn_port_get(p, out, 8, 300), -ETIMEDOUT);
		assert_true(h_now_ms() - t0 >= 290);
		if (h_thread_cpu_ms() - c0 > 120)
			fail_msg("round %d: a get used %lld ms of CPU in 300: it yielded on the "
				 "publisher's word over and over instead of sleeping", round,
				 (long long)(h_thread_cpu_ms() - c0));
	}
	rawpub_direct(&rp, 1, "k", "d3", 0);
	assert_int_equal(h_get(p, out, 8), 1);
	expect_note(&out[0], "d3", 3, conn);
	assert_int_equal(pthread_setaffinity_np(pthread_self(), sizeof(was), &was), 0);
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
	struct rawpub rp;
	shn_client *c;
	shn_conn conn;
	shn_port *p = fed_port(*state, &rp, &c, &conn);
	shn_notification out[8];

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
	rawpub_open(h, &rp, p, out);
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

	rawpub_open(h, &rp, p, out);
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

/* The port's only filter is the prefix "k/": a hostile publisher's notes
 * with keys outside it (another first byte, the prefix's first byte
 * alone: shorter, a longer look-alike) are dropped by the reader, quietly,
 * the ones under it kept in order with the prefix filter's conn; a record
 * of outside keys only leaves nothing, and the ring goes on. */
static void test_outside_prefix(void **state)
{
	struct harness *h = *state;
	shn_client *c = connect_direct(h);
	shn_conn conn;
	shn_port *p;
	struct rawpub rp;
	shn_notification out[8];
	uint8_t buf[512];
	long faults = direct_faults(c);

	assert_int_equal(shn_port_open(c, NULL, &p), 0);
	assert_int_equal(shn_subscribe(p, "k/", 2, SHN_EV_ALL, SHN_SUBSCRIBE_PREFIX, &conn), 0);
	rawpub_start(h, &rp);
	rawpub_broker(&rp, "k/0", "b1");
	assert_int_equal(h_get(p, out, 8), 1);
	assert_int_equal(out[0].conn, conn);
	rawpub_take_ring(&rp);
	let_reader_adopt();

	const struct wnote mixed[] = {
		{ 1, "k/in", 0, "d1" }, { 1, "x/out", 0, "d2" }, { 1, "k", 0, "d3" },
		{ 1, "k/", 0, "d4" }, { 1, "kk/", 0, "d5" },
	};
	uint32_t len = rec_build(&rp, buf, sizeof(buf), mixed, 5, 0);
	rec_put(&rp, buf, len, len);
	assert_int_equal(h_get(p, out, 8), 2);
	assert_int_equal(out[0].key_len, 4);
	assert_memory_equal(out[0].key, "k/in", 4);
	assert_memory_equal(out[0].data, "d1", 2);
	assert_int_equal(out[1].key_len, 2);
	assert_memory_equal(out[1].key, "k/", 2);
	assert_memory_equal(out[1].data, "d4", 2);
	for (int i = 0; i < 2; i++) {
		assert_int_equal(out[i].conn, conn);
		assert_int_equal(out[i].seq, 2 + i);
		assert_int_equal(out[i].batch_count, 2);
		assert_int_equal(out[i].sender_pid, getpid());
	}
	const struct wnote outside[] = { { 1, "k", 0, "e1" }, { 1, "j/k", 0, "e2" } };
	len = rec_build(&rp, buf, sizeof(buf), outside, 2, 0);
	rec_put(&rp, buf, len, len);
	assert_int_equal(shn_port_get(p, out, 8, 200), -ETIMEDOUT);
	rawpub_direct(&rp, 1, "k/z", "f1", 0);
	assert_int_equal(h_get(p, out, 8), 1);
	assert_int_equal(out[0].key_len, 3);
	assert_memory_equal(out[0].key, "k/z", 3);
	assert_int_equal(out[0].conn, conn);
	assert_int_equal(out[0].seq, 4);
	assert_int_equal(shn_port_get(p, out, 8, 100), -ETIMEDOUT);
	assert_int_equal(direct_faults(c), faults);   /* dropped, not a fault */
	rawpub_stop(&rp);
	h_disconnect(c);
}

/* A brokered gap report (what shn_notify_gap sends: SHN_EV_OVERFLOW, key,
 * the count little-endian), stamped gen 0. */
static void rawpub_gap(struct rawpub *rp, const char *key, uint64_t count)
{
	struct shn_ring_prod *prod = (void *)(rp->dc.pub + SHN_PUB_PROD_OFF);
	uint8_t *d = rp->dc.pub + SHN_RING_HDR_SIZE;
	uint32_t mask = rp->dc.r.rep.pub_capacity - 1, klen = (uint32_t)strlen(key);
	uint32_t len = sizeof(struct shn_pub_batch) + shn_pub_note_size(klen, 8);
	struct shn_pub_batch *b = (void *)(d + (rp->dc.tail & mask));
	struct shn_pub_note *pn = (void *)(b + 1);
	uint64_t one = 1;

	assert_true((rp->dc.tail & mask) + len <= rp->dc.r.rep.pub_capacity);
	memset(b, 0, len);
	b->h.len = len;
	b->h.type = SHN_REC_BATCH;
	b->count = 1;
	b->batch_id = rp->dc.next_batch++;
	pn->event = SHN_EV_OVERFLOW_WIRE;
	pn->key_len = (uint16_t)klen;
	pn->data_len = 8;
	memcpy(pn + 1, key, klen);
	for (int k = 0; k < 8; k++)
		((uint8_t *)(pn + 1))[klen + k] = (uint8_t)(count >> (8 * k));
	rp->dc.tail += len;
	atomic_store_explicit(&prod->tail, rp->dc.tail, memory_order_release);
	assert_int_equal(write(rp->dc.r.fds[SHN_HELLO_FD_DOORBELL], &one, sizeof(one)), 8);
}

/* A gap report (a bridge's remote loss) uses no number: the broker's
 * seq does not jump by it, and neither may the seq of the direct note
 * after it (the broker's own OVERFLOW, which has no key, does move it). */
static void test_gap_then_direct(void **state)
{
	struct harness *h = *state;
	shn_client *c = connect_direct(h);
	shn_conn conn;
	shn_port *p = h_port_sub(c, 0, "k", 1, SHN_EV_ALL, &conn);
	struct rawpub rp;
	shn_notification out[8];

	rawpub_open(h, &rp, p, out);
	expect_note(&out[0], "b1", 1, conn);
	rawpub_gap(&rp, "k", 5);
	assert_int_equal(h_get(p, out, 8), 1);
	assert_int_equal(out[0].event, SHN_EV_OVERFLOW);
	assert_int_equal(out[0].key_len, 1);
	assert_int_equal(h_le64(out[0].data), 5);
	wait_routed(&rp);
	rawpub_direct(&rp, 1, "k", "d2", 0);
	assert_int_equal(h_get(p, out, 8), 1);
	expect_note(&out[0], "d2", 2, conn);   /* not 7 */
	rawpub_broker(&rp, "k", "b3");
	assert_int_equal(h_get(p, out, 8), 1);
	expect_note(&out[0], "b3", 3, conn);
	assert_int_equal(shn_port_get(p, out, 8, 100), -ETIMEDOUT);
	rawpub_stop(&rp);
	h_disconnect(c);
}

/* ---- hostile publishers beside a healthy one ----------------------------- */

/* What a hostile publisher writes into its direct ring (or its counters),
 * after one good record the port received. */
enum scribble {
	/* the reader refuses these: DIRECT_FAULT, the publisher cut off */
	S_LEN_ODD,         /* record len not a multiple of 8 */
	S_LEN_PAST_TAIL,   /* len reaching past the published tail */
	S_LEN_OVER_HALF,   /* len (and tail) over half the ring */
	S_LEN_SHORT,       /* len shorter than a direct batch header */
	S_TYPE_PAD,        /* a PAD that does not end the data area */
	S_TYPE_DELIVERY,   /* a broker's record type */
	S_HDR_FLAGS,       /* record header flags */
	S_SENDER_PID,      /* the sender forged */
	S_SENDER_UID,
	S_BATCH_FLAGS,     /* flags no version defines */
	S_COUNT_0,
	S_COUNT_MORE,      /* one more note than the record holds */
	S_COUNT_HUGE,
	S_KEY_LEN_0,
	S_KEY_LEN_LONG,    /* SHN_KEY_MAX_WIRE + 1, all of it there */
	S_DATA_PAST,       /* data_len past the record */
	S_RUN_FLAGS,       /* a form no version knows */
	S_RUN_LEN,         /* a length in a run with a length word per note */
	S_SAME_LEN_0,      /* a run of one length, 0 bytes */
	S_SAME_LEN_PAST,   /* a run of one length whose slots run past the record */
	S_RUN_CONN,       /* conn is the reader's to fill */
	S_ITEM_RESERVED,   /* a note's length word, its upper half */
	S_KEY_PADDING,     /* a run's key padding not zero */
	S_DATA_PADDING,    /* a note's data padding not zero */
	S_RUN_COUNT_0,     /* a run of no notes */
	S_RUN_COUNT_MORE,  /* a run of more notes than follow it */
	S_EVENT_0,
	S_EV_OVERFLOW,     /* each system event bit */
	S_EV_BIT29,
	S_EV_BIT30,
	S_EV_HANDLE_CLOSE,
	S_BATCH_ID_AGAIN,  /* batch_id not increasing */
	S_GEN_OLD,         /* gen before the ring opened */
	S_LOST_BACK,       /* lost less than told before */
	S_LOST_JUMP,       /* lost more than 2^32 - 1 on */
	S_COUNTER_BACK,    /* the dropped counter going back, ring empty */
	S_COUNTER_JUMP,    /* ... more than 2^32 - 1 on */
	S_TAIL_BACK,       /* the tail moves backwards */
	S_TAIL_JUMP,       /* ... past a ring's worth */
	S_GARBAGE_DATA,    /* garbage records from the head on */
	S_GARBAGE_RING,    /* garbage over the whole segment, tail included */
	/* the reader takes these: notes no filter takes are dropped */
	S_KEY_UNWATCHED,   /* a key the port never subscribed to */
	S_EVENT_UNWATCHED, /* the watched key, an event outside the mask */
	S_MIXED,           /* both of those, and a good note, in one record */
	S_COUNTER_LOSS,    /* a loss told by the counter alone: one OVERFLOW */
	S_NKINDS
};
#define S_FIRST_TAKEN S_KEY_UNWATCHED

static const char *const scribble_name[S_NKINDS] = {
	"len-odd", "len-past-tail", "len-over-half", "len-short", "type-pad",
	"type-delivery", "hdr-flags", "sender-pid", "sender-uid", "batch-flags",
	"count-0", "count-more", "count-huge", "key-len-0", "key-len-long", "data-past",
	"run-flags", "run-len", "same-len-0", "same-len-past", "run-conn", "item-reserved", "key-padding",
	"data-padding", "run-count-0", "run-count-more", "event-0",
	"ev-overflow", "ev-bit29", "ev-bit30", "ev-handle-close", "batch-id-again", "gen-old",
	"lost-back", "lost-jump", "counter-back", "counter-jump", "tail-back", "tail-jump",
	"garbage-data", "garbage-ring", "key-unwatched", "event-unwatched", "mixed",
	"counter-loss",
};

#define FLOOD_NOTES 100   /* the healthy publisher's notes per round */
#define H_MASK 3u         /* the port takes events 1 and 2 of key "h" */

static uint64_t xorshift(uint64_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 7;
	*x ^= *x << 17;
	return *x;
}

static void fill_garbage(uint8_t *p, size_t n, uint64_t seed)
{
	for (size_t i = 0; i < n; i += 8) {
		uint64_t v = xorshift(&seed);

		memcpy(p + i, &v, n - i < 8 ? n - i : 8);
	}
}

/* The hostile publisher's attack k.  Returns true when a good record may
 * follow it in the ring (the bad one is whole and first). */
static bool scribble(struct rawpub *rp, enum scribble k, uint64_t pre_lost)
{
	static char long_key[SHN_KEY_MAX_WIRE + 1];
	uint8_t buf[1024];
	struct wnote w = { 1, "h", 0, "xx" };
	struct shn_direct_batch *b = (void *)buf;
	struct shn_direct_run *n = (void *)(b + 1);
	/* the first run's note, after its key "h" and the key's padding */
	struct shn_direct_item *it = (void *)((uint8_t *)(n + 1) + 8);
	uint32_t cap = rp->open.capacity, len;
	uint64_t advance;

	memset(long_key, 'h', sizeof(long_key));
	switch (k) {
	case S_KEY_LEN_LONG:
		w.key = long_key;
		w.key_len = sizeof(long_key);
		break;
	case S_EVENT_0:
		w.event = 0;
		break;
	case S_EV_OVERFLOW:
		w.event |= SHN_EV_OVERFLOW_WIRE;
		break;
	case S_EV_BIT29:
		w.event |= 1u << 29;
		break;
	case S_EV_BIT30:
		w.event |= 1u << 30;
		break;
	case S_EV_HANDLE_CLOSE:
		w.event |= SHN_EV_HANDLE_CLOSE_WIRE;
		break;
	case S_KEY_UNWATCHED:
		w.key = "zz";
		break;
	case S_EVENT_UNWATCHED:
		w.event = 4;
		break;
	case S_COUNTER_BACK:
		atomic_store(&rawpub_stats(rp)->dropped, pre_lost - 1);
		rawpub_poke(rp);
		return false;
	case S_COUNTER_JUMP:
		atomic_store(&rawpub_stats(rp)->dropped, pre_lost + SHN_DIRECT_LOST_MAX + 1);
		rawpub_poke(rp);
		return false;
	case S_COUNTER_LOSS:
		atomic_store(&rawpub_stats(rp)->dropped, pre_lost + 5);
		rawpub_poke(rp);
		return true;
	case S_TAIL_BACK:
		rawpub_tail(rp, rp->dtail - 8);
		return false;
	case S_TAIL_JUMP:
		rawpub_tail(rp, rp->dtail + cap + 8);
		return false;
	case S_GARBAGE_DATA: {
		uint32_t off = (uint32_t)(rp->dtail & (cap - 1));

		fill_garbage(rp->ring + SHN_RING_HDR_SIZE + off, cap - off, 0x9e3779b97f4a7c15ull);
		rawpub_tail(rp, rp->dtail + (cap - off) / 2 / 8 * 8);
		return false;
	}
	case S_GARBAGE_RING:
		fill_garbage(rp->ring, SHN_RING_HDR_SIZE + (size_t)cap, 0xd1b54a32d192ed03ull);
		rawpub_poke(rp);
		return false;
	default:
		break;
	}
	if (k == S_MIXED) {
		struct wnote m[3] = { { 1, "zz", 0, "zm" }, { 1, "h", 0, "dm" }, { 4, "h", 0, "dx" } };

		len = rec_build(rp, buf, sizeof(buf), m, 3, pre_lost);
	} else {
		len = rec_build(rp, buf, sizeof(buf), &w, 1, pre_lost);
	}
	advance = len;
	switch (k) {
	case S_LEN_ODD:
		b->h.len = len - 4;
		break;
	case S_LEN_PAST_TAIL:
		b->h.len = len + 8;
		break;
	case S_LEN_OVER_HALF:
		b->h.len = cap / 2 + 8;
		advance = b->h.len;
		break;
	case S_LEN_SHORT:
		b->h.len = 8;
		advance = 8;
		len = 8;
		break;
	case S_TYPE_PAD:
		b->h.type = SHN_REC_PAD;
		break;
	case S_TYPE_DELIVERY:
		b->h.type = SHN_REC_DELIVERY;
		break;
	case S_HDR_FLAGS:
		b->h.flags = 1;
		break;
	case S_SENDER_PID:
		b->sender_pid = getpid();
		break;
	case S_SENDER_UID:
		b->sender_uid = 1;
		break;
	case S_BATCH_FLAGS:
		b->flags = 1;
		break;
	case S_COUNT_0:
		b->count = 0;
		break;
	case S_COUNT_MORE:
		b->count = 2;
		break;
	case S_COUNT_HUGE:
		b->count = UINT32_MAX;
		break;
	case S_KEY_LEN_0:
		n->key_len = 0;
		break;
	case S_DATA_PAST:
		it->data_len = 64;
		break;
	case S_RUN_FLAGS:
		n->flags = 2;
		break;
	case S_RUN_LEN:
		n->data_len = 1;
		break;
	case S_SAME_LEN_0:
		n->flags = SHN_DIRECT_RUN_SAME_LEN;
		n->data_len = 0;
		break;
	case S_SAME_LEN_PAST:
		/* one note: its 16 bytes (length word, "xx", padding) read
		 * as a slot of 24 */
		n->flags = SHN_DIRECT_RUN_SAME_LEN;
		n->data_len = 24;
		break;
	case S_RUN_CONN:
		n->conn = 1;
		break;
	case S_ITEM_RESERVED:
		it->reserved = 1;
		break;
	case S_KEY_PADDING:
		/* key "h" at 80, padding to 88 */
		buf[sizeof(*b) + sizeof(*n) + 1 + 2] = 0x5a;
		break;
	case S_DATA_PADDING:
		/* 2 data bytes after the note's length word at 88, padding to 104 */
		buf[sizeof(*b) + sizeof(*n) + 8 + sizeof(*it) + 2 + 3] = 0x5a;
		break;
	case S_RUN_COUNT_0:
		n->count = 0;
		break;
	case S_RUN_COUNT_MORE:
		n->count = 2;   /* and the header's count 2: a note past the end */
		b->count = 2;
		break;
	case S_BATCH_ID_AGAIN:
		b->batch_id--;   /* the good record's */
		break;
	case S_GEN_OLD:
		b->gen = rp->open.open_gen - 1;
		break;
	case S_LOST_BACK:
		b->lost = pre_lost - 1;
		break;
	case S_LOST_JUMP:
		b->lost = pre_lost + SHN_DIRECT_LOST_MAX + 1;
		break;
	default:
		break;
	}
	rec_put(rp, buf, len, advance);
	/* a record that claims more than was published: the next one would
	 * cover its claim */
	return k != S_LEN_PAST_TAIL && k != S_LEN_OVER_HALF && k != S_LEN_SHORT;
}

struct flood {
	const char *sock;
	struct h_chan started;
	uint32_t notes;
};

/* A healthy library publisher: notes of key "g", data its index (4
 * bytes), one per batch; every shn_notify returns 0.  Tells the parent
 * after the first ten. */
static int flood_child(void *arg)
{
	struct flood *f = arg;
	shn_client *c;

	setenv("SHMNOTIFY_DIRECT", "on", 1);
	CHILD_CHECK_EQ(shn_connect(f->sock, &c), 0);
	for (uint32_t i = 0; i < f->notes; i++) {
		shn_notification x = { .event = 1, .key = "g", .key_len = 1, .data = &i,
				       .data_len = sizeof(i) };

		CHILD_CHECK_EQ(shn_notify(c, &x, 1, 0), 0);
		if (i == 9)
			CHILD_CHECK(h_send(&f->started, 1));
	}
	shn_disconnect(c);
	return 0;
}

/* The broker's direct_faults now. */
static long direct_faults(shn_client *c)
{
	char *st = h_stats(c), *at = strstr(st, "\"direct_faults\":");
	long v;

	assert_non_null(at);
	v = strtol(at + strlen("\"direct_faults\":"), NULL, 10);
	free(st);
	return v;
}

/* The broker cut rp off: its socket reaches EOF (messages before it are
 * read and dropped). */
static void expect_cut_off(struct rawpub *rp, const char *what)
{
	uint8_t b[SHN_MSG_MAX];
	int fds[8], n = 8;

	for (;;) {
		ssize_t r = h_raw_recv(rp->dc.r.sock, b, sizeof(b), fds, &n, H_TIMEOUT_MS);

		for (int i = 0; i < n; i++)
			close(fds[i]);
		n = 8;
		if (r <= 0) {
			if (r != 0)
				fail_msg("%s: the hostile publisher was not cut off (%zd)", what, r);
			return;
		}
	}
}

static void test_scribbled_rings(void **state)
{
	struct harness *h = *state;
	shn_client *c = connect_direct(h);
	shn_port_options opt = { .capacity = 65536, .overflow = SHN_OVERFLOW_BLOCK };
	shn_port *p;
	shn_conn gconn, hconn;
	shn_notification out[16];
	uint64_t last_seq = 0;
	long faults = 0;

	assert_int_equal(shn_port_open(c, &opt, &p), 0);
	assert_int_equal(shn_subscribe(p, "g", 1, SHN_EV_ALL, 0, &gconn), 0);
	assert_int_equal(shn_subscribe(p, "h", 1, H_MASK, 0, &hconn), 0);
	for (int k = 0; k < S_NKINDS; k++) {
		const char *name = scribble_name[k];
		bool refused = k < S_FIRST_TAKEN;
		uint64_t pre_lost = (k == S_LOST_BACK || k == S_COUNTER_BACK) ? 2 : 0;
		const char *want_h[2];
		int nwant = 0, got_g = 0, got_h = 0;
		bool overflow_seen = false;
		struct rawpub rp;
		struct flood f = { .sock = h->sock, .notes = FLOOD_NOTES };
		uint8_t byte;
		pid_t pid;

		/* a hostile publisher with a direct ring to the port, read
		 * once well (so the reader has adopted it) */
		rawpub_start(h, &rp);
		rawpub_broker(&rp, "h", "b1");
		assert_int_equal(h_get(p, out, 16), 1);
		assert_memory_equal(out[0].data, "b1", 2);
		assert_int_equal(out[0].seq, last_seq + 1);
		last_seq = out[0].seq;
		rawpub_take_ring(&rp);
		rawpub_direct(&rp, 1, "h", "d2", pre_lost);
		if (pre_lost != 0) {
			assert_int_equal(h_get(p, out, 1), 1);
			assert_int_equal(out[0].event, SHN_EV_OVERFLOW);
			assert_int_equal(h_le64(out[0].data), pre_lost);
			last_seq += pre_lost;
		}
		assert_int_equal(h_get(p, out, 1), 1);
		assert_memory_equal(out[0].data, "d2", 2);
		assert_int_equal(out[0].conn, hconn);
		assert_int_equal(out[0].seq, last_seq + 1);
		last_seq = out[0].seq;

		/* a healthy publisher floods the port meanwhile */
		h_chan_init(&f.started);
		pid = h_fork(flood_child, &f);
		assert_int_equal(h_recv(&f.started, &byte, H_TIMEOUT_MS), 1);
		if (scribble(&rp, (enum scribble)k, pre_lost)) {
			/* a good record after it: read only when the bad
			 * one was not refused */
			rawpub_direct(&rp, 1, "h", "d3", k == S_COUNTER_LOSS ? pre_lost + 5 : pre_lost);
			if (!refused) {
				if (k == S_MIXED)
					want_h[nwant++] = "dm";
				want_h[nwant++] = "d3";
			}
		}

		/* every healthy note, in order; of the hostile one only what
		 * was wanted */
		while (got_g < FLOOD_NOTES || got_h < nwant) {
			int r = shn_port_get(p, out, 16, H_TIMEOUT_MS);

			if (r <= 0)
				fail_msg("%s: shn_port_get %d after %d healthy and %d hostile notes",
					 name, r, got_g, got_h);
			for (int i = 0; i < r; i++) {
				const shn_notification *x = &out[i];

				if (x->event == SHN_EV_OVERFLOW) {
					if (k != S_COUNTER_LOSS || overflow_seen || got_h != 0 ||
					    h_le64(x->data) != 5)
						fail_msg("%s: an OVERFLOW of %llu", name,
							 (unsigned long long)h_le64(x->data));
					overflow_seen = true;
					last_seq += 5;
					continue;
				}
				if (x->seq != last_seq + 1)
					fail_msg("%s: seq %llu after %llu", name,
						 (unsigned long long)x->seq,
						 (unsigned long long)last_seq);
				last_seq = x->seq;
				assert_int_equal(x->event, 1);
				assert_int_equal(x->key_len, 1);
				if (memcmp(x->key, "g", 1) == 0) {
					uint32_t idx;

					assert_int_equal(x->data_len, sizeof(idx));
					memcpy(&idx, x->data, sizeof(idx));
					if (idx != (uint32_t)got_g)
						fail_msg("%s: healthy note %u where %d was due", name,
							 idx, got_g);
					assert_int_equal(x->conn, gconn);
					got_g++;
				} else if (memcmp(x->key, "h", 1) == 0) {
					if (got_h >= nwant || x->data_len != 2 ||
					    memcmp(x->data, want_h[got_h], 2) != 0)
						fail_msg("%s: a hostile note delivered (%.2s)", name,
							 (const char *)x->data);
					assert_int_equal(x->conn, hconn);
					got_h++;
				} else {
					fail_msg("%s: a note of key %.*s", name, (int)x->key_len,
						 (const char *)x->key);
				}
			}
		}
		assert_true(k != S_COUNTER_LOSS || overflow_seen);
		h_wait_ok(pid, H_CHILD_TIMEOUT_MS);
		h_chan_close(&f.started);
		/* nothing more; the reader has looked at every ring */
		assert_int_equal(shn_port_get(p, out, 16, 100), -ETIMEDOUT);
		if (refused) {
			expect_cut_off(&rp, name);
			faults++;
		}
		assert_int_equal(direct_faults(c), faults);
		rawpub_stop(&rp);
	}
	/* the port goes on */
	shn_client *other = h_connect(h);
	shn_notification x = { .event = 1, .key = "h", .key_len = 1, .data = "o1", .data_len = 2 };
	assert_int_equal(shn_notify(other, &x, 1, 0), 0);
	assert_int_equal(h_get(p, out, 16), 1);
	assert_memory_equal(out[0].data, "o1", 2);
	assert_int_equal(out[0].seq, last_seq + 1);
	h_disconnect(other);
	h_disconnect(c);
}

/* ---- a hostile reader of a library publisher's ring ---------------------- */

/* What the shared page between the test and its children holds. */
struct cons_shared {
	_Atomic int stop;            /* the parent: publish no more */
	_Atomic uint32_t published;  /* the publisher: notes it published */
	_Atomic int done;            /* the publisher: it published its last */
	_Atomic uint32_t received;   /* the healthy subscriber: notes it received */
};

struct cons_child {
	const char *sock;
	struct cons_shared *sh;
	struct h_chan ready;
};

/* The library publisher: notes of key "K", data their index, until told
 * to stop; every shn_notify returns 0.  One at a time: the next once the
 * healthy subscriber has the last, so that its port never fills and each
 * batch can go directly (a publisher that outruns its subscribers keeps
 * taking the broker path, and then never looks at the raw subscriber's
 * head again). */
static int cons_publisher(void *arg)
{
	struct cons_child *a = arg;
	shn_client *c;
	uint32_t i;

	setenv("SHMNOTIFY_DIRECT", "on", 1);
	CHILD_CHECK_EQ(shn_connect(a->sock, &c), 0);
	for (i = 0; !atomic_load(&a->sh->stop); i++) {
		shn_notification x = { .event = 1, .key = "K", .key_len = 1, .data = &i,
				       .data_len = sizeof(i) };

		CHILD_CHECK_EQ(shn_notify(c, &x, 1, 0), 0);
		atomic_store(&a->sh->published, i + 1);
		while (atomic_load(&a->sh->received) <= i)
			usleep(50);   /* bounded by the child's alarm */
	}
	atomic_store(&a->sh->done, 1);
	shn_disconnect(c);
	return 0;
}

/* A healthy library subscriber of K (SHN_OVERFLOW_BLOCK: nothing may be
 * lost): every note the publisher published, in order, seq on by one. */
static int cons_subscriber(void *arg)
{
	struct cons_child *a = arg;
	shn_port_options opt = { .capacity = 65536, .overflow = SHN_OVERFLOW_BLOCK };
	shn_notification out[32];
	shn_client *c;
	shn_port *p;
	shn_conn conn;
	uint32_t got = 0;
	uint64_t seq = 0;

	setenv("SHMNOTIFY_DIRECT", "on", 1);
	CHILD_CHECK_EQ(shn_connect(a->sock, &c), 0);
	CHILD_CHECK_EQ(shn_port_open(c, &opt, &p), 0);
	CHILD_CHECK_EQ(shn_subscribe(p, "K", 1, SHN_EV_ALL, 0, &conn), 0);
	CHILD_CHECK(h_send(&a->ready, 1));
	while (!atomic_load(&a->sh->done) || got < atomic_load(&a->sh->published)) {
		int r = shn_port_get(p, out, 32, 100);

		CHILD_CHECK(r > 0 || r == -ETIMEDOUT);
		for (int i = 0; i < r; i++) {
			uint32_t idx;

			CHILD_CHECK_EQ(out[i].event, 1);
			CHILD_CHECK_EQ(out[i].conn, conn);
			CHILD_CHECK_EQ(out[i].seq, seq + 1);
			CHILD_CHECK_EQ(out[i].data_len, sizeof(idx));
			memcpy(&idx, out[i].data, sizeof(idx));
			CHILD_CHECK_EQ(idx, got);
			seq = out[i].seq;
			got++;
			atomic_store(&a->sh->received, got);
		}
	}
	CHILD_CHECK_EQ(shn_port_get(p, out, 32, 100), -ETIMEDOUT);
	shn_disconnect(c);
	return 0;
}

/* What the raw subscriber writes as the head of its direct ring. */
enum cons_scribble {
	C_PAST_FULL,   /* one record's worth past a full ring's tail */
	C_FAR,         /* far past the tail */
	C_MAX,         /* UINT64_MAX */
	C_BACK,        /* a valid head first, then one before it */
	C_STORM,       /* a new random value, over and over, until the ring closes */
	C_NKINDS
};
static const char *const cons_name[C_NKINDS] = { "past-full", "far", "max", "back", "storm" };

#define CONS_ROUNDS 30

/* The raw subscriber's next direct-path message, draining its port's
 * ring meanwhile (the broker path must find room there).  *brokered
 * counts the batches drained. */
static ssize_t cons_next_msg(struct hd_client *rs, void *buf, size_t len, int *fds, int *nfds,
			     int *brokered, const char *what, int round)
{
	int64_t end = h_now_ms() + H_TIMEOUT_MS;
	int want = *nfds;

	for (;;) {
		ssize_t n;

		*brokered += hd_port_drain(rs, NULL);
		*nfds = want;
		n = h_raw_recv(rs->r.sock, buf, len, fds, nfds, 20);
		if (n != -ETIMEDOUT) {
			assert_true(n > 0);
			return n;
		}
		if (h_now_ms() > end)
			fail_msg("round %d: the raw subscriber waited %d ms for %s (%d brokered)", round,
				 H_TIMEOUT_MS, what, *brokered);
	}
}

/* The raw subscriber's side of the publisher's next ring to its port
 * (its descriptors into fds[0..3)): offered after a batch the broker routed
 * there since the last offer (*before: what was drained by then); in the
 * first round the pair's first batch, later the batches after the last
 * ring was given up. */
static void cons_take_open(struct hd_client *rs, struct shn_msg_direct_open *so, int *fds,
			   int *brokered, int *before, int round)
{
	int64_t end;
	int n = 4;

	assert_int_equal(cons_next_msg(rs, so, sizeof(*so), fds, &n, brokered, "DIRECT_OPEN",
				       round), sizeof(*so));
	assert_int_equal(so->hdr.type, SHN_MSG_DIRECT_OPEN);
	assert_int_equal(so->role, SHN_DIRECT_SUBSCRIBER);
	assert_int_equal(n, SHN_DOPEN_SUB_NFDS);
	assert_int_equal(so->port_id, rs->port_id);
	/* the batch came first (its tail may be published after the message
	 * is sent) */
	end = h_now_ms() + H_TIMEOUT_MS;
	while (*brokered == *before) {
		if (h_now_ms() > end)
			fail_msg("round %d: a ring offered, no brokered batch", round);
		h_sleep_ms(1);
		*brokered += hd_port_drain(rs, NULL);
	}
	*before = *brokered;
}

static void test_scribbled_consumer_index(void **state)
{
	struct harness *h = *state;
	struct cons_shared *sh = h_shared(sizeof(*sh));
	struct cons_child a = { .sock = h->sock, .sh = sh };
	struct hd_client rs;
	pid_t sub, pub;
	uint8_t byte;
	int brokered = 0, before = 0;
	uint64_t rnd = 0x2545f4914f6cdd1dull;

	h_chan_init(&a.ready);
	sub = h_fork(cons_subscriber, &a);
	assert_int_equal(h_recv(&a.ready, &byte, H_TIMEOUT_MS), 1);
	pub = h_fork(cons_publisher, &a);

	/* A publisher that gave a ring up keeps the broker path to that port
	 * (it is not offered a ring again): each round is a new raw
	 * subscriber, a new port, a new pair. */
	for (int round = 0; round < CONS_ROUNDS; round++) {
		enum cons_scribble k = (enum cons_scribble)(round % C_NKINDS);
		/* every kind against a DROP port and a BLOCK one: a BLOCK
		 * publisher also reads the head while it waits for room */
		uint32_t overflow = (round / C_NKINDS) % 2 ? SHN_OVERFLOW_BLOCK_WIRE
							   : SHN_OVERFLOW_DROP_WIRE;
		struct shn_msg_direct_open so;
		struct shn_msg_direct_close cl;
		int fds[4] = { -1, -1, -1, -1 }, n;
		const struct shn_ring_prod *prod;
		struct shn_ring_cons *cons;
		uint8_t *ring;
		void *cseg;
		size_t rsize;

		hd_start(h, &rs);
		hd_port_sub(&rs, "K", 4096, overflow);
		cons_take_open(&rs, &so, fds, &brokered, &before, round);
		assert_int_equal(so.overflow, overflow);
		rsize = SHN_RING_HDR_SIZE + (size_t)so.capacity;
		ring = mmap(NULL, rsize, PROT_READ, MAP_SHARED, fds[SHN_DOPEN_FD_RING], 0);
		cseg = mmap(NULL, SHN_DIRECT_CONS_SEG_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED,
			    fds[SHN_DOPEN_FD_CONS], 0);
		assert_true(ring != MAP_FAILED && cseg != MAP_FAILED);
		prod = (const void *)(ring + SHN_DIRECT_PROD_OFF);
		cons = (void *)((uint8_t *)cseg + SHN_DIRECT_CONS_OFF);

		switch (k) {
		case C_PAST_FULL:
			/* nothing consumed: the publisher's tail stays within
			 * one ring's worth of 0 */
			atomic_store(&cons->head, (uint64_t)so.capacity + 64);
			break;
		case C_FAR:
			atomic_store(&cons->head, 1ull << 40);
			break;
		case C_MAX:
			atomic_store(&cons->head, UINT64_MAX);
			break;
		case C_BACK: {
			/* a valid head (the tail, a record boundary), then,
			 * once the publisher went past a ring's worth (it read
			 * that head), one a record before it */
			int64_t end = h_now_ms() + H_TIMEOUT_MS;
			uint64_t t;

			/* the port's broker ring drained meanwhile: full,
			 * a BLOCK port would hold the publisher back */
			while ((t = atomic_load(&prod->tail)) == 0) {
				assert_true(h_now_ms() < end);
				h_sleep_ms(1);
				brokered += hd_port_drain(&rs, NULL);
			}
			atomic_store(&cons->head, t);
			while (atomic_load(&prod->tail) <= so.capacity) {
				assert_true(h_now_ms() < end);
				h_sleep_ms(1);
				brokered += hd_port_drain(&rs, NULL);
			}
			atomic_store(&cons->head, t - 8);
			break;
		}
		case C_STORM:
		default:
			break;
		}
		/* the publisher gives the ring up: the broker closes it here */
		for (int64_t end = h_now_ms() + H_TIMEOUT_MS;;) {
			n = 0;
			if (k == C_STORM) {
				ssize_t r;

				atomic_store(&cons->head, xorshift(&rnd));
				brokered += hd_port_drain(&rs, NULL);
				r = h_raw_recv(rs.r.sock, &cl, sizeof(cl), NULL, &n, 1);
				if (r == -ETIMEDOUT && h_now_ms() > end)
					fail_msg("round %d: the storm went on %d ms", round, H_TIMEOUT_MS);
				if (r == -ETIMEDOUT)
					continue;
				assert_int_equal(r, sizeof(cl));
			} else {
				assert_int_equal(cons_next_msg(&rs, &cl, sizeof(cl), NULL, &n, &brokered,
							       cons_name[k], round), sizeof(cl));
			}
			break;
		}
		if (cl.hdr.type != SHN_MSG_DIRECT_CLOSE)
			fail_msg("%s: message %u where DIRECT_CLOSE was due", cons_name[k],
				 cl.hdr.type);
		assert_int_equal(cl.role, SHN_DIRECT_SUBSCRIBER);
		assert_int_equal(cl.ring_id, so.ring_id);
		assert_int_equal(cl.hdr.status, -EPIPE);   /* the publisher's DIRECT_CLOSE */
		munmap(ring, rsize);
		munmap(cseg, SHN_DIRECT_CONS_SEG_SIZE);
		for (int i = 0; i < 4; i++)
			if (fds[i] >= 0)
				close(fds[i]);
		if (round + 1 < CONS_ROUNDS) {
			hd_stop(&rs);
			continue;
		}
		/* the last pair goes on through the broker, with no ring again */
		int64_t end = h_now_ms() + H_TIMEOUT_MS;
		uint8_t buf[256];
		int after = 0;

		while (after < 3) {
			assert_true(h_now_ms() < end);
			after += hd_port_drain(&rs, NULL);
			n = 0;
			assert_int_equal(h_raw_recv(rs.r.sock, buf, sizeof(buf), NULL, &n, 1), -ETIMEDOUT);
		}
		brokered += after;
	}
	h_sleep_ms(300);
	/* The raw port is drained until the children are done: the last
	 * round's is a SHN_OVERFLOW_BLOCK port, and once full it rightly
	 * holds its publisher back -- the healthy subscriber's next note with
	 * it (CI saw the publisher wait for that note past a minute when the
	 * port was left undrained here). */
	atomic_store(&sh->stop, 1);
	for (int64_t end = h_now_ms() + H_TIMEOUT_MS;
	     !atomic_load(&sh->done) || atomic_load(&sh->received) < atomic_load(&sh->published);) {
		if (h_now_ms() > end)
			fail_msg("the children did not finish in %d ms: %u published, %u received, "
				 "done %d", H_TIMEOUT_MS, atomic_load(&sh->published),
				 atomic_load(&sh->received), atomic_load(&sh->done));
		brokered += hd_port_drain(&rs, NULL);
		h_sleep_ms(1);
	}
	h_wait_ok(pub, H_CHILD_TIMEOUT_MS);
	h_wait_ok(sub, H_CHILD_TIMEOUT_MS);
	assert_true(atomic_load(&sh->published) > CONS_ROUNDS);

	/* no fault: a reader's bad head harms only its own ring */
	shn_client *c = h_connect(h);
	assert_int_equal(direct_faults(c), 0);
	h_disconnect(c);
	h_chan_close(&a.ready);
	hd_stop(&rs);
}

/* ---- a ring offered while the library waits for a reply ----------------- */

/* Another thread of the subscriber's process calls the broker over and
 * over (shn_stats_json, a call whose reply carries no descriptor), so that
 * DIRECT_OPENs often arrive while a call waits for its reply. */
struct hammer {
	shn_client *c;
	_Atomic int stop;
	_Atomic long calls;
};

static void *hammer_main(void *arg)
{
	struct hammer *hm = arg;

	while (!atomic_load(&hm->stop)) {
		char *js = NULL;

		if (shn_stats_json(hm->c, &js) >= 0)   /* its length */
			free(js);
		atomic_fetch_add(&hm->calls, 1);
	}
	return NULL;
}

#define OFFER_ROUNDS 100

static void test_offer_during_call(void **state)
{
	struct harness *h = *state;
	shn_client *c = connect_direct(h);
	shn_conn conn;
	shn_port *p = h_port_sub(c, 0, "k", 1, SHN_EV_ALL, &conn);
	struct hammer hm = { .c = c };
	shn_notification out[8];
	pthread_t t;

	assert_int_equal(pthread_create(&t, NULL, hammer_main, &hm), 0);
	for (int round = 0; round < OFFER_ROUNDS; round++) {
		struct rawpub rp;
		int r;

		rawpub_start(h, &rp);
		rawpub_broker(&rp, "k", "b1");
		assert_int_equal(h_get(p, out, 8), 1);
		assert_memory_equal(out[0].data, "b1", 2);
		rawpub_take_ring(&rp);
		/* the subscriber's library was offered the ring too: what is
		 * written there reaches the port, whichever thread read the
		 * offer */
		rawpub_direct(&rp, 1, "k", "d2", 0);
		r = shn_port_get(p, out, 8, H_TIMEOUT_MS);
		if (r != 1)
			fail_msg("round %d: the direct record was not delivered (%d)", round, r);
		assert_memory_equal(out[0].data, "d2", 2);
		rawpub_stop(&rp);
	}
	atomic_store(&hm.stop, 1);
	assert_int_equal(pthread_join(t, NULL), 0);
	assert_true(atomic_load(&hm.calls) > 0);
	h_disconnect(c);
}

int main(int argc, char **argv)
{
	h_parse_args(argc, argv);
	/* a key some tests watch from two ports (a raw one and a healthy
	 * one): let the publishers write both directly */
	setenv("SHMNOTIFY_DIRECT_FANOUT", "64", 1);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_direct_record, h_setup, h_teardown),
		cmocka_unit_test_setup_teardown(test_on_cpu_hint, h_setup, h_teardown),
		cmocka_unit_test_setup_teardown(test_publisher_order, h_setup, h_teardown),
		cmocka_unit_test_setup_teardown(test_barrier, h_setup, h_teardown),
		cmocka_unit_test_setup_teardown(test_hostile_record, h_setup, h_teardown),
		cmocka_unit_test_setup_teardown(test_outside_prefix, h_setup, h_teardown),
		cmocka_unit_test_setup_teardown(test_gap_then_direct, h_setup, h_teardown),
		cmocka_unit_test_setup_teardown(test_scribbled_rings, h_setup, h_teardown),
		cmocka_unit_test_setup_teardown(test_scribbled_consumer_index, h_setup, h_teardown),
		cmocka_unit_test_setup_teardown(test_offer_during_call, h_setup, h_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
