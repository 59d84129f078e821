/* SPDX-License-Identifier: Apache-2.0 */
/* Signed segments in the store: signing our own changes as they commit,
 * keeping every segment beside the log, checking those that arrive, and
 * the seals of history from before signatures. See seg.h. The same keys
 * sign and check gossiped statuses (statussig.h). */
#include <stdlib.h>

#include "statussig.h"
#include "store_int.h"

#define SEG_VAL_LEN (8 + 8 + SEG_HASH_LEN + SEG_SIG_LEN)

static void seg_key(uint8_t k[12], uint32_t origin, uint64_t last)
{
	be32(k, origin);
	be64(k + 4, last);
}

static void seg_decode(const uint8_t *k, const uint8_t *v, struct seg *g)
{
	g->origin = rd_be32(k);
	g->last = rd_be64(k + 4);
	g->first = rd_le64(v);
	g->last_hlc = rd_le64(v + 8);
	memcpy(g->hash, v + 16, SEG_HASH_LEN);
	memcpy(g->sig, v + 16 + SEG_HASH_LEN, SEG_SIG_LEN);
}

int st_seg_put(struct wtxn *w, const struct seg *g, struct err *e)
{
	uint8_t kb[12], vb[SEG_VAL_LEN];
	MDB_val k = {12, kb}, v = {SEG_VAL_LEN, vb};
	int rc;

	seg_key(kb, g->origin, g->last);
	le64(vb, g->first);
	le64(vb + 8, g->last_hlc);
	memcpy(vb + 16, g->hash, SEG_HASH_LEN);
	memcpy(vb + 16 + SEG_HASH_LEN, g->sig, SEG_SIG_LEN);
	if ((rc = mdb_put(w->txn, w->s->sigs, &k, &v, 0)))
		return st_lmdb_err(e, rc, "store a signed segment");
	return 0;
}

int st_seg_get(MDB_txn *txn, struct store *s, uint32_t origin, uint64_t last,
	       struct seg *out)
{
	uint8_t kb[12];
	MDB_val k = {12, kb}, v;
	int rc;

	seg_key(kb, origin, last);
	if ((rc = mdb_get(txn, s->sigs, &k, &v)))
		return rc;
	if (v.mv_size != SEG_VAL_LEN)
		return MDB_CORRUPTED;
	seg_decode(kb, v.mv_data, out);
	return 0;
}

/* ---- our own changes ---------------------------------------------------- */

int st_seg_close(struct wtxn *w, struct err *e)
{
	if (!w->seg_open)
		return 0;
	w->seg_open = 0;
	seg_hash_end(&w->seg_h, w->seg.hash);
	seg_sign(&w->seg, w->s->sk);
	return st_seg_put(w, &w->seg, e);
}

int st_seg_add(struct wtxn *w, uint32_t origin, uint64_t seq, uint64_t hlc,
	       const uint8_t *raw, size_t len, struct err *e)
{
	if (!w->s->has_sk)
		return 0; /* tests without a key: unsigned */
	if (!w->seg_open) {
		memset(&w->seg, 0, sizeof w->seg);
		w->seg.origin = origin;
		w->seg.first = seq;
		w->seg_n = 0;
		w->seg_bytes = 0;
		seg_hash_begin(&w->seg_h);
		w->seg_open = 1;
	}
	seg_hash_change(&w->seg_h, raw, len);
	w->seg.last = seq;
	w->seg.last_hlc = hlc;
	w->seg_n++;
	w->seg_bytes += len;
	if (w->seg_n >= SEG_MAX_CHANGES || w->seg_bytes >= SEG_MAX_BYTES)
		return st_seg_close(w, e);
	return 0;
}

/* ---- keys ----------------------------------------------------------------- */

int store_set_keys(struct store *s, const struct store_key *k, size_t n,
		   struct err *e)
{
	struct store_key *copy = malloc((n + 1) * sizeof *copy);
	size_t m = 0;

	if (copy == NULL)
		return err_set(e, MSCE_ENOMEM, "signing keys");
	for (size_t i = 0; i < n; i++)
		copy[m++] = k[i];
	if (s->has_sk) {
		copy[m].node = s->node_id;
		memcpy(copy[m].pk, s->pk, SEG_PK_LEN);
		m++;
	}
	pthread_mutex_lock(&s->stlock);
	free(s->keys);
	s->keys = copy;
	s->nkeys = m;
	pthread_mutex_unlock(&s->stlock);
	return 0;
}

int store_status_sign(struct store *s, const uint8_t *status, size_t len,
		      uint8_t sig[SEG_SIG_LEN])
{
	if (!s->has_sk)
		return -1;
	status_sign(status, len, s->sk, sig);
	return 0;
}

/* Tries every key configured for node (several after a rotation): 0 when
 * one verifies, -1 when none does, 1 when node has none. */
static int node_keys_verify(struct store *s, uint32_t node,
			    int (*verify)(const void *what,
					  const uint8_t pk[SEG_PK_LEN]),
			    const void *what)
{
	int known = 0, ok = 0;

	pthread_mutex_lock(&s->stlock);
	for (size_t i = 0; i < s->nkeys && !ok; i++) {
		if (s->keys[i].node != node)
			continue;
		known = 1;
		ok = verify(what, s->keys[i].pk) == 0;
	}
	pthread_mutex_unlock(&s->stlock);
	return ok ? 0 : known ? -1 : 1;
}

struct signed_status {
	const uint8_t *status, *sig;
	size_t len;
};

static int verify_status(const void *what, const uint8_t pk[SEG_PK_LEN])
{
	const struct signed_status *x = what;
	return status_verify(x->status, x->len, x->sig, pk);
}

static int verify_seg(const void *what, const uint8_t pk[SEG_PK_LEN])
{
	return seg_verify(what, pk);
}

int store_status_verify(struct store *s, uint32_t node, const uint8_t *status,
			size_t len, const uint8_t sig[SEG_SIG_LEN])
{
	struct signed_status x = {status, sig, len};
	return node_keys_verify(s, node, verify_status, &x);
}

void st_seg_hash_blobs(const struct store_blob *b, size_t n,
		       uint8_t out[SEG_HASH_LEN])
{
	struct seg_hasher h;

	seg_hash_begin(&h);
	for (size_t j = 0; j < n; j++)
		seg_hash_change(&h, b[j].data, b[j].len);
	seg_hash_end(&h, out);
}

int st_seg_check(struct store *s, const struct seg *g, struct err *e)
{
	uint32_t node = writer_node(g->origin);
	int rc = node_keys_verify(s, node, verify_seg, g);

	if (rc == 0)
		return 0;
	if (rc > 0)
		return err_set(e, MSCE_EAUTH,
			       "segment %u/%llu..%llu: no signing key for node "
			       "%u in the configuration",
			       g->origin, (unsigned long long)g->first,
			       (unsigned long long)g->last, node);
	return err_set(e, MSCE_EAUTH,
		       "segment %u/%llu..%llu: the signature does not verify "
		       "with node %u's signing key",
		       g->origin, (unsigned long long)g->first,
		       (unsigned long long)g->last, node);
}

/* ---- truncation ------------------------------------------------------------ */

uint64_t st_seg_floor(MDB_txn *txn, struct store *s, uint32_t origin,
		      uint64_t upto)
{
	uint8_t kb[12];
	MDB_cursor *cur;
	MDB_val k = {12, kb}, v;
	uint64_t at = upto;
	int rc;

	if (mdb_cursor_open(txn, s->sigs, &cur))
		return 0;
	/* The first segment ending above upto: if it starts at or below
	 * upto, the floor goes back to just before it. */
	seg_key(kb, origin, upto + 1);
	rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
	if (rc == 0 && k.mv_size == 12 && rd_be32(k.mv_data) == origin &&
	    v.mv_size == SEG_VAL_LEN) {
		uint64_t first = rd_le64(v.mv_data);
		if (first != 0 && first <= upto)
			at = first - 1;
	}
	mdb_cursor_close(cur);
	return at;
}

int st_seg_delete_below(struct wtxn *w, uint32_t origin, uint64_t upto)
{
	uint8_t kb[12];
	MDB_cursor *cur;
	MDB_val k, v;
	int rc;

	if ((rc = mdb_cursor_open(w->txn, w->s->sigs, &cur)))
		return rc;
	for (;;) {
		seg_key(kb, origin, 0);
		k.mv_size = 12;
		k.mv_data = kb;
		rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
		if (rc || k.mv_size != 12 || rd_be32(k.mv_data) != origin ||
		    rd_be64((uint8_t *)k.mv_data + 4) >= upto)
			break;
		if ((rc = mdb_cursor_del(cur, 0)))
			break;
	}
	mdb_cursor_close(cur);
	return rc == MDB_NOTFOUND ? 0 : rc;
}

/* ---- reading for relays ------------------------------------------------------ */

int store_log_read_segs(struct store *s, uint32_t origin, uint64_t from,
			size_t max_count, size_t max_bytes, store_log_cb cb,
			store_seg_cb seg_cb, void *ctx, struct err *e)
{
	struct vv_entry vv = store_vv_get(s, origin);
	uint8_t kb[12], sb[12];
	MDB_txn *txn;
	MDB_cursor *lc = NULL, *sc = NULL;
	MDB_val k, v, sk, sv;
	size_t count = 0, bytes = 0;
	struct logbuf lb = {0};
	/* A segment's changes in the clear, until it is known whole. */
	uint8_t *buf = NULL;
	size_t cap = 0, off[SEG_MAX_CHANGES + 1];
	int rc;

	if (from <= vv.floor)
		return err_set(e, MSCE_ENOTFOUND,
			       "log of origin %u starts after seq %llu", origin,
			       (unsigned long long)vv.floor);
	if ((rc = st_read_begin(s, &txn, e)))
		return rc;
	if ((rc = mdb_cursor_open(txn, s->log, &lc)) ||
	    (rc = mdb_cursor_open(txn, s->sigs, &sc))) {
		rc = st_lmdb_err(e, rc, "open log cursor");
		goto out;
	}
	seg_key(sb, origin, from);
	sk.mv_size = 12;
	sk.mv_data = sb;
	for (int op = MDB_SET_RANGE;; op = MDB_NEXT) {
		struct seg g;
		if (mdb_cursor_get(sc, &sk, &sv, op) != 0 || sk.mv_size != 12 ||
		    rd_be32(sk.mv_data) != origin ||
		    sv.mv_size != SEG_VAL_LEN) {
			if (count == 0 && from <= vv.seq)
				rc = err_set(e, MSCE_EAUTH,
					     "origin %u from seq %llu: no "
					     "signed segment (written without "
					     "a key)",
					     origin, (unsigned long long)from);
			break;
		}
		seg_decode(sk.mv_data, sv.mv_data, &g);
		if (seg_is_seal(&g))
			continue; /* legacy history: never relayed */
		if (g.first != from) {
			if (count == 0)
				rc = err_set(e, MSCE_EPROTO,
					     "origin %u: seq %llu does not "
					     "start a segment (%llu..%llu "
					     "does)",
					     origin, (unsigned long long)from,
					     (unsigned long long)g.first,
					     (unsigned long long)g.last);
			break;
		}
		/* Whole segments: stop before one that would go over. */
		size_t n = (size_t)(g.last - g.first + 1), sz = 0;
		if (count > 0 && count + n > max_count)
			break;
		if (n > SEG_MAX_CHANGES) {
			rc = err_set(e, MSCE_ECORRUPT,
				     "segment %u/%llu..%llu is too long",
				     origin, (unsigned long long)g.first,
				     (unsigned long long)g.last);
			goto out;
		}
		be32(kb, origin);
		be64(kb + 4, g.first);
		k.mv_size = 12;
		k.mv_data = kb;
		int lop = MDB_SET_KEY;
		off[0] = 0;
		for (uint64_t q = g.first; q <= g.last; q++, lop = MDB_NEXT) {
			const uint8_t *c;
			size_t len, i = (size_t)(q - g.first);
			if ((rc = mdb_cursor_get(lc, &k, &v, lop)) != 0 ||
			    k.mv_size != 12 || rd_be32(k.mv_data) != origin ||
			    rd_be64((uint8_t *)k.mv_data + 4) != q) {
				rc = err_set(e, MSCE_ECORRUPT,
					     "log of origin %u lacks seq %llu "
					     "of a segment",
					     origin, (unsigned long long)q);
				goto out;
			}
			rc = st_log_open(s, txn, origin, q, &v, &lb, &c, &len,
					 e);
			if (rc == LOG_REDACTED) {
				/* Its values were erased here: what was
				 * signed cannot be sent, so a peer that lacks
				 * it gets a snapshot. */
				rc = count > 0 ? 0
					       : err_set(e, MSCE_ENOTFOUND,
							 "origin %u seq %llu "
							 "was erased here: "
							 "its log entry can no "
							 "longer be sent",
							 origin,
							 (unsigned long long)q);
				goto out;
			}
			if (rc)
				goto out;
			if (off[i] + len > cap) {
				size_t nc = cap ? cap : 65536;
				while (nc < off[i] + len)
					nc *= 2;
				uint8_t *nb = realloc(buf, nc);
				if (nb == NULL) {
					rc = err_set(e, MSCE_ENOMEM,
						     "read log");
					goto out;
				}
				buf = nb;
				cap = nc;
			}
			memcpy(buf + off[i], c, len);
			off[i + 1] = off[i] + len;
			sz += len;
		}
		if (count > 0 && bytes + sz > max_bytes)
			break;
		for (uint64_t q = g.first; q <= g.last; q++) {
			size_t i = (size_t)(q - g.first);
			if ((rc = cb(ctx, origin, q, buf + off[i],
				     off[i + 1] - off[i])))
				goto out;
		}
		if ((rc = seg_cb(ctx, &g)))
			goto out;
		count += n;
		bytes += sz;
		from = g.last + 1;
		if (count >= max_count || bytes >= max_bytes)
			break;
	}
out:
	if (sc)
		mdb_cursor_close(sc);
	if (lc)
		mdb_cursor_close(lc);
	st_read_end(s, txn);
	st_logbuf_free(&lb);
	free(buf);
	return rc;
}

/* ---- seals ------------------------------------------------------------------- */

size_t store_seals(struct store *s, struct seg *out, size_t max)
{
	MDB_txn *txn;
	MDB_cursor *cur;
	MDB_val k, v;
	size_t n = 0;

	if (st_read_begin(s, &txn, NULL))
		return 0;
	if (mdb_cursor_open(txn, s->sigs, &cur) == 0) {
		for (int op = MDB_FIRST; mdb_cursor_get(cur, &k, &v, op) == 0;
		     op = MDB_NEXT) {
			if (k.mv_size != 12 || v.mv_size != SEG_VAL_LEN ||
			    rd_le64(v.mv_data) != 0)
				continue;
			if (n < max)
				seg_decode(k.mv_data, v.mv_data, &out[n]);
			n++;
		}
		mdb_cursor_close(cur);
	}
	st_read_end(s, txn);
	return n;
}

struct seal_args {
	const struct seg *g;
	size_t n;
};

static int seal_batch(struct wtxn *w, void *arg, struct err *e)
{
	struct seal_args *a = arg;
	for (size_t i = 0; i < a->n; i++) {
		struct seg have;
		if (st_seg_get(w->txn, w->s, a->g[i].origin, a->g[i].last,
			       &have) == 0)
			continue;
		int rc = st_seg_put(w, &a->g[i], e);
		if (rc)
			return rc;
	}
	return 0;
}

int store_check_seals(struct store *s, const struct seg *g, size_t n,
		      size_t *fresh, struct err *e)
{
	MDB_txn *txn;

	*fresh = 0;
	for (size_t i = 0; i < n; i++) {
		if (!seg_is_seal(&g[i]) ||
		    sodium_is_zero(g[i].hash, SEG_HASH_LEN) != 1)
			return err_set(e, MSCE_EPROTO,
				       "seal of origin %u is not a seal",
				       g[i].origin);
		if (st_seg_check(s, &g[i], e))
			return e ? e->code : MSCE_EAUTH;
	}
	/* Most Hellos repeat seals we hold: no commit for them. */
	if (st_read_begin(s, &txn, e))
		return e ? e->code : MSCE_EIO;
	for (size_t i = 0; i < n; i++) {
		struct seg have;
		if (st_seg_get(txn, s, g[i].origin, g[i].last, &have) != 0)
			(*fresh)++;
	}
	st_read_end(s, txn);
	return 0;
}

int store_add_seals(struct store *s, const struct seg *g, size_t n,
		    struct err *e)
{
	struct seal_args a = {g, n};
	size_t fresh;
	int rc = store_check_seals(s, g, n, &fresh, e);

	if (rc != 0 || fresh == 0)
		return rc;
	return st_run_batch(s, seal_batch, &a, e);
}
