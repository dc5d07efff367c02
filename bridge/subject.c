/* SPDX-License-Identifier: MIT */
/*
 * subject.c - see subject.h.  The decoder reads bytes from NATS, so from
 * any remote bridge: it bounds every length and accepts one spelling only.
 */
#include "subject.h"

#include <errno.h>
#include <stdbool.h>
#include <string.h>

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

bool br_token_char(int c)
{
	return ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		c == '_' || c == '-');
}

bool br_dotted_tokens(const void *str, size_t len)
{
	const uint8_t *s = str;
	size_t tok = 0;

	if (len == 0)
		return (false);
	for (size_t i = 0; i < len; i++) {
		if (s[i] == '.') {
			if (tok == 0)
				return (false);
			tok = 0;
		} else if (br_token_char(s[i])) {
			tok++;
		} else {
			return (false);
		}
	}
	return (tok > 0);
}

size_t br_b64_encode(const uint8_t *in, size_t len, char *out)
{
	size_t o = 0, i;

	for (i = 0; i + 3 <= len; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];

		out[o++] = b64[v >> 18];
		out[o++] = b64[(v >> 12) & 63];
		out[o++] = b64[(v >> 6) & 63];
		out[o++] = b64[v & 63];
	}
	if (len - i == 1) {
		uint32_t v = (uint32_t)in[i] << 16;

		out[o++] = b64[v >> 18];
		out[o++] = b64[(v >> 12) & 63];
	} else if (len - i == 2) {
		uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;

		out[o++] = b64[v >> 18];
		out[o++] = b64[(v >> 12) & 63];
		out[o++] = b64[(v >> 6) & 63];
	}
	out[o] = '\0';
	return (o);
}

static int b64val(char c)
{
	const char *p = c ? strchr(b64, c) : NULL;

	return (p ? (int)(p - b64) : -1);
}

int br_b64_decode(const char *in, size_t len, uint8_t *out, size_t max)
{
	size_t o = 0, i;
	uint32_t v = 0;
	int bits = 0;

	if (len % 4 == 1)
		return (-EINVAL);
	for (i = 0; i < len; i++) {
		int x = b64val(in[i]);

		if (x < 0)
			return (-EINVAL);
		v = (v << 6) | (uint32_t)x;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			if (o == max)
				return (-EMSGSIZE);
			out[o++] = (uint8_t)(v >> bits);
			v &= (1u << bits) - 1;
		}
	}
	if (v != 0)
		return (-EINVAL);   /* stray low bits: a second spelling of the same bytes */
	return ((int)o);
}

size_t br_subject_encode(const char *prefix, const uint8_t *suffix, size_t len, char *out)
{
	size_t n = strlen(prefix);

	memcpy(out, prefix, n);
	out[n++] = '.';
	if (br_dotted_tokens(suffix, len)) {
		memcpy(out + n, suffix, len);
		n += len;
		out[n] = '\0';
		return (n);
	}
	out[n++] = '~';
	return (n + br_b64_encode(suffix, len, out + n));
}

int br_subject_decode(const char *t, size_t tlen, uint8_t *out, size_t max)
{
	int n;

	if (tlen > 0 && t[0] == '~') {
		n = br_b64_decode(t + 1, tlen - 1, out, max);
		if (n < 0)
			return (n);
		if (br_dotted_tokens(out, (size_t)n))
			return (-EINVAL);   /* would have travelled readable */
		return (n);
	}
	if (!br_dotted_tokens((const uint8_t *)t, tlen))
		return (-EINVAL);
	if (tlen > max)
		return (-EMSGSIZE);
	memcpy(out, t, tlen);
	return ((int)tlen);
}
