/* SPDX-License-Identifier: Apache-2.0 */
/* Client requests: decode, check, do, answer.
 *
 * Reads (get, scan, status) are served at once from the store on the loop
 * thread. Writes (put, delete, batch) go to the group-commit writer and
 * are answered from its done callback, after the commit is durable; the
 * decoded request stays alive until then because the writes point into
 * it. A malformed request gets an error response (id 0 if it could not be
 * decoded) and the connection stays usable.
 *
 * Personal records (registration, case, case_note) are audited (audit.h):
 * a write's entry goes in the write's own batch; a read is answered only
 * once its entry is durable, and refused if it cannot be written. Reads
 * of them by ro and rw clients need a purpose; _audit is read by admins
 * only and written by nobody but the nodes. */
#include <stdlib.h>
#include <string.h>

#include "api_int.h"
#include "audit.h"
#include "bounds.h"
#include "client.pb-c.h"
#include "log.h"
#include "msce_version.h"
#include "pballoc.h"
#include "purpose.h"
#include "record_pb.h"
#include "schema.h"
#include "node.h"
#include "node_status.h"

#define SCAN_MAX_LIMIT MSCE_MAX_SCAN_LIMIT

/* r packed into a new buffer (*len bytes), or NULL when out of memory.
 * An answer too large for the connection becomes an error answer, never
 * a closed connection: then *big is set. */
static uint8_t *pack_reply(struct client_conn *c, const Msce__ClientResponse *r,
			   size_t *len, int *big)
{
	size_t n = msce__client_response__get_packed_size(r);
	Msce__ClientResponse err = MSCE__CLIENT_RESPONSE__INIT;
	char msg[200];
	uint8_t *buf;

	*big = n > client_conn_max_reply(c);
	if (*big) {
		snprintf(msg, sizeof msg,
			 "the answer would be %zu bytes, more than the %zu a "
			 "reply may hold: ask for less (fewer fields, a smaller "
			 "limit)",
			 n, client_conn_max_reply(c));
		err.id = r->id;
		err.code = MSCE_ETOOBIG;
		err.error = msg;
		r = &err;
		n = msce__client_response__get_packed_size(r);
	}
	buf = malloc(n ? n : 1);
	if (buf != NULL)
		msce__client_response__pack(r, buf);
	*len = n;
	return buf;
}

/* An error text as a proto3 string must be: valid UTF-8. Texts that quote
 * a client's bytes (cut to a length, maybe mid-character) get each byte
 * that is not part of a valid character replaced by '?'. */
static const char *utf8_text(const char *s, char *buf, size_t cap)
{
	size_t len = strlen(s), o = 0;

	if (schema_utf8_valid((const uint8_t *)s, len))
		return s;
	for (size_t i = 0; i < len && o + 4 < cap;) {
		size_t n = 1;
		while (n <= 4 && i + n <= len &&
		       !schema_utf8_valid((const uint8_t *)s + i, n))
			n++;
		if (n > 4 || i + n > len) {
			buf[o++] = '?';
			i++;
			continue;
		}
		memcpy(buf + o, s + i, n);
		o += n;
		i += n;
	}
	buf[o] = '\0';
	return buf;
}

static void reply(struct client_conn *c, const Msce__ClientResponse *r)
{
	size_t n;
	int big;
	Msce__ClientResponse safe;
	char text[1024];
	uint8_t *buf;

	if (r->error != NULL && r->error[0] != '\0') {
		const char *t = utf8_text(r->error, text, sizeof text);
		if (t != r->error) {
			safe = *r;
			safe.error = (char *)t;
			r = &safe;
		}
	}
	buf = pack_reply(c, r, &n, &big);

	if (buf == NULL) {
		client_conn_reply(c, (const uint8_t *)"", 0);
		return;
	}
	client_conn_reply(c, buf, n);
	free(buf);
}

static void reply_error(struct client_conn *c, uint64_t id, int code,
			const char *msg)
{
	Msce__ClientResponse r = MSCE__CLIENT_RESPONSE__INIT;
	r.id = id;
	r.code = (uint32_t)code;
	r.error = (char *)msg;
	reply(c, &r);
}

void api_reply(struct client_conn *c, const Msce__ClientResponse *r)
{
	reply(c, r);
}

void api_reply_error(struct client_conn *c, uint64_t id, int code,
		     const char *msg)
{
	reply_error(c, id, code, msg);
}

/* ---- audited answers ----------------------------------------------------- */

struct audit_who api_who(struct node *n, const struct client_conn *c,
			 const char *purpose)
{
	int role = client_conn_role(c);
	return (struct audit_who){client_conn_name(c), config_role_name(role),
				  n->cfg.node_name,
				  audit_purpose(role, purpose)};
}

void api_committed(struct node *n)
{
	if (n->stopping)
		return;
	repl_local_commit(n->repl, node_now_ms());
	watch_pump(n);
}

struct held_reply {
	struct node *n;
	struct client_conn *c;
	uint64_t id;
	uint8_t *buf;
	size_t len;
};

static void held_done(void *arg, int rc, const char *msg)
{
	struct held_reply *h = arg;
	if (rc == 0)
		api_committed(h->n);
	if (rc == 0) {
		client_conn_reply(h->c, h->buf, h->len);
	} else {
		char why[ERR_MSG_MAX + 80];
		snprintf(why, sizeof why,
			 "not answered: the audit entry of this read could not "
			 "be written: %s",
			 msg);
		reply_error(h->c, h->id, rc, why);
	}
	free(h->buf);
	free(h);
}

void api_reply_audited(struct node *n, struct client_conn *c,
		       const char *purpose, const Msce__ClientResponse *r,
		       const char *op, struct audit_refs *refs)
{
	struct held_reply *h;
	struct audit_who who;
	size_t len;
	int big;
	uint8_t *buf;

	if (refs->n == 0 && !refs->oom) {
		audit_refs_free(refs);
		reply(c, r);
		return;
	}
	if (n->stopping) {
		audit_refs_free(refs);
		reply_error(c, r->id, MSCE_ECLOSED, "node is shutting down");
		return;
	}
	buf = pack_reply(c, r, &len, &big);
	h = buf != NULL && !big ? malloc(sizeof *h) : NULL;
	if (h == NULL) {
		/* Out of memory, or too big to answer: nothing is read. */
		if (buf != NULL)
			client_conn_reply(c, buf, len);
		else
			reply_error(c, r->id, MSCE_ENOMEM, "out of memory");
		free(buf);
		audit_refs_free(refs);
		return;
	}
	*h = (struct held_reply){n, c, r->id, buf, len};
	who = api_who(n, c, purpose);
	audit_submit(n->writer, op, &who, refs, held_done, h);
}

/* ---- writes ------------------------------------------------------------ */

struct write_ctx {
	struct writer_job job;
	struct node *n;
	struct client_conn *c;
	Msce__ClientRequest *req;
	Msce__ResolveRequest *resolve; /* when req was rewritten from it */
	char *field_name;
	struct store_write *w;
	struct store_field_in *f;
	struct store_written *out; /* one per put, only once one is refused */
	struct store_written *wout; /* one per write handed to the writer */
	size_t nw;		    /* puts in the request */
	size_t nsub;		    /* writes handed to the writer */
	size_t *pos;  /* where each put is in w (SIZE_MAX: refused early) */
	size_t held;  /* the decoded request's bytes, in n->write_backlog */
	struct audit_who who;
};

/* Decoded requests waiting for the writer, node-wide. Clients can send
 * faster than one writer commits (a 4 MiB batch decodes to about six
 * times that): over this, client connections are not read until half of
 * it is committed (client_server_hold_reads), so a flood waits in its
 * sockets, not in the node's memory. Many times what keeps the writer
 * busy (a commit of 4,096 registrations is about 10 MiB decoded). */
#define API_MAX_WRITE_BACKLOG (64u << 20)

static void backlog_add(struct node *n, size_t bytes)
{
	n->write_backlog += bytes;
	if (!n->reads_held && n->write_backlog >= API_MAX_WRITE_BACKLOG) {
		n->reads_held = 1;
		n->reads_held_total++;
		if (n->clients)
			client_server_hold_reads(n->clients, 1);
	}
}

static void backlog_sub(struct node *n, size_t bytes)
{
	n->write_backlog -= bytes;
	if (n->reads_held && n->write_backlog < API_MAX_WRITE_BACKLOG / 2) {
		n->reads_held = 0;
		if (n->clients)
			client_server_hold_reads(n->clients, 0);
	}
}

static void fill_put_result(Msce__PutResult *pr, const struct store_written *o)
{
	msce__put_result__init(pr);
	pr->origin = o->origin;
	pr->seq = o->seq;
	pr->hlc = o->hlc;
	pr->sites = 1;
}

/* ---- min_sites: answering a put once enough centers hold it ---------- */

struct waiter {
	struct client_conn *c;
	uint64_t id, seq, hlc, deadline;
	uint32_t origin, want;
	struct waiter *next;
};

static void wait_add(struct node *n, struct client_conn *c, uint64_t id,
		     const struct store_written *o, uint32_t want,
		     uint64_t deadline)
{
	struct waiter *w = calloc(1, sizeof *w);
	if (w == NULL) {
		reply_error(c, id, MSCE_ENOMEM, "out of memory");
		return;
	}
	*w = (struct waiter){c,	       id,   o->seq,	 o->hlc,
			     deadline, o->origin, want, n->waiters};
	n->waiters = w;
	api_check_waiters(n); /* peers may already hold it (relayed fast) */
}

/* Answers every waiter whose put enough centers now hold, or whose time
 * ran out (the write stays committed where it is; the client is told how
 * many centers had it). */
void api_check_waiters(struct node *n)
{
	struct waiter **pp = &n->waiters;
	uint64_t now = node_now_ms();

	while (*pp != NULL) {
		struct waiter *w = *pp;
		uint32_t ids[64];
		size_t k;
		if (!client_conn_open(w->c)) {
			/* The client went away: nobody to answer, and its
			 * connection is kept until the hold is released (with
			 * a center down and a long timeout, for good). */
			client_conn_reply(w->c, (const uint8_t *)"", 0);
			*pp = w->next;
			free(w);
			continue;
		}
		k = repl_holders(n->repl, w->origin, w->seq, ids, 64);
		if (k >= w->want || now >= w->deadline || n->stopping) {
			Msce__ClientResponse r = MSCE__CLIENT_RESPONSE__INIT;
			Msce__PutResult pr = MSCE__PUT_RESULT__INIT;
			char msg[160];
			r.id = w->id;
			pr.origin = w->origin;
			pr.seq = w->seq;
			pr.hlc = w->hlc;
			pr.sites = (uint32_t)k;
			r.result_case = MSCE__CLIENT_RESPONSE__RESULT_PUT;
			r.put = &pr;
			if (k < w->want) {
				snprintf(msg, sizeof msg,
					 "committed here, but only %zu of the "
					 "%u centers asked for hold it",
					 k, w->want);
				r.code = MSCE_ETIMEOUT;
				r.error = msg;
			}
			reply(w->c, &r);
			*pp = w->next;
			free(w);
			continue;
		}
		pp = &w->next;
	}
}

/* Put i's result: refused here, or the writer's (the audit entries
 * between the writes are the node's own). */
static const struct store_written *put_out(const struct write_ctx *x,
					   size_t i)
{
	return x->pos[i] == SIZE_MAX ? &x->out[i] : &x->wout[x->pos[i]];
}

static void write_done(struct writer_job *j)
{
	struct write_ctx *x = (struct write_ctx *)j;
	const struct store_written *o0 = put_out(x, 0);
	Msce__ClientResponse r = MSCE__CLIENT_RESPONSE__INIT;

	backlog_sub(x->n, x->held);
	r.id = x->req->id;
	if (j->rc != 0) {
		r.code = (uint32_t)j->rc;
		r.error = j->err.msg;
		reply(x->c, &r);
	} else if (x->req->op_case == MSCE__CLIENT_REQUEST__OP_BATCH) {
		Msce__BatchResult br = MSCE__BATCH_RESULT__INIT;
		Msce__ClientResponse *items = calloc(x->nw, sizeof *items);
		Msce__ClientResponse **ip = calloc(x->nw, sizeof *ip);
		Msce__PutResult *prs = calloc(x->nw, sizeof *prs);
		if (items == NULL || ip == NULL || prs == NULL) {
			r.code = MSCE_ENOMEM;
			r.error = "out of memory building the batch answer";
		} else {
			for (size_t i = 0; i < x->nw; i++) {
				const struct store_written *o = put_out(x, i);
				msce__client_response__init(&items[i]);
				items[i].id = i;
				items[i].code = (uint32_t)o->err.code;
				items[i].error = (char *)o->err.msg;
				if (o->err.code == 0) {
					fill_put_result(&prs[i], o);
					items[i].result_case =
						MSCE__CLIENT_RESPONSE__RESULT_PUT;
					items[i].put = &prs[i];
				}
				ip[i] = &items[i];
			}
			br.n_results = x->nw;
			br.results = ip;
			r.result_case = MSCE__CLIENT_RESPONSE__RESULT_BATCH;
			r.batch = &br;
		}
		reply(x->c, &r);
		free(items);
		free(ip);
		free(prs);
	} else if (o0->err.code == 0 && x->req->put->min_sites > 1 &&
		   !x->n->stopping) {
		/* Committed here; answered once enough centers hold it. */
		uint64_t t = x->req->put->timeout_ms ? x->req->put->timeout_ms
						      : 10000,
			 now = node_now_ms();
		/* A timeout near 2^64 waits for good, not wraps to the past. */
		wait_add(x->n, x->c, x->req->id, o0,
			 x->req->put->min_sites,
			 t > UINT64_MAX - now ? UINT64_MAX : now + t);
	} else {
		Msce__PutResult pr;
		r.code = (uint32_t)o0->err.code;
		r.error = (char *)o0->err.msg;
		if (r.code == 0) {
			fill_put_result(&pr, o0);
			r.result_case = MSCE__CLIENT_RESPONSE__RESULT_PUT;
			r.put = &pr;
		}
		reply(x->c, &r);
	}
	if (j->rc == 0 && !x->n->stopping && x->nsub > 0) {
		repl_local_commit(x->n->repl, node_now_ms());
		watch_pump(x->n);
	}
	if (x->resolve != NULL) {
		/* Put the request back as decoded before freeing it. */
		free(x->req->put->fields[0]);
		free(x->req->put->fields);
		free(x->req->put);
		x->resolve->field = x->field_name;
		x->req->op_case = MSCE__CLIENT_REQUEST__OP_RESOLVE;
		x->req->resolve = x->resolve;
	}
	pb_arena_free(x->req);
	free(x->w);
	free(x->f);
	free(x->out);
	free(x->wout);
	free(x->pos);
	free(x);
}

static int fill_write(const Msce__PutRequest *p, struct store_write *w,
		      struct store_field_in *f)
{
	w->op = p->delete_ ? STORE_DELETE : STORE_PUT;
	w->erase = p->delete_ && p->erase;
	w->coll = p->collection;
	w->coll_len = strlen(p->collection);
	w->key = p->key;
	w->key_len = strlen(p->key);
	w->fields = f;
	w->nfields = p->delete_ ? 0 : p->n_fields;
	for (size_t i = 0; i < w->nfields; i++) {
		const Msce__FieldIn *in = p->fields[i];
		f[i].name = in->name;
		f[i].name_len = strlen(in->name);
		f[i].value = in->value.data;
		f[i].value_len = in->value.len;
		/* A time with an offset is stored in UTC; that form is never
		 * longer, so it overwrites the decoded value. */
		size_t utc = schema_time_field_utc(
			p->collection, w->coll_len, in->name, f[i].name_len,
			in->value.data, in->value.len, in->value.data);
		if (utc)
			f[i].value_len = utc;
		f[i].has_base = in->has_base;
		f[i].base.hlc = in->base_hlc;
		f[i].base.origin = in->base_origin;
	}
	return 0;
}

static const char *write_op(const Msce__PutRequest *p, int resolve)
{
	return p->delete_ ? "delete" : resolve ? "resolve" : "put";
}

/* Audit entries for a request's writes: one after each run of writes of
 * personal records of one kind (put, delete), within AUDIT_LIST_MAX bytes
 * of lines, listing those of the run that commit (STORE_W_LIST); puts
 * refused before the writer (pos SIZE_MAX) are none of them. Marks in
 * ends[i] the writes an entry follows; returns how many entries. */
static size_t audit_runs(Msce__PutRequest *const *puts, size_t np,
			 const size_t *pos, unsigned char *ends)
{
	size_t runs = 0, bytes = 0, last = 0;
	int open = 0, kind = 0;

	for (size_t i = 0; i < np; i++) {
		const Msce__PutRequest *p = puts[i];
		size_t cl = strlen(p->collection), line;
		ends[i] = 0;
		if (pos[i] == SIZE_MAX || !audit_personal(p->collection, cl))
			continue;
		line = cl + 1 + strlen(p->key) + 1;
		if (open && (kind != p->delete_ || bytes + line > AUDIT_LIST_MAX)) {
			ends[last] = 1;
			runs++;
			bytes = 0;
		}
		open = 1;
		kind = p->delete_;
		bytes += line;
		last = i;
	}
	if (open) {
		ends[last] = 1;
		runs++;
	}
	return runs;
}

static void do_writes_owned(struct node *n, struct client_conn *c,
			    Msce__ClientRequest *req,
			    Msce__ResolveRequest *resolve);

static int check_write_coll(const char *coll, char *why, size_t len);

/* What refuses one put on its own, before the store sees it: its field
 * count, a min_sites the city cannot meet, an erasure by a non-admin or
 * without delete, a system collection. In a batch the others go on. 0, or
 * why p is refused, in e. */
static int put_refused(struct node *n, const struct client_conn *c,
		       const Msce__PutRequest *p, struct err *e)
{
	char why[ERR_MSG_MAX];
	int rc;

	if (p->n_fields > MSCE_MAX_FIELDS)
		return err_set(e, MSCE_ETOOBIG, "%zu fields, limit %d",
			       p->n_fields, MSCE_MAX_FIELDS);
	if (p->min_sites > n->nnodes)
		return err_set(e, MSCE_EINVAL,
			       "min_sites %u, but the cluster has %zu center%s",
			       p->min_sites, n->nnodes,
			       n->nnodes == 1 ? "" : "s");
	/* An erasure destroys the record's data key on every center: admin
	 * only, and only with delete. */
	if (p->erase && !p->delete_)
		return err_set(e, MSCE_EINVAL, "erase is a delete, not a put");
	if (p->erase && client_conn_role(c) < CONFIG_ROLE_ADMIN)
		return err_set(e, MSCE_EPERM,
			       "client \"%s\" has role %s, which may not erase",
			       client_conn_name(c),
			       config_role_name(client_conn_role(c)));
	if ((rc = check_write_coll(p->collection, why, sizeof why)))
		return err_set(e, rc, "%s", why);
	return 0;
}

static void do_writes(struct node *n, struct client_conn *c,
		      Msce__ClientRequest *req)
{
	do_writes_owned(n, c, req, NULL);
}

static void do_writes_owned(struct node *n, struct client_conn *c,
			    Msce__ClientRequest *req,
			    Msce__ResolveRequest *resolve)
{
	char why[256];
	if (node_write_gate(n, why, sizeof why) != 0) {
		reply_error(c, req->id, MSCE_EBUSY, why);
		if (resolve != NULL) {
			/* Undo the rewrite of a resolve before freeing. */
			resolve->field = req->put->fields[0]->name;
			free(req->put->fields[0]);
			free(req->put->fields);
			free(req->put);
			req->op_case = MSCE__CLIENT_REQUEST__OP_RESOLVE;
			req->resolve = resolve;
		}
		pb_arena_free(req);
		return;
	}
	Msce__PutRequest **puts;
	Msce__PutRequest *one[1];
	size_t np, nf = 0, k = 0, runs, r = 0;
	unsigned char *ends;
	struct write_ctx *x;

	if (req->op_case == MSCE__CLIENT_REQUEST__OP_BATCH) {
		puts = req->batch->puts;
		np = req->batch->n_puts;
		if (np == 0 || np > MSCE_MAX_BATCH) {
			reply_error(c, req->id, MSCE_EINVAL,
				    "batch must hold 1..10000 puts");
			pb_arena_free(req);
			return;
		}
	} else {
		one[0] = req->put;
		puts = one;
		np = 1;
	}
	for (size_t i = 0; i < np; i++)
		if (puts[i]->n_fields <= MSCE_MAX_FIELDS)
			nf += puts[i]->n_fields;
	x = calloc(1, sizeof *x);
	ends = malloc(np);
	if (x != NULL)
		x->pos = calloc(np, sizeof *x->pos);
	if (x == NULL || ends == NULL || x->pos == NULL)
		goto oom;
	/* Puts refused here are answered with the others, never written,
	 * and not audited. A result (540 bytes) is held for each only once
	 * one is refused: a batch in flight holds the writer's alone. */
	for (size_t i = 0; i < np; i++) {
		struct err why;
		x->pos[i] = 0;
		if (put_refused(n, c, puts[i], &why) == 0)
			continue;
		if (x->out == NULL &&
		    (x->out = calloc(np, sizeof *x->out)) == NULL)
			goto oom;
		x->out[i].err = why;
		x->pos[i] = SIZE_MAX;
	}
	runs = audit_runs(puts, np, x->pos, ends);
	x->w = calloc(np + runs, sizeof *x->w);
	x->f = calloc(nf + runs * AUDIT_MAX_FIELDS + 1, sizeof *x->f);
	/* store_write fills each one. */
	x->wout = malloc((np + runs) * sizeof *x->wout);
	if (x->w == NULL || x->f == NULL || x->wout == NULL)
		goto oom;
	/* The request owns every string the audit entries point to. */
	x->who = api_who(n, c, req->purpose);
	for (size_t i = 0; i < np; i++) {
		if (x->pos[i] == SIZE_MAX)
			continue;
		x->pos[i] = x->nsub;
		fill_write(puts[i], &x->w[x->nsub], x->f + k);
		k += x->w[x->nsub].nfields;
		if (audit_personal(puts[i]->collection,
				   strlen(puts[i]->collection)))
			x->w[x->nsub].op |= STORE_W_LISTED;
		/* A case names a person this center has seen; checked in
		 * the writer's transaction, so a registration earlier in the
		 * batch counts. A person registered at another center moments
		 * ago may not have arrived: the writer says so with
		 * allow_unknown_person. A resolve is not checked. */
		if (resolve == NULL && !puts[i]->delete_ &&
		    !puts[i]->allow_unknown_person &&
		    strcmp(puts[i]->collection, "case") == 0)
			x->w[x->nsub].op |= STORE_W_PERSON;
		x->nsub++;
		if (ends[i])
			audit_fill(&x->w[x->nsub++],
				   x->f + nf + r++ * AUDIT_MAX_FIELDS,
				   write_op(puts[i], resolve != NULL), &x->who,
				   NULL, 0, NULL, NULL);
	}
	free(ends);
	x->n = n;
	x->c = c;
	x->req = req;
	x->resolve = resolve;
	if (resolve != NULL)
		x->field_name = req->put->fields[0]->name;
	x->nw = np;
	if (x->nsub == 0) {
		write_done(&x->job); /* nothing to write: answer now */
		return;
	}
	x->job.kind = WRITER_WRITE;
	x->job.w = x->w;
	x->job.n = x->nsub;
	x->job.out = x->wout;
	x->job.done = write_done;
	x->held = pb_arena_held(req);
	backlog_add(n, x->held);
	writer_submit(n->writer, &x->job);
	return;
oom:
	if (x != NULL) {
		free(x->w);
		free(x->f);
		free(x->out);
		free(x->wout);
		free(x->pos);
	}
	free(x);
	free(ends);
	reply_error(c, req->id, MSCE_ENOMEM, "out of memory");
	pb_arena_free(req);
}

/* ---- reads --------------------------------------------------------------- */

/* A record with its visible fields (winners and open conflicts). */
static Msce__Record *record_new(const struct store_record_view *v)
{
	return record_pb_new(v->coll, v->coll_len, v->key, v->key_len, v->rec);
}

struct get_ctx {
	const Msce__GetRequest *g;
	Msce__Record *rec;
};

static int get_cb(void *ctx, const struct store_record_view *v)
{
	struct get_ctx *x = ctx;
	struct record part = *v->rec;
	struct store_record_view pv = *v;
	uint32_t k = 0;

	/* Only the fields asked for, if any were named. */
	if (x->g->n_fields > 0) {
		part.fields = calloc(v->rec->nfields ? v->rec->nfields : 1,
				     sizeof *part.fields);
		if (part.fields == NULL)
			return MSCE_ENOMEM;
		for (uint32_t i = 0; i < v->rec->nfields; i++)
			for (size_t j = 0; j < x->g->n_fields; j++)
				if (strlen(x->g->fields[j]) ==
					    v->rec->fields[i].name_len &&
				    memcmp(x->g->fields[j], v->rec->fields[i].name,
					   v->rec->fields[i].name_len) == 0) {
					part.fields[k++] = v->rec->fields[i];
					break;
				}
		part.nfields = k;
		pv.rec = &part;
	}
	x->rec = record_new(&pv);
	if (x->g->n_fields > 0)
		free(part.fields);
	return x->rec ? 0 : MSCE_ENOMEM;
}

static void do_get(struct node *n, struct client_conn *c,
		   const Msce__ClientRequest *req)
{
	const Msce__GetRequest *g = req->get;
	Msce__ClientResponse r = MSCE__CLIENT_RESPONSE__INIT;
	Msce__RecordResult rr = MSCE__RECORD_RESULT__INIT;
	Msce__Record *rec = NULL;
	struct get_ctx gx = {g, NULL};
	struct audit_refs refs = {0};
	size_t cl = strlen(g->collection);
	int personal = audit_personal(g->collection, cl);
	uint32_t seen[64];
	struct err e;
	int rc;

	if (g->n_fields > MSCE_MAX_RECORD_FIELDS) {
		/* Each name is compared with each field: bounded. */
		char why[128];
		snprintf(why, sizeof why,
			 "%zu field names asked for, at most %d (a record has "
			 "no more fields)",
			 g->n_fields, MSCE_MAX_RECORD_FIELDS);
		reply_error(c, req->id, MSCE_ETOOBIG, why);
		return;
	}
	err_clear(&e);
	rc = store_get(n->store, g->collection, cl, g->key, strlen(g->key),
		       get_cb, &gx, &e);
	rec = gx.rec;
	r.id = req->id;
	/* Found or not, the answer tells about that key: audited. */
	if (personal && (rc == 0 || rc == MSCE_ENOTFOUND))
		audit_refs_add(&refs, g->collection, cl, g->key,
			       strlen(g->key));
	if (rc) {
		r.code = (uint32_t)rc;
		r.error = e.msg[0] ? e.msg : (char *)err_str(rc);
		api_reply_audited(n, c, req->purpose, &r, "get", &refs);
		return;
	}
	/* Which centers are known to hold the newest write of the record. */
	uint32_t origin = 0;
	uint64_t seq = 0, hlc = 0;
	for (size_t i = 0; i < rec->n_fields; i++)
		if (rec->fields[i]->winner->hlc > hlc) {
			hlc = rec->fields[i]->winner->hlc;
			origin = rec->fields[i]->winner->origin;
			seq = rec->fields[i]->winner->seq;
		}
	size_t ns = 0;
	for (size_t i = 0; i < n->nnodes && ns < 64; i++) {
		uint64_t have = 0;
		if (n->nodes[i] == n->cfg.node_id) {
			have = store_vv_get(n->store, origin).seq;
		} else {
			struct repl_node_view *v = malloc(sizeof *v);
			if (v == NULL)
				continue;
			repl_node(n->repl, n->nodes[i], v);
			for (size_t k = 0; v->known && k < v->nvv; k++)
				if (v->vv[k].origin == origin)
					have = v->vv[k].seq;
			free(v);
		}
		if (have >= seq)
			seen[ns++] = n->nodes[i];
	}
	rr.record = rec;
	rr.n_seen_by = ns;
	rr.seen_by = seen;
	r.result_case = MSCE__CLIENT_RESPONSE__RESULT_RECORD;
	r.record = &rr;
	api_reply_audited(n, c, req->purpose, &r, "get", &refs);
	record_pb_free(rec);
}

#define SCAN_PAGE_FULL 1000 /* not an msce code: ends a page early */

struct scan_acc {
	Msce__Record **recs;
	size_t n, cap;
	size_t bytes, max_bytes;
	int oom;
	char big[MSCE_MAX_KEY + 1]; /* a record too large for a reply */
	size_t big_bytes;
};

static int scan_cb(void *ctx, const struct store_record_view *v)
{
	struct scan_acc *a = ctx;
	/* A page stops before it outgrows what the connection may carry. */
	size_t sz = record_encoded_size(v->rec) + v->key_len + 64;
	if (a->n > 0 && a->bytes + sz > a->max_bytes)
		return SCAN_PAGE_FULL;
	if (a->n == 0 && sz > 2 * a->max_bytes) {
		/* One record larger than a reply (merged from concurrent
		 * writes): say which, so the client reads it in parts and
		 * goes on after it. */
		snprintf(a->big, sizeof a->big, "%.*s", (int)v->key_len,
			 v->key);
		a->big_bytes = sz;
		return MSCE_ETOOBIG;
	}
	a->bytes += sz;
	if (a->n == a->cap) {
		size_t cap = a->cap ? a->cap * 2 : 64;
		Msce__Record **p = realloc(a->recs, cap * sizeof *p);
		if (p == NULL) {
			a->oom = 1;
			return MSCE_ENOMEM;
		}
		a->recs = p;
		a->cap = cap;
	}
	if ((a->recs[a->n] = record_new(v)) == NULL) {
		a->oom = 1;
		return MSCE_ENOMEM;
	}
	a->n++;
	return 0;
}

static void do_scan(struct node *n, struct client_conn *c,
		    const Msce__ClientRequest *req)
{
	const Msce__ScanRequest *q = req->scan;
	Msce__ClientResponse r = MSCE__CLIENT_RESPONSE__INIT;
	Msce__ScanResult sr = MSCE__SCAN_RESULT__INIT;
	struct scan_acc acc = {0};
	struct store_scan s = {0};
	struct audit_refs refs = {0};
	struct err e;
	size_t limit = q->limit ? q->limit : 100;
	int rc;

	if (limit > SCAN_MAX_LIMIT)
		limit = SCAN_MAX_LIMIT;
	s.coll = q->collection;
	s.coll_len = strlen(q->collection);
	s.prefix = q->prefix;
	s.prefix_len = strlen(q->prefix);
	if (q->after[0] != '\0') {
		s.after = q->after;
		s.after_len = strlen(q->after);
	}
	if (q->end[0] != '\0') {
		s.end = q->end;
		s.end_len = strlen(q->end);
	}
	s.limit = limit;
	err_clear(&e);
	acc.max_bytes = client_conn_max_reply(c) / 2;
	rc = store_scan(n->store, &s, scan_cb, &acc, &e);
	int page_full = rc == SCAN_PAGE_FULL;
	if (page_full)
		rc = 0;
	r.id = req->id;
	if (rc == MSCE_ETOOBIG && acc.big[0]) {
		err_set(&e, MSCE_ETOOBIG,
			"%s/%s is about %zu bytes, more than one reply holds: "
			"read it with get, some fields at a time, and scan on "
			"after it",
			q->collection, acc.big, acc.big_bytes);
	}
	if (rc) {
		r.code = (uint32_t)rc;
		r.error = e.msg[0] ? e.msg : (char *)err_str(rc);
	} else {
		sr.n_records = acc.n;
		sr.records = acc.recs;
		sr.next = (char *)(acc.n == limit || page_full
					   ? acc.recs[acc.n - 1]->key
					   : "");
		r.result_case = MSCE__CLIENT_RESPONSE__RESULT_SCAN;
		r.scan = &sr;
		/* Every record a page hands out is audited. */
		if (audit_personal(q->collection, s.coll_len))
			for (size_t i = 0; i < acc.n; i++)
				audit_refs_add(&refs, q->collection, s.coll_len,
					       acc.recs[i]->key,
					       strlen(acc.recs[i]->key));
	}
	api_reply_audited(n, c, req->purpose, &r, q->export ? "export" : "scan",
			  &refs);
	for (size_t i = 0; i < acc.n; i++)
		record_pb_free(acc.recs[i]);
	free(acc.recs);
}

/* ---- status ---------------------------------------------------------------- */

static void do_status(struct node *n, struct client_conn *c,
		      const Msce__ClientRequest *req)
{
	Msce__ClientResponse r = MSCE__CLIENT_RESPONSE__INIT;
	struct arena a;

	arena_init(&a, 0);
	r.status = node_status(n, &a);
	if (r.status == NULL) {
		reply_error(c, req->id, MSCE_ENOMEM, "out of memory");
	} else {
		/* Who asks: the CLI allows --reveal to admins only. */
		r.status->client = (char *)client_conn_name(c);
		r.status->role = (char *)config_role_name(client_conn_role(c));
		r.id = req->id;
		r.result_case = MSCE__CLIENT_RESPONSE__RESULT_STATUS;
		reply(c, &r);
	}
	arena_free(&a);
}

/* ---- conflicts, resolve, backup --------------------------------------------------- */

struct conf_acc {
	const char *coll;
	Msce__Conflict **items;
	size_t n, cap, limit;
	int oom;
};

static int conflict_cb(void *ctx, const struct store_conflict_view *v)
{
	struct conf_acc *a = ctx;
	Msce__Conflict *m;

	if (a->coll[0] != '\0' &&
	    (strlen(a->coll) != v->coll_len ||
	     memcmp(a->coll, v->coll, v->coll_len) != 0))
		return 0;
	if (a->n == a->limit)
		return 1;
	if (a->n == a->cap) {
		size_t cap = a->cap ? a->cap * 2 : 64;
		Msce__Conflict **p = realloc(a->items, cap * sizeof *p);
		if (p == NULL)
			goto oom;
		a->items = p;
		a->cap = cap;
	}
	m = calloc(1, sizeof *m);
	if (m == NULL)
		goto oom;
	msce__conflict__init(m);
	a->items[a->n++] = m;
	m->collection = strndup(v->coll, v->coll_len);
	m->key = strndup(v->key, v->key_len);
	m->field = strndup((const char *)v->field->name, v->field->name_len);
	m->winner = record_pb_fv(v->field, &v->field->w);
	m->loser = record_pb_fv(v->field, v->loser);
	m->delete_ = v->deleted;
	if (m->collection && m->key && m->field && m->winner && m->loser)
		return 0;
oom:
	a->oom = 1;
	return MSCE_ENOMEM;
}


static void do_conflicts(struct node *n, struct client_conn *c,
			 const Msce__ClientRequest *req)
{
	Msce__ClientResponse r = MSCE__CLIENT_RESPONSE__INIT;
	Msce__ConflictsResult cr = MSCE__CONFLICTS_RESULT__INIT;
	struct conf_acc acc = {req->conflicts->collection, NULL, 0, 0,
			       req->conflicts->limit ? req->conflicts->limit
						     : 1000,
			       0};
	struct audit_refs refs = {0};
	struct err e;
	int rc;

	err_clear(&e);
	rc = store_conflicts(n->store, 0, conflict_cb, &acc, &e);
	r.id = req->id;
	if ((rc && rc != 1) || acc.oom) {
		r.code = acc.oom ? MSCE_ENOMEM : (uint32_t)rc;
		r.error = acc.oom ? "out of memory" : e.msg;
	} else {
		cr.n_conflicts = acc.n;
		cr.conflicts = acc.items;
		r.result_case = MSCE__CLIENT_RESPONSE__RESULT_CONFLICTS;
		r.conflicts = &cr;
		/* Conflicts carry values: each personal record listed is
		 * audited once (a record's conflicts are listed together). */
		for (size_t i = 0; i < acc.n; i++) {
			const Msce__Conflict *m = acc.items[i];
			if (!audit_personal(m->collection,
					    strlen(m->collection)) ||
			    (i > 0 &&
			     strcmp(acc.items[i - 1]->collection,
				    m->collection) == 0 &&
			     strcmp(acc.items[i - 1]->key, m->key) == 0))
				continue;
			audit_refs_add(&refs, m->collection,
				       strlen(m->collection), m->key,
				       strlen(m->key));
		}
	}
	api_reply_audited(n, c, req->purpose, &r, "conflicts", &refs);
	for (size_t i = 0; i < acc.n; i++) {
		Msce__Conflict *m = acc.items[i];
		free(m->collection);
		free(m->key);
		free(m->field);
		record_pb_fv_free(m->winner);
		record_pb_fv_free(m->loser);
		free(m);
	}
	free(acc.items);
}

struct winner_ctx {
	const char *field;
	int found;
	struct version v;
};

static int winner_cb(void *ctx, const struct store_record_view *v)
{
	struct winner_ctx *w = ctx;
	struct field_state *fs = record_field(v->rec, (const uint8_t *)w->field,
					      strlen(w->field));
	if (fs != NULL) {
		w->found = 1;
		w->v = fs->w.v;
	}
	return 0;
}

/* Resolve = a put of the field based on the current winner, which raises
 * the field's seen version above every open loser. */
static void do_resolve(struct node *n, struct client_conn *c,
		       Msce__ClientRequest *req)
{
	Msce__ResolveRequest *rs = req->resolve;
	struct winner_ctx wc = {rs->field, 0, {0, 0}};
	Msce__PutRequest *p;
	Msce__FieldIn *f, **fp;
	struct err e;
	int rc;

	err_clear(&e);
	rc = store_get(n->store, rs->collection, strlen(rs->collection), rs->key,
		       strlen(rs->key), winner_cb, &wc, &e);
	if (rc || !wc.found) {
		char why[ERR_MSG_MAX];
		snprintf(why, sizeof why, "%.64s/%.128s has no field %.64s",
			 rs->collection, rs->key, rs->field);
		reply_error(c, req->id, rc ? rc : MSCE_ENOTFOUND,
			    rc ? e.msg : why);
		pb_arena_free(req);
		return;
	}
	/* Rewrite the request as a put; the decoded request owns it all. */
	p = malloc(sizeof *p);
	f = malloc(sizeof *f);
	fp = malloc(sizeof *fp);
	if (p == NULL || f == NULL || fp == NULL) {
		free(p);
		free(f);
		free(fp);
		reply_error(c, req->id, MSCE_ENOMEM, "out of memory");
		pb_arena_free(req);
		return;
	}
	msce__put_request__init(p);
	msce__field_in__init(f);
	f->name = rs->field;
	f->value = rs->value;
	f->has_base = 1;
	f->base_hlc = wc.v.hlc;
	f->base_origin = wc.v.origin;
	fp[0] = f;
	p->collection = rs->collection;
	p->key = rs->key;
	p->n_fields = 1;
	p->fields = fp;
	/* Strings stay owned by the resolve message, freed with req. */
	rs->field = NULL;
	req->op_case = MSCE__CLIENT_REQUEST__OP_PUT;
	req->put = p;
	do_writes_owned(n, c, req, rs);
}

struct backup_work {
	uv_work_t w;
	struct node *n;
	struct client_conn *c;
	uint64_t id;
	char path[512];
	uint64_t bytes;
	int rc;
	struct err e;
};

static void backup_run(uv_work_t *w)
{
	struct backup_work *b = w->data;
	err_clear(&b->e);
	b->rc = store_backup(b->n->store, b->path, &b->bytes, &b->e);
}

static void backup_done(uv_work_t *w, int status)
{
	struct backup_work *b = w->data;
	Msce__ClientResponse r = MSCE__CLIENT_RESPONSE__INIT;
	Msce__BackupResult br = MSCE__BACKUP_RESULT__INIT;
	(void)status;
	r.id = b->id;
	if (b->rc) {
		r.code = (uint32_t)b->rc;
		r.error = b->e.msg;
	} else {
		br.path = b->path;
		br.bytes = b->bytes;
		r.result_case = MSCE__CLIENT_RESPONSE__RESULT_BACKUP;
		r.backup = &br;
		log_info("backup of %llu bytes written to %s",
			 (unsigned long long)b->bytes, b->path);
	}
	reply(b->c, &r);
	free(b);
}

/* The copy runs on libuv's thread pool: it reads the whole store. */
static void do_backup(struct node *n, struct client_conn *c,
		      const Msce__ClientRequest *req)
{
	struct backup_work *b;
	char path[sizeof b->path];
	struct err e;

	/* Over TCP only a new directory directly under backup_dir. */
	if (config_backup_path(&n->cfg, req->backup->path,
			       client_conn_remote(c), path, sizeof path, &e)) {
		reply_error(c, req->id, e.code, e.msg);
		return;
	}
	b = calloc(1, sizeof *b);
	if (b == NULL) {
		reply_error(c, req->id, MSCE_ENOMEM, "out of memory");
		return;
	}
	b->n = n;
	b->c = c;
	b->id = req->id;
	snprintf(b->path, sizeof b->path, "%s", path);
	b->w.data = b;
	if (uv_queue_work(n->loop, &b->w, backup_run, backup_done)) {
		free(b);
		reply_error(c, req->id, MSCE_EBUSY, "cannot start the backup");
	}
}

/* ---- erasure -------------------------------------------------------------- */

struct erase_job {
	struct writer_job job;
	struct store_write *w;
	struct store_field_in *f;
	struct store_written *out;
	char **subjects; /* "collection/key" of each subject */
	size_t nsubs;
	struct audit_who who;
	char client[CONFIG_NAME_MAX], purpose[PURPOSE_MAX + 1];
	struct node *n;
	api_erase_done_fn done;
	void *arg;
};

struct erase_item {
	const Msce__Record *m;
	size_t sub, at; /* subject, and place in the batch */
	int dup;
};

static int cmp_item(const void *a, const void *b)
{
	const struct erase_item *x = a, *y = b;
	int c = strcmp(x->m->collection, y->m->collection);
	if (c == 0)
		c = strcmp(x->m->key, y->m->key);
	if (c == 0)
		c = x->at < y->at ? -1 : x->at > y->at;
	return c;
}

static void erase_job_done(struct writer_job *j)
{
	struct erase_job *x = (struct erase_job *)j;
	const char **erased = calloc(j->n ? j->n : 1, sizeof *erased);
	char *lines = NULL;
	size_t ne = 0, len = 0, o = 0;

	for (size_t i = 0; j->rc == 0 && i < j->n; i++)
		if ((x->w[i].op & STORE_W_LISTED) && x->out[i].err.code == 0)
			len += x->w[i].coll_len + 1 + x->w[i].key_len + 1;
	lines = malloc(len ? len : 1);
	if (erased == NULL || lines == NULL) {
		x->done(x->arg, MSCE_ENOMEM,
			"erased, but out of memory listing what", NULL, 0);
	} else {
		for (size_t i = 0; j->rc == 0 && i < j->n; i++) {
			const struct store_write *w = &x->w[i];
			if (!(w->op & STORE_W_LISTED) || x->out[i].err.code)
				continue;
			erased[ne++] = lines + o;
			o += (size_t)sprintf(lines + o, "%.*s/%.*s",
					     (int)w->coll_len, w->coll,
					     (int)w->key_len, w->key) + 1;
		}
		x->done(x->arg, j->rc, j->rc ? j->err.msg : "", erased, ne);
	}
	if (j->rc == 0)
		api_committed(x->n);
	free(erased);
	free(lines);
	for (size_t i = 0; i < x->nsubs; i++)
		free(x->subjects[i]);
	free(x->subjects);
	free(x->w);
	free(x->f);
	free(x->out);
	free(x);
}

/* Erasure: deletes every record subject_collect found for each subject (a
 * person's registration, the cases that reference it and their notes; or
 * a case and its notes), at every center: ordinary deletes, replicated
 * like any, all in one durable batch. Each subject gets an _audit entry,
 * op "erase": who, why (the purpose; rule when retention selected it), the
 * subject and the records deleted, never a value. Notes go first, then
 * cases, then the registration, so that no center ever shows a note
 * without its case or a case without its person while the batch is on
 * its way. A record two subjects share is deleted once, under the first.
 *
 * A write made at another center concurrently with this delete, without
 * having seen it, survives it (docs/PROTOCOL.md "Delete and update"): it
 * is listed as a delete conflict everywhere and erasing again removes it.
 *
 * Encryption at rest will destroy the records' keys here, in this batch.
 * subs and rules (per subject, NULL entries for none) are borrowed until
 * done runs; done gets what was deleted, "collection/key" each. */
void api_erase_person(struct node *n, struct client_conn *c,
		      const char *purpose, const struct subject *subs,
		      size_t nsubs, const char *const *rules,
		      api_erase_done_fn done, void *arg)
{
	struct erase_job *x = NULL;
	struct erase_item *items = NULL;
	size_t ni = 0, nw, k = 0;

	if (n->stopping) {
		done(arg, MSCE_ECLOSED, "node is shutting down", NULL, 0);
		return;
	}
	for (size_t i = 0; i < nsubs; i++)
		ni += subject_count(&subs[i]);
	nw = ni + nsubs;
	items = calloc(ni ? ni : 1, sizeof *items);
	x = calloc(1, sizeof *x);
	if (x != NULL) {
		x->w = calloc(nw ? nw : 1, sizeof *x->w);
		x->f = calloc(nsubs * AUDIT_MAX_FIELDS + 1, sizeof *x->f);
		x->out = calloc(nw ? nw : 1, sizeof *x->out);
		x->subjects = calloc(nsubs ? nsubs : 1, sizeof *x->subjects);
	}
	if (items == NULL || x == NULL || x->w == NULL || x->f == NULL ||
	    x->out == NULL || x->subjects == NULL)
		goto oom;
	/* Each subject's records in erase order; then the duplicates. */
	for (size_t i = 0, at = 0; i < nsubs; i++) {
		const struct subject *sub = &subs[i];
		for (size_t j = 0; j < sub->notes.n; j++)
			items[at] = (struct erase_item){sub->notes.recs[j], i, at, 0}, at++;
		for (size_t j = 0; j < sub->cases.n; j++)
			items[at] = (struct erase_item){sub->cases.recs[j], i, at, 0}, at++;
		if (sub->self != NULL)
			items[at] = (struct erase_item){sub->self, i, at, 0}, at++;
	}
	qsort(items, ni, sizeof *items, cmp_item);
	for (size_t i = 1; i < ni; i++)
		items[i].dup = strcmp(items[i].m->collection,
				      items[i - 1].m->collection) == 0 &&
			       strcmp(items[i].m->key, items[i - 1].m->key) == 0;
	for (size_t i = 0; i < ni; i++)
		while (items[i].at != i) {
			struct erase_item t = items[items[i].at];
			items[items[i].at] = items[i];
			items[i] = t;
		}

	snprintf(x->client, sizeof x->client, "%s", client_conn_name(c));
	snprintf(x->purpose, sizeof x->purpose, "%s",
		 audit_purpose(client_conn_role(c), purpose));
	x->who = api_who(n, c, x->purpose);
	x->who.client = x->client;
	x->who.purpose = x->purpose;
	for (size_t i = 0, at = 0; i < nsubs; i++) {
		const struct subject *sub = &subs[i];
		size_t len = strlen(sub->coll) + 1 + strlen(sub->key) + 1;
		if ((x->subjects[i] = malloc(len)) == NULL)
			goto oom;
		x->nsubs = i + 1;
		snprintf(x->subjects[i], len, "%s/%s", sub->coll, sub->key);
		for (; at < ni && items[at].sub == i; at++) {
			struct store_write *w = &x->w[k++];
			if (items[at].dup) {
				k--;
				continue;
			}
			w->op = STORE_DELETE | STORE_W_LISTED;
			w->erase = 1; /* the data key goes at every center */
			w->coll = items[at].m->collection;
			w->coll_len = strlen(w->coll);
			w->key = items[at].m->key;
			w->key_len = strlen(w->key);
		}
		audit_fill(&x->w[k++], x->f + i * AUDIT_MAX_FIELDS, "erase",
			   &x->who, NULL, 0, x->subjects[i],
			   rules != NULL ? rules[i] : NULL);
	}
	free(items);
	x->n = n;
	x->done = done;
	x->arg = arg;
	x->job.kind = WRITER_WRITE;
	x->job.w = x->w;
	x->job.n = k;
	x->job.out = x->out;
	x->job.done = erase_job_done;
	writer_submit(n->writer, &x->job);
	return;
oom:
	if (x != NULL) {
		for (size_t i = 0; i < x->nsubs; i++)
			free(x->subjects[i]);
		free(x->subjects);
		free(x->w);
		free(x->f);
		free(x->out);
	}
	free(x);
	free(items);
	done(arg, MSCE_ENOMEM, "out of memory planning the erasure", NULL, 0);
}

/* ---- dispatch ------------------------------------------------------------------ */

/* ro reads and watches; rw also writes, resolves and exports a person
 * (for subject access, check_access); admin also backs up, erases and
 * applies retention. Unix-socket clients are admin (file modes guard the
 * socket). */
static int role_allows(int role, Msce__ClientRequest__OpCase op)
{
	switch (op) {
	case MSCE__CLIENT_REQUEST__OP_GET:
	case MSCE__CLIENT_REQUEST__OP_SCAN:
	case MSCE__CLIENT_REQUEST__OP_STATUS:
	case MSCE__CLIENT_REQUEST__OP_WATCH:
	case MSCE__CLIENT_REQUEST__OP_CONFLICTS:
		return role >= CONFIG_ROLE_RO;
	case MSCE__CLIENT_REQUEST__OP_PUT:
	case MSCE__CLIENT_REQUEST__OP_BATCH:
	case MSCE__CLIENT_REQUEST__OP_RESOLVE:
	case MSCE__CLIENT_REQUEST__OP_PERSON:
		return role >= CONFIG_ROLE_RW;
	case MSCE__CLIENT_REQUEST__OP_BACKUP:
	case MSCE__CLIENT_REQUEST__OP_ERASE:
	case MSCE__CLIENT_REQUEST__OP_RETENTION:
		return role >= CONFIG_ROLE_ADMIN;
	default:
		return 1; /* unknown requests get their own error */
	}
}

static const char *op_name(Msce__ClientRequest__OpCase op)
{
	switch (op) {
	case MSCE__CLIENT_REQUEST__OP_PUT: return "write";
	case MSCE__CLIENT_REQUEST__OP_BATCH: return "write a batch";
	case MSCE__CLIENT_REQUEST__OP_RESOLVE: return "resolve conflicts";
	case MSCE__CLIENT_REQUEST__OP_BACKUP: return "back up the store";
	case MSCE__CLIENT_REQUEST__OP_PERSON: return "export a person";
	case MSCE__CLIENT_REQUEST__OP_ERASE: return "erase records";
	case MSCE__CLIENT_REQUEST__OP_RETENTION: return "apply retention";
	default: return "do that";
	}
}

static int check_write_coll(const char *coll, char *why, size_t len)
{
	if (!audit_system(coll, strlen(coll)))
		return 0;
	snprintf(why, len,
		 "collection %s is the system's: only the nodes write it, and "
		 "audit entries are append-only (no client may put, delete or "
		 "resolve them)",
		 coll);
	return MSCE_EPERM;
}

/* Purposes and system collections (issue 15): 0, or a code and why. A
 * read that may return personal records (registration, case, case_note;
 * or every collection) needs a purpose from ro and rw clients; _audit and
 * other system collections are read by admins only. */
static int check_access(const struct client_conn *c,
			const Msce__ClientRequest *req, char *why, size_t len)
{
	int role = client_conn_role(c), all = 0;
	const char *coll = NULL, *what = "read";

	if (req->purpose[0] != '\0' && !purpose_valid(req->purpose)) {
		snprintf(why, len, "purpose \"%.*s\" is not one of: " PURPOSE_LIST,
			 PURPOSE_MAX, req->purpose);
		return MSCE_EINVAL;
	}
	switch (req->op_case) {
	case MSCE__CLIENT_REQUEST__OP_PUT:
	case MSCE__CLIENT_REQUEST__OP_BATCH:
		return 0; /* each put on its own: put_refused */
	case MSCE__CLIENT_REQUEST__OP_RESOLVE:
		return check_write_coll(req->resolve->collection, why, len);
	case MSCE__CLIENT_REQUEST__OP_GET:
		coll = req->get->collection;
		break;
	case MSCE__CLIENT_REQUEST__OP_SCAN:
		coll = req->scan->collection;
		break;
	case MSCE__CLIENT_REQUEST__OP_WATCH:
		coll = req->watch->collection;
		what = "watch";
		all = 1;
		break;
	case MSCE__CLIENT_REQUEST__OP_CONFLICTS:
		coll = req->conflicts->collection;
		what = "list conflicts of";
		all = 1;
		break;
	case MSCE__CLIENT_REQUEST__OP_PERSON:
		if (role < CONFIG_ROLE_ADMIN &&
		    strcmp(req->purpose, "subject-access") != 0) {
			snprintf(why, len,
				 "client \"%s\" has role %s, which may export a "
				 "person only with purpose subject-access",
				 client_conn_name(c), config_role_name(role));
			return MSCE_EPERM;
		}
		return 0;
	default:
		return 0;
	}
	/* A name no collection can have is EINVAL here as in get (a watch
	 * or a conflicts list of one would stay empty for good). */
	if (coll[0] != '\0') {
		struct err ce;
		if (schema_check_collection(coll, strlen(coll), 1, &ce)) {
			snprintf(why, len, "%.300s", ce.msg);
			return MSCE_EINVAL;
		}
	}
	if (role >= CONFIG_ROLE_ADMIN)
		return 0;
	if (audit_system(coll, strlen(coll))) {
		snprintf(why, len,
			 "client \"%s\" has role %s: only admin clients may %s "
			 "%s (the audit log)",
			 client_conn_name(c), config_role_name(role), what, coll);
		return MSCE_EPERM;
	}
	/* A watch or conflicts of "" covers every collection. */
	if (req->purpose[0] == '\0' &&
	    ((all && coll[0] == '\0') || audit_personal(coll, strlen(coll)))) {
		snprintf(why, len,
			 "a purpose is required to %s %s (personal records, "
			 "audited): one of " PURPOSE_LIST,
			 what, coll[0] ? coll : "every collection");
		return MSCE_EINVAL;
	}
	return 0;
}

void api_request(void *node, struct client_conn *c, const uint8_t *msg,
		 size_t len)
{
	struct node *n = node;
	Msce__ClientRequest *req;

	n->client_requests++;
	client_conn_hold(c);
	if (n->stopping) {
		n->client_errors++;
		reply_error(c, 0, MSCE_ECLOSED, "node is shutting down");
		return;
	}
	struct pb_arena ar;
	req = pb_arena_end(&ar, msce__client_request__unpack(
					pb_arena_begin(&ar, pb_limit_for(len), len),
					len, msg));
	if (req == NULL && ar.nomem) {
		n->client_errors++;
		reply_error(c, 0, MSCE_ENOMEM,
			    "out of memory decoding the request: try again");
		return;
	}
	if (req == NULL && ar.over) {
		char why[200];
		n->client_errors++;
		snprintf(why, sizeof why,
			 "request of %zu bytes decodes to more than %zu bytes "
			 "of memory (16 times its size and 64 KiB): too many "
			 "small items in it; send fewer puts or fields per "
			 "request",
			 len, pb_limit_for(len));
		reply_error(c, 0, MSCE_ETOOBIG, why);
		return;
	}
	if (req == NULL) {
		n->client_errors++;
		reply_error(c, 0, MSCE_EPROTO,
			    "malformed request: not a msce.ClientRequest");
		return;
	}
	if (req->protocol != 0 && req->protocol != MSCE_CLIENT_PROTOCOL) {
		char msg[160];
		n->client_errors++;
		snprintf(msg, sizeof msg,
			 "client speaks client protocol %u, this node speaks %u "
			 "(msce %s): use a libmsce that speaks %u",
			 req->protocol, MSCE_CLIENT_PROTOCOL, MSCE_VERSION,
			 MSCE_CLIENT_PROTOCOL);
		reply_error(c, req->id, MSCE_EVERSION, msg);
		pb_arena_free(req);
		return;
	}
	if (!role_allows(client_conn_role(c), req->op_case)) {
		char msg[160];
		n->client_errors++;
		snprintf(msg, sizeof msg,
			 "client \"%s\" has role %s, which may not %s",
			 client_conn_name(c),
			 config_role_name(client_conn_role(c)),
			 op_name(req->op_case));
		reply_error(c, req->id, MSCE_EPERM, msg);
		pb_arena_free(req);
		return;
	}
	{
		char why[400];
		int rc = check_access(c, req, why, sizeof why);
		if (rc) {
			n->client_errors++;
			reply_error(c, req->id, rc, why);
			pb_arena_free(req);
			return;
		}
	}
	switch (req->op_case) {
	case MSCE__CLIENT_REQUEST__OP_PUT:
	case MSCE__CLIENT_REQUEST__OP_BATCH:
		do_writes(n, c, req);
		return; /* req freed when the write is done */
	case MSCE__CLIENT_REQUEST__OP_GET:
		do_get(n, c, req);
		break;
	case MSCE__CLIENT_REQUEST__OP_SCAN:
		do_scan(n, c, req);
		break;
	case MSCE__CLIENT_REQUEST__OP_STATUS:
		do_status(n, c, req);
		break;
	case MSCE__CLIENT_REQUEST__OP_CONFLICTS:
		do_conflicts(n, c, req);
		break;
	case MSCE__CLIENT_REQUEST__OP_RESOLVE:
		do_resolve(n, c, req);
		return; /* req freed when the write is done */
	case MSCE__CLIENT_REQUEST__OP_BACKUP:
		do_backup(n, c, req);
		break;
	case MSCE__CLIENT_REQUEST__OP_WATCH:
		watch_start(n, c, req->id, req->watch, req->purpose);
		break;
	case MSCE__CLIENT_REQUEST__OP_PERSON:
		api_person(n, c, req);
		break;
	case MSCE__CLIENT_REQUEST__OP_ERASE:
		api_erase(n, c, req);
		break;
	case MSCE__CLIENT_REQUEST__OP_RETENTION:
		api_retention(n, c, req);
		break;
	default:
		n->client_errors++;
		reply_error(c, req->id, MSCE_EINVAL, "unknown request");
	}
	pb_arena_free(req);
}
