/* Tombstone collection: dropping the tombstones at or below a version
 * every node holds, and remembering how far collection went (gc_upto in
 * struct store). */
#include <errno.h>
#include <string.h>

#include "store_int.h"

struct gc_args {
	struct version upto;
	size_t dropped;
};

static int gc_batch(struct wtxn *w, void *arg, struct err *e)
{
	struct gc_args *a = arg;
	struct store *s = w->s;
	MDB_cursor *cur;
	MDB_val k, v;
	int rc;

	a->dropped = 0;
	if ((rc = mdb_cursor_open(w->txn, s->tombs, &cur)))
		return st_lmdb_err(e, rc, "open tombstone cursor");
	while ((rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST)) == 0) {
		struct version t;
		MDB_val rk, rv;
		struct record r;

		if (k.mv_size < 12) {
			rc = MDB_CORRUPTED;
			break;
		}
		t.hlc = rd_be64(k.mv_data);
		t.origin = rd_be32((uint8_t *)k.mv_data + 8);
		if (version_cmp(t, a->upto) > 0)
			break;
		rk.mv_data = (uint8_t *)k.mv_data + 12;
		rk.mv_size = k.mv_size - 12;
		arena_reset(&s->arena);
		rc = mdb_get(w->txn, s->recs, &rk, &rv);
		if (rc == 0 &&
		    record_decode(rv.mv_data, rv.mv_size, &r, &s->arena) == 0 &&
		    version_cmp(r.tomb, t) == 0) {
			uint8_t keybuf[MSCE_MAX_COLLECTION + 1 + MSCE_MAX_KEY];
			size_t klen = rk.mv_size;
			memcpy(keybuf, rk.mv_data, klen);
			rk.mv_data = keybuf;
			if (r.nfields == 0) {
				rc = mdb_del(w->txn, s->recs, &rk, NULL);
			} else {
				/* Fields written after the delete stay. */
				r.tomb.hlc = 0;
				r.tomb.origin = 0;
				rv.mv_size = record_encoded_size(&r);
				if (st_ensure_scratch(s, rv.mv_size)) {
					rc = ENOMEM;
					break;
				}
				record_encode(&r, s->scratch);
				rv.mv_data = s->scratch;
				rc = mdb_put(w->txn, s->recs, &rk, &rv, 0);
			}
			if (rc)
				break;
		}
		if ((rc = mdb_cursor_del(cur, 0)))
			break;
		a->dropped++;
	}
	mdb_cursor_close(cur);
	if (rc && rc != MDB_NOTFOUND)
		return st_lmdb_err(e, rc, "collect tombstones");
	if (a->upto.hlc > s->gc_upto) {
		uint8_t b[8];
		le64(b, a->upto.hlc);
		if ((rc = st_meta_put(w->txn, s->meta, "gc", b, 8)))
			return st_lmdb_err(e, rc, "record collection point");
	}
	return 0;
}

/* Is any tombstone at or below upto? A read, so that an idle collection
 * round costs no commit. */
static int gc_due(struct store *s, struct version upto)
{
	MDB_txn *txn;
	MDB_cursor *cur;
	MDB_val k, v;
	int due = 0;

	if (st_read_begin(s, &txn, NULL))
		return 1;
	if (mdb_cursor_open(txn, s->tombs, &cur) == 0) {
		if (mdb_cursor_get(cur, &k, &v, MDB_FIRST) == 0 &&
		    k.mv_size >= 12) {
			struct version t = {rd_be64(k.mv_data),
					    rd_be32((uint8_t *)k.mv_data + 8)};
			due = version_cmp(t, upto) <= 0;
		}
		mdb_cursor_close(cur);
	}
	st_read_end(s, txn);
	return due;
}

int store_gc_tombstones(struct store *s, struct version upto, size_t *dropped,
			struct err *e)
{
	struct gc_args a = {upto, 0};
	int rc;

	if (dropped)
		*dropped = 0;
	if (!gc_due(s, upto))
		return 0;
	rc = st_run_batch(s, gc_batch, &a, e);
	if (rc == 0 && upto.hlc > s->gc_upto)
		s->gc_upto = upto.hlc; /* only the writer reads it */
	if (dropped)
		*dropped = rc ? 0 : a.dropped;
	return rc;
}

size_t store_tombstones(struct store *s)
{
	MDB_txn *txn;
	MDB_stat st;
	if (st_read_begin(s, &txn, NULL))
		return 0;
	mdb_stat(txn, s->tombs, &st);
	st_read_end(s, txn);
	return st.ms_entries;
}
