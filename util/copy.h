/* SPDX-License-Identifier: MIT */
/*
 * copy.h - copying a notification's key or data into a ring.  Keys and
 * payloads are short (8-byte keys, 64-byte payloads in the common case),
 * and a memcpy call for each, per note and per port, was an eighth of the
 * broker's instructions at fan-out 1 -> 32 and a good part of the direct
 * publisher's: up to 128 bytes are moved as two overlapping moves of a
 * fixed size, which the compiler inlines; longer through memcpy.  Inline
 * in the header, like utf8.h's decoder: the library uses it without
 * linking shn_util.
 */
#ifndef SHU_COPY_H
#define SHU_COPY_H

#include <stdint.h>
#include <string.h>

/* Copy len bytes from s to d (not overlapping); reads and writes exactly
 * [s, s + len) and [d, d + len). */
static inline void shu_copy_small(void *dst, const void *src, uint32_t len)
{
	uint8_t *d = dst;
	const uint8_t *s = src;

	if (len >= 32 && len <= 64) {   /* first: a 64-byte payload, a long key */
		memcpy(d, s, 32);
		memcpy(d + len - 32, s + len - 32, 32);
	} else if (len > 64 && len <= 128) {
		memcpy(d, s, 64);
		memcpy(d + len - 64, s + len - 64, 64);
	} else if (len >= 16 && len < 32) {
		memcpy(d, s, 16);
		memcpy(d + len - 16, s + len - 16, 16);
	} else if (len >= 8 && len < 16) {
		memcpy(d, s, 8);
		memcpy(d + len - 8, s + len - 8, 8);
	} else if (len >= 4 && len < 8) {
		memcpy(d, s, 4);
		memcpy(d + len - 4, s + len - 4, 4);
	} else if (len < 4) {
		for (uint32_t i = 0; i < len; i++)
			d[i] = s[i];
	} else {
		memcpy(d, s, len);
	}
}

#endif
