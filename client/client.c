/* libmsce: requests and responses over a transport (transport.c: unix
 * socket or TCP + Noise). Each call sends one msce.ClientRequest and waits
 * for the response with the same id; results are copied into objects the
 * caller owns, so no protobuf type leaks into msce.h. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "client_internal.h"
#include "config.h"
#include "error.h"
#include "keyfile.h"
#include "pballoc.h"
#include "purpose.h"
#include "schema.h"
#include "transport.h"
#include "version.h"

#define MIN_SITES_DEFAULT_MS 10000 /* the node's wait when a put gives 0 */

struct msce_client {
	struct transport *t;
	uint64_t next_id;
	uint64_t watch_id; /* non-zero while streaming */
	Msce__ClientResponse *event; /* the last watch event, owned */
	struct msce_value *event_fields;
	char node_name[64];    /* learnt from status: the default note center */
	uint64_t last_note_ms; /* this client's notes get increasing times */
	size_t pending;	  /* pipelined puts not yet answered */
	char purpose[PURPOSE_MAX + 1]; /* sent with every request */
	unsigned timeout_ms; /* for each answer; 0 = none (msce_set_timeout) */
	char msg[512];
};

static int fail(msce_client *c, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int fail(msce_client *c, int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(c->msg, sizeof c->msg, fmt, ap);
	va_end(ap);
	return code;
}

const char *msce_strerror(int code) { return err_str(code); }
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

static msce_client *client_new(void)
{
	msce_client *c = calloc(1, sizeof *c);
	if (c != NULL)
		c->next_id = 1;
	return c;
}

/* ---- connections ------------------------------------------------------ */

int msce_connect_unix(const char *path, msce_client **out)
{
	msce_client *c = client_new();
	int rc;

	*out = c;
	if (c == NULL)
		return MSCE_ENOMEM;
	rc = transport_unix(path, &c->t, c->msg, sizeof c->msg);
	return rc;
}

int msce_connect_config(const char *config_path, msce_client **out)
{
	struct config cfg;
	struct err e;
	int rc;

	if ((rc = config_load(config_path, &cfg, &e)) != 0) {
		msce_client *c = client_new();
		*out = c;
		if (c == NULL)
			return MSCE_ENOMEM;
		return fail(c, rc, "%s", e.msg);
	}
	if (cfg.socket_path[0] == '\0') {
		msce_client *c = client_new();
		config_free(&cfg);
		*out = c;
		if (c == NULL)
			return MSCE_ENOMEM;
		return fail(c, MSCE_ECONFIG, "%s: [node] socket is not set",
			    config_path);
	}
	rc = msce_connect_unix(cfg.socket_path, out);
	config_free(&cfg);
	return rc;
}

int msce_connect_tcp(const char *hostport, const char *key_file,
		     const char *node_key_base64, const char *cluster,
		     msce_client **out)
{
	msce_client *c = client_new();
	uint8_t pk[32], server[32], *sk;
	struct err e;
	int rc;

	*out = c;
	if (c == NULL)
		return MSCE_ENOMEM;
	if (sodium_init() < 0)
		return fail(c, MSCE_EIO, "libsodium failed to initialise");
	sk = sodium_malloc(32);
	if (sk == NULL)
		return fail(c, MSCE_ENOMEM, "out of memory");
	if ((rc = keyfile_load_secret(key_file, sk, pk, &e)) != 0 ||
	    (rc = key_from_base64(node_key_base64, server, &e)) != 0) {
		sodium_free(sk);
		return fail(c, rc, "%s", e.msg);
	}
	rc = transport_tcp(hostport, sk, server, cluster, &c->t, c->msg,
			   sizeof c->msg);
	sodium_free(sk); /* wipes it */
	return rc;
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
	if (c->t != NULL)
		transport_close(c->t);
	free(c);
}

/* ---- one request, one response ------------------------------------------ */

static int send_request(msce_client *c, Msce__ClientRequest *req)
{
	size_t n;
	uint8_t *buf;
	int rc;

	req->protocol = MSCE_CLIENT_PROTOCOL;
	n = msce__client_request__get_packed_size(req);

	if (c->t == NULL)
		return fail(c, MSCE_ECLOSED, "not connected");
	if (c->watch_id != 0)
		return fail(c, MSCE_EBUSY,
			    "this connection is streaming a watch; open "
			    "another one for requests");

	/* The client's purpose, unless the request names its own. */
	if (c->purpose[0] != '\0' &&
	    (req->purpose == NULL || req->purpose[0] == '\0')) {
		req->purpose = c->purpose;
		n = msce__client_request__get_packed_size(req);
	}
	buf = malloc(n ? n : 1);
	if (buf == NULL)
		return fail(c, MSCE_ENOMEM, "out of memory");
	msce__client_request__pack(req, buf);
	rc = transport_send(c->t, buf, n, c->msg, sizeof c->msg);
	free(buf);
	return rc;
}

int msce_set_timeout(msce_client *c, unsigned ms)
{
	if (c == NULL)
		return MSCE_EINVAL;
	c->timeout_ms = ms;
	if (c->t != NULL)
		transport_set_send_timeout(c->t, ms);
	return 0;
}

/* How long req may wait for its answer: the client's timeout, and a put
 * with min_sites also the time the node waits for the other centers. */
static uint64_t answer_timeout(const msce_client *c,
			       const Msce__ClientRequest *req)
{
	uint64_t t = c->timeout_ms;
	if (t == 0)
		return 0;
	if (req->op_case == MSCE__CLIENT_REQUEST__OP_PUT && req->put != NULL &&
	    req->put->min_sites > 1)
		t += req->put->timeout_ms ? req->put->timeout_ms
					  : MIN_SITES_DEFAULT_MS;
	return t;
}

static int recv_response(msce_client *c, uint64_t id, uint64_t timeout_ms,
			 Msce__ClientResponse **resp)
{
	for (;;) {
		uint8_t *buf;
		size_t len;
		int rc = transport_recv(c->t, &buf, &len, timeout_ms, c->msg,
					sizeof c->msg);
		if (rc)
			return rc;
		struct pb_limit lim;
		*resp = msce__client_response__unpack(
			pb_limit_init(&lim, pb_limit_for(len)), len, buf);
		free(buf);
		if (*resp == NULL)
			return fail(c, MSCE_EPROTO, "malformed response");
		if ((*resp)->id == id || (*resp)->id == 0)
			return 0;
		/* An answer to an earlier, abandoned request. */
		msce__client_response__free_unpacked(*resp, NULL);
	}
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
	req->id = c->next_id++;
	if ((rc = send_request(c, req)) != 0)
		return rc;
	if ((rc = recv_response(c, req->id, answer_timeout(c, req), resp)) != 0)
		return rc;
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

/* call_ok, and the answer must carry a result of kind want; what names
 * the request in the error. *resp is kept only on success. */
static int call_expect(msce_client *c, Msce__ClientRequest *req,
		       Msce__ClientResponse__ResultCase want, const char *what,
		       Msce__ClientResponse **resp)
{
	int rc = call_ok(c, req, resp);
	if (rc)
		return rc;
	if ((*resp)->result_case != want) {
		msce__client_response__free_unpacked(*resp, NULL);
		*resp = NULL;
		return fail(c, MSCE_EPROTO, "%s answered without its result",
			    what);
	}
	return 0;
}

/* ---- writes ------------------------------------------------------------------ */

static Msce__FieldIn *fields_in(const struct msce_field *f, size_t n,
				Msce__FieldIn ***ptrs)
{
	Msce__FieldIn *fs = calloc(n ? n : 1, sizeof *fs);
	*ptrs = calloc(n ? n : 1, sizeof **ptrs);
	if (fs == NULL || *ptrs == NULL) {
		free(fs);
		free(*ptrs);
		return NULL;
	}
	for (size_t i = 0; i < n; i++) {
		msce__field_in__init(&fs[i]);
		fs[i].name = (char *)f[i].name;
		fs[i].value.data = (uint8_t *)f[i].value;
		fs[i].value.len = f[i].value_len;
		fs[i].has_base = f[i].has_base;
		fs[i].base_hlc = f[i].base_hlc;
		fs[i].base_origin = f[i].base_origin;
		(*ptrs)[i] = &fs[i];
	}
	return fs;
}

static void fill_result(const Msce__ClientResponse *r,
			struct msce_write_result *res)
{
	if (res == NULL)
		return;
	memset(res, 0, sizeof *res);
	if (r->result_case == MSCE__CLIENT_RESPONSE__RESULT_PUT) {
		res->origin = r->put->origin;
		res->seq = r->put->seq;
		res->hlc = r->put->hlc;
		res->sites = r->put->sites;
	}
}

static int write_call(msce_client *c, Msce__PutRequest *p,
		      struct msce_write_result *res)
{
	Msce__ClientRequest req = MSCE__CLIENT_REQUEST__INIT;
	Msce__ClientResponse *r;
	int rc;

	req.op_case = MSCE__CLIENT_REQUEST__OP_PUT;
	req.put = p;
	if ((rc = client_call(c, &req, &r)) != 0)
		return rc;
	rc = (int)r->code;
	/* A min_sites timeout still reports the committed change. */
	if (rc == 0 || rc == MSCE_ETIMEOUT)
		fill_result(r, res);
	msce__client_response__free_unpacked(r, NULL);
	return rc;
}

int msce_put_opts(msce_client *c, const char *collection, const char *key,
		  const struct msce_field *fields, size_t n,
		  const struct msce_put_opts *opts,
		  struct msce_write_result *res)
{
	Msce__PutRequest p = MSCE__PUT_REQUEST__INIT;
	Msce__FieldIn **fp;
	Msce__FieldIn *fs = fields_in(fields, n, &fp);
	int rc;

	if (fs == NULL)
		return fail(c, MSCE_ENOMEM, "out of memory");
	p.collection = (char *)collection;
	p.key = (char *)key;
	p.n_fields = n;
	p.fields = fp;
	if (opts != NULL) {
		p.min_sites = opts->min_sites;
		p.timeout_ms = opts->timeout_ms;
	}
	rc = write_call(c, &p, res);
	free(fs);
	free(fp);
	return rc;
}

int msce_put_send(msce_client *c, const char *collection, const char *key,
		  const struct msce_field *fields, size_t n, uint64_t *id)
{
	Msce__ClientRequest req = MSCE__CLIENT_REQUEST__INIT;
	Msce__PutRequest p = MSCE__PUT_REQUEST__INIT;
	Msce__FieldIn **fp;
	Msce__FieldIn *fs = fields_in(fields, n, &fp);
	int rc;

	if (fs == NULL)
		return fail(c, MSCE_ENOMEM, "out of memory");
	p.collection = (char *)collection;
	p.key = (char *)key;
	p.n_fields = n;
	p.fields = fp;
	req.op_case = MSCE__CLIENT_REQUEST__OP_PUT;
	req.put = &p;
	req.id = c->next_id++;
	rc = send_request(c, &req);
	free(fs);
	free(fp);
	if (rc == 0) {
		c->pending++;
		if (id)
			*id = req.id;
	}
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
	rc = transport_recv(c->t, &buf, &len, c->timeout_ms, c->msg,
			    sizeof c->msg);
	if (rc)
		return rc;
	struct pb_limit lim;
	r = msce__client_response__unpack(pb_limit_init(&lim, pb_limit_for(len)),
					  len, buf);
	free(buf);
	if (r == NULL)
		return fail(c, MSCE_EPROTO, "malformed response");
	c->pending--;
	if (id)
		*id = r->id;
	rc = (int)r->code;
	if (rc)
		fail(c, rc, "%s", r->error);
	else
		fill_result(r, res);
	msce__client_response__free_unpacked(r, NULL);
	return rc;
}

size_t msce_pending(const msce_client *c) { return c->pending; }

int msce_put(msce_client *c, const char *collection, const char *key,
	     const struct msce_field *fields, size_t n,
	     struct msce_write_result *res)
{
	return msce_put_opts(c, collection, key, fields, n, NULL, res);
}

int msce_delete(msce_client *c, const char *collection, const char *key,
		struct msce_write_result *res)
{
	Msce__PutRequest p = MSCE__PUT_REQUEST__INIT;
	p.collection = (char *)collection;
	p.key = (char *)key;
	p.delete_ = 1;
	return write_call(c, &p, res);
}

int msce_put_batch(msce_client *c, const struct msce_put *puts, size_t n,
		   struct msce_write_result *res, int *codes)
{
	Msce__ClientRequest req = MSCE__CLIENT_REQUEST__INIT;
	Msce__BatchPutRequest b = MSCE__BATCH_PUT_REQUEST__INIT;
	Msce__PutRequest *ps = calloc(n ? n : 1, sizeof *ps);
	Msce__PutRequest **pp = calloc(n ? n : 1, sizeof *pp);
	Msce__FieldIn **fsets = calloc(n ? n : 1, sizeof *fsets);
	Msce__FieldIn ***fptrs = calloc(n ? n : 1, sizeof *fptrs);
	Msce__ClientResponse *r = NULL;
	int rc = 0;

	if (ps == NULL || pp == NULL || fsets == NULL || fptrs == NULL) {
		rc = fail(c, MSCE_ENOMEM, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		msce__put_request__init(&ps[i]);
		ps[i].collection = (char *)puts[i].collection;
		ps[i].key = (char *)puts[i].key;
		ps[i].delete_ = puts[i].is_delete;
		if (!puts[i].is_delete) {
			fsets[i] = fields_in(puts[i].fields, puts[i].nfields,
					     &fptrs[i]);
			if (fsets[i] == NULL) {
				rc = fail(c, MSCE_ENOMEM, "out of memory");
				goto out;
			}
			ps[i].fields = fptrs[i];
			ps[i].n_fields = puts[i].nfields;
		}
		pp[i] = &ps[i];
	}
	b.n_puts = n;
	b.puts = pp;
	req.op_case = MSCE__CLIENT_REQUEST__OP_BATCH;
	req.batch = &b;
	if ((rc = call_ok(c, &req, &r)) != 0)
		goto out;
	if (r->result_case != MSCE__CLIENT_RESPONSE__RESULT_BATCH ||
	    r->batch->n_results != n) {
		rc = fail(c, MSCE_EPROTO, "batch answer does not match");
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		const Msce__ClientResponse *it = r->batch->results[i];
		if (codes)
			codes[i] = (int)it->code;
		if (res)
			fill_result(it, &res[i]);
	}
out:
	if (r)
		msce__client_response__free_unpacked(r, NULL);
	for (size_t i = 0; fsets && i < n; i++) {
		free(fsets[i]);
		free(fptrs[i]);
	}
	free(ps);
	free(pp);
	free(fsets);
	free(fptrs);
	return rc;
}

/* ---- records ------------------------------------------------------------------ */

struct msce_record {
	char *collection, *key;
	size_t n;
	struct msce_value *f;
	uint32_t *seen;
	size_t nseen;
	Msce__Record *m; /* owns the strings and values */
};

static msce_record *record_from(Msce__Record *m)
{
	msce_record *r = calloc(1, sizeof *r);
	if (r == NULL)
		return NULL;
	r->m = m;
	r->collection = m->collection;
	r->key = m->key;
	r->n = m->n_fields;
	r->f = calloc(r->n ? r->n : 1, sizeof *r->f);
	if (r->f == NULL) {
		free(r);
		return NULL;
	}
	for (size_t i = 0; i < r->n; i++) {
		const Msce__FieldVersion *w = m->fields[i]->winner;
		r->f[i].name = w->name;
		r->f[i].value = w->value.data;
		r->f[i].value_len = w->value.len;
		r->f[i].hlc = w->hlc;
		r->f[i].origin = w->origin;
		r->f[i].nconflicts = m->fields[i]->n_losers;
	}
	return r;
}

int msce_get(msce_client *c, const char *collection, const char *key,
	     msce_record **out)
{
	return msce_get_fields(c, collection, key, NULL, 0, out);
}

int msce_get_fields(msce_client *c, const char *collection, const char *key,
		    const char *const *fields, size_t nfields,
		    msce_record **out)
{
	Msce__ClientRequest req = MSCE__CLIENT_REQUEST__INIT;
	Msce__GetRequest g = MSCE__GET_REQUEST__INIT;
	Msce__ClientResponse *r;
	int rc;

	*out = NULL;
	g.collection = (char *)collection;
	g.key = (char *)key;
	g.n_fields = nfields;
	g.fields = (char **)fields;
	req.op_case = MSCE__CLIENT_REQUEST__OP_GET;
	req.get = &g;
	if ((rc = call_ok(c, &req, &r)) != 0)
		return rc;
	if (r->result_case != MSCE__CLIENT_RESPONSE__RESULT_RECORD ||
	    r->record->record == NULL) {
		msce__client_response__free_unpacked(r, NULL);
		return fail(c, MSCE_EPROTO, "get answered without a record");
	}
	/* Take the record and seen_by out of the response. */
	Msce__Record *m = r->record->record;
	r->record->record = NULL;
	*out = record_from(m);
	if (*out == NULL) {
		msce__record__free_unpacked(m, NULL);
		msce__client_response__free_unpacked(r, NULL);
		return fail(c, MSCE_ENOMEM, "out of memory");
	}
	(*out)->nseen = r->record->n_seen_by;
	(*out)->seen = malloc(((*out)->nseen ? (*out)->nseen : 1) *
			      sizeof(uint32_t));
	if ((*out)->seen != NULL && (*out)->nseen)
		memcpy((*out)->seen, r->record->seen_by,
		       (*out)->nseen * sizeof(uint32_t));
	else
		(*out)->nseen = 0;
	msce__client_response__free_unpacked(r, NULL);
	return 0;
}

const char *msce_record_collection(const msce_record *r)
{
	return r->collection;
}
const char *msce_record_key(const msce_record *r) { return r->key; }
size_t msce_record_nfields(const msce_record *r) { return r->n; }
const struct msce_value *msce_record_field(const msce_record *r, size_t i)
{
	return i < r->n ? &r->f[i] : NULL;
}
const struct msce_value *msce_record_find(const msce_record *r,
					  const char *name)
{
	for (size_t i = 0; i < r->n; i++)
		if (strcmp(r->f[i].name, name) == 0)
			return &r->f[i];
	return NULL;
}
size_t msce_record_seen_by(const msce_record *r, const uint32_t **nodes)
{
	*nodes = r->seen;
	return r->nseen;
}

static void record_release(msce_record *r, int free_msg)
{
	if (r == NULL)
		return;
	if (free_msg && r->m)
		msce__record__free_unpacked(r->m, NULL);
	free(r->f);
	free(r->seen);
}

void msce_record_free(msce_record *r)
{
	record_release(r, 1);
	free(r);
}

struct msce_page {
	Msce__ClientResponse *resp;
	msce_record *recs;
	size_t n;
};

int msce_scan(msce_client *c, const char *collection,
	      const struct msce_scan_opts *opts, msce_page **out)
{
	Msce__ClientRequest req = MSCE__CLIENT_REQUEST__INIT;
	Msce__ScanRequest s = MSCE__SCAN_REQUEST__INIT;
	Msce__ClientResponse *r;
	msce_page *p;
	int rc;

	*out = NULL;
	s.collection = (char *)collection;
	if (opts != NULL) {
		if (opts->prefix)
			s.prefix = (char *)opts->prefix;
		if (opts->after)
			s.after = (char *)opts->after;
		if (opts->end)
			s.end = (char *)opts->end;
		s.limit = opts->limit;
	}
	req.op_case = MSCE__CLIENT_REQUEST__OP_SCAN;
	req.scan = &s;
	if ((rc = call_expect(c, &req, MSCE__CLIENT_RESPONSE__RESULT_SCAN,
			      "scan", &r)) != 0)
		return rc;
	p = calloc(1, sizeof *p);
	if (p != NULL)
		p->recs = calloc(r->scan->n_records ? r->scan->n_records : 1,
				 sizeof *p->recs);
	if (p == NULL || p->recs == NULL) {
		free(p);
		msce__client_response__free_unpacked(r, NULL);
		return fail(c, MSCE_ENOMEM, "out of memory");
	}
	p->resp = r;
	for (size_t i = 0; i < r->scan->n_records; i++) {
		msce_record *one = record_from(r->scan->records[i]);
		if (one == NULL) {
			msce_page_free(p);
			return fail(c, MSCE_ENOMEM, "out of memory");
		}
		p->recs[i] = *one;
		p->recs[i].m = NULL; /* owned by the response */
		free(one);
		p->n++;
	}
	*out = p;
	return 0;
}

size_t msce_page_count(const msce_page *p) { return p->n; }
const msce_record *msce_page_record(const msce_page *p, size_t i)
{
	return i < p->n ? &p->recs[i] : NULL;
}
const char *msce_page_next(const msce_page *p)
{
	return p->resp->scan->next[0] ? p->resp->scan->next : NULL;
}
void msce_page_free(msce_page *p)
{
	if (p == NULL)
		return;
	for (size_t i = 0; i < p->n; i++)
		record_release(&p->recs[i], 0);
	free(p->recs);
	msce__client_response__free_unpacked(p->resp, NULL);
	free(p);
}

/* ---- status ------------------------------------------------------------------ */

struct msce_status {
	Msce__ClientResponse *resp;
	char digest[65];
	struct msce_peer_status *peers;
};

int msce_status_get(msce_client *c, msce_status **out)
{
	Msce__ClientRequest req = MSCE__CLIENT_REQUEST__INIT;
	Msce__StatusRequest sr = MSCE__STATUS_REQUEST__INIT;
	Msce__ClientResponse *r;
	msce_status *s;
	int rc;

	*out = NULL;
	req.op_case = MSCE__CLIENT_REQUEST__OP_STATUS;
	req.status = &sr;
	if ((rc = call_expect(c, &req, MSCE__CLIENT_RESPONSE__RESULT_STATUS,
			      "status", &r)) != 0)
		return rc;
	s = calloc(1, sizeof *s);
	if (s != NULL)
		s->peers = calloc(r->status->n_peers ? r->status->n_peers : 1,
				  sizeof *s->peers);
	if (s == NULL || s->peers == NULL) {
		free(s);
		msce__client_response__free_unpacked(r, NULL);
		return fail(c, MSCE_ENOMEM, "out of memory");
	}
	s->resp = r;
	for (size_t i = 0; i < r->status->digest.len && i < 32; i++)
		sprintf(s->digest + 2 * i, "%02x", r->status->digest.data[i]);
	for (size_t i = 0; i < r->status->n_peers; i++) {
		const Msce__PeerStatus *p = r->status->peers[i];
		s->peers[i] = (struct msce_peer_status){
			p->node, p->connected, p->lag_changes, p->lag_ms,
			p->last_contact_ms, p->clock_offset_ms};
	}
	snprintf(c->node_name, sizeof c->node_name, "%s", r->status->name);
	*out = s;
	return 0;
}

uint32_t msce_status_node(const msce_status *s) { return s->resp->status->node; }
const char *msce_status_name(const msce_status *s)
{
	return s->resp->status->name;
}
const char *msce_status_digest(const msce_status *s) { return s->digest; }
size_t msce_status_npeers(const msce_status *s)
{
	return s->resp->status->n_peers;
}
const struct msce_peer_status *msce_status_peer(const msce_status *s, size_t i)
{
	return i < s->resp->status->n_peers ? &s->peers[i] : NULL;
}
uint64_t msce_status_counter(const msce_status *s, const char *name)
{
	for (size_t i = 0; i < s->resp->status->n_counters; i++)
		if (strcmp(s->resp->status->counters[i]->name, name) == 0)
			return s->resp->status->counters[i]->value;
	return 0;
}
const char *msce_status_client(const msce_status *s)
{
	return s->resp->status->client;
}
const char *msce_status_role(const msce_status *s)
{
	return s->resp->status->role;
}
uint64_t msce_status_conflicts(const msce_status *s)
{
	return s->resp->status->conflicts;
}
void msce_status_cursor(const msce_status *s, struct msce_cursor *out)
{
	const Msce__StatusResult *st = s->resp->status;
	out->n = 0;
	for (size_t i = 0; i < st->n_vv && out->n < MSCE_CURSOR_MAX; i++) {
		out->origin[out->n] = st->vv[i]->origin;
		out->seq[out->n++] = st->vv[i]->seq;
	}
}
void msce_status_free(msce_status *s)
{
	if (s == NULL)
		return;
	msce__client_response__free_unpacked(s->resp, NULL);
	free(s->peers);
	free(s);
}

/* ---- conflicts ------------------------------------------------------------------ */

struct msce_conflicts {
	Msce__ClientResponse *resp;
	struct msce_conflict *items;
	size_t n;
};

static void value_from(struct msce_value *v, const Msce__FieldVersion *f)
{
	v->name = f->name;
	v->value = f->value.data;
	v->value_len = f->value.len;
	v->hlc = f->hlc;
	v->origin = f->origin;
	v->nconflicts = 0;
}

int msce_conflicts_list(msce_client *c, const char *collection,
			unsigned limit, msce_conflicts **out)
{
	Msce__ClientRequest req = MSCE__CLIENT_REQUEST__INIT;
	Msce__ConflictsRequest q = MSCE__CONFLICTS_REQUEST__INIT;
	Msce__ClientResponse *r;
	msce_conflicts *l;
	int rc;

	*out = NULL;
	if (collection)
		q.collection = (char *)collection;
	q.limit = limit;
	req.op_case = MSCE__CLIENT_REQUEST__OP_CONFLICTS;
	req.conflicts = &q;
	if ((rc = call_expect(c, &req, MSCE__CLIENT_RESPONSE__RESULT_CONFLICTS,
			      "conflicts", &r)) != 0)
		return rc;
	l = calloc(1, sizeof *l);
	if (l != NULL)
		l->items = calloc(r->conflicts->n_conflicts
					  ? r->conflicts->n_conflicts
					  : 1,
				  sizeof *l->items);
	if (l == NULL || l->items == NULL) {
		free(l);
		msce__client_response__free_unpacked(r, NULL);
		return fail(c, MSCE_ENOMEM, "out of memory");
	}
	l->resp = r;
	l->n = r->conflicts->n_conflicts;
	for (size_t i = 0; i < l->n; i++) {
		const Msce__Conflict *m = r->conflicts->conflicts[i];
		l->items[i].collection = m->collection;
		l->items[i].key = m->key;
		l->items[i].field = m->field;
		if (m->winner == NULL || m->loser == NULL) {
			msce_conflicts_free(l);
			return fail(c, MSCE_EPROTO, "conflict without values");
		}
		value_from(&l->items[i].winner, m->winner);
		value_from(&l->items[i].loser, m->loser);
		l->items[i].is_delete = m->delete_;
	}
	*out = l;
	return 0;
}

size_t msce_conflicts_count(const msce_conflicts *l) { return l->n; }
const struct msce_conflict *msce_conflicts_get(const msce_conflicts *l,
					       size_t i)
{
	return i < l->n ? &l->items[i] : NULL;
}
void msce_conflicts_free(msce_conflicts *l)
{
	if (l == NULL)
		return;
	msce__client_response__free_unpacked(l->resp, NULL);
	free(l->items);
	free(l);
}

int msce_resolve(msce_client *c, const char *collection, const char *key,
		 const char *field, const void *value, size_t value_len,
		 struct msce_write_result *res)
{
	Msce__ClientRequest req = MSCE__CLIENT_REQUEST__INIT;
	Msce__ResolveRequest rs = MSCE__RESOLVE_REQUEST__INIT;
	Msce__ClientResponse *r;
	int rc;

	rs.collection = (char *)collection;
	rs.key = (char *)key;
	rs.field = (char *)field;
	rs.value.data = (uint8_t *)value;
	rs.value.len = value_len;
	req.op_case = MSCE__CLIENT_REQUEST__OP_RESOLVE;
	req.resolve = &rs;
	if ((rc = call_ok(c, &req, &r)) != 0)
		return rc;
	fill_result(r, res);
	msce__client_response__free_unpacked(r, NULL);
	return 0;
}

/* ---- watch ------------------------------------------------------------------------ */

int msce_watch(msce_client *c, const char *collection,
	       const struct msce_cursor *after)
{
	Msce__ClientRequest req = MSCE__CLIENT_REQUEST__INIT;
	Msce__WatchRequest w = MSCE__WATCH_REQUEST__INIT;
	Msce__VVEntry vs[MSCE_CURSOR_MAX], *vp[MSCE_CURSOR_MAX];
	int rc;

	if (after != NULL) {
		if (after->n > MSCE_CURSOR_MAX)
			return fail(c, MSCE_EINVAL, "cursor over %d origins",
				    MSCE_CURSOR_MAX);
		for (size_t i = 0; i < after->n; i++) {
			msce__vventry__init(&vs[i]);
			vs[i].origin = after->origin[i];
			vs[i].seq = after->seq[i];
			vp[i] = &vs[i];
		}
		w.n_after = after->n;
		w.after = vp;
	}
	if (collection)
		w.collection = (char *)collection;
	req.op_case = MSCE__CLIENT_REQUEST__OP_WATCH;
	req.watch = &w;
	req.id = c->next_id++;
	if ((rc = send_request(c, &req)) != 0)
		return rc;
	c->watch_id = req.id;
	return 0;
}

static void cursor_advance(struct msce_cursor *cur, uint32_t origin,
			   uint64_t seq)
{
	for (size_t i = 0; i < cur->n; i++)
		if (cur->origin[i] == origin) {
			if (seq > cur->seq[i])
				cur->seq[i] = seq;
			return;
		}
	if (cur->n < MSCE_CURSOR_MAX) {
		cur->origin[cur->n] = origin;
		cur->seq[cur->n++] = seq;
	}
}

int msce_watch_next(msce_client *c, struct msce_event *ev, uint64_t timeout_ms,
		    struct msce_cursor *cursor)
{
	Msce__ClientResponse *r;
	const Msce__Change *ch;
	int rc;

	if (c->watch_id == 0)
		return fail(c, MSCE_EINVAL, "no watch on this connection");
	drop_event(c);
	rc = recv_response(c, c->watch_id, timeout_ms ? timeout_ms : 0, &r);
	if (rc)
		return rc;
	if (r->code != 0 || r->result_case != MSCE__CLIENT_RESPONSE__RESULT_EVENT ||
	    r->event->change == NULL) {
		rc = r->code ? (int)r->code : MSCE_EPROTO;
		fail(c, rc, "watch ended: %s",
		     r->code ? r->error : "unexpected answer");
		msce__client_response__free_unpacked(r, NULL);
		c->watch_id = 0;
		return rc;
	}
	ch = r->event->change;
	c->event = r;
	c->event_fields = calloc(ch->n_fields ? ch->n_fields : 1,
				 sizeof *c->event_fields);
	if (c->event_fields == NULL)
		return fail(c, MSCE_ENOMEM, "out of memory");
	for (size_t i = 0; i < ch->n_fields; i++) {
		c->event_fields[i].name = ch->fields[i]->name;
		c->event_fields[i].value = ch->fields[i]->value.data;
		c->event_fields[i].value_len = ch->fields[i]->value.len;
		c->event_fields[i].hlc = ch->hlc;
		c->event_fields[i].origin = ch->origin;
	}
	ev->collection = ch->collection;
	ev->key = ch->key;
	ev->is_delete = ch->op == MSCE__CHANGE__OP__DELETE;
	ev->origin = ch->origin;
	ev->seq = ch->seq;
	ev->hlc = ch->hlc;
	ev->nfields = ch->n_fields;
	ev->fields = c->event_fields;
	if (cursor != NULL)
		cursor_advance(cursor, ch->origin, ch->seq);
	return 0;
}

/* ---- backup -------------------------------------------------------------------------- */

int msce_backup(msce_client *c, const char *path, uint64_t *bytes)
{
	Msce__ClientRequest req = MSCE__CLIENT_REQUEST__INIT;
	Msce__BackupRequest b = MSCE__BACKUP_REQUEST__INIT;
	Msce__ClientResponse *r;
	int rc;

	b.path = (char *)path;
	req.op_case = MSCE__CLIENT_REQUEST__OP_BACKUP;
	req.backup = &b;
	if ((rc = call_ok(c, &req, &r)) != 0)
		return rc;
	if (bytes != NULL)
		*bytes = r->result_case == MSCE__CLIENT_RESPONSE__RESULT_BACKUP
				 ? r->backup->bytes
				 : 0;
	msce__client_response__free_unpacked(r, NULL);
	return 0;
}

/* ---- domain helpers ---------------------------------------------------------------- */

/* Collects the non-NULL members as fields and checks them with the same
 * rules the node uses (format only: whether the record exists, and so
 * whether required fields apply, is the node's call). */
static int domain_put(msce_client *c, const char *coll, const char *key,
		      const char *const *names, const char *const *values,
		      size_t n, struct msce_write_result *res)
{
	struct msce_field f[16];
	struct schema_field sf[16];
	size_t k = 0;
	struct err e;
	int rc;

	for (size_t i = 0; i < n && k < 16; i++) {
		if (values[i] == NULL)
			continue;
		f[k] = (struct msce_field){names[i], values[i],
					   strlen(values[i]), 0, 0, 0};
		sf[k] = (struct schema_field){names[i], strlen(names[i]),
					      (const uint8_t *)values[i],
					      strlen(values[i])};
		k++;
	}
	if (k == 0)
		return fail(c, MSCE_EINVAL, "%s %s: no field to write", coll,
			    key);
	err_clear(&e);
	rc = schema_validate_put(coll, strlen(coll), key, strlen(key), sf, k, 0,
				 &e);
	if (rc)
		return fail(c, rc, "%s", e.msg);
	return msce_put(c, coll, key, f, k, res);
}

int msce_registration_put(msce_client *c, const struct msce_registration *r,
			  struct msce_write_result *res)
{
	static const char *const names[] = {
		"name",	    "nationality", "document_type", "document_number",
		"birth_date", "phone",	   "email",	    "address",
		"district", "visa_type",   "visa_expiry",   "registered_at",
		"center"};
	const char *values[] = {r->name,	r->nationality, r->document_type,
				r->document_number, r->birth_date, r->phone,
				r->email,	r->address,	r->district,
				r->visa_type,	r->visa_expiry, r->registered_at,
				r->center};
	char key[128];

	if (r->nationality == NULL || r->document_number == NULL)
		return fail(c, MSCE_EINVAL,
			    "registration: nationality and document_number "
			    "make the key and are required");
	snprintf(key, sizeof key, "%s:%s", r->nationality, r->document_number);
	return domain_put(c, "registration", key, names, values, 13, res);
}

int msce_case_put(msce_client *c, const char *case_key,
		  const struct msce_case *k, struct msce_write_result *res)
{
	static const char *const names[] = {"person", "category", "status",
					    "center", "assignee", "summary"};
	const char *values[] = {k->person, k->category, k->status,
				k->center, k->assignee, k->summary};
	return domain_put(c, "case", case_key, names, values, 6, res);
}

_Static_assert(MSCE_NOTE_ID_SIZE == SCHEMA_NOTE_ID_MAX + 1,
	       "msce.h and schema.h agree on the note id length");

#define NOTES_PAGE 500 /* notes per scan; the node also ends pages by size */

/* YYYYMMDDTHHMMSS.mmmZ-<center>-<16 hex>, later than this client's last
 * note, so one desk's notes keep their order within a millisecond. */
static void note_id_make(msce_client *c, const char *center, char *out)
{
	struct timespec ts;
	struct tm tm;
	uint8_t rnd[8];
	uint64_t ms;
	time_t sec;
	size_t o;

	clock_gettime(CLOCK_REALTIME, &ts);
	ms = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
	if (ms <= c->last_note_ms)
		ms = c->last_note_ms + 1;
	c->last_note_ms = ms;
	sec = (time_t)(ms / 1000);
	gmtime_r(&sec, &tm);
	o = strftime(out, MSCE_NOTE_ID_SIZE, "%Y%m%dT%H%M%S", &tm);
	o += (size_t)snprintf(out + o, MSCE_NOTE_ID_SIZE - o, ".%03uZ-%s-",
			      (unsigned)(ms % 1000), center);
	randombytes_buf(rnd, sizeof rnd);
	for (size_t i = 0; i < sizeof rnd; i++)
		o += (size_t)snprintf(out + o, MSCE_NOTE_ID_SIZE - o, "%02x",
				      rnd[i]);
}

int msce_case_note_put(msce_client *c, const char *case_key,
		       const struct msce_case_note *n, char *id,
		       struct msce_write_result *res)
{
	static const char *const names[] = {"text", "center", "author",
					    "written_at"};
	const char *values[] = {n->text, n->center, n->author, n->written_at};
	char nid[MSCE_NOTE_ID_SIZE], key[MSCE_MAX_KEY + 1];
	int rc;

	if (n->text == NULL)
		return fail(c, MSCE_EINVAL, "case_note.text: required");
	if (values[1] == NULL) {
		if (c->node_name[0] == '\0') {
			msce_status *s;
			if ((rc = msce_status_get(c, &s)) != 0)
				return rc;
			msce_status_free(s);
		}
		values[1] = c->node_name;
	}
	/* The center is part of the id: check it before making one. */
	if (!schema_center_valid(values[1], strlen(values[1])))
		return fail(c, MSCE_EINVAL,
			    "case_note.center: \"%s\" is not a center name "
			    "([a-z][a-z0-9-]{0,31})%s",
			    values[1],
			    n->center ? ""
				      : " (it is the node's name): give one");
	if (sodium_init() < 0)
		return fail(c, MSCE_EIO, "libsodium failed to initialize");
	note_id_make(c, values[1], nid);
	if ((size_t)snprintf(key, sizeof key, "%s/%s", case_key, nid) >=
	    sizeof key)
		return fail(c, MSCE_ETOOBIG,
			    "case_note: key: case key of %zu bytes, limit "
			    "%zu for a case with notes",
			    strlen(case_key), MSCE_MAX_KEY - 1 - strlen(nid));
	rc = domain_put(c, "case_note", key, names, values, 4, res);
	if (rc == 0 && id != NULL)
		memcpy(id, nid, strlen(nid) + 1);
	return rc;
}

int msce_case_add_note(msce_client *c, const char *case_key, const char *text,
		       struct msce_write_result *res)
{
	struct msce_case_note n = {.text = text};
	return msce_case_note_put(c, case_key, &n, NULL, res);
}

int msce_case_notes(msce_client *c, const char *case_key, msce_note_fn fn,
		    void *ctx)
{
	char prefix[MSCE_MAX_KEY + 2], after[MSCE_MAX_KEY + 1] = "";
	size_t pl = strlen(case_key) + 1;
	int rc;

	if (pl == 1 || pl + SCHEMA_NOTE_ID_MIN > MSCE_MAX_KEY)
		return fail(c, MSCE_EINVAL,
			    "case_note: case key of %zu bytes: no note key "
			    "can start with it",
			    pl - 1);
	snprintf(prefix, sizeof prefix, "%s/", case_key);
	for (;;) {
		struct msce_scan_opts o = {prefix, after[0] ? after : NULL,
					   NULL, NOTES_PAGE};
		const char *next;
		msce_page *p;

		if ((rc = msce_scan(c, "case_note", &o, &p)) != 0)
			return rc;
		for (size_t i = 0; i < msce_page_count(p); i++) {
			const msce_record *r = msce_page_record(p, i);
			const char *nid = msce_record_key(r) + pl;
			/* Case keys may hold '/': the notes of case "a/b"
			 * share the prefix "a/" but are not notes of "a". */
			if (!schema_note_id_valid(nid, strlen(nid)))
				continue;
			if (fn(ctx, nid, r) != 0) {
				msce_page_free(p);
				return 0;
			}
		}
		if ((next = msce_page_next(p)) == NULL) {
			msce_page_free(p);
			return 0;
		}
		snprintf(after, sizeof after, "%s", next);
		msce_page_free(p);
	}
}

int msce_event_put(msce_client *c, const char *date, const char *id,
		   const struct msce_event_rec *e,
		   struct msce_write_result *res)
{
	static const char *const names[] = {"title",	 "kind",   "center",
					    "starts_at", "ends_at", "capacity",
					    "description"};
	const char *values[] = {e->title,   e->kind,	 e->center,
				e->starts_at, e->ends_at, e->capacity,
				e->description};
	char key[160];
	snprintf(key, sizeof key, "%s/%s", date, id);
	return domain_put(c, "event", key, names, values, 7, res);
}
