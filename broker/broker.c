/* SPDX-License-Identifier: MIT */
/*
 * broker.c - the broker's lifetime and its main loop.
 *
 * The loop, per round: drain every publish ring (bounded per ring), route,
 * publish each touched port once and wake only sleepers; then look at the
 * control plane without blocking; and when a round found nothing, sleep by
 * the need-wakeup protocol on shn_broker_shm.sleep_seq, so publishers ring
 * a doorbell only while the broker really sleeps.  Under load no system
 * call is made per notification: io_uring completions are peeked from
 * shared memory, and with epoll the control plane is polled only every
 * POLL_EVERY busy rounds.
 */
#define _GNU_SOURCE
#include "broker.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#include "client.h"
#include "fault.h"
#include "ftab.h"
#include "index.h"
#include "log.h"
#include "systemd.h"
#include "router.h"
#include "server.h"

/* epoll: busy rounds between two looks at the control plane, and at
 * least this long between them, so epoll_wait stays far below one call
 * per hundred notifications even when each round routes one batch. */
#define POLL_EVERY 64
#define POLL_MIN_NS 100000

static void on_signal(struct shnd_watch *w)
{
	struct shnd_broker *b = shnd_container_of(w, struct shnd_broker, signal_watch);
	struct signalfd_siginfo si;

	while (read(w->fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		if (!b->stop) {
			shnd_info("received SIG%s, shutting down", sigabbrev_np((int)si.ssi_signo));
			shnd_systemd_notify("STOPPING=1\nSTATUS=shutting down");
		}
		b->stop = true;
	}
}

static void on_signal_released(struct shnd_watch *w)
{
	struct shnd_broker *b = shnd_container_of(w, struct shnd_broker, signal_watch);

	close(w->fd);
	w->fd = -1;
	b->signal_fd = -1;
}

static int setup_bshm(struct shnd_broker *b)
{
	int err = shn_segment_create(&b->bshm_seg, "shmnotify-broker", SHN_BROKER_SHM_SIZE);

	if (err)
		return (err);
	b->bshm = b->bshm_seg.addr;
	b->bshm->magic = SHN_BROKER_SHM_MAGIC;
	b->bshm->version = SHN_PROTO_VERSION;
	b->bshm->pid = (int32_t)getpid();
	atomic_store_explicit(&b->bshm->sleep_seq, 0, memory_order_relaxed);
	{
		struct timespec ts;

		clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
		b->started_ns = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
	}
	atomic_store_explicit(&b->bshm->any_key_subs, 0, memory_order_relaxed);
	err = shnd_index_attach(&b->index, b->bshm);
	if (err)
		return (err);
	/* publishers skip batches nobody listens to only where this is set */
	b->bshm->max_key_len = b->cfg.lim.max_key;
	b->bshm->max_data_len = b->cfg.lim.max_data;
	b->bshm->flags = SHN_BROKER_F_INTEREST | SHN_BROKER_F_LIMITS | SHN_BROKER_F_PREFIX;
	/* clients may only read it: the sleep word and the interest summary
	 * (index.c) have a single writer, through this mapping */
	return (shn_segment_seal_readonly(&b->bshm_seg));
}

int shnd_broker_init(struct shnd_broker *b, const struct shnd_config *cfg)
{
	sigset_t set;
	int err;

	memset(b, 0, sizeof(*b));
	b->cfg = *cfg;
	b->listen_fd = -1;
	b->signal_fd = -1;
	b->spare_fd = -1;
	b->bshm_seg.fd = -1;
	b->signal_watch.fd = -1;
	b->listen_watch.fd = -1;
	shnd_list_init(&b->doomed);
	shnd_map_init(&b->ports);
	shnd_index_init(&b->index);
	b->ftab.seg.fd = -1;
	shnd_router_init(&b->router);

	err = shnd_fault_init();
	if (err)
		return (err);
	err = shnd_loop_create(cfg->io, &b->loop);
	if (err) {
		shnd_err("cannot create the event loop: %s", strerror(-err));
		return (err);
	}
	err = setup_bshm(b);
	if (err) {
		shnd_err("cannot create the broker segment: %s", strerror(-err));
		return (err);
	}
	err = shnd_ftab_init(b);
	if (err) {
		shnd_err("cannot create the direct path's filter table (%u filters): %s; "
			 "lower [limits] direct-max-filters or run with --direct off",
			 b->cfg.lim.direct_max_filters, strerror(-err));
		return (err);
	}
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	b->signal_fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	if (b->signal_fd < 0) {
		err = -errno;
		shnd_err("signalfd: %s", strerror(errno));
		return (err);
	}
	b->signal_watch.fd = b->signal_fd;
	b->signal_watch.on_ready = on_signal;
	b->signal_watch.on_released = on_signal_released;
	err = shnd_watch_add(b->loop, &b->signal_watch);
	if (err) {
		shnd_err("cannot watch signals: %s", strerror(-err));
		return (err);
	}
	b->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	err = shnd_server_listen(b);
	if (err)
		return (err);
	shnd_info("listening on %s (io: %s%s)", b->cfg.socket_path, shnd_loop_name(b->loop),
		  b->activated ? ", socket from the service manager" : "");
	char state[512];
	snprintf(state, sizeof(state), "READY=1\nSTATUS=listening on %s (io: %s)\nMAINPID=%d",
		 b->cfg.socket_path, shnd_loop_name(b->loop), (int)getpid());
	err = shnd_systemd_notify(state);
	if (err)
		shnd_warn("cannot tell the service manager we are ready: %s", strerror(-err));
	return (0);
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts); /* vDSO: no system call */
	return ((uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec);
}

/* Low-latency mode (spin-us): before going to sleep, look for work for up
 * to spin_ns.  A publisher that rings within the window finds the broker
 * awake, which saves it a wake-up of a halted CPU (tens of microseconds on
 * a virtual machine) at the price of the CPU burnt here: at most spin_ns
 * per wake-up, so about rate x spin_ns of one CPU at low rates
 * (docs/performance.md).  The control plane is looked at only where that
 * costs no system call (io_uring); otherwise it waits for the window's
 * end, which is bounded (SHND_SPIN_US_MAX).  True when work turned up. */
static bool spin_for_work(struct shnd_broker *b, uint64_t spin_ns, bool free_poll)
{
	uint64_t end = now_ns() + spin_ns;
	unsigned i = 0;

	do {
		if (shnd_router_has_work(b))
			return (true);
		if (free_poll && (++i & 63u) == 0 && shnd_loop_poll(b->loop, 0) > 0)
			return (true);
		shn_cpu_relax();
	} while (now_ns() < end);
	return (false);
}

int shnd_broker_run(struct shnd_broker *b)
{
	uint64_t spin_ns = (uint64_t)b->cfg.spin_us * 1000u;
	_Atomic uint32_t *sleep_seq = &b->bshm->sleep_seq;
	bool free_poll = shnd_loop_poll_is_free(b->loop);
	uint64_t last_poll = 0;
	unsigned busy = 0;

	while (!b->stop) {
		bool progress = shnd_router_round(b);
		uint32_t s;
		int n;

		shnd_server_reap(b);
		if (progress && !free_poll) {
			if (++busy < POLL_EVERY)
				continue;
			uint64_t t = now_ns();

			if (t - last_poll < POLL_MIN_NS)
				continue;
			last_poll = t;
		}
		busy = 0;
		n = shnd_loop_poll(b->loop, 0);
		if (n < 0)
			return (n);
		shnd_server_reap(b);
		if (progress || n > 0 || b->router.kick)
			continue;
		if (spin_ns && spin_for_work(b, spin_ns, free_poll))
			continue;

		/* need-wakeup: odd, full fence, re-check, then block */
		s = atomic_load_explicit(sleep_seq, memory_order_relaxed);
		atomic_store_explicit(sleep_seq, s + 1, memory_order_relaxed);
		atomic_thread_fence(memory_order_seq_cst);
		if (shnd_router_has_work(b)) {
			atomic_store_explicit(sleep_seq, s + 2, memory_order_relaxed);
			continue;
		}
		n = shnd_loop_poll(b->loop, -1);
		atomic_store_explicit(sleep_seq, s + 2, memory_order_relaxed);
		if (n < 0)
			return (n);
		last_poll = now_ns();
		shnd_server_reap(b);
	}
	return (0);
}

void shnd_broker_fini(struct shnd_broker *b)
{
	int i;

	if (b->loop != NULL) {
		shnd_server_unlisten(b);
		shnd_server_drop_all(b);
		if (b->signal_watch.active) {
			shnd_watch_del(b->loop, &b->signal_watch);
		} else {
			if (b->signal_fd >= 0)
				close(b->signal_fd);
			b->signal_fd = -1;
			b->signal_watch.fd = -1;
		}
		/* let the backend finish cancelled operations and release */
		for (i = 0; i < 200 && (shnd_client_live() > 0 || b->signal_watch.fd >= 0 ||
					b->listen_watch.fd >= 0); i++)
			shnd_loop_poll(b->loop, 10);
		if (shnd_client_live() > 0)
			shnd_warn("%zu clients not released at exit", shnd_client_live());
		shnd_loop_destroy(b->loop);
		b->loop = NULL;
	} else if (b->signal_fd >= 0) {
		close(b->signal_fd);
	}
	shn_segment_close(&b->bshm_seg);
	shnd_ftab_fini(b);
	if (b->spare_fd >= 0)
		close(b->spare_fd);
	free(b->clients);
	shnd_map_fini(&b->ports);
	shnd_index_fini(&b->index);
	shnd_router_fini(&b->router);
}
