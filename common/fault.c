/* SPDX-License-Identifier: Apache-2.0 */
/* Fault injection counters; see fault.h. Atomics, since the writer thread
 * and the loop thread both pass through the sites. */
#include "fault.h"

#include <stddef.h>

struct fault_state {
	long countdown; /* 0 = off */
	int sticky;
	int fired;
	long events;
};

static struct fault_state faults[FAULT_NKINDS];

static void (*observer)(enum fault_kind, void *);
static void *observer_arg;

/* Set by the first fault_arm and never cleared: the sites' fast path. */
int fault_ever_armed;

void fault_arm(enum fault_kind k, long nth, int sticky)
{
	__atomic_store_n(&fault_ever_armed, 1, __ATOMIC_SEQ_CST);
	__atomic_store_n(&faults[k].sticky, sticky, __ATOMIC_SEQ_CST);
	__atomic_store_n(&faults[k].fired, 0, __ATOMIC_SEQ_CST);
	__atomic_store_n(&faults[k].events, 0, __ATOMIC_SEQ_CST);
	__atomic_store_n(&faults[k].countdown, nth, __ATOMIC_SEQ_CST);
}

void fault_clear(enum fault_kind k)
{
	__atomic_store_n(&faults[k].countdown, 0, __ATOMIC_SEQ_CST);
	__atomic_store_n(&faults[k].fired, 0, __ATOMIC_SEQ_CST);
	__atomic_store_n(&faults[k].events, 0, __ATOMIC_SEQ_CST);
}

int fault_hit_armed(enum fault_kind k)
{
	struct fault_state *f = &faults[k];
	if (__atomic_load_n(&f->countdown, __ATOMIC_RELAXED) == 0 &&
	    !__atomic_load_n(&f->fired, __ATOMIC_RELAXED))
		return 0;
	__atomic_add_fetch(&f->events, 1, __ATOMIC_SEQ_CST);
	if (observer != NULL)
		observer(k, observer_arg);
	if (__atomic_load_n(&f->fired, __ATOMIC_SEQ_CST))
		return __atomic_load_n(&f->sticky, __ATOMIC_SEQ_CST);
	if (__atomic_sub_fetch(&f->countdown, 1, __ATOMIC_SEQ_CST) == 0) {
		__atomic_store_n(&f->fired, 1, __ATOMIC_SEQ_CST);
		return 1;
	}
	return 0;
}

void fault_observe(void (*fn)(enum fault_kind k, void *arg), void *arg)
{
	/* Set by a test between its operations, not while a site runs. */
	observer_arg = arg;
	observer = fn;
}

long fault_events(enum fault_kind k)
{
	return __atomic_load_n(&faults[k].events, __ATOMIC_SEQ_CST);
}
