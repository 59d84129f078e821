/* SPDX-License-Identifier: Apache-2.0 */
/* Budgeted protobuf-c allocator; see pballoc.h. Frees do not give budget
 * back: the budget bounds the total a single decode may allocate. */
#include "pballoc.h"
#include "fault.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static void *limit_alloc(void *data, size_t n)
{
	struct pb_limit *l = data;
	if (n > l->limit - l->used)
		return NULL;
	l->used += n;
	return malloc(n ? n : 1);
}

static void limit_free(void *data, void *p)
{
	(void)data;
	free(p);
}

ProtobufCAllocator *pb_limit_init(struct pb_limit *l, size_t limit)
{
	l->a.alloc = limit_alloc;
	l->a.free = limit_free;
	l->a.allocator_data = l;
	l->used = 0;
	l->limit = limit;
	return &l->a;
}

/* ---- arena ---------------------------------------------------------------- */

struct pb_arena_block {
	struct pb_arena_block *next;
	size_t size, used;
	max_align_t data[];
};

/* Kept just before the message in the first block, so that the message
 * alone is enough to free everything. */
struct pb_owner {
	struct pb_arena_block *blocks;
	void *msg;
	size_t held; /* bytes of all its blocks */
	max_align_t pad[];
};

#define ALIGN_UP(n) (((n) + sizeof(max_align_t) - 1) & ~(sizeof(max_align_t) - 1))

static void blocks_free(struct pb_arena_block *b)
{
	while (b != NULL) {
		struct pb_arena_block *next = b->next;
		free(b);
		b = next;
	}
}

static void *arena_alloc_pb(void *data, size_t n)
{
	struct pb_arena *ar = data;
	struct pb_arena_block *b = ar->blocks;
	size_t need = ALIGN_UP(n ? n : 1);

	if (need > ar->limit - ar->used) {
		ar->over = 1;
		return NULL;
	}
	if (b == NULL || b->size - b->used < need) {
		size_t size = b == NULL ? ar->first_size : ar->grow;
		if (size < need + ALIGN_UP(sizeof(struct pb_owner)))
			size = need + ALIGN_UP(sizeof(struct pb_owner));
		b = fault_hit(FAULT_ALLOC) ? NULL : malloc(sizeof *b + size);
		if (b == NULL) {
			ar->nomem = 1;
			return NULL;
		}
		b->size = size;
		b->used = 0;
		ar->held += size;
		b->next = ar->blocks;
		if (ar->blocks == NULL) /* room for the owner record */
			b->used = ALIGN_UP(sizeof(struct pb_owner));
		ar->blocks = b;
	}
	void *p = (char *)b->data + b->used;
	b->used += need;
	ar->used += need;
	if (ar->first == NULL)
		ar->first = p;
	return p;
}

static void arena_free_pb(void *data, void *p)
{
	(void)data;
	(void)p; /* all at once, in pb_arena_free */
}

ProtobufCAllocator *pb_arena_begin(struct pb_arena *ar, size_t limit,
				   size_t len)
{
	ar->a.alloc = arena_alloc_pb;
	ar->a.free = arena_free_pb;
	ar->a.allocator_data = ar;
	ar->blocks = NULL;
	ar->used = 0;
	ar->held = 0;
	ar->limit = limit;
	ar->first = NULL;
	ar->nomem = 0;
	ar->over = 0;
	/* Decoded messages take a few times their encoding (a batch of
	 * registrations six times), and the blocks live until the request
	 * is answered: grown in steps of the encoding, not doubled, so the
	 * part allocated and unused stays under one encoding's size. */
	ar->first_size = 2 * len + 4096;
	ar->grow = len + 4096;
	return &ar->a;
}

void *pb_arena_end(struct pb_arena *ar, void *m)
{
	struct pb_arena_block *first;

	if (m == NULL || m != ar->first) {
		/* Failed, or (never with protobuf-c) the message was not its
		 * first allocation: then it cannot own the blocks. */
		blocks_free(ar->blocks);
		ar->blocks = NULL;
		if (m != NULL)
			abort();
		return NULL;
	}
	first = ar->blocks;
	while (first->next != NULL)
		first = first->next;
	struct pb_owner *o = (struct pb_owner *)first->data;
	o->blocks = ar->blocks;
	o->msg = m;
	o->held = ar->held;
	ar->blocks = NULL;
	return m;
}

static struct pb_owner *owner_of(const void *m)
{
	struct pb_owner *o = (struct pb_owner *)((char *)m -
						 ALIGN_UP(sizeof(struct pb_owner)));
	if (o->msg != m)
		abort(); /* not from pb_arena_end */
	return o;
}

size_t pb_arena_held(const void *m)
{
	return m == NULL ? 0 : owner_of(m)->held;
}

void pb_arena_free(void *m)
{
	struct pb_owner *o;

	if (m == NULL)
		return;
	o = owner_of(m);
	blocks_free(o->blocks);
}
