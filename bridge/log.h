/* SPDX-License-Identifier: MIT */
/*
 * log.h - the bridge's log: one line to stderr per call,
 * "shmnotify-bridge[NODE]: ...", from any thread (one fprintf per line, so
 * lines of libnats' delivery threads and the main thread never mix).
 */
#ifndef BR_LOG_H
#define BR_LOG_H

struct bridge;

void br_log(const struct bridge *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
