/* SPDX-License-Identifier: MIT */
/*
 * epoll_loop.c - a port in your own epoll loop, beside your other
 * descriptors.  shn_port_fd() becomes readable when notifications arrive
 * after an empty shn_port_get() armed it; drain with timeout 0 until
 * -ETIMEDOUT (which re-arms it), then wait again.
 *
 * usage: epoll_loop [SOCKET]
 */
#include <errno.h>
#include <stdio.h>
#include <sys/epoll.h>
#include <unistd.h>
#include <shmnotify.h>

int main(int argc, char **argv)
{
	shn_notification out[64], note = {
		.event = 1, .key = "sensors/t1", .key_len = 10, .data = "21.5", .data_len = 4,
	};
	struct epoll_event ev = { .events = EPOLLIN }, got_ev;
	shn_client *c;
	shn_port *p;
	shn_conn conn;
	int ep, n, received = 0;

	n = shn_connect(argc > 1 ? argv[1] : NULL, &c);
	if (n == 0)
		n = shn_port_open(c, NULL, &p);
	if (n == 0)
		n = shn_subscribe(p, "sensors/t1", 10, SHN_EV_ALL, 0, &conn);
	if (n < 0) {
		fprintf(stderr, "epoll_loop: %s\n", shn_strerror(n));
		return 1;
	}
	ep = epoll_create1(EPOLL_CLOEXEC);
	ev.data.ptr = p;
	epoll_ctl(ep, EPOLL_CTL_ADD, shn_port_fd(p), &ev);   /* ... and your own fds */
	n = shn_port_get(p, out, 64, 0);                      /* empty: arms the fd */
	for (int i = 0; i < 5; i++)
		shn_notify(c, &note, 1, 0);                   /* five batches of one */
	while (received < 5) {
		if (epoll_wait(ep, &got_ev, 1, 2000) <= 0) {
			fprintf(stderr, "epoll_loop: nothing arrived in 2 s\n");
			return 1;
		}
		/* drain: each get returns one delivered batch */
		while ((n = shn_port_get(got_ev.data.ptr, out, 64, 0)) > 0) {
			received += n;
			printf("epoll: seq=%llu data=%.*s\n", (unsigned long long)out[0].seq,
			       (int)out[0].data_len, (const char *)out[0].data);
		}
		if (n != -ETIMEDOUT) {
			fprintf(stderr, "epoll_loop: %s\n", shn_strerror(n));
			return 1;
		}
	}
	printf("epoll: received %d notifications\n", received);
	close(ep);
	shn_disconnect(c);
	return 0;
}
