/* SPDX-License-Identifier: Apache-2.0 */
/* The store's lifecycle and its published state: open (taking the lock,
 * creating or checking the metadata), close, its writer identity, backup
 * and the restored mark, size, the sticky failure and its retry, and the
 * committed vector, digest and clock.
 *
 * Identity: a store writes under one writer id (origin) at a time. A store
 * this open creates, and a backup copy, have none: the replication core
 * gives it a new incarnation (store_set_writer) once it has caught up, so
 * that it never reuses a seq of an origin it may not hold in full. */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "dirlock.h"
#include "fault.h"
#include "mutant.h"
#include "store_int.h"

/* ---- open / close -------------------------------------------------------- */

int st_meta_get(MDB_txn *txn, MDB_dbi dbi, const char *k, MDB_val *v)
{
	MDB_val key = {strlen(k), (void *)k};
	return mdb_get(txn, dbi, &key, v);
}

int st_meta_put(MDB_txn *txn, MDB_dbi dbi, const char *k, const void *d,
		size_t n)
{
	MDB_val key = {strlen(k), (void *)k};
	MDB_val val = {n, (void *)d};
	return mdb_put(txn, dbi, &key, &val, 0);
}

static int seal_legacy(struct store *s, MDB_txn *txn, struct err *e);

static int load_state(struct store *s, MDB_txn *txn, const char *cluster,
		      struct err *e)
{
	MDB_val v;
	MDB_cursor *cur;
	MDB_val k;
	int rc;

	rc = st_meta_get(txn, s->meta, "format", &v);
	if (rc == MDB_NOTFOUND) {
		uint8_t id[4];
		uint8_t zero[32] = {0};
		be32(id, s->node_id);
		if ((rc = st_meta_put(txn, s->meta, "format", STORE_FORMAT,
				      strlen(STORE_FORMAT))) ||
		    (rc = st_meta_put(txn, s->meta, "node_id", id, 4)) ||
		    (rc = st_meta_put(txn, s->meta, "cluster", cluster,
				      strlen(cluster))) ||
		    (rc = st_meta_put(txn, s->meta, "hw", zero, 8)) ||
		    (rc = st_meta_put(txn, s->meta, "digest", zero, 32)) ||
		    (rc = st_meta_put(txn, s->meta, "writer", zero, 12)))
			return st_lmdb_err(e, rc, "initialise store metadata");
		s->created = 1;
		if (MUTANT("wipe_reuses_writer")) { /* incarnation 0 again */
			uint8_t w[12] = {0};
			be32(w, s->node_id);
			if ((rc = st_meta_put(txn, s->meta, "writer", w, 12)))
				return st_lmdb_err(e, rc, "mutant");
			s->writer = s->node_id;
		}
		return 0;
	}
	if (rc)
		return st_lmdb_err(e, rc, "read store format");
	if ((v.mv_size == strlen(STORE_FORMAT_1) &&
	     memcmp(v.mv_data, STORE_FORMAT_1, v.mv_size) == 0) ||
	    (v.mv_size == strlen(STORE_FORMAT_2) &&
	     memcmp(v.mv_data, STORE_FORMAT_2, v.mv_size) == 0)) {
		/* Upgraded in place, in this open's transaction (2 to 3 only
		 * adds what this version writes; values are sealed after the
		 * open, when a master key is given). */
		s->upgraded = ((char *)v.mv_data)[11] == '1';
		if ((rc = st_meta_put(txn, s->meta, "format", STORE_FORMAT,
				      strlen(STORE_FORMAT))))
			return st_lmdb_err(e, rc, "upgrade store format");
	} else if (v.mv_size != strlen(STORE_FORMAT) ||
		   memcmp(v.mv_data, STORE_FORMAT, v.mv_size) != 0) {
		return err_set(e, MSCE_EVERSION,
			       "store format \"%.*s\" is not \"%s\" (nor %s or "
			       "%s, which this version upgrades): a newer msce "
			       "wrote it",
			       (int)(v.mv_size > 64 ? 64 : v.mv_size),
			       (char *)v.mv_data, STORE_FORMAT, STORE_FORMAT_2,
			       STORE_FORMAT_1);
	}
	if (st_meta_get(txn, s->meta, "node_id", &v) || v.mv_size != 4)
		return err_set(e, MSCE_ECORRUPT, "store has no node id");
	if (rd_be32(v.mv_data) != s->node_id)
		return err_set(e, MSCE_EMISMATCH,
			       "store belongs to node %u, not node %u",
			       rd_be32(v.mv_data), s->node_id);
	if (st_meta_get(txn, s->meta, "cluster", &v))
		return err_set(e, MSCE_ECORRUPT, "store has no cluster name");
	if (v.mv_size != strlen(cluster) ||
	    memcmp(v.mv_data, cluster, v.mv_size) != 0)
		return err_set(e, MSCE_EMISMATCH,
			       "store belongs to cluster \"%.*s\", not \"%s\"",
			       (int)(v.mv_size > 64 ? 64 : v.mv_size),
			       (char *)v.mv_data, cluster);
	if (st_meta_get(txn, s->meta, "hw", &v) || v.mv_size != 8)
		return err_set(e, MSCE_ECORRUPT, "store has no clock");
	s->hw = rd_le64(v.mv_data);
	hlc_init(&s->clock, s->hw);
	if (st_meta_get(txn, s->meta, "digest", &v) || v.mv_size != 32)
		return err_set(e, MSCE_ECORRUPT, "store has no digest");
	memcpy(s->digest, v.mv_data, 32);
	s->restored = st_meta_get(txn, s->meta, "restored", &v) == 0;
	rc = st_meta_get(txn, s->meta, "writer", &v);
	if (rc == 0 && v.mv_size == 12) {
		s->writer = rd_be32(v.mv_data);
		s->born = rd_le64((uint8_t *)v.mv_data + 4);
		if (s->writer != 0 && writer_node(s->writer) != s->node_id)
			return err_set(e, MSCE_ECORRUPT,
				       "store writer %u is not of node %u",
				       s->writer, s->node_id);
	} else if (rc == MDB_NOTFOUND) {
		/* Made before incarnations: its writer is the node id,
		 * unless it is a backup copy. */
		s->writer = s->restored ? 0 : s->node_id;
		s->born = 0;
	} else {
		return err_set(e, MSCE_ECORRUPT, "bad store writer");
	}

	if ((rc = mdb_cursor_open(txn, s->vv, &cur)))
		return st_lmdb_err(e, rc, "read version vector");
	while ((rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) == 0) {
		struct vv_entry *p;
		if (k.mv_size != 4 || v.mv_size != 24) {
			mdb_cursor_close(cur);
			return err_set(e, MSCE_ECORRUPT, "bad vector entry");
		}
		p = fault_hit(FAULT_ALLOC)
			? NULL
			: realloc(s->vvs, (s->nvv + 1) * sizeof *p);
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
	if (s->upgraded)
		return seal_legacy(s, txn, e);
	return 0;
}

/* A store from before signatures (format 1): its log cannot be relayed
 * (nobody signed it), so it goes, and what it held reaches other nodes by
 * snapshot; our own node's origins get a seal, which bounds what a
 * snapshot may claim of them. */
static int seal_legacy(struct store *s, MDB_txn *txn, struct err *e)
{
	for (size_t i = 0; i < s->nvv; i++) {
		struct vv_entry *x = &s->vvs[i];
		uint8_t kb[12], vb[24];
		MDB_cursor *cur;
		MDB_val k, v;
		int rc;

		if ((rc = mdb_cursor_open(txn, s->log, &cur)))
			return st_lmdb_err(e, rc, "drop the unsigned log");
		for (;;) {
			be32(kb, x->origin);
			be64(kb + 4, 0);
			k.mv_size = 12;
			k.mv_data = kb;
			rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
			if (rc || k.mv_size != 12 ||
			    rd_be32(k.mv_data) != x->origin)
				break;
			if ((rc = mdb_cursor_del(cur, 0)))
				break;
		}
		mdb_cursor_close(cur);
		if (rc && rc != MDB_NOTFOUND)
			return st_lmdb_err(e, rc, "drop the unsigned log");
		x->floor = x->seq;
		be32(kb, x->origin);
		le64(vb, x->seq);
		le64(vb + 8, x->hlc);
		le64(vb + 16, x->floor);
		k.mv_size = 4;
		k.mv_data = kb;
		v.mv_size = 24;
		v.mv_data = vb;
		if ((rc = mdb_put(txn, s->vv, &k, &v, 0)))
			return st_lmdb_err(e, rc, "raise the log floor");
		if (!s->has_sk || writer_node(x->origin) != s->node_id ||
		    x->seq == 0)
			continue;
		struct seg g = {.origin = x->origin,
				.first = 0,
				.last = x->seq,
				.last_hlc = x->hlc};
		seg_sign(&g, s->sk);
		uint8_t sv[8 + 8 + SEG_HASH_LEN + SEG_SIG_LEN] = {0};
		be32(kb, x->origin);
		be64(kb + 4, x->seq);
		le64(sv, 0);
		le64(sv + 8, g.last_hlc);
		memcpy(sv + 16 + SEG_HASH_LEN, g.sig, SEG_SIG_LEN);
		k.mv_size = 12;
		v.mv_size = sizeof sv;
		v.mv_data = sv;
		if ((rc = mdb_put(txn, s->sigs, &k, &v, 0)))
			return st_lmdb_err(e, rc, "seal the legacy history");
	}
	return 0;
}

/* Refuses a store file shorter than its header says (a copy cut off
 * mid-way): LMDB maps the file, and the first read past its end would kill
 * the process with SIGBUS, saying nothing. Called after mdb_env_open and
 * before any transaction (the two meta pages it reads were read whole). */
static int check_file_size(MDB_env *env, const char *dir, struct err *e)
{
	MDB_envinfo info;
	MDB_stat ms;
	struct stat st;
	mdb_filehandle_t fd;
	uint64_t want;
	int rc;

	if ((rc = mdb_env_get_fd(env, &fd)) ||
	    (rc = mdb_env_info(env, &info)) || (rc = mdb_env_stat(env, &ms)))
		return st_lmdb_err(e, rc, "read the store's size");
	if (fstat(fd, &st) != 0)
		return err_set(e, MSCE_EIO, "%s/data.mdb: %s", dir,
			       strerror(errno));
	want = ((uint64_t)info.me_last_pgno + 1) * ms.ms_psize;
	if ((uint64_t)st.st_size < want)
		return err_set(e, MSCE_ECORRUPT,
			       "%s/data.mdb is truncated: %llu bytes, but its "
			       "header says %llu pages of %u bytes (%llu "
			       "bytes); it was cut off while being copied: "
			       "restore a whole copy, or start with an empty "
			       "data directory to receive everything from the "
			       "peers",
			       dir, (unsigned long long)st.st_size,
			       (unsigned long long)info.me_last_pgno + 1,
			       ms.ms_psize, (unsigned long long)want);
	return 0;
}

/* Creates and opens the LMDB environment at s->dir. */
static int env_open(struct store *s, struct err *e)
{
	MDB_envinfo info;
	int rc, dead = 0;

	if ((rc = mdb_env_create(&s->env)) ||
	    (rc = mdb_env_set_maxdbs(s->env, 16)) ||
	    (rc = mdb_env_set_maxreaders(s->env, 256)) ||
	    (rc = mdb_env_set_mapsize(s->env, s->map_size)))
		return st_lmdb_err(e, rc, "create LMDB environment");
	if ((rc = mdb_env_open(s->env, s->dir, s->env_flags, 0640))) {
		rc = st_lmdb_err(e, rc, "open LMDB environment");
		err_wrap(e, "%s", s->dir);
		return rc;
	}
	if ((rc = check_file_size(s->env, s->dir, e)))
		return rc;
	/* The map may have been grown by an earlier run. */
	mdb_env_info(s->env, &info);
	if (info.me_mapsize > s->map_size)
		s->map_size = info.me_mapsize;
	/* Slots of readers that died (kill -9) would pin old pages forever. */
	mdb_reader_check(s->env, &dead);
	return 0;
}

static int dbis_open(struct store *s, MDB_txn *txn, unsigned flags,
		     struct err *e)
{
	int rc;
	if ((rc = mdb_dbi_open(txn, "meta", flags, &s->meta)) ||
	    (rc = mdb_dbi_open(txn, "records", flags, &s->recs)) ||
	    (rc = mdb_dbi_open(txn, "log", flags, &s->log)) ||
	    (rc = mdb_dbi_open(txn, "vv", flags, &s->vv)) ||
	    (rc = mdb_dbi_open(txn, "conflicts", flags, &s->conf)) ||
	    (rc = mdb_dbi_open(txn, "tombs", flags, &s->tombs)) ||
	    (rc = mdb_dbi_open(txn, "snapin", flags, &s->snapin)) ||
	    (rc = mdb_dbi_open(txn, "sigs", flags, &s->sigs)) ||
	    (rc = mdb_dbi_open(txn, "deks", flags, &s->deks)))
		return st_lmdb_err(e, rc, "open databases");
	return 0;
}

/* Bytes of the pages in use (free pages in the file count: LMDB reuses
 * them), 0 if LMDB cannot say. */
static uint64_t env_bytes_used(MDB_env *env)
{
	MDB_envinfo info;
	MDB_stat st;

	if (mdb_env_info(env, &info) != 0 || mdb_env_stat(env, &st) != 0)
		return 0;
	return (uint64_t)(info.me_last_pgno + 1) * st.ms_psize;
}

static int env_reopen(struct store *s, struct err *e)
{
	struct hlc clock;
	MDB_txn *txn;
	int rc;

	/* No read transaction may be open meanwhile (try again later). */
	if (st_maplock_wr(s))
		return err_set(e, MSCE_EBUSY,
			       "cannot reopen it while a snapshot being sent "
			       "or a backup reads it");
	if (s->env != NULL) /* else closed by a reopen that failed */
		s->size_at_close = env_bytes_used(s->env);
	mdb_env_close(s->env);
	s->env = NULL;
	if ((rc = env_open(s, e)))
		goto out;
	if ((rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn))) {
		rc = st_lmdb_err(e, rc, "begin reopen transaction");
		goto out;
	}
	/* The disk holds the last commit that reached it, which may be the
	 * one reported failed: the state is read again, the clock kept. If
	 * it cannot be, the state known before stays (the status shows it,
	 * and nothing commits until a reopen succeeds). */
	pthread_mutex_lock(&s->stlock);
	clock = s->clock;
	struct vv_entry *vvs = s->vvs;
	size_t nvv = s->nvv;
	uint64_t hw = s->hw, born = s->born;
	uint32_t writer = s->writer;
	int restored = s->restored;
	uint8_t digest[32];
	memcpy(digest, s->digest, 32);
	s->vvs = NULL;
	s->nvv = 0;
	rc = dbis_open(s, txn, 0, e);
	if (rc == 0)
		rc = load_state(s, txn, s->cluster, e);
	if (rc != 0) {
		free(s->vvs);
		s->vvs = vvs;
		s->nvv = nvv;
		s->hw = hw;
		s->born = born;
		s->writer = writer;
		s->restored = restored;
		memcpy(s->digest, digest, 32);
		s->clock = clock;
	} else {
		free(vvs);
		if (clock.last > s->clock.last)
			s->clock = clock;
	}
	pthread_mutex_unlock(&s->stlock);
	if (rc != 0)
		mdb_txn_abort(txn);
	else if ((rc = mdb_txn_commit(txn)))
		rc = st_lmdb_err(e, rc, "reopen store");
out:
	if (rc != 0 && s->env != NULL) {
		mdb_env_close(s->env);
		s->env = NULL;
	}
	pthread_rwlock_unlock(&s->maplock);
	return rc;
}

/* Until a reopen succeeds, reads fail: the status says why it waits. */
int st_env_reopen(struct store *s, struct err *e)
{
	struct err le;
	int rc;

	err_clear(&le);
	rc = env_reopen(s, &le);
	pthread_mutex_lock(&s->stlock);
	snprintf(s->reopen_msg, sizeof s->reopen_msg, "%.*s",
		 (int)sizeof s->reopen_msg - 1, rc ? le.msg : "");
	pthread_mutex_unlock(&s->stlock);
	if (rc && e != NULL)
		*e = le;
	return rc;
}

int store_open(const char *dir, const struct store_options *o,
	       struct store **out, struct err *e)
{
	struct store *s;
	MDB_txn *txn = NULL;
	int rc, seal_it = 0;
	unsigned flags = MDB_NOTLS;

	*out = NULL;
	/* Picks libsodium's fastest BLAKE2b for the record hashes; without
	 * it the portable code runs, several times slower. */
	if (sodium_init() < 0)
		return err_set(e, MSCE_EIO, "libsodium failed to start");
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
	/* One process per store: two writers of one LMDB file would each
	 * number changes of the same origin. */
	if (MUTANT("no_lock")) {
		s->lockfd = -1;
	} else if (dirlock_acquire(dir, &s->lockfd, e)) {
		free(s);
		return e ? e->code : MSCE_EBUSY;
	}
	pthread_mutex_init(&s->wlock, NULL);
	pthread_mutex_init(&s->stlock, NULL);
	pthread_rwlock_init(&s->maplock, NULL);
	s->node_id = o->node_id;
	if (o->sign_sk != NULL) {
		s->has_sk = 1;
		memcpy(s->sk, o->sign_sk, SEG_SK_LEN);
		crypto_sign_ed25519_sk_to_pk(s->pk, s->sk);
	}
	s->nosync = o->nosync;
	s->map_size = o->map_size ? o->map_size : (size_t)16 << 30;
	s->max_map = o->max_map_size ? o->max_map_size : (size_t)1 << 40;
	if (s->map_size > s->max_map)
		s->map_size = s->max_map;
	arena_init(&s->arena, 0);
	if (o->nosync)
		flags |= MDB_NOSYNC;
#ifdef MSCE_BROKEN_FSYNC
	flags |= MDB_NOSYNC; /* mutant: tests/power must catch it */
#endif
	if (MUTANT("no_fsync")) /* msce-sim's crashes must catch it */
		flags |= MDB_NOSYNC;

	s->dir = strdup(dir);
	s->cluster = strdup(o->cluster);
	s->env_flags = flags;
	if (s->dir == NULL || s->cluster == NULL) {
		err_set(e, MSCE_ENOMEM, "open store");
		goto fail;
	}
	if (env_open(s, e))
		goto fail;
	if ((rc = mdb_txn_begin(s->env, NULL, 0, &txn))) {
		st_lmdb_err(e, rc, "begin open transaction");
		goto fail;
	}
	if (dbis_open(s, txn, MDB_CREATE, e))
		goto fail;
	if (load_state(s, txn, o->cluster, e) ||
	    st_crypt_open(s, txn, o->master_key, &seal_it, e))
		goto fail;
	if ((rc = mdb_txn_commit(txn))) {
		txn = NULL;
		st_lmdb_err(e, rc, "commit open transaction");
		goto fail;
	}
	txn = NULL;
	/* A store in the clear given a master key: sealed now, in batches
	 * (a crash meanwhile goes on at the next open). */
	if (seal_it && st_crypt_seal_store(s, e))
		goto fail;
	if (store_set_keys(s, NULL, 0, e))
		goto fail;
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
	free(s->keys);
	sodium_memzero(s->sk, sizeof s->sk);
	st_crypt_close(s);
	pthread_mutex_destroy(&s->wlock);
	pthread_mutex_destroy(&s->stlock);
	pthread_rwlock_destroy(&s->maplock);
	dirlock_release(s->lockfd);
	free(s->dir);
	free(s->cluster);
	free(s);
}

/* ---- committed state ---------------------------------------------------- */

size_t store_vv(struct store *s, struct vv_entry *out, size_t max)
{
	return store_state(s, out, max, NULL, NULL);
}

struct vv_entry store_vv_get(struct store *s, uint32_t origin)
{
	struct vv_entry z = {origin, 0, 0, 0};
	pthread_mutex_lock(&s->stlock);
	struct vv_entry *p = st_vv_find(s->vvs, s->nvv, origin);
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

size_t store_state(struct store *s, struct vv_entry *vv, size_t max,
		   uint8_t digest[32], uint64_t *hw)
{
	size_t n;
	pthread_mutex_lock(&s->stlock);
	for (size_t i = 0; i < s->nvv && i < max; i++)
		vv[i] = s->vvs[i];
	n = s->nvv;
	if (digest != NULL)
		memcpy(digest, s->digest, 32);
	if (hw != NULL)
		*hw = s->hw;
	pthread_mutex_unlock(&s->stlock);
	return n;
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

int store_failed_why(struct store *s, char *buf, size_t len)
{
	/* After a failed meta page write LMDB refuses reads too, until the
	 * store is reopened: a reopen waits for long reads to end. */
	int reads_fail = st_env_fatal(s);

	pthread_mutex_lock(&s->stlock);
	if (!reads_fail)
		snprintf(buf, len, "%s", s->failed_msg);
	else if (s->reopen_msg[0] == '\0')
		snprintf(buf, len, "%s; reads fail until the store is reopened",
			 s->failed_msg);
	else
		snprintf(buf, len,
			 "%s; reads fail until the store is reopened: %s",
			 s->failed_msg, s->reopen_msg);
	pthread_mutex_unlock(&s->stlock);
	return reads_fail;
}

uint64_t store_commit_failures(struct store *s)
{
	uint64_t n;
	pthread_mutex_lock(&s->stlock);
	n = s->commit_failures;
	pthread_mutex_unlock(&s->stlock);
	return n;
}

static int clock_batch(struct wtxn *w, void *arg, struct err *e)
{
	(void)e;
	hlc_now(&w->clock, *(uint64_t *)arg);
	return 0;
}

int store_clock_advance(struct store *s, uint64_t wall_ms, struct err *e)
{
	return st_run_batch(s, clock_batch, &wall_ms, e);
}

/* ---- backup ------------------------------------------------------------- */

/* A backup is marked, and loses the writer, so that a node started on it
 * writes under a new incarnation: the original may have gone on writing
 * after the copy. The commit is synced (the env is opened without
 * MDB_NOSYNC). */
static int mark_restored(const char *dir, struct err *e)
{
	static const uint8_t none[12];
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
	int rc;

	if ((rc = mdb_env_create(&env)))
		return st_lmdb_err(e, rc, "mark the backup");
	mdb_env_set_maxdbs(env, 8);
	if ((rc = mdb_env_open(env, dir, 0, 0640))) {
		mdb_env_close(env);
		return st_lmdb_err(e, rc, "mark the backup");
	}
	if ((rc = check_file_size(env, dir, e))) {
		mdb_env_close(env);
		return rc;
	}
	if ((rc = mdb_txn_begin(env, NULL, 0, &txn))) {
		mdb_env_close(env);
		return st_lmdb_err(e, rc, "mark the backup");
	}
	if ((rc = mdb_dbi_open(txn, "meta", 0, &dbi)) ||
	    (rc = st_meta_put(txn, dbi, "restored", "1", 1)) ||
	    (!MUTANT("restore_keeps_writer") &&
	     (rc = st_meta_put(txn, dbi, "writer", none, 12)))) {
		mdb_txn_abort(txn);
		mdb_env_close(env);
		return st_lmdb_err(e, rc, "mark the backup");
	}
	if (fault_hit(FAULT_COMMIT)) {
		mdb_txn_abort(txn);
		rc = EIO;
	} else {
		rc = mdb_txn_commit(txn);
	}
	mdb_env_close(env);
	return rc ? st_lmdb_err(e, rc, "mark the backup") : 0;
}

int store_created(const struct store *s) { return s->created; }
int store_restored(const struct store *s) { return s->restored; }

/* ---- identity ----------------------------------------------------------- */

uint32_t store_writer(struct store *s, uint64_t *born)
{
	uint32_t w;
	pthread_mutex_lock(&s->stlock);
	w = s->writer;
	if (born != NULL)
		*born = s->born;
	pthread_mutex_unlock(&s->stlock);
	return w;
}

struct writer_args {
	uint32_t writer;
	uint64_t floor, wall_ms;
};

static int writer_batch(struct wtxn *w, void *arg, struct err *e)
{
	struct writer_args *a = arg;
	uint8_t buf[12];
	MDB_val key = {8, (void *)"restored"};
	int rc;

	w->set_writer = 1;
	w->writer = a->writer;
	w->born = 0;
	if (a->writer != 0) {
		hlc_observe(&w->clock, a->floor);
		w->born = hlc_now(&w->clock, a->wall_ms);
	}
	be32(buf, w->writer);
	le64(buf + 4, w->born);
	if ((rc = st_meta_put(w->txn, w->s->meta, "writer", buf, 12)))
		return st_lmdb_err(e, rc, "record the store writer");
	rc = mdb_del(w->txn, w->s->meta, &key, NULL);
	if (rc && rc != MDB_NOTFOUND)
		return st_lmdb_err(e, rc, "clear the restored mark");
	return 0;
}

int store_set_writer(struct store *s, uint32_t writer, uint64_t floor,
		     uint64_t wall_ms, struct err *e)
{
	struct writer_args a = {writer, floor, wall_ms};
	if (writer != 0 && writer_node(writer) != s->node_id)
		return err_set(e, MSCE_EINVAL, "writer %u is not of node %u",
			       writer, s->node_id);
	return st_run_batch(s, writer_batch, &a, e);
}

/* fsyncs a file or a directory by name (what, for the error). */
static int sync_path(const char *path, int dir, const char *what, struct err *e)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | (dir ? O_DIRECTORY : 0));
	int rc = -1, en;

	if (fd >= 0) {
		if (fault_hit(FAULT_COMMIT))
			errno = EIO;
		else
			rc = fsync(fd);
		en = errno;
		close(fd);
		errno = en;
	}
	if (rc == 0)
		return 0;
	return err_set(e, errno == ENOSPC ? MSCE_EFULL : MSCE_EIO, "%s %s: %s",
		       what, path, strerror(errno));
}

/* What store_backup makes in a backup directory; nothing else is there. */
static void remove_copy(const char *dir)
{
	static const char *const files[] = {"data.mdb", "lock.mdb"};
	char file[600];

	for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
		if (snprintf(file, sizeof file, "%s/%s", dir, files[i]) <
		    (int)sizeof file)
			unlink(file);
	}
	rmdir(dir);
}

/* The copy appears under its name only whole, marked and on disk, since
 * an operator restores whatever is there (deploy/README.md, section 5): an
 * unmarked copy would take writes under its old writer before hearing from
 * its peers, and lose them. So it is written into ".NAME.partial" beside
 * NAME (whose mkdir also keeps a second backup into NAME out), marked,
 * synced with its directory, renamed to NAME and the parent synced.
 *
 * A failed step removes what was made, so that the same name can be tried
 * again. A node killed meanwhile leaves .NAME.partial, never NAME: the next
 * backup into NAME names it, to be removed. */
int store_backup(struct store *s, const char *path, uint64_t *bytes,
		 struct err *e)
{
	char tmp[600], file[620], parent[600];
	struct stat st;
	int rc;

	*bytes = 0;
	if (config_backup_partial(path, tmp, sizeof tmp) ||
	    snprintf(parent, sizeof parent, "%s", path) >= (int)sizeof parent)
		return err_set(e, MSCE_EINVAL,
			       "backup path %s: too long, or not a directory "
			       "name",
			       path);
	if (lstat(path, &st) == 0)
		return err_set(e, MSCE_EINVAL,
			       "backup directory %s: already exists", path);
	if (errno != ENOENT)
		return err_set(e, MSCE_EIO, "backup directory %s: %s", path,
			       strerror(errno));
	if (mkdir(tmp, 0750) != 0) {
		if (errno != EEXIST)
			return err_set(e, MSCE_EIO, "backup directory %s: %s",
				       path, strerror(errno));
		return err_set(e, MSCE_EINVAL,
			       "backup directory %s: %s exists: a backup into "
			       "it is under way, or one was cut off (remove "
			       "it then)",
			       path, tmp);
	}
	/* A read transaction inside: no map growth meanwhile. */
	pthread_rwlock_rdlock(&s->maplock);
	rc = s->env ? mdb_env_copy2(s->env, tmp, MDB_CP_COMPACT) : MDB_PANIC;
	pthread_rwlock_unlock(&s->maplock);
	if (rc == 0 && fault_hit(FAULT_COMMIT)) /* as a failed last write */
		rc = EIO;
	if (rc) {
		st_lmdb_err(e, rc, "copy store");
		goto fail;
	}
	snprintf(file, sizeof file, "%s/data.mdb", tmp);
	if (mark_restored(tmp, e) || sync_path(file, 0, "sync", e) ||
	    sync_path(tmp, 1, "sync directory", e))
		goto fail;
	*bytes = stat(file, &st) == 0 ? (uint64_t)st.st_size : 0;
	/* Onto an empty directory made meanwhile at most; never onto one
	 * that holds anything. */
	if (rename(tmp, path) != 0) {
		int taken = errno == ENOTEMPTY || errno == EEXIST;
		err_set(e, taken ? MSCE_EINVAL : MSCE_EIO,
			"rename %s to %s: %s", tmp, path,
			taken ? "it already exists" : strerror(errno));
		goto fail;
	}
	/* Until the parent is synced the rename may not outlive a crash: it
	 * failed, and the same name must work again. */
	if (sync_path(dirname(parent), 1, "sync directory", e)) {
		remove_copy(path);
		*bytes = 0;
		err_wrap(e, "backup %s (removed)", path);
		return e ? e->code : MSCE_EIO;
	}
	return 0;
fail:
	remove_copy(tmp);
	*bytes = 0;
	err_wrap(e, "backup %s (nothing kept)", path);
	return e ? e->code : MSCE_EIO;
}

uint64_t store_size(struct store *s)
{
	uint64_t n;

	pthread_rwlock_rdlock(&s->maplock); /* not reopened meanwhile */
	n = s->env != NULL ? env_bytes_used(s->env) : s->size_at_close;
	pthread_rwlock_unlock(&s->maplock);
	return n;
}

int store_retry(struct store *s, uint64_t wall_ms, struct err *e)
{
	int rc;

	pthread_mutex_lock(&s->wlock);
	if (!s->failed) {
		pthread_mutex_unlock(&s->wlock);
		return 0;
	}
	/* After a failed meta page write LMDB refuses every transaction,
	 * reads included, until the environment is reopened. */
	if (st_env_fatal(s)) { /* also when a reopen failed before */
		if ((rc = st_env_reopen(s, e))) {
			pthread_mutex_unlock(&s->wlock);
			return rc;
		}
	}
	/* A full disk has room for a probe commit long before it has room
	 * for the next batch: wait until space was freed, or the store
	 * would take writes and refuse them again by turns. */
	if (s->failed == MSCE_EFULL) {
		uint64_t room = st_disk_room(s);
		if (s->full_since == 0)
			s->full_since = wall_ms;
		if (s->failed_room != UINT64_MAX &&
		    room < s->failed_room + STORE_ROOM_TO_RESUME &&
		    wall_ms - s->full_since < STORE_FULL_PROBE_MS) {
			pthread_mutex_unlock(&s->wlock);
			return err_set(e, MSCE_EFULL,
				       "the disk is still full: %llu bytes "
				       "free, %llu when the commit failed",
				       (unsigned long long)room,
				       (unsigned long long)s->failed_room);
		}
	}
	s->full_since = 0;
	/* A failed commit left the last committed state on disk (LMDB writes
	 * its meta page last); a probe commit tells whether the cause is
	 * gone. The store stays failed until it has: a status read while
	 * the probe runs must not say that writes are taken. */
	s->probing = 1;
	rc = st_run_batch_locked(s, clock_batch, &wall_ms, e);
	s->probing = 0;
	if (rc == 0) {
		pthread_mutex_lock(&s->stlock);
		s->failed = 0;
		pthread_mutex_unlock(&s->stlock);
	}
	pthread_mutex_unlock(&s->wlock);
	return rc;
}
