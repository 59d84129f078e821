/* The oracle: what every node must hold, computed from the set of
 * acknowledged writes by the rule in DESIGN.md / record.h, written here
 * again on purpose (nothing from record.c), so that a wrong merge in the
 * store cannot also make the expectation wrong.
 *
 * Per (collection, key): T = the highest delete version. Per field: the
 * candidates are its writes above T; the winner is the highest; seen =
 * max(T, every base a candidate declared); losers = the other candidates
 * above seen, the RECORD_MAX_LOSERS highest. A field without candidates is
 * absent. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hlc.h"
#include "msce.pb-c.h"
#include "sim.h"

struct owrite {
	struct version v, base;
	uint8_t *val;
	size_t len;
};

struct ofield {
	char *name;
	struct owrite *w;
	size_t n, cap;
};

struct orec {
	char *coll, *key;
	struct version tomb;
	struct ofield *f;
	size_t nf, capf;
	int scanned;
};

struct oracle {
	struct orec *r;
	size_t n, cap;
};

struct expect {
	const struct owrite *win;
	struct version seen;
	const struct owrite *losers[RECORD_MAX_LOSERS];
	int nlosers;
};

/* ---- building ------------------------------------------------------------ */

struct oracle *oracle_new(void)
{
	return calloc(1, sizeof(struct oracle));
}

void oracle_free(struct oracle *o)
{
	if (o == NULL)
		return;
	for (size_t i = 0; i < o->n; i++) {
		struct orec *r = &o->r[i];
		for (size_t j = 0; j < r->nf; j++) {
			for (size_t k = 0; k < r->f[j].n; k++)
				free(r->f[j].w[k].val);
			free(r->f[j].w);
			free(r->f[j].name);
		}
		free(r->f);
		free(r->coll);
		free(r->key);
	}
	free(o->r);
	free(o);
}

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

static int same(const char *a, const char *b, size_t blen)
{
	return strlen(a) == blen && memcmp(a, b, blen) == 0;
}

static struct orec *rec_find(struct oracle *o, const char *coll, size_t clen,
			     const char *key, size_t klen)
{
	for (size_t i = 0; i < o->n; i++)
		if (same(o->r[i].coll, coll, clen) &&
		    same(o->r[i].key, key, klen))
			return &o->r[i];
	return NULL;
}

static struct ofield *field_find(struct orec *r, const char *name, size_t len)
{
	for (size_t i = 0; i < r->nf; i++)
		if (same(r->f[i].name, name, len))
			return &r->f[i];
	return NULL;
}

int oracle_add(struct oracle *o, uint32_t origin, uint64_t seq,
	       const uint8_t *change, size_t len, char *why, size_t whylen)
{
	Msce__Change *c = msce__change__unpack(NULL, len, change);
	struct orec *r;
	struct version v;
	int rc = -1;

	if (c == NULL) {
		snprintf(why, whylen,
			 "change %u/%llu in the log is not a "
			 "valid msce.Change",
			 origin, (unsigned long long)seq);
		return -1;
	}
	if (c->origin != origin || c->seq != seq) {
		snprintf(why, whylen, "log entry %u/%llu holds change %u/%llu",
			 origin, (unsigned long long)seq, c->origin,
			 (unsigned long long)c->seq);
		goto out;
	}
	v.hlc = c->hlc;
	v.origin = c->origin;
	r = rec_find(o, c->collection, strlen(c->collection), c->key,
		     strlen(c->key));
	if (r == NULL) {
		if (grow((void **)&o->r, &o->cap, o->n, sizeof *o->r))
			goto oom;
		r = &o->r[o->n++];
		memset(r, 0, sizeof *r);
		r->coll = strdup(c->collection);
		r->key = strdup(c->key);
		if (r->coll == NULL || r->key == NULL)
			goto oom;
	}
	if (c->op == MSCE__CHANGE__OP__DELETE) {
		r->tomb = version_max(r->tomb, v);
		rc = 0;
		goto out;
	}
	for (size_t i = 0; i < c->n_fields; i++) {
		const Msce__FieldWrite *fw = c->fields[i];
		struct ofield *f = field_find(r, fw->name, strlen(fw->name));
		struct owrite *w;
		if (f == NULL) {
			if (grow((void **)&r->f, &r->capf, r->nf, sizeof *r->f))
				goto oom;
			f = &r->f[r->nf++];
			memset(f, 0, sizeof *f);
			if ((f->name = strdup(fw->name)) == NULL)
				goto oom;
		}
		if (grow((void **)&f->w, &f->cap, f->n, sizeof *f->w))
			goto oom;
		w = &f->w[f->n++];
		w->v = v;
		w->base.hlc = fw->base_hlc;
		w->base.origin = fw->base_origin;
		w->len = fw->value.len;
		w->val = malloc(w->len ? w->len : 1);
		if (w->val == NULL)
			goto oom;
		if (w->len)
			memcpy(w->val, fw->value.data, w->len);
	}
	rc = 0;
	goto out;
oom:
	snprintf(why, whylen, "out of memory in the oracle");
out:
	msce__change__free_unpacked(c, NULL);
	return rc;
}

/* ---- the rule ------------------------------------------------------------ */

static void expect_field(const struct orec *r, const struct ofield *f,
			 struct expect *x)
{
	memset(x, 0, sizeof *x);
	x->seen = r->tomb;
	for (size_t i = 0; i < f->n; i++) {
		const struct owrite *w = &f->w[i];
		if (version_cmp(w->v, r->tomb) <= 0)
			continue;
		if (x->win == NULL || version_cmp(w->v, x->win->v) > 0)
			x->win = w;
		x->seen = version_max(x->seen, w->base);
	}
	for (size_t i = 0; x->win != NULL && i < f->n; i++) {
		const struct owrite *w = &f->w[i];
		int k;
		if (w == x->win || version_cmp(w->v, x->seen) <= 0 ||
		    version_cmp(w->v, r->tomb) <= 0)
			continue;
		/* Insert by version, highest first, keeping the top ones. */
		k = x->nlosers;
		if (k == RECORD_MAX_LOSERS) {
			if (version_cmp(w->v, x->losers[k - 1]->v) <= 0)
				continue;
			k--;
		} else {
			x->nlosers++;
		}
		while (k > 0 && version_cmp(x->losers[k - 1]->v, w->v) < 0) {
			x->losers[k] = x->losers[k - 1];
			k--;
		}
		x->losers[k] = w;
	}
}

static int has_visible(const struct orec *r)
{
	for (size_t i = 0; i < r->nf; i++) {
		struct expect x;
		expect_field(r, &r->f[i], &x);
		if (x.win != NULL)
			return 1;
	}
	return 0;
}

/* ---- comparing with a store ---------------------------------------------- */

struct check {
	struct oracle *o;
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

static const struct field_state *view_field(const struct record *rec,
					    const char *name, size_t len)
{
	for (uint32_t i = 0; i < rec->nfields; i++)
		if (rec->fields[i].name_len == len &&
		    memcmp(rec->fields[i].name, name, len) == 0)
			return &rec->fields[i];
	return NULL;
}

/* A version printed as ms.logical@origin. */
#define VF "%llu.%u@%u"
#define V(v)                                                                   \
	(unsigned long long)hlc_ms((v).hlc), hlc_logical((v).hlc), (v).origin

static int check_record(void *ctx, const struct store_record_view *view)
{
	struct check *cx = ctx;
	int cl = (int)view->coll_len, kl = (int)view->key_len;
	struct orec *r = rec_find(cx->o, view->coll, view->coll_len, view->key,
				  view->key_len);

	if (r == NULL)
		return fail(cx, "record %.*s/%.*s visible but never written",
			    cl, view->coll, kl, view->key);
	r->scanned = 1;
	for (uint32_t i = 0; i < view->rec->nfields; i++) {
		const struct field_state *fs = &view->rec->fields[i];
		int nl = fs->name_len;
		const char *name = (const char *)fs->name;
		struct ofield *f = field_find(r, name, fs->name_len);
		struct expect x;

		if (f == NULL)
			return fail(cx, "%s/%s.%.*s visible but never written",
				    r->coll, r->key, nl, name);
		if (version_cmp(fs->w.v, r->tomb) <= 0)
			return fail(cx,
				    "acknowledged delete undone: %s/%s.%.*s "
				    "written at " VF " is visible, the record "
				    "was deleted at " VF,
				    r->coll, r->key, nl, name, V(fs->w.v),
				    V(r->tomb));
		expect_field(r, f, &x);
		if (x.win == NULL)
			return fail(cx, "%s/%s.%.*s visible, expected absent",
				    r->coll, r->key, nl, name);
		if (version_cmp(fs->w.v, x.win->v) != 0 ||
		    fs->w.value_len != x.win->len ||
		    (x.win->len &&
		     memcmp(fs->w.value, x.win->val, x.win->len) != 0))
			return fail(cx,
				    "%s/%s.%.*s is \"%.*s\" at " VF ", "
				    "expected \"%.*s\" at " VF,
				    r->coll, r->key, nl, name,
				    (int)fs->w.value_len,
				    (const char *)fs->w.value, V(fs->w.v),
				    (int)x.win->len, (const char *)x.win->val,
				    V(x.win->v));
	}
	for (size_t i = 0; i < r->nf; i++) {
		struct expect x;
		expect_field(r, &r->f[i], &x);
		if (x.win != NULL && view_field(view->rec, r->f[i].name,
						strlen(r->f[i].name)) == NULL)
			return fail(cx,
				    "acknowledged write lost: %s/%s.%s "
				    "missing, expected \"%.*s\" at " VF,
				    r->coll, r->key, r->f[i].name,
				    (int)x.win->len, (const char *)x.win->val,
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
	lines_add(ctx, "%.*s/%.*s.%.*s " VF ">" VF, (int)c->coll_len, c->coll,
		  (int)c->key_len, c->key, (int)c->field->name_len,
		  (const char *)c->field->name, V(c->field->w.v),
		  V(c->loser->v));
	return 0;
}

char *oracle_conflict_text(struct store *st)
{
	struct lines l = {0};
	if (store_conflicts(st, 0, conflict_line, &l, NULL)) {
		lines_add(&l, "(store_conflicts failed)");
	}
	return lines_join(&l);
}

static char *expected_conflicts(struct oracle *o)
{
	struct lines l = {0};
	for (size_t i = 0; i < o->n; i++)
		for (size_t j = 0; j < o->r[i].nf; j++) {
			struct expect x;
			expect_field(&o->r[i], &o->r[i].f[j], &x);
			for (int k = 0; k < x.nlosers; k++)
				lines_add(&l, "%s/%s.%s " VF ">" VF,
					  o->r[i].coll, o->r[i].key,
					  o->r[i].f[j].name, V(x.win->v),
					  V(x.losers[k]->v));
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

/* ---- the check ----------------------------------------------------------- */

int oracle_check(struct oracle *o, struct store *st, char *why, size_t whylen)
{
	struct check cx = {o, why, whylen, 0};
	struct err e;

	for (size_t i = 0; i < o->n; i++)
		o->r[i].scanned = 0;
	/* Scan each collection written to, once. */
	for (size_t i = 0; i < o->n && !cx.bad; i++) {
		struct store_scan q = {0};
		int dup = 0;
		for (size_t j = 0; j < i && !dup; j++)
			dup = strcmp(o->r[j].coll, o->r[i].coll) == 0;
		if (dup)
			continue;
		q.coll = o->r[i].coll;
		q.coll_len = strlen(q.coll);
		err_clear(&e);
		if (store_scan(st, &q, check_record, &cx, &e) && !cx.bad)
			fail(&cx, "scan of %s failed: %s", q.coll, e.msg);
	}
	/* Each record again by key; absent exactly when nothing is visible. */
	for (size_t i = 0; i < o->n && !cx.bad; i++) {
		struct orec *r = &o->r[i];
		int vis = has_visible(r), rc;
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
			fail(&cx, "%s/%s found, expected deleted", r->coll,
			     r->key);
		else if (rc != 0 && rc != MSCE_ENOTFOUND)
			fail(&cx, "get %s/%s failed: %s", r->coll, r->key,
			     e.msg);
	}
	if (!cx.bad) {
		char *have = oracle_conflict_text(st);
		char *want = expected_conflicts(o);
		if (have == NULL || want == NULL) {
			fail(&cx, "out of memory listing conflicts");
		} else if (strcmp(have, want) != 0) {
			char d[600];
			first_diff(have, want, d, sizeof d);
			fail(&cx, "conflicts differ from the oracle: %s", d);
		}
		free(have);
		free(want);
	}
	return cx.bad;
}
