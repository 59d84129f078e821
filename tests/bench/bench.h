/* Shared by the msce-bench subcommands. */
#ifndef MSCE_BENCH_H
#define MSCE_BENCH_H

#include <cjson/cJSON.h>
#include <stdint.h>

double bench_now(void); /* monotonic seconds */
uint64_t bench_wall_ms(void);
/* Fills a registration-like field set of about value_size bytes for
 * record i into the caller's buffers; returns the number of fields. */
int bench_registration(uint64_t i, int value_size, char names[][32],
		       char values[][256], int max);
/* Prints a result: the figures as text, or the JSON object with --json. */
void bench_report(cJSON *obj, int json);

int bench_store(int argc, char **argv);
int bench_replicate(int argc, char **argv);
int bench_lag(int argc, char **argv);

#endif
