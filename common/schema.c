/* SPDX-License-Identifier: Apache-2.0 */
/* Name and domain validation. Table-driven: each domain collection is a list
 * of field specs (type, byte limit, required); a write is checked field by
 * field, then across fields (key match, time order), then for required
 * fields when it creates the record. Messages quote values cut to QMAX bytes
 * with anything unprintable escaped, so a hostile value cannot garble logs. */
#include "schema.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define QMAX 48		    /* bytes of a value shown in a message */
#define QBUF (QMAX * 4 + 8) /* worst case: every byte as \xNN */
/* "collection.field" in errors, formatted only when there is one. */
#define FIELD_FMT "%s.%.*s"
#define FIELD_ARGS(cname, f) (cname), (int)(f)->name_len, (f)->name
#define DOCNUM_MAX 32
#define EVENT_ID_MAX 64
#define CAPACITY_MAX 100000

/* ISO 3166-1 alpha-3, the 249 officially assigned codes (iso-codes 4.15),
 * sorted for bsearch. ICAO-only passport codes (D, GBD, UNO, XXA, ...) are
 * not here: the key uses ISO nationality, front ends map MRZ codes. */
/* clang-format off */
static const char countries[][4] = {
	"ABW", "AFG", "AGO", "AIA", "ALA", "ALB", "AND", "ARE", "ARG", "ARM",
	"ASM", "ATA", "ATF", "ATG", "AUS", "AUT", "AZE", "BDI", "BEL", "BEN",
	"BES", "BFA", "BGD", "BGR", "BHR", "BHS", "BIH", "BLM", "BLR", "BLZ",
	"BMU", "BOL", "BRA", "BRB", "BRN", "BTN", "BVT", "BWA", "CAF", "CAN",
	"CCK", "CHE", "CHL", "CHN", "CIV", "CMR", "COD", "COG", "COK", "COL",
	"COM", "CPV", "CRI", "CUB", "CUW", "CXR", "CYM", "CYP", "CZE", "DEU",
	"DJI", "DMA", "DNK", "DOM", "DZA", "ECU", "EGY", "ERI", "ESH", "ESP",
	"EST", "ETH", "FIN", "FJI", "FLK", "FRA", "FRO", "FSM", "GAB", "GBR",
	"GEO", "GGY", "GHA", "GIB", "GIN", "GLP", "GMB", "GNB", "GNQ", "GRC",
	"GRD", "GRL", "GTM", "GUF", "GUM", "GUY", "HKG", "HMD", "HND", "HRV",
	"HTI", "HUN", "IDN", "IMN", "IND", "IOT", "IRL", "IRN", "IRQ", "ISL",
	"ISR", "ITA", "JAM", "JEY", "JOR", "JPN", "KAZ", "KEN", "KGZ", "KHM",
	"KIR", "KNA", "KOR", "KWT", "LAO", "LBN", "LBR", "LBY", "LCA", "LIE",
	"LKA", "LSO", "LTU", "LUX", "LVA", "MAC", "MAF", "MAR", "MCO", "MDA",
	"MDG", "MDV", "MEX", "MHL", "MKD", "MLI", "MLT", "MMR", "MNE", "MNG",
	"MNP", "MOZ", "MRT", "MSR", "MTQ", "MUS", "MWI", "MYS", "MYT", "NAM",
	"NCL", "NER", "NFK", "NGA", "NIC", "NIU", "NLD", "NOR", "NPL", "NRU",
	"NZL", "OMN", "PAK", "PAN", "PCN", "PER", "PHL", "PLW", "PNG", "POL",
	"PRI", "PRK", "PRT", "PRY", "PSE", "PYF", "QAT", "REU", "ROU", "RUS",
	"RWA", "SAU", "SDN", "SEN", "SGP", "SGS", "SHN", "SJM", "SLB", "SLE",
	"SLV", "SMR", "SOM", "SPM", "SRB", "SSD", "STP", "SUR", "SVK", "SVN",
	"SWE", "SWZ", "SXM", "SYC", "SYR", "TCA", "TCD", "TGO", "THA", "TJK",
	"TKL", "TKM", "TLS", "TON", "TTO", "TUN", "TUR", "TUV", "TWN", "TZA",
	"UGA", "UKR", "UMI", "URY", "USA", "UZB", "VAT", "VCT", "VEN", "VGB",
	"VIR", "VNM", "VUT", "WLF", "WSM", "YEM", "ZAF", "ZMB", "ZWE",
};
/* clang-format on */

/* ---- UTF-8 and text ---- */

/* Length of the valid UTF-8 sequence at s, or 0. The second-byte ranges
 * exclude overlongs (E0, F0), surrogates (ED) and > U+10FFFF (F4). */
static size_t utf8_next(const uint8_t *s, size_t len, uint32_t *cp)
{
	uint8_t b = s[0], lo = 0x80, hi = 0xBF;
	uint32_t c;
	size_t n;

	if (b < 0x80) {
		*cp = b;
		return 1;
	}
	if (b >= 0xC2 && b <= 0xDF) {
		n = 2;
		c = b & 0x1F;
	} else if (b >= 0xE0 && b <= 0xEF) {
		n = 3;
		c = b & 0x0F;
		if (b == 0xE0)
			lo = 0xA0;
		else if (b == 0xED)
			hi = 0x9F;
	} else if (b >= 0xF0 && b <= 0xF4) {
		n = 4;
		c = b & 0x07;
		if (b == 0xF0)
			lo = 0x90;
		else if (b == 0xF4)
			hi = 0x8F;
	} else {
		return 0;
	}
	if (len < n || s[1] < lo || s[1] > hi)
		return 0;
	c = (c << 6) | (s[1] & 0x3F);
	for (size_t i = 2; i < n; i++) {
		if ((s[i] & 0xC0) != 0x80)
			return 0;
		c = (c << 6) | (s[i] & 0x3F);
	}
	*cp = c;
	return n;
}

/* Unicode Cc: C0 (with NUL), DEL, C1. */
static int is_control(uint32_t cp)
{
	return cp < 0x20 || (cp >= 0x7F && cp <= 0x9F);
}

int schema_utf8_valid(const uint8_t *s, size_t len)
{
	uint32_t cp;

	for (size_t i = 0; i < len;) {
		size_t n = utf8_next(s + i, len - i, &cp);
		if (n == 0)
			return 0;
		i += n;
	}
	return 1;
}

enum { TEXT_OK, TEXT_BAD_UTF8, TEXT_CONTROL };

/* 1 if all eight bytes are printable ASCII (0x20..0x7E). Each test is
 * exact as a yes/no for the word: a byte >= 0x80, a byte < 0x20, a byte
 * equal to 0x7F. */
static int printable8(const uint8_t *p)
{
	const uint64_t ones = 0x0101010101010101u, high = 0x8080808080808080u;
	uint64_t v, del;

	memcpy(&v, p, 8);
	del = v ^ (0x7F * ones);
	return ((v | ((v - 0x20 * ones) & ~v) | ((del - ones) & ~del)) &
		high) == 0;
}

/* Valid UTF-8 without control characters; multi-line text may also hold
 * tab, LF and CR. *at gets the offset of the first bad byte. */
static int scan_text(const uint8_t *s, size_t len, int multi, size_t *at,
		     uint32_t *bad)
{
	uint32_t cp;

	for (size_t i = 0; i < len;) {
		/* Printable ASCII is most text: eight bytes at a time, then
		 * one compare per byte. */
		if (len - i >= 8 && printable8(s + i)) {
			i += 8;
			continue;
		}
		if (s[i] >= 0x20 && s[i] < 0x7F) {
			i++;
			continue;
		}
		size_t n = utf8_next(s + i, len - i, &cp);
		*at = i;
		if (n == 0)
			return TEXT_BAD_UTF8;
		if (is_control(cp) &&
		    !(multi && (cp == '\t' || cp == '\n' || cp == '\r'))) {
			*bad = cp;
			return TEXT_CONTROL;
		}
		i += n;
	}
	return TEXT_OK;
}

/* "value" cut to QMAX bytes; unprintable bytes and characters as \xNN. */
static const char *quote(char *out, const void *p, size_t len)
{
	const uint8_t *s = p;
	size_t o = 0, i = 0;

	out[o++] = '"';
	while (i < len) {
		uint32_t cp = 0;
		size_t n = utf8_next(s + i, len - i, &cp);
		int esc = n == 0 || is_control(cp);
		if (esc)
			n = 1;
		if (i + n > QMAX)
			break;
		if (esc) {
			snprintf(out + o, QBUF - o, "\\x%02X", s[i]);
			o += 4;
		} else if (cp == '"' || cp == '\\') {
			out[o++] = '\\';
			out[o++] = (char)cp;
		} else {
			memcpy(out + o, s + i, n);
			o += n;
		}
		i += n;
	}
	out[o++] = '"';
	if (i < len) {
		memcpy(out + o, "...", 3);
		o += 3;
	}
	out[o] = '\0';
	return out;
}

/* Shared text check for names (what = "key", "field name", ...). */
static int check_name(const char *what, const char *s, size_t len, size_t max,
		      struct err *e)
{
	char q[QBUF];
	size_t at = 0;
	uint32_t bad = 0;

	if (len == 0)
		return err_set(e, MSCE_EINVAL, "%s: empty", what);
	if (len > max)
		return err_set(e, MSCE_ETOOBIG, "%s: %zu bytes, limit %zu",
			       what, len, max);
	if (s == NULL)
		return err_set(e, MSCE_EINVAL, "%s: missing", what);
	switch (scan_text((const uint8_t *)s, len, 0, &at, &bad)) {
	case TEXT_BAD_UTF8:
		return err_set(e, MSCE_EINVAL,
			       "%s: not valid UTF-8 at byte %zu: %s", what, at,
			       quote(q, s, len));
	case TEXT_CONTROL:
		return err_set(e, MSCE_EINVAL,
			       "%s: control character U+%04X at byte %zu: %s",
			       what, (unsigned)bad, at, quote(q, s, len));
	}
	return 0;
}

/* ---- names ---- */

int schema_check_collection(const char *coll, size_t len, int allow_system,
			    struct err *e)
{
	char q[QBUF];

	if (len == 0)
		return err_set(e, MSCE_EINVAL, "collection: empty");
	if (len > MSCE_MAX_COLLECTION)
		return err_set(e, MSCE_ETOOBIG,
			       "collection: %zu bytes, limit %d", len,
			       MSCE_MAX_COLLECTION);
	if (coll == NULL)
		return err_set(e, MSCE_EINVAL, "collection: missing");
	if (coll[0] == '_' && !allow_system)
		return err_set(e, MSCE_EINVAL,
			       "collection: %s: names starting with '_' are "
			       "reserved for the system",
			       quote(q, coll, len));
	if (!(coll[0] >= 'a' && coll[0] <= 'z') && coll[0] != '_')
		return err_set(e, MSCE_EINVAL,
			       "collection: %s: must start with a lower-case "
			       "letter ([a-z][a-z0-9_]{0,31})",
			       quote(q, coll, len));
	for (size_t i = 1; i < len; i++) {
		char c = coll[i];
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		      c == '_'))
			return err_set(e, MSCE_EINVAL,
				       "collection: %s: character at byte %zu "
				       "not allowed ([a-z][a-z0-9_]{0,31})",
				       quote(q, coll, len), i);
	}
	return 0;
}

int schema_check_key(const char *key, size_t len, struct err *e)
{
	return check_name("key", key, len, MSCE_MAX_KEY, e);
}

/* coll (validated, NUL-terminated) or NULL prefixes value errors. */
static int check_field_in(const struct schema_field *f, const char *coll,
			  struct err *e)
{
	int rc = check_name("field name", f->name, f->name_len,
			    MSCE_MAX_FIELD_NAME, e);
	if (rc) {
		if (coll)
			err_wrap(e, "%s", coll);
		return rc;
	}
	if (f->value_len > MSCE_MAX_VALUE)
		return err_set(e, MSCE_ETOOBIG,
			       "%s%s%.*s: value %zu bytes, "
			       "limit %d",
			       coll ? coll : "", coll ? "." : "",
			       (int)f->name_len, f->name, f->value_len,
			       MSCE_MAX_VALUE);
	if (f->value == NULL && f->value_len > 0)
		return err_set(e, MSCE_EINVAL, "%s%s%.*s: value missing",
			       coll ? coll : "", coll ? "." : "",
			       (int)f->name_len, f->name);
	return 0;
}

int schema_check_field(const struct schema_field *f, struct err *e)
{
	if (f == NULL)
		return err_set(e, MSCE_EINVAL, "field: missing");
	return check_field_in(f, NULL, e);
}

/* ---- formats ---- */

static int is_digit(char c)
{
	return c >= '0' && c <= '9';
}
static int is_upper(char c)
{
	return c >= 'A' && c <= 'Z';
}
static int is_lower(char c)
{
	return c >= 'a' && c <= 'z';
}
static int is_alnum(char c)
{
	return is_digit(c) || is_upper(c) || is_lower(c);
}

static int digits(const char *s, size_t n)
{
	int v = 0;

	for (size_t i = 0; i < n; i++) {
		if (!is_digit(s[i]))
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	return v;
}

static int cmp3(const void *a, const void *b)
{
	return memcmp(a, b, 3);
}

int schema_country_valid(const char *s, size_t len)
{
	if (s == NULL || len != 3)
		return 0;
	return bsearch(s, countries, sizeof countries / sizeof countries[0],
		       sizeof countries[0], cmp3) != NULL;
}

int schema_date_valid(const char *s, size_t len)
{
	static const int mdays[] = {31, 28, 31, 30, 31, 30,
				    31, 31, 30, 31, 30, 31};
	int y, m, d, max;

	if (s == NULL || len != 10 || s[4] != '-' || s[7] != '-')
		return 0;
	y = digits(s, 4);
	m = digits(s + 5, 2);
	d = digits(s + 8, 2);
	if (y < 1 || m < 1 || m > 12 || d < 1)
		return 0;
	max = mdays[m - 1];
	if (m == 2 && y % 4 == 0 && (y % 100 != 0 || y % 400 == 0))
		max = 29;
	return d <= max;
}

/* Leap second 60 is refused: our clocks never produce it, and it would
 * sort wrongly against the next minute. */
int schema_timestamp_valid(const char *s, size_t len)
{
	size_t i;

	if (s == NULL || len < 20 || !schema_date_valid(s, 10) ||
	    s[10] != 'T' || s[13] != ':' || s[16] != ':')
		return 0;
	int h = digits(s + 11, 2), mi = digits(s + 14, 2),
	    se = digits(s + 17, 2);
	if (h < 0 || h > 23 || mi < 0 || mi > 59 || se < 0 || se > 59)
		return 0;
	if (len == 20)
		return s[19] == 'Z';
	if (s[19] != '.' || s[len - 1] != 'Z' || len - 21 < 1 || len - 21 > 9)
		return 0;
	for (i = 20; i < len - 1; i++)
		if (!is_digit(s[i]))
			return 0;
	return 1;
}

/* Days since 1970-01-01 of a proleptic Gregorian date, and back
 * (Hinnant's civil calendar algorithms; valid far beyond years 1..9999). */
static long days_from_civil(long y, int m, int d)
{
	y -= m <= 2;
	long era = (y >= 0 ? y : y - 399) / 400;
	long yoe = y - era * 400;
	long doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	long doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

static void civil_from_days(long z, long *y, int *m, int *d)
{
	z += 719468;
	long era = (z >= 0 ? z : z - 146096) / 146097;
	long doe = z - era * 146097;
	long yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	long doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	long mp = (5 * doy + 2) / 153;
	*d = (int)(doy - (153 * mp + 2) / 5 + 1);
	*m = (int)(mp < 10 ? mp + 3 : mp - 9);
	*y = yoe + era * 400 + (*m <= 2);
}

/* The offset at s (len bytes, the rest of the timestamp) in minutes east
 * of UTC: "Z", or +/- then HH:MM, HHMM or HH, between -12:00 and +14:00
 * (every zone in use). Returns 0 and sets *min, or -1. */
static int parse_offset(const char *s, size_t len, int *min)
{
	int h, m = 0, sign;

	if (len == 1 && s[0] == 'Z') {
		*min = 0;
		return 0;
	}
	if (len < 3 || (s[0] != '+' && s[0] != '-'))
		return -1;
	sign = s[0] == '+' ? 1 : -1;
	h = digits(s + 1, 2);
	if (len == 6 && s[3] == ':')
		m = digits(s + 4, 2);
	else if (len == 5)
		m = digits(s + 3, 2);
	else if (len != 3)
		return -1;
	if (h < 0 || m < 0 || m > 59)
		return -1;
	*min = sign * (h * 60 + m);
	if (*min < -12 * 60 || *min > 14 * 60)
		return -1;
	return 0;
}

size_t schema_timestamp_utc(const char *s, size_t len,
			    char out[SCHEMA_TIME_MAX])
{
	size_t i = 19, fl = 0;
	int off, mo, d;
	long y;

	if (s == NULL || len < 20 || !schema_date_valid(s, 10) ||
	    s[10] != 'T' || s[13] != ':' || s[16] != ':')
		return 0;
	int h = digits(s + 11, 2), mi = digits(s + 14, 2),
	    se = digits(s + 17, 2);
	if (h < 0 || h > 23 || mi < 0 || mi > 59 || se < 0 || se > 59)
		return 0;
	if (s[i] == '.' || s[i] == ',') {
		for (i++; i < len && is_digit(s[i]); i++)
			fl++;
		if (fl < 1 || fl > 9)
			return 0;
	}
	if (parse_offset(s + i, len - i, &off))
		return 0;
	/* Every number is read: out may be s itself. */
	long day =
	    days_from_civil(digits(s, 4), digits(s + 5, 2), digits(s + 8, 2));
	long t = day * 1440 + h * 60 + mi - off; /* minutes, UTC */
	day = t >= 0 ? t / 1440 : -((-t + 1439) / 1440);
	long mod = t - day * 1440;
	civil_from_days(day, &y, &mo, &d);
	if (y < 1 || y > 9999)
		return 0;
	/* YYYY-MM-DDTHH:MM:SS by hand: this runs for every timestamp
	 * written, and the fields are fixed-width numbers. */
	int hm = (int)mod; /* 0..1439 */
	int vals[6] = {(int)y, mo, d, hm / 60, hm % 60, se};
	static const int width[6] = {4, 2, 2, 2, 2, 2};
	static const char sep[6] = {'-', '-', 'T', ':', ':', 0};
	char *o = out;
	for (int k = 0; k < 6; k++) {
		for (int w = width[k] - 1, v = vals[k]; w >= 0; w--, v /= 10)
			o[w] = (char)('0' + v % 10);
		o += width[k];
		if (sep[k])
			*o++ = sep[k];
	}
	if (fl) {
		memmove(out + 20, s + 20, fl);
		out[19] = '.';
		fl++;
	}
	out[19 + fl] = 'Z';
	return 20 + fl;
}

/* Order of two valid timestamps; fractions compared as if padded to 9
 * digits, so "…:00.5Z" == "…:00.500Z". Both must be in UTC. */
static int timestamp_cmp(const char *a, size_t al, const char *b, size_t bl)
{
	int c = memcmp(a, b, 19);
	if (c)
		return c;
	for (size_t i = 0; i < 9; i++) {
		char x = 20 + i < al - 1 ? a[20 + i] : '0';
		char y = 20 + i < bl - 1 ? b[20 + i] : '0';
		if (x != y)
			return x < y ? -1 : 1;
	}
	return 0;
}

static int docnum_chars_ok(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (!(is_upper(s[i]) || is_digit(s[i]) || s[i] == '-'))
			return 0;
	return 1;
}

/* Registration key; *why names the broken part. */
static int regkey_check(const char *s, size_t len, const char **why)
{
	if (len < 4 || s[3] != ':') {
		*why = "no ':' after a three-letter nationality";
		return MSCE_EINVAL;
	}
	if (!is_upper(s[0]) || !is_upper(s[1]) || !is_upper(s[2])) {
		*why = "nationality is not three upper-case letters";
		return MSCE_EINVAL;
	}
	if (!schema_country_valid(s, 3)) {
		*why = "nationality is not an ISO 3166-1 alpha-3 code";
		return MSCE_EINVAL;
	}
	if (len == 4) {
		*why = "empty document number";
		return MSCE_EINVAL;
	}
	if (len - 4 > DOCNUM_MAX) {
		*why = "document number over 32 characters";
		return MSCE_ETOOBIG;
	}
	if (!docnum_chars_ok(s + 4, len - 4)) {
		*why = "document number has characters other than A-Z, 0-9, "
		       "'-'";
		return MSCE_EINVAL;
	}
	return 0;
}

int schema_registration_key_valid(const char *s, size_t len)
{
	const char *why;
	return s != NULL && regkey_check(s, len, &why) == 0;
}

static int eventkey_check(const char *s, size_t len, const char **why)
{
	if (len < 11 || s[10] != '/') {
		*why = "no '/' after a YYYY-MM-DD date";
		return MSCE_EINVAL;
	}
	if (!schema_date_valid(s, 10)) {
		*why = "date is not a real YYYY-MM-DD date";
		return MSCE_EINVAL;
	}
	if (len == 11) {
		*why = "empty id";
		return MSCE_EINVAL;
	}
	if (len - 11 > EVENT_ID_MAX) {
		*why = "id over 64 characters";
		return MSCE_ETOOBIG;
	}
	for (size_t i = 11; i < len; i++) {
		if (!(is_alnum(s[i]) || s[i] == '_' || s[i] == '-')) {
			*why = "id has characters other than A-Z, a-z, 0-9, "
			       "'_', '-'";
			return MSCE_EINVAL;
		}
	}
	return 0;
}

/* [a-z][a-z0-9-]{0,31}: a center name (case.center and the like). */
static int center_ok(const char *s, size_t len)
{
	if (len < 1 || len > 32 || !is_lower(s[0]))
		return 0;
	for (size_t i = 1; i < len; i++)
		if (!(is_lower(s[i]) || is_digit(s[i]) || s[i] == '-'))
			return 0;
	return 1;
}

int schema_center_valid(const char *s, size_t len)
{
	return s != NULL && center_ok(s, len);
}

/* '-' and 16 lower-case hex digits. */
static int dash_hex16(const char *s)
{
	if (s[0] != '-')
		return 0;
	for (size_t i = 1; i <= 16; i++)
		if (!(is_digit(s[i]) || (s[i] >= 'a' && s[i] <= 'f')))
			return 0;
	return 1;
}

/* YYYYMMDDTHHMMSS.mmmZ-<center>-<16 lower-case hex digits>: the writer's
 * UTC time in ISO 8601 basic format (fixed width, so ids sort by time),
 * its center, and 64 random bits, so two writers never need to agree. */
static int noteid_check(const char *s, size_t len, const char **why)
{
	char date[10];

	if (len < 21 || s[8] != 'T' || s[15] != '.' || s[19] != 'Z' ||
	    s[20] != '-' || digits(s + 16, 3) < 0) {
		*why = "note id does not start with a time "
		       "YYYYMMDDTHHMMSS.mmmZ and '-'";
		return MSCE_EINVAL;
	}
	memcpy(date, s, 4);
	date[4] = '-';
	memcpy(date + 5, s + 4, 2);
	date[7] = '-';
	memcpy(date + 8, s + 6, 2);
	int h = digits(s + 9, 2), mi = digits(s + 11, 2),
	    se = digits(s + 13, 2);
	if (digits(s, 8) < 0 || !schema_date_valid(date, 10) || h < 0 ||
	    h > 23 || mi < 0 || mi > 59 || se < 0 || se > 59) {
		*why = "note id time is not a real YYYYMMDDTHHMMSS.mmmZ";
		return MSCE_EINVAL;
	}
	if (len > SCHEMA_NOTE_ID_MAX) {
		*why = "note id over 70 characters";
		return MSCE_ETOOBIG;
	}
	if (len < 21 + 17 || !dash_hex16(s + len - 17)) {
		*why = "note id does not end in '-' and 16 lower-case hex "
		       "digits";
		return MSCE_EINVAL;
	}
	if (!center_ok(s + 21, len - 21 - 17)) {
		*why = "note id has no center name ([a-z][a-z0-9-]{0,31}) "
		       "between the time and the random part";
		return MSCE_EINVAL;
	}
	return 0;
}

int schema_note_id_valid(const char *s, size_t len)
{
	const char *why;
	return s != NULL && noteid_check(s, len, &why) == 0;
}

/* <case key>/<note id>: the note id is what follows the last '/', so a
 * case key may hold '/' too. */
static int notekey_check(const char *s, size_t len, const char **why)
{
	const char *slash = memrchr(s, '/', len);

	if (slash == NULL) {
		*why = "no '/' before the note id";
		return MSCE_EINVAL;
	}
	if (slash == s) {
		*why = "empty case key";
		return MSCE_EINVAL;
	}
	return noteid_check(slash + 1, len - (size_t)(slash - s) - 1, why);
}

/* E.164: '+', then 6..15 digits; country codes never start with 0. */
static int phone_ok(const char *s, size_t len)
{
	if (len < 7 || len > 16 || s[0] != '+' || s[1] == '0')
		return 0;
	for (size_t i = 1; i < len; i++)
		if (!is_digit(s[i]))
			return 0;
	return 1;
}

/* Deliberately simple: one '@', a dot-atom local part, a domain of at
 * least two labels and a letter TLD (or an IDN "xn--" one). Bytes >= 0x80
 * are allowed (already valid UTF-8) for internationalized addresses. */
static int email_ok(const char *s, size_t len)
{
	static const char special[] = "!#$%&'*+/=?^_`{|}~-";
	const char *at = memchr(s, '@', len);
	size_t ll, dl, lab = 0, labels = 1, tld;

	if (at == NULL || memchr(at + 1, '@', len - (size_t)(at - s) - 1))
		return 0;
	ll = (size_t)(at - s);
	dl = len - ll - 1;
	if (ll < 1 || ll > 64 || dl < 4 || s[0] == '.' || s[ll - 1] == '.')
		return 0;
	for (size_t i = 0; i < ll; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '.' && s[i + 1] == '.')
			return 0;
		if (!(is_alnum((char)c) || c == '.' || c >= 0x80 ||
		      (c != '\0' && strchr(special, c))))
			return 0;
	}
	const char *d = at + 1;
	for (size_t i = 0; i <= dl; i++) {
		if (i == dl || d[i] == '.') {
			/* label d[i-lab, i) */
			if (lab < 1 || lab > 63 || d[i - lab] == '-' ||
			    d[i - 1] == '-')
				return 0;
			if (i < dl)
				labels++;
			lab = 0;
			continue;
		}
		unsigned char c = (unsigned char)d[i];
		if (!(is_alnum((char)c) || c == '-' || c >= 0x80))
			return 0;
		lab++;
	}
	if (labels < 2)
		return 0;
	const char *t = (const char *)memrchr(d, '.', dl) + 1;
	tld = dl - (size_t)(t - d);
	if (tld >= 5 && memcmp(t, "xn--", 4) == 0)
		return 1;
	if (tld < 2)
		return 0;
	for (size_t i = 0; i < tld; i++)
		if (is_digit(t[i]) || t[i] == '-')
			return 0;
	return 1;
}

/* Canonical decimal (no sign, no leading zeros) 0..CAPACITY_MAX. */
static int capacity_ok(const char *s, size_t len)
{
	if (len < 1 || len > 6 || (len > 1 && s[0] == '0'))
		return 0;
	int v = digits(s, len);
	return v >= 0 && v <= CAPACITY_MAX;
}

/* Canonical decimal no larger than max (as a string, same length digits).
 * Leading zeros are refused so one note version has one field name. */
static int decimal_le(const char *s, size_t len, const char *max)
{
	size_t ml = strlen(max);

	if (len < 1 || len > ml || (len > 1 && s[0] == '0'))
		return 0;
	for (size_t i = 0; i < len; i++)
		if (!is_digit(s[i]))
			return 0;
	return len < ml || memcmp(s, max, ml) <= 0;
}

/* note/<hlc>/<origin>: hlc a uint64, origin a node id (1..65535). */
static int note_name_ok(const char *s, size_t len)
{
	const char *slash;
	size_t hl, ol;

	if (len < 5 || memcmp(s, "note/", 5) != 0)
		return 0;
	s += 5;
	len -= 5;
	slash = memchr(s, '/', len);
	if (slash == NULL)
		return 0;
	hl = (size_t)(slash - s);
	ol = len - hl - 1;
	return decimal_le(s, hl, "18446744073709551615") &&
	       decimal_le(slash + 1, ol, "65535") &&
	       !(ol == 1 && slash[1] == '0');
}

/* ---- domain collections ---- */

enum ftype {
	T_LINE,	   /* one line of text */
	T_MULTI,   /* text, may hold tab, LF, CR */
	T_ENUM,	   /* one of choices */
	T_DATE,	   /* YYYY-MM-DD */
	T_TIME,	   /* YYYY-MM-DDTHH:MM:SS[.f](Z|offset), stored in UTC */
	T_CENTER,  /* [a-z][a-z0-9-]{0,31} */
	T_PHONE,   /* +digits */
	T_EMAIL,   /* local@domain.tld */
	T_COUNTRY, /* ISO 3166-1 alpha-3 */
	T_DOCNUM,  /* [A-Z0-9-]{1,32} */
	T_REGKEY,  /* NAT:DOCNUM */
	T_COUNT,   /* 0..CAPACITY_MAX */
};

struct fspec {
	const char *name;
	enum ftype type;
	size_t max; /* bytes; 0: bounded by the format itself */
	int required;
	const char *const *choices; /* T_ENUM, NULL-terminated */
};

/* The lists are msce_domain.h's, which the public enums come from too. */
#define DOMAIN_VALUE(n, s) s,
static const char *const doc_types[] = {MSCE_DOCUMENT_TYPES(DOMAIN_VALUE)
					NULL};
static const char *const districts[] = {MSCE_DISTRICTS(DOMAIN_VALUE) NULL};
static const char *const categories[] = {MSCE_CASE_CATEGORIES(DOMAIN_VALUE)
					 NULL};
static const char *const statuses[] = {MSCE_CASE_STATUSES(DOMAIN_VALUE) NULL};
static const char *const kinds[] = {MSCE_EVENT_KINDS(DOMAIN_VALUE) NULL};
#undef DOMAIN_VALUE

const char *const *schema_domain_list(int list)
{
	static const char *const *const lists[MSCE_LIST_COUNT] = {
	    [MSCE_LIST_DOCUMENT_TYPE] = doc_types,
	    [MSCE_LIST_DISTRICT] = districts,
	    [MSCE_LIST_CASE_CATEGORY] = categories,
	    [MSCE_LIST_CASE_STATUS] = statuses,
	    [MSCE_LIST_EVENT_KIND] = kinds,
	};
	return list >= 0 && list < MSCE_LIST_COUNT ? lists[list] : NULL;
}

static const struct fspec reg_fields[] = {
    {"name", T_LINE, 200, 1, NULL},
    {"nationality", T_COUNTRY, 0, 1, NULL},
    {"document_type", T_ENUM, 0, 1, doc_types},
    {"document_number", T_DOCNUM, DOCNUM_MAX, 1, NULL},
    {"birth_date", T_DATE, 0, 0, NULL},
    {"phone", T_PHONE, 0, 0, NULL},
    {"email", T_EMAIL, 254, 0, NULL},
    {"address", T_MULTI, 1000, 0, NULL},
    {"district", T_ENUM, 0, 0, districts},
    {"visa_type", T_LINE, 64, 0, NULL},
    {"visa_expiry", T_DATE, 0, 0, NULL},
    {"registered_at", T_TIME, 0, 0, NULL},
    {"center", T_CENTER, 32, 0, NULL},
};

static const struct fspec case_fields[] = {
    {"person", T_REGKEY, 0, 1, NULL},	{"category", T_ENUM, 0, 1, categories},
    {"status", T_ENUM, 0, 1, statuses}, {"center", T_CENTER, 32, 1, NULL},
    {"assignee", T_LINE, 200, 0, NULL}, {"summary", T_MULTI, 4000, 0, NULL},
};
/* Notes written before case_note existed; still valid, no longer written:
 * a case collecting notes as fields would reach the record limits. */
static const struct fspec note_field = {"note", T_MULTI, 8000, 0, NULL};

/* One note of a case, its own record: a case collects any number. */
static const struct fspec case_note_fields[] = {
    {"text", T_MULTI, 8000, 1, NULL},
    {"center", T_CENTER, 32, 1, NULL},
    {"author", T_LINE, 200, 0, NULL},
    {"written_at", T_TIME, 0, 0, NULL},
};

static const struct fspec event_fields[] = {
    {"title", T_LINE, 200, 1, NULL},	     {"kind", T_ENUM, 0, 1, kinds},
    {"center", T_CENTER, 32, 1, NULL},	     {"starts_at", T_TIME, 0, 1, NULL},
    {"ends_at", T_TIME, 0, 0, NULL},	     {"capacity", T_COUNT, 0, 0, NULL},
    {"description", T_MULTI, 8000, 0, NULL},
};

enum { C_REGISTRATION, C_CASE, C_CASE_NOTE, C_EVENT };

struct cspec {
	const char *name;
	int id;
	const struct fspec *fields;
	size_t n;
};

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

static const struct cspec collections[] = {
    {"registration", C_REGISTRATION, reg_fields, NELEM(reg_fields)},
    {"case", C_CASE, case_fields, NELEM(case_fields)},
    {"case_note", C_CASE_NOTE, case_note_fields, NELEM(case_note_fields)},
    {"event", C_EVENT, event_fields, NELEM(event_fields)},
};

static const struct cspec *find_collection(const char *name)
{
	for (size_t i = 0; i < NELEM(collections); i++)
		if (strcmp(collections[i].name, name) == 0)
			return &collections[i];
	return NULL;
}

static int name_is(const struct schema_field *f, const char *name)
{
	/* The first byte rules out most names without a strlen. */
	if (f->name_len == 0 || f->name[0] != name[0])
		return 0;
	size_t l = strlen(name);
	return f->name_len == l && memcmp(f->name, name, l) == 0;
}

static const struct schema_field *find_field(const struct schema_field *fs,
					     size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (name_is(&fs[i], name))
			return &fs[i];
	return NULL;
}

/* "a, b, c" into out. */
static void join(char *out, size_t size, const char *const *list)
{
	size_t o = 0;

	out[0] = '\0';
	for (size_t i = 0; list[i] != NULL && o < size; i++)
		o += (size_t)snprintf(out + o, size - o, "%s%s", i ? ", " : "",
				      list[i]);
}

static void join_spec(char *out, size_t size, const struct cspec *cs)
{
	size_t o = 0;

	out[0] = '\0';
	for (size_t i = 0; i < cs->n && o < size; i++)
		o += (size_t)snprintf(out + o, size - o, "%s%s", i ? ", " : "",
				      cs->fields[i].name);
	if (cs->id == C_CASE && o < size)
		snprintf(out + o, size - o, ", note/<hlc>/<origin>");
}

/* Unknown field names are refused, not stored: a typo ("birthdate") would
 * otherwise replicate to every center as a field no front end shows, and
 * the record would silently lack the real one. New fields come with a
 * schema change. */
static const struct fspec *lookup_field(const struct cspec *cs,
					const struct schema_field *f,
					const char *cname, struct err *e)
{
	char list[256];

	for (size_t i = 0; i < cs->n; i++)
		if (name_is(f, cs->fields[i].name))
			return &cs->fields[i];
	if (cs->id == C_CASE && f->name_len >= 5 &&
	    memcmp(f->name, "note/", 5) == 0) {
		if (note_name_ok(f->name, f->name_len))
			return &note_field;
		err_set(e, MSCE_EINVAL,
			FIELD_FMT
			": not a note field name (note/<hlc>/<origin>: "
			"decimal, no leading zeros, origin 1..65535)",
			FIELD_ARGS(cname, f));
		return NULL;
	}
	join_spec(list, sizeof list, cs);
	err_set(e, MSCE_EINVAL, FIELD_FMT ": unknown field (known: %s)",
		FIELD_ARGS(cname, f), list);
	return NULL;
}

/* One domain field value; errors name it "collection.field". */
static int check_value(const struct fspec *fs, const char *cname,
		       const struct schema_field *f, struct err *e)
{
	const uint8_t *v = f->value;
	size_t len = f->value_len;
	const char *s = (const char *)v, *why = NULL;
	char q[QBUF], list[256];
	size_t at = 0;
	uint32_t bad = 0;
	int rc;

	/* Empty clears an optional field; a required one cannot be cleared,
	 * or a later update could undo what creation guaranteed. */
	if (len == 0) {
		if (fs->required)
			return err_set(e, MSCE_EINVAL,
				       FIELD_FMT
				       ": empty, and the field is required",
				       FIELD_ARGS(cname, f));
		return 0;
	}
	if (fs->max && len > fs->max)
		return err_set(e, MSCE_ETOOBIG,
			       FIELD_FMT ": %zu bytes, limit %zu",
			       FIELD_ARGS(cname, f), len, fs->max);
	switch (scan_text(v, len, fs->type == T_MULTI, &at, &bad)) {
	case TEXT_BAD_UTF8:
		return err_set(e, MSCE_EINVAL,
			       FIELD_FMT ": not valid UTF-8 at byte %zu: %s",
			       FIELD_ARGS(cname, f), at, quote(q, v, len));
	case TEXT_CONTROL:
		return err_set(
		    e, MSCE_EINVAL,
		    FIELD_FMT ": control character U+%04X at byte %zu: %s",
		    FIELD_ARGS(cname, f), (unsigned)bad, at, quote(q, v, len));
	}
	switch (fs->type) {
	case T_LINE:
	case T_MULTI:
		return 0;
	case T_ENUM:
		for (size_t i = 0; fs->choices[i] != NULL; i++)
			if (strlen(fs->choices[i]) == len &&
			    memcmp(fs->choices[i], s, len) == 0)
				return 0;
		join(list, sizeof list, fs->choices);
		return err_set(e, MSCE_EINVAL, FIELD_FMT ": not one of %s: %s",
			       FIELD_ARGS(cname, f), list, quote(q, v, len));
	case T_DATE:
		if (schema_date_valid(s, len))
			return 0;
		return err_set(e, MSCE_EINVAL,
			       FIELD_FMT
			       ": not an ISO 8601 date (YYYY-MM-DD): %s",
			       FIELD_ARGS(cname, f), quote(q, v, len));
	case T_TIME: {
		char utc[SCHEMA_TIME_MAX];
		if (schema_timestamp_utc(s, len, utc))
			return 0;
		return err_set(e, MSCE_EINVAL,
			       FIELD_FMT
			       ": not an ISO 8601 timestamp "
			       "(YYYY-MM-DDTHH:MM:SS[.fraction] then Z or an "
			       "offset -12:00..+14:00): %s",
			       FIELD_ARGS(cname, f), quote(q, v, len));
	}
	case T_CENTER:
		if (center_ok(s, len))
			return 0;
		return err_set(e, MSCE_EINVAL,
			       FIELD_FMT
			       ": not a center name ([a-z][a-z0-9-]{0,31}): "
			       "%s",
			       FIELD_ARGS(cname, f), quote(q, v, len));
	case T_PHONE:
		if (phone_ok(s, len))
			return 0;
		return err_set(e, MSCE_EINVAL,
			       FIELD_FMT
			       ": not an E.164 phone number ('+' then 6..15 "
			       "digits, the first not 0): %s",
			       FIELD_ARGS(cname, f), quote(q, v, len));
	case T_EMAIL:
		if (email_ok(s, len))
			return 0;
		return err_set(e, MSCE_EINVAL,
			       FIELD_FMT
			       ": not an email address (local@domain.tld): "
			       "%s",
			       FIELD_ARGS(cname, f), quote(q, v, len));
	case T_COUNTRY:
		if (schema_country_valid(s, len))
			return 0;
		return err_set(e, MSCE_EINVAL,
			       FIELD_FMT
			       ": not an ISO 3166-1 alpha-3 country code: %s",
			       FIELD_ARGS(cname, f), quote(q, v, len));
	case T_DOCNUM:
		if (docnum_chars_ok(s, len))
			return 0;
		return err_set(e, MSCE_EINVAL,
			       FIELD_FMT
			       ": not a document number (A-Z, 0-9, '-'): %s",
			       FIELD_ARGS(cname, f), quote(q, v, len));
	case T_REGKEY:
		rc = regkey_check(s, len, &why);
		if (rc == 0)
			return 0;
		return err_set(e, rc,
			       FIELD_FMT
			       ": not a registration key "
			       "(<NATIONALITY>:<DOCUMENT-NUMBER>): %s: %s",
			       FIELD_ARGS(cname, f), why, quote(q, v, len));
	case T_COUNT:
		if (capacity_ok(s, len))
			return 0;
		return err_set(
		    e, MSCE_EINVAL, FIELD_FMT ": not a whole number 0..%d: %s",
		    FIELD_ARGS(cname, f), CAPACITY_MAX, quote(q, v, len));
	}
	return err_set(e, MSCE_EINVAL, FIELD_FMT ": unknown field type",
		       FIELD_ARGS(cname, f));
}

static int check_domain_key(const struct cspec *cs, const char *key, size_t len,
			    struct err *e)
{
	const char *why = NULL;
	char q[QBUF];
	int rc;

	switch (cs->id) {
	case C_REGISTRATION:
		rc = regkey_check(key, len, &why);
		if (rc)
			return err_set(
			    e, rc,
			    "registration: key: not "
			    "<NATIONALITY>:<DOCUMENT-NUMBER>: %s: %s",
			    why, quote(q, key, len));
		return 0;
	case C_EVENT:
		rc = eventkey_check(key, len, &why);
		if (rc)
			return err_set(e, rc,
				       "event: key: not <YYYY-MM-DD>/<id>: %s: "
				       "%s",
				       why, quote(q, key, len));
		return 0;
	case C_CASE_NOTE:
		rc = notekey_check(key, len, &why);
		if (rc)
			return err_set(e, rc,
				       "case_note: key: not <case key>/<note "
				       "id>: %s: %s",
				       why, quote(q, key, len));
		return 0;
	}
	return 0; /* case keys are made at the origin: any valid key */
}

/* Fields that repeat the key must agree with it, or one person would be
 * stored under another person's key. */
static int check_registration_match(const char *key, size_t klen,
				    const struct schema_field *fs, size_t n,
				    struct err *e)
{
	const struct schema_field *f;
	char q1[QBUF], q2[QBUF];

	f = find_field(fs, n, "nationality");
	if (f && f->value_len > 0 &&
	    (f->value_len != 3 || memcmp(f->value, key, 3) != 0))
		return err_set(e, MSCE_EINVAL,
			       "registration.nationality: %s does not match "
			       "the key %s",
			       quote(q1, f->value, f->value_len),
			       quote(q2, key, klen));
	f = find_field(fs, n, "document_number");
	if (f && f->value_len > 0 &&
	    (f->value_len != klen - 4 ||
	     memcmp(f->value, key + 4, klen - 4) != 0))
		return err_set(e, MSCE_EINVAL,
			       "registration.document_number: %s does not "
			       "match the key %s",
			       quote(q1, f->value, f->value_len),
			       quote(q2, key, klen));
	return 0;
}

/* The center in the note id is the center that wrote the note. */
static int check_note_match(const char *key, size_t klen,
			    const struct schema_field *fs, size_t n,
			    struct err *e)
{
	const struct schema_field *f = find_field(fs, n, "center");
	const char *id = (const char *)memrchr(key, '/', klen) + 1;
	size_t cl = klen - (size_t)(id - key) - 21 - 17;
	char q1[QBUF], q2[QBUF];

	if (f && f->value_len > 0 &&
	    (f->value_len != cl || memcmp(f->value, id + 21, cl) != 0))
		return err_set(e, MSCE_EINVAL,
			       "case_note.center: %s does not match the "
			       "center in the note id %s",
			       quote(q1, f->value, f->value_len),
			       quote(q2, id, klen - (size_t)(id - key)));
	return 0;
}

static int check_event_order(const struct schema_field *fs, size_t n,
			     struct err *e)
{
	const struct schema_field *s = find_field(fs, n, "starts_at");
	const struct schema_field *t = find_field(fs, n, "ends_at");
	char q1[QBUF], q2[QBUF], su[SCHEMA_TIME_MAX], tu[SCHEMA_TIME_MAX];
	size_t sl, tl;

	if (s == NULL || t == NULL || s->value_len == 0 || t->value_len == 0)
		return 0;
	/* Compared in UTC: each may have its own offset. */
	sl = schema_timestamp_utc((const char *)s->value, s->value_len, su);
	tl = schema_timestamp_utc((const char *)t->value, t->value_len, tu);
	if (sl && tl && timestamp_cmp(tu, tl, su, sl) < 0)
		return err_set(e, MSCE_EINVAL,
			       "event.ends_at: %s is before starts_at %s",
			       quote(q1, t->value, t->value_len),
			       quote(q2, s->value, s->value_len));
	return 0;
}

static int check_required(const struct cspec *cs, const struct schema_field *fs,
			  size_t n, struct err *e)
{
	char list[256];
	size_t o = 0;

	list[0] = '\0';
	for (size_t i = 0; i < cs->n; i++) {
		if (!cs->fields[i].required ||
		    find_field(fs, n, cs->fields[i].name))
			continue;
		o += (size_t)snprintf(list + o, sizeof list - o, "%s%s",
				      o ? ", " : "", cs->fields[i].name);
	}
	if (o)
		return err_set(e, MSCE_EINVAL,
			       "%s: missing required field(s) for a new "
			       "record: %s",
			       cs->name, list);
	return 0;
}

/* Collection and key, common to puts and deletes; cname gets the name. */
static int check_target(const char *coll, size_t coll_len, const char *key,
			size_t key_len, char *cname, const struct cspec **cs,
			struct err *e)
{
	int rc = schema_check_collection(coll, coll_len, 0, e);
	if (rc)
		return rc;
	memcpy(cname, coll, coll_len);
	cname[coll_len] = '\0';
	rc = schema_check_key(key, key_len, e);
	if (rc) {
		err_wrap(e, "%s", cname);
		return rc;
	}
	*cs = find_collection(cname);
	if (*cs)
		return check_domain_key(*cs, key, key_len, e);
	return 0;
}

int schema_validate_put(const char *coll, size_t coll_len, const char *key,
			size_t key_len, const struct schema_field *fields,
			size_t n, int creating, struct err *e)
{
	char cname[MSCE_MAX_COLLECTION + 1];
	const struct cspec *cs = NULL;
	int rc;

	rc = check_target(coll, coll_len, key, key_len, cname, &cs, e);
	if (rc)
		return rc;
	if (n > MSCE_MAX_FIELDS)
		return err_set(e, MSCE_ETOOBIG,
			       "%s: %zu fields in one write, limit %d", cname,
			       n, MSCE_MAX_FIELDS);
	if (n > 0 && fields == NULL)
		return err_set(e, MSCE_EINVAL, "%s: fields missing", cname);
	for (size_t i = 0; i < n; i++) {
		const struct schema_field *f = &fields[i];
		rc = check_field_in(f, cname, e);
		if (rc)
			return rc;
		/* Two values for one field in one write would get the same
		 * version: which one wins would depend on the store. */
		for (size_t j = 0; j < i; j++)
			if (fields[j].name_len == f->name_len &&
			    memcmp(fields[j].name, f->name, f->name_len) == 0)
				return err_set(e, MSCE_EINVAL,
					       FIELD_FMT ": field given twice "
							 "in one write",
					       FIELD_ARGS(cname, f));
		if (cs == NULL)
			continue;
		const struct fspec *fs = lookup_field(cs, f, cname, e);
		if (fs == NULL)
			return MSCE_EINVAL;
		rc = check_value(fs, cname, f, e);
		if (rc)
			return rc;
	}
	if (cs == NULL)
		return 0;
	if (cs->id == C_REGISTRATION &&
	    (rc = check_registration_match(key, key_len, fields, n, e)))
		return rc;
	if (cs->id == C_CASE_NOTE &&
	    (rc = check_note_match(key, key_len, fields, n, e)))
		return rc;
	if (cs->id == C_EVENT && (rc = check_event_order(fields, n, e)))
		return rc;
	if (creating)
		return check_required(cs, fields, n, e);
	return 0;
}

size_t schema_missing_required(const char *coll, size_t coll_len,
			       int (*has)(void *ctx, const char *name),
			       void *ctx, char *list, size_t listlen)
{
	char cname[MSCE_MAX_COLLECTION + 1];
	const struct cspec *cs;
	size_t missing = 0, o = 0;

	if (listlen > 0)
		list[0] = '\0';
	if (coll_len > MSCE_MAX_COLLECTION)
		return 0;
	memcpy(cname, coll, coll_len);
	cname[coll_len] = '\0';
	if ((cs = find_collection(cname)) == NULL)
		return 0;
	for (size_t i = 0; i < cs->n; i++) {
		if (!cs->fields[i].required || has(ctx, cs->fields[i].name))
			continue;
		missing++;
		if (o < listlen)
			o += (size_t)snprintf(list + o, listlen - o, "%s%s",
					      o ? ", " : "",
					      cs->fields[i].name);
	}
	return missing;
}

size_t schema_time_field_utc(const char *coll, size_t coll_len,
			     const char *name, size_t name_len,
			     const uint8_t *value, size_t len, uint8_t *out)
{
	char cname[MSCE_MAX_COLLECTION + 1], utc[SCHEMA_TIME_MAX];
	const struct cspec *cs;
	struct schema_field f = {name, name_len, value, len};
	size_t n;

	if (coll_len > MSCE_MAX_COLLECTION)
		return 0;
	memcpy(cname, coll, coll_len);
	cname[coll_len] = '\0';
	if ((cs = find_collection(cname)) == NULL)
		return 0;
	for (size_t i = 0; i < cs->n; i++) {
		if (cs->fields[i].type != T_TIME ||
		    !name_is(&f, cs->fields[i].name))
			continue;
		n = schema_timestamp_utc((const char *)value, len, utc);
		if (n == 0 || (n == len && memcmp(utc, value, n) == 0))
			return 0;
		memcpy(out, utc, n);
		return n;
	}
	return 0;
}

int schema_validate_delete(const char *coll, size_t coll_len, const char *key,
			   size_t key_len, struct err *e)
{
	char cname[MSCE_MAX_COLLECTION + 1];
	const struct cspec *cs = NULL;

	return check_target(coll, coll_len, key, key_len, cname, &cs, e);
}
