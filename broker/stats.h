/* SPDX-License-Identifier: MIT */
/*
 * stats.h - the STATS document (stats.c, docs/protocol.md).
 */
#ifndef SHND_STATS_H
#define SHND_STATS_H

#include "broker.h"

/* The STATS document, NUL-terminated, in *out (malloc'd); flags
 * SHN_STATS_F_SUBSCRIPTIONS adds the "subscriptions" section
 * (stats_subs.c).  Its length or -ENOMEM. */
long shnd_stats_json(struct shnd_broker *b, uint32_t flags, char **out);

#endif
