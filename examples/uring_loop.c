/* SPDX-License-Identifier: MIT */
/*
 * uring_loop.c - a port in your own io_uring loop: a poll request on
 * shn_port_fd() completes when notifications arrive after an empty
 * shn_port_get() armed it; drain with timeout 0, then poll again.
 *
 * usage: uring_loop [SOCKET]
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <liburing.h>
#include <shmnotify.h>

int main(int argc, char **argv)
{
	shn_notification out[64], note = {
		.event = 1, .key = "jobs/done", .key_len = 9, .data = "job 7", .data_len = 5,
	};
	struct io_uring ring;
	struct io_uring_cqe *cqe;
	shn_client *c;
	shn_port *p;
	shn_conn conn;
	int n, received = 0;

	n = io_uring_queue_init(8, &ring, 0);
	if (n < 0) {
		fprintf(stderr, "uring_loop: io_uring unavailable here (%s)\n", shn_strerror(n));
		return 77;   /* skipped, e.g. io_uring disabled by seccomp */
	}
	n = shn_connect(argc > 1 ? argv[1] : NULL, &c);
	if (n == 0)
		n = shn_port_open(c, NULL, &p);
	if (n == 0)
		n = shn_subscribe(p, "jobs/done", 9, SHN_EV_ALL, 0, &conn);
	if (n < 0) {
		fprintf(stderr, "uring_loop: %s\n", shn_strerror(n));
		return 1;
	}
	shn_port_get(p, out, 64, 0);                          /* empty: arms the fd */
	for (int i = 0; i < 3; i++)
		shn_notify(c, &note, 1, 0);
	while (received < 3) {
		struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
		struct __kernel_timespec ts = { .tv_sec = 2 };

		io_uring_prep_poll_add(sqe, shn_port_fd(p), POLLIN);
		io_uring_submit(&ring);
		if (io_uring_wait_cqe_timeout(&ring, &cqe, &ts) < 0) {
			fprintf(stderr, "uring_loop: nothing arrived in 2 s\n");
			return 1;
		}
		io_uring_cqe_seen(&ring, cqe);
		while ((n = shn_port_get(p, out, 64, 0)) > 0) {
			received += n;
			printf("uring: seq=%llu data=%.*s\n", (unsigned long long)out[0].seq,
			       (int)out[0].data_len, (const char *)out[0].data);
		}
		if (n != -ETIMEDOUT) {
			fprintf(stderr, "uring_loop: %s\n", shn_strerror(n));
			return 1;
		}
	}
	printf("uring: received %d notifications\n", received);
	io_uring_queue_exit(&ring);
	shn_disconnect(c);
	return 0;
}
