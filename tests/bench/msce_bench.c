/* msce-bench: measures msce with real workloads and prints the figures.
 * Timing lives here, not in tests: the machines are shared and noisy. */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "bench.h"

double bench_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
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
#define F(k, ...)                                                           \
	do {                                                                \
		if (n < max) {                                              \
			snprintf(names[n], 32, "%s", k);                    \
			snprintf(values[n], 256, __VA_ARGS__);              \
			used += (int)strlen(values[n]) + (int)strlen(k);    \
			n++;                                                \
		}                                                           \
	} while (0)
	F("name", "Resident Number %llu Example", (unsigned long long)i);
	F("nationality", "%s", nat[i % 10]);
	F("document_type", "passport");
	F("document_number", "P%09llu", (unsigned long long)i);
	F("birth_date", "19%02llu-%02llu-%02llu", (unsigned long long)(50 + i % 50),
	  (unsigned long long)(1 + i % 12), (unsigned long long)(1 + i % 28));
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

void bench_report(cJSON *obj, int json)
{
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

static void usage(void)
{
	fprintf(stderr,
		"usage: msce-bench store [--records N] [--value-size B] "
		"[--batch K] [--json]\n"
		"       msce-bench replicate [--nodes K] [--records N] "
		"[--batch B] [--clients C] [--json]\n"
		"       msce-bench lag [--nodes K] [--samples S] [--json]\n");
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
	fprintf(stderr, "msce-bench: unknown subcommand \"%s\"\n", argv[1]);
	usage();
	return 2;
}
