/* SPDX-License-Identifier: MIT */
#define _GNU_SOURCE
#include "segment.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef F_SEAL_FUTURE_WRITE
#define F_SEAL_FUTURE_WRITE 0x0010
#endif

int shn_segment_create(struct shn_segment *seg, const char *name, size_t size)
{
	int fd, err;
	void *p;

	seg->addr = NULL;
	seg->size = 0;
	seg->fd = -1;
	fd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0)
		return (-errno);
	if (ftruncate(fd, (off_t)size) < 0 ||
	    fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW) < 0) {
		err = -errno;
		close(fd);
		return (err);
	}
	p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED) {
		err = -errno;
		close(fd);
		return (err);
	}
	seg->addr = p;
	seg->size = size;
	seg->fd = fd;
	return (0);
}

int shn_segment_seal_readonly(struct shn_segment *seg)
{
	if (fcntl(seg->fd, F_ADD_SEALS, F_SEAL_FUTURE_WRITE | F_SEAL_SEAL) < 0)
		return (-errno);
	return (0);
}

int shn_segment_map(struct shn_segment *seg, int fd, size_t min_size, int writable)
{
	struct stat st;
	int seals;
	void *p;

	seg->addr = NULL;
	seg->size = 0;
	seg->fd = fd;
	seals = fcntl(fd, F_GET_SEALS);
	if (seals < 0 || fstat(fd, &st) < 0)
		return (-EBADMSG);
	if ((seals & (F_SEAL_SHRINK | F_SEAL_GROW)) != (F_SEAL_SHRINK | F_SEAL_GROW))
		return (-EBADMSG);
	if (st.st_size < 0 || (size_t)st.st_size < min_size || st.st_size > (1ll << 31))
		return (-EBADMSG);
	p = mmap(NULL, (size_t)st.st_size, PROT_READ | (writable ? PROT_WRITE : 0),
		 MAP_SHARED, fd, 0);
	if (p == MAP_FAILED)
		return (-errno);
	seg->addr = p;
	seg->size = (size_t)st.st_size;
	return (0);
}

void shn_segment_close(struct shn_segment *seg)
{
	if (seg->addr != NULL && seg->addr != MAP_FAILED)
		munmap(seg->addr, seg->size);
	if (seg->fd >= 0)
		close(seg->fd);
	seg->addr = NULL;
	seg->size = 0;
	seg->fd = -1;
}
