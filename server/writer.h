/* SPDX-License-Identifier: Apache-2.0 */
/* The group-commit writer: a thread that owns the store's write path.
 *
 * The event loop submits jobs (local writes from clients, batches of
 * changes from peers) and keeps serving reads. The writer takes everything
 * queued, commits all queued local writes in one LMDB transaction and each
 * peer batch in its own, and hands the finished jobs back to the loop
 * through a uv_async. A job's done callback runs on the loop thread, after
 * its commit is durable: only then may anything be acknowledged. */
#ifndef MSCE_WRITER_H
#define MSCE_WRITER_H

#include <uv.h>

#include "store.h"

enum writer_kind { WRITER_WRITE, WRITER_APPLY, WRITER_CALL };

struct writer_job {
	enum writer_kind kind;
	/* WRITER_WRITE: n writes in, n results out (owned by the caller,
	 * valid until done runs). */
	const struct store_write *w;
	size_t n;
	struct store_written *out;
	/* WRITER_APPLY: encoded changes in signed segments (owned by the
	 * caller). */
	const struct store_blob *blobs;
	size_t nblobs;
	const struct seg *segs;
	size_t nsegs;
	uint64_t max_skew_ms;
	struct store_apply_result res;
	/* WRITER_CALL: any other write, e.g. log truncation, run on the
	 * writer thread so that its commit never blocks the loop. */
	int (*call)(struct store *s, void *arg, struct err *e);
	void *call_arg;
	/* Results: rc as from store_write / store_apply, err says why. */
	int rc;
	struct err err;
	/* Runs on the loop thread when the job is committed (or failed). */
	void (*done)(struct writer_job *job);
	void *data;
	struct writer_job *next; /* internal */
};

struct writer;

int writer_start(uv_loop_t *loop, struct store *s, struct writer **out,
		 struct err *e);
/* Queues a job (loop thread only). */
void writer_submit(struct writer *w, struct writer_job *job);
/* Commit latency histogram and counts, for metrics. */
#define WRITER_LAT_BUCKETS 10
extern const double writer_lat_bounds[WRITER_LAT_BUCKETS]; /* seconds */
struct writer_stats {
	uint64_t commits;	/* transactions committed */
	uint64_t local_writes;	/* client writes committed */
	uint64_t applied;	/* changes from peers applied (not dups) */
	uint64_t lat[WRITER_LAT_BUCKETS + 1]; /* per bucket, +Inf last */
	double lat_sum;
};
void writer_stats(struct writer *w, struct writer_stats *out);

/* Jobs queued and not yet done. */
size_t writer_pending(const struct writer *w);
/* Commits what is queued, runs the remaining done callbacks, stops the
 * thread and frees the writer once the async handle has closed. Then
 * calls cb(arg) on the loop thread. */
void writer_stop(struct writer *w, void (*cb)(void *arg), void *arg);

#endif
