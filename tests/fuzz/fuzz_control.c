/* SPDX-License-Identifier: MIT */
/*
 * fuzz_control.c - libFuzzer target for the broker's control-message
 * decoder (broker/validate.c: shnd_ctl_frame, shnd_ctl_decode), without
 * sockets.
 *
 * Input: a conversation of one client.  Each message is a 2-byte
 * little-endian length (taken modulo SHN_MSG_MAX + 512, so too-long
 * messages occur too) followed by that many bytes (fewer at the end of the
 * input).  Each message is copied into a buffer of exactly its length, so
 * AddressSanitizer reports any read past what the client sent.  The client
 * starts in the handshake; a HELLO the broker would accept ends it; a
 * message the broker drops, or a version mismatch, ends the conversation,
 * as closing the socket would.
 *
 * Every verdict is checked against an independent statement of the rules in
 * docs/protocol.md (below), and every byte a handler would read is read.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/validate.h"
#include "shm/proto.h"

#define CHECK(cond)                                                                  \
	do {                                                                         \
		if (!(cond)) {                                                       \
			fprintf(stderr, "fuzz_control: %s:%d: %s\n", __FILE__, __LINE__, \
				#cond);                                              \
			abort();                                                     \
		}                                                                    \
	} while (0)

/* The fixed size each request type must have exactly (0: none, or at least
 * for SUBSCRIBE), from docs/protocol.md. */
static size_t want_size(unsigned type)
{
	switch (type) {
	case SHN_MSG_HELLO: return sizeof(struct shn_msg_hello);
	case SHN_MSG_PORT_OPEN: return sizeof(struct shn_msg_port_open);
	case SHN_MSG_PORT_CLOSE: return sizeof(struct shn_msg_port_close);
	case SHN_MSG_SUBSCRIBE: return sizeof(struct shn_msg_subscribe);
	case SHN_MSG_UNSUBSCRIBE: return sizeof(struct shn_msg_unsubscribe);
	case SHN_MSG_STATS: return sizeof(struct shn_msg_hdr);   /* or shn_msg_stats */
	case SHN_MSG_PUB_CHECK: return sizeof(struct shn_msg_pub_check);
	case SHN_MSG_SET_NAME: return sizeof(struct shn_msg_set_name);
	case SHN_MSG_DIRECT_SETUP: return sizeof(struct shn_msg_direct_setup);
	case SHN_MSG_DIRECT_CLOSE: return sizeof(struct shn_msg_direct_close);
	case SHN_MSG_DIRECT_FAULT: return sizeof(struct shn_msg_direct_fault);
	default: return 0;
	}
}

/* A client name, restated from docs/protocol.md without the broker's code:
 * 1..64 bytes; code points decoded by counting the lead byte's ones; each
 * must use its shortest form, be a scalar value (no surrogate, at most
 * U+10FFFF) and not a control character (U+0000-U+001F, U+007F-U+009F). */
static bool name_ok(const uint8_t *s, size_t n)
{
	if (n < 1 || n > 64)
		return false;
	for (size_t i = 0; i < n;) {
		unsigned ones = 0;
		uint32_t cp;

		while (ones < 8 && (s[i] & (0x80u >> ones)))
			ones++;
		if (ones == 1 || ones > 4 || (ones > 1 && i + ones > n))
			return false;   /* a stray continuation byte, or cut short */
		size_t len = ones ? ones : 1;
		cp = s[i] & (0xffu >> (ones + 1));
		for (size_t k = 1; k < len; k++) {
			if ((s[i + k] >> 6) != 2)
				return false;
			cp = cp << 6 | (s[i + k] & 0x3f);
		}
		static const uint32_t shortest[5] = { 0, 0, 0x80, 0x800, 0x10000 };
		if ((len > 1 && cp < shortest[len]) || cp > 0x10ffff ||
		    (cp >= 0xd800 && cp <= 0xdfff) || cp < 0x20 || (cp >= 0x7f && cp <= 0x9f))
			return false;
		i += len;
	}
	return true;
}

/* What the broker must do, restated from the protocol text. */
static enum shnd_ctl_action oracle(const uint8_t *msg, size_t len, bool handshake, int *status)
{
	struct shn_msg_hdr h;
	size_t need;

	*status = 0;
	if (len > SHN_MSG_MAX || len < sizeof(h))
		return SHND_CTL_DROP;
	memcpy(&h, msg, sizeof(h));
	if (h.magic != SHN_PROTO_MAGIC)
		return SHND_CTL_DROP;
	if (handshake != (h.type == SHN_MSG_HELLO))
		return SHND_CTL_DROP;   /* not HELLO first, or a second HELLO */
	if (h.type == SHN_MSG_HELLO && h.version != SHN_PROTO_VERSION) {
		*status = -EPROTONOSUPPORT;
		return SHND_CTL_VERSION;
	}
	need = want_size(h.type);
	if (need == 0)
		return SHND_CTL_DROP;   /* unknown type (SYNC_DONE is broker -> client) */
	if (h.type == SHN_MSG_STATS && len == sizeof(struct shn_msg_stats)) {
		struct shn_msg_stats m;

		/* with flags: only SHN_STATS_F_SUBSCRIPTIONS, reserved 0 */
		memcpy(&m, msg, sizeof(m));
		if ((m.flags & ~SHN_STATS_F_SUBSCRIPTIONS) != 0 || m.reserved != 0) {
			*status = -EINVAL;
			return SHND_CTL_REPLY;
		}
		return SHND_CTL_STATS;
	}
	if (h.type == SHN_MSG_SUBSCRIBE || h.type == SHN_MSG_PUB_CHECK || h.type == SHN_MSG_SET_NAME
	    ? len < need : len != need)
		return SHND_CTL_DROP;
	switch (h.type) {
	case SHN_MSG_HELLO: {
		struct shn_msg_hello m;

		memcpy(&m, msg, sizeof(m));
		if ((m.flags & ~SHN_HELLO_F_DIRECT) != 0) {
			*status = -EINVAL;
			return SHND_CTL_REPLY;
		}
		return SHND_CTL_HELLO;
	}
	case SHN_MSG_PORT_OPEN: {
		struct shn_msg_port_open m;

		memcpy(&m, msg, sizeof(m));
		if (m.overflow > 1) {
			*status = -EINVAL;
			return SHND_CTL_REPLY;
		}
		return SHND_CTL_PORT_OPEN;
	}
	case SHN_MSG_SUBSCRIBE: {
		struct shn_msg_subscribe m;
		bool ok;

		memcpy(&m, msg, sizeof(m));
		/* flags: 0, PREFIX (a key of 1.. bytes), ANY_KEY, or ANY_KEY |
		 * MONITOR (a monitor sees every key) */
		ok = m.conn != 0 &&
		     (m.flags == 0 || m.flags == SHN_SUB_PREFIX || m.flags == SHN_SUB_ANY_KEY ||
		      m.flags == (SHN_SUB_ANY_KEY | SHN_SUB_MONITOR)) &&
		     ((m.flags & SHN_SUB_ANY_KEY) ? m.key_len == 0
						  : m.key_len >= 1 && m.key_len <= 256) &&
		     len == sizeof(m) + m.key_len &&
		     (m.event_mask & 0x0fffffffu) != 0 && (m.event_mask & 0xf0000000u) == 0;
		if (!ok) {
			*status = -EINVAL;
			return SHND_CTL_REPLY;
		}
		return SHND_CTL_SUBSCRIBE;
	}
	case SHN_MSG_PUB_CHECK: {
		struct shn_msg_pub_check m;

		/* exactly the header and the key; 1..256 key bytes */
		memcpy(&m, msg, sizeof(m));
		if (len != sizeof(m) + m.key_len)
			return SHND_CTL_DROP;
		if (m.key_len == 0 || m.key_len > 256) {
			*status = -EINVAL;
			return SHND_CTL_REPLY;
		}
		return SHND_CTL_PUB_CHECK;
	}
	case SHN_MSG_SET_NAME: {
		struct shn_msg_set_name m;

		/* exactly the header and the name, reserved 0, a valid name or
		 * none: anything else is a protocol error (the library never
		 * sends it) */
		memcpy(&m, msg, sizeof(m));
		if (len != sizeof(m) + m.name_len || m.reserved != 0 || m.reserved2 != 0 ||
		    (m.name_len != 0 && !name_ok(msg + sizeof(m), m.name_len)))
			return SHND_CTL_DROP;
		return SHND_CTL_SET_NAME;
	}
	case SHN_MSG_DIRECT_SETUP: {
		struct shn_msg_direct_setup m;

		/* a fan-out of 1..64 ports, reserved 0 */
		memcpy(&m, msg, sizeof(m));
		return (m.fanout >= 1 && m.fanout <= 64 && m.reserved == 0) ? SHND_CTL_DIRECT_SETUP
									   : SHND_CTL_DROP;
	}
	case SHN_MSG_DIRECT_CLOSE: {
		struct shn_msg_direct_close m;

		/* role 1 (publisher) or 2 (subscriber); anything else: never sent */
		memcpy(&m, msg, sizeof(m));
		return (m.role == 1 || m.role == 2) ? SHND_CTL_DIRECT_CLOSE : SHND_CTL_DROP;
	}
	case SHN_MSG_DIRECT_FAULT: {
		struct shn_msg_direct_fault m;

		memcpy(&m, msg, sizeof(m));
		return m.reserved == 0 ? SHND_CTL_DIRECT_FAULT : SHND_CTL_DROP;
	}
	case SHN_MSG_PORT_CLOSE: return SHND_CTL_PORT_CLOSE;
	case SHN_MSG_UNSUBSCRIBE: return SHND_CTL_UNSUBSCRIBE;
	case SHN_MSG_STATS: return SHND_CTL_STATS;
	}
	return SHND_CTL_DROP;
}

static volatile uint64_t sink;

/* Read every byte the handler of an accepted message reads. */
static void touch(const uint8_t *msg, size_t len, enum shnd_ctl_action a)
{
	uint64_t x = 0;

	switch (a) {
	case SHND_CTL_SUBSCRIBE: {
		const struct shn_msg_subscribe *m = (const void *)msg;

		CHECK(len == sizeof(*m) + m->key_len);
		for (size_t i = 0; i < m->key_len; i++)   /* the key is copied at subscribe */
			x = x * 131 + m->key[i];
		x += m->conn + m->port_id + m->event_mask;
		break;
	}
	case SHND_CTL_PUB_CHECK: {
		const struct shn_msg_pub_check *m = (const void *)msg;

		CHECK(len == sizeof(*m) + m->key_len);
		for (size_t i = 0; i < m->key_len; i++)   /* the ACL compares the key */
			x = x * 131 + m->key[i];
		break;
	}
	case SHND_CTL_SET_NAME: {
		const struct shn_msg_set_name *m = (const void *)msg;

		CHECK(len == sizeof(*m) + m->name_len && m->name_len <= 64);
		for (size_t i = 0; i < m->name_len; i++)   /* copied into the client */
			x = x * 131 + m->name[i];
		break;
	}
	case SHND_CTL_HELLO:
		x = ((const struct shn_msg_hello *)(const void *)msg)->pub_capacity;
		break;
	case SHND_CTL_PORT_OPEN:
		x = ((const struct shn_msg_port_open *)(const void *)msg)->capacity;
		break;
	case SHND_CTL_PORT_CLOSE:
		x = ((const struct shn_msg_port_close *)(const void *)msg)->port_id;
		break;
	case SHND_CTL_UNSUBSCRIBE:
		x = ((const struct shn_msg_unsubscribe *)(const void *)msg)->conn;
		break;
	case SHND_CTL_DIRECT_SETUP:
		x = ((const struct shn_msg_direct_setup *)(const void *)msg)->fanout;
		CHECK(x >= 1 && x <= SHN_DIRECT_FANOUT_MAX);   /* router.c compares with it */
		break;
	default:
		break;
	}
	sink += x;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	bool handshake = true;
	size_t pos = 0;

	while (pos < size) {
		size_t len, avail;
		struct shnd_ctl_verdict v;
		uint8_t *msg;
		int status;
		enum shnd_ctl_action want;

		if (size - pos < 2)
			break;
		len = ((size_t)data[pos] | (size_t)data[pos + 1] << 8) % (SHN_MSG_MAX + 512);
		pos += 2;
		avail = size - pos;
		if (len > avail)
			len = avail;
		/* exactly len bytes (malloc aligns for any struct) */
		msg = malloc(len ? len : 1);
		CHECK(msg != NULL);
		if (len > 0)
			memcpy(msg, data + pos, len);
		pos += len;

		want = oracle(msg, len, handshake, &status);
		if (!shnd_ctl_frame(msg, len, &v)) {
			CHECK(v.action == SHND_CTL_DROP && v.why != NULL);
			CHECK(want == SHND_CTL_DROP);
			free(msg);
			return 0;
		}
		shnd_ctl_decode(msg, len, handshake, &v);
		if (v.action != want || v.status != status) {
			fprintf(stderr, "fuzz_control: len %zu handshake %d: decoded action %d "
				"status %d, the protocol says action %d status %d\n", len,
				handshake, v.action, v.status, want, status);
			abort();
		}
		CHECK(v.action != SHND_CTL_DROP || v.why != NULL);
		touch(msg, len, v.action);
		free(msg);
		if (v.action == SHND_CTL_DROP || v.action == SHND_CTL_VERSION)
			return 0;   /* the broker closes the connection */
		if (v.action == SHND_CTL_HELLO)
			handshake = false;
	}
	return 0;
}
