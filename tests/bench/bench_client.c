/* SPDX-License-Identifier: Apache-2.0 */
/* msce-bench client: what a front end gets from libmsce, over TCP with
 * Noise (a front desk's path; --unix for the node's local socket) to node
 * 1 of a K-node cluster (writes replicate as in service).
 *
 * pipelined: C connections, each keeping W single puts in flight
 *   (msce_put_send / msce_put_recv); acknowledged durable writes per second
 *   and the latency of a put under that load (send to its result).
 * batch: C connections, msce_put_batch of B records each.
 * single: one connection, one put at a time: the latency a desk sees.
 * A put is acknowledged only once its commit is durable (fsync on). */
#include <getopt.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"
#include "keyfile.h"

/* How the clients reach node 1: TCP + Noise with a rw client key, or
 * (tcp_addr empty) the unix socket named in the config. */
static char tcp_addr[64], client_key[600], node_pub[64];

static int bench_connect(const char *conf, msce_client **out)
{
	if (tcp_addr[0] == '\0')
		return msce_connect_config(conf, out);
	return msce_connect_tcp(tcp_addr, client_key, node_pub, "bench", out);
}

#define MAXW 1024

struct piper {
	const char *conf;
	long from, to;
	int window, value_size;
	double *lat; /* per put, ms; to - from of them */
	int failed;
};

static int fields_of(uint64_t i, int value_size, char names[][32],
		     char values[][256], struct msce_field *f, char *key)
{
	int nf = bench_registration(i, value_size, names, values, 16);
	snprintf(key, 64, "%.3s:%.40s", values[1], values[3]);
	for (int k = 0; k < nf; k++)
		f[k] = (struct msce_field){.name = names[k],
					   .value = values[k],
					   .value_len = strlen(values[k])};
	return nf;
}

static void *pipeline(void *arg)
{
	struct piper *a = arg;
	msce_client *cl;
	char names[16][32], values[16][256], key[64];
	struct msce_field f[16];
	double sent[MAXW];
	long next = a->from, done = 0, total = a->to - a->from;

	if (bench_connect(a->conf, &cl) != 0) {
		fprintf(stderr, "msce-bench: %s\n", msce_errmsg(cl));
		a->failed = 1;
		msce_close(cl);
		return NULL;
	}
	while (done < total) {
		/* Fill the window; results come back in the order sent. */
		while (next < a->to && (long)msce_pending(cl) < a->window) {
			int nf = fields_of((uint64_t)next, a->value_size, names,
					   values, f, key);
			if (msce_put_send(cl, "registration", key, f,
					  (size_t)nf, NULL) != 0)
				goto fail;
			sent[(next - a->from) % MAXW] = bench_now();
			next++;
		}
		if (msce_put_recv(cl, NULL, NULL) != 0)
			goto fail;
		a->lat[done] = (bench_now() - sent[done % MAXW]) * 1000.0;
		done++;
	}
	msce_close(cl);
	return NULL;
fail:
	fprintf(stderr, "msce-bench: pipelined put: %s\n", msce_errmsg(cl));
	a->failed = 1;
	msce_close(cl);
	return NULL;
}

int bench_client(int argc, char **argv)
{
	int k = 2, json = 0, conns = 4, window = 64, value_size = 300;
	int samples = 2000;
	long records = 100000, batch = 100;
	static struct option opts[] = {
	    {"nodes", 1, 0, 'k'},	{"records", 1, 0, 'n'},
	    {"connections", 1, 0, 'c'}, {"window", 1, 0, 'w'},
	    {"batch", 1, 0, 'b'},	{"samples", 1, 0, 's'},
	    {"json", 0, 0, 'j'},	{"unix", 0, 0, 'u'},
	    {0, 0, 0, 0}};
	int use_unix = 0;
	int c;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'k':
			k = atoi(optarg);
			break;
		case 'n':
			records = atol(optarg);
			break;
		case 'c':
			conns = atoi(optarg);
			break;
		case 'w':
			window = atoi(optarg);
			break;
		case 'b':
			batch = atol(optarg);
			break;
		case 's':
			samples = atoi(optarg);
			break;
		case 'j':
			json = 1;
			break;
		case 'u':
			use_unix = 1;
			break;
		default:
			return 2;
		}
	}
	if (k < 1 || k > BENCH_MAXN || records < conns || conns < 1 ||
	    conns > 16 || window < 1 || window > MAXW || batch < 1 ||
	    batch > 256 || samples < 1 || samples > 1000000) {
		fprintf(stderr,
			"msce-bench client: --nodes 1..%d, "
			"--connections 1..16, --window 1..%d, "
			"--batch 1..256\n",
			BENCH_MAXN, MAXW);
		return 2;
	}
	struct bcluster cl;
	char extra[512] = "";
	char keydir[] = "/tmp/msce-bench-key-XXXXXX";
	if (!use_unix) {
		/* A rw client key for node 1's TCP listener. */
		struct err e;
		char pub[64] = "";
		FILE *f;
		if (mkdtemp(keydir) == NULL)
			return 1;
		snprintf(client_key, sizeof client_key, "%s/desk", keydir);
		if (keyfile_generate(client_key, &e) != 0) {
			fprintf(stderr, "msce-bench: %s\n", e.msg);
			return 1;
		}
		snprintf(client_key, sizeof client_key, "%s/desk.pub", keydir);
		f = fopen(client_key, "r");
		if (f == NULL || fgets(pub, sizeof pub, f) == NULL)
			return 1;
		fclose(f);
		pub[strcspn(pub, "\n")] = 0;
		snprintf(client_key, sizeof client_key, "%s/desk.key", keydir);
		int port = bench_free_port() + 100; /* after the peers' ports */
		snprintf(tcp_addr, sizeof tcp_addr, "127.0.0.1:%d", port);
		snprintf(extra, sizeof extra,
			 "client_listen = %s\n[client desk]\npublic_key = %s\n"
			 "role = rw\n",
			 tcp_addr, pub);
	}
	if (bcluster_start_first(&cl, k, NULL, extra[0] ? extra : NULL) != 0) {
		bcluster_stop(&cl);
		return 1;
	}
	if (!use_unix) {
		char path[600];
		FILE *f;
		snprintf(path, sizeof path, "%s/n1/node.pub", cl.dir);
		f = fopen(path, "r");
		if (f == NULL || fgets(node_pub, sizeof node_pub, f) == NULL) {
			bcluster_stop(&cl);
			return 1;
		}
		fclose(f);
		node_pub[strcspn(node_pub, "\n")] = 0;
	}
	int rc = 1;
	double *lat = calloc((size_t)records, sizeof *lat);
	double *single = calloc((size_t)samples, sizeof *single);
	double *fs = calloc((size_t)samples, sizeof *fs);
	struct bench_fsync probe = {.fd = -1};
	int nfs = 0;
	msce_client *one = NULL;
	pthread_t th[16];
	struct piper pa[16];
	int failed = 0;

	/* pipelined single puts */
	double t0 = bench_now();
	for (int t = 0; t < conns; t++) {
		long from = records * t / conns, to = records * (t + 1) / conns;
		pa[t] = (struct piper){cl.conf[0], from,       to, window,
				       value_size, lat + from, 0};
		pthread_create(&th[t], NULL, pipeline, &pa[t]);
	}
	for (int t = 0; t < conns; t++) {
		pthread_join(th[t], NULL);
		failed |= pa[t].failed;
	}
	double t_pipe = bench_now() - t0;
	if (failed)
		goto out;
	bench_sort(lat, (int)records);

	/* batches, on fresh keys */
	double t_batch =
	    bench_write_parallel(cl.conf[0], records, batch, conns, value_size);
	(void)t_batch;
	if (t_batch < 0)
		goto out;

	/* one put at a time, each followed by a probe of the disk */
	if (single == NULL || fs == NULL || bench_fsync_open(&probe, cl.dir))
		goto out;
	if (bench_connect(cl.conf[0], &one) != 0) {
		fprintf(stderr, "msce-bench: %s\n", msce_errmsg(one));
		goto out;
	}
	for (int s = 0; s < samples; s++) {
		char names[16][32], values[16][256], key[64];
		struct msce_field f[16];
		int nf = fields_of((uint64_t)(2 * records + s), value_size,
				   names, values, f, key);
		double s0 = bench_now();
		if (msce_put(one, "registration", key, f, (size_t)nf, NULL) !=
		    0) {
			fprintf(stderr, "msce-bench: put: %s\n",
				msce_errmsg(one));
			goto out;
		}
		single[s] = (bench_now() - s0) * 1000.0;
		double pm = bench_fsync_probe(&probe);
		if (pm >= 0)
			fs[nfs++] = pm;
	}
	bench_fsync_close(&probe);
	bench_sort(single, samples);

	cJSON *r = cJSON_CreateObject();
	cJSON_AddStringToObject(r, "bench", "client");
	cJSON_AddNumberToObject(r, "nodes", k);
	cJSON_AddStringToObject(r, "transport", use_unix ? "unix" : "tcp+noise");
	cJSON_AddNumberToObject(r, "records", (double)records);
	cJSON_AddNumberToObject(r, "connections", conns);
	cJSON_AddNumberToObject(r, "window", window);
	cJSON_AddNumberToObject(r, "pipelined_writes_per_s",
				(double)records / t_pipe);
	cJSON_AddNumberToObject(r, "pipelined_put_p50_ms",
				bench_percentile(lat, (int)records, 0.50));
	cJSON_AddNumberToObject(r, "pipelined_put_p99_ms",
				bench_percentile(lat, (int)records, 0.99));
	cJSON_AddNumberToObject(r, "batch", (double)batch);
	cJSON_AddNumberToObject(r, "batch_writes_per_s",
				(double)records / t_batch);
	cJSON_AddNumberToObject(r, "single_put_samples", samples);
	cJSON_AddNumberToObject(r, "single_put_p50_ms",
				bench_percentile(single, samples, 0.50));
	cJSON_AddNumberToObject(r, "single_put_p99_ms",
				bench_percentile(single, samples, 0.99));
	cJSON_AddNumberToObject(r, "single_put_max_ms", single[samples - 1]);
	bench_fsync_report(r, fs, nfs, bench_percentile(single, samples, 0.50),
			   bench_percentile(single, samples, 0.99));
	bench_report(r, json);
	cJSON_Delete(r);
	rc = 0;
out:
	msce_close(one);
	bench_fsync_close(&probe);
	bcluster_stop(&cl);
	if (!use_unix) {
		char cmd[128];
		snprintf(cmd, sizeof cmd, "rm -rf '%s'", keydir);
		if (system(cmd) != 0)
			fprintf(stderr, "warning: could not remove %s\n", keydir);
	}
	free(lat);
	free(single);
	free(fs);
	return rc;
}
