/* SPDX-License-Identifier: Apache-2.0 */
/* libmsce requests and results; see codec.h. Results are copied or
 * pointed into the decoded reply that the result object keeps, so no
 * protobuf type leaks into msce.h. */
#include "codec.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pballoc.h"
#include "version.h"

int codec_reserved_zero(void *const *r, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (r[i] != NULL)
			return 0;
	return 1;
}

#define RESERVED_OK(s) \
	codec_reserved_zero((s)->reserved, sizeof((s)->reserved) / sizeof(void *))

static int bad(char *msg, size_t msglen, int code, const char *what)
{
	snprintf(msg, msglen, "%s", what);
	return code;
}

/* ---- requests ------------------------------------------------------------ */

static void req_init(struct codec_req *b)
{
	memset(b, 0, sizeof *b);
	msce__client_request__init(&b->req);
}

void codec_release(struct codec_req *b)
{
	for (size_t i = 0; i < sizeof b->mem / sizeof b->mem[0]; i++)
		free(b->mem[i]);
	free(b->vv);
	free(b->vvp);
	memset(b->mem, 0, sizeof b->mem);
	b->vv = NULL;
	b->vvp = NULL;
}

/* FieldIn messages for n fields, in two arrays owned by the caller. */
static int fields_in(const struct msce_field *f, size_t n, Msce__FieldIn **fs,
		     Msce__FieldIn ***fp, char *msg, size_t msglen)
{
	*fs = calloc(n ? n : 1, sizeof **fs);
	*fp = calloc(n ? n : 1, sizeof **fp);
	if (*fs == NULL || *fp == NULL)
		return bad(msg, msglen, MSCE_ENOMEM, "out of memory");
	for (size_t i = 0; i < n; i++) {
		if (f[i].name == NULL || (f[i].value == NULL && f[i].value_len))
			return bad(msg, msglen, MSCE_EINVAL,
				   "a field without a name or value");
		msce__field_in__init(&(*fs)[i]);
		(*fs)[i].name = (char *)f[i].name;
		(*fs)[i].value.data = (uint8_t *)f[i].value;
		(*fs)[i].value.len = f[i].value_len;
		(*fs)[i].has_base = f[i].has_base;
		(*fs)[i].base_hlc = f[i].base_hlc;
		(*fs)[i].base_origin = f[i].base_origin;
		(*fp)[i] = &(*fs)[i];
	}
	return 0;
}

static int put_fill(Msce__PutRequest *p, const char *collection,
		    const char *key, int is_delete, unsigned flags, char *msg,
		    size_t msglen)
{
	if (collection == NULL || key == NULL)
		return bad(msg, msglen, MSCE_EINVAL,
			   "a write needs a collection and a key");
	if (flags & ~MSCE_PUT_ALLOW_UNKNOWN_PERSON)
		return bad(msg, msglen, MSCE_EINVAL, "unknown MSCE_PUT_ flag");
	p->collection = (char *)collection;
	p->key = (char *)key;
	p->delete_ = is_delete != 0;
	p->allow_unknown_person = (flags & MSCE_PUT_ALLOW_UNKNOWN_PERSON) != 0;
	return 0;
}

int codec_put(struct codec_req *b, const char *collection, const char *key,
	      const struct msce_field *fields, size_t n,
	      const struct msce_put_opts *opts, int is_delete, char *msg,
	      size_t msglen)
{
	Msce__PutRequest *p = &b->u.put;
	Msce__FieldIn *fs = NULL, **fp = NULL;
	int rc;

	req_init(b);
	msce__put_request__init(p);
	b->req.op_case = MSCE__CLIENT_REQUEST__OP_PUT;
	b->req.put = p;
	if (opts != NULL && !RESERVED_OK(opts))
		return bad(msg, msglen, MSCE_EINVAL,
			   "struct msce_put_opts: reserved members must be "
			   "zero (initialise it with {0})");
	if ((rc = put_fill(p, collection, key, is_delete,
			   opts ? opts->flags : 0, msg, msglen)) != 0)
		return rc;
	if (!is_delete) {
		if (n > 0 && fields == NULL)
			return bad(msg, msglen, MSCE_EINVAL, "fields is NULL");
		rc = fields_in(fields, n, &fs, &fp, msg, msglen);
		b->mem[0] = fs;
		b->mem[1] = fp;
		if (rc)
			return rc;
		p->n_fields = n;
		p->fields = fp;
	}
	if (opts != NULL) {
		p->min_sites = opts->min_sites;
		p->timeout_ms = opts->timeout_ms;
	}
	return 0;
}

int codec_batch(struct codec_req *b, const struct msce_put *puts, size_t n,
		const struct msce_put_opts *opts, char *msg, size_t msglen)
{
	Msce__PutRequest *ps, **pp;
	Msce__FieldIn *fsets, **fptrs;
	size_t nf = 0, k = 0;
	int rc;

	req_init(b);
	msce__batch_put_request__init(&b->u.batch);
	b->req.op_case = MSCE__CLIENT_REQUEST__OP_BATCH;
	b->req.batch = &b->u.batch;
	if (n > 0 && puts == NULL)
		return bad(msg, msglen, MSCE_EINVAL, "puts is NULL");
	if (opts != NULL && (!RESERVED_OK(opts) || opts->min_sites > 1 ||
			     opts->timeout_ms))
		return bad(msg, msglen, MSCE_EINVAL,
			   "batch options: only flags (min_sites and "
			   "timeout_ms 0, reserved members zero)");
	for (size_t i = 0; i < n; i++)
		nf += puts[i].is_delete ? 0 : puts[i].nfields;
	/* One block for the puts and their pointers, one for all fields. */
	b->mem[0] = ps = calloc(n ? n : 1, sizeof *ps);
	b->mem[1] = pp = calloc(n ? n : 1, sizeof *pp);
	b->mem[2] = fsets = calloc(nf ? nf : 1, sizeof *fsets);
	b->mem[3] = fptrs = calloc(nf ? nf : 1, sizeof *fptrs);
	if (ps == NULL || pp == NULL || fsets == NULL || fptrs == NULL)
		return bad(msg, msglen, MSCE_ENOMEM, "out of memory");
	for (size_t i = 0; i < n; i++) {
		const struct msce_put *u = &puts[i];
		Msce__FieldIn *fs = fsets + k;
		Msce__FieldIn **fp = fptrs + k;

		msce__put_request__init(&ps[i]);
		if ((rc = put_fill(&ps[i], u->collection, u->key, u->is_delete,
				   opts ? opts->flags : 0, msg, msglen)) != 0)
			return rc;
		if (!u->is_delete && u->nfields) {
			if (u->fields == NULL)
				return bad(msg, msglen, MSCE_EINVAL,
					   "a batch put without its fields");
			for (size_t j = 0; j < u->nfields; j++) {
				const struct msce_field *f = &u->fields[j];
				if (f->name == NULL ||
				    (f->value == NULL && f->value_len))
					return bad(msg, msglen, MSCE_EINVAL,
						   "a field without a name or "
						   "value");
				msce__field_in__init(&fs[j]);
				fs[j].name = (char *)f->name;
				fs[j].value.data = (uint8_t *)f->value;
				fs[j].value.len = f->value_len;
				fs[j].has_base = f->has_base;
				fs[j].base_hlc = f->base_hlc;
				fs[j].base_origin = f->base_origin;
				fp[j] = &fs[j];
			}
			ps[i].fields = fp;
			ps[i].n_fields = u->nfields;
			k += u->nfields;
		}
		pp[i] = &ps[i];
	}
	b->u.batch.n_puts = n;
	b->u.batch.puts = pp;
	return 0;
}

int codec_get(struct codec_req *b, const char *collection, const char *key,
	      const char *const *fields, size_t nfields, char *msg,
	      size_t msglen)
{
	req_init(b);
	msce__get_request__init(&b->u.get);
	b->req.op_case = MSCE__CLIENT_REQUEST__OP_GET;
	b->req.get = &b->u.get;
	if (collection == NULL || key == NULL)
		return bad(msg, msglen, MSCE_EINVAL,
			   "a read needs a collection and a key");
	if (nfields > 0 && fields == NULL)
		return bad(msg, msglen, MSCE_EINVAL, "fields is NULL");
	for (size_t i = 0; i < nfields; i++)
		if (fields[i] == NULL)
			return bad(msg, msglen, MSCE_EINVAL,
				   "a NULL field name");
	b->u.get.collection = (char *)collection;
	b->u.get.key = (char *)key;
	b->u.get.n_fields = nfields;
	b->u.get.fields = (char **)fields;
	return 0;
}

int codec_scan(struct codec_req *b, const char *collection,
	       const struct msce_scan_opts *opts, char *msg, size_t msglen)
{
	Msce__ScanRequest *s = &b->u.scan;

	req_init(b);
	msce__scan_request__init(s);
	b->req.op_case = MSCE__CLIENT_REQUEST__OP_SCAN;
	b->req.scan = s;
	if (collection == NULL)
		return bad(msg, msglen, MSCE_EINVAL,
			   "a scan needs a collection");
	s->collection = (char *)collection;
	if (opts != NULL) {
		if (opts->prefix)
			s->prefix = (char *)opts->prefix;
		if (opts->after)
			s->after = (char *)opts->after;
		if (opts->end)
			s->end = (char *)opts->end;
		s->limit = opts->limit;
	}
	return 0;
}

void codec_status(struct codec_req *b)
{
	req_init(b);
	msce__status_request__init(&b->u.status);
	b->req.op_case = MSCE__CLIENT_REQUEST__OP_STATUS;
	b->req.status = &b->u.status;
}

void codec_conflicts(struct codec_req *b, const char *collection,
		     unsigned limit)
{
	req_init(b);
	msce__conflicts_request__init(&b->u.conflicts);
	b->req.op_case = MSCE__CLIENT_REQUEST__OP_CONFLICTS;
	b->req.conflicts = &b->u.conflicts;
	if (collection)
		b->u.conflicts.collection = (char *)collection;
	b->u.conflicts.limit = limit;
}

void codec_resolve(struct codec_req *b, const char *collection,
		   const char *key, const char *field, const void *value,
		   size_t value_len)
{
	Msce__ResolveRequest *r = &b->u.resolve;

	req_init(b);
	msce__resolve_request__init(r);
	b->req.op_case = MSCE__CLIENT_REQUEST__OP_RESOLVE;
	b->req.resolve = r;
	r->collection = (char *)(collection ? collection : "");
	r->key = (char *)(key ? key : "");
	r->field = (char *)(field ? field : "");
	r->value.data = (uint8_t *)value;
	r->value.len = value ? value_len : 0;
}

int codec_watch(struct codec_req *b, const char *collection,
		const struct msce_cursor *after, char *msg, size_t msglen)
{
	Msce__WatchRequest *w = &b->u.watch;

	req_init(b);
	msce__watch_request__init(w);
	b->req.op_case = MSCE__CLIENT_REQUEST__OP_WATCH;
	b->req.watch = w;
	if (collection)
		w->collection = (char *)collection;
	if (after != NULL && after->n > 0) {
		if (after->n > MSCE_CURSOR_MAX)
			return bad(msg, msglen, MSCE_EINVAL,
				   "cursor over MSCE_CURSOR_MAX origins");
		b->vv = calloc(after->n, sizeof *b->vv);
		b->vvp = calloc(after->n, sizeof *b->vvp);
		if (b->vv == NULL || b->vvp == NULL)
			return bad(msg, msglen, MSCE_ENOMEM, "out of memory");
		for (size_t i = 0; i < after->n; i++) {
			msce__vventry__init(&b->vv[i]);
			b->vv[i].origin = after->origin[i];
			b->vv[i].seq = after->seq[i];
			b->vvp[i] = &b->vv[i];
		}
		w->n_after = after->n;
		w->after = b->vvp;
	}
	return 0;
}

void codec_backup(struct codec_req *b, const char *path)
{
	req_init(b);
	msce__backup_request__init(&b->u.backup);
	b->req.op_case = MSCE__CLIENT_REQUEST__OP_BACKUP;
	b->req.backup = &b->u.backup;
	b->u.backup.path = (char *)(path ? path : "");
}

int codec_pack(struct codec_req *b, uint64_t id, uint8_t **buf, size_t *len)
{
	size_t n;

	b->req.id = id;
	b->req.protocol = MSCE_CLIENT_PROTOCOL;
	n = msce__client_request__get_packed_size(&b->req);
	if ((*buf = malloc(n ? n : 1)) == NULL)
		return MSCE_ENOMEM;
	msce__client_request__pack(&b->req, *buf);
	*len = n;
	return 0;
}

Msce__ClientResponse *codec_unpack(const uint8_t *buf, size_t len)
{
	struct pb_limit lim;

	return msce__client_response__unpack(
		pb_limit_init(&lim, pb_limit_for(len)), len, buf);
}

/* ---- results --------------------------------------------------------------- */

void codec_write_result(const Msce__ClientResponse *r,
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

struct msce_record {
	char *collection, *key;
	size_t n;
	struct msce_value *f;
	uint32_t *seen;
	size_t nseen;
	Msce__Record *m; /* owns the strings and values (NULL in a page) */
};

/* Fills r from m (which stays owned by whoever owns it). */
static int record_fill(msce_record *r, Msce__Record *m)
{
	memset(r, 0, sizeof *r);
	r->collection = m->collection;
	r->key = m->key;
	r->f = calloc(m->n_fields ? m->n_fields : 1, sizeof *r->f);
	if (r->f == NULL)
		return MSCE_ENOMEM;
	for (size_t i = 0; i < m->n_fields; i++) {
		const Msce__FieldVersion *w = m->fields[i]->winner;
		if (w == NULL) {
			free(r->f);
			r->f = NULL;
			return MSCE_EPROTO;
		}
		r->f[i].name = w->name;
		r->f[i].value = w->value.data;
		r->f[i].value_len = w->value.len;
		r->f[i].hlc = w->hlc;
		r->f[i].origin = w->origin;
		r->f[i].nconflicts = m->fields[i]->n_losers;
	}
	r->n = m->n_fields;
	return 0;
}

int codec_record(Msce__ClientResponse *r, msce_record **out, char *msg,
		 size_t msglen)
{
	msce_record *rec;
	Msce__Record *m;
	int rc;

	*out = NULL;
	if (r->result_case != MSCE__CLIENT_RESPONSE__RESULT_RECORD ||
	    r->record->record == NULL) {
		msce__client_response__free_unpacked(r, NULL);
		return bad(msg, msglen, MSCE_EPROTO,
			   "get answered without a record");
	}
	if ((rec = calloc(1, sizeof *rec)) == NULL) {
		msce__client_response__free_unpacked(r, NULL);
		return bad(msg, msglen, MSCE_ENOMEM, "out of memory");
	}
	/* Take the record out of the response; copy seen_by. */
	m = r->record->record;
	if ((rc = record_fill(rec, m)) != 0) {
		free(rec);
		msce__client_response__free_unpacked(r, NULL);
		return bad(msg, msglen, rc,
			   rc == MSCE_EPROTO ? "a field without a value"
					     : "out of memory");
	}
	r->record->record = NULL;
	rec->m = m;
	rec->nseen = r->record->n_seen_by;
	rec->seen = malloc((rec->nseen ? rec->nseen : 1) * sizeof(uint32_t));
	if (rec->seen != NULL && rec->nseen)
		memcpy(rec->seen, r->record->seen_by,
		       rec->nseen * sizeof(uint32_t));
	else
		rec->nseen = 0;
	msce__client_response__free_unpacked(r, NULL);
	*out = rec;
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

void msce_record_free(msce_record *r)
{
	if (r == NULL)
		return;
	if (r->m)
		msce__record__free_unpacked(r->m, NULL);
	free(r->f);
	free(r->seen);
	free(r);
}

struct msce_page {
	Msce__ClientResponse *resp;
	msce_record *recs;
	size_t n;
};

int codec_page(Msce__ClientResponse *r, msce_page **out, char *msg,
	       size_t msglen)
{
	msce_page *p;

	*out = NULL;
	if (r->result_case != MSCE__CLIENT_RESPONSE__RESULT_SCAN) {
		msce__client_response__free_unpacked(r, NULL);
		return bad(msg, msglen, MSCE_EPROTO,
			   "scan answered without its result");
	}
	p = calloc(1, sizeof *p);
	if (p != NULL)
		p->recs = calloc(r->scan->n_records ? r->scan->n_records : 1,
				 sizeof *p->recs);
	if (p == NULL || p->recs == NULL) {
		free(p);
		msce__client_response__free_unpacked(r, NULL);
		return bad(msg, msglen, MSCE_ENOMEM, "out of memory");
	}
	p->resp = r;
	for (size_t i = 0; i < r->scan->n_records; i++) {
		int rc = record_fill(&p->recs[i], r->scan->records[i]);
		if (rc) {
			msce_page_free(p);
			return bad(msg, msglen, rc,
				   rc == MSCE_EPROTO ? "a field without a value"
						     : "out of memory");
		}
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
	for (size_t i = 0; i < p->n; i++) {
		free(p->recs[i].f);
		free(p->recs[i].seen);
	}
	free(p->recs);
	msce__client_response__free_unpacked(p->resp, NULL);
	free(p);
}

struct msce_status {
	Msce__ClientResponse *resp;
	char digest[65];
	struct msce_peer_status *peers;
};

int codec_status_result(Msce__ClientResponse *r, msce_status **out,
			char *msg, size_t msglen)
{
	msce_status *s;

	*out = NULL;
	if (r->result_case != MSCE__CLIENT_RESPONSE__RESULT_STATUS) {
		msce__client_response__free_unpacked(r, NULL);
		return bad(msg, msglen, MSCE_EPROTO,
			   "status answered without its result");
	}
	s = calloc(1, sizeof *s);
	if (s != NULL)
		s->peers = calloc(r->status->n_peers ? r->status->n_peers : 1,
				  sizeof *s->peers);
	if (s == NULL || s->peers == NULL) {
		free(s);
		msce__client_response__free_unpacked(r, NULL);
		return bad(msg, msglen, MSCE_ENOMEM, "out of memory");
	}
	s->resp = r;
	for (size_t i = 0; i < r->status->digest.len && i < 32; i++)
		sprintf(s->digest + 2 * i, "%02x", r->status->digest.data[i]);
	for (size_t i = 0; i < r->status->n_peers; i++) {
		const Msce__PeerStatus *p = r->status->peers[i];
		s->peers[i].node = p->node;
		s->peers[i].connected = p->connected;
		s->peers[i].lag_changes =
		    p->lag_unknown ? MSCE_LAG_UNKNOWN : p->lag_changes;
		s->peers[i].lag_ms = p->lag_unknown ? MSCE_LAG_UNKNOWN : p->lag_ms;
		s->peers[i].last_contact_ms = p->last_contact_ms;
		s->peers[i].clock_offset_ms = p->clock_offset_ms;
	}
	*out = s;
	return 0;
}

const char *codec_status_name(const msce_status *s)
{
	return s->resp->status->name;
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
	return s->resp->status->conflicts_unknown ? UINT64_MAX
						  : s->resp->status->conflicts;
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

struct msce_conflicts {
	Msce__ClientResponse *resp;
	struct msce_conflict *items;
	size_t n;
};

static void value_from(struct msce_value *v, const Msce__FieldVersion *f)
{
	memset(v, 0, sizeof *v);
	v->name = f->name;
	v->value = f->value.data;
	v->value_len = f->value.len;
	v->hlc = f->hlc;
	v->origin = f->origin;
}

int codec_conflicts_result(Msce__ClientResponse *r, msce_conflicts **out,
			   char *msg, size_t msglen)
{
	msce_conflicts *l;

	*out = NULL;
	if (r->result_case != MSCE__CLIENT_RESPONSE__RESULT_CONFLICTS) {
		msce__client_response__free_unpacked(r, NULL);
		return bad(msg, msglen, MSCE_EPROTO,
			   "conflicts answered without its result");
	}
	l = calloc(1, sizeof *l);
	if (l != NULL)
		l->items = calloc(r->conflicts->n_conflicts
					  ? r->conflicts->n_conflicts
					  : 1,
				  sizeof *l->items);
	if (l == NULL || l->items == NULL) {
		free(l);
		msce__client_response__free_unpacked(r, NULL);
		return bad(msg, msglen, MSCE_ENOMEM, "out of memory");
	}
	l->resp = r;
	l->n = r->conflicts->n_conflicts;
	for (size_t i = 0; i < l->n; i++) {
		const Msce__Conflict *m = r->conflicts->conflicts[i];
		if (m->winner == NULL || m->loser == NULL) {
			msce_conflicts_free(l);
			return bad(msg, msglen, MSCE_EPROTO,
				   "conflict without values");
		}
		l->items[i].collection = m->collection;
		l->items[i].key = m->key;
		l->items[i].field = m->field;
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

int codec_event(const Msce__Change *ch, struct msce_event *ev,
		struct msce_value **fields)
{
	struct msce_value *f = calloc(ch->n_fields ? ch->n_fields : 1, sizeof *f);

	*fields = f;
	if (f == NULL)
		return MSCE_ENOMEM;
	for (size_t i = 0; i < ch->n_fields; i++) {
		f[i].name = ch->fields[i]->name;
		f[i].value = ch->fields[i]->value.data;
		f[i].value_len = ch->fields[i]->value.len;
		f[i].hlc = ch->hlc;
		f[i].origin = ch->origin;
	}
	memset(ev, 0, sizeof *ev);
	ev->collection = ch->collection;
	ev->key = ch->key;
	ev->is_delete = ch->op == MSCE__CHANGE__OP__DELETE;
	ev->origin = ch->origin;
	ev->seq = ch->seq;
	ev->hlc = ch->hlc;
	ev->nfields = ch->n_fields;
	ev->fields = f;
	return 0;
}

int codec_cursor_advance(struct msce_cursor *cur, uint32_t origin,
			 uint64_t seq)
{
	for (size_t i = 0; i < cur->n; i++)
		if (cur->origin[i] == origin) {
			if (seq <= cur->seq[i])
				return 0;
			cur->seq[i] = seq;
			return 1;
		}
	if (cur->n < MSCE_CURSOR_MAX) {
		cur->origin[cur->n] = origin;
		cur->seq[cur->n++] = seq;
	}
	return 1;
}

int msce_cursor_format(const struct msce_cursor *cur, char *buf, size_t size)
{
	size_t o = 0;

	if (buf == NULL || size == 0)
		return MSCE_ETOOBIG;
	buf[0] = '\0';
	for (size_t i = 0; i < cur->n && i < MSCE_CURSOR_MAX; i++) {
		int k = snprintf(buf + o, size - o, "%s%u:%llu", i ? "," : "",
				 (unsigned)cur->origin[i],
				 (unsigned long long)cur->seq[i]);
		if (k < 0 || (size_t)k >= size - o) {
			buf[0] = '\0';
			return MSCE_ETOOBIG;
		}
		o += (size_t)k;
	}
	return 0;
}

/* A decimal number up to max, no sign, no leading zeros but "0". */
static const char *parse_u64(const char *s, uint64_t max, uint64_t *out)
{
	uint64_t v = 0;
	const char *p = s;

	if (*p < '0' || *p > '9' || (p[0] == '0' && p[1] >= '0' && p[1] <= '9'))
		return NULL;
	for (; *p >= '0' && *p <= '9'; p++) {
		unsigned d = (unsigned)(*p - '0');
		if (v > (max - d) / 10)
			return NULL;
		v = v * 10 + d;
	}
	*out = v;
	return p;
}

int msce_cursor_parse(const char *text, struct msce_cursor *out)
{
	const char *p = text;
	struct msce_cursor c;

	c.n = 0;
	if (text == NULL)
		return MSCE_EINVAL;
	while (*p != '\0') {
		uint64_t o, s;
		if (c.n == MSCE_CURSOR_MAX)
			return MSCE_ETOOBIG;
		if (c.n > 0 && *p++ != ',')
			return MSCE_EINVAL;
		if ((p = parse_u64(p, UINT32_MAX, &o)) == NULL || *p++ != ':' ||
		    (p = parse_u64(p, UINT64_MAX, &s)) == NULL)
			return MSCE_EINVAL;
		for (size_t i = 0; i < c.n; i++)
			if (c.origin[i] == o)
				return MSCE_EINVAL; /* an origin twice */
		c.origin[c.n] = (uint32_t)o;
		c.seq[c.n++] = s;
	}
	out->n = c.n;
	memcpy(out->origin, c.origin, c.n * sizeof c.origin[0]);
	memcpy(out->seq, c.seq, c.n * sizeof c.seq[0]);
	return 0;
}
