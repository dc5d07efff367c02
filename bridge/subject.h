/* SPDX-License-Identifier: MIT */
/*
 * subject.h - binary keys <-> NATS subjects (docs/multi-host.md, "Subject
 * encoding").  A key under a rule's key prefix P travels on the subject
 * S.T, S the rule's subject prefix and T the key's suffix after P:
 *
 *   readable  T is the suffix itself when it is 1 or more tokens of
 *             [A-Za-z0-9_-] joined by single dots (orders.eu.42);
 *   encoded   otherwise T is '~' and the suffix in base64url without
 *             padding (util/base64.h, SHU_B64_URL), as one token ('~'
 *             alone: the empty suffix).
 *
 * Each suffix has exactly one subject and decoding refuses every other
 * spelling, so a subject names one key and per-subject sequence numbers
 * are per-key sequence numbers.
 */
#ifndef BR_SUBJECT_H
#define BR_SUBJECT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Longest subject: prefix, '.', '~', base64 of a whole key. */
#define BR_SUBJECT_BUF (200 + 2 + 4 * ((256 + 2) / 3) + 1)

/* A NATS token character: [A-Za-z0-9_-]. */
bool br_token_char(int c);

/* 1 or more tokens of br_token_char joined by single dots (a readable
 * subject, or a subject prefix). */
bool br_dotted_tokens(const void *s, size_t len);

/* Write "prefix.T" into out (BR_SUBJECT_BUF bytes).  Returns its length. */
size_t br_subject_encode(const char *prefix, const uint8_t *suffix, size_t len, char *out);

/* Decode the T of a subject (the text after "prefix.") into out (at most
 * max bytes).  Returns the suffix length, or -EINVAL when T is not the
 * one spelling br_subject_encode() gives, -EMSGSIZE when it is longer
 * than max. */
int br_subject_decode(const char *t, size_t tlen, uint8_t *out, size_t max);

#endif
