/* SPDX-License-Identifier: Apache-2.0 */
/* Decoding a batch of changes ahead of its apply (store_prepare): the part
 * of store_apply_signed that needs no transaction, done on the loop thread
 * while the writer thread applies the batch before. See store.h. */
#include <stdlib.h>
#include <string.h>

#include "store_int.h"

struct store_prep {
	struct arena a; /* the decoded changes */
	size_t n;
	struct store_prepared it[];
};

struct store_prep *store_prepare(struct store_blob *b, size_t n,
				 const struct seg *g, size_t ng)
{
	struct store_prep *p = calloc(1, sizeof *p + n * sizeof p->it[0]);
	size_t at = 0;

	if (p == NULL)
		return NULL;
	/* As much as the apply would allow itself for the same changes; in
	 * pages of its own, which go back to the system with it. */
	arena_init_mapped(&p->a, 0);
	p->n = n;
	for (size_t i = 0; i < n; i++) {
		struct store_prepared *x = &p->it[i];
		x->data = b[i].data;
		x->len = b[i].len;
		/* A failure stays NULL: the apply meets it and says why. */
		st_decode_change(&p->a, &b[i], i, &x->c, NULL);
	}
	/* Each segment's hash over the changes it covers, in the layout
	 * apply_batch walks; a segment that does not fit is left to it. */
	for (size_t k = 0; k < ng && st_seg_fits(&g[k], n - at); k++) {
		size_t cnt = (size_t)(g[k].last - g[k].first + 1);
		st_seg_hash_blobs(&b[at], cnt, p->it[at].seg_hash);
		p->it[at].seg_n = cnt;
		at += cnt;
	}
	for (size_t i = 0; i < n; i++)
		b[i].pre = &p->it[i];
	return p;
}

size_t store_prep_bytes(const struct store_prep *p)
{
	return p ? sizeof *p + p->n * sizeof p->it[0] + p->a.used : 0;
}

void store_prep_free(struct store_prep *p)
{
	if (p == NULL)
		return;
	arena_free(&p->a);
	free(p);
}

/* The entry made for blob b, if it was made from these very bytes. */
const struct store_prepared *st_prepared(const struct store_blob *b)
{
	const struct store_prepared *x = b->pre;
	return x != NULL && x->data == b->data && x->len == b->len ? x : NULL;
}
