/* SPDX-License-Identifier: Apache-2.0 */
/* fuzz_client: hostile client requests through the real dispatch
 * (server/api.c and server/watch.c, compiled into this target) on a real
 * store.
 *
 * The input is a sequence of records (fuzz_frame.h); each body is one
 * encoded msce.ClientRequest handed to api_request on a connection of its
 * own, so that a put can be followed by the get, scan, watch and status
 * that read it. Header bits 1-2 pick the connection's role (admin, ro,
 * rw, admin), bit 3 lets 5 s pass first (min_sites waiters time out),
 * bit 4 closes the write gate (node_write_gate refuses), bit 0 marks the
 * node as stopping for that request. Backup requests are
 * skipped: they write wherever the request says.
 *
 * The neighbours of api.c and watch.c are stubs here, so that no socket,
 * thread or event loop is involved: the client connection (client_conn_*,
 * normally uv_client.c), the group-commit writer (writer_submit runs the
 * write on the store at once and calls done), the peer network's counters,
 * the node's write gate and the clock; the thread pool (uv_queue_work,
 * which the person, erase and retention requests use) runs its work at
 * once. When api.c starts calling another
 * function of those files, add its stub below. The replication core is real,
 * with no link up. Oracles beyond ASan/UBSan: a reply never comes without a
 * hold, every reply decodes as a msce.ClientResponse, and once streams are
 * closed and waiters timed out at the end of the input no hold is left. The
 * store is kept between inputs (fuzz_store.h). MSCE_FUZZ_VERBOSE=1 prints every
 * reply's id, code and error. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client.pb-c.h"
#include "fuzz_fixed.h"
#include "fuzz_frame.h"
#include "fuzz_store.h"
#include "node.h"

#define T0 FUZZ_T0
#define CLUSTER FUZZ_CLUSTER
#define SELF 1

static const char CONFIG[] = "[cluster]\n"
			     "name = " CLUSTER "\n"
			     "[node]\n"
			     "id = 1\n"
			     "name = one\n"
			     "data_dir = /nonexistent\n"
			     "key = /nonexistent.key\n"
			     "listen = 127.0.0.1:7401\n"
			     "[peer two]\n"
			     "id = 2\n"
			     "address = 127.0.0.1:7402\n"
			     "public_key = "
			     "AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI=\n"
			     "[peer three]\n"
			     "id = 3\n"
			     "address = 127.0.0.1:7403\n"
			     "public_key = "
			     "AwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwM=\n";

static uint64_t clock_ms = T0;
static int verbose = -1;

/* ---- stubs for what api.c and watch.c call outside themselves ---------- */

#define MAX_CONNS 256

struct client_conn {
	int holds;
	int replies;
	int role;
};

void client_conn_hold(struct client_conn *c)
{
	c->holds++;
}

void client_conn_reply(struct client_conn *c, const uint8_t *msg, size_t len)
{
	Msce__ClientResponse *r;

	if (c->holds <= 0) {
		fprintf(stderr, "fuzz_client: reply without a hold\n");
		abort();
	}
	c->holds--;
	c->replies++;
	r = msce__client_response__unpack(NULL, len, msg);
	if (r == NULL) {
		fprintf(stderr,
			"fuzz_client: a %zu-byte reply that does not decode "
			"as a ClientResponse\n",
			len);
		abort();
	}
	if (verbose)
		fprintf(stderr, "reply %llu: code %u (%s) result %d\n",
			(unsigned long long)r->id, r->code, r->error,
			(int)r->result_case);
	msce__client_response__free_unpacked(r, NULL);
}

void client_conn_close(struct client_conn *c)
{
	(void)c;
}

int client_conn_role(const struct client_conn *c)
{
	return c->role;
}

const char *client_conn_name(const struct client_conn *c)
{
	(void)c;
	return "fuzz";
}

size_t client_conn_max_reply(const struct client_conn *c)
{
	(void)c;
	return CLIENT_MAX_REPLY_UNIX;
}

int client_conn_remote(const struct client_conn *c)
{
	(void)c;
	return 0; /* as the unix socket */
}

size_t client_conn_queued(const struct client_conn *c)
{
	(void)c;
	return 0;
}

void client_server_hold_reads(struct client_server *s, int on)
{
	(void)s;
	(void)on;
}

int client_conn_open(const struct client_conn *c)
{
	(void)c;
	return 1;
}

void client_server_stats(const struct client_server *s,
			 struct client_server_stats *out)
{
	(void)s;
	memset(out, 0, sizeof *out);
}

uint64_t node_now_ms(void)
{
	return clock_ms;
}

static int gate_closed; /* header bit 4 */

int node_write_gate(struct node *n, char *why, size_t whylen)
{
	(void)n;
	if (!gate_closed)
		return 0;
	snprintf(why, whylen, "fuzz: writes gated");
	return MSCE_EUNAVAIL;
}

void peer_net_stats(const struct peer_net *n, struct peer_net_stats *out)
{
	(void)n;
	memset(out, 0, sizeof *out);
}

static struct store *cur_store;

void writer_submit(struct writer *w, struct writer_job *j)
{
	(void)w;
	if (j->kind != WRITER_WRITE) {
		fprintf(stderr, "fuzz_client: unexpected writer job %d\n",
			(int)j->kind);
		abort();
	}
	err_clear(&j->err);
	j->rc = store_write(cur_store, j->w, j->n, clock_ms, j->out, &j->err);
	j->done(j);
}

/* The subject work of api_person.c: done at once, on this thread. */
int uv_queue_work(uv_loop_t *loop, uv_work_t *req, uv_work_cb work_cb,
		  uv_after_work_cb after_work_cb)
{
	(void)loop;
	work_cb(req);
	after_work_cb(req, 0);
	return 0;
}

/* ---- the replication core, idle ------------------------------------- */

static size_t op_vv(void *ctx, struct vv_entry *out, size_t max)
{
	(void)ctx;
	return store_vv(cur_store, out, max);
}

static int op_status_sign(void *ctx, const uint8_t *m, size_t len,
			  uint8_t sig[64])
{
	(void)ctx;
	return store_status_sign(cur_store, m, len, sig);
}

static int op_status_verify(void *ctx, uint32_t node, const uint8_t *m,
			    size_t len, const uint8_t sig[64])
{
	(void)ctx;
	return store_status_verify(cur_store, node, m, len, sig);
}

static size_t op_state(void *ctx, struct vv_entry *vv, size_t max,
		       uint8_t digest[32], uint64_t *hw)
{
	(void)ctx;
	return store_state(cur_store, vv, max, digest, hw);
}

static int op_log_read(void *ctx, uint32_t origin, uint64_t from,
		       size_t max_count, size_t max_bytes, store_log_cb cb,
		       store_seg_cb seg_cb, void *cbctx, struct err *e)
{
	(void)ctx;
	return store_log_read_segs(cur_store, origin, from, max_count,
				   max_bytes, cb, seg_cb, cbctx, e);
}

static void io_send(void *data, uint32_t peer, const uint8_t *buf, size_t len)
{
	(void)data;
	(void)peer;
	(void)buf;
	(void)len;
}

static void io_close(void *data, uint32_t peer, int code, const char *reason)
{
	(void)data;
	(void)peer;
	(void)code;
	(void)reason;
}

static void io_apply(void *data, uint64_t token, const struct store_blob *b,
		     size_t n, const struct seg *g, size_t ng)
{
	(void)data;
	(void)token;
	(void)b;
	(void)n;
	(void)g;
	(void)ng;
	fprintf(stderr, "fuzz_client: apply without a link\n");
	abort();
}

static uint32_t op_writer(void *ctx, uint64_t *born)
{
	(void)ctx;
	return store_writer(cur_store, born);
}

static const struct repl_store_ops ops = {
    .vv = op_vv,
    .state = op_state,
    .status_sign = op_status_sign,
    .status_verify = op_status_verify,
    .writer = op_writer,
    .log_read = op_log_read,
};
static const struct repl_io io = {
    .send = io_send, .close = io_close, .apply = io_apply};
static uint32_t nodes[] = {1, 2, 3};

/* ---- the node -------------------------------------------------------- */

static struct node N;

static void setup(void)
{
	struct err e;

	err_clear(&e);
	if (config_parse_string(CONFIG, "fuzz.conf", &N.cfg, &e)) {
		fprintf(stderr, "fuzz_client: config: %s\n", e.msg);
		abort();
	}
	N.nodes = nodes;
	N.nnodes = 3;
}

static int roles[4] = {CONFIG_ROLE_ADMIN, CONFIG_ROLE_RO, CONFIG_ROLE_RW,
		       CONFIG_ROLE_ADMIN};

/* Backups write files where the request says: not in a fuzzer. */
static int is_backup(const uint8_t *p, size_t n)
{
	Msce__ClientRequest *r = msce__client_request__unpack(NULL, n, p);
	int skip = r != NULL && r->op_case == MSCE__CLIENT_REQUEST__OP_BACKUP;

	msce__client_request__free_unpacked(r, NULL);
	return skip;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct client_conn conns[MAX_CONNS];
	struct repl_config rc = {
	    .node_id = SELF, .cluster = CLUSTER, .nodes = nodes, .nnodes = 3};
	struct fuzz_reader rd = {data, size};
	const uint8_t *body;
	uint8_t hdr;
	size_t len, nc = 0;
	struct err e;
	int fresh;

	if (N.nnodes == 0)
		setup();
	if (verbose < 0)
		verbose = getenv("MSCE_FUZZ_VERBOSE") != NULL;
	cur_store = fuzz_store_begin(SELF, CLUSTER, &fresh);
	N.store = cur_store;
	N.stopping = 0;
	err_clear(&e);
	if (repl_create(&rc, &ops, &io, clock_ms, &N.repl, &e)) {
		fprintf(stderr, "fuzz_client: repl_create: %s\n", e.msg);
		abort();
	}
	while (nc < MAX_CONNS && fuzz_next(&rd, &hdr, &body, &len)) {
		struct client_conn *c = &conns[nc++];

		*c = (struct client_conn){0, 0, roles[hdr >> 1 & 3]};
		if (is_backup(body, len))
			continue;
		clock_ms += hdr & 8 ? 5000 : 1;
		N.stopping = hdr & 1;
		gate_closed = hdr >> 4 & 1;
		api_request(&N, c, body, len);
		N.stopping = 0;
		gate_closed = 0;
		api_check_waiters(&N);
	}
	/* End of input: waiters time out, streams close. */
	clock_ms += 3600 * 1000;
	api_check_waiters(&N);
	N.stopping = 1;
	watch_close_all(&N);
	api_check_waiters(&N);
	N.stopping = 0;
	for (size_t i = 0; i < nc; i++)
		if (conns[i].holds != 0) {
			fprintf(stderr,
				"fuzz_client: request %zu left %d holds after "
				"%d replies\n",
				i, conns[i].holds, conns[i].replies);
			abort();
		}
	repl_destroy(N.repl);
	N.repl = NULL;
	return 0;
}
