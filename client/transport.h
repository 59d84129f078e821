/* SPDX-License-Identifier: Apache-2.0 */
/* How libmsce's blocking calls reach a node: a link (link.h: a unix socket,
 * or TCP with the Noise channel) driven with poll() until each call is
 * done. One transport per client. */
#ifndef MSCE_TRANSPORT_H
#define MSCE_TRANSPORT_H

#include <stddef.h>
#include <stdint.h>

struct transport;

/* Each returns 0 or an msce error code, with a message in err. */
int transport_unix(const char *path, struct transport **out, char *err,
		   size_t errlen);
/* hostport "1.2.3.4:7402"; client_sk is the client's 32-byte secret key
 * (borrowed, copied into sodium_malloc memory), server_pk the node's
 * public key, cluster the cluster name bound in the prologue. Connect and
 * handshake within 5 s (transport_tcp) or timeout_ms (0: no limit). */
int transport_tcp(const char *hostport, const uint8_t *client_sk,
		  const uint8_t server_pk[32], const char *cluster,
		  struct transport **out, char *err, size_t errlen);
int transport_tcp_timeout(const char *hostport, const uint8_t *client_sk,
			  const uint8_t server_pk[32], const char *cluster,
			  uint64_t timeout_ms, struct transport **out,
			  char *err, size_t errlen);
/* Sends one message (copied). */
int transport_send(struct transport *t, const uint8_t *msg, size_t len,
		   char *err, size_t errlen);
/* Receives one message into *msg (malloc'd, the caller frees it); waits at
 * most timeout_ms (0 = forever). */
int transport_recv(struct transport *t, uint8_t **msg, size_t *len,
		   uint64_t timeout_ms, char *err, size_t errlen);
/* 1 if the connection is known dead, or the node has closed it while we
 * waited for nothing (checked without blocking): a caller with nothing in
 * flight reconnects before its next request instead of failing it. */
int transport_hung_up(struct transport *t);
void transport_close(struct transport *t);

#endif
