/* Snapshots: reading every record with the vector it covers, for a peer
 * that needs changes below the log floor, and merging such a stream on
 * the receiver. */
#include <stdlib.h>
#include <string.h>

#include "schema.h"
#include "store_int.h"

/* A snapshot reads its vector first, then the records in chunks, each in
 * its own short read transaction (so the map can still grow meanwhile).
 * A chunk may show changes newer than the vector: merging more than the
 * vector promises is harmless, and nothing it promises can be missing,
 * because a tombstone the receiver lacks cannot be collected (the
 * receiver has not acknowledged it). */
struct store_snap {
	struct store *s;
	struct vv_entry *vvs;
	size_t nvv;
	uint8_t last[MSCE_MAX_COLLECTION + 1 + MSCE_MAX_KEY];
	size_t last_len;
	int started, done;
	struct arena a;
};

int store_snap_begin(struct store *s, struct store_snap **out, struct err *e)
{
	struct store_snap *sn = calloc(1, sizeof *sn);

	*out = NULL;
	if (sn == NULL)
		return err_set(e, MSCE_ENOMEM, "begin snapshot");
	sn->s = s;
	arena_init(&sn->a, 8u << 20);
	pthread_mutex_lock(&s->stlock);
	sn->vvs = malloc((s->nvv ? s->nvv : 1) * sizeof *sn->vvs);
	if (sn->vvs != NULL) {
		for (size_t i = 0; i < s->nvv; i++) {
			sn->vvs[i] = s->vvs[i];
			sn->vvs[i].floor = 0;
		}
		sn->nvv = s->nvv;
	}
	pthread_mutex_unlock(&s->stlock);
	if (sn->vvs == NULL) {
		store_snap_end(sn);
		return err_set(e, MSCE_ENOMEM, "begin snapshot");
	}
	*out = sn;
	return 0;
}

size_t store_snap_vv(const struct store_snap *sn, struct vv_entry *out,
		     size_t max)
{
	for (size_t i = 0; i < sn->nvv && i < max; i++)
		out[i] = sn->vvs[i];
	return sn->nvv;
}

int store_snap_next(struct store_snap *sn, size_t max_bytes,
		    store_record_cb cb, void *ctx, int *done, struct err *e)
{
	struct store *s = sn->s;
	size_t bytes = 0;
	MDB_txn *txn;
	MDB_cursor *cur;
	MDB_val k, v;
	int rc = 0, op;

	*done = sn->done;
	if (sn->done)
		return 0;
	if ((rc = st_read_begin(s, &txn, e)))
		return rc;
	if ((rc = mdb_cursor_open(txn, s->recs, &cur))) {
		st_read_end(s, txn);
		return st_lmdb_err(e, rc, "snapshot cursor");
	}
	if (sn->started) {
		k.mv_size = sn->last_len;
		k.mv_data = sn->last;
		op = MDB_SET_RANGE;
	} else {
		op = MDB_FIRST;
	}
	rc = 0;
	while (bytes < max_bytes) {
		const uint8_t *z;
		struct record r;
		if (mdb_cursor_get(cur, &k, &v, op) != 0) {
			sn->done = 1;
			break;
		}
		op = MDB_NEXT;
		/* Resuming lands on the last key sent: skip it. */
		if (sn->started && k.mv_size == sn->last_len &&
		    memcmp(k.mv_data, sn->last, sn->last_len) == 0)
			continue;
		z = memchr(k.mv_data, 0, k.mv_size);
		arena_reset(&sn->a);
		if (z == NULL || k.mv_size > sizeof sn->last ||
		    record_decode(v.mv_data, v.mv_size, &r, &sn->a)) {
			rc = err_set(e, MSCE_ECORRUPT, "record %.*s is corrupt",
				     (int)k.mv_size, (char *)k.mv_data);
			break;
		}
		struct store_record_view view = {
			k.mv_data, (size_t)(z - (uint8_t *)k.mv_data),
			(const char *)z + 1,
			k.mv_size - (size_t)(z - (uint8_t *)k.mv_data) - 1, &r};
		if ((rc = cb(ctx, &view)) != 0)
			break;
		memcpy(sn->last, k.mv_data, k.mv_size);
		sn->last_len = k.mv_size;
		sn->started = 1;
		bytes += k.mv_size + v.mv_size;
	}
	mdb_cursor_close(cur);
	st_read_end(s, txn);
	*done = sn->done;
	return rc;
}

void store_snap_end(struct store_snap *sn)
{
	if (sn == NULL)
		return;
	arena_free(&sn->a);
	free(sn->vvs);
	free(sn);
}

struct snapmerge_args {
	const struct store_snap_record *r;
	size_t n;
};

static int snapmerge_batch(struct wtxn *w, void *arg, struct err *e)
{
	struct snapmerge_args *a = arg;
	struct store *s = w->s;

	for (size_t i = 0; i < a->n; i++) {
		const struct store_snap_record *in = &a->r[i];
		uint8_t rk[MSCE_MAX_COLLECTION + 1 + MSCE_MAX_KEY];
		struct record r;
		struct loser_ref *old;
		size_t nold, rklen;
		struct version old_tomb;
		int exists, changed = 0, ch, rc;

		if (schema_check_collection(in->coll, in->coll_len, 1, e) ||
		    schema_check_key(in->key, in->key_len, e))
			return err_set(e, MSCE_ECORRUPT, "snapshot record: %s",
				       e ? e->msg : "bad name");
		arena_reset(&s->arena);
		rklen = rec_key(rk, in->coll, in->coll_len, in->key,
				in->key_len);
		if ((rc = st_load_record(w, rk, rklen, &r, &exists, e)))
			return rc;
		old_tomb = r.tomb;
		if (st_collect_losers(&r, &s->arena, &old, &nold))
			return err_set(e, MSCE_ENOMEM, "index conflicts");
		if (in->rec->tomb.hlc > s->gc_upto)
			record_merge_delete(&r, in->rec->tomb, &changed);
		for (uint32_t j = 0; j < in->rec->nfields; j++) {
			struct field_state fs = in->rec->fields[j];
			int keep = 0;
			/* Versions at or below the collection point are held
			 * already (or were deleted and collected). */
			if (fs.w.v.hlc <= s->gc_upto)
				continue;
			for (int l = 0; l < fs.nlosers; l++)
				if (fs.losers[l].v.hlc > s->gc_upto)
					fs.losers[keep++] = fs.losers[l];
			fs.nlosers = (uint8_t)keep;
			if (record_merge_state(&r, &fs, &s->arena, &ch))
				return err_set(e, MSCE_ENOMEM, "merge snapshot");
			changed |= ch;
		}
		if (changed &&
		    (rc = st_save_record(w, in->coll, in->coll_len, in->key,
					 in->key_len, rk, rklen, &r, old_tomb,
					 old, nold, e)))
			return rc;
	}
	return 0;
}

int store_snap_merge(struct store *s, const struct store_snap_record *r,
		     size_t n, struct err *e)
{
	struct snapmerge_args a = {r, n};
	return st_run_batch(s, snapmerge_batch, &a, e);
}

struct snapfinish_args {
	const struct vv_entry *vv;
	size_t n;
};

static int snapfinish_batch(struct wtxn *w, void *arg, struct err *e)
{
	struct snapfinish_args *a = arg;

	for (size_t i = 0; i < a->n; i++) {
		struct vv_entry *mine = st_wtxn_vv(w, a->vv[i].origin);
		int rc;

		if (mine == NULL)
			return err_set(e, MSCE_ENOMEM, "grow vector");
		if (a->vv[i].seq <= mine->seq)
			continue;
		/* The changes in (mine->seq, their seq] are merged but not in
		 * our log: we cannot relay them, so the floor moves past. */
		if ((rc = st_log_delete_upto(w, a->vv[i].origin, a->vv[i].seq)))
			return st_lmdb_err(e, rc, "truncate log");
		mine->seq = a->vv[i].seq;
		mine->hlc = a->vv[i].hlc;
		mine->floor = a->vv[i].seq;
		hlc_observe(&w->clock, a->vv[i].hlc);
	}
	return 0;
}

int store_snap_finish(struct store *s, const struct vv_entry *vv, size_t n,
		      struct err *e)
{
	struct snapfinish_args a = {vv, n};
	return st_run_batch(s, snapfinish_batch, &a, e);
}
