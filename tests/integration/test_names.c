/* SPDX-License-Identifier: MIT */
/*
 * test_names.c - a client's name in the broker's statistics (per client
 * pid, uid, and the name it gave, if any; docs/protocol.md, SET_NAME):
 *
 *   test_name_in_stats     shn_set_name(); the stats document shows it
 *                          under "name" for that client's pid, null for a
 *                          client without one; a later call replaces it,
 *                          NULL removes it
 *   test_bad_names         -EINVAL for every name the rule refuses (too
 *                          long, not UTF-8, control characters), and the
 *                          name already given stays
 *   test_name_reconnect    the library sends the name again to a broker
 *                          that came back: shown once RECONNECT arrived
 *   test_hostile_set_name  a raw client sends SET_NAME messages the library
 *                          never would: each is cut off and counted in
 *                          protocol_errors, and others are served meanwhile
 *
 * The stats document is parsed with jansson, as shmnotify stats does.
 */
#define _GNU_SOURCE
#include "harness.h"
#include "harness_stats.h"

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include "shm/proto.h"

/* The "name" member of the client object whose pid is pid and whose
 * "name" is not the stats asker's (there may be several clients of this
 * process); NULL when none matches.  *found: how many clients of pid. */
static const json_t *client_name(const json_t *doc, pid_t pid, const char *want, int *found)
{
	const json_t *cl, *match = NULL;
	size_t i;

	*found = 0;
	json_array_foreach(json_object_get(doc, "clients"), i, cl) {
		const json_t *name = json_object_get(cl, "name");

		if (json_integer_value(json_object_get(cl, "pid")) != pid)
			continue;
		(*found)++;
		if (name == NULL)
			fail_msg("a client object without a \"name\" member");
		if (want == NULL ? json_is_null(name)
				 : json_is_string(name) && strcmp(json_string_value(name), want) == 0)
			match = name;
	}
	return match;
}

/* Does the broker show a client of this process named want (NULL: one
 * without a name, besides the asker)? */
static bool shows(shn_client *asker, const char *want)
{
	json_t *doc = hs_stats_doc(asker);
	int found;
	bool yes = client_name(doc, getpid(), want, &found) != NULL;

	json_decref(doc);
	return yes;
}

static void test_name_in_stats(void **state)
{
	struct harness *h = *state;
	shn_client *c = h_connect(h);
	shn_client *asker = h_connect(h);
	/* 64 bytes, the most: "indexer é€🔔 " (18 bytes) padded with x */
	char longest[SHN_NAME_MAX + 1];

	assert_false(shows(asker, "indexer"));
	assert_int_equal(shn_set_name(c, "indexer"), 0);
	assert_true(shows(asker, "indexer"));
	assert_true(shows(asker, NULL));   /* the asker gave none: null */

	/* a later name replaces it; UTF-8 of 2, 3 and 4 bytes, 64 bytes */
	memset(longest, 'x', SHN_NAME_MAX);
	memcpy(longest, "indexer \xc3\xa9\xe2\x82\xac\xf0\x9f\x94\x94 ", 18);
	longest[SHN_NAME_MAX] = '\0';
	assert_int_equal(shn_set_name(c, longest), 0);
	assert_true(shows(asker, longest));
	assert_false(shows(asker, "indexer"));

	/* quotes and backslashes travel as they are (JSON escapes them) */
	assert_int_equal(shn_set_name(c, "say \"hi\" \\o/"), 0);
	assert_true(shows(asker, "say \"hi\" \\o/"));

	/* NULL removes it: both clients of this process show null */
	assert_int_equal(shn_set_name(c, NULL), 0);
	json_t *doc = hs_stats_doc(asker);
	int found;
	assert_non_null(client_name(doc, getpid(), NULL, &found));
	assert_int_equal(found, 2);
	const json_t *cl;
	size_t i;
	json_array_foreach(json_object_get(doc, "clients"), i, cl)
		assert_true(json_is_null(json_object_get(cl, "name")));
	json_decref(doc);

	h_disconnect(asker);
	h_disconnect(c);
}

static void test_bad_names(void **state)
{
	struct harness *h = *state;
	shn_client *c = h_connect(h);
	shn_client *asker = h_connect(h);
	char too_long[SHN_NAME_MAX + 2];
	static const char *const bad[] = {
		"tab\there",            /* C0 control */
		"line\nbreak",
		"del\x7f",              /* DEL */
		"c1\xc2\x85",           /* U+0085, a C1 control */
		"\xff\xfe",             /* not UTF-8 */
		"\xc0\xaf",             /* overlong '/' */
		"\xed\xa0\x80",         /* a surrogate */
		"\xf4\x90\x80\x80",     /* above U+10FFFF */
		"cut \xe2\x82",         /* a sequence cut short */
		"\x1b[31mred",          /* a terminal escape */
	};

	assert_int_equal(shn_set_name(c, "keeper"), 0);
	memset(too_long, 'n', SHN_NAME_MAX + 1);
	too_long[SHN_NAME_MAX + 1] = '\0';
	assert_int_equal(shn_set_name(c, too_long), -EINVAL);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int rc = shn_set_name(c, bad[i]);

		if (rc != -EINVAL)
			fail_msg("shn_set_name(bad name #%zu) returned %d, not -EINVAL", i, rc);
	}
	assert_int_equal(shn_set_name(NULL, "x"), -EINVAL);
	/* nothing changed, and the client still works */
	assert_true(shows(asker, "keeper"));
	assert_int_equal(shn_set_name(c, "keeper 2"), 0);
	assert_true(shows(asker, "keeper 2"));
	h_disconnect(asker);
	h_disconnect(c);
}

static void expect_system(shn_port *p, uint32_t event, const char *what)
{
	shn_notification out[8];
	int n = shn_port_get(p, out, 8, H_TIMEOUT_MS);

	if (n < 1 || out[0].event != event)
		fail_msg("%s: shn_port_get returned %d, event 0x%x, expected event 0x%x", what, n,
			 n >= 1 ? out[0].event : 0, event);
}

static void test_name_reconnect(void **state)
{
	struct harness *h = *state;
	shn_client *c = h_connect(h);
	shn_conn conn;
	shn_port *p = h_port_sub(c, 0, "k", 1, SHN_EV_ALL, &conn);

	assert_int_equal(shn_set_name(c, "survivor"), 0);
	assert_true(WIFSIGNALED(h_kill_broker(h)));
	expect_system(p, SHN_EV_BROKER_STATE, "after the broker died");
	/* set while the broker is away: kept, and what the next one shows */
	assert_int_equal(shn_set_name(c, "survivor 2"), -ENOTCONN);
	h_launch(h, NULL);
	expect_system(p, SHN_EV_RECONNECT, "after the broker came back");

	shn_client *asker = h_connect(h);
	assert_true(shows(asker, "survivor 2"));
	h_disconnect(asker);
	h_disconnect(c);
}

/* ---- a raw client: what the library never sends ----------------------- */

static void hdr_init(struct shn_msg_hdr *hd, uint16_t type, uint32_t id)
{
	hd->magic = SHN_PROTO_MAGIC;
	hd->version = SHN_PROTO_VERSION;
	hd->type = type;
	hd->id = id;
	hd->status = 0;
}

/* A raw connection past HELLO; checks the broker announces SET_NAME. */
static int raw_hello(const struct harness *h)
{
	struct shn_msg_hello hello;
	union {
		struct shn_msg_hello_reply r;
		uint8_t raw[SHN_MSG_MAX];
	} rep;
	int s = h_raw_connect(h), fds[SHN_MSG_MAX_FDS], nfds = SHN_MSG_MAX_FDS;

	memset(&hello, 0, sizeof(hello));
	hdr_init(&hello.hdr, SHN_MSG_HELLO, 1);
	assert_int_equal(send(s, &hello, sizeof(hello), MSG_NOSIGNAL), sizeof(hello));
	assert_int_equal(h_raw_recv(s, &rep, sizeof(rep), fds, &nfds, H_TIMEOUT_MS),
			 sizeof(rep.r));
	for (int i = 0; i < nfds; i++)
		close(fds[i]);
	assert_int_equal(rep.r.hdr.status, 0);
	assert_true(rep.r.flags & SHN_HELLO_F_NAME);
	return s;
}

/* Send SET_NAME: name_len as told, len bytes of name after the header. */
static void send_set_name(int s, uint16_t name_len, const void *name, size_t len,
			  uint16_t reserved)
{
	union {
		struct shn_msg_set_name m;
		uint8_t raw[sizeof(struct shn_msg_set_name) + 128];
	} u;

	assert_true(len <= 128);
	memset(&u, 0, sizeof(u));
	hdr_init(&u.m.hdr, SHN_MSG_SET_NAME, 2);
	u.m.name_len = name_len;
	u.m.reserved = reserved;
	memcpy(u.m.name, name, len);
	assert_int_equal(send(s, &u, sizeof(u.m) + len, MSG_NOSIGNAL), (ssize_t)(sizeof(u.m) + len));
}

/* The broker closes s without answering. */
static void expect_cut_off(int s, const char *what)
{
	uint8_t buf[SHN_MSG_MAX];
	ssize_t n = h_raw_recv(s, buf, sizeof(buf), NULL, NULL, H_TIMEOUT_MS);

	if (n != 0 && n != -ECONNRESET)
		fail_msg("%s: the broker answered (%zd) instead of disconnecting", what, n);
	close(s);
}

static uint64_t protocol_errors(shn_client *c)
{
	json_t *doc = hs_stats_doc(c);
	json_int_t v = json_integer_value(json_object_get(json_object_get(doc, "broker"),
							  "protocol_errors"));

	json_decref(doc);
	return (uint64_t)v;
}

static void test_hostile_set_name(void **state)
{
	struct harness *h = *state;
	shn_client *good = h_connect(h);
	uint64_t errs0 = protocol_errors(good);
	uint8_t buf[SHN_MSG_MAX];
	int s, n_bad = 0;

	assert_int_equal(shn_set_name(good, "good"), 0);

	/* a valid SET_NAME from a raw client: answered 0, shown */
	s = raw_hello(h);
	send_set_name(s, 3, "raw", 3, 0);
	assert_int_equal(h_raw_recv(s, buf, sizeof(buf), NULL, NULL, H_TIMEOUT_MS),
			 sizeof(struct shn_msg_reply));
	assert_int_equal(((struct shn_msg_hdr *)(void *)buf)->status, 0);
	assert_true(shows(good, "raw"));
	close(s);

	static const struct {
		const char *what;
		uint16_t name_len;
		const char *name;
		size_t len;
		uint16_t reserved;
	} bad[] = {
		{ "a control character", 5, "a\tbcd", 5, 0 },
		{ "not UTF-8", 2, "\xff\xff", 2, 0 },
		{ "a C1 control", 2, "\xc2\x9b", 2, 0 },
		{ "65 bytes", 65, "0123456789012345678901234567890123456789012345678901234567890123"
				  "4", 65, 0 },
		{ "name_len beyond the message", 10, "short", 5, 0 },
		{ "bytes beyond name_len", 3, "abcdef", 6, 0 },
		{ "a reserved field set", 3, "abc", 3, 7 },
		{ "a NUL inside", 3, "a\0b", 3, 0 },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		s = raw_hello(h);
		send_set_name(s, bad[i].name_len, bad[i].name, bad[i].len, bad[i].reserved);
		expect_cut_off(s, bad[i].what);
		n_bad++;
		/* meanwhile the others are served: a named client's stats */
		assert_true(shows(good, "good"));
	}
	/* SET_NAME before HELLO: the first message must be HELLO */
	s = h_raw_connect(h);
	send_set_name(s, 3, "abc", 3, 0);
	expect_cut_off(s, "SET_NAME before HELLO");
	n_bad++;

	assert_int_equal(protocol_errors(good), errs0 + (uint64_t)n_bad);
	assert_false(shows(good, "a\tbcd"));
	h_disconnect(good);
}

int main(int argc, char **argv)
{
	h_parse_args(argc, argv);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_name_in_stats, h_setup, h_teardown),
		cmocka_unit_test_setup_teardown(test_bad_names, h_setup, h_teardown),
		cmocka_unit_test_setup_teardown(test_name_reconnect, h_setup, h_teardown),
		cmocka_unit_test_setup_teardown(test_hostile_set_name, h_setup, h_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
