/* SPDX-License-Identifier: Apache-2.0 */
/* msce commands on records: put, del, get, scan, conflicts, resolve,
 * note, watch. Versions and conflicts name the center that made them
 * ("luohu (5)"), learnt from a status of the node. Document and phone
 * numbers print masked unless --reveal (cli_value, cli_key). */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

/* ---- writes ----------------------------------------------------------------
 */

static int print_write(struct cli *x, const struct msce_write_result *res)
{
	if (x->json) {
		cJSON *j = cJSON_CreateObject();
		char h[24];
		snprintf(h, sizeof h, "%llu", (unsigned long long)res->hlc);
		cJSON_AddNumberToObject(j, "origin", res->origin);
		cJSON_AddNumberToObject(j, "seq", (double)res->seq);
		cJSON_AddStringToObject(j, "hlc", h);
		cli_print_json(j);
	} else {
		printf("ok %u/%llu\n", res->origin,
		       (unsigned long long)res->seq);
	}
	return 0;
}

static int write_one(struct cli *x, int argc, char **argv, int del)
{
	struct msce_write_result res;
	struct msce_field *f = calloc((size_t)argc, sizeof *f);
	int n = 0, rc;

	if (f == NULL)
		return cli_fail(x, CLI_FAIL, MSCE_ENOMEM, "out of memory");
	for (int i = 2; !del && i < argc; i++) {
		char *eq = strchr(argv[i], '=');
		if (eq == NULL || eq == argv[i]) {
			free(f);
			return cli_usage(x, "\"%s\" is not NAME=VALUE",
					 argv[i]);
		}
		*eq = 0;
		f[n].name = argv[i];
		f[n].value = eq + 1;
		f[n].value_len = strlen(eq + 1);
		n++;
	}
	if ((rc = cli_connect(x)) != 0) {
		free(f);
		return rc;
	}
	/* A node that just started on a new or restored store answers "busy"
	 * until its peers have said what they hold of it: wait a little. */
	for (int tries = 0;; tries++) {
		rc = del ? msce_delete(x->c, argv[0], argv[1], &res)
			 : msce_put(x->c, argv[0], argv[1], f, (size_t)n, &res);
		if (rc != MSCE_EBUSY || tries == 100)
			break;
		usleep(100 * 1000);
	}
	free(f);
	if (rc != 0)
		return cli_call_failed(x, rc);
	return print_write(x, &res);
}

int cmd_put(struct cli *x, const struct cli_opts *o, int argc, char **argv)
{
	(void)o;
	return write_one(x, argc, argv, 0);
}

int cmd_del(struct cli *x, const struct cli_opts *o, int argc, char **argv)
{
	(void)o;
	return write_one(x, argc, argv, 1);
}

int cmd_resolve(struct cli *x, const struct cli_opts *o, int argc, char **argv)
{
	struct msce_write_result res;
	int rc;

	(void)o;
	(void)argc;
	if ((rc = cli_connect(x)) != 0)
		return rc;
	rc = msce_resolve(x->c, argv[0], argv[1], argv[2], argv[3],
			  strlen(argv[3]), &res);
	if (rc != 0)
		return cli_call_failed(x, rc);
	return print_write(x, &res);
}

/* ---- reads
 * -------------------------------------------------------------------- */

static cJSON *record_json(struct cli *x, const Msce__Record *rec)
{
	cJSON *j = cJSON_CreateObject(), *fields = cJSON_CreateObject();
	char *k = cli_key(x, rec->collection, rec->key);
	cJSON_AddStringToObject(j, "collection", rec->collection);
	cJSON_AddStringToObject(j, "key", k ? k : "");
	free(k);
	for (size_t i = 0; i < rec->n_fields; i++) {
		const Msce__FieldVersion *w = rec->fields[i]->winner;
		cJSON *f = cJSON_CreateObject();
		char *v = cli_value(x, rec->collection, w->name, w->value.data,
				    w->value.len);
		cJSON_AddStringToObject(f, "value", v ? v : "");
		free(v);
		/* hlc as a string: 64 bits do not fit a JSON double. */
		char h[24];
		snprintf(h, sizeof h, "%llu", (unsigned long long)w->hlc);
		cJSON_AddStringToObject(f, "hlc", h);
		cJSON_AddNumberToObject(f, "origin", w->origin);
		cJSON_AddStringToObject(f, "center", cli_name(x, w->origin));
		if (rec->fields[i]->n_losers)
			cJSON_AddNumberToObject(
			    f, "conflicts", (double)rec->fields[i]->n_losers);
		cJSON_AddItemToObject(fields, w->name, f);
	}
	cJSON_AddItemToObject(j, "fields", fields);
	return j;
}

static void record_text(struct cli *x, const Msce__Record *rec)
{
	for (size_t i = 0; i < rec->n_fields; i++) {
		const Msce__FieldVersion *w = rec->fields[i]->winner;
		char *v = cli_value(x, rec->collection, w->name, w->value.data,
				    w->value.len);
		printf("%s = %s%s\n", w->name, v ? v : "",
		       rec->fields[i]->n_losers ? "  (conflict)" : "");
		free(v);
	}
}


int cmd_get(struct cli *x, const struct cli_opts *o, int argc, char **argv)
{
	Msce__ClientRequest req = MSCE__CLIENT_REQUEST__INIT;
	Msce__GetRequest g = MSCE__GET_REQUEST__INIT;
	Msce__ClientResponse *r;
	int rc;

	(void)o;
	(void)argc;
	if ((rc = cli_connect(x)) != 0 || (x->json && (rc = cli_names(x))))
		return rc;
	g.collection = argv[0];
	g.key = argv[1];
	req.op_case = MSCE__CLIENT_REQUEST__OP_GET;
	req.get = &g;
	if ((rc = cli_call(x, &req, &r)) != 0)
		return rc;
	if (r->code != 0 || r->record == NULL || r->record->record == NULL)
		return cli_refused(x, r);
	if (x->json) {
		cJSON *j = record_json(x, r->record->record);
		cJSON *seen = cJSON_CreateArray(), *names = cJSON_CreateArray();
		for (size_t i = 0; i < r->record->n_seen_by; i++) {
			cJSON_AddItemToArray(
			    seen, cJSON_CreateNumber(r->record->seen_by[i]));
			cJSON_AddItemToArray(
			    names, cJSON_CreateString(
				       cli_name(x, r->record->seen_by[i])));
		}
		cJSON_AddItemToObject(j, "seen_by", seen);
		cJSON_AddItemToObject(j, "seen_by_centers", names);
		cli_print_json(j);
	} else {
		record_text(x, r->record->record);
	}
	msce__client_response__free_unpacked(r, NULL);
	return 0;
}

int cmd_scan(struct cli *x, const struct cli_opts *o, int argc, char **argv)
{
	Msce__ClientRequest req = MSCE__CLIENT_REQUEST__INIT;
	Msce__ScanRequest s = MSCE__SCAN_REQUEST__INIT;
	Msce__ClientResponse *r;
	int rc;

	(void)argc;
	if ((rc = cli_connect(x)) != 0 || (x->json && (rc = cli_names(x))))
		return rc;
	s.collection = argv[0];
	s.prefix = (char *)(o->prefix ? o->prefix : "");
	s.after = (char *)(o->after ? o->after : "");
	s.limit = o->limit ? (unsigned)o->limit : 100;
	req.op_case = MSCE__CLIENT_REQUEST__OP_SCAN;
	req.scan = &s;
	if ((rc = cli_call(x, &req, &r)) != 0)
		return rc;
	if (r->code != 0 || r->scan == NULL)
		return cli_refused(x, r);
	for (size_t i = 0; i < r->scan->n_records; i++) {
		if (x->json)
			cli_print_json(record_json(x, r->scan->records[i]));
		else {
			char *k = cli_key(x, argv[0], r->scan->records[i]->key);
			printf("%s\n", k ? k : "");
			free(k);
		}
	}
	msce__client_response__free_unpacked(r, NULL);
	return 0;
}

/* ---- conflicts
 * ------------------------------------------------------------------ */

static cJSON *value_json(struct cli *x, const struct msce_conflict *k,
			 const struct msce_value *v)
{
	cJSON *j = cJSON_CreateObject();
	char h[24], *val = cli_value(x, k->collection, k->field, v->value,
				     v->value_len);
	snprintf(h, sizeof h, "%llu", (unsigned long long)v->hlc);
	cJSON_AddStringToObject(j, "value", val ? val : "");
	cJSON_AddStringToObject(j, "hlc", h);
	cJSON_AddNumberToObject(j, "origin", v->origin);
	cJSON_AddStringToObject(j, "center", cli_name(x, v->origin));
	free(val);
	return j;
}

int cmd_conflicts(struct cli *x, const struct cli_opts *o, int argc,
		  char **argv)
{
	msce_conflicts *l;
	char a[96], b[96];
	int rc;

	if ((rc = cli_connect(x)) != 0 || (rc = cli_names(x)) != 0)
		return rc;
	rc = msce_conflicts_list(x->c, argc ? argv[0] : NULL,
				 (unsigned)o->limit, &l);
	if (rc)
		return cli_call_failed(x, rc);
	for (size_t i = 0; i < msce_conflicts_count(l); i++) {
		const struct msce_conflict *k = msce_conflicts_get(l, i);
		char *key = cli_key(x, k->collection, k->key);
		char *wv = cli_value(x, k->collection, k->field, k->winner.value,
				     k->winner.value_len);
		char *lv = cli_value(x, k->collection, k->field, k->loser.value,
				     k->loser.value_len);
		cli_center(x, k->winner.origin, a, sizeof a);
		cli_center(x, k->loser.origin, b, sizeof b);
		if (x->json) {
			cJSON *j = cJSON_CreateObject();
			cJSON_AddStringToObject(j, "collection", k->collection);
			cJSON_AddStringToObject(j, "key", key ? key : "");
			cJSON_AddStringToObject(j, "field", k->field);
			cJSON_AddItemToObject(j, "winner",
					      value_json(x, k, &k->winner));
			cJSON_AddItemToObject(j, "loser",
					      value_json(x, k, &k->loser));
			cJSON_AddBoolToObject(j, "delete", k->is_delete);
			cli_print_json(j);
		} else if (k->is_delete) {
			printf("%s/%s %s: \"%s\" (%s) survived a concurrent "
			       "delete (%s) it had not seen\n",
			       k->collection, key ? key : "", k->field,
			       wv ? wv : "", a, b);
		} else {
			printf("%s/%s %s: \"%s\" (%s) won over \"%s\" "
			       "(%s)\n",
			       k->collection, key ? key : "", k->field,
			       wv ? wv : "", a, lv ? lv : "", b);
		}
		free(key);
		free(wv);
		free(lv);
	}
	if (!x->json)
		printf("%zu open conflicts\n", msce_conflicts_count(l));
	msce_conflicts_free(l);
	return 0;
}

/* ---- case notes (records of collection case_note) ------------------------ */

static cJSON *fields_json(const msce_record *r)
{
	cJSON *fs = cJSON_CreateObject();
	for (size_t f = 0; f < msce_record_nfields(r); f++) {
		const struct msce_value *v = msce_record_field(r, f);
		char *val = cli_strndup(v->value, v->value_len);
		cJSON_AddStringToObject(fs, v->name, val ? val : "");
		free(val);
	}
	return fs;
}

static int print_note(void *ctx, const char *id, const msce_record *r)
{
	const struct msce_value *t = msce_record_find(r, "text");
	const struct msce_value *a = msce_record_find(r, "author");
	if (*(int *)ctx) {
		cJSON *j = cJSON_CreateObject();
		cJSON_AddStringToObject(j, "id", id);
		cJSON_AddItemToObject(j, "fields", fields_json(r));
		cli_print_json(j);
		return 0;
	}
	printf("%s%s%.*s\n%.*s\n\n", id, a ? " " : "",
	       a ? (int)a->value_len : 0, a ? (const char *)a->value : "",
	       t ? (int)t->value_len : 0, t ? (const char *)t->value : "");
	return 0;
}

int cmd_note(struct cli *x, const struct cli_opts *o, int argc, char **argv)
{
	struct msce_case_note n = {0};
	char id[MSCE_NOTE_ID_SIZE];
	int add = argc == 3 && strcmp(argv[0], "add") == 0, rc;

	if (!add && !(argc == 2 && strcmp(argv[0], "list") == 0))
		return cli_usage(x, "want: note add CASE TEXT, or note list "
				    "CASE");
	if (!add && o->author != NULL)
		return cli_usage(x, "--author is for note add");
	if ((rc = cli_connect(x)) != 0)
		return rc;
	n.text = add ? argv[2] : NULL;
	n.author = o->author;
	rc = add ? msce_case_note_put(x->c, argv[1], &n, id, NULL)
		 : msce_case_notes(x->c, argv[1], print_note, &x->json);
	if (rc != 0)
		return cli_call_failed(x, rc);
	if (add && x->json) {
		cJSON *j = cJSON_CreateObject();
		cJSON_AddStringToObject(j, "id", id);
		cli_print_json(j);
	} else if (add) {
		printf("%s\n", id);
	}
	return 0;
}

/* ---- watch ------------------------------------------------------------------
 */

static volatile sig_atomic_t interrupted;

static void on_interrupt(int sig)
{
	(void)sig;
	interrupted = 1;
}

static void print_event(struct cli *x, const struct msce_event *ev)
{
	cJSON *j = cJSON_CreateObject(), *fs = cJSON_CreateObject();
	char h[24];

	char *k = cli_key(x, ev->collection, ev->key);
	cJSON_AddStringToObject(j, "collection", ev->collection);
	cJSON_AddStringToObject(j, "key", k ? k : "");
	free(k);
	cJSON_AddBoolToObject(j, "delete", ev->is_delete);
	cJSON_AddNumberToObject(j, "origin", ev->origin);
	cJSON_AddStringToObject(j, "center", cli_name(x, ev->origin));
	cJSON_AddNumberToObject(j, "seq", (double)ev->seq);
	snprintf(h, sizeof h, "%llu", (unsigned long long)ev->hlc);
	cJSON_AddStringToObject(j, "hlc", h);
	for (size_t i = 0; i < ev->nfields; i++) {
		const struct msce_value *v = &ev->fields[i];
		char *val = cli_value(x, ev->collection, v->name, v->value,
				      v->value_len);
		cJSON_AddStringToObject(fs, v->name, val ? val : "");
		free(val);
	}
	cJSON_AddItemToObject(j, "fields", fs);
	cli_print_json(j);
}

int cmd_watch(struct cli *x, const struct cli_opts *o, int argc, char **argv)
{
	Msce__ClientResponse *r;
	struct msce_cursor cur = {0};
	struct msce_event ev;
	unsigned long seen = 0;
	struct sigaction sa = {.sa_handler = on_interrupt};
	int rc;

	if ((rc = cli_connect(x)) != 0 || (rc = cli_status(x, &r)) != 0)
		return rc;
	/* From now: the node's vector is the cursor of what it holds. */
	for (size_t i = 0; i < r->status->n_vv && cur.n < MSCE_CURSOR_MAX;
	     i++) {
		cur.origin[cur.n] = r->status->vv[i]->origin;
		cur.seq[cur.n++] = r->status->vv[i]->seq;
	}
	msce__client_response__free_unpacked(r, NULL);
	if ((rc = msce_watch(x->c, argc ? argv[0] : NULL,
			     o->from_start ? NULL : &cur)) != 0)
		return cli_call_failed(x, rc);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_DFL); /* `msce watch | head` ends quietly */
	while (!interrupted && (o->count == 0 || seen < o->count)) {
		/* Wake up now and then to notice an interrupt. */
		rc = msce_watch_next(x->c, &ev, 500, NULL);
		if (rc == MSCE_ETIMEOUT)
			continue;
		if (rc != 0)
			return cli_fail(x, cli_exit_for(rc), rc, "%s",
					msce_errmsg(x->c));
		print_event(x, &ev);
		seen++;
	}
	return 0;
}
