/* SPDX-License-Identifier: Apache-2.0 */
/* msce-bench store: durable apply rate of registration-sized changes from
 * another origin into a fresh store, and the local-write rate, each in the
 * clear and sealed under a master key (encryption at rest), alternately in
 * the same run (--rounds N: the best of N each). Every batch is one
 * durable LMDB commit, as in the node. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"
#include "hlc.h"
#include "msce.pb-c.h"
#include "seg.h"
#include "store.h"

#include <lmdb.h>

#define MAXF 16

static char *tmpdir(void)
{
	char tmpl[512];
	if (snprintf(tmpl, sizeof tmpl, "%s/msce-bench-XXXXXX", bench_tmp()) >=
	    (int)sizeof tmpl)
		return NULL;
	char *d = mkdtemp(tmpl);
	return d ? strdup(d) : NULL;
}

static void rmrf(const char *d)
{
	char cmd[512];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", d);
	if (system(cmd) != 0)
		fprintf(stderr, "warning: could not remove %s\n", d);
}

/* The yardstick: raw LMDB puts of value_size-byte values under the same
 * keys, batch and durability, with nothing of ours around them. */
static double raw_lmdb_rate(long records, long batch, int value_size)
{
	char *dir = tmpdir();
	MDB_env *env;
	MDB_dbi dbi;
	MDB_txn *txn;
	char key[64], *val = calloc(1, (size_t)value_size);
	double start;

	memset(val, 'x', (size_t)value_size);
	mdb_env_create(&env);
	mdb_env_set_mapsize(env, (size_t)4 << 30);
	if (mdb_env_open(env, dir, MDB_NOTLS, 0640)) {
		fprintf(stderr, "msce-bench: raw LMDB open failed\n");
		exit(1);
	}
	mdb_txn_begin(env, NULL, 0, &txn);
	mdb_dbi_open(txn, NULL, 0, &dbi);
	mdb_txn_commit(txn);
	start = bench_now();
	for (long i = 0; i < records; i += batch) {
		mdb_txn_begin(env, NULL, 0, &txn);
		for (long j = i; j < i + batch && j < records; j++) {
			static const char *const nat[] = {"FRA", "DEU", "USA",
							  "GBR", "JPN"};
			int n =
			    snprintf(key, sizeof key, "registration%c%s:P%09ld",
				     0, nat[j % 5], j);
			MDB_val k = {(size_t)n, key},
				v = {(size_t)value_size, val};
			mdb_put(txn, dbi, &k, &v, 0);
		}
		if (mdb_txn_commit(txn)) {
			fprintf(stderr, "msce-bench: raw LMDB commit failed\n");
			exit(1);
		}
	}
	double rate = (double)records / (bench_now() - start);
	mdb_env_close(env);
	rmrf(dir);
	free(dir);
	free(val);
	return rate;
}

/* Applies the signed changes into a fresh store (sealed when o has a
 * master key). Seconds, or -1; *bpr: the store's bytes per record. */
static double apply_run(const struct store_options *opts,
			const struct store_key *skeys,
			const struct store_blob *blobs, long records,
			long batch, const struct seg *segs,
			const size_t *seg_at, size_t ng, double *bpr)
{
	char *dir = tmpdir();
	struct store_options o = *opts;
	struct store *s;
	struct err e;
	if (store_open(dir, &o, &s, &e) ||
	    store_set_keys(s, skeys, 1, &e) ||
	    store_set_writer(s, o.node_id, 0, 1, &e)) {
		fprintf(stderr, "msce-bench: %s\n", e.msg);
		return -1;
	}
	double start = bench_now();
	size_t gi = 0;
	for (long i = 0; i < records; i += batch) {
		size_t n = (size_t)(i + batch > records ? records - i : batch);
		size_t g0 = gi;
		while (gi < ng && seg_at[gi] == (size_t)i)
			gi++;
		struct store_apply_result res;
		if (store_apply_signed(s, blobs + i, n, segs + g0, gi - g0,
				       bench_wall_ms(), 60000, &res, &e)) {
			fprintf(stderr, "msce-bench: apply: %s\n", e.msg);
			return -1;
		}
	}
	double secs = bench_now() - start;
	*bpr = (double)store_size(s) / (double)records;
	store_close(s);
	rmrf(dir);
	free(dir);
	return secs;
}

/* Local writes into a fresh store: validated, sequenced and logged at
 * this node (sealed when o has a master key). Seconds, or -1. */
static double write_run(const struct store_options *opts,
			const struct store_write *w, long records, long batch,
			struct store_written *out, long *refused)
{
	char *dir = tmpdir();
	struct store_options o = *opts;
	struct store *s;
	struct err e;
	if (store_open(dir, &o, &s, &e) ||
	    store_set_writer(s, o.node_id, 0, 1, &e)) {
		fprintf(stderr, "msce-bench: %s\n", e.msg);
		return -1;
	}
	double start = bench_now();
	for (long i = 0; i < records; i += batch) {
		size_t n = (size_t)(i + batch > records ? records - i : batch);
		if (store_write(s, w + i, n, bench_wall_ms(), out, &e)) {
			fprintf(stderr, "msce-bench: write: %s\n", e.msg);
			return -1;
		}
		for (size_t j = 0; j < n; j++)
			if (out[j].err.code) {
				if ((*refused)++ == 0)
					fprintf(stderr, "refused: %s\n",
						out[j].err.msg);
			}
	}
	double secs = bench_now() - start;
	store_close(s);
	rmrf(dir);
	free(dir);
	return secs;
}

int bench_store(int argc, char **argv)
{
	long records = 200000, batch = 1000;
	int value_size = 300, json = 0, rounds = 1;
	static struct option opts[] = {{"records", 1, 0, 'n'},
				       {"value-size", 1, 0, 'v'},
				       {"batch", 1, 0, 'b'},
				       {"json", 0, 0, 'j'},
				       {"rounds", 1, 0, 'r'},
				       {0, 0, 0, 0}};
	int c;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'n':
			records = atol(optarg);
			break;
		case 'v':
			value_size = atoi(optarg);
			break;
		case 'b':
			batch = atol(optarg);
			break;
		case 'j':
			json = 1;
			break;
		case 'r':
			rounds = atoi(optarg);
			break;
		default:
			return 2;
		}
	}
	if (records <= 0 || batch <= 0 || rounds < 1 || value_size < 50 ||
	    value_size > 3000) {
		fprintf(stderr, "msce-bench store: --records and --batch must "
				"be positive, --value-size 50..3000\n");
		return 2;
	}

	/* Encode the changes up front, as they would arrive off the wire. */
	static char names[MAXF][32], values[MAXF][256];
	uint8_t **enc = malloc((size_t)records * sizeof *enc);
	struct store_blob *blobs = malloc((size_t)records * sizeof *blobs);
	size_t bytes = 0;
	uint64_t t0 = bench_wall_ms();
	for (long i = 0; i < records; i++) {
		Msce__Change ch = MSCE__CHANGE__INIT;
		Msce__FieldWrite fw[MAXF], *fp[MAXF];
		char key[64];
		int nf = bench_registration((uint64_t)i, value_size, names,
					    values, MAXF);
		snprintf(key, sizeof key, "%.3s:%.40s", values[1], values[3]);
		ch.origin = 2;
		ch.seq = (uint64_t)i + 1;
		ch.hlc =
		    hlc_make(t0 + (uint64_t)i / 60000, (uint32_t)(i % 60000));
		ch.collection = "registration";
		ch.key = key;
		for (int k = 0; k < nf; k++) {
			msce__field_write__init(&fw[k]);
			fw[k].name = names[k];
			fw[k].value.data = (uint8_t *)values[k];
			fw[k].value.len = strlen(values[k]);
			fp[k] = &fw[k];
		}
		ch.n_fields = (size_t)nf;
		ch.fields = fp;
		blobs[i].len = msce__change__get_packed_size(&ch);
		enc[i] = malloc(blobs[i].len);
		msce__change__pack(&ch, enc[i]);
		blobs[i].data = enc[i];
		blobs[i].pre = NULL;
		bytes += blobs[i].len;
	}

	/* Signed as node 2 signs them: segments of up to 256 changes, as a
	 * commit of a batch cuts them. The node checks them as msced does. */
	uint8_t pk1[32], sk1[64], pk2[32], sk2[64], link[32] = {1};
	seg_keypair_from_link(link, pk1, sk1);
	link[0] = 2;
	seg_keypair_from_link(link, pk2, sk2);
	size_t nsegs = (size_t)(records / SEG_MAX_CHANGES + records / batch + 2);
	struct seg *segs = calloc(nsegs, sizeof *segs);
	size_t *seg_at = calloc(nsegs, sizeof *seg_at); /* first segment of a batch */
	size_t ng = 0;
	for (long i = 0; i < records; i += batch) {
		long end = i + batch > records ? records : i + batch;
		for (long a = i; a < end; a += SEG_MAX_CHANGES) {
			long b = a + SEG_MAX_CHANGES > end ? end : a + SEG_MAX_CHANGES;
			struct seg *g = &segs[ng];
			struct seg_hasher h;
			Msce__Change *last = msce__change__unpack(
			    NULL, blobs[b - 1].len, blobs[b - 1].data);
			g->origin = 2;
			g->first = (uint64_t)a + 1;
			g->last = (uint64_t)b;
			g->last_hlc = last->hlc;
			msce__change__free_unpacked(last, NULL);
			seg_hash_begin(&h);
			for (long q = a; q < b; q++)
				seg_hash_change(&h, blobs[q].data, blobs[q].len);
			seg_hash_end(&h, g->hash);
			seg_sign(g, sk2);
			seg_at[ng] = (size_t)i;
			ng++;
		}
	}
	struct store_key skeys[1] = {{.node = 2}};
	memcpy(skeys[0].pk, pk2, 32);

	/* Clear and sealed (a master key, as a center with master_key
	 * has), alternately, rounds times each: the best of each. */
	uint8_t mk[32];
	for (int k = 0; k < 32; k++)
		mk[k] = (uint8_t)(0x5a + k);
	struct store_options o = {.node_id = 1, .cluster = "bench",
				  .sign_sk = sk1};
	struct store_options os = o;
	os.master_key = mk;
	double apply_s = 0, apply_sealed_s = 0, bytes_per_record = 0,
	       bytes_per_record_sealed = 0;
	for (int round = 0; round < rounds; round++) {
		double a = apply_run(&o, skeys, blobs, records, batch, segs,
				     seg_at, ng, &bytes_per_record);
		double b = apply_run(&os, skeys, blobs, records, batch, segs,
				     seg_at, ng, &bytes_per_record_sealed);
		if (a < 0 || b < 0)
			return 1;
		if (round == 0 || a < apply_s)
			apply_s = a;
		if (round == 0 || b < apply_sealed_s)
			apply_sealed_s = b;
	}
	free(segs);
	free(seg_at);

	/* Local writes: validated, sequenced and logged at this node. The
	 * requests are made before the clock starts, as a client's are: the
	 * figure is the store's work, like the raw yardstick's. */
	struct store_write *w = calloc((size_t)records, sizeof *w);
	struct store_written *out = calloc((size_t)batch, sizeof *out);
	struct store_field_in(*f)[MAXF] = calloc((size_t)records, sizeof *f);
	char(*vals)[MAXF][256] = calloc((size_t)records, sizeof *vals);
	char(*keys)[64] = calloc((size_t)records, sizeof *keys);
	long refused = 0;
	for (long j = 0; j < records; j++) {
		int nf = bench_registration((uint64_t)j, value_size, names,
					    vals[j], MAXF);
		snprintf(keys[j], 64, "%.3s:%.40s", vals[j][1], vals[j][3]);
		for (int k = 0; k < nf; k++)
			f[j][k] = (struct store_field_in){
			    names[k], strlen(names[k]),
			    (const uint8_t *)vals[j][k], strlen(vals[j][k]),
			    0,	      {0, 0}};
		w[j] = (struct store_write){
		    STORE_PUT, "registration", 12, keys[j], strlen(keys[j]),
		    f[j],      (size_t)nf, 0};
	}
	double write_s = 0, write_sealed_s = 0;
	for (int round = 0; round < rounds; round++) {
		double a = write_run(&o, w, records, batch, out, &refused);
		double b = write_run(&os, w, records, batch, out, &refused);
		if (a < 0 || b < 0)
			return 1;
		if (round == 0 || a < write_s)
			write_s = a;
		if (round == 0 || b < write_sealed_s)
			write_sealed_s = b;
	}

	double raw = raw_lmdb_rate(records, batch, value_size);

	cJSON *r = cJSON_CreateObject();
	cJSON_AddStringToObject(r, "bench", "store");
	cJSON_AddNumberToObject(r, "records", (double)records);
	cJSON_AddNumberToObject(r, "batch", (double)batch);
	cJSON_AddNumberToObject(r, "value_size", value_size);
	cJSON_AddNumberToObject(r, "change_bytes_avg",
				(double)bytes / (double)records);
	cJSON_AddNumberToObject(r, "apply_seconds", apply_s);
	/* Records and their log, signatures and metadata, in pages used. */
	cJSON_AddNumberToObject(r, "store_bytes_per_record", bytes_per_record);
	cJSON_AddNumberToObject(r, "value_bytes_per_record",
				(double)value_size);
	cJSON_AddNumberToObject(r, "apply_changes_per_s",
				(double)records / apply_s);
	cJSON_AddNumberToObject(r, "local_write_seconds", write_s);
	cJSON_AddNumberToObject(r, "local_writes_per_s",
				(double)records / write_s);
	cJSON_AddNumberToObject(r, "local_writes_refused", (double)refused);
	/* Encryption at rest, same run: a master key seals every record,
	 * log put and snapshot part. */
	cJSON_AddNumberToObject(r, "rounds", rounds);
	cJSON_AddNumberToObject(r, "sealed_apply_changes_per_s",
				(double)records / apply_sealed_s);
	cJSON_AddNumberToObject(r, "sealed_local_writes_per_s",
				(double)records / write_sealed_s);
	cJSON_AddNumberToObject(r, "sealed_store_bytes_per_record",
				bytes_per_record_sealed);
	cJSON_AddNumberToObject(r, "sealed_to_clear_apply",
				apply_s / apply_sealed_s);
	cJSON_AddNumberToObject(r, "sealed_to_clear_local_writes",
				write_s / write_sealed_s);
	cJSON_AddNumberToObject(r, "raw_lmdb_puts_per_s", raw);
	cJSON_AddNumberToObject(r, "raw_puts_per_applied_change",
				raw / ((double)records / apply_s));
	cJSON_AddNumberToObject(r, "durable_commits",
				(double)((records + batch - 1) / batch) * 2);
	bench_report(r, json);
	cJSON_Delete(r);
	for (long i = 0; i < records; i++)
		free(enc[i]);
	free(enc);
	free(blobs);
	free(w);
	free(out);
	free(f);
	free(vals);
	free(keys);
	return refused ? 1 : 0;
}
