/* SPDX-License-Identifier: Apache-2.0 */
/* See fuzz_store.h. */
#include "fuzz_store.h"

#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char base[PATH_MAX]; /* mkdtemp'd, holds store-N */
static struct store *cur;
static unsigned runs, every, generation;

static int rm_one(const char *path, const struct stat *st, int flag,
		  struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	remove(path);
	return 0;
}

static void cleanup(void)
{
	if (cur != NULL)
		store_close(cur);
	cur = NULL;
	if (base[0])
		nftw(base, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	base[0] = 0;
}

static void open_fresh(uint32_t node_id, const char *cluster)
{
	struct store_options o = {.node_id = node_id,
				  .cluster = cluster,
				  .nosync = 1,
				  .map_size = 16u << 20,
				  .max_map_size = 512u << 20};
	char dir[PATH_MAX + 32];
	struct err e;

	if (cur != NULL) {
		store_close(cur);
		cur = NULL;
		snprintf(dir, sizeof dir, "%s/store-%u", base, generation);
		nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	}
	generation++;
	snprintf(dir, sizeof dir, "%s/store-%u", base, generation);
	err_clear(&e);
	if (store_open(dir, &o, &cur, &e) ||
	    store_set_writer(cur, o.node_id, 0, 1, &e)) {
		fprintf(stderr, "fuzz_store: store_open %s: %s\n", dir, e.msg);
		abort();
	}
}

struct store *fuzz_store_begin(uint32_t node_id, const char *cluster,
			       int *fresh)
{
	*fresh = 0;
	if (base[0] == 0) {
		const char *tmp = getenv("TMPDIR");
		const char *env = getenv("MSCE_FUZZ_REOPEN");

		every = env ? (unsigned)strtoul(env, NULL, 10) : 64;
		if (every == 0)
			every = 64;
		snprintf(base, sizeof base, "%s/msce-fuzz-XXXXXX",
			 tmp && *tmp ? tmp : "/tmp");
		if (mkdtemp(base) == NULL) {
			perror("fuzz_store: mkdtemp");
			abort();
		}
		atexit(cleanup);
	}
	if (cur == NULL || runs % every == 0) {
		open_fresh(node_id, cluster);
		*fresh = 1;
	}
	runs++;
	return cur;
}
