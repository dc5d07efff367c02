/* SPDX-License-Identifier: MIT */
/*
 * wire.c - see wire.h.
 */
#include "wire.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "subject.h"
#include "util/base64.h"

/* Set header name to v printed with fmt (one uint64_t conversion), unless
 * an earlier header failed (s): the first failure is the one returned. */
static natsStatus set_number(natsMsg *m, natsStatus s, const char *name, const char *fmt,
			     uint64_t v)
{
	char num[32];

	if (s != NATS_OK)
		return (s);
	snprintf(num, sizeof(num), fmt, v);
	return (natsMsgHeader_Set(m, name, num));
}

natsStatus br_wire_set(natsMsg *m, const char *origin, uint64_t epoch, uint64_t seq,
		       uint64_t batch, uint32_t index, uint32_t count, uint32_t event,
		       const uint8_t *key, size_t key_len, uint64_t msg_id)
{
	char k64[4 * ((SHN_KEY_MAX + 2) / 3) + 1], id[BR_NODE_MAX + 48];
	natsStatus s;

	s = natsMsgHeader_Set(m, "Shn-Origin", origin);
	s = set_number(m, s, "Shn-Epoch", "%" PRIu64, epoch);
	s = set_number(m, s, "Shn-Seq", "%" PRIu64, seq);
	s = set_number(m, s, "Shn-Batch", "%" PRIu64, batch);
	s = set_number(m, s, "Shn-Index", "%" PRIu64, index);
	s = set_number(m, s, "Shn-Count", "%" PRIu64, count);
	s = set_number(m, s, "Shn-Event", "0x%08" PRIx64, event);
	shu_b64_encode(key, key_len, k64, SHU_B64_URL);
	if (s == NATS_OK)
		s = natsMsgHeader_Set(m, "Shn-Key", k64);
	if (s == NATS_OK && msg_id != 0) {
		snprintf(id, sizeof(id), "%s.%" PRIu64 ".%" PRIu64, origin, epoch, msg_id);
		s = natsMsgHeader_Set(m, "Nats-Msg-Id", id);
	}
	return (s);
}

/* A decimal or 0x-hex number with nothing else, at most max. */
static bool number(natsMsg *m, const char *name, bool hex, uint64_t max, uint64_t *out)
{
	const char *v = NULL;
	uint64_t x = 0;
	int base = 10;

	if (natsMsgHeader_Get(m, name, &v) != NATS_OK || v == NULL || *v == '\0')
		return (false);
	if (hex) {
		if (v[0] != '0' || v[1] != 'x' || v[2] == '\0')
			return (false);
		v += 2;
		base = 16;
	}
	for (; *v; v++) {
		int d;

		if (*v >= '0' && *v <= '9')
			d = *v - '0';
		else if (base == 16 && *v >= 'a' && *v <= 'f')
			d = *v - 'a' + 10;
		else if (base == 16 && *v >= 'A' && *v <= 'F')
			d = *v - 'A' + 10;
		else
			return (false);
		if (x > (max - (uint64_t)d) / (uint64_t)base)
			return (false);
		x = x * (uint64_t)base + (uint64_t)d;
	}
	*out = x;
	return (true);
}

int br_wire_parse(natsMsg *m, const struct br_rule *ru, struct br_wire *w, const char **why)
{
	const char *subj = natsMsg_GetSubject(m), *origin = NULL, *k64 = NULL;
	size_t plen = strlen(ru->subject), slen, olen;
	uint8_t suffix[SHN_KEY_MAX], exact[SHN_KEY_MAX];
	uint64_t v;
	int n, kn;

#define BAD(reason) do { *why = (reason); return (-EINVAL); } while (0)
	memset(w, 0, sizeof(*w));
	if (subj == NULL)
		BAD("no subject");
	slen = strlen(subj);
	if (slen <= plen + 1 || strncmp(subj, ru->subject, plen) != 0 || subj[plen] != '.')
		BAD("subject outside the rule's prefix");
	n = br_subject_decode(subj + plen + 1, slen - plen - 1, suffix, sizeof(suffix));
	if (n < 0)
		BAD("subject is not a key's encoding");
	if ((size_t)n + ru->prefix_len > SHN_KEY_MAX || (size_t)n + ru->prefix_len == 0)
		BAD("key too long here (rule prefix + subject suffix > 256 bytes)");
	if (natsMsgHeader_Get(m, "Shn-Origin", &origin) != NATS_OK || origin == NULL)
		BAD("no Shn-Origin header");
	olen = strlen(origin);
	if (olen == 0 || olen > BR_NODE_MAX)
		BAD("bad Shn-Origin");
	for (size_t i = 0; i < olen; i++)
		if (!br_token_char((unsigned char)origin[i]))
			BAD("bad Shn-Origin");
	memcpy(w->origin, origin, olen + 1);
	if (!number(m, "Shn-Epoch", false, UINT64_MAX, &w->epoch))
		BAD("bad Shn-Epoch");
	if (!number(m, "Shn-Seq", false, UINT64_MAX, &w->seq) || w->seq == 0)
		BAD("bad Shn-Seq");
	if (!number(m, "Shn-Batch", false, UINT64_MAX, &w->batch))
		BAD("bad Shn-Batch");
	if (!number(m, "Shn-Count", false, BR_BATCH_MAX, &v) || v == 0)
		BAD("bad Shn-Count");
	w->count = (uint32_t)v;
	if (!number(m, "Shn-Index", false, w->count - 1, &v))
		BAD("bad Shn-Index");
	w->index = (uint32_t)v;
	if (!number(m, "Shn-Event", true, UINT32_MAX, &v) || (v & SHN_EV_ALL) == 0 ||
	    (v & SHN_EV_SYSTEM) != 0)
		BAD("bad Shn-Event (needs an application bit and no system bit)");
	w->event = (uint32_t)v;
	if (natsMsgHeader_Get(m, "Shn-Key", &k64) != NATS_OK || k64 == NULL)
		BAD("no Shn-Key header");
	kn = shu_b64_decode(k64, strlen(k64), exact, sizeof(exact), SHU_B64_URL);
	if (kn < 1)
		BAD("bad Shn-Key");
	/* the subject names the key's suffix under the origin's prefix: the
	 * exact key must end with it */
	if (kn < n || memcmp(exact + kn - n, suffix, (size_t)n) != 0)
		BAD("Shn-Key does not end with the subject's key suffix");
	if (natsMsg_GetDataLength(m) > SHN_DATA_MAX)
		BAD("payload longer than SHN_DATA_MAX");
	memcpy(w->key, ru->prefix, ru->prefix_len);
	memcpy(w->key + ru->prefix_len, suffix, (size_t)n);
	w->key_len = (uint16_t)(ru->prefix_len + n);
	w->data = natsMsg_GetData(m);
	w->data_len = (uint32_t)natsMsg_GetDataLength(m);
	w->subject = subj;
	return (0);
#undef BAD
}
