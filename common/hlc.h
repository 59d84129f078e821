/* SPDX-License-Identifier: Apache-2.0 */
/* Hybrid logical clock (Kulkarni et al.): 48 bits of milliseconds since the
 * epoch, 16 bits of logical counter. Pure: callers pass the wall time in, so
 * the simulator can drive it and tests can step the clock backwards.
 *
 * Persistence is the store's job: it saves the highest hlc it commits and
 * seeds the clock with hlc_observe() at open, so no hlc is reused after a
 * restart even if the wall clock went back. */
#ifndef MSCE_HLC_H
#define MSCE_HLC_H

#include <stdint.h>

#define HLC_LOGICAL_BITS 16
#define HLC_LOGICAL_MASK ((1u << HLC_LOGICAL_BITS) - 1)
#define HLC_MAX_MS ((UINT64_C(1) << 48) - 1)

static inline uint64_t hlc_make(uint64_t ms, uint32_t logical)
{
	return (ms << HLC_LOGICAL_BITS) | (logical & HLC_LOGICAL_MASK);
}
static inline uint64_t hlc_ms(uint64_t h) { return h >> HLC_LOGICAL_BITS; }
static inline uint32_t hlc_logical(uint64_t h)
{
	return (uint32_t)(h & HLC_LOGICAL_MASK);
}

struct hlc {
	uint64_t last; /* highest hlc issued or observed */
};

void hlc_init(struct hlc *c, uint64_t high_water);
/* A local event (a write): returns an hlc above every one issued or
 * observed before, and close to wall_ms. */
uint64_t hlc_now(struct hlc *c, uint64_t wall_ms);
/* Is a remote hlc acceptable, i.e. not more than max_skew_ms ahead of
 * wall_ms? Returns 0 or MSCE_ECLOCK. Does not change the clock. */
int hlc_check(uint64_t remote, uint64_t wall_ms, uint64_t max_skew_ms);
/* A receive event: the clock moves past remote. Callers check first. */
void hlc_observe(struct hlc *c, uint64_t remote);

#endif
