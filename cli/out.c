/* SPDX-License-Identifier: MIT */
/*
 * out.c - writing keys and payloads for humans, so that a line reads back
 * one way; colour for a terminal; numbers of a parsed JSON document as
 * text.  (UTF-8 and base64: util/.)
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "util/utf8.h"

/* Code points a terminal shows as blank or not at all: a reader could not
 * tell them from a space, or see them. */
static bool invisible(uint32_t cp)
{
	return cp == 0xa0 || cp == 0xad || cp == 0x1680 || cp == 0x180e ||
	       (cp >= 0x2000 && cp <= 0x200f) || (cp >= 0x2028 && cp <= 0x202f) ||
	       (cp >= 0x205f && cp <= 0x206f) || cp == 0x3000 || cp == 0xfeff;
}

/* Can s[0..n) go out bare, as key=VALUE, and read back as exactly those
 * bytes?  Not when empty, nor with a blank, a quote, a backslash, an '=',
 * a control byte, an invisible character or invalid UTF-8. */
static bool bare(const unsigned char *p, size_t n)
{
	size_t i = 0, len;
	uint32_t cp;

	if (n == 0)
		return false;
	while (i < n) {
		if (p[i] < 0x80) {
			if (p[i] <= 0x20 || p[i] >= 0x7f || p[i] == '"' || p[i] == '\\' ||
			    p[i] == '=')
				return false;
			i++;
			continue;
		}
		len = shu_utf8_seq(p + i, n - i, &cp);
		if (!len || cp < 0xa0 || invisible(cp))
			return false;
		i += len;
	}
	return true;
}

static void put_escaped(FILE *f, const unsigned char *p, size_t n)
{
	size_t i = 0, len, k;
	uint32_t cp;

	while (i < n) {
		unsigned char c = p[i];

		switch (c) {
		case '\\': fputs("\\\\", f); i++; continue;
		case '\n': fputs("\\n", f); i++; continue;
		case '\r': fputs("\\r", f); i++; continue;
		case '\t': fputs("\\t", f); i++; continue;
		case '"': fputs("\\\"", f); i++; continue;
		default: break;
		}
		if (c >= 0x20 && c < 0x7f) {
			putc(c, f);
			i++;
			continue;
		}
		len = c >= 0x80 ? shu_utf8_seq(p + i, n - i, &cp) : 0;
		if (len && cp >= 0xa0 && !invisible(cp)) {   /* printable non-ASCII: as is */
			fwrite(p + i, 1, len, f);
			i += len;
			continue;
		}
		if (len && cp >= 0xa0) {                       /* invisible: by number */
			fprintf(f, "\\u%04x", cp);
			i += len;
			continue;
		}
		if (!len)
			len = 1;
		for (k = 0; k < len; k++)     /* controls, C1 controls, invalid bytes */
			fprintf(f, "\\x%02x", p[i + k]);
		i += len;
	}
}

void cli_put_value(FILE *f, const void *s, size_t n)
{
	if (bare(s, n)) {
		fwrite(s, 1, n, f);
		return;
	}
	putc('"', f);
	put_escaped(f, s, n);
	putc('"', f);
}

int cli_parse_color(const char *s)
{
	if (!strcmp(s, "auto"))
		return CLI_COLOR_AUTO;
	if (!strcmp(s, "always") || !strcmp(s, "yes") || !strcmp(s, "force"))
		return CLI_COLOR_ALWAYS;
	if (!strcmp(s, "never") || !strcmp(s, "no") || !strcmp(s, "none"))
		return CLI_COLOR_NEVER;
	return -1;
}

bool cli_use_color(int when, int fd)
{
	const char *no = getenv("NO_COLOR"), *term = getenv("TERM");

	if (when == CLI_COLOR_ALWAYS)
		return true;
	if (when == CLI_COLOR_NEVER)
		return false;
	/* no-color.org: set and not empty means no colour */
	if (no && *no)
		return false;
	if (term && !strcmp(term, "dumb"))
		return false;
	return isatty(fd) == 1;
}

bool cli_json_number(const json_t *v, char *buf, size_t len)
{
	if (json_is_integer(v)) {
		snprintf(buf, len, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
		return true;
	}
	if (json_is_real(v)) {
		snprintf(buf, len, "%.17g", json_real_value(v));
		return true;
	}
	return false;
}

size_t cli_text_width(const char *s)
{
	size_t w = 0;

	for (; *s; s++)
		w += ((unsigned char)*s & 0xc0) != 0x80;
	return w;
}

void cli_client_name(const json_t *client, char *buf, size_t len)
{
	const char *s = json_string_value(json_object_get(client, "name"));
	size_t i;

	snprintf(buf, len, "%s", s && *s ? s : "-");
	for (i = 0; buf[i]; i++)
		if ((unsigned char)buf[i] < 0x20 || buf[i] == 0x7f)
			buf[i] = '?';
}
