/* SPDX-License-Identifier: Apache-2.0 */
/* A record in memory, its on-disk encoding, and the merge rule.
 *
 * Merge rule (DESIGN.md), per field, as a function of the *set* of writes
 * received, so any order and any duplicates give the same state:
 *   winner = the write with the highest version;
 *   seen   = the highest base version any write declared, and at least the
 *            record's tombstone;
 *   losers = every other write whose version is above seen, i.e. that no
 *            writer declared it had seen: these are the conflicts, each
 *            paired with the winner. Writing a new value based on the winner
 *            raises seen past them, which resolves them.
 * The state (winner, seen, losers) is a join-semilattice: merging a new
 * write only needs the old state, so it is computed incrementally.
 * A delete raises the record tombstone; fields (and losers) at or below it
 * are dropped, and later writes at or below it are ignored.
 *
 * Everything here is pure: no LMDB, no I/O. Pointers in a record point into
 * memory the caller keeps alive (an LMDB page, a decoded change, an arena). */
#ifndef MSCE_RECORD_H
#define MSCE_RECORD_H

#include <stddef.h>
#include <stdint.h>

#include "arena.h"
#include "version.h"

/* Losers kept per field: the highest-versioned ones, which keeps the state
 * a function of the set of writes while bounding it. */
#define RECORD_MAX_LOSERS 8
#define RECORD_FORMAT 1
#define RECORD_HASH_LEN 32

struct fv {
	const uint8_t *value;
	uint32_t value_len;
	struct version v;
	uint64_t seq; /* seq of the change at its origin */
	struct version base;
};

struct field_state {
	const uint8_t *name;
	uint16_t name_len;
	struct fv w;         /* winner */
	struct version seen; /* highest base declared, >= tombstone */
	uint8_t nlosers;
	/* By version, highest first; caller's memory (an arena), NULL when
	 * there are none: most fields have none, and a record's fields are
	 * moved and copied whole. */
	struct fv *losers;
};

struct record {
	struct version tomb;
	uint32_t nfields;
	uint32_t cap;
	struct field_state *fields; /* sorted by name (bytewise) */
	uint8_t hash[RECORD_HASH_LEN]; /* digest contribution as stored */
	/* The newest erasure the store holds of the record (zero if none),
	 * at or below tomb. Kept by the store beside the encoding: neither
	 * the codec, the merge rule nor the hash look at it. */
	struct version erased;
};

/* One write to one field, as carried by a change. */
struct field_write {
	const uint8_t *name;
	uint16_t name_len;
	const uint8_t *value;
	uint32_t value_len;
	struct version base;
};

/* Decodes an on-disk record; pointers point into buf. Arrays come from a.
 * Returns 0 or MSCE_ECORRUPT / MSCE_ENOMEM. */
int record_decode(const uint8_t *buf, size_t len, struct record *r,
		  struct arena *a);
size_t record_encoded_size(const struct record *r);
/* Writes exactly record_encoded_size(r) bytes to out. */
void record_encode(const struct record *r, uint8_t *out);

/* Merges one change's field writes at version v (seq at its origin).
 * Returns 0 or MSCE_ENOMEM. *changed says whether the state changed. */
int record_merge_put(struct record *r, struct version v, uint64_t seq,
		     const struct field_write *w, size_t n, struct arena *a,
		     int *changed);
/* Merges a delete at version v. */
void record_merge_delete(struct record *r, struct version v, int *changed);
/* Merges a whole field state (from a snapshot) by the same rule. */
int record_merge_state(struct record *r, const struct field_state *fs,
		       struct arena *a, int *changed);

/* Finds a field by name, or NULL. */
struct field_state *record_field(const struct record *r, const uint8_t *name,
				 size_t name_len);

/* Hash of the visible state of (collection, key, record): BLAKE2b-256 over
 * a canonical encoding; all zeroes when no field is visible. */
void record_hash(const char *coll, size_t coll_len, const char *key,
		 size_t key_len, const struct record *r,
		 uint8_t out[RECORD_HASH_LEN]);

/* 256-bit little-endian sum arithmetic for the order-independent digest. */
void digest_add(uint8_t d[32], const uint8_t x[32]);
void digest_sub(uint8_t d[32], const uint8_t x[32]);

#endif
