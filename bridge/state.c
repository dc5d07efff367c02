/* SPDX-License-Identifier: MIT */
/*
 * state.c - see state.h.
 */
#define _GNU_SOURCE
#include "state.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#define STATE_MAGIC   0x54534253u   /* "SBST" */
#define STATE_GROWING 0x574f5247u   /* "GROW": a grow was under way */
#define STATE_VERSION 1u
#define STATE_MIN_CAP 1024u

struct br_state_hdr {
	uint32_t magic;
	uint32_t version;
	uint64_t cap;         /* entries, a power of two */
	uint64_t count;
	uint64_t reserved[5];
};

static size_t table_size(uint64_t cap)
{
	return (sizeof(struct br_state_hdr) + cap * sizeof(struct br_seq));
}

static int map(struct br_state *s, size_t size)
{
	void *p;

	if (s->fd >= 0) {
		if (ftruncate(s->fd, (off_t)size) < 0)
			return (-errno);
		p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, s->fd, 0);
	} else {
		p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	}
	if (p == MAP_FAILED)
		return (-errno);
	s->h = p;
	s->e = (struct br_seq *)(s->h + 1);
	s->size = size;
	return (0);
}

static void unmap(struct br_state *s)
{
	if (s->h != NULL)
		munmap(s->h, s->size);
	s->h = NULL;
	s->e = NULL;
}

static int fresh(struct br_state *s)
{
	int err;

	unmap(s);
	if (s->fd >= 0 && ftruncate(s->fd, 0) < 0)
		return (-errno);
	err = map(s, table_size(STATE_MIN_CAP));
	if (err < 0)
		return (err);
	memset(s->h, 0, s->size);
	s->h->version = STATE_VERSION;
	s->h->cap = STATE_MIN_CAP;
	s->h->magic = STATE_MAGIC;
	return (0);
}

/* mkdir -p of path's directory. */
static int make_dirs(const char *path)
{
	char buf[4096];
	size_t n = strlen(path);

	if (n >= sizeof(buf))
		return (-ENAMETOOLONG);
	memcpy(buf, path, n + 1);
	for (char *p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(buf, 0700) < 0 && errno != EEXIST)
			return (-errno);
		*p = '/';
	}
	return (0);
}

int br_state_open(struct br_state *s, const char *path)
{
	struct stat st;
	int err;

	memset(s, 0, sizeof(*s));
	s->fd = -1;
	snprintf(s->path, sizeof(s->path), "%s", path);
	if (path[0] == '\0')
		return (fresh(s));
	err = make_dirs(path);
	if (err < 0) {
		fprintf(stderr, "shmnotify-bridge: state file %s: cannot create its directory: %s\n",
			path, strerror(-err));
		return (err);
	}
	s->fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (s->fd < 0 || fstat(s->fd, &st) < 0) {
		err = -errno;
		fprintf(stderr, "shmnotify-bridge: state file %s: %s (set state-file to a writable "
			"path, or none)\n", path, strerror(errno));
		if (s->fd >= 0)
			close(s->fd);
		s->fd = -1;
		return (err);
	}
	if (st.st_size == 0)
		return (fresh(s));
	if ((size_t)st.st_size < sizeof(struct br_state_hdr))
		goto foreign;
	err = map(s, (size_t)st.st_size);
	if (err < 0)
		return (err);
	if (s->h->magic == STATE_GROWING) {
		fprintf(stderr, "shmnotify-bridge: warning: state file %s: a grow was cut off; "
			"starting afresh (losses over this restart are not counted)\n", path);
		return (fresh(s));
	}
	if (s->h->magic != STATE_MAGIC || s->h->version != STATE_VERSION || s->h->cap == 0 ||
	    (s->h->cap & (s->h->cap - 1)) != 0 || table_size(s->h->cap) != (size_t)st.st_size ||
	    s->h->count > s->h->cap / 2) {
		unmap(s);
		goto foreign;
	}
	return (0);
foreign:
	fprintf(stderr, "shmnotify-bridge: state file %s is not a shmnotify-bridge state file "
		"(or another version): move it away, or set state-file to another path\n", path);
	close(s->fd);
	s->fd = -1;
	return (-EINVAL);
}

void br_state_close(struct br_state *s)
{
	unmap(s);
	if (s->fd >= 0)
		close(s->fd);
	s->fd = -1;
}

uint64_t br_state_count(const struct br_state *s)
{
	return (s->h ? s->h->count : 0);
}

static struct br_seq *slot(struct br_state *s, uint64_t h0, uint64_t h1)
{
	uint64_t mask = s->h->cap - 1;

	for (uint64_t i = h0 & mask;; i = (i + 1) & mask) {
		struct br_seq *e = &s->e[i];

		if ((e->h0 == h0 && e->h1 == h1) || (e->h0 == 0 && e->h1 == 0))
			return (e);
	}
}

/* Double the table: rehash through a private copy.  The header says
 * GROWING meanwhile, so a crash in between is noticed at the next open. */
static int grow(struct br_state *s)
{
	uint64_t cap = s->h->cap, count = s->h->count;
	struct br_seq *old = malloc(cap * sizeof(*old));
	int err;

	if (old == NULL)
		return (-ENOMEM);
	memcpy(old, s->e, cap * sizeof(*old));
	s->h->magic = STATE_GROWING;
	unmap(s);
	err = map(s, table_size(cap * 2));
	if (err < 0) {
		free(old);
		return (err);
	}
	memset(s->e, 0, cap * 2 * sizeof(*old));
	s->h->cap = cap * 2;
	s->h->count = count;
	s->h->version = STATE_VERSION;
	for (uint64_t i = 0; i < cap; i++)
		if (old[i].h0 != 0 || old[i].h1 != 0)
			*slot(s, old[i].h0, old[i].h1) = old[i];
	free(old);
	s->h->magic = STATE_MAGIC;
	return (0);
}

struct br_seq *br_state_get(struct br_state *s, const char *origin, const char *subject,
			    bool create)
{
	size_t lo = strlen(origin), ls = strlen(subject);
	XXH3_state_t st;
	XXH128_hash_t h;
	struct br_seq *e;

	XXH3_128bits_reset(&st);
	XXH3_128bits_update(&st, origin, lo + 1);
	XXH3_128bits_update(&st, subject, ls);
	h = XXH3_128bits_digest(&st);
	h.low64 |= 1;   /* never the free marker */
	e = slot(s, h.low64, h.high64);
	if (e->h0 != 0 || e->h1 != 0)
		return (e);
	if (!create)
		return (NULL);
	if ((s->h->count + 1) * 2 > s->h->cap) {
		if (grow(s) < 0)
			return (NULL);
		e = slot(s, h.low64, h.high64);
	}
	e->epoch = 0;
	e->last = 0;
	e->h1 = h.high64;
	e->h0 = h.low64;
	s->h->count++;
	return (e);
}
