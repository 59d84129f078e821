/* SPDX-License-Identifier: Apache-2.0 */
/* Bump allocator for short-lived decoding and merge work: many small
 * allocations, one reset. A hard limit bounds what hostile input can make
 * us allocate; protobuf-c decodes through it (arena_pb_allocator). */
#ifndef MSCE_ARENA_H
#define MSCE_ARENA_H

#include <protobuf-c/protobuf-c.h>
#include <stddef.h>

struct arena_chunk;

struct arena {
	struct arena_chunk *head;
	size_t used;  /* bytes handed out since the last reset */
	size_t limit; /* arena_alloc fails past this */
	int nomem;    /* set when malloc failed (not the limit) */
	int mapped;   /* chunks mapped apart: given back when freed */
	ProtobufCAllocator pb;
};

/* limit: most bytes handed out between resets (0 = 64 MiB). */
void arena_init(struct arena *a, size_t limit);
/* The same, with chunks of their own pages (256 KiB and up), which
 * arena_free gives back to the system: for memory held a while and then
 * all freed at once, which the C heap would keep. */
void arena_init_mapped(struct arena *a, size_t limit);
/* Returns 8-byte aligned memory owned by the arena, or NULL past the limit
 * or when malloc fails. Valid until arena_reset or arena_free. */
void *arena_alloc(struct arena *a, size_t n);
void *arena_memdup(struct arena *a, const void *p, size_t n);
/* Frees everything but the first chunk, which is kept for reuse. */
void arena_reset(struct arena *a);
void arena_free(struct arena *a);
/* A protobuf-c allocator drawing from a; its free is a no-op. */
ProtobufCAllocator *arena_pb_allocator(struct arena *a);

#endif
