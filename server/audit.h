/* SPDX-License-Identifier: Apache-2.0 */
/* The audit log (issue 15): who read or wrote which personal record, when
 * and why.
 *
 * Entries are records of the system collection _audit, written by the
 * node itself and replicated like any change. Key "<hlc>/<writer>" (20
 * digits, made by the store from the entry's own change: unique and in
 * time order); fields op, client, role, center, purpose, records (one line
 * "collection/key" per record), and for an erasure subject and rule. No
 * entry holds a value of a record, only references.
 *
 * Happy paths: a client's write of a personal record and its entry go in
 * the same write batch (STORE_W_LIST lists exactly what committed; alike
 * entries of one group commit merge into one); a read is answered only
 * once its entry is durable (audit_submit), one entry per request,
 * whatever the number of records it names (split at AUDIT_LIST_MAX
 * bytes). Failure: an entry that cannot be written fails
 * its batch, so the write it records does not commit either; a read whose
 * entry failed is refused. */
#ifndef MSCE_AUDIT_H
#define MSCE_AUDIT_H

#include <stddef.h>

#include "store.h"
#include "writer.h"

#define AUDIT_COLLECTION "_audit"
/* Bytes of "collection/key\n" lines in one entry, under the 64 KiB value
 * limit: 200 or more records. */
#define AUDIT_LIST_MAX STORE_LIST_MAX
#define AUDIT_MAX_FIELDS 8

/* Personal collections: registration, case, case_note. */
int audit_personal(const char *coll, size_t len);
/* System collections: names starting with '_'. */
int audit_system(const char *coll, size_t len);
/* The purpose an entry records: given (non-empty), else "admin" for an
 * admin and "unspecified" for others. Static or given string. */
const char *audit_purpose(int role, const char *given);

/* Who acted; strings borrowed. */
struct audit_who {
	const char *client;  /* [client NAME], "local" for the unix socket */
	const char *role;    /* ro, rw, admin */
	const char *center;  /* this node's name */
	const char *purpose; /* as audit_purpose gives it */
};

/* Fills w and f (AUDIT_MAX_FIELDS of them) as one entry: op by who, naming
 * records (records_len bytes of lines), or, when records is NULL, the
 * STORE_W_LISTED writes before it that commit (STORE_W_LIST). subject and
 * rule may be NULL. Everything is borrowed until the write is done. */
void audit_fill(struct store_write *w, struct store_field_in *f,
		const char *op, const struct audit_who *who,
		const char *records, size_t records_len, const char *subject,
		const char *rule);

/* Record references for a read, as lines "collection/key\n". */
struct audit_refs {
	char *buf;
	size_t len, cap, n;
	int oom;
};
void audit_refs_add(struct audit_refs *r, const char *coll, size_t clen,
		    const char *key, size_t klen);
void audit_refs_free(struct audit_refs *r);

typedef void (*audit_done_fn)(void *arg, int rc, const char *msg);

/* Writes the entries of op by who for refs (one per AUDIT_LIST_MAX bytes
 * of lines; who is copied, refs is taken and emptied), then calls
 * done(arg, rc, msg) on the loop thread: rc 0 once they are durable. With
 * no refs, done is called at once with 0. */
void audit_submit(struct writer *wr, const char *op,
		  const struct audit_who *who, struct audit_refs *refs,
		  audit_done_fn done, void *arg);

#endif
