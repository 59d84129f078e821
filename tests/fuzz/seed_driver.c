/* SPDX-License-Identifier: Apache-2.0 */
/* Runs a fuzz target without libFuzzer: LLVMFuzzerTestOneInput once on
 * each file of the directories given, in name order, so that every seed
 * corpus runs as a ctest test in every build (gcc, ASan), not only in the
 * clang fuzz build. A directory without a file fails: a corpus that
 * vanished must not pass as an empty run.
 *
 *   fuzz_seed_NAME DIR... */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int run_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	uint8_t *buf = NULL;
	size_t len = 0, cap = 0, k;

	if (f == NULL) {
		perror(path);
		return -1;
	}
	do {
		if (cap - len < 65536) {
			cap = cap ? 2 * cap : 65536;
			uint8_t *p = realloc(buf, cap);
			if (p == NULL) {
				fprintf(stderr, "%s: out of memory\n", path);
				free(buf);
				fclose(f);
				return -1;
			}
			buf = p;
		}
		k = fread(buf + len, 1, cap - len, f);
		len += k;
	} while (k > 0);
	fclose(f);
	/* A copy of exactly len bytes, so that ASan sees a read past it. */
	uint8_t *exact = malloc(len ? len : 1);
	if (exact == NULL) {
		free(buf);
		return -1;
	}
	memcpy(exact, buf, len);
	free(buf);
	printf("%s (%zu bytes)\n", path, len);
	fflush(stdout);
	LLVMFuzzerTestOneInput(exact, len);
	free(exact);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: %s CORPUS_DIR...\n", argv[0]);
		return 2;
	}
	for (int i = 1; i < argc; i++) {
		struct dirent **names;
		int n = scandir(argv[i], &names, NULL, alphasort), files = 0;

		if (n < 0) {
			perror(argv[i]);
			return 1;
		}
		for (int k = 0; k < n; k++) {
			char path[4096];
			if (names[k]->d_name[0] != '.') {
				snprintf(path, sizeof path, "%s/%s", argv[i],
					 names[k]->d_name);
				if (run_file(path) != 0)
					return 1;
				files++;
			}
			free(names[k]);
		}
		free(names);
		if (files == 0) {
			fprintf(stderr, "%s: no seed in the corpus\n", argv[i]);
			return 1;
		}
		printf("%s: %d seeds ran\n", argv[i], files);
	}
	return 0;
}
