/* SPDX-License-Identifier: MIT */
/*
 * test_direct_lib.c - the library's end of the direct path's control plane
 * (docs/direct-path.md):
 *
 *   test_asks_when_on      a client asks for the direct path and sets it up
 *                          (the stats document shows "direct": true for it)
 *                          unless SHMNOTIFY_DIRECT=off was set as it
 *                          connected ("direct": false); they publish to and
 *                          receive from each other, each batch once, in
 *                          order
 *   test_broker_off        under shmnotifyd --direct off the broker grants
 *                          nothing, no client shows "direct", and delivery
 *                          works as before
 *   test_offer_within_fanout  the broker offers a publisher direct rings
 *                          only for a batch that reached no more ports than
 *                          its SHMNOTIFY_DIRECT_FANOUT (told in DIRECT_SETUP):
 *                          a wider batch leaves it with none ("direct_rings"
 *                          0), a narrow one with one per port it reached
 *   test_reconnect_direct  after the broker is lost and back, the client
 *                          sets the direct path up again with the new broker,
 *                          and one that connected with SHMNOTIFY_DIRECT=off
 *                          still does not ask, whatever the environment
 *                          says by then
 *
 * The stats document is parsed with jansson, as shmnotify stats does.
 */
#define _GNU_SOURCE
#include "harness.h"

#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

/* Connect with SHMNOTIFY_DIRECT set to value (NULL: unset), whatever the
 * test's environment says, and name the client. */
static shn_client *connect_with(struct harness *h, const char *value, const char *name)
{
	char *saved = h_env_set("SHMNOTIFY_DIRECT", value);
	shn_client *c = h_connect(h);

	h_env_restore("SHMNOTIFY_DIRECT", saved);
	assert_int_equal(shn_set_name(c, name), 0);
	return c;
}

/* The member `field` of the client named name in the stats document:
 * a boolean as 1 or 0, an integer as itself; -1 when no such client lists
 * one of either. */
static long long client_member(shn_client *asker, const char *name, const char *field)
{
	char *js = h_stats(asker);
	json_error_t err;
	json_t *doc = json_loads(js, 0, &err), *cl;
	size_t i;
	long long r = -1;

	if (doc == NULL)
		fail_msg("stats are not JSON (%s): %s", err.text, js);
	free(js);
	json_array_foreach(json_object_get(doc, "clients"), i, cl) {
		const json_t *n = json_object_get(cl, "name"), *d = json_object_get(cl, field);

		if (!json_is_string(n) || strcmp(json_string_value(n), name) != 0)
			continue;
		if (json_is_boolean(d))
			r = json_is_true(d) ? 1 : 0;
		else if (json_is_integer(d))
			r = json_integer_value(d);
	}
	json_decref(doc);
	return r;
}

/* The "direct" member of the client named name: 1 true, 0 false, -1 none. */
static int shows_direct(shn_client *asker, const char *name)
{
	return ((int)client_member(asker, name, "direct"));
}

/* Connect with the direct path asked for and SHMNOTIFY_DIRECT_FANOUT set
 * to fanout, whatever the test's environment says (the epoll runs set 2). */
static shn_client *connect_fanout(struct harness *h, const char *fanout, const char *name)
{
	char *saved = h_env_set("SHMNOTIFY_DIRECT_FANOUT", fanout);
	shn_client *c = connect_with(h, "on", name);

	h_env_restore("SHMNOTIFY_DIRECT_FANOUT", saved);
	return c;
}

/* from publishes n batches of one note each under key; to's port gets
 * them all, once each, in order, with from's pid. */
static void expect_flow(shn_client *from, shn_port *to, const char *key, int n)
{
	shn_notification out[8];

	for (int i = 0; i < n; i++) {
		uint64_t v = (uint64_t)i;
		shn_notification x = { .event = 1, .key = key, .key_len = (uint16_t)strlen(key),
				       .data = &v, .data_len = sizeof(v) };

		assert_int_equal(shn_notify(from, &x, 1, 0), 0);
	}
	for (int i = 0; i < n;) {
		int got = h_get(to, out, 8);

		for (int k = 0; k < got; k++, i++) {
			assert_int_equal(out[k].event, 1);
			assert_int_equal(out[k].data_len, 8);
			assert_int_equal(h_le64(out[k].data), (uint64_t)i);
			assert_int_equal(out[k].sender_pid, getpid());
		}
	}
	assert_int_equal(shn_port_get(to, out, 8, 0), -ETIMEDOUT);   /* nothing twice */
}

static void test_asks_when_on(void **state)
{
	struct harness *h = *state;
	shn_client *on = connect_with(h, "on", "on");
	shn_client *on2 = connect_with(h, "1", "on2");
	shn_client *off = connect_with(h, "off", "off");
	shn_client *dflt = connect_with(h, NULL, "default");
	shn_conn conn_p_on;
	shn_port *p_on = h_port_sub(on, 0, "k.on", 4, SHN_EV_ALL, &conn_p_on);
	shn_conn conn_p_off;
	shn_port *p_off = h_port_sub(off, 0, "k.off", 5, SHN_EV_ALL, &conn_p_off);

	assert_int_equal(shows_direct(on, "on"), 1);
	assert_int_equal(shows_direct(on, "on2"), 1);
	assert_int_equal(shows_direct(on, "off"), 0);
	assert_int_equal(client_member(on, "off", "direct_fanout"), 0);   /* no direct path */
	assert_int_equal(shows_direct(on, "default"), 1);   /* on unless off */
	expect_flow(on, p_off, "k.off", 100);
	expect_flow(off, p_on, "k.on", 100);
	expect_flow(on2, p_on, "k.on", 100);
	expect_flow(dflt, p_on, "k.on", 100);
	h_disconnect(dflt);
	h_disconnect(off);
	h_disconnect(on2);
	h_disconnect(on);
}

/* from publishes n one-note batches under key; each of the nports ports
 * gets them all, in order.  The broker routed each batch (and offered
 * what rings it offers) before the first port could read it. */
static void flow_to_all(shn_client *from, shn_port **ports, int nports, const char *key, int n)
{
	for (int i = 0; i < n; i++) {
		uint64_t v = (uint64_t)i;
		shn_notification x = { .event = 1, .key = key, .key_len = (uint16_t)strlen(key),
				       .data = &v, .data_len = sizeof(v) };

		assert_int_equal(shn_notify(from, &x, 1, 0), 0);
	}
	for (int k = 0; k < nports; k++) {
		shn_notification out[8];

		for (int i = 0; i < n;) {
			int got = h_get(ports[k], out, 8);

			for (int j = 0; j < got; j++, i++)
				assert_int_equal(h_le64(out[j].data), (uint64_t)i);
		}
	}
}

static void test_offer_within_fanout(void **state)
{
	struct harness *h = *state;
	shn_client *sub = connect_with(h, "on", "sub");
	shn_client *one = connect_fanout(h, "1", "fanout-1");
	shn_client *three = connect_fanout(h, "3", "fanout-3");
	shn_port *wide[3], *narrow;
	shn_conn conn;

	for (int k = 0; k < 3; k++)
		wide[k] = h_port_sub(sub, 0, "wide", 4, SHN_EV_ALL, &conn);
	narrow = h_port_sub(sub, 0, "narrow", 6, SHN_EV_ALL, &conn);
	assert_int_equal(shows_direct(sub, "fanout-1"), 1);
	/* what each library told the broker, shown in the stats */
	assert_int_equal(client_member(sub, "fanout-1", "direct_fanout"), 1);
	assert_int_equal(client_member(sub, "fanout-3", "direct_fanout"), 3);

	/* three ports, fan-out one: the broker carries it and offers nothing */
	flow_to_all(one, wide, 3, "wide", 20);
	assert_int_equal(client_member(sub, "fanout-1", "direct_rings"), 0);
	/* one port: its ring is offered */
	flow_to_all(one, &narrow, 1, "narrow", 20);
	assert_int_equal(client_member(sub, "fanout-1", "direct_rings"), 1);
	/* three ports, fan-out three: one ring each */
	flow_to_all(three, wide, 3, "wide", 20);
	assert_int_equal(client_member(sub, "fanout-3", "direct_rings"), 3);
	/* and what goes directly still arrives whole and in order */
	flow_to_all(three, wide, 3, "wide", 200);
	flow_to_all(one, &narrow, 1, "narrow", 200);
	assert_int_equal(client_member(sub, "fanout-1", "direct_rings"), 1);
	h_disconnect(three);
	h_disconnect(one);
	h_disconnect(sub);
}

static int setup_off(void **state)
{
	static const char *const off[] = { "--direct", "off", NULL };
	int r = h_setup(state);

	h_stop(*state);
	h_start(*state, off);
	return r;
}

static void test_broker_off(void **state)
{
	struct harness *h = *state;
	shn_client *a = connect_with(h, "on", "a");
	shn_client *b = connect_with(h, "off", "b");
	shn_conn conn_pa;
	shn_port *pa = h_port_sub(a, 0, "k.a", 3, SHN_EV_ALL, &conn_pa);

	assert_int_equal(shows_direct(a, "a"), 0);
	assert_int_equal(shows_direct(a, "b"), 0);
	expect_flow(b, pa, "k.a", 50);
	expect_flow(a, pa, "k.a", 50);
	h_disconnect(b);
	h_disconnect(a);
}

/* Does c take requests (it switched to the new broker)? */
static bool answers(shn_client *c)
{
	char *js = NULL;
	bool yes = shn_stats_json(c, &js) >= 0;

	free(js);
	if (!yes)
		h_sleep_ms(5);
	return yes;
}

static void test_reconnect_direct(void **state)
{
	struct harness *h = *state;
	shn_client *c = connect_with(h, "on", "again");
	shn_client *off = connect_with(h, "off", "still-off");
	shn_conn conn_p;
	shn_port *p = h_port_sub(c, 0, "k.r", 3, SHN_EV_ALL, &conn_p);
	shn_notification out[4];
	int64_t until;

	assert_int_equal(shows_direct(c, "again"), 1);
	assert_int_equal(shows_direct(c, "still-off"), 0);
	unsetenv("SHMNOTIFY_DIRECT");   /* read at shn_connect, not now: off stays off */
	assert_true(WIFSIGNALED(h_kill_broker(h)));
	h_launch(h, NULL);
	/* BROKER_STATE, then RECONNECT once every filter is back */
	assert_int_equal(h_get(p, out, 4), 1);
	assert_int_equal(out[0].event, SHN_EV_BROKER_STATE);
	until = h_now_ms() + H_TIMEOUT_MS;
	for (;;) {
		int n = shn_port_get(p, out, 4, 200);

		if (n == 1 && out[0].event == SHN_EV_RECONNECT)
			break;
		assert_true(n == -ETIMEDOUT && h_now_ms() < until);
	}
	assert_int_equal(shows_direct(c, "again"), 1);
	/* its own reconnect may lag: the broker shows its name (sent before
	 * the switch), then the client takes requests again */
	for (until = h_now_ms() + H_TIMEOUT_MS; shows_direct(c, "still-off") != 0;)
		assert_true(h_now_ms() < until);
	while (!answers(off))
		assert_true(h_now_ms() < until);
	while (!answers(c))
		assert_true(h_now_ms() < until);
	expect_flow(c, p, "k.r", 20);
	expect_flow(off, p, "k.r", 20);
	unsetenv("SHMNOTIFY_DIRECT");
	h_disconnect(off);
	h_disconnect(c);
}

int main(int argc, char **argv)
{
	h_parse_args(argc, argv);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_asks_when_on, h_setup, h_teardown),
		cmocka_unit_test_setup_teardown(test_broker_off, setup_off, h_teardown),
		cmocka_unit_test_setup_teardown(test_offer_within_fanout, h_setup, h_teardown),
		cmocka_unit_test_setup_teardown(test_reconnect_direct, h_setup, h_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
