/* SPDX-License-Identifier: MIT */
/*
 * publish.h - publish.c: shn_notify() for the library's own publishers.
 */
#ifndef SHN_LIBCLIENT_PUBLISH_H
#define SHN_LIBCLIENT_PUBLISH_H

#include <stddef.h>

#include "internal.h"

/* shn_notify() without the check of its public flags, for the library's
 * own publishers; flags may add SHN__NOTIFY_GAP: every note must then be a
 * gap report (event SHN_EV_OVERFLOW alone, data_len 8), see gap.c. */
#define SHN__NOTIFY_GAP 0x10000u
int shn__notify(shn_client *c, const shn_notification *batch, size_t n, unsigned flags);

#endif
