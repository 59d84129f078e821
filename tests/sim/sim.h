/* SPDX-License-Identifier: Apache-2.0 */
/* msce-sim: N nodes in one process, each a real store and a replication
 * core, joined by a seeded fake network (net.c), with client writes
 * (workload.c), faults (faults.c) and an independent model of the merge
 * rule to check the result against (oracle.c). sim.c runs the seeds.
 *
 * Determinism: all randomness comes from one PRNG seeded by the seed; time
 * is simulated; everything is kept in arrays walked in index order, so a
 * seed replays the same run. */
#ifndef MSCE_SIM_H
#define MSCE_SIM_H

#include <stddef.h>
#include <stdint.h>

#include "repl.h"
#include "store.h"

#define SIM_MAX_NODES 32
#define SIM_MAX_INCS 256 /* incarnations of one node a run tracks */
/* Wall-clock ms at sim time 0: a fixed date, never time(). */
#define SIM_T0 UINT64_C(1700000000000)
#define SIM_MAX_SKEW_MS 60000
#define SIM_CLUSTER "sim"

/* ---- PRNG (splitmix64) --------------------------------------------------- */

struct rng {
	uint64_t s;
};

static inline uint64_t rng_next(struct rng *r)
{
	uint64_t z = (r->s += UINT64_C(0x9E3779B97F4A7C15));
	z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
	z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
	return z ^ (z >> 31);
}

/* Uniform in [0, n); 0 when n == 0. */
static inline uint64_t rng_below(struct rng *r, uint64_t n)
{
	return n ? rng_next(r) % n : 0;
}

/* Uniform in [lo, hi]. */
static inline uint64_t rng_range(struct rng *r, uint64_t lo, uint64_t hi)
{
	return lo + rng_below(r, hi - lo + 1);
}

/* True with probability ppm / 1e6. */
static inline int rng_ppm(struct rng *r, uint64_t ppm)
{
	return rng_below(r, 1000000) < ppm;
}

/* ---- network ------------------------------------------------------------- */

enum item_kind { ITEM_MSG, ITEM_UP, ITEM_DOWN };

/* Something in flight on a directed channel, for its receiving end: a
 * message, or that end learning that the connection came up or went down.
 * Control items share the FIFO with messages, so a node learns "up" before
 * the first message of that connection, as over TCP. */
struct item {
	struct item *next;
	uint64_t due, seq;
	uint64_t conn; /* connection the item belongs to */
	int kind;
	size_t len;
	uint8_t data[];
};

struct chan {
	struct item *head, *tail;
	uint64_t last_due; /* FIFO: nothing overtakes on one channel */
	uint64_t delivered_at; /* when a message last reached its node */
};

/* An undirected link between two nodes; conn numbers its connections. */
struct link {
	int up;
	int blocked; /* partitioned: no reconnect until healed */
	uint64_t conn;
	uint64_t reconnect_at; /* 0: no reconnect scheduled */
	uint64_t dmin, dmax;   /* per-message delay range, ms */
	uint64_t base_dmin, base_dmax, slow_until; /* congestion fault */
	uint64_t dead_conn; /* this connection silently drops everything */
};

/* ---- nodes --------------------------------------------------------------- */

struct job {
	struct job *next;
	uint64_t due, seq, token;
	const struct store_blob *b; /* the core keeps them until done */
	size_t n;
	const struct seg *g; /* their signed segments */
	size_t ng;
	const struct store_snap_chunk *chunk; /* a snapshot chunk instead */
};

struct sim;

struct node {
	struct sim *sim;
	int idx;     /* 0..n-1 */
	uint32_t id; /* idx + 1 */
	int alive;
	char *dir;
	struct store *store;
	struct repl *repl;
	struct repl_store_ops ops;
	struct repl_io io;
	int in_core;	   /* inside a call into repl: io callbacks only then */
	int64_t offset;	   /* wall clock = sim time + offset */
	uint64_t max_wall; /* highest wall clock it has shown the node */
	uint64_t next_tick, restart_at;
	uint64_t sees[SIM_MAX_NODES]; /* conn whose "up" it got, per peer */
	struct job *jobs, *jobs_tail;
	uint64_t jobs_last_due;
	struct repl_counters acc; /* counters of cores destroyed by crashes */
	char first_error[256];	  /* first protocol error traced */
	/* Every writer given to its stores and its birth (the first
	 * SIM_MAX_INCS); the birth of the one its core last gave up, 0 if
	 * none since the core started or took another. */
	struct sim_inc {
		uint32_t id;
		uint64_t born;
	} incs[SIM_MAX_INCS];
	int nincs;
	uint64_t gave_up_born;
	uint64_t full_until; /* its applies fail until then (FAULT_FULL) */
	int snap_reads;	     /* snapshot reads its core holds open */
	/* The most of each origin its statuses ever claimed (all its
	 * stores'): a view of it elsewhere claiming more was made up. */
	struct vv_entry claimed[MSCE_MAX_ORIGINS];
	size_t nclaimed;
};

/* ---- the world ----------------------------------------------------------- */

struct oracle;
struct workload;
struct faults;

enum {
	FAULT_CUT = 1,
	FAULT_PARTITION = 2,
	FAULT_CRASH = 4,
	FAULT_CLOCK = 8,
	FAULT_SLOW = 16,
	FAULT_RESTORE = 32,    /* a store replaced by an earlier backup */
	FAULT_WIPE = 64,       /* a store lost: the node starts empty */
	FAULT_MEMBERSHIP = 128, /* a center joins; configs roll out unevenly */
	FAULT_OVERSIZE = 256,  /* writes over the limits, records that grow */
	FAULT_DELRACE = 512,   /* deletes racing updates across partitions */
	FAULT_SECOND = 1024,   /* a second process opens a live store */
	FAULT_SILENT = 2048,   /* a connection drops everything, unannounced */
	FAULT_FORGE = 4096,    /* an insider alters what it relays */
	FAULT_STRAND = 8192,   /* a wiped center's last writes at one peer */
	FAULT_ALL = 16383,
	/* Not in "all" (it would change the seeds' runs): a node's store
	 * refuses to apply peers' changes for a while, as on a full disk. */
	FAULT_FULL = 16384,
	/* Not in "all" either: the insider alters statuses it relays under
	 * their nodes' signatures (their own stream of draws; the runs
	 * change all the same, as the real status does not arrive). */
	FAULT_STATUS = 32768,
};

struct sim_opts {
	int nodes;
	int steps;
	int verbose;
	int keep;	 /* leave the data dirs for inspection */
	int small_map;	 /* 4 MiB maps, so that they must grow */
	unsigned faults; /* FAULT_* kinds allowed */
};

struct sim {
	struct sim_opts opt;
	uint64_t seed;
	struct rng rng;
	struct rng status_rng; /* forged statuses' own draws */
	uint64_t now;	   /* sim ms */
	uint64_t seq;	   /* orders items and jobs due at the same ms */
	uint64_t conn_seq; /* numbers connections */
	int n;
	struct node nodes[SIM_MAX_NODES];
	uint32_t ids[SIM_MAX_NODES];
	struct repl_config rcfg;
	struct link *links; /* n*n, [lo*n+hi] */
	struct chan *chans; /* n*n, [from*n+to] */
	char *root;
	struct oracle *oracle;
	struct workload *work;
	struct faults *faults;
	/* member[i][j]: node i's configuration lists node j */
	unsigned char member[SIM_MAX_NODES][SIM_MAX_NODES];
	int joiner;	     /* index of the node that joins late, or -1 */
	/* The node whose store has no master key (msced without
	 * [node] master_key), 0 if none; every node if clear_all. */
	uint32_t clear_id;
	int clear_all;
	/* A strand's victim (faults.c) while the others should delete what
	 * it writes, or -1, and since when; and whether clients are quiet
	 * (the rest of the strand: no client writes anywhere). */
	int stranded;
	uint64_t stranded_since;
	int strand_quiet;
	int failed;
	char reason[768];
	/* what the run went through */
	uint64_t partitions, crashes, cuts, clock_faults;
	uint64_t restores, wipes, joins, rollouts, second_refused, silences;
	uint64_t fulls; /* FAULT_FULL stretches begun */
	uint64_t emptied; /* restored stores emptied (repl_must_empty) */
	uint64_t forgeries, strands;
	uint64_t writes_acked, writes_refused, writes_gated, oversize_refused;
	uint64_t bases_refused; /* a client's base after its write */
	uint64_t delete_conflicts; /* open at the end */
	uint64_t erasures;	   /* acknowledged erasures */
	uint64_t msgs_sent, msgs_dropped;
	uint64_t conflicts; /* open at the end */
	int64_t max_offset; /* highest clock offset used: healed by a jump */
};

/* Records the first failure reason (printf-style); later ones are ignored. */
void sim_fail(struct sim *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Prints a line prefixed by sim time when --verbose. */
void sim_log(struct sim *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* net.c */
int net_init(struct sim *s);
void net_free(struct sim *s);
struct link *net_link(struct sim *s, int a, int b);
/* Queues a message from -> to if the connection is up as `from` sees it. */
void net_send(struct sim *s, int from, int to, const uint8_t *buf, size_t len);
/* A tampered copy of an encoded PeerMsg (malloc'd), or NULL if this kind
 * of message is left alone; what says how (forge.c). */
uint8_t *forge_msg(struct sim *s, const uint8_t *buf, size_t len,
		   size_t *outlen, const char **what);
/* Cuts the link: in-flight messages are dropped, both ends learn "down"
 * after a delay; reconnects after reconnect_ms (0: not by itself). */
void net_cut(struct sim *s, int a, int b, uint64_t reconnect_ms);
/* A node crashed: everything in flight to or from it is gone. */
void net_node_down(struct sim *s, int i);
/* Earliest event (an item's arrival or a reconnect): returns 0 if none,
 * else 1 with its time, its order among events of that ms, and a handle
 * for net_run. */
int net_peek(struct sim *s, uint64_t *due, uint64_t *seq, int *what);
void net_run(struct sim *s, int what);
/* Nothing in flight but gossip, acks and pending reconnects. */
int net_quiet(struct sim *s, char *why, size_t whylen);

/* node.c */
/* The node's wall clock now (ms since the epoch). */
uint64_t node_now(struct node *nd);
int node_start(struct sim *s, int i);
/* Node id's signing key pair (every node knows every public key). */
void node_sign_keys(uint32_t id, uint8_t pk[32], uint8_t sk[64]);
/* Node id's master key into mk (its backups are restored with it);
 * returns mk, or NULL when the node keeps its store in the clear. */
const uint8_t *node_master_key(const struct sim *s, uint32_t id,
			       uint8_t mk[32]);
/* Node i's configured node ids (member[i]) into out; returns the count. */
size_t node_members(struct sim *s, int i, uint32_t *out);
void node_crash(struct sim *s, int i);
void node_stop(struct sim *s, int i); /* at the end of a run */
void node_tick(struct sim *s, int i);
void node_link_up(struct sim *s, int i, int peer);
void node_link_down(struct sim *s, int i, int peer);
void node_recv(struct sim *s, int i, int peer, const uint8_t *buf, size_t len);
void node_local_commit(struct sim *s, int i);
int node_job_peek(struct node *nd, uint64_t *due, uint64_t *seq);
void node_job_run(struct sim *s, int i);
/* Counters of the live core plus those of cores lost in crashes. */
void node_counters(const struct node *nd, struct repl_counters *out);

/* oracle.c */
struct oracle *oracle_new(void);
void oracle_free(struct oracle *o);

/* One field of an acknowledged write, as the workload asked it. */
struct oracle_field {
	const char *name;
	const uint8_t *val;
	size_t len;
	struct over_ver {
		uint64_t hlc;
		uint32_t origin;
	} base,		      /* the base the change must declare */
	    replaces;	      /* the version it overwrites at the node */
};

/* An acknowledged write: the request and the node's answer. */
struct oracle_write {
	uint32_t node_id;
	uint32_t origin;
	uint64_t seq, hlc;
	const char *coll, *key;
	int del;
	int erase; /* del: an erasure */
	struct over_ver replaces_tomb; /* for a delete: the node's tombstone */
	const struct oracle_field *fields;
	size_t nfields;
};

/* Records an acknowledged write by node index `node`; checks the answer
 * (seq order per origin, version above what it replaces). Returns 0, or
 * -1 with why filled. */
int oracle_ack(struct oracle *o, int node, const struct oracle_write *w,
	       char *why, size_t whylen);
/* How many changes of origin were acknowledged. */
uint64_t oracle_acked(struct oracle *o, uint32_t origin);
uint64_t oracle_changes(const struct oracle *o);
/* Node `node`'s store is being wiped or replaced: what it acknowledged
 * may be lost if nothing else holds it. */
void oracle_store_destroyed(struct oracle *o, int node);
/* Every log entry of the store is the change acknowledged under its
 * (origin, seq), the same bytes on every node; the store holds no more of
 * an origin than was acknowledged. Returns 0, or 1 with why filled. */
int oracle_check_log(struct oracle *o, struct store *st, uint32_t node,
		     char *why, size_t whylen);
/* The store's visible records and conflicts are what the rule gives for
 * the changes its vector says it holds. With final, also: every
 * acknowledged change not lost with a destroyed store is held.
 * *conflict_tombs gets how many tombstones must stay (delete conflicts).
 * Returns 0, or 1 with why filled. */
int oracle_check_state(struct oracle *o, struct store *st, int final,
		       size_t *conflict_tombs, char *why, size_t whylen);
/* The store's conflict list as canonical text (malloc'd, sorted). */
char *oracle_conflict_text(struct store *st);
/* No file under dir (data.mdb of stores and backups) holds a value the
 * workload wrote to a registration in the clear: values are sealed at
 * rest on every path. Files under skip (a store without a master key,
 * NULL: none) and backups named clear-* are passed by. Returns 0, or 1
 * with why filled. */
int oracle_check_files(struct oracle *o, const char *dir, const char *skip,
		       char *why, size_t whylen);

/* workload.c */
struct workload *workload_new(struct sim *s);
void workload_free(struct workload *w);
/* Maybe one client batch at a random live node. */
void workload_step(struct sim *s);

/* disk.c: the page cache as a power cut sees it */
/* From now on, data.mdb files keep an undo journal of unsynced writes. */
void disk_init(void);
/* After the store in dir was closed by a crash: its unsynced writes
 * vanish. Returns 0, or -1 with why filled. */
int disk_crash(const char *dir, char *why, size_t whylen);
void disk_stats(uint64_t *syncs, uint64_t *undone);
/* Files under prefix are gone (a run's directories removed). */
void disk_forget(const char *prefix);

/* faults.c */
struct faults *faults_new(struct sim *s);
void faults_free(struct faults *f);
void faults_step(struct sim *s);
/* Node i's store is emptied (a restored store that must be: repl.h,
 * repl_must_empty); it restarts. */
void faults_empty_store(struct sim *s, int i);
/* Ends every fault: nodes up, partition healed, clocks fixed (sim time
 * jumps past the largest offset used). */
void faults_heal_all(struct sim *s);

#endif
