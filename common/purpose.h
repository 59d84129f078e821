/* SPDX-License-Identifier: Apache-2.0 */
/* Purposes of access to personal records (issue 15): what a front end
 * says it reads or writes a registration, case or case note for. Every
 * such access is recorded in the audit log (_audit) with its purpose.
 *
 *   service         serving the person at a desk
 *   case-work       working on one of the person's cases
 *   verification    checking a document, an identity or a record
 *   legal-request   a request from a court, the police or an authority
 *   subject-access  the person's own request to see or export their data
 *   maintenance     operators' work: import, export, conflicts, retention
 *
 * Reads of personal records by ro and rw clients must name one; admin
 * clients may omit it (recorded as "admin"); writes without one are
 * recorded as "unspecified". Pure functions. */
#ifndef MSCE_PURPOSE_H
#define MSCE_PURPOSE_H

#include <stddef.h>

/* The allowed purposes, comma-separated, for messages and help. */
#define PURPOSE_LIST                                                          \
	"service, case-work, verification, legal-request, subject-access, "   \
	"maintenance"
#define PURPOSE_MAX 32 /* bytes, longer than any purpose */

/* Recorded when an admin names no purpose, and when a write names none. */
#define PURPOSE_ADMIN "admin"
#define PURPOSE_UNSPECIFIED "unspecified"

/* 1 if s (NUL-terminated) is one of PURPOSE_LIST. */
int purpose_valid(const char *s);

#endif
