/* SPDX-License-Identifier: Apache-2.0 */
/* The simulator's disk: what a store wrote but did not sync is lost in a
 * crash, as after a power cut (the page cache goes with the machine).
 *
 * The simulator defines open, close, write, writev, pwrite, fsync and
 * fdatasync itself; liblmdb's calls land here (a program's own symbols win
 * over libc's for the shared libraries it loads), and each passes on to
 * libc. For every data.mdb opened while disk_init has been called, each
 * write first saves the bytes it will overwrite (and the file size) in an
 * undo journal kept in memory; an fsync or fdatasync of the file empties
 * the journal, and so does nothing else: a write through a descriptor
 * opened O_DSYNC is durable at once (LMDB writes its meta page that way),
 * so it is applied without a journal entry, and the flag is dropped before
 * the real open so that the simulation does not wait for the real disk.
 * disk_crash(dir), called once the store is closed, writes the saved bytes
 * back, newest first, and cuts the file to its synced size: the file is
 * then exactly as synced. A store that skips an fsync loses what it
 * acknowledged, and the oracle says so. */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "sim.h"

#define MAX_FILES 256
#define MAX_FDS 4096

struct undo {
	struct undo *prev; /* older entry */
	off_t off, old_size;
	size_t len;
	uint8_t data[];
};

struct dfile {
	char path[512];
	dev_t dev;
	ino_t ino;
	struct undo *last; /* newest unsynced write */
	off_t synced_size;
	int used;
};

static struct dfile files[MAX_FILES];
static struct {
	int file; /* index + 1 into files; 0: not tracked */
	int durable;
} fds[MAX_FDS];
static int enabled;
static uint64_t syncs, undone;

static int (*real_open)(const char *, int, ...);
static int (*real_close)(int);
static ssize_t (*real_write)(int, const void *, size_t);
static ssize_t (*real_writev)(int, const struct iovec *, int);
static ssize_t (*real_pwrite)(int, const void *, size_t, off_t);
static int (*real_fsync)(int);
static int (*real_fdatasync)(int);

static void resolve(void)
{
	if (real_open != NULL)
		return;
	real_open = (int (*)(const char *, int, ...))dlsym(RTLD_NEXT, "open");
	real_close = (int (*)(int))dlsym(RTLD_NEXT, "close");
	real_write =
	    (ssize_t(*)(int, const void *, size_t))dlsym(RTLD_NEXT, "write");
	real_writev = (ssize_t(*)(int, const struct iovec *, int))dlsym(
	    RTLD_NEXT, "writev");
	real_pwrite = (ssize_t(*)(int, const void *, size_t, off_t))dlsym(
	    RTLD_NEXT, "pwrite");
	real_fsync = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
	real_fdatasync = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
	if (real_open == NULL || real_close == NULL || real_write == NULL ||
	    real_writev == NULL || real_pwrite == NULL || real_fsync == NULL ||
	    real_fdatasync == NULL) {
		fprintf(stderr, "msce-sim disk: cannot find libc's calls\n");
		abort();
	}
}

static void journal_free(struct dfile *f)
{
	while (f->last != NULL) {
		struct undo *u = f->last;
		f->last = u->prev;
		free(u);
	}
}

static struct dfile *tracked(int fd)
{
	if (fd < 0 || fd >= MAX_FDS || fds[fd].file == 0)
		return NULL;
	return &files[fds[fd].file - 1];
}

static int is_data_file(const char *path)
{
	size_t n = strlen(path);
	return n >= 9 && strcmp(path + n - 9, "/data.mdb") == 0;
}

/* Forgets files[i], and every descriptor still naming it: a descriptor
 * of a deleted file must not sync the file that takes its place. */
static void untrack(int i)
{
	journal_free(&files[i]);
	files[i].used = 0;
	for (int fd = 0; fd < MAX_FDS; fd++)
		if (fds[fd].file == i + 1)
			fds[fd].file = 0;
}

static void track(int fd, const char *path, int durable)
{
	struct stat st;
	int free_slot = -1;

	if (fd < 0 || fd >= MAX_FDS || fstat(fd, &st) != 0)
		return;
	for (int i = 0; i < MAX_FILES; i++) {
		struct dfile *f = &files[i];
		int same_path, same_file;
		if (!f->used) {
			if (free_slot < 0)
				free_slot = i;
			continue;
		}
		same_path = strcmp(f->path, path) == 0;
		same_file = f->dev == st.st_dev && f->ino == st.st_ino;
		if (same_path && same_file) {
			fds[fd].file = i + 1;
			fds[fd].durable = durable;
			return;
		}
		if (same_path || same_file) {
			/* Another file at this path, or this inode reused by
			 * another path: either way the old file is gone. */
			untrack(i);
			if (free_slot < 0)
				free_slot = i;
		}
	}
	if (free_slot < 0) {
		fprintf(stderr, "msce-sim disk: more than %d files\n",
			MAX_FILES);
		abort();
	}
	struct dfile *f = &files[free_slot];
	memset(f, 0, sizeof *f);
	snprintf(f->path, sizeof f->path, "%s", path);
	f->dev = st.st_dev;
	f->ino = st.st_ino;
	f->synced_size = st.st_size; /* what is there is on disk */
	f->used = 1;
	fds[fd].file = free_slot + 1;
	fds[fd].durable = durable;
}

/* Saves what [off, off + len) holds now, before a write over it. */
static void save(int fd, off_t off, size_t len)
{
	struct dfile *f = tracked(fd);
	struct stat st;
	struct undo *u;
	size_t keep = 0;

	if (f == NULL || fds[fd].durable || len == 0)
		return;
	if (fstat(fd, &st) != 0)
		abort();
	if (off < st.st_size)
		keep = (size_t)(st.st_size - off) < len
			   ? (size_t)(st.st_size - off)
			   : len;
	u = malloc(sizeof *u + keep);
	if (u == NULL)
		abort();
	u->off = off;
	u->old_size = st.st_size;
	u->len = keep;
	if (keep && pread(fd, u->data, keep, off) != (ssize_t)keep)
		abort();
	u->prev = f->last;
	f->last = u;
}

static void synced(int fd)
{
	struct dfile *f = tracked(fd);
	struct stat st;
	if (f == NULL)
		return;
	syncs++;
	journal_free(f);
	if (fstat(fd, &st) == 0)
		f->synced_size = st.st_size;
}

/* ---- libc, as liblmdb sees it ------------------------------------------- */

int open(const char *path, int flags, ...)
{
	mode_t mode = 0;
	int durable = 0, fd;

	resolve();
	if (flags & O_CREAT) {
		va_list ap;
		va_start(ap, flags);
		mode = (mode_t)va_arg(ap, int);
		va_end(ap);
	}
	if (enabled && is_data_file(path)) {
		durable = (flags & (O_DSYNC | O_SYNC)) != 0;
		flags &= ~(O_DSYNC | O_SYNC);
	}
	fd = real_open(path, flags, mode);
	if (fd >= 0 && enabled && is_data_file(path))
		track(fd, path, durable);
	return fd;
}

int close(int fd)
{
	resolve();
	if (fd >= 0 && fd < MAX_FDS)
		fds[fd].file = 0;
	return real_close(fd);
}

ssize_t pwrite(int fd, const void *buf, size_t len, off_t off)
{
	resolve();
	save(fd, off, len);
	return real_pwrite(fd, buf, len, off);
}

ssize_t write(int fd, const void *buf, size_t len)
{
	resolve();
	if (tracked(fd) != NULL)
		save(fd, lseek(fd, 0, SEEK_CUR), len);
	return real_write(fd, buf, len);
}

ssize_t writev(int fd, const struct iovec *iov, int n)
{
	resolve();
	if (tracked(fd) != NULL) {
		size_t len = 0;
		for (int i = 0; i < n; i++)
			len += iov[i].iov_len;
		save(fd, lseek(fd, 0, SEEK_CUR), len);
	}
	return real_writev(fd, iov, n);
}

int fsync(int fd)
{
	resolve();
	if (tracked(fd) != NULL) { /* modelled: no need to wait */
		synced(fd);
		return 0;
	}
	return real_fsync(fd);
}

int fdatasync(int fd)
{
	resolve();
	if (tracked(fd) != NULL) {
		synced(fd);
		return 0;
	}
	return real_fdatasync(fd);
}

/* ---- the simulator's side ------------------------------------------------ */

void disk_init(void)
{
	resolve();
	enabled = 1;
}

/* After a crash the file must hold the root pages its newest durable meta
 * page names (LMDB's layout: a 16-byte page header, then the meta: free
 * and main trees' roots at bytes 80 and 128, txn id at 144): else the
 * model, or the store's syncing, is wrong, and the store would read
 * beyond its file. The meta's last page number may lie beyond the file:
 * pages a transaction took and freed again are never written. Pages
 * below the roots are read when the store reopens and the oracle reads
 * every record. */
static int check_meta(int fd, const char *path, char *why, size_t whylen)
{
	long psz = sysconf(_SC_PAGESIZE);
	uint64_t root[2][2], txn[2] = {0, 0};
	uint32_t magic[2] = {0, 0};
	struct stat st;
	int m;

	if (fstat(fd, &st) != 0 || st.st_size < 2 * psz)
		return 0; /* never committed: LMDB starts it again */
	for (m = 0; m < 2; m++)
		if (pread(fd, &magic[m], 4, m * psz + 16) != 4 ||
		    pread(fd, &root[m][0], 8, m * psz + 80) != 8 ||
		    pread(fd, &root[m][1], 8, m * psz + 128) != 8 ||
		    pread(fd, &txn[m], 8, m * psz + 144) != 8)
			return 0;
	m = txn[1] > txn[0];
	if (magic[m] != 0xBEEFC0DE)
		return 0;
	for (int t = 0; t < 2; t++) {
		if (root[m][t] == UINT64_MAX) /* empty tree */
			continue;
		if ((root[m][t] + 1) * (uint64_t)psz <= (uint64_t)st.st_size)
			continue;
		snprintf(why, whylen,
			 "crash: %s keeps %lld bytes, but its durable meta "
			 "(txn %llu) names page %llu as the %s tree's root",
			 path, (long long)st.st_size,
			 (unsigned long long)txn[m],
			 (unsigned long long)root[m][t], t ? "main" : "free");
		return -1;
	}
	return 0;
}

int disk_crash(const char *dir, char *why, size_t whylen)
{
	char path[600];
	snprintf(path, sizeof path, "%s/data.mdb", dir);
	for (int i = 0; i < MAX_FILES; i++) {
		struct dfile *f = &files[i];
		int fd;
		if (!f->used || strcmp(f->path, path) != 0)
			continue;
		fd = real_open(path, O_RDWR, 0);
		if (fd < 0) {
			snprintf(why, whylen, "crash: open %s: %s", path,
				 strerror(errno));
			return -1;
		}
		while (f->last != NULL) {
			struct undo *u = f->last;
			if (u->len &&
			    real_pwrite(fd, u->data, u->len, u->off) !=
				(ssize_t)u->len) {
				snprintf(why, whylen, "crash: undo %s", path);
				real_close(fd);
				return -1;
			}
			f->last = u->prev;
			free(u);
			undone++;
		}
		if (ftruncate(fd, f->synced_size) != 0) {
			snprintf(why, whylen, "crash: truncate %s", path);
			real_close(fd);
			return -1;
		}
		if (check_meta(fd, path, why, whylen) != 0) {
			real_close(fd);
			return -1;
		}
		real_close(fd);
	}
	return 0;
}

void disk_forget(const char *prefix)
{
	size_t n = strlen(prefix);
	for (int i = 0; i < MAX_FILES; i++)
		if (files[i].used && strncmp(files[i].path, prefix, n) == 0)
			untrack(i);
}

void disk_stats(uint64_t *nsyncs, uint64_t *nundone)
{
	*nsyncs = syncs;
	*nundone = undone;
}
