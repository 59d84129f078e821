/* SPDX-License-Identifier: Apache-2.0 */
/* libmsce: the client library for msce nodes. Installed as <msce/msce.h>
 * (with msce_errors.h, msce_limits.h, msce_domain.h, msce_version.h
 * beside it; <msce.h> still works and includes this one). Link with
 * `pkg-config --libs msce` (or --static for libmsce.a).
 *
 * Two ways to talk to a node:
 *
 * - Blocking calls on an msce_client (msce_connect_*, msce_connect): each
 *   call sends one request and waits for its answer; one msce_client per
 *   thread.
 * - The event-loop API on an msce_async (msce_async_new): the caller polls
 *   a file descriptor in its own loop (libuv, a GUI toolkit, poll()),
 *   calls msce_async_step() when it is ready or a timeout expires, and
 *   gets each answer through a callback. Every request is pipelined;
 *   watches stream on the same connection; it reconnects by itself,
 *   failing over between centers.
 *
 * Every call returns 0 or an enum msce_error code (msce_strerror gives its
 * text, msce_errname its name) and leaves a message naming what was wrong
 * (which field, which rule, which limit) in msce_errmsg(c), valid until the
 * next call on c.
 *
 * Ownership: strings and buffers passed in are borrowed for the duration
 * of the call. Objects returned through an out pointer (msce_record,
 * msce_page, msce_status, msce_conflicts) belong to the caller, who frees
 * them with their _free function; pointers obtained from them stay valid
 * until that free.
 *
 * Growth (client/README.md, "ABI policy"): structs that end in `reserved`
 * members can grow into that space, so their size never changes; later
 * versions give it a meaning whose zero is today's behaviour. Initialise
 * the ones you fill (msce_put_opts, msce_registration, ...) with
 * designated initialisers or = {0}: a call given one whose reserved
 * members are not zero fails with MSCE_EINVAL. Structs without reserved
 * members (msce_field, msce_put, msce_scan_opts, msce_cursor) are frozen:
 * new options for them come as new functions. Option sets that are
 * expected to grow are opaque objects with setters (msce_conninfo). */
#ifndef MSCE_H
#define MSCE_H

#include <stddef.h>
#include <stdint.h>

#include "msce_domain.h"
#include "msce_errors.h"
#include "msce_limits.h"

#ifdef __cplusplus
extern "C" {
#endif

/* MSCE_VERSION ("0.2.0"), MSCE_VERSION_MAJOR, _MINOR, _PATCH: made from
 * the one version in the build (CMakeLists.txt project()). */
#include "msce_version.h"
#define MSCE_VERSION_STRING MSCE_VERSION

/* The library's version at run time; compare with the macros. */
const char *msce_version(void);
/* "out of memory", ... for an enum msce_error code. Static string. */
const char *msce_strerror(int code);
/* "ENOMEM", ... for an enum msce_error code. Static string. */
const char *msce_errname(int code);

typedef struct msce_client msce_client;

/* ---- connections ------------------------------------------------------- */

/* On failure *out is still set (so msce_errmsg works) and must be closed
 * with msce_close; the code says what failed: MSCE_EUNAVAIL (nothing
 * listens there, or no center answered), MSCE_ENOTFOUND (a key or config
 * file missing), MSCE_EPERM (a secret key file others may read),
 * MSCE_ECORRUPT (a key that is not base64 of 32 bytes), MSCE_EAUTH (the
 * handshake refused: wrong keys or cluster name). These connect to one node, wait for its answers without
 * a limit (see msce_set_timeout) and do not reconnect: once the connection
 * is lost, every call returns the error. msce_connect below does. Over
 * TCP the node closes a connection left idle for its client_idle_timeout
 * (5 min by default), after which a client from msce_connect_tcp answers
 * MSCE_ECLOSED for good: a desk that keeps its client open between
 * customers should use msce_connect. */
int msce_connect_unix(const char *path, msce_client **out);
/* The socket named in a node's config file ([node] socket). */
int msce_connect_config(const char *config_path, msce_client **out);
/* TCP with Noise: hostport "10.0.2.10:7402", the client's secret key file
 * (mode 0600, as `msce keygen` writes it), the node's *public* key (base64,
 * as in the node's .pub file; never its [node] key path) and the cluster
 * name. Connect and handshake within 5 s. */
int msce_connect_tcp(const char *hostport, const char *key_file,
		     const char *node_key_base64, const char *cluster,
		     msce_client **out);
void msce_close(msce_client *c);
const char *msce_errmsg(const msce_client *c);
/* Every later request on c waits at most ms for its answer (0: no limit,
 * the default for msce_connect_*), then returns MSCE_ETIMEOUT; a write
 * may still commit after that. A put with min_sites waits ms beyond its
 * own timeout_ms. */
void msce_set_timeout(msce_client *c, unsigned ms);

/* Connection settings: the centers to use, in order of preference, the
 * client's identity for TCP, timeouts and reconnection. Built once, used
 * by msce_connect and msce_async_new (which copy what they need). */
typedef struct msce_conninfo msce_conninfo;

msce_conninfo *msce_conninfo_new(void); /* NULL when out of memory */
void msce_conninfo_free(msce_conninfo *ci);
/* Why the last msce_conninfo_* call on ci failed. */
const char *msce_conninfo_errmsg(const msce_conninfo *ci);
/* Adds a center reached through a node's unix socket. */
int msce_conninfo_add_unix(msce_conninfo *ci, const char *path);
/* Adds the unix socket named in a node's config file. */
int msce_conninfo_add_config(msce_conninfo *ci, const char *config_path);
/* Adds a center reached over TCP: hostport and that node's public key
 * (base64). Needs msce_conninfo_set_client_key. A host name is resolved
 * when connecting, with getaddrinfo, which blocks: give addresses to
 * keep an event loop from waiting on DNS. */
int msce_conninfo_add_tcp(msce_conninfo *ci, const char *hostport,
			  const char *node_key_base64);
/* The client's secret key file (read now; kept in locked memory and wiped
 * when ci is freed) and the cluster name, for TCP centers. */
int msce_conninfo_set_client_key(msce_conninfo *ci, const char *key_file,
				 const char *cluster);
/* Connect (and handshake) within connect_ms, default 5000; each request
 * answered within request_ms, default 30000 (MSCE_NO_TIMEOUT: no limit). 0
 * keeps the default. */
#define MSCE_NO_TIMEOUT 0xffffffffu
void msce_conninfo_set_timeouts(msce_conninfo *ci, unsigned connect_ms,
				unsigned request_ms);
/* Reconnection after a lost connection (on by default): the centers are
 * tried in turn, starting with the one just lost, then again after
 * min_ms, doubling up to max_ms between rounds (defaults 100 and 5000; 0
 * keeps the default). enable = 0: a lost connection stays lost. */
void msce_conninfo_set_reconnect(msce_conninfo *ci, int enable,
				 unsigned min_ms, unsigned max_ms);

/* A blocking client over ci's centers: the first that answers. With
 * reconnection on, a call made after the connection was lost reconnects
 * first (trying every center), a read (get, scan, status, conflicts) whose
 * connection fails under it is sent again once, and a watch resumes from
 * where it was. A write whose connection failed before its answer returns
 * MSCE_ECLOSED: it may or may not have committed (read it back to know).
 * A request with no answer within the request timeout returns
 * MSCE_ETIMEOUT (a write may still commit) and, when ci lists more than
 * one center, gives that center up: the next call connects to the next
 * one (a center that took the connection and stopped answering: a
 * stopped msced, a stalled disk). On failure *out is set as for
 * msce_connect_unix. */
int msce_connect(const msce_conninfo *ci, msce_client **out);
/* The center c is connected to ("unix:PATH" or "tcp:HOSTPORT"). */
const char *msce_center(const msce_client *c);

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
	uint32_t origin; /* the writer that made the change */
	uint64_t seq;
	uint64_t hlc;
	uint32_t sites; /* centers known to hold it when acknowledged */
	void *reserved[2];
};

/* The put may open a case for a person this center has not seen (see
 * "Domain helpers" below). */
#define MSCE_PUT_ALLOW_UNKNOWN_PERSON 0x1u

struct msce_put_opts {
	/* Acknowledge only once this many centers hold the write durably
	 * (0 or 1: this node). On timeout the call returns MSCE_ETIMEOUT;
	 * the write stays committed at this node and replicates on. */
	unsigned min_sites;
	uint64_t timeout_ms; /* 0 = MSCE_PUT_DEFAULT_TIMEOUT_MS */
	unsigned flags;	     /* MSCE_PUT_* */
	void *reserved[3];   /* zero */
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
 * was received (msce_pending(c) == 0). When msce_put_recv fails because
 * the connection was lost (MSCE_ECLOSED), or timed out (MSCE_ETIMEOUT)
 * with other centers in the conninfo (the next call goes to the next
 * one), the puts not yet answered are given up: msce_pending(c) is 0 and
 * each of them may or may not have been written. A timeout with one
 * center keeps them: msce_put_recv may be called again. The event-loop
 * API pipelines every kind of request. */
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

/* Writes n (at most MSCE_MAX_BATCH) records in one request, committed
 * together. Each write is checked on its own, in order, as if sent alone
 * after the ones before it (a case may name a person registered earlier
 * in the batch): codes[i] (if codes is not NULL) is 0 or why write i was
 * refused; res[i] (if res is not NULL) its change. Returns 0 when the
 * batch was processed, even if some writes were refused. */
int msce_put_batch(msce_client *c, const struct msce_put *puts, size_t n,
		   struct msce_write_result *res, int *codes);
/* The same with opts->flags (MSCE_PUT_*) for every write of the batch;
 * min_sites and timeout_ms must be 0 (a batch is acknowledged once
 * committed here). opts may be NULL. */
int msce_put_batch_opts(msce_client *c, const struct msce_put *puts,
			size_t n, const struct msce_put_opts *opts,
			struct msce_write_result *res, int *codes);
/* Why write i of c's last batch was refused, in the node's words (which
 * field, which rule); "" if it was not, or there is no write i. Valid
 * until the next batch on c or msce_close. */
const char *msce_batch_errmsg(const msce_client *c, size_t i);

/* ---- reads --------------------------------------------------------------- */

struct msce_value {
	const char *name;
	const void *value; /* not NUL-terminated; value_len bytes */
	size_t value_len;
	uint64_t hlc; /* the version of this value */
	uint32_t origin;
	size_t nconflicts; /* concurrent values this one replaced unseen */
	void *reserved[2];
};

typedef struct msce_record msce_record;

/* Reads a record: MSCE_ENOTFOUND if it has no visible field (or is a
 * registration, case or event without its required fields). MSCE_ETOOBIG
 * if it is larger than one reply (MSCE_MAX_MESSAGE over TCP; only a record
 * merged from concurrent writes at several centers can be): read it in
 * parts with msce_get_fields. */
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
	/* Records per page: 0 = MSCE_SCAN_DEFAULT_LIMIT; more than
	 * MSCE_MAX_SCAN_LIMIT is cut to it. A page may also end early, by
	 * size; only msce_page_next() == NULL means the end. */
	unsigned limit;
};

typedef struct msce_page msce_page;

int msce_scan(msce_client *c, const char *collection,
	      const struct msce_scan_opts *opts, msce_page **out);
size_t msce_page_count(const msce_page *p);
const msce_record *msce_page_record(const msce_page *p, size_t i);
/* Cursor for the next page (pass as opts.after), or NULL at the end. A
 * page may hold fewer records than the limit (even none) and still have a
 * next one. */
const char *msce_page_next(const msce_page *p);
void msce_page_free(msce_page *p);

/* ---- status ------------------------------------------------------------------ */

/* A lag not known: the peer has not spoken to the node since it started. */
#define MSCE_LAG_UNKNOWN UINT64_MAX

struct msce_peer_status {
	uint32_t node;
	int connected;
	uint64_t lag_changes;     /* changes it lacks that we hold, or
				     MSCE_LAG_UNKNOWN */
	uint64_t lag_ms;          /* how far behind, by change time, or
				     MSCE_LAG_UNKNOWN */
	uint64_t last_contact_ms; /* unix ms of its last message, 0 = never */
	int64_t clock_offset_ms;  /* its clock minus ours */
	void *reserved[2];
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
/* Open conflicts; UINT64_MAX when the node could not count them (its store
 * cannot be read: the status's problems say why). */
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
	void *reserved[2];
};

typedef struct msce_conflicts msce_conflicts;

/* Open conflicts, of one collection or all (NULL); limit 0 =
 * MSCE_CONFLICTS_DEFAULT_LIMIT. */
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

/* Origins a cursor can hold: every origin of a version vector. An origin
 * (a writer) is a node id in its low 16 bits and an incarnation in the
 * high 16. */
#define MSCE_CURSOR_MAX MSCE_MAX_ORIGINS

/* A position in the change stream: the highest seq seen per origin. Zero
 * it (n = 0) for "nothing seen": the whole history. */
struct msce_cursor {
	size_t n;
	uint32_t origin[MSCE_CURSOR_MAX];
	uint64_t seq[MSCE_CURSOR_MAX];
};

/* A cursor as text, to save it: "origin:seq,origin:seq" in decimal (""
 * for an empty one), at most MSCE_CURSOR_TEXT_MAX bytes with the NUL.
 * msce_cursor_format returns MSCE_ETOOBIG if size is too small;
 * msce_cursor_parse MSCE_EINVAL for text that is not a cursor. */
#define MSCE_CURSOR_TEXT_MAX (MSCE_CURSOR_MAX * 32 + 1)
int msce_cursor_format(const struct msce_cursor *cur, char *buf, size_t size);
int msce_cursor_parse(const char *text, struct msce_cursor *out);

struct msce_event {
	const char *collection, *key;
	int is_delete;
	uint32_t origin;
	uint64_t seq, hlc;
	size_t nfields;
	const struct msce_value *fields; /* name, value, version */
	void *reserved[2];
};

/* Where a watch starts. */
enum msce_watch_from {
	MSCE_WATCH_FROM_START = 0,  /* every change the node's log holds */
	MSCE_WATCH_FROM_NOW = 1,    /* only what commits after the call */
	MSCE_WATCH_FROM_CURSOR = 2, /* after a saved cursor */
};

/* Starts streaming the changes after cursor (NULL = from the start) of
 * one collection or all (NULL). The connection then serves only the
 * stream; close it to stop. */
int msce_watch(msce_client *c, const char *collection,
	       const struct msce_cursor *after);
/* The same, from where `from` says (cursor is read for
 * MSCE_WATCH_FROM_CURSOR only). From now: the node's current vector (a
 * status request) is the cursor. */
int msce_watch_from(msce_client *c, const char *collection,
		    enum msce_watch_from from,
		    const struct msce_cursor *cursor);
/* Waits up to timeout_ms (0 = forever) for the next change: 0 and *ev
 * filled (valid until the next call), MSCE_ETIMEOUT, or the error that
 * ended the stream (MSCE_ENOTFOUND: the cursor fell below the node's log
 * floor; see msce_status_cursor). cursor (may be NULL) is advanced past
 * the event. On a client from msce_connect a lost connection is
 * re-established and the watch resumes after the last event returned:
 * nothing is lost or given twice. If no center answers within
 * timeout_ms, the reconnection's error (MSCE_EUNAVAIL, ...) is returned
 * and the watch stays: the next call tries again. */
int msce_watch_next(msce_client *c, struct msce_event *ev, uint64_t timeout_ms,
		    struct msce_cursor *cursor);
/* The position after the last event msce_watch_next returned. */
void msce_watch_cursor(const msce_client *c, struct msce_cursor *out);

/* ---- administration ------------------------------------------------------ */

/* Writes a consistent, compacted copy of the store into directory path on
 * the node's machine (must not exist). Admin role only. */
int msce_backup(msce_client *c, const char *path, uint64_t *bytes);

/* ---- domain helpers (validated here by the node's rules) ----------------- */

/* The allowed values of the typed collections' enumerated fields, in
 * msce_domain.h as enums (enum msce_case_status: MSCE_CASE_STATUS_OPEN,
 * ...) and lists. The value's text for an enum constant, NULL out of
 * range: */
const char *msce_domain_name(enum msce_domain_list list, int value);
/* The enum constant for a value's text, -1 if the list does not allow it. */
int msce_domain_value(enum msce_domain_list list, const char *name);
/* How many values the list has (its _COUNT constant). */
size_t msce_domain_count(enum msce_domain_list list);

/* NULL members are not written. The key is NATIONALITY:DOCUMENT_NUMBER. */
struct msce_registration {
	const char *name, *nationality, *document_type, *document_number;
	const char *birth_date, *phone, *email, *address, *district;
	const char *visa_type, *visa_expiry, *registered_at, *center;
	void *reserved[4]; /* zero */
};
int msce_registration_put(msce_client *c, const struct msce_registration *r,
			  struct msce_write_result *res);

/* A case names its person, a registration key. The node refuses to write
 * a case naming a person it has never seen (MSCE_ENOTFOUND, "case.person:
 * ... no registration"), so a typo cannot open a case for nobody. A
 * registration made at another center moments ago may not have arrived
 * yet: set allow_unknown_person (MSCE_PUT_ALLOW_UNKNOWN_PERSON in a raw
 * put) to write the case anyway, once the person has been checked some
 * other way. Updates that do not write `person` are not checked. */
struct msce_case {
	const char *person; /* a registration key */
	const char *category, *status, *center, *assignee, *summary;
	int allow_unknown_person;
	void *reserved[4]; /* zero */
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
	void *reserved[4];	/* zero */
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
	void *reserved[4]; /* zero */
};
/* key is DATE/ID, e.g. "2026-12-05/qa-visa". */
int msce_event_put(msce_client *c, const char *date, const char *id,
		   const struct msce_event_rec *e,
		   struct msce_write_result *res);

/* ---- the event-loop API ------------------------------------------------- */

/* An msce_async is a connection driven by the caller's loop. It has one
 * file descriptor for its whole life (an epoll set holding the current
 * socket and a timer, so reconnects and timeouts need nothing from the
 * caller): watch it for reading, and call msce_async_step when it is
 * readable. With libuv:
 *
 *   msce_async_new(ci, &a);
 *   uv_poll_init(loop, &poll, msce_async_fd(a));
 *   uv_poll_start(&poll, UV_READABLE, on_ready);
 *   on_ready: msce_async_step(a, MSCE_WANT_READ);
 *
 * (client/examples/uvdesk.c is a whole front end). A loop that prefers
 * its own timer may also wait at most msce_async_timeout() ms. Callbacks
 * run inside msce_async_step, and inside msce_async_free for the requests
 * and watches it ends (never inside the call that makes a request, never
 * from another thread); they may make new requests, and may call
 * msce_async_free.
 *
 * Every request is sent at once when connected (pipelined: they do not
 * wait for each other), or when the connection is up again. Each one ends
 * in exactly one call of its callback: its answer, or MSCE_ETIMEOUT when
 * none came within the request timeout, or MSCE_ECLOSED when the
 * connection was lost after a write was sent (it may or may not have
 * committed: read it back) or the msce_async was freed. Reads in flight
 * when a connection is lost are sent again on the next one.
 *
 * A request sent and not answered within the request timeout ends in
 * MSCE_ETIMEOUT; when the conninfo lists more than one center, the
 * connection is then given up as lost (a center that keeps it but stops
 * answering: a stopped or hung msced, a stalled disk) and the next center
 * is tried: reads in flight go again there, writes in flight end in
 * MSCE_ECLOSED as above. With one center the connection stays. */
typedef struct msce_async msce_async;

#define MSCE_WANT_READ 1
#define MSCE_WANT_WRITE 2

/* Copies ci and starts connecting to its first center (a host name is
 * resolved now). On failure *out is NULL. */
int msce_async_new(const msce_conninfo *ci, msce_async **out);
/* Ends every request (MSCE_ECLOSED) and watch, closes the connection and
 * frees a. Inside a callback, a is freed when the step returns. */
void msce_async_free(msce_async *a);
/* The file descriptor to poll for reading; the same for a's life. */
int msce_async_fd(const msce_async *a);
/* What to poll it for: MSCE_WANT_READ (always, today). */
int msce_async_events(const msce_async *a);
/* Milliseconds until msce_async_step must run even if the fd shows
 * nothing (the fd's own timer fires then too), or -1. */
int msce_async_timeout(const msce_async *a);
/* Does the I/O that is ready, and runs the callbacks that are due; ready
 * is what poll said (MSCE_WANT_* bits; a hint: 0 is fine, e.g. from a
 * timer). Returns 0, or MSCE_ECLOSED once the connection is lost for good
 * (reconnection off, or a is being freed). */
int msce_async_step(msce_async *a, int ready);
/* 1 while connected to a center. */
int msce_async_connected(const msce_async *a);
/* The center connected to or being tried ("unix:PATH", "tcp:HOSTPORT"). */
const char *msce_async_center(const msce_async *a);
/* What failed last: a request refused when made (its bad argument), or
 * the last connection or connection attempt ("" once connected). */
const char *msce_async_errmsg(const msce_async *a);
/* Requests waiting for their answers (watches not counted). */
size_t msce_async_pending(const msce_async *a);

/* Connection states, reported to the state callback. */
enum msce_async_state {
	MSCE_ASYNC_CONNECTING = 0, /* trying a center */
	MSCE_ASYNC_READY = 1,	   /* connected: requests flow */
	MSCE_ASYNC_DOWN = 2,	   /* lost (code, msg say why); retrying */
	MSCE_ASYNC_CLOSED = 3,	   /* lost for good */
};
typedef void (*msce_state_fn)(void *ctx, enum msce_async_state state,
			      int code, const char *msg, const char *center);
void msce_async_on_state(msce_async *a, msce_state_fn fn, void *ctx);
/* The purpose sent with every later request and watch of a, as
 * msce_set_purpose; MSCE_EINVAL if it is not one of MSCE_PURPOSES. */
int msce_async_set_purpose(msce_async *a, const char *purpose);

/* Callbacks: code 0 or why the request failed, with msg saying what was
 * wrong (valid during the call). Objects handed over (rec, page, status,
 * conflicts) are the callback's to free, and NULL when code is not 0.
 * Structs passed by pointer are valid during the call only. */
typedef void (*msce_write_fn)(void *ctx, int code, const char *msg,
			      const struct msce_write_result *res);
typedef void (*msce_batch_fn)(void *ctx, int code, const char *msg, size_t n,
			      const struct msce_write_result *res,
			      const int *codes);
typedef void (*msce_record_fn)(void *ctx, int code, const char *msg,
			       msce_record *rec);
typedef void (*msce_page_fn)(void *ctx, int code, const char *msg,
			     msce_page *page);
typedef void (*msce_status_fn)(void *ctx, int code, const char *msg,
			       msce_status *status);
typedef void (*msce_conflicts_fn)(void *ctx, int code, const char *msg,
				  msce_conflicts *list);

/* Each returns 0 when the request is queued (its callback will run), or an
 * error (bad arguments the library checks itself, out of memory, closed
 * for good) and then never calls fn; what the node refuses (its rules for
 * names, keys and typed fields) comes through fn. fn may be NULL. A put's res carries the change on 0, and also
 * on MSCE_ETIMEOUT of min_sites (committed here, not yet elsewhere). */
int msce_async_put(msce_async *a, const char *collection, const char *key,
		   const struct msce_field *fields, size_t n,
		   const struct msce_put_opts *opts, msce_write_fn fn,
		   void *ctx);
int msce_async_delete(msce_async *a, const char *collection, const char *key,
		      msce_write_fn fn, void *ctx);
int msce_async_put_batch(msce_async *a, const struct msce_put *puts, size_t n,
			 const struct msce_put_opts *opts, msce_batch_fn fn,
			 void *ctx);
/* Inside a batch callback on a: why write i was refused, in the node's
 * words, or "" (write i succeeded, or not inside such a callback). Valid
 * until the callback returns. */
const char *msce_async_batch_errmsg(const msce_async *a, size_t i);
int msce_async_get(msce_async *a, const char *collection, const char *key,
		   const char *const *fields, size_t nfields,
		   msce_record_fn fn, void *ctx);
int msce_async_scan(msce_async *a, const char *collection,
		    const struct msce_scan_opts *opts, msce_page_fn fn,
		    void *ctx);
int msce_async_status(msce_async *a, msce_status_fn fn, void *ctx);
int msce_async_conflicts(msce_async *a, const char *collection,
			 unsigned limit, msce_conflicts_fn fn, void *ctx);
int msce_async_resolve(msce_async *a, const char *collection, const char *key,
		       const char *field, const void *value, size_t value_len,
		       msce_write_fn fn, void *ctx);

/* A watch on an msce_async: every change of one collection (or all: NULL)
 * from where `from` says, then each new change as it commits, each exactly
 * once and in seq order per origin. fn gets code 0 with the event and the
 * cursor just past it (save it to resume later), both valid during the
 * call. When the connection is lost the watch resumes on the next one
 * after the last event given: nothing is lost or given twice. It ends,
 * with fn called once with a code and no event, when the node ends it
 * (MSCE_ENOTFOUND: the cursor fell below the log floor: rescan, then watch
 * from msce_status_cursor), when it is cancelled (MSCE_ECLOSED) or when a
 * is freed. */
typedef void (*msce_event_fn)(void *ctx, int code, const char *msg,
			      const struct msce_event *ev,
			      const struct msce_cursor *cursor);
typedef struct msce_watcher msce_watcher;
/* *out (may be NULL) identifies the watch for msce_watch_cancel until fn
 * has been called with an error. */
int msce_async_watch(msce_async *a, const char *collection,
		     enum msce_watch_from from,
		     const struct msce_cursor *cursor, msce_event_fn fn,
		     void *ctx, msce_watcher **out);
/* Stops delivering a watch's events (fn gets MSCE_ECLOSED, inside the next
 * step). The node stops streaming them with the connection. */
void msce_watch_cancel(msce_watcher *w);

#ifdef __cplusplus
}
#endif

#endif
