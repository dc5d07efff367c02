/* SPDX-License-Identifier: MIT */
/*
 * test_util.c - util/: the UTF-8 decoder (and shm/proto.h's name rule
 * built on it), base64 in both alphabets (RFC 4648 vectors, every length
 * round-trips, one spelling only), quoted key prefixes (escapes, errors,
 * every byte printed and read back) and the INI line reader (byte order
 * mark, CR, blanks, section headers, NUL bytes, long lines, the first
 * error with its line), and the small copy (every length to 300 at every
 * alignment: the bytes, and none written outside).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "shm/proto.h"
#include "util/base64.h"
#include "util/copy.h"
#include "util/ini.h"
#include "util/prefix.h"
#include "util/utf8.h"

#define S(lit) (const uint8_t *)(lit), sizeof(lit) - 1

static void test_utf8(void **state)
{
	uint32_t cp;

	(void)state;
	assert_true(shu_utf8_valid("", 0));
	assert_true(shu_utf8_valid(S("plain ascii")));
	assert_true(shu_utf8_valid(S("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80")));
	assert_int_equal(shu_utf8_seq(S("\xe2\x82\xac"), &cp), 3);
	assert_int_equal(cp, 0x20ac);
	assert_int_equal(shu_utf8_seq(S("\xf4\x8f\xbf\xbf"), &cp), 4);
	assert_int_equal(cp, 0x10ffff);
	assert_false(shu_utf8_valid(S("\x80")));               /* stray continuation */
	assert_false(shu_utf8_valid(S("\xc0\xaf")));           /* overlong '/' */
	assert_false(shu_utf8_valid(S("\xe0\x80\xaf")));       /* overlong, 3 bytes */
	assert_false(shu_utf8_valid(S("\xed\xa0\x80")));       /* surrogate U+D800 */
	assert_false(shu_utf8_valid(S("\xf4\x90\x80\x80")));   /* above U+10FFFF */
	assert_false(shu_utf8_valid(S("\xf5\x80\x80\x80")));
	assert_false(shu_utf8_valid(S("ab\xe2\x82")));         /* cut short */
	assert_false(shu_utf8_valid(S("\xe2\x28\xa1")));       /* bad continuation */
	/* the client-name rule: UTF-8 without C0, DEL or C1 */
	assert_true(shn_name_valid(S("worker-1 \xc3\xa9")));
	assert_false(shn_name_valid(S("")));
	assert_false(shn_name_valid(S("a\tb")));
	assert_false(shn_name_valid(S("a\x7f")));
	assert_false(shn_name_valid(S("a\xc2\x85")));          /* C1: NEL */
	assert_true(shn_name_valid(S("a\xc2\xa0")));           /* U+00A0 */
	assert_false(shn_name_valid(S("\xc0\xaf")));
}

static void b64_vector(const char *in, const char *std, const char *url)
{
	char out[64];
	uint8_t back[64];

	assert_int_equal(shu_b64_encode(in, strlen(in), out, SHU_B64_PAD), strlen(std));
	assert_string_equal(out, std);
	assert_int_equal(shu_b64_decode(std, strlen(std), back, sizeof(back), SHU_B64_PAD),
			 (int)strlen(in));
	assert_memory_equal(back, in, strlen(in));
	assert_int_equal(shu_b64_encode(in, strlen(in), out, SHU_B64_URL), strlen(url));
	assert_string_equal(out, url);
	assert_int_equal(shu_b64_decode(url, strlen(url), back, sizeof(back), SHU_B64_URL),
			 (int)strlen(in));
	assert_memory_equal(back, in, strlen(in));
}

static void test_base64(void **state)
{
	static const unsigned flags[] = { 0, SHU_B64_PAD, SHU_B64_URL, SHU_B64_URL | SHU_B64_PAD };
	uint8_t in[300], back[300];
	char out[shu_b64_size(300)];

	(void)state;
	/* RFC 4648, section 10 */
	b64_vector("", "", "");
	b64_vector("f", "Zg==", "Zg");
	b64_vector("fo", "Zm8=", "Zm8");
	b64_vector("foo", "Zm9v", "Zm9v");
	b64_vector("foob", "Zm9vYg==", "Zm9vYg");
	b64_vector("fooba", "Zm9vYmE=", "Zm9vYmE");
	b64_vector("foobar", "Zm9vYmFy", "Zm9vYmFy");
	/* the alphabets differ in the last two characters */
	in[0] = 0xfb;
	in[1] = 0xff;
	shu_b64_encode(in, 2, out, SHU_B64_PAD);
	assert_string_equal(out, "+/8=");
	shu_b64_encode(in, 2, out, SHU_B64_URL);
	assert_string_equal(out, "-_8");
	/* every length and byte value round-trips, in each form */
	for (size_t len = 0; len <= sizeof(in); len++) {
		for (size_t i = 0; i < len; i++)
			in[i] = (uint8_t)(i * 131 + len);
		for (size_t f = 0; f < sizeof(flags) / sizeof(flags[0]); f++) {
			size_t n = shu_b64_encode(in, len, out, flags[f]);

			assert_true(n + 1 <= shu_b64_size(len));
			assert_int_equal(shu_b64_decode(out, n, back, sizeof(back), flags[f]), (int)len);
			assert_memory_equal(back, in, len);
		}
	}
	/* one spelling only, and bounded */
	assert_int_equal(shu_b64_decode("YR", 2, back, 8, SHU_B64_URL), -EINVAL);    /* stray bits */
	assert_int_equal(shu_b64_decode("Y", 1, back, 8, SHU_B64_URL), -EINVAL);     /* 1 mod 4 */
	assert_int_equal(shu_b64_decode("YW=", 3, back, 8, SHU_B64_URL), -EINVAL);   /* '=' unpadded */
	assert_int_equal(shu_b64_decode("a+b/", 4, back, 8, SHU_B64_URL), -EINVAL);  /* std chars */
	assert_int_equal(shu_b64_decode("a-b_", 4, back, 8, 0), -EINVAL);            /* url chars */
	assert_int_equal(shu_b64_decode("Zg", 2, back, 8, SHU_B64_PAD), -EINVAL);    /* unpadded */
	assert_int_equal(shu_b64_decode("Z===", 4, back, 8, SHU_B64_PAD), -EINVAL);
	assert_int_equal(shu_b64_decode("Zg=a", 4, back, 8, SHU_B64_PAD), -EINVAL);
	assert_int_equal(shu_b64_decode("Zm9vYmFy", 8, back, 5, 0), -EMSGSIZE);
	assert_int_equal(shu_b64_decode("Zm9vYmFy", 8, back, 6, 0), 6);
}

static void test_prefix(void **state)
{
	uint8_t out[256], all[256];
	char why[160], q[4 * 256 + 3], small[8];
	const char *end;
	size_t len;

	(void)state;
	assert_int_equal(shu_prefix_parse("\"orders.\"]", &end, out, sizeof(out), &len, why,
					  sizeof(why)), 0);
	assert_int_equal(len, 7);
	assert_memory_equal(out, "orders.", 7);
	assert_string_equal(end, "]");
	assert_int_equal(shu_prefix_parse("\"\"", &end, out, sizeof(out), &len, why, sizeof(why)), 0);
	assert_int_equal(len, 0);
	assert_int_equal(shu_prefix_parse("\"a\\\"b\\\\c\\x00\\xFf\"", NULL, out, sizeof(out), &len,
					  why, sizeof(why)), 0);
	assert_int_equal(len, 7);
	assert_memory_equal(out, "a\"b\\c\x00\xff", 7);
	/* errors say what is wrong */
	assert_int_equal(shu_prefix_parse("orders", &end, out, sizeof(out), &len, why, sizeof(why)),
			 -EINVAL);
	assert_non_null(strstr(why, "quoted prefix"));
	assert_int_equal(shu_prefix_parse("\"abc", &end, out, sizeof(out), &len, why, sizeof(why)),
			 -EINVAL);
	assert_non_null(strstr(why, "no closing"));
	assert_int_equal(shu_prefix_parse("\"\\q\"", &end, out, sizeof(out), &len, why, sizeof(why)),
			 -EINVAL);
	assert_non_null(strstr(why, "unknown escape"));
	assert_int_equal(shu_prefix_parse("\"\\x4\"", &end, out, sizeof(out), &len, why, sizeof(why)),
			 -EINVAL);
	assert_int_equal(shu_prefix_parse("\"abcd\"", &end, out, 3, &len, why, sizeof(why)), -EINVAL);
	assert_non_null(strstr(why, "longer than a key can be (3 bytes)"));
	assert_int_equal(shu_prefix_parse("\"abc\"", &end, out, 3, &len, why, sizeof(why)), 0);
	/* every byte printed and read back; the worst case fits 4 * len + 3 */
	for (int i = 0; i < 256; i++)
		all[i] = (uint8_t)i;
	shu_prefix_quote(all, sizeof(all), q, sizeof(q));
	assert_int_equal(shu_prefix_parse(q, &end, out, sizeof(out), &len, why, sizeof(why)), 0);
	assert_int_equal(len, 256);
	assert_memory_equal(out, all, 256);
	assert_string_equal(end, "");
	memset(all, 0xff, sizeof(all));
	shu_prefix_quote(all, sizeof(all), q, sizeof(q));
	assert_int_equal(strlen(q), sizeof(q) - 1);
	assert_string_equal(shu_prefix_quote((const uint8_t *)"a\"\\\n~", 5, q, sizeof(q)),
			    "\"a\\\"\\\\\\x0a~\"");
	/* a small buffer: whole characters and the closing quote */
	assert_string_equal(shu_prefix_quote((const uint8_t *)"\x01\x02", 2, small, sizeof(small)),
			    "\"\\x01\"");
	assert_string_equal(shu_prefix_quote((const uint8_t *)"abcdefgh", 8, small, sizeof(small)),
			    "\"ab\"");
}

/* The INI reader, driven as ini_parse_stream drives it. */
struct ini_run {
	struct shu_ini ini;
	char headers[256];
	char reported[256];           /* "LINE:MESSAGE|" for each error handed to report */
};

static void on_report(struct shu_ini *ini, int line, const char *msg)
{
	struct ini_run *run = (struct ini_run *)ini;
	size_t n = strlen(run->reported);

	snprintf(run->reported + n, sizeof(run->reported) - n, "%d:%s|", line, msg);
}

static void on_section(struct shu_ini *ini, const char *hdr, char *out, size_t outlen)
{
	struct ini_run *run = (struct ini_run *)ini;

	strncat(run->headers, hdr, sizeof(run->headers) - strlen(run->headers) - 2);
	strcat(run->headers, "|");
	if (strcmp(hdr, "bad]") == 0)
		shu_ini_fail(ini, "bad header %s", hdr);
	snprintf(out, outlen, "[s]\n");
}

/* Every line the reader hands out, joined, into got. */
static void read_all(struct ini_run *run, const char *text, size_t len, int bufsize, char *got,
		     size_t gotlen)
{
	char line[200];

	memset(run, 0, sizeof(*run));
	shu_ini_init(&run->ini, text, len, on_section);
	got[0] = '\0';
	assert_true(bufsize <= (int)sizeof(line));
	while (shu_ini_read_line(line, bufsize, &run->ini) != NULL)
		strncat(got, line, gotlen - strlen(got) - 1);
}

static void test_ini(void **state)
{
	struct ini_run run;
	char got[512];
	static const char bom[] = "\xef\xbb\xbf" "a = 1\r\n  [x]\r\n\tb = 2\n\xef\xbb\xbf" "c = 3";

	(void)state;
	/* a byte order mark before the first line is dropped, one later is not */
	read_all(&run, bom, sizeof(bom) - 1, 200, got, sizeof(got));
	assert_string_equal(got, "a = 1\n[s]\nb = 2\n\xef\xbb\xbf" "c = 3\n");
	assert_string_equal(run.headers, "x]|");
	assert_int_equal(run.ini.lineno, 4);
	assert_int_equal(run.ini.err_line, 0);
	/* a NUL byte: an error with its line, the line handed on empty */
	read_all(&run, "a = 1\nb\0 = 2\nc = 3\n", 19, 200, got, sizeof(got));
	assert_string_equal(got, "a = 1\n\nc = 3\n");
	assert_int_equal(run.ini.err_line, 2);
	assert_string_equal(run.ini.err, "a NUL byte in the line");
	/* a line longer than inih's buffer is reported, not cut */
	read_all(&run, "a = 1\n\nkey = 0123456789\n", 24, 12, got, sizeof(got));
	assert_int_equal(run.ini.err_line, 3);
	assert_non_null(strstr(run.ini.err, "line too long (at most 10 characters)"));
	/* the first error is the one kept */
	read_all(&run, "[bad]\n[bad]\nx\0\n", 15, 200, got, sizeof(got));
	assert_int_equal(run.ini.err_line, 1);
	assert_string_equal(run.ini.err, "bad header bad]");
	assert_int_equal(run.ini.nerr, 3);
	assert_string_equal(run.reported, "");   /* no report callback: nothing handed on */
	/* with a report callback every error reaches it, in order, with its
	 * line (shmnotifyd --check-config lists them all) */
	memset(&run, 0, sizeof(run));
	shu_ini_init(&run.ini, "[bad]\nok = 1\n[bad]\nx\0\n", 22, on_section);
	run.ini.report = on_report;
	{
		char line[200];

		while (shu_ini_read_line(line, sizeof(line), &run.ini) != NULL)
			;
	}
	assert_string_equal(run.reported,
			    "1:bad header bad]|3:bad header bad]|4:a NUL byte in the line|");
	assert_int_equal(run.ini.nerr, 3);
	assert_int_equal(run.ini.err_line, 1);
	/* empty input: no line at all */
	read_all(&run, "", 0, 200, got, sizeof(got));
	assert_string_equal(got, "");
	assert_int_equal(run.ini.lineno, 0);
}

static void test_ini_file(void **state)
{
	char path[] = "/tmp/shu-ini-XXXXXX", *buf = NULL;
	static char big[SHU_INI_FILE_MAX + 1];
	size_t len = 0;
	int fd = mkstemp(path);
	FILE *f;

	(void)state;
	assert_true(fd >= 0);
	f = fdopen(fd, "w");
	assert_non_null(f);
	fputs("[broker]\nio = epoll\n", f);
	fclose(f);
	assert_int_equal(shu_ini_read_file(path, &buf, &len), 0);
	assert_int_equal(len, 20);
	assert_memory_equal(buf, "[broker]\nio = epoll\n", 20);
	free(buf);
	f = fopen(path, "w");
	assert_non_null(f);
	memset(big, '#', sizeof(big));
	assert_int_equal(fwrite(big, 1, sizeof(big), f), sizeof(big));
	fclose(f);
	assert_int_equal(shu_ini_read_file(path, &buf, &len), -EFBIG);
	unlink(path);
	assert_int_equal(shu_ini_read_file(path, &buf, &len), -ENOENT);
}

/* shu_copy_small: every length from 0 to 300 (each of its branches and
 * their edges), source and destination at every alignment mod 8: the
 * bytes copied, and the guard bytes around the destination untouched. */
static void test_copy_small(void **state)
{
	uint8_t src[320], dst[340];

	(void)state;
	for (size_t i = 0; i < sizeof(src); i++)
		src[i] = (uint8_t)(i * 7 + 1);
	for (uint32_t len = 0; len <= 300; len++)
		for (uint32_t so = 0; so < 8; so++)
			for (uint32_t d0 = 8; d0 < 16; d0++) {
				memset(dst, 0xA5, sizeof(dst));
				shu_copy_small(dst + d0, src + so, len);
				assert_memory_equal(dst + d0, src + so, len);
				for (uint32_t k = 0; k < d0; k++)
					assert_int_equal(dst[k], 0xA5);
				for (uint32_t k = d0 + len; k < sizeof(dst); k++)
					assert_int_equal(dst[k], 0xA5);
			}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_utf8),
		cmocka_unit_test(test_base64),
		cmocka_unit_test(test_prefix),
		cmocka_unit_test(test_ini),
		cmocka_unit_test(test_ini_file),
		cmocka_unit_test(test_copy_small),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
