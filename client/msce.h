/* libmsce: the client library for msce nodes.
 *
 * A front end opens a connection (msce_connect_*) and makes blocking calls
 * on it; one msce_client per thread. Every call returns 0 or an
 * enum msce_error code (msce_strerror gives its name as text) and leaves a
 * message naming what was wrong (which field, which limit) in
 * msce_errmsg(c), valid until the next call on c.
 *
 * Ownership: strings and buffers passed in are borrowed for the duration
 * of the call. Objects returned through an out pointer (msce_record,
 * msce_page, msce_status, msce_conflicts) belong to the caller, who frees
 * them with their _free function; pointers obtained from them stay valid
 * until that free. */
#ifndef MSCE_H
#define MSCE_H

#include <stddef.h>
#include <stdint.h>

#include "msce_errors.h"

#ifdef __cplusplus
extern "C" {
#endif

/* MSCE_VERSION ("0.2.0"), MSCE_VERSION_MAJOR, _MINOR, _PATCH: made from
 * the one version in the build (CMakeLists.txt project()). */
#include "msce_version.h"
#define MSCE_VERSION_STRING MSCE_VERSION

/* The library's version at run time ("0.1.0"); compare with the macros. */
const char *msce_version(void);
/* "out of memory", ... for an enum msce_error code. Static string. */
const char *msce_strerror(int code);

typedef struct msce_client msce_client;

/* Connections. On failure *out is still set (so msce_errmsg works) and
 * must be closed with msce_close. A unix socket the caller may not open
 * (its permissions) is MSCE_EPERM; a node that is not there
 * MSCE_EUNAVAIL. */
int msce_connect_unix(const char *path, msce_client **out);
/* The socket named in a node's config file ([node] socket). */
int msce_connect_config(const char *config_path, msce_client **out);
/* TCP with Noise: hostport "10.0.2.10:7402", the client's secret key file
 * (mode 0600), the node's public key (base64) and the cluster name. */
int msce_connect_tcp(const char *hostport, const char *key_file,
		     const char *node_key_base64, const char *cluster,
		     msce_client **out);
void msce_close(msce_client *c);
const char *msce_errmsg(const msce_client *c);
/* The most each later call on c waits for the node, in ms (0 = no limit,
 * the default): to take a request, and for its answer (a put with
 * min_sites waits its own timeout_ms on top). A call past it returns
 * MSCE_ETIMEOUT; an answer that comes later is skipped, so c stays usable
 * unless a request could not be sent whole (then c is closed: reconnect).
 * Connecting itself is bounded separately (5 s over TCP). A watch's
 * msce_watch_next takes its own timeout. */
int msce_set_timeout(msce_client *c, unsigned ms);

/* ---- purposes ------------------------------------------------------------ */

/* Every read or write of a personal record (registration, case,
 * case_note) is recorded in the audit log with the purpose the front end
 * gives (docs/PROTOCOL.md "Purposes"). Reads of them by ro and rw clients
 * without a purpose are refused (MSCE_EINVAL, naming these). */
#define MSCE_PURPOSES                                                         \
	"service, case-work, verification, legal-request, subject-access, "   \
	"maintenance"
/* Sets the purpose sent with every later request on c (copied); NULL or
 * "" sends none. Local and cheap: call it before any call whose purpose
 * differs. MSCE_EINVAL if purpose is not one of MSCE_PURPOSES. */
int msce_set_purpose(msce_client *c, const char *purpose);
/* The purpose requests on c carry, "" if none; valid until the next
 * msce_set_purpose. */
const char *msce_purpose(const msce_client *c);

/* ---- writes ------------------------------------------------------------ */

struct msce_field {
	const char *name;  /* borrowed */
	const void *value; /* borrowed */
	size_t value_len;
	/* Optional: the version this write is based on (what the writer
	 * saw). Without it the node uses the version it holds. */
	int has_base;
	uint64_t base_hlc;
	uint32_t base_origin;
};

struct msce_write_result {
	uint32_t origin; /* the node that made the change */
	uint64_t seq;
	uint64_t hlc;
	uint32_t sites; /* centers known to hold it when acknowledged */
};

struct msce_put_opts {
	/* Acknowledge only once this many centers hold the write durably
	 * (0 or 1: this node). On timeout the call returns MSCE_ETIMEOUT;
	 * the write stays committed at this node and replicates on. */
	unsigned min_sites;
	uint64_t timeout_ms; /* 0 = 10 s */
};

/* Writes fields of collection/key. opts and res may be NULL. */
int msce_put(msce_client *c, const char *collection, const char *key,
	     const struct msce_field *fields, size_t n,
	     struct msce_write_result *res);
int msce_put_opts(msce_client *c, const char *collection, const char *key,
		  const struct msce_field *fields, size_t n,
		  const struct msce_put_opts *opts,
		  struct msce_write_result *res);
/* Deletes a record (a tombstone that replicates). res may be NULL. */
int msce_delete(msce_client *c, const char *collection, const char *key,
		struct msce_write_result *res);

/* Pipelining: send writes without waiting, then collect their results.
 * msce_put_send queues one put (returning its request id in *id);
 * msce_put_recv waits for the next result, in the order the node
 * committed them (for one connection, the order sent), and says which
 * request it answers. Other calls on c must wait until every result sent
 * was received (msce_pending(c) == 0). */
int msce_put_send(msce_client *c, const char *collection, const char *key,
		  const struct msce_field *fields, size_t n, uint64_t *id);
int msce_put_recv(msce_client *c, uint64_t *id, struct msce_write_result *res);
size_t msce_pending(const msce_client *c);

/* One write of a batch. */
struct msce_put {
	const char *collection;
	const char *key;
	const struct msce_field *fields;
	size_t nfields;
	int is_delete; /* a record delete; fields ignored */
};

/* Writes n records in one request, committed together. Each write is
 * checked on its own: codes[i] (if codes is not NULL) is 0 or why write i
 * was refused; res[i] (if res is not NULL) its change. Returns 0 when the
 * batch was processed, even if some writes were refused. */
int msce_put_batch(msce_client *c, const struct msce_put *puts, size_t n,
		   struct msce_write_result *res, int *codes);

/* ---- reads ------------------------------------------------------------------ */

struct msce_value {
	const char *name;
	const void *value; /* not NUL-terminated; value_len bytes */
	size_t value_len;
	uint64_t hlc; /* the version of this value */
	uint32_t origin;
	size_t nconflicts; /* concurrent values this one replaced unseen */
};

typedef struct msce_record msce_record;

/* Reads a record: MSCE_ENOTFOUND if it has no visible field (or is a
 * registration, case or event without its required fields). MSCE_ETOOBIG
 * if it is larger than one reply (4 MiB over TCP; only a record merged
 * from concurrent writes at several centers can be): read it in parts
 * with msce_get_fields. */
int msce_get(msce_client *c, const char *collection, const char *key,
	     msce_record **out);
/* Reads only the named fields (nfields of them; fields is the caller's,
 * used during the call only) of a record. */
int msce_get_fields(msce_client *c, const char *collection, const char *key,
		    const char *const *fields, size_t nfields,
		    msce_record **out);
const char *msce_record_collection(const msce_record *r);
const char *msce_record_key(const msce_record *r);
size_t msce_record_nfields(const msce_record *r);
/* Field i (0 <= i < nfields), by name order. */
const struct msce_value *msce_record_field(const msce_record *r, size_t i);
/* Field by name, or NULL. */
const struct msce_value *msce_record_find(const msce_record *r,
					  const char *name);
/* Centers known to hold the record's newest change (msce_get only). */
size_t msce_record_seen_by(const msce_record *r, const uint32_t **nodes);
void msce_record_free(msce_record *r);

struct msce_scan_opts {
	const char *prefix; /* keys starting with this (NULL = all) */
	const char *after;  /* cursor: keys after this (NULL = start) */
	const char *end;    /* keys before this (NULL = no bound) */
	unsigned limit;     /* records per page; 0 = 100, at most 10000 */
};

typedef struct msce_page msce_page;

int msce_scan(msce_client *c, const char *collection,
	      const struct msce_scan_opts *opts, msce_page **out);
size_t msce_page_count(const msce_page *p);
const msce_record *msce_page_record(const msce_page *p, size_t i);
/* Cursor for the next page (pass as opts.after), or NULL at the end. */
const char *msce_page_next(const msce_page *p);
void msce_page_free(msce_page *p);

/* ---- status ------------------------------------------------------------------ */

struct msce_peer_status {
	uint32_t node;
	int connected;
	uint64_t lag_changes;     /* changes it lacks that we hold */
	uint64_t lag_ms;          /* how far behind, by change time */
	uint64_t last_contact_ms; /* unix ms of its last message, 0 = never */
	int64_t clock_offset_ms;  /* its clock minus ours */
};

typedef struct msce_status msce_status;

int msce_status_get(msce_client *c, msce_status **out);
uint32_t msce_status_node(const msce_status *s);
const char *msce_status_name(const msce_status *s);
/* 64 hex digits of the node's digest. */
const char *msce_status_digest(const msce_status *s);
size_t msce_status_npeers(const msce_status *s);
const struct msce_peer_status *msce_status_peer(const msce_status *s,
						size_t i);
/* A counter by name (e.g. "refused_unknown_key"), 0 if unknown. */
uint64_t msce_status_counter(const msce_status *s, const char *name);
/* Who the node sees on this connection: the [client NAME] of its key
 * ("local" over the unix socket) and its role, "ro", "rw" or "admin" (""
 * from a node that does not say). */
const char *msce_status_client(const msce_status *s);
const char *msce_status_role(const msce_status *s);
uint64_t msce_status_conflicts(const msce_status *s);
struct msce_cursor;
/* The node's version vector as a watch cursor: a watch from it streams
 * what commits after this status. After a watch ends with MSCE_ENOTFOUND
 * (its cursor fell below the log floor): take a status, rescan, then watch
 * from this cursor. */
void msce_status_cursor(const msce_status *s, struct msce_cursor *out);
void msce_status_free(msce_status *s);

/* ---- conflicts ------------------------------------------------------------------ */

struct msce_conflict {
	const char *collection, *key, *field;
	struct msce_value winner; /* the visible value */
	struct msce_value loser;  /* the concurrent value it replaced */
	/* The loser is the record's delete (its version, no value): the
	 * winner updated what a concurrent delete removed and survived it. */
	int is_delete;
};

typedef struct msce_conflicts msce_conflicts;

/* Open conflicts, of one collection or all (NULL); limit 0 = 1000. */
int msce_conflicts_list(msce_client *c, const char *collection,
			unsigned limit, msce_conflicts **out);
size_t msce_conflicts_count(const msce_conflicts *l);
const struct msce_conflict *msce_conflicts_get(const msce_conflicts *l,
					       size_t i);
void msce_conflicts_free(msce_conflicts *l);
/* Writes value over the field's current winner, closing its conflicts
 * everywhere once replicated. */
int msce_resolve(msce_client *c, const char *collection, const char *key,
		 const char *field, const void *value, size_t value_len,
		 struct msce_write_result *res);

/* ---- watch ------------------------------------------------------------------ */

#define MSCE_CURSOR_MAX 64

/* A position in the change stream: the highest seq seen per origin. */
struct msce_cursor {
	size_t n;
	uint32_t origin[MSCE_CURSOR_MAX];
	uint64_t seq[MSCE_CURSOR_MAX];
};

struct msce_event {
	const char *collection, *key;
	int is_delete;
	uint32_t origin;
	uint64_t seq, hlc;
	size_t nfields;
	const struct msce_value *fields; /* name, value, version */
};

/* Starts streaming the changes after cursor (NULL = from the start) of
 * one collection or all (NULL). The connection then serves only the
 * stream; close it to stop. */
int msce_watch(msce_client *c, const char *collection,
	       const struct msce_cursor *after);
/* Waits up to timeout_ms (0 = forever) for the next change: 0 and *ev
 * filled (valid until the next call), MSCE_ETIMEOUT, or the error that
 * ended the stream. cursor (may be NULL) is advanced past the event. */
int msce_watch_next(msce_client *c, struct msce_event *ev, uint64_t timeout_ms,
		    struct msce_cursor *cursor);

/* ---- administration ------------------------------------------------------ */

/* Writes a consistent, compacted copy of the store into directory path on
 * the node's machine (must not exist). Admin role only. */
int msce_backup(msce_client *c, const char *path, uint64_t *bytes);

/* ---- domain helpers (validated here by the node's rules) ----------------- */

/* NULL members are not written. The key is NATIONALITY:DOCUMENT_NUMBER. */
struct msce_registration {
	const char *name, *nationality, *document_type, *document_number;
	const char *birth_date, *phone, *email, *address, *district;
	const char *visa_type, *visa_expiry, *registered_at, *center;
};
int msce_registration_put(msce_client *c, const struct msce_registration *r,
			  struct msce_write_result *res);

struct msce_case {
	const char *person; /* a registration key */
	const char *category, *status, *center, *assignee, *summary;
};
int msce_case_put(msce_client *c, const char *case_key,
		  const struct msce_case *k, struct msce_write_result *res);

/* Notes of a case are records of their own in collection case_note, key
 * "<case key>/<note id>", so a case collects any number of notes and its
 * own record stays small. The note id is made by the writer, without
 * coordination: YYYYMMDDTHHMMSS.mmmZ-<center>-<16 hex digits> (UTC time,
 * the writing center, 64 random bits), time first so that key order is
 * time order. Notes written before case_note existed are fields
 * note/<hlc>/<origin> of the case record; they stay valid and readable. */
struct msce_case_note {
	const char *text;	/* required: multi-line text, <= 8000 bytes */
	const char *center;	/* where it is written; NULL: the node's name */
	const char *author;	/* optional, one line */
	const char *written_at; /* optional ISO 8601 UTC timestamp */
};
#define MSCE_NOTE_ID_SIZE 71 /* bytes of a note id with its NUL */
/* Writes a new note of case case_key; its id into id (MSCE_NOTE_ID_SIZE
 * bytes) if id is not NULL. One client's notes get strictly increasing
 * times (a burst within a millisecond borrows the next ones), so they list
 * in the order written. */
int msce_case_note_put(msce_client *c, const char *case_key,
		       const struct msce_case_note *n, char *id,
		       struct msce_write_result *res);
/* The same for a note of just text, written at the node's center. */
int msce_case_add_note(msce_client *c, const char *case_key, const char *text,
		       struct msce_write_result *res);
/* Called for each note: its id and its record (fields text, center,
 * author, written_at), both valid during the call. Non-zero stops. */
typedef int (*msce_note_fn)(void *ctx, const char *note_id,
			    const msce_record *note);
/* Calls fn for every note of case_key in time order (by note id), paging
 * through the case's notes; returns 0 when all were listed or fn stopped,
 * or the error of a scan. */
int msce_case_notes(msce_client *c, const char *case_key, msce_note_fn fn,
		    void *ctx);

struct msce_event_rec {
	const char *title, *kind, *center, *starts_at, *ends_at;
	const char *capacity, *description;
};
/* key is DATE/ID, e.g. "2026-12-05/qa-visa". */
int msce_event_put(msce_client *c, const char *date, const char *id,
		   const struct msce_event_rec *e,
		   struct msce_write_result *res);

#ifdef __cplusplus
}
#endif

#endif
