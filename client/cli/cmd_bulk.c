/* SPDX-License-Identifier: Apache-2.0 */
/* msce import, export and backup: long work, with progress on a terminal
 * (progress.h). An import reports every line it could not write, in line
 * order, with the node's reason (the field and the rule) or why the line
 * could not be read. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "config.h"
#include "error.h"
#include "progress.h"

/* ---- import
 * ------------------------------------------------------------------ */

#define IMPORT_BATCH 500
#define BUSY_TRIES 100 /* "busy" answers retried, 100 ms apart */

struct line {
	long no;
	cJSON *doc;    /* owned; the strings below point into it */
	char why[160]; /* unreadable: why; "" if sent */
	Msce__PutRequest put;
	Msce__FieldIn *fields; /* put.n_fields of them, owned */
	Msce__FieldIn **fptrs; /* owned */
};

struct import {
	struct cli *x;
	struct progress pg;
	struct line lines[IMPORT_BATCH];
	size_t n;
	long ok, refused, bad;
};

static void line_free(struct line *l)
{
	cJSON_Delete(l->doc);
	free(l->fields);
	free(l->fptrs);
	memset(l, 0, sizeof *l);
}

/* Fills l->put from one JSON line, or l->why. */
static void parse_line(struct line *l, const char *text)
{
	cJSON *d = cJSON_Parse(text), *it;
	l->doc = d;
	cJSON *coll = cJSON_GetObjectItemCaseSensitive(d, "collection");
	cJSON *key = cJSON_GetObjectItemCaseSensitive(d, "key");
	cJSON *fields = cJSON_GetObjectItemCaseSensitive(d, "fields");
	cJSON *del = cJSON_GetObjectItemCaseSensitive(d, "delete");
	cJSON *base = cJSON_GetObjectItemCaseSensitive(d, "base");
	size_t nf = 0, k = 0;

	if (d == NULL) {
		snprintf(l->why, sizeof l->why, "not JSON");
		return;
	}
	if (!cJSON_IsString(coll) || !cJSON_IsString(key) ||
	    (!cJSON_IsTrue(del) && !cJSON_IsObject(fields))) {
		snprintf(l->why, sizeof l->why,
			 "not {\"collection\", \"key\", \"fields\": {...}}");
		return;
	}
	msce__put_request__init(&l->put);
	l->put.collection = coll->valuestring;
	l->put.key = key->valuestring;
	if (cJSON_IsTrue(del)) {
		l->put.delete_ = 1;
		return;
	}
	cJSON_ArrayForEach(it, fields) nf++;
	l->fields = calloc(nf ? nf : 1, sizeof *l->fields);
	l->fptrs = calloc(nf ? nf : 1, sizeof *l->fptrs);
	if (l->fields == NULL || l->fptrs == NULL) {
		snprintf(l->why, sizeof l->why, "out of memory");
		return;
	}
	cJSON_ArrayForEach(it, fields)
	{
		Msce__FieldIn *f = &l->fields[k];
		unsigned long long bh;
		unsigned bo;
		char extra;

		if (!cJSON_IsString(it)) {
			snprintf(l->why, sizeof l->why,
				 "field \"%s\": values must be strings",
				 it->string);
			return;
		}
		msce__field_in__init(f);
		f->name = it->string;
		f->value.data = (uint8_t *)it->valuestring;
		f->value.len = strlen(it->valuestring);
		/* Optional "base": {"field": "HLC/ORIGIN"}: the version the
		 * writer saw (else the node's current one). */
		cJSON *b = cJSON_GetObjectItemCaseSensitive(base, it->string);
		if (cJSON_IsString(b) && sscanf(b->valuestring, "%llu/%u%c",
						&bh, &bo, &extra) == 2) {
			f->has_base = 1;
			f->base_hlc = bh;
			f->base_origin = bo;
		} else if (b != NULL) {
			snprintf(l->why, sizeof l->why,
				 "base of \"%s\" is not \"HLC/ORIGIN\"",
				 it->string);
			return;
		}
		l->fptrs[k++] = f;
	}
	l->put.n_fields = k;
	l->put.fields = l->fptrs;
}

static void report_line(struct import *im, const struct line *l, int code,
			const char *why)
{
	struct cli *x = im->x;

	if (x->json) {
		cJSON *j = cJSON_CreateObject(), *e = cJSON_CreateObject();
		cJSON_AddNumberToObject(j, "line", (double)l->no);
		if (l->put.collection != NULL) {
			cJSON_AddStringToObject(j, "collection",
						l->put.collection);
			cJSON_AddStringToObject(j, "key", l->put.key);
		}
		cJSON_AddStringToObject(e, "code",
					code ? err_name(code) : "EUNREADABLE");
		cJSON_AddStringToObject(e, "message", why);
		cJSON_AddItemToObject(j, "error", e);
		cli_print_json(j);
		return;
	}
	progress_clear(&im->pg);
	if (code == 0)
		fprintf(stderr, "line %ld: unreadable: %s\n", l->no, why);
	else
		fprintf(stderr, "line %ld: %s/%s refused: %s\n", l->no,
			l->put.collection, l->put.key, why);
}

/* Sends the batch's readable lines in one request, then reports every
 * line of it in order. 0, or the exit code of a failure to reach the
 * node. */
static int flush(struct import *im)
{
	Msce__ClientRequest req = MSCE__CLIENT_REQUEST__INIT;
	Msce__BatchPutRequest b = MSCE__BATCH_PUT_REQUEST__INIT;
	Msce__PutRequest *puts[IMPORT_BATCH];
	Msce__ClientResponse *r = NULL;
	size_t np = 0, k = 0;
	int rc = 0;

	for (size_t i = 0; i < im->n; i++)
		if (im->lines[i].why[0] == '\0')
			puts[np++] = &im->lines[i].put;
	if (np > 0) {
		b.n_puts = np;
		b.puts = puts;
		req.op_case = MSCE__CLIENT_REQUEST__OP_BATCH;
		req.batch = &b;
		for (int tries = 0;; tries++) {
			if ((rc = cli_call(im->x, &req, &r)) != 0)
				goto out;
			if (r->code != MSCE_EBUSY || tries == BUSY_TRIES)
				break;
			msce__client_response__free_unpacked(r, NULL);
			r = NULL;
			usleep(100 * 1000);
		}
		if (r->code != 0) {
			rc = cli_fail(im->x, cli_exit_for((int)r->code),
				      (int)r->code, "%s: %s",
				      msce_strerror((int)r->code), r->error);
			goto out;
		}
		if (r->result_case != MSCE__CLIENT_RESPONSE__RESULT_BATCH ||
		    r->batch->n_results != np) {
			rc = cli_fail(im->x, CLI_FAIL, MSCE_EPROTO,
				      "the batch answer does not match");
			goto out;
		}
	}
	for (size_t i = 0; i < im->n; i++) {
		const struct line *l = &im->lines[i];
		if (l->why[0] != '\0') {
			im->bad++;
			report_line(im, l, 0, l->why);
			continue;
		}
		const Msce__ClientResponse *it = r->batch->results[k++];
		if (it->code == 0) {
			im->ok++;
		} else {
			im->refused++;
			report_line(im, l, (int)it->code,
				    it->error[0]
					? it->error
					: msce_strerror((int)it->code));
		}
	}
out:
	if (r != NULL)
		msce__client_response__free_unpacked(r, NULL);
	for (size_t i = 0; i < im->n; i++)
		line_free(&im->lines[i]);
	im->n = 0;
	return rc;
}

int cmd_import(struct cli *x, const struct cli_opts *o, int argc, char **argv)
{
	struct import *im = calloc(1, sizeof *im);
	int from_stdin = strcmp(argv[0], "-") == 0, rc = 0;
	FILE *f;
	char *text = NULL;
	size_t cap = 0;
	long lineno = 0;
	struct stat st;

	(void)o;
	(void)argc;
	if (im == NULL)
		return cli_fail(x, CLI_FAIL, MSCE_ENOMEM, "out of memory");
	im->x = x;
	f = from_stdin ? stdin : fopen(argv[0], "r");
	if (f == NULL) {
		free(im);
		return cli_fail(x, CLI_NO, MSCE_EIO, "cannot open %s: %s",
				argv[0], strerror(errno));
	}
	if ((rc = cli_connect(x)) != 0)
		goto done;
	/* The ETA is known when the input has a size: a file, or stdin
	 * redirected from one. */
	progress_start(&im->pg, "import", "lines",
		       fstat(fileno(f), &st) == 0 && S_ISREG(st.st_mode)
			   ? (uint64_t)st.st_size
			   : 0);
	while (getline(&text, &cap, f) > 0) {
		lineno++;
		if (text[strspn(text, " \t\r\n")] == '\0')
			continue;
		struct line *l = &im->lines[im->n++];
		l->no = lineno;
		parse_line(l, text);
		if (im->n == IMPORT_BATCH && (rc = flush(im)) != 0)
			break;
		long pos = ftell(f);
		progress_update(&im->pg, (uint64_t)lineno,
				pos > 0 ? (uint64_t)pos : 0);
	}
	if (rc == 0)
		rc = flush(im);
	progress_end(&im->pg);
	if (x->json) {
		cJSON *j = cJSON_CreateObject();
		cJSON_AddNumberToObject(j, "imported", (double)im->ok);
		cJSON_AddNumberToObject(j, "refused", (double)im->refused);
		cJSON_AddNumberToObject(j, "unreadable", (double)im->bad);
		cJSON_AddBoolToObject(j, "complete", rc == 0);
		cli_print_json(j);
	} else {
		printf("imported %ld, refused %ld, unreadable lines %ld%s\n",
		       im->ok, im->refused, im->bad,
		       rc ? " (stopped early)" : "");
	}
	if (rc == 0 && (im->refused || im->bad))
		rc = CLI_NO;
done:
	for (size_t i = 0; i < im->n; i++)
		line_free(&im->lines[i]);
	free(text);
	if (f != stdin)
		fclose(f);
	free(im);
	return rc;
}

/* ---- export
 * ------------------------------------------------------------------ */

int cmd_export(struct cli *x, const struct cli_opts *o, int argc, char **argv)
{
	static const char *const domain[] = {"registration", "case",
					     "case_note", "event"};
	const char *const *colls = (const char *const *)argv;
	int ncolls = argc, rc;
	struct progress pg;
	uint64_t n = 0;

	(void)o;
	if (ncolls == 0) {
		colls = domain;
		ncolls = 4;
	}
	if ((rc = cli_connect(x)) != 0)
		return rc;
	progress_start(&pg, "export", "records", 0);
	for (int i = 0; i < ncolls; i++) {
		char after[512] = "";
		for (;;) {
			/* Scans marked as an export: audited as op export. */
			Msce__ClientRequest req = MSCE__CLIENT_REQUEST__INIT;
			Msce__ScanRequest q = MSCE__SCAN_REQUEST__INIT;
			Msce__ClientResponse *r;
			q.collection = (char *)colls[i];
			q.after = after;
			q.limit = 1000;
			q.export = 1;
			req.op_case = MSCE__CLIENT_REQUEST__OP_SCAN;
			req.scan = &q;
			if ((rc = cli_call(x, &req, &r)) != 0) {
				progress_end(&pg);
				return rc;
			}
			if (r->code != 0 || r->scan == NULL) {
				progress_end(&pg);
				rc = cli_fail(x, CLI_NO, (int)r->code, "%s: %s",
					      msce_strerror((int)r->code),
					      r->error);
				msce__client_response__free_unpacked(r, NULL);
				return rc;
			}
			for (size_t k = 0; k < r->scan->n_records; k++) {
				const Msce__Record *m = r->scan->records[k];
				cJSON *j = cJSON_CreateObject();
				char *key = cli_key(x, colls[i], m->key);
				cJSON_AddStringToObject(j, "collection",
							colls[i]);
				cJSON_AddStringToObject(j, "key",
							key ? key : "");
				free(key);
				cJSON_AddItemToObject(j, "fields",
						      cli_values_json(x, m));
				cli_print_json(j);
				progress_update(&pg, ++n, 0);
			}
			snprintf(after, sizeof after, "%s", r->scan->next);
			msce__client_response__free_unpacked(r, NULL);
			if (after[0] == '\0')
				break;
		}
	}
	progress_end(&pg);
	return 0;
}

/* ---- backup
 * ------------------------------------------------------------------ */

#define BACKUP_WAIT_S 3600.0 /* for the copy, unless --timeout says more */

struct watcher {
	struct progress pg;
	char file[4096]; /* the copy being written, "" if not visible here */
	char partial[4096]; /* the same before it is renamed into place */
	atomic_int stop;
};

/* Watches the copy grow (when PATH is on this machine: the unix socket's
 * node) against the store's size. */
static void *watch_copy(void *arg)
{
	struct watcher *w = arg;
	struct stat st;

	while (!atomic_load(&w->stop)) {
		uint64_t sz = w->file[0] && (stat(w->partial, &st) == 0 ||
					     stat(w->file, &st) == 0)
				  ? (uint64_t)st.st_size
				  : 0;
		progress_update(&w->pg, sz >> 20, sz);
		usleep(200 * 1000);
	}
	return NULL;
}

int cmd_backup(struct cli *x, const struct cli_opts *o, int argc, char **argv)
{
	Msce__ClientResponse *r;
	struct watcher w;
	pthread_t th;
	uint64_t bytes = 0, store_bytes = 0;
	int rc, threaded;

	(void)o;
	(void)argc;
	/* First the node must answer within --timeout at all. */
	if ((rc = cli_connect(x)) != 0 || (rc = cli_status(x, &r)) != 0)
		return rc;
	for (size_t i = 0; i < r->status->n_counters; i++)
		if (strcmp(r->status->counters[i]->name, "store_bytes") == 0)
			store_bytes = r->status->counters[i]->value;
	msce__client_response__free_unpacked(r, NULL);
	double wait =
	    x->timeout_s > BACKUP_WAIT_S ? x->timeout_s : BACKUP_WAIT_S;
	msce_set_timeout(x->c, (unsigned)(wait * 1000));

	memset(&w, 0, sizeof w);
	progress_start(&w.pg, "backup", "MiB", store_bytes);
	if (argv[0][0] == '/' && x->node == NULL) {
		char tmp[4000];
		if (config_backup_partial(argv[0], tmp, sizeof tmp) == 0) {
			snprintf(w.file, sizeof w.file, "%s/data.mdb", argv[0]);
			snprintf(w.partial, sizeof w.partial, "%s/data.mdb",
				 tmp);
		}
	}
	threaded = w.pg.on && pthread_create(&th, NULL, watch_copy, &w) == 0;
	rc = msce_backup(x->c, argv[0], &bytes);
	if (threaded) {
		atomic_store(&w.stop, 1);
		pthread_join(th, NULL);
	}
	progress_end(&w.pg);
	if (rc != 0)
		return cli_call_failed(x, rc);
	if (x->json) {
		cJSON *j = cJSON_CreateObject();
		cJSON_AddStringToObject(j, "path", argv[0]);
		cJSON_AddNumberToObject(j, "bytes", (double)bytes);
		cli_print_json(j);
	} else {
		printf("backup written to %s (%llu bytes); restore by pointing "
		       "a stopped node's data_dir at a copy of it\n",
		       argv[0], (unsigned long long)bytes);
	}
	return 0;
}
