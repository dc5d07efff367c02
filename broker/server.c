/* SPDX-License-Identifier: MIT */
/*
 * server.c - the listening socket (the stale-socket rule), accepting
 * clients, and reclaiming the doomed ones at safe points: their ports and
 * subscriptions, what is left in their publish ring (routed first,
 * docs/design.md, rule 9), their memory.
 */
#define _GNU_SOURCE
#include "server.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "client.h"
#include "dring.h"
#include "ftab.h"
#include "control.h"
#include "log.h"
#include "port.h"
#include "router.h"
#include "sync.h"
#include "systemd.h"

/* Connections accepted per readiness event before going back to routing. */
#define ACCEPT_BUDGET 64

/* ---- the socket ------------------------------------------------------- */

static int make_addr(const char *path, struct sockaddr_un *sa)
{
	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sa->sun_path))
		return (-ENAMETOOLONG);
	strcpy(sa->sun_path, path);
	return (0);
}

/* One look: 0 when a broker at path answers a HELLO, -ECONNREFUSED when
 * nobody listens, -ETIMEDOUT when something accepts but does not answer.
 * Why the HELLO: after a SIGKILL, a broker's listening socket can outlive
 * the process for a moment (io_uring releases the files of its in-flight
 * requests asynchronously), and connect() then still succeeds. */
static int probe_once(const char *path)
{
	struct shn_msg_hello hello = {
		.hdr = { .magic = SHN_PROTO_MAGIC, .version = SHN_PROTO_VERSION,
			 .type = SHN_MSG_HELLO, .id = 1 },
		.pub_capacity = SHN_RING_MIN_CAPACITY,
	};
	struct shn_msg_hdr reply;
	struct sockaddr_un sa;
	struct pollfd pfd;
	int fd, err = 0;

	make_addr(path, &sa);
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return (-errno);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		err = -errno;
		/* a full backlog or a listener of another socket type is
		 * still someone listening */
		if (err == -EAGAIN || err == -EPROTOTYPE)
			err = 0;
		close(fd);
		return (err);
	}
	pfd.fd = fd;
	pfd.events = POLLIN;
	if (send(fd, &hello, sizeof(hello), MSG_NOSIGNAL) < 0 || poll(&pfd, 1, 200) <= 0 ||
	    recv(fd, &reply, sizeof(reply), MSG_TRUNC) < (ssize_t)sizeof(reply.magic))
		err = -ETIMEDOUT;
	close(fd);
	return (err);
}

/* 0 when a live broker answers at path, else -errno (-ECONNREFUSED:
 * nobody listens).  A socket that accepts without answering is looked at
 * again for up to two seconds before we give up on it. */
static int probe(const char *path)
{
	int err = -ETIMEDOUT;

	for (int i = 0; i < 10 && err == -ETIMEDOUT; i++)
		err = probe_once(path);
	return (err);
}

/* Create the socket's directory (0700) when missing.  The per-user
 * default lives in a shared place like /tmp: refuse a directory someone
 * else owns or others may write to.  A socket shared by [socket] mode or
 * group gets directories others may pass through (search only) and, with a
 * group, owned by that group. */
static int ensure_dir(const struct shnd_config *cfg)
{
	mode_t dmode = 0700;
	char dir[sizeof(cfg->socket_path)];
	char *slash;
	struct stat st;

	snprintf(dir, sizeof(dir), "%s", cfg->socket_path);
	slash = strrchr(dir, '/');
	if (slash == NULL || slash == dir)
		return (0);
	*slash = '\0';
	/* like mkdir -p, each missing level private to this user */
	for (slash = dir + 1; ; slash++) {
		bool last = (*slash == '\0');

		if (*slash != '/' && !last)
			continue;
		*slash = '\0';
		if (mkdir(dir, 0700) == 0) {
			if (cfg->shared) {
				dmode |= (cfg->sock_mode & 0060) ? 0010 : 0;
				dmode |= (cfg->sock_mode & 0006) ? 0001 : 0;
				if ((cfg->has_group && chown(dir, (uid_t)-1, cfg->sock_group) < 0) ||
				    chmod(dir, dmode) < 0)
					shnd_warn("cannot open directory %s to the socket's users: %s",
						  dir, strerror(errno));
			}
		} else if (errno != EEXIST) {
			int err = -errno;

			shnd_err("cannot create directory %s: %s", dir, strerror(errno));
			return (err);
		}
		if (last)
			break;
		*slash = '/';
	}
	if (!cfg->default_path)
		return (0);
	if (lstat(dir, &st) < 0 || !S_ISDIR(st.st_mode) || st.st_uid != geteuid() ||
	    (st.st_mode & 0022) != 0) {
		shnd_err("%s is not a private directory of this user; fix it or choose --socket",
			 dir);
		return (-EPERM);
	}
	return (0);
}

static void on_listen_released(struct shnd_watch *w)
{
	close(w->fd);
	w->fd = -1;
}

static void new_client(struct shnd_broker *b, int fd);

static void on_accept(struct shnd_watch *w)
{
	struct shnd_broker *b = shnd_container_of(w, struct shnd_broker, listen_watch);
	int i;

	for (i = 0; i < ACCEPT_BUDGET; i++) {
		int fd = accept4(b->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);

		if (fd >= 0) {
			new_client(b, fd);
			continue;
		}
		if (errno == EINTR || errno == ECONNABORTED)
			continue;
		if (errno == EMFILE || errno == ENFILE) {
			/* out of descriptors: take the connection off the
			 * queue with the spare one and close it, or the
			 * socket stays readable and the loop spins */
			if (b->spare_fd >= 0) {
				close(b->spare_fd);
				fd = accept(b->listen_fd, NULL, NULL);
				if (fd >= 0)
					close(fd);
				b->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
			}
			shnd_warn("out of file descriptors: a client was refused");
			return;
		}
		if (errno != EAGAIN)
			shnd_warn("accept: %s", strerror(errno));
		return;
	}
}

int shnd_server_listen(struct shnd_broker *b)
{
	const char *path = b->cfg.socket_path;
	struct sockaddr_un sa;
	struct stat st;
	mode_t old;
	int fd, err;

	fd = shnd_systemd_listen_fd();
	if (fd < -1)
		return (fd);
	if (fd >= 0) {
		/* Socket activation: the service manager owns the socket file
		 * (its path, mode, group); we only accept on it. */
		socklen_t salen = sizeof(sa);
		memset(&sa, 0, sizeof(sa));
		if (getsockname(fd, (struct sockaddr *)&sa, &salen) == 0 && sa.sun_path[0] &&
		    strlen(sa.sun_path) < sizeof(b->cfg.socket_path))
			strcpy(b->cfg.socket_path, sa.sun_path);
		b->activated = true;
		/* SocketMode=/SocketGroup= in the unit share it on purpose:
		 * then other users are clients like [socket] mode makes them */
		if (stat(b->cfg.socket_path, &st) == 0 && (st.st_mode & 0066))
			b->cfg.shared = true;
		goto watch;
	}
	if (make_addr(path, &sa) < 0) {
		shnd_err("socket path too long: %s", path);
		return (-ENAMETOOLONG);
	}
	err = ensure_dir(&b->cfg);
	if (err)
		return (err);
	if (lstat(path, &st) == 0) {
		err = probe(path);
		if (err == 0) {
			shnd_err("another shmnotifyd is already listening on %s; "
				 "stop it or choose another --socket", path);
			return (-EADDRINUSE);
		}
		if (!S_ISSOCK(st.st_mode)) {
			shnd_err("%s exists and is not a socket; remove it or choose another --socket",
				 path);
			return (-EEXIST);
		}
		if (err == -ETIMEDOUT) {
			shnd_err("something accepts connections on %s but does not answer as a "
				 "broker (a hung shmnotifyd?); stop it or choose another --socket",
				 path);
			return (-EADDRINUSE);
		}
		if (err != -ECONNREFUSED) {
			shnd_err("cannot tell whether a broker listens on %s: %s", path,
				 strerror(-err));
			return (err);
		}
		shnd_info("replacing stale socket %s", path);
		if (unlink(path) < 0 && errno != ENOENT) {
			err = -errno;
			shnd_err("cannot remove stale socket %s: %s", path, strerror(errno));
			return (err);
		}
	}
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		err = -errno;
		shnd_err("socket: %s", strerror(errno));
		return (err);
	}
	/* Bound and listening under a private name first, then linked to
	 * path: a client never finds the socket file before the broker
	 * listens (connect() on a socket bound but not listening is refused,
	 * and a script that waits for the file would see that).  link(), not
	 * rename(): it fails when path exists, so two brokers starting at once
	 * still cannot both take it.  A path too long for the private name
	 * is bound directly. */
	char tmp[sizeof(sa.sun_path)];
	struct sockaddr_un tsa;
	bool staged = snprintf(tmp, sizeof(tmp), "%s.%ld.new", path, (long)getpid()) <
			      (int)sizeof(tmp) &&
		      make_addr(tmp, &tsa) == 0;
	const char *bound = staged ? tmp : path;

	if (staged)
		unlink(tmp);   /* a leftover of an earlier broker of this pid */
	old = umask(0177); /* the socket is the access control: 0600 */
	err = bind(fd, (struct sockaddr *)(staged ? &tsa : &sa), sizeof(sa)) < 0 ? -errno : 0;
	umask(old);
	/* [socket] group and mode: a system broker's socket (a path that is
	 * not the per-user default; config.c checks).  Before listen(): no
	 * one connects through a looser mode than configured. */
	if (err == 0 && b->cfg.has_group && chown(bound, (uid_t)-1, b->cfg.sock_group) < 0) {
		err = -errno;
		shnd_err("cannot give the socket %s to group %u: %s (the broker must run as root "
			 "or be a member of that group)", path, (unsigned)b->cfg.sock_group,
			 strerror(errno));
		unlink(bound);
		close(fd);
		return (err);
	}
	if (err == 0 && b->cfg.sock_mode >= 0 && chmod(bound, (mode_t)b->cfg.sock_mode) < 0) {
		err = -errno;
		shnd_err("cannot set mode 0%o on the socket %s: %s", (unsigned)b->cfg.sock_mode, path,
			 strerror(errno));
		unlink(bound);
		close(fd);
		return (err);
	}
	if (err == 0 && listen(fd, SOMAXCONN) < 0)
		err = -errno;
	if (err == 0 && staged) {
		err = link(tmp, path) < 0 ? -errno : 0;
		/* a file system without hard links: rename, not exclusive */
		if (err != 0 && err != -EEXIST && rename(tmp, path) == 0)
			err = 0;
		unlink(tmp);
		if (err == -EEXIST) {
			shnd_err("%s appeared while this broker started (another shmnotifyd?); "
				 "stop it or choose another --socket", path);
			close(fd);
			return (-EADDRINUSE);
		}
	} else if (err != 0 && staged) {
		unlink(tmp);
	}
	if (err == 0 && stat(path, &st) < 0)
		err = -errno;
	if (err) {
		shnd_err("cannot listen on %s: %s", path, strerror(-err));
		close(fd);
		return (err);
	}
	b->sock_dev = st.st_dev;
	b->sock_ino = st.st_ino;
watch:
	b->listen_fd = fd;
	b->listen_watch.fd = fd;
	b->listen_watch.on_ready = on_accept;
	b->listen_watch.on_released = on_listen_released;
	err = shnd_watch_add(b->loop, &b->listen_watch);
	if (err) {
		shnd_err("cannot watch the socket: %s", strerror(-err));
		if (!b->activated)
			unlink(path);
		close(fd);
		b->listen_fd = -1;
		b->listen_watch.fd = -1;
		return (err);
	}
	return (0);
}

void shnd_server_unlisten(struct shnd_broker *b)
{
	struct stat st;

	if (b->listen_fd < 0)
		return;
	/* only our own socket: a successor may already have replaced it; an
	 * activated socket belongs to the service manager */
	if (!b->activated && stat(b->cfg.socket_path, &st) == 0 && st.st_dev == b->sock_dev &&
	    st.st_ino == b->sock_ino)
		unlink(b->cfg.socket_path);
	if (b->listen_watch.active) {
		shnd_watch_del(b->loop, &b->listen_watch);
	} else {
		close(b->listen_fd);
		b->listen_watch.fd = -1;
	}
	b->listen_fd = -1;
}

/* ---- clients ---------------------------------------------------------- */

static struct shnd_client *conn_client(struct shnd_conn *conn)
{
	return (shnd_container_of(conn, struct shnd_client, conn));
}

static void on_msg(struct shnd_conn *conn, size_t len)
{
	struct shnd_client *c = conn_client(conn);

	if (c->state == SHND_CLIENT_DOOMED || c->close_after_reply)
		return;
	shnd_control_handle(c, len);
}

static void on_close(struct shnd_conn *conn, int err)
{
	struct shnd_client *c = conn_client(conn);

	if (c->state == SHND_CLIENT_DOOMED)
		return;
	if (err && !c->close_after_reply)
		shnd_debug("client %llu (pid %d): socket error: %s", (unsigned long long)c->id,
			   (int)c->pid, strerror(-err));
	else
		shnd_debug("client %llu (pid %d) disconnected", (unsigned long long)c->id,
			   (int)c->pid);
	shnd_client_gone(c);
}

static void on_conn_released(struct shnd_conn *conn)
{
	struct shnd_client *c = conn_client(conn);

	close(conn->fd);
	conn->fd = -1;
	shnd_client_unref(c);
}

static void new_client(struct shnd_broker *b, int fd)
{
	struct shnd_client *c;
	struct ucred cr;
	socklen_t crlen = sizeof(cr);

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &crlen) < 0) {
		shnd_warn("SO_PEERCRED: %s", strerror(errno));
		close(fd);
		return;
	}
	/* The socket's mode (0600) already keeps other users out; this holds
	 * even where someone loosened it: only this user and root.  Unless
	 * [socket] mode/group shares the socket on purpose: then whoever the
	 * file's permissions let connect is a client, and [acl] rules decide
	 * what it may do. */
	bool foreign = !b->cfg.shared && cr.uid != geteuid() && cr.uid != 0;
	if (foreign) {
		shnd_warn("refusing pid %d: uid %u is neither the broker's nor root's (a system "
			  "broker shares its socket with [socket] mode and group)",
			  (int)cr.pid, (unsigned)cr.uid);
		b->tot.refused++;
		/* Its HELLO gets -EACCES, so the user reads "permission
		 * denied", not "the broker went away" -- for a few at a time:
		 * another user must not hold client slots by not sending it. */
		if (b->foreign_refusing >= SHND_FOREIGN_REFUSING_MAX) {
			close(fd);
			return;
		}
	}
	/* Beyond max-clients a connection is still taken, to answer its
	 * HELLO with -EUSERS (a clear error rather than a closed socket);
	 * beyond that slack it is closed at once. */
	if (b->nclients >= (size_t)b->cfg.lim.max_clients + SHND_REFUSE_SLACK) {
		shnd_warn("refusing pid %d: too many clients (limit %u; raise max-clients in "
			  "[limits])", (int)cr.pid, b->cfg.lim.max_clients);
		b->tot.limit_clients++;
		close(fd);
		return;
	}
	if (b->nclients == b->clients_cap) {
		size_t ncap = b->clients_cap ? b->clients_cap * 2 : 16;
		struct shnd_client **n = realloc(b->clients, ncap * sizeof(*n));

		if (n == NULL) {
			shnd_warn("out of memory: a client was refused");
			close(fd);
			return;
		}
		b->clients = n;
		b->clients_cap = ncap;
	}
	c = calloc(1, sizeof(*c));
	if (c == NULL) {
		shnd_warn("out of memory: a client was refused");
		close(fd);
		return;
	}
	c->b = b;
	c->id = ++b->next_client_id;
	c->pid = cr.pid;
	c->uid = cr.uid;
	c->gid = cr.gid;
	c->refuse = foreign ? -EACCES : b->nclients >= b->cfg.lim.max_clients ? -EUSERS : 0;
	if (shnd_acl_client_init(&b->cfg.acl, &c->acl, fd, cr.uid, cr.gid) < 0) {
		shnd_warn("out of memory: a client was refused");
		close(fd);
		free(c);
		return;
	}
	c->state = SHND_CLIENT_HANDSHAKE;
	c->pub_seg.fd = -1;
	c->pmap_seg.fd = -1;
	shnd_list_init(&c->drings);
	c->doorbell_fd = -1;
	c->room_fd = -1;
	shnd_list_init(&c->ports);
	shnd_list_init(&c->doom_link);
	shnd_list_init(&c->sync.link);
	shnd_map_init(&c->subs);
	c->conn.fd = fd;
	c->conn.rxbuf = c->rxbuf;
	c->conn.rxcap = SHN_MSG_MAX + 1; /* one byte more: an oversized message shows */
	c->conn.on_msg = on_msg;
	c->conn.on_close = on_close;
	c->conn.on_released = on_conn_released;
	if (shnd_conn_start(b->loop, &c->conn) < 0) {
		shnd_warn("cannot start a client connection");
		close(fd);
		shnd_acl_client_fini(&c->acl);
		free(c);
		return;
	}
	shnd_client_born(c);
	c->slot = b->nclients;
	b->clients[b->nclients++] = c;
	if (foreign)
		b->foreign_refusing++;   /* undone in finish() */
	b->tot.accepted++;
	shnd_debug("client %llu connected (pid %d, uid %u)", (unsigned long long)c->id,
		   (int)c->pid, (unsigned)c->uid);
}

/* The client is gone: free what only a live client needs (ports,
 * subscriptions, socket, doorbell).  Its publish ring may stay. */
static void release_control(struct shnd_broker *b, struct shnd_client *c)
{
	struct shnd_list *pos, *tmp;

	shnd_list_for_each_safe(pos, tmp, &c->ports)
		shnd_port_free(b, shnd_list_entry(pos, struct shnd_port, by_client));
	shnd_map_fini(&c->subs);
	/* its filters are gone from the index: from the direct path's table too */
	shnd_ftab_drop_client(b, c);
	shnd_ftab_sync(b);
	if (c->doorbell.active)
		shnd_watch_del(b->loop, &c->doorbell);
	else if (c->doorbell_fd >= 0)
		close(c->doorbell_fd);
	shnd_conn_stop(b->loop, &c->conn);
}

/* The rest: the publish ring, the room eventfd, the slot. */
static void finish(struct shnd_broker *b, struct shnd_client *c)
{
	struct shnd_client *last = b->clients[--b->nclients];

	b->clients[c->slot] = last;
	last->slot = c->slot;
	if (c->refuse == -EACCES)
		b->foreign_refusing--;
	c->stall_port = NULL;
	shnd_sync_forget(b, c);
	shn_segment_close(&c->pub_seg);
	c->has_pub = false;
	/* after the drain: its last batches were skipped where they went direct */
	shnd_dring_publisher_gone(b, c);
	if (c->room_fd >= 0)
		close(c->room_fd);
	c->room_fd = -1;
	if (c->draining) {
		c->draining = false;
		shnd_client_unref(c);
	}
}

static void reap_one(struct shnd_broker *b, struct shnd_client *c, bool final)
{
	if (c->draining) {
		/* drained (or found corrupt) since it left */
		if (!final)
			shnd_router_drain_all(b, c);
		finish(b, c);
		return;
	}
	release_control(b, c);
	/* docs/design.md, rule 9: what it published before leaving still goes out */
	shnd_router_drain_all(b, c);
	if (!final && c->has_pub && !c->ring_failed && shnd_router_holds(c)) {
		/* held back by a SHN_OVERFLOW_BLOCK port, or a SYNC batch is
		 * being served: keep the ring (and the struct: one reference)
		 * until rounds have drained it */
		c->draining = true;
		c->refs++;
		if (c->stall_port != NULL)
			shnd_debug("client %llu (pid %d) gone; its ring waits for room in port %u",
				   (unsigned long long)c->id, (int)c->pid, c->stall_port->id);
		else
			shnd_debug("client %llu (pid %d) gone; its SYNC batch is still being served",
				   (unsigned long long)c->id, (int)c->pid);
		return;
	}
	finish(b, c);
}

void shnd_server_reap(struct shnd_broker *b)
{
	while (!shnd_list_empty(&b->doomed)) {
		struct shnd_client *c = shnd_list_entry(b->doomed.next, struct shnd_client,
							doom_link);

		shnd_list_del(&c->doom_link);
		reap_one(b, c, false);
	}
}

void shnd_server_drop_all(struct shnd_broker *b)
{
	while (b->nclients > 0) {
		struct shnd_client *c = b->clients[b->nclients - 1];

		shnd_client_doom(c);
		shnd_list_del(&c->doom_link);
		reap_one(b, c, true);
	}
	shnd_list_init(&b->doomed);
}
