/* pull_consumer.c - the README's API tour: connect, open a port, subscribe to
 * a key, publish a batch of two notifications to it, and read them back.
 * Usage: pull_consumer [SOCKET]  (default: $SHMNOTIFY_SOCKET, then the per-user path) */
#include <stdio.h>
#include <shmnotify.h>

#define CHECK(call) do { int rc_ = (call); if (rc_ < 0) { \
	fprintf(stderr, "%s: %s\n", #call, shn_strerror(rc_)); return 1; } } while (0)

int main(int argc, char **argv)
{
	shn_client *c;
	shn_port *p;
	shn_conn conn;
	shn_notification batch[2] = {
		{ .event = 0x1, .key = "printers/lp0", .key_len = 12, .data = "jam", .data_len = 3 },
		{ .event = 0x2, .key = "printers/lp0", .key_len = 12, .data = "cleared", .data_len = 7 },
	}, got[16];

	CHECK(shn_connect(argc > 1 ? argv[1] : NULL, &c));
	CHECK(shn_port_open(c, NULL, &p));                  /* delivery ring + eventfd */
	CHECK(shn_subscribe(p, "printers/lp0", 12, SHN_EV_ALL, 0, &conn)); /* active on return */
	CHECK(shn_notify(c, batch, 2, 0));                  /* one batch, asynchronous */
	for (int seen = 0; seen < 2;) {
		int n = shn_port_get(p, got, 16, 1000);     /* waits up to 1 s */
		CHECK(n);
		for (int i = 0; i < n; i++, seen++)
			printf("seq=%llu event=0x%x data=%.*s [%u/%u] conn=%llu\n",
			       (unsigned long long)got[i].seq, got[i].event, (int)got[i].data_len,
			       (const char *)got[i].data, got[i].batch_index, got[i].batch_count,
			       (unsigned long long)got[i].conn);
	}
	CHECK(shn_unsubscribe(c, conn));
	shn_port_close(p);
	shn_disconnect(c);
	return 0;
}
