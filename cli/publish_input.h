/* SPDX-License-Identifier: MIT */
/*
 * publish_input.h - what `shmnotify publish` reads from standard input: one
 * notification per line (publish KEY -), or the JSON lines `listen --json`
 * and `monitor` write (publish --json -), gathered into batches.
 *
 * This file owns the batch under construction: the notifications and the
 * bytes their key and data point into.  publish.c owns the connection.
 */
#ifndef SHN_CLI_PUBLISH_INPUT_H
#define SHN_CLI_PUBLISH_INPUT_H

#include "cli.h"

struct pub_batch {
	shn_notification *notes;
	size_t n, cap;
	/* the bytes each note points into: one allocation per note, freed by
	 * pub_batch_clear */
	void **bufs;
	/* JSON input: the batch the lines come from (listen's batch_id,
	 * sender_pid and batch_count), so that a captured stream replays
	 * with its batches as they were */
	bool has_origin;
	int64_t origin_batch, origin_pid, origin_count;
};

void pub_batch_clear(struct pub_batch *b);
void pub_batch_free(struct pub_batch *b);

/* Add one note (key and data copied).  false when out of memory. */
bool pub_batch_add(struct pub_batch *b, uint32_t event, const void *key, size_t key_len,
		   const void *data, size_t data_len);

/* Decode base64 (the standard alphabet, '=' padded, as listen --json
 * writes it; unpadded is taken too) into a malloc()ed buffer.  Returns the
 * byte count or -EINVAL; *out NULL when it fails. */
int pub_b64_decode(const char *s, size_t len, uint8_t **out);

/* One JSON line as listen --json writes it: key or key_base64, data or
 * data_base64, event (absent: dflt_event).  *system is set for a system
 * event (bits 28-31), which cannot be published: the caller skips it.
 * Fills the key/data/event of the note in *key..., malloc()ed, and the
 * batch it came from.  On failure writes why into why and returns false. */
struct pub_json_line {
	uint32_t event;
	uint8_t *key, *data;
	size_t key_len, data_len;
	bool system;
	bool has_origin;
	int64_t batch_id, sender_pid, batch_index, batch_count;
};

bool pub_parse_json_line(const char *line, size_t len, uint32_t dflt_event,
			 struct pub_json_line *out, char *why, size_t whylen);
void pub_json_line_free(struct pub_json_line *l);

#endif
