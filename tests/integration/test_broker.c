/* SPDX-License-Identifier: MIT */
/*
 * test_broker.c - the broker's life: a stale socket is replaced and a live
 * one is not (docs/design.md, rule 12).
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
	h_disconnect(c);
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
	h_disconnect(c2);
	h_disconnect(c);
}

int main(int argc, char **argv)
{
	h_parse_args(argc, argv);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_stale_socket),
		cmocka_unit_test_setup_teardown(test_second_broker_refused, h_setup, h_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
