/* SPDX-License-Identifier: Apache-2.0 */
/* The benchmarks' records, made before the clock starts: the peers' client
 * (redis-cli --pipe) reads a file generated beforehand, so generating each
 * record (a dozen snprintf calls) inside msce's timed window would charge
 * msce for work Redis is not charged for, on the same two cores. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"

int bench_recs_make(struct bench_recs *r, long from, long to, int value_size)
{
	char names[BENCH_REC_FIELDS][32], values[BENCH_REC_FIELDS][256];
	size_t cap = 0, used = 0;

	memset(r, 0, sizeof *r);
	r->from = from;
	r->n = to - from;
	if (r->n <= 0 ||
	    (r->rec = calloc((size_t)r->n, sizeof *r->rec)) == NULL)
		return -1;
	for (long i = 0; i < r->n; i++) {
		int nf = bench_registration((uint64_t)(from + i), value_size,
					    names, values, BENCH_REC_FIELDS);
		struct bench_rec *x = &r->rec[i];
		size_t need = 64;

		/* Every record has the same fields in the same order. */
		if (i == 0) {
			r->nf = nf;
			memcpy(r->names, names, sizeof names);
		} else if (nf != r->nf) {
			bench_recs_free(r);
			return -1;
		}
		for (int k = 0; k < nf; k++)
			need += strlen(values[k]);
		if (used + need > cap) {
			char *nb;
			cap = cap ? 2 * cap : (size_t)r->n * (need + 16);
			if ((nb = realloc(r->buf, cap)) == NULL) {
				bench_recs_free(r);
				return -1;
			}
			r->buf = nb;
		}
		/* The key, as the benchmarks always made it, then the values. */
		x->off = used;
		x->key_len = (uint16_t)snprintf(r->buf + used, 64, "%.3s:%.40s",
						values[1], values[3]);
		used += x->key_len + 1u;
		for (int k = 0; k < nf; k++) {
			size_t len = strlen(values[k]);
			memcpy(r->buf + used, values[k], len);
			x->len[k] = (uint16_t)len;
			used += len;
		}
	}
	return 0;
}

int bench_recs_fields(const struct bench_recs *r, long i,
		      struct msce_field *f, const char **key)
{
	const struct bench_rec *x = &r->rec[i - r->from];
	const char *p = r->buf + x->off;

	*key = p;
	p += x->key_len + 1u;
	for (int k = 0; k < r->nf; k++) {
		f[k] = (struct msce_field){.name = r->names[k],
					   .value = p,
					   .value_len = x->len[k]};
		p += x->len[k];
	}
	return r->nf;
}

void bench_recs_free(struct bench_recs *r)
{
	free(r->rec);
	free(r->buf);
	memset(r, 0, sizeof *r);
}
