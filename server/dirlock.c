/* SPDX-License-Identifier: Apache-2.0 */
/* Data directory lock (see dirlock.h). flock(2), not fcntl: the lock
 * belongs to the open file description, so no other open or close of the
 * file in this process can drop it, and the kernel releases it when the
 * process dies, however it dies. The file is never removed: unlinking a
 * lock file lets a waiter lock an inode nobody else will look at.
 *
 * The holder writes its pid after locking, so a refused process may read
 * the file in between and find it empty or holding a dead process's pid;
 * it rereads for a moment before saying the pid is unknown. */
#include "dirlock.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define PID_READ_TRIES 20
#define PID_READ_PAUSE_NS (5 * 1000 * 1000)

/* The live pid written in the file, or 0. */
static long read_pid(int fd)
{
	char text[32];
	ssize_t n = pread(fd, text, sizeof text - 1, 0);
	char *end;
	long pid;

	if (n <= 0)
		return 0;
	text[n] = '\0';
	pid = strtol(text, &end, 10);
	if (end == text || pid <= 0 || (*end != '\n' && *end != '\0'))
		return 0;
	if (kill((pid_t)pid, 0) != 0 && errno == ESRCH)
		return 0;
	return pid;
}

static long holder_pid(int fd)
{
	struct timespec pause = {0, PID_READ_PAUSE_NS};
	long pid;

	for (int i = 0; i < PID_READ_TRIES; i++) {
		if ((pid = read_pid(fd)) > 0)
			return pid;
		nanosleep(&pause, NULL);
	}
	return 0;
}

int dirlock_acquire(const char *dir, int *out, struct err *e)
{
	char path[4096], text[32];
	int fd, len, saved;
	long pid;

	*out = -1;
	if (mkdir(dir, 0750) != 0 && errno != EEXIST)
		return err_set(e, MSCE_EIO, "create data directory %s: %s", dir,
			       strerror(errno));
	if (snprintf(path, sizeof path, "%s/%s", dir, DIRLOCK_FILE) >=
	    (int)sizeof path)
		return err_set(e, MSCE_EINVAL, "data directory path too long");
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0640);
	if (fd < 0)
		return err_set(e, MSCE_EIO, "open lock file %s: %s", path,
			       strerror(errno));
	if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
		saved = errno;
		if (saved != EWOULDBLOCK) {
			close(fd);
			return err_set(e, MSCE_EIO, "lock %s: %s", path,
				       strerror(saved));
		}
		pid = holder_pid(fd);
		close(fd);
		if (pid > 0)
			return err_set(e, MSCE_EBUSY,
				       "data directory %s is in use by another "
				       "process (pid %ld holds %s); one msced "
				       "per data directory",
				       dir, pid, path);
		return err_set(e, MSCE_EBUSY,
			       "data directory %s is in use by another process "
			       "(pid unknown; it holds %s); one msced per data "
			       "directory",
			       dir, path);
	}
	len = snprintf(text, sizeof text, "%ld\n", (long)getpid());
	if (ftruncate(fd, 0) != 0 || pwrite(fd, text, (size_t)len, 0) != len) {
		saved = errno;
		close(fd);
		return err_set(e, MSCE_EIO, "write lock file %s: %s", path,
			       strerror(saved));
	}
	*out = fd;
	return 0;
}

void dirlock_release(int fd)
{
	/* The pid stays in the file; a reader checks that it lives. */
	if (fd >= 0)
		close(fd);
}
