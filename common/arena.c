/* SPDX-License-Identifier: Apache-2.0 */
/* Arena: a list of chunks, newest first. Requests larger than a chunk get a
 * chunk of their own. */
#include "arena.h"

#include "fault.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define ARENA_CHUNK (64 * 1024)
#define ARENA_MAPPED_CHUNK (256 * 1024)

struct arena_chunk {
	struct arena_chunk *next;
	size_t size;
	size_t off;
	max_align_t data[];
};

void arena_init(struct arena *a, size_t limit)
{
	memset(a, 0, sizeof *a);
	a->limit = limit ? limit : (64u << 20);
}

void arena_init_mapped(struct arena *a, size_t limit)
{
	arena_init(a, limit);
	a->mapped = 1;
}

static void chunk_free(const struct arena *a, struct arena_chunk *c)
{
	if (a->mapped)
		munmap(c, sizeof *c + c->size);
	else
		free(c);
}

/* A new chunk for need bytes, handed out from at once. Out of line, so
 * that the common case below stays a few instructions. */
static void *arena_grow(struct arena *a, size_t need)
{
	size_t size = need > ARENA_CHUNK ? need : ARENA_CHUNK;
	struct arena_chunk *c;

	if (a->mapped) {
		size_t page = 4096, min = ARENA_MAPPED_CHUNK - sizeof *c;
		size = size < min ? min : size;
		size = ((sizeof *c + size + page - 1) & ~(page - 1)) - sizeof *c;
		c = mmap(NULL, sizeof *c + size, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (c == MAP_FAILED)
			c = NULL;
	} else {
		c = malloc(sizeof *c + size);
	}
	if (c == NULL) {
		a->nomem = 1;
		return NULL;
	}
	c->size = size;
	c->off = need;
	c->next = a->head;
	a->head = c;
	a->used += need;
	return c->data;
}

void *arena_alloc(struct arena *a, size_t n)
{
	struct arena_chunk *c = a->head;
	size_t need = (n + 15) & ~(size_t)15;
	void *p;

	if (n > a->limit || a->used + need > a->limit)
		return NULL;
	if (fault_hit(FAULT_ALLOC)) {
		a->nomem = 1;
		return NULL;
	}
	if (c == NULL || c->size - c->off < need)
		return arena_grow(a, need);
	p = (char *)c->data + c->off;
	c->off += need;
	a->used += need;
	return p;
}

void *arena_memdup(struct arena *a, const void *p, size_t n)
{
	void *q = arena_alloc(a, n ? n : 1);
	if (q != NULL && n)
		memcpy(q, p, n);
	return q;
}

void arena_reset(struct arena *a)
{
	struct arena_chunk *c = a->head;

	if (c == NULL)
		return;
	/* Keep the last (oldest) chunk of normal size; free the rest. */
	while (c->next != NULL) {
		struct arena_chunk *next = c->next;
		chunk_free(a, c);
		c = next;
	}
	if (c->size > ARENA_CHUNK) {
		chunk_free(a, c);
		c = NULL;
	} else {
		c->off = 0;
	}
	a->head = c;
	a->used = 0;
	a->nomem = 0;
}

void arena_free(struct arena *a)
{
	struct arena_chunk *c = a->head;
	while (c != NULL) {
		struct arena_chunk *next = c->next;
		chunk_free(a, c);
		c = next;
	}
	a->head = NULL;
	a->used = 0;
}

static void *pb_alloc(void *data, size_t n) { return arena_alloc(data, n); }
static void pb_free(void *data, void *p)
{
	(void)data;
	(void)p;
}

ProtobufCAllocator *arena_pb_allocator(struct arena *a)
{
	a->pb.alloc = pb_alloc;
	a->pb.free = pb_free;
	a->pb.allocator_data = a;
	return &a->pb;
}
