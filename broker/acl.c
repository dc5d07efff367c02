/* SPDX-License-Identifier: MIT */
/*
 * acl.c - access rules per key prefix, and the broker's per-record policy
 * checks (size limits, publish permission).  See acl.h, docs/config.md.
 */
#define _GNU_SOURCE
#include "acl.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "broker.h"
#include "log.h"
#include "util/prefix.h"

/* ---- parsing ------------------------------------------------------------ */

static bool parse_id(const char *s, uint32_t *out)
{
	char *end;
	unsigned long v;

	if (*s < '0' || *s > '9')
		return (false);
	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || *end != '\0' || v >= UINT32_MAX)
		return (false);
	*out = (uint32_t)v;
	return (true);
}

static int parse_one(char *tok, struct shnd_who *w, char *err, size_t errlen)
{
	char *colon = strchr(tok, ':');
	const char *what = tok, *arg;

	if (strcmp(tok, "*") == 0) {
		w->kind = SHND_WHO_ANY;
		w->id = 0;
		return (0);
	}
	if (colon == NULL)
		goto bad;
	*colon = '\0';
	arg = colon + 1;
	if (strcmp(what, "uid") == 0 || strcmp(what, "gid") == 0) {
		w->kind = what[0] == 'u' ? SHND_WHO_UID : SHND_WHO_GID;
		if (!parse_id(arg, &w->id)) {
			snprintf(err, errlen, "'%s:%s': expected a number after '%s:'", what, arg, what);
			return (-EINVAL);
		}
		return (0);
	}
	if (strcmp(what, "user") == 0) {
		struct passwd *pw = getpwnam(arg);

		if (pw == NULL) {
			snprintf(err, errlen, "'user:%s': no such user (write uid:N for a numeric uid)",
				 arg);
			return (-EINVAL);
		}
		w->kind = SHND_WHO_UID;
		w->id = (uint32_t)pw->pw_uid;
		return (0);
	}
	if (strcmp(what, "group") == 0) {
		struct group *gr = getgrnam(arg);

		if (gr == NULL) {
			snprintf(err, errlen, "'group:%s': no such group (write gid:N for a numeric gid)",
				 arg);
			return (-EINVAL);
		}
		w->kind = SHND_WHO_GID;
		w->id = (uint32_t)gr->gr_gid;
		return (0);
	}
	*colon = ':';
bad:
	snprintf(err, errlen, "'%s': expected uid:N, gid:N, user:NAME, group:NAME or *", tok);
	return (-EINVAL);
}

int shnd_acl_parse_who(const char *value, struct shnd_who_list *out, char *err, size_t errlen)
{
	char *copy = strdup(value), *save = NULL, *tok;
	struct shnd_who *v = NULL;
	uint32_t n = 0;
	int rc = 0;

	if (copy == NULL) {
		snprintf(err, errlen, "out of memory");
		return (-ENOMEM);
	}
	for (tok = strtok_r(copy, ",", &save); tok != NULL; tok = strtok_r(NULL, ",", &save)) {
		char *e;
		struct shnd_who *nv;

		while (*tok == ' ' || *tok == '\t')
			tok++;
		e = tok + strlen(tok);
		while (e > tok && (e[-1] == ' ' || e[-1] == '\t'))
			*--e = '\0';
		if (*tok == '\0') {
			snprintf(err, errlen, "an empty entry in the list (two commas?)");
			rc = -EINVAL;
			break;
		}
		nv = realloc(v, (n + 1) * sizeof(*v));
		if (nv == NULL) {
			snprintf(err, errlen, "out of memory");
			rc = -ENOMEM;
			break;
		}
		v = nv;
		rc = parse_one(tok, &v[n], err, errlen);
		if (rc)
			break;
		n++;
	}
	free(copy);
	if (rc) {
		free(v);
		return (rc);
	}
	free(out->v);
	out->v = v;
	out->n = n;
	return (0);
}

void shnd_acl_quote(const uint8_t *p, size_t len, char *out, size_t outlen)
{
	shu_prefix_quote(p, len, out, outlen);
}

/* ---- lookup ------------------------------------------------------------- */

static int by_len_desc(const void *x, const void *y)
{
	const struct shnd_acl_rule *a = x, *b = y;

	if (a->len != b->len)
		return (a->len < b->len ? 1 : -1);
	return (memcmp(a->prefix, b->prefix, a->len));
}

void shnd_acl_sort(struct shnd_acl *a)
{
	if (a->n > 1)
		qsort(a->rules, a->n, sizeof(*a->rules), by_len_desc);
}

int shnd_acl_find(const struct shnd_acl *a, const void *key, size_t len)
{
	uint32_t i;

	/* longest first: the first prefix that matches is the longest */
	for (i = 0; i < a->n; i++) {
		const struct shnd_acl_rule *r = &a->rules[i];

		if (r->len <= len && memcmp(r->prefix, key, r->len) == 0)
			return ((int)i);
	}
	return (-1);
}

bool shnd_acl_may_subscribe(const struct shnd_acl *a, const struct shnd_acl_client *ac,
			    const void *key, size_t len, bool prefix, int *rule)
{
	uint32_t i;
	int r;

	if (rule != NULL)
		*rule = -1;
	if (ac->sub_all)
		return (true);
	if (key == NULL) {
		/* any key (the empty prefix): it would receive keys under
		 * every prefix */
		len = 0;
		prefix = true;
	}
	r = key == NULL ? -1 : shnd_acl_find(a, key, len);
	if (r >= 0 && !(ac->may[r] & SHND_ACL_SUB)) {
		if (rule != NULL)
			*rule = r;
		return (false);
	}
	if (!prefix)
		return (true);
	/* a prefix filter also receives every key under a longer rule that
	 * starts with it: each of those must allow subscribing too (longest
	 * first, so the most specific refusal is the one named) */
	for (i = 0; i < a->n; i++) {
		const struct shnd_acl_rule *ru = &a->rules[i];

		if (ru->len >= len && (len == 0 || memcmp(ru->prefix, key, len) == 0) &&
		    !(ac->may[i] & SHND_ACL_SUB)) {
			if (rule != NULL)
				*rule = (int)i;
			return (false);
		}
	}
	return (true);
}

/* ---- a client's standing ------------------------------------------------ */

static bool in_list(const struct shnd_who_list *l, uid_t uid, const gid_t *gids, size_t ngids)
{
	uint32_t i;
	size_t g;

	for (i = 0; i < l->n; i++) {
		const struct shnd_who *w = &l->v[i];

		if (w->kind == SHND_WHO_ANY)
			return (true);
		if (w->kind == SHND_WHO_UID && w->id == (uint32_t)uid)
			return (true);
		if (w->kind == SHND_WHO_GID)
			for (g = 0; g < ngids; g++)
				if (w->id == (uint32_t)gids[g])
					return (true);
	}
	return (false);
}

/* The peer's primary gid and supplementary groups (SO_PEERGROUPS, Linux
 * 4.13); *n 0 when unavailable (then only the primary gid counts). */
static gid_t *peer_groups(int fd, gid_t gid, size_t *n)
{
	socklen_t len = 64 * sizeof(gid_t);
	gid_t *g = NULL;

	for (;;) {
		gid_t *ng = realloc(g, sizeof(gid_t) + len);

		if (ng == NULL) {
			free(g);
			return (NULL);
		}
		g = ng;
		g[0] = gid;
		if (fd < 0 || getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, g + 1, &len) == 0)
			break;
		if (errno != ERANGE) {
			len = 0;
			break;
		}
	}
	*n = 1 + (fd < 0 ? 0 : len / sizeof(gid_t));
	return (g);
}

int shnd_acl_client_init(const struct shnd_acl *a, struct shnd_acl_client *ac, int fd,
			 uid_t uid, gid_t gid)
{
	gid_t *gids;
	size_t ngids = 0;
	uint32_t i;

	memset(ac, 0, sizeof(*ac));
	ac->pub_all = ac->sub_all = true;
	if (a->n == 0 || uid == 0 || uid == geteuid())
		return (0);
	ac->may = calloc(a->n, 1);
	gids = peer_groups(fd, gid, &ngids);
	if (ac->may == NULL || gids == NULL) {
		free(ac->may);
		free(gids);
		ac->may = NULL;
		return (-ENOMEM);
	}
	for (i = 0; i < a->n; i++) {
		const struct shnd_acl_rule *r = &a->rules[i];

		if (in_list(&r->pub, uid, gids, ngids))
			ac->may[i] |= SHND_ACL_PUB;
		else
			ac->pub_all = false;
		if (in_list(&r->sub, uid, gids, ngids))
			ac->may[i] |= SHND_ACL_SUB;
		else
			ac->sub_all = false;
	}
	free(gids);
	return (0);
}

void shnd_acl_client_fini(struct shnd_acl_client *ac)
{
	free(ac->may);
	ac->may = NULL;
}

/* ---- printing ----------------------------------------------------------- */

static void print_list(FILE *f, const char *name, const struct shnd_who_list *l)
{
	uint32_t i;

	fprintf(f, "%s =", name);
	for (i = 0; i < l->n; i++) {
		const struct shnd_who *w = &l->v[i];

		fputs(i ? ", " : " ", f);
		if (w->kind == SHND_WHO_ANY)
			fputs("*", f);
		else
			fprintf(f, "%s:%u", w->kind == SHND_WHO_UID ? "uid" : "gid", w->id);
	}
	if (l->n == 0)
		fputs("   ; nobody (but root and the broker's uid)", f);
	fputc('\n', f);
}

void shnd_acl_print(const struct shnd_acl *a, FILE *f)
{
	char q[4 * SHN_KEY_MAX_WIRE + 3];
	uint32_t i;

	if (a->n == 0) {
		fputs("; no [acl \"PREFIX\"] sections: every client the socket admits may publish\n"
		      "; and subscribe to every key\n", f);
		return;
	}
	fputs("; root and the broker's own uid pass every rule; a key no prefix covers is open\n",
	      f);
	for (i = 0; i < a->n; i++) {
		const struct shnd_acl_rule *r = &a->rules[i];

		shnd_acl_quote(r->prefix, r->len, q, sizeof(q));
		fprintf(f, "\n[acl %s]\n", q);
		print_list(f, "publish", &r->pub);
		print_list(f, "subscribe", &r->sub);
	}
}

void shnd_acl_free(struct shnd_acl *a)
{
	uint32_t i;

	for (i = 0; i < a->n; i++) {
		free(a->rules[i].pub.v);
		free(a->rules[i].sub.v);
	}
	free(a->rules);
	a->rules = NULL;
	a->n = 0;
}

/* ---- the broker's per-record checks ------------------------------------- */

int shnd_policy_check_batch(struct shnd_broker *b, struct shnd_client *c, const uint8_t *rec,
			    const uint32_t *notes, int count)
{
	const struct shnd_limits *lim = &b->cfg.lim;
	bool sizes = lim->max_key < SHN_KEY_MAX_WIRE || lim->max_data < SHN_DATA_MAX_WIRE;
	int i, rule;

	if (sizes) {
		for (i = 0; i < count; i++) {
			const struct shn_pub_note *pn = (const void *)(rec + notes[i]);

			if (pn->key_len > lim->max_key || pn->data_len > lim->max_data) {
				bool key = pn->key_len > lim->max_key;

				(*(key ? &b->tot.limit_key_size : &b->tot.limit_data_size))++;
				shnd_warn("client %llu (pid %d, uid %u): published a %s of %u bytes, "
					  "above %s %u (the library refuses those: a broken or "
					  "hostile client)", (unsigned long long)c->id, (int)c->pid,
					  (unsigned)c->uid, key ? "key" : "payload",
					  key ? pn->key_len : pn->data_len,
					  key ? "max-key-size" : "max-data-size",
					  key ? lim->max_key : lim->max_data);
				return (-EMSGSIZE);
			}
		}
	}
	if (c->acl.pub_all)
		return (0);
	for (i = 0; i < count; i++) {
		const struct shn_pub_note *pn = (const void *)(rec + notes[i]);
		char q[4 * SHN_KEY_MAX_WIRE + 3], k[200];

		if (shnd_acl_may_publish(&b->cfg.acl, &c->acl, pn + 1, pn->key_len, &rule))
			continue;
		b->tot.acl_publish_denied++;
		/* the first denial of a client is a warning, the rest debug:
		 * a client cannot flood the log */
		if (c->acl_denied++ == 0 || shnd_log_level >= SHND_LOG_DEBUG) {
			const struct shnd_acl_rule *r = &b->cfg.acl.rules[rule];

			shnd_acl_quote((const uint8_t *)(pn + 1), pn->key_len, k, sizeof(k));
			shnd_acl_quote(r->prefix, r->len, q, sizeof(q));
			shnd_log(c->acl_denied == 1 ? SHND_LOG_WARN : SHND_LOG_DEBUG,
				 "client %llu (pid %d, uid %u): batch %llu refused: may not publish "
				 "key %s ([acl %s], config line %d); batch dropped",
				 (unsigned long long)c->id, (int)c->pid, (unsigned)c->uid,
				 (unsigned long long)((const struct shn_pub_batch *)(const void *)rec)->batch_id,
				 k, q, r->line);
		}
		return (-EACCES);
	}
	return (0);
}
