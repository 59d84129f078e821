/* SPDX-License-Identifier: Apache-2.0 */
/* For the shims that make a disk fail LMDB's meta page writes
 * (tests/cluster/failsync.c for the daemon, tests/unit/test_faults.c in
 * process): 1 if fd is a data.mdb and off falls in its first two pages,
 * LMDB's meta pages, which it writes last in a commit and reads first in
 * an open. */
#ifndef MSCE_TESTS_META_PAGE_H
#define MSCE_TESTS_META_PAGE_H

#include <stdio.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

static inline int is_lmdb_meta_page(int fd, off_t off)
{
	char link[64], path[512];
	ssize_t n;

	if (off >= 2 * sysconf(_SC_PAGESIZE))
		return 0;
	snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
	n = readlink(link, path, sizeof path - 1);
	if (n < 9)
		return 0;
	path[n] = '\0';
	return strcmp(path + n - 9, "/data.mdb") == 0;
}

#endif
