/* SPDX-License-Identifier: MIT */
/*
 * test_reconnect.c - clients outlive a broker crash and learn of it (DESIGN
 * rule 10, "Broker loss"): every port gets SHN_EV_BROKER_STATE, publishing
 * returns -ENOTCONN, and once a broker runs again the library reconnects,
 * restores every filter with the same connection numbers, and each port gets
 * SHN_EV_RECONNECT.
 */
#define _GNU_SOURCE
#include "harness.h"

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>

static void roundtrip(shn_client *c, shn_port *p, shn_conn conn, const char *key)
{
	shn_notification out[4];
	shn_notification n = { .event = 1, .key = key, .key_len = (uint16_t)strlen(key),
			       .data = "rt", .data_len = 2 };

	assert_int_equal(shn_notify(c, &n, 1, 0), 0);
	assert_int_equal(h_get(p, out, 4), 1);
	assert_int_equal(out[0].event, 1);
	assert_int_equal(out[0].conn, conn);
	assert_memory_equal(out[0].data, "rt", 2);
}

/* Rule 10: the broker crashes; every port gets SHN_EV_BROKER_STATE,
 * publishing returns -ENOTCONN; once a broker runs again the library
 * reconnects, restores the filters with the same conns, and each port gets
 * SHN_EV_RECONNECT. */
static void expect_system(shn_port *p, uint32_t event, const char *what)
{
	shn_notification out[8];
	int n = shn_port_get(p, out, 8, H_TIMEOUT_MS);

	if (n < 1)
		fail_msg("%s: shn_port_get returned %d (%s) instead of the event", what, n,
			 shn_strerror(n));
	if (out[0].event != event)
		fail_msg("%s: got event 0x%x, expected 0x%x", what, out[0].event, event);
	assert_int_equal(out[0].seq, 0);
	assert_int_equal(out[0].key_len, 0);
	assert_int_equal(out[0].data_len, 0);
	assert_int_equal(out[0].sender_pid, 0);
}

static void test_broker_loss(void **state)
{
	struct harness *h = *state;
	shn_notification out[8];
	shn_conn c1, c2;

	shn_client *c = h_connect(h);
	shn_port *p1 = h_port_sub(c, 0, "loss", 4, SHN_EV_ALL, &c1);
	shn_port *p2 = h_port_sub(c, 0, NULL, 0, 0x2, &c2);
	roundtrip(c, p1, c1, "loss");
	assert_int_equal(shn_port_get(p2, out, 8, 0), -ETIMEDOUT);  /* mask 0x2: not event 1 */

	int st = h_kill_broker(h);                  /* a crash */
	assert_true(WIFSIGNALED(st));

	/* every port learns that its stream broke */
	expect_system(p1, SHN_EV_BROKER_STATE, "port 1 after the broker died");
	expect_system(p2, SHN_EV_BROKER_STATE, "port 2 after the broker died");
	/* the library has seen the socket close: publishing is refused */
	shn_notification lost = { .event = 3, .key = "loss", .key_len = 4, .data = "lost",
				  .data_len = 4 };
	assert_int_equal(shn_notify(c, &lost, 1, 0), -ENOTCONN);

	/* a broker runs again on the same socket: the library reconnects */
	h_launch(h, NULL);
	expect_system(p1, SHN_EV_RECONNECT, "port 1 after the broker came back");
	expect_system(p2, SHN_EV_RECONNECT, "port 2 after the broker came back");

	/* filters restored with the same connection numbers; the refused
	 * batch is never delivered (at most once) */
	shn_client *pub = h_connect(h);
	shn_notification again = { .event = 3, .key = "loss", .key_len = 4, .data = "again",
				   .data_len = 5 };
	assert_int_equal(shn_notify(pub, &again, 1, 0), 0);
	assert_int_equal(h_get(p1, out, 8), 1);
	assert_int_equal(out[0].conn, c1);
	assert_int_equal(out[0].data_len, 5);
	assert_memory_equal(out[0].data, "again", 5);
	assert_int_equal(h_get(p2, out, 8), 1);
	assert_int_equal(out[0].conn, c2);
	assert_memory_equal(out[0].data, "again", 5);
	/* and the reconnected client publishes again */
	roundtrip(c, p1, c1, "loss");
	assert_int_equal(shn_port_get(p2, out, 8, 0), -ETIMEDOUT);   /* event 1: not 0x2 */
	h_disconnect(pub);
	h_disconnect(c);
}

int main(int argc, char **argv)
{
	h_parse_args(argc, argv);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_broker_loss, h_setup, h_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
