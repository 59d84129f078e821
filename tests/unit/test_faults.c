/* SPDX-License-Identifier: Apache-2.0 */
/* Fault injection in the store: a failing commit, a full disk, and an
 * allocation failure at each allocation site of the apply and write paths,
 * walked one by one. Each time: a clear error, reads go on, nothing
 * acknowledged is lost or changed, and writes resume once the fault
 * clears. A failed meta page write stops reads too until the store is
 * reopened, and the status says so meanwhile. Failed commits are counted,
 * whoever made them. */
#include <dlfcn.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "../meta_page.h"
#include "fault.h"
#include "storeutil.h"

#define T0 1700000000000ull

/* A disk that fails LMDB's meta page writes (as tests/cluster/failsync.c
 * does for the daemon): while meta_fails is set, writes to the first two
 * pages of a data.mdb fail with EIO. LMDB then refuses every transaction,
 * reads included (MDB_PANIC), until its environment is reopened. */
static int meta_fails;
/* While set, reads of those pages fail too: a reopen cannot read the
 * meta pages, and the environment stays closed. */
static int meta_reads_fail;

ssize_t pwrite(int fd, const void *buf, size_t count, off_t off)
{
	static ssize_t (*real)(int, const void *, size_t, off_t);
	if (meta_fails && is_lmdb_meta_page(fd, off)) {
		errno = EIO;
		return -1;
	}
	if (real == NULL)
		*(void **)&real = dlsym(RTLD_NEXT, "pwrite");
	return real(fd, buf, count, off);
}

ssize_t pwrite64(int fd, const void *buf, size_t count, off_t off)
{
	return pwrite(fd, buf, count, off);
}

ssize_t pread(int fd, void *buf, size_t count, off_t off)
{
	static ssize_t (*real)(int, void *, size_t, off_t);
	if (meta_reads_fail && is_lmdb_meta_page(fd, off)) {
		errno = EIO;
		return -1;
	}
	if (real == NULL)
		*(void **)&real = dlsym(RTLD_NEXT, "pread");
	return real(fd, buf, count, off);
}

ssize_t pread64(int fd, void *buf, size_t count, off_t off)
{
	return pread(fd, buf, count, off);
}

static struct store *open_node(const char *dir, uint32_t id)
{
	struct store_options o = {.node_id = id, .cluster = "faults"};
	struct store *s;
	struct err e;
	assert_int_equal(store_open(dir, &o, &s, &e), 0);
	if (store_writer(s, NULL) == 0)
		assert_int_equal(store_set_writer(s, id, 0, 1, &e), 0);
	return s;
}

static void snapshot_state(struct store *s, uint8_t dump[32],
			   uint8_t digest[32])
{
	su_dump(s, dump);
	store_digest(s, digest);
}

static void failed_commit_then_recovery(void **state)
{
	(void)state;
	char *dir = tu_tmpdir();
	struct store *s = open_node(dir, 1);
	uint8_t d1[32], g1[32], d2[32], g2[32];
	struct store_written out;
	struct err e;

	for (int i = 0; i < 20; i++) {
		char k[16];
		snprintf(k, sizeof k, "k%d", i);
		assert_int_equal(su_put(s, "t", k, "v", "acked", T0, NULL), 0);
	}
	snapshot_state(s, d1, g1);
	fault_arm(FAULT_COMMIT, 1, 1); /* every commit fails from now on */
	struct store_field_in f = {"v", 1, (const uint8_t *)"lost", 4, 0, {0, 0}};
	struct store_write w = {STORE_PUT, "t", 1, "k0", 2, &f, 1, 0};
	assert_int_equal(store_write(s, &w, 1, T0, &out, &e), MSCE_EIO);
	assert_true(store_failed(s) != 0);
	/* Refused with a clear error; reads and status go on. */
	assert_int_equal(store_write(s, &w, 1, T0, &out, &e), MSCE_EREADONLY);
	assert_non_null(strstr(e.msg, "reads go on"));
	assert_string_equal(su_get(s, "t", "k0", "v"), "acked");
	snapshot_state(s, d2, g2);
	assert_memory_equal(d1, d2, 32);
	assert_memory_equal(g1, g2, 32);
	assert_int_equal(store_vv_get(s, 1).seq, 20);
	/* While the cause lasts, the probe fails too. */
	assert_int_not_equal(store_retry(s, T0, &e), 0);
	assert_true(store_failed(s) != 0);
	/* The cause goes away: the probe succeeds, writes resume. */
	fault_clear(FAULT_COMMIT);
	assert_int_equal(store_retry(s, T0, &e), 0);
	assert_int_equal(store_failed(s), 0);
	assert_int_equal(su_put(s, "t", "k0", "v", "after", T0, NULL), 0);
	store_close(s);
	/* Reopened: every acknowledged write, nothing of the failed one. */
	s = open_node(dir, 1);
	assert_string_equal(su_get(s, "t", "k0", "v"), "after");
	assert_string_equal(su_get(s, "t", "k19", "v"), "acked");
	assert_int_equal(store_vv_get(s, 1).seq, 21);
	store_close(s);
	tu_rmrf(dir);
}

static void full_disk_is_a_clear_error(void **state)
{
	(void)state;
	char *dir = tu_tmpdir();
	struct store *s = open_node(dir, 1);
	uint8_t d1[32], g1[32], d2[32], g2[32];
	struct store_written out;
	struct err e;

	assert_int_equal(su_put(s, "t", "a", "v", "1", T0, NULL), 0);
	snapshot_state(s, d1, g1);
	fault_arm(FAULT_FULL, 1, 1);
	struct store_field_in f = {"v", 1, (const uint8_t *)"2", 1, 0, {0, 0}};
	struct store_write w = {STORE_PUT, "t", 1, "b", 1, &f, 1, 0};
	assert_int_equal(store_write(s, &w, 1, T0, &out, &e), MSCE_EFULL);
	assert_non_null(strstr(e.msg, "No space left"));
	snapshot_state(s, d2, g2);
	assert_memory_equal(d1, d2, 32);
	assert_memory_equal(g1, g2, 32);
	assert_null(su_get(s, "t", "b", "v"));
	assert_string_equal(su_get(s, "t", "a", "v"), "1");
	/* Space freed: the next write goes through, no restart needed. */
	fault_clear(FAULT_FULL);
	assert_int_equal(store_write(s, &w, 1, T0, &out, &e), 0);
	assert_string_equal(su_get(s, "t", "b", "v"), "2");
	store_close(s);
	tu_rmrf(dir);
}

/* A commit that finds the disk full: refused with the cause, then
 * read-only; the probe waits for room (the cluster test full_disk frees
 * it on a tmpfs of its own), but goes ahead a minute after the last one
 * whatever the room, so an ENOSPC that passed cannot hold writes back. */
static void full_disk_at_commit_probes_a_minute_later(void **state)
{
	(void)state;
	char *dir = tu_tmpdir();
	struct store *s = open_node(dir, 1);
	struct store_written out;
	struct err e;

	assert_int_equal(su_put(s, "t", "a", "v", "acked", T0, NULL), 0);
	fault_arm(FAULT_NOSPACE, 1, 0);
	struct store_field_in f = {"v", 1, (const uint8_t *)"lost", 4, 0, {0, 0}};
	struct store_write w = {STORE_PUT, "t", 1, "b", 1, &f, 1, 0};
	assert_int_equal(store_write(s, &w, 1, T0, &out, &e), MSCE_EFULL);
	assert_non_null(strstr(e.msg, "No space left on device"));
	fault_clear(FAULT_NOSPACE);
	assert_int_equal(store_failed(s), MSCE_EFULL);
	assert_int_equal(store_write(s, &w, 1, T0, &out, &e), MSCE_EREADONLY);
	/* Held back now unless the file system gained a MiB meanwhile. */
	int rc = store_retry(s, T0, &e);
	if (rc != 0) {
		assert_int_equal(rc, MSCE_EFULL);
		assert_non_null(strstr(e.msg, "still full"));
		assert_int_equal(store_failed(s), MSCE_EFULL);
		assert_int_equal(store_retry(s, T0 + STORE_FULL_PROBE_MS,
					     &e),
				 0);
	}
	assert_int_equal(store_failed(s), 0);
	assert_int_equal(su_put(s, "t", "c", "v", "after", T0, NULL), 0);
	assert_null(su_get(s, "t", "b", "v"));
	assert_string_equal(su_get(s, "t", "a", "v"), "acked");
	store_close(s);
	tu_rmrf(dir);
}

/* msce_commit_failures_total is the store's count: commits made outside
 * the writer's batches (log truncation, tombstone collection, probes)
 * count when they fail, and writes refused while the store is failed do
 * not (they began no transaction). */
static void background_commit_failures_count(void **state)
{
	(void)state;
	char *dir = tu_tmpdir();
	struct store *s = open_node(dir, 1);
	struct vv_entry upto = {1, 0, UINT64_MAX, 0};
	struct store_written out;
	size_t dropped;
	struct err e;

	for (int i = 0; i < 10; i++) {
		char k[16];
		snprintf(k, sizeof k, "k%d", i);
		assert_int_equal(su_put(s, "t", k, "v", "acked", T0, NULL), 0);
	}
	assert_int_equal(su_del(s, "t", "k9", T0), 0);
	assert_int_equal(store_commit_failures(s), 0);
	/* Log truncation: its commit fails; the store turns read-only. */
	fault_arm(FAULT_COMMIT, 1, 0);
	assert_int_equal(store_log_truncate(s, 1, 5, &e), MSCE_EIO);
	assert_int_equal(store_failed(s), MSCE_EIO);
	assert_int_equal(store_commit_failures(s), 1);
	/* Refused writes are no commits. */
	struct store_field_in f = {"v", 1, (const uint8_t *)"x", 1, 0, {0, 0}};
	struct store_write w = {STORE_PUT, "t", 1, "k0", 2, &f, 1, 0};
	assert_int_equal(store_write(s, &w, 1, T0, &out, &e), MSCE_EREADONLY);
	assert_int_equal(store_log_truncate(s, 1, 5, &e), MSCE_EREADONLY);
	assert_int_equal(store_commit_failures(s), 1);
	/* A probe commit that fails counts; one that succeeds does not. */
	fault_arm(FAULT_COMMIT, 1, 0);
	assert_int_equal(store_retry(s, T0, &e), MSCE_EIO);
	assert_int_equal(store_commit_failures(s), 2);
	assert_int_equal(store_retry(s, T0, &e), 0);
	assert_int_equal(store_commit_failures(s), 2);
	/* Tombstone collection finding no room to grow the map. */
	fault_arm(FAULT_FULL, 1, 0);
	assert_int_equal(store_gc_tombstones(s, &upto, 1, &dropped, &e),
			 MSCE_EFULL);
	assert_int_equal(store_commit_failures(s), 3);
	assert_int_equal(store_gc_tombstones(s, &upto, 1, &dropped, &e), 0);
	assert_int_equal(store_log_truncate(s, 1, 5, &e), 0);
	assert_int_equal(store_commit_failures(s), 3);
	store_close(s);
	tu_rmrf(dir);
}

/* A reopen that cannot read the disk, or cannot load what it read,
 * leaves the environment closed: the status goes on saying what the
 * store holds (its size, its vector, its digest), which nothing can
 * change meanwhile, and why reads fail; once a probe reopens it, all is
 * as before. */
static void a_failed_reopen_keeps_the_status_true(void **state)
{
	(void)state;
	char *dir = tu_tmpdir();
	struct store *s = open_node(dir, 1);
	struct store_written out;
	char why[512];
	struct err e;

	for (int i = 0; i < 50; i++) {
		char k[16];
		snprintf(k, sizeof k, "k%d", i);
		assert_int_equal(su_put(s, "t", k, "v", "acked", T0, NULL), 0);
	}
	uint64_t size = store_size(s);
	struct vv_entry vv = store_vv_get(s, 1);
	assert_true(size > 0);
	assert_int_equal(vv.seq, 50);
	meta_fails = 1;
	meta_reads_fail = 1;
	struct store_field_in f = {"v", 1, (const uint8_t *)"lost", 4, 0, {0, 0}};
	struct store_write w = {STORE_PUT, "t", 1, "k0", 2, &f, 1, 0};
	assert_int_equal(store_write(s, &w, 1, T0, &out, &e), MSCE_EIO);
	assert_int_equal(store_failed_why(s, why, sizeof why), 1);
	assert_non_null(strstr(why, "reads fail until the store is reopened"));
	assert_int_equal(store_size(s), size);
	assert_int_equal(store_vv_get(s, 1).seq, vv.seq);
	/* A probe while the disk still fails: closed still, same answers. */
	assert_int_not_equal(store_retry(s, T0, &e), 0);
	assert_int_equal(store_size(s), size);
	assert_int_equal(store_failed_why(s, why, sizeof why), 1);
	/* A reopen that reads the disk but cannot load the state (its
	 * vector's allocation fails) keeps what was known. */
	meta_fails = 0;
	meta_reads_fail = 0;
	uint8_t d1[32], d2[32];
	store_digest(s, d1);
	fault_arm(FAULT_ALLOC, 1, 1);
	assert_int_equal(store_retry(s, T0, &e), MSCE_ENOMEM);
	fault_clear(FAULT_ALLOC);
	assert_int_equal(store_vv_get(s, 1).seq, vv.seq);
	store_digest(s, d2);
	assert_memory_equal(d1, d2, 32);
	assert_int_equal(store_size(s), size);
	assert_int_equal(store_failed_why(s, why, sizeof why), 1);
	assert_int_equal(store_retry(s, T0, &e), 0);
	assert_int_equal(store_failed(s), 0);
	assert_true(store_size(s) >= size);
	assert_string_equal(su_get(s, "t", "k0", "v"), "acked");
	assert_int_equal(store_vv_get(s, 1).seq, vv.seq);
	store_close(s);
	tu_rmrf(dir);
}

/* What the store says about itself while a probe commit runs (read by
 * the status from another thread) is what holds at that moment: failed,
 * until the probe has committed. */
struct probe_watch {
	struct store *s;
	int seen, failed_seen;
};

static void watch_commit(enum fault_kind k, void *arg)
{
	struct probe_watch *pw = arg;
	if (k != FAULT_COMMIT)
		return;
	pw->seen++;
	if (store_failed(pw->s) != 0)
		pw->failed_seen++;
}

static void a_running_probe_leaves_the_store_failed(void **state)
{
	(void)state;
	char *dir = tu_tmpdir();
	struct store *s = open_node(dir, 1);
	struct probe_watch pw = {s, 0, 0};
	struct err e;

	assert_int_equal(su_put(s, "t", "a", "v", "acked", T0, NULL), 0);
	fault_arm(FAULT_COMMIT, 1, 1);
	assert_int_not_equal(su_put(s, "t", "b", "v", "lost", T0, NULL), 0);
	fault_observe(watch_commit, &pw);
	/* A probe that fails: failed before its commit, and after. */
	assert_int_equal(store_retry(s, T0, &e), MSCE_EIO);
	assert_int_equal(pw.seen, 1);
	assert_int_equal(pw.failed_seen, 1);
	assert_int_not_equal(store_failed(s), 0);
	/* A probe that succeeds: still failed until it has committed. */
	fault_arm(FAULT_COMMIT, 1000, 0);
	assert_int_equal(store_retry(s, T0, &e), 0);
	assert_int_equal(pw.seen, 2);
	assert_int_equal(pw.failed_seen, 2);
	assert_int_equal(store_failed(s), 0);
	fault_observe(NULL, NULL);
	fault_clear(FAULT_COMMIT);
	assert_int_equal(su_put(s, "t", "c", "v", "after", T0, NULL), 0);
	assert_string_equal(su_get(s, "t", "a", "v"), "acked");
	assert_null(su_get(s, "t", "b", "v"));
	store_close(s);
	tu_rmrf(dir);
}

/* After a failed meta page write LMDB refuses reads too until the store is
 * reopened, and a snapshot being sent holds the reopen off: meanwhile the
 * status (store_failed_why, and the refusal of a write) says reads fail
 * and why, never "reads go on"; once reopened, the usual text is back. */
static void failed_meta_write_while_a_snapshot_reads(void **state)
{
	(void)state;
	char *dir = tu_tmpdir();
	struct store *s = open_node(dir, 1);
	struct store_snap *sn;
	struct store_written out;
	char why[512];
	struct err e;

	assert_int_equal(su_put(s, "t", "a", "v", "acked", T0, NULL), 0);
	assert_int_equal(store_snap_begin(s, &sn, &e), 0);
	meta_fails = 1;
	struct store_field_in f = {"v", 1, (const uint8_t *)"lost", 4, 0, {0, 0}};
	struct store_write w = {STORE_PUT, "t", 1, "b", 1, &f, 1, 0};
	assert_int_equal(store_write(s, &w, 1, T0, &out, &e), MSCE_EIO);
	meta_fails = 0; /* the disk is fine again; LMDB is not */
	assert_int_equal(store_failed(s), MSCE_EIO);
	/* Reads fail, and the status says so and why. */
	struct su_getctx g = {.field = "v"};
	assert_int_not_equal(store_get(s, "t", 1, "a", 1, su_get_cb, &g, &e),
			     0);
	assert_non_null(strstr(e.msg, "MDB_PANIC"));
	int reads_fail = store_failed_why(s, why, sizeof why);
	assert_string_equal(why, "Input/output error; reads fail until the "
				 "store is reopened: cannot reopen it while a "
				 "snapshot being sent or a backup reads it");
	assert_int_equal(reads_fail, 1);
	assert_int_equal(store_write(s, &w, 1, T0, &out, &e), MSCE_EREADONLY);
	assert_null(strstr(e.msg, "reads go on"));
	assert_non_null(strstr(e.msg, "reads fail until the store is reopened"));
	/* A probe while the snapshot reads cannot reopen it either. */
	assert_int_equal(store_retry(s, T0, &e), MSCE_EBUSY);
	assert_int_equal(store_failed_why(s, why, sizeof why), 1);
	assert_non_null(strstr(why, "reads fail"));
	/* The snapshot ends: not reopened yet, and the status still says so. */
	store_snap_end(sn);
	assert_int_equal(store_failed_why(s, why, sizeof why), 1);
	/* The next probe reopens it; its commit fails (the disk again), but
	 * not the meta page: reads go on, and the status says just that. */
	fault_arm(FAULT_COMMIT, 1, 0);
	assert_int_equal(store_retry(s, T0, &e), MSCE_EIO);
	assert_int_equal(store_failed_why(s, why, sizeof why), 0);
	assert_string_equal(why, "Input/output error");
	assert_string_equal(su_get(s, "t", "a", "v"), "acked");
	assert_int_equal(store_write(s, &w, 1, T0, &out, &e), MSCE_EREADONLY);
	assert_non_null(strstr(e.msg, "(Input/output error); reads go on"));
	assert_int_equal(store_retry(s, T0, &e), 0);
	assert_int_equal(store_failed(s), 0);
	assert_null(su_get(s, "t", "b", "v"));
	assert_int_equal(store_write(s, &w, 1, T0, &out, &e), 0);
	assert_string_equal(su_get(s, "t", "b", "v"), "lost");
	store_close(s);
	tu_rmrf(dir);
}

/* Builds 30 changes of origin 2 (puts, overwrites, a conflict, a delete). */
static void make_changes(const char *root, struct su_blobs *bl)
{
	char path[256];
	snprintf(path, sizeof path, "%s/origin", root);
	struct store *o = open_node(path, 2);
	for (int i = 0; i < 30; i++) {
		char k[16];
		snprintf(k, sizeof k, "k%d", i % 7);
		if (i % 11 == 10)
			assert_int_equal(su_del(o, "t", k, T0 + (uint64_t)i), 0);
		else
			assert_int_equal(su_put(o, "t", k, i % 2 ? "a" : "b",
						"value", T0 + (uint64_t)i, NULL),
					 0);
	}
	su_log(o, 2, 1, bl);
	store_close(o);
}

static void alloc_failure_at_each_site(void **state)
{
	(void)state;
	char *root = tu_tmpdir();
	struct su_blobs *bl = calloc(1, sizeof *bl);
	uint8_t ref_dump[32], ref_dig[32];
	char path[256];
	int sites = 0;

	make_changes(root, bl);
	assert_int_equal(bl->n, 30);
	/* Reference: the batch applied without faults. */
	snprintf(path, sizeof path, "%s/ref", root);
	struct store *ref = open_node(path, 1);
	struct store_apply_result res;
	struct err e;
	assert_int_equal(su_put(ref, "t", "k1", "a", "mine", T0, NULL), 0);
	assert_int_equal(store_apply(ref, bl->b, bl->n, T0, 60000, &res, &e), 0);
	snapshot_state(ref, ref_dump, ref_dig);
	store_close(ref);

	for (long nth = 1;; nth++) {
		uint8_t d0[32], g0[32], d1[32], g1[32];
		snprintf(path, sizeof path, "%s/walk%ld", root, nth);
		struct store *s = open_node(path, 1);
		assert_int_equal(su_put(s, "t", "k1", "a", "mine", T0, NULL), 0);
		snapshot_state(s, d0, g0);
		fault_arm(FAULT_ALLOC, nth, 0);
		int rc = store_apply(s, bl->b, bl->n, T0, 60000, &res, &e);
		int fired = fault_events(FAULT_ALLOC) >= nth;
		fault_clear(FAULT_ALLOC);
		if (rc == 0) {
			/* Past the last site: the walk is over. */
			assert_false(fired);
			store_close(s);
			tu_rmrf(strdup(path));
			break;
		}
		sites++;
		assert_int_equal(rc, MSCE_ENOMEM);
		assert_true(e.msg[0] != '\0');
		/* Nothing of the batch is visible, nor counted as applied
		 * (peers' counts of changes received come from it); the
		 * store still works. */
		assert_int_equal(res.applied, 0);
		assert_int_equal(res.duplicates, 0);
		snapshot_state(s, d1, g1);
		assert_memory_equal(d0, d1, 32);
		assert_memory_equal(g0, g1, 32);
		assert_int_equal(store_vv_get(s, 2).seq, 0);
		assert_int_equal(store_failed(s), 0);
		assert_int_equal(store_apply(s, bl->b, bl->n, T0, 60000, &res, &e),
				 0);
		snapshot_state(s, d1, g1);
		assert_memory_equal(d1, ref_dump, 32);
		assert_memory_equal(g1, ref_dig, 32);
		store_close(s);
		tu_rmrf(strdup(path));
		assert_true(nth < 100000);
	}
	printf("allocation sites on the apply path walked: %d\n", sites);
	assert_true(sites > 30);

	/* The local write path too. */
	int wsites = 0;
	for (long nth = 1;; nth++) {
		struct store_written out;
		snprintf(path, sizeof path, "%s/w%ld", root, nth);
		struct store *s = open_node(path, 1);
		fault_arm(FAULT_ALLOC, nth, 0);
		struct store_field_in f = {"v", 1, (const uint8_t *)"x", 1, 0,
					   {0, 0}};
		struct store_write w = {STORE_PUT, "t", 1, "k", 1, &f, 1, 0};
		int rc = store_write(s, &w, 1, T0, &out, &e);
		fault_clear(FAULT_ALLOC);
		if (rc == 0 && out.err.code == 0) {
			store_close(s);
			tu_rmrf(strdup(path));
			break;
		}
		wsites++;
		assert_int_equal(rc ? rc : out.err.code, MSCE_ENOMEM);
		assert_int_equal(store_vv_get(s, 1).seq, 0);
		assert_null(su_get(s, "t", "k", "v"));
		assert_int_equal(su_put(s, "t", "k", "v", "x", T0, NULL), 0);
		store_close(s);
		tu_rmrf(strdup(path));
		assert_true(nth < 1000);
	}
	printf("allocation sites on the write path walked: %d\n", wsites);
	assert_true(wsites > 3);
	su_blobs_free(bl);
	free(bl);
	tu_rmrf(root);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(failed_commit_then_recovery),
		cmocka_unit_test(full_disk_is_a_clear_error),
		cmocka_unit_test(full_disk_at_commit_probes_a_minute_later),
		cmocka_unit_test(alloc_failure_at_each_site),
		cmocka_unit_test(background_commit_failures_count),
		cmocka_unit_test(failed_meta_write_while_a_snapshot_reads),
		cmocka_unit_test(a_running_probe_leaves_the_store_failed),
		cmocka_unit_test(a_failed_reopen_keeps_the_status_true),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
