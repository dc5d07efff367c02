/* SPDX-License-Identifier: MIT */
/*
 * base64.c - see base64.h.
 */
#include "base64.h"

#include <errno.h>
#include <string.h>

static const char std_alphabet[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char url_alphabet[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

size_t shu_b64_encode(const void *in, size_t len, char *out, unsigned flags)
{
	const char *tab = (flags & SHU_B64_URL) ? url_alphabet : std_alphabet;
	const uint8_t *p = in;
	size_t o = 0, i, rest;

	for (i = 0; i + 3 <= len; i += 3) {
		uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];

		out[o++] = tab[v >> 18];
		out[o++] = tab[(v >> 12) & 63];
		out[o++] = tab[(v >> 6) & 63];
		out[o++] = tab[v & 63];
	}
	rest = len - i;
	if (rest > 0) {
		uint32_t v = (uint32_t)p[i] << 16 | (rest == 2 ? (uint32_t)p[i + 1] << 8 : 0);

		out[o++] = tab[v >> 18];
		out[o++] = tab[(v >> 12) & 63];
		if (rest == 2)
			out[o++] = tab[(v >> 6) & 63];
		if (flags & SHU_B64_PAD) {
			out[o++] = '=';
			if (rest == 1)
				out[o++] = '=';
		}
	}
	out[o] = '\0';
	return (o);
}

static int b64_value(const char *tab, char c)
{
	const char *p = c != '\0' ? strchr(tab, c) : NULL;

	return (p != NULL ? (int)(p - tab) : -1);
}

int shu_b64_decode(const char *in, size_t len, uint8_t *out, size_t max, unsigned flags)
{
	const char *tab = (flags & SHU_B64_URL) ? url_alphabet : std_alphabet;
	size_t o = 0, i;
	uint32_t v = 0;
	int bits = 0;

	if (flags & SHU_B64_PAD) {
		if (len % 4 != 0)
			return (-EINVAL);
		/* at most two '=', only at the end: then the rest decodes unpadded */
		for (i = 0; i < 2 && len > 0 && in[len - 1] == '='; i++)
			len--;
	}
	if (len % 4 == 1)
		return (-EINVAL);
	for (i = 0; i < len; i++) {
		int x = b64_value(tab, in[i]);

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
