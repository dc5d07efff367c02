/* SPDX-License-Identifier: MIT */
/*
 * harness.c - a private broker per test, children with bounded waits.
 * See harness.h.
 */
#define _GNU_SOURCE
#include "harness.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>

#include <liburing.h>

#include "shm/proto.h"

#ifndef SHMNOTIFYD_PATH
#error "SHMNOTIFYD_PATH (the broker binary) must be defined by the build"
#endif

const char *h_io = "epoll";

static bool uring_available(void)
{
	struct io_uring ring;

	if (io_uring_queue_init(4, &ring, 0) < 0)
		return false;
	io_uring_queue_exit(&ring);
	return true;
}

void h_parse_args(int argc, char **argv)
{
	const char *env = getenv("SHN_TEST_IO");

	if (env != NULL && *env != '\0')
		h_io = env;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--io") == 0 && i + 1 < argc)
			h_io = argv[++i];
		else if (strncmp(argv[i], "--io=", 5) == 0)
			h_io = argv[i] + 5;
	}
	if (strcmp(h_io, "epoll") != 0 && strcmp(h_io, "uring") != 0) {
		fprintf(stderr, "unknown --io '%s' (epoll or uring)\n", h_io);
		exit(2);
	}
	if (strcmp(h_io, "uring") == 0 && !uring_available()) {
		fprintf(stderr, "io_uring is not available to this process: skipped\n");
		exit(77); /* ctest SKIP_RETURN_CODE */
	}
	/* a test never dies of a write to a closed socket or pipe */
	signal(SIGPIPE, SIG_IGN);
}

int64_t h_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t h_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

char *h_env_set(const char *var, const char *value)
{
	const char *was = getenv(var);
	char *saved = was ? strdup(was) : NULL;

	assert_true(was == NULL || saved != NULL);
	if (value)
		assert_int_equal(setenv(var, value, 1), 0);
	else
		assert_int_equal(unsetenv(var), 0);
	return (saved);
}

void h_env_restore(const char *var, char *saved)
{
	if (saved) {
		assert_int_equal(setenv(var, saved, 1), 0);
		free(saved);
	} else {
		assert_int_equal(unsetenv(var), 0);
	}
}

int64_t h_thread_cpu_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return ((int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
}

char h_proc_state(pid_t pid)
{
	char path[64], buf[512];
	FILE *f;
	size_t n;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "r");
	if (f == NULL)
		return '?';
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	char *rp = strrchr(buf, ')');
	return (rp != NULL && rp[1] == ' ') ? rp[2] : '?';
}

void h_sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

bool h_poll_until(bool (*fn)(void *ctx), void *ctx, int timeout_ms)
{
	int64_t end = h_now_ms() + timeout_ms;
	bool ok;

	while (!(ok = fn(ctx)) && h_now_ms() < end)
		h_sleep_ms(5);
	return ok;
}

bool h_fd_readable(int fd, int timeout_ms)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };

	return (poll(&pfd, 1, timeout_ms) == 1 && (pfd.revents & POLLIN));
}

void h_dump_log(const struct harness *h)
{
	char buf[4096];
	ssize_t n;
	int fd = open(h->log, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return;
	fprintf(stderr, "---- broker log (%s) ----\n", h->log);
	while ((n = read(fd, buf, sizeof(buf))) > 0)
		fwrite(buf, 1, (size_t)n, stderr);
	fprintf(stderr, "---- end of broker log ----\n");
	close(fd);
}

static void rm_dir(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	char p[600];

	if (d == NULL)
		return;
	while ((e = readdir(d)) != NULL) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
		unlink(p);
	}
	closedir(d);
	rmdir(dir);
}

void h_prepare(struct harness *h)
{
	const char *tmp = getenv("TMPDIR");

	memset(h, 0, sizeof(*h));
	h->broker = -1;
	snprintf(h->dir, sizeof(h->dir), "%s/shn-test-XXXXXX",
		 (tmp != NULL && *tmp != '\0' && strlen(tmp) < 128) ? tmp : "/tmp");
	if (mkdtemp(h->dir) == NULL)
		fail_msg("mkdtemp(%s): %s", h->dir, strerror(errno));
	snprintf(h->sock, sizeof(h->sock), "%s/s.sock", h->dir);
	snprintf(h->log, sizeof(h->log), "%s/broker.log", h->dir);
}

void h_start(struct harness *h, const char *const *extra)
{
	h_prepare(h);
	h_launch(h, extra);
}

/* $SHN_TEST_BROKER_WRAPPER (e.g. "valgrind --error-exitcode=99 ..."): words
 * put before the broker's command line; a private copy, split at blanks. */
static int wrapper_words(const char **argv, int max)
{
	static char copy[1024];
	const char *env = getenv("SHN_TEST_BROKER_WRAPPER");
	int n = 0;

	if (env == NULL || *env == '\0' || strlen(env) >= sizeof(copy))
		return 0;
	strcpy(copy, env);
	for (char *save = NULL, *w = strtok_r(copy, " \t", &save); w != NULL && n < max;
	     w = strtok_r(NULL, " \t", &save))
		argv[n++] = w;
	return n;
}

/* The broker h_launch started last: its threads are shown with a stuck
 * child's (a child waits on the broker as often as on the test). */
static pid_t launched_broker = -1;

pid_t h_spawn_broker(const struct harness *h, const char *const *extra)
{
	const char *argv[64];
	int argc = wrapper_words(argv, 24);
	int wrapped = argc;

	if (wrapped)
		argv[argc++] = SHMNOTIFYD_PATH;
	else
		argv[argc++] = "shmnotifyd";
	argv[argc++] = "--socket";
	argv[argc++] = h->sock;
	argv[argc++] = "--io";
	argv[argc++] = h_io;
	argv[argc++] = "--foreground";
	for (int i = 0; extra != NULL && extra[i] != NULL && argc < 62; i++)
		argv[argc++] = extra[i];
	argv[argc] = NULL;

	fflush(NULL);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		int fd = open(h->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
		int nul = open("/dev/null", O_RDONLY | O_CLOEXEC);
		if (fd < 0 || nul < 0)
			_exit(126);
		dup2(nul, 0);
		dup2(fd, 1);
		dup2(fd, 2);
		signal(SIGPIPE, SIG_DFL);
		if (wrapped)
			execvp(argv[0], (char *const *)argv);
		else
			execv(SHMNOTIFYD_PATH, (char *const *)argv);
		fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	return pid;
}

void h_launch(struct harness *h, const char *const *extra)
{
	pid_t pid = h_spawn_broker(h, extra);

	h->broker = pid;
	launched_broker = pid;

	/* wait until a client can connect (bounded; a wrapped broker, under
	 * valgrind, may take much longer to start on a loaded machine) */
	int start_ms = getenv("SHN_TEST_BROKER_WRAPPER") ? 6 * H_TIMEOUT_MS : H_TIMEOUT_MS;
	int64_t end = h_now_ms() + start_ms;
	int err = -1;
	shn_client *c = NULL;
	for (;;) {
		int st;
		if (waitpid(pid, &st, WNOHANG) == pid) {
			h->broker = -1;
			h_dump_log(h);
			fail_msg("shmnotifyd exited during start-up (status 0x%x)", st);
		}
		err = shn_connect(h->sock, &c);
		if (err == 0)
			break;
		if (h_now_ms() > end) {
			h_dump_log(h);
			fail_msg("shn_connect(%s) still fails after %d ms: %d (%s)", h->sock,
				 start_ms, err, shn_strerror(err));
		}
		h_sleep_ms(5);
	}

	/* the broker runs the backend asked for */
	char *js = NULL;
	int n = shn_stats_json(c, &js);
	shn_disconnect(c);
	assert_true(n > 0);
	char want[32];
	snprintf(want, sizeof(want), "\"io\":\"%s\"", h_io);
	if (strstr(js, want) == NULL) {
		fprintf(stderr, "stats: %s\n", js);
		free(js);
		h_dump_log(h);
		fail_msg("the broker does not report %s", want);
	}
	free(js);
}

void h_stop(struct harness *h)
{
	int st = 0;
	bool died = false, hung = false;

	if (h->broker <= 0) {
		if (h->dir[0] != '\0')
			rm_dir(h->dir);
		h->dir[0] = '\0';
		return;
	}
	if (waitpid(h->broker, &st, WNOHANG) == h->broker) {
		died = true;
	} else {
		kill(h->broker, SIGTERM);
		/* a wrapped broker (valgrind) checks for leaks on its way out */
		int64_t end = h_now_ms() + (getenv("SHN_TEST_BROKER_WRAPPER") ? 30000 : 5000);
		for (;;) {
			if (waitpid(h->broker, &st, WNOHANG) == h->broker)
				break;
			if (h_now_ms() > end) {
				hung = true;
				kill(h->broker, SIGKILL);
				waitpid(h->broker, &st, 0);
				break;
			}
			h_sleep_ms(2);
		}
	}
	h->broker = -1;
	bool bad = died || hung || !WIFEXITED(st) || WEXITSTATUS(st) != 0;
	if (bad)
		h_dump_log(h);
	rm_dir(h->dir);
	h->dir[0] = '\0';
	if (died)
		fail_msg("shmnotifyd died during the test (status 0x%x: %s %d)", st,
			 WIFSIGNALED(st) ? "signal" : "exit",
			 WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
	if (hung)
		fail_msg("shmnotifyd did not exit within 5 s of SIGTERM");
	if (bad)
		fail_msg("shmnotifyd did not exit 0 on SIGTERM (status 0x%x: %s %d)", st,
			 WIFSIGNALED(st) ? "signal" : "exit",
			 WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
}

int h_kill_broker(struct harness *h)
{
	int st = -1;

	if (h->broker > 0) {
		kill(h->broker, SIGKILL);
		waitpid(h->broker, &st, 0);
		h->broker = -1;
	}
	return st;
}

static struct harness the_harness;

int h_setup(void **state)
{
	h_start(&the_harness, NULL);
	*state = &the_harness;
	return 0;
}

int h_teardown(void **state)
{
	(void)state;
	h_kill_children();
	h_disconnect_all();   /* those a failed test left behind */
	h_stop(&the_harness);
	return 0;
}

#define MAX_CLIENTS 64
static shn_client *clients[MAX_CLIENTS];

shn_client *h_connect(const struct harness *h)
{
	shn_client *c = NULL;
	int err = shn_connect(h->sock, &c);

	if (err != 0)
		fail_msg("shn_connect: %d (%s)", err, shn_strerror(err));
	assert_non_null(c);
	for (int i = 0; i < MAX_CLIENTS; i++)
		if (clients[i] == NULL) {
			clients[i] = c;
			break;
		}
	return c;
}

void h_disconnect(shn_client *c)
{
	for (int i = 0; i < MAX_CLIENTS; i++)
		if (clients[i] == c)
			clients[i] = NULL;
	shn_disconnect(c);
}

void h_disconnect_all(void)
{
	for (int i = 0; i < MAX_CLIENTS; i++)
		if (clients[i] != NULL) {
			shn_disconnect(clients[i]);
			clients[i] = NULL;
		}
}

shn_port *h_port_sub(shn_client *c, uint32_t capacity, const void *key, size_t key_len,
		     uint32_t mask, shn_conn *conn)
{
	shn_port_options opt = { .capacity = capacity, .overflow = SHN_OVERFLOW_DROP };
	shn_port *p = NULL;
	int err = shn_port_open(c, &opt, &p);

	if (err != 0)
		fail_msg("shn_port_open(capacity %u): %d (%s)", capacity, err, shn_strerror(err));
	assert_non_null(p);
	*conn = 0;
	err = shn_subscribe(p, key, key_len, mask, 0, conn);
	if (err != 0)
		fail_msg("shn_subscribe: %d (%s)", err, shn_strerror(err));
	assert_true(*conn != 0);
	return p;
}

int h_get(shn_port *p, shn_notification *out, size_t max)
{
	int n = shn_port_get(p, out, max, H_TIMEOUT_MS);

	if (n < 1)
		fail_msg("shn_port_get: %d (%s) after waiting %d ms", n, shn_strerror(n),
			 H_TIMEOUT_MS);
	assert_true((size_t)n <= max);
	return n;
}

/* ---- children ---------------------------------------------------------- */

#define MAX_CHILDREN 64
static pid_t children[MAX_CHILDREN];

static void forget_child(pid_t pid)
{
	for (int i = 0; i < MAX_CHILDREN; i++)
		if (children[i] == pid)
			children[i] = 0;
}

/* A forked child's life: it dies with its parent and after
 * H_CHILD_TIMEOUT_MS, and exits with fn's result. */
static _Noreturn void run_child(int (*fn)(void *arg), void *arg)
{
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	alarm(H_CHILD_TIMEOUT_MS / 1000 + 5);
	int rc = fn(arg);
	fflush(NULL);
	_exit(rc);
}

pid_t h_fork(int (*fn)(void *arg), void *arg)
{
	fflush(NULL);
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0)
		run_child(fn, arg);
	for (int i = 0; i < MAX_CHILDREN; i++)
		if (children[i] == 0) {
			children[i] = pid;
			break;
		}
	return pid;
}

/* What process pid's threads are doing, on stderr: their stacks when gdb is
 * installed, otherwise each thread's system call and wait channel.  Shown
 * before a child that did not finish is killed, so that a hang seen once
 * (on a loaded CI machine, say) says where it was. */
void h_show_threads(pid_t pid, const char *what)
{
	char cmd[1024];

	if (pid <= 0 || kill(pid, 0) != 0)
		return;
	fprintf(stderr, "---- %s %d: its threads ----\n", what, (int)pid);
	fflush(NULL);
	snprintf(cmd, sizeof(cmd),
		 "if command -v gdb >/dev/null 2>&1; then "
		 "timeout 30 gdb -p %d -batch -nx -q -ex 'thread apply all bt 24' 2>&1 "
		 "| grep -E '^(Thread|#)' | head -n 200; "
		 "else for t in /proc/%d/task/*; do "
		 "echo \"$t $(cat $t/comm 2>/dev/null) wchan=$(cat $t/wchan 2>/dev/null) "
		 "syscall=$(cat $t/syscall 2>/dev/null)\"; done; fi >&2",
		 (int)pid, (int)pid);
	if (system(cmd) != 0) {
		/* what could be shown was shown */
	}
}

static int wait_child(pid_t pid, int timeout_ms, bool show_if_stuck)
{
	int64_t end = h_now_ms() + timeout_ms;
	int st;

	for (;;) {
		pid_t r = waitpid(pid, &st, WNOHANG);
		if (r == pid) {
			forget_child(pid);
			return st;
		}
		if (r < 0 && errno != EINTR) {
			forget_child(pid);
			return -1;
		}
		if (h_now_ms() > end) {
			if (show_if_stuck) {
				h_show_threads(pid, "the child that did not finish");
				for (int i = 0; i < MAX_CHILDREN; i++)
					if (children[i] > 0 && children[i] != pid)
						h_show_threads(children[i], "another child");
				h_show_threads(launched_broker, "the broker");
			}
			kill(pid, SIGKILL);
			waitpid(pid, &st, 0);
			forget_child(pid);
			return -1;
		}
		h_sleep_ms(2);
	}
}

int h_wait(pid_t pid, int timeout_ms)
{
	return (wait_child(pid, timeout_ms, false));
}

void h_wait_ok(pid_t pid, int timeout_ms)
{
	int st = wait_child(pid, timeout_ms, true);

	if (st == -1)
		fail_msg("child %d did not finish within %d ms (its threads above)", (int)pid,
			 timeout_ms);
	if (!WIFEXITED(st))
		fail_msg("child %d killed by signal %d", (int)pid, WTERMSIG(st));
	if (WEXITSTATUS(st) != 0)
		fail_msg("child %d exited %d (see its message above)", (int)pid, WEXITSTATUS(st));
}

void h_kill_children(void)
{
	for (int i = 0; i < MAX_CHILDREN; i++)
		if (children[i] > 0) {
			kill(children[i], SIGKILL);
			waitpid(children[i], NULL, 0);
			children[i] = 0;
		}
}

/* ---- a spawner ----------------------------------------------------------
 * Requests on one pipe, answers on another, each a fixed-size record:
 * SPAWN -> the child's pid; REAP pid -> its wait status (the spawner
 * blocks in waitpid: the test kills the child first, or waits for it to
 * end).  EOF on the request pipe ends the spawner. */

enum { SPAWN = 1, REAP = 2 };

struct spawn_req {
	int32_t op;
	int32_t pid;
};

struct h_spawner {
	pid_t pid;
	int req;    /* the test writes requests here */
	int ans;    /* and reads the answers here */
	int (*fn)(void *arg);
	void *arg;
	int fds[4]; /* both pipes' ends, for the spawner's side */
};

static bool full_io(int fd, void *buf, size_t len, bool out)
{
	for (size_t done = 0; done < len;) {
		ssize_t k = out ? write(fd, (char *)buf + done, len - done)
				: read(fd, (char *)buf + done, len - done);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return false;
		done += (size_t)k;
	}
	return true;
}

static int spawner_main(void *arg)
{
	struct h_spawner *s = arg;   /* the spawner's copy */
	int req = s->fds[0], ans = s->fds[3];
	struct spawn_req r;

	alarm(0);   /* it lives as long as the test needs it: h_kill_children */
	close(s->fds[1]);
	close(s->fds[2]);
	while (full_io(req, &r, sizeof(r), false)) {
		int32_t reply;
		if (r.op == SPAWN) {
			pid_t pid = fork();
			if (pid == 0) {
				close(req);
				close(ans);
				run_child(s->fn, s->arg);
			}
			reply = pid;
		} else {
			int st = -1;
			while (waitpid(r.pid, &st, 0) < 0 && errno == EINTR)
				;
			reply = st;
		}
		if (!full_io(ans, &reply, sizeof(reply), true))
			break;
	}
	return 0;
}

struct h_spawner *h_spawner_start(int (*fn)(void *arg), void *arg)
{
	struct h_spawner *s = calloc(1, sizeof(*s));
	int rq[2], an[2];

	assert_non_null(s);
	assert_int_equal(pipe2(rq, O_CLOEXEC), 0);
	assert_int_equal(pipe2(an, O_CLOEXEC), 0);
	*s = (struct h_spawner){ .fn = fn, .arg = arg, .fds = { rq[0], rq[1], an[0], an[1] } };
	s->pid = h_fork(spawner_main, s);
	close(rq[0]);
	close(an[1]);
	s->req = rq[1];
	s->ans = an[0];
	return s;
}

/* The spawner's answer to request op, or INT32_MIN after timeout_ms. */
static int32_t spawner_answer(struct h_spawner *s, int32_t op, int timeout_ms)
{
	struct pollfd pfd = { .fd = s->ans, .events = POLLIN };
	int32_t reply;
	int k = poll(&pfd, 1, timeout_ms);

	if (k == 0)
		return INT32_MIN;
	if (k < 0 || !full_io(s->ans, &reply, sizeof(reply), false))
		fail_msg("the spawner %d did not answer request %d: %s", (int)s->pid, op,
			 k < 0 ? strerror(errno) : "it closed its pipe");
	return reply;
}

static int32_t spawner_ask(struct h_spawner *s, int32_t op, pid_t pid, int timeout_ms)
{
	struct spawn_req r = { .op = op, .pid = pid };

	if (!full_io(s->req, &r, sizeof(r), true))
		fail_msg("the spawner %d is gone (request %d)", (int)s->pid, op);
	return spawner_answer(s, op, timeout_ms);
}

pid_t h_spawn(struct h_spawner *s)
{
	fflush(NULL);
	int32_t pid = spawner_ask(s, SPAWN, 0, H_TIMEOUT_MS);

	if (pid <= 0)
		fail_msg("the spawner %d could not fork: %d", (int)s->pid, pid);
	return pid;
}

int h_spawn_wait(struct h_spawner *s, pid_t pid, int timeout_ms)
{
	int32_t st = spawner_ask(s, REAP, pid, timeout_ms);

	if (st != INT32_MIN)
		return st;
	h_show_threads(pid, "the spawned child that did not finish");
	kill(pid, SIGKILL);
	if (spawner_answer(s, REAP, H_TIMEOUT_MS) == INT32_MIN)
		fail_msg("the spawner %d did not reap the killed child %d", (int)s->pid, (int)pid);
	return -1;
}

void h_spawner_stop(struct h_spawner *s)
{
	close(s->req);
	int st = h_wait(s->pid, H_TIMEOUT_MS);
	close(s->ans);
	free(s);
	if (st == -1 || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
		fail_msg("the spawner ended with status %#x", st);
}

void h_chan_init(struct h_chan *ch)
{
	assert_int_equal(pipe2(ch->fd, O_CLOEXEC), 0);
}

void h_chan_close(struct h_chan *ch)
{
	for (int i = 0; i < 2; i++)
		if (ch->fd[i] >= 0) {
			close(ch->fd[i]);
			ch->fd[i] = -1;
		}
}

int h_send(struct h_chan *ch, uint8_t b)
{
	return write(ch->fd[1], &b, 1) == 1;
}

int h_recv(struct h_chan *ch, uint8_t *b, int timeout_ms)
{
	struct pollfd pfd = { .fd = ch->fd[0], .events = POLLIN };
	int r;

	do
		r = poll(&pfd, 1, timeout_ms);
	while (r < 0 && errno == EINTR);
	if (r <= 0)
		return 0;
	return read(ch->fd[0], b, 1) == 1;
}

bool h_direct_on(void)
{
	const char *v = getenv("SHMNOTIFY_DIRECT");

	return !(v != NULL && (strcasecmp(v, "off") == 0 || strcmp(v, "0") == 0));
}

char *h_stats(shn_client *c)
{
	char *js = NULL;
	int n = shn_stats_json(c, &js);

	if (n <= 0)
		fail_msg("shn_stats_json: %d (%s)", n, shn_strerror(n));
	assert_non_null(js);
	return js;
}

int h_raw_connect(const struct harness *h)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	assert_true(strlen(h->sock) < sizeof(sa.sun_path));
	strcpy(sa.sun_path, h->sock);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		fail_msg("connect(%s): %s", h->sock, strerror(errno));
	return fd;
}

ssize_t h_raw_recv(int fd, void *buf, size_t len, int *fds, int *nfds, int timeout_ms)
{
	union {
		struct cmsghdr align;
		char b[CMSG_SPACE(sizeof(int) * 8)];
	} cb;
	struct iovec iov = { .iov_base = buf, .iov_len = len };
	struct msghdr mh = {
		.msg_iov = &iov, .msg_iovlen = 1,
		.msg_control = cb.b, .msg_controllen = sizeof(cb.b),
	};
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	int room = nfds ? *nfds : 0, got = 0, r;
	ssize_t n;

	if (nfds)
		*nfds = 0;
	do
		r = poll(&pfd, 1, timeout_ms);
	while (r < 0 && errno == EINTR);
	if (r == 0)
		return -ETIMEDOUT;
	if (r < 0)
		return -errno;
	n = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
	if (n < 0)
		return (errno == ECONNRESET) ? 0 : -errno;
	for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm)) {
		if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
			continue;
		int k = (int)((cm->cmsg_len - CMSG_LEN(0)) / sizeof(int));
		for (int i = 0; i < k; i++) {
			int f;
			memcpy(&f, CMSG_DATA(cm) + i * sizeof(int), sizeof(f));
			if (got < room)
				fds[got++] = f;
			else
				close(f);
		}
	}
	if (nfds)
		*nfds = got;
	return n;
}

void *h_shared(size_t size)
{
	void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		fail_msg("mmap(%zu, MAP_SHARED | MAP_ANONYMOUS): %s", size, strerror(errno));
	return p;
}

long long h_cpu_ticks(pid_t pid)
{
	char path[64], buf[1024];
	unsigned long long ut, st;
	size_t n;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "r");
	if (f == NULL)
		return -1;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	/* the command name may hold spaces and parentheses: fields 14 and 15
	 * (utime, stime) counted from the last ')' (field 2's end) */
	char *rp = strrchr(buf, ')');
	if (rp == NULL)
		return -1;
	if (sscanf(rp + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
		return -1;
	return (long long)(ut + st);
}

static uint32_t h_raw_id = 100;

void h_hdr_init(struct shn_msg_hdr *h, uint16_t type)
{
	h->magic = SHN_PROTO_MAGIC;
	h->version = SHN_PROTO_VERSION;
	h->type = type;
	h->id = ++h_raw_id;
	h->status = 0;
}

void h_raw_send(int fd, const void *msg, size_t len)
{
	ssize_t n = send(fd, msg, len, MSG_NOSIGNAL);

	if (n != (ssize_t)len)
		fail_msg("send(%zu bytes): %zd (%s)", len, n, strerror(errno));
}

void h_expect_eof(int fd, const char *what)
{
	uint8_t buf[SHN_MSG_MAX + 64];
	int fds[8], nfds = 8;
	ssize_t n = h_raw_recv(fd, buf, sizeof(buf), fds, &nfds, H_TIMEOUT_MS);

	for (int i = 0; i < nfds; i++)
		close(fds[i]);
	if (n == -ETIMEDOUT)
		fail_msg("%s: the broker kept the connection open for %d ms", what, H_TIMEOUT_MS);
	if (n > 0) {
		struct shn_msg_hdr hd = { 0 };
		memcpy(&hd, buf, n < (ssize_t)sizeof(hd) ? (size_t)n : sizeof(hd));
		fail_msg("%s: the broker answered (%zd bytes, type %u, status %d) instead of "
			 "closing", what, n, hd.type, hd.status);
	}
	assert_int_equal(n, 0);
}
