/* SPDX-License-Identifier: Apache-2.0 */
/* One connection from libmsce to a node, non-blocking: a unix socket (each
 * message a 4-byte big-endian length and the message) or TCP with the
 * Noise channel (common/channel.h; one client message per channel
 * message). The caller polls link_fd() for link_wants() and calls
 * link_step() with what poll reported, or with 0 when its timer fires:
 * the link connects, shakes hands, writes what is queued and reads whole
 * messages into a queue for link_pop(). The blocking transport
 * (transport.c) and the event-loop API (async.c) both sit on it.
 *
 * Any failure of the connection itself (refused, closed, a bad frame, a
 * failed decryption, the connect deadline) is sticky: link_error() reports
 * it from then on and the caller opens a new link. */
#ifndef MSCE_LINK_H
#define MSCE_LINK_H

#include <stddef.h>
#include <stdint.h>

/* Largest response accepted: the node sends at most 4 MiB over TCP and
 * 64 MiB over the unix socket (msce_limits.h). */
#define LINK_MAX_RESPONSE (64u << 20)

#define LINK_WANT_READ 1
#define LINK_WANT_WRITE 2

struct link;

/* Opens a link; 0 with *out set, or an msce error code with a message in
 * err (and *out NULL). A unix link is open at once. */
int link_open_unix(const char *path, struct link **out, char *err,
		   size_t errlen);
/* hostport "10.0.2.10:7402" (a name is resolved here, blocking); client_sk
 * the client's 32-byte secret key (copied into the channel at once);
 * server_pk the node's public key; cluster the name bound in the prologue.
 * Connect and handshake must be done within timeout_ms (0: no limit). */
int link_open_tcp(const char *hostport, const uint8_t *client_sk,
		  const uint8_t server_pk[32], const char *cluster,
		  uint64_t timeout_ms, struct link **out, char *err,
		  size_t errlen);
void link_close(struct link *l);

int link_fd(const struct link *l);
/* LINK_WANT_READ and/or LINK_WANT_WRITE: what to poll the fd for. */
int link_wants(const struct link *l);
/* CLOCK_MONOTONIC ms by which link_step must run even without events (the
 * connect deadline), 0 for none. */
uint64_t link_deadline(const struct link *l);
/* Does what ready (LINK_WANT_* bits, 0 for a timer) allows: connects,
 * shakes hands, writes, reads. 0, or the sticky error (message in err). */
int link_step(struct link *l, int ready, char *err, size_t errlen);
int link_is_open(const struct link *l);
/* The sticky error (0 while alive) and what it was. */
int link_error(const struct link *l);
const char *link_errmsg(const struct link *l);

/* Queues one message (copied) and writes what the socket takes now. Only
 * once open. MSCE_ETOOBIG over MSCE_MAX_MESSAGE, the link staying usable;
 * link_send_unchecked skips that check (tests of the node's own). */
int link_send(struct link *l, const uint8_t *msg, size_t len, char *err,
	      size_t errlen);
int link_send_unchecked(struct link *l, const uint8_t *msg, size_t len,
			char *err, size_t errlen);
/* Bytes queued and not yet written. */
size_t link_unsent(const struct link *l);
/* Takes the oldest complete message received (malloc'd, the caller frees
 * it): 1, or 0 if none. What arrived before a failure is still given. */
int link_pop(struct link *l, uint8_t **msg, size_t *len);

/* The timestamp for a handshake's message 1: unix ms, never the same twice
 * in this process (the node refuses one not above the last it took from a
 * key). */
uint64_t link_next_timestamp(void);
uint64_t link_now_ms(void); /* CLOCK_MONOTONIC */

#endif
