/* The msce secure channel (wire format: docs/PROTOCOL.md "Secure channel").
 *
 * Happy path: the initiator sends message 1 (its timestamp), the responder
 * checks the initiator's key and timestamp through the verify callback,
 * answers with message 2, and both split into a send and a receive cipher.
 * From then on every frame is one transport message whose plaintext is a
 * flags byte and up to CHANNEL_MAX_FRAGMENT bytes of an application
 * message; fragments are reassembled up to max_message bytes.
 *
 * Failure modes: before the handshake only frames of the exact message 1 or
 * message 2 length are accepted, read into a buffer inside the struct, so
 * garbage costs nothing. Afterwards a frame is at most 65535 bytes by its
 * 2-byte length, and the reassembly buffer grows only after checking the
 * total against max_message. Any error kills the channel: keys are wiped,
 * buffers freed, and the code is returned by every later call. */
#include "channel.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "version.h"

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

/* Kills the channel: wipes every key, frees every buffer, keeps the code.
 * Idempotent, so the first cause is the one reported. */
static int channel_fail(struct channel *ch, int code)
{
	if (ch->state == CHANNEL_DEAD)
		return ch->err;
	ch->state = CHANNEL_DEAD;
	ch->err = code ? code : MSCE_EPROTO;
	noise_handshake_destroy(&ch->hs);
	noise_cipher_destroy(&ch->tx);
	noise_cipher_destroy(&ch->rx);
	free(ch->frame);
	ch->frame = NULL;
	free(ch->asm_buf);
	ch->asm_buf = NULL;
	ch->asm_len = ch->asm_cap = 0;
	ch->assembling = 0;
	return ch->err;
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
	if ((rc = channel_prologue(cfg->cluster, prologue, sizeof(prologue),
				   &plen)))
		return rc;
	rc =
	    noise_handshake_init(&ch->hs, cfg->role, prologue, plen, cfg->local,
				 cfg->remote_key, cfg->test_ephemeral);
	if (rc)
		return rc;
	ch->role = cfg->role;
	ch->state = initiator ? CHANNEL_NEW : CHANNEL_WAIT_MSG1;
	if (initiator) {
		memcpy(ch->remote_key, cfg->remote_key, NOISE_KEY_LEN);
		ch->have_remote = 1;
	}
	ch->cb = cfg->cb;
	ch->max_message =
	    cfg->max_message ? cfg->max_message : CHANNEL_DEFAULT_MAX_MESSAGE;
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

int channel_start(struct channel *ch, struct channel_buf *out)
{
	uint8_t ts[CHANNEL_TIMESTAMP_LEN];
	int rc;

	if (ch->state == CHANNEL_DEAD)
		return ch->err;
	if (ch->state != CHANNEL_NEW || !out)
		return MSCE_EINVAL;
	put_be64(ts, ch->start_ms);
	rc = write_handshake(ch, ts, sizeof(ts), CHANNEL_MSG1_LEN, out);
	if (rc)
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
	ch->state = CHANNEL_OPEN;
	return 0;
}

static int on_msg1(struct channel *ch, struct channel_buf *out)
{
	uint8_t ts[CHANNEL_TIMESTAMP_LEN];
	size_t n;
	int rc;

	rc = noise_handshake_read_message(&ch->hs, ch->hs_frame, ch->frame_len,
					  ts, sizeof(ts), &n);
	if (rc)
		return rc;
	memcpy(ch->remote_key, noise_handshake_remote_static(&ch->hs),
	       NOISE_KEY_LEN);
	ch->have_remote = 1;
	ch->remote_timestamp_ms = get_be64(ts);
	/* The caller decides before anything is allocated for this peer. */
	rc = ch->cb.verify(ch->cb.ctx, ch->remote_key, ch->remote_timestamp_ms);
	if (rc)
		return rc;
	if ((rc = write_handshake(ch, NULL, 0, CHANNEL_MSG2_LEN, out)))
		return rc;
	return open_channel(ch);
}

static int on_msg2(struct channel *ch)
{
	uint8_t empty[1];
	size_t n;
	int rc;

	rc = noise_handshake_read_message(&ch->hs, ch->hs_frame, ch->frame_len,
					  empty, sizeof(empty), &n);
	if (rc)
		return rc;
	return open_channel(ch);
}

static int deliver(struct channel *ch, const uint8_t *msg, size_t len)
{
	int rc;

	ch->stats.messages_received++;
	ch->stats.bytes_received += len;
	rc = ch->cb.message(ch->cb.ctx, len ? msg : NULL, len);
	if (rc)
		return rc;
	/* The callback may have killed the channel through channel_send. */
	return ch->state == CHANNEL_DEAD ? ch->err : 0;
}

static int asm_append(struct channel *ch, const uint8_t *data, size_t len)
{
	size_t need, cap;
	uint8_t *p;

	if (len > ch->max_message - ch->asm_len)
		return MSCE_ETOOBIG;
	need = ch->asm_len + len;
	if (need > ch->asm_cap) {
		cap = ch->asm_cap ? ch->asm_cap : ASM_MIN;
		while (cap < need)
			cap = cap > SIZE_MAX / 2 ? need : cap * 2;
		if (cap > ch->max_message)
			cap = ch->max_message;
		p = realloc(ch->asm_buf, cap);
		if (!p)
			return MSCE_ENOMEM;
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
		return rc;
	flags = ch->frame[0];
	data = ch->frame + 1;
	len = n - 1;
	if (flags & ~CHANNEL_F_KNOWN)
		return MSCE_EPROTO;
	if (flags & CHANNEL_F_REKEY) {
		noise_cipher_rekey(&ch->rx);
		ch->stats.rekeys_received++;
	}
	if (flags & CHANNEL_F_CONTROL)
		return len || (flags & CHANNEL_F_MORE) ? MSCE_EPROTO : 0;

	if (!ch->assembling && !(flags & CHANNEL_F_MORE)) {
		/* Whole message in one fragment: no copy. */
		if (len > ch->max_message)
			return MSCE_ETOOBIG;
		return deliver(ch, data, len);
	}
	if ((rc = asm_append(ch, data, len)))
		return rc;
	ch->assembling = 1;
	if (flags & CHANNEL_F_MORE)
		return 0;
	ch->assembling = 0;
	len = ch->asm_len;
	ch->asm_len = 0;
	if ((rc = deliver(ch, ch->asm_buf, len)))
		return rc;
	if (ch->asm_cap > ASM_KEEP) {
		free(ch->asm_buf);
		ch->asm_buf = NULL;
		ch->asm_cap = 0;
	}
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
		return len == CHANNEL_MSG2_LEN ? 0 : MSCE_EPROTO;
	case CHANNEL_OPEN:
		return len >= CHANNEL_MIN_TRANSPORT ? 0 : MSCE_EPROTO;
	default:
		return MSCE_EPROTO; /* the peer spoke before message 1 */
	}
}

static int on_frame(struct channel *ch, struct channel_buf *out)
{
	switch (ch->state) {
	case CHANNEL_WAIT_MSG1:
		return on_msg1(ch, out);
	case CHANNEL_WAIT_MSG2:
		return on_msg2(ch);
	case CHANNEL_OPEN:
		return on_transport(ch);
	default:
		return MSCE_EPROTO;
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
				return channel_fail(ch, rc);
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
			return channel_fail(ch, rc);
	}
	return 0;
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
	if ((rc = buf_reserve(out, len + nfrag * FRAME_OVERHEAD)))
		return rc;
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
	if ((rc = buf_reserve(out, FRAME_OVERHEAD)))
		return rc;
	write_fragment(ch, CHANNEL_F_CONTROL | CHANNEL_F_REKEY, NULL, 0, out);
	ch->last_rekey_ms = now_ms;
	return 0;
}

int channel_is_open(const struct channel *ch)
{
	return ch->state == CHANNEL_OPEN;
}

int channel_error(const struct channel *ch)
{
	return ch->state == CHANNEL_DEAD ? ch->err : 0;
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
	free(ch->asm_buf);
	memset(ch, 0, sizeof(*ch));
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
	if ((timestamp_ms > now_ms && timestamp_ms - now_ms > max_skew_ms) ||
	    (now_ms > timestamp_ms && now_ms - timestamp_ms > max_skew_ms))
		return MSCE_ECLOCK;
	if (timestamp_ms <= table[i].last_ms)
		return MSCE_EAUTH;
	table[i].last_ms = timestamp_ms;
	if (index)
		*index = i;
	return 0;
}
