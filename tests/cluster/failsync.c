/* SPDX-License-Identifier: Apache-2.0 */
/* LD_PRELOAD shim for the cluster tests: a disk that fails its flushes.
 * While the file named by $MSCE_FAILSYNC exists, fsync, fdatasync and
 * msync fail with EIO, as they do on a failing disk; LMDB's commit then
 * fails and the node must say so and refuse writes until the file is
 * gone. While the file named by $MSCE_FAILMETA exists, writes to the
 * first two pages of a data.mdb (LMDB's meta pages, written last in a
 * commit) fail with EIO: LMDB then refuses every transaction until its
 * environment is reopened. Nothing else changes. */
#include <dlfcn.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "../meta_page.h"

static int flag_set(const char *var)
{
	const char *flag = getenv(var);
	return flag != NULL && access(flag, F_OK) == 0;
}

static int failing(void)
{
	return flag_set("MSCE_FAILSYNC");
}

/* A write to one of data.mdb's meta pages while $MSCE_FAILMETA exists. */
static int meta_fails(int fd, off_t off)
{
	return is_lmdb_meta_page(fd, off) && flag_set("MSCE_FAILMETA");
}

ssize_t pwrite(int fd, const void *buf, size_t count, off_t off)
{
	static ssize_t (*real)(int, const void *, size_t, off_t);
	if (meta_fails(fd, off)) {
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

int fsync(int fd)
{
	static int (*real)(int);
	if (failing()) {
		errno = EIO;
		return -1;
	}
	if (real == NULL)
		*(void **)&real = dlsym(RTLD_NEXT, "fsync");
	return real(fd);
}

int fdatasync(int fd)
{
	static int (*real)(int);
	if (failing()) {
		errno = EIO;
		return -1;
	}
	if (real == NULL)
		*(void **)&real = dlsym(RTLD_NEXT, "fdatasync");
	return real(fd);
}

int msync(void *addr, size_t len, int flags)
{
	static int (*real)(void *, size_t, int);
	if (failing()) {
		errno = EIO;
		return -1;
	}
	if (real == NULL)
		*(void **)&real = dlsym(RTLD_NEXT, "msync");
	return real(addr, len, flags);
}
