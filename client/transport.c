/* SPDX-License-Identifier: Apache-2.0 */
/* libmsce's blocking transport: a link (link.c) driven with poll() until
 * what the caller asked for is done; see transport.h.
 *
 * Unix: each message is a 4-byte big-endian length and the message. TCP:
 * connect and the Noise IK handshake as the initiator, within the connect
 * timeout, then one channel message per message. A partial message
 * survives a receive timeout. Any failure of the connection itself is
 * sticky: every later call reports it, and the caller reconnects. */
#include "transport.h"

#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "error.h"
#include "link.h"

#define TRANSPORT_CONNECT_TIMEOUT_MS 5000 /* connect and handshake */

struct transport {
	struct link *l;
	int fd;
};

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

static __attribute__((unused)) uint64_t clock_ms(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* The tests take handshake timestamps from here too. */
static __attribute__((unused)) uint64_t next_timestamp(void)
{
	return link_next_timestamp();
}

/* Writes all of p on a blocking socket (tests send raw frames with it). */
static __attribute__((unused)) int send_all(int fd, const uint8_t *p,
					    size_t n)
{
	while (n > 0) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			struct pollfd pf = {.fd = fd, .events = POLLOUT};
			poll(&pf, 1, 1000);
			continue;
		}
		if (w < 0)
			return errno;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* One poll and one link step, waiting until deadline (monotonic ms, 0 =
 * none) at most: 0, MSCE_ETIMEOUT (the link still usable) or the sticky
 * failure. */
static int wait_step(struct transport *t, uint64_t deadline, char *err,
		     size_t errlen)
{
	struct link *l = t->l;
	int wants = link_wants(l), ready = 0, ms = -1, rc;
	uint64_t due = link_deadline(l);
	uint64_t until = deadline;
	struct pollfd p = {.fd = link_fd(l)};

	if (due && (!until || due < until))
		until = due;
	if (until) {
		uint64_t now = link_now_ms();
		if (now >= until) {
			/* The link checks its own connect deadline. */
			if ((rc = link_step(l, 0, err, errlen)) != 0)
				return rc;
			return deadline && now >= deadline ? MSCE_ETIMEOUT : 0;
		}
		ms = until - now > 60000 ? 60000 : (int)(until - now);
	}
	p.events = (short)((wants & LINK_WANT_READ ? POLLIN : 0) |
			   (wants & LINK_WANT_WRITE ? POLLOUT : 0));
	rc = poll(&p, 1, ms);
	if (rc < 0 && errno != EINTR)
		return report(err, errlen, MSCE_EIO, "poll: %s",
			      strerror(errno));
	if (rc > 0) {
		if (p.revents & (POLLIN | POLLHUP | POLLERR))
			ready |= LINK_WANT_READ;
		if (p.revents & (POLLOUT | POLLHUP | POLLERR))
			ready |= LINK_WANT_WRITE;
	}
	return link_step(l, ready, err, errlen);
}

static int wrap(struct link *l, struct transport **out, char *err,
		size_t errlen)
{
	struct transport *t = calloc(1, sizeof *t);

	if (t == NULL) {
		link_close(l);
		return report(err, errlen, MSCE_ENOMEM, "out of memory");
	}
	t->l = l;
	t->fd = link_fd(l);
	*out = t;
	return 0;
}

int transport_unix(const char *path, struct transport **out, char *err,
		   size_t errlen)
{
	struct link *l;
	int rc;

	*out = NULL;
	if ((rc = link_open_unix(path, &l, err, errlen)) != 0)
		return rc;
	return wrap(l, out, err, errlen);
}

int transport_tcp_timeout(const char *hostport, const uint8_t *client_sk,
			  const uint8_t server_pk[32], const char *cluster,
			  uint64_t timeout_ms, struct transport **out,
			  char *err, size_t errlen)
{
	struct transport *t = NULL;
	struct link *l;
	int rc;

	*out = NULL;
	if ((rc = link_open_tcp(hostport, client_sk, server_pk, cluster,
				timeout_ms, &l, err, errlen)) != 0)
		return rc;
	if ((rc = wrap(l, &t, err, errlen)) != 0)
		return rc;
	while (!link_is_open(l)) {
		if ((rc = wait_step(t, 0, err, errlen)) != 0) {
			transport_close(t);
			return rc;
		}
	}
	t->fd = link_fd(l);
	*out = t;
	return 0;
}

int transport_tcp(const char *hostport, const uint8_t *client_sk,
		  const uint8_t server_pk[32], const char *cluster,
		  struct transport **out, char *err, size_t errlen)
{
	return transport_tcp_timeout(hostport, client_sk, server_pk, cluster,
				     TRANSPORT_CONNECT_TIMEOUT_MS, out, err,
				     errlen);
}

/* Waits until everything queued is written. */
static int drain(struct transport *t, char *err, size_t errlen)
{
	int rc;

	while (link_unsent(t->l))
		if ((rc = wait_step(t, 0, err, errlen)) != 0)
			return rc;
	return 0;
}

/* Sends msg without the size check of transport_send. */
static __attribute__((unused)) int send_msg(struct transport *t,
					    const uint8_t *msg, size_t len,
					    char *err, size_t errlen)
{
	int rc = link_send_unchecked(t->l, msg, len, err, errlen);
	return rc ? rc : drain(t, err, errlen);
}

int transport_send(struct transport *t, const uint8_t *msg, size_t len,
		   char *err, size_t errlen)
{
	int rc = link_send(t->l, msg, len, err, errlen);
	return rc ? rc : drain(t, err, errlen);
}

int transport_recv(struct transport *t, uint8_t **msg, size_t *len,
		   uint64_t timeout_ms, char *err, size_t errlen)
{
	uint64_t deadline = timeout_ms ? link_now_ms() + timeout_ms : 0;
	int rc;

	*msg = NULL;
	*len = 0;
	for (;;) {
		/* What arrived before a failure is still delivered. */
		if (link_pop(t->l, msg, len))
			return 0;
		if (link_error(t->l))
			return report(err, errlen, link_error(t->l), "%s",
				      link_errmsg(t->l));
		rc = wait_step(t, deadline, err, errlen);
		if (rc == MSCE_ETIMEOUT && link_error(t->l) == 0)
			return report(err, errlen, rc,
				      "no answer from the node in time");
		if (rc && link_error(t->l) == 0)
			return rc;
	}
}

int transport_hung_up(struct transport *t)
{
	struct pollfd p = {.fd = link_fd(t->l), .events = POLLIN};

	if (link_error(t->l))
		return 1;
	/* Readable while idle: the node closed (or sent something we did not
	 * ask for); a step finds out which. */
	if (poll(&p, 1, 0) > 0 &&
	    link_step(t->l, LINK_WANT_READ, NULL, 0) != 0)
		return 1;
	return 0;
}


void transport_close(struct transport *t)
{
	if (t == NULL)
		return;
	link_close(t->l);
	free(t);
}
