/* SPDX-License-Identifier: Apache-2.0 */
/* Signed statuses: each node signs the status it gossips with its signing
 * key (seg.h), and every node relays it as received, so that a relay can
 * pass a status on but can neither make one up nor alter one.
 *
 * Pure functions over libsodium; no I/O. */
#ifndef MSCE_STATUSSIG_H
#define MSCE_STATUSSIG_H

#include <stddef.h>
#include <stdint.h>

#include "seg.h"

/* A status's encoding larger than this is refused unread (a NodeStatus at
 * the protocol's limits is under 6 KiB). */
#define STATUS_MAX_BYTES 16384

/* Signs the encoded status (NodeStatus) with the node's secret key. */
void status_sign(const uint8_t *status, size_t len,
		 const uint8_t sk[SEG_SK_LEN], uint8_t sig[SEG_SIG_LEN]);
/* 0 when sig is pk's signature of the encoded status. */
int status_verify(const uint8_t *status, size_t len,
		  const uint8_t sig[SEG_SIG_LEN], const uint8_t pk[SEG_PK_LEN]);

#endif
