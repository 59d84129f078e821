/* SPDX-License-Identifier: Apache-2.0 */
/* Store helpers for tests: a full dump hash, log sync between stores,
 * conflict listing, and small write wrappers. */
#ifndef MSCE_STOREUTIL_H
#define MSCE_STOREUTIL_H

#include <sodium.h>

#include "store.h"
#include "testutil.h"

/* Hash of every record's full state (tombstones, losers, seen), in key
 * order: two stores with the same dump hold exactly the same records. */
static int su_dump_cb(void *ctx, const struct store_record_view *r)
{
	crypto_generichash_state *st = ctx;
	static uint8_t buf[1 << 20];
	struct record copy = *r->rec;
	size_t n = record_encoded_size(&copy);
	memset(copy.hash, 0, sizeof copy.hash); /* checked via digest */
	if (n > sizeof buf)
		abort();
	record_encode(&copy, buf);
	crypto_generichash_update(st, (const uint8_t *)r->coll, r->coll_len);
	crypto_generichash_update(st, (const uint8_t *)"\0", 1);
	crypto_generichash_update(st, (const uint8_t *)r->key, r->key_len);
	crypto_generichash_update(st, (const uint8_t *)"\0", 1);
	crypto_generichash_update(st, buf, n);
	return 0;
}

static inline void su_dump(struct store *s, uint8_t out[32])
{
	crypto_generichash_state st;
	struct store_snap *sn;
	int done = 0;
	crypto_generichash_init(&st, NULL, 0, 32);
	if (store_snap_begin(s, &sn, NULL))
		abort();
	while (!done)
		if (store_snap_next(sn, 1 << 20, su_dump_cb, &st, &done, NULL,
				    NULL))
			abort();
	store_snap_end(sn);
	crypto_generichash_final(&st, out, 32);
}

/* A store made for a test writes under its node id (incarnation 0) at
 * once: these tests drive stores directly, with no replication core to
 * give them a writer. */
static inline void su_writer(struct store *s)
{
	if (store_writer(s, NULL) == 0 &&
	    store_set_writer(s, store_node_id(s), 0, 1, NULL) != 0)
		abort();
}

struct su_blobs {
	struct store_blob b[4096];
	uint8_t *mem[4096];
	size_t n;
};

static int su_collect(void *ctx, uint32_t origin, uint64_t seq,
		      const uint8_t *data, size_t len)
{
	struct su_blobs *bl = ctx;
	(void)origin;
	(void)seq;
	if (bl->n == 4096)
		return 1;
	bl->mem[bl->n] = malloc(len);
	memcpy(bl->mem[bl->n], data, len);
	bl->b[bl->n] = (struct store_blob){bl->mem[bl->n], len, NULL};
	bl->n++;
	return 0;
}

static inline void su_blobs_free(struct su_blobs *bl)
{
	for (size_t i = 0; i < bl->n; i++)
		free(bl->mem[i]);
	bl->n = 0;
}

/* Reads origin's log from seq `from` on. */
static inline void su_log(struct store *s, uint32_t origin, uint64_t from,
			  struct su_blobs *bl)
{
	if (store_log_read(s, origin, from, 4096, (size_t)1 << 30, su_collect,
			   bl, NULL) != 0)
		abort();
}

/* Delivers everything `from` holds that `to` lacks, origin by origin. */
static inline int su_sync(struct store *from, struct store *to,
			  uint64_t wall_ms)
{
	struct vv_entry vv[64];
	size_t n = store_vv(from, vv, 64);
	for (size_t i = 0; i < n; i++) {
		struct vv_entry have = store_vv_get(to, vv[i].origin);
		struct su_blobs *bl = calloc(1, sizeof *bl);
		struct store_apply_result res;
		struct err e;
		int rc;
		if (have.seq >= vv[i].seq) {
			free(bl);
			continue;
		}
		su_log(from, vv[i].origin, have.seq + 1, bl);
		rc = store_apply(to, bl->b, bl->n, wall_ms, 60000, &res, &e);
		su_blobs_free(bl);
		free(bl);
		if (rc)
			return rc;
	}
	return 0;
}

static inline int su_put(struct store *s, const char *coll, const char *key,
			 const char *field, const char *value, uint64_t wall,
			 struct store_written *out)
{
	struct store_field_in f = {field, strlen(field),
				   (const uint8_t *)value, strlen(value), 0,
				   {0, 0}};
	struct store_write w = {STORE_PUT, coll, strlen(coll), key,
				strlen(key), &f, 1, 0};
	struct store_written tmp;
	struct err e;
	int rc;
	if (out == NULL)
		out = &tmp;
	rc = store_write(s, &w, 1, wall, out, &e);
	return rc ? rc : out->err.code;
}

static inline int su_del(struct store *s, const char *coll, const char *key,
			 uint64_t wall)
{
	struct store_write w = {STORE_DELETE, coll, strlen(coll), key,
				strlen(key), NULL, 0, 0};
	struct store_written out;
	struct err e;
	int rc = store_write(s, &w, 1, wall, &out, &e);
	return rc ? rc : out.err.code;
}

/* Conflicts as one string "coll/key/field winner>loser;..." */
struct su_text {
	char buf[1 << 16];
	size_t len;
	int n;
};

static int su_conflict_cb(void *ctx, const struct store_conflict_view *c)
{
	struct su_text *t = ctx;
	t->len += (size_t)snprintf(
		t->buf + t->len, sizeof t->buf - t->len,
		"%.*s/%.*s/%.*s %llu.%u>%llu.%u;", (int)c->coll_len, c->coll,
		(int)c->key_len, c->key, (int)c->field->name_len,
		(const char *)c->field->name,
		(unsigned long long)c->field->w.v.hlc, c->field->w.v.origin,
		(unsigned long long)c->loser->v.hlc, c->loser->v.origin);
	t->n++;
	return 0;
}

static inline void su_conflicts(struct store *s, struct su_text *t)
{
	t->len = 0;
	t->n = 0;
	t->buf[0] = 0;
	if (store_conflicts(s, 0, su_conflict_cb, t, NULL))
		abort();
}

/* Value of one field, or NULL. Returns a static buffer. */
struct su_getctx {
	const char *field;
	char value[8192];
	int found;
	struct version v;
};
static int su_get_cb(void *ctx, const struct store_record_view *r)
{
	struct su_getctx *g = ctx;
	struct field_state *fs = record_field(
		r->rec, (const uint8_t *)g->field, strlen(g->field));
	if (fs) {
		snprintf(g->value, sizeof g->value, "%.*s",
			 (int)fs->w.value_len, (const char *)fs->w.value);
		g->v = fs->w.v;
		g->found = 1;
	}
	return 0;
}
static inline const char *su_get(struct store *s, const char *coll,
				 const char *key, const char *field)
{
	static struct su_getctx g;
	memset(&g, 0, sizeof g);
	g.field = field;
	if (store_get(s, coll, strlen(coll), key, strlen(key), su_get_cb, &g,
		      NULL))
		return NULL;
	return g.found ? g.value : NULL;
}

#endif
