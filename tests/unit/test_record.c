/* SPDX-License-Identifier: Apache-2.0 */
/* The merge rule on one record, without the store: any order, any
 * duplicates, and merging whole states (snapshots) give the same bytes,
 * and those bytes match an oracle computed from the set of writes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "peer.pb-c.h"
#include "record.h"
#include "record_pb.h"
#include "testutil.h"

#define NW 40
#define NAMES 4

struct w {
	int del;
	struct version v;
	struct field_write f[NAMES];
	int nf;
	char val[NAMES][16];
};

static const char *names[NAMES] = {"a", "b", "c", "d"};

static void gen(uint64_t *rs, struct w *ws, int n)
{
	for (int i = 0; i < n; i++) {
		struct w *x = &ws[i];
		memset(x, 0, sizeof *x);
		/* Distinct, increasing versions; bases point back in time. */
		x->v.hlc = 1000 + (uint64_t)i * 10 + tu_below(rs, 5);
		x->v.origin = 1 + (uint32_t)tu_below(rs, 3);
		x->del = tu_below(rs, 8) == 0;
		if (x->del)
			continue;
		for (int k = 0; k < NAMES; k++) {
			if (tu_below(rs, 2) && !(k == NAMES - 1 && x->nf == 0))
				continue;
			struct field_write *f = &x->f[x->nf];
			f->name = (const uint8_t *)names[k];
			f->name_len = 1;
			snprintf(x->val[x->nf], 16, "v%d", i);
			f->value = (const uint8_t *)x->val[x->nf];
			f->value_len = (uint32_t)strlen(x->val[x->nf]);
			if (i > 0 && tu_below(rs, 3)) {
				int j = (int)tu_below(rs, (uint64_t)i);
				f->base = ws[j].v;
			}
			x->nf++;
		}
	}
}

static void apply(struct record *r, const struct w *x, struct arena *a)
{
	int ch;
	if (x->del)
		record_merge_delete(r, x->v, &ch);
	else
		assert_int_equal(record_merge_put(r, x->v, 1, x->f,
						  (size_t)x->nf, a, &ch),
				 0);
}

static size_t enc(const struct record *r, uint8_t *buf, size_t cap)
{
	size_t n = record_encoded_size(r);
	assert_true(n <= cap);
	record_encode(r, buf);
	return n;
}

/* Oracle: the rule stated over the set, with no incremental state. */
static void check_oracle(const struct record *r, const struct w *ws, int n)
{
	struct version t = {0, 0};
	for (int i = 0; i < n; i++)
		if (ws[i].del)
			t = version_max(t, ws[i].v);
	assert_int_equal(version_cmp(r->tomb, t), 0);
	for (int k = 0; k < NAMES; k++) {
		struct version win = {0, 0}, seen = t;
		int have = 0;
		for (int i = 0; i < n; i++)
			for (int j = 0; j < ws[i].nf; j++)
				if (ws[i].f[j].name[0] == names[k][0] &&
				    version_cmp(ws[i].v, t) > 0) {
					have = 1;
					win = version_max(win, ws[i].v);
					seen = version_max(seen, ws[i].f[j].base);
				}
		struct field_state *fs =
			record_field(r, (const uint8_t *)names[k], 1);
		if (!have) {
			assert_null(fs);
			continue;
		}
		assert_non_null(fs);
		assert_int_equal(version_cmp(fs->w.v, win), 0);
		assert_int_equal(version_cmp(fs->seen, seen), 0);
		int expect = 0;
		for (int i = 0; i < n; i++)
			for (int j = 0; j < ws[i].nf; j++)
				if (ws[i].f[j].name[0] == names[k][0] &&
				    version_cmp(ws[i].v, win) != 0 &&
				    version_cmp(ws[i].v, seen) > 0)
					expect++;
		if (expect > RECORD_MAX_LOSERS)
			expect = RECORD_MAX_LOSERS;
		assert_int_equal(fs->nlosers, expect);
		for (int l = 0; l < fs->nlosers; l++)
			assert_true(version_cmp(fs->losers[l].v, seen) > 0);
	}
}

static void any_order_same_bytes(void **state)
{
	(void)state;
	uint64_t rs = tu_seed("any_order_same_bytes");
	static uint8_t ref[1 << 16], buf[1 << 16];

	for (int round = 0; round < 200; round++) {
		struct w ws[NW];
		int n = 5 + (int)tu_below(&rs, NW - 5);
		struct arena a;
		struct record r;
		size_t reflen;

		gen(&rs, ws, n);
		arena_init(&a, 0);
		memset(&r, 0, sizeof r);
		for (int i = 0; i < n; i++)
			apply(&r, &ws[i], &a);
		check_oracle(&r, ws, n);
		reflen = enc(&r, ref, sizeof ref);

		for (int perm = 0; perm < 20; perm++) {
			int order[NW * 2], m = 0;
			for (int i = 0; i < n; i++)
				order[m++] = i;
			/* Duplicates: some writes delivered twice. */
			for (int i = 0; i < n / 3; i++)
				order[m++] = (int)tu_below(&rs, (uint64_t)n);
			for (int i = m - 1; i > 0; i--) {
				int j = (int)tu_below(&rs, (uint64_t)i + 1);
				int t = order[i];
				order[i] = order[j];
				order[j] = t;
			}
			arena_reset(&a);
			memset(&r, 0, sizeof r);
			for (int i = 0; i < m; i++)
				apply(&r, &ws[order[i]], &a);
			size_t len = enc(&r, buf, sizeof buf);
			assert_int_equal(len, reflen);
			assert_memory_equal(buf, ref, len);
		}
		arena_free(&a);
	}
}

static void state_merge_is_join(void **state)
{
	(void)state;
	uint64_t rs = tu_seed("state_merge_is_join");
	static uint8_t ref[1 << 16], buf[1 << 16];

	for (int round = 0; round < 200; round++) {
		struct w ws[NW];
		int n = 5 + (int)tu_below(&rs, NW - 5);
		struct arena a;
		struct record all, r1, r2;
		int ch;

		gen(&rs, ws, n);
		arena_init(&a, 0);
		memset(&all, 0, sizeof all);
		memset(&r1, 0, sizeof r1);
		memset(&r2, 0, sizeof r2);
		for (int i = 0; i < n; i++) {
			apply(&all, &ws[i], &a);
			/* Overlapping halves, as two snapshots might be. */
			uint64_t side = tu_below(&rs, 3);
			if (side != 1)
				apply(&r1, &ws[i], &a);
			if (side != 0)
				apply(&r2, &ws[i], &a);
		}
		size_t reflen = enc(&all, ref, sizeof ref);
		if (!version_is_zero(r2.tomb))
			record_merge_delete(&r1, r2.tomb, &ch);
		for (uint32_t i = 0; i < r2.nfields; i++)
			assert_int_equal(
				record_merge_state(&r1, &r2.fields[i], &a, &ch),
				0);
		size_t len = enc(&r1, buf, sizeof buf);
		assert_int_equal(len, reflen);
		assert_memory_equal(buf, ref, len);
		arena_free(&a);
	}
}

static void clean_overwrite_and_conflict(void **state)
{
	(void)state;
	struct arena a;
	struct record r;
	int ch;
	struct version v1 = {100, 1}, v2 = {200, 2}, v3 = {210, 3},
		       v4 = {300, 1};
	struct field_write f = {(const uint8_t *)"phone", 5,
				(const uint8_t *)"1", 1, {0, 0}};

	arena_init(&a, 0);
	memset(&r, 0, sizeof r);
	assert_int_equal(record_merge_put(&r, v1, 1, &f, 1, &a, &ch), 0);
	/* v2 saw v1: a clean overwrite. */
	f.base = v1;
	f.value = (const uint8_t *)"2";
	record_merge_put(&r, v2, 1, &f, 1, &a, &ch);
	assert_int_equal(r.fields[0].nlosers, 0);
	/* v3 also based on v1, concurrent with v2: v3 wins, v2 loses. */
	f.value = (const uint8_t *)"3";
	record_merge_put(&r, v3, 1, &f, 1, &a, &ch);
	assert_int_equal(version_cmp(r.fields[0].w.v, v3), 0);
	assert_int_equal(r.fields[0].nlosers, 1);
	assert_int_equal(version_cmp(r.fields[0].losers[0].v, v2), 0);
	/* Resolution: a write based on the winner clears the conflict. */
	f.base = v3;
	f.value = (const uint8_t *)"4";
	record_merge_put(&r, v4, 1, &f, 1, &a, &ch);
	assert_int_equal(r.fields[0].nlosers, 0);
	assert_memory_equal(r.fields[0].w.value, "4", 1);
	arena_free(&a);
}

static void corrupt_records_refused(void **state)
{
	(void)state;
	uint64_t rs = tu_seed("corrupt_records_refused");
	struct w ws[NW];
	struct arena a;
	struct record r, out;
	static uint8_t buf[1 << 16], bad[1 << 16];

	gen(&rs, ws, NW);
	arena_init(&a, 0);
	memset(&r, 0, sizeof r);
	for (int i = 0; i < NW; i++)
		apply(&r, &ws[i], &a);
	size_t n = enc(&r, buf, sizeof buf);
	assert_int_equal(record_decode(buf, n, &out, &a), 0);
	/* Every truncation is refused; random flips never crash. */
	for (size_t cut = 0; cut < n; cut++)
		assert_int_not_equal(record_decode(buf, cut, &out, &a), 0);
	for (int i = 0; i < 2000; i++) {
		memcpy(bad, buf, n);
		bad[tu_below(&rs, n)] ^= (uint8_t)(1 + tu_below(&rs, 255));
		arena_reset(&a);
		(void)record_decode(bad, n, &out, &a);
	}
	arena_free(&a);
}

/* A snapshot chunk packed record by record (PeerMsgSnapshotPacked, what a
 * sender sends) is byte for byte the PeerMsg of the same records, and a
 * receiver reads it back whole: losers, seen versions, tombstones and
 * erase marks included. */
static void snapshot_packing_same_bytes(void **state)
{
	(void)state;
	uint64_t rs = tu_seed("snapshot_packing_same_bytes");
	int losers = 0, tombs = 0;

	for (int round = 0; round < 200; round++) {
		static struct w ws[2][NW]; /* the records point into them */
		struct record r[2];
		struct arena a, va;
		Msce__Record *full[2];
		ProtobufCBinaryData packed[2];
		int n;

		arena_init(&a, 0);
		arena_init(&va, 0);
		for (int k = 0; k < 2; k++) {
			n = 5 + (int)tu_below(&rs, NW - 5);
			gen(&rs, ws[k], n);
			memset(&r[k], 0, sizeof r[k]);
			for (int i = 0; i < n; i++)
				apply(&r[k], &ws[k][i], &a);
			if (tu_below(&rs, 2))
				r[k].erased = r[k].tomb;
			tombs += !version_is_zero(r[k].tomb);
			for (uint32_t i = 0; i < r[k].nfields; i++)
				losers += r[k].fields[i].nlosers;
			full[k] = record_pb_new("registration", 12, k ? "b" : "a",
						1, &r[k]);
			assert_non_null(full[k]);
			Msce__Record *v = record_pb_view(&va, "registration", 12,
							 k ? "b" : "a", 1,
							 &r[k]);
			assert_non_null(v);
			packed[k].len = msce__record__get_packed_size(v);
			packed[k].data = malloc(packed[k].len);
			assert_int_equal(msce__record__pack(v, packed[k].data),
					 packed[k].len);
		}

		Msce__Position end = MSCE__POSITION__INIT;
		end.collection = "registration";
		end.key = "c";
		end.field = "";
		Msce__SnapshotChunk c = MSCE__SNAPSHOT_CHUNK__INIT;
		Msce__PeerMsg m = MSCE__PEER_MSG__INIT;
		c.protocol = 3;
		c.snapshot_id = 7 + (uint64_t)round;
		c.n_records = 2;
		c.records = full;
		c.end = round % 2 ? &end : NULL;
		c.done = round % 2 == 0;
		m.msg_case = MSCE__PEER_MSG__MSG_SNAPSHOT;
		m.snapshot = &c;
		Msce__SnapshotChunkPacked cp = MSCE__SNAPSHOT_CHUNK_PACKED__INIT;
		Msce__PeerMsgSnapshotPacked mp =
		    MSCE__PEER_MSG_SNAPSHOT_PACKED__INIT;
		cp.protocol = c.protocol;
		cp.snapshot_id = c.snapshot_id;
		cp.n_records = 2;
		cp.records = packed;
		cp.end = c.end;
		cp.done = c.done;
		mp.snapshot = &cp;

		size_t la = msce__peer_msg__get_packed_size(&m);
		size_t lb = msce__peer_msg_snapshot_packed__get_packed_size(&mp);
		assert_int_equal(la, lb);
		uint8_t *ba = malloc(la), *bb = malloc(lb);
		msce__peer_msg__pack(&m, ba);
		msce__peer_msg_snapshot_packed__pack(&mp, bb);
		assert_memory_equal(ba, bb, la);

		Msce__PeerMsg *back = msce__peer_msg__unpack(NULL, lb, bb);
		assert_non_null(back);
		assert_int_equal(back->msg_case, MSCE__PEER_MSG__MSG_SNAPSHOT);
		assert_int_equal(back->snapshot->n_records, 2);
		for (int k = 0; k < 2; k++) {
			const Msce__Record *b = back->snapshot->records[k];
			assert_int_equal(b->n_fields, r[k].nfields);
			assert_int_equal(b->tomb_hlc, r[k].tomb.hlc);
			assert_int_equal(b->erase_hlc, r[k].erased.hlc);
			for (uint32_t i = 0; i < r[k].nfields; i++) {
				const struct field_state *f = &r[k].fields[i];
				const Msce__FieldState *g = b->fields[i];
				assert_int_equal(g->n_losers, f->nlosers);
				assert_int_equal(g->seen_hlc, f->seen.hlc);
				assert_int_equal(g->winner->value.len,
						 f->w.value_len);
				assert_memory_equal(g->winner->value.data,
						    f->w.value, f->w.value_len);
			}
		}
		msce__peer_msg__free_unpacked(back, NULL);
		free(ba);
		free(bb);
		for (int k = 0; k < 2; k++) {
			record_pb_free(full[k]);
			free(packed[k].data);
		}
		arena_free(&va);
		arena_free(&a);
	}
	/* The cases that matter were there. */
	assert_true(losers > 0);
	assert_true(tombs > 0);
}

/* The digest is a sum mod 2^256 of little-endian 32-byte numbers, the
 * same at every node: digest_add and digest_sub against byte-at-a-time
 * arithmetic, on random values and on carry and borrow chains that cross
 * every byte and every eight-byte word. */
static void ref_add(uint8_t d[32], const uint8_t x[32], int sub)
{
	int c = 0;
	for (int i = 0; i < 32; i++) {
		int v = sub ? d[i] - x[i] - c : d[i] + x[i] + c;
		c = sub ? v < 0 : v > 255;
		d[i] = (uint8_t)v;
	}
}

static void digest_arithmetic(void **state)
{
	(void)state;
	uint64_t rs = tu_seed("digest_arithmetic");
	uint8_t d[32], x[32], want[32], keep[32];

	for (int n = 0; n < 20000; n++) {
		int shape = (int)tu_below(&rs, 4);
		for (int i = 0; i < 32; i++) {
			d[i] = (uint8_t)tu_rand(&rs);
			x[i] = (uint8_t)tu_rand(&rs);
		}
		if (shape == 1) /* all ones below a point: carries run up */
			memset(d, 0xFF, tu_below(&rs, 33));
		else if (shape == 2) /* zeros below a point: borrows run up */
			memset(d, 0, tu_below(&rs, 33));
		if (shape == 3) /* one small addend */
			memset(x + 1, 0, 31);
		memcpy(keep, d, 32);
		memcpy(want, d, 32);
		ref_add(want, x, 0);
		digest_add(d, x);
		assert_memory_equal(d, want, 32);
		ref_add(want, x, 1);
		digest_sub(d, x);
		assert_memory_equal(d, want, 32);
		assert_memory_equal(d, keep, 32);
		ref_add(want, x, 1);
		digest_sub(d, x);
		assert_memory_equal(d, want, 32);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(any_order_same_bytes),
		cmocka_unit_test(state_merge_is_join),
		cmocka_unit_test(clean_overwrite_and_conflict),
		cmocka_unit_test(corrupt_records_refused),
		cmocka_unit_test(snapshot_packing_same_bytes),
		cmocka_unit_test(digest_arithmetic),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
