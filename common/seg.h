/* SPDX-License-Identifier: Apache-2.0 */
/* Signed segments: how an origin vouches for its changes.
 *
 * An origin's changes are cut into segments of consecutive seqs (a local
 * commit closes one; none holds more than SEG_MAX_CHANGES changes or much
 * more than SEG_MAX_BYTES). The origin's node signs each with its Ed25519
 * key: the signature binds the origin, the seq range, the hlc of the last
 * change and a BLAKE2b hash of the changes' encodings, so a relay can
 * neither forge, alter, reorder nor cut a segment. Every node applies
 * whole segments only, so the vector of every node stops at segment ends,
 * and the segment ending there proves what a snapshot covers.
 *
 * A seal (first == 0, hash zero) is the origin's word that its history up
 * to `last` was written before signatures (a store upgraded from format
 * 1): it bounds a snapshot's claim, and carries no changes.
 *
 * Pure functions over libsodium; no I/O. */
#ifndef MSCE_SEG_H
#define MSCE_SEG_H

#include <sodium.h>
#include <stddef.h>
#include <stdint.h>

#define SEG_MAX_CHANGES 256
#define SEG_MAX_BYTES (256 * 1024)
#define SEG_SIG_LEN 64
#define SEG_HASH_LEN 32
#define SEG_PK_LEN 32
#define SEG_SK_LEN 64

struct seg {
	uint32_t origin;
	uint64_t first, last; /* seqs; first 0: a seal */
	uint64_t last_hlc;    /* hlc of change `last` */
	uint8_t hash[SEG_HASH_LEN];
	uint8_t sig[SEG_SIG_LEN];
};

struct seg_hasher {
	crypto_generichash_state st;
};

void seg_hash_begin(struct seg_hasher *h);
void seg_hash_change(struct seg_hasher *h, const uint8_t *change, size_t len);
void seg_hash_end(struct seg_hasher *h, uint8_t out[SEG_HASH_LEN]);

/* Signs s (all fields but sig) with the node's secret key. */
void seg_sign(struct seg *s, const uint8_t sk[SEG_SK_LEN]);
/* 0 when s->sig is the signature of s by pk. */
int seg_verify(const struct seg *s, const uint8_t pk[SEG_PK_LEN]);

static inline int seg_is_seal(const struct seg *s)
{
	return s->first == 0;
}

/* The signing key pair of a node, derived from its link (X25519) secret
 * key, so that a center keeps one secret. */
void seg_keypair_from_link(const uint8_t link_sk[32], uint8_t pk[SEG_PK_LEN],
			   uint8_t sk[SEG_SK_LEN]);

#endif
