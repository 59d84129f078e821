/* SPDX-License-Identifier: Apache-2.0 */
/* The forging insider: a peer that alters what it relays. It takes a real
 * message on its way and changes what a signature covers, or claims more
 * than the origins signed: a change's value, the origin changes are
 * labelled with, a batch without its signatures, a segment claiming more
 * changes than it carries, a snapshot's vector raised past what it
 * proves, a gossiped status claiming more than its node signed. Every one
 * must be refused, and nothing of it applied or believed: the oracle sees
 * a value nobody wrote, or a vector beyond what an origin made, and the
 * simulator a view beyond what a node claimed. */
#include <stdlib.h>
#include <string.h>

#include "hlc.h"
#include "msce.pb-c.h"
#include "peer.pb-c.h"
#include "sim.h"

enum { F_ALTER, F_RELABEL, F_STRIP, F_EXTEND, F_NKINDS };

static uint8_t *pack(const Msce__PeerMsg *m, size_t *len)
{
	uint8_t *out;
	*len = msce__peer_msg__get_packed_size(m);
	out = malloc(*len ? *len : 1);
	if (out != NULL)
		msce__peer_msg__pack(m, out);
	return out;
}

/* A change's bytes with its first field's value altered, or its origin
 * replaced (origin != 0). */
static int alter_change(ProtobufCBinaryData *b, uint32_t origin)
{
	Msce__Change *c = msce__change__unpack(NULL, b->len, b->data);
	uint8_t *v = NULL, *out;
	size_t n;

	if (c == NULL)
		return -1;
	if (origin != 0) {
		c->origin = origin;
	} else if (c->n_fields > 0) {
		ProtobufCBinaryData *val = &c->fields[0]->value;
		v = malloc(val->len + 1);
		if (v == NULL) {
			msce__change__free_unpacked(c, NULL);
			return -1;
		}
		memcpy(v, val->data, val->len);
		v[val->len] = 'X'; /* a value its writer never wrote */
		free(val->data);
		val->data = v;
		val->len++;
	} else {
		c->hlc++; /* a delete: move it */
	}
	n = msce__change__get_packed_size(c);
	out = malloc(n);
	if (out == NULL) {
		msce__change__free_unpacked(c, NULL);
		return -1;
	}
	msce__change__pack(c, out);
	msce__change__free_unpacked(c, NULL);
	free(b->data);
	b->data = out;
	b->len = n;
	return 0;
}

/* A signed status altered under its signature: a vector entry raised, or
 * (with none) the digest changed. */
static int alter_status(struct sim *s, Msce__SignedStatus *ss)
{
	Msce__NodeStatus *st =
	    msce__node_status__unpack(NULL, ss->status.len, ss->status.data);
	uint8_t *out;
	size_t n;

	if (st == NULL)
		return -1;
	if (st->n_vv > 0) {
		Msce__VVEntry *v = st->vv[rng_below(&s->status_rng, st->n_vv)];
		v->seq += 100;
		v->hlc += 1;
	} else if (st->digest.len > 0) {
		st->digest.data[0] ^= 1;
	}
	n = msce__node_status__get_packed_size(st);
	if ((out = malloc(n ? n : 1)) == NULL) {
		msce__node_status__free_unpacked(st, NULL);
		return -1;
	}
	msce__node_status__pack(st, out);
	msce__node_status__free_unpacked(st, NULL);
	free(ss->status.data);
	ss->status.data = out;
	ss->status.len = n;
	return 0;
}

uint8_t *forge_msg(struct sim *s, const uint8_t *buf, size_t len,
		   size_t *outlen, const char **what)
{
	Msce__PeerMsg *m = msce__peer_msg__unpack(NULL, len, buf);
	uint8_t *out = NULL;

	if (m == NULL)
		return NULL;
	if (m->msg_case == MSCE__PEER_MSG__MSG_CHANGES) {
		Msce__Changes *c = m->changes;
		size_t i = rng_below(&s->rng, c->n_changes);
		switch (rng_below(&s->rng, F_NKINDS)) {
		case F_ALTER:
			*what = "a change's value altered";
			if (alter_change(&c->changes[i], 0))
				goto out;
			break;
		case F_RELABEL:
			*what = "changes relabelled with another origin";
			c->origin ^= 1u << 16; /* another incarnation */
			for (i = 0; i < c->n_changes; i++)
				if (alter_change(&c->changes[i], c->origin))
					goto out;
			break;
		case F_STRIP:
			*what = "changes without their signatures";
			for (i = 0; i < c->n_segments; i++)
				msce__segment__free_unpacked(c->segments[i],
							     NULL);
			free(c->segments);
			c->segments = NULL;
			c->n_segments = 0;
			break;
		default:
			*what = "a segment claiming more than it carries";
			if (c->n_segments == 0)
				goto out;
			c->segments[c->n_segments - 1]->last++;
			break;
		}
		out = pack(m, outlen);
	} else if (m->msg_case == MSCE__PEER_MSG__MSG_SNAPSHOT &&
		   m->snapshot->n_vv > 0) {
		Msce__VVEntry *v =
		    m->snapshot->vv[rng_below(&s->rng, m->snapshot->n_vv)];
		*what = "a snapshot's vector raised past its signatures";
		v->seq += 100;
		v->hlc += 1;
		out = pack(m, outlen);
	} else if (m->msg_case == MSCE__PEER_MSG__MSG_GOSSIP &&
		   m->gossip->n_statuses > 0) {
		*what = "a status altered under its node's signature";
		if (alter_status(s, m->gossip->statuses[rng_below(
					&s->status_rng, m->gossip->n_statuses)]))
			goto out;
		out = pack(m, outlen);
	}
out:
	msce__peer_msg__free_unpacked(m, NULL);
	return out;
}

