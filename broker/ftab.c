/* SPDX-License-Identifier: MIT */
/*
 * ftab.c - see ftab.h.  The broker is the only writer of the table and of
 * the port maps (its own mapping; the clients' descriptors are sealed
 * F_SEAL_FUTURE_WRITE), so every store here is plain except gen, which
 * publishers load and re-check (shm/direct.h).
 */
#define _GNU_SOURCE
#include "ftab.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "index.h"
#include "log.h"
#include "shm/direct.h"

/* Key bytes per half: room for this many bytes per filter on average; a
 * table whose keys need more says DISABLED, like one with too many
 * filters. */
#define SHND_FTAB_KEY_BYTES_PER_FILTER 64u

int shnd_ftab_init(struct shnd_broker *b)
{
	struct shnd_ftab *f = &b->ftab;
	uint32_t max = b->cfg.lim.direct_max_filters, nslots = 2, key_bytes;
	int err;

	f->seg.fd = -1;
	if (!b->cfg.direct)
		return (0);
	while (nslots < 2ull * max)
		nslots <<= 1;
	key_bytes = (uint32_t)((uint64_t)max * SHND_FTAB_KEY_BYTES_PER_FILTER);
	err = shn_segment_create(&f->seg, "shmnotify-filters",
				 (size_t)shn_ftab_seg_size(max, nslots, key_bytes));
	if (err)
		return (err);
	f->used[0] = calloc(max, sizeof(uint32_t));
	f->used[1] = calloc(max, sizeof(uint32_t));
	if (f->used[0] == NULL || f->used[1] == NULL)
		return (-ENOMEM);
	f->t = f->seg.addr;
	shn_ftab_layout(f->t, max, nslots, key_bytes);
	/* both halves are zero: empty, generation 0 */
	atomic_store_explicit(&f->t->gen, 0, memory_order_seq_cst);
	return (shn_segment_seal_readonly(&f->seg));
}

void shnd_ftab_fini(struct shnd_broker *b)
{
	struct shnd_ftab *f = &b->ftab;

	shn_segment_close(&f->seg);
	free(f->used[0]);
	free(f->used[1]);
	f->used[0] = f->used[1] = NULL;
	f->t = NULL;
}

/* Empty half h, touching only the slots the last build of it used (a
 * memset of every slot would make each SUBSCRIBE cost the table's size). */
static void clear_half(struct shnd_ftab *f, unsigned h, uint32_t flags)
{
	uint8_t *half = shn_ftab_half_at(f->t, h);
	struct shn_ftab_half *hh = (void *)half;
	struct shn_ftab_slot *slots = (void *)(half + shn_ftab_slots_off(f->t->max_filters));

	for (uint32_t i = 0; i < f->nused[h]; i++)
		memset(&slots[f->used[h][i]], 0, sizeof(slots[0]));
	f->nused[h] = 0;
	hh->n_any = 0;
	hh->n_exact = 0;
	hh->key_used = 0;
	memset(hh->plens, 0, sizeof(hh->plens));
	hh->flags = flags;
}

/* Every subscription of the entries of one hash table of the index, as
 * slots of half h (prefix entries flagged SHN_FTAB_SLOT_PREFIX). */
static int fill_keys(struct shnd_ftab *f, unsigned h, struct shnd_keyent *const *buckets,
		     size_t nbuckets)
{
	const struct shn_ftab_half *hh = (const void *)shn_ftab_half_at(f->t, h);
	struct shnd_list *pos;
	int err;

	for (size_t i = 0; i < nbuckets; i++)
		for (struct shnd_keyent *ke = buckets[i]; ke != NULL; ke = ke->next)
			shnd_list_for_each(pos, &ke->subs) {
				struct shnd_sub *s = shnd_list_entry(pos, struct shnd_sub, by_key);
				uint32_t before = hh->n_exact, slot;

				err = shn_ftab_half_add_filter(f->t, h, ke->hash, ke->key, ke->key_len,
							       ke->prefix ? SHN_FTAB_SLOT_PREFIX : 0,
							       s->port->id, s->mask, &slot);
				if (err)
					return (err);
				if (hh->n_exact != before)
					f->used[h][f->nused[h]++] = slot;
			}
	return (0);
}

static int fill_half(struct shnd_broker *b, unsigned h)
{
	struct shnd_ftab *f = &b->ftab;
	struct shnd_index *ix = &b->index;
	struct shnd_list *pos;
	int err;

	shnd_list_for_each(pos, &ix->wild) {
		struct shnd_sub *s = shnd_list_entry(pos, struct shnd_sub, by_key);

		err = shn_ftab_half_add_any(f->t, h, s->port->id, s->mask);
		if (err)
			return (err);
	}
	err = fill_keys(f, h, ix->buckets, ix->nbuckets);
	if (err == 0)
		err = fill_keys(f, h, ix->pbuckets, ix->npbuckets);
	return (err);
}

static void publish(struct shnd_broker *b)
{
	struct shnd_ftab *f = &b->ftab;
	uint64_t gen;
	unsigned h;

	gen = atomic_load_explicit(&f->t->gen, memory_order_relaxed);
	h = (unsigned)((gen + 1) & 1);
	clear_half(f, h, 0);
	if (fill_half(b, h) != 0) {
		/* more filters or key bytes than the table holds: nothing goes
		 * direct until enough of them end */
		clear_half(f, h, SHN_FTAB_DISABLED);
		if (!f->disabled)
			shnd_info("direct path: more than %u live filters (or their keys) for "
				  "the filter table; every notification takes the broker path "
				  "(raise [limits] direct-max-filters)", f->t->max_filters);
		f->disabled = true;
		f->disabled_builds++;
	} else {
		f->disabled = false;
	}
	/* publishers that load the new gen see a complete half; the reply
	 * leaves after this store (docs/direct-path.md, rule 8's argument) */
	atomic_store_explicit(&f->t->gen, gen + 1, memory_order_seq_cst);
	f->built_changes = b->index.changes;
	f->builds++;
}

void shnd_ftab_sync(struct shnd_broker *b)
{
	struct shnd_ftab *f = &b->ftab;

	if (f->t == NULL || f->holders == 0 || f->built_changes == b->index.changes)
		return;
	/* Disabled and still past the limit (each key is at least one
	 * filter): the half in use already says DISABLED, publishers take the
	 * broker path, whose index is current.  Rebuilding per change would
	 * cost O(filters) for nothing (the 1,000,000-key bench subscribed in
	 * O(n^2) and timed out). */
	if (f->disabled && shnd_index_entries(&b->index) > f->t->max_filters) {
		f->built_changes = b->index.changes;
		return;
	}
	publish(b);
}

void shnd_ftab_bump(struct shnd_broker *b)
{
	if (b->ftab.t != NULL)
		publish(b);
}

int shnd_ftab_setup_client(struct shnd_broker *b, struct shnd_client *c,
			   int fds[SHN_DSETUP_NFDS], uint64_t *table_size)
{
	struct shnd_ftab *f = &b->ftab;
	struct shn_pmap_hdr *ph;
	int err;

	fds[SHN_DSETUP_FD_TABLE] = fds[SHN_DSETUP_FD_PMAP] = -1;
	if (f->t == NULL)
		return (-EOPNOTSUPP);
	err = shn_segment_create(&c->pmap_seg, "shmnotify-portmap", SHN_PMAP_SEG_SIZE);
	if (err)
		return (err);
	ph = c->pmap_seg.addr;
	ph->magic = SHN_PMAP_MAGIC;
	ph->nslots = SHN_PMAP_SLOTS;
	err = shn_segment_seal_readonly(&c->pmap_seg);
	if (err)
		goto fail;
	fds[SHN_DSETUP_FD_TABLE] = fcntl(f->seg.fd, F_DUPFD_CLOEXEC, 0);
	if (fds[SHN_DSETUP_FD_TABLE] < 0) {
		err = -errno;
		goto fail;
	}
	/* the broker keeps its mapping; the descriptor is the client's */
	fds[SHN_DSETUP_FD_PMAP] = c->pmap_seg.fd;
	c->pmap_seg.fd = -1;
	c->direct_setup = true;
	f->holders++;
	/* the table the client reads is the index as of now */
	shnd_ftab_sync(b);
	*table_size = f->seg.size;
	return (0);
fail:
	if (fds[SHN_DSETUP_FD_TABLE] >= 0)
		close(fds[SHN_DSETUP_FD_TABLE]);
	fds[SHN_DSETUP_FD_TABLE] = -1;
	shn_segment_close(&c->pmap_seg);
	return (err);
}

void shnd_ftab_drop_client(struct shnd_broker *b, struct shnd_client *c)
{
	if (!c->direct_setup)
		return;
	c->direct_setup = false;
	b->ftab.holders--;
	/* its port map stays mapped until its publish ring is drained: the
	 * router's skips read it (dring.c, shnd_dring_publisher_gone) */
}
