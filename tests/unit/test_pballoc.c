/* SPDX-License-Identifier: Apache-2.0 */
/* The decode allocators: a budget that refuses what hostile input would
 * claim, and a failed malloc told apart from it, so that a node short of
 * memory does not call its peer's message malformed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
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

/* A batch of registration-sized puts decodes to about six times its
 * encoding, into several blocks; the blocks live until the request is
 * answered, so what they hold unused must stay under one encoding's
 * size (doubling each block held twice what the decode used). */
static void a_batch_decodes_whole_and_holds_little_unused(void **state)
{
	(void)state;
	enum { NPUTS = 256, NFIELDS = 13 };
	static Msce__PutRequest puts[NPUTS];
	static Msce__PutRequest *pp[NPUTS];
	static Msce__FieldIn fields[NPUTS][NFIELDS];
	static Msce__FieldIn *fp[NPUTS][NFIELDS];
	static char keys[NPUTS][32], names[NFIELDS][16];
	static uint8_t values[NFIELDS][24];
	Msce__ClientRequest req = MSCE__CLIENT_REQUEST__INIT;
	Msce__BatchPutRequest b = MSCE__BATCH_PUT_REQUEST__INIT;

	for (size_t f = 0; f < NFIELDS; f++) {
		snprintf(names[f], sizeof names[f], "field_%zu", f);
		memset(values[f], 'a' + (int)f, sizeof values[f]);
	}
	for (size_t i = 0; i < NPUTS; i++) {
		msce__put_request__init(&puts[i]);
		snprintf(keys[i], sizeof keys[i], "FRA:GL10%08zu", i);
		puts[i].collection = "registration";
		puts[i].key = keys[i];
		for (size_t f = 0; f < NFIELDS; f++) {
			msce__field_in__init(&fields[i][f]);
			fields[i][f].name = names[f];
			fields[i][f].value.data = values[f];
			fields[i][f].value.len = sizeof values[f];
			fp[i][f] = &fields[i][f];
		}
		puts[i].n_fields = NFIELDS;
		puts[i].fields = fp[i];
		pp[i] = &puts[i];
	}
	b.n_puts = NPUTS;
	b.puts = pp;
	req.op_case = MSCE__CLIENT_REQUEST__OP_BATCH;
	req.batch = &b;
	size_t len = msce__client_request__get_packed_size(&req);
	uint8_t *buf = malloc(len);
	assert_non_null(buf);
	assert_int_equal(msce__client_request__pack(&req, buf), len);

	struct pb_arena ar;
	Msce__ClientRequest *m = decode(&ar, pb_limit_for(len), buf, len);
	assert_non_null(m);
	assert_true(ar.used > 4 * len); /* it did span blocks */
	assert_true(ar.held - ar.used <= len + 4096 + 64);
	assert_int_equal(m->batch->n_puts, NPUTS);
	for (size_t i = 0; i < NPUTS; i++) {
		const Msce__PutRequest *p = m->batch->puts[i];
		assert_string_equal(p->key, keys[i]);
		assert_int_equal(p->n_fields, NFIELDS);
		for (size_t f = 0; f < NFIELDS; f++) {
			assert_string_equal(p->fields[f]->name, names[f]);
			assert_memory_equal(p->fields[f]->value.data,
					    values[f], sizeof values[f]);
		}
	}
	pb_arena_free(m);
	free(buf);
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
	    cmocka_unit_test(a_batch_decodes_whole_and_holds_little_unused),
	    cmocka_unit_test(over_the_budget_is_not_out_of_memory),
	    cmocka_unit_test(a_failed_malloc_is_out_of_memory),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
