/* SPDX-License-Identifier: MIT */
/*
 * harness_direct.h - a client of the direct path spoken raw (no library),
 * shared by the integration tests of the direct path (test_direct_broker,
 * test_direct_read): HELLO asking for it, DIRECT_SETUP's two segments, a
 * port with one subscription, brokered batches written into the publish
 * ring by hand, the port's delivery ring read and drained by hand.
 *
 * Everything asserts with cmocka: use these in the test process only,
 * never after fork().
 */
#ifndef SHN_TEST_HARNESS_DIRECT_H
#define SHN_TEST_HARNESS_DIRECT_H

#include "harness.h"

#include "shm/direct.h"
#include "shm/proto.h"
#include "shm/ring.h"

/* A raw connection after HELLO. */
struct hd_raw {
	int sock;
	int fds[SHN_HELLO_NFDS];
	struct shn_msg_hello_reply rep;
};

/* HELLO with these flags; returns the reply's status (0: r's descriptors
 * and reply are filled). */
int hd_hello(const struct harness *h, struct hd_raw *r, uint32_t flags);
void hd_raw_close(struct hd_raw *r);

/* The direct path's segments as a client maps them. */
struct hd_direct {
	struct shn_ftab_hdr *t;
	size_t tsize;
	struct shn_pmap_hdr *pm;
	size_t pmsize;
};

/* DIRECT_SETUP: the reply, both descriptors checked sealed read-only, then
 * mapped read-only (the table's geometry and the port map's header
 * checked). */
void hd_direct_setup(struct hd_raw *r, struct hd_direct *d);
void hd_direct_unmap(struct hd_direct *d);

/* The filter table's generation now. */
uint64_t hd_gen(const struct hd_direct *d);

/* A raw client that asked for the direct path, with what a publisher and a
 * subscriber need. */
struct hd_client {
	struct hd_raw r;
	struct hd_direct d;
	uint8_t *pub;            /* its publish ring, mapped rw */
	uint64_t tail;
	uint64_t next_batch;
	uint32_t port_id;        /* its port, if opened */
	int port_fds[SHN_PORT_NFDS];
	const uint8_t *port_ring;
	uint32_t port_cap;
	struct shn_ring_cons *port_cons;  /* mapped rw by hd_port_drain */
	uint64_t port_head;      /* what hd_port_drain consumed */
	uint64_t room_rung;      /* the broker's last room request answered */
};

/* HELLO with SHN_HELLO_F_DIRECT (asserted granted), DIRECT_SETUP, the
 * publish ring mapped. */
void hd_start(const struct harness *h, struct hd_client *dc);
void hd_stop(struct hd_client *dc);

/* One request, its reply's status.  No unsolicited message may come
 * between (the reply's id is asserted).  A PORT_OPEN reply's port is
 * taken into dc. */
int hd_call(struct hd_client *dc, void *req, size_t len);

/* PORT_OPEN (capacity bytes, overflow SHN_OVERFLOW_*_WIRE), then
 * SUBSCRIBE key with conn 1 and every application event. */
void hd_port_sub(struct hd_client *dc, const char *key, uint32_t capacity, uint32_t overflow);

/* Publish one batch of one note (event 1, key, the 2 bytes of data)
 * through the raw publish ring, stamped gen (0: route it all), and ring
 * the doorbell; returns its batch_id. */
uint64_t hd_publish(struct hd_client *dc, const char *key, const char *data, uint64_t gen);

/* The batch ids of the records in the port's ring from the start, waiting
 * until there are want of them (or H_TIMEOUT_MS); at most 16. */
int hd_port_batches(struct hd_client *dc, uint64_t *ids, int want);

/* Consume every record now in the port's ring (release the head to the
 * broker, and ring the doorbell when the broker asked for room, as the
 * library does: a SHN_OVERFLOW_BLOCK port holds its publishers back until
 * then); returns how many there were.  Each record is a brokered batch
 * (SHN_REC_DELIVERY or SHN_REC_DELIVERY2): *last_batch_id (may be NULL)
 * gets the last one's batch id. */
int hd_port_drain(struct hd_client *dc, uint64_t *last_batch_id);

/* The next message on dc's socket (an unsolicited one), within
 * H_TIMEOUT_MS, or fail. */
ssize_t hd_next_msg(struct hd_client *dc, void *buf, size_t len, int *fds, int *nfds);

#endif
