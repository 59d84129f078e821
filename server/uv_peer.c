/* SPDX-License-Identifier: Apache-2.0 */
/* Peer links on libuv (the policy is in uv_peer.h).
 *
 * Happy path: each configured peer has a dial timer. When it fires and no
 * session with that peer exists, we connect, send Noise message 1 as the
 * initiator, and once message 2 authenticates the peer the connection
 * becomes that peer's session: cb->up, then every application message the
 * channel reassembles goes to cb->message. The listener accepts connections
 * as the responder; the verify callback looks the initiator's key up in the
 * replay table (one entry per configured peer, same order as the peers) and
 * so learns which peer is calling. A timer rekeys open channels. Each write
 * owns the bytes the channel produced for it and frees them in its
 * callback. Reads share one buffer per net, since channel_feed copies
 * whatever it keeps.
 *
 * Failure modes: a connection that fails before its handshake completes is
 * closed and counted by reason. Inbound connections are admitted by source
 * address (admission.h) before a byte is read: bounded in number (in all
 * and per address, with slots kept for the peers' hosts) and in time
 * (handshake_timeout_ms, until the initiator's confirmation), and they cost
 * only the conn struct, never a transport buffer. Message 1 costs two
 * hashes until its mac1 holds; under load it must bring a cookie, and each
 * address has a handshake rate. Handshake frames are fed to the channel one
 * at a time, apart from what follows, so a failure is classified exactly
 * and the session exists before its first message is delivered. A session
 * that fails (EOF, I/O error, bad frame, too slow a reader) is closed;
 * cb->down runs from the close callback, so never inside a call the node
 * made into us, and the peer is redialled after an exponential backoff with
 * jitter.
 *
 * Two connections for one peer key. A session that is alive (it delivered
 * an authenticated message within live_ms) stays: a newer inbound
 * connection with its key is refused before message 2. If it came within
 * a handshake's time of our own dial becoming the session, both ends
 * dialled at once and the peer keeps our dial too (counted as crossed);
 * otherwise a second process runs with that node's key (counted as a
 * duplicate, one WARN): letting the newest win would make the two take the
 * link from each other at every redial. If both dials complete before
 * either end sees the other's (our dial finds an inbound session), the
 * one dialled by the lower node id stays, which both ends decide alike.
 * A session that is closing or silent for live_ms is replaced, so a
 * restarted peer (or one behind a half-open connection) gets back at
 * once. Every other refusal logs one WARN line, at most WARN_PER_SEC a
 * second. */
#include "uv_peer.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <sodium.h>

#include "admission.h"
#include "channel.h"
#include "log.h"
#include "uv_addr.h"
#include "ratelog.h"

#define DEF_BACKOFF_MIN_MS 100
#define DEF_BACKOFF_MAX_MS 5000
#define DEF_MAX_QUEUED ((size_t)64 << 20)
#define DEF_REKEY_CHECK_MS 10000
#define DEF_LIVE_MS 5000
/* A flood's connections are accepted and closed at once; a deep queue
 * keeps a real peer's SYN from being dropped meanwhile. */
#define LISTEN_BACKLOG 1024
#define KEEPALIVE_S 30
#define WARN_PER_SEC 10
#define READ_BUF_LEN (64u << 10)
#define ADDR_LEN 56 /* "[" INET6_ADDRSTRLEN "]:65535" */

enum conn_state {
	CONN_CONNECTING, /* outbound: TCP connect in flight */
	CONN_HANDSHAKE,	 /* Noise messages 1 and 2 */
	CONN_OPEN,	 /* authenticated: its peer's session */
	CONN_CLOSING,	 /* uv_close called; freed in the close callback */
};

struct conn {
	uv_tcp_t tcp; /* tcp.data = this conn */
	uv_connect_t connect;
	struct peer_net *net;
	struct peer *peer; /* dialled, or once verified */
	struct conn *prev, *next;
	enum conn_state state;
	int outbound;
	int session;	   /* cb->up delivered, cb->down owed */
	struct admission_entry *slot; /* inbound, pending: its admission */
	int verify_rc;	   /* our verify callback's refusal, 0 if none */
	int admit_rc;	   /* our admit callback's refusal, 0 if none */
	int answered;	   /* inbound: message 2 sent, not yet confirmed */
	int cookie_kept;   /* outbound: its cookie reply went to the peer */
	int64_t skew_ms;   /* inbound: message 1 timestamp minus our clock */
	uint64_t start_ms; /* loop time of the accept or dial */
	uint64_t up_ms;	   /* loop time the session was established */
	uint64_t heard_ms; /* loop time of its last authenticated message */
	struct channel ch;
	char addr[ADDR_LEN]; /* inbound: the remote address, for logs */
};

struct peer {
	struct peer_net *net;
	const struct config_peer *cfg;
	struct sockaddr_storage addr;
	uv_timer_t dial_timer;
	struct conn *session; /* up, or closing with cb->down still owed */
	struct conn *dialing; /* outbound until its handshake is done */
	uint64_t backoff_ms;  /* next delay, before jitter */
	uint64_t last_ts;     /* last message-1 timestamp sent to it */
	unsigned failures;    /* dials failed since the last session */
	uint8_t cookie[CHANNEL_COOKIE_LEN]; /* its last cookie for us */
	uint64_t cookie_ms;		    /* loop time it came; 0 = none */
};

struct peer_net {
	struct peer_net_config cfg; /* zeros replaced by defaults */
	struct peer_net_cb cb;
	uv_loop_t *loop;
	uv_tcp_t listener;
	uv_timer_t rekey_timer, hs_timer;
	struct peer *peers;
	size_t npeers;
	struct channel_replay_entry *replay; /* parallel to peers */
	struct conn *conns;
	struct admission adm;	   /* inbound handshakes by address */
	struct channel_guard guard; /* our cookie secret */
	size_t handles; /* initialised and not yet closed */
	int stopping;
	void (*done)(void *arg);
	void *done_arg;
	struct peer_net_stats stats;
	struct ratelog warn; /* refusals, rate-limited */
	uint8_t rbuf[READ_BUF_LEN];
};

struct wreq {
	uv_write_t req;
	uint8_t *data;
};

static void conn_close(struct conn *c);
static void schedule_dial(struct peer *p);

/* ---- small helpers ---- */

static uint64_t wall_ms(void)
{
	uv_timeval64_t tv;

	if (uv_gettimeofday(&tv))
		return 0;
	return (uint64_t)tv.tv_sec * 1000 + (uint64_t)tv.tv_usec / 1000;
}

static uint32_t peer_id(const struct conn *c)
{
	return c->peer ? c->peer->cfg->id : 0;
}

static const char *conn_addr(const struct conn *c)
{
	return c->outbound ? c->peer->cfg->address : c->addr;
}

/* A flood of bad connections must not flood the log (ratelog.h). */
#define net_warn(n, ...) ratelog_warn(&(n)->warn, uv_now((n)->loop), __VA_ARGS__)



/* ---- handles and closing ---- */

static void net_free(struct peer_net *n)
{
	void (*done)(void *) = n->done;
	void *arg = n->done_arg;

	free(n->peers);
	free(n->replay);
	admission_free(&n->adm);
	channel_guard_destroy(&n->guard);
	free(n);
	if (done)
		done(arg);
}

static void handle_closed(struct peer_net *n)
{
	if (--n->handles == 0 && n->stopping)
		net_free(n);
}

static void on_net_handle_close(uv_handle_t *h)
{
	handle_closed(h->data);
}

static void on_dial_timer_close(uv_handle_t *h)
{
	struct peer *p = h->data;

	handle_closed(p->net);
}

/* The session on c ends: cb->down once, and the peer is dialled again.
 * Only from a loop callback, never from inside a call the node made. */
static void session_end(struct conn *c)
{
	struct peer_net *n = c->net;
	struct peer *p = c->peer;

	if (!c->session)
		return;
	c->session = 0;
	if (p->session == c)
		p->session = NULL;
	log_info("peer %u (%s): session down", p->cfg->id, conn_addr(c));
	if (!n->stopping && n->cb.down)
		n->cb.down(n->cb.data, p->cfg->id);
	schedule_dial(p);
}

static void on_conn_close(uv_handle_t *h)
{
	struct conn *c = h->data;
	struct peer_net *n = c->net;

	session_end(c);
	if (c->prev)
		c->prev->next = c->next;
	else
		n->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	/* Wipes the keys; deferred to here because a close may be asked for
	 * from inside channel_feed (a message callback). */
	channel_destroy(&c->ch);
	free(c);
	handle_closed(n);
}

/* Starts closing c. A session stays attached to its peer until the close
 * callback, which delivers cb->down. */
static void conn_close(struct conn *c)
{
	struct peer_net *n = c->net;
	struct peer *p = c->peer;

	if (c->state == CONN_CLOSING)
		return;
	c->state = CONN_CLOSING;
	if (c->slot) {
		admission_leave(&n->adm, c->slot, uv_now(n->loop));
		c->slot = NULL;
	}
	if (p && p->dialing == c) {
		p->dialing = NULL;
		schedule_dial(p);
	}
	uv_close((uv_handle_t *)&c->tcp, on_conn_close);
}

static struct conn *conn_new(struct peer_net *n, int outbound)
{
	struct conn *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	if (uv_tcp_init(n->loop, &c->tcp)) {
		free(c);
		return NULL;
	}
	c->tcp.data = c;
	c->net = n;
	c->outbound = outbound;
	c->start_ms = uv_now(n->loop);
	c->next = n->conns;
	if (n->conns)
		n->conns->prev = c;
	n->conns = c;
	n->handles++;
	return c;
}

/* Tells the node why there is no session with p (for its status). */
static void report_failed(struct peer_net *n, const struct peer *p,
			  const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void report_failed(struct peer_net *n, const struct peer *p,
			  const char *fmt, ...)
{
	char text[448];
	va_list ap;

	if (n->cb.failed == NULL)
		return;
	va_start(ap, fmt);
	vsnprintf(text, sizeof text, fmt, ap);
	va_end(ap);
	n->cb.failed(n->cb.data, p->cfg->id, text);
}

/* A dial that did not reach an authenticated session. */
static void dial_failed(struct conn *c, const char *why)
{
	struct peer *p = c->peer;

	if (p->session) {
		/* The peer's own dial is the session: it refused ours as
		 * crossed. Nothing is wrong with the link. */
		log_debug("peer %u (%s): dial not needed: %s", p->cfg->id,
			  p->cfg->address, why);
		conn_close(c);
		return;
	}
	c->net->stats.connect_failures++;
	report_failed(c->net, p, "dial to %s failed: %s", p->cfg->address,
		      why);
	/* A peer that stays down would log every backoff: only the first
	 * failure is worth INFO. */
	if (++p->failures == 1)
		log_info("peer %u (%s): cannot connect: %s", p->cfg->id,
			 p->cfg->address, why);
	else
		log_debug("peer %u (%s): cannot connect: %s (%u times)",
			  p->cfg->id, p->cfg->address, why, p->failures);
	conn_close(c);
}

/* ---- writing ---- */

static void on_write(uv_write_t *req, int status)
{
	struct wreq *w = (struct wreq *)req;
	struct conn *c = req->handle->data;

	free(w->data);
	free(w);
	if (status < 0 && status != UV_ECANCELED && c->state != CONN_CLOSING) {
		if (c->state == CONN_OPEN)
			log_info("peer %u (%s): write failed: %s", peer_id(c),
				 conn_addr(c), uv_strerror(status));
		else if (c->outbound) {
			dial_failed(c, uv_strerror(status));
			return;
		}
		conn_close(c);
	}
}

/* Writes what the channel put into b, taking its buffer (b is zeroed).
 * Returns 0, or MSCE_ECLOSED if c is closing or was closed here (write
 * error, or more than max_queued_bytes waiting: the reader is too slow). */
static int conn_write(struct conn *c, struct channel_buf *b)
{
	struct peer_net *n = c->net;
	struct wreq *w;
	uv_buf_t buf;
	size_t queued;
	int rc;

	if (c->state == CONN_CLOSING) {
		channel_buf_free(b);
		return MSCE_ECLOSED;
	}
	if (!b->len) {
		channel_buf_free(b);
		return 0;
	}
	if (!(w = malloc(sizeof(*w)))) {
		channel_buf_free(b);
		/* A lost frame desynchronises the stream: drop the link. */
		log_error("peer %u (%s): out of memory writing", peer_id(c),
			  conn_addr(c));
		conn_close(c);
		return MSCE_ECLOSED;
	}
	w->data = b->data;
	buf = uv_buf_init((char *)b->data, (unsigned)b->len);
	memset(b, 0, sizeof(*b));
	rc = uv_write(&w->req, (uv_stream_t *)&c->tcp, &buf, 1, on_write);
	if (rc) {
		free(w->data);
		free(w);
		log_info("peer %u (%s): write failed: %s", peer_id(c),
			 conn_addr(c), uv_strerror(rc));
		conn_close(c);
		return MSCE_ECLOSED;
	}
	queued = uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp);
	if (queued > n->cfg.max_queued_bytes) {
		n->stats.too_slow++;
		net_warn(n,
			 "peer link %s (peer %u): closed: too slow, %zu bytes "
			 "unsent",
			 conn_addr(c), peer_id(c), queued);
		conn_close(c);
		return MSCE_ECLOSED;
	}
	return 0;
}

/* ---- sessions ---- */

/* p's session if it is alive: open, and it delivered an authenticated
 * message (or its handshake) within live_ms. */
static struct conn *live_session(const struct peer *p)
{
	struct conn *old = p->session;

	if (!old || old->state != CONN_OPEN)
		return NULL;
	if (uv_now(p->net->loop) - old->heard_ms >= p->net->cfg.live_ms)
		return NULL;
	return old;
}

/* The inbound c is the other half of two dials that crossed: the peer
 * dialled before it took our dial, which is now the session. It only
 * dials while it has no session with us, so its connection reached us
 * at most a handshake's time after ours was up. */
static int crossed(const struct conn *old, const struct conn *c)
{
	return old->outbound && !c->outbound &&
	       c->start_ms < old->up_ms + c->net->cfg.handshake_timeout_ms;
}

/* c has just authenticated its peer. Returns with c either the peer's
 * session (cb->up delivered) or closing. */
static void establish(struct conn *c)
{
	struct peer_net *n = c->net;
	struct peer *p = c->peer;
	struct conn *old = p->session;
	uint32_t self = n->cfg.cfg->node_id, id = p->cfg->id;

	if (c->slot) {
		admission_leave(&n->adm, c->slot, uv_now(n->loop));
		c->slot = NULL;
	}
	c->answered = 0;
	if (p->dialing == c)
		p->dialing = NULL;
	if (old) {
		if (old->state != CONN_CLOSING) {
			int keep_new;

			if (c->outbound ||
			    (old->outbound && live_session(p))) {
				/* Both ends dialled and both dials got
				 * through (an inbound one is confirmed only
				 * after message 2, so ours may have become
				 * the session meanwhile): keep the one the
				 * lower id dialled, as the peer does. */
				uint32_t by_c = c->outbound ? self : id;
				uint32_t by_old = old->outbound ? self : id;

				n->stats.crossed_dials++;
				keep_new = by_c < by_old;
				log_info("peer %u: dials crossed, keeping the "
					 "one dialled by node %u",
					 id, self < id ? self : id);
			} else if (live_session(p)) {
				/* Became live since message 1 was checked:
				 * a second process with the peer's key. */
				n->stats.duplicate_sessions++;
				net_warn(n,
					 "peer link %s: refused node %u (%s): a "
					 "session with it is up and live; is a "
					 "second msced running with its key?",
					 conn_addr(c), id, p->cfg->name);
				conn_close(c);
				return;
			} else {
				/* Silent, maybe half-open: the confirmed
				 * newcomer takes over. */
				n->stats.sessions_replaced++;
				keep_new = 1;
				log_info("peer %u (%s): new session replaces "
					 "one silent for %llu ms",
					 id, conn_addr(c),
					 (unsigned long long)(uv_now(n->loop) -
							      old->heard_ms));
			}
			if (!keep_new) {
				conn_close(c);
				return;
			}
			conn_close(old);
		}
		/* Safe here: we are in a read callback, not in a call from
		 * the node, so down can be delivered now, before up. */
		session_end(old);
		if (c->state == CONN_CLOSING)
			return; /* the down callback stopped the net */
	}
	c->state = CONN_OPEN;
	c->session = 1;
	c->up_ms = c->heard_ms = uv_now(n->loop);
	p->session = c;
	p->backoff_ms = n->cfg.backoff_min_ms;
	p->failures = 0;
	uv_timer_stop(&p->dial_timer);
	n->stats.sessions_established++;
	log_info("peer %u (%s): session up (%s)", id, conn_addr(c),
		 c->outbound ? "dialled" : "accepted");
	if (!n->stopping && n->cb.up)
		n->cb.up(n->cb.data, id);
}

/* Closes c after channel_feed failed with rc, counting the reason (where
 * the channel failed, and what our callbacks said). */
static void refuse(struct conn *c, int rc)
{
	struct peer_net *n = c->net;
	struct peer_net_stats *st = &n->stats;
	const char *why = err_str(rc);
	uint64_t *counter = NULL;
	char detail[96];

	if (c->verify_rc == MSCE_EBUSY && rc == MSCE_EBUSY) {
		struct conn *old = c->peer->session;

		if (crossed(old, c)) {
			st->crossed_dials++;
			log_debug("peer link %s (peer %u): dials crossed, "
				  "keeping ours",
				  conn_addr(c), peer_id(c));
		} else {
			st->duplicate_sessions++;
			net_warn(
			    n,
			    "peer link %s: refused node %u (%s): a session "
			    "with it is up and live (last message %llu ms "
			    "ago); is a second msced running with its key, or "
			    "is its message 1 replayed?",
			    conn_addr(c), peer_id(c), c->peer->cfg->name,
			    (unsigned long long)(uv_now(n->loop) -
						 old->heard_ms));
		}
		conn_close(c);
		return;
	}
	switch (channel_failure(&c->ch)) {
	case CHANNEL_FAIL_MAC:
		counter = &st->refused_bad_mac;
		why = "message 1 not made for this node (bad mac1: junk, or "
		      "another node's key, cluster or version)";
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
			why = "unknown key";
			break;
		case MSCE_EAUTH:
			counter = &st->refused_replay;
			why = "message 1 replayed (its timestamp was "
			      "taken before)";
			break;
		case MSCE_ECLOCK:
			counter = &st->refused_clock_skew;
			snprintf(detail, sizeof(detail),
				 "message 1 timestamp %+lld ms off our clock "
				 "(max_clock_skew %llu ms)",
				 (long long)c->skew_ms,
				 (unsigned long long)n->cfg.cfg->max_clock_skew_ms);
			why = detail;
			break;
		}
		break;
	case CHANNEL_FAIL_CONFIRM:
		counter = &st->unconfirmed;
		why = "answered, but the first message is no confirmation "
		      "(a replayed message 1?)";
		break;
	case CHANNEL_FAIL_FRAME:
	case CHANNEL_FAIL_HANDSHAKE:
		if (c->state == CONN_HANDSHAKE) {
			counter = &st->refused_bad_handshake;
			why = rc == MSCE_EAUTH
				  ? "bad handshake (does not decrypt)"
				  : "bad handshake (malformed)";
		} else {
			counter = &st->bad_frames;
			why = "bad frame";
		}
		break;
	case CHANNEL_FAIL_TRANSPORT:
		counter = rc == MSCE_EAUTH ? &st->decrypt_failures
					   : &st->bad_frames;
		why = rc == MSCE_EAUTH ? "decryption failed" : "bad frame";
		break;
	case CHANNEL_FAIL_LIMIT:
	case CHANNEL_FAIL_BUDGET:
		counter = &st->oversized_frames;
		why = "message over the size limit";
		break;
	default:
		if (rc == MSCE_ECLOSED)
			why = "nonces exhausted";
		break;
	}
	if (counter) {
		(*counter)++;
		if (c->peer)
			net_warn(n, "peer link %s (peer %u): closed: %s",
				 conn_addr(c), peer_id(c), why);
		else
			net_warn(n, "peer link %s: closed: %s", conn_addr(c),
				 why);
	} else {
		log_info("peer link %s (peer %u): closed: %s", conn_addr(c),
			 peer_id(c), why);
	}
	/* Our dial that did not make a session: status says why. */
	if (c->outbound && c->state != CONN_OPEN && c->peer)
		report_failed(n, c->peer, "handshake with %s failed: %s",
			      conn_addr(c), why);
	conn_close(c);
}

/* Outbound: keeps the cookie the peer gave us in this handshake, for
 * mac2 on the next dials. */
static void keep_cookie(struct conn *c)
{
	struct peer *p = c->peer;

	if (c->cookie_kept || channel_cookie(&c->ch, p->cookie))
		return;
	c->cookie_kept = 1;
	p->cookie_ms = uv_now(c->net->loop);
	if (!p->cookie_ms)
		p->cookie_ms = 1;
}

/* Feeds received bytes. Handshake frames go in one at a time so that the
 * session is established (for an inbound connection: confirmed) before any
 * message in the same read. */
static void conn_feed(struct conn *c, const uint8_t *p, size_t len)
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
		if (c->outbound)
			keep_cookie(c);
		/* Message 2 (or the confirmation) must go out before
		 * anything up() sends. */
		if (conn_write(c, &out))
			return;
		if (channel_is_confirmed(&c->ch))
			establish(c);
		else if (channel_is_open(&c->ch))
			c->answered = 1;
	}
	if (!len || c->state != CONN_OPEN)
		return;
	rc = channel_feed(&c->ch, p, len, NULL);
	/* The node may have closed the link or stopped us from a message
	 * callback: that is no fault of the peer. */
	if (rc && c->state != CONN_CLOSING)
		refuse(c, rc);
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
	struct conn *c = h->data;

	(void)hint;
	buf->base = (char *)c->net->rbuf;
	buf->len = READ_BUF_LEN;
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	struct conn *c = s->data;
	const char *why;

	if (nread == 0 || c->state == CONN_CLOSING)
		return;
	if (nread > 0) {
		conn_feed(c, (const uint8_t *)buf->base, (size_t)nread);
		return;
	}
	why = nread == UV_EOF ? "closed by the other end"
			      : uv_strerror((int)nread);
	if (c->state == CONN_OPEN) {
		log_info("peer %u (%s): link lost: %s", peer_id(c),
			 conn_addr(c), why);
	} else if (c->outbound) {
		dial_failed(c, why);
		return;
	} else if (c->answered) {
		c->net->stats.unconfirmed++;
		net_warn(c->net,
			 "peer link %s (peer %u): closed before confirming the "
			 "session (a replayed message 1?): %s",
			 conn_addr(c), peer_id(c), why);
	} else {
		log_debug("peer link %s: closed before authenticating: %s",
			  conn_addr(c), why);
	}
	conn_close(c);
}

/* Message 1 carries a good mac1. Under load it must also prove its source
 * address (mac2, from a cookie we gave), and the address gets a rate. */
static int on_channel_admit(void *ctx, int mac2_ok)
{
	struct conn *c = ctx;
	struct peer_net *n = c->net;

	if (!admission_under_load(&n->adm))
		return 0;
	if (!mac2_ok) {
		/* The channel answers one message 1 per connection with a
		 * cookie and refuses a second: count only what goes out. */
		if (!c->ch.cookie_sent)
			n->stats.cookies_sent++;
		return CHANNEL_COOKIE;
	}
	if (!c->slot || !admission_take(&n->adm, c->slot, uv_now(n->loop)))
		return c->admit_rc = MSCE_EBUSY;
	return 0;
}

static int on_channel_verify(void *ctx, const uint8_t key[NOISE_KEY_LEN],
			     uint64_t timestamp_ms)
{
	struct conn *c = ctx;
	struct peer_net *n = c->net;
	/* The window of docs/PROTOCOL.md: max_clock_skew either way. It
	 * bounds replays after our restart, when the table is empty; a
	 * center whose clock is further off cannot connect (counted as
	 * refused_clock_skew and logged with its offset). */
	uint64_t skew = n->cfg.cfg->max_clock_skew_ms, now = wall_ms();
	size_t i;
	int rc;

	c->skew_ms = (int64_t)(timestamp_ms - now);
	/* The table holds exactly the configured peers' keys: an unknown key
	 * is refused here, before the channel allocates anything. */
	rc = channel_replay_check(n->replay, n->npeers, key, timestamp_ms, now,
				  skew ? skew : CONFIG_DEFAULT_CLOCK_SKEW_MS,
				  &i);
	if (!rc) {
		c->peer = &n->peers[i];
		if (live_session(c->peer))
			rc = MSCE_EBUSY; /* refuse() logs and counts it */
	} else if (rc == MSCE_ECLOCK && n->cb.clock_refused) {
		/* Its key is a peer's, its clock beyond the window: status
		 * says so rather than only "link down". */
		n->cb.clock_refused(n->cb.data, n->peers[i].cfg->id,
				    c->skew_ms);
	}
	c->verify_rc = rc;
	return rc;
}

static int on_channel_message(void *ctx, const uint8_t *msg, size_t len)
{
	struct conn *c = ctx;
	struct peer_net *n = c->net;

	if (c->state != CONN_OPEN || n->stopping)
		return MSCE_ECLOSED;
	c->heard_ms = uv_now(n->loop);
	if (n->cb.message)
		n->cb.message(n->cb.data, c->peer->cfg->id, msg, len);
	return c->state == CONN_OPEN && !n->stopping ? 0 : MSCE_ECLOSED;
}

/* src: inbound, the source address bytes cookies are bound to. */
static void channel_config_fill(struct peer_net *n, struct conn *c,
				struct channel_config *cc, const uint8_t *src,
				size_t src_len)
{
	struct peer *p = c->peer;

	memset(cc, 0, sizeof(*cc));
	cc->role = c->outbound ? NOISE_INITIATOR : NOISE_RESPONDER;
	cc->cluster = n->cfg.cfg->cluster;
	cc->local = n->cfg.key;
	cc->max_message = n->cfg.max_message;
	cc->rekey_ms = n->cfg.rekey_ms;
	cc->cb.message = on_channel_message;
	cc->cb.ctx = c;
	if (c->outbound) {
		cc->remote_key = p->cfg->public_key;
		if (p->cookie_ms &&
		    uv_now(n->loop) - p->cookie_ms < CHANNEL_COOKIE_USE_MS)
			cc->cookie = p->cookie;
	} else {
		cc->cb.admit = on_channel_admit;
		cc->cb.verify = on_channel_verify;
		cc->guard = &n->guard;
		cc->src = src;
		cc->src_len = src_len;
	}
}

static void tune_tcp(struct conn *c)
{
	/* Errors only cost latency or slower detection of a dead peer. */
	uv_tcp_nodelay(&c->tcp, 1);
	uv_tcp_keepalive(&c->tcp, 1, KEEPALIVE_S);
}

/* ---- dialling ---- */

static void on_connect(uv_connect_t *req, int status)
{
	struct conn *c = req->handle->data;
	struct peer_net *n = c->net;
	struct peer *p = c->peer;
	struct channel_config cc;
	struct channel_buf out = {0};
	uint64_t ts;
	int rc;

	if (status == UV_ECANCELED || c->state == CONN_CLOSING)
		return;
	if (status < 0) {
		dial_failed(c, uv_strerror(status));
		return;
	}
	/* The responder refuses a timestamp not above the last it took from
	 * us, so never reuse one, even within a millisecond. */
	ts = wall_ms();
	if (ts <= p->last_ts)
		ts = p->last_ts + 1;
	p->last_ts = ts;
	channel_config_fill(n, c, &cc, NULL, 0);
	if ((rc = channel_init(&c->ch, &cc, ts)) ||
	    (rc = channel_start(&c->ch, &out))) {
		channel_buf_free(&out);
		log_error("peer %u: cannot start the handshake: %s", p->cfg->id,
			  err_str(rc));
		report_failed(n, p,
			      "cannot start the handshake: %s (is its "
			      "public_key right?)",
			      err_str(rc));
		conn_close(c);
		return;
	}
	c->state = CONN_HANDSHAKE;
	tune_tcp(c);
	if (conn_write(c, &out))
		return;
	if ((rc = uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read)))
		dial_failed(c, uv_strerror(rc));
}

static void dial(struct peer *p)
{
	struct peer_net *n = p->net;
	struct conn *c;
	int rc;

	if (n->stopping || p->session || p->dialing)
		return;
	if (!(c = conn_new(n, 1))) {
		log_error("peer %u: out of memory dialling", p->cfg->id);
		schedule_dial(p);
		return;
	}
	c->peer = p;
	c->state = CONN_CONNECTING;
	p->dialing = c;
	rc = uv_tcp_connect(&c->connect, &c->tcp,
			    (const struct sockaddr *)&p->addr, on_connect);
	if (rc)
		dial_failed(c, uv_strerror(rc));
}

static void on_dial_timer(uv_timer_t *t)
{
	dial(t->data);
}

/* Both ends dial; when both dials complete, one session is dropped and
 * the other side sees up/down/up. The higher id waits a little longer, so
 * usually only the lower id's dial happens. */
static uint64_t head_start(const struct peer *p)
{
	if (p->net->cfg.race_dials)
		return 0;
	return p->cfg->id < p->net->cfg.cfg->node_id
		       ? 3 * p->net->cfg.backoff_min_ms
		       : 0;
}

/* Arms the dial timer unless a session or a dial exists or it is armed:
 * backoff plus up to half of it again as jitter, so that nodes restarted
 * together do not dial in lockstep; then the backoff doubles. */
static void schedule_dial(struct peer *p)
{
	struct peer_net *n = p->net;
	uint64_t delay, b = p->backoff_ms;

	if (n->stopping || p->session || p->dialing ||
	    uv_is_active((uv_handle_t *)&p->dial_timer))
		return;
	delay = b + randombytes_uniform((uint32_t)(b / 2 + 1)) + head_start(p);
	p->backoff_ms =
	    b * 2 > n->cfg.backoff_max_ms ? n->cfg.backoff_max_ms : b * 2;
	uv_timer_start(&p->dial_timer, on_dial_timer, delay, 0);
}

/* ---- accepting ---- */

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

static void on_connection(uv_stream_t *server, int status)
{
	struct peer_net *n = server->data;
	struct channel_config cc;
	struct sockaddr_storage ss;
	struct admission_key key;
	enum admission_verdict v = ADMISSION_FULL;
	uint8_t src[16];
	size_t src_len = 0;
	int len = sizeof(ss), rc;
	struct conn *c;

	if (status < 0) {
		net_warn(n, "peer listener: accept failed: %s",
			 uv_strerror(status));
		return;
	}
	if (n->stopping)
		return;
	if (!(c = conn_new(n, 0))) {
		net_warn(n, "peer listener: out of memory accepting");
		return;
	}
	snprintf(c->addr, sizeof(c->addr), "?");
	c->state = CONN_HANDSHAKE;
	if ((rc = uv_accept(server, (uv_stream_t *)&c->tcp))) {
		net_warn(n, "peer listener: accept failed: %s",
			 uv_strerror(rc));
		conn_close(c);
		return;
	}
	/* Admitted by address before a byte is read. */
	if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len) == 0 &&
	    admission_key_of((struct sockaddr *)&ss, &key) == 0) {
		addr_format((struct sockaddr *)&ss, c->addr, sizeof(c->addr));
		src_len = src_bytes((struct sockaddr *)&ss, src);
		v = admission_enter(&n->adm, &key, uv_now(n->loop), &c->slot);
	}
	if (v != ADMISSION_OK) {
		if (v == ADMISSION_ADDR_FULL)
			n->stats.refused_addr_pending++;
		else
			n->stats.refused_too_many_pending++;
		net_warn(n,
			 "peer link %s: refused: %s (%zu handshakes pending)",
			 c->addr,
			 v == ADMISSION_ADDR_FULL
			     ? "too many handshakes pending from its address"
			     : "no handshake slot free for its address",
			 admission_pending(&n->adm));
		conn_close(c);
		return;
	}
	channel_config_fill(n, c, &cc, src, src_len);
	if ((rc = channel_init(&c->ch, &cc, wall_ms()))) {
		log_error("peer link %s: cannot start the handshake: %s",
			  c->addr, err_str(rc));
		conn_close(c);
		return;
	}
	tune_tcp(c);
	if ((rc = uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read))) {
		log_info("peer link %s: %s", c->addr, uv_strerror(rc));
		conn_close(c);
	}
}

/* ---- timers ---- */

static void on_hs_timer(uv_timer_t *t)
{
	struct peer_net *n = t->data;
	uint64_t now = uv_now(n->loop);
	struct conn *c;

	ratelog_tick(&n->warn, uv_now(n->loop)); /* a flood's last count */
	channel_guard_tick(&n->guard, now);
	/* conn_close only unlinks in the close callback: next stays valid. */
	for (c = n->conns; c; c = c->next) {
		if (c->state != CONN_CONNECTING && c->state != CONN_HANDSHAKE)
			continue;
		if (now - c->start_ms < n->cfg.handshake_timeout_ms)
			continue;
		if (c->state == CONN_CONNECTING) {
			dial_failed(c, "timed out");
			continue;
		}
		if (c->answered) {
			n->stats.unconfirmed++;
			net_warn(n,
				 "peer link %s (peer %u): closed: message 2 "
				 "sent but not confirmed in %llu ms (a "
				 "replayed message 1?)",
				 conn_addr(c), peer_id(c),
				 (unsigned long long)
				     n->cfg.handshake_timeout_ms);
		} else {
			n->stats.handshake_timeouts++;
			net_warn(n,
				 "peer link %s: closed: handshake not done in "
				 "%llu ms",
				 conn_addr(c),
				 (unsigned long long)
				     n->cfg.handshake_timeout_ms);
			/* Our dial: status says why there is no session. */
			if (c->outbound && c->peer)
				report_failed(
				    n, c->peer,
				    "dial to %s failed: handshake not done "
				    "in %llu ms",
				    c->peer->cfg->address,
				    (unsigned long long)
					n->cfg.handshake_timeout_ms);
		}
		conn_close(c);
	}
}

static void on_rekey_timer(uv_timer_t *t)
{
	struct peer_net *n = t->data;
	uint64_t now = wall_ms();
	struct conn *c;

	for (c = n->conns; c; c = c->next) {
		struct channel_buf out = {0};

		if (c->state != CONN_OPEN)
			continue;
		switch (channel_rekey_due(&c->ch, now)) {
		case CHANNEL_KEEP:
			break;
		case CHANNEL_REKEY:
			if (channel_rekey(&c->ch, now, &out) == 0) {
				n->stats.rekeys++;
				conn_write(c, &out);
			} else {
				channel_buf_free(&out);
				log_info("peer %u: rekey failed, reconnecting",
					 peer_id(c));
				conn_close(c);
			}
			break;
		case CHANNEL_RENEW:
			log_info("peer %u: nonces nearly used up, reconnecting",
				 peer_id(c));
			conn_close(c);
			break;
		}
	}
}

/* ---- public ---- */


static void defaults(struct peer_net_config *c)
{
	const struct config *f = c->cfg;

	if (!c->max_pending)
		c->max_pending = f->max_pending_handshakes
				     ? f->max_pending_handshakes
				     : CONFIG_DEFAULT_MAX_PENDING;
	if (!c->max_pending_per_addr)
		c->max_pending_per_addr =
		    f->max_pending_per_address
			? f->max_pending_per_address
			: CONFIG_DEFAULT_MAX_PENDING_PER_ADDR;
	if (c->max_pending_per_addr > c->max_pending)
		c->max_pending_per_addr = c->max_pending;
	if (!c->handshake_timeout_ms)
		c->handshake_timeout_ms =
		    f->handshake_timeout_ms ? f->handshake_timeout_ms
					    : CONFIG_DEFAULT_HANDSHAKE_TIMEOUT_MS;
	if (!c->backoff_min_ms)
		c->backoff_min_ms = DEF_BACKOFF_MIN_MS;
	if (!c->backoff_max_ms)
		c->backoff_max_ms = DEF_BACKOFF_MAX_MS;
	if (c->backoff_max_ms < c->backoff_min_ms)
		c->backoff_max_ms = c->backoff_min_ms;
	if (!c->max_queued_bytes)
		c->max_queued_bytes = DEF_MAX_QUEUED;
	if (!c->max_message)
		c->max_message = CHANNEL_DEFAULT_MAX_MESSAGE;
	if (!c->rekey_check_ms)
		c->rekey_check_ms = DEF_REKEY_CHECK_MS;
	if (!c->live_ms)
		c->live_ms = DEF_LIVE_MS;
}

int peer_net_start(const struct peer_net_config *cfg,
		   const struct peer_net_cb *cb, struct peer_net **out,
		   struct err *e)
{
	const struct config *conf;
	struct sockaddr_storage ss;
	struct admission_config acfg = {0};
	struct peer_net *n;
	uint8_t prologue[CHANNEL_PROLOGUE_MAX];
	uint64_t sweep;
	size_t plen, i;
	int fd = -1, rc;

	*out = NULL;
	if (!cfg || !cb || !cfg->loop || !cfg->cfg || !cfg->key ||
	    !cfg->key->priv)
		return err_set(e, MSCE_EINVAL, "peer links: missing argument");
	conf = cfg->cfg;
	if (sodium_init() < 0)
		return err_set(e, MSCE_ENOMEM, "peer links: libsodium init");
	if (channel_prologue(conf->cluster, prologue, sizeof(prologue), &plen))
		return err_set(e, MSCE_ECONFIG,
			       "peer links: bad cluster name \"%s\"",
			       conf->cluster);
	if ((rc = addr_parse(conf->listen, &ss, e))) {
		err_wrap(e, "peer links: listen");
		return rc;
	}

	n = calloc(1, sizeof(*n));
	if (!n)
		return err_set(e, MSCE_ENOMEM, "peer links: out of memory");
	ratelog_init(&n->warn, "peer links", WARN_PER_SEC);
	n->cfg = *cfg;
	defaults(&n->cfg);
	n->cb = *cb;
	n->loop = cfg->loop;
	n->npeers = conf->npeers;
	n->peers = calloc(n->npeers ? n->npeers : 1, sizeof(*n->peers));
	n->replay = calloc(n->npeers ? n->npeers : 1, sizeof(*n->replay));
	if (!n->peers || !n->replay) {
		rc = err_set(e, MSCE_ENOMEM, "peer links: out of memory");
		goto fail;
	}
	/* Room kept for the peers' hosts: two handshakes each (both ends
	 * may dial at once), at most half of all. */
	acfg.max_pending = n->cfg.max_pending;
	acfg.per_addr = n->cfg.max_pending_per_addr;
	acfg.reserved = 2 * n->npeers < n->cfg.max_pending / 2
			    ? 2 * n->npeers
			    : n->cfg.max_pending / 2;
	acfg.reserved_addrs = n->npeers;
	if ((rc = admission_init(&n->adm, &acfg))) {
		rc = err_set(e, rc, "peer links: handshake limits: %s",
			     err_str(rc));
		goto fail;
	}
	channel_guard_init(&n->guard, uv_now(cfg->loop));
	for (i = 0; i < n->npeers; i++) {
		struct peer *p = &n->peers[i];
		struct admission_key key;

		p->net = n;
		p->cfg = &conf->peers[i];
		p->backoff_ms = n->cfg.backoff_min_ms;
		memcpy(n->replay[i].key, p->cfg->public_key, NOISE_KEY_LEN);
		if ((rc = addr_parse(p->cfg->address, &p->addr, e))) {
			err_wrap(e, "peer links: peer %s (%u)", p->cfg->name,
				 p->cfg->id);
			goto fail;
		}
		if (admission_key_of((struct sockaddr *)&p->addr, &key) == 0 &&
		    (rc = admission_reserve(&n->adm, &key))) {
			rc = err_set(e, rc, "peer links: out of memory");
			goto fail;
		}
	}
	if ((rc = addr_listen("listen", conf->listen, (struct sockaddr *)&ss,
			      LISTEN_BACKLOG, &fd, e)))
		goto fail;

	/* From here on, handles exist. */
	uv_tcp_init(n->loop, &n->listener);
	n->listener.data = n;
	n->handles++;
	uv_timer_init(n->loop, &n->rekey_timer);
	n->rekey_timer.data = n;
	n->handles++;
	uv_timer_init(n->loop, &n->hs_timer);
	n->hs_timer.data = n;
	n->handles++;
	for (i = 0; i < n->npeers; i++) {
		uv_timer_init(n->loop, &n->peers[i].dial_timer);
		n->peers[i].dial_timer.data = &n->peers[i];
		n->handles++;
	}
	if ((rc = uv_tcp_open(&n->listener, fd))) {
		close(fd);
		goto fail_async;
	}
	if ((rc = uv_listen((uv_stream_t *)&n->listener, LISTEN_BACKLOG,
			    on_connection)))
		goto fail_async;
	sweep = n->cfg.handshake_timeout_ms / 4;
	sweep = sweep < 10 ? 10 : sweep > 1000 ? 1000 : sweep;
	uv_timer_start(&n->hs_timer, on_hs_timer, sweep, sweep);
	uv_timer_start(&n->rekey_timer, on_rekey_timer, n->cfg.rekey_check_ms,
		       n->cfg.rekey_check_ms);
	/* First dial soon, jittered, so that a cluster started together does
	 * not dial in lockstep. */
	for (i = 0; i < n->npeers; i++)
		uv_timer_start(
		    &n->peers[i].dial_timer, on_dial_timer,
		    randombytes_uniform((uint32_t)n->cfg.backoff_min_ms) +
			head_start(&n->peers[i]),
		    0);
	log_info("peer links: listening on %s, %zu peers", conf->listen,
		 n->npeers);
	*out = n;
	return 0;

fail_async:
	/* Handles are released by the loop; the net frees itself after. */
	rc = err_set(e, MSCE_EIO, "peer links: listen %s: %s", conf->listen,
		     uv_strerror(rc));
	n->stopping = 1;
	uv_close((uv_handle_t *)&n->listener, on_net_handle_close);
	uv_close((uv_handle_t *)&n->rekey_timer, on_net_handle_close);
	uv_close((uv_handle_t *)&n->hs_timer, on_net_handle_close);
	for (i = 0; i < n->npeers; i++)
		uv_close((uv_handle_t *)&n->peers[i].dial_timer,
			 on_dial_timer_close);
	return rc;
fail:
	free(n->peers);
	free(n->replay);
	admission_free(&n->adm);
	channel_guard_destroy(&n->guard);
	free(n);
	return rc;
}

static struct peer *find_peer(struct peer_net *n, uint32_t id)
{
	for (size_t i = 0; i < n->npeers; i++)
		if (n->peers[i].cfg->id == id)
			return &n->peers[i];
	return NULL;
}

int peer_net_send(struct peer_net *n, uint32_t peer, const uint8_t *msg,
		  size_t len)
{
	struct channel_buf out = {0};
	struct peer *p;
	struct conn *c;
	int rc;

	if (!n || n->stopping)
		return MSCE_ECLOSED;
	if (!(p = find_peer(n, peer)))
		return MSCE_ENOTFOUND;
	c = p->session;
	if (!c || c->state != CONN_OPEN)
		return MSCE_ECLOSED;
	if ((rc = channel_send(&c->ch, msg, len, &out))) {
		channel_buf_free(&out);
		if (rc == MSCE_ECLOSED) {
			log_info("peer %u: nonces used up, reconnecting", peer);
			conn_close(c);
		}
		return rc;
	}
	return conn_write(c, &out);
}

void peer_net_close(struct peer_net *n, uint32_t peer, const char *reason)
{
	struct peer *p;
	struct conn *c;

	if (!n || n->stopping || !(p = find_peer(n, peer)))
		return;
	c = p->session;
	if (!c || c->state != CONN_OPEN)
		return;
	log_info("peer %u (%s): closing the session: %s", peer, conn_addr(c),
		 reason ? reason : "asked");
	conn_close(c);
}

void peer_net_stats(const struct peer_net *n, struct peer_net_stats *out)
{
	*out = n->stats;
}

int peer_net_readdress(struct peer_net *n, uint32_t peer, struct err *e)
{
	struct sockaddr_storage ss;
	struct peer *p;
	int rc;

	if (!n || n->stopping || !(p = find_peer(n, peer)))
		return err_set(e, MSCE_ENOTFOUND, "no peer %u", peer);
	if ((rc = addr_parse(p->cfg->address, &ss, e))) {
		err_wrap(e, "peer %s (%u)", p->cfg->name, peer);
		return rc;
	}
	p->addr = ss;
	/* Dial the new address without the backoff the old one earned. */
	p->backoff_ms = n->cfg.backoff_min_ms;
	p->failures = 0;
	if (!p->session && !p->dialing)
		uv_timer_start(&p->dial_timer, on_dial_timer,
			       n->cfg.backoff_min_ms, 0);
	return 0;
}

void peer_net_stop(struct peer_net *n, void (*done)(void *arg), void *arg)
{
	struct conn *c;

	if (!n || n->stopping)
		return;
	n->stopping = 1;
	n->done = done;
	n->done_arg = arg;
	uv_close((uv_handle_t *)&n->listener, on_net_handle_close);
	uv_close((uv_handle_t *)&n->rekey_timer, on_net_handle_close);
	uv_close((uv_handle_t *)&n->hs_timer, on_net_handle_close);
	for (size_t i = 0; i < n->npeers; i++)
		uv_close((uv_handle_t *)&n->peers[i].dial_timer,
			 on_dial_timer_close);
	for (c = n->conns; c; c = c->next)
		conn_close(c);
}
