/* SPDX-License-Identifier: MIT */
/*
 * test_index.c - broker/index.c alone: exact keys and prefixes are
 * different entries (one of each for "ab"), entries count distinct
 * filters (not subscriptions), the distinct prefix lengths in use are kept
 * ascending with a count per length, and the interest summary in a broker
 * segment follows them (a prefix's hash bit, its length's bit), set while
 * something needs them and cleared when nothing does.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "broker/index.h"

struct seg {
	struct shn_broker_shm *bs;
	const _Atomic uint64_t *map;
};

static void seg_new(struct seg *s, struct shnd_index *ix)
{
	s->bs = aligned_alloc(4096, SHN_BROKER_SHM_SIZE);
	assert_non_null(s->bs);
	memset(s->bs, 0, SHN_BROKER_SHM_SIZE);
	s->map = (const void *)((const uint8_t *)s->bs + SHN_INTEREST_OFF);
	shnd_index_init(ix);
	assert_int_equal(shnd_index_attach(ix, s->bs), 0);
}

static void sub_add(struct shnd_index *ix, struct shnd_sub *s, const char *key, size_t len,
		    bool prefix)
{
	memset(s, 0, sizeof(*s));
	s->prefix = prefix;
	assert_int_equal(shnd_index_add(ix, s, key, len), 0);
}

static bool len_bit(const struct seg *s, unsigned p)
{
	return (atomic_load(&s->bs->prefix_lens[(p - 1) / 64]) >> ((p - 1) % 64)) & 1;
}

static bool hash_bit(const struct seg *s, const void *key, size_t len)
{
	return shn_interest_bit(s->map, shnd_index_hash(key, len));
}

static void expect_lens(const struct shnd_index *ix, const uint16_t *want, uint32_t n)
{
	assert_int_equal(ix->nplens, n);
	for (uint32_t i = 0; i < n; i++)
		assert_int_equal(ix->plens[i], want[i]);
}

static void test_exact_and_prefix_apart(void **state)
{
	struct shnd_index ix;
	struct seg s;
	struct shnd_sub e1, e2, p1, p2;

	(void)state;
	seg_new(&s, &ix);
	sub_add(&ix, &e1, "ab", 2, false);
	sub_add(&ix, &p1, "ab", 2, true);
	sub_add(&ix, &e2, "ab", 2, false);
	sub_add(&ix, &p2, "ab", 2, true);
	assert_int_equal(ix.nkeys, 1);
	assert_int_equal(ix.nprefixes, 1);
	assert_int_equal(shnd_index_entries(&ix), 2);
	assert_ptr_equal(e1.ke, e2.ke);
	assert_ptr_equal(p1.ke, p2.ke);
	assert_ptr_not_equal(e1.ke, p1.ke);
	assert_false(e1.ke->prefix);
	assert_true(p1.ke->prefix);
	assert_int_equal(e1.ke->nsubs, 2);
	assert_int_equal(p1.ke->nsubs, 2);
	uint64_t h = shnd_index_hash("ab", 2);
	assert_ptr_equal(shnd_index_find(&ix, "ab", 2, h), e1.ke);
	assert_ptr_equal(shnd_index_find_prefix(&ix, "ab", 2, h), p1.ke);
	assert_null(shnd_index_find_prefix(&ix, "a", 1, shnd_index_hash("a", 1)));
	/* one entry of length 2 (two subscriptions) */
	assert_int_equal(ix.plen_count[2], 1);
	expect_lens(&ix, (const uint16_t[]){ 2 }, 1);
	assert_true(len_bit(&s, 2));
	assert_true(hash_bit(&s, "ab", 2));

	/* the last prefix subscription takes its length and bit with it,
	 * not the exact key's interest bit (same hash) */
	shnd_index_del(&ix, &p1);
	assert_true(len_bit(&s, 2));
	shnd_index_del(&ix, &p2);
	assert_int_equal(ix.nprefixes, 0);
	assert_int_equal(ix.plen_count[2], 0);
	expect_lens(&ix, NULL, 0);
	assert_false(len_bit(&s, 2));
	assert_true(hash_bit(&s, "ab", 2));
	shnd_index_del(&ix, &e1);
	shnd_index_del(&ix, &e2);
	assert_false(hash_bit(&s, "ab", 2));
	assert_int_equal(shnd_index_entries(&ix), 0);
	shnd_index_fini(&ix);
	free(s.bs);
}

static void test_lengths(void **state)
{
	struct shnd_index ix;
	struct seg s;
	struct shnd_sub sub[8];
	char k256[256];

	(void)state;
	memset(k256, 'x', sizeof(k256));
	seg_new(&s, &ix);
	sub_add(&ix, &sub[0], "abcde", 5, true);
	sub_add(&ix, &sub[1], "a", 1, true);
	sub_add(&ix, &sub[2], k256, 256, true);
	sub_add(&ix, &sub[3], "abc", 3, true);
	sub_add(&ix, &sub[4], "xyz", 3, true);   /* a second entry of length 3 */
	sub_add(&ix, &sub[5], "\0\0\0", 3, true);   /* binary */
	sub_add(&ix, &sub[6], NULL, 0, true);   /* empty prefix: any key */
	sub_add(&ix, &sub[7], "abcd", 4, false);   /* exact: no length */
	expect_lens(&ix, (const uint16_t[]){ 1, 3, 5, 256 }, 4);
	assert_int_equal(ix.plen_count[3], 3);
	assert_int_equal(ix.nprefixes, 6);
	assert_int_equal(ix.nwild, 1);
	assert_false(sub[6].prefix);
	assert_null(sub[6].ke);
	assert_int_equal(atomic_load(&s.bs->any_key_subs), 1);
	assert_true(len_bit(&s, 1) && len_bit(&s, 3) && len_bit(&s, 5) && len_bit(&s, 256));
	assert_false(len_bit(&s, 2) || len_bit(&s, 4) || len_bit(&s, 255));
	assert_true(hash_bit(&s, "\0\0\0", 3));
	assert_true(hash_bit(&s, k256, 256));

	shnd_index_del(&ix, &sub[3]);
	shnd_index_del(&ix, &sub[4]);
	expect_lens(&ix, (const uint16_t[]){ 1, 3, 5, 256 }, 4);   /* "\0\0\0" is left */
	shnd_index_del(&ix, &sub[5]);
	expect_lens(&ix, (const uint16_t[]){ 1, 5, 256 }, 3);
	assert_false(len_bit(&s, 3));
	shnd_index_del(&ix, &sub[2]);
	expect_lens(&ix, (const uint16_t[]){ 1, 5 }, 2);
	assert_false(len_bit(&s, 256));
	assert_false(hash_bit(&s, k256, 256));
	sub_add(&ix, &sub[2], "ab", 2, true);
	expect_lens(&ix, (const uint16_t[]){ 1, 2, 5 }, 3);
	for (int i = 0; i < 8; i++)
		if (i != 3 && i != 4 && i != 5)
			shnd_index_del(&ix, &sub[i]);
	expect_lens(&ix, NULL, 0);
	for (int w = 0; w < SHN_PREFIX_LEN_WORDS; w++)
		assert_int_equal(atomic_load(&s.bs->prefix_lens[w]), 0);
	assert_int_equal(atomic_load(&s.bs->any_key_subs), 0);
	assert_int_equal(shnd_index_entries(&ix), 0);
	shnd_index_fini(&ix);
	free(s.bs);
}

/* Many prefixes of one length: the table grows and every one is found. */
static void test_many(void **state)
{
	struct shnd_index ix;
	struct seg s;
	enum { N = 3000 };
	struct shnd_sub *sub = calloc(N, sizeof(*sub));
	char k[N][8];

	(void)state;
	assert_non_null(sub);
	seg_new(&s, &ix);
	for (int i = 0; i < N; i++) {
		snprintf(k[i], sizeof(k[i]), "p%06d", i);
		sub_add(&ix, &sub[i], k[i], 7, true);
	}
	assert_int_equal(ix.nprefixes, N);
	assert_int_equal(ix.plen_count[7], N);
	expect_lens(&ix, (const uint16_t[]){ 7 }, 1);
	for (int i = 0; i < N; i++)
		assert_ptr_equal(shnd_index_find_prefix(&ix, k[i], 7, shnd_index_hash(k[i], 7)),
				 sub[i].ke);
	for (int i = 0; i < N; i++)
		shnd_index_del(&ix, &sub[i]);
	expect_lens(&ix, NULL, 0);
	assert_false(len_bit(&s, 7));
	shnd_index_fini(&ix);
	free(s.bs);
	free(sub);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_exact_and_prefix_apart),
		cmocka_unit_test(test_lengths),
		cmocka_unit_test(test_many),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
