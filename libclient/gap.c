/* SPDX-License-Identifier: MIT */
/*
 * gap.c - shn_notify_gap(): tell the subscribers of one key that `lost` of
 * its notifications were lost before they reached this host (a bridge that
 * saw a hole in a remote sequence, docs/multi-host.md).
 *
 * It is an ordinary publish record whose one note carries the event
 * SHN_EV_OVERFLOW alone and an 8-byte little-endian count: the broker
 * checks it like any other note (same key checks, same ACL, validate.c)
 * and delivers it as SHN_EV_OVERFLOW to every subscription of the key,
 * whatever its event mask, without a sequence number.  So a client can do
 * nothing with it that it could not do with a normal publish to that key,
 * except make the key's subscribers see an OVERFLOW with the sender's pid.
 */
#define _GNU_SOURCE
#include <errno.h>

#include "publish.h"

int shn_notify_gap(shn_client *c, const void *key, size_t key_len, uint64_t lost, unsigned flags)
{
	uint8_t le[8];
	shn_notification n = { 0 };

	/* SYNC would wait for sinks a gap report does not answer to */
	if (c == NULL || key == NULL || key_len == 0 || key_len > SHN_KEY_MAX || lost == 0 ||
	    (flags & ~SHN_NOTIFY_NONBLOCK) != 0)
		return (-EINVAL);
	for (int i = 0; i < 8; i++)
		le[i] = (uint8_t)(lost >> (8 * i));
	n.event = SHN_EV_OVERFLOW;
	n.key = key;
	n.key_len = (uint16_t)key_len;
	n.data = le;
	n.data_len = sizeof(le);
	return (shn__notify(c, &n, 1, flags | SHN__NOTIFY_GAP));
}
