/* SPDX-License-Identifier: Apache-2.0 */
/* Durability under power loss, not just process death: the child runs
 * under the power-loss interposer (powerloss.c), is killed with SIGKILL,
 * and its file is rolled back to what was synced (powerloss-rollback)
 * before the parent looks. A store that acknowledged a commit before its
 * data and meta page were durable loses that commit here, where test_crash
 * cannot see it (the page cache survives SIGKILL).
 *
 * journal_*: the interposer and the tool on plain file calls, exactly.
 * kill_*: the store; every acknowledged batch must survive the rollback
 * whole, and every acknowledgement must come after a sync with nothing
 * left unsynced. Run with a store built to ignore fsync, the kill test
 * must report "lost acknowledged batch" (ctest power_store_catches_nofsync).
 *
 * The child is this program again (--raw / --store), exec'd with
 * LD_PRELOAD so that the parent and cmocka run without the interposer. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/wait.h>

#include "storeutil.h"

#define BATCH 40
#define MAX_ACKS 4096

struct stats {
	unsigned long long writes, durable_writes, syncs, unsynced;
};

/* Counters the interposer rewrites after every event; 0 if absent. */
static int stats_read(const char *path, struct stats *s)
{
	char b[256];
	ssize_t n;
	int fd = open(path, O_RDONLY);
	memset(s, 0, sizeof *s);
	if (fd < 0)
		return -1;
	n = read(fd, b, sizeof b - 1);
	close(fd);
	if (n <= 0)
		return -1;
	b[n] = '\0';
	return sscanf(b,
		      "writes %llu durable_writes %llu syncs %llu "
		      "unsynced %llu",
		      &s->writes, &s->durable_writes, &s->syncs,
		      &s->unsynced) == 4
		   ? 0
		   : -1;
}

/* Runs this program under the interposer, tracking `file`. */
static pid_t spawn_child(const char *file, const char *journal,
			 const char *stats, char *const argv[])
{
	pid_t pid = fork();
	if (pid != 0)
		return pid;
	/* Dies with the parent (a ctest timeout): never left committing. */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	setenv("LD_PRELOAD", MSCE_POWERLOSS_PRELOAD, 1);
	setenv("MSCE_POWERLOSS_FILE", file, 1);
	setenv("MSCE_POWERLOSS_JOURNAL", journal, 1);
	setenv("MSCE_POWERLOSS_STATS", stats, 1);
	execv("/proc/self/exe", argv);
	_exit(127);
}

static int wait_exit(pid_t pid)
{
	int st;
	if (waitpid(pid, &st, 0) != pid)
		return -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* powerloss-rollback [--seed N] journal; asserts it succeeded. */
static void rollback(const char *journal, uint64_t seed, int reorder)
{
	char s[32];
	pid_t pid;
	fflush(stdout);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		snprintf(s, sizeof s, "%llu", (unsigned long long)seed);
		if (reorder)
			execl(MSCE_POWERLOSS_ROLLBACK, "powerloss-rollback",
			      "--seed", s, journal, (char *)NULL);
		else
			execl(MSCE_POWERLOSS_ROLLBACK, "powerloss-rollback",
			      journal, (char *)NULL);
		_exit(127);
	}
	assert_int_equal(wait_exit(pid), 0);
}

static char *path_join(const char *dir, const char *name)
{
	size_t n = strlen(dir) + strlen(name) + 2;
	char *p = malloc(n);
	snprintf(p, n, "%s/%s", dir, name);
	return p;
}

/* ---- plain file calls ---------------------------------------------------- */

static void fill(int fd, int c, size_t n, off_t off)
{
	static char b[8192];
	memset(b, c, n);
	if (pwrite(fd, b, n, off) != (ssize_t)n)
		_exit(3);
}

/* Child: one synced write, then unsynced ones through every call LMDB
 * may use (pwrite, lseek + writev, write, a dup'd descriptor), and one
 * O_DSYNC write, which is durable on return. Exits without syncing. */
static void raw_child(const char *file)
{
	char c[4096], d[4096];
	struct iovec iov[2] = {{c, sizeof c}, {d, sizeof d}};
	int fd = open(file, O_RDWR | O_CREAT, 0600), dfd, dup_fd;
	if (fd < 0)
		_exit(2);
	fill(fd, 'A', 8192, 0);
	if (fsync(fd) != 0)
		_exit(4);
	fill(fd, 'B', 4096, 4096);
	memset(c, 'C', sizeof c);
	memset(d, 'D', sizeof d);
	if (lseek(fd, 8192, SEEK_SET) != 8192 || writev(fd, iov, 2) != 8192)
		_exit(5);
	dfd = open(file, O_WRONLY | O_DSYNC);
	if (dfd < 0)
		_exit(6);
	fill(dfd, 'M', 100, 0);
	dup_fd = dup(fd);
	fill(dup_fd, 'E', 10, 200);
	if (lseek(fd, 300, SEEK_SET) != 300 || write(fd, "F", 1) != 1)
		_exit(7);
	_exit(0);
}

static void run_raw(const char *dir, uint64_t seed, int reorder,
		    struct stat *st, char *data)
{
	char *file = path_join(dir, "data.bin");
	char *journal = path_join(dir, "journal");
	char *stats = path_join(dir, "stats");
	char *argv[] = {"test_powerloss", "--raw", file, NULL};
	struct stats s;
	int fd;

	unlink(file);
	assert_int_equal(
	    wait_exit(spawn_child("data.bin", journal, stats, argv)), 0);
	/* Counted: A, B, C+D, E, F; M through O_DSYNC; the one fsync. */
	assert_int_equal(stats_read(stats, &s), 0);
	assert_int_equal(s.writes, 5);
	assert_int_equal(s.durable_writes, 1);
	assert_int_equal(s.syncs, 1);
	assert_int_equal(s.unsynced, 4);
	rollback(journal, seed, reorder);
	fd = open(file, O_RDONLY);
	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, st), 0);
	assert_true(st->st_size <= 16384);
	assert_int_equal(pread(fd, data, 16384, 0), st->st_size);
	close(fd);
	free(file);
	free(journal);
	free(stats);
}

static int all(const char *p, int c, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] != c)
			return 0;
	return 1;
}

static void journal_restores_last_sync(void **state)
{
	(void)state;
	char *dir = tu_tmpdir();
	static char data[16384];
	struct stat st;

	run_raw(dir, 0, 0, &st, data);
	/* The synced A's, with the durable M's over them; nothing else. */
	assert_int_equal(st.st_size, 8192);
	assert_true(all(data, 'M', 100));
	assert_true(all(data + 100, 'A', 8192 - 100));
	tu_rmrf(dir);
}

/* With a seed, any subset of the unsynced pages may have reached the
 * disk: each page holds one of the versions written to it, and over a few
 * seeds both outcomes of a page occur. */
static void journal_reorder_keeps_some_pages(void **state)
{
	(void)state;
	char *dir = tu_tmpdir();
	static char data[16384];
	struct stat st;
	int saw_a = 0, saw_b = 0;

	for (uint64_t seed = 1; seed <= 16; seed++) {
		run_raw(dir, seed, 1, &st, data);
		assert_true(st.st_size == 8192 || st.st_size == 12288 ||
			    st.st_size == 16384);
		assert_true(all(data, 'M', 100));
		assert_true(all(data + 100, 'A', 100));
		assert_true(all(data + 200, 'A', 10) ||
			    all(data + 200, 'E', 10));
		assert_true(data[300] == 'A' || data[300] == 'F');
		assert_true(all(data + 301, 'A', 4096 - 301));
		saw_a |= all(data + 4096, 'A', 4096);
		saw_b |= all(data + 4096, 'B', 4096);
		assert_true(all(data + 4096, 'A', 4096) ||
			    all(data + 4096, 'B', 4096));
		if (st.st_size > 8192) /* C or a hole, if only D landed */
			assert_true(all(data + 8192, 'C', 4096) ||
				    all(data + 8192, 0, 4096));
		if (st.st_size > 12288)
			assert_true(all(data + 12288, 'D', 4096));
	}
	assert_true(saw_a && saw_b);
	tu_rmrf(dir);
}

/* ---- the store ----------------------------------------------------------- */

struct ack {
	int batch;
	unsigned long long syncs, durable_writes; /* during its commit */
	unsigned long long unsynced; /* writes not synced when it returned */
};

/* Child: commits batch after batch; reports each after store_write
 * returned, with what the interposer saw during that commit. */
static void store_child(const char *dir, int fd, int first, const char *stats)
{
	struct store_options o = {.node_id = 1, .cluster = "power"};
	struct store *s;
	struct err e;
	static struct store_write w[BATCH];
	static struct store_field_in f[BATCH];
	static struct store_written out[BATCH];
	static char keys[BATCH][32], vals[BATCH][32];
	struct stats before, after;

	if (store_open(dir, &o, &s, &e))
		_exit(2);
	if (store_writer(s, NULL) == 0 && store_set_writer(s, 1, 0, 1, &e))
		_exit(2);
	for (int b = first;; b++) {
		for (int i = 0; i < BATCH; i++) {
			snprintf(keys[i], 32, "b%06d-%02d", b, i);
			snprintf(vals[i], 32, "%d", b);
			f[i] = (struct store_field_in){
			    "batch",	     5, (const uint8_t *)vals[i],
			    strlen(vals[i]), 0, {0, 0}};
			w[i] = (struct store_write){
			    STORE_PUT,	     "t",   1, keys[i],
			    strlen(keys[i]), &f[i], 1, 0};
		}
		if (stats_read(stats, &before))
			_exit(3);
		if (store_write(s, w, BATCH, tu_wall_ms(), out, &e))
			_exit(4);
		if (stats_read(stats, &after))
			_exit(5);
		struct ack a = {b, after.syncs - before.syncs,
				after.durable_writes - before.durable_writes,
				after.unsynced};
		if (write(fd, &a, sizeof a) != sizeof a)
			_exit(6);
	}
}

struct count {
	int per_batch[100000];
	int max;
};

static int count_cb(void *ctx, const struct store_record_view *r)
{
	struct count *c = ctx;
	int b = atoi(r->key + 1);
	if (b >= 0 && b < 100000) {
		c->per_batch[b]++;
		if (b > c->max)
			c->max = b;
	}
	return 0;
}

static void kill_power_during_commits(void **state)
{
	(void)state;
	uint64_t rs = tu_seed("kill_power_during_commits");
	char *tmp = tu_tmpdir();
	char *dir = path_join(tmp, "store");
	char *data = path_join(dir, "data.mdb");
	char *journal = path_join(tmp, "journal");
	char *stats = path_join(tmp, "stats");
	static struct ack acks[MAX_ACKS];
	int next_batch = 0;

	for (int round = 0; round < 6; round++) {
		char fdarg[16], firstarg[16];
		char *argv[] = {"test_powerloss", "--store", dir, fdarg,
				firstarg,	  stats,     NULL};
		int p[2], n = 0, want = 5 + (int)tu_below(&rs, 40);
		struct ack a;
		struct stats st;
		pid_t pid;

		assert_int_equal(pipe(p), 0);
		snprintf(fdarg, sizeof fdarg, "%d", p[1]);
		snprintf(firstarg, sizeof firstarg, "%d", next_batch);
		unlink(stats);
		pid = spawn_child(data, journal, stats, argv);
		assert_true(pid >= 0);
		close(p[1]);
		while (n < want && read(p[0], &a, sizeof a) == sizeof a)
			acks[n++] = a;
		/* Kill in the middle of whatever commit is in flight. */
		usleep((useconds_t)tu_below(&rs, 3000));
		kill(pid, SIGKILL);
		assert_int_equal(wait_exit(pid), 128 + SIGKILL);
		/* Acks written before the kill may still be in the pipe. */
		while (n < MAX_ACKS && read(p[0], &a, sizeof a) == sizeof a)
			acks[n++] = a;
		close(p[0]);
		assert_true(n > 0);
		assert_int_equal(stats_read(stats, &st), 0);
		assert_true(st.writes > 0); /* the interposer saw data.mdb */

		/* Power cut: even rounds keep only what was synced, odd ones
		 * also a random subset of the unsynced pages. */
		rollback(journal, tu_rand(&rs), round % 2);

		struct store_options o = {.node_id = 1, .cluster = "power"};
		struct store *s;
		struct err e;
		struct count *c = calloc(1, sizeof *c);
		c->max = -1;
		assert_int_equal(store_open(dir, &o, &s, &e), 0);
		struct store_scan q = {.coll = "t", .coll_len = 1};
		assert_int_equal(store_scan(s, &q, count_cb, c, &e), 0);
		for (int i = 0; i < n; i++)
			if (c->per_batch[acks[i].batch] != BATCH)
				fail_msg("lost acknowledged batch %d: %d of "
					 "%d records after the power cut "
					 "(round %d)",
					 acks[i].batch,
					 c->per_batch[acks[i].batch], BATCH,
					 round);
		for (int i = 0; i <= c->max; i++)
			if (c->per_batch[i] != BATCH)
				fail_msg("batch %d is partial: %d of %d "
					 "records (round %d)",
					 i, c->per_batch[i], BATCH, round);
		assert_int_equal(store_vv_get(s, 1).seq,
				 (uint64_t)(c->max + 1) * BATCH);
		/* Why they survived: LMDB syncs the data pages (fdatasync)
		 * and then writes the meta page through O_DSYNC, and returns
		 * only then. Nothing may be left unsynced at an ack. */
		for (int i = 0; i < n; i++) {
			if (acks[i].unsynced != 0)
				fail_msg("batch %d acknowledged with %llu "
					 "writes not synced",
					 acks[i].batch, acks[i].unsynced);
			if (acks[i].syncs < 1 || acks[i].durable_writes < 1)
				fail_msg("batch %d acknowledged after %llu "
					 "syncs and %llu durable writes, "
					 "not at least one of each",
					 acks[i].batch, acks[i].syncs,
					 acks[i].durable_writes);
		}
		printf("round %d: %d batches acked, %d held, last ack saw "
		       "%llu sync(s) + %llu durable write(s)\n",
		       round, n, c->max + 1 - next_batch, acks[n - 1].syncs,
		       acks[n - 1].durable_writes);
		next_batch = c->max + 1;
		store_close(s);
		free(c);
	}
	free(data);
	free(dir);
	free(journal);
	free(stats);
	tu_rmrf(tmp);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(journal_restores_last_sync),
	    cmocka_unit_test(journal_reorder_keeps_some_pages),
	    cmocka_unit_test(kill_power_during_commits),
	};
	if (argc == 3 && strcmp(argv[1], "--raw") == 0)
		raw_child(argv[2]);
	if (argc == 6 && strcmp(argv[1], "--store") == 0)
		store_child(argv[2], atoi(argv[3]), atoi(argv[4]), argv[5]);
	if (argc == 2) /* a cmocka filter, e.g. kill_* */
		cmocka_set_test_filter(argv[1]);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
