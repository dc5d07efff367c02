/* SPDX-License-Identifier: MIT */
/*
 * segment.h - shared-memory segments: memfd with seals, mapped MAP_SHARED.
 *
 * The broker creates every segment.  memfd_create() leaves no name in
 * /dev/shm to leak or collide; F_SEAL_SHRINK|F_SEAL_GROW mean no client can
 * ftruncate a segment and make the broker take SIGBUS.  Segments a client
 * must not write are further sealed with F_SEAL_FUTURE_WRITE|F_SEAL_SEAL
 * after the broker mapped them (docs/design.md, rule 13): from then on no
 * new writable mapping, mprotect, /proc reopen or write(2) can modify them.
 */
#ifndef SHN_SHM_SEGMENT_H
#define SHN_SHM_SEGMENT_H

#include <stddef.h>

struct shn_segment {
	void  *addr;
	size_t size;
	int    fd;
};

/* Create a sealed (size fixed) memfd of size bytes, zero-filled, mapped
 * read-write.  Returns 0 or -errno. */
int shn_segment_create(struct shn_segment *seg, const char *name, size_t size);

/* Forbid any further write access through new mappings or write(2); the
 * existing writable mapping of the creator stays usable.  0 or -errno. */
int shn_segment_seal_readonly(struct shn_segment *seg);

/* Map a received descriptor: checks that it is a sealed memfd of at least
 * min_size bytes, maps its actual size, writable or read-only.  0 or -errno
 * (-EBADMSG: not a sealed segment of a plausible size). */
int shn_segment_map(struct shn_segment *seg, int fd, size_t min_size, int writable);

/* Unmap and close.  Safe on a closed segment (addr NULL, fd -1). */
void shn_segment_close(struct shn_segment *seg);

#endif
