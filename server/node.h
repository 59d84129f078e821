/* SPDX-License-Identifier: Apache-2.0 */
/* A running node: the store, the group-commit writer, the replication
 * core, the peer links and the client socket, wired together on one libuv
 * loop. node.c does the wiring and the lifecycle; api.c serves client
 * requests. */
#ifndef MSCE_NODE_H
#define MSCE_NODE_H

#include <uv.h>

#include "config.h"
#include "noise.h"
#include "repl.h"
#include "store.h"
#include "uv_client.h"
#include "uv_peer.h"
#include "writer.h"

struct node {
	uv_loop_t *loop;
	struct config cfg;
	struct noise_keypair key;
	struct store *store;
	struct writer *writer;
	struct repl *repl;
	struct peer_net *net;
	struct client_server *clients;
	struct metrics_server *metrics;
	struct repl_store_ops ops;
	struct repl_io io;
	uint32_t *nodes;
	size_t nnodes;
	uv_timer_t tick;
	uv_idle_t watch_idle; /* while a watch has more to read (watch.c) */
	int stopping;
	int closing_parts;
	void (*stopped)(void *arg);
	void *stopped_arg;
	uint64_t client_requests, client_errors;
	uint64_t tombstones_collected; /* by the writer thread */
	uint64_t log_truncated;	       /* changes dropped from the log */
	int retrying;		/* a store probe commit is queued */
	uint64_t next_retry_ms; /* when to try the next one */
	int store_down;		/* its failure has been logged */
	struct waiter *waiters; /* puts waiting for min_sites (api.c) */
	size_t write_backlog; /* decoded bytes of requests at the writer */
	int reads_held;	      /* client reads held for it (api.c) */
	uint64_t reads_held_total;
	struct watcher *watchers; /* watch streams (watch.c) */
};

uint64_t node_now_ms(void);

/* Opens the store and starts everything from the config file at path. */
/* Gives the store the signing keys of the config (at start and reload). */
int node_set_sign_keys(struct node *n, struct err *e);
/* msced --rotate-master-key: with msced stopped, re-wraps every data key
 * of the store of config_path under the key in new_path; from then on only
 * that key opens the store (and the config must name it). Returns 0 with
 * the count in *rewrapped, or an error with the reason in e. */
int node_rotate_master_key(const char *config_path, const char *new_path,
			   size_t *rewrapped, struct err *e);
int node_start(uv_loop_t *loop, const char *config_path, struct node **out,
	       struct err *e);
/* Commits what is in flight, closes links and sockets, frees the node,
 * then calls done(arg). */
void node_stop(struct node *n, void (*done)(void *arg), void *arg);

/* 0 if local writes may go ahead, else MSCE_EBUSY with why. */
int node_write_gate(struct node *n, char *why, size_t whylen);

/* metrics.c: serves /metrics on [node] metrics_listen (if set). */
int node_metrics_start(struct node *n, struct err *e);

/* api.c: one client request (an encoded msce.ClientRequest). */
void api_request(void *node, struct client_conn *c, const uint8_t *msg,
		 size_t len);
/* api.c: answer min_sites puts that are now satisfied or timed out. */
void api_check_waiters(struct node *n);
/* api.c: local changes committed (e.g. audit entries): push them to the
 * peers and the watchers. */
void api_committed(struct node *n);

/* watch.c: watch streams. purpose is the request's (copied): personal
 * records delivered are audited with it, before they are sent. */
struct Msce__WatchRequest;
void watch_start(struct node *n, struct client_conn *c, uint64_t id,
		 const struct Msce__WatchRequest *req, const char *purpose);
/* New changes were committed: send them to every watcher. */
void watch_pump(struct node *n);
/* Ends every stream (shutdown). */
void watch_close_all(struct node *n);

#endif
