/* SPDX-License-Identifier: Apache-2.0 */
/* Client writes: small batches of puts and deletes at random live nodes,
 * over few keys and fields so that nodes write the same fields
 * concurrently. Most go to the unvalidated collection "t"; some to
 * "registration", whose rules refuse a few of them (an update creating a
 * record without its required fields, a district not in the list), which
 * must then not count; with the delete-race kind, registrations are
 * deleted and updated often, so deletes race updates across partitions.
 * Records in "u" are written once and maybe deleted once, never written
 * again, so a delete that came back (a restore, a collected tombstone)
 * cannot hide behind a later write. While a strand's victim is cut off
 * (faults.c), it writes new "u" records and the others delete them,
 * unaware of them; then clients are quiet until the strand ends.
 * Some registration deletes are erasures (a delete that destroys the
 * record's data key wherever it is applied); the oracle takes them as
 * deletes for the state and checks the logs hold nothing readable of
 * what they erased.
 * With the oversize kind, some writes are over the per-change limit and
 * some grow records in "big" towards the per-record limits: the workload
 * works out from what it read whether the node must refuse them, and
 * checks that it does.
 *
 * Like a client, it reads each record just before writing it: that gives
 * the versions the write replaces and the bases it must declare (unless it
 * passes its own). What it asked and what the node answered go to the
 * oracle; nothing is read back from the log. A node whose write gate is
 * closed (a new or restored store catching up) gets no writes. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hlc.h"
#include "sim.h"

#define MAX_BATCH 3
#define MAX_FIELDS 24
#define BIG_VALUE 65536

struct workload {
	int nkeys;	    /* keys k0.. in "t" */
	uint64_t write_ppm; /* chance of a batch per step */
	uint64_t counter;   /* makes every value unique */
	int oversize, delrace;
	uint8_t *bigbuf;    /* values of "big" */
	uint64_t once[64];  /* "u" keys written and not yet deleted */
	uint32_t once_node[64]; /* which node wrote each, and when */
	uint64_t once_ms[64];
	int nonce;
	/* Its own draws, so that the other draws stay those of before: a
	 * client that declares a base after its write (a lie). */
	struct rng lie_rng;
};

static const char *const tfields[] = {"a", "b", "c", "d", "e"};
static const char *const regkeys[] = {"FRA:AB123", "DEU:C01X00T47",
				      "CHN:E12345678", "USA:X-99"};
static const char *const districts[] = {"futian", "nanshan", "baoan",
					"mars" /* refused */};

struct workload *workload_new(struct sim *s)
{
	struct workload *w = calloc(1, sizeof *w);
	if (w == NULL)
		return NULL;
	w->lie_rng.s = s->seed ^ UINT64_C(0x6c69656261736521);
	w->nkeys = (int)rng_range(&s->rng, 3, 12);
	w->write_ppm = rng_range(&s->rng, 150000, 450000);
	/* Drawn always, then masked, so other draws stay the same. */
	w->oversize = rng_below(&s->rng, 3) == 0;
	w->delrace = rng_below(&s->rng, 2) == 0;
	if (!(s->opt.faults & FAULT_OVERSIZE))
		w->oversize = 0;
	if (!(s->opt.faults & FAULT_DELRACE))
		w->delrace = 0;
	w->bigbuf = malloc(BIG_VALUE);
	if (w->bigbuf == NULL) {
		free(w);
		return NULL;
	}
	for (size_t i = 0; i < BIG_VALUE; i++)
		w->bigbuf[i] = (uint8_t)('a' + i % 26);
	return w;
}

void workload_free(struct workload *w)
{
	if (w == NULL)
		return;
	free(w->bigbuf);
	free(w);
}

/* ---- one write ---------------------------------------------------------- */

/* What the node holds of a record just before the write. */
struct seen {
	struct over_ver tomb;
	struct {
		char name[MSCE_MAX_FIELD_NAME + 1];
		struct over_ver v;
		size_t len;
	} f[MSCE_MAX_RECORD_FIELDS + 8];
	size_t nf;
};

static int seen_cb(void *ctx, const struct store_record_view *r)
{
	struct seen *sn = ctx;
	sn->tomb.hlc = r->rec->tomb.hlc;
	sn->tomb.origin = r->rec->tomb.origin;
	for (uint32_t i = 0; i < r->rec->nfields && sn->nf < 1032; i++) {
		const struct field_state *fs = &r->rec->fields[i];
		snprintf(sn->f[sn->nf].name, sizeof sn->f[sn->nf].name, "%.*s",
			 (int)fs->name_len, (const char *)fs->name);
		sn->f[sn->nf].v.hlc = fs->w.v.hlc;
		sn->f[sn->nf].v.origin = fs->w.v.origin;
		sn->f[sn->nf].len = fs->name_len + fs->w.value_len;
		sn->nf++;
	}
	return 0;
}

static const struct over_ver *seen_field(const struct seen *sn,
					 const char *name)
{
	for (size_t i = 0; i < sn->nf; i++)
		if (strcmp(sn->f[i].name, name) == 0)
			return &sn->f[i].v;
	return NULL;
}

struct wbuf {
	struct store_write w[MAX_BATCH];
	struct store_field_in f[MAX_BATCH][MAX_FIELDS];
	struct oracle_field of[MAX_BATCH][MAX_FIELDS];
	char key[MAX_BATCH][32];
	char name[MAX_BATCH][MAX_FIELDS][24];
	char val[MAX_BATCH][MAX_FIELDS][40];
	int expect_big[MAX_BATCH]; /* must be refused ETOOBIG */
	struct seen *seen[MAX_BATCH];
};

static void set_field(struct store_field_in *f, const char *name,
		      const uint8_t *val, size_t len)
{
	memset(f, 0, sizeof *f);
	f->name = name;
	f->name_len = strlen(name);
	f->value = val;
	f->value_len = len;
}

static void set_text(struct store_field_in *f, const char *name,
		     const char *val)
{
	set_field(f, name, (const uint8_t *)val, strlen(val));
}

static int key_taken(const struct wbuf *b, int upto, const char *coll,
		     const char *key)
{
	for (int i = 0; i < upto; i++)
		if (strcmp(b->w[i].coll, coll) == 0 &&
		    strcmp(b->key[i], key) == 0)
			return 1;
	return 0;
}

static int make_t(struct sim *s, struct wbuf *b, int i, uint32_t node)
{
	struct workload *w = s->work;
	struct store_write *x = &b->w[i];
	int order[5] = {0, 1, 2, 3, 4};
	int nf;

	snprintf(b->key[i], sizeof b->key[i], "k%d",
		 (int)rng_below(&s->rng, (uint64_t)w->nkeys));
	x->coll = "t";
	if (key_taken(b, i, x->coll, b->key[i]))
		return -1;
	x->coll_len = 1;
	x->key = b->key[i];
	x->key_len = strlen(b->key[i]);
	if (rng_below(&s->rng, 100) < 12) {
		x->op = STORE_DELETE;
		return 0;
	}
	x->op = STORE_PUT;
	nf = (int)rng_range(&s->rng, 1, 3);
	for (int k = 0; k < nf; k++) {
		int j = k + (int)rng_below(&s->rng, (uint64_t)(5 - k));
		int t = order[k];
		order[k] = order[j];
		order[j] = t;
		snprintf(b->val[i][k], sizeof b->val[i][k], "n%u.%llu", node,
			 (unsigned long long)++w->counter);
		set_text(&b->f[i][k], tfields[order[k]], b->val[i][k]);
	}
	x->fields = b->f[i];
	x->nfields = (size_t)nf;
	return 0;
}

static int make_registration(struct sim *s, struct wbuf *b, int i,
			     uint32_t node)
{
	struct workload *w = s->work;
	struct store_write *x = &b->w[i];
	const char *key = regkeys[rng_below(&s->rng, 4)];
	uint64_t r = rng_below(&s->rng, 100);
	size_t nf = 0;

	snprintf(b->key[i], sizeof b->key[i], "%s", key);
	x->coll = "registration";
	if (key_taken(b, i, x->coll, b->key[i]))
		return -1;
	x->coll_len = strlen(x->coll);
	x->key = b->key[i];
	x->key_len = strlen(key);
	if (r < (w->delrace ? 25u : 10u)) {
		x->op = STORE_DELETE;
		/* From the draw already made, not a new one: the rest of
		 * the run (and the seeds that expose each mutant) stay as
		 * they were before erasures. */
		x->erase = r % 3 == 0 && !getenv("SIM_NO_ERASE");
		return 0;
	}
	x->op = STORE_PUT;
	snprintf(b->val[i][0], sizeof b->val[i][0], "Person n%u.%llu", node,
		 (unsigned long long)++w->counter);
	set_text(&b->f[i][nf++], "name", b->val[i][0]);
	if (r < 45) {
		/* Creating: the required fields, matching the key. */
		snprintf(b->val[i][1], sizeof b->val[i][1], "%.3s", key);
		snprintf(b->val[i][2], sizeof b->val[i][2], "%s", key + 4);
		set_text(&b->f[i][nf++], "nationality", b->val[i][1]);
		set_text(&b->f[i][nf++], "document_type", "passport");
		set_text(&b->f[i][nf++], "document_number", b->val[i][2]);
	} else {
		/* An update: refused when it would create the record. */
		set_text(&b->f[i][nf++], "district",
			 districts[rng_below(&s->rng, 4)]);
		if (rng_below(&s->rng, 2)) {
			snprintf(b->val[i][2], sizeof b->val[i][2], "Z%llu",
				 (unsigned long long)w->counter);
			set_text(&b->f[i][nf++], "visa_type", b->val[i][2]);
		}
	}
	x->fields = b->f[i];
	x->nfields = nf;
	return 0;
}

/* The newest "u" record a strand's victim wrote while cut off, if this
 * node is not the victim; else -1. */
static int stranded_once(struct sim *s, uint32_t node)
{
	struct workload *w = s->work;
	uint32_t victim;

	if (s->stranded < 0)
		return -1;
	victim = s->nodes[s->stranded].id;
	for (int k = w->nonce; node != victim && k-- > 0;)
		if (w->once_node[k] == victim &&
		    w->once_ms[k] >= s->stranded_since)
			return k;
	return -1;
}

/* A record written once ("u" + a fresh number), or one of them deleted. */
static int make_once(struct sim *s, struct wbuf *b, int i, uint32_t node)
{
	struct workload *w = s->work;
	struct store_write *x = &b->w[i];
	int del = w->nonce > 0 && (w->nonce == 64 || rng_below(&s->rng, 2));
	int pick = stranded_once(s, node);

	/* The victim makes records for the others to delete. */
	if (s->stranded >= 0 && node == s->nodes[s->stranded].id &&
	    w->nonce < 64)
		del = 0;

	x->coll = "u";
	x->coll_len = 1;
	if (del || pick >= 0) {
		int k = (int)rng_below(&s->rng, (uint64_t)w->nonce);
		if (pick >= 0)
			k = pick;
		snprintf(b->key[i], sizeof b->key[i], "u%llu",
			 (unsigned long long)w->once[k]);
		if (key_taken(b, i, x->coll, b->key[i]))
			return -1;
		w->nonce--;
		w->once[k] = w->once[w->nonce];
		w->once_node[k] = w->once_node[w->nonce];
		w->once_ms[k] = w->once_ms[w->nonce];
		x->op = STORE_DELETE;
	} else {
		w->once_node[w->nonce] = node;
		w->once_ms[w->nonce] = s->now;
		w->once[w->nonce++] = ++w->counter;
		snprintf(b->key[i], sizeof b->key[i], "u%llu",
			 (unsigned long long)w->counter);
		x->op = STORE_PUT;
		snprintf(b->val[i][0], sizeof b->val[i][0], "n%u.%llu", node,
			 (unsigned long long)w->counter);
		set_text(&b->f[i][0], "v", b->val[i][0]);
		x->fields = b->f[i];
		x->nfields = 1;
	}
	x->key = b->key[i];
	x->key_len = strlen(b->key[i]);
	return 0;
}

/* Big values in "big": sometimes one change over the per-change limit,
 * else growth towards the per-record limits. */
static int make_big(struct sim *s, struct wbuf *b, int i)
{
	struct workload *w = s->work;
	struct store_write *x = &b->w[i];
	int over = rng_below(&s->rng, 6) == 0;
	size_t nf = over ? 20 : (size_t)rng_range(&s->rng, 1, 8);
	size_t len = over ? BIG_VALUE : (size_t)rng_range(&s->rng, 1, 24000);

	snprintf(b->key[i], sizeof b->key[i], "b%d",
		 (int)rng_below(&s->rng, 3));
	x->coll = "big";
	if (key_taken(b, i, x->coll, b->key[i]))
		return -1;
	x->coll_len = 3;
	x->key = b->key[i];
	x->key_len = strlen(b->key[i]);
	x->op = STORE_PUT;
	for (size_t k = 0; k < nf; k++) {
		/* Mostly new fields, some rewritten. */
		snprintf(b->name[i][k], sizeof b->name[i][k], "n%llu",
			 rng_below(&s->rng, 4) == 0
			     ? (unsigned long long)rng_below(&s->rng, 50)
			     : (unsigned long long)++w->counter);
		/* A fresh counter value is a name no earlier field has. */
		for (size_t j = 0; j < k; j++)
			if (strcmp(b->name[i][j], b->name[i][k]) == 0) {
				snprintf(b->name[i][k], sizeof b->name[i][k],
					 "n%llu",
					 (unsigned long long)++w->counter);
				j = (size_t)-1;
			}
		set_field(&b->f[i][k], b->name[i][k],
			  w->bigbuf + rng_below(&s->rng, BIG_VALUE - len + 1),
			  len);
	}
	x->fields = b->f[i];
	x->nfields = nf;
	b->expect_big[i] = over ? 1 : -1; /* -1: decided after the read */
	return 0;
}

/* Would the node refuse this write as too large, given what it holds? */
static int over_record_limits(const struct store_write *x,
			      const struct seen *sn)
{
	size_t fields = sn->nf, bytes = 0;
	for (size_t i = 0; i < sn->nf; i++)
		bytes += sn->f[i].len;
	for (size_t i = 0; i < x->nfields; i++) {
		char name[MSCE_MAX_FIELD_NAME + 1];
		int found = 0;
		snprintf(name, sizeof name, "%.*s", (int)x->fields[i].name_len,
			 x->fields[i].name);
		for (size_t k = 0; k < sn->nf && !found; k++)
			if (strcmp(sn->f[k].name, name) == 0) {
				bytes -= sn->f[k].len;
				found = 1;
			}
		fields += !found;
		bytes += x->fields[i].name_len + x->fields[i].value_len;
	}
	return fields > MSCE_MAX_RECORD_FIELDS || bytes > MSCE_MAX_RECORD;
}

/* The latest ms a write at nd to the record read into sn could be
 * stamped after: its clock, its high-water, the record's versions. */
static uint64_t latest_ms(struct node *nd, const struct seen *sn)
{
	uint64_t ms = node_now(nd);

	if (hlc_ms(store_hlc_committed(nd->store)) > ms)
		ms = hlc_ms(store_hlc_committed(nd->store));
	if (hlc_ms(sn->tomb.hlc) > ms)
		ms = hlc_ms(sn->tomb.hlc);
	for (size_t k = 0; k < sn->nf; k++)
		if (hlc_ms(sn->f[k].v.hlc) > ms)
			ms = hlc_ms(sn->f[k].v.hlc);
	return ms;
}

/* Now and then, after a batch, a client that lies: a put whose base is
 * after anything the node could stamp it with (or the end of time), which
 * would hide the conflicts of every write before it. It must be refused
 * EINVAL, and leave nothing behind (not even a moved clock), so the run
 * goes on as it would without it. Draws only on lie_rng. */
static void lie_step(struct sim *s, struct node *nd)
{
	struct workload *w = s->work;
	struct seen *sn;
	struct store_field_in f;
	struct store_write x;
	struct store_written out;
	struct err e;
	int rc;

	if (rng_below(&w->lie_rng, 20) != 0 ||
	    (sn = calloc(1, sizeof *sn)) == NULL)
		return;
	err_clear(&e);
	rc = store_get_state(nd->store, "t", 1, "k0", 2, seen_cb, sn, &e);
	if (rc == 0 || rc == MSCE_ENOTFOUND) {
		uint64_t ahead = rng_range(&w->lie_rng, 1000, 1000000000);
		set_field(&f, "a", (const uint8_t *)"lie", 3);
		f.has_base = 1;
		f.base.origin = nd->id;
		f.base.hlc = rng_below(&w->lie_rng, 2)
				 ? UINT64_MAX
				 : hlc_make(latest_ms(nd, sn) + ahead, 0);
		memset(&x, 0, sizeof x);
		x.op = STORE_PUT;
		x.coll = "t";
		x.coll_len = 1;
		x.key = "k0";
		x.key_len = 2;
		x.fields = &f;
		x.nfields = 1;
		err_clear(&e);
		rc = store_write(nd->store, &x, 1, node_now(nd), &out, &e);
		if (rc == 0 && out.err.code != MSCE_EINVAL)
			sim_fail(s, "node %u: t/k0 with a base after the write "
				    "was %s",
				 nd->id, out.err.code ? out.err.msg : "accepted");
		else if (rc == 0)
			s->bases_refused++;
		else if (rc != MSCE_EBUSY)
			sim_fail(s, "node %u: store_write failed: %s: %s",
				 nd->id, err_name(rc), e.msg);
	}
	free(sn);
}

/* Reads the record as the node holds it, then chooses the bases. */
static int prepare(struct sim *s, struct node *nd, struct wbuf *b, int i)
{
	struct store_write *x = &b->w[i];
	struct seen *sn = b->seen[i];
	struct err e;
	int rc;

	memset(sn, 0, sizeof *sn);
	err_clear(&e);
	rc = store_get_state(nd->store, x->coll, x->coll_len, x->key,
			     x->key_len, seen_cb, sn, &e);
	if (rc != 0 && rc != MSCE_ENOTFOUND) {
		sim_fail(s, "node %u: reading %s/%s: %s", nd->id, x->coll,
			 x->key, e.msg);
		return -1;
	}
	for (size_t k = 0; k < x->nfields; k++) {
		struct store_field_in *f = &b->f[i][k];
		struct oracle_field *of = &b->of[i][k];
		const struct over_ver *cur;
		char name[MSCE_MAX_FIELD_NAME + 1];

		snprintf(name, sizeof name, "%.*s", (int)f->name_len, f->name);
		cur = seen_field(sn, name);
		of->name = f->name;
		of->val = f->value;
		of->len = f->value_len;
		of->replaces = cur ? *cur : sn->tomb;
		of->base = of->replaces;
		/* Sometimes the client says what it saw, and sometimes it
		 * saw nothing (an old form): a conflict unless it wins. */
		if (rng_below(&s->rng, 10) < 3) {
			f->has_base = 1;
			if (rng_below(&s->rng, 4) == 0)
				of->base.hlc = 0, of->base.origin = 0;
			f->base.hlc = of->base.hlc;
			f->base.origin = of->base.origin;
		}
	}
	if (b->expect_big[i] == -1)
		b->expect_big[i] = over_record_limits(x, sn);
	return 0;
}

void workload_step(struct sim *s)
{
	struct workload *w = s->work;
	int alive[SIM_MAX_NODES], na = 0, n, acked = 0, victim;
	struct node *nd;
	struct wbuf *b;
	struct store_written out[MAX_BATCH];
	char why[512];
	struct err e;
	int rc;

	if (s->strand_quiet || !rng_ppm(&s->rng, w->write_ppm))
		return;
	for (int i = 0; i < s->n; i++)
		if (s->nodes[i].alive)
			alive[na++] = i;
	if (na == 0)
		return;
	nd = &s->nodes[alive[rng_below(&s->rng, (uint64_t)na)]];
	/* A strand's victim takes half the batches (few enough that its
	 * changes reach the holder from the log, not by snapshot), and
	 * writes "u" records more often. */
	victim = nd->idx == s->stranded;
	if (victim && rng_below(&s->rng, 2))
		return;
	if (repl_write_gate(nd->repl, why, sizeof why) != 0) {
		s->writes_gated++;
		return;
	}
	b = calloc(1, sizeof *b);
	for (int i = 0; b != NULL && i < MAX_BATCH; i++)
		if ((b->seen[i] = malloc(sizeof(struct seen))) == NULL)
			goto oom;
	if (b == NULL)
		goto oom;
	n = (int)rng_range(&s->rng, 1, MAX_BATCH);
	for (int i = 0; i < n; i++) {
		uint64_t r = rng_below(&s->rng, 100);
		int made;
		if (w->oversize && r < 6)
			made = make_big(s, b, i);
		else if (r < 20 || (victim && r < 60))
			made = make_once(s, b, i, nd->id);
		else if (r < 85)
			made = make_t(s, b, i, nd->id);
		else
			made = make_registration(s, b, i, nd->id);
		if (made < 0) { /* a key twice in one batch: stop here */
			n = i;
			break;
		}
		if (prepare(s, nd, b, i))
			goto out;
	}
	if (n == 0)
		goto out;
	err_clear(&e);
	rc = store_write(nd->store, b->w, (size_t)n, node_now(nd), out, &e);
	if (rc == MSCE_EBUSY) { /* the map cannot grow during a snapshot */
		s->writes_refused += (uint64_t)n;
		goto out;
	}
	if (rc) {
		sim_fail(s, "node %u: store_write failed: %s: %s", nd->id,
			 err_name(rc), e.msg);
		goto out;
	}
	for (int i = 0; i < n && !s->failed; i++) {
		const struct store_write *x = &b->w[i];
		int big = out[i].err.code == MSCE_ETOOBIG;
		if (b->expect_big[i] == 1 && !big) {
			sim_fail(s,
				 "node %u: %s/%s over the size limits was %s",
				 nd->id, x->coll, x->key,
				 out[i].err.code ? out[i].err.msg : "accepted");
			break;
		}
		if (b->expect_big[i] == 0 && big) {
			sim_fail(s,
				 "node %u: %s/%s within the size limits was "
				 "refused: %s",
				 nd->id, x->coll, x->key, out[i].err.msg);
			break;
		}
		if (out[i].err.code != 0) {
			s->writes_refused += !big;
			s->oversize_refused += big;
			sim_log(s, "node %u refused %s/%s: %s", nd->id, x->coll,
				x->key, out[i].err.msg);
			continue;
		}
		struct oracle_write ow = {
		    .node_id = nd->id,
		    .origin = out[i].origin,
		    .seq = out[i].seq,
		    .hlc = out[i].hlc,
		    .coll = x->coll,
		    .key = x->key,
		    .del = x->op == STORE_DELETE,
		    .erase = x->op == STORE_DELETE && x->erase,
		    .replaces_tomb = b->seen[i]->tomb,
		    .fields = b->of[i],
		    .nfields = x->op == STORE_DELETE ? 0 : x->nfields,
		};
		if (ow.del)
			for (size_t k = 0; k < b->seen[i]->nf; k++)
				if (b->seen[i]->f[k].v.hlc > ow.replaces_tomb.hlc ||
				    (b->seen[i]->f[k].v.hlc ==
					 ow.replaces_tomb.hlc &&
				     b->seen[i]->f[k].v.origin >
					 ow.replaces_tomb.origin))
					ow.replaces_tomb = b->seen[i]->f[k].v;
		sim_log(s, "node %u %s %s/%s as %u/%llu hlc %llu", nd->id,
			ow.erase ? "erases" : ow.del ? "deletes" : "writes",
			x->coll, x->key,
			ow.origin, (unsigned long long)ow.seq,
			(unsigned long long)ow.hlc);
		if (oracle_ack(s->oracle, nd->idx, &ow, why, sizeof why)) {
			sim_fail(s, "%s", why);
			break;
		}
		s->writes_acked++;
		s->erasures += ow.erase;
		acked++;
	}
	if (acked && !s->failed)
		node_local_commit(s, nd->idx);
	if (!s->failed)
		lie_step(s, nd);
	goto out;
oom:
	sim_fail(s, "out of memory in the workload");
out:
	for (int i = 0; b != NULL && i < MAX_BATCH; i++)
		free(b->seen[i]);
	free(b);
}
