/* SPDX-License-Identifier: Apache-2.0 */
/* The node's store: one LMDB environment holding records, the change log,
 * the version vector, conflicts, tombstones and metadata.
 *
 * Every mutation is one batch in one LMDB write transaction: records, log
 * entries, vector, digest and clock high-water commit together, durably
 * (unless opened with nosync, which only the simulator does). A function
 * that returns 0 has committed. When the map is full the store grows it and
 * retries the batch. When a commit fails the store refuses every later
 * write with MSCE_EREADONLY; reads go on (but see store_failed_why).
 *
 * Thread-safe: writes are serialised inside the store (one LMDB write
 * transaction at a time); reads may run from any thread (MDB_NOTLS). Views handed to callbacks point into LMDB
 * memory and are valid only during the callback. */
#ifndef MSCE_STORE_H
#define MSCE_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "bounds.h"
#include "error.h"
#include "record.h"
#include "seg.h"
#include "version.h"

struct store;

struct store_options {
	uint32_t node_id;    /* 1..65535 */
	const char *cluster; /* cluster name */
	int nosync;          /* simulator only: no fsync at commit */
	size_t map_size;     /* initial map size; 0 = 16 GiB (sparse) */
	size_t max_map_size; /* growth stops here; 0 = 1 TiB */
	/* The node's Ed25519 signing key (seg.h): local writes are signed
	 * with it. NULL only in tests: local writes then go unsigned, and no
	 * other node will take them. */
	const uint8_t *sign_sk;
	/* The node's master key (32 bytes, copied): values are encrypted at
	 * rest under per-record data keys it wraps (docs/PROTOCOL.md,
	 * "Encryption at rest"). NULL only in tests: values in the clear. A
	 * store made or sealed with a key refuses to open without it
	 * (MSCE_EAUTH); a store in the clear given one is sealed in place. */
	const uint8_t *master_key;
};

/* A node's public signing key; a node may have several (rotation). */
struct store_key {
	uint32_t node;
	uint8_t pk[32];
};

/* Opens or creates the store in directory dir (created if missing).
 * Takes the directory's lock: a store another process (or another open)
 * holds is refused with MSCE_EBUSY naming the holder's pid. Refuses a
 * store that belongs to another node id or cluster (MSCE_EMISMATCH).
 * Clears stale reader slots. */
int store_open(const char *dir, const struct store_options *o,
	       struct store **out, struct err *e);
void store_close(struct store *s);
/* The keys changes and snapshots are checked with (copied). Our own
 * node's key is always among them. */
int store_set_keys(struct store *s, const struct store_key *k, size_t n,
		   struct err *e);
/* Signs an encoded status with the node's key (statussig.h); -1 without
 * one (tests). */
int store_status_sign(struct store *s, const uint8_t *status, size_t len,
		      uint8_t sig[SEG_SIG_LEN]);
/* 0 when sig verifies with one of node's keys, -1 when it does not, 1
 * when no key of node is configured. */
int store_status_verify(struct store *s, uint32_t node, const uint8_t *status,
			size_t len, const uint8_t sig[SEG_SIG_LEN]);

/* ---- local writes ------------------------------------------------------ */

enum { STORE_PUT = 0, STORE_DELETE = 1 };
#define STORE_OP_MASK 0xff

/* Flags or'ed into store_write.op. Clients' writes have none but
 * STORE_W_PERSON; the node's own audit entries (server/audit.c) use the
 * others. */
enum {
	/* The node's own write: a system collection ('_') is allowed and
	 * the domain rules do not apply (names and limits still do). It is
	 * never refused alone: if it cannot be written, the whole batch
	 * fails, so what it records never commits without it. */
	STORE_W_SYSTEM = 1 << 8,
	/* The key is made here from the change itself, "<hlc as 20
	 * decimal digits>/<writer>": unique (only this store writes under
	 * its writer, every change has its own hlc) and in time order. The
	 * write's own key is ignored. */
	STORE_W_STAMP = 1 << 9,
	/* Listed by the next STORE_W_LIST write if it committed. */
	STORE_W_LISTED = 1 << 10,
	/* Gets one more field, STORE_LIST_FIELD: a line "collection/key\n"
	 * for each STORE_W_LISTED write since the last STORE_W_LIST write
	 * of the batch that was written, that was not refused, so that it
	 * records exactly what committed, in the same transaction. When
	 * none did, it is skipped (its result MSCE_ENOTFOUND). It is
	 * skipped too when the next STORE_W_LIST write of the batch has the
	 * same fields and the lines of both fit STORE_LIST_MAX bytes: that
	 * one lists them all (group commit of one client's requests makes
	 * one entry, not one per request). */
	STORE_W_LIST = 1 << 11,
	/* A client's put of a case that writes `person`: refused with
	 * MSCE_ENOTFOUND unless this store holds that registration in some
	 * state (even deleted), read in the write's own transaction, so a
	 * registration written before it in the same batch counts and one
	 * after it does not, as if each were sent alone. An admission check
	 * of local writes (allow_unknown_person leaves it off); changes from
	 * other nodes are merged without it. */
	STORE_W_PERSON = 1 << 12,
};
#define STORE_LIST_FIELD "records"
#define STORE_LIST_MAX 60000 /* bytes of lines, under MSCE_MAX_VALUE */

struct store_field_in {
	const char *name;
	size_t name_len;
	const uint8_t *value;
	size_t value_len;
	int has_base;        /* base given by the writer; else the store */
	struct version base; /* uses the version it holds now */
};

struct store_write {
	int op; /* STORE_PUT or STORE_DELETE, | STORE_W_* flags */
	const char *coll;
	size_t coll_len;
	const char *key;
	size_t key_len;
	const struct store_field_in *fields; /* PUT only */
	size_t nfields;
	/* DELETE only: an erasure. Replicated like any delete; every node
	 * that applies it also destroys the record's data key, so that what
	 * it held of the record before (log entries, old pages, backups
	 * under a rotated master key) can no longer be decrypted. */
	int erase;
};

struct store_written {
	struct err err; /* code 0 if this write committed */
	uint32_t origin; /* the writer it went under */
	uint64_t seq;
	uint64_t hlc;
};

/* Validates and applies n local writes in one transaction. Each write gets
 * its own result in out[i]: an invalid write is refused (with a message
 * naming the field and the rule) without failing the others. Returns 0
 * when the batch committed (some writes may still have been refused), or
 * an error when nothing was committed. */
int store_write(struct store *s, const struct store_write *w, size_t n,
		uint64_t wall_ms, struct store_written *out, struct err *e);

/* ---- changes from other nodes ----------------------------------------- */

struct store_prepared;

struct store_blob {
	const uint8_t *data; /* an encoded msce.Change */
	size_t len;
	/* Optional: this change decoded and checked ahead (store_prepare),
	 * which the apply takes instead of decoding it again. NULL: the
	 * apply decodes it. */
	const struct store_prepared *pre;
};

struct store_apply_result {
	size_t consumed;   /* changes applied or skipped as duplicates */
	size_t applied;    /* of which new */
	size_t duplicates; /* of which already held */
};

/* Applies encoded changes in order in one transaction. A change already
 * held (seq <= vector) is skipped. Stops before a change that would leave a
 * gap (MSCE_EGAP) or whose hlc is more than max_skew_ms ahead of wall_ms
 * (MSCE_ECLOCK): the changes before it are committed and res->consumed
 * says how many. A malformed change (MSCE_ECORRUPT) fails the whole batch
 * and nothing changes. res counts only what was committed: all zeros when
 * the batch fails. */
int store_apply(struct store *s, const struct store_blob *c, size_t n,
		uint64_t wall_ms, uint64_t max_skew_ms,
		struct store_apply_result *res, struct err *e);
/* store_apply for changes from the network: c is a list of whole signed
 * segments, g[k] the k-th, its changes next in c. A segment is applied
 * only when its signature verifies with a key of its origin's node and
 * its changes are exactly what it signs; one that does not stops the
 * batch (MSCE_EAUTH) like a gap: what came before is committed. A segment
 * held in part is refused (MSCE_EPROTO): every node holds whole ones.
 * The segments are kept, to be relayed with the changes. */
int store_apply_signed(struct store *s, const struct store_blob *c, size_t n,
		       const struct seg *g, size_t ng, uint64_t wall_ms,
		       uint64_t max_skew_ms, struct store_apply_result *res,
		       struct err *e);

/* Decoding ahead. While the writer applies one batch, the loop thread can
 * do the next batch's share of the work that needs no transaction: decode
 * each change, check it as store_apply does, and hash each signed segment
 * (the signature is still checked at the apply, against the keys of that
 * moment). Nothing is trusted that the apply does not see to be the same
 * bytes: an entry is used only for the blob it was made from, and a
 * change that does not decode or pass is left to the apply, which reports
 * it as it always would.
 *
 * store_prepare works on n blobs and the ng segments that cover them, in
 * store_apply_signed's layout, with no store state (any thread). It sets
 * every b[i].pre; the result owns what they point to and must outlive
 * every apply given those blobs. NULL when out of memory (nothing set). */
struct store_prep;
struct store_prep *store_prepare(struct store_blob *b, size_t n,
				 const struct seg *g, size_t ng);
/* Bytes held by a prepared batch. */
size_t store_prep_bytes(const struct store_prep *p);
void store_prep_free(struct store_prep *p);

/* ---- reads ------------------------------------------------------------- */

struct store_record_view {
	const char *coll;
	size_t coll_len;
	const char *key;
	size_t key_len;
	const struct record *rec; /* fields sorted by name, visible ones */
};

typedef int (*store_record_cb)(void *ctx, const struct store_record_view *r);

/* Calls cb once with the record, or returns MSCE_ENOTFOUND when no field
 * of it is visible, or when it is a registration, case or event without
 * all its required fields (a write that outlived a concurrent delete, or
 * an update whose create has not arrived): such records are never shown,
 * by get or scan. */
int store_get(struct store *s, const char *coll, size_t coll_len,
	      const char *key, size_t key_len, store_record_cb cb, void *ctx,
	      struct err *e);

/* Like store_get, but calls cb with the record's whole state (tombstone,
 * every field, losers) whether or not it is visible; MSCE_ENOTFOUND only
 * when the store holds nothing of it. For admin views and the tests. */
int store_get_state(struct store *s, const char *coll, size_t coll_len,
		    const char *key, size_t key_len, store_record_cb cb,
		    void *ctx, struct err *e);

struct store_scan {
	const char *coll;
	size_t coll_len;
	const char *prefix; /* keys starting with prefix (may be NULL) */
	size_t prefix_len;
	const char *after; /* cursor: keys strictly after this (may be NULL) */
	size_t after_len;
	const char *end; /* keys strictly before this (may be NULL) */
	size_t end_len;
	size_t limit; /* at most this many records (0 = no limit) */
};

/* Calls cb for each record with a visible field, in key order. A non-zero
 * return from cb stops the scan and is returned. */
int store_scan(struct store *s, const struct store_scan *q, store_record_cb cb,
	       void *ctx, struct err *e);

typedef int (*store_log_cb)(void *ctx, uint32_t origin, uint64_t seq,
			    const uint8_t *change, size_t len);

/* Calls cb for logged changes of origin with seq >= from, in order, up to
 * max_count changes and about max_bytes (at least one is given). Returns
 * MSCE_ENOTFOUND if from is at or below the log floor (truncated). */
int store_log_read(struct store *s, uint32_t origin, uint64_t from,
		   size_t max_count, size_t max_bytes, store_log_cb cb,
		   void *ctx, struct err *e);

typedef int (*store_seg_cb)(void *ctx, const struct seg *g);
/* Like store_log_read, in whole signed segments: cb for each change, then
 * seg_cb for the segment they end; stops at a segment end once max_count
 * or max_bytes is reached (at least one segment is given). from must start
 * a segment (MSCE_EPROTO otherwise); MSCE_EAUTH if the log holds unsigned
 * changes there (made without a key: they cannot be relayed). */
int store_log_read_segs(struct store *s, uint32_t origin, uint64_t from,
			size_t max_count, size_t max_bytes, store_log_cb cb,
			store_seg_cb seg_cb, void *ctx, struct err *e);
/* The seals (seg.h) this store holds: the legacy history of origins from
 * before signatures. Returns how many; fills at most max. */
size_t store_seals(struct store *s, struct seg *out, size_t max);
/* Checks seals: 0 if all verify (*fresh: how many we lack), else
 * MSCE_EAUTH or MSCE_EPROTO. */
int store_check_seals(struct store *s, const struct seg *g, size_t n,
		      size_t *fresh, struct err *e);
/* Keeps the seals that verify (and are new); MSCE_EAUTH if one does not. */
int store_add_seals(struct store *s, const struct seg *g, size_t n,
		    struct err *e);
/* Drops logged changes of origin with seq <= upto (down to a segment end,
 * so that what is left can still be relayed); raises the floor. */
int store_log_truncate(struct store *s, uint32_t origin, uint64_t upto,
		       struct err *e);

struct vv_entry {
	uint32_t origin;
	uint64_t seq;   /* highest contiguous seq applied */
	uint64_t hlc;   /* hlc of that change */
	uint64_t floor; /* log holds (floor, seq] */
};

/* Committed vector, sorted by origin. Returns the number of entries; fills
 * at most max. */
size_t store_vv(struct store *s, struct vv_entry *out, size_t max);
/* Committed entry for origin (zeroes if none). */
struct vv_entry store_vv_get(struct store *s, uint32_t origin);
void store_digest(struct store *s, uint8_t out[32]);
/* The vector (as store_vv), digest and hlc high-water of one commit, read
 * together: the writer thread may commit between two separate reads, and a
 * status pairing one commit's vector with another's digest or lag is
 * false. digest and hw may be NULL. */
size_t store_state(struct store *s, struct vv_entry *vv, size_t max,
		   uint8_t digest[32], uint64_t *hw);
uint32_t store_node_id(const struct store *s);
/* Highest hlc committed: every later local write has a higher one. */
uint64_t store_hlc_committed(struct store *s);
/* Commits a clock high-water of at least hlc_now(wall_ms), so that idle
 * nodes still promise a rising hlc (tombstone collection relies on it). */
int store_clock_advance(struct store *s, uint64_t wall_ms, struct err *e);
/* Whether this open created the store, and whether it was opened from a
 * backup copy. */
int store_created(const struct store *s);
int store_restored(const struct store *s);
/* The writer id (origin) local writes go under, and its birth hlc; 0 when
 * the store has none (created or restored, not yet caught up): then
 * store_write refuses with MSCE_EBUSY. */
uint32_t store_writer(struct store *s, uint64_t *born);
/* Commits writer as the store's writer, born at an hlc above floor and
 * close to wall_ms; writer 0 gives the current one up. */
int store_set_writer(struct store *s, uint32_t writer, uint64_t floor,
		     uint64_t wall_ms, struct err *e);
/* Bytes of the store's data in use (pages up to the last one used). */
uint64_t store_size(struct store *s);
/* Returns the sticky error code (0 if the store accepts writes). */
int store_failed(struct store *s);
/* The cause of that failure, as the failed commit gave it. While LMDB
 * refuses reads as well (its meta page write failed) and the store is not
 * reopened yet, the text says so and why the reopen waits, and it returns
 * 1; else 0 (reads go on). */
int store_failed_why(struct store *s, char *buf, size_t len);
/* Write transactions that failed to commit since the store was opened,
 * whoever ran them (writes, changes of peers, log truncation, tombstone
 * collection, snapshots, probes): the commit failed, or the map was full
 * and could not grow. Writes refused while the store is failed are not
 * counted: they began no transaction. */
uint64_t store_commit_failures(struct store *s);
/* After a failed commit: tries a probe commit; on success the store
 * accepts writes again (returns 0), else it stays read-only. After a
 * full disk, only once STORE_ROOM_TO_RESUME more bytes are free, or
 * STORE_FULL_PROBE_MS after the last probe (the room may have come back
 * before it was measured). */
#define STORE_ROOM_TO_RESUME ((uint64_t)1 << 20)
#define STORE_FULL_PROBE_MS 60000
int store_retry(struct store *s, uint64_t wall_ms, struct err *e);

struct store_conflict_view {
	const char *coll;
	size_t coll_len;
	const char *key;
	size_t key_len;
	const struct field_state *field; /* winner and losers */
	const struct fv *loser;
	/* The loser is the record's delete (loser->v its version, no value):
	 * the field's winner was written without seeing the delete and
	 * survived it. */
	int deleted;
};
typedef int (*store_conflict_cb)(void *ctx,
				 const struct store_conflict_view *c);
/* Calls cb for each open conflict (winner, loser) in a stable order. */
int store_conflicts(struct store *s, size_t limit, store_conflict_cb cb,
		    void *ctx, struct err *e);
/* How many store_conflicts would list, without reading them: the entries
 * of the conflict index, which every save keeps exact (the simulator
 * checks it). UINT64_MAX if the store cannot be read. */
uint64_t store_conflict_count(struct store *s);

/* Writes a consistent, compacted copy of the store into directory path,
 * which is created and must not exist. *bytes gets the copy's size. The
 * copy is marked restored and has no writer: a node started on it writes
 * under a new incarnation once it has caught up (reusing seqs of the old
 * writer would split the cluster). It is made in ".NAME.partial" beside
 * path (config_backup_partial) and renamed to path once marked and
 * synced; on failure nothing is left and *bytes is 0. */
int store_backup(struct store *s, const char *path, uint64_t *bytes,
		 struct err *e);

/* ---- encryption at rest ------------------------------------------------- */

/* What the store holds of a record's keys: whether a data key exists
 * (*has_key) and the newest erasure held (*erased, zero if none). For
 * tests and tools; MSCE_ENOTFOUND when the store holds neither. */
int store_crypt_state(struct store *s, const char *coll, size_t coll_len,
		      const char *key, size_t key_len, int *has_key,
		      struct version *erased, struct err *e);
/* Whether values are sealed (the store has a master key). */
int store_encrypted(const struct store *s);
/* Re-wraps every data key under new_key (32 bytes) in one durable
 * transaction; from then on only new_key opens the store. Staged
 * snapshot parts are dropped (a sender sends its snapshot again).
 * *rewrapped: how many data keys. MSCE_EINVAL on a store without a
 * master key. */
int store_rotate_master_key(struct store *s, const uint8_t *new_key,
			    size_t *rewrapped, struct err *e);

/* ---- tombstones and snapshots ----------------------------------------- */

/* Drops tombstones of origin upto[i].origin whose hlc is <= upto[i].hlc
 * (none of other origins), except a tombstone a field survived without
 * having seen it (a delete conflict): it stays until that is resolved. */
int store_gc_tombstones(struct store *s, const struct vv_entry *upto,
			size_t n, size_t *dropped, struct err *e);
size_t store_tombstones(struct store *s);

/* A position in record order: (collection, key) bytewise, then the field
 * name bytewise; an empty field is the start of the record. */
struct store_pos {
	char coll[MSCE_MAX_COLLECTION + 1];
	size_t coll_len;
	char key[MSCE_MAX_KEY + 1];
	size_t key_len;
	char field[MSCE_MAX_FIELD_NAME + 1];
	size_t field_len;
};

struct store_snap;
/* Starts a consistent read of every record and the vector it covers. */
int store_snap_begin(struct store *s, struct store_snap **out, struct err *e);
/* The vector the snapshot covers. */
size_t store_snap_vv(const struct store_snap *sn, struct vv_entry *out,
		     size_t max);
/* The segments (or seals) proving it: one per origin it can prove.
 * Returns how many; fills at most max. */
size_t store_snap_segs(const struct store_snap *sn, struct seg *out,
		       size_t max);
/* Calls cb for the next records (tombstones included) up to about
 * max_bytes; *done is set after the last. A record larger than max_bytes
 * is given in parts (some of its fields each, every part with the
 * tombstone). *end is where the next call starts: everything before it has
 * been given (unset when *done). */
int store_snap_next(struct store_snap *sn, size_t max_bytes,
		    store_record_cb cb, void *ctx, int *done,
		    struct store_pos *end, struct err *e);
void store_snap_end(struct store_snap *sn);

struct store_snap_record {
	const char *coll;
	size_t coll_len;
	const char *key;
	size_t key_len;
	const struct record *rec;
};
/* One chunk of a snapshot as received from node source: records (or
 * record parts) in the sender's order, and the vector it covers. */
struct store_snap_chunk {
	uint32_t source; /* the sending node */
	const struct store_snap_record *recs;
	size_t n;
	const struct vv_entry *cover; /* the sender's vector */
	size_t ncover;
	/* The segments (or seals) ending at each cover entry, checked on
	 * the first chunk; NULL only in tests (a trusted snapshot). */
	const struct seg *cover_segs;
	size_t ncover_segs;
	int first; /* the first chunk: forget what source staged before */
	int done;  /* the last chunk: merge the whole snapshot */
};

/* Stages a chunk; the last one merges the whole snapshot in one
 * transaction: every version the sender held (cover) but no longer has is
 * dropped here (deleted or collected there), every version we held
 * already is ignored (we know its fate), the rest merges by the normal
 * rule; then the vector is raised to cover, and the log floors with it,
 * since those changes are not in our log. Nothing but the staging area
 * changes before the last chunk. */
int store_snap_apply(struct store *s, const struct store_snap_chunk *c,
		     struct err *e);

#endif
