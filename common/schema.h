/* SPDX-License-Identifier: Apache-2.0 */
/* Validation of names (collections, keys, fields) and of the domain
 * collections: registration, case, case_note, event (DESIGN.md "Domain
 * collections").
 *
 * Every check returns 0, MSCE_EINVAL (bad format) or MSCE_ETOOBIG (over a
 * length limit) and fills e->msg naming the collection, the field and the
 * rule, with the offending value quoted (cut and escaped), e.g.
 *
 *   registration.birth_date: not an ISO 8601 date (YYYY-MM-DD): "1990-13-01"
 *   registration: field name: 300 bytes, limit 128
 *
 * Pure functions: no allocation, no I/O, no clock. Lengths are explicit;
 * nothing needs to be NUL-terminated. */
#ifndef MSCE_SCHEMA_H
#define MSCE_SCHEMA_H

#include <stddef.h>
#include <stdint.h>

#include "bounds.h"
#include "error.h"
#include "msce_domain.h"

struct schema_field {
	const char *name;
	size_t name_len;
	const uint8_t *value;
	size_t value_len;
};

/* Collection name: [a-z][a-z0-9_]{0,31} for users; names starting with '_'
 * are the system's and refused unless allow_system. */
int schema_check_collection(const char *coll, size_t len, int allow_system,
			    struct err *e);
/* Key: non-empty, valid UTF-8, <= MSCE_MAX_KEY bytes, no control characters
 * (C0 including NUL, DEL, C1). */
int schema_check_key(const char *key, size_t len, struct err *e);
/* Field name: non-empty, valid UTF-8, <= MSCE_MAX_FIELD_NAME bytes, no
 * control characters; value <= MSCE_MAX_VALUE bytes (any bytes). */
int schema_check_field(const struct schema_field *f, struct err *e);

/* Full check of one user write: collection (no '_' names), key, field count
 * (<= MSCE_MAX_FIELDS), each field's limits, no field twice, and for
 * registration/case/case_note/event the domain rules. creating != 0 when
 * the write creates the record: then the required fields must be present.
 * Other collections: limits only, values are opaque bytes.
 *
 * Domain choices (field tables in schema.c): unknown field names are
 * refused; every value is UTF-8 text without control characters (address,
 * summary, note, text, description may hold tab/LF/CR); an empty value clears
 * an optional field, while a required field may never be empty. */
int schema_validate_put(const char *coll, size_t coll_len, const char *key,
			size_t key_len, const struct schema_field *fields,
			size_t n, int creating, struct err *e);
/* For the domain collections: how many required fields has(ctx, name)
 * says are absent, their names into list ("name, nationality"); 0 for
 * other collections. A typed record is visible only when complete. */
size_t schema_missing_required(const char *coll, size_t coll_len,
			       int (*has)(void *ctx, const char *name),
			       void *ctx, char *list, size_t listlen);
/* Times are stored in UTC: when field name of collection coll is a domain
 * timestamp (registration.registered_at, case_note.written_at,
 * event.starts_at, event.ends_at) and value is a valid timestamp with an
 * offset other than Z, writes its UTC form into out (SCHEMA_TIME_MAX
 * bytes; may be value itself) and returns its length. Otherwise returns 0
 * and out is untouched: the value is stored as given, or refused by
 * validation. The node applies it to every put before validating. */
size_t schema_time_field_utc(const char *coll, size_t coll_len,
			     const char *name, size_t name_len,
			     const uint8_t *value, size_t len, uint8_t *out);
/* Deletes: collection and key checks (domain key format included). */
int schema_validate_delete(const char *coll, size_t coll_len, const char *key,
			   size_t key_len, struct err *e);

/* 1 if s is valid UTF-8 (no overlongs, no surrogates, <= U+10FFFF). */
int schema_utf8_valid(const uint8_t *s, size_t len);

/* Building blocks, for typed helpers and front ends; each returns 1 if
 * valid. */
/* Officially assigned ISO 3166-1 alpha-3 code ("DEU"); len must be 3. */
int schema_country_valid(const char *s, size_t len);
/* YYYY-MM-DD, a real calendar date (Gregorian leap years), year >= 0001. */
int schema_date_valid(const char *s, size_t len);
/* YYYY-MM-DDTHH:MM:SS[.f{1,9}]Z, UTC, seconds 00..59. */
int schema_timestamp_valid(const char *s, size_t len);
/* A timestamp with any offset: YYYY-MM-DDTHH:MM:SS[.f{1,9}] (',' may stand
 * for '.') then Z, or +/- HH:MM, HHMM or HH between -12:00 and +14:00;
 * seconds 00..59 (no leap second). Writes its UTC form
 * (YYYY-MM-DDTHH:MM:SS[.f]Z, the fraction's digits as given) into out and
 * returns its length, or returns 0 if s is no such timestamp or its UTC
 * date is outside years 0001..9999. out may be s itself: the UTC form is
 * never longer. */
#define SCHEMA_TIME_MAX 30 /* "YYYY-MM-DDTHH:MM:SS.fffffffffZ" */
size_t schema_timestamp_utc(const char *s, size_t len,
			    char out[SCHEMA_TIME_MAX]);
/* A center name, as in case.center: [a-z][a-z0-9-]{0,31}. */
int schema_center_valid(const char *s, size_t len);
/* <NATIONALITY>:<DOCUMENT-NUMBER>, e.g. "DEU:C01X00T47". */
int schema_registration_key_valid(const char *s, size_t len);
/* A note id, the last part of a case_note key <case key>/<note id>:
 * YYYYMMDDTHHMMSS.mmmZ-<center>-<16 lower-case hex digits>, e.g.
 * "20260405T093012.345Z-shekou-9f3a6c01d2e4b758": the writer's UTC time
 * (a real date and time, ISO 8601 basic format), its center
 * ([a-z][a-z0-9-]{0,31}) and 64 random bits. Fixed-width time first, so
 * byte order is time order. */
int schema_note_id_valid(const char *s, size_t len);
#define SCHEMA_NOTE_ID_MIN 39 /* a one-letter center */
#define SCHEMA_NOTE_ID_MAX 70 /* a 32-letter center */

/* The allowed values of an enum msce_domain_list, NULL-terminated, in
 * enum order; NULL for an unknown list. */
const char *const *schema_domain_list(int list);

#endif
