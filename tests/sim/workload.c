/* Client writes: small batches of puts and deletes at random live nodes,
 * over few keys and fields so that nodes write the same fields
 * concurrently. Most go to the unvalidated collection "t"; some to
 * "registration", whose rules refuse a few of them (an update creating a
 * record without its required fields, a district not in the list), which
 * must then not count.
 *
 * Every write store_write acknowledges is read back from the origin's log
 * and handed to the oracle. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim.h"

#define MAX_BATCH 3
#define MAX_FIELDS 4

struct workload {
	int nkeys;	    /* keys k0.. in "t" */
	uint64_t write_ppm; /* chance of a batch per step */
	uint64_t counter;   /* makes every value unique */
	uint8_t *buf;	    /* a change read back from the log */
	size_t len, cap;
	int copied;
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
	w->nkeys = (int)rng_range(&s->rng, 3, 12);
	w->write_ppm = rng_range(&s->rng, 150000, 450000);
	return w;
}

void workload_free(struct workload *w)
{
	if (w == NULL)
		return;
	free(w->buf);
	free(w);
}

static int copy_change(void *ctx, uint32_t origin, uint64_t seq,
		       const uint8_t *data, size_t len)
{
	struct workload *w = ctx;
	(void)origin;
	(void)seq;
	if (w->copied)
		return 1;
	if (len > w->cap) {
		uint8_t *b = realloc(w->buf, len);
		if (b == NULL)
			return 1;
		w->buf = b;
		w->cap = len;
	}
	memcpy(w->buf, data, len);
	w->len = len;
	w->copied = 1;
	return 0;
}

/* Reads the acknowledged change back from the origin's log. */
static void record_ack(struct sim *s, struct node *nd, uint64_t seq)
{
	struct workload *w = s->work;
	char why[256];
	struct err e;
	int rc;

	w->copied = 0;
	err_clear(&e);
	rc = store_log_read(nd->store, nd->id, seq, 1, (size_t)1 << 20,
			    copy_change, w, &e);
	if (rc || !w->copied) {
		sim_fail(s,
			 "node %u: acknowledged write %u/%llu not in its "
			 "log: %s",
			 nd->id, nd->id, (unsigned long long)seq,
			 rc ? e.msg : "no entry");
		return;
	}
	if (oracle_add(s->oracle, nd->id, seq, w->buf, w->len, why, sizeof why))
		sim_fail(s, "node %u: %s", nd->id, why);
	s->writes_acked++;
}

struct wbuf {
	struct store_write w[MAX_BATCH];
	struct store_field_in f[MAX_BATCH][MAX_FIELDS];
	char key[MAX_BATCH][16];
	char val[MAX_BATCH][MAX_FIELDS][40];
};

static void set_field(struct store_field_in *f, const char *name,
		      const char *val)
{
	memset(f, 0, sizeof *f);
	f->name = name;
	f->name_len = strlen(name);
	f->value = (const uint8_t *)val;
	f->value_len = strlen(val);
}

static void make_t(struct sim *s, struct wbuf *b, int i, uint32_t node)
{
	struct workload *w = s->work;
	struct store_write *x = &b->w[i];
	int order[5] = {0, 1, 2, 3, 4};
	int nf;

	snprintf(b->key[i], sizeof b->key[i], "k%d",
		 (int)rng_below(&s->rng, (uint64_t)w->nkeys));
	x->coll = "t";
	x->coll_len = 1;
	x->key = b->key[i];
	x->key_len = strlen(b->key[i]);
	if (rng_below(&s->rng, 100) < 12) {
		x->op = STORE_DELETE;
		return;
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
		set_field(&b->f[i][k], tfields[order[k]], b->val[i][k]);
	}
	x->fields = b->f[i];
	x->nfields = (size_t)nf;
}

static void make_registration(struct sim *s, struct wbuf *b, int i,
			      uint32_t node)
{
	struct workload *w = s->work;
	struct store_write *x = &b->w[i];
	const char *key = regkeys[rng_below(&s->rng, 4)];
	uint64_t r = rng_below(&s->rng, 100);
	size_t nf = 0;

	snprintf(b->key[i], sizeof b->key[i], "%s", key);
	x->coll = "registration";
	x->coll_len = strlen(x->coll);
	x->key = b->key[i];
	x->key_len = strlen(key);
	if (r < 10) {
		x->op = STORE_DELETE;
		return;
	}
	x->op = STORE_PUT;
	snprintf(b->val[i][0], sizeof b->val[i][0], "Person n%u.%llu", node,
		 (unsigned long long)++w->counter);
	set_field(&b->f[i][nf++], "name", b->val[i][0]);
	if (r < 45) {
		/* Creating: the required fields, matching the key. */
		snprintf(b->val[i][1], sizeof b->val[i][1], "%.3s", key);
		snprintf(b->val[i][2], sizeof b->val[i][2], "%s", key + 4);
		set_field(&b->f[i][nf++], "nationality", b->val[i][1]);
		set_field(&b->f[i][nf++], "document_type", "passport");
		set_field(&b->f[i][nf++], "document_number", b->val[i][2]);
	} else {
		/* An update: refused when it would create the record. */
		set_field(&b->f[i][nf++], "district",
			  districts[rng_below(&s->rng, 4)]);
		if (rng_below(&s->rng, 2)) {
			snprintf(b->val[i][2], sizeof b->val[i][2], "Z%llu",
				 (unsigned long long)w->counter);
			set_field(&b->f[i][nf++], "visa_type", b->val[i][2]);
		}
	}
	x->fields = b->f[i];
	x->nfields = nf;
}

void workload_step(struct sim *s)
{
	struct workload *w = s->work;
	int alive[SIM_MAX_NODES], na = 0, n, acked = 0;
	struct node *nd;
	struct wbuf b;
	struct store_written out[MAX_BATCH];
	struct err e;
	int rc;

	if (!rng_ppm(&s->rng, w->write_ppm))
		return;
	for (int i = 0; i < s->n; i++)
		if (s->nodes[i].alive)
			alive[na++] = i;
	if (na == 0)
		return;
	nd = &s->nodes[alive[rng_below(&s->rng, (uint64_t)na)]];
	n = (int)rng_range(&s->rng, 1, MAX_BATCH);
	memset(&b, 0, sizeof b);
	for (int i = 0; i < n; i++) {
		if (rng_below(&s->rng, 100) < 85)
			make_t(s, &b, i, nd->id);
		else
			make_registration(s, &b, i, nd->id);
	}
	err_clear(&e);
	rc = store_write(nd->store, b.w, (size_t)n, node_now(nd), out, &e);
	if (rc) {
		sim_fail(s, "node %u: store_write failed: %s: %s", nd->id,
			 err_name(rc), e.msg);
		return;
	}
	for (int i = 0; i < n && !s->failed; i++) {
		if (out[i].err.code != 0) {
			s->writes_refused++;
			sim_log(s, "node %u refused %s/%s: %s", nd->id,
				b.w[i].coll, b.w[i].key, out[i].err.msg);
			continue;
		}
		sim_log(s, "node %u %s %s/%s seq %llu hlc %llu", nd->id,
			b.w[i].op == STORE_DELETE ? "deletes" : "writes",
			b.w[i].coll, b.w[i].key, (unsigned long long)out[i].seq,
			(unsigned long long)out[i].hlc);
		record_ack(s, nd, out[i].seq);
		acked++;
	}
	if (acked && !s->failed)
		node_local_commit(s, nd->idx);
}
