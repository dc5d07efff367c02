/* SPDX-License-Identifier: MIT */
/*
 * log.h - one line per message on stderr, prefixed "shmnotifyd:".
 *
 * The line's decoration depends on where stderr goes (shnd_log_init):
 *   - journal: JOURNAL_STREAM set, or stderr not a terminal (a service
 *     manager's pipe, a file): each line starts with the sd-daemon(3)
 *     priority prefix, "<3>" error, "<4>" warning, "<6>" info, "<7>"
 *     debug, which journald strips and keeps as the priority, so that
 *     `journalctl -p err` shows only the errors;
 *   - tty: stderr is a terminal: each line starts with the local time,
 *     "YYYY-MM-DD HH:MM:SS.mmm ";
 *   - plain: nothing before "shmnotifyd:" (--check-config's report, read
 *     by a person or a script as FILE:LINE: lines).
 */
#ifndef SHND_LOG_H
#define SHND_LOG_H

enum shnd_log_level {
	SHND_LOG_ERROR,
	SHND_LOG_WARN,
	SHND_LOG_INFO,
	SHND_LOG_DEBUG,
};

enum shnd_log_style {
	SHND_LOG_PLAIN,
	SHND_LOG_JOURNAL,
	SHND_LOG_TTY,
};

extern enum shnd_log_level shnd_log_level;

/* Parse "error", "warn", "info" or "debug".  0 or -EINVAL. */
int shnd_log_parse_level(const char *s, enum shnd_log_level *out);

/* The style for where stderr goes now (see above); until it is called,
 * lines are plain. */
void shnd_log_init(void);

/* Choose the style outright. */
void shnd_log_set_style(enum shnd_log_style style);

/* The style shnd_log_init() chose from the environment and stderr. */
enum shnd_log_style shnd_log_detect_style(void);

/* Write one line (at most ~1 KiB, cut beyond) with a single write(2), so
 * lines from several processes sharing stderr never interleave.  Keeps
 * errno intact.  The text follows "shmnotifyd: " and the level's word
 * ("error: ", "warning: ", "debug: "; none for info). */
void shnd_log(enum shnd_log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* The same without the level's word, for messages with a form of their
 * own ("FILE:LINE: what is wrong"); the priority prefix still says level. */
void shnd_log_untagged(enum shnd_log_level level, const char *fmt, ...)
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
