/* SPDX-License-Identifier: Apache-2.0 */
/* A scratch store for the fuzz targets that need one (fuzz_peer,
 * fuzz_client): one LMDB store in a temporary directory under $TMPDIR,
 * opened once per process and replaced by a fresh one every
 * MSCE_FUZZ_REOPEN inputs (default 64; 1 = a clean store for every input,
 * which is what to use when replaying a crash). The directory is removed
 * at exit. */
#ifndef MSCE_FUZZ_STORE_H
#define MSCE_FUZZ_STORE_H

#include <stdint.h>

#include "store.h"

/* Called at the start of each input: returns the store to use for it
 * (owned here; valid until the next call). *fresh is set when it is a new,
 * empty store. Aborts if no store can be opened: a fuzz run without one is
 * meaningless. */
struct store *fuzz_store_begin(uint32_t node_id, const char *cluster,
			       int *fresh);

#endif
