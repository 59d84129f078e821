/* SPDX-License-Identifier: Apache-2.0 */
/* A protobuf-c allocator with a hard budget for one decode: hostile input
 * (a small message declaring many repeated fields) cannot make a decode
 * allocate more than the limit. Blocks come from malloc, so the decoded
 * message is freed as usual with ..._free_unpacked(msg, NULL). */
#ifndef MSCE_PBALLOC_H
#define MSCE_PBALLOC_H

#include <protobuf-c/protobuf-c.h>
#include <stddef.h>

struct pb_limit {
	ProtobufCAllocator a;
	size_t used, limit;
};

/* Returns the allocator to pass to ..._unpack; l lives on the caller's
 * stack for the duration of the unpack. */
ProtobufCAllocator *pb_limit_init(struct pb_limit *l, size_t limit);

/* The budget for decoding len bytes. Decoded structures of small
 * messages take up to about 12 times their encoding (a batch of 10,000
 * one-field puts, measured), so 16 leaves room without letting a message
 * claim more than that. */
static inline size_t pb_limit_for(size_t len)
{
	return 16 * len + 64 * 1024;
}

/* The same budget, but the decode goes into a few large blocks (bump
 * allocation, no per-field malloc and free): for the messages a node
 * decodes by the thousand, peer batches and client requests. Decode with
 *   m = msce__x__unpack(pb_arena_begin(&ar, budget), len, buf);
 *   m = pb_arena_end(&ar, m);
 * and free with pb_arena_free(m), never ..._free_unpacked. */
struct pb_arena_block;
struct pb_arena {
	ProtobufCAllocator a;
	struct pb_arena_block *blocks;
	size_t used, limit, first_size, grow;
	size_t held; /* bytes of the blocks, used or not */
	void *first; /* the first allocation: the decoded message */
	int nomem;   /* malloc failed: the input may be fine, we are not */
	int over;    /* the budget ran out: too many items for the size */
};

ProtobufCAllocator *pb_arena_begin(struct pb_arena *ar, size_t limit,
				   size_t len);
/* Ties the blocks to the message (m from unpack, may be NULL: then the
 * blocks are freed). Returns m. */
void *pb_arena_end(struct pb_arena *ar, void *m);
/* Frees a message decoded this way; NULL is ignored. */
void pb_arena_free(void *m);
/* The bytes a message decoded this way holds (its blocks, used or not);
 * 0 for NULL. */
size_t pb_arena_held(const void *m);

#endif
