/* SPDX-License-Identifier: Apache-2.0 */
/* Peer links on libuv: listens for peers, dials every configured peer with
 * backoff and jitter, runs the Noise channel (common/channel.h) on each TCP
 * connection, and hands complete application messages (encoded PeerMsg) to
 * the node. One session per pair of nodes: when both ends dialled at once,
 * the connection dialled by the lower node id stays; otherwise a live
 * session (heard from within live_ms) is kept and a newer connection with
 * the same key refused as a duplicate (a second process with that node's
 * key), while a silent or closing one is replaced.
 *
 * The listener admits a connection by its source address first
 * (admission.h): pending handshakes are bounded in all, per address, and
 * some are kept for the configured peers' hosts; under load message 1
 * must carry a cookie and each address gets a handshake rate. Message 1's
 * mac1 is checked before any Diffie-Hellman, and a connecting key that is
 * not a configured peer is dropped before any session state is allocated.
 * An inbound connection becomes the peer's session (replacing a silent
 * one) only once the initiator confirmed it with its first transport
 * message, so a replayed message 1 never displaces anything. Pending
 * handshakes time out; every refusal is counted by reason and logged. */
#ifndef MSCE_UV_PEER_H
#define MSCE_UV_PEER_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "config.h"
#include "error.h"
#include "noise.h"

struct peer_net;

struct peer_net_cb {
	void *data;
	/* An authenticated session with peer is established. */
	void (*up)(void *data, uint32_t peer);
	/* The session with peer ended (any reason). Not called after
	 * peer_net_stop has been called. */
	void (*down)(void *data, uint32_t peer);
	/* One complete application message from peer; msg valid only
	 * during the call. */
	void (*message)(void *data, uint32_t peer, const uint8_t *msg,
			size_t len);
	/* peer's message 1 was refused for its clock: its timestamp minus
	 * ours. May be NULL. */
	void (*clock_refused)(void *data, uint32_t peer, int64_t offset_ms);
	/* A dial to peer failed, or its handshake did (why: for status).
	 * May be NULL. */
	void (*failed)(void *data, uint32_t peer, const char *why);
};

/* A zero field takes the default shown ("cfg" = from the config). */
struct peer_net_config {
	uv_loop_t *loop;
	/* cluster, node id, listen, [peer] list, max_clock_skew (the window
	 * for message 1 timestamps) and the limits */
	const struct config *cfg;
	const struct noise_keypair *key; /* our static key pair */
	size_t max_pending;	  /* inbound handshakes in progress; cfg */
	size_t max_pending_per_addr;   /* of which from one address; cfg */
	uint64_t handshake_timeout_ms; /* connect to confirmation; cfg */
	uint64_t backoff_min_ms;       /* 100 */
	uint64_t backoff_max_ms;       /* 5000 */
	size_t max_queued_bytes;       /* unsent bytes per link before it is cut
					  as too slow; 64 MiB */
	size_t max_message;	       /* largest message either way; 4 MiB */
	uint64_t rekey_ms;	       /* age of a send key; 1 hour */
	uint64_t rekey_check_ms;       /* how often keys are checked; 10000 */
	/* A session heard from within live_ms is kept against a newer
	 * connection with its key; 5000 (five gossip intervals, the
	 * replication liveness bound). */
	uint64_t live_ms;
	int race_dials; /* tests: no head start for the lower id, so both
			   ends dial at once and duplicates get resolved */
};

/* Refusal counters (also exported as metrics). */
struct peer_net_stats {
	uint64_t sessions_established;
	uint64_t refused_unknown_key;
	uint64_t refused_replay;	/* message 1 timestamp taken before */
	uint64_t refused_bad_handshake; /* malformed, truncated, wrong size */
	uint64_t refused_too_many_pending;
	uint64_t handshake_timeouts;
	uint64_t decrypt_failures;
	uint64_t oversized_frames;
	uint64_t duplicate_sessions; /* refused: its key has a live session */
	uint64_t crossed_dials;	     /* both ends dialled at once; one went */
	uint64_t sessions_replaced;  /* a silent session gave way to a newer */
	uint64_t connect_failures;   /* dial failed or link lost before auth */
	uint64_t refused_clock_skew; /* message 1 timestamp off our clock */
	uint64_t bad_frames;	     /* protocol violation after handshake */
	uint64_t too_slow;	     /* cut at max_queued_bytes */
	uint64_t rekeys;	     /* send keys rotated by the timer */
	uint64_t refused_bad_mac;    /* message 1 not made for us: junk, or
					for another node, cluster or version */
	uint64_t refused_addr_pending; /* its address has too many pending */
	uint64_t refused_under_load;   /* over its address's handshake rate,
					  or ignored our cookie */
	uint64_t cookies_sent;	       /* under load: message 1 answered with
					  a cookie reply */
	uint64_t unconfirmed;	       /* answered, never confirmed: a replayed
					  message 1, or a lost initiator */
};

/* Starts listening on cfg->listen and dialling the peers. cfg (the
 * struct and what it points to: loop, config, key) must outlive the net; cb
 * is copied. Addresses must be IP literals or "localhost" (names are not
 * resolved). Returns 0 or an error naming the address: MSCE_EINVAL or
 * MSCE_ECONFIG for a bad setting, MSCE_EIO if the listener cannot be
 * bound, MSCE_ENOMEM. In the rare failure after the listener handle exists
 * (uv_tcp_open, uv_listen), the handles are released when the loop next
 * runs. */
int peer_net_start(const struct peer_net_config *cfg,
		   const struct peer_net_cb *cb, struct peer_net **out,
		   struct err *e);
/* Sends one application message to peer, if a session is up (else the
 * message is dropped and MSCE_ECLOSED returned). msg is copied. Also
 * MSCE_ENOTFOUND for a peer not in the config, MSCE_ETOOBIG over
 * max_message (the session stays), MSCE_ENOMEM. If the write breaks the
 * link (error, too slow) MSCE_ECLOSED is returned and cb->down follows
 * from the loop, never from inside this call. */
int peer_net_send(struct peer_net *n, uint32_t peer, const uint8_t *msg,
		  size_t len);
/* Closes the session with peer (it will be dialled again after backoff).
 * cb->down runs later from the loop, not inside this call. */
void peer_net_close(struct peer_net *n, uint32_t peer, const char *reason);
void peer_net_stats(const struct peer_net *n, struct peer_net_stats *out);
/* The peer's address in the config changed (a reload wrote it into the
 * config the net was started with): parse it again. A session that is up
 * stays; the next dial goes to the new address, soon. 0, MSCE_ENOTFOUND
 * (no such peer), or the parse error naming the address (the old one is
 * kept). */
int peer_net_readdress(struct peer_net *n, uint32_t peer, struct err *e);
/* Closes everything; done(arg) runs once every handle is closed, after
 * which the net is freed. No callbacks after this call. */
void peer_net_stop(struct peer_net *n, void (*done)(void *arg), void *arg);

#endif
