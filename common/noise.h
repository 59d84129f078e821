/* SPDX-License-Identifier: Apache-2.0 */
/* Noise_IK_25519_ChaChaPoly_SHA256 (Noise spec revision 34) on libsodium.
 *
 * Only the IK pattern, the one msce uses on every link:
 *
 *   <- s
 *   ...
 *   -> e, es, s, ss
 *   <- e, ee, se
 *
 * The initiator knows the responder's static key in advance; the responder
 * learns the initiator's from message 1 and must check it against its
 * configuration (noise_handshake_remote_static) before doing anything else.
 *
 * libsodium style: sizes are constants, callers own the state structs (zero
 * them or call the init function before use; destroy is safe on a zeroed
 * struct and idempotent), and every secret (static and ephemeral private
 * keys, chaining key, cipher keys, DH outputs and HKDF scratch) lives in
 * sodium_malloc'd memory that is wiped and freed on destroy.
 *
 * Functions return 0 or an MSCE_E* code (error.h). A failure inside the
 * handshake is sticky: the handshake refuses every later call with the same
 * code, as the spec says a failed handshake must be abandoned. */
#ifndef MSCE_NOISE_H
#define MSCE_NOISE_H

#include <stddef.h>
#include <stdint.h>

#define NOISE_PROTOCOL_NAME "Noise_IK_25519_ChaChaPoly_SHA256"
#define NOISE_KEY_LEN 32    /* X25519 keys, cipher keys */
#define NOISE_HASH_LEN 32   /* SHA-256: handshake hash, chaining key */
#define NOISE_TAG_LEN 16    /* Poly1305 tag */
#define NOISE_MAX_MSG 65535 /* bytes of one Noise message, any kind */
/* The nonce 2^64-1 is reserved (used by rekey); a cipher whose counter
 * reaches it refuses to encrypt or decrypt. */
#define NOISE_NONCE_MAX UINT64_MAX

/* IK message sizes: message 1 = e (32) + encrypted s (32 + tag) + encrypted
 * payload (payload + tag); message 2 = e (32) + encrypted payload. */
#define NOISE_IK_MSG1_OVERHEAD                                                 \
	(NOISE_KEY_LEN + 2 * NOISE_TAG_LEN + NOISE_KEY_LEN)
#define NOISE_IK_MSG2_OVERHEAD (NOISE_KEY_LEN + NOISE_TAG_LEN)

/* ---- Static key pairs ---- */

/* A caller may also fill one by hand: priv = sodium_malloc(NOISE_KEY_LEN),
 * the key loaded into it (keyfile_load_secret) and pub set; destroy then
 * frees it the same way. */
struct noise_keypair {
	uint8_t pub[NOISE_KEY_LEN];
	uint8_t *priv; /* sodium_malloc'd NOISE_KEY_LEN bytes; NULL if unset */
};

/* Fills kp with a fresh random X25519 key pair. kp is caller-owned; the
 * private key is allocated here and released by noise_keypair_destroy. */
int noise_keypair_generate(struct noise_keypair *kp);
/* Fills kp from a 32-byte private key (copied; the caller still owns and
 * should wipe its copy) and derives the public key. */
int noise_keypair_from_private(struct noise_keypair *kp,
			       const uint8_t priv[NOISE_KEY_LEN]);
/* Wipes and frees the private key. Safe on a zeroed struct. */
void noise_keypair_destroy(struct noise_keypair *kp);

/* ---- Cipher state (transport) ---- */

struct noise_cipher {
	uint8_t *k; /* sodium_malloc'd key + rekey scratch; NULL = no key */
	uint64_t n; /* next nonce */
};

/* Keys c with a copy of k and nonce 0. c is caller-owned. */
int noise_cipher_init(struct noise_cipher *c, const uint8_t k[NOISE_KEY_LEN]);
/* AEAD-encrypts pt (pt_len bytes) with ad as associated data into out,
 * which receives pt_len + NOISE_TAG_LEN bytes (*out_len). All buffers are the
 * caller's; out may be the same pointer as pt (in place) but must not
 * otherwise overlap it. ad may be NULL when ad_len is 0.
 * MSCE_ETOOBIG if the result would exceed NOISE_MAX_MSG, MSCE_EINVAL if
 * out_cap is too small or c has no key, MSCE_ECLOSED once the nonce
 * counter has reached 2^64-1. The counter advances only on success. */
int noise_cipher_encrypt(struct noise_cipher *c, const uint8_t *ad,
			 size_t ad_len, const uint8_t *pt, size_t pt_len,
			 uint8_t *out, size_t out_cap, size_t *out_len);
/* Decrypts and authenticates ct (ct_len bytes, tag included) into out
 * (ct_len - NOISE_TAG_LEN bytes). out may equal ct. MSCE_EAUTH if the tag
 * does not verify (the counter does not advance; callers should drop the
 * link), MSCE_EPROTO if ct_len < NOISE_TAG_LEN, MSCE_ETOOBIG over
 * NOISE_MAX_MSG, MSCE_ECLOSED on an exhausted counter. */
int noise_cipher_decrypt(struct noise_cipher *c, const uint8_t *ad,
			 size_t ad_len, const uint8_t *ct, size_t ct_len,
			 uint8_t *out, size_t out_cap, size_t *out_len);
/* Spec REKEY: k = first 32 bytes of ENCRYPT(k, 2^64-1, "", 32 zero bytes).
 * The nonce counter is left as it is (spec section 11.3). */
int noise_cipher_rekey(struct noise_cipher *c);
/* Wipes and frees the key. Safe on a zeroed struct. */
void noise_cipher_destroy(struct noise_cipher *c);

/* ---- Handshake state ---- */

enum noise_role { NOISE_INITIATOR = 1, NOISE_RESPONDER = 2 };

struct noise_hs_secret; /* private, in sodium_malloc'd memory */

struct noise_handshake {
	struct noise_hs_secret *sec;
	uint8_t h[NOISE_HASH_LEN]; /* handshake hash */
	uint8_t s_pub[NOISE_KEY_LEN];
	uint8_t e_pub[NOISE_KEY_LEN];
	uint8_t rs[NOISE_KEY_LEN]; /* remote static */
	uint8_t re[NOISE_KEY_LEN]; /* remote ephemeral */
	uint64_t n;		   /* nonce of the handshake cipher */
	int has_key;
	int has_e; /* e drawn (the responder's waits for message 2) */
	int has_rs;
	int role;
	int step; /* messages done so far: 0, 1, 2; then split */
	int err;  /* sticky failure, 0 if none */
};

/* Starts an IK handshake. hs is caller-owned. prologue (prologue_len bytes)
 * and s are only read during the call: the private key is copied into hs.
 * rs is the responder's static public key, required for the initiator and
 * NULL for the responder. e_priv fixes the ephemeral private key (test
 * vectors only); pass NULL to draw a random one (the responder draws it
 * when it writes message 2). This is the only handshake function that
 * allocates. */
int noise_handshake_init(struct noise_handshake *hs, enum noise_role role,
			 const uint8_t *prologue, size_t prologue_len,
			 const struct noise_keypair *s,
			 const uint8_t rs[NOISE_KEY_LEN],
			 const uint8_t e_priv[NOISE_KEY_LEN]);
/* Writes the next handshake message (message 1 for the initiator, 2 for the
 * responder) carrying payload into out (caller's buffer of out_cap bytes;
 * must not overlap payload); *out_len gets its length, the payload length
 * plus NOISE_IK_MSG1_OVERHEAD or NOISE_IK_MSG2_OVERHEAD. MSCE_EINVAL if it
 * is not this side's turn or out_cap is too small, MSCE_ETOOBIG if the
 * message would exceed NOISE_MAX_MSG. */
int noise_handshake_write_message(struct noise_handshake *hs,
				  const uint8_t *payload, size_t payload_len,
				  uint8_t *out, size_t out_cap,
				  size_t *out_len);
/* Reads the next handshake message from in (in_len bytes, caller's) and
 * puts its decrypted payload into payload (caller's, payload_cap bytes, not
 * overlapping in). Never allocates. MSCE_EPROTO if in is too short,
 * MSCE_EAUTH if it does not decrypt (wrong keys, wrong prologue, tampering)
 * or carries an invalid public key. */
int noise_handshake_read_message(struct noise_handshake *hs, const uint8_t *in,
				 size_t in_len, uint8_t *payload,
				 size_t payload_cap, size_t *payload_len);
/* The remote static public key, or NULL before it is known. For the
 * responder it is known (and authenticated by the payload decrypting) right
 * after reading message 1; the caller checks it against its allow-list
 * before writing message 2 or allocating anything. The pointer is into hs
 * and valid until noise_handshake_destroy. */
const uint8_t *noise_handshake_remote_static(const struct noise_handshake *hs);
/* After both messages: keys send and recv (caller-owned, uninitialised or
 * zeroed) for this side, copies the handshake hash into h (may be NULL) and
 * wipes the handshake's secrets. hs must still be destroyed. */
int noise_handshake_split(struct noise_handshake *hs, struct noise_cipher *send,
			  struct noise_cipher *recv, uint8_t h[NOISE_HASH_LEN]);
/* Wipes and frees everything. Safe on a zeroed struct; idempotent. */
void noise_handshake_destroy(struct noise_handshake *hs);

#endif
