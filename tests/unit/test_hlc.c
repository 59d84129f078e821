/* SPDX-License-Identifier: Apache-2.0 */
/* Hybrid logical clock: monotonic under a wall clock that stalls or steps
 * back, bounded skew on receive, and no reuse across a store restart. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "hlc.h"
#include "error.h"
#include "store.h"
#include "testutil.h"

static void monotonic_with_backward_clock(void **state)
{
	(void)state;
	struct hlc c;
	uint64_t prev = 0, wall = 1700000000000ull;

	hlc_init(&c, 0);
	for (int i = 0; i < 100000; i++) {
		/* Stall, step back by up to 5 s, or jump ahead. */
		int r = i % 7;
		if (r == 0)
			wall -= 5000;
		else if (r == 3)
			wall += 13;
		uint64_t h = hlc_now(&c, wall);
		assert_true(h > prev);
		prev = h;
	}
}

static void layout_and_logical_overflow(void **state)
{
	(void)state;
	struct hlc c;
	uint64_t h = hlc_make(1234, 5);

	assert_int_equal(hlc_ms(h), 1234);
	assert_int_equal(hlc_logical(h), 5);
	hlc_init(&c, hlc_make(1000, HLC_LOGICAL_MASK));
	h = hlc_now(&c, 1000);
	/* Counter overflow carries into the milliseconds, never repeats. */
	assert_int_equal(hlc_ms(h), 1001);
	assert_int_equal(hlc_logical(h), 0);
}

static void receive_rules(void **state)
{
	(void)state;
	struct hlc c;
	uint64_t wall = 1700000000000ull;

	hlc_init(&c, 0);
	uint64_t remote = hlc_make(wall + 30000, 7);
	assert_int_equal(hlc_check(remote, wall, 60000), 0);
	hlc_observe(&c, remote);
	assert_true(hlc_now(&c, wall) > remote);
	/* 61 s ahead with a 60 s limit: refused, clock untouched. */
	uint64_t far = hlc_make(wall + 61000, 0);
	uint64_t before = c.last;
	assert_int_equal(hlc_check(far, wall, 60000), MSCE_ECLOCK);
	assert_int_equal(c.last, before);
	/* Accepted once the wall clock catches up. */
	assert_int_equal(hlc_check(far, wall + 1000, 60000), 0);
}

static void no_reuse_after_restart(void **state)
{
	(void)state;
	char *dir = tu_tmpdir();
	struct store_options o = {.node_id = 1, .cluster = "t"};
	struct store *s;
	struct err e;
	uint64_t wall = 1700000000000ull, last = 0;

	assert_non_null(dir);
	for (int round = 0; round < 3; round++) {
		assert_int_equal(store_open(dir, &o, &s, &e), 0);
		if (store_writer(s, NULL) == 0)
			assert_int_equal(store_set_writer(s, 1, 0, 1, &e), 0);
		assert_true(store_hlc_committed(s) >= last);
		for (int i = 0; i < 10; i++) {
			struct store_field_in f = {"v", 1, (const uint8_t *)"x",
						   1, 0, {0, 0}};
			struct store_write w = {STORE_PUT, "t", 1, "k", 1, &f, 1, 0};
			struct store_written out;
			/* Each round the wall clock is an hour earlier. */
			assert_int_equal(store_write(s, &w, 1, wall, &out, &e),
					 0);
			assert_int_equal(out.err.code, 0);
			assert_true(out.hlc > last);
			last = out.hlc;
		}
		store_close(s);
		wall -= 3600 * 1000;
	}
	tu_rmrf(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(monotonic_with_backward_clock),
		cmocka_unit_test(layout_and_logical_overflow),
		cmocka_unit_test(receive_rules),
		cmocka_unit_test(no_reuse_after_restart),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
