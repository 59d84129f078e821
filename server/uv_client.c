/* SPDX-License-Identifier: Apache-2.0 */
/* Client server: unix socket and TCP + Noise; see uv_client.h.
 *
 * Happy path, unix: each connection reads a 4-byte length, checks it
 * against CLIENT_MAX_MESSAGE before allocating, reads the message and hands
 * it to the callback. Replies get the same framing.
 *
 * Happy path, TCP: each accepted connection is admitted by its source
 * address (admission.h) and gets a Noise channel as the responder.
 * Handshake frames are fed one at a time; the channel checks mac1 before
 * any Diffie-Hellman, the admit callback asks for a cookie under load, and
 * the verify callback looks the initiator's key up in the replay table
 * (one entry per [client] section, same order as cfg->clients), which
 * refuses unknown keys before the channel allocates anything, replayed or
 * stale timestamps, and a key at its connection cap. Message 2 is written;
 * once the client's confirmation comes (within the handshake timeout) the
 * connection takes the role and name of its client entry, and every
 * application message the channel reassembles is one request for the
 * callback. Replies go through channel_send. A
 * timer rekeys open channels, sweeps slow handshakes and idle connections.
 * Unfinished requests of all connections share one budget (channel.h
 * struct channel_budget; the unix framing draws on it too).
 *
 * Lifetime: a connection is freed only when its handle is closed *and* no
 * request of it is in flight, so a reply that completes after the client
 * went away finds a live struct and is dropped. A held reply's write keeps
 * its hold until the write completes, which with CLIENT_MAX_INFLIGHT,
 * CLIENT_MAX_QUEUED and CLIENT_MAX_QUEUED_PER_KEY is the back-pressure on
 * a client that does not read:
 * checked between requests, the rest of a read is stashed until it
 * drains.
 * Channel keys are wiped in the close callback.
 *
 * Failure modes: anything wrong before the handshake is done (bad mac1,
 * unknown key, replay, clock skew, too many connections for the key, bad
 * message 1, too many pending in all or from the address, under load
 * without a cookie, too slow) and any failed decryption, bad frame,
 * oversized request, request memory beyond the budget or idleness after it
 * closes the connection, is counted by reason in the stats and logged as
 * one WARN line, at most WARN_PER_SEC a second. The client reconnects. */
#include "uv_client.h"

#include <errno.h>
#include <libgen.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "admission.h"
#include "channel.h"
#include "log.h"
#include "uv_addr.h"
#include "ratelog.h"

/* A flood's connections are accepted and closed at once; a deep queue
 * keeps a client's SYN from being dropped meanwhile. */
#define LISTEN_BACKLOG 1024
#define KEEPALIVE_S 30
#define WARN_PER_SEC 10
#define SWEEP_MS 1000
#define READ_BUF_LEN (64u << 10)
#define ADDR_LEN 56 /* "[" INET6_ADDRSTRLEN "]:65535" */

enum conn_kind { CONN_UNIX, CONN_TCP };

enum conn_state {
	CONN_HANDSHAKE, /* TCP: Noise message 1 and 2 */
	CONN_OPEN,	/* requests flow */
	CONN_CLOSING,	/* uv_close called */
};

struct client_conn {
	union {
		uv_handle_t handle;
		uv_stream_t stream;
		uv_pipe_t pipe;
		uv_tcp_t tcp;
	} h; /* h.handle.data = this conn */
	struct client_server *srv;
	struct client_conn *prev, *next;
	enum conn_kind kind;
	enum conn_state state;
	int holds;   /* requests in flight */
	int closed;  /* the close callback ran */
	int reading; /* uv_read_start in effect */
	/* unix framing */
	uint8_t hdr[4];
	size_t hdr_len;
	uint8_t *msg;
	size_t msg_len, msg_have;
	size_t msg_budget; /* of srv->budget, for msg */
	/* TCP */
	const struct config_client *client; /* once verified */
	int counted;			    /* in its key_state's conns */
	struct admission_entry *slot; /* pending: its admission */
	int verify_rc;	   /* our verify callback's refusal, 0 if none */
	int admit_rc;	   /* our admit callback's refusal, 0 if none */
	uint64_t start_ms; /* loop time of the accept */
	uint64_t rx_ms;	   /* loop time of the last bytes read */
	int answered;	   /* message 2 sent, not yet confirmed */
	struct channel ch;
	char addr[ADDR_LEN];
	/* Replies made in this loop iteration, written together (one
	 * write for many pipelined answers) by the server's check handle. */
	uint8_t *pend;
	size_t pend_len, pend_cap;
	int pend_holds, pend_listed;
	struct client_conn *pend_next;
	/* Bytes read but not yet fed: requests that came in one read while
	 * the connection was at its limits, fed once it drains. */
	uint8_t *stash;
	size_t stash_len;
	int resume_listed;
	struct client_conn *resume_next;
};

/* What the connections of one [client] key hold together. */
struct key_state {
	size_t conns;  /* connections */
	size_t queued; /* reply bytes held (key_hold) */
	/* Its share of the server's budget (the parent), so that one key
	 * cannot hold all of it: half, or one whole request if more. */
	struct channel_budget budget;
};

struct client_server {
	uv_loop_t *loop;
	const struct config *cfg;
	const struct noise_keypair *key;
	client_request_cb cb;
	void *data;
	uv_pipe_t pipe_listener;
	uv_tcp_t tcp_listener;
	uv_timer_t timer;
	uv_check_t flush; /* writes the replies pending at each iteration */
	struct client_conn *resume_head; /* drained, with a stash to feed */
	struct client_conn *pend_head;
	int have_flush;
	int have_pipe, have_tcp; /* listener handles initialised */
	int bound_path;		 /* the socket file is ours to remove */
	char path[sizeof(((struct config *)0)->socket_path)];
	struct channel_replay_entry *replay; /* parallel to cfg->clients */
	struct key_state *keys;		     /* parallel too */
	size_t nclients;
	struct client_conn *conns;
	struct admission adm;	    /* TCP handshakes by address */
	struct channel_guard guard; /* our cookie secret */
	struct channel_budget budget; /* unfinished requests, all */
	/* The config's limits, zeros replaced by the defaults. */
	uint64_t hs_timeout_ms, idle_ms;
	size_t conns_per_key, max_partial;
	int handles; /* initialised and not yet closed */
	int stopping;
	int reads_held; /* client_server_hold_reads */
	struct client_server_stats stats;
	struct ratelog warn; /* refusals, rate-limited */
	void (*done)(void *);
	void *done_arg;
	uint8_t rbuf[READ_BUF_LEN]; /* loop thread only; consumed at once */
};

struct wreq {
	uv_write_t req;
	struct client_conn *c;
	int held; /* replies: the holds released when done */
	size_t counted; /* bytes of it in the key's key_queued */
	uint8_t *data;
};

static void update_reading(struct client_conn *c);
static void conn_resume(struct client_conn *c);

/* ---- small helpers ---- */

static uint64_t wall_ms(void)
{
	uv_timeval64_t tv;

	if (uv_gettimeofday(&tv))
		return 0;
	return (uint64_t)tv.tv_sec * 1000 + (uint64_t)tv.tv_usec / 1000;
}

/* A flood of bad connections must not flood the log (ratelog.h). */
#define srv_warn(s, ...) ratelog_warn(&(s)->warn, uv_now((s)->loop), __VA_ARGS__)



/* Who c is, for logs: "frontdesk-1 (10.0.0.5:40122)", "10.0.0.5:40122"
 * before the handshake, "local" on the unix socket. */
static const char *conn_label(const struct client_conn *c, char *buf,
			      size_t cap)
{
	if (c->kind == CONN_UNIX)
		return "local";
	if (c->client)
		snprintf(buf, cap, "%s (%s)", c->client->name, c->addr);
	else
		snprintf(buf, cap, "%s", c->addr);
	return buf;
}

/* ---- lifetime ---- */

static void maybe_finish(struct client_server *s)
{
	void (*done)(void *);
	void *arg;

	if (!s->stopping || s->handles > 0 || s->conns != NULL)
		return;
	done = s->done;
	arg = s->done_arg;
	if (s->bound_path)
		unlink(s->path);
	free(s->replay);
	free(s->keys);
	admission_free(&s->adm);
	channel_guard_destroy(&s->guard);
	free(s);
	if (done)
		done(arg);
}

static void on_srv_handle_closed(uv_handle_t *h)
{
	struct client_server *s = h->data;

	s->handles--;
	maybe_finish(s);
}

static void conn_free_if_done(struct client_conn *c)
{
	struct client_server *s = c->srv;

	if (!c->closed || c->holds > 0)
		return;
	if (c->prev)
		c->prev->next = c->next;
	else
		s->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	s->budget.used -= c->msg_budget;
	free(c->msg);
	free(c->pend);
	free(c->stash);
	free(c);
	maybe_finish(s);
}

static void on_conn_closed(uv_handle_t *h)
{
	struct client_conn *c = h->data;

	c->closed = 1;
	/* Wipes the keys now, even if replies are still owed; deferred to
	 * here because a close may come from inside channel_feed. */
	channel_destroy(&c->ch);
	/* So is an unfinished unix request: it never completes, and the
	 * budget of unfinished requests is everyone's (a reply still owed,
	 * such as a put waiting for min_sites, may keep c for long). */
	c->srv->budget.used -= c->msg_budget;
	c->msg_budget = 0;
	free(c->msg);
	c->msg = NULL;
	conn_free_if_done(c);
}

void client_conn_close(struct client_conn *c)
{
	struct client_server *s = c->srv;

	if (c->state == CONN_CLOSING)
		return;
	c->state = CONN_CLOSING;
	if (c->slot) {
		admission_leave(&s->adm, c->slot, uv_now(s->loop));
		c->slot = NULL;
	}
	if (c->counted) {
		c->counted = 0;
		s->keys[c->client - s->cfg->clients].conns--;
	}
	uv_close(&c->h.handle, on_conn_closed);
}

static struct client_conn *conn_new(struct client_server *s,
				    enum conn_kind kind)
{
	struct client_conn *c = calloc(1, sizeof(*c));

	if (c == NULL)
		return NULL;
	if (kind == CONN_UNIX ? uv_pipe_init(s->loop, &c->h.pipe, 0)
			      : uv_tcp_init(s->loop, &c->h.tcp)) {
		free(c);
		return NULL;
	}
	c->h.handle.data = c;
	c->srv = s;
	c->kind = kind;
	c->state = kind == CONN_UNIX ? CONN_OPEN : CONN_HANDSHAKE;
	c->start_ms = c->rx_ms = uv_now(s->loop);
	c->next = s->conns;
	if (s->conns)
		s->conns->prev = c;
	s->conns = c;
	return c;
}

/* ---- writing ---- */

/* The reply bytes all connections of c's client key hold in the node
 * (queued in this iteration or being written), bounded by
 * CLIENT_MAX_QUEUED_PER_KEY: without it one key that reads nothing holds
 * CLIENT_MAX_QUEUED on each of its connections. NULL on the unix socket
 * and before the handshake. */
static size_t *key_queued(const struct client_conn *c)
{
	const struct client_server *s = c->srv;

	return c->client ? &s->keys[c->client - s->cfg->clients].queued : NULL;
}

static void key_hold(struct client_conn *c, size_t n)
{
	size_t *q = key_queued(c);

	if (q)
		*q += n;
}

/* Releases n bytes; when that takes the key under its limit, its other
 * connections, which may have stopped at it, are looked at again. */
static void key_release(struct client_conn *c, size_t n)
{
	struct client_server *s = c->srv;
	size_t *q = key_queued(c);
	int was_full;

	if (q == NULL || n == 0)
		return;
	was_full = *q >= CLIENT_MAX_QUEUED_PER_KEY;
	*q -= n;
	if (!was_full || *q >= CLIENT_MAX_QUEUED_PER_KEY)
		return;
	for (struct client_conn *o = s->conns; o != NULL; o = o->next)
		if (o != c && o->client == c->client &&
		    o->state == CONN_OPEN)
			update_reading(o);
}

static void on_written(uv_write_t *req, int status)
{
	struct wreq *w = (struct wreq *)req;
	struct client_conn *c = w->c;

	if (status < 0 && c->state != CONN_CLOSING) {
		log_debug("client connection: write failed: %s",
			  uv_strerror(status));
		client_conn_close(c);
	}
	c->holds -= w->held;
	key_release(c, w->counted);
	free(w->data);
	free(w);
	update_reading(c);
	conn_free_if_done(c);
}

/* Writes len bytes of data (malloc'd; taken over, freed here or when the
 * write completes). held: the replies it carries, each releasing one hold
 * when done, or here on failure; counted: its bytes in key_queued, released
 * likewise. On failure c is closed. */
static void conn_write(struct client_conn *c, uint8_t *data, size_t len,
		       int held, size_t counted)
{
	struct wreq *w;
	uv_buf_t b;
	int rc;

	if (c->state == CONN_CLOSING || len == 0) {
		free(data);
		c->holds -= held;
		key_release(c, counted);
		conn_free_if_done(c);
		return;
	}
	if ((w = malloc(sizeof(*w))) == NULL) {
		free(data);
		c->holds -= held;
		key_release(c, counted);
		log_error("client connection: out of memory writing");
		/* A lost reply leaves the client waiting: drop it. */
		client_conn_close(c);
		return;
	}
	w->c = c;
	w->held = held;
	w->counted = counted;
	w->data = data;
	b = uv_buf_init((char *)data, (unsigned)len);
	if ((rc = uv_write(&w->req, &c->h.stream, &b, 1, on_written))) {
		free(data);
		free(w);
		c->holds -= held;
		key_release(c, counted);
		log_debug("client connection: write failed: %s",
			  uv_strerror(rc));
		client_conn_close(c);
		return;
	}
	update_reading(c);
}

/* Writes what the channel put into b (taking its buffer; b is zeroed). */
static void conn_write_buf(struct client_conn *c, struct channel_buf *b,
			   int held)
{
	uint8_t *data = b->data;
	size_t len = b->len;

	memset(b, 0, sizeof(*b));
	conn_write(c, data, len, held, 0);
}

void client_conn_hold(struct client_conn *c)
{
	c->holds++;
	update_reading(c);
}

size_t client_conn_max_reply(const struct client_conn *c)
{
	return c->kind == CONN_TCP ? CLIENT_MAX_MESSAGE : CLIENT_MAX_REPLY_UNIX;
}

int client_conn_remote(const struct client_conn *c)
{
	return c->kind == CONN_TCP;
}

static void on_flush(uv_check_t *h)
{
	struct client_server *s = h->data;
	struct client_conn *c = s->resume_head;

	uv_check_stop(&s->flush);
	/* Connections that drained go on with the requests they stashed;
	 * their replies join this iteration's writes. */
	s->resume_head = NULL;
	while (c != NULL) {
		struct client_conn *next = c->resume_next;

		c->resume_listed = 0;
		c->resume_next = NULL;
		conn_resume(c);
		c->holds--; /* the list's */
		if (c->state != CONN_CLOSING)
			update_reading(c);
		conn_free_if_done(c);
		c = next;
	}
	c = s->pend_head;
	s->pend_head = NULL;
	while (c != NULL) {
		struct client_conn *next = c->pend_next;
		uint8_t *data = c->pend;
		size_t len = c->pend_len;
		int held = c->pend_holds;

		c->pend = NULL;
		c->pend_len = c->pend_cap = 0;
		c->pend_holds = 0;
		c->pend_listed = 0;
		c->pend_next = NULL;
		conn_write(c, data, len, held, len);
		c = next;
	}
}

/* Queues one reply's bytes (copied) for this iteration's write. Returns 0,
 * or MSCE_ENOMEM. */
static int conn_queue(struct client_conn *c, const uint8_t *p, size_t n)
{
	struct client_server *s = c->srv;

	if (c->pend_len + n > c->pend_cap) {
		size_t cap = c->pend_cap ? c->pend_cap : 4096;
		uint8_t *d;
		while (cap < c->pend_len + n)
			cap *= 2;
		if ((d = realloc(c->pend, cap)) == NULL)
			return MSCE_ENOMEM;
		c->pend = d;
		c->pend_cap = cap;
	}
	memcpy(c->pend + c->pend_len, p, n);
	c->pend_len += n;
	key_hold(c, n);
	c->pend_holds++;
	if (!c->pend_listed) {
		c->pend_listed = 1;
		c->pend_next = s->pend_head;
		if (s->pend_head == NULL && s->have_flush)
			uv_check_start(&s->flush, on_flush);
		s->pend_head = c;
	}
	return 0;
}

void client_conn_reply(struct client_conn *c, const uint8_t *msg, size_t len)
{
	struct client_server *s = c->srv;
	struct channel_buf out = {0};
	char label[128];
	uint8_t *data;
	int rc;

	if (c->state != CONN_OPEN) {
		c->holds--;
		conn_free_if_done(c);
		return;
	}
	if (len > client_conn_max_reply(c)) {
		s->stats.oversized_replies++;
		srv_warn(s,
			 "client %s: closed: reply of %zu bytes over the "
			 "limit of %zu",
			 conn_label(c, label, sizeof(label)), len,
			 client_conn_max_reply(c));
		c->holds--;
		client_conn_close(c);
		return;
	}
	if (c->kind == CONN_UNIX) {
		if ((data = malloc(4 + len)) == NULL) {
			c->holds--;
			log_error("client connection: out of memory replying");
			client_conn_close(c);
			return;
		}
		data[0] = (uint8_t)(len >> 24);
		data[1] = (uint8_t)(len >> 16);
		data[2] = (uint8_t)(len >> 8);
		data[3] = (uint8_t)len;
		if (len)
			memcpy(data + 4, msg, len);
		if (s->have_flush && conn_queue(c, data, 4 + len) == 0) {
			free(data);
			return;
		}
		conn_write(c, data, 4 + len, 1, 0);
		return;
	}
	if ((rc = channel_send(&c->ch, len ? msg : NULL, len, &out))) {
		channel_buf_free(&out);
		c->holds--;
		log_info("client %s: closed: cannot send a reply: %s",
			 conn_label(c, label, sizeof(label)), err_str(rc));
		client_conn_close(c);
		return;
	}
	if (s->have_flush && conn_queue(c, out.data, out.len) == 0) {
		channel_buf_free(&out);
		return;
	}
	conn_write_buf(c, &out, 1);
}

int client_conn_role(const struct client_conn *c)
{
	if (c->kind == CONN_UNIX)
		return CONFIG_ROLE_ADMIN;
	return c->client ? c->client->role : 0;
}

const char *client_conn_name(const struct client_conn *c)
{
	if (c->kind == CONN_UNIX)
		return "local";
	return c->client ? c->client->name : "?";
}

/* ---- reading ---- */

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	struct client_conn *c = h->data;

	(void)suggested;
	buf->base = (char *)c->srv->rbuf;
	buf->len = READ_BUF_LEN;
}

static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf);

/* Whether client_server_hold_reads holds c: every open TCP connection
 * (a handshake goes on), and a unix socket connection owed a reply (an
 * operator's status still gets in; that socket is the admin's). */
static int reads_held(const struct client_conn *c)
{
	return c->srv->reads_held && c->state == CONN_OPEN &&
	       (c->kind == CONN_TCP || c->holds > 0);
}

/* At its limits: CLIENT_MAX_INFLIGHT replies owed, or CLIENT_MAX_QUEUED
 * bytes of replies not yet taken by the client, or reads held. Checked
 * between requests too, not only between reads: one read may hold a
 * thousand requests. */
static int conn_busy(const struct client_conn *c)
{
	const size_t *q = key_queued(c);

	return reads_held(c) ||
	       c->holds >= CLIENT_MAX_INFLIGHT ||
	       c->pend_len + uv_stream_get_write_queue_size(&c->h.stream) >=
		   CLIENT_MAX_QUEUED ||
	       (q && *q >= CLIENT_MAX_QUEUED_PER_KEY);
}

/* Keeps the n bytes not fed yet; reading stops until they are. 0, or -1
 * (out of memory: c is closed). */
static int conn_stash(struct client_conn *c, const uint8_t *p, size_t n)
{
	if ((c->stash = malloc(n)) == NULL) {
		log_error("client connection: out of memory holding a read");
		client_conn_close(c);
		return -1;
	}
	memcpy(c->stash, p, n);
	c->stash_len = n;
	update_reading(c);
	return 0;
}

static void update_reading(struct client_conn *c)
{
	struct client_server *s = c->srv;
	int busy = c->state == CONN_CLOSING || conn_busy(c);
	int want = !busy && c->stash_len == 0;

	if (!busy && c->stash_len && !c->resume_listed && s->have_flush) {
		/* Drained: its stash is fed from the check handle, not from
		 * inside a write callback or a reply. */
		c->resume_listed = 1;
		c->holds++;
		c->resume_next = s->resume_head;
		s->resume_head = c;
		uv_check_start(&s->flush, on_flush);
	}

	if (want && !c->reading) {
		if (uv_read_start(&c->h.stream, on_alloc, on_read)) {
			client_conn_close(c);
			return;
		}
	} else if (!want && c->reading && c->state != CONN_CLOSING) {
		uv_read_stop(&c->h.stream);
	}
	c->reading = want;
}

/* The unix framing: a 4-byte length, checked before allocating, and the
 * message. */
static void unix_feed(struct client_conn *c, const uint8_t *p, size_t left)
{
	struct client_server *s = c->srv;

	while (left > 0 && c->state == CONN_OPEN) {
		size_t n;

		if (c->hdr_len == 0 && conn_busy(c)) {
			conn_stash(c, p, left);
			return;
		}
		if (c->hdr_len < 4) {
			n = 4 - c->hdr_len < left ? 4 - c->hdr_len : left;
			memcpy(c->hdr + c->hdr_len, p, n);
			c->hdr_len += n;
			p += n;
			left -= n;
			if (c->hdr_len < 4)
				break;
			c->msg_len = (size_t)c->hdr[0] << 24 |
				     (size_t)c->hdr[1] << 16 |
				     (size_t)c->hdr[2] << 8 | c->hdr[3];
			if (c->msg_len == 0 ||
			    c->msg_len > CLIENT_MAX_MESSAGE) {
				if (c->msg_len)
					s->stats.oversized_requests++;
				else
					s->stats.bad_frames++;
				srv_warn(s,
					 "client local: closed: request of "
					 "%zu bytes (limit %u)",
					 c->msg_len, CLIENT_MAX_MESSAGE);
				client_conn_close(c);
				return;
			}
			if (c->msg_len > s->max_partial) {
				s->stats.oversized_requests++;
				srv_warn(s,
					 "client local: closed: request of "
					 "%zu bytes (client_max_partial_bytes "
					 "%zu)",
					 c->msg_len, s->max_partial);
				client_conn_close(c);
				return;
			}
			/* The whole message is held until it is complete:
			 * it draws on the budget of unfinished requests. */
			if (c->msg_len > s->budget.limit - s->budget.used) {
				s->budget.refusals++;
				s->stats.refused_partial_total++;
				srv_warn(s,
					 "client local: closed: %zu bytes of "
					 "unfinished requests held already "
					 "(client_max_partial_total %zu)",
					 s->budget.used, s->budget.limit);
				client_conn_close(c);
				return;
			}
			if ((c->msg = malloc(c->msg_len)) == NULL) {
				log_error("client local: out of memory");
				client_conn_close(c);
				return;
			}
			c->msg_budget = c->msg_len;
			s->budget.used += c->msg_len;
			c->msg_have = 0;
		}
		n = c->msg_len - c->msg_have < left ? c->msg_len - c->msg_have
						    : left;
		memcpy(c->msg + c->msg_have, p, n);
		c->msg_have += n;
		p += n;
		left -= n;
		if (c->msg_have == c->msg_len) {
			uint8_t *m = c->msg;

			c->msg = NULL;
			c->hdr_len = 0;
			s->budget.used -= c->msg_budget;
			c->msg_budget = 0;
			if (!s->stopping)
				s->cb(s->data, c, m, c->msg_len);
			free(m);
		}
	}
}

/* Closes c after channel_feed failed with rc, counting the reason (where
 * the channel failed, and what our callbacks said). */
static void refuse(struct client_conn *c, int rc)
{
	struct client_server *s = c->srv;
	struct client_server_stats *st = &s->stats;
	const char *why = err_str(rc);
	uint64_t *counter = NULL;
	char label[128];

	switch (channel_failure(&c->ch)) {
	case CHANNEL_FAIL_MAC:
		counter = &st->refused_bad_mac;
		why = "message 1 not made for this node (bad mac1: wrong "
		      "node key, cluster or version?)";
		break;
	case CHANNEL_FAIL_ADMIT:
		counter = &st->refused_under_load;
		why = c->admit_rc ? "under load: over its address's handshake "
				    "rate"
				  : "under load: message 1 again without the "
				    "cookie";
		break;
	case CHANNEL_FAIL_VERIFY:
		switch (rc) {
		case MSCE_EPERM:
			counter = &st->refused_unknown_key;
			why = "unknown client key";
			break;
		case MSCE_EAUTH:
			counter = &st->refused_replay;
			why = "message 1 replayed (its timestamp was "
			      "taken before)";
			break;
		case MSCE_ECLOCK:
			counter = &st->refused_clock_skew;
			why = "message 1 timestamp outside the clock skew";
			break;
		case MSCE_EBUSY:
			counter = &st->refused_key_connections;
			why = "the key has client_max_connections_per_key "
			      "connections open";
			break;
		}
		break;
	case CHANNEL_FAIL_FRAME:
	case CHANNEL_FAIL_HANDSHAKE:
		if (c->state == CONN_HANDSHAKE) {
			counter = &st->refused_bad_handshake;
			why = rc == MSCE_EAUTH
				  ? "bad handshake (does not decrypt: wrong "
				    "node key or cluster?)"
				  : "bad handshake (malformed)";
		} else {
			counter = &st->bad_frames;
			why = "bad frame";
		}
		break;
	case CHANNEL_FAIL_CONFIRM: /* as any first message would be */
	case CHANNEL_FAIL_TRANSPORT:
		counter = rc == MSCE_EAUTH ? &st->decrypt_failures
					   : &st->bad_frames;
		why = rc == MSCE_EAUTH ? "decryption failed" : "bad frame";
		break;
	case CHANNEL_FAIL_LIMIT:
		counter = &st->oversized_requests;
		why = "request over client_max_partial_bytes";
		break;
	case CHANNEL_FAIL_BUDGET:
		if (channel_budget_refused(&c->ch) == &s->budget) {
			counter = &st->refused_partial_total;
			why = "unfinished requests of all connections over "
			      "client_max_partial_total";
		} else {
			counter = &st->refused_partial_key;
			why = "unfinished requests of this key's connections "
			      "over its share of client_max_partial_total";
		}
		break;
	default:
		if (rc == MSCE_ECLOSED)
			why = "nonces exhausted";
		break;
	}
	if (counter) {
		(*counter)++;
		srv_warn(s, "client %s: closed: %s",
			 conn_label(c, label, sizeof(label)), why);
	} else {
		log_info("client %s: closed: %s",
			 conn_label(c, label, sizeof(label)), why);
	}
	client_conn_close(c);
}

/* The handshake is done and confirmed: c becomes its client's
 * connection. */
static void establish(struct client_conn *c)
{
	struct client_server *s = c->srv;
	char label[128];

	if (c->slot) {
		admission_leave(&s->adm, c->slot, uv_now(s->loop));
		c->slot = NULL;
	}
	c->state = CONN_OPEN;
	s->stats.tcp_sessions++;
	log_debug("client %s: connected, role %s",
		  conn_label(c, label, sizeof(label)),
		  config_role_name(c->client->role));
}

/* Feeds the bytes of an open connection a frame at a time, stashing the
 * rest when the connection reaches its limits. */
static void tcp_feed_open(struct client_conn *c, const uint8_t *p,
			  size_t len)
{
	while (len && c->state == CONN_OPEN) {
		size_t take = channel_frame_left(&c->ch);
		int rc;

		if (conn_busy(c)) {
			conn_stash(c, p, len);
			return;
		}
		if (take == 0 || take > len)
			take = len;
		rc = channel_feed(&c->ch, p, take, NULL);
		p += take;
		len -= take;
		/* The handler may have closed c, or the server been stopped,
		 * from a request callback: no fault of the client. */
		if (rc && c->state != CONN_CLOSING) {
			refuse(c, rc);
			return;
		}
	}
}

static void conn_resume(struct client_conn *c)
{
	uint8_t *p = c->stash;
	size_t n = c->stash_len;

	c->stash = NULL;
	c->stash_len = 0;
	if (c->state == CONN_OPEN && !c->srv->stopping) {
		if (c->kind == CONN_TCP)
			tcp_feed_open(c, p, n);
		else
			unix_feed(c, p, n);
	}
	free(p);
	if (c->state != CONN_CLOSING)
		update_reading(c);
}

/* Feeds received bytes. Handshake frames go in one at a time, so that a
 * failure is classified exactly and the connection is open before any
 * request. */
static void tcp_feed(struct client_conn *c, const uint8_t *p, size_t len)
{
	struct channel_buf out = {0};
	int rc;

	while (len && c->state == CONN_HANDSHAKE) {
		size_t take = channel_frame_left(&c->ch);

		if (take > len)
			take = len;
		rc = channel_feed(&c->ch, p, take, &out);
		p += take;
		len -= take;
		if (rc) {
			channel_buf_free(&out);
			refuse(c, rc);
			return;
		}
		if (out.len)
			conn_write_buf(c, &out, 0); /* message 2, a cookie */
		else
			channel_buf_free(&out);
		if (c->state == CONN_CLOSING)
			return;
		/* Only the confirmation proves the client holds the keys (a
		 * replayed message 1 gets message 2 too): until then the
		 * connection stays pending, under the handshake timeout. */
		if (channel_is_confirmed(&c->ch))
			establish(c);
		else if (channel_is_open(&c->ch))
			c->answered = 1;
	}
	tcp_feed_open(c, p, len);
}

static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
	struct client_conn *c = st->data;
	char label[128];

	if (nread == 0 || c->state == CONN_CLOSING)
		return;
	c->rx_ms = uv_now(c->srv->loop);
	if (nread < 0) {
		if (c->state == CONN_HANDSHAKE)
			log_debug("client %s: closed before authenticating: "
				  "%s",
				  c->addr, uv_strerror((int)nread));
		else
			log_debug("client %s: disconnected: %s",
				  conn_label(c, label, sizeof(label)),
				  uv_strerror((int)nread));
		client_conn_close(c);
		return;
	}
	if (c->kind == CONN_UNIX)
		unix_feed(c, (const uint8_t *)buf->base, (size_t)nread);
	else
		tcp_feed(c, (const uint8_t *)buf->base, (size_t)nread);
	if (c->state != CONN_CLOSING)
		update_reading(c);
}

/* ---- the channel's callbacks ---- */

/* Message 1 carries a good mac1. Under load it must also prove its source
 * address (mac2, from a cookie we gave), and the address gets a rate. */
static int on_channel_admit(void *ctx, int mac2_ok)
{
	struct client_conn *c = ctx;
	struct client_server *s = c->srv;

	if (!admission_under_load(&s->adm))
		return 0;
	if (!mac2_ok) {
		/* The channel answers one message 1 per connection with a
		 * cookie and refuses a second: count only what goes out. */
		if (!c->ch.cookie_sent)
			s->stats.cookies_sent++;
		return CHANNEL_COOKIE;
	}
	if (!c->slot || !admission_take(&s->adm, c->slot, uv_now(s->loop)))
		return c->admit_rc = MSCE_EBUSY;
	return 0;
}

static int on_channel_verify(void *ctx, const uint8_t key[NOISE_KEY_LEN],
			     uint64_t timestamp_ms)
{
	struct client_conn *c = ctx;
	struct client_server *s = c->srv;
	uint64_t skew = s->cfg->max_clock_skew_ms;
	size_t i, cap = s->conns_per_key;
	int rc;

	if (!skew)
		skew = CONFIG_DEFAULT_CLOCK_SKEW_MS;
	/* The table holds exactly the [client] keys, in config order: an
	 * unknown key is refused here, before the channel allocates anything
	 * for the session, and the index is the client entry
	 * (config_client_by_key would find the same one). A key at its
	 * connection cap is refused too: the replay check has taken the
	 * timestamp, so the client's next attempt uses a newer one. */
	rc = channel_replay_check(s->replay, s->nclients, key, timestamp_ms,
				  wall_ms(), skew, &i);
	if (!rc && s->keys[i].conns >= cap)
		rc = MSCE_EBUSY;
	c->verify_rc = rc;
	if (!rc) {
		c->client = &s->cfg->clients[i];
		c->counted = 1;
		s->keys[i].conns++;
		channel_set_budget(&c->ch, &s->keys[i].budget);
	}
	return rc;
}

static int on_channel_message(void *ctx, const uint8_t *msg, size_t len)
{
	struct client_conn *c = ctx;
	struct client_server *s = c->srv;
	char label[128];

	if (c->state != CONN_OPEN || s->stopping)
		return MSCE_ECLOSED;
	if (len == 0) {
		/* Like a zero length on the unix socket. */
		s->stats.bad_frames++;
		srv_warn(s, "client %s: closed: empty request",
			 conn_label(c, label, sizeof(label)));
		client_conn_close(c);
		return MSCE_ECLOSED;
	}
	s->cb(s->data, c, msg, len);
	return c->state == CONN_OPEN && !s->stopping ? 0 : MSCE_ECLOSED;
}

/* ---- accepting ---- */

static void on_unix_connection(uv_stream_t *l, int status)
{
	struct client_server *s = l->data;
	struct client_conn *c;

	if (status < 0) {
		srv_warn(s, "client socket: accept failed: %s",
			 uv_strerror(status));
		return;
	}
	if (s->stopping)
		return;
	if ((c = conn_new(s, CONN_UNIX)) == NULL) {
		log_error("client socket: out of memory accepting");
		return;
	}
	if (uv_accept(l, &c->h.stream)) {
		client_conn_close(c);
		return;
	}
	update_reading(c);
}

/* The IP bytes of sa a cookie is bound to; 0 if not IP. */
static size_t src_bytes(const struct sockaddr *sa, uint8_t out[16])
{
	if (sa->sa_family == AF_INET) {
		memcpy(out, &((const struct sockaddr_in *)sa)->sin_addr, 4);
		return 4;
	}
	if (sa->sa_family == AF_INET6) {
		memcpy(out, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
		return 16;
	}
	return 0;
}

static void on_tcp_connection(uv_stream_t *l, int status)
{
	struct client_server *s = l->data;
	struct channel_config cc;
	struct sockaddr_storage ss;
	struct admission_key key;
	enum admission_verdict v = ADMISSION_FULL;
	uint8_t src[16];
	size_t src_len = 0;
	int len = sizeof(ss), rc;
	struct client_conn *c;

	if (status < 0) {
		srv_warn(s, "client listener: accept failed: %s",
			 uv_strerror(status));
		return;
	}
	if (s->stopping)
		return;
	if ((c = conn_new(s, CONN_TCP)) == NULL) {
		srv_warn(s, "client listener: out of memory accepting");
		return;
	}
	snprintf(c->addr, sizeof(c->addr), "?");
	if ((rc = uv_accept(l, &c->h.stream))) {
		srv_warn(s, "client listener: accept failed: %s",
			 uv_strerror(rc));
		client_conn_close(c);
		return;
	}
	/* Admitted by address before a byte is read. */
	if (uv_tcp_getpeername(&c->h.tcp, (struct sockaddr *)&ss, &len) == 0 &&
	    admission_key_of((struct sockaddr *)&ss, &key) == 0) {
		addr_format((struct sockaddr *)&ss, c->addr, sizeof(c->addr));
		src_len = src_bytes((struct sockaddr *)&ss, src);
		v = admission_enter(&s->adm, &key, uv_now(s->loop), &c->slot);
	}
	if (v != ADMISSION_OK) {
		if (v == ADMISSION_ADDR_FULL)
			s->stats.refused_addr_pending++;
		else
			s->stats.refused_too_many_pending++;
		srv_warn(s, "client %s: refused: %s (%zu handshakes pending)",
			 c->addr,
			 v == ADMISSION_ADDR_FULL
			     ? "too many handshakes pending from its address"
			     : "no handshake slot free",
			 admission_pending(&s->adm));
		client_conn_close(c);
		return;
	}
	memset(&cc, 0, sizeof(cc));
	cc.role = NOISE_RESPONDER;
	cc.cluster = s->cfg->cluster;
	cc.local = s->key;
	cc.max_message = CLIENT_MAX_MESSAGE;
	cc.max_receive = s->max_partial;
	cc.budget = &s->budget;
	cc.guard = &s->guard;
	cc.src = src;
	cc.src_len = src_len;
	cc.cb.admit = on_channel_admit;
	cc.cb.verify = on_channel_verify;
	cc.cb.message = on_channel_message;
	cc.cb.ctx = c;
	if ((rc = channel_init(&c->ch, &cc, wall_ms()))) {
		log_error("client %s: cannot start the handshake: %s", c->addr,
			  err_str(rc));
		client_conn_close(c);
		return;
	}
	/* Errors only cost latency or slower detection of a dead client. */
	uv_tcp_nodelay(&c->h.tcp, 1);
	uv_tcp_keepalive(&c->h.tcp, 1, KEEPALIVE_S);
	update_reading(c);
}

/* ---- the timer: slow handshakes and rekeying ---- */

static void on_timer(uv_timer_t *t)
{
	struct client_server *s = t->data;
	uint64_t now = uv_now(s->loop), wall = wall_ms();
	struct client_conn *c;
	char label[128];

	ratelog_tick(&s->warn, uv_now(s->loop)); /* a flood's last count */
	channel_guard_tick(&s->guard, now);
	s->stats.partial_bytes = s->budget.used;
	/* client_conn_close only unlinks in the close callback: next stays
	 * valid. */
	for (c = s->conns; c != NULL; c = c->next) {
		struct channel_buf out = {0};

		if (c->kind != CONN_TCP)
			continue;
		if (c->state == CONN_HANDSHAKE) {
			if (now - c->start_ms < s->hs_timeout_ms)
				continue;
			s->stats.handshake_timeouts++;
			srv_warn(s,
				 c->answered
				     ? "client %s: closed: message 2 sent but "
				       "not confirmed in %llu ms (a replayed "
				       "message 1?)"
				     : "client %s: closed: handshake not done "
				       "in %llu ms",
				 c->addr, (unsigned long long)s->hs_timeout_ms);
			client_conn_close(c);
			continue;
		}
		if (c->state != CONN_OPEN)
			continue;
		/* Nothing read and nothing owed for client_idle_timeout:
		 * the connection only holds memory and a slot of its key. */
		if (c->holds == 0 && now - c->rx_ms >= s->idle_ms) {
			s->stats.idle_timeouts++;
			log_info("client %s: closed: idle for %llu ms",
				 conn_label(c, label, sizeof(label)),
				 (unsigned long long)(now - c->rx_ms));
			client_conn_close(c);
			continue;
		}
		switch (channel_rekey_due(&c->ch, wall)) {
		case CHANNEL_KEEP:
			break;
		case CHANNEL_REKEY:
			if (channel_rekey(&c->ch, wall, &out) == 0) {
				s->stats.rekeys++;
				conn_write_buf(c, &out, 0);
			} else {
				channel_buf_free(&out);
				log_info("client %s: closed: rekey failed",
					 conn_label(c, label, sizeof(label)));
				client_conn_close(c);
			}
			break;
		case CHANNEL_RENEW:
			log_info("client %s: closed: nonces nearly used up",
				 conn_label(c, label, sizeof(label)));
			client_conn_close(c);
			break;
		}
	}
}

/* ---- start and stop ---- */


/* Releases what start made after a failure once handles exist; the
 * server frees itself when the loop has closed them. */
static void start_failed(struct client_server *s)
{
	s->stopping = 1;
	if (s->have_pipe)
		uv_close((uv_handle_t *)&s->pipe_listener,
			 on_srv_handle_closed);
	if (s->have_tcp) {
		uv_close((uv_handle_t *)&s->tcp_listener, on_srv_handle_closed);
		uv_close((uv_handle_t *)&s->timer, on_srv_handle_closed);
	}
	if (s->have_flush) {
		/* What is still pending goes out first. */
		on_flush(&s->flush);
		s->have_flush = 0;
		uv_close((uv_handle_t *)&s->flush, on_srv_handle_closed);
	}
	maybe_finish(s);
}

static int start_unix(struct client_server *s, const char *path, struct err *e)
{
	char dir[sizeof(s->path)];
	int rc;

	snprintf(s->path, sizeof(s->path), "%s", path);
	snprintf(dir, sizeof(dir), "%s", path);
	/* The directory is the access control: 0750, group may connect. */
	if (mkdir(dirname(dir), 0750) != 0 && errno != EEXIST)
		return err_set(e, MSCE_EIO,
			       "create socket directory for %s: %s", path,
			       strerror(errno));
	unlink(path); /* a stale socket from a killed node */
	uv_pipe_init(s->loop, &s->pipe_listener, 0);
	s->pipe_listener.data = s;
	s->have_pipe = 1;
	s->handles++;
	if ((rc = uv_pipe_bind(&s->pipe_listener, path)))
		return err_set(e, MSCE_EIO, "listen on %s: %s", path,
			       uv_strerror(rc));
	s->bound_path = 1;
	if ((rc = uv_listen((uv_stream_t *)&s->pipe_listener, LISTEN_BACKLOG,
			    on_unix_connection)))
		return err_set(e, MSCE_EIO, "listen on %s: %s", path,
			       uv_strerror(rc));
	chmod(path, 0660);
	return 0;
}

static int start_tcp(struct client_server *s, int fd, struct err *e)
{
	const char *addr = s->cfg->client_listen;
	int rc;

	uv_tcp_init(s->loop, &s->tcp_listener);
	s->tcp_listener.data = s;
	uv_timer_init(s->loop, &s->timer);
	s->timer.data = s;
	s->have_tcp = 1;
	s->handles += 2;
	if ((rc = uv_tcp_open(&s->tcp_listener, fd))) {
		close(fd);
		return err_set(e, MSCE_EIO, "client listener %s: %s", addr,
			       uv_strerror(rc));
	}
	if ((rc = uv_listen((uv_stream_t *)&s->tcp_listener, LISTEN_BACKLOG,
			    on_tcp_connection)))
		return err_set(e, MSCE_EIO, "client listener %s: %s", addr,
			       uv_strerror(rc));
	uv_timer_start(&s->timer, on_timer, SWEEP_MS, SWEEP_MS);
	return 0;
}

int client_server_start(uv_loop_t *loop, const struct config *cfg,
			const struct noise_keypair *key, client_request_cb cb,
			void *data, struct client_server **out, struct err *e)
{
	int want_unix, want_tcp, fd = -1, rc;
	uint8_t prologue[CHANNEL_PROLOGUE_MAX];
	struct sockaddr_storage ss;
	struct admission_config acfg = {0};
	struct client_server *s;
	size_t plen;

	*out = NULL;
	if (!loop || !cfg || !cb)
		return err_set(e, MSCE_EINVAL,
			       "client server: missing argument");
	want_unix = cfg->socket_path[0] != '\0';
	want_tcp = cfg->client_listen[0] != '\0';
	if (!want_unix && !want_tcp)
		return err_set(e, MSCE_EINVAL,
			       "client server: neither socket nor "
			       "client_listen is set");
	if (want_unix && strlen(cfg->socket_path) >= sizeof(s->path))
		return err_set(e, MSCE_EINVAL, "socket path too long: %s",
			       cfg->socket_path);
	if (want_tcp) {
		if (!key || !key->priv)
			return err_set(e, MSCE_EINVAL,
				       "client listener: no node key");
		if (sodium_init() < 0)
			return err_set(e, MSCE_ENOMEM,
				       "client listener: libsodium init");
		if (channel_prologue(cfg->cluster, prologue, sizeof(prologue),
				     &plen))
			return err_set(e, MSCE_ECONFIG,
				       "client listener: bad cluster name "
				       "\"%s\"",
				       cfg->cluster);
		if ((rc = addr_parse(cfg->client_listen, &ss, e))) {
			err_wrap(e, "client listener");
			return rc;
		}
	}

	if ((s = calloc(1, sizeof(*s))) == NULL)
		return err_set(e, MSCE_ENOMEM, "client server: out of memory");
	ratelog_init(&s->warn, "client server", WARN_PER_SEC);
	s->loop = loop;
	s->cfg = cfg;
	s->key = key;
	s->cb = cb;
	s->data = data;
	s->nclients = cfg->nclients;
	s->replay = calloc(s->nclients ? s->nclients : 1, sizeof(*s->replay));
	s->keys = calloc(s->nclients ? s->nclients : 1, sizeof(*s->keys));
	acfg.max_pending = cfg->max_pending_handshakes
			       ? cfg->max_pending_handshakes
			       : CONFIG_DEFAULT_MAX_PENDING;
	acfg.per_addr = cfg->max_pending_per_address
			    ? cfg->max_pending_per_address
			    : CONFIG_DEFAULT_MAX_PENDING_PER_ADDR;
	if (acfg.per_addr > acfg.max_pending)
		acfg.per_addr = acfg.max_pending;
	if (s->replay == NULL || s->keys == NULL ||
	    admission_init(&s->adm, &acfg)) {
		free(s->replay);
		free(s->keys);
		free(s);
		return err_set(e, MSCE_ENOMEM, "client server: out of memory");
	}
	channel_guard_init(&s->guard, uv_now(loop));
	s->budget.limit = cfg->client_max_partial_total
			      ? cfg->client_max_partial_total
			      : CONFIG_DEFAULT_CLIENT_PARTIAL_TOTAL;
	s->hs_timeout_ms = cfg->handshake_timeout_ms
			       ? cfg->handshake_timeout_ms
			       : CONFIG_DEFAULT_HANDSHAKE_TIMEOUT_MS;
	s->idle_ms = cfg->client_idle_timeout_ms
			 ? cfg->client_idle_timeout_ms
			 : CONFIG_DEFAULT_CLIENT_IDLE_MS;
	s->conns_per_key = cfg->client_max_connections_per_key
			       ? cfg->client_max_connections_per_key
			       : CONFIG_DEFAULT_CLIENT_CONNS_PER_KEY;
	s->max_partial = cfg->client_max_partial_bytes
			     ? cfg->client_max_partial_bytes
			     : CONFIG_DEFAULT_CLIENT_PARTIAL;
	for (size_t i = 0; i < s->nclients; i++) {
		size_t share = s->budget.limit / 2;
		if (share < s->max_partial)
			share = s->max_partial;
		if (share > s->budget.limit)
			share = s->budget.limit;
		s->keys[i].budget.limit = share;
		s->keys[i].budget.parent = &s->budget;
	}
	for (size_t i = 0; i < s->nclients; i++)
		memcpy(s->replay[i].key, cfg->clients[i].public_key,
		       NOISE_KEY_LEN);
	if (want_tcp &&
	    (rc = addr_listen("client listener", cfg->client_listen,
			      (struct sockaddr *)&ss, LISTEN_BACKLOG, &fd, e))) {
		free(s->replay);
		free(s->keys);
		admission_free(&s->adm);
		channel_guard_destroy(&s->guard);
		free(s);
		return rc;
	}

	/* From here on, handles may exist. */
	uv_check_init(loop, &s->flush);
	s->flush.data = s;
	s->have_flush = 1;
	s->handles++;
	if (want_unix && (rc = start_unix(s, cfg->socket_path, e))) {
		if (fd >= 0)
			close(fd);
		start_failed(s);
		return rc;
	}
	if (want_tcp && (rc = start_tcp(s, fd, e))) {
		start_failed(s);
		return rc;
	}
	if (want_unix)
		log_info("client socket: listening on %s (admin)",
			 cfg->socket_path);
	if (want_tcp)
		log_info("client listener: listening on %s, %zu clients",
			 cfg->client_listen, cfg->nclients);
	*out = s;
	return 0;
}

void client_server_stats(const struct client_server *s,
			 struct client_server_stats *out)
{
	*out = s->stats;
	out->partial_bytes = s->budget.used;
}

uint64_t client_server_errors(const struct client_server *s)
{
	const struct client_server_stats *st = &s->stats;

	return st->refused_unknown_key + st->refused_replay +
	       st->refused_clock_skew + st->refused_bad_handshake +
	       st->refused_too_many_pending + st->handshake_timeouts +
	       st->decrypt_failures + st->bad_frames + st->oversized_requests +
	       st->oversized_replies + st->refused_bad_mac +
	       st->refused_addr_pending + st->refused_under_load +
	       st->refused_key_connections + st->refused_partial_total +
	       st->refused_partial_key;
}

void client_server_stop(struct client_server *s, void (*done)(void *arg),
			void *arg)
{
	if (s->stopping)
		return;
	s->stopping = 1;
	s->done = done;
	s->done_arg = arg;
	if (s->have_flush) {
		/* What is still pending goes out first (the last answers:
		 * min_sites puts told how many centers hold them), before the
		 * connections close: a closing one writes nothing. */
		on_flush(&s->flush);
		s->have_flush = 0;
		uv_close((uv_handle_t *)&s->flush, on_srv_handle_closed);
	}
	for (struct client_conn *c = s->conns; c != NULL; c = c->next)
		client_conn_close(c);
	if (s->have_pipe)
		uv_close((uv_handle_t *)&s->pipe_listener,
			 on_srv_handle_closed);
	if (s->have_tcp) {
		uv_close((uv_handle_t *)&s->tcp_listener, on_srv_handle_closed);
		uv_close((uv_handle_t *)&s->timer, on_srv_handle_closed);
	}
}

/* ---- for streams (watch.c) ---- */

int client_conn_open(const struct client_conn *c)
{
	return c->state != CONN_CLOSING;
}

void client_server_hold_reads(struct client_server *s, int on)
{
	if (s->reads_held == !!on)
		return;
	s->reads_held = !!on;
	if (!on)
		for (struct client_conn *c = s->conns; c != NULL; c = c->next)
			if (c->state == CONN_OPEN)
				update_reading(c);
}

size_t client_conn_queued(const struct client_conn *c)
{
	return c->state == CONN_CLOSING
		   ? 0
		   : c->pend_len +
			 uv_stream_get_write_queue_size(&c->h.stream);
}
