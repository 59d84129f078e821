/* SPDX-License-Identifier: Apache-2.0 */
/* The client server (server/uv_client.c) and libmsce's transports
 * (client/transport.c, compiled in here) over a real loop, a real unix
 * socket and loopback TCP.
 *
 * The server's loop runs on the test's thread, where every assertion is
 * made; each blocking client runs on a worker thread while the test runs the
 * loop until the worker says it is done (WAIT_FOR, bounded). The worker only
 * writes its job struct, which the test reads after joining it.
 *
 * Covered: TCP clients get the role and name of their [client] section and
 * their replies; pipelined requests are answered in order; the unix socket
 * is admin; unknown client keys, a wrong node key, replayed and stale
 * message 1, garbage after the handshake and oversized requests are refused
 * and counted; the client refuses oversized requests itself; pending
 * handshakes are bounded and time out; a reply for a client that has gone
 * away is dropped; stopping with requests in flight frees everything.
 * MSCE_TEST_VERBOSE=1 shows INFO logs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

/* libmsce's transport, with its internals (send_msg skips the size check
 * so that the server's own check can be tested); before cmocka.h, whose
 * macros it does not expect. */
#include "../../client/transport.c"

#include <cmocka.h>
#include <uv.h>

#include "channel.h"
#include "config.h"
#include "error.h"
#include "log.h"
#include "noise.h"
#include "testutil.h"
#include "uv_client.h"

#define CLUSTER "test-msce"
#define WAIT_MS 15000 /* bound of every wait; transports time out at 5 s */
#define RECV_MS 5000
#define MAXREPLY 8
#define MAXHELD 8

/* ---- the server side ---- */

struct world {
	uv_loop_t loop;
	uv_timer_t tick, later;
	char *dir;
	char hostport[64];
	struct config cfg;
	struct config_client clients[2];
	struct noise_keypair node_kp, rw_kp, ro_kp, stranger_kp;
	struct client_server *srv;
	int stopped;
	/* requests seen by the callback */
	int nreq;
	int last_role;
	char last_name[CONFIG_NAME_MAX];
	/* replies held for the "later" timer */
	struct client_conn *held[MAXHELD];
	char held_text[MAXHELD][128];
	int nheld;
};

static void on_tick(uv_timer_t *t)
{
	(void)t;
}

#define WAIT_FOR(w, cond)                                                      \
	do {                                                                   \
		uint64_t dl_ = uv_now(&(w)->loop) + WAIT_MS;                   \
		while (!(cond) && uv_now(&(w)->loop) < dl_)                    \
			uv_run(&(w)->loop, UV_RUN_ONCE);                       \
		if (!(cond))                                                   \
			dump(w);                                               \
		assert_true(cond);                                             \
	} while (0)

static struct client_server_stats stats(struct world *w)
{
	struct client_server_stats s;

	memset(&s, 0, sizeof(s));
	if (w->srv)
		client_server_stats(w->srv, &s);
	return s;
}

static void dump(struct world *w)
{
	struct client_server_stats s = stats(w);

	printf("sessions %llu unknown %llu replay %llu skew %llu badhs %llu "
	       "pending %llu timeouts %llu decrypt %llu frames %llu "
	       "bigreq %llu bigrep %llu; requests %d\n",
	       (unsigned long long)s.tcp_sessions,
	       (unsigned long long)s.refused_unknown_key,
	       (unsigned long long)s.refused_replay,
	       (unsigned long long)s.refused_clock_skew,
	       (unsigned long long)s.refused_bad_handshake,
	       (unsigned long long)s.refused_too_many_pending,
	       (unsigned long long)s.handshake_timeouts,
	       (unsigned long long)s.decrypt_failures,
	       (unsigned long long)s.bad_frames,
	       (unsigned long long)s.oversized_requests,
	       (unsigned long long)s.oversized_replies, w->nreq);
}

/* "name/role:msg" */
static void format_reply(struct client_conn *c, const uint8_t *msg, size_t len,
			 char *out, size_t cap)
{
	snprintf(out, cap, "%s/%s:%.*s", client_conn_name(c),
		 config_role_name(client_conn_role(c)),
		 (int)(len > 40 ? 40 : len), (const char *)msg);
}

static void on_later(uv_timer_t *t)
{
	struct world *w = t->data;

	for (int i = 0; i < w->nheld; i++)
		client_conn_reply(w->held[i], (const uint8_t *)w->held_text[i],
				  strlen(w->held_text[i]));
	w->nheld = 0;
}

/* Echoes "name/role:msg"; a request starting with "later" is answered
 * from a timer, after the callback has returned. */
static void on_request(void *data, struct client_conn *c, const uint8_t *msg,
		       size_t len)
{
	struct world *w = data;
	char text[128];

	w->nreq++;
	w->last_role = client_conn_role(c);
	snprintf(w->last_name, sizeof(w->last_name), "%s", client_conn_name(c));
	client_conn_hold(c);
	format_reply(c, msg, len, text, sizeof(text));
	if (len >= 5 && memcmp(msg, "later", 5) == 0 && w->nheld < MAXHELD) {
		w->held[w->nheld] = c;
		snprintf(w->held_text[w->nheld], sizeof(w->held_text[0]), "%s",
			 text);
		w->nheld++;
		uv_timer_start(&w->later, on_later, 50, 0);
		return;
	}
	client_conn_reply(c, (const uint8_t *)text, strlen(text));
}

static void on_stopped(void *arg)
{
	struct world *w = arg;

	w->stopped = 1;
}

static int free_port(void)
{
	struct sockaddr_in sa;
	socklen_t len = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM, 0), port;

	assert_true(fd >= 0);
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
	port = ntohs(sa.sin_port);
	close(fd);
	return port;
}

static void add_client(struct world *w, const char *name,
		       const struct noise_keypair *kp, int role)
{
	struct config_client *c = &w->clients[w->cfg.nclients++];

	snprintf(c->name, sizeof(c->name), "%s", name);
	memcpy(c->public_key, kp->pub, 32);
	c->role = role;
}

static struct world *world_new(void)
{
	struct world *w = calloc(1, sizeof(*w));
	const char *v = getenv("MSCE_TEST_VERBOSE");
	struct err e;
	int rc;

	assert_non_null(w);
	log_set_level(v && *v == '1' ? LOG_DEBUG : LOG_WARN);
	assert_int_equal(uv_loop_init(&w->loop), 0);
	uv_timer_init(&w->loop, &w->tick);
	uv_timer_start(&w->tick, on_tick, 5, 5);
	uv_timer_init(&w->loop, &w->later);
	w->later.data = w;
	assert_non_null(w->dir = tu_tmpdir());
	assert_int_equal(noise_keypair_generate(&w->node_kp), 0);
	assert_int_equal(noise_keypair_generate(&w->rw_kp), 0);
	assert_int_equal(noise_keypair_generate(&w->ro_kp), 0);
	assert_int_equal(noise_keypair_generate(&w->stranger_kp), 0);

	snprintf(w->cfg.cluster, sizeof(w->cfg.cluster), "%s", CLUSTER);
	w->cfg.node_id = 1;
	snprintf(w->cfg.node_name, sizeof(w->cfg.node_name), "n1");
	snprintf(w->hostport, sizeof(w->hostport), "127.0.0.1:%d", free_port());
	snprintf(w->cfg.client_listen, sizeof(w->cfg.client_listen), "%s",
		 w->hostport);
	/* The directory does not exist yet: the server makes it 0750. */
	snprintf(w->cfg.socket_path, sizeof(w->cfg.socket_path),
		 "%s/run/node.sock", w->dir);
	w->cfg.max_clock_skew_ms = CONFIG_DEFAULT_CLOCK_SKEW_MS;
	/* Every test connection comes from 127.0.0.1. */
	w->cfg.max_pending_per_address = CONFIG_DEFAULT_MAX_PENDING;
	w->cfg.clients = w->clients;
	add_client(w, "alice", &w->rw_kp, CONFIG_ROLE_RW);
	add_client(w, "bob", &w->ro_kp, CONFIG_ROLE_RO);

	err_clear(&e);
	rc = client_server_start(&w->loop, &w->cfg, &w->node_kp, on_request, w,
				 &w->srv, &e);
	if (rc)
		printf("start: %s\n", e.msg);
	assert_int_equal(rc, 0);
	return w;
}

static void on_closed(uv_handle_t *h)
{
	(void)h;
}

/* Stops the server, checks that the loop has nothing left, frees w. */
static void world_free(struct world *w)
{
	if (w->srv) {
		client_server_stop(w->srv, on_stopped, w);
		WAIT_FOR(w, w->stopped);
		w->srv = NULL;
	}
	uv_close((uv_handle_t *)&w->tick, on_closed);
	uv_close((uv_handle_t *)&w->later, on_closed);
	uv_run(&w->loop, UV_RUN_DEFAULT);
	assert_int_equal(uv_loop_close(&w->loop), 0);
	noise_keypair_destroy(&w->node_kp);
	noise_keypair_destroy(&w->rw_kp);
	noise_keypair_destroy(&w->ro_kp);
	noise_keypair_destroy(&w->stranger_kp);
	tu_rmrf(w->dir);
	free(w);
}

/* ---- the client side: jobs on a worker thread ---- */

struct job {
	/* in */
	int tcp;
	const char *target; /* host:port or socket path */
	const uint8_t *sk, *server_pk;
	const uint8_t *msg;
	size_t len;
	int count;	 /* requests sent, pipelined, then as many replies */
	int raw;	 /* send_msg: no client-side size check */
	int close_early; /* close right after sending */
	void (*fn)(struct job *); /* instead of the above */
	int port;
	const struct world *w;
	/* out */
	int rc_connect, rc_send, rc_recv;
	char err[256];
	char *reply[MAXREPLY];
	size_t reply_len[MAXREPLY];
	int nreply;
	int results[8];
	_Atomic int done;
};

static void job_default(struct job *j)
{
	struct transport *t = NULL;

	j->rc_connect =
	    j->tcp ? transport_tcp(j->target, j->sk, j->server_pk, CLUSTER, &t,
				   j->err, sizeof(j->err))
		   : transport_unix(j->target, &t, j->err, sizeof(j->err));
	if (j->rc_connect)
		return;
	for (int i = 0; i < j->count && !j->rc_send; i++)
		j->rc_send =
		    j->raw ? send_msg(t, j->msg, j->len, j->err, sizeof(j->err))
			   : transport_send(t, j->msg, j->len, j->err,
					    sizeof(j->err));
	if (j->close_early) {
		transport_close(t);
		return;
	}
	for (int i = 0; i < j->count && i < MAXREPLY; i++) {
		uint8_t *m;
		size_t n;

		j->rc_recv =
		    transport_recv(t, &m, &n, RECV_MS, j->err, sizeof(j->err));
		if (j->rc_recv)
			break;
		j->reply[j->nreply] = calloc(1, n + 1);
		memcpy(j->reply[j->nreply], m, n);
		j->reply_len[j->nreply++] = n;
		free(m);
	}
	transport_close(t);
}

static void *job_main(void *arg)
{
	struct job *j = arg;

	if (j->fn)
		j->fn(j);
	else
		job_default(j);
	atomic_store(&j->done, 1);
	return NULL;
}

static void run_job(struct world *w, struct job *j)
{
	pthread_t th;

	j->w = w;
	assert_int_equal(pthread_create(&th, NULL, job_main, j), 0);
	WAIT_FOR(w, atomic_load(&j->done));
	pthread_join(th, NULL);
}

static void job_free(struct job *j)
{
	for (int i = 0; i < j->nreply; i++)
		free(j->reply[i]);
	j->nreply = 0;
}

static struct job tcp_job(struct world *w, const struct noise_keypair *kp,
			  const char *msg)
{
	struct job j = {0};

	j.tcp = 1;
	j.target = w->hostport;
	j.sk = kp->priv;
	j.server_pk = w->node_kp.pub;
	j.msg = (const uint8_t *)msg;
	j.len = strlen(msg);
	j.count = 1;
	return j;
}

/* ---- tests ---- */

static void test_tcp_roles(void **state)
{
	struct world *w = world_new();
	struct job j;

	(void)state;
	j = tcp_job(w, &w->rw_kp, "hello");
	run_job(w, &j);
	if (j.rc_connect || j.rc_send || j.rc_recv)
		printf("rw: %s\n", j.err);
	assert_int_equal(j.rc_connect, 0);
	assert_int_equal(j.rc_recv, 0);
	assert_int_equal(j.nreply, 1);
	assert_string_equal(j.reply[0], "alice/rw:hello");
	assert_int_equal(w->last_role, CONFIG_ROLE_RW);
	assert_string_equal(w->last_name, "alice");
	job_free(&j);

	/* Pipelined: three requests, then three replies in order. */
	j = tcp_job(w, &w->ro_kp, "get");
	j.count = 3;
	run_job(w, &j);
	assert_int_equal(j.rc_connect, 0);
	assert_int_equal(j.rc_recv, 0);
	assert_int_equal(j.nreply, 3);
	for (int i = 0; i < 3; i++)
		assert_string_equal(j.reply[i], "bob/ro:get");
	assert_int_equal(w->last_role, CONFIG_ROLE_RO);
	job_free(&j);

	/* A reply from a timer, after the request callback returned. */
	j = tcp_job(w, &w->rw_kp, "later");
	run_job(w, &j);
	assert_int_equal(j.rc_recv, 0);
	assert_int_equal(j.nreply, 1);
	assert_string_equal(j.reply[0], "alice/rw:later");
	job_free(&j);

	assert_int_equal(w->nreq, 5);
	assert_int_equal(stats(w).tcp_sessions, 3);
	assert_int_equal(client_server_errors(w->srv), 0);
	world_free(w);
}

static void test_unix_roundtrip(void **state)
{
	struct world *w = world_new();
	struct job j = {0};
	struct stat st;

	(void)state;
	assert_int_equal(stat(w->cfg.socket_path, &st), 0);
	assert_true(S_ISSOCK(st.st_mode));
	assert_int_equal(st.st_mode & 0777, 0660);
	j.target = w->cfg.socket_path;
	j.msg = (const uint8_t *)"status";
	j.len = 6;
	j.count = 2;
	run_job(w, &j);
	assert_int_equal(j.rc_connect, 0);
	assert_int_equal(j.rc_recv, 0);
	assert_int_equal(j.nreply, 2);
	assert_string_equal(j.reply[0], "local/admin:status");
	assert_int_equal(w->last_role, CONFIG_ROLE_ADMIN);
	assert_string_equal(w->last_name, "local");
	job_free(&j);

	/* Nothing listening: refused at once. */
	j = (struct job){0};
	j.target = "/nonexistent/msce.sock";
	j.count = 1;
	run_job(w, &j);
	assert_int_equal(j.rc_connect, MSCE_EUNAVAIL);
	world_free(w);
	/* The socket file is removed on stop. */
}

static void test_unknown_and_wrong_keys(void **state)
{
	struct world *w = world_new();
	struct job j;

	(void)state;
	/* A key of no [client] section. */
	j = tcp_job(w, &w->stranger_kp, "hello");
	run_job(w, &j);
	assert_int_equal(j.rc_connect, MSCE_EAUTH);
	printf("unknown key: %s\n", j.err);
	WAIT_FOR(w, stats(w).refused_unknown_key == 1);

	/* The client pins the wrong node key: message 1's mac1 is not made
	 * for this node (refused before any Diffie-Hellman). */
	j = tcp_job(w, &w->rw_kp, "hello");
	j.server_pk = w->stranger_kp.pub;
	run_job(w, &j);
	assert_int_equal(j.rc_connect, MSCE_EAUTH);
	WAIT_FOR(w, stats(w).refused_bad_mac == 1);
	assert_int_equal(stats(w).refused_bad_handshake, 0);

	/* Nothing listening on that port: unavailable, not a hang. */
	j = tcp_job(w, &w->rw_kp, "hello");
	j.target = "127.0.0.1:1";
	run_job(w, &j);
	assert_int_equal(j.rc_connect, MSCE_EUNAVAIL);

	/* Bad arguments fail before any connection. */
	j = tcp_job(w, &w->rw_kp, "hello");
	j.target = "no-port";
	run_job(w, &j);
	assert_int_equal(j.rc_connect, MSCE_EINVAL);

	assert_int_equal(w->nreq, 0);
	assert_int_equal(stats(w).tcp_sessions, 0);
	/* The right keys still work. */
	j = tcp_job(w, &w->rw_kp, "again");
	run_job(w, &j);
	assert_int_equal(j.rc_recv, 0);
	assert_int_equal(j.nreply, 1);
	job_free(&j);
	world_free(w);
}

/* A raw blocking socket to the listener, with a receive timeout. */
static int raw_connect(const char *hostport)
{
	struct sockaddr_in sa = {.sin_family = AF_INET};
	struct timeval tv = {.tv_sec = RECV_MS / 1000};
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	sa.sin_port = htons((uint16_t)atoi(strchr(hostport, ':') + 1));
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa))) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	return fd;
}

/* Sends msg1 on a new connection; 1 if message 2 comes back (50 bytes),
 * 0 if the node closes, -1 on a local error. */
static int try_msg1(const char *hostport, const struct channel_buf *msg1)
{
	uint8_t buf[64];
	size_t have = 0;
	int fd = raw_connect(hostport), ok = -1;

	if (fd < 0 || msg1->len == 0) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	if (send_all(fd, msg1->data, msg1->len) == 0) {
		for (;;) {
			ssize_t n = recv(fd, buf + have, sizeof(buf) - have, 0);

			if (n <= 0) {
				ok = n == 0 ? 0 : -1;
				break;
			}
			have += (size_t)n;
			if (have >= CHANNEL_FRAME_HDR + CHANNEL_MSG2_LEN) {
				ok = 1;
				break;
			}
		}
	}
	close(fd);
	return ok;
}

static int drop_message(void *ctx, const uint8_t *msg, size_t len)
{
	(void)ctx;
	(void)msg;
	(void)len;
	return 0;
}

/* Message 1 as the client with key kp would send it at time ts. */
static void make_msg1(const struct world *w, const struct noise_keypair *kp,
		      uint64_t ts, struct channel *ch, struct channel_buf *out)
{
	struct channel_config cc = {0};

	cc.role = NOISE_INITIATOR;
	cc.cluster = CLUSTER;
	cc.local = kp;
	cc.remote_key = w->node_kp.pub;
	cc.cb.message = drop_message;
	memset(out, 0, sizeof(*out));
	if (channel_init(ch, &cc, ts) || channel_start(ch, out))
		out->len = 0;
}

static void job_replay(struct job *j)
{
	const struct world *w = j->w;
	struct channel ch = {0}, ch2 = {0};
	struct channel_buf m1, m2;

	make_msg1(w, &w->rw_kp, next_timestamp(), &ch, &m1);
	j->results[0] = try_msg1(w->hostport, &m1); /* accepted */
	j->results[1] = try_msg1(w->hostport, &m1); /* the same again */
	channel_destroy(&ch);
	channel_buf_free(&m1);
	/* Two minutes old: outside the clock skew. */
	make_msg1(w, &w->ro_kp, clock_ms(CLOCK_REALTIME) - 120000, &ch2, &m2);
	j->results[2] = try_msg1(w->hostport, &m2);
	channel_destroy(&ch2);
	channel_buf_free(&m2);
	/* Message 1's size of garbage. */
	memset(&m2, 0, sizeof(m2));
	m2.data = calloc(1, CHANNEL_FRAME_HDR + CHANNEL_MSG1_LEN);
	m2.len = CHANNEL_FRAME_HDR + CHANNEL_MSG1_LEN;
	m2.data[1] = CHANNEL_MSG1_LEN;
	j->results[3] = try_msg1(w->hostport, &m2);
	/* A frame of the wrong size for message 1. */
	m2.data[1] = CHANNEL_MSG1_LEN - 1;
	j->results[4] = try_msg1(w->hostport, &m2);
	channel_buf_free(&m2);
}

/* Two connections of one key opened at once: the later stamp's message 1
 * may arrive first. Both are answered; each again is a replay. */
static void job_out_of_order(struct job *j)
{
	const struct world *w = j->w;
	struct channel a = {0}, b = {0};
	struct channel_buf ma, mb;
	uint64_t ts = next_timestamp();

	(void)next_timestamp(); /* ts + 1 is ours too */
	make_msg1(w, &w->rw_kp, ts, &a, &ma);
	make_msg1(w, &w->rw_kp, ts + 1, &b, &mb);
	j->results[0] = try_msg1(w->hostport, &mb);
	j->results[1] = try_msg1(w->hostport, &ma);
	j->results[2] = try_msg1(w->hostport, &ma);
	j->results[3] = try_msg1(w->hostport, &mb);
	channel_destroy(&a);
	channel_destroy(&b);
	channel_buf_free(&ma);
	channel_buf_free(&mb);
}

static void test_out_of_order_handshakes(void **state)
{
	struct world *w = world_new();
	struct job j = {0};

	(void)state;
	j.fn = job_out_of_order;
	run_job(w, &j);
	assert_int_equal(j.results[0], 1);
	assert_int_equal(j.results[1], 1);
	assert_int_equal(j.results[2], 0);
	assert_int_equal(j.results[3], 0);
	WAIT_FOR(w, stats(w).refused_replay == 2);
	world_free(w);
}

static void test_replay_and_garbage(void **state)
{
	struct world *w = world_new();
	struct job j = {0};
	struct client_server_stats s;

	(void)state;
	j.fn = job_replay;
	run_job(w, &j);
	assert_int_equal(j.results[0], 1);
	assert_int_equal(j.results[1], 0);
	assert_int_equal(j.results[2], 0);
	assert_int_equal(j.results[3], 0);
	assert_int_equal(j.results[4], 0);
	WAIT_FOR(w, stats(w).refused_bad_handshake == 1 &&
			stats(w).refused_bad_mac == 1);
	s = stats(w);
	/* The first message 1 was answered, but never confirmed: no
	 * session. */
	assert_int_equal(s.tcp_sessions, 0);
	assert_int_equal(s.refused_replay, 1);
	assert_int_equal(s.refused_clock_skew, 1);
	assert_int_equal(s.refused_unknown_key, 0);
	world_free(w);
}

static void job_garbage_after_handshake(struct job *j)
{
	struct transport *t = NULL;
	uint8_t frame[CHANNEL_FRAME_HDR + CHANNEL_MIN_TRANSPORT] = {0};
	uint8_t *m;
	size_t n;

	j->rc_connect = transport_tcp(j->target, j->sk, j->server_pk, CLUSTER,
				      &t, j->err, sizeof(j->err));
	if (j->rc_connect)
		return;
	/* A well-formed frame that does not decrypt. */
	frame[1] = CHANNEL_MIN_TRANSPORT;
	j->rc_send = send_all(t->fd, frame, sizeof(frame));
	j->rc_recv = transport_recv(t, &m, &n, RECV_MS, j->err, sizeof(j->err));
	if (!j->rc_recv)
		free(m);
	/* The failure is sticky. */
	j->results[0] = transport_send(t, (const uint8_t *)"x", 1, NULL, 0);
	transport_close(t);
}

static void job_oversized(struct job *j)
{
	struct transport *t = NULL;
	size_t big = CLIENT_MAX_MESSAGE + 1;
	uint8_t *buf = calloc(1, big), *m;
	size_t n;

	j->rc_connect =
	    j->tcp ? transport_tcp(j->target, j->sk, j->server_pk, CLUSTER, &t,
				   j->err, sizeof(j->err))
		   : transport_unix(j->target, &t, j->err, sizeof(j->err));
	if (j->rc_connect || buf == NULL) {
		free(buf);
		return;
	}
	/* The client refuses it itself and stays usable... */
	j->results[0] = transport_send(t, buf, big, NULL, 0);
	j->results[1] = transport_send(t, buf, 0, NULL, 0);
	j->results[2] = transport_send(t, (const uint8_t *)"ok", 2, NULL, 0);
	j->results[3] = transport_recv(t, &m, &n, RECV_MS, NULL, 0);
	if (!j->results[3])
		free(m);
	/* ...and the node refuses it too when it gets there anyway. */
	j->rc_send = send_msg(t, buf, big, j->err, sizeof(j->err));
	j->rc_recv = transport_recv(t, &m, &n, RECV_MS, j->err, sizeof(j->err));
	if (!j->rc_recv)
		free(m);
	transport_close(t);
	free(buf);
}

static void test_refusals_after_handshake(void **state)
{
	struct world *w = world_new();
	struct job j;

	(void)state;
	j = tcp_job(w, &w->rw_kp, "");
	j.fn = job_garbage_after_handshake;
	run_job(w, &j);
	assert_int_equal(j.rc_connect, 0);
	assert_int_equal(j.rc_recv, MSCE_ECLOSED);
	assert_int_equal(j.results[0], MSCE_ECLOSED);
	WAIT_FOR(w, stats(w).decrypt_failures == 1);

	j = tcp_job(w, &w->rw_kp, "");
	j.fn = job_oversized;
	run_job(w, &j);
	assert_int_equal(j.rc_connect, 0);
	assert_int_equal(j.results[0], MSCE_ETOOBIG);
	assert_int_equal(j.results[1], MSCE_EINVAL);
	assert_int_equal(j.results[2], 0);
	assert_int_equal(j.results[3], 0);
	assert_true(j.rc_send != 0 || j.rc_recv == MSCE_ECLOSED);
	WAIT_FOR(w, stats(w).oversized_requests == 1);

	j = (struct job){0};
	j.target = w->cfg.socket_path;
	j.fn = job_oversized;
	run_job(w, &j);
	assert_int_equal(j.rc_connect, 0);
	assert_int_equal(j.results[0], MSCE_ETOOBIG);
	assert_int_equal(j.results[2], 0);
	assert_int_equal(j.results[3], 0);
	assert_true(j.rc_send != 0 || j.rc_recv == MSCE_ECLOSED);
	WAIT_FOR(w, stats(w).oversized_requests == 2);

	assert_int_equal(w->nreq, 2); /* the two "ok" */
	world_free(w);
}

static void test_pending_and_timeout(void **state)
{
	struct world *w = world_new();
	enum { N = CONFIG_DEFAULT_MAX_PENDING };
	int fds[N + 1];
	uint64_t t0;
	struct job j;
	char b;

	(void)state;
	/* Connections that never say anything hold the pending slots... */
	for (int i = 0; i < N; i++) {
		fds[i] = raw_connect(w->hostport);
		assert_true(fds[i] >= 0);
	}
	t0 = uv_now(&w->loop);
	while (uv_now(&w->loop) - t0 < 300)
		uv_run(&w->loop, UV_RUN_ONCE);
	/* ...so one more is closed at once... */
	fds[N] = raw_connect(w->hostport);
	assert_true(fds[N] >= 0);
	WAIT_FOR(w, stats(w).refused_too_many_pending == 1);
	assert_int_equal(recv(fds[N], &b, 1, 0), 0);
	/* ...and all of them time out. */
	WAIT_FOR(w, stats(w).handshake_timeouts == N);
	assert_true(uv_now(&w->loop) - t0 >= CONFIG_DEFAULT_HANDSHAKE_TIMEOUT_MS);
	for (int i = 0; i <= N; i++)
		close(fds[i]);
	/* The slots are free again. */
	j = tcp_job(w, &w->ro_kp, "after");
	run_job(w, &j);
	assert_int_equal(j.rc_recv, 0);
	assert_int_equal(j.nreply, 1);
	job_free(&j);
	world_free(w);
}

static void test_gone_before_reply(void **state)
{
	struct world *w = world_new();
	struct job j;

	(void)state;
	/* Both kinds: the client sends and leaves before the reply. */
	j = tcp_job(w, &w->rw_kp, "later-tcp");
	j.close_early = 1;
	run_job(w, &j);
	assert_int_equal(j.rc_send, 0);
	j = (struct job){0};
	j.target = w->cfg.socket_path;
	j.msg = (const uint8_t *)"later-unix";
	j.len = 10;
	j.count = 1;
	j.close_early = 1;
	run_job(w, &j);
	assert_int_equal(j.rc_send, 0);
	WAIT_FOR(w, w->nreq == 2);
	/* The timer replies to closed connections: dropped, then freed. */
	WAIT_FOR(w, w->nheld == 0);

	/* A request in flight when the server stops: stop waits for it. */
	j = tcp_job(w, &w->rw_kp, "later-stop");
	j.close_early = 1;
	run_job(w, &j);
	WAIT_FOR(w, w->nreq == 3);
	client_server_stop(w->srv, on_stopped, w);
	WAIT_FOR(w, w->stopped);
	assert_int_equal(w->nheld, 0); /* the timer replied first */
	w->srv = NULL;
	world_free(w);
}

static void test_start_errors(void **state)
{
	struct world *w = world_new();
	struct client_server *s2 = NULL;
	struct config cfg;
	struct err e;

	(void)state;
	/* The same address again: refused at start. */
	cfg = w->cfg;
	cfg.socket_path[0] = '\0';
	err_clear(&e);
	assert_int_equal(client_server_start(&w->loop, &cfg, &w->node_kp,
					     on_request, w, &s2, &e),
			 MSCE_EIO);
	assert_null(s2);
	printf("%s\n", e.msg);
	/* A host name: not resolved. */
	snprintf(cfg.client_listen, sizeof(cfg.client_listen),
		 "example.com:7402");
	assert_int_equal(client_server_start(&w->loop, &cfg, &w->node_kp,
					     on_request, w, &s2, &e),
			 MSCE_ECONFIG);
	/* Nothing to listen on. */
	cfg.client_listen[0] = '\0';
	assert_int_equal(client_server_start(&w->loop, &cfg, &w->node_kp,
					     on_request, w, &s2, &e),
			 MSCE_EINVAL);
	world_free(w);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_tcp_roles),
	    cmocka_unit_test(test_unix_roundtrip),
	    cmocka_unit_test(test_unknown_and_wrong_keys),
	    cmocka_unit_test(test_replay_and_garbage),
	    cmocka_unit_test(test_out_of_order_handshakes),
	    cmocka_unit_test(test_refusals_after_handshake),
	    cmocka_unit_test(test_pending_and_timeout),
	    cmocka_unit_test(test_gone_before_reply),
	    cmocka_unit_test(test_start_errors),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
