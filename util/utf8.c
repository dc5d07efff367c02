/* SPDX-License-Identifier: MIT */
/*
 * utf8.c - whole strings checked with the decoder of utf8.h.
 */
#include "utf8.h"

bool shu_utf8_valid(const void *s, size_t n)
{
	const uint8_t *p = s;
	size_t i = 0, len;
	uint32_t cp;

	while (i < n) {
		if (p[i] < 0x80) {
			i++;
			continue;
		}
		len = shu_utf8_seq(p + i, n - i, &cp);
		if (len == 0)
			return (false);
		i += len;
	}
	return (true);
}
