/* SPDX-License-Identifier: Apache-2.0 */
/* The secure channel end to end in memory: handshake, mac1 before any
 * Diffie-Hellman, cookies, confirmation, fragmentation, feeding in any
 * split, rekeying, replay refusal, memory limits, and every way a peer can
 * send garbage. Randomized tests print their seed; set MSCE_SEED to
 * replay. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <sodium.h>

#include "channel.h"
#include "error.h"

#define T0 UINT64_C(1767225600000) /* 2026-01-01, unix ms */
#define CLUSTER "shenzhen-msce"

/* Wire bytes for the fixed keys of test_known_answer (docs/PROTOCOL.md). */
#define KAT_MSG1                                                       \
	"008879a631eede1bf9c98f12032cdeadd0e7a079398fc786b88cc846ec89af85" \
	"a51a7e9232488899909b08d1fa72a80e3d522f7bf021397325c4e2fb1e9593dd" \
	"7da127845105c46f1976b5542e9c18c617d2165d5da433cd4ecbdec778b06e54" \
	"836bc735942d20e1be6c9aff2e1d77dd753582ceccd577a57539000000000000" \
	"00000000000000000000"
#define KAT_COOKIE_REPLY                                               \
	"0038c0c1c2c3c4c5c6c7c8c9cacbcccdcecfd0d1d2d3d4d5d6d794f30e0f6406" \
	"a04897ba95b4579203a2bdad8d34bbadcb8928890a1b85a80cce"
#define KAT_MSG1_MAC2                                                  \
	"008879a631eede1bf9c98f12032cdeadd0e7a079398fc786b88cc846ec89af85" \
	"a51a7e9232488899909b08d1fa72a80e3d522f7bf021397325c4e2fb1e9593dd" \
	"7da127845105c46f1976b5542e9c18c617d2165d5da433cd4ecbdec778b06e54" \
	"836bc735942d20e1be6c9aff2e1d77dd753582ceccd577a5753913e33f3f4945" \
	"61641f9e0066a5f954ba"
#define KAT_MSG2                                                       \
	"0030675dd574ed7789310b3d2e7681f3790b466c773b1521fecf36577958371e" \
	"a52f901b6af446bf3623c74ccb0ccd8e7944"
#define KAT_CONFIRM "0011d7de961459c719dcb652c9026f46a5f4f0"
#define KAT_HASH                                                       \
	"ef4e0e0ee27f5037fbf034e8ff2d3c76586e06aeeb525191ddc87665f55f3903"
#define KAT_HELLO "001603bae75ff9929660664f5c220f33a3b7ad5fa5591670"
#define KAT_REKEY_EMPTY                                                \
	"0011821674b06cc7c33c9206869363d5563aeb0011b163d4f00a9e63dd51558f" \
	"c82b2e0f8a04"

/* ---- seeded randomness ---- */

static uint64_t rng_state;

static uint64_t rng(void)
{
	/* xorshift64* */
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * UINT64_C(2685821657736338717);
}

static uint64_t seed_rng(const char *test)
{
	const char *env = getenv("MSCE_SEED");
	uint64_t seed = env ? strtoull(env, NULL, 0)
			    : (uint64_t)time(NULL) ^ (uint64_t)clock();

	if (!seed)
		seed = 1;
	rng_state = seed;
	printf("%s: seed %llu (MSCE_SEED=%llu to replay)\n", test,
	       (unsigned long long)seed, (unsigned long long)seed);
	return seed;
}

/* ---- a pair of channels ---- */

struct side {
	struct channel ch;
	struct channel_buf out; /* wire bytes this side produced */
	int messages;
	uint8_t *last;
	size_t last_len;
	int verifies;
	uint64_t verify_ts;
	int refuse; /* message callback returns this */
	int admits, mac2_ok; /* admit calls, and what the last one saw */
	int cookie_unless_mac2; /* admit asks for a cookie without mac2 */
	struct link *link;
};

struct link {
	struct noise_keypair ki, kr;
	struct side i, r;
	struct channel_replay_entry table[2];
	struct channel_guard guard;
	uint8_t src[4]; /* the initiator's address, as the responder sees it */
	uint64_t now;
};

static int on_message(void *ctx, const uint8_t *msg, size_t len)
{
	struct side *s = ctx;

	if (s->refuse)
		return s->refuse;
	if (len == 0)
		assert_null(msg);
	free(s->last);
	s->last = malloc(len ? len : 1);
	assert_non_null(s->last);
	if (len)
		memcpy(s->last, msg, len);
	s->last_len = len;
	s->messages++;
	return 0;
}

static int on_admit(void *ctx, int mac2_ok)
{
	struct side *s = ctx;

	s->admits++;
	s->mac2_ok = mac2_ok;
	return s->cookie_unless_mac2 && !mac2_ok ? CHANNEL_COOKIE : 0;
}

static int on_verify(void *ctx, const uint8_t key[NOISE_KEY_LEN], uint64_t ts)
{
	struct side *s = ctx;
	struct link *l = s->link;

	s->verifies++;
	s->verify_ts = ts;
	return channel_replay_check(l->table, 2, key, ts, l->now,
				    CHANNEL_DEFAULT_MAX_SKEW_MS, NULL);
}

static struct channel_config config(struct link *l, enum noise_role role,
				    const char *cluster)
{
	struct side *s = role == NOISE_INITIATOR ? &l->i : &l->r;
	struct channel_config c = {
	    .role = role,
	    .cluster = cluster,
	    .local = role == NOISE_INITIATOR ? &l->ki : &l->kr,
	    .remote_key = role == NOISE_INITIATOR ? l->kr.pub : NULL,
	    .cb = {.admit = role == NOISE_RESPONDER ? on_admit : NULL,
		   .verify = role == NOISE_RESPONDER ? on_verify : NULL,
		   .message = on_message,
		   .ctx = s},
	};
	if (role == NOISE_RESPONDER) {
		c.guard = &l->guard;
		c.src = l->src;
		c.src_len = sizeof(l->src);
	}
	return c;
}

/* Keys, a replay table holding the initiator (and one stranger), and both
 * channels, not yet started. */
static void link_init(struct link *l, const char *ci, const char *cr)
{
	struct channel_config c;

	memset(l, 0, sizeof(*l));
	l->now = T0;
	l->i.link = l->r.link = l;
	channel_guard_init(&l->guard, T0);
	memcpy(l->src, "\x7f\x00\x00\x01", 4);
	assert_int_equal(noise_keypair_generate(&l->ki), 0);
	assert_int_equal(noise_keypair_generate(&l->kr), 0);
	randombytes_buf(l->table[0].key, NOISE_KEY_LEN);
	memcpy(l->table[1].key, l->ki.pub, NOISE_KEY_LEN);
	c = config(l, NOISE_INITIATOR, ci);
	assert_int_equal(channel_init(&l->i.ch, &c, l->now), 0);
	c = config(l, NOISE_RESPONDER, cr);
	assert_int_equal(channel_init(&l->r.ch, &c, l->now), 0);
}

static void side_destroy(struct side *s)
{
	channel_destroy(&s->ch);
	channel_buf_free(&s->out);
	free(s->last);
	s->last = NULL;
}

static void link_destroy(struct link *l)
{
	side_destroy(&l->i);
	side_destroy(&l->r);
	noise_keypair_destroy(&l->ki);
	noise_keypair_destroy(&l->kr);
}

enum split { WHOLE, BYTES, RANDOM };

/* Moves what from produced into to's channel, cut as asked. Returns the
 * first error. */
static int pump(struct side *from, struct side *to, enum split how)
{
	size_t off = 0, len = from->out.len;
	int rc = 0;

	while (off < len && !rc) {
		size_t n = len - off;

		if (how == BYTES)
			n = 1;
		else if (how == RANDOM)
			n = 1 + rng() % (n < 70000 ? n : 70000);
		rc = channel_feed(&to->ch, from->out.data + off, n, &to->out);
		off += n;
	}
	from->out.len = 0;
	return rc;
}

static void handshake(struct link *l, enum split how)
{
	assert_int_equal(channel_start(&l->i.ch, &l->i.out), 0);
	assert_int_equal(l->i.out.len, CHANNEL_FRAME_HDR + CHANNEL_MSG1_LEN);
	assert_false(channel_is_open(&l->i.ch));
	assert_int_equal(pump(&l->i, &l->r, how), 0);
	assert_int_equal(l->r.verifies, 1);
	assert_int_equal(l->r.verify_ts, T0);
	assert_true(channel_is_open(&l->r.ch));
	assert_int_equal(l->r.out.len, CHANNEL_FRAME_HDR + CHANNEL_MSG2_LEN);
	assert_false(channel_is_confirmed(&l->r.ch));
	assert_int_equal(pump(&l->r, &l->i, how), 0);
	assert_true(channel_is_open(&l->i.ch));
	assert_true(channel_is_confirmed(&l->i.ch));
	/* The initiator's confirmation went out at once. */
	assert_int_equal(l->i.out.len,
			 CHANNEL_FRAME_HDR + CHANNEL_MIN_TRANSPORT);
	assert_int_equal(pump(&l->i, &l->r, how), 0);
	assert_true(channel_is_confirmed(&l->r.ch));
	assert_int_equal(l->r.messages, 0);
	assert_memory_equal(channel_handshake_hash(&l->i.ch),
			    channel_handshake_hash(&l->r.ch), NOISE_HASH_LEN);
	assert_memory_equal(channel_remote_key(&l->r.ch), l->ki.pub,
			    NOISE_KEY_LEN);
	assert_memory_equal(channel_remote_key(&l->i.ch), l->kr.pub,
			    NOISE_KEY_LEN);
}

static uint8_t *pattern(size_t len, unsigned salt)
{
	uint8_t *p = malloc(len ? len : 1);

	assert_non_null(p);
	for (size_t k = 0; k < len; k++)
		p[k] = (uint8_t)(k * 31 + salt + (k >> 8));
	return p;
}

static size_t wire_len(size_t len)
{
	size_t nfrag = len ? (len - 1) / CHANNEL_MAX_FRAGMENT + 1 : 1;

	return len + nfrag * (CHANNEL_FRAME_HDR + 1 + NOISE_TAG_LEN);
}

/* Sends len bytes from one side and checks the other gets them intact. */
static void roundtrip(struct side *from, struct side *to, size_t len,
		      enum split how)
{
	uint8_t *msg = pattern(len, (unsigned)len);
	int before = to->messages;

	assert_int_equal(channel_send(&from->ch, msg, len, &from->out), 0);
	assert_int_equal(from->out.len, wire_len(len));
	assert_int_equal(pump(from, to, how), 0);
	assert_int_equal(to->messages, before + 1);
	assert_int_equal(to->last_len, len);
	if (len)
		assert_memory_equal(to->last, msg, len);
	free(msg);
}

/* ---- tests ---- */

static void test_sizes(void **state)
{
	static const size_t sizes[] = {0,
				       1,
				       65000,
				       CHANNEL_MAX_FRAGMENT - 1,
				       CHANNEL_MAX_FRAGMENT,
				       CHANNEL_MAX_FRAGMENT + 1,
				       2 * CHANNEL_MAX_FRAGMENT,
				       1u << 20,
				       CHANNEL_DEFAULT_MAX_MESSAGE};
	struct link l;

	(void)state;
	link_init(&l, CLUSTER, CLUSTER);
	handshake(&l, WHOLE);
	for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
		roundtrip(&l.i, &l.r, sizes[k], WHOLE);
		roundtrip(&l.r, &l.i, sizes[k], WHOLE);
	}
	assert_int_equal(l.i.ch.stats.messages_sent, 9);
	assert_int_equal(l.r.ch.stats.messages_received, 9);
	/* Large reassembly buffers are not kept once delivered. */
	assert_null(l.r.ch.asm_buf);
	/* Several messages in one feed. */
	for (int k = 0; k < 5; k++) {
		uint8_t b = (uint8_t)k;
		assert_int_equal(channel_send(&l.i.ch, &b, 1, &l.i.out), 0);
	}
	assert_int_equal(pump(&l.i, &l.r, WHOLE), 0);
	assert_int_equal(l.r.messages, 9 + 5);
	assert_int_equal(l.r.last[0], 4);
	link_destroy(&l);
}

static void test_byte_at_a_time(void **state)
{
	struct link l;

	(void)state;
	link_init(&l, CLUSTER, CLUSTER);
	handshake(&l, BYTES);
	roundtrip(&l.i, &l.r, 0, BYTES);
	roundtrip(&l.i, &l.r, 1, BYTES);
	roundtrip(&l.r, &l.i, 65000, BYTES);
	roundtrip(&l.i, &l.r, 200000, BYTES);
	link_destroy(&l);
}

static void test_random_splits(void **state)
{
	struct link l;

	(void)state;
	seed_rng("test_random_splits");
	link_init(&l, CLUSTER, CLUSTER);
	handshake(&l, RANDOM);
	for (int k = 0; k < 40; k++) {
		size_t len = rng() % 4 == 0 ? rng() % 300000 : rng() % 100;

		roundtrip(k % 2 ? &l.i : &l.r, k % 2 ? &l.r : &l.i, len,
			  RANDOM);
	}
	link_destroy(&l);
}

/* The responder may send right behind message 2; the initiator gets both
 * in one read. */
static void test_data_behind_msg2(void **state)
{
	struct link l;

	(void)state;
	link_init(&l, CLUSTER, CLUSTER);
	assert_int_equal(channel_start(&l.i.ch, &l.i.out), 0);
	assert_int_equal(
	    channel_send(&l.i.ch, (const uint8_t *)"x", 1, &l.i.out),
	    MSCE_EBUSY);
	assert_int_equal(pump(&l.i, &l.r, WHOLE), 0);
	assert_int_equal(
	    channel_send(&l.r.ch, (const uint8_t *)"early", 5, &l.r.out), 0);
	assert_int_equal(pump(&l.r, &l.i, WHOLE), 0);
	assert_true(channel_is_open(&l.i.ch));
	assert_int_equal(l.i.messages, 1);
	assert_memory_equal(l.i.last, "early", 5);
	link_destroy(&l);
}

static void test_rekey(void **state)
{
	struct link l;
	uint8_t old[NOISE_KEY_LEN];

	(void)state;
	link_init(&l, CLUSTER, CLUSTER);
	handshake(&l, WHOLE);
	roundtrip(&l.i, &l.r, 100, WHOLE);

	/* Time limit: reported, then done with a control message. */
	assert_int_equal(channel_rekey_due(&l.i.ch, T0 + 1000), CHANNEL_KEEP);
	assert_int_equal(
	    channel_rekey_due(&l.i.ch, T0 + CHANNEL_DEFAULT_REKEY_MS),
	    CHANNEL_REKEY);
	memcpy(old, l.i.ch.tx.k, NOISE_KEY_LEN);
	assert_int_equal(
	    channel_rekey(&l.i.ch, T0 + CHANNEL_DEFAULT_REKEY_MS, &l.i.out), 0);
	assert_memory_not_equal(old, l.i.ch.tx.k, NOISE_KEY_LEN);
	assert_int_equal(
	    channel_rekey_due(&l.i.ch, T0 + CHANNEL_DEFAULT_REKEY_MS + 1),
	    CHANNEL_KEEP);
	assert_int_equal(pump(&l.i, &l.r, WHOLE), 0);
	assert_int_equal(l.r.ch.stats.rekeys_received, 1);
	assert_int_equal(l.r.messages, 1); /* control: no message */
	assert_memory_equal(l.i.ch.tx.k, l.r.ch.rx.k, NOISE_KEY_LEN);
	roundtrip(&l.i, &l.r, 100, WHOLE);
	roundtrip(&l.r, &l.i, 100, WHOLE); /* other direction untouched */

	/* Byte limit: the sender flags fragments by itself. */
	l.i.ch.rekey_bytes = 1000;
	for (int k = 0; k < 20; k++)
		roundtrip(&l.i, &l.r, 300, BYTES);
	assert_true(l.i.ch.stats.rekeys_sent >= 6);
	assert_int_equal(l.i.ch.stats.rekeys_sent,
			 l.r.ch.stats.rekeys_received);
	/* Within a fragmented message too. */
	l.i.ch.rekey_bytes = 70000;
	roundtrip(&l.i, &l.r, 1u << 20, RANDOM);
	assert_int_equal(l.i.ch.stats.rekeys_sent,
			 l.r.ch.stats.rekeys_received);

	/* Nonces: renew well before the end, refuse at the end. */
	l.i.ch.tx.n = CHANNEL_RENEW_NONCE;
	assert_int_equal(channel_rekey_due(&l.i.ch, T0), CHANNEL_RENEW);
	l.i.ch.tx.n = l.r.ch.rx.n = UINT64_MAX - 2;
	roundtrip(&l.i, &l.r, 5, WHOLE);
	roundtrip(&l.i, &l.r, 1, WHOLE); /* the last usable nonce */
	assert_int_equal(l.i.ch.tx.n, UINT64_MAX);
	assert_int_equal(
	    channel_send(&l.i.ch, (const uint8_t *)"x", 1, &l.i.out),
	    MSCE_ECLOSED);
	assert_int_equal(l.i.out.len, 0);
	assert_int_equal(channel_error(&l.i.ch), MSCE_ECLOSED);
	link_destroy(&l);
}

static void test_rekey_near_exhaustion(void **state)
{
	struct link l;
	uint8_t *big = pattern(CHANNEL_MAX_FRAGMENT + 1, 1);

	(void)state;
	link_init(&l, CLUSTER, CLUSTER);
	handshake(&l, WHOLE);
	l.i.ch.tx.n = UINT64_MAX - 1;
	/* Needs two nonces, one left: refused whole, nothing written. */
	assert_int_equal(
	    channel_send(&l.i.ch, big, CHANNEL_MAX_FRAGMENT + 1, &l.i.out),
	    MSCE_ECLOSED);
	assert_int_equal(l.i.out.len, 0);
	free(big);
	link_destroy(&l);
}

static void test_replay(void **state)
{
	struct link l;
	struct side r2 = {0};
	struct channel_config c;
	uint8_t msg1[CHANNEL_FRAME_HDR + CHANNEL_MSG1_LEN];

	(void)state;
	link_init(&l, CLUSTER, CLUSTER);
	assert_int_equal(channel_start(&l.i.ch, &l.i.out), 0);
	memcpy(msg1, l.i.out.data, sizeof(msg1));
	assert_int_equal(pump(&l.i, &l.r, WHOLE), 0);
	assert_true(channel_is_open(&l.r.ch));
	assert_int_equal(l.table[1].last_ms, T0);

	/* The same message 1 again, to a fresh responder sharing the table. */
	r2.link = &l;
	c = config(&l, NOISE_RESPONDER, CLUSTER);
	c.cb.ctx = &r2;
	assert_int_equal(channel_init(&r2.ch, &c, l.now), 0);
	l.now += 10;
	assert_int_equal(channel_feed(&r2.ch, msg1, sizeof(msg1), &r2.out),
			 MSCE_EAUTH);
	assert_int_equal(r2.verifies, 1);
	assert_int_equal(r2.out.len, 0); /* no message 2 */
	assert_null(r2.ch.frame);	 /* nothing allocated */
	assert_false(channel_is_open(&r2.ch));
	assert_int_equal(channel_feed(&r2.ch, msg1, 1, &r2.out), MSCE_EAUTH);
	side_destroy(&r2);
	link_destroy(&l);
}

static void test_replay_check(void **state)
{
	struct channel_replay_entry t[3] = {0};
	uint8_t stranger[NOISE_KEY_LEN] = {9};
	size_t idx = 99;
	uint64_t skew = 60000;

	(void)state;
	for (int k = 0; k < 3; k++)
		memset(t[k].key, k + 1, NOISE_KEY_LEN);
	assert_int_equal(
	    channel_replay_check(t, 3, stranger, T0, T0, skew, &idx),
	    MSCE_EPERM);
	assert_int_equal(idx, 99);
	assert_int_equal(
	    channel_replay_check(t, 3, t[2].key, T0, T0, skew, &idx), 0);
	assert_int_equal(idx, 2);
	/* The same again: replay. */
	assert_int_equal(
	    channel_replay_check(t, 3, t[2].key, T0, T0 + 5, skew, NULL),
	    MSCE_EAUTH);
	assert_int_equal(
	    channel_replay_check(t, 3, t[2].key, T0 + 1, T0 + 5, skew, NULL),
	    0);
	/* Older but never taken, within the window: connections opened at
	 * once finish their handshakes in any order. Each only once. */
	for (uint64_t d = 1; d < CHANNEL_REPLAY_WINDOW_MS; d += 97) {
		assert_int_equal(channel_replay_check(t, 3, t[2].key, T0 - d,
						      T0 + 5, skew, NULL),
				 0);
		assert_int_equal(channel_replay_check(t, 3, t[2].key, T0 - d,
						      T0 + 5, skew, NULL),
				 MSCE_EAUTH);
	}
	assert_int_equal(t[2].last_ms, T0 + 1);
	/* Older than the window: refused, taken or not. */
	assert_int_equal(channel_replay_check(t, 3, t[2].key,
					      T0 + 1 - CHANNEL_REPLAY_WINDOW_MS,
					      T0 + 5, skew, NULL),
			 MSCE_EAUTH);
	/* Sliding forward frees the milliseconds the window now means, and
	 * keeps what it still covers. */
	uint64_t alias = T0 - 98 + CHANNEL_REPLAY_WINDOW_MS; /* T0 - 98's bit */
	uint64_t t1 = alias + 5;
	assert_int_equal(channel_replay_check(t, 3, t[2].key, t1, T0 + 5,
					      skew, NULL),
			 0);
	assert_int_equal(channel_replay_check(t, 3, t[2].key, T0 + 1, T0 + 5,
					      skew, NULL),
			 MSCE_EAUTH); /* still in the window, taken */
	assert_int_equal(channel_replay_check(t, 3, t[2].key, alias, T0 + 5,
					      skew, NULL),
			 0); /* its bit meant T0 - 98, taken, now out */
	assert_int_equal(channel_replay_check(t, 3, t[2].key, T0 - 98, T0 + 5,
					      skew, NULL),
			 MSCE_EAUTH);
	/* A jump past the whole window forgets it all. */
	uint64_t t2 = t1 + 5 * CHANNEL_REPLAY_WINDOW_MS;
	assert_int_equal(channel_replay_check(t, 3, t[2].key, t2, t2, skew,
					      NULL),
			 0);
	assert_int_equal(channel_replay_check(t, 3, t[2].key, t2 - 3, t2,
					      skew, NULL),
			 0);
	assert_int_equal(channel_replay_check(t, 3, t[2].key, t2 - 3, t2,
					      skew, NULL),
			 MSCE_EAUTH);
	/* Outside the window either way: a clock problem, not recorded. */
	assert_int_equal(
	    channel_replay_check(t, 3, t[1].key, T0 + skew + 1, T0, skew, NULL),
	    MSCE_ECLOCK);
	assert_int_equal(
	    channel_replay_check(t, 3, t[1].key, T0 - skew - 1, T0, skew, NULL),
	    MSCE_ECLOCK);
	assert_int_equal(t[1].last_ms, 0);
	assert_int_equal(
	    channel_replay_check(t, 3, t[1].key, T0 + skew, T0, skew, NULL), 0);
	/* Window disabled. */
	assert_int_equal(
	    channel_replay_check(t, 3, t[0].key, 1, T0, UINT64_MAX, NULL), 0);
}

/* The replay window against a plain model: every timestamp accepted is
 * kept, and one is taken iff never taken and not more than the window
 * below the newest taken. Random stamps around a moving clock, with
 * repeats, reorderings, slides and jumps; several seeds. */
static void test_replay_window_model(void **state)
{
	enum { OPS = 20000, MAXKEPT = OPS };
	const uint64_t w = CHANNEL_REPLAY_WINDOW_MS, skew = UINT64_MAX;
	uint64_t *kept = malloc(MAXKEPT * sizeof *kept);

	(void)state;
	assert_non_null(kept);
	for (uint32_t seed = 1; seed <= 8; seed++) {
		struct channel_replay_entry t = {{0}, 0, {0}};
		uint64_t clock = T0, newest = 0, x = seed * 0x9E3779B97F4A7C15ull;
		size_t nkept = 0;

		memset(t.key, 7, NOISE_KEY_LEN);
		for (int op = 0; op < OPS; op++) {
			uint64_t r, ts;
			int taken = 0, want, got;

			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			r = x % 100;
			if (r < 3)
				clock += w + x % (3 * w); /* a jump */
			else
				clock += x % 8;
			/* Mostly near the clock, some well below it. */
			ts = r < 70   ? clock - (x >> 8) % 16
			     : r < 95 ? clock - (x >> 8) % (w + 64)
				      : clock - (x >> 8) % (3 * w);
			want = ts > newest || newest - ts < w;
			for (size_t k = 0; want && k < nkept && !taken; k++)
				taken = kept[k] == ts;
			want = want && !taken;
			got = channel_replay_check(&t, 1, t.key, ts, clock, skew,
						   NULL) == 0;
			if (got != want)
				fail_msg("seed %u op %d: stamp %llu (newest %llu): "
					 "model %d, window %d",
					 seed, op, (unsigned long long)ts,
					 (unsigned long long)newest, want, got);
			if (want) {
				kept[nkept++] = ts;
				if (ts > newest)
					newest = ts;
			}
			/* What is below the window can never be taken again. */
			size_t m = 0;
			for (size_t k = 0; k < nkept; k++)
				if (newest - kept[k] < w)
					kept[m++] = kept[k];
			nkept = m;
		}
	}
	free(kept);
}

static void test_unknown_key(void **state)
{
	struct link l;

	(void)state;
	link_init(&l, CLUSTER, CLUSTER);
	memset(l.table[1].key, 0, NOISE_KEY_LEN); /* forget the initiator */
	assert_int_equal(channel_start(&l.i.ch, &l.i.out), 0);
	assert_int_equal(pump(&l.i, &l.r, WHOLE), MSCE_EPERM);
	assert_int_equal(l.r.verifies, 1);
	assert_int_equal(l.r.out.len, 0);
	assert_null(l.r.ch.frame);
	assert_int_equal(channel_error(&l.r.ch), MSCE_EPERM);
	link_destroy(&l);
}

static void test_wrong_cluster(void **state)
{
	struct link l;

	(void)state;
	link_init(&l, CLUSTER, "other-cluster");
	assert_int_equal(channel_start(&l.i.ch, &l.i.out), 0);
	assert_int_equal(pump(&l.i, &l.r, WHOLE), MSCE_EAUTH);
	/* mac1 binds the prologue: refused before any Diffie-Hellman. */
	assert_int_equal(channel_failure(&l.r.ch), CHANNEL_FAIL_MAC);
	assert_int_equal(l.r.admits, 0);
	assert_int_equal(l.r.verifies, 0);
	assert_int_equal(l.r.out.len, 0);
	assert_null(channel_remote_key(&l.r.ch));
	link_destroy(&l);
}

static void test_corrupt_kills(void **state)
{
	/* Positions in a 2 + 1 + 10 + 16 byte frame past the length prefix:
	 * flags, data, tag. */
	static const size_t at[] = {2, 3, 8, 12, 13, 28};

	(void)state;
	for (size_t k = 0; k < sizeof(at) / sizeof(at[0]); k++) {
		struct link l;

		link_init(&l, CLUSTER, CLUSTER);
		handshake(&l, WHOLE);
		assert_int_equal(channel_send(&l.i.ch,
					      (const uint8_t *)"0123456789", 10,
					      &l.i.out),
				 0);
		assert_int_equal(l.i.out.len, 29);
		l.i.out.data[at[k]] ^= 0x20;
		assert_int_equal(pump(&l.i, &l.r, WHOLE), MSCE_EAUTH);
		assert_int_equal(l.r.messages, 0);
		assert_int_equal(channel_error(&l.r.ch), MSCE_EAUTH);
		assert_false(channel_is_open(&l.r.ch));
		assert_null(l.r.ch.rx.k); /* keys wiped */
		/* Dead for good: valid traffic and sends are refused. */
		assert_int_equal(
		    channel_send(&l.i.ch, (const uint8_t *)"ok", 2, &l.i.out),
		    0);
		assert_int_equal(pump(&l.i, &l.r, WHOLE), MSCE_EAUTH);
		assert_int_equal(
		    channel_send(&l.r.ch, (const uint8_t *)"x", 1, &l.r.out),
		    MSCE_EAUTH);
		assert_int_equal(channel_rekey(&l.r.ch, T0, &l.r.out),
				 MSCE_EAUTH);
		assert_int_equal(l.r.messages, 0);
		link_destroy(&l);
	}
}

static void test_bad_frames(void **state)
{
	static const uint8_t huge[] = {0xff, 0xff};
	static const uint8_t tiny[] = {0x00, CHANNEL_MIN_TRANSPORT - 1};
	struct link l;

	(void)state;
	/* Before the handshake a length other than message 1's is refused as
	 * soon as the prefix is in. */
	link_init(&l, CLUSTER, CLUSTER);
	assert_int_equal(channel_feed(&l.r.ch, huge, 1, &l.r.out), 0);
	assert_int_equal(channel_feed(&l.r.ch, huge + 1, 1, &l.r.out),
			 MSCE_EPROTO);
	assert_null(l.r.ch.frame);
	link_destroy(&l);

	/* The initiator waiting for message 2. */
	link_init(&l, CLUSTER, CLUSTER);
	assert_int_equal(channel_start(&l.i.ch, &l.i.out), 0);
	assert_int_equal(channel_feed(&l.i.ch, huge, 2, NULL), MSCE_EPROTO);
	link_destroy(&l);

	/* The initiator before it has spoken. */
	link_init(&l, CLUSTER, CLUSTER);
	assert_int_equal(channel_feed(&l.i.ch, tiny, 2, NULL), MSCE_EPROTO);
	link_destroy(&l);

	/* Open: too short to hold a tag and a flags byte. */
	link_init(&l, CLUSTER, CLUSTER);
	handshake(&l, WHOLE);
	assert_int_equal(channel_feed(&l.r.ch, tiny, 2, NULL), MSCE_EPROTO);
	link_destroy(&l);

	/* Open: a full-size frame of garbage. */
	link_init(&l, CLUSTER, CLUSTER);
	handshake(&l, WHOLE);
	{
		uint8_t *junk = pattern(2 + NOISE_MAX_MSG, 7);

		junk[0] = junk[1] = 0xff;
		assert_int_equal(
		    channel_feed(&l.r.ch, junk, 2 + NOISE_MAX_MSG, NULL),
		    MSCE_EAUTH);
		free(junk);
	}
	link_destroy(&l);
}

static void test_message_limit(void **state)
{
	struct link l;
	struct channel_config c;
	uint8_t *big = pattern(200000, 3);

	(void)state;
	link_init(&l, CLUSTER, CLUSTER);
	/* A responder taking at most 100000-byte messages. */
	channel_destroy(&l.r.ch);
	c = config(&l, NOISE_RESPONDER, CLUSTER);
	c.max_message = 100000;
	assert_int_equal(channel_init(&l.r.ch, &c, l.now), 0);
	handshake(&l, WHOLE);
	/* Its own sends are held to it, without harm. */
	assert_int_equal(channel_send(&l.r.ch, big, 100001, &l.r.out),
			 MSCE_ETOOBIG);
	assert_int_equal(l.r.out.len, 0);
	roundtrip(&l.r, &l.i, 100000, WHOLE);
	roundtrip(&l.i, &l.r, 100000, WHOLE);
	/* A peer sending more is cut off before the buffer grows past it. */
	assert_int_equal(channel_send(&l.i.ch, big, 200000, &l.i.out), 0);
	assert_int_equal(pump(&l.i, &l.r, WHOLE), MSCE_ETOOBIG);
	assert_int_equal(channel_error(&l.r.ch), MSCE_ETOOBIG);
	free(big);
	link_destroy(&l);
}

/* Flags a compliant sender never sets. */
static void test_bad_flags(void **state)
{
	static const uint8_t bad[] = {0x08, CHANNEL_F_CONTROL | CHANNEL_F_MORE,
				      0x80};

	(void)state;
	for (size_t k = 0; k < sizeof(bad); k++) {
		struct link l;
		uint8_t buf[64];
		size_t n;

		link_init(&l, CLUSTER, CLUSTER);
		handshake(&l, WHOLE);
		/* Forge a transport message with the sender's own cipher. */
		buf[2] = bad[k];
		assert_int_equal(noise_cipher_encrypt(&l.i.ch.tx, NULL, 0,
						      buf + 2, 1, buf + 2,
						      sizeof(buf) - 2, &n),
				 0);
		buf[0] = 0;
		buf[1] = (uint8_t)n;
		assert_int_equal(channel_feed(&l.r.ch, buf, 2 + n, NULL),
				 MSCE_EPROTO);
		link_destroy(&l);
	}
}

static void test_random_garbage(void **state)
{
	struct noise_keypair kr;
	uint8_t buf[400];
	int k;

	(void)state;
	seed_rng("test_random_garbage");
	assert_int_equal(noise_keypair_generate(&kr), 0);
	for (k = 0; k < 400; k++) {
		struct side s = {0};
		struct channel_config c = {
		    .role = NOISE_RESPONDER,
		    .cluster = CLUSTER,
		    .local = &kr,
		    .cb = {.verify = on_verify,
			   .message = on_message,
			   .ctx = &s},
		};
		size_t len = 2 + CHANNEL_MSG1_LEN + rng() % 200;
		int rc;

		for (size_t j = 0; j < len; j++)
			buf[j] = (uint8_t)rng();
		/* Half carry the right length, to reach the cryptography. */
		if (k % 2) {
			buf[0] = 0;
			buf[1] = CHANNEL_MSG1_LEN;
		}
		assert_int_equal(channel_init(&s.ch, &c, T0), 0);
		rc = channel_feed(&s.ch, buf, len, &s.out);
		if (rc == 0)
			fail_msg("input %d accepted", k);
		assert_true(rc == MSCE_EPROTO || rc == MSCE_EAUTH);
		if (k % 2)
			assert_int_equal(channel_failure(&s.ch),
					 CHANNEL_FAIL_MAC);
		assert_int_equal(s.verifies, 0);
		assert_int_equal(s.out.len, 0);
		assert_null(s.ch.frame);
		/* Nothing of the Noise handshake was set up for it. */
		assert_false(s.ch.hs_ready);
		assert_null(s.ch.hs.sec);
		side_destroy(&s);
	}
	noise_keypair_destroy(&kr);
}

/* Random bytes after the handshake: refused by authentication. */
static void test_random_garbage_open(void **state)
{
	uint8_t buf[2000];

	(void)state;
	seed_rng("test_random_garbage_open");
	for (int k = 0; k < 50; k++) {
		struct link l;
		size_t len = 1 + rng() % sizeof(buf);
		int rc;

		link_init(&l, CLUSTER, CLUSTER);
		handshake(&l, WHOLE);
		for (size_t j = 0; j < len; j++)
			buf[j] = (uint8_t)rng();
		buf[0] = 0; /* a length the buffer may complete */
		rc = channel_feed(&l.r.ch, buf, len, NULL);
		/* Either refused, or still waiting for the frame's end. */
		if (rc == 0)
			assert_true(len < 2 + (size_t)buf[1]);
		else
			assert_true(rc == MSCE_EPROTO || rc == MSCE_EAUTH);
		assert_int_equal(l.r.messages, 0);
		link_destroy(&l);
	}
}

static void test_callback_refuses(void **state)
{
	struct link l;

	(void)state;
	link_init(&l, CLUSTER, CLUSTER);
	handshake(&l, WHOLE);
	l.r.refuse = MSCE_ECORRUPT;
	assert_int_equal(
	    channel_send(&l.i.ch, (const uint8_t *)"x", 1, &l.i.out), 0);
	assert_int_equal(pump(&l.i, &l.r, WHOLE), MSCE_ECORRUPT);
	assert_int_equal(channel_error(&l.r.ch), MSCE_ECORRUPT);
	link_destroy(&l);
}

static void test_config(void **state)
{
	struct link l;
	struct channel ch;
	struct channel_config c;
	uint8_t p[CHANNEL_PROLOGUE_MAX];
	size_t n;
	char longname[CHANNEL_MAX_CLUSTER + 2];

	(void)state;
	assert_int_equal(channel_prologue(CLUSTER, p, sizeof(p), &n), 0);
	assert_int_equal(n, strlen("msce/2/" CLUSTER));
	assert_memory_equal(p, "msce/2/" CLUSTER, n);

	memset(longname, 'a', sizeof(longname));
	longname[CHANNEL_MAX_CLUSTER] = 0;
	assert_int_equal(channel_prologue(longname, p, sizeof(p), &n), 0);
	longname[CHANNEL_MAX_CLUSTER] = 'a';
	longname[CHANNEL_MAX_CLUSTER + 1] = 0;
	assert_int_equal(channel_prologue(longname, p, sizeof(p), &n),
			 MSCE_EINVAL);
	assert_int_equal(channel_prologue("", p, sizeof(p), &n), MSCE_EINVAL);
	assert_int_equal(channel_prologue("a b", p, sizeof(p), &n),
			 MSCE_EINVAL);
	assert_int_equal(channel_prologue("caf\xc3\xa9", p, sizeof(p), &n),
			 MSCE_EINVAL);

	link_init(&l, CLUSTER, CLUSTER);
	c = config(&l, NOISE_RESPONDER, CLUSTER);
	c.cb.verify = NULL; /* a responder must check its callers */
	assert_int_equal(channel_init(&ch, &c, T0), MSCE_EINVAL);
	c = config(&l, NOISE_INITIATOR, CLUSTER);
	c.remote_key = NULL;
	assert_int_equal(channel_init(&ch, &c, T0), MSCE_EINVAL);
	c = config(&l, NOISE_INITIATOR, "bad name");
	assert_int_equal(channel_init(&ch, &c, T0), MSCE_EINVAL);
	channel_destroy(&ch);
	/* Out of order. */
	assert_int_equal(channel_start(&l.r.ch, &l.r.out), MSCE_EINVAL);
	assert_int_equal(channel_rekey(&l.i.ch, T0, &l.i.out), MSCE_EBUSY);
	assert_int_equal(channel_rekey_due(&l.i.ch, T0 + (UINT64_C(1) << 40)),
			 CHANNEL_KEEP);
	assert_null(channel_handshake_hash(&l.i.ch));
	assert_null(channel_remote_key(&l.r.ch));
	link_destroy(&l);
}

/* mac1 is checked before anything else: junk, a message 1 made for another
 * responder, a bad mac1, all cost no Diffie-Hellman and reach no
 * callback. A bad Noise message under a good mac1 gets to the handshake. */
static void test_mac1(void **state)
{
	struct link l;
	struct noise_keypair other;
	struct channel_config c;
	size_t at;

	(void)state;
	assert_int_equal(noise_keypair_generate(&other), 0);
	for (int k = 0; k < 4; k++) {
		link_init(&l, CLUSTER, CLUSTER);
		if (k == 0) {
			/* Dialled with another responder's key. */
			channel_destroy(&l.i.ch);
			c = config(&l, NOISE_INITIATOR, CLUSTER);
			c.remote_key = other.pub;
			assert_int_equal(channel_init(&l.i.ch, &c, l.now), 0);
		}
		assert_int_equal(channel_start(&l.i.ch, &l.i.out), 0);
		/* 1: the Noise part; 2: mac1; 3: mac2 (not checked unless the
		 * responder cares, so it gets through). */
		at = k == 1 ? 40 : k == 2 ? 2 + CHANNEL_NOISE_MSG1_LEN + 3
			 : k == 3 ? 2 + CHANNEL_NOISE_MSG1_LEN + 20
				  : 0;
		if (at)
			l.i.out.data[at] ^= 1;
		if (k == 3) {
			assert_int_equal(pump(&l.i, &l.r, WHOLE), 0);
			assert_true(channel_is_open(&l.r.ch));
			assert_false(l.r.mac2_ok);
			link_destroy(&l);
			continue;
		}
		assert_int_equal(pump(&l.i, &l.r, WHOLE), MSCE_EAUTH);
		assert_int_equal(channel_failure(&l.r.ch), CHANNEL_FAIL_MAC);
		assert_int_equal(l.r.admits, 0);
		assert_int_equal(l.r.verifies, 0);
		assert_false(l.r.ch.hs_ready);
		assert_int_equal(l.r.out.len, 0);
		link_destroy(&l);
	}

	/* Whoever knows the responder's public key can make a good mac1
	 * over a bad Noise message: that one reaches the handshake. */
	link_init(&l, CLUSTER, CLUSTER);
	assert_int_equal(channel_start(&l.i.ch, &l.i.out), 0);
	l.i.out.data[2 + 40] ^= 1;
	crypto_generichash(l.i.out.data + 2 + CHANNEL_NOISE_MSG1_LEN,
			   CHANNEL_MAC_LEN, l.i.out.data + 2,
			   CHANNEL_NOISE_MSG1_LEN, l.i.ch.mac1_key, 32);
	assert_int_equal(pump(&l.i, &l.r, WHOLE), MSCE_EAUTH);
	assert_int_equal(channel_failure(&l.r.ch), CHANNEL_FAIL_HANDSHAKE);
	assert_int_equal(l.r.admits, 1);
	assert_int_equal(l.r.verifies, 0);
	link_destroy(&l);
	noise_keypair_destroy(&other);
}

/* Under load: a cookie reply, then message 1 again with mac2, on the same
 * connection; the cookie is bound to the source address and to the
 * responder's secret of the moment; one cookie per connection. */
static void test_cookie(void **state)
{
	struct link l;
	struct channel_config c;
	uint8_t cookie[CHANNEL_COOKIE_LEN], first_msg1[CHANNEL_MSG1_LEN];

	(void)state;
	link_init(&l, CLUSTER, CLUSTER);
	l.r.cookie_unless_mac2 = 1;
	assert_int_equal(channel_start(&l.i.ch, &l.i.out), 0);
	memcpy(first_msg1, l.i.out.data + 2, CHANNEL_MSG1_LEN);
	assert_int_equal(pump(&l.i, &l.r, WHOLE), 0);
	assert_int_equal(l.r.admits, 1);
	assert_false(l.r.mac2_ok);
	assert_int_equal(l.r.verifies, 0); /* no Diffie-Hellman yet */
	assert_false(l.r.ch.hs_ready);
	assert_int_equal(l.r.out.len,
			 CHANNEL_FRAME_HDR + CHANNEL_COOKIE_REPLY_LEN);
	assert_int_equal(channel_cookie(&l.i.ch, cookie), MSCE_ENOTFOUND);
	assert_int_equal(pump(&l.r, &l.i, WHOLE), 0);
	/* The same message 1, now with mac2. */
	assert_int_equal(l.i.out.len, CHANNEL_FRAME_HDR + CHANNEL_MSG1_LEN);
	assert_memory_equal(l.i.out.data + 2, first_msg1,
			    CHANNEL_NOISE_MSG1_LEN + CHANNEL_MAC_LEN);
	assert_memory_not_equal(l.i.out.data + 2 + CHANNEL_NOISE_MSG1_LEN +
				    CHANNEL_MAC_LEN,
				first_msg1 + CHANNEL_NOISE_MSG1_LEN +
				    CHANNEL_MAC_LEN,
				CHANNEL_MAC_LEN);
	assert_int_equal(pump(&l.i, &l.r, WHOLE), 0);
	assert_int_equal(l.r.admits, 2);
	assert_true(l.r.mac2_ok);
	assert_int_equal(l.r.verifies, 1);
	assert_int_equal(pump(&l.r, &l.i, WHOLE), 0);
	assert_true(channel_is_open(&l.i.ch));
	assert_int_equal(pump(&l.i, &l.r, WHOLE), 0);
	assert_true(channel_is_confirmed(&l.r.ch));
	assert_int_equal(channel_cookie(&l.i.ch, cookie), 0);
	side_destroy(&l.i);
	side_destroy(&l.r);

	/* The next connection from the same address brings the cookie. */
	l.i.link = l.r.link = &l;
	l.r.cookie_unless_mac2 = 1;
	l.now += 10;
	c = config(&l, NOISE_INITIATOR, CLUSTER);
	c.cookie = cookie;
	assert_int_equal(channel_init(&l.i.ch, &c, l.now), 0);
	c = config(&l, NOISE_RESPONDER, CLUSTER);
	assert_int_equal(channel_init(&l.r.ch, &c, l.now), 0);
	assert_int_equal(channel_start(&l.i.ch, &l.i.out), 0);
	assert_int_equal(pump(&l.i, &l.r, WHOLE), 0);
	assert_true(l.r.mac2_ok);
	assert_true(channel_is_open(&l.r.ch));
	side_destroy(&l.i);
	side_destroy(&l.r);

	/* From another address it proves nothing; nor after the responder
	 * drew a new secret. */
	for (int k = 0; k < 2; k++) {
		l.i.link = l.r.link = &l;
		l.r.admits = 0;
		l.now += 10;
		if (k == 0)
			l.src[3] = 2;
		else {
			l.src[3] = 1;
			channel_guard_tick(&l.guard, T0 + 60000);
			c = config(&l, NOISE_INITIATOR, CLUSTER);
			/* still the same secret within its time */
			c.cookie = cookie;
			assert_int_equal(channel_init(&l.i.ch, &c, l.now), 0);
			c = config(&l, NOISE_RESPONDER, CLUSTER);
			assert_int_equal(channel_init(&l.r.ch, &c, l.now), 0);
			assert_int_equal(channel_start(&l.i.ch, &l.i.out), 0);
			assert_int_equal(pump(&l.i, &l.r, WHOLE), 0);
			assert_true(l.r.mac2_ok);
			side_destroy(&l.i);
			side_destroy(&l.r);
			l.i.link = l.r.link = &l;
			l.now += 10;
			channel_guard_tick(&l.guard,
					   T0 + CHANNEL_COOKIE_SECRET_MS);
		}
		c = config(&l, NOISE_INITIATOR, CLUSTER);
		c.cookie = cookie;
		assert_int_equal(channel_init(&l.i.ch, &c, l.now), 0);
		c = config(&l, NOISE_RESPONDER, CLUSTER);
		assert_int_equal(channel_init(&l.r.ch, &c, l.now), 0);
		assert_int_equal(channel_start(&l.i.ch, &l.i.out), 0);
		assert_int_equal(pump(&l.i, &l.r, WHOLE), 0);
		assert_false(l.r.mac2_ok);
		assert_int_equal(l.r.out.len,
				 CHANNEL_FRAME_HDR + CHANNEL_COOKIE_REPLY_LEN);
		/* A second demand on one connection is a refusal: an
		 * initiator that does not use its cookie gets no other. */
		if (k == 0) {
			l.r.out.len = 0;
			{
				uint8_t again[2 + CHANNEL_MSG1_LEN];

				again[0] = 0;
				again[1] = CHANNEL_MSG1_LEN;
				memcpy(again + 2, l.i.ch.msg1,
				       CHANNEL_MSG1_LEN);
				assert_int_equal(channel_feed(&l.r.ch, again,
							      sizeof(again),
							      &l.r.out),
						 MSCE_EBUSY);
				assert_int_equal(channel_failure(&l.r.ch),
						 CHANNEL_FAIL_ADMIT);
			}
		} else {
			/* A new cookie brings it through. */
			assert_int_equal(pump(&l.r, &l.i, WHOLE), 0);
			assert_int_equal(pump(&l.i, &l.r, WHOLE), 0);
			assert_true(l.r.mac2_ok);
			assert_true(channel_is_open(&l.r.ch));
		}
		side_destroy(&l.i);
		side_destroy(&l.r);
	}
	link_destroy(&l);

	/* A cookie reply the initiator cannot open (tampered, or made for
	 * another message 1) kills it; so does one it cannot answer. */
	for (int k = 0; k < 3; k++) {
		link_init(&l, CLUSTER, CLUSTER);
		l.r.cookie_unless_mac2 = 1;
		assert_int_equal(channel_start(&l.i.ch, &l.i.out), 0);
		if (k == 1)
			l.i.out.data[2 + CHANNEL_NOISE_MSG1_LEN] ^= 1;
		assert_int_equal(pump(&l.i, &l.r, WHOLE),
				 k == 1 ? MSCE_EAUTH : 0);
		if (k == 1) {
			link_destroy(&l);
			continue;
		}
		if (k == 0)
			l.r.out.data[2 + 30] ^= 1;
		if (k == 2) {
			assert_int_equal(channel_feed(&l.i.ch, l.r.out.data,
						      l.r.out.len, NULL),
					 MSCE_EBUSY);
			assert_int_equal(channel_failure(&l.i.ch),
					 CHANNEL_FAIL_ADMIT);
		} else {
			assert_int_equal(pump(&l.r, &l.i, WHOLE), MSCE_EAUTH);
			assert_int_equal(channel_failure(&l.i.ch),
					 CHANNEL_FAIL_HANDSHAKE);
		}
		link_destroy(&l);
	}
}

/* The responder's session is confirmed only by the initiator's first
 * transport message: a replayed message 1 opens a channel that never
 * confirms, and anything but the confirmation first is refused. */
static void test_confirm(void **state)
{
	struct link l;
	struct side r2 = {0};
	struct channel_config c;
	uint8_t msg1[CHANNEL_FRAME_HDR + CHANNEL_MSG1_LEN];
	struct channel_replay_entry fresh[2];

	(void)state;
	link_init(&l, CLUSTER, CLUSTER);
	memcpy(fresh, l.table, sizeof(fresh));
	assert_int_equal(channel_start(&l.i.ch, &l.i.out), 0);
	memcpy(msg1, l.i.out.data, sizeof(msg1));
	assert_int_equal(pump(&l.i, &l.r, WHOLE), 0);
	assert_int_equal(pump(&l.r, &l.i, WHOLE), 0);
	assert_int_equal(pump(&l.i, &l.r, WHOLE), 0);
	assert_true(channel_is_confirmed(&l.r.ch));

	/* A responder that forgot the timestamps (restarted) takes the
	 * replay as far as message 2, and no further. */
	memcpy(l.table, fresh, sizeof(fresh));
	r2.link = &l;
	c = config(&l, NOISE_RESPONDER, CLUSTER);
	c.cb.ctx = &r2;
	assert_int_equal(channel_init(&r2.ch, &c, l.now), 0);
	assert_int_equal(channel_feed(&r2.ch, msg1, sizeof(msg1), &r2.out), 0);
	assert_true(channel_is_open(&r2.ch));
	assert_false(channel_is_confirmed(&r2.ch));
	/* The replayer cannot make the confirmation: the live session's
	 * traffic is no use to it either (a control message, the
	 * confirmation's size). */
	assert_int_equal(channel_rekey(&l.i.ch, T0, &l.i.out), 0);
	assert_int_equal(channel_feed(&r2.ch, l.i.out.data, l.i.out.len, NULL),
			 MSCE_EAUTH);
	assert_int_equal(channel_failure(&r2.ch), CHANNEL_FAIL_CONFIRM);
	assert_false(channel_is_confirmed(&r2.ch));
	l.i.out.len = 0;
	side_destroy(&r2);
	link_destroy(&l);

	/* Data first instead of the confirmation: refused. */
	link_init(&l, CLUSTER, CLUSTER);
	assert_int_equal(channel_start(&l.i.ch, &l.i.out), 0);
	assert_int_equal(pump(&l.i, &l.r, WHOLE), 0);
	assert_int_equal(channel_feed(&l.i.ch, l.r.out.data, l.r.out.len, NULL),
			 0);
	l.r.out.len = 0;
	l.i.ch.confirm_owed = 0; /* a broken initiator */
	assert_int_equal(
	    channel_send(&l.i.ch, (const uint8_t *)"data", 4, &l.i.out), 0);
	assert_int_equal(pump(&l.i, &l.r, WHOLE), MSCE_EPROTO);
	assert_int_equal(channel_failure(&l.r.ch), CHANNEL_FAIL_CONFIRM);
	assert_int_equal(l.r.messages, 0);
	link_destroy(&l);

	/* An initiator fed without out (libmsce) confirms with its first
	 * message. */
	link_init(&l, CLUSTER, CLUSTER);
	assert_int_equal(channel_start(&l.i.ch, &l.i.out), 0);
	assert_int_equal(pump(&l.i, &l.r, WHOLE), 0);
	assert_int_equal(channel_feed(&l.i.ch, l.r.out.data, l.r.out.len, NULL),
			 0);
	l.r.out.len = 0;
	assert_true(channel_is_open(&l.i.ch));
	assert_int_equal(l.i.out.len, 0);
	assert_int_equal(
	    channel_send(&l.i.ch, (const uint8_t *)"req", 3, &l.i.out), 0);
	assert_int_equal(l.i.out.len, 2 * (CHANNEL_FRAME_HDR + 1 +
					   NOISE_TAG_LEN) + 3);
	assert_int_equal(pump(&l.i, &l.r, WHOLE), 0);
	assert_true(channel_is_confirmed(&l.r.ch));
	assert_int_equal(l.r.messages, 1);
	assert_memory_equal(l.r.last, "req", 3);
	roundtrip(&l.i, &l.r, 10, WHOLE);
	link_destroy(&l);
}

/* What one connection may pin (max_receive) and what all of them may
 * (a shared budget): partial messages beyond either are refused. */
static void test_partial_limits(void **state)
{
	struct channel_budget budget = {.limit = 300u << 10};
	struct link a, b;
	struct channel_config c;
	uint8_t *big = pattern(1u << 20, 5);
	uint8_t *cut;

	(void)state;
	/* max_receive below max_message: replies may still be large. */
	link_init(&a, CLUSTER, CLUSTER);
	channel_destroy(&a.r.ch);
	c = config(&a, NOISE_RESPONDER, CLUSTER);
	c.max_receive = 70000;
	assert_int_equal(channel_init(&a.r.ch, &c, a.now), 0);
	handshake(&a, WHOLE);
	roundtrip(&a.r, &a.i, 1u << 20, WHOLE);
	roundtrip(&a.i, &a.r, 70000, WHOLE);
	assert_int_equal(channel_send(&a.i.ch, big, 70001, &a.i.out), 0);
	assert_int_equal(pump(&a.i, &a.r, WHOLE), MSCE_ETOOBIG);
	assert_int_equal(channel_failure(&a.r.ch), CHANNEL_FAIL_LIMIT);
	link_destroy(&a);

	/* Two connections under a 300 KiB budget, each holding an unfinished
	 * message: the second one's growth does not fit. */
	link_init(&a, CLUSTER, CLUSTER);
	link_init(&b, CLUSTER, CLUSTER);
	channel_destroy(&a.r.ch);
	channel_destroy(&b.r.ch);
	c = config(&a, NOISE_RESPONDER, CLUSTER);
	c.budget = &budget;
	assert_int_equal(channel_init(&a.r.ch, &c, a.now), 0);
	c = config(&b, NOISE_RESPONDER, CLUSTER);
	c.budget = &budget;
	assert_int_equal(channel_init(&b.r.ch, &c, b.now), 0);
	handshake(&a, WHOLE);
	handshake(&b, WHOLE);
	/* 200 KiB of a 1 MiB message: the buffer grows to 256 KiB. */
	assert_int_equal(channel_send(&a.i.ch, big, 1u << 20, &a.i.out), 0);
	cut = a.i.out.data;
	assert_int_equal(channel_feed(&a.r.ch, cut, 200u << 10, NULL), 0);
	assert_int_equal(budget.used, 256u << 10);
	a.i.out.len = 0;
	assert_int_equal(channel_send(&b.i.ch, big, 1u << 20, &b.i.out), 0);
	assert_int_equal(channel_feed(&b.r.ch, b.i.out.data, 200u << 10, NULL),
			 MSCE_EBUSY);
	assert_int_equal(channel_failure(&b.r.ch), CHANNEL_FAIL_BUDGET);
	assert_int_equal(budget.refusals, 1);
	assert_int_equal(budget.used, 256u << 10);
	b.i.out.len = 0;
	/* Released when the connection goes. */
	link_destroy(&a);
	assert_int_equal(budget.used, 0);
	link_destroy(&b);
	assert_int_equal(budget.used, 0);
	free(big);
}

/* Known answer: fixed keys give fixed wire bytes. These are the bytes shown
 * in docs/PROTOCOL.md, for implementers in other languages. */
static void fill(uint8_t *p, size_t n, uint8_t start)
{
	for (size_t k = 0; k < n; k++)
		p[k] = (uint8_t)(start + k);
}

static void hex_eq(struct channel_buf *b, const char *hex)
{
	char got[2 * 200 + 1];

	assert_true(b->len <= 200);
	sodium_bin2hex(got, sizeof(got), b->data, b->len);
	/* MSCE_PRINT_KAT=1 prints the bytes, to update docs/PROTOCOL.md
	 * after a deliberate change of the wire format. */
	if (getenv("MSCE_PRINT_KAT"))
		printf("%s\n", got);
	else
		assert_string_equal(got, hex);
}

static void test_known_answer(void **state)
{
	uint8_t si[32], sr[32], ei[32], er[32], nonce[24];
	struct link l;
	struct channel_config c;

	(void)state;
	fill(si, 32, 0x00);
	fill(sr, 32, 0x20);
	fill(ei, 32, 0x40);
	fill(er, 32, 0x60);
	fill(nonce, 24, 0xc0);
	link_init(&l, CLUSTER, CLUSTER);
	channel_destroy(&l.i.ch);
	channel_destroy(&l.r.ch);
	noise_keypair_destroy(&l.ki);
	noise_keypair_destroy(&l.kr);
	assert_int_equal(noise_keypair_from_private(&l.ki, si), 0);
	assert_int_equal(noise_keypair_from_private(&l.kr, sr), 0);
	memcpy(l.table[1].key, l.ki.pub, NOISE_KEY_LEN);
	/* The responder's cookie secret, its reply nonce, and the
	 * initiator's address 127.0.0.1 (link_init). */
	fill(l.guard.secret, 32, 0xa0);
	l.guard.test_nonce = nonce;
	l.r.cookie_unless_mac2 = 1;
	c = config(&l, NOISE_INITIATOR, CLUSTER);
	c.test_ephemeral = ei;
	assert_int_equal(channel_init(&l.i.ch, &c, T0), 0);
	c = config(&l, NOISE_RESPONDER, CLUSTER);
	c.test_ephemeral = er;
	assert_int_equal(channel_init(&l.r.ch, &c, T0), 0);

	assert_int_equal(channel_start(&l.i.ch, &l.i.out), 0);
	hex_eq(&l.i.out, KAT_MSG1);
	assert_int_equal(pump(&l.i, &l.r, WHOLE), 0);
	hex_eq(&l.r.out, KAT_COOKIE_REPLY);
	assert_int_equal(pump(&l.r, &l.i, WHOLE), 0);
	hex_eq(&l.i.out, KAT_MSG1_MAC2);
	assert_int_equal(pump(&l.i, &l.r, WHOLE), 0);
	hex_eq(&l.r.out, KAT_MSG2);
	assert_int_equal(pump(&l.r, &l.i, WHOLE), 0);
	hex_eq(&l.i.out, KAT_CONFIRM);
	assert_int_equal(pump(&l.i, &l.r, WHOLE), 0);
	assert_true(channel_is_confirmed(&l.r.ch));
	{
		char h[2 * NOISE_HASH_LEN + 1];

		sodium_bin2hex(h, sizeof(h), channel_handshake_hash(&l.i.ch),
			       NOISE_HASH_LEN);
		if (getenv("MSCE_PRINT_KAT"))
			printf("hash %s\n", h);
		else
			assert_string_equal(h, KAT_HASH);
	}
	assert_int_equal(
	    channel_send(&l.i.ch, (const uint8_t *)"hello", 5, &l.i.out), 0);
	hex_eq(&l.i.out, KAT_HELLO);
	assert_int_equal(pump(&l.i, &l.r, WHOLE), 0);
	assert_int_equal(channel_rekey(&l.r.ch, T0, &l.r.out), 0);
	assert_int_equal(channel_send(&l.r.ch, NULL, 0, &l.r.out), 0);
	hex_eq(&l.r.out, KAT_REKEY_EMPTY);
	assert_int_equal(pump(&l.r, &l.i, WHOLE), 0);
	assert_int_equal(l.i.messages, 1);
	assert_int_equal(l.i.last_len, 0);
	link_destroy(&l);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_sizes),
	    cmocka_unit_test(test_byte_at_a_time),
	    cmocka_unit_test(test_random_splits),
	    cmocka_unit_test(test_data_behind_msg2),
	    cmocka_unit_test(test_rekey),
	    cmocka_unit_test(test_rekey_near_exhaustion),
	    cmocka_unit_test(test_replay),
	    cmocka_unit_test(test_replay_check),
	    cmocka_unit_test(test_replay_window_model),
	    cmocka_unit_test(test_unknown_key),
	    cmocka_unit_test(test_wrong_cluster),
	    cmocka_unit_test(test_corrupt_kills),
	    cmocka_unit_test(test_bad_frames),
	    cmocka_unit_test(test_message_limit),
	    cmocka_unit_test(test_bad_flags),
	    cmocka_unit_test(test_random_garbage),
	    cmocka_unit_test(test_random_garbage_open),
	    cmocka_unit_test(test_callback_refuses),
	    cmocka_unit_test(test_config),
	    cmocka_unit_test(test_mac1),
	    cmocka_unit_test(test_cookie),
	    cmocka_unit_test(test_confirm),
	    cmocka_unit_test(test_partial_limits),
	    cmocka_unit_test(test_known_answer),
	};

	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
