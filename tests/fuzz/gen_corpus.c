/* SPDX-License-Identifier: MIT */
/*
 * gen_corpus.c - writes the seed corpora of the fuzz targets:
 *   gen_corpus DIR   ->  DIR/control/<name>, DIR/ring/<name>
 * The seeds in tests/fuzz/corpus/ were made by it (`make fuzz-corpus`);
 * each is a well-formed input that reaches deep into a target, for the
 * fuzzer to mutate.  Formats: see fuzz_control.c and fuzz_ring.c.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "shm/proto.h"

struct buf {
	uint8_t b[1 << 17];
	size_t n;
};

static void put(struct buf *o, const void *p, size_t n)
{
	if (o->n + n > sizeof(o->b)) {
		fprintf(stderr, "gen_corpus: seed too large\n");
		exit(1);
	}
	memcpy(o->b + o->n, p, n);
	o->n += n;
}

static void put_le(struct buf *o, uint64_t v, size_t bytes)
{
	for (size_t i = 0; i < bytes; i++) {
		uint8_t b = (uint8_t)(v >> (8 * i));
		put(o, &b, 1);
	}
}

static void save(const char *dir, const char *sub, const char *name, const struct buf *o)
{
	char path[512];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, sub);
	if (mkdir(path, 0755) < 0 && errno != EEXIST) {
		perror(path);
		exit(1);
	}
	snprintf(path, sizeof(path), "%s/%s/%s", dir, sub, name);
	f = fopen(path, "wb");
	if (f == NULL || fwrite(o->b, 1, o->n, f) != o->n || fclose(f) != 0) {
		perror(path);
		exit(1);
	}
}

/* ---- control conversations -------------------------------------------- */

static uint32_t next_id;

static void hdr(struct shn_msg_hdr *h, uint16_t type)
{
	h->magic = SHN_PROTO_MAGIC;
	h->version = SHN_PROTO_VERSION;
	h->type = type;
	h->id = ++next_id;
	h->status = 0;
}

/* one message: 2-byte length, then the bytes */
static void msg(struct buf *o, const void *m, size_t len)
{
	put_le(o, len, 2);
	put(o, m, len);
}

static void hello(struct buf *o, uint32_t cap, uint32_t flags, uint16_t version)
{
	struct shn_msg_hello m;

	memset(&m, 0, sizeof(m));
	hdr(&m.hdr, SHN_MSG_HELLO);
	m.hdr.version = version;
	m.pub_capacity = cap;
	m.flags = flags;
	msg(o, &m, sizeof(m));
}

static void port_open(struct buf *o, uint32_t cap, uint32_t overflow)
{
	struct shn_msg_port_open m;

	memset(&m, 0, sizeof(m));
	hdr(&m.hdr, SHN_MSG_PORT_OPEN);
	m.capacity = cap;
	m.overflow = overflow;
	msg(o, &m, sizeof(m));
}

static void subscribe(struct buf *o, uint64_t conn, uint32_t port, uint32_t mask,
		      uint32_t flags, const char *key, size_t key_len)
{
	union {
		struct shn_msg_subscribe m;
		uint8_t b[sizeof(struct shn_msg_subscribe) + 256];
	} u;

	memset(&u, 0, sizeof(u));
	hdr(&u.m.hdr, SHN_MSG_SUBSCRIBE);
	u.m.conn = conn;
	u.m.port_id = port;
	u.m.event_mask = mask;
	u.m.flags = flags;
	u.m.key_len = (uint16_t)key_len;
	memcpy(u.m.key, key, key_len);
	msg(o, &u, sizeof(u.m) + key_len);
}

static void pub_check(struct buf *o, const char *key, size_t key_len)
{
	union {
		struct shn_msg_pub_check m;
		uint8_t b[sizeof(struct shn_msg_pub_check) + 256];
	} u;

	memset(&u, 0, sizeof(u));
	hdr(&u.m.hdr, SHN_MSG_PUB_CHECK);
	u.m.key_len = (uint16_t)key_len;
	memcpy(u.m.key, key, key_len);
	msg(o, &u, sizeof(u.m) + key_len);
}

static void set_name(struct buf *o, const char *name, size_t name_len)
{
	union {
		struct shn_msg_set_name m;
		uint8_t b[sizeof(struct shn_msg_set_name) + 80];
	} u;

	memset(&u, 0, sizeof(u));
	hdr(&u.m.hdr, SHN_MSG_SET_NAME);
	u.m.name_len = (uint16_t)name_len;
	memcpy(u.m.name, name, name_len);
	msg(o, &u, sizeof(u.m) + name_len);
}

static void small(struct buf *o, uint16_t type, uint64_t arg)
{
	union {
		struct shn_msg_port_close pc;
		struct shn_msg_unsubscribe un;
		struct shn_msg_direct_setup ds;
		struct shn_msg_hdr h;
	} u;
	size_t len = sizeof(u.h);

	memset(&u, 0, sizeof(u));
	hdr(&u.h, type);
	if (type == SHN_MSG_PORT_CLOSE) {
		u.pc.port_id = (uint32_t)arg;
		len = sizeof(u.pc);
	} else if (type == SHN_MSG_UNSUBSCRIBE) {
		u.un.conn = arg;
		len = sizeof(u.un);
	} else if (type == SHN_MSG_DIRECT_SETUP) {
		u.ds.fanout = (uint32_t)arg;
		len = sizeof(u.ds);
	}
	msg(o, &u, len);
}

static void control_seeds(const char *dir)
{
	static char key256[256];
	struct buf o;

	memset(key256, 'k', sizeof(key256));

	/* a whole session: everything the library sends */
	o.n = 0;
	hello(&o, 0, 0, SHN_PROTO_VERSION);
	port_open(&o, 0, SHN_OVERFLOW_DROP_WIRE);
	port_open(&o, 1u << 16, SHN_OVERFLOW_BLOCK_WIRE);
	subscribe(&o, 1, 1, 1, 0, "key", 3);
	subscribe(&o, 2, 1, SHN_EV_ALL_WIRE, SHN_SUB_ANY_KEY, "", 0);
	subscribe(&o, 3, 2, 0x30, 0, key256, sizeof(key256));
	subscribe(&o, 4, 2, SHN_EV_ALL_WIRE, SHN_SUB_ANY_KEY | SHN_SUB_MONITOR, "", 0);
	pub_check(&o, "key", 3);
	pub_check(&o, key256, sizeof(key256));
	set_name(&o, "shmnotify listen", 16);
	set_name(&o, "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x94\x94", 13);   /* 2-, 3-, 4-byte UTF-8 */
	set_name(&o, "", 0);                                           /* no name */
	set_name(&o, key256, 64);
	small(&o, SHN_MSG_STATS, 0);
	small(&o, SHN_MSG_UNSUBSCRIBE, 1);
	small(&o, SHN_MSG_PORT_CLOSE, 1);
	save(dir, "control", "session", &o);

	/* the direct path: a HELLO asking for it, then its messages (and a
	 * DIRECT_CLOSE role and a DIRECT_FAULT reserved field never sent) */
	o.n = 0;
	hello(&o, 0, SHN_HELLO_F_DIRECT, SHN_PROTO_VERSION);
	small(&o, SHN_MSG_DIRECT_SETUP, 2);
	{
		struct shn_msg_direct_close dc;
		struct shn_msg_direct_fault df;

		memset(&dc, 0, sizeof(dc));
		hdr(&dc.hdr, SHN_MSG_DIRECT_CLOSE);
		dc.role = SHN_DIRECT_SUBSCRIBER;
		dc.ring_id = 1;
		msg(&o, &dc, sizeof(dc));
		memset(&df, 0, sizeof(df));
		hdr(&df.hdr, SHN_MSG_DIRECT_FAULT);
		df.port_id = 1;
		df.ring_id = 1;
		msg(&o, &df, sizeof(df));
		dc.role = 3;
		msg(&o, &dc, sizeof(dc));
		df.reserved = 1;
		msg(&o, &df, sizeof(df));
	}
	save(dir, "control", "direct", &o);

	/* argument errors, answered */
	o.n = 0;
	hello(&o, 1u << 20, 0, SHN_PROTO_VERSION);
	port_open(&o, 0, 7);
	subscribe(&o, 0, 1, 1, 0, "k", 1);
	subscribe(&o, 4, 1, SHN_EV_OVERFLOW_WIRE, 0, "k", 1);
	subscribe(&o, 5, 1, 1, SHN_SUB_ANY_KEY, "k", 1);
	subscribe(&o, 6, 1, 1, 0x80, "k", 1);
	subscribe(&o, 7, 1, 1, SHN_SUB_MONITOR, "k", 1);
	pub_check(&o, "", 0);
	save(dir, "control", "argument-errors", &o);

	o.n = 0;
	hello(&o, 0, 1, SHN_PROTO_VERSION);   /* flags: -EINVAL, still in handshake */
	hello(&o, 0, 0, SHN_PROTO_VERSION);
	small(&o, SHN_MSG_STATS, 0);
	save(dir, "control", "hello-flags", &o);

	o.n = 0;
	hello(&o, 0, 0, 2);
	save(dir, "control", "version-mismatch", &o);

	/* protocol errors */
	o.n = 0;
	port_open(&o, 0, 0);
	save(dir, "control", "not-hello-first", &o);

	o.n = 0;
	hello(&o, 0, 0, SHN_PROTO_VERSION);
	hello(&o, 0, 0, SHN_PROTO_VERSION);
	save(dir, "control", "second-hello", &o);

	o.n = 0;
	hello(&o, 0, 0, SHN_PROTO_VERSION);
	small(&o, SHN_MSG_SYNC_DONE, 0);
	save(dir, "control", "sync-done-from-client", &o);

	o.n = 0;
	hello(&o, 0, 0, SHN_PROTO_VERSION);
	{
		union {
			struct shn_msg_subscribe m;
			uint8_t b[64];
		} u;
		memset(&u, 0, sizeof(u));
		hdr(&u.m.hdr, SHN_MSG_SUBSCRIBE);
		u.m.conn = 9;
		u.m.event_mask = 1;
		u.m.key_len = 10;
		msg(&o, &u, sizeof(u.m) + 5);        /* key_len says 10, 5 sent */
	}
	save(dir, "control", "subscribe-short-key", &o);

	o.n = 0;
	hello(&o, 0, 0, SHN_PROTO_VERSION);
	{
		static uint8_t big[SHN_MSG_MAX + 8];
		struct shn_msg_hdr h;

		hdr(&h, SHN_MSG_STATS);
		memcpy(big, &h, sizeof(h));
		msg(&o, big, sizeof(big));
	}
	save(dir, "control", "too-long", &o);

	/* STATS with flags: the section asked for, an unknown flag and a
	 * reserved field (-EINVAL), then a length that is neither form */
	o.n = 0;
	hello(&o, 0, 0, SHN_PROTO_VERSION);
	{
		static const uint32_t v[][2] = { { SHN_STATS_F_SUBSCRIPTIONS, 0 }, { 0, 0 },
						 { 2, 0 }, { SHN_STATS_F_SUBSCRIPTIONS, 1 } };
		struct shn_msg_stats st;

		for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
			memset(&st, 0, sizeof(st));
			hdr(&st.hdr, SHN_MSG_STATS);
			st.flags = v[i][0];
			st.reserved = v[i][1];
			msg(&o, &st, sizeof(st));
		}
		hdr(&st.hdr, SHN_MSG_STATS);
		msg(&o, &st, sizeof(st.hdr) + 4);
	}
	save(dir, "control", "stats-flags", &o);

	/* names the broker must refuse (each ends the conversation) */
	static const struct {
		const char *seed, *name;
		size_t len;
	} bad_names[] = {
		{ "name-control", "tab\there", 8 },
		{ "name-c1", "c1\xc2\x85", 4 },
		{ "name-overlong", "\xc0\xaf", 2 },
		{ "name-surrogate", "\xed\xa0\x80", 3 },
		{ "name-cut", "\xe2\x82", 2 },
		{ "name-65", "kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk", 65 },
	};
	for (size_t i = 0; i < sizeof(bad_names) / sizeof(bad_names[0]); i++) {
		o.n = 0;
		hello(&o, 0, 0, SHN_PROTO_VERSION);
		set_name(&o, bad_names[i].name, bad_names[i].len);
		save(dir, "control", bad_names[i].seed, &o);
	}
}

/* ---- publish rings ------------------------------------------------------ */

/* One batch record of n notes (key "k<i>", data of dlen bytes) at o. */
static void batch(struct buf *o, uint32_t n, uint32_t klen, uint32_t dlen, uint32_t flags,
		  uint64_t id)
{
	struct shn_pub_batch b;
	uint32_t len = sizeof(b);

	for (uint32_t i = 0; i < n; i++)
		len += shn_pub_note_size(klen, dlen);
	memset(&b, 0, sizeof(b));
	b.h.len = len;
	b.h.type = SHN_REC_BATCH;
	b.count = n;
	b.flags = flags;
	b.batch_id = id;
	b.time_ns = 123456789;
	put(o, &b, sizeof(b));
	for (uint32_t i = 0; i < n; i++) {
		struct shn_pub_note pn = { .event = 1u << (i % 28), .key_len = (uint16_t)klen,
					   .data_len = dlen };
		uint32_t sz = shn_pub_note_size(klen, dlen);
		uint8_t body[512];

		put(o, &pn, sizeof(pn));
		memset(body, 0, sizeof(body));
		for (uint32_t k = 0; k < klen + dlen && k < sizeof(body); k++)
			body[k] = (uint8_t)('a' + (i + k) % 26);
		put(o, body, sz - sizeof(pn));
	}
}

static void pad(struct buf *o, uint32_t len)
{
	struct shn_rec_hdr h = { .len = len, .type = SHN_REC_PAD };
	uint8_t zero[8] = { 0 };

	put(o, &h, sizeof(h));
	for (uint32_t i = sizeof(h); i < len; i += 8)
		put(o, zero, 8);
}

/* header: capacity selector, mode, head, tail (relative with mode bit 0),
 * later tails */
static void ring_hdr(struct buf *o, uint8_t capsel, uint8_t mode, uint64_t head, uint64_t tail,
		     unsigned ntails, const uint64_t *tails)
{
	o->n = 0;
	put_le(o, capsel, 1);
	put_le(o, mode, 1);
	put_le(o, head, 8);
	put_le(o, tail, 8);
	put_le(o, ntails, 1);
	for (unsigned i = 0; i < ntails; i++)
		put_le(o, tails[i], 8);
}

static void ring_seeds(const char *dir)
{
	struct buf o, body;
	size_t hdr_len;
	uint64_t tails[2];

	/* three batches from offset 0 */
	body.n = 0;
	batch(&body, 1, 4, 1, 0, 1);
	batch(&body, 3, 8, 20, 0, 2);
	batch(&body, 2, 256, 100, SHN_PUB_SYNC, 3);
	ring_hdr(&o, 0, 1, 0, body.n, 0, NULL);
	put(&o, body.b, body.n);
	save(dir, "ring", "three-batches", &o);

	/* the same, published in two steps, with a rewriting publisher */
	tails[0] = body.n;
	ring_hdr(&o, 0, 3, 0, sizeof(struct shn_pub_batch) + shn_pub_note_size(4, 1), 1, tails);
	put(&o, body.b, body.n);
	save(dir, "ring", "two-steps-rewritten", &o);

	/* a wrap: head near the end of a 4096 ring, a PAD, then a batch at 0 */
	body.n = 0;
	batch(&body, 1, 3, 0, 0, 7);
	pad(&body, 64);
	hdr_len = body.n;
	batch(&body, 2, 5, 9, 0, 8);
	ring_hdr(&o, 0, 0, 4096 * 5 - hdr_len, 4096 * 5 - hdr_len + body.n, 0, NULL);
	put(&o, body.b, body.n);
	save(dir, "ring", "wrap-pad", &o);

	/* a large note in a 64 KiB ring */
	body.n = 0;
	batch(&body, 1, 16, 20000, 0, 1);
	ring_hdr(&o, 4, 1, 0, body.n, 0, NULL);
	put(&o, body.b, body.n);
	save(dir, "ring", "big-note", &o);

	/* corrupt: the tail beyond a ring's worth, and a note past the record */
	body.n = 0;
	batch(&body, 1, 4, 1, 0, 1);
	ring_hdr(&o, 0, 0, 0, 2 * 4096, 0, NULL);
	put(&o, body.b, body.n);
	save(dir, "ring", "tail-beyond", &o);
	((struct shn_pub_batch *)(void *)body.b)->count = 2;
	ring_hdr(&o, 0, 1, 0, body.n, 0, NULL);
	put(&o, body.b, body.n);
	save(dir, "ring", "count-overrun", &o);

	/* a producer-side script: records and consumer heads */
	body.n = 0;
	batch(&body, 1, 4, 1, 0, 1);
	ring_hdr(&o, 0, 1, 0, body.n, 0, NULL);
	put(&o, body.b, body.n);
	{
		static const uint8_t script[] = { 0, 10, 0,  0, 200, 0,  7, 0, 1,  0, 50, 0,
						  0, 0, 1,   5, 0, 64,   3, 9, 0,  0, 255, 0 };
		put(&o, script, sizeof(script));
	}
	save(dir, "ring", "producer-script", &o);
}

/* ---- direct rings (fuzz_direct) ----------------------------------------- */

/* A run head and its key (klen bytes of 'a' + (r + k) % 26, zero
 * padding). */
static void direct_run(struct buf *o, uint32_t event, const char *key, uint32_t klen,
		       uint32_t r, uint32_t count)
{
	struct shn_direct_run h = { .event = event, .key_len = (uint16_t)klen, .count = count };
	uint8_t body[512];

	memset(body, 0, sizeof(body));
	for (uint32_t k = 0; k < klen && k < sizeof(body); k++)
		body[k] = key != NULL ? (uint8_t)key[k] : (uint8_t)('a' + (r + k) % 26);
	put(o, &h, sizeof(h));
	put(o, body, shn_direct_run_size(klen) - sizeof(h));
}

/* One note of a run: its length word and dlen bytes of data. */
static void direct_item(struct buf *o, uint32_t dlen, uint32_t i)
{
	struct shn_direct_item it = { .data_len = dlen };
	uint8_t body[512];

	memset(body, 0, sizeof(body));
	for (uint32_t k = 0; k < dlen && k < sizeof(body); k++)
		body[k] = (uint8_t)('0' + (i + k) % 10);
	put(o, &it, sizeof(it));
	put(o, body, shn_direct_item_size(dlen) - sizeof(it));
}

/* A direct record's header: len bytes in all, n notes. */
static void direct_hdr(struct buf *o, uint32_t len, uint32_t n, uint64_t id, uint64_t gen,
		       uint64_t lost, uint64_t time_ns)
{
	struct shn_direct_batch b;

	memset(&b, 0, sizeof(b));
	b.h.len = len;
	b.h.type = SHN_REC_DIRECT;
	b.count = n;
	b.batch_id = id;
	b.time_ns = time_ns;
	b.gen = gen;
	b.lost = lost;
	put(o, &b, sizeof(b));
}

/* Runs of two notes (the last of one when n is odd), each run its own
 * key of klen bytes and event; data of dlen bytes. */
static uint32_t direct_rec_len(uint32_t n, uint32_t klen, uint32_t dlen)
{
	return (uint32_t)sizeof(struct shn_direct_batch) + (n + 1) / 2 * shn_direct_run_size(klen) +
	       n * shn_direct_item_size(dlen);
}

static void direct_rec(struct buf *o, uint32_t n, uint32_t klen, uint32_t dlen, uint64_t id,
		       uint64_t gen, uint64_t lost)
{
	direct_hdr(o, direct_rec_len(n, klen, dlen), n, id, gen, lost, 123456789);
	for (uint32_t i = 0; i < n; i += 2) {
		uint32_t in_run = n - i < 2 ? n - i : 2;

		direct_run(o, 1u << ((i / 2) % 28), NULL, klen, i, in_run);
		for (uint32_t j = 0; j < in_run; j++)
			direct_item(o, dlen, i + j);
	}
}

/* One direct record of a flood's shape: runs of event 1 and a 9-byte key,
 * the keys the same but for one byte of the third run's (the reader's
 * repeated-key shortcut must tell them apart); the last run of three
 * notes. */
static void direct_rec_repeats(struct buf *o, uint64_t id)
{
	static const char *const keys[] = { "flood/key", "flood/key", "flood/kez", "flood/key" };
	static const uint32_t counts[] = { 1, 1, 1, 3 };
	uint32_t len = sizeof(struct shn_direct_batch), n = 0;

	for (uint32_t r = 0; r < 4; r++) {
		len += shn_direct_run_size(9) + counts[r] * shn_direct_item_size(8);
		n += counts[r];
	}
	direct_hdr(o, len, n, id, 1, 0, 0);
	for (uint32_t r = 0; r < 4; r++) {
		direct_run(o, 1, keys[r], 9, r, counts[r]);
		for (uint32_t j = 0; j < counts[r]; j++)
			direct_item(o, 8, r + j);
	}
}

/* One direct record of runs of one data length (SHN_DIRECT_RUN_SAME_LEN):
 * a flood's (4 notes of 64 bytes), one of 13 bytes (padded) and a run
 * with a length word per note between them. */
static void direct_rec_same_len(struct buf *o, uint64_t id)
{
	static const uint32_t counts[] = { 4, 2, 3 }, dlens[] = { 64, 0, 13 };
	uint8_t body[64];
	uint32_t len = sizeof(struct shn_direct_batch), n = 0;

	for (uint32_t r = 0; r < 3; r++) {
		len += shn_direct_run_size(9) +
		       counts[r] * (dlens[r] != 0 ? (uint32_t)SHN_ALIGN8(dlens[r])
						   : shn_direct_item_size(5));
		n += counts[r];
	}
	direct_hdr(o, len, n, id, 1, 0, 0);
	for (uint32_t r = 0; r < 3; r++) {
		struct shn_direct_run h = { .event = 1, .key_len = 9, .count = counts[r] };

		if (dlens[r] == 0) {
			direct_run(o, 1, "flood/key", 9, r, counts[r]);
			for (uint32_t j = 0; j < counts[r]; j++)
				direct_item(o, 5, j);
			continue;
		}
		h.flags = SHN_DIRECT_RUN_SAME_LEN;
		h.data_len = dlens[r];
		put(o, &h, sizeof(h));
		put(o, "flood/key\0\0\0\0\0\0", 16);
		for (uint32_t j = 0; j < counts[r]; j++) {
			memset(body, 0, sizeof(body));
			memset(body, '0' + (int)j, dlens[r]);
			put(o, body, SHN_ALIGN8(dlens[r]));
		}
	}
}

static void direct_seeds(const char *dir)
{
	struct buf o, body;
	size_t first;
	uint64_t tails[1];

	body.n = 0;
	direct_rec(&body, 1, 4, 1, 1, 1, 0);
	direct_rec(&body, 3, 8, 20, 2, 1, 5);
	direct_rec(&body, 2, 256, 100, 9, 4, 0);
	ring_hdr(&o, 0, 1, 0, body.n, 0, NULL);
	put(&o, body.b, body.n);
	save(dir, "direct", "three-records", &o);

	/* published in two steps, rewritten after each check */
	first = direct_rec_len(1, 4, 1);
	tails[0] = body.n;
	ring_hdr(&o, 0, 3, 0, first, 1, tails);
	put(&o, body.b, body.n);
	save(dir, "direct", "two-steps-rewritten", &o);

	/* a wrap through a PAD */
	body.n = 0;
	direct_rec(&body, 1, 3, 0, 1, 2, 0);
	pad(&body, 64);
	first = body.n;
	direct_rec(&body, 2, 5, 9, 2, 2, 0);
	ring_hdr(&o, 0, 0, 4096 * 3 - first, 4096 * 3 - first + body.n, 0, NULL);
	put(&o, body.b, body.n);
	save(dir, "direct", "wrap-pad", &o);

	/* a flood's repeated keys, one of them a byte off */
	body.n = 0;
	direct_rec_repeats(&body, 1);
	direct_rec_repeats(&body, 2);
	ring_hdr(&o, 0, 1, 0, body.n, 0, NULL);
	put(&o, body.b, body.n);
	save(dir, "direct", "repeated-keys", &o);

	/* runs of one data length, beside one with a length word per note */
	body.n = 0;
	direct_rec_same_len(&body, 1);
	direct_rec_same_len(&body, 2);
	ring_hdr(&o, 0, 1, 0, body.n, 0, NULL);
	put(&o, body.b, body.n);
	save(dir, "direct", "same-len", &o);

	/* batch_id going backwards: the second record is refused */
	body.n = 0;
	direct_rec(&body, 1, 4, 1, 5, 1, 0);
	direct_rec(&body, 1, 4, 1, 5, 1, 0);
	ring_hdr(&o, 0, 1, 0, body.n, 0, NULL);
	put(&o, body.b, body.n);
	save(dir, "direct", "batch-id-repeated", &o);

	/* lost counts all told: three steps of 2^32 - 1, more than 2^32 - 1
	 * in all, each accepted; then one going back, refused */
	body.n = 0;
	direct_rec(&body, 1, 4, 1, 1, 1, 0);
	direct_rec(&body, 1, 4, 1, 2, 1, 0xffffffffull);
	direct_rec(&body, 1, 4, 1, 3, 1, 0x1fffffffeull);
	direct_rec(&body, 1, 4, 1, 4, 1, 0x2fffffffdull);
	direct_rec(&body, 1, 4, 1, 5, 1, 0x2fffffffcull);
	ring_hdr(&o, 0, 1, 0, body.n, 0, NULL);
	put(&o, body.b, body.n);
	save(dir, "direct", "lost-all-told", &o);

	/* an empty ring, and as the filter-table half (fuzz_direct's
	 * lookup: max_filters 16, nslots 32; its key is the half's first 64
	 * bytes, its prefix hash the first bytes xor the length) a prefix
	 * slot of 2 bytes the key starts with, its length in plens: the
	 * lookup finds it */
	{
		uint8_t half[1472];
		struct shn_ftab_half *hh = (void *)half;
		struct shn_ftab_slot *sl = (void *)(half + shn_ftab_slots_off(16));

		memset(half, 0, sizeof(half));
		hh->n_exact = 1;
		hh->key_used = 2;
		hh->plens[0] = 1u << 1;   /* length 2 */
		sl[2] = (struct shn_ftab_slot){ .hash = 2, .port_id = 7, .mask = 1, .key_off = 0,
						.key_len = 2, .flags = SHN_FTAB_SLOT_PREFIX };
		ring_hdr(&o, 0, 0, 0, 0, 0, NULL);
		put(&o, half, sizeof(half));
		save(dir, "direct", "ftab-prefix", &o);
		/* every length up to 64 in use: a probe per length over the
		 * same slots */
		memset(hh->plens, 0xff, sizeof(hh->plens));
		ring_hdr(&o, 0, 0, 0, 0, 0, NULL);
		put(&o, half, sizeof(half));
		save(dir, "direct", "ftab-prefix-all-lengths", &o);
	}

	/* the reader has told 2^40 already (mode bit 2): a record below it
	 * is refused, one at it or above is taken */
	body.n = 0;
	direct_rec(&body, 1, 4, 1, 1, 1, 1ull << 40);
	direct_rec(&body, 1, 4, 1, 2, 1, (1ull << 40) + 7);
	direct_rec(&body, 1, 4, 1, 3, 1, 5);
	ring_hdr(&o, 0, 1 | 4, 0, body.n, 0, NULL);
	put(&o, body.b, body.n);
	save(dir, "direct", "lost-told-before", &o);
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: gen_corpus DIR\n");
		return 2;
	}
	if (mkdir(argv[1], 0755) < 0 && errno != EEXIST) {
		perror(argv[1]);
		return 1;
	}
	control_seeds(argv[1]);
	ring_seeds(argv[1]);
	direct_seeds(argv[1]);
	return 0;
}
