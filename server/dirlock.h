/* SPDX-License-Identifier: Apache-2.0 */
/* One process per data directory: an exclusive lock on DIR/msced.lock,
 * taken by store_open before LMDB is opened and held until store_close.
 * Two processes writing one store under one node id would each hand out
 * the same sequence numbers. */
#ifndef MSCE_DIRLOCK_H
#define MSCE_DIRLOCK_H

#include "error.h"

#define DIRLOCK_FILE "msced.lock"

/* Creates dir if missing (0750), then locks DIR/msced.lock and writes our
 * pid into it. On success *fd holds the lock until dirlock_release or the
 * process's death (the kernel drops it then, kill -9 included). If another
 * process holds it: MSCE_EBUSY, the message naming the directory and the
 * holder's pid. MSCE_EIO for a file that cannot be created or locked. */
int dirlock_acquire(const char *dir, int *fd, struct err *e);
/* Releases the lock taken by dirlock_acquire; fd < 0 is ignored. */
void dirlock_release(int fd);

#endif
