/* SPDX-License-Identifier: MIT */
/*
 * doctor.c - shmnotify doctor [--socket PATH]
 *
 * Checks what makes brokers fail in the field and says, for each, what to
 * do: io_uring (seccomp, kernel.io_uring_disabled: the broker then falls
 * back to epoll), memfd with seals (every ring is one), the socket path and
 * its directory, descriptor and locked-memory limits, and whether a broker
 * answers.  Exit status: 0 when nothing failed (warnings allowed), 1 when
 * a check failed.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <linux/io_uring.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#include "cli.h"
#include "util/file_kind.h"

static const char usage[] = "usage: shmnotify doctor [--socket PATH]";
static int failures, warnings;

static void report(const char *level, const char *what, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void report(const char *level, const char *what, const char *fmt, ...)
{
	va_list ap;

	printf("%-5s %-12s ", level, what);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	if (!strcmp(level, "FAIL"))
		failures++;
	else if (!strcmp(level, "WARN"))
		warnings++;
}

static void check_io_uring(void)
{
	struct io_uring_params p;
	char sysctl[16] = "";
	int fd, disabled = -1;

	fd = open("/proc/sys/kernel/io_uring_disabled", O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		ssize_t n = read(fd, sysctl, sizeof(sysctl) - 1);
		if (n > 0)
			disabled = atoi(sysctl);
		close(fd);
	}
	memset(&p, 0, sizeof(p));
	fd = (int)syscall(__NR_io_uring_setup, 4, &p);
	if (fd >= 0) {
		close(fd);
		report("ok", "io_uring", "available (kernel.io_uring_disabled=%d): the broker's "
		       "default loop", disabled < 0 ? 0 : disabled);
		return;
	}
	int err = errno;
	if (err == EPERM && disabled > 0)
		report("WARN", "io_uring", "disabled by kernel.io_uring_disabled=%d: the broker "
		       "uses epoll (same features, a little more CPU per wake-up); to enable: "
		       "sysctl kernel.io_uring_disabled=0", disabled);
	else if (err == EPERM || err == ENOSYS)
		report("WARN", "io_uring", "refused (%s), probably by a seccomp profile (Docker >= "
		       "25, containerd 2.0): the broker falls back to epoll; to use io_uring allow "
		       "io_uring_setup/io_uring_enter/io_uring_register in the profile",
		       strerror(err));
	else
		report("WARN", "io_uring", "io_uring_setup failed: %s: the broker falls back to epoll",
		       strerror(err));
}

static void check_memfd(void)
{
	int fd = memfd_create("shmnotify-doctor", MFD_CLOEXEC | MFD_ALLOW_SEALING);

	if (fd < 0) {
		report("FAIL", "memfd", "memfd_create failed: %s: every ring is a sealed memfd, so "
		       "the broker cannot work here (kernel >= 3.17 with CONFIG_MEMFD_CREATE)",
		       strerror(errno));
		return;
	}
	if (ftruncate(fd, 4096) < 0 ||
	    fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_FUTURE_WRITE) < 0) {
		report("FAIL", "memfd", "sealing a memfd failed: %s: the broker needs "
		       "F_SEAL_SHRINK|F_SEAL_GROW and F_SEAL_FUTURE_WRITE (Linux >= 5.1)",
		       strerror(errno));
	} else if (ftruncate(fd, 0) == 0) {
		report("FAIL", "memfd", "a sealed memfd could still be shrunk: seals do not work here");
	} else {
		report("ok", "memfd", "memfd_create and seals work (no /dev/shm needed: rings are "
		       "anonymous sealed memfds)");
	}
	close(fd);
}

static void check_limits(void)
{
	struct rlimit nofile, memlock;

	if (getrlimit(RLIMIT_NOFILE, &nofile) == 0) {
		/* the broker holds ~2 descriptors per client and 1 per port
		 * (segments are closed once sent) */
		if (nofile.rlim_cur != RLIM_INFINITY && nofile.rlim_cur < 4096)
			report("WARN", "nofile", "RLIMIT_NOFILE is %llu (hard %llu): enough for about "
			       "%llu clients; shmnotifyd raises its soft limit to the hard limit at "
			       "start; for more, raise the hard limit (LimitNOFILE= in the unit, "
			       "ulimit -Hn)", (unsigned long long)nofile.rlim_cur,
			       (unsigned long long)nofile.rlim_max,
			       (unsigned long long)nofile.rlim_cur / 3);
		else
			report("ok", "nofile", "RLIMIT_NOFILE %llu (hard %llu)",
			       (unsigned long long)nofile.rlim_cur, (unsigned long long)nofile.rlim_max);
	}
	if (getrlimit(RLIMIT_MEMLOCK, &memlock) == 0)
		report("ok", "memlock", "RLIMIT_MEMLOCK %llu KiB: io_uring on kernels >= 5.12 does "
		       "not charge it; rings are not locked", memlock.rlim_cur == RLIM_INFINITY
		       ? 0ull : (unsigned long long)memlock.rlim_cur / 1024);
}

static void check_socket(const char *path_arg)
{
	char path[256], dir[256];
	struct stat st;
	shn_client *c;
	int err;

	char shown[256];
	snprintf(path, sizeof path, "%s", cli_socket_display(path_arg, shown, sizeof shown));
	snprintf(dir, sizeof dir, "%s", path);
	char *slash = strrchr(dir, '/');
	if (slash && slash != dir)
		*slash = '\0';
	if (stat(dir, &st) < 0) {
		report("WARN", "socket dir", "%s does not exist: shmnotifyd creates it (mode 0700) "
		       "when it starts", dir);
	} else if (!S_ISDIR(st.st_mode)) {
		report("FAIL", "socket dir", "%s is not a directory: choose another --socket", dir);
	} else if (access(dir, W_OK | X_OK) < 0) {
		report("FAIL", "socket dir", "%s is not writable by uid %u: the broker cannot create "
		       "its socket there; choose another --socket", dir, (unsigned)geteuid());
	} else {
		report("ok", "socket dir", "%s (mode %04o, owner uid %u)", dir,
		       (unsigned)(st.st_mode & 07777), (unsigned)st.st_uid);
	}
	if (lstat(path, &st) < 0) {
		report("WARN", "broker", "no socket at %s: start shmnotifyd (or pass --socket / set "
		       "$SHMNOTIFY_SOCKET to where it listens)", path);
		return;
	}
	if (!S_ISSOCK(st.st_mode)) {
		report("FAIL", "socket", "%s exists but is %s, not a socket: remove it or choose "
		       "another --socket", path, shu_file_kind(st.st_mode));
		return;
	}
	err = shn_connect(path, &c);
	if (err == 0) {
		char *doc = NULL;
		int n;

		shn_set_name(c, "shmnotify doctor");   /* only what stats show: no verdict */
		n = shn_stats_json(c, &doc);
		report("ok", "broker", "answers on %s (%s)", path, n >= 0 ? "stats readable" :
		       shn_strerror(n));
		free(doc);
		shn_disconnect(c);
	} else if (err == -ECONNREFUSED) {
		report("WARN", "broker", "%s is a stale socket (nothing listens): a crashed broker "
		       "left it; shmnotifyd replaces it when it starts", path);
	} else if (err == -EACCES || err == -EPERM) {
		report("FAIL", "broker", "no permission to connect to %s as uid %u: use the broker "
		       "of your own user, or ask its owner for access", path, (unsigned)geteuid());
	} else {
		report("FAIL", "broker", "cannot talk to the broker at %s: %s", path,
		       shn_strerror(err));
	}
}

int cmd_doctor(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "help",   no_argument,       NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *socket_path = NULL;
	int c;

	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":s:h", opts, NULL)) != -1) {
		switch (c) {
		case 's':
			if (cli_socket_option("doctor", usage, optarg, &socket_path))
				return EXIT_USAGE;
			break;
		case 'h':
			printf("%s\n\nCheck what shmnotify needs from this machine and say what to "
			       "do about each problem:\nio_uring, memfd seals, descriptor limits, the "
			       "socket path, a broker answering.\n\n"
			       "  -s, --socket PATH   the broker's socket (default: $SHMNOTIFY_SOCKET,\n"
			       "                      then the per-user default)\n"
			       "  -h, --help          show this help\n\n"
			       "Exit status: 0 nothing failed (warnings allowed), 1 a check failed.\n",
			       usage);
			return 0;
		case ':':
			return cli_usage_error("doctor", usage, "option '%s' needs an argument",
					       cli_bad_option(argv, c));
		default:
			return cli_usage_error("doctor", usage, "unknown option '%s'",
					       cli_bad_option(argv, c));
		}
	}
	if (optind < argc)
		return cli_usage_error("doctor", usage, "unexpected argument '%s'", argv[optind]);
	check_io_uring();
	check_memfd();
	check_limits();
	check_socket(socket_path);
	printf("%d failed, %d warning%s\n", failures, warnings, warnings == 1 ? "" : "s");
	return failures ? EXIT_RUNTIME : 0;
}
