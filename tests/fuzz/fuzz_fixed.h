/* SPDX-License-Identifier: Apache-2.0 */
/* Fixed keys, clock and cluster shared by the fuzz targets and the corpus
 * generator, so that the seeds gen_fuzz_corpus writes stay valid for the
 * targets: hlcs near the targets' clock, the same cluster name, and for the
 * channel every key and both ephemerals fixed, so that a handshake always
 * yields the same session keys (message 1 and transport frames in a seed
 * decrypt). Test keys only. */
#ifndef MSCE_FUZZ_FIXED_H
#define MSCE_FUZZ_FIXED_H

#include <stdint.h>
#include <string.h>

#include "noise.h"

#define FUZZ_T0 UINT64_C(1767225600000) /* 2026-01-01, unix ms */
#define FUZZ_CLUSTER "fuzz"

enum fuzz_key {
	FUZZ_KEY_INITIATOR = 0x11, /* static keys */
	FUZZ_KEY_RESPONDER = 0x22,
	FUZZ_EPH_INITIATOR = 0x33, /* ephemeral keys */
	FUZZ_EPH_RESPONDER = 0x44,
};

/* The 32-byte private key for k: the byte k, then 1, 2, ... 31. */
static inline void fuzz_key(enum fuzz_key k, uint8_t out[NOISE_KEY_LEN])
{
	for (int i = 0; i < NOISE_KEY_LEN; i++)
		out[i] = (uint8_t)(i ? (unsigned)i : (unsigned)k);
}

#endif
