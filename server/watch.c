/* Watch streams: every change after a client's cursor, then new changes
 * as they commit, each once and in seq order per origin.
 *
 * A watcher keeps a position per origin and reads the node's log from
 * there whenever something commits (watch_pump) and on the tick. It
 * sends at most WATCH_BATCH events per pump and waits while more than
 * WATCH_QUEUE bytes are queued to the client, so a slow reader costs
 * bounded memory. A cursor that falls below the log floor (the log was
 * truncated past it) ends the stream with ENOTFOUND: the client rescans. */
#include <stdlib.h>
#include <string.h>

#include "bounds.h"
#include "client.pb-c.h"
#include "log.h"
#include "node.h"

#define WATCH_BATCH 512
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
	size_t sent;
	uint64_t last;
};

static int on_change(void *ctx, uint32_t origin, uint64_t seq,
		     const uint8_t *data, size_t len)
{
	struct pump_ctx *p = ctx;
	Msce__Change *ch = msce__change__unpack(NULL, len, data);
	(void)origin;
	p->last = seq;
	if (ch == NULL)
		return 0; /* cannot happen for our own log; skip, not stop */
	if (p->w->coll[0] == '\0' || strcmp(ch->collection, p->w->coll) == 0) {
		Msce__ClientResponse r = MSCE__CLIENT_RESPONSE__INIT;
		Msce__WatchEvent ev = MSCE__WATCH_EVENT__INIT;
		ev.change = ch;
		r.id = p->w->id;
		r.result_case = MSCE__CLIENT_RESPONSE__RESULT_EVENT;
		r.event = &ev;
		client_conn_hold(p->w->c);
		send_response(p->w->c, &r);
		p->sent++;
	}
	msce__change__free_unpacked(ch, NULL);
	return 0;
}

static void pump_one(struct watcher *w)
{
	struct vv_entry vv[WATCH_ORIGINS];
	size_t n = store_vv(w->n->store, vv, WATCH_ORIGINS), sent = 0;
	char msg[160];

	if (n > WATCH_ORIGINS)
		n = WATCH_ORIGINS;
	for (size_t i = 0; i < n && sent < WATCH_BATCH; i++) {
		uint64_t *pos = pos_of(w, vv[i].origin);
		struct pump_ctx p = {w, 0, 0};
		struct err e;
		int rc;

		if (pos == NULL || *pos >= vv[i].seq)
			continue;
		if (client_conn_queued(w->c) > WATCH_QUEUE)
			return; /* the client reads slowly: later */
		if (*pos < vv[i].floor) {
			snprintf(msg, sizeof msg,
				 "cursor %u/%llu is below the log floor %llu: "
				 "rescan, then watch from the new vector",
				 vv[i].origin, (unsigned long long)*pos,
				 (unsigned long long)vv[i].floor);
			finish(w, MSCE_ENOTFOUND, msg);
			return;
		}
		rc = store_log_read(w->n->store, vv[i].origin, *pos + 1,
				    WATCH_BATCH - sent, 1u << 20, on_change, &p,
				    &e);
		if (rc) {
			finish(w, rc, e.msg);
			return;
		}
		if (p.last > *pos)
			*pos = p.last;
		sent += p.sent;
	}
}

void watch_pump(struct node *n)
{
	struct watcher **pp = &n->watchers;

	while (*pp != NULL) {
		struct watcher *w = *pp;
		if (!w->done && !client_conn_open(w->c)) {
			/* The client went away: release the stream's hold. */
			client_conn_reply(w->c, (const uint8_t *)"", 0);
			w->done = 1;
		}
		if (!w->done)
			pump_one(w);
		if (w->done) {
			*pp = w->next;
			free(w);
			continue;
		}
		pp = &w->next;
	}
}

void watch_start(struct node *n, struct client_conn *c, uint64_t id,
		 const Msce__WatchRequest *req)
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
	snprintf(w->coll, sizeof w->coll, "%s", req->collection);
	if (req->n_after > WATCH_ORIGINS) {
		w->done = 1;
		finish(w, MSCE_ETOOBIG, "cursor with too many origins");
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
		if (!w->done)
			finish(w, MSCE_ECLOSED, "node is shutting down");
		free(w);
	}
}
