/* SPDX-License-Identifier: MIT */
/*
 * error.c - shn_strerror(): a message for every value the library returns,
 * in shmnotify's terms first, the C library's as a fallback.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <string.h>

#include "shmnotify.h"

const char *shn_strerror(int err)
{
	const char *s;

	if (err == SHN_NOTIFY_CANCELED)
		return "canceled: a sink answered SHN_CALLBACK_DISCONTINUE (SHN_NOTIFY_CANCELED, from "
		       "shn_notify with SHN_NOTIFY_SYNC); from a function returning a count: 1";
	if (err >= 0)
		return err == 0 ? "success" : "success (a count)";
	switch (-err) {
	case ENOTCONN:
		return "not connected to the broker: shmnotifyd went away or the connection broke; "
		       "the library reconnects by itself once it runs again (ports then receive "
		       "SHN_EV_RECONNECT): retry then, with the same client (a second shn_connect "
		       "would make a second client)";
	case ECONNREFUSED:
		return "no broker listens on the socket (stale socket file?): start shmnotifyd";
	case ENOENT:
		return "no such object: the socket path does not exist (is shmnotifyd running?), "
		       "or the connection number/port is not live";
	case EPROTO:
		return "protocol error: the broker speaks another protocol version or sent "
		       "something unexpected; use matching shmnotify versions";
	case EPROTONOSUPPORT:
		return "protocol version not supported by the broker; use matching shmnotify versions";
	case EMSGSIZE:
		return "too large: the batch can never fit the publish ring (half its capacity at "
		       "most: split it), or a key or payload is above the broker's max-key-size or "
		       "max-data-size ([limits] in its configuration)";
	case EACCES:
		return "permission denied: the broker's [acl] rules do not let this user publish or "
		       "subscribe to that key (see shmnotifyd --print-config), or only root and the "
		       "broker's user may do this";
	case EUSERS:
		return "the broker serves its maximum number of clients ([limits] max-clients): "
		       "retry later or raise the limit";
	case ENOSPC:
		return "a per-client limit of the broker is reached (ports, subscriptions or ring "
		       "bytes, [limits] in its configuration): close some or raise the limit";
	case EAGAIN:
		return "the publish ring is full (SHN_NOTIFY_NONBLOCK): retry later";
	case ECANCELED:
		return "canceled by shn_port_unblock";
	case ETIMEDOUT:
		return "timed out: nothing arrived in time";
	case EINVAL:
		return "invalid argument: check keys (1..256 bytes), events (application bits "
		       "0-27 only, not 0), data (at most 65536 bytes), flags and capacities";
	case EEXIST:
		return "already exists (connection number in use)";
	case EOPNOTSUPP:
		return "operation not supported by this version of libshmnotify, or by the broker "
		       "(an older shmnotifyd, e.g. one that takes no client names): upgrade it";
	case EBADMSG:
		return "corrupt shared memory: a ring holds a record the peer could not have written";
	case ENAMETOOLONG:
		return "the socket path is too long for a Unix socket (108 bytes at most)";
	}
	s = strerrordesc_np(-err);
	return s ? s : "unknown error";
}
