/* LMDB store.
 *
 * Happy path of a batch: begin a write transaction, copy the committed
 * vector, digest and clock into it, apply each change (read the record,
 * merge, re-hash, write the record, its conflict and tombstone index
 * entries and the log entry), write the vector, digest and clock
 * high-water into the metadata, commit, then publish the new vector,
 * digest and clock in memory.
 *
 * Failure modes: MDB_MAP_FULL aborts the transaction, grows the map and
 * runs the whole batch again from its inputs. Any other error aborts and
 * nothing changes. A failed commit leaves the on-disk state unknown to us,
 * so the store turns read-only (sticky, like an LMDB txn error) until it
 * is reopened.
 *
 * Databases:
 *   meta       "format", "node_id", "cluster", "hw", "digest", "gc"
 *   records    coll \0 key                  -> record (record.c)
 *   log        origin(BE32) seq(BE64)       -> encoded msce.Change
 *   vv         origin(BE32)                 -> seq, hlc, floor (LE64 each)
 *   conflicts  coll \0 key \0 field \0 loser version(BE64, BE32) -> ""
 *   tombs      tomb version(BE64, BE32) coll \0 key -> ""  (for GC) */
#include "store.h"

#include <errno.h>
#include <lmdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "arena.h"
#include "hlc.h"
#include "bounds.h"
#include "fault.h"
#include "msce.pb-c.h"
#include "schema.h"

#define STORE_FORMAT "msce-store/1"
#define KEY_MAX (MSCE_MAX_COLLECTION + 1 + MSCE_MAX_KEY + 1 + \
		 MSCE_MAX_FIELD_NAME + 1 + 12)

struct store {
	MDB_env *env;
	/* Threads: one writer at a time (wlock); readers may run in another
	 * thread. Growing the map needs no read transaction open anywhere in
	 * the process, so read transactions hold maplock shared and the grow
	 * takes it exclusive. stlock guards the published state below. */
	pthread_mutex_t wlock, stlock;
	pthread_rwlock_t maplock;
	MDB_dbi meta, recs, log, vv, conf, tombs;
	uint32_t node_id;
	int nosync;
	size_t map_size, max_map;
	int failed;
	char failed_msg[256];
	/* Committed state, published after each commit. */
	struct hlc clock;
	uint64_t hw;
	/* Tombstones up to this hlc were collected: every node then held
	 * every change up to it, so anything at or below it that arrives in
	 * a (stale) snapshot is already reflected here and is ignored. */
	uint64_t gc_upto;
	int created;  /* this open created the store */
	int restored; /* opened from a backup copy, not yet confirmed */
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
};

/* ---- helpers ------------------------------------------------------------ */

static int lmdb_err(struct err *e, int rc, const char *what)
{
	int code;
	switch (rc) {
	case MDB_MAP_FULL:
	case ENOSPC:
		code = MSCE_EFULL;
		break;
	case ENOMEM:
		code = MSCE_ENOMEM;
		break;
	case MDB_CORRUPTED:
	case MDB_PAGE_NOTFOUND:
	case MDB_INVALID:
		code = MSCE_ECORRUPT;
		break;
	default:
		code = MSCE_EIO;
	}
	return err_set(e, code, "%s: %s", what, mdb_strerror(rc));
}

static void be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}
static void be64(uint8_t *p, uint64_t v)
{
	be32(p, (uint32_t)(v >> 32));
	be32(p + 4, (uint32_t)v);
}
static uint32_t rd_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	       (uint32_t)p[2] << 8 | p[3];
}
static uint64_t rd_be64(const uint8_t *p)
{
	return (uint64_t)rd_be32(p) << 32 | rd_be32(p + 4);
}
static uint64_t rd_le64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}
static void le64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

/* coll \0 key into buf; returns length. Lengths are checked by callers. */
static size_t rec_key(uint8_t *buf, const char *coll, size_t clen,
		      const char *key, size_t klen)
{
	memcpy(buf, coll, clen);
	buf[clen] = 0;
	memcpy(buf + clen + 1, key, klen);
	return clen + 1 + klen;
}

static int ensure_scratch(struct store *s, size_t n)
{
	if (n <= s->scratch_cap && !fault_hit(FAULT_ALLOC))
		return 0;
	if (n <= s->scratch_cap)
		return MSCE_ENOMEM;
	size_t cap = s->scratch_cap ? s->scratch_cap : 4096;
	while (cap < n)
		cap *= 2;
	uint8_t *p = realloc(s->scratch, cap);
	if (p == NULL)
		return MSCE_ENOMEM;
	s->scratch = p;
	s->scratch_cap = cap;
	return 0;
}

static struct vv_entry *vv_find(struct vv_entry *v, size_t n, uint32_t o)
{
	size_t lo = 0, hi = n;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (v[mid].origin == o)
			return &v[mid];
		if (v[mid].origin < o)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

static struct vv_entry *wtxn_vv(struct wtxn *w, uint32_t origin)
{
	struct vv_entry *e = vv_find(w->vvs, w->nvv, origin);
	size_t i;

	if (e != NULL)
		return e;
	if (w->nvv == w->capvv) {
		size_t cap = w->capvv ? w->capvv * 2 : 16;
		struct vv_entry *p = realloc(w->vvs, cap * sizeof *p);
		if (p == NULL)
			return NULL;
		w->vvs = p;
		w->capvv = cap;
	}
	for (i = w->nvv; i > 0 && w->vvs[i - 1].origin > origin; i--)
		w->vvs[i] = w->vvs[i - 1];
	memset(&w->vvs[i], 0, sizeof w->vvs[i]);
	w->vvs[i].origin = origin;
	w->nvv++;
	return &w->vvs[i];
}

/* ---- open / close -------------------------------------------------------- */

static int meta_get(MDB_txn *txn, MDB_dbi dbi, const char *k, MDB_val *v)
{
	MDB_val key = {strlen(k), (void *)k};
	return mdb_get(txn, dbi, &key, v);
}

static int meta_put(MDB_txn *txn, MDB_dbi dbi, const char *k, const void *d,
		    size_t n)
{
	MDB_val key = {strlen(k), (void *)k};
	MDB_val val = {n, (void *)d};
	return mdb_put(txn, dbi, &key, &val, 0);
}

static int load_state(struct store *s, MDB_txn *txn, const char *cluster,
		      struct err *e)
{
	MDB_val v;
	MDB_cursor *cur;
	MDB_val k;
	int rc;

	rc = meta_get(txn, s->meta, "format", &v);
	if (rc == MDB_NOTFOUND) {
		uint8_t id[4];
		uint8_t zero[32] = {0};
		be32(id, s->node_id);
		if ((rc = meta_put(txn, s->meta, "format", STORE_FORMAT,
				   strlen(STORE_FORMAT))) ||
		    (rc = meta_put(txn, s->meta, "node_id", id, 4)) ||
		    (rc = meta_put(txn, s->meta, "cluster", cluster,
				   strlen(cluster))) ||
		    (rc = meta_put(txn, s->meta, "hw", zero, 8)) ||
		    (rc = meta_put(txn, s->meta, "digest", zero, 32)))
			return lmdb_err(e, rc, "initialise store metadata");
		s->created = 1;
		return 0;
	}
	if (rc)
		return lmdb_err(e, rc, "read store format");
	if (v.mv_size != strlen(STORE_FORMAT) ||
	    memcmp(v.mv_data, STORE_FORMAT, v.mv_size) != 0)
		return err_set(e, MSCE_EVERSION,
			       "store format \"%.*s\" is not \"%s\"",
			       (int)(v.mv_size > 64 ? 64 : v.mv_size),
			       (char *)v.mv_data, STORE_FORMAT);
	if (meta_get(txn, s->meta, "node_id", &v) || v.mv_size != 4)
		return err_set(e, MSCE_ECORRUPT, "store has no node id");
	if (rd_be32(v.mv_data) != s->node_id)
		return err_set(e, MSCE_EMISMATCH,
			       "store belongs to node %u, not node %u",
			       rd_be32(v.mv_data), s->node_id);
	if (meta_get(txn, s->meta, "cluster", &v))
		return err_set(e, MSCE_ECORRUPT, "store has no cluster name");
	if (v.mv_size != strlen(cluster) ||
	    memcmp(v.mv_data, cluster, v.mv_size) != 0)
		return err_set(e, MSCE_EMISMATCH,
			       "store belongs to cluster \"%.*s\", not \"%s\"",
			       (int)(v.mv_size > 64 ? 64 : v.mv_size),
			       (char *)v.mv_data, cluster);
	if (meta_get(txn, s->meta, "hw", &v) || v.mv_size != 8)
		return err_set(e, MSCE_ECORRUPT, "store has no clock");
	s->hw = rd_le64(v.mv_data);
	hlc_init(&s->clock, s->hw);
	if (meta_get(txn, s->meta, "digest", &v) || v.mv_size != 32)
		return err_set(e, MSCE_ECORRUPT, "store has no digest");
	memcpy(s->digest, v.mv_data, 32);
	if (meta_get(txn, s->meta, "gc", &v) == 0 && v.mv_size == 8)
		s->gc_upto = rd_le64(v.mv_data);
	s->restored = meta_get(txn, s->meta, "restored", &v) == 0;

	if ((rc = mdb_cursor_open(txn, s->vv, &cur)))
		return lmdb_err(e, rc, "read version vector");
	while ((rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) == 0) {
		struct vv_entry *p;
		if (k.mv_size != 4 || v.mv_size != 24) {
			mdb_cursor_close(cur);
			return err_set(e, MSCE_ECORRUPT, "bad vector entry");
		}
		p = realloc(s->vvs, (s->nvv + 1) * sizeof *p);
		if (p == NULL) {
			mdb_cursor_close(cur);
			return err_set(e, MSCE_ENOMEM, "read version vector");
		}
		s->vvs = p;
		p[s->nvv].origin = rd_be32(k.mv_data);
		p[s->nvv].seq = rd_le64(v.mv_data);
		p[s->nvv].hlc = rd_le64((uint8_t *)v.mv_data + 8);
		p[s->nvv].floor = rd_le64((uint8_t *)v.mv_data + 16);
		s->nvv++;
	}
	mdb_cursor_close(cur);
	return 0;
}

int store_open(const char *dir, const struct store_options *o,
	       struct store **out, struct err *e)
{
	struct store *s;
	MDB_txn *txn = NULL;
	int rc, dead = 0;
	unsigned flags = MDB_NOTLS;

	*out = NULL;
	if (o->node_id == 0 || o->node_id > 65535)
		return err_set(e, MSCE_EINVAL, "node id %u not in 1..65535",
			       o->node_id);
	if (o->cluster == NULL || o->cluster[0] == '\0' ||
	    strlen(o->cluster) > 63)
		return err_set(e, MSCE_EINVAL, "cluster name empty or too long");
	if (mkdir(dir, 0750) != 0 && errno != EEXIST)
		return err_set(e, MSCE_EIO, "create data dir %s: %s", dir,
			       strerror(errno));
	s = calloc(1, sizeof *s);
	if (s == NULL)
		return err_set(e, MSCE_ENOMEM, "open store");
	pthread_mutex_init(&s->wlock, NULL);
	pthread_mutex_init(&s->stlock, NULL);
	pthread_rwlock_init(&s->maplock, NULL);
	s->node_id = o->node_id;
	s->nosync = o->nosync;
	s->map_size = o->map_size ? o->map_size : (size_t)16 << 30;
	s->max_map = o->max_map_size ? o->max_map_size : (size_t)1 << 40;
	if (s->map_size > s->max_map)
		s->map_size = s->max_map;
	arena_init(&s->arena, 16u << 20);
	if (o->nosync)
		flags |= MDB_NOSYNC;
#ifdef MSCE_BROKEN_FSYNC
	flags |= MDB_NOSYNC; /* mutant: tests/power must catch it */
#endif

	if ((rc = mdb_env_create(&s->env)) ||
	    (rc = mdb_env_set_maxdbs(s->env, 8)) ||
	    (rc = mdb_env_set_maxreaders(s->env, 256)) ||
	    (rc = mdb_env_set_mapsize(s->env, s->map_size))) {
		lmdb_err(e, rc, "create LMDB environment");
		goto fail;
	}
	if ((rc = mdb_env_open(s->env, dir, flags, 0640))) {
		lmdb_err(e, rc, "open LMDB environment");
		err_wrap(e, "%s", dir);
		goto fail;
	}
	/* The map may have been grown by an earlier run. */
	{
		MDB_envinfo info;
		mdb_env_info(s->env, &info);
		if (info.me_mapsize > s->map_size)
			s->map_size = info.me_mapsize;
	}
	/* Slots of readers that died (kill -9) would pin old pages forever. */
	mdb_reader_check(s->env, &dead);

	if ((rc = mdb_txn_begin(s->env, NULL, 0, &txn))) {
		lmdb_err(e, rc, "begin open transaction");
		goto fail;
	}
	if ((rc = mdb_dbi_open(txn, "meta", MDB_CREATE, &s->meta)) ||
	    (rc = mdb_dbi_open(txn, "records", MDB_CREATE, &s->recs)) ||
	    (rc = mdb_dbi_open(txn, "log", MDB_CREATE, &s->log)) ||
	    (rc = mdb_dbi_open(txn, "vv", MDB_CREATE, &s->vv)) ||
	    (rc = mdb_dbi_open(txn, "conflicts", MDB_CREATE, &s->conf)) ||
	    (rc = mdb_dbi_open(txn, "tombs", MDB_CREATE, &s->tombs))) {
		lmdb_err(e, rc, "open databases");
		goto fail;
	}
	if (load_state(s, txn, o->cluster, e))
		goto fail;
	if ((rc = mdb_txn_commit(txn))) {
		txn = NULL;
		lmdb_err(e, rc, "commit open transaction");
		goto fail;
	}
	*out = s;
	return 0;
fail:
	if (txn != NULL)
		mdb_txn_abort(txn);
	err_wrap(e, "open store %s", dir);
	store_close(s);
	return e ? e->code : MSCE_EIO;
}

void store_close(struct store *s)
{
	if (s == NULL)
		return;
	if (s->env != NULL)
		mdb_env_close(s->env);
	arena_free(&s->arena);
	free(s->scratch);
	free(s->vvs);
	pthread_mutex_destroy(&s->wlock);
	pthread_mutex_destroy(&s->stlock);
	pthread_rwlock_destroy(&s->maplock);
	free(s);
}

/* ---- write transactions ------------------------------------------------- */

typedef int (*batch_fn)(struct wtxn *w, void *arg, struct err *e);

static int grow_map(struct store *s, struct err *e)
{
	size_t next = s->map_size * 2;
	int rc;

	if (s->map_size >= s->max_map)
		return err_set(e, MSCE_EFULL,
			       "store map is full at its limit of %zu MiB",
			       s->max_map >> 20);
	if (fault_hit(FAULT_FULL))
		return err_set(e, MSCE_EFULL,
			       "store map is full and the disk has no room to "
			       "grow it (No space left on device)");
	if (next > s->max_map)
		next = s->max_map;
	/* A long read (a snapshot being streamed) may hold the lock; waiting
	 * for it without bound could deadlock with its own thread, so give up
	 * after a second and let the batch fail with a clear error. */
	for (int i = 0; pthread_rwlock_trywrlock(&s->maplock) != 0; i++) {
		struct timespec ts = {0, 10 * 1000 * 1000};
		if (i == 100)
			return err_set(e, MSCE_EBUSY,
				       "store map full and cannot grow while a "
				       "snapshot is being read; retry");
		nanosleep(&ts, NULL);
	}
	rc = mdb_env_set_mapsize(s->env, next);
	pthread_rwlock_unlock(&s->maplock);
	if (rc)
		return lmdb_err(e, rc, "grow store map");
	s->map_size = next;
	return 0;
}

static int persist_state(struct wtxn *w)
{
	struct store *s = w->s;
	uint8_t buf[24], k[4];
	int rc;

	for (size_t i = 0; i < w->nvv; i++) {
		struct vv_entry *n = &w->vvs[i];
		struct vv_entry *o = vv_find(s->vvs, s->nvv, n->origin);
		if (o != NULL && o->seq == n->seq && o->floor == n->floor &&
		    o->hlc == n->hlc)
			continue;
		be32(k, n->origin);
		le64(buf, n->seq);
		le64(buf + 8, n->hlc);
		le64(buf + 16, n->floor);
		MDB_val key = {4, k}, val = {24, buf};
		if ((rc = mdb_put(w->txn, s->vv, &key, &val, 0)))
			return rc;
	}
	if (memcmp(w->digest, s->digest, 32) != 0 &&
	    (rc = meta_put(w->txn, s->meta, "digest", w->digest, 32)))
		return rc;
	if (w->clock.last > s->hw) {
		le64(buf, w->clock.last);
		if ((rc = meta_put(w->txn, s->meta, "hw", buf, 8)))
			return rc;
	}
	return 0;
}

/* Runs fn in a write transaction, retrying after growing a full map. */
static int run_batch_locked(struct store *s, batch_fn fn, void *arg,
			    struct err *e)
{
	struct wtxn w;
	int rc, code;

	if (s->failed)
		return err_set(e, MSCE_EREADONLY,
			       "store refuses writes since a commit failed "
			       "(%s); reads go on, and writes resume once a "
			       "probe commit succeeds",
			       s->failed_msg);
	memset(&w, 0, sizeof w);
	w.s = s;
	for (;;) {
		w.capvv = s->nvv + 8;
		w.vvs = fault_hit(FAULT_ALLOC)
				? NULL
				: malloc(w.capvv * sizeof *w.vvs);
		if (w.vvs == NULL)
			return err_set(e, MSCE_ENOMEM, "begin batch");
		if (s->nvv)
			memcpy(w.vvs, s->vvs, s->nvv * sizeof *w.vvs);
		w.nvv = s->nvv;
		memcpy(w.digest, s->digest, 32);
		w.clock = s->clock;
		if ((rc = mdb_txn_begin(s->env, NULL, 0, &w.txn))) {
			free(w.vvs);
			if (rc == MDB_MAP_RESIZED) {
				/* Another process grew it; adopt its size. */
				mdb_env_set_mapsize(s->env, 0);
				continue;
			}
			return lmdb_err(e, rc, "begin write transaction");
		}
		code = fn(&w, arg, e);
		arena_reset(&s->arena);
		if (code == 0 && (rc = persist_state(&w)))
			code = lmdb_err(e, rc, "write store state");
		if (code != 0) {
			mdb_txn_abort(w.txn);
			free(w.vvs);
			if (code == MSCE_EFULL && e != NULL &&
			    strstr(e->msg, mdb_strerror(MDB_MAP_FULL)) &&
			    grow_map(s, e) == 0)
				continue;
			return code;
		}
		if (fault_hit(FAULT_FULL)) {
			/* As if the pages did not fit and growing failed. */
			mdb_txn_abort(w.txn);
			free(w.vvs);
			return err_set(e, MSCE_EFULL,
				       "store map is full and the disk has no "
				       "room to grow it (No space left on "
				       "device)");
		}
		if (fault_hit(FAULT_COMMIT)) {
			mdb_txn_abort(w.txn);
			rc = EIO;
		} else {
			rc = mdb_txn_commit(w.txn);
		}
		if (rc == MDB_MAP_FULL) {
			free(w.vvs);
			if (grow_map(s, e) == 0)
				continue;
			return e ? e->code : MSCE_EFULL;
		}
		if (rc) {
			free(w.vvs);
			lmdb_err(e, rc, "commit");
			pthread_mutex_lock(&s->stlock);
			s->failed = e ? e->code : MSCE_EIO;
			pthread_mutex_unlock(&s->stlock);
			snprintf(s->failed_msg, sizeof s->failed_msg, "%s",
				 mdb_strerror(rc));
			return s->failed;
		}
		pthread_mutex_lock(&s->stlock);
		free(s->vvs);
		s->vvs = w.vvs;
		s->nvv = w.nvv;
		memcpy(s->digest, w.digest, 32);
		s->clock = w.clock;
		if (w.clock.last > s->hw)
			s->hw = w.clock.last;
		pthread_mutex_unlock(&s->stlock);
		return 0;
	}
}

static int run_batch(struct store *s, batch_fn fn, void *arg, struct err *e)
{
	int rc;
	pthread_mutex_lock(&s->wlock);
	rc = run_batch_locked(s, fn, arg, e);
	pthread_mutex_unlock(&s->wlock);
	return rc;
}

/* ---- applying one change -------------------------------------------------- */

struct loser_ref {
	const uint8_t *name;
	uint16_t name_len;
	struct version v;
};

static int collect_losers(const struct record *r, struct arena *a,
			  struct loser_ref **out, size_t *n)
{
	size_t count = 0, k = 0;
	for (uint32_t i = 0; i < r->nfields; i++)
		count += r->fields[i].nlosers;
	*n = count;
	*out = NULL;
	if (count == 0)
		return 0;
	*out = arena_alloc(a, count * sizeof **out);
	if (*out == NULL)
		return MSCE_ENOMEM;
	for (uint32_t i = 0; i < r->nfields; i++)
		for (int j = 0; j < r->fields[i].nlosers; j++) {
			(*out)[k].name = r->fields[i].name;
			(*out)[k].name_len = r->fields[i].name_len;
			(*out)[k].v = r->fields[i].losers[j].v;
			k++;
		}
	return 0;
}

static int has_loser(const struct loser_ref *l, size_t n,
		     const struct loser_ref *x)
{
	for (size_t i = 0; i < n; i++)
		if (l[i].name_len == x->name_len &&
		    version_cmp(l[i].v, x->v) == 0 &&
		    memcmp(l[i].name, x->name, x->name_len) == 0)
			return 1;
	return 0;
}

static int conflict_index(struct wtxn *w, const uint8_t *rk, size_t rklen,
			  const struct loser_ref *x, int add)
{
	uint8_t k[KEY_MAX];
	size_t n = rklen;
	MDB_val key, val = {0, (void *)""};
	int rc;

	memcpy(k, rk, rklen);
	k[n++] = 0;
	memcpy(k + n, x->name, x->name_len);
	n += x->name_len;
	k[n++] = 0;
	be64(k + n, x->v.hlc);
	be32(k + n + 8, x->v.origin);
	n += 12;
	key.mv_size = n;
	key.mv_data = k;
	if (add)
		return mdb_put(w->txn, w->s->conf, &key, &val, 0);
	rc = mdb_del(w->txn, w->s->conf, &key, NULL);
	return rc == MDB_NOTFOUND ? 0 : rc;
}

static int tomb_index(struct wtxn *w, const uint8_t *rk, size_t rklen,
		      struct version t, int add)
{
	uint8_t k[12 + MSCE_MAX_COLLECTION + 1 + MSCE_MAX_KEY];
	MDB_val key = {12 + rklen, k}, val = {0, (void *)""};
	int rc;

	be64(k, t.hlc);
	be32(k + 8, t.origin);
	memcpy(k + 12, rk, rklen);
	if (add)
		return mdb_put(w->txn, w->s->tombs, &key, &val, 0);
	rc = mdb_del(w->txn, w->s->tombs, &key, NULL);
	return rc == MDB_NOTFOUND ? 0 : rc;
}

/* Loads a record for update; an absent record is empty. */
static int load_record(struct wtxn *w, const uint8_t *rk, size_t rklen,
		       struct record *r, int *exists, struct err *e)
{
	MDB_val key = {rklen, (void *)rk}, val;
	int rc = mdb_get(w->txn, w->s->recs, &key, &val);

	*exists = 0;
	if (rc == MDB_NOTFOUND) {
		memset(r, 0, sizeof *r);
		return 0;
	}
	if (rc)
		return lmdb_err(e, rc, "read record");
	*exists = 1;
	rc = record_decode(val.mv_data, val.mv_size, r, &w->s->arena);
	if (rc)
		return err_set(e, rc, "record %.*s is %s", (int)rklen, rk,
			       rc == MSCE_ENOMEM ? "too big to load"
						 : "corrupt on disk");
	return 0;
}

/* Writes back a merged record with its hash, digest and index updates.
 * old_tomb and old_losers describe the record as it was loaded. */
static int save_record(struct wtxn *w, const char *coll, size_t clen,
		       const char *key, size_t klen, const uint8_t *rk,
		       size_t rklen, struct record *r, struct version old_tomb,
		       const struct loser_ref *old, size_t nold, struct err *e)
{
	struct store *s = w->s;
	struct loser_ref *now;
	size_t nnow;
	MDB_val k = {rklen, (void *)rk}, v;
	int rc;

	digest_sub(w->digest, r->hash);
	record_hash(coll, clen, key, klen, r, r->hash);
	digest_add(w->digest, r->hash);

	if (collect_losers(r, &s->arena, &now, &nnow))
		return err_set(e, MSCE_ENOMEM, "index conflicts");
	for (size_t i = 0; i < nold; i++)
		if (!has_loser(now, nnow, &old[i]) &&
		    (rc = conflict_index(w, rk, rklen, &old[i], 0)))
			return lmdb_err(e, rc, "index conflicts");
	for (size_t i = 0; i < nnow; i++)
		if (!has_loser(old, nold, &now[i]) &&
		    (rc = conflict_index(w, rk, rklen, &now[i], 1)))
			return lmdb_err(e, rc, "index conflicts");
	if (version_cmp(old_tomb, r->tomb) != 0) {
		if (!version_is_zero(old_tomb) &&
		    (rc = tomb_index(w, rk, rklen, old_tomb, 0)))
			return lmdb_err(e, rc, "index tombstones");
		if (!version_is_zero(r->tomb) &&
		    (rc = tomb_index(w, rk, rklen, r->tomb, 1)))
			return lmdb_err(e, rc, "index tombstones");
	}
	if (r->nfields == 0 && version_is_zero(r->tomb)) {
		rc = mdb_del(w->txn, s->recs, &k, NULL);
		if (rc && rc != MDB_NOTFOUND)
			return lmdb_err(e, rc, "delete record");
		return 0;
	}
	/* Encode into scratch first: the merged record points into the old
	 * value's page, which the put may overwrite. */
	v.mv_size = record_encoded_size(r);
	if (ensure_scratch(s, v.mv_size))
		return err_set(e, MSCE_ENOMEM, "encode record");
	record_encode(r, s->scratch);
	v.mv_data = s->scratch;
	if ((rc = mdb_put(w->txn, s->recs, &k, &v, 0)))
		return lmdb_err(e, rc, "write record");
	return 0;
}

static int log_put(struct wtxn *w, uint32_t origin, uint64_t seq,
		   const uint8_t *data, size_t len, struct err *e)
{
	uint8_t k[12];
	MDB_val key = {12, k}, val = {len, (void *)data};
	int rc;

	be32(k, origin);
	be64(k + 4, seq);
	if ((rc = mdb_put(w->txn, w->s->log, &key, &val, 0)))
		return lmdb_err(e, rc, "append to log");
	return 0;
}

/* Structural checks on a change from anywhere: names, lengths, counts.
 * Domain rules were checked at the origin and are not re-checked, so that
 * a rule change between versions cannot split the cluster. */
static int check_change(const Msce__Change *c, struct err *e)
{
	if (c->origin == 0 || c->origin > 65535)
		return err_set(e, MSCE_ECORRUPT, "origin %u not in 1..65535",
			       c->origin);
	if (c->seq == 0 || c->hlc == 0)
		return err_set(e, MSCE_ECORRUPT, "change without seq or hlc");
	if (c->op != MSCE__CHANGE__OP__PUT && c->op != MSCE__CHANGE__OP__DELETE)
		return err_set(e, MSCE_ECORRUPT, "unknown op %d", (int)c->op);
	if (schema_check_collection(c->collection, strlen(c->collection), 1,
				    e) ||
	    schema_check_key(c->key, strlen(c->key), e))
		return err_set(e, MSCE_ECORRUPT, "%s", e ? e->msg : "bad name");
	if (c->n_fields > MSCE_MAX_FIELDS)
		return err_set(e, MSCE_ECORRUPT, "%zu fields, limit %d",
			       c->n_fields, MSCE_MAX_FIELDS);
	if (c->op == MSCE__CHANGE__OP__PUT && c->n_fields == 0)
		return err_set(e, MSCE_ECORRUPT, "put without fields");
	for (size_t i = 0; i < c->n_fields; i++) {
		const Msce__FieldWrite *f = c->fields[i];
		struct schema_field sf = {f->name, strlen(f->name),
					  f->value.data, f->value.len};
		if (schema_check_field(&sf, e))
			return err_set(e, MSCE_ECORRUPT, "%s",
				       e ? e->msg : "bad field");
		for (size_t j = 0; j < i; j++)
			if (strcmp(c->fields[j]->name, f->name) == 0)
				return err_set(e, MSCE_ECORRUPT,
					       "field \"%s\" written twice",
					       f->name);
	}
	return 0;
}

/* Merges a checked change into its record and logs it. raw is the change
 * encoded (what goes into the log). */
static int merge_change(struct wtxn *w, const Msce__Change *c,
			const uint8_t *raw, size_t rawlen, struct err *e)
{
	struct store *s = w->s;
	size_t clen = strlen(c->collection), klen = strlen(c->key);
	uint8_t rk[MSCE_MAX_COLLECTION + 1 + MSCE_MAX_KEY];
	size_t rklen = rec_key(rk, c->collection, clen, c->key, klen);
	struct version v = {c->hlc, c->origin};
	struct record r;
	struct loser_ref *old;
	size_t nold;
	struct version old_tomb;
	int exists, changed = 0, rc;

	if ((rc = load_record(w, rk, rklen, &r, &exists, e)))
		return rc;
	old_tomb = r.tomb;
	if (collect_losers(&r, &s->arena, &old, &nold))
		return err_set(e, MSCE_ENOMEM, "index conflicts");
	if (c->op == MSCE__CHANGE__OP__DELETE) {
		record_merge_delete(&r, v, &changed);
	} else {
		struct field_write *fw =
			arena_alloc(&s->arena, c->n_fields * sizeof *fw);
		if (fw == NULL)
			return err_set(e, MSCE_ENOMEM, "merge change");
		for (size_t i = 0; i < c->n_fields; i++) {
			fw[i].name = (const uint8_t *)c->fields[i]->name;
			fw[i].name_len = (uint16_t)strlen(c->fields[i]->name);
			fw[i].value = c->fields[i]->value.data;
			fw[i].value_len = (uint32_t)c->fields[i]->value.len;
			fw[i].base.hlc = c->fields[i]->base_hlc;
			fw[i].base.origin = c->fields[i]->base_origin;
		}
		if (record_merge_put(&r, v, c->seq, fw, c->n_fields,
				     &s->arena, &changed))
			return err_set(e, MSCE_ENOMEM, "merge change");
	}
	if (changed && (rc = save_record(w, c->collection, clen, c->key, klen,
					 rk, rklen, &r, old_tomb, old, nold,
					 e)))
		return rc;
	return log_put(w, c->origin, c->seq, raw, rawlen, e);
}

/* ---- store_apply ---------------------------------------------------------- */

struct apply_args {
	const struct store_blob *c;
	size_t n;
	uint64_t wall_ms, max_skew_ms;
	struct store_apply_result *res;
	int stop_code; /* EGAP / ECLOCK: commit the prefix, then report */
	struct err stop_err;
};

static int apply_batch(struct wtxn *w, void *arg, struct err *e)
{
	struct apply_args *a = arg;
	struct store *s = w->s;

	memset(a->res, 0, sizeof *a->res);
	a->stop_code = 0;
	for (size_t i = 0; i < a->n; i++) {
		Msce__Change *c;
		struct vv_entry *vv;
		int rc;

		arena_reset(&s->arena);
		if (a->c[i].len > MSCE_MAX_CHANGE)
			return err_set(e, MSCE_ECORRUPT,
				       "change %zu: %zu bytes, limit %u", i,
				       a->c[i].len, MSCE_MAX_CHANGE);
		c = msce__change__unpack(arena_pb_allocator(&s->arena),
					 a->c[i].len, a->c[i].data);
		if (c == NULL && s->arena.nomem)
			return err_set(e, MSCE_ENOMEM,
				       "change %zu: out of memory decoding it",
				       i);
		if (c == NULL)
			return err_set(e, MSCE_ECORRUPT,
				       "change %zu: not a valid msce.Change", i);
		if ((rc = check_change(c, e)))
			return err_wrap(e, "change %zu", i);
		vv = wtxn_vv(w, c->origin);
		if (vv == NULL)
			return err_set(e, MSCE_ENOMEM, "grow vector");
		if (c->seq <= vv->seq) {
			a->res->consumed++;
			a->res->duplicates++;
			continue;
		}
		if (c->seq != vv->seq + 1) {
			a->stop_code = err_set(
				&a->stop_err, MSCE_EGAP,
				"change %u/%llu arrived after %u/%llu",
				c->origin, (unsigned long long)c->seq,
				c->origin, (unsigned long long)vv->seq);
			break;
		}
		if (hlc_check(c->hlc, a->wall_ms, a->max_skew_ms)) {
			a->stop_code = err_set(
				&a->stop_err, MSCE_ECLOCK,
				"change %u/%llu is %llu ms ahead of our clock "
				"(limit %llu ms)",
				c->origin, (unsigned long long)c->seq,
				(unsigned long long)(hlc_ms(c->hlc) - a->wall_ms),
				(unsigned long long)a->max_skew_ms);
			break;
		}
		if ((rc = merge_change(w, c, a->c[i].data, a->c[i].len, e)))
			return err_wrap(e, "apply change %u/%llu", c->origin,
					(unsigned long long)c->seq);
		vv->seq = c->seq;
		vv->hlc = c->hlc;
		hlc_observe(&w->clock, c->hlc);
		a->res->consumed++;
		a->res->applied++;
	}
	return 0;
}

int store_apply(struct store *s, const struct store_blob *c, size_t n,
		uint64_t wall_ms, uint64_t max_skew_ms,
		struct store_apply_result *res, struct err *e)
{
	struct apply_args a = {c, n, wall_ms, max_skew_ms, res, 0, {0, ""}};
	int rc = run_batch(s, apply_batch, &a, e);

	if (rc)
		return rc;
	if (a.stop_code) {
		if (e != NULL)
			*e = a.stop_err;
		return a.stop_code;
	}
	return 0;
}

/* ---- store_write ---------------------------------------------------------- */

struct write_args {
	const struct store_write *w;
	size_t n;
	uint64_t wall_ms;
	struct store_written *out;
};

/* Current winner of a field, or the tombstone if the field is absent. */
static struct version current_version(const struct record *r,
				      const char *name, size_t len)
{
	struct field_state *fs =
		record_field(r, (const uint8_t *)name, len);
	return fs ? fs->w.v : r->tomb;
}

static int write_one(struct wtxn *w, const struct store_write *in,
		     uint64_t wall_ms, struct store_written *out,
		     struct err *e)
{
	struct store *s = w->s;
	struct err *we = &out->err;
	Msce__Change c = MSCE__CHANGE__INIT;
	uint8_t rk[MSCE_MAX_COLLECTION + 1 + MSCE_MAX_KEY];
	struct record cur;
	struct vv_entry *vv;
	uint8_t *raw;
	size_t rawlen, rklen;
	int exists, rc;

	/* Refusals of this write go to its own result, not the batch. */
	if (in->op == STORE_DELETE)
		rc = schema_validate_delete(in->coll, in->coll_len, in->key,
					    in->key_len, we);
	else if (in->op == STORE_PUT)
		rc = 0;
	else
		rc = err_set(we, MSCE_EINVAL, "unknown operation %d", in->op);
	if (rc)
		return 0;
	if (schema_check_collection(in->coll, in->coll_len, 0, we) ||
	    schema_check_key(in->key, in->key_len, we))
		return 0;
	rklen = rec_key(rk, in->coll, in->coll_len, in->key, in->key_len);
	if ((rc = load_record(w, rk, rklen, &cur, &exists, e)))
		return rc;
	if (in->op == STORE_PUT) {
		struct schema_field sf[MSCE_MAX_FIELDS];
		if (in->nfields > MSCE_MAX_FIELDS) {
			err_set(we, MSCE_ETOOBIG, "%zu fields, limit %d",
				in->nfields, MSCE_MAX_FIELDS);
			return 0;
		}
		if (in->nfields == 0) {
			err_set(we, MSCE_EINVAL, "put without fields");
			return 0;
		}
		for (size_t i = 0; i < in->nfields; i++) {
			sf[i].name = in->fields[i].name;
			sf[i].name_len = in->fields[i].name_len;
			sf[i].value = in->fields[i].value;
			sf[i].value_len = in->fields[i].value_len;
			for (size_t j = 0; j < i; j++)
				if (sf[j].name_len == sf[i].name_len &&
				    memcmp(sf[j].name, sf[i].name,
					   sf[i].name_len) == 0) {
					err_set(we, MSCE_EINVAL,
						"field \"%.*s\" given twice",
						(int)sf[i].name_len,
						sf[i].name);
					return 0;
				}
		}
		if (schema_validate_put(in->coll, in->coll_len, in->key,
					in->key_len, sf, in->nfields,
					cur.nfields == 0, we))
			return 0;
	}

	vv = wtxn_vv(w, s->node_id);
	if (vv == NULL)
		return err_set(e, MSCE_ENOMEM, "grow vector");
	/* A write goes above every version it replaces, even one merged
	 * from a snapshot whose origin's clock we have not observed yet. */
	hlc_observe(&w->clock, cur.tomb.hlc);
	for (uint32_t i = 0; i < cur.nfields; i++)
		hlc_observe(&w->clock, cur.fields[i].w.v.hlc);
	c.origin = s->node_id;
	c.seq = vv->seq + 1;
	c.hlc = hlc_now(&w->clock, wall_ms);
	c.collection = arena_alloc(&s->arena, in->coll_len + 1);
	c.key = arena_alloc(&s->arena, in->key_len + 1);
	if (c.collection == NULL || c.key == NULL)
		return err_set(e, MSCE_ENOMEM, "build change");
	memcpy(c.collection, in->coll, in->coll_len);
	c.collection[in->coll_len] = 0;
	memcpy(c.key, in->key, in->key_len);
	c.key[in->key_len] = 0;
	c.op = in->op == STORE_DELETE ? MSCE__CHANGE__OP__DELETE
				      : MSCE__CHANGE__OP__PUT;
	if (in->op == STORE_PUT) {
		Msce__FieldWrite *fws =
			arena_alloc(&s->arena, in->nfields * sizeof *fws);
		Msce__FieldWrite **fp =
			arena_alloc(&s->arena, in->nfields * sizeof *fp);
		if (fws == NULL || fp == NULL)
			return err_set(e, MSCE_ENOMEM, "build change");
		for (size_t i = 0; i < in->nfields; i++) {
			const struct store_field_in *f = &in->fields[i];
			struct version base =
				f->has_base ? f->base
					    : current_version(&cur, f->name,
							      f->name_len);
			char *name = arena_alloc(&s->arena, f->name_len + 1);
			if (name == NULL)
				return err_set(e, MSCE_ENOMEM, "build change");
			memcpy(name, f->name, f->name_len);
			name[f->name_len] = 0;
			msce__field_write__init(&fws[i]);
			fws[i].name = name;
			fws[i].value.data = (uint8_t *)f->value;
			fws[i].value.len = f->value_len;
			fws[i].base_hlc = base.hlc;
			fws[i].base_origin = base.origin;
			fp[i] = &fws[i];
		}
		c.n_fields = in->nfields;
		c.fields = fp;
	}
	rawlen = msce__change__get_packed_size(&c);
	raw = arena_alloc(&s->arena, rawlen);
	if (raw == NULL)
		return err_set(e, MSCE_ENOMEM, "encode change");
	msce__change__pack(&c, raw);
	if ((rc = merge_change(w, &c, raw, rawlen, e)))
		return rc;
	vv->seq = c.seq;
	vv->hlc = c.hlc;
	out->seq = c.seq;
	out->hlc = c.hlc;
	return 0;
}

static int write_batch(struct wtxn *w, void *arg, struct err *e)
{
	struct write_args *a = arg;

	for (size_t i = 0; i < a->n; i++) {
		int rc;
		memset(&a->out[i], 0, sizeof a->out[i]);
		arena_reset(&w->s->arena);
		if ((rc = write_one(w, &a->w[i], a->wall_ms, &a->out[i], e)))
			return rc;
	}
	return 0;
}

int store_write(struct store *s, const struct store_write *w, size_t n,
		uint64_t wall_ms, struct store_written *out, struct err *e)
{
	struct write_args a = {w, n, wall_ms, out};
	return run_batch(s, write_batch, &a, e);
}

/* ---- reads ------------------------------------------------------------------ */

static int read_begin(struct store *s, MDB_txn **txn, struct err *e)
{
	int rc;

	pthread_rwlock_rdlock(&s->maplock);
	rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, txn);
	if (rc)
		pthread_rwlock_unlock(&s->maplock);
	if (rc)
		return lmdb_err(e, rc, "begin read transaction");
	return 0;
}

static void read_end(struct store *s, MDB_txn *txn)
{
	mdb_txn_abort(txn);
	pthread_rwlock_unlock(&s->maplock);
}

int store_get(struct store *s, const char *coll, size_t clen, const char *key,
	      size_t klen, store_record_cb cb, void *ctx, struct err *e)
{
	uint8_t rk[MSCE_MAX_COLLECTION + 1 + MSCE_MAX_KEY];
	MDB_txn *txn;
	MDB_val k, v;
	struct record r;
	struct arena a;
	int rc;

	if (schema_check_collection(coll, clen, 1, e) ||
	    schema_check_key(key, klen, e))
		return e ? e->code : MSCE_EINVAL;
	k.mv_size = rec_key(rk, coll, clen, key, klen);
	k.mv_data = rk;
	if ((rc = read_begin(s, &txn, e)))
		return rc;
	rc = mdb_get(txn, s->recs, &k, &v);
	if (rc == MDB_NOTFOUND) {
		read_end(s, txn);
		return err_set(e, MSCE_ENOTFOUND, "%.*s/%.*s not found",
			       (int)clen, coll, (int)klen, key);
	}
	if (rc) {
		read_end(s, txn);
		return lmdb_err(e, rc, "read record");
	}
	arena_init(&a, 1u << 20);
	rc = record_decode(v.mv_data, v.mv_size, &r, &a);
	if (rc) {
		err_set(e, rc, "record %.*s/%.*s is corrupt", (int)clen, coll,
			(int)klen, key);
	} else if (r.nfields == 0) {
		rc = err_set(e, MSCE_ENOTFOUND, "%.*s/%.*s not found (deleted)",
			     (int)clen, coll, (int)klen, key);
	} else {
		struct store_record_view view = {coll, clen, key, klen, &r};
		rc = cb(ctx, &view);
	}
	arena_free(&a);
	read_end(s, txn);
	return rc;
}

static int starts_with(const MDB_val *k, const uint8_t *p, size_t n)
{
	return k->mv_size >= n && memcmp(k->mv_data, p, n) == 0;
}

static int key_cmp(const uint8_t *a, size_t alen, const uint8_t *b,
		   size_t blen)
{
	size_t n = alen < blen ? alen : blen;
	int c = n ? memcmp(a, b, n) : 0;
	if (c)
		return c;
	return alen < blen ? -1 : alen > blen;
}

int store_scan(struct store *s, const struct store_scan *q, store_record_cb cb,
	       void *ctx, struct err *e)
{
	uint8_t pre[MSCE_MAX_COLLECTION + 1 + MSCE_MAX_KEY];
	uint8_t start[MSCE_MAX_COLLECTION + 1 + MSCE_MAX_KEY + 1];
	size_t prelen, startlen, count = 0;
	MDB_txn *txn;
	MDB_cursor *cur;
	MDB_val k, v;
	struct arena a;
	int rc, op;

	if (schema_check_collection(q->coll, q->coll_len, 1, e))
		return e ? e->code : MSCE_EINVAL;
	if (q->prefix_len > MSCE_MAX_KEY || q->after_len > MSCE_MAX_KEY ||
	    q->end_len > MSCE_MAX_KEY)
		return err_set(e, MSCE_ETOOBIG, "scan bound over %d bytes",
			       MSCE_MAX_KEY);
	prelen = rec_key(pre, q->coll, q->coll_len, q->prefix ? q->prefix : "",
			 q->prefix_len);
	if (q->after != NULL &&
	    key_cmp((const uint8_t *)q->after, q->after_len,
		    (const uint8_t *)(q->prefix ? q->prefix : ""),
		    q->prefix_len) >= 0) {
		/* Position just after the cursor key. */
		startlen = rec_key(start, q->coll, q->coll_len, q->after,
				   q->after_len);
		start[startlen++] = 0;
	} else {
		memcpy(start, pre, prelen);
		startlen = prelen;
	}
	if ((rc = read_begin(s, &txn, e)))
		return rc;
	if ((rc = mdb_cursor_open(txn, s->recs, &cur))) {
		read_end(s, txn);
		return lmdb_err(e, rc, "open cursor");
	}
	arena_init(&a, 1u << 20);
	k.mv_size = startlen;
	k.mv_data = start;
	op = MDB_SET_RANGE;
	rc = 0;
	while (mdb_cursor_get(cur, &k, &v, op) == 0) {
		struct record r;
		op = MDB_NEXT;
		if (!starts_with(&k, pre, prelen))
			break;
		if (q->end != NULL &&
		    key_cmp((uint8_t *)k.mv_data + q->coll_len + 1,
			    k.mv_size - q->coll_len - 1,
			    (const uint8_t *)q->end, q->end_len) >= 0)
			break;
		arena_reset(&a);
		if (record_decode(k.mv_size ? v.mv_data : NULL, v.mv_size, &r,
				  &a)) {
			rc = err_set(e, MSCE_ECORRUPT, "record %.*s is corrupt",
				     (int)k.mv_size, (char *)k.mv_data);
			break;
		}
		if (r.nfields == 0)
			continue;
		struct store_record_view view = {
			q->coll, q->coll_len,
			(const char *)k.mv_data + q->coll_len + 1,
			k.mv_size - q->coll_len - 1, &r};
		if ((rc = cb(ctx, &view)) != 0)
			break;
		if (q->limit && ++count >= q->limit)
			break;
	}
	arena_free(&a);
	mdb_cursor_close(cur);
	read_end(s, txn);
	return rc;
}

int store_log_read(struct store *s, uint32_t origin, uint64_t from,
		   size_t max_count, size_t max_bytes, store_log_cb cb,
		   void *ctx, struct err *e)
{
	struct vv_entry vv = store_vv_get(s, origin);
	uint8_t kb[12];
	MDB_txn *txn;
	MDB_cursor *cur;
	MDB_val k = {12, kb}, v;
	size_t count = 0, bytes = 0;
	int rc, op = MDB_SET_RANGE;

	if (from <= vv.floor)
		return err_set(e, MSCE_ENOTFOUND,
			       "log of origin %u starts after seq %llu", origin,
			       (unsigned long long)vv.floor);
	be32(kb, origin);
	be64(kb + 4, from);
	if ((rc = read_begin(s, &txn, e)))
		return rc;
	if ((rc = mdb_cursor_open(txn, s->log, &cur))) {
		read_end(s, txn);
		return lmdb_err(e, rc, "open log cursor");
	}
	rc = 0;
	while (count < max_count && mdb_cursor_get(cur, &k, &v, op) == 0) {
		op = MDB_NEXT;
		if (k.mv_size != 12 || rd_be32(k.mv_data) != origin)
			break;
		if (count > 0 && bytes + v.mv_size > max_bytes)
			break;
		if ((rc = cb(ctx, origin, rd_be64((uint8_t *)k.mv_data + 4),
			     v.mv_data, v.mv_size)) != 0)
			break;
		count++;
		bytes += v.mv_size;
	}
	mdb_cursor_close(cur);
	read_end(s, txn);
	return rc;
}

/* Deletes log entries of origin with seq <= upto. Re-seeks after each
 * delete rather than trusting cursor position after mdb_cursor_del. */
static int log_delete_upto(struct wtxn *w, uint32_t origin, uint64_t upto)
{
	uint8_t kb[12];
	MDB_cursor *cur;
	MDB_val k, v;
	int rc;

	if ((rc = mdb_cursor_open(w->txn, w->s->log, &cur)))
		return rc;
	for (;;) {
		be32(kb, origin);
		be64(kb + 4, 0);
		k.mv_size = 12;
		k.mv_data = kb;
		rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
		if (rc || k.mv_size != 12 || rd_be32(k.mv_data) != origin ||
		    rd_be64((uint8_t *)k.mv_data + 4) > upto)
			break;
		if ((rc = mdb_cursor_del(cur, 0)))
			break;
	}
	mdb_cursor_close(cur);
	return rc == MDB_NOTFOUND ? 0 : rc;
}

struct trunc_args {
	uint32_t origin;
	uint64_t upto;
};

static int trunc_batch(struct wtxn *w, void *arg, struct err *e)
{
	struct trunc_args *a = arg;
	struct vv_entry *vv = wtxn_vv(w, a->origin);
	int rc;

	if (vv == NULL)
		return err_set(e, MSCE_ENOMEM, "grow vector");
	if (a->upto > vv->seq)
		a->upto = vv->seq;
	if (a->upto <= vv->floor)
		return 0;
	if ((rc = log_delete_upto(w, a->origin, a->upto)))
		return lmdb_err(e, rc, "truncate log");
	vv->floor = a->upto;
	return 0;
}

int store_log_truncate(struct store *s, uint32_t origin, uint64_t upto,
		       struct err *e)
{
	struct trunc_args a = {origin, upto};
	return run_batch(s, trunc_batch, &a, e);
}

size_t store_vv(struct store *s, struct vv_entry *out, size_t max)
{
	size_t n;
	pthread_mutex_lock(&s->stlock);
	for (size_t i = 0; i < s->nvv && i < max; i++)
		out[i] = s->vvs[i];
	n = s->nvv;
	pthread_mutex_unlock(&s->stlock);
	return n;
}

struct vv_entry store_vv_get(struct store *s, uint32_t origin)
{
	struct vv_entry z = {origin, 0, 0, 0};
	pthread_mutex_lock(&s->stlock);
	struct vv_entry *p = vv_find(s->vvs, s->nvv, origin);
	if (p != NULL)
		z = *p;
	pthread_mutex_unlock(&s->stlock);
	return z;
}

void store_digest(struct store *s, uint8_t out[32])
{
	pthread_mutex_lock(&s->stlock);
	memcpy(out, s->digest, 32);
	pthread_mutex_unlock(&s->stlock);
}

uint32_t store_node_id(const struct store *s) { return s->node_id; }

uint64_t store_hlc_committed(struct store *s)
{
	uint64_t hw;
	pthread_mutex_lock(&s->stlock);
	hw = s->hw;
	pthread_mutex_unlock(&s->stlock);
	return hw;
}

int store_failed(struct store *s)
{
	int f;
	pthread_mutex_lock(&s->stlock);
	f = s->failed;
	pthread_mutex_unlock(&s->stlock);
	return f;
}

static int clock_batch(struct wtxn *w, void *arg, struct err *e)
{
	(void)e;
	hlc_now(&w->clock, *(uint64_t *)arg);
	return 0;
}

int store_clock_advance(struct store *s, uint64_t wall_ms, struct err *e)
{
	return run_batch(s, clock_batch, &wall_ms, e);
}

int store_conflicts(struct store *s, size_t limit, store_conflict_cb cb,
		    void *ctx, struct err *e)
{
	MDB_txn *txn;
	MDB_cursor *cur;
	MDB_val k, v;
	struct arena a;
	size_t count = 0;
	int rc;

	if ((rc = read_begin(s, &txn, e)))
		return rc;
	if ((rc = mdb_cursor_open(txn, s->conf, &cur))) {
		read_end(s, txn);
		return lmdb_err(e, rc, "open conflict cursor");
	}
	arena_init(&a, 1u << 20);
	rc = 0;
	while (mdb_cursor_get(cur, &k, &v, MDB_NEXT) == 0) {
		const uint8_t *p = k.mv_data, *end = p + k.mv_size;
		const uint8_t *z1 = memchr(p, 0, k.mv_size), *z2, *z3;
		struct version lv;
		MDB_val rk, rv;
		struct record r;
		struct field_state *fs;

		if (z1 == NULL || (z2 = memchr(z1 + 1, 0, end - z1 - 1)) == NULL ||
		    (z3 = memchr(z2 + 1, 0, end - z2 - 1)) == NULL ||
		    end - z3 - 1 != 12) {
			rc = err_set(e, MSCE_ECORRUPT, "bad conflict entry");
			break;
		}
		lv.hlc = rd_be64(z3 + 1);
		lv.origin = rd_be32(z3 + 9);
		rk.mv_data = (void *)p;
		rk.mv_size = (size_t)(z2 - p);
		arena_reset(&a);
		if (mdb_get(txn, s->recs, &rk, &rv) ||
		    record_decode(rv.mv_data, rv.mv_size, &r, &a)) {
			rc = err_set(e, MSCE_ECORRUPT,
				     "conflict without its record");
			break;
		}
		fs = record_field(&r, z2 + 1, (size_t)(z3 - z2 - 1));
		for (int i = 0; fs != NULL && i < fs->nlosers; i++) {
			if (version_cmp(fs->losers[i].v, lv) != 0)
				continue;
			struct store_conflict_view cv = {
				(const char *)p, (size_t)(z1 - p),
				(const char *)z1 + 1, (size_t)(z2 - z1 - 1),
				fs, &fs->losers[i]};
			rc = cb(ctx, &cv);
			count++;
			break;
		}
		if (rc || (limit && count >= limit))
			break;
	}
	arena_free(&a);
	mdb_cursor_close(cur);
	read_end(s, txn);
	return rc;
}

/* ---- tombstones ---------------------------------------------------------------- */

struct gc_args {
	struct version upto;
	size_t dropped;
};

static int gc_batch(struct wtxn *w, void *arg, struct err *e)
{
	struct gc_args *a = arg;
	struct store *s = w->s;
	MDB_cursor *cur;
	MDB_val k, v;
	int rc;

	a->dropped = 0;
	if ((rc = mdb_cursor_open(w->txn, s->tombs, &cur)))
		return lmdb_err(e, rc, "open tombstone cursor");
	while ((rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST)) == 0) {
		struct version t;
		MDB_val rk, rv;
		struct record r;

		if (k.mv_size < 12) {
			rc = MDB_CORRUPTED;
			break;
		}
		t.hlc = rd_be64(k.mv_data);
		t.origin = rd_be32((uint8_t *)k.mv_data + 8);
		if (version_cmp(t, a->upto) > 0)
			break;
		rk.mv_data = (uint8_t *)k.mv_data + 12;
		rk.mv_size = k.mv_size - 12;
		arena_reset(&s->arena);
		rc = mdb_get(w->txn, s->recs, &rk, &rv);
		if (rc == 0 &&
		    record_decode(rv.mv_data, rv.mv_size, &r, &s->arena) == 0 &&
		    version_cmp(r.tomb, t) == 0) {
			uint8_t keybuf[MSCE_MAX_COLLECTION + 1 + MSCE_MAX_KEY];
			size_t klen = rk.mv_size;
			memcpy(keybuf, rk.mv_data, klen);
			rk.mv_data = keybuf;
			if (r.nfields == 0) {
				rc = mdb_del(w->txn, s->recs, &rk, NULL);
			} else {
				/* Fields written after the delete stay. */
				r.tomb.hlc = 0;
				r.tomb.origin = 0;
				rv.mv_size = record_encoded_size(&r);
				if (ensure_scratch(s, rv.mv_size)) {
					rc = ENOMEM;
					break;
				}
				record_encode(&r, s->scratch);
				rv.mv_data = s->scratch;
				rc = mdb_put(w->txn, s->recs, &rk, &rv, 0);
			}
			if (rc)
				break;
		}
		if ((rc = mdb_cursor_del(cur, 0)))
			break;
		a->dropped++;
	}
	mdb_cursor_close(cur);
	if (rc && rc != MDB_NOTFOUND)
		return lmdb_err(e, rc, "collect tombstones");
	if (a->upto.hlc > s->gc_upto) {
		uint8_t b[8];
		le64(b, a->upto.hlc);
		if ((rc = meta_put(w->txn, s->meta, "gc", b, 8)))
			return lmdb_err(e, rc, "record collection point");
	}
	return 0;
}

/* Is any tombstone at or below upto? A read, so that an idle collection
 * round costs no commit. */
static int gc_due(struct store *s, struct version upto)
{
	MDB_txn *txn;
	MDB_cursor *cur;
	MDB_val k, v;
	int due = 0;

	if (read_begin(s, &txn, NULL))
		return 1;
	if (mdb_cursor_open(txn, s->tombs, &cur) == 0) {
		if (mdb_cursor_get(cur, &k, &v, MDB_FIRST) == 0 &&
		    k.mv_size >= 12) {
			struct version t = {rd_be64(k.mv_data),
					    rd_be32((uint8_t *)k.mv_data + 8)};
			due = version_cmp(t, upto) <= 0;
		}
		mdb_cursor_close(cur);
	}
	read_end(s, txn);
	return due;
}

int store_gc_tombstones(struct store *s, struct version upto, size_t *dropped,
			struct err *e)
{
	struct gc_args a = {upto, 0};
	int rc;

	if (dropped)
		*dropped = 0;
	if (!gc_due(s, upto))
		return 0;
	rc = run_batch(s, gc_batch, &a, e);
	if (rc == 0 && upto.hlc > s->gc_upto)
		s->gc_upto = upto.hlc; /* only the writer reads it */
	if (dropped)
		*dropped = rc ? 0 : a.dropped;
	return rc;
}

size_t store_tombstones(struct store *s)
{
	MDB_txn *txn;
	MDB_stat st;
	if (read_begin(s, &txn, NULL))
		return 0;
	mdb_stat(txn, s->tombs, &st);
	read_end(s, txn);
	return st.ms_entries;
}

/* ---- snapshots ------------------------------------------------------------------ */

/* A snapshot reads its vector first, then the records in chunks, each in
 * its own short read transaction (so the map can still grow meanwhile).
 * A chunk may show changes newer than the vector: merging more than the
 * vector promises is harmless, and nothing it promises can be missing,
 * because a tombstone the receiver lacks cannot be collected (the
 * receiver has not acknowledged it). */
struct store_snap {
	struct store *s;
	struct vv_entry *vvs;
	size_t nvv;
	uint8_t last[MSCE_MAX_COLLECTION + 1 + MSCE_MAX_KEY];
	size_t last_len;
	int started, done;
	struct arena a;
};

int store_snap_begin(struct store *s, struct store_snap **out, struct err *e)
{
	struct store_snap *sn = calloc(1, sizeof *sn);

	*out = NULL;
	if (sn == NULL)
		return err_set(e, MSCE_ENOMEM, "begin snapshot");
	sn->s = s;
	arena_init(&sn->a, 8u << 20);
	pthread_mutex_lock(&s->stlock);
	sn->vvs = malloc((s->nvv ? s->nvv : 1) * sizeof *sn->vvs);
	if (sn->vvs != NULL) {
		for (size_t i = 0; i < s->nvv; i++) {
			sn->vvs[i] = s->vvs[i];
			sn->vvs[i].floor = 0;
		}
		sn->nvv = s->nvv;
	}
	pthread_mutex_unlock(&s->stlock);
	if (sn->vvs == NULL) {
		store_snap_end(sn);
		return err_set(e, MSCE_ENOMEM, "begin snapshot");
	}
	*out = sn;
	return 0;
}

size_t store_snap_vv(const struct store_snap *sn, struct vv_entry *out,
		     size_t max)
{
	for (size_t i = 0; i < sn->nvv && i < max; i++)
		out[i] = sn->vvs[i];
	return sn->nvv;
}

int store_snap_next(struct store_snap *sn, size_t max_bytes,
		    store_record_cb cb, void *ctx, int *done, struct err *e)
{
	struct store *s = sn->s;
	size_t bytes = 0;
	MDB_txn *txn;
	MDB_cursor *cur;
	MDB_val k, v;
	int rc = 0, op;

	*done = sn->done;
	if (sn->done)
		return 0;
	if ((rc = read_begin(s, &txn, e)))
		return rc;
	if ((rc = mdb_cursor_open(txn, s->recs, &cur))) {
		read_end(s, txn);
		return lmdb_err(e, rc, "snapshot cursor");
	}
	if (sn->started) {
		k.mv_size = sn->last_len;
		k.mv_data = sn->last;
		op = MDB_SET_RANGE;
	} else {
		op = MDB_FIRST;
	}
	rc = 0;
	while (bytes < max_bytes) {
		const uint8_t *z;
		struct record r;
		if (mdb_cursor_get(cur, &k, &v, op) != 0) {
			sn->done = 1;
			break;
		}
		op = MDB_NEXT;
		/* Resuming lands on the last key sent: skip it. */
		if (sn->started && k.mv_size == sn->last_len &&
		    memcmp(k.mv_data, sn->last, sn->last_len) == 0)
			continue;
		z = memchr(k.mv_data, 0, k.mv_size);
		arena_reset(&sn->a);
		if (z == NULL || k.mv_size > sizeof sn->last ||
		    record_decode(v.mv_data, v.mv_size, &r, &sn->a)) {
			rc = err_set(e, MSCE_ECORRUPT, "record %.*s is corrupt",
				     (int)k.mv_size, (char *)k.mv_data);
			break;
		}
		struct store_record_view view = {
			k.mv_data, (size_t)(z - (uint8_t *)k.mv_data),
			(const char *)z + 1,
			k.mv_size - (size_t)(z - (uint8_t *)k.mv_data) - 1, &r};
		if ((rc = cb(ctx, &view)) != 0)
			break;
		memcpy(sn->last, k.mv_data, k.mv_size);
		sn->last_len = k.mv_size;
		sn->started = 1;
		bytes += k.mv_size + v.mv_size;
	}
	mdb_cursor_close(cur);
	read_end(s, txn);
	*done = sn->done;
	return rc;
}

void store_snap_end(struct store_snap *sn)
{
	if (sn == NULL)
		return;
	arena_free(&sn->a);
	free(sn->vvs);
	free(sn);
}

struct snapmerge_args {
	const struct store_snap_record *r;
	size_t n;
};

static int snapmerge_batch(struct wtxn *w, void *arg, struct err *e)
{
	struct snapmerge_args *a = arg;
	struct store *s = w->s;

	for (size_t i = 0; i < a->n; i++) {
		const struct store_snap_record *in = &a->r[i];
		uint8_t rk[MSCE_MAX_COLLECTION + 1 + MSCE_MAX_KEY];
		struct record r;
		struct loser_ref *old;
		size_t nold, rklen;
		struct version old_tomb;
		int exists, changed = 0, ch, rc;

		if (schema_check_collection(in->coll, in->coll_len, 1, e) ||
		    schema_check_key(in->key, in->key_len, e))
			return err_set(e, MSCE_ECORRUPT, "snapshot record: %s",
				       e ? e->msg : "bad name");
		arena_reset(&s->arena);
		rklen = rec_key(rk, in->coll, in->coll_len, in->key,
				in->key_len);
		if ((rc = load_record(w, rk, rklen, &r, &exists, e)))
			return rc;
		old_tomb = r.tomb;
		if (collect_losers(&r, &s->arena, &old, &nold))
			return err_set(e, MSCE_ENOMEM, "index conflicts");
		if (in->rec->tomb.hlc > s->gc_upto)
			record_merge_delete(&r, in->rec->tomb, &changed);
		for (uint32_t j = 0; j < in->rec->nfields; j++) {
			struct field_state fs = in->rec->fields[j];
			int keep = 0;
			/* Versions at or below the collection point are held
			 * already (or were deleted and collected). */
			if (fs.w.v.hlc <= s->gc_upto)
				continue;
			for (int l = 0; l < fs.nlosers; l++)
				if (fs.losers[l].v.hlc > s->gc_upto)
					fs.losers[keep++] = fs.losers[l];
			fs.nlosers = (uint8_t)keep;
			if (record_merge_state(&r, &fs, &s->arena, &ch))
				return err_set(e, MSCE_ENOMEM, "merge snapshot");
			changed |= ch;
		}
		if (changed &&
		    (rc = save_record(w, in->coll, in->coll_len, in->key,
				      in->key_len, rk, rklen, &r, old_tomb,
				      old, nold, e)))
			return rc;
	}
	return 0;
}

int store_snap_merge(struct store *s, const struct store_snap_record *r,
		     size_t n, struct err *e)
{
	struct snapmerge_args a = {r, n};
	return run_batch(s, snapmerge_batch, &a, e);
}

struct snapfinish_args {
	const struct vv_entry *vv;
	size_t n;
};

static int snapfinish_batch(struct wtxn *w, void *arg, struct err *e)
{
	struct snapfinish_args *a = arg;

	for (size_t i = 0; i < a->n; i++) {
		struct vv_entry *mine = wtxn_vv(w, a->vv[i].origin);
		int rc;

		if (mine == NULL)
			return err_set(e, MSCE_ENOMEM, "grow vector");
		if (a->vv[i].seq <= mine->seq)
			continue;
		/* The changes in (mine->seq, their seq] are merged but not in
		 * our log: we cannot relay them, so the floor moves past. */
		if ((rc = log_delete_upto(w, a->vv[i].origin, a->vv[i].seq)))
			return lmdb_err(e, rc, "truncate log");
		mine->seq = a->vv[i].seq;
		mine->hlc = a->vv[i].hlc;
		mine->floor = a->vv[i].seq;
		hlc_observe(&w->clock, a->vv[i].hlc);
	}
	return 0;
}

int store_snap_finish(struct store *s, const struct vv_entry *vv, size_t n,
		      struct err *e)
{
	struct snapfinish_args a = {vv, n};
	return run_batch(s, snapfinish_batch, &a, e);
}

/* A backup is marked so that a node started on it knows it may be
 * missing its own latest changes (see store_restored). */
static int mark_restored(const char *path)
{
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
	int rc;

	if ((rc = mdb_env_create(&env)))
		return rc;
	mdb_env_set_maxdbs(env, 8);
	if ((rc = mdb_env_open(env, path, 0, 0640)) ||
	    (rc = mdb_txn_begin(env, NULL, 0, &txn))) {
		mdb_env_close(env);
		return rc;
	}
	if ((rc = mdb_dbi_open(txn, "meta", 0, &dbi)) ||
	    (rc = meta_put(txn, dbi, "restored", "1", 1))) {
		mdb_txn_abort(txn);
		mdb_env_close(env);
		return rc;
	}
	rc = mdb_txn_commit(txn);
	mdb_env_close(env);
	return rc;
}

int store_created(const struct store *s) { return s->created; }
int store_restored(const struct store *s) { return s->restored; }

static int unrestore_batch(struct wtxn *w, void *arg, struct err *e)
{
	MDB_val key = {8, (void *)"restored"};
	int rc = mdb_del(w->txn, w->s->meta, &key, NULL);
	(void)arg;
	if (rc && rc != MDB_NOTFOUND)
		return lmdb_err(e, rc, "clear the restored mark");
	return 0;
}

int store_clear_restored(struct store *s, struct err *e)
{
	int rc = run_batch(s, unrestore_batch, NULL, e);
	if (rc == 0)
		s->restored = 0;
	return rc;
}

int store_backup(struct store *s, const char *path, uint64_t *bytes,
		 struct err *e)
{
	char file[600];
	struct stat st;
	int rc;

	if (mkdir(path, 0750) != 0)
		return err_set(e, errno == EEXIST ? MSCE_EINVAL : MSCE_EIO,
			       "backup directory %s: %s", path,
			       errno == EEXIST ? "already exists"
					       : strerror(errno));
	/* A read transaction inside: no map growth meanwhile. */
	pthread_rwlock_rdlock(&s->maplock);
	rc = mdb_env_copy2(s->env, path, MDB_CP_COMPACT);
	pthread_rwlock_unlock(&s->maplock);
	if (rc)
		return lmdb_err(e, rc, "copy store");
	if ((rc = mark_restored(path)))
		return lmdb_err(e, rc, "mark the backup");
	snprintf(file, sizeof file, "%s/data.mdb", path);
	*bytes = stat(file, &st) == 0 ? (uint64_t)st.st_size : 0;
	return 0;
}

uint64_t store_size(struct store *s)
{
	MDB_envinfo info;
	MDB_stat st;
	mdb_env_info(s->env, &info);
	mdb_env_stat(s->env, &st);
	return (uint64_t)(info.me_last_pgno + 1) * st.ms_psize;
}

int store_retry(struct store *s, uint64_t wall_ms, struct err *e)
{
	int rc;

	pthread_mutex_lock(&s->wlock);
	if (!s->failed) {
		pthread_mutex_unlock(&s->wlock);
		return 0;
	}
	/* A failed commit left the last committed state on disk (LMDB writes
	 * its meta page last); a probe commit tells whether the cause is
	 * gone. */
	pthread_mutex_lock(&s->stlock);
	s->failed = 0;
	pthread_mutex_unlock(&s->stlock);
	rc = run_batch_locked(s, clock_batch, &wall_ms, e);
	pthread_mutex_unlock(&s->wlock);
	return rc;
}
