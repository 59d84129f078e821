/* SPDX-License-Identifier: Apache-2.0 */
/* Personal data (issue 15), the parts below the API: purposes, masking,
 * retention rules and the [retention] config section, and the store's
 * writes for audit entries (system collection, stamped keys, a list of
 * exactly what committed, never refused alone). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "config.h"
#include "hlc.h"
#include "mask.h"
#include "purpose.h"
#include "retention.h"
#include "storeutil.h"

#define T0 1700000000000ull

/* ---- purposes and masking ---------------------------------------------- */

static void purposes(void **state)
{
	(void)state;
	const char *good[] = {"service",	 "case-work",	   "verification",
			      "legal-request", "subject-access", "maintenance"};
	for (size_t i = 0; i < 6; i++)
		assert_true(purpose_valid(good[i]));
	assert_false(purpose_valid(""));
	assert_false(purpose_valid(NULL));
	assert_false(purpose_valid("admin")); /* recorded, never given */
	assert_false(purpose_valid("Service"));
	assert_false(purpose_valid("service "));
	for (size_t i = 0; i < 6; i++)
		assert_non_null(strstr(PURPOSE_LIST, good[i]));
}

static void masking(void **state)
{
	(void)state;
	char m[MASK_BUF];

	mask_docnum("GL1012345601", 12, m);
	assert_string_equal(m, "GL10****01");
	mask_docnum("C01X00T47", 9, m);
	assert_string_equal(m, "C01X****47");
	mask_docnum("X1234", 5, m); /* short: one each side */
	assert_string_equal(m, "X****4");
	mask_docnum("ABCD", 4, m); /* shorter: nothing shown */
	assert_string_equal(m, "****");
	mask_docnum("N1", 2, m);
	assert_string_equal(m, "****");
	/* The country code and the last two digits. */
	mask_phone("+8613800000001", 14, m);
	assert_string_equal(m, "+86****01");
	mask_phone("+14155550123", 12, m);
	assert_string_equal(m, "+1****23");
	mask_phone("+85291234567", 12, m); /* 852: three digits */
	assert_string_equal(m, "+852****67");
	mask_phone("+8612", 5, m); /* too short: as a document number */
	assert_string_equal(m, "+****2");
	mask_regkey("FRA:GL1012345601", 16, m);
	assert_string_equal(m, "FRA:GL10****01");

	/* Which fields and keys are masked. */
	assert_string_equal(mask_value("registration", "phone",
				       "+8613800000001", 14, m),
			    "+86****01");
	assert_string_equal(mask_value("registration", "document_number",
				       "GL1012345601", 12, m),
			    "GL10****01");
	assert_string_equal(mask_value("case", "person", "FRA:GL1012345601",
				       16, m),
			    "FRA:GL10****01");
	assert_string_equal(mask_value("registration", "name", "Ann Lee", 7,
				       m),
			    "Ann Lee");
	assert_string_equal(mask_value("t", "phone", "+8613800000001", 14, m),
			    "+8613800000001");
	assert_string_equal(mask_key("registration", "DEU:C01X00T47", m),
			    "DEU:C01X****47");
	assert_string_equal(mask_key("case", "DEU:C01X00T47", m),
			    "DEU:C01X00T47");
}

/* ---- retention rules ----------------------------------------------------- */

static void retention_rules(void **state)
{
	(void)state;
	struct retention_rule r;
	struct err e;

	assert_int_equal(retention_parse("registration", "visa_expiry+5y", &r,
					 &e),
			 0);
	assert_int_equal(r.anchor, RETENTION_VISA_EXPIRY);
	assert_int_equal(r.count, 5);
	assert_int_equal(r.unit, 'y');
	assert_int_equal(retention_parse("case", " closed + 36m ", &r, &e), 0);
	assert_int_equal(r.anchor, RETENTION_CLOSED);
	assert_string_equal(r.text, "closed+36m");
	assert_int_equal(retention_parse("case", "closed+0d", &r, &e), 0);

	assert_int_equal(retention_parse("case", "visa_expiry+5y", &r, &e),
			 MSCE_EINVAL);
	assert_non_null(strstr(e.msg, "starts with closed"));
	assert_int_equal(retention_parse("registration", "visa_expiry+5", &r,
					 &e),
			 MSCE_EINVAL);
	assert_non_null(strstr(e.msg, "no period"));
	assert_int_equal(retention_parse("registration", "visa_expiry 5y", &r,
					 &e),
			 MSCE_EINVAL);
	assert_int_equal(retention_parse("registration", "visa_expiry+201y",
					 &r, &e),
			 MSCE_EINVAL);
	assert_int_equal(retention_parse("registration", "visa_expiry+5y x",
					 &r, &e),
			 MSCE_EINVAL);
	assert_int_equal(retention_parse("event", "closed+1y", &r, &e),
			 MSCE_EINVAL);
	assert_non_null(strstr(e.msg, "no retention rule"));
}

static uint64_t ms_of(int y, int m, int d)
{
	struct tm tm = {0};
	tm.tm_year = y - 1900;
	tm.tm_mon = m - 1;
	tm.tm_mday = d;
	return (uint64_t)timegm(&tm) * 1000;
}

static void retention_cutoffs(void **state)
{
	(void)state;
	struct retention_rule r;
	char date[11];
	uint64_t ms;

	assert_int_equal(retention_parse("registration", "visa_expiry+5y", &r,
					 NULL),
			 0);
	retention_cutoff(&r, ms_of(2026, 4, 5) + 3600000, date, &ms);
	assert_string_equal(date, "2021-04-05");
	assert_int_equal(ms, ms_of(2021, 4, 5) + 3600000);
	/* A leap day goes back to the last day of February. */
	retention_cutoff(&r, ms_of(2024, 2, 29), date, &ms);
	assert_string_equal(date, "2019-02-28");
	assert_int_equal(retention_parse("case", "closed+1m", &r, NULL), 0);
	retention_cutoff(&r, ms_of(2026, 3, 31), date, &ms);
	assert_string_equal(date, "2026-02-28");
	retention_cutoff(&r, ms_of(2026, 1, 15), date, &ms);
	assert_string_equal(date, "2025-12-15");
	assert_int_equal(retention_parse("case", "closed+10d", &r, NULL), 0);
	retention_cutoff(&r, ms_of(2026, 3, 5), date, &ms);
	assert_string_equal(date, "2026-02-23");
	assert_int_equal(ms, ms_of(2026, 2, 23));
}

static void retention_config(void **state)
{
	(void)state;
	static const char base[] = "[cluster]\nname = c\n[node]\nid = 1\n"
				   "name = a\ndata_dir = /d\nkey = /k\n"
				   "listen = 127.0.0.1:1\n";
	char text[1024];
	struct config cfg;
	struct err e;

	assert_int_equal(config_parse_string(base, "n.conf", &cfg, &e), 0);
	assert_int_equal(cfg.retention_registration.anchor, RETENTION_NONE);
	assert_int_equal(cfg.retention_case.anchor, RETENTION_NONE);
	config_free(&cfg);

	snprintf(text, sizeof text,
		 "%s[retention]\nregistration = visa_expiry + 5y\n"
		 "case = closed+3y\n",
		 base);
	assert_int_equal(config_parse_string(text, "n.conf", &cfg, &e), 0);
	assert_string_equal(cfg.retention_registration.text,
			    "visa_expiry+5y");
	assert_string_equal(cfg.retention_case.text, "closed+3y");
	config_free(&cfg);

	snprintf(text, sizeof text, "%s[retention]\ncase = closed+3 years\n",
		 base);
	assert_int_equal(config_parse_string(text, "n.conf", &cfg, &e),
			 MSCE_ECONFIG);
	assert_non_null(strstr(e.msg, "n.conf:10: [retention] case:"));
	snprintf(text, sizeof text, "%s[retention]\nevent = closed+3y\n", base);
	assert_int_equal(config_parse_string(text, "n.conf", &cfg, &e),
			 MSCE_ECONFIG);
	assert_non_null(strstr(e.msg, "unknown setting"));
	snprintf(text, sizeof text,
		 "%s[retention]\ncase = closed+3y\n[retention]\n", base);
	assert_int_equal(config_parse_string(text, "n.conf", &cfg, &e),
			 MSCE_ECONFIG);
	assert_non_null(strstr(e.msg, "appears twice"));
}

/* ---- the store's audit writes -------------------------------------------- */

static struct store *open_store(const char *dir)
{
	struct store_options o = {.node_id = 1, .cluster = "test"};
	struct store *s;
	struct err e;
	assert_int_equal(store_open(dir, &o, &s, &e), 0);
	su_writer(s);
	return s;
}

static struct store_field_in fin(const char *name, const char *value)
{
	return (struct store_field_in){name, strlen(name),
				       (const uint8_t *)value, strlen(value),
				       0, {0, 0}};
}

static struct store_write wr(int op, const char *coll, const char *key,
			     const struct store_field_in *f, size_t n)
{
	return (struct store_write){.op = op,
				    .coll = coll,
				    .coll_len = strlen(coll),
				    .key = key,
				    .key_len = strlen(key),
				    .fields = f,
				    .nfields = n};
}

struct keys {
	char key[8][64];
	char records[8][512];
	int n;
};

static int audit_cb(void *ctx, const struct store_record_view *v)
{
	struct keys *k = ctx;
	const struct field_state *f =
		record_field(v->rec, (const uint8_t *)"records", 7);
	snprintf(k->key[k->n], sizeof k->key[0], "%.*s", (int)v->key_len,
		 v->key);
	snprintf(k->records[k->n], sizeof k->records[0], "%.*s",
		 f ? (int)f->w.value_len : 0, f ? (const char *)f->w.value : "");
	k->n++;
	return 0;
}

static void audit_entries(struct store *s, struct keys *k)
{
	struct store_scan q = {.coll = "_audit", .coll_len = 6};
	memset(k, 0, sizeof *k);
	assert_int_equal(store_scan(s, &q, audit_cb, k, NULL), 0);
}

static void store_audit_writes(void **state)
{
	(void)state;
	char *dir = tu_tmpdir();
	struct store *s = open_store(dir);
	struct store_field_in reg[4] = {
		fin("name", "Ann Lee"), fin("nationality", "FRA"),
		fin("document_type", "passport"),
		fin("document_number", "GL1012345601")};
	struct store_field_in bad = fin("birth_date", "1990-13-01");
	struct store_field_in who = fin("op", "put");
	struct store_field_in who2 = fin("op", "delete");
	struct store_field_in t = fin("v", "1");
	struct store_written out[8];
	struct keys k;
	struct err e;
	char want[64];

	/* Clients' writes to a system collection are refused. */
	struct store_write w[6] = {wr(STORE_PUT, "_audit", "x", &who, 1)};
	assert_int_equal(store_write(s, w, 1, T0, out, &e), 0);
	assert_int_equal(out[0].err.code, MSCE_EINVAL);

	/* A listed write that commits, one refused (a bad date), one not
	 * listed (t is no personal collection), then the entry: it names
	 * exactly the first. */
	w[0] = wr(STORE_PUT | STORE_W_LISTED, "registration",
		  "FRA:GL1012345601", reg, 4);
	w[1] = wr(STORE_PUT | STORE_W_LISTED, "registration",
		  "FRA:GL1012345601", &bad, 1);
	w[2] = wr(STORE_PUT, "t", "k", &t, 1);
	w[3] = wr(STORE_PUT | STORE_W_SYSTEM | STORE_W_STAMP | STORE_W_LIST,
		  "_audit", "", &who, 1);
	/* A second run by someone else: nothing of it commits, so its
	 * entry is skipped. */
	w[4] = wr(STORE_PUT | STORE_W_LISTED, "registration", "FRA:Q1", &bad,
		  1);
	w[5] = wr(STORE_PUT | STORE_W_SYSTEM | STORE_W_STAMP | STORE_W_LIST,
		  "_audit", "", &who2, 1);
	assert_int_equal(store_write(s, w, 6, T0, out, &e), 0);
	assert_int_equal(out[0].err.code, 0);
	assert_int_equal(out[1].err.code, MSCE_EINVAL);
	assert_int_equal(out[2].err.code, 0);
	assert_int_equal(out[3].err.code, 0);
	assert_int_equal(out[4].err.code, MSCE_EINVAL);
	assert_int_equal(out[5].err.code, MSCE_ENOTFOUND);
	audit_entries(s, &k);
	assert_int_equal(k.n, 1);
	/* The key is the entry's own change: its hlc, 20 digits, and the
	 * writer; later than the write it records. */
	snprintf(want, sizeof want, "%020llu/%u",
		 (unsigned long long)out[3].hlc, out[3].origin);
	assert_string_equal(k.key[0], want);
	assert_true(out[3].hlc > out[0].hlc);
	assert_string_equal(k.records[0], "registration/FRA:GL1012345601\n");

	/* Entries alike (one client's requests in one group commit) make
	 * one entry listing them all; a different one stays apart. */
	w[0] = wr(STORE_PUT | STORE_W_LISTED, "t", "a", &t, 1);
	w[1] = wr(STORE_PUT | STORE_W_SYSTEM | STORE_W_STAMP | STORE_W_LIST,
		  "_audit", "", &who, 1);
	w[2] = wr(STORE_PUT | STORE_W_LISTED, "t", "b", &t, 1);
	w[3] = w[1];
	w[4] = wr(STORE_DELETE | STORE_W_LISTED, "t", "a", NULL, 0);
	w[5] = wr(STORE_PUT | STORE_W_SYSTEM | STORE_W_STAMP | STORE_W_LIST,
		  "_audit", "", &who2, 1);
	assert_int_equal(store_write(s, w, 6, T0, out, &e), 0);
	for (int i = 0; i < 6; i += 2)
		assert_int_equal(out[i].err.code, 0);
	assert_int_equal(out[1].err.code, MSCE_ENOTFOUND);
	assert_int_equal(out[3].err.code, 0);
	assert_int_equal(out[5].err.code, 0);
	audit_entries(s, &k);
	assert_int_equal(k.n, 3);
	assert_string_equal(k.records[1], "t/a\nt/b\n");
	assert_string_equal(k.records[2], "t/a\n");

	/* Keys are in time order, one per entry. */
	w[0] = wr(STORE_PUT | STORE_W_SYSTEM | STORE_W_STAMP, "_audit", "",
		  &who, 1);
	w[1] = w[0];
	assert_int_equal(store_write(s, w, 2, T0 - 5000, out, &e), 0);
	audit_entries(s, &k);
	assert_int_equal(k.n, 5);
	for (int i = 1; i < k.n; i++)
		assert_true(strcmp(k.key[i - 1], k.key[i]) < 0);

	/* The node's own write is never refused alone: the whole batch
	 * fails and nothing of it commits. */
	static char big[MSCE_MAX_VALUE + 2];
	memset(big, 'x', sizeof big - 1);
	struct store_field_in huge = fin("records", big);
	uint64_t before = store_vv_get(s, 1).seq;
	w[0] = wr(STORE_PUT | STORE_W_LISTED, "t", "k2", &t, 1);
	w[1] = wr(STORE_PUT | STORE_W_SYSTEM | STORE_W_STAMP, "_audit", "",
		  &huge, 1);
	assert_int_equal(store_write(s, w, 2, T0, out, &e), MSCE_ETOOBIG);
	assert_int_equal(store_vv_get(s, 1).seq, before);
	assert_null(su_get(s, "t", "k2", "v"));

	store_close(s);
	tu_rmrf(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(purposes),
	    cmocka_unit_test(masking),
	    cmocka_unit_test(retention_rules),
	    cmocka_unit_test(retention_cutoffs),
	    cmocka_unit_test(retention_config),
	    cmocka_unit_test(store_audit_writes),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
