/* The replication core: a pure state machine.
 *
 * No libuv, sockets, threads or clock in here. The driver (msced's libuv
 * code, or the simulator) hands it link events, received messages and the
 * time; the core answers by calling the driver back through struct
 * repl_io (send a message, close a link, apply a batch) and by reading the
 * store through struct repl_store_ops. Randomness is not needed.
 *
 * Re-entrancy rule, as in canonical/raft: io->apply must not call
 * repl_apply_done before it returns; the driver completes it later. The
 * other io callbacks must not call back into the core at all.
 *
 * Per link the session goes DOWN -> HELLO (sent ours, waiting for theirs)
 * -> ACTIVE. In ACTIVE each side streams to the other, per origin, the
 * changes after the other's vector, in seq order, in batches, with at most
 * window_bytes unacknowledged; the receiver applies each batch durably and
 * answers Ack{vector}. A peer whose vector is below our log floor for some
 * origin gets a snapshot first (SNAPSHOT state on our side). */
#ifndef MSCE_REPL_H
#define MSCE_REPL_H

#include <stddef.h>
#include <stdint.h>

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
	uint64_t relay_delay_ms;     /* before relaying another origin; 200 */
	uint64_t truncate_interval_ms; /* log truncation and GC; 1000 */
	size_t snapshot_chunk_bytes; /* default 256 KiB */
};

/* Store access for the core. Reads are synchronous; the batch apply of
 * received changes is asynchronous (struct repl_io.apply). The simulator
 * and msced both pass thin wrappers of store.h. */
struct repl_store_ops {
	void *ctx;
	size_t (*vv)(void *ctx, struct vv_entry *out, size_t max);
	void (*digest)(void *ctx, uint8_t out[32]);
	uint64_t (*hw)(void *ctx);
	int (*log_read)(void *ctx, uint32_t origin, uint64_t from,
			size_t max_count, size_t max_bytes, store_log_cb cb,
			void *cbctx, struct err *e);
	int (*log_truncate)(void *ctx, uint32_t origin, uint64_t upto,
			    struct err *e);
	int (*gc_tombstones)(void *ctx, struct version upto, size_t *dropped,
			     struct err *e);
	int (*clock_advance)(void *ctx, uint64_t wall_ms, struct err *e);
	int (*snap_begin)(void *ctx, struct store_snap **out, struct err *e);
	int (*snap_merge)(void *ctx, const struct store_snap_record *r,
			  size_t n, struct err *e);
	int (*snap_finish)(void *ctx, const struct vv_entry *vv, size_t n,
			   struct err *e);
};

struct repl_io {
	void *data;
	/* Queue an encoded PeerMsg to peer. buf is only valid during the
	 * call. Must not fail: a broken link is reported by repl_link_down. */
	void (*send)(void *data, uint32_t peer, const uint8_t *buf, size_t len);
	/* Close the link to peer (after a protocol error or refusal). The
	 * driver calls repl_link_down later, as for any closed link. */
	void (*close)(void *data, uint32_t peer, int code, const char *reason);
	/* Apply n encoded changes durably, then call repl_apply_done with the
	 * same token. The blobs are valid until then. */
	void (*apply)(void *data, uint64_t token, const struct store_blob *b,
		      size_t n);
	/* Optional: a line for the log (level as in log.h). */
	void (*trace)(void *data, int level, const char *msg);
};

/* Copies cfg (and its node list). ops and io must outlive the core. */
int repl_create(const struct repl_config *cfg, const struct repl_store_ops *ops,
		const struct repl_io *io, uint64_t now_ms, struct repl **out,
		struct err *e);
/* Frees the core. Outstanding applies are forgotten: the driver must not
 * call repl_apply_done after this. */
void repl_destroy(struct repl *r);

/* An authenticated link to peer is up (we send Hello) or gone. */
void repl_link_up(struct repl *r, uint32_t peer, uint64_t now_ms);
void repl_link_down(struct repl *r, uint32_t peer, uint64_t now_ms);
/* One encoded PeerMsg from peer. Bad messages close the link. */
void repl_recv(struct repl *r, uint32_t peer, const uint8_t *msg, size_t len,
	       uint64_t now_ms);
/* Completion of io->apply: rc and res as from store_apply; e->msg says
 * why when rc != 0. */
void repl_apply_done(struct repl *r, uint64_t token, int rc,
		     const struct store_apply_result *res, const struct err *e,
		     uint64_t now_ms);
/* New local changes were committed: push them. */
void repl_local_commit(struct repl *r, uint64_t now_ms);
/* Timers: gossip, retries after clock refusals, relays, log truncation,
 * tombstone collection. Call at least every 100 ms. */
void repl_tick(struct repl *r, uint64_t now_ms);

/* ---- status ---------------------------------------------------------- */

enum repl_state { REPL_DOWN = 0, REPL_HELLO, REPL_ACTIVE };

struct repl_peer_status {
	uint32_t node;
	enum repl_state state;
	uint64_t last_contact_ms; /* 0 = never */
	int64_t clock_offset_ms;  /* their clock minus ours, at Hello/gossip */
	uint64_t lag_changes;     /* changes we hold that they lack */
	uint64_t lag_ms;          /* age difference of the newest they lack */
	int clock_refused;        /* their changes were too far ahead */
	uint64_t sent_changes, recv_changes, dup_changes;
	uint64_t snapshots_sent, snapshots_received;
};

struct repl_node_view {
	uint32_t node;
	int known;
	struct vv_entry vv[64];
	size_t nvv;
	uint8_t digest[32];
	uint64_t hw;
	uint64_t time_ms;     /* its clock when reported */
	uint64_t received_ms; /* our clock when we learned it */
};

/* Fills at most max entries; returns the number of configured peers. */
size_t repl_peers(const struct repl *r, struct repl_peer_status *out,
		  size_t max);
/* What we know of node id (self included), or known = 0. */
void repl_node(const struct repl *r, uint32_t node, struct repl_node_view *out);

struct repl_counters {
	uint64_t snapshots_sent, snapshots_received;
	uint64_t clock_refusals, protocol_errors;
	uint64_t tombstones_collected, log_truncated;
	uint64_t store_errors; /* batches our store could not apply */
};
void repl_counters(const struct repl *r, struct repl_counters *out);

/* May this node make local writes without reusing a seq of its own that
 * a peer already holds? 0 if so; else MSCE_EBUSY (try again) and why. A peer that
 * holds more of our origin than we do means our own changes are still
 * coming back (after a restore or a rebuild). With all_peers, every
 * configured peer must have greeted us since start (a restored backup);
 * with one_peer, at least one (a store just created). */
int repl_write_gate(struct repl *r, int all_peers, int one_peer, char *why,
		    size_t whylen);

/* Nodes known to hold change (origin, seq) durably: ourselves if our
 * committed vector covers it, and every peer whose acknowledged or
 * gossiped vector does. Fills at most max ids; returns the count. */
size_t repl_holders(struct repl *r, uint32_t origin, uint64_t seq,
		    uint32_t *out, size_t max);

#endif
