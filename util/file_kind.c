/* SPDX-License-Identifier: MIT */
/*
 * file_kind.c - see file_kind.h.
 */
#include "file_kind.h"

#include <sys/stat.h>

const char *shu_file_kind(mode_t mode)
{
	switch (mode & S_IFMT) {
	case S_IFREG: return ("a regular file");
	case S_IFDIR: return ("a directory");
	case S_IFSOCK: return ("a socket");
	case S_IFLNK: return ("a symbolic link");
	case S_IFIFO: return ("a named pipe (FIFO)");
	case S_IFCHR: return ("a character device");
	case S_IFBLK: return ("a block device");
	default: return ("a file of an unknown kind");
	}
}
