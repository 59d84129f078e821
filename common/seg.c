/* SPDX-License-Identifier: Apache-2.0 */
/* Signed segments; see seg.h. */
#include "seg.h"

#include <string.h>

/* Domain separation: these bytes are never signed or hashed for anything
 * else. */
static const char SIGN_CONTEXT[] = "msce segment v1";
static const char HASH_KEY[] = "msce segment changes v1";
static const char DERIVE_KEY[] = "msce origin signing key v1";

static void le32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void le64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

void seg_hash_begin(struct seg_hasher *h)
{
	crypto_generichash_init(&h->st, (const uint8_t *)HASH_KEY,
				sizeof HASH_KEY - 1, SEG_HASH_LEN);
}

void seg_hash_change(struct seg_hasher *h, const uint8_t *change, size_t len)
{
	uint8_t n[4];
	/* Length first, so that no two change lists hash alike. */
	le32(n, (uint32_t)len);
	crypto_generichash_update(&h->st, n, sizeof n);
	crypto_generichash_update(&h->st, change, len);
}

void seg_hash_end(struct seg_hasher *h, uint8_t out[SEG_HASH_LEN])
{
	crypto_generichash_final(&h->st, out, SEG_HASH_LEN);
}

#define MSG_LEN (sizeof SIGN_CONTEXT + 4 + 8 + 8 + 8 + SEG_HASH_LEN)

static void message(const struct seg *s, uint8_t m[MSG_LEN])
{
	uint8_t *p = m;
	memcpy(p, SIGN_CONTEXT, sizeof SIGN_CONTEXT); /* with its NUL */
	p += sizeof SIGN_CONTEXT;
	le32(p, s->origin);
	p += 4;
	le64(p, s->first);
	p += 8;
	le64(p, s->last);
	p += 8;
	le64(p, s->last_hlc);
	p += 8;
	memcpy(p, s->hash, SEG_HASH_LEN);
}

void seg_sign(struct seg *s, const uint8_t sk[SEG_SK_LEN])
{
	uint8_t m[MSG_LEN];
	message(s, m);
	crypto_sign_detached(s->sig, NULL, m, sizeof m, sk);
}

int seg_verify(const struct seg *s, const uint8_t pk[SEG_PK_LEN])
{
	uint8_t m[MSG_LEN];
	message(s, m);
	return crypto_sign_verify_detached(s->sig, m, sizeof m, pk) == 0 ? 0
									 : -1;
}

void seg_keypair_from_link(const uint8_t link_sk[32], uint8_t pk[SEG_PK_LEN],
			   uint8_t sk[SEG_SK_LEN])
{
	uint8_t seed[crypto_sign_SEEDBYTES];
	crypto_generichash(seed, sizeof seed, link_sk, 32,
			   (const uint8_t *)DERIVE_KEY, sizeof DERIVE_KEY - 1);
	crypto_sign_seed_keypair(pk, sk, seed);
	sodium_memzero(seed, sizeof seed);
}
