/* SPDX-License-Identifier: Apache-2.0 */
/* Handshake admission by source address; see admission.h.
 *
 * One entry per address seen recently: its pending handshakes and its
 * token bucket. Entries live in a fixed array chained into a hash table
 * keyed with a random SipHash key, since the addresses (an IPv6 /64 holds
 * 2^64 of them) are the attacker's choice. The array holds 4 entries per
 * slot plus the reserved addresses: at most max_pending entries have
 * something pending, so there is always an entry with nothing pending to
 * recycle, and recycling one only forgets a token bucket that refills in
 * a quarter of a second anyway. */
#include "admission.h"

#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "error.h"

#define IDLE_MS 1000 /* a bucket unused this long is full again */

struct admission_entry {
	struct admission_key key;
	uint32_t next;	 /* in its bucket chain or the free list; index + 1 */
	uint32_t pending;
	uint32_t tokens; /* thousandths of a handshake */
	uint64_t last_ms;
	uint8_t reserved;
	uint8_t in_use;
};

int admission_key_of(const struct sockaddr *sa, struct admission_key *k)
{
	static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0,
					   0, 0, 0, 0, 0xff, 0xff};

	memset(k, 0, sizeof(*k));
	if (sa->sa_family == AF_INET) {
		memcpy(k->b, &((const struct sockaddr_in *)sa)->sin_addr, 4);
		k->len = 4;
		return 0;
	}
	if (sa->sa_family == AF_INET6) {
		const uint8_t *b =
		    ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr;

		if (memcmp(b, mapped, sizeof(mapped)) == 0) {
			memcpy(k->b, b + 12, 4);
			k->len = 4;
		} else {
			memcpy(k->b, b, 8); /* the /64 */
			k->len = 8;
		}
		return 0;
	}
	return MSCE_EINVAL;
}

static uint32_t hash_of(const struct admission *a,
			const struct admission_key *k)
{
	uint8_t in[9], out[crypto_shorthash_BYTES];
	uint32_t h;

	memcpy(in, k->b, 8);
	in[8] = k->len;
	crypto_shorthash(out, in, sizeof(in), a->hash_key);
	memcpy(&h, out, sizeof(h));
	return h & (uint32_t)(a->nbuckets - 1);
}

int admission_init(struct admission *a, const struct admission_config *cfg)
{
	size_t nb = 16;

	memset(a, 0, sizeof(*a));
	if (!cfg->max_pending || !cfg->per_addr ||
	    cfg->reserved >= cfg->max_pending)
		return MSCE_EINVAL;
	if (sodium_init() < 0)
		return MSCE_ENOMEM;
	a->cfg = *cfg;
	a->cap = 4 * cfg->max_pending + cfg->reserved_addrs;
	if (a->cap > UINT32_MAX - 1)
		return MSCE_EINVAL;
	while (nb < a->cap)
		nb *= 2;
	a->nbuckets = nb;
	a->entries = calloc(a->cap, sizeof(*a->entries));
	a->buckets = calloc(nb, sizeof(*a->buckets));
	if (!a->entries || !a->buckets) {
		admission_free(a);
		return MSCE_ENOMEM;
	}
	for (size_t i = 0; i < a->cap; i++)
		a->entries[i].next = i + 1 < a->cap ? (uint32_t)(i + 2) : 0;
	a->free_head = 1;
	randombytes_buf(a->hash_key, sizeof(a->hash_key));
	return 0;
}

void admission_free(struct admission *a)
{
	free(a->entries);
	free(a->buckets);
	memset(a, 0, sizeof(*a));
}

static struct admission_entry *find(const struct admission *a,
				    const struct admission_key *k)
{
	uint32_t i = a->buckets[hash_of(a, k)];

	while (i) {
		struct admission_entry *e = &a->entries[i - 1];

		if (e->key.len == k->len && memcmp(e->key.b, k->b, 8) == 0)
			return e;
		i = e->next;
	}
	return NULL;
}

static void unlink_entry(struct admission *a, struct admission_entry *e)
{
	uint32_t idx = (uint32_t)(e - a->entries) + 1;
	uint32_t *p = &a->buckets[hash_of(a, &e->key)];

	while (*p != idx)
		p = &a->entries[*p - 1].next;
	*p = e->next;
	memset(e, 0, sizeof(*e));
	e->next = a->free_head;
	a->free_head = idx;
	a->used--;
}

/* An entry for k: from the free list, else the idle ones are recycled,
 * else the one unused longest that has nothing pending. */
static struct admission_entry *add(struct admission *a,
				   const struct admission_key *k,
				   uint64_t now_ms)
{
	struct admission_entry *e, *oldest = NULL;
	uint32_t h;

	if (!a->free_head) {
		for (size_t i = 0; i < a->cap; i++) {
			e = &a->entries[i];
			if (!e->in_use || e->reserved || e->pending)
				continue;
			if (now_ms - e->last_ms >= IDLE_MS)
				unlink_entry(a, e);
			else if (!oldest || e->last_ms < oldest->last_ms)
				oldest = e;
		}
		if (!a->free_head && oldest)
			unlink_entry(a, oldest);
		if (!a->free_head)
			return NULL;
	}
	e = &a->entries[a->free_head - 1];
	a->free_head = e->next;
	memset(e, 0, sizeof(*e));
	e->key = *k;
	e->in_use = 1;
	e->tokens = ADMISSION_BURST * 1000;
	e->last_ms = now_ms;
	h = hash_of(a, k);
	e->next = a->buckets[h];
	a->buckets[h] = (uint32_t)(e - a->entries) + 1;
	a->used++;
	return e;
}

int admission_reserve(struct admission *a, const struct admission_key *k)
{
	struct admission_entry *e = find(a, k);

	if (!e && !(e = add(a, k, 0)))
		return MSCE_ENOMEM;
	e->reserved = 1;
	return 0;
}

enum admission_verdict admission_enter(struct admission *a,
				       const struct admission_key *k,
				       uint64_t now_ms,
				       struct admission_entry **slot)
{
	struct admission_entry *e = find(a, k);
	int reserved = e && e->reserved;
	size_t others = a->pending - a->pending_reserved;

	if (a->pending >= a->cfg.max_pending ||
	    (!reserved && others >= a->cfg.max_pending - a->cfg.reserved))
		return ADMISSION_FULL;
	if (e && e->pending >= a->cfg.per_addr)
		return ADMISSION_ADDR_FULL;
	if (!e && !(e = add(a, k, now_ms)))
		return ADMISSION_FULL;
	e->pending++;
	a->pending++;
	if (e->reserved)
		a->pending_reserved++;
	*slot = e;
	return ADMISSION_OK;
}

/* Tokens earned since last_ms; last_ms becomes now. */
static void refill(struct admission_entry *e, uint64_t now_ms)
{
	uint64_t t;

	if (now_ms <= e->last_ms)
		return;
	t = e->tokens + (now_ms - e->last_ms) * ADMISSION_RATE;
	e->tokens = t > ADMISSION_BURST * 1000 ? ADMISSION_BURST * 1000
					       : (uint32_t)t;
	e->last_ms = now_ms;
}

void admission_leave(struct admission *a, struct admission_entry *e,
		     uint64_t now_ms)
{
	if (!e || !e->pending)
		return;
	e->pending--;
	a->pending--;
	if (e->reserved)
		a->pending_reserved--;
	refill(e, now_ms); /* its age counts from its last use */
}

int admission_under_load(const struct admission *a)
{
	return a->pending * 2 >= a->cfg.max_pending;
}

int admission_take(struct admission *a, struct admission_entry *e,
		   uint64_t now_ms)
{
	(void)a;
	refill(e, now_ms);
	if (e->tokens < 1000)
		return 0;
	e->tokens -= 1000;
	return 1;
}

int admission_is_reserved(const struct admission_entry *e)
{
	return e->reserved;
}

size_t admission_pending(const struct admission *a)
{
	return a->pending;
}
