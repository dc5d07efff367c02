/* SPDX-License-Identifier: MIT */
/*
 * subject.c - see subject.h.  The decoder reads bytes from NATS, so from
 * any remote bridge: it bounds every length and accepts one spelling only
 * (util/base64.c's decoder does the same for the encoded form).
 */
#include "subject.h"

#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include "util/base64.h"

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
	return (n + shu_b64_encode(suffix, len, out + n, SHU_B64_URL));
}

int br_subject_decode(const char *t, size_t tlen, uint8_t *out, size_t max)
{
	int n;

	if (tlen > 0 && t[0] == '~') {
		n = shu_b64_decode(t + 1, tlen - 1, out, max, SHU_B64_URL);
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
