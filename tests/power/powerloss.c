/* SPDX-License-Identifier: Apache-2.0 */
/* Power-loss interposer, LD_PRELOADed into one process under test.
 *
 * SIGKILL keeps the page cache, so a process that never syncs loses nothing
 * when killed. This library makes the difference visible: for the one file
 * whose path ends with MSCE_POWERLOSS_FILE (e.g. "data.mdb", or a full
 * path), it appends to the undo journal MSCE_POWERLOSS_JOURNAL, before each
 * write, the bytes that write is about to overwrite (format: powerloss.h),
 * and truncates the journal after each successful fsync/fdatasync of the
 * file, because everything before it is now durable. Once the process is
 * dead, powerloss-rollback applies the journal in reverse and leaves the
 * file as a power cut would have: only what was synced.
 *
 * A write through an O_DSYNC/O_SYNC descriptor (LMDB's meta page) is
 * durable when it returns; its record is flagged so rollback keeps it.
 * Counters (writes, durable writes, syncs, writes not yet synced) are
 * rewritten into MSCE_POWERLOSS_STATS, if set, after every event.
 *
 * The file is recognised at open (the path matches) and then by device and
 * inode on every write, so dup'd descriptors count too. What is not
 * modelled is refused with abort() instead of being missed: a second file
 * matching, a writable shared mapping of it (MDB_WRITEMAP), ftruncate,
 * O_TRUNC. Torn sectors within one write are not modelled. One process:
 * a forked child would share the journal. Linux and glibc only. */
#undef _FORTIFY_SOURCE /* its inline open() would clash with ours */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "powerloss.h"

#define VISIBLE __attribute__((visibility("default")))

/* The next definition of each call: libc's, or a sanitizer's in front of
 * it. Resolved on first use, since calls can come before constructors. */
static void *next_sym(const char *name, void **slot)
{
	void *p = __atomic_load_n(slot, __ATOMIC_ACQUIRE);
	if (p == NULL) {
		p = dlsym(RTLD_NEXT, name);
		if (p == NULL)
			abort();
		__atomic_store_n(slot, p, __ATOMIC_RELEASE);
	}
	return p;
}
#define NEXT(fn) ((__typeof__(fn) *)next_sym(#fn, &next_##fn))
static void *next_open, *next_open64, *next_openat, *next_openat64, *next_write,
    *next_writev, *next_pwrite, *next_pwrite64, *next_pwritev, *next_pwritev64,
    *next_fsync, *next_fdatasync, *next_ftruncate, *next_ftruncate64,
    *next_mmap, *next_mmap64;

static struct {
	const char *pattern; /* NULL: the library does nothing */
	const char *journal;
	const char *stats;
	pthread_mutex_t lock; /* one tracked write or sync at a time */
	int have_file;	      /* set once, then dev/ino are fixed */
	dev_t dev;
	ino_t ino;
	int rfd; /* our own read descriptor: the writer's may be O_WRONLY */
	int jfd, sfd;
	uint64_t header_len;
	unsigned long long writes, durable_writes, syncs, unsynced;
	uint8_t buf[1 << 16];
} g = {.lock = PTHREAD_MUTEX_INITIALIZER, .rfd = -1, .jfd = -1, .sfd = -1};

__attribute__((format(printf, 1, 2), noreturn)) static void die(const char *fmt,
								...)
{
	char msg[PATH_MAX + 256];
	va_list ap;
	int n = snprintf(msg, sizeof msg, "powerloss: ");
	va_start(ap, fmt);
	n += vsnprintf(msg + n, sizeof msg - (size_t)n - 1, fmt, ap);
	va_end(ap);
	if (n > (int)sizeof msg - 2)
		n = (int)sizeof msg - 2;
	msg[n++] = '\n';
	(void)!NEXT(write)(2, msg, (size_t)n);
	abort();
}

__attribute__((constructor)) static void powerloss_init(void)
{
	g.pattern = getenv("MSCE_POWERLOSS_FILE");
	g.journal = getenv("MSCE_POWERLOSS_JOURNAL");
	g.stats = getenv("MSCE_POWERLOSS_STATS");
	if (g.pattern != NULL && g.pattern[0] == '\0')
		g.pattern = NULL;
	if (g.pattern != NULL && (g.journal == NULL || g.journal[0] == '\0'))
		die("MSCE_POWERLOSS_FILE is set but MSCE_POWERLOSS_JOURNAL "
		    "is not");
}

/* Whole trailing path components: "data.mdb" matches "/d/data.mdb", not
 * "/d/xdata.mdb". */
static int path_matches(const char *path, const char *pattern)
{
	size_t n = strlen(path), m = strlen(pattern);
	if (m > n || strcmp(path + n - m, pattern) != 0)
		return 0;
	return m == n || pattern[0] == '/' || path[n - m - 1] == '/';
}

static void append(int fd, const void *p, size_t n)
{
	const uint8_t *b = p;
	while (n > 0) {
		ssize_t w = NEXT(write)(fd, b, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			die("append to journal %s: %s", g.journal,
			    strerror(errno));
		b += w;
		n -= (size_t)w;
	}
}

static void stats_write(void)
{
	char b[256];
	int n;
	if (g.sfd < 0)
		return;
	/* Fixed width: the text never shrinks, so no stale tail. */
	n = snprintf(b, sizeof b,
		     "writes %20llu\ndurable_writes %20llu\nsyncs %20llu\n"
		     "unsynced %20llu\n",
		     g.writes, g.durable_writes, g.syncs, g.unsynced);
	if (NEXT(pwrite)(g.sfd, b, (size_t)n, 0) != n)
		die("write stats %s: %s", g.stats, strerror(errno));
}

/* First open of the file: remember it, start an empty journal (what the
 * file holds now is the durable starting point). Lock held. */
static void file_start(const char *fdlink, const char *path,
		       const struct stat *st)
{
	uint32_t plen = (uint32_t)strlen(path);
	g.rfd = NEXT(open)(fdlink, O_RDONLY | O_CLOEXEC);
	if (g.rfd < 0)
		die("reopen %s: %s", path, strerror(errno));
	g.jfd = NEXT(open)(g.journal,
			   O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC,
			   0600);
	if (g.jfd < 0)
		die("create journal %s: %s", g.journal, strerror(errno));
	append(g.jfd, PL_JOURNAL_MAGIC, 4);
	append(g.jfd, &plen, sizeof plen);
	append(g.jfd, path, plen);
	g.header_len = 4 + sizeof plen + plen;
	if (g.stats != NULL && g.stats[0] != '\0') {
		g.sfd = NEXT(open)(
		    g.stats, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		if (g.sfd < 0)
			die("create stats %s: %s", g.stats, strerror(errno));
		stats_write();
	}
	g.dev = st->st_dev;
	g.ino = st->st_ino;
	__atomic_store_n(&g.have_file, 1, __ATOMIC_RELEASE);
}

static int opened(int fd, int flags)
{
	char link[64], path[PATH_MAX];
	struct stat st;
	ssize_t n;
	int saved = errno;

	if (fd < 0 || g.pattern == NULL)
		return fd;
	snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
	n = readlink(link, path, sizeof path - 1);
	if (n > 0) {
		path[n] = '\0';
		if (path_matches(path, g.pattern)) {
			if (fstat(fd, &st) != 0)
				die("fstat %s: %s", path, strerror(errno));
			pthread_mutex_lock(&g.lock);
			if (!g.have_file)
				file_start(link, path, &st);
			else if (st.st_dev != g.dev || st.st_ino != g.ino)
				die("a second file matches %s: %s", g.pattern,
				    path);
			pthread_mutex_unlock(&g.lock);
			if (flags & O_TRUNC)
				die("O_TRUNC on %s is not modelled", path);
		}
	}
	errno = saved;
	return fd;
}

static int is_tracked(int fd)
{
	struct stat st;
	int saved, r;
	if (fd < 0 || !__atomic_load_n(&g.have_file, __ATOMIC_ACQUIRE))
		return 0;
	saved = errno;
	r = fstat(fd, &st) == 0 && st.st_dev == g.dev && st.st_ino == g.ino;
	errno = saved;
	return r;
}

#define AT_POS ((off_t)-1) /* write() and writev(): at the file position */

/* Before a write of len bytes at off: journals the bytes it will
 * overwrite and takes the lock, released by write_end. Returns -1 for
 * other files (and for a negative offset, which the call refuses), else
 * the record's flags. */
static int write_begin(int fd, off_t off, uint64_t len)
{
	struct pl_rec r = {.len = len};
	struct stat st;
	int fl, saved;

	if ((off < 0 && off != AT_POS) || !is_tracked(fd))
		return -1;
	saved = errno;
	pthread_mutex_lock(&g.lock);
	fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fstat(g.rfd, &st) != 0)
		die("inspect the tracked file: %s", strerror(errno));
	if (off == AT_POS)
		off = (fl & O_APPEND) ? st.st_size : lseek(fd, 0, SEEK_CUR);
	if (off < 0)
		die("lseek: %s", strerror(errno));
	memcpy(r.magic, PL_REC_MAGIC, 4);
	/* O_SYNC includes the O_DSYNC bit on Linux. */
	r.flags = (fl & O_DSYNC) ? PL_DURABLE : 0;
	r.off = (uint64_t)off;
	r.old_size = (uint64_t)st.st_size;
	if (r.off < r.old_size)
		r.old_len = len < r.old_size - r.off ? len : r.old_size - r.off;
	append(g.jfd, &r, sizeof r);
	for (uint64_t done = 0; done < r.old_len;) {
		uint64_t want = r.old_len - done;
		ssize_t n;
		if (want > sizeof g.buf)
			want = sizeof g.buf;
		n = pread(g.rfd, g.buf, (size_t)want, (off_t)(r.off + done));
		if (n <= 0)
			die("read old bytes: %s", n ? strerror(errno) : "EOF");
		append(g.jfd, g.buf, (size_t)n);
		done += (uint64_t)n;
	}
	errno = saved;
	return (int)r.flags;
}

static void write_end(int flags, ssize_t rc)
{
	int saved;
	if (flags < 0)
		return;
	saved = errno;
	if (rc > 0) {
		if (flags & PL_DURABLE) {
			g.durable_writes++;
		} else {
			g.writes++;
			g.unsynced++;
		}
		stats_write();
	}
	pthread_mutex_unlock(&g.lock);
	errno = saved;
}

static uint64_t iov_total(const struct iovec *iov, int n)
{
	uint64_t t = 0;
	for (int i = 0; i < n; i++)
		t += iov[i].iov_len;
	return t;
}

/* A successful sync of the file: the journal so far is moot. */
static int sync_end(int rc)
{
	int saved = errno;
	if (rc == 0) {
		if (NEXT(ftruncate)(g.jfd, (off_t)g.header_len) != 0)
			die("truncate journal: %s", strerror(errno));
		g.syncs++;
		g.unsynced = 0;
		stats_write();
	}
	pthread_mutex_unlock(&g.lock);
	errno = saved;
	return rc;
}

/* ---- the interposed calls ------------------------------------------------ */

static mode_t open_mode(int flags, va_list ap)
{
	return (flags & (O_CREAT | O_TMPFILE)) ? (mode_t)va_arg(ap, int) : 0;
}

VISIBLE int open(const char *path, int flags, ...)
{
	va_list ap;
	mode_t mode;
	va_start(ap, flags);
	mode = open_mode(flags, ap);
	va_end(ap);
	return opened(NEXT(open)(path, flags, mode), flags);
}

VISIBLE int open64(const char *path, int flags, ...)
{
	va_list ap;
	mode_t mode;
	va_start(ap, flags);
	mode = open_mode(flags, ap);
	va_end(ap);
	return opened(NEXT(open64)(path, flags, mode), flags);
}

VISIBLE int openat(int dir, const char *path, int flags, ...)
{
	va_list ap;
	mode_t mode;
	va_start(ap, flags);
	mode = open_mode(flags, ap);
	va_end(ap);
	return opened(NEXT(openat)(dir, path, flags, mode), flags);
}

VISIBLE int openat64(int dir, const char *path, int flags, ...)
{
	va_list ap;
	mode_t mode;
	va_start(ap, flags);
	mode = open_mode(flags, ap);
	va_end(ap);
	return opened(NEXT(openat64)(dir, path, flags, mode), flags);
}

VISIBLE ssize_t write(int fd, const void *b, size_t n)
{
	int f = write_begin(fd, AT_POS, n);
	ssize_t rc = NEXT(write)(fd, b, n);
	write_end(f, rc);
	return rc;
}

VISIBLE ssize_t writev(int fd, const struct iovec *iov, int n)
{
	int f = write_begin(fd, AT_POS, iov_total(iov, n));
	ssize_t rc = NEXT(writev)(fd, iov, n);
	write_end(f, rc);
	return rc;
}

VISIBLE ssize_t pwrite(int fd, const void *b, size_t n, off_t off)
{
	int f = write_begin(fd, off, n);
	ssize_t rc = NEXT(pwrite)(fd, b, n, off);
	write_end(f, rc);
	return rc;
}

VISIBLE ssize_t pwrite64(int fd, const void *b, size_t n, off64_t off)
{
	int f = write_begin(fd, off, n);
	ssize_t rc = NEXT(pwrite64)(fd, b, n, off);
	write_end(f, rc);
	return rc;
}

VISIBLE ssize_t pwritev(int fd, const struct iovec *iov, int n, off_t off)
{
	int f = write_begin(fd, off, iov_total(iov, n));
	ssize_t rc = NEXT(pwritev)(fd, iov, n, off);
	write_end(f, rc);
	return rc;
}

VISIBLE ssize_t pwritev64(int fd, const struct iovec *iov, int n, off64_t off)
{
	int f = write_begin(fd, off, iov_total(iov, n));
	ssize_t rc = NEXT(pwritev64)(fd, iov, n, off);
	write_end(f, rc);
	return rc;
}

VISIBLE int fsync(int fd)
{
	if (!is_tracked(fd))
		return NEXT(fsync)(fd);
	pthread_mutex_lock(&g.lock);
	return sync_end(NEXT(fsync)(fd));
}

VISIBLE int fdatasync(int fd)
{
	if (!is_tracked(fd))
		return NEXT(fdatasync)(fd);
	pthread_mutex_lock(&g.lock);
	return sync_end(NEXT(fdatasync)(fd));
}

VISIBLE int ftruncate(int fd, off_t len)
{
	if (is_tracked(fd))
		die("ftruncate of the tracked file is not modelled");
	return NEXT(ftruncate)(fd, len);
}

VISIBLE int ftruncate64(int fd, off64_t len)
{
	if (is_tracked(fd))
		die("ftruncate of the tracked file is not modelled");
	return NEXT(ftruncate64)(fd, len);
}

/* Stores into a writable shared mapping bypass write(): refuse them. */
static void check_map(int prot, int flags, int fd)
{
	if ((prot & PROT_WRITE) && (flags & MAP_SHARED) && is_tracked(fd))
		die("a writable shared mapping of the tracked file "
		    "(MDB_WRITEMAP?) is not modelled");
}

VISIBLE void *mmap(void *addr, size_t len, int prot, int flags, int fd,
		   off_t off)
{
	check_map(prot, flags, fd);
	return NEXT(mmap)(addr, len, prot, flags, fd, off);
}

VISIBLE void *mmap64(void *addr, size_t len, int prot, int flags, int fd,
		     off64_t off)
{
	check_map(prot, flags, fd);
	return NEXT(mmap64)(addr, len, prot, flags, fd, off);
}
