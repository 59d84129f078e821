/* SPDX-License-Identifier: Apache-2.0 */
/* The decode allocators: a budget that refuses what hostile input would
 * claim, and a failed malloc told apart from it, so that a node short of
 * memory does not call its peer's message malformed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "client.pb-c.h"
#include "fault.h"
#include "pballoc.h"

/* A get request packed into buf; returns its length. */
static size_t packed_get(uint8_t *buf, size_t cap)
{
	Msce__ClientRequest req = MSCE__CLIENT_REQUEST__INIT;
	Msce__GetRequest g = MSCE__GET_REQUEST__INIT;
	g.collection = "registration";
	g.key = "FRA:GL1012345601";
	req.id = 7;
	req.op_case = MSCE__CLIENT_REQUEST__OP_GET;
	req.get = &g;
	assert_true(msce__client_request__get_packed_size(&req) <= cap);
	return msce__client_request__pack(&req, buf);
}

static Msce__ClientRequest *decode(struct pb_arena *ar, size_t budget,
				   const uint8_t *buf, size_t len)
{
	return pb_arena_end(ar, msce__client_request__unpack(
				    pb_arena_begin(ar, budget, len), len, buf));
}

static void decodes_within_the_budget(void **state)
{
	(void)state;
	uint8_t buf[256];
	size_t len = packed_get(buf, sizeof buf);
	struct pb_arena ar;
	Msce__ClientRequest *m = decode(&ar, pb_limit_for(len), buf, len);
	assert_non_null(m);
	assert_int_equal(ar.nomem, 0);
	assert_int_equal(m->id, 7);
	assert_string_equal(m->get->key, "FRA:GL1012345601");
	pb_arena_free(m);
}

/* Over the budget: refused as the input's fault, not as memory, and
 * told apart from malformed bytes. */
static void over_the_budget_is_not_out_of_memory(void **state)
{
	(void)state;
	uint8_t buf[256];
	size_t len = packed_get(buf, sizeof buf);
	struct pb_arena ar;
	assert_null(decode(&ar, 16, buf, len));
	assert_int_equal(ar.nomem, 0);
	assert_int_equal(ar.over, 1); /* told apart: answered ETOOBIG */
	/* Bytes that are no request: malformed, not over the budget. */
	buf[0] = 0xff;
	assert_null(decode(&ar, pb_limit_for(len), buf, len));
	assert_int_equal(ar.over, 0);
	assert_int_equal(ar.nomem, 0);
}

/* Every allocation failing in turn: each decode fails, says so, and
 * frees what it had; then the same bytes decode. */
static void a_failed_malloc_is_out_of_memory(void **state)
{
	(void)state;
	uint8_t buf[256];
	size_t len = packed_get(buf, sizeof buf);
	struct pb_arena ar;
	int fired = 0;

	for (long nth = 1; nth < 100; nth++) {
		fault_arm(FAULT_ALLOC, nth, 0);
		Msce__ClientRequest *m =
		    decode(&ar, pb_limit_for(len), buf, len);
		int hit = fault_events(FAULT_ALLOC) >= nth;
		fault_clear(FAULT_ALLOC);
		if (!hit) {
			assert_non_null(m);
			assert_int_equal(ar.nomem, 0);
			pb_arena_free(m);
			break;
		}
		fired++;
		assert_null(m);
		assert_int_equal(ar.nomem, 1);
	}
	assert_true(fired >= 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(decodes_within_the_budget),
	    cmocka_unit_test(over_the_budget_is_not_out_of_memory),
	    cmocka_unit_test(a_failed_malloc_is_out_of_memory),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
