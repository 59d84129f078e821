/* SPDX-License-Identifier: Apache-2.0 */
/* Noise IK: the published cacophony vectors byte for byte, then the ways a
 * handshake or a transport message must fail. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <cmocka.h>
#include <sodium.h>

#include "error.h"
#include "noise.h"
#include "testutil.h"

#define VECTORS                                                                \
	MSCE_SOURCE_DIR                                                        \
	"/../shared/vectors/noise/cacophony-25519-ChaChaPoly-SHA256.json"

/* ---- helpers ---- */

static char *read_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	char *buf;
	long n;

	if (!f)
		return NULL;
	assert_int_equal(fseek(f, 0, SEEK_END), 0);
	n = ftell(f);
	assert_true(n >= 0);
	rewind(f);
	buf = malloc((size_t)n + 1);
	assert_non_null(buf);
	assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
	buf[n] = 0;
	fclose(f);
	return buf;
}

/* Decodes a hex string field into a malloc'd buffer (NULL if absent). */
static uint8_t *hex_field(const cJSON *obj, const char *name, size_t *len)
{
	const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, name);
	const char *s;
	size_t n, out_len;
	uint8_t *out;

	*len = 0;
	if (!cJSON_IsString(it))
		return NULL;
	s = it->valuestring;
	n = strlen(s);
	out = malloc(n / 2 + 1);
	assert_non_null(out);
	assert_int_equal(
	    sodium_hex2bin(out, n / 2 + 1, s, n, NULL, &out_len, NULL), 0);
	assert_int_equal(out_len * 2, n);
	*len = out_len;
	return out;
}

static uint8_t *hex_key(const cJSON *obj, const char *name)
{
	size_t len;
	uint8_t *k = hex_field(obj, name, &len);

	assert_non_null(k);
	assert_int_equal(len, NOISE_KEY_LEN);
	return k;
}

/* A full handshake between two fresh key pairs; the caller destroys. */
struct pair {
	struct noise_keypair si, sr;
	struct noise_handshake i, r;
	uint8_t m1[256], m2[256];
	size_t m1_len, m2_len;
};

static void pair_init(struct pair *p, const char *pro_i, const char *pro_r)
{
	memset(p, 0, sizeof(*p));
	assert_int_equal(noise_keypair_generate(&p->si), 0);
	assert_int_equal(noise_keypair_generate(&p->sr), 0);
	assert_int_equal(
	    noise_handshake_init(&p->i, NOISE_INITIATOR, (const uint8_t *)pro_i,
				 strlen(pro_i), &p->si, p->sr.pub, NULL),
	    0);
	assert_int_equal(
	    noise_handshake_init(&p->r, NOISE_RESPONDER, (const uint8_t *)pro_r,
				 strlen(pro_r), &p->sr, NULL, NULL),
	    0);
}

static void pair_destroy(struct pair *p)
{
	noise_handshake_destroy(&p->i);
	noise_handshake_destroy(&p->r);
	noise_keypair_destroy(&p->si);
	noise_keypair_destroy(&p->sr);
}

static void write_m1(struct pair *p)
{
	assert_int_equal(
	    noise_handshake_write_message(&p->i, (const uint8_t *)"hi", 2,
					  p->m1, sizeof(p->m1), &p->m1_len),
	    0);
	assert_int_equal(p->m1_len, NOISE_IK_MSG1_OVERHEAD + 2);
}

/* ---- vectors ---- */

static void run_vector(const cJSON *v)
{
	uint8_t *i_s = hex_key(v, "init_static");
	uint8_t *i_e = hex_key(v, "init_ephemeral");
	uint8_t *i_rs = hex_key(v, "init_remote_static");
	uint8_t *r_s = hex_key(v, "resp_static");
	uint8_t *r_e = hex_key(v, "resp_ephemeral");
	size_t i_pro_len, r_pro_len, hh_len;
	uint8_t *i_pro = hex_field(v, "init_prologue", &i_pro_len);
	uint8_t *r_pro = hex_field(v, "resp_prologue", &r_pro_len);
	uint8_t *hh = hex_field(v, "handshake_hash", &hh_len);
	const cJSON *msgs = cJSON_GetObjectItemCaseSensitive(v, "messages");
	struct noise_keypair ki, kr;
	struct noise_handshake hi, hr;
	struct noise_cipher i_tx, i_rx, r_tx, r_rx;
	uint8_t h_i[NOISE_HASH_LEN], h_r[NOISE_HASH_LEN];
	static uint8_t out[NOISE_MAX_MSG], back[NOISE_MAX_MSG];
	const cJSON *m;
	int idx = 0;

	assert_true(cJSON_IsArray(msgs));
	assert_true(cJSON_GetArraySize(msgs) >= 2);
	assert_int_equal(noise_keypair_from_private(&ki, i_s), 0);
	assert_int_equal(noise_keypair_from_private(&kr, r_s), 0);
	assert_memory_equal(kr.pub, i_rs, NOISE_KEY_LEN);
	assert_int_equal(noise_handshake_init(&hi, NOISE_INITIATOR, i_pro,
					      i_pro_len, &ki, i_rs, i_e),
			 0);
	assert_int_equal(noise_handshake_init(&hr, NOISE_RESPONDER, r_pro,
					      r_pro_len, &kr, NULL, r_e),
			 0);

	cJSON_ArrayForEach(m, msgs)
	{
		size_t pl_len, ct_len, n, back_len;
		uint8_t *pl = hex_field(m, "payload", &pl_len);
		uint8_t *ct = hex_field(m, "ciphertext", &ct_len);
		int from_init = idx % 2 == 0;

		assert_non_null(ct);
		if (idx < 2) {
			struct noise_handshake *w = from_init ? &hi : &hr;
			struct noise_handshake *r = from_init ? &hr : &hi;

			assert_int_equal(
			    noise_handshake_write_message(w, pl, pl_len, out,
							  sizeof(out), &n),
			    0);
			assert_int_equal(n, ct_len);
			assert_memory_equal(out, ct, ct_len);
			assert_int_equal(
			    noise_handshake_read_message(
				r, ct, ct_len, back, sizeof(back), &back_len),
			    0);
			if (idx == 0) {
				/* Known to the responder right after msg 1. */
				assert_non_null(
				    noise_handshake_remote_static(&hr));
				assert_memory_equal(
				    noise_handshake_remote_static(&hr), ki.pub,
				    NOISE_KEY_LEN);
			}
		} else {
			struct noise_cipher *tx = from_init ? &i_tx : &r_tx;
			struct noise_cipher *rx = from_init ? &r_rx : &i_rx;

			assert_int_equal(noise_cipher_encrypt(tx, NULL, 0, pl,
							      pl_len, out,
							      sizeof(out), &n),
					 0);
			assert_int_equal(n, ct_len);
			assert_memory_equal(out, ct, ct_len);
			assert_int_equal(
			    noise_cipher_decrypt(rx, NULL, 0, ct, ct_len, back,
						 sizeof(back), &back_len),
			    0);
		}
		assert_int_equal(back_len, pl_len);
		if (pl_len)
			assert_memory_equal(back, pl, pl_len);
		if (idx == 1) {
			assert_int_equal(
			    noise_handshake_split(&hi, &i_tx, &i_rx, h_i), 0);
			assert_int_equal(
			    noise_handshake_split(&hr, &r_tx, &r_rx, h_r), 0);
			assert_memory_equal(h_i, h_r, NOISE_HASH_LEN);
			if (hh) {
				assert_int_equal(hh_len, NOISE_HASH_LEN);
				assert_memory_equal(h_i, hh, NOISE_HASH_LEN);
			}
		}
		free(pl);
		free(ct);
		idx++;
	}

	noise_cipher_destroy(&i_tx);
	noise_cipher_destroy(&i_rx);
	noise_cipher_destroy(&r_tx);
	noise_cipher_destroy(&r_rx);
	noise_handshake_destroy(&hi);
	noise_handshake_destroy(&hr);
	noise_keypair_destroy(&ki);
	noise_keypair_destroy(&kr);
	free(i_s);
	free(i_e);
	free(i_rs);
	free(r_s);
	free(r_e);
	free(i_pro);
	free(r_pro);
	free(hh);
}

static void test_vectors(void **state)
{
	char *text = read_file(VECTORS);
	const cJSON *v, *list;
	cJSON *doc;
	int run = 0;

	(void)state;
	if (!text) {
		tu_skip("test_noise.test_vectors",
			"no test vectors (" VECTORS ") next to the repository");
	}
	doc = cJSON_Parse(text);
	assert_non_null(doc);
	list = cJSON_GetObjectItemCaseSensitive(doc, "vectors");
	if (!list)
		list = doc;
	cJSON_ArrayForEach(v, list)
	{
		const cJSON *name =
		    cJSON_GetObjectItemCaseSensitive(v, "protocol_name");

		if (!cJSON_IsString(name) ||
		    strcmp(name->valuestring, NOISE_PROTOCOL_NAME) != 0)
			continue;
		run_vector(v);
		run++;
	}
	printf("noise vectors passed: %d\n", run);
	assert_true(run > 0);
	cJSON_Delete(doc);
	free(text);
}

/* ---- failures ---- */

static void test_wrong_responder_key(void **state)
{
	struct noise_keypair si, sr, other;
	struct noise_handshake i, r;
	uint8_t m1[256], pl[256];
	size_t n, pn;

	(void)state;
	assert_int_equal(noise_keypair_generate(&si), 0);
	assert_int_equal(noise_keypair_generate(&sr), 0);
	assert_int_equal(noise_keypair_generate(&other), 0);
	/* The initiator believes the responder's key is other.pub. */
	assert_int_equal(noise_handshake_init(&i, NOISE_INITIATOR, NULL, 0, &si,
					      other.pub, NULL),
			 0);
	assert_int_equal(
	    noise_handshake_init(&r, NOISE_RESPONDER, NULL, 0, &sr, NULL, NULL),
	    0);
	assert_int_equal(
	    noise_handshake_write_message(&i, NULL, 0, m1, sizeof(m1), &n), 0);
	assert_int_equal(
	    noise_handshake_read_message(&r, m1, n, pl, sizeof(pl), &pn),
	    MSCE_EAUTH);
	assert_null(noise_handshake_remote_static(&r));
	/* Sticky: the handshake is over. */
	assert_int_equal(
	    noise_handshake_read_message(&r, m1, n, pl, sizeof(pl), &pn),
	    MSCE_EAUTH);
	assert_int_equal(
	    noise_handshake_write_message(&r, NULL, 0, m1, sizeof(m1), &n),
	    MSCE_EAUTH);
	noise_handshake_destroy(&i);
	noise_handshake_destroy(&r);
	noise_keypair_destroy(&si);
	noise_keypair_destroy(&sr);
	noise_keypair_destroy(&other);
}

static void test_wrong_prologue(void **state)
{
	struct pair p;
	uint8_t pl[256];
	size_t pn;

	(void)state;
	pair_init(&p, "msce/1/a", "msce/1/b");
	write_m1(&p);
	assert_int_equal(noise_handshake_read_message(&p.r, p.m1, p.m1_len, pl,
						      sizeof(pl), &pn),
			 MSCE_EAUTH);
	pair_destroy(&p);
}

static void test_tampered_handshake(void **state)
{
	uint8_t pl[256];
	size_t pn;

	(void)state;
	/* Every byte of message 1 matters. */
	for (size_t at = 0; at < NOISE_IK_MSG1_OVERHEAD + 2; at += 7) {
		struct pair p;

		pair_init(&p, "x", "x");
		write_m1(&p);
		p.m1[at] ^= 0x01;
		assert_int_equal(noise_handshake_read_message(
				     &p.r, p.m1, p.m1_len, pl, sizeof(pl), &pn),
				 MSCE_EAUTH);
		pair_destroy(&p);
	}
	/* And of message 2. */
	for (size_t at = 0; at < NOISE_IK_MSG2_OVERHEAD; at += 5) {
		struct pair p;

		pair_init(&p, "x", "x");
		write_m1(&p);
		assert_int_equal(noise_handshake_read_message(
				     &p.r, p.m1, p.m1_len, pl, sizeof(pl), &pn),
				 0);
		assert_int_equal(
		    noise_handshake_write_message(&p.r, NULL, 0, p.m2,
						  sizeof(p.m2), &p.m2_len),
		    0);
		p.m2[at] ^= 0x80;
		assert_int_equal(noise_handshake_read_message(
				     &p.i, p.m2, p.m2_len, pl, sizeof(pl), &pn),
				 MSCE_EAUTH);
		pair_destroy(&p);
	}
}

/* A complete handshake giving two pairs of ciphers. */
static void handshake(struct noise_cipher *i_tx, struct noise_cipher *i_rx,
		      struct noise_cipher *r_tx, struct noise_cipher *r_rx)
{
	struct pair p;
	uint8_t pl[256], hi[NOISE_HASH_LEN], hr[NOISE_HASH_LEN];
	size_t pn;

	pair_init(&p, "msce/1/test", "msce/1/test");
	write_m1(&p);
	assert_int_equal(noise_handshake_read_message(&p.r, p.m1, p.m1_len, pl,
						      sizeof(pl), &pn),
			 0);
	assert_int_equal(pn, 2);
	assert_memory_equal(pl, "hi", 2);
	assert_memory_equal(noise_handshake_remote_static(&p.r), p.si.pub,
			    NOISE_KEY_LEN);
	assert_int_equal(noise_handshake_write_message(&p.r, NULL, 0, p.m2,
						       sizeof(p.m2), &p.m2_len),
			 0);
	assert_int_equal(noise_handshake_read_message(&p.i, p.m2, p.m2_len, pl,
						      sizeof(pl), &pn),
			 0);
	assert_int_equal(pn, 0);
	assert_int_equal(noise_handshake_split(&p.i, i_tx, i_rx, hi), 0);
	assert_int_equal(noise_handshake_split(&p.r, r_tx, r_rx, hr), 0);
	assert_memory_equal(hi, hr, NOISE_HASH_LEN);
	pair_destroy(&p);
}

static void test_tampered_transport(void **state)
{
	struct noise_cipher itx, irx, rtx, rrx;
	uint8_t ct[64], bad[64], pt[64];
	size_t n, pn;

	(void)state;
	handshake(&itx, &irx, &rtx, &rrx);
	assert_int_equal(noise_cipher_encrypt(&itx, NULL, 0,
					      (const uint8_t *)"payload", 7, ct,
					      sizeof(ct), &n),
			 0);
	for (size_t at = 0; at < n; at++) {
		memcpy(bad, ct, n);
		bad[at] ^= 0x04;
		assert_int_equal(noise_cipher_decrypt(&rrx, NULL, 0, bad, n, pt,
						      sizeof(pt), &pn),
				 MSCE_EAUTH);
	}
	/* Wrong associated data fails too. */
	assert_int_equal(noise_cipher_decrypt(&rrx, (const uint8_t *)"ad", 2,
					      ct, n, pt, sizeof(pt), &pn),
			 MSCE_EAUTH);
	/* A failed decryption does not consume the nonce. */
	assert_int_equal(rrx.n, 0);
	assert_int_equal(
	    noise_cipher_decrypt(&rrx, NULL, 0, ct, n, pt, sizeof(pt), &pn), 0);
	assert_int_equal(pn, 7);
	assert_memory_equal(pt, "payload", 7);
	/* Replaying it fails: the nonce moved on. */
	assert_int_equal(
	    noise_cipher_decrypt(&rrx, NULL, 0, ct, n, pt, sizeof(pt), &pn),
	    MSCE_EAUTH);
	/* Too short to hold a tag. */
	assert_int_equal(
	    noise_cipher_decrypt(&rrx, NULL, 0, ct, 15, pt, sizeof(pt), &pn),
	    MSCE_EPROTO);
	noise_cipher_destroy(&itx);
	noise_cipher_destroy(&irx);
	noise_cipher_destroy(&rtx);
	noise_cipher_destroy(&rrx);
}

static void test_in_place(void **state)
{
	struct noise_cipher itx, irx, rtx, rrx;
	uint8_t buf[1000 + NOISE_TAG_LEN];
	size_t n, pn;

	(void)state;
	handshake(&itx, &irx, &rtx, &rrx);
	for (size_t i = 0; i < 1000; i++)
		buf[i] = (uint8_t)i;
	assert_int_equal(noise_cipher_encrypt(&rtx, NULL, 0, buf, 1000, buf,
					      sizeof(buf), &n),
			 0);
	assert_int_equal(
	    noise_cipher_decrypt(&irx, NULL, 0, buf, n, buf, sizeof(buf), &pn),
	    0);
	assert_int_equal(pn, 1000);
	for (size_t i = 0; i < 1000; i++)
		assert_int_equal(buf[i], (uint8_t)i);
	noise_cipher_destroy(&itx);
	noise_cipher_destroy(&irx);
	noise_cipher_destroy(&rtx);
	noise_cipher_destroy(&rrx);
}

static void test_nonce_exhaustion(void **state)
{
	struct noise_cipher itx, irx, rtx, rrx;
	uint8_t ct[64], pt[64];
	size_t n, pn;

	(void)state;
	handshake(&itx, &irx, &rtx, &rrx);
	itx.n = rrx.n = UINT64_MAX - 1;
	assert_int_equal(noise_cipher_encrypt(&itx, NULL, 0,
					      (const uint8_t *)"x", 1, ct,
					      sizeof(ct), &n),
			 0);
	assert_int_equal(
	    noise_cipher_decrypt(&rrx, NULL, 0, ct, n, pt, sizeof(pt), &pn), 0);
	assert_int_equal(itx.n, UINT64_MAX);
	assert_int_equal(noise_cipher_encrypt(&itx, NULL, 0,
					      (const uint8_t *)"x", 1, ct,
					      sizeof(ct), &n),
			 MSCE_ECLOSED);
	assert_int_equal(
	    noise_cipher_decrypt(&rrx, NULL, 0, ct, n, pt, sizeof(pt), &pn),
	    MSCE_ECLOSED);
	noise_cipher_destroy(&itx);
	noise_cipher_destroy(&irx);
	noise_cipher_destroy(&rtx);
	noise_cipher_destroy(&rrx);
}

static void test_rekey(void **state)
{
	struct noise_cipher itx, irx, rtx, rrx;
	uint8_t old[NOISE_KEY_LEN], expect[NOISE_KEY_LEN + NOISE_TAG_LEN];
	uint8_t zeros[NOISE_KEY_LEN] = {0}, nonce[12], ct[64], pt[64];
	size_t n, pn;

	(void)state;
	handshake(&itx, &irx, &rtx, &rrx);
	/* Spec 4.2: k' = ENCRYPT(k, 2^64-1, "", zeros)[0..32]. */
	memcpy(old, itx.k, NOISE_KEY_LEN);
	memset(nonce, 0, 4);
	memset(nonce + 4, 0xff, 8);
	crypto_aead_chacha20poly1305_ietf_encrypt(
	    expect, NULL, zeros, sizeof(zeros), NULL, 0, NULL, nonce, old);
	itx.n = 5;
	assert_int_equal(noise_cipher_rekey(&itx), 0);
	assert_memory_equal(itx.k, expect, NOISE_KEY_LEN);
	assert_int_equal(itx.n, 5); /* rekey leaves the counter alone */
	itx.n = 0;

	/* Only one side rekeyed: nothing decrypts. */
	assert_int_equal(noise_cipher_encrypt(&itx, NULL, 0,
					      (const uint8_t *)"abc", 3, ct,
					      sizeof(ct), &n),
			 0);
	assert_int_equal(
	    noise_cipher_decrypt(&rrx, NULL, 0, ct, n, pt, sizeof(pt), &pn),
	    MSCE_EAUTH);
	/* Both sides: it does. */
	assert_int_equal(noise_cipher_rekey(&rrx), 0);
	assert_int_equal(
	    noise_cipher_decrypt(&rrx, NULL, 0, ct, n, pt, sizeof(pt), &pn), 0);
	assert_memory_equal(pt, "abc", 3);
	noise_cipher_destroy(&itx);
	noise_cipher_destroy(&irx);
	noise_cipher_destroy(&rtx);
	noise_cipher_destroy(&rrx);
}

static void test_misuse(void **state)
{
	struct pair p;
	struct noise_cipher a, b;
	uint8_t buf[NOISE_MAX_MSG + 1], pl[8];
	size_t n;

	(void)state;
	pair_init(&p, "", "");
	/* Out of turn. */
	assert_int_equal(
	    noise_handshake_write_message(&p.r, NULL, 0, buf, sizeof(buf), &n),
	    MSCE_EINVAL);
	assert_int_equal(
	    noise_handshake_read_message(&p.i, buf, 64, pl, sizeof(pl), &n),
	    MSCE_EINVAL);
	assert_int_equal(noise_handshake_split(&p.i, &a, &b, NULL),
			 MSCE_EINVAL);
	/* Sizes. */
	assert_int_equal(
	    noise_handshake_write_message(&p.i, NULL, 0, buf,
					  NOISE_IK_MSG1_OVERHEAD - 1, &n),
	    MSCE_EINVAL);
	memset(buf, 0, sizeof(buf));
	assert_int_equal(noise_handshake_write_message(
			     &p.i, buf,
			     NOISE_MAX_MSG - NOISE_IK_MSG1_OVERHEAD + 1,
			     buf + 1, sizeof(buf) - 1, &n),
			 MSCE_ETOOBIG);
	/* The responder's payload buffer is too small for this message. */
	write_m1(&p);
	assert_int_equal(
	    noise_handshake_read_message(&p.r, p.m1, p.m1_len, pl, 1, &n),
	    MSCE_EINVAL);
	/* ...which is not fatal: the same message still reads. */
	assert_int_equal(noise_handshake_read_message(&p.r, p.m1, p.m1_len, pl,
						      sizeof(pl), &n),
			 0);
	pair_destroy(&p);

	/* A short message is fatal, and the failure sticks. */
	pair_init(&p, "", "");
	assert_int_equal(
	    noise_handshake_read_message(&p.r, buf, 50, pl, sizeof(pl), &n),
	    MSCE_EPROTO);
	assert_int_equal(
	    noise_handshake_read_message(&p.r, buf, 200, pl, sizeof(pl), &n),
	    MSCE_EPROTO);
	pair_destroy(&p);

	/* A cipher without a key refuses. */
	memset(&a, 0, sizeof(a));
	assert_int_equal(
	    noise_cipher_encrypt(&a, NULL, 0, buf, 1, buf + 100, 100, &n),
	    MSCE_EINVAL);
	noise_cipher_destroy(&a);
}

/* An all-zero ephemeral key is a low-order point: DH gives zero. */
static void test_low_order_point(void **state)
{
	struct pair p;
	uint8_t pl[64];
	size_t n;

	(void)state;
	pair_init(&p, "", "");
	write_m1(&p);
	memset(p.m1, 0, NOISE_KEY_LEN);
	assert_int_equal(noise_handshake_read_message(&p.r, p.m1, p.m1_len, pl,
						      sizeof(pl), &n),
			 MSCE_EAUTH);
	pair_destroy(&p);
}

static void test_keypair(void **state)
{
	struct noise_keypair a, b;
	uint8_t pub[NOISE_KEY_LEN];

	(void)state;
	assert_int_equal(noise_keypair_generate(&a), 0);
	assert_int_equal(noise_keypair_from_private(&b, a.priv), 0);
	assert_memory_equal(a.pub, b.pub, NOISE_KEY_LEN);
	crypto_scalarmult_base(pub, a.priv);
	assert_memory_equal(pub, a.pub, NOISE_KEY_LEN);
	noise_keypair_destroy(&a);
	noise_keypair_destroy(&b);
	assert_null(a.priv);
	noise_keypair_destroy(&a); /* idempotent */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_vectors),
	    cmocka_unit_test(test_wrong_responder_key),
	    cmocka_unit_test(test_wrong_prologue),
	    cmocka_unit_test(test_tampered_handshake),
	    cmocka_unit_test(test_tampered_transport),
	    cmocka_unit_test(test_in_place),
	    cmocka_unit_test(test_nonce_exhaustion),
	    cmocka_unit_test(test_rekey),
	    cmocka_unit_test(test_misuse),
	    cmocka_unit_test(test_low_order_point),
	    cmocka_unit_test(test_keypair),
	};

	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
