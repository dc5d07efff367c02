/* SPDX-License-Identifier: MIT */
/*
 * log.h - one line per message on stderr, prefixed "shmnotifyd:".
 */
#ifndef SHND_LOG_H
#define SHND_LOG_H

enum shnd_log_level {
	SHND_LOG_ERROR,
	SHND_LOG_WARN,
	SHND_LOG_INFO,
	SHND_LOG_DEBUG,
};

extern enum shnd_log_level shnd_log_level;

/* Parse "error", "warn", "info" or "debug".  0 or -EINVAL. */
int shnd_log_parse_level(const char *s, enum shnd_log_level *out);

/* Write one line (at most ~1 KiB, cut beyond) with a single write(2), so
 * lines from several processes sharing stderr never interleave.  Keeps
 * errno intact. */
void shnd_log(enum shnd_log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#define shnd_err(...)   shnd_log(SHND_LOG_ERROR, __VA_ARGS__)
#define shnd_warn(...)  shnd_log(SHND_LOG_WARN, __VA_ARGS__)
#define shnd_info(...)  shnd_log(SHND_LOG_INFO, __VA_ARGS__)
#define shnd_debug(...) \
	do { \
		if (shnd_log_level >= SHND_LOG_DEBUG) \
			shnd_log(SHND_LOG_DEBUG, __VA_ARGS__); \
	} while (0)

#endif
