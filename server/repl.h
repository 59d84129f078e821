/* SPDX-License-Identifier: Apache-2.0 */
/* The replication core: a pure state machine.
 *
 * No libuv, sockets, threads, clock or randomness of its own. The driver
 * (msced's libuv code, or the simulator) hands it link events, received
 * messages and the time; the core answers by calling the driver back
 * through struct repl_io (send a message, close a link, apply a batch,
 * merge a snapshot chunk, draw a random number) and by reading the store
 * through struct repl_store_ops. Randomness is asked of the driver so that
 * the simulator replays a seed exactly.
 *
 * Re-entrancy rule, as in canonical/raft: io->apply and io->snapshot must
 * not call back (repl_apply_done / repl_snapshot_done) before they return;
 * the driver completes them later. The other io callbacks must not call
 * back into the core at all.
 *
 * Per link the session goes DOWN -> HELLO (sent ours, waiting for theirs)
 * -> ACTIVE. In ACTIVE each side streams to the other, per origin, the
 * changes after the other's vector, in seq order, in batches, with at most
 * window_bytes unacknowledged; the receiver applies each batch durably and
 * answers Ack{vector}. A peer whose vector is below our log floor for some
 * origin gets a snapshot first. A link that delivers nothing for
 * liveness_ms is closed and re-established.
 *
 * Identity: a store writes under one writer (origin) id at a time. A new,
 * wiped or restored store has none; the core gives it a new one (a fresh
 * incarnation) once it has caught up with a settled peer (see
 * repl_write_gate), so no (origin, seq) is ever reused.
 *
 * Tombstones: a tombstone made by origin p at hlc T is collected once, for
 * every writer o that exists or may still have changes in flight, o has
 * reported a status holding T and every node holds o's changes up to that
 * status. Writers of wiped or restored stores stop counting once every
 * node knows they are gone and all hold the same last seq of them. */
#ifndef MSCE_REPL_H
#define MSCE_REPL_H

#include <stddef.h>
#include <stdint.h>

#include "bounds.h"
#include "error.h"
#include "store.h"

struct repl;

struct repl_config {
	uint32_t node_id;
	const char *cluster;
	const uint32_t *nodes; /* every configured node id, self included */
	size_t nnodes;
	uint64_t max_skew_ms;        /* default 60000 */
	size_t window_bytes;         /* unacked bytes per peer; 4 MiB */
	size_t batch_bytes;          /* per Changes message; 256 KiB */
	size_t batch_changes;        /* per Changes message; 1024 */
	uint64_t log_retention;      /* changes kept per origin; 1000000 */
	uint64_t gossip_interval_ms; /* default 1000 */
	uint64_t retry_ms;           /* after a clock refusal; 1000 */
	uint64_t relay_delay_ms;     /* before relaying another origin; 3000 */
	uint64_t truncate_interval_ms; /* log truncation and GC; 1000 */
	size_t snapshot_chunk_bytes; /* default 256 KiB */
	uint64_t liveness_ms;        /* silent link is down; 5 gossips */
	uint64_t snapshot_stall_ms;  /* no chunk for this long: stalled;
					30000 */
};

/* Store access for the core. Reads are synchronous; durable changes of
 * received data are asynchronous (struct repl_io.apply and .snapshot);
 * maintenance writes (log_truncate, gc_tombstones, set_writer) may be
 * queued by the driver and need no answer: the core reads their effect
 * back through vv / writer. The simulator and msced both pass thin
 * wrappers of store.h. */
struct repl_store_ops {
	void *ctx;
	size_t (*vv)(void *ctx, struct vv_entry *out, size_t max);
	/* store_state: vector, digest and hlc high-water of one commit. */
	size_t (*state)(void *ctx, struct vv_entry *vv, size_t max,
			uint8_t digest[32], uint64_t *hw);
	/* store_status_sign and store_status_verify: the statuses gossip
	 * carries are signed by their nodes (verify: 0 good, -1 bad, 1 no
	 * key for that node). */
	int (*status_sign)(void *ctx, const uint8_t *status, size_t len,
			   uint8_t sig[64]);
	int (*status_verify)(void *ctx, uint32_t node, const uint8_t *status,
			     size_t len, const uint8_t sig[64]);
	/* Current writer id and its birth hlc; 0 if none. */
	uint32_t (*writer)(void *ctx, uint64_t *born);
	/* Gives the store writer id w (born above floor), or 0 to stop
	 * writing under the current one. */
	int (*set_writer)(void *ctx, uint32_t w, uint64_t floor, struct err *e);
	/* store_log_read_segs: whole signed segments. */
	int (*log_read)(void *ctx, uint32_t origin, uint64_t from,
			size_t max_count, size_t max_bytes, store_log_cb cb,
			store_seg_cb seg_cb, void *cbctx, struct err *e);
	int (*log_truncate)(void *ctx, uint32_t origin, uint64_t upto,
			    struct err *e);
	/* Drops tombstones of origin upto[i].origin with hlc <= upto[i].hlc. */
	int (*gc_tombstones)(void *ctx, const struct vv_entry *upto, size_t n,
			     size_t *dropped, struct err *e);
	int (*snap_begin)(void *ctx, struct store_snap **out, struct err *e);
	size_t (*snap_vv)(const struct store_snap *sn, struct vv_entry *out,
			  size_t max);
	int (*snap_next)(struct store_snap *sn, size_t max_bytes,
			 store_record_cb cb, void *cbctx, int *done,
			 struct store_pos *end, struct err *e);
	void (*snap_end)(struct store_snap *sn);
	size_t (*snap_segs)(const struct store_snap *sn, struct seg *out,
			    size_t max);
	/* Seals of legacy history: those we hold, and keeping those a peer
	 * sent (checked; the driver may queue the commit). */
	size_t (*seals)(void *ctx, struct seg *out, size_t max);
	int (*add_seals)(void *ctx, const struct seg *g, size_t n,
			 struct err *e);
	/* Optional (NULL: never): decode and check a batch that waits behind
	 * an apply, on this thread while the driver applies (store_prepare,
	 * store_prep_bytes, store_prep_free). */
	struct store_prep *(*prepare)(struct store_blob *b, size_t n,
				      const struct seg *g, size_t ng);
	size_t (*prep_bytes)(const struct store_prep *p);
	void (*prep_free)(struct store_prep *p);
	/* Optional (NULL: never): whether the store was opened from a
	 * backup and has no writer since (store_restored). */
	int (*restored)(void *ctx);
};

struct repl_io {
	void *data;
	/* Queue an encoded PeerMsg to peer. buf is only valid during the
	 * call. Must not fail: a broken link is reported by repl_link_down. */
	void (*send)(void *data, uint32_t peer, const uint8_t *buf, size_t len);
	/* Close the link to peer (after a protocol error or refusal). The
	 * driver calls repl_link_down later, as for any closed link. */
	void (*close)(void *data, uint32_t peer, int code, const char *reason);
	/* Apply n encoded changes in ng signed segments durably
	 * (store_apply_signed), then call
	 * repl_apply_done with the same token. The blobs are valid until
	 * then. */
	void (*apply)(void *data, uint64_t token, const struct store_blob *b,
		      size_t n, const struct seg *g, size_t ng);
	/* Merge one snapshot chunk durably (store_snap_apply), then call
	 * repl_snapshot_done with the same token. c is valid until then. */
	void (*snapshot)(void *data, uint64_t token,
			 const struct store_snap_chunk *c);
	/* A uniformly random 32-bit number. */
	uint32_t (*random)(void *data);
	/* Optional: a line for the log (level as in log.h). */
	void (*trace)(void *data, int level, const char *msg);
};

/* Copies cfg (and its node list). ops and io must outlive the core. */
int repl_create(const struct repl_config *cfg, const struct repl_store_ops *ops,
		const struct repl_io *io, uint64_t now_ms, struct repl **out,
		struct err *e);
/* Frees the core. Outstanding applies are forgotten: the driver must not
 * call repl_apply_done / repl_snapshot_done after this. */
void repl_destroy(struct repl *r);

/* The configured node list changed (a center added or removed): links to
 * removed nodes are dropped (the driver closes them), new ones start DOWN.
 * nodes must include this node. */
int repl_reconfigure(struct repl *r, const uint32_t *nodes, size_t n,
		     struct err *e);

/* An authenticated link to peer is up (we send Hello) or gone. */
void repl_link_up(struct repl *r, uint32_t peer, uint64_t now_ms);
void repl_link_down(struct repl *r, uint32_t peer, uint64_t now_ms);
/* The driver could not reach peer or its handshake failed (why: for
 * status, until a session is greeted). Ignored while a session is up. */
void repl_link_failed(struct repl *r, uint32_t peer, uint64_t now_ms,
		      const char *why);
/* peer's handshake was refused for its clock (offset: its clock minus
 * ours): its status says clock_refused until a session comes up. */
void repl_clock_refused(struct repl *r, uint32_t peer, int64_t offset_ms);
/* One encoded PeerMsg from peer. Bad messages close the link. */
void repl_recv(struct repl *r, uint32_t peer, const uint8_t *msg, size_t len,
	       uint64_t now_ms);
/* Completion of io->apply: rc and res as from store_apply; e->msg says
 * why when rc != 0. */
void repl_apply_done(struct repl *r, uint64_t token, int rc,
		     const struct store_apply_result *res, const struct err *e,
		     uint64_t now_ms);
/* Completion of io->snapshot: rc as from store_snap_apply. */
void repl_snapshot_done(struct repl *r, uint64_t token, int rc,
			const struct err *e, uint64_t now_ms);
/* New local changes were committed: push them. */
void repl_local_commit(struct repl *r, uint64_t now_ms);
/* Timers: gossip, liveness, retries after clock refusals, relays, log
 * truncation, tombstone collection, the write gate. Call at least every
 * 100 ms. */
void repl_tick(struct repl *r, uint64_t now_ms);

/* Bytes of a reason repl_write_gate or repl_gc_held gives, with its NUL:
 * a why buffer of this size holds it whole. */
#define REPL_WHY_MAX 256

/* May this node make local writes? 0 if so; else MSCE_EBUSY and why (a
 * new or restored store still catching up, or a writer given up). */
int repl_write_gate(struct repl *r, char *why, size_t whylen);

/* Did the last tombstone collection pass (every truncate_interval_ms)
 * stop before collecting? 1 and why (the first member or writer it waits
 * for); 0 if it ran or has not run yet. */
int repl_gc_held(const struct repl *r, char *why, size_t whylen);

/* A store restored from a backup that holds changes of a closed writer
 * (docs/PROTOCOL.md, "Tombstone collection"): it hands out nothing and
 * takes no writer; it must be emptied and catch up like a wiped one.
 * 1 if so, and why; else 0. */
int repl_must_empty(struct repl *r, char *why, size_t whylen);

/* ---- status ---------------------------------------------------------- */

enum repl_state { REPL_DOWN = 0, REPL_HELLO, REPL_ACTIVE };

struct repl_snap_status {
	int active;		  /* a snapshot is being sent or received */
	uint64_t chunks, records; /* so far */
	uint64_t started_ms, progress_ms; /* 0 when not active */
	int stalled;		  /* no chunk for snapshot_stall_ms */
};

struct repl_peer_status {
	uint32_t node;
	enum repl_state state;
	uint64_t last_contact_ms; /* 0 = never */
	int64_t clock_offset_ms;  /* their clock minus ours, at Hello/gossip */
	/* What it holds is known: it told us (Hello or its own status)
	 * since we started. Until then the lags are 0 and mean nothing. */
	int lag_known;
	/* Why the link is down: the last refusal (ours or its) or failure to
	 * reach it, and when (ms); "" once a session is greeted. */
	char link_error[REPL_WHY_MAX];
	uint64_t link_error_ms;
	uint64_t lag_changes;     /* changes we hold that they lack */
	uint64_t lag_ms;          /* age difference of the newest they lack */
	int clock_refused;        /* their changes were too far ahead */
	uint64_t sent_changes, recv_changes, dup_changes;
	uint64_t snapshots_sent, snapshots_received;
	uint64_t link_timeouts;   /* sessions closed for silence */
	/* What we refused from it: changes that are not what their
	 * origin signed (or unsigned), snapshots we had not asked for or
	 * that claimed more than the origins signed, other protocol
	 * violations. */
	uint64_t refused_forged, refused_snapshots, refused_protocol;
	struct repl_snap_status snap_out, snap_in;
};

struct repl_node_view {
	uint32_t node;
	int known;
	struct vv_entry vv[MSCE_MAX_ORIGINS];
	size_t nvv;
	uint8_t digest[32];
	uint64_t hw;
	uint64_t time_ms;     /* its clock when reported */
	uint64_t received_ms; /* our clock when we learned it */
	uint32_t writer;      /* its current writer, 0 if none */
	uint64_t born;
	int settled;
	/* Since when (our clock) it has reported our vector with another
	 * digest, for at least REPL_DIVERGED_MS and over two of its reports:
	 * the same changes made different data (a store copied back without
	 * msce backup, a bug, an insider). 0: not seen. */
	uint64_t diverged_ms;
};

#define REPL_DIVERGED_MS 10000

/* Fills at most max entries; returns the number of configured peers. */
size_t repl_peers(const struct repl *r, struct repl_peer_status *out,
		  size_t max);
/* The same against a vector the caller read (store_state), so that the
 * lags agree with the vector and digest shown beside them: the store's
 * writer thread may commit between two reads. */
size_t repl_peers_at(const struct repl *r, const struct vv_entry *mine,
		     size_t n, struct repl_peer_status *out, size_t max);
/* What we know of node id (self included), or known = 0. */
void repl_node(const struct repl *r, uint32_t node, struct repl_node_view *out);
/* Every node id we track: configured ones and those other nodes list as
 * members. Returns the count; fills at most max. */
size_t repl_members(const struct repl *r, uint32_t *out, size_t max);

/* What peers are known to hold that we lack: changes, and the age of the
 * newest in ms (their hlc minus ours for that origin). */
void repl_inbound_lag(const struct repl *r, uint64_t *changes, uint64_t *ms);
void repl_inbound_lag_at(const struct repl *r, const struct vv_entry *mine,
			 size_t n, uint64_t *changes, uint64_t *ms);

struct repl_counters {
	uint64_t snapshots_sent, snapshots_received;
	uint64_t clock_refusals, protocol_errors;
	uint64_t tombstones_collected, log_truncated;
	uint64_t store_errors;	   /* batches our store could not apply */
	uint64_t link_timeouts;	   /* sessions closed for silence */
	uint64_t writer_changes;   /* writers given to this store */
	uint64_t writer_collisions; /* writers given up: a peer held more of
				       them than we did */
	uint64_t forged_refusals;   /* batches that did not verify */
	uint64_t snapshot_refusals; /* unasked or unproven snapshots */
};
void repl_counters(const struct repl *r, struct repl_counters *out);

/* Nodes known to hold change (origin, seq) durably: ourselves if our
 * committed vector covers it, and every peer whose acknowledged or
 * gossiped vector does. Fills at most max ids; returns the count. */
size_t repl_holders(struct repl *r, uint32_t origin, uint64_t seq,
		    uint32_t *out, size_t max);

#endif
