/* SPDX-License-Identifier: Apache-2.0 */
/* LD_PRELOAD shim for the cluster tests: a disk that fails its flushes.
 * While the file named by $MSCE_FAILSYNC exists, fsync, fdatasync and
 * msync fail with EIO, as they do on a failing disk; LMDB's commit then
 * fails and the node must say so and refuse writes until the file is
 * gone. Nothing else changes. */
#include <dlfcn.h>
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

static int failing(void)
{
	const char *flag = getenv("MSCE_FAILSYNC");
	return flag != NULL && access(flag, F_OK) == 0;
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
