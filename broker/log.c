/* SPDX-License-Identifier: MIT */
/*
 * log.c - the broker's log lines on stderr; log.h says how each is
 * decorated and why.
 */
#define _GNU_SOURCE
#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

enum shnd_log_level shnd_log_level = SHND_LOG_INFO;

static enum shnd_log_style log_style = SHND_LOG_PLAIN;

int shnd_log_parse_level(const char *s, enum shnd_log_level *out)
{
	static const char *const names[] = { "error", "warn", "info", "debug" };
	unsigned i;

	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (strcmp(s, names[i]) == 0) {
			*out = (enum shnd_log_level)i;
			return (0);
		}
	}
	if (strcmp(s, "warning") == 0) {
		*out = SHND_LOG_WARN;
		return (0);
	}
	return (-EINVAL);
}

enum shnd_log_style shnd_log_detect_style(void)
{
	const char *js = getenv("JOURNAL_STREAM");

	/* systemd sets JOURNAL_STREAM when stderr is its journal stream; a
	 * stderr that is no terminal is a service manager's pipe or a file,
	 * where a priority prefix is what a reader filters on */
	if ((js != NULL && js[0] != '\0') || !isatty(STDERR_FILENO))
		return (SHND_LOG_JOURNAL);
	return (SHND_LOG_TTY);
}

void shnd_log_init(void)
{
	log_style = shnd_log_detect_style();
}

void shnd_log_set_style(enum shnd_log_style style)
{
	log_style = style;
}

/* What goes before "shmnotifyd: " in the current style. */
static int decoration(enum shnd_log_level level, char *buf, size_t len)
{
	/* sd-daemon(3): LOG_ERR 3, LOG_WARNING 4, LOG_INFO 6, LOG_DEBUG 7 */
	static const char priority[] = { '3', '4', '6', '7' };
	struct timespec ts;
	struct tm tm;
	size_t n;

	switch (log_style) {
	case SHND_LOG_JOURNAL:
		return (snprintf(buf, len, "<%c>", priority[level]));
	case SHND_LOG_TTY:
		clock_gettime(CLOCK_REALTIME, &ts);
		if (localtime_r(&ts.tv_sec, &tm) == NULL)
			return (0);
		n = strftime(buf, len, "%Y-%m-%d %H:%M:%S", &tm);
		if (n == 0)
			return (0);
		return ((int)n + snprintf(buf + n, len - n, ".%03ld ", ts.tv_nsec / 1000000));
	case SHND_LOG_PLAIN:
		break;
	}
	return (0);
}

static void log_line(enum shnd_log_level level, bool tagged, const char *fmt, va_list ap)
{
	static const char *const tags[] = { "error: ", "warning: ", "", "debug: " };
	char line[1024];
	int saved = errno;
	int n, m;

	if (level > shnd_log_level)
		return;
	n = decoration(level, line, 64);
	n += snprintf(line + n, sizeof(line) - (size_t)n, "shmnotifyd: %s",
		      tagged ? tags[level] : "");
	m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
	if (m < 0)
		m = 0;
	n += m;
	if (n > (int)sizeof(line) - 2)
		n = (int)sizeof(line) - 2;
	line[n++] = '\n';
	/* stderr may be a closed pipe: nothing useful to do about it */
	if (write(STDERR_FILENO, line, (size_t)n) < 0)
		(void)0;
	errno = saved;
}

void shnd_log(enum shnd_log_level level, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_line(level, true, fmt, ap);
	va_end(ap);
}

void shnd_log_untagged(enum shnd_log_level level, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_line(level, false, fmt, ap);
	va_end(ap);
}
