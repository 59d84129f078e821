/* SPDX-License-Identifier: Apache-2.0 */
/* msce-bench watch: how fast a watch catches up from an old cursor.
 *
 * N registrations are written at node 1 of a 2-node cluster, then one
 * change in another collection. A desk that was away then resumes from
 * the cursor it had before the writes: with a filter on that other
 * collection (its one event comes after N it must pass over), and with
 * no filter (all N + 1 events, as fast as it reads them). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"

/* Seconds until count events of the watch on conf came, or -1. */
static double watch_time(const char *conf, const char *collection,
			 const struct msce_cursor *from, long count)
{
	msce_client *c;
	struct msce_event ev;
	double t0;
	long got = 0;

	if (msce_connect_config(conf, &c) != 0)
		return -1;
	msce_set_purpose(c, "service");
	t0 = bench_now();
	if (msce_watch(c, collection, from) != 0) {
		fprintf(stderr, "msce-bench watch: %s\n", msce_errmsg(c));
		msce_close(c);
		return -1;
	}
	while (got < count) {
		int rc = msce_watch_next(c, &ev, 120000, NULL);
		if (rc != 0) {
			fprintf(stderr, "msce-bench watch: after %ld events: %s\n",
				got, msce_errmsg(c));
			msce_close(c);
			return -1;
		}
		got++;
	}
	t0 = bench_now() - t0;
	msce_close(c);
	return t0;
}

int bench_watch(int argc, char **argv)
{
	long records = 100000;
	int json = 0;
	static struct option opts[] = {
	    {"records", 1, 0, 'n'}, {"json", 0, 0, 'j'}, {0, 0, 0, 0}};
	int o;
	while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (o) {
		case 'n':
			records = atol(optarg);
			break;
		case 'j':
			json = 1;
			break;
		default:
			return 2;
		}
	}
	if (records <= 0)
		return 2;
	struct bcluster cl;
	if (bcluster_start(&cl, 2, NULL) != 0) {
		bcluster_stop(&cl);
		return 1;
	}
	msce_client *c = NULL;
	msce_status *st = NULL;
	struct msce_cursor before;
	static const char note[] = "the one change a filtered desk wants";
	struct msce_field f = {"note", note, sizeof note - 1, 0, 0, 0};
	int failed = msce_connect_config(cl.conf[0], &c) != 0 ||
		     msce_status_get(c, &st) != 0;
	if (!failed) {
		msce_status_cursor(st, &before);
		msce_status_free(st);
		failed = bench_write_parallel(cl.conf[0], records, 200, 4, 300) <
				 0 ||
			 msce_put(c, "desk_notes", "one", &f, 1, NULL) != 0;
	}
	double filtered = -1, all = -1;
	if (!failed) {
		filtered = watch_time(cl.conf[0], "desk_notes", &before, 1);
		all = watch_time(cl.conf[0], NULL, &before, records + 1);
		failed = filtered < 0 || all < 0;
	}
	if (c != NULL)
		msce_close(c);
	bcluster_stop(&cl);
	if (failed) {
		fprintf(stderr, "msce-bench watch: failed\n");
		return 1;
	}
	cJSON *r = cJSON_CreateObject();
	cJSON_AddStringToObject(r, "bench", "watch");
	cJSON_AddNumberToObject(r, "records", (double)records);
	cJSON_AddNumberToObject(r, "filtered_first_event_seconds", filtered);
	cJSON_AddNumberToObject(r, "filtered_changes_passed_per_s",
				(double)records / filtered);
	cJSON_AddNumberToObject(r, "unfiltered_seconds", all);
	cJSON_AddNumberToObject(r, "unfiltered_events_per_s",
				(double)(records + 1) / all);
	bench_report(r, json);
	cJSON_Delete(r);
	return 0;
}
