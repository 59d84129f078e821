/* SPDX-License-Identifier: Apache-2.0 */
/* fuzz_segs: signed segments and snapshot covers, as a peer sends them.
 *
 * Input: one control byte, then an encoded msce.PeerMsg holding Changes
 * (or a SnapshotChunk). Control bit 0: sign the message's segments (or
 * covers) with the origin node's real key before applying, so that the
 * checks past the signature are reached; bits 1-3 then say what to alter
 * after signing (nothing, a change's byte, a segment's last_hlc, its
 * range; for a snapshot's first cover: its last_hlc, its signature). The
 * store (node 1) knows the keys of nodes 1..8.
 *
 * The property: a store's vector never moves past what a verifying
 * signature covers. Changes: the vector of the batch's origin ends at the
 * end of a segment that was signed and left unaltered, or where it was.
 * Snapshots: the vector ends at a signed, unaltered cover, or where it
 * was. Any other outcome aborts. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_store.h"
#include "peer.pb-c.h"
#include "seg.h"
#include "store.h"

#define CLUSTER "fuzz"
#define NOW 1800000000000ull

static void node_keys(uint32_t node, uint8_t pk[32], uint8_t sk[64])
{
	uint8_t link[32] = {(uint8_t)node, (uint8_t)(node >> 8), 0x5e};
	seg_keypair_from_link(link, pk, sk);
}

static void set_keys(struct store *s)
{
	struct store_key k[8];
	uint8_t sk[64];
	for (uint32_t i = 0; i < 8; i++) {
		k[i].node = i + 1;
		node_keys(i + 1, k[i].pk, sk);
	}
	store_set_keys(s, k, 8, NULL);
}

static uint64_t held(struct store *s, uint32_t origin)
{
	return store_vv_get(s, origin).seq;
}

static int changes(struct store *s, uint8_t ctl, Msce__Changes *c)
{
	size_t ng = c->n_segments, covered = 0;
	struct seg *g = calloc(ng ? ng : 1, sizeof *g);
	struct store_blob *b = calloc(c->n_changes ? c->n_changes : 1,
				      sizeof *b);
	uint64_t before = held(s, c->origin), limit = before;
	int alter = (ctl >> 1) & 7, signing = ctl & 1, ok_prefix = 1;
	struct store_apply_result res;
	uint8_t pk[32], sk[64];

	if (g == NULL || b == NULL)
		abort();
	node_keys(c->origin & 0xffff, pk, sk);
	for (size_t k = 0; k < c->n_changes; k++) {
		b[k].data = c->changes[k].data;
		b[k].len = c->changes[k].len;
	}
	for (size_t k = 0; k < ng; k++) {
		const Msce__Segment *m = c->segments[k];
		g[k].origin = c->origin;
		g[k].first = m->first;
		g[k].last = m->last;
		g[k].last_hlc = m->last_hlc;
		if (m->sig.len == SEG_SIG_LEN)
			memcpy(g[k].sig, m->sig.data, SEG_SIG_LEN);
		size_t n = m->last >= m->first && m->first > 0 &&
				   m->last - m->first < c->n_changes
			       ? (size_t)(m->last - m->first + 1)
			       : 0;
		int good = 0;
		if (signing && n > 0 && covered + n <= c->n_changes) {
			struct seg_hasher h;
			seg_hash_begin(&h);
			for (size_t j = 0; j < n; j++)
				seg_hash_change(&h, b[covered + j].data,
						b[covered + j].len);
			seg_hash_end(&h, g[k].hash);
			seg_sign(&g[k], sk);
			good = 1;
			/* Altered after signing: must not verify. */
			if (k == 0 && alter == 1 && b[covered].len > 0) {
				uint8_t *p = (uint8_t *)b[covered].data;
				p[b[covered].len / 2] ^= 0x40;
				good = 0;
			} else if (k == 0 && alter == 2) {
				g[k].last_hlc ^= 1;
				good = 0;
			} else if (k == 0 && alter == 3 && n > 1) {
				g[k].last--;
				good = 0;
			}
		}
		/* Only a prefix of good segments may apply, each ending past
		 * what is held; a bad one wholly below what was held is
		 * skipped unread (its changes are duplicates). */
		if (good && ok_prefix && g[k].last > limit)
			limit = g[k].last;
		if (!good && g[k].last > before)
			ok_prefix = 0;
		covered += n;
	}
	store_apply_signed(s, b, c->n_changes, g, ng, NOW, 60000, &res, NULL);
	if (held(s, c->origin) > limit) {
		fprintf(stderr,
			"fuzz_segs: origin %u moved from %llu to %llu, past "
			"what verified (%llu)\n",
			c->origin, (unsigned long long)before,
			(unsigned long long)held(s, c->origin),
			(unsigned long long)limit);
		abort();
	}
	free(g);
	free(b);
	return 0;
}

static int snapshot(struct store *s, uint8_t ctl, Msce__SnapshotChunk *c)
{
	size_t n = c->n_vv < 128 ? c->n_vv : 128;
	struct vv_entry vv[128];
	struct seg g[128];
	uint64_t before[128], limit[128];
	int alter = (ctl >> 1) & 7;
	struct store_snap_chunk ch = {0};

	memset(g, 0, sizeof g);
	for (size_t i = 0; i < n; i++) {
		uint8_t pk[32], sk[64];
		vv[i].origin = c->vv[i]->origin;
		vv[i].seq = c->vv[i]->seq;
		vv[i].hlc = c->vv[i]->hlc;
		vv[i].floor = 0;
		before[i] = held(s, vv[i].origin);
		limit[i] = before[i];
		g[i].origin = vv[i].origin;
		g[i].first = i % 2 ? 0 : 1; /* seals and segments */
		g[i].last = vv[i].seq;
		g[i].last_hlc = vv[i].hlc;
		if (ctl & 1) {
			node_keys(vv[i].origin & 0xffff, pk, sk);
			seg_sign(&g[i], sk);
			if (i == 0 && alter == 1)
				g[i].last_hlc ^= 1;
			else if (i == 0 && alter == 2)
				g[i].sig[0] ^= 1; /* a broken signature */
			else if (limit[i] < vv[i].seq)
				limit[i] = vv[i].seq;
		}
	}
	ch.source = 2;
	ch.cover = vv;
	ch.ncover = n;
	ch.cover_segs = g;
	ch.ncover_segs = n;
	ch.first = 1;
	ch.done = 1;
	store_snap_apply(s, &ch, NULL);
	for (size_t i = 0; i < n; i++)
		if (held(s, vv[i].origin) > limit[i] &&
		    vv[i].origin != 1 /* our own writer: refused anyway */) {
			fprintf(stderr,
				"fuzz_segs: snapshot raised origin %u to %llu, "
				"past what verified (%llu)\n",
				vv[i].origin,
				(unsigned long long)held(s, vv[i].origin),
				(unsigned long long)limit[i]);
			abort();
		}
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	Msce__PeerMsg *m;
	struct store *s;
	int fresh;
	uint8_t *copy;

	if (size < 1)
		return 0;
	s = fuzz_store_begin(1, CLUSTER, &fresh);
	set_keys(s);
	/* A private copy: changes may be altered after signing. */
	copy = malloc(size);
	if (copy == NULL)
		return 0;
	memcpy(copy, data, size);
	m = msce__peer_msg__unpack(NULL, size - 1, copy + 1);
	if (m != NULL && m->msg_case == MSCE__PEER_MSG__MSG_CHANGES)
		changes(s, copy[0], m->changes);
	else if (m != NULL && m->msg_case == MSCE__PEER_MSG__MSG_SNAPSHOT)
		snapshot(s, copy[0], m->snapshot);
	msce__peer_msg__free_unpacked(m, NULL);
	free(copy);
	return 0;
}
