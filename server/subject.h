/* SPDX-License-Identifier: Apache-2.0 */
/* What the store holds about a data subject (issue 15), for subject
 * access, erasure and retention. Store reads only: these run on libuv's
 * thread pool, since they scan whole collections (every case, to find a
 * person's; every audit entry, for an export).
 *
 * A subject is a person (a registration key: the registration, the cases
 * whose `person` is that key, and those cases' notes) or one case (the
 * case and its notes). Notes are the case_note records "<case key>/<note
 * id>" whose last part is a note id (a case "a/b" shares the prefix "a/"
 * with case "a" but its notes are not a's). */
#ifndef MSCE_SUBJECT_H
#define MSCE_SUBJECT_H

#include <stddef.h>
#include <stdint.h>

#include "client.pb-c.h"
#include "retention.h"
#include "store.h"

struct subject_list {
	Msce__Record **recs;
	size_t n, cap;
};

struct subject {
	char coll[16]; /* "registration" or "case" */
	char key[MSCE_MAX_KEY + 1];
	/* Filled by subject_collect; records owned (record_pb_free). */
	Msce__Record *self;	  /* the subject's own record, or NULL */
	struct subject_list cases; /* a person's cases, by key */
	struct subject_list notes; /* notes of self or of cases, by key */
};

/* Collects every subject in subs (coll and key set by the caller) with
 * one pass over the cases. With state set, a registration is taken
 * whenever the store holds a field of it, visible or not (what an erasure
 * must delete: a field that outlived a concurrent delete); otherwise only
 * what get shows (an export). Returns 0 or an error with e filled. */
int subject_collect(struct store *s, struct subject *subs, size_t n,
		    int state, struct err *e);
void subject_free(struct subject *sub);
/* How many records subject_collect found for sub. */
size_t subject_count(const struct subject *sub);

/* The _audit entries that name sub's records or have it as subject. */
int subject_audit(struct store *s, const struct subject *sub,
		  struct subject_list *out, struct err *e);

/* Keys of coll that rule selects at now_ms, sorted; cutoff gets the
 * rule's cutoff date. *keys and each key are malloc'd. */
int subject_select(struct store *s, const char *coll,
		   const struct retention_rule *rule, uint64_t now_ms,
		   char ***keys, size_t *nkeys, char cutoff[11],
		   struct err *e);

void subject_list_free(struct subject_list *l);

#endif
