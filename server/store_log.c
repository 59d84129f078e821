/* SPDX-License-Identifier: Apache-2.0 */
/* The change log: each committed change under its origin and seq, read
 * by replication and truncated on request; an origin's vector entry holds
 * its floor, where its log starts. */
#include "mutant.h"
#include "store_int.h"

/* st_log_put, which seals entries, is in store_crypt.c. */

int store_log_read(struct store *s, uint32_t origin, uint64_t from,
		   size_t max_count, size_t max_bytes, store_log_cb cb,
		   void *ctx, struct err *e)
{
	struct vv_entry vv = store_vv_get(s, origin);
	uint8_t kb[12];
	MDB_txn *txn;
	MDB_cursor *cur;
	MDB_val k = {12, kb}, v;
	size_t count = 0, bytes = 0;
	struct logbuf lb = {0};
	int rc, op = MDB_SET_RANGE;

	if (from <= vv.floor)
		return err_set(e, MSCE_ENOTFOUND,
			       "log of origin %u starts after seq %llu", origin,
			       (unsigned long long)vv.floor);
	be32(kb, origin);
	be64(kb + 4, from);
	if ((rc = st_read_begin(s, &txn, e)))
		return rc;
	if ((rc = mdb_cursor_open(txn, s->log, &cur))) {
		st_read_end(s, txn);
		return st_lmdb_err(e, rc, "open log cursor");
	}
	rc = 0;
	while (count < max_count && mdb_cursor_get(cur, &k, &v, op) == 0) {
		uint64_t seq;
		const uint8_t *c;
		size_t len;
		op = MDB_NEXT;
		if (k.mv_size != 12 || rd_be32(k.mv_data) != origin)
			break;
		seq = rd_be64((uint8_t *)k.mv_data + 4);
		/* Plain, or redacted where its values were erased. */
		rc = st_log_open(s, txn, origin, seq, &v, &lb, &c, &len, e);
		if (rc != 0 && rc != LOG_REDACTED)
			break;
		rc = 0;
		if (count > 0 && bytes + len > max_bytes)
			break;
		if ((rc = cb(ctx, origin, seq, c, len)) != 0)
			break;
		count++;
		bytes += len;
	}
	mdb_cursor_close(cur);
	st_read_end(s, txn);
	st_logbuf_free(&lb);
	return rc;
}


/* Deletes log entries of origin with seq <= upto. Re-seeks after each
 * delete rather than trusting cursor position after mdb_cursor_del. */
int st_log_delete_upto(struct wtxn *w, uint32_t origin, uint64_t upto)
{
	uint8_t kb[12];
	MDB_cursor *cur;
	MDB_val k, v;
	int rc;

	if ((rc = mdb_cursor_open(w->txn, w->s->log, &cur)))
		return rc;
	for (;;) {
		be32(kb, origin);
		be64(kb + 4, 0);
		k.mv_size = 12;
		k.mv_data = kb;
		rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
		if (rc || k.mv_size != 12 || rd_be32(k.mv_data) != origin ||
		    rd_be64((uint8_t *)k.mv_data + 4) > upto)
			break;
		if ((rc = mdb_cursor_del(cur, 0)))
			break;
	}
	mdb_cursor_close(cur);
	return rc == MDB_NOTFOUND ? 0 : rc;
}

struct trunc_args {
	uint32_t origin;
	uint64_t upto;
};

static int trunc_batch(struct wtxn *w, void *arg, struct err *e)
{
	struct trunc_args *a = arg;
	struct vv_entry *vv = st_wtxn_vv(w, a->origin);
	int rc;

	if (vv == NULL)
		return err_set(e, MSCE_ENOMEM, "grow vector");
	if (a->upto > vv->seq)
		a->upto = vv->seq;
	/* At a segment end: what is left must be relayable whole. */
	a->upto = st_seg_floor(w->txn, w->s, a->origin, a->upto);
	if (a->upto <= vv->floor)
		return 0;
	if ((rc = st_log_delete_upto(w, a->origin, a->upto)) ||
	    (rc = st_seg_delete_below(w, a->origin, a->upto)))
		return st_lmdb_err(e, rc, "truncate log");
	if (!MUTANT("log_floor")) /* the floor says what the log lacks */
		vv->floor = a->upto;
	return 0;
}

int store_log_truncate(struct store *s, uint32_t origin, uint64_t upto,
		       struct err *e)
{
	struct trunc_args a = {origin, upto};
	return st_run_batch(s, trunc_batch, &a, e);
}
