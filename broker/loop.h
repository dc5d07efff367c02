/* SPDX-License-Identifier: MIT */
/*
 * loop.h - the broker's event loop: one interface, two backends (the shape
 * of redis' ae.c): io_uring (loop_uring.c) and epoll (loop_epoll.c), chosen
 * once at start.
 *
 * The loop carries only the control plane: readiness of a few descriptors
 * (listening socket, signalfd, doorbell eventfds) and control messages on
 * SOCK_SEQPACKET client sockets, received and sent by the backend (with
 * io_uring: IORING_OP_RECVMSG / IORING_OP_SENDMSG).  The data plane (rings)
 * never goes through it.
 *
 * Lifetime: an object (watch or conn) handed to the loop stays referenced by
 * the backend until its on_released callback runs (io_uring: after the CQEs
 * of every cancelled operation).  Callbacks never run from inside a call
 * the owner makes (add/send/stop), only from shnd_loop_poll(), so an owner
 * can stop or free other objects from any callback without re-entrancy.
 */
#ifndef SHND_LOOP_H
#define SHND_LOOP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "shm/proto.h"

enum shnd_io {
	SHND_IO_AUTO,
	SHND_IO_URING,
	SHND_IO_EPOLL,
};

struct shnd_loop;

/* Backend bookkeeping for one pending io_uring operation or epoll
 * registration; owners never touch it. */
struct shnd_op {
	uint8_t kind;
	bool inflight;
	void *obj;
};

/* Readiness of one descriptor for reading.  Unless edge is set, on_ready
 * may run again while the descriptor stays readable: owners read until
 * EAGAIN. */
struct shnd_watch {
	int fd;
	/* edge: on_ready runs once per wake-up of the descriptor (each write
	 * to an eventfd), so the owner need not read it to re-arm: a doorbell
	 * then costs the broker no read(2).  Otherwise level-triggered. */
	bool edge;
	void (*on_ready)(struct shnd_watch *w);
	void (*on_released)(struct shnd_watch *w); /* optional */
	/* backend private */
	struct shnd_op op;
	struct shnd_watch *next_zombie;
	bool active;
};

/* One outgoing control message and the descriptors it carries.  The
 * message owns fds: they are closed once it is sent or dropped, so a send
 * in flight never refers to a descriptor number its client has since
 * closed and reused. */
struct shnd_out {
	struct shnd_out *next;
	bool close_after; /* end the connection once this one is out */
	int nfds;
	int fds[SHN_MSG_MAX_FDS];
	uint32_t len;
	struct msghdr msg;
	struct iovec iov;
	union {
		/* at least CMSG_SPACE(sizeof(int) * SHN_MSG_MAX_FDS), spelled as
		 * an integer constant (clang does not take CMSG_SPACE as one) */
		char buf[sizeof(struct cmsghdr) + sizeof(int) * SHN_MSG_MAX_FDS +
			 2 * sizeof(size_t)];
		size_t align; /* a cmsghdr's alignment; glibc's has a flexible array */
	} cmsg;
	unsigned char data[];
};

/* A SOCK_SEQPACKET connection.  The owner sets fd, rxbuf/rxcap and the
 * callbacks before shnd_conn_start(). */
struct shnd_conn {
	int fd;
	void *rxbuf;
	size_t rxcap;  /* a message of rxcap bytes is taken as oversized */
	/* a message of len bytes is in rxbuf; it is only valid during the call */
	void (*on_msg)(struct shnd_conn *c, size_t len);
	/* peer closed (err 0) or error (-errno): no on_msg after this */
	void (*on_close)(struct shnd_conn *c, int err);
	void (*on_released)(struct shnd_conn *c);
	/* read-only to owners: messages queued or in flight */
	unsigned nqueued;
	/* backend private */
	struct shnd_out *sendq, **sendq_tail;
	struct shnd_op recv_op, send_op, out_op;
	struct msghdr rxmsg;
	struct iovec rxiov;
	struct shnd_conn *next_zombie, *next_failed;
	int err;
	bool active, closed_reported, want_out, failed;
};

/* Create a loop.  SHND_IO_AUTO tries io_uring and, if io_uring_queue_init
 * fails, logs one line saying why and uses epoll.  0 or -errno. */
int shnd_loop_create(enum shnd_io want, struct shnd_loop **out);

/* Release the loop; every object must have been stopped and released. */
void shnd_loop_destroy(struct shnd_loop *l);

/* "uring" or "epoll". */
const char *shnd_loop_name(const struct shnd_loop *l);

/* True when shnd_loop_poll(l, 0) costs no system call while nothing is
 * queued (io_uring: peeking the CQ ring); the busy loop may then poll every
 * round instead of every few dozen. */
bool shnd_loop_poll_is_free(const struct shnd_loop *l);

/* Start watching w->fd for readability.  0 or -errno. */
int shnd_watch_add(struct shnd_loop *l, struct shnd_watch *w);

/* Stop watching; on_released runs later, once the backend lets go of w.
 * The owner closes w->fd after that. */
void shnd_watch_del(struct shnd_loop *l, struct shnd_watch *w);

/* Start receiving on c.  0 or -errno. */
int shnd_conn_start(struct shnd_loop *l, struct shnd_conn *c);

/* Queue a message; the loop owns o from now on (also on failure).  Messages
 * go out in queue order, one at a time.  0, or -EPIPE when c is stopped. */
int shnd_conn_send(struct shnd_loop *l, struct shnd_conn *c, struct shnd_out *o);

/* Stop receiving and sending (queued messages are dropped, an operation in
 * flight is cancelled); on_released runs later.  The owner closes c->fd
 * after that. */
void shnd_conn_stop(struct shnd_loop *l, struct shnd_conn *c);

/* Run ready callbacks.  timeout_ms: 0 never blocks, -1 waits for at least
 * one event.  Returns how many events ran (0: none), or -errno on a loop
 * failure (not EINTR, which returns 0). */
int shnd_loop_poll(struct shnd_loop *l, int timeout_ms);

/* A message of len bytes (copied from data) carrying nfds descriptors that
 * the message then owns.  NULL on ENOMEM (the descriptors are closed). */
struct shnd_out *shnd_out_new(const void *data, uint32_t len, const int *fds, int nfds);

/* Close its descriptors and free it. */
void shnd_out_free(struct shnd_out *o);

#endif
