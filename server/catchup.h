/* SPDX-License-Identifier: Apache-2.0 */
/* Catch-up and snapshot progress in the log (and a one-line status for
 * systemd): when this node starts catching up with its peers, how it
 * goes every CATCHUP_LOG_MS, and when it is done; the same for each
 * snapshot received from or sent to a peer. Driven by a timer of the
 * daemon's, from the node's status. */
#ifndef MSCE_CATCHUP_H
#define MSCE_CATCHUP_H

#include <stddef.h>
#include <stdint.h>

#include "bounds.h"
#include "node.h"

#define CATCHUP_LOG_MS 10000
/* Replication lag below both of these is normal traffic, not catching up. */
#define CATCHUP_MIN_CHANGES 100
#define CATCHUP_MIN_MS 5000

struct catchup {
	int active;
	uint64_t start_ms, start_changes, log_ms, log_changes;
	uint64_t applied_total; /* changes applied since start (for rates) */
	struct {
		uint32_t node;
		int in, out; /* a snapshot was active at the last look */
		uint64_t log_ms;
	} snap[MSCE_MAX_NODES];
};

/* Looks at n now (now_ms, unix ms); logs what changed; writes a status
 * line ("7/7 links up; catching up: 1234 changes left") into status. */
void catchup_tick(struct catchup *c, struct node *n, uint64_t now_ms,
		  char *status, size_t len);

#endif
