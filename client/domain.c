/* SPDX-License-Identifier: Apache-2.0 */
/* libmsce's domain helpers: the typed collections (registration, case,
 * case_note, event) written from structs, checked here with the node's own
 * rules (common/schema.c) before anything is sent, and their allowed
 * values (msce_domain.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "client_internal.h"
#include "codec.h"
#include "error.h"
#include "schema.h"

#define RESERVED_OK(s) \
	codec_reserved_zero((s)->reserved, sizeof((s)->reserved) / sizeof(void *))

/* ---- allowed values ------------------------------------------------------ */

const char *msce_domain_name(enum msce_domain_list list, int value)
{
	const char *const *l = schema_domain_list((int)list);

	if (l == NULL || value < 0)
		return NULL;
	for (int i = 0; l[i] != NULL; i++)
		if (i == value)
			return l[i];
	return NULL;
}

int msce_domain_value(enum msce_domain_list list, const char *name)
{
	const char *const *l = schema_domain_list((int)list);

	if (l == NULL || name == NULL)
		return -1;
	for (int i = 0; l[i] != NULL; i++)
		if (strcmp(l[i], name) == 0)
			return i;
	return -1;
}

size_t msce_domain_count(enum msce_domain_list list)
{
	const char *const *l = schema_domain_list((int)list);
	size_t n = 0;

	while (l != NULL && l[n] != NULL)
		n++;
	return n;
}

/* ---- writes ------------------------------------------------------------- */

/* Collects the non-NULL members as fields and checks them with the same
 * rules the node uses (format only: whether the record exists, and so
 * whether required fields apply, is the node's call). */
static int domain_put(msce_client *c, const char *coll, const char *key,
		      const char *const *names, const char *const *values,
		      size_t n, unsigned flags, struct msce_write_result *res)
{
	struct msce_field f[16];
	struct schema_field sf[16];
	struct msce_put_opts o = {0};
	size_t k = 0;
	struct err e;
	int rc;

	for (size_t i = 0; i < n && k < 16; i++) {
		if (values[i] == NULL)
			continue;
		memset(&f[k], 0, sizeof f[k]);
		f[k].name = names[i];
		f[k].value = values[i];
		f[k].value_len = strlen(values[i]);
		sf[k] = (struct schema_field){names[i], strlen(names[i]),
					      (const uint8_t *)values[i],
					      strlen(values[i])};
		k++;
	}
	if (k == 0)
		return client_fail(c, MSCE_EINVAL, "%s %s: no field to write",
				   coll, key);
	err_clear(&e);
	rc = schema_validate_put(coll, strlen(coll), key, strlen(key), sf, k, 0,
				 &e);
	if (rc)
		return client_fail(c, rc, "%s", e.msg);
	o.flags = flags;
	return msce_put_opts(c, coll, key, f, k, &o, res);
}

int msce_registration_put(msce_client *c, const struct msce_registration *r,
			  struct msce_write_result *res)
{
	static const char *const names[] = {
		"name",	    "nationality", "document_type", "document_number",
		"birth_date", "phone",	   "email",	    "address",
		"district", "visa_type",   "visa_expiry",   "registered_at",
		"center"};
	const char *values[] = {r->name,	r->nationality, r->document_type,
				r->document_number, r->birth_date, r->phone,
				r->email,	r->address,	r->district,
				r->visa_type,	r->visa_expiry, r->registered_at,
				r->center};
	char key[128];

	if (!RESERVED_OK(r))
		return client_fail(c, MSCE_EINVAL,
				   "struct msce_registration: reserved members "
				   "must be zero (initialise it with {0})");
	if (r->nationality == NULL || r->document_number == NULL)
		return client_fail(c, MSCE_EINVAL,
				   "registration: nationality and "
				   "document_number make the key and are "
				   "required");
	snprintf(key, sizeof key, "%s:%s", r->nationality, r->document_number);
	return domain_put(c, "registration", key, names, values, 13, 0, res);
}

int msce_case_put(msce_client *c, const char *case_key,
		  const struct msce_case *k, struct msce_write_result *res)
{
	static const char *const names[] = {"person", "category", "status",
					    "center", "assignee", "summary"};
	const char *values[] = {k->person, k->category, k->status,
				k->center, k->assignee, k->summary};

	if (!RESERVED_OK(k))
		return client_fail(c, MSCE_EINVAL,
				   "struct msce_case: reserved members must be "
				   "zero (initialise it with {0})");
	return domain_put(c, "case", case_key, names, values, 6,
			  k->allow_unknown_person
				  ? MSCE_PUT_ALLOW_UNKNOWN_PERSON
				  : 0,
			  res);
}

_Static_assert(MSCE_NOTE_ID_SIZE == SCHEMA_NOTE_ID_MAX + 1,
	       "msce.h and schema.h agree on the note id length");

#define NOTES_PAGE 500 /* notes per scan; the node also ends pages by size */

/* YYYYMMDDTHHMMSS.mmmZ-<center>-<16 hex>, later than this client's last
 * note, so one desk's notes keep their order within a millisecond. */
static void note_id_make(msce_client *c, const char *center, char *out)
{
	uint64_t *last = client_last_note_ms(c);
	struct timespec ts;
	struct tm tm;
	uint8_t rnd[8];
	uint64_t ms;
	time_t sec;
	size_t o;

	clock_gettime(CLOCK_REALTIME, &ts);
	ms = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
	if (ms <= *last)
		ms = *last + 1;
	*last = ms;
	sec = (time_t)(ms / 1000);
	gmtime_r(&sec, &tm);
	o = strftime(out, MSCE_NOTE_ID_SIZE, "%Y%m%dT%H%M%S", &tm);
	o += (size_t)snprintf(out + o, MSCE_NOTE_ID_SIZE - o, ".%03uZ-%s-",
			      (unsigned)(ms % 1000), center);
	randombytes_buf(rnd, sizeof rnd);
	for (size_t i = 0; i < sizeof rnd; i++)
		o += (size_t)snprintf(out + o, MSCE_NOTE_ID_SIZE - o, "%02x",
				      rnd[i]);
}

int msce_case_note_put(msce_client *c, const char *case_key,
		       const struct msce_case_note *n, char *id,
		       struct msce_write_result *res)
{
	static const char *const names[] = {"text", "center", "author",
					    "written_at"};
	const char *values[] = {n->text, n->center, n->author, n->written_at};
	char nid[MSCE_NOTE_ID_SIZE], key[MSCE_MAX_KEY + 1];
	int rc;

	if (!RESERVED_OK(n))
		return client_fail(c, MSCE_EINVAL,
				   "struct msce_case_note: reserved members "
				   "must be zero (initialise it with {0})");
	if (n->text == NULL)
		return client_fail(c, MSCE_EINVAL, "case_note.text: required");
	if (values[1] == NULL && (rc = client_node_name(c, &values[1])) != 0)
		return rc;
	/* The center is part of the id: check it before making one. */
	if (!schema_center_valid(values[1], strlen(values[1])))
		return client_fail(c, MSCE_EINVAL,
				   "case_note.center: \"%s\" is not a center "
				   "name ([a-z][a-z0-9-]{0,31})%s",
				   values[1],
				   n->center ? ""
					     : " (it is the node's name): give "
					       "one");
	if (sodium_init() < 0)
		return client_fail(c, MSCE_EIO,
				   "libsodium failed to initialize");
	note_id_make(c, values[1], nid);
	if ((size_t)snprintf(key, sizeof key, "%s/%s", case_key, nid) >=
	    sizeof key)
		return client_fail(c, MSCE_ETOOBIG,
				   "case_note: key: case key of %zu bytes, "
				   "limit %zu for a case with notes",
				   strlen(case_key),
				   MSCE_MAX_KEY - 1 - strlen(nid));
	rc = domain_put(c, "case_note", key, names, values, 4, 0, res);
	if (rc == 0 && id != NULL)
		memcpy(id, nid, strlen(nid) + 1);
	return rc;
}

int msce_case_add_note(msce_client *c, const char *case_key, const char *text,
		       struct msce_write_result *res)
{
	struct msce_case_note n = {.text = text};
	return msce_case_note_put(c, case_key, &n, NULL, res);
}

int msce_case_notes(msce_client *c, const char *case_key, msce_note_fn fn,
		    void *ctx)
{
	char prefix[MSCE_MAX_KEY + 2], after[MSCE_MAX_KEY + 1] = "";
	size_t pl = strlen(case_key) + 1;
	int rc;

	if (pl == 1 || pl + SCHEMA_NOTE_ID_MIN > MSCE_MAX_KEY)
		return client_fail(c, MSCE_EINVAL,
				   "case_note: case key of %zu bytes: no note "
				   "key can start with it",
				   pl - 1);
	snprintf(prefix, sizeof prefix, "%s/", case_key);
	for (;;) {
		struct msce_scan_opts o = {0};
		const char *next;
		msce_page *p;

		o.prefix = prefix;
		o.after = after[0] ? after : NULL;
		o.limit = NOTES_PAGE;
		if ((rc = msce_scan(c, "case_note", &o, &p)) != 0)
			return rc;
		for (size_t i = 0; i < msce_page_count(p); i++) {
			const msce_record *r = msce_page_record(p, i);
			const char *nid = msce_record_key(r) + pl;
			/* Case keys may hold '/': the notes of case "a/b"
			 * share the prefix "a/" but are not notes of "a". */
			if (!schema_note_id_valid(nid, strlen(nid)))
				continue;
			if (fn(ctx, nid, r) != 0) {
				msce_page_free(p);
				return 0;
			}
		}
		if ((next = msce_page_next(p)) == NULL) {
			msce_page_free(p);
			return 0;
		}
		snprintf(after, sizeof after, "%s", next);
		msce_page_free(p);
	}
}

int msce_event_put(msce_client *c, const char *date, const char *id,
		   const struct msce_event_rec *e,
		   struct msce_write_result *res)
{
	static const char *const names[] = {"title",	 "kind",   "center",
					    "starts_at", "ends_at", "capacity",
					    "description"};
	const char *values[] = {e->title,   e->kind,	 e->center,
				e->starts_at, e->ends_at, e->capacity,
				e->description};
	char key[160];

	if (!RESERVED_OK(e))
		return client_fail(c, MSCE_EINVAL,
				   "struct msce_event_rec: reserved members "
				   "must be zero (initialise it with {0})");
	snprintf(key, sizeof key, "%s/%s", date, id);
	return domain_put(c, "event", key, names, values, 7, 0, res);
}
