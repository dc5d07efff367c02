/* SPDX-License-Identifier: MIT */
/*
 * direct.c - the library's end of the direct path's control plane
 * (docs/direct-path.md): asking for it in HELLO (unless
 * SHMNOTIFY_DIRECT=off), mapping the filter table and the port map that
 * DIRECT_SETUP hands over, and answering the DIRECT_OPEN / DIRECT_CLOSE
 * messages the broker sends unasked.
 *
 * Until the library writes and reads direct rings, it declines each ring
 * the broker offers: it closes the descriptors and answers DIRECT_CLOSE
 * ("done with the ring"), so the broker closes it and the pair keeps the
 * broker path; its publishers stamp brokered batches with generation 0,
 * which no port-map interval covers, so the broker skips no port for them.
 *
 * Below call.c: it sends its answers itself (they need no reply the caller
 * waits for) and calls no other file of libclient.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "direct.h"

uint32_t shn__direct_hello_flag(void)
{
	const char *v = getenv("SHMNOTIFY_DIRECT");

	if (v != NULL && (strcasecmp(v, "off") == 0 || strcmp(v, "0") == 0))
		return (0);
	return (SHN_HELLO_F_DIRECT);
}

static void close_fds(int *fds, int n)
{
	for (int i = 0; i < n; i++)
		if (fds[i] >= 0)
			close(fds[i]);
}

int shn__direct_map(shn_client *c, const struct shn_msg_direct_setup_reply *rep, int *fds,
		    int nfds)
{
	int err;

	if (nfds != SHN_DSETUP_NFDS || rep->table_size < sizeof(struct shn_ftab_hdr) ||
	    rep->table_size > ((uint64_t)1 << 40) || rep->pmap_size != SHN_PMAP_SEG_SIZE) {
		close_fds(fds, nfds);
		return (-EPROTO);
	}
	err = shn_segment_map(&c->ftab_seg, fds[SHN_DSETUP_FD_TABLE], (size_t)rep->table_size, 0);
	if (err < 0) {
		close(fds[SHN_DSETUP_FD_PMAP]);
		return (err == -EBADMSG ? -EPROTO : err);
	}
	err = shn_segment_map(&c->pmap_seg, fds[SHN_DSETUP_FD_PMAP], SHN_PMAP_SEG_SIZE, 0);
	if (err < 0) {
		shn_segment_close(&c->ftab_seg);
		return (err == -EBADMSG ? -EPROTO : err);
	}
	c->ftab = c->ftab_seg.addr;
	c->pmap = c->pmap_seg.addr;
	/* the header never changes after the broker hands it out: checked once */
	if (!shn_ftab_geometry_ok(c->ftab, c->ftab_seg.size) || c->pmap->magic != SHN_PMAP_MAGIC ||
	    c->pmap->nslots != SHN_PMAP_SLOTS) {
		shn__direct_unmap(c);
		return (-EPROTO);
	}
	return (0);
}

void shn__direct_unmap(shn_client *c)
{
	shn_segment_close(&c->ftab_seg);
	shn_segment_close(&c->pmap_seg);
	c->ftab = NULL;
	c->pmap = NULL;
}


/* Tell the broker we are done with a ring, without waiting: the reply is
 * taken by shn__direct_async when it comes. */
static void send_close(shn_client *c, uint32_t role, uint32_t slot, uint32_t port_id,
		       uint32_t ring_id)
{
	struct shn_msg_direct_close req;
	ssize_t n;

	memset(&req, 0, sizeof(req));
	req.hdr.magic = SHN_PROTO_MAGIC;
	req.hdr.version = SHN_PROTO_VERSION;
	req.hdr.type = SHN_MSG_DIRECT_CLOSE;
	req.hdr.id = ++c->next_msg_id;
	req.role = role;
	req.slot = slot;
	req.port_id = port_id;
	req.ring_id = ring_id;
	do {
		n = send(c->sock, &req, sizeof(req), MSG_NOSIGNAL);
	} while (n < 0 && errno == EINTR);
	/* a failure here means the broker is gone: the watcher sees the
	 * hang-up, and the new broker starts with no ring */
}

bool shn__direct_async(shn_client *c, const void *msg, size_t len)
{
	const struct shn_msg_hdr *h = msg;

	if (len < sizeof(*h) || h->magic != SHN_PROTO_MAGIC)
		return (false);
	switch (h->type) {
	case SHN_MSG_DIRECT_OPEN: {
		const struct shn_msg_direct_open *m = msg;

		if (len != sizeof(*m) || h->id != 0)
			return (false);   /* not the broker's: the caller calls it a protocol error */
		/* declined (see the top of this file); its descriptors were
		 * closed by the caller */
		send_close(c, m->role, m->slot, m->port_id, m->ring_id);
		return (true);
	}
	case SHN_MSG_DIRECT_CLOSE:
		/* the broker closing a ring we never use, or its reply to our
		 * send_close: nothing waits for either */
		return (true);
	default:
		return (false);
	}
}
