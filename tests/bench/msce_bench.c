/* SPDX-License-Identifier: Apache-2.0 */
/* msce-bench: measures msce with real workloads and prints the figures.
 * Timing lives here, not in tests: the machines are shared and noisy.
 * `all` runs every benchmark with the settings docs/BENCHMARKS.md quotes
 * and reports them together with the machine they ran on. */
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statfs.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"

double bench_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

const char *bench_tmp(void)
{
	const char *t = getenv("TMPDIR");
	return t && *t ? t : "/tmp";
}

int bench_fsync_open(struct bench_fsync *f, const char *dir)
{
	snprintf(f->path, sizeof f->path, "%s/fsync-probe", dir);
	memset(f->block, 'f', sizeof f->block);
	f->n = 0;
	f->fd = open(f->path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (f->fd < 0)
		perror(f->path);
	return f->fd < 0 ? -1 : 0;
}

double bench_fsync_probe(struct bench_fsync *f)
{
	/* Over 64 blocks in turn, like a small log rewritten in place. */
	off_t at = (off_t)(f->n++ % 64) * (off_t)sizeof f->block;
	double t0 = bench_now();
	if (pwrite(f->fd, f->block, sizeof f->block, at) !=
		(ssize_t)sizeof f->block ||
	    fdatasync(f->fd) != 0)
		return -1;
	return (bench_now() - t0) * 1000.0;
}

void bench_fsync_close(struct bench_fsync *f)
{
	if (f->fd >= 0) {
		close(f->fd);
		unlink(f->path);
	}
	f->fd = -1;
}

void bench_fsync_report(cJSON *r, double *ms, int n, double p50, double p99)
{
	bench_sort(ms, n);
	double f50 = bench_percentile(ms, n, 0.50);
	double f99 = bench_percentile(ms, n, 0.99);
	cJSON_AddNumberToObject(r, "fsync_probes", n);
	cJSON_AddNumberToObject(r, "fsync_p50_ms", f50);
	cJSON_AddNumberToObject(r, "fsync_p99_ms", f99);
	if (f50 > 0) {
		cJSON_AddNumberToObject(r, "p50_in_fsync_p50s", p50 / f50);
		cJSON_AddNumberToObject(r, "p99_in_fsync_p50s", p99 / f50);
	}
	if (f99 > 0)
		cJSON_AddNumberToObject(r, "p99_in_fsync_p99s", p99 / f99);
}

uint64_t bench_wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static const char *const nat[] = {"FRA", "DEU", "USA", "GBR", "JPN",
				  "KOR", "ITA", "ESP", "CAN", "AUS"};

int bench_registration(uint64_t i, int value_size, char names[][32],
		       char values[][256], int max)
{
	int n = 0, used = 0;
#define F(k, ...)                                                              \
	do {                                                                   \
		if (n < max) {                                                 \
			snprintf(names[n], 32, "%s", k);                       \
			snprintf(values[n], 256, __VA_ARGS__);                 \
			used += (int)strlen(values[n]) + (int)strlen(k);       \
			n++;                                                   \
		}                                                              \
	} while (0)
	F("name", "Resident Number %llu Example", (unsigned long long)i);
	F("nationality", "%s", nat[i % 10]);
	F("document_type", "passport");
	F("document_number", "P%09llu", (unsigned long long)i);
	F("birth_date", "19%02llu-%02llu-%02llu",
	  (unsigned long long)(50 + i % 50), (unsigned long long)(1 + i % 12),
	  (unsigned long long)(1 + i % 28));
	F("phone", "+86138%08llu", (unsigned long long)(i % 100000000));
	F("email", "resident%llu@example.com", (unsigned long long)i);
	F("district", "nanshan");
	F("visa_type", "work");
	F("visa_expiry", "2028-06-30");
	F("registered_at", "2026-11-26T09:30:00Z");
	F("center", "shekou");
	/* The address takes up the rest of the requested size. */
	int pad = value_size - used - 7;
	if (pad < 8)
		pad = 8;
	if (pad > 250)
		pad = 250;
	if (n < max) {
		snprintf(names[n], 32, "address");
		for (int k = 0; k < pad; k++)
			values[n][k] = "Room 1 Sea World Shekou "[k % 24];
		values[n][pad] = 0;
		n++;
	}
#undef F
	return n;
}

/* Under `all`: results are gathered here as well as printed. */
static cJSON *collected;

void bench_report(cJSON *obj, int json)
{
	if (collected != NULL) {
		cJSON_AddItemToArray(collected, cJSON_Duplicate(obj, 1));
		if (json)
			return; /* printed once, at the end of `all` */
	}
	if (json) {
		char *s = cJSON_PrintUnformatted(obj);
		printf("%s\n", s);
		cJSON_free(s);
		return;
	}
	for (cJSON *c = obj->child; c != NULL; c = c->next) {
		if (cJSON_IsNumber(c))
			printf("%-28s %.2f\n", c->string, c->valuedouble);
		else if (cJSON_IsString(c))
			printf("%-28s %s\n", c->string, c->valuestring);
	}
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

void bench_sort(double *v, int n)
{
	qsort(v, (size_t)n, sizeof *v, cmp_double);
}

/* Nearest rank. */
double bench_percentile(const double *sorted, int n, double p)
{
	int i = (int)(p * n + 0.999999) - 1;
	if (n == 0)
		return 0;
	if (i < 0)
		i = 0;
	if (i >= n)
		i = n - 1;
	return sorted[i];
}

/* ---- all ------------------------------------------------------------------
 */

static cJSON *machine(void)
{
	cJSON *m = cJSON_CreateObject();
	char line[512], model[256] = "?";
	struct utsname u;
	struct statfs fs;
	FILE *f = fopen("/proc/cpuinfo", "r");

	while (f && fgets(line, sizeof line, f))
		if (strncmp(line, "model name", 10) == 0) {
			char *c = strchr(line, ':');
			if (c) {
				snprintf(model, sizeof model, "%s", c + 2);
				model[strcspn(model, "\n")] = 0;
			}
			break;
		}
	if (f)
		fclose(f);
	cJSON_AddNumberToObject(m, "nproc",
				(double)sysconf(_SC_NPROCESSORS_ONLN));
	cJSON_AddStringToObject(m, "cpu", model);
	if (uname(&u) == 0)
		cJSON_AddStringToObject(m, "kernel", u.release);
	cJSON_AddStringToObject(m, "tmp_dir", bench_tmp());
	if (statfs(bench_tmp(), &fs) == 0) {
		snprintf(line, sizeof line, "0x%lx", (unsigned long)fs.f_type);
		cJSON_AddStringToObject(m, "tmp_fs_type", line);
	}
	double la[3];
	if (getloadavg(la, 3) == 3)
		cJSON_AddNumberToObject(m, "loadavg_1m_at_start", la[0]);
	return m;
}

struct step {
	const char *title;
	int (*fn)(int, char **);
	const char *args[8];
};

/* What docs/BENCHMARKS.md reports. */
static const struct step steps[] = {
    {"store: 200,000 registrations, batches of 1000",
     bench_store,
     {"store", "--records", "200000", "--batch", "1000"}},
    {"replicate: 2 nodes, 100,000 records",
     bench_replicate,
     {"replicate", "--nodes", "2", "--records", "100000"}},
    {"replicate: 8 nodes, 100,000 records",
     bench_replicate,
     {"replicate", "--nodes", "8", "--records", "100000"}},
    {"lag: 3 nodes, 200 single writes",
     bench_lag,
     {"lag", "--nodes", "3", "--samples", "200"}},
    {"catchup: 200,000 records from the log",
     bench_catchup,
     {"catchup", "--records", "200000"}},
    {"catchup: 200,000 records by snapshot",
     bench_catchup,
     {"catchup", "--records", "200000", "--retention", "20000"}},
    {"client: libmsce over the unix socket", bench_client, {"client"}},
    {"handshake: what a hostile message 1 costs", bench_handshake,
     {"handshake"}},
    {"watch: catching up from an old cursor, 100,000 records", bench_watch,
     {"watch", "--records", "100000"}},
};

static int bench_all(int argc, char **argv)
{
	int json = 0, failed = 0;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0) {
			json = 1;
		} else {
			fprintf(stderr, "msce-bench all: unknown option %s\n",
				argv[i]);
			return 2;
		}
	}
	cJSON *out = cJSON_CreateObject(), *m = machine();
	collected = cJSON_CreateArray();
	if (!json) {
		printf("machine: %d cores, %s, kernel %s\n",
		       (int)cJSON_GetObjectItem(m, "nproc")->valuedouble,
		       cJSON_GetObjectItem(m, "cpu")->valuestring,
		       cJSON_GetObjectItem(m, "kernel")->valuestring);
	}
	for (size_t s = 0; s < sizeof steps / sizeof steps[0]; s++) {
		char *av[9];
		int ac = 0;
		for (; steps[s].args[ac] != NULL; ac++)
			av[ac] = (char *)steps[s].args[ac];
		if (json)
			av[ac++] = "--json";
		av[ac] = NULL;
		if (!json)
			printf("\n== %s\n", steps[s].title);
		fflush(stdout);
		optind = 0; /* getopt restarts for each subcommand */
		double t0 = bench_now();
		int rc = steps[s].fn(ac, av);
		if (rc != 0) {
			fprintf(stderr, "msce-bench all: %s failed (%d)\n",
				steps[s].title, rc);
			failed = 1;
		}
		if (!json)
			printf("(%.0f s)\n", bench_now() - t0);
	}
	cJSON_AddStringToObject(out, "bench", "all");
	cJSON_AddItemToObject(out, "machine", m);
	cJSON_AddItemToObject(out, "results", collected);
	collected = NULL;
	if (json) {
		char *p = cJSON_Print(out);
		printf("%s\n", p);
		cJSON_free(p);
	}
	cJSON_Delete(out);
	return failed;
}

static void usage(void)
{
	fprintf(stderr,
		"usage: msce-bench store [--records N] [--value-size B] "
		"[--batch K] [--rounds N] [--json]\n"
		"       msce-bench replicate [--nodes K] [--records N] "
		"[--batch B] [--clients C] [--json]\n"
		"       msce-bench lag [--nodes K] [--samples S] [--json]\n"
		"       msce-bench catchup [--nodes K] [--records N] "
		"[--retention R] [--json]\n"
		"       msce-bench client [--nodes K] [--records N] "
		"[--connections C] [--window W] [--batch B] [--samples S] "
		"[--json]\n"
		"       msce-bench compare [--records N] [--rounds R] "
		"[--json]   (with ../shared/peers)\n"
		"       msce-bench handshake [--attempts N] [--connections C] "
		"[--json]\n"
		"       msce-bench watch [--records N] [--json]\n"
		"       msce-bench all [--json]\n");
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage();
		return 2;
	}
	if (strcmp(argv[1], "store") == 0)
		return bench_store(argc - 1, argv + 1);
	if (strcmp(argv[1], "replicate") == 0)
		return bench_replicate(argc - 1, argv + 1);
	if (strcmp(argv[1], "lag") == 0)
		return bench_lag(argc - 1, argv + 1);
	if (strcmp(argv[1], "catchup") == 0)
		return bench_catchup(argc - 1, argv + 1);
	if (strcmp(argv[1], "client") == 0)
		return bench_client(argc - 1, argv + 1);
	if (strcmp(argv[1], "handshake") == 0)
		return bench_handshake(argc - 1, argv + 1);
	if (strcmp(argv[1], "watch") == 0)
		return bench_watch(argc - 1, argv + 1);
	if (strcmp(argv[1], "all") == 0)
		return bench_all(argc - 1, argv + 1);
	if (strcmp(argv[1], "compare") == 0)
		return bench_compare(argc - 1, argv + 1);
	fprintf(stderr, "msce-bench: unknown subcommand \"%s\"\n", argv[1]);
	usage();
	return 2;
}
