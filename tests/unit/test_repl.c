/* SPDX-License-Identifier: Apache-2.0 */
/* The replication core on its own, driven step by step: cores with real
 * stores in temp dirs, their messages held in per-link queues that the
 * test delivers when it chooses, applies run when the test says. Checks
 * the session (Hello, streaming, Ack), the write gate of a new store and
 * its incarnation, giving up a writer a peer holds more of, liveness,
 * refusals (garbage, another protocol version), snapshots for a peer below
 * the log floor, and reconfiguration. The simulator runs the same core
 * under random faults; these are the cases one can read. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "hlc.h"
#include "peer.pb-c.h"
#include "repl.h"
#include "statussig.h"
#include "version.h"
#include "storeutil.h"

#define N 3
#define T0 1700000000000ull
#define MAXQ 4096

struct qmsg {
	uint8_t *data;
	size_t len;
};

struct job {
	uint64_t token;
	const struct store_blob *b;
	size_t n;
	const struct store_snap_chunk *chunk;
	const struct seg *g;
	size_t ng;
};

struct tnode {
	uint32_t id;
	char *dir;
	struct store *store;
	struct repl *repl;
	struct repl_store_ops ops;
	struct repl_io io;
	struct qmsg q[N + 1][MAXQ]; /* to peer id: messages not delivered */
	size_t nq[N + 1];
	int closed[N + 1];	    /* io->close asked, and its code */
	int close_code[N + 1];
	char close_reason[N + 1][256];
	struct job jobs[64];
	size_t njobs;
	int disk_full; /* its applies fail, as a store refusing writes */
};

static struct tnode nodes[N + 1];
static char *root;
static uint64_t now;
/* Set by a test before start(); setup resets them. */
static size_t chunk_bytes;
static uint64_t stall_ms;

static struct store *ST(void *ctx) { return ((struct tnode *)ctx)->store; }
static size_t op_vv(void *c, struct vv_entry *o, size_t m)
{
	return store_vv(ST(c), o, m);
}
/* Nodes whose digest the test falsifies: the same changes, other data. */
static int digest_flip[N + 1];
static int op_status_sign(void *ctx, const uint8_t *m, size_t len,
			  uint8_t sig[64])
{
	return store_status_sign(ST(ctx), m, len, sig);
}

static int op_status_verify(void *ctx, uint32_t node, const uint8_t *m,
			    size_t len, const uint8_t sig[64])
{
	return store_status_verify(ST(ctx), node, m, len, sig);
}

static size_t op_state(void *c, struct vv_entry *vv, size_t m, uint8_t d[32],
		       uint64_t *hw)
{
	size_t n = store_state(ST(c), vv, m, d, hw);
	d[0] ^= (uint8_t)digest_flip[((struct tnode *)c)->id];
	return n;
}
static uint32_t op_writer(void *c, uint64_t *born)
{
	return store_writer(ST(c), born);
}
static int op_set_writer(void *c, uint32_t w, uint64_t f, struct err *e)
{
	return store_set_writer(ST(c), w, f, now, e);
}
static int op_log_read(void *c, uint32_t o, uint64_t from, size_t mc,
		       size_t mb, store_log_cb cb, store_seg_cb gcb, void *x,
		       struct err *e)
{
	return store_log_read_segs(ST(c), o, from, mc, mb, cb, gcb, x, e);
}
static size_t op_seals(void *c, struct seg *out, size_t max)
{
	return store_seals(ST(c), out, max);
}
static int op_add_seals(void *c, const struct seg *g, size_t n, struct err *e)
{
	return store_add_seals(ST(c), g, n, e);
}
/* Node id's signing key pair: every test node knows every public key. */
static void sign_keys(uint32_t id, uint8_t pk[32], uint8_t sk[64])
{
	uint8_t link[32] = {(uint8_t)id, 7};
	seg_keypair_from_link(link, pk, sk);
}
static int op_log_truncate(void *c, uint32_t o, uint64_t u, struct err *e)
{
	return store_log_truncate(ST(c), o, u, e);
}
static int op_gc(void *c, const struct vv_entry *u, size_t n, size_t *d,
		 struct err *e)
{
	return store_gc_tombstones(ST(c), u, n, d, e);
}
/* Snapshot reads open in all nodes: each keeps freed pages from reuse. */
static int snap_reads;
static int op_snap_begin(void *c, struct store_snap **o, struct err *e)
{
	int rc = store_snap_begin(ST(c), o, e);
	snap_reads += rc == 0;
	return rc;
}
static void op_snap_end(struct store_snap *sn)
{
	snap_reads--;
	store_snap_end(sn);
}

static void io_send(void *data, uint32_t peer, const uint8_t *buf,
		    size_t len)
{
	struct tnode *t = data;
	struct qmsg *m;
	assert_true(peer >= 1 && peer <= N && t->nq[peer] < MAXQ);
	m = &t->q[peer][t->nq[peer]++];
	m->data = malloc(len ? len : 1);
	assert_non_null(m->data);
	memcpy(m->data, buf, len);
	m->len = len;
}

static void io_close(void *data, uint32_t peer, int code, const char *why)
{
	struct tnode *t = data;
	t->closed[peer]++;
	t->close_code[peer] = code;
	snprintf(t->close_reason[peer], sizeof t->close_reason[peer], "%s",
		 why);
}

static void io_apply(void *data, uint64_t token, const struct store_blob *b,
		     size_t n, const struct seg *g, size_t ng)
{
	struct tnode *t = data;
	assert_true(t->njobs < 64);
	t->jobs[t->njobs++] = (struct job){token, b, n, NULL, g, ng};
}

static void io_snapshot(void *data, uint64_t token,
			const struct store_snap_chunk *c)
{
	struct tnode *t = data;
	assert_true(t->njobs < 64);
	t->jobs[t->njobs++] = (struct job){token, NULL, 0, c, NULL, 0};
}

static uint32_t rnd = 12345;

static uint32_t io_random(void *data)
{
	(void)data;
	rnd = rnd * 1103515245u + 12345u;
	return rnd >> 8;
}

/* ---- the harness ---------------------------------------------------------- */

static void start(uint32_t id, const uint32_t *members, size_t nm,
		  uint64_t retention)
{
	struct tnode *t = &nodes[id];
	uint8_t pk[32], sk[64];
	struct store_key keys[8];
	struct store_options so = {.node_id = id, .cluster = "t", .sign_sk = sk};
	struct repl_config rc = {.node_id = id,
				 .cluster = "t",
				 .nodes = members,
				 .nnodes = nm,
				 .relay_delay_ms = 1,
				 .log_retention = retention,
				 .snapshot_chunk_bytes = chunk_bytes,
				 .snapshot_stall_ms = stall_ms};
	struct err e;
	char name[16];

	snprintf(name, sizeof name, "n%u", id);
	if (t->dir == NULL) {
		t->dir = malloc(strlen(root) + 8);
		sprintf(t->dir, "%s/%s", root, name);
	}
	t->id = id;
	sign_keys(id, pk, sk);
	assert_int_equal(store_open(t->dir, &so, &t->store, &e), 0);
	for (uint32_t k = 0; k < 8; k++) {
		uint8_t unused[64];
		keys[k].node = k + 1;
		sign_keys(k + 1, keys[k].pk, unused);
	}
	assert_int_equal(store_set_keys(t->store, keys, 8, &e), 0);
	t->ops = (struct repl_store_ops){.ctx = t,
					 .vv = op_vv,
					 .state = op_state,
					 .status_sign = op_status_sign,
					 .status_verify = op_status_verify,
					 .writer = op_writer,
					 .set_writer = op_set_writer,
					 .log_read = op_log_read,
					 .log_truncate = op_log_truncate,
					 .gc_tombstones = op_gc,
					 .snap_begin = op_snap_begin,
					 .snap_vv = store_snap_vv,
					 .snap_next = store_snap_next,
					 .snap_end = op_snap_end,
					 .snap_segs = store_snap_segs,
					 .seals = op_seals,
					 .add_seals = op_add_seals};
	t->io = (struct repl_io){.data = t,
				 .send = io_send,
				 .close = io_close,
				 .apply = io_apply,
				 .snapshot = io_snapshot,
				 .random = io_random};
	assert_int_equal(repl_create(&rc, &t->ops, &t->io, now, &t->repl, &e),
			 0);
}

static void stop(uint32_t id)
{
	struct tnode *t = &nodes[id];
	repl_destroy(t->repl);
	store_close(t->store);
	for (int p = 0; p <= N; p++) {
		for (size_t i = 0; i < t->nq[p]; i++)
			free(t->q[p][i].data);
		t->nq[p] = 0;
		t->closed[p] = 0;
	}
	t->njobs = 0;
	t->repl = NULL;
}

static int setup(void **state)
{
	(void)state;
	memset(nodes, 0, sizeof nodes);
	root = tu_tmpdir();
	now = T0;
	snap_reads = 0;
	memset(digest_flip, 0, sizeof digest_flip);
	chunk_bytes = 512;
	stall_ms = 0;
	return root == NULL;
}

static int teardown(void **state)
{
	(void)state;
	for (int i = 1; i <= N; i++) {
		if (nodes[i].repl != NULL)
			stop((uint32_t)i);
		free(nodes[i].dir);
	}
	tu_rmrf(root);
	assert_int_equal(snap_reads, 0);
	return 0;
}

/* Runs the queued applies of node id, in order. */
static void run_jobs(uint32_t id)
{
	struct tnode *t = &nodes[id];
	while (t->njobs > 0) {
		struct job j = t->jobs[0];
		struct store_apply_result res = {0};
		struct err e;
		int rc;
		memmove(t->jobs, t->jobs + 1, --t->njobs * sizeof *t->jobs);
		err_clear(&e);
		if (j.chunk != NULL) {
			rc = store_snap_apply(t->store, j.chunk, &e);
			repl_snapshot_done(t->repl, j.token, rc, &e, now);
		} else if (t->disk_full) {
			rc = err_set(&e, MSCE_EREADONLY,
				     "store refuses writes since a commit "
				     "failed (No space left on device)");
			repl_apply_done(t->repl, j.token, rc, &res, &e, now);
		} else {
			rc = store_apply_signed(t->store, j.b, j.n, j.g, j.ng,
						now, 60000, &res, &e);
			repl_apply_done(t->repl, j.token, rc, &res, &e, now);
		}
	}
}

/* Delivers everything queued from a to b (and what that provokes), and
 * returns how many messages went. */
static size_t deliver(uint32_t a, uint32_t b)
{
	struct tnode *t = &nodes[a];
	size_t sent = 0;
	while (t->nq[b] > 0) {
		struct qmsg m = t->q[b][0];
		memmove(t->q[b], t->q[b] + 1, --t->nq[b] * sizeof m);
		repl_recv(nodes[b].repl, a, m.data, m.len, now);
		free(m.data);
		run_jobs(b);
		sent++;
	}
	return sent;
}

/* Delivers back and forth among the given nodes until nothing moves. */
static void settle(const uint32_t *ids, size_t n)
{
	for (int round = 0; round < 1000; round++) {
		size_t moved = 0;
		for (size_t i = 0; i < n; i++)
			for (size_t j = 0; j < n; j++)
				if (i != j)
					moved += deliver(ids[i], ids[j]);
		if (moved == 0)
			return;
	}
	fail_msg("the cores never stopped talking");
}

/* Time passes: every running core ticks (relays, gossip), then talks. */
static void advance(uint64_t ms, const uint32_t *ids, size_t n)
{
	now += ms;
	for (size_t i = 0; i < n; i++)
		repl_tick(nodes[ids[i]].repl, now);
	settle(ids, n);
}

static void connect_pair(uint32_t a, uint32_t b)
{
	repl_link_up(nodes[a].repl, b, now);
	repl_link_up(nodes[b].repl, a, now);
}

static void drop_queue(uint32_t a, uint32_t b)
{
	for (size_t i = 0; i < nodes[a].nq[b]; i++)
		free(nodes[a].q[b][i].data);
	nodes[a].nq[b] = 0;
}

/* What node a's core says of its peer b. */
static struct repl_peer_status peer_status(uint32_t a, uint32_t b)
{
	struct repl_peer_status ps[N];
	size_t n = repl_peers(nodes[a].repl, ps, N);
	for (size_t i = 0; i < n; i++)
		if (ps[i].node == b)
			return ps[i];
	fail_msg("node %u has no peer %u", a, b);
	return ps[0];
}

static enum repl_state state_of(uint32_t a, uint32_t b)
{
	return peer_status(a, b).state;
}

static int put(uint32_t id, const char *key, const char *value)
{
	struct store_written out;
	int rc = su_put(nodes[id].store, "t", key, "v", value, now, &out);
	if (rc == 0)
		repl_local_commit(nodes[id].repl, now);
	return rc;
}

/* ---- the tests ------------------------------------------------------------ */

static const uint32_t two[] = {1, 2}, three[] = {1, 2, 3};

/* A new cluster: the stores start without a writer, greet each other, find
 * the peer as empty as themselves, and take incarnations of their own. */
static void session_and_streaming(void **state)
{
	char why[256];
	(void)state;
	start(1, two, 2, 0);
	start(2, two, 2, 0);
	assert_int_equal(repl_write_gate(nodes[1].repl, why, sizeof why),
			 MSCE_EBUSY);
	assert_non_null(strstr(why, "new or was restored"));
	connect_pair(1, 2);
	settle(two, 2);
	assert_int_equal(state_of(1, 2), REPL_ACTIVE);
	assert_int_equal(state_of(2, 1), REPL_ACTIVE);
	for (uint32_t i = 1; i <= 2; i++) {
		uint32_t w = store_writer(nodes[i].store, NULL);
		assert_int_equal(writer_node(w), i);
		assert_int_not_equal(writer_inc(w), 0);
		assert_int_equal(repl_write_gate(nodes[i].repl, why, sizeof why),
				 0);
	}
	for (int k = 0; k < 20; k++) {
		char key[16];
		snprintf(key, sizeof key, "k%d", k);
		assert_int_equal(put(1, key, "from-1"), 0);
	}
	settle(two, 2);
	uint32_t w1 = store_writer(nodes[1].store, NULL);
	assert_int_equal(store_vv_get(nodes[2].store, w1).seq, 20);
	assert_string_equal(su_get(nodes[2].store, "t", "k19", "v"), "from-1");
	/* Node 1 knows node 2 holds all of it: nothing more to send. */
	struct repl_peer_status ps[N];
	repl_peers(nodes[1].repl, ps, N);
	assert_int_equal(ps[0].lag_changes, 0);
	uint8_t d1[32], d2[32];
	store_digest(nodes[1].store, d1);
	store_digest(nodes[2].store, d2);
	assert_memory_equal(d1, d2, 32);
}

/* A link that delivers nothing is closed after liveness_ms; messages
 * keep it alive. */
static void silent_link_goes_down(void **state)
{
	struct repl_counters c;
	(void)state;
	start(1, two, 2, 0);
	start(2, two, 2, 0);
	connect_pair(1, 2);
	settle(two, 2);
	now += 4000;
	repl_tick(nodes[1].repl, now);
	assert_int_equal(nodes[1].closed[2], 0);
	drop_queue(1, 2); /* the path eats everything from now on */
	drop_queue(2, 1);
	now += 1500;
	repl_tick(nodes[1].repl, now);
	assert_int_equal(nodes[1].closed[2], 1);
	assert_int_equal(nodes[1].close_code[2], MSCE_ETIMEOUT);
	assert_non_null(strstr(nodes[1].close_reason[2], "no message"));
	repl_counters(nodes[1].repl, &c);
	assert_int_equal(c.link_timeouts, 1);
	assert_int_equal(c.protocol_errors, 0);
}

/* ms of node id's time, ticked every 100 ms as msced ticks (every 50). */
static void ticks_for(uint32_t id, uint64_t ms)
{
	for (uint64_t t = 0; t < ms; t += 100) {
		now += 100;
		repl_tick(nodes[id].repl, now);
	}
}

/* The wall clock stepped forward 30 s: the link stays up (the silence
 * was nobody's), and goes down liveness_ms after the peer went silent. */
static void link_survives_a_step_forward(void **state)
{
	(void)state;
	start(1, two, 2, 0);
	start(2, two, 2, 0);
	connect_pair(1, 2);
	settle(two, 2);
	repl_tick(nodes[1].repl, now);
	now += 30000;
	repl_tick(nodes[1].repl, now);
	assert_int_equal(nodes[1].closed[2], 0);
	drop_queue(1, 2);
	drop_queue(2, 1);
	ticks_for(1, 4000);
	assert_int_equal(nodes[1].closed[2], 0);
	ticks_for(1, 1500);
	assert_int_equal(nodes[1].closed[2], 1);
	assert_int_equal(nodes[1].close_code[2], MSCE_ETIMEOUT);
}

/* The wall clock stepped back 30 s and the peer went silent: the link is
 * closed liveness_ms after the step, not 30 s later. */
static void silent_link_goes_down_after_a_step_back(void **state)
{
	(void)state;
	start(1, two, 2, 0);
	start(2, two, 2, 0);
	connect_pair(1, 2);
	settle(two, 2);
	drop_queue(1, 2);
	drop_queue(2, 1);
	now -= 30000;
	repl_tick(nodes[1].repl, now);
	ticks_for(1, 4000);
	assert_int_equal(nodes[1].closed[2], 0);
	ticks_for(1, 1500);
	assert_int_equal(nodes[1].closed[2], 1);
	assert_int_equal(nodes[1].close_code[2], MSCE_ETIMEOUT);
}

/* Garbage and another protocol version close the link, counted, and the
 * refusal names both versions. */
static void refusals(void **state)
{
	static const uint8_t junk[] = {0xff, 0xff, 0xff, 0x01, 0x02};
	Msce__PeerMsg m = MSCE__PEER_MSG__INIT;
	Msce__Hello h = MSCE__HELLO__INIT;
	Msce__Refuse rf = MSCE__REFUSE__INIT;
	struct repl_counters c;
	struct repl_peer_status st[4];
	uint8_t buf[256];
	size_t n;
	(void)state;
	start(1, two, 2, 0);
	repl_link_up(nodes[1].repl, 2, now);
	repl_recv(nodes[1].repl, 2, junk, sizeof junk, now);
	assert_int_equal(nodes[1].closed[2], 1);
	assert_int_equal(nodes[1].close_code[2], MSCE_EPROTO);
	repl_link_down(nodes[1].repl, 2, now);
	repl_link_up(nodes[1].repl, 2, now);
	h.node = 2;
	h.cluster = "t";
	h.protocol = 1;
	m.msg_case = MSCE__PEER_MSG__MSG_HELLO;
	m.hello = &h;
	n = msce__peer_msg__pack(&m, buf);
	repl_recv(nodes[1].repl, 2, buf, n, now);
	assert_int_equal(nodes[1].closed[2], 2);
	assert_int_equal(nodes[1].close_code[2], MSCE_EVERSION);
	assert_non_null(strstr(nodes[1].close_reason[2], "protocol 1"));
	assert_non_null(strstr(nodes[1].close_reason[2], "we speak 2"));
	repl_counters(nodes[1].repl, &c);
	assert_int_equal(c.protocol_errors, 2);
	/* Status says why the link is down, until a session is greeted. */
	assert_int_equal(repl_peers(nodes[1].repl, st, 4), 1);
	assert_string_equal(st[0].link_error,
			    "closed here: node 2 speaks peer protocol 1, we "
			    "speak 2");
	repl_link_down(nodes[1].repl, 2, now);
	repl_link_failed(nodes[1].repl, 2, now, "dial to x failed: refused");
	repl_peers(nodes[1].repl, st, 4);
	assert_string_equal(st[0].link_error, "dial to x failed: refused");
	assert_int_equal(st[0].link_error_ms, now);
	/* Its refusal of us. */
	repl_link_up(nodes[1].repl, 2, now);
	rf.code = MSCE_EMISMATCH;
	rf.reason = "not in this cluster";
	m.msg_case = MSCE__PEER_MSG__MSG_REFUSE;
	m.refuse = &rf;
	n = msce__peer_msg__pack(&m, buf);
	repl_recv(nodes[1].repl, 2, buf, n, now);
	repl_peers(nodes[1].repl, st, 4);
	assert_string_equal(st[0].link_error,
			    "refused by node 2: not in this cluster");
	/* A greeted session clears it; a failure while up is ignored. */
	repl_link_down(nodes[1].repl, 2, now);
	start(2, two, 2, 0);
	connect_pair(1, 2);
	settle(two, 2);
	repl_link_failed(nodes[1].repl, 2, now, "a crossed dial failed");
	repl_peers(nodes[1].repl, st, 4);
	assert_int_equal(st[0].state, REPL_ACTIVE);
	assert_string_equal(st[0].link_error, "");
}

/* A peer that tells of a writer of our node born a year ahead is not
 * believed: we keep writing (believed, we would give up our writer and
 * wait a year for the clock). */
static void writer_born_in_the_future_not_believed(void **state)
{
	Msce__PeerMsg m = MSCE__PEER_MSG__INIT;
	Msce__Hello h = MSCE__HELLO__INIT;
	Msce__WriterInfo wi = MSCE__WRITER_INFO__INIT, *wp = &wi;
	uint8_t buf[256];
	char why[256];
	size_t n;
	(void)state;
	start(1, two, 2, 0);
	start(2, two, 2, 0);
	connect_pair(1, 2);
	settle(two, 2);
	assert_int_equal(put(1, "before", "x"), 0);
	h.node = 2;
	h.cluster = "t";
	h.protocol = MSCE_PROTOCOL_VERSION;
	h.time_ms = now;
	wi.node = 1;
	wi.writer = (7u << 16) | 1;
	wi.born = hlc_make(now + 365ull * 86400 * 1000, 0);
	h.writers = &wp;
	h.n_writers = 1;
	m.msg_case = MSCE__PEER_MSG__MSG_HELLO;
	m.hello = &h;
	n = msce__peer_msg__pack(&m, buf);
	repl_recv(nodes[1].repl, 2, buf, n, now);
	ticks_for(1, 1000);
	assert_int_equal(repl_write_gate(nodes[1].repl, why, sizeof why), 0);
	assert_int_equal(put(1, "after", "x"), 0);
}

/* A peer that holds nothing of our origin is behind by the time since
 * that origin's birth at least, not by 0 s (nothing to measure from). */
static void lag_of_a_peer_that_holds_nothing(void **state)
{
	struct repl_peer_status st[4];
	size_t n;
	(void)state;
	start(1, two, 2, 0);
	start(2, two, 2, 0);
	connect_pair(1, 2);
	settle(two, 2);
	repl_link_down(nodes[1].repl, 2, now);
	repl_link_down(nodes[2].repl, 1, now);
	drop_queue(1, 2);
	drop_queue(2, 1);
	now += 5000; /* after node 1's writer was born */
	for (int k = 0; k < 5; k++) {
		char key[16];
		snprintf(key, sizeof key, "k%d", k);
		assert_int_equal(put(1, key, "x"), 0);
	}
	drop_queue(1, 2);
	connect_pair(1, 2);
	deliver(2, 1); /* its Hello: it holds nothing of ours */
	n = repl_peers(nodes[1].repl, st, 4);
	assert_int_equal(n, 1);
	assert_int_equal(st[0].lag_changes, 5);
	assert_true(st[0].lag_ms >= 5000);
}

/* After a restart, what a peer holds is unknown until it speaks: not
 * "lacking every change" (nor lacking nothing). */
static void lag_unknown_until_the_peer_speaks(void **state)
{
	struct repl_peer_status st[4];
	(void)state;
	start(1, two, 2, 0);
	start(2, two, 2, 0);
	connect_pair(1, 2);
	settle(two, 2);
	for (int k = 0; k < 3; k++) {
		char key[16];
		snprintf(key, sizeof key, "k%d", k);
		assert_int_equal(put(1, key, "x"), 0);
	}
	settle(two, 2);
	stop(1);
	start(1, two, 2, 0);
	assert_int_equal(repl_peers(nodes[1].repl, st, 4), 1);
	assert_false(st[0].lag_known);
	assert_int_equal(st[0].lag_changes, 0);
	assert_int_equal(st[0].lag_ms, 0);
	connect_pair(1, 2);
	settle(two, 2);
	assert_int_equal(repl_peers(nodes[1].repl, st, 4), 1);
	assert_true(st[0].lag_known);
	assert_int_equal(st[0].lag_changes, 0);
}

/* A store that refuses to apply (a full disk) keeps its links: what came
 * waits and is applied once the store takes writes again. Closing the
 * link made it flap: dialled, resent and refused many times a second. */
static void store_refusing_applies_keeps_the_link(void **state)
{
	struct repl_counters c;
	struct repl_peer_status st[4];
	uint8_t d1[32], d2[32];
	(void)state;
	start(1, two, 2, 0);
	start(2, two, 2, 0);
	connect_pair(1, 2);
	settle(two, 2);
	nodes[2].disk_full = 1;
	for (int k = 0; k < 5; k++) {
		char key[16];
		snprintf(key, sizeof key, "k%d", k);
		assert_int_equal(put(1, key, "x"), 0);
		settle(two, 2);
	}
	for (int i = 0; i < 16; i++) /* 8 s, past the liveness bound */
		advance(500, two, 2);
	assert_int_equal(nodes[2].closed[1], 0);
	assert_int_equal(nodes[1].closed[2], 0);
	repl_peers(nodes[2].repl, st, 4);
	assert_int_equal(st[0].state, REPL_ACTIVE);
	repl_counters(nodes[2].repl, &c);
	/* Tried again about once per retry_ms (1 s), not at every message. */
	assert_true(c.store_errors >= 6 && c.store_errors <= 10);
	store_digest(nodes[1].store, d1);
	store_digest(nodes[2].store, d2);
	assert_memory_not_equal(d1, d2, 32);
	nodes[2].disk_full = 0;
	advance(1000, two, 2);
	advance(1000, two, 2);
	store_digest(nodes[2].store, d2);
	assert_memory_equal(d1, d2, 32);
	assert_int_equal(nodes[2].closed[1], 0);
}

/* An origin the receiver's vector has no room for (an insider's flood of
 * incarnations, relayed by an honest peer) is refused on its own: the link
 * stays, the sender holds that origin back, and what else the peer relays
 * still arrives. (Taken for a store failure, the batch was held and retried
 * for good, and nothing more came from that peer.) */
static void origin_without_room_refused_alone(void **state)
{
	struct repl_counters c;
	struct err e;
	char key[32];
	(void)state;
	for (uint32_t i = 1; i <= 3; i++)
		start(i, three, 3, 0);
	connect_pair(1, 2);
	connect_pair(1, 3);
	connect_pair(2, 3);
	settle(three, 3);
	advance(1000, three, 3);
	for (uint32_t i = 1; i <= 3; i++) {
		snprintf(key, sizeof key, "first%u", i);
		assert_int_equal(put(i, key, "x"), 0);
	}
	settle(three, 3);
	/* Node 3 reaches node 1 only through node 2 from now on. */
	repl_link_down(nodes[1].repl, 3, now);
	repl_link_down(nodes[3].repl, 1, now);
	drop_queue(1, 3);
	drop_queue(3, 1);
	/* Node 1 and node 2 each write under more incarnations of their
	 * own, before they talk again: node 2 fills its vector (3 origins and
	 * 125 new ones), node 1 holds 4 origins and has room for 124 of node
	 * 2's 125 (and node 2 none for node 1's new one). */
	uint32_t w1 = store_writer(nodes[1].store, NULL);
	assert_int_equal(
	    store_set_writer(nodes[1].store, (0x200u << 16) | 1, 0, now, &e),
	    0);
	assert_int_equal(put(1, "second1", "x"), 0);
	assert_int_equal(store_set_writer(nodes[1].store, w1, 0, now, &e), 0);
	uint32_t w2 = store_writer(nodes[2].store, NULL);
	for (uint32_t k = 1; k <= MSCE_MAX_ORIGINS - 3; k++) {
		assert_int_equal(store_set_writer(nodes[2].store,
						  ((0x100 + k) << 16) | 2, 0,
						  now, &e),
				 0);
		snprintf(key, sizeof key, "inc%u", k);
		assert_int_equal(put(2, key, "x"), 0);
	}
	assert_int_equal(store_set_writer(nodes[2].store, w2, 0, now, &e), 0);
	const uint32_t one_two[] = {1, 2}, two_three[] = {2, 3};
	settle(one_two, 2);
	settle(two_three, 2);
	assert_int_equal(store_vv(nodes[1].store, NULL, 0), MSCE_MAX_ORIGINS);
	/* Node 3 writes; node 2 relays it. */
	assert_int_equal(put(3, "late", "from-3"), 0);
	for (int i = 0; i < 6; i++) {
		advance(500, one_two, 2);
		settle(two_three, 2);
	}
	const char *got = su_get(nodes[1].store, "t", "late", "v");
	assert_non_null(got);
	assert_string_equal(got, "from-3");
	assert_int_equal(nodes[1].closed[2], 0);
	assert_int_equal(state_of(1, 2), REPL_ACTIVE);
	repl_counters(nodes[1].repl, &c);
	assert_int_equal(c.store_errors, 0);
	assert_true(c.forged_refusals >= 1);
	/* Held back at node 2, not offered again at every message. */
	uint64_t refused = c.forged_refusals;
	advance(5000, one_two, 2);
	repl_counters(nodes[1].repl, &c);
	assert_int_equal(c.forged_refusals, refused);
}

/* A snapshot the receiver's vector has no room for is refused as such: not
 * counted as a failure of its store, the link kept, and offered again only
 * after a minute, not every second (a whole snapshot streamed each time). */
static void snapshot_without_room_refused_alone(void **state)
{
	struct repl_counters c;
	struct err e;
	char key[32];
	(void)state;
	start(1, two, 2, 10);
	start(2, two, 2, 10);
	connect_pair(1, 2);
	settle(two, 2);
	advance(1000, two, 2);
	assert_int_equal(put(1, "first1", "x"), 0);
	assert_int_equal(put(2, "first2", "x"), 0);
	settle(two, 2);
	repl_link_down(nodes[1].repl, 2, now);
	repl_link_down(nodes[2].repl, 1, now);
	drop_queue(1, 2);
	drop_queue(2, 1);
	/* Node 1 fills its vector with incarnations of its own. */
	uint32_t w1 = store_writer(nodes[1].store, NULL);
	for (uint32_t k = 1; k <= MSCE_MAX_ORIGINS - 2; k++) {
		assert_int_equal(store_set_writer(nodes[1].store,
						  ((0x100 + k) << 16) | 1, 0,
						  now, &e),
				 0);
		snprintf(key, sizeof key, "inc%u", k);
		assert_int_equal(put(1, key, "x"), 0);
	}
	assert_int_equal(store_set_writer(nodes[1].store, w1, 0, now, &e), 0);
	assert_int_equal(store_vv(nodes[1].store, NULL, 0), MSCE_MAX_ORIGINS);
	/* Node 2 writes under a new incarnation too, and far past its log
	 * retention under its own: node 1 can catch up only by snapshot. */
	uint32_t w2 = store_writer(nodes[2].store, NULL);
	assert_int_equal(
	    store_set_writer(nodes[2].store, (0x300u << 16) | 2, 0, now, &e),
	    0);
	assert_int_equal(put(2, "second2", "x"), 0);
	assert_int_equal(store_set_writer(nodes[2].store, w2, 0, now, &e), 0);
	for (int k = 0; k < 100; k++) {
		snprintf(key, sizeof key, "k%d", k);
		assert_int_equal(put(2, key, "v"), 0);
	}
	now += 2000;
	repl_tick(nodes[2].repl, now); /* truncates: retention 10 */
	assert_true(store_vv_get(nodes[2].store, w2).floor > 1);
	connect_pair(1, 2);
	for (int i = 0; i < 10; i++)
		advance(500, two, 2);
	repl_counters(nodes[1].repl, &c);
	assert_int_equal(c.store_errors, 0);
	assert_true(c.forged_refusals >= 1);
	assert_int_equal(nodes[1].closed[2], 0);
	assert_int_equal(state_of(1, 2), REPL_ACTIVE);
	/* The snapshot came, was refused, and is not offered again within
	 * the minute. */
	uint64_t refused = c.forged_refusals, snaps = c.snapshots_received;
	assert_true(snaps >= 1);
	for (int i = 0; i < 20; i++)
		advance(500, two, 2);
	repl_counters(nodes[1].repl, &c);
	assert_int_equal(c.forged_refusals, refused);
	assert_int_equal(c.snapshots_received, snaps);
	assert_int_equal(c.store_errors, 0);
}

/* A store restored or wiped among writing peers waits until it holds what
 * a writing peer holds, then writes under a new incarnation. */
static void new_store_waits_for_a_writing_peer(void **state)
{
	char why[256];
	uint32_t old;
	(void)state;
	start(1, two, 2, 0);
	start(2, two, 2, 0);
	connect_pair(1, 2);
	settle(two, 2);
	for (int k = 0; k < 30; k++) {
		char key[16];
		snprintf(key, sizeof key, "k%d", k);
		assert_int_equal(put(2, key, "x"), 0);
	}
	assert_int_equal(put(1, "before", "x"), 0);
	settle(two, 2);
	old = store_writer(nodes[1].store, NULL);
	/* Node 1 loses its disk. */
	stop(1);
	tu_rmrf(strdup(nodes[1].dir));
	start(1, two, 2, 0);
	assert_int_equal(store_writer(nodes[1].store, NULL), 0);
	repl_link_down(nodes[2].repl, 1, now);
	repl_link_up(nodes[1].repl, 2, now);
	repl_link_up(nodes[2].repl, 1, now);
	/* Node 2's Hello arrives first: node 1 does not hold what it does. */
	deliver(2, 1);
	assert_int_equal(store_writer(nodes[1].store, NULL), 0);
	assert_int_equal(repl_write_gate(nodes[1].repl, why, sizeof why),
			 MSCE_EBUSY);
	assert_non_null(strstr(why, "1 of 1 peers greeted, 1 of them writing"));
	settle(two, 2);
	advance(10, two, 2); /* its old origin's change comes back by relay */
	uint32_t w = store_writer(nodes[1].store, NULL);
	assert_int_equal(writer_node(w), 1);
	assert_int_not_equal(w, old);
	assert_int_equal(store_vv_get(nodes[1].store, w).seq, 0);
	assert_int_equal(put(1, "after", "y"), 0);
	assert_int_equal(store_vv_get(nodes[1].store, w).seq, 1);
}

/* Node `to` gets message m from node `from`, crafted by the test. */
static void recv_from(uint32_t to, uint32_t from, Msce__PeerMsg *m)
{
	uint8_t buf[1024];

	assert_true(msce__peer_msg__get_packed_size(m) <= sizeof buf);
	repl_recv(nodes[to].repl, from, buf, msce__peer_msg__pack(m, buf), now);
}

/* `to` gets gossip from `from` of status sent, with node by's signature
 * of status made (sent itself, or what a forger altered). */
static void signed_status_to(uint32_t to, uint32_t from,
			     const Msce__NodeStatus *made,
			     const Msce__NodeStatus *sent, uint32_t by)
{
	Msce__PeerMsg m = MSCE__PEER_MSG__INIT;
	Msce__Gossip g = MSCE__GOSSIP__INIT;
	Msce__SignedStatus ss = MSCE__SIGNED_STATUS__INIT, *sp = &ss;
	uint8_t blob[512], pk[32], sk[64], sig[64];

	assert_true(msce__node_status__get_packed_size(made) <= sizeof blob);
	assert_true(msce__node_status__get_packed_size(sent) <= sizeof blob);
	sign_keys(by, pk, sk);
	status_sign(blob, msce__node_status__pack(made, blob), sk, sig);
	ss.status.len = msce__node_status__pack(sent, blob);
	ss.status.data = blob;
	ss.sig.data = sig;
	ss.sig.len = sizeof sig;
	g.n_statuses = 1;
	g.statuses = &sp;
	m.msg_case = MSCE__PEER_MSG__MSG_GOSSIP;
	m.gossip = &g;
	recv_from(to, from, &m);
}

/* `to` gets gossip from `from` of status st signed with node by's key (st's
 * own node's, or a forger's). */
static void status_to(uint32_t to, uint32_t from, const Msce__NodeStatus *st,
		      uint32_t by)
{
	signed_status_to(to, from, st, st, by);
}

/* The link from `from` to `to` (re)starts, and `to` gets Hello h from it
 * (node, cluster and protocol filled in here). */
static void hello_to(uint32_t to, uint32_t from, Msce__Hello *h)
{
	Msce__PeerMsg m = MSCE__PEER_MSG__INIT;

	repl_link_down(nodes[to].repl, from, now);
	repl_link_up(nodes[to].repl, from, now);
	h->node = from;
	h->cluster = "t";
	h->protocol = MSCE_PROTOCOL_VERSION;
	m.msg_case = MSCE__PEER_MSG__MSG_HELLO;
	m.hello = h;
	recv_from(to, from, &m);
}

/* A peer that holds more of our writer than we do means we are a stale
 * copy (or collided): the writer is given up, and a new one taken. */
static void writer_given_up_when_a_peer_holds_more(void **state)
{
	Msce__Hello h = MSCE__HELLO__INIT;
	Msce__VVEntry ve = MSCE__VVENTRY__INIT, *vp[1] = {&ve};
	struct repl_counters c;
	uint32_t w;
	(void)state;
	start(1, two, 2, 0);
	start(2, two, 2, 0);
	connect_pair(1, 2);
	settle(two, 2);
	assert_int_equal(put(1, "a", "1"), 0);
	settle(two, 2);
	w = store_writer(nodes[1].store, NULL);
	ve.origin = w;
	ve.seq = 5; /* we made 1 */
	ve.hlc = hlc_make(now, 0);
	h.n_vv = 1;
	h.vv = vp;
	hello_to(1, 2, &h);
	repl_counters(nodes[1].repl, &c);
	assert_int_equal(c.writer_collisions, 1);
	assert_int_equal(store_writer(nodes[1].store, NULL), 0);
	char why[256];
	assert_int_equal(repl_write_gate(nodes[1].repl, why, sizeof why),
			 MSCE_EBUSY);
}

/* A peer names another incarnation of our node born at the same hlc as
 * ours (two stores that caught up from the same births both start just
 * above them). Every node takes the higher incarnation for current: ours
 * is given up if it is the lower one (and a new one taken, born after
 * both), and kept if it is the higher. */
static void tie_of_births(uint32_t inc_delta, int given_up)
{
	Msce__Hello h = MSCE__HELLO__INIT;
	Msce__WriterInfo wi = MSCE__WRITER_INFO__INIT, *wp[1] = {&wi};
	struct repl_counters c;
	uint64_t born;
	uint32_t w, other;

	start(1, two, 2, 0);
	start(2, two, 2, 0);
	connect_pair(1, 2);
	settle(two, 2);
	w = store_writer(nodes[1].store, &born);
	assert_int_not_equal(w, 0);
	other = writer_make(1, (writer_inc(w) + inc_delta) & 0xffff);
	assert_int_not_equal(writer_inc(other), 0);
	assert_int_equal(other > w, given_up);
	h.writer = store_writer(nodes[2].store, NULL);
	wi.node = 1;
	wi.writer = other;
	wi.born = born;
	h.n_writers = 1;
	h.writers = wp;
	hello_to(1, 2, &h);
	repl_counters(nodes[1].repl, &c);
	assert_int_equal(c.writer_collisions, (uint64_t)given_up);
	if (!given_up) {
		assert_int_equal(store_writer(nodes[1].store, NULL), w);
		return;
	}
	/* Caught up with node 2, it takes a new one, born after both. */
	uint64_t born2;
	uint32_t w2 = store_writer(nodes[1].store, &born2);
	assert_int_not_equal(w2, 0);
	assert_int_not_equal(w2, w);
	assert_int_not_equal(w2, other);
	assert_true(born2 > born);
}

static void tie_of_births_lower_gives_up(void **state)
{
	(void)state;
	tie_of_births(1, 1);
}

static void tie_of_births_higher_keeps(void **state)
{
	(void)state;
	tie_of_births(0xffff, 0); /* one below, modulo 2^16 */
}

/* Time passes, up to 30 s, until no node of ids[0..n) holds a tombstone. */
static void advance_until_collected(const uint32_t *ids, size_t n)
{
	for (int i = 0; i < 30; i++) {
		size_t held = 0;
		for (size_t k = 0; k < n; k++)
			held += store_tombstones(nodes[ids[k]].store);
		if (held == 0)
			return;
		advance(1000, ids, n);
	}
}

/* Node 1 writes t/gone and deletes it; the nodes ids[0..n) settle in
 * between and after, so that each holds its tombstone. */
static void put_then_delete(const uint32_t *ids, size_t n)
{
	assert_int_equal(put(1, "gone", "x"), 0);
	settle(ids, n);
	assert_int_equal(su_del(nodes[1].store, "t", "gone", now), 0);
	repl_local_commit(nodes[1].repl, now);
	settle(ids, n);
}

/* The mirror: ours is the higher of the two and is kept, so the lower one
 * must retire. It never wrote, and until it retires it counts with no
 * status, which holds back every tombstone; it retires once every member
 * believes ours. A tie left unbroken keeps it counting forever. */
static void tie_of_births_loser_retires(void **state)
{
	(void)state;
	tie_of_births(0xffff, 0);
	/* Node 2's own greeting now: it believes ours. */
	drop_queue(1, 2);
	drop_queue(2, 1);
	repl_link_down(nodes[1].repl, 2, now);
	repl_link_down(nodes[2].repl, 1, now);
	connect_pair(1, 2);
	settle(two, 2);
	put_then_delete(two, 2);
	assert_int_equal(store_tombstones(nodes[1].store), 1);
	assert_int_equal(store_tombstones(nodes[2].store), 1);
	advance_until_collected(two, 2);
	assert_int_equal(store_tombstones(nodes[1].store), 0);
	assert_int_equal(store_tombstones(nodes[2].store), 0);
}

/* Node 3 greets node 2 and says in its own status that it holds all node
 * 2 holds but has no writer yet (a store emptied, caught up, its next
 * writer not yet taken). Only node 2 hears it. */
static void writerless_3_greets_2(void)
{
	Msce__Hello h = MSCE__HELLO__INIT;
	Msce__NodeStatus st = MSCE__NODE_STATUS__INIT;
	struct vv_entry vv[8];
	Msce__VVEntry ve[8], *vp[8];
	size_t nv = store_vv(nodes[2].store, vv, 8);
	Msce__WriterInfo wi[2], *wp[2];
	uint32_t members[] = {1, 2, 3};
	uint8_t digest[32] = {0};

	for (uint32_t i = 0; i < 2; i++) { /* it believes theirs */
		msce__writer_info__init(&wi[i]);
		wi[i].node = i + 1;
		wi[i].writer = store_writer(nodes[i + 1].store, &wi[i].born);
		wp[i] = &wi[i];
	}
	for (size_t i = 0; i < nv; i++) {
		msce__vventry__init(&ve[i]);
		ve[i].origin = vv[i].origin;
		ve[i].seq = vv[i].seq;
		ve[i].hlc = vv[i].hlc;
		vp[i] = &ve[i];
	}

	hello_to(2, 3, &h);
	st.node = 3;
	st.n_vv = nv;
	st.vv = vp;
	st.hw = store_hlc_committed(nodes[2].store);
	st.digest.data = digest;
	st.digest.len = sizeof digest;
	st.time_ms = now;
	st.n_members = 3;
	st.members = members;
	st.n_writers = 2;
	st.writers = wp;
	status_to(2, 3, &st, 3);
}

/* A member whose writer no node has heard of may have had one: a writer
 * born and cut off at once, whose writes only one peer holds, and whose
 * store was then emptied. Until its next writer is born and believed,
 * nothing names the old one, so no tombstone is collected; afterwards
 * they are. */
static void no_collection_while_a_member_has_no_known_writer(void **state)
{
	const uint32_t all[] = {1, 2, 3};
	char why[192];
	struct err e;
	(void)state;
	start(1, two, 2, 0);
	start(2, two, 2, 0);
	connect_pair(1, 2);
	settle(all, 2);
	put_then_delete(all, 2);
	assert_int_equal(store_tombstones(nodes[2].store), 1);
	/* Node 3 is added. Until it speaks, collection waits for it, and
	 * says so. */
	assert_int_equal(repl_reconfigure(nodes[1].repl, three, 3, &e), 0);
	assert_int_equal(repl_reconfigure(nodes[2].repl, three, 3, &e), 0);
	advance(1000, all, 2); /* statuses of nodes 1 and 2 go out */
	advance(1000, all, 2);
	assert_int_equal(repl_gc_held(nodes[1].repl, why, sizeof why), 1);
	assert_string_equal(why, "no status from node 3 yet");
	start(3, three, 3, 0);
	writerless_3_greets_2();
	for (int i = 0; i < 10; i++) {
		advance(1000, all, 2);
		drop_queue(2, 3);
	}
	assert_int_equal(store_tombstones(nodes[2].store), 1);
	assert_int_equal(repl_gc_held(nodes[2].repl, why, sizeof why), 1);
	assert_non_null(strstr(why, "node 3 has no writer we know of"));
	/* Node 3 catches up, takes a writer, and every node believes it. */
	repl_link_down(nodes[2].repl, 3, now);
	connect_pair(2, 3);
	connect_pair(1, 3);
	settle(all, 3);
	assert_int_not_equal(store_writer(nodes[3].store, NULL), 0);
	advance_until_collected(all, 3);
	assert_int_equal(store_tombstones(nodes[2].store), 0);
	assert_int_equal(repl_gc_held(nodes[2].repl, why, sizeof why), 0);
}

/* Empty peers met so far do not make a new cluster: two empty stores of
 * a three-center city (a wiped center and a new one, say) wait for the
 * third, which may hold the history. Once every configured peer has
 * greeted them, empty, all three write. */
static void new_cluster_waits_for_every_peer(void **state)
{
	const uint32_t all[] = {1, 2, 3};
	char why[256];
	(void)state;
	start(1, three, 3, 0);
	start(2, three, 3, 0);
	connect_pair(1, 2);
	settle(all, 2);
	advance(1000, all, 2);
	for (uint32_t i = 1; i <= 2; i++) {
		assert_int_equal(store_writer(nodes[i].store, NULL), 0);
		assert_int_equal(repl_write_gate(nodes[i].repl, why, sizeof why),
				 MSCE_EBUSY);
		assert_non_null(strstr(why, "1 of 2 peers greeted"));
	}
	start(3, three, 3, 0);
	connect_pair(1, 3);
	connect_pair(2, 3);
	settle(all, 3);
	advance(1000, all, 3);
	for (uint32_t i = 1; i <= 3; i++)
		assert_int_not_equal(store_writer(nodes[i].store, NULL), 0);
}

/* The other side of that wait: nodes 2 and 3 each greet only node 1
 * (say, each refuses the other's clock). Node 1 has been greeted by every
 * configured peer, all empty, and writes; the two others greeted it while
 * it was empty, so they learn that it writes from its status, catch up
 * with it and write too. */
static void empty_peers_catch_up_with_one_that_writes_after_greeting(
    void **state)
{
	const uint32_t all[] = {1, 2, 3};
	(void)state;
	start(1, three, 3, 0);
	start(2, three, 3, 0);
	start(3, three, 3, 0);
	connect_pair(1, 2);
	connect_pair(1, 3);
	settle(all, 3);
	assert_int_not_equal(store_writer(nodes[1].store, NULL), 0);
	assert_int_equal(put(1, "k", "v"), 0);
	for (int i = 0; i < 10; i++)
		advance(1000, all, 3);
	for (uint32_t i = 2; i <= 3; i++) {
		assert_int_not_equal(store_writer(nodes[i].store, NULL), 0);
		assert_int_equal(store_vv_get(nodes[i].store,
						 store_writer(nodes[1].store, NULL))
					 .seq,
				 1);
	}
}

/* Nodes 1 and 2 hold 200 writes (and, with deletes, a delete of k3
 * every 20) with a log truncated to 10 changes; node 3 joins empty,
 * configured at all three but not yet linked. */
static void three_with_one_far_behind(int deletes)
{
	struct err e;
	start(1, two, 2, 10);
	start(2, two, 2, 10);
	connect_pair(1, 2);
	settle(two, 2);
	for (int k = 0; k < 200; k++) {
		char key[16];
		snprintf(key, sizeof key, "k%d", k % 50);
		assert_int_equal(put(1, key, "v"), 0);
		if (deletes && k % 20 == 0)
			assert_int_equal(su_del(nodes[1].store, "t", "k3", now),
					 0);
	}
	settle(two, 2);
	now += 2000;
	repl_tick(nodes[1].repl, now); /* truncates: retention 10 */
	settle(two, 2);
	assert_true(store_vv_get(nodes[1].store,
				 store_writer(nodes[1].store, NULL))
			.floor > 0);
	assert_int_equal(repl_reconfigure(nodes[1].repl, three, 3, &e), 0);
	assert_int_equal(repl_reconfigure(nodes[2].repl, three, 3, &e), 0);
	start(3, three, 3, 10);
}

static struct repl_snap_status snap_out(uint32_t a, uint32_t b)
{
	return peer_status(a, b).snap_out;
}

/* Node 3 joins far behind and links to node 1, until node 1 has begun
 * sending it a snapshot (its first chunk not yet delivered). */
static void node_3_asks_for_a_snapshot(void)
{
	three_with_one_far_behind(0);
	connect_pair(1, 3);
	for (int round = 0; round < 50 && !snap_out(1, 3).active; round++) {
		deliver(1, 3);
		deliver(3, 1);
	}
	assert_true(snap_out(1, 3).active);
}

/* The sender's read of its store lasts while it sends the chunks, not
 * while the receiver merges them: that may take long (a large store), and
 * every page freed meanwhile waits for the read to end. */
static void snapshot_read_ends_when_all_is_sent(void **state)
{
	(void)state;
	chunk_bytes = 1u << 20; /* one chunk, the last */
	node_3_asks_for_a_snapshot();
	assert_int_equal(snap_out(1, 3).chunks, 1);
	/* Sent, not yet merged, let alone acknowledged. */
	assert_int_equal(snap_reads, 0);
	const uint32_t pair[] = {1, 3};
	settle(pair, 2);
	assert_false(snap_out(1, 3).active);
	assert_int_equal(snap_reads, 0);
	assert_string_equal(su_get(nodes[3].store, "t", "k49", "v"), "v");
}

/* A receiver that acknowledges no chunk (an insider asking for snapshots
 * it does not need, its gossip keeping the link up) is let go after twice
 * the stall limit, and the read goes with the link. */
static void snapshot_not_acknowledged_lets_the_read_go(void **state)
{
	(void)state;
	stall_ms = 1000; /* let go at 2 s, before the 5 s of silence */
	node_3_asks_for_a_snapshot();
	assert_int_equal(snap_reads, 1);
	deliver(1, 3);	/* the first chunk: checked, acked... */
	drop_queue(3, 1); /* ...and the ack lost */
	now += 1500;
	repl_tick(nodes[1].repl, now);
	assert_int_equal(nodes[1].closed[3], 0); /* stalled, not let go */
	assert_true(snap_out(1, 3).stalled);
	assert_int_equal(snap_reads, 1);
	now += 1000;
	repl_tick(nodes[1].repl, now);
	assert_int_equal(nodes[1].closed[3], 1);
	assert_int_equal(nodes[1].close_code[3], MSCE_ETIMEOUT);
	assert_non_null(strstr(nodes[1].close_reason[3],
			       "acknowledged no snapshot chunk"));
	assert_int_equal(snap_reads, 0);
	assert_int_equal(state_of(1, 3), REPL_DOWN);
	assert_false(snap_out(1, 3).active);
	/* Node 3 comes back and catches up whole. */
	repl_link_down(nodes[3].repl, 1, now);
	drop_queue(1, 3);
	connect_pair(1, 3);
	const uint32_t pair[] = {1, 3};
	settle(pair, 2);
	assert_string_equal(su_get(nodes[3].store, "t", "k49", "v"), "v");
	assert_int_equal(snap_reads, 0);
}

static uint64_t diverged(uint32_t a, uint32_t b)
{
	struct repl_node_view v;
	repl_node(nodes[a].repl, b, &v);
	assert_true(v.known);
	return v.diverged_ms;
}

/* Equal vectors must hold equal data. A node reporting ours with another
 * digest is flagged once that lasts REPL_DIVERGED_MS over two of its
 * reports, and no longer once the digests agree; vectors that differ say
 * nothing (a peer behind has other data, rightly). */
static void other_data_at_the_same_vector_is_flagged(void **state)
{
	(void)state;
	start(1, two, 2, 1000);
	start(2, two, 2, 1000);
	connect_pair(1, 2);
	settle(two, 2);
	assert_int_equal(put(1, "k", "v"), 0);
	settle(two, 2);
	advance(1000, two, 2);
	assert_int_equal(diverged(1, 2), 0);
	digest_flip[2] = 1;
	uint64_t t0 = now;
	while (now < t0 + REPL_DIVERGED_MS - 1000)
		advance(500, two, 2);
	assert_int_equal(diverged(1, 2), 0); /* not for long enough yet */
	while (now < t0 + REPL_DIVERGED_MS + 2000)
		advance(500, two, 2);
	assert_true(diverged(1, 2) != 0);
	assert_true(diverged(1, 2) >= t0 && diverged(1, 2) <= t0 + 2000);
	assert_true(diverged(2, 1) != 0); /* and node 2 of node 1 */
	/* Node 2 falls behind: other data, rightly. */
	drop_queue(1, 2);
	repl_link_down(nodes[1].repl, 2, now);
	repl_link_down(nodes[2].repl, 1, now);
	assert_int_equal(put(1, "k2", "v"), 0);
	advance(1000, two, 2);
	assert_int_equal(diverged(1, 2), 0);
	/* Back, caught up, and the digests agree: nothing flagged. */
	digest_flip[2] = 0;
	connect_pair(1, 2);
	for (int i = 0; i < 15; i++)
		advance(1000, two, 2);
	assert_int_equal(diverged(1, 2), 0);
	assert_int_equal(diverged(2, 1), 0);
}

/* A peer below the log floor gets a snapshot; it arrives whole, all at
 * once, and the peer converges. */
static void snapshot_below_the_floor(void **state)
{
	struct repl_counters c1, c3;
	uint8_t d1[32], d3[32];
	(void)state;
	three_with_one_far_behind(1);
	connect_pair(1, 3);
	connect_pair(2, 3);
	const uint32_t all[] = {1, 2, 3};
	settle(all, 3);
	repl_counters(nodes[1].repl, &c1);
	repl_counters(nodes[3].repl, &c3);
	assert_true(c1.snapshots_sent + c3.snapshots_received > 0);
	store_digest(nodes[1].store, d1);
	store_digest(nodes[3].store, d3);
	assert_memory_equal(d1, d3, 32);
	assert_string_equal(su_get(nodes[3].store, "t", "k49", "v"), "v");
	assert_int_not_equal(store_writer(nodes[3].store, NULL), 0);
}

/* Adding a node to the configuration makes a peer of it; removing one
 * closes its link. */
static void reconfigure(void **state)
{
	struct repl_peer_status ps[N];
	struct err e;
	(void)state;
	start(1, two, 2, 0);
	assert_int_equal(repl_peers(nodes[1].repl, ps, N), 1);
	assert_int_equal(repl_reconfigure(nodes[1].repl, three, 3, &e), 0);
	assert_int_equal(repl_peers(nodes[1].repl, ps, N), 2);
	repl_link_up(nodes[1].repl, 3, now);
	const uint32_t one_three[] = {1, 3};
	assert_int_equal(repl_reconfigure(nodes[1].repl, one_three, 2, &e), 0);
	assert_int_equal(repl_peers(nodes[1].repl, ps, N), 1);
	assert_int_equal(ps[0].node, 3);
	const uint32_t without_me[] = {2, 3};
	assert_int_equal(repl_reconfigure(nodes[1].repl, without_me, 2, &e),
			 MSCE_EINVAL);
	uint32_t members[8];
	assert_int_equal(repl_members(nodes[1].repl, members, 8), 2);
}

/* Gossip carries each status as its node signed it. One that node 2 makes
 * up for node 3, which is away (signed with node 2's own key), and node
 * 3's own altered by node 2, are not believed, and counted as forgeries;
 * the link stays. Node 3's own, relayed as signed, is believed, and node
 * 1 relays it on to node 2 as it came. (Believed, a made-up status says a
 * center holds what it never got: tombstones are collected, logs cut.) */
static void relayed_statuses_are_checked(void **state)
{
	struct repl_counters c;
	struct repl_node_view v;
	Msce__NodeStatus st = MSCE__NODE_STATUS__INIT, alt;
	Msce__VVEntry ve = MSCE__VVENTRY__INIT, *vp = &ve, ve2, *vp2 = &ve2;
	struct vv_entry vv[4];
	uint32_t members[] = {1, 2, 3};
	uint8_t digest[32] = {7};
	struct err e;
	(void)state;
	for (uint32_t i = 1; i <= 3; i++)
		start(i, three, 3, 0);
	connect_pair(1, 2); /* node 3 is never linked: heard of, not from */
	settle(two, 2);
	assert_int_equal(store_set_writer(nodes[1].store, (0x10u << 16) | 1, 0,
					  now, &e),
			 0);
	assert_int_equal(put(1, "k", "v"), 0);
	settle(two, 2);
	assert_int_equal(store_vv(nodes[1].store, vv, 4), 1);
	ve.origin = vv[0].origin;
	ve.seq = vv[0].seq;
	ve.hlc = vv[0].hlc;
	st.node = 3;
	st.n_vv = 1;
	st.vv = &vp;
	st.digest.data = digest;
	st.digest.len = sizeof digest;
	st.hw = vv[0].hlc;
	st.time_ms = now;
	st.n_members = 3;
	st.members = members;

	status_to(1, 2, &st, 2); /* made up */
	repl_node(nodes[1].repl, 3, &v);
	assert_false(v.known);
	repl_counters(nodes[1].repl, &c);
	assert_int_equal(c.forged_refusals, 1);
	assert_int_equal(peer_status(1, 2).refused_forged, 1);

	status_to(1, 2, &st, 3); /* node 3's own */
	repl_node(nodes[1].repl, 3, &v);
	assert_true(v.known);
	assert_int_equal(v.vv[0].seq, vv[0].seq);

	alt = st; /* node 3's word, claiming more and newer */
	ve2 = ve;
	ve2.seq += 5;
	alt.vv = &vp2;
	alt.hw = st.hw + 1;
	alt.time_ms = st.time_ms + 1;
	signed_status_to(1, 2, &st, &alt, 3);
	repl_node(nodes[1].repl, 3, &v);
	assert_int_equal(v.vv[0].seq, vv[0].seq);
	assert_int_equal(v.hw, st.hw);
	repl_counters(nodes[1].repl, &c);
	assert_int_equal(c.forged_refusals, 2);
	assert_int_equal(state_of(1, 2), REPL_ACTIVE);
	assert_int_equal(nodes[1].closed[2], 0);

	st.node = 9; /* no key configured: left out, not a forgery */
	status_to(1, 2, &st, 9);
	repl_node(nodes[1].repl, 9, &v);
	assert_false(v.known);
	repl_counters(nodes[1].repl, &c);
	assert_int_equal(c.forged_refusals, 2);

	advance(1000, two, 2); /* node 1 gossips */
	repl_node(nodes[2].repl, 3, &v);
	assert_true(v.known);
	assert_int_equal(v.vv[0].seq, vv[0].seq);
	repl_counters(nodes[2].repl, &c);
	assert_int_equal(c.forged_refusals, 0);
}

/* A status taken from its node itself wins over the one held, with its
 * birth raised above it (node 3 restored: no writer, born 0), and its
 * relays pass that order on beside the signature: node 2, which held node
 * 3's earlier status, takes node 1's relay of the new one. */
static void raised_birth_travels_with_a_relayed_status(void **state)
{
	struct repl_node_view v;
	Msce__Hello h = MSCE__HELLO__INIT;
	Msce__NodeStatus old = MSCE__NODE_STATUS__INIT, fresh;
	uint32_t members[] = {1, 2, 3};
	uint8_t digest[32] = {3};
	const uint32_t w = (5u << 16) | 3;
	(void)state;
	for (uint32_t i = 1; i <= 3; i++)
		start(i, three, 3, 0);
	connect_pair(1, 2);
	settle(two, 2);
	old.node = 3;
	old.digest.data = digest;
	old.digest.len = sizeof digest;
	old.time_ms = now;
	old.n_members = 3;
	old.members = members;
	old.writer = w;
	old.born = hlc_make(now, 0);
	old.settled = 1;
	status_to(1, 2, &old, 3); /* relayed: both hold it */
	status_to(2, 1, &old, 3);
	repl_node(nodes[2].repl, 3, &v);
	assert_int_equal(v.writer, w);

	fresh = old; /* restored: no writer yet */
	fresh.writer = 0;
	fresh.born = 0;
	fresh.settled = 0;
	fresh.time_ms = now + 1;
	hello_to(1, 3, &h);
	status_to(1, 3, &fresh, 3);
	repl_node(nodes[1].repl, 3, &v);
	assert_int_equal(v.writer, 0);
	assert_true(v.born > old.born);

	advance(1000, two, 2); /* node 1 gossips */
	repl_node(nodes[2].repl, 3, &v);
	assert_int_equal(v.writer, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(session_and_streaming, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(silent_link_goes_down_after_a_step_back,
					    setup, teardown),
	    cmocka_unit_test_setup_teardown(link_survives_a_step_forward, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(silent_link_goes_down, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(refusals, setup, teardown),
	    cmocka_unit_test_setup_teardown(lag_of_a_peer_that_holds_nothing,
					    setup, teardown),
	    cmocka_unit_test_setup_teardown(lag_unknown_until_the_peer_speaks,
					    setup, teardown),
	    cmocka_unit_test_setup_teardown(
		store_refusing_applies_keeps_the_link, setup, teardown),
	    cmocka_unit_test_setup_teardown(origin_without_room_refused_alone,
					    setup, teardown),
	    cmocka_unit_test_setup_teardown(
		snapshot_without_room_refused_alone, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		writer_born_in_the_future_not_believed, setup, teardown),
	    cmocka_unit_test_setup_teardown(new_store_waits_for_a_writing_peer,
					    setup, teardown),
	    cmocka_unit_test_setup_teardown(
		writer_given_up_when_a_peer_holds_more, setup, teardown),
	    cmocka_unit_test_setup_teardown(tie_of_births_lower_gives_up,
					    setup, teardown),
	    cmocka_unit_test_setup_teardown(tie_of_births_higher_keeps, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(tie_of_births_loser_retires, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(
		no_collection_while_a_member_has_no_known_writer, setup,
		teardown),
	    cmocka_unit_test_setup_teardown(new_cluster_waits_for_every_peer,
					    setup, teardown),
	    cmocka_unit_test_setup_teardown(
		empty_peers_catch_up_with_one_that_writes_after_greeting,
		setup, teardown),
	    cmocka_unit_test_setup_teardown(snapshot_below_the_floor, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(
		snapshot_read_ends_when_all_is_sent, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		snapshot_not_acknowledged_lets_the_read_go, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		other_data_at_the_same_vector_is_flagged, setup, teardown),
	    cmocka_unit_test_setup_teardown(reconfigure, setup, teardown),
	    cmocka_unit_test_setup_teardown(relayed_statuses_are_checked, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(
		raised_birth_travels_with_a_relayed_status, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
