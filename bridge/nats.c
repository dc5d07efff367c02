/* SPDX-License-Identifier: MIT */
/*
 * nats.c - the NATS side: one connection (libnats reconnects it forever,
 * with our back-off), the JetStream stream, one subscription per in rule.
 *
 * Connecting never blocks the bridge: with RetryOnFailedConnect libnats
 * keeps trying in its own thread, and the main loop calls br_nats_setup()
 * once the connection is up (and after each reconnect, to know again that
 * the server has our subscriptions before saying "ready").
 */
#define _GNU_SOURCE
#include "bridge.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

struct sub_ctx {
	struct bridge *b;
	int rule;
};

static natsSubscription *subs[64];
static struct sub_ctx ctxs[64];
static bool subscribed;

const char *br_nats_state_name(int s)
{
	switch (s) {
	case BR_NATS_CONNECTING: return ("connecting");
	case BR_NATS_CONNECTED: return ("connected");
	case BR_NATS_RECONNECTING: return ("reconnecting");
	case BR_NATS_CLOSED: return ("closed");
	}
	return ("?");
}

static void on_msg(natsConnection *nc, natsSubscription *sub, natsMsg *m, void *closure)
{
	struct sub_ctx *x = closure;

	(void)nc;
	(void)sub;
	br_in_message(x->b, x->rule, m);
}

static void on_disconnected(natsConnection *nc, void *closure)
{
	struct bridge *b = closure;

	(void)nc;
	atomic_store(&b->ready, false);
	if (atomic_exchange(&b->nats_state, BR_NATS_RECONNECTING) == BR_NATS_CONNECTED) {
		atomic_fetch_add(&b->st.nats_disconnects, 1);
		br_log(b, "NATS connection lost: reconnecting with back-off (%s)",
		       b->cfg.mode == BR_JETSTREAM
			       ? "jetstream mode: publishes wait for the stream, nothing is lost"
			       : "core mode: what is published meanwhile is reported as lost by the "
				 "receivers");
	}
}

static void on_reconnected(natsConnection *nc, void *closure)
{
	struct bridge *b = closure;

	pthread_mutex_lock(&b->url_lock);
	if (natsConnection_GetConnectedUrl(nc, b->nats_url, sizeof(b->nats_url)) != NATS_OK)
		b->nats_url[0] = '\0';
	pthread_mutex_unlock(&b->url_lock);
	atomic_fetch_add(&b->st.nats_reconnects, 1);
	atomic_store(&b->nats_state, BR_NATS_CONNECTED);
	br_log(b, "NATS reconnected to %s", b->nats_url);
}

static void on_connected(natsConnection *nc, void *closure)
{
	struct bridge *b = closure;

	pthread_mutex_lock(&b->url_lock);
	if (natsConnection_GetConnectedUrl(nc, b->nats_url, sizeof(b->nats_url)) != NATS_OK)
		b->nats_url[0] = '\0';
	pthread_mutex_unlock(&b->url_lock);
	atomic_store(&b->nats_state, BR_NATS_CONNECTED);
	br_log(b, "NATS connected to %s", b->nats_url);
}

static void on_closed(natsConnection *nc, void *closure)
{
	struct bridge *b = closure;

	(void)nc;
	atomic_store(&b->ready, false);
	atomic_store(&b->nats_state, BR_NATS_CLOSED);
}

static void on_error(natsConnection *nc, natsSubscription *sub, natsStatus err, void *closure)
{
	struct bridge *b = closure;

	(void)nc;
	(void)sub;
	atomic_fetch_add(&b->st.nats_errors, 1);
	/* a slow consumer: NATS dropped messages for us; the sequence numbers
	 * show exactly how many, per key, when the next ones arrive */
	br_log(b, "NATS: %s%s", natsStatus_GetText(err),
	       err == NATS_SLOW_CONSUMER ? " (messages dropped for this bridge: reported as gaps; "
					   "is the local broker keeping up?)" : "");
}

/* 50 ms, doubling, at most 5 s, with up to a quarter of jitter: many
 * bridges coming back at once do not storm a recovering server. */
static int64_t backoff(natsConnection *nc, int attempts, void *closure)
{
	int64_t d = 50;

	(void)nc;
	(void)closure;
	for (int i = 1; i < attempts && d < 5000; i++)
		d *= 2;
	if (d > 5000)
		d = 5000;
	return (d + (int64_t)(random() % (d / 4 + 1)));
}

int br_nats_connect(struct bridge *b)
{
	natsStatus s;
	char name[64];

	snprintf(name, sizeof(name), "shmnotify-bridge %s", b->cfg.node);
	s = natsOptions_Create(&b->opts);
	if (s == NATS_OK)
		s = natsOptions_SetServers(b->opts, (const char **)b->cfg.servers, b->cfg.nservers);
	if (s == NATS_OK)
		s = natsOptions_SetName(b->opts, name);
	if (s == NATS_OK)   /* our own messages: never back to us */
		s = natsOptions_SetNoEcho(b->opts, true);
	if (s == NATS_OK)
		s = natsOptions_SetMaxReconnect(b->opts, -1);

	if (s == NATS_OK)
		s = natsOptions_SetCustomReconnectDelay(b->opts, backoff, b);
	if (s == NATS_OK)
		s = natsOptions_SetDisconnectedCB(b->opts, on_disconnected, b);
	if (s == NATS_OK)
		s = natsOptions_SetReconnectedCB(b->opts, on_reconnected, b);
	if (s == NATS_OK)
		s = natsOptions_SetClosedCB(b->opts, on_closed, b);
	if (s == NATS_OK)
		s = natsOptions_SetErrorHandler(b->opts, on_error, b);
	if (s == NATS_OK)   /* the receivers' window: 1M messages before NATS drops */
		s = natsOptions_SetMaxPendingMsgs(b->opts, 1 << 20);
	if (s == NATS_OK)
		s = natsOptions_SetRetryOnFailedConnect(b->opts, true, on_connected, b);
	if (s != NATS_OK) {
		br_log(b, "NATS options: %s", natsStatus_GetText(s));
		return (-EINVAL);
	}
	atomic_store(&b->nats_state, BR_NATS_CONNECTING);
	s = natsConnection_Connect(&b->nc, b->opts);
	if (s == NATS_OK) {
		on_connected(b->nc, b);
	} else if (s != NATS_NOT_YET_CONNECTED) {
		br_log(b, "cannot connect to NATS: %s", natsStatus_GetText(s));
		return (-ECONNREFUSED);
	} else {
		br_log(b, "NATS not reachable yet (%s): retrying with back-off",
		       b->cfg.servers[0]);
	}
	return (0);
}

/* Is "prefix.>" covered by one of the stream's subjects? */
static bool covered(const jsStreamConfig *sc, const char *want)
{
	for (int i = 0; i < sc->SubjectsLen; i++) {
		const char *s = sc->Subjects[i];
		size_t n = strlen(s);

		if (strcmp(s, want) == 0 || strcmp(s, ">") == 0)
			return (true);
		/* "a.>" covers "a.b.>" */
		if (n >= 2 && strcmp(s + n - 2, ".>") == 0 && strncmp(s, want, n - 1) == 0)
			return (true);
	}
	return (false);
}

/* The stream: created with our rules' subjects when missing, extended
 * with the ones it lacks otherwise.  De-duplication by Nats-Msg-Id over
 * two minutes (the server's default window). */
static int ensure_stream(struct bridge *b)
{
	jsStreamInfo *si = NULL;
	jsStreamConfig sc;
	jsErrCode je = 0;
	const char *list[64 + 64];
	char want[64][BR_SUBJECT_MAX + 3];
	int n = 0, nw = 0;
	natsStatus s;

	for (int i = 0; i < b->cfg.nrules && i < 64; i++)
		snprintf(want[nw++], sizeof(want[0]), "%s.>", b->cfg.rules[i].subject);
	s = js_GetStreamInfo(&si, b->js, b->cfg.stream, NULL, &je);
	if (s == NATS_NOT_FOUND || je == JSStreamNotFoundErr) {
		jsStreamConfig_Init(&sc);
		sc.Name = b->cfg.stream;
		for (int i = 0; i < nw; i++)
			list[n++] = want[i];
		sc.Subjects = list;
		sc.SubjectsLen = n;
		sc.Storage = js_FileStorage;
		s = js_AddStream(NULL, b->js, &sc, NULL, &je);
		if (s != NATS_OK) {
			br_log(b, "JetStream: cannot create stream %s: %s (error %d; does the server "
			       "run with -js, and does another stream take these subjects?)",
			       b->cfg.stream, natsStatus_GetText(s), (int)je);
			return (-EIO);
		}
		br_log(b, "JetStream: created stream %s", b->cfg.stream);
		return (0);
	}
	if (s != NATS_OK) {
		br_log(b, "JetStream: stream %s: %s (error %d; does the server run with -js?)",
		       b->cfg.stream, natsStatus_GetText(s), (int)je);
		return (-EIO);
	}
	sc = *si->Config;
	for (int i = 0; i < sc.SubjectsLen && n < 64; i++)
		list[n++] = sc.Subjects[i];
	for (int i = 0; i < nw; i++)
		if (!covered(si->Config, want[i]))
			list[n++] = want[i];
	if (n > sc.SubjectsLen) {
		sc.Subjects = list;
		sc.SubjectsLen = n;
		s = js_UpdateStream(NULL, b->js, &sc, NULL, &je);
		if (s != NATS_OK) {
			br_log(b, "JetStream: cannot add this bridge's subjects to stream %s: %s "
			       "(error %d)", b->cfg.stream, natsStatus_GetText(s), (int)je);
			jsStreamInfo_Destroy(si);
			return (-EIO);
		}
		br_log(b, "JetStream: added this bridge's subjects to stream %s", b->cfg.stream);
	}
	jsStreamInfo_Destroy(si);
	return (0);
}

static int subscribe(struct bridge *b)
{
	for (int i = 0; i < b->cfg.nrules && i < 64; i++) {
		const struct br_rule *ru = &b->cfg.rules[i];
		char subject[BR_SUBJECT_MAX + 3], durable[2 * BR_NAME_MAX + 2];
		natsStatus s;

		if (!(ru->dir & BR_IN) || subs[i] != NULL)
			continue;
		ctxs[i] = (struct sub_ctx){ b, i };
		snprintf(subject, sizeof(subject), "%s.>", ru->subject);
		if (b->js != NULL) {
			jsSubOptions so;
			jsErrCode je = 0;

			/* one durable consumer per rule: a restarted bridge binds
			 * to it again and gets what it had not acknowledged */
			snprintf(durable, sizeof(durable), "%s_%s", b->cfg.durable, ru->name);
			jsSubOptions_Init(&so);
			so.Stream = b->cfg.stream;
			so.ManualAck = true;
			so.Config.Durable = durable;
			so.Config.AckPolicy = js_AckExplicit;
			so.Config.DeliverPolicy = js_DeliverNew;   /* first time only */
			so.Config.MaxAckPending = 65536;
			so.Config.AckWait = 30 * 1000000000LL;
			s = js_Subscribe(&subs[i], b->js, subject, on_msg, &ctxs[i], NULL, &so, &je);
			if (s != NATS_OK) {
				br_log(b, "JetStream: cannot subscribe to %s as %s: %s (error %d)",
				       subject, durable, natsStatus_GetText(s), (int)je);
				return (-EIO);
			}
		} else {
			s = natsConnection_Subscribe(&subs[i], b->nc, subject, on_msg, &ctxs[i]);
			if (s == NATS_OK)
				s = natsSubscription_SetPendingLimits(subs[i], 1 << 20, 1 << 30);
			if (s != NATS_OK) {
				br_log(b, "cannot subscribe to %s: %s", subject, natsStatus_GetText(s));
				return (-EIO);
			}
		}
	}
	return (0);
}

int br_nats_setup(struct bridge *b)
{
	natsStatus s;

	if (b->cfg.mode == BR_JETSTREAM && b->js == NULL) {
		jsOptions jo;

		jsOptions_Init(&jo);
		jo.PublishAsync.MaxPending = 4096;
		s = natsConnection_JetStream(&b->js, b->nc, &jo);
		if (s != NATS_OK) {
			br_log(b, "JetStream context: %s", natsStatus_GetText(s));
			return (-EIO);
		}
	}
	if (b->cfg.mode == BR_JETSTREAM && !subscribed && ensure_stream(b) < 0)
		return (-EIO);
	if (!subscribed) {
		if (subscribe(b) < 0)
			return (-EIO);
		subscribed = true;
	}
	/* a round trip: the server has every subscription once it answers */
	s = natsConnection_FlushTimeout(b->nc, 2000);
	if (s != NATS_OK)
		return (-ETIMEDOUT);
	atomic_store(&b->ready, true);
	return (0);
}

void br_nats_close(struct bridge *b)
{
	if (b->nc != NULL) {
		/* what we published reaches the server before we go */
		if (b->js != NULL) {
			jsPubOptions po;

			jsPubOptions_Init(&po);
			po.MaxWait = 2000;
			js_PublishAsyncComplete(b->js, &po);
		}
		natsConnection_FlushTimeout(b->nc, 2000);
		/* closed before the subscriptions go: a durable consumer must
		 * stay on the server (no unsubscribe reaches it) */
		natsConnection_Close(b->nc);
	}
	for (int i = 0; i < 64; i++)
		if (subs[i] != NULL) {
			natsSubscription_Destroy(subs[i]);
			subs[i] = NULL;
		}
	jsCtx_Destroy(b->js);
	b->js = NULL;
	natsConnection_Destroy(b->nc);
	b->nc = NULL;
	natsOptions_Destroy(b->opts);
	b->opts = NULL;
}
