/* SPDX-License-Identifier: Apache-2.0 */
/* gen_fuzz_corpus: writes the seed corpora of the fuzz targets.
 *
 *   gen_fuzz_corpus tests/fuzz/corpus
 *
 * Each seed is a small valid input in the format its target's comment
 * describes, so that fuzzing starts from inputs that get past the decoders
 * and the handshake: Noise message 1 and transport frames made with the
 * fixed keys of fuzz_fixed.h, peer sessions (Hello, Changes, Ack, Gossip,
 * snapshots, refusals), client requests of every kind, configs and
 * records. Output is deterministic; rerun it after a format change. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "arena.h"
#include "channel.h"
#include "client.pb-c.h"
#include "error.h"
#include "fuzz_fixed.h"
#include "fuzz_frame.h"
#include "hlc.h"
#include "peer.pb-c.h"
#include "record.h"
#include "version.h"

#define CAP (64u << 10)

static const char *root;

static void die(const char *what)
{
	fprintf(stderr, "gen_fuzz_corpus: %s\n", what);
	exit(1);
}

static void put_file(const char *target, const char *name, const uint8_t *p,
		     size_t n)
{
	char path[1024];
	FILE *f;

	snprintf(path, sizeof path, "%s/%s", root, target);
	if (mkdir(path, 0755) != 0 && errno != EEXIST)
		die("mkdir");
	snprintf(path, sizeof path, "%s/%s/%s", root, target, name);
	f = fopen(path, "wb");
	if (f == NULL || fwrite(p, 1, n, f) != n || fclose(f) != 0)
		die(path);
}

/* A seed under construction. */
struct seed {
	uint8_t b[CAP];
	size_t n;
};

static void raw(struct seed *s, const void *p, size_t n)
{
	if (CAP - s->n < n)
		die("seed too big");
	memcpy(s->b + s->n, p, n);
	s->n += n;
}

static void byte(struct seed *s, uint8_t v)
{
	raw(s, &v, 1);
}

static void be16(struct seed *s, size_t v)
{
	byte(s, (uint8_t)(v >> 8));
	byte(s, (uint8_t)v);
}

/* ---- channel ------------------------------------------------------------- */

static struct noise_keypair ki, kr;
static uint8_t eph_i[NOISE_KEY_LEN], eph_r[NOISE_KEY_LEN];

static int ignore(void *ctx, const uint8_t *m, size_t n)
{
	(void)ctx;
	(void)m;
	(void)n;
	return 0;
}

static int accept_key(void *ctx, const uint8_t *k, uint64_t ts)
{
	(void)ctx;
	(void)k;
	(void)ts;
	return 0;
}

/* The pair fuzz_channel builds; m1 gets message 1. */
static void pair(struct channel *i, struct channel *r, struct channel_buf *m1)
{
	struct channel_config ci = {.role = NOISE_INITIATOR,
				    .cluster = FUZZ_CLUSTER,
				    .local = &ki,
				    .remote_key = kr.pub,
				    .cb = {.message = ignore},
				    .test_ephemeral = eph_i};
	struct channel_config cr = {
	    .role = NOISE_RESPONDER,
	    .cluster = FUZZ_CLUSTER,
	    .local = &kr,
	    .cb = {.verify = accept_key, .message = ignore},
	    .test_ephemeral = eph_r};
	struct channel_buf m2 = {0};

	if (channel_init(i, &ci, FUZZ_T0) || channel_init(r, &cr, FUZZ_T0) ||
	    channel_start(i, m1) || channel_feed(r, m1->data, m1->len, &m2) ||
	    channel_feed(i, m2.data, m2.len, NULL) || !channel_is_open(i))
		die("handshake");
	channel_buf_free(&m2);
}

static void gen_channel(void)
{
	uint8_t k[NOISE_KEY_LEN];
	struct channel i, r;
	struct channel_buf m1 = {0}, t = {0};
	struct seed s;

	fuzz_key(FUZZ_KEY_INITIATOR, k);
	if (noise_keypair_from_private(&ki, k))
		die("key");
	fuzz_key(FUZZ_KEY_RESPONDER, k);
	if (noise_keypair_from_private(&kr, k))
		die("key");
	fuzz_key(FUZZ_EPH_INITIATOR, eph_i);
	fuzz_key(FUZZ_EPH_RESPONDER, eph_r);

	pair(&i, &r, &m1);
	/* Transport frames from the initiator: a message, an empty one, a
	 * rekey, and a message under the new key. */
	if (channel_send(&i, (const uint8_t *)"hello", 5, &t) ||
	    channel_send(&i, NULL, 0, &t) || channel_rekey(&i, FUZZ_T0, &t) ||
	    channel_send(&i, (const uint8_t *)"after rekey", 11, &t))
		die("send");

	/* Mode 0: message 1 alone, in 7-byte chunks, then with traffic
	 * (which starts with the initiator's confirmation); under load, the
	 * message 1 that gets a cookie reply. */
	s.n = 0;
	byte(&s, 0);
	byte(&s, 0);
	raw(&s, m1.data, m1.len);
	put_file("channel", "hs_msg1", s.b, s.n);
	s.b[1] = 7;
	put_file("channel", "hs_msg1_chunked", s.b, s.n);
	s.b[1] = 0x80;
	put_file("channel", "hs_msg1_under_load", s.b, s.n);
	s.b[1] = 0;
	raw(&s, t.data, t.len);
	put_file("channel", "hs_session", s.b, s.n);

	/* Mode 1: the same frames into an established responder. */
	s.n = 0;
	byte(&s, 1);
	byte(&s, 0);
	raw(&s, t.data, t.len);
	put_file("channel", "transport", s.b, s.n);
	s.b[1] = 3;
	put_file("channel", "transport_chunked", s.b, s.n);

	/* Mode 2 scripts: op, 2-byte argument, [bytes for op 0]. */
	s.n = 0;
	byte(&s, 2);
	byte(&s, 16 | 4); /* responder takes 4 KiB messages */
	byte(&s, 4);	  /* rekey every 1 KiB */
	byte(&s, 0), be16(&s, 5), raw(&s, "hello", 5);	/* i -> r */
	byte(&s, 3), be16(&s, 9);			/* part */
	byte(&s, 2), be16(&s, 0);			/* rekey */
	byte(&s, 1), be16(&s, 300);			/* 2400 bytes */
	byte(&s, 4), be16(&s, 0);			/* deliver */
	byte(&s, 0x80), be16(&s, 3), raw(&s, "abc", 3); /* r -> i */
	byte(&s, 0x87), be16(&s, 0);			/* empty */
	byte(&s, 6), be16(&s, 61);			/* an hour */
	byte(&s, 0x84), be16(&s, 0);
	put_file("channel", "script_basic", s.b, s.n);

	s.n = 0;
	byte(&s, 2);
	byte(&s, 0);
	byte(&s, 0);
	byte(&s, 1), be16(&s, 9000); /* 72000 bytes: two fragments */
	byte(&s, 3), be16(&s, 40000);
	byte(&s, 4), be16(&s, 0);
	byte(&s, 0), be16(&s, 4), raw(&s, "tamp", 4);
	byte(&s, 0x25), be16(&s, 7); /* flip bit 2 of byte 7 */
	byte(&s, 4), be16(&s, 0);
	put_file("channel", "script_fragments_tamper", s.b, s.n);

	s.n = 0;
	byte(&s, 2);
	byte(&s, 16 | 2); /* responder takes 1 KiB: oversize */
	byte(&s, 0);
	byte(&s, 1), be16(&s, 200); /* 1600 bytes */
	byte(&s, 4), be16(&s, 0);
	put_file("channel", "script_oversize", s.b, s.n);

	channel_destroy(&i);
	channel_destroy(&r);
	channel_buf_free(&m1);
	channel_buf_free(&t);
}

/* ---- peer ---------------------------------------------------------------- */

#define HLC(ms_after, n) hlc_make(FUZZ_T0 + (ms_after), (n))

/* An encoded Change into buf; returns its length. */
static size_t change(uint8_t *buf, uint32_t origin, uint64_t seq, uint64_t hlc,
		     const char *key, int del, const char *field,
		     const char *value, uint64_t base_hlc, uint32_t base_origin)
{
	Msce__Change c = MSCE__CHANGE__INIT;
	Msce__FieldWrite f = MSCE__FIELD_WRITE__INIT, *fp = &f;

	c.origin = origin;
	c.seq = seq;
	c.hlc = hlc;
	c.collection = "users";
	c.key = (char *)key;
	c.op = del ? MSCE__CHANGE__OP__DELETE : MSCE__CHANGE__OP__PUT;
	if (!del) {
		f.name = (char *)field;
		f.value.data = (uint8_t *)value;
		f.value.len = strlen(value);
		f.base_hlc = base_hlc;
		f.base_origin = base_origin;
		c.n_fields = 1;
		c.fields = &fp;
	}
	return msce__change__pack(&c, buf);
}

static void msg(struct seed *s, uint8_t hdr, const Msce__PeerMsg *m)
{
	uint8_t buf[8192];
	size_t n = msce__peer_msg__get_packed_size(m);

	if (n > sizeof buf)
		die("peer message too big");
	msce__peer_msg__pack(m, buf);
	if (fuzz_put(s->b, CAP, &s->n, hdr, buf, n))
		die("seed too big");
}

static void hello(struct seed *s, uint8_t hdr, uint32_t node, uint32_t origin,
		  uint64_t seq)
{
	Msce__PeerMsg m = MSCE__PEER_MSG__INIT;
	Msce__Hello h = MSCE__HELLO__INIT;
	Msce__VVEntry v = MSCE__VVENTRY__INIT, *vp = &v;
	Msce__VVEntry f = MSCE__VVENTRY__INIT, *fp = &f;

	h.node = node;
	h.cluster = FUZZ_CLUSTER;
	h.protocol = MSCE_PROTOCOL_VERSION;
	h.time_ms = FUZZ_T0;
	if (seq) {
		v.origin = f.origin = origin;
		v.seq = seq;
		v.hlc = HLC(0, (uint32_t)seq);
		h.n_vv = h.n_floor = 1;
		h.vv = &vp;
		h.floor = &fp;
	}
	m.msg_case = MSCE__PEER_MSG__MSG_HELLO;
	m.hello = &h;
	msg(s, hdr, &m);
}

/* Changes of origin, seqs from..to, one per key k<seq>. */
static void changes(struct seed *s, uint8_t hdr, uint32_t origin, uint64_t from,
		    uint64_t to, uint32_t epoch, int del_last,
		    uint64_t ahead_ms)
{
	Msce__PeerMsg m = MSCE__PEER_MSG__INIT;
	Msce__Changes c = MSCE__CHANGES__INIT;
	ProtobufCBinaryData items[16];
	uint8_t bufs[16][256];
	size_t n = 0;

	for (uint64_t q = from; q <= to && n < 16; q++, n++) {
		char key[16];
		snprintf(key, sizeof key, "k%llu", (unsigned long long)(q % 3));
		items[n].data = bufs[n];
		items[n].len = change(
		    bufs[n], origin, q, HLC(ahead_ms + q * 10, 0), key,
		    del_last && q == to, "name", "value",
		    q > 1 ? HLC((q - 1) * 10, 0) : 0, q > 1 ? origin : 0);
	}
	c.origin = origin;
	c.epoch = epoch;
	c.n_changes = n;
	c.changes = items;
	m.msg_case = MSCE__PEER_MSG__MSG_CHANGES;
	m.changes = &c;
	msg(s, hdr, &m);
}

static void ack(struct seed *s, uint8_t hdr, uint32_t origin, uint64_t seq,
		uint32_t epoch, uint64_t snapshot_id, uint32_t refused_code)
{
	Msce__PeerMsg m = MSCE__PEER_MSG__INIT;
	Msce__Ack a = MSCE__ACK__INIT;
	Msce__VVEntry v = MSCE__VVENTRY__INIT, *vp = &v;

	v.origin = origin;
	v.seq = seq;
	v.hlc = HLC(0, (uint32_t)seq);
	a.n_vv = 1;
	a.vv = &vp;
	a.epoch = epoch;
	a.snapshot_id = snapshot_id;
	if (refused_code) {
		a.refused_origin = origin;
		a.refused_code = refused_code;
		a.refused_reason = "clock";
	}
	m.msg_case = MSCE__PEER_MSG__MSG_ACK;
	m.ack = &a;
	msg(s, hdr, &m);
}

static void gossip(struct seed *s, uint8_t hdr)
{
	Msce__PeerMsg m = MSCE__PEER_MSG__INIT;
	Msce__Gossip g = MSCE__GOSSIP__INIT;
	Msce__NodeStatus st[2];
	Msce__SignedStatus ss[2], *sp[2];
	uint8_t blob[2][256], sig[64] = {0}; /* fuzz_peer takes any signature */
	Msce__VVEntry v = MSCE__VVENTRY__INIT, *vp = &v;
	uint8_t digest[32] = {1};
	uint32_t conn[] = {1, 2};

	v.origin = 2;
	v.seq = 3;
	v.hlc = HLC(30, 0);
	for (int i = 0; i < 2; i++) {
		msce__node_status__init(&st[i]);
		st[i].node = (uint32_t)(2 + i);
		st[i].n_vv = 1;
		st[i].vv = &vp;
		st[i].digest.data = digest;
		st[i].digest.len = 32;
		st[i].hw = HLC(100, (uint32_t)i); /* above the delete: GC */
		st[i].time_ms = FUZZ_T0;
		/* Node 3 (the sender) is linked to 1 and 2; node 2 has
		 * just restarted and has no sessions yet. */
		st[i].n_connected = i == 1 ? 2 : 0;
		st[i].connected = i == 1 ? conn : NULL;
		msce__signed_status__init(&ss[i]);
		ss[i].status.len = msce__node_status__get_packed_size(&st[i]);
		if (ss[i].status.len > sizeof blob[i])
			die("gossip seed too big");
		msce__node_status__pack(&st[i], blob[i]);
		ss[i].status.data = blob[i];
		ss[i].sig.data = sig;
		ss[i].sig.len = sizeof sig;
		sp[i] = &ss[i];
	}
	g.n_statuses = 2;
	g.statuses = sp;
	m.msg_case = MSCE__PEER_MSG__MSG_GOSSIP;
	m.gossip = &g;
	msg(s, hdr, &m);
}

static void snapshot(struct seed *s, uint8_t hdr, uint64_t id, int first,
		     int done, const char *key)
{
	Msce__PeerMsg m = MSCE__PEER_MSG__INIT;
	Msce__SnapshotChunk c = MSCE__SNAPSHOT_CHUNK__INIT;
	Msce__VVEntry v = MSCE__VVENTRY__INIT, *vp = &v;
	Msce__Record r = MSCE__RECORD__INIT, *rp = &r;
	Msce__FieldState fs = MSCE__FIELD_STATE__INIT, *fsp = &fs;
	Msce__FieldVersion w = MSCE__FIELD_VERSION__INIT;
	Msce__FieldVersion l = MSCE__FIELD_VERSION__INIT, *lp = &l;

	c.protocol = MSCE_PROTOCOL_VERSION;
	c.snapshot_id = id;
	if (first) {
		v.origin = 3;
		v.seq = 5;
		v.hlc = HLC(50, 0);
		c.n_vv = 1;
		c.vv = &vp;
	}
	w.name = l.name = "name";
	w.value.data = (uint8_t *)"winner";
	w.value.len = 6;
	w.hlc = HLC(50, 0);
	w.origin = 3;
	w.seq = 5;
	l.value.data = (uint8_t *)"loser";
	l.value.len = 5;
	l.hlc = HLC(40, 0);
	l.origin = 2;
	l.seq = 4;
	fs.winner = &w;
	fs.n_losers = 1;
	fs.losers = &lp;
	r.collection = "users";
	r.key = (char *)key;
	r.n_fields = 1;
	r.fields = &fsp;
	c.n_records = 1;
	c.records = &rp;
	c.done = done;
	m.msg_case = MSCE__PEER_MSG__MSG_SNAPSHOT;
	m.snapshot = &c;
	msg(s, hdr, &m);
}

static void refuse(struct seed *s, uint8_t hdr)
{
	Msce__PeerMsg m = MSCE__PEER_MSG__INIT;
	Msce__Refuse r = MSCE__REFUSE__INIT;

	r.code = 13;
	r.reason = "go away";
	m.msg_case = MSCE__PEER_MSG__MSG_REFUSE;
	m.refuse = &r;
	msg(s, hdr, &m);
}

static void gen_peer(void)
{
	struct seed s;

	/* Sessions primed by the harness: changes, ack, gossip. */
	s.n = 0;
	byte(&s, 1);
	changes(&s, 0, 2, 1, 3, 0, 0, 0);
	changes(&s, 0, 2, 4, 5, 0, 1, 0);
	ack(&s, 0, 2, 5, 0, 0, 0);
	gossip(&s, 1);
	put_file("peer", "changes_ack_gossip", s.b, s.n);

	/* Our own Hellos, relays between the peers, deferred applies. */
	s.n = 0;
	byte(&s, 0);
	hello(&s, 0, 2, 2, 0);
	hello(&s, 1, 3, 2, 0);
	changes(&s, 4, 2, 1, 2, 0, 0, 0);    /* held */
	changes(&s, 0, 2, 3, 4, 0, 0, 0);    /* queued behind it */
	changes(&s, 0x19, 3, 1, 2, 0, 0, 0); /* tick, 250 ms later */
	ack(&s, 0x81, 3, 2, 0, 0, 0);
	put_file("peer", "hello_relay", s.b, s.n);

	/* A gap and a change from the future: refusals and epochs. */
	s.n = 0;
	byte(&s, 1);
	changes(&s, 0, 2, 3, 4, 0, 0, 0);
	changes(&s, 0, 2, 1, 2, 1, 0, 0);
	changes(&s, 0, 2, 3, 3, 1, 0, 3600000);
	put_file("peer", "gap_clock", s.b, s.n);

	/* A two-chunk snapshot from node 3. */
	s.n = 0;
	byte(&s, 1);
	snapshot(&s, 1, 9, 1, 0, "s1");
	snapshot(&s, 1, 9, 0, 1, "s2");
	put_file("peer", "snapshot_in", s.b, s.n);

	/* Local writes streamed out; acks; truncation; a snapshot out when
	 * node 3 comes back with nothing. */
	s.n = 0;
	byte(&s, 3);
	ack(&s, 0, 1, 4, 0, 0, 0);
	ack(&s, 0x18, 1, 6, 0, 0, 0);
	ack(&s, 0x28, 1, 6, 1, 0, MSCE_ECLOCK);
	hello(&s, 0x3b, 3, 1, 0);
	ack(&s, 0x01, 1, 0, 0, 1, 0);
	ack(&s, 0x01, 1, 0, 0, 1, 0);
	put_file("peer", "stream_snapshot_out", s.b, s.n);

	/* Refusals and a Hello for the wrong node. */
	s.n = 0;
	byte(&s, 0);
	hello(&s, 0, 3, 0, 0);
	refuse(&s, 1);
	put_file("peer", "refuse_wrong_node", s.b, s.n);
}

/* ---- client ----------------------------------------------------------------
 */

static void request(struct seed *s, const Msce__ClientRequest *r)
{
	uint8_t buf[4096];
	size_t n = msce__client_request__get_packed_size(r);

	if (n > sizeof buf)
		die("request too big");
	msce__client_request__pack(r, buf);
	if (fuzz_put(s->b, CAP, &s->n, 0, buf, n))
		die("seed too big");
}

static void gen_client(void)
{
	Msce__ClientRequest r = MSCE__CLIENT_REQUEST__INIT;
	Msce__PutRequest p = MSCE__PUT_REQUEST__INIT, p2, *pp[2];
	Msce__FieldIn f = MSCE__FIELD_IN__INIT, f2 = MSCE__FIELD_IN__INIT;
	Msce__FieldIn *fp[2] = {&f, &f2};
	Msce__GetRequest g = MSCE__GET_REQUEST__INIT;
	Msce__ScanRequest sc = MSCE__SCAN_REQUEST__INIT;
	Msce__StatusRequest st = MSCE__STATUS_REQUEST__INIT;
	Msce__BatchPutRequest b = MSCE__BATCH_PUT_REQUEST__INIT;
	struct seed s;

	f.name = "name";
	f.value.data = (uint8_t *)"alice";
	f.value.len = 5;
	f2.name = "age";
	f2.value.data = (uint8_t *)"30";
	f2.value.len = 2;
	p.collection = "users";
	p.key = "u1";
	p.n_fields = 2;
	p.fields = fp;
	g.collection = "users";
	g.key = "u1";
	sc.collection = "users";
	sc.prefix = "u";
	sc.after = "";
	sc.end = "";
	sc.limit = 1;

	/* put, get, scan, status */
	s.n = 0;
	r.id = 1;
	r.op_case = MSCE__CLIENT_REQUEST__OP_PUT;
	r.put = &p;
	request(&s, &r);
	r.id = 2;
	r.op_case = MSCE__CLIENT_REQUEST__OP_GET;
	r.get = &g;
	request(&s, &r);
	r.id = 3;
	r.op_case = MSCE__CLIENT_REQUEST__OP_SCAN;
	r.scan = &sc;
	request(&s, &r);
	r.id = 4;
	r.op_case = MSCE__CLIENT_REQUEST__OP_STATUS;
	r.status = &st;
	request(&s, &r);
	put_file("client", "put_get_scan_status", s.b, s.n);

	/* a batch of two puts, one with a base version, then a delete */
	s.n = 0;
	p2 = p;
	p2.key = "u2";
	p2.n_fields = 1;
	p2.fields = &fp[1];
	f2.has_base = 1;
	f2.base_hlc = HLC(0, 1);
	f2.base_origin = 1;
	pp[0] = &p;
	pp[1] = &p2;
	b.n_puts = 2;
	b.puts = pp;
	r.id = 5;
	r.op_case = MSCE__CLIENT_REQUEST__OP_BATCH;
	r.batch = &b;
	request(&s, &r);
	p2.delete_ = 1;
	r.id = 6;
	r.op_case = MSCE__CLIENT_REQUEST__OP_PUT;
	r.put = &p2;
	request(&s, &r);
	sc.limit = 0;
	sc.after = "u1";
	sc.end = "u9";
	r.id = 7;
	r.op_case = MSCE__CLIENT_REQUEST__OP_SCAN;
	r.scan = &sc;
	request(&s, &r);
	put_file("client", "batch_delete_scan", s.b, s.n);

	/* bad requests: an empty one, a bad collection, min_sites */
	s.n = 0;
	r.id = 8;
	r.op_case = MSCE__CLIENT_REQUEST__OP__NOT_SET;
	request(&s, &r);
	p.collection = "Bad-Name";
	r.id = 9;
	r.op_case = MSCE__CLIENT_REQUEST__OP_PUT;
	r.put = &p;
	request(&s, &r);
	p.collection = "users";
	p.min_sites = 2;
	request(&s, &r);
	put_file("client", "refusals", s.b, s.n);

	/* a watch, then a conflict (a write based on nothing over alice),
	 * listed, resolved and listed again; the watch sees every write */
	Msce__WatchRequest wa = MSCE__WATCH_REQUEST__INIT;
	Msce__ConflictsRequest cq = MSCE__CONFLICTS_REQUEST__INIT;
	Msce__ResolveRequest rv = MSCE__RESOLVE_REQUEST__INIT;
	Msce__VVEntry after = MSCE__VVENTRY__INIT, *ap = &after;

	s.n = 0;
	p.min_sites = 0;
	p.n_fields = 1;
	p.fields = fp;
	after.origin = 1;
	wa.n_after = 1;
	wa.after = &ap;
	wa.collection = "users";
	r.id = 10;
	r.op_case = MSCE__CLIENT_REQUEST__OP_WATCH;
	r.watch = &wa;
	request(&s, &r);
	r.id = 11;
	r.op_case = MSCE__CLIENT_REQUEST__OP_PUT;
	r.put = &p;
	request(&s, &r);
	f.value.data = (uint8_t *)"bob";
	f.value.len = 3;
	f.has_base = 1;
	r.id = 12;
	request(&s, &r);
	cq.collection = "users";
	r.id = 13;
	r.op_case = MSCE__CLIENT_REQUEST__OP_CONFLICTS;
	r.conflicts = &cq;
	request(&s, &r);
	rv.collection = "users";
	rv.key = "u1";
	rv.field = "name";
	rv.value.data = (uint8_t *)"carol";
	rv.value.len = 5;
	r.id = 14;
	r.op_case = MSCE__CLIENT_REQUEST__OP_RESOLVE;
	r.resolve = &rv;
	request(&s, &r);
	r.id = 15;
	r.op_case = MSCE__CLIENT_REQUEST__OP_CONFLICTS;
	r.conflicts = &cq;
	request(&s, &r);
	put_file("client", "watch_conflicts_resolve", s.b, s.n);

	/* personal records: writes and reads with purposes (audited), a
	 * person export, a write to _audit (refused), an erasure */
	Msce__FieldIn rf[4];
	Msce__FieldIn *rfp[4] = {&rf[0], &rf[1], &rf[2], &rf[3]};
	static const char *const rn[4] = {"name", "nationality",
					  "document_type", "document_number"};
	static const char *const rval[4] = {"Ann Lee", "FRA", "passport",
					    "GL1012345601"};
	Msce__PersonRequest pe = MSCE__PERSON_REQUEST__INIT;
	Msce__EraseRequest er = MSCE__ERASE_REQUEST__INIT;
	Msce__RetentionRequest rt = MSCE__RETENTION_REQUEST__INIT;

	s.n = 0;
	for (int i = 0; i < 4; i++) {
		msce__field_in__init(&rf[i]);
		rf[i].name = (char *)rn[i];
		rf[i].value.data = (uint8_t *)rval[i];
		rf[i].value.len = strlen(rval[i]);
	}
	p.collection = "registration";
	p.key = "FRA:GL1012345601";
	p.n_fields = 4;
	p.fields = rfp;
	r.purpose = "service";
	r.id = 16;
	r.op_case = MSCE__CLIENT_REQUEST__OP_PUT;
	r.put = &p;
	request(&s, &r);
	g.collection = "registration";
	g.key = "FRA:GL1012345601";
	r.id = 17;
	r.op_case = MSCE__CLIENT_REQUEST__OP_GET;
	r.get = &g;
	request(&s, &r);
	pe.key = "FRA:GL1012345601";
	r.purpose = "subject-access";
	r.id = 18;
	r.op_case = MSCE__CLIENT_REQUEST__OP_PERSON;
	r.person = &pe;
	request(&s, &r);
	p.collection = "_audit";
	p.key = "forged";
	r.id = 19;
	r.op_case = MSCE__CLIENT_REQUEST__OP_PUT;
	r.put = &p;
	request(&s, &r);
	er.collection = "registration";
	er.key = "FRA:GL1012345601";
	r.purpose = "";
	r.id = 20;
	r.op_case = MSCE__CLIENT_REQUEST__OP_ERASE;
	r.erase = &er;
	request(&s, &r);
	r.id = 21;
	r.op_case = MSCE__CLIENT_REQUEST__OP_RETENTION;
	r.retention = &rt;
	request(&s, &r);
	put_file("client", "personal_data", s.b, s.n);
}

/* ---- config ----------------------------------------------------------------
 */

static void gen_config(void)
{
	static const char full[] =
	    "; a node\n"
	    "[cluster]\n"
	    "name = shenzhen-msce\n"
	    "\n"
	    "[node]\n"
	    "id = 1\n"
	    "name = shekou\n"
	    "data_dir = /var/lib/msce/shekou\n"
	    "key = /etc/msce/shekou.key\n"
	    "listen = 0.0.0.0:7401\n"
	    "client_listen = 127.0.0.1:7402\n"
	    "socket = /run/msce/shekou.sock\n"
	    "metrics_listen = 127.0.0.1:9401\n"
	    "max_clock_skew = 30s\n"
	    "log_retention = 5000\n"
	    "log_level = debug\n"
	    "fsync = no\n"
	    "\n"
	    "[peer shenzhen-bay]\n"
	    "id = 2\n"
	    "address = 10.0.2.10:7401\n"
	    "public_key = AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=\n"
	    "\n"
	    "[peer futian]\n"
	    "id = 3\n"
	    "address = [fd00::3]:7401\n"
	    "public_key = AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI=\n"
	    "\n"
	    "[client frontdesk-1]\n"
	    "public_key = AwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwM=\n"
	    "role = rw\n"
	    "\n"
	    "[client ops]\n"
	    "public_key = BAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQ="
	    "   ; the ops laptop\n"
	    "role = admin\n";
	static const char min[] = "[cluster]\n"
				  "name = c1\n"
				  "[node]\n"
				  "id = 1\n"
				  "name = n\n"
				  "data_dir = /tmp/n\n"
				  "key = /tmp/n.key\n"
				  "listen = localhost:7401\n";

	put_file("config", "full.conf", (const uint8_t *)full, sizeof full - 1);
	put_file("config", "min.conf", (const uint8_t *)min, sizeof min - 1);
	put_file("config", "addr", (const uint8_t *)"[::1]:7401", 10);
	put_file("config", "duration", (const uint8_t *)"1500ms", 6);
}

/* ---- record ----------------------------------------------------------------
 */

static void put_record(const char *name, const struct record *r)
{
	size_t n = record_encoded_size(r);
	uint8_t *buf = malloc(n);

	if (buf == NULL)
		die("oom");
	record_encode(r, buf);
	put_file("record", name, buf, n);
	free(buf);
}

static void gen_record(void)
{
	struct arena a;
	struct record r;
	struct field_write w[2] = {
	    {(const uint8_t *)"age", 3, (const uint8_t *)"30", 2, {0, 0}},
	    {(const uint8_t *)"name", 4, (const uint8_t *)"alice", 5, {0, 0}},
	};
	struct version v1 = {HLC(1, 0), 1}, v2 = {HLC(2, 0), 2},
		       v3 = {HLC(3, 0), 3}, v4 = {HLC(4, 0), 1};
	int changed;

	arena_init(&a, 0);
	memset(&r, 0, sizeof r);
	if (record_merge_put(&r, v1, 1, w, 2, &a, &changed))
		die("merge");
	put_record("simple", &r);
	/* Concurrent writes of the same field: losers. */
	w[1].value = (const uint8_t *)"bob";
	w[1].value_len = 3;
	if (record_merge_put(&r, v2, 1, &w[1], 1, &a, &changed) ||
	    record_merge_put(&r, v3, 1, &w[1], 1, &a, &changed))
		die("merge");
	put_record("conflict", &r);
	/* A write based on the winner, then a delete. */
	w[1].base = v3;
	if (record_merge_put(&r, v4, 2, &w[1], 1, &a, &changed))
		die("merge");
	put_record("resolved", &r);
	record_merge_delete(&r, (struct version){HLC(5, 0), 2}, &changed);
	put_record("tombstone", &r);
	arena_free(&a);
}

/* fuzz_segs: a control byte, then a PeerMsg (no framing). */
static void seg_seed(const char *name, uint8_t ctl, const Msce__PeerMsg *m)
{
	uint8_t buf[8192];
	size_t n = msce__peer_msg__get_packed_size(m);

	if (n + 1 > sizeof buf)
		die("segs seed too big");
	buf[0] = ctl;
	msce__peer_msg__pack(m, buf + 1);
	put_file("segs", name, buf, n + 1);
}

static void gen_segs(void)
{
	Msce__PeerMsg m = MSCE__PEER_MSG__INIT;
	Msce__Changes c = MSCE__CHANGES__INIT;
	ProtobufCBinaryData items[3];
	uint8_t bufs[3][256], sig[64] = {0};
	Msce__Segment g[2], *gp[2] = {&g[0], &g[1]};
	Msce__SnapshotChunk sc = MSCE__SNAPSHOT_CHUNK__INIT;
	Msce__VVEntry v[2], *vp[2] = {&v[0], &v[1]};

	for (int q = 1; q <= 3; q++) {
		items[q - 1].data = bufs[q - 1];
		items[q - 1].len = change(bufs[q - 1], 2, (uint64_t)q,
					  HLC((uint64_t)q * 10, 0), "k1", 0,
					  "name", "value", 0, 0);
	}
	for (int k = 0; k < 2; k++) {
		msce__segment__init(&g[k]);
		g[k].sig.data = sig;
		g[k].sig.len = sizeof sig;
	}
	g[0].first = 1;
	g[0].last = 2;
	g[0].last_hlc = HLC(20, 0);
	g[1].first = 3;
	g[1].last = 3;
	g[1].last_hlc = HLC(30, 0);
	c.origin = 2;
	c.n_changes = 3;
	c.changes = items;
	c.n_segments = 2;
	c.segments = gp;
	m.msg_case = MSCE__PEER_MSG__MSG_CHANGES;
	m.changes = &c;
	seg_seed("signed", 1, &m);
	seg_seed("altered-change", 3, &m);
	seg_seed("altered-hlc", 5, &m);
	seg_seed("altered-range", 7, &m);
	seg_seed("unsigned", 0, &m);

	for (int k = 0; k < 2; k++)
		msce__vventry__init(&v[k]);
	v[0].origin = 2;
	v[0].seq = 5;
	v[0].hlc = HLC(50, 0);
	v[1].origin = 3;
	v[1].seq = 7;
	v[1].hlc = HLC(70, 0);
	sc.protocol = MSCE_PROTOCOL_VERSION;
	sc.snapshot_id = 1;
	sc.n_vv = 2;
	sc.vv = vp;
	sc.done = 1;
	m.msg_case = MSCE__PEER_MSG__MSG_SNAPSHOT;
	m.snapshot = &sc;
	seg_seed("snapshot-signed", 1, &m);
	seg_seed("snapshot-altered", 3, &m);
	seg_seed("snapshot-unsigned", 0, &m);
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: gen_fuzz_corpus DIR\n");
		return 2;
	}
	root = argv[1];
	if (mkdir(root, 0755) != 0 && errno != EEXIST)
		die("mkdir");
	gen_channel();
	gen_peer();
	gen_client();
	gen_config();
	gen_record();
	gen_segs();
	return 0;
}
