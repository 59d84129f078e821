/* SPDX-License-Identifier: Apache-2.0 */
/* The undo journal shared by the power-loss interposer (powerloss.c), which
 * writes it, and powerloss-rollback (powerloss_rollback.c), which applies
 * it. Native byte order: both run on the same machine.
 *
 * journal := header record*
 * header  := "PLJ1" u32 path_len, path bytes (the tracked file)
 * record  := struct pl_rec, then old_len bytes: the file's bytes at
 *            [off, off + old_len) just before the write
 *
 * A record is appended before its write is issued, so a process killed in
 * between leaves a record whose write never happened (undoing it is a
 * no-op) or a torn last record (the tool ignores it: its write was not
 * issued either). A successful fsync/fdatasync of the file truncates the
 * journal back to its header: everything before it is durable. */
#ifndef MSCE_POWERLOSS_H
#define MSCE_POWERLOSS_H

#include <stdint.h>

#define PL_JOURNAL_MAGIC "PLJ1"
#define PL_REC_MAGIC "PLW1"

enum {
	/* Written through an O_DSYNC/O_SYNC descriptor: durable once the
	 * call returned, so rollback keeps it. */
	PL_DURABLE = 1,
};

struct pl_rec {
	char magic[4];	   /* PL_REC_MAGIC */
	uint32_t flags;	   /* PL_DURABLE or 0 */
	uint64_t off;	   /* where the write starts */
	uint64_t len;	   /* bytes the write asks for */
	uint64_t old_size; /* file size before the write */
	uint64_t old_len;  /* old bytes that follow: min(len, old_size - off) */
};

#endif
