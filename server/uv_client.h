/* SPDX-License-Identifier: Apache-2.0 */
/* The node's client server, two listeners feeding one request callback:
 *
 * - the local unix socket ([node] socket; mode 0660 inside a 0750
 *   directory), on which every connection has the admin role and each
 *   message is a 4-byte big-endian length and the message;
 * - the TCP listener ([node] client_listen), on which every connection
 *   runs the Noise channel (common/channel.h) as the responder. Only keys of
 *   configured [client NAME] sections get past message 1, and each such
 *   connection has the role of its client entry. Each channel message is
 *   exactly one encoded msce.ClientRequest (or, back, ClientResponse).
 *
 * Limits, from the config (deploy/README.md "Limits"): handshakes pending
 * at once, in all and per source address (admission.h; under load message
 * 1 needs a cookie); connections per client key; bytes of unfinished
 * requests per connection and in all (both kinds of connection); an idle
 * timeout for TCP connections with nothing in flight. Each refusal is
 * counted.
 *
 * This file does the I/O, framing and authentication only; requests go to
 * the callback and replies come back through client_conn_reply, the same
 * way for both kinds of connection. */
#ifndef MSCE_UV_CLIENT_H
#define MSCE_UV_CLIENT_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "config.h"
#include "error.h"
#include "noise.h"

/* Largest request, either kind of connection; also the largest reply over
 * TCP (the channel has one limit for both directions). */
#define CLIENT_MAX_MESSAGE (4u << 20)
/* Largest reply over the unix socket (what libmsce accepts). */
#define CLIENT_MAX_REPLY_UNIX (64u << 20)
#define CLIENT_MAX_INFLIGHT 1024
/* A connection stops taking requests while this many replies are owed
 * (CLIENT_MAX_INFLIGHT) or this many reply bytes wait to be written (a
 * client that sends but does not read); checked between requests. */
#define CLIENT_MAX_QUEUED (16u << 20)
/* The same, for all connections of one client key together: a key's
 * connections stop taking requests while it holds this many reply bytes
 * (its other keys' clients go on). */
#define CLIENT_MAX_QUEUED_PER_KEY (48u << 20)

struct client_conn;
struct client_server;

/* A complete request from c; msg valid only during the call. The handler
 * calls client_conn_hold before any asynchronous work and
 * client_conn_reply exactly once per hold. */
typedef void (*client_request_cb)(void *data, struct client_conn *c,
				  const uint8_t *msg, size_t len);

/* Refusals and sessions, counted since start (exported as metrics). */
struct client_server_stats {
	uint64_t tcp_sessions;		/* authenticated TCP connections */
	uint64_t refused_unknown_key;	/* key of no [client] section */
	uint64_t refused_replay;	/* message 1 timestamp taken before */
	uint64_t refused_clock_skew;	/* message 1 timestamp off our clock */
	uint64_t refused_bad_handshake; /* malformed, does not decrypt */
	uint64_t refused_too_many_pending; /* max_pending_handshakes reached */
	uint64_t handshake_timeouts;
	uint64_t decrypt_failures; /* after the handshake */
	uint64_t bad_frames;	   /* bad frame, empty or zero-length request */
	uint64_t oversized_requests; /* over client_max_partial_bytes */
	uint64_t oversized_replies;  /* over the connection's reply limit */
	uint64_t rekeys;	     /* send keys rotated by the timer */
	uint64_t refused_bad_mac;    /* message 1 not made for this node */
	uint64_t refused_addr_pending; /* max_pending_per_address reached */
	uint64_t refused_under_load;   /* over the address's handshake rate,
					  or ignored the cookie */
	uint64_t cookies_sent;	       /* under load: cookie replies */
	uint64_t refused_key_connections; /* client_max_connections_per_key */
	uint64_t refused_partial_total; /* client_max_partial_total reached */
	uint64_t refused_partial_key;	/* one key's share of it reached */
	uint64_t idle_timeouts;	       /* closed by client_idle_timeout */
	uint64_t partial_bytes;	       /* gauge: unfinished request bytes
					  held now, all connections */
};

/* Starts the listeners that cfg asks for: the unix socket at
 * cfg->socket_path unless it is empty, the TCP listener at
 * cfg->client_listen (an IP literal or localhost, with a port) unless it
 * is empty; at least one must be set. cfg (its cluster, clients, clock
 * skew and limits) and key (the node's static key pair, used as the Noise
 * responder)
 * are borrowed and must outlive the server; cb and data are kept. *out gets
 * the server (owned by the caller until client_server_stop). Returns 0, or
 * MSCE_EINVAL, MSCE_ECONFIG (bad address or cluster), MSCE_EIO (cannot
 * listen) or MSCE_ENOMEM with the reason in e; after a failure once a
 * listener handle exists, the handles are released when the loop next
 * runs. */
int client_server_start(uv_loop_t *loop, const struct config *cfg,
			const struct noise_keypair *key, client_request_cb cb,
			void *data, struct client_server **out, struct err *e);
/* Keeps c alive for one in-flight request; stops reading from c while it
 * has CLIENT_MAX_INFLIGHT requests in flight. */
void client_conn_hold(struct client_conn *c);
/* Sends a reply (msg, len bytes, copied) if c is still open, and releases
 * one hold. A reply over client_conn_max_reply(c) cannot be sent: c is
 * closed and the event counted. */
void client_conn_reply(struct client_conn *c, const uint8_t *msg, size_t len);
/* Closes c after a protocol error (the hold count still applies). */
void client_conn_close(struct client_conn *c);
/* CONFIG_ROLE_ADMIN for the unix socket; for TCP the role of the client's
 * [client] section. */
int client_conn_role(const struct client_conn *c);
/* The [client NAME] of a TCP connection, "local" for the unix socket.
 * Points into the config or is static; valid as long as c. */
const char *client_conn_name(const struct client_conn *c);
/* Largest reply c can carry: CLIENT_MAX_MESSAGE over TCP,
 * CLIENT_MAX_REPLY_UNIX over the unix socket. */
size_t client_conn_max_reply(const struct client_conn *c);
/* Whether c came over TCP (a [client] key) rather than the local unix
 * socket: what config_backup_path calls remote. */
int client_conn_remote(const struct client_conn *c);
/* Copies the counters into out (caller's). */
void client_server_stats(const struct client_server *s,
			 struct client_server_stats *out);
/* All refusals and protocol errors of the stats, summed. */
uint64_t client_server_errors(const struct client_server *s);
/* Closes the listeners and all connections, removes the socket file, then
 * calls done(arg) and frees the server (once no request is in flight). */
void client_server_stop(struct client_server *s, void (*done)(void *arg),
			void *arg);

/* Whether c can still be written to (not closing); for long streams. */
int client_conn_open(const struct client_conn *c);
/* Bytes of replies queued to c and not yet written (flow control). */
size_t client_conn_queued(const struct client_conn *c);
/* Stops (on) or resumes (!on) reading requests on every open TCP
 * connection and every unix socket connection owed a reply: the node
 * holds as many requests as it will (the writes waiting for the writer).
 * Requests already read go on; the rest wait in the sockets. */
void client_server_hold_reads(struct client_server *s, int on);

#endif
