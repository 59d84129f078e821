/* SPDX-License-Identifier: Apache-2.0 */
/* Records to protobuf; see record_pb.h. Built with malloc piece by piece,
 * so record_pb_free can free a half-built message after a failure. */
#include "record_pb.h"

#include <stdlib.h>
#include <string.h>

/* Everything of a field version but its name and value. */
static void fv_version(Msce__FieldVersion *m, const struct fv *f)
{
	m->hlc = f->v.hlc;
	m->origin = f->v.origin;
	m->seq = f->seq;
	m->base_hlc = f->base.hlc;
	m->base_origin = f->base.origin;
}

Msce__FieldVersion *record_pb_fv(const struct field_state *fs,
				 const struct fv *f)
{
	Msce__FieldVersion *m = malloc(sizeof *m);
	if (m == NULL)
		return NULL;
	msce__field_version__init(m);
	m->name = strndup((const char *)fs->name, fs->name_len);
	m->value.data = malloc(f->value_len ? f->value_len : 1);
	if (m->name == NULL || m->value.data == NULL) {
		record_pb_fv_free(m);
		return NULL;
	}
	if (f->value_len) /* a delete as a loser has no value (NULL) */
		memcpy(m->value.data, f->value, f->value_len);
	m->value.len = f->value_len;
	fv_version(m, f);
	return m;
}

void record_pb_fv_free(Msce__FieldVersion *m)
{
	if (m == NULL)
		return;
	free(m->name);
	free(m->value.data);
	free(m);
}

void record_pb_free(Msce__Record *m)
{
	if (m == NULL)
		return;
	for (size_t i = 0; i < m->n_fields; i++) {
		Msce__FieldState *fs = m->fields[i];
		record_pb_fv_free(fs->winner);
		for (size_t j = 0; j < fs->n_losers; j++)
			record_pb_fv_free(fs->losers[j]);
		free(fs->losers);
		free(fs);
	}
	free(m->fields);
	free(m->collection);
	free(m->key);
	free(m);
}

Msce__Record *record_pb_new(const char *coll, size_t coll_len, const char *key,
			    size_t key_len, const struct record *r)
{
	Msce__Record *m = calloc(1, sizeof *m);
	if (m == NULL)
		return NULL;
	msce__record__init(m);
	m->collection = strndup(coll, coll_len);
	m->key = strndup(key, key_len);
	m->tomb_hlc = r->tomb.hlc;
	m->tomb_origin = r->tomb.origin;
	m->erase_hlc = r->erased.hlc;
	m->erase_origin = r->erased.origin;
	m->fields = calloc(r->nfields ? r->nfields : 1, sizeof *m->fields);
	if (m->collection == NULL || m->key == NULL || m->fields == NULL)
		goto oom;
	for (uint32_t i = 0; i < r->nfields; i++) {
		const struct field_state *fs = &r->fields[i];
		Msce__FieldState *s = calloc(1, sizeof *s);
		if (s == NULL)
			goto oom;
		msce__field_state__init(s);
		m->fields[m->n_fields++] = s;
		s->winner = record_pb_fv(fs, &fs->w);
		s->seen_hlc = fs->seen.hlc;
		s->seen_origin = fs->seen.origin;
		s->losers = calloc(fs->nlosers ? fs->nlosers : 1,
				   sizeof *s->losers);
		if (s->winner == NULL || s->losers == NULL)
			goto oom;
		for (int j = 0; j < fs->nlosers; j++) {
			if ((s->losers[j] = record_pb_fv(fs, &fs->losers[j])) ==
			    NULL)
				goto oom;
			s->n_losers++;
		}
	}
	return m;
oom:
	record_pb_free(m);
	return NULL;
}

static char *arena_str(struct arena *a, const void *p, size_t n)
{
	char *s = arena_alloc(a, n + 1);
	if (s != NULL) {
		memcpy(s, p, n);
		s[n] = 0;
	}
	return s;
}

static Msce__FieldVersion *fv_view(struct arena *a, const char *name,
				   const struct fv *f)
{
	Msce__FieldVersion *m = arena_alloc(a, sizeof *m);
	if (m == NULL)
		return NULL;
	msce__field_version__init(m);
	m->name = (char *)name;
	m->value.data = (uint8_t *)f->value;
	m->value.len = f->value_len;
	fv_version(m, f);
	return m;
}

Msce__Record *record_pb_view(struct arena *a, const char *coll,
			     size_t coll_len, const char *key, size_t key_len,
			     const struct record *r)
{
	Msce__Record *m = arena_alloc(a, sizeof *m);
	Msce__FieldState *fs;
	if (m == NULL)
		return NULL;
	msce__record__init(m);
	m->collection = arena_str(a, coll, coll_len);
	m->key = arena_str(a, key, key_len);
	m->tomb_hlc = r->tomb.hlc;
	m->tomb_origin = r->tomb.origin;
	m->erase_hlc = r->erased.hlc;
	m->erase_origin = r->erased.origin;
	m->fields = arena_alloc(a, (r->nfields ? r->nfields : 1) *
				       sizeof *m->fields);
	fs = arena_alloc(a, (r->nfields ? r->nfields : 1) * sizeof *fs);
	if (m->collection == NULL || m->key == NULL || m->fields == NULL ||
	    fs == NULL)
		return NULL;
	for (uint32_t i = 0; i < r->nfields; i++) {
		const struct field_state *f = &r->fields[i];
		Msce__FieldState *s = &fs[i];
		const char *name = arena_str(a, f->name, f->name_len);
		msce__field_state__init(s);
		m->fields[i] = s;
		s->seen_hlc = f->seen.hlc;
		s->seen_origin = f->seen.origin;
		s->losers = arena_alloc(a, (f->nlosers ? f->nlosers : 1) *
						   sizeof *s->losers);
		if (name == NULL || s->losers == NULL ||
		    (s->winner = fv_view(a, name, &f->w)) == NULL)
			return NULL;
		for (int j = 0; j < f->nlosers; j++)
			if ((s->losers[j] = fv_view(a, name, &f->losers[j])) ==
			    NULL)
				return NULL;
		s->n_losers = f->nlosers;
	}
	m->n_fields = r->nfields;
	return m;
}
