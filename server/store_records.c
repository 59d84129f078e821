/* SPDX-License-Identifier: Apache-2.0 */
/* Records and the paths that write them: local writes (store_write) and
 * changes from other nodes (store_apply) are checked, merged into their
 * record and logged; the conflict and tombstone indexes follow each saved
 * record. Also the record reads: store_get, store_scan, store_conflicts. */
#include <stdio.h>
#include <string.h>

#include "msce.pb-c.h"
#include "mutant.h"
#include "schema.h"
#include "store_int.h"

/* ---- applying one change -------------------------------------------------- */

/* A field whose winner updated a version the delete removed (its base is
 * below the tombstone) survives a delete it did not see: a delete
 * conflict, indexed like a loser with the tombstone's version in place of
 * the loser's. A write that saw nothing (base zero) creates the field
 * afresh: after a tombstone is collected, that is what a write to a
 * deleted field looks like, wherever it was made. */
int st_survived_delete(const struct record *r, const struct field_state *f)
{
	if (MUTANT("delete_conflict"))
		return 0;
	return !version_is_zero(r->tomb) && !version_is_zero(f->w.base) &&
	       version_cmp(f->w.base, r->tomb) < 0;
}

/* A loser with the winner's value is no conflict: both sides agree. It
 * stays in the state (the winner may change), but is not listed. */
static int differs(const struct field_state *f, const struct fv *l)
{
	return l->value_len != f->w.value_len ||
	       (l->value_len && memcmp(l->value, f->w.value, l->value_len) != 0);
}

int st_collect_losers(const struct record *r, struct arena *a,
		      struct loser_ref **out, size_t *n)
{
	size_t count = 0, k = 0;
	for (uint32_t i = 0; i < r->nfields; i++)
		count += r->fields[i].nlosers + st_survived_delete(r, &r->fields[i]);
	*n = 0;
	*out = NULL;
	if (count == 0)
		return 0;
	*out = arena_alloc(a, count * sizeof **out);
	if (*out == NULL)
		return MSCE_ENOMEM;
	for (uint32_t i = 0; i < r->nfields; i++) {
		for (int j = 0; j < r->fields[i].nlosers; j++) {
			if (!differs(&r->fields[i], &r->fields[i].losers[j]))
				continue;
			(*out)[k].name = r->fields[i].name;
			(*out)[k].name_len = r->fields[i].name_len;
			(*out)[k].v = r->fields[i].losers[j].v;
			k++;
		}
		if (st_survived_delete(r, &r->fields[i])) {
			(*out)[k].name = r->fields[i].name;
			(*out)[k].name_len = r->fields[i].name_len;
			(*out)[k].v = r->tomb;
			k++;
		}
	}
	*n = k;
	return 0;
}

static int has_loser(const struct loser_ref *l, size_t n,
		     const struct loser_ref *x)
{
	for (size_t i = 0; i < n; i++)
		if (l[i].name_len == x->name_len &&
		    version_cmp(l[i].v, x->v) == 0 &&
		    memcmp(l[i].name, x->name, x->name_len) == 0)
			return 1;
	return 0;
}

static int conflict_index(struct wtxn *w, const uint8_t *rk, size_t rklen,
			  const struct loser_ref *x, int add)
{
	uint8_t k[KEY_MAX];
	size_t n = rklen;
	MDB_val key, val = {0, (void *)""};
	int rc;

	memcpy(k, rk, rklen);
	k[n++] = 0;
	memcpy(k + n, x->name, x->name_len);
	n += x->name_len;
	k[n++] = 0;
	be64(k + n, x->v.hlc);
	be32(k + n + 8, x->v.origin);
	n += 12;
	key.mv_size = n;
	key.mv_data = k;
	if (add)
		return mdb_put(w->txn, w->s->conf, &key, &val, 0);
	if (MUTANT("conflict_index_kept"))
		return 0; /* a resolved conflict stays counted */
	rc = mdb_del(w->txn, w->s->conf, &key, NULL);
	return rc == MDB_NOTFOUND ? 0 : rc;
}

static int tomb_index(struct wtxn *w, const uint8_t *rk, size_t rklen,
		      struct version t, int add)
{
	uint8_t k[12 + MSCE_MAX_COLLECTION + 1 + MSCE_MAX_KEY];
	MDB_val key = {12 + rklen, k}, val = {0, (void *)""};
	int rc;

	be64(k, t.hlc);
	be32(k + 8, t.origin);
	memcpy(k + 12, rk, rklen);
	if (add)
		return mdb_put(w->txn, w->s->tombs, &key, &val, 0);
	rc = mdb_del(w->txn, w->s->tombs, &key, NULL);
	return rc == MDB_NOTFOUND ? 0 : rc;
}


/* Loads a record for update; an absent record is empty. */
int st_load_record(struct wtxn *w, const uint8_t *rk, size_t rklen,
		   struct record *r, int *exists, struct err *e)
{
	MDB_val key = {rklen, (void *)rk}, val;
	int rc = mdb_get(w->txn, w->s->recs, &key, &val);

	*exists = 0;
	if (rc == MDB_NOTFOUND) {
		memset(r, 0, sizeof *r);
		return 0;
	}
	if (rc)
		return st_lmdb_err(e, rc, "read record");
	*exists = 1;
	return st_wrec_decode(w, rk, rklen, val.mv_data, val.mv_size, r, e);
}

/* Writes back a merged record with its hash, digest and index updates.

 * old_tomb and old_losers describe the record as it was loaded. */
int st_save_record(struct wtxn *w, const char *coll, size_t clen,
		   const char *key, size_t klen, const uint8_t *rk,
		   size_t rklen, struct record *r, struct version old_tomb,
		   const struct loser_ref *old, size_t nold, struct err *e)
{
	struct store *s = w->s;
	struct loser_ref *now;
	size_t nnow;
	MDB_val k = {rklen, (void *)rk}, v;
	int rc;

	digest_sub(w->digest, r->hash);
	record_hash(coll, clen, key, klen, r, r->hash);
	digest_add(w->digest, r->hash);

	if (st_collect_losers(r, &s->arena, &now, &nnow))
		return err_set(e, MSCE_ENOMEM, "index conflicts");
	for (size_t i = 0; i < nold; i++)
		if (!has_loser(now, nnow, &old[i]) &&
		    (rc = conflict_index(w, rk, rklen, &old[i], 0)))
			return st_lmdb_err(e, rc, "index conflicts");
	for (size_t i = 0; i < nnow; i++)
		if (!has_loser(old, nold, &now[i]) &&
		    (rc = conflict_index(w, rk, rklen, &now[i], 1)))
			return st_lmdb_err(e, rc, "index conflicts");
	if (version_cmp(old_tomb, r->tomb) != 0) {
		if (!version_is_zero(old_tomb) &&
		    (rc = tomb_index(w, rk, rklen, old_tomb, 0)))
			return st_lmdb_err(e, rc, "index tombstones");
		if (!version_is_zero(r->tomb) &&
		    (rc = tomb_index(w, rk, rklen, r->tomb, 1)))
			return st_lmdb_err(e, rc, "index tombstones");
	}
	if (r->nfields == 0 && version_is_zero(r->tomb)) {
		/* Nothing of it is left (a snapshot merge dropped it): nor
		 * of what its key sealed. An erase mark stays (store_gc.c). */
		if (version_is_zero(r->erased)) {
			rc = mdb_del(w->txn, s->recs, &k, NULL);
			if (rc && rc != MDB_NOTFOUND)
				return st_lmdb_err(e, rc, "delete record");
			return st_dek_shred(w, rk, rklen, e);
		}
		if ((rc = st_dek_shred(w, rk, rklen, e)))
			return rc;
	}
	/* Encoded away first: the merged record points into the old value's
	 * page, which the put may overwrite. */
	if ((rc = st_rec_encode(w, rk, rklen, r, &v, e)))
		return rc;
	rc = w->append_recs ? st_put_append(w->txn, s->recs, &k, &v)
			    : mdb_put(w->txn, s->recs, &k, &v, 0);
	if (rc)
		return st_lmdb_err(e, rc, "write record");
	return 0;
}

/* Structural checks on a change from anywhere: names, lengths, counts.
 * Domain rules were checked at the origin and are not re-checked, so that
 * a rule change between versions cannot split the cluster. */
static int check_change(const Msce__Change *c, struct err *e)
{
	if (writer_node(c->origin) == 0)
		return err_set(e, MSCE_ECORRUPT, "origin %u names no node",
			       c->origin);
	if (c->seq == 0 || c->hlc == 0)
		return err_set(e, MSCE_ECORRUPT, "change without seq or hlc");
	if (c->op != MSCE__CHANGE__OP__PUT && c->op != MSCE__CHANGE__OP__DELETE)
		return err_set(e, MSCE_ECORRUPT, "unknown op %d", (int)c->op);
	if (schema_check_collection(c->collection, strlen(c->collection), 1,
				    e) ||
	    schema_check_key(c->key, strlen(c->key), e))
		return err_set(e, MSCE_ECORRUPT, "%s", e ? e->msg : "bad name");
	if (c->n_fields > MSCE_MAX_FIELDS)
		return err_set(e, MSCE_ECORRUPT, "%zu fields, limit %d",
			       c->n_fields, MSCE_MAX_FIELDS);
	if (c->op == MSCE__CHANGE__OP__PUT && c->n_fields == 0)
		return err_set(e, MSCE_ECORRUPT, "put without fields");
	if (c->erase && c->op != MSCE__CHANGE__OP__DELETE)
		return err_set(e, MSCE_ECORRUPT, "an erasure that is no delete");
	if (c->redacted) /* a node's view of an erased change: never sent */
		return err_set(e, MSCE_ECORRUPT, "a redacted change");
	for (size_t i = 0; i < c->n_fields; i++) {
		const Msce__FieldWrite *f = c->fields[i];
		struct schema_field sf = {f->name, strlen(f->name),
					  f->value.data, f->value.len};
		if (schema_check_field(&sf, e))
			return err_set(e, MSCE_ECORRUPT, "%s",
				       e ? e->msg : "bad field");
		for (size_t j = 0; j < i; j++)
			if (c->fields[j]->name[0] == f->name[0] &&
			    strcmp(c->fields[j]->name, f->name) == 0)
				return err_set(e, MSCE_ECORRUPT,
					       "field \"%s\" written twice",
					       f->name);
	}
	return 0;
}


int st_decode_change(struct arena *a, const struct store_blob *b, size_t i,
		     Msce__Change **out, struct err *e)
{
	Msce__Change *c;
	int rc;

	*out = NULL;
	if (b->len > MSCE_MAX_CHANGE)
		return err_set(e, MSCE_ECORRUPT,
			       "change %zu: %zu bytes, limit %u", i, b->len,
			       MSCE_MAX_CHANGE);
	c = msce__change__unpack(arena_pb_allocator(a), b->len, b->data);
	if (c == NULL && a->nomem)
		return err_set(e, MSCE_ENOMEM,
			       "change %zu: out of memory decoding it", i);
	if (c == NULL)
		return err_set(e, MSCE_ECORRUPT,
			       "change %zu: not a valid msce.Change", i);
	if ((rc = check_change(c, e))) {
		err_wrap(e, "change %zu", i);
		return rc;
	}
	*out = c;
	return 0;
}

/* One change to merge: what its origin wrote, in our own terms. */
struct merge_in {
	const char *coll, *key;
	size_t clen, klen;
	int del;
	int erase; /* del: an erasure */
	struct version v;
	uint64_t seq;
	const struct field_write *fw;
	size_t n;
	const uint8_t *raw; /* the change encoded: what goes into the log */
	size_t rawlen;
};

/* Merges a checked change into its record r, loaded from rk, and logs it. */
static int merge_into(struct wtxn *w, const struct merge_in *m,
		      struct record *r, const uint8_t *rk, size_t rklen,
		      struct err *e)
{
	struct store *s = w->s;
	struct loser_ref *old;
	size_t nold;
	struct version old_tomb = r->tomb;
	int changed = 0, mode, rc;

	if (st_collect_losers(r, &s->arena, &old, &nold))
		return err_set(e, MSCE_ENOMEM, "index conflicts");
	/* A put the record's erasure deleted before it came here is logged
	 * without its values: they were never readable here. A delete has
	 * none; anything else is sealed with the record's key. */
	mode = m->del ? LOG_PLAIN
	       : version_cmp(m->v, r->erased) < 0 ? LOG_SHRED
						   : LOG_SEAL;
	if (m->del)
		record_merge_delete(r, m->v, &changed);
	else if (record_merge_put(r, m->v, m->seq, m->fw, m->n, &s->arena,
				  &changed))
		return err_set(e, MSCE_ENOMEM, "merge change");
	if (m->erase && version_cmp(m->v, r->erased) > 0) {
		/* Crypto-shredding: the key goes, and with it every value it
		 * sealed here (record, log entries, old pages); what the
		 * record keeps (fields written after the erasure) is sealed
		 * again under a new key when saved. */
		r->erased = m->v;
		changed = 1;
		if (!MUTANT("no_shred") && (rc = st_dek_shred(w, rk, rklen, e)))
			return rc;
	}
	if (changed &&
	    (rc = st_save_record(w, m->coll, m->clen, m->key, m->klen, rk,
				 rklen, r, old_tomb, old, nold, e)))
		return rc;
	return st_log_put(w, m->v.origin, m->seq, m->v.hlc, rk, rklen, mode,
			  m->raw, m->rawlen, e);
}

/* The key of a STORE_W_STAMP write (an audit entry): its change's own hlc
 * and writer, so that it names no earlier record. */
static size_t stamp_key(char *out, size_t cap, uint64_t hlc, uint32_t origin)
{
	return (size_t)snprintf(out, cap, "%020llu/%u",
				(unsigned long long)hlc, (unsigned)origin);
}

/* System collections (_audit) are the nodes' own and append-only: every
 * entry a put keyed by its change's own hlc and origin (stamp_key).
 * Anything else there is a forgery by its origin: a member that deletes
 * or rewrites another center's audit entries. */
static int system_change_ok(const Msce__Change *c)
{
	char k[48];

	if (c->collection[0] != '_')
		return 1;
	if (c->op != MSCE__CHANGE__OP__PUT || c->erase)
		return 0;
	stamp_key(k, sizeof k, c->hlc, c->origin);
	return strcmp(k, c->key) == 0;
}

/* Merges a checked change from another origin. raw is it encoded. */
static int merge_change(struct wtxn *w, const Msce__Change *c,
			const uint8_t *raw, size_t rawlen, struct err *e)
{
	struct store *s = w->s;
	struct merge_in m = {c->collection,
			     c->key,
			     strlen(c->collection),
			     strlen(c->key),
			     c->op == MSCE__CHANGE__OP__DELETE,
			     c->erase,
			     {c->hlc, c->origin},
			     c->seq,
			     NULL,
			     0,
			     raw,
			     rawlen};
	uint8_t rk[MSCE_MAX_COLLECTION + 1 + MSCE_MAX_KEY];
	size_t rklen = rec_key(rk, m.coll, m.clen, m.key, m.klen);
	struct record r;
	int exists, rc;

	if ((rc = st_load_record(w, rk, rklen, &r, &exists, e)))
		return rc;
	if (!m.del) {
		struct field_write *fw =
			arena_alloc(&s->arena, c->n_fields * sizeof *fw);
		if (fw == NULL)
			return err_set(e, MSCE_ENOMEM, "merge change");
		for (size_t i = 0; i < c->n_fields; i++) {
			fw[i].name = (const uint8_t *)c->fields[i]->name;
			fw[i].name_len = (uint16_t)strlen(c->fields[i]->name);
			fw[i].value = c->fields[i]->value.data;
			fw[i].value_len = (uint32_t)c->fields[i]->value.len;
			fw[i].base.hlc = c->fields[i]->base_hlc;
			fw[i].base.origin = c->fields[i]->base_origin;
		}
		m.fw = fw;
		m.n = c->n_fields;
	}
	return merge_into(w, &m, &r, rk, rklen, e);
}

/* ---- store_apply ---------------------------------------------------------- */

struct apply_args {
	const struct store_blob *c;
	size_t n;
	const struct seg *g; /* NULL: trusted, unsigned */
	size_t ng;
	uint64_t wall_ms, max_skew_ms;
	struct store_apply_result *res;
	int stop_code; /* EGAP / ECLOCK / EMISMATCH / EAUTH / EPROTO: commit
			  the prefix, then report */
	struct err stop_err;
};

/* What a change must be: from its signed segment, or anything (origin 0). */
struct expect_change {
	uint32_t origin;
	uint64_t seq, hlc; /* hlc 0: any */
};

/* Decodes, checks and applies change i. Returns 0 (applied, skipped or
 * stopped: see a->stop_code) or a batch error. */
static int apply_one(struct wtxn *w, struct apply_args *a, size_t i,
		     const struct expect_change *x, struct err *e)
{
	struct store *s = w->s;
	const struct store_prepared *pre;
	Msce__Change *c;
	struct vv_entry *vv;
	int rc;

	arena_reset(&s->arena);
	pre = st_prepared(&a->c[i]);
	if (pre != NULL && pre->c != NULL)
		c = pre->c; /* decoded and checked ahead */
	else if ((rc = st_decode_change(&s->arena, &a->c[i], i, &c, e)))
		return rc;
	if (x->origin != 0 &&
	    (c->origin != x->origin || c->seq != x->seq ||
	     (x->hlc != 0 && c->hlc != x->hlc))) {
		a->stop_code = err_set(
			&a->stop_err, MSCE_EAUTH,
			"change %u/%llu is not what its signed segment says "
			"(%u/%llu)",
			c->origin, (unsigned long long)c->seq, x->origin,
			(unsigned long long)x->seq);
		return 0;
	}
	if (st_vv_find(w->vvs, w->nvv, c->origin) == NULL &&
	    w->nvv >= MSCE_MAX_ORIGINS) {
		/* Refused like a forgery: the store is sound, the sender
		 * (or whoever made that many incarnations) is not. */
		a->stop_code = err_set(&a->stop_err, MSCE_ETOOBIG,
				       "change %u/%llu: origin %u would be "
				       "origin %d of the version vector, "
				       "limit %d",
				       c->origin, (unsigned long long)c->seq,
				       c->origin, MSCE_MAX_ORIGINS + 1,
				       MSCE_MAX_ORIGINS);
		return 0;
	}
	vv = st_wtxn_vv(w, c->origin);
	if (vv == NULL)
		return err_set(e, MSCE_ENOMEM, "grow vector");
	if (c->seq <= vv->seq) {
		a->res->consumed++;
		a->res->duplicates++;
		return 0;
	}
	if (c->origin == s->writer) {
		/* Only we write under our writer id: someone holds changes of
		 * it we did not make. */
		a->stop_code = err_set(
			&a->stop_err, MSCE_EMISMATCH,
			"change %u/%llu is of this store's own writer, which "
			"holds only %llu of them",
			c->origin, (unsigned long long)c->seq,
			(unsigned long long)vv->seq);
		return 0;
	}
	if (c->seq != vv->seq + 1) {
		a->stop_code = err_set(&a->stop_err, MSCE_EGAP,
				       "change %u/%llu arrived after %u/%llu",
				       c->origin, (unsigned long long)c->seq,
				       c->origin, (unsigned long long)vv->seq);
		return 0;
	}
	if (hlc_check(c->hlc, a->wall_ms, a->max_skew_ms)) {
		a->stop_code = err_set(
			&a->stop_err, MSCE_ECLOCK,
			"change %u/%llu is %llu ms ahead of our clock (limit "
			"%llu ms)",
			c->origin, (unsigned long long)c->seq,
			(unsigned long long)(hlc_ms(c->hlc) - a->wall_ms),
			(unsigned long long)a->max_skew_ms);
		return 0;
	}
	if (!system_change_ok(c)) {
		a->stop_code = err_set(
			&a->stop_err, MSCE_EAUTH,
			"change %u/%llu: %s/%s is not an entry its origin may "
			"write (system collections take only puts keyed by "
			"their own hlc and origin)",
			c->origin, (unsigned long long)c->seq, c->collection,
			c->key);
		return 0;
	}
	if ((rc = merge_change(w, c, a->c[i].data, a->c[i].len, e))) {
		err_wrap(e, "apply change %u/%llu", c->origin,
			 (unsigned long long)c->seq);
		return rc;
	}
	vv->seq = c->seq;
	vv->hlc = c->hlc;
	hlc_observe(&w->clock, c->hlc);
	a->res->consumed++;
	a->res->applied++;
	return 0;
}

/* Whether the cnt changes at a->c[i] were hashed ahead as one segment:
 * each entry made from the very bytes here, in the same order. */
static int prepared_segment(const struct apply_args *a, size_t i, size_t cnt)
{
	const struct store_prepared *first = st_prepared(&a->c[i]);

	if (first == NULL || first->seg_n != cnt)
		return 0;
	for (size_t j = 1; j < cnt; j++)
		if (a->c[i + j].pre != first + j ||
		    st_prepared(&a->c[i + j]) == NULL)
			return 0;
	return 1;
}

/* Checks and applies segment g, whose changes start at a->c[i]. */
static int apply_segment(struct wtxn *w, struct apply_args *a, size_t i,
			 const struct seg *g, struct err *e)
{
	struct vv_entry *vv = st_vv_find(w->vvs, w->nvv, g->origin);
	uint64_t have = vv ? vv->seq : 0;
	size_t cnt = (size_t)(g->last - g->first + 1);
	struct seg chk = *g;
	int rc;

	if (g->last <= have) { /* held already, whole */
		a->res->consumed += cnt;
		a->res->duplicates += cnt;
		return 0;
	}
	if (g->first <= have) {
		a->stop_code = err_set(
			&a->stop_err, MSCE_EPROTO,
			"segment %u/%llu..%llu starts inside what we hold "
			"(%llu): segments are applied whole",
			g->origin, (unsigned long long)g->first,
			(unsigned long long)g->last, (unsigned long long)have);
		return 0;
	}
	if (g->first != have + 1) {
		a->stop_code = err_set(&a->stop_err, MSCE_EGAP,
				       "segment %u/%llu..%llu arrived after "
				       "%u/%llu",
				       g->origin, (unsigned long long)g->first,
				       (unsigned long long)g->last, g->origin,
				       (unsigned long long)have);
		return 0;
	}
	/* Its newest change decides the clock check, before any of it. */
	if (hlc_check(g->last_hlc, a->wall_ms, a->max_skew_ms)) {
		a->stop_code = err_set(
			&a->stop_err, MSCE_ECLOCK,
			"change %u/%llu is %llu ms ahead of our clock (limit "
			"%llu ms)",
			g->origin, (unsigned long long)g->last,
			(unsigned long long)(hlc_ms(g->last_hlc) - a->wall_ms),
			(unsigned long long)a->max_skew_ms);
		return 0;
	}
	if (prepared_segment(a, i, cnt))
		memcpy(chk.hash, a->c[i].pre->seg_hash, sizeof chk.hash);
	else
		st_seg_hash_blobs(&a->c[i], cnt, chk.hash);
	if (MUTANT("unsigned_apply")) {
		/* takes any segment, signed or not */
	} else if (st_seg_check(w->s, &chk, &a->stop_err)) {
		a->stop_code = MSCE_EAUTH;
		return 0;
	}
	/* Whole or not at all: in a nested transaction, so that a refusal
	 * inside (a change that is not what the segment says, or too far
	 * ahead of our clock) leaves nothing of it. */
	struct vv_entry saved[MSCE_MAX_ORIGINS];
	size_t nsaved = w->nvv;
	uint8_t digest[32];
	struct hlc clock = w->clock;
	struct store_apply_result res = *a->res;
	MDB_txn *parent = w->txn, *child;

	memcpy(saved, w->vvs, nsaved * sizeof *saved);
	memcpy(digest, w->digest, sizeof digest);
	if ((rc = mdb_txn_begin(w->s->env, parent, 0, &child)))
		return st_lmdb_err(e, rc, "begin segment");
	w->txn = child;
	for (size_t j = 0; j < cnt && !a->stop_code; j++) {
		struct expect_change x = {g->origin, g->first + j,
					  j + 1 == cnt ? g->last_hlc : 0};
		if ((rc = apply_one(w, a, i + j, &x, e))) {
			mdb_txn_abort(child);
			w->txn = parent;
			return rc;
		}
	}
	if (a->stop_code) {
		mdb_txn_abort(child);
		w->txn = parent;
		memcpy(w->vvs, saved, nsaved * sizeof *saved);
		w->nvv = nsaved;
		memcpy(w->digest, digest, sizeof digest);
		w->clock = clock;
		*a->res = res;
		return 0;
	}
	w->txn = parent;
	if ((rc = mdb_txn_commit(child))) {
		if (rc != MDB_MAP_FULL) /* else run_batch grows, or counts */
			st_commit_failed(w->s);
		return st_lmdb_err(e, rc, "commit segment");
	}
	return st_seg_put(w, &chk, e);
}

static int apply_batch(struct wtxn *w, void *arg, struct err *e)
{
	struct apply_args *a = arg;
	int rc;

	memset(a->res, 0, sizeof *a->res);
	a->stop_code = 0;
	if (a->g == NULL) {
		struct expect_change any = {0, 0, 0};
		for (size_t i = 0; i < a->n && !a->stop_code; i++)
			if ((rc = apply_one(w, a, i, &any, e)))
				return rc;
		return 0;
	}
	size_t i = 0;
	for (size_t k = 0; k < a->ng && !a->stop_code; k++) {
		const struct seg *g = &a->g[k];
		if (!st_seg_fits(g, a->n - i))
			return err_set(e, MSCE_ECORRUPT,
				       "segment %u/%llu..%llu: not a segment "
				       "of the %zu changes that follow",
				       g->origin, (unsigned long long)g->first,
				       (unsigned long long)g->last, a->n - i);
		if ((rc = apply_segment(w, a, i, g, e)))
			return rc;
		i += (size_t)(g->last - g->first + 1);
	}
	if (!a->stop_code && i != a->n)
		return err_set(e, MSCE_ECORRUPT,
			       "%zu changes after the last signed segment",
			       a->n - i);
	return 0;
}

static int run_apply(struct store *s, struct apply_args *a, struct err *e)
{
	int rc = st_run_batch(s, apply_batch, a, e);

	if (rc) {
		/* Nothing committed: nothing applied (peers' counts and the
		 * node's metrics add these up). */
		memset(a->res, 0, sizeof *a->res);
		return rc;
	}
	if (a->stop_code) {
		if (e != NULL)
			*e = a->stop_err;
		return a->stop_code;
	}
	return 0;
}

int store_apply(struct store *s, const struct store_blob *c, size_t n,
		uint64_t wall_ms, uint64_t max_skew_ms,
		struct store_apply_result *res, struct err *e)
{
	struct apply_args a = {c,	  n,   NULL, 0, wall_ms, max_skew_ms,
			       res,	  0,   {0, ""}};
	return run_apply(s, &a, e);
}

int store_apply_signed(struct store *s, const struct store_blob *c, size_t n,
		       const struct seg *g, size_t ng, uint64_t wall_ms,
		       uint64_t max_skew_ms, struct store_apply_result *res,
		       struct err *e)
{
	struct apply_args a = {c, n, g, ng, wall_ms, max_skew_ms, res, 0,
			       {0, ""}};
	memset(res, 0, sizeof *res);
	if (g == NULL && n > 0)
		return err_set(e, MSCE_EAUTH, "changes without signatures");
	return run_apply(s, &a, e);
}

/* ---- store_write ---------------------------------------------------------- */

struct write_args {
	const struct store_write *w;
	size_t n;
	uint64_t wall_ms;
	struct store_written *out;
};

/* Current winner of a field, or the tombstone if the field is absent. */
static struct version current_version(const struct record *r,
				      const char *name, size_t len)
{
	struct field_state *fs =
		record_field(r, (const uint8_t *)name, len);
	return fs ? fs->w.v : r->tomb;
}

struct has_ctx {
	const struct record *r;
	const struct store_write *in;
};

/* Is field name present after the write in ctx (or in the record alone
 * when in is NULL)? */
static int has_after(void *ctx, const char *name)
{
	const struct has_ctx *h = ctx;
	size_t len = strlen(name);
	if (h->in != NULL)
		for (size_t i = 0; i < h->in->nfields; i++)
			if (h->in->fields[i].name_len == len &&
			    memcmp(h->in->fields[i].name, name, len) == 0)
				return h->in->fields[i].value_len > 0;
	return record_field(h->r, (const uint8_t *)name, len) != NULL;
}

/* Whole-record limits, checked where a write enters: the record as this
 * write leaves it (a local write wins every field it writes). */
static int check_record_limits(const struct record *cur,
			       const struct store_write *in, struct err *we)
{
	size_t fields = cur->nfields, bytes = 0;

	for (uint32_t i = 0; i < cur->nfields; i++)
		bytes += cur->fields[i].name_len + cur->fields[i].w.value_len;
	for (size_t i = 0; i < in->nfields; i++) {
		const struct store_field_in *f = &in->fields[i];
		const struct field_state *fs = record_field(
			cur, (const uint8_t *)f->name, f->name_len);
		if (fs != NULL)
			bytes -= fs->name_len + fs->w.value_len;
		else
			fields++;
		bytes += f->name_len + f->value_len;
	}
	if (fields > MSCE_MAX_RECORD_FIELDS)
		return err_set(we, MSCE_ETOOBIG,
			       "%.*s/%.*s would have %zu fields, limit %d per "
			       "record",
			       (int)in->coll_len, in->coll, (int)in->key_len,
			       in->key, fields, MSCE_MAX_RECORD_FIELDS);
	if (bytes > MSCE_MAX_RECORD)
		return err_set(we, MSCE_ETOOBIG,
			       "%.*s/%.*s would be %zu bytes of names and "
			       "values, limit %u per record",
			       (int)in->coll_len, in->coll, (int)in->key_len,
			       in->key, bytes, MSCE_MAX_RECORD);
	return 0;
}

/* A base is a version the writer saw. One at or after the write itself
 * would mark as seen, and so hide, the conflicts of every concurrent write
 * before it, at every center: refused (we says why). */
static int base_after_write(const struct store_write *in,
			    const Msce__Change *c, struct err *we)
{
	struct version self = {c->hlc, c->origin};

	for (size_t i = 0; i < in->nfields; i++) {
		const struct store_field_in *f = &in->fields[i];

		if (!f->has_base || version_cmp(f->base, self) < 0 ||
		    MUTANT("future_base"))
			continue;
		err_set(we, MSCE_EINVAL,
			"%.*s/%.*s: field %.*s: base version (hlc %llu, "
			"origin %u) is not before this write (hlc %llu): a "
			"base is a version the writer saw",
			(int)in->coll_len, in->coll, (int)in->key_len, in->key,
			(int)f->name_len, f->name,
			(unsigned long long)f->base.hlc,
			(unsigned)f->base.origin, (unsigned long long)c->hlc);
		return 1;
	}
	return 0;
}

/* STORE_W_PERSON: the case's person is a registration this store holds
 * in some state, read in the write's own transaction, so the writes before
 * it in the batch count. A case that does not write person, or names no
 * valid key (the schema said why), has nothing to look up. Sets we when
 * refused; returns an error only when the read itself failed. */
static int person_check(struct wtxn *w, const struct store_write *in,
			struct err *we, struct err *e)
{
	uint8_t rk[MSCE_MAX_COLLECTION + 1 + MSCE_MAX_KEY];
	const struct store_field_in *f = NULL;
	const char *key;
	MDB_val k, v;
	int rc;

	if (in->coll_len != 4 || memcmp(in->coll, "case", 4) != 0)
		return 0;
	for (size_t i = 0; i < in->nfields; i++)
		if (in->fields[i].name_len == 6 &&
		    memcmp(in->fields[i].name, "person", 6) == 0)
			f = &in->fields[i];
	key = f ? (const char *)f->value : NULL;
	if (f == NULL || f->value_len > MSCE_MAX_KEY ||
	    !schema_registration_key_valid(key, f->value_len))
		return 0;
	k.mv_size = rec_key(rk, "registration", 12, key, f->value_len);
	k.mv_data = rk;
	rc = mdb_get(w->txn, w->s->recs, &k, &v);
	if (rc == 0)
		return 0;
	if (rc != MDB_NOTFOUND)
		return st_lmdb_err(e, rc, "read case.person");
	err_set(we, MSCE_ENOTFOUND,
		"case.person: no registration \"%.*s\" has reached this "
		"center: register the person first, or, if another center "
		"registered them and it has not arrived yet, write the case "
		"with allow_unknown_person",
		(int)f->value_len, key);
	return 0;
}

static int write_one(struct wtxn *w, const struct store_write *in,
		     uint64_t wall_ms, struct store_written *out,
		     struct err *e)
{
	struct store *s = w->s;
	struct err *we = &out->err;
	Msce__Change c = MSCE__CHANGE__INIT;
	uint8_t rk[MSCE_MAX_COLLECTION + 1 + MSCE_MAX_KEY];
	struct record cur;
	struct vv_entry *vv;
	uint8_t *raw;
	size_t rawlen, rklen;
	int flags = in->op & ~STORE_OP_MASK, exists, rc;
	int sys = (flags & STORE_W_SYSTEM) != 0;
	uint64_t stamp = 0;
	struct store_write plain;
	char skey[48];

	if (flags) {
		plain = *in;
		plain.op &= STORE_OP_MASK;
		in = &plain;
	}
	if (flags & STORE_W_STAMP) {
		/* The key is this change's own (hlc, writer): take the hlc
		 * first; a key made of it names no earlier record. */
		stamp = hlc_now(&w->clock, wall_ms);
		plain.key = skey;
		plain.key_len = stamp_key(skey, sizeof skey, stamp, s->writer);
	}
	/* Refusals of this write go to its own result, not the batch. */
	if (in->op == STORE_DELETE)
		rc = sys ? 0
			 : schema_validate_delete(in->coll, in->coll_len,
						  in->key, in->key_len, we);
	else if (in->op == STORE_PUT && in->erase)
		rc = err_set(we, MSCE_EINVAL, "erase is a delete, not a put");
	else if (in->op == STORE_PUT)
		rc = 0;
	else
		rc = err_set(we, MSCE_EINVAL, "unknown operation %d", in->op);
	if (rc)
		return 0;
	if (schema_check_collection(in->coll, in->coll_len, sys, we) ||
	    schema_check_key(in->key, in->key_len, we))
		return 0;
	rklen = rec_key(rk, in->coll, in->coll_len, in->key, in->key_len);
	if ((rc = st_load_record(w, rk, rklen, &cur, &exists, e)))
		return rc;
	if (in->op == STORE_PUT) {
		struct schema_field sf[MSCE_MAX_FIELDS];
		if (in->nfields > MSCE_MAX_FIELDS) {
			err_set(we, MSCE_ETOOBIG, "%zu fields, limit %d",
				in->nfields, MSCE_MAX_FIELDS);
			return 0;
		}
		if (in->nfields == 0) {
			err_set(we, MSCE_EINVAL, "put without fields");
			return 0;
		}
		for (size_t i = 0; i < in->nfields; i++) {
			sf[i].name = in->fields[i].name;
			sf[i].name_len = in->fields[i].name_len;
			sf[i].value = in->fields[i].value;
			sf[i].value_len = in->fields[i].value_len;
		}
		if (sys) {
			for (size_t i = 0; i < in->nfields; i++)
				if (schema_check_field(&sf[i], we))
					return 0;
		} else if (schema_validate_put(in->coll, in->coll_len, in->key,
					       in->key_len, sf, in->nfields, 0,
					       we)) {
			return 0;
		}
		if ((flags & STORE_W_PERSON) &&
		    (rc = person_check(w, in, we, e)))
			return rc;
		if (we->code)
			return 0;
		/* A typed record must be whole after the write: a create
		 * carries the required fields, and so does a write to a
		 * record a concurrent delete left incomplete. */
		struct has_ctx hc = {&cur, in};
		char missing[256];
		if (schema_missing_required(in->coll, in->coll_len, has_after,
					    &hc, missing, sizeof missing)) {
			err_set(we, MSCE_EINVAL,
				"%.*s: missing required field(s) for a %s "
				"record: %s",
				(int)in->coll_len, in->coll,
				cur.nfields == 0 ? "new" : "incomplete",
				missing);
			return 0;
		}
		if (!MUTANT("record_limits") && check_record_limits(&cur, in, we))
			return 0;
	}

	/* A write goes above every version it replaces, even one merged
	 * from a snapshot whose origin's clock we have not observed yet.
	 * The clock moves only once the write is taken. */
	struct hlc clock = w->clock;
	hlc_observe(&clock, cur.tomb.hlc);
	for (uint32_t i = 0; i < cur.nfields; i++)
		hlc_observe(&clock, cur.fields[i].w.v.hlc);
	c.hlc = stamp ? stamp : hlc_now(&clock, wall_ms);
	c.origin = s->writer;
	if (in->op == STORE_PUT && base_after_write(in, &c, we))
		return 0;
	w->clock = clock;
	if (st_vv_find(w->vvs, w->nvv, s->writer) == NULL &&
	    w->nvv >= MSCE_MAX_ORIGINS)
		return err_set(e, MSCE_ETOOBIG,
			       "this node's writer %u would be origin %d of the "
			       "version vector, limit %d",
			       s->writer, MSCE_MAX_ORIGINS + 1,
			       MSCE_MAX_ORIGINS);
	vv = st_wtxn_vv(w, s->writer);
	if (vv == NULL)
		return err_set(e, MSCE_ENOMEM, "grow vector");
	c.seq = vv->seq + 1;
	if (MUTANT("seq_assignment") && c.seq == 5)
		c.seq++; /* a seq skipped */
	c.collection = arena_alloc(&s->arena, in->coll_len + 1);
	c.key = arena_alloc(&s->arena, in->key_len + 1);
	if (c.collection == NULL || c.key == NULL)
		return err_set(e, MSCE_ENOMEM, "build change");
	memcpy(c.collection, in->coll, in->coll_len);
	c.collection[in->coll_len] = 0;
	memcpy(c.key, in->key, in->key_len);
	c.key[in->key_len] = 0;
	c.op = in->op == STORE_DELETE ? MSCE__CHANGE__OP__DELETE
				      : MSCE__CHANGE__OP__PUT;
	c.erase = in->op == STORE_DELETE && in->erase;
	struct merge_in m = {c.collection,
			     c.key,
			     in->coll_len,
			     in->key_len,
			     in->op == STORE_DELETE,
			     c.erase,
			     {c.hlc, c.origin},
			     c.seq,
			     NULL,
			     0,
			     NULL,
			     0};
	/* An upper bound of the encoding, so it is sized once, by pack:
	 * tags and lengths take at most 11 bytes per item. */
	size_t bound = 64 + in->coll_len + in->key_len;
	if (in->op == STORE_PUT) {
		Msce__FieldWrite *fws =
			arena_alloc(&s->arena, in->nfields * sizeof *fws);
		Msce__FieldWrite **fp =
			arena_alloc(&s->arena, in->nfields * sizeof *fp);
		struct field_write *fw =
			arena_alloc(&s->arena, in->nfields * sizeof *fw);
		if (fws == NULL || fp == NULL || fw == NULL)
			return err_set(e, MSCE_ENOMEM, "build change");
		for (size_t i = 0; i < in->nfields; i++) {
			const struct store_field_in *f = &in->fields[i];
			struct version base =
				f->has_base ? f->base
					    : current_version(&cur, f->name,
							      f->name_len);
			char *name = arena_alloc(&s->arena, f->name_len + 1);
			if (name == NULL)
				return err_set(e, MSCE_ENOMEM, "build change");
			memcpy(name, f->name, f->name_len);
			name[f->name_len] = 0;
			msce__field_write__init(&fws[i]);
			fws[i].name = name;
			fws[i].value.data = (uint8_t *)f->value;
			fws[i].value.len = f->value_len;
			fws[i].base_hlc = base.hlc;
			fws[i].base_origin = base.origin;
			fp[i] = &fws[i];
			fw[i] = (struct field_write){(const uint8_t *)name,
						     (uint16_t)f->name_len,
						     f->value,
						     (uint32_t)f->value_len,
						     base};
			bound += 64 + f->name_len + f->value_len;
		}
		c.n_fields = in->nfields;
		c.fields = fp;
		m.fw = fw;
		m.n = in->nfields;
	}
	if (bound > MSCE_MAX_CHANGE)
		bound = msce__change__get_packed_size(&c);
	if (bound > MSCE_MAX_CHANGE) {
		err_set(we, MSCE_ETOOBIG,
			"%.*s/%.*s: the change is %zu bytes, limit %u per "
			"change",
			(int)in->coll_len, in->coll, (int)in->key_len, in->key,
			bound, MSCE_MAX_CHANGE);
		return 0;
	}
	raw = arena_alloc(&s->arena, bound);
	if (raw == NULL)
		return err_set(e, MSCE_ENOMEM, "encode change");
	rawlen = msce__change__pack(&c, raw);
	m.raw = raw;
	m.rawlen = rawlen;
	if ((rc = merge_into(w, &m, &cur, rk, rklen, e)))
		return rc;
	if ((rc = st_seg_add(w, c.origin, c.seq, c.hlc, raw, rawlen, e)))
		return rc;
	vv->seq = c.seq;
	vv->hlc = c.hlc;
	out->origin = c.origin;
	out->seq = c.seq;
	out->hlc = c.hlc;
	return 0;
}

/* A STORE_W_LIST write with its list of what committed before it: into
 * *out (arena memory); out->nfields is 0 when nothing did. */
static int with_list(struct store *s, const struct store_write *a,
		     const struct store_written *done, size_t i,
		     struct store_write *out, struct err *e)
{
	const struct store_write *in = &a[i];
	size_t from = i, len = 0, o = 0;
	struct store_field_in *f;
	char *v;

	while (from > 0 && !((a[from - 1].op & STORE_W_LIST) &&
			     done[from - 1].err.code == 0))
		from--;
	for (size_t j = from; j < i; j++)
		if ((a[j].op & STORE_W_LISTED) && done[j].err.code == 0)
			len += a[j].coll_len + 1 + a[j].key_len + 1;
	out->nfields = 0;
	if (len == 0)
		return 0;
	v = arena_alloc(&s->arena, len);
	f = arena_alloc(&s->arena, (in->nfields + 1) * sizeof *f);
	if (v == NULL || f == NULL)
		return err_set(e, MSCE_ENOMEM, "list committed writes");
	for (size_t j = from; j < i; j++) {
		if (!(a[j].op & STORE_W_LISTED) || done[j].err.code != 0)
			continue;
		memcpy(v + o, a[j].coll, a[j].coll_len);
		o += a[j].coll_len;
		v[o++] = '/';
		memcpy(v + o, a[j].key, a[j].key_len);
		o += a[j].key_len;
		v[o++] = '\n';
	}
	memcpy(f, in->fields, in->nfields * sizeof *f);
	f[in->nfields] = (struct store_field_in){
		STORE_LIST_FIELD, strlen(STORE_LIST_FIELD), (const uint8_t *)v,
		len, 0, {0, 0}};
	*out = *in;
	out->fields = f;
	out->nfields = in->nfields + 1;
	return 0;
}

static int same_fields(const struct store_write *x,
		       const struct store_write *y)
{
	if (x->nfields != y->nfields)
		return 0;
	for (size_t i = 0; i < x->nfields; i++) {
		const struct store_field_in *f = &x->fields[i], *g = &y->fields[i];
		if (f->name_len != g->name_len || f->value_len != g->value_len ||
		    memcmp(f->name, g->name, f->name_len) != 0 ||
		    (f->value_len && memcmp(f->value, g->value, f->value_len)))
			return 0;
	}
	return 1;
}

static size_t line_len(const struct store_write *w)
{
	return w->op & STORE_W_LISTED ? w->coll_len + 1 + w->key_len + 1 : 0;
}

/* Whether the STORE_W_LIST write a[i] can leave its lines to the next
 * one: the same fields, and every listed line of both within
 * STORE_LIST_MAX. len: the lines since the last list written, committed
 * or not (an upper bound). */
static int list_merges(const struct store_write *a, size_t n, size_t i,
		       size_t len)
{
	size_t j = i + 1;

	while (j < n && !(a[j].op & STORE_W_LIST))
		len += line_len(&a[j++]);
	return j < n && len <= STORE_LIST_MAX && same_fields(&a[i], &a[j]);
}

static int write_batch(struct wtxn *w, void *arg, struct err *e)
{
	struct write_args *a = arg;
	size_t lines = 0; /* bytes listed since the last list written */

	for (size_t i = 0; i < a->n; i++) {
		const struct store_write *in = &a->w[i];
		struct store_write listed;
		int rc;
		memset(&a->out[i], 0, sizeof a->out[i]);
		arena_reset(&w->s->arena);
		lines += line_len(in);
		if (in->op & STORE_W_LIST) {
			if (list_merges(a->w, a->n, i, lines)) {
				err_set(&a->out[i].err, MSCE_ENOTFOUND,
					"listed by the next entry");
				continue;
			}
			if ((rc = with_list(w->s, a->w, a->out, i, &listed,
					    e)))
				return rc;
			if (listed.nfields == 0) {
				err_set(&a->out[i].err, MSCE_ENOTFOUND,
					"nothing committed to list");
				continue;
			}
			in = &listed;
		}
		if ((rc = write_one(w, in, a->wall_ms, &a->out[i], e)))
			return rc;
		if ((in->op & STORE_W_LIST) && a->out[i].err.code == 0)
			lines = 0;
		/* The node's own writes (audit entries) are never refused
		 * alone: what they record must not commit without them. */
		if ((in->op & STORE_W_SYSTEM) && a->out[i].err.code != 0)
			return err_set(e, a->out[i].err.code,
				       "the node's own write to %.*s was "
				       "refused: %s",
				       (int)in->coll_len, in->coll,
				       a->out[i].err.msg);
	}
	/* A commit ends a segment: every node holds whole ones. */
	return st_seg_close(w, e);
}

int store_write(struct store *s, const struct store_write *w, size_t n,
		uint64_t wall_ms, struct store_written *out, struct err *e)
{
	struct write_args a = {w, n, wall_ms, out};
	int rc;

	pthread_mutex_lock(&s->wlock);
	if (s->writer == 0)
		rc = err_set(e, MSCE_EBUSY,
			     "this store has no writer yet (it is new or was "
			     "restored): writes wait until it has caught up");
	else
		rc = st_run_batch_locked(s, write_batch, &a, e);
	pthread_mutex_unlock(&s->wlock);
	return rc;
}

/* ---- reads ------------------------------------------------------------------ */

/* Visible: some field, and for a typed record every required one (a
 * field that outlived a concurrent delete does not make a registration). */
static int visible(const char *coll, size_t clen, const struct record *r,
		   char *missing, size_t mlen)
{
	struct has_ctx hc = {r, NULL};
	if (r->nfields == 0)
		return 0;
	if (MUTANT("typed_visibility"))
		return 1;
	return schema_missing_required(coll, clen, has_after, &hc, missing,
				       mlen) == 0;
}

static int get_record(struct store *s, const char *coll, size_t clen,
		      const char *key, size_t klen, int raw, store_record_cb cb,
		      void *ctx, struct err *e);

int store_get(struct store *s, const char *coll, size_t clen, const char *key,
	      size_t klen, store_record_cb cb, void *ctx, struct err *e)
{
	return get_record(s, coll, clen, key, klen, 0, cb, ctx, e);
}

int store_get_state(struct store *s, const char *coll, size_t clen,
		    const char *key, size_t klen, store_record_cb cb,
		    void *ctx, struct err *e)
{
	return get_record(s, coll, clen, key, klen, 1, cb, ctx, e);
}

static int get_record(struct store *s, const char *coll, size_t clen,
		      const char *key, size_t klen, int raw, store_record_cb cb,
		      void *ctx, struct err *e)
{
	uint8_t rk[MSCE_MAX_COLLECTION + 1 + MSCE_MAX_KEY];
	MDB_txn *txn;
	MDB_val k, v;
	struct record r;
	struct arena a;
	char miss[256];
	int rc;

	if (schema_check_collection(coll, clen, 1, e) ||
	    schema_check_key(key, klen, e))
		return e ? e->code : MSCE_EINVAL;
	k.mv_size = rec_key(rk, coll, clen, key, klen);
	k.mv_data = rk;
	if ((rc = st_read_begin(s, &txn, e)))
		return rc;
	rc = mdb_get(txn, s->recs, &k, &v);
	if (rc == MDB_NOTFOUND) {
		st_read_end(s, txn);
		return err_set(e, MSCE_ENOTFOUND, "%.*s/%.*s not found",
			       (int)clen, coll, (int)klen, key);
	}
	if (rc) {
		st_read_end(s, txn);
		return st_lmdb_err(e, rc, "read record");
	}
	arena_init(&a, 0);
	rc = st_rec_decode(s, txn, rk, k.mv_size, v.mv_data, v.mv_size, &r, &a,
			   e);
	if (rc) {
		/* e says what */
	} else if (raw) {
		struct store_record_view view = {coll, clen, key, klen, &r};
		rc = cb(ctx, &view);
	} else if (r.nfields == 0) {
		rc = err_set(e, MSCE_ENOTFOUND, "%.*s/%.*s not found (deleted)",
			     (int)clen, coll, (int)klen, key);
	} else if (!visible(coll, clen, &r, miss, sizeof miss)) {
		/* Only a field the delete removed is a delete conflict; one
		 * added without seeing the delete is listed nowhere, so the
		 * message must not send the reader to the conflicts. */
		int listed = 0;
		for (uint32_t i = 0; i < r.nfields; i++)
			listed |= st_survived_delete(&r, &r.fields[i]);
		rc = err_set(e, MSCE_ENOTFOUND,
			     "%.*s/%.*s not found: incomplete (no %s), %s",
			     (int)clen, coll, (int)klen, key, miss,
			     version_is_zero(r.tomb)
				 ? "its creation has not arrived yet"
			     : listed
				 ? "a write survived a concurrent delete; see "
				   "the conflicts"
				 : "a write made without seeing its delete "
				   "added fields (no conflict is listed): "
				   "delete or erase it again");
	} else {
		struct store_record_view view = {coll, clen, key, klen, &r};
		rc = cb(ctx, &view);
	}
	arena_free(&a);
	st_read_end(s, txn);
	return rc;
}

static int starts_with(const MDB_val *k, const uint8_t *p, size_t n)
{
	return k->mv_size >= n && memcmp(k->mv_data, p, n) == 0;
}

static int key_cmp(const uint8_t *a, size_t alen, const uint8_t *b,
		   size_t blen)
{
	size_t n = alen < blen ? alen : blen;
	int c = n ? memcmp(a, b, n) : 0;
	if (c)
		return c;
	return alen < blen ? -1 : alen > blen;
}

int store_scan(struct store *s, const struct store_scan *q, store_record_cb cb,
	       void *ctx, struct err *e)
{
	uint8_t pre[MSCE_MAX_COLLECTION + 1 + MSCE_MAX_KEY];
	uint8_t start[MSCE_MAX_COLLECTION + 1 + MSCE_MAX_KEY + 1];
	size_t prelen, startlen, count = 0;
	MDB_txn *txn;
	MDB_cursor *cur;
	MDB_val k, v;
	struct arena a;
	int rc, op;

	if (schema_check_collection(q->coll, q->coll_len, 1, e))
		return e ? e->code : MSCE_EINVAL;
	if (q->prefix_len > MSCE_MAX_KEY || q->after_len > MSCE_MAX_KEY ||
	    q->end_len > MSCE_MAX_KEY)
		return err_set(e, MSCE_ETOOBIG, "scan bound over %d bytes",
			       MSCE_MAX_KEY);
	prelen = rec_key(pre, q->coll, q->coll_len, q->prefix ? q->prefix : "",
			 q->prefix_len);
	if (q->after != NULL &&
	    key_cmp((const uint8_t *)q->after, q->after_len,
		    (const uint8_t *)(q->prefix ? q->prefix : ""),
		    q->prefix_len) >= 0) {
		/* Position just after the cursor key. */
		startlen = rec_key(start, q->coll, q->coll_len, q->after,
				   q->after_len);
		start[startlen++] = 0;
	} else {
		memcpy(start, pre, prelen);
		startlen = prelen;
	}
	if ((rc = st_read_begin(s, &txn, e)))
		return rc;
	if ((rc = mdb_cursor_open(txn, s->recs, &cur))) {
		st_read_end(s, txn);
		return st_lmdb_err(e, rc, "open cursor");
	}
	arena_init(&a, 0);
	k.mv_size = startlen;
	k.mv_data = start;
	op = MDB_SET_RANGE;
	rc = 0;
	while (mdb_cursor_get(cur, &k, &v, op) == 0) {
		struct record r;
		op = MDB_NEXT;
		if (!starts_with(&k, pre, prelen))
			break;
		if (q->end != NULL &&
		    key_cmp((uint8_t *)k.mv_data + q->coll_len + 1,
			    k.mv_size - q->coll_len - 1,
			    (const uint8_t *)q->end, q->end_len) >= 0)
			break;
		arena_reset(&a);
		if ((rc = st_rec_decode(s, txn, k.mv_data, k.mv_size,
					v.mv_data, v.mv_size, &r, &a, e)))
			break;
		if (!visible(q->coll, q->coll_len, &r, NULL, 0))
			continue;
		struct store_record_view view = {
			q->coll, q->coll_len,
			(const char *)k.mv_data + q->coll_len + 1,
			k.mv_size - q->coll_len - 1, &r};
		if ((rc = cb(ctx, &view)) != 0)
			break;
		if (q->limit && ++count >= q->limit)
			break;
	}
	arena_free(&a);
	mdb_cursor_close(cur);
	st_read_end(s, txn);
	return rc;
}

int store_conflicts(struct store *s, size_t limit, store_conflict_cb cb,
		    void *ctx, struct err *e)
{
	MDB_txn *txn;
	MDB_cursor *cur;
	MDB_val k, v;
	struct arena a;
	size_t count = 0;
	int rc;

	if ((rc = st_read_begin(s, &txn, e)))
		return rc;
	if ((rc = mdb_cursor_open(txn, s->conf, &cur))) {
		st_read_end(s, txn);
		return st_lmdb_err(e, rc, "open conflict cursor");
	}
	arena_init(&a, 0);
	rc = 0;
	while (mdb_cursor_get(cur, &k, &v, MDB_NEXT) == 0) {
		const uint8_t *p = k.mv_data, *end = p + k.mv_size;
		const uint8_t *z1 = memchr(p, 0, k.mv_size), *z2, *z3;
		struct version lv;
		MDB_val rk, rv;
		struct record r;
		struct field_state *fs;

		if (z1 == NULL || (z2 = memchr(z1 + 1, 0, end - z1 - 1)) == NULL ||
		    (z3 = memchr(z2 + 1, 0, end - z2 - 1)) == NULL ||
		    end - z3 - 1 != 12) {
			rc = err_set(e, MSCE_ECORRUPT, "bad conflict entry");
			break;
		}
		lv.hlc = rd_be64(z3 + 1);
		lv.origin = rd_be32(z3 + 9);
		rk.mv_data = (void *)p;
		rk.mv_size = (size_t)(z2 - p);
		arena_reset(&a);
		if (mdb_get(txn, s->recs, &rk, &rv)) {
			rc = err_set(e, MSCE_ECORRUPT,
				     "conflict without its record");
			break;
		}
		if ((rc = st_rec_decode(s, txn, rk.mv_data, rk.mv_size,
					rv.mv_data, rv.mv_size, &r, &a, e)))
			break;
		fs = record_field(&r, z2 + 1, (size_t)(z3 - z2 - 1));
		if (fs != NULL && !version_is_zero(r.tomb) &&
		    version_cmp(lv, r.tomb) == 0) {
			/* A delete conflict: the delete is the loser. */
			struct fv del = {NULL, 0, r.tomb, 0, {0, 0}};
			struct store_conflict_view cv = {
				(const char *)p, (size_t)(z1 - p),
				(const char *)z1 + 1, (size_t)(z2 - z1 - 1),
				fs, &del, 1};
			rc = cb(ctx, &cv);
			count++;
		}
		for (int i = 0; fs != NULL && i < fs->nlosers; i++) {
			if (version_cmp(fs->losers[i].v, lv) != 0)
				continue;
			struct store_conflict_view cv = {
				(const char *)p, (size_t)(z1 - p),
				(const char *)z1 + 1, (size_t)(z2 - z1 - 1),
				fs, &fs->losers[i], 0};
			rc = cb(ctx, &cv);
			count++;
			break;
		}
		if (rc || (limit && count >= limit))
			break;
	}
	arena_free(&a);
	mdb_cursor_close(cur);
	st_read_end(s, txn);
	return rc;
}

uint64_t store_conflict_count(struct store *s)
{
	MDB_txn *txn;
	MDB_stat st;
	uint64_t n = UINT64_MAX;

	if (st_read_begin(s, &txn, NULL))
		return n;
	if (mdb_stat(txn, s->conf, &st) == 0)
		n = st.ms_entries;
	st_read_end(s, txn);
	return n;
}
