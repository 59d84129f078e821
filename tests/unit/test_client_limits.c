/* SPDX-License-Identifier: Apache-2.0 */
/* The client server's limits over real loopback sockets: connections per
 * client key, the idle timeout, unfinished request bytes per connection and
 * in all (TCP and the unix socket), pending handshakes per source address,
 * and cookies under load. The clients are channels driven by hand on
 * non-blocking sockets while the server's loop runs. Every wait is
 * bounded. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>
#include <uv.h>

#include "channel.h"
#include "config.h"
#include "error.h"
#include "log.h"
#include "testutil.h"
#include "uv_client.h"

#define CLUSTER "test-msce"
#define WAIT_MS 10000
#define KIB (1u << 10)

struct world {
	uv_loop_t loop;
	uv_timer_t tick;
	struct config cfg;
	struct config_client clients[2];
	struct noise_keypair node_kp, kp[2];
	struct client_server *srv;
	char dir[64];
	int port, stopped;
	int requests;
	struct client_conn *held; /* the last request, held: no reply yet */
	size_t reply_bytes; /* if set, each request is answered at once */
};

/* A client played by hand: a channel on a non-blocking socket. */
struct cli {
	int fd;
	struct channel ch;
	struct channel_buf out;
	int messages, closed;
	size_t got; /* bytes read before the handshake, for counting */
	int paused; /* reads nothing: a client that does not read */
};

static void on_tick(uv_timer_t *t)
{
	(void)t;
}

static void on_request(void *data, struct client_conn *c, const uint8_t *msg,
		       size_t len)
{
	struct world *w = data;

	(void)msg;
	(void)len;
	w->requests++;
	/* Held until the test replies: a request in flight. */
	client_conn_hold(c);
	if (w->reply_bytes) {
		static uint8_t big[1 << 20];
		client_conn_reply(c, big, w->reply_bytes);
		return;
	}
	w->held = c;
}

static int on_cli_message(void *ctx, const uint8_t *msg, size_t len)
{
	struct cli *c = ctx;

	(void)msg;
	(void)len;
	c->messages++;
	return 0;
}

static void cli_flush(struct cli *c)
{
	size_t off = 0;

	while (off < c->out.len) {
		ssize_t n = send(c->fd, c->out.data + off, c->out.len - off,
				 MSG_NOSIGNAL);

		if (n < 0 && errno == EAGAIN)
			continue; /* loopback drains as the loop reads */
		if (n <= 0) {
			c->closed = 1;
			break;
		}
		off += (size_t)n;
	}
	c->out.len = 0;
}

/* Reads what is there into the channel; marks the end of the stream. */
static void cli_poll(struct cli *c)
{
	uint8_t buf[4096];

	while (!c->closed && !c->paused) {
		ssize_t n = recv(c->fd, buf, sizeof(buf), MSG_DONTWAIT);

		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (n <= 0) {
			c->closed = 1;
			return;
		}
		c->got += (size_t)n;
		if (channel_error(&c->ch) == 0)
			channel_feed(&c->ch, buf, (size_t)n, &c->out);
		cli_flush(c);
	}
}

static struct cli *clis[64];
static size_t nclis;

#define WAIT_FOR(w, cond)                                                      \
	do {                                                                   \
		uint64_t dl_ = uv_now(&(w)->loop) + WAIT_MS;                   \
		while (!(cond) && uv_now(&(w)->loop) < dl_) {                  \
			uv_run(&(w)->loop, UV_RUN_ONCE);                       \
			for (size_t i_ = 0; i_ < nclis; i_++)                  \
				cli_poll(clis[i_]);                            \
		}                                                              \
		assert_true(cond);                                             \
	} while (0)

static void run_for(struct world *w, uint64_t ms)
{
	uint64_t dl = uv_now(&w->loop) + ms;

	while (uv_now(&w->loop) < dl) {
		uv_run(&w->loop, UV_RUN_ONCE);
		for (size_t i = 0; i < nclis; i++)
			cli_poll(clis[i]);
	}
}

static int tcp_connect(struct world *w, const char *from)
{
	struct sockaddr_in sa = {.sin_family = AF_INET};
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	if (from) {
		assert_int_equal(inet_pton(AF_INET, from, &sa.sin_addr), 1);
		assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)),
				 0);
	}
	sa.sin_port = htons((uint16_t)w->port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	/* The listen backlog takes it at once. */
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(fcntl(fd, F_SETFL, O_NONBLOCK), 0);
	return fd;
}

/* A client with key k starts its handshake (message 1 sent). */
static void cli_open(struct world *w, struct cli *c,
		     const struct noise_keypair *k, const char *from)
{
	static uint64_t ts;
	struct channel_config cc = {0};
	uint64_t now = tu_wall_ms();

	memset(c, 0, sizeof(*c));
	ts = now > ts ? now : ts + 1;
	cc.role = NOISE_INITIATOR;
	cc.cluster = CLUSTER;
	cc.local = k;
	cc.remote_key = w->node_kp.pub;
	cc.cb.message = on_cli_message;
	cc.cb.ctx = c;
	assert_int_equal(channel_init(&c->ch, &cc, ts), 0);
	assert_int_equal(channel_start(&c->ch, &c->out), 0);
	c->fd = tcp_connect(w, from);
	cli_flush(c);
	clis[nclis++] = c;
}

/* One request of len bytes, sent whole, or only its first `part` bytes of
 * fragments (never finished). */
static void cli_send(struct cli *c, size_t len, size_t part)
{
	uint8_t *m = calloc(1, len ? len : 1);

	assert_non_null(m);
	m[0] = 1;
	assert_int_equal(channel_send(&c->ch, m, len, &c->out), 0);
	if (part && part < c->out.len)
		c->out.len = part;
	cli_flush(c);
	free(m);
}

static void cli_close(struct cli *c)
{
	close(c->fd);
	channel_destroy(&c->ch);
	channel_buf_free(&c->out);
	for (size_t i = 0; i < nclis; i++)
		if (clis[i] == c) {
			clis[i] = clis[--nclis];
			break;
		}
}

static struct client_server_stats stats(struct world *w)
{
	struct client_server_stats s;

	client_server_stats(w->srv, &s);
	return s;
}

static int free_port(void)
{
	struct sockaddr_in sa = {.sin_family = AF_INET};
	socklen_t len = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM, 0), port;

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
	port = ntohs(sa.sin_port);
	close(fd);
	return port;
}

/* A server with two client keys and the limits the test sets in w->cfg
 * before calling world_start. */
static struct world *world_new(void)
{
	struct world *w = calloc(1, sizeof(*w));
	const char *v = getenv("MSCE_TEST_VERBOSE");

	assert_non_null(w);
	log_set_level(v && *v == '1' ? LOG_DEBUG : LOG_ERROR);
	assert_int_equal(uv_loop_init(&w->loop), 0);
	uv_timer_init(&w->loop, &w->tick);
	uv_timer_start(&w->tick, on_tick, 5, 5);
	assert_int_equal(noise_keypair_generate(&w->node_kp), 0);
	snprintf(w->dir, sizeof(w->dir), "/tmp/msce-test-limits-XXXXXX");
	assert_non_null(mkdtemp(w->dir));
	snprintf(w->cfg.cluster, sizeof(w->cfg.cluster), "%s", CLUSTER);
	w->cfg.node_id = 1;
	w->port = free_port();
	snprintf(w->cfg.client_listen, sizeof(w->cfg.client_listen),
		 "127.0.0.1:%d", w->port);
	snprintf(w->cfg.socket_path, sizeof(w->cfg.socket_path), "%s/s.sock",
		 w->dir);
	w->cfg.max_clock_skew_ms = CONFIG_DEFAULT_CLOCK_SKEW_MS;
	w->cfg.clients = w->clients;
	w->cfg.nclients = 2;
	for (int i = 0; i < 2; i++) {
		assert_int_equal(noise_keypair_generate(&w->kp[i]), 0);
		snprintf(w->clients[i].name, sizeof(w->clients[i].name),
			 "c%d", i);
		memcpy(w->clients[i].public_key, w->kp[i].pub, 32);
		w->clients[i].role = CONFIG_ROLE_RW;
	}
	return w;
}

static void world_start(struct world *w)
{
	struct err e;

	assert_int_equal(client_server_start(&w->loop, &w->cfg, &w->node_kp,
					     on_request, w, &w->srv, &e),
			 0);
}

static void on_stopped(void *arg)
{
	((struct world *)arg)->stopped = 1;
}

static void world_free(struct world *w)
{
	while (nclis)
		cli_close(clis[nclis - 1]);
	if (w->held)
		client_conn_reply(w->held, (const uint8_t *)"", 0);
	client_server_stop(w->srv, on_stopped, w);
	WAIT_FOR(w, w->stopped);
	uv_close((uv_handle_t *)&w->tick, NULL);
	while (uv_loop_alive(&w->loop))
		uv_run(&w->loop, UV_RUN_NOWAIT);
	assert_int_equal(uv_loop_close(&w->loop), 0);
	for (int i = 0; i < 2; i++)
		noise_keypair_destroy(&w->kp[i]);
	noise_keypair_destroy(&w->node_kp);
	rmdir(w->dir);
	free(w);
}

/* ---- tests ---- */

/* Requests that come in one read are taken within the connection's
 * limits: a client that sends 200 at once and reads nothing gets replies
 * of 1 MiB up to CLIENT_MAX_QUEUED (and what the sockets' buffers take),
 * not 200 MiB; the rest wait unread in the node, and every one is
 * answered once the client reads. */
static void test_burst_without_reading(void **state)
{
	struct world *w = world_new();
	struct cli c;

	(void)state;
	w->reply_bytes = 1 << 20;
	world_start(w);
	cli_open(w, &c, &w->kp[0], NULL);
	WAIT_FOR(w, stats(w).tcp_sessions == 1);
	c.paused = 1;
	for (int i = 0; i < 200; i++)
		assert_int_equal(channel_send(&c.ch, (const uint8_t *)"q", 1,
					      &c.out),
				 0);
	cli_flush(&c); /* 200 requests in one write, about 4 KiB */
	run_for(w, 1000);
	print_message("taken while the client reads nothing: %d of 200\n",
		      w->requests);
	assert_true(w->requests > 0);
	assert_true(w->requests < 64);
	c.paused = 0;
	WAIT_FOR(w, w->requests == 200 && c.messages == 200);
	world_free(w);
}

/* The same over many connections of one key: together they get replies
 * up to CLIENT_MAX_QUEUED_PER_KEY (and the sockets' buffers), not
 * CLIENT_MAX_QUEUED on each; another key's client is served meanwhile;
 * everything is answered once they read. */
static void test_burst_many_connections(void **state)
{
	enum { NC = 8, EACH = 40 };
	struct world *w = world_new();
	struct cli c[NC], other;

	(void)state;
	w->reply_bytes = 1 << 20;
	world_start(w);
	for (int i = 0; i < NC; i++) {
		cli_open(w, &c[i], &w->kp[0], NULL);
		WAIT_FOR(w, channel_is_open(&c[i].ch));
	}
	WAIT_FOR(w, stats(w).tcp_sessions == NC);
	for (int i = 0; i < NC; i++) {
		c[i].paused = 1;
		for (int r = 0; r < EACH; r++)
			assert_int_equal(channel_send(&c[i].ch,
						      (const uint8_t *)"q", 1,
						      &c[i].out),
					 0);
		cli_flush(&c[i]);
	}
	run_for(w, 1500);
	print_message("taken while %d connections of a key read nothing: "
		      "%d of %d\n",
		      NC, w->requests, NC * EACH);
	/* 48 MiB and the sockets' buffers; without the key's limit each
	 * connection takes about 20 (16 MiB and its buffers): 160. */
	assert_true(w->requests < 120);
	int before = w->requests;
	cli_open(w, &other, &w->kp[1], NULL);
	WAIT_FOR(w, channel_is_open(&other.ch));
	cli_send(&other, 1, 0);
	WAIT_FOR(w, other.messages == 1);
	assert_int_equal(w->requests, before + 1);
	for (int i = 0; i < NC; i++)
		c[i].paused = 0;
	WAIT_FOR(w, w->requests == NC * EACH + 1);
	for (int i = 0; i < NC; i++)
		WAIT_FOR(w, c[i].messages == EACH);
	world_free(w);
}

/* A key gets client_max_connections_per_key connections; one more is
 * refused before message 2; another key is not affected; a closed one
 * frees its place. */
static void test_connections_per_key(void **state)
{
	struct world *w = world_new();
	struct cli c[5], other;

	(void)state;
	w->cfg.client_max_connections_per_key = 3;
	world_start(w);
	for (int i = 0; i < 3; i++) {
		cli_open(w, &c[i], &w->kp[0], NULL);
		WAIT_FOR(w, channel_is_open(&c[i].ch));
	}
	cli_open(w, &c[3], &w->kp[0], NULL);
	WAIT_FOR(w, c[3].closed);
	assert_int_equal(c[3].got, 0); /* no message 2 */
	assert_int_equal(stats(w).refused_key_connections, 1);
	cli_open(w, &other, &w->kp[1], NULL);
	WAIT_FOR(w, channel_is_open(&other.ch));
	cli_close(&c[0]);
	run_for(w, 50);
	cli_open(w, &c[4], &w->kp[0], NULL);
	WAIT_FOR(w, channel_is_open(&c[4].ch));
	assert_int_equal(stats(w).refused_key_connections, 1);
	/* A session once the node has the confirmation. */
	WAIT_FOR(w, stats(w).tcp_sessions == 5);
	world_free(w);
}

/* An open connection with nothing in flight and nothing read for
 * client_idle_timeout is closed; one with a request in flight is not. */
static void test_idle_timeout(void **state)
{
	struct world *w = world_new();
	struct cli a, b;
	uint64_t t0;

	(void)state;
	w->cfg.client_idle_timeout_ms = 1000;
	world_start(w);
	cli_open(w, &a, &w->kp[0], NULL);
	cli_open(w, &b, &w->kp[1], NULL);
	WAIT_FOR(w, channel_is_open(&a.ch) && channel_is_open(&b.ch));
	t0 = uv_now(&w->loop);
	cli_send(&b, 10, 0);
	WAIT_FOR(w, w->requests == 1 && w->held);
	WAIT_FOR(w, a.closed);
	assert_true(uv_now(&w->loop) - t0 >= 900);
	assert_int_equal(stats(w).idle_timeouts, 1);
	/* b's request is still owed: b stays. */
	run_for(w, 1500);
	assert_false(b.closed);
	client_conn_reply(w->held, (const uint8_t *)"r", 1);
	w->held = NULL;
	WAIT_FOR(w, b.messages == 1);
	WAIT_FOR(w, b.closed);
	assert_int_equal(stats(w).idle_timeouts, 2);
	world_free(w);
}

/* Unfinished requests: one connection may hold client_max_partial_bytes,
 * all of them client_max_partial_total; beyond, the connection that needs
 * more is closed. Nothing stays counted once the connections go. */
static void test_partial_bytes(void **state)
{
	struct world *w = world_new();
	struct cli a, b, c;

	(void)state;
	w->cfg.client_max_partial_bytes = 256 * KIB;
	w->cfg.client_max_partial_total = 300 * KIB;
	w->cfg.max_pending_per_address = 8;
	world_start(w);
	cli_open(w, &a, &w->kp[0], NULL);
	cli_open(w, &b, &w->kp[1], NULL);
	cli_open(w, &c, &w->kp[1], NULL);
	WAIT_FOR(w, channel_is_open(&a.ch) && channel_is_open(&b.ch) &&
			channel_is_open(&c.ch));
	/* Over the per-connection limit: refused as oversized. */
	cli_send(&c, 300 * KIB, 0);
	WAIT_FOR(w, c.closed);
	assert_int_equal(stats(w).oversized_requests, 1);
	/* a holds 200 KiB of a 250 KiB request: a 256 KiB buffer. */
	cli_send(&a, 250 * KIB, 200 * KIB);
	WAIT_FOR(w, stats(w).partial_bytes == 256 * KIB);
	/* b's first growth does not fit in what is left. */
	cli_send(&b, 250 * KIB, 100 * KIB);
	WAIT_FOR(w, b.closed);
	assert_int_equal(stats(w).refused_partial_total, 1);
	assert_false(a.closed);
	assert_int_equal(w->requests, 0);
	cli_close(&a);
	WAIT_FOR(w, stats(w).partial_bytes == 0);
	world_free(w);
}

/* One key gets half of client_max_partial_total (or one whole request,
 * if more): its connection that needs more is closed, and another key's
 * large request still fits in the other half. */
static void test_partial_bytes_per_key(void **state)
{
	struct world *w = world_new();
	struct cli a1, a2, b;

	(void)state;
	w->cfg.client_max_partial_bytes = 256 * KIB;
	w->cfg.client_max_partial_total = 600 * KIB; /* a key: 300 KiB */
	w->cfg.max_pending_per_address = 8;
	world_start(w);
	cli_open(w, &a1, &w->kp[0], NULL);
	cli_open(w, &a2, &w->kp[0], NULL);
	cli_open(w, &b, &w->kp[1], NULL);
	WAIT_FOR(w, channel_is_open(&a1.ch) && channel_is_open(&a2.ch) &&
			channel_is_open(&b.ch));
	cli_send(&a1, 250 * KIB, 200 * KIB); /* a 256 KiB buffer */
	WAIT_FOR(w, stats(w).partial_bytes == 256 * KIB);
	cli_send(&a2, 250 * KIB, 200 * KIB); /* over the key's 300 KiB */
	WAIT_FOR(w, a2.closed);
	assert_int_equal(stats(w).refused_partial_key, 1);
	assert_int_equal(stats(w).refused_partial_total, 0);
	cli_send(&b, 250 * KIB, 200 * KIB); /* the other key: fits */
	WAIT_FOR(w, stats(w).partial_bytes == 512 * KIB);
	run_for(w, 100);
	assert_false(a1.closed);
	assert_false(b.closed);
	assert_int_equal(w->requests, 0);
	cli_close(&a1);
	cli_close(&b);
	WAIT_FOR(w, stats(w).partial_bytes == 0);
	world_free(w);
}

static int unix_connect(struct world *w)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(strlen(w->cfg.socket_path) < sizeof(sun.sun_path));
	memcpy(sun.sun_path, w->cfg.socket_path,
	       strlen(w->cfg.socket_path) + 1);
	assert_int_equal(connect(fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	return fd;
}

/* The unix socket draws on the same budget: a message is held whole from
 * its length on. */
static void test_partial_bytes_unix(void **state)
{
	struct world *w = world_new();
	uint8_t hdr[4] = {0, 0x03, 0x20, 0x00}; /* 200 KiB */
	int fd1, fd2;
	char b;

	(void)state;
	w->cfg.client_max_partial_bytes = 256 * KIB;
	w->cfg.client_max_partial_total = 300 * KIB;
	world_start(w);
	fd1 = unix_connect(w);
	fd2 = unix_connect(w);
	assert_int_equal(send(fd1, hdr, 4, 0), 4);
	WAIT_FOR(w, stats(w).partial_bytes == 200 * KIB);
	assert_int_equal(send(fd2, hdr, 4, 0), 4);
	WAIT_FOR(w, stats(w).refused_partial_total == 1);
	assert_int_equal(recv(fd2, &b, 1, 0), 0); /* closed */
	close(fd1);
	WAIT_FOR(w, stats(w).partial_bytes == 0);
	close(fd2);
	world_free(w);
}

/* A unix connection closed with a request in flight (a put waiting for
 * min_sites) and an unfinished one: the unfinished one's bytes go back to
 * the shared budget at the close, not when the reply owed is done. */
static void test_partial_bytes_unix_closed_in_flight(void **state)
{
	struct world *w = world_new();
	uint8_t req[5] = {0, 0, 0, 1, 'q'};
	uint8_t hdr[4] = {0, 0x03, 0x20, 0x00}; /* 200 KiB */
	int fd1, fd2;

	(void)state;
	w->cfg.client_max_partial_bytes = 256 * KIB;
	w->cfg.client_max_partial_total = 300 * KIB;
	world_start(w);
	fd1 = unix_connect(w);
	assert_int_equal(send(fd1, req, sizeof req, 0), (ssize_t)sizeof req);
	WAIT_FOR(w, w->requests == 1); /* held: no reply yet */
	assert_int_equal(send(fd1, hdr, 4, 0), 4);
	WAIT_FOR(w, stats(w).partial_bytes == 200 * KIB);
	close(fd1);
	WAIT_FOR(w, stats(w).partial_bytes == 0);
	/* Another client's 200 KiB request finds its room. */
	fd2 = unix_connect(w);
	assert_int_equal(send(fd2, hdr, 4, 0), 4);
	WAIT_FOR(w, stats(w).partial_bytes == 200 * KIB);
	assert_int_equal(stats(w).refused_partial_total, 0);
	close(fd2);
	world_free(w); /* replies to the held request */
}

/* The same over the unix socket: 200 requests in one write, none of the
 * replies read; then the client reads them all. */
static void test_burst_without_reading_unix(void **state)
{
	struct world *w = world_new();
	uint8_t reqs[200 * 5];
	size_t got = 0;
	int fd;

	(void)state;
	w->reply_bytes = 1 << 20;
	world_start(w);
	fd = unix_connect(w);
	for (int i = 0; i < 200; i++) {
		uint8_t *r = reqs + 5 * i;
		r[0] = r[1] = r[2] = 0;
		r[3] = 1;
		r[4] = 'q';
	}
	assert_int_equal(send(fd, reqs, sizeof reqs, 0), (ssize_t)sizeof reqs);
	run_for(w, 1000);
	print_message("taken while the client reads nothing: %d of 200\n",
		      w->requests);
	assert_true(w->requests > 0);
	assert_true(w->requests < 100);
	/* Read every reply (4 + 1 MiB each) while the node goes on. */
	while (got < 200 * (4 + ((size_t)1 << 20))) {
		static uint8_t buf[1 << 16];
		ssize_t n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
		if (n > 0)
			got += (size_t)n;
		else if (n == 0)
			break;
		else
			run_for(w, 1);
	}
	assert_int_equal(w->requests, 200);
	close(fd);
	world_free(w);
}

/* Idle connections from one address take max_pending_per_address slots;
 * under load a client gets a cookie and comes in with it; one that sends
 * message 1 again without it is refused. */
static void test_pending_and_cookies(void **state)
{
	struct world *w = world_new();
	struct cli ok, bad;
	uint64_t cookies;
	int fds[16];

	(void)state;
	w->cfg.max_pending_handshakes = 8;
	w->cfg.max_pending_per_address = 2;
	world_start(w);
	for (int i = 0; i < 16; i++) {
		/* Idle: one each from 4 addresses, then 12 from one more
		 * (2 taken, 10 refused). */
		char from[16];

		snprintf(from, sizeof(from), "127.0.0.%d", i < 4 ? 2 + i : 9);
		fds[i] = tcp_connect(w, from);
	}
	WAIT_FOR(w, stats(w).refused_addr_pending == 10);
	/* 6 of 8 pending: under load. A client that follows the cookie gets
	 * in (the pending ones of 127.0.0.9 answered on the way). */
	cli_open(w, &ok, &w->kp[1], "127.0.0.20");
	WAIT_FOR(w, channel_is_open(&ok.ch));
	assert_true(stats(w).cookies_sent >= 1);
	/* Message 1 twice, no mac2: the second is refused, and counted as
	 * refused, not as a second cookie (one reply per connection goes
	 * out). */
	cookies = stats(w).cookies_sent;
	cli_open(w, &bad, &w->kp[1], "127.0.0.21");
	bad.out.len = 0;
	{
		uint8_t m[CHANNEL_FRAME_HDR + CHANNEL_MSG1_LEN];

		m[0] = 0;
		m[1] = CHANNEL_MSG1_LEN;
		memcpy(m + 2, bad.ch.msg1, CHANNEL_MSG1_LEN);
		assert_int_equal(send(bad.fd, m, sizeof(m), 0),
				 (ssize_t)sizeof(m));
	}
	WAIT_FOR(w, stats(w).refused_under_load == 1);
	assert_int_equal(stats(w).cookies_sent, cookies + 1);
	for (int i = 0; i < 16; i++)
		close(fds[i]);
	world_free(w);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_burst_without_reading),
	    cmocka_unit_test(test_burst_without_reading_unix),
	    cmocka_unit_test(test_burst_many_connections),
	    cmocka_unit_test(test_connections_per_key),
	    cmocka_unit_test(test_idle_timeout),
	    cmocka_unit_test(test_partial_bytes),
	    cmocka_unit_test(test_partial_bytes_unix),
	    cmocka_unit_test(test_partial_bytes_unix_closed_in_flight),
	    cmocka_unit_test(test_partial_bytes_per_key),
	    cmocka_unit_test(test_pending_and_cookies),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
