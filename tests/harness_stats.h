/* SPDX-License-Identifier: MIT */
/*
 * harness_stats.h - integration tests: the broker's stats document
 * (shn_stats_json), parsed with libjansson, and the integers tests look up
 * in it.  Every call fails the test (fail_msg) when the document is not
 * what docs/operations.md describes.
 */
#ifndef SHN_TEST_HARNESS_STATS_H
#define SHN_TEST_HARNESS_STATS_H

#include <jansson.h>
#include <sys/types.h>

#include <shmnotify.h>

/* The stats document of the broker behind c, parsed (json_decref it). */
json_t *hs_stats_doc(shn_client *c);

/* The integer `field` of the client whose pid is pid; -1 when no such
 * client is listed (fails when it is listed without that integer). */
long long hs_client_stat(shn_client *c, pid_t pid, const char *field);

/* The integer `field` of the "broker" object. */
long long hs_broker_stat(shn_client *c, const char *field);

#endif
