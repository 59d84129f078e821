/* SPDX-License-Identifier: Apache-2.0 */
/* A data subject's records; see subject.h. */
#include "subject.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit.h"
#include "hlc.h"
#include "record_pb.h"
#include "schema.h"

static int list_add(struct subject_list *l, Msce__Record *m)
{
	if (m == NULL)
		return MSCE_ENOMEM;
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 8;
		Msce__Record **p = realloc(l->recs, cap * sizeof *p);
		if (p == NULL) {
			record_pb_free(m);
			return MSCE_ENOMEM;
		}
		l->recs = p;
		l->cap = cap;
	}
	l->recs[l->n++] = m;
	return 0;
}

void subject_list_free(struct subject_list *l)
{
	for (size_t i = 0; i < l->n; i++)
		record_pb_free(l->recs[i]);
	free(l->recs);
	memset(l, 0, sizeof *l);
}

void subject_free(struct subject *sub)
{
	record_pb_free(sub->self);
	sub->self = NULL;
	subject_list_free(&sub->cases);
	subject_list_free(&sub->notes);
}

size_t subject_count(const struct subject *sub)
{
	return (sub->self != NULL) + sub->cases.n + sub->notes.n;
}

static Msce__Record *pb_of(const struct store_record_view *v)
{
	return record_pb_new(v->coll, v->coll_len, v->key, v->key_len, v->rec);
}

/* ---- the subject's own record ---------------------------------------- */

struct self_ctx {
	Msce__Record *m;
	int state;
};

static int self_cb(void *ctx, const struct store_record_view *v)
{
	struct self_ctx *x = ctx;
	/* A tombstone alone is nothing left to erase. */
	if (x->state && v->rec->nfields == 0)
		return 0;
	x->m = pb_of(v);
	return x->m ? 0 : MSCE_ENOMEM;
}

static int collect_self(struct store *s, struct subject *sub, int state,
			struct err *e)
{
	struct self_ctx x = {NULL, state};
	size_t cl = strlen(sub->coll), kl = strlen(sub->key);
	int rc = state ? store_get_state(s, sub->coll, cl, sub->key, kl,
					 self_cb, &x, e)
		       : store_get(s, sub->coll, cl, sub->key, kl, self_cb,
				   &x, e);
	if (rc == MSCE_ENOTFOUND)
		rc = 0;
	sub->self = x.m;
	return rc;
}

/* ---- a person's cases: one pass over every case ----------------------- */

struct cases_ctx {
	struct subject **people; /* sorted by key */
	size_t n;
	int oom;
};

static int cmp_key(const void *a, const void *b)
{
	const char *k = a;
	const struct subject *const *s = b;
	return strcmp(k, (*s)->key);
}

static int cmp_subject(const void *a, const void *b)
{
	const struct subject *const *x = a, *const *y = b;
	return strcmp((*x)->key, (*y)->key);
}

static int cases_cb(void *ctx, const struct store_record_view *v)
{
	struct cases_ctx *x = ctx;
	const struct field_state *p =
		record_field(v->rec, (const uint8_t *)"person", 6);
	char key[MSCE_MAX_KEY + 1];
	struct subject **who;

	if (p == NULL || p->w.value_len == 0 || p->w.value_len > MSCE_MAX_KEY)
		return 0;
	memcpy(key, p->w.value, p->w.value_len);
	key[p->w.value_len] = '\0';
	who = bsearch(key, x->people, x->n, sizeof *x->people, cmp_key);
	if (who == NULL)
		return 0;
	if (list_add(&(*who)->cases, pb_of(v))) {
		x->oom = 1;
		return MSCE_ENOMEM;
	}
	return 0;
}

/* ---- notes of one case ------------------------------------------------- */

struct notes_ctx {
	struct subject_list *out;
	size_t plen;
	int oom;
};

static int notes_cb(void *ctx, const struct store_record_view *v)
{
	struct notes_ctx *x = ctx;
	if (!schema_note_id_valid(v->key + x->plen, v->key_len - x->plen))
		return 0;
	if (list_add(x->out, pb_of(v))) {
		x->oom = 1;
		return MSCE_ENOMEM;
	}
	return 0;
}

static int collect_notes(struct store *s, const char *case_key,
			 struct subject_list *out, struct err *e)
{
	char prefix[MSCE_MAX_KEY + 2];
	struct store_scan q = {0};
	struct notes_ctx x = {out, 0, 0};

	x.plen = (size_t)snprintf(prefix, sizeof prefix, "%s/", case_key);
	q.coll = "case_note";
	q.coll_len = 9;
	q.prefix = prefix;
	q.prefix_len = x.plen;
	int rc = store_scan(s, &q, notes_cb, &x, e);
	if (x.oom)
		return err_set(e, MSCE_ENOMEM, "collect notes");
	return rc;
}

int subject_collect(struct store *s, struct subject *subs, size_t n,
		    int state, struct err *e)
{
	struct cases_ctx cx = {NULL, 0, 0};
	int rc = 0;

	for (size_t i = 0; i < n && rc == 0; i++)
		rc = collect_self(s, &subs[i], state, e);
	if (rc)
		return rc;
	cx.people = calloc(n ? n : 1, sizeof *cx.people);
	if (cx.people == NULL)
		return err_set(e, MSCE_ENOMEM, "collect cases");
	for (size_t i = 0; i < n; i++)
		if (strcmp(subs[i].coll, "registration") == 0)
			cx.people[cx.n++] = &subs[i];
	if (cx.n > 0) {
		struct store_scan q = {0};
		qsort(cx.people, cx.n, sizeof *cx.people, cmp_subject);
		q.coll = "case";
		q.coll_len = 4;
		rc = store_scan(s, &q, cases_cb, &cx, e);
		if (cx.oom)
			rc = err_set(e, MSCE_ENOMEM, "collect cases");
	}
	free(cx.people);
	for (size_t i = 0; i < n && rc == 0; i++) {
		struct subject *sub = &subs[i];
		if (strcmp(sub->coll, "case") == 0)
			rc = collect_notes(s, sub->key, &sub->notes, e);
		for (size_t k = 0; k < sub->cases.n && rc == 0; k++)
			rc = collect_notes(s, sub->cases.recs[k]->key,
					   &sub->notes, e);
	}
	return rc;
}

/* ---- audit entries about a subject ---------------------------------------- */

struct audit_ctx {
	char **lines; /* "collection/key", sorted */
	size_t n;
	const char *subject; /* "collection/key" */
	struct subject_list *out;
	int oom;
};

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int names(const struct audit_ctx *x, const uint8_t *v, size_t len)
{
	char line[MSCE_MAX_COLLECTION + 1 + MSCE_MAX_KEY + 1];
	const char *p = line;
	size_t at = 0;

	while (at < len) {
		const uint8_t *nl = memchr(v + at, '\n', len - at);
		size_t end = nl ? (size_t)(nl - v) : len;
		if (end - at < sizeof line) {
			memcpy(line, v + at, end - at);
			line[end - at] = '\0';
			if (bsearch(&p, x->lines, x->n, sizeof *x->lines, cmp_str))
				return 1;
		}
		at = end + 1;
	}
	return 0;
}

static int audit_cb(void *ctx, const struct store_record_view *v)
{
	struct audit_ctx *x = ctx;
	const struct field_state *r = record_field(
		v->rec, (const uint8_t *)STORE_LIST_FIELD,
		strlen(STORE_LIST_FIELD));
	const struct field_state *sj =
		record_field(v->rec, (const uint8_t *)"subject", 7);
	int hit = (r != NULL && names(x, r->w.value, r->w.value_len)) ||
		  (sj != NULL && sj->w.value_len == strlen(x->subject) &&
		   memcmp(sj->w.value, x->subject, sj->w.value_len) == 0);
	if (hit && list_add(x->out, pb_of(v))) {
		x->oom = 1;
		return MSCE_ENOMEM;
	}
	return 0;
}

static char *line_of(const Msce__Record *m)
{
	size_t len = strlen(m->collection) + 1 + strlen(m->key) + 1;
	char *s = malloc(len);
	if (s != NULL)
		snprintf(s, len, "%s/%s", m->collection, m->key);
	return s;
}

int subject_audit(struct store *s, const struct subject *sub,
		  struct subject_list *out, struct err *e)
{
	struct audit_ctx x = {0};
	struct store_scan q = {0};
	char subj[MSCE_MAX_COLLECTION + 1 + MSCE_MAX_KEY + 1];
	size_t max = 2 + sub->cases.n + sub->notes.n;
	int rc = 0;

	snprintf(subj, sizeof subj, "%s/%s", sub->coll, sub->key);
	x.subject = subj;
	x.out = out;
	x.lines = calloc(max, sizeof *x.lines);
	if (x.lines == NULL)
		return err_set(e, MSCE_ENOMEM, "collect audit entries");
	x.lines[x.n++] = strdup(subj);
	for (size_t i = 0; i < sub->cases.n; i++)
		x.lines[x.n++] = line_of(sub->cases.recs[i]);
	for (size_t i = 0; i < sub->notes.n; i++)
		x.lines[x.n++] = line_of(sub->notes.recs[i]);
	for (size_t i = 0; i < x.n; i++)
		if (x.lines[i] == NULL)
			rc = err_set(e, MSCE_ENOMEM, "collect audit entries");
	if (rc == 0) {
		qsort(x.lines, x.n, sizeof *x.lines, cmp_str);
		q.coll = AUDIT_COLLECTION;
		q.coll_len = strlen(AUDIT_COLLECTION);
		rc = store_scan(s, &q, audit_cb, &x, e);
		if (x.oom)
			rc = err_set(e, MSCE_ENOMEM, "collect audit entries");
	}
	for (size_t i = 0; i < x.n; i++)
		free(x.lines[i]);
	free(x.lines);
	return rc;
}

/* ---- retention ------------------------------------------------------------ */

struct select_ctx {
	const struct retention_rule *rule;
	const char *cutoff_date;
	uint64_t cutoff_ms;
	char **keys;
	size_t n, cap;
	int oom;
};

static int selected(const struct select_ctx *x, const struct record *r)
{
	const struct field_state *f;

	switch (x->rule->anchor) {
	case RETENTION_VISA_EXPIRY:
		f = record_field(r, (const uint8_t *)"visa_expiry", 11);
		return f != NULL && f->w.value_len == 10 &&
		       memcmp(f->w.value, x->cutoff_date, 10) < 0;
	case RETENTION_CLOSED:
		/* Closed since before the cutoff: the status was last
		 * written then, by the version's own clock. */
		f = record_field(r, (const uint8_t *)"status", 6);
		return f != NULL && f->w.value_len == 6 &&
		       memcmp(f->w.value, "closed", 6) == 0 &&
		       hlc_ms(f->w.v.hlc) < x->cutoff_ms;
	}
	return 0;
}

static int select_cb(void *ctx, const struct store_record_view *v)
{
	struct select_ctx *x = ctx;
	if (!selected(x, v->rec))
		return 0;
	if (x->n == x->cap) {
		size_t cap = x->cap ? x->cap * 2 : 64;
		char **p = realloc(x->keys, cap * sizeof *p);
		if (p == NULL)
			goto oom;
		x->keys = p;
		x->cap = cap;
	}
	if ((x->keys[x->n] = strndup(v->key, v->key_len)) == NULL)
		goto oom;
	x->n++;
	return 0;
oom:
	x->oom = 1;
	return MSCE_ENOMEM;
}

int subject_select(struct store *s, const char *coll,
		   const struct retention_rule *rule, uint64_t now_ms,
		   char ***keys, size_t *nkeys, char cutoff[11],
		   struct err *e)
{
	struct select_ctx x = {0};
	struct store_scan q = {0};
	int rc;

	retention_cutoff(rule, now_ms, cutoff, &x.cutoff_ms);
	x.rule = rule;
	x.cutoff_date = cutoff;
	q.coll = coll;
	q.coll_len = strlen(coll);
	rc = store_scan(s, &q, select_cb, &x, e);
	if (x.oom)
		rc = err_set(e, MSCE_ENOMEM, "select by retention rule");
	if (rc) {
		for (size_t i = 0; i < x.n; i++)
			free(x.keys[i]);
		free(x.keys);
		return rc;
	}
	*keys = x.keys;
	*nkeys = x.n;
	return 0;
}
