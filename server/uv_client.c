/* Unix-socket client server; see uv_client.h.
 *
 * Each connection reads into a buffer sized by the length prefix, checked
 * against CLIENT_MAX_MESSAGE before anything is allocated. A connection is
 * freed only when it is closed *and* no request of it is in flight, so a
 * reply that completes after the client went away finds a live struct and
 * is dropped. */
#include "uv_client.h"

#include <errno.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"

struct client_conn {
	uv_pipe_t pipe;
	struct client_server *srv;
	struct client_conn *prev, *next;
	uint8_t hdr[4];
	size_t hdr_len;
	uint8_t *msg;
	size_t msg_len, msg_have;
	int holds, closing, closed, reading;
};

struct client_server {
	uv_loop_t *loop;
	uv_pipe_t listener;
	char path[256];
	client_request_cb cb;
	void *data;
	struct client_conn *conns;
	int open_handles;
	int stopping;
	uint64_t errors;
	void (*done)(void *);
	void *done_arg;
};

static void maybe_finish(struct client_server *s)
{
	if (s->stopping && s->open_handles == 0 && s->conns == NULL) {
		void (*done)(void *) = s->done;
		void *arg = s->done_arg;
		unlink(s->path);
		free(s);
		if (done)
			done(arg);
	}
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
	free(c->msg);
	free(c);
	maybe_finish(s);
}

static void on_conn_closed(uv_handle_t *h)
{
	struct client_conn *c = h->data;
	c->closed = 1;
	conn_free_if_done(c);
}

void client_conn_close(struct client_conn *c)
{
	if (c->closing)
		return;
	c->closing = 1;
	uv_close((uv_handle_t *)&c->pipe, on_conn_closed);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	static char slab[65536]; /* loop thread only; consumed at once */
	(void)h;
	(void)suggested;
	buf->base = slab;
	buf->len = sizeof slab;
}

static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf);

static void update_reading(struct client_conn *c)
{
	int want = !c->closing && c->holds < CLIENT_MAX_INFLIGHT;
	if (want && !c->reading)
		uv_read_start((uv_stream_t *)&c->pipe, on_alloc, on_read);
	else if (!want && c->reading)
		uv_read_stop((uv_stream_t *)&c->pipe);
	c->reading = want;
}

static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
	struct client_conn *c = st->data;
	const uint8_t *p = (const uint8_t *)buf->base;
	size_t left = nread > 0 ? (size_t)nread : 0;

	if (nread < 0) {
		client_conn_close(c);
		return;
	}
	while (left > 0 && !c->closing) {
		if (c->hdr_len < 4) {
			size_t n = 4 - c->hdr_len < left ? 4 - c->hdr_len : left;
			memcpy(c->hdr + c->hdr_len, p, n);
			c->hdr_len += n;
			p += n;
			left -= n;
			if (c->hdr_len < 4)
				break;
			c->msg_len = (size_t)c->hdr[0] << 24 |
				     (size_t)c->hdr[1] << 16 |
				     (size_t)c->hdr[2] << 8 | c->hdr[3];
			if (c->msg_len == 0 || c->msg_len > CLIENT_MAX_MESSAGE) {
				c->srv->errors++;
				log_warn("client: request of %zu bytes refused "
					 "(limit %u); closing",
					 c->msg_len, CLIENT_MAX_MESSAGE);
				client_conn_close(c);
				return;
			}
			c->msg = malloc(c->msg_len);
			if (c->msg == NULL) {
				client_conn_close(c);
				return;
			}
			c->msg_have = 0;
		}
		size_t n = c->msg_len - c->msg_have < left ? c->msg_len - c->msg_have
							   : left;
		memcpy(c->msg + c->msg_have, p, n);
		c->msg_have += n;
		p += n;
		left -= n;
		if (c->msg_have == c->msg_len) {
			uint8_t *m = c->msg;
			size_t len = c->msg_len;
			c->msg = NULL;
			c->hdr_len = 0;
			c->srv->cb(c->srv->data, c, m, len);
			free(m);
		}
	}
	update_reading(c);
}

struct wreq {
	uv_write_t req;
	struct client_conn *c;
	uint8_t data[];
};

static void on_written(uv_write_t *req, int status)
{
	struct wreq *w = (struct wreq *)req;
	if (status < 0)
		client_conn_close(w->c);
	w->c->holds--;
	update_reading(w->c);
	conn_free_if_done(w->c);
	free(w);
}

void client_conn_hold(struct client_conn *c)
{
	c->holds++;
	update_reading(c);
}

void client_conn_reply(struct client_conn *c, const uint8_t *msg, size_t len)
{
	struct wreq *w;
	uv_buf_t b;

	if (c->closing) {
		c->holds--;
		conn_free_if_done(c);
		return;
	}
	w = malloc(sizeof *w + 4 + len);
	if (w == NULL) {
		c->holds--;
		client_conn_close(c);
		return;
	}
	w->c = c;
	w->data[0] = (uint8_t)(len >> 24);
	w->data[1] = (uint8_t)(len >> 16);
	w->data[2] = (uint8_t)(len >> 8);
	w->data[3] = (uint8_t)len;
	memcpy(w->data + 4, msg, len);
	b = uv_buf_init((char *)w->data, (unsigned)(4 + len));
	/* The hold is released when the write completes. */
	if (uv_write(&w->req, (uv_stream_t *)&c->pipe, &b, 1, on_written)) {
		free(w);
		c->holds--;
		client_conn_close(c);
	}
}

static void on_connection(uv_stream_t *l, int status)
{
	struct client_server *s = l->data;
	struct client_conn *c;

	if (status < 0 || s->stopping)
		return;
	c = calloc(1, sizeof *c);
	if (c == NULL)
		return;
	c->srv = s;
	uv_pipe_init(s->loop, &c->pipe, 0);
	c->pipe.data = c;
	c->next = s->conns;
	if (s->conns)
		s->conns->prev = c;
	s->conns = c;
	if (uv_accept(l, (uv_stream_t *)&c->pipe)) {
		client_conn_close(c);
		return;
	}
	update_reading(c);
}

static void on_listener_closed(uv_handle_t *h)
{
	struct client_server *s = h->data;
	s->open_handles--;
	maybe_finish(s);
}

int client_server_start(uv_loop_t *loop, const char *path,
			client_request_cb cb, void *data,
			struct client_server **out, struct err *e)
{
	struct client_server *s;
	char dir[256];
	int rc;

	*out = NULL;
	if (strlen(path) >= sizeof s->path)
		return err_set(e, MSCE_EINVAL, "socket path too long: %s", path);
	s = calloc(1, sizeof *s);
	if (s == NULL)
		return err_set(e, MSCE_ENOMEM, "client socket");
	s->loop = loop;
	s->cb = cb;
	s->data = data;
	snprintf(s->path, sizeof s->path, "%s", path);
	snprintf(dir, sizeof dir, "%s", path);
	/* The directory is the access control: 0750, group may connect. */
	if (mkdir(dirname(dir), 0750) != 0 && errno != EEXIST) {
		free(s);
		return err_set(e, MSCE_EIO, "create socket directory for %s: %s",
			       path, strerror(errno));
	}
	unlink(path); /* a stale socket from a killed node */
	uv_pipe_init(loop, &s->listener, 0);
	s->listener.data = s;
	s->open_handles = 1;
	if ((rc = uv_pipe_bind(&s->listener, path)) ||
	    (rc = uv_listen((uv_stream_t *)&s->listener, 128, on_connection))) {
		err_set(e, MSCE_EIO, "listen on %s: %s", path, uv_strerror(rc));
		s->stopping = 1;
		uv_close((uv_handle_t *)&s->listener, on_listener_closed);
		return MSCE_EIO;
	}
	chmod(path, 0660);
	*out = s;
	return 0;
}

uint64_t client_server_errors(const struct client_server *s)
{
	return s->errors;
}

void client_server_stop(struct client_server *s, void (*done)(void *arg),
			void *arg)
{
	s->stopping = 1;
	s->done = done;
	s->done_arg = arg;
	for (struct client_conn *c = s->conns; c != NULL; c = c->next)
		client_conn_close(c);
	uv_close((uv_handle_t *)&s->listener, on_listener_closed);
}
