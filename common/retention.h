/* SPDX-License-Identifier: Apache-2.0 */
/* Retention rules (issue 15): which personal records a center erases
 * because their purpose has ended. One rule per collection, in the node
 * config:
 *
 *   [retention]
 *   registration = visa_expiry + 5y
 *   case = closed + 3y
 *
 * Grammar: ANCHOR '+' N UNIT, spaces allowed around '+', N 0..200, UNIT
 * y (years), m (months) or d (days). Anchors:
 *
 *   registration  visa_expiry  the registration's visa_expiry date; one
 *                              without a visa_expiry is never selected
 *   case          closed       the case's status is "closed", and its
 *                              status was last written (the version's
 *                              time) before the cutoff
 *
 * A record is selected when its anchor lies before the cutoff: now (UTC)
 * minus the period, by the calendar (a month back from 31 March is the
 * last day of February). Erasing a registration erases its cases and
 * their notes too (docs/PROTOCOL.md "Erasure"). Pure functions. */
#ifndef MSCE_RETENTION_H
#define MSCE_RETENTION_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"

enum retention_anchor {
	RETENTION_NONE = 0,
	RETENTION_VISA_EXPIRY, /* registration */
	RETENTION_CLOSED,      /* case */
};

struct retention_rule {
	int anchor;	/* enum retention_anchor; NONE: no rule */
	unsigned count; /* N */
	char unit;	/* 'y', 'm' or 'd' */
	char text[48];	/* normalised: "visa_expiry+5y" */
};

/* Parses text as the rule for collection coll into *out. Returns 0, or
 * MSCE_EINVAL naming what is wrong and the grammar. */
int retention_parse(const char *coll, const char *text,
		    struct retention_rule *out, struct err *e);

/* The cutoff of r at now_ms: as a date ("YYYY-MM-DD", for date anchors)
 * and as unix milliseconds (midnight UTC of that date plus the time of
 * day of now_ms). */
void retention_cutoff(const struct retention_rule *r, uint64_t now_ms,
		      char date[11], uint64_t *cutoff_ms);

#endif
