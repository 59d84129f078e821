/* SPDX-License-Identifier: Apache-2.0 */
/* libmsce's event-loop API (msce.h, "the event-loop API"): requests and
 * watches over one non-blocking link (link.c), driven by the caller's loop
 * through msce_async_step.
 *
 * Requests wait in one list in the order made; each is packed (codec.c)
 * when made, sent as soon as a connection is up, and taken off the list
 * when its answer, its timeout or the loss of its connection ends it.
 * Watches live in their own list with a cursor each: the position after
 * the last event given, from which a new connection resubscribes, and
 * against which events are checked, so none is given twice.
 *
 * The caller polls one file descriptor for the life of the msce_async: an
 * epoll set holding the current connection's socket (for what the link
 * wants) and a timerfd armed for the next deadline, so a reconnect, a
 * timeout or a retry never asks the caller's loop to re-register anything.
 *
 * Callbacks only run inside msce_async_step: what happens outside it (a
 * send that finds the connection dead, a cancelled watch) is noted and
 * handled by the next step, for which the timer is armed at once.
 * msce_async_free inside a callback is deferred to the step's end. */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "codec.h"
#include "conninfo.h"
#include "error.h"
#include "link.h"
#include "purpose.h"

#define CALM_MS 1000 /* a connection that lived this long resets backoff */

enum kind {
	K_WRITE,
	K_BATCH,
	K_RECORD,
	K_PAGE,
	K_STATUS,
	K_CONFLICTS,
	K_WATCH_STATUS, /* the status a watch from now takes its cursor from */
};

struct areq {
	struct areq *next;
	enum kind kind;
	uint64_t id;
	int idempotent;
	int sent; /* on the current connection */
	uint8_t *msg;
	size_t len;
	uint64_t deadline; /* monotonic ms, 0 = none */
	size_t nbatch;
	union {
		msce_write_fn write;
		msce_batch_fn batch;
		msce_record_fn record;
		msce_page_fn page;
		msce_status_fn status;
		msce_conflicts_fn conflicts;
	} fn;
	void *ctx;
	struct msce_watcher *w; /* K_WATCH_STATUS */
};

struct msce_watcher {
	struct msce_watcher *next;
	msce_async *a;
	int all;
	char coll[MSCE_MAX_COLLECTION + 1];
	int have_cursor; /* 0: from now, before the status answered */
	struct msce_cursor cur;
	msce_event_fn fn;
	void *ctx;
	uint64_t sub_id; /* its stream's id on this connection, 0 none */
	int asking;	 /* its K_WATCH_STATUS is in flight */
	int ended;	 /* fn is to be told end_code, then w freed */
	int end_code;
	char end_msg[512];
};

struct msce_async {
	msce_conninfo *ci;
	int epfd;    /* what the caller polls */
	int tfd;     /* timerfd in epfd: the next deadline */
	int sock;    /* the socket in epfd, -1 none */
	int sock_ev; /* its epoll events */
	struct link *link; /* NULL while waiting to retry */
	int ready;	   /* link open, requests flowing */
	uint64_t opened_at;
	size_t center; /* being tried or connected to */
	size_t tried;  /* centers tried in this round */
	uint64_t retry_at;
	unsigned backoff;
	uint64_t next_id;
	struct areq *head, *tail;
	size_t nreq;
	struct msce_watcher *watches;
	int closed;	  /* for good: requests are refused */
	int code;	  /* why, once closed */
	int lost_pending; /* a send outside a step found the link dead */
	int depth;	  /* inside msce_async_step */
	int free_wanted;
	msce_state_fn state_fn;
	void *state_ctx;
	char purpose[PURPOSE_MAX + 1]; /* sent with every request */
	char msg[512]; /* why the last connection failed */
	const Msce__ClientResponse *batch_answer; /* during a batch callback */
};

static void start_connect(msce_async *a);
int msce_async_timeout(const msce_async *a);

/* ---- the caller's file descriptor -------------------------------------- */

/* Takes the socket out of the epoll set before its link closes it (a new
 * socket may get the same number). */
static void drop_link(msce_async *a)
{
	if (a->sock >= 0)
		epoll_ctl(a->epfd, EPOLL_CTL_DEL, a->sock, NULL);
	a->sock = -1;
	a->sock_ev = 0;
	if (a->link != NULL)
		link_close(a->link);
	a->link = NULL;
}

/* Brings the epoll set and the timer in line with the link and the
 * deadlines. */
static void update_io(msce_async *a)
{
	struct itimerspec its = {0};
	int ms;

	if (a->link != NULL && !a->closed) {
		int fd = link_fd(a->link), w = link_wants(a->link);
		int ev = (w & LINK_WANT_READ ? EPOLLIN : 0) |
			 (w & LINK_WANT_WRITE ? EPOLLOUT : 0);
		struct epoll_event e = {.events = (uint32_t)ev,
					.data.fd = fd};
		if (fd != a->sock) {
			if (a->sock >= 0)
				epoll_ctl(a->epfd, EPOLL_CTL_DEL, a->sock, NULL);
			if (epoll_ctl(a->epfd, EPOLL_CTL_ADD, fd, &e) == 0) {
				a->sock = fd;
				a->sock_ev = ev;
			}
		} else if (ev != a->sock_ev &&
			   epoll_ctl(a->epfd, EPOLL_CTL_MOD, fd, &e) == 0) {
			a->sock_ev = ev;
		}
	}
	ms = msce_async_timeout(a);
	if (ms == 0)
		its.it_value.tv_nsec = 1; /* at once */
	else if (ms > 0) {
		its.it_value.tv_sec = ms / 1000;
		its.it_value.tv_nsec = (long)(ms % 1000) * 1000000;
	}
	timerfd_settime(a->tfd, 0, &its, NULL);
}

/* ---- small helpers ---------------------------------------------------- */

static void set_msg(msce_async *a, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void set_msg(msce_async *a, const char *fmt, ...)
{
	char buf[sizeof a->msg];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	memcpy(a->msg, buf, sizeof buf);
}

static void state(msce_async *a, enum msce_async_state s, int code,
		  const char *msg)
{
	if (a->state_fn != NULL && a->depth > 0)
		a->state_fn(a->state_ctx, s, code, msg,
			    a->ci->centers[a->center].label);
}

static void unlink_req(msce_async *a, struct areq *r)
{
	struct areq **pp = &a->head, *prev = NULL;

	while (*pp != NULL && *pp != r) {
		prev = *pp;
		pp = &(*pp)->next;
	}
	if (*pp == NULL)
		return;
	*pp = r->next;
	if (a->tail == r)
		a->tail = prev;
	a->nreq--;
}

static void req_free(struct areq *r)
{
	free(r->msg);
	free(r);
}

/* Ends a request without an answer: its callback gets code and msg. */
static void fail_req(struct areq *r, int code, const char *msg)
{
	switch (r->kind) {
	case K_WRITE:
		if (r->fn.write)
			r->fn.write(r->ctx, code, msg, NULL);
		break;
	case K_BATCH:
		if (r->fn.batch)
			r->fn.batch(r->ctx, code, msg, 0, NULL, NULL);
		break;
	case K_RECORD:
		if (r->fn.record)
			r->fn.record(r->ctx, code, msg, NULL);
		break;
	case K_PAGE:
		if (r->fn.page)
			r->fn.page(r->ctx, code, msg, NULL);
		break;
	case K_STATUS:
		if (r->fn.status)
			r->fn.status(r->ctx, code, msg, NULL);
		break;
	case K_CONFLICTS:
		if (r->fn.conflicts)
			r->fn.conflicts(r->ctx, code, msg, NULL);
		break;
	case K_WATCH_STATUS:
		break;
	}
}

static void end_watch(struct msce_watcher *w, int code, const char *msg)
{
	if (w->ended)
		return;
	w->ended = 1;
	w->end_code = code;
	snprintf(w->end_msg, sizeof w->end_msg, "%s", msg);
}

/* Tells ended watches, then frees them. */
static void reap_watches(msce_async *a)
{
	struct msce_watcher **pp = &a->watches;

	while (*pp != NULL) {
		struct msce_watcher *w = *pp;
		if (!w->ended) {
			pp = &w->next;
			continue;
		}
		*pp = w->next;
		for (struct areq *r = a->head; r != NULL; r = r->next)
			if (r->w == w)
				r->w = NULL;
		if (w->fn)
			w->fn(w->ctx, w->end_code, w->end_msg, NULL, NULL);
		free(w);
		pp = &a->watches; /* fn may have changed the list */
	}
}

/* ---- sending ---------------------------------------------------------- */

static int send_bytes(msce_async *a, const uint8_t *msg, size_t len)
{
	char err[256];

	if (link_send(a->link, msg, len, err, sizeof err) != 0) {
		a->lost_pending = 1; /* the next step finds out why */
		return -1;
	}
	return 0;
}

static void send_req(msce_async *a, struct areq *r)
{
	if (!a->ready || r->sent || a->lost_pending)
		return;
	if (link_error(a->link)) {
		a->lost_pending = 1;
		return;
	}
	/* Once handed to the socket it may have reached the node. */
	r->sent = 1;
	send_bytes(a, r->msg, r->len);
}

/* After a request made outside a step: the timer for its deadline, the
 * socket's write interest. */
static int queued(msce_async *a, int rc)
{
	if (a->depth == 0 && !a->closed)
		update_io(a);
	return rc;
}

/* Queues a request made from b (the caller sets its callback, then sends
 * it with send_req). */
static int enqueue(msce_async *a, struct codec_req *b, enum kind kind,
		   int idempotent, uint64_t extra_ms, struct areq **out)
{
	struct areq *r;
	int rc;

	*out = NULL;
	if (a->closed)
		return MSCE_ECLOSED;
	if ((r = calloc(1, sizeof *r)) == NULL)
		return MSCE_ENOMEM;
	r->id = a->next_id++;
	if (a->purpose[0] != '\0' && b->req.purpose[0] == '\0')
		b->req.purpose = a->purpose;
	if ((rc = codec_pack(b, r->id, &r->msg, &r->len)) != 0) {
		free(r);
		return rc;
	}
	if (r->len > MSCE_MAX_MESSAGE) {
		set_msg(a, "request of %zu bytes over the limit of %u bytes",
			r->len, MSCE_MAX_MESSAGE);
		req_free(r);
		return MSCE_ETOOBIG;
	}
	r->kind = kind;
	r->idempotent = idempotent;
	if (a->ci->request_ms)
		r->deadline = link_now_ms() + a->ci->request_ms + extra_ms;
	if (a->tail)
		a->tail->next = r;
	else
		a->head = r;
	a->tail = r;
	a->nreq++;
	*out = r;
	return 0;
}

static void subscribe(msce_async *a, struct msce_watcher *w)
{
	struct codec_req b;
	char why[256];
	uint8_t *buf;
	size_t len;
	int rc;

	if (!a->ready || w->ended || w->sub_id != 0 || w->asking)
		return;
	if (!w->have_cursor) {
		/* From now: the node's current vector first. */
		struct areq *r;
		codec_status(&b);
		rc = enqueue(a, &b, K_WATCH_STATUS, 1, 0, &r);
		codec_release(&b);
		if (rc) {
			end_watch(w, rc, "cannot ask for the node's vector");
			return;
		}
		r->deadline = 0; /* asked again on the next connection */
		r->w = w;
		w->asking = 1;
		send_req(a, r);
		return;
	}
	rc = codec_watch(&b, w->all ? NULL : w->coll, &w->cur, why,
			 sizeof why);
	if (rc == 0) {
		w->sub_id = a->next_id++;
		if (a->purpose[0] != '\0')
			b.req.purpose = a->purpose;
		if ((rc = codec_pack(&b, w->sub_id, &buf, &len)) != 0)
			snprintf(why, sizeof why, "out of memory");
	}
	codec_release(&b);
	if (rc) {
		end_watch(w, rc, why);
		return;
	}
	send_bytes(a, buf, len);
	free(buf);
}

/* ---- connection life ---------------------------------------------------- */

static void on_open(msce_async *a)
{
	a->ready = 1;
	a->opened_at = link_now_ms();
	a->tried = 0;
	a->msg[0] = '\0';
	state(a, MSCE_ASYNC_READY, 0, "");
	for (struct msce_watcher *w = a->watches; w != NULL; w = w->next)
		subscribe(a, w);
	for (struct areq *r = a->head; r != NULL; r = r->next)
		send_req(a, r);
}

/* Gives up for good: every request and watch ends with code. */
static void close_for_good(msce_async *a, int code, const char *msg)
{
	char why[sizeof a->msg];

	snprintf(why, sizeof why, "%s", msg);
	a->closed = 1;
	a->code = code;
	drop_link(a);
	a->ready = 0;
	state(a, MSCE_ASYNC_CLOSED, code, why);
	while (a->head != NULL) {
		struct areq *r = a->head;
		unlink_req(a, r);
		fail_req(r, code, why);
		req_free(r);
	}
	for (struct msce_watcher *w = a->watches; w != NULL; w = w->next)
		end_watch(w, code, why);
	reap_watches(a);
}

/* A connection attempt failed: the next center, or a pause. */
static void connect_failed(msce_async *a, int code)
{
	drop_link(a);
	a->ready = 0;
	if (++a->tried < a->ci->n) {
		a->center = (a->center + 1) % a->ci->n;
		start_connect(a);
		return;
	}
	if (!a->ci->reconnect) {
		close_for_good(a, code, a->msg);
		return;
	}
	state(a, MSCE_ASYNC_DOWN, code, a->msg);
	a->tried = 0;
	a->center = (a->center + 1) % a->ci->n;
	a->retry_at = link_now_ms() + a->backoff;
	a->backoff = a->backoff * 2 < a->ci->retry_max_ms
			     ? a->backoff * 2
			     : a->ci->retry_max_ms;
}

/* Opens a link to the current center (unix links open at once). */
static void start_connect(msce_async *a)
{
	int rc;

	a->retry_at = 0;
	state(a, MSCE_ASYNC_CONNECTING, 0, "");
	rc = conninfo_open(a->ci, a->center, &a->link, a->msg, sizeof a->msg);
	if (rc) {
		a->link = NULL;
		connect_failed(a, rc);
		return;
	}
	if (link_is_open(a->link))
		on_open(a);
}

/* The connection was lost: reads go again on the next, writes in flight
 * end (they may have committed), watches resubscribe. */
static void on_lost(msce_async *a, int code, const char *why)
{
	int calm = link_now_ms() - a->opened_at >= CALM_MS;
	struct areq *failed = NULL, **fp = &failed, *r, *next;
	char msg[sizeof a->msg + 96];

	snprintf(a->msg, sizeof a->msg, "%s", why);
	drop_link(a);
	a->ready = 0;
	a->lost_pending = 0;
	for (r = a->head; r != NULL; r = next) {
		next = r->next;
		if (r->kind != K_WATCH_STATUS && !r->sent)
			continue;
		if (r->kind != K_WATCH_STATUS && r->idempotent) {
			r->sent = 0;
			continue;
		}
		/* Writes in flight end; a watch's status is asked again. */
		unlink_req(a, r);
		r->next = NULL;
		*fp = r;
		fp = &r->next;
	}
	for (struct msce_watcher *w = a->watches; w != NULL; w = w->next) {
		w->sub_id = 0;
		w->asking = 0;
	}
	if (!a->ci->reconnect) {
		for (r = failed; r != NULL; r = next) {
			next = r->next;
			fail_req(r, code, a->msg);
			req_free(r);
		}
		close_for_good(a, code, a->msg);
		return;
	}
	state(a, MSCE_ASYNC_DOWN, code, a->msg);
	snprintf(msg, sizeof msg,
		 "the connection was lost before the answer (%s): the write "
		 "may or may not have committed",
		 a->msg);
	for (r = failed; r != NULL; r = next) {
		next = r->next;
		if (r->kind != K_WATCH_STATUS)
			fail_req(r, MSCE_ECLOSED, msg);
		req_free(r);
	}
	if (a->closed)
		return;
	/* Back to the same center at once after a connection that lived;
	 * after one that died young, pause as after a failed attempt. */
	a->tried = 0;
	if (calm) {
		a->backoff = a->ci->retry_min_ms;
		start_connect(a);
	} else {
		a->retry_at = link_now_ms() + a->backoff;
		a->backoff = a->backoff * 2 < a->ci->retry_max_ms
				     ? a->backoff * 2
				     : a->ci->retry_max_ms;
	}
}

/* ---- answers ------------------------------------------------------------ */

static struct msce_watcher *watch_of(msce_async *a, uint64_t id)
{
	for (struct msce_watcher *w = a->watches; w != NULL; w = w->next)
		if (w->sub_id == id && !w->ended)
			return w;
	return NULL;
}

static void watch_answer(msce_async *a, struct msce_watcher *w,
			 Msce__ClientResponse *r)
{
	const Msce__Change *ch;
	struct msce_value *fields;
	struct msce_event ev;

	if (r->code == MSCE_ECLOSED && a->ci->reconnect) {
		/* The node is shutting down: resume on the next connection. */
		msce__client_response__free_unpacked(r, NULL);
		on_lost(a, MSCE_ECLOSED, "the node is shutting down");
		return;
	}
	if (r->code != 0 || r->result_case != MSCE__CLIENT_RESPONSE__RESULT_EVENT ||
	    r->event->change == NULL) {
		end_watch(w, r->code ? (int)r->code : MSCE_EPROTO,
			  r->code ? r->error : "unexpected answer to a watch");
		msce__client_response__free_unpacked(r, NULL);
		return;
	}
	ch = r->event->change;
	/* Seen already (given before a reconnect): not again. */
	if (codec_cursor_advance(&w->cur, ch->origin, ch->seq) &&
	    codec_event(ch, &ev, &fields) == 0) {
		if (w->fn)
			w->fn(w->ctx, 0, "", &ev, &w->cur);
		free(fields);
	}
	msce__client_response__free_unpacked(r, NULL);
}

static void answer(msce_async *a, struct areq *q, Msce__ClientResponse *r)
{
	int code = (int)r->code;
	char msg[512];

	snprintf(msg, sizeof msg, "%s", code ? r->error : "");
	switch (q->kind) {
	case K_WRITE: {
		struct msce_write_result res;
		codec_write_result(r, &res);
		msce__client_response__free_unpacked(r, NULL);
		if (q->fn.write)
			q->fn.write(q->ctx, code, msg,
				    code == 0 || code == MSCE_ETIMEOUT ? &res
								       : NULL);
		return;
	}
	case K_BATCH: {
		struct msce_write_result *res = NULL;
		int *codes = NULL;
		size_t n = 0;
		if (code == 0 &&
		    (r->result_case != MSCE__CLIENT_RESPONSE__RESULT_BATCH ||
		     r->batch->n_results != q->nbatch)) {
			code = MSCE_EPROTO;
			snprintf(msg, sizeof msg, "batch answer does not match");
		}
		if (code == 0) {
			n = q->nbatch;
			res = calloc(n ? n : 1, sizeof *res);
			codes = calloc(n ? n : 1, sizeof *codes);
			if (res == NULL || codes == NULL) {
				code = MSCE_ENOMEM;
				n = 0;
				snprintf(msg, sizeof msg, "out of memory");
			}
			for (size_t i = 0; i < n; i++) {
				codes[i] = (int)r->batch->results[i]->code;
				codec_write_result(r->batch->results[i],
						   &res[i]);
			}
		}
		if (q->fn.batch) {
			/* msce_async_batch_errmsg reads the answer meanwhile */
			a->batch_answer = code ? NULL : r;
			q->fn.batch(q->ctx, code, msg, n,
				    code ? NULL : res, code ? NULL : codes);
			a->batch_answer = NULL;
		}
		msce__client_response__free_unpacked(r, NULL);
		free(res);
		free(codes);
		return;
	}
	case K_WATCH_STATUS: {
		struct msce_watcher *w = q->w;
		msce_status *s = NULL;
		if (code == 0)
			code = codec_status_result(r, &s, msg, sizeof msg);
		else
			msce__client_response__free_unpacked(r, NULL);
		if (w == NULL || w->ended) {
			msce_status_free(s);
			return;
		}
		w->asking = 0;
		if (code) {
			end_watch(w, code, msg);
			return;
		}
		msce_status_cursor(s, &w->cur);
		msce_status_free(s);
		w->have_cursor = 1;
		subscribe(a, w);
		return;
	}
	default:
		break;
	}
	if (code) {
		msce__client_response__free_unpacked(r, NULL);
		fail_req(q, code, msg);
		return;
	}
	switch (q->kind) {
	case K_RECORD: {
		msce_record *rec;
		code = codec_record(r, &rec, msg, sizeof msg);
		if (q->fn.record)
			q->fn.record(q->ctx, code, msg, rec);
		else
			msce_record_free(rec);
		break;
	}
	case K_PAGE: {
		msce_page *p;
		code = codec_page(r, &p, msg, sizeof msg);
		if (q->fn.page)
			q->fn.page(q->ctx, code, msg, p);
		else
			msce_page_free(p);
		break;
	}
	case K_STATUS: {
		msce_status *s;
		code = codec_status_result(r, &s, msg, sizeof msg);
		if (q->fn.status)
			q->fn.status(q->ctx, code, msg, s);
		else
			msce_status_free(s);
		break;
	}
	case K_CONFLICTS: {
		msce_conflicts *l;
		code = codec_conflicts_result(r, &l, msg, sizeof msg);
		if (q->fn.conflicts)
			q->fn.conflicts(q->ctx, code, msg, l);
		else
			msce_conflicts_free(l);
		break;
	}
	default:
		msce__client_response__free_unpacked(r, NULL);
	}
}

static void dispatch(msce_async *a, uint8_t *buf, size_t len)
{
	Msce__ClientResponse *r = codec_unpack(buf, len);
	struct msce_watcher *w;
	struct areq *q;

	free(buf);
	if (r == NULL) {
		on_lost(a, MSCE_EPROTO,
			"the node sent something that is not a "
			"msce.ClientResponse");
		return;
	}
	if ((w = watch_of(a, r->id)) != NULL) {
		watch_answer(a, w, r);
		return;
	}
	for (q = a->head; q != NULL; q = q->next)
		if (q->id == r->id && q->sent)
			break;
	if (q == NULL) {
		/* A request that timed out, or id 0: the node could not
		 * read one of ours (codec.c makes only valid ones). */
		msce__client_response__free_unpacked(r, NULL);
		return;
	}
	unlink_req(a, q);
	answer(a, q, r);
	req_free(q);
}

/* Requests past their deadline end with MSCE_ETIMEOUT. A request sent
 * on a connection that is up and never answered means the center took it
 * and stopped (a stopped msced, a stalled disk): with other centers to
 * try, the connection is given up as lost, and the next center tried. */
static void expire(msce_async *a, uint64_t now)
{
	int hung = 0;

	for (;;) {
		struct areq *r;
		char msg[sizeof a->msg + 96];

		for (r = a->head; r != NULL; r = r->next)
			if (r->deadline && now >= r->deadline)
				break;
		if (r == NULL || a->closed)
			break;
		unlink_req(a, r);
		if (r->sent) {
			snprintf(msg, sizeof msg,
				 "no answer from %s within %u ms",
				 a->ci->centers[a->center].label,
				 a->ci->request_ms);
			hung |= a->ready;
		} else {
			snprintf(msg, sizeof msg,
				 "no connection to any center within %u ms%s%s",
				 a->ci->request_ms, a->msg[0] ? ": " : "",
				 a->msg);
		}
		fail_req(r, MSCE_ETIMEOUT, msg);
		req_free(r);
	}
	if (hung && a->ready && !a->closed && a->ci->reconnect &&
	    a->ci->n > 1) {
		char why[sizeof a->msg];
		snprintf(why, sizeof why, "%s: no answer within %u ms",
			 a->ci->centers[a->center].label, a->ci->request_ms);
		a->center = (a->center + 1) % a->ci->n;
		on_lost(a, MSCE_ETIMEOUT, why);
	}
}

/* ---- the public surface --------------------------------------------------- */

int msce_async_new(const msce_conninfo *ci, msce_async **out)
{
	msce_async *a;

	*out = NULL;
	if (ci == NULL || ci->n == 0)
		return MSCE_EINVAL;
	for (size_t i = 0; i < ci->n; i++)
		if (ci->centers[i].tcp && ci->sk == NULL)
			return MSCE_EINVAL;
	if ((a = calloc(1, sizeof *a)) == NULL)
		return MSCE_ENOMEM;
	a->sock = -1;
	a->epfd = epoll_create1(EPOLL_CLOEXEC);
	a->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (a->epfd >= 0 && a->tfd >= 0) {
		struct epoll_event e = {.events = EPOLLIN, .data.fd = a->tfd};
		if (epoll_ctl(a->epfd, EPOLL_CTL_ADD, a->tfd, &e) != 0) {
			close(a->tfd);
			a->tfd = -1;
		}
	}
	if (a->epfd < 0 || a->tfd < 0 ||
	    (a->ci = conninfo_copy(ci)) == NULL) {
		int rc = errno == ENOMEM || a->ci == NULL ? MSCE_ENOMEM
							   : MSCE_EIO;
		if (a->epfd >= 0)
			close(a->epfd);
		if (a->tfd >= 0)
			close(a->tfd);
		free(a);
		return rc;
	}
	a->next_id = 1;
	a->backoff = a->ci->retry_min_ms;
	start_connect(a);
	update_io(a);
	if (a->closed) {
		/* Reconnection is off and no center answered. */
		int rc = a->code ? a->code : MSCE_EUNAVAIL;
		msce_async_free(a);
		return rc;
	}
	*out = a;
	return 0;
}

static void do_free(msce_async *a)
{
	a->depth++; /* callbacks below may not free again */
	if (!a->closed || a->head != NULL || a->watches != NULL)
		close_for_good(a, MSCE_ECLOSED, "closed by msce_async_free");
	drop_link(a);
	close(a->tfd);
	close(a->epfd);
	msce_conninfo_free(a->ci);
	free(a);
}

void msce_async_free(msce_async *a)
{
	if (a == NULL || a->free_wanted)
		return;
	if (a->depth > 0) {
		a->free_wanted = 1;
		a->closed = 1;
		return;
	}
	a->free_wanted = 1;
	do_free(a);
}

int msce_async_fd(const msce_async *a) { return a->epfd; }

int msce_async_events(const msce_async *a)
{
	(void)a;
	return MSCE_WANT_READ; /* the epoll set: readable when work is due */
}

int msce_async_timeout(const msce_async *a)
{
	uint64_t due = 0, now;

	if (a->closed)
		return -1;
	if (a->lost_pending)
		return 0;
	for (struct msce_watcher *w = a->watches; w != NULL; w = w->next)
		if (w->ended)
			return 0;
	if (a->link && link_deadline(a->link))
		due = link_deadline(a->link);
	if (a->link == NULL && a->retry_at && (!due || a->retry_at < due))
		due = a->retry_at;
	for (struct areq *r = a->head; r != NULL; r = r->next)
		if (r->deadline && (!due || r->deadline < due))
			due = r->deadline;
	if (!due)
		return -1;
	now = link_now_ms();
	if (due <= now)
		return 0;
	return due - now > INT_MAX ? INT_MAX : (int)(due - now);
}

int msce_async_step(msce_async *a, int ready)
{
	char why[sizeof a->msg];
	uint8_t *buf;
	size_t len;
	int rc = 0;

	struct epoll_event ev[4];
	uint64_t ticks;
	int n, sock_ready = 0;

	(void)ready; /* what is ready comes from the epoll set itself */
	if (a->closed && !a->free_wanted)
		return MSCE_ECLOSED;
	a->depth++;
	while (read(a->tfd, &ticks, sizeof ticks) > 0)
		;
	n = epoll_wait(a->epfd, ev, 4, 0);
	for (int i = 0; i < n; i++)
		if (ev[i].data.fd == a->sock && a->sock >= 0)
			sock_ready |= (ev[i].events & (EPOLLIN | EPOLLHUP |
						       EPOLLERR)
					       ? LINK_WANT_READ
					       : 0) |
				      (ev[i].events & (EPOLLOUT | EPOLLHUP |
						       EPOLLERR)
					       ? LINK_WANT_WRITE
					       : 0);
	if (a->link != NULL && !a->closed) {
		struct link *l = a->link;
		int was_ready = a->ready;
		rc = link_step(l, sock_ready, why, sizeof why);
		if (rc == 0 && !was_ready && link_is_open(l))
			on_open(a);
		/* What arrived before a failure is still answered. */
		while (a->link == l && !a->closed && link_pop(l, &buf, &len))
			dispatch(a, buf, len);
		if (a->link == l && !a->closed &&
		    (rc || a->lost_pending || link_error(l))) {
			rc = link_error(l) ? link_error(l) : MSCE_ECLOSED;
			snprintf(why, sizeof why, "%s: %s",
				 a->ci->centers[a->center].label,
				 link_error(l) ? link_errmsg(l) : "send failed");
			if (a->ready)
				on_lost(a, rc, why);
			else {
				set_msg(a, "%s", why);
				connect_failed(a, rc);
			}
		}
	} else if (!a->closed && a->retry_at && link_now_ms() >= a->retry_at) {
		start_connect(a);
	}
	if (!a->closed)
		expire(a, link_now_ms());
	reap_watches(a);
	a->depth--;
	if (a->free_wanted && a->depth == 0) {
		do_free(a);
		return MSCE_ECLOSED;
	}
	update_io(a);
	return a->closed ? MSCE_ECLOSED : 0;
}

int msce_async_connected(const msce_async *a) { return a->ready; }
const char *msce_async_center(const msce_async *a)
{
	return a->ci->centers[a->center].label;
}
const char *msce_async_errmsg(const msce_async *a) { return a->msg; }

size_t msce_async_pending(const msce_async *a)
{
	size_t n = 0;

	for (struct areq *r = a->head; r != NULL; r = r->next)
		n += r->kind != K_WATCH_STATUS;
	return n;
}

int msce_async_set_purpose(msce_async *a, const char *purpose)
{
	if (purpose == NULL || purpose[0] == '\0') {
		a->purpose[0] = '\0';
		return 0;
	}
	if (!purpose_valid(purpose)) {
		set_msg(a, "purpose \"%.*s\" is not one of: " PURPOSE_LIST,
			PURPOSE_MAX, purpose);
		return MSCE_EINVAL;
	}
	snprintf(a->purpose, sizeof a->purpose, "%s", purpose);
	return 0;
}

void msce_async_on_state(msce_async *a, msce_state_fn fn, void *ctx)
{
	a->state_fn = fn;
	a->state_ctx = ctx;
}

/* ---- requests --------------------------------------------------------------- */

static uint64_t put_extra(const struct msce_put_opts *o)
{
	if (o == NULL || o->min_sites <= 1)
		return 0;
	return o->timeout_ms ? o->timeout_ms : MSCE_PUT_DEFAULT_TIMEOUT_MS;
}

int msce_async_put(msce_async *a, const char *collection, const char *key,
		   const struct msce_field *fields, size_t n,
		   const struct msce_put_opts *opts, msce_write_fn fn,
		   void *ctx)
{
	struct codec_req b;
	int rc = codec_put(&b, collection, key, fields, n, opts, 0, a->msg,
			   sizeof a->msg);

	struct areq *r;

	if (rc == 0 &&
	    (rc = enqueue(a, &b, K_WRITE, 0, put_extra(opts), &r)) == 0) {
		r->fn.write = fn;
		r->ctx = ctx;
		send_req(a, r);
	}
	codec_release(&b);
	return queued(a, rc);
}

int msce_async_delete(msce_async *a, const char *collection, const char *key,
		      msce_write_fn fn, void *ctx)
{
	struct codec_req b;
	int rc = codec_put(&b, collection, key, NULL, 0, NULL, 1, a->msg,
			   sizeof a->msg);

	struct areq *r;

	if (rc == 0 && (rc = enqueue(a, &b, K_WRITE, 0, 0, &r)) == 0) {
		r->fn.write = fn;
		r->ctx = ctx;
		send_req(a, r);
	}
	codec_release(&b);
	return queued(a, rc);
}

int msce_async_put_batch(msce_async *a, const struct msce_put *puts, size_t n,
			 const struct msce_put_opts *opts, msce_batch_fn fn,
			 void *ctx)
{
	struct codec_req b;
	struct areq *r;
	int rc = codec_batch(&b, puts, n, opts, a->msg, sizeof a->msg);

	if (rc == 0 && (rc = enqueue(a, &b, K_BATCH, 0, 0, &r)) == 0) {
		r->nbatch = n;
		r->fn.batch = fn;
		r->ctx = ctx;
		send_req(a, r);
	}
	codec_release(&b);
	return queued(a, rc);
}

const char *msce_async_batch_errmsg(const msce_async *a, size_t i)
{
	const Msce__ClientResponse *it;

	if (a == NULL || a->batch_answer == NULL ||
	    i >= a->batch_answer->batch->n_results)
		return "";
	it = a->batch_answer->batch->results[i];
	return it->code != 0 && it->error != NULL ? it->error : "";
}

int msce_async_get(msce_async *a, const char *collection, const char *key,
		   const char *const *fields, size_t nfields,
		   msce_record_fn fn, void *ctx)
{
	struct codec_req b;
	int rc = codec_get(&b, collection, key, fields, nfields, a->msg,
			   sizeof a->msg);

	struct areq *r;

	if (rc == 0 && (rc = enqueue(a, &b, K_RECORD, 1, 0, &r)) == 0) {
		r->fn.record = fn;
		r->ctx = ctx;
		send_req(a, r);
	}
	codec_release(&b);
	return queued(a, rc);
}

int msce_async_scan(msce_async *a, const char *collection,
		    const struct msce_scan_opts *opts, msce_page_fn fn,
		    void *ctx)
{
	struct codec_req b;
	int rc = codec_scan(&b, collection, opts, a->msg, sizeof a->msg);

	struct areq *r;

	if (rc == 0 && (rc = enqueue(a, &b, K_PAGE, 1, 0, &r)) == 0) {
		r->fn.page = fn;
		r->ctx = ctx;
		send_req(a, r);
	}
	codec_release(&b);
	return queued(a, rc);
}

int msce_async_status(msce_async *a, msce_status_fn fn, void *ctx)
{
	struct codec_req b;
	int rc;

	struct areq *r;

	codec_status(&b);
	if ((rc = enqueue(a, &b, K_STATUS, 1, 0, &r)) == 0) {
		r->fn.status = fn;
		r->ctx = ctx;
		send_req(a, r);
	}
	codec_release(&b);
	return queued(a, rc);
}

int msce_async_conflicts(msce_async *a, const char *collection,
			 unsigned limit, msce_conflicts_fn fn, void *ctx)
{
	struct codec_req b;
	int rc;

	struct areq *r;

	codec_conflicts(&b, collection, limit);
	if ((rc = enqueue(a, &b, K_CONFLICTS, 1, 0, &r)) == 0) {
		r->fn.conflicts = fn;
		r->ctx = ctx;
		send_req(a, r);
	}
	codec_release(&b);
	return queued(a, rc);
}

int msce_async_resolve(msce_async *a, const char *collection, const char *key,
		       const char *field, const void *value, size_t value_len,
		       msce_write_fn fn, void *ctx)
{
	struct codec_req b;
	int rc;

	struct areq *r;

	codec_resolve(&b, collection, key, field, value, value_len);
	if ((rc = enqueue(a, &b, K_WRITE, 0, 0, &r)) == 0) {
		r->fn.write = fn;
		r->ctx = ctx;
		send_req(a, r);
	}
	codec_release(&b);
	return queued(a, rc);
}

int msce_async_watch(msce_async *a, const char *collection,
		     enum msce_watch_from from,
		     const struct msce_cursor *cursor, msce_event_fn fn,
		     void *ctx, msce_watcher **out)
{
	struct msce_watcher *w;

	if (out)
		*out = NULL;
	if (a->closed)
		return MSCE_ECLOSED;
	if (collection != NULL && strlen(collection) > MSCE_MAX_COLLECTION)
		return MSCE_ETOOBIG;
	if (from == MSCE_WATCH_FROM_CURSOR &&
	    (cursor == NULL || cursor->n > MSCE_CURSOR_MAX))
		return MSCE_EINVAL;
	if (from != MSCE_WATCH_FROM_START && from != MSCE_WATCH_FROM_NOW &&
	    from != MSCE_WATCH_FROM_CURSOR)
		return MSCE_EINVAL;
	if ((w = calloc(1, sizeof *w)) == NULL)
		return MSCE_ENOMEM;
	w->a = a;
	w->all = collection == NULL;
	snprintf(w->coll, sizeof w->coll, "%s", collection ? collection : "");
	w->fn = fn;
	w->ctx = ctx;
	w->have_cursor = from != MSCE_WATCH_FROM_NOW;
	if (from == MSCE_WATCH_FROM_CURSOR) {
		w->cur.n = cursor->n;
		memcpy(w->cur.origin, cursor->origin,
		       cursor->n * sizeof cursor->origin[0]);
		memcpy(w->cur.seq, cursor->seq,
		       cursor->n * sizeof cursor->seq[0]);
	}
	w->next = a->watches;
	a->watches = w;
	subscribe(a, w);
	if (out)
		*out = w;
	return queued(a, 0);
}

void msce_watch_cancel(msce_watcher *w)
{
	if (w == NULL)
		return;
	end_watch(w, MSCE_ECLOSED, "watch cancelled");
	queued(w->a, 0); /* the step that tells it: at once */
}
