/* SPDX-License-Identifier: Apache-2.0 */
/* The data directory lock: a second taker is refused with the holder's
 * pid, the lock comes back once released, and a holder killed with
 * SIGKILL leaves it free (the kernel drops it). */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "dirlock.h"
#include "testutil.h"

/* flock locks belong to an open file description, so a second open in
 * the same process conflicts like another process would. */
static void test_second_taker_refused(void **state)
{
	char *dir = tu_tmpdir();
	char sub[512], pid[32];
	int fd, fd2;
	struct err e;

	(void)state;
	assert_non_null(dir);
	/* A directory that does not exist yet is made (as store_open would). */
	snprintf(sub, sizeof sub, "%s/data", dir);
	assert_int_equal(dirlock_acquire(sub, &fd, &e), 0);
	assert_true(fd >= 0);
	assert_int_equal(dirlock_acquire(sub, &fd2, &e), MSCE_EBUSY);
	assert_int_equal(fd2, -1);
	snprintf(pid, sizeof pid, "pid %ld", (long)getpid());
	assert_non_null(strstr(e.msg, pid));
	assert_non_null(strstr(e.msg, sub));
	dirlock_release(fd);
	assert_int_equal(dirlock_acquire(sub, &fd2, &e), 0);
	dirlock_release(fd2);
	tu_rmrf(dir);
}

static void test_killed_holder_frees_it(void **state)
{
	char *dir = tu_tmpdir();
	int ready[2], fd, status;
	char c, pid[32];
	struct err e;
	pid_t child;

	(void)state;
	assert_non_null(dir);
	assert_int_equal(pipe(ready), 0);
	child = fork();
	assert_true(child >= 0);
	if (child == 0) {
		if (dirlock_acquire(dir, &fd, &e) != 0)
			_exit(1);
		(void)!write(ready[1], "x", 1);
		pause();
		_exit(0);
	}
	assert_int_equal(read(ready[0], &c, 1), 1);
	assert_int_equal(dirlock_acquire(dir, &fd, &e), MSCE_EBUSY);
	snprintf(pid, sizeof pid, "pid %ld", (long)child);
	assert_non_null(strstr(e.msg, pid));
	kill(child, SIGKILL);
	assert_int_equal(waitpid(child, &status, 0), child);
	assert_int_equal(dirlock_acquire(dir, &fd, &e), 0);
	dirlock_release(fd);
	close(ready[0]);
	close(ready[1]);
	tu_rmrf(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_second_taker_refused),
	    cmocka_unit_test(test_killed_holder_frees_it),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
