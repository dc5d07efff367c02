/* SPDX-License-Identifier: MIT */
/*
 * bridge_rate.c - the bridge's end-to-end rate and latency beside plain
 * libnats publish/subscribe on the same NATS server (docs/bench.md,
 * "Bridge").  bench/bridge_bench.sh starts the server, two brokers and two
 * bridges, then runs this:
 *
 *   shmnotify-bridge-rate NATS_URL SOCK_A SOCK_B KEY N BATCH
 *
 * nats    a publisher connection sends N messages of 16 bytes (flushed
 *         every BATCH) to a subscriber connection in this process;
 *         rate = N / (last received - first sent); latency: one message
 *         at a time, sent until received, median of 2000.
 * bridge  the same through shmnotify: shn_notify on broker A (batches of
 *         BATCH), bridge A, NATS, bridge B, shn_port_get on broker B.
 *         Notifications reported lost (OVERFLOW) count as arrived for the
 *         end of the run and are printed.
 *
 * Output: one line per figure, "nats rate N/s", "bridge p50_us X", ...
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <nats/nats.h>
#include <shmnotify.h>

#define LAT_ITERS 2000

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ((int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec);
}

static int cmp64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return ((x > y) - (x < y));
}

static _Atomic uint64_t got;
static _Atomic int64_t last_ns;

static void on_msg(natsConnection *nc, natsSubscription *sub, natsMsg *m, void *closure)
{
	(void)nc;
	(void)sub;
	(void)closure;
	natsMsg_Destroy(m);
	atomic_store(&last_ns, now_ns());
	atomic_fetch_add(&got, 1);
}

static int die(const char *what, natsStatus s)
{
	fprintf(stderr, "shmnotify-bridge-rate: %s: %s\n", what, natsStatus_GetText(s));
	return (1);
}

static int plain_nats(const char *url, long n, int batch)
{
	natsConnection *pub = NULL, *sub = NULL;
	natsSubscription *s = NULL, *ls = NULL;
	char payload[16] = "D0123456789abcd";
	int64_t t0, lat[LAT_ITERS];
	natsStatus st;

	st = natsConnection_ConnectTo(&pub, url);
	if (st == NATS_OK)
		st = natsConnection_ConnectTo(&sub, url);
	if (st == NATS_OK)
		st = natsConnection_Subscribe(&s, sub, "bench.plain.k", on_msg, NULL);
	if (st == NATS_OK)
		st = natsSubscription_SetPendingLimits(s, -1, -1);
	if (st == NATS_OK)
		st = natsConnection_Flush(sub);
	if (st != NATS_OK)
		return (die("nats setup", st));
	t0 = now_ns();
	for (long i = 0; i < n; i++) {
		natsConnection_Publish(pub, "bench.plain.k", payload, sizeof(payload));
		if ((i + 1) % batch == 0)
			natsConnection_Flush(pub);
	}
	natsConnection_Flush(pub);
	while (atomic_load(&got) < (uint64_t)n && now_ns() - t0 < 60000000000LL)
		nats_Sleep(1);
	printf("nats rate %.0f\n", (double)atomic_load(&got) * 1e9 / (double)(atomic_load(&last_ns) - t0));
	/* the same with the bridge's eight headers on each message, built as
	 * the bridge builds them: what the wire format alone costs */
	atomic_store(&got, 0);
	t0 = now_ns();
	for (long i = 0; i < n; i++) {
		natsMsg *m = NULL;
		char num[32];

		natsMsg_Create(&m, "bench.plain.k", NULL, payload, sizeof(payload));
		natsMsgHeader_Set(m, "Shn-Origin", "bench-a");
		natsMsgHeader_Set(m, "Shn-Epoch", "4113285620390581247");
		snprintf(num, sizeof(num), "%ld", i + 1);
		natsMsgHeader_Set(m, "Shn-Seq", num);
		snprintf(num, sizeof(num), "%ld", i / batch + 1);
		natsMsgHeader_Set(m, "Shn-Batch", num);
		snprintf(num, sizeof(num), "%ld", i % batch);
		natsMsgHeader_Set(m, "Shn-Index", num);
		snprintf(num, sizeof(num), "%d", batch);
		natsMsgHeader_Set(m, "Shn-Count", num);
		natsMsgHeader_Set(m, "Shn-Event", "0x00000001");
		natsMsgHeader_Set(m, "Shn-Key", "ZGF0YS9iZW5jaA");
		natsConnection_PublishMsg(pub, m);
		natsMsg_Destroy(m);
		if ((i + 1) % batch == 0)
			natsConnection_Flush(pub);
	}
	natsConnection_Flush(pub);
	while (atomic_load(&got) < (uint64_t)n && now_ns() - t0 < 60000000000LL)
		nats_Sleep(1);
	printf("headers rate %.0f\n", (double)atomic_load(&got) * 1e9 / (double)(atomic_load(&last_ns) - t0));
	natsSubscription_Destroy(s);
	/* latency: one at a time, a synchronous subscription */
	st = natsConnection_SubscribeSync(&ls, sub, "bench.plain.lat");
	if (st == NATS_OK)
		st = natsConnection_Flush(sub);
	if (st != NATS_OK)
		return (die("nats latency setup", st));
	for (int i = 0; i < LAT_ITERS; i++) {
		natsMsg *m = NULL;
		int64_t t = now_ns();

		natsConnection_Publish(pub, "bench.plain.lat", payload, sizeof(payload));
		natsConnection_Flush(pub);
		if (natsSubscription_NextMsg(&m, ls, 5000) != NATS_OK)
			return (die("nats latency", NATS_TIMEOUT));
		lat[i] = now_ns() - t;
		natsMsg_Destroy(m);
	}
	qsort(lat, LAT_ITERS, sizeof(lat[0]), cmp64);
	printf("nats p50_us %.1f\n", (double)lat[LAT_ITERS / 2] / 1000.0);
	printf("nats p99_us %.1f\n", (double)lat[LAT_ITERS * 99 / 100] / 1000.0);
	natsSubscription_Destroy(ls);
	natsConnection_Destroy(pub);
	natsConnection_Destroy(sub);
	return (0);
}

static uint64_t le64(const void *p)
{
	const uint8_t *d = p;
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = (v << 8) | d[i];
	return (v);
}

/* Count what arrives on p (lost reports included) until want or 60 s. */
static uint64_t drain(shn_port *p, uint64_t want, int64_t *last, uint64_t *lost)
{
	shn_notification out[256];
	uint64_t n = 0;
	int64_t t0 = now_ns();

	while (n < want && now_ns() - t0 < 60000000000LL) {
		int r = shn_port_get(p, out, 256, 100);

		for (int i = 0; i < r; i++) {
			if (out[i].event == SHN_EV_OVERFLOW && out[i].data_len == 8) {
				*lost += le64(out[i].data);
				n += le64(out[i].data);
			} else if (!(out[i].event & SHN_EV_SYSTEM)) {
				n++;
			}
		}
		if (r > 0)
			*last = now_ns();
	}
	return (n);
}

static int bridged(const char *sock_a, const char *sock_b, const char *key, long n, int batch)
{
	shn_client *a = NULL, *b = NULL;
	shn_port *p = NULL;
	shn_conn conn;
	shn_notification *bt = calloc((size_t)batch, sizeof(*bt));
	char payload[16] = "D0123456789abcd";
	int64_t t0, last = 0, lat[LAT_ITERS];
	uint64_t lost = 0, arrived;
	int r;

	if (bt == NULL)
		return (1);
	r = shn_connect(sock_a, &a);
	if (r == 0)
		r = shn_connect(sock_b, &b);
	if (r == 0)
		r = shn_port_open(b, &(shn_port_options){ .capacity = 16u << 20 }, &p);
	if (r == 0)
		r = shn_subscribe(p, key, strlen(key), SHN_EV_ALL, 0, &conn);
	if (r < 0) {
		fprintf(stderr, "shmnotify-bridge-rate: brokers: %s\n", shn_strerror(r));
		return (1);
	}
	for (int i = 0; i < batch; i++) {
		bt[i].event = 1;
		bt[i].key = key;
		bt[i].key_len = (uint16_t)strlen(key);
		bt[i].data = payload;
		bt[i].data_len = sizeof(payload);
	}
	t0 = now_ns();
	for (long i = 0; i < n; i += batch)
		if ((r = shn_notify(a, bt, (size_t)batch, 0)) < 0) {
			fprintf(stderr, "shmnotify-bridge-rate: publish: %s\n", shn_strerror(r));
			return (1);
		}
	arrived = drain(p, (uint64_t)n, &last, &lost);
	printf("bridge rate %.0f\n", (double)arrived * 1e9 / (double)(last - t0));
	printf("bridge lost %llu\n", (unsigned long long)lost);
	for (int i = 0; i < LAT_ITERS; i++) {
		shn_notification out[4];
		int64_t t = now_ns();

		if (shn_notify(a, bt, 1, 0) < 0)
			return (1);
		do {
			r = shn_port_get(p, out, 4, 5000);
		} while (r > 0 && (out[0].event & SHN_EV_SYSTEM));
		if (r < 1) {
			fprintf(stderr, "shmnotify-bridge-rate: latency: nothing arrived in 5 s\n");
			return (1);
		}
		lat[i] = now_ns() - t;
	}
	qsort(lat, LAT_ITERS, sizeof(lat[0]), cmp64);
	printf("bridge p50_us %.1f\n", (double)lat[LAT_ITERS / 2] / 1000.0);
	printf("bridge p99_us %.1f\n", (double)lat[LAT_ITERS * 99 / 100] / 1000.0);
	shn_disconnect(a);
	shn_disconnect(b);
	free(bt);
	return (0);
}

int main(int argc, char **argv)
{
	long n;
	int batch, rc;

	if (argc != 7) {
		fprintf(stderr, "usage: shmnotify-bridge-rate NATS_URL SOCK_A SOCK_B KEY N BATCH\n"
			"(run by bench/bridge_bench.sh, which starts what it needs)\n");
		return (2);
	}
	n = atol(argv[5]);
	batch = atoi(argv[6]);
	if (n < 1 || batch < 1 || batch > 4096) {
		fprintf(stderr, "shmnotify-bridge-rate: N >= 1 and BATCH in 1..4096\n");
		return (2);
	}
	n = (n + batch - 1) / batch * batch;
	rc = plain_nats(argv[1], n, batch);
	if (rc == 0)
		rc = bridged(argv[2], argv[3], argv[4], n, batch);
	nats_Close();
	return (rc);
}
