/* SPDX-License-Identifier: Apache-2.0 */
/* msce-bench catchup: how long a center that was down takes to catch up.
 *
 * K nodes; the last one is stopped, N registration-sized records are
 * written at node 1 (batches, four connections), then the stopped node is
 * started again: the figure is the time from its start until its committed
 * vector holds all N. With --retention R < N the writers' logs are cut to R
 * changes before the restart, so the node must take a snapshot first (what
 * happens after a long outage); otherwise it streams from the log. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "bench.h"

int bench_catchup(int argc, char **argv)
{
	int k = 2, json = 0, threads = 4, value_size = 300;
	long records = 200000, batch = 200, retention = 0;
	static struct option opts[] = {{"nodes", 1, 0, 'k'},
				       {"records", 1, 0, 'n'},
				       {"retention", 1, 0, 'r'},
				       {"json", 0, 0, 'j'},
				       {0, 0, 0, 0}};
	int c;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'k':
			k = atoi(optarg);
			break;
		case 'n':
			records = atol(optarg);
			break;
		case 'r':
			retention = atol(optarg);
			break;
		case 'j':
			json = 1;
			break;
		default:
			return 2;
		}
	}
	if (k < 2 || k > BENCH_MAXN || records <= 0 || retention < 0) {
		fprintf(stderr,
			"msce-bench catchup: --nodes 2..%d, --records "
			"and --retention positive\n",
			BENCH_MAXN);
		return 2;
	}
	char extra[64] = "";
	if (retention > 0)
		snprintf(extra, sizeof extra, "log_retention = %ld\n",
			 retention);
	struct bcluster cl;
	if (bcluster_start(&cl, k, extra) != 0) {
		bcluster_stop(&cl);
		return 1;
	}
	int last = k - 1, rc = 1;
	msce_client *w = NULL, *l = NULL;
	double t_write, t_ready = 0, t_all = 0;
	uint64_t snapshots = 0, truncated = 0;

	bcluster_node_stop(&cl, last);
	t_write = bench_write_parallel(cl.conf[0], records, batch, threads,
				       value_size);
	if (t_write < 0) {
		fprintf(stderr, "msce-bench catchup: writes failed\n");
		goto out;
	}
	msce_connect_config(cl.conf[0], &w);
	/* Truncation runs about once a second: wait for it, or the node
	 * would stream from the log after all. */
	for (double end = bench_now() + 30;
	     retention > 0 && retention < records;) {
		truncated = bench_counter(w, "log_truncated");
		if (truncated > 0)
			break;
		if (bench_now() > end) {
			fprintf(stderr, "msce-bench catchup: the log was not "
					"truncated\n");
			goto out;
		}
		usleep(100 * 1000);
	}

	double t0 = bench_now();
	if (bcluster_node_start(&cl, last) != 0 ||
	    bcluster_wait_ready(&cl, last, 0, 30) != 0)
		goto out;
	t_ready = bench_now() - t0;
	msce_connect_config(cl.conf[last], &l);
	for (double end = t0 + 600; bench_now() < end; usleep(10 * 1000)) {
		if (bench_held(l, cl.writer[0]) >= (uint64_t)records) {
			t_all = bench_now() - t0;
			break;
		}
	}
	if (t_all == 0) {
		fprintf(stderr,
			"msce-bench catchup: node %d did not catch up "
			"in 600 s\n",
			k);
		goto out;
	}
	snapshots = bench_counter(l, "snapshots_received");
	cJSON *r = cJSON_CreateObject();
	cJSON_AddStringToObject(r, "bench", "catchup");
	cJSON_AddNumberToObject(r, "nodes", k);
	cJSON_AddNumberToObject(r, "records", (double)records);
	cJSON_AddNumberToObject(r, "log_retention",
				retention ? (double)retention : 1000000);
	cJSON_AddStringToObject(r, "path", snapshots ? "snapshot" : "log");
	cJSON_AddNumberToObject(r, "write_seconds", t_write);
	cJSON_AddNumberToObject(r, "restart_to_ready_seconds", t_ready);
	cJSON_AddNumberToObject(r, "catchup_seconds", t_all);
	cJSON_AddNumberToObject(r, "catchup_records_per_s",
				(double)records / t_all);
	bench_report(r, json);
	cJSON_Delete(r);
	rc = 0;
out:
	msce_close(w);
	msce_close(l);
	bcluster_stop(&cl);
	return rc;
}
