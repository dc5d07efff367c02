/* SPDX-License-Identifier: MIT */
/*
 * flood.c - how many notifications per second go through the broker, 1 -> 1.
 *
 * The subscriber (this process) opens a port subscribed to one key; a forked
 * publisher connects on its own and publishes batches of BATCH notifications
 * of SIZE bytes to that key for SECONDS; the subscriber counts what arrives
 * with shn_port_get(), checks that seq has no gap other than the ones
 * SHN_EV_OVERFLOW reports, and prints the delivered rate.
 *
 * usage: flood [--socket PATH] [--seconds S] [--batch N] [--size BYTES]
 *              [--capacity BYTES] [--overflow drop|block]
 *
 * Exit status: 0 when every notification published was delivered or
 * reported lost and seq was consistent; 1 otherwise.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <shmnotify.h>

static const char key[] = "flood/key";

struct result {             /* publisher -> subscriber, through a pipe */
	int      status;    /* 0 or -errno */
	int      failed_at; /* 0 connect, 1 notify */
	uint64_t published; /* notifications accepted by shn_notify */
	uint64_t batches;
	uint64_t t_start;   /* CLOCK_MONOTONIC ns, after connect */
	uint64_t t_end;
};

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: flood [--socket PATH] [--seconds S] [--batch N] [--size BYTES] "
		   "[--capacity BYTES] [--overflow drop|block]\n");
}

static int write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len) {
		ssize_t n = write(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static int read_all(int fd, void *buf, size_t len)
{
	char *p = buf;

	while (len) {
		ssize_t n = read(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* The forked publisher: it touches the library only after fork(). */
static void publisher(const char *sock, int go_fd, int res_fd, double seconds,
		      unsigned batch_n, unsigned size)
{
	struct result r = { 0 };
	shn_notification *batch = calloc(batch_n, sizeof *batch);
	char *payload = malloc((size_t)batch_n * size + 1);
	shn_client *c;
	uint64_t deadline;
	char go;
	unsigned i;

	if (!batch || !payload || read_all(go_fd, &go, 1) < 0)
		_exit(1);
	memset(payload, 'x', (size_t)batch_n * size);
	r.status = shn_connect(sock, &c);
	if (r.status < 0) {
		write_all(res_fd, &r, sizeof r);
		_exit(1);
	}
	for (i = 0; i < batch_n; i++) {
		batch[i].event = 1;
		batch[i].key = key;
		batch[i].key_len = sizeof key - 1;
		batch[i].data = payload + (size_t)i * size;
		batch[i].data_len = size;
	}
	r.t_start = now_ns();
	deadline = r.t_start + (uint64_t)(seconds * 1e9);
	do {
		int rc = shn_notify(c, batch, batch_n, 0);

		if (rc < 0) {
			r.status = rc;
			r.failed_at = 1;
			break;
		}
		r.published += batch_n;
		r.batches++;
	} while (now_ns() < deadline);
	r.t_end = now_ns();
	shn_disconnect(c);  /* accepted batches are still routed (rule 9) */
	write_all(res_fd, &r, sizeof r);
	_exit(r.status < 0);
}

static int parse_num(const char *s, double lo, double hi, double *out)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s || *end || v < lo || v > hi)
		return -1;
	*out = v;
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "socket",   required_argument, NULL, 's' },
		{ "seconds",  required_argument, NULL, 'd' },
		{ "batch",    required_argument, NULL, 'b' },
		{ "size",     required_argument, NULL, 'z' },
		{ "capacity", required_argument, NULL, 'c' },
		{ "overflow", required_argument, NULL, 'o' },
		{ "help",     no_argument,       NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *sock = NULL;
	double seconds = 1, v;
	unsigned batch_n = 64, size = 64;
	shn_port_options popt = { .capacity = 0, .overflow = SHN_OVERFLOW_DROP };
	int go[2], res[2], c, rc, status;
	pid_t child;
	shn_client *client;
	shn_port *port;
	shn_conn conn;
	shn_notification buf[256];
	struct result r;
	bool have_result = false;
	uint64_t delivered = 0, lost = 0, expect_seq = 1, seq_errors = 0;
	uint64_t t_last = 0, idle_since = 0, gets = 0;
	struct pollfd pfd;

	while ((c = getopt_long(argc, argv, "s:h", opts, NULL)) != -1) {
		switch (c) {
		case 's': sock = optarg; break;
		case 'd':
			if (parse_num(optarg, 0.01, 3600, &seconds))
				goto bad;
			break;
		case 'b':
			if (parse_num(optarg, 1, 4096, &v))
				goto bad;
			batch_n = (unsigned)v;
			break;
		case 'z':
			if (parse_num(optarg, 0, SHN_DATA_MAX, &v))
				goto bad;
			size = (unsigned)v;
			break;
		case 'c':
			if (parse_num(optarg, 4096, 1u << 30, &v))
				goto bad;
			popt.capacity = (uint32_t)v;
			break;
		case 'o':
			if (!strcmp(optarg, "drop"))
				popt.overflow = SHN_OVERFLOW_DROP;
			else if (!strcmp(optarg, "block"))
				popt.overflow = SHN_OVERFLOW_BLOCK;
			else
				goto bad;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			goto bad;
		}
	}
	if (optind != argc)
		goto bad;

	/* Fork before this process touches the library: the child starts clean. */
	if (pipe(go) || pipe(res)) {
		perror("flood: pipe");
		return 1;
	}
	child = fork();
	if (child < 0) {
		perror("flood: fork");
		return 1;
	}
	if (child == 0) {
		close(go[1]);
		close(res[0]);
		publisher(sock, go[0], res[1], seconds, batch_n, size);
	}
	close(go[0]);
	close(res[1]);

	rc = shn_connect(sock, &client);
	if (rc < 0) {
		fprintf(stderr, "flood: cannot connect to the broker: %s\n", shn_strerror(rc));
		goto kill_child;
	}
	rc = shn_port_open(client, &popt, &port);
	if (rc < 0) {
		fprintf(stderr, "flood: cannot open a port: %s\n", shn_strerror(rc));
		goto kill_child;
	}
	rc = shn_subscribe(port, key, sizeof key - 1, SHN_EV_ALL, 0, &conn);
	if (rc < 0) {
		fprintf(stderr, "flood: cannot subscribe: %s\n", shn_strerror(rc));
		goto kill_child;
	}
	if (write_all(go[1], "g", 1) < 0) {
		perror("flood: cannot start the publisher");
		goto kill_child;
	}
	close(go[1]);

	pfd.fd = res[0];
	pfd.events = POLLIN;
	for (;;) {
		int n = shn_port_get(port, buf, sizeof buf / sizeof buf[0], 100);

		if (n > 0) {
			for (int i = 0; i < n; i++) {
				const shn_notification *m = &buf[i];

				if (m->event & SHN_EV_OVERFLOW) {
					uint64_t l = 0;

					if (m->data_len == 8)
						for (int k = 7; k >= 0; k--)
							l = l << 8 | ((const unsigned char *)m->data)[k];
					lost += l;
					expect_seq += l;
					continue;
				}
				if (m->event & SHN_EV_SYSTEM)
					continue;
				if (m->seq != expect_seq)
					seq_errors++;
				expect_seq = m->seq + 1;
				delivered++;
			}
			t_last = now_ns();
			idle_since = 0;
		} else if (n == -ETIMEDOUT) {
			if (have_result) {
				if (!idle_since)
					idle_since = now_ns();
				else if (now_ns() - idle_since > 2000000000u)
					break;  /* 2 s without anything after the publisher ended */
			}
		} else {
			fprintf(stderr, "flood: shn_port_get: %s\n", shn_strerror(n));
			goto kill_child;
		}
		/* has the publisher finished?  (asked now and then: poll is a syscall) */
		if (!have_result && (n < 0 || (++gets & 1023) == 0) && poll(&pfd, 1, 0) == 1) {
			if (read_all(res[0], &r, sizeof r) < 0) {
				fprintf(stderr, "flood: the publisher died without a result\n");
				goto kill_child;
			}
			have_result = true;
			if (r.status < 0) {
				fprintf(stderr, "flood: publisher: %s failed: %s\n",
					r.failed_at ? "shn_notify" : "shn_connect",
					shn_strerror(r.status));
				goto kill_child;
			}
		}
		if (have_result && delivered + lost >= r.published)
			break;
	}
	waitpid(child, &status, 0);
	shn_port_close(port);
	shn_disconnect(client);

	{
		double secs = t_last > r.t_start ? (double)(t_last - r.t_start) / 1e9 : 0;
		double rate = secs > 0 ? (double)delivered / secs : 0;
		bool ok = seq_errors == 0 && delivered + lost == r.published &&
			  WIFEXITED(status) && WEXITSTATUS(status) == 0;

		printf("flood: 1 publisher -> 1 subscriber, %u B payload, batch %u, overflow %s: "
		       "delivered %llu in %.2f s = %.1f M notifications/s, lost %llu",
		       size, batch_n, popt.overflow == SHN_OVERFLOW_BLOCK ? "block" : "drop",
		       (unsigned long long)delivered, secs, rate / 1e6, (unsigned long long)lost);
		if (seq_errors)
			printf(", %llu seq errors", (unsigned long long)seq_errors);
		if (delivered + lost != r.published)
			printf(", %llu published but never delivered nor reported lost",
			       (unsigned long long)(r.published - delivered - lost));
		printf("\n");
		return ok ? 0 : 1;
	}

kill_child:
	kill(child, SIGKILL);
	waitpid(child, NULL, 0);
	return 1;
bad:
	usage(stderr);
	return 2;
}
