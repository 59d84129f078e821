/* SPDX-License-Identifier: Apache-2.0 */
#include "mask.h"

#include <stdio.h>
#include <string.h>

int mask_field_applies(const char *coll, const char *field)
{
	if (strcmp(coll, "registration") == 0)
		return strcmp(field, "document_number") == 0 ||
		       strcmp(field, "phone") == 0;
	if (strcmp(coll, "case") == 0)
		return strcmp(field, "person") == 0;
	return 0;
}

int mask_key_applies(const char *coll)
{
	return strcmp(coll, "registration") == 0;
}

/* head and tail characters around four stars; shorter values keep less,
 * and very short ones nothing, so a mask never shows most of a value. */
static void keep_ends(const char *s, size_t len, size_t head, size_t tail,
		      char out[MASK_BUF])
{
	if (len < head + tail + 2) {
		head = len >= 5 ? 1 : 0;
		tail = len >= 5 ? 1 : 0;
	}
	snprintf(out, MASK_BUF, "%.*s****%.*s", (int)head, s, (int)tail,
		 s + len - tail);
}

void mask_docnum(const char *s, size_t len, char out[MASK_BUF])
{
	keep_ends(s, len, 4, 2, out);
}

/* Length of the E.164 country code at s (after '+'): 1 for 1 (NANP) and 7,
 * 2 for the two-digit codes (ITU-T E.164 assignments), else 3. */
static size_t cc_len(const char *s, size_t len)
{
	static const char two[][3] = {
		"20", "27", "30", "31", "32", "33", "34", "36", "39", "40",
		"41", "43", "44", "45", "46", "47", "48", "49", "51", "52",
		"53", "54", "55", "56", "57", "58", "60", "61", "62", "63",
		"64", "65", "66", "81", "82", "84", "86", "90", "91", "92",
		"93", "94", "95", "98"};
	if (len >= 1 && (s[0] == '1' || s[0] == '7'))
		return 1;
	if (len >= 2)
		for (size_t i = 0; i < sizeof two / sizeof two[0]; i++)
			if (memcmp(s, two[i], 2) == 0)
				return 2;
	return 3;
}

void mask_phone(const char *s, size_t len, char out[MASK_BUF])
{
	size_t cc;
	if (len < 2 || s[0] != '+') {
		mask_docnum(s, len, out);
		return;
	}
	cc = cc_len(s + 1, len - 1);
	/* Leave at least four digits hidden. */
	if (len < 1 + cc + 4 + 2) {
		mask_docnum(s, len, out);
		return;
	}
	keep_ends(s, len, 1 + cc, 2, out);
}

void mask_regkey(const char *s, size_t len, char out[MASK_BUF])
{
	const char *colon = memchr(s, ':', len);
	if (colon == NULL || colon - s != 3) {
		mask_docnum(s, len, out);
		return;
	}
	char doc[MASK_BUF];
	mask_docnum(s + 4, len - 4, doc);
	snprintf(out, MASK_BUF, "%.4s%.20s", s, doc);
}

const char *mask_value(const char *coll, const char *field, const char *value,
		       size_t len, char out[MASK_BUF])
{
	if (!mask_field_applies(coll, field) || len == 0)
		return value;
	if (strcmp(field, "phone") == 0)
		mask_phone(value, len, out);
	else if (strcmp(field, "person") == 0)
		mask_regkey(value, len, out);
	else
		mask_docnum(value, len, out);
	return out;
}

const char *mask_key(const char *coll, const char *key, char out[MASK_BUF])
{
	if (!mask_key_applies(coll))
		return key;
	mask_regkey(key, strlen(key), out);
	return out;
}
