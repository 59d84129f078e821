/* SPDX-License-Identifier: Apache-2.0 */
/* libmsce's non-blocking connection to one node; see link.h.
 *
 * TCP: the name is resolved, then each address is tried in turn with a
 * non-blocking connect; once one connects, the Noise IK handshake runs as
 * the initiator (docs/PROTOCOL.md "Secure channel"). All of it must finish
 * before the deadline. The client's secret key only passes through
 * sodium_malloc memory (the keypair here, then the channel's copy, which
 * the handshake wipes once it splits); link_close wipes the session keys.
 *
 * Output waits in one buffer (framed for unix, encrypted for TCP) and is
 * written as the socket takes it; input is framed or decrypted as it
 * arrives, and complete messages wait in a queue, oldest first. */
#include "link.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "bounds.h"
#include "channel.h"
#include "config.h"
#include "error.h"

#define READ_BUF_LEN (64u << 10)
#define READS_PER_STEP 64 /* then let the caller's loop breathe */

enum link_state { LINK_CONNECTING, LINK_HANDSHAKE, LINK_OPEN, LINK_DEAD };

struct rxmsg {
	struct rxmsg *next;
	uint8_t *data; /* malloc'd, never NULL */
	size_t len;
};

struct link {
	int fd;
	int tcp;
	enum link_state state;
	int err;	  /* sticky failure, 0 if none */
	char errmsg[256]; /* what it was */
	char name[128];	  /* hostport or path, for messages */
	uint64_t deadline; /* monotonic ms for connect + handshake, 0 none */
	uint64_t timeout_ms;
	/* TCP: addresses still to try */
	struct addrinfo *ai_list, *ai_next;
	int last_errno;
	/* output: out.data[out_off..out.len) is still to write */
	struct channel_buf out;
	size_t out_off;
	/* input */
	struct rxmsg *head, *tail;
	uint8_t hdr[4]; /* unix framing of the message being read */
	size_t hdr_have;
	uint8_t *msg;
	size_t msg_len, msg_have;
	int draining;	   /* reading what came before a failed send */
	struct channel ch; /* TCP */
	uint8_t rbuf[READ_BUF_LEN];
};

/* ---- small helpers ---- */

static int report(char *err, size_t errlen, int code, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static int report(char *err, size_t errlen, int code, const char *fmt, ...)
{
	va_list ap;

	if (err && errlen) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return code;
}

/* Marks l dead with code and the message (copied into err too). */
static int die(struct link *l, char *err, size_t errlen, int code,
	       const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static int die(struct link *l, char *err, size_t errlen, int code,
	       const char *fmt, ...)
{
	va_list ap;

	if (l->err == 0) {
		va_start(ap, fmt);
		vsnprintf(l->errmsg, sizeof l->errmsg, fmt, ap);
		va_end(ap);
		l->err = code;
	}
	l->state = LINK_DEAD;
	return report(err, errlen, l->err, "%s", l->errmsg);
}

static uint64_t clock_ms(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

uint64_t link_now_ms(void) { return clock_ms(CLOCK_MONOTONIC); }

uint64_t link_next_timestamp(void)
{
	static _Atomic uint64_t last;
	uint64_t now = clock_ms(CLOCK_REALTIME), prev, ts;

	prev = atomic_load(&last);
	do {
		ts = now > prev ? now : prev + 1;
	} while (!atomic_compare_exchange_weak(&last, &prev, ts));
	return ts;
}

static int push(struct link *l, uint8_t *data, size_t len)
{
	struct rxmsg *m = malloc(sizeof *m);

	if (m == NULL)
		return MSCE_ENOMEM;
	m->data = data;
	m->len = len;
	m->next = NULL;
	if (l->tail)
		l->tail->next = m;
	else
		l->head = m;
	l->tail = m;
	return 0;
}

int link_pop(struct link *l, uint8_t **msg, size_t *len)
{
	struct rxmsg *m = l->head;

	if (m == NULL)
		return 0;
	l->head = m->next;
	if (l->head == NULL)
		l->tail = NULL;
	*msg = m->data;
	*len = m->len;
	free(m);
	return 1;
}

static struct link *link_new(int tcp, const char *name)
{
	struct link *l = calloc(1, sizeof *l);

	if (l == NULL)
		return NULL;
	l->fd = -1;
	l->tcp = tcp;
	snprintf(l->name, sizeof l->name, "%s", name);
	return l;
}

void link_close(struct link *l)
{
	uint8_t *m;
	size_t n;

	if (l == NULL)
		return;
	if (l->fd >= 0)
		close(l->fd);
	if (l->ai_list)
		freeaddrinfo(l->ai_list);
	channel_destroy(&l->ch); /* wipes the keys */
	channel_buf_free(&l->out);
	while (link_pop(l, &m, &n))
		free(m);
	free(l->msg);
	free(l);
}

int link_fd(const struct link *l) { return l->fd; }
int link_is_open(const struct link *l) { return l->state == LINK_OPEN; }
int link_error(const struct link *l) { return l->err; }
const char *link_errmsg(const struct link *l) { return l->errmsg; }
size_t link_unsent(const struct link *l) { return l->out.len - l->out_off; }

uint64_t link_deadline(const struct link *l)
{
	return l->state == LINK_CONNECTING || l->state == LINK_HANDSHAKE
		       ? l->deadline
		       : 0;
}

int link_wants(const struct link *l)
{
	switch (l->state) {
	case LINK_CONNECTING:
		return LINK_WANT_WRITE;
	case LINK_HANDSHAKE:
	case LINK_OPEN:
		return LINK_WANT_READ |
		       (link_unsent(l) ? LINK_WANT_WRITE : 0);
	default:
		return 0;
	}
}

/* ---- receiving ---- */

/* The unix framing: a length, checked before allocating, and the body. */
static int unix_feed(struct link *l, const uint8_t *p, size_t left, char *err,
		     size_t errlen)
{
	while (left > 0) {
		size_t n;

		if (l->hdr_have < 4) {
			n = 4 - l->hdr_have < left ? 4 - l->hdr_have : left;
			memcpy(l->hdr + l->hdr_have, p, n);
			l->hdr_have += n;
			p += n;
			left -= n;
			if (l->hdr_have < 4)
				break;
			l->msg_len = (size_t)l->hdr[0] << 24 |
				     (size_t)l->hdr[1] << 16 |
				     (size_t)l->hdr[2] << 8 | l->hdr[3];
			if (l->msg_len > LINK_MAX_RESPONSE)
				return die(l, err, errlen, MSCE_EPROTO,
					   "response of %zu bytes over the "
					   "limit of %u",
					   l->msg_len, LINK_MAX_RESPONSE);
			l->msg = malloc(l->msg_len ? l->msg_len : 1);
			if (l->msg == NULL)
				return die(l, err, errlen, MSCE_ENOMEM,
					   "out of memory for a response of "
					   "%zu bytes",
					   l->msg_len);
			l->msg_have = 0;
		}
		n = l->msg_len - l->msg_have < left ? l->msg_len - l->msg_have
						    : left;
		memcpy(l->msg + l->msg_have, p, n);
		l->msg_have += n;
		p += n;
		left -= n;
		if (l->msg_have == l->msg_len) {
			if (push(l, l->msg, l->msg_len) != 0)
				return die(l, err, errlen, MSCE_ENOMEM,
					   "out of memory");
			l->msg = NULL;
			l->hdr_have = 0;
		}
	}
	return 0;
}

static int on_channel_message(void *ctx, const uint8_t *msg, size_t len)
{
	uint8_t *copy = malloc(len ? len : 1);

	if (copy == NULL)
		return MSCE_ENOMEM;
	if (len)
		memcpy(copy, msg, len);
	if (push(ctx, copy, len) != 0) {
		free(copy);
		return MSCE_ENOMEM;
	}
	return 0;
}

static int flush(struct link *l, char *err, size_t errlen);

static int tcp_feed(struct link *l, const uint8_t *p, size_t n, char *err,
		    size_t errlen)
{
	int open = channel_is_open(&l->ch);
	/* During the handshake the channel may answer: message 1 again after
	 * a cookie reply (the node is under load), the confirmation after
	 * message 2. Queued, and written at once if the socket takes it. */
	int rc = channel_feed(&l->ch, p, n, open ? NULL : &l->out);

	switch (rc) {
	case 0:
		if (!open && channel_is_open(&l->ch))
			l->state = LINK_OPEN;
		if (!open && link_unsent(l) > 0)
			return flush(l, err, errlen);
		return 0;
	case MSCE_EAUTH:
		return die(l, err, errlen, rc,
			   open ? "a message from the node does not decrypt"
				: "the node's handshake reply does not "
				  "authenticate: wrong node public key?");
	case MSCE_ETOOBIG:
		return die(l, err, errlen, rc,
			   "response over the limit of %u bytes",
			   LINK_MAX_RESPONSE);
	case MSCE_ENOMEM:
		return die(l, err, errlen, rc, "out of memory");
	default:
		return die(l, err, errlen, rc, "bad frame from the node: %s",
			   err_str(rc));
	}
}

/* Reads what the socket has now. */
static int read_some(struct link *l, char *err, size_t errlen)
{
	for (int i = 0; i < READS_PER_STEP && l->state != LINK_DEAD; i++) {
		ssize_t n = recv(l->fd, l->rbuf, sizeof l->rbuf, MSG_DONTWAIT);
		int rc;

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return 0;
		if (n == 0 && l->state == LINK_HANDSHAKE)
			/* The node says nothing when it refuses. */
			return die(l, err, errlen, MSCE_EAUTH,
				   "%s closed the connection during the "
				   "handshake: it does not know this client "
				   "key, or the node key or cluster name is "
				   "wrong, or the clocks differ too much, or "
				   "it could not take the connection (under "
				   "load, or failing): its log says which",
				   l->name);
		if (n == 0)
			return die(l, err, errlen, MSCE_ECLOSED,
				   "the node closed the connection");
		if (n < 0)
			return die(l, err, errlen, MSCE_ECLOSED,
				   "connection to the node lost: %s",
				   strerror(errno));
		rc = l->tcp ? tcp_feed(l, l->rbuf, (size_t)n, err, errlen)
			    : unix_feed(l, l->rbuf, (size_t)n, err, errlen);
		if (rc)
			return rc;
		if ((size_t)n < sizeof l->rbuf)
			return 0;
	}
	return l->err;
}

/* ---- sending ---- */

static int flush(struct link *l, char *err, size_t errlen)
{
	while (l->out_off < l->out.len) {
		ssize_t w = send(l->fd, l->out.data + l->out_off,
				 l->out.len - l->out_off,
				 MSG_NOSIGNAL | MSG_DONTWAIT);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		if (w < 0) {
			int e = errno;
			/* The node may have answered before it closed: take
			 * what it sent (up to its end of stream) so that
			 * those answers are delivered, not lost with the
			 * connection. */
			if (l->state == LINK_OPEN && !l->draining) {
				l->draining = 1;
				for (int i = 0; i < 16 && l->state == LINK_OPEN;
				     i++)
					read_some(l, NULL, 0);
				l->draining = 0;
			}
			return die(l, err, errlen, MSCE_ECLOSED,
				   "connection to the node lost: %s",
				   strerror(e));
		}
		l->out_off += (size_t)w;
	}
	if (l->out_off == l->out.len) {
		l->out.len = 0;
		l->out_off = 0;
	} else if (l->out_off > l->out.len / 2) {
		memmove(l->out.data, l->out.data + l->out_off,
			l->out.len - l->out_off);
		l->out.len -= l->out_off;
		l->out_off = 0;
	}
	return 0;
}

int link_send_unchecked(struct link *l, const uint8_t *msg, size_t len,
			char *err, size_t errlen)
{
	int rc;

	if (l->err)
		return report(err, errlen, l->err, "%s", l->errmsg);
	if (l->state != LINK_OPEN)
		return report(err, errlen, MSCE_EBUSY,
			      "not connected to the node yet");
	if (!l->tcp) {
		uint8_t hdr[4] = {(uint8_t)(len >> 24), (uint8_t)(len >> 16),
				  (uint8_t)(len >> 8), (uint8_t)len};
		size_t need = l->out.len + 4 + len;
		if (need > l->out.cap) {
			size_t cap = l->out.cap ? l->out.cap : 4096;
			uint8_t *p;
			while (cap < need)
				cap *= 2;
			if ((p = realloc(l->out.data, cap)) == NULL)
				return report(err, errlen, MSCE_ENOMEM,
					      "out of memory");
			l->out.data = p;
			l->out.cap = cap;
		}
		memcpy(l->out.data + l->out.len, hdr, 4);
		if (len)
			memcpy(l->out.data + l->out.len + 4, msg, len);
		l->out.len = need;
	} else {
		uint64_t now = clock_ms(CLOCK_REALTIME);
		size_t before = l->out.len;

		switch (channel_rekey_due(&l->ch, now)) {
		case CHANNEL_KEEP:
			break;
		case CHANNEL_REKEY:
			if ((rc = channel_rekey(&l->ch, now, &l->out)))
				return die(l, err, errlen, rc,
					   "rekey failed: %s", err_str(rc));
			break;
		case CHANNEL_RENEW:
			return die(l, err, errlen, MSCE_ECLOSED,
				   "session keys used up: reconnect");
		}
		rc = channel_send(&l->ch, len ? msg : NULL, len, &l->out);
		if (rc == MSCE_ENOMEM || rc == MSCE_ETOOBIG) {
			/* Nothing was appended; the channel lives on. A
			 * rekey message just queued would be lost, though. */
			if (l->out.len != before)
				return die(l, err, errlen, rc,
					   "cannot send: %s", err_str(rc));
			return report(err, errlen, rc, "cannot send: %s",
				      err_str(rc));
		}
		if (rc)
			return die(l, err, errlen, rc, "cannot send: %s",
				   err_str(rc));
	}
	return flush(l, err, errlen);
}

int link_send(struct link *l, const uint8_t *msg, size_t len, char *err,
	      size_t errlen)
{
	if (l->err)
		return report(err, errlen, l->err, "%s", l->errmsg);
	if (len == 0 || msg == NULL)
		return report(err, errlen, MSCE_EINVAL, "empty message");
	if (len > MSCE_MAX_MESSAGE)
		return report(err, errlen, MSCE_ETOOBIG,
			      "request of %zu bytes over the limit of %u bytes",
			      len, MSCE_MAX_MESSAGE);
	return link_send_unchecked(l, msg, len, err, errlen);
}

/* ---- connecting ---- */

int link_open_unix(const char *path, struct link **out, char *err,
		   size_t errlen)
{
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	struct link *l;
	int saved;

	*out = NULL;
	if (path == NULL || path[0] == '\0')
		return report(err, errlen, MSCE_EINVAL, "no socket path");
	if (strlen(path) >= sizeof a.sun_path)
		return report(err, errlen, MSCE_EINVAL,
			      "socket path too long: %s", path);
	memcpy(a.sun_path, path, strlen(path) + 1);
	if ((l = link_new(0, path)) == NULL)
		return report(err, errlen, MSCE_ENOMEM, "out of memory");
	/* A unix connect completes (or fails) at once. */
	l->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (l->fd < 0 || connect(l->fd, (struct sockaddr *)&a, sizeof a) ||
	    fcntl(l->fd, F_SETFL, fcntl(l->fd, F_GETFL) | O_NONBLOCK)) {
		saved = errno;
		link_close(l);
		/* Not the node's fault: the socket's permissions keep us out. */
		return report(err, errlen,
			      saved == EACCES || saved == EPERM ? MSCE_EPERM
								: MSCE_EUNAVAIL,
			      "cannot reach the node at %s: %s", path,
			      strerror(saved));
	}
	l->state = LINK_OPEN;
	*out = l;
	return 0;
}

/* The socket is connected: start the handshake. */
static int connected(struct link *l, char *err, size_t errlen)
{
	int one = 1, rc;

	/* Requests are small and often answered one by one: no Nagle. */
	setsockopt(l->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	freeaddrinfo(l->ai_list);
	l->ai_list = l->ai_next = NULL;
	l->state = LINK_HANDSHAKE;
	if ((rc = channel_start(&l->ch, &l->out)))
		return die(l, err, errlen, rc, "cannot start the handshake: %s",
			   err_str(rc));
	return flush(l, err, errlen);
}

/* Starts a connect to the next address; gives up when none is left. */
static int try_next(struct link *l, char *err, size_t errlen)
{
	while (l->ai_next != NULL) {
		struct addrinfo *ai = l->ai_next;

		l->ai_next = ai->ai_next;
		if (l->fd >= 0)
			close(l->fd);
		l->fd = socket(ai->ai_family,
			       ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK,
			       ai->ai_protocol);
		if (l->fd < 0) {
			l->last_errno = errno;
			continue;
		}
		if (connect(l->fd, ai->ai_addr, ai->ai_addrlen) == 0)
			return connected(l, err, errlen);
		if (errno == EINPROGRESS) {
			l->state = LINK_CONNECTING;
			return 0;
		}
		l->last_errno = errno;
	}
	return die(l, err, errlen,
		   l->last_errno == ETIMEDOUT ? MSCE_ETIMEOUT : MSCE_EUNAVAIL,
		   "cannot connect to %s: %s", l->name,
		   strerror(l->last_errno));
}

int link_open_tcp(const char *hostport, const uint8_t *client_sk,
		  const uint8_t server_pk[32], const char *cluster,
		  uint64_t timeout_ms, struct link **out, char *err,
		  size_t errlen)
{
	struct addrinfo hints = {0};
	struct noise_keypair kp = {0};
	struct channel_config cc = {0};
	uint8_t prologue[CHANNEL_PROLOGUE_MAX];
	size_t plen;
	char host[256], portstr[8];
	struct link *l;
	struct err e;
	int port, rc;

	*out = NULL;
	if (hostport == NULL || client_sk == NULL || server_pk == NULL ||
	    cluster == NULL)
		return report(err, errlen, MSCE_EINVAL, "missing argument");
	if (config_parse_addr(hostport, host, sizeof host, &port, &e))
		return report(err, errlen, MSCE_EINVAL, "%s", e.msg);
	if (channel_prologue(cluster, prologue, sizeof prologue, &plen))
		return report(err, errlen, MSCE_EINVAL,
			      "bad cluster name \"%s\" (1..%d printable "
			      "characters, no space)",
			      cluster, CHANNEL_MAX_CLUSTER);
	if (sodium_init() < 0)
		return report(err, errlen, MSCE_ENOMEM,
			      "libsodium init failed");
	if ((l = link_new(1, hostport)) == NULL)
		return report(err, errlen, MSCE_ENOMEM, "out of memory");
	l->timeout_ms = timeout_ms;
	l->deadline = timeout_ms ? link_now_ms() + timeout_ms : 0;

	snprintf(portstr, sizeof portstr, "%d", port);
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICSERV;
	if ((rc = getaddrinfo(host, portstr, &hints, &l->ai_list)) != 0) {
		link_close(l);
		return report(err, errlen, MSCE_EUNAVAIL,
			      "cannot resolve %s: %s", host, gai_strerror(rc));
	}
	l->ai_next = l->ai_list;

	/* The secret only passes through sodium_malloc memory: kp here, then
	 * the handshake's own copy. */
	if ((rc = noise_keypair_from_private(&kp, client_sk))) {
		link_close(l);
		return report(err, errlen, rc, "cannot load the client key: %s",
			      err_str(rc));
	}
	cc.role = NOISE_INITIATOR;
	cc.cluster = cluster;
	cc.local = &kp;
	cc.remote_key = server_pk;
	cc.max_message = LINK_MAX_RESPONSE;
	cc.cb.message = on_channel_message;
	cc.cb.ctx = l;
	rc = channel_init(&l->ch, &cc, link_next_timestamp());
	noise_keypair_destroy(&kp);
	if (rc) {
		link_close(l);
		return report(err, errlen, rc, "cannot start the handshake: %s",
			      err_str(rc));
	}
	if ((rc = try_next(l, err, errlen)) != 0) {
		link_close(l);
		return rc;
	}
	*out = l;
	return 0;
}

int link_step(struct link *l, int ready, char *err, size_t errlen)
{
	int rc;

	if (l->err)
		return report(err, errlen, l->err, "%s", l->errmsg);
	if (l->state == LINK_CONNECTING && (ready & LINK_WANT_WRITE)) {
		int soerr = 0;
		socklen_t len = sizeof soerr;

		if (getsockopt(l->fd, SOL_SOCKET, SO_ERROR, &soerr, &len) != 0)
			soerr = errno;
		if (soerr == 0)
			rc = connected(l, err, errlen);
		else {
			l->last_errno = soerr;
			rc = try_next(l, err, errlen);
		}
		if (rc)
			return rc;
	}
	if (l->state == LINK_HANDSHAKE || l->state == LINK_OPEN) {
		if (link_unsent(l) && (rc = flush(l, err, errlen)))
			return rc;
		if ((ready & LINK_WANT_READ) && (rc = read_some(l, err, errlen)))
			return rc;
	}
	if (l->state != LINK_OPEN && l->deadline &&
	    link_now_ms() >= l->deadline)
		return die(l, err, errlen, MSCE_ETIMEOUT,
			   l->state == LINK_CONNECTING
				   ? "cannot connect to %s within %llu ms"
				   : "no handshake reply from %s within %llu ms",
			   l->name, (unsigned long long)l->timeout_ms);
	return 0;
}
