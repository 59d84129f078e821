/* SPDX-License-Identifier: Apache-2.0 */
/* Data subjects' requests (issue 15): person export, erase, retention.
 *
 * Happy path: the request is checked on the loop thread, what it names is
 * collected on libuv's thread pool (subject.c: it scans every case, and
 * for an export every audit entry), then back on the loop thread the
 * answer is sent once its audit entry is durable (export), or the records
 * are erased in one batch (api_erase_person) and the answer lists what
 * was deleted. Failure modes: a store read error or no such record is an
 * error answer; a node stopping meanwhile answers ECLOSED; nothing is
 * erased unless the whole batch commits. The connection is held (its
 * request hold) until the answer, so it outlives the work. */
#include <stdlib.h>
#include <string.h>

#include "api_int.h"
#include "log.h"
#include "node.h"
#include "purpose.h"
#include "schema.h"

enum subject_job { JOB_EXPORT, JOB_ERASE, JOB_RETENTION };

struct rule_sel {
	const char *coll;
	const struct retention_rule *rule;
	char cutoff[11];
	char **keys;
	size_t nkeys;
};

struct subject_work {
	uv_work_t w;
	struct node *n;
	struct client_conn *c;
	uint64_t id;
	enum subject_job job;
	char purpose[PURPOSE_MAX + 1];
	int apply;
	uint64_t now_ms;
	struct subject *subs;
	size_t nsubs;
	const char **rules; /* per subject (retention) */
	struct subject_list audit;
	struct rule_sel sel[2];
	size_t nsel;
	int rc;
	struct err e;
};

static void work_free(struct subject_work *x)
{
	for (size_t i = 0; i < x->nsubs; i++)
		subject_free(&x->subs[i]);
	free(x->subs);
	free(x->rules);
	subject_list_free(&x->audit);
	for (size_t i = 0; i < x->nsel; i++) {
		for (size_t k = 0; k < x->sel[i].nkeys; k++)
			free(x->sel[i].keys[k]);
		free(x->sel[i].keys);
	}
	free(x);
}

static struct subject_work *work_new(struct node *n, struct client_conn *c,
				     const Msce__ClientRequest *req,
				     enum subject_job job, size_t nsubs)
{
	struct subject_work *x = calloc(1, sizeof *x);
	if (x != NULL && nsubs > 0 &&
	    (x->subs = calloc(nsubs, sizeof *x->subs)) == NULL) {
		free(x);
		x = NULL;
	}
	if (x == NULL) {
		api_reply_error(c, req->id, MSCE_ENOMEM, "out of memory");
		return NULL;
	}
	x->n = n;
	x->c = c;
	x->id = req->id;
	x->job = job;
	x->nsubs = nsubs;
	x->now_ms = node_now_ms();
	snprintf(x->purpose, sizeof x->purpose, "%s", req->purpose);
	x->w.data = x;
	return x;
}

static void reply_err(struct subject_work *x, int rc, const char *msg)
{
	api_reply_error(x->c, x->id, rc, msg);
	work_free(x);
}

/* ---- on the thread pool ---------------------------------------------------- */

static int select_and_collect(struct subject_work *x)
{
	const struct config *cfg = &x->n->cfg;
	size_t total = 0;

	if (cfg->retention_registration.anchor != RETENTION_NONE)
		x->sel[x->nsel++] = (struct rule_sel){
			"registration", &cfg->retention_registration, "", NULL,
			0};
	if (cfg->retention_case.anchor != RETENTION_NONE)
		x->sel[x->nsel++] = (struct rule_sel){
			"case", &cfg->retention_case, "", NULL, 0};
	for (size_t i = 0; i < x->nsel; i++) {
		struct rule_sel *r = &x->sel[i];
		int rc = subject_select(x->n->store, r->coll, r->rule,
					x->now_ms, &r->keys, &r->nkeys,
					r->cutoff, &x->e);
		if (rc)
			return rc;
		total += r->nkeys;
	}
	if (!x->apply || total == 0)
		return 0;
	x->subs = calloc(total, sizeof *x->subs);
	x->rules = calloc(total, sizeof *x->rules);
	if (x->subs == NULL || x->rules == NULL)
		return err_set(&x->e, MSCE_ENOMEM, "plan retention");
	for (size_t i = 0; i < x->nsel; i++)
		for (size_t k = 0; k < x->sel[i].nkeys; k++) {
			struct subject *s = &x->subs[x->nsubs];
			snprintf(s->coll, sizeof s->coll, "%s", x->sel[i].coll);
			snprintf(s->key, sizeof s->key, "%s",
				 x->sel[i].keys[k]);
			x->rules[x->nsubs++] = x->sel[i].rule->text;
		}
	return subject_collect(x->n->store, x->subs, x->nsubs, 1, &x->e);
}

static void work_run(uv_work_t *w)
{
	struct subject_work *x = w->data;

	err_clear(&x->e);
	switch (x->job) {
	case JOB_EXPORT:
		x->rc = subject_collect(x->n->store, x->subs, 1, 0, &x->e);
		if (x->rc == 0)
			x->rc = subject_audit(x->n->store, x->subs, &x->audit,
					      &x->e);
		break;
	case JOB_ERASE:
		x->rc = subject_collect(x->n->store, x->subs, 1, 1, &x->e);
		break;
	case JOB_RETENTION:
		x->rc = select_and_collect(x);
		break;
	}
}

/* ---- answers, on the loop thread -------------------------------------------- */

static void add_refs(struct audit_refs *refs, const struct subject_list *l)
{
	for (size_t i = 0; i < l->n; i++)
		audit_refs_add(refs, l->recs[i]->collection,
			       strlen(l->recs[i]->collection), l->recs[i]->key,
			       strlen(l->recs[i]->key));
}

static void answer_export(struct subject_work *x)
{
	struct subject *sub = &x->subs[0];
	Msce__ClientResponse r = MSCE__CLIENT_RESPONSE__INIT;
	Msce__PersonResult pr = MSCE__PERSON_RESULT__INIT;
	struct audit_refs refs = {0};
	char msg[400];

	if (subject_count(sub) == 0) {
		snprintf(msg, sizeof msg,
			 "no registration %s and no case that references it",
			 sub->key);
		reply_err(x, MSCE_ENOTFOUND, msg);
		return;
	}
	pr.registration = sub->self;
	pr.n_cases = sub->cases.n;
	pr.cases = sub->cases.recs;
	pr.n_notes = sub->notes.n;
	pr.notes = sub->notes.recs;
	pr.n_audit = x->audit.n;
	pr.audit = x->audit.recs;
	r.id = x->id;
	r.result_case = MSCE__CLIENT_RESPONSE__RESULT_PERSON;
	r.person = &pr;
	/* The export is a read of every record in it. */
	if (sub->self != NULL)
		audit_refs_add(&refs, sub->self->collection,
			       strlen(sub->self->collection), sub->self->key,
			       strlen(sub->self->key));
	add_refs(&refs, &sub->cases);
	add_refs(&refs, &sub->notes);
	api_reply_audited(x->n, x->c, x->purpose, &r, "export", &refs);
	work_free(x);
}

static void erase_done(void *arg, int rc, const char *msg,
		       const char *const *erased, size_t nerased)
{
	struct subject_work *x = arg;
	Msce__ClientResponse r = MSCE__CLIENT_RESPONSE__INIT;
	Msce__EraseResult er = MSCE__ERASE_RESULT__INIT;
	Msce__RetentionResult rr = MSCE__RETENTION_RESULT__INIT;
	Msce__RetentionSelection sels[2], *sp[2];

	if (rc) {
		reply_err(x, rc, msg);
		return;
	}
	r.id = x->id;
	if (x->job == JOB_RETENTION) {
		for (size_t i = 0; i < x->nsel; i++) {
			msce__retention_selection__init(&sels[i]);
			sels[i].collection = (char *)x->sel[i].coll;
			sels[i].rule = (char *)x->sel[i].rule->text;
			sels[i].cutoff = x->sel[i].cutoff;
			sels[i].n_keys = x->sel[i].nkeys;
			sels[i].keys = x->sel[i].keys;
			sp[i] = &sels[i];
		}
		rr.n_rules = x->nsel;
		rr.rules = sp;
		rr.applied = x->apply;
		rr.n_erased = nerased;
		rr.erased = (char **)erased;
		r.result_case = MSCE__CLIENT_RESPONSE__RESULT_RETENTION;
		r.retention = &rr;
		if (x->apply)
			log_info("retention: %zu records erased", nerased);
	} else {
		er.n_records = nerased;
		er.records = (char **)erased;
		r.result_case = MSCE__CLIENT_RESPONSE__RESULT_ERASE;
		r.erase = &er;
		/* No key: logs carry no personal data (the audit log does). */
		log_info("erasure of a %s: %zu records deleted",
			 x->subs[0].coll, nerased);
	}
	api_reply(x->c, &r);
	work_free(x);
}

static void work_after(uv_work_t *w, int status)
{
	struct subject_work *x = w->data;
	size_t found = 0;
	char msg[400];

	if (status != 0 || x->n->stopping) {
		reply_err(x, MSCE_ECLOSED, "node is shutting down");
		return;
	}
	if (x->rc) {
		reply_err(x, x->rc, x->e.msg);
		return;
	}
	switch (x->job) {
	case JOB_EXPORT:
		answer_export(x);
		return;
	case JOB_ERASE:
		if (subject_count(&x->subs[0]) == 0) {
			snprintf(msg, sizeof msg,
				 "nothing to erase: no %s %s%s", x->subs[0].coll,
				 x->subs[0].key,
				 strcmp(x->subs[0].coll, "registration") == 0
					 ? " and no case that references it"
					 : " and no note of it");
			reply_err(x, MSCE_ENOTFOUND, msg);
			return;
		}
		break;
	case JOB_RETENTION:
		for (size_t i = 0; i < x->nsubs; i++)
			found += subject_count(&x->subs[i]);
		if (!x->apply || found == 0) {
			erase_done(x, 0, "", NULL, 0);
			return;
		}
		break;
	}
	api_erase_person(x->n, x->c, x->purpose, x->subs, x->nsubs,
			 x->job == JOB_RETENTION ? x->rules : NULL, erase_done,
			 x);
}

static void queue(struct subject_work *x)
{
	if (uv_queue_work(x->n->loop, &x->w, work_run, work_after) != 0)
		reply_err(x, MSCE_EBUSY, "cannot start the work");
}

/* ---- requests ------------------------------------------------------------------ */

void api_person(struct node *n, struct client_conn *c,
		const Msce__ClientRequest *req)
{
	const char *key = req->person->key;
	struct subject_work *x;

	if (!schema_registration_key_valid(key, strlen(key))) {
		api_reply_error(c, req->id, MSCE_EINVAL,
				"person: not a registration key "
				"NATIONALITY:DOCUMENT-NUMBER (e.g. "
				"FRA:AB123456)");
		return;
	}
	if ((x = work_new(n, c, req, JOB_EXPORT, 1)) == NULL)
		return;
	snprintf(x->subs[0].coll, sizeof x->subs[0].coll, "registration");
	snprintf(x->subs[0].key, sizeof x->subs[0].key, "%s", key);
	queue(x);
}

void api_erase(struct node *n, struct client_conn *c,
	       const Msce__ClientRequest *req)
{
	const char *coll = req->erase->collection, *key = req->erase->key;
	struct subject_work *x;
	struct err e;

	if (strcmp(coll, "registration") != 0 && strcmp(coll, "case") != 0) {
		api_reply_error(c, req->id, MSCE_EINVAL,
				"erase: collection must be registration (a "
				"person, with their cases and notes) or case "
				"(one case with its notes)");
		return;
	}
	if (strcmp(coll, "registration") == 0
		    ? schema_validate_delete(coll, strlen(coll), key,
					     strlen(key), &e)
		    : schema_check_key(key, strlen(key), &e)) {
		api_reply_error(c, req->id, e.code, e.msg);
		return;
	}
	if ((x = work_new(n, c, req, JOB_ERASE, 1)) == NULL)
		return;
	snprintf(x->subs[0].coll, sizeof x->subs[0].coll, "%s", coll);
	snprintf(x->subs[0].key, sizeof x->subs[0].key, "%s", key);
	queue(x);
}

void api_retention(struct node *n, struct client_conn *c,
		   const Msce__ClientRequest *req)
{
	struct subject_work *x;

	if (n->cfg.retention_registration.anchor == RETENTION_NONE &&
	    n->cfg.retention_case.anchor == RETENTION_NONE) {
		api_reply_error(c, req->id, MSCE_ENOTFOUND,
				"no retention rule: this node's config has no "
				"[retention] section (deploy/README.md)");
		return;
	}
	if ((x = work_new(n, c, req, JOB_RETENTION, 0)) == NULL)
		return;
	x->apply = req->retention->apply;
	queue(x);
}
