/* SPDX-License-Identifier: MIT */
/*
 * clock.h - the bridge's one clock: CLOCK_MONOTONIC in milliseconds, for
 * timeouts, back-off and uptime (never a wall-clock time: it does not
 * jump when the system time is set).
 */
#ifndef BR_CLOCK_H
#define BR_CLOCK_H

#include <stdint.h>

int64_t br_now_ms(void);

#endif
