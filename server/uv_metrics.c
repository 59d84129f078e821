/* SPDX-License-Identifier: Apache-2.0 */
/* Metrics endpoint on libuv (the behaviour is in uv_metrics.h).
 *
 * Happy path: the listener accepts a connection into a struct conn, which
 * reads into its own METRICS_MAX_HEADER buffer under a timer. Once the
 * buffer holds a blank line, the request line is classified, the answer is
 * built (status line and headers in the conn, body from the render
 * callback) and sent with one uv_write. When the write completes we shut
 * down our side and linger: keep reading and discarding until the client
 * closes, so that bytes we never read (a request body, the rest of an
 * oversized header) do not make the kernel reset the connection and throw
 * the answer away before the client has read it. The tcp handle and the
 * timer are then closed and the conn is freed by the second close callback.
 *
 * Failure modes: a connection over METRICS_MAX_CONNS, or one we have no
 * memory for, is accepted into a bare handle and closed at once. If even
 * that handle cannot be allocated the connection is left in libuv's accept
 * slot (libuv stops watching the listener meanwhile) and a timer retries
 * the accept shortly. A read error, a reset, a client that goes away
 * before its request is complete, a timeout, or lingering past
 * LINGER_MAX_BYTES or LINGER_MS all just close the connection. Whatever
 * the state, close is asynchronous: a write or shutdown in flight comes
 * back with UV_ECANCELED and is ignored, and nothing is freed before the
 * close callbacks. metrics_stop closes every handle and the server frees
 * itself when the count of open handles drops to zero. */
#include "uv_metrics.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "admission.h"
#include "config.h"
#include "log.h"
#include "uv_addr.h"

#define LISTEN_BACKLOG 128
#define LINGER_MS 1000 /* after our answer, for the client's FIN */
#define LINGER_MAX_BYTES (64u << 10) /* discarded after the request */
#define RETRY_ACCEPT_MS 100	     /* after running out of memory */
#define MAX_METHOD 16
#define ADDR_MAX 256
#define CT_METRICS "text/plain; version=0.0.4"
#define CT_TEXT "text/plain; charset=utf-8"

enum conn_state {
	CONN_READING, /* collecting the request line and headers */
	CONN_WRITING, /* answer in flight */
	CONN_LINGER,  /* answer sent, our side shut down; discarding input */
	CONN_CLOSING, /* uv_close called; freed in the last close callback */
};

struct conn {
	uv_tcp_t tcp;	  /* data = this conn */
	uv_timer_t timer; /* data = this conn */
	uv_write_t write;
	uv_shutdown_t shutdown;
	struct metrics_server *m;
	struct conn *prev, *next;
	struct admission_entry *slot; /* its address's count, or NULL */
	enum conn_state state;
	int handles;	  /* of tcp and timer, not yet closed */
	int peer_eof;	  /* the client shut down its side */
	size_t len;	  /* bytes of the request in req */
	size_t discarded; /* bytes read after the request */
	char *body;	  /* owned if body_owned, else static */
	size_t body_len;
	int body_owned;
	const char *ctype; /* of a 200 answer */
	char head[256]; /* status line and headers of the answer */
	char req[METRICS_MAX_HEADER];
};

struct route {
	char path[METRICS_PATH_MAX];
	const char *ctype;
	metrics_render_fn render;
	void *ctx;
};

struct metrics_server {
	uv_loop_t *loop;
	struct route routes[METRICS_MAX_ROUTES]; /* [0]: /metrics */
	size_t nroutes;
	uv_tcp_t listener; /* data = this server */
	uv_timer_t retry;  /* accept again after running out of memory */
	struct conn *conns; /* every conn not yet freed, closing ones too */
	size_t nconns;
	struct admission per_addr; /* connections by source address */
	size_t handles; /* initialised and not yet closed, all kinds */
	int stopping;
	void (*done)(void *arg);
	void *done_arg;
	uint64_t scrapes;
	uint64_t refused;    /* connections closed without an answer */
	uint64_t warn_ms;    /* loop time of the last refusal warning */
	int warned;	     /* warn_ms is set */
	char addr[ADDR_MAX]; /* as configured, for logs */
};

static void conn_close(struct conn *c);
static void on_retry(uv_timer_t *t);

/* ---- addresses and the listening socket ---- */



/* ---- handles and closing ---- */

/* One handle of the server's is closed; the last one frees it. */
static void server_release(struct metrics_server *m)
{
	void (*done)(void *);
	void *arg;

	if (--m->handles > 0)
		return;
	done = m->done;
	arg = m->done_arg;
	admission_free(&m->per_addr);
	free(m);
	if (done)
		done(arg);
}

static void on_server_handle_close(uv_handle_t *h)
{
	server_release(h->data);
}

static void on_reject_close(uv_handle_t *h)
{
	struct metrics_server *m = h->data;

	free(h);
	server_release(m);
}

static void on_conn_close(uv_handle_t *h)
{
	struct conn *c = h->data;
	struct metrics_server *m = c->m;

	if (--c->handles == 0) {
		if (c->prev)
			c->prev->next = c->next;
		else
			m->conns = c->next;
		if (c->next)
			c->next->prev = c->prev;
		m->nconns--;
		if (c->slot != NULL)
			admission_leave(&m->per_addr, c->slot,
					uv_now(m->loop));
		if (c->body_owned)
			free(c->body);
		free(c);
	}
	server_release(m);
}

static void conn_close(struct conn *c)
{
	if (c->state == CONN_CLOSING)
		return;
	c->state = CONN_CLOSING;
	uv_close((uv_handle_t *)&c->tcp, on_conn_close);
	uv_close((uv_handle_t *)&c->timer, on_conn_close);
}

/* At most one WARN line a second, carrying the running count. */
static void note_refused(struct metrics_server *m, const char *why)
{
	uint64_t now = uv_now(m->loop);

	m->refused++;
	if (m->warned && now - m->warn_ms < 1000)
		return;
	m->warned = 1;
	m->warn_ms = now;
	log_warn("metrics %s: closed a connection: %s (%" PRIu64
		 " without an answer so far)",
		 m->addr, why, m->refused);
}

/* ---- the request ---- */

static int is_digit(unsigned char ch)
{
	return ch >= '0' && ch <= '9';
}

/* RFC 9110 tchar, without the locale. */
static int is_tchar(unsigned char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
	       is_digit(ch) || (ch && strchr("!#$%&'*+-.^_`|~", ch));
}

/* The status we answer a request line (without its line end) with:
 * "METHOD SP target SP HTTP/d.d", nothing more or less; for 200, *route
 * is the route of the target's path. */
static int classify(const struct metrics_server *m, const char *line,
		    size_t n, size_t *route)
{
	const unsigned char *s = (const unsigned char *)line;
	size_t i = 0, mlen, t0, tlen, plen;

	while (i < n && is_tchar(s[i]))
		i++;
	if (i == 0 || i > MAX_METHOD || i >= n || s[i] != ' ')
		return 400;
	mlen = i;
	t0 = ++i;
	while (i < n && s[i] > 0x20 && s[i] < 0x7f)
		i++;
	if (i == t0 || i >= n || s[i] != ' ')
		return 400;
	tlen = i - t0;
	i++;
	if (n - i != 8 || memcmp(s + i, "HTTP/", 5) != 0 ||
	    !is_digit(s[i + 5]) || s[i + 6] != '.' || !is_digit(s[i + 7]))
		return 400;
	if (s[i + 5] != '1')
		return 505;
	for (plen = 0; plen < tlen && s[t0 + plen] != '?'; plen++)
		;
	for (*route = 0; *route < m->nroutes; (*route)++)
		if (strlen(m->routes[*route].path) == plen &&
		    memcmp(s + t0, m->routes[*route].path, plen) == 0)
			break;
	if (*route == m->nroutes)
		return 404;
	if (mlen != 3 || memcmp(s, "GET", 3) != 0)
		return 405;
	return 200;
}

/* Whether the header section ends (a line feed followed by an empty line,
 * CRLF or bare LF) in req[0..len), looking only at what can involve bytes
 * from `from` on. */
static int header_complete(const char *req, size_t len, size_t from)
{
	for (size_t i = from; i < len; i++) {
		if (req[i] != '\n')
			continue;
		if (i + 1 < len && req[i + 1] == '\n')
			return 1;
		if (i + 2 < len && req[i + 1] == '\r' && req[i + 2] == '\n')
			return 1;
	}
	return 0;
}

static const char *reason(int code)
{
	switch (code) {
	case 200:
		return "OK";
	case 400:
		return "Bad Request";
	case 404:
		return "Not Found";
	case 405:
		return "Method Not Allowed";
	case 431:
		return "Request Header Fields Too Large";
	case 505:
		return "HTTP Version Not Supported";
	default:
		return "Internal Server Error";
	}
}

/* ---- the answer ---- */

static void on_conn_timer(uv_timer_t *t)
{
	struct conn *c = t->data;

	log_debug("metrics %s: connection timed out", c->m->addr);
	conn_close(c);
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
	struct conn *c = req->handle->data;

	if (c->state == CONN_CLOSING)
		return;
	/* Otherwise keep lingering: the client's FIN, a read error or the
	 * timer ends it. */
	if (status < 0)
		conn_close(c);
}

static void on_write(uv_write_t *req, int status)
{
	struct conn *c = req->handle->data;
	int rc;

	if (c->state == CONN_CLOSING)
		return;
	if (c->body_owned)
		free(c->body);
	c->body = NULL;
	c->body_owned = 0;
	if (status < 0 || c->peer_eof) {
		conn_close(c);
		return;
	}
	c->state = CONN_LINGER;
	uv_timer_start(&c->timer, on_conn_timer, LINGER_MS, 0);
	rc = uv_shutdown(&c->shutdown, (uv_stream_t *)&c->tcp, on_shutdown);
	if (rc)
		conn_close(c);
}

/* Sends the answer; body (len bytes) is freed after the write if owned,
 * else it is static. */
static void answer(struct conn *c, int code, char *body, size_t len, int owned)
{
	uv_buf_t bufs[2];
	int n, rc;

	c->body = body;
	c->body_len = len;
	c->body_owned = owned;
	n = snprintf(c->head, sizeof(c->head),
		     "HTTP/1.1 %d %s\r\n"
		     "Content-Type: %s\r\n"
		     "Content-Length: %zu\r\n"
		     "%s"
		     "Connection: close\r\n"
		     "\r\n",
		     code, reason(code), code == 200 ? c->ctype : CT_TEXT,
		     len, code == 405 ? "Allow: GET\r\n" : "");
	bufs[0].base = c->head;
	bufs[0].len = (size_t)n;
	bufs[1].base = body;
	bufs[1].len = len;
	c->state = CONN_WRITING;
	uv_timer_start(&c->timer, on_conn_timer, METRICS_TIMEOUT_MS, 0);
	rc = uv_write(&c->write, (uv_stream_t *)&c->tcp, bufs, len ? 2 : 1,
		      on_write);
	if (rc) {
		log_debug("metrics %s: write: %s", c->m->addr, uv_strerror(rc));
		conn_close(c);
	}
}

static void answer_static(struct conn *c, int code)
{
	static char text[][40] = {
	    "bad request\n",
	    "not found\n",
	    "method not allowed\n",
	    "request header fields too large\n",
	    "HTTP version not supported\n",
	    "internal server error\n",
	};
	char *body;

	switch (code) {
	case 400:
		body = text[0];
		break;
	case 404:
		body = text[1];
		break;
	case 405:
		body = text[2];
		break;
	case 431:
		body = text[3];
		break;
	case 505:
		body = text[4];
		break;
	default:
		body = text[5];
		break;
	}
	answer(c, code, body, strlen(body), 0);
}

/* The header section is complete: classify the request line and answer. */
static void handle_request(struct conn *c)
{
	struct metrics_server *m = c->m;
	const char *nl = memchr(c->req, '\n', c->len);
	size_t n = (size_t)(nl - c->req);
	char *buf = NULL;
	size_t len = 0, route = 0;
	int code, rc;

	if (n > 0 && c->req[n - 1] == '\r')
		n--;
	code = classify(m, c->req, n, &route);
	if (code != 200) {
		log_debug("metrics %s: answered %d", m->addr, code);
		answer_static(c, code);
		return;
	}
	c->ctype = m->routes[route].ctype;
	rc = m->routes[route].render(m->routes[route].ctx, &buf, &len);
	if (c->state == CONN_CLOSING) { /* metrics_stop inside render */
		free(buf);
		return;
	}
	if (rc || (buf == NULL && len > 0)) {
		free(buf);
		log_warn("metrics %s: render failed: %s", m->addr,
			 err_str(rc ? rc : MSCE_EINVAL));
		answer_static(c, 500);
		return;
	}
	m->scrapes++;
	answer(c, 200, buf, len, 1);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	struct conn *c = h->data;

	(void)suggested;
	if (c->state == CONN_READING) {
		/* Never full here: a full buffer has been answered (431). */
		buf->base = c->req + c->len;
		buf->len = sizeof(c->req) - c->len;
	} else {
		/* The request is parsed; its buffer takes what we discard. */
		buf->base = c->req;
		buf->len = sizeof(c->req);
	}
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	struct conn *c = s->data;
	size_t from;

	(void)buf;
	if (nread == 0 || c->state == CONN_CLOSING)
		return;
	if (nread < 0) {
		/* EOF while our answer is in flight is a client that has
		 * shut down its side after the request: finish the answer.
		 * libuv has stopped reading. */
		if (nread == UV_EOF && c->state == CONN_WRITING)
			c->peer_eof = 1;
		else
			conn_close(c);
		return;
	}
	if (c->state != CONN_READING) {
		c->discarded += (size_t)nread;
		if (c->discarded > LINGER_MAX_BYTES)
			conn_close(c);
		return;
	}
	from = c->len >= 2 ? c->len - 2 : 0;
	c->len += (size_t)nread;
	if (header_complete(c->req, c->len, from))
		handle_request(c);
	else if (c->len == sizeof(c->req))
		answer_static(c, 431);
}

/* ---- accepting ---- */

/* Takes the connection waiting in the listener and closes it. */
static void reject(struct metrics_server *m, const char *why)
{
	uv_tcp_t *h = malloc(sizeof(*h));

	if (h == NULL) {
		/* Left in libuv's accept slot, which pauses the listener;
		 * try again soon. */
		if (!uv_is_active((uv_handle_t *)&m->retry))
			uv_timer_start(&m->retry, on_retry, RETRY_ACCEPT_MS, 0);
		return;
	}
	uv_tcp_init(m->loop, h);
	h->data = m;
	m->handles++;
	if (uv_accept((uv_stream_t *)&m->listener, (uv_stream_t *)h) == 0)
		note_refused(m, why);
	uv_close((uv_handle_t *)h, on_reject_close);
}

/* Counts c against its source address: 0, or -1 when that address holds
 * METRICS_MAX_PER_ADDR connections already. An address that cannot be
 * read is not counted (the global bound still holds). */
static int admit(struct metrics_server *m, struct conn *c)
{
	struct sockaddr_storage ss;
	struct admission_key key;
	int len = sizeof ss;

	if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len) != 0 ||
	    admission_key_of((struct sockaddr *)&ss, &key) != 0)
		return 0;
	return admission_enter(&m->per_addr, &key, uv_now(m->loop),
			       &c->slot) == ADMISSION_OK
		   ? 0
		   : -1;
}

static void accept_one(struct metrics_server *m)
{
	struct conn *c;
	int rc;

	if (m->stopping)
		return;
	if (m->nconns >= METRICS_MAX_CONNS) {
		reject(m, "too many connections");
		return;
	}
	c = calloc(1, sizeof(*c));
	if (c == NULL) {
		reject(m, "out of memory");
		return;
	}
	c->m = m;
	c->state = CONN_READING;
	uv_tcp_init(m->loop, &c->tcp);
	c->tcp.data = c;
	uv_timer_init(m->loop, &c->timer);
	c->timer.data = c;
	c->handles = 2;
	m->handles += 2;
	c->next = m->conns;
	if (m->conns)
		m->conns->prev = c;
	m->conns = c;
	m->nconns++;
	if ((rc = uv_accept((uv_stream_t *)&m->listener,
			    (uv_stream_t *)&c->tcp))) {
		/* UV_EAGAIN: a retry found nothing waiting. */
		if (rc != UV_EAGAIN)
			log_warn("metrics %s: accept: %s", m->addr,
				 uv_strerror(rc));
		conn_close(c);
		return;
	}
	if (admit(m, c)) {
		note_refused(m, "too many connections from its address");
		conn_close(c);
		return;
	}
	if ((rc = uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read))) {
		log_debug("metrics %s: read: %s", m->addr, uv_strerror(rc));
		conn_close(c);
		return;
	}
	uv_timer_start(&c->timer, on_conn_timer, METRICS_TIMEOUT_MS, 0);
}

static void on_retry(uv_timer_t *t)
{
	accept_one(t->data);
}

static void on_connection(uv_stream_t *s, int status)
{
	struct metrics_server *m = s->data;

	if (status < 0) {
		log_warn("metrics %s: listener: %s", m->addr,
			 uv_strerror(status));
		return;
	}
	accept_one(m);
}

/* ---- public ---- */

int metrics_start(uv_loop_t *loop, const char *addr, metrics_render_fn render,
		  void *ctx, struct metrics_server **out, struct err *e)
{
	struct sockaddr_storage ss;
	struct metrics_server *m;
	int fd = -1, rc;

	if (out)
		*out = NULL;
	if (!loop || !addr || !render || !out)
		return err_set(e, MSCE_EINVAL, "metrics: missing argument");
	if ((rc = addr_parse(addr, &ss, e))) {
		err_wrap(e, "metrics: listen");
		return rc;
	}
	m = calloc(1, sizeof(*m));
	if (m == NULL)
		return err_set(e, MSCE_ENOMEM, "metrics: out of memory");
	m->loop = loop;
	if (admission_init(&m->per_addr,
			   &(struct admission_config){
			       .max_pending = METRICS_MAX_CONNS,
			       .per_addr = METRICS_MAX_PER_ADDR}) != 0) {
		free(m);
		return err_set(e, MSCE_ENOMEM, "metrics: out of memory");
	}
	snprintf(m->routes[0].path, METRICS_PATH_MAX, "/metrics");
	m->routes[0].ctype = CT_METRICS;
	m->routes[0].render = render;
	m->routes[0].ctx = ctx;
	m->nroutes = 1;
	snprintf(m->addr, sizeof(m->addr), "%s", addr);
	if ((rc = addr_listen("metrics: listen", addr, (struct sockaddr *)&ss,
			      LISTEN_BACKLOG, &fd, e))) {
		admission_free(&m->per_addr);
		free(m);
		return rc;
	}

	/* From here on, handles exist. */
	uv_tcp_init(loop, &m->listener);
	m->listener.data = m;
	m->handles++;
	uv_timer_init(loop, &m->retry);
	m->retry.data = m;
	m->handles++;
	if ((rc = uv_tcp_open(&m->listener, fd))) {
		close(fd);
		goto fail_async;
	}
	if ((rc = uv_listen((uv_stream_t *)&m->listener, LISTEN_BACKLOG,
			    on_connection)))
		goto fail_async;
	log_info("metrics: serving http://%s/metrics", m->addr);
	*out = m;
	return 0;

fail_async:
	/* The handles are released by the loop; the server frees itself
	 * after them, with no done callback. */
	rc = err_set(e, MSCE_EIO, "metrics: listen %s: %s", addr,
		     uv_strerror(rc));
	m->stopping = 1;
	uv_close((uv_handle_t *)&m->listener, on_server_handle_close);
	uv_close((uv_handle_t *)&m->retry, on_server_handle_close);
	return rc;
}

void metrics_stop(struct metrics_server *m, void (*done)(void *arg), void *arg)
{
	if (m == NULL || m->stopping)
		return;
	m->stopping = 1;
	m->done = done;
	m->done_arg = arg;
	/* Closing the listener also closes a connection still waiting in
	 * its accept slot. */
	uv_close((uv_handle_t *)&m->listener, on_server_handle_close);
	uv_close((uv_handle_t *)&m->retry, on_server_handle_close);
	for (struct conn *c = m->conns; c; c = c->next)
		conn_close(c);
}

int metrics_route(struct metrics_server *m, const char *path,
		  const char *content_type, metrics_render_fn render, void *ctx)
{
	struct route *r;

	if (m == NULL || path == NULL || path[0] != '/' ||
	    strlen(path) >= METRICS_PATH_MAX || content_type == NULL ||
	    render == NULL)
		return MSCE_EINVAL;
	for (size_t i = 0; i < m->nroutes; i++)
		if (strcmp(m->routes[i].path, path) == 0)
			return MSCE_EINVAL;
	if (m->nroutes == METRICS_MAX_ROUTES)
		return MSCE_ETOOBIG;
	r = &m->routes[m->nroutes++];
	snprintf(r->path, METRICS_PATH_MAX, "%s", path);
	r->ctype = content_type;
	r->render = render;
	r->ctx = ctx;
	return 0;
}

uint64_t metrics_scrapes(const struct metrics_server *m)
{
	return m ? m->scrapes : 0;
}

/* ---- text helpers ---- */

/* Makes room for need more bytes (counting the NUL); -1 and oom if not. */
static int buf_reserve(struct metrics_buf *b, size_t need)
{
	size_t cap;
	char *p;

	if (b->oom)
		return -1;
	if (need > SIZE_MAX - b->len) {
		b->oom = 1;
		return -1;
	}
	if (b->data && b->len + need <= b->cap)
		return 0;
	cap = b->cap >= 256 ? b->cap : 256;
	while (cap < b->len + need) {
		if (cap > SIZE_MAX / 2) {
			b->oom = 1;
			return -1;
		}
		cap *= 2;
	}
	p = realloc(b->data, cap);
	if (p == NULL) {
		b->oom = 1;
		return -1;
	}
	if (b->data == NULL)
		p[0] = '\0';
	b->data = p;
	b->cap = cap;
	return 0;
}

static void buf_put(struct metrics_buf *b, const char *s, size_t n)
{
	if (buf_reserve(b, n + 1))
		return;
	memcpy(b->data + b->len, s, n);
	b->len += n;
	b->data[b->len] = '\0';
}

void metrics_printf(struct metrics_buf *b, const char *fmt, ...)
{
	va_list ap;
	size_t room;
	int n;

	if (b == NULL || buf_reserve(b, 128))
		return;
	room = b->cap - b->len;
	va_start(ap, fmt);
	n = vsnprintf(b->data + b->len, room, fmt, ap);
	va_end(ap);
	if (n >= 0 && (size_t)n >= room) {
		if (buf_reserve(b, (size_t)n + 1)) {
			b->data[b->len] = '\0'; /* drop the cut text */
			return;
		}
		va_start(ap, fmt);
		n = vsnprintf(b->data + b->len, b->cap - b->len, fmt, ap);
		va_end(ap);
	}
	if (n < 0) {
		b->oom = 1;
		b->data[b->len] = '\0';
		return;
	}
	b->len += (size_t)n;
}

/* Shortest "%g" that reads back as v; Prometheus spellings otherwise. */
static void fmt_double(char *out, size_t cap, double v)
{
	if (isnan(v)) {
		snprintf(out, cap, "NaN");
		return;
	}
	if (isinf(v)) {
		snprintf(out, cap, v > 0 ? "+Inf" : "-Inf");
		return;
	}
	for (int prec = 15; prec <= 17; prec++) {
		snprintf(out, cap, "%.*g", prec, v);
		if (strtod(out, NULL) == v)
			return;
	}
}

/* HELP text escapes only backslash and line feed. */
static void put_help(struct metrics_buf *b, const char *s)
{
	size_t run = 0;

	for (;; s++) {
		if (*s != '\\' && *s != '\n' && *s != '\0') {
			run++;
			continue;
		}
		buf_put(b, s - run, run);
		run = 0;
		if (*s == '\0')
			return;
		buf_put(b, *s == '\\' ? "\\\\" : "\\n", 2);
	}
}

void metrics_histogram(struct metrics_buf *b, const char *name,
		       const char *help, const double *bounds,
		       const uint64_t *counts, size_t nbounds, double sum)
{
	char num[40];
	uint64_t total = 0;

	if (b == NULL)
		return;
	if (name == NULL || (nbounds > 0 && bounds == NULL)) {
		b->oom = 1;
		return;
	}
	if (help) {
		metrics_printf(b, "# HELP %s ", name);
		put_help(b, help);
		buf_put(b, "\n", 1);
	}
	metrics_printf(b, "# TYPE %s histogram\n", name);
	for (size_t i = 0; i < nbounds; i++) {
		total += counts ? counts[i] : 0;
		fmt_double(num, sizeof(num), bounds[i]);
		metrics_printf(b, "%s_bucket{le=\"%s\"} %" PRIu64 "\n", name,
			       num, total);
	}
	total += counts ? counts[nbounds] : 0;
	metrics_printf(b, "%s_bucket{le=\"+Inf\"} %" PRIu64 "\n", name, total);
	fmt_double(num, sizeof(num), sum);
	metrics_printf(b, "%s_sum %s\n%s_count %" PRIu64 "\n", name, num, name,
		       total);
}
