/* Replication core; see repl.h for the shape and the session states.
 *
 * Sending: per peer and origin we know what the peer holds (`have`, from
 * its Hello, Acks and gossip) and what we already sent (`sent`). pump()
 * streams log batches while the unacknowledged bytes are under the window.
 * Our own changes go at once; another origin's changes are relayed only
 * when the peer's `have` for that origin has not moved for relay_delay_ms,
 * so that in a healthy full mesh each change travels once per link.
 *
 * Receiving: Changes are queued per peer and applied one batch at a time
 * through io->apply (asynchronous, durable); the Ack goes out only after
 * the apply completed. If the store stops a batch (a change too far ahead
 * of our clock, or a gap), we raise the peer's receive epoch, drop what is
 * queued and tell the sender, which resends from our vector and pauses the
 * refused origin for retry_ms. Batches of an old epoch are dropped.
 *
 * Snapshots: when a peer needs changes below our log floor we stream a
 * consistent snapshot in chunks, one chunk in flight; the receiver merges
 * each chunk, and after the last raises its vector to the snapshot's.
 *
 * Failure modes: any malformed or unexpected message closes the link
 * (counted); the driver reconnects and a new Hello restarts the session
 * from the vectors, so nothing depends on in-flight state surviving. */
#include "repl.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bounds.h"
#include "hlc.h"
#include "log.h"
#include "pballoc.h"
#include "peer.pb-c.h"
#include "record_pb.h"

#define MAX_ORIGINS 64

struct ostate {
	uint32_t origin;
	uint64_t have, have_hlc; /* what the peer holds */
	uint64_t sent;           /* highest seq we sent this session */
	uint64_t paused_until;   /* after a clock refusal */
	uint64_t moved_at;       /* when `have` last rose */
};

struct inflight {
	uint32_t origin;
	uint64_t last;
	size_t bytes;
};

struct rxmsg {
	Msce__PeerMsg *m;
	struct rxmsg *next;
};

struct peer {
	uint32_t id;
	enum repl_state state;
	uint32_t session; /* bumped at each link up/down */
	struct ostate o[MAX_ORIGINS];
	size_t no;
	/* sending */
	struct inflight *fl;
	size_t nfl, capfl, unacked;
	uint32_t tx_epoch;
	size_t rr; /* round-robin origin index */
	struct store_snap *snap;
	uint64_t snap_id;
	int snap_wait, snap_last_sent, snap_first;
	uint64_t snap_retry_at; /* after the peer refused one for its clock */
	int greeted;	       /* a Hello arrived since start */
	/* receiving */
	struct rxmsg *rxq, *rxtail;
	size_t rxbytes;
	uint32_t rx_epoch;
	int applying;
	uint64_t apply_token;
	struct store_blob *blobs;
	size_t nblobs, capblobs;
	struct rxmsg *applying_msgs;
	uint64_t rx_snap_id;
	struct vv_entry *rx_snap_vv;
	size_t rx_snap_nvv;
	/* status */
	uint64_t last_contact;
	int64_t offset;
	int clock_refused;
	uint64_t sent_changes, recv_changes, dup_changes;
	uint64_t snaps_sent, snaps_recv;
};

struct view {
	int known;
	struct repl_node_view v;
	uint32_t connected[MAX_ORIGINS];
	size_t nconnected;
};

struct repl {
	struct repl_config cfg;
	uint32_t *nodes;
	const struct repl_store_ops *ops;
	const struct repl_io *io;
	struct peer *peers;
	size_t npeers;
	struct view *views; /* indexed like cfg.nodes */
	uint64_t stable[MAX_ORIGINS]; /* per node index: GC watermark */
	uint64_t next_gossip, next_truncate;
	uint64_t token_seq;
	uint64_t snap_seq;
	uint8_t *buf;
	size_t bufcap;
	struct repl_counters counters;
};

/* ---- small helpers ---------------------------------------------------- */

static void trace(struct repl *r, int level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void trace(struct repl *r, int level, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	if (r->io->trace == NULL)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	r->io->trace(r->io->data, level, msg);
}

static struct peer *peer_get(struct repl *r, uint32_t id)
{
	for (size_t i = 0; i < r->npeers; i++)
		if (r->peers[i].id == id)
			return &r->peers[i];
	return NULL;
}

static int node_index(const struct repl *r, uint32_t id)
{
	for (size_t i = 0; i < r->cfg.nnodes; i++)
		if (r->nodes[i] == id)
			return (int)i;
	return -1;
}

static struct ostate *ostate(struct peer *p, uint32_t origin)
{
	for (size_t i = 0; i < p->no; i++)
		if (p->o[i].origin == origin)
			return &p->o[i];
	if (p->no == MAX_ORIGINS)
		return NULL;
	memset(&p->o[p->no], 0, sizeof p->o[p->no]);
	p->o[p->no].origin = origin;
	return &p->o[p->no++];
}

static void have_raise(struct peer *p, uint32_t origin, uint64_t seq,
		       uint64_t hlc, uint64_t now)
{
	struct ostate *o = ostate(p, origin);
	if (o == NULL || seq <= o->have)
		return;
	o->have = seq;
	o->have_hlc = hlc;
	o->moved_at = now;
}

static size_t my_vv(struct repl *r, struct vv_entry *vv)
{
	size_t n = r->ops->vv(r->ops->ctx, vv, MAX_ORIGINS);
	return n > MAX_ORIGINS ? MAX_ORIGINS : n;
}

static int send_msg(struct repl *r, uint32_t peer, const Msce__PeerMsg *m)
{
	size_t n = msce__peer_msg__get_packed_size(m);
	if (n > r->bufcap) {
		uint8_t *b = realloc(r->buf, n);
		if (b == NULL)
			return MSCE_ENOMEM;
		r->buf = b;
		r->bufcap = n;
	}
	msce__peer_msg__pack(m, r->buf);
	r->io->send(r->io->data, peer, r->buf, n);
	return 0;
}

/* VVEntry arrays for messages; entries point into `store`. */
static Msce__VVEntry **vv_msg(const struct vv_entry *vv, size_t n,
			      Msce__VVEntry *store, int floors)
{
	Msce__VVEntry **p = malloc((n ? n : 1) * sizeof *p);
	if (p == NULL)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		msce__vventry__init(&store[i]);
		store[i].origin = vv[i].origin;
		store[i].seq = floors ? vv[i].floor : vv[i].seq;
		store[i].hlc = floors ? 0 : vv[i].hlc;
		p[i] = &store[i];
	}
	return p;
}

static void fail_link(struct repl *r, struct peer *p, int code,
		      const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void fail_link(struct repl *r, struct peer *p, int code,
		      const char *fmt, ...)
{
	char reason[256];
	va_list ap;
	Msce__PeerMsg m = MSCE__PEER_MSG__INIT;
	Msce__Refuse rf = MSCE__REFUSE__INIT;

	va_start(ap, fmt);
	vsnprintf(reason, sizeof reason, fmt, ap);
	va_end(ap);
	r->counters.protocol_errors++;
	trace(r, LOG_WARN, "link to node %u: %s", p->id, reason);
	rf.code = (uint32_t)code;
	rf.reason = reason;
	m.msg_case = MSCE__PEER_MSG__MSG_REFUSE;
	m.refuse = &rf;
	send_msg(r, p->id, &m);
	r->io->close(r->io->data, p->id, code, reason);
	p->state = REPL_DOWN;
}

/* ---- create / destroy --------------------------------------------------- */

int repl_create(const struct repl_config *cfg, const struct repl_store_ops *ops,
		const struct repl_io *io, uint64_t now_ms, struct repl **out,
		struct err *e)
{
	struct repl *r;

	*out = NULL;
	if (cfg->nnodes == 0 || cfg->nnodes > MAX_ORIGINS)
		return err_set(e, MSCE_EINVAL, "%zu nodes, limit %d",
			       cfg->nnodes, MAX_ORIGINS);
	r = calloc(1, sizeof *r);
	if (r == NULL)
		return err_set(e, MSCE_ENOMEM, "create replication core");
	r->cfg = *cfg;
	r->ops = ops;
	r->io = io;
	r->nodes = malloc(cfg->nnodes * sizeof *r->nodes);
	r->peers = calloc(cfg->nnodes, sizeof *r->peers);
	r->views = calloc(cfg->nnodes, sizeof *r->views);
	if (r->nodes == NULL || r->peers == NULL || r->views == NULL) {
		repl_destroy(r);
		return err_set(e, MSCE_ENOMEM, "create replication core");
	}
	memcpy(r->nodes, cfg->nodes, cfg->nnodes * sizeof *r->nodes);
	if (node_index(r, cfg->node_id) < 0) {
		repl_destroy(r);
		return err_set(e, MSCE_EINVAL, "node %u not in the node list",
			       cfg->node_id);
	}
	for (size_t i = 0; i < cfg->nnodes; i++)
		if (cfg->nodes[i] != cfg->node_id)
			r->peers[r->npeers++].id = cfg->nodes[i];
#define DEF(f, v)                                                             \
	if (r->cfg.f == 0)                                                    \
	r->cfg.f = (v)
	DEF(max_skew_ms, 60000);
	DEF(window_bytes, 4u << 20);
	DEF(batch_bytes, 256u << 10);
	DEF(batch_changes, 1024);
	DEF(log_retention, 1000000);
	DEF(gossip_interval_ms, 1000);
	DEF(retry_ms, 1000);
	DEF(relay_delay_ms, 3000);
	DEF(truncate_interval_ms, 1000);
	DEF(snapshot_chunk_bytes, 256u << 10);
#undef DEF
	r->next_gossip = now_ms;
	r->next_truncate = now_ms + r->cfg.truncate_interval_ms;
	*out = r;
	return 0;
}

static void rx_free(struct rxmsg *q)
{
	while (q != NULL) {
		struct rxmsg *n = q->next;
		msce__peer_msg__free_unpacked(q->m, NULL);
		free(q);
		q = n;
	}
}

static void session_reset(struct peer *p)
{
	p->nfl = 0;
	p->unacked = 0;
	p->tx_epoch = 0;
	p->rx_epoch = 0;
	for (size_t i = 0; i < p->no; i++) {
		p->o[i].sent = 0;
		p->o[i].paused_until = 0;
	}
	if (p->snap != NULL) {
		store_snap_end(p->snap);
		p->snap = NULL;
	}
	p->snap_wait = 0;
	p->snap_last_sent = 0;
	rx_free(p->rxq);
	p->rxq = p->rxtail = NULL;
	p->rxbytes = 0;
	free(p->rx_snap_vv);
	p->rx_snap_vv = NULL;
	p->rx_snap_nvv = 0;
	p->rx_snap_id = 0;
	p->session++;
}

void repl_destroy(struct repl *r)
{
	if (r == NULL)
		return;
	for (size_t i = 0; i < r->npeers; i++) {
		struct peer *p = &r->peers[i];
		session_reset(p);
		rx_free(p->applying_msgs);
		free(p->fl);
		free(p->blobs);
	}
	free(r->peers);
	free(r->views);
	free(r->nodes);
	free(r->buf);
	free(r);
}

/* ---- sending ------------------------------------------------------------- */

struct batch_build {
	ProtobufCBinaryData *items;
	size_t n, cap, bytes;
	uint64_t last;
};

static int collect_change(void *ctx, uint32_t origin, uint64_t seq,
			  const uint8_t *data, size_t len)
{
	struct batch_build *b = ctx;
	(void)origin;
	if (b->n == b->cap)
		return 1;
	b->items[b->n].data = malloc(len ? len : 1);
	if (b->items[b->n].data == NULL)
		return 1;
	memcpy(b->items[b->n].data, data, len);
	b->items[b->n].len = len;
	b->n++;
	b->bytes += len;
	b->last = seq;
	return 0;
}

static void start_snapshot(struct repl *r, struct peer *p, uint64_t now);

/* Sends one batch of origin o to p. Returns 1 if sent, 0 if nothing, -1 if
 * a snapshot was started or the link failed. */
static int send_batch(struct repl *r, struct peer *p, const struct vv_entry *mine,
		      struct ostate *o, uint64_t now)
{
	struct batch_build b = {0};
	uint64_t from = (o->sent > o->have ? o->sent : o->have) + 1;
	struct err e;
	int rc;

	if (from <= mine->floor) {
		trace(r, LOG_INFO,
		      "node %u needs origin %u from seq %llu, below our log "
		      "floor %llu: sending a snapshot",
		      p->id, o->origin, (unsigned long long)from,
		      (unsigned long long)mine->floor);
		start_snapshot(r, p, now);
		return -1;
	}
	b.cap = r->cfg.batch_changes;
	b.items = malloc(b.cap * sizeof *b.items);
	if (b.items == NULL)
		return 0;
	rc = r->ops->log_read(r->ops->ctx, o->origin, from, b.cap,
			      r->cfg.batch_bytes, collect_change, &b, &e);
	if (rc == MSCE_ENOTFOUND) {
		free(b.items);
		start_snapshot(r, p, now);
		return -1;
	}
	if (b.n > 0) {
		Msce__PeerMsg m = MSCE__PEER_MSG__INIT;
		Msce__Changes c = MSCE__CHANGES__INIT;
		c.origin = o->origin;
		c.n_changes = b.n;
		c.changes = b.items;
		c.epoch = p->tx_epoch;
		m.msg_case = MSCE__PEER_MSG__MSG_CHANGES;
		m.changes = &c;
		send_msg(r, p->id, &m);
		o->sent = b.last;
		p->sent_changes += b.n;
		if (p->nfl == p->capfl) {
			size_t cap = p->capfl ? p->capfl * 2 : 16;
			struct inflight *f = realloc(p->fl, cap * sizeof *f);
			if (f != NULL) {
				p->fl = f;
				p->capfl = cap;
			}
		}
		if (p->nfl < p->capfl) {
			p->fl[p->nfl].origin = o->origin;
			p->fl[p->nfl].last = b.last;
			p->fl[p->nfl].bytes = b.bytes;
			p->nfl++;
		}
		p->unacked += b.bytes;
	}
	for (size_t i = 0; i < b.n; i++)
		free(b.items[i].data);
	free(b.items);
	return b.n > 0;
}

static void pump(struct repl *r, struct peer *p, uint64_t now)
{
	struct vv_entry vv[MAX_ORIGINS];
	size_t n;

	if (p->state != REPL_ACTIVE || p->snap != NULL)
		return;
	n = my_vv(r, vv);
	while (p->unacked < r->cfg.window_bytes) {
		int sent = 0;
		for (size_t k = 0; k < n && p->unacked < r->cfg.window_bytes;
		     k++) {
			size_t i = (p->rr + k) % n;
			struct ostate *o = ostate(p, vv[i].origin);
			uint64_t pos;
			if (o == NULL)
				continue;
			pos = o->sent > o->have ? o->sent : o->have;
			if (vv[i].seq <= pos || now < o->paused_until)
				continue;
			/* Relay another origin only when the peer seems not
			 * to get it elsewhere. */
			if (vv[i].origin != r->cfg.node_id &&
			    now - o->moved_at < r->cfg.relay_delay_ms)
				continue;
			int rc = send_batch(r, p, &vv[i], o, now);
			if (rc < 0)
				return;
			sent |= rc;
		}
		p->rr++;
		if (!sent)
			break;
	}
}

static void pump_all(struct repl *r, uint64_t now)
{
	for (size_t i = 0; i < r->npeers; i++)
		pump(r, &r->peers[i], now);
}

/* ---- snapshots: sending ---------------------------------------------------- */

struct snap_build {
	Msce__Record **recs;
	size_t n, cap;
	int oom;
};

static int snap_collect(void *ctx, const struct store_record_view *v)
{
	struct snap_build *b = ctx;
	Msce__Record *m;

	if (b->n == b->cap) {
		size_t cap = b->cap ? b->cap * 2 : 64;
		Msce__Record **p = realloc(b->recs, cap * sizeof *p);
		if (p == NULL)
			goto oom;
		b->recs = p;
		b->cap = cap;
	}
	m = record_pb_new(v->coll, v->coll_len, v->key, v->key_len, v->rec);
	if (m == NULL)
		goto oom;
	b->recs[b->n++] = m;
	return 0;
oom:
	b->oom = 1;
	return 1;
}

static void send_snapshot_chunk(struct repl *r, struct peer *p)
{
	struct snap_build b = {0};
	Msce__PeerMsg m = MSCE__PEER_MSG__INIT;
	Msce__SnapshotChunk c = MSCE__SNAPSHOT_CHUNK__INIT;
	struct vv_entry vv[MAX_ORIGINS];
	Msce__VVEntry vs[MAX_ORIGINS], **vp = NULL;
	struct err e;
	int done = 0, rc;

	rc = store_snap_next(p->snap, r->cfg.snapshot_chunk_bytes, snap_collect,
			     &b, &done, &e);
	if (rc || b.oom) {
		for (size_t i = 0; i < b.n; i++)
			record_pb_free(b.recs[i]);
		free(b.recs);
		fail_link(r, p, rc ? rc : MSCE_ENOMEM, "snapshot read: %s",
			  rc ? e.msg : "out of memory");
		return;
	}
	c.protocol = MSCE_PROTOCOL_VERSION;
	c.snapshot_id = p->snap_id;
	if (p->snap_first) {
		size_t n = store_snap_vv(p->snap, vv, MAX_ORIGINS);
		if (n > MAX_ORIGINS)
			n = MAX_ORIGINS;
		vp = vv_msg(vv, n, vs, 0);
		c.n_vv = vp ? n : 0;
		c.vv = vp;
		p->snap_first = 0;
	}
	c.n_records = b.n;
	c.records = b.recs;
	c.done = done;
	m.msg_case = MSCE__PEER_MSG__MSG_SNAPSHOT;
	m.snapshot = &c;
	send_msg(r, p->id, &m);
	p->snap_wait = 1;
	p->snap_last_sent = done;
	for (size_t i = 0; i < b.n; i++)
		record_pb_free(b.recs[i]);
	free(b.recs);
	free(vp);
}

static void start_snapshot(struct repl *r, struct peer *p, uint64_t now)
{
	struct err e;
	if (p->snap != NULL || now < p->snap_retry_at)
		return;
	if (r->ops->snap_begin(r->ops->ctx, &p->snap, &e)) {
		trace(r, LOG_ERROR, "snapshot for node %u: %s", p->id, e.msg);
		p->snap = NULL;
		return;
	}
	p->snap_id = ++r->snap_seq;
	p->snap_first = 1;
	p->snap_last_sent = 0;
	p->snaps_sent++;
	r->counters.snapshots_sent++;
	send_snapshot_chunk(r, p);
}

/* ---- hello, links ---------------------------------------------------------- */

static void send_hello(struct repl *r, struct peer *p, uint64_t now)
{
	Msce__PeerMsg m = MSCE__PEER_MSG__INIT;
	Msce__Hello h = MSCE__HELLO__INIT;
	struct vv_entry vv[MAX_ORIGINS];
	Msce__VVEntry vs[MAX_ORIGINS], fs[MAX_ORIGINS];
	size_t n = my_vv(r, vv);

	h.node = r->cfg.node_id;
	h.cluster = (char *)r->cfg.cluster;
	h.protocol = MSCE_PROTOCOL_VERSION;
	h.vv = vv_msg(vv, n, vs, 0);
	h.floor = vv_msg(vv, n, fs, 1);
	h.n_vv = h.vv ? n : 0;
	h.n_floor = h.floor ? n : 0;
	h.time_ms = now;
	m.msg_case = MSCE__PEER_MSG__MSG_HELLO;
	m.hello = &h;
	send_msg(r, p->id, &m);
	free(h.vv);
	free(h.floor);
}

void repl_link_up(struct repl *r, uint32_t peer, uint64_t now_ms)
{
	struct peer *p = peer_get(r, peer);
	if (p == NULL)
		return;
	session_reset(p);
	p->state = REPL_HELLO;
	send_hello(r, p, now_ms);
}

void repl_link_down(struct repl *r, uint32_t peer, uint64_t now_ms)
{
	struct peer *p = peer_get(r, peer);
	(void)now_ms;
	if (p == NULL || p->state == REPL_DOWN)
		return;
	session_reset(p);
	p->state = REPL_DOWN;
}

static void on_hello(struct repl *r, struct peer *p, const Msce__Hello *h,
		     uint64_t now)
{
	if (h->protocol != MSCE_PROTOCOL_VERSION) {
		fail_link(r, p, MSCE_EVERSION,
			  "node %u speaks protocol %u, we speak %u", h->node,
			  h->protocol, MSCE_PROTOCOL_VERSION);
		return;
	}
	if (strcmp(h->cluster, r->cfg.cluster) != 0) {
		fail_link(r, p, MSCE_EMISMATCH,
			  "node %u is in cluster \"%.64s\", we are in \"%s\"",
			  h->node, h->cluster, r->cfg.cluster);
		return;
	}
	if (h->node != p->id) {
		fail_link(r, p, MSCE_EMISMATCH,
			  "link to node %u says it is node %u", p->id, h->node);
		return;
	}
	if (p->state == REPL_DOWN) {
		/* Their Hello overtook our link-up event. */
		session_reset(p);
		send_hello(r, p, now);
	} else if (p->state == REPL_ACTIVE) {
		/* They started a new session on a link we thought was up:
		 * start over from their vector, without a second Hello. */
		session_reset(p);
	}
	for (size_t i = 0; i < h->n_vv; i++)
		have_raise(p, h->vv[i]->origin, h->vv[i]->seq, h->vv[i]->hlc,
			   now);
	/* A restarted peer may hold less than we thought (it lost nothing
	 * acknowledged, but our view may be from gossip of another run). */
	for (size_t i = 0; i < p->no; i++) {
		uint64_t seq = 0, hlc = 0;
		for (size_t j = 0; j < h->n_vv; j++)
			if (h->vv[j]->origin == p->o[i].origin) {
				seq = h->vv[j]->seq;
				hlc = h->vv[j]->hlc;
			}
		if (seq < p->o[i].have) {
			p->o[i].have = seq;
			p->o[i].have_hlc = hlc;
		}
		p->o[i].sent = 0;
	}
	p->offset = (int64_t)h->time_ms - (int64_t)now;
	p->state = REPL_ACTIVE;
	p->greeted = 1;
	trace(r, LOG_INFO, "session with node %u active (clock offset %lld ms)",
	      p->id, (long long)p->offset);
	pump(r, p, now);
}

/* ---- receiving changes ------------------------------------------------------- */

static void start_apply(struct repl *r, struct peer *p)
{
	size_t n = 0;

	if (p->applying || p->rxq == NULL)
		return;
	/* Everything queued from this peer goes into one durable commit. */
	for (struct rxmsg *q = p->rxq; q != NULL; q = q->next)
		n += q->m->changes->n_changes;
	if (n > p->capblobs) {
		struct store_blob *b = realloc(p->blobs, n * sizeof *b);
		if (b == NULL)
			return;
		p->blobs = b;
		p->capblobs = n;
	}
	p->nblobs = 0;
	for (struct rxmsg *q = p->rxq; q != NULL; q = q->next)
		for (size_t i = 0; i < q->m->changes->n_changes; i++) {
			p->blobs[p->nblobs].data = q->m->changes->changes[i].data;
			p->blobs[p->nblobs].len = q->m->changes->changes[i].len;
			p->nblobs++;
		}
	p->applying_msgs = p->rxq;
	p->rxq = p->rxtail = NULL;
	p->rxbytes = 0;
	p->applying = 1;
	/* token = peer index | session | sequence, so a completion for an
	 * old session or peer is recognised. */
	p->apply_token = ((uint64_t)(p - r->peers) << 48) |
			 ((uint64_t)(p->session & 0xffff) << 32) |
			 (++r->token_seq & 0xffffffffu);
	r->io->apply(r->io->data, p->apply_token, p->blobs, p->nblobs);
}

static void on_changes(struct repl *r, struct peer *p, Msce__PeerMsg *m,
		       size_t len, uint64_t now)
{
	struct rxmsg *q;

	if (m->changes->epoch != p->rx_epoch) {
		msce__peer_msg__free_unpacked(m, NULL);
		return; /* sent before our refusal reached the sender */
	}
	if (m->changes->n_changes == 0 ||
	    p->rxbytes + len > 2 * r->cfg.window_bytes + MSCE_MAX_MESSAGE) {
		msce__peer_msg__free_unpacked(m, NULL);
		fail_link(r, p, MSCE_EPROTO,
			  "node %u overran the receive window", p->id);
		return;
	}
	/* The sender holds what it sends: no need to send it back. */
	{
		const ProtobufCBinaryData *last =
			&m->changes->changes[m->changes->n_changes - 1];
		struct pb_limit lim;
		Msce__Change *c = msce__change__unpack(
			pb_limit_init(&lim, pb_limit_for(last->len)), last->len,
			last->data);
		if (c != NULL) {
			if (c->origin == m->changes->origin)
				have_raise(p, c->origin, c->seq, c->hlc, now);
			msce__change__free_unpacked(c, NULL);
		}
	}
	q = malloc(sizeof *q);
	if (q == NULL) {
		msce__peer_msg__free_unpacked(m, NULL);
		return;
	}
	q->m = m;
	q->next = NULL;
	if (p->rxtail)
		p->rxtail->next = q;
	else
		p->rxq = q;
	p->rxtail = q;
	p->rxbytes += len;
	start_apply(r, p);
}

static void send_ack(struct repl *r, struct peer *p, uint32_t refused_origin,
		     int code, const char *reason, uint64_t snap_id)
{
	Msce__PeerMsg m = MSCE__PEER_MSG__INIT;
	Msce__Ack a = MSCE__ACK__INIT;
	struct vv_entry vv[MAX_ORIGINS];
	Msce__VVEntry vs[MAX_ORIGINS];
	size_t n = my_vv(r, vv);

	a.vv = vv_msg(vv, n, vs, 0);
	a.n_vv = a.vv ? n : 0;
	a.refused_origin = refused_origin;
	a.refused_code = (uint32_t)code;
	a.refused_reason = (char *)(reason ? reason : "");
	a.snapshot_id = snap_id;
	a.epoch = p->rx_epoch;
	m.msg_case = MSCE__PEER_MSG__MSG_ACK;
	m.ack = &a;
	send_msg(r, p->id, &m);
	free(a.vv);
}

void repl_apply_done(struct repl *r, uint64_t token, int rc,
		     const struct store_apply_result *res, const struct err *e,
		     uint64_t now_ms)
{
	size_t idx = (size_t)(token >> 48);
	struct peer *p;
	uint32_t session = (uint32_t)(token >> 32) & 0xffff;
	uint32_t refused = 0;

	if (idx >= r->npeers)
		return;
	p = &r->peers[idx];
	if (!p->applying || p->apply_token != token)
		return;
	p->applying = 0;
	if (res != NULL) {
		p->recv_changes += res->applied;
		p->dup_changes += res->duplicates;
	}
	if (rc == MSCE_ECLOCK || rc == MSCE_EGAP) {
		/* Which origin stopped the batch: the first unconsumed one. */
		size_t at = res ? res->consumed : 0;
		for (struct rxmsg *q = p->applying_msgs; q != NULL; q = q->next) {
			if (at < q->m->changes->n_changes) {
				refused = q->m->changes->origin;
				break;
			}
			at -= q->m->changes->n_changes;
		}
	}
	rx_free(p->applying_msgs);
	p->applying_msgs = NULL;
	if (session != (p->session & 0xffff) || p->state != REPL_ACTIVE) {
		/* The link went down meanwhile; what committed stays. */
		if (p->state == REPL_ACTIVE)
			start_apply(r, p);
		pump_all(r, now_ms);
		return;
	}
	if (rc == MSCE_ECLOCK || rc == MSCE_EGAP) {
		if (rc == MSCE_ECLOCK) {
			r->counters.clock_refusals++;
			p->clock_refused = 1;
			trace(r, LOG_WARN, "changes from node %u refused: %s",
			      p->id, e ? e->msg : "clock");
		}
		p->rx_epoch++;
		rx_free(p->rxq);
		p->rxq = p->rxtail = NULL;
		p->rxbytes = 0;
		send_ack(r, p, refused, rc, e ? e->msg : "", 0);
	} else if (rc == MSCE_ECORRUPT) {
		fail_link(r, p, rc, "applying changes from node %u: %s", p->id,
			  e ? e->msg : err_str(rc));
		return;
	} else if (rc != 0) {
		/* Our store is in trouble (memory, disk): nothing was applied.
		 * Drop the link; the next session resends from our vector. */
		r->counters.store_errors++;
		trace(r, LOG_ERROR, "cannot apply changes from node %u: %s",
		      p->id, e ? e->msg : err_str(rc));
		r->io->close(r->io->data, p->id, rc, "local store error");
		p->state = REPL_DOWN;
		return;
	} else {
		if (res && res->applied)
			p->clock_refused = 0;
		send_ack(r, p, 0, 0, NULL, 0);
		start_apply(r, p);
	}
	/* What we just applied may be news for the other peers. */
	pump_all(r, now_ms);
}

static void on_ack(struct repl *r, struct peer *p, const Msce__Ack *a,
		   uint64_t now)
{
	for (size_t i = 0; i < a->n_vv; i++)
		have_raise(p, a->vv[i]->origin, a->vv[i]->seq, a->vv[i]->hlc,
			   now);
	if (a->epoch > p->tx_epoch) {
		/* The peer refused part of what we sent: resend from its
		 * vector, after a pause for the refused origin. */
		p->tx_epoch = a->epoch;
		p->nfl = 0;
		p->unacked = 0;
		for (size_t i = 0; i < p->no; i++)
			p->o[i].sent = p->o[i].have;
		if (a->refused_origin && a->refused_code == MSCE_ECLOCK) {
			struct ostate *o = ostate(p, a->refused_origin);
			if (o != NULL)
				o->paused_until = now + r->cfg.retry_ms;
			trace(r, LOG_WARN,
			      "node %u refused changes of origin %u: %s", p->id,
			      a->refused_origin, a->refused_reason);
		}
	} else {
		size_t keep = 0;
		for (size_t i = 0; i < p->nfl; i++) {
			struct ostate *o = ostate(p, p->fl[i].origin);
			if (o != NULL && o->have >= p->fl[i].last)
				p->unacked -= p->fl[i].bytes;
			else
				p->fl[keep++] = p->fl[i];
		}
		p->nfl = keep;
	}
	if (a->snapshot_id != 0 && p->snap != NULL &&
	    a->snapshot_id == p->snap_id && a->refused_code != 0) {
		/* Refused (our data is too far ahead of its clock): drop this
		 * snapshot and try a new one later. */
		trace(r, LOG_WARN, "node %u refused our snapshot: %s", p->id,
		      a->refused_reason);
		store_snap_end(p->snap);
		p->snap = NULL;
		p->snap_retry_at = now + r->cfg.retry_ms;
		return;
	}
	if (a->snapshot_id != 0 && p->snap != NULL &&
	    a->snapshot_id == p->snap_id) {
		p->snap_wait = 0;
		if (p->snap_last_sent) {
			store_snap_end(p->snap);
			p->snap = NULL;
			p->nfl = 0;
			p->unacked = 0;
			for (size_t i = 0; i < p->no; i++)
				p->o[i].sent = p->o[i].have;
			trace(r, LOG_INFO, "snapshot to node %u complete",
			      p->id);
		} else {
			send_snapshot_chunk(r, p);
			return;
		}
	}
	pump(r, p, now);
}

/* ---- snapshots: receiving ------------------------------------------------------ */

static int fv_from_msg(const Msce__FieldVersion *m, struct fv *f)
{
	if (m == NULL || m->value.len > MSCE_MAX_VALUE)
		return MSCE_EPROTO;
	f->value = m->value.data;
	f->value_len = (uint32_t)m->value.len;
	f->v.hlc = m->hlc;
	f->v.origin = m->origin;
	f->seq = m->seq;
	f->base.hlc = m->base_hlc;
	f->base.origin = m->base_origin;
	return 0;
}

/* A snapshot made by a node whose clock runs far ahead must not push our
 * clock ahead: refuse the chunk, as store_apply refuses such changes. */
static int snapshot_clock_check(struct repl *r, const Msce__SnapshotChunk *c,
				uint64_t now, struct err *e)
{
	uint64_t worst = 0;
	for (size_t i = 0; i < c->n_vv; i++)
		if (c->vv[i]->hlc > worst)
			worst = c->vv[i]->hlc;
	for (size_t i = 0; i < c->n_records; i++) {
		const Msce__Record *m = c->records[i];
		if (m->tomb_hlc > worst)
			worst = m->tomb_hlc;
		for (size_t j = 0; j < m->n_fields; j++)
			if (m->fields[j]->winner != NULL &&
			    m->fields[j]->winner->hlc > worst)
				worst = m->fields[j]->winner->hlc;
	}
	if (hlc_check(worst, now, r->cfg.max_skew_ms) == 0)
		return 0;
	r->counters.clock_refusals++;
	return err_set(e, MSCE_ECLOCK,
		       "snapshot holds a change %llu ms ahead of our clock "
		       "(limit %llu ms)",
		       (unsigned long long)(hlc_ms(worst) - now),
		       (unsigned long long)r->cfg.max_skew_ms);
}

static int on_snapshot(struct repl *r, struct peer *p,
		       const Msce__SnapshotChunk *c, uint64_t now,
		       struct err *e)
{
	struct store_snap_record *recs = NULL;
	struct record *rs = NULL;
	struct field_state *fss = NULL;
	size_t nfs = 0, k = 0;
	int rc = 0;

	if (c->protocol != MSCE_PROTOCOL_VERSION || c->snapshot_id == 0)
		return err_set(e, MSCE_EPROTO, "bad snapshot chunk header");
	if (snapshot_clock_check(r, c, now, e)) {
		p->clock_refused = 1;
		return e->code;
	}
	if (c->snapshot_id != p->rx_snap_id) {
		/* A new snapshot: its first chunk carries the vector. */
		free(p->rx_snap_vv);
		p->rx_snap_vv = calloc(c->n_vv ? c->n_vv : 1,
				       sizeof *p->rx_snap_vv);
		if (p->rx_snap_vv == NULL || c->n_vv > MAX_ORIGINS)
			return err_set(e, MSCE_EPROTO, "bad snapshot vector");
		for (size_t i = 0; i < c->n_vv; i++) {
			p->rx_snap_vv[i].origin = c->vv[i]->origin;
			p->rx_snap_vv[i].seq = c->vv[i]->seq;
			p->rx_snap_vv[i].hlc = c->vv[i]->hlc;
		}
		p->rx_snap_nvv = c->n_vv;
		p->rx_snap_id = c->snapshot_id;
		p->snaps_recv++;
		r->counters.snapshots_received++;
		trace(r, LOG_INFO, "receiving a snapshot from node %u", p->id);
	}
	for (size_t i = 0; i < c->n_records; i++) {
		if (c->records[i]->n_fields > MSCE_MAX_FIELDS)
			return err_set(e, MSCE_EPROTO, "snapshot record with "
						       "too many fields");
		nfs += c->records[i]->n_fields;
	}
	recs = calloc(c->n_records ? c->n_records : 1, sizeof *recs);
	rs = calloc(c->n_records ? c->n_records : 1, sizeof *rs);
	fss = calloc(nfs ? nfs : 1, sizeof *fss);
	if (recs == NULL || rs == NULL || fss == NULL) {
		rc = err_set(e, MSCE_ENOMEM, "snapshot chunk");
		goto out;
	}
	for (size_t i = 0; i < c->n_records && rc == 0; i++) {
		const Msce__Record *m = c->records[i];
		rs[i].tomb.hlc = m->tomb_hlc;
		rs[i].tomb.origin = m->tomb_origin;
		rs[i].fields = &fss[k];
		rs[i].nfields = (uint32_t)m->n_fields;
		rs[i].cap = rs[i].nfields;
		for (size_t j = 0; j < m->n_fields; j++) {
			const Msce__FieldState *fm = m->fields[j];
			struct field_state *fs = &fss[k++];
			if (fm->winner == NULL ||
			    fm->n_losers > RECORD_MAX_LOSERS ||
			    strlen(fm->winner->name) > MSCE_MAX_FIELD_NAME ||
			    fv_from_msg(fm->winner, &fs->w)) {
				rc = err_set(e, MSCE_EPROTO,
					     "bad field in snapshot record");
				break;
			}
			fs->name = (const uint8_t *)fm->winner->name;
			fs->name_len = (uint16_t)strlen(fm->winner->name);
			fs->seen.hlc = fm->seen_hlc;
			fs->seen.origin = fm->seen_origin;
			fs->nlosers = (uint8_t)fm->n_losers;
			for (size_t l = 0; l < fm->n_losers && rc == 0; l++)
				if (fv_from_msg(fm->losers[l], &fs->losers[l]))
					rc = err_set(e, MSCE_EPROTO,
						     "bad loser in snapshot");
		}
		recs[i].coll = m->collection;
		recs[i].coll_len = strlen(m->collection);
		recs[i].key = m->key;
		recs[i].key_len = strlen(m->key);
		recs[i].rec = &rs[i];
	}
	if (rc == 0 && c->n_records > 0)
		rc = r->ops->snap_merge(r->ops->ctx, recs, c->n_records, e);
	if (rc == 0 && c->done) {
		rc = r->ops->snap_finish(r->ops->ctx, p->rx_snap_vv,
					 p->rx_snap_nvv, e);
		trace(r, LOG_INFO, "snapshot from node %u merged", p->id);
	}
out:
	free(recs);
	free(rs);
	free(fss);
	return rc;
}

/* ---- gossip ---------------------------------------------------------------------- */

static void self_view(struct repl *r, uint64_t now, struct view *out)
{
	memset(out, 0, sizeof *out);
	out->known = 1;
	out->v.node = r->cfg.node_id;
	out->v.known = 1;
	out->v.nvv = my_vv(r, out->v.vv);
	r->ops->digest(r->ops->ctx, out->v.digest);
	out->v.hw = r->ops->hw(r->ops->ctx);
	out->v.time_ms = now;
	out->v.received_ms = now;
	for (size_t i = 0; i < r->npeers; i++)
		if (r->peers[i].state == REPL_ACTIVE)
			out->connected[out->nconnected++] = r->peers[i].id;
}

static void status_msg(const struct view *w, Msce__NodeStatus *s,
		       Msce__VVEntry *vs, Msce__VVEntry **vp)
{
	msce__node_status__init(s);
	s->node = w->v.node;
	for (size_t i = 0; i < w->v.nvv; i++) {
		msce__vventry__init(&vs[i]);
		vs[i].origin = w->v.vv[i].origin;
		vs[i].seq = w->v.vv[i].seq;
		vs[i].hlc = w->v.vv[i].hlc;
		vp[i] = &vs[i];
	}
	s->n_vv = w->v.nvv;
	s->vv = vp;
	s->digest.data = (uint8_t *)w->v.digest;
	s->digest.len = 32;
	s->hw = w->v.hw;
	s->time_ms = w->v.time_ms;
	s->n_connected = w->nconnected;
	s->connected = (uint32_t *)w->connected;
}

static void gossip(struct repl *r, uint64_t now)
{
	size_t n = r->cfg.nnodes;
	struct view *self = malloc(sizeof *self);
	Msce__NodeStatus *st = calloc(n, sizeof *st);
	Msce__NodeStatus **sp = calloc(n, sizeof *sp);
	Msce__VVEntry *vs = calloc(n * MAX_ORIGINS, sizeof *vs);
	Msce__VVEntry **vp = calloc(n * MAX_ORIGINS, sizeof *vp);
	Msce__PeerMsg m = MSCE__PEER_MSG__INIT;
	Msce__Gossip g = MSCE__GOSSIP__INIT;
	size_t k = 0;

	if (self == NULL || st == NULL || sp == NULL || vs == NULL || vp == NULL)
		goto out;
	self_view(r, now, self);
	r->views[node_index(r, r->cfg.node_id)] = *self;
	for (size_t i = 0; i < n; i++) {
		const struct view *w = &r->views[i];
		if (!w->known)
			continue;
		status_msg(w, &st[k], vs + i * MAX_ORIGINS, vp + i * MAX_ORIGINS);
		sp[k] = &st[k];
		k++;
	}
	g.n_nodes = k;
	g.nodes = sp;
	m.msg_case = MSCE__PEER_MSG__MSG_GOSSIP;
	m.gossip = &g;
	for (size_t i = 0; i < r->npeers; i++)
		if (r->peers[i].state == REPL_ACTIVE)
			send_msg(r, r->peers[i].id, &m);
out:
	free(self);
	free(st);
	free(sp);
	free(vs);
	free(vp);
}

static int on_gossip(struct repl *r, struct peer *from, const Msce__Gossip *g,
		     uint64_t now)
{
	for (size_t i = 0; i < g->n_nodes; i++) {
		const Msce__NodeStatus *s = g->nodes[i];
		int idx = node_index(r, s->node);
		struct view *w;
		if (idx < 0 || s->node == r->cfg.node_id)
			continue; /* unknown nodes are not ours to track */
		if (s->n_vv > MAX_ORIGINS || s->digest.len != 32 ||
		    s->n_connected > MAX_ORIGINS)
			return MSCE_EPROTO;
		w = &r->views[idx];
		if (w->known && (s->hw < w->v.hw ||
				 (s->hw == w->v.hw && s->time_ms <= w->v.time_ms)))
			continue;
		w->known = 1;
		w->v.known = 1;
		w->v.node = s->node;
		w->v.nvv = s->n_vv;
		for (size_t j = 0; j < s->n_vv; j++) {
			w->v.vv[j].origin = s->vv[j]->origin;
			w->v.vv[j].seq = s->vv[j]->seq;
			w->v.vv[j].hlc = s->vv[j]->hlc;
			w->v.vv[j].floor = 0;
		}
		memcpy(w->v.digest, s->digest.data, 32);
		w->v.hw = s->hw;
		w->v.time_ms = s->time_ms;
		w->v.received_ms = now;
		w->nconnected = s->n_connected;
		if (s->n_connected) /* NULL when empty */
			memcpy(w->connected, s->connected,
			       s->n_connected * sizeof *s->connected);
		if (s->node == from->id)
			from->offset = (int64_t)s->time_ms - (int64_t)now;
		/* Gossip also tells us what each peer holds. */
		struct peer *p = peer_get(r, s->node);
		if (p != NULL)
			for (size_t j = 0; j < s->n_vv; j++)
				have_raise(p, s->vv[j]->origin, s->vv[j]->seq,
					   s->vv[j]->hlc, now);
	}
	return 0;
}

/* ---- dispatch ------------------------------------------------------------------------ */

void repl_recv(struct repl *r, uint32_t peer, const uint8_t *msg, size_t len,
	       uint64_t now_ms)
{
	struct peer *p = peer_get(r, peer);
	Msce__PeerMsg *m;
	struct err e;
	int keep = 0;

	if (p == NULL)
		return;
	if (len > MSCE_MAX_MESSAGE) {
		fail_link(r, p, MSCE_ETOOBIG, "message of %zu bytes, limit %u",
			  len, MSCE_MAX_MESSAGE);
		return;
	}
	struct pb_limit lim;
	m = msce__peer_msg__unpack(pb_limit_init(&lim, pb_limit_for(len)), len,
				   msg);
	if (m == NULL) {
		fail_link(r, p, MSCE_EPROTO, "malformed message from node %u",
			  peer);
		return;
	}
	p->last_contact = now_ms;
	if (p->state != REPL_ACTIVE && m->msg_case != MSCE__PEER_MSG__MSG_HELLO &&
	    m->msg_case != MSCE__PEER_MSG__MSG_REFUSE) {
		msce__peer_msg__free_unpacked(m, NULL);
		return; /* stale: from before this session */
	}
	switch (m->msg_case) {
	case MSCE__PEER_MSG__MSG_HELLO:
		on_hello(r, p, m->hello, now_ms);
		break;
	case MSCE__PEER_MSG__MSG_CHANGES:
		keep = 1;
		on_changes(r, p, m, len, now_ms);
		break;
	case MSCE__PEER_MSG__MSG_ACK:
		on_ack(r, p, m->ack, now_ms);
		break;
	case MSCE__PEER_MSG__MSG_SNAPSHOT:
		if (on_snapshot(r, p, m->snapshot, now_ms, &e)) {
			if (e.code == MSCE_ECLOCK) {
				trace(r, LOG_WARN, "snapshot from node %u: %s",
				      peer, e.msg);
				p->rx_snap_id = 0;
				send_ack(r, p, 0, MSCE_ECLOCK, e.msg,
					 m->snapshot->snapshot_id);
				break;
			}
			fail_link(r, p, e.code, "snapshot from node %u: %s",
				  peer, e.msg);
			break;
		}
		send_ack(r, p, 0, 0, NULL, m->snapshot->snapshot_id);
		break;
	case MSCE__PEER_MSG__MSG_GOSSIP:
		if (on_gossip(r, p, m->gossip, now_ms))
			fail_link(r, p, MSCE_EPROTO,
				  "malformed gossip from node %u", peer);
		break;
	case MSCE__PEER_MSG__MSG_REFUSE:
		trace(r, LOG_WARN, "node %u refused the link: %s", peer,
		      m->refuse->reason);
		r->io->close(r->io->data, p->id, (int)m->refuse->code,
			     m->refuse->reason);
		p->state = REPL_DOWN;
		break;
	default:
		fail_link(r, p, MSCE_EPROTO, "unknown message from node %u",
			  peer);
	}
	if (!keep)
		msce__peer_msg__free_unpacked(m, NULL);
}

void repl_local_commit(struct repl *r, uint64_t now_ms) { pump_all(r, now_ms); }

/* ---- timers: truncation and tombstone collection ------------------------------------------ */

static uint64_t peer_have(struct repl *r, uint32_t node, uint32_t origin)
{
	struct peer *p = peer_get(r, node);
	for (size_t i = 0; p != NULL && i < p->no; i++)
		if (p->o[i].origin == origin)
			return p->o[i].have;
	return 0;
}

/* The log keeps the last log_retention changes of each origin: enough for
 * peers that were away a while and for watchers; a peer further behind
 * gets a snapshot. */
static void truncate_logs(struct repl *r)
{
	struct vv_entry vv[MAX_ORIGINS];
	size_t n = my_vv(r, vv);
	struct err e;

	for (size_t i = 0; i < n; i++) {
		uint64_t upto;
		/* Truncate in steps, not every change: each is a commit. */
		uint64_t step = r->cfg.log_retention / 4 + 1;
		if (step > 1000)
			step = 1000;
		if (vv[i].seq <= r->cfg.log_retention)
			continue;
		upto = vv[i].seq - r->cfg.log_retention;
		if (upto <= vv[i].floor || upto - vv[i].floor < step)
			continue;
		if (r->ops->log_truncate(r->ops->ctx, vv[i].origin, upto, &e))
			trace(r, LOG_WARN, "log truncation: %s", e.msg);
		else
			r->counters.log_truncated += upto - vv[i].floor;
	}
}

static uint64_t view_seq(const struct repl_node_view *v, uint32_t origin)
{
	for (size_t i = 0; i < v->nvv; i++)
		if (v->vv[i].origin == origin)
			return v->vv[i].seq;
	return 0;
}

/* A tombstone at hlc T can go once every node holds every change made
 * with an hlc <= T. Node o promises (gossip) that its changes up to hlc
 * hw_o have seq <= s_o; once every node holds s_o of origin o, all of o's
 * changes up to hw_o are everywhere. */
static void collect_tombstones(struct repl *r, uint64_t now)
{
	uint64_t bound = UINT64_MAX;
	struct view self;
	struct err e;
	size_t dropped;

	self_view(r, now, &self);
	r->views[node_index(r, r->cfg.node_id)] = self;
	for (size_t i = 0; i < r->cfg.nnodes; i++) {
		const struct view *w = &r->views[i];
		if (w->known) {
			uint64_t s = view_seq(&w->v, r->nodes[i]);
			int all = 1;
			for (size_t j = 0; j < r->cfg.nnodes && all; j++)
				all = r->views[j].known &&
				      view_seq(&r->views[j].v, r->nodes[i]) >= s;
			if (all && w->v.hw > r->stable[i])
				r->stable[i] = w->v.hw;
		}
		if (r->stable[i] < bound)
			bound = r->stable[i];
	}
	if (bound == 0 || bound == UINT64_MAX)
		return;
	struct version upto = {bound, UINT32_MAX};
	if (r->ops->gc_tombstones(r->ops->ctx, upto, &dropped, &e))
		trace(r, LOG_WARN, "tombstone collection: %s", e.msg);
	else
		r->counters.tombstones_collected += dropped;
}

void repl_tick(struct repl *r, uint64_t now_ms)
{
	struct err e;

	/* A wall clock stepped back must not stall the timers. */
	if (r->next_gossip > now_ms + r->cfg.gossip_interval_ms)
		r->next_gossip = now_ms;
	if (r->next_truncate > now_ms + r->cfg.truncate_interval_ms)
		r->next_truncate = now_ms;

	if (now_ms >= r->next_gossip) {
		/* An idle node still promises a rising hlc, so tombstone
		 * collection elsewhere is not held back by it. */
		if (hlc_ms(r->ops->hw(r->ops->ctx)) + r->cfg.gossip_interval_ms <
		    now_ms)
			r->ops->clock_advance(r->ops->ctx, now_ms, &e);
		gossip(r, now_ms);
		r->next_gossip = now_ms + r->cfg.gossip_interval_ms;
	}
	if (now_ms >= r->next_truncate) {
		truncate_logs(r);
		collect_tombstones(r, now_ms);
		r->next_truncate = now_ms + r->cfg.truncate_interval_ms;
	}
	/* Retries after clock refusals, and relays whose delay passed. */
	pump_all(r, now_ms);
}

/* ---- status ------------------------------------------------------------------------------------ */

size_t repl_peers(const struct repl *r, struct repl_peer_status *out,
		  size_t max)
{
	struct vv_entry vv[MAX_ORIGINS];
	size_t n = my_vv((struct repl *)r, vv);

	for (size_t i = 0; i < r->npeers && i < max; i++) {
		const struct peer *p = &r->peers[i];
		struct repl_peer_status *s = &out[i];
		memset(s, 0, sizeof *s);
		s->node = p->id;
		s->state = p->state;
		s->last_contact_ms = p->last_contact;
		s->clock_offset_ms = p->offset;
		s->clock_refused = p->clock_refused;
		s->sent_changes = p->sent_changes;
		s->recv_changes = p->recv_changes;
		s->dup_changes = p->dup_changes;
		s->snapshots_sent = p->snaps_sent;
		s->snapshots_received = p->snaps_recv;
		for (size_t k = 0; k < n; k++) {
			uint64_t have = 0, have_hlc = 0;
			for (size_t j = 0; j < p->no; j++)
				if (p->o[j].origin == vv[k].origin) {
					have = p->o[j].have;
					have_hlc = p->o[j].have_hlc;
				}
			if (vv[k].seq > have) {
				uint64_t lag = hlc_ms(vv[k].hlc) -
					       (have_hlc ? hlc_ms(have_hlc)
							 : hlc_ms(vv[k].hlc));
				s->lag_changes += vv[k].seq - have;
				if (have_hlc == 0)
					lag = 0;
				if (lag > s->lag_ms)
					s->lag_ms = lag;
			}
		}
	}
	return r->npeers;
}

void repl_node(const struct repl *r, uint32_t node, struct repl_node_view *out)
{
	int idx = node_index(r, node);
	memset(out, 0, sizeof *out);
	out->node = node;
	if (idx >= 0 && r->views[idx].known)
		*out = r->views[idx].v;
}

void repl_counters(const struct repl *r, struct repl_counters *out)
{
	*out = r->counters;
}

size_t repl_holders(struct repl *r, uint32_t origin, uint64_t seq,
		    uint32_t *out, size_t max)
{
	struct vv_entry vv[MAX_ORIGINS];
	size_t n = my_vv(r, vv), k = 0;

	for (size_t i = 0; i < n; i++)
		if (vv[i].origin == origin && vv[i].seq >= seq && k < max)
			out[k++] = r->cfg.node_id;
	for (size_t i = 0; i < r->npeers && k < max; i++)
		if (peer_have(r, r->peers[i].id, origin) >= seq)
			out[k++] = r->peers[i].id;
	return k;
}

int repl_write_gate(struct repl *r, int all_peers, int one_peer, char *why,
		    size_t whylen)
{
	struct vv_entry vv[MAX_ORIGINS];
	size_t n = my_vv(r, vv), greeted = 0;
	uint64_t mine = 0;

	for (size_t i = 0; i < n; i++)
		if (vv[i].origin == r->cfg.node_id)
			mine = vv[i].seq;
	for (size_t i = 0; i < r->npeers; i++) {
		uint64_t theirs = peer_have(r, r->peers[i].id, r->cfg.node_id);
		greeted += r->peers[i].greeted;
		if (theirs > mine) {
			snprintf(why, whylen,
				 "node %u holds %llu changes of this center, "
				 "we hold %llu: writes wait until they are back",
				 r->peers[i].id, (unsigned long long)theirs,
				 (unsigned long long)mine);
			return MSCE_EBUSY;
		}
	}
	if (all_peers && greeted < r->npeers) {
		snprintf(why, whylen,
			 "this center was restored from a backup: writes wait "
			 "until every peer has confirmed its own changes are "
			 "back (%zu of %zu so far)",
			 greeted, r->npeers);
		return MSCE_EBUSY;
	}
	if (one_peer && r->npeers > 0 && greeted == 0) {
		snprintf(why, whylen,
			 "this center's store is new: writes wait until a peer "
			 "has said what it holds of this center");
		return MSCE_EBUSY;
	}
	return 0;
}
