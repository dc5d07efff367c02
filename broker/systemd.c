/* SPDX-License-Identifier: MIT */
/*
 * systemd.c - socket activation and readiness notification.
 */
#define _GNU_SOURCE
#include "systemd.h"

#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#ifdef SHN_HAVE_LIBSYSTEMD
#include <systemd/sd-daemon.h>
#endif

#include "log.h"

#define LISTEN_FDS_START 3   /* SD_LISTEN_FDS_START */

static int passed_fds(void)
{
#ifdef SHN_HAVE_LIBSYSTEMD
	return (sd_listen_fds(1));   /* unsets LISTEN_* itself */
#else
	const char *pid = getenv("LISTEN_PID"), *fds = getenv("LISTEN_FDS");
	char *end;
	long n;

	if (pid == NULL || fds == NULL || strtol(pid, &end, 10) != (long)getpid() || *end)
		return (0);
	n = strtol(fds, &end, 10);
	unsetenv("LISTEN_PID");
	unsetenv("LISTEN_FDS");
	unsetenv("LISTEN_FDNAMES");
	if (*end || n < 0 || n > 1024)
		return (-EINVAL);
	return ((int)n);
#endif
}

int shnd_systemd_listen_fd(void)
{
	int n = passed_fds(), fd = LISTEN_FDS_START, type = 0, domain = 0, acc = 0;
	socklen_t len = sizeof(int);

	if (n == 0)
		return (-1);
	if (n < 0) {
		shnd_err("LISTEN_FDS is malformed: %s", strerror(-n));
		return (-EINVAL);
	}
	if (n > 1)
		shnd_warn("%d sockets passed by the service manager; using the first (fd %d)", n,
			  fd);
	if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0 ||
	    getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) < 0 ||
	    getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &acc, &len) < 0 ||
	    type != SOCK_SEQPACKET || domain != AF_UNIX || !acc) {
		shnd_err("the socket passed by the service manager (fd %d) is not a listening "
			 "AF_UNIX SOCK_SEQPACKET socket: use ListenSequentialPacket= in the "
			 ".socket unit", fd);
		return (-EINVAL);
	}
	if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) < 0 ||
	    fcntl(fd, F_SETFD, FD_CLOEXEC) < 0)
		return (-errno);
	return (fd);
}

int shnd_systemd_notify(const char *state)
{
#ifdef SHN_HAVE_LIBSYSTEMD
	int r = sd_notify(0, state);
	return (r < 0 ? r : 0);
#else
	const char *path = getenv("NOTIFY_SOCKET");
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	socklen_t salen;
	size_t plen;
	int fd, err = 0;

	if (path == NULL || (path[0] != '/' && path[0] != '@'))
		return (0);
	plen = strlen(path);
	if (plen >= sizeof(sa.sun_path))
		return (-ENAMETOOLONG);
	memcpy(sa.sun_path, path, plen);
	if (sa.sun_path[0] == '@')
		sa.sun_path[0] = '\0';   /* abstract namespace */
	salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + plen);
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return (-errno);
	if (sendto(fd, state, strlen(state), MSG_NOSIGNAL, (struct sockaddr *)&sa, salen) < 0)
		err = -errno;
	close(fd);
	return (err);
#endif
}
