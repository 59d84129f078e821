/* msce commands for personal data (issue 15): audit, person export,
 * erase, retention, and watch (a stream of changes, masked like every
 * other output). Document and phone numbers are masked unless --reveal
 * (admin only; msce.c checks it). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "mask.h"

/* ---- audit entries ------------------------------------------------------- */

static const Msce__FieldVersion *field_of(const Msce__Record *m,
					  const char *name)
{
	for (size_t i = 0; i < m->n_fields; i++)
		if (strcmp(m->fields[i]->winner->name, name) == 0)
			return m->fields[i]->winner;
	return NULL;
}

/* A field's value as a string (a copy, "" when absent). */
static char *value_of(const Msce__Record *m, const char *name)
{
	const Msce__FieldVersion *f = field_of(m, name);
	return f && f->value.len
		       ? strndup((const char *)f->value.data, f->value.len)
		       : strdup("");
}

static void iso_ms(uint64_t ms, char out[32])
{
	time_t sec = (time_t)(ms / 1000);
	struct tm tm;
	gmtime_r(&sec, &tm);
	size_t o = strftime(out, 32, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(out + o, 32 - o, ".%03uZ", (unsigned)(ms % 1000));
}

/* YYYY-MM-DD or YYYY-MM-DDTHH:MM:SS[.fff][Z], UTC, to unix ms; -1 if
 * it is neither. */
static int64_t parse_iso(const char *s)
{
	struct tm tm = {0};
	int y, mo, d, h = 0, mi = 0, se = 0, n = 0;
	unsigned ms = 0;

	if (sscanf(s, "%4d-%2d-%2d%n", &y, &mo, &d, &n) != 3)
		return -1;
	if (s[n] == 'T') {
		int k = 0;
		if (sscanf(s + n, "T%2d:%2d:%2d%n", &h, &mi, &se, &k) != 3)
			return -1;
		n += k;
		if (s[n] == '.') {
			int digits = 0;
			for (n++; s[n] >= '0' && s[n] <= '9'; n++)
				if (digits++ < 3)
					ms = ms * 10 + (unsigned)(s[n] - '0');
			while (digits > 0 && digits++ < 3)
				ms *= 10;
		}
		if (s[n] == 'Z')
			n++;
	}
	if (s[n] != '\0' || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 ||
	    mi > 59 || se > 60)
		return -1;
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = se;
	return (int64_t)timegm(&tm) * 1000 + ms;
}

/* Whether the lines of v (or subject) name rec ("collection/key"). */
static int names(const Msce__Record *m, const char *rec)
{
	const Msce__FieldVersion *f = field_of(m, "records");
	const Msce__FieldVersion *s = field_of(m, "subject");
	size_t rl = strlen(rec);

	if (s != NULL && s->value.len == rl &&
	    memcmp(s->value.data, rec, rl) == 0)
		return 1;
	for (size_t at = 0; f != NULL && at < f->value.len;) {
		const uint8_t *v = f->value.data;
		const uint8_t *nl = memchr(v + at, '\n', f->value.len - at);
		size_t end = nl ? (size_t)(nl - v) : f->value.len;
		if (end - at == rl && memcmp(v + at, rec, rl) == 0)
			return 1;
		at = end + 1;
	}
	return 0;
}

/* {"key", "time", "hlc", "writer", "center", "client", "role", "op",
 * "purpose", "records": [...], "subject", "rule"}: registration keys
 * masked unless --reveal. */
static cJSON *audit_json(const Msce__Record *m)
{
	cJSON *j = cJSON_CreateObject(), *recs = cJSON_CreateArray();
	unsigned long long hlc = 0;
	unsigned writer = 0;
	char t[32], h[24];
	static const char *const plain[] = {"center", "client", "role", "op",
					    "purpose", "rule"};

	sscanf(m->key, "%llu/%u", &hlc, &writer);
	iso_ms(hlc >> 16, t);
	snprintf(h, sizeof h, "%llu", hlc);
	cJSON_AddStringToObject(j, "key", m->key);
	cJSON_AddStringToObject(j, "time", t);
	cJSON_AddStringToObject(j, "hlc", h);
	cJSON_AddNumberToObject(j, "writer", writer);
	for (size_t i = 0; i < sizeof plain / sizeof plain[0]; i++) {
		char *v = value_of(m, plain[i]);
		if (v != NULL && (v[0] || strcmp(plain[i], "rule") != 0))
			cJSON_AddStringToObject(j, plain[i], v);
		free(v);
	}
	const Msce__FieldVersion *f = field_of(m, "records");
	char *lines = f ? cli_value(m->collection, "records", f->value.data,
				    f->value.len)
			: NULL;
	char *save = NULL;
	for (char *p = lines ? strtok_r(lines, "\n", &save) : NULL; p != NULL;
	     p = strtok_r(NULL, "\n", &save))
		cJSON_AddItemToArray(recs, cJSON_CreateString(p));
	free(lines);
	cJSON_AddItemToObject(j, "records", recs);
	if ((f = field_of(m, "subject")) != NULL) {
		char *s = cli_value(m->collection, "subject", f->value.data,
				    f->value.len);
		cJSON_AddStringToObject(j, "subject", s ? s : "");
		free(s);
	}
	return j;
}

static void audit_text(const cJSON *j)
{
	const cJSON *recs = cJSON_GetObjectItemCaseSensitive(j, "records");
	const cJSON *subject = cJSON_GetObjectItemCaseSensitive(j, "subject");
	int n = cJSON_GetArraySize(recs), shown = 0;
	const cJSON *r;
#define S(name) cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, name))
	printf("%s  %s  %s (%s)  %s  %s", S("time"), S("center"), S("client"),
	       S("role"), S("op"), S("purpose"));
	if (subject != NULL)
		printf("  subject %s", cJSON_GetStringValue(subject));
	if (S("rule") != NULL)
		printf("  rule %s", S("rule"));
#undef S
	cJSON_ArrayForEach(r, recs)
	{
		if (shown++ == 5) {
			printf(" (+%d more)", n - 5);
			break;
		}
		printf(" %s", cJSON_GetStringValue(r));
	}
	printf("\n");
}

int cmd_audit(int argc, char **argv)
{
	const char *record = NULL, *client = NULL, *since = NULL;
	char after[64] = "";
	int json = 0;
	long listed = 0;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0)
			json = 1;
		else if (strcmp(argv[i], "--record") == 0 && i + 1 < argc)
			record = argv[++i];
		else if (strcmp(argv[i], "--client") == 0 && i + 1 < argc)
			client = argv[++i];
		else if (strcmp(argv[i], "--since") == 0 && i + 1 < argc)
			since = argv[++i];
		else {
			fprintf(stderr, "usage: msce audit [--record COLL/KEY] "
					"[--client NAME] [--since ISO-TIME] "
					"[--json]\n");
			return 2;
		}
	}
	if (record != NULL && strchr(record, '/') == NULL) {
		fprintf(stderr, "msce audit: --record takes COLLECTION/KEY, "
				"e.g. registration/FRA:AB123456\n");
		return 2;
	}
	if (since != NULL) {
		int64_t ms = parse_iso(since);
		if (ms < 0) {
			fprintf(stderr, "msce audit: --since \"%s\" is not "
					"YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ (UTC)\n",
				since);
			return 2;
		}
		/* Keys start with the hlc (48 bits of ms, 16 logical) as 20
		 * digits: every key from since on sorts after the last
		 * possible key of the hlc before it. */
		snprintf(after, sizeof after, "%020llu/~",
			 (unsigned long long)((uint64_t)ms << 16) - 1);
	}
	msce_client *c = connect_or_die();
	for (;;) {
		Msce__ClientRequest req = MSCE__CLIENT_REQUEST__INIT;
		Msce__ScanRequest q = MSCE__SCAN_REQUEST__INIT;
		q.collection = "_audit";
		q.after = after;
		q.limit = 1000;
		req.op_case = MSCE__CLIENT_REQUEST__OP_SCAN;
		req.scan = &q;
		Msce__ClientResponse *r = call_or_die(c, &req);
		if (r->code != 0 ||
		    r->result_case != MSCE__CLIENT_RESPONSE__RESULT_SCAN) {
			fprintf(stderr, "msce audit: %s\n", r->error);
			msce__client_response__free_unpacked(r, NULL);
			msce_close(c);
			return 1;
		}
		for (size_t i = 0; i < r->scan->n_records; i++) {
			const Msce__Record *m = r->scan->records[i];
			char *who = value_of(m, "client");
			int skip = (record && !names(m, record)) ||
				   (client && strcmp(who, client) != 0);
			free(who);
			if (skip)
				continue;
			cJSON *j = audit_json(m);
			if (json)
				print_json(j);
			else
				audit_text(j);
			cJSON_Delete(j);
			listed++;
		}
		snprintf(after, sizeof after, "%s", r->scan->next);
		msce__client_response__free_unpacked(r, NULL);
		if (after[0] == '\0')
			break;
	}
	if (!json)
		printf("%ld audit entries\n", listed);
	msce_close(c);
	return 0;
}

/* ---- person export ----------------------------------------------------------- */

static cJSON *records_json(Msce__Record **recs, size_t n)
{
	cJSON *a = cJSON_CreateArray();
	for (size_t i = 0; i < n; i++) {
		cJSON *o = cJSON_CreateObject();
		char *k = cli_key(recs[i]->collection, recs[i]->key);
		cJSON_AddStringToObject(o, "key", k ? k : "");
		free(k);
		cJSON_AddItemToObject(o, "fields", record_values_json(recs[i]));
		cJSON_AddItemToArray(a, o);
	}
	return a;
}

int cmd_person(int argc, char **argv)
{
	if (argc != 3 || strcmp(argv[1], "export") != 0) {
		fprintf(stderr, "usage: msce person export NATIONALITY:DOCNUMBER\n");
		return 2;
	}
	msce_client *c = connect_or_die();
	Msce__ClientRequest req = MSCE__CLIENT_REQUEST__INIT;
	Msce__PersonRequest p = MSCE__PERSON_REQUEST__INIT;
	p.key = argv[2];
	req.op_case = MSCE__CLIENT_REQUEST__OP_PERSON;
	req.person = &p;
	Msce__ClientResponse *r = call_or_die(c, &req);
	if (r->code != 0 ||
	    r->result_case != MSCE__CLIENT_RESPONSE__RESULT_PERSON) {
		fprintf(stderr, "msce person export: %s\n", r->error);
		msce__client_response__free_unpacked(r, NULL);
		msce_close(c);
		return 1;
	}
	const Msce__PersonResult *pr = r->person;
	cJSON *j = cJSON_CreateObject(), *audit = cJSON_CreateArray();
	char *k = cli_key("registration", argv[2]);
	cJSON_AddStringToObject(j, "person", k ? k : "");
	free(k);
	if (pr->registration != NULL)
		cJSON_AddItemToObject(j, "registration",
				      record_values_json(pr->registration));
	else
		cJSON_AddNullToObject(j, "registration");
	cJSON_AddItemToObject(j, "cases", records_json(pr->cases, pr->n_cases));
	cJSON_AddItemToObject(j, "notes", records_json(pr->notes, pr->n_notes));
	for (size_t i = 0; i < pr->n_audit; i++)
		cJSON_AddItemToArray(audit, audit_json(pr->audit[i]));
	cJSON_AddItemToObject(j, "audit", audit);
	char *s = cJSON_Print(j);
	printf("%s\n", s);
	cJSON_free(s);
	cJSON_Delete(j);
	msce__client_response__free_unpacked(r, NULL);
	msce_close(c);
	return 0;
}

/* ---- erase and retention -------------------------------------------------------- */

static char *shown_line(const char *line)
{
	return cli_value("_audit", "records", line, strlen(line));
}

int cmd_erase(int argc, char **argv)
{
	int json = 0, np = 0;
	const char *pos[2];
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0)
			json = 1;
		else if (np < 2)
			pos[np++] = argv[i];
		else
			np = 3;
	}
	if (np != 2) {
		fprintf(stderr, "usage: msce erase registration|case KEY "
				"[--json]\n");
		return 2;
	}
	msce_client *c = connect_or_die();
	Msce__ClientRequest req = MSCE__CLIENT_REQUEST__INIT;
	Msce__EraseRequest e = MSCE__ERASE_REQUEST__INIT;
	e.collection = (char *)pos[0];
	e.key = (char *)pos[1];
	req.op_case = MSCE__CLIENT_REQUEST__OP_ERASE;
	req.erase = &e;
	Msce__ClientResponse *r = call_or_die(c, &req);
	if (r->code != 0 ||
	    r->result_case != MSCE__CLIENT_RESPONSE__RESULT_ERASE) {
		fprintf(stderr, "msce erase: %s\n", r->error);
		msce__client_response__free_unpacked(r, NULL);
		msce_close(c);
		return 1;
	}
	cJSON *j = cJSON_CreateObject(), *a = cJSON_CreateArray();
	for (size_t i = 0; i < r->erase->n_records; i++) {
		char *line = shown_line(r->erase->records[i]);
		if (json)
			cJSON_AddItemToArray(a, cJSON_CreateString(line));
		else
			printf("erased %s\n", line ? line : "");
		free(line);
	}
	if (json) {
		cJSON_AddItemToObject(j, "erased", a);
		print_json(j);
	} else {
		cJSON_Delete(a);
		printf("%zu records erased; the deletes replicate to every "
		       "center. A write made at another center before the "
		       "erasure reached it survives as a delete conflict "
		       "(msce conflicts): erase again.\n",
		       r->erase->n_records);
	}
	cJSON_Delete(j);
	msce__client_response__free_unpacked(r, NULL);
	msce_close(c);
	return 0;
}

int cmd_retention(int argc, char **argv)
{
	int json = 0, apply = -1;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0)
			json = 1;
		else if (strcmp(argv[i], "preview") == 0 && apply < 0)
			apply = 0;
		else if (strcmp(argv[i], "apply") == 0 && apply < 0)
			apply = 1;
		else
			apply = -2;
	}
	if (apply < 0) {
		fprintf(stderr, "usage: msce retention preview|apply [--json]\n");
		return 2;
	}
	msce_client *c = connect_or_die();
	Msce__ClientRequest req = MSCE__CLIENT_REQUEST__INIT;
	Msce__RetentionRequest q = MSCE__RETENTION_REQUEST__INIT;
	q.apply = apply;
	req.op_case = MSCE__CLIENT_REQUEST__OP_RETENTION;
	req.retention = &q;
	Msce__ClientResponse *r = call_or_die(c, &req);
	if (r->code != 0 ||
	    r->result_case != MSCE__CLIENT_RESPONSE__RESULT_RETENTION) {
		fprintf(stderr, "msce retention: %s\n", r->error);
		msce__client_response__free_unpacked(r, NULL);
		msce_close(c);
		return 1;
	}
	const Msce__RetentionResult *rr = r->retention;
	cJSON *j = cJSON_CreateObject(), *rules = cJSON_CreateArray();
	for (size_t i = 0; i < rr->n_rules; i++) {
		const Msce__RetentionSelection *s = rr->rules[i];
		cJSON *o = cJSON_CreateObject(), *keys = cJSON_CreateArray();
		if (!json)
			printf("%s: %s, cutoff %s: %zu selected\n",
			       s->collection, s->rule, s->cutoff, s->n_keys);
		for (size_t k = 0; k < s->n_keys; k++) {
			char *key = cli_key(s->collection, s->keys[k]);
			if (json)
				cJSON_AddItemToArray(keys,
						     cJSON_CreateString(key));
			else
				printf("  %s/%s\n", s->collection, key);
			free(key);
		}
		cJSON_AddStringToObject(o, "collection", s->collection);
		cJSON_AddStringToObject(o, "rule", s->rule);
		cJSON_AddStringToObject(o, "cutoff", s->cutoff);
		cJSON_AddNumberToObject(o, "count", (double)s->n_keys);
		cJSON_AddItemToObject(o, "keys", keys);
		cJSON_AddItemToArray(rules, o);
	}
	cJSON_AddItemToObject(j, "rules", rules);
	cJSON_AddBoolToObject(j, "applied", rr->applied);
	cJSON *erased = cJSON_CreateArray();
	for (size_t i = 0; i < rr->n_erased; i++) {
		char *line = shown_line(rr->erased[i]);
		cJSON_AddItemToArray(erased, cJSON_CreateString(line));
		free(line);
	}
	cJSON_AddItemToObject(j, "erased", erased);
	if (json)
		print_json(j);
	else if (rr->applied)
		printf("applied: %zu records erased (with the selected "
		       "registrations' cases and notes)\n",
		       rr->n_erased);
	else
		printf("preview only: msce retention apply erases them\n");
	cJSON_Delete(j);
	msce__client_response__free_unpacked(r, NULL);
	msce_close(c);
	return 0;
}

/* ---- watch ------------------------------------------------------------------------ */

int cmd_watch(int argc, char **argv)
{
	const char *coll = NULL;
	int all = 0;
	long count = -1, seen = 0;
	double timeout = 0;
	struct msce_cursor cur = {0};
	int rc;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--all") == 0)
			all = 1;
		else if (strcmp(argv[i], "--count") == 0 && i + 1 < argc)
			count = atol(argv[++i]);
		else if (strcmp(argv[i], "--timeout") == 0 && i + 1 < argc)
			timeout = atof(argv[++i]);
		else if (strcmp(argv[i], "--json") == 0)
			; /* the only output */
		else if (coll == NULL && argv[i][0] != '-')
			coll = argv[i];
		else {
			fprintf(stderr, "usage: msce watch [COLLECTION] [--all] "
					"[--count N] [--timeout SECONDS]\n");
			return 2;
		}
	}
	msce_client *c = connect_or_die();
	if (!all) {
		msce_status *s;
		if (msce_status_get(c, &s) != 0) {
			fprintf(stderr, "msce watch: %s\n", msce_errmsg(c));
			msce_close(c);
			return 2;
		}
		msce_status_cursor(s, &cur);
		msce_status_free(s);
	}
	if ((rc = msce_watch(c, coll, all ? NULL : &cur)) != 0) {
		fprintf(stderr, "msce watch: %s\n", msce_errmsg(c));
		msce_close(c);
		return 2;
	}
	while (count < 0 || seen < count) {
		struct msce_event ev;
		rc = msce_watch_next(c, &ev, (uint64_t)(timeout * 1000), &cur);
		if (rc == MSCE_ETIMEOUT)
			break;
		if (rc != 0) {
			fprintf(stderr, "msce watch: %s\n", msce_errmsg(c));
			msce_close(c);
			return rc == MSCE_ECLOSED ? 2 : 1;
		}
		cJSON *j = cJSON_CreateObject(), *fs = cJSON_CreateObject();
		char *k = cli_key(ev.collection, ev.key), h[24];
		snprintf(h, sizeof h, "%llu", (unsigned long long)ev.hlc);
		cJSON_AddStringToObject(j, "collection", ev.collection);
		cJSON_AddStringToObject(j, "key", k ? k : "");
		free(k);
		cJSON_AddBoolToObject(j, "delete", ev.is_delete);
		cJSON_AddNumberToObject(j, "origin", ev.origin);
		cJSON_AddNumberToObject(j, "seq", (double)ev.seq);
		cJSON_AddStringToObject(j, "hlc", h);
		for (size_t i = 0; i < ev.nfields; i++) {
			char *v = cli_value(ev.collection, ev.fields[i].name,
					    ev.fields[i].value,
					    ev.fields[i].value_len);
			cJSON_AddStringToObject(fs, ev.fields[i].name,
						v ? v : "");
			free(v);
		}
		cJSON_AddItemToObject(j, "fields", fs);
		print_json(j);
		fflush(stdout);
		cJSON_Delete(j);
		seen++;
	}
	msce_close(c);
	return 0;
}
