/* SPDX-License-Identifier: Apache-2.0 */
/* The msce secure channel: Noise IK (noise.h) plus framing, fragmentation,
 * replay protection of message 1, the cheap MACs and cookie replies that
 * keep junk and floods away from the Diffie-Hellman, confirmation of the
 * session by the initiator, and in-band rekeying. Pure bytes in, bytes
 * out: no sockets, no clock (time is passed in), no libuv.
 * docs/PROTOCOL.md "Secure channel" is the wire specification.
 *
 * Use:
 *   initiator: channel_init, channel_start (message 1 into out), then
 *              channel_feed what the socket gives until channel_is_open,
 *              passing out: a cookie reply makes the channel send message 1
 *              again, and once open it owes the responder a confirmation
 *              (sent at once into out, or before the first channel_send);
 *   responder: channel_init, channel_feed (mac1 is checked first, then the
 *              admit callback may ask for a cookie, then the verify callback
 *              sees the initiator's key and timestamp; message 2 goes into
 *              out); the session is the initiator's once
 *              channel_is_confirmed.
 *   both:      channel_send to encrypt, channel_feed to decrypt (complete
 *              application messages arrive through the message callback),
 *              channel_rekey_due on a timer, channel_destroy at the end.
 *
 * Any error from channel_feed (bad frame, failed decryption, protocol
 * violation, refused key, a callback's refusal; not MSCE_EINVAL for a
 * misuse) kills the channel: its keys are wiped and every later call returns
 * the same code. The link must then be closed; a new connection starts a new
 * handshake. */
#ifndef MSCE_CHANNEL_H
#define MSCE_CHANNEL_H

#include <stddef.h>
#include <stdint.h>

#include "noise.h"

#define CHANNEL_MAX_CLUSTER 64 /* bytes of cluster name in the prologue */
#define CHANNEL_PROLOGUE_MAX (16 + CHANNEL_MAX_CLUSTER)
#define CHANNEL_FRAME_HDR 2 /* big-endian length before each Noise message */
#define CHANNEL_TIMESTAMP_LEN 8
#define CHANNEL_MAC_LEN 16    /* mac1, mac2: BLAKE2b-128 */
#define CHANNEL_COOKIE_LEN 16 /* what mac2 is keyed with */
/* Message 1: the Noise message, then mac1 and mac2. */
#define CHANNEL_NOISE_MSG1_LEN (NOISE_IK_MSG1_OVERHEAD + CHANNEL_TIMESTAMP_LEN)
#define CHANNEL_MSG1_LEN (CHANNEL_NOISE_MSG1_LEN + 2 * CHANNEL_MAC_LEN)
#define CHANNEL_MSG2_LEN NOISE_IK_MSG2_OVERHEAD
/* Cookie reply: nonce (24) and the cookie encrypted (16 + tag). */
#define CHANNEL_COOKIE_NONCE_LEN 24
#define CHANNEL_COOKIE_REPLY_LEN                                               \
	(CHANNEL_COOKIE_NONCE_LEN + CHANNEL_COOKIE_LEN + NOISE_TAG_LEN)
/* A responder draws a new cookie secret this often; an initiator uses a
 * cookie for a little less. */
#define CHANNEL_COOKIE_SECRET_MS (UINT64_C(120) * 1000)
#define CHANNEL_COOKIE_USE_MS (UINT64_C(110) * 1000)
/* Source address bytes a cookie is bound to (IPv4 4, IPv6 16). */
#define CHANNEL_MAX_SRC 16
/* Application bytes in one transport message: 65535 - tag - flags byte. */
#define CHANNEL_MAX_FRAGMENT (NOISE_MAX_MSG - NOISE_TAG_LEN - 1)
#define CHANNEL_MIN_TRANSPORT (NOISE_TAG_LEN + 1)

/* Transport plaintext flags (first byte). */
#define CHANNEL_F_MORE 0x01    /* more fragments of this message follow */
#define CHANNEL_F_REKEY 0x02   /* sender rekeyed after this transport message */
#define CHANNEL_F_CONTROL 0x04 /* no application data (rekey/keepalive) */
#define CHANNEL_F_KNOWN (CHANNEL_F_MORE | CHANNEL_F_REKEY | CHANNEL_F_CONTROL)

#define CHANNEL_DEFAULT_MAX_MESSAGE (4u << 20)		 /* 4 MiB */
#define CHANNEL_DEFAULT_REKEY_BYTES (UINT64_C(1) << 30)	 /* 1 GiB */
#define CHANNEL_DEFAULT_REKEY_MS (UINT64_C(3600) * 1000) /* 1 hour */
/* Past this send nonce the channel asks for a new handshake. */
#define CHANNEL_RENEW_NONCE (UINT64_MAX - (UINT64_C(1) << 32))
/* Replay window for message 1 timestamps (DESIGN: max_clock_skew). */
#define CHANNEL_DEFAULT_MAX_SKEW_MS (UINT64_C(60) * 1000)

/* What an admit callback returns to answer message 1 with a cookie reply;
 * not an MSCE_E* code. */
#define CHANNEL_COOKIE (-1)

/* Growable byte buffer for wire output. The caller owns it (zero it before
 * first use); the channel appends with realloc. The caller may consume
 * data[0..len) and reset len to 0, or take data and zero the struct. */
struct channel_buf {
	uint8_t *data;
	size_t len;
	size_t cap;
};

/* Frees data and zeroes b. */
void channel_buf_free(struct channel_buf *b);

struct channel_cb {
	/* Responder only, optional: message 1 carries a valid mac1 (it was
	 * made for this responder, cluster and channel version), and nothing
	 * but two hashes has been spent on it. mac2_ok says whether its mac2
	 * proves a cookie this responder gave to the connection's source
	 * address. Return 0 to go on with the Diffie-Hellman, CHANNEL_COOKIE
	 * to answer with a cookie reply instead (once per connection; the
	 * initiator sends message 1 again with mac2), or an MSCE_E* code to
	 * refuse. Without the callback every message 1 goes on. */
	int (*admit)(void *ctx, int mac2_ok);
	/* Responder only, required: the initiator's static public key and the
	 * timestamp (unix ms) from message 1, both authenticated. Called before
	 * the channel allocates anything for the session. Return 0 to accept or
	 * an MSCE_E* code to refuse (channel_replay_check does the usual
	 * checks). key points into the channel, valid during the call. */
	int (*verify)(void *ctx, const uint8_t key[NOISE_KEY_LEN],
		      uint64_t timestamp_ms);
	/* A complete application message. msg is owned by the channel and valid
	 * only during the call (NULL when len is 0). Return 0 to go on, or an
	 * MSCE_E* code to stop: channel_feed returns it and the channel dies.
	 * The callback may call channel_send, but must not feed or destroy the
	 * channel. */
	int (*message)(void *ctx, const uint8_t *msg, size_t len);
	void *ctx; /* passed back as is; owned by the caller */
};

/* A responder's cookie secret, shared by every connection of a listener
 * (caller-owned; channel_guard_init before use). Cookies are
 * MAC(secret, source address): stateless, and worthless after the secret
 * changes, which channel_guard_tick does every CHANNEL_COOKIE_SECRET_MS. */
struct channel_guard {
	uint8_t secret[32];
	uint64_t born_ms;
	const uint8_t *test_nonce; /* tests only: fixed cookie reply nonce */
};

/* Partial-message memory shared by many channels (caller-owned, zeroed,
 * limit set): the reassembly buffers of all of them together stay within
 * limit bytes (a channel under a budget frees its buffer after each
 * message). used is kept by the channels. A budget with a parent (one
 * client key's share of all) draws on both. */
struct channel_budget {
	size_t used, limit;
	uint64_t refusals; /* messages refused for want of budget */
	struct channel_budget *parent; /* optional */
};

struct channel_config {
	enum noise_role role;
	const char *cluster; /* 1..CHANNEL_MAX_CLUSTER bytes of 0x21..0x7e */
	/* Local static key pair. The initiator copies it during channel_init;
	 * the responder borrows it until the handshake is done (so it is
	 * only copied for a message 1 that passed mac1). */
	const struct noise_keypair *local;
	/* Initiator: the responder's static public key (copied); NULL for the
	 * responder. */
	const uint8_t *remote_key;
	/* Initiator, optional: a cookie (CHANNEL_COOKIE_LEN bytes, copied)
	 * this responder gave us less than CHANNEL_COOKIE_USE_MS ago, for
	 * mac2. */
	const uint8_t *cookie;
	/* Responder, optional: the listener's cookie secret (borrowed for the
	 * channel's life) and the source address of the connection (src_len
	 * bytes, at most CHANNEL_MAX_SRC, copied). Without them mac2 never
	 * counts and a cookie cannot be given. */
	const struct channel_guard *guard;
	const uint8_t *src;
	size_t src_len;
	size_t max_message;   /* largest application message; 0 = default */
	/* Largest message this side reassembles (received); 0 = max_message.
	 * A responder's bound on what one connection may pin. */
	size_t max_receive;
	struct channel_budget *budget; /* optional, borrowed for the life */
	uint64_t rekey_bytes; /* plaintext bytes sent per key; 0 = default */
	uint64_t rekey_ms;    /* age of a send key; 0 = default */
	struct channel_cb cb;
	const uint8_t *test_ephemeral; /* tests only: fixed ephemeral key */
};

struct channel_stats {
	uint64_t messages_sent, messages_received;
	uint64_t bytes_sent, bytes_received; /* application bytes */
	uint64_t rekeys_sent, rekeys_received;
};

enum channel_state {
	CHANNEL_NEW = 0,   /* initiator before channel_start */
	CHANNEL_WAIT_MSG1, /* responder */
	CHANNEL_WAIT_MSG2, /* initiator */
	CHANNEL_OPEN,
	CHANNEL_DEAD,
};

/* Where a dead channel failed, for counting refusals by reason. */
enum channel_failure {
	CHANNEL_FAIL_NONE = 0,
	CHANNEL_FAIL_FRAME,	/* a frame length the state does not allow */
	CHANNEL_FAIL_MAC,	/* message 1 with a bad mac1 */
	CHANNEL_FAIL_ADMIT,	/* the admit callback refused, or a second cookie */
	CHANNEL_FAIL_HANDSHAKE, /* a handshake message does not decrypt */
	CHANNEL_FAIL_VERIFY,	/* the verify callback refused */
	CHANNEL_FAIL_CONFIRM,	/* the first transport message is no confirmation */
	CHANNEL_FAIL_TRANSPORT, /* after the handshake: decryption, flags */
	CHANNEL_FAIL_LIMIT,	/* message over max_receive */
	CHANNEL_FAIL_BUDGET,	/* the shared budget is used up */
	CHANNEL_FAIL_CALLBACK,	/* the message callback refused */
	CHANNEL_FAIL_LOCAL,	/* our side: memory, nonces, a misuse */
};

/* Caller-owned; the fields are private to channel.c (tests peek). */
struct channel {
	enum channel_state state;
	int err; /* sticky once dead */
	enum channel_failure failure;
	enum noise_role role;
	struct noise_handshake hs;
	int hs_ready; /* hs initialised (the responder's waits for mac1) */
	struct noise_cipher tx, rx;
	uint8_t hash[NOISE_HASH_LEN];
	uint8_t remote_key[NOISE_KEY_LEN];
	int have_remote;
	uint64_t remote_timestamp_ms;
	uint64_t start_ms;
	struct channel_cb cb;
	size_t max_message, max_receive;
	struct channel_budget *budget;
	const struct channel_budget *refused_by; /* CHANNEL_FAIL_BUDGET */
	uint64_t rekey_bytes, rekey_ms;
	uint64_t tx_since_rekey, last_rekey_ms;

	/* Handshake protection (docs/PROTOCOL.md "Handshake"). */
	uint8_t prologue[CHANNEL_PROLOGUE_MAX];
	size_t prologue_len;
	const struct noise_keypair *local;   /* responder: until message 1 */
	const uint8_t *test_ephemeral;	     /* responder: until message 1 */
	uint8_t mac1_key[32], cookie_key[32]; /* of the responder's key */
	uint8_t cookie[CHANNEL_COOKIE_LEN];
	int have_cookie;	/* initiator: cookie holds one */
	int cookie_received;	/* initiator: it came in this handshake */
	int cookie_sent;	/* responder: one cookie reply per connection */
	const struct channel_guard *guard;
	uint8_t src[CHANNEL_MAX_SRC];
	size_t src_len;
	uint8_t msg1[CHANNEL_MSG1_LEN]; /* initiator: as sent, for a retry */
	int confirmed;	    /* the other side proved it holds the keys */
	int confirm_owed;   /* initiator: confirmation not yet sent */

	/* Receive side: the frame being read. Handshake frames fit in
	 * hs_frame; the 64 KiB transport frame buffer and the reassembly
	 * buffer exist only once the handshake is done. */
	uint8_t hdr[CHANNEL_FRAME_HDR];
	size_t hdr_have;
	size_t frame_len, frame_have;
	uint8_t hs_frame[CHANNEL_MSG1_LEN];
	uint8_t *frame;
	uint8_t *asm_buf;
	size_t asm_len, asm_cap;
	int assembling;

	struct channel_stats stats;
};

/* Sets up ch (caller-owned) from cfg (read during the call only; cb.ctx is
 * kept). now_ms is the current unix time in ms: the initiator sends it in
 * message 1, and both sides time rekeying from it. Allocates the handshake
 * secrets. MSCE_EINVAL for a bad config. On error ch is left destroyed. */
int channel_init(struct channel *ch, const struct channel_config *cfg,
		 uint64_t now_ms);
/* Initiator: appends message 1 (length-prefixed) to out (caller's). */
int channel_start(struct channel *ch, struct channel_buf *out);
/* Takes len received bytes from in (caller's, only read during the call),
 * in any split: partial frames are kept until the rest arrives. Complete
 * application messages are delivered to cb.message before this returns;
 * handshake replies (message 2, a cookie reply, message 1 again after a
 * cookie, the initiator's confirmation) are appended to out (caller's). An
 * initiator may pass NULL: its confirmation then goes out before its first
 * message, but a cookie reply kills it (MSCE_EBUSY: the responder is under
 * load). Returns 0, or the code that killed the channel. */
int channel_feed(struct channel *ch, const uint8_t *in, size_t len,
		 struct channel_buf *out);
/* Bytes that complete the frame being read (its length prefix, or its
 * body): feeding at most this much during the handshake lets the caller
 * act between handshake frames, before any message behind them. */
size_t channel_frame_left(const struct channel *ch);
/* Encrypts one application message (msg, len bytes, caller's, not inside
 * out; NULL if len is 0) and appends its frames to out. MSCE_EBUSY before the
 * handshake is done, MSCE_ETOOBIG over max_message (the channel stays usable),
 * MSCE_ENOMEM if out cannot grow (nothing appended), MSCE_ECLOSED when the
 * nonces are exhausted (the channel dies). Sets the rekey flag on its own
 * once rekey_bytes have been sent under one key. */
int channel_send(struct channel *ch, const uint8_t *msg, size_t len,
		 struct channel_buf *out);

enum channel_due {
	CHANNEL_KEEP = 0,  /* nothing to do */
	CHANNEL_REKEY = 1, /* call channel_rekey */
	CHANNEL_RENEW = 2, /* nonces nearly exhausted: reconnect */
};
/* What the send direction needs at now_ms (unix ms, same clock as
 * channel_init). CHANNEL_KEEP unless the channel is open. */
enum channel_due channel_rekey_due(const struct channel *ch, uint64_t now_ms);
/* Appends a control message with the rekey flag to out and rekeys the send
 * cipher; the peer rekeys its receive cipher when it reads it. */
int channel_rekey(struct channel *ch, uint64_t now_ms, struct channel_buf *out);

int channel_is_open(const struct channel *ch);
/* Whether the other side has proved it holds the session keys: for the
 * initiator once open (message 2 decrypted), for the responder once the
 * initiator's first transport message (the confirmation) decrypted. A
 * replayed message 1 opens a responder's channel but never confirms it. */
int channel_is_confirmed(const struct channel *ch);
/* The sticky error, 0 while alive. */
int channel_error(const struct channel *ch);

/* Moves the channel's reassembly memory to budget b (with its parents),
 * e.g. its key's share once the key is known. */
void channel_set_budget(struct channel *ch, struct channel_budget *b);

/* After CHANNEL_FAIL_BUDGET: the budget (of ch's chain) that was full. */
const struct channel_budget *channel_budget_refused(const struct channel *ch);
/* Where a dead channel failed; CHANNEL_FAIL_NONE while alive. */
enum channel_failure channel_failure(const struct channel *ch);
/* Initiator: the cookie the responder sent in this handshake, copied into
 * out, for mac2 on the next connections; 0, or MSCE_ENOTFOUND if none
 * came. */
int channel_cookie(const struct channel *ch, uint8_t out[CHANNEL_COOKIE_LEN]);
/* The peer's static public key: for the initiator the configured one, for
 * the responder the one from message 1 (NULL before). Points into ch. */
const uint8_t *channel_remote_key(const struct channel *ch);
/* The Noise handshake hash once open (NULL before): a unique session id
 * both sides agree on. Points into ch. */
const uint8_t *channel_handshake_hash(const struct channel *ch);
/* Wipes keys, frees buffers. Safe on a zeroed struct; idempotent. */
void channel_destroy(struct channel *ch);

/* Writes "msce/<MSCE_CHANNEL_VERSION>/<cluster>" into out (caller's, cap
 * bytes, not NUL-terminated); *len gets its length. MSCE_EINVAL for a bad
 * cluster name. */
int channel_prologue(const char *cluster, uint8_t *out, size_t cap,
		     size_t *len);

/* ---- Cookie secret of a responder ---- */

/* Draws a secret; now_ms is the caller's clock (any monotonic ms). */
void channel_guard_init(struct channel_guard *g, uint64_t now_ms);
/* Draws a new secret once the current one is CHANNEL_COOKIE_SECRET_MS
 * old (cookies given before stop counting). Call from a timer. */
void channel_guard_tick(struct channel_guard *g, uint64_t now_ms);
/* Wipes the secret. */
void channel_guard_destroy(struct channel_guard *g);

/* ---- Replay check for message 1 ---- */

/* How far below the newest timestamp accepted from a key an older one is
 * still taken, if not taken before: connections a client opens at once
 * may finish their handshakes in any order. */
#define CHANNEL_REPLAY_WINDOW_MS 1024

/* One known initiator key, the newest timestamp accepted from it, and
 * which of the CHANNEL_REPLAY_WINDOW_MS milliseconds up to it were
 * accepted (bit t % window). The caller owns the table (its allow-list of
 * peers and clients), zeroes it but for the keys at start, and keeps it
 * across connections. */
struct channel_replay_entry {
	uint8_t key[NOISE_KEY_LEN];
	uint64_t last_ms;
	uint64_t seen[CHANNEL_REPLAY_WINDOW_MS / 64];
};

/* The checks a verify callback normally makes: key must be in table
 * (n entries; MSCE_EPERM if not), timestamp_ms within max_skew_ms of
 * now_ms either way (MSCE_ECLOCK), and never accepted from that key
 * before: above the newest accepted, or within the window below it and
 * not yet taken (else MSCE_EAUTH: a replay). On success records
 * timestamp_ms, sets *index (may be NULL) to the entry and returns 0; on
 * refusal changes nothing. */
int channel_replay_check(struct channel_replay_entry *table, size_t n,
			 const uint8_t key[NOISE_KEY_LEN],
			 uint64_t timestamp_ms, uint64_t now_ms,
			 uint64_t max_skew_ms, size_t *index);

#endif
