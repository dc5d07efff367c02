/* SPDX-License-Identifier: MIT */
/*
 * test_segment.c - unit tests of shm/segment.c: sealed memfd segments.
 *
 * Real memfds, real mappings; rule 13 (read-only delivery, docs/design.md) is
 * checked on the kernel's behaviour, not assumed.  Seals bind root too, so
 * these hold whoever runs the test.
 */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "shm/segment.h"

#ifndef F_SEAL_FUTURE_WRITE
#define F_SEAL_FUTURE_WRITE 0x0010
#endif

static void test_create(void **state)
{
	struct shn_segment seg;
	struct stat st;
	(void)state;

	assert_int_equal(shn_segment_create(&seg, "shn-test", 8192), 0);
	assert_non_null(seg.addr);
	assert_int_equal(seg.size, 8192);
	assert_true(seg.fd >= 0);
	/* close-on-exec: descriptors travel by SCM_RIGHTS, never by exec */
	assert_true(fcntl(seg.fd, F_GETFD) & FD_CLOEXEC);
	assert_int_equal(fstat(seg.fd, &st), 0);
	assert_int_equal(st.st_size, 8192);
	int seals = fcntl(seg.fd, F_GET_SEALS);
	assert_true(seals >= 0);
	assert_int_equal(seals & (F_SEAL_SHRINK | F_SEAL_GROW), F_SEAL_SHRINK | F_SEAL_GROW);
	/* writable segment: not write-sealed yet */
	assert_int_equal(seals & (F_SEAL_WRITE | F_SEAL_FUTURE_WRITE), 0);

	/* zero-filled, writable */
	const uint8_t *b = seg.addr;
	for (size_t i = 0; i < seg.size; i++)
		if (b[i] != 0)
			fail_msg("byte %zu not zero", i);
	memset(seg.addr, 0xa5, seg.size);

	/* size is fixed: shrink and grow fail with EPERM */
	errno = 0;
	assert_int_equal(ftruncate(seg.fd, 4096), -1);
	assert_int_equal(errno, EPERM);
	errno = 0;
	assert_int_equal(ftruncate(seg.fd, 16384), -1);
	assert_int_equal(errno, EPERM);
	errno = 0;
	assert_int_equal(ftruncate(seg.fd, 0), -1);
	assert_int_equal(errno, EPERM);
	/* grow by writing past the end: EPERM too */
	uint8_t x = 1;
	errno = 0;
	assert_int_equal(pwrite(seg.fd, &x, 1, 8192), -1);
	assert_int_equal(errno, EPERM);
	/* fallocate beyond the end */
	errno = 0;
	assert_int_equal(fallocate(seg.fd, 0, 0, 65536), -1);
	assert_int_equal(errno, EPERM);
	assert_int_equal(fstat(seg.fd, &st), 0);
	assert_int_equal(st.st_size, 8192);
	assert_int_equal(((uint8_t *)seg.addr)[8191], 0xa5);

	shn_segment_close(&seg);
	assert_null(seg.addr);
	assert_int_equal(seg.fd, -1);
	shn_segment_close(&seg); /* safe twice */
}

static void test_create_sizes(void **state)
{
	struct shn_segment seg;
	(void)state;

	/* a publish ring of 1 MiB, and a large sparse one */
	assert_int_equal(shn_segment_create(&seg, "shn-test-1m", 256 + (1u << 20)), 0);
	((uint8_t *)seg.addr)[256 + (1u << 20) - 1] = 7;
	shn_segment_close(&seg);
	assert_int_equal(shn_segment_create(&seg, "shn-test-64m", 256 + (64u << 20)), 0);
	assert_int_equal(seg.size, 256 + (64u << 20));
	shn_segment_close(&seg);
}

/* Rule 13: after seal_readonly no new writable access exists. */
static void test_seal_readonly(void **state)
{
	struct shn_segment seg;
	void *p;
	(void)state;

	assert_int_equal(shn_segment_create(&seg, "shn-test-ro", 4096), 0);
	memcpy(seg.addr, "before", 7);
	assert_int_equal(shn_segment_seal_readonly(&seg), 0);
	int seals = fcntl(seg.fd, F_GET_SEALS);
	assert_true(seals & F_SEAL_FUTURE_WRITE);
	assert_true(seals & F_SEAL_SEAL);
	assert_true(seals & F_SEAL_SHRINK);
	assert_true(seals & F_SEAL_GROW);
	/* F_SEAL_SEAL: no more seals can be added (nor removed, ever) */
	errno = 0;
	assert_int_equal(fcntl(seg.fd, F_ADD_SEALS, F_SEAL_WRITE), -1);
	assert_int_equal(errno, EPERM);

	/* mmap(PROT_WRITE, MAP_SHARED) of the fd fails */
	errno = 0;
	p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, seg.fd, 0);
	assert_true(p == MAP_FAILED);
	assert_int_equal(errno, EPERM);
	errno = 0;
	p = mmap(NULL, 4096, PROT_WRITE, MAP_SHARED, seg.fd, 0);
	assert_true(p == MAP_FAILED);
	assert_int_equal(errno, EPERM);

	/* a read-only shared mapping works, sees the data, and cannot be
	 * mprotect()ed to writable */
	uint8_t *ro = mmap(NULL, 4096, PROT_READ, MAP_SHARED, seg.fd, 0);
	assert_true(ro != MAP_FAILED);
	assert_string_equal((const char *)ro, "before");
	errno = 0;
	assert_int_equal(mprotect(ro, 4096, PROT_READ | PROT_WRITE), -1);
	assert_int_equal(errno, EACCES);

	/* write(2) and pwrite(2) fail */
	errno = 0;
	assert_int_equal(write(seg.fd, "x", 1), -1);
	assert_int_equal(errno, EPERM);
	errno = 0;
	assert_int_equal(pwrite(seg.fd, "x", 1, 0), -1);
	assert_int_equal(errno, EPERM);

	/* a reopen through /proc/self/fd: either refused, or the new file is
	 * just as sealed (the seals live on the inode) */
	char path[64];
	snprintf(path, sizeof(path), "/proc/self/fd/%d", seg.fd);
	int fd2 = open(path, O_RDWR | O_CLOEXEC);
	if (fd2 >= 0) {
		errno = 0;
		assert_int_equal(write(fd2, "x", 1), -1);
		assert_int_equal(errno, EPERM);
		errno = 0;
		assert_int_equal(pwrite(fd2, "x", 1, 0), -1);
		assert_int_equal(errno, EPERM);
		p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd2, 0);
		assert_true(p == MAP_FAILED);
		errno = 0;
		assert_int_equal(ftruncate(fd2, 0), -1);
		assert_int_equal(errno, EPERM);
		close(fd2);
	}
	/* also through the /proc/PID/fd path of this process */
	snprintf(path, sizeof(path), "/proc/%d/fd/%d", (int)getpid(), seg.fd);
	fd2 = open(path, O_WRONLY | O_CLOEXEC);
	if (fd2 >= 0) {
		errno = 0;
		assert_int_equal(write(fd2, "x", 1), -1);
		assert_int_equal(errno, EPERM);
		close(fd2);
	}

	/* a private writable mapping, if the kernel allows it, never reaches
	 * the shared pages */
	p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE, seg.fd, 0);
	if (p != MAP_FAILED) {
		memcpy(p, "private", 8);
		munmap(p, 4096);
	}
	assert_string_equal((const char *)ro, "before");

	/* the creator's existing mapping still writes, and readers see it */
	memcpy(seg.addr, "after!", 7);
	assert_string_equal((const char *)ro, "after!");

	/* a dup'd descriptor, as sent by SCM_RIGHTS, is the same file: sealed */
	int fd3 = dup(seg.fd);
	assert_true(fd3 >= 0);
	p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd3, 0);
	assert_true(p == MAP_FAILED);
	close(fd3);

	munmap(ro, 4096);
	shn_segment_close(&seg);
}

/* The same checks from another process that received the descriptor the
 * way a client does (here through fork): it cannot write, the broker's
 * mapping can. */
static void test_seal_readonly_other_process(void **state)
{
	struct shn_segment seg;
	(void)state;

	assert_int_equal(shn_segment_create(&seg, "shn-test-ro2", 4096), 0);
	assert_int_equal(shn_segment_seal_readonly(&seg), 0);
	/* the creator's mapping predates the seal and is MAP_SHARED: a child
	 * inheriting it could write, so the child drops it first, like a
	 * client that only ever had the descriptor */
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		munmap(seg.addr, seg.size);
		int bad = 0;
		void *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, seg.fd, 0);
		if (p != MAP_FAILED)
			bad |= 1;
		uint8_t *ro = mmap(NULL, 4096, PROT_READ, MAP_SHARED, seg.fd, 0);
		if (ro == MAP_FAILED)
			bad |= 2;
		else if (mprotect(ro, 4096, PROT_READ | PROT_WRITE) == 0)
			bad |= 4;
		if (write(seg.fd, "z", 1) != -1)
			bad |= 8;
		char path[64];
		snprintf(path, sizeof(path), "/proc/self/fd/%d", seg.fd);
		int fd2 = open(path, O_RDWR);
		if (fd2 >= 0 && write(fd2, "z", 1) != -1)
			bad |= 16;
		_exit(bad);
	}
	int st;
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
	assert_int_equal(((uint8_t *)seg.addr)[0], 0);
	((uint8_t *)seg.addr)[0] = 1;
	shn_segment_close(&seg);
}

static int make_memfd(size_t size, unsigned seals)
{
	int fd = memfd_create("shn-test-raw", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, (off_t)size), 0);
	if (seals != 0)
		assert_int_equal(fcntl(fd, F_ADD_SEALS, seals), 0);
	return fd;
}

static void test_map(void **state)
{
	struct shn_segment seg, m;
	(void)state;

	/* the normal path: map what create gave, both ways */
	assert_int_equal(shn_segment_create(&seg, "shn-test-map", 8192), 0);
	memcpy(seg.addr, "hello", 6);
	int fd = dup(seg.fd);
	assert_true(fd >= 0);
	assert_int_equal(shn_segment_map(&m, fd, 4096, 1), 0);
	assert_int_equal(m.size, 8192); /* its actual size, not min_size */
	assert_int_equal(m.fd, fd);
	assert_string_equal((const char *)m.addr, "hello");
	memcpy(m.addr, "world", 6);
	assert_string_equal((const char *)seg.addr, "world");
	shn_segment_close(&m);
	assert_int_equal(fcntl(fd, F_GETFD), -1); /* close closed the fd */

	/* min_size equal to the size is fine */
	fd = dup(seg.fd);
	assert_int_equal(shn_segment_map(&m, fd, 8192, 0), 0);
	assert_string_equal((const char *)m.addr, "world");
	shn_segment_close(&m);

	/* too small */
	fd = dup(seg.fd);
	assert_int_equal(shn_segment_map(&m, fd, 8193, 0), -EBADMSG);
	assert_null(m.addr);
	close(fd);
	fd = dup(seg.fd);
	assert_int_equal(shn_segment_map(&m, fd, 1u << 20, 1), -EBADMSG);
	assert_null(m.addr);
	close(fd);

	/* read-only segment: read-only map works, writable map refused */
	assert_int_equal(shn_segment_seal_readonly(&seg), 0);
	fd = dup(seg.fd);
	assert_int_equal(shn_segment_map(&m, fd, 4096, 1), -EPERM);
	assert_null(m.addr);
	close(fd);
	fd = dup(seg.fd);
	assert_int_equal(shn_segment_map(&m, fd, 4096, 0), 0);
	assert_string_equal((const char *)m.addr, "world");
	errno = 0;
	assert_int_equal(mprotect(m.addr, m.size, PROT_READ | PROT_WRITE), -1);
	assert_int_equal(errno, EACCES);
	shn_segment_close(&m);
	shn_segment_close(&seg);
}

static void test_map_refuses(void **state)
{
	struct shn_segment m;
	int fd;
	(void)state;

	/* a memfd without seals: its owner could truncate it under us */
	fd = make_memfd(8192, 0);
	assert_int_equal(shn_segment_map(&m, fd, 4096, 0), -EBADMSG);
	assert_null(m.addr);
	close(fd);
	/* only one of the two size seals */
	fd = make_memfd(8192, F_SEAL_SHRINK);
	assert_int_equal(shn_segment_map(&m, fd, 4096, 0), -EBADMSG);
	close(fd);
	fd = make_memfd(8192, F_SEAL_GROW);
	assert_int_equal(shn_segment_map(&m, fd, 4096, 0), -EBADMSG);
	close(fd);
	/* a memfd that cannot be sealed at all (F_SEAL_SEAL preset) */
	fd = memfd_create("shn-test-nos", MFD_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, 8192), 0);
	assert_int_equal(shn_segment_map(&m, fd, 4096, 0), -EBADMSG);
	close(fd);
	/* sealed but too small */
	fd = make_memfd(4096, F_SEAL_SHRINK | F_SEAL_GROW);
	assert_int_equal(shn_segment_map(&m, fd, 4097, 0), -EBADMSG);
	assert_int_equal(shn_segment_map(&m, fd, 8192, 1), -EBADMSG);
	assert_null(m.addr);
	/* the same one with a fitting min_size maps */
	assert_int_equal(shn_segment_map(&m, fd, 4096, 1), 0);
	shn_segment_close(&m);
	/* sealed but empty */
	fd = make_memfd(0, F_SEAL_SHRINK | F_SEAL_GROW);
	assert_int_equal(shn_segment_map(&m, fd, 4096, 0), -EBADMSG);
	close(fd);
	/* sealed but implausibly large (sparse, costs nothing) */
	fd = make_memfd((1ull << 31) + 4096, F_SEAL_SHRINK | F_SEAL_GROW);
	assert_int_equal(shn_segment_map(&m, fd, 4096, 0), -EBADMSG);
	assert_null(m.addr);
	close(fd);
	/* not a memfd: a pipe, a regular file */
	int pfd[2];
	assert_int_equal(pipe(pfd), 0);
	assert_int_equal(shn_segment_map(&m, pfd[0], 0, 0), -EBADMSG);
	close(pfd[0]);
	close(pfd[1]);
	char tmpl[] = "/tmp/shn-test-segXXXXXX";
	fd = mkstemp(tmpl);
	assert_true(fd >= 0);
	unlink(tmpl);
	assert_int_equal(ftruncate(fd, 8192), 0);
	assert_int_equal(shn_segment_map(&m, fd, 4096, 0), -EBADMSG);
	close(fd);
	/* a closed descriptor */
	assert_int_equal(shn_segment_map(&m, fd, 4096, 0), -EBADMSG);
}

/* A write through a read-only mapping from shn_segment_map faults and
 * changes nothing.  Done in a child: the fault kills it. */
static void test_map_readonly_faults(void **state)
{
	struct shn_segment seg, m;
	(void)state;

	assert_int_equal(shn_segment_create(&seg, "shn-test-fault", 4096), 0);
	assert_int_equal(shn_segment_seal_readonly(&seg), 0);
	int fd = dup(seg.fd);
	assert_int_equal(shn_segment_map(&m, fd, 4096, 0), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		/* no core files, no sanitizer report for the expected fault */
		signal(SIGSEGV, SIG_DFL);
		signal(SIGBUS, SIG_DFL);
		*(volatile uint8_t *)m.addr = 0x42;
		_exit(0); /* reached only if the write went through */
	}
	int st;
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFSIGNALED(st));
	assert_true(WTERMSIG(st) == SIGSEGV || WTERMSIG(st) == SIGBUS);
	assert_int_equal(((volatile uint8_t *)seg.addr)[0], 0);
	shn_segment_close(&m);
	shn_segment_close(&seg);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_create),
		cmocka_unit_test(test_create_sizes),
		cmocka_unit_test(test_seal_readonly),
		cmocka_unit_test(test_seal_readonly_other_process),
		cmocka_unit_test(test_map),
		cmocka_unit_test(test_map_refuses),
		cmocka_unit_test(test_map_readonly_faults),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
