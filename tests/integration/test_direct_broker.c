/* SPDX-License-Identifier: MIT */
/*
 * test_direct_broker.c - the broker's side of the direct path
 * (docs/direct-path.md, docs/protocol.md), spoken raw, without the
 * library's support for it:
 *
 *   - SHN_HELLO_F_DIRECT comes back under --direct auto (the default), not
 *     under --direct off, and never to a client that did not ask;
 *   - DIRECT_SETUP hands over the filter table and a port map, both sealed
 *     read-only; the table follows SUBSCRIBE / UNSUBSCRIBE / PORT_CLOSE /
 *     a subscriber's exit with a new generation before the reply;
 *   - [limits] direct-max-filters: beyond it the table says DISABLED;
 *   - the direct messages from a client that may not send them, a second
 *     DIRECT_SETUP, one with a fan-out outside 1..64 or its reserved field
 *     set, and a DIRECT_FAULT for a ring the client does not hold are
 *     protocol errors (disconnect); DIRECT_CLOSE of such a ring is
 *     -ENOENT.
 */
#define _GNU_SOURCE
#include "harness_direct.h"

#include <errno.h>
#include <dirent.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <xxhash.h>

static uint64_t xxh3(const void *key, size_t len)
{
	return XXH3_64bits(key, len);
}

/* The ports key reaches, as a publisher's library would look it up. */
static int lookup(const struct hd_direct *d, const char *key, struct shn_ftab_match *m, uint32_t max)
{
	size_t len = strlen(key);

	return shn_ftab_lookup(d->t, hd_gen(d), XXH3_64bits(key, len), (const uint8_t *)key,
			       (uint32_t)len, m, max, xxh3);
}

/* Send a DIRECT_SETUP with this fan-out and reserved field. */
static void send_setup(int sock, uint32_t fanout, uint32_t reserved)
{
	struct shn_msg_direct_setup req;

	memset(&req, 0, sizeof(req));
	h_hdr_init(&req.hdr, SHN_MSG_DIRECT_SETUP);
	req.fanout = fanout;
	req.reserved = reserved;
	h_raw_send(sock, &req, sizeof(req));
}

/* ---- the flag ------------------------------------------------------------ */

static void test_hello_flag_auto(void **state)
{
	struct harness *h = *state;
	struct hd_raw r;

	assert_int_equal(hd_hello(h, &r, SHN_HELLO_F_DIRECT), 0);
	assert_true(r.rep.flags & SHN_HELLO_F_DIRECT);
	hd_raw_close(&r);
	/* not asked, not given */
	assert_int_equal(hd_hello(h, &r, 0), 0);
	assert_false(r.rep.flags & SHN_HELLO_F_DIRECT);
	hd_raw_close(&r);
	/* any other request flag is still an argument error */
	assert_int_equal(hd_hello(h, &r, SHN_HELLO_F_DIRECT | 8u), -EINVAL);
	hd_raw_close(&r);
}

static int setup_off(void **state)
{
	static struct harness h;
	static const char *const extra[] = { "--direct", "off", NULL };

	h_start(&h, extra);
	*state = &h;
	return 0;
}

static int teardown_off(void **state)
{
	struct harness *h = *state;

	h_kill_children();
	h_disconnect_all();
	h_stop(h);
	return 0;
}

static void test_hello_flag_off(void **state)
{
	struct harness *h = *state;
	struct hd_raw r;

	assert_int_equal(hd_hello(h, &r, SHN_HELLO_F_DIRECT), 0);
	assert_false(r.rep.flags & SHN_HELLO_F_DIRECT);
	/* not granted: DIRECT_SETUP is a protocol error */
	send_setup(r.sock, 2, 0);
	h_expect_eof(r.sock, "DIRECT_SETUP under --direct off");
	hd_raw_close(&r);
	/* the library's path still works */
	shn_client *c = h_connect(h);
	shn_conn conn;
	shn_port *p = h_port_sub(c, 0, "k", 1, SHN_EV_ALL, &conn);
	shn_notification n = { .event = 1, .key = "k", .key_len = 1 }, out[2];
	assert_int_equal(shn_notify(c, &n, 1, 0), 0);
	assert_int_equal(h_get(p, out, 2), 1);
	h_disconnect(c);
}

/* ---- the filter table ---------------------------------------------------- */

/* Find the id the broker gave the port: the only any-key filter after an
 * any-key subscription on it. */
static uint32_t find_any_port(const struct hd_direct *d)
{
	struct shn_ftab_match m[4];
	int n = lookup(d, "no-such-key-anywhere", m, 4);

	assert_int_equal(n, 1);
	return m[0].port_id;
}

static void test_table_follows_subscriptions(void **state)
{
	struct harness *h = *state;
	struct hd_raw r;
	struct hd_direct d;
	struct shn_ftab_match m[8];
	uint64_t g0, g1, g2, g3;
	shn_conn ca, cb, cany;

	assert_int_equal(hd_hello(h, &r, SHN_HELLO_F_DIRECT), 0);
	assert_true(r.rep.flags & SHN_HELLO_F_DIRECT);
	hd_direct_setup(&r, &d);
	g0 = hd_gen(&d);
	assert_int_equal(lookup(&d, "alpha", m, 8), 0);

	/* a subscriber: each change is in the table, under a new generation,
	 * when its call returns */
	shn_client *c = h_connect(h);
	shn_port *p = h_port_sub(c, 0, NULL, 0, SHN_EV_ALL, &cany);
	g1 = hd_gen(&d);
	assert_true(g1 > g0);
	uint32_t pid = find_any_port(&d);
	assert_int_equal(shn_unsubscribe(c, cany), 0);
	assert_true(hd_gen(&d) > g1);
	assert_int_equal(lookup(&d, "alpha", m, 8), 0);

	assert_int_equal(shn_subscribe(p, "alpha", 5, 0x5, 0, &ca), 0);
	g2 = hd_gen(&d);
	assert_int_equal(lookup(&d, "alpha", m, 8), 1);
	assert_int_equal(m[0].port_id, pid);
	assert_int_equal(m[0].mask, 0x5);
	assert_int_equal(lookup(&d, "beta", m, 8), 0);
	assert_int_equal(lookup(&d, "alph", m, 8), 0);
	/* a second filter on the same key and port: masks merged */
	assert_int_equal(shn_subscribe(p, "alpha", 5, 0x12, 0, &cb), 0);
	assert_true(hd_gen(&d) > g2);
	assert_int_equal(lookup(&d, "alpha", m, 8), 1);
	assert_int_equal(m[0].mask, 0x17);
	assert_int_equal(shn_unsubscribe(c, ca), 0);
	assert_int_equal(lookup(&d, "alpha", m, 8), 1);
	assert_int_equal(m[0].mask, 0x12);

	/* a second port of another client */
	shn_client *c2 = h_connect(h);
	shn_conn c2a;
	shn_port *p2 = h_port_sub(c2, 0, "alpha", 5, 0x40, &c2a);
	(void)p2;
	assert_int_equal(lookup(&d, "alpha", m, 8), 2);
	/* that subscriber goes away: its filters leave the table */
	g3 = hd_gen(&d);
	h_disconnect(c2);
	for (int i = 0; i < 1000 && hd_gen(&d) == g3; i++)
		h_sleep_ms(5);
	assert_true(hd_gen(&d) > g3);
	assert_int_equal(lookup(&d, "alpha", m, 8), 1);
	assert_int_equal(m[0].port_id, pid);

	/* closing the port removes the rest before shn_port_close returns */
	assert_int_equal(shn_port_close(p), 0);
	assert_int_equal(lookup(&d, "alpha", m, 8), 0);

	/* the port map: nothing direct yet */
	const struct shn_pmap_slot *slots = (const void *)(d.pm + 1);
	uint32_t ring;
	assert_int_equal(shn_pmap_find(slots, d.pm->nslots, pid, hd_gen(&d), &ring), -ENOENT);

	h_disconnect(c);
	hd_direct_unmap(&d);
	hd_raw_close(&r);
}

static int setup_small(void **state)
{
	static struct harness h;
	char path[400];
	FILE *f;

	h_prepare(&h);
	snprintf(path, sizeof(path), "%s/small.conf", h.dir);
	f = fopen(path, "w");
	assert_non_null(f);
	fprintf(f, "[limits]\ndirect-max-filters = 2\n");
	fclose(f);
	const char *const extra[] = { "--config", path, NULL };
	h_launch(&h, extra);
	*state = &h;
	return 0;
}

static bool half_disabled(const struct hd_direct *d)
{
	const struct shn_ftab_half *hh =
		(const void *)((const uint8_t *)d->t + d->t->half_off[hd_gen(d) & 1]);

	return (hh->flags & SHN_FTAB_DISABLED) != 0;
}

static void test_table_limit(void **state)
{
	struct harness *h = *state;
	struct hd_raw r;
	struct hd_direct d;
	struct shn_ftab_match m[4];
	shn_conn c1, c2, c3;

	assert_int_equal(hd_hello(h, &r, SHN_HELLO_F_DIRECT), 0);
	hd_direct_setup(&r, &d);
	assert_int_equal(d.t->max_filters, 2);
	shn_client *c = h_connect(h);
	shn_port *p = h_port_sub(c, 0, "a", 1, 1, &c1);
	assert_int_equal(shn_subscribe(p, "b", 1, 1, 0, &c2), 0);
	assert_false(half_disabled(&d));
	assert_int_equal(lookup(&d, "b", m, 4), 1);
	/* one more than the table holds: DISABLED, nothing refused */
	assert_int_equal(shn_subscribe(p, "c", 1, 1, 0, &c3), 0);
	assert_true(half_disabled(&d));
	assert_int_equal(lookup(&d, "b", m, 4), -EAGAIN);
	{
		char *st = h_stats(c);

		assert_non_null(strstr(st, "\"table_disabled\":true"));
		free(st);
	}
	/* and the broker path still delivers */
	shn_notification n = { .event = 1, .key = "c", .key_len = 1 }, out[2];
	assert_int_equal(shn_notify(c, &n, 1, 0), 0);
	assert_int_equal(h_get(p, out, 2), 1);
	/* back under the limit: the table again */
	assert_int_equal(shn_unsubscribe(c, c1), 0);
	assert_false(half_disabled(&d));
	assert_int_equal(lookup(&d, "c", m, 4), 1);
	assert_int_equal(lookup(&d, "a", m, 4), 0);
	h_disconnect(c);
	hd_direct_unmap(&d);
	hd_raw_close(&r);
}

/* ---- messages a client may not send ------------------------------------- */

static void test_bad_direct_messages(void **state)
{
	struct harness *h = *state;
	struct hd_raw r;
	struct hd_direct d;
	struct shn_msg_hdr req;
	struct shn_msg_direct_fault df;
	struct shn_msg_direct_close dc;
	struct shn_msg_reply rep;
	int nfds = 0;

	/* DIRECT_SETUP, DIRECT_FAULT, DIRECT_CLOSE without the flag granted */
	for (int k = 0; k < 3; k++) {
		assert_int_equal(hd_hello(h, &r, 0), 0);
		memset(&df, 0, sizeof(df));
		memset(&dc, 0, sizeof(dc));
		if (k == 0) {
			send_setup(r.sock, 2, 0);
		} else if (k == 1) {
			h_hdr_init(&df.hdr, SHN_MSG_DIRECT_FAULT);
			h_raw_send(r.sock, &df, sizeof(df));
		} else {
			h_hdr_init(&dc.hdr, SHN_MSG_DIRECT_CLOSE);
			dc.role = SHN_DIRECT_SUBSCRIBER;
			h_raw_send(r.sock, &dc, sizeof(dc));
		}
		h_expect_eof(r.sock, "a direct message without SHN_HELLO_F_DIRECT");
		hd_raw_close(&r);
	}

	/* granted: DIRECT_CLOSE of a ring it does not hold is -ENOENT */
	assert_int_equal(hd_hello(h, &r, SHN_HELLO_F_DIRECT), 0);
	hd_direct_setup(&r, &d);
	memset(&dc, 0, sizeof(dc));
	h_hdr_init(&dc.hdr, SHN_MSG_DIRECT_CLOSE);
	dc.role = SHN_DIRECT_PUBLISHER;
	dc.ring_id = 77;
	h_raw_send(r.sock, &dc, sizeof(dc));
	assert_int_equal(h_raw_recv(r.sock, &rep, sizeof(rep), NULL, &nfds, H_TIMEOUT_MS),
			 sizeof(rep));
	assert_int_equal(rep.hdr.type, SHN_MSG_DIRECT_CLOSE);
	assert_int_equal(rep.hdr.id, dc.hdr.id);
	assert_int_equal(rep.hdr.status, -ENOENT);
	/* a second DIRECT_SETUP: protocol error */
	send_setup(r.sock, 2, 0);
	h_expect_eof(r.sock, "second DIRECT_SETUP");
	hd_direct_unmap(&d);
	hd_raw_close(&r);

	/* a DIRECT_SETUP with a fan-out outside 1..64, its reserved field
	 * set, or only the header (protocol 3's): protocol errors */
	for (int k = 0; k < 4; k++) {
		assert_int_equal(hd_hello(h, &r, SHN_HELLO_F_DIRECT), 0);
		if (k == 3) {
			h_hdr_init(&req, SHN_MSG_DIRECT_SETUP);
			h_raw_send(r.sock, &req, sizeof(req));
		} else {
			send_setup(r.sock, k == 0 ? 0 : k == 1 ? SHN_DIRECT_FANOUT_MAX + 1 : 1,
				   k == 2 ? 1 : 0);
		}
		h_expect_eof(r.sock, "a DIRECT_SETUP out of bounds");
		hd_raw_close(&r);
	}
	/* the bounds themselves are taken */
	for (uint32_t f = 1; f <= SHN_DIRECT_FANOUT_MAX; f += SHN_DIRECT_FANOUT_MAX - 1) {
		struct shn_msg_direct_setup_reply srep;
		int fds[SHN_DSETUP_NFDS], nf = SHN_DSETUP_NFDS;

		assert_int_equal(hd_hello(h, &r, SHN_HELLO_F_DIRECT), 0);
		send_setup(r.sock, f, 0);
		assert_int_equal(h_raw_recv(r.sock, &srep, sizeof(srep), fds, &nf, H_TIMEOUT_MS),
				 sizeof(srep));
		assert_int_equal(srep.hdr.status, 0);
		assert_int_equal(nf, SHN_DSETUP_NFDS);
		for (int i = 0; i < nf; i++)
			close(fds[i]);
		hd_raw_close(&r);
	}

	/* a DIRECT_FAULT for a ring it does not hold: protocol error */
	assert_int_equal(hd_hello(h, &r, SHN_HELLO_F_DIRECT), 0);
	hd_direct_setup(&r, &d);
	memset(&df, 0, sizeof(df));
	h_hdr_init(&df.hdr, SHN_MSG_DIRECT_FAULT);
	df.port_id = 1;
	df.slot = 0;
	df.ring_id = 1;
	h_raw_send(r.sock, &df, sizeof(df));
	h_expect_eof(r.sock, "DIRECT_FAULT for a ring the client does not hold");
	hd_direct_unmap(&d);
	hd_raw_close(&r);

	/* malformed: a role that is neither side, reserved bits, lengths */
	const struct { int kind; uint32_t v; size_t len_delta; } bad[] = {
		{ 0, 0, 0 }, { 0, 3, 0 }, { 1, 1, 0 }, { 0, 1, 8 }, { 1, 0, 8 },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		uint8_t buf[128];

		assert_int_equal(hd_hello(h, &r, SHN_HELLO_F_DIRECT), 0);
		memset(buf, 0, sizeof(buf));
		if (bad[i].kind == 0) {
			struct shn_msg_direct_close *m = (void *)buf;

			h_hdr_init(&m->hdr, SHN_MSG_DIRECT_CLOSE);
			m->role = bad[i].v;
			h_raw_send(r.sock, buf, sizeof(*m) + bad[i].len_delta);
		} else {
			struct shn_msg_direct_fault *m = (void *)buf;

			h_hdr_init(&m->hdr, SHN_MSG_DIRECT_FAULT);
			m->reserved = bad[i].v;
			h_raw_send(r.sock, buf, sizeof(*m) + bad[i].len_delta);
		}
		h_expect_eof(r.sock, "a malformed direct message");
		hd_raw_close(&r);
	}

	/* the broker goes on, and counted them */
	shn_client *c = h_connect(h);
	char *st = h_stats(c);
	assert_non_null(strstr(st, "\"protocol_errors\""));
	free(st);
	h_disconnect(c);
}

/* ---- direct rings -------------------------------------------------------- */

/* Descriptors the broker holds. */
static int broker_fds(const struct harness *h)
{
	char path[64];
	int n = 0;
	DIR *d;

	snprintf(path, sizeof(path), "/proc/%d/fd", (int)h->broker);
	d = opendir(path);
	assert_non_null(d);
	while (readdir(d) != NULL)
		n++;
	closedir(d);
	return n;
}

static bool writable_map_refused(int fd, size_t size)
{
	void *w = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);

	if (w == MAP_FAILED)
		return true;
	munmap(w, size);
	return false;
}

static void test_direct_open(void **state)
{
	struct harness *h = *state;
	struct hd_client pub, sub;
	struct shn_msg_direct_open po, so;
	struct shn_msg_direct_close cl;
	int pfds[4] = { -1, -1, -1, -1 }, sfds[4] = { -1, -1, -1, -1 }, n;
	uint64_t ids[16], b1, b2, b3;

	hd_start(h, &pub);
	hd_start(h, &sub);
	hd_port_sub(&sub, "k", 65536, SHN_OVERFLOW_DROP_WIRE);

	/* traffic begins: the first batch goes through the broker, then the
	 * ring is offered to both */
	b1 = hd_publish(&pub, "k", "hi", 0);
	assert_int_equal(hd_port_batches(&sub, ids, 1), 1);
	assert_int_equal(ids[0], b1);
	/* a port of a client that asked: the record names its publisher */
	{
		const struct shn_del_batch2 *r2 =
			(const void *)(sub.port_ring + SHN_RING_HDR_SIZE);
		const struct shn_del_note *dn = (const void *)(r2 + 1);

		assert_int_equal(r2->b.h.type, SHN_REC_DELIVERY2);
		assert_int_equal(r2->client_id, pub.r.rep.client_id);
		assert_int_equal(r2->reserved, 0);
		assert_int_equal(r2->b.count, 1);
		assert_int_equal(r2->b.sender_pid, getpid());
		assert_int_equal(r2->b.h.len, sizeof(*r2) + shn_del_note_size(1, 2));
		assert_int_equal(dn->key_len, 1);
		assert_int_equal(dn->data_len, 2);
		assert_memory_equal(dn + 1, "khi", 3);
		assert_int_equal(dn->seq, 1);
	}

	n = 4;
	assert_int_equal(hd_next_msg(&pub, &po, sizeof(po), pfds, &n), sizeof(po));
	assert_int_equal(po.hdr.type, SHN_MSG_DIRECT_OPEN);
	assert_int_equal(po.hdr.id, 0);
	assert_int_equal(po.role, SHN_DIRECT_PUBLISHER);
	assert_int_equal(n, SHN_DOPEN_PUB_NFDS);
	assert_int_equal(po.port_id, sub.port_id);
	assert_int_equal(po.peer_client_id, sub.r.rep.client_id);
	assert_true(po.ring_id != 0);
	assert_true(shn_ring_capacity_ok(po.capacity) && po.capacity <= sub.port_cap);
	assert_true(po.open_gen >= 1);
	assert_int_equal(po.sender_pid, 0);

	n = 4;
	assert_int_equal(hd_next_msg(&sub, &so, sizeof(so), sfds, &n), sizeof(so));
	assert_int_equal(so.hdr.type, SHN_MSG_DIRECT_OPEN);
	assert_int_equal(so.role, SHN_DIRECT_SUBSCRIBER);
	assert_int_equal(n, SHN_DOPEN_SUB_NFDS);
	assert_int_equal(so.ring_id, po.ring_id);
	assert_int_equal(so.port_id, sub.port_id);
	assert_int_equal(so.slot, 0);
	assert_int_equal(so.open_gen, po.open_gen);
	assert_int_equal(so.capacity, po.capacity);
	assert_int_equal(so.peer_client_id, pub.r.rep.client_id);
	assert_int_equal(so.sender_pid, getpid());     /* SO_PEERCRED of the publisher */
	assert_int_equal(so.sender_uid, getuid());

	/* the descriptors: each side may write only its own */
	size_t rsize = SHN_RING_HDR_SIZE + (size_t)po.capacity;
	uint8_t *ring = mmap(NULL, rsize, PROT_READ | PROT_WRITE, MAP_SHARED,
			     pfds[SHN_DOPEN_FD_RING], 0);
	assert_true(ring != MAP_FAILED);
	assert_int_equal(((struct shn_ring_prod *)(void *)ring)->magic, SHN_RING_MAGIC);
	assert_int_equal(((struct shn_ring_prod *)(void *)ring)->capacity, po.capacity);
	munmap(ring, rsize);
	assert_true(writable_map_refused(pfds[SHN_DOPEN_FD_CONS], SHN_DIRECT_CONS_SEG_SIZE));
	assert_true(writable_map_refused(pfds[SHN_DOPEN_FD_PORT_CONS], SHN_CONS_SEG_SIZE));
	uint64_t one = 1;
	assert_int_equal(write(pfds[SHN_DOPEN_FD_PORT_EVENT], &one, 8), 8);   /* an eventfd */
	assert_true(writable_map_refused(sfds[SHN_DOPEN_FD_RING], rsize));
	void *cons = mmap(NULL, SHN_DIRECT_CONS_SEG_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED,
			  sfds[SHN_DOPEN_FD_CONS], 0);
	assert_true(cons != MAP_FAILED);
	munmap(cons, SHN_DIRECT_CONS_SEG_SIZE);

	/* stats read the counter lines each side writes (untrusted: clamped) */
	ring = mmap(NULL, rsize, PROT_READ | PROT_WRITE, MAP_SHARED, pfds[SHN_DOPEN_FD_RING], 0);
	cons = mmap(NULL, SHN_DIRECT_CONS_SEG_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED,
		    sfds[SHN_DOPEN_FD_CONS], 0);
	assert_true(ring != MAP_FAILED && cons != MAP_FAILED);
	{
		struct shn_direct_pub_stats *ps = (void *)(ring + SHN_DIRECT_PSTATS_OFF);
		struct shn_direct_reader_stats *rs =
			(void *)((uint8_t *)cons + SHN_DIRECT_RSTATS_OFF);

		atomic_store(&ps->routed, 5);
		atomic_store(&ps->dropped, UINT64_MAX);
		atomic_store(&rs->delivered, 7);
		atomic_store(&rs->late, 1);
		shn_client *lc = h_connect(h);
		char *st = h_stats(lc);

		assert_non_null(strstr(st, "\"direct_routed\":5"));
		assert_non_null(strstr(st, "\"direct_dropped\":9007199254740992"));
		assert_non_null(strstr(st, "\"direct_delivered\":7"));
		assert_non_null(strstr(st, "\"direct_late\":1"));
		assert_non_null(strstr(st, "\"rings\":1"));
		free(st);
		h_disconnect(lc);
	}
	munmap(ring, rsize);
	munmap(cons, SHN_DIRECT_CONS_SEG_SIZE);

	/* the port map says so from open_gen on, and the table is there */
	const struct shn_pmap_slot *slots = (const void *)(pub.d.pm + 1);
	uint32_t ring_id = 0;
	assert_true(hd_gen(&pub.d) >= po.open_gen);
	assert_int_equal(shn_pmap_find(slots, pub.d.pm->nslots, sub.port_id, po.open_gen,
				       &ring_id), (int)po.slot);
	assert_int_equal(ring_id, po.ring_id);
	assert_int_equal(shn_pmap_find(slots, pub.d.pm->nslots, sub.port_id, po.open_gen - 1,
				       &ring_id), -ENOENT);

	/* a batch matched at open_gen went direct: the broker skips the port;
	 * one stamped before it, or not stamped, is delivered */
	b2 = hd_publish(&pub, "k", "hi", po.open_gen);
	b3 = hd_publish(&pub, "k", "hi", po.open_gen - 1);
	assert_int_equal(hd_port_batches(&sub, ids, 2), 2);
	assert_int_equal(ids[1], b3);
	assert_true(b2 != b3);

	/* UNSUBSCRIBE: the HANDLE_CLOSE carries the barrier, the direct ring's
	 * tail as the broker read it (the publisher's value) */
	ring = mmap(NULL, rsize, PROT_READ | PROT_WRITE, MAP_SHARED, pfds[SHN_DOPEN_FD_RING], 0);
	assert_true(ring != MAP_FAILED);
	atomic_store(&((struct shn_ring_prod *)(void *)ring)->tail, 64);
	munmap(ring, rsize);
	struct shn_msg_unsubscribe us;
	memset(&us, 0, sizeof(us));
	h_hdr_init(&us.hdr, SHN_MSG_UNSUBSCRIBE);
	us.conn = 1;
	assert_int_equal(hd_call(&sub, &us, sizeof(us)), 0);
	assert_int_equal(hd_port_batches(&sub, ids, 3), 3);
	{
		const uint8_t *data = sub.port_ring + SHN_RING_HDR_SIZE;
		uint64_t off = 0;

		for (int i = 0; i < 2; i++)
			off += ((const struct shn_rec_hdr *)(const void *)(data + off))->len;
		const struct shn_del_batch *hc = (const void *)(data + off);
		const struct shn_del_note *dn = (const void *)(hc + 1);
		struct shn_direct_barrier e;

		assert_int_equal(hc->h.type, SHN_REC_DELIVERY);
		assert_int_equal(hc->count, 1);
		assert_int_equal(dn->event, SHN_EV_HANDLE_CLOSE_WIRE);
		assert_int_equal(dn->conn, 1);
		assert_int_equal(dn->data_len, sizeof(e));
		assert_int_equal(shn_direct_barrier_check((const uint8_t *)(dn + 1), dn->data_len,
							  32), 1);
		memcpy(&e, dn + 1, sizeof(e));
		assert_int_equal(e.slot, so.slot);
		assert_int_equal(e.tail, 64);
	}

	/* the port closes: the publisher is told, the slot closes */
	struct shn_msg_port_close pc;
	memset(&pc, 0, sizeof(pc));
	h_hdr_init(&pc.hdr, SHN_MSG_PORT_CLOSE);
	pc.port_id = sub.port_id;
	assert_int_equal(hd_call(&sub, &pc, sizeof(pc)), 0);
	n = 0;
	assert_int_equal(hd_next_msg(&pub, &cl, sizeof(cl), NULL, &n), sizeof(cl));
	assert_int_equal(cl.hdr.type, SHN_MSG_DIRECT_CLOSE);
	assert_int_equal(cl.hdr.status, -EPIPE);
	assert_int_equal(cl.role, SHN_DIRECT_PUBLISHER);
	assert_int_equal(cl.ring_id, po.ring_id);
	assert_int_equal(shn_pmap_find(slots, pub.d.pm->nslots, sub.port_id, hd_gen(&pub.d),
				       &ring_id), -ENOENT);
	/* a DIRECT_CLOSE of that ring now: already closed, 0 */
	struct shn_msg_direct_close rq;
	memset(&rq, 0, sizeof(rq));
	h_hdr_init(&rq.hdr, SHN_MSG_DIRECT_CLOSE);
	rq.role = SHN_DIRECT_PUBLISHER;
	rq.ring_id = po.ring_id;
	assert_int_equal(hd_call(&pub, &rq, sizeof(rq)), 0);

	for (int i = 0; i < 4; i++) {
		if (pfds[i] >= 0)
			close(pfds[i]);
		if (sfds[i] >= 0)
			close(sfds[i]);
	}
	hd_stop(&pub);
	hd_stop(&sub);
}

/* A publisher that gives a ring back (it could not map it, or its reader's
 * head was not valid) keeps the broker path to that port: the broker does
 * not offer the pair a ring again on each batch. */
static void test_declined_stays_brokered(void **state)
{
	struct harness *h = *state;
	struct hd_client pub, sub;
	struct shn_msg_direct_open po;
	struct shn_msg_direct_close rq;
	int pfds[4] = { -1, -1, -1, -1 }, n = 4;
	uint64_t ids[8];
	uint8_t buf[256];

	hd_start(h, &pub);
	hd_start(h, &sub);
	hd_port_sub(&sub, "k", 0, 0);
	hd_publish(&pub, "k", "hi", 0);
	assert_int_equal(hd_port_batches(&sub, ids, 1), 1);
	assert_int_equal(hd_next_msg(&pub, &po, sizeof(po), pfds, &n), sizeof(po));
	assert_int_equal(po.role, SHN_DIRECT_PUBLISHER);
	for (int i = 0; i < n; i++)
		close(pfds[i]);
	memset(&rq, 0, sizeof(rq));
	h_hdr_init(&rq.hdr, SHN_MSG_DIRECT_CLOSE);
	rq.role = SHN_DIRECT_PUBLISHER;
	rq.slot = po.slot;
	rq.port_id = po.port_id;
	rq.ring_id = po.ring_id;
	assert_int_equal(hd_call(&pub, &rq, sizeof(rq)), 0);
	/* the broker path carries the next batches; no ring is offered again */
	for (int i = 0; i < 3; i++)
		hd_publish(&pub, "k", "hi", 0);
	assert_int_equal(hd_port_batches(&sub, ids, 4), 4);
	n = 0;
	assert_int_equal(h_raw_recv(pub.r.sock, buf, sizeof(buf), NULL, &n, 200), -ETIMEDOUT);
	hd_stop(&pub);
	hd_stop(&sub);
}

/* A subscriber's DIRECT_FAULT about a ring it holds cuts the publisher off
 * (ring_errors); the publisher that leaves closes the subscriber's side. */
static void test_direct_fault(void **state)
{
	struct harness *h = *state;
	struct hd_client pub, sub, pub2;
	struct shn_msg_direct_open po, so;
	struct shn_msg_direct_fault df;
	struct shn_msg_direct_close cl;
	int fds[4], n, fds_before = -1;
	uint64_t ids[16];

	/* the harness's probe connection may still be being reclaimed */
	for (int i = 0; i < 200 && broker_fds(h) != fds_before; i++) {
		fds_before = broker_fds(h);
		h_sleep_ms(50);
	}

	hd_start(h, &pub);
	hd_start(h, &pub2);
	hd_start(h, &sub);
	hd_port_sub(&sub, "k", 65536, SHN_OVERFLOW_DROP_WIRE);
	hd_publish(&pub, "k", "hi", 0);
	assert_int_equal(hd_port_batches(&sub, ids, 1), 1);
	n = 4;
	hd_next_msg(&pub, &po, sizeof(po), fds, &n);
	for (int i = 0; i < n; i++)
		close(fds[i]);
	n = 4;
	hd_next_msg(&sub, &so, sizeof(so), fds, &n);
	for (int i = 0; i < n; i++)
		close(fds[i]);
	assert_int_equal(so.role, SHN_DIRECT_SUBSCRIBER);
	/* a second publisher gets a second slot of the port */
	hd_publish(&pub2, "k", "hi", 0);
	assert_int_equal(hd_port_batches(&sub, ids, 2), 2);
	n = 4;
	hd_next_msg(&pub2, &po, sizeof(po), fds, &n);
	for (int i = 0; i < n; i++)
		close(fds[i]);
	n = 4;
	struct shn_msg_direct_open so2;
	hd_next_msg(&sub, &so2, sizeof(so2), fds, &n);
	for (int i = 0; i < n; i++)
		close(fds[i]);
	assert_int_equal(so2.slot, 1);
	assert_true(so2.ring_id != so.ring_id);

	/* a fault on the first ring: its publisher is cut off */
	memset(&df, 0, sizeof(df));
	h_hdr_init(&df.hdr, SHN_MSG_DIRECT_FAULT);
	df.port_id = sub.port_id;
	df.slot = so.slot;
	df.ring_id = so.ring_id;
	assert_int_equal(hd_call(&sub, &df, sizeof(df)), 0);
	h_expect_eof(pub.r.sock, "the publisher of a faulty direct ring");

	/* the second publisher leaves: the subscriber is told */
	close(pub2.r.sock);
	pub2.r.sock = -1;
	n = 0;
	assert_int_equal(hd_next_msg(&sub, &cl, sizeof(cl), NULL, &n), sizeof(cl));
	assert_int_equal(cl.hdr.type, SHN_MSG_DIRECT_CLOSE);
	assert_int_equal(cl.hdr.status, -ECONNRESET);
	assert_int_equal(cl.role, SHN_DIRECT_SUBSCRIBER);
	assert_int_equal(cl.ring_id, so2.ring_id);
	assert_int_equal(cl.slot, 1);

	shn_client *c = h_connect(h);
	char *st = h_stats(c);
	assert_non_null(strstr(st, "\"direct_faults\":1"));
	free(st);
	h_disconnect(c);
	hd_stop(&pub);
	hd_stop(&pub2);
	hd_stop(&sub);
	/* every ring's descriptors went back: the broker holds what it held */
	for (int i = 0; i < 1000 && broker_fds(h) != fds_before; i++)
		h_sleep_ms(5);
	assert_int_equal(broker_fds(h), fds_before);
}

static int setup_norings(void **state)
{
	static struct harness h;
	char path[400];
	FILE *f;

	h_prepare(&h);
	snprintf(path, sizeof(path), "%s/norings.conf", h.dir);
	f = fopen(path, "w");
	assert_non_null(f);
	fprintf(f, "[limits]\nmax-direct-rings = 0\n");
	fclose(f);
	const char *const extra[] = { "--config", path, NULL };
	h_launch(&h, extra);
	*state = &h;
	return 0;
}

/* Past [limits] max-direct-rings nothing is offered; the broker path goes
 * on and stats count the refusals. */
static void test_direct_limit(void **state)
{
	struct harness *h = *state;
	struct hd_client pub, sub;
	uint64_t ids[16];
	uint8_t buf[256];
	int n = 0;

	hd_start(h, &pub);
	hd_start(h, &sub);
	hd_port_sub(&sub, "k", 65536, SHN_OVERFLOW_DROP_WIRE);
	hd_publish(&pub, "k", "hi", 0);
	hd_publish(&pub, "k", "hi", 0);
	assert_int_equal(hd_port_batches(&sub, ids, 2), 2);
	/* a library client (no direct path): plain SHN_REC_DELIVERY records */
	{
		shn_client *lc = h_connect(h);
		shn_conn lconn;
		shn_port *lp = h_port_sub(lc, 0, "k", 1, SHN_EV_ALL, &lconn);
		shn_notification out[2];

		hd_publish(&pub, "k", "hi", 0);
		assert_int_equal(h_get(lp, out, 2), 1);
		assert_int_equal(out[0].key_len, 1);
		assert_memory_equal(out[0].data, "hi", 2);
		h_disconnect(lc);
	}
	assert_int_equal(h_raw_recv(pub.r.sock, buf, sizeof(buf), NULL, &n, 200), -ETIMEDOUT);
	assert_int_equal(h_raw_recv(sub.r.sock, buf, sizeof(buf), NULL, &n, 10), -ETIMEDOUT);
	shn_client *c = h_connect(h);
	char *st = h_stats(c);
	assert_non_null(strstr(st, "\"direct_refused\":3"));
	assert_non_null(strstr(st, "\"rings\":0"));
	free(st);
	h_disconnect(c);
	hd_stop(&pub);
	hd_stop(&sub);
}

int main(int argc, char **argv)
{
	h_parse_args(argc, argv);
	/* the broker side, spoken raw: the library clients here take the
	 * broker path, so the rings counted are the raw clients' */
	setenv("SHMNOTIFY_DIRECT", "off", 1);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_hello_flag_auto, h_setup, h_teardown),
		cmocka_unit_test_setup_teardown(test_declined_stays_brokered, h_setup, h_teardown),
		cmocka_unit_test_setup_teardown(test_hello_flag_off, setup_off, teardown_off),
		cmocka_unit_test_setup_teardown(test_table_follows_subscriptions, h_setup,
						h_teardown),
		cmocka_unit_test_setup_teardown(test_table_limit, setup_small, teardown_off),
		cmocka_unit_test_setup_teardown(test_bad_direct_messages, h_setup, h_teardown),
		cmocka_unit_test_setup_teardown(test_direct_open, h_setup, h_teardown),
		cmocka_unit_test_setup_teardown(test_direct_fault, h_setup, h_teardown),
		cmocka_unit_test_setup_teardown(test_direct_limit, setup_norings, teardown_off),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
