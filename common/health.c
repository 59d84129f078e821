/* SPDX-License-Identifier: Apache-2.0 */
/* The health judgement of a node's status; see health.h. */
#include "health.h"
#include "msce_limits.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

void health_center(const char *name, unsigned id, char *out, size_t outlen)
{
	if (name != NULL && name[0] != '\0')
		snprintf(out, outlen, "%s (%u)", name, id);
	else
		snprintf(out, outlen, "node %u", id);
}

static void why(struct health *h, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void why(struct health *h, const char *fmt, ...)
{
	va_list ap;

	if (h->n < HEALTH_MAX) {
		va_start(ap, fmt);
		vsnprintf(h->why[h->n], HEALTH_TEXT, fmt, ap);
		va_end(ap);
	}
	h->n++;
}

static int stalled(const Msce__SnapshotProgress *p)
{
	return p != NULL && p->active && p->stalled;
}

void health_check(const Msce__StatusResult *s, double max_lag_s,
		  struct health *h)
{
	char c[96];

	memset(h, 0, sizeof *h);
	for (size_t i = 0; i < s->n_peers; i++) {
		const Msce__PeerStatus *p = s->peers[i];
		double lag = (double)p->lag_ms / 1000.0;

		health_center(p->name, p->node, c, sizeof c);
		if (!p->connected)
			why(h, "link to %s down%s%s%.180s", c,
			    p->last_contact_ms
				? ""
				: " (no contact since this node started)",
			    p->link_error && p->link_error[0] ? ": " : "",
			    p->link_error ? p->link_error : "");
		if (p->clock_refused)
			why(h,
			    "%s refused for its clock (%+.1f s off ours; "
			    "max_clock_skew): fix its clock (NTP)",
			    c, (double)p->clock_offset_ms / 1000.0);
		if (max_lag_s >= 0 && !p->lag_unknown && lag > max_lag_s)
			why(h, "%s is %.1f s behind us", c, lag);
		if (stalled(p->snapshot_in) || stalled(p->snapshot_out))
			why(h, "snapshot with %s makes no progress", c);
	}
	/* Equal vectors must hold equal data. */
	for (size_t i = 0; i < s->n_nodes; i++) {
		const Msce__NodeReport *r = s->nodes[i];
		if (!r->known || r->diverged_ms == 0)
			continue;
		health_center(r->name, r->node, c, sizeof c);
		why(h,
		    "%s holds other data than this node at the same vector "
		    "(another digest for %.0f s): run msce verify",
		    c, (double)r->diverged_ms / 1000.0);
	}
	/* This node behind its peers: catching up is not healthy. */
	if (s->inbound_lag_changes > 0 &&
	    ((double)s->inbound_lag_ms / 1000.0 >
		 (max_lag_s >= 0 ? max_lag_s : HEALTH_INBOUND_LAG_S) ||
	     s->inbound_lag_changes >= HEALTH_INBOUND_LAG_CHANGES))
		why(h,
		    "catching up: peers hold %llu changes we lack, %.1f s "
		    "newer",
		    (unsigned long long)s->inbound_lag_changes,
		    (double)s->inbound_lag_ms / 1000.0);
	/* Then no new incarnation (a restored or wiped center) can write,
	 * and changes of any further origin are refused. */
	if (s->n_vv >= MSCE_MAX_ORIGINS)
		why(h,
		    "the version vector is full (%d origins): changes of "
		    "further origins are refused",
		    MSCE_MAX_ORIGINS);
	if (s->write_gate != NULL && s->write_gate[0] != '\0')
		why(h, "not writing yet: %s", s->write_gate);
	for (size_t i = 0; i < s->n_counters; i++)
		if (strcmp(s->counters[i]->name, "store_failed") == 0 &&
		    s->counters[i]->value)
			why(h,
			    "the store refuses writes since a commit failed%s%s%s",
			    s->store_failure && s->store_failure[0] ? " (" : "",
			    s->store_failure ? s->store_failure : "",
			    s->store_failure && s->store_failure[0] ? ")" : "");
}

void health_join(const struct health *h, char *out, size_t outlen)
{
	size_t len = 0;

	if (outlen == 0)
		return;
	out[0] = '\0';
	for (size_t i = 0; i < h->n && i < HEALTH_MAX && len < outlen; i++)
		len += (size_t)snprintf(out + len, outlen - len, "%s%s",
					i ? "; " : "", h->why[i]);
	if (h->n > HEALTH_MAX && len < outlen)
		snprintf(out + len, outlen - len, "; and %zu more",
			 h->n - HEALTH_MAX);
}
