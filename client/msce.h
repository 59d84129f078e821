/* libmsce: the client library for msce nodes.
 *
 * Blocking calls on a connection handle; one handle per thread. Every call
 * returns 0 or an error code (msce_strerror names it) and leaves a message
 * saying what was wrong in msce_errmsg(). Strings passed in are borrowed
 * for the duration of the call. */
#ifndef MSCE_H
#define MSCE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define MSCE_VERSION_MAJOR 0
#define MSCE_VERSION_MINOR 1
#define MSCE_VERSION_PATCH 0

typedef struct msce_client msce_client;

/* Connects to a node's unix socket. *out is owned by the caller and freed
 * with msce_close. */
int msce_connect_unix(const char *path, msce_client **out);
/* Connects through the socket named in a node's config file. */
int msce_connect_config(const char *config_path, msce_client **out);
void msce_close(msce_client *c);

/* Last error message of c (valid until the next call on c). */
const char *msce_errmsg(const msce_client *c);
const char *msce_strerror(int code);
/* "0.1.0": the library's runtime version. */
const char *msce_version(void);

struct msce_field {
	const char *name;  /* borrowed */
	const void *value; /* borrowed */
	size_t value_len;
};

struct msce_write_result {
	uint32_t origin; /* the node that made the change */
	uint64_t seq;
	uint64_t hlc;
};

/* Writes fields of collection/key, durably at the node. res may be NULL. */
int msce_put(msce_client *c, const char *collection, const char *key,
	     const struct msce_field *fields, size_t n,
	     struct msce_write_result *res);
/* One write of a batch. */
struct msce_put {
	const char *collection;
	const char *key;
	const struct msce_field *fields;
	size_t nfields;
	int is_delete; /* a record delete; fields ignored */
};

/* Writes n records in one request, committed together at the node. Each
 * write is checked on its own: codes[i] (if codes is not NULL) is 0 or the
 * reason write i was refused; res[i] (if res is not NULL) its change.
 * Returns 0 when the batch was processed, even if some writes were
 * refused. */
int msce_put_batch(msce_client *c, const struct msce_put *puts, size_t n,
		   struct msce_write_result *res, int *codes);

/* Deletes a record (a tombstone that replicates). res may be NULL. */
int msce_delete(msce_client *c, const char *collection, const char *key,
		struct msce_write_result *res);

#ifdef __cplusplus
}
#endif

#endif
