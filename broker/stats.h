/* SPDX-License-Identifier: MIT */
/*
 * stats.h - the STATS document (stats.c, docs/protocol.md).
 */
#ifndef SHND_STATS_H
#define SHND_STATS_H

#include "broker.h"

/* The STATS document, NUL-terminated, in *out (malloc'd).  Its length or
 * -ENOMEM. */
long shnd_stats_json(struct shnd_broker *b, char **out);

#endif
