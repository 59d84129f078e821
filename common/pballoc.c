/* Budgeted protobuf-c allocator; see pballoc.h. Frees do not give budget
 * back: the budget bounds the total a single decode may allocate. */
#include "pballoc.h"

#include <stdlib.h>

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
