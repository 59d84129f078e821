/* SPDX-License-Identifier: Apache-2.0 */
/* Progress of catching up, in the log; see catchup.h. */
#include "catchup.h"

#include <stdio.h>
#include <string.h>

#include "log.h"
#include "node_status.h"

static void snapshots(struct catchup *c, struct node *n,
		      const struct repl_peer_status *p, size_t np, uint64_t now)
{
	for (size_t i = 0; i < np && i < MSCE_MAX_NODES; i++) {
		const char *name = node_center_name(n, p[i].node);
		const struct repl_snap_status *dir[2] = {&p[i].snap_in,
							 &p[i].snap_out};
		int *was[2];

		if (c->snap[i].node != p[i].node) {
			memset(&c->snap[i], 0, sizeof c->snap[i]);
			c->snap[i].node = p[i].node;
		}
		was[0] = &c->snap[i].in;
		was[1] = &c->snap[i].out;
		for (int d = 0; d < 2; d++) {
			const struct repl_snap_status *s = dir[d];
			const char *how = d == 0 ? "from" : "to";
			if (s->active && !*was[d]) {
				log_info("snapshot %s %s (%u): started", how,
					 name, p[i].node);
				c->snap[i].log_ms = now;
			} else if (s->active &&
				   now - c->snap[i].log_ms >= CATCHUP_LOG_MS) {
				log_info("snapshot %s %s (%u): %llu chunks, "
					 "%llu records in %.0f s%s",
					 how, name, p[i].node,
					 (unsigned long long)s->chunks,
					 (unsigned long long)s->records,
					 (double)(now - s->started_ms) / 1000.0,
					 s->stalled ? "; STALLED" : "");
				c->snap[i].log_ms = now;
			} else if (!s->active && *was[d]) {
				log_info("snapshot %s %s (%u): ended", how,
					 name, p[i].node);
			}
			*was[d] = s->active;
		}
	}
}

void catchup_tick(struct catchup *c, struct node *n, uint64_t now, char *status,
		  size_t len)
{
	struct repl_peer_status p[MSCE_MAX_NODES];
	size_t np = repl_peers(n->repl, p, MSCE_MAX_NODES), up = 0;
	uint64_t changes, ms;

	if (np > MSCE_MAX_NODES)
		np = MSCE_MAX_NODES;
	for (size_t i = 0; i < np; i++)
		up += p[i].state == REPL_ACTIVE;
	snapshots(c, n, p, np, now);
	repl_inbound_lag(n->repl, &changes, &ms);
	if (!c->active && changes > 0 &&
	    (changes >= CATCHUP_MIN_CHANGES || ms >= CATCHUP_MIN_MS)) {
		c->active = 1;
		c->start_ms = c->log_ms = now;
		c->start_changes = c->log_changes = changes;
		log_info("catching up: peers hold %llu changes we lack, "
			 "%.1f s newer",
			 (unsigned long long)changes, (double)ms / 1000.0);
	} else if (c->active && changes == 0) {
		c->active = 0;
		log_info("caught up: %llu changes in %.1f s",
			 (unsigned long long)c->start_changes,
			 (double)(now - c->start_ms) / 1000.0);
	} else if (c->active && now - c->log_ms >= CATCHUP_LOG_MS) {
		double s = (double)(now - c->log_ms) / 1000.0;
		double rate = c->log_changes > changes
				  ? (double)(c->log_changes - changes) / s
				  : 0;
		if (rate > 0)
			log_info("catching up: %llu changes left, %.0f/s, "
				 "ETA %.0f s",
				 (unsigned long long)changes, rate,
				 (double)changes / rate);
		else
			log_info("catching up: %llu changes left, none "
				 "applied in the last %.0f s",
				 (unsigned long long)changes, s);
		c->log_ms = now;
		c->log_changes = changes;
	}
	if (c->active)
		snprintf(status, len,
			 "%zu/%zu links up; catching up: %llu "
			 "changes left",
			 up, np, (unsigned long long)changes);
	else
		snprintf(status, len, "%zu/%zu links up", up, np);
}
