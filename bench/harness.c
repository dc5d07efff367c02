/* SPDX-License-Identifier: MIT */
/*
 * harness.c - one measurement: fork the workload's processes, start them
 * together, stop the publishers, let the subscribers drain, collect.
 *
 * The processes meet in one MAP_SHARED block created before fork(), so no
 * transport's machinery is involved in the coordination.  Each child calls
 * the transport only after fork() (libraries that start threads, such as
 * libshmnotify's watcher or ZeroMQ's I/O thread, start clean in it).
 */
#include "bench.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

/* How long a subscriber keeps waiting, once the publishers are done, for
 * messages that may still be on their way.  After that, what is missing
 * counts as lost: the transport dropped it without saying so. */
#define QUIET_NS (600ull * 1000000ull)
/* Time limits that only catch a hung child (never met in a normal run). */
#define SETUP_TIMEOUT_NS (180ull * 1000000000ull)   /* 1,000,000 subscriptions */
#define DRAIN_TIMEOUT_NS (60ull * 1000000000ull)

struct slot {
	int status;
	char why[200];
	uint64_t published, delivered, lost, silent;
	uint64_t t_last;
};

struct shared {
	_Atomic int ready;
	_Atomic int go;
	_Atomic int stop;
	_Atomic int pubs_done;
	_Atomic int abort;
	_Atomic uint64_t expected;
	_Atomic uint32_t synced[BENCH_MAX_PUB];  /* subscribers that saw publisher i's sync */
	uint64_t t_go;
	struct slot slot[BENCH_MAX_PROCS];     /* publishers first, then subscribers */
	double samples[];                       /* latency: one-way us */
};

uint64_t bench_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void bench_sleep_ns(uint64_t ns)
{
	struct timespec ts = { .tv_sec = (time_t)(ns / 1000000000u), .tv_nsec = (long)(ns % 1000000000u) };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

void bench_fmt_why(char *why, size_t len, const char *fmt, ...)
{
	va_list ap;

	if (!why || !len)
		return;
	va_start(ap, fmt);
	vsnprintf(why, len, fmt, ap);
	va_end(ap);
}

char *bench_tmpdir(const char *tag)
{
	const char *base = getenv("TMPDIR");
	char *path;

	if (!base || !*base)
		base = "/tmp";
	if (asprintf(&path, "%s/shmnotify-bench-%s-XXXXXX", base, tag) < 0)
		return NULL;
	if (!mkdtemp(path)) {
		free(path);
		return NULL;
	}
	return path;
}

/* Remove the files a transport left in its private directory (one level:
 * sockets, logs, configuration), then the directory. */
void bench_rmtree(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;

	if (!d)
		return;
	while ((e = readdir(d)) != NULL) {
		char p[4096];

		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
		unlink(p);
	}
	closedir(d);
	rmdir(dir);
}

const char *bench_which(const char *prog)
{
	static char buf[4096];
	const char *path = getenv("PATH");

	if (strchr(prog, '/'))
		return access(prog, X_OK) == 0 ? prog : NULL;
	if (!path)
		path = "/usr/local/bin:/usr/bin:/bin";
	while (*path) {
		size_t n = strcspn(path, ":");

		snprintf(buf, sizeof buf, "%.*s/%s", (int)n, path, prog);
		if (n && access(buf, X_OK) == 0)
			return buf;
		path += n + (path[n] == ':');
	}
	/* sbin is often not in a user's PATH */
	snprintf(buf, sizeof buf, "/usr/sbin/%s", prog);
	return access(buf, X_OK) == 0 ? buf : NULL;
}

pid_t bench_spawn(char *const argv[], const char *log_path, int keep_fd)
{
	pid_t pid = fork();

	if (pid < 0)
		return -errno;
	if (pid == 0) {
		int fd = open("/dev/null", O_RDONLY);

		/* a server must not outlive the bench, even if the bench is killed */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (fd >= 0)
			dup2(fd, 0);
		fd = log_path ? open(log_path, O_WRONLY | O_CREAT | O_APPEND, 0600) : -1;
		if (fd < 0)
			fd = open("/dev/null", O_WRONLY);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		for (int i = 3; i < 1024; i++)
			if (i != keep_fd)
				close(i);
		execv(argv[0], argv);
		_exit(127);
	}
	return pid;
}

int bench_stop_pid(pid_t pid, int timeout_ms)
{
	uint64_t end = bench_now_ns() + (uint64_t)timeout_ms * 1000000u;
	int status;

	if (pid <= 0)
		return -EINVAL;
	kill(pid, SIGTERM);
	while (bench_now_ns() < end) {
		pid_t r = waitpid(pid, &status, WNOHANG);

		if (r == pid || (r < 0 && errno == ECHILD))
			return 0;
		bench_sleep_ns(5000000);
	}
	kill(pid, SIGKILL);
	waitpid(pid, &status, 0);
	return -ETIMEDOUT;
}

int bench_wait_unix(const char *path, int type, int timeout_ms, pid_t pid)
{
	uint64_t end = bench_now_ns() + (uint64_t)timeout_ms * 1000000u;
	struct sockaddr_un sa = { .sun_family = AF_UNIX };

	if (strlen(path) >= sizeof sa.sun_path)
		return -ENAMETOOLONG;
	strcpy(sa.sun_path, path);
	while (bench_now_ns() < end) {
		int fd = socket(AF_UNIX, type | SOCK_CLOEXEC, 0);
		int st;

		if (fd < 0)
			return -errno;
		if (connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0) {
			close(fd);
			return 0;
		}
		close(fd);
		if (pid > 0 && waitpid(pid, &st, WNOHANG) == pid)
			return -ECHILD;
		bench_sleep_ns(10000000);
	}
	return -ETIMEDOUT;
}

/* ---- children ---------------------------------------------------------- */

static void child_init(void)
{
	prctl(PR_SET_PDEATHSIG, SIGKILL);
}

static void fail(struct slot *s, int err, const char *what)
{
	s->status = err < 0 ? err : -EIO;
	snprintf(s->why, sizeof s->why, "%s: %s", what, strerror(err < 0 ? -err : EIO));
}

static bool wait_flag(struct shared *sh, _Atomic int *flag)
{
	while (!atomic_load(flag)) {
		if (atomic_load(&sh->abort))
			return false;
		bench_sleep_ns(20000);
	}
	return true;
}

/* xorshift64: a random key per message costs a few cycles, not a libc call */
static inline uint64_t rnd(uint64_t *s)
{
	uint64_t x = *s;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return *s = x;
}

/* Publishers that need it send sync messages (to the first key, which
 * every subscriber of the workload listens to) until each subscriber has
 * seen one: only then are its subscriptions known to have reached the
 * publisher, and nothing published after it is lost to a slow join. */
static int pub_sync(const struct transport *t, void *ep, const struct params *p,
		    struct shared *sh, unsigned idx)
{
	uint8_t buf[64] = { BENCH_TAG_SYNC, (uint8_t)idx };
	/* the last key: subscriptions travel in order, so once it matches,
	 * every earlier one has reached the publisher too */
	struct bmsg m = { bench_key(p, p->nkeys - 1), bench_key_len(p), buf,
			  p->payload < 64 ? p->payload : 64 };
	/* 1,000,000 subscriptions take a while to travel through a proxy */
	uint64_t end = bench_now_ns() + (p->nkeys > 1000 ? 170ull : 20ull) * 1000000000u;

	while (atomic_load(&sh->synced[idx]) < p->nsub) {
		int rc = t->pub_send(ep, &m, 1);

		if (rc < 0)
			return rc;
		if (bench_now_ns() > end || atomic_load(&sh->abort))
			return -ETIMEDOUT;
		bench_sleep_ns(2000000);
	}
	return 0;
}

static void child_pub(const struct transport *t, void *st, const struct params *p,
		      struct shared *sh, unsigned idx)
{
	struct slot *s = &sh->slot[idx];
	struct ep_args a = { .p = p, .idx = idx, .channel = BENCH_CH_DATA };
	char name[64];
	struct bmsg *batch = calloc(p->batch, sizeof *batch);
	uint8_t *payload = malloc((size_t)p->batch * p->payload);
	uint64_t published = 0, seed = 0x9e3779b97f4a7c15ull * (idx + 1);
	void *ep;
	int err = 0;

	child_init();
	snprintf(name, sizeof name, "bench-pub-%u-%d", idx, (int)getpid());
	a.name = name;
	if (!batch || !payload) {
		fail(s, -ENOMEM, "publisher");
		_exit(1);
	}
	memset(payload, 'x', (size_t)p->batch * p->payload);
	for (unsigned i = 0; i < p->batch; i++) {
		uint8_t *d = payload + (size_t)i * p->payload;

		d[0] = BENCH_TAG_DATA;
		d[1] = (uint8_t)idx;
		batch[i] = (struct bmsg){ p->keys, bench_key_len(p), d, p->payload };
	}
	ep = t->pub_open(st, &a, &err);
	if (!ep) {
		fail(s, err, "publisher open");
		_exit(1);
	}
	if (t->needs_sync && (err = pub_sync(t, ep, p, sh, idx)) < 0) {
		fail(s, err, "publisher: subscribers never saw the sync message");
		_exit(1);
	}
	atomic_fetch_add(&sh->ready, 1);
	if (!wait_flag(sh, &sh->go))
		_exit(1);
	if (p->wl == WL_IDLE) {
		/* idle: nothing to publish; look at the flag rarely, so that the
		 * harness itself adds next to nothing to the CPU measured */
		while (!atomic_load(&sh->stop) && !atomic_load(&sh->abort))
			bench_sleep_ns(50000000);
	} else {
		while (!atomic_load_explicit(&sh->stop, memory_order_relaxed)) {
			if (p->nkeys > 1)
				for (unsigned i = 0; i < p->batch; i++)
					batch[i].key = bench_key(p, (unsigned)(rnd(&seed) % p->nkeys));
			err = t->pub_send(ep, batch, p->batch);
			if (err < 0) {
				s->published = published;
				fail(s, err, "publish");
				_exit(1);
			}
			published += p->batch;
		}
	}
	s->published = published;
	t->pub_close(ep);
	_exit(0);
}

static void child_sub(const struct transport *t, void *st, const struct params *p,
		      struct shared *sh, unsigned idx)
{
	struct slot *s = &sh->slot[BENCH_MAX_PUB + idx];
	struct ep_args a = { .p = p, .idx = idx, .channel = BENCH_CH_DATA };
	struct rx rx = { 0 };
	uint32_t seen = 0;
	uint64_t last = 0, exp = 0;
	bool dropped = false, done_seen = false;
	char name[64];
	void *ep;
	int err = 0;

	child_init();
	snprintf(name, sizeof name, "bench-sub-%u-%d", idx, (int)getpid());
	a.name = name;
	ep = t->sub_open(st, &a, &err);
	if (!ep) {
		fail(s, err, "subscriber open");
		_exit(1);
	}
	atomic_fetch_add(&sh->ready, 1);
	for (;;) {
		int n = dropped ? -ETIMEDOUT : t->sub_recv(ep, 50, &rx);
		uint64_t now;

		if (n == -EPIPE) {
			dropped = true;  /* the transport disconnected us: the rest is lost */
			snprintf(s->why, sizeof s->why, "disconnected by the transport");
		} else if (n < 0 && n != -ETIMEDOUT) {
			fail(s, n, "receive");
			break;
		}
		if (rx.sync_seen != seen) {
			for (unsigned i = 0; i < BENCH_MAX_PUB; i++)
				if ((rx.sync_seen & ~seen) & (1u << i))
					atomic_fetch_add(&sh->synced[i], 1);
			seen = rx.sync_seen;
		}
		now = bench_now_ns();
		if (n > 0 && atomic_load_explicit(&sh->go, memory_order_relaxed)) {
			s->t_last = now;
			last = now;
		}
		if (atomic_load(&sh->abort))
			break;
		if (atomic_load(&sh->pubs_done)) {
			if (!done_seen) {
				done_seen = true;
				exp = atomic_load(&sh->expected);
				if (last < now)
					last = now;
			}
			if (rx.delivered + rx.lost >= exp || now - last > QUIET_NS)
				break;
		}
		if (dropped)
			bench_sleep_ns(10000000);
	}
	s->delivered = rx.delivered;
	s->lost = rx.lost;
	s->silent = exp > rx.delivered + rx.lost ? exp - rx.delivered - rx.lost : 0;
	t->sub_close(ep);
	_exit(s->status < 0);
}

/* ---- latency: ping-pong --------------------------------------------------- */

static void child_ponger(const struct transport *t, void *st, const struct params *p,
			 struct shared *sh, unsigned idx)
{
	struct slot *s = &sh->slot[BENCH_MAX_PUB];
	struct ep_args as = { .p = p, .idx = 0, .channel = BENCH_CH_PING, .name = "bench-pong-s" };
	struct ep_args ap = { .p = p, .idx = 0, .channel = BENCH_CH_PONG, .name = "bench-pong-p" };
	uint8_t *buf = calloc(1, p->payload);
	struct bmsg m = { "pong", 4, buf, p->payload };
	struct rx rx = { 0 };
	void *sub, *pub;
	int err = 0;
	char name[64];

	(void)idx;
	child_init();
	snprintf(name, sizeof name, "bench-pong-%d", (int)getpid());
	as.name = ap.name = name;
	sub = t->sub_open(st, &as, &err);
	pub = sub ? t->pub_open(st, &ap, &err) : NULL;
	if (!sub || !pub || !buf) {
		fail(s, err ? err : -ENOMEM, "ponger open");
		_exit(1);
	}
	atomic_fetch_add(&sh->ready, 1);
	for (;;) {
		int n = t->sub_recv(sub, p->spin ? 0 : 100, &rx);

		if (n < 0 && n != -ETIMEDOUT) {
			fail(s, n, "ponger receive");
			break;
		}
		if (rx.got) {
			rx.got = false;
			if (rx.last[0] == BENCH_TAG_QUIT)
				break;
			memcpy(buf, rx.last, 16);
			err = t->pub_send(pub, &m, 1);
			if (err < 0) {
				fail(s, err, "ponger send");
				break;
			}
		}
		if (atomic_load_explicit(&sh->abort, memory_order_relaxed))
			break;
	}
	t->pub_close(pub);
	t->sub_close(sub);
	_exit(s->status < 0);
}

/* One round trip: send ping seq, wait for pong seq.  0, -ETIMEDOUT or -errno. */
static int round_trip(const struct transport *t, void *pub, void *sub, uint8_t *buf,
		      const struct bmsg *m, struct rx *rx, uint64_t seq, bool spin,
		      uint64_t timeout_ns)
{
	uint64_t end = bench_now_ns() + timeout_ns;
	int err;

	buf[0] = BENCH_TAG_PING;
	memcpy(buf + 8, &seq, 8);
	err = t->pub_send(pub, m, 1);
	if (err < 0)
		return err;
	for (;;) {
		int n = t->sub_recv(sub, spin ? 0 : 20, rx);
		uint64_t got;

		if (n < 0 && n != -ETIMEDOUT)
			return n;
		if (rx->got) {
			rx->got = false;
			memcpy(&got, rx->last + 8, 8);
			if (got == seq)
				return 0;
		}
		if (bench_now_ns() > end)
			return -ETIMEDOUT;
	}
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static void child_pinger(const struct transport *t, void *st, const struct params *p,
			 struct shared *sh, unsigned idx)
{
	struct slot *s = &sh->slot[0];
	struct ep_args as = { .p = p, .idx = 0, .channel = BENCH_CH_PONG };
	struct ep_args ap = { .p = p, .idx = 0, .channel = BENCH_CH_PING };
	uint8_t *buf = calloc(1, p->payload);
	struct bmsg m = { "ping", 4, buf, p->payload };
	struct rx rx = { 0 };
	uint64_t seq = 1, end;
	unsigned warm = p->lat_iters / 10 < 200 ? p->lat_iters / 10 : 200;
	void *sub, *pub;
	int err = 0;
	char name[64];

	(void)idx;
	child_init();
	snprintf(name, sizeof name, "bench-ping-%d", (int)getpid());
	as.name = ap.name = name;
	sub = t->sub_open(st, &as, &err);
	pub = sub ? t->pub_open(st, &ap, &err) : NULL;
	if (!sub || !pub || !buf) {
		fail(s, err ? err : -ENOMEM, "pinger open");
		_exit(1);
	}
	atomic_fetch_add(&sh->ready, 1);
	if (!wait_flag(sh, &sh->go))
		_exit(1);
	/* until the first pong: subscriptions may take effect asynchronously */
	end = bench_now_ns() + 20ull * 1000000000u;
	while ((err = round_trip(t, pub, sub, buf, &m, &rx, seq++, p->spin, 20000000)) == -ETIMEDOUT)
		if (bench_now_ns() > end || atomic_load(&sh->abort))
			break;
	for (unsigned i = 0; err == 0 && i < warm + p->lat_iters; i++) {
		uint64_t t0 = bench_now_ns();

		err = round_trip(t, pub, sub, buf, &m, &rx, seq++, p->spin, 2000000000u);
		if (i >= warm)
			sh->samples[i - warm] = (double)(bench_now_ns() - t0) / 2000.0;
	}
	if (err < 0)
		fail(s, err, "ping-pong");
	else
		s->delivered = p->lat_iters;
	buf[0] = BENCH_TAG_QUIT;
	t->pub_send(pub, &m, 1);
	t->pub_close(pub);
	t->sub_close(sub);
	_exit(s->status < 0);
}

/* ---- parent --------------------------------------------------------------- */

struct kids {
	pid_t pid[BENCH_MAX_PROCS + 2];
	int slot[BENCH_MAX_PROCS + 2];
	bool reaped[BENCH_MAX_PROCS + 2];
	unsigned n;
};

static int spawn(struct kids *k, int slot, void (*fn)(const struct transport *, void *,
		 const struct params *, struct shared *, unsigned),
		 const struct transport *t, void *st, const struct params *p,
		 struct shared *sh, unsigned idx)
{
	pid_t pid;

	fflush(NULL);
	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		fn(t, st, p, sh, idx);
		_exit(0);
	}
	k->pid[k->n] = pid;
	k->slot[k->n] = slot;
	k->reaped[k->n] = false;
	k->n++;
	return 0;
}

/* A child that exited early: its reason, from its slot. */
static int check_kids(struct kids *k, struct shared *sh, struct measure *m)
{
	for (unsigned i = 0; i < k->n; i++) {
		int st;

		if (k->reaped[i] || waitpid(k->pid[i], &st, WNOHANG) != k->pid[i])
			continue;
		k->reaped[i] = true;
		if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
			struct slot *s = &sh->slot[k->slot[i]];

			m->status = s->status < 0 ? s->status : -ECHILD;
			if (s->why[0])
				snprintf(m->why, sizeof m->why, "%s", s->why);
			else if (WIFSIGNALED(st))
				snprintf(m->why, sizeof m->why, "a child died of signal %d", WTERMSIG(st));
			else
				snprintf(m->why, sizeof m->why, "a child exited with status %d",
					 WEXITSTATUS(st));
			return m->status;
		}
	}
	return 0;
}

static bool all_reaped(struct kids *k, unsigned from, unsigned to)
{
	for (unsigned i = from; i < to; i++)
		if (!k->reaped[i])
			return false;
	return true;
}

static int wait_until(struct kids *k, struct shared *sh, struct measure *m,
		      bool (*cond)(struct shared *, struct kids *, unsigned), unsigned arg,
		      uint64_t timeout_ns, const char *what)
{
	uint64_t end = bench_now_ns() + timeout_ns;

	while (!cond(sh, k, arg)) {
		if (check_kids(k, sh, m) < 0)
			return m->status;
		if (bench_now_ns() > end) {
			m->status = -ETIMEDOUT;
			snprintf(m->why, sizeof m->why, "timed out waiting for %s", what);
			return m->status;
		}
		bench_sleep_ns(200000);
	}
	return 0;
}

static bool cond_ready(struct shared *sh, struct kids *k, unsigned n)
{
	(void)k;
	return (unsigned)atomic_load(&sh->ready) >= n;
}

static bool cond_reaped(struct shared *sh, struct kids *k, unsigned n)
{
	(void)sh;
	/* n packs [from, to) of the kids array */
	return all_reaped(k, n >> 16, n & 0xffff);
}

/* CPU time (ns) of a process, all its threads, from /proc. */
static uint64_t proc_cpu_ns(pid_t pid)
{
	char path[64];
	DIR *d;
	struct dirent *e;
	uint64_t sum = 0;

	snprintf(path, sizeof path, "/proc/%d/task", (int)pid);
	d = opendir(path);
	if (!d)
		return 0;
	while ((e = readdir(d)) != NULL) {
		char p2[512];
		unsigned long long ns = 0;
		FILE *f;

		if (e->d_name[0] == '.')
			continue;
		/* schedstat: nanoseconds on the CPU (finer than stat's ticks) */
		snprintf(p2, sizeof p2, "%s/%s/schedstat", path, e->d_name);
		f = fopen(p2, "r");
		if (f) {
			if (fscanf(f, "%llu", &ns) == 1)
				sum += ns;
			fclose(f);
			continue;
		}
		snprintf(p2, sizeof p2, "%s/%s/stat", path, e->d_name);
		f = fopen(p2, "r");
		if (f) {
			char buf[1024];
			size_t n = fread(buf, 1, sizeof buf - 1, f);
			char *q;
			unsigned long long ut, stime;

			buf[n] = 0;
			q = strrchr(buf, ')');
			if (q && sscanf(q + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu",
					&ut, &stime) == 2)
				sum += (ut + stime) * (1000000000ull / (uint64_t)sysconf(_SC_CLK_TCK));
			fclose(f);
		}
	}
	closedir(d);
	return sum;
}

static void kill_all(struct kids *k, struct shared *sh)
{
	uint64_t end = bench_now_ns() + 3000000000ull;

	atomic_store(&sh->abort, 1);
	atomic_store(&sh->stop, 1);
	atomic_store(&sh->pubs_done, 1);
	while (!all_reaped(k, 0, k->n) && bench_now_ns() < end) {
		struct measure dummy = { 0 };

		check_kids(k, sh, &dummy);
		bench_sleep_ns(10000000);
	}
	for (unsigned i = 0; i < k->n; i++)
		if (!k->reaped[i]) {
			kill(k->pid[i], SIGKILL);
			waitpid(k->pid[i], NULL, 0);
			k->reaped[i] = true;
		}
}

static int measure_latency(const struct transport *t, void *st, const struct params *p,
			   struct shared *sh, struct kids *k, struct measure *m)
{
	int err;

	if ((err = spawn(k, BENCH_MAX_PUB, child_ponger, t, st, p, sh, 0)) < 0 ||
	    (err = wait_until(k, sh, m, cond_ready, 1, SETUP_TIMEOUT_NS, "the ponger")) < 0 ||
	    (err = spawn(k, 0, child_pinger, t, st, p, sh, 0)) < 0 ||
	    (err = wait_until(k, sh, m, cond_ready, 2, SETUP_TIMEOUT_NS, "the pinger")) < 0)
		return err;
	atomic_store(&sh->go, 1);
	err = wait_until(k, sh, m, cond_reaped, (0u << 16) | 2u,
			 (uint64_t)p->lat_iters * 100000000ull + DRAIN_TIMEOUT_NS, "the ping-pong");
	if (err < 0 || (err = check_kids(k, sh, m)) < 0)
		return err;
	m->lat_n = p->lat_iters;
	m->lat_samples = malloc(sizeof(double) * p->lat_iters);
	if (!m->lat_samples)
		return -ENOMEM;
	memcpy(m->lat_samples, sh->samples, sizeof(double) * p->lat_iters);
	qsort(m->lat_samples, m->lat_n, sizeof(double), cmp_double);
	m->p50 = m->lat_samples[(size_t)(0.5 * (m->lat_n - 1))];
	m->p99 = m->lat_samples[(size_t)(0.99 * (m->lat_n - 1))];
	m->p999 = m->lat_samples[(size_t)(0.999 * (m->lat_n - 1))];
	m->delivered = m->published = p->lat_iters;
	return 0;
}

int bench_measure(const struct transport *t, void *st, const struct params *p, struct measure *m)
{
	size_t size = sizeof(struct shared) +
		      (p->wl == WL_LATENCY ? sizeof(double) * p->lat_iters : 0);
	struct shared *sh;
	struct kids k = { .n = 0 };
	pid_t pids[16];
	int ns = 0, err;
	uint64_t srv0 = 0;

	memset(m, 0, sizeof *m);
	if (p->npub > BENCH_MAX_PUB || p->nsub > BENCH_MAX_SUB || p->payload < BENCH_MIN_PAYLOAD) {
		snprintf(m->why, sizeof m->why, "parameters out of range");
		return m->status = -EINVAL;
	}
	sh = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (sh == MAP_FAILED) {
		snprintf(m->why, sizeof m->why, "mmap: %s", strerror(errno));
		return m->status = -errno;
	}
	if (t->prepare && (err = t->prepare(st, p)) < 0) {
		snprintf(m->why, sizeof m->why, "prepare: %s", strerror(-err));
		munmap(sh, size);
		return m->status = err;
	}
	if (p->wl == WL_LATENCY) {
		err = measure_latency(t, st, p, sh, &k, m);
		goto out;
	}
	/* subscribers first: they must be subscribed before anything is published */
	for (unsigned i = 0; i < p->nsub; i++)
		if ((err = spawn(&k, BENCH_MAX_PUB + (int)i, child_sub, t, st, p, sh, i)) < 0)
			goto out;
	if ((err = wait_until(&k, sh, m, cond_ready, p->nsub, SETUP_TIMEOUT_NS, "the subscribers")) < 0)
		goto out;
	for (unsigned i = 0; i < p->npub; i++)
		if ((err = spawn(&k, (int)i, child_pub, t, st, p, sh, i)) < 0)
			goto out;
	if ((err = wait_until(&k, sh, m, cond_ready, p->nsub + p->npub, SETUP_TIMEOUT_NS,
			      "the publishers")) < 0)
		goto out;

	ns = t->server_pids ? t->server_pids(st, pids, 16) : 0;
	{
		uint64_t cli0 = 0, srv1 = 0, cli1 = 0, t0, t1;
		uint64_t end;

		for (int i = 0; i < ns; i++)
			srv0 += proc_cpu_ns(pids[i]);
		if (p->wl == WL_IDLE)
			for (unsigned i = 0; i < k.n; i++)
				cli0 += proc_cpu_ns(k.pid[i]);
		t0 = sh->t_go = bench_now_ns();
		atomic_store(&sh->go, 1);
		end = t0 + (uint64_t)(p->seconds * 1e9);
		while (bench_now_ns() < end) {
			if ((err = check_kids(&k, sh, m)) < 0)
				goto out;
			bench_sleep_ns(p->wl == WL_IDLE ? 100000000 : 5000000);
		}
		if (p->wl == WL_IDLE) {
			t1 = bench_now_ns();
			for (int i = 0; i < ns; i++)
				srv1 += proc_cpu_ns(pids[i]);
			for (unsigned i = 0; i < k.n; i++)
				cli1 += proc_cpu_ns(k.pid[i]);
			/* a transport without servers has no server CPU to show */
			m->cpu_server = t->server_pids ? 100.0 * (double)(srv1 - srv0) / (double)(t1 - t0) : NAN;
			m->cpu_clients = 100.0 * (double)(cli1 - cli0) / (double)(t1 - t0);
		}
	}
	atomic_store(&sh->stop, 1);
	/* the publishers are the last p->npub kids */
	if ((err = wait_until(&k, sh, m, cond_reaped, ((k.n - p->npub) << 16) | k.n,
			      DRAIN_TIMEOUT_NS, "the publishers to stop")) < 0)
		goto out;
	for (unsigned i = 0; i < p->npub; i++)
		m->published += sh->slot[i].published;
	atomic_store(&sh->expected, m->published);
	atomic_store(&sh->pubs_done, 1);
	if ((err = wait_until(&k, sh, m, cond_reaped, (0u << 16) | k.n, DRAIN_TIMEOUT_NS,
			      "the subscribers to drain")) < 0)
		goto out;
	{
		uint64_t t_last = sh->t_go;

		for (unsigned i = 0; i < p->nsub; i++) {
			struct slot *s = &sh->slot[BENCH_MAX_PUB + i];

			m->delivered += s->delivered;
			m->lost_reported += s->lost;
			m->lost_silent += s->silent;
			if (s->t_last > t_last)
				t_last = s->t_last;
		}
		m->elapsed = (double)(t_last - sh->t_go) / 1e9;
		m->rate = m->elapsed > 0 ? (double)m->delivered / m->elapsed : 0;
	}
	/* the servers' CPU from the start flag until every subscriber drained,
	 * per message published: what the routing process costs, much less
	 * sensitive to a busy machine than a rate */
	if (ns > 0 && m->published > 0) {
		uint64_t srv_end = 0;

		for (int i = 0; i < ns; i++)
			srv_end += proc_cpu_ns(pids[i]);
		m->server_ns_per_msg = (double)(srv_end - srv0) / (double)m->published;
	}
	err = 0;
out:
	if (err < 0) {
		if (!m->status)
			m->status = err;
		if (!m->why[0])
			snprintf(m->why, sizeof m->why, "%s", strerror(-err));
	}
	kill_all(&k, sh);
	if (t->finish)
		t->finish(st);
	munmap(sh, size);
	return m->status;
}
