/* SPDX-License-Identifier: Apache-2.0 */
/* Fault injection for tests: a test arms a fault, and the next matching
 * event (an allocation on the apply path, a commit, a map growth) fails as
 * if the system had failed it. Until a test arms a fault, a check is one
 * relaxed load inlined at the site (the sites are on every allocation of
 * the apply path); production code never arms anything. */
#ifndef MSCE_FAULT_H
#define MSCE_FAULT_H

enum fault_kind {
	FAULT_ALLOC,  /* an allocation returns NULL */
	FAULT_COMMIT, /* the commit fails with EIO (as a failed fsync) */
	FAULT_FULL,   /* the disk is full: the map cannot grow */
	FAULT_NOSPACE, /* the commit fails with ENOSPC (the disk filled) */
	FAULT_NKINDS
};

/* The nth next event of kind fails (nth >= 1); with sticky, every event
 * from then on fails until fault_clear. */
void fault_arm(enum fault_kind k, long nth, int sticky);
void fault_clear(enum fault_kind k);
/* Called at each site: 1 if this event must fail. */
extern int fault_ever_armed;
int fault_hit_armed(enum fault_kind k);
static inline int fault_hit(enum fault_kind k)
{
	if (!__atomic_load_n(&fault_ever_armed, __ATOMIC_RELAXED))
		return 0;
	return fault_hit_armed(k);
}
/* Calls fn(k, arg) at each event of an armed kind, before it is decided,
 * so a test can look at the state at that moment (NULL: none). */
void fault_observe(void (*fn)(enum fault_kind k, void *arg), void *arg);
/* How many events of kind were checked since the last arm or clear, so a
 * test can walk every site one by one. */
long fault_events(enum fault_kind k);

#endif
