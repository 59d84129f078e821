/* Faults, drawn per step with rates chosen per seed (some seeds get none
 * of a kind, some many): a single link cut, a partition (a random split
 * of the nodes, links across cut until it heals), a node crash with a
 * restart later, clock offsets, some within the skew limit and some far
 * beyond it (minutes ahead or behind), and congestion (a link's delay
 * rises to seconds for a while, so that long transfers such as snapshots
 * overlap everything else).
 *
 * faults_heal_all ends them all for the final quiescence; clocks are set
 * right and sim time jumps past the largest offset used, so that changes
 * stamped by a clock that ran ahead become acceptable everywhere. */
#include <stdlib.h>

#include "sim.h"

struct faults {
	uint64_t cut_ppm, part_ppm, crash_ppm, clock_ppm, slow_ppm;
	uint64_t partition_until; /* 0: no partition */
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
	return f;
}

void faults_free(struct faults *f)
{
	free(f);
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
	if (off > SIM_MAX_SKEW_MS || off < -SIM_MAX_SKEW_MS)
		s->clock_faults++;
	nd->offset = off;
	if (off > s->max_offset)
		s->max_offset = off;
	sim_log(s, "node %u clock offset %lld ms", nd->id, (long long)off);
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

void faults_step(struct sim *s)
{
	struct faults *f = s->faults;
	int alive = 0;

	for (int i = 0; i < s->n && !s->failed; i++) {
		struct node *nd = &s->nodes[i];
		if (!nd->alive && nd->restart_at <= s->now)
			node_start(s, i);
		alive += nd->alive;
	}
	if (f->partition_until && s->now >= f->partition_until)
		heal_partition(s);
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
	uncongest(s, 0);
	if (rng_ppm(&s->rng, f->slow_ppm))
		congest(s);
}

void faults_heal_all(struct sim *s)
{
	if (s->faults->partition_until)
		heal_partition(s);
	uncongest(s, 1);
	for (int i = 0; i < s->n && !s->failed; i++)
		if (!s->nodes[i].alive)
			node_start(s, i);
	for (int i = 0; i < s->n; i++)
		s->nodes[i].offset = 0;
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
