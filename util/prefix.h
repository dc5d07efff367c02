/* SPDX-License-Identifier: MIT */
/*
 * prefix.h - a key prefix as the configuration files write it: in double
 * quotes, any byte, with \\, \" and \xHH escapes ("orders.", "\x00\xff",
 * "" for every key).  The broker's [acl "PREFIX"] sections and the
 * bridge's `keys = "PREFIX"` read it with shu_prefix_parse; both print it
 * back (--print-config, --check-config, log lines) with shu_prefix_quote,
 * whose output shu_prefix_parse reads as the same bytes.
 */
#ifndef SHU_PREFIX_H
#define SHU_PREFIX_H

#include <stddef.h>
#include <stdint.h>

/* Parse the quoted prefix at s (s[0] must be '"') into out (at most max
 * bytes), its length into *len; *end (may be NULL) points after the
 * closing quote.  0, or -EINVAL with a message for the user in why (no
 * quote, no closing quote, an unknown escape, longer than max). */
int shu_prefix_parse(const char *s, const char **end, uint8_t *out, size_t max, size_t *len,
		     char *why, size_t whylen);

/* Write p[0..len) quoted and escaped into out (outlen bytes,
 * NUL-terminated): printable ASCII as is, '"' and '\' escaped, every other
 * byte as \xHH.  4 * len + 3 bytes always suffice; a smaller out gets as
 * many whole characters as fit and the closing quote.  Returns out. */
char *shu_prefix_quote(const uint8_t *p, size_t len, char *out, size_t outlen);

#endif
