/* SPDX-License-Identifier: MIT */
/*
 * acl_client.c - a small client that test_acl runs under another uid
 * (setpriv --reuid ...).  Linked statically against libshmnotify, so that
 * a copy of it runs from any directory.
 *
 *   acl_client SOCKET pub KEY            shn_notify one notification
 *   acl_client SOCKET sub KEY|*          open a port, subscribe (* = any key)
 *   acl_client SOCKET subprefix KEY      open a port, subscribe to the prefix KEY
 *   acl_client SOCKET subrecv KEY        subscribe, print "ready", wait for one
 *                                        notification, print "got DATA uid N"
 *   acl_client SOCKET rawpub KEY...      past the library: HELLO by hand, one
 *                                        batch per KEY written into the publish
 *                                        ring, wait until the broker consumed them
 *
 * Exit status: 0, or the errno of the failure (EACCES is 13), so the test
 * can tell a refusal from anything else.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <shmnotify.h>

#include "shm/proto.h"
#include "shm/ring.h"

static int fail(const char *what, int err)
{
	fprintf(stderr, "acl_client (uid %u): %s: %d (%s)\n", (unsigned)getuid(), what, err,
		shn_strerror(err));
	return (err < 0 ? -err : 1) & 0xff;
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int raw_pub(const char *sock, char **keys, int nkeys)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct shn_msg_hello req;
	struct shn_msg_hello_reply rep;
	union {
		struct cmsghdr align;
		char b[CMSG_SPACE(sizeof(int) * SHN_HELLO_NFDS)];
	} cb;
	struct iovec iov = { .iov_base = &rep, .iov_len = sizeof(rep) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1,
			     .msg_control = cb.b, .msg_controllen = sizeof(cb.b) };
	int fds[SHN_HELLO_NFDS];
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);

	if (fd < 0 || strlen(sock) >= sizeof(sa.sun_path))
		return (fail("socket", -EINVAL));
	strcpy(sa.sun_path, sock);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return (fail("connect", -errno));
	memset(&req, 0, sizeof(req));
	req.hdr = (struct shn_msg_hdr){ .magic = SHN_PROTO_MAGIC, .version = SHN_PROTO_VERSION,
					.type = SHN_MSG_HELLO, .id = 1 };
	if (send(fd, &req, sizeof(req), MSG_NOSIGNAL) != (ssize_t)sizeof(req))
		return (fail("send HELLO", -errno));
	if (recvmsg(fd, &mh, MSG_CMSG_CLOEXEC) != (ssize_t)sizeof(rep) || rep.hdr.status != 0)
		return (fail("HELLO", rep.hdr.status ? rep.hdr.status : -EPROTO));
	struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
	if (cm == NULL || cm->cmsg_len != CMSG_LEN(sizeof(fds)))
		return (fail("HELLO descriptors", -EPROTO));
	memcpy(fds, CMSG_DATA(cm), sizeof(fds));
	size_t size = SHN_RING_HDR_SIZE + (size_t)rep.pub_capacity;
	uint8_t *m = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fds[SHN_HELLO_FD_PUB], 0);
	if (m == MAP_FAILED)
		return (fail("mmap", -errno));
	struct shn_ring_prod *prod = (void *)(m + SHN_PUB_PROD_OFF);
	struct shn_ring_cons *cons = (void *)(m + SHN_PUB_CONS_OFF);
	uint64_t tail = 0, one = 1;

	for (int i = 0; i < nkeys; i++) {
		uint16_t klen = (uint16_t)strlen(keys[i]);
		uint32_t len = (uint32_t)sizeof(struct shn_pub_batch) + shn_pub_note_size(klen, 3);
		struct shn_pub_batch *b = (void *)(m + SHN_RING_HDR_SIZE + tail);
		struct shn_pub_note *pn = (void *)(b + 1);

		memset(b, 0, len);
		b->h = (struct shn_rec_hdr){ .len = len, .type = SHN_REC_BATCH };
		b->count = 1;
		b->batch_id = (uint64_t)i + 1;
		*pn = (struct shn_pub_note){ .event = 1, .key_len = klen, .data_len = 3 };
		memcpy(pn + 1, keys[i], klen);
		memcpy((uint8_t *)(pn + 1) + klen, "raw", 3);
		tail += len;
	}
	atomic_store(&prod->tail, tail);
	if (write(fds[SHN_HELLO_FD_DOORBELL], &one, 8) != 8)
		return (fail("doorbell", -errno));
	/* stay connected until the broker consumed every record */
	for (int64_t end = now_ms() + 10000; atomic_load(&cons->head) != tail;) {
		if (now_ms() > end)
			return (fail("the broker did not consume the records", -ETIMEDOUT));
		if (write(fds[SHN_HELLO_FD_DOORBELL], &one, 8) != 8) {
			/* saturated: the broker is awake */
		}
		poll(NULL, 0, 5);
	}
	return (0);
}

int main(int argc, char **argv)
{
	shn_client *c = NULL;
	shn_port *p = NULL;
	shn_conn conn = 0;
	int err;

	if (argc < 4) {
		fprintf(stderr, "usage: acl_client SOCKET pub|sub|subprefix|subrecv|rawpub KEY...\n");
		return (2);
	}
	const char *sock = argv[1], *cmd = argv[2], *key = argv[3];
	if (strcmp(cmd, "rawpub") == 0)
		return (raw_pub(sock, argv + 3, argc - 3));
	err = shn_connect(sock, &c);
	if (err < 0)
		return (fail("shn_connect", err));
	if (strcmp(cmd, "pub") == 0) {
		shn_notification n = { .event = 1, .key = key, .key_len = (uint16_t)strlen(key),
				       .data = "pub", .data_len = 3 };

		err = shn_notify(c, &n, 1, 0);
		if (err < 0)
			return (fail("shn_notify", err));
		shn_disconnect(c);   /* what it published still goes out (rule 9) */
		return (0);
	}
	err = shn_port_open(c, NULL, &p);
	if (err < 0)
		return (fail("shn_port_open", err));
	if (strcmp(key, "*") == 0)
		err = shn_subscribe(p, NULL, 0, SHN_EV_ALL, 0, &conn);
	else if (strcmp(cmd, "subprefix") == 0)
		err = shn_subscribe(p, key, strlen(key), SHN_EV_ALL, SHN_SUBSCRIBE_PREFIX, &conn);
	else
		err = shn_subscribe(p, key, strlen(key), SHN_EV_ALL, 0, &conn);
	if (err < 0)
		return (fail("shn_subscribe", err));
	if (strcmp(cmd, "subrecv") == 0) {
		shn_notification out[4];

		printf("ready\n");
		fflush(stdout);
		err = shn_port_get(p, out, 4, 10000);
		if (err < 0)
			return (fail("shn_port_get", err));
		printf("got %.*s uid %u\n", (int)out[0].data_len, (const char *)out[0].data,
		       out[0].sender_uid);
		fflush(stdout);
	}
	shn_disconnect(c);
	return (0);
}
