/* SPDX-License-Identifier: Apache-2.0 */
/* Log entries of a store in the clear, read back through st_log_open: a
 * put below its record's erase mark reads back redacted, anything else
 * as it is. The place of an entry is decoded as a msce.ChangePlace (a
 * view of Change); these tests hold it to the full Change decode on
 * well-formed, cut and mangled entries (run them under MSCE_SANITIZE). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h> /* after the three above, which it needs */

#include "fault.h"
#include "msce.pb-c.h"
#include "store_int.h"
#include "storeutil.h"

#define T0 1700000000000ull

struct fix {
	char *dir;
	struct store *s;
	struct version mark; /* t/P1's erase */
	MDB_txn *txn;
	struct logbuf b;
};

/* A store in the clear holding t/P1, erased, and t/P2. */
static int setup(void **state)
{
	struct fix *f = calloc(1, sizeof *f);
	struct store_options o = {.node_id = 1, .cluster = "test"};
	struct store_write del = {STORE_DELETE, "t", 1, "P1", 2, NULL, 0, 1};
	struct store_written w;
	struct err e;

	f->dir = tu_tmpdir();
	assert_int_equal(store_open(f->dir, &o, &f->s, &e), 0);
	su_writer(f->s);
	assert_int_equal(su_put(f->s, "t", "P1", "name", "Secret", T0, NULL),
			 0);
	assert_int_equal(su_put(f->s, "t", "P2", "name", "Other", T0, NULL), 0);
	assert_int_equal(store_write(f->s, &del, 1, T0 + 10, &w, &e), 0);
	assert_int_equal(w.err.code, 0);
	f->mark = (struct version){w.hlc, w.origin};
	assert_int_equal(st_read_begin(f->s, &f->txn, &e), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fix *f = *state;
	st_logbuf_free(&f->b);
	st_read_end(f->s, f->txn);
	store_close(f->s);
	tu_rmrf(f->dir);
	free(f);
	return 0;
}

/* A put of coll/key at hlc by origin 1 with two fields, encoded. */
static size_t put_bytes(uint8_t *buf, size_t cap, const char *coll,
			const char *key, uint64_t hlc, int op)
{
	Msce__FieldWrite fw[2] = {MSCE__FIELD_WRITE__INIT,
				  MSCE__FIELD_WRITE__INIT};
	Msce__FieldWrite *fp[2] = {&fw[0], &fw[1]};
	Msce__Change c = MSCE__CHANGE__INIT;

	fw[0].name = "name";
	fw[0].value = (ProtobufCBinaryData){6, (uint8_t *)"Secret"};
	fw[1].name = "phone";
	fw[1].value = (ProtobufCBinaryData){11, (uint8_t *)"+8612345678"};
	fw[1].base_hlc = hlc - 1;
	c.origin = 1;
	c.seq = 7;
	c.hlc = hlc;
	c.collection = (char *)coll;
	c.key = (char *)key;
	c.op = op;
	if (op == MSCE__CHANGE__OP__PUT) {
		c.n_fields = 2;
		c.fields = fp;
	} else {
		c.erase = 1;
	}
	assert_true(msce__change__get_packed_size(&c) <= cap);
	return msce__change__pack(&c, buf);
}

/* What the full decode says: 1 when buf is a put of a record of ours
 * below t/P1's erase mark (the only mark in the store), 0 when it is
 * another change, -1 when it is not a change. */
static int below_mark(const struct fix *f, const uint8_t *buf, size_t len)
{
	Msce__Change *c = msce__change__unpack(NULL, len, buf);
	int r = 0;

	if (c == NULL)
		return -1;
	if (c->op == MSCE__CHANGE__OP__PUT && strcmp(c->collection, "t") == 0 &&
	    strcmp(c->key, "P1") == 0)
		r = version_cmp((struct version){c->hlc, c->origin}, f->mark) <
		    0;
	msce__change__free_unpacked(c, NULL);
	return r;
}

/* Reads buf back as a log entry; checks it against the full decode:
 * redacted with its place kept, or returned as it is. An entry that is
 * not a change may be either (its place may still parse: the values are
 * not looked at); its reader refuses it. */
static int open_entry(struct fix *f, const uint8_t *buf, size_t len)
{
	MDB_val v = {len, (void *)buf};
	const uint8_t *out;
	size_t outlen;
	struct err e;
	int rc = st_log_open(f->s, f->txn, 1, 7, &v, &f->b, &out, &outlen, &e);

	int full = below_mark(f, buf, len);

	assert_true(rc == 0 || rc == LOG_REDACTED);
	if (full >= 0)
		assert_int_equal(rc == LOG_REDACTED, full);
	if (rc == 0) {
		assert_ptr_equal(out, buf);
		assert_int_equal(outlen, len);
	} else {
		Msce__Change *c = msce__change__unpack(NULL, outlen, out);
		assert_non_null(c);
		assert_true(c->redacted);
		assert_int_equal(c->n_fields, 0);
		assert_true(c->hlc <= f->mark.hlc);
		assert_int_equal(c->origin, 1);
		assert_int_equal(c->seq, 7);
		assert_string_equal(c->collection, "t");
		assert_string_equal(c->key, "P1");
		assert_null(memmem(out, outlen, "Secret", 6));
		msce__change__free_unpacked(c, NULL);
	}
	return rc;
}

static void puts_and_deletes(void **state)
{
	struct fix *f = *state;
	uint8_t buf[512];
	uint64_t h = f->mark.hlc;
	size_t n;

	/* Below the mark, with values: redacted. */
	n = put_bytes(buf, sizeof buf, "t", "P1", h - 1, 0);
	assert_int_equal(open_entry(f, buf, n), LOG_REDACTED);
	/* Above it, or at it (same hlc, same origin): as it is. */
	n = put_bytes(buf, sizeof buf, "t", "P1", h + 1, 0);
	assert_int_equal(open_entry(f, buf, n), 0);
	n = put_bytes(buf, sizeof buf, "t", "P1", h, 0);
	assert_int_equal(open_entry(f, buf, n), 0);
	/* Another record, no mark. */
	n = put_bytes(buf, sizeof buf, "t", "P2", h - 1, 0);
	assert_int_equal(open_entry(f, buf, n), 0);
	/* A delete carries no values. */
	n = put_bytes(buf, sizeof buf, "t", "P1", h - 1,
		      MSCE__CHANGE__OP__DELETE);
	assert_int_equal(open_entry(f, buf, n), 0);
	/* Back to the first record after another: the mark is looked up
	 * again, not kept from P2. */
	n = put_bytes(buf, sizeof buf, "t", "P1", h - 1, 0);
	assert_int_equal(open_entry(f, buf, n), LOG_REDACTED);
}

/* Every cut of a put: the ones the full decode takes as a put of t/P1
 * (op is PUT when absent) are redacted, the others pass as they are. */
static void truncated(void **state)
{
	struct fix *f = *state;
	uint8_t buf[512];
	size_t n = put_bytes(buf, sizeof buf, "t", "P1", f->mark.hlc - 1, 0);
	int redacted = 0;

	for (size_t cut = 0; cut <= n; cut++) {
		uint8_t *p = malloc(cut ? cut : 1); /* ASan sees overreads */
		memcpy(p, buf, cut);
		redacted += open_entry(f, p, cut) == LOG_REDACTED;
		free(p);
	}
	assert_true(redacted > 1); /* the whole put, and cuts at fields */
}

/* Hand-made wire: wrong wire types, groups, unknown fields, overlong
 * varints, lengths past the end, an op out of range. */
static void malformed(void **state)
{
	struct fix *f = *state;
	uint8_t hlc[8];
	le64(hlc, f->mark.hlc - 1);
	/* origin 1, hlc, "t", "P1" */
	const uint8_t head[] = {0x08,	0x01,	0x19,	hlc[0], hlc[1], hlc[2],
				hlc[3], hlc[4], hlc[5], hlc[6], hlc[7], 0x22,
				0x01,	't',	0x2a,	0x02,	'P',	'1'};
	static const uint8_t tails[][12] = {
	    {0},				  /* nothing more: a put */
	    {0x30, 0x00},			  /* op PUT, spelt out */
	    {0x30, 0x01},			  /* op DELETE */
	    {0x30, 0x05},			  /* op unknown */
	    {0x55, 1, 2, 3, 4},			  /* unknown fixed32 field 10 */
	    {0x59, 1, 2, 3, 4, 5, 6, 7, 8},	  /* unknown fixed64 field 11 */
	    {0x62, 0x02, 'x', 'y'},		  /* unknown bytes field 12 */
	    {0x0a, 0x01, 'x'},			  /* origin as bytes */
	    {0x32, 0x00},			  /* op as bytes */
	    {0x1d, 1, 2, 3, 4},			  /* hlc as fixed32 */
	    {0x3b, 0x3c},			  /* a group (field 7) */
	    {0x3c},				  /* a lone group end */
	    {0x00, 0x00},			  /* field 0 */
	    {0x3a, 0x7f},			  /* length past the end */
	    {0x3a, 0xff, 0xff, 0xff, 0xff, 0x0f}, /* 4 GiB */
	    {0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	     0x01},	  /* an 11-byte varint */
	    {0x08, 0x80}, /* a cut varint */
	    {0x22, 0x00}, /* collection "" again */
	};
	static const size_t tlen[] = {0, 2, 2, 2, 5, 9, 4,  3, 2,
				      5, 2, 1, 2, 2, 6, 12, 2, 2};
	uint8_t buf[64];

	assert_int_equal(sizeof tails / sizeof tails[0],
			 sizeof tlen / sizeof tlen[0]);
	for (size_t i = 0; i < sizeof tlen / sizeof tlen[0]; i++) {
		memcpy(buf, head, sizeof head);
		memcpy(buf + sizeof head, tails[i], tlen[i]);
		int rc = open_entry(f, buf, sizeof head + tlen[i]);
		if (i == 0 || i == 1 || i == 4 || i == 5 || i == 6)
			assert_int_equal(rc, LOG_REDACTED);
		if (i == 2 || i == 3 || i >= 7)
			assert_int_equal(rc, 0);
	}
	/* Not a change at all. */
	assert_int_equal(open_entry(f, (const uint8_t *)"\xff", 1), 0);
	assert_int_equal(open_entry(f, (const uint8_t *)"", 0), 0);
}

/* Random byte flips of a put, held to the full decode. */
static void mangled(void **state)
{
	struct fix *f = *state;
	uint64_t seed = tu_seed("log_place_mangled");
	uint8_t buf[512], p[512];
	size_t n = put_bytes(buf, sizeof buf, "t", "P1", f->mark.hlc - 1, 0);

	for (int i = 0; i < 20000; i++) {
		memcpy(p, buf, n);
		for (int k = 1 + (int)tu_below(&seed, 3); k > 0; k--)
			p[tu_below(&seed, n)] = (uint8_t)tu_rand(&seed);
		/* 0xE1 and 0xE2 start sealed and shredded entries, which
		 * are not read as plain ones (store_crypt.c). */
		if (p[0] == 0xE1 || p[0] == 0xE2)
			p[0] = buf[0];
		open_entry(f, p, n - tu_below(&seed, 4));
	}
}

/* Out of memory while decoding the place: an error, never a put read
 * back with its values for want of knowing better. */
static void out_of_memory(void **state)
{
	struct fix *f = *state;
	uint8_t buf[512];
	size_t n = put_bytes(buf, sizeof buf, "t", "P1", f->mark.hlc - 1, 0);
	MDB_val v = {n, buf};
	const uint8_t *out;
	size_t outlen;
	struct err e;

	st_logbuf_free(&f->b);
	fault_arm(FAULT_ALLOC, 1, 0);
	assert_int_equal(
	    st_log_open(f->s, f->txn, 1, 7, &v, &f->b, &out, &outlen, &e),
	    MSCE_ENOMEM);
	fault_clear(FAULT_ALLOC);
	assert_int_equal(open_entry(f, buf, n), LOG_REDACTED);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(puts_and_deletes, setup, teardown),
	    cmocka_unit_test_setup_teardown(truncated, setup, teardown),
	    cmocka_unit_test_setup_teardown(malformed, setup, teardown),
	    cmocka_unit_test_setup_teardown(mangled, setup, teardown),
	    cmocka_unit_test_setup_teardown(out_of_memory, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
