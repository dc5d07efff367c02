/* SPDX-License-Identifier: MIT */
/*
 * shmnotify-bench - shmnotify side by side with the no-broker floor and the
 * transports users would otherwise pick, in one run, as ratios.
 *
 * usage: shmnotify-bench [--quick] [--json[=FILE]] [--peers LIST] [--plot DIR]
 *                        [--runs N] [--workloads LIST] [--seconds S]
 *                        [--smoke] [--check] [--socket PATH]
 *
 * The measurements of one case alternate between the transports, run after
 * run, so that the noise of a shared machine falls on all of them alike;
 * each figure is the median of the runs.  See docs/bench.md.
 */
#include "bench.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#define MAX_RUNS 15
#define MAX_CASES 40

/* ---- transports ------------------------------------------------------------ */

struct tentry {
	const char *name;
	const struct transport *t;      /* NULL: not built */
	const char *not_built;          /* why, when t is NULL */
	bool peer;                      /* selectable with --peers */
	/* run time */
	bool on;
	void *st;
	int status;                     /* 0 running; < 0 skipped */
	char why[BENCH_WHY];
};

static struct tentry tr[] = {
	{ .name = "floor", .t = &t_floor, .not_built = NULL, .peer = false },
	{ .name = "shmnotify", .t = &t_shmnotify, .not_built = NULL, .peer = false },
	{ .name = "shmnotify-block", .t = &t_shmnotify_block, .not_built = NULL, .peer = true },
	{ .name = "shmnotify-brokered", .t = &t_shmnotify_brokered, .not_built = NULL, .peer = true },
	{ .name = "shmnotify-lowlat", .t = &t_shmnotify_lowlat, .not_built = NULL, .peer = true },
#ifdef BENCH_HAVE_ZMQ
	{ .name = "zeromq", .t = &t_zmq, .not_built = NULL, .peer = true },
#else
	{ .name = "zeromq", .t = NULL, .not_built = "not built: libzmq not found at build time (apt-get install libzmq3-dev, then rebuild)", .peer = true },
#endif
#ifdef BENCH_HAVE_REDIS
	{ .name = "redis", .t = &t_redis, .not_built = NULL, .peer = true },
#else
	{ .name = "redis", .t = NULL, .not_built = "not built: hiredis not found at build time (apt-get install libhiredis-dev redis-server, then rebuild)", .peer = true },
#endif
#ifdef BENCH_HAVE_DBUS
	{ .name = "dbus", .t = &t_dbus, .not_built = NULL, .peer = true },
#else
	{ .name = "dbus", .t = NULL, .not_built = "not built: sd-bus (libsystemd) not found at build time (apt-get install libsystemd-dev dbus-daemon, then rebuild)", .peer = true },
#endif
#ifdef BENCH_HAVE_IOX
	{ .name = "iceoryx", .t = &t_iox, .not_built = NULL, .peer = true },
#else
	{ .name = "iceoryx", .t = NULL, .not_built = "not built: the iceoryx C binding was not found at build time (apt-get install libiceoryx-binding-c-dev iceoryx, then rebuild)", .peer = true },
#endif
};
#define NT ((int)(sizeof tr / sizeof tr[0]))
enum { T_FLOOR = 0, T_SHN = 1 };

/* ---- cases and results -------------------------------------------------- */

enum metric_kind { MK_RATE, MK_LAT, MK_IDLE };

struct cell {
	int status;                     /* 0 measured; < 0 failed or skipped */
	char why[BENCH_WHY];
	int n;                          /* runs measured */
	double v[MAX_RUNS][3];          /* rate | p50 p99 p999 | cpu server, clients */
	uint64_t published, delivered, lost_rep, lost_sil;
	uint64_t expected;              /* published x subscribers: what loss is a share of */
	double *lat;                    /* samples of the last run (for the CDF) */
	unsigned lat_n;
	bool count_error;               /* delivered + lost != published */
};

struct bcase {
	char label[48];
	struct params p;
	enum metric_kind mk;
	struct cell c[16];
};

static struct bcase cases[MAX_CASES];
static int ncases;

static const char *wl_name[WL_COUNT] = { "throughput", "fanout", "fanin", "latency", "keys", "idle" };

struct opts {
	bool quick, smoke, check, json;
	const char *json_file, *plot_dir;
	const char *only;               /* --case: just the cases with this label */
	int runs;
	double seconds;
	unsigned wl_mask;
};

static char *key_table;
static char prefix_key_table[BENCH_MAX_PREFIXES * BENCH_PKEY_LEN + 1];

/* Is label one of the comma-separated labels of --case (or no --case)? */
static bool case_chosen(const char *only, const char *label)
{
	size_t n = strlen(label);

	if (only == NULL)
		return true;
	for (const char *p = only; *p != '\0';) {
		const char *end = strchr(p, ',');
		size_t len = end ? (size_t)(end - p) : strlen(p);

		if (len == n && strncmp(p, label, n) == 0)
			return true;
		p += len + (end != NULL);
	}
	return false;
}

/* The case, or NULL when the options leave it out. */
static struct bcase *add_case(enum workload wl, const char *label, unsigned npub, unsigned nsub,
			      unsigned batch, unsigned payload, unsigned nkeys, bool spin,
			      const struct opts *o)
{
	struct bcase *c;

	if (!(o->wl_mask & (1u << wl)) || ncases >= MAX_CASES || !case_chosen(o->only, label))
		return NULL;
	c = &cases[ncases++];
	snprintf(c->label, sizeof c->label, "%s", label);
	c->p = (struct params){
		.wl = wl, .npub = npub, .nsub = nsub, .batch = batch, .payload = payload,
		.nkeys = nkeys, .spin = spin, .keys = key_table,
		.seconds = o->seconds,
		.lat_iters = o->smoke ? 200 : o->quick ? 2000 : 10000,
	};
	if (wl == WL_IDLE)
		c->p.seconds = o->smoke ? 0.2 : o->quick ? 1.0 : 2.0;
	c->mk = wl == WL_LATENCY ? MK_LAT : wl == WL_IDLE ? MK_IDLE : MK_RATE;
	return c;
}

/* The keys workload with nkeys prefix filters of mixed lengths
 * (bench_filter_len) beside its exact keys: what a prefix costs per
 * notification. */
static void add_prefix_case(const char *label, unsigned nkeys, const struct opts *o)
{
	struct bcase *c = add_case(WL_KEYS, label, 1, 1, 64, 64, nkeys, false, o);

	if (c) {
		c->p.prefix = true;
		c->p.keys = prefix_key_table;
	}
}

/* Key i: "p042-" and the alphabet to 16 bytes; its filter is its first
 * 4..12 bytes, and the first 4 tell the 1,000 apart. */
static void fill_prefix_keys(void)
{
	static const char fill[] = "abcdefghijk";

	for (unsigned i = 0; i < BENCH_MAX_PREFIXES; i++) {
		char k[BENCH_PKEY_LEN + 1];

		snprintf(k, sizeof k, "p%03u-%s", i, fill);
		memcpy(prefix_key_table + (size_t)i * BENCH_PKEY_LEN, k, BENCH_PKEY_LEN);
	}
}

static void plan(const struct opts *o)
{
	if (o->smoke) {  /* every workload once, briefly: a test of the counts */
		add_case(WL_THROUGHPUT, "64B batch 64", 1, 1, 64, 64, 1, false, o);
		add_case(WL_THROUGHPUT, "4KiB batch 1", 1, 1, 1, 4096, 1, false, o);
		add_case(WL_FANOUT, "1->4", 1, 4, 64, 64, 1, false, o);
		add_case(WL_FANIN, "4->1", 4, 1, 64, 64, 1, false, o);
		add_case(WL_LATENCY, "blocking", 1, 1, 1, 64, 1, false, o);
		add_case(WL_LATENCY, "spin", 1, 1, 1, 64, 1, true, o);
		add_case(WL_KEYS, "1000 keys", 1, 1, 64, 64, 1000, false, o);
		add_case(WL_IDLE, "2 clients", 1, 1, 64, 64, 1, false, o);
		return;
	}
	add_case(WL_THROUGHPUT, "64B batch 1", 1, 1, 1, 64, 1, false, o);
	add_case(WL_THROUGHPUT, "64B batch 16", 1, 1, 16, 64, 1, false, o);
	add_case(WL_THROUGHPUT, "64B batch 64", 1, 1, 64, 64, 1, false, o);
	add_case(WL_THROUGHPUT, "64B batch 256", 1, 1, 256, 64, 1, false, o);
	add_case(WL_THROUGHPUT, "16B batch 64", 1, 1, 64, 16, 1, false, o);
	add_case(WL_THROUGHPUT, "256B batch 64", 1, 1, 64, 256, 1, false, o);
	add_case(WL_THROUGHPUT, "1KiB batch 64", 1, 1, 64, 1024, 1, false, o);
	add_case(WL_THROUGHPUT, "4KiB batch 64", 1, 1, 64, 4096, 1, false, o);
	add_case(WL_FANOUT, "1->2", 1, 2, 64, 64, 1, false, o);
	add_case(WL_FANOUT, "1->4", 1, 4, 64, 64, 1, false, o);
	add_case(WL_FANOUT, "1->8", 1, 8, 64, 64, 1, false, o);
	add_case(WL_FANOUT, "1->32", 1, 32, 64, 64, 1, false, o);
	add_case(WL_FANIN, "4->1", 4, 1, 64, 64, 1, false, o);
	add_case(WL_LATENCY, "blocking", 1, 1, 1, 64, 1, false, o);
	add_case(WL_LATENCY, "spin", 1, 1, 1, 64, 1, true, o);
	add_case(WL_KEYS, "1 key", 1, 1, 64, 64, 1, false, o);
	add_case(WL_KEYS, "1000 keys", 1, 1, 64, 64, 1000, false, o);
	add_prefix_case("1000 prefixes", BENCH_MAX_PREFIXES, o);
	add_case(WL_KEYS, "1000000 keys", 1, 1, 64, 64, 1000000, false, o);
	add_case(WL_IDLE, "2 clients", 1, 1, 64, 64, 1, false, o);
}

/* ---- measuring ---------------------------------------------------------------- */

static int progress_total, progress_done;

static void progress(const struct bcase *c, const struct tentry *t, int run, int runs, const char *tail)
{
	bool tty = isatty(2);

	fprintf(stderr, "%s[%3d/%3d] %-10s %-14s %-18s run %d/%d %s%s", tty ? "\r\033[K" : "",
		progress_done, progress_total, wl_name[c->p.wl], c->label, t->name, run, runs,
		tail ? tail : "", tty ? "" : "\n");
	fflush(stderr);
}

static void measure_cell(struct bcase *c, int ti, int run, int runs)
{
	struct tentry *t = &tr[ti];
	struct cell *cell = &c->c[ti];
	struct measure m;
	char tail[160] = "";
	uint64_t expect;

	progress(c, t, run + 1, runs, "...");
	bench_measure(t->t, t->st, &c->p, &m);
	progress_done++;
	if (m.status < 0) {
		cell->status = m.status;
		snprintf(cell->why, sizeof cell->why, "failed: %.240s", m.why);
		snprintf(tail, sizeof tail, "failed: %.140s", m.why);
		progress(c, t, run + 1, runs, tail);
		if (isatty(2))
			fprintf(stderr, "\n");   /* keep failures on screen */
		free(m.lat_samples);
		return;
	}
	if (cell->n < MAX_RUNS) {
		double *v = cell->v[cell->n++];

		switch (c->mk) {
		case MK_RATE: v[0] = m.rate; break;
		case MK_LAT: v[0] = m.p50; v[1] = m.p99; v[2] = m.p999; break;
		case MK_IDLE: v[0] = m.cpu_server; v[1] = m.cpu_clients; break;
		}
	}
	cell->published += m.published;
	cell->delivered += m.delivered;
	cell->lost_rep += m.lost_reported;
	cell->lost_sil += m.lost_silent;
	expect = c->mk == MK_LAT ? m.published : m.published * c->p.nsub;
	cell->expected += expect;
	if (m.delivered + m.lost_reported + m.lost_silent != expect)
		cell->count_error = true;
	if (m.lat_samples) {
		free(cell->lat);
		cell->lat = m.lat_samples;
		cell->lat_n = m.lat_n;
	}
	if (c->mk == MK_RATE)
		snprintf(tail, sizeof tail, "%.2f M/s, lost %llu, server %.0f ns/msg", m.rate / 1e6,
			 (unsigned long long)(m.lost_reported + m.lost_silent), m.server_ns_per_msg);
	else if (c->mk == MK_LAT)
		snprintf(tail, sizeof tail, "p50 %.1f us p99 %.1f us", m.p50, m.p99);
	else
		snprintf(tail, sizeof tail, "server %.2f%% clients %.2f%%", m.cpu_server, m.cpu_clients);
	progress(c, t, run + 1, runs, tail);
}

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static double median(const struct cell *cell, int k)
{
	double v[MAX_RUNS];

	if (cell->n == 0)
		return NAN;
	for (int i = 0; i < cell->n; i++)
		v[i] = cell->v[i][k];
	qsort(v, (size_t)cell->n, sizeof v[0], cmp_d);
	return (cell->n & 1) ? v[cell->n / 2] : (v[cell->n / 2 - 1] + v[cell->n / 2]) / 2;
}

static int nmetrics(enum metric_kind mk)
{
	return mk == MK_RATE ? 1 : mk == MK_LAT ? 3 : 2;
}

static const char *metric_name(enum metric_kind mk, int k)
{
	static const char *lat[] = { "one-way p50", "one-way p99", "one-way p99.9" };
	static const char *idle[] = { "CPU broker/servers", "CPU clients" };

	return mk == MK_RATE ? "delivered/s" : mk == MK_LAT ? lat[k] : idle[k];
}

static const char *metric_unit(enum metric_kind mk)
{
	return mk == MK_RATE ? "msgs/s" : mk == MK_LAT ? "us" : "% of one CPU";
}

static void fmt_value(char *buf, size_t len, enum metric_kind mk, double v)
{
	if (isnan(v))
		snprintf(buf, len, "-");
	else if (mk == MK_RATE)
		snprintf(buf, len, v >= 1e6 ? "%.2f M/s" : "%.3f M/s", v / 1e6);
	else if (mk == MK_LAT)
		snprintf(buf, len, "%.1f us", v);
	else
		snprintf(buf, len, "%.2f %%", v);
}

static void fmt_ratio(char *buf, size_t len, double v, double base)
{
	if (isnan(v) || isnan(base) || base == 0)
		snprintf(buf, len, "-");
	else
		snprintf(buf, len, "%.2fx", v / base);
}

static const char *lost_str(const struct cell *cell, char *buf, size_t len)
{
	uint64_t lost = cell->lost_rep + cell->lost_sil;

	if (cell->n == 0)
		return "";
	if (lost == 0)
		return "0";
	/* a share of what the subscribers together should have received */
	snprintf(buf, len, "%.2f%%%s", cell->expected ? 100.0 * (double)lost / (double)cell->expected : 0.0,
		 cell->lost_sil && !cell->lost_rep ? " silent" : "");
	return buf;
}

/* ---- output ------------------------------------------------------------------- */

static void machine(char *buf, size_t len)
{
	struct utsname u;
	char model[256] = "unknown CPU";
	FILE *f = fopen("/proc/cpuinfo", "r");
	char line[512];

	if (f) {
		while (fgets(line, sizeof line, f))
			if (!strncmp(line, "model name", 10)) {
				char *p = strchr(line, ':');

				if (p) {
					snprintf(model, sizeof model, "%s", p + 2);
					model[strcspn(model, "\n")] = 0;
				}
				break;
			}
		fclose(f);
	}
	uname(&u);
	snprintf(buf, len, "%ld CPUs (%s), Linux %s", sysconf(_SC_NPROCESSORS_ONLN), model, u.release);
}

static void print_table(FILE *f, const struct opts *o)
{
	char mach[512];

	machine(mach, sizeof mach);
	fprintf(f, "\nshmnotify-bench: %s; medians of %d run%s; %.2f s per measurement\n", mach,
		o->runs, o->runs > 1 ? "s" : "", o->seconds);
	if (bench_shn_socket)
		fprintf(f, "shmnotify: the broker running on %s, as it is configured\n",
			bench_shn_socket);
	else if (bench_shn_broker)
		fprintf(f, "shmnotify: private brokers, %s\n", bench_shn_broker);
	fprintf(f, "ratios: the figure divided by shmnotify's and by the floor's for the same case "
		   "(rates: higher is better; latency and CPU: lower is better)\n\n");
	fprintf(f, "%-10s %-14s %-18s %-18s %-14s %-10s %9s %9s\n", "workload", "case", "metric",
		"transport", "value", "lost", "/shmnfy", "/floor");
	for (int ci = 0; ci < ncases; ci++) {
		struct bcase *c = &cases[ci];

		for (int k = 0; k < nmetrics(c->mk); k++) {
			double vs = median(&c->c[T_SHN], k), vf = median(&c->c[T_FLOOR], k);

			for (int ti = 0; ti < NT; ti++) {
				struct cell *cell = &c->c[ti];
				char val[32], rs[16], rf[16], lost[32];
				double v;

				if (!tr[ti].on)
					continue;
				if (cell->status < 0 && cell->n == 0) {
					fprintf(f, "%-10s %-14s %-18s %-18s %s\n", wl_name[c->p.wl], c->label,
						metric_name(c->mk, k), tr[ti].name,
						cell->why[0] ? cell->why : "skipped");
					continue;
				}
				v = median(cell, k);
				fmt_value(val, sizeof val, c->mk, v);
				fmt_ratio(rs, sizeof rs, v, vs);
				fmt_ratio(rf, sizeof rf, v, vf);
				fprintf(f, "%-10s %-14s %-18s %-18s %-14s %-10s %9s %9s%s\n",
					wl_name[c->p.wl], c->label, metric_name(c->mk, k), tr[ti].name, val,
					c->mk == MK_RATE ? lost_str(cell, lost, sizeof lost) : "",
					rs, rf, cell->count_error ? "  COUNT MISMATCH" : "");
			}
		}
	}
	fprintf(f, "\nloss policies (loss is counted: reported by the transport, or published - delivered "
		   "after %s quiet, marked \"silent\"):\n", "0.6 s");
	for (int ti = 0; ti < NT; ti++) {
		if (!tr[ti].on)
			continue;
		if (tr[ti].status < 0)
			fprintf(f, "  %-18s skipped: %s\n", tr[ti].name, tr[ti].why);
		else
			fprintf(f, "  %-18s %s\n", tr[ti].name, tr[ti].t->loss_policy);
	}
	fprintf(f, "fan-out:\n");
	for (int ti = 0; ti < NT; ti++)
		if (tr[ti].on && tr[ti].status == 0 && tr[ti].t->fanout_note)
			fprintf(f, "  %-18s %s\n", tr[ti].name, tr[ti].t->fanout_note);
}

static void json_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			fprintf(f, "\\%c", *s);
		else if ((unsigned char)*s < 0x20)
			fprintf(f, "\\u%04x", *s);
		else
			fputc(*s, f);
	}
	fputc('"', f);
}

static void json_num(FILE *f, double v)
{
	if (isnan(v) || isinf(v))
		fprintf(f, "null");
	else
		fprintf(f, "%.6g", v);
}

static void print_json(FILE *f, const struct opts *o)
{
	char mach[512];
	bool first = true;

	machine(mach, sizeof mach);
	fprintf(f, "{\n  \"machine\": ");
	json_str(f, mach);
	fprintf(f, ",\n  \"runs\": %d, \"seconds\": %g, \"quick\": %s,\n  \"socket\": ",
		o->runs, o->seconds, o->quick ? "true" : "false");
	if (bench_shn_socket)
		json_str(f, bench_shn_socket);
	else
		fprintf(f, "null");
	fprintf(f, ",\n  \"transports\": [\n");
	for (int ti = 0, n = 0; ti < NT; ti++) {
		if (!tr[ti].on)
			continue;
		fprintf(f, "%s    {\"name\": ", n++ ? ",\n" : "");
		json_str(f, tr[ti].name);
		fprintf(f, ", \"status\": \"%s\", ", tr[ti].status < 0 ? "skipped" : "ok");
		if (tr[ti].status < 0) {
			fprintf(f, "\"why\": ");
			json_str(f, tr[ti].why);
		} else {
			fprintf(f, "\"loss_policy\": ");
			json_str(f, tr[ti].t->loss_policy);
			if (tr[ti].t->fanout_note) {
				fprintf(f, ", \"fanout\": ");
				json_str(f, tr[ti].t->fanout_note);
			}
		}
		fprintf(f, "}");
	}
	fprintf(f, "\n  ],\n  \"results\": [\n");
	for (int ci = 0; ci < ncases; ci++) {
		struct bcase *c = &cases[ci];

		for (int k = 0; k < nmetrics(c->mk); k++) {
			double vs = median(&c->c[T_SHN], k), vf = median(&c->c[T_FLOOR], k);

			for (int ti = 0; ti < NT; ti++) {
				struct cell *cell = &c->c[ti];
				double v = median(cell, k);

				if (!tr[ti].on)
					continue;
				fprintf(f, "%s    {\"workload\": \"%s\", \"case\": ", first ? "" : ",\n",
					wl_name[c->p.wl]);
				first = false;
				json_str(f, c->label);
				fprintf(f, ", \"transport\": ");
				json_str(f, tr[ti].name);
				fprintf(f, ", \"metric\": ");
				json_str(f, metric_name(c->mk, k));
				fprintf(f, ", \"unit\": ");
				json_str(f, metric_unit(c->mk));
				fprintf(f, ", \"better\": \"%s\"", c->mk == MK_RATE ? "higher" : "lower");
				fprintf(f, ", \"npub\": %u, \"nsub\": %u, \"batch\": %u, \"payload\": %u, \"keys\": %u"
					", \"prefix\": %s",
					c->p.npub, c->p.nsub, c->p.batch, c->p.payload, c->p.nkeys,
					c->p.prefix ? "true" : "false");
				if (cell->n == 0) {
					/* not run (not installed, or a case this
					 * transport does not take) or run and failed */
					bool skipped = tr[ti].status < 0 || cell->status == -ENOTSUP;
					fprintf(f, ", \"status\": \"%s\", \"why\": ",
						skipped ? "skipped" : "failed");
					json_str(f, cell->why);
					fprintf(f, "}");
					continue;
				}
				fprintf(f, ", \"status\": \"ok\", \"median\": ");
				json_num(f, v);
				fprintf(f, ", \"runs\": [");
				for (int r = 0; r < cell->n; r++) {
					fprintf(f, "%s", r ? ", " : "");
					json_num(f, cell->v[r][k]);
				}
				fprintf(f, "], \"ratio_shmnotify\": ");
				json_num(f, v / vs);
				fprintf(f, ", \"ratio_floor\": ");
				json_num(f, v / vf);
				fprintf(f, ", \"published\": %llu, \"delivered\": %llu, \"lost_reported\": %llu, "
					"\"lost_silent\": %llu, \"expected\": %llu, \"count_ok\": %s",
					(unsigned long long)cell->published, (unsigned long long)cell->delivered,
					(unsigned long long)cell->lost_rep, (unsigned long long)cell->lost_sil,
					(unsigned long long)cell->expected, cell->count_error ? "false" : "true");
				if (cell->status < 0) {
					fprintf(f, ", \"failures\": ");
					json_str(f, cell->why);
				}
				fprintf(f, "}");
			}
		}
	}
	fprintf(f, "\n  ]\n}\n");
}

/* ---- plots (gnuplot) ---------------------------------------------------------- */

/* One data file per chart: x, then one column per transport that ran. */
static bool write_series(const char *dir, const char *file, enum workload wl, bool by_batch,
			 FILE *gp, const char *title, const char *xlabel, bool logx)
{
	char path[4096];
	FILE *f;
	int col = 2, nser = 0;

	snprintf(path, sizeof path, "%s/%s.dat", dir, file);
	f = fopen(path, "w");
	if (!f)
		return false;
	fprintf(f, "# x");
	for (int ti = 0; ti < NT; ti++)
		if (tr[ti].on && tr[ti].status == 0)
			fprintf(f, " %s", tr[ti].name);
	fprintf(f, "\n");
	for (int ci = 0; ci < ncases; ci++) {
		struct bcase *c = &cases[ci];
		unsigned x;

		if (c->p.wl != wl)
			continue;
		if (wl == WL_THROUGHPUT && by_batch != (c->p.payload == 64))
			continue;
		if (wl == WL_THROUGHPUT && !by_batch && c->p.batch != 64)
			continue;
		x = wl == WL_FANOUT ? c->p.nsub : by_batch ? c->p.batch : c->p.payload;
		fprintf(f, "%u", x);
		for (int ti = 0; ti < NT; ti++)
			if (tr[ti].on && tr[ti].status == 0) {
				double v = median(&c->c[ti], 0);

				if (isnan(v))
					fprintf(f, " NaN");
				else
					fprintf(f, " %.6g", v / 1e6);
			}
		fprintf(f, "\n");
		nser++;
	}
	fclose(f);
	if (!nser)
		return false;
	fprintf(gp, "set output '%s/%s.png'\nset title '%s'\nset xlabel '%s'\n"
		    "set ylabel 'M msgs/s (delivered, aggregate)'\nset logscale y\n%s\nplot ",
		dir, file, title, xlabel, logx ? "set logscale x 2" : "unset logscale x");
	for (int ti = 0; ti < NT; ti++)
		if (tr[ti].on && tr[ti].status == 0)
			fprintf(gp, "%s'%s' using 1:%d with linespoints title '%s'", col > 2 ? ", " : "",
				path, col, tr[ti].name), col++;
	fprintf(gp, "\n");
	return true;
}

static void plots(const char *dir)
{
	const char *gnuplot = bench_which("gnuplot");
	char path[4096];
	FILE *gp;
	int ncdf = 0;

	if (!gnuplot) {
		fprintf(stderr, "shmnotify-bench: --plot: skipped: gnuplot not installed (apt-get install gnuplot-nox)\n");
		return;
	}
	mkdir(dir, 0755);
	snprintf(path, sizeof path, "%s/plots.gp", dir);
	gp = fopen(path, "w");
	if (!gp) {
		fprintf(stderr, "shmnotify-bench: --plot: cannot write %s: %s\n", path, strerror(errno));
		return;
	}
	fprintf(gp, "set terminal pngcairo size 900,560 noenhanced\nset key outside right\nset grid\n");
	write_series(dir, "throughput_batch", WL_THROUGHPUT, true, gp,
		     "1 -> 1 throughput vs batch (64 B)", "notifications per batch", true);
	write_series(dir, "throughput_payload", WL_THROUGHPUT, false, gp,
		     "1 -> 1 throughput vs payload (batch 64)", "payload bytes", true);
	write_series(dir, "fanout", WL_FANOUT, false, gp, "fan-out: aggregate delivered (64 B, batch 64)",
		     "subscriber processes", true);
	/* latency CDF: blocking case */
	for (int ci = 0; ci < ncases; ci++) {
		struct bcase *c = &cases[ci];

		if (c->p.wl != WL_LATENCY || c->p.spin)
			continue;
		for (int ti = 0; ti < NT; ti++) {
			struct cell *cell = &c->c[ti];
			FILE *f;

			if (!tr[ti].on || !cell->lat_n)
				continue;
			snprintf(path, sizeof path, "%s/latency_%s.dat", dir, tr[ti].name);
			f = fopen(path, "w");
			if (!f)
				continue;
			for (unsigned i = 0; i < cell->lat_n; i++)
				fprintf(f, "%.3f %.6f\n", cell->lat[i], (double)(i + 1) / cell->lat_n);
			fclose(f);
			if (!ncdf++)
				fprintf(gp, "set output '%s/latency_cdf.png'\nset title 'one-way latency, "
					    "blocking waits (RTT/2), 64 B'\nset xlabel 'microseconds'\n"
					    "set ylabel 'fraction'\nunset logscale y\nset logscale x 10\n"
					    "set yrange [0:1]\nplot ", dir);
			fprintf(gp, "%s'%s' using 1:2 with lines title '%s'", ncdf > 1 ? ", " : "", path,
				tr[ti].name);
		}
	}
	if (ncdf)
		fprintf(gp, "\n");
	fclose(gp);
	{
		char cmd[8192];
		int rc;

		snprintf(cmd, sizeof cmd, "'%s' '%s/plots.gp'", gnuplot, dir);
		rc = system(cmd);
		if (rc != 0)
			fprintf(stderr, "shmnotify-bench: --plot: gnuplot failed (status %d)\n", rc);
		else
			fprintf(stderr, "shmnotify-bench: charts written to %s/*.png\n", dir);
	}
}

/* ---- main ------------------------------------------------------------------------ */

static void usage(FILE *f)
{
	fprintf(f,
		"usage: shmnotify-bench [--quick] [--json[=FILE]] [--peers LIST] [--plot DIR]\n"
		"                       [--runs N] [--workloads LIST] [--seconds S] [--case LABELS]\n"
		"                       [--smoke] [--check] [--socket PATH] | --help | --version\n"
		"  --quick           about one minute: short measurements, one run\n"
		"  --json[=FILE]     results as JSON on stdout (or into FILE, with the table on stdout)\n"
		"  --peers LIST      comma-separated: shmnotify-block,shmnotify-brokered,shmnotify-lowlat,\n"
		"                    zeromq,redis,dbus,iceoryx, 'all' (default)\n"
		"                    or 'none'; the floor and shmnotify always run\n"
		"  --plot DIR        PNG charts through gnuplot\n"
		"  --runs N          runs per figure, the median is reported (default 3; --quick 1)\n"
		"  --workloads LIST  throughput,fanout,fanin,latency,keys,idle (default all)\n"
		"  --seconds S       publishing time of one measurement (default 1; --quick 0.15)\n"
		"  --case LABELS     only the cases so labelled, comma-separated (e.g. \"1000000 keys\",\n"
		"                    \"1000 keys,1000 prefixes\", \"64B batch 64\")\n"
		"  --smoke           one brief case per workload (the test suite's run)\n"
		"  --check           exit 1 when a floor or shmnotify count does not add up\n"
		"  --socket PATH     measure the shmnotifyd already running on PATH, as it is\n"
		"                    configured, instead of a private one (left running)\n"
		"  -h, --help        show this help\n"
		"  -V, --version     show the version\n");
}

static int parse_list(const char *s, bool workloads, struct opts *o)
{
	char *dup = strdup(s), *save = NULL;

	if (!dup)
		return -1;
	if (workloads)
		o->wl_mask = 0;
	else
		for (int ti = 0; ti < NT; ti++)
			tr[ti].on = !tr[ti].peer;
	for (char *tok = strtok_r(dup, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		bool found = false;

		if (workloads) {
			for (int w = 0; w < WL_COUNT; w++)
				if (!strcmp(tok, wl_name[w])) {
					o->wl_mask |= 1u << w;
					found = true;
				}
			if (!strcmp(tok, "all")) {
				o->wl_mask = (1u << WL_COUNT) - 1;
				found = true;
			}
		} else {
			for (int ti = 0; ti < NT; ti++)
				if (!strcmp(tok, tr[ti].name) || !strcmp(tok, "all") ||
				    (!strcmp(tok, "zmq") && !strcmp(tr[ti].name, "zeromq"))) {
					tr[ti].on = true;
					found = true;
				}
			if (!strcmp(tok, "none"))
				found = true;
		}
		if (!found) {
			fprintf(stderr, "shmnotify-bench: unknown %s '%s'\n", workloads ? "workload" : "peer", tok);
			free(dup);
			return -1;
		}
	}
	free(dup);
	return 0;
}

static volatile sig_atomic_t interrupted;

static void on_signal(int sig)
{
	(void)sig;
	interrupted = 1;
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "quick", no_argument, NULL, 'q' },
		{ "json", optional_argument, NULL, 'j' },
		{ "peers", required_argument, NULL, 'p' },
		{ "plot", required_argument, NULL, 'P' },
		{ "runs", required_argument, NULL, 'r' },
		{ "workloads", required_argument, NULL, 'w' },
		{ "seconds", required_argument, NULL, 's' },
		{ "smoke", no_argument, NULL, 'S' },
		{ "check", no_argument, NULL, 'c' },
		{ "case", required_argument, NULL, 'C' },
		{ "socket", required_argument, NULL, 'k' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	struct opts o = { .runs = 0, .seconds = 0, .wl_mask = (1u << WL_COUNT) - 1 };
	int c, rc = 0;

	for (int ti = 0; ti < NT; ti++)
		tr[ti].on = true;
	while ((c = getopt_long(argc, argv, "hV", lo, NULL)) != -1) {
		switch (c) {
		case 'q': o.quick = true; break;
		case 'j': o.json = true; o.json_file = optarg; break;
		case 'p': if (parse_list(optarg, false, &o)) return 2; break;
		case 'P': o.plot_dir = optarg; break;
		case 'r':
			o.runs = atoi(optarg);
			if (o.runs < 1 || o.runs > MAX_RUNS) {
				fprintf(stderr, "shmnotify-bench: --runs takes 1..%d\n", MAX_RUNS);
				return 2;
			}
			break;
		case 'w': if (parse_list(optarg, true, &o)) return 2; break;
		case 's':
			o.seconds = atof(optarg);
			if (!(o.seconds >= 0.01 && o.seconds <= 600)) {
				fprintf(stderr, "shmnotify-bench: --seconds takes 0.01..600\n");
				return 2;
			}
			break;
		case 'S': o.smoke = true; break;
		case 'c': o.check = true; break;
		case 'C': o.only = optarg; break;
		case 'k':
			if (!*optarg) {
				fprintf(stderr, "shmnotify-bench: --socket needs the path of a running "
					"broker's socket\n");
				return 2;
			}
			bench_shn_socket = optarg;
			break;
		case 'h': usage(stdout); return 0;
		case 'V': printf("shmnotify-bench %s\n", SHN_VERSION_STRING); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 2;
	}
	if (!o.runs)
		o.runs = (o.quick || o.smoke) ? 1 : 3;
	if (o.seconds == 0)
		o.seconds = o.smoke ? 0.05 : o.quick ? 0.15 : 1.0;

	signal(SIGPIPE, SIG_IGN);
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);

	key_table = malloc((size_t)1000000 * BENCH_KEY_LEN + 1);
	if (!key_table)
		return 1;
	for (unsigned i = 0; i < 1000000; i++) {
		char k[BENCH_KEY_LEN + 1];

		snprintf(k, sizeof k, "k%07u", i);
		memcpy(key_table + (size_t)i * BENCH_KEY_LEN, k, BENCH_KEY_LEN);
	}
	fill_prefix_keys();
	plan(&o);

	/* start every transport's private servers once */
	for (int ti = 0; ti < NT; ti++) {
		struct tentry *t = &tr[ti];

		if (!t->on)
			continue;
		if (!t->t) {
			t->status = -ENOTSUP;
			snprintf(t->why, sizeof t->why, "%s", t->not_built);
		} else {
			fprintf(stderr, "%sshmnotify-bench: starting %s...", isatty(2) ? "\r\033[K" : "", t->name);
			t->status = t->t->start(&t->st, t->why, sizeof t->why);
			if (t->status < 0 && !t->why[0])
				snprintf(t->why, sizeof t->why, "cannot start: %s", strerror(-t->status));
			fprintf(stderr, "%s", isatty(2) ? "" : "\n");
		}
		if (t->status < 0) {
			fprintf(stderr, "%sshmnotify-bench: %s skipped: %s\n", isatty(2) ? "\r\033[K" : "",
				t->name, t->why);
			if (ti == T_FLOOR || ti == T_SHN)
				rc = 1;
		}
	}
	/* skipped cells, and the number of measurements */
	for (int ci = 0; ci < ncases; ci++)
		for (int ti = 0; ti < NT; ti++) {
			struct cell *cell = &cases[ci].c[ti];

			if (!tr[ti].on)
				continue;
			if (tr[ti].status < 0) {
				cell->status = tr[ti].status;
				snprintf(cell->why, sizeof cell->why, "skipped: %s", tr[ti].why);
				continue;
			}
			if (tr[ti].t->supports) {
				char why[BENCH_WHY] = "";

				if (tr[ti].t->supports(tr[ti].st, &cases[ci].p, why, sizeof why) < 0) {
					cell->status = -ENOTSUP;
					snprintf(cell->why, sizeof cell->why, "skipped: %s", why);
					continue;
				}
			}
			progress_total += o.runs;
		}

	for (int ci = 0; ci < ncases && !interrupted; ci++)
		for (int run = 0; run < o.runs && !interrupted; run++)
			for (int ti = 0; ti < NT && !interrupted; ti++) {
				struct cell *cell = &cases[ci].c[ti];

				if (!tr[ti].on || tr[ti].status < 0 || (cell->status == -ENOTSUP))
					continue;
				measure_cell(&cases[ci], ti, run, o.runs);
			}
	if (isatty(2))
		fprintf(stderr, "\r\033[K");

	for (int ti = 0; ti < NT; ti++)
		if (tr[ti].on && tr[ti].status == 0)
			tr[ti].t->stop(tr[ti].st);

	if (o.json && !o.json_file) {
		print_json(stdout, &o);
	} else {
		print_table(stdout, &o);
		if (o.json_file) {
			FILE *f = fopen(o.json_file, "w");

			if (!f) {
				fprintf(stderr, "shmnotify-bench: cannot write %s: %s\n", o.json_file, strerror(errno));
				rc = 1;
			} else {
				print_json(f, &o);
				fclose(f);
			}
		}
	}
	if (o.plot_dir)
		plots(o.plot_dir);
	if (o.check) {
		for (int ci = 0; ci < ncases; ci++)
			for (int ti = 0; ti < NT; ti++) {
				struct cell *cell = &cases[ci].c[ti];

				/* the peers' loss is theirs to have; ours must add up */
				if (!tr[ti].on || (strcmp(tr[ti].name, "floor") &&
						   strncmp(tr[ti].name, "shmnotify", 9)))
					continue;
				if (cell->status == -ENOTSUP && tr[ti].status == 0)
					continue;   /* a case this transport does not run */
				/* a variant that cannot run here (--socket: it needs a
				 * broker of its own); shmnotify itself must run */
				if (tr[ti].status == -ENOTSUP && ti != T_SHN && ti != T_FLOOR)
					continue;
				/* SHN_OVERFLOW_BLOCK is lossless: a reported loss is a bug too */
				bool lossy = !strcmp(tr[ti].name, "shmnotify-block") && cell->lost_rep > 0;

				if (cell->status < 0 || cell->count_error || cell->lost_sil || cell->n == 0 ||
				    lossy) {
					fprintf(stderr, "shmnotify-bench: check failed: %s %s %s: %s%s%s%s\n",
						wl_name[cases[ci].p.wl], cases[ci].label, tr[ti].name,
						cell->why[0] ? cell->why : "", cell->count_error ? " delivered + lost != published" : "",
						cell->lost_sil ? " messages missing without a loss report" : "",
						lossy ? " notifications lost under SHN_OVERFLOW_BLOCK" : "");
					rc = 1;
				}
			}
		if (rc == 0)
			fprintf(stderr, "shmnotify-bench: check: every count adds up (delivered + lost == published)\n");
	}
	if (interrupted)
		rc = 130;
	return rc;
}
