/* SPDX-License-Identifier: MIT */
/*
 * test_acl.c - access rules per key prefix, tried with a
 * second uid.  A broker whose [socket] mode lets every user connect, and
 * whose [acl "PREFIX"] rules protect "protected/", runs as root; a small
 * client (acl_client, copied into the test's directory) runs under
 * setpriv --reuid/--regid as uid 65534 (not allowed), uid 1000 (allowed by
 * uid) and uid 65534 with supplementary group 4242 (allowed to subscribe
 * by gid).  A uid the rules do not allow can neither subscribe to nor
 * publish on a protected key, and gets -EACCES (exit status 13 here); an
 * allowed one can.  A batch written past the library's check is dropped by
 * the broker and counted.  Without [socket] the broker still refuses other
 * users even where the socket file was loosened by hand.  A prefix
 * subscription needs subscribe permission under the rule governing the
 * prefix and under every rule whose prefix starts with it
 * (test_prefix_rules).
 *
 * Needs root (setpriv) and util-linux: otherwise exit status 77 (skipped).
 */
#define _GNU_SOURCE
#include "harness.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

#ifndef ACL_CLIENT_PATH
#error "ACL_CLIENT_PATH (the acl_client helper) must be defined by the build"
#endif

static const char *setpriv_path;

static const char acl_conf[] =
	"[socket]\n"
	"mode = 0666\n"
	"[acl \"protected/\"]\n"
	"publish = uid:1000\n"
	"subscribe = uid:1000, gid:4242\n"
	"[acl \"protected/public-\"]   ; longest prefix wins\n"
	"publish = *\n"
	"subscribe = *\n";

struct env {
	struct harness h;
	char client[400];   /* the helper's copy in the test directory */
};

static struct env the_env;

static void copy_file(const char *from, const char *to)
{
	char buf[65536];
	ssize_t n;
	int in = open(from, O_RDONLY | O_CLOEXEC);
	int out = open(to, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0755);

	assert_true(in >= 0);
	assert_true(out >= 0);
	while ((n = read(in, buf, sizeof(buf))) > 0)
		assert_int_equal(write(out, buf, (size_t)n), n);
	assert_int_equal(n, 0);
	close(in);
	assert_int_equal(fchmod(out, 0755), 0);
	close(out);
}

static void start(struct env *e, const char *config)
{
	char path[400];
	const char *extra[] = { "--config", path, NULL };

	h_prepare(&e->h);
	/* other uids must reach the socket and the helper: search only */
	assert_int_equal(chmod(e->h.dir, 0711), 0);
	snprintf(path, sizeof(path), "%s/shmnotifyd.conf", e->h.dir);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(config, f);
	assert_int_equal(fclose(f), 0);
	snprintf(e->client, sizeof(e->client), "%s/acl_client", e->h.dir);
	copy_file(ACL_CLIENT_PATH, e->client);
	h_launch(&e->h, extra);
}

static int setup(void **state)
{
	start(&the_env, acl_conf);
	*state = &the_env;
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	h_kill_children();
	h_disconnect_all();
	h_stop(&the_env.h);
	return 0;
}

/* Run the helper as uid/gid (groups: NULL for none, else "4242"), with
 * cmd and keys; returns its exit status; its stdout goes to out (may be
 * NULL).  With ready set, returns as soon as it printed "ready" and leaves
 * *pid running (read the rest from *outfd). */
static int run_as(const struct env *e, unsigned uid, const char *groups, const char *cmd,
		  const char *key1, const char *key2, pid_t *pid, int *outfd)
{
	char reuid[32], regid[32], grp[64];
	const char *argv[16];
	int argc = 0, fd[2], st;

	snprintf(reuid, sizeof(reuid), "--reuid=%u", uid);
	snprintf(regid, sizeof(regid), "--regid=%u", uid);
	argv[argc++] = "setpriv";
	argv[argc++] = reuid;
	argv[argc++] = regid;
	if (groups != NULL) {
		snprintf(grp, sizeof(grp), "--groups=%s", groups);
		argv[argc++] = grp;
	} else {
		argv[argc++] = "--clear-groups";
	}
	argv[argc++] = e->client;
	argv[argc++] = e->h.sock;
	argv[argc++] = cmd;
	argv[argc++] = key1;
	if (key2 != NULL)
		argv[argc++] = key2;
	argv[argc] = NULL;
	assert_int_equal(pipe2(fd, O_CLOEXEC), 0);
	fflush(NULL);
	pid_t p = fork();
	assert_true(p >= 0);
	if (p == 0) {
		dup2(fd[1], 1);
		execv(setpriv_path, (char *const *)argv);
		_exit(127);
	}
	close(fd[1]);
	if (pid != NULL) {
		char line[64] = { 0 };
		ssize_t n = 0;
		/* wait for "ready" */
		for (int64_t end = h_now_ms() + H_TIMEOUT_MS; n < 6 && h_now_ms() < end;) {
			ssize_t r = read(fd[0], line + n, sizeof(line) - 1 - (size_t)n);
			if (r <= 0)
				break;
			n += r;
		}
		if (strncmp(line, "ready\n", 6) != 0) {
			kill(p, SIGKILL);
			waitpid(p, &st, 0);
			fail_msg("acl_client %s %s as uid %u did not get ready (exit 0x%x)", cmd, key1,
				 uid, st);
		}
		*pid = p;
		*outfd = fd[0];
		return 0;
	}
	close(fd[0]);
	int64_t end = h_now_ms() + H_TIMEOUT_MS;
	while (waitpid(p, &st, WNOHANG) != p) {
		if (h_now_ms() > end) {
			kill(p, SIGKILL);
			waitpid(p, &st, 0);
			fail_msg("acl_client %s %s as uid %u hung", cmd, key1, uid);
		}
		h_sleep_ms(2);
	}
	assert_true(WIFEXITED(st));
	if (WEXITSTATUS(st) == 127)
		fail_msg("cannot run %s under %s", e->client, setpriv_path);
	return WEXITSTATUS(st);
}

static int as(const struct env *e, unsigned uid, const char *groups, const char *cmd,
	      const char *key)
{
	return run_as(e, uid, groups, cmd, key, NULL, NULL, NULL);
}

static long long stat_of(shn_client *c, const char *name)
{
	char *js = h_stats(c), key[96], *p;
	long long v = -1;

	snprintf(key, sizeof(key), "\"%s\":", name);
	p = strstr(js, key);
	if (p != NULL)
		v = strtoll(p + strlen(key), NULL, 10);
	free(js);
	if (v < 0)
		fail_msg("stats has no \"%s\"", name);
	return v;
}

static bool log_has(const struct harness *h, const char *text)
{
	static char buf[1 << 16];
	int fd = open(h->log, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return false;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	buf[n > 0 ? n : 0] = '\0';
	return strstr(buf, text) != NULL;
}

/* One notification from uid on port p, with key. */
static void expect_from(shn_port *p, const char *key, uint32_t uid)
{
	shn_notification out[4];
	size_t klen = strlen(key);

	assert_int_equal(h_get(p, out, 4), 1);
	assert_int_equal(out[0].key_len, klen);
	assert_memory_equal(out[0].key, key, klen);
	assert_int_equal(out[0].sender_uid, uid);
	assert_true(out[0].sender_pid > 0);
}

/* uid 65534: in no list of "protected/" */
static void test_denied_uid(void **state)
{
	struct env *e = *state;
	shn_conn conn;
	shn_notification out[4];

	shn_client *root = h_connect(&e->h);
	shn_port *all = h_port_sub(root, 0, NULL, 0, SHN_EV_ALL, &conn);

	assert_int_equal(as(e, 65534, NULL, "sub", "protected/x"), EACCES);
	assert_int_equal(as(e, 65534, NULL, "sub", "*"), EACCES);   /* any key covers protected/ */
	assert_int_equal(as(e, 65534, NULL, "pub", "protected/x"), EACCES);
	assert_int_equal(shn_port_get(all, out, 4, 200), -ETIMEDOUT);   /* nothing went out */
	assert_int_equal(stat_of(root, "acl_subscribe_denied"), 2);
	assert_int_equal(stat_of(root, "acl_publish_denied"), 1);
	assert_true(log_has(&e->h, "subscribe to \"protected/x\" refused: [acl \"protected/\"]"));
	assert_true(log_has(&e->h, "subscribe to every key refused"));
	assert_true(log_has(&e->h, "may not publish \"protected/x\": [acl \"protected/\"]"));

	/* the longer prefix opens part of it; keys no rule covers are open */
	assert_int_equal(as(e, 65534, NULL, "pub", "protected/public-x"), 0);
	expect_from(all, "protected/public-x", 65534);
	assert_int_equal(as(e, 65534, NULL, "sub", "protected/public-x"), 0);
	assert_int_equal(as(e, 65534, NULL, "pub", "open/x"), 0);
	expect_from(all, "open/x", 65534);
	assert_int_equal(as(e, 65534, NULL, "sub", "open/x"), 0);
	assert_int_equal(stat_of(root, "acl_subscribe_denied"), 2);
	assert_int_equal(stat_of(root, "refused"), 0);
	h_disconnect(root);
}

/* uid 1000 may publish and subscribe under "protected/" */
static void test_allowed_uid(void **state)
{
	struct env *e = *state;
	shn_conn conn;
	pid_t pid;
	int fd, st;

	shn_client *root = h_connect(&e->h);
	shn_port *all = h_port_sub(root, 0, NULL, 0, SHN_EV_ALL, &conn);

	assert_int_equal(as(e, 1000, NULL, "pub", "protected/x"), 0);
	expect_from(all, "protected/x", 1000);
	assert_int_equal(as(e, 1000, NULL, "sub", "*"), 0);   /* allowed under every rule */

	/* it receives what root publishes on a protected key */
	run_as(e, 1000, NULL, "subrecv", "protected/y", NULL, &pid, &fd);
	shn_notification n = { .event = 1, .key = "protected/y", .key_len = 11, .data = "hi",
			       .data_len = 2 };
	assert_int_equal(shn_notify(root, &n, 1, 0), 0);
	char line[128] = { 0 };
	ssize_t got = 0, r;
	while ((r = read(fd, line + got, sizeof(line) - 1 - (size_t)got)) > 0)
		got += r;
	close(fd);
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
	assert_string_equal(line, "got hi uid 0\n");
	assert_int_equal(stat_of(root, "acl_subscribe_denied"), 0);
	assert_int_equal(stat_of(root, "acl_publish_denied"), 0);
	h_disconnect(root);
}

/* gid 4242 (a supplementary group) may subscribe under "protected/", not
 * publish */
static void test_allowed_gid(void **state)
{
	struct env *e = *state;

	assert_int_equal(as(e, 65534, "4242", "sub", "protected/x"), 0);
	assert_int_equal(as(e, 65534, "4242", "pub", "protected/x"), EACCES);
	assert_int_equal(as(e, 65534, NULL, "sub", "protected/x"), EACCES);
}

/* A client that writes its ring by hand, past the library's PUB_CHECK:
 * the broker drops the refused batch whole, counts it, and goes on with
 * the client's next batch (not a ring error). */
static void test_broker_enforces(void **state)
{
	struct env *e = *state;
	shn_conn conn;
	shn_notification out[4];

	shn_client *root = h_connect(&e->h);
	shn_port *all = h_port_sub(root, 0, NULL, 0, SHN_EV_ALL, &conn);

	assert_int_equal(run_as(e, 65534, NULL, "rawpub", "protected/x", "open/y", NULL, NULL), 0);
	expect_from(all, "open/y", 65534);
	assert_int_equal(shn_port_get(all, out, 4, 200), -ETIMEDOUT);
	assert_int_equal(stat_of(root, "acl_publish_denied"), 1);
	assert_int_equal(stat_of(root, "ring_errors"), 0);
	assert_true(log_has(&e->h, "refused: may not publish key \"protected/x\""));
	/* an allowed uid's raw batches all go through */
	assert_int_equal(run_as(e, 1000, NULL, "rawpub", "protected/x", "open/y", NULL, NULL), 0);
	expect_from(all, "protected/x", 1000);
	expect_from(all, "open/y", 1000);
	h_disconnect(root);
}

/* Without [socket], other users stay out even if the file's mode was
 * loosened by hand: only the broker's uid and root (counted in refused). */
static void test_private_socket(void **state)
{
	struct env e;
	(void)state;

	start(&e, "[acl \"protected/\"]\npublish = *\nsubscribe = *\n");
	assert_int_equal(as(&e, 65534, NULL, "pub", "open/x"), EACCES);   /* 0600 */
	assert_int_equal(chmod(e.h.sock, 0666), 0);
	assert_int_not_equal(as(&e, 65534, NULL, "pub", "open/x"), 0);
	shn_client *root = h_connect(&e.h);
	assert_int_equal(stat_of(root, "refused"), 1);
	h_disconnect(root);
	assert_true(log_has(&e.h, "refusing pid"));
	h_stop(&e.h);
}

/* A prefix filter is allowed only where every key under it is: the rule
 * governing the prefix (its longest rule prefix) and every rule whose
 * prefix starts with it must let the client subscribe; a refusal names
 * the rule that refused. */
static const char prefix_conf[] =
	"[socket]\n"
	"mode = 0666\n"
	"[acl \"protected/\"]\n"
	"publish = *\n"
	"subscribe = uid:1000, gid:4242\n"
	"[acl \"protected/public-\"]\n"
	"publish = *\n"
	"subscribe = *\n"
	"[acl \"open/secret/\"]\n"
	"publish = *\n"
	"subscribe = uid:1000\n";

static void test_prefix_rules(void **state)
{
	struct env e;
	(void)state;

	start(&e, prefix_conf);
	/* uid 65534: in no subscribe list but the "*" of protected/public- */
	assert_int_equal(as(&e, 65534, NULL, "subprefix", "protected/"), EACCES);  /* governing */
	assert_int_equal(as(&e, 65534, NULL, "subprefix", "protected/x"), EACCES);
	assert_int_equal(as(&e, 65534, NULL, "subprefix", "prot"), EACCES);   /* a rule under it */
	assert_int_equal(as(&e, 65534, NULL, "subprefix", "open/"), EACCES);  /* open/secret/ */
	assert_int_equal(as(&e, 65534, NULL, "subprefix", "o"), EACCES);
	assert_int_equal(as(&e, 65534, NULL, "subprefix", "open/secret/a"), EACCES);
	assert_int_equal(as(&e, 65534, NULL, "subprefix", "protected/public-"), 0);
	assert_int_equal(as(&e, 65534, NULL, "subprefix", "protected/public-x"), 0);
	assert_int_equal(as(&e, 65534, NULL, "subprefix", "open/other"), 0);
	assert_int_equal(as(&e, 65534, NULL, "subprefix", "q"), 0);   /* no rule at or under it */
	/* an exact key under open/ is governed by its own rule only */
	assert_int_equal(as(&e, 65534, NULL, "sub", "open/"), 0);
	/* gid 4242 may subscribe under protected/, not under open/secret/ */
	assert_int_equal(as(&e, 65534, "4242", "subprefix", "protected/"), 0);
	assert_int_equal(as(&e, 65534, "4242", "subprefix", "p"), 0);
	assert_int_equal(as(&e, 65534, "4242", "subprefix", "open/"), EACCES);
	/* uid 1000 is in every list */
	assert_int_equal(as(&e, 1000, NULL, "subprefix", "o"), 0);
	assert_int_equal(as(&e, 1000, NULL, "subprefix", "p"), 0);

	shn_client *root = h_connect(&e.h);
	assert_int_equal(stat_of(root, "acl_subscribe_denied"), 7);
	h_disconnect(root);
	assert_true(log_has(&e.h, "subscribe to the keys under prefix \"protected/\" refused: "
			    "[acl \"protected/\"]"));
	assert_true(log_has(&e.h, "subscribe to the keys under prefix \"prot\" refused: "
			    "[acl \"protected/\"]"));
	assert_true(log_has(&e.h, "subscribe to the keys under prefix \"open/\" refused: "
			    "[acl \"open/secret/\"]"));
	h_stop(&e.h);
}

static const char *find_setpriv(void)
{
	static const char *const where[] = { "/usr/bin/setpriv", "/bin/setpriv", NULL };

	for (int i = 0; where[i] != NULL; i++)
		if (access(where[i], X_OK) == 0)
			return where[i];
	return NULL;
}

int main(int argc, char **argv)
{
	h_parse_args(argc, argv);
	if (geteuid() != 0) {
		fprintf(stderr, "test_acl: needs root (setpriv --reuid): skipped\n");
		return 77;
	}
	setpriv_path = find_setpriv();
	if (setpriv_path == NULL) {
		fprintf(stderr, "test_acl: setpriv (util-linux) not found: skipped\n");
		return 77;
	}
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_denied_uid, setup, teardown),
		cmocka_unit_test_setup_teardown(test_allowed_uid, setup, teardown),
		cmocka_unit_test_setup_teardown(test_allowed_gid, setup, teardown),
		cmocka_unit_test_setup_teardown(test_broker_enforces, setup, teardown),
		cmocka_unit_test(test_private_socket),
		cmocka_unit_test(test_prefix_rules),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
