/* SPDX-License-Identifier: Apache-2.0 */
/* The node's Prometheus metrics: what an operator alerts on (links down,
 * lag, clock alarms, refusals, a store that refuses writes) and what a
 * capacity planner watches (commit latency, changes, store size). Rendered
 * on the loop thread from counters the parts keep anyway. */
#include <stdlib.h>
#include <string.h>

#include "msce_version.h"
#include "node.h"
#include "node_status.h"
#include "status_page.h"
#include "uv_metrics.h"

/* A label value: backslash, quote and newline escaped (names in configs
 * are plain, but a config is not ours to trust here). */
static void label_value(char *out, size_t cap, const char *s)
{
	size_t k = 0;
	for (; *s && k + 2 < cap; s++) {
		if (*s == '\\' || *s == '"' || *s == '\n') {
			out[k++] = '\\';
			out[k++] = *s == '\n' ? 'n' : *s;
		} else {
			out[k++] = *s;
		}
	}
	out[k] = '\0';
}

/* The labels of a per-peer series: this center, the peer's id and its
 * center name ({center="futian",peer="5",peer_center="luohu"}). */
struct peer_labels {
	char text[CONFIG_NAME_MAX * 4 + 64];
};

static void peer_labels(struct node *n, uint32_t peer, struct peer_labels *l)
{
	char self[CONFIG_NAME_MAX * 2], other[CONFIG_NAME_MAX * 2];
	label_value(self, sizeof self, n->cfg.node_name);
	label_value(other, sizeof other, node_center_name(n, peer));
	snprintf(l->text, sizeof l->text,
		 "center=\"%s\",peer=\"%u\",peer_center=\"%s\"", self, peer,
		 other);
}

#define GAUGE(b, name, help, fmt, ...)                                        \
	metrics_printf(b, "# HELP " name " " help "\n# TYPE " name            \
			  " gauge\n" name fmt "\n",                           \
		       __VA_ARGS__)
#define COUNTER(b, name, help, fmt, ...)                                      \
	metrics_printf(b, "# HELP " name " " help "\n# TYPE " name            \
			  " counter\n" name fmt "\n",                         \
		       __VA_ARGS__)

/* Centers whose report holds our vector with another digest. */
static size_t diverged_centers(struct node *n)
{
	uint32_t m[MSCE_MAX_NODES];
	struct repl_node_view v; /* 3 KiB */
	size_t nm = repl_members(n->repl, m, MSCE_MAX_NODES), k = 0;

	for (size_t i = 0; i < nm && i < MSCE_MAX_NODES; i++) {
		repl_node(n->repl, m[i], &v);
		k += v.known && v.diverged_ms != 0;
	}
	return k;
}

static int render(void *ctx, char **buf, size_t *len)
{
	struct node *n = ctx;
	struct metrics_buf b = {0};
	struct repl_peer_status ps[MSCE_MAX_NODES];
	struct vv_entry vv[MSCE_MAX_ORIGINS];
	/* One read of the vector for every lag: a commit may land between. */
	size_t nvv = store_vv(n->store, vv, MSCE_MAX_ORIGINS);
	size_t np = repl_peers_at(n->repl, vv, nvv, ps, MSCE_MAX_NODES);
	uint64_t in_changes, in_ms;
	char gate[REPL_WHY_MAX];
	struct peer_net_stats ns;
	struct repl_counters rc;
	struct writer_stats ws;
	uint64_t clock_alarm = 0;
	struct peer_labels *pl = calloc(MSCE_MAX_NODES, sizeof *pl);
	char center[CONFIG_NAME_MAX * 2], cluster[CONFIG_NAME_MAX * 2];

	if (pl == NULL)
		return MSCE_ENOMEM;

	if (np > MSCE_MAX_NODES)
		np = MSCE_MAX_NODES;
	repl_inbound_lag_at(n->repl, vv, nvv, &in_changes, &in_ms);
	peer_net_stats(n->net, &ns);
	repl_counters(n->repl, &rc);
	writer_stats(n->writer, &ws);
	for (size_t i = 0; i < np; i++)
		peer_labels(n, ps[i].node, &pl[i]);
	label_value(center, sizeof center, n->cfg.node_name);
	label_value(cluster, sizeof cluster, n->cfg.cluster);

	metrics_printf(&b, "# HELP msce_build_info the node: its version, "
			   "center, id and cluster (value 1)\n# TYPE "
			   "msce_build_info gauge\n");
	metrics_printf(&b,
		       "msce_build_info{version=\"%s\",center=\"%s\","
		       "node=\"%u\",cluster=\"%s\"} 1\n",
		       MSCE_VERSION, center, n->cfg.node_id, cluster);

	metrics_printf(&b, "# HELP msce_peer_connected 1 if the session with "
			   "the peer is up\n# TYPE msce_peer_connected gauge\n");
	for (size_t i = 0; i < np; i++)
		metrics_printf(&b, "msce_peer_connected{%s} %d\n",
			       pl[i].text, ps[i].state == REPL_ACTIVE);
	/* A lag not known (the peer has not spoken since we started) has
	 * no sample: a 0 would say it lacks nothing. */
	metrics_printf(&b, "# HELP msce_peer_lag_known 1 if what the peer "
			   "holds is known (it spoke since this node "
			   "started)\n# TYPE msce_peer_lag_known gauge\n");
	for (size_t i = 0; i < np; i++)
		metrics_printf(&b, "msce_peer_lag_known{%s} %d\n", pl[i].text,
			       ps[i].lag_known != 0);
	metrics_printf(&b, "# HELP msce_peer_lag_changes changes we hold that "
			   "the peer lacks\n# TYPE msce_peer_lag_changes gauge\n");
	for (size_t i = 0; i < np; i++)
		if (ps[i].lag_known)
			metrics_printf(&b, "msce_peer_lag_changes{%s} %llu\n",
				       pl[i].text,
				       (unsigned long long)ps[i].lag_changes);
	metrics_printf(&b, "# HELP msce_peer_lag_seconds how far behind the "
			   "peer is, by change time\n# TYPE "
			   "msce_peer_lag_seconds gauge\n");
	for (size_t i = 0; i < np; i++)
		if (ps[i].lag_known)
			metrics_printf(&b, "msce_peer_lag_seconds{%s} %.3f\n",
				       pl[i].text,
				       (double)ps[i].lag_ms / 1000.0);
	metrics_printf(&b, "# HELP msce_peer_clock_offset_seconds the peer's "
			   "clock minus ours\n# TYPE "
			   "msce_peer_clock_offset_seconds gauge\n");
	for (size_t i = 0; i < np; i++) {
		metrics_printf(&b, "msce_peer_clock_offset_seconds{%s} %.3f\n",
			       pl[i].text,
			       (double)ps[i].clock_offset_ms / 1000.0);
		uint64_t off = ps[i].clock_offset_ms < 0
				       ? (uint64_t)-ps[i].clock_offset_ms
				       : (uint64_t)ps[i].clock_offset_ms;
		if (ps[i].clock_refused || off > n->cfg.max_clock_skew_ms)
			clock_alarm = 1;
	}
	metrics_printf(&b, "# HELP msce_peer_snapshot_stalled 1 if a snapshot "
			   "to or from the peer made no progress for 30 s\n"
			   "# TYPE msce_peer_snapshot_stalled gauge\n");
	for (size_t i = 0; i < np; i++)
		metrics_printf(&b, "msce_peer_snapshot_stalled{%s} %d\n",
			       pl[i].text,
			       ps[i].snap_in.stalled || ps[i].snap_out.stalled);
	metrics_printf(&b, "# HELP msce_peer_snapshot_active 1 if a snapshot "
			   "is being sent to (out) or received from (in) the "
			   "peer\n# TYPE msce_peer_snapshot_active gauge\n");
	for (size_t i = 0; i < np; i++)
		metrics_printf(&b,
			       "msce_peer_snapshot_active{%s,direction=\"out\"} "
			       "%d\n"
			       "msce_peer_snapshot_active{%s,direction=\"in\"} "
			       "%d\n",
			       pl[i].text, ps[i].snap_out.active, pl[i].text,
			       ps[i].snap_in.active);
	metrics_printf(&b, "# HELP msce_peer_refusals_total what we refused "
			   "from the peer: forged (not what the origin "
			   "signed, closing the link; an origin our full "
			   "vector has no room for; or a gossiped status its "
			   "node did not sign), snapshot (not asked "
			   "for, or claiming more than the origins signed; "
			   "closing the link), protocol (closing the link)"
			   "\n# TYPE msce_peer_refusals_total counter\n");
	for (size_t i = 0; i < np; i++)
		metrics_printf(&b,
			       "msce_peer_refusals_total{%s,reason=\"forged\"} "
			       "%llu\n"
			       "msce_peer_refusals_total{%s,reason=\"snapshot\"} "
			       "%llu\n"
			       "msce_peer_refusals_total{%s,reason=\"protocol\"} "
			       "%llu\n",
			       pl[i].text,
			       (unsigned long long)ps[i].refused_forged,
			       pl[i].text,
			       (unsigned long long)ps[i].refused_snapshots,
			       pl[i].text,
			       (unsigned long long)ps[i].refused_protocol);
	GAUGE(&b, "msce_inbound_lag_changes",
	      "changes the peers are known to hold that this node lacks",
	      " %llu", (unsigned long long)in_changes);
	GAUGE(&b, "msce_inbound_lag_seconds",
	      "how much newer what the peers hold is than what we hold",
	      " %.3f", (double)in_ms / 1000.0);
	GAUGE(&b, "msce_writing",
	      "1 if this node takes writes (0: a new or restored store still "
	      "catching up)",
	      " %d", node_write_gate(n, gate, sizeof gate) == 0);
	COUNTER(&b, "msce_link_timeouts_total",
		"peer sessions closed because the peer fell silent", " %llu",
		(unsigned long long)rc.link_timeouts);
	COUNTER(&b, "msce_writer_collisions_total",
		"writers given up because a peer held more of them", " %llu",
		(unsigned long long)rc.writer_collisions);
	GAUGE(&b, "msce_clock_alarm",
	      "1 if a peer's clock is beyond max_clock_skew or its changes "
	      "wait for our clock",
	      " %llu", (unsigned long long)clock_alarm);
	COUNTER(&b, "msce_changes_applied_total",
		"changes from peers applied (duplicates not counted)", " %llu",
		(unsigned long long)ws.applied);
	COUNTER(&b, "msce_local_writes_total", "client writes committed",
		" %llu", (unsigned long long)ws.local_writes);
	/* The store's count: commits outside the writer's batches (log
	 * truncation, tombstone collection, snapshots, probes) fail too. */
	COUNTER(&b, "msce_commit_failures_total",
		"store write transactions that failed to commit, background "
		"ones and probes included",
		" %llu", (unsigned long long)store_commit_failures(n->store));
	metrics_histogram(&b, "msce_commit_seconds",
			  "durable commit latency of a batch", writer_lat_bounds,
			  ws.lat, WRITER_LAT_BUCKETS, ws.lat_sum);
	uint64_t conflicts = node_open_conflicts(n);
	if (conflicts != UINT64_MAX) /* else unknown: no sample */
		GAUGE(&b, "msce_open_conflicts",
		      "conflicts recorded and not yet resolved (msce "
		      "conflicts)",
		      " %llu", (unsigned long long)conflicts);
	GAUGE(&b, "msce_store_bytes", "bytes of store data in use", " %llu",
	      (unsigned long long)store_size(n->store));
	GAUGE(&b, "msce_store_failed",
	      "1 if the store refuses writes after a failed commit", " %d",
	      store_failed(n->store) != 0);
	GAUGE(&b, "msce_tombstones", "tombstones not yet collected", " %zu",
	      store_tombstones(n->store));
	GAUGE(&b, "msce_tombstone_collection_held",
	      "1 if the last tombstone collection pass stopped before "
	      "collecting (msce status says why)",
	      " %d", repl_gc_held(n->repl, gate, sizeof gate));
	GAUGE(&b, "msce_diverged_centers",
	      "centers that report this node's vector with another digest "
	      "(the same changes, other data: run msce verify)",
	      " %zu", diverged_centers(n));
	metrics_printf(&b, "# HELP msce_handshake_failures_total peer "
			   "handshakes and links refused, by reason\n# TYPE "
			   "msce_handshake_failures_total counter\n");
#define R(reason, v)                                                          \
	metrics_printf(&b,                                                    \
		       "msce_handshake_failures_total{reason=\"" reason      \
		       "\"} %llu\n",                                          \
		       (unsigned long long)(v))
	R("unknown_key", ns.refused_unknown_key);
	R("replay", ns.refused_replay);
	R("clock_skew", ns.refused_clock_skew);
	R("bad_handshake", ns.refused_bad_handshake);
	R("too_many_pending", ns.refused_too_many_pending);
	R("timeout", ns.handshake_timeouts);
	R("decrypt_failure", ns.decrypt_failures);
	R("oversized_frame", ns.oversized_frames);
	R("bad_frame", ns.bad_frames);
	R("bad_mac", ns.refused_bad_mac);
	R("addr_pending", ns.refused_addr_pending);
	R("under_load", ns.refused_under_load);
	R("unconfirmed", ns.unconfirmed);
#undef R
	COUNTER(&b, "msce_handshake_cookies_total",
		"peer message 1s answered with a cookie reply (under load)",
		" %llu", (unsigned long long)ns.cookies_sent);
	if (n->clients != NULL) {
		struct client_server_stats cs;

		client_server_stats(n->clients, &cs);
		metrics_printf(&b, "# HELP msce_client_refusals_total client "
				   "connections refused or closed, by reason\n"
				   "# TYPE msce_client_refusals_total counter\n");
#define CR(reason, v)                                                         \
	metrics_printf(&b,                                                    \
		       "msce_client_refusals_total{reason=\"" reason "\"} "   \
		       "%llu\n",                                              \
		       (unsigned long long)(v))
		CR("unknown_key", cs.refused_unknown_key);
		CR("replay", cs.refused_replay);
		CR("clock_skew", cs.refused_clock_skew);
		CR("bad_handshake", cs.refused_bad_handshake);
		CR("bad_mac", cs.refused_bad_mac);
		CR("too_many_pending", cs.refused_too_many_pending);
		CR("addr_pending", cs.refused_addr_pending);
		CR("under_load", cs.refused_under_load);
		CR("timeout", cs.handshake_timeouts);
		CR("decrypt_failure", cs.decrypt_failures);
		CR("bad_frame", cs.bad_frames);
		CR("oversized_request", cs.oversized_requests);
		CR("oversized_reply", cs.oversized_replies);
		CR("key_connections", cs.refused_key_connections);
		CR("partial_total", cs.refused_partial_total);
		CR("partial_key", cs.refused_partial_key);
#undef CR
		COUNTER(&b, "msce_client_idle_timeouts_total",
			"client connections closed by client_idle_timeout",
			" %llu", (unsigned long long)cs.idle_timeouts);
		COUNTER(&b, "msce_client_cookies_total",
			"client message 1s answered with a cookie reply",
			" %llu", (unsigned long long)cs.cookies_sent);
		GAUGE(&b, "msce_client_partial_bytes",
		      "bytes of unfinished client requests held now", " %llu",
		      (unsigned long long)cs.partial_bytes);
	}
	COUNTER(&b, "msce_forged_refusals_total",
		"batches, seals or gossiped statuses refused: not what their "
		"origin signed, or of an origin the full version vector has "
		"no room for",
		" %llu", (unsigned long long)rc.forged_refusals);
	COUNTER(&b, "msce_snapshot_refusals_total",
		"snapshots refused: not asked for, or claiming more than the "
		"origins signed",
		" %llu", (unsigned long long)rc.snapshot_refusals);
	COUNTER(&b, "msce_peer_duplicate_sessions_total",
		"connections refused because the peer's key already had a "
		"live session: a second process with that key?",
		" %llu", (unsigned long long)ns.duplicate_sessions);
	COUNTER(&b, "msce_snapshots_sent_total", "snapshots sent to peers",
		" %llu", (unsigned long long)rc.snapshots_sent);
	COUNTER(&b, "msce_snapshots_received_total",
		"snapshots received from peers", " %llu",
		(unsigned long long)rc.snapshots_received);
	COUNTER(&b, "msce_clock_refusals_total",
		"batches refused for a clock too far ahead", " %llu",
		(unsigned long long)rc.clock_refusals);
	COUNTER(&b, "msce_protocol_errors_total",
		"peer links closed for a protocol error", " %llu",
		(unsigned long long)rc.protocol_errors);
	COUNTER(&b, "msce_client_requests_total", "client requests", " %llu",
		(unsigned long long)n->client_requests);
	GAUGE(&b, "msce_client_write_backlog_bytes",
	      "decoded bytes of client writes waiting for the writer now",
	      " %llu", (unsigned long long)n->write_backlog);
	COUNTER(&b, "msce_client_reads_held_total",
		"times client connections were left unread: 64 MiB of decoded "
		"writes waited for the writer",
		" %llu", (unsigned long long)n->reads_held_total);
	free(pl);
	if (b.oom) {
		free(b.data);
		return MSCE_ENOMEM;
	}
	*buf = b.data;
	*len = b.len;
	return 0;
}

int node_metrics_start(struct node *n, struct err *e)
{
	if (n->cfg.metrics_listen[0] == '\0')
		return 0;
	int rc = metrics_start(n->loop, n->cfg.metrics_listen, render, n,
			       &n->metrics, e);
	return rc ? rc : status_page_start(n, e);
}
