/* SPDX-License-Identifier: Apache-2.0 */
/* msce-bench replicate / lag: real msced processes on loopback.
 *
 * replicate: K nodes, N registration-sized records written at node 1
 * through libmsce (batches, several connections in parallel), then the
 * time until every node holds all N durably (its committed vector).
 * lag: single writes at node 1 under light load; for each, the delay from
 * the write's durable acknowledgement to its durable arrival at every
 * other node (polling each node's committed vector).
 * Every process started is stopped by PID at the end. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"
#include "client_internal.h"
#include "keyfile.h"

#define MAXN BENCH_MAXN

static const char *msced_path(void)
{
	static char p[PATH_MAX + 32];
	const char *env = getenv("MSCED");
	char self[PATH_MAX];
	ssize_t n;

	if (env)
		return env;
	n = readlink("/proc/self/exe", self, sizeof self - 1);
	if (n > 0) {
		self[n] = 0;
		char *slash = strrchr(self, '/');
		if (slash) {
			*slash = 0;
			snprintf(p, sizeof p, "%s/../../server/msced", self);
			if (access(p, X_OK) == 0)
				return p;
		}
	}
	return "msced";
}

/* Ports below the kernel's range for outgoing connections (32768 and
 * up), so no client socket can be holding the one we are about to bind. */
int bench_free_port(void)
{
	static int next = 0;
	if (next == 0)
		next = 10000 + (int)(getpid() % 20000);
	return next++;
}

static void node_wait(struct bcluster *c, int i)
{
	int st, waited = 0;
	while (waitpid(c->pid[i], &st, WNOHANG) == 0 && waited < 100) {
		usleep(50 * 1000);
		waited++;
	}
	if (waited == 100) {
		kill(c->pid[i], SIGKILL);
		waitpid(c->pid[i], &st, 0);
	}
	c->pid[i] = 0;
}

void bcluster_node_stop(struct bcluster *c, int i)
{
	if (c->pid[i] <= 0)
		return;
	kill(c->pid[i], SIGTERM);
	node_wait(c, i);
}

void bcluster_stop(struct bcluster *c)
{
	for (int i = 0; i < c->k; i++)
		if (c->pid[i] > 0)
			kill(c->pid[i], SIGTERM);
	for (int i = 0; i < c->k; i++)
		if (c->pid[i] > 0)
			node_wait(c, i);
	if (c->dir[0] == 0)
		return;
	char cmd[300];
	if (getenv("MSCE_BENCH_KEEP")) {
		fprintf(stderr, "msce-bench: kept %s\n", c->dir);
		return;
	}
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", c->dir);
	if (system(cmd) != 0)
		fprintf(stderr, "warning: could not remove %s\n", c->dir);
}

int bcluster_node_start(struct bcluster *c, int i)
{
	pid_t pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		char log[600];
		snprintf(log, sizeof log, "%s/n%d/log", c->dir, i + 1);
		FILE *lf = freopen(log, "a", stderr);
		(void)lf;
		execl(msced_path(), "msced", "-c", c->conf[i], (char *)NULL);
		_exit(127);
	}
	c->pid[i] = pid;
	return 0;
}

static Msce__ClientResponse *status_call(msce_client *cl)
{
	Msce__ClientRequest req = MSCE__CLIENT_REQUEST__INIT;
	Msce__StatusRequest s = MSCE__STATUS_REQUEST__INIT;
	Msce__ClientResponse *r;
	req.op_case = MSCE__CLIENT_REQUEST__OP_STATUS;
	req.status = &s;
	if (client_call(cl, &req, &r) != 0)
		return NULL;
	if (r->code != 0 || r->status == NULL) {
		msce__client_response__free_unpacked(r, NULL);
		return NULL;
	}
	return r;
}

int bcluster_wait_ready(struct bcluster *c, int i, int links, double timeout_s)
{
	double end = bench_now() + timeout_s;
	while (bench_now() < end) {
		msce_client *cl;
		int ready = 0;
		if (msce_connect_config(c->conf[i], &cl) == 0) {
			Msce__ClientResponse *r = status_call(cl);
			if (r != NULL) {
				c->writer[i] = r->status->writer;
				ready = r->status->writer != 0;
				for (size_t p = 0;
				     links && p < r->status->n_peers; p++)
					ready &= r->status->peers[p]->connected;
				msce__client_response__free_unpacked(r, NULL);
			}
		}
		msce_close(cl);
		if (ready)
			return 0;
		if (waitpid(c->pid[i], NULL, WNOHANG) == c->pid[i]) {
			c->pid[i] = 0;
			break;
		}
		usleep(20 * 1000);
	}
	fprintf(stderr, "msce-bench: node %d did not come up (log in %s/n%d)\n",
		i + 1, c->dir, i + 1);
	return -1;
}

int bcluster_start(struct bcluster *c, int k, const char *extra_conf)
{
	return bcluster_start_first(c, k, extra_conf, NULL);
}

int bcluster_start_first(struct bcluster *c, int k, const char *extra_conf,
			 const char *extra_first)
{
	char pub[MAXN][64], spub[MAXN][64], path[600];
	int port[MAXN];
	struct err e;
	memset(c, 0, sizeof *c);
	c->k = k;
	/* Under $TMPDIR: the disk the figures are about. */
	if (snprintf(c->dir, sizeof c->dir, "%s/msce-bench-cluster-XXXXXX",
		     bench_tmp()) >= (int)sizeof c->dir ||
	    mkdtemp(c->dir) == NULL)
		return -1;
	for (int i = 0; i < k; i++) {
		snprintf(path, sizeof path, "%s/n%d", c->dir, i + 1);
		mkdir(path, 0750);
		snprintf(path, sizeof path, "%s/n%d/node", c->dir, i + 1);
		if (keyfile_generate(path, &e)) {
			fprintf(stderr, "msce-bench: %s\n", e.msg);
			return -1;
		}
		snprintf(path, sizeof path, "%s/n%d/node.pub", c->dir, i + 1);
		FILE *f = fopen(path, "r");
		if (f == NULL || fgets(pub[i], sizeof pub[i], f) == NULL)
			return -1;
		fclose(f);
		pub[i][strcspn(pub[i], "\n")] = 0;
		snprintf(path, sizeof path, "%s/n%d/node.sign.pub", c->dir, i + 1);
		f = fopen(path, "r");
		if (f == NULL || fgets(spub[i], sizeof spub[i], f) == NULL)
			return -1;
		fclose(f);
		spub[i][strcspn(spub[i], "\n")] = 0;
		port[i] = bench_free_port();
	}
	for (int i = 0; i < k; i++) {
		snprintf(c->conf[i], sizeof c->conf[i], "%s/n%d/node.conf",
			 c->dir, i + 1);
		FILE *f = fopen(c->conf[i], "w");
		if (f == NULL)
			return -1;
		fprintf(f,
			"[cluster]\nname = bench\n[node]\nid = %d\nname = n%d\n"
			"data_dir = %s/n%d/data\nkey = %s/n%d/node.key\n"
			"listen = 127.0.0.1:%d\nsocket = %s/n%d/node.sock\n"
			"log_level = warn\n%s",
			i + 1, i + 1, c->dir, i + 1, c->dir, i + 1, port[i],
			c->dir, i + 1, extra_conf ? extra_conf : "");
		if (i == 0 && extra_first != NULL)
			fputs(extra_first, f);
		for (int j = 0; j < k; j++)
			if (j != i)
				fprintf(f,
					"[peer n%d]\nid = %d\naddress = "
					"127.0.0.1:%d\npublic_key = %s\n"
					"sign_key = %s\n",
					j + 1, j + 1, port[j], pub[j], spub[j]);
		fclose(f);
	}
	for (int i = 0; i < k; i++)
		if (bcluster_node_start(c, i) != 0)
			return -1;
	for (int i = 0; i < k; i++)
		if (bcluster_wait_ready(c, i, 1, 20) != 0)
			return -1;
	return 0;
}

uint64_t bench_held(msce_client *cl, uint32_t origin)
{
	Msce__ClientResponse *r = status_call(cl);
	uint64_t seq = 0;
	if (r == NULL)
		return 0;
	for (size_t i = 0; i < r->status->n_vv; i++)
		if (r->status->vv[i]->origin == origin)
			seq = r->status->vv[i]->seq;
	msce__client_response__free_unpacked(r, NULL);
	return seq;
}

uint64_t bench_counter(msce_client *cl, const char *name)
{
	Msce__ClientResponse *r = status_call(cl);
	uint64_t v = 0;
	if (r == NULL)
		return 0;
	for (size_t i = 0; i < r->status->n_counters; i++)
		if (strcmp(r->status->counters[i]->name, name) == 0)
			v = r->status->counters[i]->value;
	msce__client_response__free_unpacked(r, NULL);
	return v;
}

void *bench_write_range(void *p)
{
	struct bench_writer *a = p;
	msce_client *cl;
	static __thread char names[16][32], values[256][16][256];
	static __thread char keys[256][64];
	struct msce_field f[256][16];
	struct msce_put puts[256];
	int codes[256];

	if (msce_connect_config(a->conf, &cl) != 0) {
		fprintf(stderr, "msce-bench: %s\n", msce_errmsg(cl));
		a->failed = 1;
		msce_close(cl);
		return NULL;
	}
	for (long i = a->from; i < a->to; i += a->batch) {
		long n = i + a->batch > a->to ? a->to - i : a->batch;
		for (long j = 0; j < n; j++) {
			int nf =
			    bench_registration((uint64_t)(i + j), a->value_size,
					       names, values[j], 16);
			snprintf(keys[j], 64, "%.3s:%.40s", values[j][1],
				 values[j][3]);
			for (int k = 0; k < nf; k++)
				f[j][k] = (struct msce_field){
				    .name = names[k],
				    .value = values[j][k],
				    .value_len = strlen(values[j][k])};
			puts[j] = (struct msce_put){"registration", keys[j],
						    f[j], (size_t)nf, 0};
		}
		if (msce_put_batch(cl, puts, (size_t)n, NULL, codes) != 0) {
			fprintf(stderr, "msce-bench: %s\n", msce_errmsg(cl));
			a->failed = 1;
			break;
		}
		for (long j = 0; j < n; j++)
			if (codes[j])
				a->failed = 1;
	}
	msce_close(cl);
	return NULL;
}

double bench_write_parallel(const char *conf, long records, long batch,
			    int threads, int value_size)
{
	pthread_t th[16];
	struct bench_writer wa[16];
	int failed = 0;
	double t0 = bench_now();

	for (int t = 0; t < threads; t++) {
		wa[t] = (struct bench_writer){conf,
					      records * t / threads,
					      records * (t + 1) / threads,
					      batch,
					      value_size,
					      0};
		pthread_create(&th[t], NULL, bench_write_range, &wa[t]);
	}
	for (int t = 0; t < threads; t++) {
		pthread_join(th[t], NULL);
		failed |= wa[t].failed;
	}
	return failed ? -1 : bench_now() - t0;
}

/* A "Name:   N kB" line of /proc/pid/status, in kB; -1 if absent. */
static long proc_status_kb(pid_t pid, const char *name)
{
	char path[64], line[256];
	size_t len = strlen(name);
	long kb = -1;
	FILE *f;

	snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
	if ((f = fopen(path, "r")) == NULL)
		return -1;
	while (fgets(line, sizeof line, f) != NULL)
		if (strncmp(line, name, len) == 0 && line[len] == ':') {
			kb = strtol(line + len + 1, NULL, 10);
			break;
		}
	fclose(f);
	return kb;
}

int bench_replicate(int argc, char **argv)
{
	int k = 2, json = 0, value_size = 300, threads = 4;
	long records = 100000, batch = 200;
	static struct option opts[] = {
	    {"nodes", 1, 0, 'k'}, {"records", 1, 0, 'n'},
	    {"batch", 1, 0, 'b'}, {"clients", 1, 0, 't'},
	    {"json", 0, 0, 'j'},  {0, 0, 0, 0}};
	int c;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'k':
			k = atoi(optarg);
			break;
		case 'n':
			records = atol(optarg);
			break;
		case 'b':
			batch = atol(optarg);
			break;
		case 't':
			threads = atoi(optarg);
			break;
		case 'j':
			json = 1;
			break;
		default:
			return 2;
		}
	}
	if (k < 2 || k > MAXN || records <= 0 || batch <= 0 || batch > 256 ||
	    threads < 1 || threads > 16) {
		fprintf(stderr,
			"msce-bench replicate: --nodes 2..%d, "
			"--batch 1..256, --clients 1..16\n",
			MAXN);
		return 2;
	}
	struct bcluster cl;
	if (bcluster_start(&cl, k, NULL) != 0) {
		bcluster_stop(&cl);
		return 1;
	}
	msce_client *watch[MAXN];
	for (int i = 0; i < k; i++)
		msce_connect_config(cl.conf[i], &watch[i]);

	double t0 = bench_now(), t_all = 0, t_node2 = 0;
	double t_written = bench_write_parallel(cl.conf[0], records, batch,
						threads, value_size);
	int failed = t_written < 0;
	/* Until every node's committed vector holds all of node 1's. */
	for (int tries = 0; !failed && tries < 60000; tries++) {
		int all = 1;
		for (int i = 1; i < k; i++) {
			uint64_t h = bench_held(watch[i], cl.writer[0]);
			if (i == 1 && t_node2 == 0 && h >= (uint64_t)records)
				t_node2 = bench_now() - t0;
			all &= h >= (uint64_t)records;
		}
		if (all) {
			t_all = bench_now() - t0;
			break;
		}
		usleep(5000);
	}
	/* Anonymous memory (heap, stacks; not the store's mapped file) of
	 * each node once every node holds everything. */
	long anon_max = -1, anon_first = -1;
	for (int i = 0; i < k; i++) {
		long kb = proc_status_kb(cl.pid[i], "RssAnon");
		if (i == 0)
			anon_first = kb;
		if (kb > anon_max)
			anon_max = kb;
	}
	for (int i = 0; i < k; i++)
		msce_close(watch[i]);
	bcluster_stop(&cl);
	if (failed || t_all == 0) {
		fprintf(stderr, "msce-bench replicate: %s\n",
			failed ? "writes failed" : "nodes did not catch up");
		return 1;
	}
	cJSON *r = cJSON_CreateObject();
	cJSON_AddStringToObject(r, "bench", "replicate");
	cJSON_AddNumberToObject(r, "nodes", k);
	cJSON_AddNumberToObject(r, "records", (double)records);
	cJSON_AddNumberToObject(r, "clients", threads);
	cJSON_AddNumberToObject(r, "batch", (double)batch);
	cJSON_AddNumberToObject(r, "write_seconds", t_written);
	cJSON_AddNumberToObject(r, "write_records_per_s",
				(double)records / t_written);
	cJSON_AddNumberToObject(r, "node2_all_durable_seconds", t_node2);
	cJSON_AddNumberToObject(r, "all_nodes_durable_seconds", t_all);
	cJSON_AddNumberToObject(r, "end_to_end_records_per_s",
				(double)records / t_all);
	cJSON_AddNumberToObject(r, "node1_anon_kb", (double)anon_first);
	cJSON_AddNumberToObject(r, "node_anon_kb_max", (double)anon_max);
	bench_report(r, json);
	cJSON_Delete(r);
	return 0;
}

int bench_lag(int argc, char **argv)
{
	int k = 3, json = 0, samples = 200;
	static struct option opts[] = {{"nodes", 1, 0, 'k'},
				       {"samples", 1, 0, 's'},
				       {"json", 0, 0, 'j'},
				       {0, 0, 0, 0}};
	int c;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'k':
			k = atoi(optarg);
			break;
		case 's':
			samples = atoi(optarg);
			break;
		case 'j':
			json = 1;
			break;
		default:
			return 2;
		}
	}
	if (k < 2 || k > MAXN || samples < 1 || samples > 100000) {
		fprintf(stderr, "msce-bench lag: --nodes 2..%d\n", MAXN);
		return 2;
	}
	struct bcluster cl;
	if (bcluster_start(&cl, k, NULL) != 0) {
		bcluster_stop(&cl);
		return 1;
	}
	msce_client *cli[MAXN];
	for (int i = 0; i < k; i++)
		msce_connect_config(cl.conf[i], &cli[i]);
	double *lag = calloc((size_t)samples, sizeof *lag);
	double *fs = calloc((size_t)samples, sizeof *fs);
	struct bench_fsync probe;
	int got = 0, nfs = 0;
	if (lag == NULL || fs == NULL || bench_fsync_open(&probe, cl.dir)) {
		free(lag);
		free(fs);
		bcluster_stop(&cl);
		return 1;
	}
	for (int s = 0; s < samples; s++) {
		char key[32], val[32];
		struct msce_write_result res;
		snprintf(key, sizeof key, "lag-%d", s);
		snprintf(val, sizeof val, "%d", s);
		struct msce_field f = {
		    .name = "v", .value = val, .value_len = strlen(val)};
		if (msce_put(cli[0], "bench", key, &f, 1, &res) != 0)
			break;
		double t0 = bench_now(), worst = 0;
		for (int i = 1; i < k; i++) {
			/* Poll until the node's committed vector has it. */
			for (long tries = 0; tries < 100000; tries++) {
				if (bench_held(cli[i], cl.writer[0]) >= res.seq)
					break;
			}
			double d = bench_now() - t0;
			if (d > worst)
				worst = d;
			if (getenv("MSCE_BENCH_VERBOSE") && d > 0.02)
				fprintf(stderr,
					"sample %d seq %llu node %d: %.1f ms\n",
					s, (unsigned long long)res.seq, i + 1,
					d * 1000);
		}
		lag[got++] = worst * 1000.0;
		usleep(10 * 1000); /* light load */
		double pm = bench_fsync_probe(&probe);
		if (pm >= 0)
			fs[nfs++] = pm;
		usleep(10 * 1000);
	}
	bench_fsync_close(&probe);
	for (int i = 0; i < k; i++)
		msce_close(cli[i]);
	bcluster_stop(&cl);
	if (got == 0 || nfs == 0) {
		free(lag);
		free(fs);
		return 1;
	}
	bench_sort(lag, got);
	double p50 = bench_percentile(lag, got, 0.50);
	double p99 = bench_percentile(lag, got, 0.99);
	cJSON *r = cJSON_CreateObject();
	cJSON_AddStringToObject(r, "bench", "lag");
	cJSON_AddNumberToObject(r, "nodes", k);
	cJSON_AddNumberToObject(r, "samples", got);
	cJSON_AddNumberToObject(r, "p50_ms", p50);
	cJSON_AddNumberToObject(r, "p99_ms", p99);
	cJSON_AddNumberToObject(r, "max_ms", lag[got - 1]);
	bench_fsync_report(r, fs, nfs, p50, p99);
	bench_report(r, json);
	cJSON_Delete(r);
	free(lag);
	free(fs);
	return 0;
}
