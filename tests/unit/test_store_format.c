/* SPDX-License-Identifier: Apache-2.0 */
/* Store format versions: a store written by msce 0.1.0 (format 1, the
 * fixture in tests/fixtures/store-format1) is upgraded in place on open and
 * keeps its records and its writer (its unsigned log goes, sealed); given
 * a master key, its values are sealed on the way, and from then on only
 * that key opens it; a store of a newer format is refused naming both
 * formats, and left as it was. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <lmdb.h>
#include <sys/stat.h>

#include "fault.h"
#include "storeutil.h"

#define FIXTURE MSCE_SOURCE_DIR "/tests/fixtures/store-format1/data.mdb"
#define T0 1800000000000ull /* 2027: after every fixture write */

static void copy_file(const char *from, const char *to)
{
	char buf[65536];
	ssize_t n;
	int in = open(from, O_RDONLY), out;

	if (in < 0)
		fail_msg("%s: %s", from, strerror(errno));
	out = open(to, O_WRONLY | O_CREAT | O_EXCL, 0640);
	assert_true(out >= 0);
	while ((n = read(in, buf, sizeof buf)) > 0)
		assert_int_equal(write(out, buf, (size_t)n), n);
	assert_int_equal(n, 0);
	close(in);
	close(out);
}

/* The format the store's metadata names, read with LMDB itself (the store
 * must be closed). */
static void read_format(const char *dir, char *out, size_t size)
{
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
	MDB_val k = {6, "format"}, v;

	assert_int_equal(mdb_env_create(&env), 0);
	assert_int_equal(mdb_env_set_maxdbs(env, 8), 0);
	assert_int_equal(mdb_env_open(env, dir, MDB_RDONLY, 0640), 0);
	assert_int_equal(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn), 0);
	assert_int_equal(mdb_dbi_open(txn, "meta", 0, &dbi), 0);
	assert_int_equal(mdb_get(txn, dbi, &k, &v), 0);
	snprintf(out, size, "%.*s", (int)v.mv_size, (const char *)v.mv_data);
	mdb_txn_abort(txn);
	mdb_env_close(env);
}

static void write_format(const char *dir, const char *format)
{
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
	MDB_val k = {6, "format"}, v = {strlen(format), (void *)format};

	assert_int_equal(mdb_env_create(&env), 0);
	assert_int_equal(mdb_env_set_maxdbs(env, 8), 0);
	assert_int_equal(mdb_env_open(env, dir, 0, 0640), 0);
	assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
	assert_int_equal(mdb_dbi_open(txn, "meta", 0, &dbi), 0);
	assert_int_equal(mdb_put(txn, dbi, &k, &v, 0), 0);
	assert_int_equal(mdb_txn_commit(txn), 0);
	mdb_env_close(env);
}

static int tomb_cb(void *ctx, const struct store_record_view *r)
{
	*(struct version *)ctx = r->rec->tomb;
	return 0;
}

/* The record's tombstone (zero: none), whether or not it is visible. */
static struct version tomb_of(struct store *s, const char *coll,
			      const char *key)
{
	struct version t = {0, 0};
	assert_int_equal(store_get_state(s, coll, strlen(coll), key,
					 strlen(key), tomb_cb, &t, NULL),
			 0);
	return t;
}

/* Node 1's signing key for these tests. */
static void node_keys(uint8_t pk[32], uint8_t sk[64])
{
	uint8_t link[32] = {1, 2, 3};
	seg_keypair_from_link(link, pk, sk);
}

static struct store *open_fixture(const char *dir, struct err *e, int *rc)
{
	uint8_t pk[32], sk[64];
	struct store_options o = {.node_id = 1, .cluster = "fixture-city",
				  .sign_sk = sk};
	struct store *s = NULL;
	node_keys(pk, sk);
	*rc = store_open(dir, &o, &s, e);
	return s;
}

static int seg_count(void *ctx, const struct seg *g)
{
	uint8_t pk[32], sk[64];
	node_keys(pk, sk);
	assert_int_equal(seg_verify(g, pk), 0);
	(*(int *)ctx)++;
	return 0;
}

static int change_count(void *ctx, uint32_t origin, uint64_t seq,
			const uint8_t *c, size_t len)
{
	(void)ctx;
	(void)origin;
	(void)seq;
	(void)c;
	(void)len;
	return 0;
}

static void format1_upgraded_in_place(void **state)
{
	(void)state;
	char *root = tu_tmpdir(), dir[256], path[300], fmt[64];
	struct store *s, *fresh;
	struct err e;
	int rc;

	snprintf(dir, sizeof dir, "%s/data", root);
	assert_int_equal(mkdir(dir, 0750), 0);
	snprintf(path, sizeof path, "%s/data.mdb", dir);
	copy_file(FIXTURE, path);
	read_format(dir, fmt, sizeof fmt);
	assert_string_equal(fmt, "msce-store/1");

	s = open_fixture(dir, &e, &rc);
	if (rc)
		fail_msg("store_open: %s", e.msg);
	/* Everything 0.1.0 wrote is there, the delete included. */
	assert_string_equal(su_get(s, "registration", "DEU:C01X00T47", "name"),
			    "Anna Schmidt");
	assert_string_equal(
		su_get(s, "registration", "DEU:C01X00T47", "registered_at"),
		"2026-03-01T09:15:00.250Z");
	assert_string_equal(su_get(s, "registration", "JPN:TK1234567", "phone"),
			    "+819012345678");
	assert_null(su_get(s, "registration", "FRA:12AB34567", "name"));
	assert_int_equal(tomb_of(s, "registration", "FRA:12AB34567").origin, 1);
	assert_string_equal(su_get(s, "event", "2026-12-01/qa-1", "starts_at"),
			    "2026-12-01T02:00:00Z");
	assert_string_equal(su_get(s, "notes", "hello", "text"),
			    "plain collection");
	assert_string_equal(su_get(s, "case", "1-20260301-0001", "status"),
			    "open");
	assert_int_equal(store_vv_get(s, 1).seq, 8);
	/* A format 1 store's writer is its node id (incarnation 0): it goes
	 * on writing where it stopped. */
	assert_int_equal(store_writer(s, NULL), 1);
	assert_int_equal(su_put(s, "registration", "JPN:TK1234567", "phone",
				"+819087654321", T0, NULL),
			 0);
	assert_int_equal(su_del(s, "notes", "hello", T0 + 1), 0);
	assert_int_equal(store_vv_get(s, 1).seq, 10);
	assert_string_equal(su_get(s, "registration", "JPN:TK1234567", "phone"),
			    "+819087654321");

	/* 0.1.0 signed nothing: its log cannot be relayed, so it went (what
	 * it held reaches others by snapshot), and its history is sealed by
	 * this node's key up to where it ended. New writes are signed. */
	struct err le;
	assert_int_equal(store_vv_get(s, 1).floor, 8);
	assert_int_equal(store_log_read(s, 1, 1, 10, 1 << 20, change_count,
					NULL, &le),
			 MSCE_ENOTFOUND);
	struct seg seals[4];
	uint8_t pk[32], sk[64];
	node_keys(pk, sk);
	assert_int_equal(store_seals(s, seals, 4), 1);
	assert_int_equal(seals[0].origin, 1);
	assert_int_equal(seals[0].first, 0);
	assert_int_equal(seals[0].last, 8);
	assert_int_equal(seg_verify(&seals[0], pk), 0);
	int segs = 0;
	assert_int_equal(store_log_read_segs(s, 1, 9, 10, 1 << 20,
					     change_count, seg_count, &segs,
					     &le),
			 0);
	assert_int_equal(segs, 2); /* one per commit, both verify */
	(void)fresh;
	store_close(s);

	/* Upgraded on disk, and opens again as format 3 with its data. */
	read_format(dir, fmt, sizeof fmt);
	assert_string_equal(fmt, "msce-store/3");
	s = open_fixture(dir, &e, &rc);
	assert_int_equal(rc, 0);
	assert_int_equal(store_vv_get(s, 1).seq, 10);
	assert_string_equal(su_get(s, "registration", "DEU:C01X00T47", "name"),
			    "Anna Schmidt");
	store_close(s);
	tu_rmrf(root);
}

/* Whether the file holds the bytes s (a value in the clear). */
static int file_has(const char *path, const char *s)
{
	FILE *f = fopen(path, "rb");
	size_t n = strlen(s), len = 0;
	char *buf;
	int found = 0;

	assert_non_null(f);
	fseek(f, 0, SEEK_END);
	len = (size_t)ftell(f);
	fseek(f, 0, SEEK_SET);
	buf = malloc(len + 1);
	assert_int_equal(fread(buf, 1, len, f), len);
	fclose(f);
	for (size_t i = 0; i + n <= len && !found; i++)
		found = memcmp(buf + i, s, n) == 0;
	free(buf);
	return found;
}

static void format1_sealed_with_a_master_key(void **state)
{
	(void)state;
	char *root = tu_tmpdir(), dir[256], path[400], bdir[300], fmt[64];
	uint8_t pk[32], sk[64], mk[32], other[32];
	struct store_options o = {.node_id = 1, .cluster = "fixture-city",
				  .sign_sk = sk, .master_key = mk};
	struct store *s;
	struct err e;
	uint64_t bytes;

	node_keys(pk, sk);
	memset(mk, 7, sizeof mk);
	memset(other, 8, sizeof other);
	snprintf(dir, sizeof dir, "%s/data", root);
	assert_int_equal(mkdir(dir, 0750), 0);
	snprintf(path, sizeof path, "%s/data.mdb", dir);
	copy_file(FIXTURE, path);
	assert_true(file_has(path, "Anna Schmidt"));

	if (store_open(dir, &o, &s, &e))
		fail_msg("store_open: %s", e.msg);
	assert_true(store_encrypted(s));
	assert_string_equal(su_get(s, "registration", "DEU:C01X00T47", "name"),
			    "Anna Schmidt");
	assert_int_equal(su_put(s, "registration", "JPN:TK1234567", "phone",
				"+819087654321", T0, NULL),
			 0);
	/* The live file may still hold old pages in the clear until LMDB
	 * reuses them; a backup (compacted) holds none. */
	snprintf(bdir, sizeof bdir, "%s/backup", root);
	assert_int_equal(store_backup(s, bdir, &bytes, &e), 0);
	store_close(s);
	snprintf(path, sizeof path, "%s/data.mdb", bdir);
	assert_false(file_has(path, "Anna Schmidt"));
	assert_false(file_has(path, "+819087654321"));
	assert_false(file_has(path, "+819012345678"));
	assert_true(file_has(path, "DEU:C01X00T47")); /* keys stay clear */

	read_format(dir, fmt, sizeof fmt);
	assert_string_equal(fmt, "msce-store/3");
	/* Only the key it was sealed with opens it. */
	o.master_key = NULL;
	assert_int_equal(store_open(dir, &o, &s, &e), MSCE_EAUTH);
	o.master_key = other;
	assert_int_equal(store_open(dir, &o, &s, &e), MSCE_EAUTH);
	assert_non_null(strstr(e.msg, "master key"));
	o.master_key = mk;
	assert_int_equal(store_open(dir, &o, &s, &e), 0);
	assert_string_equal(su_get(s, "registration", "JPN:TK1234567", "phone"),
			    "+819087654321");
	store_close(s);
	tu_rmrf(root);
}

/* A rotation whose commit went through and whose last sync failed says
 * that the new key is in effect (it is: only the new key opens the store),
 * not that the rotation failed. */
static void rotation_sync_failure_names_the_new_key(void **state)
{
	(void)state;
	char *root = tu_tmpdir(), dir[256];
	uint8_t pk[32], sk[64], mk[32], next[32];
	struct store_options o = {.node_id = 1, .cluster = "fixture-city",
				  .sign_sk = sk, .master_key = mk};
	struct store *s;
	struct err e;
	size_t n;

	node_keys(pk, sk);
	memset(mk, 7, sizeof mk);
	memset(next, 9, sizeof next);
	snprintf(dir, sizeof dir, "%s/data", root);
	assert_int_equal(mkdir(dir, 0750), 0);
	if (store_open(dir, &o, &s, &e))
		fail_msg("store_open: %s", e.msg);
	su_writer(s);
	assert_int_equal(su_put(s, "t", "k", "v", "sealed", T0, NULL), 0);
	fault_arm(FAULT_COMMIT, 2, 0); /* the rotation's commit, then its sync */
	assert_int_not_equal(store_rotate_master_key(s, next, &n, &e), 0);
	fault_clear(FAULT_COMMIT);
	assert_non_null(strstr(e.msg, "the new key is in effect"));
	store_close(s);
	assert_int_equal(store_open(dir, &o, &s, &e), MSCE_EAUTH);
	o.master_key = next;
	assert_int_equal(store_open(dir, &o, &s, &e), 0);
	assert_string_equal(su_get(s, "t", "k", "v"), "sealed");
	store_close(s);
	tu_rmrf(root);
}

static void newer_format_refused_naming_both(void **state)
{
	(void)state;
	char *dir = tu_tmpdir(), fmt[64];
	struct store_options o = {.node_id = 1, .cluster = "test"};
	struct store *s;
	struct err e;

	assert_int_equal(store_open(dir, &o, &s, &e), 0);
	su_writer(s);
	assert_int_equal(su_put(s, "t", "k", "f", "v", T0, NULL), 0);
	store_close(s);
	write_format(dir, "msce-store/9");

	assert_int_equal(store_open(dir, &o, &s, &e), MSCE_EVERSION);
	assert_non_null(strstr(e.msg, "\"msce-store/9\""));
	assert_non_null(strstr(e.msg, "\"msce-store/3\""));
	/* Refused, not rewritten: the newer msce can still open it. */
	read_format(dir, fmt, sizeof fmt);
	assert_string_equal(fmt, "msce-store/9");
	tu_rmrf(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(format1_upgraded_in_place),
		cmocka_unit_test(format1_sealed_with_a_master_key),
		cmocka_unit_test(newer_format_refused_naming_both),
		cmocka_unit_test(rotation_sync_failure_names_the_new_key),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
