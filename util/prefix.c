/* SPDX-License-Identifier: MIT */
/*
 * prefix.c - see prefix.h.
 */
#include "prefix.h"

#include <errno.h>
#include <stdio.h>

static int hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return (c - '0');
	if (c >= 'a' && c <= 'f')
		return (c - 'a' + 10);
	if (c >= 'A' && c <= 'F')
		return (c - 'A' + 10);
	return (-1);
}

int shu_prefix_parse(const char *s, const char **end, uint8_t *out, size_t max, size_t *len,
		     char *why, size_t whylen)
{
	size_t n = 0;

	if (*s != '"') {
		snprintf(why, whylen, "expected a quoted prefix such as \"orders.\" (\"\" for every "
			 "key; \\xHH for any byte)");
		return (-EINVAL);
	}
	for (s++; *s != '"'; s++) {
		int ch = (unsigned char)*s;

		if (ch == '\0') {
			snprintf(why, whylen, "the key prefix has no closing '\"'");
			return (-EINVAL);
		}
		if (ch == '\\') {
			if (s[1] == '\\' || s[1] == '"') {
				ch = (unsigned char)s[1];
				s++;
			} else if (s[1] == 'x' && hex_value(s[2]) >= 0 && hex_value(s[3]) >= 0) {
				ch = hex_value(s[2]) * 16 + hex_value(s[3]);
				s += 3;
			} else {
				snprintf(why, whylen, "unknown escape in the key prefix: write \\\\, "
					 "\\\" or \\xHH");
				return (-EINVAL);
			}
		}
		if (n == max) {
			snprintf(why, whylen, "the key prefix is longer than a key can be (%zu bytes)",
				 max);
			return (-EINVAL);
		}
		out[n++] = (uint8_t)ch;
	}
	if (end != NULL)
		*end = s + 1;
	*len = n;
	return (0);
}

char *shu_prefix_quote(const uint8_t *p, size_t len, char *out, size_t outlen)
{
	size_t o = 0, i;

	if (outlen < 3) {
		if (outlen)
			out[0] = '\0';
		return (out);
	}
	out[o++] = '"';
	/* each character takes at most 4 bytes; 2 stay for '"' and NUL */
	for (i = 0; i < len && o + 4 + 2 <= outlen; i++) {
		uint8_t ch = p[i];

		if (ch == '"' || ch == '\\') {
			out[o++] = '\\';
			out[o++] = (char)ch;
		} else if (ch < 0x20 || ch >= 0x7f) {
			o += (size_t)snprintf(out + o, outlen - o, "\\x%02x", ch);
		} else {
			out[o++] = (char)ch;
		}
	}
	out[o++] = '"';
	out[o] = '\0';
	return (out);
}
