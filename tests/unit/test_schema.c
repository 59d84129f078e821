/* SPDX-License-Identifier: Apache-2.0 */
/* Name and domain validation: good records pass, every rule has a failing
 * case whose message names the field, limits hold at exactly the limit and
 * fail one over, and invalid UTF-8 is caught wherever text is expected. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* After setjmp.h, stdarg.h and stddef.h, which it needs. */
#include <cmocka.h>

#include "error.h"
#include "limits.h"
#include "schema.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))
/* A field from two string literals (embedded NULs and raw bytes kept). */
#define FLD(n, v)                                                              \
	{                                                                      \
		(n), sizeof(n) - 1, (const uint8_t *)(v), sizeof(v) - 1        \
	}

#define MAXF 300

struct rec {
	struct schema_field f[MAXF];
	size_t n;
};

static void rec_init(struct rec *r, const struct schema_field *f, size_t n)
{
	if (n > 0)
		memcpy(r->f, f, n * sizeof *f);
	r->n = n;
}

/* Replaces the value of name, or appends the field. */
static void rec_set(struct rec *r, const char *name, const char *v, size_t vlen)
{
	size_t nl = strlen(name);

	for (size_t i = 0; i < r->n; i++) {
		if (r->f[i].name_len == nl &&
		    memcmp(r->f[i].name, name, nl) == 0) {
			r->f[i].value = (const uint8_t *)v;
			r->f[i].value_len = vlen;
			return;
		}
	}
	assert_true(r->n < MAXF);
	r->f[r->n++] =
	    (struct schema_field){name, nl, (const uint8_t *)v, vlen};
}

static void rec_del(struct rec *r, const char *name)
{
	size_t nl = strlen(name);

	for (size_t i = 0; i < r->n; i++) {
		if (r->f[i].name_len == nl &&
		    memcmp(r->f[i].name, name, nl) == 0) {
			r->f[i] = r->f[--r->n];
			return;
		}
	}
}

static int put(const char *coll, const char *key, const struct rec *r,
	       int creating, struct err *e)
{
	err_clear(e);
	return schema_validate_put(coll, strlen(coll), key, strlen(key), r->f,
				   r->n, creating, e);
}

#define expect_ok(rc, e)                                                       \
	do {                                                                   \
		int rc_ok_ = (rc);                                             \
		if (rc_ok_ != 0)                                               \
			fail_msg("expected ok, got %s: %s", err_name(rc_ok_),  \
				 (e)->msg);                                    \
	} while (0)

/* rc and e->code are want, and e->msg contains needle. */
#define expect_err(rc, e, want, needle)                                        \
	do {                                                                   \
		int rc_err_ = (rc);                                            \
		if (rc_err_ != (want) || (e)->code != (want) ||                \
		    strstr((e)->msg, (needle)) == NULL)                        \
			fail_msg("expected %s naming \"%s\", got %s: %s",      \
				 err_name(want), (needle), err_name(rc_err_),  \
				 (e)->msg);                                    \
	} while (0)

/* One field of a known-good record changed to v: expect code naming
 * "collection.field" in the message. */
#define EXPECT_FIELD(good, coll, key, field, v, want)                          \
	do {                                                                   \
		struct rec r_;                                                 \
		struct err e_;                                                 \
		rec_init(&r_, (good), NELEM(good));                            \
		rec_set(&r_, (field), (v), sizeof(v) - 1);                     \
		int rc_ = put((coll), (key), &r_, 1, &e_);                     \
		if ((want) == 0)                                               \
			expect_ok(rc_, &e_);                                   \
		else                                                           \
			expect_err(rc_, &e_, (want), coll "." field);          \
	} while (0)

#define REG_KEY "DEU:C01X00T47"
static const struct schema_field reg_good[] = {
    FLD("name", "Erika Mustermann"),
    FLD("nationality", "DEU"),
    FLD("document_type", "passport"),
    FLD("document_number", "C01X00T47"),
    FLD("birth_date", "1964-08-12"),
    FLD("phone", "+8613800138000"),
    FLD("email", "erika.mustermann@example.de"),
    FLD("address", "Room 1203, Block B\nShekou, Nanshan"),
    FLD("district", "nanshan"),
    FLD("visa_type", "Z"),
    FLD("visa_expiry", "2026-06-30"),
    FLD("registered_at", "2024-03-01T08:15:00Z"),
    FLD("center", "shekou"),
};

#define CASE_KEY "shekou-000042"
static const struct schema_field case_good[] = {
    FLD("person", REG_KEY),
    FLD("category", "landlord"),
    FLD("status", "open"),
    FLD("center", "shekou"),
    FLD("assignee", "li.wei"),
    FLD("summary", "Deposit not returned.\nLandlord unreachable."),
    FLD("note/112195315302400000/3", "Called the landlord."),
};

#define NOTE_ID "20260405T093012.345Z-shekou-9f3a6c01d2e4b758"
#define NOTE_KEY CASE_KEY "/" NOTE_ID
static const struct schema_field note_good[] = {
    FLD("text", "Called the landlord.\nMeeting on Friday."),
    FLD("center", "shekou"),
    FLD("author", "li.wei"),
    FLD("written_at", "2026-04-05T09:30:12.345Z"),
};

#define EVENT_KEY "2024-05-18/dragon-boat-tour"
static const struct schema_field event_good[] = {
    FLD("title", "Dragon boat tour, Shekou harbour"),
    FLD("kind", "tour"),
    FLD("center", "shekou"),
    FLD("starts_at", "2024-05-18T01:30:00Z"),
    FLD("ends_at", "2024-05-18T04:00:00.000Z"),
    FLD("capacity", "40"),
    FLD("description", "Meet at the ferry terminal.\n\tBring water."),
};

/* A string of n copies of c in a heap buffer (freed by the caller). */
static char *fill(size_t n, char c)
{
	char *s = malloc(n + 1);
	assert_non_null(s);
	memset(s, c, n);
	s[n] = '\0';
	return s;
}

/* ---- UTF-8 ---- */

static void utf8_validity(void **state)
{
	(void)state;
	static const struct {
		const char *s;
		size_t len;
		int ok;
	} cases[] = {
	    {"", 0, 1},
	    {"plain ascii", 11, 1},
	    {"\xC3\xA9", 2, 1},			/* é */
	    {"\xE6\xB7\xB1\xE5\x9C\xB3", 6, 1}, /* 深圳 */
	    {"\xF0\x9F\x98\x80", 4, 1},		/* U+1F600 */
	    {"\xF4\x8F\xBF\xBF", 4, 1},		/* U+10FFFF */
	    {"\xEF\xBF\xBF", 3, 1},		/* U+FFFF */
	    {"\xC0\x80", 2, 0},			/* overlong NUL */
	    {"\xC1\xBF", 2, 0},			/* overlong */
	    {"\xE0\x80\xAF", 3, 0},		/* overlong '/' */
	    {"\xE0\x9F\xBF", 3, 0},		/* overlong U+07FF */
	    {"\xF0\x8F\xBF\xBF", 4, 0},		/* overlong U+FFFF */
	    {"\xED\xA0\x80", 3, 0},		/* surrogate U+D800 */
	    {"\xED\xBF\xBF", 3, 0},		/* surrogate U+DFFF */
	    {"\xF4\x90\x80\x80", 4, 0},		/* U+110000 */
	    {"\xF5\x80\x80\x80", 4, 0},
	    {"\xFF", 1, 0},
	    {"\x80", 1, 0},	      /* stray continuation */
	    {"\xE6\xB7", 2, 0},	      /* truncated */
	    {"ab\xF0\x9F\x98", 5, 0}, /* truncated at the end */
	    {"\xC3\x28", 2, 0},	      /* bad continuation */
	};
	for (size_t i = 0; i < NELEM(cases); i++) {
		if (schema_utf8_valid((const uint8_t *)cases[i].s,
				      cases[i].len) != cases[i].ok)
			fail_msg("case %zu: expected %d", i, cases[i].ok);
	}
	assert_int_equal(schema_utf8_valid(NULL, 0), 1);
}

/* Text is checked a word at a time where it is printable ASCII: every
 * byte value, in every lane of a word and across word ends, must get the
 * byte-by-byte verdict and the offset of the first bad byte. */
static void text_every_byte_in_every_lane(void **state)
{
	(void)state;
	char key[26], want[64];
	struct err e;

	for (int b = 0; b < 256; b++) {
		int printable = b >= 0x20 && b < 0x7F;
		for (size_t at = 0; at < sizeof key; at++) {
			memset(key, 'k', sizeof key);
			key[at] = (char)b;
			int rc = schema_check_key(key, sizeof key, &e);
			if (printable) {
				expect_ok(rc, &e);
				continue;
			}
			if (b >= 0x80)
				snprintf(want, sizeof want,
					 "not valid UTF-8 at byte %zu", at);
			else
				snprintf(want, sizeof want,
					 "control character U+%04X at byte %zu",
					 (unsigned)b, at);
			expect_err(rc, &e, MSCE_EINVAL, want);
		}
	}
}

/* ---- names ---- */

static void collection_names(void **state)
{
	(void)state;
	struct err e;
	char *s;

	assert_int_equal(schema_check_collection("people", 6, 0, &e), 0);
	assert_int_equal(schema_check_collection("a", 1, 0, &e), 0);
	assert_int_equal(schema_check_collection("a_1_b2", 6, 0, &e), 0);
	s = fill(MSCE_MAX_COLLECTION + 1, 'a');
	assert_int_equal(schema_check_collection(s, MSCE_MAX_COLLECTION, 0, &e),
			 0);
	expect_err(schema_check_collection(s, MSCE_MAX_COLLECTION + 1, 0, &e),
		   &e, MSCE_ETOOBIG, "collection: 33 bytes, limit 32");
	free(s);
	expect_err(schema_check_collection("", 0, 0, &e), &e, MSCE_EINVAL,
		   "collection");
	expect_err(schema_check_collection("People", 6, 0, &e), &e, MSCE_EINVAL,
		   "collection");
	expect_err(schema_check_collection("1st", 3, 0, &e), &e, MSCE_EINVAL,
		   "collection");
	expect_err(schema_check_collection("a-b", 3, 0, &e), &e, MSCE_EINVAL,
		   "collection");
	expect_err(schema_check_collection("a\0b", 3, 0, &e), &e, MSCE_EINVAL,
		   "collection");
	expect_err(schema_check_collection("caf\xC3\xA9", 5, 0, &e), &e,
		   MSCE_EINVAL, "collection");
	/* System names: refused for users, allowed for the system. */
	expect_err(schema_check_collection("_meta", 5, 0, &e), &e, MSCE_EINVAL,
		   "reserved for the system");
	assert_int_equal(schema_check_collection("_meta", 5, 1, &e), 0);
	expect_err(schema_check_collection("_Meta", 5, 1, &e), &e, MSCE_EINVAL,
		   "collection");
}

static void keys(void **state)
{
	(void)state;
	struct err e;
	char *s = fill(MSCE_MAX_KEY + 1, 'k');

	assert_int_equal(schema_check_key("k", 1, &e), 0);
	assert_int_equal(schema_check_key("\xE6\xB7\xB1\xE5\x9C\xB3/1", 8, &e),
			 0);
	assert_int_equal(schema_check_key(s, MSCE_MAX_KEY, &e), 0);
	expect_err(schema_check_key(s, MSCE_MAX_KEY + 1, &e), &e, MSCE_ETOOBIG,
		   "key: 257 bytes, limit 256");
	free(s);
	expect_err(schema_check_key("", 0, &e), &e, MSCE_EINVAL, "key: empty");
	expect_err(schema_check_key("a\0b", 3, &e), &e, MSCE_EINVAL,
		   "key: control character U+0000 at byte 1");
	expect_err(schema_check_key("a\tb", 3, &e), &e, MSCE_EINVAL,
		   "key: control");
	expect_err(schema_check_key("a\x7F", 2, &e), &e, MSCE_EINVAL, "U+007F");
	expect_err(schema_check_key("a\xC2\x85", 3, &e), &e, MSCE_EINVAL,
		   "U+0085"); /* C1 NEL */
	expect_err(schema_check_key("ab\xC0\x80", 4, &e), &e, MSCE_EINVAL,
		   "key: not valid UTF-8 at byte 2");
	expect_err(schema_check_key("\xED\xA0\x80", 3, &e), &e, MSCE_EINVAL,
		   "key: not valid UTF-8");
	expect_err(schema_check_key("ab\xE6\xB7", 4, &e), &e, MSCE_EINVAL,
		   "key: not valid UTF-8");
}

static void field_names_and_values(void **state)
{
	(void)state;
	struct err e;
	char *name = fill(MSCE_MAX_FIELD_NAME + 172, 'f');
	uint8_t *big = calloc(MSCE_MAX_VALUE + 1, 1);
	struct schema_field f = {name, MSCE_MAX_FIELD_NAME, big, 0};

	assert_non_null(big);
	assert_int_equal(schema_check_field(&f, &e), 0);
	f.name_len = MSCE_MAX_FIELD_NAME + 1;
	expect_err(schema_check_field(&f, &e), &e, MSCE_ETOOBIG,
		   "field name: 129 bytes, limit 128");
	f.name_len = 300;
	expect_err(schema_check_field(&f, &e), &e, MSCE_ETOOBIG,
		   "field name: 300 bytes, limit 128");
	f.name_len = 0;
	expect_err(schema_check_field(&f, &e), &e, MSCE_EINVAL,
		   "field name: empty");

	f = (struct schema_field){"v", 1, big, MSCE_MAX_VALUE};
	assert_int_equal(schema_check_field(&f, &e), 0);
	f.value_len = MSCE_MAX_VALUE + 1;
	expect_err(schema_check_field(&f, &e), &e, MSCE_ETOOBIG,
		   "v: value 65537 bytes, limit 65536");

	f = (struct schema_field)FLD("a\nb", "");
	expect_err(schema_check_field(&f, &e), &e, MSCE_EINVAL,
		   "field name: control character U+000A");
	f = (struct schema_field)FLD("a\xE0\x80\xAF", "");
	expect_err(schema_check_field(&f, &e), &e, MSCE_EINVAL,
		   "field name: not valid UTF-8");
	f = (struct schema_field)FLD("\xE5\x90\x8D\xE5\xAD\x97", "x");
	assert_int_equal(schema_check_field(&f, &e), 0);
	/* Values of the field check are opaque bytes. */
	f = (struct schema_field)FLD("bin", "\x00\xFF\xC0\x80");
	assert_int_equal(schema_check_field(&f, &e), 0);
	free(name);
	free(big);
}

/* ---- registration ---- */

static void registration_good(void **state)
{
	(void)state;
	struct rec r;
	struct err e;

	rec_init(&r, reg_good, NELEM(reg_good));
	expect_ok(put("registration", REG_KEY, &r, 1, &e), &e);
	/* The four required fields alone make a record. */
	rec_init(&r, reg_good, 4);
	expect_ok(put("registration", REG_KEY, &r, 1, &e), &e);
	/* Non-ASCII name and address. */
	rec_init(&r, reg_good, NELEM(reg_good));
	rec_set(&r, "name", "\xE6\x9D\x8E\xE5\xB0\x8F\xE9\xBE\x99", 9);
	rec_set(&r, "address",
		"\xE5\x8D\x97\xE5\xB1\xB1\xE5\x8C\xBA\r\n\xE8\x9B\x87\xE5\x8F"
		"\xA3",
		17);
	rec_set(&r, "nationality", "CHN", 3);
	rec_set(&r, "document_number", "E12345678", 9);
	expect_ok(put("registration", "CHN:E12345678", &r, 1, &e), &e);
}

static void registration_required_on_create(void **state)
{
	(void)state;
	struct rec r;
	struct err e;

	/* Partial update: only the changed field. */
	rec_init(&r, NULL, 0);
	rec_set(&r, "phone", "+85291234567", 12);
	expect_ok(put("registration", REG_KEY, &r, 0, &e), &e);
	/* Same write creating the record: the required four are missing. */
	expect_err(put("registration", REG_KEY, &r, 1, &e), &e, MSCE_EINVAL,
		   "name, nationality, document_type, document_number");
	const char *req[] = {"name", "nationality", "document_type",
			     "document_number"};
	for (size_t i = 0; i < NELEM(req); i++) {
		rec_init(&r, reg_good, NELEM(reg_good));
		rec_del(&r, req[i]);
		expect_err(put("registration", REG_KEY, &r, 1, &e), &e,
			   MSCE_EINVAL, req[i]);
		expect_ok(put("registration", REG_KEY, &r, 0, &e), &e);
	}
	/* Clearing: an optional field may be emptied, a required one not. */
	rec_init(&r, NULL, 0);
	rec_set(&r, "email", "", 0);
	expect_ok(put("registration", REG_KEY, &r, 0, &e), &e);
	rec_set(&r, "name", "", 0);
	expect_err(put("registration", REG_KEY, &r, 0, &e), &e, MSCE_EINVAL,
		   "registration.name: empty");
	/* An empty collection of fields is a no-op update, but not a record. */
	rec_init(&r, NULL, 0);
	expect_ok(put("registration", REG_KEY, &r, 0, &e), &e);
	expect_err(put("registration", REG_KEY, &r, 1, &e), &e, MSCE_EINVAL,
		   "missing required");
}

static void registration_key(void **state)
{
	(void)state;
	struct rec r;
	struct err e;
	static const struct {
		const char *key;
		int code;
		const char *needle;
	} cases[] = {
	    {"USA:123456789", 0, NULL},
	    {"HKG:H1234567-8", 0, NULL},
	    {"DEU:C01X00T47C01X00T47C01X00T4712345", 0, NULL}, /* 32 */
	    {"DEU:C01X00T47C01X00T47C01X00T47123456", MSCE_ETOOBIG,
	     "document number over 32"},
	    {"deu:C01X00T47", MSCE_EINVAL, "three upper-case letters"},
	    {"XXX:C01X00T47", MSCE_EINVAL, "ISO 3166-1 alpha-3"},
	    {"GER:C01X00T47", MSCE_EINVAL, "ISO 3166-1 alpha-3"},
	    {"DE:C01X00T47", MSCE_EINVAL, "no ':'"},
	    {"DEU-C01X00T47", MSCE_EINVAL, "no ':'"},
	    {"DEU", MSCE_EINVAL, "no ':'"},
	    {"DEU:", MSCE_EINVAL, "empty document number"},
	    {"DEU:c01x00t47", MSCE_EINVAL, "A-Z, 0-9"},
	    {"DEU:C01 X00", MSCE_EINVAL, "A-Z, 0-9"},
	    {"DEU:C01:X00", MSCE_EINVAL, "A-Z, 0-9"},
	};
	for (size_t i = 0; i < NELEM(cases); i++) {
		/* No nationality or number that would have to match. */
		rec_init(&r, NULL, 0);
		rec_set(&r, "name", "N", 1);
		int rc = put("registration", cases[i].key, &r, 0, &e);
		if (cases[i].code == 0) {
			expect_ok(rc, &e);
			assert_true(schema_registration_key_valid(
			    cases[i].key, strlen(cases[i].key)));
			continue;
		}
		expect_err(rc, &e, cases[i].code, "registration: key: ");
		expect_err(rc, &e, cases[i].code, cases[i].needle);
		assert_false(schema_registration_key_valid(
		    cases[i].key, strlen(cases[i].key)));
		/* Deletes check the key too. */
		expect_err(schema_validate_delete("registration", 12,
						  cases[i].key,
						  strlen(cases[i].key), &e),
			   &e, cases[i].code, "registration: key: ");
	}
}

static void registration_key_match(void **state)
{
	(void)state;
	struct rec r;
	struct err e;

	rec_init(&r, reg_good, NELEM(reg_good));
	rec_set(&r, "nationality", "FRA", 3);
	expect_err(put("registration", REG_KEY, &r, 1, &e), &e, MSCE_EINVAL,
		   "registration.nationality: \"FRA\" does not match the key");
	rec_init(&r, reg_good, NELEM(reg_good));
	expect_err(put("registration", "CHN:C01X00T47", &r, 1, &e), &e,
		   MSCE_EINVAL, "registration.nationality");
	rec_init(&r, reg_good, NELEM(reg_good));
	rec_set(&r, "document_number", "C01X00T48", 9);
	expect_err(put("registration", REG_KEY, &r, 1, &e), &e, MSCE_EINVAL,
		   "registration.document_number: \"C01X00T48\" does not");
	/* A prefix of the key's number is not a match either. */
	rec_set(&r, "document_number", "C01X00T4", 8);
	expect_err(put("registration", REG_KEY, &r, 1, &e), &e, MSCE_EINVAL,
		   "registration.document_number");
	/* Update carrying only a matching nationality. */
	rec_init(&r, NULL, 0);
	rec_set(&r, "nationality", "DEU", 3);
	expect_ok(put("registration", REG_KEY, &r, 0, &e), &e);
}

static void registration_fields(void **state)
{
	(void)state;
#define R(field, v, want)                                                      \
	EXPECT_FIELD(reg_good, "registration", REG_KEY, field, v, want)
	R("birth_date", "1990-13-01", MSCE_EINVAL);
	{
		/* The exact wording front ends show. */
		struct rec r;
		struct err e;
		rec_init(&r, reg_good, NELEM(reg_good));
		rec_set(&r, "birth_date", "1990-13-01", 10);
		put("registration", REG_KEY, &r, 1, &e);
		assert_string_equal(e.msg,
				    "registration.birth_date: not an ISO 8601 "
				    "date (YYYY-MM-DD): \"1990-13-01\"");
	}
	R("nationality", "XXX", MSCE_EINVAL);
	R("nationality", "deu", MSCE_EINVAL);
	R("nationality", "DE", MSCE_EINVAL);
	R("document_type", "visa", MSCE_EINVAL);
	R("document_type", "Passport", MSCE_EINVAL);
	R("document_type", "residence_permit", 0);
	R("document_number", "c01x00t47", MSCE_EINVAL);
	R("birth_date", "2000-02-29", 0);
	R("birth_date", "", 0); /* optional: cleared */
	R("district", "shekou", MSCE_EINVAL);
	R("district", "guangming", 0);
	R("visa_expiry", "2026-02-30", MSCE_EINVAL);
	R("visa_expiry", "2026-6-30", MSCE_EINVAL);
	R("registered_at", "2024-03-01 08:15:00Z", MSCE_EINVAL);
	R("registered_at", "2024-03-01T08:15:00.123456Z", 0);
	R("center", "Shekou", MSCE_EINVAL);
	R("center", "shekou-2", 0);
	R("center", "2shekou", MSCE_EINVAL);
	R("center", "she_kou", MSCE_EINVAL);
	R("name", "Erika\nMustermann", MSCE_EINVAL); /* one line */
	R("name", "Erika\x01", MSCE_EINVAL);
	R("address", "Room 1\x07", MSCE_EINVAL); /* bell */
	R("address", "a\tb\r\nc", 0);
	R("visa_type", "Z\n", MSCE_EINVAL);
	/* Unknown names are refused, naming the field and the known ones. */
	R("birthdate", "1990-01-01", MSCE_EINVAL);
	{
		struct rec r;
		struct err e;
		rec_init(&r, reg_good, NELEM(reg_good));
		rec_set(&r, "birthdate", "1990-01-01", 10);
		expect_err(put("registration", REG_KEY, &r, 1, &e), &e,
			   MSCE_EINVAL, "unknown field (known: name, ");
	}
#undef R
}

static void dates(void **state)
{
	(void)state;
	static const struct {
		const char *s;
		int ok;
	} cases[] = {
	    {"2000-02-29", 1},			  /* divisible by 400 */
	    {"2024-02-29", 1}, {"1900-02-29", 0}, /* by 100, not 400 */
	    {"2023-02-29", 0}, {"2023-02-28", 1}, {"2023-04-31", 0},
	    {"2023-04-30", 1}, {"2023-12-31", 1}, {"2023-01-32", 0},
	    {"2023-00-10", 0}, {"2023-01-00", 0}, {"0000-01-01", 0},
	    {"0001-01-01", 1}, {"9999-12-31", 1}, {"2023-1-01", 0},
	    {"2023/01/01", 0}, {"20230101", 0},	  {"2023-01-01T", 0},
	    {"2023-01-0a", 0}, {"+023-01-01", 0}, {"", 0},
	};
	for (size_t i = 0; i < NELEM(cases); i++) {
		if (schema_date_valid(cases[i].s, strlen(cases[i].s)) !=
		    cases[i].ok)
			fail_msg("date \"%s\": expected %d", cases[i].s,
				 cases[i].ok);
	}
	/* And through a write. */
	EXPECT_FIELD(reg_good, "registration", REG_KEY, "birth_date",
		     "1900-02-29", MSCE_EINVAL);
	EXPECT_FIELD(reg_good, "registration", REG_KEY, "birth_date",
		     "2000-02-29", 0);
}

static void timestamps(void **state)
{
	(void)state;
	static const struct {
		const char *s;
		int ok;
	} cases[] = {
	    {"2024-03-01T08:15:00Z", 1},
	    {"2024-03-01T23:59:59.999999999Z", 1},
	    {"2024-03-01T00:00:00.1Z", 1},
	    {"2024-02-29T12:00:00Z", 1},
	    {"2023-02-29T12:00:00Z", 0},
	    {"2024-03-01T24:00:00Z", 0},
	    {"2024-03-01T08:60:00Z", 0},
	    {"2024-03-01T08:15:60Z", 0}, /* no leap seconds */
	    {"2024-03-01T08:15:00", 0},
	    {"2024-03-01T08:15:00z", 0},
	    {"2024-03-01t08:15:00Z", 0},
	    {"2024-03-01T08:15:00+08:00", 0},
	    {"2024-03-01T08:15:00.Z", 0},
	    {"2024-03-01T08:15:00.1234567890Z", 0},
	    {"2024-03-01T08:15:00.12a4Z", 0},
	    {"2024-03-01T8:15:00Z", 0},
	    {"2024-03-01", 0},
	};
	for (size_t i = 0; i < NELEM(cases); i++) {
		if (schema_timestamp_valid(cases[i].s, strlen(cases[i].s)) !=
		    cases[i].ok)
			fail_msg("timestamp \"%s\": expected %d", cases[i].s,
				 cases[i].ok);
	}
	/* The domain fields take any offset (stored in UTC by the node). */
	EXPECT_FIELD(reg_good, "registration", REG_KEY, "registered_at",
		     "2024-03-01T08:15:00+08:00", 0);
	EXPECT_FIELD(reg_good, "registration", REG_KEY, "registered_at",
		     "2024-03-01T08:15:00+15:00", MSCE_EINVAL);
}

/* Any ISO 8601 offset, normalized to UTC with the fraction's digits as
 * given; NULL: refused. */
static void timestamps_with_offsets(void **state)
{
	(void)state;
	static const struct {
		const char *in, *utc;
	} cases[] = {
	    {"2026-12-01T10:00:00+08:00", "2026-12-01T02:00:00Z"},
	    {"2026-12-01T10:00:00-05:30", "2026-12-01T15:30:00Z"},
	    {"2026-12-01T10:00:00Z", "2026-12-01T10:00:00Z"},
	    {"2026-12-01T10:00:00+00:00", "2026-12-01T10:00:00Z"},
	    {"2026-12-01T10:00:00-00:00", "2026-12-01T10:00:00Z"},
	    {"2026-12-01T10:00:00+0800", "2026-12-01T02:00:00Z"},
	    {"2026-12-01T10:00:00+08", "2026-12-01T02:00:00Z"},
	    {"2026-12-01T10:00:00+05:45", "2026-12-01T04:15:00Z"},
	    /* Fractions kept exactly: trailing zeros too. */
	    {"2026-12-01T10:00:00.5+08:00", "2026-12-01T02:00:00.5Z"},
	    {"2026-12-01T10:00:00.250+08:00", "2026-12-01T02:00:00.250Z"},
	    {"2026-12-01T10:00:00.123456789-03:00",
	     "2026-12-01T13:00:00.123456789Z"},
	    {"2026-12-01T10:00:00,5Z", "2026-12-01T10:00:00.5Z"},
	    /* Across days, months, years and leap days. */
	    {"2026-01-01T03:00:00+08:00", "2025-12-31T19:00:00Z"},
	    {"2026-12-31T23:30:00-01:00", "2027-01-01T00:30:00Z"},
	    {"2024-02-28T20:00:00-05:00", "2024-02-29T01:00:00Z"},
	    {"2023-02-28T20:00:00-05:00", "2023-03-01T01:00:00Z"},
	    {"2000-03-01T01:00:00+02:00", "2000-02-29T23:00:00Z"},
	    {"2100-03-01T01:00:00+02:00", "2100-02-28T23:00:00Z"},
	    /* The range of zones in use: -12:00..+14:00. */
	    {"2026-06-15T00:00:00+14:00", "2026-06-14T10:00:00Z"},
	    {"2026-06-15T00:00:00-12:00", "2026-06-15T12:00:00Z"},
	    {"2026-06-15T00:00:00+14:01", NULL},
	    {"2026-06-15T00:00:00-12:01", NULL},
	    {"2026-06-15T00:00:00+23:00", NULL},
	    /* Years 0001..9999 after conversion. */
	    {"0001-01-01T00:30:00-01:00", "0001-01-01T01:30:00Z"},
	    {"0001-01-01T00:30:00+01:00", NULL},
	    {"9999-12-31T23:00:00-02:00", NULL},
	    /* Malformed offsets. */
	    {"2026-12-01T10:00:00+08:60", NULL},
	    {"2026-12-01T10:00:00+8:00", NULL},
	    {"2026-12-01T10:00:00+08:0", NULL},
	    {"2026-12-01T10:00:00+08:00:00", NULL},
	    {"2026-12-01T10:00:00+0800Z", NULL},
	    {"2026-12-01T10:00:00 +08:00", NULL},
	    {"2026-12-01T10:00:00z", NULL},
	    {"2026-12-01T10:00:00", NULL},
	    {"2026-12-01T10:00:00.+08:00", NULL},
	    {"2026-12-01T10:00:00.1234567890+08:00", NULL},
	    /* No leap seconds, whatever the offset; the time itself valid. */
	    {"2026-12-31T23:59:60+08:00", NULL},
	    {"2026-12-31T23:59:60Z", NULL},
	    {"2026-12-01T24:00:00+08:00", NULL},
	    {"2026-02-29T10:00:00+08:00", NULL},
	};
	char out[SCHEMA_TIME_MAX + 1];

	for (size_t i = 0; i < NELEM(cases); i++) {
		const char *in = cases[i].in;
		size_t n = schema_timestamp_utc(in, strlen(in), out);
		if (cases[i].utc == NULL) {
			if (n != 0)
				fail_msg("\"%s\": accepted as \"%.*s\"", in,
					 (int)n, out);
			continue;
		}
		if (n == 0)
			fail_msg("\"%s\": refused", in);
		out[n] = '\0';
		if (strcmp(out, cases[i].utc) != 0)
			fail_msg("\"%s\": \"%s\", expected \"%s\"", in, out,
				 cases[i].utc);
		/* The UTC form is itself valid, and maps to itself. */
		assert_true(schema_timestamp_valid(out, n));
	}
	/* In place: the UTC form is never longer. */
	char buf[] = "2026-12-01T10:00:00.000001+08:00";
	size_t n = schema_timestamp_utc(buf, strlen(buf), buf);
	assert_int_equal(n, 27);
	assert_memory_equal(buf, "2026-12-01T02:00:00.000001Z", 27);
}

/* Which fields the node stores in UTC: the domain timestamps only. */
static void time_fields_to_utc(void **state)
{
	(void)state;
	static const struct {
		const char *coll, *name, *value, *utc;
	} cases[] = {
	    {"registration", "registered_at", "2026-12-01T10:00:00+08:00",
	     "2026-12-01T02:00:00Z"},
	    {"case_note", "written_at", "2026-12-01T10:00:00.125-05:30",
	     "2026-12-01T15:30:00.125Z"},
	    {"event", "starts_at", "2026-12-01T10:00:00+08:00",
	     "2026-12-01T02:00:00Z"},
	    {"event", "ends_at", "2026-12-01T10:00:00,5+08",
	     "2026-12-01T02:00:00.5Z"},
	    /* Left as they are. */
	    {"event", "starts_at", "2026-12-01T02:00:00Z", NULL},
	    {"event", "starts_at", "2026-12-01T10:00:00+15:00", NULL},
	    {"event", "starts_at", "", NULL},
	    {"event", "title", "2026-12-01T10:00:00+08:00", NULL},
	    {"registration", "birth_date", "2026-12-01T10:00:00+08:00", NULL},
	    {"case", "summary", "2026-12-01T10:00:00+08:00", NULL},
	    {"notes", "starts_at", "2026-12-01T10:00:00+08:00", NULL},
	};
	uint8_t out[SCHEMA_TIME_MAX];

	for (size_t i = 0; i < NELEM(cases); i++) {
		const char *c = cases[i].coll, *f = cases[i].name,
			   *v = cases[i].value;
		memset(out, '#', sizeof out);
		size_t n = schema_time_field_utc(c, strlen(c), f, strlen(f),
						 (const uint8_t *)v, strlen(v),
						 out);
		if (cases[i].utc == NULL) {
			if (n != 0 || out[0] != '#')
				fail_msg("%s.%s \"%s\": rewritten", c, f, v);
			continue;
		}
		if (n != strlen(cases[i].utc) ||
		    memcmp(out, cases[i].utc, n) != 0)
			fail_msg("%s.%s \"%s\": \"%.*s\", expected \"%s\"", c,
				 f, v, (int)n, (const char *)out, cases[i].utc);
	}
}

static void phones(void **state)
{
	(void)state;
#define P(v, want)                                                             \
	EXPECT_FIELD(reg_good, "registration", REG_KEY, "phone", v, want)
	P("+8613800138000", 0);
	P("+123456", 0);		     /* 6 digits */
	P("+12345", MSCE_EINVAL);	     /* 5 */
	P("+123456789012345", 0);	     /* 15 */
	P("+1234567890123456", MSCE_EINVAL); /* 16 */
	P("13800138000", MSCE_EINVAL);
	P("+0123456", MSCE_EINVAL);
	P("+86 138 0013 8000", MSCE_EINVAL);
	P("+86-13800138000", MSCE_EINVAL);
	P("+", MSCE_EINVAL);
#undef P
}

static void emails(void **state)
{
	(void)state;
#define M(v, want)                                                             \
	EXPECT_FIELD(reg_good, "registration", REG_KEY, "email", v, want)
	M("a@example.com", 0);
	M("first.last+tag@mail.example.com.cn", 0);
	M("o'brien@example.ie", 0);
	M("x@xn--fiqs8s", MSCE_EINVAL); /* one label */
	M("x@example.xn--fiqs8s", 0);
	M("\xE6\x9D\x8E@\xE4\xBE\x8B\xE5\xAD\x90.\xE4\xB8\xAD\xE5\x9B\xBD", 0);
	M("no-at.example.com", MSCE_EINVAL);
	M("a@b", MSCE_EINVAL);
	M("a@localhost", MSCE_EINVAL);
	M("a@@example.com", MSCE_EINVAL);
	M("a@b@example.com", MSCE_EINVAL);
	M("@example.com", MSCE_EINVAL);
	M("a@example.c", MSCE_EINVAL);
	M("a@example.123", MSCE_EINVAL);
	M(".a@example.com", MSCE_EINVAL);
	M("a.@example.com", MSCE_EINVAL);
	M("a..b@example.com", MSCE_EINVAL);
	M("a b@example.com", MSCE_EINVAL);
	M("a@-example.com", MSCE_EINVAL);
	M("a@example-.com", MSCE_EINVAL);
	M("a@example..com", MSCE_EINVAL);
	M("a@.example.com", MSCE_EINVAL);
	M("a@example.com.", MSCE_EINVAL);
	M("a@exa_mple.com", MSCE_EINVAL);
#undef M
}

/* Text limits: exactly the limit passes, one over is ETOOBIG naming the
 * field; the same for the format-bounded ones. */
static void registration_limits(void **state)
{
	(void)state;
	static const struct {
		const char *field;
		size_t limit;
		char fillc;
	} lim[] = {
	    {"name", 200, 'n'},
	    {"address", 1000, 'a'},
	    {"visa_type", 64, 'v'},
	    {"center", 32, 'c'},
	};
	struct rec r;
	struct err e;
	char need[64];

	for (size_t i = 0; i < NELEM(lim); i++) {
		char *s = fill(lim[i].limit + 1, lim[i].fillc);
		rec_init(&r, reg_good, NELEM(reg_good));
		rec_set(&r, lim[i].field, s, lim[i].limit);
		expect_ok(put("registration", REG_KEY, &r, 1, &e), &e);
		rec_set(&r, lim[i].field, s, lim[i].limit + 1);
		snprintf(need, sizeof need,
			 "registration.%s: %zu bytes, limit %zu", lim[i].field,
			 lim[i].limit + 1, lim[i].limit);
		expect_err(put("registration", REG_KEY, &r, 1, &e), &e,
			   MSCE_ETOOBIG, need);
		free(s);
	}
	/* Email: 254 bytes in all. */
	char mail[300];
	memset(mail, 'a', 60);
	memcpy(mail + 60, "@", 1);
	size_t o = 61;
	while (o < 250) {
		memset(mail + o, 'b', 9);
		mail[o + 9] = '.';
		o += 10;
	}
	memcpy(mail + o, "com", 3); /* 253 bytes */
	mail[o + 3] = '\0';
	assert_int_equal(strlen(mail), 254);
	rec_init(&r, reg_good, NELEM(reg_good));
	rec_set(&r, "email", mail, 254);
	expect_ok(put("registration", REG_KEY, &r, 1, &e), &e);
	memcpy(mail + o, "comm", 5);
	rec_set(&r, "email", mail, 255);
	expect_err(put("registration", REG_KEY, &r, 1, &e), &e, MSCE_ETOOBIG,
		   "registration.email: 255 bytes, limit 254");
	/* Document number: 32 characters, and must then match a 32 key. */
	const char *k32 = "DEU:ABCDEFGHIJKLMNOPQRSTUVWXYZ012345";
	rec_init(&r, reg_good, NELEM(reg_good));
	rec_set(&r, "document_number", k32 + 4, 32);
	expect_ok(put("registration", k32, &r, 1, &e), &e);
	rec_set(&r, "document_number", "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456", 33);
	expect_err(put("registration", k32, &r, 1, &e), &e, MSCE_ETOOBIG,
		   "registration.document_number: 33 bytes, limit 32");
}

static void invalid_utf8_in_text(void **state)
{
	(void)state;
	static const struct {
		const char *v;
		size_t len;
	} bad[] = {
	    {"Er\xC0\xA9ka", 6},	  /* overlong */
	    {"Er\xED\xA0\x80ka", 7},	  /* surrogate */
	    {"Erika \xE6\xB7", 8},	  /* truncated */
	    {"Erika\xF4\x90\x80\x80", 9}, /* above U+10FFFF */
	};
	static const char *const fields[] = {"name", "address", "visa_type"};
	struct rec r;
	struct err e;
	char need[64];

	for (size_t f = 0; f < NELEM(fields); f++) {
		for (size_t i = 0; i < NELEM(bad); i++) {
			rec_init(&r, reg_good, NELEM(reg_good));
			rec_set(&r, fields[f], bad[i].v, bad[i].len);
			snprintf(need, sizeof need,
				 "registration.%s: not valid UTF-8", fields[f]);
			expect_err(put("registration", REG_KEY, &r, 1, &e), &e,
				   MSCE_EINVAL, need);
		}
	}
	/* Also in case and event text. */
	EXPECT_FIELD(case_good, "case", CASE_KEY, "summary", "a\xED\xBF\xBF",
		     MSCE_EINVAL);
	EXPECT_FIELD(case_good, "case", CASE_KEY, "note/1/1", "\xC1\x81",
		     MSCE_EINVAL);
	EXPECT_FIELD(event_good, "event", EVENT_KEY, "description", "x\xE0\x80",
		     MSCE_EINVAL);
	EXPECT_FIELD(event_good, "event", EVENT_KEY, "title", "\x80",
		     MSCE_EINVAL);
}

/* ---- case ---- */

static void case_good_and_required(void **state)
{
	(void)state;
	struct rec r;
	struct err e;

	rec_init(&r, case_good, NELEM(case_good));
	expect_ok(put("case", CASE_KEY, &r, 1, &e), &e);
	rec_init(&r, case_good, 4);
	expect_ok(put("case", "\xE6\xB7\xB1\xE5\x9C\xB3-1", &r, 1, &e), &e);
	const char *req[] = {"person", "category", "status", "center"};
	for (size_t i = 0; i < NELEM(req); i++) {
		rec_init(&r, case_good, NELEM(case_good));
		rec_del(&r, req[i]);
		expect_err(put("case", CASE_KEY, &r, 1, &e), &e, MSCE_EINVAL,
			   req[i]);
		expect_ok(put("case", CASE_KEY, &r, 0, &e), &e);
	}
	/* A note alone is a valid update. */
	rec_init(&r, NULL, 0);
	rec_set(&r, "note/1711958400000/8", "Tenant moved out.", 17);
	expect_ok(put("case", CASE_KEY, &r, 0, &e), &e);
	rec_set(&r, "status", "", 0);
	expect_err(put("case", CASE_KEY, &r, 0, &e), &e, MSCE_EINVAL,
		   "case.status: empty");
}

static void case_fields(void **state)
{
	(void)state;
#define C(field, v, want)                                                      \
	EXPECT_FIELD(case_good, "case", CASE_KEY, field, v, want)
	C("person", "DEU:C01X00T47", 0);
	C("person", "Erika Mustermann", MSCE_EINVAL);
	C("person", "XXX:C01X00T47", MSCE_EINVAL);
	C("person", "DEU:c01", MSCE_EINVAL);
	C("person", "DEU:ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456", MSCE_ETOOBIG);
	C("category", "marriage", 0);
	C("category", "currency", 0);
	C("category", "divorce", MSCE_EINVAL);
	C("status", "in_progress", 0);
	C("status", "in progress", MSCE_EINVAL);
	C("status", "OPEN", MSCE_EINVAL);
	C("center", "futian-1", 0);
	C("center", "Futian", MSCE_EINVAL);
	C("assignee", "a\nb", MSCE_EINVAL);
	C("summary", "line 1\nline 2\ttab", 0);
	C("summary", "escape \x1B[31m", MSCE_EINVAL);
	C("priority", "high", MSCE_EINVAL);
	/* Note names. */
	C("note/0/1", "x", 0);
	C("note/18446744073709551615/65535", "x", 0);
	C("note/18446744073709551616/1", "x", MSCE_EINVAL);
	C("note/99999999999999999999/1", "x", MSCE_EINVAL);
	C("note/123/65536", "x", MSCE_EINVAL);
	C("note/123/0", "x", MSCE_EINVAL);
	C("note/0123/1", "x", MSCE_EINVAL);
	C("note/123/01", "x", MSCE_EINVAL);
	C("note/abc/1", "x", MSCE_EINVAL);
	C("note/123", "x", MSCE_EINVAL);
	C("note//1", "x", MSCE_EINVAL);
	C("note/1/", "x", MSCE_EINVAL);
	C("note/1/2/3", "x", MSCE_EINVAL);
	C("note/-1/2", "x", MSCE_EINVAL);
	C("notes/1/2", "x", MSCE_EINVAL);
	C("note", "x", MSCE_EINVAL);
	C("note/1/2", "a\nmulti-line note", 0);
#undef C
	struct rec r;
	struct err e;
	rec_init(&r, case_good, NELEM(case_good));
	rec_set(&r, "note/abc/1", "x", 1);
	expect_err(put("case", CASE_KEY, &r, 1, &e), &e, MSCE_EINVAL,
		   "case.note/abc/1: not a note field name");
	rec_init(&r, case_good, NELEM(case_good));
	rec_set(&r, "priority", "x", 1);
	expect_err(put("case", CASE_KEY, &r, 1, &e), &e, MSCE_EINVAL,
		   "note/<hlc>/<origin>"); /* listed among the known */
}

static void case_limits(void **state)
{
	(void)state;
	static const struct {
		const char *field;
		size_t limit;
	} lim[] = {
	    {"assignee", 200},
	    {"summary", 4000},
	    {"note/1711958400000/8", 8000},
	};
	struct rec r;
	struct err e;
	char need[80];

	for (size_t i = 0; i < NELEM(lim); i++) {
		char *s = fill(lim[i].limit + 1, 'x');
		rec_init(&r, case_good, NELEM(case_good));
		rec_set(&r, lim[i].field, s, lim[i].limit);
		expect_ok(put("case", CASE_KEY, &r, 1, &e), &e);
		rec_set(&r, lim[i].field, s, lim[i].limit + 1);
		snprintf(need, sizeof need, "case.%s: %zu bytes, limit %zu",
			 lim[i].field, lim[i].limit + 1, lim[i].limit);
		expect_err(put("case", CASE_KEY, &r, 1, &e), &e, MSCE_ETOOBIG,
			   need);
		free(s);
	}
}

/* ---- case_note ---- */

static void case_note_good_and_required(void **state)
{
	(void)state;
	struct rec r;
	struct err e;

	rec_init(&r, note_good, NELEM(note_good));
	expect_ok(put("case_note", NOTE_KEY, &r, 1, &e), &e);
	rec_init(&r, note_good, 2); /* text and center only */
	expect_ok(put("case_note", NOTE_KEY, &r, 1, &e), &e);
	const char *req[] = {"text", "center"};
	for (size_t i = 0; i < NELEM(req); i++) {
		rec_init(&r, note_good, NELEM(note_good));
		rec_del(&r, req[i]);
		expect_err(put("case_note", NOTE_KEY, &r, 1, &e), &e,
			   MSCE_EINVAL, req[i]);
		/* An update of an existing note may carry one field. */
		expect_ok(put("case_note", NOTE_KEY, &r, 0, &e), &e);
	}
	/* Required fields cannot be cleared later. */
	rec_init(&r, NULL, 0);
	rec_set(&r, "text", "", 0);
	expect_err(put("case_note", NOTE_KEY, &r, 0, &e), &e, MSCE_EINVAL,
		   "case_note.text: empty, and the field is required");
	/* Optional ones can. */
	rec_init(&r, NULL, 0);
	rec_set(&r, "author", "", 0);
	rec_set(&r, "written_at", "", 0);
	expect_ok(put("case_note", NOTE_KEY, &r, 0, &e), &e);
}

static void case_note_key(void **state)
{
	(void)state;
	static const struct {
		const char *key;
		int code;
		const char *needle;
	} cases[] = {
	    {"c/20260405T093012.345Z-shekou-9f3a6c01d2e4b758", 0, NULL},
	    {"c/20240229T000000.000Z-a-0000000000000000", 0, NULL},
	    {"c/20261231T235959.999Z-shenzhen-bay-ffffffffffffffff", 0, NULL},
	    {"c/00010101T000000.000Z-x9-0123456789abcdef", 0, NULL},
	    /* A case key may hold '/': the note id follows the last. */
	    {"a/b/20260405T093012.345Z-futian-9f3a6c01d2e4b758", 0, NULL},
	    {"\xE6\xB7\xB1/20260405T093012.345Z-futian-9f3a6c01d2e4b758", 0,
	     NULL},
	    {"20260405T093012.345Z-shekou-9f3a6c01d2e4b758", MSCE_EINVAL,
	     "no '/' before the note id"},
	    {"/20260405T093012.345Z-shekou-9f3a6c01d2e4b758", MSCE_EINVAL,
	     "empty case key"},
	    {"c/", MSCE_EINVAL, "does not start with a time"},
	    {"c/20260405T093012.345Z-shekou-9f3a6c01d2e4b758/x", MSCE_EINVAL,
	     "does not start with a time"},
	    {"c/2026-04-05T09:30:12.345Z-shekou-9f3a6c01d2e4b758", MSCE_EINVAL,
	     "does not start with a time"},
	    {"c/20260405T093012Z-shekou-9f3a6c01d2e4b758", MSCE_EINVAL,
	     "does not start with a time"},
	    {"c/20260405T093012.34Z-shekou-9f3a6c01d2e4b758", MSCE_EINVAL,
	     "does not start with a time"},
	    {"c/20260405T093012.3a5Z-shekou-9f3a6c01d2e4b758", MSCE_EINVAL,
	     "does not start with a time"},
	    {"c/20260405 093012.345Z-shekou-9f3a6c01d2e4b758", MSCE_EINVAL,
	     "does not start with a time"},
	    {"c/20260405T093012.345-shekou-9f3a6c01d2e4b758", MSCE_EINVAL,
	     "does not start with a time"},
	    {"c/20260405T093012.345Zshekou-9f3a6c01d2e4b758", MSCE_EINVAL,
	     "does not start with a time"},
	    {"c/20261305T093012.345Z-shekou-9f3a6c01d2e4b758", MSCE_EINVAL,
	     "not a real"},
	    {"c/20230229T093012.345Z-shekou-9f3a6c01d2e4b758", MSCE_EINVAL,
	     "not a real"},
	    {"c/00000101T093012.345Z-shekou-9f3a6c01d2e4b758", MSCE_EINVAL,
	     "not a real"},
	    {"c/20260405T243012.345Z-shekou-9f3a6c01d2e4b758", MSCE_EINVAL,
	     "not a real"},
	    {"c/20260405T096012.345Z-shekou-9f3a6c01d2e4b758", MSCE_EINVAL,
	     "not a real"},
	    {"c/20260405T093060.345Z-shekou-9f3a6c01d2e4b758", MSCE_EINVAL,
	     "not a real"},
	    {"c/2026O405T093012.345Z-shekou-9f3a6c01d2e4b758", MSCE_EINVAL,
	     "not a real"},
	    {"c/20260405T093012.345Z-shekou-9F3A6C01D2E4B758", MSCE_EINVAL,
	     "16 lower-case hex digits"},
	    {"c/20260405T093012.345Z-shekou-9f3a6c01d2e4b75", MSCE_EINVAL,
	     "16 lower-case hex digits"},
	    {"c/20260405T093012.345Z-shekou-9f3a6c01d2e4b7580", MSCE_EINVAL,
	     "16 lower-case hex digits"},
	    {"c/20260405T093012.345Z-shekou-9f3a6c01d2e4b75g", MSCE_EINVAL,
	     "16 lower-case hex digits"},
	    {"c/20260405T093012.345Z-9f3a6c01d2e4b758", MSCE_EINVAL,
	     "16 lower-case hex digits"},
	    {"c/20260405T093012.345Z--9f3a6c01d2e4b758", MSCE_EINVAL,
	     "no center name"},
	    {"c/20260405T093012.345Z-Shekou-9f3a6c01d2e4b758", MSCE_EINVAL,
	     "no center name"},
	    {"c/20260405T093012.345Z-1shekou-9f3a6c01d2e4b758", MSCE_EINVAL,
	     "no center name"},
	    {"c/20260405T093012.345Z-she_kou-9f3a6c01d2e4b758", MSCE_EINVAL,
	     "no center name"},
	    {"c/20260405T093012.345Z-shekou_9f3a6c01d2e4b758", MSCE_EINVAL,
	     "16 lower-case hex digits"},
	};
	struct rec r;
	struct err e;

	for (size_t i = 0; i < NELEM(cases); i++) {
		const char *k = cases[i].key;
		rec_init(&r, note_good, 1);
		/* The center must match the key's: take it from there. */
		const char *at = strrchr(k, '/');
		size_t cl = 0;
		if (at != NULL && strlen(at + 1) >= 39) {
			cl = strlen(at + 1) - 38;
			rec_set(&r, "center", at + 22, cl);
		} else {
			rec_set(&r, "center", "shekou", 6);
		}
		int rc = put("case_note", k, &r, 1, &e);
		if (cases[i].code == 0) {
			expect_ok(rc, &e);
			expect_ok(schema_validate_delete("case_note", 9, k,
							 strlen(k), &e),
				  &e);
			assert_true(
			    schema_note_id_valid(at + 1, strlen(at + 1)));
			continue;
		}
		expect_err(rc, &e, cases[i].code,
			   "case_note: key: not <case key>/<note id>: ");
		expect_err(rc, &e, cases[i].code, cases[i].needle);
		expect_err(
		    schema_validate_delete("case_note", 9, k, strlen(k), &e),
		    &e, cases[i].code, "case_note: key: ");
		if (at != NULL && at != k) /* "/<id>": the id is fine */
			assert_false(
			    schema_note_id_valid(at + 1, strlen(at + 1)));
	}

	/* A center of 32 letters is the longest id (70 bytes); 33 is over. */
	char id[80], key[90];
	char *c33 = fill(33, 'c');
	snprintf(id, sizeof id, "20260405T093012.345Z-%.32s-9f3a6c01d2e4b758",
		 c33);
	assert_int_equal(strlen(id), SCHEMA_NOTE_ID_MAX);
	assert_true(schema_note_id_valid(id, strlen(id)));
	snprintf(key, sizeof key, "c/%s", id);
	rec_init(&r, note_good, 1);
	rec_set(&r, "center", c33, 32);
	expect_ok(put("case_note", key, &r, 1, &e), &e);
	snprintf(id, sizeof id, "20260405T093012.345Z-%s-9f3a6c01d2e4b758",
		 c33);
	assert_false(schema_note_id_valid(id, strlen(id)));
	snprintf(key, sizeof key, "c/%s", id);
	expect_err(put("case_note", key, &r, 1, &e), &e, MSCE_ETOOBIG,
		   "note id over 70 characters");
	free(c33);
	assert_int_equal(strlen("20260405T093012.345Z-a-9f3a6c01d2e4b758"),
			 SCHEMA_NOTE_ID_MIN);
	assert_false(schema_note_id_valid(NULL, 0));
	/* Fixed width, time first: byte order is time order. */
	assert_true(strcmp("20260405T093012.345Z-zz-ffffffffffffffff",
			   "20260405T093012.346Z-a-0000000000000000") < 0);
	assert_true(strcmp("20251231T235959.999Z-zz-ffffffffffffffff",
			   "20260101T000000.000Z-a-0000000000000000") < 0);
}

static void case_note_fields(void **state)
{
	(void)state;
#define N(field, v, want)                                                      \
	EXPECT_FIELD(note_good, "case_note", NOTE_KEY, field, v, want)
	N("text", "line 1\r\nline 2\ttab", 0);
	N("text", "\xE6\xB7\xB1\xE5\x9C\xB3", 0);
	N("text", "bell \x07", MSCE_EINVAL);
	N("text", "\xC1\x81", MSCE_EINVAL);
	N("center", "futian", MSCE_EINVAL); /* not the key's center */
	N("center", "Shekou", MSCE_EINVAL);
	N("author", "Li Wei", 0);
	N("author", "li\nwei", MSCE_EINVAL);
	N("written_at", "2026-04-05T09:30:12Z", 0);
	N("written_at", "2026-04-05", MSCE_EINVAL);
	N("written_at", "20260405T093012.345Z", MSCE_EINVAL);
	N("note", "x", MSCE_EINVAL);
	N("note/1/1", "x", MSCE_EINVAL); /* note fields are the case's */
	N("summary", "x", MSCE_EINVAL);
#undef N
	struct rec r;
	struct err e;
	rec_init(&r, note_good, NELEM(note_good));
	rec_set(&r, "center", "futian", 6);
	expect_err(put("case_note", NOTE_KEY, &r, 1, &e), &e, MSCE_EINVAL,
		   "case_note.center: \"futian\" does not match the center in "
		   "the note id");
	rec_init(&r, note_good, NELEM(note_good));
	rec_set(&r, "subject", "x", 1);
	expect_err(put("case_note", NOTE_KEY, &r, 1, &e), &e, MSCE_EINVAL,
		   "case_note.subject: unknown field (known: text, center, "
		   "author, written_at)");

	static const struct {
		const char *field;
		size_t limit;
	} lim[] = {{"text", 8000}, {"author", 200}};
	char need[80];
	for (size_t i = 0; i < NELEM(lim); i++) {
		char *s = fill(lim[i].limit + 1, 'x');
		rec_init(&r, note_good, NELEM(note_good));
		rec_set(&r, lim[i].field, s, lim[i].limit);
		expect_ok(put("case_note", NOTE_KEY, &r, 1, &e), &e);
		rec_set(&r, lim[i].field, s, lim[i].limit + 1);
		snprintf(need, sizeof need,
			 "case_note.%s: %zu bytes, limit %zu", lim[i].field,
			 lim[i].limit + 1, lim[i].limit);
		expect_err(put("case_note", NOTE_KEY, &r, 1, &e), &e,
			   MSCE_ETOOBIG, need);
		free(s);
	}
}

/* What the store hides: a typed record without its required fields. */
static int has_in(void *ctx, const char *name)
{
	for (const char *const *p = ctx; *p != NULL; p++)
		if (strcmp(*p, name) == 0)
			return 1;
	return 0;
}

static void required_fields_hide(void **state)
{
	(void)state;
	const char *whole[] = {"text", "center", NULL};
	const char *no_text[] = {"center", "author", NULL};
	const char *none[] = {"author", NULL};
	const char *case_whole[] = {"person", "category", "status", "center",
				    NULL};
	char list[64];

	assert_int_equal(schema_missing_required("case_note", 9, has_in, whole,
						 list, sizeof list),
			 0);
	assert_int_equal(schema_missing_required("case_note", 9, has_in,
						 no_text, list, sizeof list),
			 1);
	assert_string_equal(list, "text");
	assert_int_equal(schema_missing_required("case_note", 9, has_in, none,
						 list, sizeof list),
			 2);
	assert_string_equal(list, "text, center");
	assert_int_equal(schema_missing_required("case", 4, has_in, case_whole,
						 list, sizeof list),
			 0);
	assert_int_equal(
	    schema_missing_required("case", 4, has_in, none, list, sizeof list),
	    4);
	assert_int_equal(schema_missing_required("notes", 5, has_in, none, list,
						 sizeof list),
			 0);
}

static void centers(void **state)
{
	(void)state;
	assert_true(schema_center_valid("shekou", 6));
	assert_true(schema_center_valid("shenzhen-bay", 12));
	assert_true(schema_center_valid("a", 1));
	assert_true(schema_center_valid("futian-1", 8));
	assert_false(schema_center_valid("", 0));
	assert_false(schema_center_valid(NULL, 0));
	assert_false(schema_center_valid("1futian", 7));
	assert_false(schema_center_valid("Futian", 6));
	assert_false(schema_center_valid("fu_tian", 7));
	assert_false(schema_center_valid("fu tian", 7));
	char *s = fill(33, 'c');
	assert_true(schema_center_valid(s, 32));
	assert_false(schema_center_valid(s, 33));
	free(s);
}

/* ---- event ---- */

static void event_good_and_required(void **state)
{
	(void)state;
	struct rec r;
	struct err e;

	rec_init(&r, event_good, NELEM(event_good));
	expect_ok(put("event", EVENT_KEY, &r, 1, &e), &e);
	rec_init(&r, event_good, 4);
	expect_ok(put("event", "2024-02-29/qa_1", &r, 1, &e), &e);
	const char *req[] = {"title", "kind", "center", "starts_at"};
	for (size_t i = 0; i < NELEM(req); i++) {
		rec_init(&r, event_good, NELEM(event_good));
		rec_del(&r, req[i]);
		expect_err(put("event", EVENT_KEY, &r, 1, &e), &e, MSCE_EINVAL,
			   req[i]);
		expect_ok(put("event", EVENT_KEY, &r, 0, &e), &e);
	}
}

static void event_key(void **state)
{
	(void)state;
	static const struct {
		const char *key;
		int code;
		const char *needle;
	} cases[] = {
	    {"2024-05-18/a", 0, NULL},
	    {"2024-05-18/Tour_2-B", 0, NULL},
	    {"2024-05-18/", MSCE_EINVAL, "empty id"},
	    {"2024-05-18", MSCE_EINVAL, "no '/'"},
	    {"2024-05-18-tour", MSCE_EINVAL, "no '/'"},
	    {"2023-02-29/tour", MSCE_EINVAL, "date"},
	    {"2024-5-18/tour", MSCE_EINVAL, "no '/'"},
	    {"2024-05-18/tour/2", MSCE_EINVAL, "id has characters"},
	    {"2024-05-18/tour 2", MSCE_EINVAL, "id has characters"},
	    {"2024-05-18/\xE6\xB8\xB8", MSCE_EINVAL, "id has characters"},
	};
	struct rec r;
	struct err e;

	/* Id of exactly 64 characters, then 65. */
	char k64[11 + 66];
	memcpy(k64, "2024-05-18/", 11);
	memset(k64 + 11, 'a', 65);
	k64[11 + 64] = '\0';
	rec_init(&r, event_good, NELEM(event_good));
	expect_ok(put("event", k64, &r, 1, &e), &e);
	k64[11 + 64] = 'a';
	k64[11 + 65] = '\0';
	expect_err(put("event", k64, &r, 1, &e), &e, MSCE_ETOOBIG,
		   "event: key: not <YYYY-MM-DD>/<id>: id over 64");

	for (size_t i = 0; i < NELEM(cases); i++) {
		const char *k = cases[i].key;
		rec_init(&r, event_good, NELEM(event_good));
		int rc = put("event", k, &r, 1, &e);
		if (cases[i].code == 0) {
			expect_ok(rc, &e);
			expect_ok(schema_validate_delete("event", 5, k,
							 strlen(k), &e),
				  &e);
			continue;
		}
		expect_err(rc, &e, cases[i].code, "event: key: ");
		expect_err(rc, &e, cases[i].code, cases[i].needle);
		expect_err(schema_validate_delete("event", 5, k, strlen(k), &e),
			   &e, cases[i].code, "event: key: ");
	}
}

static void event_fields(void **state)
{
	(void)state;
#define V(field, v, want)                                                      \
	EXPECT_FIELD(event_good, "event", EVENT_KEY, field, v, want)
	V("kind", "qa", 0);
	V("kind", "ceremony", 0);
	V("kind", "party", MSCE_EINVAL);
	V("center", "Shekou", MSCE_EINVAL);
	V("starts_at", "2024-05-18 01:30", MSCE_EINVAL);
	V("ends_at", "2024-05-18T25:00:00Z", MSCE_EINVAL);
	V("capacity", "0", 0);
	V("capacity", "100000", 0);
	V("capacity", "100001", MSCE_EINVAL);
	V("capacity", "1000000", MSCE_EINVAL);
	V("capacity", "-1", MSCE_EINVAL);
	V("capacity", "+5", MSCE_EINVAL);
	V("capacity", "007", MSCE_EINVAL);
	V("capacity", "1e3", MSCE_EINVAL);
	V("capacity", " 40", MSCE_EINVAL);
	V("title", "Q&A:\nvisas", MSCE_EINVAL);
	V("location", "pier 3", MSCE_EINVAL);
	/* Order of the two times, same write. */
	V("ends_at", "2024-05-18T01:30:00Z", 0); /* equal is fine */
	V("ends_at", "2024-05-18T01:29:59.999Z", MSCE_EINVAL);
	V("ends_at", "2024-05-17T23:00:00Z", MSCE_EINVAL);
#undef V
	struct rec r;
	struct err e;
	rec_init(&r, NULL, 0);
	rec_set(&r, "starts_at", "2024-05-18T10:00:00.5Z", 22);
	rec_set(&r, "ends_at", "2024-05-18T10:00:00.500Z", 24);
	expect_ok(put("event", EVENT_KEY, &r, 0, &e), &e);
	rec_set(&r, "ends_at", "2024-05-18T10:00:00.25Z", 23);
	expect_err(put("event", EVENT_KEY, &r, 0, &e), &e, MSCE_EINVAL,
		   "event.ends_at: \"2024-05-18T10:00:00.25Z\" is before "
		   "starts_at");
	rec_set(&r, "ends_at", "2024-05-18T10:00:00Z", 20);
	expect_err(put("event", EVENT_KEY, &r, 0, &e), &e, MSCE_EINVAL,
		   "event.ends_at");
	/* Only one of the two in a write: no order check is possible. */
	rec_init(&r, NULL, 0);
	rec_set(&r, "ends_at", "2000-01-01T00:00:00Z", 20);
	expect_ok(put("event", EVENT_KEY, &r, 0, &e), &e);
	/* A cleared end time has no order. */
	rec_set(&r, "starts_at", "2024-05-18T10:00:00Z", 20);
	rec_set(&r, "ends_at", "", 0);
	expect_ok(put("event", EVENT_KEY, &r, 0, &e), &e);
	/* Times with offsets are ordered as instants, not as text. */
	rec_set(&r, "starts_at", "2024-05-18T10:00:00+08:00", 25);
	rec_set(&r, "ends_at", "2024-05-18T03:00:00Z", 20);
	expect_ok(put("event", EVENT_KEY, &r, 0, &e), &e);
	rec_set(&r, "starts_at", "2024-05-18T02:00:00Z", 20);
	rec_set(&r, "ends_at", "2024-05-18T09:00:00+08:00", 25);
	expect_err(put("event", EVENT_KEY, &r, 0, &e), &e, MSCE_EINVAL,
		   "event.ends_at: \"2024-05-18T09:00:00+08:00\" is before "
		   "starts_at");
	/* Description and title limits. */
	char *s = fill(8001, 'd');
	rec_init(&r, event_good, NELEM(event_good));
	rec_set(&r, "description", s, 8000);
	expect_ok(put("event", EVENT_KEY, &r, 1, &e), &e);
	rec_set(&r, "description", s, 8001);
	expect_err(put("event", EVENT_KEY, &r, 1, &e), &e, MSCE_ETOOBIG,
		   "event.description: 8001 bytes, limit 8000");
	rec_init(&r, event_good, NELEM(event_good));
	rec_set(&r, "title", s, 200);
	expect_ok(put("event", EVENT_KEY, &r, 1, &e), &e);
	rec_set(&r, "title", s, 201);
	expect_err(put("event", EVENT_KEY, &r, 1, &e), &e, MSCE_ETOOBIG,
		   "event.title: 201 bytes, limit 200");
	free(s);
}

/* ---- other collections, counts, duplicates, deletes ---- */

static void other_collections(void **state)
{
	(void)state;
	struct rec r;
	struct err e;
	uint8_t *big = calloc(MSCE_MAX_VALUE + 1, 1);
	char names[MAXF][16];

	assert_non_null(big);
	/* Limits only: any field name, any bytes. */
	rec_init(&r, NULL, 0);
	rec_set(&r, "anything", "\x00\xFF\xC0\x80", 4);
	rec_set(&r, "birth_date", "not a date", 10);
	expect_ok(put("notes", "any key", &r, 1, &e), &e);
	rec_init(&r, NULL, 0);
	expect_ok(put("notes", "k", &r, 1, &e), &e);
	r.f[0] = (struct schema_field){"v", 1, big, MSCE_MAX_VALUE};
	r.n = 1;
	expect_ok(put("notes", "k", &r, 1, &e), &e);
	r.f[0].value_len = MSCE_MAX_VALUE + 1;
	expect_err(put("notes", "k", &r, 1, &e), &e, MSCE_ETOOBIG,
		   "notes.v: value 65537 bytes, limit 65536");
	/* Field names still checked, with the collection named. */
	r.f[0] = (struct schema_field)FLD("bad\x01name", "x");
	expect_err(put("notes", "k", &r, 1, &e), &e, MSCE_EINVAL,
		   "notes: field name: control character");
	char *longname = fill(300, 'n');
	r.f[0] = (struct schema_field){longname, 300, big, 1};
	expect_err(put("notes", "k", &r, 1, &e), &e, MSCE_ETOOBIG,
		   "notes: field name: 300 bytes, limit 128");
	free(longname);
	/* Field count: 256 fine, 257 over. */
	rec_init(&r, NULL, 0);
	for (int i = 0; i <= MSCE_MAX_FIELDS; i++) {
		snprintf(names[i], sizeof names[i], "f%d", i);
		r.f[i] =
		    (struct schema_field){names[i], strlen(names[i]), big, 1};
	}
	r.n = MSCE_MAX_FIELDS;
	expect_ok(put("notes", "k", &r, 1, &e), &e);
	r.n = MSCE_MAX_FIELDS + 1;
	expect_err(put("notes", "k", &r, 1, &e), &e, MSCE_ETOOBIG,
		   "notes: 257 fields in one write, limit 256");
	/* The same field twice in one write. */
	rec_init(&r, NULL, 0);
	r.f[0] = (struct schema_field)FLD("a", "1");
	r.f[1] = (struct schema_field)FLD("b", "2");
	r.f[2] = (struct schema_field)FLD("a", "3");
	r.n = 3;
	expect_err(put("notes", "k", &r, 1, &e), &e, MSCE_EINVAL,
		   "notes.a: field given twice");
	rec_init(&r, reg_good, NELEM(reg_good));
	r.f[r.n++] = reg_good[0];
	expect_err(put("registration", REG_KEY, &r, 1, &e), &e, MSCE_EINVAL,
		   "registration.name: field given twice");
	/* Bad collection or key on a put. */
	rec_init(&r, NULL, 0);
	expect_err(put("_system", "k", &r, 1, &e), &e, MSCE_EINVAL,
		   "collection");
	expect_err(put("Notes", "k", &r, 1, &e), &e, MSCE_EINVAL, "collection");
	expect_err(put("notes", "", &r, 1, &e), &e, MSCE_EINVAL,
		   "notes: key: empty");
	free(big);
}

static void deletes(void **state)
{
	(void)state;
	struct err e;

	expect_ok(schema_validate_delete("notes", 5, "any key", 7, &e), &e);
	expect_ok(schema_validate_delete("registration", 12, REG_KEY,
					 strlen(REG_KEY), &e),
		  &e);
	expect_ok(schema_validate_delete("case", 4, "x", 1, &e), &e);
	expect_err(schema_validate_delete("_meta", 5, "k", 1, &e), &e,
		   MSCE_EINVAL, "reserved for the system");
	expect_err(schema_validate_delete("notes", 5, "a\nb", 3, &e), &e,
		   MSCE_EINVAL, "notes: key: control character");
	expect_err(schema_validate_delete("notes", 5, "\xC0\xAF", 2, &e), &e,
		   MSCE_EINVAL, "notes: key: not valid UTF-8");
	expect_err(schema_validate_delete("registration", 12, "Erika", 5, &e),
		   &e, MSCE_EINVAL, "registration: key");
}

static void countries(void **state)
{
	(void)state;
	char code[4] = {0};
	int n = 0;

	/* Every three-letter string: exactly the 249 assigned codes, which
	 * also shows the table is sorted (bsearch finds each one). */
	for (char a = 'A'; a <= 'Z'; a++)
		for (char b = 'A'; b <= 'Z'; b++)
			for (char c = 'A'; c <= 'Z'; c++) {
				code[0] = a;
				code[1] = b;
				code[2] = c;
				n += schema_country_valid(code, 3);
			}
	assert_int_equal(n, 249);
	const char *yes[] = {"ABW", "ZWE", "CHN", "HKG", "MAC",
			     "TWN", "USA", "GBR", "DEU", "SSD"};
	for (size_t i = 0; i < NELEM(yes); i++)
		assert_true(schema_country_valid(yes[i], 3));
	/* Not ISO 3166-1: Kosovo's user-assigned code, ICAO-only codes. */
	assert_false(schema_country_valid("XKX", 3));
	assert_false(schema_country_valid("XXA", 3));
	assert_false(schema_country_valid("UNO", 3));
	assert_false(schema_country_valid("GBD", 3));
	assert_false(schema_country_valid("chn", 3));
	assert_false(schema_country_valid("CHNA", 4));
	assert_false(schema_country_valid("CH", 2));
}

/* Values in messages are quoted, escaped and cut, so a hostile value cannot
 * forge log lines or flood them. */
static void message_quoting(void **state)
{
	(void)state;
	struct rec r;
	struct err e;
	char *s = fill(150, 'z');

	rec_init(&r, reg_good, NELEM(reg_good));
	rec_set(&r, "district", "x\"\\\x01y", 5);
	expect_err(put("registration", REG_KEY, &r, 1, &e), &e, MSCE_EINVAL,
		   "\"x\\\"\\\\\\x01y\"");
	rec_set(&r, "district", s, 150);
	expect_err(put("registration", REG_KEY, &r, 1, &e), &e, MSCE_EINVAL,
		   "zzz\"...");
	assert_true(strlen(e.msg) < 200);
	rec_set(&r, "district", "\xE5\x8D\x97\xE5\xB1\xB1", 6);
	expect_err(put("registration", REG_KEY, &r, 1, &e), &e, MSCE_EINVAL,
		   "\"\xE5\x8D\x97\xE5\xB1\xB1\"");
	assert_true(schema_utf8_valid((const uint8_t *)e.msg, strlen(e.msg)));
	expect_err(schema_check_key("a\xFF\x0A", 3, &e), &e, MSCE_EINVAL,
		   "\"a\\xFF\\x0A\"");
	free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(utf8_validity),
	    cmocka_unit_test(text_every_byte_in_every_lane),
	    cmocka_unit_test(collection_names),
	    cmocka_unit_test(keys),
	    cmocka_unit_test(field_names_and_values),
	    cmocka_unit_test(registration_good),
	    cmocka_unit_test(registration_required_on_create),
	    cmocka_unit_test(registration_key),
	    cmocka_unit_test(registration_key_match),
	    cmocka_unit_test(registration_fields),
	    cmocka_unit_test(dates),
	    cmocka_unit_test(timestamps),
	    cmocka_unit_test(timestamps_with_offsets),
	    cmocka_unit_test(time_fields_to_utc),
	    cmocka_unit_test(phones),
	    cmocka_unit_test(emails),
	    cmocka_unit_test(registration_limits),
	    cmocka_unit_test(invalid_utf8_in_text),
	    cmocka_unit_test(case_good_and_required),
	    cmocka_unit_test(case_fields),
	    cmocka_unit_test(case_limits),
	    cmocka_unit_test(case_note_good_and_required),
	    cmocka_unit_test(case_note_key),
	    cmocka_unit_test(case_note_fields),
	    cmocka_unit_test(required_fields_hide),
	    cmocka_unit_test(centers),
	    cmocka_unit_test(event_good_and_required),
	    cmocka_unit_test(event_key),
	    cmocka_unit_test(event_fields),
	    cmocka_unit_test(other_collections),
	    cmocka_unit_test(deletes),
	    cmocka_unit_test(countries),
	    cmocka_unit_test(message_quoting),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
