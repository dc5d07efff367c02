/* SPDX-License-Identifier: MIT */
/*
 * client.c - a client's lifetime below the router: cutting it off
 * (logged, counted, doomed), its going away, replies queued on its socket,
 * its doorbell watch, and the references the event loop holds on it.
 *
 * A doomed client is only put on b->doomed here; server.c reclaims it at
 * the next safe point, never in the middle of routing a batch.
 */
#define _GNU_SOURCE
#include "client.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "log.h"

/* client structures allocated and not yet freed (the loop may hold some) */
static size_t live_clients;

size_t shnd_client_live(void)
{
	return (live_clients);
}

void shnd_client_born(struct shnd_client *c)
{
	c->refs = 1;
	live_clients++;
}

void shnd_client_unref(struct shnd_client *c)
{
	if (--c->refs > 0)
		return;
	shnd_acl_client_fini(&c->acl);
	free(c);
	live_clients--;
}

void shnd_client_doom(struct shnd_client *c)
{
	if (c->state == SHND_CLIENT_DOOMED)
		return;
	c->state = SHND_CLIENT_DOOMED;
	shnd_list_add_tail(&c->b->doomed, &c->doom_link);
}

void shnd_client_fail(struct shnd_client *c, uint64_t *counter, const char *fmt, ...)
{
	char why[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	shnd_warn("client %llu (pid %d): %s; disconnecting", (unsigned long long)c->id,
		  (int)c->pid, why);
	if (counter != NULL)
		(*counter)++;
	if (c->state != SHND_CLIENT_DOOMED)
		c->b->tot.disconnects++;
	shnd_client_doom(c);
}

void shnd_client_gone(struct shnd_client *c)
{
	shnd_client_doom(c);
}

int shnd_client_send(struct shnd_client *c, const void *msg, uint32_t len, const int *fds,
		     int nfds, bool close_after)
{
	struct shnd_out *o = shnd_out_new(msg, len, fds, nfds);

	if (o == NULL) {
		shnd_client_fail(c, NULL, "out of memory for a reply");
		return (-ENOMEM);
	}
	o->close_after = close_after;
	return (shnd_conn_send(c->b->loop, &c->conn, o));
}

static void on_doorbell(struct shnd_watch *w)
{
	struct shnd_client *c = shnd_container_of(w, struct shnd_client, doorbell);

	/* An edge watch: each ring is reported once, so the counter is never
	 * read (one system call fewer per broker wake-up).  It cannot fill up
	 * in practice (2^64 - 2 rings); a client whose write would block gets
	 * EAGAIN, which its library takes as "the broker is awake". */
	c->b->router.kick = true;
}

static void on_doorbell_released(struct shnd_watch *w)
{
	struct shnd_client *c = shnd_container_of(w, struct shnd_client, doorbell);

	close(c->doorbell_fd);
	c->doorbell_fd = -1;
	shnd_client_unref(c);
}

int shnd_client_watch_doorbell(struct shnd_client *c)
{
	int err;

	c->doorbell.fd = c->doorbell_fd;
	c->doorbell.edge = true;
	c->doorbell.on_ready = on_doorbell;
	c->doorbell.on_released = on_doorbell_released;
	err = shnd_watch_add(c->b->loop, &c->doorbell);
	if (err == 0)
		c->refs++;
	return (err);
}

