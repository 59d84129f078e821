/* SPDX-License-Identifier: Apache-2.0 */
/* msce-probe: a hostile client for the cluster tests.
 *
 * It connects to a node's peer port and misbehaves in one chosen way, then
 * watches how the node reacts. The expected reaction is always the same:
 * the node closes the TCP connection (without answering message 1 when the
 * initiator should not be let in) and goes on serving its peers. The probe
 * never waits longer than --timeout-ms for any step, so a node that hangs
 * on bad input fails the test instead of hanging it.
 *
 * Modes (docs/PROTOCOL.md "Secure channel" says what each violates):
 *   valid      a correct handshake as the configured peer --key (sanity
 *              check of the probe and of the test's keys)
 *   wrong-key  a correct handshake with a fresh key the node does not know
 *   random     random bytes; then a message-1-sized frame of random bytes
 *   truncated  the first half of message 1, then wait for the node to
 *              give up (its handshake timeout)
 *   oversized  a 65535 length prefix before the handshake; then, as the
 *              configured peer, an application message over 4 MiB
 *   corrupt    as the configured peer, a transport frame with one bit
 *              flipped
 *   replay     as the configured peer, a full handshake, then the same
 *              message 1 bytes again on a new connection
 *   unconfirmed  as the configured peer, a message 1 the node has not seen
 *              (what a replay of a message caught on the way looks like):
 *              message 2 may come back, but the probe never confirms, so
 *              the node must close the connection (its handshake timeout)
 *              without giving it the peer's session
 *   forge      as the configured peer --peer-id (an insider with a stolen
 *              center key): its Hello, then a change in the name of
 *              origin --origin, signed with the probe's own key: the node
 *              must refuse it and close the link
 *   snapshot   as the configured peer: its Hello, then a snapshot chunk
 *              nobody asked for, claiming origin --origin at seq 2^40:
 *              the node must refuse it and close the link
 *   pin        as a configured client (--key) on the client port, --count
 *              connections each send all but the end of a --size byte
 *              request and hold it for --hold-ms: prints how many the node
 *              kept open
 *
 * Exit status: 0 the node reacted as expected, 1 it did not (accepted what
 * it should have refused), 2 usage or setup error (cannot connect, valid
 * handshake refused), 3 the node did not react within the timeout. */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "channel.h"
#include "config.h"
#include "error.h"
#include "keyfile.h"
#include "msce.pb-c.h"
#include "noise.h"
#include "peer.pb-c.h"
#include "seg.h"
#include "version.h"

enum { EXIT_OK = 0, EXIT_BAD = 1, EXIT_SETUP = 2, EXIT_TIMEOUT = 3 };

/* Application bytes sent in oversized mode: over the default 4 MiB limit
 * by two full fragments. */
#define OVERSIZE_LEN (CHANNEL_DEFAULT_MAX_MESSAGE + 2 * CHANNEL_MAX_FRAGMENT)

struct opts {
	char host[256];
	int port;
	const char *cluster;
	uint8_t server_key[NOISE_KEY_LEN];
	const char *key_path;
	const char *mode;
	int timeout_ms;
	int count, hold_ms; /* pin */
	uint32_t peer_id, origin; /* forge, snapshot */
	size_t size;	    /* pin */
	uint64_t deadline; /* of the whole mode, monotonic ms */
};

static struct opts o;
static const char *mode_name = "?";

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
	va_list ap;

	printf("msce-probe %s: ", mode_name);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	fflush(stdout);
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static uint64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static int left_ms(uint64_t deadline)
{
	uint64_t t = mono_ms();

	return t >= deadline ? 0 : (int)(deadline - t);
}

/* ---- Sockets ---- */

/* Non-blocking TCP connection to the target, or -1 (message printed). */
static int dial(void)
{
	struct addrinfo hints, *res = NULL, *ai;
	char port[16];
	int fd = -1, rc;

	memset(&hints, 0, sizeof hints);
	hints.ai_socktype = SOCK_STREAM;
	snprintf(port, sizeof port, "%d", o.port);
	if ((rc = getaddrinfo(o.host, port, &hints, &res)) != 0) {
		say("cannot resolve %s: %s", o.host, gai_strerror(rc));
		return -1;
	}
	for (ai = res; ai; ai = ai->ai_next) {
		struct pollfd p;
		int err = 0;
		socklen_t elen = sizeof err;

		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK,
			    ai->ai_protocol);
		if (fd < 0)
			continue;
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
			break;
		if (errno == EINPROGRESS) {
			p.fd = fd;
			p.events = POLLOUT;
			if (poll(&p, 1, left_ms(o.deadline)) == 1 &&
			    getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) ==
				0 &&
			    err == 0)
				break;
			errno = err ? err : ETIMEDOUT;
		}
		say("cannot connect to %s:%d: %s", o.host, o.port,
		    strerror(errno));
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	return fd;
}

/* How a wait for the node ended. */
enum outcome {
	NODE_CLOSED,  /* EOF or reset: the node dropped the connection */
	NODE_TIMEOUT, /* still open at the deadline */
	NODE_OPENED,  /* pump_handshake only: the handshake completed */
	NODE_BROKEN,  /* pump_handshake only: the reply did not decrypt */
};

static const char *outcome_str(enum outcome r)
{
	switch (r) {
	case NODE_CLOSED:
		return "closed the connection";
	case NODE_TIMEOUT:
		return "kept the connection open";
	case NODE_OPENED:
		return "completed the handshake";
	default:
		return "answered with bytes that do not decrypt";
	}
}

static int ignore_msg(void *ctx, const uint8_t *msg, size_t len)
{
	(void)ctx;
	(void)msg;
	(void)len;
	return 0;
}

/* Where the channel hands what the node sends: nowhere here; msce_insider.c,
 * which includes this file, points it at its own reader. */
static int (*probe_on_message)(void *ctx, const uint8_t *msg,
			       size_t len) = ignore_msg;

/* Reads what the node sends (into ch if given, else counting it in *got)
 * until it closes or the deadline passes. */
static enum outcome wait_close(int fd, struct channel *ch, size_t *got,
			       uint64_t deadline)
{
	uint8_t buf[16384];

	for (;;) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		int n = poll(&p, 1, left_ms(deadline));
		ssize_t r;

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return NODE_TIMEOUT;
		r = recv(fd, buf, sizeof buf, 0);
		if (r < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (r <= 0)
			return NODE_CLOSED;
		if (got)
			*got += (size_t)r;
		/* Once the channel dies (a frame we cannot read) the bytes
		 * are just counted. */
		if (ch && channel_error(ch) == 0)
			channel_feed(ch, buf, (size_t)r, NULL);
	}
}

/* Sends len bytes while draining what the node sends (into ch if given),
 * so a node that writes while we write cannot deadlock us. Returns
 * NODE_OPENED when everything was sent, NODE_CLOSED if the node dropped
 * the connection first, NODE_TIMEOUT at the deadline. */
static enum outcome send_all(int fd, const uint8_t *data, size_t len,
			     struct channel *ch, uint64_t deadline)
{
	size_t off = 0;
	uint8_t buf[16384];

	while (off < len) {
		struct pollfd p = {.fd = fd, .events = POLLIN | POLLOUT};
		int n = poll(&p, 1, left_ms(deadline));

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return NODE_TIMEOUT;
		if (p.revents & POLLIN) {
			ssize_t r = recv(fd, buf, sizeof buf, 0);

			if (r == 0 ||
			    (r < 0 && errno != EAGAIN && errno != EINTR))
				return NODE_CLOSED;
			if (r > 0 && ch && channel_error(ch) == 0)
				channel_feed(ch, buf, (size_t)r, NULL);
		}
		if (p.revents & (POLLERR | POLLHUP))
			return NODE_CLOSED;
		if (p.revents & POLLOUT) {
			ssize_t w =
			    send(fd, data + off, len - off, MSG_NOSIGNAL);

			if (w < 0 && errno != EAGAIN && errno != EINTR)
				return NODE_CLOSED;
			if (w > 0)
				off += (size_t)w;
		}
	}
	return NODE_OPENED;
}

/* ---- Channel ---- */

/* Our static key pair: the configured peer's (--key) or a fresh one. */
static int load_key(struct noise_keypair *kp, int fresh)
{
	struct err e;
	int rc;

	memset(kp, 0, sizeof *kp);
	if (fresh)
		return noise_keypair_generate(kp);
	if (!o.key_path) {
		say("mode needs --key (the secret key of a configured peer)");
		return MSCE_EINVAL;
	}
	kp->priv = sodium_malloc(NOISE_KEY_LEN);
	if (!kp->priv)
		return MSCE_ENOMEM;
	if ((rc = keyfile_load_secret(o.key_path, kp->priv, kp->pub, &e))) {
		say("%s", e.msg);
		noise_keypair_destroy(kp);
	}
	return rc;
}

static int start_channel(struct channel *ch, const struct noise_keypair *kp,
			 size_t max_message, struct channel_buf *msg1)
{
	struct channel_config cfg;
	int rc;

	memset(&cfg, 0, sizeof cfg);
	cfg.role = NOISE_INITIATOR;
	cfg.cluster = o.cluster;
	cfg.local = kp;
	cfg.remote_key = o.server_key;
	cfg.max_message = max_message;
	cfg.cb.message = probe_on_message;
	if ((rc = channel_init(ch, &cfg, now_ms())) ||
	    (rc = channel_start(ch, msg1))) {
		say("cannot start the channel: %s", err_str(rc));
		return rc;
	}
	return 0;
}

/* Sends message 1 (msg1, already framed) and reads until the channel opens,
 * the node closes, or the deadline. What the channel answers on the way (
 * message 1 again after a cookie, the confirmation after message 2) is
 * sent unless confirm is 0, when nothing more is sent at all. */
static enum outcome pump_handshake_ex(int fd, struct channel *ch,
				      const struct channel_buf *msg1,
				      uint64_t deadline, int confirm)
{
	uint8_t buf[4096];
	struct channel_buf out = {0};
	enum outcome r = send_all(fd, msg1->data, msg1->len, ch, deadline);

	if (r != NODE_OPENED)
		return r;
	while (!channel_is_open(ch)) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		int n = poll(&p, 1, left_ms(deadline));
		ssize_t got;

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return NODE_TIMEOUT;
		got = recv(fd, buf, sizeof buf, 0);
		if (got < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (got <= 0)
			return NODE_CLOSED;
		/* Message 2 and any transport frames right behind it. */
		if (channel_feed(ch, buf, (size_t)got, &out)) {
			channel_buf_free(&out);
			return NODE_BROKEN;
		}
		if (confirm && out.len) {
			r = send_all(fd, out.data, out.len, ch, deadline);
			out.len = 0;
			if (r != NODE_OPENED) {
				channel_buf_free(&out);
				return r;
			}
		}
		out.len = 0;
	}
	channel_buf_free(&out);
	return NODE_OPENED;
}

static enum outcome pump_handshake(int fd, struct channel *ch,
				   const struct channel_buf *msg1,
				   uint64_t deadline)
{
	return pump_handshake_ex(fd, ch, msg1, deadline, 1);
}

/* A full handshake as the configured peer on a new connection. Returns the
 * socket, or -1 with *status set to the exit status to use. */
static int open_session(struct channel *ch, const struct noise_keypair *kp,
			size_t max_message, struct channel_buf *msg1,
			int *status)
{
	enum outcome r;
	int fd;

	*status = EXIT_SETUP;
	if (start_channel(ch, kp, max_message, msg1))
		return -1;
	if ((fd = dial()) < 0)
		return -1;
	r = pump_handshake(fd, ch, msg1, o.deadline);
	if (r == NODE_OPENED)
		return fd;
	say("handshake as the configured peer failed: the node %s "
	    "(is --key a [peer] in the node's config, --server-key its key, "
	    "--cluster its cluster?)",
	    outcome_str(r));
	close(fd);
	return -1;
}

/* Waits for the node to drop fd after an offence; maps it to a status. */
static int expect_close(int fd, struct channel *ch, const char *what)
{
	uint64_t t0 = mono_ms();
	size_t got = 0;
	enum outcome r = wait_close(fd, ch, &got, o.deadline);

	if (r == NODE_CLOSED) {
		say("%s: node closed the connection after %llu ms "
		    "(%zu bytes received first)",
		    what, (unsigned long long)(mono_ms() - t0), got);
		return EXIT_OK;
	}
	say("%s: node still holds the connection at the %d ms "
	    "deadline",
	    what, o.timeout_ms);
	return EXIT_TIMEOUT;
}

static int worst(int a, int b)
{
	/* A misbehaving node outranks a timeout, which outranks setup. */
	static const int rank[] = {0, 3, 1, 2};

	return rank[a] >= rank[b] ? a : b;
}

/* ---- Modes ---- */

static int mode_valid(void)
{
	struct noise_keypair kp;
	struct channel ch;
	struct channel_buf msg1 = {0};
	int fd, status;

	if (load_key(&kp, 0))
		return EXIT_SETUP;
	fd = open_session(&ch, &kp, 0, &msg1, &status);
	if (fd >= 0) {
		say("handshake completed as the configured peer");
		status = EXIT_OK;
		close(fd);
	}
	channel_destroy(&ch);
	channel_buf_free(&msg1);
	noise_keypair_destroy(&kp);
	return status;
}

static int mode_wrong_key(void)
{
	struct noise_keypair kp;
	struct channel ch;
	struct channel_buf msg1 = {0};
	enum outcome r;
	int fd, status = EXIT_SETUP;

	if (load_key(&kp, 1))
		return EXIT_SETUP;
	if (start_channel(&ch, &kp, 0, &msg1) || (fd = dial()) < 0)
		goto out;
	r = pump_handshake(fd, &ch, &msg1, o.deadline);
	if (r == NODE_CLOSED) {
		say("node closed the connection without answering message 1 "
		    "from an unknown key");
		status = EXIT_OK;
	} else if (r == NODE_TIMEOUT) {
		say("node neither answered nor closed within %d ms",
		    o.timeout_ms);
		status = EXIT_TIMEOUT;
	} else {
		say("node %s with an unknown key", outcome_str(r));
		status = EXIT_BAD;
	}
	close(fd);
out:
	channel_destroy(&ch);
	channel_buf_free(&msg1);
	noise_keypair_destroy(&kp);
	return status;
}

/* Sends data on a new connection and expects the node to close it without
 * a word (any byte back would be message 2). */
static int offend_raw(const uint8_t *data, size_t len, const char *what)
{
	uint64_t t0 = mono_ms();
	size_t got = 0;
	enum outcome r;
	int fd = dial();

	if (fd < 0)
		return EXIT_SETUP;
	r = send_all(fd, data, len, NULL, o.deadline);
	if (r == NODE_OPENED)
		r = wait_close(fd, NULL, &got, o.deadline);
	close(fd);
	if (got) {
		say("%s: node answered with %zu bytes (it let us in)", what,
		    got);
		return EXIT_BAD;
	}
	if (r == NODE_TIMEOUT) {
		say("%s: node still holds the connection after %d ms", what,
		    o.timeout_ms);
		return EXIT_TIMEOUT;
	}
	say("%s: node closed the connection after %llu ms", what,
	    (unsigned long long)(mono_ms() - t0));
	return EXIT_OK;
}

static int mode_random(void)
{
	uint8_t buf[1024];
	int s1, s2;

	randombytes_buf(buf, sizeof buf);
	/* Whatever length the random prefix says, it is not message 1's. */
	buf[0] = 0xA5;
	s1 = offend_raw(buf, sizeof buf, "1 KiB of random bytes");
	/* The right frame size, so the node must try (and fail) to read it
	 * as message 1. */
	randombytes_buf(buf, sizeof buf);
	buf[0] = CHANNEL_MSG1_LEN >> 8;
	buf[1] = CHANNEL_MSG1_LEN & 0xff;
	s2 = offend_raw(buf, CHANNEL_FRAME_HDR + CHANNEL_MSG1_LEN,
			"random message-1-sized frame");
	return worst(s1, s2);
}

static int mode_truncated(void)
{
	struct noise_keypair kp;
	struct channel ch;
	struct channel_buf msg1 = {0};
	int status = EXIT_SETUP, fresh = o.key_path == NULL;

	/* A real message 1 from a known key, so only its length is wrong. */
	if (load_key(&kp, fresh))
		return EXIT_SETUP;
	if (start_channel(&ch, &kp, 0, &msg1) == 0)
		status = offend_raw(msg1.data, msg1.len / 2,
				    "first half of message 1");
	channel_destroy(&ch);
	channel_buf_free(&msg1);
	noise_keypair_destroy(&kp);
	return status;
}

static int mode_oversized(void)
{
	struct noise_keypair kp;
	struct channel ch;
	struct channel_buf msg1 = {0}, big = {0};
	uint8_t junk[1024];
	uint8_t *payload = NULL;
	int s1, s2 = EXIT_SETUP, fd;
	enum outcome r;

	randombytes_buf(junk, sizeof junk);
	junk[0] = junk[1] = 0xff;
	s1 = offend_raw(junk, sizeof junk,
			"length prefix 65535 before the handshake");

	if (load_key(&kp, 0))
		return worst(s1, EXIT_SETUP);
	/* Our side accepts the size, so channel_send fragments it. */
	fd = open_session(&ch, &kp, OVERSIZE_LEN, &msg1, &s2);
	if (fd < 0)
		goto out;
	if (!(payload = calloc(1, OVERSIZE_LEN)) ||
	    channel_send(&ch, payload, OVERSIZE_LEN, &big)) {
		say("cannot build the oversized message");
		s2 = EXIT_SETUP;
		close(fd);
		goto out;
	}
	r = send_all(fd, big.data, big.len, &ch, o.deadline);
	if (r == NODE_CLOSED) {
		say("application message of %d bytes (limit %u): node closed "
		    "the connection before all of it was sent",
		    OVERSIZE_LEN, CHANNEL_DEFAULT_MAX_MESSAGE);
		s2 = EXIT_OK;
	} else if (r == NODE_TIMEOUT) {
		say("application message of %d bytes: still sending after "
		    "%d ms",
		    OVERSIZE_LEN, o.timeout_ms);
		s2 = EXIT_TIMEOUT;
	} else {
		s2 = expect_close(fd, &ch, "application message over 4 MiB");
	}
	close(fd);
out:
	free(payload);
	channel_buf_free(&big);
	channel_destroy(&ch);
	channel_buf_free(&msg1);
	noise_keypair_destroy(&kp);
	return worst(s1, s2);
}

/* Sends one PeerMsg on an open session. */
static enum outcome send_peer_msg(int fd, struct channel *ch,
				  const Msce__PeerMsg *m)
{
	struct channel_buf frame = {0};
	size_t n = msce__peer_msg__get_packed_size(m);
	uint8_t *buf = malloc(n ? n : 1);
	enum outcome r = NODE_BROKEN;

	if (buf == NULL)
		return NODE_BROKEN;
	msce__peer_msg__pack(m, buf);
	if (channel_send(ch, buf, n, &frame) == 0)
		r = send_all(fd, frame.data, frame.len, ch, o.deadline);
	free(buf);
	channel_buf_free(&frame);
	return r;
}

/* The Hello of peer --peer-id, with nothing held: the node then takes
 * this session as that peer's. */
static enum outcome send_hello(int fd, struct channel *ch)
{
	Msce__PeerMsg m = MSCE__PEER_MSG__INIT;
	Msce__Hello h = MSCE__HELLO__INIT;

	h.node = o.peer_id;
	h.cluster = (char *)o.cluster;
	h.protocol = MSCE_PROTOCOL_VERSION;
	h.time_ms = now_ms();
	m.msg_case = MSCE__PEER_MSG__MSG_HELLO;
	m.hello = &h;
	return send_peer_msg(fd, ch, &m);
}

/* An insider's offence after its Hello; the node must close the link. */
static int insider(const Msce__PeerMsg *offence, const char *what)
{
	struct noise_keypair kp;
	struct channel ch;
	struct channel_buf msg1 = {0};
	int fd, status;

	if (o.peer_id == 0 || o.origin == 0) {
		say("mode needs --peer-id and --origin");
		return EXIT_SETUP;
	}
	if (load_key(&kp, 0))
		return EXIT_SETUP;
	fd = open_session(&ch, &kp, 0, &msg1, &status);
	if (fd < 0)
		goto out;
	if (send_hello(fd, &ch) != NODE_OPENED ||
	    send_peer_msg(fd, &ch, offence) != NODE_OPENED) {
		say("%s: node closed the connection while it was sent", what);
		status = EXIT_OK;
	} else {
		status = expect_close(fd, &ch, what);
	}
	close(fd);
out:
	channel_destroy(&ch);
	channel_buf_free(&msg1);
	noise_keypair_destroy(&kp);
	return status;
}

static int mode_forge(void)
{
	Msce__PeerMsg m = MSCE__PEER_MSG__INIT;
	Msce__Changes c = MSCE__CHANGES__INIT;
	Msce__Change ch = MSCE__CHANGE__INIT;
	Msce__FieldWrite fw = MSCE__FIELD_WRITE__INIT, *fwp = &fw;
	Msce__Segment sg = MSCE__SEGMENT__INIT, *sgp = &sg;
	ProtobufCBinaryData blob;
	struct seg g = {0};
	struct seg_hasher h;
	uint8_t link_sk[32], link_pk[32], spk[32], ssk[64];
	struct err e;

	/* The change: a new record in the name of --origin, seq 1. */
	ch.origin = o.origin;
	ch.seq = 1;
	ch.hlc = now_ms() << 16;
	ch.collection = "t";
	ch.key = "forged";
	fw.name = "v";
	fw.value.data = (uint8_t *)"written in another's name";
	fw.value.len = strlen((const char *)fw.value.data);
	ch.n_fields = 1;
	ch.fields = &fwp;
	blob.len = msce__change__get_packed_size(&ch);
	blob.data = malloc(blob.len);
	if (blob.data == NULL)
		return EXIT_SETUP;
	msce__change__pack(&ch, blob.data);
	/* Signed well, but with the insider's own key. */
	if (!o.key_path ||
	    keyfile_load_secret(o.key_path, link_sk, link_pk, &e) != 0) {
		say("mode needs --key");
		free(blob.data);
		return EXIT_SETUP;
	}
	seg_keypair_from_link(link_sk, spk, ssk);
	g.origin = o.origin;
	g.first = g.last = 1;
	g.last_hlc = ch.hlc;
	seg_hash_begin(&h);
	seg_hash_change(&h, blob.data, blob.len);
	seg_hash_end(&h, g.hash);
	seg_sign(&g, ssk);
	sg.first = 1;
	sg.last = 1;
	sg.last_hlc = ch.hlc;
	sg.sig.data = g.sig;
	sg.sig.len = SEG_SIG_LEN;
	c.origin = o.origin;
	c.n_changes = 1;
	c.changes = &blob;
	c.n_segments = 1;
	c.segments = &sgp;
	m.msg_case = MSCE__PEER_MSG__MSG_CHANGES;
	m.changes = &c;
	int status = insider(&m, "a change in another origin's name");
	free(blob.data);
	return status;
}

static int mode_snapshot(void)
{
	Msce__PeerMsg m = MSCE__PEER_MSG__INIT;
	Msce__SnapshotChunk c = MSCE__SNAPSHOT_CHUNK__INIT;
	Msce__VVEntry v = MSCE__VVENTRY__INIT, *vp = &v;

	v.origin = o.origin;
	v.seq = (uint64_t)1 << 40;
	v.hlc = now_ms() << 16;
	c.protocol = MSCE_PROTOCOL_VERSION;
	c.snapshot_id = 1;
	c.n_vv = 1;
	c.vv = &vp;
	c.done = 1;
	m.msg_case = MSCE__PEER_MSG__MSG_SNAPSHOT;
	m.snapshot = &c;
	return insider(&m, "a snapshot nobody asked for, claiming seq 2^40");
}

static int mode_corrupt(void)
{
	struct noise_keypair kp;
	struct channel ch;
	struct channel_buf msg1 = {0}, frame = {0};
	uint8_t data[64];
	int fd, status;

	if (load_key(&kp, 0))
		return EXIT_SETUP;
	fd = open_session(&ch, &kp, 0, &msg1, &status);
	if (fd < 0)
		goto out;
	randombytes_buf(data, sizeof data);
	if (channel_send(&ch, data, sizeof data, &frame)) {
		say("cannot build a transport frame");
		status = EXIT_SETUP;
		close(fd);
		goto out;
	}
	/* One bit in the ciphertext, past the length prefix: the frame is
	 * well formed but its tag cannot verify. */
	frame.data[CHANNEL_FRAME_HDR + 7] ^= 0x01;
	if (send_all(fd, frame.data, frame.len, &ch, o.deadline) ==
	    NODE_CLOSED) {
		say("node closed the connection while the frame was sent");
		status = EXIT_OK;
	} else {
		status = expect_close(fd, &ch,
				      "transport frame with a bit "
				      "flipped");
	}
	close(fd);
out:
	channel_buf_free(&frame);
	channel_destroy(&ch);
	channel_buf_free(&msg1);
	noise_keypair_destroy(&kp);
	return status;
}

static int mode_replay(void)
{
	struct noise_keypair kp;
	struct channel ch;
	struct channel_buf msg1 = {0};
	int fd, status;

	if (load_key(&kp, 0))
		return EXIT_SETUP;
	fd = open_session(&ch, &kp, 0, &msg1, &status);
	if (fd < 0)
		goto out;
	say("first handshake with the captured message 1 completed");
	close(fd);
	/* Let the node see the first connection end before the replay. */
	usleep(100 * 1000);
	status = offend_raw(msg1.data, msg1.len, "same message 1 replayed");
out:
	channel_destroy(&ch);
	channel_buf_free(&msg1);
	noise_keypair_destroy(&kp);
	return status;
}

static int mode_unconfirmed(void)
{
	struct noise_keypair kp;
	struct channel ch;
	struct channel_buf msg1 = {0};
	enum outcome r;
	size_t got = 0;
	uint64_t t0;
	int fd, status = EXIT_SETUP;

	if (load_key(&kp, 0))
		return EXIT_SETUP;
	if (start_channel(&ch, &kp, 0, &msg1) || (fd = dial()) < 0)
		goto out;
	t0 = mono_ms();
	r = pump_handshake_ex(fd, &ch, &msg1, o.deadline, 0);
	if (r == NODE_OPENED)
		say("message 2 came back; not confirming");
	else if (r == NODE_CLOSED)
		say("node closed the connection without message 2");
	if (r == NODE_OPENED)
		r = wait_close(fd, NULL, &got, o.deadline);
	if (r == NODE_CLOSED) {
		say("node closed the unconfirmed connection after %llu ms",
		    (unsigned long long)(mono_ms() - t0));
		status = EXIT_OK;
	} else if (r == NODE_TIMEOUT) {
		say("node still holds the unconfirmed connection after %d ms",
		    o.timeout_ms);
		status = EXIT_TIMEOUT;
	} else {
		say("node %s", outcome_str(r));
		status = EXIT_BAD;
	}
	close(fd);
out:
	channel_destroy(&ch);
	channel_buf_free(&msg1);
	noise_keypair_destroy(&kp);
	return status;
}

/* Whether the node has closed fd (EOF or error); drains what it sent. */
static int peer_gone(int fd)
{
	uint8_t buf[4096];

	for (;;) {
		ssize_t r = recv(fd, buf, sizeof buf, MSG_DONTWAIT);

		if (r > 0)
			continue;
		return r == 0 || (errno != EAGAIN && errno != EINTR);
	}
}

static int mode_pin(void)
{
	struct noise_keypair kp;
	int *fds = NULL, open_now = 0, status = EXIT_SETUP;
	uint8_t *payload = NULL;
	uint64_t until;

	if (load_key(&kp, 0))
		return EXIT_SETUP;
	if (o.count <= 0 || o.size <= CHANNEL_MAX_FRAGMENT ||
	    !(fds = calloc((size_t)o.count, sizeof(*fds))) ||
	    !(payload = calloc(1, o.size))) {
		say("pin needs --count > 0 and --size over one fragment");
		goto out;
	}
	for (int i = 0; i < o.count; i++) {
		struct channel ch;
		struct channel_buf msg1 = {0}, big = {0};
		enum outcome r;
		size_t last;

		fds[i] = -1;
		if (start_channel(&ch, &kp, o.size, &msg1) ||
		    (fds[i] = dial()) < 0) {
			channel_destroy(&ch);
			channel_buf_free(&msg1);
			goto out;
		}
		r = pump_handshake(fds[i], &ch, &msg1, o.deadline);
		/* All but the last fragment: the request stays unfinished. */
		if (r == NODE_OPENED &&
		    channel_send(&ch, payload, o.size, &big) == 0) {
			last = (o.size - 1) % CHANNEL_MAX_FRAGMENT + 1 +
			       CHANNEL_FRAME_HDR + 1 + NOISE_TAG_LEN;
			r = send_all(fds[i], big.data, big.len - last, &ch,
				     o.deadline);
		}
		if (r != NODE_OPENED) {
			close(fds[i]);
			fds[i] = -1;
		}
		channel_buf_free(&big);
		channel_destroy(&ch);
		channel_buf_free(&msg1);
	}
	until = mono_ms() + (uint64_t)o.hold_ms;
	while (mono_ms() < until)
		usleep(20 * 1000);
	for (int i = 0; i < o.count; i++)
		if (fds[i] >= 0 && !peer_gone(fds[i]))
			open_now++;
	say("pinned: %d of %d connections still open", open_now, o.count);
	status = EXIT_OK;
out:
	for (int i = 0; fds && i < o.count; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	free(fds);
	free(payload);
	noise_keypair_destroy(&kp);
	return status;
}

/* ---- Main ---- */

static const struct {
	const char *name;
	int (*run)(void);
} modes[] = {
    {"valid", mode_valid},	   {"wrong-key", mode_wrong_key},
    {"random", mode_random},	   {"truncated", mode_truncated},
    {"oversized", mode_oversized}, {"corrupt", mode_corrupt},
    {"replay", mode_replay},	   {"unconfirmed", mode_unconfirmed},
    {"pin", mode_pin},		   {"forge", mode_forge},
    {"snapshot", mode_snapshot},
};

static void usage(FILE *f)
{
	fprintf(
	    f,
	    "usage: msce-probe --target HOST:PORT --cluster NAME "
	    "--server-key BASE64\n"
	    "                  [--key KEYFILE] [--timeout-ms N] "
	    "--mode MODE\n"
	    "       [--count N --size BYTES --hold-ms N]\n"
	    "modes: valid wrong-key random truncated oversized corrupt "
	    "replay\n       unconfirmed pin forge snapshot\n"
	    "--peer-id N --origin N: forge and snapshot (the insider's node "
	    "id, the origin it claims)\n"
	    "--key is the secret key of a configured [peer] (needed by "
	    "valid, oversized,\ncorrupt and replay). Exit 0: the node "
	    "reacted as expected; 1: it did not;\n2: usage or setup "
	    "error; 3: no reaction before the mode's deadline\n(--timeout-ms "
	    "for the whole mode, default 5000).\n");
}

int main(int argc, char **argv)
{
	const char *target = NULL, *server_key = NULL;
	struct err e;
	size_t i;

	o.timeout_ms = 5000;
	for (int a = 1; a < argc; a += 2) { /* an option and its value */
		const char *v = a + 1 < argc ? argv[a + 1] : NULL;

		if (!strcmp(argv[a], "-h") || !strcmp(argv[a], "--help")) {
			usage(stdout);
			return EXIT_OK;
		}
		if (!v) {
			fprintf(stderr, "msce-probe: %s needs a value\n",
				argv[a]);
			return EXIT_SETUP;
		}
		if (!strcmp(argv[a], "--target"))
			target = v;
		else if (!strcmp(argv[a], "--cluster"))
			o.cluster = v;
		else if (!strcmp(argv[a], "--server-key"))
			server_key = v;
		else if (!strcmp(argv[a], "--key"))
			o.key_path = v;
		else if (!strcmp(argv[a], "--mode"))
			o.mode = v;
		else if (!strcmp(argv[a], "--timeout-ms"))
			o.timeout_ms = atoi(v);
		else if (!strcmp(argv[a], "--count"))
			o.count = atoi(v);
		else if (!strcmp(argv[a], "--size"))
			o.size = (size_t)strtoull(v, NULL, 10);
		else if (!strcmp(argv[a], "--hold-ms"))
			o.hold_ms = atoi(v);
		else if (!strcmp(argv[a], "--peer-id"))
			o.peer_id = (uint32_t)strtoul(v, NULL, 10);
		else if (!strcmp(argv[a], "--origin"))
			o.origin = (uint32_t)strtoul(v, NULL, 10);
		else {
			fprintf(stderr, "msce-probe: unknown option %s\n",
				argv[a]);
			usage(stderr);
			return EXIT_SETUP;
		}
	}
	if (!target || !o.cluster || !server_key || !o.mode) {
		usage(stderr);
		return EXIT_SETUP;
	}
	if (o.timeout_ms <= 0 || o.timeout_ms > 600000) {
		fprintf(stderr, "msce-probe: --timeout-ms out of range\n");
		return EXIT_SETUP;
	}
	if (config_parse_addr(target, o.host, sizeof o.host, &o.port, &e) ||
	    key_from_base64(server_key, o.server_key, &e)) {
		fprintf(stderr, "msce-probe: %s\n", e.msg);
		return EXIT_SETUP;
	}
	if (sodium_init() < 0) {
		fprintf(stderr, "msce-probe: libsodium failed to start\n");
		return EXIT_SETUP;
	}
	signal(SIGPIPE, SIG_IGN);
	for (i = 0; i < sizeof modes / sizeof modes[0]; i++)
		if (!strcmp(o.mode, modes[i].name)) {
			int status;

			mode_name = modes[i].name;
			o.deadline = mono_ms() + (uint64_t)o.timeout_ms;
			status = modes[i].run();
			say("%s", status == EXIT_OK ? "ok" : "FAILED");
			return status;
		}
	fprintf(stderr, "msce-probe: unknown mode %s\n", o.mode);
	usage(stderr);
	return EXIT_SETUP;
}
