/* SPDX-License-Identifier: MIT */
/*
 * port.c - ports and subscriptions: creation, lookup, teardown, and
 * unlinking them from everything that borrows them (the index, the
 * router's lists, a publisher held back by a port).
 */
#define _GNU_SOURCE
#include "port.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "array.h"
#include "dring.h"
#include "index.h"

/* Port ids are never reused while the broker runs (32 bits: a wrap would
 * take four billion opens), so a stale id from a client never names
 * another client's port. */
static uint32_t next_port_id(struct shnd_broker *b)
{
	for (;;) {
		uint32_t id = ++b->next_port_id;

		if (id != 0 && shnd_map_find(&b->ports, id) == NULL)
			return (id);
	}
}

int shnd_port_create(struct shnd_broker *b, struct shnd_client *c, uint32_t capacity,
		     uint32_t overflow, struct shnd_port **out, int fds[SHN_PORT_NFDS])
{
	struct shnd_port *p = calloc(1, sizeof(*p));
	struct shn_ring_prod *prod;
	int err, i;

	for (i = 0; i < SHN_PORT_NFDS; i++)
		fds[i] = -1;
	if (p == NULL)
		return (-ENOMEM);
	p->ring_seg.fd = p->cons_seg.fd = p->event_fd = p->cons_ro_fd = -1;
	shnd_list_init(&p->drings);
	err = shn_segment_create(&p->ring_seg, "shmnotify-port", SHN_RING_HDR_SIZE + (size_t)capacity);
	if (err)
		goto fail;
	err = shn_segment_create(&p->cons_seg, "shmnotify-cons", SHN_CONS_SEG_SIZE);
	if (err)
		goto fail;
	prod = (struct shn_ring_prod *)((uint8_t *)p->ring_seg.addr + SHN_DEL_PROD_OFF);
	prod->capacity = capacity;
	prod->magic = SHN_RING_MAGIC;
	shn_ring_init_view(&p->ring, prod, p->cons_seg.addr,
			   (uint8_t *)p->ring_seg.addr + SHN_RING_HDR_SIZE, capacity);
	/* after our mapping, before anyone else gets the descriptor */
	err = shn_segment_seal_readonly(&p->ring_seg);
	if (err)
		goto fail;
	p->event_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (p->event_fd < 0) {
		err = -errno;
		goto fail;
	}
	fds[SHN_PORT_FD_EVENT] = fcntl(p->event_fd, F_DUPFD_CLOEXEC, 0);
	if (fds[SHN_PORT_FD_EVENT] < 0) {
		err = -errno;
		goto fail;
	}
	/* the router lists the ports a batch matches without allocating:
	 * room for every port is made here, where -ENOMEM can be answered */
	err = shnd_array_reserve((void **)&b->router.touched, &b->router.touched_cap,
				 b->nports + 1, sizeof(*b->router.touched));
	if (err == 0)
		err = shnd_array_reserve((void **)&b->router.took, &b->router.took_cap,
					 b->nports + 1, sizeof(*b->router.took));
	if (err)
		goto fail;
	p->id = next_port_id(b);
	p->by_id.key = p->id;
	if (shnd_map_insert(&b->ports, &p->by_id) < 0) {
		err = -ENOMEM;
		goto fail;
	}
	/* publishers of the direct path read this port's sleep word: keep a
	 * read-only descriptor of the consumer segment for them */
	if (c->direct_setup) {
		char path[64];

		snprintf(path, sizeof(path), "/proc/self/fd/%d", p->cons_seg.fd);
		p->cons_ro_fd = open(path, O_RDONLY | O_CLOEXEC);
		p->direct = true;
	}
	/* the broker keeps its mappings; the segment descriptors go to the
	 * client and need not stay open here */
	fds[SHN_PORT_FD_RING] = p->ring_seg.fd;
	fds[SHN_PORT_FD_CONS] = p->cons_seg.fd;
	p->ring_seg.fd = -1;
	p->cons_seg.fd = -1;
	p->owner = c;
	p->capacity = capacity;
	p->overflow = overflow;
	shnd_list_init(&p->subs);
	shnd_list_init(&p->dirty_link);
	shnd_list_init(&p->pending_link);
	shnd_list_add_tail(&c->ports, &p->by_client);
	c->nports++;
	b->nports++;
	*out = p;
	return (0);
fail:
	if (fds[SHN_PORT_FD_EVENT] >= 0)
		close(fds[SHN_PORT_FD_EVENT]);
	fds[SHN_PORT_FD_EVENT] = -1;
	if (p->event_fd >= 0)
		close(p->event_fd);
	shn_segment_close(&p->ring_seg);
	shn_segment_close(&p->cons_seg);
	free(p);
	return (err);
}

struct shnd_port *shnd_port_find(struct shnd_broker *b, struct shnd_client *c, uint32_t id)
{
	struct shnd_hnode *n = shnd_map_find(&b->ports, id);
	struct shnd_port *p;

	if (n == NULL)
		return (NULL);
	p = shnd_container_of(n, struct shnd_port, by_id);
	return (p->owner == c ? p : NULL);
}

/* Take p off everything that borrows it before it is freed: the router's
 * lists of written and parked ports, and publishers held back by it (they
 * go on). */
static void unlink_borrowers(struct shnd_broker *b, struct shnd_port *p)
{
	size_t i;

	for (i = 0; i < b->nclients; i++)
		if (b->clients[i]->stall_port == p)
			b->clients[i]->stall_port = NULL;
	if (p->dirty) {
		p->dirty = false;
		shnd_list_del(&p->dirty_link);
	}
	if (p->on_pending) {
		p->on_pending = false;
		shnd_list_del(&p->pending_link);
	}
}

void shnd_port_free(struct shnd_broker *b, struct shnd_port *p)
{
	struct shnd_list *pos, *tmp;

	shnd_list_for_each_safe(pos, tmp, &p->subs)
		shnd_sub_free(b, shnd_list_entry(pos, struct shnd_sub, by_port));
	unlink_borrowers(b, p);
	shnd_dring_port_gone(b, p);
	shnd_map_remove(&b->ports, &p->by_id);
	shnd_list_del(&p->by_client);
	p->owner->nports--;
	b->nports--;
	shn_segment_close(&p->ring_seg);
	shn_segment_close(&p->cons_seg);
	if (p->event_fd >= 0)
		close(p->event_fd);
	for (uint32_t i = 0; i < p->pend_n; i++)
		free(p->pend[(p->pend_head + i) % p->pend_cap].barrier);
	free(p->pend);
	free(p);
}

int shnd_sub_create(struct shnd_broker *b, struct shnd_client *c, struct shnd_port *p,
		    uint64_t conn, uint32_t mask, const void *key, size_t key_len, bool prefix)
{
	struct shnd_sub *s;
	int err;

	if (shnd_sub_find(c, conn) != NULL)
		return (-EEXIST);
	s = calloc(1, sizeof(*s));
	if (s == NULL)
		return (-ENOMEM);
	s->conn = conn;
	s->serial = ++b->next_sub_serial;
	s->mask = mask;
	s->prefix = prefix && key != NULL;
	s->port = p;
	s->by_conn.key = conn;
	if (shnd_map_insert(&c->subs, &s->by_conn) < 0) {
		free(s);
		return (-ENOMEM);
	}
	err = shnd_index_add(&b->index, s, key, key_len);
	if (err) {
		shnd_map_remove(&c->subs, &s->by_conn);
		free(s);
		return (err);
	}
	shnd_list_add_tail(&p->subs, &s->by_port);
	p->nsubs++;
	b->nsubs++;
	return (0);
}

struct shnd_sub *shnd_sub_find(struct shnd_client *c, uint64_t conn)
{
	struct shnd_hnode *n = shnd_map_find(&c->subs, conn);

	return (n ? shnd_container_of(n, struct shnd_sub, by_conn) : NULL);
}

void shnd_sub_free(struct shnd_broker *b, struct shnd_sub *sub)
{
	shnd_index_del(&b->index, sub);
	shnd_list_del(&sub->by_port);
	sub->port->nsubs--;
	shnd_map_remove(&sub->port->owner->subs, &sub->by_conn);
	b->nsubs--;
	free(sub);
}
