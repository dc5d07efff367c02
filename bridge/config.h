/* SPDX-License-Identifier: MIT */
/*
 * config.h - shmnotify-bridge's configuration: an INI file read with
 * libinih, checked strictly (an unknown section or key, a bad value, a
 * missing one is an error naming FILE:LINE).  shmnotify-bridge(1) and
 * docs/multi-host.md describe every key.
 */
#ifndef BR_CONFIG_H
#define BR_CONFIG_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include <shmnotify.h>

#define BR_NODE_MAX     32     /* bytes in a node id */
#define BR_SUBJECT_MAX  200    /* bytes in a rule's subject prefix */
#define BR_NAME_MAX     32     /* bytes in a rule name, a stream or durable name */
#define BR_SERVERS_MAX  16
#define BR_PATH_MAX     4096
#define BR_RULES_MAX    64

enum br_dir { BR_OUT = 1, BR_IN = 2, BR_BOTH = 3 };
enum br_mode { BR_CORE, BR_JETSTREAM };

struct br_rule {
	char name[BR_NAME_MAX + 1];
	uint8_t prefix[SHN_KEY_MAX];   /* local key prefix, binary */
	uint16_t prefix_len;
	char subject[BR_SUBJECT_MAX + 1];  /* NATS subject prefix: tokens, no wildcard */
	unsigned dir;                  /* enum br_dir bits */
	uint32_t events;               /* application event bits carried */
	int line;                      /* of its section header */
	bool has_keys, has_subject, has_dir;
};

struct br_config {
	const char *file;
	char node[BR_NODE_MAX + 1];
	char socket[108];              /* "": libshmnotify's default */
	char *servers[BR_SERVERS_MAX];
	int nservers;
	enum br_mode mode;
	char stream[BR_NAME_MAX + 1];  /* JetStream stream */
	char durable[BR_NAME_MAX + 1]; /* JetStream durable consumer prefix */
	char state_file[BR_PATH_MAX];  /* "": none */
	char stats_file[BR_PATH_MAX];  /* "": none */
	struct br_rule *rules;
	int nrules;
};

/* Read and check the file.  0, or -1 after writing
 * "shmnotify-bridge: FILE:LINE: what is wrong" to stderr. */
int br_config_load(struct br_config *cfg, const char *path);
void br_config_free(struct br_config *cfg);

/* What the configuration means, in a few lines (--check-config). */
void br_config_print(const struct br_config *cfg, FILE *out);

/* Is this a valid subject prefix (tokens of [A-Za-z0-9_-] joined by '.')? */
bool br_subject_prefix_ok(const char *s);

#endif
