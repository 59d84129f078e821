/* SPDX-License-Identifier: Apache-2.0 */
#include "retention.h"

#include <stdio.h>
#include <string.h>

#define GRAMMAR                                                               \
	"expected ANCHOR + N UNIT, e.g. \"visa_expiry + 5y\" (registration) "  \
	"or \"closed + 3y\" (case); UNIT y, m or d, N 0..200"
#define MAX_COUNT 200

int retention_parse(const char *coll, const char *text,
		    struct retention_rule *out, struct err *e)
{
	const char *p = text, *want;
	int anchor;
	size_t alen;
	unsigned n = 0;
	int digits = 0;

	memset(out, 0, sizeof *out);
	if (strcmp(coll, "registration") == 0) {
		anchor = RETENTION_VISA_EXPIRY;
		want = "visa_expiry";
	} else if (strcmp(coll, "case") == 0) {
		anchor = RETENTION_CLOSED;
		want = "closed";
	} else {
		return err_set(e, MSCE_EINVAL,
			       "no retention rule exists for collection \"%s\" "
			       "(rules: registration, case; notes go with "
			       "their case)",
			       coll);
	}
	alen = strlen(want);
	while (*p == ' ' || *p == '\t')
		p++;
	if (strncmp(p, want, alen) != 0 ||
	    (p[alen] != '+' && p[alen] != ' ' && p[alen] != '\t'))
		return err_set(e, MSCE_EINVAL,
			       "\"%s\": a %s rule starts with %s: " GRAMMAR,
			       text, coll, want);
	p += alen;
	while (*p == ' ' || *p == '\t')
		p++;
	if (*p++ != '+')
		return err_set(e, MSCE_EINVAL, "\"%s\": no '+': " GRAMMAR, text);
	while (*p == ' ' || *p == '\t')
		p++;
	while (*p >= '0' && *p <= '9') {
		n = n * 10 + (unsigned)(*p++ - '0');
		if (++digits > 3 || n > MAX_COUNT)
			return err_set(e, MSCE_EINVAL,
				       "\"%s\": more than %d: " GRAMMAR, text,
				       MAX_COUNT);
	}
	if (digits == 0 || (*p != 'y' && *p != 'm' && *p != 'd'))
		return err_set(e, MSCE_EINVAL, "\"%s\": no period: " GRAMMAR,
			       text);
	out->unit = *p++;
	while (*p == ' ' || *p == '\t')
		p++;
	if (*p != '\0')
		return err_set(e, MSCE_EINVAL,
			       "\"%s\": unexpected text after the period: " GRAMMAR,
			       text);
	out->anchor = anchor;
	out->count = n;
	snprintf(out->text, sizeof out->text, "%s+%u%c", want, n, out->unit);
	return 0;
}

/* Days since 1970-01-01 of a proleptic Gregorian date, and back (H.
 * Hinnant's algorithms: exact for every date we handle). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
	y -= m <= 2;
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	unsigned yoe = (unsigned)(y - era * 400);
	unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (int64_t)doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
	z += 719468;
	int64_t era = (z >= 0 ? z : z - 146096) / 146097;
	unsigned doe = (unsigned)(z - era * 146097);
	unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	unsigned mp = (5 * doy + 2) / 153;
	*d = doy - (153 * mp + 2) / 5 + 1;
	*m = mp < 10 ? mp + 3 : mp - 9;
	*y = (int64_t)yoe + era * 400 + (*m <= 2);
}

static unsigned month_days(int64_t y, unsigned m)
{
	static const unsigned md[] = {31, 28, 31, 30, 31, 30,
				      31, 31, 30, 31, 30, 31};
	if (m == 2 && y % 4 == 0 && (y % 100 != 0 || y % 400 == 0))
		return 29;
	return md[m - 1];
}

void retention_cutoff(const struct retention_rule *r, uint64_t now_ms,
		      char date[11], uint64_t *cutoff_ms)
{
	int64_t days = (int64_t)(now_ms / 86400000), y;
	uint64_t tod = now_ms % 86400000;
	unsigned m, d;

	civil_from_days(days, &y, &m, &d);
	if (r->unit == 'd') {
		days -= r->count;
	} else {
		int64_t months = y * 12 + (m - 1) -
				 (int64_t)r->count * (r->unit == 'y' ? 12 : 1);
		y = months / 12;
		m = (unsigned)(months % 12) + 1;
		if (d > month_days(y, m))
			d = month_days(y, m);
		days = days_from_civil(y, m, d);
	}
	civil_from_days(days, &y, &m, &d);
	snprintf(date, 11, "%04d-%02u-%02u", (int)y, m, d);
	*cutoff_ms = days < 0 ? 0 : (uint64_t)days * 86400000 + tod;
}
