/* SPDX-License-Identifier: MIT */
/*
 * bridge_stats.h - shmnotify stats --bridge FILE: a shmnotify-bridge's
 * counters, from the stats file it rewrites every second.
 */
#ifndef SHN_CLI_BRIDGE_STATS_H
#define SHN_CLI_BRIDGE_STATS_H

#include <stdbool.h>

/* Print the bridge's stats file at path as a table, or (json) as is once
 * it parsed.  Returns an exit status. */
int cli_bridge_stats(const char *path, bool json);

#endif
