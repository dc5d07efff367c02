/* pull_consumer.c - the README's API tour: connect, open a port, subscribe it to a key,
 * publish a batch of two notifications to that key, and read the batch back.
 * Usage: pull_consumer [SOCKET]   (default: $SHMNOTIFY_SOCKET, then the per-user path) */
#include <stdio.h>
#include <shmnotify.h>

int main(int argc, char **argv)
{
	shn_client *c;
	shn_port *p;
	shn_conn conn;
	shn_notification out[16], batch[2] = {
		{ .event = 0x1, .key = "printers/lp0", .key_len = 12, .data = "jam", .data_len = 3 },
		{ .event = 0x2, .key = "printers/lp0", .key_len = 12, .data = "cleared", .data_len = 7 },
	};
	int n = shn_connect(argc > 1 ? argv[1] : NULL, &c);
	if (n < 0 || (n = shn_port_open(c, NULL, &p)) < 0 ||      /* delivery ring + wake-up fd */
	    (n = shn_subscribe(p, "printers/lp0", 12, SHN_EV_ALL, 0, &conn)) < 0 ||
	    (n = shn_notify(c, batch, 2, 0)) < 0 ||                /* one batch, asynchronous */
	    (n = shn_port_get(p, out, 16, 1000)) < 0) {            /* wait up to 1 s */
		fprintf(stderr, "pull_consumer: %s\n", shn_strerror(n));
		return 1;
	}
	for (int i = 0; i < n; i++)   /* a batch arrives whole, in order */
		printf("seq=%llu event=0x%x data=%.*s [%u/%u] conn=%llu\n",
		       (unsigned long long)out[i].seq, out[i].event, (int)out[i].data_len,
		       (const char *)out[i].data, out[i].batch_index, out[i].batch_count,
		       (unsigned long long)out[i].conn);
	shn_disconnect(c);            /* closes the port and its subscription too */
	return 0;
}
