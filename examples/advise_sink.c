/* SPDX-License-Identifier: MIT */
/*
 * advise_sink.c - MAPI-style advise sinks: a callback per subscription,
 * run by shn_port_dispatch() in the calling thread, once per delivered
 * batch, with the notifications that match that sink's own filter.
 *
 * usage: advise_sink [SOCKET]
 */
#include <stdio.h>
#include <string.h>
#include <shmnotify.h>

struct tally {
	const char *name;
	int calls, seen;
};

static unsigned on_notify(void *ctx, const shn_notification *batch, size_t n)
{
	struct tally *t = ctx;

	t->calls++;
	for (size_t i = 0; i < n; i++) {
		t->seen++;
		printf("%s: conn=%llu [%u/%u] key=%.*s data=%.*s\n", t->name,
		       (unsigned long long)batch[i].conn, batch[i].batch_index, batch[i].batch_count,
		       (int)batch[i].key_len, (const char *)batch[i].key,
		       (int)batch[i].data_len, (const char *)batch[i].data);
	}
	return SHN_CALLBACK_CONTINUE;
}

#define NOTE(k, d) { .event = 1, .key = k, .key_len = sizeof(k) - 1, .data = d, .data_len = sizeof(d) - 1 }

int main(int argc, char **argv)
{
	struct tally folders = { .name = "folders" }, inbox = { .name = "inbox" };
	shn_notification batch[] = {
		NOTE("store/inbox", "new mail"), NOTE("store/outbox", "sent"), NOTE("store/inbox", "read"),
	};
	shn_client *c;
	shn_port *p;
	shn_conn a, b;
	int n, got = 0;

	n = shn_connect(argc > 1 ? argv[1] : NULL, &c);
	if (n == 0)
		n = shn_port_open(c, NULL, &p);
	if (n == 0)   /* every key: this sink sees the whole batch */
		n = shn_advise(p, NULL, 0, SHN_EV_ALL, 0, on_notify, &folders, &a);
	if (n == 0)   /* one key: this sink sees its subset, renumbered */
		n = shn_advise(p, "store/inbox", 11, SHN_EV_ALL, 0, on_notify, &inbox, &b);
	if (n == 0)
		n = shn_notify(c, batch, 3, 0);
	while (n >= 0 && got < 3) {
		n = shn_port_dispatch(p, 1000);   /* runs the callbacks here */
		if (n > 0)
			got += n;
	}
	if (n < 0) {
		fprintf(stderr, "advise_sink: %s\n", shn_strerror(n));
		return 1;
	}
	printf("folders: %d call(s), %d notifications; inbox: %d call(s), %d notifications\n",
	       folders.calls, folders.seen, inbox.calls, inbox.seen);
	shn_disconnect(c);
	return (folders.seen == 3 && inbox.seen == 2) ? 0 : 1;
}
