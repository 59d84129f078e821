/* SPDX-License-Identifier: Apache-2.0 */
/* X25519 key files for the Noise links.
 *
 * Secret key file: one line, base64 (standard alphabet, padded) of the
 * 32-byte X25519 private key; mode 0600. Public key file: one line, base64
 * of the public key, the form pasted into [peer]/[client] public_key. */
#ifndef MSCE_KEYFILE_H
#define MSCE_KEYFILE_H

#include <stdint.h>

#include "error.h"

#define KEY_BASE64_LEN 44 /* characters for 32 bytes, without the NUL */

/* Creates PREFIX.key (mode 0600) and PREFIX.pub (mode 0644) with a fresh
 * key pair. Refuses if either file exists, and then creates neither. The
 * caller keeps prefix. Returns 0, MSCE_EINVAL (exists, path too long),
 * MSCE_EIO or MSCE_ENOMEM. */
int keyfile_generate(const char *prefix, struct err *e);
/* Writes PREFIX.sign.pub: the origin signing key derived from the secret
 * in PREFIX.key (seg.h), for the other centers' configs. keyfile_generate
 * writes it too. */
int keyfile_write_sign_pub(const char *prefix, struct err *e);

/* Creates path (mode 0600) holding a fresh random 32-byte master key
 * for encryption at rest ([node] master_key), in the secret key file
 * form. Refuses if path exists. Returns 0, MSCE_EINVAL, MSCE_EIO or
 * MSCE_ENOMEM. */
int keyfile_generate_master(const char *path, struct err *e);

/* Reads a secret key file into sk (32 bytes of caller-owned memory, meant to
 * be sodium_malloc'd) and derives its public key into pk. Refuses a
 * symbolic link, files that group or others may read or write, and
 * anything but one line of base64 of 32 bytes. On failure sk is wiped.
 * Returns 0, MSCE_EPERM, MSCE_ECORRUPT, MSCE_ENOTFOUND or MSCE_EIO. */
int keyfile_load_secret(const char *path, uint8_t *sk, uint8_t pk[32],
			struct err *e);

/* Reads a public key file into pk (caller's). Refuses a symbolic link, a
 * file group or others may write, and a low-order key. Returns 0,
 * MSCE_EPERM, MSCE_ECORRUPT, MSCE_ENOTFOUND or MSCE_EIO. */
int keyfile_load_public(const char *path, uint8_t pk[32], struct err *e);

/* Decodes base64 of exactly 32 bytes (the whole NUL-terminated string, no
 * surrounding space) into out. Messages never quote the input, since it
 * may be a secret. Returns 0 or MSCE_ECORRUPT. */
int key_from_base64(const char *b64, uint8_t out[32], struct err *e);

/* Encodes k into out as KEY_BASE64_LEN characters plus a NUL. */
void key_to_base64(const uint8_t k[32], char out[64]);

/* Whether the X25519 public key k is one of the points of small order (or
 * a non-canonical encoding of one): every Diffie-Hellman with it has a
 * result known in advance, so no configuration may name it. */
int key_low_order(const uint8_t k[32]);

#endif
