/* libmsce transports on blocking POSIX sockets; see transport.h.
 *
 * Unix: each message is a 4-byte big-endian length and the message; a
 * response length is checked against TRANSPORT_MAX_RESPONSE before
 * anything is allocated.
 *
 * TCP: connect (every address the name resolves to, in turn), then the
 * Noise IK handshake as the initiator (common/channel.h, docs/PROTOCOL.md
 * "Secure channel"), all within TRANSPORT_CONNECT_TIMEOUT_MS. The client's
 * secret key is copied into sodium_malloc memory only for channel_init,
 * which keeps its own copy there until the handshake splits; channel_destroy
 * on close wipes the session keys. Each application message of the channel
 * is one message of the transport.
 *
 * Receiving: bytes read from the socket go through the framing (unix) or
 * the channel (TCP), and complete messages wait in a queue, oldest first,
 * for transport_recv. A partial message survives a timeout. Any failure of
 * the connection itself (closed, bad frame, failed decryption) is sticky:
 * every later call reports it, and the caller reconnects. */
#include "transport.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
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

#include "channel.h"
#include "config.h"
#include "error.h"

#define TRANSPORT_MAX_REQUEST (4u << 20)   /* the node's request limit */
#define TRANSPORT_MAX_RESPONSE (64u << 20) /* largest response accepted */
#define TRANSPORT_CONNECT_TIMEOUT_MS 5000  /* connect and handshake */
#define READ_BUF_LEN (64u << 10)

enum transport_kind { TRANSPORT_UNIX, TRANSPORT_TCP };

struct rxmsg {
	struct rxmsg *next;
	uint8_t *data; /* malloc'd, never NULL */
	size_t len;
};

struct transport {
	int fd;
	enum transport_kind kind;
	int err;	  /* sticky failure of the connection, 0 if none */
	uint64_t send_timeout_ms; /* 0 = a send may block forever */
	char errmsg[256]; /* what it was */
	struct rxmsg *head, *tail; /* complete messages, oldest first */
	/* unix framing of the message being read */
	uint8_t hdr[4];
	size_t hdr_have;
	uint8_t *msg;
	size_t msg_len, msg_have;
	/* TCP */
	struct channel ch;
	struct channel_buf out;
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

/* Marks t dead with code and the message (copied into err too). */
static int die(struct transport *t, char *err, size_t errlen, int code,
	       const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static int die(struct transport *t, char *err, size_t errlen, int code,
	       const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(t->errmsg, sizeof(t->errmsg), fmt, ap);
	va_end(ap);
	t->err = code;
	return report(err, errlen, code, "%s", t->errmsg);
}

static uint64_t clock_ms(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* The timestamp for message 1: unix ms, but never the same twice in this
 * process, since the node refuses a timestamp not above the last one it
 * took from the key (docs/PROTOCOL.md "Handshake"). */
static uint64_t next_timestamp(void)
{
	static _Atomic uint64_t last;
	uint64_t now = clock_ms(CLOCK_REALTIME), prev, ts;

	prev = atomic_load(&last);
	do {
		ts = now > prev ? now : prev + 1;
	} while (!atomic_compare_exchange_weak(&last, &prev, ts));
	return ts;
}

/* Waits until fd is ready for events or deadline (CLOCK_MONOTONIC ms, 0 =
 * none). Returns 1 when ready, 0 on timeout, -1 on error (errno). */
static int wait_fd(int fd, short events, uint64_t deadline)
{
	struct pollfd p = {.fd = fd, .events = events};
	int rc;

	for (;;) {
		int ms = -1;

		if (deadline) {
			uint64_t now = clock_ms(CLOCK_MONOTONIC);

			if (now >= deadline)
				return 0;
			ms = deadline - now > 60000 ? 60000
						    : (int)(deadline - now);
		}
		rc = poll(&p, 1, ms);
		if (rc > 0)
			return 1;
		if (rc < 0 && errno != EINTR)
			return -1;
	}
}

/* Sends all n bytes; waits until deadline (monotonic ms, 0 = none) for
 * room in the socket. Returns 0, ETIMEDOUT or the errno of the failure. */
static int send_until(int fd, const uint8_t *p, size_t n, uint64_t deadline)
{
	while (n > 0) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			int rc = wait_fd(fd, POLLOUT, deadline);

			if (rc == 0)
				return ETIMEDOUT;
			if (rc < 0)
				return errno;
			continue;
		}
		if (w < 0)
			return errno;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static int send_all(int fd, const uint8_t *p, size_t n)
{
	return send_until(fd, p, n, 0);
}

/* Queues a copy of a complete message. */
static int push(struct transport *t, const uint8_t *msg, size_t len)
{
	struct rxmsg *m = malloc(sizeof(*m));

	if (m == NULL || (m->data = malloc(len ? len : 1)) == NULL) {
		free(m);
		return MSCE_ENOMEM;
	}
	if (len)
		memcpy(m->data, msg, len);
	m->len = len;
	m->next = NULL;
	if (t->tail)
		t->tail->next = m;
	else
		t->head = m;
	t->tail = m;
	return 0;
}

static int pop(struct transport *t, uint8_t **msg, size_t *len)
{
	struct rxmsg *m = t->head;

	if (m == NULL)
		return 0;
	t->head = m->next;
	if (t->head == NULL)
		t->tail = NULL;
	*msg = m->data;
	*len = m->len;
	free(m);
	return 1;
}

static struct transport *transport_new(enum transport_kind kind)
{
	struct transport *t = calloc(1, sizeof(*t));

	if (t == NULL)
		return NULL;
	t->fd = -1;
	t->kind = kind;
	return t;
}

/* ---- receiving ---- */

/* The unix framing: a length, checked before allocating, and the body. */
static int unix_feed(struct transport *t, const uint8_t *p, size_t left,
		     char *err, size_t errlen)
{
	while (left > 0) {
		size_t n;

		if (t->hdr_have < 4) {
			n = 4 - t->hdr_have < left ? 4 - t->hdr_have : left;
			memcpy(t->hdr + t->hdr_have, p, n);
			t->hdr_have += n;
			p += n;
			left -= n;
			if (t->hdr_have < 4)
				break;
			t->msg_len = (size_t)t->hdr[0] << 24 |
				     (size_t)t->hdr[1] << 16 |
				     (size_t)t->hdr[2] << 8 | t->hdr[3];
			if (t->msg_len > TRANSPORT_MAX_RESPONSE)
				return die(t, err, errlen, MSCE_EPROTO,
					   "response of %zu bytes over the "
					   "limit of %u",
					   t->msg_len, TRANSPORT_MAX_RESPONSE);
			t->msg = malloc(t->msg_len ? t->msg_len : 1);
			if (t->msg == NULL)
				return die(t, err, errlen, MSCE_ENOMEM,
					   "out of memory for a response of "
					   "%zu bytes",
					   t->msg_len);
			t->msg_have = 0;
		}
		n = t->msg_len - t->msg_have < left ? t->msg_len - t->msg_have
						    : left;
		memcpy(t->msg + t->msg_have, p, n);
		t->msg_have += n;
		p += n;
		left -= n;
		if (t->msg_have == t->msg_len) {
			struct rxmsg *m = malloc(sizeof(*m));

			if (m == NULL)
				return die(t, err, errlen, MSCE_ENOMEM,
					   "out of memory");
			m->data = t->msg;
			m->len = t->msg_len;
			m->next = NULL;
			if (t->tail)
				t->tail->next = m;
			else
				t->head = m;
			t->tail = m;
			t->msg = NULL;
			t->hdr_have = 0;
		}
	}
	return 0;
}

static int on_channel_message(void *ctx, const uint8_t *msg, size_t len)
{
	return push(ctx, msg, len);
}

static int tcp_feed(struct transport *t, const uint8_t *p, size_t n, char *err,
		    size_t errlen)
{
	int open = channel_is_open(&t->ch);
	int rc = channel_feed(&t->ch, p, n, NULL);

	switch (rc) {
	case 0:
		return 0;
	case MSCE_EAUTH:
		return die(t, err, errlen, rc,
			   open ? "a message from the node does not decrypt"
				: "the node's handshake reply does not "
				  "authenticate: wrong node public key?");
	case MSCE_ETOOBIG:
		return die(t, err, errlen, rc,
			   "response over the limit of %u bytes",
			   TRANSPORT_MAX_RESPONSE);
	case MSCE_ENOMEM:
		return die(t, err, errlen, rc, "out of memory");
	default:
		return die(t, err, errlen, rc, "bad frame from the node: %s",
			   err_str(rc));
	}
}

/* Reads what the socket has, waiting until deadline (monotonic ms, 0 =
 * none), and feeds it. Returns 0, MSCE_ETIMEOUT (t still usable) or the
 * sticky failure. */
static int read_some(struct transport *t, uint64_t deadline, char *err,
		     size_t errlen)
{
	ssize_t n;
	int rc;

	rc = wait_fd(t->fd, POLLIN, deadline);
	if (rc == 0)
		return report(err, errlen, MSCE_ETIMEOUT,
			      "no answer from the node in time");
	if (rc < 0)
		return die(t, err, errlen, MSCE_EIO, "poll: %s",
			   strerror(errno));
	do
		n = recv(t->fd, t->rbuf, sizeof(t->rbuf), 0);
	while (n < 0 && errno == EINTR);
	if (n == 0)
		return die(t, err, errlen, MSCE_ECLOSED,
			   "the node closed the connection");
	if (n < 0)
		return die(t, err, errlen, MSCE_ECLOSED,
			   "connection to the node lost: %s", strerror(errno));
	if (t->kind == TRANSPORT_UNIX)
		return unix_feed(t, t->rbuf, (size_t)n, err, errlen);
	return tcp_feed(t, t->rbuf, (size_t)n, err, errlen);
}

/* ---- connecting ---- */

int transport_unix(const char *path, struct transport **out, char *err,
		   size_t errlen)
{
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	struct transport *t;
	int saved;

	*out = NULL;
	if (path == NULL || path[0] == '\0')
		return report(err, errlen, MSCE_EINVAL, "no socket path");
	if (strlen(path) >= sizeof(a.sun_path))
		return report(err, errlen, MSCE_EINVAL,
			      "socket path too long: %s", path);
	memcpy(a.sun_path, path, strlen(path) + 1);
	if ((t = transport_new(TRANSPORT_UNIX)) == NULL)
		return report(err, errlen, MSCE_ENOMEM, "out of memory");
	t->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (t->fd < 0 || connect(t->fd, (struct sockaddr *)&a, sizeof(a))) {
		saved = errno;
		transport_close(t);
		/* Not the node's fault: the socket's permissions keep us out. */
		return report(err, errlen,
			      saved == EACCES || saved == EPERM ? MSCE_EPERM
								: MSCE_EUNAVAIL,
			      "cannot reach the node at %s: %s", path,
			      strerror(saved));
	}
	*out = t;
	return 0;
}

/* Connects to one address before deadline; returns the blocking socket or
 * -1 with errno set. */
static int connect_one(const struct addrinfo *ai, uint64_t deadline)
{
	int fd, rc, soerr = 0, one = 1;
	socklen_t len = sizeof(soerr);

	fd = socket(ai->ai_family,
		    ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK,
		    ai->ai_protocol);
	if (fd < 0)
		return -1;
	if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
		if (errno != EINPROGRESS)
			goto fail;
		rc = wait_fd(fd, POLLOUT, deadline);
		if (rc == 0)
			errno = ETIMEDOUT;
		if (rc <= 0)
			goto fail;
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) != 0)
			goto fail;
		if (soerr) {
			errno = soerr;
			goto fail;
		}
	}
	if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK) != 0)
		goto fail;
	/* Requests are small and answered one by one: no Nagle delay. */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return fd;
fail:
	rc = errno;
	close(fd);
	errno = rc;
	return -1;
}

int transport_tcp(const char *hostport, const uint8_t *client_sk,
		  const uint8_t server_pk[32], const char *cluster,
		  struct transport **out, char *err, size_t errlen)
{
	struct addrinfo hints = {0}, *res = NULL, *ai;
	struct noise_keypair kp = {0};
	struct channel_config cc = {0};
	uint8_t prologue[CHANNEL_PROLOGUE_MAX];
	size_t plen;
	uint64_t deadline;
	char host[256], portstr[8];
	struct transport *t;
	struct err e;
	int port, rc, saved = 0;

	*out = NULL;
	if (hostport == NULL || client_sk == NULL || server_pk == NULL ||
	    cluster == NULL)
		return report(err, errlen, MSCE_EINVAL, "missing argument");
	if (config_parse_addr(hostport, host, sizeof(host), &port, &e))
		return report(err, errlen, MSCE_EINVAL, "%s", e.msg);
	if (channel_prologue(cluster, prologue, sizeof(prologue), &plen))
		return report(err, errlen, MSCE_EINVAL,
			      "bad cluster name \"%s\" (1..%d printable "
			      "characters, no space)",
			      cluster, CHANNEL_MAX_CLUSTER);
	if (sodium_init() < 0)
		return report(err, errlen, MSCE_ENOMEM,
			      "libsodium init failed");
	deadline = clock_ms(CLOCK_MONOTONIC) + TRANSPORT_CONNECT_TIMEOUT_MS;

	snprintf(portstr, sizeof(portstr), "%d", port);
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICSERV;
	if ((rc = getaddrinfo(host, portstr, &hints, &res)) != 0)
		return report(err, errlen, MSCE_EUNAVAIL,
			      "cannot resolve %s: %s", host, gai_strerror(rc));
	if ((t = transport_new(TRANSPORT_TCP)) == NULL) {
		freeaddrinfo(res);
		return report(err, errlen, MSCE_ENOMEM, "out of memory");
	}
	for (ai = res; ai != NULL && t->fd < 0; ai = ai->ai_next)
		if ((t->fd = connect_one(ai, deadline)) < 0)
			saved = errno;
	freeaddrinfo(res);
	if (t->fd < 0) {
		transport_close(t);
		return report(
		    err, errlen,
		    saved == ETIMEDOUT ? MSCE_ETIMEOUT : MSCE_EUNAVAIL,
		    "cannot connect to %s: %s", hostport, strerror(saved));
	}

	/* The secret only passes through sodium_malloc memory: kp here, then
	 * the handshake's own copy. */
	if ((rc = noise_keypair_from_private(&kp, client_sk))) {
		transport_close(t);
		return report(err, errlen, rc, "cannot load the client key: %s",
			      err_str(rc));
	}
	cc.role = NOISE_INITIATOR;
	cc.cluster = cluster;
	cc.local = &kp;
	cc.remote_key = server_pk;
	cc.max_message = TRANSPORT_MAX_RESPONSE;
	cc.cb.message = on_channel_message;
	cc.cb.ctx = t;
	rc = channel_init(&t->ch, &cc, next_timestamp());
	noise_keypair_destroy(&kp);
	if (rc == 0)
		rc = channel_start(&t->ch, &t->out);
	if (rc) {
		transport_close(t);
		return report(err, errlen, rc, "cannot start the handshake: %s",
			      err_str(rc));
	}
	if ((rc = send_all(t->fd, t->out.data, t->out.len))) {
		transport_close(t);
		return report(err, errlen, MSCE_ECLOSED,
			      "cannot send the handshake to %s: %s", hostport,
			      strerror(rc));
	}
	t->out.len = 0;
	while (!channel_is_open(&t->ch)) {
		rc = read_some(t, deadline, err, errlen);
		if (rc == MSCE_ECLOSED)
			/* The node says nothing when it refuses. */
			rc = report(err, errlen, MSCE_EAUTH,
				    "%s closed the connection during the "
				    "handshake: it does not know this client "
				    "key, or the node key or cluster name is "
				    "wrong, or the clocks differ too much",
				    hostport);
		else if (rc == MSCE_ETIMEOUT)
			report(err, errlen, rc,
			       "no handshake reply from %s within %d ms",
			       hostport, TRANSPORT_CONNECT_TIMEOUT_MS);
		if (rc) {
			transport_close(t);
			return rc;
		}
	}
	*out = t;
	return 0;
}

/* ---- sending ---- */

/* Sends msg without the size checks of transport_send. */
static int send_msg(struct transport *t, const uint8_t *msg, size_t len,
		    char *err, size_t errlen)
{
	const uint8_t *p;
	uint8_t *buf = NULL;
	size_t n;
	int rc;

	if (t->kind == TRANSPORT_UNIX) {
		if ((buf = malloc(4 + len)) == NULL)
			return report(err, errlen, MSCE_ENOMEM,
				      "out of memory");
		buf[0] = (uint8_t)(len >> 24);
		buf[1] = (uint8_t)(len >> 16);
		buf[2] = (uint8_t)(len >> 8);
		buf[3] = (uint8_t)len;
		if (len)
			memcpy(buf + 4, msg, len);
		p = buf;
		n = 4 + len;
	} else {
		uint64_t now = clock_ms(CLOCK_REALTIME);

		t->out.len = 0;
		switch (channel_rekey_due(&t->ch, now)) {
		case CHANNEL_KEEP:
			break;
		case CHANNEL_REKEY:
			if ((rc = channel_rekey(&t->ch, now, &t->out)))
				return die(t, err, errlen, rc,
					   "rekey failed: %s", err_str(rc));
			break;
		case CHANNEL_RENEW:
			return die(t, err, errlen, MSCE_ECLOSED,
				   "session keys used up: reconnect");
		}
		rc = channel_send(&t->ch, len ? msg : NULL, len, &t->out);
		if (rc == MSCE_ENOMEM || rc == MSCE_ETOOBIG) {
			/* Nothing was appended; the channel lives on. A
			 * pending rekey message would be lost, though. */
			if (t->out.len)
				return die(t, err, errlen, rc,
					   "cannot send: %s", err_str(rc));
			return report(err, errlen, rc, "cannot send: %s",
				      err_str(rc));
		}
		if (rc)
			return die(t, err, errlen, rc, "cannot send: %s",
				   err_str(rc));
		p = t->out.data;
		n = t->out.len;
	}
	rc = send_until(t->fd, p, n,
		      t->send_timeout_ms
			  ? clock_ms(CLOCK_MONOTONIC) + t->send_timeout_ms
			  : 0);
	free(buf);
	t->out.len = 0;
	/* Part of a message may have gone: the stream is unusable. */
	if (rc == ETIMEDOUT)
		return die(t, err, errlen, MSCE_ETIMEOUT,
			   "the node took no data for %llu ms",
			   (unsigned long long)t->send_timeout_ms);
	if (rc)
		return die(t, err, errlen, MSCE_ECLOSED,
			   "connection to the node lost: %s", strerror(rc));
	return 0;
}

int transport_send(struct transport *t, const uint8_t *msg, size_t len,
		   char *err, size_t errlen)
{
	if (t->err)
		return report(err, errlen, MSCE_ECLOSED, "%s", t->errmsg);
	if (len == 0 || msg == NULL)
		return report(err, errlen, MSCE_EINVAL, "empty message");
	if (len > TRANSPORT_MAX_REQUEST)
		return report(err, errlen, MSCE_ETOOBIG,
			      "request of %zu bytes over the limit of %u bytes",
			      len, TRANSPORT_MAX_REQUEST);
	return send_msg(t, msg, len, err, errlen);
}

int transport_recv(struct transport *t, uint8_t **msg, size_t *len,
		   uint64_t timeout_ms, char *err, size_t errlen)
{
	uint64_t deadline =
	    timeout_ms ? clock_ms(CLOCK_MONOTONIC) + timeout_ms : 0;
	int rc;

	*msg = NULL;
	*len = 0;
	for (;;) {
		/* What arrived before a failure is still delivered. */
		if (pop(t, msg, len))
			return 0;
		if (t->err)
			return report(err, errlen, t->err, "%s", t->errmsg);
		if ((rc = read_some(t, deadline, err, errlen)) &&
		    t->head == NULL)
			return rc;
	}
}

void transport_set_send_timeout(struct transport *t, uint64_t ms)
{
	if (t != NULL)
		t->send_timeout_ms = ms;
}

void transport_close(struct transport *t)
{
	uint8_t *m;
	size_t n;

	if (t == NULL)
		return;
	if (t->fd >= 0)
		close(t->fd);
	channel_destroy(&t->ch); /* wipes the keys */
	channel_buf_free(&t->out);
	while (pop(t, &m, &n))
		free(m);
	free(t->msg);
	free(t);
}
