/* SPDX-License-Identifier: MIT */
/*
 * systemd.h - service-manager integration: socket activation (LISTEN_FDS)
 * and readiness (sd_notify).  With libsystemd at build time its functions
 * are used; without it, the same two documented protocols are spoken
 * directly (they are stable and tiny), so the broker behaves the same.
 */
#ifndef SHND_SYSTEMD_H
#define SHND_SYSTEMD_H

/* The listening socket passed by the service manager, or -1 when the broker
 * was not socket-activated.  Checks that it is a listening AF_UNIX
 * SOCK_SEQPACKET socket (-EINVAL otherwise), makes it non-blocking and
 * close-on-exec, and unsets LISTEN_* so children do not inherit them. */
int shnd_systemd_listen_fd(void);

/* Tell the service manager our state ("READY=1\nSTATUS=...", "STOPPING=1").
 * A no-op without $NOTIFY_SOCKET.  Returns 0 or -errno (only logged). */
int shnd_systemd_notify(const char *state);

#endif
