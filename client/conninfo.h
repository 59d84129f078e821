/* SPDX-License-Identifier: Apache-2.0 */
/* msce_conninfo: the centers a client may use and how (see msce.h), and
 * opening a connection to one of them, blocking or not. */
#ifndef MSCE_CONNINFO_H
#define MSCE_CONNINFO_H

#include <stddef.h>
#include <stdint.h>

#include "channel.h"
#include "link.h"
#include "msce.h"
#include "transport.h"

#define CONNINFO_CONNECT_MS 5000
#define CONNINFO_REQUEST_MS 30000
#define CONNINFO_RETRY_MIN_MS 100
#define CONNINFO_RETRY_MAX_MS 5000

struct center {
	int tcp;
	char addr[256]; /* socket path or host:port */
	uint8_t pk[32]; /* TCP: the node's public key */
	char label[272]; /* "unix:PATH", "tcp:HOSTPORT" */
};

struct msce_conninfo {
	struct center *centers;
	size_t n;
	uint8_t *sk; /* sodium_malloc'd client secret key, or NULL */
	char cluster[CHANNEL_MAX_CLUSTER + 1];
	unsigned connect_ms, request_ms; /* request_ms 0: no limit */
	int reconnect;
	unsigned retry_min_ms, retry_max_ms;
	char msg[512];
};

/* A copy of ci (the secret key in locked memory again); NULL when out of
 * memory. */
msce_conninfo *conninfo_copy(const msce_conninfo *ci);
/* A conninfo of one center with the old connect functions' behaviour:
 * connect within 5 s, no request timeout, no reconnection. */
msce_conninfo *conninfo_single(void);
/* Starts a non-blocking link to center i. */
int conninfo_open(const msce_conninfo *ci, size_t i, struct link **out,
		  char *err, size_t errlen);
/* Connects to center i, blocking until open or failed. */
int conninfo_connect(const msce_conninfo *ci, size_t i, struct transport **out,
		     char *err, size_t errlen);

#endif
