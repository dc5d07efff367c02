/* SPDX-License-Identifier: MIT */
/*
 * test_broker.c - the broker's life: a stale socket is replaced and a live
 * one is not (DESIGN rule 12); clients outlive a broker crash and learn of
 * it (rule 10, "Broker loss": SHN_EV_BROKER_STATE, -ENOTCONN, reconnect with
 * the same connection numbers, SHN_EV_RECONNECT).
 */
#define _GNU_SOURCE
#include "harness.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
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

/* A socket file nobody listens on (left by a crash) is replaced. */
static void test_stale_socket(void **state)
{
	struct harness h;
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	(void)state;

	h_prepare(&h);
	strcpy(sa.sun_path, h.sock);
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	close(fd);                                 /* the file stays, nobody listens */
	struct stat st;
	assert_int_equal(stat(h.sock, &st), 0);
	assert_true(S_ISSOCK(st.st_mode));

	h_launch(&h, NULL);                        /* asserts it came up */
	shn_conn conn;
	shn_client *c = h_connect(&h);
	shn_port *p = h_port_sub(c, 0, "stale", 5, SHN_EV_ALL, &conn);
	roundtrip(c, p, conn, "stale");
	shn_disconnect(c);
	h_stop(&h);
}

/* A second broker on a live socket refuses to start, exit status 1, with a
 * message; the first one is unharmed. */
static void test_second_broker_refused(void **state)
{
	struct harness *h = *state;
	shn_conn conn;

	shn_client *c = h_connect(h);
	shn_port *p = h_port_sub(c, 0, "live", 4, SHN_EV_ALL, &conn);
	off_t before = 0;
	struct stat st;
	if (stat(h->log, &st) == 0)
		before = st.st_size;

	pid_t pid = h_spawn_broker(h, NULL);
	int status = h_wait(pid, H_TIMEOUT_MS);
	if (status == -1)
		fail_msg("a second shmnotifyd on a live socket did not exit");
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 1);
	/* it said something (both brokers log to the same file) */
	assert_int_equal(stat(h->log, &st), 0);
	assert_true(st.st_size > before);

	/* the first broker still owns the socket and works */
	roundtrip(c, p, conn, "live");
	shn_client *c2 = h_connect(h);
	roundtrip(c2, p, conn, "live");
	shn_disconnect(c2);
	shn_disconnect(c);
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
	shn_disconnect(pub);
	shn_disconnect(c);
}

int main(int argc, char **argv)
{
	h_parse_args(argc, argv);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_stale_socket),
		cmocka_unit_test_setup_teardown(test_second_broker_refused, h_setup, h_teardown),
		cmocka_unit_test_setup_teardown(test_broker_loss, h_setup, h_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
