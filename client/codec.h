/* SPDX-License-Identifier: Apache-2.0 */
/* Between libmsce's public types and the wire (proto/client.proto): requests
 * built from a caller's arguments, and replies turned into the objects
 * msce.h hands out. Shared by the blocking calls (client.c) and the
 * event-loop API (async.c), so both speak exactly the same protocol. */
#ifndef MSCE_CODEC_H
#define MSCE_CODEC_H

#include <stddef.h>
#include <stdint.h>

#include "client.pb-c.h"
#include "msce.h"

/* A request being built: the protobuf message points into the caller's
 * arguments (borrowed) and into arrays owned here (codec_release frees
 * them). */
struct codec_req {
	Msce__ClientRequest req;
	union {
		Msce__PutRequest put;
		Msce__GetRequest get;
		Msce__ScanRequest scan;
		Msce__StatusRequest status;
		Msce__BatchPutRequest batch;
		Msce__WatchRequest watch;
		Msce__ConflictsRequest conflicts;
		Msce__ResolveRequest resolve;
		Msce__BackupRequest backup;
	} u;
	void *mem[4]; /* arrays made for the request */
	Msce__VVEntry *vv;
	Msce__VVEntry **vvp;
};

/* Each fills b (the caller's) and returns 0, or MSCE_EINVAL/ENOMEM with
 * the reason in msg. Release b with codec_release either way. */
int codec_put(struct codec_req *b, const char *collection, const char *key,
	      const struct msce_field *fields, size_t n,
	      const struct msce_put_opts *opts, int is_delete, char *msg,
	      size_t msglen);
int codec_batch(struct codec_req *b, const struct msce_put *puts, size_t n,
		const struct msce_put_opts *opts, char *msg, size_t msglen);
int codec_get(struct codec_req *b, const char *collection, const char *key,
	      const char *const *fields, size_t nfields, char *msg,
	      size_t msglen);
int codec_scan(struct codec_req *b, const char *collection,
	       const struct msce_scan_opts *opts, char *msg, size_t msglen);
void codec_status(struct codec_req *b);
void codec_conflicts(struct codec_req *b, const char *collection,
		     unsigned limit);
void codec_resolve(struct codec_req *b, const char *collection,
		   const char *key, const char *field, const void *value,
		   size_t value_len);
int codec_watch(struct codec_req *b, const char *collection,
		const struct msce_cursor *after, char *msg, size_t msglen);
void codec_backup(struct codec_req *b, const char *path);
void codec_release(struct codec_req *b);

/* Encodes b's request with id into a malloc'd buffer. */
int codec_pack(struct codec_req *b, uint64_t id, uint8_t **buf, size_t *len);
/* Decodes a reply (within the allocation bounds of pballoc.h); NULL if it
 * is no ClientResponse. */
Msce__ClientResponse *codec_unpack(const uint8_t *buf, size_t len);

/* 1 if every one of n reserved pointers is NULL (structs of msce.h). */
int codec_reserved_zero(void *const *r, size_t n);

/* Replies into public objects. The object-making ones take r (freeing it
 * on failure) and return 0, MSCE_ENOMEM or MSCE_EPROTO (a reply without
 * the result its request asks for), with the reason in msg. */
void codec_write_result(const Msce__ClientResponse *r,
			struct msce_write_result *res);
int codec_record(Msce__ClientResponse *r, msce_record **out, char *msg,
		 size_t msglen);
int codec_page(Msce__ClientResponse *r, msce_page **out, char *msg,
	       size_t msglen);
int codec_status_result(Msce__ClientResponse *r, msce_status **out,
			char *msg, size_t msglen);
int codec_conflicts_result(Msce__ClientResponse *r, msce_conflicts **out,
			   char *msg, size_t msglen);
/* A watch event: *fields gets a malloc'd array that ev points into (with
 * ev's strings pointing into ch): free it when done with ev. */
int codec_event(const Msce__Change *ch, struct msce_event *ev,
		struct msce_value **fields);
/* The status reply's node name (for notes' default center). */
const char *codec_status_name(const msce_status *s);

/* Cursor bookkeeping: the position after origin/seq. 1 if the event is
 * new (seq above what cur holds), 0 if cur has seen it already. */
int codec_cursor_advance(struct msce_cursor *cur, uint32_t origin,
			 uint64_t seq);

#endif
