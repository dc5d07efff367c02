/* SPDX-License-Identifier: MIT */
/*
 * test_keys.c - binary keys of every length 1..256 route to exactly the
 * subscription with that key (zero bytes, keys that are prefixes of each
 * other, keys differing only in the last byte); over-long keys are refused;
 * payloads of 0..SHN_DATA_MAX bytes arrive intact.
 */
#define _GNU_SOURCE
#include "harness.h"

#include <errno.h>
#include <string.h>

#define NLEN 256

/* variant v of the key of length len: len-1 zero bytes, then v */
static void make_key(uint8_t *k, size_t len, uint8_t v)
{
	memset(k, 0, len);
	k[len - 1] = v;
}

struct tag {
	uint16_t len;
	uint8_t variant;
	uint8_t pad;
};

static int child_keys(void *arg)
{
	const char *sock = arg;
	shn_client *c = NULL;
	static uint8_t keys[4][NLEN];
	struct tag tags[4];

	CHILD_CHECK_EQ(shn_connect(sock, &c), 0);
	for (uint16_t len = 1; len <= NLEN; len++) {
		shn_notification b[4];
		memset(b, 0, sizeof(b));
		for (uint8_t v = 0; v < 4; v++) {
			/* variants 0, 1, 2 and 3 (3: nobody listens) */
			make_key(keys[v], len, v);
			tags[v] = (struct tag){ .len = len, .variant = v };
			b[v].event = 1;
			b[v].key = keys[v];
			b[v].key_len = len;
			b[v].data = &tags[v];
			b[v].data_len = sizeof(tags[v]);
		}
		CHILD_CHECK_EQ(shn_notify(c, b, 4, 0), 0);
	}
	/* a last batch nobody but the wildcard port hears: the end marker */
	shn_notification end = { .event = 2, .key = "end", .key_len = 3 };
	CHILD_CHECK_EQ(shn_notify(c, &end, 1, 0), 0);
	shn_disconnect(c);
	return 0;
}

static void test_binary_keys(void **state)
{
	struct harness *h = *state;
	static shn_conn conn[3][NLEN + 1];
	uint8_t key[NLEN];
	shn_notification out[8];
	shn_port *p = NULL, *q = NULL;

	shn_client *c = h_connect(h);
	assert_int_equal(shn_port_open(c, NULL, &p), 0);
	assert_int_equal(shn_port_open(c, NULL, &q), 0);
	/* p: variants 0 and 1 of every length; q: variant 2 of even lengths */
	for (uint16_t len = 1; len <= NLEN; len++) {
		for (uint8_t v = 0; v < 3; v++) {
			if (v == 2 && len % 2)
				continue;
			make_key(key, len, v);
			conn[v][len] = 0;
			int err = shn_subscribe(v == 2 ? q : p, key, len, SHN_EV_ALL, 0,
						&conn[v][len]);
			if (err != 0)
				fail_msg("subscribe len %u variant %u: %d (%s)", len, v, err,
					 shn_strerror(err));
			assert_true(conn[v][len] != 0);
		}
	}
	shn_conn wconn;
	shn_port *w = h_port_sub(c, 0, "end", 3, 0x2, &wconn);
	pid_t pid = h_fork(child_keys, h->sock);
	assert_int_equal(h_get(w, out, 8), 1);   /* everything before it is routed */
	h_wait_ok(pid, H_CHILD_TIMEOUT_MS);

	uint64_t seq = 0;
	for (uint16_t len = 1; len <= NLEN; len++) {
		int n = h_get(p, out, 8);
		assert_int_equal(n, 2);
		for (uint8_t v = 0; v < 2; v++) {
			struct tag t;
			make_key(key, len, v);
			assert_int_equal(out[v].key_len, len);
			assert_memory_equal(out[v].key, key, len);
			assert_int_equal(out[v].data_len, sizeof(t));
			memcpy(&t, out[v].data, sizeof(t));
			assert_int_equal(t.len, len);
			assert_int_equal(t.variant, v);
			assert_int_equal(out[v].conn, conn[v][len]);
			assert_int_equal(out[v].seq, ++seq);
			assert_int_equal(out[v].batch_count, 2);
			assert_int_equal(out[v].batch_id, len);
		}
	}
	assert_int_equal(shn_port_get(p, out, 8, 0), -ETIMEDOUT);
	seq = 0;
	for (uint16_t len = 2; len <= NLEN; len += 2) {
		struct tag t;
		assert_int_equal(h_get(q, out, 8), 1);
		make_key(key, len, 2);
		assert_int_equal(out[0].key_len, len);
		assert_memory_equal(out[0].key, key, len);
		memcpy(&t, out[0].data, sizeof(t));
		assert_int_equal(t.len, len);
		assert_int_equal(t.variant, 2);
		assert_int_equal(out[0].conn, conn[2][len]);
		assert_int_equal(out[0].seq, ++seq);
	}
	assert_int_equal(shn_port_get(q, out, 8, 0), -ETIMEDOUT);
	h_disconnect(c);
}

static void test_key_limits(void **state)
{
	struct harness *h = *state;
	uint8_t key[SHN_KEY_MAX + 1];
	shn_port *p = NULL;
	shn_conn conn = 0;

	memset(key, 'k', sizeof(key));
	shn_client *c = h_connect(h);
	assert_int_equal(shn_port_open(c, NULL, &p), 0);
	assert_int_equal(shn_subscribe(p, key, SHN_KEY_MAX + 1, SHN_EV_ALL, 0, &conn), -EINVAL);
	assert_int_equal(shn_subscribe(p, key, 1000, SHN_EV_ALL, 0, &conn), -EINVAL);
	assert_int_equal(shn_subscribe(p, key, 0, SHN_EV_ALL, 0, &conn), -EINVAL);
	assert_int_equal(shn_subscribe(p, NULL, 5, SHN_EV_ALL, 0, &conn), -EINVAL);
	assert_int_equal(conn, 0);

	shn_notification n = { .event = 1, .key = key, .key_len = SHN_KEY_MAX + 1 };
	assert_int_equal(shn_notify(c, &n, 1, 0), -EINVAL);
	n.key_len = 0;
	assert_int_equal(shn_notify(c, &n, 1, 0), -EINVAL);
	n.key = NULL;
	n.key_len = 5;
	assert_int_equal(shn_notify(c, &n, 1, 0), -EINVAL);
	/* one bad notification refuses the whole batch */
	shn_notification b[2] = {
		{ .event = 1, .key = key, .key_len = 1 },
		{ .event = 1, .key = key, .key_len = SHN_KEY_MAX + 1 },
	};
	assert_int_equal(shn_notify(c, b, 2, 0), -EINVAL);

	/* the limit itself is fine, and nothing refused was published */
	assert_int_equal(shn_subscribe(p, NULL, 0, SHN_EV_ALL, 0, &conn), 0);
	n = (shn_notification){ .event = 1, .key = key, .key_len = SHN_KEY_MAX };
	assert_int_equal(shn_notify(c, &n, 1, 0), 0);
	shn_notification out[4];
	assert_int_equal(h_get(p, out, 4), 1);
	assert_int_equal(out[0].key_len, SHN_KEY_MAX);
	assert_memory_equal(out[0].key, key, SHN_KEY_MAX);
	assert_int_equal(out[0].seq, 1);
	assert_int_equal(out[0].batch_id, 1);  /* refused batches used no number */
	assert_int_equal(shn_port_get(p, out, 4, 0), -ETIMEDOUT);
	h_disconnect(c);
}

static void test_data_sizes(void **state)
{
	struct harness *h = *state;
	static uint8_t data[SHN_DATA_MAX + 1];
	static const uint32_t sizes[] = { 0, 1, 7, 8, 9, 255, 4096, 65535, SHN_DATA_MAX };
	shn_notification out[4];
	shn_conn conn;

	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (uint8_t)(i * 131 + (i >> 8));
	shn_client *c = h_connect(h);
	shn_port *p = h_port_sub(c, 0, "d", 1, SHN_EV_ALL, &conn);
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		shn_notification n = { .event = 1, .key = "d", .key_len = 1,
				       .data = sizes[i] ? data : NULL, .data_len = sizes[i] };
		assert_int_equal(shn_notify(c, &n, 1, 0), 0);
		assert_int_equal(h_get(p, out, 4), 1);
		assert_int_equal(out[0].data_len, sizes[i]);
		if (sizes[i])
			assert_memory_equal(out[0].data, data, sizes[i]);
		else
			assert_null(out[0].data);
	}
	shn_notification big = { .event = 1, .key = "d", .key_len = 1, .data = data,
				 .data_len = SHN_DATA_MAX + 1 };
	assert_int_equal(shn_notify(c, &big, 1, 0), -EINVAL);
	assert_int_equal(shn_port_get(p, out, 4, 0), -ETIMEDOUT);
	h_disconnect(c);
}

int main(int argc, char **argv)
{
	h_parse_args(argc, argv);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_binary_keys, h_setup, h_teardown),
		cmocka_unit_test_setup_teardown(test_key_limits, h_setup, h_teardown),
		cmocka_unit_test_setup_teardown(test_data_sizes, h_setup, h_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
