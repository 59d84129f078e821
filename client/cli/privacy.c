/* SPDX-License-Identifier: Apache-2.0 */
/* msce commands for personal data (issue 15): audit, person export,
 * erase, retention; and the masking every command's output goes through
 * (cli_value, cli_key): document and phone numbers are masked unless
 * --reveal, which cli_connect allows admins only. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "mask.h"

/* ---- masking --------------------------------------------------------------- */

/* Lines "collection/key" (audit entries) with registration keys masked.
 * A masked key may be longer than the key (a short key is masked whole):
 * each line may grow to "registration/" and MASK_BUF bytes. */
static char *mask_lines(const char *v, size_t len)
{
	size_t lines = 1, cap, o = 0, at = 0;
	char *out, m[MASK_BUF];

	for (size_t i = 0; i < len; i++)
		lines += v[i] == '\n';
	cap = len + lines * (sizeof "registration/" + MASK_BUF) + 1;
	if ((out = malloc(cap)) == NULL)
		return NULL;
	while (at < len) {
		const char *nl = memchr(v + at, '\n', len - at);
		size_t end = nl ? (size_t)(nl - v) : len;
		const char *slash = memchr(v + at, '/', end - at);
		size_t cl = slash ? (size_t)(slash - (v + at)) : 0;
		if (slash && cl == 12 && memcmp(v + at, "registration", 12) == 0) {
			mask_regkey(slash + 1, end - at - cl - 1, m);
			o += (size_t)snprintf(out + o, cap - o,
					      "registration/%s", m);
		} else {
			memcpy(out + o, v + at, end - at);
			o += end - at;
		}
		if (nl)
			out[o++] = '\n';
		at = end + 1;
	}
	out[o] = '\0';
	return out;
}

char *cli_value(const struct cli *x, const char *coll, const char *field,
		const void *value, size_t len)
{
	char m[MASK_BUF];
	if (len == 0) /* an empty value may come as NULL */
		return strdup("");
	if (x->reveal)
		return strndup(value, len);
	if (coll[0] == '_' &&
	    (strcmp(field, "records") == 0 || strcmp(field, "subject") == 0))
		return mask_lines(value, len);
	if (!mask_field_applies(coll, field))
		return strndup(value, len);
	return strdup(mask_value(coll, field, value, len, m));
}

char *cli_key(const struct cli *x, const char *coll, const char *key)
{
	char m[MASK_BUF];
	return strdup(x->reveal ? key : mask_key(coll, key, m));
}

cJSON *cli_values_json(const struct cli *x, const Msce__Record *rec)
{
	cJSON *fs = cJSON_CreateObject();
	for (size_t i = 0; i < rec->n_fields; i++) {
		const Msce__FieldVersion *w = rec->fields[i]->winner;
		char *v = cli_value(x, rec->collection, w->name, w->value.data,
				    w->value.len);
		cJSON_AddStringToObject(fs, w->name, v ? v : "");
		free(v);
	}
	return fs;
}

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
static cJSON *audit_json(const struct cli *x, const Msce__Record *m)
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
	char *lines = f ? cli_value(x, m->collection, "records", f->value.data,
				    f->value.len)
			: NULL;
	char *save = NULL;
	for (char *p = lines ? strtok_r(lines, "\n", &save) : NULL; p != NULL;
	     p = strtok_r(NULL, "\n", &save))
		cJSON_AddItemToArray(recs, cJSON_CreateString(p));
	free(lines);
	cJSON_AddItemToObject(j, "records", recs);
	if ((f = field_of(m, "subject")) != NULL) {
		char *s = cli_value(x, m->collection, "subject", f->value.data,
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



int cmd_audit(struct cli *x, const struct cli_opts *o, int argc, char **argv)
{
	char after[64] = "";
	long listed = 0;
	int rc;

	(void)argc;
	(void)argv;
	if (o->record != NULL && strchr(o->record, '/') == NULL)
		return cli_usage(x, "--record takes COLLECTION/KEY, e.g. "
				    "registration/FRA:AB123456");
	if (o->since != NULL) {
		int64_t ms = parse_iso(o->since);
		if (ms <= 0)
			return cli_usage(x,
					 "--since: \"%s\" is not YYYY-MM-DD "
					 "or YYYY-MM-DDTHH:MM:SSZ (UTC)",
					 o->since);
		/* Keys start with the hlc (48 bits of ms, 16 logical) as 20
		 * digits: every key from since on sorts after the last
		 * possible key of the hlc before it. */
		snprintf(after, sizeof after, "%020llu/~",
			 (unsigned long long)((uint64_t)ms << 16) - 1);
	}
	if ((rc = cli_connect(x)) != 0)
		return rc;
	for (;;) {
		Msce__ClientRequest req = MSCE__CLIENT_REQUEST__INIT;
		Msce__ScanRequest q = MSCE__SCAN_REQUEST__INIT;
		Msce__ClientResponse *r;
		q.collection = "_audit";
		q.after = after;
		q.limit = 1000;
		req.op_case = MSCE__CLIENT_REQUEST__OP_SCAN;
		req.scan = &q;
		if ((rc = cli_call(x, &req, &r)) != 0)
			return rc;
		if (r->code != 0 || r->scan == NULL)
			return cli_refused(x, r);
		for (size_t i = 0; i < r->scan->n_records; i++) {
			const Msce__Record *m = r->scan->records[i];
			char *who = value_of(m, "client");
			int skip = (o->record && !names(m, o->record)) ||
				   (o->client && strcmp(who, o->client) != 0);
			free(who);
			if (skip)
				continue;
			cJSON *j = audit_json(x, m);
			if (x->json) {
				cli_print_json(j);
			} else {
				audit_text(j);
				cJSON_Delete(j);
			}
			listed++;
		}
		snprintf(after, sizeof after, "%s", r->scan->next);
		msce__client_response__free_unpacked(r, NULL);
		if (after[0] == '\0')
			break;
	}
	if (!x->json)
		printf("%ld audit entries\n", listed);
	return 0;
}

/* ---- person export ----------------------------------------------------------- */

static cJSON *records_json(const struct cli *x, Msce__Record **recs, size_t n)
{
	cJSON *a = cJSON_CreateArray();
	for (size_t i = 0; i < n; i++) {
		cJSON *o = cJSON_CreateObject();
		char *k = cli_key(x, recs[i]->collection, recs[i]->key);
		cJSON_AddStringToObject(o, "key", k ? k : "");
		free(k);
		cJSON_AddItemToObject(o, "fields", cli_values_json(x, recs[i]));
		cJSON_AddItemToArray(a, o);
	}
	return a;
}

int cmd_person(struct cli *x, const struct cli_opts *o, int argc, char **argv)
{
	Msce__ClientRequest req = MSCE__CLIENT_REQUEST__INIT;
	Msce__PersonRequest p = MSCE__PERSON_REQUEST__INIT;
	Msce__ClientResponse *r;
	int rc;

	(void)o;
	(void)argc;
	if (strcmp(argv[0], "export") != 0)
		return cli_usage(x, "want: person export NATIONALITY:DOCNUMBER");
	if ((rc = cli_connect(x)) != 0)
		return rc;
	p.key = argv[1];
	req.op_case = MSCE__CLIENT_REQUEST__OP_PERSON;
	req.person = &p;
	if ((rc = cli_call(x, &req, &r)) != 0)
		return rc;
	if (r->code != 0 || r->person == NULL)
		return cli_refused(x, r);
	const Msce__PersonResult *pr = r->person;
	cJSON *j = cJSON_CreateObject(), *audit = cJSON_CreateArray();
	char *k = cli_key(x, "registration", argv[1]);
	cJSON_AddStringToObject(j, "person", k ? k : "");
	free(k);
	if (pr->registration != NULL)
		cJSON_AddItemToObject(j, "registration",
				      cli_values_json(x, pr->registration));
	else
		cJSON_AddNullToObject(j, "registration");
	cJSON_AddItemToObject(j, "cases",
			      records_json(x, pr->cases, pr->n_cases));
	cJSON_AddItemToObject(j, "notes",
			      records_json(x, pr->notes, pr->n_notes));
	for (size_t i = 0; i < pr->n_audit; i++)
		cJSON_AddItemToArray(audit, audit_json(x, pr->audit[i]));
	cJSON_AddItemToObject(j, "audit", audit);
	if (x->json) {
		cli_print_json(j);
	} else {
		/* One document, readable: indented. */
		char *s = cJSON_Print(j);
		printf("%s\n", s ? s : "");
		cJSON_free(s);
		cJSON_Delete(j);
	}
	msce__client_response__free_unpacked(r, NULL);
	return 0;
}

/* ---- erase and retention -------------------------------------------------------- */

static char *shown_line(const struct cli *x, const char *line)
{
	return cli_value(x, "_audit", "records", line, strlen(line));
}

int cmd_erase(struct cli *x, const struct cli_opts *o, int argc, char **argv)
{
	Msce__ClientRequest req = MSCE__CLIENT_REQUEST__INIT;
	Msce__EraseRequest e = MSCE__ERASE_REQUEST__INIT;
	Msce__ClientResponse *r;
	int rc;

	(void)o;
	(void)argc;
	if ((rc = cli_connect(x)) != 0)
		return rc;
	e.collection = argv[0];
	e.key = argv[1];
	req.op_case = MSCE__CLIENT_REQUEST__OP_ERASE;
	req.erase = &e;
	if ((rc = cli_call(x, &req, &r)) != 0)
		return rc;
	if (r->code != 0 || r->erase == NULL)
		return cli_refused(x, r);
	cJSON *j = cJSON_CreateObject(), *a = cJSON_CreateArray();
	for (size_t i = 0; i < r->erase->n_records; i++) {
		char *line = shown_line(x, r->erase->records[i]);
		if (x->json)
			cJSON_AddItemToArray(a, cJSON_CreateString(line));
		else
			printf("erased %s\n", line ? line : "");
		free(line);
	}
	cJSON_AddItemToObject(j, "erased", a);
	if (x->json) {
		cli_print_json(j);
	} else {
		cJSON_Delete(j);
		printf("%zu records erased; the deletes replicate to every "
		       "center. A write made at another center before the "
		       "erasure reached it survives as a delete conflict "
		       "(msce conflicts): erase again.\n",
		       r->erase->n_records);
	}
	msce__client_response__free_unpacked(r, NULL);
	return 0;
}

int cmd_retention(struct cli *x, const struct cli_opts *o, int argc,
		  char **argv)
{
	Msce__ClientRequest req = MSCE__CLIENT_REQUEST__INIT;
	Msce__RetentionRequest q = MSCE__RETENTION_REQUEST__INIT;
	Msce__ClientResponse *r;
	int rc;

	(void)o;
	(void)argc;
	if (strcmp(argv[0], "preview") != 0 && strcmp(argv[0], "apply") != 0)
		return cli_usage(x, "want: retention preview, or retention "
				    "apply");
	if ((rc = cli_connect(x)) != 0)
		return rc;
	q.apply = strcmp(argv[0], "apply") == 0;
	req.op_case = MSCE__CLIENT_REQUEST__OP_RETENTION;
	req.retention = &q;
	if ((rc = cli_call(x, &req, &r)) != 0)
		return rc;
	if (r->code != 0 || r->retention == NULL)
		return cli_refused(x, r);
	const Msce__RetentionResult *rr = r->retention;
	cJSON *j = cJSON_CreateObject(), *rules = cJSON_CreateArray();
	for (size_t i = 0; i < rr->n_rules; i++) {
		const Msce__RetentionSelection *s = rr->rules[i];
		cJSON *o = cJSON_CreateObject(), *keys = cJSON_CreateArray();
		if (!x->json)
			printf("%s: %s, cutoff %s: %zu selected\n",
			       s->collection, s->rule, s->cutoff, s->n_keys);
		for (size_t k = 0; k < s->n_keys; k++) {
			char *key = cli_key(x, s->collection, s->keys[k]);
			if (x->json)
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
		char *line = shown_line(x, rr->erased[i]);
		cJSON_AddItemToArray(erased, cJSON_CreateString(line));
		free(line);
	}
	cJSON_AddItemToObject(j, "erased", erased);
	if (!x->json && rr->applied)
		printf("applied: %zu records erased (with the selected "
		       "registrations' cases and notes)\n",
		       rr->n_erased);
	else if (!x->json)
		printf("preview only: msce retention apply erases them\n");
	if (x->json)
		cli_print_json(j);
	else
		cJSON_Delete(j);
	msce__client_response__free_unpacked(r, NULL);
	return 0;
}
