/* SPDX-License-Identifier: Apache-2.0 */
/* Faults, drawn per step with rates chosen per seed (some seeds get none
 * of a kind, some many): a single link cut, a partition (a random split
 * of the nodes, links across cut until it heals), a node crash with a
 * restart later, clock offsets, some within the skew limit and some far
 * beyond it (minutes ahead or behind), and congestion (a link's delay
 * rises to seconds for a while, so that long transfers such as snapshots
 * overlap everything else).
 *
 * The edges of a node's life: a backup taken at a random moment and
 * restored later over the node's store (sometimes the same backup twice);
 * a wipe (the node starts empty); a center that joins late while the
 * other configurations learn of it one by one; and a second process that
 * tries to open a live store (it must be refused).
 *
 * A strand (below) plays out the case the incarnation rule of tombstone
 * collection is for, which random faults hardly ever line up.
 *
 * A clock found far off and set right: a node's store is restored from a
 * backup on a clock minutes ahead, so that its new incarnation is born
 * ahead; a few seconds after it writes again, its clock is set right and
 * the same backup restored once more (restores, not wipes: a wiped store
 * that meets only empty peers takes itself for a new cluster, PROTOCOL.md's
 * residual). The incarnation after that starts with
 * a clock far behind the birth of the one before, and must wait for it
 * rather than be born below it (PROTOCOL.md, "Origins and incarnations").
 * Its draws come from a stream of their own, so that a seed without it
 * runs as it did before it existed.
 *
 * A full disk (FAULT_FULL, only when asked for): a node's store refuses to
 * apply peers' changes or merge a snapshot for up to six seconds; the
 * core must keep the changes that came and apply them later, and refuse
 * the snapshot, to be offered again. Its own stream of draws, too.
 *
 * faults_heal_all ends them all for the final quiescence; clocks are set
 * right and sim time jumps past the largest offset used, so that changes
 * stamped by a clock that ran ahead become acceptable everywhere. */
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sim.h"

#define MAX_BACKUPS 4

struct backup {
	int node;
	char *dir;
};

/* A stranded writer, in phases: 1, the victim alone (it writes; the
 * others delete some of what it wrote, unaware of it, and the holder
 * sees those deletes); 2, the same with clients quiet from now on, so
 * that the statuses settle; 3, the victim and the holder apart from the
 * rest (the victim's writes reach the holder only); 4, the victim's
 * store wiped or restored, and the holder alone while the victim
 * restarts among the rest, catches up and takes a new incarnation;
 * then all heal. The holder's copies of the old writer's changes are
 * older than deletes the rest hold: the tombstones must stay until they
 * have arrived everywhere (PROTOCOL.md, "Tombstone collection": writers
 * that count until they retire). */
struct strand {
	uint64_t next_at; /* the next starts then (0: none) */
	int phase, victim, holder;
	uint64_t until;	 /* the phase ends then */
	int wait_writer; /* phase 4: the victim has no writer yet */
	/* Its own stream: a seed with no strand replays as before. */
	struct rng rng;
};

struct faults {
	uint64_t cut_ppm, part_ppm, crash_ppm, clock_ppm, slow_ppm;
	uint64_t backup_ppm, restore_ppm, wipe_ppm, second_ppm, silent_ppm;
	uint64_t partition_until; /* 0: no partition */
	struct backup backups[MAX_BACKUPS];
	int nbackups, backup_seq;
	uint64_t join_at;      /* the joiner starts then (0: started) */
	uint64_t next_rollout; /* a configuration learns of it */
	struct strand st;
	struct rng redo_rng;   /* the clock redo's own draws */
	uint64_t redo_ppm;
	int redo_node, redo_phase; /* see clock_redo */
	uint64_t redo_at;
	char *redo_dir; /* its backup */
	struct rng full_rng; /* FAULT_FULL's own draws */
	uint64_t full_ppm;
};

/* A rate: none, low or high. */
static uint64_t rate(struct rng *r, uint64_t low, uint64_t high)
{
	switch (rng_below(r, 5)) {
	case 0:
		return 0;
	case 1:
	case 2:
		return low;
	default:
		return high;
	}
}

struct faults *faults_new(struct sim *s)
{
	struct faults *f = calloc(1, sizeof *f);
	if (f == NULL)
		return NULL;
	f->cut_ppm = rate(&s->rng, 1500, 4000);
	f->part_ppm = rate(&s->rng, 600, 1500);
	f->crash_ppm = rate(&s->rng, 600, 1500);
	f->clock_ppm = rate(&s->rng, 700, 1500);
	f->slow_ppm = rate(&s->rng, 700, 1500);
	f->backup_ppm = rate(&s->rng, 500, 1500);
	f->restore_ppm = rate(&s->rng, 150, 500);
	f->wipe_ppm = rate(&s->rng, 150, 400);
	f->second_ppm = rate(&s->rng, 300, 1000);
	f->silent_ppm = rate(&s->rng, 300, 1000);
	f->join_at = s->joiner >= 0
			 ? rng_range(&s->rng, 100,
				     (uint64_t)s->opt.steps * 6 + 100)
			 : 0;
	f->redo_rng.s = s->seed ^ UINT64_C(0x636c6f636b726564);
	f->redo_ppm = rate(&f->redo_rng, 1000, 3000);
	if (!(s->opt.faults & FAULT_CLOCK) || !(s->opt.faults & FAULT_RESTORE))
		f->redo_ppm = 0;
	/* Drawn first, then masked: the other draws stay the same. */
	if (!(s->opt.faults & FAULT_CUT))
		f->cut_ppm = 0;
	if (!(s->opt.faults & FAULT_PARTITION))
		f->part_ppm = 0;
	if (!(s->opt.faults & FAULT_CRASH))
		f->crash_ppm = 0;
	if (!(s->opt.faults & FAULT_CLOCK))
		f->clock_ppm = 0;
	if (!(s->opt.faults & FAULT_SLOW))
		f->slow_ppm = 0;
	if (!(s->opt.faults & FAULT_RESTORE))
		f->backup_ppm = f->restore_ppm = 0;
	if (!(s->opt.faults & FAULT_WIPE))
		f->wipe_ppm = 0;
	if (!(s->opt.faults & FAULT_SECOND))
		f->second_ppm = 0;
	if (!(s->opt.faults & FAULT_SILENT))
		f->silent_ppm = 0;
	f->full_rng.s = s->seed ^ UINT64_C(0x66756c6c6469736b);
	f->full_ppm = (s->opt.faults & FAULT_FULL)
			  ? rate(&f->full_rng, 1000, 3000)
			  : 0;
	f->st.rng.s = s->seed ^ UINT64_C(0x737472616e640000);
	/* Half the seeds, early enough that one plays out before the
	 * heal (a step is 10 ms on average). */
	f->st.next_at =
	    rng_below(&f->st.rng, 2)
		? rng_range(&f->st.rng, 500, (uint64_t)s->opt.steps * 3 + 500)
		: 0;
	if (!(s->opt.faults & FAULT_STRAND) || s->n < 3)
		f->st.next_at = 0;
	return f;
}

void faults_free(struct faults *f)
{
	if (f == NULL)
		return;
	for (int i = 0; i < f->nbackups; i++)
		free(f->backups[i].dir);
	free(f->redo_dir);
	free(f);
}

/* ---- a node's life ------------------------------------------------------- */

static int rm_one(const char *p, const struct stat *st, int flag,
		  struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(p);
}

static void rmrf(const char *dir)
{
	nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* Copies the files of directory from into directory to (made). */
static int copy_dir(const char *from, const char *to)
{
	static const char *const files[] = {"data.mdb", NULL};
	char a[512], b[512], buf[65536];
	if (mkdir(to, 0750) != 0)
		return -1;
	for (int i = 0; files[i] != NULL; i++) {
		FILE *in, *out;
		size_t n;
		snprintf(a, sizeof a, "%s/%s", from, files[i]);
		snprintf(b, sizeof b, "%s/%s", to, files[i]);
		if ((in = fopen(a, "rb")) == NULL)
			return -1;
		if ((out = fopen(b, "wb")) == NULL) {
			fclose(in);
			return -1;
		}
		while ((n = fread(buf, 1, sizeof buf, in)) > 0)
			fwrite(buf, 1, n, out);
		fclose(in);
		if (fclose(out) != 0)
			return -1;
	}
	return 0;
}

static void take_backup(struct sim *s, int i)
{
	struct faults *f = s->faults;
	struct node *nd = &s->nodes[i];
	char path[512];
	uint64_t bytes;
	struct err e;
	int slot;

	/* A store in the clear backs up in the clear: named so that the
	 * check of values at rest passes it by. */
	snprintf(path, sizeof path, "%s/%sbackup-%d", s->root,
		 node_master_key(s, nd->id, (uint8_t[32]){0}) ? "" : "clear-",
		 ++f->backup_seq);
	err_clear(&e);
	if (store_backup(nd->store, path, &bytes, &e)) {
		sim_fail(s, "node %u: backup: %s", nd->id, e.msg);
		return;
	}
	slot = f->nbackups < MAX_BACKUPS ? f->nbackups++
					 : (int)rng_below(&s->rng, MAX_BACKUPS);
	if (slot < f->nbackups && f->backups[slot].dir != NULL) {
		rmrf(f->backups[slot].dir);
		free(f->backups[slot].dir);
	}
	f->backups[slot].node = i;
	f->backups[slot].dir = strdup(path);
	sim_log(s, "node %u backed up to %s (%llu bytes)", nd->id, path,
		(unsigned long long)bytes);
}

/* The node's store is replaced (restore) or lost (wipe); it restarts. */
static void replace_store(struct sim *s, int i, const char *backup,
			  struct rng *rng)
{
	struct node *nd = &s->nodes[i];

	if (nd->alive)
		node_crash(s, i);
	oracle_store_destroyed(s->oracle, i);
	rmrf(nd->dir);
	char prefix[600];
	snprintf(prefix, sizeof prefix, "%s/", nd->dir);
	disk_forget(prefix);
	if (backup != NULL && copy_dir(backup, nd->dir) != 0) {
		sim_fail(s, "node %u: cannot copy backup %s", nd->id, backup);
		return;
	}
	nd->restart_at = s->now + rng_range(rng, 200, 5000);
	sim_log(s, "node %u's store %s%s", nd->id,
		backup ? "replaced by the backup in " : "wiped",
		backup ? backup : "");
}

/* As the operator would: at once, healing or not. */
void faults_empty_store(struct sim *s, int i)
{
	s->emptied++;
	replace_store(s, i, NULL, &s->rng);
	if (!s->failed)
		node_start(s, i);
}

/* Another process opening a live store must be refused. */
static void second_process(struct sim *s, int i)
{
	struct node *nd = &s->nodes[i];
	struct store_options o = {.node_id = nd->id, .cluster = SIM_CLUSTER};
	struct store *x = NULL;
	struct err e;
	uint8_t mk[32];
	int rc;

	/* With the node's own master key, as a second msced on the same
	 * config would have: only the lock may keep it out. */
	o.master_key = node_master_key(s, nd->id, mk);
	err_clear(&e);
	rc = store_open(nd->dir, &o, &x, &e);
	if (rc == 0) {
		store_close(x);
		sim_fail(s, "a second store opened node %u's live data "
			    "directory",
			 nd->id);
	} else if (rc != MSCE_EBUSY) {
		sim_fail(s, "a second open of node %u's store: %s: %s", nd->id,
			 err_name(rc), e.msg);
	} else {
		s->second_refused++;
	}
}

/* Node i's configuration lists the joiner from now on. */
static void roll_out(struct sim *s, int i)
{
	int j = s->joiner;
	struct link *l;
	uint32_t ids[SIM_MAX_NODES];
	struct err e;

	if (s->member[i][j])
		return;
	s->member[i][j] = 1;
	s->rollouts++;
	if (s->nodes[i].alive &&
	    repl_reconfigure(s->nodes[i].repl, ids, node_members(s, i, ids),
			     &e))
		sim_fail(s, "node %u: reconfigure: %s", s->nodes[i].id, e.msg);
	l = net_link(s, i, j);
	if (!l->up && l->reconnect_at == 0)
		l->reconnect_at = s->now + rng_range(&s->rng, 10, 300);
	sim_log(s, "node %u's configuration now lists node %u",
		s->nodes[i].id, s->nodes[j].id);
}

static void membership_step(struct sim *s, int all)
{
	struct faults *f = s->faults;
	int pending[SIM_MAX_NODES], np = 0;

	if (s->joiner < 0)
		return;
	if (f->join_at != 0 && (all || s->now >= f->join_at)) {
		f->join_at = 0;
		s->joins++;
		sim_log(s, "node %u joins", s->nodes[s->joiner].id);
		node_start(s, s->joiner);
		f->next_rollout = s->now + rng_range(&s->rng, 100, 3000);
	}
	if (f->join_at != 0 || (!all && s->now < f->next_rollout))
		return;
	for (int i = 0; i < s->n; i++)
		if (!s->member[i][s->joiner])
			pending[np++] = i;
	if (np == 0)
		return;
	if (all) {
		for (int k = 0; k < np; k++)
			roll_out(s, pending[k]);
		return;
	}
	roll_out(s, pending[rng_below(&s->rng, (uint64_t)np)]);
	f->next_rollout = s->now + rng_range(&s->rng, 100, 4000);
}

static void heal_partition(struct sim *s)
{
	for (int a = 0; a < s->n; a++)
		for (int b = a + 1; b < s->n; b++) {
			struct link *l = net_link(s, a, b);
			if (!l->blocked)
				continue;
			l->blocked = 0;
			l->reconnect_at = s->now + rng_range(&s->rng, 10, 500);
		}
	s->faults->partition_until = 0;
	sim_log(s, "partition healed");
}

static void partition(struct sim *s)
{
	int side[SIM_MAX_NODES], count = 0;

	for (int i = 0; i < s->n; i++)
		count += side[i] = (int)rng_below(&s->rng, 2);
	if (count == 0 || count == s->n) {
		int i = (int)rng_below(&s->rng, (uint64_t)s->n);
		side[i] = !side[i];
	}
	for (int a = 0; a < s->n; a++)
		for (int b = a + 1; b < s->n; b++)
			if (side[a] != side[b]) {
				net_link(s, a, b)->blocked = 1;
				net_cut(s, a, b, 0);
			}
	s->faults->partition_until = s->now + rng_range(&s->rng, 500, 6000);
	s->partitions++;
	sim_log(s, "partition for %llu ms",
		(unsigned long long)(s->faults->partition_until - s->now));
}

static void set_offset(struct sim *s, struct node *nd, int64_t off)
{
	if (off > SIM_MAX_SKEW_MS || off < -SIM_MAX_SKEW_MS)
		s->clock_faults++;
	nd->offset = off;
	if (off > s->max_offset)
		s->max_offset = off;
	sim_log(s, "node %u clock offset %lld ms", nd->id, (long long)off);
}

static void clock_fault(struct sim *s)
{
	struct node *nd = &s->nodes[rng_below(&s->rng, (uint64_t)s->n)];
	uint64_t r = rng_below(&s->rng, 100);
	int64_t off;

	if (r < 20)
		off = 0;
	else if (r < 50)
		off = (int64_t)rng_range(&s->rng, 0, 3000);
	else if (r < 70)
		off = (int64_t)rng_range(&s->rng, 30000, 59000);
	else
		off = (int64_t)rng_range(&s->rng, 61000, 900000);
	if (rng_below(&s->rng, 3) == 0)
		off = -off;
	set_offset(s, nd, off);
}

static void congest(struct sim *s)
{
	int a = (int)rng_below(&s->rng, (uint64_t)s->n);
	int b = (int)rng_below(&s->rng, (uint64_t)s->n);
	struct link *l;

	if (a == b)
		return;
	l = net_link(s, a, b);
	l->dmin = rng_range(&s->rng, 300, 2000);
	l->dmax = l->dmin + rng_range(&s->rng, 0, 2000);
	l->slow_until = s->now + rng_range(&s->rng, 2000, 10000);
	sim_log(s, "link %d-%d congested: %llu..%llu ms", a + 1, b + 1,
		(unsigned long long)l->dmin, (unsigned long long)l->dmax);
}

static void uncongest(struct sim *s, int all)
{
	for (int a = 0; a < s->n; a++)
		for (int b = a + 1; b < s->n; b++) {
			struct link *l = net_link(s, a, b);
			if (l->slow_until == 0 ||
			    (!all && s->now < l->slow_until))
				continue;
			l->dmin = l->base_dmin;
			l->dmax = l->base_dmax;
			l->slow_until = 0;
		}
}

/* Links across sides go down and stay down; links within a side that a
 * strand phase had cut come back. */
static void strand_sides(struct sim *s, const int *side)
{
	for (int a = 0; a < s->n; a++)
		for (int b = a + 1; b < s->n; b++) {
			struct link *l = net_link(s, a, b);
			if (side[a] != side[b]) {
				l->blocked = 1;
				net_cut(s, a, b, 0);
			} else if (l->blocked) {
				l->blocked = 0;
				l->reconnect_at =
				    s->now +
				    rng_range(&s->faults->st.rng, 10, 300);
			}
		}
}

/* The victim's store goes: a backup of it if there is one (half the
 * time), else nothing. */
static void strand_replace(struct sim *s)
{
	struct faults *f = s->faults;
	struct strand *st = &f->st;
	const char *from = NULL;

	for (int i = 0; i < f->nbackups; i++)
		if (f->backups[i].node == st->victim)
			from = f->backups[i].dir;
	if (from != NULL && rng_below(&st->rng, 2))
		from = NULL;
	if (from != NULL)
		s->restores++;
	else
		s->wipes++;
	replace_store(s, st->victim, from, &st->rng);
}

/* A moment to begin: every node up with a writer and holding changes of
 * the victim's (so that every node knows that writer), and the holder
 * linked to the victim and holding all it wrote (its last writes are to
 * reach the holder from the log, not by snapshot).
 *
 * SIM_STRAND_FRESH=1 lifts the first condition: the victim may be a
 * writer born a moment ago that no other node has heard of yet. Then
 * a collector has never heard of the old incarnation, and must count it
 * all the same (mutant gc_unknown_writers; its test and sim_3nodes_fresh
 * run with it). Rare either way: the run must begin within the moment
 * before the others hear of the new writer. */
static int strand_ready(struct sim *s, int victim, int holder)
{
	struct node *v = &s->nodes[victim], *h = &s->nodes[holder];
	uint32_t w;

	for (int i = 0; i < s->n; i++)
		if (!s->nodes[i].alive ||
		    store_writer(s->nodes[i].store, NULL) == 0)
			return 0;
	w = store_writer(v->store, NULL);
	for (int i = 0; i < s->n && !getenv("SIM_STRAND_FRESH"); i++)
		if (store_vv_get(s->nodes[i].store, w).seq == 0)
			return 0;
	return net_link(s, victim, holder)->up &&
	       store_vv_get(h->store, w).seq == store_vv_get(v->store, w).seq;
}

static void strand_step(struct sim *s)
{
	struct faults *f = s->faults;
	struct strand *st = &f->st;
	int side[SIM_MAX_NODES];

	if (st->phase == 0) {
		if (st->next_at == 0 || s->now < st->next_at ||
		    f->partition_until != 0 || f->join_at != 0)
			return;
		st->victim = (int)rng_below(&st->rng, (uint64_t)s->n);
		st->holder = (int)rng_below(&st->rng, (uint64_t)s->n);
		if (st->holder == st->victim ||
		    !strand_ready(s, st->victim, st->holder))
			return;
		st->phase = 1;
		st->until = s->now + rng_range(&st->rng, 1000, 2000);
		s->stranded = st->victim;
		s->stranded_since = s->now;
		s->strands++;
		for (int i = 0; i < s->n; i++)
			side[i] = i == st->victim;
		sim_log(s, "strand: node %u alone, node %u to hold its writes",
			s->nodes[st->victim].id, s->nodes[st->holder].id);
		strand_sides(s, side);
		return;
	}
	if (st->phase == 4 && st->wait_writer) {
		/* Phase 4 lasts a while after the victim has a writer again
		 * (its new incarnation is known), or gives up. */
		struct node *v = &s->nodes[st->victim];
		if (v->alive && store_writer(v->store, NULL) != 0) {
			st->wait_writer = 0;
			st->until = s->now + rng_range(&st->rng, 3000, 8000);
		} else if (s->now >= st->until) {
			st->wait_writer = 0;
		}
		return;
	}
	if (s->now < st->until)
		return;
	switch (st->phase) {
	case 1:
		/* Clients go quiet: the statuses settle, so that every node
		 * has gossiped the deletes it holds. */
		s->stranded = -1;
		s->strand_quiet = 1;
		st->until = s->now + rng_range(&st->rng, 1500, 3000);
		sim_log(s, "strand: clients quiet");
		st->phase = 2;
		return;
	case 2:
		for (int i = 0; i < s->n; i++)
			side[i] = i == st->victim || i == st->holder;
		st->until = s->now + rng_range(&st->rng, 800, 2500);
		sim_log(s, "strand: nodes %u and %u apart from the rest",
			s->nodes[st->victim].id, s->nodes[st->holder].id);
		break;
	case 3:
		strand_replace(s);
		for (int i = 0; i < s->n; i++)
			side[i] = i == st->holder;
		st->until = s->now + 30000;
		st->wait_writer = 1;
		sim_log(s, "strand: node %u alone with node %u's old writes",
			s->nodes[st->holder].id, s->nodes[st->victim].id);
		break;
	default:
		for (int i = 0; i < s->n; i++)
			side[i] = 0;
		s->strand_quiet = 0;
		st->next_at = s->now + rng_range(&st->rng, 1000, 5000);
		sim_log(s, "strand ends");
		break;
	}
	st->phase = (st->phase + 1) % 5;
	strand_sides(s, side);
}

/* The clock redo's own backup of node i, taken when the redo starts (not
 * in the table the restore fault draws from, and never evicted): it holds
 * nothing written with the clock ahead. A backup that did, restored after
 * that incarnation was given up and retired, would bring back changes no
 * node had while tombstones they had not seen were collected. */
static int redo_backup(struct sim *s, int i)
{
	struct faults *f = s->faults;
	uint64_t bytes;
	struct err e;

	free(f->redo_dir);
	f->redo_dir = malloc(strlen(s->root) + 32);
	if (f->redo_dir == NULL) {
		sim_fail(s, "out of memory");
		return -1;
	}
	sprintf(f->redo_dir, "%s/%sredo-%d", s->root,
		node_master_key(s, s->nodes[i].id, (uint8_t[32]){0}) ? ""
								     : "clear-",
		++f->backup_seq);
	err_clear(&e);
	if (store_backup(s->nodes[i].store, f->redo_dir, &bytes, &e)) {
		sim_fail(s, "node %u: backup: %s", s->nodes[i].id, e.msg);
		return -1;
	}
	sim_log(s, "node %u backed up to %s (%llu bytes)", s->nodes[i].id,
		f->redo_dir, (unsigned long long)bytes);
	return 0;
}

/* Phase 0: a node's store is restored from a backup taken then, on a
 * clock minutes ahead. 1: it waits for a writer, born ahead. 2: it writes
 * for a few seconds, then its clock is set right and the same backup
 * restored again. */
static void clock_redo(struct sim *s)
{
	struct faults *f = s->faults;
	struct rng *r = &f->redo_rng;
	struct node *nd;
	int alive = 0;

	for (int i = 0; i < s->n; i++)
		alive += s->nodes[i].alive;
	if (f->redo_phase == 0) {
		int i = (int)rng_below(r, (uint64_t)s->n);
		if (!rng_ppm(r, f->redo_ppm) || alive < 2 ||
		    !s->nodes[i].alive || i == s->joiner || redo_backup(s, i))
			return;
		sim_log(s, "node %u: its store restored on a clock far ahead",
			s->nodes[i].id);
		set_offset(s, &s->nodes[i],
			   (int64_t)rng_range(r, SIM_MAX_SKEW_MS + 1000,
					      10 * SIM_MAX_SKEW_MS));
		s->restores++;
		replace_store(s, i, f->redo_dir, r);
		f->redo_node = i;
		f->redo_phase = 1;
		return;
	}
	nd = &s->nodes[f->redo_node];
	if (f->redo_phase == 1) {
		if (nd->alive && store_writer(nd->store, NULL) != 0) {
			f->redo_phase = 2;
			f->redo_at = s->now + rng_range(r, 2000, 8000);
		}
		return;
	}
	if (s->now < f->redo_at || alive < 2 || !nd->alive)
		return;
	sim_log(s, "node %u: its clock set right, its store restored", nd->id);
	set_offset(s, nd, (int64_t)rng_range(r, 0, 2000));
	s->restores++;
	replace_store(s, f->redo_node, f->redo_dir, r);
	f->redo_phase = 0;
}

void faults_step(struct sim *s)
{
	struct faults *f = s->faults;
	int alive = 0;

	membership_step(s, 0);
	for (int i = 0; i < s->n && !s->failed; i++) {
		struct node *nd = &s->nodes[i];
		if (!nd->alive && nd->restart_at <= s->now &&
		    !(i == s->joiner && f->join_at != 0))
			node_start(s, i);
		alive += nd->alive;
	}
	if (f->partition_until && s->now >= f->partition_until)
		heal_partition(s);
	if (f->st.phase != 0) {
		/* Nothing else strikes while a strand plays out. */
		uncongest(s, 0);
		strand_step(s);
		return;
	}
	if (rng_ppm(&s->rng, f->cut_ppm)) {
		int a = (int)rng_below(&s->rng, (uint64_t)s->n);
		int b = (int)rng_below(&s->rng, (uint64_t)s->n);
		if (a != b && net_link(s, a, b)->up) {
			net_cut(s, a, b, rng_range(&s->rng, 50, 3000));
			s->cuts++;
		}
	}
	if (f->partition_until == 0 && rng_ppm(&s->rng, f->part_ppm))
		partition(s);
	if (rng_ppm(&s->rng, f->crash_ppm) && alive > 1) {
		int i = (int)rng_below(&s->rng, (uint64_t)s->n);
		if (s->nodes[i].alive) {
			node_crash(s, i);
			s->nodes[i].restart_at =
			    s->now + rng_range(&s->rng, 200, 8000);
			s->crashes++;
		}
	}
	if (rng_ppm(&s->rng, f->clock_ppm))
		clock_fault(s);
	if (rng_ppm(&s->rng, f->backup_ppm)) {
		int i = (int)rng_below(&s->rng, (uint64_t)s->n);
		if (s->nodes[i].alive)
			take_backup(s, i);
	}
	if (f->nbackups > 0 && rng_ppm(&s->rng, f->restore_ppm) &&
	    alive > 1) {
		struct backup *b =
		    &f->backups[rng_below(&s->rng, (uint64_t)f->nbackups)];
		s->restores++;
		replace_store(s, b->node, b->dir, &s->rng);
	}
	if (rng_ppm(&s->rng, f->wipe_ppm) && alive > 1) {
		int i = (int)rng_below(&s->rng, (uint64_t)s->n);
		if (!(i == s->joiner && f->join_at != 0)) {
			s->wipes++;
			replace_store(s, i, NULL, &s->rng);
		}
	}
	if (rng_ppm(&s->rng, f->silent_ppm)) {
		/* The connection goes dead without a word (a middlebox lost
		 * it): only the ends' liveness check can find out. */
		int a = (int)rng_below(&s->rng, (uint64_t)s->n);
		int b = (int)rng_below(&s->rng, (uint64_t)s->n);
		struct link *l = a != b ? net_link(s, a, b) : NULL;
		if (l != NULL && l->up) {
			l->dead_conn = l->conn;
			s->silences++;
			sim_log(s, "link %d-%d goes silent (conn %llu)", a + 1,
				b + 1, (unsigned long long)l->conn);
		}
	}
	if (rng_ppm(&s->rng, f->second_ppm)) {
		int i = (int)rng_below(&s->rng, (uint64_t)s->n);
		if (s->nodes[i].alive)
			second_process(s, i);
	}
	if (f->full_ppm > 0 && rng_ppm(&f->full_rng, f->full_ppm)) {
		int i = (int)rng_below(&f->full_rng, (uint64_t)s->n);
		if (s->nodes[i].full_until <= s->now) {
			s->nodes[i].full_until =
			    s->now + rng_range(&f->full_rng, 200, 6000);
			s->fulls++;
			sim_log(s, "node %d: disk full until %llu", i + 1,
				(unsigned long long)s->nodes[i].full_until);
		}
	}
	if (f->redo_ppm > 0)
		clock_redo(s);
	uncongest(s, 0);
	if (rng_ppm(&s->rng, f->slow_ppm))
		congest(s);
	if (!s->failed)
		strand_step(s);
}

void faults_heal_all(struct sim *s)
{
	s->faults->st.phase = 0;
	s->stranded = -1;
	s->strand_quiet = 0;
	if (s->faults->partition_until)
		heal_partition(s);
	uncongest(s, 1);
	membership_step(s, 1);
	for (int i = 0; i < s->n && !s->failed; i++)
		if (!s->nodes[i].alive)
			node_start(s, i);
	for (int i = 0; i < s->n; i++) {
		s->nodes[i].offset = 0;
		s->nodes[i].full_until = 0;
	}
	if (s->max_offset > 0) {
		/* Like every machine being suspended for that long. */
		s->now += (uint64_t)s->max_offset + 2000;
		sim_log(s, "clocks fixed; time jumps %lld ms",
			(long long)s->max_offset + 2000);
	}
	/* Links cut with no reconnect pending come back too. */
	for (int a = 0; a < s->n; a++)
		for (int b = a + 1; b < s->n; b++) {
			struct link *l = net_link(s, a, b);
			l->blocked = 0;
			if (!l->up && l->reconnect_at == 0)
				l->reconnect_at =
				    s->now + rng_range(&s->rng, 10, 500);
		}
}
