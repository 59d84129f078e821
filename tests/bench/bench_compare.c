/* SPDX-License-Identifier: Apache-2.0 */
/* msce-bench compare: msce against Redis 7 on the same machine, in the same
 * run, with ../shared/peers (the team's peer benchmark; MSCE_PEERS names
 * another place). Rounds alternate which goes first (ABBA), so a machine
 * that slows down during the run does not favour one side; the medians
 * and their ratios are what to quote.
 *
 * replication: 2 nodes, N registration-sized records written at the first,
 *   until the second holds them all durably; Redis: primary -> replica,
 *   AOF appendfsync always on both, until the replica has the last key.
 *   msce is written to at two depths: 4 clients x batches of 200 (800
 *   puts in flight) and 16 x 256 (4,096).
 * client: pipelined single puts over TCP + Noise to a 2-node cluster,
 *   durable before each ack; Redis: redis-cli --pipe into the primary.
 *   redis-cli --pipe writes as long as its socket takes it: about 8,400
 *   SETs wait in the socket queues while it runs (ss, docs/BENCHMARKS.md).
 *   msce runs at two depths: 4 connections x 64 puts (a desk's), and
 *   4 x 1024 (4,096 in flight, still under Redis's depth).
 * memory: the most anonymous memory (RssAnon) a node held once all held
 *   everything, over the rounds, at each replication depth; beside it the
 *   peak resident size (VmHWM, file pages included) of either Redis
 *   server, as the peer benchmark reads it. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bench.h"

#define MAX_ROUNDS 9

/* The peer benchmark's directory, or NULL. */
static const char *peers_dir(void)
{
	static char p[4096];
	const char *env = getenv("MSCE_PEERS");
	struct stat st;
	char self[2048];
	ssize_t n;

	if (env != NULL)
		return stat(env, &st) == 0 ? env : NULL;
	if (stat("../shared/peers/run.sh", &st) == 0)
		return "../shared/peers";
	/* The binary is build/tests/bench/msce-bench in a clone beside
	 * shared/. */
	n = readlink("/proc/self/exe", self, sizeof self - 1);
	if (n > 0) {
		char run[4200];
		self[n] = 0;
		snprintf(p, sizeof p, "%s/../../../../shared/peers", self);
		snprintf(run, sizeof run, "%s/run.sh", p);
		if (stat(run, &st) == 0)
			return p;
	}
	return NULL;
}

/* Runs cmd and returns its stdout (malloc'd), or NULL if it failed. */
static char *run_capture(const char *cmd)
{
	FILE *f = popen(cmd, "r");
	size_t len = 0, cap = 4096;
	char *out = malloc(cap);

	if (f == NULL || out == NULL) {
		free(out);
		if (f)
			pclose(f);
		return NULL;
	}
	for (;;) {
		if (len + 1024 > cap) {
			char *o = realloc(out, cap *= 2);
			if (o == NULL)
				break;
			out = o;
		}
		size_t r = fread(out + len, 1, cap - len - 1, f);
		if (r == 0)
			break;
		len += r;
	}
	out[len] = 0;
	if (pclose(f) != 0) {
		fprintf(stderr, "msce-bench compare: \"%s\" failed:\n%s\n", cmd,
			out);
		free(out);
		return NULL;
	}
	return out;
}

/* "key=value" from the peer benchmark's line for peer ("peer=redis-7.0
 * ..." for "redis"). */
static double peer_field(const char *out, const char *peer, const char *key)
{
	char want[64];
	const char *line = out;

	snprintf(want, sizeof want, "peer=%s", peer);
	while (line != NULL && *line) {
		const char *end = strchr(line, '\n');
		size_t n = end ? (size_t)(end - line) : strlen(line);
		if (strncmp(line, want, strlen(want)) == 0) {
			char buf[1024], pat[64];
			snprintf(buf, sizeof buf, "%.*s", (int)n, line);
			snprintf(pat, sizeof pat, " %s=", key);
			char *v = strstr(buf, pat);
			if (v != NULL)
				return atof(v + strlen(pat));
		}
		line = end ? end + 1 : NULL;
	}
	return -1;
}

/* Runs one of our own benchmarks as a child and returns its JSON. */
static cJSON *run_self(const char *args)
{
	char self[2048], cmd[4096];
	ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
	if (n <= 0)
		return NULL;
	self[n] = 0;
	snprintf(cmd, sizeof cmd, "'%s' %s --json", self, args);
	char *out = run_capture(cmd);
	if (out == NULL)
		return NULL;
	cJSON *j = cJSON_Parse(out);
	free(out);
	return j;
}

static double num(const cJSON *j, const char *key)
{
	const cJSON *v = cJSON_GetObjectItem(j, key);
	return cJSON_IsNumber(v) ? v->valuedouble : -1;
}

static double median(double *v, int n)
{
	bench_sort(v, n);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

int bench_compare(int argc, char **argv)
{
	long records = 100000;
	int rounds = 3, json = 0;
	static struct option opts[] = {{"records", 1, 0, 'n'},
				       {"rounds", 1, 0, 'r'},
				       {"json", 0, 0, 'j'},
				       {0, 0, 0, 0}};
	int c;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'n':
			records = atol(optarg);
			break;
		case 'r':
			rounds = atoi(optarg);
			break;
		case 'j':
			json = 1;
			break;
		default:
			return 2;
		}
	}
	if (records < 1000 || rounds < 1 || rounds > MAX_ROUNDS) {
		fprintf(stderr, "msce-bench compare: --records at least 1000, "
				"--rounds 1..9\n");
		return 2;
	}
	const char *dir = peers_dir();
	if (dir == NULL) {
		fprintf(stderr,
			"msce-bench compare: no peer benchmark (../shared/peers "
			"from the repository's root, or MSCE_PEERS): nothing "
			"to compare with\n");
		return 2;
	}

	/* Each of our runs, set against Redis's replication (peer 0) or
	 * its --pipe (peer 1). */
	struct leg {
		const char *args, *key, *name, *ratio, *label;
		int peer;
		double v[MAX_ROUNDS];
	} legs[] = {
	    {"replicate --nodes 2 --clients 4 --batch 200",
	     "end_to_end_records_per_s", "msce_replication_per_s",
	     "replication_ratio", "replication msce (800 in flight)", 0, {0}},
	    {"replicate --nodes 2 --clients 16 --batch 256",
	     "end_to_end_records_per_s", "msce_deep_replication_per_s",
	     "deep_replication_ratio", "(4096)", 0, {0}},
	    {"client --nodes 2 --samples 200 --window 64",
	     "pipelined_writes_per_s", "msce_pipelined_puts_per_s",
	     "pipelined_ratio", "pipelined puts msce (256 in flight)", 1, {0}},
	    {"client --nodes 2 --samples 200 --window 1024",
	     "pipelined_writes_per_s", "msce_deep_pipelined_puts_per_s",
	     "deep_pipelined_ratio", "(4096)", 1, {0}},
	};
	const int nlegs = (int)(sizeof legs / sizeof legs[0]);
	const char *peer_name[2] = {"redis_replication_per_s",
				    "redis_pipe_per_s"};
	double peer[2][MAX_ROUNDS];
	double anon_kb[2] = {-1, -1}, redis_rss_kb = -1;
	char redis_cmd[4600];
	snprintf(redis_cmd, sizeof redis_cmd,
		 "N=%ld PEERS=redis '%s/run.sh' 2>&1", records, dir);
	for (int r = 0; r < rounds; r++) {
		for (int half = 0; half < 2; half++) {
			if ((half == 0) == (r % 2 == 0)) {
				char *out = run_capture(redis_cmd);
				if (out == NULL)
					return 1;
				peer[0][r] = peer_field(out, "redis", "rate");
				double ws = peer_field(out, "redis", "write_s");
				for (int s = 0; s < 2; s++) {
					double kb = peer_field(
					    out, "redis",
					    s ? "rss_b_kb" : "rss_a_kb");
					if (kb > redis_rss_kb)
						redis_rss_kb = kb;
				}
				free(out);
				if (peer[0][r] <= 0 || ws <= 0) {
					fprintf(stderr, "msce-bench compare: "
							"no Redis figures\n");
					return 1;
				}
				peer[1][r] = (double)records / ws;
				continue;
			}
			for (int l = 0; l < nlegs; l++) {
				char args[256];
				snprintf(args, sizeof args, "%s --records %ld",
					 legs[l].args, records);
				cJSON *j = run_self(args);
				legs[l].v[r] = j ? num(j, legs[l].key) : -1;
				if (l < 2 && j && num(j, "node_anon_kb_max") >
						      anon_kb[l])
					anon_kb[l] = num(j, "node_anon_kb_max");
				cJSON_Delete(j);
				if (legs[l].v[r] <= 0) {
					fprintf(stderr, "msce-bench compare: "
							"our run failed (%s)\n",
						args);
					return 1;
				}
			}
		}
		if (!json)
			fprintf(stderr,
				"round %d: %s %.0f/s, %s %.0f/s, redis %.0f/s; "
				"%s %.0f/s, %s %.0f/s, redis --pipe %.0f/s\n",
				r + 1, legs[0].label, legs[0].v[r],
				legs[1].label, legs[1].v[r], peer[0][r],
				legs[2].label, legs[2].v[r], legs[3].label,
				legs[3].v[r], peer[1][r]);
	}
	double la[3] = {0, 0, 0};
	getloadavg(la, 3);
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "bench", "compare");
	cJSON_AddNumberToObject(o, "records", (double)records);
	cJSON_AddNumberToObject(o, "rounds", rounds);
	cJSON_AddNumberToObject(o, "nproc",
				(double)sysconf(_SC_NPROCESSORS_ONLN));
	cJSON_AddNumberToObject(o, "loadavg_1m_at_end", la[0]);
	for (int l = 0; l < nlegs; l++) {
		int p = legs[l].peer;
		double m = median(legs[l].v, rounds),
		       pm = median(peer[p], rounds);
		cJSON_AddNumberToObject(o, legs[l].name, m);
		if (l == 0 || legs[l - 1].peer != p)
			cJSON_AddNumberToObject(o, peer_name[p], pm);
		cJSON_AddNumberToObject(o, legs[l].ratio, m / pm);
	}
	cJSON_AddNumberToObject(o, "msce_node_anon_kb_max", anon_kb[0]);
	cJSON_AddNumberToObject(o, "msce_deep_node_anon_kb_max", anon_kb[1]);
	cJSON_AddNumberToObject(o, "redis_rss_kb_max", redis_rss_kb);
	bench_report(o, json);
	cJSON_Delete(o);
	return 0;
}
