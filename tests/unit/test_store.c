/* SPDX-License-Identifier: Apache-2.0 */
/* The LMDB store: local writes, remote changes in any interleaving with
 * duplicates, conflicts, tombstones, validation, bad input, map growth,
 * log truncation and snapshots. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <sys/stat.h>
#include <unistd.h>

#include "msce.pb-c.h"
#include "bounds.h"
#include "fault.h"
#include "hlc.h"
#include "storeutil.h"

#define T0 1700000000000ull

static struct store *open_node(const char *dir, uint32_t id)
{
	struct store_options o = {.node_id = id, .cluster = "test"};
	struct store *s;
	struct err e;
	int rc = store_open(dir, &o, &s, &e);
	if (rc)
		fprintf(stderr, "store_open: %s\n", e.msg);
	assert_int_equal(rc, 0);
	su_writer(s);
	return s;
}

static char *subdir(const char *root, const char *name)
{
	char *p = malloc(strlen(root) + strlen(name) + 2);
	sprintf(p, "%s/%s", root, name);
	return p;
}

static void refuses_other_node_or_cluster(void **state)
{
	(void)state;
	char *dir = tu_tmpdir();
	struct store *s = open_node(dir, 3);
	struct store_options o = {.node_id = 4, .cluster = "test"};
	struct err e;

	store_close(s);
	assert_int_equal(store_open(dir, &o, &s, &e), MSCE_EMISMATCH);
	assert_non_null(strstr(e.msg, "node 3"));
	o.node_id = 3;
	o.cluster = "other";
	assert_int_equal(store_open(dir, &o, &s, &e), MSCE_EMISMATCH);
	assert_non_null(strstr(e.msg, "cluster"));
	tu_rmrf(dir);
}

struct keys {
	char k[64][32];
	int n;
};
static int keys_cb(void *ctx, const struct store_record_view *r)
{
	struct keys *k = ctx;
	snprintf(k->k[k->n++], 32, "%.*s", (int)r->key_len, r->key);
	return 0;
}

static void put_get_scan(void **state)
{
	(void)state;
	char *dir = tu_tmpdir();
	struct store *s = open_node(dir, 1);
	char key[16];
	struct keys ks;

	for (int i = 0; i < 20; i++) {
		snprintf(key, sizeof key, "%c%02d", i < 10 ? 'a' : 'b', i);
		assert_int_equal(su_put(s, "t", key, "f", key, T0, NULL), 0);
	}
	assert_int_equal(su_put(s, "u", "a00", "f", "other", T0, NULL), 0);
	assert_string_equal(su_get(s, "t", "a03", "f"), "a03");
	assert_null(su_get(s, "t", "zz", "f"));

	struct store_scan q = {.coll = "t", .coll_len = 1, .prefix = "a",
			       .prefix_len = 1};
	memset(&ks, 0, sizeof ks);
	assert_int_equal(store_scan(s, &q, keys_cb, &ks, NULL), 0);
	assert_int_equal(ks.n, 10);
	/* Limit and cursor walk the same keys in pages. */
	q.prefix = NULL;
	q.prefix_len = 0;
	q.limit = 7;
	int total = 0;
	char last[32] = "";
	for (int page = 0; page < 10; page++) {
		memset(&ks, 0, sizeof ks);
		assert_int_equal(store_scan(s, &q, keys_cb, &ks, NULL), 0);
		if (ks.n == 0)
			break;
		assert_true(strcmp(ks.k[0], last) > 0);
		total += ks.n;
		strcpy(last, ks.k[ks.n - 1]);
		q.after = last;
		q.after_len = strlen(last);
	}
	assert_int_equal(total, 20);
	/* Range [a05, b12). */
	memset(&ks, 0, sizeof ks);
	struct store_scan r = {.coll = "t", .coll_len = 1, .after = "a04",
			       .after_len = 3, .end = "b12", .end_len = 3};
	assert_int_equal(store_scan(s, &r, keys_cb, &ks, NULL), 0);
	assert_int_equal(ks.n, 7);
	assert_string_equal(ks.k[0], "a05");
	assert_string_equal(ks.k[6], "b11");
	store_close(s);
	tu_rmrf(dir);
}

/* Three origins write to a few shared keys, seeing each other's changes
 * at random moments; then the union of their logs is delivered to fresh
 * stores in random interleavings with duplicates. */
static void random_orders_converge(void **state)
{
	(void)state;
	uint64_t rs = tu_seed("random_orders_converge");
	char *root = tu_tmpdir();
	struct store *o[3];
	char *dirs[3];
	uint8_t ref_dump[32], ref_digest[32];
	struct su_text ref_conf, conf;
	static const char *fields[] = {"phone", "email", "address", "name"};

	for (int i = 0; i < 3; i++) {
		char name[8];
		snprintf(name, sizeof name, "o%d", i + 1);
		dirs[i] = subdir(root, name);
		o[i] = open_node(dirs[i], (uint32_t)i + 1);
	}
	for (int step = 0; step < 300; step++) {
		int who = (int)tu_below(&rs, 3);
		char key[8];
		uint64_t wall = T0 + (uint64_t)step * 3 + tu_below(&rs, 3);
		snprintf(key, sizeof key, "k%d", (int)tu_below(&rs, 6));
		if (tu_below(&rs, 4) == 0)
			assert_int_equal(su_sync(o[tu_below(&rs, 3)], o[who],
						 wall),
					 0);
		if (tu_below(&rs, 12) == 0) {
			assert_int_equal(su_del(o[who], "t", key, wall), 0);
		} else {
			char val[16];
			snprintf(val, sizeof val, "%d-%d", who, step);
			assert_int_equal(su_put(o[who], "t", key,
						fields[tu_below(&rs, 4)], val,
						wall, NULL),
					 0);
		}
	}
	/* All origins' logs, per origin in order. */
	struct su_blobs *logs[3];
	for (int i = 0; i < 3; i++) {
		logs[i] = calloc(1, sizeof *logs[i]);
		su_log(o[i], (uint32_t)i + 1, 1, logs[i]);
		assert_int_equal(logs[i]->n,
				 store_vv_get(o[i], (uint32_t)i + 1).seq);
	}
	for (int trial = 0; trial < 12; trial++) {
		char name[16];
		snprintf(name, sizeof name, "r%d", trial);
		char *d = subdir(root, name);
		struct store *r = open_node(d, 9);
		size_t next[3] = {0, 0, 0};
		for (;;) {
			int left = 0;
			for (int i = 0; i < 3; i++)
				left += next[i] < logs[i]->n;
			if (!left)
				break;
			int i = (int)tu_below(&rs, 3);
			if (next[i] >= logs[i]->n)
				continue;
			/* A batch from origin i, sometimes starting a few
			 * changes back, as a second link would deliver. */
			size_t from = next[i];
			if (from > 0 && tu_below(&rs, 3) == 0)
				from -= tu_below(&rs, from) + 1;
			size_t cnt = 1 + tu_below(&rs, 8);
			if (from + cnt > logs[i]->n)
				cnt = logs[i]->n - from;
			struct store_apply_result res;
			struct err e;
			assert_int_equal(store_apply(r, logs[i]->b + from, cnt,
						     T0, 60000, &res, &e),
					 0);
			assert_int_equal(res.consumed, cnt);
			if (from + cnt > next[i])
				next[i] = from + cnt;
		}
		uint8_t dump[32], dig[32];
		su_dump(r, dump);
		store_digest(r, dig);
		su_conflicts(r, &conf);
		if (trial == 0) {
			memcpy(ref_dump, dump, 32);
			memcpy(ref_digest, dig, 32);
			ref_conf = conf;
			printf("converged with %d open conflicts\n", conf.n);
			assert_true(conf.n > 0);
		} else {
			assert_memory_equal(dump, ref_dump, 32);
			assert_memory_equal(dig, ref_digest, 32);
			assert_string_equal(conf.buf, ref_conf.buf);
		}
		store_close(r);
		tu_rmrf(d);
	}
	/* The origins themselves converge to the same state once synced. */
	for (int round = 0; round < 2; round++)
		for (int i = 0; i < 3; i++)
			for (int j = 0; j < 3; j++)
				if (i != j)
					assert_int_equal(
						su_sync(o[i], o[j], T0), 0);
	for (int i = 0; i < 3; i++) {
		uint8_t dump[32], dig[32];
		su_dump(o[i], dump);
		store_digest(o[i], dig);
		assert_memory_equal(dump, ref_dump, 32);
		assert_memory_equal(dig, ref_digest, 32);
		store_close(o[i]);
		su_blobs_free(logs[i]);
		free(logs[i]);
		free(dirs[i]);
	}
	tu_rmrf(root);
}

static void conflicts_detected_and_resolved(void **state)
{
	(void)state;
	char *root = tu_tmpdir();
	char *d1 = subdir(root, "a"), *d2 = subdir(root, "b");
	struct store *a = open_node(d1, 1), *b = open_node(d2, 2);
	struct su_text ca, cb;
	struct store_written w;

	assert_int_equal(su_put(a, "t", "p", "phone", "111", T0, NULL), 0);
	assert_int_equal(su_sync(a, b, T0), 0);
	/* A clean overwrite (b saw a's value): no conflict anywhere. */
	assert_int_equal(su_put(b, "t", "p", "phone", "222", T0 + 10, NULL), 0);
	assert_int_equal(su_sync(b, a, T0), 0);
	su_conflicts(a, &ca);
	su_conflicts(b, &cb);
	assert_int_equal(ca.n, 0);
	assert_int_equal(cb.n, 0);
	assert_string_equal(su_get(a, "t", "p", "phone"), "222");
	/* Concurrent writes to the same field at both nodes. */
	assert_int_equal(su_put(a, "t", "p", "phone", "333", T0 + 20, NULL), 0);
	assert_int_equal(su_put(b, "t", "p", "phone", "444", T0 + 30, NULL), 0);
	assert_int_equal(su_sync(a, b, T0), 0);
	assert_int_equal(su_sync(b, a, T0), 0);
	su_conflicts(a, &ca);
	su_conflicts(b, &cb);
	assert_int_equal(ca.n, 1);
	assert_string_equal(ca.buf, cb.buf);
	assert_string_equal(su_get(a, "t", "p", "phone"), "444");
	assert_string_equal(su_get(b, "t", "p", "phone"), "444");
	/* Resolving: a new value written over the winner at a. */
	assert_int_equal(su_put(a, "t", "p", "phone", "555", T0 + 40, &w), 0);
	assert_int_equal(su_sync(a, b, T0), 0);
	su_conflicts(a, &ca);
	su_conflicts(b, &cb);
	assert_int_equal(ca.n, 0);
	assert_int_equal(cb.n, 0);
	store_close(a);
	store_close(b);
	free(d1);
	free(d2);
	tu_rmrf(root);
}

static int no_record_cb(void *ctx, const struct store_record_view *r)
{
	(void)ctx;
	(void)r;
	return 0;
}

/* A registration deleted at a while b, not having seen the delete,
 * changes one field it had (a delete conflict, listed) or adds one it
 * had not (listed nowhere): get's message sends the reader to the
 * conflicts only in the first case. */
static void incomplete_after_delete_names_what_is_listed(void **state)
{
	(void)state;
	char *root = tu_tmpdir();
	char *d1 = subdir(root, "a"), *d2 = subdir(root, "b");
	struct store *a = open_node(d1, 1), *b = open_node(d2, 2);
	struct su_text ca;
	struct err e;

	for (int k = 0; k < 2; k++) {
		const char *key = k ? "POL:CD457" : "POL:CD456";
		uint64_t t = T0 + (uint64_t)k * 1000;

		const char *fv[][2] = {{"name", "Ola"},
				       {"nationality", "POL"},
				       {"document_type", "passport"},
				       {"document_number", key + 4},
				       {"phone", "+48600000001"}};
		struct store_field_in f[5];
		struct store_written out;
		size_t nf = k ? 4 : 5; /* k 1: no phone yet */

		for (size_t i = 0; i < nf; i++)
			f[i] = (struct store_field_in){
			    fv[i][0], strlen(fv[i][0]),
			    (const uint8_t *)fv[i][1], strlen(fv[i][1]), 0,
			    {0, 0}};
		struct store_write w = {STORE_PUT, "registration", 12, key,
					9, f, nf, 0};
		assert_int_equal(store_write(a, &w, 1, t, &out, &e), 0);
		assert_int_equal(out.err.code, 0);
		assert_int_equal(su_sync(a, b, T0), 0);
		assert_int_equal(su_del(a, "registration", key, t + 200), 0);
		/* k 0: the phone b changes; k 1: a phone b adds. */
		assert_int_equal(su_put(b, "registration", key, "phone",
					"+48600000002", t + 300, NULL),
				 0);
		assert_int_equal(su_sync(b, a, T0), 0);
		assert_int_equal(su_sync(a, b, T0), 0);
		su_conflicts(a, &ca);
		assert_int_equal(ca.n, 1); /* k 0's, in both rounds */
		assert_int_equal(store_get(a, "registration", 12, key, 9,
					   no_record_cb, NULL, &e),
				 MSCE_ENOTFOUND);
		if (k == 0)
			assert_non_null(strstr(e.msg, "see the conflicts"));
		else
			assert_non_null(strstr(e.msg, "no conflict is listed"));
	}
	store_close(a);
	store_close(b);
	free(d1);
	free(d2);
	tu_rmrf(root);
}

static void tombstones_against_earlier_and_later_writes(void **state)
{
	(void)state;
	char *root = tu_tmpdir();
	char *d1 = subdir(root, "a"), *d2 = subdir(root, "b");
	struct store *a = open_node(d1, 1), *b = open_node(d2, 2);
	uint8_t da[32], db[32];

	assert_int_equal(su_put(a, "t", "r", "x", "1", T0, NULL), 0);
	assert_int_equal(su_put(a, "t", "r", "y", "1", T0, NULL), 0);
	assert_int_equal(su_sync(a, b, T0), 0);
	/* b writes x before a's delete (earlier clock), and y after. */
	assert_int_equal(su_put(b, "t", "r", "x", "early", T0 + 100, NULL), 0);
	assert_int_equal(su_del(a, "t", "r", T0 + 200), 0);
	assert_null(su_get(a, "t", "r", "x"));
	assert_int_equal(su_put(b, "t", "r", "y", "late", T0 + 300, NULL), 0);
	/* Delivered in opposite orders at the two nodes. */
	assert_int_equal(su_sync(b, a, T0), 0);
	assert_int_equal(su_sync(a, b, T0), 0);
	for (int i = 0; i < 2; i++) {
		struct store *s = i ? b : a;
		assert_null(su_get(s, "t", "r", "x"));
		assert_string_equal(su_get(s, "t", "r", "y"), "late");
	}
	store_digest(a, da);
	store_digest(b, db);
	assert_memory_equal(da, db, 32);
	assert_int_equal(store_tombstones(a), 1);
	/* Deleting everything leaves an empty digest contribution. */
	assert_int_equal(su_del(b, "t", "r", T0 + 400), 0);
	assert_int_equal(su_sync(b, a, T0), 0);
	assert_null(su_get(a, "t", "r", "y"));
	store_digest(a, da);
	uint8_t zero[32] = {0};
	assert_memory_equal(da, zero, 32);
	/* A write after GC would be new: GC only below a version. */
	size_t dropped;
	struct vv_entry upto = {store_writer(b, NULL), 0,
				hlc_make(T0 + 400, 100), 0};
	assert_int_equal(store_gc_tombstones(a, &upto, 1, &dropped, NULL), 0);
	assert_int_equal(dropped, 1);
	assert_int_equal(store_tombstones(a), 0);
	store_close(a);
	store_close(b);
	free(d1);
	free(d2);
	tu_rmrf(root);
}

static void refused_input_changes_nothing(void **state)
{
	(void)state;
	char *dir = tu_tmpdir();
	struct store *s = open_node(dir, 1);
	uint8_t before[32], after[32], dump1[32], dump2[32];
	struct err e;
	struct store_written out;

	assert_int_equal(su_put(s, "t", "k", "f", "v", T0, NULL), 0);
	store_digest(s, before);
	su_dump(s, dump1);
	/* Over the limits: collection, key, field name, value. */
	char big[MSCE_MAX_VALUE + 2];
	memset(big, 'x', sizeof big - 1);
	big[sizeof big - 1] = 0;
	assert_int_not_equal(su_put(s, "Bad-Name", "k", "f", "v", T0, NULL), 0);
	assert_int_not_equal(su_put(s, "t", big + sizeof big - 300, "f", "v",
				    T0, NULL),
			     0);
	assert_int_not_equal(su_put(s, "t", "k", big + sizeof big - 200, "v",
				    T0, NULL),
			     0);
	assert_int_equal(su_put(s, "t", "k", "f", big, T0, &out), MSCE_ETOOBIG);
	assert_non_null(strstr(out.err.msg, "65536"));
	assert_int_not_equal(su_put(s, "_sys", "k", "f", "v", T0, NULL), 0);
	/* A domain collection with a bad field names the field. */
	assert_int_equal(su_put(s, "registration", "FRA:12AB",
				"birth_date", "1990-13-45", T0, &out),
			 MSCE_EINVAL);
	assert_non_null(strstr(out.err.msg, "birth_date"));
	/* Malformed protobuf and structurally bad changes. */
	uint8_t junk[64];
	for (size_t i = 0; i < sizeof junk; i++)
		junk[i] = (uint8_t)(i * 37 + 11);
	struct store_blob bl = {junk, sizeof junk, NULL};
	struct store_apply_result res;
	assert_int_equal(store_apply(s, &bl, 1, T0, 60000, &res, &e),
			 MSCE_ECORRUPT);
	Msce__Change c = MSCE__CHANGE__INIT;
	c.origin = 2;
	c.seq = 1;
	c.hlc = hlc_make(T0, 0);
	c.collection = "t";
	c.key = "k\x01";
	c.op = MSCE__CHANGE__OP__DELETE;
	uint8_t buf[256];
	bl.data = buf;
	bl.len = msce__change__pack(&c, buf);
	assert_int_equal(store_apply(s, &bl, 1, T0, 60000, &res, &e),
			 MSCE_ECORRUPT);
	store_digest(s, after);
	su_dump(s, dump2);
	assert_memory_equal(before, after, 32);
	assert_memory_equal(dump1, dump2, 32);
	assert_int_equal(store_vv_get(s, 1).seq, 1);
	assert_int_equal(store_vv_get(s, 2).seq, 0);
	store_close(s);
	tu_rmrf(dir);
}

/* n fields from name, value pairs. Returns n. */
static size_t kv_fields(struct store_field_in *f, const char *const *kv,
			size_t n)
{
	for (size_t i = 0; i < n; i++)
		f[i] = (struct store_field_in){
		    .name = kv[2 * i],
		    .name_len = strlen(kv[2 * i]),
		    .value = (const uint8_t *)kv[2 * i + 1],
		    .value_len = strlen(kv[2 * i + 1]),
		};
	return n;
}

/* A registration FRA:<doc>, valid unless birth is not a date. */
static size_t person_fields(struct store_field_in *f, const char *doc,
			    const char *birth)
{
	const char *kv[] = {"name", "A B", "nationality", "FRA",
			    "document_type", "passport", "document_number",
			    doc, "birth_date", birth};
	return kv_fields(f, kv, birth ? 5 : 4);
}

static size_t case_fields(struct store_field_in *f, const char *person)
{
	const char *kv[] = {"person", person, "category", "travel",
			    "status", "open", "center", "a"};
	return kv_fields(f, kv, 4);
}

/* STORE_W_PERSON in one batch: a case sees the registrations written
 * before it in the same transaction (not after it, not one refused), as
 * if each write were alone; a deleted registration still counts. The
 * check is local admission only: another node merges the case it let
 * through without it, whatever that node holds. */
static void case_person_seen_in_its_own_batch(void **state)
{
	(void)state;
	char *root = tu_tmpdir();
	char *d1 = subdir(root, "a"), *d2 = subdir(root, "b");
	struct store *a = open_node(d1, 1), *b = open_node(d2, 2);
	struct store_field_in f[8][5];
	struct store_written out[8];
	uint8_t da[32], db[32];
	struct err e;
	enum { P = STORE_PUT | STORE_W_PERSON };
	struct {
		int op;
		const char *coll, *key;
		size_t nf;
		int want;
	} w[8] = {
	    {STORE_PUT, "registration", "FRA:B1",
	     person_fields(f[0], "B1", NULL), 0},
	    {P, "case", "k1", case_fields(f[1], "FRA:B1"), 0},
	    {P, "case", "k2", case_fields(f[2], "FRA:B2"), MSCE_ENOTFOUND},
	    {STORE_PUT, "registration", "FRA:B2",
	     person_fields(f[3], "B2", NULL), 0},
	    {STORE_PUT, "registration", "FRA:B3",
	     person_fields(f[4], "B3", "1990-13-45"), MSCE_EINVAL},
	    {P, "case", "k3", case_fields(f[5], "FRA:B3"), MSCE_ENOTFOUND},
	    {STORE_PUT, "case", "k4", case_fields(f[6], "FRA:B9"), 0},
	    {P, "case", "k5", case_fields(f[7], "FRA:D1"), 0},
	};
	struct store_write sw[8];

	/* D1 was registered and deleted before: it still counts. */
	struct store_field_in fd[5];
	struct store_write reg = {.op = STORE_PUT,
				  .coll = "registration",
				  .coll_len = 12,
				  .key = "FRA:D1",
				  .key_len = 6,
				  .fields = fd,
				  .nfields = person_fields(fd, "D1", NULL)};
	assert_int_equal(store_write(a, &reg, 1, T0, out, &e), 0);
	assert_int_equal(out[0].err.code, 0);
	assert_int_equal(su_del(a, "registration", "FRA:D1", T0), 0);
	for (size_t i = 0; i < 8; i++)
		sw[i] = (struct store_write){.op = w[i].op,
					     .coll = w[i].coll,
					     .coll_len = strlen(w[i].coll),
					     .key = w[i].key,
					     .key_len = strlen(w[i].key),
					     .fields = f[i],
					     .nfields = w[i].nf};
	assert_int_equal(store_write(a, sw, 8, T0 + 1, out, &e), 0);
	for (size_t i = 0; i < 8; i++) {
		if (out[i].err.code != w[i].want)
			fprintf(stderr, "write %zu: %s\n", i, out[i].err.msg);
		assert_int_equal(out[i].err.code, w[i].want);
	}
	assert_non_null(strstr(out[2].err.msg, "case.person: no registration "
					       "\"FRA:B2\""));
	assert_non_null(strstr(out[5].err.msg, "\"FRA:B3\""));
	assert_null(su_get(a, "case", "k2", "person"));
	assert_null(su_get(a, "case", "k3", "person"));
	assert_string_equal(su_get(a, "case", "k1", "person"), "FRA:B1");
	assert_string_equal(su_get(a, "case", "k5", "person"), "FRA:D1");
	/* b has no registration at all and merges every case a wrote. */
	assert_int_equal(su_sync(a, b, T0 + 2), 0);
	assert_string_equal(su_get(b, "case", "k4", "person"), "FRA:B9");
	assert_string_equal(su_get(b, "case", "k1", "person"), "FRA:B1");
	store_digest(a, da);
	store_digest(b, db);
	assert_memory_equal(da, db, 32);
	store_close(a);
	store_close(b);
	tu_rmrf(root);
	free(d1);
	free(d2);
}

/* The version vector holds MSCE_MAX_ORIGINS origins, no more, by any path:
 * a change of one more origin is refused (ETOOBIG, nothing applied), and so
 * is a local write that would add this node's writer; the store goes on.
 * (An insider that made 128 incarnations once took a node past it, and the
 * nested apply's copy of the vector overran the stack.) */
/* Fills dst's vector: 128 incarnations of node 2, made at src, one
 * change each. */
static void fill_vector(struct store *dst, struct store *src)
{
	struct store_apply_result res;
	struct err e;
	char key[32];

	for (uint32_t k = 1; k <= MSCE_MAX_ORIGINS; k++) {
		struct su_blobs bl = {0};
		uint32_t origin = (k << 16) | 2;
		assert_int_equal(store_set_writer(src, origin, 0, T0 + k, &e),
				 0);
		snprintf(key, sizeof key, "k%u", k);
		assert_int_equal(su_put(src, "t", key, "v", "x", T0 + k, NULL),
				 0);
		su_log(src, origin, 1, &bl);
		assert_int_equal(store_apply(dst, bl.b, bl.n, T0 + k, 60000,
					     &res, &e),
				 0);
		su_blobs_free(&bl);
	}
}

static void origin_space_bounded(void **state)
{
	(void)state;
	char *root = tu_tmpdir();
	char *d1 = subdir(root, "a"), *d2 = subdir(root, "b"),
	     *d3 = subdir(root, "c");
	struct store *dst = open_node(d1, 1), *src = open_node(d2, 2),
		     *late = open_node(d3, 3);
	struct store_apply_result res;
	struct err e;

	fill_vector(dst, src);
	/* Full: dst's own first write would be origin 129. */
	assert_int_equal(su_put(dst, "t", "mine", "v", "x", T0 + 200, NULL),
			 MSCE_ETOOBIG);
	/* And so would another node's change. */
	struct su_blobs bl = {0};
	assert_int_equal(su_put(late, "t", "late", "v", "x", T0 + 200, NULL),
			 0);
	su_log(late, 3, 1, &bl);
	assert_int_equal(store_apply(dst, bl.b, bl.n, T0 + 200, 60000, &res,
				     &e),
			 MSCE_ETOOBIG);
	assert_int_equal(res.consumed, 0);
	assert_non_null(strstr(e.msg, "limit 128"));
	su_blobs_free(&bl);
	assert_string_equal(su_get(dst, "t", "k128", "v"), "x");
	assert_null(su_get(dst, "t", "late", "v"));
	store_close(dst);
	store_close(src);
	store_close(late);
	tu_rmrf(root);
	free(d1);
	free(d2);
	free(d3);
}

/* One encoded change of origin 2 at seq, for apply. */
static size_t forged_change(uint8_t *buf, uint64_t seq, uint64_t hlc,
			    const char *coll, const char *key, int del)
{
	Msce__Change c = MSCE__CHANGE__INIT;
	Msce__FieldWrite f = MSCE__FIELD_WRITE__INIT, *fp = &f;

	c.origin = 2;
	c.seq = seq;
	c.hlc = hlc;
	c.collection = (char *)coll;
	c.key = (char *)key;
	c.op = del ? MSCE__CHANGE__OP__DELETE : MSCE__CHANGE__OP__PUT;
	if (!del) {
		f.name = "op";
		f.value.data = (uint8_t *)"erase";
		f.value.len = 5;
		c.fields = &fp;
		c.n_fields = 1;
	}
	return msce__change__pack(&c, buf);
}

/* _audit is append-only: from a peer, only a put keyed by the change's own
 * hlc and origin (as the node writes its entries) is taken; a delete or a
 * rewrite of an entry, or an entry under another key, is refused as a
 * forgery (EAUTH) and nothing of it applied. */
static void audit_forgeries_refused(void **state)
{
	(void)state;
	char *root = tu_tmpdir();
	char *d1 = subdir(root, "a");
	struct store *dst = open_node(d1, 1);
	struct store_apply_result res;
	struct err e;
	uint8_t buf[3][256];
	char key[48];
	uint64_t hlc = hlc_make(T0, 0);
	struct store_blob b[3];

	snprintf(key, sizeof key, "%020llu/%u", (unsigned long long)hlc, 2u);
	b[0] = (struct store_blob){buf[0],
				   forged_change(buf[0], 1, hlc, "_audit", key,
						 0),
				   NULL};
	assert_int_equal(store_apply(dst, b, 1, T0, 60000, &res, &e), 0);
	assert_int_equal(res.applied, 1);
	/* Its origin deletes it, or rewrites it, or writes under a key
	 * that is not its own: all refused. */
	b[0] = (struct store_blob){buf[0],
				   forged_change(buf[0], 2, hlc + 1, "_audit",
						 key, 1),
				   NULL};
	b[1] = (struct store_blob){buf[1],
				   forged_change(buf[1], 2, hlc + 1, "_audit",
						 key, 0),
				   NULL};
	b[2] = (struct store_blob){buf[2],
				   forged_change(buf[2], 2, hlc + 1, "_audit",
						 "forged-entry", 0),
				   NULL};
	for (int k = 0; k < 3; k++) {
		assert_int_equal(store_apply(dst, &b[k], 1, T0, 60000, &res,
					     &e),
				 MSCE_EAUTH);
		assert_int_equal(res.consumed, 0);
		assert_non_null(strstr(e.msg, "not an entry its origin"));
	}
	assert_string_equal(su_get(dst, "_audit", key, "op"), "erase");
	assert_int_equal(store_vv_get(dst, 2).seq, 1);
	store_close(dst);
	tu_rmrf(root);
	free(d1);
}

static void gaps_and_clock_skew_stop_the_batch(void **state)
{
	(void)state;
	char *root = tu_tmpdir();
	char *d1 = subdir(root, "a"), *d2 = subdir(root, "b");
	struct store *a = open_node(d1, 1), *b = open_node(d2, 2);
	struct su_blobs *bl = calloc(1, sizeof *bl);
	struct store_apply_result res;
	struct err e;

	for (int i = 0; i < 5; i++)
		assert_int_equal(su_put(a, "t", "k", "f", "v", T0 + (uint64_t)i,
					NULL),
				 0);
	/* Two changes made 10 minutes in the future. */
	for (int i = 0; i < 2; i++)
		assert_int_equal(
			su_put(a, "t", "k", "f", "w", T0 + 600000, NULL), 0);
	su_log(a, 1, 1, bl);
	assert_int_equal(bl->n, 7);
	/* Skipping change 1 is a gap: nothing applied. */
	assert_int_equal(store_apply(b, bl->b + 1, 2, T0, 60000, &res, &e),
			 MSCE_EGAP);
	assert_int_equal(res.consumed, 0);
	assert_int_equal(store_vv_get(b, 1).seq, 0);
	/* The first five apply; the sixth is too far ahead and waits. */
	assert_int_equal(store_apply(b, bl->b, 7, T0 + 10, 60000, &res, &e),
			 MSCE_ECLOCK);
	assert_non_null(strstr(e.msg, "ahead"));
	assert_int_equal(res.consumed, 5);
	assert_int_equal(store_vv_get(b, 1).seq, 5);
	/* Once our clock is within the limit they apply. */
	assert_int_equal(store_apply(b, bl->b, 7, T0 + 600000, 60000, &res, &e),
			 0);
	assert_int_equal(res.duplicates, 5);
	assert_int_equal(res.applied, 2);
	su_blobs_free(bl);
	free(bl);
	store_close(a);
	store_close(b);
	free(d1);
	free(d2);
	tu_rmrf(root);
}

static void map_grows_then_full_is_clear(void **state)
{
	(void)state;
	char *dir = tu_tmpdir();
	struct store_options o = {.node_id = 1, .cluster = "test",
				  .map_size = 1 << 20, .max_map_size = 8 << 20};
	struct store *s;
	struct err e;
	char key[32], val[4000];
	int i, rc = 0;

	memset(val, 'v', sizeof val - 1);
	val[sizeof val - 1] = 0;
	assert_int_equal(store_open(dir, &o, &s, &e), 0);
	su_writer(s);
	/* Well past 1 MiB: the map must grow. */
	for (i = 0; i < 600; i++) {
		snprintf(key, sizeof key, "k%05d", i);
		rc = su_put(s, "t", key, "f", val, T0, NULL);
		if (rc)
			break;
	}
	assert_int_equal(rc, 0);
	/* Past the 8 MiB cap: a clear error, nothing lost. */
	struct store_written out;
	for (; i < 5000; i++) {
		snprintf(key, sizeof key, "k%05d", i);
		struct store_field_in f = {"f", 1, (const uint8_t *)val,
					   strlen(val), 0, {0, 0}};
		struct store_write w = {STORE_PUT, "t", 1, key, strlen(key),
					&f, 1, 0};
		rc = store_write(s, &w, 1, T0, &out, &e);
		if (rc)
			break;
	}
	assert_int_equal(rc, MSCE_EFULL);
	assert_non_null(strstr(e.msg, "full"));
	uint64_t held = store_vv_get(s, 1).seq;
	assert_int_equal(held, (uint64_t)i);
	assert_string_equal(su_get(s, "t", "k00000", "f"), val);
	store_close(s);
	/* Reopens with everything acknowledged. */
	assert_int_equal(store_open(dir, &o, &s, &e), 0);
	assert_int_equal(store_vv_get(s, 1).seq, held);
	snprintf(key, sizeof key, "k%05d", i - 1);
	assert_string_equal(su_get(s, "t", key, "f"), val);
	store_close(s);
	tu_rmrf(dir);
}

struct collect {
	struct store_snap_record r[64];
	struct record rec[64];
	struct arena a;
	int n;
};

/* Copies a snapshot record out of LMDB memory. */
static int collect_cb(void *ctx, const struct store_record_view *v)
{
	struct collect *cc = ctx;
	cc->rec[cc->n] = *v->rec;
	cc->rec[cc->n].fields = arena_memdup(
		&cc->a, v->rec->fields, v->rec->nfields * sizeof *v->rec->fields);
	for (uint32_t i = 0; i < v->rec->nfields; i++) {
		struct field_state *fs = &cc->rec[cc->n].fields[i];
		fs->name = arena_memdup(&cc->a, fs->name, fs->name_len);
		fs->w.value = arena_memdup(&cc->a, fs->w.value, fs->w.value_len);
		if (fs->nlosers)
			fs->losers = arena_memdup(&cc->a, fs->losers,
						  fs->nlosers *
						      sizeof *fs->losers);
		for (int j = 0; j < fs->nlosers; j++)
			fs->losers[j].value = arena_memdup(
				&cc->a, fs->losers[j].value,
				fs->losers[j].value_len);
	}
	cc->r[cc->n].coll = arena_memdup(&cc->a, v->coll, v->coll_len);
	cc->r[cc->n].coll_len = v->coll_len;
	cc->r[cc->n].key = arena_memdup(&cc->a, v->key, v->key_len);
	cc->r[cc->n].key_len = v->key_len;
	cc->r[cc->n].rec = &cc->rec[cc->n];
	cc->n++;
	return cc->n == 64;
}

static void log_truncation_and_snapshot(void **state)
{
	(void)state;
	char *root = tu_tmpdir();
	char *d1 = subdir(root, "a"), *d2 = subdir(root, "b");
	struct store *a = open_node(d1, 1), *b = open_node(d2, 2);
	struct err e;
	char key[16];

	for (int i = 0; i < 50; i++) {
		snprintf(key, sizeof key, "k%d", i % 20);
		if (i % 9 == 8)
			assert_int_equal(su_del(a, "t", key, T0 + (uint64_t)i),
					 0);
		else
			assert_int_equal(su_put(a, "t", key, "f", key,
						T0 + (uint64_t)i, NULL),
					 0);
	}
	assert_int_equal(su_put(b, "t", "k1", "g", "from-b", T0, NULL), 0);
	assert_int_equal(store_log_truncate(a, 1, 30, &e), 0);
	assert_int_equal(store_vv_get(a, 1).floor, 30);
	struct su_blobs *bl = calloc(1, sizeof *bl);
	assert_int_equal(store_log_read(a, 1, 5, 10, 1 << 20, su_collect, bl,
					&e),
			 MSCE_ENOTFOUND);
	su_log(a, 1, 31, bl);
	assert_int_equal(bl->n, 20);
	su_blobs_free(bl);
	free(bl);

	/* b is below a's floor: it gets a snapshot instead. */
	struct store_snap *sn;
	struct vv_entry vv[8];
	assert_int_equal(store_snap_begin(a, &sn, &e), 0);
	size_t nvv = store_snap_vv(sn, vv, 8);
	/* Writes after the snapshot began are not in it. */
	assert_int_equal(su_put(a, "t", "late", "f", "x", T0 + 99, NULL), 0);
	uint8_t before[32], after[32];
	su_dump(b, before);
	int done = 0, chunks = 0;
	struct store_pos end;
	while (!done) {
		struct collect *c = calloc(1, sizeof *c);
		arena_init(&c->a, 0);
		assert_int_equal(store_snap_next(sn, 300, collect_cb, c, &done,
						 &end, &e),
				 0);
		struct store_snap_chunk ch = {.source = 1,
					      .recs = c->r,
					      .n = (size_t)c->n,
					      .cover = vv,
					      .ncover = nvv,
					      .first = !chunks,
					      .done = done};
		assert_int_equal(store_snap_apply(b, &ch, &e), 0);
		chunks++;
		/* Nothing shows until the last chunk: all or nothing. */
		su_dump(b, after);
		if (!done)
			assert_memory_equal(before, after, 32);
		arena_free(&c->a);
		free(c);
	}
	store_snap_end(sn);
	assert_true(chunks > 1);
	assert_int_equal(store_vv_get(b, 1).seq, 50);
	assert_int_equal(store_vv_get(b, 1).floor, 50);
	/* Then streaming resumes: the late write arrives by log. */
	assert_int_equal(su_sync(a, b, T0), 0);
	assert_int_equal(su_sync(b, a, T0), 0);
	uint8_t da[32], db[32], ua[32], ub[32];
	store_digest(a, da);
	store_digest(b, db);
	su_dump(a, ua);
	su_dump(b, ub);
	assert_memory_equal(da, db, 32);
	assert_memory_equal(ua, ub, 32);
	assert_string_equal(su_get(b, "t", "k1", "g"), "from-b");
	store_close(a);
	store_close(b);
	free(d1);
	free(d2);
	tu_rmrf(root);
}

/* A snapshot that would take the vector past its 128 origins is refused
 * as such (ETOOBIG: no room, not a corrupt snapshot, not a failing
 * store), and nothing of it is merged. */
static void snapshot_without_room_for_an_origin(void **state)
{
	(void)state;
	char *root = tu_tmpdir();
	char *d1 = subdir(root, "a"), *d2 = subdir(root, "b"),
	     *d3 = subdir(root, "c");
	struct store *dst = open_node(d1, 1), *src = open_node(d2, 2),
		     *late = open_node(d3, 3);
	struct store_snap *sn;
	struct vv_entry vv[8];
	struct store_pos end;
	uint8_t before[32], after[32];
	struct err e;
	int done = 0;

	fill_vector(dst, src);
	assert_int_equal(su_put(late, "t", "late", "v", "x", T0 + 200, NULL),
			 0);
	su_dump(dst, before);
	assert_int_equal(store_snap_begin(late, &sn, &e), 0);
	size_t nvv = store_snap_vv(sn, vv, 8);
	struct collect *c = calloc(1, sizeof *c);
	arena_init(&c->a, 0);
	assert_int_equal(
	    store_snap_next(sn, 1 << 20, collect_cb, c, &done, &end, &e), 0);
	assert_true(done);
	struct store_snap_chunk ch = {.source = 3,
				      .recs = c->r,
				      .n = (size_t)c->n,
				      .cover = vv,
				      .ncover = nvv,
				      .first = 1,
				      .done = 1};
	assert_int_equal(store_snap_apply(dst, &ch, &e), MSCE_ETOOBIG);
	assert_non_null(strstr(e.msg, "limit 128"));
	su_dump(dst, after);
	assert_memory_equal(before, after, 32);
	assert_int_equal(store_vv_get(dst, 3).seq, 0);
	assert_int_equal(store_failed(dst), 0);
	store_snap_end(sn);
	arena_free(&c->a);
	free(c);
	store_close(dst);
	store_close(src);
	store_close(late);
	tu_rmrf(root);
	free(d1);
	free(d2);
	free(d3);
}

/* Snapshot chunks of one sender, for interleaving with another's. */
struct snap_feed {
	struct store_snap *sn;
	struct vv_entry vv[8];
	size_t nvv;
	uint32_t source;
	int chunks, done;
};

static void feed_begin(struct snap_feed *f, struct store *from,
		       uint32_t source)
{
	struct err e;
	memset(f, 0, sizeof *f);
	assert_int_equal(store_snap_begin(from, &f->sn, &e), 0);
	f->nvv = store_snap_vv(f->sn, f->vv, 8);
	f->source = source;
}

/* Sends the next chunk to `to`; returns 1 while chunks remain. */
static int feed_next(struct snap_feed *f, struct store *to)
{
	struct collect *c = calloc(1, sizeof *c);
	struct store_pos end;
	struct err e;

	arena_init(&c->a, 0);
	assert_int_equal(store_snap_next(f->sn, 300, collect_cb, c, &f->done,
					 &end, &e),
			 0);
	struct store_snap_chunk ch = {.source = f->source,
				      .recs = c->r,
				      .n = (size_t)c->n,
				      .cover = f->vv,
				      .ncover = f->nvv,
				      .first = !f->chunks,
				      .done = f->done};
	if (store_snap_apply(to, &ch, &e) != 0)
		fail_msg("source %u chunk %d: %s", f->source, f->chunks, e.msg);
	f->chunks++;
	arena_free(&c->a);
	free(c);
	if (f->done)
		store_snap_end(f->sn);
	return !f->done;
}

/* Two senders' snapshots staged at once: finishing (or restarting) one
 * clears its own staging and never the other's. */
static void interleaved_snapshots_keep_each_other(void **state)
{
	(void)state;
	char *root = tu_tmpdir();
	char *d1 = subdir(root, "a"), *d2 = subdir(root, "b"),
	     *d3 = subdir(root, "x");
	struct store *a = open_node(d1, 1), *b = open_node(d2, 2),
		     *x = open_node(d3, 3);
	struct snap_feed fa, fx;
	char key[16];

	for (int i = 0; i < 30; i++) {
		snprintf(key, sizeof key, "a%02d", i);
		assert_int_equal(su_put(a, "t", key, "f", key, T0 + (uint64_t)i,
					NULL),
				 0);
		snprintf(key, sizeof key, "x%02d", i);
		assert_int_equal(su_put(x, "t", key, "f", key, T0 + (uint64_t)i,
					NULL),
				 0);
	}
	/* x's first chunk is staged; then a's snapshot, begun, restarted
	 * half way and done; then the rest of x's. */
	feed_begin(&fx, x, 3);
	assert_true(feed_next(&fx, b));
	feed_begin(&fa, a, 1);
	assert_true(feed_next(&fa, b));
	assert_true(feed_next(&fa, b));
	store_snap_end(fa.sn);
	feed_begin(&fa, a, 1);
	while (feed_next(&fa, b))
		;
	assert_int_equal(store_vv_get(b, 1).seq, 30);
	assert_int_equal(store_vv_get(b, 3).seq, 0);
	while (feed_next(&fx, b))
		;
	assert_int_equal(store_vv_get(b, 3).seq, 30);
	for (int i = 0; i < 60; i++) {
		snprintf(key, sizeof key, "%c%02d", i < 30 ? 'a' : 'x', i % 30);
		const char *got = su_get(b, "t", key, "f");
		if (got == NULL || strcmp(got, key) != 0)
			fail_msg("%s: %s", key, got ? got : "missing");
	}
	/* And x's staging is gone too: a new snapshot of x starts clean. */
	feed_begin(&fx, x, 3);
	while (feed_next(&fx, b))
		;
	assert_string_equal(su_get(b, "t", "x00", "f"), "x00");
	store_close(a);
	store_close(b);
	store_close(x);
	free(d1);
	free(d2);
	free(d3);
	tu_rmrf(root);
}

/* A snapshot of many records merges in one transaction: each record's
 * merge must not keep the memory of the ones before it. */
static void big_snapshot_merges(void **state)
{
	(void)state;
	char *root = tu_tmpdir();
	char *d1 = subdir(root, "a"), *d2 = subdir(root, "b");
	struct store *a = open_node(d1, 1), *b = open_node(d2, 2);
	enum { RECORDS = 20000, FIELDS = 13, BATCH = 500 };
	static char keys[BATCH][16], vals[FIELDS][16], names[FIELDS][8];
	struct store_field_in f[FIELDS];
	struct store_write w[BATCH];
	struct store_written out[BATCH];
	struct err e;

	for (int k = 0; k < FIELDS; k++) {
		snprintf(names[k], sizeof names[k], "f%d", k);
		snprintf(vals[k], sizeof vals[k], "value-%d", k);
		f[k] = (struct store_field_in){names[k], strlen(names[k]),
					       (const uint8_t *)vals[k],
					       strlen(vals[k]), 0, {0, 0}};
	}
	for (int i = 0; i < RECORDS; i += BATCH) {
		for (int j = 0; j < BATCH; j++) {
			snprintf(keys[j], sizeof keys[j], "r%06d", i + j);
			w[j] = (struct store_write){STORE_PUT, "t", 1, keys[j],
						   strlen(keys[j]), f, FIELDS, 0};
		}
		assert_int_equal(store_write(a, w, BATCH, T0 + (uint64_t)i,
					     out, &e),
				 0);
	}
	struct store_snap *sn;
	struct vv_entry vv[8];
	assert_int_equal(store_snap_begin(a, &sn, &e), 0);
	size_t nvv = store_snap_vv(sn, vv, 8);
	int done = 0, chunks = 0;
	struct store_pos end;
	while (!done) {
		struct collect *c = calloc(1, sizeof *c);
		arena_init(&c->a, 0);
		/* Under 64 records a chunk (collect holds 64). */
		assert_int_equal(store_snap_next(sn, 8000, collect_cb, c, &done,
						 &end, &e),
				 0);
		struct store_snap_chunk ch = {.source = 1,
					      .recs = c->r,
					      .n = (size_t)c->n,
					      .cover = vv,
					      .ncover = nvv,
					      .first = !chunks,
					      .done = done};
		if (store_snap_apply(b, &ch, &e) != 0)
			fail_msg("chunk %d: %s", chunks, e.msg);
		chunks++;
		arena_free(&c->a);
		free(c);
	}
	store_snap_end(sn);
	uint8_t da[32], db[32];
	store_digest(a, da);
	store_digest(b, db);
	assert_memory_equal(da, db, 32);
	assert_int_equal(store_vv_get(b, 1).seq, RECORDS);
	store_close(a);
	store_close(b);
	free(d1);
	free(d2);
	tu_rmrf(root);
}

/* ---- decoding ahead (store_prepare) ---- */

struct signed_log {
	struct su_blobs bl;
	struct seg g[64];
	size_t ng;
};

static int sl_seg(void *ctx, const struct seg *g)
{
	struct signed_log *l = ctx;
	if (l->ng == 64)
		return 1;
	l->g[l->ng++] = *g;
	return 0;
}

static struct store *open_signed(const char *dir, uint32_t id)
{
	uint8_t link[32] = {0}, pk[32], sk[64];
	struct store_options o = {.node_id = id, .cluster = "test",
				  .sign_sk = sk};
	struct store_key k;
	struct store *s;
	struct err e;

	link[0] = (uint8_t)id;
	seg_keypair_from_link(link, pk, sk);
	assert_int_equal(store_open(dir, &o, &s, &e), 0);
	su_writer(s);
	/* Everyone knows node 2's key. */
	link[0] = 2;
	seg_keypair_from_link(link, k.pk, sk);
	k.node = 2;
	assert_int_equal(store_set_keys(s, &k, 1, &e), 0);
	return s;
}

/* A batch decoded ahead applies exactly as one decoded at the apply; an
 * entry is taken only for the bytes it was made from, so bytes changed
 * after it was made are checked as they are (and refused), and a change
 * that did not decode ahead fails at the apply as it always does. */
static void prepared_batches_apply_the_same(void **state)
{
	(void)state;
	char *root = tu_tmpdir();
	char *d2 = subdir(root, "origin");
	struct store *o = open_signed(d2, 2);
	struct signed_log *l = calloc(1, sizeof *l);
	struct store_apply_result res;
	uint8_t ref_dump[32], ref_dig[32], dump[32], dig[32];
	struct err e;

	/* Six commits of eight writes (six segments): puts, overwrites and
	 * a delete. */
	for (int c = 0; c < 6; c++) {
		char k[8][16], v[8][32];
		struct store_field_in f[8];
		struct store_write w[8];
		struct store_written out[8];
		for (int i = 0; i < 8; i++) {
			snprintf(k[i], sizeof k[i], "k%d", (c * 8 + i) % 13);
			snprintf(v[i], sizeof v[i], "value %d.%d", c, i);
			f[i] = (struct store_field_in){
			    i % 2 ? "a" : "b", 1, (const uint8_t *)v[i],
			    strlen(v[i]), 0, {0, 0}};
			w[i] = (struct store_write){STORE_PUT, "t", 1, k[i],
						    strlen(k[i]), &f[i], 1, 0};
			if (c == 3 && i == 5)
				w[i] = (struct store_write){
				    STORE_DELETE, "t", 1, k[i], strlen(k[i]),
				    NULL, 0, 0};
		}
		assert_int_equal(store_write(o, w, 8, T0 + (uint64_t)c, out, &e),
				 0);
		for (int i = 0; i < 8; i++)
			assert_int_equal(out[i].err.code, 0);
	}
	uint32_t origin = store_writer(o, NULL);
	assert_int_equal(store_log_read_segs(o, origin, 1, 4096,
					     1u << 30, su_collect, sl_seg, l,
					     &e),
			 0);
	/* su_collect and sl_seg share ctx: the blobs come first in l. */
	assert_int_equal(l->bl.n, 48);
	assert_int_equal(l->ng, 6);
	store_close(o);

	/* Reference: decoded at the apply. */
	char *dr = subdir(root, "ref");
	struct store *r = open_signed(dr, 1);
	assert_int_equal(store_apply_signed(r, l->bl.b, l->bl.n, l->g, l->ng,
					    T0, 60000, &res, &e),
			 0);
	assert_int_equal(res.applied, l->bl.n);
	su_dump(r, ref_dump);
	store_digest(r, ref_dig);
	store_close(r);

	/* Decoded ahead: the same records, digest and vector. */
	struct store_blob *b = calloc(l->bl.n, sizeof *b);
	memcpy(b, l->bl.b, l->bl.n * sizeof *b);
	struct store_prep *prep = store_prepare(b, l->bl.n, l->g, l->ng);
	assert_non_null(prep);
	assert_true(store_prep_bytes(prep) > 0);
	for (size_t i = 0; i < l->bl.n; i++)
		assert_non_null(b[i].pre);
	char *dp = subdir(root, "prep");
	r = open_signed(dp, 1);
	assert_int_equal(store_apply_signed(r, b, l->bl.n, l->g, l->ng, T0,
					    60000, &res, &e),
			 0);
	assert_int_equal(res.applied, l->bl.n);
	su_dump(r, dump);
	store_digest(r, dig);
	assert_memory_equal(dump, ref_dump, 32);
	assert_memory_equal(dig, ref_dig, 32);
	store_close(r);

	/* Entries moved one along (none matches its blob): the apply
	 * decodes and hashes everything itself, with the same result. */
	struct store_blob *m = calloc(l->bl.n, sizeof *m);
	for (size_t i = 0; i < l->bl.n; i++) {
		m[i] = l->bl.b[i];
		m[i].pre = b[(i + 1) % l->bl.n].pre;
	}
	char *dm = subdir(root, "moved");
	r = open_signed(dm, 1);
	assert_int_equal(store_apply_signed(r, m, l->bl.n, l->g, l->ng, T0,
					    60000, &res, &e),
			 0);
	su_dump(r, dump);
	assert_memory_equal(dump, ref_dump, 32);
	store_close(r);

	/* A value changed after the entries were made, in bytes of their
	 * own that still decode: the changed segment is refused by its
	 * signature, what came before it is kept. */
	size_t before = 0, victim;
	for (size_t k = 0; k < l->ng / 2; k++)
		before += (size_t)(l->g[k].last - l->g[k].first + 1);
	victim = before + 1; /* inside a segment, not its first change */
	uint8_t *forged = malloc(l->bl.b[victim].len);
	memcpy(forged, l->bl.b[victim].data, l->bl.b[victim].len);
	uint8_t *at = memmem(forged, l->bl.b[victim].len, "value ", 6);
	assert_non_null(at);
	at[0] = 'V';
	for (size_t i = 0; i < l->bl.n; i++)
		m[i] = b[i];
	m[victim].data = forged;
	char *df = subdir(root, "forged");
	r = open_signed(df, 1);
	assert_int_equal(store_apply_signed(r, m, l->bl.n, l->g, l->ng, T0,
					    60000, &res, &e),
			 MSCE_EAUTH);
	assert_int_equal(res.applied, before);
	assert_int_equal(store_vv_get(r, origin).seq, before);
	store_close(r);

	/* Bytes that do not decode, made ahead: the apply reports them as
	 * it does without (here: the segment's signature no longer holds). */
	uint8_t junk[] = {0xff, 0xff, 0xff};
	struct store_blob *j = calloc(l->bl.n, sizeof *j);
	memcpy(j, l->bl.b, l->bl.n * sizeof *j);
	j[victim] = (struct store_blob){junk, sizeof junk, NULL};
	struct err e1, e2;
	char *dj1 = subdir(root, "junk1"), *dj2 = subdir(root, "junk2");
	r = open_signed(dj1, 1);
	int rc1 = store_apply_signed(r, j, l->bl.n, l->g, l->ng, T0, 60000,
				     &res, &e1);
	store_close(r);
	struct store_prep *pj = store_prepare(j, l->bl.n, l->g, l->ng);
	assert_non_null(pj);
	assert_non_null(j[victim].pre);
	r = open_signed(dj2, 1);
	int rc2 = store_apply_signed(r, j, l->bl.n, l->g, l->ng, T0, 60000,
				     &res, &e2);
	store_close(r);
	assert_int_not_equal(rc1, 0);
	assert_int_equal(rc1, rc2);
	assert_string_equal(e1.msg, e2.msg);

	store_prep_free(pj);
	store_prep_free(prep);
	free(j);
	free(forged);
	free(m);
	free(b);
	su_blobs_free(&l->bl);
	free(l);
	tu_rmrf(root);
	free(d2);
	free(dr);
	free(dp);
	free(dm);
	free(df);
	free(dj1);
	free(dj2);
}

/* A store with some pages, for the backup tests. */
static struct store *filled_store(const char *dir, int n)
{
	struct store *s = open_node(dir, 1);
	char key[32], val[200];

	memset(val, 'v', sizeof val - 1);
	val[sizeof val - 1] = '\0';
	for (int i = 0; i < n; i++) {
		snprintf(key, sizeof key, "k%05d", i);
		assert_int_equal(su_put(s, "c", key, "f", val, T0 + i, NULL),
				 0);
	}
	return s;
}

static int exists(const char *path)
{
	struct stat st;
	if (lstat(path, &st) == 0)
		return 1;
	assert_int_equal(errno, ENOENT);
	return 0;
}

/* A backup that fails at any step (the copy, the restored mark, a sync of
 * the file, its directory or the parent) leaves nothing under its name,
 * no partial directory either, and the same name works next time; what
 * it finally makes opens marked restored and without a writer. A partial
 * directory left by a node killed meanwhile is named, never replaced. */
static void backup_failures_leave_nothing(void **state)
{
	(void)state;
	char *root = tu_tmpdir(), *dir = subdir(root, "data");
	char *bdir = subdir(root, "nightly");
	char *tmp = subdir(root, ".nightly.partial");
	struct store *s = filled_store(dir, 300), *b;
	struct store_options o = {.node_id = 1, .cluster = "test"};
	uint64_t bytes;
	struct err e;
	long nth;
	int rc;

	for (nth = 1;; nth++) {
		assert_true(nth < 20);
		fault_arm(FAULT_COMMIT, nth, 0);
		bytes = 1;
		rc = store_backup(s, bdir, &bytes, &e);
		fault_clear(FAULT_COMMIT);
		if (rc == 0)
			break;
		assert_false(exists(bdir));
		assert_false(exists(tmp));
		assert_int_equal(rc, MSCE_EIO);
		assert_non_null(strstr(e.msg, "Input/output error"));
		assert_int_equal(bytes, 0);
	}
	/* copy, mark, sync the file, its directory, the parent */
	assert_int_equal(nth, 6);
	assert_true(bytes > 0);
	assert_false(exists(tmp));
	assert_int_equal(store_backup(s, bdir, &bytes, &e), MSCE_EINVAL);
	assert_non_null(strstr(e.msg, "already exists"));
	store_close(s);

	assert_int_equal(store_open(bdir, &o, &b, &e), 0);
	assert_true(store_restored(b));
	assert_int_equal(store_writer(b, NULL), 0);
	assert_non_null(su_get(b, "c", "k00299", "f"));
	store_close(b);

	s = open_node(dir, 1);
	tu_rmrf(strdup(bdir));
	assert_int_equal(mkdir(tmp, 0750), 0);
	assert_int_equal(store_backup(s, bdir, &bytes, &e), MSCE_EINVAL);
	assert_non_null(strstr(e.msg, ".nightly.partial exists"));
	assert_false(exists(bdir));
	assert_int_equal(rmdir(tmp), 0);
	assert_int_equal(store_backup(s, bdir, &bytes, &e), 0);
	store_close(s);
	tu_rmrf(root);
	free(dir);
	free(bdir);
	free(tmp);
}

/* A store file shorter than its header says (a backup cut off while being
 * copied) is refused with both sizes, not mapped and read past its end
 * (SIGBUS, msced gone without a word). */
static void truncated_store_refuses_to_open(void **state)
{
	(void)state;
	char *root = tu_tmpdir(), *dir = subdir(root, "data");
	char *bdir = subdir(root, "copy"), *file = subdir(bdir, "data.mdb");
	struct store_options o = {.node_id = 1, .cluster = "test"};
	struct store *s = filled_store(dir, 2000);
	char whole[32], cut[32];
	struct stat st;
	uint64_t bytes;
	struct err e;

	assert_int_equal(store_backup(s, bdir, &bytes, &e), 0);
	store_close(s);
	assert_int_equal(stat(file, &st), 0);
	assert_true(st.st_size > 64 * 4096);
	snprintf(whole, sizeof whole, "%lld", (long long)st.st_size);
	snprintf(cut, sizeof cut, "%lld", (long long)st.st_size / 2);
	assert_int_equal(truncate(file, st.st_size / 2), 0);

	assert_int_equal(store_open(bdir, &o, &s, &e), MSCE_ECORRUPT);
	assert_null(s);
	assert_non_null(strstr(e.msg, "truncated"));
	assert_non_null(strstr(e.msg, cut));
	assert_non_null(strstr(e.msg, whole)); /* compacted: no slack */
	tu_rmrf(root);
	free(dir);
	free(bdir);
	free(file);
}

/* ---- erasure: what the log shows of an erased record -------------------- */

/* A store of node id that knows nodes 1 and 2's signing keys; sealed
 * with a master key when mk is not NULL (msced's [node] master_key). */
static struct store *open_erasing(const char *dir, uint32_t id,
				  const uint8_t *mk)
{
	uint8_t link[32] = {0}, pk[32], sk[64];
	struct store_options o = {
	    .node_id = id, .cluster = "test", .sign_sk = sk, .master_key = mk};
	struct store_key k[2];
	struct store *s;
	struct err e;

	link[0] = (uint8_t)id;
	seg_keypair_from_link(link, pk, sk);
	assert_int_equal(store_open(dir, &o, &s, &e), 0);
	su_writer(s);
	for (uint32_t n = 1; n <= 2; n++) {
		uint8_t unused[64];
		link[0] = (uint8_t)n;
		seg_keypair_from_link(link, k[n - 1].pk, unused);
		k[n - 1].node = n;
	}
	assert_int_equal(store_set_keys(s, k, 2, &e), 0);
	return s;
}

static int erase_write(struct store *s, const char *coll, const char *key,
		       uint64_t wall, struct store_written *out)
{
	struct store_write w = {
	    STORE_DELETE, coll, strlen(coll), key, strlen(key), NULL, 0, 1};
	struct err e;
	int rc = store_write(s, &w, 1, wall, out, &e);
	return rc ? rc : out->err.code;
}

static Msce__Change *blob_change(const struct su_blobs *bl, size_t i)
{
	Msce__Change *c =
	    msce__change__unpack(NULL, bl->b[i].len, bl->b[i].data);
	assert_non_null(c);
	return c;
}

/* No blob holds "Secret": the erased values. */
static void no_secret(const struct su_blobs *bl)
{
	for (size_t i = 0; i < bl->n; i++)
		assert_null(memmem(bl->b[i].data, bl->b[i].len, "Secret", 6));
}

static int rec_no_secret(void *ctx, const struct store_record_view *r)
{
	static uint8_t buf[1 << 16];
	size_t n = record_encoded_size(r->rec);
	(void)ctx;
	assert_true(n <= sizeof buf);
	record_encode(r->rec, buf);
	assert_null(memmem(buf, n, "Secret", 6));
	return 0;
}

/* An erased record's earlier puts read back redacted from the log (a
 * watch's replay), are not relayed to a peer, and one below the erasure
 * that comes after it is logged without its values: with a master key
 * because the data key is gone, without one because the record's erase
 * mark says so. A put after the erasure, and other records, read back
 * whole. */
static void erased_puts_read_back_redacted(const uint8_t *mk)
{
	char *root = tu_tmpdir();
	char *d1 = subdir(root, "peer"), *d2 = subdir(root, "origin");
	struct store *p = open_erasing(d1, 1, mk);
	struct store *o = open_erasing(d2, 2, mk);
	struct signed_log *l = calloc(1, sizeof *l);
	struct su_blobs *bl = calloc(1, sizeof *bl);
	struct store_written w[5], late;
	struct store_apply_result res;
	struct store_snap *sn;
	struct err e;
	int done = 0;

	assert_int_equal(store_encrypted(o), mk != NULL);
	/* The peer's put, made before the erasure, comes after it. */
	assert_int_equal(
	    su_put(p, "t", "P1", "name", "Secret Late", T0 + 1, &late), 0);
	assert_int_equal(
	    su_put(o, "t", "P1", "name", "Secret One", T0 + 2, &w[0]), 0);
	assert_int_equal(su_put(o, "t", "P2", "name", "Other", T0 + 3, &w[1]),
			 0);
	assert_int_equal(
	    su_put(o, "t", "P1", "nationality", "Secret Two", T0 + 4, &w[2]),
	    0);
	assert_int_equal(erase_write(o, "t", "P1", T0 + 10, &w[3]), 0);
	assert_int_equal(su_put(o, "t", "P1", "name", "New", T0 + 11, &w[4]),
			 0);
	uint32_t origin = w[0].origin, porigin = late.origin;

	/* A watch replaying the log from the start. */
	su_log(o, origin, 1, bl);
	assert_int_equal(bl->n, 5);
	for (size_t i = 0; i < 5; i++) {
		Msce__Change *c = blob_change(bl, i);
		int erased = i == 0 || i == 2;
		assert_int_equal(c->seq, w[i].seq);
		assert_int_equal(c->hlc, w[i].hlc);
		assert_int_equal(c->redacted, erased);
		if (erased) {
			assert_string_equal(c->collection, "t");
			assert_string_equal(c->key, "P1");
			assert_int_equal(c->n_fields, 0);
		} else if (i == 3) {
			assert_true(c->erase);
		} else {
			assert_int_equal(c->n_fields, 1);
		}
		msce__change__free_unpacked(c, NULL);
	}
	no_secret(bl);
	su_blobs_free(bl);

	/* A peer catching up from the log: the first segment is an erased
	 * put, which cannot be sent (the peer gets a snapshot). */
	assert_int_equal(store_log_read_segs(o, origin, 1, 4096, 1u << 30,
					     su_collect, sl_seg, l, &e),
			 MSCE_ENOTFOUND);
	assert_non_null(strstr(e.msg, "erased"));
	assert_int_equal(l->bl.n, 0);
	/* From the next segment on: the other record, then a stop before
	 * the second erased put. */
	assert_int_equal(store_log_read_segs(o, origin, 2, 4096, 1u << 30,
					     su_collect, sl_seg, l, &e),
			 0);
	assert_int_equal(l->bl.n, 1);
	no_secret(&l->bl);
	su_blobs_free(&l->bl);
	l->ng = 0;

	/* The peer's older put arrives after the erasure. */
	assert_int_equal(store_log_read_segs(p, porigin, 1, 4096, 1u << 30,
					     su_collect, sl_seg, l, &e),
			 0);
	assert_int_equal(store_apply_signed(o, l->bl.b, l->bl.n, l->g, l->ng,
					    T0 + 12, 60000, &res, &e),
			 0);
	assert_int_equal(res.applied, 1);
	su_blobs_free(&l->bl);
	su_log(o, porigin, 1, bl);
	assert_int_equal(bl->n, 1);
	Msce__Change *c = blob_change(bl, 0);
	assert_true(c->redacted);
	assert_int_equal(c->n_fields, 0);
	msce__change__free_unpacked(c, NULL);
	su_blobs_free(bl);

	/* Records, snapshots and exports hold only what came after. */
	assert_int_equal(store_snap_begin(o, &sn, &e), 0);
	while (!done)
		assert_int_equal(store_snap_next(sn, 1 << 20, rec_no_secret,
						 NULL, &done, NULL, &e),
				 0);
	store_snap_end(sn);

	store_close(o);
	store_close(p);
	free(bl);
	free(l);
	tu_rmrf(root);
	free(d1);
	free(d2);
}

static void erased_puts_redacted_without_master_key(void **state)
{
	(void)state;
	erased_puts_read_back_redacted(NULL);
}

static void erased_puts_redacted_with_master_key(void **state)
{
	uint8_t mk[32];
	(void)state;
	memset(mk, 0x5c, sizeof mk);
	erased_puts_read_back_redacted(mk);
}

/* A status is read on the loop while the writer thread commits: the
 * vector and digest it shows must be of one commit, or a center at the
 * same changes as its peer shows another digest (a false divergence). */
enum { STATE_COMMITS = 1500, STATE_SAMPLES = 4 * STATE_COMMITS + 8 };
struct state_run {
	struct store *s;
	uint8_t digest[STATE_COMMITS + 1][32]; /* after commit k */
	uint64_t seen; /* the last commit the reader saw (atomic) */
	int done;      /* atomic */
};

static void *state_writer(void *arg)
{
	struct state_run *run = arg;
	char key[16];
	for (int i = 1; i <= STATE_COMMITS; i++) {
		snprintf(key, sizeof key, "k%d", i);
		if (su_put(run->s, "c", key, "v", "x", T0 + (uint64_t)i, NULL))
			break;
		store_digest(run->s, run->digest[i]); /* the only committer */
		/* Each commit lands while the reader reads: wait until it
		 * saw this one (a loaded machine may starve it). */
		while (__atomic_load_n(&run->seen, __ATOMIC_ACQUIRE) <
		       (uint64_t)i)
			sched_yield();
	}
	__atomic_store_n(&run->done, 1, __ATOMIC_RELEASE);
	return NULL;
}

static void state_is_of_one_commit(void **state)
{
	(void)state;
	char *dir = tu_tmpdir();
	struct store_options o = {.node_id = 1, .cluster = "test", .nosync = 1};
	struct state_run *run = calloc(1, sizeof *run);
	struct sample {
		uint64_t k;
		uint8_t d[32];
	} *smp = malloc(STATE_SAMPLES * sizeof *smp);
	struct vv_entry vv[4];
	size_t ns = 0, moving = 0;
	pthread_t th;
	struct err e;

	assert_int_equal(store_open(dir, &o, &run->s, &e), 0);
	su_writer(run->s);
	store_digest(run->s, run->digest[0]);
	assert_int_equal(pthread_create(&th, NULL, state_writer, run), 0);
	/* Kept only when it differs from the last: a loaded machine may
	 * read a million times between two commits. */
	while (!__atomic_load_n(&run->done, __ATOMIC_ACQUIRE) &&
	       ns < STATE_SAMPLES) {
		size_t n = store_state(run->s, vv, 4, smp[ns].d, NULL);
		smp[ns].k = 0;
		for (size_t i = 0; i < n && i < 4; i++)
			smp[ns].k += vv[i].seq;
		__atomic_store_n(&run->seen, smp[ns].k, __ATOMIC_RELEASE);
		/* Before the first sample the store was at commit 0; the
		 * writer may have made commit 1 before the first read. */
		uint64_t prev = ns > 0 ? smp[ns - 1].k : 0;
		if (ns == 0 || smp[ns].k != prev ||
		    memcmp(smp[ns].d, smp[ns - 1].d, 32) != 0) {
			moving += smp[ns].k != prev;
			ns++;
		}
	}
	pthread_join(th, NULL);
	assert_true(run->done);
	assert_true(moving >= STATE_COMMITS); /* saw each commit land */
	for (size_t i = 0; i < ns; i++) {
		assert_true(smp[i].k <= STATE_COMMITS);
		if (memcmp(smp[i].d, run->digest[smp[i].k], 32) != 0)
			fail_msg("sample %zu: vector of commit %llu, digest "
				 "of another",
				 i, (unsigned long long)smp[i].k);
	}
	store_close(run->s);
	free(smp);
	free(run);
	tu_rmrf(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(big_snapshot_merges),
	    cmocka_unit_test(prepared_batches_apply_the_same),
	    cmocka_unit_test(erased_puts_redacted_without_master_key),
	    cmocka_unit_test(erased_puts_redacted_with_master_key),
		cmocka_unit_test(refuses_other_node_or_cluster),
		cmocka_unit_test(put_get_scan),
		cmocka_unit_test(state_is_of_one_commit),
		cmocka_unit_test(random_orders_converge),
		cmocka_unit_test(conflicts_detected_and_resolved),
		cmocka_unit_test(tombstones_against_earlier_and_later_writes),
		cmocka_unit_test(incomplete_after_delete_names_what_is_listed),
		cmocka_unit_test(refused_input_changes_nothing),
		cmocka_unit_test(case_person_seen_in_its_own_batch),
		cmocka_unit_test(gaps_and_clock_skew_stop_the_batch),
		cmocka_unit_test(origin_space_bounded),
		cmocka_unit_test(snapshot_without_room_for_an_origin),
		cmocka_unit_test(audit_forgeries_refused),
		cmocka_unit_test(map_grows_then_full_is_clear),
		cmocka_unit_test(log_truncation_and_snapshot),
		cmocka_unit_test(interleaved_snapshots_keep_each_other),
		cmocka_unit_test(backup_failures_leave_nothing),
		cmocka_unit_test(truncated_store_refuses_to_open),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
