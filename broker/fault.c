/* SPDX-License-Identifier: MIT */
/*
 * fault.c - SHMNOTIFYD_TEST_FAIL_ALLOC (fault.h): parsing it, counting
 * attempts.  For tests only.
 */
#define _GNU_SOURCE
#include "fault.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

#define FAULT_ENV "SHMNOTIFYD_TEST_FAIL_ALLOC"

uint64_t shnd_fault_fail_at[SHND_FAULT_NSITES];
static uint64_t attempts[SHND_FAULT_NSITES];

static const char *const site_names[SHND_FAULT_NSITES] = {
	[SHND_FAULT_MATCH] = "match",
};

int shnd_fault_init(void)
{
	const char *v = getenv(FAULT_ENV), *colon;
	unsigned long long n;
	char *end;
	int s;

	if (v == NULL || v[0] == '\0')
		return (0);
	colon = strchr(v, ':');
	for (s = 0; colon != NULL && s < SHND_FAULT_NSITES; s++)
		if ((size_t)(colon - v) == strlen(site_names[s]) &&
		    memcmp(v, site_names[s], (size_t)(colon - v)) == 0)
			break;
	if (colon == NULL || s == SHND_FAULT_NSITES || colon[1] < '1' || colon[1] > '9')
		goto bad;
	errno = 0;
	n = strtoull(colon + 1, &end, 10);
	if (errno != 0 || *end != '\0')
		goto bad;
	shnd_fault_fail_at[s] = n;
	shnd_warn("%s=%s: allocation attempt %llu at site %s will fail (fault injection, for "
		  "tests only)", FAULT_ENV, v, n, site_names[s]);
	return (0);
bad:
	shnd_err("%s=%s: expected SITE:N with SITE match and N >= 1 (fault injection for tests; "
		 "unset it to run normally)", FAULT_ENV, v);
	return (-EINVAL);
}

bool shnd_fault_count(enum shnd_fault_site s)
{
	return (++attempts[s] == shnd_fault_fail_at[s]);
}
