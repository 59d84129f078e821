/* SPDX-License-Identifier: Apache-2.0 */
/* Shared by the msce-bench subcommands. */
#ifndef MSCE_BENCH_H
#define MSCE_BENCH_H

#include <cjson/cJSON.h>
#include <stdint.h>
#include <sys/types.h>

#include "msce.h"

double bench_now(void); /* monotonic seconds */
/* Where benchmarks put their stores: $TMPDIR, else /tmp. */
const char *bench_tmp(void);
uint64_t bench_wall_ms(void);
/* Fills a registration-like field set of about value_size bytes for
 * record i into the caller's buffers; returns the number of fields. */
int bench_registration(uint64_t i, int value_size, char names[][32],
		       char values[][256], int max);
/* Prints a result: the figures as text, or the JSON object with --json.
 * Under `all` the object is also collected (obj stays the caller's). */
void bench_report(cJSON *obj, int json);
/* p in [0,1] of n sorted values. */
double bench_percentile(const double *sorted, int n, double p);
void bench_sort(double *v, int n);

/* ---- the machine's fsync, the yardstick of latencies -------------------
 * A probe is one 4 KiB write and fdatasync of a file in the nodes' dir (so
 * on their filesystem). Latency benchmarks run one probe beside each
 * sample, so that both see the same disk at the same time: a virtio disk
 * shared with other machines has its own tail (p99 many times p50). */
struct bench_fsync {
	int fd;
	unsigned n;
	char path[300];
	char block[4096];
};
int bench_fsync_open(struct bench_fsync *f, const char *dir);
double bench_fsync_probe(struct bench_fsync *f); /* ms, or -1 */
void bench_fsync_close(struct bench_fsync *f);
/* Adds the probes' p50 and p99 (sorting ms), and the sample's p50 and p99
 * in units of them, to r. */
void bench_fsync_report(cJSON *r, double *ms, int n, double p50, double p99);

/* ---- real clusters on loopback (bench_cluster.c) ----------------------
 * K msced processes in a temp dir, each with a unix socket, all peers of
 * each other. Every process is tracked by PID; bcluster_stop ends them
 * (SIGTERM, then SIGKILL after 5 s) and removes the dir. */
#define BENCH_MAXN 16

struct bcluster {
	int k;
	char dir[256];
	char conf[BENCH_MAXN][512];
	pid_t pid[BENCH_MAXN];
	uint32_t writer[BENCH_MAXN]; /* the origin each writes under */
};

/* Starts k nodes; extra_conf (may be NULL) is appended to every [node]
 * section, e.g. "log_retention = 20000\n". Waits until every node answers
 * and has all its links up. Returns 0 or -1 (message printed); on -1 the
 * caller still calls bcluster_stop. */
int bcluster_start(struct bcluster *c, int k, const char *extra_conf);
/* The same, with extra_first added to node 1's config only. */
int bcluster_start_first(struct bcluster *c, int k, const char *extra_conf,
			 const char *extra_first);
/* A loopback port for a listener (below the ephemeral range). */
int bench_free_port(void);
void bcluster_stop(struct bcluster *c);
/* Stops node i (0-based) gracefully; starts it again from its config. */
void bcluster_node_stop(struct bcluster *c, int i);
int bcluster_node_start(struct bcluster *c, int i);
/* Until node i answers, writes (has a writer id, kept in c->writer) and
 * (if links) has every peer link up, at most timeout_s. Returns 0 or -1. */
int bcluster_wait_ready(struct bcluster *c, int i, int links, double timeout_s);

/* Committed seq of origin at the node behind cl, or 0. */
uint64_t bench_held(msce_client *cl, uint32_t origin);
/* A status counter of the node behind cl, or 0. */
uint64_t bench_counter(msce_client *cl, const char *name);

/* Registration-sized records [from, to) written through libmsce in
 * batches of `batch`, on one connection to conf; failed set on any error
 * or refusal. For pthread_create. */
struct bench_writer {
	const char *conf;
	long from, to, batch;
	int value_size;
	int failed;
};
void *bench_write_range(void *arg);
/* Writes records with `threads` connections in parallel; returns the
 * seconds taken, or -1 if a write failed. */
double bench_write_parallel(const char *conf, long records, long batch,
			    int threads, int value_size);

int bench_store(int argc, char **argv);
int bench_replicate(int argc, char **argv);
int bench_lag(int argc, char **argv);
int bench_catchup(int argc, char **argv);
int bench_client(int argc, char **argv);
int bench_compare(int argc, char **argv);
int bench_handshake(int argc, char **argv);
int bench_watch(int argc, char **argv);

#endif
