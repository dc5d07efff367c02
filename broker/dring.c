/* SPDX-License-Identifier: MIT */
/*
 * dring.c - see dring.h.  Descriptors: each side gets, for what it must
 * not write, a descriptor reopened read-only (/proc/self/fd, O_RDONLY),
 * so that its mmap(PROT_WRITE, MAP_SHARED) fails.  A process can still
 * reopen that read-only descriptor writable through /proc; what it could
 * then scribble is only what it reads itself (the subscriber: the ring it
 * reads; the publisher: the head and counters of its own ring), each
 * side validating every index it reads from the other (shm/direct.h), so
 * it harms only itself.
 */
#define _GNU_SOURCE
#include "dring.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "client.h"
#include "ftab.h"
#include "log.h"
#include "shm/direct.h"

static struct shn_pmap_slot *pmap_slots(const struct shnd_client *c)
{
	return (struct shn_pmap_slot *)((uint8_t *)c->pmap_seg.addr + sizeof(struct shn_pmap_hdr));
}

bool shnd_dring_skips(const struct shnd_client *c, const struct shnd_port *p, uint64_t gen)
{
	const struct shn_pmap_slot *s;
	uint32_t ring;

	if (gen == 0 || c->pmap_seg.addr == NULL || c->pmap_used == 0)
		return (false);
	s = pmap_slots(c);
	return (shn_pmap_find(s, c->pmap_used, p->id, gen, &ring) >= 0);
}

static int reopen_ro(int fd)
{
	char path[64];

	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	return (open(path, O_RDONLY | O_CLOEXEC));
}

static int dup_fd(int fd)
{
	return (fcntl(fd, F_DUPFD_CLOEXEC, 0));
}

static void close_fds(int *fds, int n)
{
	for (int i = 0; i < n; i++)
		if (fds[i] >= 0)
			close(fds[i]);
}

static struct shnd_dring *find_pair(const struct shnd_client *c, const struct shnd_port *p)
{
	const struct shnd_list *pos;

	shnd_list_for_each(pos, &p->drings) {
		struct shnd_dring *d = shnd_list_entry(pos, struct shnd_dring, by_port);

		if (d->pub == c)
			return (d);
	}
	return (NULL);
}

void shnd_dring_loss_pending(struct shnd_port *p, const struct shnd_client *c)
{
	struct shnd_dring *d = find_pair(c, p);

	if (d == NULL || c->pmap_seg.addr == NULL)
		return;
	atomic_store_explicit(&pmap_slots(c)[d->pmap_slot].flags, SHN_PMAP_F_LOSS,
			      memory_order_release);
	p->dloss = true;
}

void shnd_dring_loss_told(struct shnd_port *p)
{
	const struct shnd_list *pos;

	shnd_list_for_each(pos, &p->drings) {
		const struct shnd_dring *d = shnd_list_entry(pos, const struct shnd_dring, by_port);

		if (d->pub->pmap_seg.addr != NULL)
			atomic_store_explicit(&pmap_slots(d->pub)[d->pmap_slot].flags, 0,
					      memory_order_release);
	}
	p->dloss = false;
}

uint32_t shnd_dring_ring_id(const struct shnd_client *c, const struct shnd_port *p)
{
	const struct shnd_dring *d = find_pair(c, p);

	return (d != NULL ? d->ring_id : 0);
}

static bool refuse(struct shnd_broker *b, const char *why, unsigned long long limit)
{
	b->tot.direct_refused++;
	shnd_debug("direct ring refused: %s (limit %llu)", why, limit);
	return (false);
}

static bool within_limits(struct shnd_broker *b, struct shnd_client *c, struct shnd_port *p,
			  uint32_t cap)
{
	const struct shnd_limits *l = &b->cfg.lim;

	if (b->ndrings >= l->max_direct_rings)
		return (refuse(b, "max-direct-rings", l->max_direct_rings));
	if (p->ndrings >= l->direct_rings_per_port)
		return (refuse(b, "direct-rings-per-port", l->direct_rings_per_port));
	if (c->pmap_used >= SHN_PMAP_SLOTS)
		return (refuse(b, "port map slots of one publisher", SHN_PMAP_SLOTS));
	if (b->dring_bytes + cap > l->max_direct_bytes)
		return (refuse(b, "max-direct-bytes", (unsigned long long)l->max_direct_bytes));
	return (true);
}

static void send_open(struct shnd_client *to, const struct shnd_dring *d, uint32_t role,
		      uint32_t slot, const struct shnd_client *peer, uint64_t open_gen,
		      int *fds, int nfds)
{
	struct shn_msg_direct_open m;

	memset(&m, 0, sizeof(m));
	m.hdr.magic = SHN_PROTO_MAGIC;
	m.hdr.version = SHN_PROTO_VERSION;
	m.hdr.type = SHN_MSG_DIRECT_OPEN;
	m.role = role;
	m.slot = slot;
	m.port_id = d->port->id;
	m.ring_id = d->ring_id;
	m.capacity = d->capacity;
	m.overflow = d->port->overflow;
	m.peer_client_id = peer->id;
	m.open_gen = open_gen;
	if (role == SHN_DIRECT_SUBSCRIBER) {
		m.sender_pid = (int32_t)peer->pid;
		m.sender_uid = (uint32_t)peer->uid;
	}
	shnd_client_send(to, &m, sizeof(m), fds, nfds, false);
}

void shnd_dring_offer(struct shnd_broker *b, struct shnd_client *c, struct shnd_port *p)
{
	struct shnd_client *sub = p->owner;
	int pfds[SHN_DOPEN_PUB_NFDS] = { -1, -1, -1, -1 };
	int sfds[SHN_DOPEN_SUB_NFDS] = { -1, -1 };
	struct shn_ring_prod *prod;
	struct shn_pmap_slot *s;
	struct shnd_dring *d;
	uint32_t cap, port_slot;
	uint64_t gen;
	int err;

	if (!c->direct_setup || !sub->direct_setup || p->cons_ro_fd < 0 ||
	    c->state != SHND_CLIENT_READY || sub->state != SHND_CLIENT_READY ||
	    find_pair(c, p) != NULL)
		return;
	for (uint32_t i = 0; i < c->ndeclined && i < SHND_DECLINED; i++)
		if (c->declined[i] == p->id)
			return;   /* it gave this port's ring back: the broker path */
	/* only a publisher the ACL lets publish every key: the broker path
	 * checks each batch, a direct ring could not */
	if (!c->acl.pub_all)
		return;
	/* as large as the port's own ring: a port's capacity is the backlog
	 * it holds from each publisher, whichever path carries it */
	cap = p->capacity;
	if (cap > b->cfg.lim.direct_ring_size) {
		refuse(b, "direct-ring-size below the port's capacity", b->cfg.lim.direct_ring_size);
		return;
	}
	if (!within_limits(b, c, p, cap))
		return;
	for (port_slot = 0; port_slot < 32 && (p->dring_slots & (1u << port_slot)); port_slot++)
		;
	d = calloc(1, sizeof(*d));
	if (d == NULL)
		return;
	d->ring_seg.fd = d->cons_seg.fd = -1;
	err = shn_segment_create(&d->ring_seg, "shmnotify-direct", SHN_RING_HDR_SIZE + (size_t)cap);
	if (err == 0)
		err = shn_segment_create(&d->cons_seg, "shmnotify-direct-cons",
					 SHN_DIRECT_CONS_SEG_SIZE);
	if (err)
		goto fail;
	prod = (struct shn_ring_prod *)((uint8_t *)d->ring_seg.addr + SHN_DIRECT_PROD_OFF);
	prod->capacity = cap;
	prod->magic = SHN_RING_MAGIC;
	pfds[SHN_DOPEN_FD_RING] = dup_fd(d->ring_seg.fd);
	pfds[SHN_DOPEN_FD_CONS] = reopen_ro(d->cons_seg.fd);
	pfds[SHN_DOPEN_FD_PORT_CONS] = dup_fd(p->cons_ro_fd);
	pfds[SHN_DOPEN_FD_PORT_EVENT] = dup_fd(p->event_fd);
	sfds[SHN_DOPEN_FD_RING] = reopen_ro(d->ring_seg.fd);
	sfds[SHN_DOPEN_FD_CONS] = dup_fd(d->cons_seg.fd);
	for (int i = 0; i < SHN_DOPEN_PUB_NFDS; i++)
		if (pfds[i] < 0)
			err = -errno;
	for (int i = 0; i < SHN_DOPEN_SUB_NFDS; i++)
		if (sfds[i] < 0)
			err = -errno;
	if (err)
		goto fail;
	/* the clients hold the descriptors now; the broker keeps its mappings */
	close(d->ring_seg.fd);
	close(d->cons_seg.fd);
	d->ring_seg.fd = d->cons_seg.fd = -1;

	d->pub = c;
	d->port = p;
	d->capacity = cap;
	d->ring_id = ++b->next_ring_id;
	d->pmap_slot = c->pmap_used++;
	d->port_slot = port_slot;
	p->dring_slots |= 1u << port_slot;
	shnd_list_add_tail(&c->drings, &d->by_pub);
	shnd_list_add_tail(&p->drings, &d->by_port);
	p->ndrings++;
	b->ndrings++;
	b->dring_bytes += cap;
	b->tot.direct_rings_opened++;

	/* the publisher's message first, then its port map slot live from a
	 * new generation (docs/protocol.md, DIRECT_OPEN), then the subscriber's */
	gen = atomic_load_explicit(&b->ftab.t->gen, memory_order_relaxed) + 1;
	d->open_gen = gen;
	send_open(c, d, SHN_DIRECT_PUBLISHER, d->pmap_slot, sub, gen, pfds, SHN_DOPEN_PUB_NFDS);
	s = &pmap_slots(c)[d->pmap_slot];
	s->port_id = p->id;
	s->ring_id = d->ring_id;
	atomic_store_explicit(&s->close_gen, SHN_PMAP_GEN_OPEN, memory_order_relaxed);
	atomic_store_explicit(&s->open_gen, gen, memory_order_relaxed);
	shnd_ftab_bump(b);
	send_open(sub, d, SHN_DIRECT_SUBSCRIBER, port_slot, c, gen, sfds, SHN_DOPEN_SUB_NFDS);
	shnd_debug("direct ring %u: client %llu -> port %u, %u bytes", d->ring_id,
		   (unsigned long long)c->id, p->id, cap);
	return;
fail:
	close_fds(pfds, SHN_DOPEN_PUB_NFDS);
	close_fds(sfds, SHN_DOPEN_SUB_NFDS);
	shn_segment_close(&d->ring_seg);
	shn_segment_close(&d->cons_seg);
	free(d);
	shnd_warn("direct ring for client %llu -> port %u: %s; the broker path carries it",
		  (unsigned long long)c->id, p->id, strerror(-err));
}

static void send_close(struct shnd_client *to, const struct shnd_dring *d, uint32_t role,
		       uint32_t slot, int why)
{
	struct shn_msg_direct_close m;

	if (to->state != SHND_CLIENT_READY)
		return;
	memset(&m, 0, sizeof(m));
	m.hdr.magic = SHN_PROTO_MAGIC;
	m.hdr.version = SHN_PROTO_VERSION;
	m.hdr.type = SHN_MSG_DIRECT_CLOSE;
	m.hdr.status = why;
	m.role = role;
	m.slot = slot;
	m.port_id = d->port->id;
	m.ring_id = d->ring_id;
	shnd_client_send(to, &m, sizeof(m), NULL, 0, false);
}

/* Stamp d closed from generation gen in its publisher's port map, tell
 * the survivors, free the broker's side.  The caller stores gen (one
 * bump for many rings). */
static void close_one(struct shnd_broker *b, struct shnd_dring *d, uint64_t gen, int why,
		      bool tell_pub, bool tell_sub)
{
	if (d->pub->pmap_seg.addr != NULL)
		atomic_store_explicit(&pmap_slots(d->pub)[d->pmap_slot].close_gen, gen,
				      memory_order_relaxed);
	if (tell_pub)
		send_close(d->pub, d, SHN_DIRECT_PUBLISHER, d->pmap_slot, why);
	if (tell_sub)
		send_close(d->port->owner, d, SHN_DIRECT_SUBSCRIBER, d->port_slot, why);
	shnd_list_del(&d->by_pub);
	shnd_list_del(&d->by_port);
	d->port->ndrings--;
	d->port->dring_slots &= ~(1u << d->port_slot);
	b->ndrings--;
	b->dring_bytes -= d->capacity;
	shn_segment_close(&d->ring_seg);
	shn_segment_close(&d->cons_seg);
	free(d);
}

static uint64_t next_gen(const struct shnd_broker *b)
{
	return (atomic_load_explicit(&b->ftab.t->gen, memory_order_relaxed) + 1);
}

struct shn_direct_barrier *shnd_dring_barrier(const struct shnd_port *p, uint32_t *n)
{
	struct shn_direct_barrier *e;
	const struct shnd_list *pos;
	uint32_t i = 0;

	*n = 0;
	if (p->ndrings == 0)
		return (NULL);
	e = calloc(p->ndrings, sizeof(*e));
	if (e == NULL)
		return (NULL);
	shnd_list_for_each(pos, &p->drings) {
		const struct shnd_dring *d = shnd_list_entry(pos, const struct shnd_dring, by_port);
		const struct shn_ring_prod *prod =
			(const void *)((const uint8_t *)d->ring_seg.addr + SHN_DIRECT_PROD_OFF);

		e[i].slot = d->port_slot;
		/* the publisher's value, a bound for the reader only */
		e[i].tail = atomic_load_explicit(&prod->tail, memory_order_acquire);
		i++;
	}
	*n = i;
	return (e);
}

/* A counter a client wrote: anything above 2^53 (what JSON numbers carry
 * exactly; more than a ring could see in centuries) is taken for 2^53. */
static uint64_t clamp(uint64_t v)
{
	return (v > (1ull << 53) ? (1ull << 53) : v);
}

static uint64_t add_sat(uint64_t a, uint64_t b)
{
	return (a + b < a ? UINT64_MAX : a + b);
}

void shnd_dring_port_counts(const struct shnd_port *p, struct shnd_dring_counts *out)
{
	const struct shnd_list *pos;

	memset(out, 0, sizeof(*out));
	shnd_list_for_each(pos, &p->drings) {
		const struct shnd_dring *d = shnd_list_entry(pos, const struct shnd_dring, by_port);
		struct shn_direct_reader_stats *rs =
			(void *)((uint8_t *)d->cons_seg.addr + SHN_DIRECT_RSTATS_OFF);

		out->rings++;
		out->a = add_sat(out->a, clamp(atomic_load_explicit(&rs->delivered,
								    memory_order_relaxed)));
		out->b = add_sat(out->b, clamp(atomic_load_explicit(&rs->late,
								    memory_order_relaxed)));
	}
}

void shnd_dring_pub_counts(const struct shnd_client *c, struct shnd_dring_counts *out)
{
	const struct shnd_list *pos;

	memset(out, 0, sizeof(*out));
	shnd_list_for_each(pos, &c->drings) {
		const struct shnd_dring *d = shnd_list_entry(pos, const struct shnd_dring, by_pub);
		struct shn_direct_pub_stats *ps =
			(void *)((uint8_t *)d->ring_seg.addr + SHN_DIRECT_PSTATS_OFF);

		out->rings++;
		out->a = add_sat(out->a, clamp(atomic_load_explicit(&ps->routed,
								    memory_order_relaxed)));
		out->b = add_sat(out->b, clamp(atomic_load_explicit(&ps->dropped,
								    memory_order_relaxed)));
	}
}

void shnd_dring_port_gone(struct shnd_broker *b, struct shnd_port *p)
{
	struct shnd_list *pos, *tmp;
	uint64_t gen;

	if (shnd_list_empty(&p->drings))
		goto out;
	gen = next_gen(b);
	shnd_list_for_each_safe(pos, tmp, &p->drings)
		close_one(b, shnd_list_entry(pos, struct shnd_dring, by_port), gen, -EPIPE,
			  true, false);
	shnd_ftab_bump(b);
out:
	if (p->cons_ro_fd >= 0)
		close(p->cons_ro_fd);
	p->cons_ro_fd = -1;
}

void shnd_dring_publisher_gone(struct shnd_broker *b, struct shnd_client *c)
{
	struct shnd_list *pos, *tmp;

	if (!shnd_list_empty(&c->drings)) {
		uint64_t gen = next_gen(b);

		shnd_list_for_each_safe(pos, tmp, &c->drings)
			close_one(b, shnd_list_entry(pos, struct shnd_dring, by_pub), gen,
				  -ECONNRESET, false, true);
		shnd_ftab_bump(b);
	}
	shn_segment_close(&c->pmap_seg);
}

int shnd_dring_close_request(struct shnd_broker *b, struct shnd_client *c,
			     const struct shn_msg_direct_close *req)
{
	struct shnd_list *pos, *tmp;

	if (req->ring_id == 0 || req->ring_id > b->next_ring_id)
		return (-ENOENT);
	if (req->role == SHN_DIRECT_PUBLISHER) {
		shnd_list_for_each_safe(pos, tmp, &c->drings) {
			struct shnd_dring *d = shnd_list_entry(pos, struct shnd_dring, by_pub);

			if (d->ring_id == req->ring_id) {
				c->declined[c->ndeclined++ % SHND_DECLINED] = d->port->id;
				close_one(b, d, next_gen(b), -EPIPE, false, true);
				shnd_ftab_bump(b);
				break;
			}
		}
		return (0);
	}
	shnd_list_for_each(pos, &c->ports) {
		struct shnd_port *p = shnd_list_entry(pos, struct shnd_port, by_client);
		struct shnd_list *dpos, *dtmp;

		shnd_list_for_each_safe(dpos, dtmp, &p->drings) {
			struct shnd_dring *d = shnd_list_entry(dpos, struct shnd_dring, by_port);

			if (d->ring_id == req->ring_id) {
				close_one(b, d, next_gen(b), -EPIPE, true, false);
				shnd_ftab_bump(b);
				return (0);
			}
		}
	}
	return (0);
}

bool shnd_dring_fault(struct shnd_broker *b, struct shnd_client *c,
		      const struct shn_msg_direct_fault *req)
{
	struct shnd_port *p = NULL;
	struct shnd_list *pos;

	shnd_list_for_each(pos, &c->ports) {
		struct shnd_port *q = shnd_list_entry(pos, struct shnd_port, by_client);

		if (q->id == req->port_id)
			p = q;
	}
	if (p == NULL)
		return (false);
	shnd_list_for_each(pos, &p->drings) {
		struct shnd_dring *d = shnd_list_entry(pos, struct shnd_dring, by_port);

		if (d->ring_id == req->ring_id && d->port_slot == req->slot) {
			struct shnd_client *pub = d->pub;

			b->tot.direct_faults++;
			/* as for a bad publish ring: cut off; its rings close
			 * when it is reclaimed (shnd_dring_publisher_gone) */
			shnd_client_fail(pub, &b->tot.ring_errors,
					 "direct ring %u to port %u (client %llu): a bad record",
					 d->ring_id, p->id, (unsigned long long)c->id);
			close_one(b, d, next_gen(b), -EBADMSG, false, false);
			shnd_ftab_bump(b);
			return (true);
		}
	}
	return (false);
}
