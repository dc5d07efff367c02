/* SPDX-License-Identifier: MIT */
/*
 * array.h - growing a malloc'd array by doubling (the router's scratch
 * buffers).  Inline: the check that nothing needs to grow is on the data
 * plane's hot path.
 */
#ifndef SHND_ARRAY_H
#define SHND_ARRAY_H

#include <errno.h>
#include <stdlib.h>

/* Grow *buf (of *cap elements of size sz) to hold at least want elements:
 * 0, or -ENOMEM with *buf and *cap unchanged. */
static inline int shnd_array_reserve(void **buf, size_t *cap, size_t want, size_t sz)
{
	size_t n = *cap ? *cap : 64;
	void *p;

	if (want <= *cap)
		return (0);
	while (n < want)
		n *= 2;
	p = realloc(*buf, n * sz);
	if (p == NULL)
		return (-ENOMEM);
	*buf = p;
	*cap = n;
	return (0);
}

#endif
