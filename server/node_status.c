/* SPDX-License-Identifier: Apache-2.0 */
/* The node's status as one message: what `msce status` prints, what the
 * status page and /status.json show. Everything is built in the caller's
 * arena, so one arena_free releases it; nothing in it points into the node
 * once built, except the config's names, which live as long as the node.
 *
 * Centers carry the names of this node's config next to their ids, so
 * every view can say "luohu (5)" rather than "node 5". */
#include "node_status.h"

#include <string.h>

#include "bounds.h"
#include "health.h"
#include "repl.h"

uint64_t node_open_conflicts(struct node *n)
{
	/* Counted from the index, not by reading each record: a status
	 * request costs the same with thousands of conflicts. */
	return store_conflict_count(n->store);
}

const char *node_center_name(const struct node *n, uint32_t id)
{
	const struct config_peer *p;

	if (id == n->cfg.node_id)
		return n->cfg.node_name;
	p = config_peer_by_id(&n->cfg, id);
	return p != NULL ? p->name : "";
}

#define NEW(a, T) ((T *)arena_alloc((a), sizeof(T)))
#define NEWN(a, T, n) ((T *)arena_alloc((a), sizeof(T) * ((n) ? (n) : 1)))

static Msce__SnapshotProgress *snap_msg(struct arena *a,
					const struct repl_snap_status *s)
{
	Msce__SnapshotProgress *m = NEW(a, Msce__SnapshotProgress);

	if (m == NULL)
		return NULL;
	msce__snapshot_progress__init(m);
	m->active = s->active;
	m->chunks = s->chunks;
	m->records = s->records;
	m->started_ms = s->started_ms;
	m->progress_ms = s->progress_ms;
	m->stalled = s->stalled;
	return m;
}

static Msce__VVEntry **vv_msg(struct arena *a, const struct vv_entry *vv,
			      size_t n)
{
	Msce__VVEntry *vs = NEWN(a, Msce__VVEntry, n);
	Msce__VVEntry **vp = NEWN(a, Msce__VVEntry *, n);

	if (vs == NULL || vp == NULL)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		msce__vventry__init(&vs[i]);
		vs[i].origin = vv[i].origin;
		vs[i].seq = vv[i].seq;
		vs[i].hlc = vv[i].hlc;
		vp[i] = &vs[i];
	}
	return vp;
}

static int fill_peers(struct node *n, struct arena *a, Msce__StatusResult *st,
		      const struct vv_entry *vv, size_t nvv)
{
	struct repl_peer_status *ps =
	    NEWN(a, struct repl_peer_status, MSCE_MAX_NODES);
	size_t np;

	if (ps == NULL)
		return MSCE_ENOMEM;
	np = repl_peers_at(n->repl, vv, nvv, ps, MSCE_MAX_NODES);
	if (np > MSCE_MAX_NODES)
		np = MSCE_MAX_NODES;
	st->peers = NEWN(a, Msce__PeerStatus *, np);
	if (st->peers == NULL)
		return MSCE_ENOMEM;
	for (size_t i = 0; i < np; i++) {
		Msce__PeerStatus *p = NEW(a, Msce__PeerStatus);
		if (p == NULL)
			return MSCE_ENOMEM;
		msce__peer_status__init(p);
		p->node = ps[i].node;
		p->name = (char *)node_center_name(n, ps[i].node);
		p->connected = ps[i].state == REPL_ACTIVE;
		p->lag_unknown = !ps[i].lag_known;
		p->link_error = arena_memdup(a, ps[i].link_error,
					     strlen(ps[i].link_error) + 1);
		if (p->link_error == NULL)
			return MSCE_ENOMEM;
		p->link_error_ms = ps[i].link_error_ms;
		p->lag_changes = ps[i].lag_changes;
		p->lag_ms = ps[i].lag_ms;
		p->last_contact_ms = ps[i].last_contact_ms;
		p->clock_offset_ms = ps[i].clock_offset_ms;
		p->clock_refused = ps[i].clock_refused;
		p->link_timeouts = ps[i].link_timeouts;
		p->refused_forged = ps[i].refused_forged;
		p->refused_snapshots = ps[i].refused_snapshots;
		p->refused_protocol = ps[i].refused_protocol;
		p->snapshot_out = snap_msg(a, &ps[i].snap_out);
		p->snapshot_in = snap_msg(a, &ps[i].snap_in);
		if (p->snapshot_out == NULL || p->snapshot_in == NULL)
			return MSCE_ENOMEM;
		st->peers[i] = p;
	}
	st->n_peers = np;
	return 0;
}

static int fill_nodes(struct node *n, struct arena *a, Msce__StatusResult *st,
		      uint64_t now)
{
	struct repl_node_view *view = NEW(a, struct repl_node_view);
	size_t nn = n->nnodes > MSCE_MAX_NODES ? MSCE_MAX_NODES : n->nnodes;

	st->nodes = NEWN(a, Msce__NodeReport *, nn);
	if (view == NULL || st->nodes == NULL)
		return MSCE_ENOMEM;
	for (size_t i = 0; i < nn; i++) {
		Msce__NodeReport *r = NEW(a, Msce__NodeReport);
		if (r == NULL)
			return MSCE_ENOMEM;
		msce__node_report__init(r);
		r->node = n->nodes[i];
		r->name = (char *)node_center_name(n, r->node);
		if (r->node == n->cfg.node_id) {
			r->known = 1;
			r->n_vv = st->n_vv;
			r->vv = st->vv;
			r->digest = st->digest;
			r->writer = st->writer;
		} else {
			repl_node(n->repl, r->node, view);
			r->known = view->known;
			if (view->known) {
				size_t k = view->nvv < MSCE_MAX_ORIGINS
					       ? view->nvv
					       : MSCE_MAX_ORIGINS;
				r->vv = vv_msg(a, view->vv, k);
				r->digest.data =
				    arena_memdup(a, view->digest, 32);
				if (r->vv == NULL || r->digest.data == NULL)
					return MSCE_ENOMEM;
				r->n_vv = k;
				r->digest.len = 32;
				r->age_ms = now > view->received_ms
						? now - view->received_ms
						: 0;
				r->writer = view->writer;
				if (view->diverged_ms && now > view->diverged_ms)
					r->diverged_ms = now - view->diverged_ms;
			}
		}
		st->nodes[i] = r;
	}
	st->n_nodes = nn;
	return 0;
}

static int fill_counters(struct node *n, struct arena *a,
			 Msce__StatusResult *st)
{
	enum { MAXC = 96 };
	Msce__Counter *cs = NEWN(a, Msce__Counter, MAXC);
	struct peer_net_stats ns;
	struct repl_counters rc;
	size_t k = 0;

	st->counters = NEWN(a, Msce__Counter *, MAXC);
	if (cs == NULL || st->counters == NULL)
		return MSCE_ENOMEM;
	peer_net_stats(n->net, &ns);
	repl_counters(n->repl, &rc);
#define C(nm, v)                                                               \
	do {                                                                   \
		if (k < MAXC) {                                                \
			msce__counter__init(&cs[k]);                           \
			cs[k].name = nm;                                       \
			cs[k].value = (v);                                     \
			st->counters[k] = &cs[k];                              \
			k++;                                                   \
		}                                                              \
	} while (0)
	C("sessions_established", ns.sessions_established);
	C("refused_unknown_key", ns.refused_unknown_key);
	C("refused_replay", ns.refused_replay);
	C("refused_bad_handshake", ns.refused_bad_handshake);
	C("refused_too_many_pending", ns.refused_too_many_pending);
	C("handshake_timeouts", ns.handshake_timeouts);
	C("decrypt_failures", ns.decrypt_failures);
	C("oversized_frames", ns.oversized_frames);
	C("duplicate_sessions", ns.duplicate_sessions);
	C("crossed_dials", ns.crossed_dials);
	C("sessions_replaced", ns.sessions_replaced);
	C("connect_failures", ns.connect_failures);
	C("refused_clock_skew", ns.refused_clock_skew);
	C("bad_frames", ns.bad_frames);
	C("too_slow", ns.too_slow);
	C("rekeys", ns.rekeys);
	C("refused_bad_mac", ns.refused_bad_mac);
	C("refused_addr_pending", ns.refused_addr_pending);
	C("refused_under_load", ns.refused_under_load);
	C("cookies_sent", ns.cookies_sent);
	C("unconfirmed", ns.unconfirmed);
	C("forged_refusals", rc.forged_refusals);
	C("snapshot_refusals", rc.snapshot_refusals);
	C("snapshots_sent", rc.snapshots_sent);
	C("snapshots_received", rc.snapshots_received);
	C("clock_refusals", rc.clock_refusals);
	C("protocol_errors", rc.protocol_errors);
	C("link_timeouts", rc.link_timeouts);
	C("writer_changes", rc.writer_changes);
	C("writer_collisions", rc.writer_collisions);
	C("store_errors", rc.store_errors);
	C("tombstones_collected", n->tombstones_collected);
	C("log_truncated", n->log_truncated);
	C("client_requests", n->client_requests);
	C("client_errors", n->client_errors);
	if (n->clients != NULL) {
		struct client_server_stats cst;
		client_server_stats(n->clients, &cst);
		C("client_tcp_sessions", cst.tcp_sessions);
		C("client_refused_unknown_key", cst.refused_unknown_key);
		C("client_refused_replay", cst.refused_replay);
		C("client_refused_bad_handshake", cst.refused_bad_handshake);
		C("client_handshake_timeouts", cst.handshake_timeouts);
		C("client_decrypt_failures", cst.decrypt_failures);
		C("client_bad_frames", cst.bad_frames);
		C("client_oversized_requests", cst.oversized_requests);
		C("client_refused_clock_skew", cst.refused_clock_skew);
		C("client_refused_too_many_pending",
		  cst.refused_too_many_pending);
		C("client_oversized_replies", cst.oversized_replies);
		C("client_refused_bad_mac", cst.refused_bad_mac);
		C("client_refused_addr_pending", cst.refused_addr_pending);
		C("client_refused_under_load", cst.refused_under_load);
		C("client_cookies_sent", cst.cookies_sent);
		C("client_refused_key_connections",
		  cst.refused_key_connections);
		C("client_refused_partial_total", cst.refused_partial_total);
		C("client_refused_partial_key", cst.refused_partial_key);
		C("client_idle_timeouts", cst.idle_timeouts);
		C("client_partial_bytes", cst.partial_bytes);
	}
	C("store_failed", (uint64_t)(store_failed(n->store) != 0));
	C("store_bytes", (uint64_t)store_size(n->store));
#undef C
	st->n_counters = k;
	return 0;
}

/* A reason given here is whole in every status that judges it
 * (health_check: "not writing yet: " and the gate). */
_Static_assert(HEALTH_TEXT >= sizeof "not writing yet: " - 1 + REPL_WHY_MAX,
	       "HEALTH_TEXT cannot hold the longest write gate");

Msce__StatusResult *node_status(struct node *n, struct arena *a)
{
	Msce__StatusResult *st = NEW(a, Msce__StatusResult);
	struct vv_entry *vv = NEWN(a, struct vv_entry, MSCE_MAX_ORIGINS);
	uint64_t now = node_now_ms();
	size_t nvv;
	char gate[REPL_WHY_MAX];

	if (st == NULL || vv == NULL)
		return NULL;
	msce__status_result__init(st);
	st->digest.data = arena_alloc(a, 32);
	if (st->digest.data == NULL)
		return NULL;
	/* Every figure below is of this one commit: the writer thread may
	 * commit meanwhile. */
	nvv = store_state(n->store, vv, MSCE_MAX_ORIGINS, st->digest.data,
			  NULL);
	if (nvv > MSCE_MAX_ORIGINS)
		nvv = MSCE_MAX_ORIGINS;
	st->node = n->cfg.node_id;
	st->name = n->cfg.node_name;
	st->cluster = n->cfg.cluster;
	st->vv = vv_msg(a, vv, nvv);
	st->n_vv = nvv;
	if (st->vv == NULL)
		return NULL;
	st->digest.len = 32;
	st->time_ms = now;
	st->writer = store_writer(n->store, NULL);
	st->write_gate = "";
	if (node_write_gate(n, gate, sizeof gate) != 0) {
		st->write_gate = arena_memdup(a, gate, strlen(gate) + 1);
		if (st->write_gate == NULL)
			return NULL;
	}
	st->store_failure = "";
	if (store_failed(n->store)) {
		store_failed_why(n->store, gate, sizeof gate);
		st->store_failure = arena_memdup(a, gate, strlen(gate) + 1);
		if (st->store_failure == NULL)
			return NULL;
	}
	st->collection_held = "";
	if (repl_gc_held(n->repl, gate, sizeof gate)) {
		st->collection_held = arena_memdup(a, gate, strlen(gate) + 1);
		if (st->collection_held == NULL)
			return NULL;
	}
	repl_inbound_lag_at(n->repl, vv, nvv, &st->inbound_lag_changes,
			    &st->inbound_lag_ms);
	st->conflicts = node_open_conflicts(n);
	if (st->conflicts == UINT64_MAX) { /* unreadable: its status says why */
		st->conflicts = 0;
		st->conflicts_unknown = 1;
	}
	st->tombstones = store_tombstones(n->store);
	if (fill_peers(n, a, st, vv, nvv) || fill_nodes(n, a, st, now) ||
	    fill_counters(n, a, st))
		return NULL;
	return st;
}
