/* SPDX-License-Identifier: MIT */
/*
 * config.h - shmnotifyd's configuration: defaults, the INI file read with
 * libinih (--config), the command line over both, and --print-config.
 * docs/config.md describes every key.
 */
#ifndef SHND_CONFIG_H
#define SHND_CONFIG_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "acl.h"
#include "log.h"
#include "loop.h"

#define SHND_DEFAULT_CAPACITY (1u << 20)
#define SHND_DEFAULT_MAX_CAPACITY (64u << 20)

/* [limits] defaults.  Per client unless said otherwise. */
#define SHND_DEFAULT_MAX_CLIENTS 4096u          /* broker-wide */
#define SHND_DEFAULT_MAX_PORTS 4096u
#define SHND_DEFAULT_MAX_SUBS 65536u
#define SHND_DEFAULT_MAX_RING_BYTES (1ull << 30) /* publish ring + every port's ring */
/* The direct path's filter table: live filters (docs/direct-path.md); with
 * more the table says DISABLED and everything takes the broker path. */
#define SHND_DEFAULT_DIRECT_MAX_FILTERS 65536u
#define SHND_DIRECT_MAX_FILTERS_MAX (1u << 22)
#define SHND_DEFAULT_MAX_DIRECT_RINGS 1024u
#define SHND_DEFAULT_DIRECT_RINGS_PER_PORT 16u
#define SHND_DIRECT_RINGS_PER_PORT_MAX 32u      /* a port's slots are a 32-bit mask */
#define SHND_DEFAULT_DIRECT_RING_SIZE (4u << 20)
#define SHND_DEFAULT_MAX_DIRECT_BYTES (256ull << 20)
/* Connections accepted beyond max-clients only to be told -EUSERS in the
 * HELLO reply; past this many more they are closed at once. */
#define SHND_REFUSE_SLACK 64u

/* The longest spin-us accepted: a spin is a bounded window, not a mode
 * that keeps a CPU busy for good. */
#define SHND_SPIN_US_MAX 1000u

struct shnd_limits {
	uint32_t max_clients;     /* connected clients: more get -EUSERS */
	uint32_t max_ports;       /* per client: -ENOSPC */
	uint32_t max_subs;        /* per client: -ENOSPC */
	uint64_t max_ring_bytes;  /* per client, the sum of its ring capacities: -ENOSPC */
	uint32_t max_key;         /* bytes in a key, 1..SHN_KEY_MAX_WIRE: -EMSGSIZE */
	uint32_t max_data;        /* payload bytes, 0..SHN_DATA_MAX_WIRE: -EMSGSIZE */
	uint32_t direct_max_filters; /* broker-wide: filters the direct path's table holds */
	uint32_t max_direct_rings;   /* broker-wide: direct rings open */
	uint32_t direct_rings_per_port;
	uint32_t direct_ring_size;   /* bytes of one direct ring (power of two), at most the port's */
	uint64_t max_direct_bytes;   /* broker-wide: their capacities together */
};

struct shnd_config {
	char socket_path[108];
	bool default_path;            /* socket_path is the per-user default */
	enum shnd_io io;
	enum shnd_log_level log_level;
	uint32_t default_capacity;
	uint32_t max_capacity;
	uint32_t spin_us;             /* low-latency mode: busy-poll this long before sleeping */
	bool direct;                  /* --direct auto (true, the default) or off */
	struct shnd_limits lim;
	/* [socket]: a system broker's socket.  Without them: 0600, the
	 * broker's group, and only the broker's uid and root are accepted. */
	int sock_mode;                /* -1: not configured */
	bool has_group;
	gid_t sock_group;
	bool shared;                  /* the mode lets other users connect */
	struct shnd_acl acl;
	/* where values came from, for messages: the file's line (0: not
	 * from the file, or refused there) */
	const char *file;
	int line_default_capacity, line_max_capacity, line_max_ring_bytes;
};

/* What the command line may set (NULL: not given). */
struct shnd_cmdline {
	const char *socket;
	const char *log_level;
	const char *io;
	const char *default_cap;
	const char *max_cap;
	const char *spin_us;
	const char *direct;
};

/* Every default. */
void shnd_config_defaults(struct shnd_config *cfg);

/* Read the INI file at path over cfg.  0, or -1 after logging
 * "shmnotifyd: FILE:LINE: what is wrong" for every error of the file. */
int shnd_config_load(struct shnd_config *cfg, const char *path);

/* Apply the command line over cfg, check what depends on several values
 * (default-capacity at most max-capacity, whichever was given: an error,
 * never a change of the other), resolve the socket path and sort the ACL.
 * 0, or -1 after logging every error found. */
int shnd_config_finish(struct shnd_config *cfg, const struct shnd_cmdline *cl);

/* The effective configuration as an INI file shnd_config_load() reads. */
void shnd_config_print(const struct shnd_config *cfg, FILE *f);

/* Bytes with an optional K/M/G suffix (powers of 1024, optional "B" or
 * "iB"), min..max.  0 or -EINVAL. */
int shnd_parse_size(const char *s, uint64_t min, uint64_t max, uint64_t *out);

#endif
