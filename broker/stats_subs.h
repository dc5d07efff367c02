/* SPDX-License-Identifier: MIT */
/*
 * stats_subs.h - the "subscriptions" section of the STATS document
 * (stats_subs.c, docs/protocol.md).
 */
#ifndef SHND_STATS_SUBS_H
#define SHND_STATS_SUBS_H

#include <jansson.h>

#include "broker.h"

/* {"limit", "filters_total", "filters_truncated", "filters": [...],
 * "keys_total", "keys_truncated", "keys": [...]}, or NULL when out of
 * memory. */
json_t *shnd_stats_subs_json(const struct shnd_broker *b);

#endif
