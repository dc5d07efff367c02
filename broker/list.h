/* SPDX-License-Identifier: MIT */
/*
 * list.h - intrusive doubly linked lists (the Linux kernel's shape).
 *
 * The broker's objects sit on several lists at once (a subscription is on
 * its key's list and its port's list); intrusive links make removal O(1)
 * without any allocation on the hot path.
 */
#ifndef SHND_LIST_H
#define SHND_LIST_H

#include <stdbool.h>
#include <stddef.h>

struct shnd_list {
	struct shnd_list *next, *prev;
};

#define shnd_container_of(ptr, type, member) \
	((type *)(void *)((char *)(ptr) - offsetof(type, member)))

static inline void shnd_list_init(struct shnd_list *l)
{
	l->next = l;
	l->prev = l;
}

static inline bool shnd_list_empty(const struct shnd_list *l)
{
	return (l->next == l);
}

/* Append n at the tail of l. */
static inline void shnd_list_add_tail(struct shnd_list *l, struct shnd_list *n)
{
	n->prev = l->prev;
	n->next = l;
	l->prev->next = n;
	l->prev = n;
}

/* Unlink n and leave it self-linked, so a second removal is harmless. */
static inline void shnd_list_del(struct shnd_list *n)
{
	n->prev->next = n->next;
	n->next->prev = n->prev;
	shnd_list_init(n);
}

#define shnd_list_entry(ptr, type, member) shnd_container_of(ptr, type, member)

#define shnd_list_for_each(pos, head) \
	for ((pos) = (head)->next; (pos) != (head); (pos) = (pos)->next)

/* Safe against removal of pos. */
#define shnd_list_for_each_safe(pos, tmp, head) \
	for ((pos) = (head)->next, (tmp) = (pos)->next; (pos) != (head); \
	     (pos) = (tmp), (tmp) = (pos)->next)

#endif
