/* SPDX-License-Identifier: Apache-2.0 */
/* The store's transaction runner, read transactions and the scratch buffer.
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
 * so the store turns read-only (sticky, like an LMDB txn error) until a
 * probe commit succeeds (store_retry). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <time.h>

#include "fault.h"
#include "store_int.h"

/* ---- helpers ------------------------------------------------------------ */

/* Set when a batch function met MDB_MAP_FULL (per thread: the writer). */
static _Thread_local int map_full;

int st_lmdb_err(struct err *e, int rc, const char *what)
{
	int code;
	if (rc == MDB_MAP_FULL)
		map_full = 1;
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

int st_ensure_scratch(struct store *s, size_t n)
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

struct vv_entry *st_vv_find(struct vv_entry *v, size_t n, uint32_t o)
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

struct vv_entry *st_wtxn_vv(struct wtxn *w, uint32_t origin)
{
	struct vv_entry *e = st_vv_find(w->vvs, w->nvv, origin);
	size_t i;

	if (e != NULL)
		return e;
	/* Every vector of the node is sized for this many (a full one is
	 * refused by the callers, each with its reason). */
	if (w->nvv >= MSCE_MAX_ORIGINS)
		return NULL;
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

/* ---- write transactions ------------------------------------------------- */

int st_grow_map(struct store *s, struct err *e)
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
	if (st_maplock_wr(s))
		return err_set(e, MSCE_EBUSY,
			       "store map full and cannot grow while a "
			       "snapshot is being read; retry");
	rc = mdb_env_set_mapsize(s->env, next);
	pthread_rwlock_unlock(&s->maplock);
	if (rc)
		return st_lmdb_err(e, rc, "grow store map");
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
		struct vv_entry *o = st_vv_find(s->vvs, s->nvv, n->origin);
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
	    (rc = st_meta_put(w->txn, s->meta, "digest", w->digest, 32)))
		return rc;
	if (w->clock.last > s->hw) {
		le64(buf, w->clock.last);
		if ((rc = st_meta_put(w->txn, s->meta, "hw", buf, 8)))
			return rc;
	}
	return 0;
}


int st_maplock_wr(struct store *s)
{
	/* A long read (a snapshot being streamed) may hold the lock; waiting
	 * for it without bound could deadlock with its own thread. */
	for (int i = 0; pthread_rwlock_trywrlock(&s->maplock) != 0; i++) {
		struct timespec ts = {0, 10 * 1000 * 1000};
		if (i == 100)
			return -1;
		nanosleep(&ts, NULL);
	}
	return 0;
}

uint64_t st_disk_room(struct store *s)
{
	struct statvfs st;
	mdb_filehandle_t fd;

	if (mdb_env_get_fd(s->env, &fd) || fstatvfs(fd, &st))
		return UINT64_MAX; /* unknown: a probe commit tells */
	return (uint64_t)st.f_bavail * st.f_frsize;
}

int st_env_fatal(struct store *s)
{
	MDB_txn *txn;
	int rc;

	pthread_rwlock_rdlock(&s->maplock);
	rc = s->env ? mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn) : MDB_PANIC;
	if (rc == 0)
		mdb_txn_abort(txn);
	pthread_rwlock_unlock(&s->maplock);
	return rc == MDB_PANIC;
}

void st_commit_failed(struct store *s)
{
	pthread_mutex_lock(&s->stlock);
	s->commit_failures++;
	pthread_mutex_unlock(&s->stlock);
}

/* The store refuses writes from now on, until a probe commit succeeds
 * (store_retry). A failed meta page write also leaves LMDB refusing
 * reads: reopened at once, so that they go on, unless a long read (a
 * snapshot being sent) holds the map: then reads fail, and the status
 * says so, until store_retry reopens it. */
static int st_fail(struct store *s, int code, int rc)
{
	uint64_t room = st_disk_room(s);
	pthread_mutex_lock(&s->stlock);
	s->failed = code;
	s->failed_room = room;
	snprintf(s->failed_msg, sizeof s->failed_msg, "%s", mdb_strerror(rc));
	pthread_mutex_unlock(&s->stlock);
	if (st_env_fatal(s))
		st_env_reopen(s, NULL); /* else store_retry tries again */
	return code;
}

/* Runs fn in a write transaction, retrying after growing a full map. */
static int run_batch(struct store *s, struct wtxn *wp, batch_fn fn, void *arg,
		     struct err *e)
{
	int rc, code;

	if (s->failed && !s->probing) {
		char why[512];
		int reads_fail = store_failed_why(s, why, sizeof why);
		return err_set(e, MSCE_EREADONLY,
			       "store refuses writes since a commit failed "
			       "(%s)%s, and writes resume once a probe commit "
			       "succeeds",
			       why, reads_fail ? "" : "; reads go on");
	}
	memset(wp, 0, sizeof *wp);
	wp->s = s;
	for (;;) {
		wp->capvv = s->nvv + 8;
		wp->vvs = fault_hit(FAULT_ALLOC)
				? NULL
				: malloc(wp->capvv * sizeof *wp->vvs);
		if (wp->vvs == NULL)
			return err_set(e, MSCE_ENOMEM, "begin batch");
		if (s->nvv)
			memcpy(wp->vvs, s->vvs, s->nvv * sizeof *wp->vvs);
		wp->nvv = s->nvv;
		memcpy(wp->digest, s->digest, 32);
		wp->clock = s->clock;
		wp->seg_open = 0; /* a retried batch signs afresh */
		st_crypt_reset(wp); /* ...and finds its keys afresh */
		if ((rc = mdb_txn_begin(s->env, NULL, 0, &wp->txn))) {
			free(wp->vvs);
			if (rc == MDB_MAP_RESIZED) {
				/* Another process grew it; adopt its size, with
				 * no read transaction open in this process. */
				pthread_rwlock_wrlock(&s->maplock);
				mdb_env_set_mapsize(s->env, 0);
				pthread_rwlock_unlock(&s->maplock);
				continue;
			}
			code = st_lmdb_err(e, rc, "begin write transaction");
			if (rc == MDB_PANIC) /* only a reopen mends it */
				st_fail(s, code, rc);
			return code;
		}
		map_full = 0;
		code = fn(wp, arg, e);
		arena_reset(&s->arena);
		if (code == 0 && (rc = persist_state(wp)))
			code = st_lmdb_err(e, rc, "write store state");
		if (code != 0) {
			mdb_txn_abort(wp->txn);
			free(wp->vvs);
			if (code == MSCE_EFULL && map_full) {
				if (st_grow_map(s, e) == 0)
					continue;
				st_commit_failed(s);
				return e ? e->code : code;
			}
			return code;
		}
		if (fault_hit(FAULT_FULL)) {
			/* As if the pages did not fit and growing failed. */
			mdb_txn_abort(wp->txn);
			free(wp->vvs);
			st_commit_failed(s);
			return err_set(e, MSCE_EFULL,
				       "store map is full and the disk has no "
				       "room to grow it (No space left on "
				       "device)");
		}
		if (fault_hit(FAULT_COMMIT)) {
			mdb_txn_abort(wp->txn);
			rc = EIO;
		} else if (fault_hit(FAULT_NOSPACE)) {
			mdb_txn_abort(wp->txn);
			rc = ENOSPC;
		} else {
			rc = mdb_txn_commit(wp->txn);
		}
		if (rc == MDB_MAP_FULL) {
			free(wp->vvs);
			if (st_grow_map(s, e) == 0)
				continue;
			st_commit_failed(s);
			return e ? e->code : MSCE_EFULL;
		}
		/* LMDB takes a short write for EIO: that is how a full disk
		 * shows when a batch outgrows what is left of it. */
		if (rc == EIO && st_disk_room(s) < STORE_ROOM_TO_RESUME)
			rc = ENOSPC;
		if (rc) {
			free(wp->vvs);
			st_commit_failed(s);
			st_lmdb_err(e, rc, "commit");
			return st_fail(s, e ? e->code : MSCE_EIO, rc);
		}
		pthread_mutex_lock(&s->stlock);
		free(s->vvs);
		s->vvs = wp->vvs;
		s->nvv = wp->nvv;
		memcpy(s->digest, wp->digest, 32);
		s->clock = wp->clock;
		if (wp->clock.last > s->hw)
			s->hw = wp->clock.last;
		if (wp->set_writer) {
			s->writer = wp->writer;
			s->born = wp->born;
		}
		pthread_mutex_unlock(&s->stlock);
		return 0;
	}
}

int st_run_batch_locked(struct store *s, batch_fn fn, void *arg, struct err *e)
{
	struct wtxn w;
	int rc = run_batch(s, &w, fn, arg, e);
	st_crypt_reset(&w); /* wipes the keys it held */
	return rc;
}

int st_run_batch(struct store *s, batch_fn fn, void *arg, struct err *e)
{
	int rc;
	pthread_mutex_lock(&s->wlock);
	rc = st_run_batch_locked(s, fn, arg, e);
	pthread_mutex_unlock(&s->wlock);
	return rc;
}

/* ---- reads ------------------------------------------------------------------ */

int st_read_begin(struct store *s, MDB_txn **txn, struct err *e)
{
	int rc;

	pthread_rwlock_rdlock(&s->maplock);
	rc = s->env ? mdb_txn_begin(s->env, NULL, MDB_RDONLY, txn) : MDB_PANIC;
	if (rc)
		pthread_rwlock_unlock(&s->maplock);
	if (rc)
		return st_lmdb_err(e, rc, "begin read transaction");
	return 0;
}

void st_read_end(struct store *s, MDB_txn *txn)
{
	mdb_txn_abort(txn);
	pthread_rwlock_unlock(&s->maplock);
}
