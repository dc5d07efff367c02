/* SPDX-License-Identifier: MIT */
/*
 * test_api.c - the binding public interface (docs/design.md, "Public C API"):
 * every name exists in libshmnotify with the documented values, argument
 * errors are refused without a broker, and shn_strerror() names every value.
 * No broker is started.
 */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <shmnotify.h>

/* values fixed by docs/design.md (binding) */
_Static_assert(SHN_KEY_MAX == 256, "SHN_KEY_MAX");
_Static_assert(SHN_DATA_MAX == 65536, "SHN_DATA_MAX");
_Static_assert(SHN_EV_OVERFLOW == (1u << 28), "SHN_EV_OVERFLOW");
_Static_assert(SHN_EV_BROKER_STATE == (1u << 29), "SHN_EV_BROKER_STATE");
_Static_assert(SHN_EV_RECONNECT == (1u << 30), "SHN_EV_RECONNECT");
_Static_assert(SHN_EV_HANDLE_CLOSE == (1u << 31), "SHN_EV_HANDLE_CLOSE");
_Static_assert(SHN_EV_ALL == 0x0fffffffu, "SHN_EV_ALL");
_Static_assert(SHN_NOTIFY_SYNC == 1u, "SHN_NOTIFY_SYNC");
_Static_assert(SHN_NOTIFY_NONBLOCK == 2u, "SHN_NOTIFY_NONBLOCK");
_Static_assert(SHN_OVERFLOW_DROP == 0u, "SHN_OVERFLOW_DROP");
_Static_assert(SHN_OVERFLOW_BLOCK == 1u, "SHN_OVERFLOW_BLOCK");
_Static_assert(SHN_NOTIFY_CANCELED == 1, "SHN_NOTIFY_CANCELED");
_Static_assert(SHN_CALLBACK_CONTINUE == 0u, "SHN_CALLBACK_CONTINUE");
_Static_assert(SHN_CALLBACK_DISCONTINUE == 1u, "SHN_CALLBACK_DISCONTINUE");
_Static_assert(sizeof(shn_conn) == 8, "shn_conn");
_Static_assert(sizeof(((shn_port_options *)0)->capacity) == 4, "capacity");

static void test_symbols(void **state)
{
	static const char *const names[] = {
		"shn_connect", "shn_disconnect", "shn_port_open", "shn_port_close",
		"shn_port_fd", "shn_port_get", "shn_port_unblock", "shn_port_dispatch",
		"shn_subscribe", "shn_advise", "shn_unsubscribe", "shn_notify",
		"shn_set_sync_timeout", "shn_strerror", "shn_stats_json", "shn_stats_json_ex",
	};
	int missing = 0;
	(void)state;

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (dlsym(RTLD_DEFAULT, names[i]) == NULL) {
			fprintf(stderr, "libshmnotify does not export %s (a binding name, "
				"docs/design.md)\n", names[i]);
			missing++;
		}
	}
	assert_int_equal(missing, 0);
}

/* Internal names stay internal (the symbol map). */
static void test_no_internal_symbols(void **state)
{
	(void)state;
	assert_null(dlsym(RTLD_DEFAULT, "shn__call"));
	assert_null(dlsym(RTLD_DEFAULT, "shn_segment_create"));
}

static void test_strerror(void **state)
{
	static const int errs[] = {
		0, 1, 5, -EINVAL, -ENOTCONN, -ECONNREFUSED, -ENOENT, -EPROTO, -EPROTONOSUPPORT,
		-EMSGSIZE, -EAGAIN, -ECANCELED, -ETIMEDOUT, -EEXIST, -EOPNOTSUPP, -EBADMSG,
		-ENAMETOOLONG, -ENOMEM, -EBADF, -EPERM, -ENOSPC, -ENOBUFS, -EMFILE, -99999,
	};
	(void)state;

	for (size_t i = 0; i < sizeof(errs) / sizeof(errs[0]); i++) {
		const char *s = shn_strerror(errs[i]);
		assert_non_null(s);
		assert_true(strlen(s) > 0);
	}
	/* the values the API documents have messages of their own */
	assert_string_not_equal(shn_strerror(-ECANCELED), shn_strerror(-ETIMEDOUT));
	assert_string_not_equal(shn_strerror(-EMSGSIZE), shn_strerror(-EINVAL));
	assert_string_not_equal(shn_strerror(-ENOTCONN), shn_strerror(-EAGAIN));
	/* the library reconnects by itself: calling shn_connect again would
	 * make a second client, so the message must not send users there */
	assert_non_null(strstr(shn_strerror(-ENOTCONN), "reconnects by itself"));
	assert_null(strstr(shn_strerror(-ENOTCONN), "reconnect with shn_connect"));
}

/* Argument errors need no broker. */
static void test_arguments_without_broker(void **state)
{
	shn_client *c = (shn_client *)0x1;
	char dir[] = "/tmp/shn-api-XXXXXX", path[64];
	(void)state;

	assert_int_equal(shn_connect(NULL, NULL), -EINVAL);
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/none.sock", dir);
	/* nobody listens there */
	int err = shn_connect(path, &c);
	assert_true(err == -ENOENT || err == -ECONNREFUSED);
	assert_null(c);
	rmdir(dir);
	/* a path too long for a Unix socket */
	char longp[300];
	memset(longp, 'x', sizeof(longp) - 1);
	longp[0] = '/';
	longp[sizeof(longp) - 1] = '\0';
	assert_int_equal(shn_connect(longp, &c), -ENAMETOOLONG);

	assert_int_equal(shn_port_open(NULL, NULL, (shn_port **)&c), -EINVAL);
	assert_int_equal(shn_port_close(NULL), -EINVAL);
	assert_int_equal(shn_port_fd(NULL), -EINVAL);
	shn_notification out[1];
	assert_int_equal(shn_port_get(NULL, out, 1, 0), -EINVAL);
	assert_int_equal(shn_port_unblock(NULL), -EINVAL);
	assert_int_equal(shn_notify(NULL, out, 1, 0), -EINVAL);
	assert_int_equal(shn_unsubscribe(NULL, 1), -EINVAL);
	shn_conn conn;
	assert_int_equal(shn_subscribe(NULL, "k", 1, 1, 0, &conn), -EINVAL);
	shn_disconnect(NULL); /* harmless */
}

/* The default socket path: absolute, and refused when it does not fit. */
static void test_default_path(void **state)
{
	char buf[256];
	(void)state;

	int n = shn_default_socket_path(buf, sizeof(buf));
	assert_true(n > 0);
	assert_int_equal((size_t)n, strlen(buf));
	assert_true(buf[0] == '/');
	assert_int_equal(shn_default_socket_path(buf, 4), -ENAMETOOLONG);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_symbols),
		cmocka_unit_test(test_no_internal_symbols),
		cmocka_unit_test(test_strerror),
		cmocka_unit_test(test_arguments_without_broker),
		cmocka_unit_test(test_default_path),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
