/* SPDX-License-Identifier: Apache-2.0 */
/* fuzz_channel: the secure channel's receive side on hostile bytes.
 *
 * Keys, ephemerals, clock and cluster are fixed (fuzz_fixed.h), so the
 * whole session is deterministic and seeds made by gen_corpus stay valid.
 * The first input byte picks the mode (modulo 3):
 *
 *   0  handshake: a responder is fed the rest of the input (message 1,
 *      then transport frames) in chunks of input[1] & 0x7f bytes (0 = at
 *      once). With input[1] bit 7 set it is under load: its admit callback
 *      answers a message 1 without a valid mac2 with a cookie reply. Its
 *      verify callback is the usual replay check with the initiator's key
 *      allowed; it echoes every message it receives.
 *   1  transport: a pair that has completed the handshake; the rest of the
 *      input is fed to the responder (input[1] bit 7: to the initiator) in
 *      chunks of input[1] & 0x7f bytes.
 *   2  script: a completed pair exchanges real traffic driven by the
 *      input (send, big send, rekey, deliver some or all of the wire,
 *      flip a wire bit, let time pass), with small receive limits and
 *      rekey thresholds chosen by input[1] and input[2]. Every message
 *      delivered must be the next one sent (authentication means even a
 *      tampered stream cannot deliver anything else); an untampered stream
 *      must deliver everything and never fail, unless a message exceeded
 *      the receiver's limit.
 *
 * Findings: ASan/UBSan reports and aborts with a message on stderr.
 * MSCE_FUZZ_VERBOSE=1 prints how each input ended. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "channel.h"
#include "error.h"
#include "fuzz_fixed.h"

static struct noise_keypair ki, kr;
static uint8_t eph_i[NOISE_KEY_LEN], eph_r[NOISE_KEY_LEN];
static struct channel_replay_entry table[1];
static uint64_t now;
static int verbose;

static void die(const char *what, int rc)
{
	fprintf(stderr, "fuzz_channel: %s (%s)\n", what, err_name(rc));
	abort();
}

static void setup(void)
{
	uint8_t k[NOISE_KEY_LEN];

	fuzz_key(FUZZ_KEY_INITIATOR, k);
	if (noise_keypair_from_private(&ki, k))
		die("initiator key", 0);
	fuzz_key(FUZZ_KEY_RESPONDER, k);
	if (noise_keypair_from_private(&kr, k))
		die("responder key", 0);
	fuzz_key(FUZZ_EPH_INITIATOR, eph_i);
	fuzz_key(FUZZ_EPH_RESPONDER, eph_r);
	memcpy(table[0].key, ki.pub, NOISE_KEY_LEN);
}

static int cookie_unless_mac2(void *ctx, int mac2_ok)
{
	(void)ctx;
	return mac2_ok ? 0 : CHANNEL_COOKIE;
}

static int verify(void *ctx, const uint8_t key[NOISE_KEY_LEN], uint64_t ts)
{
	(void)ctx;
	return channel_replay_check(table, 1, key, ts, now,
				    CHANNEL_DEFAULT_MAX_SKEW_MS, NULL);
}

/* ---- modes 0 and 1: raw bytes ---------------------------------------------
 */

struct echo {
	struct channel *ch;
	struct channel_buf out;
};

static int echo(void *ctx, const uint8_t *msg, size_t len)
{
	struct echo *x = ctx;
	int rc;

	if ((len == 0) != (msg == NULL))
		die("message callback: NULL iff empty broken", 0);
	/* Checked here, at delivery: a channel that dies later is no longer
	 * "confirmed", though it was when this message came. */
	if (!channel_is_confirmed(x->ch))
		die("a message delivered before the confirmation", 0);
	rc = channel_send(x->ch, msg, len, &x->out);
	x->out.len = 0;
	return rc;
}

static void feed_chunks(struct channel *ch, const uint8_t *p, size_t n,
			size_t chunk, struct channel_buf *out)
{
	while (n > 0) {
		size_t take = chunk && chunk < n ? chunk : n;
		if (channel_feed(ch, p, take, out) != 0)
			break;
		if (out != NULL)
			out->len = 0;
		p += take;
		n -= take;
	}
}

static void mode_handshake(const uint8_t *p, size_t n)
{
	static const uint8_t src[4] = {127, 0, 0, 1};
	struct channel_guard guard = {.secret = {1, 2, 3}};
	struct echo x = {0};
	struct channel ch;
	struct channel_buf out = {0};
	struct channel_config c = {
	    .role = NOISE_RESPONDER,
	    .cluster = FUZZ_CLUSTER,
	    .local = &kr,
	    .guard = &guard,
	    .src = src,
	    .src_len = sizeof(src),
	    .cb = {.verify = verify, .message = echo, .ctx = &x},
	    .test_ephemeral = eph_r};
	size_t chunk = 0;
	int rc;

	if (n > 0) {
		chunk = p[0] & 0x7f;
		if (p[0] & 0x80)
			c.cb.admit = cookie_unless_mac2;
		p++;
		n--;
	}
	table[0].last_ms = 0;
	x.ch = &ch;
	if ((rc = channel_init(&ch, &c, now)))
		die("responder init", rc);
	feed_chunks(&ch, p, n, chunk, &out);
	if (verbose)
		fprintf(stderr,
			"handshake: state %d, error %s, %llu messages\n",
			(int)ch.state, err_name(channel_error(&ch)),
			(unsigned long long)ch.stats.messages_received);
	if (channel_is_open(&ch) &&
	    memcmp(channel_remote_key(&ch), ki.pub, NOISE_KEY_LEN) != 0)
		die("open with a key the verify callback never accepted", 0);
	channel_destroy(&ch);
	channel_buf_free(&out);
	channel_buf_free(&x.out);
}

/* A completed handshake between i and r with the fixed keys. The responder
 * takes messages up to r_max bytes (0 = default), the initiator the
 * default, so that each side can send the other more than it accepts. */
static void pair(struct channel *i, struct channel *r,
		 const struct channel_cb *icb, const struct channel_cb *rcb,
		 size_t r_max, uint64_t rekey_bytes)
{
	struct channel_config ci = {.role = NOISE_INITIATOR,
				    .cluster = FUZZ_CLUSTER,
				    .local = &ki,
				    .remote_key = kr.pub,
				    .rekey_bytes = rekey_bytes,
				    .cb = *icb,
				    .test_ephemeral = eph_i};
	struct channel_config cr = {.role = NOISE_RESPONDER,
				    .cluster = FUZZ_CLUSTER,
				    .local = &kr,
				    .max_message = r_max,
				    .rekey_bytes = rekey_bytes,
				    .cb = *rcb,
				    .test_ephemeral = eph_r};
	struct channel_buf m1 = {0}, m2 = {0};
	int rc;

	cr.cb.verify = verify;
	table[0].last_ms = 0;
	if ((rc = channel_init(i, &ci, now)) ||
	    (rc = channel_init(r, &cr, now)))
		die("pair init", rc);
	if ((rc = channel_start(i, &m1)))
		die("channel_start", rc);
	if ((rc = channel_feed(r, m1.data, m1.len, &m2)))
		die("responder refused a good message 1", rc);
	if ((rc = channel_feed(i, m2.data, m2.len, NULL)))
		die("initiator refused a good message 2", rc);
	if (!channel_is_open(i) || !channel_is_open(r) ||
	    memcmp(channel_handshake_hash(i), channel_handshake_hash(r),
		   NOISE_HASH_LEN) != 0)
		die("handshake did not agree", 0);
	channel_buf_free(&m1);
	channel_buf_free(&m2);
}

static void mode_transport(const uint8_t *p, size_t n)
{
	struct echo xi = {0}, xr = {0};
	struct channel i, r;
	struct channel_cb icb = {.message = echo, .ctx = &xi};
	struct channel_cb rcb = {.message = echo, .ctx = &xr};
	struct channel_buf out = {0};
	uint8_t sel = 0;

	if (n > 0) {
		sel = p[0];
		p++;
		n--;
	}
	xi.ch = &i;
	xr.ch = &r;
	pair(&i, &r, &icb, &rcb, 0, 0);
	feed_chunks(sel & 0x80 ? &i : &r, p, n, sel & 0x7f, &out);
	if (verbose)
		fprintf(stderr, "transport: error %s, %llu messages\n",
			err_name(channel_error(sel & 0x80 ? &i : &r)),
			(unsigned long long)(sel & 0x80 ? &i : &r)
			    ->stats.messages_received);
	channel_destroy(&i);
	channel_destroy(&r);
	channel_buf_free(&out);
	channel_buf_free(&xi.out);
	channel_buf_free(&xr.out);
}

/* ---- mode 2: scripted traffic
 * ------------------------------------------------- */

#define MAX_EXPECT 256
#define MAX_SCRIPT_BYTES (512u << 10)

struct dir {
	struct channel *rx;
	struct channel_buf wire;     /* sent, not yet delivered */
	uint64_t expect[MAX_EXPECT]; /* hashes of messages in flight */
	size_t elen[MAX_EXPECT];
	size_t head, count;
	int tampered, oversize, dead;
};

/* libsodium's BLAKE2b: not instrumented, so big messages stay cheap. */
static uint64_t hash(const uint8_t *p, size_t n)
{
	uint64_t h;

	crypto_generichash((uint8_t *)&h, sizeof h, p, n, NULL, 0);
	return h;
}

static int on_delivered(void *ctx, const uint8_t *msg, size_t len)
{
	struct dir *d = ctx;

	if ((len == 0) != (msg == NULL))
		die("message callback: NULL iff empty broken", 0);
	if (d->count == 0)
		die("delivered a message that was never sent", 0);
	if (d->elen[d->head] != len || d->expect[d->head] != hash(msg, len)) {
		fprintf(stderr, "fuzz_channel: delivered %zu bytes, sent %zu\n",
			len, d->elen[d->head]);
		die("delivered message differs from the one sent", 0);
	}
	d->head = (d->head + 1) % MAX_EXPECT;
	d->count--;
	return 0;
}

static void deliver(struct dir *d, size_t k)
{
	int rc;

	if (d->dead || d->wire.len == 0)
		return;
	if (k > d->wire.len)
		k = d->wire.len;
	rc = channel_feed(d->rx, d->wire.data, k, NULL);
	memmove(d->wire.data, d->wire.data + k, d->wire.len - k);
	d->wire.len -= k;
	if (rc == 0)
		return;
	d->dead = 1;
	if (!d->tampered && !(d->oversize && rc == MSCE_ETOOBIG))
		die("untampered stream refused", rc);
}

static void script(const uint8_t *p, size_t n)
{
	struct channel i, r;
	struct dir d[2]; /* d[0]: i -> r, d[1]: r -> i */
	struct channel *tx[2] = {&i, &r};
	struct channel_cb icb = {.message = on_delivered, .ctx = &d[1]};
	struct channel_cb rcb = {.message = on_delivered, .ctx = &d[0]};
	size_t rx_max = 0, total = 0;
	uint64_t rekey_bytes = 0;
	uint8_t *msg = NULL;

	if (n >= 2) {
		rx_max = p[0] & 16 ? (size_t)1 << (8 + (p[0] & 15)) : 0;
		rekey_bytes = p[1] ? UINT64_C(64) << (p[1] & 15) : 0;
		p += 2;
		n -= 2;
	}
	memset(d, 0, sizeof d);
	d[0].rx = &r;
	d[1].rx = &i;
	pair(&i, &r, &icb, &rcb, rx_max, rekey_bytes);
	/* Largest message each direction's receiver takes. */
	size_t limit[2] = {rx_max ? rx_max : CHANNEL_DEFAULT_MAX_MESSAGE,
			   CHANNEL_DEFAULT_MAX_MESSAGE};

	while (n > 0) {
		uint8_t op = p[0];
		struct dir *dd = &d[op >> 7];
		struct channel *s = tx[op >> 7];
		size_t arg = 0, len;
		int rc;

		p++;
		n--;
		if (n >= 2) {
			arg = (size_t)p[0] << 8 | p[1];
			p += 2;
			n -= 2;
		}
		switch (op & 7) {
		case 0: /* send arg bytes: from the input, then a pattern */
		case 1: /* send arg * 8 bytes of pattern: multi-fragment */
		case 7: /* send an empty message */
			len = (op & 7) == 0 ? arg : (op & 7) == 1 ? arg * 8 : 0;
			/* A channel that died receiving cannot send. */
			if (total + len > MAX_SCRIPT_BYTES ||
			    dd->count == MAX_EXPECT || channel_error(s))
				break;
			free(msg);
			msg = malloc(len ? len : 1);
			if (msg == NULL)
				break;
			memset(msg, op, len);
			if ((op & 7) == 0) {
				size_t used = len < n ? len : n;
				memcpy(msg, p, used);
				p += used;
				n -= used;
			}
			rc = channel_send(s, len ? msg : NULL, len, &dd->wire);
			if (rc == MSCE_ETOOBIG && len > limit[!(op >> 7)])
				break; /* over the sender's own limit */
			if (rc)
				die("channel_send", rc);
			total += len;
			if (len > limit[op >> 7])
				dd->oversize = 1;
			{
				size_t t = (dd->head + dd->count) % MAX_EXPECT;
				dd->expect[t] = hash(msg, len);
				dd->elen[t] = len;
				dd->count++;
			}
			break;
		case 2: /* rekey the sender */
			if (channel_error(s) == 0 &&
			    (rc = channel_rekey(s, now, &dd->wire)))
				die("channel_rekey", rc);
			break;
		case 3: /* deliver part of the wire */
			deliver(dd, arg);
			break;
		case 4: /* deliver all of it */
			deliver(dd, dd->wire.len);
			break;
		case 5: /* flip bits in the wire */
			if (dd->wire.len == 0 || dd->dead)
				break;
			dd->wire.data[arg % dd->wire.len] ^=
			    (uint8_t)(1u << (op >> 4 & 7));
			dd->tampered = 1;
			break;
		case 6: /* time passes; rekey what is due */
			now += (uint64_t)arg * 60000;
			for (int k = 0; k < 2; k++)
				if (channel_rekey_due(tx[k], now) ==
					CHANNEL_REKEY &&
				    (rc =
					 channel_rekey(tx[k], now, &d[k].wire)))
					die("timed channel_rekey", rc);
			break;
		}
	}
	for (int k = 0; k < 2; k++) {
		deliver(&d[k], d[k].wire.len);
		if (verbose)
			fprintf(
			    stderr,
			    "script %d: %llu delivered, %zu pending, "
			    "%llu rekeys, dead %d (%s), tampered %d, "
			    "oversize %d\n",
			    k,
			    (unsigned long long)d[k]
				.rx->stats.messages_received,
			    d[k].count,
			    (unsigned long long)d[k].rx->stats.rekeys_received,
			    d[k].dead, err_name(channel_error(d[k].rx)),
			    d[k].tampered, d[k].oversize);
		if (!d[k].dead && !d[k].tampered && d[k].count != 0)
			die("untampered stream lost messages", 0);
	}
	free(msg);
	channel_destroy(&i);
	channel_destroy(&r);
	channel_buf_free(&d[0].wire);
	channel_buf_free(&d[1].wire);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int ready;

	if (!ready) {
		setup();
		verbose = getenv("MSCE_FUZZ_VERBOSE") != NULL;
		ready = 1;
	}
	now = FUZZ_T0;
	if (size == 0)
		return 0;
	switch (data[0] % 3) {
	case 0:
		mode_handshake(data + 1, size - 1);
		break;
	case 1:
		mode_transport(data + 1, size - 1);
		break;
	default:
		script(data + 1, size - 1);
	}
	return 0;
}
