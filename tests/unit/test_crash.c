/* SPDX-License-Identifier: Apache-2.0 */
/* Durability: a child process streams batches of commits and reports each
 * one after store_write returns; the parent kills it with SIGKILL at a
 * random moment. The reopened store must hold every reported batch, and
 * every batch it holds must be whole. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <signal.h>
#include <sys/wait.h>

#include "storeutil.h"

#define BATCH 40

static void child(const char *dir, int fd, int first)
{
	struct store_options o = {.node_id = 1, .cluster = "crash"};
	struct store *s;
	struct err e;
	static struct store_write w[BATCH];
	static struct store_field_in f[BATCH][2];
	static struct store_written out[BATCH];
	static char keys[BATCH][32], vals[BATCH][32];

	if (store_open(dir, &o, &s, &e))
		_exit(2);
	if (store_writer(s, NULL) == 0 &&
	    store_set_writer(s, 1, 0, 1, &e) != 0)
		_exit(2);
	for (int b = first;; b++) {
		for (int i = 0; i < BATCH; i++) {
			snprintf(keys[i], 32, "b%06d-%02d", b, i);
			snprintf(vals[i], 32, "%d", b);
			f[i][0] = (struct store_field_in){
				"batch", 5, (const uint8_t *)vals[i],
				strlen(vals[i]), 0, {0, 0}};
			f[i][1] = (struct store_field_in){
				"pad", 3,
				(const uint8_t *)"0123456789012345678901234567"
						 "890123456789",
				40, 0, {0, 0}};
			w[i] = (struct store_write){STORE_PUT, "t", 1, keys[i],
						    strlen(keys[i]), f[i], 2, 0};
		}
		if (store_write(s, w, BATCH, tu_wall_ms(), out, &e))
			_exit(3);
		/* Acknowledge only after the durable commit returned. */
		if (write(fd, &b, sizeof b) != sizeof b)
			_exit(4);
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

static void kill_during_commits(void **state)
{
	(void)state;
	uint64_t rs = tu_seed("kill_during_commits");
	char *dir = tu_tmpdir();
	int next_batch = 0;

	for (int round = 0; round < 4; round++) {
		int p[2];
		assert_int_equal(pipe(p), 0);
		pid_t pid = fork();
		assert_true(pid >= 0);
		if (pid == 0) {
			close(p[0]);
			child(dir, p[1], next_batch);
		}
		close(p[1]);
		int acked = -1, b, want = 5 + (int)tu_below(&rs, 40);
		for (int n = 0; n < want; n++) {
			if (read(p[0], &b, sizeof b) != sizeof b)
				break;
			acked = b;
		}
		/* Kill in the middle of whatever commit is in flight. */
		usleep((useconds_t)tu_below(&rs, 3000));
		kill(pid, SIGKILL);
		int st;
		waitpid(pid, &st, 0);
		/* Acks written before the kill may still be in the pipe. */
		while (read(p[0], &b, sizeof b) == sizeof b)
			acked = b;
		close(p[0]);
		assert_true(acked >= next_batch);

		struct store_options o = {.node_id = 1, .cluster = "crash"};
		struct store *s;
		struct err e;
		struct count *c = calloc(1, sizeof *c);
		c->max = -1;
		assert_int_equal(store_open(dir, &o, &s, &e), 0);
		struct store_scan q = {.coll = "t", .coll_len = 1};
		assert_int_equal(store_scan(s, &q, count_cb, c, &e), 0);
		assert_true(c->max >= acked);
		for (int i = 0; i <= c->max; i++)
			assert_int_equal(c->per_batch[i], BATCH);
		assert_int_equal(store_vv_get(s, 1).seq,
				 (uint64_t)(c->max + 1) * BATCH);
		printf("round %d: %d batches acked, %d held\n", round,
		       acked + 1, c->max + 1);
		next_batch = c->max + 1;
		store_close(s);
		free(c);
	}
	tu_rmrf(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(kill_during_commits),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
