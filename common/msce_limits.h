/* SPDX-License-Identifier: Apache-2.0 */
/* msce limits: what the node accepts, shared by the node, libmsce and the
 * wire protocol (docs/PROTOCOL.md "Limits"). Installed with msce.h as
 * <msce/msce_limits.h>, part of the public API. Every name, value and
 * message that enters the system is checked against these before it is
 * stored or allocated for. */
#ifndef MSCE_LIMITS_H
#define MSCE_LIMITS_H

/* ---- one write ---- */
#define MSCE_MAX_COLLECTION 32      /* bytes, [a-z][a-z0-9_]* */
#define MSCE_MAX_KEY 256            /* bytes of UTF-8 */
#define MSCE_MAX_FIELD_NAME 128     /* bytes of UTF-8 */
#define MSCE_MAX_VALUE 65536        /* bytes of one field value */
#define MSCE_MAX_FIELDS 256         /* fields in one change (one put) */
#define MSCE_MAX_CHANGE (1u << 20)  /* encoded bytes of one change */
/* A record, as a local write would leave it: its visible fields and their
 * names and values in bytes. Concurrent writes at several centers may
 * merge into a larger record; every path that carries records copes. */
#define MSCE_MAX_RECORD_FIELDS 1024
#define MSCE_MAX_RECORD (1u << 20)

/* ---- one message ---- */
/* Encoded bytes of one request, of one reply over TCP, of one peer
 * message. */
#define MSCE_MAX_MESSAGE (4u << 20)
/* A reply over the unix socket may be this large. */
#define MSCE_MAX_REPLY_UNIX (64u << 20)
#define MSCE_MAX_BATCH 10000        /* puts in one batch request */
#define MSCE_SCAN_DEFAULT_LIMIT 100 /* records per scan page for limit 0 */
#define MSCE_MAX_SCAN_LIMIT 10000   /* a larger scan limit is cut to this */
#define MSCE_CONFLICTS_DEFAULT_LIMIT 1000 /* conflicts listed for limit 0 */
#define MSCE_PUT_DEFAULT_TIMEOUT_MS 10000 /* min_sites wait for 0 */
/* Open watches: each is pumped on every commit, and each delivery of
 * personal records writes an audit entry. */
#define MSCE_MAX_WATCHES 16         /* on one connection */
#define MSCE_MAX_WATCHES_PER_KEY 64 /* on all connections of one client key */

/* ---- a cluster ---- */
#define MSCE_MAX_NODES 64    /* nodes in one cluster */
#define MSCE_MAX_ORIGINS 128 /* origins (writers) in one version vector */

#endif
