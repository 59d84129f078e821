/* SPDX-License-Identifier: Apache-2.0 */
/* The metrics endpoint over real loopback TCP. The test thread drives the
 * loop (UV_RUN_ONCE, with a short repeating timer so that every turn ends
 * soon) while blocking client sockets run in uv threads; every wait is
 * bounded by a deadline and every socket by SO_RCVTIMEO/SO_SNDTIMEO.
 *
 * Covered: a scrape returns the rendered text with the right headers,
 * whatever way the request arrives (split, bare LF, half-closed, HTTP/1.0,
 * query string); 404, 405, 400, 505 and 500; header sections at, over and
 * far over the 8 KiB bound (431); 100 connections at once (64 answered,
 * the rest closed); idle and drip-feeding clients are cut after the
 * timeout; seeded garbage (MSCE_SEED replays it) never gets anything but a
 * well-formed answer or a close; stop with an answer in flight and from
 * inside render; start errors; IPv6; the text helpers. Each test ends with
 * uv_loop_close succeeding, so no handle is left, and ASan checks leaks. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cmocka.h>
#include <uv.h>

#include "error.h"
#include "log.h"
#include "testutil.h"
#include "uv_metrics.h"

#define WAIT_MS 15000	  /* bound of every wait */
#define SOCK_TIMEOUT_S 10 /* bound of every blocking socket call */
#define MANY 100
#define KIB (1u << 10)
#define MIB (1u << 20)

static const char TEXT[] = "# HELP msce_up Whether the node is up.\n"
			   "# TYPE msce_up gauge\n"
			   "msce_up 1\n";

static uint64_t now_ms(void)
{
	return uv_hrtime() / 1000000;
}

/* ---- the server side ---- */

struct env {
	uv_loop_t loop;
	uv_timer_t tick;
	struct metrics_server *m;
	int family;
	int port;
	const char *text;   /* rendered, unless big or fail */
	size_t big;	    /* render this many bytes instead */
	int fail;	    /* render fails (after allocating) */
	int stop_in_render; /* render calls metrics_stop */
	int renders;
	int stopped; /* the done callback ran */
};

static void on_stopped(void *arg);

static int render(void *ctx, char **buf, size_t *len)
{
	struct env *v = ctx;
	struct metrics_buf b = {0};

	v->renders++;
	if (v->stop_in_render) {
		metrics_stop(v->m, on_stopped, v);
		v->m = NULL;
	}
	if (v->fail) {
		/* The server frees what we leave behind on failure. */
		*buf = strdup("partial");
		*len = 7;
		return MSCE_EIO;
	}
	if (v->big) {
		*buf = malloc(v->big);
		if (*buf == NULL)
			return MSCE_ENOMEM;
		memset(*buf, 'x', v->big);
		*len = v->big;
		return 0;
	}
	if (v->text[0] == '\0')
		return 0; /* empty exposition: NULL, 0 */
	metrics_printf(&b, "%s", v->text);
	if (b.oom) {
		free(b.data);
		return MSCE_ENOMEM;
	}
	*buf = b.data;
	*len = b.len;
	return 0;
}

static void on_stopped(void *arg)
{
	((struct env *)arg)->stopped++;
}

static void on_tick(uv_timer_t *t)
{
	(void)t;
}

#define RUN_UNTIL(v, cond)                                                     \
	do {                                                                   \
		uint64_t dl_ = now_ms() + WAIT_MS;                             \
		while (!(cond) && now_ms() < dl_)                              \
			uv_run(&(v)->loop, UV_RUN_ONCE);                       \
		assert_true(cond);                                             \
	} while (0)

static void run_for(struct env *v, uint64_t ms)
{
	uint64_t dl = now_ms() + ms;

	while (now_ms() < dl)
		uv_run(&v->loop, UV_RUN_ONCE);
}

/* A port nothing listens on right now: bind to port 0, read it, close. */
static int free_port(int family)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	int fd = socket(family, SOCK_STREAM, 0), port;

	assert_true(fd >= 0);
	memset(&ss, 0, sizeof(ss));
	ss.ss_family = (sa_family_t)family;
	if (family == AF_INET6)
		((struct sockaddr_in6 *)&ss)->sin6_addr = in6addr_loopback;
	else
		((struct sockaddr_in *)&ss)->sin_addr.s_addr =
		    htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&ss,
			      family == AF_INET6 ? sizeof(struct sockaddr_in6)
						 : sizeof(struct sockaddr_in)),
			 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&ss, &len), 0);
	port =
	    ntohs(family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
				     : ((struct sockaddr_in *)&ss)->sin_port);
	close(fd);
	return port;
}

static void env_addr(const struct env *v, char *out, size_t cap)
{
	if (v->family == AF_INET6)
		snprintf(out, cap, "[::1]:%d", v->port);
	else
		snprintf(out, cap, "127.0.0.1:%d", v->port);
}

static void env_init_family(struct env *v, int family)
{
	struct err e;
	char addr[64];
	int rc = MSCE_EIO;

	memset(v, 0, sizeof(*v));
	v->family = family;
	v->text = TEXT;
	assert_int_equal(uv_loop_init(&v->loop), 0);
	assert_int_equal(uv_timer_init(&v->loop, &v->tick), 0);
	assert_int_equal(uv_timer_start(&v->tick, on_tick, 2, 2), 0);
	/* Another process may take the free port in between: try again. */
	for (int i = 0; i < 20 && rc == MSCE_EIO; i++) {
		err_clear(&e);
		v->port = free_port(family);
		env_addr(v, addr, sizeof(addr));
		rc = metrics_start(&v->loop, addr, render, v, &v->m, &e);
	}
	if (rc)
		fail_msg("metrics_start: %s", e.msg);
	assert_non_null(v->m);
}

static void env_init(struct env *v)
{
	env_init_family(v, AF_INET);
}

/* Stops the server (if still running) and checks that nothing is left. */
static void env_fini(struct env *v)
{
	if (v->m) {
		metrics_stop(v->m, on_stopped, v);
		v->m = NULL;
	}
	RUN_UNTIL(v, v->stopped == 1);
	uv_close((uv_handle_t *)&v->tick, NULL);
	uv_run(&v->loop, UV_RUN_DEFAULT);
	assert_int_equal(uv_loop_close(&v->loop), 0);
	assert_int_equal(v->stopped, 1);
}

/* ---- the client side: blocking sockets in a thread ---- */

struct client {
	/* in */
	int family, port;
	int src;	 /* from 127.0.0.src; 0: any */
	const char *req; /* NULL: connect only */
	size_t reqlen;
	int shut_wr;	     /* shutdown(SHUT_WR) after the request */
	int byte_ms;	     /* send one byte at a time, this many ms apart */
	int drip_ms;	     /* then one more byte every drip_ms until closed */
	int hold_ms;	     /* wait this long before reading */
	atomic_int *release; /* wait until the test sets it before reading */
	size_t late;	     /* then this many more bytes, after late_ms */
	int late_ms;
	/* out */
	int connected;
	char *resp;
	size_t len, cap;
	int reset;	     /* the read ended in an error rather than EOF */
	uint64_t elapsed_ms; /* connect to end of input */
	uv_thread_t thread;
	atomic_int done;
};

/* src: connect from 127.0.0.src (IPv4), 0: the kernel's choice. */
static int client_connect(int family, int port, int src)
{
	struct sockaddr_storage ss;
	struct timeval tv = {SOCK_TIMEOUT_S, 0};
	int fd = socket(family, SOCK_STREAM, 0);

	if (fd < 0)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (src && family == AF_INET) {
		struct sockaddr_in from = {.sin_family = AF_INET};
		from.sin_addr.s_addr = htonl(0x7F000000u | (uint32_t)src);
		if (bind(fd, (struct sockaddr *)&from, sizeof from)) {
			close(fd);
			return -1;
		}
	}
	memset(&ss, 0, sizeof(ss));
	if (family == AF_INET6) {
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
		in6->sin6_family = AF_INET6;
		in6->sin6_addr = in6addr_loopback;
		in6->sin6_port = htons((uint16_t)port);
	} else {
		struct sockaddr_in *in = (struct sockaddr_in *)&ss;
		in->sin_family = AF_INET;
		in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		in->sin_port = htons((uint16_t)port);
	}
	if (connect(fd, (struct sockaddr *)&ss,
		    family == AF_INET6 ? sizeof(struct sockaddr_in6)
				       : sizeof(struct sockaddr_in))) {
		close(fd);
		return -1;
	}
	return fd;
}

static int send_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t k = send(fd, p, n, MSG_NOSIGNAL);
		if (k <= 0)
			return -1;
		p += k;
		n -= (size_t)k;
	}
	return 0;
}

/* Reads until EOF or error into c->resp. */
static void client_read(int fd, struct client *c)
{
	for (;;) {
		ssize_t k;

		if (c->cap - c->len < 4096) {
			c->cap = c->cap ? 2 * c->cap : 16 * KIB;
			c->resp = realloc(c->resp, c->cap + 1);
			assert_non_null(c->resp);
		}
		k = recv(fd, c->resp + c->len, c->cap - c->len, 0);
		if (k == 0)
			break;
		if (k < 0) {
			c->reset = 1;
			break;
		}
		c->len += (size_t)k;
	}
	if (c->resp)
		c->resp[c->len] = '\0';
}

static void client_main(void *arg)
{
	struct client *c = arg;
	uint64_t t0 = now_ms();
	int fd = client_connect(c->family ? c->family : AF_INET, c->port,
				c->src);

	if (fd < 0)
		goto out;
	c->connected = 1;
	if (c->req && c->byte_ms) {
		for (size_t i = 0; i < c->reqlen; i++) {
			if (send_all(fd, c->req + i, 1))
				break;
			uv_sleep((unsigned)c->byte_ms);
		}
	} else if (c->req) {
		send_all(fd, c->req, c->reqlen);
	}
	if (c->late) {
		char *more = calloc(1, c->late);

		uv_sleep((unsigned)c->late_ms);
		if (more)
			send_all(fd, more, c->late);
		free(more);
	}
	if (c->shut_wr)
		shutdown(fd, SHUT_WR);
	while (c->drip_ms && now_ms() - t0 < 2 * WAIT_MS) {
		struct pollfd p = {fd, POLLIN, 0};

		if (poll(&p, 1, c->drip_ms) > 0)
			break; /* EOF or a reset to read */
		if (send_all(fd, "a", 1))
			break;
	}
	if (c->hold_ms)
		uv_sleep((unsigned)c->hold_ms);
	while (c->release && !atomic_load(c->release) &&
	       now_ms() - t0 < 2 * WAIT_MS)
		uv_sleep(5);
	client_read(fd, c);
	close(fd);
out:
	c->elapsed_ms = now_ms() - t0;
	atomic_store(&c->done, 1);
}

static void client_start(struct env *v, struct client *c, const char *req,
			 size_t len)
{
	c->family = v->family;
	c->port = v->port;
	c->req = req;
	c->reqlen = req && !len ? strlen(req) : len;
	atomic_store(&c->done, 0);
	assert_int_equal(uv_thread_create(&c->thread, client_main, c), 0);
}

static void client_wait(struct env *v, struct client *c)
{
	RUN_UNTIL(v, atomic_load(&c->done));
	assert_int_equal(uv_thread_join(&c->thread), 0);
}

static void client_free(struct client *c)
{
	free(c->resp);
	memset(c, 0, sizeof(*c));
}

/* ---- reading answers ---- */

struct resp {
	int status;
	char ctype[128];
	long clen; /* -1 if absent */
	int conn_close;
	char allow[32];
	const char *body;
	size_t body_len;
};

/* Case-insensitive "Name:" at the start of a header line; returns the
 * value (leading spaces skipped) up to CRLF, copied to out. */
static int header(const char *head, size_t n, const char *name, char *out,
		  size_t cap)
{
	size_t nl = strlen(name);
	const char *p = head, *end = head + n;

	while (p < end) {
		const char *eol = memmem(p, (size_t)(end - p), "\r\n", 2);
		if (!eol)
			eol = end;
		if ((size_t)(eol - p) > nl && strncasecmp(p, name, nl) == 0 &&
		    p[nl] == ':') {
			const char *val = p + nl + 1;
			size_t vl;
			while (val < eol && *val == ' ')
				val++;
			vl = (size_t)(eol - val);
			if (vl >= cap)
				vl = cap - 1;
			memcpy(out, val, vl);
			out[vl] = '\0';
			return 1;
		}
		p = eol + 2;
	}
	return 0;
}

/* Parses a whole answer; fails the test unless it is well formed with a
 * Content-Length that matches its body and Connection: close. */
static struct resp parse(const struct client *c)
{
	struct resp r;
	const char *end;
	char val[64];
	size_t hlen;

	memset(&r, 0, sizeof(r));
	r.clen = -1;
	assert_non_null(c->resp);
	end = memmem(c->resp, c->len, "\r\n\r\n", 4);
	assert_non_null(end);
	hlen = (size_t)(end - c->resp) + 2;
	assert_int_equal(strncmp(c->resp, "HTTP/1.1 ", 9), 0);
	r.status = atoi(c->resp + 9);
	if (header(c->resp, hlen, "Content-Type", r.ctype, sizeof(r.ctype)) ==
	    0)
		r.ctype[0] = '\0';
	if (header(c->resp, hlen, "Content-Length", val, sizeof(val)))
		r.clen = strtol(val, NULL, 10);
	if (header(c->resp, hlen, "Connection", val, sizeof(val)))
		r.conn_close = strcasecmp(val, "close") == 0;
	header(c->resp, hlen, "Allow", r.allow, sizeof(r.allow));
	r.body = end + 4;
	r.body_len = c->len - (size_t)(r.body - c->resp);
	assert_true(r.clen >= 0);
	assert_int_equal((size_t)r.clen, r.body_len);
	assert_true(r.conn_close);
	return r;
}

/* One request on a fresh connection; returns the parsed answer. */
static struct resp request(struct env *v, struct client *c, const char *req,
			   size_t len)
{
	client_start(v, c, req, len);
	client_wait(v, c);
	assert_true(c->connected);
	return parse(c);
}

static void expect_status(struct env *v, const char *req, size_t len,
			  int status)
{
	struct client c = {0};
	struct resp r = request(v, &c, req, len);

	if (r.status != status)
		fail_msg("%.*s: got %d, want %d",
			 (int)(len ? len : strlen(req)), req, r.status, status);
	if (status == 405)
		assert_string_equal(r.allow, "GET");
	if (status != 200)
		assert_string_equal(r.ctype, "text/plain; charset=utf-8");
	client_free(&c);
}

/* ---- tests ---- */

static void test_scrape(void **state)
{
	struct env v;
	struct client c = {0};
	struct resp r;

	(void)state;
	env_init(&v);
	r = request(&v, &c,
		    "GET /metrics HTTP/1.1\r\nHost: localhost\r\n"
		    "User-Agent: test\r\nAccept: */*\r\n\r\n",
		    0);
	assert_int_equal(r.status, 200);
	assert_string_equal(r.ctype, "text/plain; version=0.0.4");
	assert_int_equal(r.body_len, strlen(TEXT));
	assert_memory_equal(r.body, TEXT, r.body_len);
	assert_false(c.reset); /* a clean FIN after the answer */
	assert_int_equal(metrics_scrapes(v.m), 1);
	client_free(&c);

	/* HTTP/1.0, a query string, half-closed after the request. */
	c.shut_wr = 1;
	r = request(&v, &c, "GET /metrics?name[]=x HTTP/1.0\r\n\r\n", 0);
	assert_int_equal(r.status, 200);
	assert_memory_equal(r.body, TEXT, r.body_len);
	client_free(&c);

	/* Bare line feeds, as netcat users type. */
	r = request(&v, &c, "GET /metrics HTTP/1.1\nHost: x\n\n", 0);
	assert_int_equal(r.status, 200);
	client_free(&c);

	/* One byte at a time: the blank line is found across reads. */
	c.byte_ms = 1;
	r = request(&v, &c, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", 0);
	assert_int_equal(r.status, 200);
	assert_memory_equal(r.body, TEXT, r.body_len);
	client_free(&c);

	/* An empty exposition is still a 200. */
	v.text = "";
	r = request(&v, &c, "GET /metrics HTTP/1.1\r\n\r\n", 0);
	assert_int_equal(r.status, 200);
	assert_int_equal(r.body_len, 0);
	client_free(&c);

	/* A large one goes out whole. */
	v.big = 3 * MIB + 17;
	r = request(&v, &c, "GET /metrics HTTP/1.1\r\n\r\n", 0);
	assert_int_equal(r.status, 200);
	assert_int_equal(r.body_len, v.big);
	assert_true(r.body[0] == 'x' && r.body[r.body_len - 1] == 'x');
	client_free(&c);

	/* Half-closed with a large answer: the client's EOF arrives while
	 * most of it is still queued, and must not cut it. */
	v.big = 32 * MIB;
	c.shut_wr = 1;
	r = request(&v, &c, "GET /metrics HTTP/1.1\r\n\r\n", 0);
	assert_int_equal(r.body_len, v.big);
	client_free(&c);

	/* Bytes that come after the request while the answer is still in
	 * the kernel's buffers: were the server to close with them unread,
	 * the kernel would reset the connection and drop what is queued. The
	 * server lingers and reads them instead. */
	v.big = 256 * KIB;
	c.late = KIB;
	c.late_ms = 100;
	c.hold_ms = 100;
	r = request(&v, &c, "GET /metrics HTTP/1.1\r\n\r\n", 0);
	assert_int_equal(r.body_len, v.big);
	assert_false(c.reset);
	client_free(&c);

	assert_int_equal(metrics_scrapes(v.m), 8);
	assert_int_equal(v.renders, 8);
	env_fini(&v);
}

static void test_errors(void **state)
{
	static const struct {
		const char *req;
		size_t len; /* 0: strlen */
		int status;
	} cases[] = {
	    {"GET /other HTTP/1.1\r\n\r\n", 0, 404},
	    {"GET / HTTP/1.1\r\n\r\n", 0, 404},
	    {"GET /metricsx HTTP/1.1\r\n\r\n", 0, 404},
	    {"GET /metric HTTP/1.1\r\n\r\n", 0, 404},
	    {"GET /METRICS HTTP/1.1\r\n\r\n", 0, 404},
	    {"GET http://host/metrics HTTP/1.1\r\n\r\n", 0, 404},
	    {"DELETE /x HTTP/1.1\r\n\r\n", 0, 404},
	    {"POST /metrics HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello", 0,
	     405},
	    {"PUT /metrics HTTP/1.1\r\n\r\n", 0, 405},
	    {"HEAD /metrics HTTP/1.1\r\n\r\n", 0, 405},
	    {"get /metrics HTTP/1.1\r\n\r\n", 0, 405},
	    {"garbage\r\n\r\n", 0, 400},
	    {"\r\n\r\n", 0, 400},
	    {"\n\n", 0, 400},
	    {"GET /metrics\r\n\r\n", 0, 400},
	    {"GET  /metrics HTTP/1.1\r\n\r\n", 0, 400},
	    {" GET /metrics HTTP/1.1\r\n\r\n", 0, 400},
	    {"GET /metrics HTTP/1.1 \r\n\r\n", 0, 400},
	    {"GET /metrics  HTTP/1.1\r\n\r\n", 0, 400},
	    {"GET /metrics HTTP/1.10\r\n\r\n", 0, 400},
	    {"GET /metrics HTTP/1\r\n\r\n", 0, 400},
	    {"GET /metrics http/1.1\r\n\r\n", 0, 400},
	    {"GET /metrics FTP/1.1\r\n\r\n", 0, 400},
	    {"GET /met\x01rics HTTP/1.1\r\n\r\n", 0, 400},
	    {"GET /met\x7frics HTTP/1.1\r\n\r\n", 0, 400},
	    {"GET /metrics HTTP/1.1\0\r\n\r\n", 26, 400},
	    {"G\0T /metrics HTTP/1.1\r\n\r\n", 25, 400},
	    {"G\xff"
	     "T /metrics HTTP/1.1\r\n\r\n",
	     0, 400},
	    {"GET\t/metrics HTTP/1.1\r\n\r\n", 0, 400},
	    {"AVERYLONGMETHODNAME /metrics HTTP/1.1\r\n\r\n", 0, 400},
	    {"GET /metrics HTTP/2.0\r\n\r\n", 0, 505},
	    {"GET /metrics HTTP/0.9\r\n\r\n", 0, 505},
	};
	struct env v;
	struct client c = {0};
	struct resp r;

	(void)state;
	env_init(&v);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		expect_status(&v, cases[i].req, cases[i].len, cases[i].status);
	assert_int_equal(metrics_scrapes(v.m), 0);
	assert_int_equal(v.renders, 0);

	/* A failing render is a 500, not a scrape; what it allocated is
	 * freed (ASan). */
	v.fail = 1;
	r = request(&v, &c, "GET /metrics HTTP/1.1\r\n\r\n", 0);
	assert_int_equal(r.status, 500);
	assert_int_equal(v.renders, 1);
	assert_int_equal(metrics_scrapes(v.m), 0);
	client_free(&c);
	v.fail = 0;
	expect_status(&v, "GET /metrics HTTP/1.1\r\n\r\n", 0, 200);
	assert_int_equal(metrics_scrapes(v.m), 1);
	env_fini(&v);
}

/* "GET /metrics HTTP/1.1\r\nX-Pad: aaa...\r\n\r\n", total bytes long. */
static char *padded_request(size_t total)
{
	static const char head[] = "GET /metrics HTTP/1.1\r\nX-Pad: ";
	char *s = malloc(total + 1);
	size_t h = sizeof(head) - 1;

	assert_non_null(s);
	assert_true(total > h + 4);
	memcpy(s, head, h);
	memset(s + h, 'a', total - h - 4);
	memcpy(s + total - 4, "\r\n\r\n", 4);
	s[total] = '\0';
	return s;
}

static void test_header_limit(void **state)
{
	struct env v;
	struct client c = {0};
	struct resp r;
	char *s;

	(void)state;
	env_init(&v);

	/* 20 KiB without a line end. */
	s = malloc(20 * KIB);
	assert_non_null(s);
	memset(s, 'A', 20 * KIB);
	r = request(&v, &c, s, 20 * KIB);
	assert_int_equal(r.status, 431);
	/* Lingering: the unread rest did not reset the answer away. */
	assert_false(c.reset);
	client_free(&c);

	/* 20 KiB of plausible headers that never end. */
	{
		static const char head[] = "GET /metrics HTTP/1.1\r\n";
		size_t h = sizeof(head) - 1;
		memcpy(s, head, h);
		for (size_t i = h; i + 12 <= 20 * KIB; i += 12)
			memcpy(s + i, "X-Junk: 12\r\n", 12);
	}
	r = request(&v, &c, s, 20 * KIB);
	assert_int_equal(r.status, 431);
	client_free(&c);
	free(s);

	/* Exactly at the bound is fine; one byte over is not. */
	s = padded_request(METRICS_MAX_HEADER);
	expect_status(&v, s, METRICS_MAX_HEADER, 200);
	free(s);
	s = padded_request(METRICS_MAX_HEADER + 1);
	expect_status(&v, s, METRICS_MAX_HEADER + 1, 431);
	free(s);

	/* Still serving. */
	expect_status(&v, "GET /metrics HTTP/1.1\r\n\r\n", 0, 200);
	env_fini(&v);
}

struct many {
	int port;
	int ok, refused, other;
	atomic_int done;
};

/* Opens MANY connections, then sends a request on each, then reads each
 * answer: the server has accepted them all before any request arrives. */
static void many_main(void *arg)
{
	static const char req[] = "GET /metrics HTTP/1.1\r\n\r\n";
	struct many *w = arg;
	int fd[MANY];

	/* From 16 addresses, fewer than METRICS_MAX_PER_ADDR from each. */
	for (int i = 0; i < MANY; i++)
		fd[i] = client_connect(AF_INET, w->port, 2 + i % 16);
	for (int i = 0; i < MANY; i++)
		if (fd[i] >= 0)
			send_all(fd[i], req, sizeof(req) - 1);
	for (int i = 0; i < MANY; i++) {
		struct client c = {0};

		if (fd[i] < 0) {
			w->other++;
			continue;
		}
		client_read(fd[i], &c);
		close(fd[i]);
		if (c.len == 0)
			w->refused++;
		else if (c.len > 12 &&
			 memcmp(c.resp, "HTTP/1.1 200 ", 13) == 0 &&
			 memmem(c.resp, c.len, TEXT, strlen(TEXT)))
			w->ok++;
		else
			w->other++;
		free(c.resp);
	}
	atomic_store(&w->done, 1);
}

static void test_many_connections(void **state)
{
	struct env v;
	struct many w;
	uv_thread_t t;

	(void)state;
	env_init(&v);
	memset(&w, 0, sizeof(w));
	w.port = v.port;
	assert_int_equal(uv_thread_create(&t, many_main, &w), 0);
	RUN_UNTIL(&v, atomic_load(&w.done));
	assert_int_equal(uv_thread_join(&t), 0);
	printf("many: %d answered, %d closed, %d other\n", w.ok, w.refused,
	       w.other);
	assert_int_equal(w.other, 0);
	assert_int_equal(w.ok, METRICS_MAX_CONNS);
	assert_int_equal(w.refused, MANY - METRICS_MAX_CONNS);
	assert_int_equal(metrics_scrapes(v.m), METRICS_MAX_CONNS);

	/* The slots come back once the clients' closes have been seen. */
	run_for(&v, 500);
	memset(&w, 0, sizeof(w));
	w.port = v.port;
	assert_int_equal(uv_thread_create(&t, many_main, &w), 0);
	RUN_UNTIL(&v, atomic_load(&w.done));
	assert_int_equal(uv_thread_join(&t), 0);
	assert_int_equal(w.ok, METRICS_MAX_CONNS);
	expect_status(&v, "GET /metrics HTTP/1.1\r\n\r\n", 0, 200);
	env_fini(&v);
}

/* One address holding slow connections cannot keep scrapers from other
 * addresses out: past METRICS_MAX_PER_ADDR its next one is closed. */
static void test_one_address_slots(void **state)
{
	struct env v;
	struct client quiet[METRICS_MAX_PER_ADDR], more = {0}, other = {0};
	struct resp r;

	(void)state;
	assert_true(METRICS_MAX_PER_ADDR < METRICS_MAX_CONNS);
	env_init(&v);
	for (int i = 0; i < METRICS_MAX_PER_ADDR; i++) {
		memset(&quiet[i], 0, sizeof quiet[i]);
		quiet[i].src = 1; /* connects and sends nothing */
		client_start(&v, &quiet[i], NULL, 0);
	}
	run_for(&v, 300);
	more.src = 1;
	client_start(&v, &more, "GET /metrics HTTP/1.1\r\n\r\n", 0);
	client_wait(&v, &more);
	assert_true(more.connected);
	assert_int_equal(more.len, 0); /* closed without an answer */
	other.src = 2;
	r = request(&v, &other, "GET /metrics HTTP/1.1\r\n\r\n", 0);
	assert_int_equal(r.status, 200);
	client_free(&more);
	client_free(&other);
	for (int i = 0; i < METRICS_MAX_PER_ADDR; i++) {
		client_wait(&v, &quiet[i]);
		client_free(&quiet[i]);
	}
	/* Their slots are back once they are gone. */
	run_for(&v, 300);
	memset(&more, 0, sizeof more);
	more.src = 1;
	r = request(&v, &more, "GET /metrics HTTP/1.1\r\n\r\n", 0);
	assert_int_equal(r.status, 200);
	client_free(&more);
	env_fini(&v);
}

static void test_timeout(void **state)
{
	struct env v;
	struct client idle = {0}, drip = {0}, quiet = {0};

	(void)state;
	env_init(&v);
	/* Half a request line, then nothing. */
	client_start(&v, &idle, "GET /metr", 0);
	/* A never-ending header, one byte every 100 ms. */
	drip.drip_ms = 100;
	client_start(&v, &drip, "GET /metrics HTTP/1.1\r\nX: ", 0);
	/* Connects and sends nothing. */
	client_start(&v, &quiet, NULL, 0);
	client_wait(&v, &idle);
	client_wait(&v, &drip);
	client_wait(&v, &quiet);
	printf("timeouts after %llu, %llu, %llu ms\n",
	       (unsigned long long)idle.elapsed_ms,
	       (unsigned long long)drip.elapsed_ms,
	       (unsigned long long)quiet.elapsed_ms);
	assert_true(idle.connected && drip.connected && quiet.connected);
	assert_int_equal(idle.len, 0);
	assert_int_equal(drip.len, 0);
	assert_int_equal(quiet.len, 0);
	assert_true(idle.elapsed_ms >= METRICS_TIMEOUT_MS - 100);
	assert_true(idle.elapsed_ms < METRICS_TIMEOUT_MS + 3000);
	assert_true(drip.elapsed_ms >= METRICS_TIMEOUT_MS - 100);
	assert_true(drip.elapsed_ms < METRICS_TIMEOUT_MS + 3000);
	assert_true(quiet.elapsed_ms >= METRICS_TIMEOUT_MS - 100);
	client_free(&idle);
	client_free(&drip);
	client_free(&quiet);
	expect_status(&v, "GET /metrics HTTP/1.1\r\n\r\n", 0, 200);
	env_fini(&v);
}

/* Seeded garbage: mutated requests and random bytes, each half-closed so
 * an incomplete one ends at once. Every answer must be well formed. */
static void test_garbage(void **state)
{
	static const char valid[] = "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n";
	uint64_t seed = tu_seed("test_garbage");
	struct env v;
	char *buf = malloc(12 * KIB);
	int answered = 0, closed = 0;

	(void)state;
	assert_non_null(buf);
	env_init(&v);
	for (int round = 0; round < 300; round++) {
		struct client c = {0};
		size_t len;

		if (tu_below(&seed, 3) == 0) {
			len = (size_t)tu_below(&seed, 12 * KIB);
			for (size_t i = 0; i < len; i++)
				buf[i] = (char)tu_rand(&seed);
			if (len >= 4 && tu_below(&seed, 2))
				memcpy(buf + len - 4, "\r\n\r\n", 4);
		} else {
			len = sizeof(valid) - 1;
			memcpy(buf, valid, len);
			for (int k = (int)tu_below(&seed, 4); k >= 0; k--) {
				size_t at = (size_t)tu_below(&seed, len);
				switch (tu_below(&seed, 5)) {
				case 0: /* cut */
					len = at;
					break;
				case 1: /* flip a byte */
				case 2:
					buf[at] = (char)tu_rand(&seed);
					break;
				default: /* a character that means something */
					buf[at] =
					    " \r\n\0?/:"[tu_below(&seed, 7)];
					break;
				}
			}
		}
		c.shut_wr = 1;
		/* Nothing at all: connect, then half-close. */
		client_start(&v, &c, len ? buf : NULL, len);
		client_wait(&v, &c);
		assert_true(c.connected);
		if (c.len == 0) {
			closed++;
		} else {
			struct resp r = parse(&c);
			assert_true(r.status == 200 || r.status == 400 ||
				    r.status == 404 || r.status == 405 ||
				    r.status == 431 || r.status == 505);
			answered++;
		}
		client_free(&c);
	}
	printf("garbage: %d answered, %d closed unanswered\n", answered,
	       closed);
	free(buf);
	expect_status(&v, "GET /metrics HTTP/1.1\r\n\r\n", 0, 200);
	env_fini(&v);
}

static void test_stop_in_flight(void **state)
{
	struct env v;
	struct client slow = {0}, idle = {0};

	(void)state;
	env_init(&v);
	/* A 16 MiB answer to a client that reads only once the server has
	 * stopped: the write stays queued until the stop. */
	atomic_int stopped = 0;
	v.big = 16 * MIB;
	slow.release = &stopped;
	client_start(&v, &slow, "GET /metrics HTTP/1.1\r\n\r\n", 0);
	client_start(&v, &idle, "GET /met", 0);
	RUN_UNTIL(&v, v.renders == 1);
	run_for(&v, 50);
	metrics_stop(v.m, on_stopped, &v);
	v.m = NULL;
	RUN_UNTIL(&v, v.stopped == 1);
	atomic_store(&stopped, 1);
	client_wait(&v, &slow);
	client_wait(&v, &idle);
	/* Cut short, one way or another. */
	assert_true(slow.len < 16 * MIB);
	assert_int_equal(idle.len, 0);
	assert_true(idle.elapsed_ms < METRICS_TIMEOUT_MS);
	client_free(&slow);
	client_free(&idle);
	env_fini(&v);
}

static void test_stop_in_render(void **state)
{
	struct env v;
	struct client c = {0};

	(void)state;
	env_init(&v);
	v.stop_in_render = 1;
	client_start(&v, &c, "GET /metrics HTTP/1.1\r\n\r\n", 0);
	RUN_UNTIL(&v, v.stopped == 1);
	client_wait(&v, &c);
	assert_int_equal(c.len, 0);
	assert_int_equal(v.renders, 1);
	client_free(&c);
	env_fini(&v);
}

static void test_stop_idle(void **state)
{
	struct env v;

	(void)state;
	env_init(&v);
	env_fini(&v);
	/* And a server that has never seen a connection, stopped with no
	 * done callback. */
	env_init(&v);
	metrics_stop(v.m, NULL, NULL);
	v.m = NULL;
	v.stopped = 1;
	env_fini(&v);
}

static void test_start_errors(void **state)
{
	static const struct {
		const char *addr;
		int code;
	} bad[] = {
	    {"nonsense", MSCE_EINVAL},
	    {"127.0.0.1", MSCE_EINVAL},
	    {"127.0.0.1:0", MSCE_EINVAL},
	    {"127.0.0.1:70000", MSCE_EINVAL},
	    {"::1:9401", MSCE_EINVAL},
	    {"[::1", MSCE_EINVAL},
	    {"example.com:9401", MSCE_ECONFIG},
	    {"", MSCE_EINVAL},
	};
	struct env v;
	struct metrics_server *m = (void *)1;
	struct err e;
	char addr[64];
	int rc;

	(void)state;
	env_init(&v);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err_clear(&e);
		rc = metrics_start(&v.loop, bad[i].addr, render, &v, &m, &e);
		if (rc != bad[i].code)
			fail_msg("\"%s\": got %s (%s), want %s", bad[i].addr,
				 err_name(rc), e.msg, err_name(bad[i].code));
		assert_null(m);
		assert_true(e.msg[0] != '\0');
	}
	err_clear(&e);
	assert_int_equal(
	    metrics_start(&v.loop, "127.0.0.1:9401", NULL, &v, &m, &e),
	    MSCE_EINVAL);
	assert_int_equal(
	    metrics_start(NULL, "127.0.0.1:9401", render, &v, &m, NULL),
	    MSCE_EINVAL);

	/* The port is taken (by v's own server). */
	env_addr(&v, addr, sizeof(addr));
	err_clear(&e);
	rc = metrics_start(&v.loop, addr, render, &v, &m, &e);
	assert_int_equal(rc, MSCE_EIO);
	assert_null(m);
	assert_non_null(strstr(e.msg, addr));
	printf("taken: %s\n", e.msg);

	/* "localhost" is 127.0.0.1. */
	{
		struct env w;
		struct client c = {0};
		struct resp r;

		memset(&w, 0, sizeof(w));
		w.text = TEXT;
		w.family = AF_INET;
		assert_int_equal(uv_loop_init(&w.loop), 0);
		assert_int_equal(uv_timer_init(&w.loop, &w.tick), 0);
		assert_int_equal(uv_timer_start(&w.tick, on_tick, 2, 2), 0);
		rc = MSCE_EIO;
		for (int i = 0; i < 20 && rc == MSCE_EIO; i++) {
			w.port = free_port(AF_INET);
			snprintf(addr, sizeof(addr), "localhost:%d", w.port);
			rc = metrics_start(&w.loop, addr, render, &w, &w.m, &e);
		}
		assert_int_equal(rc, 0);
		r = request(&w, &c, "GET /metrics HTTP/1.1\r\n\r\n", 0);
		assert_int_equal(r.status, 200);
		client_free(&c);
		env_fini(&w);
	}
	env_fini(&v);
}

static void test_ipv6(void **state)
{
	struct env v;
	struct client c = {0};
	struct resp r;
	struct sockaddr_in6 sa;
	int fd = socket(AF_INET6, SOCK_STREAM, 0), ok;

	(void)state;
	memset(&sa, 0, sizeof(sa));
	sa.sin6_family = AF_INET6;
	sa.sin6_addr = in6addr_loopback;
	ok = fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
	if (fd >= 0)
		close(fd);
	if (!ok) {
		tu_skip("test_uv_metrics.test_ipv6", "no IPv6 loopback here");
	}
	env_init_family(&v, AF_INET6);
	r = request(&v, &c, "GET /metrics HTTP/1.1\r\n\r\n", 0);
	assert_int_equal(r.status, 200);
	assert_memory_equal(r.body, TEXT, r.body_len);
	client_free(&c);
	env_fini(&v);
}

static void test_histogram(void **state)
{
	static const double bounds[] = {0.001, 0.01, 0.1, 1, 2.5, 1e-5, 1e21};
	static const uint64_t counts[] = {1, 2, 3, 4, 0, 0, 0, 5};
	struct metrics_buf b = {0};

	(void)state;
	metrics_histogram(&b, "msce_commit_seconds",
			  "Commit latency.\nIn \\seconds\\.", bounds, counts, 7,
			  12.5);
	assert_false(b.oom);
	assert_string_equal(b.data,
			    "# HELP msce_commit_seconds Commit latency.\\nIn "
			    "\\\\seconds\\\\.\n"
			    "# TYPE msce_commit_seconds histogram\n"
			    "msce_commit_seconds_bucket{le=\"0.001\"} 1\n"
			    "msce_commit_seconds_bucket{le=\"0.01\"} 3\n"
			    "msce_commit_seconds_bucket{le=\"0.1\"} 6\n"
			    "msce_commit_seconds_bucket{le=\"1\"} 10\n"
			    "msce_commit_seconds_bucket{le=\"2.5\"} 10\n"
			    "msce_commit_seconds_bucket{le=\"1e-05\"} 10\n"
			    "msce_commit_seconds_bucket{le=\"1e+21\"} 10\n"
			    "msce_commit_seconds_bucket{le=\"+Inf\"} 15\n"
			    "msce_commit_seconds_sum 12.5\n"
			    "msce_commit_seconds_count 15\n");
	assert_int_equal(b.len, strlen(b.data));
	free(b.data);

	/* No HELP, no finite bounds, odd sums; appends after what is there. */
	memset(&b, 0, sizeof(b));
	metrics_printf(&b, "x 1\n");
	metrics_histogram(&b, "h", NULL, NULL, (const uint64_t[]){7}, 0,
			  0.1 + 0.2);
	metrics_histogram(&b, "n", NULL, (const double[]){1}, NULL, 1, NAN);
	metrics_histogram(&b, "i", NULL, (const double[]){1},
			  (const uint64_t[]){UINT64_MAX - 1, 1}, 1, -INFINITY);
	assert_false(b.oom);
	assert_string_equal(b.data,
			    "x 1\n"
			    "# TYPE h histogram\n"
			    "h_bucket{le=\"+Inf\"} 7\n"
			    "h_sum 0.30000000000000004\n"
			    "h_count 7\n"
			    "# TYPE n histogram\n"
			    "n_bucket{le=\"1\"} 0\n"
			    "n_bucket{le=\"+Inf\"} 0\n"
			    "n_sum NaN\n"
			    "n_count 0\n"
			    "# TYPE i histogram\n"
			    "i_bucket{le=\"1\"} 18446744073709551614\n"
			    "i_bucket{le=\"+Inf\"} 18446744073709551615\n"
			    "i_sum -Inf\n"
			    "i_count 18446744073709551615\n");
	free(b.data);

	/* Missing bounds is a failure, reported through oom. */
	memset(&b, 0, sizeof(b));
	metrics_histogram(&b, "bad", NULL, NULL, NULL, 3, 0);
	assert_true(b.oom);
	free(b.data);
}

static void test_printf(void **state)
{
	struct metrics_buf b = {0};
	char *big = malloc(100 * KIB + 1);
	size_t want = 0;

	(void)state;
	assert_non_null(big);
	/* Many small appends. */
	for (int i = 0; i < 10000; i++) {
		metrics_printf(&b, "line_%d %d\n", i, i * 3);
		want += (size_t)snprintf(NULL, 0, "line_%d %d\n", i, i * 3);
	}
	assert_false(b.oom);
	assert_int_equal(b.len, want);
	assert_int_equal(strlen(b.data), b.len);
	assert_true(b.cap > b.len);
	assert_memory_equal(b.data, "line_0 0\nline_1 3\n", 18);
	assert_non_null(strstr(b.data, "line_9999 29997\n"));
	/* One append larger than the room left. */
	memset(big, 'z', 100 * KIB);
	big[100 * KIB] = '\0';
	metrics_printf(&b, "%s!", big);
	assert_false(b.oom);
	assert_int_equal(b.len, want + 100 * KIB + 1);
	assert_int_equal(b.data[b.len - 1], '!');
	assert_int_equal(b.data[b.len], '\0');
	/* Nothing at all is fine. */
	metrics_printf(&b, "%s", "");
	assert_int_equal(b.len, want + 100 * KIB + 1);
	free(b.data);
	free(big);

	/* Once failed, appends are ignored. */
	memset(&b, 0, sizeof(b));
	metrics_printf(&b, "a");
	b.oom = 1;
	metrics_printf(&b, "b");
	assert_string_equal(b.data, "a");
	free(b.data);
	metrics_printf(NULL, "ignored");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_histogram),
	    cmocka_unit_test(test_printf),
	    cmocka_unit_test(test_scrape),
	    cmocka_unit_test(test_errors),
	    cmocka_unit_test(test_header_limit),
	    cmocka_unit_test(test_many_connections),
	    cmocka_unit_test(test_garbage),
	    cmocka_unit_test(test_stop_in_flight),
	    cmocka_unit_test(test_stop_in_render),
	    cmocka_unit_test(test_stop_idle),
	    cmocka_unit_test(test_start_errors),
	    cmocka_unit_test(test_ipv6),
	    cmocka_unit_test(test_timeout),
	    cmocka_unit_test(test_one_address_slots),
	};

	if (!getenv("MSCE_TEST_VERBOSE"))
		log_set_level(LOG_ERROR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
