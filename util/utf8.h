/* SPDX-License-Identifier: MIT */
/*
 * utf8.h - the one UTF-8 decoder of the tree: strict (shortest form only,
 * no surrogates, nothing above U+10FFFF), as the broker, the library, the
 * CLI and the bridge all need it.
 *
 * shu_utf8_seq is inline: shm/proto.h's shn_name_valid, which both the
 * broker and libshmnotify compile, decodes with it, and libshmnotify must
 * not need this library to link.
 */
#ifndef SHU_UTF8_H
#define SHU_UTF8_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The length of the valid UTF-8 sequence at s (n > 0 bytes readable) and
 * its code point in *cp; 0 when the bytes at s are not one (a stray
 * continuation byte, an overlong form, a surrogate, a value above
 * U+10FFFF, a sequence cut short by n). */
static inline size_t shu_utf8_seq(const uint8_t *s, size_t n, uint32_t *cp)
{
	uint8_t c = s[0];
	uint32_t v, min;
	size_t len, i;

	if (c < 0x80) {
		*cp = c;
		return (1);
	} else if (c >= 0xc2 && c <= 0xdf) {
		len = 2; v = c & 0x1fu; min = 0x80;
	} else if (c >= 0xe0 && c <= 0xef) {
		len = 3; v = c & 0x0fu; min = 0x800;
	} else if (c >= 0xf0 && c <= 0xf4) {
		len = 4; v = c & 0x07u; min = 0x10000;
	} else {
		return (0);
	}
	if (len > n)
		return (0);
	for (i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return (0);
		v = (v << 6) | (s[i] & 0x3fu);
	}
	if (v < min || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff))
		return (0);
	*cp = v;
	return (len);
}

/* Is s[0..n) UTF-8 by shu_utf8_seq's rules (n == 0: yes)? */
bool shu_utf8_valid(const void *s, size_t n);

#endif
