/* SPDX-License-Identifier: MIT */
/*
 * harness.h - what the integration tests share: a private broker per test,
 * child processes with bounded waits, small helpers.
 *
 * Every integration test program takes `--io epoll|uring` (or
 * $SHN_TEST_IO), starts its own `shmnotifyd --socket DIR/s.sock --io IO`
 * in a fresh temporary directory, and stops it (SIGTERM, then SIGKILL) at
 * teardown, failing the test when the broker died on its own, did not stop
 * on SIGTERM or did not exit 0.  Every wait is bounded: a bug fails a test,
 * never hangs it.
 *
 * Child processes report with their exit status: CHILD_CHECK() prints the
 * failed condition and _exit()s with status 1 (cmocka's assertions must
 * not be used after fork()).
 */
#ifndef SHN_TEST_HARNESS_H
#define SHN_TEST_HARNESS_H

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/types.h>
#include <unistd.h>

#include <shmnotify.h>

/* Generous bounds: only ever reached when something is broken. */
#define H_TIMEOUT_MS 10000       /* one expected event */
#define H_CHILD_TIMEOUT_MS 60000 /* a child doing its whole job */

struct harness {
	char dir[256];        /* private temporary directory */
	char sock[300];       /* DIR/s.sock */
	char log[300];        /* DIR/broker.log: the broker's stdout and stderr */
	pid_t broker;         /* -1: not running */
};

/* The I/O backend the tests run against ("epoll" or "uring"). */
extern const char *h_io;

/* Parse --io BACKEND (and leave other arguments alone); default: $SHN_TEST_IO,
 * else epoll.  Exits with status 2 on an unknown backend, and with 77 (ctest
 * SKIP_RETURN_CODE) for uring when io_uring_queue_init() fails here. */
void h_parse_args(int argc, char **argv);

/* Start a broker (extra: NULL-terminated extra arguments, may be NULL) and
 * wait, at most H_TIMEOUT_MS, until shn_connect() succeeds.  Checks that the
 * broker runs the requested backend.  cmocka assertions on failure. */
void h_start(struct harness *h, const char *const *extra);

/* The two halves of h_start(): make the directory and paths; start the
 * broker there and wait for it (again after h_kill_broker(), same socket). */
void h_prepare(struct harness *h);
void h_launch(struct harness *h, const char *const *extra);

/* Start another shmnotifyd on h's socket and log, without waiting or
 * remembering it: returns its pid. */
pid_t h_spawn_broker(const struct harness *h, const char *const *extra);

/* SIGKILL the broker (a crash) and reap it; returns its wait status. */
int h_kill_broker(struct harness *h);

/* Stop it: fails the test if it died before, or does not exit 0 on SIGTERM
 * within 5 s (then SIGKILL).  Removes the directory. */
void h_stop(struct harness *h);

/* Print the broker's log to stderr (on failure paths). */
void h_dump_log(const struct harness *h);

/* cmocka setup/teardown using one static harness, for tests that need one
 * broker each: *state points at the harness. */
int h_setup(void **state);
int h_teardown(void **state);

/* Connect, asserting success.  The client is remembered until
 * h_disconnect(); h_teardown() disconnects those a failed test left. */
shn_client *h_connect(const struct harness *h);
void h_disconnect(shn_client *c);
void h_disconnect_all(void);

/* Open a port (capacity 0: default) and subscribe key (NULL: any key) with
 * mask; asserts; returns the port, *conn the connection number. */
shn_port *h_port_sub(shn_client *c, uint32_t capacity, const void *key, size_t key_len,
		     uint32_t mask, shn_conn *conn);

/* shn_port_get() with H_TIMEOUT_MS, asserting at least one notification. */
int h_get(shn_port *p, shn_notification *out, size_t max);

/* ---- child processes ------------------------------------------------ */

#define CHILD_CHECK(cond) do {                                                  \
		if (!(cond)) {                                                  \
			fprintf(stderr, "%s:%d: child %d: check failed: %s\n",  \
				__FILE__, __LINE__, (int)getpid(), #cond);      \
			_exit(1);                                               \
		}                                                               \
	} while (0)

#define CHILD_CHECK_EQ(a, b) do {                                               \
		long long a_ = (long long)(a), b_ = (long long)(b);             \
		if (a_ != b_) {                                                 \
			fprintf(stderr, "%s:%d: child %d: %s == %lld, expected %s == %lld\n", \
				__FILE__, __LINE__, (int)getpid(), #a, a_, #b, b_); \
			_exit(1);                                               \
		}                                                               \
	} while (0)

/* Fork a child that runs fn(arg) and exits with its return value (0: ok).
 * The child dies with the test process (PR_SET_PDEATHSIG) and on its own
 * after H_CHILD_TIMEOUT_MS (alarm).  The pid is remembered so that
 * h_kill_children() can reap it. */
pid_t h_fork(int (*fn)(void *arg), void *arg);

/* Wait for a child at most timeout_ms: returns its wait status, or -1 on
 * timeout (the child is then killed). */
int h_wait(pid_t pid, int timeout_ms);

/* Assert that the child exits 0 within timeout_ms. */
void h_wait_ok(pid_t pid, int timeout_ms);

/* Kill and reap every child still running (teardown). */
void h_kill_children(void);

/* What process pid's threads are doing, on stderr (their stacks when gdb
 * is installed): shown before a test fails on a child that hangs. */
void h_show_threads(pid_t pid, const char *what);

/* A spawner: a single-threaded child that forks children running fn(arg)
 * on request.  fork() copies the locks the other threads hold: the C
 * library's own are taken around it, but GCC 12's AddressSanitizer does not
 * take its allocator's, so a child forked while a client's watcher thread
 * is inside malloc (handling a broker message) can hang at its first
 * allocation.  A test that forks again and again while its clients live
 * starts a spawner before it connects; children forked from a process with
 * one thread inherit no held lock.  A spawned child dies with the spawner
 * and after H_CHILD_TIMEOUT_MS, as h_fork's; the spawner dies with the
 * test (h_kill_children). */
struct h_spawner;
struct h_spawner *h_spawner_start(int (*fn)(void *arg), void *arg);
/* Fork one more child; returns its pid (asserting success). */
pid_t h_spawn(struct h_spawner *s);
/* Wait for a spawned child at most timeout_ms: its wait status, or -1 on
 * timeout (its threads are shown, then it is killed). */
int h_spawn_wait(struct h_spawner *s, pid_t pid, int timeout_ms);
/* End the spawner (its children still running die with it). */
void h_spawner_stop(struct h_spawner *s);

/* Pipes as one-byte signals between processes, bounded. */
struct h_chan {
	int fd[2];
};
void h_chan_init(struct h_chan *ch);
void h_chan_close(struct h_chan *ch);
/* Send one byte; receive one byte with a timeout: 1 got it, 0 timeout or
 * EOF.  Usable in children (no cmocka). */
int h_send(struct h_chan *ch, uint8_t b);
int h_recv(struct h_chan *ch, uint8_t *b, int timeout_ms);

/* Monotonic milliseconds (and nanoseconds); sleep, bounded. */
int64_t h_now_ms(void);
int64_t h_now_ns(void);
void h_sleep_ms(int ms);

/* Set environment variable var to value (NULL: unset it) and return what
 * it held, for h_env_restore (the library reads some variables once, at
 * shn_connect: a test sets one for one connect). */
char *h_env_set(const char *var, const char *value);
void h_env_restore(const char *var, char *saved);

/* A process's state letter from /proc/PID/stat ('S' asleep, 'R'
 * running, ...), or '?' when it cannot be read. */
char h_proc_state(pid_t pid);

/* Zeroed memory shared with the children forked after this call
 * (MAP_SHARED | MAP_ANONYMOUS), asserting success.  Never freed: a test
 * maps a few pages. */
void *h_shared(size_t size);

/* CPU time that process pid has used so far: utime + stime of
 * /proc/PID/stat, in clock ticks (sysconf(_SC_CLK_TCK) per second).
 * Returns -1 when it cannot be read. */
long long h_cpu_ticks(pid_t pid);

/* CPU time the calling thread has used, in milliseconds
 * (CLOCK_THREAD_CPUTIME_ID): a test that a wait sleeps rather than spins. */
int64_t h_thread_cpu_ms(void);

/* Poll fn(ctx) every few milliseconds until it returns true or timeout_ms
 * passed.  Returns its last result. */
bool h_poll_until(bool (*fn)(void *ctx), void *ctx, int timeout_ms);

/* Does fd become readable (POLLIN) within timeout_ms (0: is it now)? */
bool h_fd_readable(int fd, int timeout_ms);

/* Does this run use the direct data path (SHMNOTIFY_DIRECT is not "off"
 * or "0": the NAME_brokered runs set it)? */
bool h_direct_on(void);

/* The broker's stats document (malloc'd), asserting success. */
char *h_stats(shn_client *c);

/* A raw SOCK_SEQPACKET connection to the broker (no library). */
int h_raw_connect(const struct harness *h);

/* The little-endian uint64_t at p: an SHN_EV_OVERFLOW note's count. */
static inline uint64_t h_le64(const void *p)
{
	const uint8_t *d = p;
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = (v << 8) | d[i];
	return v;
}

/* Receive one message with a timeout; returns its length, 0 on EOF,
 * -ETIMEDOUT or -errno.  fds (may be NULL) receives up to *nfds descriptors. */
ssize_t h_raw_recv(int fd, void *buf, size_t len, int *fds, int *nfds, int timeout_ms);

/* A control-message header of this protocol version and type, with the
 * next request id of this process. */
struct shn_msg_hdr;
void h_hdr_init(struct shn_msg_hdr *h, uint16_t type);

/* Send one whole message on a raw connection, or fail the test. */
void h_raw_send(int fd, const void *msg, size_t len);

/* Expect the broker to close a raw connection without answering (a
 * protocol error cuts the client off), or fail the test naming `what`. */
void h_expect_eof(int fd, const char *what);

#endif
