/* SPDX-License-Identifier: MIT */
#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

enum shnd_log_level shnd_log_level = SHND_LOG_INFO;

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

void shnd_log(enum shnd_log_level level, const char *fmt, ...)
{
	static const char *const tags[] = { "error: ", "warning: ", "", "debug: " };
	char line[1024];
	int saved = errno;
	va_list ap;
	int n, m;

	if (level > shnd_log_level)
		return;
	n = snprintf(line, sizeof(line), "shmnotifyd: %s", tags[level]);
	va_start(ap, fmt);
	m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
	va_end(ap);
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
