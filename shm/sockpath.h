/* SPDX-License-Identifier: MIT */
/*
 * sockpath.h - where the broker's socket lives when nobody says.
 *
 * $XDG_RUNTIME_DIR/shmnotify/shmnotify.sock, else /run/shmnotify/shmnotify.sock
 * for root, else /tmp/shmnotify-UID/shmnotify.sock.  The directory is private
 * (0700) to its user; the broker creates it.  $SHMNOTIFY_SOCKET overrides all
 * of these (the broker and the library check it before calling this).
 */
#ifndef SHN_SHM_SOCKPATH_H
#define SHN_SHM_SOCKPATH_H

#include <stddef.h>

/* Write the default socket path into buf.  Returns its length or
 * -ENAMETOOLONG. */
int shn__default_socket_path(char *buf, size_t len);

/* The path to use: explicit if non-NULL and non-empty, else
 * $SHMNOTIFY_SOCKET, else the default.  Returns its length or -ENAMETOOLONG
 * (also when it does not fit a sockaddr_un). */
int shn__resolve_socket_path(const char *explicit_path, char *buf, size_t len);

#endif
