/* SPDX-License-Identifier: Apache-2.0 */
/* Peer links over real loopback TCP: several peer_nets in one process and
 * one loop, each with its own key pair and in-memory config. Sessions come
 * up both ways and messages of every size arrive in order; refusals (unknown
 * key, garbage, bad mac1, replay, clock skew, too many pending in all and
 * per address, under load without a cookie, handshake timeout, a session
 * never confirmed, oversized message, slow reader) are counted and leave
 * the other sessions alone; the peers' hosts get in through a flood from
 * elsewhere; a replayed message 1 never displaces a session; a stopped net
 * is seen as down and comes back when restarted.
 * Every wait is bounded; every test ends with uv_loop_close succeeding (no
 * handle left) and ASan checks for leaks. MSCE_SEED replays the random
 * payloads; MSCE_TEST_VERBOSE=1 shows INFO logs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <uv.h>

#include "channel.h"
#include "config.h"
#include "error.h"
#include "log.h"
#include "noise.h"
#include "testutil.h"
#include "uv_peer.h"

#define CLUSTER "test-msce"
#define MAXN 6	      /* node ids 1..MAXN */
#define WAIT_MS 10000 /* bound of every wait */
#define KIB (1u << 10)
#define MIB (1u << 20)

struct rxmsg {
	uint32_t peer;
	size_t len;
	uint8_t *data;
};

struct world;

struct tnode {
	struct world *w;
	uint32_t id;
	int port;
	struct noise_keypair kp;
	struct config cfg;
	struct config_peer peers[MAXN];
	struct peer_net_config pc;
	struct peer_net *net;
	int stopping, stopped;
	int ups[MAXN + 1], downs[MAXN + 1];
	int nfailed[MAXN + 1];	   /* failed callbacks, by peer */
	char failed[MAXN + 1][448]; /* the last one's text */
	int violations;	 /* up/down out of turn, or a callback after stop */
	int send_on_up;	 /* say "hello" from inside the up callback */
	int stop_on_msg; /* peer_net_stop from inside the message "stop" */
	struct rxmsg *rx;
	size_t nrx, caprx;
};

struct world {
	uv_loop_t loop;
	uv_timer_t tick;
	struct tnode node[MAXN + 1];
	uint64_t rng;
};

/* ---- waiting ---- */

/* Runs the loop until cond holds, failing after WAIT_MS. The tick timer
 * makes every UV_RUN_ONCE return within a few ms. */
#define WAIT_FOR(w, cond)                                                      \
	do {                                                                   \
		uint64_t dl_ = uv_now(&(w)->loop) + WAIT_MS;                   \
		while (!(cond) && uv_now(&(w)->loop) < dl_)                    \
			uv_run(&(w)->loop, UV_RUN_ONCE);                       \
		if (!(cond))                                                   \
			dump(w);                                               \
		assert_true(cond);                                             \
	} while (0)

static void run_for(struct world *w, uint64_t ms)
{
	uint64_t dl = uv_now(&w->loop) + ms;

	while (uv_now(&w->loop) < dl)
		uv_run(&w->loop, UV_RUN_ONCE);
}

static void on_tick(uv_timer_t *t)
{
	(void)t;
}

static struct peer_net_stats stats(struct tnode *t)
{
	struct peer_net_stats s;

	memset(&s, 0, sizeof(s));
	if (t->net)
		peer_net_stats(t->net, &s);
	return s;
}

static void dump(struct world *w)
{
	for (uint32_t id = 1; id <= MAXN; id++) {
		struct tnode *t = &w->node[id];
		struct peer_net_stats s = stats(t);

		if (!t->net)
			continue;
		printf("node %u: est %llu unk %llu replay %llu badhs %llu "
		       "pend %llu hsto %llu dec %llu big %llu dup %llu "
		       "crossed %llu replaced %llu conn %llu skew %llu "
		       "frames %llu slow %llu rekeys %llu rx %zu\n",
		       id, (unsigned long long)s.sessions_established,
		       (unsigned long long)s.refused_unknown_key,
		       (unsigned long long)s.refused_replay,
		       (unsigned long long)s.refused_bad_handshake,
		       (unsigned long long)s.refused_too_many_pending,
		       (unsigned long long)s.handshake_timeouts,
		       (unsigned long long)s.decrypt_failures,
		       (unsigned long long)s.oversized_frames,
		       (unsigned long long)s.duplicate_sessions,
		       (unsigned long long)s.crossed_dials,
		       (unsigned long long)s.sessions_replaced,
		       (unsigned long long)s.connect_failures,
		       (unsigned long long)s.refused_clock_skew,
		       (unsigned long long)s.bad_frames,
		       (unsigned long long)s.too_slow,
		       (unsigned long long)s.rekeys, t->nrx);
		for (uint32_t p = 1; p <= MAXN; p++)
			if (t->ups[p] || t->downs[p])
				printf("  peer %u: up %d down %d\n", p,
				       t->ups[p], t->downs[p]);
	}
}

/* ---- nodes ---- */

static void node_stop(struct tnode *t);

static void on_up(void *data, uint32_t peer)
{
	struct tnode *t = data;

	assert_true(peer >= 1 && peer <= MAXN);
	if (t->stopping || t->ups[peer] != t->downs[peer])
		t->violations++;
	t->ups[peer]++;
	if (t->send_on_up)
		assert_int_equal(
		    peer_net_send(t->net, peer, (const uint8_t *)"hello", 5),
		    0);
}

static void on_down(void *data, uint32_t peer)
{
	struct tnode *t = data;

	assert_true(peer >= 1 && peer <= MAXN);
	if (t->stopping || t->ups[peer] != t->downs[peer] + 1)
		t->violations++;
	t->downs[peer]++;
}

static void on_failed(void *data, uint32_t peer, const char *why)
{
	struct tnode *t = data;

	assert_true(peer >= 1 && peer <= MAXN);
	t->nfailed[peer]++;
	snprintf(t->failed[peer], sizeof t->failed[peer], "%s", why);
}

static void on_message(void *data, uint32_t peer, const uint8_t *msg,
		       size_t len)
{
	struct tnode *t = data;
	struct rxmsg *m;

	if (t->stopping)
		t->violations++;
	if (t->nrx == t->caprx) {
		t->caprx = t->caprx ? 2 * t->caprx : 16;
		t->rx = realloc(t->rx, t->caprx * sizeof(*t->rx));
		assert_non_null(t->rx);
	}
	m = &t->rx[t->nrx++];
	m->peer = peer;
	m->len = len;
	m->data = len ? malloc(len) : NULL;
	if (len) {
		assert_non_null(m->data);
		memcpy(m->data, msg, len);
	}
	if (t->stop_on_msg && len == 4 && memcmp(msg, "stop", 4) == 0)
		node_stop(t);
}

static void on_stopped(void *arg)
{
	struct tnode *t = arg;

	t->stopped = 1;
}

/* A port nothing listens on right now: bind to port 0, read it, close. */
static int free_port(struct world *w)
{
	for (;;) {
		struct sockaddr_in sa;
		socklen_t len = sizeof(sa);
		int fd = socket(AF_INET, SOCK_STREAM, 0), port, dup = 0;

		assert_true(fd >= 0);
		memset(&sa, 0, sizeof(sa));
		sa.sin_family = AF_INET;
		sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)),
				 0);
		assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len),
				 0);
		close(fd);
		port = ntohs(sa.sin_port);
		for (int i = 1; i <= MAXN; i++)
			dup |= w->node[i].port == port;
		if (!dup)
			return port;
	}
}

static struct world *world_new(const char *test)
{
	struct world *w = calloc(1, sizeof(*w));
	const char *v = getenv("MSCE_TEST_VERBOSE");

	assert_non_null(w);
	log_set_level(v && *v == '1' ? LOG_DEBUG : LOG_WARN);
	w->rng = tu_seed(test);
	assert_int_equal(uv_loop_init(&w->loop), 0);
	uv_timer_init(&w->loop, &w->tick);
	uv_timer_start(&w->tick, on_tick, 5, 5);
	return w;
}

static struct tnode *node_init(struct world *w, uint32_t id)
{
	struct tnode *t = &w->node[id];

	t->w = w;
	t->id = id;
	t->port = free_port(w);
	assert_int_equal(noise_keypair_generate(&t->kp), 0);
	snprintf(t->cfg.cluster, sizeof(t->cfg.cluster), "%s", CLUSTER);
	t->cfg.node_id = id;
	snprintf(t->cfg.node_name, sizeof(t->cfg.node_name), "n%u", id);
	snprintf(t->cfg.listen, sizeof(t->cfg.listen), "127.0.0.1:%d", t->port);
	t->cfg.max_clock_skew_ms = CONFIG_DEFAULT_CLOCK_SKEW_MS;
	t->cfg.peers = t->peers;
	t->pc.loop = &w->loop;
	t->pc.cfg = &t->cfg;
	t->pc.key = &t->kp;
	t->pc.handshake_timeout_ms = 2000;
	/* Every test connection comes from 127.0.0.1. */
	t->pc.max_pending_per_addr = 64;
	t->pc.backoff_min_ms = 20;
	t->pc.backoff_max_ms = 200;
	return t;
}

/* a's config lists peer id with that key and port. */
static void know(struct tnode *a, uint32_t id, const uint8_t key[32], int port)
{
	struct config_peer *p = &a->peers[a->cfg.npeers++];

	snprintf(p->name, sizeof(p->name), "n%u", id);
	p->id = id;
	snprintf(p->address, sizeof(p->address), "127.0.0.1:%d", port);
	memcpy(p->public_key, key, 32);
}

static void link_nodes(struct tnode *a, struct tnode *b)
{
	know(a, b->id, b->kp.pub, b->port);
	know(b, a->id, a->kp.pub, a->port);
}

static void node_start(struct tnode *t)
{
	struct peer_net_cb cb = {t, on_up, on_down, on_message, NULL,
				 on_failed};
	struct err e;
	int rc;

	err_clear(&e);
	t->stopping = t->stopped = 0;
	rc = peer_net_start(&t->pc, &cb, &t->net, &e);
	if (rc)
		printf("node %u: %s\n", t->id, e.msg);
	assert_int_equal(rc, 0);
}

static void node_stop(struct tnode *t)
{
	t->stopping = 1;
	peer_net_stop(t->net, on_stopped, t);
	t->net = NULL; /* freed once the loop has closed its handles */
}

static void node_forget(struct tnode *t)
{
	for (size_t i = 0; i < t->nrx; i++)
		free(t->rx[i].data);
	free(t->rx);
	t->rx = NULL;
	t->nrx = t->caprx = 0;
	memset(t->ups, 0, sizeof(t->ups));
	memset(t->downs, 0, sizeof(t->downs));
}

static int is_up(const struct tnode *t, uint32_t peer)
{
	return t->ups[peer] > t->downs[peer];
}

/* Both ends up and settled. Both may have dialled at once, and until the
 * duplicate is resolved (one end then sees down and up again) the two ends
 * may each hold a different connection: wait for 100 ms without change. */
static void wait_up(struct world *w, struct tnode *a, struct tnode *b)
{
	uint64_t dl = uv_now(&w->loop) + WAIT_MS;
	int ua, ub;

	do {
		WAIT_FOR(w, is_up(a, b->id) && is_up(b, a->id));
		ua = a->ups[b->id];
		ub = b->ups[a->id];
		run_for(w, 100);
	} while ((ua != a->ups[b->id] || ub != b->ups[a->id] ||
		  !is_up(a, b->id) || !is_up(b, a->id)) &&
		 uv_now(&w->loop) < dl);
	assert_true(is_up(a, b->id) && is_up(b, a->id));
}

static void world_free(struct world *w)
{
	int alive = 1;

	for (uint32_t id = 1; id <= MAXN; id++)
		if (w->node[id].net)
			node_stop(&w->node[id]);
	for (uint32_t id = 1; id <= MAXN; id++) {
		struct tnode *t = &w->node[id];
		if (t->id)
			WAIT_FOR(w, t->stopped || !t->stopping);
	}
	uv_close((uv_handle_t *)&w->tick, NULL);
	/* Nothing may keep the loop alive now: a left-over handle fails the
	 * test here instead of hanging it. */
	for (int i = 0; i < 1000 && (alive = uv_loop_alive(&w->loop)); i++)
		uv_run(&w->loop, UV_RUN_NOWAIT);
	assert_false(alive);
	assert_int_equal(uv_loop_close(&w->loop), 0);
	for (uint32_t id = 1; id <= MAXN; id++) {
		struct tnode *t = &w->node[id];
		assert_int_equal(t->violations, 0);
		node_forget(t);
		noise_keypair_destroy(&t->kp);
	}
	free(w);
}

static uint8_t *random_bytes(struct world *w, size_t len)
{
	uint8_t *p = malloc(len ? len : 1);

	assert_non_null(p);
	for (size_t i = 0; i < len; i++)
		p[i] = (uint8_t)tu_rand(&w->rng);
	return p;
}

/* t received from peer exactly msgs[0..n), in order, intact, counting
 * from its message number from. */
static void check_rx(struct tnode *t, size_t from, uint32_t peer,
		     uint8_t *const *msgs, const size_t *lens, size_t n)
{
	size_t k = 0;

	for (size_t i = from; i < t->nrx; i++) {
		if (t->rx[i].peer != peer)
			continue;
		assert_true(k < n);
		assert_int_equal(t->rx[i].len, lens[k]);
		if (lens[k])
			assert_memory_equal(t->rx[i].data, msgs[k], lens[k]);
		k++;
	}
	assert_int_equal(k, n);
}

static size_t count_rx(const struct tnode *t, size_t from, uint32_t peer)
{
	size_t k = 0;

	for (size_t i = from; i < t->nrx; i++)
		k += t->rx[i].peer == peer;
	return k;
}

static size_t count_text(const struct tnode *t, uint32_t peer, const char *text)
{
	size_t k = 0, n = strlen(text);

	for (size_t i = 0; i < t->nrx; i++)
		k += t->rx[i].peer == peer && t->rx[i].len == n &&
		     memcmp(t->rx[i].data, text, n) == 0;
	return k;
}

/* One small message each way between a and b. */
static void ping(struct world *w, struct tnode *a, struct tnode *b)
{
	size_t na = a->nrx, nb = b->nrx;
	const uint8_t hi[] = "ping";

	assert_int_equal(peer_net_send(a->net, b->id, hi, sizeof(hi)), 0);
	assert_int_equal(peer_net_send(b->net, a->id, hi, sizeof(hi)), 0);
	WAIT_FOR(w, count_rx(b, nb, a->id) == 1 && count_rx(a, na, b->id) == 1);
}

/* ---- a raw TCP client, for garbage and hand-made handshakes ---- */

struct raw {
	uv_tcp_t tcp;
	uv_connect_t creq;
	uint8_t *first; /* written once connected */
	size_t first_len;
	uint8_t in[4096];
	size_t in_len;
	int connected, eof, closing, closed;
};

struct raw_write {
	uv_write_t req;
	uint8_t *data;
};

static void on_raw_close(uv_handle_t *h)
{
	struct raw *r = h->data;

	r->closed = 1;
	free(r->first);
	r->first = NULL;
}

static void raw_close(struct raw *r)
{
	if (!r->closing) {
		r->closing = 1;
		uv_close((uv_handle_t *)&r->tcp, on_raw_close);
	}
}

static void on_raw_written(uv_write_t *req, int status)
{
	struct raw_write *rw = (struct raw_write *)req;

	(void)status;
	free(rw->data);
	free(rw);
}

static void raw_write(struct raw *r, const uint8_t *data, size_t len)
{
	struct raw_write *rw = malloc(sizeof(*rw));
	uv_buf_t buf;

	assert_non_null(rw);
	rw->data = malloc(len);
	assert_non_null(rw->data);
	memcpy(rw->data, data, len);
	buf = uv_buf_init((char *)rw->data, (unsigned)len);
	assert_int_equal(
	    uv_write(&rw->req, (uv_stream_t *)&r->tcp, &buf, 1, on_raw_written),
	    0);
}

static void on_raw_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
	struct raw *r = h->data;

	(void)hint;
	buf->base = (char *)r->in + r->in_len;
	buf->len = sizeof(r->in) - r->in_len;
}

static void on_raw_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	struct raw *r = s->data;

	(void)buf;
	if (nread < 0 || r->in_len + (size_t)nread >= sizeof(r->in)) {
		r->eof = 1;
		raw_close(r);
		return;
	}
	r->in_len += (size_t)nread;
}

static void on_raw_connect(uv_connect_t *req, int status)
{
	struct raw *r = req->handle->data;

	if (status < 0) {
		r->eof = 1;
		raw_close(r);
		return;
	}
	r->connected = 1;
	if (r->first_len)
		raw_write(r, r->first, r->first_len);
	uv_read_start((uv_stream_t *)&r->tcp, on_raw_alloc, on_raw_read);
}

/* Connects from the address from (NULL: any) to 127.0.0.1:port and sends
 * first (copied; may be NULL). */
static void raw_open_from(struct world *w, struct raw *r, const char *from,
			  int port, const uint8_t *first, size_t len)
{
	struct sockaddr_in sa;

	memset(r, 0, sizeof(*r));
	if (len) {
		r->first = malloc(len);
		assert_non_null(r->first);
		memcpy(r->first, first, len);
		r->first_len = len;
	}
	assert_int_equal(uv_tcp_init(&w->loop, &r->tcp), 0);
	r->tcp.data = r;
	if (from) {
		assert_int_equal(uv_ip4_addr(from, 0, &sa), 0);
		assert_int_equal(
		    uv_tcp_bind(&r->tcp, (const struct sockaddr *)&sa, 0), 0);
	}
	assert_int_equal(uv_ip4_addr("127.0.0.1", port, &sa), 0);
	assert_int_equal(uv_tcp_connect(&r->creq, &r->tcp,
					(const struct sockaddr *)&sa,
					on_raw_connect),
			 0);
}

static void raw_open(struct world *w, struct raw *r, int port,
		     const uint8_t *first, size_t len)
{
	raw_open_from(w, r, NULL, port, first, len);
}

/* A hand-driven initiator: the test plays a peer the node knows. */
struct fake {
	struct channel ch;
	struct channel_buf msg1;
	int received;
	uint8_t last[64];
	size_t last_len;
};

static int on_fake_message(void *ctx, const uint8_t *msg, size_t len)
{
	struct fake *f = ctx;

	f->received++;
	f->last_len = len < sizeof(f->last) ? len : sizeof(f->last);
	if (f->last_len)
		memcpy(f->last, msg, f->last_len);
	return 0;
}

static void fake_init(struct fake *f, const struct noise_keypair *me,
		      const uint8_t *node_key, uint64_t now_ms)
{
	struct channel_config cc;

	memset(f, 0, sizeof(*f));
	memset(&cc, 0, sizeof(cc));
	cc.role = NOISE_INITIATOR;
	cc.cluster = CLUSTER;
	cc.local = me;
	cc.remote_key = node_key;
	cc.cb.message = on_fake_message;
	cc.cb.ctx = f;
	assert_int_equal(channel_init(&f->ch, &cc, now_ms), 0);
	assert_int_equal(channel_start(&f->ch, &f->msg1), 0);
	assert_int_equal(f->msg1.len, CHANNEL_FRAME_HDR + CHANNEL_MSG1_LEN);
}

static void fake_free(struct fake *f)
{
	channel_destroy(&f->ch);
	channel_buf_free(&f->msg1);
}

/* ---- tests ---- */

static void test_sessions_and_messages(void **state)
{
	struct world *w = world_new("sessions_and_messages");
	struct tnode *a = node_init(w, 1), *b = node_init(w, 2);
	const size_t lens[] = {0, 1, 100 * KIB, 3 * MIB};
	uint8_t *msgs[4];
	size_t na, nb;
	int ups;

	(void)state;
	link_nodes(a, b);
	node_start(a);
	node_start(b);
	wait_up(w, a, b);
	ups = a->ups[2];
	for (int i = 0; i < 4; i++)
		msgs[i] = random_bytes(w, lens[i]);
	na = a->nrx;
	nb = b->nrx;
	for (int i = 0; i < 4; i++) {
		assert_int_equal(peer_net_send(a->net, 2, msgs[i], lens[i]), 0);
		assert_int_equal(peer_net_send(b->net, 1, msgs[i], lens[i]), 0);
	}
	WAIT_FOR(w, count_rx(b, nb, 1) == 4 && count_rx(a, na, 2) == 4);
	check_rx(b, nb, 1, msgs, lens, 4);
	check_rx(a, na, 2, msgs, lens, 4);
	/* The same session throughout. */
	assert_int_equal(a->ups[2], ups);
	assert_int_equal(a->ups[2] - a->downs[2], 1);
	assert_int_equal(b->ups[1] - b->downs[1], 1);
	/* Unknown peer, and over the size limit (the session stays). */
	assert_int_equal(peer_net_send(a->net, 9, msgs[1], 1), MSCE_ENOTFOUND);
	assert_int_equal(peer_net_send(a->net, 2, msgs[3], 5 * MIB),
			 MSCE_ETOOBIG);
	assert_true(is_up(a, 2));
	/* Stop with a big write still in flight: cancelled writes must not
	 * leak. */
	assert_int_equal(peer_net_send(a->net, 2, msgs[3], lens[3]), 0);
	for (int i = 0; i < 4; i++)
		free(msgs[i]);
	world_free(w);
}

/* Three nodes dialling each other at the same instant: every pair ends
 * with one session, up/down strictly alternate, and it stays put. */
static void test_three_nodes_race(void **state)
{
	struct world *w = world_new("three_nodes_race");
	struct tnode *t[4];
	int ups[4][4];
	uint64_t dups = 0;

	(void)state;
	for (uint32_t i = 1; i <= 3; i++) {
		t[i] = node_init(w, i);
		t[i]->pc.backoff_min_ms = 1; /* first dial at once */
		t[i]->pc.race_dials = 1;
		t[i]->send_on_up = 1;
	}
	link_nodes(t[1], t[2]);
	link_nodes(t[1], t[3]);
	link_nodes(t[2], t[3]);
	for (int i = 1; i <= 3; i++)
		node_start(t[i]);
	WAIT_FOR(w, is_up(t[1], 2) && is_up(t[1], 3) && is_up(t[2], 1) &&
			is_up(t[2], 3) && is_up(t[3], 1) && is_up(t[3], 2));
	run_for(w, 300);
	for (int i = 1; i <= 3; i++) {
		for (int j = 1; j <= 3; j++) {
			ups[i][j] = t[i]->ups[j];
			if (i != j)
				assert_int_equal(t[i]->ups[j] - t[i]->downs[j],
						 1);
		}
		dups += stats(t[i]).crossed_dials;
		/* Crossed dials are not a second process with one key. */
		assert_int_equal(stats(t[i]).duplicate_sessions, 0);
	}
	printf("crossed dials resolved: %llu\n", (unsigned long long)dups);
	assert_true(dups >= 1);
	run_for(w, 300);
	for (int i = 1; i <= 3; i++)
		for (int j = 1; j <= 3; j++) {
			assert_int_equal(t[i]->ups[j], ups[i][j]);
			/* What up() sent on the session that stayed, at the
			 * very least, came through after message 2. */
			if (i != j)
				assert_true(count_text(t[i], j, "hello") >= 1);
		}
	ping(w, t[1], t[2]);
	ping(w, t[1], t[3]);
	ping(w, t[2], t[3]);
	world_free(w);
}

/* A net whose key node 1 does not know keeps being refused; the session
 * 1-2 is untouched. */
static void test_unknown_key(void **state)
{
	struct world *w = world_new("unknown_key");
	struct tnode *a = node_init(w, 1), *b = node_init(w, 2);
	struct tnode *x = node_init(w, 4);
	uint64_t est;

	(void)state;
	link_nodes(a, b);
	know(x, 1, a->kp.pub, a->port); /* 4 knows 1, not the reverse */
	node_start(a);
	node_start(b);
	wait_up(w, a, b);
	est = stats(a).sessions_established;
	node_start(x);
	WAIT_FOR(w, stats(a).refused_unknown_key >= 2 &&
			stats(x).connect_failures >= 2);
	assert_int_equal(x->ups[1], 0);
	/* x is told why it has no session with 1 (for its status). */
	assert_true(x->nfailed[1] >= 1);
	assert_non_null(strstr(x->failed[1], "dial to 127.0.0.1:"));
	assert_int_equal(a->nfailed[2], 0);
	assert_int_equal(stats(a).sessions_established, est);
	assert_true(is_up(a, 2));
	ping(w, a, b);
	world_free(w);
}

/* Random bytes, and a message 1 of the right length that does not
 * decrypt, are refused; the node keeps serving. */
static void test_garbage(void **state)
{
	struct world *w = world_new("garbage");
	struct tnode *a = node_init(w, 1), *b = node_init(w, 2);
	struct raw r1, r2;
	uint8_t *junk;
	int downs;

	(void)state;
	link_nodes(a, b);
	node_start(a);
	node_start(b);
	wait_up(w, a, b);
	downs = a->downs[2];

	junk = random_bytes(w, 300);
	junk[0] = 0xff; /* a length no handshake has */
	raw_open(w, &r1, a->port, junk, 300);
	WAIT_FOR(w, r1.closed);
	assert_int_equal(stats(a).refused_bad_handshake, 1);
	assert_int_equal(r1.in_len, 0); /* nothing in the clear */

	/* Right length, not made for a: refused at mac1. */
	junk[0] = 0;
	junk[1] = CHANNEL_MSG1_LEN;
	raw_open(w, &r2, a->port, junk, CHANNEL_FRAME_HDR + CHANNEL_MSG1_LEN);
	WAIT_FOR(w, r2.closed);
	assert_int_equal(stats(a).refused_bad_mac, 1);
	assert_int_equal(stats(a).refused_bad_handshake, 1);
	assert_int_equal(r2.in_len, 0);
	free(junk);

	assert_int_equal(a->downs[2], downs);
	ping(w, a, b);
	world_free(w);
}

/* A handshake that stops halfway is cut after handshake_timeout_ms. */
static void test_handshake_timeout(void **state)
{
	struct world *w = world_new("handshake_timeout");
	struct tnode *a = node_init(w, 1);
	const uint8_t half[] = {0, CHANNEL_MSG1_LEN, 1, 2, 3, 4, 5, 6, 7, 8};
	struct raw r;
	uint64_t t0;

	(void)state;
	a->pc.handshake_timeout_ms = 300;
	node_start(a);
	t0 = uv_now(&w->loop);
	raw_open(w, &r, a->port, half, sizeof(half));
	WAIT_FOR(w, r.closed);
	assert_true(uv_now(&w->loop) - t0 >= 250);
	assert_int_equal(stats(a).handshake_timeouts, 1);
	assert_int_equal(stats(a).refused_bad_handshake, 0);
	world_free(w);
}

/* Our dial to a peer that takes the connection and never answers (a
 * stopped process): cut after handshake_timeout_ms, and the node is told
 * why (for its status), not left with an older reason. */
static void test_dial_handshake_timeout_reported(void **state)
{
	struct world *w = world_new("dial_handshake_timeout");
	struct tnode *a = node_init(w, 1);
	struct sockaddr_in sa = {.sin_family = AF_INET};
	int port = free_port(w), fd = socket(AF_INET, SOCK_STREAM, 0);
	struct noise_keypair fake;

	(void)state;
	assert_int_equal(noise_keypair_generate(&fake), 0);
	assert_true(fd >= 0);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sa.sin_port = htons((uint16_t)port);
	/* Listens, never accepts: the kernel completes the connection. */
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
	assert_int_equal(listen(fd, 8), 0);
	know(a, 2, fake.pub, port);
	a->pc.handshake_timeout_ms = 300;
	node_start(a);
	WAIT_FOR(w, a->nfailed[2] >= 1 &&
			strstr(a->failed[2], "handshake not done") != NULL);
	assert_non_null(strstr(a->failed[2], "dial to 127.0.0.1:"));
	close(fd);
	world_free(w);
}

/* Accepts beyond max_pending are closed at once and counted; once the
 * pending ones go, new connections are taken again. */
static void test_max_pending(void **state)
{
	struct world *w = world_new("max_pending");
	struct tnode *a = node_init(w, 1);
	uint8_t junk[8] = {0xff, 0xff};
	struct raw r[5];

	(void)state;
	a->pc.max_pending = 2;
	a->pc.handshake_timeout_ms = 5000;
	node_start(a);
	raw_open(w, &r[0], a->port, NULL, 0);
	raw_open(w, &r[1], a->port, NULL, 0);
	WAIT_FOR(w, r[0].connected && r[1].connected);
	run_for(w, 50);
	raw_open(w, &r[2], a->port, NULL, 0);
	raw_open(w, &r[3], a->port, NULL, 0);
	WAIT_FOR(w, r[2].closed && r[3].closed);
	assert_int_equal(stats(a).refused_too_many_pending, 2);
	assert_false(r[0].closing || r[1].closing);

	raw_close(&r[0]);
	raw_close(&r[1]);
	run_for(w, 100);
	raw_open(w, &r[4], a->port, junk, sizeof(junk));
	WAIT_FOR(w, r[4].closed);
	/* Taken as a handshake this time, and refused as garbage. */
	assert_int_equal(stats(a).refused_too_many_pending, 2);
	assert_int_equal(stats(a).refused_bad_handshake, 1);
	world_free(w);
}

/* The test plays peer 5 by hand: a replayed message 1 and one off the clock
 * by more than max_clock_skew are refused; a newer connection from the
 * same peer is refused while the old session is live (a second process
 * with its key); once the session has been silent for live_ms a message 1
 * it never saw (replayed by someone who caught it on the way) gets message
 * 2 but takes nothing, and only a confirmed newer connection replaces the
 * session (down, then up). */
static void test_replay_skew_duplicate(void **state)
{
	struct world *w = world_new("replay_skew_duplicate");
	struct tnode *a = node_init(w, 1);
	struct noise_keypair k5 = {0};
	struct fake f1, f2, f3, f4, f5;
	struct raw r1, r2, r3, r4, r5, r6;
	struct channel_buf out = {0};
	uint64_t now = tu_wall_ms();

	(void)state;
	assert_int_equal(noise_keypair_generate(&k5), 0);
	know(a, 5, k5.pub, free_port(w)); /* nothing listens there */
	a->pc.live_ms = 1000;
	a->pc.handshake_timeout_ms = 600;
	node_start(a);

	fake_init(&f1, &k5, a->kp.pub, now);
	raw_open(w, &r1, a->port, f1.msg1.data, f1.msg1.len);
	WAIT_FOR(w, r1.in_len >= CHANNEL_FRAME_HDR + CHANNEL_MSG2_LEN);
	/* Answered, but not up before the initiator confirms. */
	run_for(w, 50);
	assert_false(is_up(a, 5));
	assert_int_equal(channel_feed(&f1.ch, r1.in, r1.in_len, NULL), 0);
	assert_true(channel_is_open(&f1.ch));
	/* The confirmation goes out with the first message. */
	assert_int_equal(channel_send(&f1.ch, (const uint8_t *)"hi", 2, &out),
			 0);
	raw_write(&r1, out.data, out.len);
	channel_buf_free(&out);
	WAIT_FOR(w, is_up(a, 5) && count_rx(a, 0, 5) == 1);
	assert_int_equal(a->rx[0].len, 2);
	assert_memory_equal(a->rx[0].data, "hi", 2);
	assert_int_equal(peer_net_send(a->net, 5, (const uint8_t *)"yo", 2), 0);

	/* The same message 1 again. */
	raw_open(w, &r2, a->port, f1.msg1.data, f1.msg1.len);
	WAIT_FOR(w, r2.closed);
	assert_int_equal(stats(a).refused_replay, 1);

	/* Two minutes in the past: beyond max_clock_skew (60 s). */
	fake_init(&f2, &k5, a->kp.pub, now - 120000);
	raw_open(w, &r3, a->port, f2.msg1.data, f2.msg1.len);
	WAIT_FOR(w, r3.closed);
	assert_int_equal(r3.in_len, 0);
	assert_int_equal(stats(a).refused_clock_skew, 1);
	assert_int_equal(a->ups[5], 1);
	assert_int_equal(a->downs[5], 0);

	/* The first session still works. */
	WAIT_FOR(w, r1.in_len > CHANNEL_FRAME_HDR + CHANNEL_MSG2_LEN);
	assert_int_equal(
	    channel_feed(&f1.ch, r1.in + CHANNEL_FRAME_HDR + CHANNEL_MSG2_LEN,
			 r1.in_len - CHANNEL_FRAME_HDR - CHANNEL_MSG2_LEN,
			 NULL),
	    0);
	assert_int_equal(f1.received, 1);
	assert_memory_equal(f1.last, "yo", 2);

	/* Peer 5 speaks on its session and dials again at once: the newer
	 * connection is refused before message 2, the session stays. */
	assert_int_equal(channel_send(&f1.ch, (const uint8_t *)"hi", 2, &out),
			 0);
	raw_write(&r1, out.data, out.len);
	channel_buf_free(&out);
	WAIT_FOR(w, count_rx(a, 0, 5) == 2);
	fake_init(&f3, &k5, a->kp.pub, tu_wall_ms() + 1);
	raw_open(w, &r4, a->port, f3.msg1.data, f3.msg1.len);
	WAIT_FOR(w, r4.closed);
	assert_int_equal(r4.in_len, 0);
	assert_int_equal(stats(a).duplicate_sessions, 1);
	assert_int_equal(stats(a).sessions_replaced, 0);
	assert_int_equal(a->ups[5], 1);
	assert_int_equal(a->downs[5], 0);
	assert_false(r1.closing);

	/* Silent for live_ms: a message 1 the node never saw, replayed by
	 * whoever caught it, is answered, never confirmed, and leaves the
	 * session alone until it times out. */
	run_for(w, 1100);
	fake_init(&f5, &k5, a->kp.pub, tu_wall_ms() + 2);
	raw_open(w, &r6, a->port, f5.msg1.data, f5.msg1.len);
	WAIT_FOR(w, r6.in_len >= CHANNEL_FRAME_HDR + CHANNEL_MSG2_LEN);
	WAIT_FOR(w, r6.closed);
	assert_int_equal(stats(a).unconfirmed, 1);
	assert_int_equal(a->ups[5], 1);
	assert_int_equal(a->downs[5], 0);
	assert_int_equal(stats(a).sessions_replaced, 0);
	assert_false(r1.closing);

	/* A peer restarted behind a half-open connection: the newer
	 * connection, once confirmed, replaces the session. */
	fake_init(&f4, &k5, a->kp.pub, tu_wall_ms() + 3);
	raw_open(w, &r5, a->port, f4.msg1.data, f4.msg1.len);
	WAIT_FOR(w, r5.in_len >= CHANNEL_FRAME_HDR + CHANNEL_MSG2_LEN);
	assert_int_equal(a->ups[5], 1);
	assert_int_equal(channel_feed(&f4.ch, r5.in, r5.in_len, &out), 0);
	raw_write(&r5, out.data, out.len); /* the confirmation */
	channel_buf_free(&out);
	WAIT_FOR(w, a->ups[5] == 2 && r1.closed);
	assert_int_equal(a->downs[5], 1);
	assert_int_equal(stats(a).sessions_replaced, 1);
	assert_int_equal(stats(a).duplicate_sessions, 1);
	assert_false(r5.closing);
	raw_close(&r5);
	WAIT_FOR(w, a->downs[5] == 2);

	fake_free(&f1);
	fake_free(&f2);
	fake_free(&f3);
	fake_free(&f4);
	fake_free(&f5);
	noise_keypair_destroy(&k5);
	world_free(w);
}

/* A flood of idle connections, from one address and then from many, takes
 * no more than its share of the handshake slots: the peer's host still
 * gets in, with a cookie since the node is under load; a message 1 that
 * ignores the cookie is refused. */
static void test_flood_and_cookies(void **state)
{
	struct world *w = world_new("flood_and_cookies");
	struct tnode *a = node_init(w, 1), *b = node_init(w, 2);
	struct raw flood[30], r;
	struct noise_keypair k2;
	struct fake f;
	uint8_t twice[2 * (CHANNEL_FRAME_HDR + CHANNEL_MSG1_LEN)];
	char from[32];
	int n = 0;

	(void)state;
	a->pc.max_pending = 8;
	a->pc.max_pending_per_addr = 2;
	a->pc.handshake_timeout_ms = 8000;
	/* Only b dials: a has it at an address nothing listens on. */
	know(a, 2, b->kp.pub, free_port(w));
	know(b, 1, a->kp.pub, a->port);
	node_start(a);
	for (int i = 0; i < 20; i++)
		raw_open_from(w, &flood[n++], "127.0.0.2", a->port, NULL, 0);
	WAIT_FOR(w, stats(a).refused_addr_pending == 18);
	for (int i = 0; i < 10; i++) {
		snprintf(from, sizeof(from), "127.0.0.%d", 3 + i);
		raw_open_from(w, &flood[n++], from, a->port, NULL, 0);
	}
	/* 8 slots, 2 kept for the peer's host: 6 for everyone else. */
	WAIT_FOR(w, stats(a).refused_too_many_pending == 6);
	assert_int_equal(stats(a).refused_addr_pending, 18);

	node_start(b);
	WAIT_FOR(w, is_up(a, 2) && is_up(b, 1));
	assert_true(stats(a).cookies_sent >= 1);
	assert_int_equal(stats(a).refused_under_load, 0);
	ping(w, a, b);

	/* Under load, message 1 again without the cookie: refused. */
	node_stop(b);
	WAIT_FOR(w, b->stopped && !is_up(a, 2));
	k2 = b->kp;
	fake_init(&f, &k2, a->kp.pub, tu_wall_ms() + 5);
	memcpy(twice, f.msg1.data, f.msg1.len);
	memcpy(twice + f.msg1.len, f.msg1.data, f.msg1.len);
	raw_open(w, &r, a->port, twice, sizeof(twice));
	WAIT_FOR(w, r.closed);
	assert_int_equal(r.in_len, CHANNEL_FRAME_HDR + CHANNEL_COOKIE_REPLY_LEN);
	assert_int_equal(stats(a).refused_under_load, 1);
	fake_free(&f);
	for (int i = 0; i < n; i++)
		raw_close(&flood[i]);
	world_free(w);
}

/* A listener the test answers by hand, as peer 5 would: it takes one
 * connection into a raw. */
struct raw_listener {
	uv_tcp_t tcp;
	struct raw *into;
	int accepted;
};

static void on_raw_listener_conn(uv_stream_t *s, int status)
{
	struct raw_listener *l = s->data;
	struct raw *r = l->into;

	assert_int_equal(status, 0);
	assert_false(l->accepted);
	memset(r, 0, sizeof(*r));
	assert_int_equal(uv_tcp_init(s->loop, &r->tcp), 0);
	r->tcp.data = r;
	assert_int_equal(uv_accept(s, (uv_stream_t *)&r->tcp), 0);
	r->connected = 1;
	l->accepted = 1;
	uv_read_start((uv_stream_t *)&r->tcp, on_raw_alloc, on_raw_read);
}

static void raw_listen(struct world *w, struct raw_listener *l, int port,
		       struct raw *into)
{
	struct sockaddr_in sa;

	memset(l, 0, sizeof(*l));
	l->into = into;
	assert_int_equal(uv_tcp_init(&w->loop, &l->tcp), 0);
	l->tcp.data = l;
	assert_int_equal(uv_ip4_addr("127.0.0.1", port, &sa), 0);
	assert_int_equal(uv_tcp_bind(&l->tcp, (const struct sockaddr *)&sa, 0),
			 0);
	assert_int_equal(
	    uv_listen((uv_stream_t *)&l->tcp, 4, on_raw_listener_conn), 0);
}

static int accept_any(void *ctx, const uint8_t key[32], uint64_t ts)
{
	(void)ctx;
	(void)key;
	(void)ts;
	return 0;
}

/* Peer 5 (played by the test) takes node 1's dial, and its own dial
 * reaches node 1 just after: both ends dialled at once. Node 1 refuses the
 * late one quietly as crossed, not as a duplicate, and keeps its session.
 * Once a handshake's time has passed, the same connection while the
 * session is live is a second process with peer 5's key: a duplicate. */
static void test_crossed_dial(void **state)
{
	struct world *w = world_new("crossed_dial");
	struct tnode *a = node_init(w, 1);
	struct noise_keypair k5 = {0};
	struct raw_listener l;
	struct channel resp;
	struct channel_config cc;
	struct channel_buf out = {0};
	struct fake f1, f2;
	struct raw in, r1, r2;
	int port = free_port(w);

	(void)state;
	assert_int_equal(noise_keypair_generate(&k5), 0);
	know(a, 5, k5.pub, port);
	a->pc.handshake_timeout_ms = 300;
	raw_listen(w, &l, port, &in);
	node_start(a);

	/* Node 1 dials 5; the test answers message 2. */
	WAIT_FOR(w, l.accepted &&
			in.in_len >= CHANNEL_FRAME_HDR + CHANNEL_MSG1_LEN);
	memset(&cc, 0, sizeof(cc));
	cc.role = NOISE_RESPONDER;
	cc.cluster = CLUSTER;
	cc.local = &k5;
	cc.cb.verify = accept_any;
	cc.cb.message = on_fake_message;
	assert_int_equal(channel_init(&resp, &cc, tu_wall_ms()), 0);
	assert_int_equal(channel_feed(&resp, in.in,
				      CHANNEL_FRAME_HDR + CHANNEL_MSG1_LEN,
				      &out),
			 0);
	assert_true(channel_is_open(&resp));
	raw_write(&in, out.data, out.len);
	channel_buf_free(&out);
	WAIT_FOR(w, is_up(a, 5));

	/* 5's own dial, sent before it saw node 1's. */
	fake_init(&f1, &k5, a->kp.pub, tu_wall_ms());
	raw_open(w, &r1, a->port, f1.msg1.data, f1.msg1.len);
	WAIT_FOR(w, r1.closed);
	assert_int_equal(r1.in_len, 0);
	assert_int_equal(stats(a).crossed_dials, 1);
	assert_int_equal(stats(a).duplicate_sessions, 0);
	assert_int_equal(a->ups[5], 1);
	assert_int_equal(a->downs[5], 0);

	/* Later, with the session still live: a duplicate. */
	run_for(w, 400);
	fake_init(&f2, &k5, a->kp.pub, tu_wall_ms() + 1);
	raw_open(w, &r2, a->port, f2.msg1.data, f2.msg1.len);
	WAIT_FOR(w, r2.closed);
	assert_int_equal(r2.in_len, 0);
	assert_int_equal(stats(a).crossed_dials, 1);
	assert_int_equal(stats(a).duplicate_sessions, 1);
	assert_int_equal(a->ups[5], 1);
	assert_false(in.closing);

	uv_close((uv_handle_t *)&l.tcp, NULL); /* no second accept */
	raw_close(&in);
	WAIT_FOR(w, a->downs[5] == 1);
	channel_destroy(&resp);
	fake_free(&f1);
	fake_free(&f2);
	noise_keypair_destroy(&k5);
	world_free(w);
}

/* Stopping one net is a down at the other; a new start brings it back. */
static void test_stop_restart(void **state)
{
	struct world *w = world_new("stop_restart");
	struct tnode *a = node_init(w, 1), *b = node_init(w, 2);
	int downs;

	(void)state;
	link_nodes(a, b);
	node_start(a);
	node_start(b);
	wait_up(w, a, b);
	ping(w, a, b);

	downs = b->downs[1];
	node_stop(b);
	WAIT_FOR(w, b->stopped && a->downs[2] == a->ups[2]);
	assert_int_equal(b->downs[1], downs); /* no callback after stop */
	run_for(w, 100);
	assert_false(is_up(a, 2));
	assert_int_equal(peer_net_send(a->net, 2, (const uint8_t *)"x", 1),
			 MSCE_ECLOSED);

	node_forget(b);
	node_start(b);
	wait_up(w, a, b);
	ping(w, a, b);
	world_free(w);
}

/* peer_net_close: down comes from the loop, not from inside the call, and
 * the peer is dialled again. */
static void test_close_redial(void **state)
{
	struct world *w = world_new("close_redial");
	struct tnode *a = node_init(w, 1), *b = node_init(w, 2);

	(void)state;
	link_nodes(a, b);
	node_start(a);
	node_start(b);
	wait_up(w, a, b);
	peer_net_close(a->net, 2, "test");
	assert_true(is_up(a, 2));
	assert_int_equal(peer_net_send(a->net, 2, (const uint8_t *)"x", 1),
			 MSCE_ECLOSED);
	WAIT_FOR(w, !is_up(a, 2) && !is_up(b, 1));
	wait_up(w, a, b);
	ping(w, a, b);
	world_free(w);
}

/* A message over the receiver's limit closes the link and is counted. */
static void test_oversized(void **state)
{
	struct world *w = world_new("oversized");
	struct tnode *a = node_init(w, 1), *b = node_init(w, 2);
	uint8_t *big;
	int ups;

	(void)state;
	a->pc.max_message = 8 * MIB; /* b keeps 4 MiB */
	link_nodes(a, b);
	node_start(a);
	node_start(b);
	wait_up(w, a, b);
	ups = b->ups[1];
	big = random_bytes(w, 5 * MIB);
	assert_int_equal(peer_net_send(a->net, 2, big, 5 * MIB), 0);
	WAIT_FOR(w, stats(b).oversized_frames == 1);
	WAIT_FOR(w, b->ups[1] > ups);
	wait_up(w, a, b);
	assert_int_equal(count_rx(b, 0, 1), 0);
	ping(w, a, b);
	free(big);
	world_free(w);
}

/* A link with more than max_queued_bytes unsent is cut, then redialled. */
static void test_slow_reader(void **state)
{
	struct world *w = world_new("slow_reader");
	struct tnode *a = node_init(w, 1), *b = node_init(w, 2);
	uint8_t *big;
	int closed = 0, ups;

	(void)state;
	a->pc.max_queued_bytes = 256 * KIB;
	link_nodes(a, b);
	node_start(a);
	node_start(b);
	wait_up(w, a, b);
	ups = a->ups[2];
	big = random_bytes(w, 3 * MIB);
	/* No loop run in between: the socket buffers fill up. */
	for (int i = 0; i < 8 && !closed; i++)
		closed = peer_net_send(a->net, 2, big, 3 * MIB) == MSCE_ECLOSED;
	assert_true(closed);
	assert_int_equal(stats(a).too_slow, 1);
	WAIT_FOR(w, a->ups[2] > ups);
	wait_up(w, a, b);
	ping(w, a, b);
	free(big);
	world_free(w);
}

/* Keys rotate on the timer and messages keep flowing across rekeys. */
static void test_rekey(void **state)
{
	struct world *w = world_new("rekey");
	struct tnode *a = node_init(w, 1), *b = node_init(w, 2);
	int ups;

	(void)state;
	a->pc.rekey_ms = b->pc.rekey_ms = 40;
	a->pc.rekey_check_ms = b->pc.rekey_check_ms = 15;
	link_nodes(a, b);
	node_start(a);
	node_start(b);
	wait_up(w, a, b);
	ups = a->ups[2];
	for (int i = 0; i < 5; i++) {
		run_for(w, 60);
		ping(w, a, b);
	}
	assert_true(stats(a).rekeys >= 3);
	assert_true(stats(b).rekeys >= 3);
	assert_int_equal(a->ups[2], ups);
	assert_int_equal(stats(a).decrypt_failures, 0);
	assert_int_equal(stats(b).decrypt_failures, 0);
	world_free(w);
}

/* A flood of bad connections logs at most ten WARN lines a second, then
 * how many it left out. */
static void test_warn_rate_limit(void **state)
{
	struct world *w = world_new("warn_rate_limit");
	struct tnode *a = node_init(w, 1);
	uint8_t junk[4] = {0xff, 0xff, 0, 0};
	struct raw r[30];
	char line[1024];
	unsigned long lines = 0, dropped = 0, n;
	FILE *tmp = tmpfile();
	int saved = dup(2);

	(void)state;
	assert_non_null(tmp);
	assert_true(saved >= 0);
	node_start(a);
	fflush(stderr);
	assert_true(dup2(fileno(tmp), 2) >= 0);
	for (int i = 0; i < 30; i++)
		raw_open(w, &r[i], a->port, junk, sizeof(junk));
	WAIT_FOR(w, stats(a).refused_bad_handshake == 30);
	run_for(w, 1600); /* the timer reports the dropped count */
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	rewind(tmp);
	while (fgets(line, sizeof(line), tmp)) {
		const char *p = strstr(line, "peer links: ");

		fputs(line, stderr);
		if (strstr(line, "closed: bad handshake"))
			lines++;
		else if (p && sscanf(p, "peer links: %lu more", &n) == 1)
			dropped += n;
	}
	fclose(tmp);
	printf("%lu lines, %lu dropped\n", lines, dropped);
	assert_true(lines >= 10 && lines <= 20);
	assert_int_equal(lines + dropped, 30);
	world_free(w);
}

/* The node may stop the net from inside a callback. */
static void test_stop_in_callback(void **state)
{
	struct world *w = world_new("stop_in_callback");
	struct tnode *a = node_init(w, 1), *b = node_init(w, 2);

	(void)state;
	a->stop_on_msg = 1;
	link_nodes(a, b);
	node_start(a);
	node_start(b);
	wait_up(w, a, b);
	assert_int_equal(peer_net_send(b->net, 1, (const uint8_t *)"stop", 4),
			 0);
	assert_int_equal(peer_net_send(b->net, 1, (const uint8_t *)"more", 4),
			 0);
	WAIT_FOR(w, a->stopped && !is_up(b, 1));
	assert_int_equal(count_text(a, 2, "more"), 0);
	world_free(w);
}

/* Start failures are synchronous and leave nothing behind. */
static void test_start_errors(void **state)
{
	struct world *w = world_new("start_errors");
	struct tnode *a = node_init(w, 1), *b = node_init(w, 2);
	struct peer_net_cb cb = {b, on_up, on_down, on_message, NULL, NULL};
	struct peer_net *n = NULL;
	struct err e;

	(void)state;
	node_start(a);
	/* Port in use. */
	snprintf(b->cfg.listen, sizeof(b->cfg.listen), "127.0.0.1:%d", a->port);
	assert_int_equal(peer_net_start(&b->pc, &cb, &n, &e), MSCE_EIO);
	assert_null(n);
	assert_non_null(strstr(e.msg, b->cfg.listen));
	/* A host name is not resolved. */
	snprintf(b->cfg.listen, sizeof(b->cfg.listen), "127.0.0.1:%d", b->port);
	know(b, 1, a->kp.pub, a->port);
	snprintf(b->peers[0].address, sizeof(b->peers[0].address),
		 "example.com:7401");
	assert_int_equal(peer_net_start(&b->pc, &cb, &n, &e), MSCE_ECONFIG);
	assert_non_null(strstr(e.msg, "example.com"));
	/* IPv6 literal and localhost parse. */
	snprintf(b->peers[0].address, sizeof(b->peers[0].address), "[::1]:%d",
		 a->port);
	snprintf(b->cfg.listen, sizeof(b->cfg.listen), "localhost:%d", b->port);
	node_start(b);
	run_for(w, 50);
	world_free(w);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_sessions_and_messages),
	    cmocka_unit_test(test_three_nodes_race),
	    cmocka_unit_test(test_unknown_key),
	    cmocka_unit_test(test_garbage),
	    cmocka_unit_test(test_handshake_timeout),
	    cmocka_unit_test(test_dial_handshake_timeout_reported),
	    cmocka_unit_test(test_max_pending),
	    cmocka_unit_test(test_replay_skew_duplicate),
	    cmocka_unit_test(test_flood_and_cookies),
	    cmocka_unit_test(test_crossed_dial),
	    cmocka_unit_test(test_stop_restart),
	    cmocka_unit_test(test_close_redial),
	    cmocka_unit_test(test_oversized),
	    cmocka_unit_test(test_slow_reader),
	    cmocka_unit_test(test_rekey),
	    cmocka_unit_test(test_warn_rate_limit),
	    cmocka_unit_test(test_stop_in_callback),
	    cmocka_unit_test(test_start_errors),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
