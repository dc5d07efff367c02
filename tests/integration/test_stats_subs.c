/* SPDX-License-Identifier: MIT */
/*
 * test_stats_subs.c - who watches what: the "subscriptions" section of the
 * STATS document (shn_stats_json_ex with SHN_STATS_SUBSCRIPTIONS,
 * docs/protocol.md), parsed with jansson:
 *
 *   test_only_when_asked    shn_stats_json and flags 0: no section; with the
 *                           flag: the section beside the usual document; an
 *                           unknown flag: -EINVAL, the client goes on
 *   test_counts_follow      filters of two subscriber processes (two ports
 *                           in one, a key twice on one port, any-key, masks):
 *                           each filter names its owner (client id, pid,
 *                           name), port, conn, kind and mask; per key the
 *                           ports and filters; then an unsubscribe and a
 *                           subscriber's exit, and the counts follow
 *   test_raw_stats_flags    HELLO announces SHN_HELLO_F_STATS_FLAGS; a raw
 *                           STATS with the flag gets the section; unknown
 *                           flags or reserved set: -EINVAL and the
 *                           connection stays; a length that is neither the
 *                           header nor struct shn_msg_stats: cut off,
 *                           protocol_errors counts it
 *
 * The prefix filters' entries are checked by cli/test_cli_filters.sh
 * (test_cli_prefix).
 */
#define _GNU_SOURCE
#include "harness.h"

#include <errno.h>
#include <jansson.h>
#include <string.h>
#include <sys/socket.h>

#include "shm/proto.h"

static json_t *parse(char *text)
{
	json_error_t err;
	json_t *doc = json_loads(text, 0, &err);

	if (doc == NULL)
		fail_msg("the stats document is not JSON (byte %d: %s): %s", err.position,
			 err.text, text);
	free(text);
	return doc;
}

/* The document with its subscriptions section, parsed. */
static json_t *subs_doc(shn_client *c)
{
	char *text = NULL;
	int n = shn_stats_json_ex(c, SHN_STATS_SUBSCRIPTIONS, &text);

	if (n < 0)
		fail_msg("shn_stats_json_ex: %s", shn_strerror(n));
	return parse(text);
}

static void test_only_when_asked(void **state)
{
	struct harness *h = *state;
	shn_client *c = h_connect(h);
	shn_conn conn;
	shn_port *p = h_port_sub(c, 0, "k", 1, SHN_EV_ALL, &conn);
	char *text = NULL;
	json_t *doc;

	(void)p;
	doc = parse(h_stats(c));
	assert_null(json_object_get(doc, "subscriptions"));
	json_decref(doc);
	assert_true(shn_stats_json_ex(c, 0, &text) > 0);
	doc = parse(text);
	assert_non_null(json_object_get(doc, "broker"));
	assert_null(json_object_get(doc, "subscriptions"));
	json_decref(doc);

	doc = subs_doc(c);
	assert_non_null(json_object_get(doc, "broker"));
	assert_non_null(json_object_get(doc, "clients"));
	json_t *s = json_object_get(doc, "subscriptions");
	assert_int_equal(json_integer_value(json_object_get(s, "filters_total")), 1);
	assert_int_equal(json_integer_value(json_object_get(s, "limit")), 10000);
	json_decref(doc);

	text = (char *)"untouched";
	assert_int_equal(shn_stats_json_ex(c, 2, &text), -EINVAL);
	assert_null(text);
	assert_int_equal(shn_stats_json_ex(NULL, SHN_STATS_SUBSCRIPTIONS, &text), -EINVAL);
	assert_true(shn_stats_json_ex(c, SHN_STATS_SUBSCRIPTIONS, &text) > 0);
	free(text);
	h_disconnect(c);
}

/* ---- two subscriber processes -------------------------------------------- */

struct sub_job {
	struct harness *h;
	struct h_chan ready, done;
	bool b;   /* the second subscriber */
};

/* A: port 1 {k1, k2}, port 2 {k1, any key mask 0x2}.
 * B: one port {k1 mask 0x4, k1 mask 0x8, k3}; once told, unsubscribes k3,
 *    and on the next signal exits. */
static int subscriber(void *arg)
{
	struct sub_job *j = arg;
	shn_client *c;
	shn_port *p, *q;
	shn_conn conn, k3;
	uint8_t b;

	CHILD_CHECK(shn_connect(j->h->sock, &c) == 0);
	CHILD_CHECK(shn_set_name(c, j->b ? "sub b" : "sub a") == 0);
	CHILD_CHECK(shn_port_open(c, NULL, &p) == 0);
	if (!j->b) {
		CHILD_CHECK(shn_subscribe(p, "k1", 2, SHN_EV_ALL, 0, &conn) == 0);
		CHILD_CHECK(shn_subscribe(p, "k2", 2, SHN_EV_ALL, 0, &conn) == 0);
		CHILD_CHECK(shn_port_open(c, NULL, &q) == 0);
		CHILD_CHECK(shn_subscribe(q, "k1", 2, SHN_EV_ALL, 0, &conn) == 0);
		CHILD_CHECK(shn_subscribe(q, NULL, 0, 0x2, 0, &conn) == 0);
	} else {
		CHILD_CHECK(shn_subscribe(p, "k1", 2, 0x4, 0, &conn) == 0);
		CHILD_CHECK(shn_subscribe(p, "k1", 2, 0x8, 0, &conn) == 0);
		CHILD_CHECK(shn_subscribe(p, "k3", 2, SHN_EV_ALL, 0, &k3) == 0);
	}
	CHILD_CHECK(h_send(&j->ready, 1) == 1);
	CHILD_CHECK(h_recv(&j->done, &b, H_CHILD_TIMEOUT_MS) == 1);
	if (j->b) {
		CHILD_CHECK(shn_unsubscribe(c, k3) == 0);
		CHILD_CHECK(h_send(&j->ready, 2) == 1);
		CHILD_CHECK(h_recv(&j->done, &b, H_CHILD_TIMEOUT_MS) == 1);
	}
	shn_disconnect(c);
	return 0;
}

/* The keys list as "kind:key:ports:filters" lines, in its order. */
static void keys_text(const json_t *s, char *buf, size_t len)
{
	const json_t *k;
	size_t i, off = 0;

	buf[0] = '\0';
	json_array_foreach(json_object_get(s, "keys"), i, k) {
		const char *key = json_string_value(json_object_get(k, "key"));

		off += (size_t)snprintf(buf + off, len - off, "%s:%s:%lld:%lld\n",
					json_string_value(json_object_get(k, "kind")),
					key ? key : "-",
					json_integer_value(json_object_get(k, "ports")),
					json_integer_value(json_object_get(k, "filters")));
		assert_true(off < len);
	}
}

/* How many filters of this pid have this kind, key (NULL: null) and mask;
 * every filter's owner agrees with the clients array. */
static int count_filters(const json_t *doc, pid_t pid, const char *kind, const char *key,
			 uint32_t mask)
{
	const json_t *s = json_object_get(doc, "subscriptions"), *f, *cl;
	size_t i, j;
	int n = 0;

	json_array_foreach(json_object_get(s, "filters"), i, f) {
		bool owner = false;

		json_array_foreach(json_object_get(doc, "clients"), j, cl)
			if (json_equal(json_object_get(cl, "id"), json_object_get(f, "client"))) {
				assert_true(json_equal(json_object_get(cl, "pid"),
						       json_object_get(f, "pid")));
				assert_true(json_equal(json_object_get(cl, "name"),
						       json_object_get(f, "name")));
				owner = true;
			}
		assert_true(owner);
		assert_true(json_integer_value(json_object_get(f, "conn")) > 0);
		assert_true(json_integer_value(json_object_get(f, "port")) > 0);
		const char *k = json_string_value(json_object_get(f, "key"));

		if (json_integer_value(json_object_get(f, "pid")) == pid &&
		    !strcmp(json_string_value(json_object_get(f, "kind")), kind) &&
		    (key ? k && !strcmp(k, key) : json_is_null(json_object_get(f, "key"))) &&
		    json_integer_value(json_object_get(f, "mask")) == (json_int_t)mask)
			n++;
	}
	return n;
}

static long long total(const json_t *doc, const char *what)
{
	return json_integer_value(json_object_get(json_object_get(doc, "subscriptions"), what));
}

static void test_counts_follow(void **state)
{
	struct harness *h = *state;
	struct sub_job a = { .h = h }, b = { .h = h, .b = true };
	shn_client *c = h_connect(h);
	char text[512];
	uint8_t x;
	json_t *doc;

	h_chan_init(&a.ready);
	h_chan_init(&a.done);
	h_chan_init(&b.ready);
	h_chan_init(&b.done);
	pid_t pa = h_fork(subscriber, &a), pb = h_fork(subscriber, &b);

	assert_int_equal(h_recv(&a.ready, &x, H_TIMEOUT_MS), 1);
	assert_int_equal(h_recv(&b.ready, &x, H_TIMEOUT_MS), 1);
	doc = subs_doc(c);
	assert_int_equal(total(doc, "filters_total"), 7);
	assert_int_equal(total(doc, "keys_total"), 4);
	assert_false(json_is_true(json_object_get(json_object_get(doc, "subscriptions"),
						  "filters_truncated")));
	keys_text(json_object_get(doc, "subscriptions"), text, sizeof(text));
	assert_string_equal(text, "any:-:1:1\nexact:k1:3:4\nexact:k2:1:1\nexact:k3:1:1\n");
	assert_int_equal(count_filters(doc, pa, "exact", "k1", SHN_EV_ALL), 2);
	assert_int_equal(count_filters(doc, pa, "exact", "k2", SHN_EV_ALL), 1);
	assert_int_equal(count_filters(doc, pa, "any", NULL, 0x2), 1);
	assert_int_equal(count_filters(doc, pb, "exact", "k1", 0x4), 1);
	assert_int_equal(count_filters(doc, pb, "exact", "k1", 0x8), 1);
	assert_int_equal(count_filters(doc, pb, "exact", "k3", SHN_EV_ALL), 1);
	json_decref(doc);

	/* B ends its k3 filter: gone from both lists */
	assert_int_equal(h_send(&b.done, 1), 1);
	assert_int_equal(h_recv(&b.ready, &x, H_TIMEOUT_MS), 1);
	doc = subs_doc(c);
	assert_int_equal(total(doc, "filters_total"), 6);
	keys_text(json_object_get(doc, "subscriptions"), text, sizeof(text));
	assert_string_equal(text, "any:-:1:1\nexact:k1:3:4\nexact:k2:1:1\n");
	json_decref(doc);

	/* B leaves: its port no longer counts for k1 */
	assert_int_equal(h_send(&b.done, 1), 1);
	h_wait_ok(pb, H_TIMEOUT_MS);
	int64_t end = h_now_ms() + H_TIMEOUT_MS;
	for (;;) {
		doc = subs_doc(c);
		if (total(doc, "filters_total") == 4 || h_now_ms() > end)
			break;
		json_decref(doc);
		h_sleep_ms(10);
	}
	assert_int_equal(total(doc, "filters_total"), 4);
	keys_text(json_object_get(doc, "subscriptions"), text, sizeof(text));
	assert_string_equal(text, "any:-:1:1\nexact:k1:2:2\nexact:k2:1:1\n");
	assert_int_equal(count_filters(doc, pb, "exact", "k1", 0x4), 0);
	json_decref(doc);

	assert_int_equal(h_send(&a.done, 1), 1);
	h_wait_ok(pa, H_TIMEOUT_MS);
	h_disconnect(c);
}

/* ---- a raw client ------------------------------------------------------- */

static int raw_hello(const struct harness *h)
{
	struct shn_msg_hello hello;
	union {
		struct shn_msg_hello_reply r;
		uint8_t raw[SHN_MSG_MAX];
	} rep;
	int s = h_raw_connect(h), fds[SHN_MSG_MAX_FDS], nfds = SHN_MSG_MAX_FDS;

	memset(&hello, 0, sizeof(hello));
	h_hdr_init(&hello.hdr, SHN_MSG_HELLO);
	h_raw_send(s, &hello, sizeof(hello));
	assert_int_equal(h_raw_recv(s, &rep, sizeof(rep), fds, &nfds, H_TIMEOUT_MS), sizeof(rep.r));
	for (int i = 0; i < nfds; i++)
		close(fds[i]);
	assert_int_equal(rep.r.hdr.status, 0);
	assert_true(rep.r.flags & SHN_HELLO_F_STATS_FLAGS);
	return s;
}

/* Send STATS with these flags and reserved; the first reply chunk's status,
 * and whether the document (all chunks) has a "subscriptions" member. */
static int raw_stats(int s, uint32_t flags, uint32_t reserved, bool *has_subs)
{
	struct shn_msg_stats req;
	union {
		struct shn_msg_stats_reply r;
		uint8_t raw[SHN_MSG_MAX];
	} rep;
	char *doc = NULL;
	size_t len = 0;

	memset(&req, 0, sizeof(req));
	h_hdr_init(&req.hdr, SHN_MSG_STATS);
	req.flags = flags;
	req.reserved = reserved;
	h_raw_send(s, &req, sizeof(req));
	for (;;) {
		ssize_t n = h_raw_recv(s, &rep, sizeof(rep), NULL, NULL, H_TIMEOUT_MS);

		assert_true(n >= (ssize_t)sizeof(rep.r.hdr));
		assert_int_equal(rep.r.hdr.type, SHN_MSG_STATS);
		assert_int_equal(rep.r.hdr.id, req.hdr.id);
		if (rep.r.hdr.status != 0) {
			free(doc);
			return rep.r.hdr.status;
		}
		assert_true(n >= (ssize_t)sizeof(rep.r) && rep.r.len <= n - sizeof(rep.r));
		doc = realloc(doc, len + rep.r.len + 1);
		assert_non_null(doc);
		memcpy(doc + len, rep.r.text, rep.r.len);
		len += rep.r.len;
		doc[len] = '\0';
		if (rep.r.flags & SHN_STATS_LAST)
			break;
	}
	json_t *j = parse(doc);

	*has_subs = json_object_get(j, "subscriptions") != NULL;
	json_decref(j);
	return 0;
}

static void test_raw_stats_flags(void **state)
{
	struct harness *h = *state;
	shn_client *c = h_connect(h);
	json_t *doc = parse(h_stats(c));
	json_int_t errs0 = json_integer_value(json_object_get(json_object_get(doc, "broker"),
							      "protocol_errors"));
	bool has = false;
	int s = raw_hello(h);

	json_decref(doc);
	assert_int_equal(raw_stats(s, SHN_STATS_F_SUBSCRIPTIONS, 0, &has), 0);
	assert_true(has);
	assert_int_equal(raw_stats(s, 0, 0, &has), 0);
	assert_false(has);
	assert_int_equal(raw_stats(s, 2, 0, &has), -EINVAL);
	assert_int_equal(raw_stats(s, SHN_STATS_F_SUBSCRIPTIONS, 1, &has), -EINVAL);
	assert_int_equal(raw_stats(s, SHN_STATS_F_SUBSCRIPTIONS, 0, &has), 0);   /* still served */
	assert_true(has);

	/* the header and 4 bytes: neither form */
	struct shn_msg_stats bad;

	memset(&bad, 0, sizeof(bad));
	h_hdr_init(&bad.hdr, SHN_MSG_STATS);
	bad.flags = SHN_STATS_F_SUBSCRIPTIONS;
	h_raw_send(s, &bad, sizeof(bad.hdr) + 4);
	h_expect_eof(s, "a STATS of 20 bytes");
	close(s);
	doc = parse(h_stats(c));
	assert_int_equal(json_integer_value(json_object_get(json_object_get(doc, "broker"),
							    "protocol_errors")), errs0 + 1);
	json_decref(doc);
	h_disconnect(c);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_only_when_asked, h_setup, h_teardown),
		cmocka_unit_test_setup_teardown(test_counts_follow, h_setup, h_teardown),
		cmocka_unit_test_setup_teardown(test_raw_stats_flags, h_setup, h_teardown),
	};

	h_parse_args(argc, argv);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
