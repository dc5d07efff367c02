/* SPDX-License-Identifier: MIT */
/*
 * base64.h - RFC 4648 base64, in its two alphabets: the standard one with
 * '=' padding (JSON output of the CLI: `listen --json` writes binary keys
 * and payloads so) and base64url without padding (the bridge's subject
 * tokens, where '+', '/' and '=' cannot appear).
 *
 * The decoder reads bytes from the network (a remote bridge's subjects):
 * it bounds the output and accepts exactly one spelling of each byte
 * string, so that a text names one key.
 */
#ifndef SHU_BASE64_H
#define SHU_BASE64_H

#include <stddef.h>
#include <stdint.h>

#define SHU_B64_URL 1u   /* '-' and '_' for '+' and '/' */
#define SHU_B64_PAD 2u   /* '=' up to a multiple of 4 characters */

/* Bytes encoding n input bytes takes, with the terminating NUL. */
static inline size_t shu_b64_size(size_t n)
{
	return ((n + 2) / 3 * 4 + 1);
}

/* Encode in[0..len) into out (shu_b64_size(len) bytes), NUL-terminated.
 * flags: SHU_B64_URL, SHU_B64_PAD.  Returns the length written, NUL
 * excluded. */
size_t shu_b64_encode(const void *in, size_t len, char *out, unsigned flags);

/* Decode in[0..len) into out (at most max bytes).  Returns the byte count;
 * -EINVAL for a character outside the alphabet, a length that no encoding
 * has (1 mod 4; with SHU_B64_PAD, not a multiple of 4 or misplaced '='),
 * or non-zero unused low bits (a second spelling of the same bytes);
 * -EMSGSIZE when the bytes do not fit in max. */
int shu_b64_decode(const char *in, size_t len, uint8_t *out, size_t max, unsigned flags);

#endif
