/* SPDX-License-Identifier: Apache-2.0 */
/* Versions: (hlc, origin), totally ordered by hlc then origin. The zero
 * version {0, 0} means "none" and is below every real version. */
#ifndef MSCE_VERSION_H
#define MSCE_VERSION_H

#include <stdint.h>

/* The secure channel's version, bound into the Noise prologue (and so into
 * mac1): 2 added mac1/mac2, cookie replies and the initiator's
 * confirmation. Nodes of different versions cannot connect. */
#define MSCE_CHANNEL_VERSION 2
/* The peer protocol's version, carried in Hello and snapshot chunks: 2 added
 * writers (incarnations), per-writer tombstone collection and snapshot
 * ranges. A node refuses a peer speaking another version, naming both. */
#define MSCE_PROTOCOL_VERSION 2
/* The client protocol's version (client.proto), sent in every request by
 * libmsce. A node refuses a request naming another version with EVERSION,
 * naming both; a request that names none (0: clients before 0.2.0) is
 * served. */
#define MSCE_CLIENT_PROTOCOL 1

/* An origin (writer id) is a node id in the low 16 bits and an incarnation
 * in the high 16: a store that was created, wiped or restored writes under a
 * new incarnation, so that no (origin, seq) names two changes. Incarnation
 * 0 is the writer of a store made before incarnations existed. */
static inline uint32_t writer_node(uint32_t w) { return w & 0xffff; }
static inline uint32_t writer_inc(uint32_t w) { return w >> 16; }
static inline uint32_t writer_make(uint32_t node, uint32_t inc)
{
	return (inc << 16) | (node & 0xffff);
}

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
