/* SPDX-License-Identifier: MIT */
/*
 * direct.c - the library's end of the direct path's control plane
 * (docs/direct-path.md): asking for it in HELLO (unless
 * SHMNOTIFY_DIRECT=off), mapping the filter table and the port map that
 * DIRECT_SETUP hands over, and answering the DIRECT_OPEN / DIRECT_CLOSE
 * messages the broker sends unasked.
 *
 * A ring for one of our ports goes to that port's inbox (its reader,
 * direct_read.c, adopts it); a ring for this client to write goes to
 * direct_pub.c.  A ring it cannot take is declined: it closes the
 * descriptors and answers DIRECT_CLOSE ("done with the ring"), so the
 * broker closes it and the pair keeps the broker path.
 *
 * Below call.c: it sends its answers itself (they need no reply the caller
 * waits for) and calls only direct_pub.c.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "direct.h"
#include "ftab_memo.h"
#include "direct_pub.h"

/* Is the switch var set to off (or 0)? */
static bool env_off(const char *var)
{
	const char *v = getenv(var);

	return (v != NULL && (strcasecmp(v, "off") == 0 || strcmp(v, "0") == 0));
}

uint32_t shn__direct_hello_flag(void)
{
	/* Asked for unless SHMNOTIFY_DIRECT=off (or 0): the switch for one
	 * process; the broker's --direct off is the switch for everyone. */
	return (env_off("SHMNOTIFY_DIRECT") ? 0 : SHN_HELLO_F_DIRECT);
}

/* the broker checks the fan-out DIRECT_SETUP carries against the same bound */
_Static_assert(SHN__DPLAN_PORTS == SHN_DIRECT_FANOUT_MAX, "fan-out bound");

uint32_t shn__direct_fanout(void)
{
	const char *v = getenv("SHMNOTIFY_DIRECT_FANOUT");
	char *end;
	unsigned long n;

	if (v == NULL || *v == '\0')
		return (SHN__DIRECT_FANOUT);
	errno = 0;
	n = strtoul(v, &end, 10);
	if (errno != 0 || *end != '\0' || n < 1 || n > SHN__DPLAN_PORTS)
		return (SHN__DIRECT_FANOUT);   /* not a count we take: the default */
	return ((uint32_t)n);
}

bool shn__direct_prewake(void)
{
	return (!env_off("SHMNOTIFY_DIRECT_PREWAKE"));
}

uint64_t shn__direct_wait_ns(void)
{
	const char *v = getenv("SHMNOTIFY_DIRECT_WAIT_US");
	char *end;
	unsigned long long us;

	if (v == NULL || *v == '\0')
		return (SHN__DP_WAIT_NS);
	errno = 0;
	us = strtoull(v, &end, 10);
	if (errno != 0 || *end != '\0' || us > SHN__DP_WAIT_MAX_US)
		return (SHN__DP_WAIT_NS);   /* not a time we take: the default */
	return ((uint64_t)us * 1000u);
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
	shn__ftab_memo_free(c);   /* what it holds is of another table */
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
	shn__ftab_memo_free(c);
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

/* A ring for one of our ports to read: map it and leave it in the port's
 * inbox; the port's reader adopts it (direct_read.c).  0, or -errno: the
 * caller declines the ring. */
static int offer_to_port(shn_client *c, const struct shn_msg_direct_open *m, int *fds, int nfds)
{
	struct shn__dring d;
	shn_port *p;
	struct shn_ring_prod *prod;
	uint64_t one = 1;
	int err, i;

	for (p = c->ports; p; p = p->next)
		if (atomic_load(&p->id) == m->port_id)
			break;
	if (p == NULL)
		return (-EINVAL);
	/* offered, whether it is adopted or declined below: the reader
	 * stops waiting for it (direct_read.c, await_offer) */
	pthread_mutex_lock(&p->swap_lock);
	if (p->offered_epoch != atomic_load(&c->loss_epoch) || p->offered_max < m->ring_id)
		p->offered_max = m->ring_id;
	p->offered_epoch = atomic_load(&c->loss_epoch);
	pthread_mutex_unlock(&p->swap_lock);
	if (nfds != SHN_DOPEN_SUB_NFDS || !shn_ring_capacity_ok(m->capacity) ||
	    m->slot >= SHN__DRINGS)
		return (-EINVAL);
	memset(&d, 0, sizeof(d));
	d.ring_seg.fd = d.cons_seg.fd = -1;
	err = shn_segment_map(&d.ring_seg, fds[SHN_DOPEN_FD_RING],
			      SHN_RING_HDR_SIZE + (size_t)m->capacity, 0);
	fds[SHN_DOPEN_FD_RING] = -1;
	if (err == 0)
		err = shn_segment_map(&d.cons_seg, fds[SHN_DOPEN_FD_CONS], SHN_DIRECT_CONS_SEG_SIZE, 1);
	fds[SHN_DOPEN_FD_CONS] = -1;
	prod = (void *)((uint8_t *)d.ring_seg.addr + SHN_DIRECT_PROD_OFF);
	if (err == 0 && (prod->magic != SHN_RING_MAGIC || prod->capacity != m->capacity))
		err = -EPROTO;
	if (err < 0) {
		shn_segment_close(&d.ring_seg);
		shn_segment_close(&d.cons_seg);
		return (err);
	}
	d.live = true;
	d.epoch = atomic_load(&c->loss_epoch);   /* which broker's */
	d.slot = m->slot;
	d.ring_id = m->ring_id;
	d.publisher = m->peer_client_id;
	d.sender_pid = m->sender_pid;
	d.sender_uid = m->sender_uid;
	d.lim.max_key_len = atomic_load(&c->max_key);
	d.lim.max_data_len = atomic_load(&c->max_data);
	d.lim.min_gen = m->open_gen;
	shn_ring_init_view(&d.ring, prod,
			   (void *)((uint8_t *)d.cons_seg.addr + SHN_DIRECT_CONS_OFF),
			   (uint8_t *)d.ring_seg.addr + SHN_RING_HDR_SIZE, m->capacity);
	pthread_mutex_lock(&p->swap_lock);
	for (i = 0; i < SHN__DRINGS && p->inbox[i].live; i++)
		;
	if (i == SHN__DRINGS) {
		pthread_mutex_unlock(&p->swap_lock);
		shn_segment_close(&d.ring_seg);
		shn_segment_close(&d.cons_seg);
		return (-ENOSPC);
	}
	p->inbox[i] = d;
	atomic_store(&p->dmail, true);
	if (write(p->event_fd, &one, sizeof(one)) < 0) {
		/* EAGAIN: already readable */
	}
	atomic_store(&p->efd_dirty, true);
	pthread_mutex_unlock(&p->swap_lock);
	return (0);
}

/* The broker closed a ring one of our ports reads: the reader drains it,
 * then unmaps it and answers (direct_read.c). */
static void close_for_port(shn_client *c, const struct shn_msg_direct_close *m)
{
	uint64_t one = 1;

	for (shn_port *p = c->ports; p; p = p->next) {
		if (atomic_load(&p->id) != m->port_id)
			continue;
		pthread_mutex_lock(&p->swap_lock);
		if (p->nclose < sizeof(p->close_ids) / sizeof(p->close_ids[0]))
			p->close_ids[p->nclose++] = m->ring_id;
		atomic_store(&p->dmail, true);
		if (write(p->event_fd, &one, sizeof(one)) < 0) {
			/* EAGAIN: already readable */
		}
		atomic_store(&p->efd_dirty, true);
		pthread_mutex_unlock(&p->swap_lock);
	}
}

void shn__direct_tell_closed(shn_client *c, uint32_t role, uint32_t slot, uint32_t port_id,
			     uint32_t ring_id)
{
	pthread_mutex_lock(&c->ctl_lock);
	if (!atomic_load(&c->broker_gone))
		send_close(c, role, slot, port_id, ring_id);
	pthread_mutex_unlock(&c->ctl_lock);
}

bool shn__direct_async(shn_client *c, const void *msg, size_t len, int *fds, int nfds)
{
	const struct shn_msg_hdr *h = msg;

	if (len < sizeof(*h) || h->magic != SHN_PROTO_MAGIC)
		return (false);
	switch (h->type) {
	case SHN_MSG_DIRECT_OPEN: {
		const struct shn_msg_direct_open *m = msg;

		if (len != sizeof(*m) || h->id != 0)
			return (false);   /* not the broker's: the caller calls it a protocol error */
		if (m->role == SHN_DIRECT_SUBSCRIBER && offer_to_port(c, m, fds, nfds) == 0)
			return (true);
		if (m->role == SHN_DIRECT_PUBLISHER && shn__dpub_open(c, m, fds, nfds) == 0)
			return (true);
		/* declined (a ring we could not map, or a port we no longer
		 * have); the caller closes what is left of its descriptors */
		send_close(c, m->role, m->slot, m->port_id, m->ring_id);
		return (true);
	}
	case SHN_MSG_DIRECT_CLOSE: {
		const struct shn_msg_direct_close *m = msg;

		/* the broker closing a ring, or its reply to a DIRECT_CLOSE we
		 * sent without waiting: nothing waits for either */
		if (len == sizeof(*m) && h->id == 0 && m->role == SHN_DIRECT_SUBSCRIBER)
			close_for_port(c, m);
		else if (len == sizeof(*m) && h->id == 0 && m->role == SHN_DIRECT_PUBLISHER)
			shn__dpub_close(c, m->ring_id);
		return (true);
	}
	default:
		return (false);
	}
}
