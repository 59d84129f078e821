/* SPDX-License-Identifier: Apache-2.0 */
/* Snapshots: reading every record with the vector it covers, for a peer
 * that needs changes below the log floor, and merging such a stream on
 * the receiver.
 *
 * Reading is point-in-time: one read transaction, begun with the vector
 * under the write lock, serves every chunk, so the records are exactly the
 * effect of the changes the vector covers (no more, no less). The cost is
 * that the map cannot grow while a snapshot is being read (growth waits a
 * second, then the write fails with a clear error and is retried).
 *
 * Merging is all or nothing: chunks are staged in their own database
 * (keyed by the sending node), and the last chunk merges the whole staged
 * snapshot and raises the vector in one transaction. A snapshot cut off
 * half way changes nothing but the staging area, which the sender's next
 * snapshot clears.
 *
 * The merge, per record, ours R with vector M and theirs S with vector C
 * (each the exact effect of its vector): a version C covers that S lacks
 * was deleted or replaced there, possibly by a delete since collected
 * that we would never see: it goes. A version M covers we know the fate
 * of already: S's copy is ignored (a tombstone we collected would not
 * stop it coming back). Everything else merges by the normal rule. The
 * result is the effect of M and C together. */
#include <stdlib.h>
#include <string.h>

#include "mutant.h"
#include "schema.h"
#include "store_int.h"

struct store_snap {
	struct store *s;
	MDB_txn *txn;
	MDB_cursor *cur;
	struct vv_entry *vvs;
	size_t nvv;
	int started, done;
	int inside;	      /* the next chunk resumes inside `at` */
	uint32_t next_field; /* ...at this field */
	struct store_pos at;
	struct arena a;
	/* The record being sent in parts (inside): decoded once, not once
	 * per chunk (a sealed record is decrypted whole). In a. */
	struct record cur_rec;
	struct seg *segs; /* proving vvs: one per origin that has one */
	size_t nsegs;
};

int store_snap_begin(struct store *s, struct store_snap **out, struct err *e)
{
	struct store_snap *sn = calloc(1, sizeof *sn);
	int rc;

	*out = NULL;
	if (sn == NULL)
		return err_set(e, MSCE_ENOMEM, "begin snapshot");
	sn->s = s;
	arena_init(&sn->a, 0);
	/* Under the write lock: the read sees exactly the committed state
	 * whose vector we copy. The map cannot grow while the read lasts, so
	 * grow it now if it is more than half used. */
	pthread_mutex_lock(&s->wlock);
	if (store_size(s) > s->map_size / 2 && s->map_size < s->max_map)
		st_grow_map(s, NULL);
	rc = st_read_begin(s, &sn->txn, e);
	if (rc == 0) {
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
	}
	pthread_mutex_unlock(&s->wlock);
	if (rc == 0 && sn->vvs == NULL)
		rc = err_set(e, MSCE_ENOMEM, "begin snapshot");
	if (rc == 0) {
		sn->segs = calloc(sn->nvv ? sn->nvv : 1, sizeof *sn->segs);
		if (sn->segs == NULL)
			rc = err_set(e, MSCE_ENOMEM, "begin snapshot");
		for (size_t i = 0; rc == 0 && i < sn->nvv; i++)
			if (sn->vvs[i].seq > 0 &&
			    st_seg_get(sn->txn, s, sn->vvs[i].origin,
				       sn->vvs[i].seq,
				       &sn->segs[sn->nsegs]) == 0)
				sn->nsegs++;
	}
	if (rc == 0 && (rc = mdb_cursor_open(sn->txn, s->recs, &sn->cur)))
		rc = st_lmdb_err(e, rc, "snapshot cursor");
	if (rc) {
		store_snap_end(sn);
		return rc;
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

size_t store_snap_segs(const struct store_snap *sn, struct seg *out,
		       size_t max)
{
	for (size_t i = 0; i < sn->nsegs && i < max; i++)
		out[i] = sn->segs[i];
	return sn->nsegs;
}

static void pos_set(struct store_pos *p, const uint8_t *rk, size_t rklen,
		    const uint8_t *field, size_t flen)
{
	const uint8_t *z = memchr(rk, 0, rklen);
	size_t cl = (size_t)(z - rk);
	memcpy(p->coll, rk, cl);
	p->coll[cl] = '\0';
	p->coll_len = cl;
	memcpy(p->key, z + 1, rklen - cl - 1);
	p->key[rklen - cl - 1] = '\0';
	p->key_len = rklen - cl - 1;
	if (flen)
		memcpy(p->field, field, flen);
	p->field[flen] = '\0';
	p->field_len = flen;
}

/* Bytes a field state costs in a chunk, roughly. */
static size_t field_cost(const struct field_state *f)
{
	size_t n = 64 + f->name_len + f->w.value_len;
	for (int i = 0; i < f->nlosers; i++)
		n += 48 + f->losers[i].value_len;
	return n;
}

int store_snap_next(struct store_snap *sn, size_t max_bytes,
		    store_record_cb cb, void *ctx, int *done,
		    struct store_pos *end, struct err *e)
{
	size_t bytes = 0;
	MDB_val k, v;
	int rc = 0;

	*done = sn->done;
	if (sn->done)
		return 0;
	for (;;) {
		const uint8_t *z;
		struct record r, part;
		uint32_t i = 0, j;
		int op = sn->inside ? MDB_GET_CURRENT
			 : sn->started ? MDB_NEXT
				       : MDB_FIRST;

		if (bytes > 0 && bytes >= max_bytes && !sn->inside) {
			/* Full: the next chunk starts at the next record. */
			if ((rc = mdb_cursor_get(sn->cur, &k, &v, MDB_NEXT))) {
				sn->done = 1;
				rc = 0;
				break;
			}
			pos_set(&sn->at, k.mv_data, k.mv_size, NULL, 0);
			/* Step back: that record is read again next time. */
			mdb_cursor_get(sn->cur, &k, &v, MDB_PREV);
			break;
		}
		if ((rc = mdb_cursor_get(sn->cur, &k, &v, op)) != 0) {
			if (rc != MDB_NOTFOUND) {
				rc = st_lmdb_err(e, rc, "read snapshot");
				break;
			}
			sn->done = 1;
			rc = 0;
			break;
		}
		sn->started = 1;
		z = memchr(k.mv_data, 0, k.mv_size);
		if (z == NULL || k.mv_size > MSCE_MAX_COLLECTION + 1 + MSCE_MAX_KEY) {
			rc = err_set(e, MSCE_ECORRUPT, "record %.*s is corrupt",
				     (int)k.mv_size, (char *)k.mv_data);
			break;
		}
		if (!sn->inside) {
			arena_reset(&sn->a);
			if ((rc = st_rec_decode(sn->s, sn->txn, k.mv_data,
						k.mv_size, v.mv_data, v.mv_size,
						&sn->cur_rec, &sn->a, e)))
				break;
		}
		r = sn->cur_rec;
		if (sn->inside)
			i = sn->next_field;
		/* As many fields as fit; at least one per chunk. */
		for (j = i; j < r.nfields; j++) {
			size_t c = field_cost(&r.fields[j]);
			if (bytes + c > max_bytes && (j > i || bytes > 0))
				break;
			bytes += c;
		}
		bytes += 64 + k.mv_size;
		part = r;
		part.fields = r.fields + i;
		part.nfields = j - i;
		part.cap = part.nfields;
		if (part.nfields > 0 ||
		    (!sn->inside && (!version_is_zero(r.tomb) ||
				     !version_is_zero(r.erased)))) {
			size_t cl = (size_t)(z - (uint8_t *)k.mv_data);
			struct store_record_view view = {
				k.mv_data, cl, (const char *)z + 1,
				k.mv_size - cl - 1, &part};
			if ((rc = cb(ctx, &view)) != 0)
				break;
		}
		sn->inside = j < r.nfields;
		if (sn->inside) {
			/* The rest of this record goes in the next chunk. */
			sn->next_field = j;
			pos_set(&sn->at, k.mv_data, k.mv_size, r.fields[j].name,
				r.fields[j].name_len);
			break;
		}
	}
	*done = sn->done;
	if (rc == 0 && !sn->done && end != NULL)
		*end = sn->at;
	return rc;
}

void store_snap_end(struct store_snap *sn)
{
	if (sn == NULL)
		return;
	if (sn->cur != NULL)
		mdb_cursor_close(sn->cur);
	if (sn->txn != NULL)
		st_read_end(sn->s, sn->txn);
	arena_free(&sn->a);
	free(sn->vvs);
	free(sn->segs);
	free(sn);
}

/* ---- merging ------------------------------------------------------------ */

static int covered(const struct vv_entry *vv, size_t n, struct version v)
{
	for (size_t i = 0; i < n; i++)
		if (vv[i].origin == v.origin)
			return v.hlc <= vv[i].hlc;
	return 0;
}

static int has_version(const struct field_state *f, struct version v)
{
	if (f == NULL)
		return 0;
	if (version_cmp(f->w.v, v) == 0)
		return 1;
	for (int i = 0; i < f->nlosers; i++)
		if (version_cmp(f->losers[i].v, v) == 0)
			return 1;
	return 0;
}

/* Keeps the versions of f that keep() accepts; 0 when none is left.
 * Winner and losers are in version order, so the highest left wins. */
static int filter(struct field_state *f,
		  int (*keep)(const struct fv *x, const void *arg),
		  const void *arg, struct arena *a)
{
	struct fv k[RECORD_MAX_LOSERS + 1];
	size_t n = 0, total = 1 + (size_t)f->nlosers;

	for (size_t i = 0; i < total; i++) {
		const struct fv *x = i == 0 ? &f->w : &f->losers[i - 1];
		if (keep(x, arg))
			k[n++] = *x;
	}
	if (n == 0)
		return 0;
	if (n == total)
		return 1;
	/* A new array: f may be a copy sharing its losers with another. */
	f->w = k[0];
	f->nlosers = (uint8_t)(n - 1);
	f->losers = NULL;
	if (n > 1) {
		f->losers = arena_memdup(a, &k[1], (n - 1) * sizeof *k);
		if (f->losers == NULL)
			return -1;
	}
	return 1;
}

struct gone_arg {
	const struct field_state *theirs;
	const struct vv_entry *cover;
	size_t ncover;
};

/* Ours: kept unless they held it and no longer have it. */
static int not_gone(const struct fv *x, const void *arg)
{
	const struct gone_arg *g = arg;
	if (MUTANT("snapshot_drop"))
		return 1;
	return !covered(g->cover, g->ncover, x->v) ||
	       has_version(g->theirs, x->v);
}

struct known_arg {
	const struct vv_entry *mine;
	size_t nmine;
};

/* Theirs: kept unless we held it already. */
static int not_known(const struct fv *x, const void *arg)
{
	const struct known_arg *k = arg;
	return !covered(k->mine, k->nmine, x->v);
}

static const struct field_state *field_of(const struct record *r,
					  const uint8_t *name, size_t len)
{
	return r == NULL ? NULL : record_field(r, name, len);
}

/* Merges their whole record (or NULL: they have none) into ours. */
static int merge_one(struct wtxn *w, const struct vv_entry *cover,
		     size_t ncover, const uint8_t *rk, size_t rklen,
		     const struct record *theirs, struct err *e)
{
	struct store *s = w->s;
	const uint8_t *z = memchr(rk, 0, rklen);
	size_t clen = (size_t)(z - rk), klen = rklen - clen - 1;
	struct known_arg ka = {w->vvs, w->nvv};
	struct record r;
	struct loser_ref *old;
	size_t nold;
	struct version old_tomb;
	int exists, changed = 0, ch, rc;

	/* Each record's merge needs only its own memory: a snapshot of many
	 * records must not run the store's arena dry. */
	arena_reset(&s->arena);
	if ((rc = st_load_record(w, rk, rklen, &r, &exists, e)))
		return rc;
	old_tomb = r.tomb;
	if (st_collect_losers(&r, &s->arena, &old, &nold))
		return err_set(e, MSCE_ENOMEM, "index conflicts");
	for (uint32_t i = 0; i < r.nfields;) {
		struct field_state *f = &r.fields[i];
		struct gone_arg g = {field_of(theirs, f->name, f->name_len),
				     cover, ncover};
		uint8_t before = f->nlosers;
		struct version win = f->w.v;
		int kept = filter(f, not_gone, &g, &s->arena);
		if (kept < 0)
			return err_set(e, MSCE_ENOMEM, "merge snapshot");
		if (kept) {
			changed |= before != f->nlosers ||
				   version_cmp(win, f->w.v) != 0;
			i++;
			continue;
		}
		changed = 1;
		memmove(f, f + 1, (r.nfields - i - 1) * sizeof *f);
		r.nfields--;
	}
	/* A tombstone the snapshot covers is as the source holds it: the
	 * source saw that delete, and may since have collected it (or a
	 * later one). Kept, it would be a base below the delete the other
	 * centers remember, and a write here would be a delete conflict at
	 * some centers and not at others. */
	if (!version_is_zero(r.tomb) && covered(cover, ncover, r.tomb) &&
	    !MUTANT("stale_tomb")) {
		struct version t = theirs ? theirs->tomb : (struct version){0, 0};
		if (version_cmp(t, r.tomb) < 0) {
			r.tomb = t;
			changed = 1;
			/* An erase mark stays at or below the tombstone: the
			 * source's, as its tombstone is now ours. Above none
			 * it stays, as collection keeps it (store_gc.c):
			 * without a master key it is all that keeps the
			 * erased puts in the log from being read. */
			if (version_cmp(r.erased, t) > 0 &&
			    (!version_is_zero(t) ||
			     MUTANT("snapshot_lowers_erase_mark")))
				r.erased = theirs && version_cmp(theirs->erased,
								 t) <= 0
					       ? theirs->erased
					       : (struct version){0, 0};
		}
	}
	if (theirs != NULL) {
		if (!version_is_zero(theirs->tomb) &&
		    !covered(w->vvs, w->nvv, theirs->tomb)) {
			record_merge_delete(&r, theirs->tomb, &ch);
			changed |= ch;
		}
		/* An erasure we have not seen: erased here too, as if its
		 * change had come (the change itself is below our floor). */
		if (version_cmp(theirs->erased, r.erased) > 0 &&
		    !covered(w->vvs, w->nvv, theirs->erased) &&
		    !MUTANT("snapshot_no_erase")) {
			r.erased = theirs->erased;
			changed = 1;
			if ((rc = st_dek_shred(w, rk, rklen, e)))
				return rc;
		}
		for (uint32_t j = 0; j < theirs->nfields; j++) {
			struct field_state fs = theirs->fields[j];
			int kept = filter(&fs, not_known, &ka, &s->arena);
			if (kept < 0)
				return err_set(e, MSCE_ENOMEM,
					       "merge snapshot");
			if (!kept)
				continue;
			if (record_merge_state(&r, &fs, &s->arena, &ch))
				return err_set(e, MSCE_ENOMEM, "merge snapshot");
			changed |= ch;
		}
	}
	if (changed &&
	    (rc = st_save_record(w, (const char *)rk, clen,
				 (const char *)z + 1, klen, rk, rklen, &r,
				 old_tomb, old, nold, e)))
		return rc;
	return 0;
}

/* Raises the vector to what the snapshot covers. */
/* The segment of c's cover proving origin up to seq, or NULL. */
static const struct seg *cover_seg(const struct store_snap_chunk *c,
				   uint32_t origin, uint64_t seq)
{
	for (size_t i = 0; c->cover_segs != NULL && i < c->ncover_segs; i++)
		if (c->cover_segs[i].origin == origin &&
		    c->cover_segs[i].last == seq)
			return &c->cover_segs[i];
	return NULL;
}

/* Every origin the snapshot claims is proved by its origin's signature:
 * a sender cannot raise our vector past what the origins signed. */
static int check_cover(struct store *s, const struct store_snap_chunk *c,
		       struct err *e)
{
	int rc;

	if (MUTANT("unchecked_cover")) /* any claim is taken */
		return 0;
	for (size_t i = 0; i < c->ncover; i++) {
		const struct vv_entry *v = &c->cover[i];
		const struct seg *g;
		if (v->seq == 0)
			continue;
		g = cover_seg(c, v->origin, v->seq);
		if (g == NULL)
			return err_set(e, MSCE_EAUTH,
				       "snapshot claims origin %u up to seq "
				       "%llu without its signature",
				       v->origin, (unsigned long long)v->seq);
		if (g->last_hlc != v->hlc ||
		    (seg_is_seal(g) &&
		     sodium_is_zero(g->hash, SEG_HASH_LEN) != 1))
			return err_set(e, MSCE_EAUTH,
				       "snapshot claims origin %u up to seq "
				       "%llu at hlc %llu, its signature says "
				       "hlc %llu",
				       v->origin, (unsigned long long)v->seq,
				       (unsigned long long)v->hlc,
				       (unsigned long long)g->last_hlc);
		if ((rc = st_seg_check(s, g, e))) {
			err_wrap(e, "snapshot cover");
			return rc;
		}
	}
	return 0;
}

static int raise_vector(struct wtxn *w, const struct store_snap_chunk *c,
			struct err *e)
{
	const struct vv_entry *vv = c->cover;
	size_t n = c->ncover;

	for (size_t i = 0; i < n; i++) {
		struct vv_entry *mine;
		int rc;

		/* No room, as for a change (store_apply): the snapshot
		 * may be sound, this vector is full. */
		if (st_vv_find(w->vvs, w->nvv, vv[i].origin) == NULL &&
		    w->nvv >= MSCE_MAX_ORIGINS)
			return err_set(e, MSCE_ETOOBIG,
				       "snapshot vector: origin %u would be "
				       "origin %d of the version vector, "
				       "limit %d",
				       vv[i].origin, MSCE_MAX_ORIGINS + 1,
				       MSCE_MAX_ORIGINS);
		if ((mine = st_wtxn_vv(w, vv[i].origin)) == NULL)
			return err_set(e, MSCE_ENOMEM, "grow vector");
		if (vv[i].seq <= mine->seq)
			continue;
		if (vv[i].origin == w->s->writer)
			return err_set(e, MSCE_EMISMATCH,
				       "snapshot holds %llu changes of this "
				       "store's own writer, which made %llu",
				       (unsigned long long)vv[i].seq,
				       (unsigned long long)mine->seq);
		/* The changes in (mine->seq, their seq] are merged but not in
		 * our log: we cannot relay them, so the floor moves past. */
		if ((rc = st_log_delete_upto(w, vv[i].origin, vv[i].seq)) ||
		    (rc = st_seg_delete_below(w, vv[i].origin, vv[i].seq)))
			return st_lmdb_err(e, rc, "truncate log");
		/* Kept, to prove this entry in snapshots we send. */
		const struct seg *g = cover_seg(c, vv[i].origin, vv[i].seq);
		if (g != NULL && (rc = st_seg_put(w, g, e)))
			return rc;
		mine->seq = vv[i].seq;
		mine->hlc = vv[i].hlc;
		mine->floor = vv[i].seq;
		hlc_observe(&w->clock, vv[i].hlc);
	}
	return 0;
}

/* Staging keys: source(BE32) coll \0 key \0 first field of the part. */
static size_t stage_key(uint8_t *out, uint32_t source, const uint8_t *rk,
			size_t rklen, const uint8_t *field, size_t flen)
{
	be32(out, source);
	memcpy(out + 4, rk, rklen);
	out[4 + rklen] = 0;
	if (flen) /* a record of a tombstone only: no field, field NULL */
		memcpy(out + 5 + rklen, field, flen);
	return 5 + rklen + flen;
}

#define STAGE_KEY_MAX (5 + MSCE_MAX_COLLECTION + 1 + MSCE_MAX_KEY + \
		       MSCE_MAX_FIELD_NAME)

/* Whether staged key k is source's. */
static int staged_by(const MDB_val *k, uint32_t source)
{
	return k->mv_size >= 4 && rd_be32(k->mv_data) == source;
}

/* Drops what source staged (a snapshot cut off half way), and its key:
 * the pages left behind cannot be read. */
static int stage_clear(struct wtxn *w, uint32_t source)
{
	uint8_t kb[4];
	MDB_cursor *cur;
	MDB_val k, v;
	int rc;

	if ((rc = st_stage_key_drop(w, source)))
		return rc;
	if ((rc = mdb_cursor_open(w->txn, w->s->snapin, &cur)))
		return rc;
	/* Usually source's entries are all there is: then empty the database
	 * at once, which frees its pages without visiting each entry. */
	if (mdb_cursor_get(cur, &k, &v, MDB_FIRST) == 0 &&
	    staged_by(&k, source) &&
	    mdb_cursor_get(cur, &k, &v, MDB_LAST) == 0 &&
	    staged_by(&k, source)) {
		mdb_cursor_close(cur);
		return mdb_drop(w->txn, w->s->snapin, 0);
	}
	for (;;) {
		be32(kb, source);
		k.mv_size = 4;
		k.mv_data = kb;
		rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
		if (rc || !staged_by(&k, source))
			break;
		if ((rc = mdb_cursor_del(cur, 0)))
			break;
	}
	mdb_cursor_close(cur);
	return rc == MDB_NOTFOUND ? 0 : rc;
}

static int stage_put(struct wtxn *w, uint32_t source,
		     const struct store_snap_record *in, struct err *e)
{
	struct store *s = w->s;
	uint8_t rk[MSCE_MAX_COLLECTION + 1 + MSCE_MAX_KEY], kb[STAGE_KEY_MAX];
	size_t rklen = rec_key(rk, in->coll, in->coll_len, in->key,
			       in->key_len);
	const struct record *r = in->rec;
	MDB_val k, v;
	int rc;

	k.mv_size = stage_key(kb, source, rk, rklen,
			      r->nfields ? r->fields[0].name : NULL,
			      r->nfields ? r->fields[0].name_len : 0);
	k.mv_data = kb;
	if ((rc = st_stage_encode(w, source, &k, r, &v, e)))
		return rc;
	/* Chunks come in key order (another source's staging may follow:
	 * then in place). */
	if ((rc = st_put_append(w->txn, s->snapin, &k, &v)))
		return st_lmdb_err(e, rc, "stage snapshot");
	return 0;
}

static int bytes_cmp(const uint8_t *a, size_t alen, const uint8_t *b,
		     size_t blen)
{
	size_t n = alen < blen ? alen : blen;
	int c = n ? memcmp(a, b, n) : 0;
	if (c)
		return c;
	return alen < blen ? -1 : alen > blen;
}

/* Their next staged record, its parts joined; *rklen = 0 at the end. The
 * cursor is left on the first part of the record after it. */
static int stage_next(struct wtxn *w, MDB_cursor *cur, uint32_t source,
		      MDB_val *k, int *have, uint8_t *rk, size_t *rklen,
		      struct record *out, struct arena *a, struct err *e)
{
	struct field_state *fs = NULL;
	size_t nfs = 0, cap = 0;

	*rklen = 0;
	memset(out, 0, sizeof *out);
	while (*have) {
		MDB_val v;
		struct record part;
		const uint8_t *p = (const uint8_t *)k->mv_data + 4;
		const uint8_t *z1 = memchr(p, 0, k->mv_size - 4), *z2;
		size_t len;
		int rc;

		if (!staged_by(k, source))
			break;
		if (z1 == NULL ||
		    (z2 = memchr(z1 + 1, 0,
				 k->mv_size - 4 - (size_t)(z1 + 1 - p))) ==
			NULL)
			return err_set(e, MSCE_ECORRUPT, "bad staged key");
		len = (size_t)(z2 - p);
		if (*rklen && (len != *rklen || memcmp(p, rk, len) != 0))
			break; /* the next record */
		if (!*rklen) {
			memcpy(rk, p, len);
			*rklen = len;
		}
		if ((rc = mdb_cursor_get(cur, k, &v, MDB_GET_CURRENT)))
			return st_lmdb_err(e, rc, "read staged snapshot");
		if ((rc = st_stage_decode(w, source, k, &v, &part, a, e)))
			return rc;
		out->tomb = part.tomb;
		out->erased = part.erased;
		if (nfs + part.nfields > cap) {
			size_t nc = (nfs + part.nfields) * 2 + 8;
			struct field_state *f = arena_alloc(a, nc * sizeof *f);
			if (f == NULL)
				return err_set(e, MSCE_ENOMEM,
					       "join staged snapshot");
			if (nfs)
				memcpy(f, fs, nfs * sizeof *f);
			fs = f;
			cap = nc;
		}
		if (part.nfields) /* a tombstone's part has none (NULL) */
			memcpy(fs + nfs, part.fields,
			       part.nfields * sizeof *fs);
		nfs += part.nfields;
		rc = mdb_cursor_get(cur, k, &v, MDB_NEXT);
		if (rc == MDB_NOTFOUND)
			*have = 0;
		else if (rc)
			return st_lmdb_err(e, rc, "read staged snapshot");
	}
	out->fields = fs;
	out->nfields = (uint32_t)nfs;
	out->cap = (uint32_t)cap;
	return 0;
}

/* The whole snapshot against the whole store, in key order. */
static int merge_staged(struct wtxn *w, const struct store_snap_chunk *c,
			struct err *e)
{
	struct store *s = w->s;
	uint8_t srk[MSCE_MAX_COLLECTION + 1 + MSCE_MAX_KEY], kb[4];
	uint8_t ork[MSCE_MAX_COLLECTION + 1 + MSCE_MAX_KEY];
	size_t srklen = 0, orklen = 0;
	MDB_cursor *sc = NULL, *oc = NULL;
	MDB_val sk, ok, ov;
	struct arena a;
	struct record theirs;
	int shave, ohave, rc;

	arena_init(&a, 64u << 20);
	w->append_recs = 1;
	if ((rc = mdb_cursor_open(w->txn, s->snapin, &sc)) ||
	    (rc = mdb_cursor_open(w->txn, s->recs, &oc))) {
		rc = st_lmdb_err(e, rc, "snapshot cursors");
		goto out;
	}
	be32(kb, c->source);
	sk.mv_size = 4;
	sk.mv_data = kb;
	shave = mdb_cursor_get(sc, &sk, &ov, MDB_SET_RANGE) == 0;
	if ((rc = stage_next(w, sc, c->source, &sk, &shave, srk, &srklen,
			     &theirs, &a, e)))
		goto out;
	ohave = mdb_cursor_get(oc, &ok, &ov, MDB_FIRST) == 0;
	if (ohave) {
		memcpy(ork, ok.mv_data, ok.mv_size);
		orklen = ok.mv_size;
	}
	while (rc == 0 && (srklen || ohave)) {
		int o = !srklen ? 1
			: !ohave ? -1
				 : bytes_cmp(srk, srklen, ork, orklen);
		arena_reset(&s->arena); /* per record, or a big store fills it */
		if (o > 0)
			rc = merge_one(w, c->cover, c->ncover, ork, orklen,
				       NULL, e);
		else
			rc = merge_one(w, c->cover, c->ncover, srk, srklen,
				       &theirs, e);
		if (rc == 0 && o >= 0) {
			/* Past the record just merged: re-seek, as the save
			 * may have moved the cursor. */
			ok.mv_size = orklen;
			ok.mv_data = ork;
			ohave = mdb_cursor_get(oc, &ok, &ov, MDB_SET_RANGE) == 0;
			if (ohave && ok.mv_size == orklen &&
			    memcmp(ok.mv_data, ork, orklen) == 0)
				ohave = mdb_cursor_get(oc, &ok, &ov, MDB_NEXT) ==
					0;
			if (ohave) {
				memcpy(ork, ok.mv_data, ok.mv_size);
				orklen = ok.mv_size;
			}
		}
		if (rc == 0 && o <= 0) {
			arena_reset(&a);
			rc = stage_next(w, sc, c->source, &sk, &shave, srk,
					&srklen, &theirs, &a, e);
		}
	}
out:
	w->append_recs = 0;
	if (sc != NULL)
		mdb_cursor_close(sc);
	if (oc != NULL)
		mdb_cursor_close(oc);
	arena_free(&a);
	return rc;
}

struct snapapply_args {
	const struct store_snap_chunk *c;
};

static int snapapply_batch(struct wtxn *w, void *arg, struct err *e)
{
	const struct store_snap_chunk *c = ((struct snapapply_args *)arg)->c;
	int rc;

	if (c->first && (rc = stage_clear(w, c->source)))
		return st_lmdb_err(e, rc, "clear snapshot staging");
	for (size_t i = 0; i < c->n; i++) {
		arena_reset(&w->s->arena);
		if ((rc = stage_put(w, c->source, &c->recs[i], e)))
			return rc;
	}
	if (!c->done)
		return 0;
	if ((rc = merge_staged(w, c, e)))
		return rc;
	if ((rc = raise_vector(w, c, e)))
		return rc;
	if ((rc = stage_clear(w, c->source)))
		return st_lmdb_err(e, rc, "clear snapshot staging");
	return 0;
}

int store_snap_apply(struct store *s, const struct store_snap_chunk *c,
		     struct err *e)
{
	struct snapapply_args a = {c};
	/* One claim per origin: with two, which one was checked? */
	if (c->ncover > MSCE_MAX_ORIGINS)
		return err_set(e, MSCE_ECORRUPT,
			       "snapshot vector: %zu origins, at most %d",
			       c->ncover, MSCE_MAX_ORIGINS);
	for (size_t i = 0; i < c->ncover; i++)
		for (size_t j = 0; j < i; j++)
			if (c->cover[i].origin == c->cover[j].origin)
				return err_set(e, MSCE_ECORRUPT,
					       "snapshot vector names origin "
					       "%u twice",
					       c->cover[i].origin);
	if (c->first && c->cover_segs != NULL && check_cover(s, c, e))
		return e ? e->code : MSCE_EAUTH;
	for (size_t i = 0; i < c->n; i++)
		if (schema_check_collection(c->recs[i].coll, c->recs[i].coll_len,
					    1, e) ||
		    schema_check_key(c->recs[i].key, c->recs[i].key_len, e))
			return err_set(e, MSCE_ECORRUPT, "snapshot record: %s",
				       e ? e->msg : "bad name");
	return st_run_batch(s, snapapply_batch, &a, e);
}
