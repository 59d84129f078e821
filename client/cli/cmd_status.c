/* SPDX-License-Identifier: Apache-2.0 */
/* msce status and msce verify. status judges health with health.c (the
 * same judgement as the node's status page); verify waits for every
 * configured center to report the node's digest and vector in a report
 * received during this run. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "health.h"

#define VERIFY_DEFAULT_S 30.0
#define VERIFY_POLL_MS 200
/* Each status asked for gets at least this long to answer, even near
 * the limit: a node slow for a moment is not a node that does not
 * answer (exit 2). */
#define VERIFY_MIN_ANSWER_MS 1000

static cJSON *vv_json(Msce__VVEntry **vv, size_t n)
{
	cJSON *j = cJSON_CreateObject();
	char k[16];
	for (size_t i = 0; i < n; i++) {
		snprintf(k, sizeof k, "%u", vv[i]->origin);
		cJSON_AddNumberToObject(j, k, (double)vv[i]->seq);
	}
	return j;
}

static cJSON *snap_json(const Msce__SnapshotProgress *p)
{
	cJSON *j = cJSON_CreateObject();
	cJSON_AddBoolToObject(j, "active", p != NULL && p->active);
	if (p != NULL && p->active) {
		cJSON_AddNumberToObject(j, "chunks", (double)p->chunks);
		cJSON_AddNumberToObject(j, "records", (double)p->records);
		cJSON_AddNumberToObject(j, "started_ms", (double)p->started_ms);
		cJSON_AddNumberToObject(j, "progress_ms",
					(double)p->progress_ms);
		cJSON_AddBoolToObject(j, "stalled", p->stalled);
	}
	return j;
}

/* How long ago, in ms, t (node clock) was; -1 for never. */
static double ago_ms(const Msce__StatusResult *s, uint64_t t)
{
	if (t == 0)
		return -1;
	return s->time_ms > t ? (double)(s->time_ms - t) : 0;
}

static cJSON *status_json(const Msce__StatusResult *s, const char *dig,
			  const struct health *h)
{
	cJSON *j = cJSON_CreateObject(), *probs = cJSON_CreateArray();
	char why[HEALTH_MAX * (HEALTH_TEXT + 2) + 32]; /* every reason whole */

	health_join(h, why, sizeof why);
	for (size_t i = 0; i < h->n && i < HEALTH_MAX; i++)
		cJSON_AddItemToArray(probs, cJSON_CreateString(h->why[i]));
	cJSON_AddNumberToObject(j, "node", s->node);
	cJSON_AddStringToObject(j, "name", s->name);
	cJSON_AddStringToObject(j, "cluster", s->cluster);
	cJSON_AddItemToObject(j, "vv", vv_json(s->vv, s->n_vv));
	cJSON_AddStringToObject(j, "digest", dig);
	if (s->conflicts_unknown) /* the store cannot be read */
		cJSON_AddNullToObject(j, "conflicts");
	else
		cJSON_AddNumberToObject(j, "conflicts", (double)s->conflicts);
	cJSON_AddNumberToObject(j, "tombstones", (double)s->tombstones);
	cJSON_AddBoolToObject(j, "healthy", h->n == 0);
	cJSON_AddStringToObject(j, "problems", why);
	cJSON_AddItemToObject(j, "problem_list", probs);
	cJSON_AddNumberToObject(j, "writer", s->writer);
	cJSON_AddStringToObject(j, "write_gate", s->write_gate);
	cJSON_AddStringToObject(j, "collection_held",
				s->collection_held ? s->collection_held : "");
	cJSON_AddStringToObject(j, "store_failure",
				s->store_failure ? s->store_failure : "");
	cJSON_AddNumberToObject(j, "inbound_lag_changes",
				(double)s->inbound_lag_changes);
	cJSON_AddNumberToObject(j, "inbound_lag_ms", (double)s->inbound_lag_ms);
	cJSON *peers = cJSON_CreateArray();
	for (size_t i = 0; i < s->n_peers; i++) {
		const Msce__PeerStatus *p = s->peers[i];
		cJSON *pj = cJSON_CreateObject();
		double ago = ago_ms(s, p->last_contact_ms);
		cJSON_AddNumberToObject(pj, "node", p->node);
		cJSON_AddStringToObject(pj, "name", p->name);
		cJSON_AddBoolToObject(pj, "connected", p->connected);
		cJSON_AddBoolToObject(pj, "lag_known", !p->lag_unknown);
		if (p->lag_unknown) { /* null: not known */
			cJSON_AddNullToObject(pj, "lag_changes");
			cJSON_AddNullToObject(pj, "lag_ms");
		} else {
			cJSON_AddNumberToObject(pj, "lag_changes",
						(double)p->lag_changes);
			cJSON_AddNumberToObject(pj, "lag_ms",
						(double)p->lag_ms);
		}
		cJSON_AddNumberToObject(pj, "last_contact_ms",
					(double)p->last_contact_ms);
		/* null: never in contact */
		if (ago < 0)
			cJSON_AddNullToObject(pj, "last_contact_age_ms");
		else
			cJSON_AddNumberToObject(pj, "last_contact_age_ms", ago);
		cJSON_AddNumberToObject(pj, "clock_offset_ms",
					(double)p->clock_offset_ms);
		cJSON_AddBoolToObject(pj, "clock_refused", p->clock_refused);
		/* null: no reason known (or the link is up) */
		if (p->link_error && p->link_error[0]) {
			cJSON_AddStringToObject(pj, "link_error",
						p->link_error);
			cJSON_AddNumberToObject(pj, "link_error_ms",
						(double)p->link_error_ms);
		} else {
			cJSON_AddNullToObject(pj, "link_error");
		}
		cJSON_AddNumberToObject(pj, "link_timeouts",
					(double)p->link_timeouts);
		cJSON_AddNumberToObject(pj, "refused_forged",
					(double)p->refused_forged);
		cJSON_AddNumberToObject(pj, "refused_snapshots",
					(double)p->refused_snapshots);
		cJSON_AddNumberToObject(pj, "refused_protocol",
					(double)p->refused_protocol);
		cJSON_AddItemToObject(pj, "snapshot_out",
				      snap_json(p->snapshot_out));
		cJSON_AddItemToObject(pj, "snapshot_in",
				      snap_json(p->snapshot_in));
		cJSON_AddItemToArray(peers, pj);
	}
	cJSON_AddItemToObject(j, "peers", peers);
	cJSON *nodes = cJSON_CreateArray();
	for (size_t i = 0; i < s->n_nodes; i++) {
		const Msce__NodeReport *n = s->nodes[i];
		cJSON *nj = cJSON_CreateObject();
		char d[65] = "";
		cJSON_AddNumberToObject(nj, "node", n->node);
		cJSON_AddStringToObject(nj, "name", n->name);
		cJSON_AddBoolToObject(nj, "known", n->known);
		if (n->known) {
			cli_hex(n->digest.data,
				n->digest.len > 32 ? 32 : n->digest.len, d);
			cJSON_AddItemToObject(nj, "vv",
					      vv_json(n->vv, n->n_vv));
			cJSON_AddStringToObject(nj, "digest", d);
			cJSON_AddNumberToObject(nj, "age_ms",
						(double)n->age_ms);
			cJSON_AddNumberToObject(nj, "writer", n->writer);
			if (n->diverged_ms)
				cJSON_AddNumberToObject(nj, "diverged_ms",
							(double)n->diverged_ms);
			else
				cJSON_AddNullToObject(nj, "diverged_ms");
		}
		cJSON_AddItemToArray(nodes, nj);
	}
	cJSON_AddItemToObject(j, "nodes", nodes);
	cJSON *cs = cJSON_CreateObject();
	for (size_t i = 0; i < s->n_counters; i++)
		cJSON_AddNumberToObject(cs, s->counters[i]->name,
					(double)s->counters[i]->value);
	cJSON_AddItemToObject(j, "counters", cs);
	return j;
}

/* Origins by node, then incarnation. */
static int by_node(const void *a, const void *b)
{
	uint32_t x = (*(Msce__VVEntry *const *)a)->origin;
	uint32_t y = (*(Msce__VVEntry *const *)b)->origin;
	uint32_t kx = (x & 0xffff) << 16 | x >> 16;
	uint32_t ky = (y & 0xffff) << 16 | y >> 16;
	return kx < ky ? -1 : kx > ky;
}

static void status_text(const Msce__StatusResult *s, const char *dig,
			const struct health *h)
{
	char c[96];

	printf("node %u (%s), cluster %s: %s\n", s->node, s->name, s->cluster,
	       h->n ? "DEGRADED" : "healthy");
	for (size_t i = 0; i < h->n && i < HEALTH_MAX; i++)
		printf("  %s\n", h->why[i]);
	printf("writes under origin %u/%u; inbound lag %llu changes, %.1f s\n",
	       s->writer & 0xffff, s->writer >> 16,
	       (unsigned long long)s->inbound_lag_changes,
	       (double)s->inbound_lag_ms / 1000.0);
	if (s->conflicts_unknown)
		printf("digest %s  conflicts unknown  tombstones %llu\n", dig,
		       (unsigned long long)s->tombstones);
	else
		printf("digest %s  conflicts %llu  tombstones %llu\n", dig,
		       (unsigned long long)s->conflicts,
		       (unsigned long long)s->tombstones);
	if (s->tombstones > 0 && s->collection_held != NULL &&
	    s->collection_held[0] != '\0')
		printf("tombstone collection waits: %s\n", s->collection_held);
	printf("%-22s %-6s %10s %9s %13s %9s\n", "peer", "link", "lag(chg)",
	       "lag(s)", "last contact", "offset");
	for (size_t i = 0; i < s->n_peers; i++) {
		const Msce__PeerStatus *p = s->peers[i];
		double ago = ago_ms(s, p->last_contact_ms);
		char when[32], lagc[24], lags[24], off[32];
		if (ago < 0)
			snprintf(when, sizeof when, "never");
		else
			snprintf(when, sizeof when, "%.1fs ago", ago / 1000.0);
		snprintf(c, sizeof c, "%u %s", p->node, p->name);
		if (p->lag_unknown) {
			snprintf(lagc, sizeof lagc, "unknown");
			snprintf(lags, sizeof lags, "unknown");
		} else {
			snprintf(lagc, sizeof lagc, "%llu",
				 (unsigned long long)p->lag_changes);
			snprintf(lags, sizeof lags, "%.1f",
				 (double)p->lag_ms / 1000.0);
		}
		/* No contact, no measure (a clock refusal measures one). */
		if (ago < 0 && !p->clock_refused)
			snprintf(off, sizeof off, "?");
		else
			snprintf(off, sizeof off, "%lldms",
				 (long long)p->clock_offset_ms);
		printf("%-22s %-6s %10s %9s %13s %9s%s\n", c,
		       p->connected ? "up" : "DOWN", lagc, lags, when, off,
		       p->clock_refused ? " CLOCK" : "");
	}
	printf("%-22s %-16s %11s  %s\n", "node", "digest", "report age",
	       "vector");
	for (size_t i = 0; i < s->n_nodes; i++) {
		const Msce__NodeReport *n = s->nodes[i];
		char d[65] = "?", age[32] = "never";
		if (n->known) {
			cli_hex(n->digest.data,
				n->digest.len > 8 ? 8 : n->digest.len, d);
			snprintf(age, sizeof age, "%.1fs",
				 (double)n->age_ms / 1000.0);
		}
		snprintf(c, sizeof c, "%u %s", n->node, n->name);
		printf("%-22s %-16s %11s  ", c, d, age);
		/* An origin as node/incarnation, as "writes under" shows it,
		 * in node order. */
		Msce__VVEntry *by[MSCE_MAX_ORIGINS];
		size_t nv = n->n_vv < MSCE_MAX_ORIGINS ? n->n_vv
						       : MSCE_MAX_ORIGINS;
		if (nv > 0) { /* n->vv is NULL when empty */
			memcpy(by, n->vv, nv * sizeof *by);
			qsort(by, nv, sizeof *by, by_node);
		}
		for (size_t k = 0; k < nv; k++)
			printf("%u/%u:%llu ", by[k]->origin & 0xffff,
			       by[k]->origin >> 16,
			       (unsigned long long)by[k]->seq);
		printf("\n");
	}
}

int cmd_status(struct cli *x, const struct cli_opts *o, int argc, char **argv)
{
	Msce__ClientResponse *r;
	struct health h;
	char dig[65];
	int rc;

	(void)argc;
	(void)argv;
	if ((rc = cli_connect(x)) != 0 || (rc = cli_status(x, &r)) != 0)
		return rc;
	const Msce__StatusResult *s = r->status;
	cli_hex(s->digest.data, s->digest.len > 32 ? 32 : s->digest.len, dig);
	health_check(s, o->max_lag, &h);
	if (x->json)
		cli_print_json(status_json(s, dig, &h));
	else
		status_text(s, dig, &h);
	msce__client_response__free_unpacked(r, NULL);
	return h.n ? CLI_NO : CLI_OK;
}

/* ---- verify -----------------------------------------------------------------
 */

static uint64_t mono_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000 + (uint64_t)t.tv_nsec / 1000000;
}

static int same_vv(Msce__VVEntry **a, size_t na, Msce__VVEntry **b, size_t nb)
{
	if (na != nb)
		return 0;
	for (size_t k = 0; k < na; k++)
		if (a[k]->origin != b[k]->origin || a[k]->seq != b[k]->seq)
			return 0;
	return 1;
}

/* What node report n says against the node's own state: "" when it
 * agrees in a report that arrived since this verify began (run_ms ago),
 * else why not. A stopped node's last report may still match, but it did
 * not answer this run; gossip brings a fresh report about every second,
 * also through a third node. */
static const char *disagreement(const Msce__StatusResult *s,
				const Msce__NodeReport *n, uint64_t run_ms)
{
	if (!n->known)
		return "never reported";
	if (n->node != s->node && n->age_ms > run_ms)
		return "no report during this run";
	if (n->digest.len != s->digest.len ||
	    memcmp(n->digest.data, s->digest.data, s->digest.len) != 0 ||
	    !same_vv(n->vv, n->n_vv, s->vv, s->n_vv))
		return "holds other data";
	return "";
}

int cmd_verify(struct cli *x, const struct cli_opts *o, int argc, char **argv)
{
	double limit_s = x->timeout_s < 0 ? VERIFY_DEFAULT_S : x->timeout_s;
	uint64_t t0 = mono_ms(), limit_ms = (uint64_t)(limit_s * 1000);
	Msce__ClientResponse *r = NULL;
	char list[2048], d[65], c[96];
	int rc;

	(void)o;
	(void)argc;
	(void)argv;
	/* Each call waits at most what is left (and at least 1 ms). */
	x->timeout_s =
	    limit_s > CLI_DEFAULT_TIMEOUT_S ? CLI_DEFAULT_TIMEOUT_S : limit_s;
	if ((rc = cli_connect(x)) != 0)
		return rc;
	for (;;) {
		uint64_t run_ms = mono_ms() - t0;
		size_t bad = 0, len = 0;

		if ((rc = cli_status(x, &r)) != 0)
			return rc;
		const Msce__StatusResult *s = r->status;
		list[0] = '\0';
		for (size_t i = 0; i < s->n_nodes; i++) {
			const char *why = disagreement(s, s->nodes[i], run_ms);
			if (why[0] == '\0')
				continue;
			bad++;
			health_center(s->nodes[i]->name, s->nodes[i]->node, c,
				      sizeof c);
			if (len < sizeof list)
				len += (size_t)snprintf(
				    list + len, sizeof list - len, "%s%s: %s",
				    len ? "; " : "", c, why);
		}
		cli_hex(s->digest.data, s->digest.len > 32 ? 32 : s->digest.len,
			d);
		if (bad == 0 || mono_ms() - t0 >= limit_ms) {
			if (x->json) {
				cJSON *j = cJSON_CreateObject();
				cJSON *ns = cJSON_CreateArray();
				cJSON_AddBoolToObject(j, "verified", bad == 0);
				cJSON_AddStringToObject(j, "digest", d);
				for (size_t i = 0; i < s->n_nodes; i++) {
					cJSON *nj = cJSON_CreateObject();
					const char *why = disagreement(
					    s, s->nodes[i], run_ms);
					cJSON_AddNumberToObject(
					    nj, "node", s->nodes[i]->node);
					cJSON_AddStringToObject(
					    nj, "name",
					    s->nodes[i]->node == s->node
						? s->name
						: s->nodes[i]->name);
					cJSON_AddBoolToObject(nj, "agrees",
							      why[0] == '\0');
					if (why[0] != '\0')
						cJSON_AddStringToObject(
						    nj, "why", why);
					cJSON_AddItemToArray(ns, nj);
				}
				cJSON_AddItemToObject(j, "nodes", ns);
				cli_print_json(j);
			}
			if (bad == 0 && !x->json)
				printf("verified: %zu nodes hold digest %s\n",
				       s->n_nodes, d);
			else if (bad != 0)
				fprintf(stderr,
					"msce verify: nodes still differ after "
					"%g s: %s (see msce status)\n",
					limit_s, list);
			msce__client_response__free_unpacked(r, NULL);
			return bad == 0 ? CLI_OK : CLI_NO;
		}
		msce__client_response__free_unpacked(r, NULL);
		r = NULL;
		uint64_t left = limit_ms - (mono_ms() - t0);
		usleep((useconds_t)(left < VERIFY_POLL_MS ? left
							  : VERIFY_POLL_MS) *
		       1000);
		/* The next answer is due by the limit, or within
		 * VERIFY_MIN_ANSWER_MS if that is later. */
		left =
		    limit_ms > mono_ms() - t0 ? limit_ms - (mono_ms() - t0) : 0;
		if (left < VERIFY_MIN_ANSWER_MS)
			left = VERIFY_MIN_ANSWER_MS;
		msce_set_timeout(x->c, left < cli_timeout_ms(x)
					   ? (unsigned)left
					   : cli_timeout_ms(x));
	}
}
