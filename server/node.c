/* SPDX-License-Identifier: Apache-2.0 */
/* Node wiring and lifecycle.
 *
 * Start: load config and key, open the store (which locks the data
 * directory: a second msced on it is refused before it reads the store),
 * start the writer thread, create the replication core with
 * store ops (reads direct, batch applies through the writer), start the
 * peer links and the client socket, and a 50 ms tick for the core's
 * timers.
 *
 * Stop (SIGTERM): refuse new work, let the writer commit what is queued
 * (apply completions still reach the core and are acknowledged), then close
 * the peer links and the client socket, then free the core and close the
 * store (releasing the directory lock). Each asynchronous close counts
 * down closing_parts. */
#include "node.h"
#include "seg.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "keyfile.h"
#include "log.h"
#include "uv_metrics.h"

uint64_t node_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* ---- store ops for the core ------------------------------------------ */

static struct node *node_of_store(void *ctx) { return ctx; }
#define STORE(ctx) (node_of_store(ctx)->store)

static size_t op_vv(void *ctx, struct vv_entry *out, size_t max)
{
	return store_vv(STORE(ctx), out, max);
}
static size_t op_state(void *ctx, struct vv_entry *vv, size_t max,
		       uint8_t digest[32], uint64_t *hw)
{
	return store_state(STORE(ctx), vv, max, digest, hw);
}
static int op_status_sign(void *ctx, const uint8_t *m, size_t len,
			  uint8_t sig[64])
{
	return store_status_sign(STORE(ctx), m, len, sig);
}
static int op_status_verify(void *ctx, uint32_t node, const uint8_t *m,
			    size_t len, const uint8_t sig[64])
{
	return store_status_verify(STORE(ctx), node, m, len, sig);
}
static int op_log_read(void *ctx, uint32_t origin, uint64_t from,
		       size_t max_count, size_t max_bytes, store_log_cb cb,
		       store_seg_cb seg_cb, void *cbctx, struct err *e)
{
	return store_log_read_segs(STORE(ctx), origin, from, max_count,
				   max_bytes, cb, seg_cb, cbctx, e);
}
static size_t op_seals(void *ctx, struct seg *out, size_t max)
{
	return store_seals(STORE(ctx), out, max);
}

/* Seals a peer sent: checked here, kept by the writer thread (the commit
 * must not stall the loop). */
struct seals_job {
	struct writer_job job;
	struct seg *g;
	size_t n;
};
static int call_seals(struct store *s, void *arg, struct err *e)
{
	struct seals_job *j = arg;
	return store_add_seals(s, j->g, j->n, e);
}
static void seals_done(struct writer_job *j)
{
	struct seals_job *sj = (struct seals_job *)j;
	if (j->rc)
		log_warn("keeping seals: %s", j->err.msg);
	free(sj->g);
	free(sj);
}
static int op_add_seals(void *ctx, const struct seg *g, size_t n,
			struct err *e)
{
	struct node *nd = node_of_store(ctx);
	struct seals_job *j;
	size_t fresh = 0;
	int rc = store_check_seals(STORE(ctx), g, n, &fresh, e);
	if (rc != 0 || fresh == 0 || nd->stopping)
		return rc;
	j = calloc(1, sizeof *j);
	if (j == NULL || (j->g = malloc(n * sizeof *g)) == NULL) {
		free(j);
		return 0; /* they come again with the next Hello */
	}
	memcpy(j->g, g, n * sizeof *g);
	j->n = n;
	j->job.kind = WRITER_CALL;
	j->job.call = call_seals;
	j->job.call_arg = j;
	j->job.done = seals_done;
	writer_submit(nd->writer, &j->job);
	return 0;
}
/* Maintenance writes (log truncation, tombstone collection, the clock
 * high-water) run on the writer thread: their fsync must not stall the
 * loop. The core needs no answer; failures are logged. */
struct call_job {
	struct writer_job job;
	struct node *n;
	const char *what;
	uint32_t origin;
	uint64_t u64;
	struct vv_entry *upto;
	size_t nupto;
	uint64_t dropped; /* log truncation: changes dropped */
};

static int call_gc(struct store *s, void *arg, struct err *e);
static int call_truncate(struct store *s, void *arg, struct err *e);

static void call_done(struct writer_job *j)
{
	struct call_job *c = (struct call_job *)j;
	/* A failed store logged its failure once; its background jobs,
	 * refused every second meanwhile, need not say it again. */
	if (j->rc)
		log_msg(j->rc == MSCE_EREADONLY ? LOG_DEBUG : LOG_WARN,
			"%s: %s", c->what, j->err.msg);
	else if (c->job.call == call_gc)
		c->n->tombstones_collected += c->u64;
	else if (c->job.call == call_truncate)
		c->n->log_truncated += c->dropped;
	free(c->upto);
	free(c);
}

static int submit_call(void *ctx, const char *what,
		       int (*fn)(struct store *, void *, struct err *),
		       uint32_t origin, uint64_t u64,
		       const struct vv_entry *upto, size_t nupto)
{
	struct node *n = node_of_store(ctx);
	struct call_job *c;
	if (n->stopping)
		return 0;
	c = calloc(1, sizeof *c);
	if (c == NULL)
		return MSCE_ENOMEM;
	if (nupto > 0) {
		c->upto = malloc(nupto * sizeof *upto);
		if (c->upto == NULL) {
			free(c);
			return MSCE_ENOMEM;
		}
		memcpy(c->upto, upto, nupto * sizeof *upto);
		c->nupto = nupto;
	}
	c->n = n;
	c->what = what;
	c->origin = origin;
	c->u64 = u64;
	c->job.kind = WRITER_CALL;
	c->job.call = fn;
	c->job.call_arg = c;
	c->job.done = call_done;
	writer_submit(n->writer, &c->job);
	return 0;
}

/* The log floor of origin in s (0 if it has none). */
static uint64_t log_floor(struct store *s, uint32_t origin)
{
	struct vv_entry vv[MSCE_MAX_ORIGINS];
	size_t n = store_vv(s, vv, MSCE_MAX_ORIGINS);

	for (size_t i = 0; i < n && i < MSCE_MAX_ORIGINS; i++)
		if (vv[i].origin == origin)
			return vv[i].floor;
	return 0;
}

static int call_truncate(struct store *s, void *arg, struct err *e)
{
	struct call_job *c = arg;
	uint64_t before = log_floor(s, c->origin), after;
	int rc = store_log_truncate(s, c->origin, c->u64, e);

	after = rc == 0 ? log_floor(s, c->origin) : before;
	c->dropped = after > before ? after - before : 0; /* in call_done */
	return rc;
}
static int call_gc(struct store *s, void *arg, struct err *e)
{
	struct call_job *c = arg;
	size_t dropped = 0;
	int rc = store_gc_tombstones(s, c->upto, c->nupto, &dropped, e);
	c->u64 = dropped; /* read by call_done, on the loop */
	return rc;
}
static int call_writer(struct store *s, void *arg, struct err *e)
{
	struct call_job *c = arg;
	return store_set_writer(s, c->origin, c->u64, node_now_ms(), e);
}

static int op_log_truncate(void *ctx, uint32_t origin, uint64_t upto,
			   struct err *e)
{
	(void)e;
	return submit_call(ctx, "log truncation", call_truncate, origin, upto,
			   NULL, 0);
}
static int op_gc(void *ctx, const struct vv_entry *upto, size_t n,
		 size_t *dropped, struct err *e)
{
	(void)e;
	if (dropped)
		*dropped = 0;
	return submit_call(ctx, "tombstone collection", call_gc, 0, 0, upto,
			   n);
}
static uint32_t op_writer(void *ctx, uint64_t *born)
{
	return store_writer(STORE(ctx), born);
}
static int op_restored(void *ctx)
{
	return store_restored(STORE(ctx));
}
static int op_set_writer(void *ctx, uint32_t w, uint64_t floor,
			 struct err *e)
{
	(void)e;
	return submit_call(ctx, "new writer", call_writer, w, floor, NULL, 0);
}
static int op_snap_begin(void *ctx, struct store_snap **out, struct err *e)
{
	return store_snap_begin(STORE(ctx), out, e);
}

/* ---- io for the core -------------------------------------------------- */

static void io_send(void *data, uint32_t peer, const uint8_t *buf, size_t len)
{
	struct node *n = data;
	if (n->net != NULL)
		peer_net_send(n->net, peer, buf, len);
}

static void io_close(void *data, uint32_t peer, int code, const char *reason)
{
	struct node *n = data;
	(void)code;
	if (n->net != NULL)
		peer_net_close(n->net, peer, reason);
}

struct apply_job {
	struct writer_job job;
	struct node *n;
	uint64_t token;
};

static void apply_done(struct writer_job *j)
{
	struct apply_job *a = (struct apply_job *)j;
	if (a->n->repl != NULL)
		repl_apply_done(a->n->repl, a->token, j->rc, &j->res, &j->err,
				node_now_ms());
	if (j->res.applied > 0) /* a refusal commits what came before */
		watch_pump(a->n);
	free(a);
}

static void io_apply(void *data, uint64_t token, const struct store_blob *b,
		     size_t nb, const struct seg *g, size_t ng)
{
	struct node *n = data;
	struct apply_job *a;

	if (n->stopping)
		return; /* the core is freed with its pending batch */
	a = calloc(1, sizeof *a);
	if (a == NULL)
		return;
	a->n = n;
	a->token = token;
	a->job.kind = WRITER_APPLY;
	a->job.blobs = b;
	a->job.nblobs = nb;
	a->job.segs = g;
	a->job.nsegs = ng;
	a->job.max_skew_ms = n->cfg.max_clock_skew_ms;
	a->job.done = apply_done;
	writer_submit(n->writer, &a->job);
}

/* Snapshot chunks merge on the writer thread too: a big chunk's commit
 * must not stall the loop. */
struct snap_job {
	struct writer_job job;
	struct node *n;
	uint64_t token;
	const struct store_snap_chunk *chunk;
};

static int call_snap(struct store *s, void *arg, struct err *e)
{
	struct snap_job *j = arg;
	return store_snap_apply(s, j->chunk, e);
}

static void snap_done(struct writer_job *j)
{
	struct snap_job *sj = (struct snap_job *)j;
	if (sj->n->repl != NULL)
		repl_snapshot_done(sj->n->repl, sj->token, j->rc, &j->err,
				   node_now_ms());
	free(sj);
}

static void io_snapshot(void *data, uint64_t token,
			const struct store_snap_chunk *c)
{
	struct node *n = data;
	struct snap_job *j;

	if (n->stopping)
		return; /* the core is freed with its pending chunk */
	j = calloc(1, sizeof *j);
	if (j == NULL)
		return;
	j->n = n;
	j->token = token;
	j->chunk = c;
	j->job.kind = WRITER_CALL;
	j->job.call = call_snap;
	j->job.call_arg = j;
	j->job.done = snap_done;
	writer_submit(n->writer, &j->job);
}

static uint32_t io_random(void *data)
{
	(void)data;
	return randombytes_random();
}

static void io_trace(void *data, int level, const char *msg)
{
	(void)data;
	log_msg((enum log_level)level, "%s", msg);
}

/* ---- peer links -> core ------------------------------------------------- */

static void net_up(void *data, uint32_t peer)
{
	struct node *n = data;
	repl_link_up(n->repl, peer, node_now_ms());
}

static void net_down(void *data, uint32_t peer)
{
	struct node *n = data;
	repl_link_down(n->repl, peer, node_now_ms());
}

static void net_clock_refused(void *data, uint32_t peer, int64_t offset_ms)
{
	struct node *n = data;
	repl_clock_refused(n->repl, peer, offset_ms);
}

static void net_failed(void *data, uint32_t peer, const char *why)
{
	struct node *n = data;
	repl_link_failed(n->repl, peer, node_now_ms(), why);
}

static void net_message(void *data, uint32_t peer, const uint8_t *msg,
			size_t len)
{
	struct node *n = data;
	repl_recv(n->repl, peer, msg, len, node_now_ms());
	if (n->waiters != NULL)
		api_check_waiters(n); /* an Ack may complete a min_sites put */
}

/* A store that failed a commit refuses writes; every few seconds the
 * writer tries a probe commit, and writes resume once it succeeds. */
static int call_retry(struct store *s, void *arg, struct err *e)
{
	(void)arg;
	return store_retry(s, node_now_ms(), e);
}

static void retry_done(struct writer_job *j)
{
	struct call_job *c = (struct call_job *)j;
	c->n->retrying = 0;
	if (j->rc == 0 && c->n->store_down) {
		c->n->store_down = 0;
		log_warn("store accepts writes again: the probe commit succeeded");
	}
	free(c);
}

static void retry_store(struct node *n)
{
	uint64_t now = node_now_ms();
	struct call_job *c;

	if (!store_failed(n->store))
		return;
	if (!n->store_down) {
		/* Once per failure: the operator's first sign of it. */
		char why[256];
		int reads_fail = store_failed_why(n->store, why, sizeof why);
		log_error("store refuses writes: a commit failed (%s)%s, and a "
			  "probe commit every 2 s tells when the cause is gone "
			  "(a full disk: free space)",
			  why, reads_fail ? "" : "; reads go on");
		n->store_down = 1;
	}
	if (n->retrying || now < n->next_retry_ms)
		return;
	n->next_retry_ms = now + 2000;
	c = calloc(1, sizeof *c);
	if (c == NULL)
		return;
	c->n = n;
	c->what = "store probe commit";
	c->job.kind = WRITER_CALL;
	c->job.call = call_retry;
	c->job.call_arg = c;
	c->job.done = retry_done;
	n->retrying = 1;
	writer_submit(n->writer, &c->job);
}

int node_write_gate(struct node *n, char *why, size_t whylen)
{
	return repl_write_gate(n->repl, why, whylen);
}

static void on_tick(uv_timer_t *t)
{
	struct node *n = t->data;
	if (n->stopping)
		return;
	repl_tick(n->repl, node_now_ms());
	retry_store(n);
	if (n->waiters != NULL)
		api_check_waiters(n);
	if (n->watchers != NULL)
		watch_pump(n);
}

/* The keys changes are checked with: every peer's (required: a center
 * whose changes cannot be checked cannot be trusted), retired ones', and
 * this node's own earlier keys (old_sign_key): after a rotation, a store
 * rebuilt empty gets its own changes signed with them back from the
 * peers. The store adds the node's current key itself. */
int node_set_sign_keys(struct node *n, struct err *e)
{
	struct store_key *k;
	size_t nk = 0, cap = n->cfg.nretired + n->cfg.nold_sign_keys;
	int rc;

	for (size_t i = 0; i < n->cfg.npeers; i++) {
		if (n->cfg.peers[i].nsign_keys == 0)
			return err_set(e, MSCE_ECONFIG,
				       "[peer %s]: sign_key missing: every "
				       "center's origin signing key is pinned "
				       "(msce keygen writes NAME.sign.pub, "
				       "msce-gen puts it in the configs)",
				       n->cfg.peers[i].name);
		cap += n->cfg.peers[i].nsign_keys;
	}
	k = calloc(cap ? cap : 1, sizeof *k);
	if (k == NULL)
		return err_set(e, MSCE_ENOMEM, "signing keys");
	for (size_t i = 0; i < n->cfg.npeers; i++)
		for (size_t j = 0; j < n->cfg.peers[i].nsign_keys; j++) {
			k[nk].node = n->cfg.peers[i].id;
			memcpy(k[nk].pk, n->cfg.peers[i].sign_keys[j], 32);
			nk++;
		}
	for (size_t i = 0; i < n->cfg.nretired; i++) {
		k[nk].node = n->cfg.retired[i].id;
		memcpy(k[nk].pk, n->cfg.retired[i].sign_key, 32);
		nk++;
	}
	for (size_t i = 0; i < n->cfg.nold_sign_keys; i++) {
		k[nk].node = n->cfg.node_id;
		memcpy(k[nk].pk, n->cfg.old_sign_keys[i], 32);
		nk++;
	}
	rc = store_set_keys(n->store, k, nk, e);
	free(k);
	return rc;
}

/* ---- master key rotation (offline) ---------------------------------------- */

int node_rotate_master_key(const char *config_path, const char *new_path,
			   size_t *rewrapped, struct err *e)
{
	struct config cfg;
	struct store_options so = {0};
	struct store *st = NULL;
	uint8_t *old = NULL, *nk = NULL, pk[32];
	char why[sizeof e->msg];
	int r;

	*rewrapped = 0;
	if ((r = config_load(config_path, &cfg, e)))
		return r;
	if (cfg.master_key_path[0] == '\0') {
		r = err_set(e, MSCE_EINVAL,
			    "%s has no [node] master_key: there is no key to "
			    "rotate (set master_key and start msced to seal "
			    "the store)",
			    config_path);
		goto out;
	}
	old = sodium_malloc(32);
	nk = sodium_malloc(32);
	if (old == NULL || nk == NULL) {
		r = err_set(e, MSCE_ENOMEM, "key memory");
		goto out;
	}
	if ((r = keyfile_load_secret(cfg.master_key_path, old, pk, e))) {
		snprintf(why, sizeof why, "%s", e->msg);
		err_set(e, r, "[node] master_key: %s", why);
		goto out;
	}
	if ((r = keyfile_load_secret(new_path, nk, pk, e))) {
		snprintf(why, sizeof why, "%s", e->msg);
		err_set(e, r, "new master key: %s", why);
		goto out;
	}
	if (sodium_memcmp(old, nk, 32) == 0) {
		r = err_set(e, MSCE_EINVAL,
			    "%s holds the key already in use (%s)", new_path,
			    cfg.master_key_path);
		goto out;
	}
	so.node_id = cfg.node_id;
	so.cluster = cfg.cluster;
	so.master_key = old;
	/* The data directory's lock: msced must be stopped. */
	if ((r = store_open(cfg.data_dir, &so, &st, e)))
		goto out;
	r = store_rotate_master_key(st, nk, rewrapped, e);
	store_close(st);
out:
	sodium_free(old);
	sodium_free(nk);
	config_free(&cfg);
	return r;
}

/* ---- start --------------------------------------------------------------- */

int node_start(uv_loop_t *loop, const char *config_path, struct node **out,
	       struct err *e)
{
	struct node *n = calloc(1, sizeof *n);
	struct store_options so = {0};
	struct repl_config rc = {0};
	struct peer_net_config pc = {0};
	struct peer_net_cb pcb;
	int r;

	*out = NULL;
	if (n == NULL)
		return err_set(e, MSCE_ENOMEM, "start node");
	n->loop = loop;
	if ((r = config_load(config_path, &n->cfg, e)))
		goto fail;
	log_set_level((enum log_level)n->cfg.log_level);
	log_set_name(n->cfg.node_name);
	n->key.priv = sodium_malloc(32);
	if (n->key.priv == NULL) {
		r = err_set(e, MSCE_ENOMEM, "key memory");
		goto fail;
	}
	if ((r = keyfile_load_secret(n->cfg.key_path, n->key.priv, n->key.pub,
				     e)))
		goto fail;
	so.node_id = n->cfg.node_id;
	so.cluster = n->cfg.cluster;
	so.nosync = !n->cfg.fsync;
	/* The origin signing key comes from the link key: one secret. */
	uint8_t sign_pk[32], *sign_sk = sodium_malloc(64);
	if (sign_sk == NULL) {
		r = err_set(e, MSCE_ENOMEM, "key memory");
		goto fail;
	}
	seg_keypair_from_link(n->key.priv, sign_pk, sign_sk);
	so.sign_sk = sign_sk;
	/* Encryption at rest: the master key file, outside the data
	 * directory (config.c checks). Without one, values stay in the
	 * clear (a store sealed before refuses to open without its key). */
	uint8_t *master = NULL, master_pk[32];
	if (n->cfg.master_key_path[0] != '\0') {
		master = sodium_malloc(32);
		if (master == NULL) {
			sodium_free(sign_sk);
			r = err_set(e, MSCE_ENOMEM, "key memory");
			goto fail;
		}
		if ((r = keyfile_load_secret(n->cfg.master_key_path, master,
					     master_pk, e))) {
			sodium_free(master);
			sodium_free(sign_sk);
			char why[sizeof e->msg];
			snprintf(why, sizeof why, "%s", e->msg);
			err_set(e, r, "[node] master_key: %s", why);
			goto fail;
		}
		so.master_key = master;
	}
	r = store_open(n->cfg.data_dir, &so, &n->store, e);
	sodium_free(sign_sk);
	sodium_free(master);
	if (r)
		goto fail;
	if (master == NULL)
		log_warn("no master_key in [node]: values are stored in the "
			 "clear, and an erasure cannot make copies of the "
			 "data directory (backups, old disks) unreadable "
			 "(deploy/README.md, \"Encryption at rest\")");
	if ((r = node_set_sign_keys(n, e)))
		goto fail;
	if ((r = writer_start(loop, n->store, &n->writer, e)))
		goto fail;

	n->nnodes = n->cfg.npeers + 1;
	n->nodes = calloc(n->nnodes, sizeof *n->nodes);
	if (n->nodes == NULL) {
		r = err_set(e, MSCE_ENOMEM, "start node");
		goto fail;
	}
	n->nodes[0] = n->cfg.node_id;
	for (size_t i = 0; i < n->cfg.npeers; i++)
		n->nodes[i + 1] = n->cfg.peers[i].id;
	n->ops = (struct repl_store_ops){
	    .ctx = n,
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
	    .restored = op_restored,
	};
	n->io = (struct repl_io){.data = n,
				 .send = io_send,
				 .close = io_close,
				 .apply = io_apply,
				 .snapshot = io_snapshot,
				 .random = io_random,
				 .trace = io_trace};
	rc.node_id = n->cfg.node_id;
	rc.cluster = n->cfg.cluster;
	rc.nodes = n->nodes;
	rc.nnodes = n->nnodes;
	rc.max_skew_ms = n->cfg.max_clock_skew_ms;
	rc.log_retention = n->cfg.log_retention;
	if ((r = repl_create(&rc, &n->ops, &n->io, node_now_ms(), &n->repl, e)))
		goto fail;

	pc.loop = loop;
	pc.cfg = &n->cfg;
	pc.key = &n->key;
	pcb = (struct peer_net_cb){n,	       net_up,		   net_down,
				   net_message, net_clock_refused, net_failed};
	if ((r = peer_net_start(&pc, &pcb, &n->net, e)))
		goto fail;
	if ((n->cfg.socket_path[0] != '\0' ||
	     n->cfg.client_listen[0] != '\0') &&
	    (r = client_server_start(loop, &n->cfg, &n->key, api_request, n,
				     &n->clients, e)))
		goto fail;
	if ((r = node_metrics_start(n, e)))
		goto fail;
	uv_timer_init(loop, &n->tick);
	n->tick.data = n;
	uv_timer_start(&n->tick, on_tick, 50, 50);
	uv_idle_init(loop, &n->watch_idle);
	n->watch_idle.data = n;
	log_info("node %u (%s) of cluster %s started: %zu peers, data in %s",
		 n->cfg.node_id, n->cfg.node_name, n->cfg.cluster,
		 n->cfg.npeers, n->cfg.data_dir);
	*out = n;
	return 0;
fail:
	/* Only synchronous parts can be up here except the writer and net;
	 * a start failure ends the process, so they are left to exit. */
	err_wrap(e, "start node from %s", config_path);
	return r;
}

/* ---- stop ----------------------------------------------------------------- */

static void part_closed(void *arg)
{
	struct node *n = arg;
	if (--n->closing_parts > 0)
		return;
	repl_destroy(n->repl);
	n->repl = NULL;
	store_close(n->store);
	config_free(&n->cfg);
	if (n->key.priv != NULL) {
		sodium_memzero(n->key.priv, 32);
		sodium_free(n->key.priv);
	}
	free(n->nodes);
	void (*done)(void *) = n->stopped;
	void *arg2 = n->stopped_arg;
	free(n);
	if (done)
		done(arg2);
}

static void handle_closed(uv_handle_t *h) { part_closed(h->data); }

static void writer_drained(void *arg)
{
	struct node *n = arg;
	/* Everything queued is committed and acknowledged; now the links. */
	n->writer = NULL;
	api_check_waiters(n); /* stopping: answers every waiter */
	n->closing_parts = 3 + (n->clients != NULL) + (n->metrics != NULL);
	if (n->metrics != NULL)
		metrics_stop(n->metrics, part_closed, n);
	uv_close((uv_handle_t *)&n->tick, handle_closed);
	uv_close((uv_handle_t *)&n->watch_idle, handle_closed);
	peer_net_stop(n->net, part_closed, n);
	if (n->clients != NULL)
		client_server_stop(n->clients, part_closed, n);
}

void node_stop(struct node *n, void (*done)(void *arg), void *arg)
{
	if (n->stopping)
		return;
	n->stopping = 1;
	n->stopped = done;
	n->stopped_arg = arg;
	log_info("stopping: committing in-flight batches");
	uv_timer_stop(&n->tick);
	uv_idle_stop(&n->watch_idle);
	watch_close_all(n);
	writer_stop(n->writer, writer_drained, n);
}
