/* SPDX-License-Identifier: MIT */
/*
 * out.c - local batches to NATS (the main thread only).
 *
 * The bridge holds one any-key subscription on the local broker (the
 * library has no prefix filter; docs/multi-host.md says why that is
 * enough) and sorts each delivered batch by rule: the notes of one batch
 * that fall under one out rule form one carried batch, published in their
 * order as one NATS message each, with the same Shn-Batch and their
 * Shn-Index / Shn-Count.  What the bridge injected itself (sender_pid is
 * our pid: the broker takes it from SO_PEERCRED, nobody can fake it) is
 * never exported again: two bridges with rules both ways cannot loop.
 *
 * Sequence numbers are per subject and taken before the publish: a
 * publish that fails leaves a hole that the receivers report as a gap.
 */
#define _GNU_SOURCE
#include "bridge.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "log.h"
#include "subject.h"
#include "wire.h"

/* subject -> next sequence number, chained */
struct seqent {
	struct seqent *next;
	uint64_t hash, seq;
	char subject[];
};

struct br_out {
	struct seqent **buckets;
	size_t nbuckets, count;
	uint64_t batch;                  /* carried batches exported */
	uint64_t msg_id;                 /* JetStream: messages exported */
	natsMsg **msgs;                  /* one carried batch being built */
	size_t cap;
};

bool br_out_wanted(const struct bridge *b)
{
	for (int i = 0; i < b->cfg.nrules; i++)
		if (b->cfg.rules[i].dir & BR_OUT)
			return (true);
	return (false);
}

uint32_t br_out_mask(const struct bridge *b)
{
	uint32_t m = 0;

	for (int i = 0; i < b->cfg.nrules; i++)
		if (b->cfg.rules[i].dir & BR_OUT)
			m |= b->cfg.rules[i].events;
	return (m);
}

int br_out_init(struct bridge *b)
{
	struct br_out *o = calloc(1, sizeof(*o));

	if (o == NULL)
		return (-ENOMEM);
	o->nbuckets = 1024;
	o->buckets = calloc(o->nbuckets, sizeof(*o->buckets));
	if (o->buckets == NULL) {
		free(o);
		return (-ENOMEM);
	}
	b->out = o;
	return (0);
}

void br_out_fini(struct bridge *b)
{
	struct br_out *o = b->out;

	if (o == NULL)
		return;
	for (size_t i = 0; i < o->nbuckets; i++)
		for (struct seqent *e = o->buckets[i], *n; e; e = n) {
			n = e->next;
			free(e);
		}
	free(o->buckets);
	free(o->msgs);
	free(o);
	b->out = NULL;
}

static int grow_table(struct br_out *o)
{
	size_t nb = o->nbuckets * 2;
	struct seqent **nbk = calloc(nb, sizeof(*nbk));

	if (nbk == NULL)
		return (-ENOMEM);
	for (size_t i = 0; i < o->nbuckets; i++)
		for (struct seqent *e = o->buckets[i], *n; e; e = n) {
			n = e->next;
			e->next = nbk[e->hash & (nb - 1)];
			nbk[e->hash & (nb - 1)] = e;
		}
	free(o->buckets);
	o->buckets = nbk;
	o->nbuckets = nb;
	return (0);
}

/* The next sequence number of subject (from 1), or 0 when out of memory. */
static uint64_t next_seq(struct br_out *o, const char *subject, size_t len)
{
	uint64_t h = XXH3_64bits(subject, len);
	struct seqent *e;

	for (e = o->buckets[h & (o->nbuckets - 1)]; e; e = e->next)
		if (e->hash == h && strcmp(e->subject, subject) == 0)
			return (++e->seq);
	if (o->count >= o->nbuckets && grow_table(o) < 0)
		return (0);
	e = malloc(sizeof(*e) + len + 1);
	if (e == NULL)
		return (0);
	e->hash = h;
	e->seq = 1;
	memcpy(e->subject, subject, len + 1);
	e->next = o->buckets[h & (o->nbuckets - 1)];
	o->buckets[h & (o->nbuckets - 1)] = e;
	o->count++;
	return (1);
}

static const struct br_rule *rule_of(const struct bridge *b, const shn_notification *x)
{
	for (int i = 0; i < b->cfg.nrules; i++) {
		const struct br_rule *ru = &b->cfg.rules[i];

		if ((ru->dir & BR_OUT) && (x->event & ru->events) && x->key_len >= ru->prefix_len &&
		    memcmp(x->key, ru->prefix, ru->prefix_len) == 0)
			return (ru);
	}
	return (NULL);
}

/* Publish the carried batch o->msgs[0..n): core NATS, or JetStream with
 * de-duplication ids, waiting for the stream's acknowledgements so that a
 * batch is stored before the next one is read (a resend after an error
 * is dropped by the stream's duplicate window, not stored twice). */
static void publish(struct bridge *b, size_t n)
{
	struct br_out *o = b->out;
	size_t failed = 0;

	for (size_t i = 0; i < n; i++) {
		natsStatus s;

		if (b->js != NULL) {
			s = js_PublishMsgAsync(b->js, &o->msgs[i], NULL);
		} else {
			s = natsConnection_PublishMsg(b->nc, o->msgs[i]);
		}
		if (s != NATS_OK)
			failed++;
		natsMsg_Destroy(o->msgs[i]);   /* NULL when JetStream took it */
		o->msgs[i] = NULL;
	}
	if (b->js != NULL && failed < n) {
		jsPubOptions po;
		int64_t wait = 100;

		jsPubOptions_Init(&po);
		for (;;) {
			natsMsgList pending = { 0 };

			po.MaxWait = 5000;
			if (js_PublishAsyncComplete(b->js, &po) == NATS_OK || b->stop)
				break;
			/* unanswered (NATS away?): send those again, same ids */
			if (js_PublishAsyncGetPendingList(&pending, b->js) == NATS_OK) {
				for (int i = 0; i < pending.Count; i++)
					if (js_PublishMsgAsync(b->js, &pending.Msgs[i], NULL) != NATS_OK)
						natsMsg_Destroy(pending.Msgs[i]);
				natsMsgList_Destroy(&pending);
			}
			br_log(b, "JetStream did not acknowledge a batch in 5 s: sending it again in "
			       "%lld ms (is the NATS server up, with JetStream?)", (long long)wait);
			nats_Sleep(wait);
			wait = wait * 2 > 5000 ? 5000 : wait * 2;
		}
	}
	if (failed > 0) {
		atomic_fetch_add(&b->st.publish_errors, failed);
		br_log(b, "%zu of %zu notifications could not be published to NATS (%s): the "
		       "receivers report them as lost", failed, n,
		       br_nats_state_name(atomic_load(&b->nats_state)));
	}
	atomic_fetch_add(&b->st.forwarded, n - failed);
	atomic_fetch_add(&b->st.forwarded_batches, 1);
}

/* One delivered local batch (all of it: main.c collects a batch that came
 * in several gets). */
void br_out_batch(struct bridge *b, const shn_notification *n, size_t count)
{
	struct br_out *o = b->out;
	char subject[BR_SUBJECT_BUF];

	if (o->cap < count) {
		natsMsg **m = realloc(o->msgs, count * sizeof(*m));

		if (m == NULL) {
			br_log(b, "out of memory: a local batch of %zu is not exported", count);
			return;
		}
		o->msgs = m;
		o->cap = count;
	}
	for (int r = 0; r < b->cfg.nrules; r++) {
		const struct br_rule *ru = &b->cfg.rules[r];
		uint32_t k = 0, total = 0, index = 0;
		uint64_t batch;

		if (!(ru->dir & BR_OUT))
			continue;
		for (size_t i = 0; i < count; i++)
			if (!(n[i].event & SHN_EV_SYSTEM) && n[i].sender_pid != b->pid &&
			    rule_of(b, &n[i]) == ru)
				total++;
		if (total == 0)
			continue;
		batch = ++o->batch;
		for (size_t i = 0; i < count; i++) {
			const shn_notification *x = &n[i];
			size_t slen;
			uint64_t seq;
			natsMsg *m = NULL;

			if ((x->event & SHN_EV_SYSTEM) || x->sender_pid == b->pid || rule_of(b, x) != ru)
				continue;
			slen = br_subject_encode(ru->subject, (const uint8_t *)x->key + ru->prefix_len,
						 x->key_len - ru->prefix_len, subject);
			seq = next_seq(o, subject, slen);
			if (seq == 0 ||
			    natsMsg_Create(&m, subject, NULL, x->data, (int)x->data_len) != NATS_OK ||
			    br_wire_set(m, b->cfg.node, b->epoch, seq, batch, index, total, x->event,
					x->key, x->key_len, b->js ? ++o->msg_id : 0) != NATS_OK) {
				natsMsg_Destroy(m);
				atomic_fetch_add(&b->st.publish_errors, 1);
				index++;
				continue;   /* its number is spent: the receivers count it lost */
			}
			o->msgs[k++] = m;
			index++;
		}
		publish(b, k);
	}
}
