/* SPDX-License-Identifier: MIT */
/*
 * test_cli.c - the shmnotify command against a private broker: listen
 * --json prints what publish sent, as one batch; binary keys and data come
 * out as base64 (docs/design.md, rule 14); bad arguments exit 2; a
 * --socket that is no socket is named for what it is.
 */
#define _GNU_SOURCE
#include "harness.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>

#ifndef SHMNOTIFY_CLI_PATH
#error "SHMNOTIFY_CLI_PATH (the shmnotify command) must be defined by the build"
#endif

struct proc {
	pid_t pid;
	int out;          /* read end of its stdout */
	char buf[16384];
	size_t len;
};

/* spawn: stderr into the pipe too (run_both) */
static bool capture_stderr;

/* Start the command with argv (argv[0] is ignored), stdout to a pipe. */
static void spawn(struct proc *p, const char *const *argv)
{
	int fd[2];
	const char *av[32];
	int n = 0;

	av[n++] = "shmnotify";
	for (int i = 1; argv[i] != NULL && n < 31; i++)
		av[n++] = argv[i];
	av[n] = NULL;
	memset(p, 0, sizeof(*p));
	assert_int_equal(pipe2(fd, O_CLOEXEC), 0);
	fflush(NULL);
	p->pid = fork();
	assert_true(p->pid >= 0);
	if (p->pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		dup2(fd[1], 1);
		if (capture_stderr)
			dup2(fd[1], 2);
		signal(SIGPIPE, SIG_DFL);
		execv(SHMNOTIFY_CLI_PATH, (char *const *)av);
		_exit(127);
	}
	close(fd[1]);
	p->out = fd[0];
}

/* Read its stdout to EOF and reap it; everything bounded.  Returns its exit
 * status (fails the test on a signal or a timeout). */
static int finish(struct proc *p, int timeout_ms)
{
	int64_t end = h_now_ms() + timeout_ms;

	for (;;) {
		int left = (int)(end - h_now_ms());
		struct pollfd pfd = { .fd = p->out, .events = POLLIN };
		if (left <= 0) {
			kill(p->pid, SIGKILL);
			waitpid(p->pid, NULL, 0);
			close(p->out);
			fail_msg("shmnotify did not finish within %d ms; output so far:\n%.*s",
				 timeout_ms, (int)p->len, p->buf);
		}
		if (poll(&pfd, 1, left) <= 0)
			continue;
		ssize_t n = read(p->out, p->buf + p->len, sizeof(p->buf) - 1 - p->len);
		if (n <= 0)
			break;
		p->len += (size_t)n;
	}
	p->buf[p->len] = '\0';
	close(p->out);
	int st = h_wait(p->pid, (int)(end - h_now_ms()) > 0 ? (int)(end - h_now_ms()) : 1);
	if (st == -1)
		fail_msg("shmnotify did not exit");
	if (!WIFEXITED(st))
		fail_msg("shmnotify killed by signal %d", WTERMSIG(st));
	return WEXITSTATUS(st);
}

static int run(const char *const *argv, struct proc *p)
{
	spawn(p, argv);
	return finish(p, H_TIMEOUT_MS);
}

/* run, with stderr in p->buf after stdout's lines */
static int run_both(const char *const *argv, struct proc *p)
{
	int st;

	capture_stderr = true;
	spawn(p, argv);
	capture_stderr = false;
	st = finish(p, H_TIMEOUT_MS);
	return st;
}

/* Copy a JSON line without blanks outside strings: tolerant of formatting. */
static void squeeze(char *dst, const char *src, size_t len)
{
	bool in_str = false;
	size_t j = 0;

	for (size_t i = 0; i < len && src[i]; i++) {
		char ch = src[i];
		if (ch == '"' && (i == 0 || src[i - 1] != '\\'))
			in_str = !in_str;
		if (!in_str && (ch == ' ' || ch == '\t'))
			continue;
		dst[j++] = ch;
	}
	dst[j] = '\0';
}

/* Split the output into at most max lines (squeezed). */
static int lines_of(const char *buf, char lines[][1024], int max)
{
	int n = 0;
	const char *s = buf;

	while (*s && n < max) {
		const char *e = strchr(s, '\n');
		size_t len = e ? (size_t)(e - s) : strlen(s);
		if (len >= 1024)
			len = 1023;
		squeeze(lines[n++], s, len);
		if (!e)
			break;
		s = e + 1;
	}
	return n;
}

static void expect_in(const char *line, const char *what)
{
	if (strstr(line, what) == NULL)
		fail_msg("expected %s in: %s", what, line);
}

struct subs_ctx {
	shn_client *c;
	int want;
};

/* The broker counts want live subscriptions (stats). */
static bool has_subs(void *arg)
{
	struct subs_ctx *x = arg;
	char *js = NULL, sq[8192], pat[64];

	if (shn_stats_json(x->c, &js) <= 0)
		return false;
	squeeze(sq, js, sizeof(sq) - 1);
	free(js);
	snprintf(pat, sizeof(pat), "\"subscriptions\":%d,", x->want);
	return strstr(sq, pat) != NULL;
}

static void wait_subscribed(const struct harness *h, struct proc *listener)
{
	struct subs_ctx x = { .c = h_connect(h), .want = 1 };

	if (!h_poll_until(has_subs, &x, H_TIMEOUT_MS)) {
		kill(listener->pid, SIGKILL);
		fail_msg("the listener never subscribed (broker stats)");
	}
	h_disconnect(x.c);
}

static void test_listen_publish(void **state)
{
	struct harness *h = *state;
	struct proc l, pub;
	char lines[8][1024], pat[64];

	const char *largv[] = { "", "listen", "--socket", h->sock, "--json", "--count", "2",
				"KEY", NULL };
	spawn(&l, largv);
	wait_subscribed(h, &l);
	const char *pargv[] = { "", "publish", "--socket", h->sock, "KEY", "a", "b", NULL };
	assert_int_equal(run(pargv, &pub), 0);
	assert_int_equal(finish(&l, H_TIMEOUT_MS), 0);

	int n = lines_of(l.buf, lines, 8);
	if (n != 2)
		fail_msg("expected 2 lines from listen, got %d:\n%s", n, l.buf);
	for (int i = 0; i < 2; i++) {
		expect_in(lines[i], "\"batch_count\":2");
		snprintf(pat, sizeof(pat), "\"batch_index\":%d", i);
		expect_in(lines[i], pat);
		snprintf(pat, sizeof(pat), "\"seq\":%d", i + 1);
		expect_in(lines[i], pat);
		expect_in(lines[i], "\"event\":1");         /* publish defaults to --event 1 */
		expect_in(lines[i], "\"key\":\"KEY\"");
		expect_in(lines[i], i == 0 ? "\"data\":\"a\"" : "\"data\":\"b\"");
		expect_in(lines[i], "\"batch_id\":1");
		expect_in(lines[i], "\"sender_pid\":");
		assert_true(lines[i][0] == '{');
		assert_true(lines[i][strlen(lines[i]) - 1] == '}');
	}
	/* both from the same publisher process */
	const char *p0 = strstr(lines[0], "\"sender_pid\":");
	const char *p1 = strstr(lines[1], "\"sender_pid\":");
	assert_int_equal(atoi(p0 + 13), atoi(p1 + 13));
	assert_int_equal(atoi(p0 + 13), pub.pid);
}

/* Bytes that are not UTF-8 come out as null plus base64 (rule 14). */
static void test_listen_binary(void **state)
{
	struct harness *h = *state;
	struct proc l;
	char lines[4][1024];

	const char *largv[] = { "", "listen", "--socket", h->sock, "--json", "--count", "1",
				NULL };   /* no KEY: every key */
	spawn(&l, largv);
	wait_subscribed(h, &l);
	shn_client *c = h_connect(h);
	shn_notification n = { .event = 0x4, .key = "\xff\xfe", .key_len = 2,
			       .data = "\x80\x01", .data_len = 2 };
	assert_int_equal(shn_notify(c, &n, 1, 0), 0);
	assert_int_equal(finish(&l, H_TIMEOUT_MS), 0);
	h_disconnect(c);
	assert_int_equal(lines_of(l.buf, lines, 4), 1);
	expect_in(lines[0], "\"key\":null");
	expect_in(lines[0], "\"key_base64\":\"//4=\"");
	expect_in(lines[0], "\"data\":null");
	expect_in(lines[0], "\"data_base64\":\"gAE=\"");
	expect_in(lines[0], "\"event\":4");
	expect_in(lines[0], "\"batch_count\":1");
}

/* --event takes decimal or 0x hex; listen --events filters. */
static void test_events_option(void **state)
{
	struct harness *h = *state;
	struct proc l, pub;
	char lines[4][1024];

	const char *largv[] = { "", "listen", "--socket", h->sock, "--json", "--events", "0x6",
				"--count", "2", "E", NULL };
	spawn(&l, largv);
	wait_subscribed(h, &l);
	const char *p1[] = { "", "publish", "--socket", h->sock, "--event", "0x1", "E", "no",
			     NULL };
	const char *p2[] = { "", "publish", "--socket", h->sock, "--event", "2", "E", "yes2",
			     NULL };
	const char *p3[] = { "", "publish", "--socket", h->sock, "--event", "0x4", "E", "yes4",
			     NULL };
	assert_int_equal(run(p1, &pub), 0);
	assert_int_equal(run(p2, &pub), 0);
	assert_int_equal(run(p3, &pub), 0);
	assert_int_equal(finish(&l, H_TIMEOUT_MS), 0);
	assert_int_equal(lines_of(l.buf, lines, 4), 2);
	expect_in(lines[0], "\"data\":\"yes2\"");
	expect_in(lines[0], "\"event\":2");
	expect_in(lines[1], "\"data\":\"yes4\"");
	expect_in(lines[1], "\"event\":4");
}

static void test_bad_arguments(void **state)
{
	struct harness *h = *state;
	struct proc p;
	const char *const bad[][12] = {
		{ "", "no-such-command", NULL },
		{ "", "listen", "--socket", h->sock, "--no-such-option", "K", NULL },
		{ "", "listen", "--socket", h->sock, "--count", NULL },
		{ "", "listen", "--socket", h->sock, "--count", "many", "K", NULL },
		{ "", "listen", "--socket", h->sock, "--events", "0", "K", NULL },
		{ "", "publish", "--socket", h->sock, NULL },
		{ "", "publish", "--socket", h->sock, "--event", "0", "K", "d", NULL },
		{ "", "publish", "--socket", h->sock, "--event", "zz", "K", "d", NULL },
		{ "", "publish", "--socket", h->sock, "--event", "0x10000000", "K", "d", NULL },
		{ "", "publish", "--socket", h->sock, "--bogus", "K", "d", NULL },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int st = run(bad[i], &p);
		if (st != 2) {
			char cmd[256] = "";
			for (int k = 1; bad[i][k]; k++) {
				strncat(cmd, bad[i][k], sizeof(cmd) - strlen(cmd) - 2);
				strncat(cmd, " ", sizeof(cmd) - strlen(cmd) - 1);
			}
			fail_msg("shmnotify %s: exit %d, expected 2", cmd, st);
		}
	}
	/* a key over 256 bytes is a bad argument too */
	char longkey[300];
	memset(longkey, 'k', sizeof(longkey) - 1);
	longkey[sizeof(longkey) - 1] = '\0';
	const char *lk[] = { "", "publish", "--socket", h->sock, longkey, "d", NULL };
	assert_int_equal(run(lk, &p), 2);
	/* no broker there: a runtime error, 1 */
	char nosock[400];
	snprintf(nosock, sizeof(nosock), "%s/nobody.sock", h->dir);
	const char *nb[] = { "", "publish", "--socket", nosock, "K", "d", NULL };
	assert_int_equal(run(nb, &p), 1);
	/* --help is not an error */
	const char *hp[] = { "", "--help", NULL };
	assert_int_equal(run(hp, &p), 0);
	assert_true(p.len > 0);
}

/* --socket naming a regular file or a directory: every command says what
 * the path is (connect(2) only says ECONNREFUSED, which read as a stale
 * socket and sent the user to start a broker there, which refuses a path
 * that is not a socket); an empty --socket is a usage error, not the
 * default path. */
static void test_not_a_socket(void **state)
{
	struct harness *h = *state;
	char file[400], dir[400], want[512];
	struct proc p;
	int fd;

	snprintf(file, sizeof(file), "%s/plain-file", h->dir);
	snprintf(dir, sizeof(dir), "%s/a-directory", h->dir);
	fd = open(file, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(mkdir(dir, 0700), 0);
	const struct {
		const char *path, *kind;
	} paths[] = { { file, "a regular file" }, { dir, "a directory" }, { "", NULL } };
	for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
		const char *const cmds[][10] = {
			{ "", "publish", "--socket", paths[i].path, "K", "d", NULL },
			{ "", "listen", "--socket", paths[i].path, "--count", "1", "--timeout", "100",
			  "K", NULL },
			{ "", "monitor", "--socket", paths[i].path, "--timeout", "100", NULL },
			{ "", "stats", "--socket", paths[i].path, NULL },
			{ "", "doctor", "--socket", paths[i].path, NULL },
		};
		for (size_t c = 0; c < sizeof(cmds) / sizeof(cmds[0]); c++) {
			int st = run_both(cmds[c], &p);

			if (paths[i].kind == NULL) {
				if (st != 2 || strstr(p.buf, "--socket: an empty path") == NULL)
					fail_msg("shmnotify %s --socket '': exit %d, expected 2 and "
						 "'an empty path'; said:\n%s", cmds[c][1], st, p.buf);
				continue;
			}
			/* doctor's line: "PATH exists but is KIND, not a socket" */
			snprintf(want, sizeof(want), "%s%s%s, not a socket", paths[i].path,
				 strcmp(cmds[c][1], "doctor") == 0 ? " exists but is " : ": it is ",
				 paths[i].kind);
			if (st != 1 || strstr(p.buf, want) == NULL || strstr(p.buf, "start it with"))
				fail_msg("shmnotify %s --socket %s: exit %d, expected 1 and \"%s\"; "
					 "said:\n%s", cmds[c][1], paths[i].path, st, want, p.buf);
		}
	}
	unlink(file);
	rmdir(dir);
}

int main(int argc, char **argv)
{
	h_parse_args(argc, argv);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_listen_publish, h_setup, h_teardown),
		cmocka_unit_test_setup_teardown(test_listen_binary, h_setup, h_teardown),
		cmocka_unit_test_setup_teardown(test_events_option, h_setup, h_teardown),
		cmocka_unit_test_setup_teardown(test_bad_arguments, h_setup, h_teardown),
		cmocka_unit_test_setup_teardown(test_not_a_socket, h_setup, h_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
