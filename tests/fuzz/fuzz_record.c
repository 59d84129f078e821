/* SPDX-License-Identifier: Apache-2.0 */
/* fuzz_record: the on-disk record decoder on arbitrary bytes (what a
 * corrupted LMDB page would hand it).
 *
 * record_decode must refuse or succeed without reading outside the input.
 * On success the record is encoded again, decoded again and encoded a
 * third time: the two encodings must be identical (the first may differ
 * from the input, which need not be canonical), and hashing it must be
 * safe. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arena.h"
#include "record.h"

static struct arena a;
static int ready;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct record r, r2;
	uint8_t h[RECORD_HASH_LEN];
	uint8_t *enc1, *enc2;
	size_t n1, n2;

	if (!ready) {
		arena_init(&a, 64u << 20);
		ready = 1;
	}
	arena_reset(&a);
	if (record_decode(data, size, &r, &a) != 0)
		return 0;
	record_hash("c", 1, "k", 1, &r, h);
	n1 = record_encoded_size(&r);
	enc1 = malloc(n1 ? n1 : 1);
	if (enc1 == NULL)
		return 0;
	record_encode(&r, enc1);
	if (record_decode(enc1, n1, &r2, &a) != 0) {
		fprintf(stderr, "fuzz_record: re-encoding does not decode\n");
		abort();
	}
	n2 = record_encoded_size(&r2);
	enc2 = malloc(n2 ? n2 : 1);
	if (enc2 == NULL) {
		free(enc1);
		return 0;
	}
	record_encode(&r2, enc2);
	if (n1 != n2 || memcmp(enc1, enc2, n1) != 0) {
		fprintf(stderr,
			"fuzz_record: encode(decode(x)) not stable: %zu vs "
			"%zu bytes\n",
			n1, n2);
		abort();
	}
	free(enc1);
	free(enc2);
	return 0;
}
