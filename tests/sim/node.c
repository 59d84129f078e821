/* SPDX-License-Identifier: Apache-2.0 */
/* One simulated node: a real store (nosync) and a replication core, with
 * the core's store operations as thin wrappers of store.h and its I/O as
 * the simulator: sends go to the fake network, closes cut the link, and
 * applies become jobs that run at a later step, in order, as a driver's
 * worker would. The core is never entered from inside its own callbacks;
 * in_core checks that.
 *
 * A crash destroys the core and closes the store: queued apply jobs and
 * everything in flight are lost, what was committed stays. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hlc.h"
#include "log.h"
#include "sim.h"

uint64_t node_now(struct node *nd)
{
	uint64_t t = (uint64_t)((int64_t)(SIM_T0 + nd->sim->now) + nd->offset);
	if (t > nd->max_wall)
		nd->max_wall = t;
	return t;
}

/* ---- store operations ---------------------------------------------------- */

static struct store *st(void *ctx)
{
	return ((struct node *)ctx)->store;
}

static size_t op_vv(void *ctx, struct vv_entry *out, size_t max)
{
	return store_vv(st(ctx), out, max);
}

static int op_status_sign(void *ctx, const uint8_t *m, size_t len,
			  uint8_t sig[64])
{
	return store_status_sign(st(ctx), m, len, sig);
}

static int op_status_verify(void *ctx, uint32_t node, const uint8_t *m,
			    size_t len, const uint8_t sig[64])
{
	return store_status_verify(st(ctx), node, m, len, sig);
}

/* Every status the core makes reads this: what it claims is noted. */
static size_t op_state(void *ctx, struct vv_entry *vv, size_t max,
		       uint8_t digest[32], uint64_t *hw)
{
	struct node *nd = ctx;
	size_t n = store_state(nd->store, vv, max, digest, hw);

	for (size_t i = 0; i < n && i < max; i++) {
		size_t k = 0;
		while (k < nd->nclaimed && nd->claimed[k].origin != vv[i].origin)
			k++;
		if (k == nd->nclaimed) {
			if (k == MSCE_MAX_ORIGINS)
				continue; /* a core has no room for more */
			nd->claimed[nd->nclaimed++] = vv[i];
		} else if (vv[i].seq > nd->claimed[k].seq) {
			nd->claimed[k] = vv[i];
		}
	}
	return n;
}

static int op_restored(void *ctx)
{
	return store_restored(st(ctx));
}

static int op_log_read(void *ctx, uint32_t origin, uint64_t from,
		       size_t max_count, size_t max_bytes, store_log_cb cb,
		       store_seg_cb seg_cb, void *cbctx, struct err *e)
{
	return store_log_read_segs(st(ctx), origin, from, max_count,
				   max_bytes, cb, seg_cb, cbctx, e);
}

static size_t op_seals(void *ctx, struct seg *out, size_t max)
{
	return store_seals(st(ctx), out, max);
}

static int op_add_seals(void *ctx, const struct seg *g, size_t n,
			struct err *e)
{
	return store_add_seals(st(ctx), g, n, e);
}

/* A node's signing key pair, from its id and nothing else: every node
 * knows every other's public key, as configs pin them. */
void node_sign_keys(uint32_t id, uint8_t pk[32], uint8_t sk[64])
{
	uint8_t link[32] = {0};
	for (int i = 0; i < 4; i++)
		link[i] = (uint8_t)(id >> (8 * i));
	link[31] = 0x5a;
	seg_keypair_from_link(link, pk, sk);
}

const uint8_t *node_master_key(const struct sim *s, uint32_t id, uint8_t mk[32])
{
	if (s->clear_all || id == s->clear_id)
		return NULL;
	for (int i = 0; i < 32; i++)
		mk[i] = (uint8_t)(id * 131u + (unsigned)i * 7u + 0xa5u);
	return mk;
}

static int op_log_truncate(void *ctx, uint32_t origin, uint64_t upto,
			   struct err *e)
{
	return store_log_truncate(st(ctx), origin, upto, e);
}

static int op_gc(void *ctx, const struct vv_entry *upto, size_t n,
		 size_t *dropped, struct err *e)
{
	struct node *nd = ctx;
	int rc = store_gc_tombstones(nd->store, upto, n, dropped, e);
	if (rc == 0 && *dropped)
		sim_log(nd->sim, "node %u collects %zu tombstones", nd->id,
			*dropped);
	return rc;
}

static uint32_t op_writer(void *ctx, uint64_t *born)
{
	return store_writer(st(ctx), born);
}

/* Incarnations are born in order (PROTOCOL.md, "Origins and
 * incarnations"): a core gives its writer up when it hears of a later-born
 * one of its node, and the writer it takes next must be born above that
 * one. Which one it heard of, the simulator cannot tell; so the new
 * writer must not be born below every incarnation born after the one
 * given up. */
static void check_birth(struct node *nd, uint32_t w)
{
	const struct sim_inc *low = NULL;
	uint64_t born = 0;

	store_writer(nd->store, &born);
	for (int k = 0; k < nd->nincs && nd->gave_up_born != 0; k++)
		if (nd->incs[k].born > nd->gave_up_born &&
		    (low == NULL || nd->incs[k].born < low->born))
			low = &nd->incs[k];
	if (low != NULL && born < low->born)
		sim_fail(nd->sim,
			 "node %u's writer %u/%u is born at %llu.%u, below "
			 "every incarnation born after the one it gave up "
			 "(lowest: %u/%u at %llu.%u)",
			 nd->id, writer_node(w), writer_inc(w),
			 (unsigned long long)hlc_ms(born), hlc_logical(born),
			 writer_node(low->id), writer_inc(low->id),
			 (unsigned long long)hlc_ms(low->born),
			 hlc_logical(low->born));
	nd->gave_up_born = 0;
	if (nd->nincs < SIM_MAX_INCS) {
		nd->incs[nd->nincs].id = w;
		nd->incs[nd->nincs].born = born;
		nd->nincs++;
	}
}

static int op_set_writer(void *ctx, uint32_t w, uint64_t floor,
			 struct err *e)
{
	struct node *nd = ctx;
	uint64_t born = 0;
	uint32_t old = store_writer(nd->store, &born);
	int rc = store_set_writer(nd->store, w, floor, node_now(nd), e);
	sim_log(nd->sim, "node %u: writer %u/%u%s", nd->id, writer_node(w),
		writer_inc(w), rc ? " refused" : "");
	if (rc == 0 && w == 0 && old != 0)
		nd->gave_up_born = born;
	else if (rc == 0 && w != 0)
		check_birth(nd, w);
	return rc;
}

/* Open snapshot reads and their nodes: snap_end gets no context. */
static struct open_read {
	struct store_snap *sn;
	struct node *nd;
} open_reads[SIM_MAX_NODES * SIM_MAX_NODES];

static int op_snap_begin(void *ctx, struct store_snap **out, struct err *e)
{
	struct node *nd = ctx;
	int rc;
	sim_log(nd->sim, "node %u begins a snapshot read", nd->id);
	rc = store_snap_begin(nd->store, out, e);
	if (rc)
		return rc;
	for (size_t i = 0; i < SIM_MAX_NODES * SIM_MAX_NODES; i++)
		if (open_reads[i].sn == NULL) {
			open_reads[i].sn = *out;
			open_reads[i].nd = nd;
			nd->snap_reads++;
			return 0;
		}
	sim_fail(nd->sim, "node %u: more snapshot reads open than peers",
		 nd->id);
	return 0;
}

static void op_snap_end(struct store_snap *sn)
{
	for (size_t i = 0; i < SIM_MAX_NODES * SIM_MAX_NODES; i++)
		if (open_reads[i].sn == sn) {
			open_reads[i].nd->snap_reads--;
			open_reads[i].sn = NULL;
			break;
		}
	store_snap_end(sn);
}

/* ---- I/O callbacks ------------------------------------------------------- */

static int peer_index(struct node *nd, uint32_t peer)
{
	if (!nd->in_core) {
		sim_fail(nd->sim, "node %u: io callback outside a core call",
			 nd->id);
		return -1;
	}
	if (peer == 0 || peer > (uint32_t)nd->sim->n || peer == nd->id) {
		sim_fail(nd->sim, "node %u: io callback for unknown peer %u",
			 nd->id, peer);
		return -1;
	}
	return (int)peer - 1;
}

static void io_send(void *data, uint32_t peer, const uint8_t *buf, size_t len)
{
	struct node *nd = data;
	int p = peer_index(nd, peer);
	if (p >= 0)
		net_send(nd->sim, nd->idx, p, buf, len);
}

static void io_close(void *data, uint32_t peer, int code, const char *reason)
{
	struct node *nd = data;
	struct sim *s = nd->sim;
	int p = peer_index(nd, peer);

	if (p < 0)
		return;
	sim_log(s, "node %u closes link to %u: %s: %s", nd->id, peer,
		err_name(code), reason);
	/* The driver reconnects after a back-off, as msced does. */
	net_cut(s, nd->idx, p, rng_range(&s->rng, 100, 1000));
}

static void io_apply(void *data, uint64_t token, const struct store_blob *b,
		     size_t n, const struct seg *g, size_t ng)
{
	struct node *nd = data;
	struct sim *s = nd->sim;
	struct job *j;

	if (!nd->in_core) {
		sim_fail(s, "node %u: apply outside a core call", nd->id);
		return;
	}
	j = malloc(sizeof *j);
	if (j == NULL) {
		sim_fail(s, "out of memory queueing an apply");
		return;
	}
	j->next = NULL;
	j->due = s->now + rng_range(&s->rng, 0, 8);
	if (j->due < nd->jobs_last_due)
		j->due = nd->jobs_last_due;
	nd->jobs_last_due = j->due;
	j->seq = ++s->seq;
	j->token = token;
	j->b = b;
	j->n = n;
	j->g = g;
	j->ng = ng;
	j->chunk = NULL;
	if (nd->jobs_tail)
		nd->jobs_tail->next = j;
	else
		nd->jobs = j;
	nd->jobs_tail = j;
}

static void io_snapshot(void *data, uint64_t token,
			const struct store_snap_chunk *c)
{
	struct node *nd = data;
	/* Queued like a batch apply: the same job order as msced's writer. */
	io_apply(data, token, NULL, 0, NULL, 0);
	if (nd->jobs_tail != NULL && nd->jobs_tail->token == token)
		nd->jobs_tail->chunk = c;
}

static uint32_t io_random(void *data)
{
	struct node *nd = data;
	return (uint32_t)rng_next(&nd->sim->rng);
}

static void io_trace(void *data, int level, const char *msg)
{
	struct node *nd = data;

	/* Protocol errors are traced as "link to node N: why". */
	if (level <= LOG_WARN && strncmp(msg, "link to node", 12) == 0 &&
	    nd->first_error[0] == 0)
		snprintf(nd->first_error, sizeof nd->first_error, "%s", msg);
	if (nd->sim->opt.verbose > 1 ||
	    (nd->sim->opt.verbose && level <= LOG_WARN))
		sim_log(nd->sim, "node %u: %s", nd->id, msg);
}

/* ---- lifecycle ----------------------------------------------------------- */

static void enter(struct node *nd)
{
	if (nd->in_core)
		sim_fail(nd->sim, "node %u: core entered from its own callback",
			 nd->id);
	nd->in_core = 1;
}

/* A node accepts remote hlcs at most max_skew ahead of its wall clock,
 * so its high-water can never run further ahead of the highest wall clock
 * it has seen ("nothing is poisoned", DESIGN.md). */
static void check_clock(struct node *nd)
{
	uint64_t hw = hlc_ms(store_hlc_committed(nd->store));
	if (hw > nd->max_wall + SIM_MAX_SKEW_MS)
		sim_fail(nd->sim,
			 "node %u's clock was pushed %llu ms ahead of its wall "
			 "clock (limit %d ms): it accepted something stamped "
			 "by a clock far ahead",
			 nd->id, (unsigned long long)(hw - nd->max_wall),
			 SIM_MAX_SKEW_MS);
}

static void leave(struct node *nd)
{
	nd->in_core = 0;
	check_clock(nd);
}

size_t node_members(struct sim *s, int i, uint32_t *out)
{
	size_t n = 0;
	for (int j = 0; j < s->n; j++)
		if (s->member[i][j])
			out[n++] = s->nodes[j].id;
	return n;
}

int node_start(struct sim *s, int i)
{
	struct node *nd = &s->nodes[i];
	struct store_options o = {
	    .node_id = nd->id,
	    .cluster = SIM_CLUSTER,
	    .nosync = 0, /* disk.c makes syncs cheap and crashes honest */
	    .map_size = (size_t)(s->opt.small_map ? 4 : 256) << 20,
	    .max_map_size = (size_t)1 << 30};
	struct repl_config cfg = s->rcfg;
	uint32_t ids[SIM_MAX_NODES];
	uint8_t pk[32], sk[64];
	struct store_key keys[SIM_MAX_NODES];
	struct err e;
	int rc;

	uint8_t mk[32];
	node_sign_keys(nd->id, pk, sk);
	o.sign_sk = sk;
	/* Values sealed at rest, as msced has them with a master key. */
	o.master_key = node_master_key(s, nd->id, mk);
	err_clear(&e);
	if ((rc = store_open(nd->dir, &o, &nd->store, &e))) {
		sim_fail(s, "node %u: store_open: %s", nd->id, e.msg);
		return rc;
	}
	for (int k = 0; k < s->n; k++) {
		uint8_t unused[64];
		keys[k].node = s->nodes[k].id;
		node_sign_keys(keys[k].node, keys[k].pk, unused);
	}
	store_set_keys(nd->store, keys, (size_t)s->n, &e);
	nd->ops = (struct repl_store_ops){
	    .ctx = nd,
	    .vv = op_vv,
	    .state = op_state,
	    .status_sign = op_status_sign,
	    .status_verify = op_status_verify,
	    .writer = op_writer,
	    .set_writer = op_set_writer,
	    .log_read = op_log_read,
	    .log_truncate = op_log_truncate,
	    .gc_tombstones = op_gc,
	    .snap_begin = op_snap_begin,
	    .snap_vv = store_snap_vv,
	    .snap_next = store_snap_next,
	    .snap_end = op_snap_end,
	    .snap_segs = store_snap_segs,
	    .seals = op_seals,
	    .add_seals = op_add_seals,
	    .prepare = store_prepare,
	    .prep_bytes = store_prep_bytes,
	    .prep_free = store_prep_free,
	    .restored = op_restored,
	};
	nd->io = (struct repl_io){
	    .data = nd,
	    .send = io_send,
	    .close = io_close,
	    .apply = io_apply,
	    .snapshot = io_snapshot,
	    .random = io_random,
	    .trace = io_trace,
	};
	cfg.node_id = nd->id;
	cfg.nodes = ids;
	cfg.nnodes = node_members(s, i, ids);
	if ((rc = repl_create(&cfg, &nd->ops, &nd->io, node_now(nd), &nd->repl,
			      &e))) {
		sim_fail(s, "node %u: repl_create: %s", nd->id, e.msg);
		store_close(nd->store);
		nd->store = NULL;
		return rc;
	}
	nd->alive = 1;
	nd->in_core = 0;
	nd->gave_up_born = 0; /* a new core knows only what it hears */
	nd->next_tick = s->now + rng_range(&s->rng, 1, 100);
	nd->jobs_last_due = 0;
	memset(nd->sees, 0, sizeof nd->sees);
	/* Peers dial in after a while. */
	for (int j = 0; j < s->n; j++) {
		struct link *l;
		if (j == i || !s->nodes[j].alive)
			continue;
		l = net_link(s, i, j);
		if (!l->up)
			l->reconnect_at = s->now + rng_range(&s->rng, 10, 300);
	}
	sim_log(s, "node %u started", nd->id);
	return 0;
}

static void add_counters(struct repl_counters *a, const struct repl_counters *b)
{
	a->snapshots_sent += b->snapshots_sent;
	a->snapshots_received += b->snapshots_received;
	a->clock_refusals += b->clock_refusals;
	a->protocol_errors += b->protocol_errors;
	a->tombstones_collected += b->tombstones_collected;
	a->log_truncated += b->log_truncated;
	a->forged_refusals += b->forged_refusals;
	a->snapshot_refusals += b->snapshot_refusals;
	a->writer_changes += b->writer_changes;
	a->writer_collisions += b->writer_collisions;
	a->store_errors += b->store_errors;
}

void node_stop(struct sim *s, int i)
{
	struct node *nd = &s->nodes[i];
	struct repl_counters c;

	if (!nd->alive)
		return;
	repl_counters(nd->repl, &c);
	add_counters(&nd->acc, &c);
	repl_destroy(nd->repl);
	nd->repl = NULL;
	/* The core forgot these applies: they never happen. */
	while (nd->jobs != NULL) {
		struct job *j = nd->jobs;
		nd->jobs = j->next;
		free(j);
	}
	nd->jobs_tail = NULL;
	store_close(nd->store);
	nd->store = NULL;
	nd->alive = 0;
	net_node_down(s, i);
}

void node_crash(struct sim *s, int i)
{
	char why[256];
	sim_log(s, "node %u crashes", s->nodes[i].id);
	node_stop(s, i);
	/* What the store did not sync is gone with the page cache. */
	if (disk_crash(s->nodes[i].dir, why, sizeof why))
		sim_fail(s, "node %u: %s", s->nodes[i].id, why);
}

void node_counters(const struct node *nd, struct repl_counters *out)
{
	*out = nd->acc;
	if (nd->repl != NULL) {
		struct repl_counters c;
		repl_counters(nd->repl, &c);
		add_counters(out, &c);
	}
}

/* ---- calls into the core ------------------------------------------------- */

void node_tick(struct sim *s, int i)
{
	struct node *nd = &s->nodes[i];

	char why[512];
	int empty;

	enter(nd);
	repl_tick(nd->repl, node_now(nd));
	empty = repl_must_empty(nd->repl, why, sizeof why);
	leave(nd);
	nd->next_tick = s->now + rng_range(&s->rng, 10, 100);
	/* What the operator is told to do: empty the store. */
	if (empty) {
		sim_log(s, "node %u: %s", nd->id, why);
		faults_empty_store(s, i);
	}
}

void node_link_up(struct sim *s, int i, int peer)
{
	struct node *nd = &s->nodes[i];

	enter(nd);
	repl_link_up(nd->repl, (uint32_t)peer + 1, node_now(nd));
	leave(nd);
}

void node_link_down(struct sim *s, int i, int peer)
{
	struct node *nd = &s->nodes[i];

	enter(nd);
	repl_link_down(nd->repl, (uint32_t)peer + 1, node_now(nd));
	leave(nd);
}

void node_recv(struct sim *s, int i, int peer, const uint8_t *buf, size_t len)
{
	struct node *nd = &s->nodes[i];

	enter(nd);
	repl_recv(nd->repl, (uint32_t)peer + 1, buf, len, node_now(nd));
	leave(nd);
}

void node_local_commit(struct sim *s, int i)
{
	struct node *nd = &s->nodes[i];

	enter(nd);
	repl_local_commit(nd->repl, node_now(nd));
	leave(nd);
}

int node_job_peek(struct node *nd, uint64_t *due, uint64_t *seq)
{
	if (nd->jobs == NULL)
		return 0;
	*due = nd->jobs->due;
	*seq = nd->jobs->seq;
	return 1;
}

void node_job_run(struct sim *s, int i)
{
	struct node *nd = &s->nodes[i];
	struct job *j = nd->jobs;
	struct store_apply_result res;
	struct err e;
	int rc;

	if (j == NULL)
		return;
	nd->jobs = j->next;
	if (nd->jobs == NULL)
		nd->jobs_tail = NULL;
	memset(&res, 0, sizeof res);
	err_clear(&e);
	if (j->chunk != NULL) {
		if (nd->full_until > s->now) /* FAULT_FULL: nothing merged */
			rc = err_set(&e, MSCE_EREADONLY,
				     "store refuses writes since a commit "
				     "failed (No space left on device)");
		else
			rc = store_snap_apply(nd->store, j->chunk, &e);
		/* A map that cannot grow while this node reads a snapshot
		 * is retried: the core drops the link and starts over. */
		if (rc != 0 && rc != MSCE_EBUSY &&
		    !(nd->full_until > s->now && rc == MSCE_EREADONLY) &&
		    !((s->opt.faults & FAULT_FORGE) && rc == MSCE_EAUTH))
			sim_fail(s, "node %u: snapshot chunk: %s: %s", nd->id,
				 err_name(rc), e.msg);
		enter(nd);
		repl_snapshot_done(nd->repl, j->token, rc, &e, node_now(nd));
		leave(nd);
		free(j);
		return;
	}
	if (nd->full_until > s->now) /* FAULT_FULL: nothing applied */
		rc = err_set(&e, MSCE_EREADONLY,
			     "store refuses writes since a commit failed (No "
			     "space left on device)");
	else
		rc = store_apply_signed(nd->store, j->b, j->n, j->g, j->ng,
					node_now(nd), SIM_MAX_SKEW_MS, &res,
					&e);
	if (rc != 0 && rc != MSCE_ECLOCK && rc != MSCE_EGAP &&
	    rc != MSCE_EMISMATCH && rc != MSCE_EBUSY &&
	    !(nd->full_until > s->now && rc == MSCE_EREADONLY) &&
	    !((s->opt.faults & FAULT_FORGE) &&
	      (rc == MSCE_EAUTH || rc == MSCE_EPROTO)))
		sim_fail(s, "node %u: store_apply of %zu changes: %s: %s",
			 nd->id, j->n, err_name(rc), e.msg);
	else if (rc)
		sim_log(s, "node %u: apply stopped after %zu of %zu: %s",
			nd->id, res.consumed, j->n, e.msg);
	enter(nd);
	repl_apply_done(nd->repl, j->token, rc, &res, &e, node_now(nd));
	leave(nd);
	free(j);
}
