/* SPDX-License-Identifier: Apache-2.0 */
/* A record as protobuf messages (msce.Record / FieldState / FieldVersion):
 * what snapshots carry between nodes and what clients get back. */
#ifndef MSCE_RECORD_PB_H
#define MSCE_RECORD_PB_H

#include "arena.h"
#include "msce.pb-c.h"
#include "record.h"

/* One field version with the field's name. Copies everything; NULL when
 * out of memory. Free with record_pb_fv_free. */
Msce__FieldVersion *record_pb_fv(const struct field_state *fs,
				 const struct fv *f);
void record_pb_fv_free(Msce__FieldVersion *m);

/* The whole record: tombstone, and every field's winner, seen version
 * and losers. Copies everything; NULL when out of memory. Free with
 * record_pb_free. */
Msce__Record *record_pb_new(const char *coll, size_t coll_len, const char *key,
			    size_t key_len, const struct record *r);
void record_pb_free(Msce__Record *m);

/* The same message built in a for packing at once: values point into r
 * (not copied), names are copied with their NUL. Valid while r and a are;
 * NULL when a is full. Nothing to free but a. */
Msce__Record *record_pb_view(struct arena *a, const char *coll,
			     size_t coll_len, const char *key, size_t key_len,
			     const struct record *r);

#endif
