/* SPDX-License-Identifier: Apache-2.0 */
/* powerloss-rollback: applies an undo journal written by the power-loss
 * interposer (powerloss.c, format in powerloss.h) to its file, once the
 * process that wrote it is dead.
 *
 * First every record is undone, newest first. Just before record i is
 * undone the file is exactly as write i left it, so the bytes it wrote are
 * read back then. When all are undone the file is as of the last sync.
 * Then the writes that were durable when they returned (O_DSYNC) are
 * applied again in their order. With --seed, also a random half of the
 * unsynced writes' 4 KiB pages are applied again, in order: the disk may
 * have written back any of them before the power went, in any order.
 *
 * Usage: powerloss-rollback [--seed N] JOURNAL
 * Exit 0 and one summary line on success, 2 on any error. */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "powerloss.h"

#define PAGE 4096

struct entry {
	struct pl_rec r;
	const uint8_t *old; /* into the journal buffer */
	uint8_t *now;	    /* bytes the write left, read back before undo */
	uint64_t now_len;
};

static void fail(const char *what, const char *path)
{
	fprintf(stderr, "powerloss-rollback: %s %s: %s\n", what, path,
		errno ? strerror(errno) : "malformed");
	exit(2);
}

static uint8_t *read_all(const char *path, size_t *len)
{
	struct stat st;
	uint8_t *b;
	size_t done = 0;
	int fd = open(path, O_RDONLY);
	if (fd < 0 || fstat(fd, &st) != 0)
		fail("open", path);
	b = malloc((size_t)st.st_size + 1);
	if (b == NULL)
		fail("allocate for", path);
	while (done < (size_t)st.st_size) {
		ssize_t n = read(fd, b + done, (size_t)st.st_size - done);
		if (n <= 0)
			fail("read", path);
		done += (size_t)n;
	}
	close(fd);
	*len = done;
	return b;
}

static void put(int fd, const uint8_t *p, uint64_t n, uint64_t off,
		const char *path)
{
	while (n > 0) {
		ssize_t w = pwrite(fd, p, (size_t)n, (off_t)off);
		if (w <= 0)
			fail("write", path);
		p += w;
		n -= (uint64_t)w;
		off += (uint64_t)w;
	}
}

/* The bytes at [off, off + len) that exist now (the file may be shorter). */
static uint8_t *get(int fd, uint64_t off, uint64_t len, uint64_t *got,
		    const char *path)
{
	struct stat st;
	uint8_t *b;
	uint64_t n = 0;
	if (fstat(fd, &st) != 0)
		fail("stat", path);
	if (off < (uint64_t)st.st_size)
		n = len < (uint64_t)st.st_size - off
			? len
			: (uint64_t)st.st_size - off;
	b = malloc(n ? n : 1);
	if (b == NULL)
		fail("allocate for", path);
	for (uint64_t done = 0; done < n;) {
		ssize_t r = pread(fd, b + done, (size_t)(n - done),
				  (off_t)(off + done));
		if (r <= 0)
			fail("read", path);
		done += (uint64_t)r;
	}
	*got = n;
	return b;
}

/* xorshift64*, as in the tests: a seed replays the same choice. */
static uint64_t next_rand(uint64_t *s)
{
	uint64_t x = *s ? *s : 0x9E3779B97F4A7C15ull;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*s = x;
	return x * 0x2545F4914F6CDD1Dull;
}

int main(int argc, char **argv)
{
	const char *jpath;
	char *path;
	uint8_t *j;
	size_t jlen, pos, n = 0, cap = 64;
	struct entry *e = malloc(cap * sizeof *e);
	uint32_t plen;
	uint64_t seed = 0, undone_bytes = 0, pages = 0, kept = 0, durable = 0;
	int reorder = 0, torn = 0, fd;

	if (argc == 4 && strcmp(argv[1], "--seed") == 0) {
		seed = strtoull(argv[2], NULL, 0);
		reorder = 1;
		jpath = argv[3];
	} else if (argc == 2) {
		jpath = argv[1];
	} else {
		fprintf(stderr, "usage: powerloss-rollback [--seed N] "
				"JOURNAL\n");
		return 2;
	}
	errno = 0;
	j = read_all(jpath, &jlen);
	if (jlen < 8 || memcmp(j, PL_JOURNAL_MAGIC, 4) != 0)
		fail("no journal header in", jpath);
	memcpy(&plen, j + 4, sizeof plen);
	if (plen == 0 || 8 + (size_t)plen > jlen)
		fail("bad path in", jpath);
	path = strndup((const char *)j + 8, plen);
	pos = 8 + plen;

	/* Records; a torn last one was appended but its write never issued. */
	while (pos < jlen) {
		struct pl_rec r;
		if (jlen - pos < sizeof r) {
			torn = 1;
			break;
		}
		memcpy(&r, j + pos, sizeof r);
		if (memcmp(r.magic, PL_REC_MAGIC, 4) != 0 || r.old_len > r.len)
			fail("bad record in", jpath);
		if (jlen - pos - sizeof r < r.old_len) {
			torn = 1;
			break;
		}
		if (n == cap) {
			cap *= 2;
			e = realloc(e, cap * sizeof *e);
		}
		if (e == NULL)
			fail("allocate for", jpath);
		e[n].r = r;
		e[n].old = j + pos + sizeof r;
		n++;
		pos += sizeof r + r.old_len;
	}

	fd = open(path, O_RDWR);
	if (fd < 0)
		fail("open", path);
	for (size_t i = n; i-- > 0;) {
		struct pl_rec *r = &e[i].r;
		e[i].now = get(fd, r->off, r->len, &e[i].now_len, path);
		put(fd, e[i].old, r->old_len, r->off, path);
		if (ftruncate(fd, (off_t)r->old_size) != 0)
			fail("truncate", path);
		undone_bytes += r->len;
	}
	for (size_t i = 0; i < n; i++) {
		struct pl_rec *r = &e[i].r;
		if (r->flags & PL_DURABLE) {
			put(fd, e[i].now, e[i].now_len, r->off, path);
			durable++;
			continue;
		}
		if (!reorder)
			continue;
		/* Page by page, as the page cache writes back. */
		for (uint64_t at = 0; at < e[i].now_len;) {
			uint64_t end = (r->off + at) / PAGE * PAGE + PAGE;
			uint64_t len = end - (r->off + at);
			if (len > e[i].now_len - at)
				len = e[i].now_len - at;
			pages++;
			if (next_rand(&seed) >> 63) {
				put(fd, e[i].now + at, len, r->off + at, path);
				kept++;
			}
			at += len;
		}
	}
	if (close(fd) != 0)
		fail("close", path);
	printf("powerloss-rollback: %s: undid %zu writes (%llu bytes), "
	       "kept %llu durable",
	       path, n, (unsigned long long)undone_bytes,
	       (unsigned long long)durable);
	if (reorder)
		printf(", re-applied %llu of %llu unsynced pages",
		       (unsigned long long)kept, (unsigned long long)pages);
	printf("%s\n", torn ? ", ignored a torn last record" : "");
	for (size_t i = 0; i < n; i++)
		free(e[i].now);
	free(e);
	free(path);
	free(j);
	return 0;
}
