/* SPDX-License-Identifier: Apache-2.0 */
/* The msce secure channel (wire format: docs/PROTOCOL.md "Secure channel").
 *
 * Happy path: the initiator sends message 1 (its timestamp, then mac1 keyed
 * with the responder's public key and mac2 keyed with a cookie if it has
 * one). The responder checks mac1 (two BLAKE2b hashes, no Diffie-Hellman),
 * asks the admit callback whether to go on, checks the initiator's key and
 * timestamp through the verify callback, answers with message 2, and both
 * split into a send and a receive cipher. The initiator's first transport
 * message is an empty control message, the confirmation: only then does the
 * responder know the other end holds the keys, and not merely replayed an
 * old message 1. From then on every frame is one transport message whose
 * plaintext is a flags byte and up to CHANNEL_MAX_FRAGMENT bytes of an
 * application message; fragments are reassembled up to max_receive bytes.
 *
 * Under load the admit callback answers a message 1 without a valid mac2
 * with a cookie reply: MAC(guard secret, source address), encrypted to the
 * initiator with its mac1 as associated data. The initiator sends the same
 * message 1 again with mac2 keyed by the cookie, on the same connection.
 *
 * Failure modes: before the handshake only frames of the exact message 1,
 * message 2 or cookie reply length are accepted, read into a buffer inside
 * the struct; a responder spends nothing on the Noise handshake (no
 * allocation, no key) until mac1 holds, so garbage costs two hashes.
 * Afterwards a frame is at most 65535 bytes by its 2-byte length, and the
 * reassembly buffer grows only after checking the total against
 * max_receive and the shared budget. Any error kills the channel: keys are
 * wiped, buffers freed, and the code is returned by every later call. */
#include "channel.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "error.h"
#include "version.h"

/* Labels of the keys derived from the responder's public key. */
#define LABEL_MAC1 "mac1----"
#define LABEL_COOKIE "cookie--"

/* A reassembly buffer above this is freed after its message is delivered,
 * so idle links do not hold megabytes. */
#define ASM_KEEP (256u << 10)
#define ASM_MIN (64u << 10)

void channel_buf_free(struct channel_buf *b)
{
	free(b->data);
	memset(b, 0, sizeof(*b));
}

static int buf_reserve(struct channel_buf *b, size_t extra)
{
	size_t cap;
	uint8_t *p;

	if (extra <= b->cap - b->len)
		return 0;
	if (extra > SIZE_MAX / 2 - b->len)
		return MSCE_ENOMEM;
	cap = b->cap ? b->cap : 256;
	while (cap - b->len < extra)
		cap *= 2;
	p = realloc(b->data, cap);
	if (!p)
		return MSCE_ENOMEM;
	b->data = p;
	b->cap = cap;
	return 0;
}

static void put_be16(uint8_t *p, size_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static uint64_t get_be64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v = (v << 8) | p[i];
	return v;
}

static void put_be64(uint8_t *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)v;
}

int channel_prologue(const char *cluster, uint8_t *out, size_t cap, size_t *len)
{
	char tmp[CHANNEL_PROLOGUE_MAX + 1];
	size_t clen;
	int n;

	if (!cluster)
		return MSCE_EINVAL;
	clen = strnlen(cluster, CHANNEL_MAX_CLUSTER + 1);
	if (clen == 0 || clen > CHANNEL_MAX_CLUSTER)
		return MSCE_EINVAL;
	for (size_t i = 0; i < clen; i++)
		if (cluster[i] < 0x21 || cluster[i] > 0x7e)
			return MSCE_EINVAL;
	n = snprintf(tmp, sizeof(tmp), "msce/%d/%s", MSCE_CHANNEL_VERSION,
		     cluster);
	if (n < 0 || (size_t)n >= sizeof(tmp) || (size_t)n > cap)
		return MSCE_EINVAL;
	memcpy(out, tmp, (size_t)n);
	*len = (size_t)n;
	return 0;
}

static void budget_add(struct channel_budget *b, size_t n)
{
	for (; b != NULL; b = b->parent)
		b->used += n;
}

static void budget_sub(struct channel_budget *b, size_t n)
{
	for (; b != NULL; b = b->parent)
		b->used -= n;
}

void channel_set_budget(struct channel *ch, struct channel_budget *b)
{
	budget_sub(ch->budget, ch->asm_cap);
	ch->budget = b;
	budget_add(ch->budget, ch->asm_cap);
}

const struct channel_budget *channel_budget_refused(const struct channel *ch)
{
	return ch->refused_by;
}

static void asm_free(struct channel *ch)
{
	budget_sub(ch->budget, ch->asm_cap);
	free(ch->asm_buf);
	ch->asm_buf = NULL;
	ch->asm_len = ch->asm_cap = 0;
	ch->assembling = 0;
}

/* Kills the channel: wipes every key, frees every buffer, keeps the code
 * and where it failed. Idempotent, so the first cause is the one
 * reported. */
static int channel_fail_at(struct channel *ch, enum channel_failure why,
			   int code)
{
	if (ch->state == CHANNEL_DEAD)
		return ch->err;
	ch->state = CHANNEL_DEAD;
	ch->err = code ? code : MSCE_EPROTO;
	ch->failure = why;
	noise_handshake_destroy(&ch->hs);
	noise_cipher_destroy(&ch->tx);
	noise_cipher_destroy(&ch->rx);
	free(ch->frame);
	ch->frame = NULL;
	asm_free(ch);
	ch->local = NULL;
	sodium_memzero(ch->cookie, sizeof(ch->cookie));
	return ch->err;
}

static int channel_fail(struct channel *ch, int code)
{
	return channel_fail_at(ch, CHANNEL_FAIL_LOCAL, code);
}

/* BLAKE2b-256(label || prologue || responder's static public key). */
static void derive_key(uint8_t out[32], const char *label,
		       const uint8_t *prologue, size_t plen,
		       const uint8_t pub[NOISE_KEY_LEN])
{
	crypto_generichash_state st;

	crypto_generichash_init(&st, NULL, 0, 32);
	crypto_generichash_update(&st, (const uint8_t *)label, strlen(label));
	crypto_generichash_update(&st, prologue, plen);
	crypto_generichash_update(&st, pub, NOISE_KEY_LEN);
	crypto_generichash_final(&st, out, 32);
}

/* A 16-byte BLAKE2b MAC of in under key. */
static void mac16(uint8_t out[CHANNEL_MAC_LEN], const uint8_t *key,
		  size_t key_len, const uint8_t *in, size_t in_len)
{
	crypto_generichash(out, CHANNEL_MAC_LEN, in, in_len, key, key_len);
}

/* What a responder's cookie for src is: MAC(secret, src). */
static void cookie_for(const struct channel_guard *g, const uint8_t *src,
		       size_t src_len, uint8_t out[CHANNEL_COOKIE_LEN])
{
	crypto_generichash(out, CHANNEL_COOKIE_LEN, src, src_len, g->secret,
			   sizeof(g->secret));
}

int channel_init(struct channel *ch, const struct channel_config *cfg,
		 uint64_t now_ms)
{
	uint8_t prologue[CHANNEL_PROLOGUE_MAX];
	size_t plen;
	int initiator, rc;

	memset(ch, 0, sizeof(*ch));
	if (!cfg || !cfg->local || !cfg->local->priv || !cfg->cb.message)
		return MSCE_EINVAL;
	initiator = cfg->role == NOISE_INITIATOR;
	if (!initiator && cfg->role != NOISE_RESPONDER)
		return MSCE_EINVAL;
	/* A responder must check who is calling; an initiator must know whom
	 * it calls. */
	if (initiator ? !cfg->remote_key : (cfg->remote_key || !cfg->cb.verify))
		return MSCE_EINVAL;
	if (cfg->src_len > CHANNEL_MAX_SRC || (cfg->src_len && !cfg->src))
		return MSCE_EINVAL;
	if (sodium_init() < 0)
		return MSCE_ENOMEM;
	if ((rc = channel_prologue(cfg->cluster, prologue, sizeof(prologue),
				   &plen)))
		return rc;
	memcpy(ch->prologue, prologue, plen);
	ch->prologue_len = plen;
	/* Both MAC keys come from the responder's public key, which both
	 * sides know before message 1. */
	derive_key(ch->mac1_key, LABEL_MAC1, prologue, plen,
		   initiator ? cfg->remote_key : cfg->local->pub);
	derive_key(ch->cookie_key, LABEL_COOKIE, prologue, plen,
		   initiator ? cfg->remote_key : cfg->local->pub);
	if (initiator) {
		/* The responder's handshake waits for a valid mac1. */
		rc = noise_handshake_init(&ch->hs, cfg->role, prologue, plen,
					  cfg->local, cfg->remote_key,
					  cfg->test_ephemeral);
		if (rc)
			return rc;
		ch->hs_ready = 1;
		memcpy(ch->remote_key, cfg->remote_key, NOISE_KEY_LEN);
		ch->have_remote = 1;
		if (cfg->cookie) {
			memcpy(ch->cookie, cfg->cookie, CHANNEL_COOKIE_LEN);
			ch->have_cookie = 1;
		}
	} else {
		ch->local = cfg->local;
		ch->test_ephemeral = cfg->test_ephemeral;
		ch->guard = cfg->guard;
		if (cfg->src_len)
			memcpy(ch->src, cfg->src, cfg->src_len);
		ch->src_len = cfg->src_len;
	}
	ch->role = cfg->role;
	ch->state = initiator ? CHANNEL_NEW : CHANNEL_WAIT_MSG1;
	ch->cb = cfg->cb;
	ch->max_message =
	    cfg->max_message ? cfg->max_message : CHANNEL_DEFAULT_MAX_MESSAGE;
	ch->max_receive = cfg->max_receive ? cfg->max_receive : ch->max_message;
	ch->budget = cfg->budget;
	ch->rekey_bytes =
	    cfg->rekey_bytes ? cfg->rekey_bytes : CHANNEL_DEFAULT_REKEY_BYTES;
	ch->rekey_ms = cfg->rekey_ms ? cfg->rekey_ms : CHANNEL_DEFAULT_REKEY_MS;
	ch->start_ms = ch->last_rekey_ms = now_ms;
	return 0;
}

/* Writes one length-prefixed Noise handshake message into out. */
static int write_handshake(struct channel *ch, const uint8_t *payload,
			   size_t payload_len, size_t msg_len,
			   struct channel_buf *out)
{
	size_t n;
	int rc;

	if ((rc = buf_reserve(out, CHANNEL_FRAME_HDR + msg_len)))
		return rc;
	rc = noise_handshake_write_message(
	    &ch->hs, payload, payload_len,
	    out->data + out->len + CHANNEL_FRAME_HDR, msg_len, &n);
	if (rc)
		return rc;
	put_be16(out->data + out->len, n);
	out->len += CHANNEL_FRAME_HDR + n;
	return 0;
}

/* Sets mac2 of the message 1 kept in ch->msg1: keyed with the cookie, or
 * zeros without one. */
static void set_mac2(struct channel *ch)
{
	uint8_t *mac2 = ch->msg1 + CHANNEL_NOISE_MSG1_LEN + CHANNEL_MAC_LEN;

	if (ch->have_cookie)
		mac16(mac2, ch->cookie, CHANNEL_COOKIE_LEN, ch->msg1,
		      CHANNEL_NOISE_MSG1_LEN + CHANNEL_MAC_LEN);
	else
		memset(mac2, 0, CHANNEL_MAC_LEN);
}

/* Appends the kept message 1 as a frame. */
static int send_msg1(struct channel *ch, struct channel_buf *out)
{
	int rc;

	if ((rc = buf_reserve(out, CHANNEL_FRAME_HDR + CHANNEL_MSG1_LEN)))
		return rc;
	put_be16(out->data + out->len, CHANNEL_MSG1_LEN);
	memcpy(out->data + out->len + CHANNEL_FRAME_HDR, ch->msg1,
	       CHANNEL_MSG1_LEN);
	out->len += CHANNEL_FRAME_HDR + CHANNEL_MSG1_LEN;
	return 0;
}

int channel_start(struct channel *ch, struct channel_buf *out)
{
	uint8_t ts[CHANNEL_TIMESTAMP_LEN];
	size_t n;
	int rc;

	if (ch->state == CHANNEL_DEAD)
		return ch->err;
	if (ch->state != CHANNEL_NEW || !out)
		return MSCE_EINVAL;
	put_be64(ts, ch->start_ms);
	rc = noise_handshake_write_message(&ch->hs, ts, sizeof(ts), ch->msg1,
					   CHANNEL_NOISE_MSG1_LEN, &n);
	if (rc)
		return channel_fail(ch, rc);
	mac16(ch->msg1 + CHANNEL_NOISE_MSG1_LEN, ch->mac1_key,
	      sizeof(ch->mac1_key), ch->msg1, CHANNEL_NOISE_MSG1_LEN);
	set_mac2(ch);
	if ((rc = send_msg1(ch, out)))
		return channel_fail(ch, rc);
	ch->state = CHANNEL_WAIT_MSG2;
	return 0;
}

/* Handshake done: keys for both directions, the frame buffer, and the
 * handshake secrets gone. */
static int open_channel(struct channel *ch)
{
	int rc;

	ch->frame = malloc(NOISE_MAX_MSG);
	if (!ch->frame)
		return MSCE_ENOMEM;
	rc = noise_handshake_split(&ch->hs, &ch->tx, &ch->rx, ch->hash);
	if (rc)
		return rc;
	noise_handshake_destroy(&ch->hs);
	ch->local = NULL;
	ch->state = CHANNEL_OPEN;
	return 0;
}

/* Answers message 1 with a cookie for the connection's source address. */
static int send_cookie(struct channel *ch, struct channel_buf *out)
{
	uint8_t cookie[CHANNEL_COOKIE_LEN], *p;
	unsigned long long n;
	int rc;

	if ((rc = buf_reserve(out, CHANNEL_FRAME_HDR +
				       CHANNEL_COOKIE_REPLY_LEN)))
		return rc;
	p = out->data + out->len;
	put_be16(p, CHANNEL_COOKIE_REPLY_LEN);
	p += CHANNEL_FRAME_HDR;
	if (ch->guard->test_nonce)
		memcpy(p, ch->guard->test_nonce, CHANNEL_COOKIE_NONCE_LEN);
	else
		randombytes_buf(p, CHANNEL_COOKIE_NONCE_LEN);
	cookie_for(ch->guard, ch->src, ch->src_len, cookie);
	/* Associated data: the mac1 it answers, so that only the sender of
	 * that message 1 takes it. */
	crypto_aead_xchacha20poly1305_ietf_encrypt(
	    p + CHANNEL_COOKIE_NONCE_LEN, &n, cookie, sizeof(cookie),
	    ch->hs_frame + CHANNEL_NOISE_MSG1_LEN, CHANNEL_MAC_LEN, NULL, p,
	    ch->cookie_key);
	sodium_memzero(cookie, sizeof(cookie));
	out->len += CHANNEL_FRAME_HDR + CHANNEL_COOKIE_REPLY_LEN;
	ch->cookie_sent = 1;
	return 0;
}

/* The cheap checks in front of the Diffie-Hellman: mac1, then mac2 and
 * the admit callback. Returns 0 to go on, CHANNEL_COOKIE if a cookie reply
 * went out, or the failure (ch->failure set). */
static int guard_msg1(struct channel *ch, struct channel_buf *out)
{
	const uint8_t *m = ch->hs_frame;
	uint8_t want[CHANNEL_MAC_LEN], cookie[CHANNEL_COOKIE_LEN];
	int mac2_ok = 0, rc;

	mac16(want, ch->mac1_key, sizeof(ch->mac1_key), m,
	      CHANNEL_NOISE_MSG1_LEN);
	if (sodium_memcmp(want, m + CHANNEL_NOISE_MSG1_LEN, CHANNEL_MAC_LEN)) {
		ch->failure = CHANNEL_FAIL_MAC;
		return MSCE_EAUTH;
	}
	if (ch->guard && ch->src_len) {
		cookie_for(ch->guard, ch->src, ch->src_len, cookie);
		mac16(want, cookie, sizeof(cookie), m,
		      CHANNEL_NOISE_MSG1_LEN + CHANNEL_MAC_LEN);
		mac2_ok = !sodium_memcmp(
		    want, m + CHANNEL_NOISE_MSG1_LEN + CHANNEL_MAC_LEN,
		    CHANNEL_MAC_LEN);
		sodium_memzero(cookie, sizeof(cookie));
	}
	rc = ch->cb.admit ? ch->cb.admit(ch->cb.ctx, mac2_ok) : 0;
	if (rc == CHANNEL_COOKIE) {
		/* One cookie per connection: an initiator that ignores it
		 * gets no second. */
		if (!ch->guard || !ch->src_len || ch->cookie_sent) {
			ch->failure = CHANNEL_FAIL_ADMIT;
			return MSCE_EBUSY;
		}
		if ((rc = send_cookie(ch, out))) {
			ch->failure = CHANNEL_FAIL_LOCAL;
			return rc;
		}
		return CHANNEL_COOKIE;
	}
	if (rc)
		ch->failure = CHANNEL_FAIL_ADMIT;
	return rc;
}

static int on_msg1(struct channel *ch, struct channel_buf *out)
{
	uint8_t ts[CHANNEL_TIMESTAMP_LEN];
	size_t n;
	int rc;

	rc = guard_msg1(ch, out);
	if (rc == CHANNEL_COOKIE)
		return 0; /* message 1 again, with mac2 */
	if (rc)
		return channel_fail_at(ch, ch->failure, rc);
	rc = noise_handshake_init(&ch->hs, NOISE_RESPONDER, ch->prologue,
				  ch->prologue_len, ch->local, NULL,
				  ch->test_ephemeral);
	if (rc)
		return channel_fail(ch, rc);
	ch->hs_ready = 1;
	rc = noise_handshake_read_message(&ch->hs, ch->hs_frame,
					  CHANNEL_NOISE_MSG1_LEN, ts,
					  sizeof(ts), &n);
	if (rc)
		return channel_fail_at(ch, CHANNEL_FAIL_HANDSHAKE, rc);
	memcpy(ch->remote_key, noise_handshake_remote_static(&ch->hs),
	       NOISE_KEY_LEN);
	ch->have_remote = 1;
	ch->remote_timestamp_ms = get_be64(ts);
	/* The caller decides before anything is allocated for this peer. */
	rc = ch->cb.verify(ch->cb.ctx, ch->remote_key, ch->remote_timestamp_ms);
	if (rc)
		return channel_fail_at(ch, CHANNEL_FAIL_VERIFY, rc);
	if ((rc = write_handshake(ch, NULL, 0, CHANNEL_MSG2_LEN, out)) ||
	    (rc = open_channel(ch)))
		return channel_fail(ch, rc);
	return 0;
}

static int write_confirm(struct channel *ch, struct channel_buf *out);

/* Message 2, or a cookie reply: then message 1 goes again with mac2. */
static int on_msg2(struct channel *ch, struct channel_buf *out)
{
	uint8_t empty[1];
	unsigned long long n;
	size_t len;
	int rc;

	if (ch->frame_len == CHANNEL_COOKIE_REPLY_LEN) {
		const uint8_t *p = ch->hs_frame;

		if (ch->cookie_received)
			return channel_fail_at(ch, CHANNEL_FAIL_HANDSHAKE,
					       MSCE_EPROTO);
		if (crypto_aead_xchacha20poly1305_ietf_decrypt(
			ch->cookie, &n, NULL, p + CHANNEL_COOKIE_NONCE_LEN,
			CHANNEL_COOKIE_LEN + NOISE_TAG_LEN,
			ch->msg1 + CHANNEL_NOISE_MSG1_LEN, CHANNEL_MAC_LEN, p,
			ch->cookie_key) != 0)
			return channel_fail_at(ch, CHANNEL_FAIL_HANDSHAKE,
					       MSCE_EAUTH);
		ch->have_cookie = ch->cookie_received = 1;
		if (!out) /* nowhere to send message 1 again */
			return channel_fail_at(ch, CHANNEL_FAIL_ADMIT,
					       MSCE_EBUSY);
		set_mac2(ch);
		if ((rc = send_msg1(ch, out)))
			return channel_fail(ch, rc);
		return 0;
	}
	rc = noise_handshake_read_message(&ch->hs, ch->hs_frame, ch->frame_len,
					  empty, sizeof(empty), &len);
	if (rc)
		return channel_fail_at(ch, CHANNEL_FAIL_HANDSHAKE, rc);
	if ((rc = open_channel(ch)))
		return channel_fail(ch, rc);
	/* Message 2 proved the responder; we owe it the same proof. */
	ch->confirmed = 1;
	ch->confirm_owed = 1;
	if (out && (rc = write_confirm(ch, out)))
		return channel_fail(ch, rc);
	return 0;
}

static int deliver(struct channel *ch, const uint8_t *msg, size_t len)
{
	int rc;

	ch->stats.messages_received++;
	ch->stats.bytes_received += len;
	rc = ch->cb.message(ch->cb.ctx, len ? msg : NULL, len);
	if (rc)
		return channel_fail_at(ch, CHANNEL_FAIL_CALLBACK, rc);
	/* The callback may have killed the channel through channel_send. */
	return ch->state == CHANNEL_DEAD ? ch->err : 0;
}

static int asm_append(struct channel *ch, const uint8_t *data, size_t len)
{
	size_t need, cap;
	uint8_t *p;

	if (len > ch->max_receive - ch->asm_len) {
		ch->failure = CHANNEL_FAIL_LIMIT;
		return MSCE_ETOOBIG;
	}
	need = ch->asm_len + len;
	if (need > ch->asm_cap) {
		struct channel_budget *b;

		cap = ch->asm_cap ? ch->asm_cap : ASM_MIN;
		while (cap < need)
			cap = cap > SIZE_MAX / 2 ? need : cap * 2;
		if (cap > ch->max_receive)
			cap = ch->max_receive;
		/* The growth must fit what all channels share. */
		for (b = ch->budget; b != NULL; b = b->parent)
			if (b->used > b->limit ||
			    cap - ch->asm_cap > b->limit - b->used) {
				b->refusals++;
				ch->refused_by = b;
				ch->failure = CHANNEL_FAIL_BUDGET;
				return MSCE_EBUSY;
			}
		p = realloc(ch->asm_buf, cap);
		if (!p) {
			ch->failure = CHANNEL_FAIL_LOCAL;
			return MSCE_ENOMEM;
		}
		budget_add(ch->budget, cap - ch->asm_cap);
		ch->asm_buf = p;
		ch->asm_cap = cap;
	}
	if (len)
		memcpy(ch->asm_buf + ch->asm_len, data, len);
	ch->asm_len = need;
	return 0;
}

static int on_transport(struct channel *ch)
{
	uint8_t flags, *data;
	size_t n, len;
	int rc;

	rc = noise_cipher_decrypt(&ch->rx, NULL, 0, ch->frame, ch->frame_len,
				  ch->frame, NOISE_MAX_MSG, &n);
	if (rc)
		return channel_fail_at(ch, ch->confirmed ? CHANNEL_FAIL_TRANSPORT
							 : CHANNEL_FAIL_CONFIRM,
				       rc);
	flags = ch->frame[0];
	data = ch->frame + 1;
	len = n - 1;
	if (!ch->confirmed) {
		/* The responder's first transport message: the confirmation,
		 * and nothing else. */
		if (flags != CHANNEL_F_CONTROL || len)
			return channel_fail_at(ch, CHANNEL_FAIL_CONFIRM,
					       MSCE_EPROTO);
		ch->confirmed = 1;
		return 0;
	}
	if (flags & ~CHANNEL_F_KNOWN)
		return channel_fail_at(ch, CHANNEL_FAIL_TRANSPORT, MSCE_EPROTO);
	if (flags & CHANNEL_F_REKEY) {
		noise_cipher_rekey(&ch->rx);
		ch->stats.rekeys_received++;
	}
	if (flags & CHANNEL_F_CONTROL)
		return len || (flags & CHANNEL_F_MORE)
			   ? channel_fail_at(ch, CHANNEL_FAIL_TRANSPORT,
					     MSCE_EPROTO)
			   : 0;

	if (!ch->assembling && !(flags & CHANNEL_F_MORE)) {
		/* Whole message in one fragment: no copy. */
		if (len > ch->max_receive)
			return channel_fail_at(ch, CHANNEL_FAIL_LIMIT,
					       MSCE_ETOOBIG);
		return deliver(ch, data, len);
	}
	if ((rc = asm_append(ch, data, len)))
		return channel_fail_at(ch, ch->failure, rc);
	ch->assembling = 1;
	if (flags & CHANNEL_F_MORE)
		return 0;
	ch->assembling = 0;
	len = ch->asm_len;
	ch->asm_len = 0;
	if ((rc = deliver(ch, ch->asm_buf, len)))
		return rc;
	/* Under a budget only unfinished messages hold memory. */
	if (ch->asm_cap > ASM_KEEP || ch->budget)
		asm_free(ch);
	return 0;
}

/* Frame lengths are checked as soon as the 2-byte prefix is in, before any
 * body byte is buffered. */
static int check_frame_len(const struct channel *ch, size_t len)
{
	switch (ch->state) {
	case CHANNEL_WAIT_MSG1:
		return len == CHANNEL_MSG1_LEN ? 0 : MSCE_EPROTO;
	case CHANNEL_WAIT_MSG2:
		return len == CHANNEL_MSG2_LEN ||
			       (len == CHANNEL_COOKIE_REPLY_LEN &&
				!ch->cookie_received)
			   ? 0
			   : MSCE_EPROTO;
	case CHANNEL_OPEN:
		if (!ch->confirmed)
			return len == CHANNEL_MIN_TRANSPORT ? 0 : MSCE_EPROTO;
		return len >= CHANNEL_MIN_TRANSPORT ? 0 : MSCE_EPROTO;
	default:
		return MSCE_EPROTO; /* the peer spoke before message 1 */
	}
}

/* Handles a complete frame; on failure the channel is dead and its code
 * returned. */
static int on_frame(struct channel *ch, struct channel_buf *out)
{
	switch (ch->state) {
	case CHANNEL_WAIT_MSG1:
		return on_msg1(ch, out);
	case CHANNEL_WAIT_MSG2:
		return on_msg2(ch, out);
	case CHANNEL_OPEN:
		return on_transport(ch);
	default:
		return channel_fail_at(ch, CHANNEL_FAIL_FRAME, MSCE_EPROTO);
	}
}

int channel_feed(struct channel *ch, const uint8_t *in, size_t len,
		 struct channel_buf *out)
{
	int rc;

	if (ch->state == CHANNEL_DEAD)
		return ch->err;
	if ((len && !in) || (ch->state == CHANNEL_WAIT_MSG1 && !out))
		return MSCE_EINVAL;
	while (len) {
		uint8_t *buf;
		size_t take;

		if (ch->hdr_have < CHANNEL_FRAME_HDR) {
			ch->hdr[ch->hdr_have++] = *in++;
			len--;
			if (ch->hdr_have < CHANNEL_FRAME_HDR)
				continue;
			ch->frame_len = (size_t)ch->hdr[0] << 8 | ch->hdr[1];
			ch->frame_have = 0;
			if ((rc = check_frame_len(ch, ch->frame_len)))
				return channel_fail_at(
				    ch,
				    ch->state == CHANNEL_OPEN && !ch->confirmed
					? CHANNEL_FAIL_CONFIRM
					: CHANNEL_FAIL_FRAME,
				    rc);
			continue;
		}
		buf = ch->state == CHANNEL_OPEN ? ch->frame : ch->hs_frame;
		take = ch->frame_len - ch->frame_have;
		if (take > len)
			take = len;
		memcpy(buf + ch->frame_have, in, take);
		ch->frame_have += take;
		in += take;
		len -= take;
		if (ch->frame_have < ch->frame_len)
			break;
		ch->hdr_have = 0;
		if ((rc = on_frame(ch, out)))
			return rc;
	}
	return 0;
}

size_t channel_frame_left(const struct channel *ch)
{
	if (ch->state == CHANNEL_DEAD)
		return 0;
	if (ch->hdr_have < CHANNEL_FRAME_HDR)
		return CHANNEL_FRAME_HDR - ch->hdr_have;
	return ch->frame_len - ch->frame_have;
}

/* Encrypts flags + data into one frame at the end of out, which the caller
 * has reserved. */
static void write_fragment(struct channel *ch, uint8_t flags,
			   const uint8_t *data, size_t len,
			   struct channel_buf *out)
{
	uint8_t *p = out->data + out->len;
	uint8_t *pt = p + CHANNEL_FRAME_HDR;
	size_t n = 0;

	pt[0] = flags;
	if (len)
		memcpy(pt + 1, data, len);
	/* Cannot fail: key present, size and nonce checked by the callers. */
	noise_cipher_encrypt(&ch->tx, NULL, 0, pt, len + 1, pt,
			     out->cap - out->len - CHANNEL_FRAME_HDR, &n);
	put_be16(p, n);
	out->len += CHANNEL_FRAME_HDR + n;
	ch->tx_since_rekey += len + 1;
	if (flags & CHANNEL_F_REKEY) {
		noise_cipher_rekey(&ch->tx);
		ch->tx_since_rekey = 0;
		ch->stats.rekeys_sent++;
	}
}

#define FRAME_OVERHEAD (CHANNEL_FRAME_HDR + 1 + NOISE_TAG_LEN)

/* The initiator's first transport message: an empty control message that
 * proves to the responder we hold the session keys. */
static int write_confirm(struct channel *ch, struct channel_buf *out)
{
	int rc;

	if (!ch->confirm_owed)
		return 0;
	if ((rc = buf_reserve(out, FRAME_OVERHEAD)))
		return rc;
	write_fragment(ch, CHANNEL_F_CONTROL, NULL, 0, out);
	ch->confirm_owed = 0;
	return 0;
}

int channel_send(struct channel *ch, const uint8_t *msg, size_t len,
		 struct channel_buf *out)
{
	size_t nfrag, off = 0;
	int rc;

	if (ch->state == CHANNEL_DEAD)
		return ch->err;
	if (ch->state != CHANNEL_OPEN)
		return MSCE_EBUSY;
	if (!out || (len && !msg))
		return MSCE_EINVAL;
	if (len > ch->max_message)
		return MSCE_ETOOBIG;
	nfrag = len ? (len - 1) / CHANNEL_MAX_FRAGMENT + 1 : 1;
	/* Every fragment needs a nonce below 2^64-1; check all up front so a
	 * message is never cut short. */
	if (nfrag > NOISE_NONCE_MAX - ch->tx.n)
		return channel_fail(ch, MSCE_ECLOSED);
	if ((rc = buf_reserve(out, len + (nfrag + 1) * FRAME_OVERHEAD)))
		return rc;
	write_confirm(ch, out); /* reserved above: cannot fail */
	do {
		size_t chunk = len - off;
		uint8_t flags = 0;

		if (chunk > CHANNEL_MAX_FRAGMENT) {
			chunk = CHANNEL_MAX_FRAGMENT;
			flags |= CHANNEL_F_MORE;
		}
		if (ch->tx_since_rekey + chunk + 1 >= ch->rekey_bytes)
			flags |= CHANNEL_F_REKEY;
		write_fragment(ch, flags, msg ? msg + off : NULL, chunk, out);
		off += chunk;
	} while (off < len);
	ch->stats.messages_sent++;
	ch->stats.bytes_sent += len;
	return 0;
}

enum channel_due channel_rekey_due(const struct channel *ch, uint64_t now_ms)
{
	if (ch->state != CHANNEL_OPEN)
		return CHANNEL_KEEP;
	if (ch->tx.n >= CHANNEL_RENEW_NONCE)
		return CHANNEL_RENEW;
	if (ch->tx_since_rekey >= ch->rekey_bytes ||
	    (now_ms > ch->last_rekey_ms &&
	     now_ms - ch->last_rekey_ms >= ch->rekey_ms))
		return CHANNEL_REKEY;
	return CHANNEL_KEEP;
}

int channel_rekey(struct channel *ch, uint64_t now_ms, struct channel_buf *out)
{
	int rc;

	if (ch->state == CHANNEL_DEAD)
		return ch->err;
	if (ch->state != CHANNEL_OPEN)
		return MSCE_EBUSY;
	if (!out)
		return MSCE_EINVAL;
	if (ch->tx.n == NOISE_NONCE_MAX)
		return channel_fail(ch, MSCE_ECLOSED);
	if ((rc = buf_reserve(out, 2 * FRAME_OVERHEAD)))
		return rc;
	write_confirm(ch, out);
	write_fragment(ch, CHANNEL_F_CONTROL | CHANNEL_F_REKEY, NULL, 0, out);
	ch->last_rekey_ms = now_ms;
	return 0;
}

int channel_is_open(const struct channel *ch)
{
	return ch->state == CHANNEL_OPEN;
}

int channel_is_confirmed(const struct channel *ch)
{
	return ch->state == CHANNEL_OPEN && ch->confirmed;
}

int channel_error(const struct channel *ch)
{
	return ch->state == CHANNEL_DEAD ? ch->err : 0;
}

enum channel_failure channel_failure(const struct channel *ch)
{
	return ch->state == CHANNEL_DEAD ? ch->failure : CHANNEL_FAIL_NONE;
}

int channel_cookie(const struct channel *ch, uint8_t out[CHANNEL_COOKIE_LEN])
{
	if (!ch->cookie_received || ch->state == CHANNEL_DEAD)
		return MSCE_ENOTFOUND;
	memcpy(out, ch->cookie, CHANNEL_COOKIE_LEN);
	return 0;
}

const uint8_t *channel_remote_key(const struct channel *ch)
{
	return ch->have_remote ? ch->remote_key : NULL;
}

const uint8_t *channel_handshake_hash(const struct channel *ch)
{
	return ch->state == CHANNEL_OPEN ? ch->hash : NULL;
}

void channel_destroy(struct channel *ch)
{
	noise_handshake_destroy(&ch->hs);
	noise_cipher_destroy(&ch->tx);
	noise_cipher_destroy(&ch->rx);
	free(ch->frame);
	asm_free(ch);
	sodium_memzero(ch, sizeof(*ch));
}

void channel_guard_init(struct channel_guard *g, uint64_t now_ms)
{
	memset(g, 0, sizeof(*g));
	randombytes_buf(g->secret, sizeof(g->secret));
	g->born_ms = now_ms;
}

void channel_guard_tick(struct channel_guard *g, uint64_t now_ms)
{
	if (now_ms >= g->born_ms &&
	    now_ms - g->born_ms < CHANNEL_COOKIE_SECRET_MS)
		return;
	randombytes_buf(g->secret, sizeof(g->secret));
	g->born_ms = now_ms;
}

void channel_guard_destroy(struct channel_guard *g)
{
	sodium_memzero(g, sizeof(*g));
}

/* Marks t taken in r's window; 1 (nothing changed) if it was, or if it
 * is older than the window. */
static int replay_take(struct channel_replay_entry *r, uint64_t t)
{
	const uint64_t w = CHANNEL_REPLAY_WINDOW_MS;
	uint64_t bit = t % w;

	if (t > r->last_ms) {
		/* Slide: the milliseconds after the old newest are not taken. */
		if (t - r->last_ms >= w) {
			memset(r->seen, 0, sizeof r->seen);
		} else {
			for (uint64_t u = r->last_ms + 1; u < t; u++)
				r->seen[(u % w) / 64] &= ~(1ull << (u % 64));
		}
		r->last_ms = t;
	} else if (r->last_ms - t >= w ||
		   (r->seen[bit / 64] & (1ull << (bit % 64)))) {
		return 1;
	}
	r->seen[bit / 64] |= 1ull << (bit % 64);
	return 0;
}

int channel_replay_check(struct channel_replay_entry *table, size_t n,
			 const uint8_t key[NOISE_KEY_LEN],
			 uint64_t timestamp_ms, uint64_t now_ms,
			 uint64_t max_skew_ms, size_t *index)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (memcmp(table[i].key, key, NOISE_KEY_LEN) == 0)
			break;
	if (i == n)
		return MSCE_EPERM;
	if (index) /* the key's entry, also when refused below */
		*index = i;
	if ((timestamp_ms > now_ms && timestamp_ms - now_ms > max_skew_ms) ||
	    (now_ms > timestamp_ms && now_ms - timestamp_ms > max_skew_ms))
		return MSCE_ECLOCK;
	if (replay_take(&table[i], timestamp_ms))
		return MSCE_EAUTH;
	return 0;
}
