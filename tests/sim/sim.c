/* SPDX-License-Identifier: Apache-2.0 */
/* msce-sim: runs seeds of the deterministic simulation and checks each.
 *
 * A run: N nodes start; for --steps steps sim time advances a few ms,
 * due messages, link events, apply jobs and timers run in time order,
 * clients write and faults strike. Then every fault is healed and the
 * nodes run until quiescent (all links up, nothing but gossip and acks in
 * flight, no apply pending, equal vectors, for a while), plus some more
 * time for gossip and tombstone collection. The checks, during the run:
 * every log entry is the change acknowledged under its (origin, seq), the
 * same bytes everywhere, and no typed record is visible without its
 * required fields; whenever a node takes a writer right after giving one
 * up for a later-born incarnation, that it is born above it (node.c);
 * at the end: every node has a writer and active
 * sessions with all others, equal vectors and digests, content and
 * conflicts equal to the oracle on every node, no acknowledged write lost
 * (but for what only a wiped or replaced store held), no tombstone left
 * but those a delete conflict keeps, no protocol error. A failing seed
 * replays with --seed X --seeds 1 and the same other options. */
#include <ftw.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sim.h"

#define QUIET_HOLD_MS 3000	 /* quiescent this long counts */
#define QUIET_LIMIT_MS 600000	 /* else "no quiescence" */
#define EXTRA_MS 20000		 /* gossip and tombstone collection */
#define EVENTS_LIMIT 50000000ull /* per advance: a livelock otherwise */
#define CHECK_EVERY 250		 /* steps between checks during the run */
#define PROGRESS_MS 3000	 /* a healed link delivers within this */

void sim_fail(struct sim *s, const char *fmt, ...)
{
	va_list ap;
	if (s->failed)
		return;
	s->failed = 1;
	va_start(ap, fmt);
	vsnprintf(s->reason, sizeof s->reason, fmt, ap);
	va_end(ap);
	sim_log(s, "FAIL %s", s->reason);
}

void sim_log(struct sim *s, const char *fmt, ...)
{
	va_list ap;
	if (!s->opt.verbose)
		return;
	printf("[%llu %6llu.%03llu] ", (unsigned long long)s->seed,
	       (unsigned long long)(s->now / 1000),
	       (unsigned long long)(s->now % 1000));
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
}

/* ---- time ---------------------------------------------------------------- */

/* Runs every event due up to target, in (time, order) order. */
static void advance_to(struct sim *s, uint64_t target)
{
	uint64_t events = 0;

	while (!s->failed) {
		uint64_t due = UINT64_MAX, seq = UINT64_MAX, d, q;
		int kind = 0, which = 0, w;

		if (net_peek(s, &d, &q, &w)) {
			due = d;
			seq = q;
			kind = 1;
			which = w;
		}
		for (int i = 0; i < s->n; i++) {
			struct node *nd = &s->nodes[i];
			if (!nd->alive)
				continue;
			if (node_job_peek(nd, &d, &q) &&
			    (d < due || (d == due && q < seq))) {
				due = d;
				seq = q;
				kind = 2;
				which = i;
			}
			/* Timers after items of the same ms. */
			if (nd->next_tick < due) {
				due = nd->next_tick;
				seq = UINT64_MAX;
				kind = 3;
				which = i;
			}
		}
		if (kind == 0 || due > target)
			break;
		if (due > s->now)
			s->now = due;
		if (kind == 1)
			net_run(s, which);
		else if (kind == 2)
			node_job_run(s, which);
		else
			node_tick(s, which);
		if (++events > EVENTS_LIMIT)
			sim_fail(s, "livelock: over %llu events in %llu ms",
				 (unsigned long long)EVENTS_LIMIT,
				 (unsigned long long)(target - s->now));
	}
	if (target > s->now)
		s->now = target;
}

/* ---- setup and teardown -------------------------------------------------- */

static uint64_t pick(struct rng *r, const uint64_t *v, size_t n)
{
	return v[rng_below(r, n)];
}

static int sim_init(struct sim *s, uint64_t seed, const struct sim_opts *o)
{
	static const uint64_t windows[] = {2048, 16384, 0};
	static const uint64_t batches[] = {1, 8, 64, 0};
	static const uint64_t batch_bytes[] = {1024, 0};
	static const uint64_t relays[] = {200, 1000, 3000};
	static const uint64_t chunks[] = {256, 4096, 0};
	char tmpl[] = "/tmp/msce-sim-XXXXXX";

	memset(s, 0, sizeof *s);
	s->opt = *o;
	s->seed = seed;
	s->rng.s = seed;
	/* Its own stream: the pinned seeds of the other faults stay put. */
	s->status_rng.s = seed ^ UINT64_C(0x7374617475736573);
	s->n = o->nodes;
	if (mkdtemp(tmpl) == NULL || (s->root = strdup(tmpl)) == NULL) {
		sim_fail(s, "cannot make a temp dir");
		return -1;
	}
	for (int i = 0; i < s->n; i++) {
		struct node *nd = &s->nodes[i];
		nd->sim = s;
		nd->idx = i;
		nd->id = (uint32_t)i + 1;
		s->ids[i] = nd->id;
		nd->dir = malloc(strlen(s->root) + 16);
		if (nd->dir == NULL) {
			sim_fail(s, "out of memory");
			return -1;
		}
		sprintf(nd->dir, "%s/n%d", s->root, i + 1);
	}
	s->rcfg.cluster = SIM_CLUSTER;
	s->rcfg.nodes = s->ids;
	s->rcfg.nnodes = (size_t)s->n;
	s->rcfg.max_skew_ms = SIM_MAX_SKEW_MS;
	s->rcfg.window_bytes = pick(&s->rng, windows, 3);
	s->rcfg.batch_changes = pick(&s->rng, batches, 4);
	s->rcfg.batch_bytes = pick(&s->rng, batch_bytes, 2);
	s->rcfg.log_retention = rng_range(&s->rng, 20, 50);
	/* A short log sends most catch-ups through a snapshot; the deployed
	 * one streams them from the log, and relays wait (TESTING.md). */
	if (getenv("SIM_LONG_LOG"))
		s->rcfg.log_retention = 1000000;
	s->rcfg.gossip_interval_ms = 1000;
	s->rcfg.retry_ms = 1000;
	s->rcfg.relay_delay_ms = pick(&s->rng, relays, 3);
	s->rcfg.truncate_interval_ms = 1000;
	s->rcfg.snapshot_chunk_bytes = pick(&s->rng, chunks, 3);
	/* Some seeds: the last node is a center that joins later. */
	s->joiner = -1;
	s->stranded = -1;
	if ((o->faults & FAULT_MEMBERSHIP) && s->n > 2 &&
	    rng_below(&s->rng, 2) == 0)
		s->joiner = s->n - 1;
	for (int i = 0; i < s->n; i++)
		for (int j = 0; j < s->n; j++)
			s->member[i][j] = j != s->joiner || i == s->joiner;
	/* A quarter of the seeds: one node runs without a master key, so
	 * that erasure is checked where no data key can be destroyed
	 * (SIM_CLEAR=1: every node). Drawn from the seed, not the rng, so
	 * that a seed runs as it did before otherwise. */
	s->clear_all = getenv("SIM_CLEAR") != NULL;
	if (seed % 4 == 3)
		s->clear_id = (uint32_t)(1 + (seed / 4) % (uint64_t)s->n);
	sim_log(s,
		"%d nodes, window %zu, batch %zu/%zu, retention %llu, "
		"relay %llu ms, chunk %zu, in the clear: %s%u",
		s->n, s->rcfg.window_bytes, s->rcfg.batch_changes,
		s->rcfg.batch_bytes, (unsigned long long)s->rcfg.log_retention,
		(unsigned long long)s->rcfg.relay_delay_ms,
		s->rcfg.snapshot_chunk_bytes, s->clear_all ? "all " : "",
		s->clear_all ? 0 : s->clear_id);
	if (net_init(s) || (s->oracle = oracle_new()) == NULL ||
	    (s->work = workload_new(s)) == NULL ||
	    (s->faults = faults_new(s)) == NULL) {
		sim_fail(s, "out of memory");
		return -1;
	}
	for (int i = 0; i < s->n && !s->failed; i++)
		if (i != s->joiner)
			node_start(s, i);
	return s->failed ? -1 : 0;
}

static int rm_one(const char *p, const struct stat *st, int flag,
		  struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(p);
}

static void sim_free(struct sim *s)
{
	for (int i = 0; i < s->n; i++) {
		node_stop(s, i);
		free(s->nodes[i].dir);
	}
	net_free(s);
	oracle_free(s->oracle);
	workload_free(s->work);
	faults_free(s->faults);
	if (s->root != NULL && s->opt.keep)
		printf("seed %llu: data left in %s\n",
		       (unsigned long long)s->seed, s->root);
	else if (s->root != NULL)
		nftw(s->root, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	if (s->root != NULL)
		disk_forget(s->root);
	free(s->root);
}

/* ---- quiescence ---------------------------------------------------------- */

static int vv_equal(struct sim *s, int a, int b, uint32_t *origin, uint64_t *sa,
		    uint64_t *sb)
{
	struct vv_entry va[MSCE_MAX_ORIGINS], vb[MSCE_MAX_ORIGINS];
	size_t na = store_vv(s->nodes[a].store, va, MSCE_MAX_ORIGINS);
	size_t nb = store_vv(s->nodes[b].store, vb, MSCE_MAX_ORIGINS);

	for (int pass = 0; pass < 2; pass++) {
		const struct vv_entry *v = pass ? vb : va;
		size_t n = pass ? nb : na;
		for (size_t k = 0; k < n && k < MSCE_MAX_ORIGINS; k++) {
			uint32_t o = v[k].origin;
			uint64_t x = store_vv_get(s->nodes[a].store, o).seq;
			uint64_t y = store_vv_get(s->nodes[b].store, o).seq;
			if (x != y) {
				*origin = o;
				*sa = x;
				*sb = y;
				return 0;
			}
		}
	}
	return 1;
}

static int quiet(struct sim *s, char *why, size_t len)
{
	struct repl_peer_status ps[SIM_MAX_NODES];

	for (int i = 0; i < s->n; i++)
		if (!s->nodes[i].alive) {
			snprintf(why, len, "node %d down", i + 1);
			return 0;
		}
	if (!net_quiet(s, why, len))
		return 0;
	for (int i = 0; i < s->n; i++) {
		struct node *nd = &s->nodes[i];
		size_t np;
		uint32_t o;
		uint64_t x, y;
		if (store_writer(nd->store, NULL) == 0) {
			snprintf(why, len, "node %u has no writer yet", nd->id);
			return 0;
		}
		if (nd->jobs != NULL) {
			snprintf(why, len, "node %u has an apply pending",
				 nd->id);
			return 0;
		}
		np = repl_peers(nd->repl, ps, SIM_MAX_NODES);
		for (size_t k = 0; k < np && k < SIM_MAX_NODES; k++)
			if (ps[k].state != REPL_ACTIVE) {
				snprintf(why, len,
					 "node %u's session with node %u is "
					 "%s",
					 nd->id, ps[k].node,
					 ps[k].state == REPL_HELLO
					     ? "stuck in HELLO"
					     : "down");
				return 0;
			}
		if (!vv_equal(s, 0, i, &o, &x, &y)) {
			snprintf(why, len,
				 "node %u holds %llu changes of origin %u, "
				 "node 1 holds %llu",
				 nd->id, (unsigned long long)y, o,
				 (unsigned long long)x);
			return 0;
		}
	}
	return 1;
}

static void quiesce(struct sim *s)
{
	uint64_t start = s->now, since = 0;
	char why[256] = "";

	while (!s->failed) {
		advance_to(s, s->now + 100);
		if (s->failed)
			return;
		if (quiet(s, why, sizeof why)) {
			if (since == 0)
				since = s->now;
			else if (s->now - since >= QUIET_HOLD_MS)
				return;
		} else {
			since = 0;
		}
		if (s->now - start > QUIET_LIMIT_MS) {
			sim_fail(s, "no quiescence after %llu s: %s",
				 (unsigned long long)QUIET_LIMIT_MS / 1000,
				 why);
			return;
		}
	}
}

/* ---- the checks ---------------------------------------------------------- */

/* Visible typed records are whole: checked on the store's own answers. */
static int whole_cb(void *ctx, const struct store_record_view *v)
{
	static const char *const reg[] = {"name", "nationality",
					  "document_type", "document_number",
					  NULL};
	const char **missing = ctx;
	for (int i = 0; reg[i] != NULL; i++)
		if (record_field(v->rec, (const uint8_t *)reg[i],
				 strlen(reg[i])) == NULL) {
			*missing = reg[i];
			return 1;
		}
	return 0;
}

/* A snapshot read stays open only while the core is sending its chunks
 * on a live link: one kept for a peer gone (or waiting for its merge,
 * which may take long) keeps every page freed since from reuse. */
static void check_snap_reads(struct sim *s, struct node *nd)
{
	struct repl_peer_status ps[SIM_MAX_NODES];
	size_t n = repl_peers(nd->repl, ps, SIM_MAX_NODES);
	int sending = 0;

	for (size_t k = 0; k < n && k < SIM_MAX_NODES; k++)
		sending += ps[k].state != REPL_DOWN && ps[k].snap_out.active;
	if (nd->snap_reads > sending) {
		sim_fail(s,
			 "node %u holds %d snapshot reads open with %d "
			 "snapshots being sent on live links",
			 nd->id, nd->snap_reads, sending);
		return;
	}
	/* Status is a promise: no snapshot shown on a link down. */
	for (size_t k = 0; k < n && k < SIM_MAX_NODES; k++)
		if (ps[k].state == REPL_DOWN &&
		    (ps[k].snap_out.active || ps[k].snap_in.active)) {
			sim_fail(s,
				 "node %u shows a snapshot %s node %u active "
				 "on a link that is down",
				 nd->id, ps[k].snap_out.active ? "to" : "from",
				 ps[k].node);
			return;
		}
}

/* No honest store diverges (the oracle checks the data itself): a node
 * that flags another as holding other data at the same vector is wrong
 * (status is a promise). */
static void check_divergence_flag(struct sim *s, struct node *nd)
{
	struct repl_node_view v;

	for (int k = 0; k < s->n; k++) {
		if (s->nodes[k].id == nd->id)
			continue;
		repl_node(nd->repl, s->nodes[k].id, &v);
		if (v.known && v.diverged_ms != 0) {
			sim_fail(s,
				 "node %u says node %u holds other data at the "
				 "same vector, since %llu",
				 nd->id, s->nodes[k].id,
				 (unsigned long long)v.diverged_ms);
			return;
		}
	}
}

/* A node's view of another claims nothing its statuses did not: a relay
 * that makes one up or alters one (the forger) is not believed. */
static void check_views(struct sim *s, struct node *nd)
{
	struct repl_node_view v;

	for (int k = 0; k < s->n; k++) {
		const struct node *of = &s->nodes[k];
		if (of->id == nd->id)
			continue;
		repl_node(nd->repl, of->id, &v);
		for (size_t i = 0; v.known && i < v.nvv; i++) {
			uint64_t most = 0;
			for (size_t j = 0; j < of->nclaimed; j++)
				if (of->claimed[j].origin == v.vv[i].origin)
					most = of->claimed[j].seq;
			if (v.vv[i].seq > most) {
				sim_fail(s,
					 "node %u believes node %u holds %llu "
					 "changes of origin %u; it never "
					 "claimed more than %llu",
					 nd->id, of->id,
					 (unsigned long long)v.vv[i].seq,
					 v.vv[i].origin,
					 (unsigned long long)most);
				return;
			}
		}
	}
}

/* Invariants that hold at every moment, on every live node. */
static void check_now(struct sim *s)
{
	char why[600];

	for (int i = 0; i < s->n && !s->failed; i++) {
		struct node *nd = &s->nodes[i];
		struct store_scan q = {.coll = "registration", .coll_len = 12};
		const char *missing = NULL;
		if (!nd->alive)
			continue;
		if (oracle_check_log(s->oracle, nd->store, nd->id, why,
				     sizeof why)) {
			sim_fail(s, "%s", why);
			return;
		}
		if (store_scan(nd->store, &q, whole_cb, &missing, NULL) &&
		    missing != NULL) {
			sim_fail(s,
				 "node %u shows a registration without its "
				 "required field %s",
				 nd->id, missing);
			return;
		}
		/* A store is at every moment the effect of exactly the
		 * changes its vector covers (snapshots are point in time and
		 * merge all at once). */
		if (oracle_check_state(s->oracle, nd->store, 0, NULL, why,
				       sizeof why)) {
			sim_fail(s, "node %u during the run: %s", nd->id, why);
			return;
		}
		check_snap_reads(s, nd);
		if (!s->failed)
			check_views(s, nd);
		if (s->failed)
			return;
		check_divergence_flag(s, nd);
	}
}

static void check(struct sim *s)
{
	uint8_t d0[32], d[32];
	char why[600];
	char *c0;

	for (int i = 1; i < s->n && !s->failed; i++) {
		uint32_t o;
		uint64_t x, y;
		if (!vv_equal(s, 0, i, &o, &x, &y))
			sim_fail(s,
				 "node %d vector differs after quiescence "
				 "(origin %u: %llu, node 1 has %llu)",
				 i + 1, o, (unsigned long long)y,
				 (unsigned long long)x);
	}
	store_digest(s->nodes[0].store, d0);
	for (int i = 1; i < s->n && !s->failed; i++) {
		store_digest(s->nodes[i].store, d);
		if (memcmp(d, d0, 32) == 0)
			continue;
		/* Say what differs if the oracle can tell. */
		int k = oracle_check_state(s->oracle, s->nodes[i].store, 1,
					   NULL, why, sizeof why)
			    ? i
			: oracle_check_state(s->oracle, s->nodes[0].store, 1,
					     NULL, why, sizeof why)
			    ? 0
			    : -1;
		if (k >= 0)
			sim_fail(s,
				 "node %d digest differs after quiescence "
				 "(node %d: %s)",
				 i + 1, k + 1, why);
		else
			sim_fail(s, "node %d digest differs after quiescence",
				 i + 1);
	}
	check_now(s);
	for (int i = 0; i < s->n && !s->failed; i++) {
		size_t keep = 0, t;
		if (oracle_check_state(s->oracle, s->nodes[i].store, 1, &keep,
				       why, sizeof why)) {
			sim_fail(s, "node %d: %s", i + 1, why);
			break;
		}
		t = store_tombstones(s->nodes[i].store);
		if (t != keep)
			sim_fail(s,
				 "node %d keeps %zu tombstones after "
				 "quiescence, %zu expected (those of delete "
				 "conflicts)",
				 i + 1, t, keep);
		s->delete_conflicts = keep;
	}
	for (int i = 0; i < s->n && !s->failed; i++) {
		struct repl_peer_status ps[SIM_MAX_NODES];
		size_t np = repl_peers(s->nodes[i].repl, ps, SIM_MAX_NODES);
		for (size_t k = 0; k < np && k < SIM_MAX_NODES; k++) {
			int j = (int)ps[k].node - 1;
			uint64_t at = s->chans[j * s->n + i].delivered_at;
			/* Gossip crosses every live link each second. */
			if (ps[k].state != REPL_ACTIVE ||
			    s->now - at > PROGRESS_MS) {
				sim_fail(s,
					 "node %d's link from node %u made no "
					 "progress after the heal (last "
					 "message %llu ms ago)",
					 i + 1, ps[k].node,
					 (unsigned long long)(s->now - at));
				break;
			}
		}
	}
	c0 = oracle_conflict_text(s->nodes[0].store);
	for (const char *p = c0; p != NULL && *p; p++)
		s->conflicts += *p == '\n';
	for (int i = 1; i < s->n && !s->failed; i++) {
		char *c = oracle_conflict_text(s->nodes[i].store);
		if (c0 == NULL || c == NULL || strcmp(c, c0) != 0)
			sim_fail(s, "node %d conflict list differs from node 1",
				 i + 1);
		free(c);
	}
	free(c0);
	for (int i = 0; i < s->n && !s->failed; i++) {
		struct repl_counters c;
		node_counters(&s->nodes[i], &c);
		if (c.protocol_errors)
			sim_fail(s,
				 "node %d had %llu protocol errors, first: %s",
				 i + 1, (unsigned long long)c.protocol_errors,
				 s->nodes[i].first_error);
	}
}

/* ---- one seed ------------------------------------------------------------ */

/* What a run exercised, one flag per kind (0 or 1). */
struct outcome {
	int failed;
	char reason[768];
	int snapshots, partitions, crashes, refusals;
	int restores, wipes, joins, oversize, delete_conflicts, second,
	    silences, forged, acked, erasures, strands, emptied, lies;
	int held; /* applies refused by a full store, kept and retried */
};

static void run_seed(uint64_t seed, const struct sim_opts *o,
		     struct outcome *out)
{
	struct sim *s = calloc(1, sizeof *s);
	struct repl_counters total = {0};

	memset(out, 0, sizeof *out);
	if (s == NULL) {
		out->failed = 1;
		snprintf(out->reason, sizeof out->reason, "out of memory");
		return;
	}
	if (sim_init(s, seed, o) == 0) {
		for (int step = 0; step < o->steps && !s->failed; step++) {
			advance_to(s, s->now + rng_range(&s->rng, 1, 20));
			if (!s->failed)
				workload_step(s);
			if (!s->failed)
				faults_step(s);
			if (!s->failed && step % CHECK_EVERY == 0)
				check_now(s);
		}
		sim_log(s, "healing: %llu writes acknowledged, %llu refused",
			(unsigned long long)s->writes_acked,
			(unsigned long long)s->writes_refused);
		if (!s->failed)
			faults_heal_all(s);
		if (!s->failed)
			quiesce(s);
		if (!s->failed)
			advance_to(s, s->now + EXTRA_MS);
		if (!s->failed)
			check(s);
		/* Nothing the workload wrote is in the clear in any data
		 * file, the stores' or the backups'. */
		char why[600];
		const char *skip =
		    s->clear_id ? s->nodes[s->clear_id - 1].dir : NULL;
		if (!s->failed && !s->clear_all &&
		    oracle_check_files(s->oracle, s->root, skip, why,
				       sizeof why))
			sim_fail(s, "%s", why);
	}
	for (int i = 0; i < s->n; i++) {
		struct repl_counters c;
		node_counters(&s->nodes[i], &c);
		total.snapshots_sent += c.snapshots_sent;
		total.snapshots_received += c.snapshots_received;
		total.clock_refusals += c.clock_refusals;
		total.tombstones_collected += c.tombstones_collected;
		total.forged_refusals += c.forged_refusals;
		total.snapshot_refusals += c.snapshot_refusals;
		total.store_errors += c.store_errors;
	}
	/* Refusals are for insiders: honest peers are never refused as
	 * forgers or for their snapshots. */
	if (!s->failed && !(s->opt.faults & FAULT_FORGE) &&
	    total.forged_refusals + total.snapshot_refusals > 0)
		sim_fail(s,
			 "an honest peer was refused: %llu changes as forged, "
			 "%llu snapshots",
			 (unsigned long long)total.forged_refusals,
			 (unsigned long long)total.snapshot_refusals);
	out->failed = s->failed;
	snprintf(out->reason, sizeof out->reason, "%s", s->reason);
	out->snapshots = total.snapshots_sent + total.snapshots_received > 0;
	out->partitions = s->partitions > 0;
	out->crashes = s->crashes > 0;
	out->refusals = total.clock_refusals > 0;
	out->restores = s->restores > 0;
	out->wipes = s->wipes > 0;
	out->joins = s->joins > 0 && s->rollouts > 0;
	out->oversize = s->oversize_refused > 0;
	out->delete_conflicts = s->delete_conflicts > 0;
	out->second = s->second_refused > 0;
	out->silences = s->silences > 0;
	/* Forgeries that reached a node and were refused there. */
	out->forged = s->forgeries > 0 && total.forged_refusals > 0;
	out->acked = s->writes_acked > 0;
	out->erasures = s->erasures > 0;
	out->strands = s->strands > 0;
	out->emptied = s->emptied > 0;
	out->lies = s->bases_refused > 0;
	out->held = s->fulls > 0 && total.store_errors > 0;
	sim_log(
	    s,
	    "done at %llu s: %llu acked, %llu refused, %llu conflicts, "
	    "%llu msgs (%llu dropped), %llu snapshots, %llu partitions, "
	    "%llu crashes, %llu cuts, %llu clock faults, %llu clock "
	    "refusals, %llu tombstones collected, %llu restores, %llu wipes, "
	    "%llu joins, %llu oversize refused, %llu gated, %llu delete "
	    "conflicts, %llu second opens refused, %llu forgeries (%llu "
	    "batches and %llu snapshots refused), %llu erasures, %llu strands, "
	    "%llu lying bases refused",
	    (unsigned long long)s->now / 1000,
	    (unsigned long long)s->writes_acked,
	    (unsigned long long)s->writes_refused,
	    (unsigned long long)s->conflicts, (unsigned long long)s->msgs_sent,
	    (unsigned long long)s->msgs_dropped,
	    (unsigned long long)total.snapshots_sent,
	    (unsigned long long)s->partitions, (unsigned long long)s->crashes,
	    (unsigned long long)s->cuts, (unsigned long long)s->clock_faults,
	    (unsigned long long)total.clock_refusals,
	    (unsigned long long)total.tombstones_collected,
	    (unsigned long long)s->restores, (unsigned long long)s->wipes,
	    (unsigned long long)s->joins,
	    (unsigned long long)s->oversize_refused,
	    (unsigned long long)s->writes_gated,
	    (unsigned long long)s->delete_conflicts,
	    (unsigned long long)s->second_refused,
	    (unsigned long long)s->forgeries,
	    (unsigned long long)total.forged_refusals,
	    (unsigned long long)total.snapshot_refusals,
	    (unsigned long long)s->erasures, (unsigned long long)s->strands,
	    (unsigned long long)s->bases_refused);
	sim_free(s);
	free(s);
}

/* ---- main ---------------------------------------------------------------- */

static void usage(FILE *f)
{
	fprintf(
	    f,
	    "usage: msce-sim [--nodes N] [--seeds S] [--seed X] [--steps K]\n"
	    "                [--faults cut,partition,crash,clock,slow,restore,\n"
	    "                          wipe,membership,oversize,delrace,\n"
	    "                          second,silent,forge,strand,full,\n"
	    "                          status|all|none]\n"
	    "                [--small-map] [--keep] [--verbose]...\n"
	    "Runs seeds X..X+S-1 (X = 1, S = 10, N = 3, K = 3000 by "
	    "default);\nexit 0 iff every seed passes. A seed replays with "
	    "the same options.\n"
	    "  --faults     kinds of fault to inject (default all; all\n"
	    "               leaves out full and status)\n"
	    "  --small-map  4 MiB store maps, so that they must grow\n"
	    "  --mutant M   (msce-sim-mutant) turn on deliberate bug M\n"
	    "  --keep       leave the data directories\n"
	    "  --verbose    events; twice: the cores' traces too\n");
}

static int parse_faults(const char *s, unsigned *out)
{
	static const struct {
		const char *name;
		unsigned bit;
	} kinds[] = {{"cut", FAULT_CUT},
		     {"partition", FAULT_PARTITION},
		     {"crash", FAULT_CRASH},
		     {"clock", FAULT_CLOCK},
		     {"slow", FAULT_SLOW},
		     {"restore", FAULT_RESTORE},
		     {"wipe", FAULT_WIPE},
		     {"membership", FAULT_MEMBERSHIP},
		     {"oversize", FAULT_OVERSIZE},
		     {"delrace", FAULT_DELRACE},
		     {"second", FAULT_SECOND},
		     {"silent", FAULT_SILENT},
		     {"forge", FAULT_FORGE},
		     {"strand", FAULT_STRAND},
		     {"full", FAULT_FULL},
		     {"status", FAULT_STATUS},
		     {"all", FAULT_ALL},
		     {"none", 0}};
	*out = 0;
	while (*s) {
		size_t n = strcspn(s, ","), k;
		for (k = 0; k < sizeof kinds / sizeof kinds[0]; k++)
			if (strlen(kinds[k].name) == n &&
			    memcmp(kinds[k].name, s, n) == 0)
				break;
		if (k == sizeof kinds / sizeof kinds[0])
			return -1;
		*out |= kinds[k].bit;
		s += n + (s[n] == ',');
	}
	return 0;
}

static const char *faults_name(unsigned f, char *buf, size_t len)
{
	snprintf(buf, len, "%s%s%s%s%s%s%s%s%s%s%s%s%s%s%s%s",
		 f & FAULT_CUT ? ",cut" : "",
		 f & FAULT_PARTITION ? ",partition" : "",
		 f & FAULT_CRASH ? ",crash" : "",
		 f & FAULT_CLOCK ? ",clock" : "",
		 f & FAULT_SLOW ? ",slow" : "",
		 f & FAULT_RESTORE ? ",restore" : "",
		 f & FAULT_WIPE ? ",wipe" : "",
		 f & FAULT_MEMBERSHIP ? ",membership" : "",
		 f & FAULT_OVERSIZE ? ",oversize" : "",
		 f & FAULT_DELRACE ? ",delrace" : "",
		 f & FAULT_SECOND ? ",second" : "",
		 f & FAULT_SILENT ? ",silent" : "",
		 f & FAULT_FORGE ? ",forge" : "",
		 f & FAULT_STRAND ? ",strand" : "",
		 f & FAULT_FULL ? ",full" : "",
		 f & FAULT_STATUS ? ",status" : "");
	return buf[0] ? buf + 1 : "none";
}

static int parse_u64(const char *s, uint64_t *out)
{
	char *end;
	if (s == NULL || *s == 0 || *s == '-')
		return -1;
	*out = strtoull(s, &end, 0);
	return *end ? -1 : 0;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"nodes", required_argument, NULL, 'n'},
	    {"seeds", required_argument, NULL, 's'},
	    {"seed", required_argument, NULL, 'x'},
	    {"steps", required_argument, NULL, 'k'},
	    {"verbose", no_argument, NULL, 'v'},
	    {"keep", no_argument, NULL, 'K'},
	    {"small-map", no_argument, NULL, 'M'},
	    {"faults", required_argument, NULL, 'f'},
	    {"mutant", required_argument, NULL, 'm'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0}};
	struct sim_opts o = {.nodes = 3, .steps = 3000, .faults = FAULT_ALL};
	uint64_t first = 1, count = 10, v;
	uint64_t passed = 0, failed = 0, first_failed = 0;
	int snaps = 0, parts = 0, crashes = 0, refusals = 0, c;
	int restores = 0, wipes = 0, joins = 0, oversize = 0, delconf = 0,
	    second = 0, silences = 0, forged = 0, idle = 0, erased = 0,
	    strands = 0, emptied = 0, lies = 0, held = 0;
	const char *mutant = NULL;
	struct timespec t0, t1;
	char fbuf[160];
	double secs;

	const char *prog =
	    strrchr(argv[0], '/') ? strrchr(argv[0], '/') + 1 : argv[0];

	setvbuf(stdout, NULL, _IOLBF, 0);
	disk_init();
	while ((c = getopt_long(argc, argv, "n:s:x:k:vKMf:m:h", longopts,
				NULL)) != -1) {
		switch (c) {
		case 'n':
			if (parse_u64(optarg, &v) || v < 2 ||
			    v > SIM_MAX_NODES) {
				fprintf(stderr, "msce-sim: --nodes: 2..%d\n",
					SIM_MAX_NODES);
				return 2;
			}
			o.nodes = (int)v;
			break;
		case 's':
			if (parse_u64(optarg, &count) || count == 0) {
				fprintf(stderr, "msce-sim: --seeds: a count "
						"above 0\n");
				return 2;
			}
			break;
		case 'x':
			if (parse_u64(optarg, &first)) {
				fprintf(stderr, "msce-sim: --seed: a number\n");
				return 2;
			}
			break;
		case 'k':
			if (parse_u64(optarg, &v) || v > 100000000) {
				fprintf(stderr, "msce-sim: --steps: a number "
						"up to 100000000\n");
				return 2;
			}
			o.steps = (int)v;
			break;
		case 'v':
			o.verbose++;
			break;
		case 'K':
			o.keep = 1;
			break;
		case 'M':
			o.small_map = 1;
			break;
		case 'f':
			if (parse_faults(optarg, &o.faults)) {
				fprintf(stderr,
					"msce-sim: --faults: a comma "
					"list of cut, partition, crash, "
					"clock, slow, or none\n");
				return 2;
			}
			break;
		case 'm':
			/* Only msce-sim-mutant has mutants to turn on. */
			mutant = optarg;
			setenv("MSCE_MUTANT", optarg, 1);
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc) {
		usage(stderr);
		return 2;
	}
	printf("msce-sim: %d nodes, seeds %llu..%llu, %d steps, faults %s%s%s\n",
	       o.nodes, (unsigned long long)first,
	       (unsigned long long)(first + count - 1), o.steps,
	       faults_name(o.faults, fbuf, sizeof fbuf),
	       mutant ? ", mutant " : "", mutant ? mutant : "");
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (uint64_t seed = first; seed < first + count; seed++) {
		struct outcome r;
		run_seed(seed, &o, &r);
		if (r.failed) {
			if (failed++ == 0)
				first_failed = seed;
			printf("seed %llu: FAIL %s\n", (unsigned long long)seed,
			       r.reason);
		} else {
			passed++;
			if (o.verbose)
				printf("seed %llu: ok\n",
				       (unsigned long long)seed);
		}
		snaps += r.snapshots;
		parts += r.partitions;
		crashes += r.crashes;
		refusals += r.refusals;
		restores += r.restores;
		wipes += r.wipes;
		joins += r.joins;
		oversize += r.oversize;
		delconf += r.delete_conflicts;
		second += r.second;
		silences += r.silences;
		forged += r.forged;
		erased += r.erasures;
		strands += r.strands;
		emptied += r.emptied;
		lies += r.lies;
		held += r.held;
		idle += !r.acked && !r.failed;
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	secs = (double)(t1.tv_sec - t0.tv_sec) +
	       (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	printf("%llu passed, %llu failed\n", (unsigned long long)passed,
	       (unsigned long long)failed);
	printf("%.2f seeds/s (%llu seeds in %.1f s); runs with snapshots %d, "
	       "partitions %d, crashes %d, clock refusals %d, restores %d, "
	       "wipes %d, joins %d, oversize refusals %d, delete conflicts "
	       "%d, second opens refused %d, silent links %d, forgeries "
	       "refused %d, erasures %d, strands %d, restored stores "
	       "emptied %d, lying bases refused %d, applies held for a full "
	       "store %d\n",
	       secs > 0 ? (double)count / secs : 0.0, (unsigned long long)count,
	       secs, snaps, parts, crashes, refusals, restores, wipes, joins,
	       oversize, delconf, second, silences, forged, erased, strands,
	       emptied, lies, held);
	/* A run that acknowledged nothing tested nothing. */
	if (idle > 0) {
		printf("%d runs acknowledged no write\n", idle);
		failed += (uint64_t)idle;
	}
	if (failed)
		printf("replay: %s --nodes %d --steps %d --faults %s%s%s%s "
		       "--seed %llu --seeds 1 --verbose\n",
		       prog, o.nodes, o.steps,
		       faults_name(o.faults, fbuf, sizeof fbuf),
		       o.small_map ? " --small-map" : "",
		       mutant ? " --mutant " : "", mutant ? mutant : "",
		       (unsigned long long)first_failed);
	return failed ? 1 : 0;
}
