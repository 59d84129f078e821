/* SPDX-License-Identifier: Apache-2.0 */
/* Noise IK with X25519, ChaCha20-Poly1305 (IETF) and SHA-256, written from
 * the spec (revision 34, sections 5 and 7) in the order the spec gives it:
 * CipherState helpers, SymmetricState (MixHash, MixKey, EncryptAndHash,
 * DecryptAndHash, Split) and the two IK messages.
 *
 * Everything secret, including intermediate DH results and HKDF state, is
 * kept in one sodium_malloc'd block per handshake or cipher, so it sits in
 * guarded, locked pages and is wiped by sodium_free. */
#include "noise.h"

#include <string.h>

#include <sodium.h>

#include "error.h"

struct noise_hs_secret {
	uint8_t s[NOISE_KEY_LEN];   /* local static private */
	uint8_t e[NOISE_KEY_LEN];   /* local ephemeral private */
	uint8_t ck[NOISE_HASH_LEN]; /* chaining key */
	uint8_t k[NOISE_KEY_LEN];   /* handshake cipher key */
	uint8_t dh[NOISE_KEY_LEN];
	uint8_t tk[NOISE_HASH_LEN]; /* HKDF temp_key */
	uint8_t o1[NOISE_HASH_LEN];
	uint8_t o2[NOISE_HASH_LEN];
	crypto_auth_hmacsha256_state hmac;
};

/* Cipher block: key, then room for one rekey output (key + tag). */
#define CIPHER_BLOCK (NOISE_KEY_LEN + NOISE_KEY_LEN + NOISE_TAG_LEN)

static int sodium_ready(void)
{
	return sodium_init() < 0 ? MSCE_EIO : 0;
}

/* ---- Key pairs ---- */

int noise_keypair_from_private(struct noise_keypair *kp,
			       const uint8_t priv[NOISE_KEY_LEN])
{
	int rc = sodium_ready();

	memset(kp, 0, sizeof(*kp));
	if (rc)
		return rc;
	kp->priv = sodium_malloc(NOISE_KEY_LEN);
	if (!kp->priv)
		return MSCE_ENOMEM;
	memcpy(kp->priv, priv, NOISE_KEY_LEN);
	if (crypto_scalarmult_base(kp->pub, kp->priv) != 0) {
		noise_keypair_destroy(kp);
		return MSCE_EINVAL;
	}
	return 0;
}

int noise_keypair_generate(struct noise_keypair *kp)
{
	int rc = sodium_ready();

	memset(kp, 0, sizeof(*kp));
	if (rc)
		return rc;
	kp->priv = sodium_malloc(NOISE_KEY_LEN);
	if (!kp->priv)
		return MSCE_ENOMEM;
	randombytes_buf(kp->priv, NOISE_KEY_LEN);
	if (crypto_scalarmult_base(kp->pub, kp->priv) != 0) {
		noise_keypair_destroy(kp);
		return MSCE_EIO;
	}
	return 0;
}

void noise_keypair_destroy(struct noise_keypair *kp)
{
	sodium_free(kp->priv); /* wipes; accepts NULL */
	memset(kp, 0, sizeof(*kp));
}

/* ---- AEAD with Noise nonces ---- */

/* Noise ChaChaPoly nonce: 32 bits of zeros, then n little-endian. */
static void make_nonce(uint8_t nonce[12], uint64_t n)
{
	memset(nonce, 0, 4);
	for (int i = 0; i < 8; i++)
		nonce[4 + i] = (uint8_t)(n >> (8 * i));
}

static void aead_encrypt(const uint8_t *k, uint64_t n, const uint8_t *ad,
			 size_t ad_len, const uint8_t *pt, size_t pt_len,
			 uint8_t *out)
{
	uint8_t nonce[12];

	make_nonce(nonce, n);
	crypto_aead_chacha20poly1305_ietf_encrypt(out, NULL, pt, pt_len, ad,
						  ad_len, NULL, nonce, k);
}

static int aead_decrypt(const uint8_t *k, uint64_t n, const uint8_t *ad,
			size_t ad_len, const uint8_t *ct, size_t ct_len,
			uint8_t *out)
{
	uint8_t nonce[12];

	make_nonce(nonce, n);
	if (crypto_aead_chacha20poly1305_ietf_decrypt(
		out, NULL, NULL, ct, ct_len, ad, ad_len, nonce, k) != 0)
		return MSCE_EAUTH;
	return 0;
}

/* ---- Cipher state ---- */

int noise_cipher_init(struct noise_cipher *c, const uint8_t k[NOISE_KEY_LEN])
{
	int rc = sodium_ready();

	memset(c, 0, sizeof(*c));
	if (rc)
		return rc;
	c->k = sodium_malloc(CIPHER_BLOCK);
	if (!c->k)
		return MSCE_ENOMEM;
	memcpy(c->k, k, NOISE_KEY_LEN);
	return 0;
}

int noise_cipher_encrypt(struct noise_cipher *c, const uint8_t *ad,
			 size_t ad_len, const uint8_t *pt, size_t pt_len,
			 uint8_t *out, size_t out_cap, size_t *out_len)
{
	if (!c->k)
		return MSCE_EINVAL;
	if (pt_len > NOISE_MAX_MSG - NOISE_TAG_LEN)
		return MSCE_ETOOBIG;
	if (out_cap < pt_len + NOISE_TAG_LEN)
		return MSCE_EINVAL;
	if (c->n == NOISE_NONCE_MAX)
		return MSCE_ECLOSED;
	aead_encrypt(c->k, c->n, ad, ad_len, pt, pt_len, out);
	c->n++;
	*out_len = pt_len + NOISE_TAG_LEN;
	return 0;
}

int noise_cipher_decrypt(struct noise_cipher *c, const uint8_t *ad,
			 size_t ad_len, const uint8_t *ct, size_t ct_len,
			 uint8_t *out, size_t out_cap, size_t *out_len)
{
	int rc;

	if (!c->k)
		return MSCE_EINVAL;
	if (ct_len > NOISE_MAX_MSG)
		return MSCE_ETOOBIG;
	if (ct_len < NOISE_TAG_LEN)
		return MSCE_EPROTO;
	if (out_cap < ct_len - NOISE_TAG_LEN)
		return MSCE_EINVAL;
	if (c->n == NOISE_NONCE_MAX)
		return MSCE_ECLOSED;
	rc = aead_decrypt(c->k, c->n, ad, ad_len, ct, ct_len, out);
	if (rc)
		return rc;
	c->n++;
	*out_len = ct_len - NOISE_TAG_LEN;
	return 0;
}

int noise_cipher_rekey(struct noise_cipher *c)
{
	uint8_t *scratch;

	if (!c->k)
		return MSCE_EINVAL;
	scratch = c->k + NOISE_KEY_LEN;
	memset(scratch, 0, NOISE_KEY_LEN);
	aead_encrypt(c->k, NOISE_NONCE_MAX, NULL, 0, scratch, NOISE_KEY_LEN,
		     scratch);
	memcpy(c->k, scratch, NOISE_KEY_LEN);
	sodium_memzero(scratch, NOISE_KEY_LEN + NOISE_TAG_LEN);
	return 0;
}

void noise_cipher_destroy(struct noise_cipher *c)
{
	sodium_free(c->k);
	memset(c, 0, sizeof(*c));
}

/* ---- Symmetric state ---- */

static void mix_hash(struct noise_handshake *hs, const uint8_t *data,
		     size_t len)
{
	crypto_hash_sha256_state st;

	crypto_hash_sha256_init(&st);
	crypto_hash_sha256_update(&st, hs->h, NOISE_HASH_LEN);
	crypto_hash_sha256_update(&st, data, len);
	crypto_hash_sha256_final(&st, hs->h);
}

static void hmac(struct noise_hs_secret *x, const uint8_t key[NOISE_HASH_LEN],
		 const uint8_t *a, size_t a_len, const uint8_t *b, size_t b_len,
		 uint8_t out[NOISE_HASH_LEN])
{
	crypto_auth_hmacsha256_init(&x->hmac, key, NOISE_HASH_LEN);
	crypto_auth_hmacsha256_update(&x->hmac, a, a_len);
	if (b_len)
		crypto_auth_hmacsha256_update(&x->hmac, b, b_len);
	crypto_auth_hmacsha256_final(&x->hmac, out);
}

/* HKDF(ck, ikm) with two outputs into x->o1 and x->o2 (spec 4.3). */
static void hkdf2(struct noise_hs_secret *x, const uint8_t *ikm, size_t len)
{
	static const uint8_t one = 1, two = 2;

	hmac(x, x->ck, ikm, len, NULL, 0, x->tk);
	hmac(x, x->tk, &one, 1, NULL, 0, x->o1);
	hmac(x, x->tk, x->o1, NOISE_HASH_LEN, &two, 1, x->o2);
	sodium_memzero(x->tk, sizeof(x->tk));
}

static void mix_key(struct noise_handshake *hs, const uint8_t *ikm, size_t len)
{
	struct noise_hs_secret *x = hs->sec;

	hkdf2(x, ikm, len);
	memcpy(x->ck, x->o1, NOISE_HASH_LEN);
	memcpy(x->k, x->o2, NOISE_KEY_LEN); /* HASHLEN == 32: no truncation */
	sodium_memzero(x->o1, sizeof(x->o1));
	sodium_memzero(x->o2, sizeof(x->o2));
	hs->has_key = 1;
	hs->n = 0;
}

/* MixKey(DH(priv, pub)). A low-order remote point gives an all-zero
 * result, which libsodium reports; we refuse it (spec 12.1 allows this). */
static int mix_dh(struct noise_handshake *hs, const uint8_t *priv,
		  const uint8_t *pub)
{
	struct noise_hs_secret *x = hs->sec;

	if (crypto_scalarmult(x->dh, priv, pub) != 0) {
		sodium_memzero(x->dh, sizeof(x->dh));
		return MSCE_EAUTH;
	}
	mix_key(hs, x->dh, sizeof(x->dh));
	sodium_memzero(x->dh, sizeof(x->dh));
	return 0;
}

/* Writes pt_len (+ tag once keyed) bytes to out; out must not overlap pt. */
static size_t encrypt_and_hash(struct noise_handshake *hs, const uint8_t *pt,
			       size_t pt_len, uint8_t *out)
{
	size_t len = pt_len;

	if (hs->has_key) {
		/* n cannot wrap: IK encrypts at most twice per key. */
		aead_encrypt(hs->sec->k, hs->n++, hs->h, NOISE_HASH_LEN, pt,
			     pt_len, out);
		len += NOISE_TAG_LEN;
	} else {
		memcpy(out, pt, pt_len);
	}
	mix_hash(hs, out, len);
	return len;
}

static int decrypt_and_hash(struct noise_handshake *hs, const uint8_t *ct,
			    size_t ct_len, uint8_t *out)
{
	if (hs->has_key) {
		int rc = aead_decrypt(hs->sec->k, hs->n, hs->h, NOISE_HASH_LEN,
				      ct, ct_len, out);
		if (rc)
			return rc;
		hs->n++;
	} else {
		memcpy(out, ct, ct_len);
	}
	mix_hash(hs, ct, ct_len);
	return 0;
}

/* ---- Handshake ---- */

int noise_handshake_init(struct noise_handshake *hs, enum noise_role role,
			 const uint8_t *prologue, size_t prologue_len,
			 const struct noise_keypair *s,
			 const uint8_t rs[NOISE_KEY_LEN],
			 const uint8_t e_priv[NOISE_KEY_LEN])
{
	int rc = sodium_ready();

	memset(hs, 0, sizeof(*hs));
	if (rc)
		return rc;
	if ((role != NOISE_INITIATOR && role != NOISE_RESPONDER) || !s ||
	    !s->priv || (role == NOISE_INITIATOR) != (rs != NULL) ||
	    (prologue_len && !prologue))
		return MSCE_EINVAL;
	hs->sec = sodium_malloc(sizeof(*hs->sec));
	if (!hs->sec)
		return MSCE_ENOMEM;
	sodium_memzero(hs->sec, sizeof(*hs->sec));
	hs->role = role;

	/* The protocol name is exactly HASHLEN bytes, so h = name. */
	_Static_assert(sizeof(NOISE_PROTOCOL_NAME) - 1 == NOISE_HASH_LEN,
		       "protocol name must be HASHLEN long");
	memcpy(hs->h, NOISE_PROTOCOL_NAME, NOISE_HASH_LEN);
	memcpy(hs->sec->ck, hs->h, NOISE_HASH_LEN);
	mix_hash(hs, prologue, prologue_len);

	memcpy(hs->sec->s, s->priv, NOISE_KEY_LEN);
	memcpy(hs->s_pub, s->pub, NOISE_KEY_LEN);
	if (rs) {
		memcpy(hs->rs, rs, NOISE_KEY_LEN);
		hs->has_rs = 1;
	}
	/* Pre-message "<- s": both sides hash the responder's static key. */
	mix_hash(hs, role == NOISE_INITIATOR ? hs->rs : hs->s_pub,
		 NOISE_KEY_LEN);

	/* A responder draws its ephemeral key only when it answers, so a
	 * message 1 it refuses costs no key generation. */
	if (e_priv) {
		memcpy(hs->sec->e, e_priv, NOISE_KEY_LEN);
		hs->has_e = 1;
	} else if (role == NOISE_INITIATOR) {
		randombytes_buf(hs->sec->e, NOISE_KEY_LEN);
		hs->has_e = 1;
	}
	if (hs->has_e && crypto_scalarmult_base(hs->e_pub, hs->sec->e) != 0) {
		noise_handshake_destroy(hs);
		return MSCE_EIO;
	}
	return 0;
}

static int hs_fail(struct noise_handshake *hs, int code)
{
	hs->err = code;
	sodium_free(hs->sec); /* nothing secret is kept after a failure */
	hs->sec = NULL;
	return code;
}

/* -> e, es, s, ss, payload */
static int write_msg1(struct noise_handshake *hs, const uint8_t *payload,
		      size_t payload_len, uint8_t *out)
{
	struct noise_hs_secret *x = hs->sec;
	size_t off = 0;
	int rc;

	memcpy(out, hs->e_pub, NOISE_KEY_LEN);
	mix_hash(hs, hs->e_pub, NOISE_KEY_LEN);
	off += NOISE_KEY_LEN;
	if ((rc = mix_dh(hs, x->e, hs->rs)))
		return rc;
	off += encrypt_and_hash(hs, hs->s_pub, NOISE_KEY_LEN, out + off);
	if ((rc = mix_dh(hs, x->s, hs->rs)))
		return rc;
	encrypt_and_hash(hs, payload, payload_len, out + off);
	return 0;
}

/* <- e, ee, se, payload */
static int write_msg2(struct noise_handshake *hs, const uint8_t *payload,
		      size_t payload_len, uint8_t *out)
{
	struct noise_hs_secret *x = hs->sec;
	int rc;

	if (!hs->has_e) {
		randombytes_buf(x->e, NOISE_KEY_LEN);
		if (crypto_scalarmult_base(hs->e_pub, x->e) != 0)
			return MSCE_EIO;
		hs->has_e = 1;
	}
	memcpy(out, hs->e_pub, NOISE_KEY_LEN);
	mix_hash(hs, hs->e_pub, NOISE_KEY_LEN);
	if ((rc = mix_dh(hs, x->e, hs->re)))
		return rc;
	if ((rc = mix_dh(hs, x->e, hs->rs))) /* se, responder side */
		return rc;
	encrypt_and_hash(hs, payload, payload_len, out + NOISE_KEY_LEN);
	return 0;
}

int noise_handshake_write_message(struct noise_handshake *hs,
				  const uint8_t *payload, size_t payload_len,
				  uint8_t *out, size_t out_cap, size_t *out_len)
{
	int first = hs->role == NOISE_INITIATOR;
	size_t overhead =
	    first ? NOISE_IK_MSG1_OVERHEAD : NOISE_IK_MSG2_OVERHEAD;
	int rc;

	if (hs->err)
		return hs->err;
	if (!hs->sec || hs->step != (first ? 0 : 1) ||
	    (payload_len && !payload))
		return MSCE_EINVAL;
	if (payload_len > NOISE_MAX_MSG - overhead)
		return MSCE_ETOOBIG;
	if (out_cap < payload_len + overhead)
		return MSCE_EINVAL;
	rc = first ? write_msg1(hs, payload, payload_len, out)
		   : write_msg2(hs, payload, payload_len, out);
	if (rc)
		return hs_fail(hs, rc);
	hs->step++;
	*out_len = payload_len + overhead;
	return 0;
}

/* -> e, es, s, ss, payload (responder reading) */
static int read_msg1(struct noise_handshake *hs, const uint8_t *in,
		     size_t in_len, uint8_t *payload)
{
	struct noise_hs_secret *x = hs->sec;
	const size_t s_len = NOISE_KEY_LEN + NOISE_TAG_LEN;
	int rc;

	memcpy(hs->re, in, NOISE_KEY_LEN);
	mix_hash(hs, hs->re, NOISE_KEY_LEN);
	in += NOISE_KEY_LEN;
	in_len -= NOISE_KEY_LEN;
	if ((rc = mix_dh(hs, x->s, hs->re)))
		return rc;
	if ((rc = decrypt_and_hash(hs, in, s_len, hs->rs)))
		return rc;
	in += s_len;
	in_len -= s_len;
	if ((rc = mix_dh(hs, x->s, hs->rs)))
		return rc;
	if ((rc = decrypt_and_hash(hs, in, in_len, payload)))
		return rc;
	/* Only now is rs authenticated: the payload key depends on ss. */
	hs->has_rs = 1;
	return 0;
}

/* <- e, ee, se, payload (initiator reading) */
static int read_msg2(struct noise_handshake *hs, const uint8_t *in,
		     size_t in_len, uint8_t *payload)
{
	struct noise_hs_secret *x = hs->sec;
	int rc;

	memcpy(hs->re, in, NOISE_KEY_LEN);
	mix_hash(hs, hs->re, NOISE_KEY_LEN);
	if ((rc = mix_dh(hs, x->e, hs->re)))
		return rc;
	if ((rc = mix_dh(hs, x->s, hs->re))) /* se, initiator side */
		return rc;
	return decrypt_and_hash(hs, in + NOISE_KEY_LEN, in_len - NOISE_KEY_LEN,
				payload);
}

int noise_handshake_read_message(struct noise_handshake *hs, const uint8_t *in,
				 size_t in_len, uint8_t *payload,
				 size_t payload_cap, size_t *payload_len)
{
	int first = hs->role == NOISE_RESPONDER;
	size_t overhead =
	    first ? NOISE_IK_MSG1_OVERHEAD : NOISE_IK_MSG2_OVERHEAD;
	int rc;

	if (hs->err)
		return hs->err;
	if (!hs->sec || hs->step != (first ? 0 : 1) || !in)
		return MSCE_EINVAL;
	if (in_len > NOISE_MAX_MSG)
		return hs_fail(hs, MSCE_ETOOBIG);
	if (in_len < overhead)
		return hs_fail(hs, MSCE_EPROTO);
	if (payload_cap < in_len - overhead)
		return MSCE_EINVAL;
	rc = first ? read_msg1(hs, in, in_len, payload)
		   : read_msg2(hs, in, in_len, payload);
	if (rc)
		return hs_fail(hs, rc);
	hs->step++;
	*payload_len = in_len - overhead;
	return 0;
}

const uint8_t *noise_handshake_remote_static(const struct noise_handshake *hs)
{
	return hs->has_rs && !hs->err ? hs->rs : NULL;
}

int noise_handshake_split(struct noise_handshake *hs, struct noise_cipher *send,
			  struct noise_cipher *recv, uint8_t h[NOISE_HASH_LEN])
{
	struct noise_hs_secret *x = hs->sec;
	struct noise_cipher c1, c2;
	int rc;

	if (hs->err)
		return hs->err;
	if (!x || hs->step != 2)
		return MSCE_EINVAL;
	hkdf2(x, NULL, 0);
	if ((rc = noise_cipher_init(&c1, x->o1)) ||
	    (rc = noise_cipher_init(&c2, x->o2))) {
		noise_cipher_destroy(&c1);
		sodium_memzero(x->o1, sizeof(x->o1));
		sodium_memzero(x->o2, sizeof(x->o2));
		return rc;
	}
	/* The initiator sends with the first key, the responder with the
	 * second. */
	if (hs->role == NOISE_INITIATOR) {
		*send = c1;
		*recv = c2;
	} else {
		*send = c2;
		*recv = c1;
	}
	if (h)
		memcpy(h, hs->h, NOISE_HASH_LEN);
	sodium_free(hs->sec);
	hs->sec = NULL;
	hs->step = 3;
	return 0;
}

void noise_handshake_destroy(struct noise_handshake *hs)
{
	sodium_free(hs->sec);
	sodium_memzero(hs, sizeof(*hs));
}
