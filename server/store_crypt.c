/* SPDX-License-Identifier: Apache-2.0 */
/* Encryption at rest: per-record data keys wrapped by the node's master
 * key, and the sealed forms of records, log entries and staged snapshot
 * parts (docs/PROTOCOL.md, "Encryption at rest" and "Erasure").
 *
 * Happy path: a record gets a random 32-byte data key (DEK) the first time
 * this store keeps a value of it. The DEK is kept in "deks", wrapped with
 * XChaCha20-Poly1305-IETF under a key derived from the master key. The
 * record's value and the log entries of its puts are sealed with the DEK
 * (a random nonce each; the associated data binds where the bytes belong,
 * so no sealed value can be moved to another record or log position). An
 * erasure deletes the DEK: whatever it sealed is unreadable from then on,
 * here and in every copy made since the master key was last rotated.
 *
 * Failure modes: a value that does not open (another master key, a
 * changed byte) is MSCE_ECORRUPT and never shown. A log entry whose DEK is
 * gone (erased) reads back as a redacted change, which is never relayed.
 * A store without a master key has no DEK to destroy: there a put below
 * its record's erase mark reads back redacted all the same.
 *
 * Formats. The first byte tells them from values in the clear, which
 * start with RECORD_FORMAT (records) or 0x08 (an encoded msce.Change):
 *   deks        0x01 kid(8) nonce(24) wrapped DEK(32 + 16)
 *               AD: "msce/dek" 0x01 kid coll \0 key
 *   records     0xA0|flags [erased hlc(LE64) origin(LE32), flag 0x02]
 *               then, flag 0x01: kid(8) nonce(24) sealed record encoding;
 *               else the record encoding in the clear (a tombstone)
 *               AD: "msce/rec" header coll \0 key
 *   log         0xE1 hlc(LE64) rklen(LE16) coll \0 key kid(8) nonce(24)
 *               sealed change; AD: "msce/log" header origin(BE32) seq(BE64)
 *               0xE2 hlc(LE64) rklen(LE16) coll \0 key: its values were
 *               erased here before it came, only its place is kept
 *   snapin      0xB1 nonce(24) sealed part (in the records' clear form)
 *               AD: "msce/stage" its snapin key
 *   meta "stage" source(BE32): nonce(24) wrapped staging key(32 + 16)
 *               AD: "msce/stagekey" source(BE32)
 *   meta "master": a 32-byte check derived from the master key
 * A change's delete carries no value and is logged in the clear. */
#include <errno.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "fault.h"
#include "msce.pb-c.h"
#include "mutant.h"
#include "store_int.h"

#define DEK_FORMAT 0x01
#define DEK_VAL (1 + SC_KID + SC_NONCE + SC_KEY + SC_TAG)
#define REC_WRAP 0xA0
#define REC_SEALED 0x01
#define REC_ERASED 0x02
#define LOG_SEALED 0xE1
#define LOG_SHREDDED 0xE2
#define STAGE_SEALED 0xB1
#define STAGE_VAL (SC_NONCE + SC_KEY + SC_TAG)
#define AD_MAX (16 + 1 + 12 + SC_KID + SC_NONCE + 2 + RK_MAX + 12 + \
		(5 + RK_MAX + MSCE_MAX_FIELD_NAME))
#define KDF_CTX "msce-mk1"
#define KDF_WRAP 1
#define KDF_CHECK 2
#define SEAL_STEP 20000 /* values sealed per batch when sealing a store */

/* ---- keys and randomness ------------------------------------------------ */

/* Random bytes for nonces and keys, drawn from a pool so that a change
 * costs no system call. Writer only (under wlock). */
static void rnd(struct store *s, uint8_t *out, size_t n)
{
	if (n > s->rnd_left) {
		randombytes_buf(s->rnd, SC_POOL);
		s->rnd_left = SC_POOL;
	}
	uint8_t *p = s->rnd + SC_POOL - s->rnd_left;
	memcpy(out, p, n);
	sodium_memzero(p, n);
	s->rnd_left -= n;
}

static void derive(const uint8_t *master, uint64_t id, uint8_t out[SC_KEY])
{
	crypto_kdf_derive_from_key(out, SC_KEY, id, KDF_CTX, master);
}

static void seal(uint8_t *c, const uint8_t *m, size_t mlen, const uint8_t *ad,
		 size_t adlen, const uint8_t *nonce, const uint8_t *key)
{
	crypto_aead_xchacha20poly1305_ietf_encrypt(c, NULL, m, mlen, ad, adlen,
						   NULL, nonce, key);
}

/* 0, or -1 when c does not open (wrong key, altered bytes). */
static int unseal(uint8_t *m, const uint8_t *c, size_t clen,
		  const uint8_t *ad, size_t adlen, const uint8_t *nonce,
		  const uint8_t *key)
{
	if (clen < SC_TAG)
		return -1;
	return crypto_aead_xchacha20poly1305_ietf_decrypt(
	    m, NULL, NULL, c, clen, ad, adlen, nonce, key);
}

static size_t ad_put(uint8_t *ad, size_t at, const void *p, size_t n)
{
	memcpy(ad + at, p, n);
	return at + n;
}

static size_t dek_ad(uint8_t *ad, const uint8_t *kid, const uint8_t *rk,
		     size_t rklen)
{
	static const uint8_t f = DEK_FORMAT;
	size_t n = ad_put(ad, 0, "msce/dek", 8);
	n = ad_put(ad, n, &f, 1);
	n = ad_put(ad, n, kid, SC_KID);
	return ad_put(ad, n, rk, rklen);
}

static void dek_wrap(struct store *s, const uint8_t *wrap, const struct dek *d,
		     const uint8_t *rk, size_t rklen, uint8_t out[DEK_VAL])
{
	uint8_t ad[AD_MAX];
	size_t adlen = dek_ad(ad, d->kid, rk, rklen);

	out[0] = DEK_FORMAT;
	memcpy(out + 1, d->kid, SC_KID);
	rnd(s, out + 1 + SC_KID, SC_NONCE);
	seal(out + 1 + SC_KID + SC_NONCE, d->key, SC_KEY, ad, adlen,
	     out + 1 + SC_KID, wrap);
}

static int dek_unwrap(const uint8_t *wrap, const uint8_t *v, size_t len,
		      const uint8_t *rk, size_t rklen, struct dek *d)
{
	uint8_t ad[AD_MAX];
	size_t adlen;

	if (len != DEK_VAL || v[0] != DEK_FORMAT)
		return -1;
	adlen = dek_ad(ad, v + 1, rk, rklen);
	if (unseal(d->key, v + 1 + SC_KID + SC_NONCE, SC_KEY + SC_TAG, ad,
		   adlen, v + 1 + SC_KID, wrap)) {
		sodium_memzero(d->key, SC_KEY);
		return -1;
	}
	memcpy(d->kid, v + 1, SC_KID);
	d->have = 1;
	return 0;
}

static void dek_wipe(struct dek *d)
{
	sodium_memzero(d, sizeof *d);
}

/* ---- open, close, sealing a store kept in the clear ----------------------- */

int st_crypt_open(struct store *s, MDB_txn *txn, const uint8_t *master,
		  int *seal_it, struct err *e)
{
	uint8_t check[SC_KEY];
	MDB_val v;
	int has, rc;

	*seal_it = 0;
	has = st_meta_get(txn, s->meta, "master", &v) == 0;
	if (master == NULL) {
		if (has)
			return err_set(e, MSCE_EAUTH,
				       "the store is encrypted and no master "
				       "key was given ([node] master_key)");
		return 0;
	}
	derive(master, KDF_CHECK, check);
	if (has && (v.mv_size != SC_KEY ||
		    sodium_memcmp(check, v.mv_data, SC_KEY) != 0)) {
		sodium_memzero(check, sizeof check);
		return err_set(e, MSCE_EAUTH,
			       "the master key does not open this store (it "
			       "was sealed, or last rotated, with another)");
	}
	/* From the open that first sees a key on, only that key opens the
	 * store; "sealing" stays until every value in the clear is sealed
	 * (a crash in between goes on at the next open). */
	if (!has && ((rc = st_meta_put(txn, s->meta, "master", check,
				       SC_KEY)) ||
		     (!s->created &&
		      (rc = st_meta_put(txn, s->meta, "sealing", "1", 1))))) {
		sodium_memzero(check, sizeof check);
		return st_lmdb_err(e, rc, "record the master key check");
	}
	sodium_memzero(check, sizeof check);
	s->wrap = sodium_malloc(SC_KEY);
	s->rnd = sodium_malloc(SC_POOL);
	if (s->wrap == NULL || s->rnd == NULL)
		return err_set(e, MSCE_ENOMEM, "key memory");
	derive(master, KDF_WRAP, s->wrap);
	s->rnd_left = 0;
	*seal_it = st_meta_get(txn, s->meta, "sealing", &v) == 0;
	return 0;
}

void st_crypt_close(struct store *s)
{
	sodium_free(s->wrap);
	sodium_free(s->rnd);
	s->wrap = s->rnd = NULL;
}

void st_crypt_reset(struct wtxn *w)
{
	w->dek_ok = 0;
	dek_wipe(&w->dek);
	w->stage_ok = 0;
	sodium_memzero(w->stage_key, sizeof w->stage_key);
}

/* ---- data keys ------------------------------------------------------------ */

int st_dek_load(struct store *s, MDB_txn *txn, const uint8_t *rk,
		size_t rklen, struct dek *d, struct err *e)
{
	MDB_val k = {rklen, (void *)rk}, v;
	int rc;

	dek_wipe(d);
	if (s->wrap == NULL)
		return 0;
	rc = mdb_get(txn, s->deks, &k, &v);
	if (rc == MDB_NOTFOUND)
		return 0;
	if (rc)
		return st_lmdb_err(e, rc, "read data key");
	if (dek_unwrap(s->wrap, v.mv_data, v.mv_size, rk, rklen, d))
		return err_set(e, MSCE_ECORRUPT,
			       "the data key of %.*s does not open with the "
			       "master key",
			       (int)rklen, (const char *)rk);
	return 0;
}

int st_wdek(struct wtxn *w, const uint8_t *rk, size_t rklen, int create,
	    struct dek **out, struct err *e)
{
	struct store *s = w->s;
	int rc;

	if (!w->dek_ok || w->dek_rklen != rklen ||
	    memcmp(w->dek_rk, rk, rklen) != 0) {
		w->dek_ok = 0;
		if ((rc = st_dek_load(s, w->txn, rk, rklen, &w->dek, e)))
			return rc;
		memcpy(w->dek_rk, rk, rklen);
		w->dek_rklen = rklen;
		w->dek_ok = 1;
	}
	if (!w->dek.have && create && s->wrap != NULL) {
		uint8_t val[DEK_VAL];
		MDB_val k = {rklen, (void *)rk}, v = {DEK_VAL, val};
		rnd(s, w->dek.key, SC_KEY);
		rnd(s, w->dek.kid, SC_KID);
		w->dek.have = 1;
		dek_wrap(s, s->wrap, &w->dek, rk, rklen, val);
		if ((rc = mdb_put(w->txn, s->deks, &k, &v, 0))) {
			w->dek_ok = 0;
			dek_wipe(&w->dek);
			return st_lmdb_err(e, rc, "store a data key");
		}
	}
	*out = &w->dek;
	return 0;
}

int st_dek_shred(struct wtxn *w, const uint8_t *rk, size_t rklen,
		 struct err *e)
{
	MDB_val k = {rklen, (void *)rk};
	int rc = mdb_del(w->txn, w->s->deks, &k, NULL);

	if (rc && rc != MDB_NOTFOUND)
		return st_lmdb_err(e, rc, "destroy a data key");
	if (w->dek_ok && w->dek_rklen == rklen &&
	    memcmp(w->dek_rk, rk, rklen) == 0)
		dek_wipe(&w->dek); /* still valid: the record has none now */
	return 0;
}

/* ---- records ---------------------------------------------------------------- */

/* A record value without a seal: the codec's form, or the wrapper with an
 * erase mark. */
static int plain_decode(const uint8_t *p, size_t len, struct record *r,
			struct arena *a)
{
	struct version er = {0, 0};
	int rc;

	if (len > 0 && (p[0] & 0xF0) == REC_WRAP) {
		if (p[0] & REC_SEALED)
			return MSCE_ECORRUPT;
		if (p[0] & REC_ERASED) {
			if (len < 13)
				return MSCE_ECORRUPT;
			er.hlc = rd_le64(p + 1);
			er.origin = (uint32_t)p[9] | (uint32_t)p[10] << 8 |
				    (uint32_t)p[11] << 16 |
				    (uint32_t)p[12] << 24;
			p += 13;
			len -= 13;
		} else {
			p++;
			len--;
		}
	}
	if ((rc = record_decode(p, len, r, a)))
		return rc;
	r->erased = er;
	return 0;
}

/* The clear form's header; returns its length (1 or 13). */
static size_t plain_header(const struct record *r, uint8_t *h, int sealed)
{
	if (version_is_zero(r->erased) && !sealed)
		return 0; /* the codec's own form */
	h[0] = REC_WRAP | (sealed ? REC_SEALED : 0);
	if (version_is_zero(r->erased))
		return 1;
	h[0] |= REC_ERASED;
	le64(h + 1, r->erased.hlc);
	h[9] = (uint8_t)r->erased.origin;
	h[10] = (uint8_t)(r->erased.origin >> 8);
	h[11] = (uint8_t)(r->erased.origin >> 16);
	h[12] = (uint8_t)(r->erased.origin >> 24);
	return 13;
}

static size_t rec_ad(uint8_t *ad, const uint8_t *h, size_t hlen,
		     const uint8_t *rk, size_t rklen)
{
	size_t n = ad_put(ad, 0, "msce/rec", 8);
	n = ad_put(ad, n, h, hlen);
	return ad_put(ad, n, rk, rklen);
}

/* A stored record value: with w, its data key comes from w's cache. */
static int rec_decode(struct store *s, MDB_txn *txn, struct wtxn *w,
		      const uint8_t *rk, size_t rklen, const void *val,
		      size_t len, struct record *r, struct arena *a,
		      struct err *e)
{
	const uint8_t *p = val;
	uint8_t ad[AD_MAX], *m;
	struct dek d, *dp;
	size_t hlen;
	int rc;

	if (len == 0 || (p[0] & (0xF0 | REC_SEALED)) != (REC_WRAP | REC_SEALED)) {
		rc = plain_decode(p, len, r, a);
		if (rc)
			return err_set(e, rc, "record %.*s is %s", (int)rklen,
				       (const char *)rk,
				       rc == MSCE_ENOMEM ? "too big to load"
							 : "corrupt on disk");
		return 0;
	}
	hlen = (p[0] & REC_ERASED ? 13 : 1) + SC_KID + SC_NONCE;
	if (len < hlen + SC_TAG)
		return err_set(e, MSCE_ECORRUPT, "record %.*s is corrupt on disk",
			       (int)rklen, (const char *)rk);
	dek_wipe(&d);
	if (w != NULL)
		rc = st_wdek(w, rk, rklen, 0, &dp, e);
	else
		rc = st_dek_load(s, txn, rk, rklen, dp = &d, e);
	if (rc)
		return rc;
	if (!dp->have || memcmp(dp->kid, p + hlen - SC_NONCE - SC_KID, SC_KID)) {
		dek_wipe(&d);
		return err_set(e, MSCE_ECORRUPT,
			       "record %.*s: its data key is %s", (int)rklen,
			       (const char *)rk,
			       s->wrap == NULL ? "sealed and the store has no "
						 "master key"
					       : "missing");
	}
	m = arena_alloc(a, len - hlen - SC_TAG + 1);
	if (m == NULL) {
		dek_wipe(&d);
		return err_set(e, MSCE_ENOMEM, "record %.*s is too big to load",
			       (int)rklen, (const char *)rk);
	}
	rc = unseal(m, p + hlen, len - hlen, ad,
		    rec_ad(ad, p, hlen - SC_NONCE, rk, rklen),
		    p + hlen - SC_NONCE, dp->key);
	dek_wipe(&d);
	if (rc)
		return err_set(e, MSCE_ECORRUPT,
			       "record %.*s does not open with its data key "
			       "(altered on disk?)",
			       (int)rklen, (const char *)rk);
	/* The mark comes from the header (authenticated), the rest from the
	 * sealed encoding. */
	struct version er = {0, 0};
	if (p[0] & REC_ERASED) {
		er.hlc = rd_le64(p + 1);
		er.origin = (uint32_t)p[9] | (uint32_t)p[10] << 8 |
			    (uint32_t)p[11] << 16 | (uint32_t)p[12] << 24;
	}
	if ((rc = record_decode(m, len - hlen - SC_TAG, r, a)))
		return err_set(e, rc, "record %.*s is %s", (int)rklen,
			       (const char *)rk,
			       rc == MSCE_ENOMEM ? "too big to load"
						 : "corrupt on disk");
	r->erased = er;
	return 0;
}

int st_rec_decode(struct store *s, MDB_txn *txn, const uint8_t *rk,
		  size_t rklen, const void *val, size_t len, struct record *r,
		  struct arena *a, struct err *e)
{
	return rec_decode(s, txn, NULL, rk, rklen, val, len, r, a, e);
}

int st_wrec_decode(struct wtxn *w, const uint8_t *rk, size_t rklen,
		   const void *val, size_t len, struct record *r,
		   struct err *e)
{
	return rec_decode(w->s, w->txn, w, rk, rklen, val, len, r,
			  &w->s->arena, e);
}

int st_rec_encode(struct wtxn *w, const uint8_t *rk, size_t rklen,
		  const struct record *r, MDB_val *out, struct err *e)
{
	struct store *s = w->s;
	size_t plen = record_encoded_size(r), hlen;
	uint8_t h[13 + SC_KID + SC_NONCE], ad[AD_MAX], *m;
	struct dek *d;
	int rc;

	if (s->wrap == NULL || r->nfields == 0 || MUTANT("plain_records")) {
		hlen = plain_header(r, h, 0);
		if (st_ensure_scratch(s, hlen + plen))
			return err_set(e, MSCE_ENOMEM, "encode record");
		memcpy(s->scratch, h, hlen);
		record_encode(r, s->scratch + hlen);
		out->mv_data = s->scratch;
		out->mv_size = hlen + plen;
		return 0;
	}
	if ((rc = st_wdek(w, rk, rklen, 1, &d, e)))
		return rc;
	hlen = plain_header(r, h, 1);
	memcpy(h + hlen, d->kid, SC_KID);
	rnd(s, h + hlen + SC_KID, SC_NONCE);
	/* The encoding goes to the arena first: r may point into the page
	 * the put replaces, and into scratch never. */
	m = arena_alloc(&s->arena, plen);
	if (m == NULL || st_ensure_scratch(s, hlen + SC_KID + SC_NONCE + plen +
						  SC_TAG))
		return err_set(e, MSCE_ENOMEM, "encode record");
	record_encode(r, m);
	memcpy(s->scratch, h, hlen + SC_KID + SC_NONCE);
	seal(s->scratch + hlen + SC_KID + SC_NONCE, m, plen, ad,
	     rec_ad(ad, h, hlen + SC_KID, rk, rklen), h + hlen + SC_KID,
	     d->key);
	out->mv_data = s->scratch;
	out->mv_size = hlen + SC_KID + SC_NONCE + plen + SC_TAG;
	return 0;
}

/* ---- the log ---------------------------------------------------------------- */

int st_log_put(struct wtxn *w, uint32_t origin, uint64_t seq, uint64_t hlc,
	       const uint8_t *rk, size_t rklen, int mode, const uint8_t *data,
	       size_t len, struct err *e)
{
	struct store *s = w->s;
	uint8_t k[12], ad[AD_MAX];
	MDB_val key = {12, k}, val = {len, (void *)data};
	size_t hlen = 1 + 8 + 2 + rklen;
	struct dek *d = NULL;
	int rc;

	be32(k, origin);
	be64(k + 4, seq);
	/* A store in the clear seals nothing, but still keeps only the
	 * place of a put whose values were erased before it came. */
	if (s->wrap == NULL && mode == LOG_SEAL)
		mode = LOG_PLAIN;
	if (mode != LOG_PLAIN) {
		if (mode == LOG_SEAL &&
		    (rc = st_wdek(w, rk, rklen, 1, &d, e)))
			return rc;
		size_t total = hlen + (mode == LOG_SEAL
					   ? SC_KID + SC_NONCE + len + SC_TAG
					   : 0);
		if (st_ensure_scratch(s, total))
			return err_set(e, MSCE_ENOMEM, "append to log");
		uint8_t *p = s->scratch;
		p[0] = mode == LOG_SEAL ? LOG_SEALED : LOG_SHREDDED;
		le64(p + 1, hlc);
		p[9] = (uint8_t)rklen;
		p[10] = (uint8_t)(rklen >> 8);
		memcpy(p + 11, rk, rklen);
		if (mode == LOG_SEAL) {
			memcpy(p + hlen, d->kid, SC_KID);
			rnd(s, p + hlen + SC_KID, SC_NONCE);
			size_t n = ad_put(ad, 0, "msce/log", 8);
			n = ad_put(ad, n, p, hlen + SC_KID);
			n = ad_put(ad, n, k, 12);
			seal(p + hlen + SC_KID + SC_NONCE, data, len, ad, n,
			     p + hlen + SC_KID, d->key);
		}
		val.mv_data = p;
		val.mv_size = total;
	}
	/* An origin's entries come in seq order, and mostly from one origin
	 * at a time (another origin's entries after it: in place). */
	if ((rc = st_put_append(w->txn, s->log, &key, &val)))
		return st_lmdb_err(e, rc, "append to log");
	return 0;
}

static int grow_buf(struct logbuf *b, size_t n)
{
	if (n <= b->cap)
		return 0;
	size_t cap = b->cap ? b->cap : 4096;
	while (cap < n)
		cap *= 2;
	uint8_t *p = realloc(b->p, cap);
	if (p == NULL)
		return -1;
	b->p = p;
	b->cap = cap;
	return 0;
}

/* A redacted change in place of one whose values were erased here. */
static int redacted(struct logbuf *b, uint32_t origin, uint64_t seq,
		    uint64_t hlc, const uint8_t *rk, size_t rklen,
		    const uint8_t **out, size_t *outlen, struct err *e)
{
	const uint8_t *z = memchr(rk, 0, rklen);
	char coll[MSCE_MAX_COLLECTION + 1], key[MSCE_MAX_KEY + 1];
	Msce__Change c = MSCE__CHANGE__INIT;
	size_t cl, kl;

	if (z == NULL || (cl = (size_t)(z - rk)) > MSCE_MAX_COLLECTION ||
	    (kl = rklen - cl - 1) > MSCE_MAX_KEY)
		return err_set(e, MSCE_ECORRUPT, "log entry %u/%llu is corrupt",
			       origin, (unsigned long long)seq);
	memcpy(coll, rk, cl);
	coll[cl] = 0;
	memcpy(key, z + 1, kl);
	key[kl] = 0;
	c.origin = origin;
	c.seq = seq;
	c.hlc = hlc;
	c.collection = coll;
	c.key = key;
	c.op = MSCE__CHANGE__OP__PUT;
	c.redacted = 1;
	if (grow_buf(b, msce__change__get_packed_size(&c)))
		return err_set(e, MSCE_ENOMEM, "read log");
	*outlen = msce__change__pack(&c, b->p);
	*out = b->p;
	return LOG_REDACTED;
}

/* The erase mark of record rk (zero if none), from its header alone. */
static struct version mark_of(MDB_txn *txn, struct store *s, const uint8_t *rk,
			      size_t rklen)
{
	MDB_val k = {rklen, (void *)rk}, v;
	struct version er = {0, 0};
	const uint8_t *p;

	if (mdb_get(txn, s->recs, &k, &v) != 0 || v.mv_size < 13)
		return er;
	p = v.mv_data;
	if ((p[0] & 0xF0) == REC_WRAP && (p[0] & REC_ERASED)) {
		er.hlc = rd_le64(p + 1);
		er.origin = (uint32_t)p[9] | (uint32_t)p[10] << 8 |
			    (uint32_t)p[11] << 16 | (uint32_t)p[12] << 24;
	}
	return er;
}

/* Where a plain encoded change writes values: a put's version and record
 * key (into rk, *rklen). Returns 1 for a put, 0 for anything else (a
 * delete; a change that does not parse is its reader's to refuse), or -1
 * when memory ran out: then nobody can tell whether the values must be
 * hidden. Decoded as a ChangePlace, so the values are not decoded, only
 * copied as unknown fields into b's arena, which is reset at once (its
 * 64 MiB limit is many times what any change of MSCE_MAX_CHANGE takes). */
static int put_place(struct logbuf *b, const uint8_t *p, size_t len,
		     struct version *v, uint8_t *rk, size_t *rklen)
{
	Msce__ChangePlace *c;
	size_t cl, kl;
	int rc = 0;

	if (b->a.limit == 0) /* a logbuf starts zeroed */
		arena_init(&b->a, 0);
	c = msce__change_place__unpack(arena_pb_allocator(&b->a), len, p);
	if (c == NULL && b->a.nomem)
		rc = -1;
	if (c != NULL && c->op == MSCE__CHANGE__OP__PUT) {
		cl = strlen(c->collection);
		kl = strlen(c->key);
		/* Absent (proto3 gives "") or too long: no record of ours. */
		if (cl > 0 && cl <= MSCE_MAX_COLLECTION && kl > 0 &&
		    kl <= MSCE_MAX_KEY) {
			v->hlc = c->hlc;
			v->origin = c->origin;
			*rklen = rec_key(rk, c->collection, cl, c->key, kl);
			rc = 1;
		}
	}
	arena_reset(&b->a);
	return rc;
}

int st_log_open(struct store *s, MDB_txn *txn, uint32_t origin, uint64_t seq,
		const MDB_val *v, struct logbuf *b, const uint8_t **out,
		size_t *outlen, struct err *e)
{
	const uint8_t *p = v->mv_data;
	size_t len = v->mv_size, rklen, hlen;
	uint8_t k[12], ad[AD_MAX];
	uint64_t hlc;
	int rc;

	if (len == 0 || (p[0] != LOG_SEALED && p[0] != LOG_SHREDDED)) {
		/* In the clear (a store without a master key): no data key
		 * to destroy, so the record's erase mark decides. A put
		 * below it reads back as it would from a sealed store. */
		struct version cv;
		uint8_t rk[RK_MAX];
		if (MUTANT("clear_log_unredacted"))
			rc = 0;
		else if ((rc = put_place(b, p, len, &cv, rk, &rklen)) < 0)
			return err_set(e, MSCE_ENOMEM, "read log entry %u/%llu",
				       origin, (unsigned long long)seq);
		if (rc) {
			if (b->mrklen != rklen ||
			    memcmp(b->mrk, rk, rklen) != 0) {
				b->mark = mark_of(txn, s, rk, rklen);
				memcpy(b->mrk, rk, rklen);
				b->mrklen = rklen;
			}
			if (version_cmp(cv, b->mark) < 0)
				return redacted(b, origin, seq, cv.hlc, rk,
						rklen, out, outlen, e);
		}
		*out = p;
		*outlen = len;
		return 0;
	}
	if (len < 11 || (rklen = (size_t)p[9] | (size_t)p[10] << 8) > RK_MAX ||
	    len < (hlen = 11 + rklen) ||
	    (p[0] == LOG_SEALED && len < hlen + SC_KID + SC_NONCE + SC_TAG))
		return err_set(e, MSCE_ECORRUPT, "log entry %u/%llu is corrupt",
			       origin, (unsigned long long)seq);
	hlc = rd_le64(p + 1);
	if (p[0] == LOG_SHREDDED)
		return redacted(b, origin, seq, hlc, p + 11, rklen, out, outlen,
				e);
	if (b->rklen != rklen || memcmp(b->rk, p + 11, rklen) != 0) {
		b->rklen = 0;
		if ((rc = st_dek_load(s, txn, p + 11, rklen, &b->d, e)))
			return rc;
		memcpy(b->rk, p + 11, rklen);
		b->rklen = rklen;
	}
	if (!b->d.have || memcmp(b->d.kid, p + hlen, SC_KID) != 0)
		return redacted(b, origin, seq, hlc, p + 11, rklen, out, outlen,
				e);
	size_t clen = len - hlen - SC_KID - SC_NONCE;
	if (grow_buf(b, clen))
		return err_set(e, MSCE_ENOMEM, "read log");
	be32(k, origin);
	be64(k + 4, seq);
	size_t n = ad_put(ad, 0, "msce/log", 8);
	n = ad_put(ad, n, p, hlen + SC_KID);
	n = ad_put(ad, n, k, 12);
	if (unseal(b->p, p + hlen + SC_KID + SC_NONCE, clen, ad, n,
		   p + hlen + SC_KID, b->d.key))
		return err_set(e, MSCE_ECORRUPT,
			       "log entry %u/%llu does not open with its data "
			       "key (altered on disk?)",
			       origin, (unsigned long long)seq);
	*out = b->p;
	*outlen = clen - SC_TAG;
	return 0;
}

void st_logbuf_free(struct logbuf *b)
{
	dek_wipe(&b->d);
	free(b->p);
	arena_free(&b->a);
	memset(b, 0, sizeof *b);
}

/* ---- staged snapshot parts -------------------------------------------------- */

static void stage_meta_key(uint8_t k[9], uint32_t source)
{
	memcpy(k, "stage", 5);
	be32(k + 5, source);
}

static size_t stagekey_ad(uint8_t *ad, uint32_t source)
{
	size_t n = ad_put(ad, 0, "msce/stagekey", 13);
	be32(ad + n, source);
	return n + 4;
}

/* The staging key of source into w (made when none and create). */
static int stage_key(struct wtxn *w, uint32_t source, int create,
		     struct err *e)
{
	struct store *s = w->s;
	uint8_t mk[9], ad[AD_MAX], val[STAGE_VAL];
	MDB_val k = {9, mk}, v;
	int rc;

	if (w->stage_ok && w->stage_src == source)
		return 0;
	w->stage_ok = 0;
	stage_meta_key(mk, source);
	rc = mdb_get(w->txn, s->meta, &k, &v);
	if (rc == 0) {
		if (v.mv_size != STAGE_VAL ||
		    unseal(w->stage_key, (const uint8_t *)v.mv_data + SC_NONCE,
			   SC_KEY + SC_TAG, ad, stagekey_ad(ad, source),
			   v.mv_data, s->wrap))
			return err_set(e, MSCE_ECORRUPT,
				       "the staging key of node %u's snapshot "
				       "does not open",
				       source);
	} else if (rc == MDB_NOTFOUND && create) {
		rnd(s, w->stage_key, SC_KEY);
		rnd(s, val, SC_NONCE);
		seal(val + SC_NONCE, w->stage_key, SC_KEY, ad,
		     stagekey_ad(ad, source), val, s->wrap);
		v.mv_data = val;
		v.mv_size = sizeof val;
		if ((rc = mdb_put(w->txn, s->meta, &k, &v, 0)))
			return st_lmdb_err(e, rc, "store a staging key");
	} else if (rc == MDB_NOTFOUND) {
		return err_set(e, MSCE_ECORRUPT,
			       "node %u's staged snapshot has no key", source);
	} else {
		return st_lmdb_err(e, rc, "read a staging key");
	}
	w->stage_ok = 1;
	w->stage_src = source;
	return 0;
}

int st_stage_key_drop(struct wtxn *w, uint32_t source)
{
	uint8_t mk[9];
	MDB_val k = {9, mk};
	int rc;

	stage_meta_key(mk, source);
	if (w->stage_ok && w->stage_src == source) {
		w->stage_ok = 0;
		sodium_memzero(w->stage_key, sizeof w->stage_key);
	}
	rc = mdb_del(w->txn, w->s->meta, &k, NULL);
	return rc == MDB_NOTFOUND ? 0 : rc;
}

static size_t stage_ad(uint8_t *ad, const MDB_val *k)
{
	size_t n = ad_put(ad, 0, "msce/stage", 10);
	return ad_put(ad, n, k->mv_data, k->mv_size);
}

int st_stage_encode(struct wtxn *w, uint32_t source, const MDB_val *k,
		    const struct record *r, MDB_val *out, struct err *e)
{
	struct store *s = w->s;
	uint8_t h[13], ad[AD_MAX], *m;
	size_t hlen = plain_header(r, h, 0), plen = hlen + record_encoded_size(r);
	int rc;

	if (s->wrap == NULL) {
		if (st_ensure_scratch(s, plen))
			return err_set(e, MSCE_ENOMEM, "stage snapshot");
		memcpy(s->scratch, h, hlen);
		record_encode(r, s->scratch + hlen);
		out->mv_data = s->scratch;
		out->mv_size = plen;
		return 0;
	}
	if ((rc = stage_key(w, source, 1, e)))
		return rc;
	m = arena_alloc(&s->arena, plen);
	if (m == NULL || st_ensure_scratch(s, 1 + SC_NONCE + plen + SC_TAG))
		return err_set(e, MSCE_ENOMEM, "stage snapshot");
	memcpy(m, h, hlen);
	record_encode(r, m + hlen);
	s->scratch[0] = STAGE_SEALED;
	rnd(s, s->scratch + 1, SC_NONCE);
	seal(s->scratch + 1 + SC_NONCE, m, plen, ad, stage_ad(ad, k),
	     s->scratch + 1, w->stage_key);
	out->mv_data = s->scratch;
	out->mv_size = 1 + SC_NONCE + plen + SC_TAG;
	return 0;
}

int st_stage_decode(struct wtxn *w, uint32_t source, const MDB_val *k,
		    const MDB_val *v, struct record *r, struct arena *a,
		    struct err *e)
{
	const uint8_t *p = v->mv_data;
	uint8_t ad[AD_MAX], *m;
	size_t len = v->mv_size;
	int rc;

	if (len == 0 || p[0] != STAGE_SEALED) {
		if (plain_decode(p, len, r, a))
			return err_set(e, MSCE_ECORRUPT,
				       "staged snapshot record is corrupt");
		return 0;
	}
	if (len < 1 + SC_NONCE + SC_TAG)
		return err_set(e, MSCE_ECORRUPT,
			       "staged snapshot record is corrupt");
	if ((rc = stage_key(w, source, 0, e)))
		return rc;
	m = arena_alloc(a, len - 1 - SC_NONCE - SC_TAG + 1);
	if (m == NULL)
		return err_set(e, MSCE_ENOMEM, "join staged snapshot");
	if (unseal(m, p + 1 + SC_NONCE, len - 1 - SC_NONCE, ad, stage_ad(ad, k),
		   p + 1, w->stage_key) ||
	    plain_decode(m, len - 1 - SC_NONCE - SC_TAG, r, a))
		return err_set(e, MSCE_ECORRUPT,
			       "staged snapshot record does not open");
	return 0;
}

/* ---- sealing a store kept in the clear -------------------------------------- */

struct seal_args {
	int phase; /* 0 records, 1 log, 2 done */
	uint8_t at[RK_MAX > 12 ? RK_MAX : 12];
	size_t atlen; /* resume after this key (0: from the start) */
	int done;
};

/* Seals one value (a record with fields, a put in the log) under key at;
 * *did says whether it was one to seal. */
static int seal_one(struct wtxn *w, int phase, const uint8_t *at,
		    size_t atlen, const MDB_val *v, int *did, struct err *e)
{
	struct store *s = w->s;
	const uint8_t *p = v->mv_data;
	MDB_val k = {atlen, (void *)at}, out;
	int rc;

	*did = 0;
	if (v->mv_size == 0)
		return 0;
	if (phase == 0) {
		struct record r;
		if (p[0] != RECORD_FORMAT &&
		    (p[0] & (0xF0 | REC_SEALED)) != REC_WRAP)
			return 0; /* sealed already */
		if ((rc = st_rec_decode(s, w->txn, at, atlen, p, v->mv_size, &r,
					&s->arena, e)))
			return rc;
		if (r.nfields == 0)
			return 0;
		if ((rc = st_rec_encode(w, at, atlen, &r, &out, e)))
			return rc;
		if ((rc = mdb_put(w->txn, s->recs, &k, &out, 0)))
			return st_lmdb_err(e, rc, "seal a record");
		*did = 1;
		return 0;
	}
	if (atlen != 12 || p[0] == LOG_SEALED || p[0] == LOG_SHREDDED)
		return 0;
	uint8_t *raw = arena_memdup(&s->arena, p, v->mv_size);
	Msce__Change *c =
	    raw ? msce__change__unpack(arena_pb_allocator(&s->arena),
				       v->mv_size, raw)
		: NULL;
	uint8_t rk[RK_MAX];
	size_t cl, kl, rklen;
	if (c == NULL || (cl = strlen(c->collection)) > MSCE_MAX_COLLECTION ||
	    (kl = strlen(c->key)) > MSCE_MAX_KEY)
		return err_set(e, MSCE_ECORRUPT,
			       "log entry %u/%llu is not a change", rd_be32(at),
			       (unsigned long long)rd_be64(at + 4));
	if (c->op == MSCE__CHANGE__OP__DELETE)
		return 0; /* no value: stays in the clear */
	rklen = rec_key(rk, c->collection, cl, c->key, kl);
	struct version cv = {c->hlc, c->origin};
	int mode = version_cmp(cv, mark_of(w->txn, s, rk, rklen)) < 0
		       ? LOG_SHRED
		       : LOG_SEAL;
	if ((rc = st_log_put(w, rd_be32(at), rd_be64(at + 4), c->hlc, rk,
			     rklen, mode, raw, v->mv_size, e)))
		return rc;
	*did = 1;
	return 0;
}

/* Seals up to SEAL_STEP values, from where the last batch stopped. */
static int seal_batch(struct wtxn *w, void *arg, struct err *e)
{
	struct seal_args *a = arg;
	struct store *s = w->s;
	uint8_t at[sizeof a->at];
	size_t atlen = a->atlen, n = 0;
	MDB_cursor *cur;
	MDB_val k, v;
	int rc, did;

	int phase = a->phase; /* a retried batch starts where this did */

	memcpy(at, a->at, atlen);
	for (; phase < 2; phase++, atlen = 0) {
		MDB_dbi dbi = phase == 0 ? s->recs : s->log;
		for (;;) {
			if (n == SEAL_STEP) { /* the next batch goes on */
				memcpy(a->at, at, atlen);
				a->atlen = atlen;
				a->phase = phase;
				return 0;
			}
			/* Re-seek each time: a put may move a cursor. */
			if ((rc = mdb_cursor_open(w->txn, dbi, &cur)))
				return st_lmdb_err(e, rc, "seal the store");
			k.mv_size = atlen;
			k.mv_data = at;
			rc = mdb_cursor_get(cur, &k, &v,
					    atlen ? MDB_SET_RANGE : MDB_FIRST);
			if (rc == 0 && atlen && k.mv_size == atlen &&
			    memcmp(k.mv_data, at, atlen) == 0)
				rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
			if (rc == 0 && k.mv_size > sizeof at)
				rc = MDB_CORRUPTED;
			if (rc == 0) {
				memcpy(at, k.mv_data, k.mv_size);
				atlen = k.mv_size;
			}
			mdb_cursor_close(cur);
			if (rc == MDB_NOTFOUND)
				break;
			if (rc)
				return st_lmdb_err(e, rc, "seal the store");
			arena_reset(&s->arena);
			if ((rc = seal_one(w, phase, at, atlen, &v, &did, e)))
				return rc;
			n += did;
		}
	}
	/* Staged snapshots in the clear go: their senders send again. */
	if ((rc = mdb_drop(w->txn, s->snapin, 0)))
		return st_lmdb_err(e, rc, "seal the store");
	MDB_val sk = {7, (void *)"sealing"};
	rc = mdb_del(w->txn, s->meta, &sk, NULL);
	if (rc && rc != MDB_NOTFOUND)
		return st_lmdb_err(e, rc, "seal the store");
	a->phase = phase;
	a->done = 1;
	return 0;
}

int st_crypt_seal_store(struct store *s, struct err *e)
{
	struct seal_args a;
	int rc;

	memset(&a, 0, sizeof a);
	while (!a.done)
		if ((rc = st_run_batch(s, seal_batch, &a, e))) {
			err_wrap(e, "seal the store with the master key");
			return rc;
		}
	return 0;
}

/* ---- master key rotation ------------------------------------------------------ */

struct rotate_args {
	const uint8_t *wrap, *check; /* derived from the new master key */
	size_t n;
};

static int rotate_batch(struct wtxn *w, void *arg, struct err *e)
{
	struct rotate_args *a = arg;
	struct store *s = w->s;
	uint8_t rk[RK_MAX], val[DEK_VAL];
	size_t rklen = 0;
	MDB_cursor *cur;
	MDB_val k, v;
	struct dek d;
	int rc;

	a->n = 0;
	for (;;) {
		/* Re-seek after each put, as elsewhere. */
		if ((rc = mdb_cursor_open(w->txn, s->deks, &cur)))
			return st_lmdb_err(e, rc, "rotate the master key");
		k.mv_size = rklen;
		k.mv_data = rk;
		rc = mdb_cursor_get(cur, &k, &v, rklen ? MDB_SET_RANGE
						       : MDB_FIRST);
		if (rc == 0 && rklen && k.mv_size == rklen &&
		    memcmp(k.mv_data, rk, rklen) == 0)
			rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
		if (rc == 0 && (k.mv_size == 0 || k.mv_size > RK_MAX))
			rc = MDB_CORRUPTED;
		if (rc == 0) {
			memcpy(rk, k.mv_data, k.mv_size);
			rklen = k.mv_size;
			if (dek_unwrap(s->wrap, v.mv_data, v.mv_size, rk, rklen,
				       &d))
				rc = -1;
		}
		mdb_cursor_close(cur);
		if (rc == MDB_NOTFOUND)
			break;
		if (rc == -1)
			return err_set(e, MSCE_ECORRUPT,
				       "the data key of %.*s does not open with "
				       "the current master key",
				       (int)rklen, (const char *)rk);
		if (rc)
			return st_lmdb_err(e, rc, "rotate the master key");
		dek_wrap(s, a->wrap, &d, rk, rklen, val);
		dek_wipe(&d);
		k.mv_size = rklen;
		k.mv_data = rk;
		v.mv_size = DEK_VAL;
		v.mv_data = val;
		if ((rc = mdb_put(w->txn, s->deks, &k, &v, 0)))
			return st_lmdb_err(e, rc, "rotate the master key");
		a->n++;
	}
	/* Staged snapshot parts and their keys go: a sender sends again. */
	if ((rc = mdb_drop(w->txn, s->snapin, 0)))
		return st_lmdb_err(e, rc, "rotate the master key");
	for (;;) {
		uint8_t pre[5] = {'s', 't', 'a', 'g', 'e'};
		if ((rc = mdb_cursor_open(w->txn, s->meta, &cur)))
			return st_lmdb_err(e, rc, "rotate the master key");
		k.mv_size = 5;
		k.mv_data = pre;
		rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
		if (rc == 0 && k.mv_size == 9 && memcmp(k.mv_data, pre, 5) == 0)
			rc = mdb_cursor_del(cur, 0);
		else if (rc == 0)
			rc = MDB_NOTFOUND;
		mdb_cursor_close(cur);
		if (rc == MDB_NOTFOUND)
			break;
		if (rc)
			return st_lmdb_err(e, rc, "rotate the master key");
	}
	w->stage_ok = 0;
	if ((rc = st_meta_put(w->txn, s->meta, "master", a->check, SC_KEY)))
		return st_lmdb_err(e, rc, "rotate the master key");
	return 0;
}

int store_rotate_master_key(struct store *s, const uint8_t *new_key,
			    size_t *rewrapped, struct err *e)
{
	struct rotate_args a = {0};
	uint8_t *k = sodium_malloc(2 * SC_KEY);
	int rc;

	if (rewrapped)
		*rewrapped = 0;
	if (s->wrap == NULL) {
		sodium_free(k);
		return err_set(e, MSCE_EINVAL,
			       "the store has no master key to rotate");
	}
	if (k == NULL)
		return err_set(e, MSCE_ENOMEM, "key memory");
	derive(new_key, KDF_WRAP, k);
	derive(new_key, KDF_CHECK, k + SC_KEY);
	a.wrap = k;
	a.check = k + SC_KEY;
	pthread_mutex_lock(&s->wlock);
	rc = st_run_batch_locked(s, rotate_batch, &a, e);
	if (rc == 0) {
		int src;
		memcpy(s->wrap, k, SC_KEY);
		/* Durable now, whatever the store's sync setting. The
		 * rotation is committed already: a failed sync must not read
		 * as a rotation that did not happen, or the operator keeps
		 * the old key alone. */
		src = fault_hit(FAULT_COMMIT) ? EIO : mdb_env_sync(s->env, 1);
		if (src) {
			struct err se;
			st_lmdb_err(&se, src, "sync the store");
			rc = err_set(e, se.code,
				     "the data keys were re-wrapped under the "
				     "new master key and committed, but %s: "
				     "the new key is in effect; keep the old "
				     "key too until msced has started with "
				     "the new one",
				     se.msg);
		}
	}
	pthread_mutex_unlock(&s->wlock);
	sodium_free(k);
	if (rc == 0 && rewrapped)
		*rewrapped = a.n;
	return rc;
}

/* ---- state, for tests and tools ---------------------------------------------- */

int store_encrypted(const struct store *s) { return s->wrap != NULL; }

int store_crypt_state(struct store *s, const char *coll, size_t coll_len,
		      const char *key, size_t key_len, int *has_key,
		      struct version *erased, struct err *e)
{
	uint8_t rk[RK_MAX];
	MDB_val k, v;
	MDB_txn *txn;
	struct record r;
	struct arena a;
	int rc, found = 0;

	*has_key = 0;
	erased->hlc = 0;
	erased->origin = 0;
	if (coll_len > MSCE_MAX_COLLECTION || key_len > MSCE_MAX_KEY)
		return err_set(e, MSCE_ETOOBIG, "name too long");
	k.mv_size = rec_key(rk, coll, coll_len, key, key_len);
	k.mv_data = rk;
	if ((rc = st_read_begin(s, &txn, e)))
		return rc;
	arena_init(&a, 0);
	if (mdb_get(txn, s->deks, &k, &v) == 0)
		*has_key = found = 1;
	if (mdb_get(txn, s->recs, &k, &v) == 0) {
		found = 1;
		rc = st_rec_decode(s, txn, rk, k.mv_size, v.mv_data, v.mv_size,
				   &r, &a, e);
		if (rc == 0)
			*erased = r.erased;
	}
	arena_free(&a);
	st_read_end(s, txn);
	if (rc == 0 && !found)
		rc = err_set(e, MSCE_ENOTFOUND, "%.*s/%.*s not found",
			     (int)coll_len, coll, (int)key_len, key);
	return rc;
}
