/* SPDX-License-Identifier: Apache-2.0 */
/* Group-commit writer thread; see writer.h.
 *
 * Happy path: writer_submit appends to `queue` under the mutex and wakes
 * the thread; the thread swaps the queue out, commits, appends the jobs to
 * `finished`, and pokes the loop's async handle; on_async runs the done
 * callbacks in submission order.
 *
 * Failure modes: a failed commit is reported in each job's rc/err (the
 * store then refuses writes until restarted); nothing is acknowledged
 * without a commit. Stopping drains the queue first, so in-flight batches
 * are committed on SIGTERM. */
#include "writer.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bounds.h"

struct writer {
	uv_loop_t *loop;
	struct store *store;
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct writer_job *queue, *queue_tail;
	struct writer_job *finished, *finished_tail;
	int stopping, thread_done;
	size_t pending;
	uv_async_t async;
	void (*stop_cb)(void *);
	void *stop_arg;
	struct writer_stats stats; /* under mu */
	/* Scratch for combining queued writes into one transaction. */
	struct store_write *ws;
	struct store_written *outs;
	size_t cap;
};

const double writer_lat_bounds[WRITER_LAT_BUCKETS] = {
	0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.5, 1.0};

static double mono_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* rc: the commit's outcome, 0 or the error of a commit that failed. A
 * store refusing writes (EREADONLY, after a failed commit) made none. */
static void record_commit(struct writer *w, double secs, int rc,
			  uint64_t local, uint64_t applied)
{
	int b = 0;
	if (rc == MSCE_EREADONLY)
		return;
	while (b < WRITER_LAT_BUCKETS && secs > writer_lat_bounds[b])
		b++;
	pthread_mutex_lock(&w->mu);
	w->stats.commits++;
	w->stats.local_writes += local;
	w->stats.applied += applied;
	w->stats.lat[b]++;
	w->stats.lat_sum += secs;
	pthread_mutex_unlock(&w->mu);
}

void writer_stats(struct writer *w, struct writer_stats *out)
{
	pthread_mutex_lock(&w->mu);
	*out = w->stats;
	pthread_mutex_unlock(&w->mu);
}

static uint64_t wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* All queued local writes in one transaction. */
static void commit_writes(struct writer *w, struct writer_job *jobs)
{
	size_t total = 0, k = 0;
	int rc;
	struct err e;

	for (struct writer_job *j = jobs; j != NULL; j = j->next)
		if (j->kind == WRITER_WRITE)
			total += j->n;
	if (total == 0)
		return;
	if (total > w->cap) {
		struct store_write *ws = realloc(w->ws, total * sizeof *ws);
		struct store_written *os =
			ws ? realloc(w->outs, total * sizeof *os) : NULL;
		if (ws)
			w->ws = ws;
		if (os)
			w->outs = os;
		if (ws == NULL || os == NULL) {
			for (struct writer_job *j = jobs; j; j = j->next)
				if (j->kind == WRITER_WRITE)
					j->rc = err_set(&j->err, MSCE_ENOMEM,
							"group commit");
			return;
		}
		w->cap = total;
	}
	for (struct writer_job *j = jobs; j != NULL; j = j->next)
		if (j->kind == WRITER_WRITE) {
			memcpy(w->ws + k, j->w, j->n * sizeof *j->w);
			k += j->n;
		}
	err_clear(&e);
	double t0 = mono_s();
	rc = store_write(w->store, w->ws, total, wall_ms(), w->outs, &e);
	uint64_t ok = 0;
	for (size_t i = 0; rc == 0 && i < total; i++)
		ok += w->outs[i].err.code == 0;
	record_commit(w, mono_s() - t0, rc, ok, 0);
	k = 0;
	for (struct writer_job *j = jobs; j != NULL; j = j->next) {
		if (j->kind != WRITER_WRITE)
			continue;
		j->rc = rc;
		j->err = e;
		memcpy(j->out, w->outs + k, j->n * sizeof *j->out);
		k += j->n;
	}
}

static void *run(void *arg)
{
	struct writer *w = arg;

	pthread_mutex_lock(&w->mu);
	for (;;) {
		struct writer_job *jobs, *last;
		while (w->queue == NULL && !w->stopping)
			pthread_cond_wait(&w->cv, &w->mu);
		if (w->queue == NULL && w->stopping)
			break;
		jobs = w->queue;
		last = w->queue_tail;
		w->queue = w->queue_tail = NULL;
		pthread_mutex_unlock(&w->mu);

		commit_writes(w, jobs);
		for (struct writer_job *j = jobs; j != NULL; j = j->next) {
			if (j->kind == WRITER_APPLY) {
				double t0 = mono_s();
				err_clear(&j->err);
				j->rc = store_apply_signed(
					w->store, j->blobs, j->nblobs, j->segs,
					j->nsegs, wall_ms(), j->max_skew_ms,
					&j->res, &j->err);
				/* Refused changes commit what came before. */
				record_commit(w, mono_s() - t0,
					      j->rc == MSCE_ECLOCK ||
						      j->rc == MSCE_EGAP ||
						      j->rc == MSCE_EAUTH ||
						      j->rc == MSCE_EPROTO
						  ? 0
						  : j->rc,
					      0, j->res.applied);
			} else if (j->kind == WRITER_CALL) {
				err_clear(&j->err);
				j->rc = j->call(w->store, j->call_arg, &j->err);
			}
		}

		pthread_mutex_lock(&w->mu);
		if (w->finished_tail)
			w->finished_tail->next = jobs;
		else
			w->finished = jobs;
		w->finished_tail = last;
		uv_async_send(&w->async);
	}
	w->thread_done = 1;
	pthread_mutex_unlock(&w->mu);
	uv_async_send(&w->async);
	return NULL;
}

static void on_closed(uv_handle_t *h)
{
	struct writer *w = h->data;
	void (*cb)(void *) = w->stop_cb;
	void *arg = w->stop_arg;

	pthread_mutex_destroy(&w->mu);
	pthread_cond_destroy(&w->cv);
	free(w->ws);
	free(w->outs);
	free(w);
	if (cb)
		cb(arg);
}

static void on_async(uv_async_t *a)
{
	struct writer *w = a->data;
	struct writer_job *jobs;
	int done;

	pthread_mutex_lock(&w->mu);
	jobs = w->finished;
	w->finished = w->finished_tail = NULL;
	done = w->thread_done;
	pthread_mutex_unlock(&w->mu);
	while (jobs != NULL) {
		struct writer_job *next = jobs->next;
		w->pending--;
		jobs->next = NULL;
		jobs->done(jobs);
		jobs = next;
	}
	if (done && w->stop_cb != NULL && !uv_is_closing((uv_handle_t *)a)) {
		pthread_join(w->thread, NULL);
		uv_close((uv_handle_t *)a, on_closed);
	}
}

int writer_start(uv_loop_t *loop, struct store *s, struct writer **out,
		 struct err *e)
{
	struct writer *w = calloc(1, sizeof *w);
	int rc;

	*out = NULL;
	if (w == NULL)
		return err_set(e, MSCE_ENOMEM, "start writer");
	w->loop = loop;
	w->store = s;
	pthread_mutex_init(&w->mu, NULL);
	pthread_cond_init(&w->cv, NULL);
	if ((rc = uv_async_init(loop, &w->async, on_async))) {
		free(w);
		return err_set(e, MSCE_EIO, "start writer: %s", uv_strerror(rc));
	}
	w->async.data = w;
	if (pthread_create(&w->thread, NULL, run, w) != 0) {
		uv_close((uv_handle_t *)&w->async, NULL);
		return err_set(e, MSCE_EIO, "start writer thread");
	}
	*out = w;
	return 0;
}

void writer_submit(struct writer *w, struct writer_job *job)
{
	job->next = NULL;
	w->pending++;
	pthread_mutex_lock(&w->mu);
	if (w->queue_tail)
		w->queue_tail->next = job;
	else
		w->queue = job;
	w->queue_tail = job;
	pthread_cond_signal(&w->cv);
	pthread_mutex_unlock(&w->mu);
}

size_t writer_pending(const struct writer *w) { return w->pending; }

void writer_stop(struct writer *w, void (*cb)(void *arg), void *arg)
{
	w->stop_cb = cb;
	w->stop_arg = arg;
	pthread_mutex_lock(&w->mu);
	w->stopping = 1;
	pthread_cond_signal(&w->cv);
	pthread_mutex_unlock(&w->mu);
}
