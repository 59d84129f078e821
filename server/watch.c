/* SPDX-License-Identifier: Apache-2.0 */
/* Watch streams: every change after a client's cursor, then new changes
 * as they commit, each once and in seq order per origin.
 *
 * A watcher keeps a position per origin and reads the node's log from
 * there whenever something commits (watch_pump) and on the tick. It
 * sends at most WATCH_BATCH events per pump and waits while more than
 * WATCH_QUEUE bytes are queued to the client, so a slow reader costs
 * bounded memory. A cursor that falls below the log floor (the log was
 * truncated past it) ends the stream with ENOTFOUND: the client rescans.
 *
 * Changes of personal records are audited before they go out: a pump
 * holds its events back, writes one audit entry (op "watch") naming the
 * records, and sends them once it is durable; meanwhile the watcher is
 * not pumped. If the entry cannot be written the stream ends with the
 * error and the held events are dropped. Clients other than admins never
 * see system collections (_audit). */
#include <stdlib.h>
#include <string.h>

#include "audit.h"
#include "bounds.h"
#include "client.pb-c.h"
#include "log.h"
#include "node.h"
#include "purpose.h"

#define WATCH_BATCH 512 /* log entries read per pump of one watch */
#define WATCH_QUEUE (4u << 20)
#define WATCH_ORIGINS MSCE_MAX_ORIGINS /* a whole vector */

struct watcher {
	struct node *n;
	struct client_conn *c;
	uint64_t id;
	char coll[64];
	uint32_t origin[WATCH_ORIGINS];
	uint64_t pos[WATCH_ORIGINS];
	size_t npos;
	struct watcher *next;
	int done;
	int admin;
	char purpose[PURPOSE_MAX + 1];
	/* Events of one pump, sent once their audit entry is durable. */
	struct held_event {
		uint8_t *buf;
		size_t len;
	} *held;
	size_t nheld, capheld;
	struct audit_refs refs;
	int waiting; /* for the audit entry */
	int closed;  /* unlinked while waiting: freed when it is done */
};

static uint64_t *pos_of(struct watcher *w, uint32_t origin)
{
	for (size_t i = 0; i < w->npos; i++)
		if (w->origin[i] == origin)
			return &w->pos[i];
	if (w->npos == WATCH_ORIGINS)
		return NULL;
	w->origin[w->npos] = origin;
	w->pos[w->npos] = 0;
	return &w->pos[w->npos++];
}

static void send_response(struct client_conn *c, const Msce__ClientResponse *r)
{
	size_t len = msce__client_response__get_packed_size(r);
	uint8_t *buf = malloc(len ? len : 1);
	if (buf == NULL) {
		client_conn_reply(c, (const uint8_t *)"", 0);
		return;
	}
	msce__client_response__pack(r, buf);
	client_conn_reply(c, buf, len);
	free(buf);
}

/* Ends the stream with a final response (releases the stream's hold). */
static void finish(struct watcher *w, int code, const char *msg)
{
	Msce__ClientResponse r = MSCE__CLIENT_RESPONSE__INIT;
	r.id = w->id;
	r.code = (uint32_t)code;
	r.error = (char *)msg;
	send_response(w->c, &r);
	w->done = 1;
}

struct pump_ctx {
	struct watcher *w;
	size_t read; /* log entries read */
	uint64_t last;
};

static int on_change(void *ctx, uint32_t origin, uint64_t seq,
		     const uint8_t *data, size_t len)
{
	struct pump_ctx *p = ctx;
	Msce__Change *ch = msce__change__unpack(NULL, len, data);
	(void)origin;
	p->last = seq;
	p->read++;
	if (ch == NULL)
		return 0; /* cannot happen for our own log; skip, not stop */
	size_t cl = strlen(ch->collection);
	if ((p->w->coll[0] == '\0' || strcmp(ch->collection, p->w->coll) == 0) &&
	    (p->w->admin || !audit_system(ch->collection, cl))) {
		struct watcher *w = p->w;
		Msce__ClientResponse r = MSCE__CLIENT_RESPONSE__INIT;
		Msce__WatchEvent ev = MSCE__WATCH_EVENT__INIT;
		struct held_event *h;
		ev.change = ch;
		r.id = w->id;
		r.result_case = MSCE__CLIENT_RESPONSE__RESULT_EVENT;
		r.event = &ev;
		if (w->nheld == w->capheld) {
			size_t cap = w->capheld ? w->capheld * 2 : 64;
			h = realloc(w->held, cap * sizeof *h);
			if (h == NULL)
				goto oom;
			w->held = h;
			w->capheld = cap;
		}
		h = &w->held[w->nheld];
		h->len = msce__client_response__get_packed_size(&r);
		if ((h->buf = malloc(h->len ? h->len : 1)) == NULL)
			goto oom;
		msce__client_response__pack(&r, h->buf);
		w->nheld++;
		if (audit_personal(ch->collection, cl))
			audit_refs_add(&w->refs, ch->collection, cl, ch->key,
				       strlen(ch->key));
	}
	msce__change__free_unpacked(ch, NULL);
	return 0;
oom:
	msce__change__free_unpacked(ch, NULL);
	p->w->refs.oom = 1;
	return MSCE_ENOMEM;
}

static void drop_held(struct watcher *w)
{
	for (size_t i = 0; i < w->nheld; i++)
		free(w->held[i].buf);
	w->nheld = 0;
	audit_refs_free(&w->refs);
}

static void flush_held(struct watcher *w)
{
	for (size_t i = 0; i < w->nheld; i++) {
		client_conn_hold(w->c);
		client_conn_reply(w->c, w->held[i].buf, w->held[i].len);
	}
	drop_held(w);
}

static void free_watcher(struct watcher *w)
{
	drop_held(w);
	free(w->held);
	free(w);
}

static void audited(void *arg, int rc, const char *msg)
{
	struct watcher *w = arg;
	char why[ERR_MSG_MAX + 80];

	w->waiting = 0;
	if (w->closed) {
		/* The node stopped meanwhile; its stream ends here. */
		drop_held(w);
		finish(w, MSCE_ECLOSED, "node is shutting down");
		free_watcher(w);
		return;
	}
	if (rc == 0) {
		flush_held(w);
		api_committed(w->n);
		return;
	}
	drop_held(w);
	snprintf(why, sizeof why,
		 "watch ended: the audit entry of the changes to deliver "
		 "could not be written: %s",
		 msg);
	finish(w, rc, why);
}

/* Sends what the pump held, once audited if it names personal records. */
static void deliver(struct watcher *w)
{
	struct audit_refs refs;
	struct audit_who who;
	int role = client_conn_role(w->c);

	if (w->nheld == 0 && !w->refs.oom)
		return;
	if (w->refs.n == 0 && !w->refs.oom) {
		flush_held(w);
		return;
	}
	if (w->n->stopping) {
		drop_held(w);
		return;
	}
	w->waiting = 1;
	refs = w->refs;
	memset(&w->refs, 0, sizeof w->refs);
	who = (struct audit_who){client_conn_name(w->c), config_role_name(role),
				 w->n->cfg.node_name,
				 audit_purpose(role, w->purpose)};
	audit_submit(w->n->writer, "watch", &who, &refs, audited, w);
}

/* Reads at most WATCH_BATCH log entries for w, whichever their origins
 * and whether its filter takes them. Returns 1 if it stopped with more to
 * read (then it is called again at the next turn of the loop, not at the
 * next tick), 0 if w is up to date or waits for its client to read. */
static int pump_one(struct watcher *w)
{
	struct vv_entry vv[WATCH_ORIGINS];
	size_t n = store_vv(w->n->store, vv, WATCH_ORIGINS);
	size_t budget = WATCH_BATCH;
	char msg[160];
	int more = 0;

	if (n > WATCH_ORIGINS)
		n = WATCH_ORIGINS;
	for (size_t i = 0; i < n; i++) {
		uint64_t *pos = pos_of(w, vv[i].origin);
		struct pump_ctx p = {w, 0, 0};
		struct err e;
		int rc;

		if (pos == NULL || *pos >= vv[i].seq)
			continue;
		if (budget == 0)
			return 1;
		if (client_conn_queued(w->c) > WATCH_QUEUE)
			return 0; /* the client reads slowly: the tick tries */
		if (*pos < vv[i].floor) {
			snprintf(msg, sizeof msg,
				 "cursor %u/%llu is below the log floor %llu: "
				 "rescan, then watch from the new vector",
				 vv[i].origin, (unsigned long long)*pos,
				 (unsigned long long)vv[i].floor);
			finish(w, MSCE_ENOTFOUND, msg);
			return 0;
		}
		err_clear(&e);
		rc = store_log_read(w->n->store, vv[i].origin, *pos + 1,
				    budget, 1u << 20, on_change, &p, &e);
		if (rc) {
			finish(w, rc, e.msg);
			return 0;
		}
		/* Stopped at its bounds with more of the origin to read (and
		 * it moved: a read that moves nothing does not spin). */
		if (p.last > *pos && p.last < vv[i].seq)
			more = 1;
		if (p.last > *pos)
			*pos = p.last;
		budget -= p.read < budget ? p.read : budget;
	}
	return more;
}

static void on_idle(uv_idle_t *h) { watch_pump(h->data); }

void watch_pump(struct node *n)
{
	struct watcher **pp = &n->watchers;
	int more = 0;

	while (*pp != NULL) {
		struct watcher *w = *pp;
		if (w->waiting) {
			pp = &w->next;
			continue;
		}
		if (!w->done && !client_conn_open(w->c)) {
			/* The client went away: release the stream's hold. */
			client_conn_reply(w->c, (const uint8_t *)"", 0);
			w->done = 1;
		}
		if (!w->done) {
			more |= pump_one(w);
			if (w->done)
				drop_held(w);
			else
				deliver(w);
		}
		if (w->done) {
			*pp = w->next;
			free_watcher(w);
			continue;
		}
		pp = &w->next;
	}
	/* A watch far behind (a desk back from a day away, or one collection
	 * among many) reads on at each turn of the loop, a batch at a time
	 * between other work, until it is up to date. */
	if (more && !n->stopping)
		uv_idle_start(&n->watch_idle, on_idle);
	else
		uv_idle_stop(&n->watch_idle);
}

/* Would one more watch on c pass MSCE_MAX_WATCHES (the connection) or
 * MSCE_MAX_WATCHES_PER_KEY (its client key, over TCP)? */
static int too_many(const struct node *n, const struct client_conn *c)
{
	const char *key = client_conn_remote(c) ? client_conn_name(c) : NULL;
	size_t on_conn = 0, on_key = 0;

	for (const struct watcher *w = n->watchers; w != NULL; w = w->next) {
		if (w->done)
			continue;
		on_conn += w->c == c;
		on_key += key != NULL && client_conn_remote(w->c) &&
			  strcmp(client_conn_name(w->c), key) == 0;
	}
	return on_conn >= MSCE_MAX_WATCHES ||
	       on_key >= MSCE_MAX_WATCHES_PER_KEY;
}

void watch_start(struct node *n, struct client_conn *c, uint64_t id,
		 const Msce__WatchRequest *req, const char *purpose)
{
	struct watcher *w = calloc(1, sizeof *w);
	if (w == NULL) {
		Msce__ClientResponse r = MSCE__CLIENT_RESPONSE__INIT;
		r.id = id;
		r.code = MSCE_ENOMEM;
		r.error = "out of memory";
		send_response(c, &r);
		return;
	}
	w->n = n;
	w->c = c; /* keeps the hold api_request took, until the end */
	w->id = id;
	if (too_many(n, c)) {
		char why[128];
		snprintf(why, sizeof why,
			 "too many watches open: at most %d on a connection "
			 "and %d on one client key",
			 MSCE_MAX_WATCHES, MSCE_MAX_WATCHES_PER_KEY);
		finish(w, MSCE_ETOOBIG, why);
		free(w);
		return;
	}
	w->admin = client_conn_role(c) >= CONFIG_ROLE_ADMIN;
	snprintf(w->purpose, sizeof w->purpose, "%s", purpose);
	snprintf(w->coll, sizeof w->coll, "%s", req->collection);
	if (req->n_after > WATCH_ORIGINS) {
		w->done = 1;
		char why[96];
		snprintf(why, sizeof why,
			 "cursor with %zu origins, at most %d (a whole vector)",
			 req->n_after, WATCH_ORIGINS);
		finish(w, MSCE_ETOOBIG, why);
		free(w);
		return;
	}
	for (size_t i = 0; i < req->n_after; i++) {
		uint64_t *p = pos_of(w, req->after[i]->origin);
		if (p != NULL)
			*p = req->after[i]->seq;
	}
	w->next = n->watchers;
	n->watchers = w;
	watch_pump(n);
}

void watch_close_all(struct node *n)
{
	while (n->watchers != NULL) {
		struct watcher *w = n->watchers;
		n->watchers = w->next;
		if (w->waiting) {
			/* Its audit entry is in the writer: ended there. */
			w->closed = 1;
			continue;
		}
		if (!w->done)
			finish(w, MSCE_ECLOSED, "node is shutting down");
		free_watcher(w);
	}
}
