/* SPDX-License-Identifier: MIT */
/*
 * file_kind.h - what a file is, in words, for messages about a path that
 * should have been a socket ("/tmp/x is a directory, not a socket").
 */
#ifndef SHU_FILE_KIND_H
#define SHU_FILE_KIND_H

#include <sys/types.h>

/* "a regular file", "a directory", "a socket", ... for st_mode. */
const char *shu_file_kind(mode_t mode);

#endif
