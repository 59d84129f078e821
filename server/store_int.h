/* SPDX-License-Identifier: Apache-2.0 */
/* Internals shared by the store's files (store_*.c; the API is store.h):
 * the store and write-transaction structs, the batch runner, key encoding
 * and helpers. Not for use outside the store.
 *
 * Databases:
 *   meta       "format", "node_id", "cluster", "hw", "digest",
 *              "writer" (BE32 writer id, LE64 birth hlc; absent in stores
 *              made before incarnations: the writer is then the node id),
 *              "restored" (present in a backup copy until it has a writer)
 *   records    coll \0 key                  -> record (record.c)
 *   log        origin(BE32) seq(BE64)       -> encoded msce.Change
 *   vv         origin(BE32)                 -> seq, hlc, floor (LE64 each)
 *   conflicts  coll \0 key \0 field \0 loser version(BE64, BE32) -> ""
 *   tombs      tomb version(BE64, BE32) coll \0 key -> ""  (for GC)
 *   snapin     source(BE32) coll \0 key \0 field -> record part: snapshot
 *              chunks staged until the last one arrives
 *   sigs       origin(BE32) last(BE64)      -> first, last_hlc (LE64),
 *              hash, signature: the signed segments (seg.h) of the log,
 *              and the one ending at each origin's vector entry
 *   deks       coll \0 key                  -> the record's data key,
 *              wrapped by the master key (store_crypt.c)
 *
 * With a master key (store_options.master_key), values are encrypted at
 * rest: records, the log's puts and staged snapshot parts; store_crypt.c
 * has the formats. Keys (collection, record key) stay in the clear: LMDB
 * orders by them. meta "master" then holds a check of the master key, and
 * meta "stage" + source(BE32) the key of that source's staged snapshot. */
#ifndef MSCE_STORE_INT_H
#define MSCE_STORE_INT_H

#include <lmdb.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "arena.h"
#include "bounds.h"
#include "hlc.h"
#include "msce.pb-c.h"
#include "seg.h"
#include "store.h"

/* On-disk format. 2 added the writer (incarnation) and snapshot staging;
 * 3 encryption at rest (data keys, sealed values, erase marks). Formats 1
 * and 2 are upgraded in place when opened (a format 1 writer is its node
 * id; values are sealed when a master key is given); a newer one is
 * refused. */
#define STORE_FORMAT "msce-store/3"
#define STORE_FORMAT_2 "msce-store/2"
#define STORE_FORMAT_1 "msce-store/1"
#define KEY_MAX (MSCE_MAX_COLLECTION + 1 + MSCE_MAX_KEY + 1 + \
		 MSCE_MAX_FIELD_NAME + 1 + 12)
#define RK_MAX (MSCE_MAX_COLLECTION + 1 + MSCE_MAX_KEY)

/* Sizes of the crypto at rest (libsodium's XChaCha20-Poly1305-IETF). */
#define SC_KEY 32
#define SC_KID 8   /* names a data key: which one sealed a value */
#define SC_NONCE 24
#define SC_TAG 16
#define SC_POOL 4096 /* random bytes drawn at a time (nonces, keys) */

/* A record's data key, unwrapped (wiped after use). */
struct dek {
	int have;
	uint8_t key[SC_KEY];
	uint8_t kid[SC_KID];
};

struct store {
	MDB_env *env;
	/* Threads: one writer at a time (wlock); readers may run in another
	 * thread. Growing the map needs no read transaction open anywhere in
	 * the process, so read transactions hold maplock shared and the grow
	 * takes it exclusive. stlock guards the published state below. */
	pthread_mutex_t wlock, stlock;
	pthread_rwlock_t maplock;
	MDB_dbi meta, recs, log, vv, conf, tombs, snapin, sigs, deks;
	/* Encryption at rest: the key data keys are wrapped with (derived
	 * from the master key; NULL: none, values in the clear, for tests),
	 * and a pool of random bytes for nonces and keys (writer only). Both
	 * in sodium_malloc memory. */
	uint8_t *wrap;
	uint8_t *rnd;
	size_t rnd_left;
	/* Our node's signing key (has_sk: local writes are signed), and the
	 * public keys changes are checked with (under stlock). */
	int has_sk;
	uint8_t sk[SEG_SK_LEN], pk[SEG_PK_LEN];
	struct store_key *keys;
	size_t nkeys;
	uint32_t node_id;
	int nosync;
	size_t map_size, max_map;
	int failed;
	int probing; /* a probe commit runs though failed is set (wlock) */
	char failed_msg[256];
	uint64_t failed_room; /* bytes free on the disk when it filled */
	uint64_t full_since;  /* wall ms of the first probe held back */
	uint64_t commit_failures; /* store_commit_failures */
	/* Bytes of pages in use when the environment was last closed for a
	 * reopen: store_size's answer while a failed reopen leaves it
	 * closed (nothing commits meanwhile). */
	uint64_t size_at_close;
	/* Why the last reopen after LMDB's fatal error failed ("": none). */
	char reopen_msg[256];
	/* Committed state, published after each commit. */
	struct hlc clock;
	uint64_t hw;
	/* The origin id local writes go under (0: none yet, writes are
	 * refused) and when it was born. */
	uint32_t writer;
	uint64_t born;
	int created;  /* this open created the store */
	int restored; /* opened from a backup copy */
	int upgraded; /* this open upgraded it from format 1 */
	int lockfd;   /* flock'd lock file: one process per store */
	/* What the environment was opened with, to reopen it after LMDB's
	 * fatal error (st_env_reopen). */
	char *dir, *cluster;
	unsigned env_flags;

	uint8_t digest[32];
	struct vv_entry *vvs;
	size_t nvv;
	struct arena arena; /* per change; reset often */
	uint8_t *scratch;
	size_t scratch_cap;
};

/* A write transaction in progress, with its private copy of the state. */
struct wtxn {
	struct store *s;
	MDB_txn *txn;
	struct vv_entry *vvs;
	size_t nvv, capvv;
	uint8_t digest[32];
	struct hlc clock;
	int set_writer; /* publish writer and born after the commit */
	uint32_t writer;
	uint64_t born;
	/* The segment of our own changes being written (store_write). */
	int seg_open;
	struct seg seg;
	struct seg_hasher seg_h;
	size_t seg_n, seg_bytes;
	/* The data key of the last record looked up (dek_rk): each change
	 * needs it for its record and its log entry. Reset with the
	 * transaction; wiped at its end. */
	int dek_ok;
	size_t dek_rklen;
	uint8_t dek_rk[RK_MAX];
	struct dek dek;
	/* Records are saved in key order (a snapshot merge): try appending
	 * them, so that a store filled this way has full pages. */
	int append_recs;
	/* The key of the snapshot being staged, from source stage_src. */
	int stage_ok;
	uint32_t stage_src;
	uint8_t stage_key[SC_KEY];
};

/* ---- helpers ------------------------------------------------------------ */

static inline void be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}
static inline void be64(uint8_t *p, uint64_t v)
{
	be32(p, (uint32_t)(v >> 32));
	be32(p + 4, (uint32_t)v);
}
static inline uint32_t rd_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	       (uint32_t)p[2] << 8 | p[3];
}
static inline uint64_t rd_be64(const uint8_t *p)
{
	return (uint64_t)rd_be32(p) << 32 | rd_be32(p + 4);
}
static inline uint64_t rd_le64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}
static inline void le64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

/* coll \0 key into buf; returns length. Lengths are checked by callers. */
static inline size_t rec_key(uint8_t *buf, const char *coll, size_t clen,
			     const char *key, size_t klen)
{
	memcpy(buf, coll, clen);
	buf[clen] = 0;
	memcpy(buf + clen + 1, key, klen);
	return clen + 1 + klen;
}

/* Puts a key that usually sorts after every key of dbi as an append, so
 * that LMDB fills each page before starting the next instead of splitting
 * it in half; a key not above the last is put in place. */
static inline int st_put_append(MDB_txn *txn, MDB_dbi dbi, MDB_val *k,
				MDB_val *v)
{
	int rc = mdb_put(txn, dbi, k, v, MDB_APPEND);
	return rc == MDB_KEYEXIST ? mdb_put(txn, dbi, k, v, 0) : rc;
}

/* ---- store_txn.c -------------------------------------------------------- */

typedef int (*batch_fn)(struct wtxn *w, void *arg, struct err *e);

/* Maps an LMDB error to an msce code, sets e, returns the code. A full
 * map is also noted for the runner (it grows the map and retries). */
int st_lmdb_err(struct err *e, int rc, const char *what);
/* Grows s->scratch to at least n bytes. */
int st_ensure_scratch(struct store *s, size_t n);
/* Entry for origin o in the sorted vector v, or NULL. */
struct vv_entry *st_vv_find(struct vv_entry *v, size_t n, uint32_t o);
/* The transaction's entry for origin, added if missing; NULL on ENOMEM. */
struct vv_entry *st_wtxn_vv(struct wtxn *w, uint32_t origin);
/* Runs fn in one write transaction and publishes what it committed;
 * st_run_batch takes s->wlock, st_run_batch_locked needs it held. */
int st_run_batch_locked(struct store *s, batch_fn fn, void *arg, struct err *e);
int st_run_batch(struct store *s, batch_fn fn, void *arg, struct err *e);
/* Counts a write transaction (or a nested one) that failed to commit. */
void st_commit_failed(struct store *s);
/* Doubles the map (up to max_map_size); needs no read transaction open in
 * this process (waits a second for them, then MSCE_EBUSY). */
int st_grow_map(struct store *s, struct err *e);
/* Takes maplock for writing, or gives up after about a second (-1). */
int st_maplock_wr(struct store *s);
/* Bytes free for us on the store's file system (UINT64_MAX: unknown). */
uint64_t st_disk_room(struct store *s);
/* Closes and reopens the environment, and reloads the committed state
 * from disk: after a failed meta page write LMDB refuses every
 * transaction (MDB_PANIC) until then. Called with wlock held. */
int st_env_reopen(struct store *s, struct err *e);
/* Whether LMDB refuses transactions after its fatal error (or the
 * environment is closed since a reopen failed). */
int st_env_fatal(struct store *s);
/* A read transaction; holds s->maplock shared until st_read_end. */
int st_read_begin(struct store *s, MDB_txn **txn, struct err *e);
void st_read_end(struct store *s, MDB_txn *txn);

/* ---- store_life.c ------------------------------------------------------- */

int st_meta_get(MDB_txn *txn, MDB_dbi dbi, const char *k, MDB_val *v);
int st_meta_put(MDB_txn *txn, MDB_dbi dbi, const char *k, const void *d,
		size_t n);

/* ---- store_records.c ---------------------------------------------------- */

struct loser_ref {
	const uint8_t *name;
	uint16_t name_len;
	struct version v;
};

/* Does field f of r outlive a delete it did not see (a delete conflict)? */
int st_survived_delete(const struct record *r, const struct field_state *f);
int st_collect_losers(const struct record *r, struct arena *a,
		      struct loser_ref **out, size_t *n);
/* Change i of a batch, from another node: its bytes decoded into a and
 * checked for structure (store_records.c). MSCE_ECORRUPT (too long, not
 * a change, or a bad one) or MSCE_ENOMEM, with e naming change i. */
int st_decode_change(struct arena *a, const struct store_blob *b, size_t i,
		     Msce__Change **out, struct err *e);
/* Whether g is a segment of 1..SEG_MAX_CHANGES changes within the left
 * that follow it in a batch. */
static inline int st_seg_fits(const struct seg *g, size_t left)
{
	return g->first != 0 && g->last >= g->first &&
	       g->last - g->first < SEG_MAX_CHANGES && g->last - g->first < left;
}
/* The hash a segment signs, over the n changes at b (store_seg.c). */
void st_seg_hash_blobs(const struct store_blob *b, size_t n,
		       uint8_t out[SEG_HASH_LEN]);

/* One change of a batch decoded ahead (store_prep.c): made from the bytes
 * at data, which the apply compares before it takes c or the hash. */
struct store_prepared {
	const uint8_t *data;
	size_t len;
	Msce__Change *c; /* decoded and checked; NULL: the apply does both */
	/* On the first change of a signed segment: how many changes the
	 * segment covers (0: not hashed ahead) and their hash. */
	size_t seg_n;
	uint8_t seg_hash[SEG_HASH_LEN];
};
const struct store_prepared *st_prepared(const struct store_blob *b);

int st_load_record(struct wtxn *w, const uint8_t *rk, size_t rklen,
		   struct record *r, int *exists, struct err *e);
int st_save_record(struct wtxn *w, const char *coll, size_t clen,
		   const char *key, size_t klen, const uint8_t *rk,
		   size_t rklen, struct record *r, struct version old_tomb,
		   const struct loser_ref *old, size_t nold, struct err *e);

/* ---- store_seg.c -------------------------------------------------------- */

/* Adds change (origin, seq, hlc, bytes) of our writer to the segment being
 * written, closing it (signed, stored) when full. */
int st_seg_add(struct wtxn *w, uint32_t origin, uint64_t seq, uint64_t hlc,
	       const uint8_t *raw, size_t len, struct err *e);
/* Closes the open segment, if any: at the end of every local batch. */
int st_seg_close(struct wtxn *w, struct err *e);
int st_seg_put(struct wtxn *w, const struct seg *g, struct err *e);
/* The segment of origin ending at last, from txn (MDB_NOTFOUND if none). */
int st_seg_get(MDB_txn *txn, struct store *s, uint32_t origin, uint64_t last,
	       struct seg *out);
/* 0 when g verifies with a key of its origin's node; else MSCE_EAUTH with
 * why in e. */
int st_seg_check(struct store *s, const struct seg *g, struct err *e);
/* The greatest segment end of origin at or below upto (upto itself when
 * the origin has no segments: unsigned history). */
uint64_t st_seg_floor(MDB_txn *txn, struct store *s, uint32_t origin,
		      uint64_t upto);
/* Drops the segments of origin ending below upto. */
int st_seg_delete_below(struct wtxn *w, uint32_t origin, uint64_t upto);

/* ---- store_crypt.c ------------------------------------------------------ */

/* At open, in the open transaction: checks the master key against the
 * store (MSCE_EAUTH if it is not the store's, or the store is encrypted
 * and none is given). *seal: a store in the clear given a key, to be
 * sealed by st_crypt_seal_store. */
int st_crypt_open(struct store *s, MDB_txn *txn, const uint8_t *master,
		  int *seal, struct err *e);
/* Seals every value of a store kept in the clear, in one batch. */
int st_crypt_seal_store(struct store *s, struct err *e);
void st_crypt_close(struct store *s);
/* Drops the cached data key (and staging key) of w: after an abort. */
void st_crypt_reset(struct wtxn *w);
/* The data key of record rk: d->have = 0 when it has none. */
int st_dek_load(struct store *s, MDB_txn *txn, const uint8_t *rk,
		size_t rklen, struct dek *d, struct err *e);
/* The same in a write transaction, cached; with create, made if none. */
int st_wdek(struct wtxn *w, const uint8_t *rk, size_t rklen, int create,
	    struct dek **out, struct err *e);
/* Destroys record rk's data key (an erasure): whatever it sealed cannot
 * be read any more. */
int st_dek_shred(struct wtxn *w, const uint8_t *rk, size_t rklen,
		 struct err *e);
/* Decodes a stored record value of rk (sealed or not); what r points to
 * is in a. */
int st_rec_decode(struct store *s, MDB_txn *txn, const uint8_t *rk,
		  size_t rklen, const void *val, size_t len, struct record *r,
		  struct arena *a, struct err *e);
/* The same in a write transaction: its data key from w's cache, what r
 * points to in the store's arena. */
int st_wrec_decode(struct wtxn *w, const uint8_t *rk, size_t rklen,
		   const void *val, size_t len, struct record *r,
		   struct err *e);
/* Encodes r for the records database (sealed when the store has a key
 * and r has fields), into s->scratch; out points there. */
int st_rec_encode(struct wtxn *w, const uint8_t *rk, size_t rklen,
		  const struct record *r, MDB_val *out, struct err *e);
/* A staged snapshot part (snapin value under key k), sealed with the
 * staging key of source; into s->scratch. */
int st_stage_encode(struct wtxn *w, uint32_t source, const MDB_val *k,
		    const struct record *r, MDB_val *out, struct err *e);
int st_stage_decode(struct wtxn *w, uint32_t source, const MDB_val *k,
		    const MDB_val *v, struct record *r, struct arena *a,
		    struct err *e);
/* Forgets source's staging key (its staged parts go with it). */
int st_stage_key_drop(struct wtxn *w, uint32_t source);

/* How a change goes into the log. */
enum { LOG_PLAIN, LOG_SEAL, LOG_SHRED };
/* st_log_open's answer for an entry whose values were erased here. */
#define LOG_REDACTED 1
/* Where st_log_open puts what it decrypts, and the data key it used. */
struct logbuf {
	uint8_t *p;
	size_t cap;
	struct dek d;
	size_t rklen; /* d's record; 0: none yet */
	uint8_t rk[RK_MAX];
	/* The erase mark of record mrk, for entries in the clear. */
	struct version mark;
	size_t mrklen; /* 0: none yet */
	uint8_t mrk[RK_MAX];
	/* Decodes the place of entries in the clear; kept between entries
	 * so that one chunk serves them all. */
	struct arena a;
};
/* A log entry v of (origin, seq) read back as the plain encoded change,
 * *out pointing into v or b (valid until the next call). Returns 0,
 * LOG_REDACTED (*out is then a redacted change: see msce.proto; in the
 * clear, a put below its record's erase mark is one too) or an error. */
int st_log_open(struct store *s, MDB_txn *txn, uint32_t origin, uint64_t seq,
		const MDB_val *v, struct logbuf *b, const uint8_t **out,
		size_t *outlen, struct err *e);
void st_logbuf_free(struct logbuf *b);

/* ---- store_log.c -------------------------------------------------------- */

/* Appends change (origin, seq) at hlc of record rk: data is its plain
 * encoding; LOG_SEAL seals it with the record's data key, LOG_SHRED keeps
 * only its place (its values were erased before it came). */
int st_log_put(struct wtxn *w, uint32_t origin, uint64_t seq, uint64_t hlc,
	       const uint8_t *rk, size_t rklen, int mode, const uint8_t *data,
	       size_t len, struct err *e);
/* Deletes log entries of origin with seq <= upto (an LMDB code). */
int st_log_delete_upto(struct wtxn *w, uint32_t origin, uint64_t upto);

#endif
