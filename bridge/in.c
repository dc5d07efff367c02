/* SPDX-License-Identifier: MIT */
/*
 * in.c - NATS messages to local batches.
 *
 * libnats calls br_in_message() from a delivery thread per subscription
 * (one per in rule), in the order the server sent them; everything here
 * runs under one lock, which the main thread takes too for br_in_tick().
 *
 * Per (rule, origin) an assembly collects the notes of one carried batch
 * and publishes them locally as one batch when the last one (Index ==
 * Count - 1) arrived, when a note of another batch of that origin arrives
 * first (the rest was lost, or went to subjects this rule does not take),
 * or when the batch waited BR_IN_WAIT_MS without news.
 *
 * Loss: each note's Shn-Seq is checked against the last one delivered for
 * its (origin, subject) in the state table (state.h).  A hole is
 * delivered first, as a gap report with the exact count (shn_notify_gap),
 * to the subscribers of that key; a number seen before is a duplicate
 * (a JetStream redelivery) and dropped.  The table moves only once the
 * local broker accepted the batch: a bridge killed between the two counts
 * nothing twice in JetStream mode (the stream redelivers what was not
 * acknowledged) and at most one batch too many in core mode.
 */
#define _GNU_SOURCE
#include "bridge.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "log.h"
#include "wire.h"

#define BR_IN_WAIT_MS  20     /* a partial batch waits this long for its rest */
#define BR_IN_ORIGINS  64     /* assemblies per rule; the oldest goes first */
#define BR_PENDING_GAPS 4096  /* gap reports kept while the local broker is away */

struct note {
	natsMsg *m;              /* owns data; NULL for a filtered note */
	struct br_wire w;
	bool deliver;            /* false: outside the rule's events, only numbered */
};

struct assembly {
	bool used;
	char origin[BR_NODE_MAX + 1];
	uint64_t epoch, batch;
	uint32_t next_index;
	int64_t since_ms;
	struct note *notes;
	size_t n, cap;
};

struct gap {
	uint8_t key[SHN_KEY_MAX];
	uint16_t key_len;
	uint64_t lost;
};

struct br_in {
	pthread_mutex_t lock;
	struct assembly (*asm_)[BR_IN_ORIGINS];   /* per rule */
	shn_notification *batch;
	size_t batch_cap;
	struct gap *gaps;                        /* undelivered gap reports */
	size_t ngaps;
	int64_t last_reject_log_ms;
};

bool br_in_wanted(const struct bridge *b)
{
	for (int i = 0; i < b->cfg.nrules; i++)
		if (b->cfg.rules[i].dir & BR_IN)
			return (true);
	return (false);
}

int br_in_init(struct bridge *b)
{
	struct br_in *in = calloc(1, sizeof(*in));

	if (in == NULL)
		return (-ENOMEM);
	in->asm_ = calloc((size_t)b->cfg.nrules, sizeof(*in->asm_));
	in->gaps = calloc(BR_PENDING_GAPS, sizeof(*in->gaps));
	if (in->asm_ == NULL || in->gaps == NULL) {
		free(in->asm_);
		free(in->gaps);
		free(in);
		return (-ENOMEM);
	}
	pthread_mutex_init(&in->lock, NULL);
	b->in = in;
	return (0);
}

static void reject(struct bridge *b, const char *subject, const char *why)
{
	int64_t now = br_now_ms();

	atomic_fetch_add(&b->st.rejected, 1);
	/* a hostile or broken sender could fill the log: once a second */
	if (now - b->in->last_reject_log_ms >= 1000) {
		b->in->last_reject_log_ms = now;
		br_log(b, "dropped a message on %s: %s (counted in rejected)",
		       subject ? subject : "?", why);
	}
}

/* Publish with retry while the broker is away in JetStream mode (the
 * stream keeps the messages; nothing is acknowledged meanwhile), once in
 * core mode.  0 or -errno. */
static int local_publish(struct bridge *b, const shn_notification *n, size_t count)
{
	int64_t wait = 50;

	for (;;) {
		int r = shn_notify(b->c, n, count, 0);

		if (r != -ENOTCONN || b->cfg.mode != BR_JETSTREAM || b->stop)
			return (r);
		nats_Sleep(wait);
		wait = wait * 2 > 2000 ? 2000 : wait * 2;
	}
}

/* Add lost to the pending gap report of key (the local broker was away). */
static void keep_gap(struct bridge *b, const uint8_t *key, uint16_t key_len, uint64_t lost)
{
	struct br_in *in = b->in;

	for (size_t i = 0; i < in->ngaps; i++)
		if (in->gaps[i].key_len == key_len && memcmp(in->gaps[i].key, key, key_len) == 0) {
			in->gaps[i].lost += lost;
			return;
		}
	if (in->ngaps == BR_PENDING_GAPS) {
		br_log(b, "more than %d keys lost notifications while the local broker was away: "
		       "the loss of %llu on one more is told only by BROKER_STATE/RECONNECT",
		       BR_PENDING_GAPS, (unsigned long long)lost);
		return;
	}
	memcpy(in->gaps[in->ngaps].key, key, key_len);
	in->gaps[in->ngaps].key_len = key_len;
	in->gaps[in->ngaps].lost = lost;
	in->ngaps++;
}

static void send_gap(struct bridge *b, const uint8_t *key, uint16_t key_len, uint64_t lost)
{
	int r = shn_notify_gap(b->c, key, key_len, lost, 0);

	if (r == -ENOTCONN) {
		keep_gap(b, key, key_len, lost);
		return;
	}
	if (r < 0) {
		br_log(b, "a gap report of %llu could not be delivered locally: %s",
		       (unsigned long long)lost, shn_strerror(r));
		atomic_fetch_add(&b->st.local_refused, 1);
		return;
	}
	atomic_fetch_add(&b->st.gaps, 1);
	atomic_fetch_add(&b->st.lost, lost);
}

/* Gap reports kept while the broker was away: deliver them first. */
static void flush_gaps(struct bridge *b)
{
	struct br_in *in = b->in;
	size_t n = in->ngaps;

	in->ngaps = 0;
	for (size_t i = 0; i < n; i++) {
		struct gap g = in->gaps[i];

		send_gap(b, g.key, g.key_len, g.lost);   /* may keep it again */
	}
}

/* Deliver assembly a locally as one batch, then move the state table and
 * (JetStream) acknowledge. */
static void deliver(struct bridge *b, struct assembly *a)
{
	struct br_in *in = b->in;
	size_t k = 0;
	bool keep;
	int r = 0;

	if (a->n == 0)
		return;
	if (in->ngaps > 0)
		flush_gaps(b);
	if (in->batch_cap < a->n) {
		shn_notification *nb = realloc(in->batch, a->n * sizeof(*nb));

		if (nb == NULL) {
			br_log(b, "out of memory: a remote batch of %zu is lost here", a->n);
			r = -ENOMEM;
			goto done;
		}
		in->batch = nb;
		in->batch_cap = a->n;
	}
	for (size_t i = 0; i < a->n; i++) {
		const struct br_wire *w = &a->notes[i].w;

		if (!a->notes[i].deliver)
			continue;
		memset(&in->batch[k], 0, sizeof(in->batch[k]));
		in->batch[k].event = w->event;
		in->batch[k].key = w->key;
		in->batch[k].key_len = w->key_len;
		in->batch[k].data = w->data;
		in->batch[k].data_len = w->data_len;
		k++;
	}
	if (k > 0)
		r = local_publish(b, in->batch, k);
	if (r == -ENOTCONN) {
		/* core mode: the local subscribers learn of the break from
		 * BROKER_STATE; the count per key follows once it is back */
		for (size_t i = 0; i < a->n; i++)
			if (a->notes[i].deliver)
				keep_gap(b, a->notes[i].w.key, a->notes[i].w.key_len, 1);
	} else if (r < 0) {
		atomic_fetch_add(&b->st.local_refused, 1);
		br_log(b, "the local broker refused a remote batch of %zu from %s: %s", k,
		       a->origin, shn_strerror(r));
	} else if (k > 0) {
		atomic_fetch_add(&b->st.received, k);
		atomic_fetch_add(&b->st.received_batches, 1);
	}
done:
	/* JetStream, stopping while the broker is away: not delivered, so
	 * neither numbered nor acknowledged; the stream sends it again */
	keep = b->cfg.mode == BR_JETSTREAM && r == -ENOTCONN;
	for (size_t i = 0; i < a->n; i++) {
		struct note *nt = &a->notes[i];
		struct br_seq *e = keep ? NULL : br_state_get(&b->state, nt->w.origin,
							     nt->w.subject, true);

		/* delivered, refused or reported lost: done with either way */
		if (e != NULL && (e->epoch != nt->w.epoch || nt->w.seq > e->last)) {
			e->epoch = nt->w.epoch;
			e->last = nt->w.seq;
		}
		if (b->js != NULL && !keep)
			natsMsg_Ack(nt->m, NULL);
		natsMsg_Destroy(nt->m);
	}
	a->n = 0;
}

static struct assembly *find(struct bridge *b, int rule, const char *origin)
{
	struct assembly *set = b->in->asm_[rule], *oldest = &set[0];

	for (int i = 0; i < BR_IN_ORIGINS; i++) {
		if (set[i].used && strcmp(set[i].origin, origin) == 0)
			return (&set[i]);
		if (!set[i].used) {
			oldest = &set[i];
			break;
		}
		if (set[i].since_ms < oldest->since_ms)
			oldest = &set[i];
	}
	deliver(b, oldest);
	oldest->used = true;
	oldest->n = 0;
	oldest->batch = 0;
	oldest->epoch = 0;
	oldest->next_index = 0;
	snprintf(oldest->origin, sizeof(oldest->origin), "%s", origin);
	return (oldest);
}

/* The last number delivered or waiting for (origin, subject), and whether
 * that stream is known at all. */
static bool last_seq(struct bridge *b, const struct assembly *a, const struct br_wire *w,
		     uint64_t *last)
{
	struct br_seq *e;

	for (size_t i = a->n; i-- > 0;)
		if (a->notes[i].w.epoch == w->epoch && strcmp(a->notes[i].w.subject, w->subject) == 0) {
			*last = a->notes[i].w.seq;
			return (true);
		}
	e = br_state_get(&b->state, w->origin, w->subject, false);
	if (e == NULL)
		return (false);
	if (e->epoch != w->epoch) {
		/* the origin restarted: its numbers start again at 1 */
		*last = 0;
		return (true);
	}
	*last = e->last;
	return (true);
}

void br_in_message(struct bridge *b, int rule, natsMsg *m)
{
	const struct br_rule *ru = &b->cfg.rules[rule];
	struct br_in *in = b->in;
	struct assembly *a;
	struct br_wire w;
	const char *why = NULL;
	uint64_t last;
	bool known;

	pthread_mutex_lock(&in->lock);
	if (br_wire_parse(m, ru, &w, &why) < 0) {
		reject(b, natsMsg_GetSubject(m), why);
		if (b->js != NULL)
			natsMsg_Term(m, NULL);   /* it will never parse: not again */
		natsMsg_Destroy(m);
		goto out;
	}
	if (strcmp(w.origin, b->cfg.node) == 0) {
		/* our own, echoed (NoEcho is off, or another connection of ours) */
		if (b->js != NULL)
			natsMsg_Ack(m, NULL);
		natsMsg_Destroy(m);
		goto out;
	}
	a = find(b, rule, w.origin);
	known = last_seq(b, a, &w, &last);
	if (known && w.seq <= last) {
		atomic_fetch_add(&b->st.duplicates, 1);
		if (b->js != NULL)
			natsMsg_Ack(m, NULL);
		natsMsg_Destroy(m);
		goto out;
	}
	/* another batch, or a note missing in between: what came is complete
	 * as far as this rule will ever see */
	if (a->n > 0 && (a->epoch != w.epoch || a->batch != w.batch || a->next_index != w.index))
		deliver(b, a);
	if (known && w.seq > last + 1) {
		deliver(b, a);
		send_gap(b, w.key, w.key_len, w.seq - last - 1);
	}
	if (a->n == a->cap) {
		size_t nc = a->cap ? a->cap * 2 : 16;
		struct note *nn = realloc(a->notes, nc * sizeof(*nn));

		if (nn == NULL) {
			br_log(b, "out of memory: a remote notification of %s is lost", w.origin);
			natsMsg_Destroy(m);
			goto out;
		}
		a->notes = nn;
		a->cap = nc;
	}
	a->epoch = w.epoch;
	a->batch = w.batch;
	a->next_index = w.index + 1;
	if (a->n == 0)
		a->since_ms = br_now_ms();
	a->notes[a->n].m = m;
	a->notes[a->n].w = w;
	a->notes[a->n].deliver = (w.event & ru->events) != 0;
	if (!a->notes[a->n].deliver)
		atomic_fetch_add(&b->st.filtered, 1);
	a->n++;
	if (w.index + 1 == w.count)
		deliver(b, a);
out:
	pthread_mutex_unlock(&in->lock);
}

static void deliver_waiting(struct bridge *b, int64_t wait_ms)
{
	struct br_in *in = b->in;
	int64_t now = br_now_ms();

	if (in == NULL)
		return;
	pthread_mutex_lock(&in->lock);
	for (int r = 0; r < b->cfg.nrules; r++)
		for (int i = 0; i < BR_IN_ORIGINS; i++) {
			struct assembly *a = &in->asm_[r][i];

			if (a->used && a->n > 0 && now - a->since_ms >= wait_ms)
				deliver(b, a);
		}
	if (in->ngaps > 0 && atomic_load(&b->local_up))
		flush_gaps(b);
	pthread_mutex_unlock(&in->lock);
}

void br_in_tick(struct bridge *b)
{
	deliver_waiting(b, BR_IN_WAIT_MS);
}

void br_in_flush(struct bridge *b)
{
	deliver_waiting(b, 0);
}

void br_in_fini(struct bridge *b)
{
	struct br_in *in = b->in;

	if (in == NULL)
		return;
	pthread_mutex_lock(&in->lock);
	for (int r = 0; r < b->cfg.nrules; r++)
		for (int i = 0; i < BR_IN_ORIGINS; i++) {
			deliver(b, &in->asm_[r][i]);
			free(in->asm_[r][i].notes);
		}
	pthread_mutex_unlock(&in->lock);
	pthread_mutex_destroy(&in->lock);
	free(in->asm_);
	free(in->batch);
	free(in->gaps);
	free(in);
	b->in = NULL;
}
