/* SPDX-License-Identifier: Apache-2.0 */
/* Masking of document numbers and phone numbers for display (issue 15).
 *
 * The msce CLI shows these masked unless an admin asks for --reveal:
 *
 *   document number  GL1012345601  ->  GL10****01  (first 4, last 2)
 *   short one        X1234         ->  X****4      (first 1, last 1)
 *   phone (E.164)    +8613800000001 -> +86****01   (country code, last 2)
 *   registration key FRA:GL1012345601 -> FRA:GL10****01
 *
 * Four stars whatever the length, so the mask does not tell the length
 * either. It is a display aid for screens and terminals, not access
 * control: the node hands full values to any client whose role may read
 * the record (see docs/PROTOCOL.md). Pure functions. */
#ifndef MSCE_MASK_H
#define MSCE_MASK_H

#include <stddef.h>

/* Large enough for any masked value or key: a masked value is never
 * longer than 4 + 4 + 2 bytes after a 3-byte nationality and ':'. */
#define MASK_BUF 32

/* Which fields are masked: registration.document_number and
 * registration.phone, and case.person (a registration key). */
int mask_field_applies(const char *coll, const char *field);
/* Whether keys of coll are masked (registration keys hold the document
 * number). */
int mask_key_applies(const char *coll);

/* The masked forms, NUL-terminated in out (MASK_BUF bytes). */
void mask_docnum(const char *s, size_t len, char out[MASK_BUF]);
void mask_phone(const char *s, size_t len, char out[MASK_BUF]);
/* NAT:DOC with DOC masked; anything else masked as a document number. */
void mask_regkey(const char *s, size_t len, char out[MASK_BUF]);

/* The value to show for field of coll: out (masked) when the field is
 * masked, else value itself. */
const char *mask_value(const char *coll, const char *field, const char *value,
		       size_t len, char out[MASK_BUF]);
/* The key to show for a record of coll: out (masked) or key itself. */
const char *mask_key(const char *coll, const char *key, char out[MASK_BUF]);

#endif
