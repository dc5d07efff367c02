/* SPDX-License-Identifier: MIT */
/*
 * ini.c - see ini.h.
 */
#define _GNU_SOURCE
#include "ini.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void shu_ini_init(struct shu_ini *ini, const char *buf, size_t len, shu_ini_section_fn section)
{
	memset(ini, 0, sizeof(*ini));
	ini->buf = buf;
	ini->len = len;
	ini->section = section;
}

void shu_ini_fail(struct shu_ini *ini, const char *fmt, ...)
{
	char msg[sizeof(ini->err)];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	ini->nerr++;
	if (ini->err_line == 0) {
		ini->err_line = ini->lineno;
		memcpy(ini->err, msg, sizeof(ini->err));
	}
	if (ini->report != NULL)
		ini->report(ini, ini->lineno, msg);
}

char *shu_ini_read_line(char *str, int num, void *stream)
{
	struct shu_ini *ini = stream;
	const char *line, *nl;
	size_t n;

	if (ini->pos >= ini->len)
		return (NULL);
	line = ini->buf + ini->pos;
	nl = memchr(line, '\n', ini->len - ini->pos);
	n = nl ? (size_t)(nl - line) : ini->len - ini->pos;
	ini->pos += n + (nl != NULL);
	ini->lineno++;
	if (n > 0 && line[n - 1] == '\r')
		n--;
	if (ini->lineno == 1 && n >= 3 && memcmp(line, "\xef\xbb\xbf", 3) == 0) {
		line += 3;
		n -= 3;
	}
	while (n > 0 && (*line == ' ' || *line == '\t')) {
		line++;
		n--;
	}
	snprintf(str, (size_t)num, "\n");
	if (memchr(line, '\0', n) != NULL) {
		shu_ini_fail(ini, "a NUL byte in the line");
	} else if (n > 0 && *line == '[') {
		char *hdr = strndup(line + 1, n - 1);

		if (hdr == NULL)
			shu_ini_fail(ini, "out of memory");
		else
			ini->section(ini, hdr, str, (size_t)num);
		free(hdr);
	} else if (n + 2 > (size_t)num) {
		shu_ini_fail(ini, "line too long (at most %d characters)", num - 2);
	} else {
		memcpy(str, line, n);
		str[n] = '\n';
		str[n + 1] = '\0';
	}
	return (str);
}

int shu_ini_read_file(const char *path, char **buf, size_t *len)
{
	FILE *f = fopen(path, "re");
	char *b;
	size_t n;
	int err;

	if (f == NULL)
		return (-errno);
	b = malloc(SHU_INI_FILE_MAX + 1);
	if (b == NULL) {
		fclose(f);
		return (-ENOMEM);
	}
	n = fread(b, 1, SHU_INI_FILE_MAX + 1, f);
	if (ferror(f)) {
		err = errno ? errno : EIO;
		free(b);
		fclose(f);
		return (-err);
	}
	fclose(f);
	if (n > SHU_INI_FILE_MAX) {
		free(b);
		return (-EFBIG);
	}
	*buf = b;
	*len = n;
	return (0);
}
