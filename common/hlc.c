/* SPDX-License-Identifier: Apache-2.0 */
/* Hybrid logical clock. Receive only records the remote value; the next
 * local event takes max(wall, last) and bumps the counter if needed, which
 * is the same as the paper's send/receive rules folded into one step. */
#include "hlc.h"

#include "error.h"

void hlc_init(struct hlc *c, uint64_t high_water) { c->last = high_water; }

uint64_t hlc_now(struct hlc *c, uint64_t wall_ms)
{
	uint64_t wall = hlc_make(wall_ms > HLC_MAX_MS ? HLC_MAX_MS : wall_ms, 0);

	/* When the counter overflows, the carry moves into the milliseconds:
	 * the clock runs slightly ahead but never repeats. */
	c->last = wall > c->last ? wall : c->last + 1;
	return c->last;
}

int hlc_check(uint64_t remote, uint64_t wall_ms, uint64_t max_skew_ms)
{
	if (hlc_ms(remote) > wall_ms + max_skew_ms)
		return MSCE_ECLOCK;
	return 0;
}

void hlc_observe(struct hlc *c, uint64_t remote)
{
	if (remote > c->last)
		c->last = remote;
}
