/* Versions: (hlc, origin), totally ordered by hlc then origin. The zero
 * version {0, 0} means "none" and is below every real version. */
#ifndef MSCE_VERSION_H
#define MSCE_VERSION_H

#include <stdint.h>

#define MSCE_PROTOCOL_VERSION 1

struct version {
	uint64_t hlc;
	uint32_t origin;
};

static inline int version_cmp(struct version a, struct version b)
{
	if (a.hlc != b.hlc)
		return a.hlc < b.hlc ? -1 : 1;
	if (a.origin != b.origin)
		return a.origin < b.origin ? -1 : 1;
	return 0;
}

static inline int version_is_zero(struct version v)
{
	return v.hlc == 0 && v.origin == 0;
}

static inline struct version version_max(struct version a, struct version b)
{
	return version_cmp(a, b) >= 0 ? a : b;
}

#endif
