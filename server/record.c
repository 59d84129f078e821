/* SPDX-License-Identifier: Apache-2.0 */
/* Record codec and merge rule; see record.h for the rule itself.
 *
 * On-disk layout, format RECORD_FORMAT (varint = LEB128, u64 = 8 bytes LE):
 *   u8 format, varint nfields, u8 hash[32], u64 tomb_hlc, varint tomb_origin,
 *   nfields x { u8 flags, varint name_len, name, fv winner
 *               [u64 seen_hlc, varint seen_origin]   unless SEEN_IS_BASE
 *               [u8 nlosers, nlosers x fv]            if LOSERS }
 *   fv = { u8 fvflags, varint value_len, value,
 *          [u64 hlc, varint origin, varint seq]      unless SAME_VERSION
 *          [u64 base_hlc, varint base_origin]        unless BASE_ZERO }
 * Fields written by one change share a version, and fresh fields have no
 * base, so a typical field costs three bytes beside its name and value.
 * The hash is stored so that replacing a record need not re-hash the old
 * one to keep the store digest. */
#include "record.h"

#include <endian.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "mutant.h"

#define FV_SAME_VERSION 0x01 /* same version and seq as the previous fv */
#define FV_BASE_ZERO 0x02
#define FS_SEEN_IS_BASE 0x01 /* seen equals the winner's base */
#define FS_LOSERS 0x02

/* ---- encoding helpers ------------------------------------------------- */

static void put8(uint8_t **p, uint8_t v) { *(*p)++ = v; }
static void put16(uint8_t **p, uint16_t v)
{
	v = htole16(v);
	memcpy(*p, &v, 2);
	*p += 2;
}
static void put32(uint8_t **p, uint32_t v)
{
	v = htole32(v);
	memcpy(*p, &v, 4);
	*p += 4;
}
static void put64(uint8_t **p, uint64_t v)
{
	v = htole64(v);
	memcpy(*p, &v, 8);
	*p += 8;
}
static void putv(uint8_t **p, uint64_t v)
{
	while (v >= 0x80) {
		*(*p)++ = (uint8_t)(v | 0x80);
		v >>= 7;
	}
	*(*p)++ = (uint8_t)v;
}
static size_t varlen(uint64_t v)
{
	size_t n = 1;
	while (v >= 0x80) {
		v >>= 7;
		n++;
	}
	return n;
}

struct reader {
	const uint8_t *p, *end;
	int bad;
};

static const uint8_t *take(struct reader *r, size_t n)
{
	const uint8_t *q = r->p;
	if (r->bad || (size_t)(r->end - r->p) < n) {
		r->bad = 1;
		return NULL;
	}
	r->p += n;
	return q;
}
static uint64_t get_le(struct reader *r, int n)
{
	const uint8_t *q = take(r, (size_t)n);
	uint16_t v16;
	uint32_t v32;
	uint64_t v64;

	if (q == NULL)
		return 0;
	switch (n) {
	case 1:
		return q[0];
	case 2:
		memcpy(&v16, q, 2);
		return le16toh(v16);
	case 4:
		memcpy(&v32, q, 4);
		return le32toh(v32);
	case 8:
		memcpy(&v64, q, 8);
		return le64toh(v64);
	}
	v64 = 0;
	for (int i = n - 1; i >= 0; i--)
		v64 = (v64 << 8) | q[i];
	return v64;
}
static uint64_t getv(struct reader *r)
{
	uint64_t v = 0;
	for (int shift = 0; shift < 64; shift += 7) {
		const uint8_t *q = take(r, 1);
		if (q == NULL)
			return 0;
		v |= (uint64_t)(*q & 0x7f) << shift;
		if (!(*q & 0x80))
			return v;
	}
	r->bad = 1;
	return 0;
}

/* ---- codec ------------------------------------------------------------ */

static void read_fv(struct reader *r, struct fv *f, const struct fv *prev)
{
	uint8_t flags = (uint8_t)get_le(r, 1);
	uint64_t len = getv(r);

	if (len > UINT32_MAX) {
		r->bad = 1;
		return;
	}
	f->value_len = (uint32_t)len;
	f->value = take(r, f->value_len);
	if (flags & FV_SAME_VERSION) {
		if (prev == NULL) {
			r->bad = 1;
			return;
		}
		f->v = prev->v;
		f->seq = prev->seq;
	} else {
		f->v.hlc = get_le(r, 8);
		f->v.origin = (uint32_t)getv(r);
		f->seq = getv(r);
	}
	if (flags & FV_BASE_ZERO) {
		f->base.hlc = 0;
		f->base.origin = 0;
	} else {
		f->base.hlc = get_le(r, 8);
		f->base.origin = (uint32_t)getv(r);
	}
}

int record_decode(const uint8_t *buf, size_t len, struct record *rec,
		  struct arena *a)
{
	struct reader r = {buf, buf + len, 0};
	const uint8_t *h;
	const struct fv *prev = NULL;
	uint64_t n;

	memset(rec, 0, sizeof *rec);
	if (get_le(&r, 1) != RECORD_FORMAT)
		return MSCE_ECORRUPT;
	n = getv(&r);
	h = take(&r, RECORD_HASH_LEN);
	if (h == NULL)
		return MSCE_ECORRUPT;
	memcpy(rec->hash, h, RECORD_HASH_LEN);
	rec->tomb.hlc = get_le(&r, 8);
	rec->tomb.origin = (uint32_t)getv(&r);
	/* Each field takes at least 3 bytes: bounds n before allocating. */
	if (r.bad || n > len / 3 || n > 65535)
		return MSCE_ECORRUPT;
	rec->cap = (uint32_t)n + 4;
	rec->fields = arena_alloc(a, rec->cap * sizeof *rec->fields);
	if (rec->fields == NULL)
		return MSCE_ENOMEM;
	for (uint32_t i = 0; i < n; i++) {
		struct field_state *fs = &rec->fields[i];
		uint8_t flags = (uint8_t)get_le(&r, 1);
		uint64_t nl = getv(&r);
		fs->nlosers = 0;
		if (nl > 65535)
			return MSCE_ECORRUPT;
		fs->name_len = (uint16_t)nl;
		fs->name = take(&r, fs->name_len);
		read_fv(&r, &fs->w, prev);
		prev = &fs->w;
		if (flags & FS_SEEN_IS_BASE) {
			fs->seen = fs->w.base;
		} else {
			fs->seen.hlc = get_le(&r, 8);
			fs->seen.origin = (uint32_t)getv(&r);
		}
		fs->losers = NULL;
		if (flags & FS_LOSERS) {
			fs->nlosers = (uint8_t)get_le(&r, 1);
			if (fs->nlosers > RECORD_MAX_LOSERS)
				return MSCE_ECORRUPT;
			fs->losers = arena_alloc(a, RECORD_MAX_LOSERS *
							sizeof *fs->losers);
			if (fs->losers == NULL)
				return MSCE_ENOMEM;
			for (int j = 0; j < fs->nlosers; j++) {
				read_fv(&r, &fs->losers[j], prev);
				prev = &fs->losers[j];
			}
		}
		if (r.bad)
			return MSCE_ECORRUPT;
	}
	if (r.p != r.end)
		return MSCE_ECORRUPT;
	rec->nfields = (uint32_t)n;
	return 0;
}

static int same_version(const struct fv *f, const struct fv *prev)
{
	return prev != NULL && version_cmp(f->v, prev->v) == 0 &&
	       f->seq == prev->seq;
}

static size_t fv_size(const struct fv *f, const struct fv *prev)
{
	size_t n = 1 + varlen(f->value_len) + f->value_len;
	if (!same_version(f, prev))
		n += 8 + varlen(f->v.origin) + varlen(f->seq);
	if (!version_is_zero(f->base))
		n += 8 + varlen(f->base.origin);
	return n;
}

size_t record_encoded_size(const struct record *r)
{
	size_t n = 1 + varlen(r->nfields) + RECORD_HASH_LEN + 8 +
		   varlen(r->tomb.origin);
	const struct fv *prev = NULL;
	for (uint32_t i = 0; i < r->nfields; i++) {
		const struct field_state *fs = &r->fields[i];
		n += 1 + varlen(fs->name_len) + fs->name_len;
		n += fv_size(&fs->w, prev);
		prev = &fs->w;
		if (version_cmp(fs->seen, fs->w.base) != 0)
			n += 8 + varlen(fs->seen.origin);
		if (fs->nlosers) {
			n += 1;
			for (int j = 0; j < fs->nlosers; j++) {
				n += fv_size(&fs->losers[j], prev);
				prev = &fs->losers[j];
			}
		}
	}
	return n;
}

static void write_fv(uint8_t **p, const struct fv *f, const struct fv *prev)
{
	int same = same_version(f, prev), zero = version_is_zero(f->base);
	put8(p, (uint8_t)((same ? FV_SAME_VERSION : 0) |
			  (zero ? FV_BASE_ZERO : 0)));
	putv(p, f->value_len);
	if (f->value_len)
		memcpy(*p, f->value, f->value_len);
	*p += f->value_len;
	if (!same) {
		put64(p, f->v.hlc);
		putv(p, f->v.origin);
		putv(p, f->seq);
	}
	if (!zero) {
		put64(p, f->base.hlc);
		putv(p, f->base.origin);
	}
}

void record_encode(const struct record *r, uint8_t *out)
{
	uint8_t *p = out;
	const struct fv *prev = NULL;

	put8(&p, RECORD_FORMAT);
	putv(&p, r->nfields);
	memcpy(p, r->hash, RECORD_HASH_LEN);
	p += RECORD_HASH_LEN;
	put64(&p, r->tomb.hlc);
	putv(&p, r->tomb.origin);
	for (uint32_t i = 0; i < r->nfields; i++) {
		const struct field_state *fs = &r->fields[i];
		int seen_is_base = version_cmp(fs->seen, fs->w.base) == 0;
		put8(&p, (uint8_t)((seen_is_base ? FS_SEEN_IS_BASE : 0) |
				   (fs->nlosers ? FS_LOSERS : 0)));
		putv(&p, fs->name_len);
		memcpy(p, fs->name, fs->name_len);
		p += fs->name_len;
		write_fv(&p, &fs->w, prev);
		prev = &fs->w;
		if (!seen_is_base) {
			put64(&p, fs->seen.hlc);
			putv(&p, fs->seen.origin);
		}
		if (fs->nlosers) {
			put8(&p, fs->nlosers);
			for (int j = 0; j < fs->nlosers; j++) {
				write_fv(&p, &fs->losers[j], prev);
				prev = &fs->losers[j];
			}
		}
	}
}

/* ---- merge ------------------------------------------------------------ */

static int name_cmp(const uint8_t *a, size_t alen, const uint8_t *b,
		    size_t blen)
{
	size_t n = alen < blen ? alen : blen;
	int c = n ? memcmp(a, b, n) : 0;
	if (c != 0)
		return c;
	return alen < blen ? -1 : alen > blen;
}

/* Binary search; *pos is where the name is or would go. */
static struct field_state *find(const struct record *r, const uint8_t *name,
				size_t len, uint32_t *pos)
{
	uint32_t lo = 0, hi = r->nfields;

	/* A change's fields come in name order: most new fields go last. */
	if (hi > 0 && name_cmp(r->fields[hi - 1].name,
			       r->fields[hi - 1].name_len, name, len) < 0) {
		*pos = hi;
		return NULL;
	}
	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		int c = name_cmp(r->fields[mid].name, r->fields[mid].name_len,
				 name, len);
		if (c == 0) {
			*pos = mid;
			return &r->fields[mid];
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	*pos = lo;
	return NULL;
}

struct field_state *record_field(const struct record *r, const uint8_t *name,
				 size_t name_len)
{
	uint32_t pos;
	return find(r, name, name_len, &pos);
}

static struct field_state *insert(struct record *r, uint32_t pos,
				  uint32_t more, struct arena *a)
{
	if (r->nfields == r->cap) {
		/* Room for the rest of the change's fields too (more). */
		uint32_t cap = r->cap ? r->cap * 2 : 8;
		if (cap < r->nfields + more)
			cap = r->nfields + more;
		struct field_state *f = arena_alloc(a, cap * sizeof *f);
		if (f == NULL)
			return NULL;
		if (r->nfields)
			memcpy(f, r->fields, r->nfields * sizeof *f);
		r->fields = f;
		r->cap = cap;
	}
	memmove(&r->fields[pos + 1], &r->fields[pos],
		(r->nfields - pos) * sizeof *r->fields);
	r->nfields++;
	memset(&r->fields[pos], 0, sizeof r->fields[pos]);
	return &r->fields[pos];
}

static int fv_same(const struct fv *a, const struct fv *b)
{
	return version_cmp(a->v, b->v) == 0;
}

/* Combines fs with extra candidate writes and an extra seen bound, keeping
 * the winner and the highest unseen losers. Returns whether fs changed. */
static int combine(struct field_state *fs, const struct fv *extra, size_t n,
		   struct version seen, struct arena *a)
{
	struct fv kept[RECORD_MAX_LOSERS];
	struct fv cand[2 * RECORD_MAX_LOSERS + 2];
	size_t nc = 0;
	struct field_state old = *fs;
	int changed;

	cand[nc++] = fs->w;
	for (int i = 0; i < fs->nlosers; i++)
		cand[nc++] = fs->losers[i];
	for (size_t i = 0; i < n; i++) {
		int dup = 0;
		for (size_t j = 0; j < nc && !dup; j++)
			dup = fv_same(&cand[j], &extra[i]);
		if (!dup)
			cand[nc++] = extra[i];
	}
	/* Insertion sort, highest version first: at most 18 entries. */
	for (size_t i = 1; i < nc; i++) {
		struct fv t = cand[i];
		size_t j = i;
		while (j > 0 && version_cmp(cand[j - 1].v, t.v) < 0) {
			cand[j] = cand[j - 1];
			j--;
		}
		cand[j] = t;
	}
	if (MUTANT("version_order")) /* the lowest version wins */
		for (size_t i = 0, j = nc - 1; i < j; i++, j--) {
			struct fv t = cand[i];
			cand[i] = cand[j];
			cand[j] = t;
		}
	fs->seen = version_max(fs->seen, seen);
	fs->w = cand[0];
	fs->nlosers = 0;
	for (size_t i = 1; i < nc && fs->nlosers < RECORD_MAX_LOSERS; i++)
		if (version_cmp(cand[i].v, fs->seen) > 0 ||
		    MUTANT("seen_filter")) /* keeps losers a writer had seen */
			kept[fs->nlosers++] = cand[i];

	changed = !fv_same(&old.w, &fs->w) ||
		  version_cmp(old.seen, fs->seen) != 0 ||
		  old.nlosers != fs->nlosers;
	for (int i = 0; !changed && i < fs->nlosers; i++)
		changed = !fv_same(&old.losers[i], &kept[i]);
	if (fs->nlosers == 0) {
		fs->losers = NULL;
		return changed;
	}
	/* The old array has room for as many as it held. */
	if (fs->nlosers > old.nlosers) {
		if (a == NULL)
			abort(); /* callers without an arena only drop losers */
		fs->losers = arena_alloc(a, RECORD_MAX_LOSERS *
						sizeof *fs->losers);
		if (fs->losers == NULL) {
			*fs = old;
			return -1;
		}
	}
	memcpy(fs->losers, kept, fs->nlosers * sizeof *kept);
	return changed;
}

int record_merge_put(struct record *r, struct version v, uint64_t seq,
		     const struct field_write *w, size_t n, struct arena *a,
		     int *changed)
{
	*changed = 0;
	if (version_cmp(v, r->tomb) <= 0 && !MUTANT("tomb_order"))
		return 0; /* deleted after this write was made */
	for (size_t i = 0; i < n; i++) {
		uint32_t pos;
		struct field_state *fs = find(r, w[i].name, w[i].name_len, &pos);
		struct fv x = {w[i].value, w[i].value_len, v, seq, w[i].base};

		if (fs == NULL) {
			fs = insert(r, pos, (uint32_t)(n - i), a);
			if (fs == NULL)
				return MSCE_ENOMEM;
			fs->name = w[i].name;
			fs->name_len = w[i].name_len;
			fs->w = x;
			fs->seen = version_max(w[i].base, r->tomb);
			*changed = 1;
			continue;
		}
		int c = combine(fs, &x, 1, version_max(w[i].base, r->tomb), a);
		if (c < 0)
			return MSCE_ENOMEM;
		if (c)
			*changed = 1;
	}
	return 0;
}

void record_merge_delete(struct record *r, struct version v, int *changed)
{
	uint32_t keep = 0;

	*changed = 0;
	if (version_cmp(v, r->tomb) <= 0)
		return;
	r->tomb = v;
	*changed = 1;
	for (uint32_t i = 0; i < r->nfields; i++) {
		struct field_state fs = r->fields[i];
		if (version_cmp(fs.w.v, v) <= 0)
			continue; /* the whole field is older than the delete */
		/* Losers at or below the tombstone go with it. */
		combine(&fs, NULL, 0, v, NULL);
		r->fields[keep++] = fs;
	}
	r->nfields = keep;
}

int record_merge_state(struct record *r, const struct field_state *in,
		       struct arena *a, int *changed)
{
	struct fv extra[RECORD_MAX_LOSERS + 1];
	size_t n = 0;
	uint32_t pos;
	struct field_state *fs;
	struct version seen = version_max(in->seen, r->tomb);

	*changed = 0;
	if (version_cmp(in->w.v, r->tomb) > 0)
		extra[n++] = in->w;
	for (int i = 0; i < in->nlosers; i++)
		if (version_cmp(in->losers[i].v, r->tomb) > 0)
			extra[n++] = in->losers[i];
	if (n == 0)
		return 0;
	fs = find(r, in->name, in->name_len, &pos);
	if (fs == NULL) {
		fs = insert(r, pos, 1, a);
		if (fs == NULL)
			return MSCE_ENOMEM;
		fs->name = in->name;
		fs->name_len = in->name_len;
		/* Start from the highest candidate; combine adds the rest. */
		fs->w = extra[0];
		fs->seen = seen;
		for (size_t i = 1; i < n; i++)
			if (version_cmp(extra[i].v, extra[0].v) > 0)
				fs->w = extra[i];
		if (combine(fs, extra, n, seen, a) < 0)
			return MSCE_ENOMEM;
		*changed = 1;
		return 0;
	}
	int c = combine(fs, extra, n, seen, a);
	if (c < 0)
		return MSCE_ENOMEM;
	*changed = c;
	return 0;
}

/* ---- hashing ------------------------------------------------------------ */

/* Feeds BLAKE2b in large pieces: the fields are small, and a call per
 * piece cost more than the hashing. */
struct hbuf {
	crypto_generichash_state st;
	size_t n;
	uint8_t b[2048];
};

/* Room for n (<= sizeof h->b) bytes at the buffer's end, hashing what it
 * holds first when they do not fit. */
static uint8_t *hb_room(struct hbuf *h, size_t n)
{
	if (h->n + n > sizeof h->b) {
		crypto_generichash_update(&h->st, h->b, h->n);
		h->n = 0;
	}
	return h->b + h->n;
}

static void hb_put(struct hbuf *h, const void *p, size_t len)
{
	if (len == 0) /* an empty value may have no bytes at all (NULL) */
		return;
	if (len > sizeof h->b) {
		crypto_generichash_update(&h->st, h->b, h->n);
		h->n = 0;
		crypto_generichash_update(&h->st, p, len);
		return;
	}
	memcpy(hb_room(h, len), p, len);
	h->n += len;
}

void record_hash(const char *coll, size_t coll_len, const char *key,
		 size_t key_len, const struct record *r,
		 uint8_t out[RECORD_HASH_LEN])
{
	struct hbuf h;
	uint8_t *p;

	if (r->nfields == 0) {
		memset(out, 0, RECORD_HASH_LEN);
		return;
	}
	crypto_generichash_init(&h.st, NULL, 0, RECORD_HASH_LEN);
	h.n = 0;
	p = hb_room(&h, 8);
	put16(&p, (uint16_t)coll_len);
	put16(&p, (uint16_t)key_len);
	put32(&p, r->nfields);
	h.n += 8;
	hb_put(&h, coll, coll_len);
	hb_put(&h, key, key_len);
	for (uint32_t i = 0; i < r->nfields; i++) {
		const struct field_state *fs = &r->fields[i];
		p = hb_room(&h, 18);
		put16(&p, fs->name_len);
		put32(&p, fs->w.value_len);
		put64(&p, fs->w.v.hlc);
		put32(&p, fs->w.v.origin);
		h.n += 18;
		hb_put(&h, fs->name, fs->name_len);
		hb_put(&h, fs->w.value, fs->w.value_len);
	}
	crypto_generichash_update(&h.st, h.b, h.n);
	crypto_generichash_final(&h.st, out, RECORD_HASH_LEN);
}

/* The digest is a 256-bit little-endian number: added and subtracted
 * eight bytes at a time. */
static uint64_t le64(const uint8_t *p)
{
	uint64_t v;
	memcpy(&v, p, 8);
	return le64toh(v);
}

static void put_le64(uint8_t *p, uint64_t v)
{
	v = htole64(v);
	memcpy(p, &v, 8);
}

void digest_add(uint8_t d[32], const uint8_t x[32])
{
	uint64_t carry = 0;
	for (int i = 0; i < 32; i += 8) {
		uint64_t a = le64(d + i), b = le64(x + i), s = a + b;
		uint64_t c = s < a;
		s += carry;
		c |= s < carry;
		put_le64(d + i, s);
		carry = c;
	}
}

void digest_sub(uint8_t d[32], const uint8_t x[32])
{
	uint64_t borrow = 0;
	for (int i = 0; i < 32; i += 8) {
		uint64_t a = le64(d + i), b = le64(x + i), s = a - b;
		uint64_t c = a < b;
		c |= s < borrow;
		s -= borrow;
		put_le64(d + i, s);
		borrow = c;
	}
}
