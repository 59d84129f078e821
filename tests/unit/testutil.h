/* SPDX-License-Identifier: Apache-2.0 */
/* Helpers shared by the unit tests: temp dirs, seeds, wall time. */
#ifndef MSCE_TESTUTIL_H
#define MSCE_TESTUTIL_H

#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static inline char *tu_tmpdir(void)
{
	char tmpl[] = "/tmp/msce-test-XXXXXX";
	char *d = mkdtemp(tmpl);
	return d ? strdup(d) : NULL;
}

static int tu_rm_one(const char *p, const struct stat *st, int flag,
		     struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(p);
}

static inline void tu_rmrf(char *dir)
{
	if (dir == NULL)
		return;
	nftw(dir, tu_rm_one, 16, FTW_DEPTH | FTW_PHYS);
	free(dir);
}

static inline uint64_t tu_wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Seed from MSCE_SEED or the clock; printed so a failure can be replayed. */
static inline uint64_t tu_seed(const char *test)
{
	const char *s = getenv("MSCE_SEED");
	uint64_t seed = s ? strtoull(s, NULL, 0)
			  : (uint64_t)time(NULL) ^ (uint64_t)getpid();
	printf("%s: seed %llu (replay with MSCE_SEED=%llu)\n", test,
	       (unsigned long long)seed, (unsigned long long)seed);
	return seed;
}

/* xorshift64*: small, seedable, the same everywhere. */
static inline uint64_t tu_rand(uint64_t *s)
{
	uint64_t x = *s ? *s : 0x9E3779B97F4A7C15ull;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*s = x;
	return x * 0x2545F4914F6CDD1Dull;
}

static inline uint64_t tu_below(uint64_t *s, uint64_t n)
{
	return n ? tu_rand(s) % n : 0;
}

/* Whether a test that cannot run here may skip: prints "SKIPPED name:
 * why"; under CI=true only tests listed in tests/allowed-skips may (see
 * there). Use tu_skip, after cmocka.h. */
static inline int tu_skip_allowed(const char *name, const char *why)
{
	const char *ci = getenv("CI");
	char line[512];
	size_t n = strlen(name);
	int ok = ci == NULL || strcmp(ci, "true") != 0;
	FILE *f = fopen(MSCE_SOURCE_DIR "/tests/allowed-skips", "r");

	while (!ok && f != NULL && fgets(line, sizeof line, f) != NULL)
		ok = strncmp(line, name, n) == 0 &&
		     (line[n] == ' ' || line[n] == '\n');
	if (f != NULL)
		fclose(f);
	printf("SKIPPED %s: %s%s\n", name, why,
	       ok ? ""
		  : "  (not allowed under CI=true: not in "
		    "tests/allowed-skips)");
	return ok;
}

/* Skips the current cmocka test with a reason, or fails it under CI=true
 * unless allowed (ctest shows a skip as skipped, never as passed). */
#define tu_skip(name, why)                                                     \
	do {                                                                   \
		if (tu_skip_allowed(name, why))                                \
			skip();                                                \
		fail_msg("skip of %s not allowed under CI=true", name);        \
	} while (0)

#endif
