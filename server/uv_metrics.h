/* SPDX-License-Identifier: Apache-2.0 */
/* The metrics endpoint: a deliberately small HTTP/1.1 server on libuv that
 * answers `GET /metrics` with Prometheus text exposition format (0.0.4),
 * and GET on the few other paths given with metrics_route (the node's
 * status page and its JSON), and nothing else.
 *
 * One request per connection. Only the request line is parsed; the header
 * section is read (at most METRICS_MAX_HEADER bytes, up to the blank line)
 * and ignored. Every answer carries Content-Length and `Connection: close`,
 * and the connection is closed after it:
 *
 *   GET /metrics[?...]  200, the text the render callback produced
 *   GET a route's path  200, that route's render (metrics_route)
 *   other path          404
 *   other method        405 (with `Allow: GET`)
 *   malformed line      400
 *   HTTP/2.x etc.       505
 *   no blank line in METRICS_MAX_HEADER bytes  431
 *   render failed       500
 *
 * Bounds: at most METRICS_MAX_CONNS connections at once, and
 * METRICS_MAX_PER_ADDR of them from one address, so that one host holding
 * slow connections cannot keep the scrapers out (more are accepted and
 * closed at once, without an answer); a connection has
 * METRICS_TIMEOUT_MS from its accept to send a complete request, and as
 * long again to take the answer, else it is closed without one. Nothing
 * here blocks the loop, but the render callback runs on the loop thread, so
 * it must be quick too. */
#ifndef MSCE_UV_METRICS_H
#define MSCE_UV_METRICS_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "error.h"

#define METRICS_MAX_HEADER 8192 /* request line and headers, bytes */
#define METRICS_MAX_CONNS 64	/* connections open at once */
#define METRICS_MAX_PER_ADDR 8	/* of which from one address (IPv6: /64) */
#define METRICS_TIMEOUT_MS 5000 /* to send the request; to take the answer */
#define METRICS_MAX_ROUTES 8	/* paths served, /metrics included */
#define METRICS_PATH_MAX 64	/* bytes of a route's path, with its NUL */

struct metrics_server;

/* Produces the whole exposition text for one scrape. Called on the loop
 * thread with *buf == NULL and *len == 0; on return *buf is a malloc'd
 * buffer (or NULL if *len is 0) whose ownership passes to the server, which
 * frees it after the answer is written. Returns 0, or an MSCE_E* code, in
 * which case the server answers 500 and still frees whatever *buf points
 * to. metrics_printf and metrics_histogram below build such a buffer. */
typedef int (*metrics_render_fn)(void *ctx, char **buf, size_t *len);

/* Listens on addr: "127.0.0.1:9401", "[::1]:9401" or "localhost:9401" (IP
 * literals only; names other than localhost are not resolved). loop, ctx
 * and render are borrowed and must outlive the server; addr is copied. On
 * success *out is the server, to be released with metrics_stop. Returns 0,
 * MSCE_EINVAL (missing argument, bad address syntax), MSCE_ECONFIG (host
 * is not an IP address), MSCE_EIO (cannot bind or listen, e.g. the port is
 * in use) or MSCE_ENOMEM, with the reason and the address in e; *out is
 * then NULL. In the rare failure after the listener handle exists
 * (uv_tcp_open, uv_listen) its memory is released when the loop next
 * runs. */
int metrics_start(uv_loop_t *loop, const char *addr, metrics_render_fn render,
		  void *ctx, struct metrics_server **out, struct err *e);

/* Closes the listener and every connection (answers in flight are cut).
 * No render call happens after this. done(arg), if not NULL, runs from
 * the loop once every handle is closed, after the server has been freed.
 * Call at most once; m is invalid afterwards (except inside render, where
 * returning is still fine). */
void metrics_stop(struct metrics_server *m, void (*done)(void *arg), void *arg);

/* Also serves GET path (e.g. "/", "/status.json"; the query is ignored)
 * with render's text as content_type (a static string). render and ctx
 * are borrowed like metrics_start's. Returns 0, MSCE_EINVAL (bad or
 * duplicate path) or MSCE_ETOOBIG (METRICS_MAX_ROUTES reached). */
int metrics_route(struct metrics_server *m, const char *path,
		  const char *content_type, metrics_render_fn render,
		  void *ctx);

/* Requests answered with 200 since start. */
uint64_t metrics_scrapes(const struct metrics_server *m);

/* ---- helpers for render callbacks ----
 *
 * A growing text buffer. Start from all zeros; the caller owns data and
 * frees it (or hands it to the server as *buf). oom is set once anything
 * fails (allocation, formatting); later appends are then ignored, so a
 * renderer checks it once at the end:
 *
 *   struct metrics_buf b = {0};
 *   metrics_printf(&b, "msce_up 1\n");
 *   if (b.oom) { free(b.data); return MSCE_ENOMEM; }
 *   *buf = b.data; *len = b.len; return 0;
 *
 * data is always NUL-terminated once non-NULL; len excludes the NUL. */
struct metrics_buf {
	char *data;
	size_t len, cap;
	int oom;
};

/* Appends printf-style text. */
void metrics_printf(struct metrics_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Appends one histogram without labels:
 *
 *   # HELP name help            (only if help is not NULL; \ and newline
 *                                are escaped)
 *   # TYPE name histogram
 *   name_bucket{le="0.005"} 3   (one per bound, cumulative)
 *   name_bucket{le="+Inf"} 7
 *   name_sum 1.25
 *   name_count 7
 *
 * bounds[nbounds] are the finite upper bounds in increasing order; counts
 * has nbounds + 1 entries, per bucket (not cumulative), the last for
 * values above every bound. Numbers are printed in the shortest form that
 * reads back exactly; +Inf, -Inf and NaN as Prometheus spells them. */
void metrics_histogram(struct metrics_buf *b, const char *name,
		       const char *help, const double *bounds,
		       const uint64_t *counts, size_t nbounds, double sum);

#endif
