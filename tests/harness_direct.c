/* SPDX-License-Identifier: MIT */
/*
 * harness_direct.c - see harness_direct.h.
 */
#define _GNU_SOURCE
#include "harness_direct.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>

#ifndef F_SEAL_FUTURE_WRITE
#define F_SEAL_FUTURE_WRITE 0x0010
#endif

int hd_hello(const struct harness *h, struct hd_raw *r, uint32_t flags)
{
	struct shn_msg_hello req;
	int nfds = SHN_HELLO_NFDS;
	ssize_t n;

	memset(&req, 0, sizeof(req));
	memset(r, 0, sizeof(*r));
	for (int i = 0; i < SHN_HELLO_NFDS; i++)
		r->fds[i] = -1;
	r->sock = h_raw_connect(h);
	h_hdr_init(&req.hdr, SHN_MSG_HELLO);
	req.flags = flags;
	h_raw_send(r->sock, &req, sizeof(req));
	n = h_raw_recv(r->sock, &r->rep, sizeof(r->rep), r->fds, &nfds, H_TIMEOUT_MS);
	assert_true(n >= (ssize_t)sizeof(struct shn_msg_hdr));
	assert_int_equal(r->rep.hdr.type, SHN_MSG_HELLO);
	if (r->rep.hdr.status == 0) {
		assert_int_equal(n, sizeof(r->rep));
		assert_int_equal(nfds, SHN_HELLO_NFDS);
	}
	return r->rep.hdr.status;
}

void hd_raw_close(struct hd_raw *r)
{
	for (int i = 0; i < SHN_HELLO_NFDS; i++)
		if (r->fds[i] >= 0)
			close(r->fds[i]);
	if (r->sock >= 0)
		close(r->sock);
}

void hd_direct_setup(struct hd_raw *r, struct hd_direct *d)
{
	struct shn_msg_direct_setup req;
	struct shn_msg_direct_setup_reply rep;
	int fds[4] = { -1, -1, -1, -1 }, nfds = 4;
	ssize_t n;

	memset(&req, 0, sizeof(req));
	h_hdr_init(&req.hdr, SHN_MSG_DIRECT_SETUP);
	req.fanout = SHN_DIRECT_FANOUT_MAX;   /* every batch may be offered rings */
	h_raw_send(r->sock, &req, sizeof(req));
	n = h_raw_recv(r->sock, &rep, sizeof(rep), fds, &nfds, H_TIMEOUT_MS);
	assert_int_equal(n, sizeof(rep));
	assert_int_equal(rep.hdr.type, SHN_MSG_DIRECT_SETUP);
	assert_int_equal(rep.hdr.id, req.hdr.id);
	assert_int_equal(rep.hdr.status, 0);
	assert_int_equal(nfds, SHN_DSETUP_NFDS);
	assert_int_equal(rep.pmap_size, SHN_PMAP_SEG_SIZE);
	d->tsize = (size_t)rep.table_size;
	d->pmsize = rep.pmap_size;
	/* sealed: no client may write either */
	for (int i = 0; i < 2; i++) {
		size_t sz = i == 0 ? d->tsize : d->pmsize;
		void *w = mmap(NULL, sz, PROT_READ | PROT_WRITE, MAP_SHARED, fds[i], 0);

		assert_true(w == MAP_FAILED);
		assert_true((fcntl(fds[i], F_GET_SEALS) & F_SEAL_FUTURE_WRITE) != 0);
	}
	d->t = mmap(NULL, d->tsize, PROT_READ, MAP_SHARED, fds[SHN_DSETUP_FD_TABLE], 0);
	d->pm = mmap(NULL, d->pmsize, PROT_READ, MAP_SHARED, fds[SHN_DSETUP_FD_PMAP], 0);
	assert_true(d->t != MAP_FAILED && d->pm != MAP_FAILED);
	close(fds[0]);
	close(fds[1]);
	assert_true(shn_ftab_geometry_ok(d->t, d->tsize));
	assert_int_equal(d->pm->magic, SHN_PMAP_MAGIC);
	assert_int_equal(d->pm->nslots, SHN_PMAP_SLOTS);
}

void hd_direct_unmap(struct hd_direct *d)
{
	munmap(d->t, d->tsize);
	munmap(d->pm, d->pmsize);
}

uint64_t hd_gen(const struct hd_direct *d)
{
	return atomic_load_explicit(&d->t->gen, memory_order_acquire);
}

void hd_start(const struct harness *h, struct hd_client *dc)
{
	memset(dc, 0, sizeof(*dc));
	assert_int_equal(hd_hello(h, &dc->r, SHN_HELLO_F_DIRECT), 0);
	assert_true(dc->r.rep.flags & SHN_HELLO_F_DIRECT);
	hd_direct_setup(&dc->r, &dc->d);
	dc->pub = mmap(NULL, SHN_RING_HDR_SIZE + (size_t)dc->r.rep.pub_capacity,
		       PROT_READ | PROT_WRITE, MAP_SHARED, dc->r.fds[SHN_HELLO_FD_PUB], 0);
	assert_true(dc->pub != MAP_FAILED);
	dc->next_batch = 1;
	for (int i = 0; i < SHN_PORT_NFDS; i++)
		dc->port_fds[i] = -1;
}

void hd_stop(struct hd_client *dc)
{
	munmap(dc->pub, SHN_RING_HDR_SIZE + (size_t)dc->r.rep.pub_capacity);
	if (dc->port_ring != NULL)
		munmap((void *)dc->port_ring, SHN_RING_HDR_SIZE + (size_t)dc->port_cap);
	if (dc->port_cons != NULL)
		munmap(dc->port_cons, SHN_CONS_SEG_SIZE);
	for (int i = 0; i < SHN_PORT_NFDS; i++)
		if (dc->port_fds[i] >= 0)
			close(dc->port_fds[i]);
	hd_direct_unmap(&dc->d);
	hd_raw_close(&dc->r);
}

int hd_call(struct hd_client *dc, void *req, size_t len)
{
	union {
		struct shn_msg_hdr h;
		uint8_t b[SHN_MSG_MAX];
	} rep;
	int fds[4], nfds = 4;
	ssize_t n;

	h_raw_send(dc->r.sock, req, len);
	n = h_raw_recv(dc->r.sock, &rep, sizeof(rep), fds, &nfds, H_TIMEOUT_MS);
	assert_true(n >= (ssize_t)sizeof(rep.h));
	assert_int_equal(rep.h.id, ((struct shn_msg_hdr *)req)->id);
	if (rep.h.type == SHN_MSG_PORT_OPEN && rep.h.status == 0) {
		const struct shn_msg_port_open_reply *po = (const void *)rep.b;

		assert_int_equal(nfds, SHN_PORT_NFDS);
		dc->port_id = po->port_id;
		dc->port_cap = po->capacity;
		memcpy(dc->port_fds, fds, sizeof(dc->port_fds));
		dc->port_ring = mmap(NULL, SHN_RING_HDR_SIZE + (size_t)po->capacity, PROT_READ,
				     MAP_SHARED, fds[SHN_PORT_FD_RING], 0);
		assert_true(dc->port_ring != MAP_FAILED);
	} else {
		for (int i = 0; i < nfds; i++)
			close(fds[i]);
	}
	return rep.h.status;
}

void hd_port_sub(struct hd_client *dc, const char *key, uint32_t capacity, uint32_t overflow)
{
	struct shn_msg_port_open po;
	uint8_t buf[sizeof(struct shn_msg_subscribe) + 64];
	struct shn_msg_subscribe *sub = (void *)buf;
	size_t klen = strlen(key);

	memset(&po, 0, sizeof(po));
	h_hdr_init(&po.hdr, SHN_MSG_PORT_OPEN);
	po.capacity = capacity;
	po.overflow = overflow;
	assert_int_equal(hd_call(dc, &po, sizeof(po)), 0);
	memset(buf, 0, sizeof(buf));
	h_hdr_init(&sub->hdr, SHN_MSG_SUBSCRIBE);
	sub->conn = 1;
	sub->port_id = dc->port_id;
	sub->event_mask = SHN_EV_ALL_WIRE;
	sub->key_len = (uint16_t)klen;
	memcpy(sub->key, key, klen);
	assert_int_equal(hd_call(dc, sub, sizeof(*sub) + klen), 0);
}

uint64_t hd_publish(struct hd_client *dc, const char *key, const char *data, uint64_t gen)
{
	struct shn_ring_prod *prod = (void *)(dc->pub + SHN_PUB_PROD_OFF);
	uint8_t *d = dc->pub + SHN_RING_HDR_SIZE;
	uint32_t mask = dc->r.rep.pub_capacity - 1, klen = (uint32_t)strlen(key);
	uint32_t len = sizeof(struct shn_pub_batch) + shn_pub_note_size(klen, 2);
	struct shn_pub_batch *b = (void *)(d + (dc->tail & mask));
	struct shn_pub_note *pn = (void *)(b + 1);
	uint64_t one = 1;

	assert_true((dc->tail & mask) + len <= dc->r.rep.pub_capacity);   /* no wrap here */
	memset(b, 0, len);
	b->h.len = len;
	b->h.type = SHN_REC_BATCH;
	b->count = 1;
	b->batch_id = dc->next_batch++;
	b->gen = gen;
	pn->event = 1;
	pn->key_len = (uint16_t)klen;
	pn->data_len = 2;
	memcpy(pn + 1, key, klen);
	memcpy((uint8_t *)(pn + 1) + klen, data, 2);
	dc->tail += len;
	atomic_store_explicit(&prod->tail, dc->tail, memory_order_release);
	assert_int_equal(write(dc->r.fds[SHN_HELLO_FD_DOORBELL], &one, sizeof(one)), 8);
	return b->batch_id;
}

int hd_port_batches(struct hd_client *dc, uint64_t *ids, int want)
{
	const struct shn_ring_prod *prod = (const void *)dc->port_ring;
	const uint8_t *data = dc->port_ring + SHN_RING_HDR_SIZE;
	int64_t end = h_now_ms() + H_TIMEOUT_MS;
	int n;

	for (;;) {
		uint64_t tail = atomic_load_explicit(&prod->tail, memory_order_acquire), off = 0;

		n = 0;
		while (off < tail && n < 16) {
			const struct shn_del_batch *db = (const void *)(data + (off & (dc->port_cap - 1)));

			ids[n++] = db->batch_id;
			off += db->h.len;
		}
		if (n >= want || h_now_ms() > end)
			return n;
		h_sleep_ms(2);
	}
}

int hd_port_drain(struct hd_client *dc, uint64_t *last_batch_id)
{
	const struct shn_ring_prod *prod = (const void *)dc->port_ring;
	const uint8_t *data = dc->port_ring + SHN_RING_HDR_SIZE;
	uint64_t tail = atomic_load_explicit(&prod->tail, memory_order_acquire), want, one = 1;
	int n = 0;

	if (dc->port_cons == NULL) {
		dc->port_cons = mmap(NULL, SHN_CONS_SEG_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED,
				     dc->port_fds[SHN_PORT_FD_CONS], 0);
		assert_true(dc->port_cons != MAP_FAILED);
	}
	assert_true(tail - dc->port_head <= dc->port_cap);
	while (dc->port_head < tail) {
		const struct shn_del_batch *db =
			(const void *)(data + (dc->port_head & (dc->port_cap - 1)));

		assert_true(db->h.len >= sizeof(struct shn_rec_hdr) && db->h.len % 8 == 0);
		if (db->h.type != SHN_REC_PAD) {
			assert_true(db->h.type == SHN_REC_DELIVERY || db->h.type == SHN_REC_DELIVERY2);
			if (last_batch_id != NULL)
				*last_batch_id = db->batch_id;
			n++;
		}
		dc->port_head += db->h.len;
	}
	assert_int_equal(dc->port_head, tail);
	atomic_store_explicit(&dc->port_cons->head, dc->port_head, memory_order_release);
	/* the broker's room request (shn_ring_room_wanted's protocol) */
	atomic_thread_fence(memory_order_seq_cst);
	want = atomic_load_explicit(&prod->room_head, memory_order_relaxed);
	if (want != 0 && want != dc->room_rung && dc->port_head >= want) {
		dc->room_rung = want;
		assert_int_equal(write(dc->r.fds[SHN_HELLO_FD_DOORBELL], &one, sizeof(one)), 8);
	}
	return n;
}

ssize_t hd_next_msg(struct hd_client *dc, void *buf, size_t len, int *fds, int *nfds)
{
	ssize_t n = h_raw_recv(dc->r.sock, buf, len, fds, nfds, H_TIMEOUT_MS);

	if (n <= 0)
		fail_msg("expected a message from the broker: %zd", n);
	return n;
}
