/* SPDX-License-Identifier: MIT */
/*
 * publish_input.c - the batch `shmnotify publish -` builds from standard
 * input, and the JSON lines it reads (see publish_input.h).
 */
#include "publish_input.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "util/base64.h"
#include "util/utf8.h"

void pub_batch_clear(struct pub_batch *b)
{
	for (size_t i = 0; i < b->n; i++)
		free(b->bufs[i]);
	b->n = 0;
	b->has_origin = false;
}

void pub_batch_free(struct pub_batch *b)
{
	pub_batch_clear(b);
	free(b->notes);
	free(b->bufs);
	memset(b, 0, sizeof *b);
}

bool pub_batch_add(struct pub_batch *b, uint32_t event, const void *key, size_t key_len,
		   const void *data, size_t data_len)
{
	char *buf;

	if (b->n == b->cap) {
		size_t ncap = b->cap ? b->cap * 2 : 64;
		shn_notification *nn = realloc(b->notes, ncap * sizeof *nn);
		void **nb;

		if (!nn)
			return false;
		b->notes = nn;
		nb = realloc(b->bufs, ncap * sizeof *nb);
		if (!nb)
			return false;
		b->bufs = nb;
		b->cap = ncap;
	}
	/* key and data in one allocation: +1 so that an empty pair still
	 * gets a pointer of its own */
	buf = malloc(key_len + data_len + 1);
	if (!buf)
		return false;
	memcpy(buf, key, key_len);
	if (data_len)
		memcpy(buf + key_len, data, data_len);
	b->bufs[b->n] = buf;
	b->notes[b->n] = (shn_notification){
		.event = event,
		.key = buf,
		.key_len = (uint16_t)key_len,
		.data = buf + key_len,
		.data_len = (uint32_t)data_len,
	};
	b->n++;
	return true;
}

int pub_b64_decode(const char *s, size_t len, uint8_t **out)
{
	size_t max = len / 4 * 3 + 3;
	unsigned flags = len % 4 == 0 ? SHU_B64_PAD : 0;
	int rc;

	*out = malloc(max ? max : 1);
	if (!*out)
		return -ENOMEM;
	rc = shu_b64_decode(s, len, *out, max, flags);
	if (rc < 0) {
		free(*out);
		*out = NULL;
	}
	return rc;
}

void pub_json_line_free(struct pub_json_line *l)
{
	free(l->key);
	free(l->data);
	l->key = l->data = NULL;
}

/* NAME (a string, or null) or NAME_base64 (a string): the bytes, malloc()ed.
 * *present false when neither is there. */
static bool bytes_member(const json_t *o, const char *name, uint8_t **out, size_t *len,
			 bool *present, char *why, size_t whylen)
{
	char b64name[32];
	const json_t *s = json_object_get(o, name), *b;
	int rc;

	snprintf(b64name, sizeof b64name, "%s_base64", name);
	b = json_object_get(o, b64name);
	*present = true;
	if (json_is_string(s)) {
		*len = json_string_length(s);
		*out = malloc(*len + 1);
		if (!*out) {
			snprintf(why, whylen, "out of memory");
			return false;
		}
		memcpy(*out, json_string_value(s), *len);
		return true;
	}
	if (s && !json_is_null(s)) {
		snprintf(why, whylen, "\"%s\" is not a string", name);
		return false;
	}
	if (json_is_string(b)) {
		rc = pub_b64_decode(json_string_value(b), json_string_length(b), out);
		if (rc < 0) {
			snprintf(why, whylen, "\"%s\" is not base64 (the standard alphabet)",
				 b64name);
			return false;
		}
		*len = (size_t)rc;
		return true;
	}
	if (b && !json_is_null(b)) {
		snprintf(why, whylen, "\"%s\" is not a string", b64name);
		return false;
	}
	*present = false;
	*out = NULL;
	*len = 0;
	return true;
}

static bool int_member(const json_t *o, const char *name, int64_t *v)
{
	const json_t *m = json_object_get(o, name);

	if (!json_is_integer(m))
		return false;
	*v = json_integer_value(m);
	return true;
}

bool pub_parse_json_line(const char *line, size_t len, uint32_t dflt_event,
			 struct pub_json_line *out, char *why, size_t whylen)
{
	json_error_t jerr;
	json_t *o;
	const json_t *ev;
	bool present, ok = false;

	memset(out, 0, sizeof *out);
	o = json_loadb(line, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!o) {
		snprintf(why, whylen, "not JSON (column %d: %s)", jerr.column, jerr.text);
		return false;
	}
	if (!json_is_object(o)) {
		snprintf(why, whylen, "not a JSON object");
		goto out;
	}
	ev = json_object_get(o, "event");
	out->event = dflt_event;
	if (ev) {
		if (!json_is_integer(ev) || json_integer_value(ev) <= 0 ||
		    json_integer_value(ev) > UINT32_MAX) {
			snprintf(why, whylen, "\"event\" is not a number from 1 to 0xffffffff");
			goto out;
		}
		out->event = (uint32_t)json_integer_value(ev);
	}
	/* listen writes system events (overflow, ...) into the stream; they
	 * are the broker's and the library's, never a publisher's */
	if ((out->event & SHN_EV_SYSTEM) || json_object_get(o, "system")) {
		out->system = true;
		ok = true;
		goto out;
	}
	if (!bytes_member(o, "key", &out->key, &out->key_len, &present, why, whylen))
		goto out;
	if (!present || out->key_len == 0 || out->key_len > SHN_KEY_MAX) {
		snprintf(why, whylen, present ? "the key is %zu bytes: 1 to %d are allowed"
					      : "no \"key\" (or \"key_base64\")",
			 out->key_len, SHN_KEY_MAX);
		goto out;
	}
	if (!bytes_member(o, "data", &out->data, &out->data_len, &present, why, whylen))
		goto out;
	if (out->data_len > SHN_DATA_MAX) {
		snprintf(why, whylen, "the data is %zu bytes; the most is %d", out->data_len,
			 SHN_DATA_MAX);
		goto out;
	}
	out->has_origin = int_member(o, "batch_id", &out->batch_id) &&
			  int_member(o, "batch_count", &out->batch_count) &&
			  int_member(o, "batch_index", &out->batch_index);
	if (!int_member(o, "sender_pid", &out->sender_pid))
		out->sender_pid = 0;
	ok = true;
out:
	json_decref(o);
	if (!ok)
		pub_json_line_free(out);
	return ok;
}
