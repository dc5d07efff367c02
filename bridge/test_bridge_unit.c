/* SPDX-License-Identifier: MIT */
/*
 * test_bridge_unit.c - the bridge's parts that read untrusted or user
 * input, without NATS: the subject encoding (every key round-trips, one
 * spelling per key, hostile subjects refused), the config file's errors
 * (FILE:LINE, strict keys), and the state table surviving a reopen.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "config.h"
#include "state.h"
#include "subject.h"

static void roundtrip(const uint8_t *k, size_t len, const char *want)
{
	char subj[BR_SUBJECT_BUF];
	uint8_t back[SHN_KEY_MAX];
	size_t n = br_subject_encode("shn.x", k, len, subj);

	assert_int_equal(n, strlen(subj));
	if (want != NULL)
		assert_string_equal(subj, want);
	assert_int_equal(br_subject_decode(subj + 6, n - 6, back, sizeof(back)), (int)len);
	assert_memory_equal(back, k, len);
}

static void test_subject(void **state)
{
	uint8_t k[SHN_KEY_MAX];

	(void)state;
	roundtrip((const uint8_t *)"orders.eu.42", 12, "shn.x.orders.eu.42");
	roundtrip((const uint8_t *)"a-b_C9", 6, "shn.x.a-b_C9");
	roundtrip((const uint8_t *)"", 0, "shn.x.~");
	roundtrip((const uint8_t *)"a..b", 4, "shn.x.~YS4uYg");
	roundtrip((const uint8_t *)".a", 2, NULL);
	roundtrip((const uint8_t *)"a.", 2, NULL);
	roundtrip((const uint8_t *)"a b", 3, NULL);
	roundtrip((const uint8_t *)"*", 1, NULL);
	roundtrip((const uint8_t *)">", 1, NULL);
	roundtrip((const uint8_t *)"~x", 2, NULL);
	/* every length of binary key, every byte value */
	for (size_t len = 1; len <= SHN_KEY_MAX; len++) {
		for (size_t i = 0; i < len; i++)
			k[i] = (uint8_t)(i * 37 + len);
		roundtrip(k, len, NULL);
	}
	for (int c = 0; c < 256; c++) {
		k[0] = (uint8_t)c;
		roundtrip(k, 1, NULL);
	}
}

static void test_subject_hostile(void **state)
{
	uint8_t out[SHN_KEY_MAX];
	char big[600];

	(void)state;
	/* second spellings of readable keys: refused, so one key is one subject */
	assert_int_equal(br_subject_decode("~YWJj", 5, out, sizeof(out)), -EINVAL);   /* "abc" */
	assert_int_equal(br_subject_decode("~YR", 3, out, sizeof(out)), -EINVAL);    /* stray bits */
	assert_int_equal(br_subject_decode("~Y", 2, out, sizeof(out)), -EINVAL);     /* 1 mod 4 */
	assert_int_equal(br_subject_decode("~YW=", 4, out, sizeof(out)), -EINVAL);   /* padding */
	assert_int_equal(br_subject_decode("~a+b/", 5, out, sizeof(out)), -EINVAL);  /* base64, not url */
	assert_int_equal(br_subject_decode("a..b", 4, out, sizeof(out)), -EINVAL);
	assert_int_equal(br_subject_decode("a.*", 3, out, sizeof(out)), -EINVAL);
	assert_int_equal(br_subject_decode("", 0, out, sizeof(out)), -EINVAL);
	assert_int_equal(br_subject_decode("~AA.B", 5, out, sizeof(out)), -EINVAL);
	/* longer than a key */
	big[0] = '~';
	memset(big + 1, 'A', 400);
	assert_int_equal(br_subject_decode(big, 401, out, sizeof(out)), -EMSGSIZE);
	memset(big, 'a', 300);
	assert_int_equal(br_subject_decode(big, 300, out, sizeof(out)), -EMSGSIZE);
}

/* Write text to a temporary file, load it, expect rc; stderr captured. */
static int load(const char *text, char *err, size_t errlen)
{
	char path[] = "/tmp/br-cfg-XXXXXX", epath[] = "/tmp/br-err-XXXXXX";
	int fd = mkstemp(path), efd = mkstemp(epath), saved = dup(2), rc;
	struct br_config cfg;
	ssize_t n;

	assert_true(fd >= 0 && efd >= 0 && saved >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	fflush(stderr);
	dup2(efd, 2);
	rc = br_config_load(&cfg, path);
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	n = pread(efd, err, errlen - 1, 0);
	err[n > 0 ? n : 0] = '\0';
	close(efd);
	unlink(path);
	unlink(epath);
	if (rc == 0)
		br_config_free(&cfg);
	return rc;
}

#define GOOD "[bridge]\nnode = a\nservers = nats://127.0.0.1:4222\n" \
	     "[rule r]\nkeys = \"k.\"\nsubject = shn.k\ndirection = both\n"

static void expect_error(const char *text, int line, const char *what)
{
	char err[1024], want[32];

	assert_int_equal(load(text, err, sizeof(err)), -1);
	snprintf(want, sizeof(want), ":%d: ", line);   /* line 0: the whole file */
	if ((line > 0 && strstr(err, want) == NULL) || strstr(err, what) == NULL)
		fail_msg("expected line %d and '%s' in: %s", line, what, err);
}

static void test_config(void **state)
{
	char err[1024];

	(void)state;
	assert_int_equal(load(GOOD, err, sizeof(err)), 0);
	/* a UTF-8 byte order mark before the first line, as the broker's file takes it */
	assert_int_equal(load("\xef\xbb\xbf" GOOD, err, sizeof(err)), 0);
	assert_int_equal(load(GOOD "events = 0x3\n[rule b]\nkeys = \"\\x00\\xff\"\n"
			      "subject = shn.bin\ndirection = in\n", err, sizeof(err)), 0);
	expect_error(GOOD "colour = red\n", 8, "unknown key 'colour'");
	expect_error("[bridge]\nnode = a\nservers = nats://x:1\nfoo = 1\n", 4, "unknown key 'foo'");
	expect_error("[bridge]\nnode = a b\n", 2, "node 'a b'");
	expect_error(GOOD "[other]\n", 8, "unknown section [other]");
	expect_error(GOOD "[rule r]\n", 8, "a second [rule r]");
	expect_error(GOOD "[rule s]\nkeys = \"x\"\nsubject = shn.k.sub\ndirection = out\n", 8,
		     "overlaps");
	expect_error(GOOD "[rule s]\nsubject = shn.s\ndirection = out\n", 8, "has no keys");
	expect_error("[bridge]\nnode = a\nservers = nats://x:1\n[rule r]\nkeys = k\n", 5,
		     "quoted prefix");
	expect_error("[bridge]\nnode = a\nservers = nats://x:1\n[rule r]\nkeys = \"\\q\"\n", 5,
		     "unknown escape");
	expect_error("[bridge]\nnode = a\nservers = nats://x:1\n[rule r]\nsubject = a.*\n", 5,
		     "subject 'a.*'");
	expect_error("[bridge]\nnode = a\nservers = nats://x:1\n[rule r]\nevents = 0x10000000\n",
		     5, "events");
	expect_error("[bridge]\nnode = a\nservers = http://x\n", 3, "not a NATS URL");
	expect_error("[bridge]\nnode = a\nmode = fast\n", 3, "mode 'fast'");
	expect_error("[bridge]\nnode = a\nnode = b\n", 3, "set twice");
	expect_error("node = a\n", 1, "outside a section");
	expect_error("[bridge]\nservers = nats://x:1\n[rule r]\nkeys=\"\"\nsubject=s\n"
		     "direction=in\n", 0, "node is missing");
}

static void test_state(void **state)
{
	char path[] = "/tmp/br-state-XXXXXX";
	struct br_state s;
	struct br_seq *e;
	int fd = mkstemp(path);
	char subj[64];

	(void)state;
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(br_state_open(&s, path), 0);
	/* enough entries to grow the table a few times */
	for (int i = 0; i < 5000; i++) {
		snprintf(subj, sizeof(subj), "shn.k.%d", i);
		e = br_state_get(&s, "a", subj, true);
		assert_non_null(e);
		e->epoch = 7;
		e->last = (uint64_t)i + 1;
	}
	assert_null(br_state_get(&s, "b", "shn.k.1", false));
	br_state_close(&s);
	assert_int_equal(br_state_open(&s, path), 0);
	assert_int_equal(br_state_count(&s), 5000);
	for (int i = 0; i < 5000; i++) {
		snprintf(subj, sizeof(subj), "shn.k.%d", i);
		e = br_state_get(&s, "a", subj, false);
		assert_non_null(e);
		assert_int_equal(e->epoch, 7);
		assert_int_equal(e->last, (uint64_t)i + 1);
	}
	br_state_close(&s);
	/* not ours: refused, not overwritten */
	fd = open(path, O_WRONLY | O_TRUNC);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "hello, world, this is not a state file at all....",
			       50), 50);
	close(fd);
	assert_int_equal(br_state_open(&s, path), -EINVAL);
	unlink(path);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_subject),
		cmocka_unit_test(test_subject_hostile),
		cmocka_unit_test(test_config),
		cmocka_unit_test(test_state),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
