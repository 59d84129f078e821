/* SPDX-License-Identifier: Apache-2.0 */
/* The oracle: what every node must hold, computed from what the workload
 * asked and was told, never from what the stores say.
 *
 * At each acknowledgment the workload hands over the request (collection,
 * key, delete or the fields and values), the bases it expects (the
 * versions it read just before writing, or the ones it passed), and what
 * the node answered (origin, seq, hlc). The oracle checks the answer at
 * once (seqs of an origin are 1, 2, 3... with none twice or missing; the
 * write's version beats what it replaces) and keeps the change.
 *
 * Checks against a store (oracle_check_*): every log entry is the change
 * the oracle recorded for its (origin, seq), byte for byte the same on
 * every node; the visible records and the conflict list are what the rule
 * gives for the changes the store's vector says it holds; typed records
 * are whole. The rule is written here again on purpose, with its own
 * version order (nothing from record.c or version.h):
 *
 *   per (collection, key): T = the highest delete version; per field, the
 *   candidates are its writes above T; the winner is the highest; seen =
 *   max(T, every base a candidate declared); losers = the other
 *   candidates above seen, the 8 highest (listed as conflicts when their
 *   value differs from the winner's); a winner whose base is a
 *   version below T (not none) updated what the delete removed, unseen:
 *   a delete conflict. A registration, case, case note or event missing
 *   a required field is not visible.
 *
 * Changes acknowledged by a store that was later wiped or replaced by a
 * backup may be lost (nothing else held them); no other change may.
 *
 * An erasure is a delete for the state. In the log, a put of a record a
 * store holds an erasure of, made before that erasure, must read back
 * redacted there (its data key is gone: crypto-shredding; in a store
 * without a master key, its erase mark says so); other puts of a record
 * the store holds a delete of may (a record dropped whole by a snapshot
 * takes its key with it); no other may. */
#include <ftw.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "msce.pb-c.h"
#include "sim.h"

#define OMAX_LOSERS 8

/* The oracle's own version order: hlc, then origin. */
static int ocmp(struct over_ver a, struct over_ver b)
{
	if (a.hlc != b.hlc)
		return a.hlc < b.hlc ? -1 : 1;
	if (a.origin != b.origin)
		return a.origin < b.origin ? -1 : 1;
	return 0;
}

static struct over_ver omax(struct over_ver a, struct over_ver b)
{
	return ocmp(a, b) >= 0 ? a : b;
}

struct ofw {
	char *name;
	uint8_t *val;
	size_t len;
	struct over_ver base;
};

struct ochange {
	uint32_t origin;
	uint64_t seq, hlc;
	char *coll, *key;
	int del;
	int erase;
	struct ofw *f;
	size_t nf;
	int acked_by;	     /* node index */
	int lost_ok;	     /* its store was destroyed later */
	int logged;	     /* bytes seen in some log */
	uint8_t bytes[32];   /* hash of the first log entry seen */
};

struct oorigin {
	uint32_t origin;
	struct ochange **c; /* by seq - 1 */
	size_t n, cap;
};

struct oracle {
	struct oorigin *o;
	size_t n, cap;
	uint64_t changes;
};

/* ---- building ------------------------------------------------------------ */

struct oracle *oracle_new(void)
{
	return calloc(1, sizeof(struct oracle));
}

static void change_free(struct ochange *c)
{
	for (size_t i = 0; i < c->nf; i++) {
		free(c->f[i].name);
		free(c->f[i].val);
	}
	free(c->f);
	free(c->coll);
	free(c->key);
	free(c);
}

void oracle_free(struct oracle *o)
{
	if (o == NULL)
		return;
	for (size_t i = 0; i < o->n; i++) {
		for (size_t k = 0; k < o->o[i].n; k++)
			change_free(o->o[i].c[k]);
		free(o->o[i].c);
	}
	free(o->o);
	free(o);
}

static struct oorigin *origin_get(struct oracle *o, uint32_t origin, int add)
{
	for (size_t i = 0; i < o->n; i++)
		if (o->o[i].origin == origin)
			return &o->o[i];
	if (!add)
		return NULL;
	if (o->n == o->cap) {
		size_t cap = o->cap ? o->cap * 2 : 16;
		struct oorigin *p = realloc(o->o, cap * sizeof *p);
		if (p == NULL)
			return NULL;
		o->o = p;
		o->cap = cap;
	}
	memset(&o->o[o->n], 0, sizeof o->o[o->n]);
	o->o[o->n].origin = origin;
	return &o->o[o->n++];
}

static struct ochange *change_get(struct oracle *o, uint32_t origin,
				  uint64_t seq)
{
	struct oorigin *or = origin_get(o, origin, 0);
	if (or == NULL || seq == 0 || seq > or->n)
		return NULL;
	return or->c[seq - 1];
}

uint64_t oracle_acked(struct oracle *o, uint32_t origin)
{
	struct oorigin *or = origin_get(o, origin, 0);
	return or ? or->n : 0;
}

int oracle_ack(struct oracle *o, int node, const struct oracle_write *w,
	       char *why, size_t whylen)
{
	struct oorigin *or;
	struct ochange *c;
	struct over_ver v = {w->hlc, w->origin};

	if ((w->origin & 0xffff) != w->node_id) {
		snprintf(why, whylen,
			 "node %u acknowledged a write under origin %u, "
			 "which is not one of its own",
			 w->node_id, w->origin);
		return -1;
	}
	or = origin_get(o, w->origin, 1);
	if (or == NULL)
		goto oom;
	if (w->seq != or->n + 1) {
		snprintf(why, whylen,
			 "node %u acknowledged %u/%llu, but the last "
			 "acknowledged seq of that origin is %zu (%s)",
			 w->node_id, w->origin, (unsigned long long)w->seq,
			 or->n,
			 w->seq <= or->n ? "(origin, seq) names two changes"
					 : "a seq is missing");
		return -1;
	}
	if (or->n > 0 && w->hlc <= or->c[or->n - 1]->hlc) {
		snprintf(why, whylen,
			 "node %u: %u/%llu has hlc %llu, not above the hlc "
			 "%llu of the change before it",
			 w->node_id, w->origin, (unsigned long long)w->seq,
			 (unsigned long long)w->hlc,
			 (unsigned long long)or->c[or->n - 1]->hlc);
		return -1;
	}
	for (size_t i = 0; i < w->nfields; i++)
		if (ocmp(v, w->fields[i].replaces) <= 0) {
			snprintf(why, whylen,
				 "node %u: %u/%llu writes %s/%s.%s at hlc "
				 "%llu, not above the version it replaces "
				 "(%llu@%u)",
				 w->node_id, w->origin,
				 (unsigned long long)w->seq, w->coll, w->key,
				 w->fields[i].name, (unsigned long long)w->hlc,
				 (unsigned long long)w->fields[i].replaces.hlc,
				 w->fields[i].replaces.origin);
			return -1;
		}
	if (w->del && ocmp(v, w->replaces_tomb) <= 0) {
		snprintf(why, whylen, "node %u: delete %u/%llu not above the "
				      "record's tombstone",
			 w->node_id, w->origin, (unsigned long long)w->seq);
		return -1;
	}
	if (or->n == or->cap) {
		size_t cap = or->cap ? or->cap * 2 : 64;
		struct ochange **p = realloc(or->c, cap * sizeof *p);
		if (p == NULL)
			goto oom;
		or->c = p;
		or->cap = cap;
	}
	c = calloc(1, sizeof *c);
	if (c == NULL)
		goto oom;
	c->origin = w->origin;
	c->seq = w->seq;
	c->hlc = w->hlc;
	c->del = w->del;
	c->erase = w->del && w->erase;
	c->acked_by = node;
	c->coll = strdup(w->coll);
	c->key = strdup(w->key);
	c->f = calloc(w->nfields ? w->nfields : 1, sizeof *c->f);
	if (c->coll == NULL || c->key == NULL || c->f == NULL) {
		change_free(c);
		goto oom;
	}
	for (size_t i = 0; i < w->nfields; i++) {
		struct ofw *f = &c->f[c->nf++];
		f->name = strdup(w->fields[i].name);
		f->len = w->fields[i].len;
		f->val = malloc(f->len ? f->len : 1);
		f->base = w->fields[i].base;
		if (f->name == NULL || f->val == NULL) {
			change_free(c);
			goto oom;
		}
		memcpy(f->val, w->fields[i].val, f->len);
	}
	or->c[or->n++] = c;
	o->changes++;
	return 0;
oom:
	snprintf(why, whylen, "out of memory in the oracle");
	return -1;
}

void oracle_store_destroyed(struct oracle *o, int node)
{
	for (size_t i = 0; i < o->n; i++)
		for (size_t k = 0; k < o->o[i].n; k++)
			if (o->o[i].c[k]->acked_by == node)
				o->o[i].c[k]->lost_ok = 1;
}

/* ---- the logs ------------------------------------------------------------ */

/* The newest delete and erasure of a record a store holds. */
struct odel {
	const char *coll, *key;
	struct over_ver del, erase;
};

struct logcheck {
	struct oracle *o;
	char *why;
	size_t whylen;
	int bad;
	uint32_t node;
	struct odel *d; /* the records it holds an erasure of */
	size_t nd, capd;
	const struct vv_entry *vv; /* the store's vector */
	size_t nvv;
	int clear; /* the store has no master key */
};

static const struct odel *del_of(const struct logcheck *lc, const char *coll,
				 const char *key)
{
	for (size_t i = 0; i < lc->nd; i++)
		if (strcmp(lc->d[i].coll, coll) == 0 &&
		    strcmp(lc->d[i].key, key) == 0)
			return &lc->d[i];
	return NULL;
}

/* Does the store (its vector lc->vv) hold a delete of the record? Only
 * asked of a redacted entry, which is rare. */
static int holds_delete(const struct logcheck *lc, const char *coll,
			const char *key)
{
	const struct oracle *o = lc->o;
	for (size_t i = 0; i < o->n; i++) {
		uint64_t upto = 0;
		for (size_t k = 0; k < lc->nvv; k++)
			if (lc->vv[k].origin == o->o[i].origin)
				upto = lc->vv[k].seq;
		for (size_t k = 0; k < o->o[i].n && k < upto; k++)
			if (o->o[i].c[k]->del &&
			    strcmp(o->o[i].c[k]->coll, coll) == 0 &&
			    strcmp(o->o[i].c[k]->key, key) == 0)
				return 1;
	}
	return 0;
}

static int lfail(struct logcheck *lc, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static int lfail(struct logcheck *lc, const char *fmt, ...)
{
	va_list ap;
	if (!lc->bad) {
		va_start(ap, fmt);
		vsnprintf(lc->why, lc->whylen, fmt, ap);
		va_end(ap);
	}
	lc->bad = 1;
	return 1;
}

/* A log entry must be the change acknowledged under its (origin, seq). */
static int check_entry(void *ctx, uint32_t origin, uint64_t seq,
		       const uint8_t *data, size_t len)
{
	struct logcheck *lc = ctx;
	struct ochange *c = change_get(lc->o, origin, seq);
	const struct odel *d;
	Msce__Change *m;
	uint8_t h[32];
	int bad = 0, must;

	if (c == NULL)
		return lfail(lc,
			     "node %u logs %u/%llu, which was never "
			     "acknowledged",
			     lc->node, origin, (unsigned long long)seq);
	d = c->del || lc->nd == 0 ? NULL : del_of(lc, c->coll, c->key);
	must = d != NULL &&
	       ocmp((struct over_ver){c->hlc, c->origin}, d->erase) < 0;
	crypto_generichash(h, sizeof h, data, len, NULL, 0);
	if (!must && c->logged && memcmp(h, c->bytes, 32) == 0)
		return 0;
	m = msce__change__unpack(NULL, len, data);
	if (m == NULL)
		return lfail(lc, "node %u logs %u/%llu: not a msce.Change",
			     lc->node, origin, (unsigned long long)seq);
	if (m->redacted) {
		bad = m->origin != origin || m->seq != seq || m->hlc != c->hlc ||
		      strcmp(m->collection, c->coll) != 0 ||
		      strcmp(m->key, c->key) != 0 ||
		      m->op != MSCE__CHANGE__OP__PUT || m->n_fields != 0;
		msce__change__free_unpacked(m, NULL);
		if (bad)
			return lfail(lc,
				     "node %u logs %u/%llu redacted, but not "
				     "as the change asked and answered (%s/%s)",
				     lc->node, origin, (unsigned long long)seq,
				     c->coll, c->key);
		if (d == NULL && !holds_delete(lc, c->coll, c->key))
			return lfail(lc,
				     "node %u logs %u/%llu (%s/%s) redacted, "
				     "but holds no delete or erasure of it",
				     lc->node, origin, (unsigned long long)seq,
				     c->coll, c->key);
		return 0;
	}
	if (must) {
		msce__change__free_unpacked(m, NULL);
		return lfail(lc,
			     "node %u can still read %u/%llu (%s/%s), which "
			     "its erasure at %llu@%u deleted: %s",
			     lc->node, origin, (unsigned long long)seq, c->coll,
			     c->key, (unsigned long long)d->erase.hlc,
			     d->erase.origin,
			     lc->clear ? "a store without a master key shows "
					 "the values its erase mark hides"
				       : "the data key was not destroyed");
	}
	if (c->logged && memcmp(h, c->bytes, 32) != 0) {
		msce__change__free_unpacked(m, NULL);
		return lfail(lc,
			     "node %u logs %u/%llu with other bytes than "
			     "another node: (origin, seq) names two changes",
			     lc->node, origin, (unsigned long long)seq);
	}
	if (m->origin != origin || m->seq != seq || m->hlc != c->hlc ||
	    strcmp(m->collection, c->coll) != 0 || strcmp(m->key, c->key) != 0 ||
	    (m->op == MSCE__CHANGE__OP__DELETE) != c->del ||
	    m->erase != c->erase || m->n_fields != c->nf)
		bad = 1;
	for (size_t i = 0; !bad && i < m->n_fields; i++) {
		const Msce__FieldWrite *f = m->fields[i];
		const struct ofw *x = &c->f[i];
		bad = strcmp(f->name, x->name) != 0 || f->value.len != x->len ||
		      (x->len && memcmp(f->value.data, x->val, x->len) != 0) ||
		      f->base_hlc != x->base.hlc ||
		      f->base_origin != x->base.origin;
	}
	msce__change__free_unpacked(m, NULL);
	if (bad)
		return lfail(lc,
			     "node %u logs %u/%llu unlike what was asked and "
			     "answered (%s/%s: fields, values, bases or hlc "
			     "differ)",
			     lc->node, origin, (unsigned long long)seq, c->coll,
			     c->key);
	memcpy(c->bytes, h, 32);
	c->logged = 1;
	return 0;
}

int oracle_check_log(struct oracle *o, struct store *st, uint32_t node,
		     char *why, size_t whylen)
{
	struct vv_entry vv[MSCE_MAX_ORIGINS];
	size_t n = store_vv(st, vv, MSCE_MAX_ORIGINS);
	size_t nvv = n < MSCE_MAX_ORIGINS ? n : MSCE_MAX_ORIGINS;
	struct logcheck lc = {.o = o,
			      .why = why,
			      .whylen = whylen,
			      .node = node,
			      .vv = vv,
			      .nvv = nvv,
			      .clear = !store_encrypted(st)};
	struct err e;

	/* The deletes and erasures the store holds, per record. */
	for (size_t i = 0; i < o->n; i++) {
		uint64_t upto = 0;
		for (size_t k = 0; k < n && k < MSCE_MAX_ORIGINS; k++)
			if (vv[k].origin == o->o[i].origin)
				upto = vv[k].seq;
		for (size_t k = 0; k < o->o[i].n && k < upto; k++) {
			const struct ochange *c = o->o[i].c[k];
			struct over_ver v = {c->hlc, c->origin};
			struct odel *d;
			if (!c->erase) /* few: a table of erased records */
				continue;
			d = (struct odel *)del_of(&lc, c->coll, c->key);
			if (d == NULL) {
				if (lc.nd == lc.capd) {
					size_t cap = lc.capd ? lc.capd * 2 : 16;
					struct odel *p =
					    realloc(lc.d, cap * sizeof *p);
					if (p == NULL) {
						free(lc.d);
						return lfail(&lc, "out of memory "
								  "in the oracle");
					}
					lc.d = p;
					lc.capd = cap;
				}
				d = &lc.d[lc.nd++];
				memset(d, 0, sizeof *d);
				d->coll = c->coll;
				d->key = c->key;
			}
			d->del = omax(d->del, v);
			if (c->erase)
				d->erase = omax(d->erase, v);
		}
	}

	for (size_t i = 0; i < n && i < MSCE_MAX_ORIGINS && !lc.bad; i++) {
		if (vv[i].seq > oracle_acked(o, vv[i].origin)) {
			lfail(&lc,
			      "node %u holds %llu changes of origin %u, only "
			      "%llu were acknowledged",
			      node, (unsigned long long)vv[i].seq, vv[i].origin,
			      (unsigned long long)oracle_acked(o, vv[i].origin));
			break;
		}
		if (vv[i].seq <= vv[i].floor)
			continue;
		err_clear(&e);
		if (store_log_read(st, vv[i].origin, vv[i].floor + 1,
				   (size_t)-1, (size_t)-1, check_entry, &lc,
				   &e) &&
		    !lc.bad)
			lfail(&lc, "node %u: log of origin %u: %s", node,
			      vv[i].origin, e.msg);
	}
	free(lc.d);
	return lc.bad;
}

/* ---- the rule ------------------------------------------------------------ */

struct owrite {
	struct over_ver v, base;
	const struct ofw *f;
};

struct ofield {
	const char *name;
	struct owrite *w;
	size_t n, cap;
};

struct orec {
	const char *coll, *key;
	struct over_ver tomb;
	struct ofield *f;
	size_t nf, capf;
	int scanned;
};

struct expect {
	const struct owrite *win;
	struct over_ver seen;
	const struct owrite *losers[OMAX_LOSERS];
	int nlosers;
	int deleted; /* the winner survived the delete without seeing it */
};

struct model {
	struct orec *r;
	size_t n, cap;
};

static int grow(void **p, size_t *cap, size_t n, size_t size)
{
	void *q;
	if (n < *cap)
		return 0;
	*cap = *cap ? *cap * 2 : 8;
	q = realloc(*p, *cap * size);
	if (q == NULL)
		return -1;
	*p = q;
	return 0;
}

static void model_free(struct model *m)
{
	for (size_t i = 0; i < m->n; i++) {
		for (size_t j = 0; j < m->r[i].nf; j++)
			free(m->r[i].f[j].w);
		free(m->r[i].f);
	}
	free(m->r);
}

static int same(const char *a, const char *b, size_t blen)
{
	return strlen(a) == blen && memcmp(a, b, blen) == 0;
}

static struct orec *rec_find(struct model *m, const char *coll, size_t clen,
			     const char *key, size_t klen)
{
	for (size_t i = 0; i < m->n; i++)
		if (same(m->r[i].coll, coll, clen) &&
		    same(m->r[i].key, key, klen))
			return &m->r[i];
	return NULL;
}

static struct ofield *field_find(struct orec *r, const char *name, size_t len)
{
	for (size_t i = 0; i < r->nf; i++)
		if (same(r->f[i].name, name, len))
			return &r->f[i];
	return NULL;
}

/* The model of every change held: seq <= held(origin). */
static int model_build(struct oracle *o, const struct vv_entry *held,
		       size_t nheld, struct model *m)
{
	memset(m, 0, sizeof *m);
	for (size_t i = 0; i < o->n; i++) {
		uint64_t upto = 0;
		for (size_t k = 0; k < nheld; k++)
			if (held[k].origin == o->o[i].origin)
				upto = held[k].seq;
		for (size_t k = 0; k < o->o[i].n && k < upto; k++) {
			const struct ochange *c = o->o[i].c[k];
			struct over_ver v = {c->hlc, c->origin};
			struct orec *r = rec_find(m, c->coll, strlen(c->coll),
						  c->key, strlen(c->key));
			if (r == NULL) {
				if (grow((void **)&m->r, &m->cap, m->n,
					 sizeof *m->r))
					return -1;
				r = &m->r[m->n++];
				memset(r, 0, sizeof *r);
				r->coll = c->coll;
				r->key = c->key;
			}
			if (c->del) {
				r->tomb = omax(r->tomb, v);
				continue;
			}
			for (size_t j = 0; j < c->nf; j++) {
				struct ofield *f = field_find(
					r, c->f[j].name, strlen(c->f[j].name));
				if (f == NULL) {
					if (grow((void **)&r->f, &r->capf, r->nf,
						 sizeof *r->f))
						return -1;
					f = &r->f[r->nf++];
					memset(f, 0, sizeof *f);
					f->name = c->f[j].name;
				}
				if (grow((void **)&f->w, &f->cap, f->n,
					 sizeof *f->w))
					return -1;
				f->w[f->n].v = v;
				f->w[f->n].base = c->f[j].base;
				f->w[f->n].f = &c->f[j];
				f->n++;
			}
		}
	}
	return 0;
}

static void expect_field(const struct orec *r, const struct ofield *f,
			 struct expect *x)
{
	memset(x, 0, sizeof *x);
	x->seen = r->tomb;
	for (size_t i = 0; i < f->n; i++) {
		const struct owrite *w = &f->w[i];
		if (ocmp(w->v, r->tomb) <= 0)
			continue;
		if (x->win == NULL || ocmp(w->v, x->win->v) > 0)
			x->win = w;
		x->seen = omax(x->seen, w->base);
	}
	for (size_t i = 0; x->win != NULL && i < f->n; i++) {
		const struct owrite *w = &f->w[i];
		int k;
		if (w == x->win || ocmp(w->v, x->seen) <= 0 ||
		    ocmp(w->v, r->tomb) <= 0)
			continue;
		/* Insert by version, highest first, keeping the top ones. */
		k = x->nlosers;
		if (k == OMAX_LOSERS) {
			if (ocmp(w->v, x->losers[k - 1]->v) <= 0)
				continue;
			k--;
		} else {
			x->nlosers++;
		}
		while (k > 0 && ocmp(x->losers[k - 1]->v, w->v) < 0) {
			x->losers[k] = x->losers[k - 1];
			k--;
		}
		x->losers[k] = w;
	}
	x->deleted = x->win != NULL && (r->tomb.hlc || r->tomb.origin) &&
		     (x->win->base.hlc || x->win->base.origin) &&
		     ocmp(x->win->base, r->tomb) < 0;
}

/* Required fields, written down here again (DESIGN.md). */
static const char *const *required(const char *coll)
{
	static const char *const reg[] = {"name", "nationality",
					  "document_type", "document_number",
					  NULL};
	static const char *const cas[] = {"person", "category", "status",
					  "center", NULL};
	static const char *const note[] = {"text", "center", NULL};
	static const char *const evt[] = {"title", "kind", "center",
					  "starts_at", NULL};
	if (strcmp(coll, "registration") == 0)
		return reg;
	if (strcmp(coll, "case") == 0)
		return cas;
	if (strcmp(coll, "case_note") == 0)
		return note;
	if (strcmp(coll, "event") == 0)
		return evt;
	return NULL;
}

static int has_winner(const struct orec *r, const char *name)
{
	for (size_t i = 0; i < r->nf; i++)
		if (strcmp(r->f[i].name, name) == 0) {
			struct expect x;
			expect_field(r, &r->f[i], &x);
			return x.win != NULL && x.win->f->len > 0;
		}
	return 0;
}

static int visible(const struct orec *r)
{
	const char *const *req = required(r->coll);
	int any = 0;
	for (size_t i = 0; i < r->nf && !any; i++) {
		struct expect x;
		expect_field(r, &r->f[i], &x);
		any = x.win != NULL;
	}
	for (size_t i = 0; any && req != NULL && req[i] != NULL; i++)
		if (!has_winner(r, req[i]))
			return 0;
	return any;
}

/* ---- comparing with a store ---------------------------------------------- */

struct check {
	struct model *m;
	char *why;
	size_t whylen;
	int bad;
};

static int fail(struct check *cx, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static int fail(struct check *cx, const char *fmt, ...)
{
	va_list ap;
	if (!cx->bad) {
		va_start(ap, fmt);
		vsnprintf(cx->why, cx->whylen, fmt, ap);
		va_end(ap);
	}
	cx->bad = 1;
	return 1;
}

/* A version printed as ms.logical@origin. */
#define VF "%llu.%u@%u"
#define V(v)                                                                   \
	(unsigned long long)((v).hlc >> 16), (unsigned)((v).hlc & 0xffff),     \
		(v).origin

static int check_record(void *ctx, const struct store_record_view *view)
{
	struct check *cx = ctx;
	int cl = (int)view->coll_len, kl = (int)view->key_len;
	struct orec *r = rec_find(cx->m, view->coll, view->coll_len, view->key,
				  view->key_len);

	if (r == NULL)
		return fail(cx, "record %.*s/%.*s visible but never written",
			    cl, view->coll, kl, view->key);
	r->scanned = 1;
	if (!visible(r))
		return fail(cx,
			    "%s/%s is visible, expected %s", r->coll, r->key,
			    required(r->coll) && (r->tomb.hlc || r->nf)
				? "hidden (deleted, or incomplete: a typed "
				  "record without its required fields)"
				: "deleted: a deleted record returned");
	for (uint32_t i = 0; i < view->rec->nfields; i++) {
		const struct field_state *fs = &view->rec->fields[i];
		int nl = fs->name_len;
		const char *name = (const char *)fs->name;
		struct ofield *f = field_find(r, name, fs->name_len);
		struct over_ver wv = {fs->w.v.hlc, fs->w.v.origin};
		struct expect x;

		if (f == NULL)
			return fail(cx, "%s/%s.%.*s visible but never written",
				    r->coll, r->key, nl, name);
		if (ocmp(wv, r->tomb) <= 0)
			return fail(cx,
				    "deleted data returned: %s/%s.%.*s written "
				    "at " VF " is visible, the record was "
				    "deleted at " VF,
				    r->coll, r->key, nl, name, V(wv),
				    V(r->tomb));
		expect_field(r, f, &x);
		if (x.win == NULL)
			return fail(cx, "%s/%s.%.*s visible, expected absent",
				    r->coll, r->key, nl, name);
		if (ocmp(wv, x.win->v) != 0 ||
		    fs->w.value_len != x.win->f->len ||
		    (x.win->f->len &&
		     memcmp(fs->w.value, x.win->f->val, x.win->f->len) != 0))
			return fail(cx,
				    "%s/%s.%.*s is \"%.*s\" at " VF ", "
				    "expected \"%.*s\" at " VF,
				    r->coll, r->key, nl, name,
				    (int)(fs->w.value_len > 60 ? 60
							       : fs->w.value_len),
				    (const char *)fs->w.value, V(wv),
				    (int)(x.win->f->len > 60 ? 60
							     : x.win->f->len),
				    (const char *)x.win->f->val, V(x.win->v));
	}
	for (size_t i = 0; i < r->nf; i++) {
		struct expect x;
		int found = 0;
		expect_field(r, &r->f[i], &x);
		for (uint32_t k = 0; k < view->rec->nfields && !found; k++)
			found = same(r->f[i].name,
				     (const char *)view->rec->fields[k].name,
				     view->rec->fields[k].name_len);
		if (x.win != NULL && !found)
			return fail(cx,
				    "acknowledged write lost: %s/%s.%s "
				    "missing, expected the write at " VF,
				    r->coll, r->key, r->f[i].name,
				    V(x.win->v));
	}
	return 0;
}

/* ---- conflict lists as sorted text lines --------------------------------- */

struct lines {
	char **v;
	size_t n, cap;
	int oom;
};

static void lines_add(struct lines *l, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void lines_add(struct lines *l, const char *fmt, ...)
{
	va_list ap;
	char buf[1024];

	va_start(ap, fmt);
	vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	if (grow((void **)&l->v, &l->cap, l->n, sizeof *l->v) ||
	    (l->v[l->n] = strdup(buf)) == NULL) {
		l->oom = 1;
		return;
	}
	l->n++;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sorted lines joined by '\n'; frees l. */
static char *lines_join(struct lines *l)
{
	size_t total = 1, at = 0;
	char *out;

	if (l->n)
		qsort(l->v, l->n, sizeof *l->v, cmp_str);
	for (size_t i = 0; i < l->n; i++)
		total += strlen(l->v[i]) + 1;
	out = l->oom ? NULL : malloc(total);
	for (size_t i = 0; i < l->n; i++) {
		size_t k = strlen(l->v[i]);
		if (out != NULL) {
			memcpy(out + at, l->v[i], k);
			out[at + k] = '\n';
		}
		at += k + 1;
		free(l->v[i]);
	}
	if (out != NULL)
		out[at] = 0;
	free(l->v);
	return out;
}

static int conflict_line(void *ctx, const struct store_conflict_view *c)
{
	struct over_ver w = {c->field->w.v.hlc, c->field->w.v.origin};
	struct over_ver l = {c->loser->v.hlc, c->loser->v.origin};
	lines_add(ctx, "%.*s/%.*s.%.*s " VF "%s" VF, (int)c->coll_len, c->coll,
		  (int)c->key_len, c->key, (int)c->field->name_len,
		  (const char *)c->field->name, V(w),
		  c->deleted ? ">delete " : ">", V(l));
	return 0;
}

static int conflict_counted(void *ctx, const struct store_conflict_view *c)
{
	(void)c;
	(*(uint64_t *)ctx)++;
	return 0;
}

char *oracle_conflict_text(struct store *st)
{
	struct lines l = {0};
	if (store_conflicts(st, 0, conflict_line, &l, NULL))
		lines_add(&l, "(store_conflicts failed)");
	return lines_join(&l);
}

static char *expected_conflicts(struct model *m, size_t *tombs)
{
	struct lines l = {0};
	*tombs = 0;
	for (size_t i = 0; i < m->n; i++) {
		int deleted = 0;
		for (size_t j = 0; j < m->r[i].nf; j++) {
			struct expect x;
			expect_field(&m->r[i], &m->r[i].f[j], &x);
			for (int k = 0; k < x.nlosers; k++)
				if (x.losers[k]->f->len != x.win->f->len ||
				    memcmp(x.losers[k]->f->val, x.win->f->val,
					   x.win->f->len) != 0)
					lines_add(&l, "%s/%s.%s " VF ">" VF,
					  m->r[i].coll, m->r[i].key,
					  m->r[i].f[j].name, V(x.win->v),
					  V(x.losers[k]->v));
			if (x.deleted) {
				lines_add(&l, "%s/%s.%s " VF ">delete " VF,
					  m->r[i].coll, m->r[i].key,
					  m->r[i].f[j].name, V(x.win->v),
					  V(m->r[i].tomb));
				deleted = 1;
			}
		}
		*tombs += deleted;
	}
	return lines_join(&l);
}

/* First line where a and b differ, for the report. */
static void first_diff(const char *a, const char *b, char *out, size_t len)
{
	while (*a && *b) {
		size_t ka = strcspn(a, "\n"), kb = strcspn(b, "\n");
		if (ka != kb || memcmp(a, b, ka) != 0)
			break;
		a += ka + (a[ka] != 0);
		b += kb + (b[kb] != 0);
	}
	snprintf(out, len, "store has \"%.*s\", oracle has \"%.*s\"",
		 (int)strcspn(a, "\n"), a, (int)strcspn(b, "\n"), b);
}

/* ---- the checks ---------------------------------------------------------- */

static int get_tomb(void *ctx, const struct store_record_view *view)
{
	struct over_ver *t = ctx;
	t->hlc = view->rec->tomb.hlc;
	t->origin = view->rec->tomb.origin;
	return 0;
}

int oracle_check_state(struct oracle *o, struct store *st, int final,
		       size_t *conflict_tombs, char *why, size_t whylen)
{
	struct vv_entry vv[MSCE_MAX_ORIGINS];
	size_t n = store_vv(st, vv, MSCE_MAX_ORIGINS);
	struct model m;
	struct check cx = {&m, why, whylen, 0};
	struct err e;

	if (n > MSCE_MAX_ORIGINS)
		n = MSCE_MAX_ORIGINS;
	if (model_build(o, vv, n, &m)) {
		model_free(&m);
		snprintf(why, whylen, "out of memory in the oracle");
		return 1;
	}
	/* At the end every acknowledged change is held, unless only a
	 * destroyed store had it. */
	for (size_t i = 0; final && i < o->n && !cx.bad; i++) {
		uint64_t upto = 0;
		for (size_t k = 0; k < n; k++)
			if (vv[k].origin == o->o[i].origin)
				upto = vv[k].seq;
		for (size_t k = upto; k < o->o[i].n; k++)
			if (!o->o[i].c[k]->lost_ok) {
				fail(&cx,
				     "acknowledged write lost: %u/%llu "
				     "(%s/%s) is held nowhere",
				     o->o[i].origin,
				     (unsigned long long)(k + 1),
				     o->o[i].c[k]->coll, o->o[i].c[k]->key);
				break;
			}
	}
	/* A vector never claims more of an origin than the origin made: a
	 * claim past the signed segments would (a forged snapshot). */
	for (size_t k = 0; k < n && !cx.bad; k++) {
		uint64_t made = oracle_acked(o, vv[k].origin);
		if (vv[k].seq > made)
			fail(&cx,
			     "the vector holds %u/%llu, but that origin made "
			     "only %llu changes",
			     vv[k].origin, (unsigned long long)vv[k].seq,
			     (unsigned long long)made);
	}
	/* Scan each collection written to, once. */
	for (size_t i = 0; i < m.n && !cx.bad; i++) {
		struct store_scan q = {0};
		int dup = 0;
		for (size_t j = 0; j < i && !dup; j++)
			dup = strcmp(m.r[j].coll, m.r[i].coll) == 0;
		if (dup)
			continue;
		q.coll = m.r[i].coll;
		q.coll_len = strlen(q.coll);
		err_clear(&e);
		if (store_scan(st, &q, check_record, &cx, &e) && !cx.bad)
			fail(&cx, "scan of %s failed: %s", q.coll, e.msg);
	}
	/* Each record again by key; absent exactly when nothing is visible. */
	for (size_t i = 0; i < m.n && !cx.bad; i++) {
		struct orec *r = &m.r[i];
		int vis = visible(r), rc;
		if (vis && !r->scanned) {
			fail(&cx,
			     "acknowledged write lost: %s/%s missing from "
			     "the scan",
			     r->coll, r->key);
			break;
		}
		err_clear(&e);
		rc = store_get(st, r->coll, strlen(r->coll), r->key,
			       strlen(r->key), check_record, &cx, &e);
		if (cx.bad)
			break;
		if (vis && rc == MSCE_ENOTFOUND)
			fail(&cx, "acknowledged write lost: %s/%s not found",
			     r->coll, r->key);
		else if (!vis && rc == 0)
			fail(&cx, "%s/%s found, expected gone", r->coll,
			     r->key);
		else if (rc != 0 && rc != MSCE_ENOTFOUND)
			fail(&cx, "get %s/%s failed: %s", r->coll, r->key,
			     e.msg);
	}
	/* A tombstone, while kept, is the latest delete the store holds: an
	 * older one (an old delete replayed after the latest was collected)
	 * would be a base below the delete other centers remember. */
	for (size_t i = 0; i < m.n && !cx.bad; i++) {
		struct orec *r = &m.r[i];
		struct over_ver t = {0, 0};
		err_clear(&e);
		int rc = store_get_state(st, r->coll, strlen(r->coll), r->key,
					 strlen(r->key), get_tomb, &t, &e);
		if (rc != 0 && rc != MSCE_ENOTFOUND)
			fail(&cx, "get %s/%s failed: %s", r->coll, r->key,
			     e.msg);
		else if ((t.hlc || t.origin) && ocmp(t, r->tomb) != 0)
			fail(&cx,
			     "%s/%s keeps a tombstone at " VF ", but the "
			     "latest delete the store holds is at " VF,
			     r->coll, r->key, V(t), V(r->tomb));
	}
	if (!cx.bad) {
		size_t tombs;
		char *have = oracle_conflict_text(st);
		char *want = expected_conflicts(&m, &tombs);
		if (have == NULL || want == NULL) {
			fail(&cx, "out of memory listing conflicts");
		} else if (strcmp(have, want) != 0) {
			char d[600];
			first_diff(have, want, d, sizeof d);
			fail(&cx, "conflicts differ from the oracle: %s", d);
		}
		/* The count the status gives comes from the conflict index:
		 * it holds an entry for each conflict listed, and no other. */
		uint64_t listed = 0, counted = store_conflict_count(st);
		if (!cx.bad && store_conflicts(st, 0, conflict_counted, &listed,
					       NULL) == 0 &&
		    counted != listed)
			fail(&cx,
			     "the conflict index counts %llu conflicts, %llu "
			     "are listed",
			     (unsigned long long)counted,
			     (unsigned long long)listed);
		if (conflict_tombs != NULL)
			*conflict_tombs = tombs;
		free(have);
		free(want);
	}
	model_free(&m);
	return cx.bad;
}

uint64_t oracle_changes(const struct oracle *o) { return o->changes; }

/* ---- values at rest --------------------------------------------------------- */

/* The workload's registration names all start so ("Person n1.42"). */
#define NAME_MARK "Person n"

static char *files_why;
static const char *files_skip;
static size_t files_whylen;
static int files_bad;

static int scan_file(const char *path, const struct stat *st, int flag,
		     struct FTW *ftw)
{
	size_t len = (size_t)st->st_size, n = strlen(NAME_MARK);
	const char *base = path + ftw->base;
	uint8_t *buf;
	FILE *f;

	if (flag != FTW_F || strcmp(base, "data.mdb") != 0 || len < n)
		return 0;
	if ((files_skip != NULL &&
	     strncmp(path, files_skip, strlen(files_skip)) == 0 &&
	     path[strlen(files_skip)] == '/') ||
	    strstr(path, "/clear-") != NULL)
		return 0; /* kept in the clear on purpose */
	if ((f = fopen(path, "rb")) == NULL)
		return 0; /* removed meanwhile */
	buf = malloc(len);
	if (buf == NULL || fread(buf, 1, len, f) != len) {
		free(buf);
		fclose(f);
		return 0;
	}
	fclose(f);
	const uint8_t *hit = memmem(buf, len, NAME_MARK, n);
	if (hit != NULL) {
		size_t i = (size_t)(hit - buf), k = i + n;
		while (k < len && k - i < 40 && buf[k] >= '.' && buf[k] <= '9')
			k++;
		snprintf(files_why, files_whylen,
			 "%s holds the value \"%.*s\" in the clear at offset "
			 "%zu: a value escaped the encryption at rest",
			 path, (int)(k - i), (const char *)buf + i, i);
		files_bad = 1;
	}
	free(buf);
	return files_bad;
}

int oracle_check_files(struct oracle *o, const char *dir, const char *skip,
		       char *why, size_t whylen)
{
	(void)o;
	files_why = why;
	files_skip = skip;
	files_whylen = whylen;
	files_bad = 0;
	nftw(dir, scan_file, 16, FTW_PHYS);
	return files_bad;
}
