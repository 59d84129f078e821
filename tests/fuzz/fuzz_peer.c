/* SPDX-License-Identifier: Apache-2.0 */
/* fuzz_peer: hostile peer messages into a replication core on a real store.
 *
 * We are node 1 of a three-node cluster with links to nodes 2 and 3. The
 * input is one flags byte, then records (fuzz_frame.h) whose body is an
 * encoded msce.PeerMsg fed to repl_recv as if it came from node 2 or 3.
 *
 *   flags bit 0: both peers first send a valid Hello (sessions ACTIVE), so
 *                the fuzzer reaches Changes, Ack, Snapshot and Gossip fast
 *   flags bit 1: a few local writes first, so that the core has changes to
 *                stream and (log retention is tiny) snapshots to send
 *   header bit 0: from node 3 instead of node 2
 *   header bit 1: the link goes down and up again first
 *   header bit 2: leave the applies this call asks for pending until a
 *                 later record (to queue batches behind a running apply)
 *   header bit 3: run repl_tick first
 *   header bits 4-7: advance the clock by that many 250 ms steps first
 *
 * The harness is a driver as the core expects one to be: applies run on
 * the store after the call that requested them returns (never inside it),
 * a close is followed by link down then link up (an instant reconnect).
 * What the core sends must decode as a PeerMsg within the message limit:
 * anything else aborts, as do ASan/UBSan reports.
 *
 * The core is new for every input; the store is kept between inputs and
 * replaced every MSCE_FUZZ_REOPEN inputs (fuzz_store.h). Set
 * MSCE_FUZZ_VERBOSE=1 to see what the core says and does (to read a
 * seed or a crash). */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bounds.h"
#include "fuzz_fixed.h"
#include "fuzz_frame.h"
#include "fuzz_store.h"
#include "hlc.h"
#include "peer.pb-c.h"
#include "repl.h"
#include "version.h"

#define T0 FUZZ_T0
#define CLUSTER FUZZ_CLUSTER
#define SELF 1
#define MAX_JOBS 16

struct job {
	uint64_t token;
	const struct store_blob *b;
	size_t n;
	const struct store_snap_chunk *chunk; /* a snapshot chunk instead */
	const struct seg *g;
	size_t ng;
};

struct harness {
	struct store *store;
	struct repl *repl;
	struct repl_store_ops ops;
	struct repl_io io;
	uint64_t now;
	int in_core;
	int closed[4]; /* by node id: the core asked to close the link */
	struct job jobs[MAX_JOBS];
	size_t njobs;
};

static struct harness H;
static int verbose = -1;

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
	va_list ap;

	if (!verbose)
		return;
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/* ---- store operations: thin wrappers, as in msced and the simulator ---- */

static size_t op_vv(void *ctx, struct vv_entry *out, size_t max)
{
	return store_vv(((struct harness *)ctx)->store, out, max);
}

/* The fuzzer cannot sign: statuses pass as signed, so that what they say
 * is fuzzed (test_repl and the simulator check the signatures). */
static int op_status_sign(void *ctx, const uint8_t *m, size_t len,
			  uint8_t sig[64])
{
	(void)ctx;
	(void)m;
	(void)len;
	memset(sig, 0, 64);
	return 0;
}

static int op_status_verify(void *ctx, uint32_t node, const uint8_t *m,
			    size_t len, const uint8_t sig[64])
{
	(void)ctx;
	(void)node;
	(void)m;
	(void)len;
	(void)sig;
	return 0;
}

static size_t op_state(void *ctx, struct vv_entry *vv, size_t max,
		       uint8_t digest[32], uint64_t *hw)
{
	return store_state(((struct harness *)ctx)->store, vv, max, digest,
			   hw);
}

static int op_log_read(void *ctx, uint32_t origin, uint64_t from,
		       size_t max_count, size_t max_bytes, store_log_cb cb,
		       store_seg_cb seg_cb, void *cbctx, struct err *e)
{
	return store_log_read_segs(((struct harness *)ctx)->store, origin,
				   from, max_count, max_bytes, cb, seg_cb,
				   cbctx, e);
}

static size_t op_seals(void *ctx, struct seg *out, size_t max)
{
	return store_seals(((struct harness *)ctx)->store, out, max);
}

static int op_add_seals(void *ctx, const struct seg *g, size_t n,
			struct err *e)
{
	return store_add_seals(((struct harness *)ctx)->store, g, n, e);
}

static int op_log_truncate(void *ctx, uint32_t origin, uint64_t upto,
			   struct err *e)
{
	return store_log_truncate(((struct harness *)ctx)->store, origin, upto,
				  e);
}

static int op_gc(void *ctx, const struct vv_entry *upto, size_t n,
		 size_t *dropped, struct err *e)
{
	return store_gc_tombstones(((struct harness *)ctx)->store, upto, n,
				   dropped, e);
}

static uint32_t op_writer(void *ctx, uint64_t *born)
{
	return store_writer(((struct harness *)ctx)->store, born);
}

static int op_set_writer(void *ctx, uint32_t w, uint64_t floor,
			 struct err *e)
{
	struct harness *h = ctx;
	return store_set_writer(h->store, w, floor, h->now, e);
}

static int op_snap_begin(void *ctx, struct store_snap **out, struct err *e)
{
	return store_snap_begin(((struct harness *)ctx)->store, out, e);
}

/* ---- I/O callbacks ------------------------------------------------------- */

static void check_peer(struct harness *h, uint32_t peer, const char *what)
{
	if (!h->in_core) {
		fprintf(stderr, "fuzz_peer: io->%s outside a core call\n",
			what);
		abort();
	}
	if (peer != 2 && peer != 3) {
		fprintf(stderr, "fuzz_peer: io->%s for unknown peer %u\n", what,
			peer);
		abort();
	}
}

static void io_send(void *data, uint32_t peer, const uint8_t *buf, size_t len)
{
	struct harness *h = data;
	Msce__PeerMsg *m;

	check_peer(h, peer, "send");
	if (len > MSCE_MAX_MESSAGE) {
		fprintf(stderr,
			"fuzz_peer: core sent %zu bytes to node %u, over the "
			"%u-byte message limit\n",
			len, peer, MSCE_MAX_MESSAGE);
		abort();
	}
	m = msce__peer_msg__unpack(NULL, len, buf);
	if (m == NULL) {
		fprintf(stderr,
			"fuzz_peer: core sent %zu bytes to node %u that do not "
			"decode as a PeerMsg\n",
			len, peer);
		abort();
	}
	say("  send to %u: PeerMsg case %d, %zu bytes", peer, (int)m->msg_case,
	    len);
	msce__peer_msg__free_unpacked(m, NULL);
}

static void io_trace(void *data, int level, const char *msg)
{
	(void)data;
	say("  trace %d: %s", level, msg);
}

static void io_close(void *data, uint32_t peer, int code, const char *reason)
{
	struct harness *h = data;

	(void)code;
	(void)reason;
	check_peer(h, peer, "close");
	say("  close %u: %s: %s", peer, err_name(code), reason);
	h->closed[peer] = 1;
}

static void io_apply(void *data, uint64_t token, const struct store_blob *b,
		     size_t n, const struct seg *g, size_t ng)
{
	struct harness *h = data;

	if (!h->in_core) {
		fprintf(stderr, "fuzz_peer: io->apply outside a core call\n");
		abort();
	}
	if (h->njobs == MAX_JOBS) {
		fprintf(stderr, "fuzz_peer: more than %d applies pending\n",
			MAX_JOBS);
		abort();
	}
	h->jobs[h->njobs++] = (struct job){token, b, n, NULL, g, ng};
}

static void io_snapshot(void *data, uint64_t token,
			const struct store_snap_chunk *c)
{
	struct harness *h = data;

	io_apply(data, token, NULL, 0, NULL, 0);
	h->jobs[h->njobs - 1].chunk = c;
}

static uint32_t io_random(void *data)
{
	(void)data;
	return 12345; /* deterministic: the input decides everything */
}

/* ---- driving the core ---------------------------------------------------- */

static void enter(struct harness *h)
{
	if (h->in_core) {
		fprintf(stderr, "fuzz_peer: core entered from its callback\n");
		abort();
	}
	h->in_core = 1;
}

static void leave(struct harness *h)
{
	h->in_core = 0;
}

/* Links the core asked to close go down and come straight back up. */
static void reconnect_closed(struct harness *h)
{
	for (uint32_t p = 2; p <= 3; p++) {
		if (!h->closed[p])
			continue;
		h->closed[p] = 0;
		enter(h);
		repl_link_down(h->repl, p, h->now);
		leave(h);
		enter(h);
		repl_link_up(h->repl, p, h->now);
		leave(h);
	}
}

/* Runs the pending applies in order, and those their completion starts. */
static void run_jobs(struct harness *h)
{
	while (h->njobs > 0) {
		struct job j = h->jobs[0];
		struct store_apply_result res;
		struct err e;
		int rc;

		memmove(h->jobs, h->jobs + 1, --h->njobs * sizeof *h->jobs);
		memset(&res, 0, sizeof res);
		err_clear(&e);
		if (j.chunk != NULL) {
			rc = store_snap_apply(h->store, j.chunk, &e);
			say("  snapshot chunk of %zu records: %s %s", j.chunk->n,
			    err_name(rc), e.msg);
			enter(h);
			repl_snapshot_done(h->repl, j.token, rc, &e, h->now);
			leave(h);
			reconnect_closed(h);
			continue;
		}
		rc = store_apply_signed(h->store, j.b, j.n, j.g, j.ng, h->now,
					60000, &res, &e);
		say("  apply %zu changes: %s, %zu applied, %zu dups %s", j.n,
		    err_name(rc), res.applied, res.duplicates, e.msg);
		enter(h);
		repl_apply_done(h->repl, j.token, rc, &res, &e, h->now);
		leave(h);
		reconnect_closed(h);
	}
}

static void recv_msg(struct harness *h, uint32_t peer, const uint8_t *msg,
		     size_t len)
{
	enter(h);
	repl_recv(h->repl, peer, msg, len, h->now);
	leave(h);
	reconnect_closed(h);
}

static void send_hello(struct harness *h, uint32_t peer)
{
	Msce__PeerMsg m = MSCE__PEER_MSG__INIT;
	Msce__Hello hello = MSCE__HELLO__INIT;
	uint8_t buf[256];
	size_t n;

	hello.node = peer;
	hello.cluster = CLUSTER;
	hello.protocol = MSCE_PROTOCOL_VERSION;
	hello.time_ms = h->now;
	m.msg_case = MSCE__PEER_MSG__MSG_HELLO;
	m.hello = &hello;
	n = msce__peer_msg__pack(&m, buf);
	recv_msg(h, peer, buf, n);
}

/* A few records written locally, so there is a log of our own to stream. */
static void local_writes(struct harness *h)
{
	static const char *keys[] = {"a", "b", "c", "d", "e", "f"};
	struct store_field_in f = {.name = "v",
				   .name_len = 1,
				   .value = (const uint8_t *)"value",
				   .value_len = 5};
	struct store_write w[6];
	struct store_written out[6];
	struct err e;

	for (int i = 0; i < 6; i++)
		w[i] = (struct store_write){.op = i == 5 ? STORE_DELETE
							 : STORE_PUT,
					    .coll = "users",
					    .coll_len = 5,
					    .key = keys[i % 5],
					    .key_len = 1,
					    .fields = &f,
					    .nfields = i == 5 ? 0 : 1};
	err_clear(&e);
	store_write(h->store, w, 6, h->now, out, &e);
}

static const uint32_t nodes[] = {1, 2, 3};

/* What msced's status request reads, over the state the input built. */
static void status(struct harness *h)
{
	struct repl_peer_status ps[4];
	struct repl_node_view *v = malloc(sizeof *v);
	struct repl_counters c;
	size_t n = repl_peers(h->repl, ps, 4);

	if (n != 2) {
		fprintf(stderr, "fuzz_peer: repl_peers says %zu peers\n", n);
		abort();
	}
	for (uint32_t id = 1; v != NULL && id <= 4; id++) {
		repl_node(h->repl, id, v);
		if (v->nvv > sizeof v->vv / sizeof v->vv[0]) {
			fprintf(stderr,
				"fuzz_peer: view of %u has %zu entries\n", id,
				v->nvv);
			abort();
		}
	}
	free(v);
	repl_counters(h->repl, &c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct harness *h = &H;
	struct repl_config cfg = {.node_id = SELF,
				  .cluster = CLUSTER,
				  .nodes = nodes,
				  .nnodes = 3,
				  .max_skew_ms = 60000,
				  /* Small everything, to reach batching,
				   * truncation and multi-chunk snapshots. */
				  .window_bytes = 4096,
				  .batch_bytes = 1024,
				  .batch_changes = 4,
				  .log_retention = 4,
				  .gossip_interval_ms = 100,
				  .retry_ms = 500,
				  .relay_delay_ms = 100,
				  .truncate_interval_ms = 100,
				  .snapshot_chunk_bytes = 512};
	struct fuzz_reader rd;
	const uint8_t *body;
	uint8_t flags = 0, hdr;
	size_t len;
	struct err e;
	int fresh;

	if (verbose < 0)
		verbose = getenv("MSCE_FUZZ_VERBOSE") != NULL;
	if (size > 0) {
		flags = data[0];
		data++;
		size--;
	}
	h->store = fuzz_store_begin(SELF, CLUSTER, &fresh);
	h->now = T0;
	h->njobs = 0;
	memset(h->closed, 0, sizeof h->closed);
	h->ops = (struct repl_store_ops){
	    .ctx = h,
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
	    .snap_end = store_snap_end,
	    .snap_segs = store_snap_segs,
	    .seals = op_seals,
	    .add_seals = op_add_seals,
	    .prepare = store_prepare,
	    .prep_bytes = store_prep_bytes,
	    .prep_free = store_prep_free,
	};
	h->io = (struct repl_io){.data = h,
				 .send = io_send,
				 .close = io_close,
				 .apply = io_apply,
				 .snapshot = io_snapshot,
				 .random = io_random,
				 .trace = io_trace};
	if (flags & 2)
		local_writes(h);
	err_clear(&e);
	if (repl_create(&cfg, &h->ops, &h->io, h->now, &h->repl, &e)) {
		fprintf(stderr, "fuzz_peer: repl_create: %s\n", e.msg);
		abort();
	}
	for (uint32_t p = 2; p <= 3; p++) {
		enter(h);
		repl_link_up(h->repl, p, h->now);
		leave(h);
	}
	if (flags & 1) {
		send_hello(h, 2);
		send_hello(h, 3);
		run_jobs(h);
	}

	rd = (struct fuzz_reader){data, size};
	while (fuzz_next(&rd, &hdr, &body, &len)) {
		uint32_t peer = hdr & 1 ? 3 : 2;

		h->now += (uint64_t)(hdr >> 4) * 250;
		if (hdr & 2) {
			enter(h);
			repl_link_down(h->repl, peer, h->now);
			leave(h);
			enter(h);
			repl_link_up(h->repl, peer, h->now);
			leave(h);
		}
		if (hdr & 8) {
			enter(h);
			repl_tick(h->repl, h->now);
			leave(h);
			reconnect_closed(h);
		}
		say("recv from %u: %zu bytes (header 0x%02x)", peer, len, hdr);
		recv_msg(h, peer, body, len);
		if (!(hdr & 4))
			run_jobs(h);
	}
	run_jobs(h);
	enter(h);
	repl_tick(h->repl, h->now + 1000);
	leave(h);
	reconnect_closed(h);
	run_jobs(h);
	status(h);
	repl_destroy(h->repl);
	h->repl = NULL;
	return 0;
}
