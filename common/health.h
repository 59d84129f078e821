/* SPDX-License-Identifier: Apache-2.0 */
/* Is a node healthy? The one judgement, from its status message, that
 * `msce status` (exit 1 when not), the status page and /status.json all
 * make: every link up, no snapshot stalled, the store taking writes, the
 * node not itself behind its peers, and (if asked) no peer behind more
 * than a given lag. Each reason names the center ("luohu (5)"). */
#ifndef MSCE_HEALTH_H
#define MSCE_HEALTH_H

#include <stddef.h>

#include "client.pb-c.h"

/* Without a --max-lag, this node is catching up (not healthy) when its
 * peers hold changes it lacks that are this much newer, or this many. */
#define HEALTH_INBOUND_LAG_S 5.0
#define HEALTH_INBOUND_LAG_CHANGES 1000

#define HEALTH_MAX 32	/* reasons kept; more are counted in n */
/* Bytes of one reason: room for "not writing yet: " and a whole write
 * gate (repl.c keeps up to 255 bytes of it). */
#define HEALTH_TEXT 320

struct health {
	size_t n; /* reasons found (may exceed HEALTH_MAX) */
	char why[HEALTH_MAX][HEALTH_TEXT];
};

/* Fills h from s. max_lag_s < 0: peers' lag is not judged. */
void health_check(const Msce__StatusResult *s, double max_lag_s,
		  struct health *h);
/* The reasons joined by "; " into out (cut to outlen). */
void health_join(const struct health *h, char *out, size_t outlen);
/* "luohu (5)", or "node 5" when the name is not known. */
void health_center(const char *name, unsigned id, char *out, size_t outlen);

#endif
