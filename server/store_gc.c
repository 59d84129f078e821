/* SPDX-License-Identifier: Apache-2.0 */
/* Tombstone collection: dropping the tombstones the replication core says
 * every writer has seen (a bound per origin), except those that still
 * explain a delete conflict (a field written without seeing the delete),
 * which stay until the conflict is resolved. */
#include <errno.h>
#include <string.h>

#include "mutant.h"
#include "store_int.h"

struct gc_args {
	const struct vv_entry *upto;
	size_t n;
	size_t dropped;
};

static uint64_t bound_of(const struct gc_args *a, uint32_t origin)
{
	for (size_t i = 0; i < a->n; i++)
		if (a->upto[i].origin == origin)
			return a->upto[i].hlc;
	return 0;
}

static uint64_t bound_max(const struct gc_args *a)
{
	uint64_t m = 0;
	for (size_t i = 0; i < a->n; i++)
		if (a->upto[i].hlc > m)
			m = a->upto[i].hlc;
	return m;
}

/* Does a field of r survive the delete without having seen it? */
static int delete_conflict(const struct record *r)
{
	for (uint32_t i = 0; i < r->nfields; i++)
		if (st_survived_delete(r, &r->fields[i]))
			return 1;
	return 0;
}

/* Walks the tombstones that may go, in index order. With txn a write
 * transaction (w != NULL) it drops them; else it only counts. Returns an
 * LMDB code. */
static int gc_walk(struct store *s, MDB_txn *txn, struct wtxn *w,
		   struct gc_args *a, struct arena *ar)
{
	uint8_t at[12 + MSCE_MAX_COLLECTION + 1 + MSCE_MAX_KEY];
	uint64_t top = bound_max(a);
	MDB_cursor *cur;
	MDB_val k, v;
	int rc, op = MDB_FIRST;

	a->dropped = 0;
	if ((rc = mdb_cursor_open(txn, s->tombs, &cur)))
		return rc;
	while ((rc = mdb_cursor_get(cur, &k, &v, op)) == 0) {
		struct version t;
		MDB_val rk, rv;
		struct record r;
		size_t klen = k.mv_size;

		op = MDB_NEXT;
		if (klen < 12 || klen > sizeof at) {
			rc = MDB_CORRUPTED;
			break;
		}
		t.hlc = rd_be64(k.mv_data);
		t.origin = rd_be32((uint8_t *)k.mv_data + 8);
		if (t.hlc > top)
			break; /* the index is in hlc order */
		if (t.hlc > bound_of(a, t.origin))
			continue;
		rk.mv_data = (uint8_t *)k.mv_data + 12;
		rk.mv_size = klen - 12;
		arena_reset(ar);
		rc = mdb_get(txn, s->recs, &rk, &rv);
		if (rc == 0 &&
		    (w != NULL ? st_wrec_decode(w, rk.mv_data, rk.mv_size,
						rv.mv_data, rv.mv_size, &r, NULL)
			       : st_rec_decode(s, txn, rk.mv_data, rk.mv_size,
					       rv.mv_data, rv.mv_size, &r, ar,
					       NULL)) != 0) {
			rc = MDB_CORRUPTED;
			break;
		}
		if (rc == 0 && version_cmp(r.tomb, t) == 0 && delete_conflict(&r))
			continue;
		a->dropped++;
		if (w == NULL)
			continue;
		memcpy(at, k.mv_data, klen);
		if (rc == 0 && version_cmp(r.tomb, t) == 0) {
			int erased = !version_is_zero(r.erased);
			rk.mv_data = at + 12;
			/* No change below the tombstone can come any more, but
			 * a store restored from a backup taken before the
			 * erasure can: a record that lives on keeps its erase
			 * mark, so that a snapshot tells that store to destroy
			 * the data key it brought back (simulator, 8 nodes,
			 * seed 29). */
			if (r.nfields == 0 &&
			    (!erased || MUTANT("gc_drops_erase_mark"))) {
				rc = mdb_del(txn, s->recs, &rk, NULL);
				if (rc == 0 && erased) { /* the mutant */
					st_crypt_reset(w);
					rc = mdb_del(txn, s->deks, &rk, NULL);
					if (rc == MDB_NOTFOUND)
						rc = 0;
				}
			} else if (r.nfields == 0) {
				/* An erased record leaves nothing behind but its
				 * erase mark (no field, no tombstone, no key):
				 * without it, a store restored from before the
				 * erasure that catches up by snapshot keeps the
				 * key of the log entries it brought back
				 * (simulator, 3 nodes, seed 84103). */
				st_crypt_reset(w);
				rc = mdb_del(txn, s->deks, &rk, NULL);
				if (rc == MDB_NOTFOUND)
					rc = 0;
				r.tomb.hlc = 0;
				r.tomb.origin = 0;
				if (rc == 0 && st_rec_encode(w, rk.mv_data,
							     rk.mv_size, &r,
							     &rv, NULL)) {
					rc = ENOMEM;
					break;
				}
				if (rc == 0)
					rc = mdb_put(txn, s->recs, &rk, &rv, 0);
			} else {
				/* Fields written after the delete stay. */
				r.tomb.hlc = 0;
				r.tomb.origin = 0;
				if (st_rec_encode(w, rk.mv_data, rk.mv_size,
						  &r, &rv, NULL)) {
					rc = ENOMEM;
					break;
				}
				rc = mdb_put(txn, s->recs, &rk, &rv, 0);
			}
			if (rc)
				break;
		}
		if ((rc = mdb_cursor_del(cur, 0)))
			break;
		/* Re-seek after a delete rather than trust the cursor. */
		k.mv_data = at;
		k.mv_size = klen;
		op = MDB_SET_RANGE;
	}
	mdb_cursor_close(cur);
	return rc == MDB_NOTFOUND ? 0 : rc;
}

static int gc_batch(struct wtxn *w, void *arg, struct err *e)
{
	int rc = gc_walk(w->s, w->txn, w, arg, &w->s->arena);
	if (rc)
		return st_lmdb_err(e, rc, "collect tombstones");
	return 0;
}

/* Is any tombstone collectable? A read, so that an idle collection round
 * costs no commit. */
static int gc_due(struct store *s, struct gc_args *a)
{
	struct arena ar;
	MDB_txn *txn;
	int rc;

	if (st_read_begin(s, &txn, NULL))
		return 1;
	arena_init(&ar, 1u << 20);
	rc = gc_walk(s, txn, NULL, a, &ar);
	arena_free(&ar);
	st_read_end(s, txn);
	return rc != 0 || a->dropped > 0;
}

int store_gc_tombstones(struct store *s, const struct vv_entry *upto,
			size_t n, size_t *dropped, struct err *e)
{
	struct gc_args a = {upto, n, 0};
	int rc;

	if (dropped)
		*dropped = 0;
	if (n == 0 || !gc_due(s, &a))
		return 0;
	rc = st_run_batch(s, gc_batch, &a, e);
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
