/* SPDX-License-Identifier: Apache-2.0 */
/* libmsce's blocking calls: each sends one msce.ClientRequest (codec.c)
 * over a transport (transport.c) and waits for the response with the same
 * id. A client made by msce_connect keeps its msce_conninfo and
 * reconnects when its connection was lost, trying its centers in turn;
 * reads are sent again once and a watch resumes from its own cursor, so
 * nothing is lost or given twice. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "client_internal.h"
#include "version.h"
#include "codec.h"
#include "conninfo.h"
#include "error.h"
#include "purpose.h"
#include "transport.h"

struct msce_client {
	msce_conninfo *ci; /* owned: the centers, for reconnecting */
	size_t center;	   /* index of the one connected to */
	struct transport *t;
	uint64_t next_id;
	uint64_t timeout_ms; /* per request; 0 = none */
	/* A watch: its request id while streaming, its collection and the
	 * position after the last event returned, to resume from. */
	uint64_t watch_id;
	/* The watch's connection was lost and could not be resumed within
	 * the last msce_watch_next's timeout: the next one tries again. */
	int watch_lost;
	int watch_all;
	char watch_coll[MSCE_MAX_COLLECTION + 1];
	struct msce_cursor wcur;
	Msce__ClientResponse *event; /* the last watch event, owned */
	struct msce_value *event_fields;
	char node_name[64];    /* learnt from status: the default note center */
	uint64_t last_note_ms; /* this client's notes get increasing times */
	size_t pending;	       /* pipelined puts not yet answered */
	uint64_t pipe_first;   /* id of the first of them */
	char purpose[PURPOSE_MAX + 1]; /* sent with every request */
	/* The last batch's answer, owned: its refusals' messages. */
	Msce__ClientResponse *batch;
	char msg[512];
};

int client_fail(msce_client *c, int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(c->msg, sizeof c->msg, fmt, ap);
	va_end(ap);
	return code;
}
#define fail client_fail

const char *msce_strerror(int code) { return err_str(code); }
const char *msce_errname(int code) { return err_name(code); }
const char *msce_errmsg(const msce_client *c) { return c ? c->msg : ""; }
const char *msce_version(void) { return MSCE_VERSION_STRING; }

_Static_assert(sizeof MSCE_PURPOSES == sizeof PURPOSE_LIST,
	       "msce.h and purpose.h list the same purposes");

int msce_set_purpose(msce_client *c, const char *purpose)
{
	if (purpose == NULL || purpose[0] == '\0') {
		c->purpose[0] = '\0';
		return 0;
	}
	if (!purpose_valid(purpose))
		return fail(c, MSCE_EINVAL,
			    "purpose \"%.*s\" is not one of: " PURPOSE_LIST,
			    PURPOSE_MAX, purpose);
	snprintf(c->purpose, sizeof c->purpose, "%s", purpose);
	return 0;
}

const char *msce_purpose(const msce_client *c) { return c->purpose; }

void msce_set_timeout(msce_client *c, unsigned ms)
{
	if (c != NULL)
		c->timeout_ms = ms;
}

const char *msce_center(const msce_client *c)
{
	return c && c->ci && c->center < c->ci->n
		       ? c->ci->centers[c->center].label
		       : "";
}

static msce_client *client_new(msce_conninfo *ci)
{
	msce_client *c = calloc(1, sizeof *c);

	if (c == NULL) {
		msce_conninfo_free(ci);
		return NULL;
	}
	c->ci = ci;
	c->next_id = 1;
	c->timeout_ms = ci ? ci->request_ms : 0;
	return c;
}

/* ---- connections ------------------------------------------------------ */

/* Connects to the first center, starting at first, that answers. */
static int connect_any(msce_client *c, size_t first)
{
	int rc = MSCE_EUNAVAIL;

	if (c->ci->n == 0)
		return fail(c, MSCE_EINVAL, "no center to connect to");
	for (size_t k = 0; k < c->ci->n; k++) {
		size_t i = (first + k) % c->ci->n;
		rc = conninfo_connect(c->ci, i, &c->t, c->msg, sizeof c->msg);
		if (rc == 0) {
			c->center = i;
			c->msg[0] = '\0';
			return 0;
		}
	}
	if (c->ci->n > 1) {
		char last[sizeof c->msg];
		snprintf(last, sizeof last, "%s", c->msg);
		fail(c, rc, "no center answered (%zu tried); the last: %s",
		     c->ci->n, last);
	}
	return rc;
}

/* A client of one center (the old connect functions): no reconnection,
 * no request timeout. */
static int connect_single(msce_client **out, msce_conninfo *ci, int rc)
{
	msce_client *c = client_new(ci);

	*out = c;
	if (c == NULL)
		return MSCE_ENOMEM;
	if (ci == NULL)
		return fail(c, MSCE_ENOMEM, "out of memory");
	if (rc)
		return fail(c, rc, "%s", ci->msg);
	rc = connect_any(c, 0);
	/* Without reconnection the secret is needed no more: wipe it. */
	if (ci->sk) {
		sodium_free(ci->sk);
		ci->sk = NULL;
	}
	return rc;
}

int msce_connect_unix(const char *path, msce_client **out)
{
	msce_conninfo *ci = conninfo_single();
	int rc = ci ? msce_conninfo_add_unix(ci, path) : MSCE_ENOMEM;
	return connect_single(out, ci, rc);
}

int msce_connect_config(const char *config_path, msce_client **out)
{
	msce_conninfo *ci = conninfo_single();
	int rc = ci ? msce_conninfo_add_config(ci, config_path) : MSCE_ENOMEM;
	return connect_single(out, ci, rc);
}

int msce_connect_tcp(const char *hostport, const char *key_file,
		     const char *node_key_base64, const char *cluster,
		     msce_client **out)
{
	msce_conninfo *ci = conninfo_single();
	int rc = ci ? msce_conninfo_add_tcp(ci, hostport, node_key_base64)
		    : MSCE_ENOMEM;
	if (rc == 0)
		rc = msce_conninfo_set_client_key(ci, key_file, cluster);
	return connect_single(out, ci, rc);
}

int msce_connect(const msce_conninfo *ci, msce_client **out)
{
	msce_client *c;

	*out = NULL;
	if (ci == NULL)
		return MSCE_EINVAL;
	c = client_new(conninfo_copy(ci));
	*out = c;
	if (c == NULL)
		return MSCE_ENOMEM;
	if (c->ci == NULL)
		return fail(c, MSCE_ENOMEM, "out of memory");
	return connect_any(c, 0);
}

static void drop_event(msce_client *c)
{
	if (c->event != NULL)
		msce__client_response__free_unpacked(c->event, NULL);
	c->event = NULL;
	free(c->event_fields);
	c->event_fields = NULL;
}

void msce_close(msce_client *c)
{
	if (c == NULL)
		return;
	drop_event(c);
	msce__client_response__free_unpacked(c->batch, NULL);
	transport_close(c->t);
	msce_conninfo_free(c->ci);
	free(c);
}

static int can_reconnect(const msce_client *c)
{
	return c->ci != NULL && c->ci->reconnect;
}

/* A new connection, starting with the center just lost. */
static int reconnect(msce_client *c)
{
	transport_close(c->t);
	c->t = NULL;
	return connect_any(c, c->center);
}

/* Before a request: a connection known dead (or hung up while idle) is
 * replaced when the client may reconnect. */
static int ensure_connected(msce_client *c)
{
	if (c->t != NULL && (!can_reconnect(c) || !transport_hung_up(c->t)))
		return 0;
	if (!can_reconnect(c))
		return fail(c, MSCE_ECLOSED, "not connected");
	return reconnect(c);
}

/* No answer in time on a connection that is up: the center took it and
 * stopped (a stopped msced, a stalled disk). With other centers to try,
 * the connection is dropped and the next call starts with the next one;
 * what was asked may still be done there. */
static void give_up_center(msce_client *c)
{
	size_t len;

	if (!can_reconnect(c) || c->ci->n < 2 || c->t == NULL)
		return;
	transport_close(c->t);
	c->t = NULL;
	c->center = (c->center + 1) % c->ci->n;
	len = strlen(c->msg);
	snprintf(c->msg + len, sizeof c->msg - len,
		 "; the next call goes to %s",
		 c->ci->centers[c->center].label);
}

/* 1 if rc means the connection is gone (not a timeout, not a refusal). */
static int lost(const msce_client *c, int rc)
{
	return rc != 0 && c->t != NULL && transport_hung_up(c->t);
}

/* ---- one request, one response ------------------------------------------ */

static int send_request(msce_client *c, Msce__ClientRequest *req)
{
	size_t n = msce__client_request__get_packed_size(req);
	uint8_t *buf;
	int rc;

	if (c->t == NULL)
		return fail(c, MSCE_ECLOSED, "not connected");
	req->protocol = MSCE_CLIENT_PROTOCOL;
	/* The client's purpose, unless the request names its own. */
	if (c->purpose[0] != '\0' &&
	    (req->purpose == NULL || req->purpose[0] == '\0'))
		req->purpose = c->purpose;
	n = msce__client_request__get_packed_size(req);
	buf = malloc(n ? n : 1);
	if (buf == NULL)
		return fail(c, MSCE_ENOMEM, "out of memory");
	msce__client_request__pack(req, buf);
	rc = transport_send(c->t, buf, n, c->msg, sizeof c->msg);
	free(buf);
	return rc;
}

static int recv_response(msce_client *c, uint64_t id, uint64_t timeout_ms,
			 Msce__ClientResponse **resp)
{
	uint64_t now0 = link_now_ms();
	uint64_t deadline = timeout_ms == 0 || timeout_ms > UINT64_MAX - now0
				? 0 /* none, or never within 2^64 ms */
				: now0 + timeout_ms;

	for (;;) {
		uint64_t left = 0;
		uint8_t *buf;
		size_t len;
		int rc;

		if (deadline) {
			uint64_t now = link_now_ms();
			if (now >= deadline)
				return fail(c, MSCE_ETIMEOUT,
					    "no answer from %s within %llu ms",
					    msce_center(c),
					    (unsigned long long)timeout_ms);
			left = deadline - now;
		}
		if ((rc = transport_recv(c->t, &buf, &len, left, c->msg,
					 sizeof c->msg)) != 0)
			return rc;
		*resp = codec_unpack(buf, len);
		free(buf);
		if (*resp == NULL)
			return fail(c, MSCE_EPROTO, "malformed response");
		if ((*resp)->id == id || (*resp)->id == 0)
			return 0;
		/* An answer to an earlier, abandoned request. */
		msce__client_response__free_unpacked(*resp, NULL);
	}
}

static int idempotent(const Msce__ClientRequest *req)
{
	switch (req->op_case) {
	case MSCE__CLIENT_REQUEST__OP_GET:
	case MSCE__CLIENT_REQUEST__OP_SCAN:
	case MSCE__CLIENT_REQUEST__OP_STATUS:
	case MSCE__CLIENT_REQUEST__OP_CONFLICTS:
		return 1;
	default:
		return 0;
	}
}

/* How long to wait for req's answer: a put that waits for min_sites
 * centers gets its own wait on top. */
static uint64_t request_timeout(const msce_client *c,
				const Msce__ClientRequest *req)
{
	uint64_t t = c->timeout_ms;

	if (t && req->op_case == MSCE__CLIENT_REQUEST__OP_PUT &&
	    req->put->min_sites > 1) {
		uint64_t w = req->put->timeout_ms ? req->put->timeout_ms
						  : MSCE_PUT_DEFAULT_TIMEOUT_MS;
		t = w > UINT64_MAX - t ? 0 : t + w; /* past 2^64: no limit */
	}
	return t;
}

int client_call(msce_client *c, Msce__ClientRequest *req,
		Msce__ClientResponse **resp)
{
	int rc;

	*resp = NULL;
	if (c->pending != 0)
		return fail(c, MSCE_EBUSY,
			    "%zu pipelined puts still wait for msce_put_recv",
			    c->pending);
	if (c->watch_id != 0)
		return fail(c, MSCE_EBUSY,
			    "this connection is streaming a watch; open "
			    "another one for requests");
	if ((rc = ensure_connected(c)) != 0)
		return rc;
	for (int attempt = 0;; attempt++) {
		req->id = c->next_id++;
		rc = send_request(c, req);
		if (rc == 0)
			rc = recv_response(c, req->id,
					   request_timeout(c, req), resp);
		if (rc == 0)
			break;
		if (rc == MSCE_ETIMEOUT) {
			give_up_center(c);
			return rc;
		}
		/* A read whose connection failed under it is sent once
		 * more; a write may have committed, so it is not. */
		if (attempt > 0 || !can_reconnect(c) || !idempotent(req) ||
		    !lost(c, rc))
			return rc;
		if ((rc = reconnect(c)) != 0)
			return rc;
	}
	if ((*resp)->code != 0)
		fail(c, (int)(*resp)->code, "%s", (*resp)->error);
	else
		c->msg[0] = '\0';
	return 0;
}

/* Calls and returns the response's code; *resp is kept only on success. */
static int call_ok(msce_client *c, Msce__ClientRequest *req,
		   Msce__ClientResponse **resp)
{
	int rc = client_call(c, req, resp);
	if (rc)
		return rc;
	rc = (int)(*resp)->code;
	if (rc) {
		msce__client_response__free_unpacked(*resp, NULL);
		*resp = NULL;
	}
	return rc;
}

/* ---- writes ------------------------------------------------------------------ */

static int write_call(msce_client *c, struct codec_req *b,
		      struct msce_write_result *res)
{
	Msce__ClientResponse *r;
	int rc;

	if ((rc = client_call(c, &b->req, &r)) != 0)
		return rc;
	rc = (int)r->code;
	/* A min_sites timeout still reports the committed change. */
	if (rc == 0 || rc == MSCE_ETIMEOUT)
		codec_write_result(r, res);
	msce__client_response__free_unpacked(r, NULL);
	return rc;
}

int msce_put_opts(msce_client *c, const char *collection, const char *key,
		  const struct msce_field *fields, size_t n,
		  const struct msce_put_opts *opts,
		  struct msce_write_result *res)
{
	struct codec_req b;
	int rc = codec_put(&b, collection, key, fields, n, opts, 0, c->msg,
			   sizeof c->msg);

	if (rc == 0)
		rc = write_call(c, &b, res);
	codec_release(&b);
	return rc;
}

int msce_put(msce_client *c, const char *collection, const char *key,
	     const struct msce_field *fields, size_t n,
	     struct msce_write_result *res)
{
	return msce_put_opts(c, collection, key, fields, n, NULL, res);
}

int msce_delete(msce_client *c, const char *collection, const char *key,
		struct msce_write_result *res)
{
	struct codec_req b;
	int rc = codec_put(&b, collection, key, NULL, 0, NULL, 1, c->msg,
			   sizeof c->msg);

	if (rc == 0)
		rc = write_call(c, &b, res);
	codec_release(&b);
	return rc;
}

int msce_put_send(msce_client *c, const char *collection, const char *key,
		  const struct msce_field *fields, size_t n, uint64_t *id)
{
	struct codec_req b;
	int rc;

	if (c->watch_id != 0)
		return fail(c, MSCE_EBUSY,
			    "this connection is streaming a watch; open "
			    "another one for requests");
	if (c->pending == 0 && (rc = ensure_connected(c)) != 0)
		return rc;
	rc = codec_put(&b, collection, key, fields, n, NULL, 0, c->msg,
		       sizeof c->msg);
	if (rc == 0) {
		b.req.id = c->next_id++;
		rc = send_request(c, &b.req);
	}
	if (rc == 0) {
		if (c->pending++ == 0)
			c->pipe_first = b.req.id;
		if (id)
			*id = b.req.id;
	}
	codec_release(&b);
	return rc;
}

int msce_put_recv(msce_client *c, uint64_t *id, struct msce_write_result *res)
{
	Msce__ClientResponse *r;
	uint8_t *buf;
	size_t len;
	int rc;

	if (c->pending == 0)
		return fail(c, MSCE_EINVAL, "no put is waiting for its result");
	for (;;) {
		rc = transport_recv(c->t, &buf, &len, c->timeout_ms, c->msg,
				    sizeof c->msg);
		if (rc == MSCE_ETIMEOUT)
			give_up_center(c);
		/* Gone with the connection (lost, or given up): the puts not
		 * yet answered, each written or not. The next call connects
		 * again instead of waiting for answers that cannot come. */
		if (lost(c, rc) || c->t == NULL)
			c->pending = 0;
		if (rc)
			return rc;
		r = codec_unpack(buf, len);
		free(buf);
		if (r == NULL)
			return fail(c, MSCE_EPROTO, "malformed response");
		/* Skip a late answer to an earlier, abandoned request. */
		if (r->id == 0 || r->id >= c->pipe_first)
			break;
		msce__client_response__free_unpacked(r, NULL);
	}
	c->pending--;
	if (id)
		*id = r->id;
	rc = (int)r->code;
	if (rc) {
		fail(c, rc, "%s", r->error);
		if (res != NULL) /* not the last success's */
			memset(res, 0, sizeof *res);
	} else {
		codec_write_result(r, res);
	}
	msce__client_response__free_unpacked(r, NULL);
	return rc;
}

size_t msce_pending(const msce_client *c) { return c->pending; }

int msce_put_batch(msce_client *c, const struct msce_put *puts, size_t n,
		   struct msce_write_result *res, int *codes)
{
	return msce_put_batch_opts(c, puts, n, NULL, res, codes);
}

int msce_put_batch_opts(msce_client *c, const struct msce_put *puts,
			size_t n, const struct msce_put_opts *opts,
			struct msce_write_result *res, int *codes)
{
	Msce__ClientResponse *r = NULL;
	struct codec_req b;
	int rc = codec_batch(&b, puts, n, opts, c->msg, sizeof c->msg);

	msce__client_response__free_unpacked(c->batch, NULL);
	c->batch = NULL;
	if (rc == 0)
		rc = call_ok(c, &b.req, &r);
	codec_release(&b);
	if (rc)
		return rc;
	if (r->result_case != MSCE__CLIENT_RESPONSE__RESULT_BATCH ||
	    r->batch->n_results != n) {
		msce__client_response__free_unpacked(r, NULL);
		return fail(c, MSCE_EPROTO, "batch answer does not match");
	}
	for (size_t i = 0; i < n; i++) {
		const Msce__ClientResponse *it = r->batch->results[i];
		if (codes)
			codes[i] = (int)it->code;
		if (res)
			codec_write_result(it, &res[i]);
	}
	c->batch = r;
	return 0;
}

const char *msce_batch_errmsg(const msce_client *c, size_t i)
{
	const Msce__ClientResponse *it;

	if (c == NULL || c->batch == NULL || i >= c->batch->batch->n_results)
		return "";
	it = c->batch->batch->results[i];
	return it->code != 0 && it->error != NULL ? it->error : "";
}

/* ---- reads ------------------------------------------------------------------ */

int msce_get(msce_client *c, const char *collection, const char *key,
	     msce_record **out)
{
	return msce_get_fields(c, collection, key, NULL, 0, out);
}

int msce_get_fields(msce_client *c, const char *collection, const char *key,
		    const char *const *fields, size_t nfields,
		    msce_record **out)
{
	Msce__ClientResponse *r = NULL;
	struct codec_req b;
	int rc;

	*out = NULL;
	rc = codec_get(&b, collection, key, fields, nfields, c->msg,
		       sizeof c->msg);
	if (rc == 0)
		rc = call_ok(c, &b.req, &r);
	codec_release(&b);
	if (rc)
		return rc;
	return codec_record(r, out, c->msg, sizeof c->msg);
}

int msce_scan(msce_client *c, const char *collection,
	      const struct msce_scan_opts *opts, msce_page **out)
{
	Msce__ClientResponse *r = NULL;
	struct codec_req b;
	int rc;

	*out = NULL;
	rc = codec_scan(&b, collection, opts, c->msg, sizeof c->msg);
	if (rc == 0)
		rc = call_ok(c, &b.req, &r);
	codec_release(&b);
	if (rc)
		return rc;
	return codec_page(r, out, c->msg, sizeof c->msg);
}

int msce_status_get(msce_client *c, msce_status **out)
{
	Msce__ClientResponse *r = NULL;
	struct codec_req b;
	int rc;

	*out = NULL;
	codec_status(&b);
	rc = call_ok(c, &b.req, &r);
	codec_release(&b);
	if (rc)
		return rc;
	if ((rc = codec_status_result(r, out, c->msg, sizeof c->msg)) == 0)
		snprintf(c->node_name, sizeof c->node_name, "%s",
			 codec_status_name(*out));
	return rc;
}

int msce_conflicts_list(msce_client *c, const char *collection,
			unsigned limit, msce_conflicts **out)
{
	Msce__ClientResponse *r = NULL;
	struct codec_req b;
	int rc;

	*out = NULL;
	codec_conflicts(&b, collection, limit);
	rc = call_ok(c, &b.req, &r);
	codec_release(&b);
	if (rc)
		return rc;
	return codec_conflicts_result(r, out, c->msg, sizeof c->msg);
}

int msce_resolve(msce_client *c, const char *collection, const char *key,
		 const char *field, const void *value, size_t value_len,
		 struct msce_write_result *res)
{
	struct codec_req b;
	int rc;

	codec_resolve(&b, collection, key, field, value, value_len);
	rc = write_call(c, &b, res);
	codec_release(&b);
	return rc;
}

int msce_backup(msce_client *c, const char *path, uint64_t *bytes)
{
	Msce__ClientResponse *r = NULL;
	struct codec_req b;
	int rc;

	codec_backup(&b, path);
	rc = call_ok(c, &b.req, &r);
	codec_release(&b);
	if (rc)
		return rc;
	if (bytes != NULL)
		*bytes = r->result_case == MSCE__CLIENT_RESPONSE__RESULT_BACKUP
				 ? r->backup->bytes
				 : 0;
	msce__client_response__free_unpacked(r, NULL);
	return 0;
}

/* ---- watch ------------------------------------------------------------------------ */

/* Sends the watch request for the current position. */
static int watch_send(msce_client *c)
{
	struct codec_req b;
	int rc = codec_watch(&b, c->watch_all ? NULL : c->watch_coll, &c->wcur,
			     c->msg, sizeof c->msg);

	if (rc == 0) {
		b.req.id = c->next_id++;
		rc = send_request(c, &b.req);
	}
	if (rc == 0)
		c->watch_id = b.req.id;
	codec_release(&b);
	return rc;
}

int msce_watch_from(msce_client *c, const char *collection,
		    enum msce_watch_from from,
		    const struct msce_cursor *cursor)
{
	int rc;

	if (c->watch_id != 0)
		return fail(c, MSCE_EBUSY, "this connection streams a watch "
					   "already");
	c->watch_lost = 0;
	if (collection != NULL && strlen(collection) > MSCE_MAX_COLLECTION)
		return fail(c, MSCE_ETOOBIG, "collection name over %d bytes",
			    MSCE_MAX_COLLECTION);
	memset(&c->wcur, 0, sizeof c->wcur);
	switch (from) {
	case MSCE_WATCH_FROM_START:
		break;
	case MSCE_WATCH_FROM_CURSOR:
		if (cursor == NULL || cursor->n > MSCE_CURSOR_MAX)
			return fail(c, MSCE_EINVAL,
				    "watch from a cursor: no valid cursor");
		c->wcur.n = cursor->n;
		memcpy(c->wcur.origin, cursor->origin,
		       cursor->n * sizeof cursor->origin[0]);
		memcpy(c->wcur.seq, cursor->seq,
		       cursor->n * sizeof cursor->seq[0]);
		break;
	case MSCE_WATCH_FROM_NOW: {
		msce_status *s;
		if ((rc = msce_status_get(c, &s)) != 0)
			return rc;
		msce_status_cursor(s, &c->wcur);
		msce_status_free(s);
		break;
	}
	default:
		return fail(c, MSCE_EINVAL, "watch: unknown starting point %d",
			    (int)from);
	}
	c->watch_all = collection == NULL;
	snprintf(c->watch_coll, sizeof c->watch_coll, "%s",
		 collection ? collection : "");
	if (c->pending != 0)
		return fail(c, MSCE_EBUSY,
			    "%zu pipelined puts still wait for msce_put_recv",
			    c->pending);
	if ((rc = ensure_connected(c)) != 0)
		return rc;
	return watch_send(c);
}

int msce_watch(msce_client *c, const char *collection,
	       const struct msce_cursor *after)
{
	return msce_watch_from(c, collection,
			       after ? MSCE_WATCH_FROM_CURSOR
				     : MSCE_WATCH_FROM_START,
			       after);
}

void msce_watch_cursor(const msce_client *c, struct msce_cursor *out)
{
	*out = c->wcur;
}

static void sleep_ms(uint64_t ms)
{
	struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000};
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

/* The connection under a watch was lost: reconnect (trying again with a
 * growing pause until deadline, 0 = forever) and resume. */
static int watch_resume(msce_client *c, uint64_t deadline)
{
	uint64_t pause = c->ci->retry_min_ms;
	int rc;

	c->watch_id = 0;
	c->watch_lost = 1;
	for (;;) {
		if ((rc = reconnect(c)) == 0 && (rc = watch_send(c)) == 0) {
			c->watch_lost = 0;
			return 0;
		}
		uint64_t now = link_now_ms();
		if (deadline && now + pause >= deadline)
			return rc;
		sleep_ms(pause);
		pause = pause * 2 < c->ci->retry_max_ms ? pause * 2
							: c->ci->retry_max_ms;
	}
}

int msce_watch_next(msce_client *c, struct msce_event *ev, uint64_t timeout_ms,
		    struct msce_cursor *cursor)
{
	uint64_t deadline = timeout_ms ? link_now_ms() + timeout_ms : 0;
	Msce__ClientResponse *r;
	const Msce__Change *ch;
	int rc;

	drop_event(c);
	if (c->watch_id == 0 && c->watch_lost &&
	    (rc = watch_resume(c, deadline)) != 0)
		return rc;
	if (c->watch_id == 0)
		return fail(c, MSCE_EINVAL, "no watch on this connection");
	for (;;) {
		uint64_t left = 0;
		if (deadline) {
			uint64_t now = link_now_ms();
			if (now >= deadline)
				return fail(c, MSCE_ETIMEOUT,
					    "no change within %llu ms",
					    (unsigned long long)timeout_ms);
			left = deadline - now;
		}
		rc = recv_response(c, c->watch_id, left, &r);
		if (rc == MSCE_ETIMEOUT && !lost(c, rc))
			return rc;
		if (rc != 0 && can_reconnect(c) && lost(c, rc)) {
			if ((rc = watch_resume(c, deadline)) != 0)
				return rc;
			continue;
		}
		if (rc)
			return rc;
		if (r->code == MSCE_ECLOSED && can_reconnect(c)) {
			/* The node is shutting down: resume elsewhere or
			 * once it is back. */
			msce__client_response__free_unpacked(r, NULL);
			if ((rc = watch_resume(c, deadline)) != 0)
				return rc;
			continue;
		}
		if (r->code != 0 ||
		    r->result_case != MSCE__CLIENT_RESPONSE__RESULT_EVENT ||
		    r->event->change == NULL) {
			rc = r->code ? (int)r->code : MSCE_EPROTO;
			fail(c, rc, "watch ended: %s",
			     r->code ? r->error : "unexpected answer");
			msce__client_response__free_unpacked(r, NULL);
			c->watch_id = 0;
			return rc;
		}
		ch = r->event->change;
		if (codec_cursor_advance(&c->wcur, ch->origin, ch->seq))
			break;
		/* Already given before a reconnect. */
		msce__client_response__free_unpacked(r, NULL);
	}
	c->event = r;
	if (codec_event(ch, ev, &c->event_fields) != 0)
		return fail(c, MSCE_ENOMEM, "out of memory");
	if (cursor != NULL)
		codec_cursor_advance(cursor, ch->origin, ch->seq);
	return 0;
}

/* ---- for the domain helpers ------------------------------------------------------ */

int client_node_name(msce_client *c, const char **name)
{
	if (c->node_name[0] == '\0') {
		msce_status *s;
		int rc = msce_status_get(c, &s);
		if (rc)
			return rc;
		msce_status_free(s);
	}
	*name = c->node_name;
	return 0;
}

uint64_t *client_last_note_ms(msce_client *c) { return &c->last_note_ms; }
