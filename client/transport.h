/* How libmsce reaches a node: a unix socket (4-byte big-endian length +
 * message) or TCP with the Noise channel (common/channel.h), one client
 * message per channel message. Blocking; one transport per client. */
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
 * public key, cluster the cluster name bound in the prologue. */
int transport_tcp(const char *hostport, const uint8_t *client_sk,
		  const uint8_t server_pk[32], const char *cluster,
		  struct transport **out, char *err, size_t errlen);
/* Sends one message (copied). */
int transport_send(struct transport *t, const uint8_t *msg, size_t len,
		   char *err, size_t errlen);
/* Receives one message into *msg (malloc'd, the caller frees it); waits at
 * most timeout_ms (0 = forever). */
int transport_recv(struct transport *t, uint8_t **msg, size_t *len,
		   uint64_t timeout_ms, char *err, size_t errlen);
/* The most a send waits for room in the socket (0 = forever, the
 * default); a send that times out kills the transport (MSCE_ETIMEOUT). */
void transport_set_send_timeout(struct transport *t, uint64_t ms);
void transport_close(struct transport *t);

#endif
