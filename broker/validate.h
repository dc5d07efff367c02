/* SPDX-License-Identifier: MIT */
/*
 * validate.h - the broker's decisions about bytes a client wrote, as pure
 * functions: no sockets, no broker state, no allocation.  control.c and
 * router.c call them; the fuzz targets (fuzz/) link this file alone.
 *
 *   control messages:  shnd_ctl_frame()  length bounds and magic
 *                      shnd_ctl_decode() type, handshake state, exact
 *                                        length, argument checks
 *   publish records:   shnd_pub_batch_check() + shnd_pub_notes_check()
 *                      on a private copy of the record
 */
#ifndef SHND_VALIDATE_H
#define SHND_VALIDATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* What the broker does with one control message. */
enum shnd_ctl_action {
	SHND_CTL_DROP,        /* protocol error: disconnect, count, never answer */
	SHND_CTL_VERSION,     /* HELLO of another version: -EPROTONOSUPPORT, then close */
	SHND_CTL_REPLY,       /* answer status (an argument error), change nothing */
	SHND_CTL_HELLO,       /* the handlers below: broker state decides the rest */
	SHND_CTL_PORT_OPEN,
	SHND_CTL_PORT_CLOSE,
	SHND_CTL_SUBSCRIBE,
	SHND_CTL_UNSUBSCRIBE,
	SHND_CTL_STATS,
	SHND_CTL_PUB_CHECK,
	SHND_CTL_SET_NAME,
	SHND_CTL_DIRECT_SETUP, /* the direct path: whether the client was granted it */
	SHND_CTL_DIRECT_CLOSE, /* and holds what it names is the handler's to decide */
	SHND_CTL_DIRECT_FAULT,
};

struct shnd_ctl_verdict {
	enum shnd_ctl_action action;
	unsigned type;        /* the message type (0 when the header is incomplete) */
	const char *why;      /* DROP: the reason logged */
	int status;           /* REPLY: the negative errno answered */
};

/* Framing: at most SHN_MSG_MAX bytes, a whole header, the right magic.
 * True when the message may go on to shnd_ctl_decode(); false with
 * v->action SHND_CTL_DROP. */
bool shnd_ctl_frame(const void *msg, size_t len, struct shnd_ctl_verdict *v);

/* Decide a framed message (shnd_ctl_frame() returned true) of a client
 * still waiting for its HELLO (handshake) or past it.  msg must be
 * aligned for struct shn_msg_subscribe (8 bytes). */
void shnd_ctl_decode(const void *msg, size_t len, bool handshake, struct shnd_ctl_verdict *v);

/* A publish record (type SHN_REC_BATCH), copied to private memory: check
 * its header.  Returns the note count (>= 1), or -EBADMSG.  rec must be
 * aligned for struct shn_pub_batch (8 bytes). */
int shnd_pub_batch_check(const uint8_t *rec, uint32_t len);

/* Then check its count notes (the value shnd_pub_batch_check returned) and
 * store the offset of each in notes[0..count).  Returns count, or -EBADMSG
 * (notes partly written).  On success every note lies inside the record
 * and the notes cover it exactly. */
int shnd_pub_notes_check(const uint8_t *rec, uint32_t len, uint32_t count, uint32_t *notes);

#endif
