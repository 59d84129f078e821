/* SPDX-License-Identifier: Apache-2.0 */
/* Audit entries; see audit.h. */
#include "audit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "purpose.h"

int audit_personal(const char *coll, size_t len)
{
	static const char *const personal[] = {"registration", "case",
					       "case_note"};
	for (size_t i = 0; i < 3; i++)
		if (strlen(personal[i]) == len &&
		    memcmp(coll, personal[i], len) == 0)
			return 1;
	return 0;
}

int audit_system(const char *coll, size_t len)
{
	return len > 0 && coll[0] == '_';
}

const char *audit_purpose(int role, const char *given)
{
	if (given != NULL && given[0] != '\0')
		return given;
	return role == CONFIG_ROLE_ADMIN ? PURPOSE_ADMIN : PURPOSE_UNSPECIFIED;
}

static void field(struct store_field_in *f, const char *name,
		  const char *value, size_t len)
{
	memset(f, 0, sizeof *f);
	f->name = name;
	f->name_len = strlen(name);
	f->value = (const uint8_t *)value;
	f->value_len = len;
}

void audit_fill(struct store_write *w, struct store_field_in *f,
		const char *op, const struct audit_who *who,
		const char *records, size_t records_len, const char *subject,
		const char *rule)
{
	size_t n = 0;

	field(&f[n++], "op", op, strlen(op));
	field(&f[n++], "client", who->client, strlen(who->client));
	field(&f[n++], "role", who->role, strlen(who->role));
	field(&f[n++], "center", who->center, strlen(who->center));
	field(&f[n++], "purpose", who->purpose, strlen(who->purpose));
	if (records != NULL)
		field(&f[n++], STORE_LIST_FIELD, records, records_len);
	if (subject != NULL)
		field(&f[n++], "subject", subject, strlen(subject));
	if (rule != NULL)
		field(&f[n++], "rule", rule, strlen(rule));
	memset(w, 0, sizeof *w);
	w->op = STORE_PUT | STORE_W_SYSTEM | STORE_W_STAMP |
		(records == NULL ? STORE_W_LIST : 0);
	w->coll = AUDIT_COLLECTION;
	w->coll_len = strlen(AUDIT_COLLECTION);
	w->key = "";
	w->key_len = 0;
	w->fields = f;
	w->nfields = n;
}

/* ---- references of a read ------------------------------------------- */

void audit_refs_add(struct audit_refs *r, const char *coll, size_t clen,
		    const char *key, size_t klen)
{
	size_t need = clen + 1 + klen + 1;

	if (r->oom)
		return;
	if (r->len + need > r->cap) {
		size_t cap = r->cap ? r->cap * 2 : 1024;
		while (cap < r->len + need)
			cap *= 2;
		char *b = realloc(r->buf, cap);
		if (b == NULL) {
			r->oom = 1;
			return;
		}
		r->buf = b;
		r->cap = cap;
	}
	memcpy(r->buf + r->len, coll, clen);
	r->len += clen;
	r->buf[r->len++] = '/';
	memcpy(r->buf + r->len, key, klen);
	r->len += klen;
	r->buf[r->len++] = '\n';
	r->n++;
}

void audit_refs_free(struct audit_refs *r)
{
	free(r->buf);
	memset(r, 0, sizeof *r);
}

/* ---- entries of a read ------------------------------------------------ */

struct audit_job {
	struct writer_job job;
	struct store_write *w;
	struct store_field_in *f;
	struct store_written *out;
	struct audit_refs refs;
	char op[16], client[64], role[8], center[64], purpose[40];
	audit_done_fn done;
	void *arg;
};

static void job_done(struct writer_job *j)
{
	struct audit_job *a = (struct audit_job *)j;
	a->done(a->arg, j->rc, j->rc ? j->err.msg : "");
	free(a->w);
	free(a->f);
	free(a->out);
	audit_refs_free(&a->refs);
	free(a);
}

void audit_submit(struct writer *wr, const char *op,
		  const struct audit_who *who, struct audit_refs *refs,
		  audit_done_fn done, void *arg)
{
	struct audit_job *a;
	size_t n = 0, from = 0;
	struct audit_who copy;

	if (refs->oom) {
		audit_refs_free(refs);
		done(arg, MSCE_ENOMEM, "out of memory listing the records read");
		return;
	}
	if (refs->n == 0) {
		audit_refs_free(refs);
		done(arg, 0, "");
		return;
	}
	/* Entries end at a line end within AUDIT_LIST_MAX bytes, so each
	 * but the last holds more than half of that. */
	size_t nentries = refs->len / (AUDIT_LIST_MAX / 2) + 1;
	a = calloc(1, sizeof *a);
	if (a != NULL) {
		a->w = calloc(nentries, sizeof *a->w);
		a->f = calloc(nentries * AUDIT_MAX_FIELDS, sizeof *a->f);
		a->out = calloc(nentries, sizeof *a->out);
	}
	if (a == NULL || a->w == NULL || a->f == NULL || a->out == NULL) {
		if (a != NULL) {
			free(a->w);
			free(a->f);
			free(a->out);
		}
		free(a);
		audit_refs_free(refs);
		done(arg, MSCE_ENOMEM, "out of memory writing the audit entry");
		return;
	}
	a->refs = *refs;
	memset(refs, 0, sizeof *refs);
	snprintf(a->op, sizeof a->op, "%s", op);
	snprintf(a->client, sizeof a->client, "%s", who->client);
	snprintf(a->role, sizeof a->role, "%s", who->role);
	snprintf(a->center, sizeof a->center, "%s", who->center);
	snprintf(a->purpose, sizeof a->purpose, "%s", who->purpose);
	copy = (struct audit_who){a->client, a->role, a->center, a->purpose};
	while (from < a->refs.len && n < nentries) {
		size_t end = from;
		/* Whole lines, as many as fit. */
		while (end < a->refs.len) {
			const char *nl = memchr(a->refs.buf + end, '\n',
						a->refs.len - end);
			size_t next = (size_t)(nl - a->refs.buf) + 1;
			if (next - from > AUDIT_LIST_MAX && end > from)
				break;
			end = next;
		}
		audit_fill(&a->w[n], &a->f[n * AUDIT_MAX_FIELDS], a->op, &copy,
			   a->refs.buf + from, end - from, NULL, NULL);
		n++;
		from = end;
	}
	a->done = done;
	a->arg = arg;
	a->job.kind = WRITER_WRITE;
	a->job.w = a->w;
	a->job.n = n;
	a->job.out = a->out;
	a->job.done = job_done;
	writer_submit(wr, &a->job);
}
