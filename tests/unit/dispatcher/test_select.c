/* disp_select(): the load-biased two-choice pick of a telserver, checked
 * with a fixed-seed RNG over many draws. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "dispatcher.h"

#define DRAWS	100000

static uint64_t
seed(void)
{
	return 0x9E3779B97F4A7C15ULL;
}

/* Counts the picks of DRAWS selections over c (no -1 allowed). */
static void
count_picks(const struct disp_cand *c, size_t n, unsigned *picks)
{
	uint64_t rng = seed();
	int i, k;

	memset(picks, 0, n * sizeof(*picks));
	for (i = 0; i < DRAWS; i++) {
		k = disp_select(c, n, disp_rng_xorshift, &rng);
		assert_true(k >= 0 && (size_t)k < n);
		picks[k]++;
	}
}

static void
test_skips_full_dead_draining(void **state)
{
	const struct disp_cand c[] = {
		{ 4, 4, 1 },	/* full */
		{ 8, 0, 0 },	/* dead */
		{ 8, 1, 0 },	/* draining or suspect */
		{ 2, 1, 1 },
		{ 0, 0, 1 },	/* no capacity */
		{ 3, 0, 1 },
		{ 5, 7, 1 },	/* over capacity (stale report) */
	};
	unsigned picks[7];

	count_picks(c, 7, picks);
	assert_int_equal(picks[0], 0);
	assert_int_equal(picks[1], 0);
	assert_int_equal(picks[2], 0);
	assert_int_equal(picks[4], 0);
	assert_int_equal(picks[6], 0);
	assert_true(picks[3] > 0);
	assert_true(picks[5] > 0);
}

static void
test_none_has_room(void **state)
{
	const struct disp_cand c[] = {
		{ 4, 4, 1 }, { 8, 0, 0 }, { 0, 0, 1 }, { 2, 9, 1 },
	};
	uint64_t rng = seed();

	assert_int_equal(disp_select(c, 4, disp_rng_xorshift, &rng), -1);
	assert_int_equal(disp_select(c, 0, disp_rng_xorshift, &rng), -1);
	assert_int_equal(disp_select(NULL, 0, disp_rng_xorshift, &rng), -1);
}

static void
test_only_one_with_room(void **state)
{
	const struct disp_cand c[] = { { 4, 4, 1 }, { 1, 0, 1 }, { 9, 0, 0 } };
	uint64_t rng = seed();
	int i;

	for (i = 0; i < 1000; i++)
		assert_int_equal(disp_select(c, 3, disp_rng_xorshift, &rng), 1);
}

/* Equal servers: picks spread evenly (chi-square, 9 degrees of freedom;
 * 27.9 is the 0.1% critical value). */
static void
test_equal_spread(void **state)
{
	struct disp_cand c[10];
	unsigned picks[10];
	double chi = 0, expect = DRAWS / 10.0;
	size_t i;

	for (i = 0; i < 10; i++)
		c[i] = (struct disp_cand){ 10, 3, 1 };
	count_picks(c, 10, picks);
	for (i = 0; i < 10; i++)
		chi += (picks[i] - expect) * (picks[i] - expect) / expect;
	assert_true(chi < 27.9);
}

/* All idle: a server with 4x the capacity gets about 4x the picks. */
static void
test_capacity_weighted(void **state)
{
	const struct disp_cand c[] = { { 10, 0, 1 }, { 40, 0, 1 } };
	unsigned picks[2];
	double ratio;

	count_picks(c, 2, picks);
	ratio = (double)picks[1] / picks[0];
	assert_true(ratio > 3.6 && ratio < 4.4);
}

/* Skewed loads: the least loaded wins much more often than the most
 * loaded, but not always (no herding onto one server). */
static void
test_skewed_no_herding(void **state)
{
	const struct disp_cand c[] = {
		{ 10, 9, 1 }, { 10, 6, 1 }, { 10, 0, 1 }, { 10, 3, 1 },
	};
	unsigned picks[4];

	count_picks(c, 4, picks);
	/* Two uniform draws: the least loaded wins 7/16, the most 1/16. */
	assert_true(picks[2] > 4 * picks[0]);
	assert_true(picks[2] > picks[3] && picks[3] > picks[1] &&
	    picks[1] > picks[0]);
	assert_true(picks[2] < DRAWS * 0.6);
	assert_true(picks[0] > DRAWS * 0.03);
}

/* Ratios tie: the one with more free slots wins. */
static void
test_tie_free_slots(void **state)
{
	const struct disp_cand c[] = { { 4, 2, 1 }, { 40, 20, 1 } };
	unsigned picks[2];

	count_picks(c, 2, picks);
	/* The small one wins only when drawn twice: (4/44)^2. */
	assert_true(picks[0] < DRAWS * 0.02);
	assert_true(picks[0] > 0);
}

/* Alone (disp_select_least): the lowest (load + 1/2)/capacity, then the
 * most free slots; never a server without room; -1 when none has room. */
static void
test_least(void **state)
{
	const struct disp_cand c[] = {
		{ 10, 9, 1 }, { 10, 6, 1 }, { 10, 0, 0 }, { 10, 3, 1 },
		{ 4, 4, 1 }, { 40, 12, 1 }, { 80, 27, 1 },
	};
	const struct disp_cand full[] = { { 4, 4, 1 }, { 8, 0, 0 } };
	uint64_t rng = seed();
	int i;

	for (i = 0; i < 100; i++) {
		/* 3.5/10 > 12.5/40: the larger goes up in smaller steps. */
		assert_int_equal(disp_select_least(c, 6, disp_rng_xorshift,
		    &rng), 5);
		/* 12.5/40 = 25/80 < 27.5/80 */
		assert_int_equal(disp_select_least(c, 7, disp_rng_xorshift,
		    &rng), 5);
		assert_int_equal(disp_select_least(c, 5, disp_rng_xorshift,
		    &rng), 3);
		assert_int_equal(disp_select_least(c, 2, disp_rng_xorshift,
		    &rng), 1);
	}
	assert_int_equal(disp_select_least(full, 2, disp_rng_xorshift, &rng),
	    -1);
	assert_int_equal(disp_select_least(NULL, 0, disp_rng_xorshift, &rng),
	    -1);
}

/* Alone, jobs one after the other on an idle fleet: shared by capacity
 * (10 : 20 : 40 : 80 exactly, after 150), not one each in turn; the same
 * load on the same capacity: either, about half each. */
static void
test_least_shares(void **state)
{
	struct disp_cand c[] = {
		{ 10, 0, 1 }, { 20, 0, 1 }, { 40, 0, 1 }, { 80, 0, 1 },
	};
	const struct disp_cand same[] = { { 10, 2, 1 }, { 10, 2, 1 } };
	uint64_t rng = seed();
	unsigned first = 0;
	int i, k;

	for (i = 0; i < 150; i++) {
		k = disp_select_least(c, 4, disp_rng_xorshift, &rng);
		assert_true(k >= 0 && k < 4);
		c[k].load++;
		/* never more than one job away from its share */
		for (k = 0; k < 4; k++)
			assert_true(c[k].load * 150 <=
			    (uint64_t)(i + 1) * c[k].capacity + 150);
	}
	assert_int_equal(c[0].load, 10);
	assert_int_equal(c[1].load, 20);
	assert_int_equal(c[2].load, 40);
	assert_int_equal(c[3].load, 80);
	for (i = 0; i < DRAWS; i++)
		first += disp_select_least(same, 2, disp_rng_xorshift,
		    &rng) == 0;
	assert_true(first > DRAWS * 0.48 && first < DRAWS * 0.52);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_skips_full_dead_draining),
		cmocka_unit_test(test_none_has_room),
		cmocka_unit_test(test_only_one_with_room),
		cmocka_unit_test(test_equal_spread),
		cmocka_unit_test(test_capacity_weighted),
		cmocka_unit_test(test_skewed_no_herding),
		cmocka_unit_test(test_tie_free_slots),
		cmocka_unit_test(test_least),
		cmocka_unit_test(test_least_shares),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
