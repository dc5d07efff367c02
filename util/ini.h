/* SPDX-License-Identifier: MIT */
/*
 * ini.h - what the broker's and the bridge's INI files share: reading the
 * file, handing libinih one line at a time, and keeping the first error
 * with its line number.  libinih still parses "key = value"; this file
 * does not include or link it (shu_ini_read_line has the signature of
 * inih's ini_reader, and the caller passes it to ini_parse_stream).
 *
 * Why a reader of our own before inih:
 *   - line numbers for every message (inih's handler gets none): one line
 *     per call, so inih's count and ours agree;
 *   - a UTF-8 byte order mark before the first line is dropped (editors
 *     on some systems write one);
 *   - CR before LF is dropped, and so are leading blanks: inih would take
 *     an indented line for the continuation of the previous value, which
 *     is never what an indented "key = value" means in these files;
 *   - section headers go to the caller, which checks them and writes what
 *     inih is to see (inih keeps only 49 characters of a section name and
 *     never reports a section without keys);
 *   - a NUL byte or a line too long for inih's buffer is an error, not a
 *     silently cut line.
 */
#ifndef SHU_INI_H
#define SHU_INI_H

#include <stddef.h>

/* The largest configuration file read: anything larger is a mistake. */
#define SHU_INI_FILE_MAX (1u << 20)

struct shu_ini;

/* A section header: hdr is the line after its '[' (NUL-terminated, CR and
 * leading blanks gone).  Write into out (outlen bytes) the line inih is to
 * see, "[NAME]\n"; report what is wrong with shu_ini_fail. */
typedef void (*shu_ini_section_fn)(struct shu_ini *ini, const char *hdr, char *out,
				   size_t outlen);

/* Told every error as it is found (line, message), when a caller wants
 * them all rather than the first only. */
typedef void (*shu_ini_report_fn)(struct shu_ini *ini, int line, const char *msg);

/* One file being read.  Written by the reader and shu_ini_fail; the caller
 * sets buf, len and section (shu_ini_init) and reads lineno, err_line and
 * err.  Embed it in the caller's own state to reach that from the
 * section callback and inih's handler. */
struct shu_ini {
	const char *buf;              /* the whole file */
	size_t len, pos;              /* its length; where the next line starts */
	int lineno;                   /* of the line last handed out (1-based) */
	int err_line;                 /* of the first error; 0: none yet */
	char err[512];                /* the first error's message */
	int nerr;                     /* errors recorded, the first and every later one */
	shu_ini_section_fn section;
	shu_ini_report_fn report;     /* NULL: only the first error is kept */
};

/* Start reading buf[0..len). */
void shu_ini_init(struct shu_ini *ini, const char *buf, size_t len, shu_ini_section_fn section);

/* Record an error at the current line: err_line and err keep the first;
 * every one is counted in nerr and, when the caller set ini->report after
 * shu_ini_init, handed to it. */
void shu_ini_fail(struct shu_ini *ini, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* inih's ini_reader over a struct shu_ini (stream): the next line, as
 * described above, into str (num bytes); NULL at the end.  A line with an
 * error is handed to inih as an empty line. */
char *shu_ini_read_line(char *str, int num, void *stream);

/* Read the file at path into a malloc'd buffer (*buf, *len).  0, or
 * -errno: -EFBIG when it is larger than SHU_INI_FILE_MAX. */
int shu_ini_read_file(const char *path, char **buf, size_t *len);

#endif
