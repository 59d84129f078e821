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

#endif
