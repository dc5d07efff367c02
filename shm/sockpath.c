/* SPDX-License-Identifier: MIT */
#define _GNU_SOURCE
#include "sockpath.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <unistd.h>

int shn__default_socket_path(char *buf, size_t len)
{
	const char *xdg = getenv("XDG_RUNTIME_DIR");
	int n;

	if (xdg != NULL && xdg[0] == '/')
		n = snprintf(buf, len, "%s/shmnotify/shmnotify.sock", xdg);
	else if (geteuid() == 0)
		n = snprintf(buf, len, "/run/shmnotify/shmnotify.sock");
	else
		n = snprintf(buf, len, "/tmp/shmnotify-%u/shmnotify.sock", (unsigned)geteuid());
	if (n < 0 || (size_t)n >= len)
		return (-ENAMETOOLONG);
	return (n);
}

int shn__resolve_socket_path(const char *explicit_path, char *buf, size_t len)
{
	const char *env = getenv("SHMNOTIFY_SOCKET");
	int n;

	if (explicit_path != NULL && explicit_path[0] != '\0')
		n = snprintf(buf, len, "%s", explicit_path);
	else if (env != NULL && env[0] != '\0')
		n = snprintf(buf, len, "%s", env);
	else
		n = shn__default_socket_path(buf, len);
	if (n < 0 || (size_t)n >= len || (size_t)n >= sizeof(((struct sockaddr_un *)0)->sun_path))
		return (-ENAMETOOLONG);
	return (n);
}
