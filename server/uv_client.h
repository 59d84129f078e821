/* The node's local client socket: a unix stream socket (mode 0660 inside a
 * 0750 directory) on which every connection has the admin role. Each
 * message is a 4-byte big-endian length and an encoded msce.ClientRequest
 * (responses likewise). This file does the I/O and framing only; requests
 * go to the callback and replies come back through client_conn_reply. */
#ifndef MSCE_UV_CLIENT_H
#define MSCE_UV_CLIENT_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "error.h"

#define CLIENT_MAX_MESSAGE (4u << 20)
#define CLIENT_MAX_INFLIGHT 1024

struct client_conn;
struct client_server;

/* A complete request from c; msg valid only during the call. The handler
 * calls client_conn_hold before any asynchronous work and
 * client_conn_reply exactly once per hold. */
typedef void (*client_request_cb)(void *data, struct client_conn *c,
				  const uint8_t *msg, size_t len);

int client_server_start(uv_loop_t *loop, const char *socket_path,
			client_request_cb cb, void *data,
			struct client_server **out, struct err *e);
/* Keeps c alive for one in-flight request; stops reading from c while it
 * has CLIENT_MAX_INFLIGHT requests in flight. */
void client_conn_hold(struct client_conn *c);
/* Sends a reply (copied) if c is still open, and releases one hold. */
void client_conn_reply(struct client_conn *c, const uint8_t *msg, size_t len);
/* Closes c after a protocol error (the hold count still applies). */
void client_conn_close(struct client_conn *c);
/* Refused requests and protocol errors, for metrics. */
uint64_t client_server_errors(const struct client_server *s);
/* Closes the listener and all connections, removes the socket file, then
 * calls done(arg) and frees the server. */
void client_server_stop(struct client_server *s, void (*done)(void *arg),
			void *arg);

#endif
