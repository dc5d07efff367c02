/* SPDX-License-Identifier: MIT */
/*
 * validate.c - see validate.h.  Everything here reads only the bytes it is
 * given (a private copy: the control message received, or the publish
 * record copied out of shared memory) and decides; nothing is trusted.
 */
#include "validate.h"

#include <errno.h>

#include "shm/proto.h"

/* ---- control messages (docs/protocol.md) ------------------------------ */

static void drop(struct shnd_ctl_verdict *v, const char *why)
{
	v->action = SHND_CTL_DROP;
	v->why = why;
}

bool shnd_ctl_frame(const void *msg, size_t len, struct shnd_ctl_verdict *v)
{
	const struct shn_msg_hdr *h = msg;

	v->type = 0;
	v->why = NULL;
	v->status = 0;
	if (len > SHN_MSG_MAX) {
		drop(v, "message longer than SHN_MSG_MAX");
		return (false);
	}
	if (len < sizeof(*h)) {
		drop(v, "message shorter than a header");
		return (false);
	}
	v->type = h->type;
	if (h->magic != SHN_PROTO_MAGIC) {
		drop(v, "bad magic");
		return (false);
	}
	return (true);
}

/* Exactly sizeof(type) bytes, or a protocol error. */
static bool need(size_t len, size_t size, struct shnd_ctl_verdict *v)
{
	if (len == size)
		return (true);
	drop(v, len < size ? "short message" : "message too long");
	return (false);
}

static void handler(struct shnd_ctl_verdict *v, enum shnd_ctl_action a, int status)
{
	v->action = status != 0 ? SHND_CTL_REPLY : a;
	v->status = status;
}

static int subscribe_args(const struct shn_msg_subscribe *req, size_t len)
{
	bool any = (req->flags & SHN_SUB_ANY_KEY) != 0;

	if ((req->flags & SHN_SUB_MONITOR) && !any)
		return (-EINVAL);   /* a monitor sees every key */
	/* a prefix has 1.. bytes (the library sends an empty one as ANY_KEY) */
	if ((req->flags & SHN_SUB_PREFIX) && any)
		return (-EINVAL);
	if (req->conn == 0 ||
	    (req->flags & ~(SHN_SUB_ANY_KEY | SHN_SUB_MONITOR | SHN_SUB_PREFIX)) != 0 ||
	    (any ? req->key_len != 0 : (req->key_len == 0 || req->key_len > SHN_KEY_MAX_WIRE)) ||
	    len != sizeof(*req) + req->key_len ||
	    (req->event_mask & SHN_EV_ALL_WIRE) == 0 || (req->event_mask & SHN_EV_SYSTEM_WIRE) != 0)
		return (-EINVAL);
	return (0);
}

/* SET_NAME: the library checks the same rule (shn_name_valid) before it
 * sends, so whatever breaks it comes from a broken or hostile client: a
 * protocol error, not an argument error. */
static void set_name(const void *msg, size_t len, struct shnd_ctl_verdict *v)
{
	const struct shn_msg_set_name *sn = msg;

	if (len < sizeof(*sn))
		drop(v, "short message");
	else if (len != sizeof(*sn) + sn->name_len)
		drop(v, len < sizeof(*sn) + sn->name_len ? "short message" : "message too long");
	else if (sn->reserved != 0 || sn->reserved2 != 0)
		drop(v, "reserved field of SET_NAME not 0");
	else if (sn->name_len != 0 && !shn_name_valid(sn->name, sn->name_len))
		drop(v, "client name longer than 64 bytes, not UTF-8, or with a control character");
	else
		handler(v, SHND_CTL_SET_NAME, 0);
}

void shnd_ctl_decode(const void *msg, size_t len, bool handshake, struct shnd_ctl_verdict *v)
{
	const struct shn_msg_hdr *h = msg;
	unsigned type = h->type;

	v->type = type;
	v->why = NULL;
	v->status = 0;
	if (handshake) {
		const struct shn_msg_hello *hello = msg;

		if (type != SHN_MSG_HELLO) {
			drop(v, "first message is not HELLO");
			return;
		}
		if (h->version != SHN_PROTO_VERSION) {
			v->action = SHND_CTL_VERSION;
			v->status = -EPROTONOSUPPORT;
			return;
		}
		if (need(len, sizeof(struct shn_msg_hello), v))
			handler(v, SHND_CTL_HELLO,
				(hello->flags & ~SHN_HELLO_F_DIRECT) != 0 ? -EINVAL : 0);
		return;
	}
	switch (type) {
	case SHN_MSG_PORT_OPEN:
		if (need(len, sizeof(struct shn_msg_port_open), v)) {
			const struct shn_msg_port_open *po = msg;

			handler(v, SHND_CTL_PORT_OPEN,
				po->overflow != SHN_OVERFLOW_DROP_WIRE &&
				po->overflow != SHN_OVERFLOW_BLOCK_WIRE ? -EINVAL : 0);
		}
		break;
	case SHN_MSG_PORT_CLOSE:
		if (need(len, sizeof(struct shn_msg_port_close), v))
			handler(v, SHND_CTL_PORT_CLOSE, 0);
		break;
	case SHN_MSG_SUBSCRIBE:
		if (len < sizeof(struct shn_msg_subscribe))
			drop(v, "short message");
		else
			handler(v, SHND_CTL_SUBSCRIBE, subscribe_args(msg, len));
		break;
	case SHN_MSG_UNSUBSCRIBE:
		if (need(len, sizeof(struct shn_msg_unsubscribe), v))
			handler(v, SHND_CTL_UNSUBSCRIBE, 0);
		break;
	case SHN_MSG_STATS:
		/* the header alone, or with flags (SHN_HELLO_F_STATS_FLAGS) */
		if (len == sizeof(struct shn_msg_hdr)) {
			handler(v, SHND_CTL_STATS, 0);
		} else if (need(len, sizeof(struct shn_msg_stats), v)) {
			const struct shn_msg_stats *st = msg;

			handler(v, SHND_CTL_STATS,
				(st->flags & ~SHN_STATS_F_SUBSCRIPTIONS) != 0 || st->reserved != 0 ?
				-EINVAL : 0);
		}
		break;
	case SHN_MSG_PUB_CHECK:
		if (len < sizeof(struct shn_msg_pub_check)) {
			drop(v, "short message");
		} else {
			const struct shn_msg_pub_check *pc = msg;

			if (len != sizeof(*pc) + pc->key_len)
				drop(v, len < sizeof(*pc) + pc->key_len ? "short message"
									 : "message too long");
			else
				handler(v, SHND_CTL_PUB_CHECK,
					pc->key_len == 0 || pc->key_len > SHN_KEY_MAX_WIRE ? -EINVAL : 0);
		}
		break;
	case SHN_MSG_SET_NAME:
		set_name(msg, len, v);
		break;
	case SHN_MSG_DIRECT_SETUP:
		if (need(len, sizeof(struct shn_msg_direct_setup), v)) {
			const struct shn_msg_direct_setup *ds = msg;

			if (ds->fanout < 1 || ds->fanout > SHN_DIRECT_FANOUT_MAX)
				drop(v, "DIRECT_SETUP with a fan-out outside 1..64");
			else if (ds->reserved != 0)
				drop(v, "DIRECT_SETUP with its reserved field set");
			else
				handler(v, SHND_CTL_DIRECT_SETUP, 0);
		}
		break;
	case SHN_MSG_DIRECT_CLOSE:
		if (need(len, sizeof(struct shn_msg_direct_close), v)) {
			const struct shn_msg_direct_close *dc = msg;

			if (dc->role != SHN_DIRECT_PUBLISHER && dc->role != SHN_DIRECT_SUBSCRIBER)
				drop(v, "DIRECT_CLOSE with a role that is neither publisher nor "
				     "subscriber");
			else
				handler(v, SHND_CTL_DIRECT_CLOSE, 0);
		}
		break;
	case SHN_MSG_DIRECT_FAULT:
		if (need(len, sizeof(struct shn_msg_direct_fault), v)) {
			const struct shn_msg_direct_fault *df = msg;

			if (df->reserved != 0)
				drop(v, "reserved field of DIRECT_FAULT not 0");
			else
				handler(v, SHND_CTL_DIRECT_FAULT, 0);
		}
		break;
	case SHN_MSG_HELLO:
		drop(v, "second HELLO");
		break;
	default:
		drop(v, "unknown message type");
		break;
	}
}

/* ---- publish records (docs/ring.md) ----------------------------------- */

int shnd_pub_batch_check(const uint8_t *rec, uint32_t len)
{
	const struct shn_pub_batch *pb = (const void *)rec;
	uint32_t count;

	if (len < sizeof(*pb) || pb->h.len != len || pb->h.type != SHN_REC_BATCH ||
	    (pb->flags & ~SHN_PUB_SYNC) != 0)
		return (-EBADMSG);
	count = pb->count;
	if (count == 0 || count > (len - sizeof(*pb)) / sizeof(struct shn_pub_note))
		return (-EBADMSG);
	return ((int)count);
}

int shnd_pub_notes_check(const uint8_t *rec, uint32_t len, uint32_t count, uint32_t *notes)
{
	uint32_t off = sizeof(struct shn_pub_batch), i;

	for (i = 0; i < count; i++) {
		const struct shn_pub_note *pn = (const void *)(rec + off);
		uint32_t sz;

		if (len - off < sizeof(*pn))
			return (-EBADMSG);
		if (pn->key_len == 0 || pn->key_len > SHN_KEY_MAX_WIRE ||
		    pn->data_len > SHN_DATA_MAX_WIRE || pn->event == 0 ||
		    ((pn->event & SHN_EV_SYSTEM_WIRE) != 0 && pn->event != SHN_EV_OVERFLOW_WIRE))
			return (-EBADMSG);
		sz = shn_pub_note_size(pn->key_len, pn->data_len);
		if (sz > len - off)
			return (-EBADMSG);
		if (pn->event == SHN_EV_OVERFLOW_WIRE &&
		    (pn->data_len != 8 || shn_gap_count(pn) == 0))
			return (-EBADMSG);   /* a gap report: exactly a non-zero count */
		notes[i] = off;
		off += sz;
	}
	if (off != len)
		return (-EBADMSG);
	return ((int)count);
}
