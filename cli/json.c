/* SPDX-License-Identifier: MIT */
/*
 * json.c - a small JSON reader for `shmnotify stats`: the whole document
 * into a tree of struct json.  Strict enough for a broker's output, tolerant
 * of members it does not know.  Nesting is limited to keep the recursion
 * bounded.
 */
#include <stdlib.h>
#include <string.h>

#include "cli.h"

#define JSON_MAX_DEPTH 64

struct parser {
	const char *s;
	size_t pos;
	bool failed;
};

static void skip_ws(struct parser *p)
{
	while (p->s[p->pos] == ' ' || p->s[p->pos] == '\t' || p->s[p->pos] == '\n' ||
	       p->s[p->pos] == '\r')
		p->pos++;
}

static struct json *new_node(enum json_type t)
{
	struct json *j = calloc(1, sizeof *j);

	if (j)
		j->type = t;
	return j;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static bool read_hex4(struct parser *p, unsigned *out)
{
	unsigned v = 0;
	int i, h;

	for (i = 0; i < 4; i++) {
		h = hexval(p->s[p->pos]);
		if (h < 0)
			return false;
		v = v << 4 | (unsigned)h;
		p->pos++;
	}
	*out = v;
	return true;
}

static size_t put_utf8(char *o, unsigned cp)
{
	if (cp < 0x80) {
		o[0] = (char)cp;
		return 1;
	} else if (cp < 0x800) {
		o[0] = (char)(0xc0 | cp >> 6);
		o[1] = (char)(0x80 | (cp & 0x3f));
		return 2;
	} else if (cp < 0x10000) {
		o[0] = (char)(0xe0 | cp >> 12);
		o[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
		o[2] = (char)(0x80 | (cp & 0x3f));
		return 3;
	}
	o[0] = (char)(0xf0 | cp >> 18);
	o[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
	o[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
	o[3] = (char)(0x80 | (cp & 0x3f));
	return 4;
}

/* p->s[p->pos] is the opening quote.  The decoded string is never longer
 * than its source. */
static char *parse_string(struct parser *p)
{
	size_t start = ++p->pos, end = start, n = 0;
	char *out;

	while (p->s[end] && p->s[end] != '"') {
		if (p->s[end] == '\\' && p->s[end + 1])
			end++;
		end++;
	}
	if (p->s[end] != '"')
		return NULL;
	out = malloc(end - start + 1);
	if (!out)
		return NULL;
	while (p->pos < end) {
		char c = p->s[p->pos++];
		unsigned cp, lo;

		if ((unsigned char)c < 0x20)
			goto bad;
		if (c != '\\') {
			out[n++] = c;
			continue;
		}
		c = p->s[p->pos++];
		switch (c) {
		case '"': case '\\': case '/': out[n++] = c; break;
		case 'b': out[n++] = '\b'; break;
		case 'f': out[n++] = '\f'; break;
		case 'n': out[n++] = '\n'; break;
		case 'r': out[n++] = '\r'; break;
		case 't': out[n++] = '\t'; break;
		case 'u':
			if (!read_hex4(p, &cp))
				goto bad;
			if (cp >= 0xd800 && cp <= 0xdbff && p->s[p->pos] == '\\' &&
			    p->s[p->pos + 1] == 'u') {
				p->pos += 2;
				if (!read_hex4(p, &lo) || lo < 0xdc00 || lo > 0xdfff)
					goto bad;
				cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
			} else if (cp >= 0xd800 && cp <= 0xdfff) {
				cp = 0xfffd;
			}
			/* 6 source bytes (12 for a pair) give at most 4 */
			n += put_utf8(out + n, cp);
			break;
		default:
			goto bad;
		}
	}
	out[n] = '\0';
	p->pos = end + 1;
	return out;
bad:
	free(out);
	return NULL;
}

static struct json *parse_value(struct parser *p, int depth);

static struct json *parse_container(struct parser *p, int depth, bool object)
{
	struct json *j = new_node(object ? JSON_OBJECT : JSON_ARRAY), **tail;
	char close = object ? '}' : ']';

	if (!j)
		return NULL;
	tail = &j->child;
	p->pos++;
	skip_ws(p);
	if (p->s[p->pos] == close) {
		p->pos++;
		return j;
	}
	for (;;) {
		char *name = NULL;
		struct json *v;

		skip_ws(p);
		if (object) {
			if (p->s[p->pos] != '"' || !(name = parse_string(p)))
				goto bad;
			skip_ws(p);
			if (p->s[p->pos] != ':') {
				free(name);
				goto bad;
			}
			p->pos++;
		}
		v = parse_value(p, depth + 1);
		if (!v) {
			free(name);
			goto bad;
		}
		v->name = name;
		*tail = v;
		tail = &v->next;
		skip_ws(p);
		if (p->s[p->pos] == ',') {
			p->pos++;
			continue;
		}
		if (p->s[p->pos] == close) {
			p->pos++;
			return j;
		}
		goto bad;
	}
bad:
	json_free(j);
	return NULL;
}

static struct json *parse_value(struct parser *p, int depth)
{
	struct json *j;
	const char *s;
	char *end;

	if (depth > JSON_MAX_DEPTH)
		return NULL;
	skip_ws(p);
	s = p->s + p->pos;
	switch (*s) {
	case '{':
		return parse_container(p, depth, true);
	case '[':
		return parse_container(p, depth, false);
	case '"':
		j = new_node(JSON_STRING);
		if (j && !(j->str = parse_string(p))) {
			free(j);
			j = NULL;
		}
		return j;
	case 't':
	case 'f':
	case 'n':
		if (!strncmp(s, "true", 4) || !strncmp(s, "null", 4)) {
			p->pos += 4;
		} else if (!strncmp(s, "false", 5)) {
			p->pos += 5;
		} else {
			return NULL;
		}
		j = new_node(*s == 'n' ? JSON_NULL : JSON_BOOL);
		if (j)
			j->boolean = *s == 't';
		return j;
	default:
		if (*s != '-' && (*s < '0' || *s > '9'))
			return NULL;
		j = new_node(JSON_NUMBER);
		if (!j)
			return NULL;
		j->num = strtod(s, &end);
		if (end == s || !(j->str = strndup(s, (size_t)(end - s)))) {
			free(j);
			return NULL;
		}
		p->pos += (size_t)(end - s);
		return j;
	}
}

struct json *json_parse(const char *text, size_t *err_at)
{
	struct parser p = { .s = text };
	struct json *j = parse_value(&p, 0);

	if (j) {
		skip_ws(&p);
		if (p.s[p.pos] != '\0') {
			json_free(j);
			j = NULL;
		}
	}
	if (!j && err_at)
		*err_at = p.pos;
	return j;
}

void json_free(struct json *j)
{
	while (j) {
		struct json *next = j->next;

		json_free(j->child);
		free(j->name);
		free(j->str);
		free(j);
		j = next;
	}
}

const struct json *json_get(const struct json *j, const char *name)
{
	const struct json *c;

	if (!j || j->type != JSON_OBJECT)
		return NULL;
	for (c = j->child; c; c = c->next)
		if (c->name && !strcmp(c->name, name))
			return c;
	return NULL;
}
