/* SPDX-License-Identifier: Apache-2.0 */
/* Replication core; see repl.h for the shape, the session states and the
 * two rules (identity, tombstone collection) this file implements.
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
 * consistent snapshot in chunks, one chunk in flight; each chunk says which
 * range of positions it covers, so the receiver can drop what the sender
 * no longer has there. The receiver merges each chunk through io->snapshot
 * (asynchronous, durable), and the last one raises its vector.
 *
 * Views: every node's latest status (its vector, digest, writer, members
 * and what it believes of the others' writers), from Hello and gossip,
 * direct or relayed. A view only moves forward: a status replaces the view
 * if it is from the same writer and newer, or from a later-born writer.
 * Views drive status, relaying, the write gate and tombstone collection.
 *
 * Failure modes: any malformed or unexpected message closes the link
 * (counted); a link silent for liveness_ms is closed too. The driver
 * reconnects and a new Hello restarts the session from the vectors, so
 * nothing depends on in-flight state surviving. */
#include "repl.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hlc.h"
#include "log.h"
#include "mutant.h"
#include "pballoc.h"
#include "peer.pb-c.h"
#include "record_pb.h"
#include "schema.h"
#include "statussig.h"

#define MAX_ORIGINS MSCE_MAX_ORIGINS
#define MAX_NODES MSCE_MAX_NODES
#define MAX_WRITERS (2 * MSCE_MAX_ORIGINS)
/* How long an origin a peer has no room for waits before it is offered
 * again (its vector is full: that rarely changes). */
#define ORIGIN_REFUSED_MS 60000
#define WCANDS 8 /* candidate statuses kept per writer */
/* Memory for messages decoded ahead, all peers together, in receive
 * windows: decoded, a change takes about five times its bytes. */
#define PREP_BYTES_PER_WINDOW 2

/* ---- state ------------------------------------------------------------- */

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
	size_t len; /* its encoded size, counted in rxbytes */
	struct rxmsg *next;
	/* Decoded ahead while it waited (ops->prepare), or NULL: its blobs,
	 * pointing into prep, and what prep holds. */
	struct store_blob *pb;
	struct store_prep *prep;
	size_t prep_bytes;
};

/* A snapshot chunk being merged by the driver, with what it points into. */
struct rxsnap {
	Msce__PeerMsg *m;
	struct store_snap_chunk chunk;
	struct store_snap_record *recs;
	struct record *rs;
	struct field_state *fss;
	struct fv *fvs; /* the losers of fss */
	struct store_pos end;
	/* Copies of the snapshot's vector and proofs: the session (and its
	 * copies) may end before the driver is done with the chunk. */
	struct vv_entry *cover;
	struct seg *cover_segs;
};

struct peer {
	uint32_t id;
	enum repl_state state;
	uint32_t session; /* bumped at each link up/down */
	struct ostate o[MAX_ORIGINS];
	size_t no;
	int heard; /* o[] is from its own word, since we started */
	/* Why the link is down, for status: the last refusal either way, or
	 * failure to reach it; "" once a session is greeted. */
	char why[REPL_WHY_MAX];
	uint64_t why_ms;
	uint64_t last_rx; /* last message of this session */
	/* what its Hello of this session said */
	int greeted;
	uint32_t hello_writer;
	uint64_t hello_hw;
	uint32_t hello_names[MAX_NODES]; /* the writers it believes current */
	size_t hello_nnames;
	struct vv_entry *hello_vv;
	size_t hello_nvv;
	/* Its own newest status of this session, once it writes: a later
	 * greeting, for a peer that took its writer after its Hello. */
	uint32_t st_writer;
	uint64_t st_hw;
	struct vv_entry *st_vv;
	size_t st_nvv;
	/* sending */
	struct inflight *fl;
	size_t nfl, capfl, unacked;
	uint32_t tx_epoch;
	size_t rr; /* round-robin origin index */
	struct store_snap *snap;
	uint64_t snap_id;
	int snap_wait, snap_last_sent, snap_first;
	/* The next chunk, read and packed while the one before is in flight
	 * (still one in flight: it goes when that one is acked). */
	uint8_t *snap_pre;
	size_t snap_pre_len, snap_pre_recs;
	int snap_pre_done;
	uint64_t snap_retry_at; /* after the peer refused one for its clock */
	int snap_offered;	 /* we told it to ask us for a snapshot */
	struct repl_snap_status snap_out;
	/* receiving */
	struct rxmsg *rxq, *rxtail;
	size_t rxbytes;
	/* Our store refused to apply (a full disk): what came waits in rxq
	 * until apply_retry_at, the link stays up. */
	int apply_held;
	uint64_t apply_retry_at;
	int apply_failing; /* logged once, until an apply succeeds */
	/* A snapshot we refused for our store's failure: its chunks still
	 * in flight are dropped. */
	uint64_t snap_refused_id;
	uint32_t rx_epoch;
	int applying;
	uint64_t apply_token;
	struct store_blob *blobs;
	size_t nblobs, capblobs;
	struct seg *segs; /* the signed segments of blobs */
	size_t nsegs, capsegs;
	struct rxmsg *applying_msgs;
	uint64_t rx_snap_id;
	struct vv_entry *rx_snap_vv;
	size_t rx_snap_nvv;
	struct seg *rx_snap_segs; /* what proves rx_snap_vv */
	size_t rx_snap_nsegs;
	int snap_asked; /* we asked it for a snapshot this session */
	int rx_started; /* rx_start is set (else the start of the store) */
	struct store_pos rx_start;
	struct rxsnap *snap_applying;
	struct rxsnap *snap_next; /* checked, waiting for snap_applying */
	uint64_t snap_token;
	struct repl_snap_status snap_in;
	/* status */
	uint64_t last_contact;
	int64_t offset;
	int clock_refused;
	int hs_clock_refused; /* its handshakes refused for its clock */
	uint64_t sent_changes, recv_changes, dup_changes;
	uint64_t snaps_sent, snaps_recv, timeouts;
	uint64_t refused_forged, refused_snapshots, refused_protocol;
	int status_forged_told; /* a refused status logged this session */
};

struct belief {
	uint32_t writer;
	uint64_t born;
};

struct view {
	uint32_t node;
	struct repl_node_view v; /* v.known: a status arrived */
	uint32_t members[MAX_NODES];
	size_t nmembers;
	struct belief beliefs[MAX_NODES];
	size_t nbeliefs;
	uint32_t connected[MAX_NODES];
	size_t nconnected;
	/* Our vector, another digest: first seen when (our clock), in its
	 * report made when (its clock). 0: not now. */
	uint64_t div_seen, div_report;
	/* The status as its node encoded and signed it, relayed as is
	 * (NULL: none to relay). */
	uint8_t *signed_status;
	size_t signed_len;
	uint8_t sig[SEG_SIG_LEN];
};

/* A status of a writer's node, waiting until every node holds the
 * writer's changes up to it. */
struct wcand {
	uint64_t s; /* the writer's own seq in it */
	struct vv_entry *vv;
	size_t n;
};

/* Every writer (origin) we have heard of. */
struct wstate {
	uint32_t id;
	int born_known;
	uint64_t born;
	/* The newest status of its node, made while it was the writer and
	 * held it seq s, such that every node holds s: whatever it wrote
	 * before holding a change is everywhere. */
	int has_stable;
	struct vv_entry *stable;
	size_t nstable;
	struct wcand cand[WCANDS];
	size_t ncand;
};

struct repl {
	struct repl_config cfg;
	uint32_t *nodes;
	const struct repl_store_ops *ops;
	const struct repl_io *io;
	struct peer *peers;
	size_t npeers;
	struct view *views;
	size_t nviews;
	struct wstate *writers;
	size_t nwriters;
	uint64_t next_gossip, next_truncate;
	uint64_t last_tick; /* now of the last repl_tick, 0 before it */
	uint64_t token_seq;
	size_t prep_bytes; /* held by messages decoded ahead */
	uint64_t snap_seq;
	uint32_t pending_writer; /* asked the store to take it */
	uint64_t pending_until;
	uint32_t retiring; /* asked the store to give it up */
	char gate_why[REPL_WHY_MAX];
	/* Why the last collection pass stopped before collecting ("" when
	 * it ran, or before the first pass). */
	char gc_why[REPL_WHY_MAX];
	uint8_t *buf;
	size_t bufcap;
	struct repl_counters counters;
};

/* ---- small helpers ------------------------------------------------------ */

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

static const struct vv_entry *vv_at(const struct vv_entry *vv, size_t n,
				    uint32_t origin)
{
	for (size_t i = 0; i < n; i++)
		if (vv[i].origin == origin)
			return &vv[i];
	return NULL;
}

static uint64_t vv_seq(const struct vv_entry *vv, size_t n, uint32_t origin)
{
	const struct vv_entry *e = vv_at(vv, n, origin);
	return e ? e->seq : 0;
}

static uint64_t vv_hlc(const struct vv_entry *vv, size_t n, uint32_t origin)
{
	const struct vv_entry *e = vv_at(vv, n, origin);
	return e ? e->hlc : 0;
}

/* m: a PeerMsg, or a message that packs to one (PeerMsgSnapshotPacked). */
static int send_pb(struct repl *r, uint32_t peer, const ProtobufCMessage *m)
{
	size_t n = protobuf_c_message_get_packed_size(m);
	if (n > r->bufcap) {
		uint8_t *b = realloc(r->buf, n);
		if (b == NULL)
			return MSCE_ENOMEM;
		r->buf = b;
		r->bufcap = n;
	}
	protobuf_c_message_pack(m, r->buf);
	r->io->send(r->io->data, peer, r->buf, n);
	return 0;
}

static int send_msg(struct repl *r, uint32_t peer, const Msce__PeerMsg *m)
{
	return send_pb(r, peer, &m->base);
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

/* Copies a message vector into a malloc'd array; NULL on a bad one. */
static struct vv_entry *vv_from_msg(Msce__VVEntry **in, size_t n)
{
	struct vv_entry *v;
	if (n > MAX_ORIGINS)
		return NULL;
	v = calloc(n ? n : 1, sizeof *v);
	if (v == NULL)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		v[i].origin = in[i]->origin;
		v[i].seq = in[i]->seq;
		v[i].hlc = in[i]->hlc;
	}
	return v;
}

/* Segments with their origin and hash (snapshot covers, seals). NULL on
 * a malformed one (or out of memory). */
static struct seg *segs_from_msg(Msce__Segment **in, size_t n)
{
	struct seg *g;
	if (n > MAX_ORIGINS)
		return NULL;
	g = calloc(n ? n : 1, sizeof *g);
	if (g == NULL)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		if (in[i]->sig.len != SEG_SIG_LEN ||
		    in[i]->hash.len != SEG_HASH_LEN) {
			free(g);
			return NULL;
		}
		g[i].origin = in[i]->origin;
		g[i].first = in[i]->first;
		g[i].last = in[i]->last;
		g[i].last_hlc = in[i]->last_hlc;
		memcpy(g[i].hash, in[i]->hash.data, SEG_HASH_LEN);
		memcpy(g[i].sig, in[i]->sig.data, SEG_SIG_LEN);
	}
	return g;
}

/* Messages for segments; entries point into store and g. */
static Msce__Segment **segs_msg(struct seg *g, size_t n, Msce__Segment *store)
{
	Msce__Segment **p = malloc((n ? n : 1) * sizeof *p);
	if (p == NULL)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		msce__segment__init(&store[i]);
		store[i].origin = g[i].origin;
		store[i].first = g[i].first;
		store[i].last = g[i].last;
		store[i].last_hlc = g[i].last_hlc;
		store[i].hash.data = g[i].hash;
		store[i].hash.len = SEG_HASH_LEN;
		store[i].sig.data = g[i].sig;
		store[i].sig.len = SEG_SIG_LEN;
		p[i] = &store[i];
	}
	return p;
}

static void link_why(struct repl *r, struct peer *p, uint64_t now,
		     const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void link_why(struct repl *r, struct peer *p, uint64_t now,
		     const char *fmt, ...)
{
	va_list ap;
	(void)r;
	va_start(ap, fmt);
	vsnprintf(p->why, sizeof p->why, fmt, ap);
	va_end(ap);
	p->why_ms = now;
}

static void snap_out_end(struct repl *r, struct peer *p);

static void close_link(struct repl *r, struct peer *p, int code,
		       const char *reason)
{
	Msce__PeerMsg m = MSCE__PEER_MSG__INIT;
	Msce__Refuse rf = MSCE__REFUSE__INIT;

	rf.code = (uint32_t)code;
	rf.reason = (char *)reason;
	m.msg_case = MSCE__PEER_MSG__MSG_REFUSE;
	m.refuse = &rf;
	send_msg(r, p->id, &m);
	r->io->close(r->io->data, p->id, code, reason);
	p->state = REPL_DOWN;
	link_why(r, p, r->last_tick, "closed here: %s", reason);
	/* The rest of the session goes at the next link_up; a snapshot's
	 * read must go now, or the peer staying away keeps it open, and no
	 * snapshot may show as under way (or stalled) on a link down. */
	if (!MUTANT("snapshot_read_kept"))
		snap_out_end(r, p);
	if (!MUTANT("snapshot_in_shown")) {
		p->snap_in.active = 0;
		p->snap_in.stalled = 0;
	}
}

enum refusal { REFUSED_PROTOCOL, REFUSED_FORGED, REFUSED_SNAPSHOT };

static void vrefuse(struct repl *r, struct peer *p, enum refusal why, int code,
		    const char *fmt, va_list ap)
{
	char reason[256];

	vsnprintf(reason, sizeof reason, fmt, ap);
	switch (why) {
	case REFUSED_PROTOCOL:
		r->counters.protocol_errors++;
		p->refused_protocol++;
		break;
	case REFUSED_FORGED:
		r->counters.forged_refusals++;
		p->refused_forged++;
		break;
	case REFUSED_SNAPSHOT:
		r->counters.snapshot_refusals++;
		p->refused_snapshots++;
		break;
	}
	trace(r, LOG_WARN, "link to node %u: %s", p->id, reason);
	close_link(r, p, code, reason);
}

/* Closes the link after something we refuse from p, counted by kind. */
static void refuse(struct repl *r, struct peer *p, enum refusal why, int code,
		   const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static void refuse(struct repl *r, struct peer *p, enum refusal why, int code,
		   const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vrefuse(r, p, why, code, fmt, ap);
	va_end(ap);
}

static void fail_link(struct repl *r, struct peer *p, int code,
		      const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void fail_link(struct repl *r, struct peer *p, int code,
		      const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vrefuse(r, p, REFUSED_PROTOCOL, code, fmt, ap);
	va_end(ap);
}

/* ---- writers ------------------------------------------------------------- */

static struct wstate *writer_find(struct repl *r, uint32_t id)
{
	for (size_t i = 0; i < r->nwriters; i++)
		if (r->writers[i].id == id)
			return &r->writers[i];
	return NULL;
}

/* Notes that writer id exists (born, if known). */
static struct wstate *writer_note(struct repl *r, uint32_t id, int born_known,
				  uint64_t born)
{
	struct wstate *w;
	if (id == 0 || writer_node(id) == 0)
		return NULL;
	w = writer_find(r, id);
	if (w == NULL) {
		if (r->nwriters == MAX_WRITERS)
			return NULL;
		w = &r->writers[r->nwriters++];
		memset(w, 0, sizeof *w);
		w->id = id;
	}
	if (born_known && !w->born_known) {
		w->born_known = 1;
		w->born = born;
	}
	return w;
}

/* The current writer of node: the latest born we know of, 0 if none. Of
 * two born at one hlc (stores that knew the same births start just above
 * them), the higher incarnation, so that every node picks the same. */
static const struct wstate *node_writer(const struct repl *r, uint32_t node)
{
	const struct wstate *best = NULL;
	for (size_t i = 0; i < r->nwriters; i++) {
		const struct wstate *w = &r->writers[i];
		if (writer_node(w->id) != node || !w->born_known)
			continue;
		if (best == NULL || w->born > best->born ||
		    (w->born == best->born && w->id > best->id))
			best = w;
	}
	return best;
}

/* Does writer a (born ba) come after writer b (born bb) of one node, in
 * the order node_writer picks by? */
static int writer_later(uint64_t ba, uint32_t a, uint64_t bb, uint32_t b)
{
	return ba > bb || (ba == bb && a > b && !MUTANT("writer_tie"));
}

static void cand_free(struct wcand *c)
{
	free(c->vv);
	c->vv = NULL;
	c->n = 0;
}

/* A status of writer w's node, made while w wrote there. */
static void writer_candidate(struct wstate *w, const struct vv_entry *vv,
			     size_t n)
{
	struct wcand c;
	c.s = vv_seq(vv, n, w->id);
	/* Same as the newest: nothing new to wait for. */
	if (w->ncand > 0 && w->cand[w->ncand - 1].s == c.s &&
	    w->cand[w->ncand - 1].n == n &&
	    memcmp(w->cand[w->ncand - 1].vv, vv, n * sizeof *vv) == 0)
		return;
	c.vv = malloc((n ? n : 1) * sizeof *vv);
	if (c.vv == NULL)
		return;
	memcpy(c.vv, vv, n * sizeof *vv);
	c.n = n;
	if (w->ncand == WCANDS) {
		cand_free(&w->cand[0]);
		memmove(&w->cand[0], &w->cand[1],
			(WCANDS - 1) * sizeof w->cand[0]);
		w->ncand--;
	}
	w->cand[w->ncand++] = c;
}

static void writers_free(struct repl *r)
{
	for (size_t i = 0; i < r->nwriters; i++) {
		for (size_t k = 0; k < r->writers[i].ncand; k++)
			cand_free(&r->writers[i].cand[k]);
		free(r->writers[i].stable);
	}
	r->nwriters = 0;
}

/* ---- views ------------------------------------------------------------------ */

static struct view *view_find(struct repl *r, uint32_t node)
{
	for (size_t i = 0; i < r->nviews; i++)
		if (r->views[i].node == node)
			return &r->views[i];
	return NULL;
}

static struct view *view_get(struct repl *r, uint32_t node)
{
	struct view *v = view_find(r, node);
	if (v != NULL || r->nviews == MAX_NODES)
		return v;
	v = &r->views[r->nviews++];
	memset(v, 0, sizeof *v);
	v->node = node;
	v->v.node = node;
	return v;
}

static int has_member(const struct view *v, uint32_t node)
{
	for (size_t i = 0; i < v->nmembers; i++)
		if (v->members[i] == node)
			return 1;
	return 0;
}

static const struct belief *view_belief(const struct view *v, uint32_t node)
{
	for (size_t i = 0; i < v->nbeliefs; i++)
		if (writer_node(v->beliefs[i].writer) == node)
			return &v->beliefs[i];
	return NULL;
}

/* The nodes that count: ours, and every member a member lists. */
static size_t members(const struct repl *r, uint32_t *out)
{
	size_t n = 0;
	for (size_t i = 0; i < r->cfg.nnodes && n < MAX_NODES; i++)
		out[n++] = r->nodes[i];
	for (size_t i = 0; i < n; i++) {
		const struct view *v = NULL;
		if (out[i] == r->cfg.node_id)
			continue; /* our own list is the configuration */
		for (size_t k = 0; k < r->nviews; k++)
			if (r->views[k].node == out[i] && r->views[k].v.known)
				v = &r->views[k];
		for (size_t j = 0; v != NULL && j < v->nmembers; j++) {
			int dup = 0;
			for (size_t k = 0; k < n && !dup; k++)
				dup = out[k] == v->members[j];
			if (!dup && n < MAX_NODES)
				out[n++] = v->members[j];
		}
	}
	return n;
}

/* Our own status as a view, fresh from the store. */
static void self_view(struct repl *r, uint64_t now)
{
	struct view *v = view_get(r, r->cfg.node_id);
	uint64_t born = 0;
	uint32_t w = r->ops->writer(r->ops->ctx, &born);
	uint32_t m[MAX_NODES];
	size_t nm;

	if (v == NULL)
		return;
	v->v.known = 1;
	/* One read: a vector with another commit's digest would look like
	 * divergence to the peers comparing them. */
	v->v.nvv = r->ops->state(r->ops->ctx, v->v.vv, MAX_ORIGINS,
				 v->v.digest, &v->v.hw);
	if (v->v.nvv > MAX_ORIGINS)
		v->v.nvv = MAX_ORIGINS;
	v->v.time_ms = now;
	v->v.received_ms = now;
	v->v.writer = w;
	v->v.born = born;
	v->v.settled = w != 0;
	for (size_t i = 0; i < v->v.nvv; i++)
		writer_note(r, v->v.vv[i].origin, 0, 0);
	if (w != 0) {
		struct wstate *ws = writer_note(r, w, 1, born);
		if (ws != NULL)
			writer_candidate(ws, v->v.vv, v->v.nvv);
	}
	v->nconnected = 0;
	for (size_t i = 0; i < r->npeers; i++)
		if (r->peers[i].state == REPL_ACTIVE)
			v->connected[v->nconnected++] = r->peers[i].id;
	v->nmembers = 0;
	for (size_t i = 0; i < r->cfg.nnodes; i++)
		v->members[v->nmembers++] = r->nodes[i];
	nm = members(r, m);
	v->nbeliefs = 0;
	for (size_t i = 0; i < nm; i++) {
		const struct wstate *cw = node_writer(r, m[i]);
		if (cw == NULL)
			continue;
		v->beliefs[v->nbeliefs].writer = cw->id;
		v->beliefs[v->nbeliefs].born = cw->born;
		v->nbeliefs++;
	}
}

static int status_ok(const Msce__NodeStatus *s)
{
	return s->node >= 1 && s->node <= 65535 && s->n_vv <= MAX_ORIGINS &&
	       s->digest.len == 32 && s->n_connected <= MAX_NODES &&
	       s->n_members <= MAX_NODES && s->n_writers <= MAX_NODES;
}

static void note_writers(struct repl *r, Msce__WriterInfo **ws, size_t n)
{
	for (size_t i = 0; i < n; i++)
		writer_note(r, ws[i]->writer, 1, ws[i]->born);
}

/* Takes a status (checked with status_ok) into our views if it is newer:
 * from the same writer with a higher hw (then time), or from a writer born
 * later. A status that comes straight from its node always wins (a
 * restored node without a writer yet speaks for itself), and raises the
 * view's birth so that a stale relay of an older one cannot come back. */
static void view_accept(struct repl *r, const Msce__NodeStatus *s,
			const Msce__SignedStatus *ss, int direct, uint64_t now)
{
	uint64_t born = s->born;
	struct view *v;
	struct wstate *ws;

	note_writers(r, s->writers, s->n_writers);
	for (size_t j = 0; j < s->n_vv; j++)
		writer_note(r, s->vv[j]->origin, 0, 0);
	if (s->writer != 0)
		writer_note(r, s->writer, 1, s->born);
	if (s->node == r->cfg.node_id)
		return; /* we know ourselves */
	v = view_get(r, s->node);
	if (v == NULL)
		return;
	if (v->v.known && direct) {
		if (born < v->v.born)
			born = v->v.born + (s->writer != v->v.writer);
	} else if (v->v.known) {
		if (s->writer == v->v.writer) {
			if (s->hw < v->v.hw ||
			    (s->hw == v->v.hw && s->time_ms <= v->v.time_ms))
				return;
		} else if (s->born <= v->v.born) {
			return; /* an older incarnation's, or not yet born */
		}
	}
	uint8_t *keep = realloc(v->signed_status, ss->status.len);
	if (keep != NULL) /* else kept, but not relayed */
		memcpy(keep, ss->status.data, ss->status.len);
	else
		free(v->signed_status);
	v->signed_status = keep;
	v->signed_len = keep != NULL ? ss->status.len : 0;
	memcpy(v->sig, ss->sig.data, SEG_SIG_LEN);
	v->v.known = 1;
	v->v.nvv = s->n_vv;
	for (size_t j = 0; j < s->n_vv; j++) {
		v->v.vv[j].origin = s->vv[j]->origin;
		v->v.vv[j].seq = s->vv[j]->seq;
		v->v.vv[j].hlc = s->vv[j]->hlc;
		v->v.vv[j].floor = 0;
	}
	memcpy(v->v.digest, s->digest.data, 32);
	v->v.hw = s->hw;
	v->v.time_ms = s->time_ms;
	v->v.received_ms = now;
	v->v.writer = s->writer;
	v->v.born = born;
	v->v.settled = s->settled;
	v->nconnected = s->n_connected;
	if (s->n_connected) /* NULL when empty */
		memcpy(v->connected, s->connected,
		       s->n_connected * sizeof *s->connected);
	v->nmembers = s->n_members;
	if (s->n_members)
		memcpy(v->members, s->members,
		       s->n_members * sizeof *s->members);
	v->nbeliefs = s->n_writers;
	for (size_t j = 0; j < s->n_writers; j++) {
		v->beliefs[j].writer = s->writers[j]->writer;
		v->beliefs[j].born = s->writers[j]->born;
	}
	if (s->writer != 0 && (ws = writer_find(r, s->writer)) != NULL)
		writer_candidate(ws, v->v.vv, v->v.nvv);
}

/* ---- create / destroy / reconfigure -------------------------------------- */

static void rx_free(struct repl *r, struct rxmsg *q)
{
	while (q != NULL) {
		struct rxmsg *n = q->next;
		if (q->prep != NULL) {
			r->prep_bytes -= q->prep_bytes;
			r->ops->prep_free(q->prep);
		}
		free(q->pb);
		pb_arena_free(q->m);
		free(q);
		q = n;
	}
}

static void rxsnap_free(struct rxsnap *x)
{
	if (x == NULL)
		return;
	if (x->m != NULL)
		pb_arena_free(x->m);
	free(x->recs);
	free(x->rs);
	free(x->fss);
	free(x->fvs);
	free(x->cover);
	free(x->cover_segs);
	free(x);
}

static void snap_out_end(struct repl *r, struct peer *p)
{
	if (p->snap != NULL)
		r->ops->snap_end(p->snap);
	p->snap = NULL;
	p->snap_id = 0;
	free(p->snap_pre);
	p->snap_pre = NULL;
	p->snap_out.active = 0;
	p->snap_out.stalled = 0;
}

/* Forgets the status that stood in for a Hello (see status_greets): it
 * belongs to one session and one greeting. */
static void status_greeting_clear(struct peer *p)
{
	free(p->st_vv);
	p->st_vv = NULL;
	p->st_nvv = 0;
	p->st_writer = 0;
	p->st_hw = 0;
}

static void session_reset(struct repl *r, struct peer *p)
{
	p->nfl = 0;
	p->unacked = 0;
	p->tx_epoch = 0;
	p->rx_epoch = 0;
	for (size_t i = 0; i < p->no; i++) {
		p->o[i].sent = 0;
		p->o[i].paused_until = 0;
	}
	snap_out_end(r, p);
	p->snap_wait = 0;
	p->snap_last_sent = 0;
	rx_free(r, p->rxq);
	p->rxq = p->rxtail = NULL;
	p->rxbytes = 0;
	p->apply_held = 0;
	free(p->rx_snap_vv);
	p->rx_snap_vv = NULL;
	p->rx_snap_nvv = 0;
	free(p->rx_snap_segs);
	p->rx_snap_segs = NULL;
	p->rx_snap_nsegs = 0;
	p->snap_asked = 0;
	p->snap_offered = 0;
	p->rx_snap_id = 0;
	p->snap_refused_id = 0;
	p->rx_started = 0;
	rxsnap_free(p->snap_next); /* the driver never had it */
	p->snap_next = NULL;
	p->snap_in.active = 0;
	p->snap_in.stalled = 0;
	free(p->hello_vv);
	p->hello_vv = NULL;
	p->hello_nvv = 0;
	p->hello_nnames = 0;
	p->greeted = 0;
	p->status_forged_told = 0;
	status_greeting_clear(p);
	p->session++;
}

static void peer_free(struct repl *r, struct peer *p)
{
	session_reset(r, p);
	rx_free(r, p->applying_msgs);
	p->applying_msgs = NULL;
	rxsnap_free(p->snap_applying);
	p->snap_applying = NULL;
	rxsnap_free(p->snap_next);
	p->snap_next = NULL;
	free(p->fl);
	free(p->blobs);
	free(p->segs);
}

static int set_nodes(struct repl *r, const uint32_t *nodes, size_t n,
		     struct err *e)
{
	uint32_t *ids;
	struct peer *ps;
	size_t np = 0;
	int self = 0;

	if (n == 0 || n > MAX_NODES)
		return err_set(e, MSCE_EINVAL, "%zu nodes, limit %d", n,
			       MAX_NODES);
	for (size_t i = 0; i < n; i++) {
		if (nodes[i] == 0 || nodes[i] > 65535)
			return err_set(e, MSCE_EINVAL,
				       "node id %u not in 1..65535", nodes[i]);
		self |= nodes[i] == r->cfg.node_id;
		for (size_t j = 0; j < i; j++)
			if (nodes[j] == nodes[i])
				return err_set(e, MSCE_EINVAL,
					       "node %u listed twice", nodes[i]);
	}
	if (!self)
		return err_set(e, MSCE_EINVAL, "node %u not in the node list",
			       r->cfg.node_id);
	ids = malloc(n * sizeof *ids);
	ps = calloc(n, sizeof *ps);
	if (ids == NULL || ps == NULL) {
		free(ids);
		free(ps);
		return err_set(e, MSCE_ENOMEM, "node list");
	}
	memcpy(ids, nodes, n * sizeof *ids);
	for (size_t i = 0; i < n; i++) {
		struct peer *old;
		if (nodes[i] == r->cfg.node_id)
			continue;
		old = peer_get(r, nodes[i]);
		if (old != NULL) {
			ps[np] = *old;
			old->id = 0; /* moved */
		} else {
			ps[np].id = nodes[i];
		}
		np++;
	}
	for (size_t i = 0; i < r->npeers; i++)
		if (r->peers[i].id != 0) { /* removed from the list */
			if (r->peers[i].state != REPL_DOWN)
				r->io->close(r->io->data, r->peers[i].id,
					     MSCE_ECONFIG,
					     "node removed from the configuration");
			peer_free(r, &r->peers[i]);
		}
	free(r->peers);
	free(r->nodes);
	r->peers = ps;
	r->npeers = np;
	r->nodes = ids;
	r->cfg.nodes = ids;
	r->cfg.nnodes = n;
	return 0;
}

int repl_create(const struct repl_config *cfg, const struct repl_store_ops *ops,
		const struct repl_io *io, uint64_t now_ms, struct repl **out,
		struct err *e)
{
	struct repl *r;
	int rc;

	*out = NULL;
	r = calloc(1, sizeof *r);
	if (r == NULL)
		return err_set(e, MSCE_ENOMEM, "create replication core");
	r->cfg = *cfg;
	r->cfg.nodes = NULL;
	r->cfg.nnodes = 0;
	r->ops = ops;
	r->io = io;
	r->views = calloc(MAX_NODES, sizeof *r->views);
	r->writers = calloc(MAX_WRITERS, sizeof *r->writers);
	if (r->views == NULL || r->writers == NULL) {
		repl_destroy(r);
		return err_set(e, MSCE_ENOMEM, "create replication core");
	}
	if ((rc = set_nodes(r, cfg->nodes, cfg->nnodes, e))) {
		repl_destroy(r);
		return rc;
	}
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
	DEF(liveness_ms, 5 * r->cfg.gossip_interval_ms);
	DEF(snapshot_stall_ms, 30000);
#undef DEF
	r->next_gossip = now_ms;
	r->next_truncate = now_ms + r->cfg.truncate_interval_ms;
	*out = r;
	return 0;
}

void repl_destroy(struct repl *r)
{
	if (r == NULL)
		return;
	for (size_t i = 0; i < r->npeers; i++)
		peer_free(r, &r->peers[i]);
	if (r->writers != NULL)
		writers_free(r);
	free(r->writers);
	free(r->peers);
	for (size_t i = 0; r->views != NULL && i < r->nviews; i++)
		free(r->views[i].signed_status);
	free(r->views);
	free(r->nodes);
	free(r->buf);
	free(r);
}

int repl_reconfigure(struct repl *r, const uint32_t *nodes, size_t n,
		     struct err *e)
{
	int rc = set_nodes(r, nodes, n, e);
	if (rc == 0)
		trace(r, LOG_INFO, "configuration now lists %zu nodes", n);
	return rc;
}

/* ---- sending ------------------------------------------------------------- */

struct batch_build {
	ProtobufCBinaryData *items;
	size_t n, cap, bytes;
	uint64_t last;
	uint8_t *buf; /* the changes, one after another */
	size_t used, bufcap;
	Msce__Segment *segs, **segp;
	size_t nsegs, capsegs;
};

static int collect_seg(void *ctx, const struct seg *g)
{
	struct batch_build *b = ctx;
	if (b->nsegs == b->capsegs) {
		size_t cap = b->capsegs ? 2 * b->capsegs : 8;
		Msce__Segment *s = realloc(b->segs, cap * sizeof *s);
		Msce__Segment **sp = realloc(b->segp, cap * sizeof *sp);
		if (s != NULL)
			b->segs = s;
		if (sp != NULL)
			b->segp = sp;
		if (s == NULL || sp == NULL)
			return 1;
		b->capsegs = cap;
	}
	Msce__Segment *m = &b->segs[b->nsegs];
	msce__segment__init(m);
	m->first = g->first;
	m->last = g->last;
	m->last_hlc = g->last_hlc;
	/* Points into g: copied out before the next segment is read. */
	m->sig.data = malloc(SEG_SIG_LEN);
	if (m->sig.data == NULL)
		return 1;
	memcpy(m->sig.data, g->sig, SEG_SIG_LEN);
	m->sig.len = SEG_SIG_LEN;
	b->nsegs++;
	return 0;
}

static void batch_free(struct batch_build *b)
{
	for (size_t i = 0; i < b->nsegs; i++)
		free(b->segs[i].sig.data);
	free(b->segs);
	free(b->segp);
	free(b->buf);
	free(b->items);
}

static void offer_snapshot(struct repl *r, struct peer *p)
{
	Msce__PeerMsg m = MSCE__PEER_MSG__INIT;
	Msce__SnapshotRequest q = MSCE__SNAPSHOT_REQUEST__INIT;

	if (p->snap_offered || p->snap_id != 0)
		return;
	p->snap_offered = 1;
	q.offer = 1;
	m.msg_case = MSCE__PEER_MSG__MSG_SNAPSHOT_REQUEST;
	m.snapshot_request = &q;
	send_msg(r, p->id, &m);
}

static int collect_change(void *ctx, uint32_t origin, uint64_t seq,
			  const uint8_t *data, size_t len)
{
	struct batch_build *b = ctx;
	(void)origin;
	if (b->n == b->cap || b->used + len > b->bufcap)
		return 1;
	/* Copied into one buffer: the log's pages are gone after the read. */
	b->items[b->n].data = b->buf + b->used;
	b->used += len;
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
	(void)now;
	struct err e;
	int rc;

	if (from <= mine->floor) {
		if (!p->snap_offered)
			trace(r, LOG_INFO,
			      "node %u needs origin %u from seq %llu, below "
			      "our log floor %llu: offering a snapshot",
			      p->id, o->origin, (unsigned long long)from,
			      (unsigned long long)mine->floor);
		offer_snapshot(r, p);
		return -1;
	}
	/* The log read gives whole segments, at least one, so a batch may
	 * go over its limits by one segment. */
	b.cap = r->cfg.batch_changes + SEG_MAX_CHANGES;
	b.items = malloc(b.cap * sizeof *b.items);
	b.bufcap = r->cfg.batch_bytes + SEG_MAX_BYTES + MSCE_MAX_CHANGE;
	b.buf = malloc(b.bufcap);
	if (b.items == NULL || b.buf == NULL) {
		free(b.items);
		free(b.buf);
		return 0;
	}
	err_clear(&e);
	rc = r->ops->log_read(r->ops->ctx, o->origin, from,
			      r->cfg.batch_changes, r->cfg.batch_bytes,
			      collect_change, collect_seg, &b, &e);
	if (rc == MSCE_ENOTFOUND) {
		batch_free(&b);
		offer_snapshot(r, p);
		return -1;
	}
	if (rc != 0 && b.nsegs == 0) {
		/* Unsigned history (made without a key) cannot be relayed. */
		batch_free(&b);
		trace(r, LOG_WARN, "cannot send origin %u to node %u: %s",
		      o->origin, p->id, e.msg);
		return 0;
	}
	{
		/* Whole segments only, whatever stopped the read. */
		size_t covered = 0;
		for (size_t i = 0; i < b.nsegs; i++)
			covered += (size_t)(b.segs[i].last - b.segs[i].first + 1);
		if (covered < b.n) {
			b.n = covered;
			b.bytes = 0;
			for (size_t i = 0; i < b.n; i++)
				b.bytes += b.items[i].len;
		}
		if (b.nsegs > 0)
			b.last = b.segs[b.nsegs - 1].last;
	}
	if (b.n > 0) {
		Msce__PeerMsg m = MSCE__PEER_MSG__INIT;
		Msce__Changes c = MSCE__CHANGES__INIT;
		c.origin = o->origin;
		c.n_changes = b.n;
		c.changes = b.items;
		c.epoch = p->tx_epoch;
		for (size_t i = 0; i < b.nsegs; i++)
			b.segp[i] = &b.segs[i];
		c.n_segments = b.nsegs;
		c.segments = b.segp;
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
	batch_free(&b);
	return b.n > 0;
}

/* What a store restored from a backup may hand out. Changes it holds
 * beyond every peer were taken into the backup while their writer's
 * center was cut off, and that center's store was lost before they went
 * out. If every peer holds the same last seq of that writer and believes
 * another writer of its node current, collection may have stopped
 * waiting for it (retired, or never heard of: the writer is closed) and
 * tombstones of deletes it never saw may be gone: handed out, they would
 * bring deleted records back. Such a store hands out nothing and must be
 * emptied. Until every peer has greeted it, it cannot tell, and hands
 * out nothing either. A peer that believes nothing of that node holds
 * every collection back, as one that believes the writer current makes
 * every collection wait for it: then they go out as usual. */
enum hold { HOLD_NONE, HOLD_WAIT, HOLD_CLOSED };

/* What peer p believes of node's current writer: w itself (1), another
 * (-1), or nothing (0); from its Hello and its latest status. */
static int peer_believes(struct repl *r, const struct peer *p, uint32_t w)
{
	const struct view *v = view_find(r, p->id);
	uint32_t named[1 + MAX_NODES + MAX_NODES];
	size_t n = 0;
	int other = 0;

	named[n++] = p->hello_writer;
	for (size_t j = 0; j < p->hello_nnames; j++)
		named[n++] = p->hello_names[j];
	for (size_t j = 0; v != NULL && v->v.known && j < v->nbeliefs; j++)
		named[n++] = v->beliefs[j].writer;
	for (size_t j = 0; j < n; j++) {
		if (named[j] == 0 || writer_node(named[j]) != writer_node(w))
			continue;
		if (named[j] == w)
			return 1;
		other = 1;
	}
	return other ? -1 : 0;
}

static enum hold hold_check(struct repl *r, char *why, size_t whylen)
{
	struct vv_entry vv[MAX_ORIGINS];
	size_t n, greeted = 0;

	if (r->ops->restored == NULL || !r->ops->restored(r->ops->ctx) ||
	    r->ops->writer(r->ops->ctx, NULL) != 0)
		return HOLD_NONE;
	for (size_t i = 0; i < r->npeers; i++)
		greeted +=
		    r->peers[i].state == REPL_ACTIVE && r->peers[i].greeted;
	n = my_vv(r, vv);
	for (size_t i = 0; i < n; i++) {
		uint32_t o = vv[i].origin;
		uint64_t most = 0, least = UINT64_MAX;
		int open = 0;
		for (size_t k = 0; k < r->npeers; k++) {
			const struct peer *p = &r->peers[k];
			uint64_t s;
			if (p->state != REPL_ACTIVE || !p->greeted)
				continue;
			s = 0; /* as far as we know: Hello, Acks, its changes */
			for (size_t j = 0; j < p->no; j++)
				if (p->o[j].origin == o)
					s = p->o[j].have;
			most = s > most ? s : most;
			least = s < least ? s : least;
			open |= peer_believes(r, p, o) >= 0;
		}
		if (vv[i].seq <= most)
			continue;
		if (greeted < r->npeers) {
			if (why != NULL)
				snprintf(why, whylen,
					 "this store is new or was restored: "
					 "it holds changes of %u/%u that no "
					 "peer it met holds, and hands out "
					 "nothing and writes wait until every "
					 "peer has greeted it (%zu of %zu)",
					 writer_node(o), writer_inc(o), greeted,
					 r->npeers);
			return HOLD_WAIT;
		}
		if (least != most || open || MUTANT("restore_relays_closed"))
			continue;
		if (why != NULL)
			snprintf(why, whylen,
				 "this store was restored and holds changes "
				 "%llu..%llu of %u/%u, a writer every peer "
				 "has closed at %llu: written while its center "
				 "was cut off, lost with its store, and older "
				 "than deletes whose tombstones may be gone; "
				 "empty this store and let it catch up",
				 (unsigned long long)most + 1,
				 (unsigned long long)vv[i].seq, writer_node(o),
				 writer_inc(o), (unsigned long long)most);
		return HOLD_CLOSED;
	}
	return HOLD_NONE;
}

int repl_must_empty(struct repl *r, char *why, size_t whylen)
{
	return hold_check(r, why, whylen) == HOLD_CLOSED;
}

static void pump(struct repl *r, struct peer *p, uint64_t now)
{
	struct vv_entry vv[MAX_ORIGINS];
	uint32_t mine = r->ops->writer(r->ops->ctx, NULL);
	size_t n;

	if (p->state != REPL_ACTIVE || p->snap_id != 0 ||
	    hold_check(r, NULL, 0) != HOLD_NONE)
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
			if (vv[i].origin != mine &&
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

/* A chunk's records, each packed once into buf as it is read (its memory
 * is the store's only during the callback). */
struct snap_build {
	struct arena a;	  /* one record's messages at a time */
	uint8_t *buf;	  /* packed records, back to back */
	size_t len, cap;
	size_t *ends;	  /* where each record ends in buf */
	size_t n, ncap;
	int oom;
};

static int snap_collect(void *ctx, const struct store_record_view *v)
{
	struct snap_build *b = ctx;
	Msce__Record *m;
	size_t need;

	arena_reset(&b->a);
	m = record_pb_view(&b->a, v->coll, v->coll_len, v->key, v->key_len,
			   v->rec);
	if (m == NULL)
		goto oom;
	need = msce__record__get_packed_size(m);
	if (b->len + need > b->cap) {
		size_t cap = (b->len + need) * 2;
		uint8_t *p = realloc(b->buf, cap);
		if (p == NULL)
			goto oom;
		b->buf = p;
		b->cap = cap;
	}
	if (b->n == b->ncap) {
		size_t cap = b->ncap ? b->ncap * 2 : 64;
		size_t *p = realloc(b->ends, cap * sizeof *p);
		if (p == NULL)
			goto oom;
		b->ends = p;
		b->ncap = cap;
	}
	b->len += msce__record__pack(m, b->buf + b->len);
	b->ends[b->n++] = b->len;
	return 0;
oom:
	b->oom = 1;
	return 1;
}

static void snap_build_free(struct snap_build *b)
{
	arena_free(&b->a);
	free(b->buf);
	free(b->ends);
}

/* Reads p's next chunk and packs it into p->snap_pre; on failure the link
 * is closed and -1 returned. */
static int build_snapshot_chunk(struct repl *r, struct peer *p)
{
	struct snap_build b = {0};
	Msce__PeerMsgSnapshotPacked m = MSCE__PEER_MSG_SNAPSHOT_PACKED__INIT;
	Msce__SnapshotChunkPacked c = MSCE__SNAPSHOT_CHUNK_PACKED__INIT;
	Msce__Position pos = MSCE__POSITION__INIT;
	ProtobufCBinaryData *recs = NULL;
	struct store_pos end;
	struct vv_entry vv[MAX_ORIGINS];
	Msce__VVEntry vs[MAX_ORIGINS], **vp = NULL;
	struct seg cover[MAX_ORIGINS];
	Msce__Segment cs[MAX_ORIGINS], **cp = NULL;
	struct err e;
	int done = 0, rc;

	arena_init(&b.a, 0);
	rc = r->ops->snap_next(p->snap, r->cfg.snapshot_chunk_bytes,
			       snap_collect, &b, &done, &end, &e);
	if (rc == 0 && !b.oom &&
	    (recs = malloc((b.n ? b.n : 1) * sizeof *recs)) == NULL)
		b.oom = 1;
	if (rc || b.oom) {
		snap_build_free(&b);
		fail_link(r, p, rc ? rc : MSCE_ENOMEM, "snapshot read: %s",
			  rc ? e.msg : "out of memory");
		return -1;
	}
	for (size_t i = 0; i < b.n; i++) {
		size_t at = i ? b.ends[i - 1] : 0;
		recs[i].data = b.buf + at;
		recs[i].len = b.ends[i] - at;
	}
	c.protocol = MSCE_PROTOCOL_VERSION;
	c.snapshot_id = p->snap_id;
	if (p->snap_first) {
		size_t n = r->ops->snap_vv(p->snap, vv, MAX_ORIGINS);
		if (n > MAX_ORIGINS)
			n = MAX_ORIGINS;
		vp = vv_msg(vv, n, vs, 0);
		c.n_vv = vp ? n : 0;
		c.vv = vp;
		size_t ng = r->ops->snap_segs(p->snap, cover, MAX_ORIGINS);
		if (ng > MAX_ORIGINS)
			ng = MAX_ORIGINS;
		cp = segs_msg(cover, ng, cs);
		c.n_cover = cp ? ng : 0;
		c.cover = cp;
		p->snap_first = 0;
	}
	c.n_records = b.n;
	c.records = recs;
	c.done = done;
	if (!done) {
		pos.collection = end.coll;
		pos.key = end.key;
		pos.field = end.field;
		c.end = &pos;
	}
	m.snapshot = &c;
	p->snap_pre_len = protobuf_c_message_get_packed_size(&m.base);
	p->snap_pre = malloc(p->snap_pre_len ? p->snap_pre_len : 1);
	if (p->snap_pre != NULL)
		protobuf_c_message_pack(&m.base, p->snap_pre);
	p->snap_pre_recs = b.n;
	p->snap_pre_done = done;
	snap_build_free(&b);
	free(recs);
	free(vp);
	free(cp);
	if (p->snap_pre == NULL) {
		fail_link(r, p, MSCE_ENOMEM, "snapshot chunk: out of memory");
		return -1;
	}
	return 0;
}

/* Sends the next chunk (read ahead, or read now), then reads the one after
 * it, so that the read overlaps the peer's check of this one. */
static void send_snapshot_chunk(struct repl *r, struct peer *p, uint64_t now)
{
	int done;

	if (p->snap_pre == NULL && build_snapshot_chunk(r, p))
		return;
	r->io->send(r->io->data, p->id, p->snap_pre, p->snap_pre_len);
	done = p->snap_pre_done;
	p->snap_wait = 1;
	p->snap_last_sent = done;
	p->snap_out.chunks++;
	p->snap_out.records += p->snap_pre_recs;
	p->snap_out.progress_ms = now;
	free(p->snap_pre);
	p->snap_pre = NULL;
	if (p->snap == NULL) /* the send closed the link */
		return;
	if (!done) {
		build_snapshot_chunk(r, p);
	} else {
		/* All sent: the read is no longer needed, and a peer slow to
		 * merge (or never answering) must not keep it open. */
		r->ops->snap_end(p->snap);
		p->snap = NULL;
	}
}

static void start_snapshot(struct repl *r, struct peer *p, uint64_t now)
{
	struct err e;
	if (p->snap_id != 0 || now < p->snap_retry_at)
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
	memset(&p->snap_out, 0, sizeof p->snap_out);
	p->snap_out.active = 1;
	p->snap_out.started_ms = now;
	p->snap_out.progress_ms = now;
	send_snapshot_chunk(r, p, now);
}

/* ---- hello, links, the write gate ------------------------------------------ */

static Msce__WriterInfo **beliefs_msg(const struct view *self,
				      Msce__WriterInfo *store)
{
	Msce__WriterInfo **p = malloc((self->nbeliefs ? self->nbeliefs : 1) *
				      sizeof *p);
	if (p == NULL)
		return NULL;
	for (size_t i = 0; i < self->nbeliefs; i++) {
		msce__writer_info__init(&store[i]);
		store[i].node = writer_node(self->beliefs[i].writer);
		store[i].writer = self->beliefs[i].writer;
		store[i].born = self->beliefs[i].born;
		p[i] = &store[i];
	}
	return p;
}

static void send_hello(struct repl *r, struct peer *p, uint64_t now)
{
	Msce__PeerMsg m = MSCE__PEER_MSG__INIT;
	Msce__Hello h = MSCE__HELLO__INIT;
	Msce__VVEntry vs[MAX_ORIGINS], fs[MAX_ORIGINS];
	Msce__WriterInfo ws[MAX_NODES];
	struct view *self;

	self_view(r, now);
	self = view_find(r, r->cfg.node_id);
	if (self == NULL)
		return;
	h.node = r->cfg.node_id;
	h.cluster = (char *)r->cfg.cluster;
	h.protocol = MSCE_PROTOCOL_VERSION;
	h.vv = vv_msg(self->v.vv, self->v.nvv, vs, 0);
	{
		struct vv_entry vv[MAX_ORIGINS];
		size_t n = my_vv(r, vv);
		h.floor = vv_msg(vv, n, fs, 1);
		h.n_floor = h.floor ? n : 0;
	}
	h.n_vv = h.vv ? self->v.nvv : 0;
	h.time_ms = now;
	h.writer = self->v.writer;
	h.hw = self->v.hw;
	h.writers = beliefs_msg(self, ws);
	h.n_writers = h.writers ? self->nbeliefs : 0;
	struct seg seals[MAX_ORIGINS];
	Msce__Segment ss[MAX_ORIGINS];
	size_t nseals = r->ops->seals(r->ops->ctx, seals, MAX_ORIGINS);
	if (nseals > MAX_ORIGINS)
		nseals = MAX_ORIGINS;
	h.seals = segs_msg(seals, nseals, ss);
	h.n_seals = h.seals ? nseals : 0;
	m.msg_case = MSCE__PEER_MSG__MSG_HELLO;
	m.hello = &h;
	send_msg(r, p->id, &m);
	free(h.vv);
	free(h.floor);
	free(h.writers);
	free(h.seals);
}

void repl_link_up(struct repl *r, uint32_t peer, uint64_t now_ms)
{
	struct peer *p = peer_get(r, peer);
	if (p == NULL)
		return;
	session_reset(r, p);
	p->state = REPL_HELLO;
	p->last_rx = now_ms;
	send_hello(r, p, now_ms);
}

void repl_link_down(struct repl *r, uint32_t peer, uint64_t now_ms)
{
	struct peer *p = peer_get(r, peer);
	(void)now_ms;
	if (p == NULL || p->state == REPL_DOWN)
		return;
	session_reset(r, p);
	p->state = REPL_DOWN;
}

void repl_link_failed(struct repl *r, uint32_t peer, uint64_t now_ms,
		      const char *why)
{
	struct peer *p = peer_get(r, peer);
	if (p == NULL || p->state == REPL_ACTIVE)
		return;
	link_why(r, p, now_ms, "%s", why);
}

void repl_clock_refused(struct repl *r, uint32_t peer, int64_t offset_ms)
{
	struct peer *p = peer_get(r, peer);
	/* A session up (its other dial got through) is the better word. */
	if (p == NULL || p->state == REPL_ACTIVE)
		return;
	p->offset = offset_ms;
	p->hs_clock_refused = 1;
}

/* Does a later writer of our own node make us give ours up? Only if it
 * was born within our clock's reach, or we hold changes of it (signed with
 * our node's key): anyone can name one born a year ahead, and believed, it
 * would stop our writes until then. (A store with no writer yet is still
 * born above every one named: docs/PROTOCOL.md, threat model.) */
static int own_writer_counts(const struct repl *r, const struct wstate *w,
			     const struct vv_entry *vv, size_t n, uint64_t now)
{
	return hlc_check(w->born, now, r->cfg.max_skew_ms) == 0 ||
	       vv_seq(vv, n, w->id) > 0 || MUTANT("future_writer");
}

/* Our writer must be given up if a peer holds more of it than we do (we
 * are a stale copy, or an incarnation collided) or a later writer of our
 * node exists (born later, or a tie it wins) that counts
 * (own_writer_counts). Returns 1 when it asked the store to give it up. */
static int writer_check(struct repl *r, uint32_t w, uint64_t born,
			uint64_t theirs, uint32_t from, uint64_t now)
{
	struct vv_entry vv[MAX_ORIGINS];
	size_t n = my_vv(r, vv);
	const struct wstate *cur = node_writer(r, r->cfg.node_id);
	uint64_t mine = vv_seq(vv, n, w);
	struct err e;

	if (w == 0 || r->retiring == w)
		return 0;
	if (theirs > mine) {
		trace(r, LOG_ERROR,
		      "node %u holds %llu changes of our writer %u/%u, we hold "
		      "%llu: this store is a stale copy or its incarnation "
		      "collided; writing under a new one",
		      from, (unsigned long long)theirs, writer_node(w),
		      writer_inc(w), (unsigned long long)mine);
	} else if (cur != NULL && writer_later(cur->born, cur->id, born, w) &&
		   own_writer_counts(r, cur, vv, n, now)) {
		trace(r, LOG_ERROR,
		      "a later incarnation %u/%u of this node exists: this "
		      "store is a stale copy; writing under a new one",
		      writer_node(cur->id), writer_inc(cur->id));
	} else {
		return 0;
	}
	r->counters.writer_collisions++;
	r->retiring = w;
	r->pending_writer = 0;
	r->ops->set_writer(r->ops->ctx, 0, 0, &e);
	return 1;
}

static int covers(const struct vv_entry *mine, size_t nm,
		  const struct vv_entry *theirs, size_t nt)
{
	for (size_t i = 0; i < nt; i++)
		if (vv_seq(mine, nm, theirs[i].origin) < theirs[i].seq)
			return 0;
	return 1;
}

/* Writes wait, and why (the reason status shows): logged when it
 * changes. */
static void gate_wait(struct repl *r, int level, const char *why)
{
	if (strcmp(why, r->gate_why) != 0)
		trace(r, level, "%s", why);
	snprintf(r->gate_why, sizeof r->gate_why, "%s", why);
}

/* A store without a writer gets one once it holds what a settled peer
 * held when it greeted us, or when it last sent its own status if it took
 * its writer after greeting us (that peer holds every change a collected
 * tombstone depends on); or, when every configured peer has greeted us as
 * empty and writerless as we are (a new cluster), at once; or, when every
 * peer has greeted us, none writes and we hold all they hold; or with no
 * peers at all. Empty peers met so far are not enough: a wiped store and a
 * new center that meet while the centers holding the data are down would
 * take themselves for a new cluster, and write beside a history they have
 * not seen. The incarnation is random among those of our node not known
 * anywhere; the clock starts above every greeting peer's. */
static void gate_step(struct repl *r, uint64_t now)
{
	struct vv_entry vv[MAX_ORIGINS];
	size_t n, greeted = 0, settled = 0, empty = 0, behind = 0;
	uint64_t born = 0, floor = 0;
	uint32_t w = r->ops->writer(r->ops->ctx, &born), inc;
	const struct peer *src = NULL;
	const char *how;
	struct err e;

	if (w != 0) {
		r->pending_writer = 0;
		return;
	}
	r->retiring = 0;
	if (r->pending_writer != 0 && now < r->pending_until)
		return;
	{
		char why[sizeof r->gate_why];
		enum hold h = hold_check(r, why, sizeof why);
		if (h != HOLD_NONE) {
			gate_wait(r, h == HOLD_CLOSED ? LOG_ERROR : LOG_DEBUG,
				  why);
			return;
		}
	}
	n = my_vv(r, vv);
	for (size_t i = 0; i < r->npeers; i++) {
		const struct peer *p = &r->peers[i];
		/* What it held when it greeted us, or, if it took a writer
		 * since, when it last told us its status. */
		int st = p->hello_writer == 0 && p->st_writer != 0;
		const struct vv_entry *pv = st ? p->st_vv : p->hello_vv;
		size_t pn = st ? p->st_nvv : p->hello_nvv;
		uint32_t pw = st ? p->st_writer : p->hello_writer;
		uint64_t phw = st ? p->st_hw : p->hello_hw;
		int blank = 1;
		if (p->state != REPL_ACTIVE || !p->greeted)
			continue;
		greeted++;
		for (size_t k = 0; k < pn && blank; k++)
			blank = pv[k].seq == 0;
		empty += blank && pw == 0;
		behind += !covers(vv, n, pv, pn);
		if (pw != 0) {
			settled++;
			if (src == NULL && covers(vv, n, pv, pn))
				src = p;
		}
		if (phw > floor)
			floor = phw;
	}
	if (src != NULL)
		how = "caught up with a writing peer";
	else if (r->npeers == 0)
		how = "no peers";
	else if (greeted > 0 && empty == greeted && n == 0 &&
		 (greeted == r->npeers || MUTANT("new_cluster_met")))
		how = "a new cluster: every peer is empty too";
	else if (greeted == r->npeers && settled == 0 && behind == 0)
		how = "no peer writes, and this store holds all they do";
	else {
		char why[sizeof r->gate_why];
		snprintf(why, sizeof why,
			 "this store is new or was restored: writes wait "
			 "until it has caught up with a peer that writes, "
			 "or, in a new city, until every configured peer "
			 "has greeted it as empty as it is "
			 "(%zu of %zu peers greeted, %zu of them writing)",
			 greeted, r->npeers, settled);
		gate_wait(r, LOG_DEBUG, why);
		return;
	}
	for (size_t i = 0; i < r->nwriters; i++)
		if (writer_node(r->writers[i].id) == r->cfg.node_id &&
		    r->writers[i].born_known && r->writers[i].born > floor)
			floor = r->writers[i].born;
	/* The new writer starts above what the peers hold. With our clock
	 * far behind that, its writes would sit below deletes whose
	 * tombstones other nodes have collected, dropped at some nodes and
	 * kept at others; and a clock far ahead of ours must not drag ours
	 * along either. So wait until our clock is within reach. */
	if (floor > hlc_make(now + r->cfg.max_skew_ms, 0)) {
		if (MUTANT("writer_below_held")) {
			floor = hlc_make(now + r->cfg.max_skew_ms, 0);
		} else {
			char why[sizeof r->gate_why];
			snprintf(why, sizeof why,
				 "this store is new or was restored, and its "
				 "clock is %llu ms behind what its peers have "
				 "written (limit %llu ms): writes wait until "
				 "the clock is right",
				 (unsigned long long)(hlc_ms(floor) - now),
				 (unsigned long long)r->cfg.max_skew_ms);
			gate_wait(r, LOG_WARN, why);
			return;
		}
	}
	for (int tries = 0;; tries++) {
		inc = r->io->random(r->io->data) % 65535 + 1;
		if (writer_find(r, writer_make(r->cfg.node_id, inc)) == NULL)
			break;
		if (tries == 1000) {
			snprintf(r->gate_why, sizeof r->gate_why,
				 "no free incarnation found");
			return;
		}
	}
	w = writer_make(r->cfg.node_id, inc);
	trace(r, LOG_INFO, "this store writes under a new incarnation %u/%u (%s)",
	      r->cfg.node_id, inc, how);
	r->pending_writer = w;
	r->pending_until = now + 5000;
	r->counters.writer_changes++;
	if (r->ops->set_writer(r->ops->ctx, w, floor, &e))
		trace(r, LOG_ERROR, "cannot give the store a writer: %s",
		      e.msg);
}

int repl_gc_held(const struct repl *r, char *why, size_t whylen)
{
	if (r->gc_why[0] == '\0')
		return 0;
	snprintf(why, whylen, "%s", r->gc_why);
	return 1;
}

int repl_write_gate(struct repl *r, char *why, size_t whylen)
{
	if (r->ops->writer(r->ops->ctx, NULL) != 0 && r->retiring == 0)
		return 0;
	snprintf(why, whylen, "%s",
		 r->gate_why[0] ? r->gate_why
				: "this store is new or was restored: writes "
				  "wait until it has caught up with a peer");
	return MSCE_EBUSY;
}

static void on_hello(struct repl *r, struct peer *p, const Msce__Hello *h,
		     uint64_t now)
{
	uint64_t born = 0;
	uint32_t w;

	if (h->protocol != MSCE_PROTOCOL_VERSION) {
		fail_link(r, p, MSCE_EVERSION,
			  "node %u speaks peer protocol %u, we speak %u",
			  h->node, h->protocol, MSCE_PROTOCOL_VERSION);
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
	if (h->n_vv > MAX_ORIGINS || h->n_writers > MAX_NODES ||
	    h->n_seals > MAX_ORIGINS ||
	    (h->writer != 0 && writer_node(h->writer) != h->node)) {
		fail_link(r, p, MSCE_EPROTO, "malformed hello from node %u",
			  h->node);
		return;
	}
	if (h->n_seals > 0) {
		/* Seals of legacy history, signed by their origins' nodes. */
		struct seg *g = segs_from_msg(h->seals, h->n_seals);
		struct err e;
		int rc = g == NULL ? MSCE_EPROTO
				   : r->ops->add_seals(r->ops->ctx, g,
						       h->n_seals, &e);
		free(g);
		if (rc == MSCE_EPROTO || rc == MSCE_EAUTH) {
			refuse(r, p, REFUSED_FORGED, rc,
			       "seals from node %u refused: %s", h->node,
			       g == NULL ? "malformed" : e.msg);
			return;
		}
	}
	if (p->state == REPL_DOWN) {
		/* Their Hello overtook our link-up event. */
		session_reset(r, p);
		send_hello(r, p, now);
	} else if (p->state == REPL_ACTIVE) {
		/* They started a new session on a link we thought was up:
		 * start over from their vector, without a second Hello. */
		session_reset(r, p);
	}
	free(p->hello_vv);
	p->hello_vv = vv_from_msg(h->vv, h->n_vv);
	p->hello_nvv = p->hello_vv ? h->n_vv : 0;
	status_greeting_clear(p);
	p->hello_writer = h->writer;
	p->hello_hw = h->hw;
	p->hello_nnames = 0;
	for (size_t i = 0; i < h->n_writers; i++)
		p->hello_names[p->hello_nnames++] = h->writers[i]->writer;
	note_writers(r, h->writers, h->n_writers);
	for (size_t i = 0; i < h->n_vv; i++) {
		writer_note(r, h->vv[i]->origin, 0, 0);
		have_raise(p, h->vv[i]->origin, h->vv[i]->seq, h->vv[i]->hlc,
			   now);
	}
	/* A restarted peer may hold less than we thought (it lost nothing
	 * acknowledged, but our view may be from gossip of another run, or
	 * it was restored). */
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
	p->hs_clock_refused = 0; /* a session: its clock was in the window */
	p->state = REPL_ACTIVE;
	p->greeted = 1;
	p->heard = 1;
	p->why[0] = '\0';
	trace(r, LOG_INFO, "session with node %u active (clock offset %lld ms)",
	      p->id, (long long)p->offset);
	w = r->ops->writer(r->ops->ctx, &born);
	writer_check(r, w, born, vv_seq(p->hello_vv, p->hello_nvv, w), p->id,
		     now);
	gate_step(r, now);
	pump(r, p, now);
}

/* ---- receiving changes ------------------------------------------------------- */

static void msg_blobs(const Msce__Changes *ch, struct store_blob *b)
{
	for (size_t i = 0; i < ch->n_changes; i++)
		b[i] = (struct store_blob){ch->changes[i].data,
					   ch->changes[i].len, NULL};
}

static void msg_segs(const Msce__Changes *ch, struct seg *g)
{
	for (size_t i = 0; i < ch->n_segments; i++) {
		memset(&g[i], 0, sizeof g[i]);
		g[i].origin = ch->origin;
		g[i].first = ch->segments[i]->first;
		g[i].last = ch->segments[i]->last;
		g[i].last_hlc = ch->segments[i]->last_hlc;
		memcpy(g[i].sig, ch->segments[i]->sig.data, SEG_SIG_LEN);
	}
}

/* A message that waits behind an apply is decoded now, on this thread,
 * while the driver applies: the apply then only merges. Up to a bound of
 * memory for all peers; past it, the apply decodes. */
static void prepare_waiting(struct repl *r, struct peer *p, struct rxmsg *q)
{
	const Msce__Changes *ch = q->m->changes;
	struct seg *g;

	if (r->ops->prepare == NULL || !p->applying ||
	    r->prep_bytes >= PREP_BYTES_PER_WINDOW * r->cfg.window_bytes)
		return;
	q->pb = malloc(ch->n_changes * sizeof *q->pb);
	g = malloc(ch->n_segments * sizeof *g);
	if (q->pb != NULL && g != NULL) {
		msg_blobs(ch, q->pb);
		msg_segs(ch, g);
		q->prep = r->ops->prepare(q->pb, ch->n_changes, g,
					  ch->n_segments);
	}
	free(g);
	if (q->prep == NULL) {
		free(q->pb);
		q->pb = NULL;
		return;
	}
	q->prep_bytes = r->ops->prep_bytes(q->prep);
	r->prep_bytes += q->prep_bytes;
}

static void start_apply(struct repl *r, struct peer *p)
{
	size_t n = 0;

	if (p->applying || p->rxq == NULL || p->apply_held)
		return;
	/* Everything queued from this peer goes into one durable commit. */
	size_t ng = 0;
	for (struct rxmsg *q = p->rxq; q != NULL; q = q->next) {
		n += q->m->changes->n_changes;
		ng += q->m->changes->n_segments;
	}
	if (ng > p->capsegs) {
		struct seg *g = realloc(p->segs, ng * sizeof *g);
		if (g == NULL)
			return;
		p->segs = g;
		p->capsegs = ng;
	}
	if (n > p->capblobs) {
		struct store_blob *b = realloc(p->blobs, n * sizeof *b);
		if (b == NULL)
			return;
		p->blobs = b;
		p->capblobs = n;
	}
	p->nblobs = 0;
	p->nsegs = 0;
	for (struct rxmsg *q = p->rxq; q != NULL; q = q->next) {
		const Msce__Changes *ch = q->m->changes;
		if (q->pb != NULL)
			memcpy(p->blobs + p->nblobs, q->pb,
			       ch->n_changes * sizeof *q->pb);
		else
			msg_blobs(ch, p->blobs + p->nblobs);
		p->nblobs += ch->n_changes;
		msg_segs(ch, p->segs + p->nsegs);
		p->nsegs += ch->n_segments;
	}
	p->applying_msgs = p->rxq;
	p->rxq = p->rxtail = NULL;
	p->rxbytes = 0;
	p->applying = 1;
	/* A session number in the token recognises a completion that
	 * belongs to an older session. */
	p->apply_token = ((uint64_t)(p->session & 0xffff) << 48) |
			 (++r->token_seq & 0xffffffffffffu);
	r->io->apply(r->io->data, p->apply_token, p->blobs, p->nblobs,
		     p->segs, p->nsegs);
}

static void on_changes(struct repl *r, struct peer *p, Msce__PeerMsg *m,
		       size_t len, uint64_t now)
{
	struct rxmsg *q;

	if (m->changes->epoch != p->rx_epoch) {
		pb_arena_free(m);
		return; /* sent before our refusal reached the sender */
	}
	if (m->changes->n_changes == 0 ||
	    p->rxbytes + len > 2 * r->cfg.window_bytes + MSCE_MAX_MESSAGE) {
		pb_arena_free(m);
		fail_link(r, p, MSCE_EPROTO,
			  "node %u overran the receive window", p->id);
		return;
	}
	/* Whole signed segments, exactly covering the changes; whether
	 * they verify is the store's to check. */
	{
		const Msce__Changes *ch = m->changes;
		size_t covered = 0;
		for (size_t i = 0; i < ch->n_segments; i++) {
			const Msce__Segment *g = ch->segments[i];
			if (g->first == 0 || g->last < g->first ||
			    g->last - g->first >= SEG_MAX_CHANGES ||
			    g->sig.len != SEG_SIG_LEN ||
			    (i > 0 && g->first != ch->segments[i - 1]->last + 1)) {
				pb_arena_free(m);
				refuse(r, p, REFUSED_FORGED, MSCE_EPROTO,
				       "changes from node %u in a bad segment",
				       p->id);
				return;
			}
			covered += (size_t)(g->last - g->first + 1);
		}
		if (covered != ch->n_changes) {
			size_t n = ch->n_changes;
			pb_arena_free(m);
			refuse(r, p, REFUSED_FORGED, MSCE_EAUTH,
			       "%zu changes from node %u, %zu of them in "
			       "signed segments",
			       n, p->id, covered);
			return;
		}
		/* The sender holds what it sends: no need to send it back. */
		const Msce__Segment *last = ch->segments[ch->n_segments - 1];
		have_raise(p, ch->origin, last->last, last->last_hlc, now);
	}
	q = calloc(1, sizeof *q);
	if (q == NULL) {
		pb_arena_free(m);
		return;
	}
	q->m = m;
	q->len = len;
	if (p->rxtail)
		p->rxtail->next = q;
	else
		p->rxq = q;
	p->rxtail = q;
	p->rxbytes += len;
	prepare_waiting(r, p, q);
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

static struct peer *peer_by_token(struct repl *r, uint64_t token, int snap)
{
	for (size_t i = 0; i < r->npeers; i++) {
		struct peer *p = &r->peers[i];
		if (!snap && p->applying && p->apply_token == token)
			return p;
		if (snap && p->snap_applying != NULL && p->snap_token == token)
			return p;
	}
	return NULL;
}

/* Our store could not take what p sent (a full disk): said once, until
 * what p sends is taken again (store_ok). */
static void store_trouble(struct repl *r, struct peer *p, const char *what,
			  const char *then, int rc, const struct err *e)
{
	r->counters.store_errors++;
	trace(r, p->apply_failing ? LOG_DEBUG : LOG_WARN,
	      "cannot %s from node %u (%s): %s", what, p->id, then,
	      e ? e->msg : err_str(rc));
	p->apply_failing = 1;
}

/* Changes or a snapshot of an origin our full vector has no room for:
 * refused (the link stays), counted with the forgeries (only an insider
 * makes that many incarnations). */
static void no_room(struct repl *r, struct peer *p, const char *what,
		    const struct err *e)
{
	r->counters.forged_refusals++;
	p->refused_forged++;
	trace(r, LOG_WARN, "%s from node %u refused: %s", what, p->id,
	      e ? e->msg : err_str(MSCE_ETOOBIG));
}

/* How long the sender waits after a refusal with code before offering
 * again: a clock catches up soon, a full vector does not. */
static uint64_t refused_pause(const struct repl *r, uint32_t code)
{
	return code == MSCE_ETOOBIG ? ORIGIN_REFUSED_MS : r->cfg.retry_ms;
}

static void store_ok(struct repl *r, struct peer *p)
{
	if (!p->apply_failing)
		return;
	p->apply_failing = 0;
	trace(r, LOG_INFO, "changes from node %u applied again", p->id);
}

/* Whether an apply's rc is the peer's changes refused (handled below), not
 * our store failing. */
static int apply_refusal(int rc)
{
	return rc == MSCE_ECLOCK || rc == MSCE_EGAP || rc == MSCE_EMISMATCH ||
	       rc == MSCE_EAUTH || rc == MSCE_EPROTO || rc == MSCE_ECORRUPT ||
	       rc == MSCE_ETOOBIG;
}

/* The batch that failed to apply goes back before what came since. */
static void rx_requeue(struct peer *p)
{
	struct rxmsg *last = p->applying_msgs;

	if (last == NULL)
		return;
	while (last->next != NULL)
		last = last->next;
	last->next = p->rxq;
	if (p->rxq == NULL)
		p->rxtail = last;
	p->rxq = p->applying_msgs;
	p->applying_msgs = NULL;
	p->rxbytes = 0;
	for (struct rxmsg *q = p->rxq; q != NULL; q = q->next)
		p->rxbytes += q->len;
}

void repl_apply_done(struct repl *r, uint64_t token, int rc,
		     const struct store_apply_result *res, const struct err *e,
		     uint64_t now_ms)
{
	struct peer *p = peer_by_token(r, token, 0);
	uint32_t session = (uint32_t)(token >> 48);
	uint32_t refused = 0;

	if (p == NULL)
		return;
	p->applying = 0;
	if (res != NULL) {
		p->recv_changes += res->applied;
		p->dup_changes += res->duplicates;
	}
	if (rc != 0 && !apply_refusal(rc) &&
	    session == (p->session & 0xffff) && p->state == REPL_ACTIVE) {
		/* Our store is in trouble (a full disk, memory): nothing was
		 * applied. Keep the link and what came, and try again after
		 * retry_ms; the sender, unacknowledged, stops at its window.
		 * (A closed link would be dialled, resent and refused again,
		 * many times a second, snapshot offers and all.) */
		char then[48];
		snprintf(then, sizeof then, "trying again every %llu ms",
			 (unsigned long long)r->cfg.retry_ms);
		store_trouble(r, p, "apply changes", then, rc, e);
		if (MUTANT("held_apply_dropped")) {
			rx_free(r, p->applying_msgs);
			p->applying_msgs = NULL;
		} else {
			rx_requeue(p);
		}
		p->apply_held = 1;
		p->apply_retry_at = now_ms + r->cfg.retry_ms;
		return;
	}
	if (rc == MSCE_ECLOCK || rc == MSCE_EGAP || rc == MSCE_EMISMATCH ||
	    rc == MSCE_ETOOBIG) {
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
	rx_free(r, p->applying_msgs);
	p->applying_msgs = NULL;
	if (rc == MSCE_EMISMATCH) {
		/* Changes of our own writer we did not make: give it up;
		 * they come again as an old writer's. */
		uint64_t born = 0;
		uint32_t w = r->ops->writer(r->ops->ctx, &born);
		writer_check(r, w, born, UINT64_MAX, p->id, now_ms);
		rc = MSCE_EGAP; /* refuse the rest, resend later */
	}
	if (session != (p->session & 0xffff) || p->state != REPL_ACTIVE) {
		/* The link went down meanwhile; what committed stays. */
		if (p->state == REPL_ACTIVE)
			start_apply(r, p);
		pump_all(r, now_ms);
		return;
	}
	if (rc == MSCE_ECLOCK || rc == MSCE_EGAP || rc == MSCE_ETOOBIG) {
		if (rc == MSCE_ECLOCK) {
			r->counters.clock_refusals++;
			p->clock_refused = 1;
			trace(r, LOG_WARN, "changes from node %u refused: %s",
			      p->id, e ? e->msg : "clock");
		} else if (rc == MSCE_ETOOBIG) {
			/* Refuse that origin alone: held, the batch would
			 * stop everything else this peer relays, for good. */
			no_room(r, p, "changes", e);
		}
		p->rx_epoch++;
		rx_free(r, p->rxq);
		p->rxq = p->rxtail = NULL;
		p->rxbytes = 0;
		send_ack(r, p, refused, rc, e ? e->msg : "", 0);
	} else if (rc == MSCE_EAUTH || rc == MSCE_EPROTO) {
		/* Not what the origins signed: a forger, or a relay of one.
		 * What verified before it is kept. */
		refuse(r, p, REFUSED_FORGED, rc,
		       "changes from node %u refused: %s", p->id,
		       e ? e->msg : err_str(rc));
		return;
	} else if (rc == MSCE_ECORRUPT) {
		fail_link(r, p, rc, "applying changes from node %u: %s", p->id,
			  e ? e->msg : err_str(rc));
		return;
	} else {
		if (res && res->applied)
			p->clock_refused = 0;
		store_ok(r, p);
		send_ack(r, p, 0, 0, NULL, 0);
		start_apply(r, p);
	}
	gate_step(r, now_ms);
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
		if (a->refused_origin && (a->refused_code == MSCE_ECLOCK ||
					  a->refused_code == MSCE_ETOOBIG)) {
			struct ostate *o = ostate(p, a->refused_origin);
			if (o != NULL)
				o->paused_until =
					now + refused_pause(r, a->refused_code);
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
	if (a->snapshot_id != 0 && a->snapshot_id == p->snap_id &&
	    a->refused_code != 0) {
		/* Refused (our data is too far ahead of its clock): drop this
		 * snapshot and try a new one later. */
		trace(r, LOG_WARN, "node %u refused our snapshot: %s", p->id,
		      a->refused_reason);
		snap_out_end(r, p);
		p->snap_retry_at = now + refused_pause(r, a->refused_code);
		p->snap_offered = 0;
		return;
	}
	if (a->snapshot_id != 0 && a->snapshot_id == p->snap_id) {
		p->snap_wait = 0;
		p->snap_out.progress_ms = now;
		if (p->snap_last_sent) {
			snap_out_end(r, p);
			p->snap_offered = 0; /* the next need gets an offer */
			p->nfl = 0;
			p->unacked = 0;
			for (size_t i = 0; i < p->no; i++)
				p->o[i].sent = p->o[i].have;
			trace(r, LOG_INFO, "snapshot to node %u complete",
			      p->id);
		} else {
			send_snapshot_chunk(r, p, now);
			return;
		}
	}
	pump(r, p, now);
}

/* ---- snapshots: receiving ------------------------------------------------------ */

static int fv_from_msg(const Msce__FieldVersion *m, struct fv *f)
{
	if (m == NULL || m->value.len > MSCE_MAX_VALUE || m->origin == 0)
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

static int bytes_cmp(const char *a, size_t alen, const char *b, size_t blen)
{
	size_t n = alen < blen ? alen : blen;
	int c = n ? memcmp(a, b, n) : 0;
	if (c)
		return c;
	return alen < blen ? -1 : alen > blen;
}

/* Order of positions: collection, key, field, each bytewise. */
static int pos_cmp(const char *coll, size_t cl, const char *key, size_t kl,
		   const char *field, size_t fl, const struct store_pos *p)
{
	int c = bytes_cmp(coll, cl, p->coll, p->coll_len);
	if (c == 0)
		c = bytes_cmp(key, kl, p->key, p->key_len);
	if (c == 0)
		c = bytes_cmp(field, fl, p->field, p->field_len);
	return c;
}

static int pos_from_msg(const Msce__Position *m, struct store_pos *p,
			struct err *e)
{
	size_t cl = strlen(m->collection), kl = strlen(m->key),
	       fl = strlen(m->field);
	if (cl > MSCE_MAX_COLLECTION || kl > MSCE_MAX_KEY ||
	    fl > MSCE_MAX_FIELD_NAME)
		return err_set(e, MSCE_EPROTO, "snapshot range bound too long");
	memcpy(p->coll, m->collection, cl + 1);
	memcpy(p->key, m->key, kl + 1);
	memcpy(p->field, m->field, fl + 1);
	p->coll_len = cl;
	p->key_len = kl;
	p->field_len = fl;
	return 0;
}

/* Is version v within what the snapshot covers (its origin's entry)? */
static int covered_by(const struct peer *p, struct version v)
{
	if (v.hlc == 0 && v.origin == 0)
		return 1;
	for (size_t i = 0; i < p->rx_snap_nvv; i++)
		if (p->rx_snap_vv[i].origin == v.origin)
			return v.hlc <= p->rx_snap_vv[i].hlc;
	return 0;
}

/* Decodes a chunk into x: records in range and in order, bounded. */
static int snapshot_decode(struct repl *r, struct peer *p,
			   const Msce__SnapshotChunk *c, struct rxsnap *x,
			   struct err *e)
{
	size_t nfs = 0, nfv = 0, k = 0, kv = 0;
	const struct store_pos *start = p->rx_started ? &p->rx_start : NULL;

	(void)r;
	if (!c->done && c->end == NULL)
		return err_set(e, MSCE_EPROTO, "snapshot chunk without range");
	if (c->end != NULL && pos_from_msg(c->end, &x->end, e))
		return e->code;
	for (size_t i = 0; i < c->n_records; i++) {
		nfs += c->records[i]->n_fields;
		for (size_t j = 0; j < c->records[i]->n_fields; j++)
			nfv += c->records[i]->fields[j]->n_losers;
	}
	x->recs = calloc(c->n_records ? c->n_records : 1, sizeof *x->recs);
	x->rs = calloc(c->n_records ? c->n_records : 1, sizeof *x->rs);
	x->fss = calloc(nfs ? nfs : 1, sizeof *x->fss);
	x->fvs = calloc(nfv ? nfv : 1, sizeof *x->fvs);
	if (x->recs == NULL || x->rs == NULL || x->fss == NULL ||
	    x->fvs == NULL)
		return err_set(e, MSCE_ENOMEM, "snapshot chunk");
	for (size_t i = 0; i < c->n_records; i++) {
		const Msce__Record *m = c->records[i];
		size_t cl = strlen(m->collection), kl = strlen(m->key);
		struct record *rs = &x->rs[i];

		if (schema_check_collection(m->collection, cl, 1, NULL) ||
		    schema_check_key(m->key, kl, NULL))
			return err_set(e, MSCE_EPROTO,
				       "bad record name in snapshot");
		rs->tomb.hlc = m->tomb_hlc;
		rs->tomb.origin = m->tomb_origin;
		if (!covered_by(p, rs->tomb) && !MUTANT("unchecked_cover"))
			return err_set(e, MSCE_EAUTH,
				       "snapshot deletes %s/%s at a version its "
				       "vector does not cover",
				       m->collection, m->key);
		rs->erased.hlc = m->erase_hlc;
		rs->erased.origin = m->erase_origin;
		/* Above the tombstone only once that is collected (the
		 * record lives on, its erase mark kept). */
		if ((!version_is_zero(rs->tomb) &&
		     version_cmp(rs->erased, rs->tomb) > 0) ||
		    (!version_is_zero(rs->erased) && !covered_by(p, rs->erased) &&
		     !MUTANT("unchecked_cover")))
			return err_set(e, MSCE_EPROTO,
				       "snapshot erases %s/%s above its "
				       "tombstone or its vector",
				       m->collection, m->key);
		rs->fields = &x->fss[k];
		rs->nfields = (uint32_t)m->n_fields;
		rs->cap = rs->nfields;
		for (size_t j = 0; j < m->n_fields; j++) {
			const Msce__FieldState *fm = m->fields[j];
			struct field_state *fs = &x->fss[k++];
			const char *name;
			size_t nl;
			if (fm->winner == NULL ||
			    fm->n_losers > RECORD_MAX_LOSERS ||
			    (nl = strlen(name = fm->winner->name)) >
				MSCE_MAX_FIELD_NAME ||
			    nl == 0 || fv_from_msg(fm->winner, &fs->w))
				return err_set(e, MSCE_EPROTO,
					       "bad field in snapshot record");
			fs->name = (const uint8_t *)name;
			fs->name_len = (uint16_t)nl;
			fs->seen.hlc = fm->seen_hlc;
			fs->seen.origin = fm->seen_origin;
			fs->nlosers = (uint8_t)fm->n_losers;
			fs->losers = fm->n_losers ? &x->fvs[kv] : NULL;
			kv += fm->n_losers;
			for (size_t l = 0; l < fm->n_losers; l++)
				if (fv_from_msg(fm->losers[l], &fs->losers[l]))
					return err_set(e, MSCE_EPROTO,
						       "bad loser in snapshot");
			/* Nothing beyond what the origins signed. */
			int beyond = !covered_by(p, fs->w.v);
			for (size_t l = 0; l < fm->n_losers; l++)
				beyond |= !covered_by(p, fs->losers[l].v);
			if (beyond && !MUTANT("unchecked_cover"))
				return err_set(e, MSCE_EAUTH,
					       "snapshot holds %s/%s.%s at a "
					       "version its vector does not "
					       "cover",
					       m->collection, m->key, name);
			/* In order, and inside [start, end). */
			if ((j > 0 &&
			     bytes_cmp((const char *)x->fss[k - 2].name,
				       x->fss[k - 2].name_len, name, nl) >= 0) ||
			    (start != NULL &&
			     pos_cmp(m->collection, cl, m->key, kl, name, nl,
				     start) < 0) ||
			    (c->end != NULL &&
			     pos_cmp(m->collection, cl, m->key, kl, name, nl,
				     &x->end) >= 0))
				return err_set(e, MSCE_EPROTO,
					       "snapshot field out of range or "
					       "order");
		}
		if (i > 0) {
			const struct store_snap_record *pr = &x->recs[i - 1];
			int o = bytes_cmp(pr->coll, pr->coll_len,
					  m->collection, cl);
			if (o == 0)
				o = bytes_cmp(pr->key, pr->key_len, m->key, kl);
			if (o >= 0)
				return err_set(e, MSCE_EPROTO,
					       "snapshot records out of order");
		}
		if ((start != NULL &&
		     pos_cmp(m->collection, cl, m->key, kl, "", 0, start) < 0 &&
		     m->n_fields == 0) ||
		    (c->end != NULL &&
		     pos_cmp(m->collection, cl, m->key, kl, "", 0, &x->end) >=
			 0))
			return err_set(e, MSCE_EPROTO,
				       "snapshot record %s/%s out of range "
				       "(start %s/%s/%s, end %s/%s/%s)",
				       m->collection, m->key,
				       start ? start->coll : "-",
				       start ? start->key : "-",
				       start ? start->field : "-",
				       c->end ? x->end.coll : "-",
				       c->end ? x->end.key : "-",
				       c->end ? x->end.field : "-");
		x->recs[i].coll = m->collection;
		x->recs[i].coll_len = cl;
		x->recs[i].key = m->key;
		x->recs[i].key_len = kl;
		x->recs[i].rec = rs;
	}
	x->chunk.source = p->id;
	x->chunk.first = start == NULL;
	x->chunk.recs = x->recs;
	x->chunk.n = c->n_records;
	x->cover = malloc((p->rx_snap_nvv ? p->rx_snap_nvv : 1) *
			  sizeof *x->cover);
	x->cover_segs = malloc((p->rx_snap_nsegs ? p->rx_snap_nsegs : 1) *
			       sizeof *x->cover_segs);
	if (x->cover == NULL || x->cover_segs == NULL)
		return err_set(e, MSCE_ENOMEM, "snapshot chunk");
	memcpy(x->cover, p->rx_snap_vv, p->rx_snap_nvv * sizeof *x->cover);
	memcpy(x->cover_segs, p->rx_snap_segs,
	       p->rx_snap_nsegs * sizeof *x->cover_segs);
	x->chunk.cover = x->cover;
	x->chunk.ncover = p->rx_snap_nvv;
	x->chunk.cover_segs = x->cover_segs;
	x->chunk.ncover_segs = p->rx_snap_nsegs;
	x->chunk.done = c->done;
	return 0;
}

/* The sender offers (it cannot serve us from its log): we ask. We ask:
 * it starts one, unless it is waiting out a refusal (then it offers again
 * later, and we ask again). */
static void on_snapshot_request(struct repl *r, struct peer *p,
				const Msce__SnapshotRequest *q, uint64_t now)
{
	if (q->offer) {
		Msce__PeerMsg m = MSCE__PEER_MSG__INIT;
		Msce__SnapshotRequest a = MSCE__SNAPSHOT_REQUEST__INIT;
		/* Every offer is answered: the sender may have had to drop
		 * our last request (waiting out a refusal). */
		if (p->snap_asked && MUTANT("snapshot_ask_once"))
			return;
		p->snap_asked = 1;
		m.msg_case = MSCE__PEER_MSG__MSG_SNAPSHOT_REQUEST;
		m.snapshot_request = &a;
		send_msg(r, p->id, &m);
		return;
	}
	if (p->snap_id == 0 && hold_check(r, NULL, 0) != HOLD_NONE) {
		p->snap_offered = 0; /* offer again when we can */
	} else if (p->snap_id == 0) {
		start_snapshot(r, p, now);
		if (p->snap_id == 0)
			p->snap_offered = 0; /* offer again when we can */
	}
}

/* Hands a checked chunk to the driver. A chunk but the last is acked at
 * once: staging it changes nothing visible, and a staging failure closes
 * the link (the snapshot starts over), so the sender reads and sends the
 * next chunk while this one is staged. The last is acked once merged. */
static void snap_submit(struct repl *r, struct peer *p, struct rxsnap *x)
{
	p->snap_applying = x;
	p->snap_token = ((uint64_t)(p->session & 0xffff) << 48) |
			(++r->token_seq & 0xffffffffffffu);
	if (!x->chunk.done)
		send_ack(r, p, 0, 0, NULL, x->m->snapshot->snapshot_id);
	r->io->snapshot(r->io->data, p->snap_token, &x->chunk);
}

/* Is a snapshot's vector ahead of ours for some origin? One that is not
 * brings nothing, and its merge could only remove what we hold (an
 * insider's offered snapshot with no records wiped a center). */
static int snap_ahead(struct repl *r, const struct vv_entry *sv, size_t n)
{
	struct vv_entry vv[MAX_ORIGINS];
	size_t nv = my_vv(r, vv);

	for (size_t i = 0; i < n; i++)
		if (sv[i].seq > vv_seq(vv, nv, sv[i].origin))
			return 1;
	return 0;
}

/* Returns 0 when the chunk went to the driver or waits for it (either way
 * it keeps m), or an error (m stays the caller's). */
static int on_snapshot(struct repl *r, struct peer *p, Msce__PeerMsg *m,
		       uint64_t now, struct err *e)
{
	const Msce__SnapshotChunk *c = m->snapshot;
	struct rxsnap *x;
	int rc;

	if (c->protocol != MSCE_PROTOCOL_VERSION || c->snapshot_id == 0)
		return err_set(e, MSCE_EPROTO, "bad snapshot chunk header");
	if (p->snap_next != NULL)
		return err_set(e, MSCE_EPROTO,
			       "snapshot chunk before the last was acked");
	if (snapshot_clock_check(r, c, now, e)) {
		p->clock_refused = 1;
		return e->code;
	}
	if (c->snapshot_id == p->snap_refused_id &&
	    !MUTANT("refused_snapshot_chunks_taken")) {
		/* Sent before our refusal of it reached the sender. */
		pb_arena_free(m);
		return 0;
	}
	if (c->snapshot_id != p->rx_snap_id) {
		/* A new snapshot: we must have asked for it, and its first
		 * chunk carries the vector and what proves it. */
		if (!p->snap_asked)
			return err_set(e, MSCE_EAUTH,
				       "a snapshot we did not ask for");
		free(p->rx_snap_vv);
		free(p->rx_snap_segs);
		p->rx_snap_vv = vv_from_msg(c->vv, c->n_vv);
		p->rx_snap_nvv = c->n_vv;
		p->rx_snap_segs = segs_from_msg(c->cover, c->n_cover);
		p->rx_snap_nsegs = c->n_cover;
		if (p->rx_snap_vv == NULL || p->rx_snap_segs == NULL)
			return err_set(e, MSCE_EPROTO, "bad snapshot vector");
		if (!snap_ahead(r, p->rx_snap_vv, p->rx_snap_nvv)) {
			/* Nothing in it for us: caught up from another peer
			 * since we asked (or an insider's empty snapshot).
			 * Declined, never merged; the link stays. */
			trace(r, LOG_INFO,
			      "snapshot from node %u declined: its vector is "
			      "nowhere ahead of ours",
			      p->id);
			p->snap_refused_id = c->snapshot_id;
			p->snap_asked = 0;
			send_ack(r, p, 0, MSCE_EBUSY,
				 "snapshot declined: nowhere ahead of ours",
				 c->snapshot_id);
			pb_arena_free(m);
			return 0;
		}
		p->rx_snap_id = c->snapshot_id;
		p->rx_started = 0;
		p->snaps_recv++;
		r->counters.snapshots_received++;
		memset(&p->snap_in, 0, sizeof p->snap_in);
		p->snap_in.active = 1;
		p->snap_in.started_ms = now;
		trace(r, LOG_INFO, "receiving a snapshot from node %u", p->id);
	}
	x = calloc(1, sizeof *x);
	if (x == NULL)
		return err_set(e, MSCE_ENOMEM, "snapshot chunk");
	if ((rc = snapshot_decode(r, p, c, x, e))) {
		rxsnap_free(x);
		return rc;
	}
	x->m = m;
	if (!c->done) { /* the next chunk starts where this one ends */
		p->rx_start = x->end;
		p->rx_started = 1;
	}
	p->snap_in.chunks++;
	p->snap_in.records += c->n_records;
	p->snap_in.progress_ms = now;
	if (p->snap_applying != NULL) /* the driver has the one before */
		p->snap_next = x;
	else
		snap_submit(r, p, x);
	return 0;
}

/* The chunk that waited for the one the driver just finished, if any. */
static void snap_submit_next(struct repl *r, struct peer *p)
{
	struct rxsnap *x = p->snap_next;
	if (x == NULL)
		return;
	p->snap_next = NULL;
	snap_submit(r, p, x);
}

void repl_snapshot_done(struct repl *r, uint64_t token, int rc,
			const struct err *e, uint64_t now_ms)
{
	struct peer *p = peer_by_token(r, token, 1);
	struct rxsnap *x;
	uint32_t session = (uint32_t)(token >> 48);

	if (p == NULL)
		return;
	x = p->snap_applying;
	p->snap_applying = NULL;
	if (session != (p->session & 0xffff) || p->state != REPL_ACTIVE) {
		/* Of an ended session; one of this session may wait. */
		rxsnap_free(x);
		if (p->state == REPL_ACTIVE)
			snap_submit_next(r, p);
		return;
	}
	if (rc != 0) { /* what waits was acked on the strength of this one */
		rxsnap_free(p->snap_next);
		p->snap_next = NULL;
	}
	if (rc == MSCE_EAUTH) {
		rxsnap_free(x);
		refuse(r, p, REFUSED_SNAPSHOT, rc,
		       "snapshot from node %u refused: %s", p->id,
		       e ? e->msg : err_str(rc));
		return;
	}
	if (rc != 0) {
		/* Our store is in trouble (a full disk): refuse the snapshot,
		 * as one from a clock too far ahead, and keep the link; the
		 * sender offers it again after its retry_ms. Or our vector
		 * has no room for one of its origins: refused alike, counted
		 * as for changes of such an origin, offered again later. */
		uint64_t id = x->m->snapshot->snapshot_id;
		if (rc == MSCE_ETOOBIG) {
			no_room(r, p, "snapshot", e);
		} else {
			store_trouble(r, p, "merge a snapshot",
				      "it offers it again later", rc, e);
		}
		rxsnap_free(x);
		p->snap_refused_id = id;
		p->rx_snap_id = 0;
		p->snap_in.active = 0;
		p->snap_asked = 0;
		send_ack(r, p, 0, rc, e ? e->msg : err_str(rc), id);
		return;
	}
	store_ok(r, p);
	if (x->chunk.done) {
		trace(r, LOG_INFO, "snapshot from node %u merged", p->id);
		p->rx_snap_id = 0;
		p->snap_asked = 0;
		p->snap_in.active = 0;
		p->snap_in.stalled = 0;
		send_ack(r, p, 0, 0, NULL, x->m->snapshot->snapshot_id);
	} /* else acked when handed to the driver */
	rxsnap_free(x);
	snap_submit_next(r, p);
	gate_step(r, now_ms);
	pump_all(r, now_ms);
}

/* ---- gossip ---------------------------------------------------------------------- */

static void status_msg(const struct view *w, Msce__NodeStatus *s,
		       Msce__VVEntry *vs, Msce__VVEntry **vp,
		       Msce__WriterInfo *ws, Msce__WriterInfo **wp)
{
	msce__node_status__init(s);
	s->node = w->node;
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
	s->writer = w->v.writer;
	s->born = w->v.born;
	s->settled = w->v.settled;
	s->n_members = w->nmembers;
	s->members = (uint32_t *)w->members;
	for (size_t i = 0; i < w->nbeliefs; i++) {
		msce__writer_info__init(&ws[i]);
		ws[i].node = writer_node(w->beliefs[i].writer);
		ws[i].writer = w->beliefs[i].writer;
		ws[i].born = w->beliefs[i].born;
		wp[i] = &ws[i];
	}
	s->n_writers = w->nbeliefs;
	s->writers = wp;
}

/* Our status, signed, and the newest we hold of every other member as
 * its node signed it. */
static void gossip(struct repl *r, uint64_t now)
{
	uint32_t m[MAX_NODES];
	size_t nm, k = 0, len;
	Msce__NodeStatus st = MSCE__NODE_STATUS__INIT;
	Msce__VVEntry *vs = calloc(MAX_ORIGINS, sizeof *vs);
	Msce__VVEntry **vp = calloc(MAX_ORIGINS, sizeof *vp);
	Msce__WriterInfo *ws = calloc(MAX_NODES, sizeof *ws);
	Msce__WriterInfo **wp = calloc(MAX_NODES, sizeof *wp);
	Msce__SignedStatus *ss = calloc(MAX_NODES, sizeof *ss);
	Msce__SignedStatus **sp = calloc(MAX_NODES, sizeof *sp);
	uint8_t *mine = NULL, sig[SEG_SIG_LEN];
	Msce__PeerMsg msg = MSCE__PEER_MSG__INIT;
	Msce__Gossip g = MSCE__GOSSIP__INIT;
	const struct view *self;

	if (vs == NULL || vp == NULL || ws == NULL || wp == NULL ||
	    ss == NULL || sp == NULL)
		goto out;
	self_view(r, now);
	if ((self = view_find(r, r->cfg.node_id)) == NULL)
		goto out;
	status_msg(self, &st, vs, vp, ws, wp);
	len = msce__node_status__get_packed_size(&st);
	if ((mine = malloc(len ? len : 1)) == NULL)
		goto out;
	msce__node_status__pack(&st, mine);
	if (r->ops->status_sign(r->ops->ctx, mine, len, sig) != 0)
		goto out; /* no signing key (tests): nobody would take it */
	nm = members(r, m);
	for (size_t i = 0; i < nm && k < MAX_NODES; i++) {
		const struct view *w = view_find(r, m[i]);
		msce__signed_status__init(&ss[k]);
		if (m[i] == r->cfg.node_id) {
			ss[k].status.data = mine;
			ss[k].status.len = len;
			ss[k].sig.data = sig;
		} else if (w != NULL && w->v.known &&
			   w->signed_status != NULL) {
			ss[k].status.data = w->signed_status;
			ss[k].status.len = w->signed_len;
			ss[k].sig.data = (uint8_t *)w->sig;
			ss[k].born = w->v.born; /* as raised here, if it was */
		} else {
			continue;
		}
		ss[k].sig.len = SEG_SIG_LEN;
		sp[k] = &ss[k];
		k++;
	}
	g.n_statuses = k;
	g.statuses = sp;
	msg.msg_case = MSCE__PEER_MSG__MSG_GOSSIP;
	msg.gossip = &g;
	for (size_t i = 0; i < r->npeers; i++)
		if (r->peers[i].state == REPL_ACTIVE)
			send_msg(r, r->peers[i].id, &msg);
out:
	free(mine);
	free(vs);
	free(vp);
	free(ws);
	free(wp);
	free(ss);
	free(sp);
}

/* A peer that greeted us without a writer and has one now: its own status
 * is a later greeting, which the gate may catch up with (a store without a
 * writer would otherwise wait for the next session). */
static void status_greets(struct peer *p, const Msce__NodeStatus *s)
{
	struct vv_entry *vv;

	if (p->state != REPL_ACTIVE || !p->greeted || p->hello_writer != 0 ||
	    s->writer == 0 || !s->settled)
		return;
	if ((vv = vv_from_msg(s->vv, s->n_vv)) == NULL)
		return; /* out of memory: the next status tries again */
	free(p->st_vv);
	p->st_vv = vv;
	p->st_nvv = s->n_vv;
	p->st_writer = s->writer;
	p->st_hw = s->hw;
}

/* A status its node's key does not verify: made up or altered by the
 * peer (an insider). Left out and counted with the forgeries; the link
 * stays, as the rest of the gossip may be sound. */
static void status_forged(struct repl *r, struct peer *from, uint32_t node)
{
	r->counters.forged_refusals++;
	from->refused_forged++;
	trace(r, from->status_forged_told ? LOG_DEBUG : LOG_WARN,
	      "status of node %u from node %u refused: its signature does "
	      "not verify with node %u's key",
	      node, from->id, node);
	from->status_forged_told = 1;
}

/* The very status (bytes and signature) we hold for its node, checked when
 * it came: every peer relays the same ones each second. */
static int status_held(struct repl *r, uint32_t node,
		       const Msce__SignedStatus *ss)
{
	const struct view *v = view_find(r, node);
	return v != NULL && v->signed_status != NULL &&
	       v->signed_len == ss->status.len &&
	       memcmp(v->signed_status, ss->status.data, v->signed_len) == 0 &&
	       memcmp(v->sig, ss->sig.data, SEG_SIG_LEN) == 0;
}

static int on_gossip(struct repl *r, struct peer *from, const Msce__Gossip *g,
		     uint64_t now)
{
	uint64_t born = 0;
	uint32_t mine = r->ops->writer(r->ops->ctx, &born);
	Msce__NodeStatus *st[MAX_NODES];
	size_t n = 0;
	int rc = 0;

	if (g->n_statuses > MAX_NODES)
		return MSCE_EPROTO;
	for (; n < g->n_statuses; n++) {
		const Msce__SignedStatus *ss = g->statuses[n];
		struct pb_limit l;
		size_t len = ss->status.len;
		st[n] = NULL;
		if (len > STATUS_MAX_BYTES || ss->sig.len != SEG_SIG_LEN)
			break;
		st[n] = msce__node_status__unpack(
		    pb_limit_init(&l, pb_limit_for(len)), len, ss->status.data);
		if (st[n] == NULL || !status_ok(st[n]))
			break;
		/* The first node that took it from its node itself may have
		 * raised its birth (view_accept): the order travels with it,
		 * outside the signature. */
		if (ss->born != 0)
			st[n]->born = ss->born;
	}
	if (n < g->n_statuses) {
		if (st[n] != NULL)
			msce__node_status__free_unpacked(st[n], NULL);
		rc = MSCE_EPROTO;
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		const Msce__SignedStatus *ss = g->statuses[i];
		const Msce__NodeStatus *s = st[i];
		int direct = s->node == from->id;
		int bad = status_held(r, s->node, ss)
			      ? 0
			      : r->ops->status_verify(r->ops->ctx, s->node,
						      ss->status.data,
						      ss->status.len,
						      ss->sig.data);
		if (bad > 0) {
			/* A center being added, its key not yet in our
			 * configuration: nothing of it is taken yet. */
			trace(r, LOG_DEBUG,
			      "status of node %u from node %u left out: no "
			      "key of node %u is configured",
			      s->node, from->id, s->node);
			continue;
		}
		if (bad < 0 && !MUTANT("status_unsigned")) {
			status_forged(r, from, s->node);
			continue;
		}
		view_accept(r, s, ss, direct, now);
		/* The peer's own status tells us what it holds (a relayed
		 * one may be from before it was restored). */
		if (direct) {
			from->offset = (int64_t)s->time_ms - (int64_t)now;
			status_greets(from, s);
			from->heard = 1;
			for (size_t j = 0; j < s->n_vv; j++)
				have_raise(from, s->vv[j]->origin,
					   s->vv[j]->seq, s->vv[j]->hlc, now);
		}
		if (s->node != r->cfg.node_id)
			writer_check(r, mine, born, 0, s->node, now);
		for (size_t j = 0; j < s->n_vv && s->node != r->cfg.node_id;
		     j++)
			if (s->vv[j]->origin == mine)
				writer_check(r, mine, born, s->vv[j]->seq,
					     s->node, now);
	}
out:
	for (size_t i = 0; i < n; i++)
		msce__node_status__free_unpacked(st[i], NULL);
	return rc;
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
	struct pb_arena ar;
	m = pb_arena_end(&ar, msce__peer_msg__unpack(
				      pb_arena_begin(&ar, pb_limit_for(len), len),
				      len, msg));
	if (m == NULL && ar.nomem) {
		/* Not the peer's doing: no refusal counted against it. */
		trace(r, LOG_ERROR, "out of memory decoding a message from "
				    "node %u", peer);
		close_link(r, p, MSCE_ENOMEM, "out of memory");
		return;
	}
	if (m == NULL) {
		fail_link(r, p, MSCE_EPROTO, "malformed message from node %u",
			  peer);
		return;
	}
	p->last_contact = now_ms;
	p->last_rx = now_ms;
	if (p->state != REPL_ACTIVE && m->msg_case != MSCE__PEER_MSG__MSG_HELLO &&
	    m->msg_case != MSCE__PEER_MSG__MSG_REFUSE) {
		pb_arena_free(m);
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
		err_clear(&e);
		if (on_snapshot(r, p, m, now_ms, &e) == 0) {
			keep = 1;
			break;
		}
		if (e.code == MSCE_ECLOCK) {
			trace(r, LOG_WARN, "snapshot from node %u: %s", peer,
			      e.msg);
			p->rx_snap_id = 0;
			p->snap_in.active = 0;
			p->snap_asked = 0;
			send_ack(r, p, 0, MSCE_ECLOCK, e.msg,
				 m->snapshot->snapshot_id);
			break;
		}
		if (e.code == MSCE_EAUTH)
			refuse(r, p, REFUSED_SNAPSHOT, e.code,
			       "snapshot from node %u refused: %s", peer,
			       e.msg);
		else
			fail_link(r, p, e.code, "snapshot from node %u: %s",
				  peer, e.msg);
		break;
	case MSCE__PEER_MSG__MSG_SNAPSHOT_REQUEST:
		on_snapshot_request(r, p, m->snapshot_request, now_ms);
		break;
	case MSCE__PEER_MSG__MSG_GOSSIP:
		if (on_gossip(r, p, m->gossip, now_ms))
			fail_link(r, p, MSCE_EPROTO,
				  "malformed gossip from node %u", peer);
		else
			gate_step(r, now_ms); /* a peer may write now */
		break;
	case MSCE__PEER_MSG__MSG_REFUSE:
		trace(r, LOG_WARN, "node %u refused the link: %s", peer,
		      m->refuse->reason);
		r->io->close(r->io->data, p->id, (int)m->refuse->code,
			     m->refuse->reason);
		p->state = REPL_DOWN;
		link_why(r, p, now_ms, "refused by node %u: %.200s", peer,
			 m->refuse->reason);
		break;
	default:
		fail_link(r, p, MSCE_EPROTO, "unknown message from node %u",
			  peer);
	}
	if (!keep)
		pb_arena_free(m);
}

void repl_local_commit(struct repl *r, uint64_t now_ms) { pump_all(r, now_ms); }

/* ---- timers: liveness, truncation, tombstone collection ------------------------ */

static void liveness(struct repl *r, uint64_t now)
{
	/* Ticks come every few tens of ms. A gap of half the liveness
	 * limit is time nobody watched (the wall clock stepped forward, or
	 * the loop stood still): the silence in it is not the peers'. */
	if (r->last_tick && now > r->last_tick + r->cfg.liveness_ms / 2) {
		uint64_t gap = now - r->last_tick;
		for (size_t i = 0; i < r->npeers; i++) {
			struct peer *p = &r->peers[i];
			p->last_rx = p->last_rx + gap < now ? p->last_rx + gap
							    : now;
			p->snap_out.progress_ms += gap;
			p->snap_in.progress_ms += gap;
		}
	}
	r->last_tick = now;
	for (size_t i = 0; i < r->npeers && !MUTANT("no_liveness"); i++) {
		struct peer *p = &r->peers[i];
		char reason[128];
		if (now < p->last_rx) {
			/* The wall clock stepped back: count the silence
			 * from now, not from a time that comes back later. */
			p->last_rx = now;
			continue;
		}
		if (p->state == REPL_DOWN ||
		    now - p->last_rx <= r->cfg.liveness_ms)
			continue;
		snprintf(reason, sizeof reason,
			 "no message from node %u for %llu ms (limit %llu ms)",
			 p->id, (unsigned long long)(now - p->last_rx),
			 (unsigned long long)r->cfg.liveness_ms);
		trace(r, LOG_WARN, "link to node %u: %s", p->id, reason);
		r->counters.link_timeouts++;
		p->timeouts++;
		close_link(r, p, MSCE_ETIMEOUT, reason);
	}
	for (size_t i = 0; i < r->npeers; i++) {
		struct peer *p = &r->peers[i];
		char reason[128];
		/* An honest peer acks a chunk but the last once it has
		 * checked it. One that does not, for twice the stall limit,
		 * is let go: our read of the store would keep every page
		 * freed meanwhile from reuse (and the map from growing). */
		if (p->snap != NULL && p->snap_wait &&
		    now > p->snap_out.progress_ms +
			      2 * r->cfg.snapshot_stall_ms) {
			snprintf(reason, sizeof reason,
				 "node %u acknowledged no snapshot chunk for "
				 "%llu ms (limit %llu ms)",
				 p->id,
				 (unsigned long long)(now -
						      p->snap_out.progress_ms),
				 (unsigned long long)(2 *
						      r->cfg.snapshot_stall_ms));
			trace(r, LOG_WARN, "link to node %u: %s", p->id,
			      reason);
			r->counters.link_timeouts++;
			p->timeouts++;
			close_link(r, p, MSCE_ETIMEOUT, reason);
		}
		p->snap_out.stalled =
			p->snap_out.active &&
			now > p->snap_out.progress_ms + r->cfg.snapshot_stall_ms;
		p->snap_in.stalled =
			p->snap_in.active &&
			now > p->snap_in.progress_ms + r->cfg.snapshot_stall_ms;
	}
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

/* Does every member hold seq s of origin o (as far as we know)? */
static int all_hold(const struct repl *r, const uint32_t *m, size_t nm,
		    uint32_t o, uint64_t s)
{
	for (size_t i = 0; i < nm; i++) {
		const struct view *v = view_find((struct repl *)r, m[i]);
		if (v == NULL || !v->v.known || vv_seq(v->v.vv, v->v.nvv, o) < s)
			return 0;
	}
	return 1;
}

/* A writer that is not current stops counting once every member knows of
 * a later writer of its node (or no longer lists its node) and all hold
 * the same last seq of it: then all of it is everywhere. */
static int retired(const struct repl *r, const struct wstate *w,
		   const uint32_t *m, size_t nm)
{
	uint32_t node = writer_node(w->id);
	uint64_t f = 0;

	for (size_t i = 0; i < nm; i++) {
		const struct view *v = view_find((struct repl *)r, m[i]);
		const struct belief *b;
		if (v == NULL || !v->v.known)
			return 0;
		if (has_member(v, node)) {
			b = view_belief(v, node);
			if (b == NULL || b->writer == w->id ||
			    (w->born_known &&
			     !writer_later(b->born, b->writer, w->born, w->id)))
				return 0;
		}
		if (vv_seq(v->v.vv, v->v.nvv, w->id) > f)
			f = vv_seq(v->v.vv, v->v.nvv, w->id);
	}
	return all_hold(r, m, nm, w->id, f);
}

/* Promotes the newest candidate status every member has caught up with. */
static void writer_promote(struct wstate *w, const struct repl *r,
			   const uint32_t *m, size_t nm)
{
	for (size_t k = w->ncand; k-- > 0;) {
		if (!all_hold(r, m, nm, w->id, w->cand[k].s))
			continue;
		free(w->stable);
		w->stable = w->cand[k].vv;
		w->nstable = w->cand[k].n;
		w->has_stable = 1;
		w->cand[k].vv = NULL;
		for (size_t j = 0; j < k; j++)
			cand_free(&w->cand[j]);
		memmove(&w->cand[0], &w->cand[k + 1],
			(w->ncand - k - 1) * sizeof w->cand[0]);
		w->ncand -= k + 1;
		return;
	}
}

/* A tombstone of origin p at hlc T is collected once every writer that
 * still counts has a stable status holding T: each has seen the delete,
 * and whatever it wrote without seeing it is everywhere. */
static void collect_tombstones(struct repl *r, uint64_t now)
{
	uint32_t m[MAX_NODES];
	size_t nm, n;
	struct vv_entry mine[MAX_ORIGINS], upto[MAX_ORIGINS];
	struct err e;
	size_t dropped = 0, nu = 0;
	char *why = r->gc_why;
	const size_t wl = sizeof r->gc_why;

	self_view(r, now);
	nm = members(r, m);
	for (size_t i = 0; i < nm; i++) {
		const struct view *v = view_find(r, m[i]);
		if (v == NULL || !v->v.known) {
			snprintf(why, wl, "no status from node %u yet", m[i]);
			return;
		}
	}
	/* A writer we never heard of counts too: born and cut off at once,
	 * its writes may sit at one peer only, older than the tombstone.
	 * Whoever holds them got them before that node's next writer was
	 * born, so once every member believes the newest writer we know of
	 * each node, their statuses have named every earlier one. A member
	 * with no writer we know of may have had one (a store emptied after
	 * a strand, its next writer not yet born or not yet heard of): wait
	 * for its next. */
	for (size_t i = 0; i < nm; i++) {
		const struct wstate *cur = node_writer(r, m[i]);
		if (cur == NULL) {
			if (MUTANT("gc_writerless_member"))
				continue;
			snprintf(why, wl,
				 "node %u has no writer we know of (a store "
				 "new, emptied or restored, not writing yet)",
				 m[i]);
			return;
		}
		for (size_t k = 0; k < nm; k++) {
			const struct view *v = view_find(r, m[k]);
			const struct belief *b;
			if (!has_member(v, m[i]))
				continue;
			b = view_belief(v, m[i]);
			if ((b == NULL || writer_later(cur->born, cur->id,
						       b->born, b->writer)) &&
			    !MUTANT("gc_unknown_writers")) {
				snprintf(why, wl,
					 "node %u does not know node %u's "
					 "writer %u/%u yet",
					 m[k], m[i], writer_node(cur->id),
					 writer_inc(cur->id));
				return;
			}
		}
	}
	n = my_vv(r, mine);
	for (size_t i = 0; i < n; i++) {
		upto[i].origin = mine[i].origin;
		upto[i].hlc = UINT64_MAX;
		upto[i].seq = 0;
		upto[i].floor = 0;
	}
	for (size_t i = 0; i < r->nwriters; i++) {
		struct wstate *w = &r->writers[i];
		const struct wstate *cur = node_writer(r, writer_node(w->id));
		int member = 0;
		for (size_t k = 0; k < nm && !member; k++)
			member = m[k] == writer_node(w->id);
		writer_promote(w, r, m, nm);
		if (!(member && cur == w) && retired(r, w, m, nm))
			continue;
		if (MUTANT("gc_dead_writers") && cur != w)
			continue; /* only current writers count */
		if (MUTANT("gc_bound") && w->id != r->ops->writer(r->ops->ctx,
								   NULL))
			continue; /* only our own writer counts */
		if (!w->has_stable) {
			snprintf(why, wl,
				 "no status of writer %u/%u that every "
				 "member has caught up with yet",
				 writer_node(w->id), writer_inc(w->id));
			return;
		}
		for (size_t k = 0; k < n; k++) {
			uint64_t h = vv_hlc(w->stable, w->nstable,
					    upto[k].origin);
			if (h < upto[k].hlc)
				upto[k].hlc = h;
		}
	}
	why[0] = '\0'; /* it runs */
	for (size_t k = 0; k < n; k++)
		if (upto[k].hlc != 0 && upto[k].hlc != UINT64_MAX)
			upto[nu++] = upto[k];
	if (nu == 0)
		return;
	if (r->io->trace != NULL) {
		char line[400];
		size_t o = 0;
		for (size_t k = 0; k < nu && o < sizeof line - 40; k++)
			o += (size_t)snprintf(line + o, sizeof line - o,
					      " %u/%u<=%llu.%u",
					      writer_node(upto[k].origin),
					      writer_inc(upto[k].origin),
					      (unsigned long long)hlc_ms(
						  upto[k].hlc),
					      hlc_logical(upto[k].hlc));
		trace(r, LOG_DEBUG, "collection bound:%s", line);
	}
	if (r->ops->gc_tombstones(r->ops->ctx, upto, nu, &dropped, &e))
		trace(r, LOG_WARN, "tombstone collection: %s", e.msg);
	else
		r->counters.tombstones_collected += dropped;
}

/* Do a and b hold the same changes (the origins with a seq, each at the
 * same seq)? */
static int same_changes(const struct vv_entry *a, size_t na,
			const struct vv_entry *b, size_t nb)
{
	size_t ka = 0, kb = 0;
	for (size_t i = 0; i < na; i++) {
		if (a[i].seq == 0)
			continue;
		ka++;
		if (vv_seq(b, nb, a[i].origin) != a[i].seq)
			return 0;
	}
	for (size_t i = 0; i < nb; i++)
		kb += b[i].seq != 0;
	return ka == kb;
}

/* Equal vectors mean equal data (the digest is the state's, the state
 * the effect of the changes held). A node reporting ours with another
 * digest is flagged once that lasts REPL_DIVERGED_MS and a later report
 * of it says the same: an older build's report may pair a vector from
 * before a commit with a digest from after it (it read them apart). */
static void divergence(struct repl *r, uint64_t now)
{
	const struct view *self;

	self_view(r, now);
	if ((self = view_find(r, r->cfg.node_id)) == NULL)
		return;
	for (size_t i = 0; i < r->nviews; i++) {
		struct view *v = &r->views[i];
		int differ = v->node != r->cfg.node_id && v->v.known &&
			     (same_changes(self->v.vv, self->v.nvv, v->v.vv,
					   v->v.nvv) ||
			      MUTANT("divergence_any_vector")) &&
			     memcmp(self->v.digest, v->v.digest, 32) != 0;
		if (!differ) {
			v->div_seen = 0;
			v->v.diverged_ms = 0;
			continue;
		}
		if (v->div_seen == 0) {
			v->div_seen = now;
			v->div_report = v->v.time_ms;
		}
		if (v->v.diverged_ms == 0 &&
		    now >= v->div_seen + REPL_DIVERGED_MS &&
		    v->v.time_ms > v->div_report) {
			v->v.diverged_ms = v->div_seen;
			trace(r, LOG_ERROR,
			      "node %u holds other data than this node at the "
			      "same vector (another digest for %llu ms): run "
			      "msce verify",
			      v->node,
			      (unsigned long long)(now - v->div_seen));
		}
	}
}

void repl_tick(struct repl *r, uint64_t now_ms)
{
	/* A wall clock stepped back must not stall the timers. */
	if (r->next_gossip > now_ms + r->cfg.gossip_interval_ms)
		r->next_gossip = now_ms;
	if (r->next_truncate > now_ms + r->cfg.truncate_interval_ms)
		r->next_truncate = now_ms;

	liveness(r, now_ms);
	gate_step(r, now_ms);
	for (size_t i = 0; i < r->npeers; i++) {
		struct peer *p = &r->peers[i];
		if (p->apply_held && now_ms >= p->apply_retry_at) {
			p->apply_held = 0;
			start_apply(r, p);
		}
	}
	if (now_ms >= r->next_gossip) {
		gossip(r, now_ms);
		divergence(r, now_ms);
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

/* The hlc at which writer (origin) was born, 0 if unknown: a lag measured
 * for a node that holds nothing of an origin starts there. */
static uint64_t origin_born(const struct repl *r, uint32_t origin)
{
	const struct wstate *w = writer_find((struct repl *)r, origin);
	return w != NULL && w->born_known ? w->born : 0;
}

size_t repl_peers(const struct repl *r, struct repl_peer_status *out,
		  size_t max)
{
	struct vv_entry vv[MAX_ORIGINS];
	size_t n = my_vv((struct repl *)r, vv);

	return repl_peers_at(r, vv, n, out, max);
}

size_t repl_peers_at(const struct repl *r, const struct vv_entry *vv, size_t n,
		     struct repl_peer_status *out, size_t max)
{
	if (n > MAX_ORIGINS)
		n = MAX_ORIGINS;
	for (size_t i = 0; i < r->npeers && i < max; i++) {
		const struct peer *p = &r->peers[i];
		struct repl_peer_status *s = &out[i];
		memset(s, 0, sizeof *s);
		s->node = p->id;
		s->state = p->state;
		s->last_contact_ms = p->last_contact;
		s->clock_offset_ms = p->offset;
		s->clock_refused = p->clock_refused || p->hs_clock_refused;
		s->sent_changes = p->sent_changes;
		s->recv_changes = p->recv_changes;
		s->dup_changes = p->dup_changes;
		s->snapshots_sent = p->snaps_sent;
		s->snapshots_received = p->snaps_recv;
		s->link_timeouts = p->timeouts;
		s->refused_forged = p->refused_forged;
		s->refused_snapshots = p->refused_snapshots;
		s->refused_protocol = p->refused_protocol;
		s->snap_out = p->snap_out;
		s->snap_in = p->snap_in;
		s->lag_known = p->heard;
		memcpy(s->link_error, p->why, sizeof s->link_error);
		s->link_error_ms = p->why_ms;
		/* With the link down, o[] is frozen at our last contact, but
		 * the peer's own later report, relayed by a third, says what
		 * it holds now (it may have caught up through that third). */
		const struct view *v = view_find((struct repl *)r, p->id);
		int by_view = p->state != REPL_ACTIVE && v != NULL &&
			      v->v.known &&
			      (int64_t)v->v.time_ms - p->offset >
				  (int64_t)p->last_contact;
		for (size_t k = 0; k < n && p->heard; k++) {
			uint64_t have = 0, have_hlc = 0;
			if (by_view) {
				have = vv_seq(v->v.vv, v->v.nvv, vv[k].origin);
				have_hlc =
				    vv_hlc(v->v.vv, v->v.nvv, vv[k].origin);
			}
			for (size_t j = 0; j < p->no && !by_view; j++)
				if (p->o[j].origin == vv[k].origin) {
					have = p->o[j].have;
					have_hlc = p->o[j].have_hlc;
				}
			if (vv[k].seq > have) {
				uint64_t lag = 0;
				if (have_hlc == 0)
					have_hlc = origin_born(r, vv[k].origin);
				if (have_hlc != 0 &&
				    hlc_ms(vv[k].hlc) > hlc_ms(have_hlc))
					lag = hlc_ms(vv[k].hlc) -
					      hlc_ms(have_hlc);
				s->lag_changes += vv[k].seq - have;
				if (lag > s->lag_ms)
					s->lag_ms = lag;
			}
		}
	}
	return r->npeers;
}

void repl_node(const struct repl *r, uint32_t node, struct repl_node_view *out)
{
	const struct view *v = view_find((struct repl *)r, node);
	memset(out, 0, sizeof *out);
	out->node = node;
	if (v != NULL && v->v.known)
		*out = v->v;
}

size_t repl_members(const struct repl *r, uint32_t *out, size_t max)
{
	uint32_t m[MAX_NODES];
	size_t n = members(r, m);
	for (size_t i = 0; i < n && i < max; i++)
		out[i] = m[i];
	return n;
}

void repl_inbound_lag(const struct repl *r, uint64_t *changes, uint64_t *ms)
{
	struct vv_entry mine[MAX_ORIGINS];
	size_t n = my_vv((struct repl *)r, mine);

	repl_inbound_lag_at(r, mine, n, changes, ms);
}

void repl_inbound_lag_at(const struct repl *r, const struct vv_entry *mine,
			 size_t n, uint64_t *changes, uint64_t *ms)
{
	if (n > MAX_ORIGINS)
		n = MAX_ORIGINS;
	*changes = 0;
	*ms = 0;
	for (size_t w = 0; w < r->nwriters; w++) {
		uint32_t o = r->writers[w].id;
		uint64_t have = vv_seq(mine, n, o), best = have, hlc = 0;
		for (size_t i = 0; i < r->nviews; i++) {
			const struct view *v = &r->views[i];
			uint64_t s;
			if (!v->v.known || v->node == r->cfg.node_id)
				continue;
			s = vv_seq(v->v.vv, v->v.nvv, o);
			if (s > best) {
				best = s;
				hlc = vv_hlc(v->v.vv, v->v.nvv, o);
			}
		}
		/* A peer's Hello and Acks say what it holds before its first
		 * status does (a gossip interval later): a node back from an
		 * outage is not healthy meanwhile. */
		for (size_t i = 0; i < r->npeers; i++) {
			const struct peer *p = &r->peers[i];
			for (size_t j = 0; p->heard && j < p->no; j++)
				if (p->o[j].origin == o && p->o[j].have > best) {
					best = p->o[j].have;
					hlc = p->o[j].have_hlc;
				}
		}
		if (best > have) {
			uint64_t mh = hlc_ms(vv_hlc(mine, n, o)), th = hlc_ms(hlc);
			if (mh == 0) /* nothing of it: behind since its birth */
				mh = hlc_ms(origin_born(r, o));
			*changes += best - have;
			if (mh != 0 && th > mh && th - mh > *ms)
				*ms = th - mh;
		}
	}
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

	if (vv_seq(vv, n, origin) >= seq && k < max)
		out[k++] = r->cfg.node_id;
	for (size_t i = 0; i < r->npeers && k < max; i++) {
		const struct peer *p = &r->peers[i];
		for (size_t j = 0; j < p->no; j++)
			if (p->o[j].origin == origin && p->o[j].have >= seq) {
				out[k++] = p->id;
				break;
			}
	}
	return k;
}
