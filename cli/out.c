/* SPDX-License-Identifier: MIT */
/*
 * out.c - writing keys and payloads escaped for humans; numbers of a
 * parsed JSON document as text.  (UTF-8 and base64: util/.)
 */
#include <stdlib.h>

#include "cli.h"
#include "util/utf8.h"

void cli_put_escaped(FILE *f, const void *s, size_t n)
{
	const unsigned char *p = s;
	size_t i = 0, len, k;
	uint32_t cp;

	while (i < n) {
		unsigned char c = p[i];

		switch (c) {
		case '\\': fputs("\\\\", f); i++; continue;
		case '\n': fputs("\\n", f); i++; continue;
		case '\r': fputs("\\r", f); i++; continue;
		case '\t': fputs("\\t", f); i++; continue;
		default: break;
		}
		if (c >= 0x20 && c < 0x7f) {
			putc(c, f);
			i++;
			continue;
		}
		len = c >= 0x80 ? shu_utf8_seq(p + i, n - i, &cp) : 0;
		if (len && cp >= 0xa0) {      /* printable non-ASCII: as is */
			fwrite(p + i, 1, len, f);
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
