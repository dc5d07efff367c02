/* SPDX-License-Identifier: MIT */
/*
 * test_limits.c - the broker's [limits] (docs/config.md)
 * against a real broker started with a configuration file.  Each cap gives
 * its documented negative errno, a log line and a stats counter, and the
 * broker goes on serving: ports and subscriptions per client (-ENOSPC),
 * ring bytes per client (-ENOSPC), key and payload size (-EMSGSIZE; a
 * record beyond them written past the library is a ring error), clients
 * (-EUSERS).  Also the configuration file itself: --print-config, and a bad
 * file gives FILE:LINE: what is wrong, exit status 2.
 */
#define _GNU_SOURCE
#include "harness.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "shm/proto.h"
#include "shm/ring.h"

#ifndef SHMNOTIFYD_BIN
#error "SHMNOTIFYD_BIN (the broker binary) must be defined by the build"
#endif

/* ---- helpers -------------------------------------------------------------- */

/* Start a broker in a fresh directory with config text as DIR/shmnotifyd.conf. */
static void start_with(struct harness *h, const char *config)
{
	char path[400];
	const char *extra[] = { "--config", path, NULL };

	h_prepare(h);
	snprintf(path, sizeof(path), "%s/shmnotifyd.conf", h->dir);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(config, f);
	assert_int_equal(fclose(f), 0);
	h_launch(h, extra);
}

/* The value of "name":N in the stats document (the first occurrence). */
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
	char buf[65536];
	int fd = open(h->log, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return false;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return false;
	buf[n] = '\0';
	return strstr(buf, text) != NULL;
}

struct log_wait {
	const struct harness *h;
	const char *text;
};

static bool log_ready(void *ctx)
{
	struct log_wait *w = ctx;

	return log_has(w->h, w->text);
}

static void expect_log(const struct harness *h, const char *text)
{
	struct log_wait w = { h, text };

	if (!h_poll_until(log_ready, &w, H_TIMEOUT_MS)) {
		h_dump_log(h);
		fail_msg("the broker's log does not say \"%s\"", text);
	}
}

static int open_port(shn_client *c, uint32_t cap, shn_port **p)
{
	shn_port_options o = { .capacity = cap, .overflow = SHN_OVERFLOW_DROP };

	*p = NULL;
	return shn_port_open(c, &o, p);
}

static void hdr_init(struct shn_msg_hdr *h, uint16_t type, uint32_t id)
{
	memset(h, 0, sizeof(*h));
	h->magic = SHN_PROTO_MAGIC;
	h->version = SHN_PROTO_VERSION;
	h->type = type;
	h->id = id;
}

/* A raw HELLO asking pub_capacity: the reply's status; on success *r and
 * fds[] are filled (close them). */
static int raw_hello(const struct harness *h, uint32_t pub_capacity, int *sock,
		     struct shn_msg_hello_reply *rep, int fds[SHN_HELLO_NFDS])
{
	struct shn_msg_hello req;
	int nfds = SHN_HELLO_NFDS;

	*sock = h_raw_connect(h);
	memset(&req, 0, sizeof(req));
	hdr_init(&req.hdr, SHN_MSG_HELLO, 1);
	req.pub_capacity = pub_capacity;
	assert_int_equal(send(*sock, &req, sizeof(req), MSG_NOSIGNAL), (ssize_t)sizeof(req));
	memset(rep, 0, sizeof(*rep));
	ssize_t n = h_raw_recv(*sock, rep, sizeof(*rep), fds, &nfds, H_TIMEOUT_MS);
	assert_true(n >= (ssize_t)sizeof(struct shn_msg_hdr));
	assert_int_equal(rep->hdr.type, SHN_MSG_HELLO);
	if (rep->hdr.status == 0)
		assert_int_equal(nfds, SHN_HELLO_NFDS);
	return rep->hdr.status;
}

/* ---- ports, subscriptions, ring bytes ------------------------------------ */

static const char caps_conf[] =
	"# test_limits: small caps\n"
	"[broker]\n"
	"default-capacity = 4K\n"
	"max-capacity = 64K\n"
	"[limits]\n"
	"max-ports = 3\n"
	"max-subscriptions = 4\n"
	"max-ring-bytes = 32K\n";

static void test_ports_subs_ring_bytes(void **state)
{
	struct harness h;
	shn_port *p[4], *extra;
	shn_conn conn[6];
	(void)state;

	start_with(&h, caps_conf);
	shn_client *c = h_connect(&h);           /* its publish ring: 4K */

	/* max-ports = 3 */
	for (int i = 0; i < 3; i++)
		assert_int_equal(open_port(c, 4096, &p[i]), 0);
	assert_int_equal(open_port(c, 4096, &extra), -ENOSPC);
	assert_null(extra);
	assert_int_equal(stat_of(c, "limit_ports"), 1);
	expect_log(&h, "port open refused: too many ports (limit 3");

	/* max-subscriptions = 4, over all its ports */
	assert_int_equal(shn_subscribe(p[0], "a", 1, SHN_EV_ALL, 0, &conn[0]), 0);
	assert_int_equal(shn_subscribe(p[0], "b", 1, SHN_EV_ALL, 0, &conn[1]), 0);
	assert_int_equal(shn_subscribe(p[1], "c", 1, SHN_EV_ALL, 0, &conn[2]), 0);
	assert_int_equal(shn_subscribe(p[2], NULL, 0, SHN_EV_ALL, 0, &conn[3]), 0);
	assert_int_equal(shn_subscribe(p[2], "e", 1, SHN_EV_ALL, 0, &conn[4]), -ENOSPC);
	assert_int_equal(stat_of(c, "limit_subscriptions"), 1);
	expect_log(&h, "subscribe refused: too many subscriptions (limit 4");
	/* one ends: room for one more */
	assert_int_equal(shn_unsubscribe(c, conn[1]), 0);
	assert_int_equal(shn_subscribe(p[2], "e", 1, SHN_EV_ALL, 0, &conn[4]), 0);

	/* the filters still work after the refusals */
	shn_notification n = { .event = 1, .key = "a", .key_len = 1, .data = "x", .data_len = 1 };
	shn_notification out[4];
	assert_int_equal(shn_notify(c, &n, 1, 0), 0);
	assert_int_equal(h_get(p[0], out, 4), 1);      /* the end of "b" first */
	assert_int_equal(out[0].event, SHN_EV_HANDLE_CLOSE);
	assert_int_equal(out[0].conn, conn[1]);
	assert_int_equal(h_get(p[0], out, 4), 1);
	assert_int_equal(out[0].event, 1);
	assert_int_equal(out[0].conn, conn[0]);

	/* max-ring-bytes = 32K: publish 4K + ports 4K + 4K; a 32K port would
	 * make 44K */
	assert_int_equal(shn_port_close(p[1]), 0);
	assert_int_equal(open_port(c, 32768, &extra), -ENOSPC);
	assert_int_equal(stat_of(c, "limit_ring_bytes"), 1);
	expect_log(&h, "its rings would exceed max-ring-bytes");
	assert_int_equal(open_port(c, 16384, &p[1]), 0);   /* 28K: fits */
	assert_int_equal(shn_port_close(p[1]), 0);

	/* a publish ring alone above max-ring-bytes: HELLO -ENOSPC */
	int sock, fds[SHN_HELLO_NFDS];
	struct shn_msg_hello_reply rep;
	assert_int_equal(raw_hello(&h, 65536, &sock, &rep, fds), -ENOSPC);
	close(sock);
	assert_int_equal(stat_of(c, "limit_ring_bytes"), 2);

	/* the limits are in the stats document too */
	char *js = h_stats(c);
	assert_non_null(strstr(js, "\"limits\":{\"max_clients\":4096,\"max_ports\":3,"
				   "\"max_subscriptions\":4,\"max_ring_bytes\":32768,"
				   "\"max_key_size\":256,\"max_data_size\":65536}"));
	free(js);
	h_disconnect(c);
	h_stop(&h);
}

/* ---- key and payload size ------------------------------------------------ */

static const char sizes_conf[] =
	"[limits]\n"
	"max-key-size = 16\n"
	"max-data-size = 100\n";

/* Write one batch record (one note) straight into a raw client's publish
 * ring, bypassing the library's checks, and ring the doorbell. */
static void raw_publish(uint8_t *m, int doorbell, uint64_t *tail, const char *key,
			uint32_t data_len)
{
	struct shn_ring_prod *prod = (void *)(m + SHN_PUB_PROD_OFF);
	uint8_t *data = m + SHN_RING_HDR_SIZE + (*tail & (prod->capacity - 1));
	uint16_t klen = (uint16_t)strlen(key);
	uint32_t len = (uint32_t)sizeof(struct shn_pub_batch) + shn_pub_note_size(klen, data_len);
	struct shn_pub_batch *b = (void *)data;
	struct shn_pub_note *pn = (void *)(b + 1);
	uint64_t one = 1;

	memset(data, 0, len);
	b->h = (struct shn_rec_hdr){ .len = len, .type = SHN_REC_BATCH };
	b->count = 1;
	b->batch_id = 1 + *tail;
	*pn = (struct shn_pub_note){ .event = 1, .key_len = klen, .data_len = data_len };
	memcpy(pn + 1, key, klen);
	*tail += len;
	atomic_store(&prod->tail, *tail);
	assert_int_equal(write(doorbell, &one, 8), 8);
}

static void test_key_and_data_size(void **state)
{
	struct harness h;
	static uint8_t big[101];
	shn_notification out[4];
	shn_conn conn, c2;
	(void)state;

	start_with(&h, sizes_conf);
	shn_client *c = h_connect(&h);
	shn_port *p;
	assert_int_equal(open_port(c, 0, &p), 0);

	/* subscribe: a key above max-key-size */
	assert_int_equal(shn_subscribe(p, "0123456789abcdefX", 17, SHN_EV_ALL, 0, &conn), -EMSGSIZE);
	assert_int_equal(stat_of(c, "limit_key_size"), 1);
	expect_log(&h, "subscribe refused: key longer than max-key-size (limit 16");
	assert_int_equal(shn_subscribe(p, "0123456789abcdef", 16, SHN_EV_ALL, 0, &conn), 0);
	assert_int_equal(shn_subscribe(p, NULL, 0, SHN_EV_ALL, 0, &c2), 0);

	/* publish: the library knows the broker's maxima and refuses first */
	shn_notification n = { .event = 1, .key = "0123456789abcdefX", .key_len = 17 };
	assert_int_equal(shn_notify(c, &n, 1, 0), -EMSGSIZE);
	n = (shn_notification){ .event = 1, .key = "k", .key_len = 1, .data = big, .data_len = 101 };
	assert_int_equal(shn_notify(c, &n, 1, 0), -EMSGSIZE);
	n.data_len = 100;
	assert_int_equal(shn_notify(c, &n, 1, 0), 0);
	assert_int_equal(h_get(p, out, 4), 1);
	assert_int_equal(out[0].data_len, 100);
	n = (shn_notification){ .event = 1, .key = "0123456789abcdef", .key_len = 16 };
	assert_int_equal(shn_notify(c, &n, 1, 0), 0);
	assert_int_equal(h_get(p, out, 4), 1);
	assert_int_equal(out[0].key_len, 16);
	assert_int_equal(out[0].conn, conn);

	/* past the library: a record with a 17-byte key, then one with 101
	 * bytes of payload, each from its own raw client: ring errors */
	for (int round = 0; round < 2; round++) {
		int sock, fds[SHN_HELLO_NFDS];
		struct shn_msg_hello_reply rep;
		uint64_t tail = 0;

		assert_int_equal(raw_hello(&h, 0, &sock, &rep, fds), 0);
		size_t size = SHN_RING_HDR_SIZE + (size_t)rep.pub_capacity;
		uint8_t *m = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED,
				  fds[SHN_HELLO_FD_PUB], 0);
		assert_true(m != MAP_FAILED);
		if (round == 0)
			raw_publish(m, fds[SHN_HELLO_FD_DOORBELL], &tail, "0123456789abcdefX", 0);
		else
			raw_publish(m, fds[SHN_HELLO_FD_DOORBELL], &tail, "k", 101);
		/* the broker cuts it off: its socket reaches EOF */
		char buf[64];
		assert_int_equal(h_raw_recv(sock, buf, sizeof(buf), NULL, NULL, H_TIMEOUT_MS), 0);
		munmap(m, size);
		for (int i = 0; i < SHN_HELLO_NFDS; i++)
			close(fds[i]);
		close(sock);
	}
	assert_int_equal(stat_of(c, "limit_key_size"), 2);
	assert_int_equal(stat_of(c, "limit_data_size"), 1);
	assert_int_equal(stat_of(c, "ring_errors"), 2);
	expect_log(&h, "published a key of 17 bytes, above max-key-size 16");
	expect_log(&h, "published a payload of 101 bytes, above max-data-size 100");
	/* nothing of theirs arrived; the broker serves the rest as before */
	assert_int_equal(shn_port_get(p, out, 4, 0), -ETIMEDOUT);
	n = (shn_notification){ .event = 1, .key = "k", .key_len = 1, .data = "ok", .data_len = 2 };
	assert_int_equal(shn_notify(c, &n, 1, 0), 0);
	assert_int_equal(h_get(p, out, 4), 1);
	assert_memory_equal(out[0].data, "ok", 2);
	h_disconnect(c);
	h_stop(&h);
}

/* ---- clients ------------------------------------------------------------- */

struct connect_try {
	const struct harness *h;
	shn_client *c;
};

static bool connects(void *ctx)
{
	struct connect_try *t = ctx;

	return shn_connect(t->h->sock, &t->c) == 0;
}

struct only_one {
	shn_client *c;
};

static bool alone(void *ctx)
{
	struct only_one *w = ctx;

	return stat_of(w->c, "clients") == 1;
}

static void test_max_clients(void **state)
{
	struct harness h;
	shn_client *x = NULL;
	(void)state;

	start_with(&h, "[limits]\nmax-clients = 2\n");
	shn_client *a = h_connect(&h);
	/* the harness's start-up connection is gone once the broker reaped it */
	struct only_one w = { a };
	assert_true(h_poll_until(alone, &w, H_TIMEOUT_MS));
	shn_client *b = h_connect(&h);
	assert_int_equal(shn_connect(h.sock, &x), -EUSERS);
	assert_null(x);
	assert_int_equal(shn_connect(h.sock, &x), -EUSERS);
	assert_int_equal(stat_of(a, "limit_clients"), 2);
	expect_log(&h, "connection refused: too many clients (limit 2");
	/* the two still work */
	shn_conn conn;
	shn_port *p = h_port_sub(a, 0, "k", 1, SHN_EV_ALL, &conn);
	shn_notification n = { .event = 1, .key = "k", .key_len = 1 }, out[2];
	assert_int_equal(shn_notify(b, &n, 1, 0), 0);
	assert_int_equal(h_get(p, out, 2), 1);
	/* one leaves: a newcomer is served once the broker reclaimed it */
	h_disconnect(b);
	struct connect_try t = { &h, NULL };
	assert_true(h_poll_until(connects, &t, H_TIMEOUT_MS));
	assert_int_equal(shn_notify(t.c, &n, 1, 0), 0);
	assert_int_equal(h_get(p, out, 2), 1);
	shn_disconnect(t.c);
	h_disconnect(a);
	h_stop(&h);
}

/* ---- the configuration file ---------------------------------------------- */

/* Run shmnotifyd with args; its exit status, stdout+stderr in out. */
static int run_broker(const char *const *args, char *out, size_t outlen)
{
	const char *argv[16];
	int argc = 0, fd[2], st;
	size_t got = 0;
	ssize_t n;

	argv[argc++] = "shmnotifyd";
	for (int i = 0; args[i] != NULL && argc < 15; i++)
		argv[argc++] = args[i];
	argv[argc] = NULL;
	assert_int_equal(pipe2(fd, O_CLOEXEC), 0);
	fflush(NULL);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		dup2(fd[1], 1);
		dup2(fd[1], 2);
		unsetenv("SHMNOTIFY_SOCKET");
		execv(SHMNOTIFYD_BIN, (char *const *)argv);
		_exit(127);
	}
	close(fd[1]);
	while (got + 1 < outlen && (n = read(fd[0], out + got, outlen - 1 - got)) > 0)
		got += (size_t)n;
	out[got] = '\0';
	close(fd[0]);
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st));
	return WEXITSTATUS(st);
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	fputs(text, f);
	assert_int_equal(fclose(f), 0);
}

static void test_config_file(void **state)
{
	struct harness h;
	char conf[400], sock[400], out[16384], want[600];
	(void)state;

	h_prepare(&h);
	snprintf(conf, sizeof(conf), "%s/c.conf", h.dir);
	snprintf(sock, sizeof(sock), "%s/sys.sock", h.dir);

	/* the defaults (docs/config.md) */
	const char *defaults[] = { "--socket", sock, "--print-config", NULL };
	assert_int_equal(run_broker(defaults, out, sizeof(out)), 0);
	for (const char *const *line = (const char *const[]){
		     "max-clients = 4096\n", "max-ports = 4096\n", "max-subscriptions = 65536\n",
		     "max-ring-bytes = 1G\n", "max-key-size = 256\n", "max-data-size = 65536\n",
		     "default-capacity = 1M\n", "max-capacity = 64M\n", "io = auto\n", NULL };
	     *line != NULL; line++)
		if (strstr(out, *line) == NULL)
			fail_msg("--print-config lacks \"%s\":\n%s", *line, out);

	/* a file: old bare keys as [broker], indented lines, every section */
	write_file(conf,
		   "io = epoll\n"
		   "[limits]\n"
		   "  max-ports = 7\n"
		   "  max-data-size = 1K   ; inline comment\n"
		   "[socket]\n"
		   "mode = 0660\n"
		   "[acl \"a/b\\\"c\\x01\"]\n"
		   "publish = uid:1000, gid:100\n"
		   "subscribe = *\n"
		   "[acl \"secret/\"]\n");
	const char *print[] = { "--socket", sock, "--config", conf, "--print-config", NULL };
	assert_int_equal(run_broker(print, out, sizeof(out)), 0);
	for (const char *const *line = (const char *const[]){
		     "io = epoll\n", "max-ports = 7\n", "max-data-size = 1024\n", "mode = 0660\n",
		     "[acl \"a/b\\\"c\\x01\"]\npublish = uid:1000, gid:100\nsubscribe = *\n",
		     "[acl \"secret/\"]\npublish =", NULL };
	     *line != NULL; line++)
		if (strstr(out, *line) == NULL)
			fail_msg("--print-config lacks \"%s\":\n%s", *line, out);
	snprintf(want, sizeof(want), "socket = %s\n", sock);
	assert_non_null(strstr(out, want));
	/* what it prints reads back the same */
	write_file(conf, out);
	char again[16384];
	assert_int_equal(run_broker(print, again, sizeof(again)), 0);
	assert_string_equal(strchr(again, '\n'), strchr(out, '\n'));

	/* bad files: FILE:LINE: what is wrong, exit status 2 */
	static const struct {
		const char *text;
		int line;
		const char *says;
	} bad[] = {
		{ "[limits]\nmax-ports = lots\n", 2, "max-ports 'lots'" },
		{ "[limts]\n", 1, "unknown section [limts]" },
		{ "[broker]\nfoo = 1\n", 2, "unknown key 'foo' in [broker]" },
		{ "[limits]\nmax-key-size = 300\n", 2, "max-key-size '300'" },
		{ "[limits]\nmax-data-size = 65537\n", 2, "max-data-size '65537'" },
		{ "\n[acl \"x]\n", 2, "no closing" },
		{ "[acl x]\n", 1, "double quotes" },
		{ "[acl \"x\"]\npublish = uid:abc\n", 2, "uid:abc" },
		{ "[acl \"x\"]\npublish = *\n[acl \"x\"]\n", 3, "same prefix" },
		{ "[acl \"x\"]\nread = *\n", 2, "unknown key 'read'" },
		{ "[limits]\nmax-ports = 1\nmax-ports = 2\n", 3, "set twice" },
		{ "[broker]\njust words\n", 2, "expected 'key = value'" },
		{ "[socket]\nmode = 0066\n", 2, "mode '0066'" },
		{ "[socket]\ngroup = no-such-group-here\n", 2, "no such group" },
	};
	const char *check[] = { "--socket", sock, "--config", conf, "--print-config", NULL };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		write_file(conf, bad[i].text);
		int st = run_broker(check, out, sizeof(out));
		snprintf(want, sizeof(want), "shmnotifyd: %s:%d: ", conf, bad[i].line);
		if (st != 2 || strstr(out, want) == NULL || strstr(out, bad[i].says) == NULL)
			fail_msg("config %zu (%s): exit %d, said \"%s\"; wanted 2 and \"%s...%s\"", i,
				 bad[i].text, st, out, want, bad[i].says);
	}
	/* checks across values name the line too */
	write_file(conf, "[broker]\ndefault-capacity = 1M\n[limits]\nmax-ring-bytes = 64K\n");
	assert_int_equal(run_broker(check, out, sizeof(out)), 2);
	snprintf(want, sizeof(want), "%s:4: max-ring-bytes", conf);
	assert_non_null(strstr(out, want));
	/* [socket] with the per-user default path is refused */
	write_file(conf, "[socket]\nmode = 0666\n");
	const char *nosock[] = { "--config", conf, "--print-config", NULL };
	assert_int_equal(run_broker(nosock, out, sizeof(out)), 2);
	assert_non_null(strstr(out, "per-user default socket stays private"));
	/* a missing file */
	const char *missing[] = { "--config", "/nonexistent/shmnotifyd.conf", NULL };
	assert_int_equal(run_broker(missing, out, sizeof(out)), 2);
	assert_non_null(strstr(out, "cannot read the configuration file"));
	h_stop(&h);
}

/* --check-config lists every error of a file, each with its line, in the
 * order of the file, then the checks across values; so does a broker
 * started with the file (it exits 2 without listening). */
static void test_check_config_every_error(void **state)
{
	struct harness h;
	char conf[400], sock[400], out[16384], want[600];
	(void)state;

	h_prepare(&h);
	snprintf(conf, sizeof(conf), "%s/c.conf", h.dir);
	snprintf(sock, sizeof(sock), "%s/s.sock", h.dir);
	write_file(conf,
		   "[broker]\n"                       /* 1 */
		   "io = sideways\n"                  /* 2 */
		   "just words\n"                     /* 3 */
		   "max-capacity = 64K\n"             /* 4: below the default 1M */
		   "[limits]\n"                       /* 5 */
		   "max-ports = lots\n"               /* 6 */
		   "max-ports = 2\n"                  /* 7: set twice */
		   "[limts]\n"                        /* 8 */
		   "ignored = under the bad section\n" /* 9: not reported again */
		   "[acl \"x\"]\n"                    /* 10 */
		   "read = *\n"                       /* 11 */
		   "[limits]\n"                       /* 12 */
		   "max-data-size = 65537\n");        /* 13 */
	static const struct {
		int line;
		const char *says;
	} errs[] = {
		{ 2, "io 'sideways'" },
		{ 3, "expected 'key = value'" },
		{ 6, "max-ports 'lots'" },
		{ 7, "'max-ports' set twice" },
		{ 8, "unknown section [limts]" },
		{ 11, "unknown key 'read'" },
		{ 13, "max-data-size '65537'" },
		{ 4, "default-capacity 1M (the default) is above max-capacity 64K" },
	};
	const char *check[] = { "--check-config", conf, NULL };
	const char *start[] = { "--socket", sock, "--config", conf, NULL };
	const char *const *runs[] = { check, start };

	for (size_t r = 0; r < 2; r++) {
		const char *at = out;

		assert_int_equal(run_broker(runs[r], out, sizeof(out)), 2);
		for (size_t i = 0; i < sizeof(errs) / sizeof(errs[0]); i++) {
			const char *hit;

			snprintf(want, sizeof(want), "shmnotifyd: %s:%d: %s", conf, errs[i].line,
				 errs[i].says);
			hit = strstr(at, want);
			if (hit == NULL)
				fail_msg("%s: error %zu (\"%s\") missing or out of order:\n%s",
					 r ? "start" : "--check-config", i, want, out);
			at = hit + 1;
		}
		snprintf(want, sizeof(want), "%s:9:", conf);
		if (strstr(out, want) != NULL)
			fail_msg("a key under a bad section header reported again:\n%s", out);
		/* one line per error, nothing else */
		size_t nl = 0;
		for (const char *c = out; *c != '\0'; c++)
			nl += *c == '\n';
		if (nl != sizeof(errs) / sizeof(errs[0]))
			fail_msg("%zu lines, wanted %zu:\n%s", nl, sizeof(errs) / sizeof(errs[0]), out);
		assert_int_equal(access(sock, F_OK), -1);   /* never listened */
	}
	/* a good file: 0 and "FILE: ok" */
	write_file(conf, "[broker]\nio = epoll\n");
	assert_int_equal(run_broker(check, out, sizeof(out)), 0);
	snprintf(want, sizeof(want), "%s: ok\n", conf);
	assert_string_equal(out, want);
	h_stop(&h);
}

/* default-capacity and max-capacity are checked as a set: a default above
 * the maximum is an error whichever was given, in either order, on the
 * command line or in the file, never a silent change of the other. */
static void test_capacity_set(void **state)
{
	struct harness h;
	char conf[400], sock[400], out[16384];
	(void)state;

	h_prepare(&h);
	snprintf(conf, sizeof(conf), "%s/c.conf", h.dir);
	snprintf(sock, sizeof(sock), "%s/s.sock", h.dir);
	static const char says[] = "default-capacity 4M (--default-capacity) is above "
				   "max-capacity 1M (--max-capacity)";

	/* the command line, both orders */
	const char *cl1[] = { "--socket", sock, "--default-capacity", "4M", "--max-capacity", "1M",
			      "--print-config", NULL };
	const char *cl2[] = { "--socket", sock, "--max-capacity", "1M", "--default-capacity", "4M",
			      "--print-config", NULL };
	assert_int_equal(run_broker(cl1, out, sizeof(out)), 2);
	if (strstr(out, says) == NULL)
		fail_msg("--default-capacity 4M --max-capacity 1M said:\n%s", out);
	assert_int_equal(run_broker(cl2, out, sizeof(out)), 2);
	if (strstr(out, says) == NULL)
		fail_msg("--max-capacity 1M --default-capacity 4M said:\n%s", out);
	/* only the maximum, below the default default: an error too (it used
	 * to lower default-capacity to 512K without a word) */
	const char *maxonly[] = { "--socket", sock, "--max-capacity", "512K", "--print-config",
				  NULL };
	assert_int_equal(run_broker(maxonly, out, sizeof(out)), 2);
	if (strstr(out, "default-capacity 1M (the default) is above max-capacity 512K "
			"(--max-capacity)") == NULL)
		fail_msg("--max-capacity 512K said:\n%s", out);
	/* only the default, above the default maximum */
	const char *defonly[] = { "--socket", sock, "--default-capacity", "128M", "--print-config",
				  NULL };
	assert_int_equal(run_broker(defonly, out, sizeof(out)), 2);
	if (strstr(out, "default-capacity 128M (--default-capacity) is above max-capacity 64M "
			"(the default)") == NULL)
		fail_msg("--default-capacity 128M said:\n%s", out);

	/* the file, both orders: the message names the later line */
	const char *file[] = { "--socket", sock, "--config", conf, "--print-config", NULL };
	const char *checkf[] = { "--check-config", conf, NULL };
	static const struct {
		const char *text;
		const char *says;
	} files[] = {
		{ "[broker]\ndefault-capacity = 4M\nmax-capacity = 1M\n",
		  ":3: default-capacity 4M (line 2) is above max-capacity 1M (line 3)" },
		{ "[broker]\nmax-capacity = 1M\ndefault-capacity = 4M\n",
		  ":3: default-capacity 4M (line 3) is above max-capacity 1M (line 2)" },
		{ "[broker]\nmax-capacity = 512K\n",
		  ":2: default-capacity 1M (the default) is above max-capacity 512K (line 2)" },
	};
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		write_file(conf, files[i].text);
		for (int k = 0; k < 2; k++) {
			int st = run_broker(k ? checkf : file, out, sizeof(out));

			if (st != 2 || strstr(out, files[i].says) == NULL)
				fail_msg("file %zu (%s) %s: exit %d, said:\n%s\nwanted \"%s\"", i,
					 files[i].text, k ? "--check-config" : "--config", st, out,
					 files[i].says);
		}
	}
	/* the file and the command line together */
	write_file(conf, "[broker]\ndefault-capacity = 4M\n");
	const char *mixed[] = { "--socket", sock, "--config", conf, "--max-capacity", "1M",
				"--print-config", NULL };
	assert_int_equal(run_broker(mixed, out, sizeof(out)), 2);
	if (strstr(out, ":2: default-capacity 4M (line 2) is above max-capacity 1M "
			"(--max-capacity)") == NULL)
		fail_msg("file default-capacity 4M, --max-capacity 1M said:\n%s", out);
	/* the command line mends the file: fine, and nothing is changed */
	const char *mended[] = { "--socket", sock, "--config", conf, "--max-capacity", "4M",
				 "--print-config", NULL };
	assert_int_equal(run_broker(mended, out, sizeof(out)), 0);
	assert_non_null(strstr(out, "default-capacity = 4M\n"));
	assert_non_null(strstr(out, "max-capacity = 4M\n"));
	/* equal is fine */
	const char *equal[] = { "--socket", sock, "--default-capacity", "1M", "--max-capacity",
				"1M", "--print-config", NULL };
	assert_int_equal(run_broker(equal, out, sizeof(out)), 0);
	assert_non_null(strstr(out, "default-capacity = 1M\nmax-capacity = 1M\n"));
	h_stop(&h);
}

/* A shared socket gets the configured mode. */
static void test_socket_mode(void **state)
{
	struct harness h;
	struct stat st;
	(void)state;

	start_with(&h, "[socket]\nmode = 0666\n");
	assert_int_equal(stat(h.sock, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0666);
	h_stop(&h);
	start_with(&h, "[broker]\nio = auto\n");
	assert_int_equal(stat(h.sock, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);   /* the default */
	h_stop(&h);
}

int main(int argc, char **argv)
{
	h_parse_args(argc, argv);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ports_subs_ring_bytes),
		cmocka_unit_test(test_key_and_data_size),
		cmocka_unit_test(test_max_clients),
		cmocka_unit_test(test_config_file),
		cmocka_unit_test(test_check_config_every_error),
		cmocka_unit_test(test_capacity_set),
		cmocka_unit_test(test_socket_mode),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
