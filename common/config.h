/* SPDX-License-Identifier: Apache-2.0 */
/* Node configuration: one INI file per node (see DESIGN.md "Config").
 *
 * Parsing is strict because a typo in a replication config fails silently
 * otherwise: unknown sections or keys, duplicates and bad values are all
 * errors, each naming the file, the line and the setting:
 *
 *   node.conf:7: [node] id: "abc" is not a node id (1..65535)
 *
 * Paths (data_dir, key, socket) are used as written; relative ones resolve
 * against the daemon's working directory. Lines are limited by libinih's
 * line buffer (about 200 characters); longer ones are refused, not cut.
 * So the lists of keys ([cluster] retired, [peer] sign_key, [node]
 * old_sign_key) may be given on several lines, each adding to the list in
 * order (a key repeated counts once); any other setting given twice is an
 * error. */
#ifndef MSCE_CONFIG_H
#define MSCE_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "retention.h"

/* Ordered so that `role >= CONFIG_ROLE_RW` means "may write". */
enum { CONFIG_ROLE_RO = 1, CONFIG_ROLE_RW, CONFIG_ROLE_ADMIN };

#define CONFIG_NAME_MAX 64
#define CONFIG_MAX_PEERS 1024
#define CONFIG_MAX_CLIENTS 4096
#define CONFIG_DEFAULT_CLOCK_SKEW_MS 60000
#define CONFIG_DEFAULT_LOG_RETENTION 1000000
/* Handshake and client connection limits (deploy/README.md "Limits"). */
#define CONFIG_DEFAULT_MAX_PENDING 64	     /* per listener */
#define CONFIG_DEFAULT_MAX_PENDING_PER_ADDR 8 /* per IPv4 address / IPv6 /64 */
#define CONFIG_DEFAULT_HANDSHAKE_TIMEOUT_MS 5000
#define CONFIG_DEFAULT_CLIENT_IDLE_MS (UINT64_C(300) * 1000)
#define CONFIG_DEFAULT_CLIENT_CONNS_PER_KEY 32
#define CONFIG_DEFAULT_CLIENT_PARTIAL ((size_t)4 << 20)	/* per connection */
#define CONFIG_DEFAULT_CLIENT_PARTIAL_TOTAL ((size_t)64 << 20)
#define CONFIG_MAX_CLIENT_PARTIAL ((size_t)4 << 20) /* the largest request */
#define CONFIG_MIN_CLIENT_PARTIAL ((size_t)64 << 10)

/* Signing keys per center (a current one and 15 rotations) and retired
 * keys in all; each list may span several lines. */
#define CONFIG_MAX_SIGN_KEYS 16
#define CONFIG_MAX_RETIRED 64

struct config_peer {
	char name[CONFIG_NAME_MAX]; /* from [peer NAME] */
	uint32_t id;                /* 1..65535, not the node's own */
	char address[256];          /* host:port, checked by config_parse_addr */
	uint8_t public_key[32];
	/* Its origin signing keys (sign_key, a list for rotation). */
	uint8_t sign_keys[CONFIG_MAX_SIGN_KEYS][32];
	size_t nsign_keys;
};

/* A removed center's signing key, kept so that what it wrote can still
 * be checked ([cluster] retired = ID:KEY, ...). */
struct config_retired {
	uint32_t id;
	uint8_t sign_key[32];
};

struct config_client {
	char name[CONFIG_NAME_MAX]; /* from [client NAME] */
	uint8_t public_key[32];
	int role; /* CONFIG_ROLE_RO, _RW, _ADMIN */
};

struct config {
	char cluster[CONFIG_NAME_MAX];
	uint32_t node_id;
	char node_name[CONFIG_NAME_MAX];
	char data_dir[512];
	char key_path[512];
	char listen[256];
	char client_listen[256];  /* "" = no TCP client listener */
	char socket_path[512];    /* "" = no unix socket; else fits sun_path */
	char metrics_listen[256]; /* "" = no metrics endpoint */
	uint64_t max_clock_skew_ms; /* default 60s */
	uint64_t log_retention;     /* default 1000000 changes per origin */
	int log_level;              /* enum log_level, default LOG_INFO */
	int fsync;                  /* 1 (default) or 0, for tests only */
	/* Limits, each with the default above. */
	size_t max_pending_handshakes;  /* per listener, peer and client */
	size_t max_pending_per_address; /* of which from one address */
	uint64_t handshake_timeout_ms;  /* accept to confirmation */
	uint64_t client_idle_timeout_ms; /* open, nothing in flight or read */
	size_t client_max_connections_per_key;
	size_t client_max_partial_bytes; /* unfinished request, per connection */
	size_t client_max_partial_total; /* all connections together */
	char backup_dir[512]; /* "" = no backup over TCP */
	/* The master key file (encryption at rest); "" = values in the
	 * clear. Never under data_dir. */
	char master_key_path[512];
	/* This node's own earlier origin signing keys ([node] old_sign_key,
	 * after a rotation): what it signed with them comes back from the
	 * peers, in logs and snapshot covers, when its store is rebuilt. */
	uint8_t old_sign_keys[CONFIG_MAX_SIGN_KEYS][32];
	size_t nold_sign_keys;
	size_t npeers;
	struct config_peer *peers; /* owned by the config */
	size_t nclients;
	struct config_client *clients; /* owned by the config */
	size_t nretired;
	struct config_retired retired[CONFIG_MAX_RETIRED];
	/* [retention]: anchor RETENTION_NONE when not set. */
	struct retention_rule retention_registration, retention_case;
};

/* Reads and parses the file at path. *out is overwritten (pass a fresh or
 * freed one); on success the caller owns it and frees it with
 * config_free(), on failure it is left empty. The file decides who is
 * admin: a symbolic link, or a file group or others may write, is refused
 * (MSCE_EPERM). Returns 0, MSCE_ECONFIG, MSCE_EPERM, MSCE_EIO,
 * MSCE_ENOTFOUND or MSCE_ENOMEM, with the reason in e. */
int config_load(const char *path, struct config *out, struct err *e);
/* Same from a NUL-terminated string (borrowed); name_for_errors is what
 * messages call the file. */
int config_parse_string(const char *text, const char *name_for_errors,
			struct config *out, struct err *e);
/* Frees what the config owns and zeroes it; safe on a zeroed config. */
void config_free(struct config *c);

/* Splits "1.2.3.4:7401", "[::1]:7401" or "localhost:7401" into host
 * (without brackets, written to the caller's buffer) and port (1..65535).
 * Only checks the syntax: names are not resolved. Returns 0 or
 * MSCE_EINVAL. */
int config_parse_addr(const char *s, char *host, size_t hostlen, int *port,
		      struct err *e);
/* Parses "60s", "500ms", "2m", "1h" or a plain number of seconds into
 * milliseconds. Returns 0 or MSCE_EINVAL. */
int config_parse_duration_ms(const char *s, uint64_t *ms, struct err *e);
/* Parses "4MiB", "512KiB", "1GiB" (K, M, G alike: powers of 1024) or a
 * plain number of bytes. Returns 0 or MSCE_EINVAL. */
int config_parse_size(const char *s, uint64_t *bytes, struct err *e);

/* Where a backup asked for as requested may be written, into out (cap
 * bytes). remote: asked over TCP (a [client] with the admin role), which
 * may only write a new directory directly under backup_dir, named by a
 * relative name ("nightly-1") or an absolute path whose parent is
 * backup_dir itself (after symlinks); without backup_dir it may not back
 * up at all. Local (the unix socket): an absolute path anywhere, or a
 * relative name under backup_dir. Returns 0, or MSCE_EPERM (not allowed,
 * the reason in e) or MSCE_EINVAL (malformed). */
int config_backup_path(const struct config *cfg, const char *requested,
		       int remote, char *out, size_t cap, struct err *e);
/* Where the node writes the backup into path before it is whole, marked
 * and on disk: a hidden sibling, ".NAME.partial" beside NAME (so the CLI
 * can watch it grow, and a glob of backups never picks it). Writes it into
 * out (cap bytes); returns 0, or -1 if it does not fit. */
int config_backup_partial(const char *path, char *out, size_t cap);

/* Lookups return a pointer into c (valid until config_free) or NULL. */
const struct config_peer *config_peer_by_key(const struct config *c,
					     const uint8_t key[32]);
const struct config_client *config_client_by_key(const struct config *c,
						 const uint8_t key[32]);
const struct config_peer *config_peer_by_id(const struct config *c,
					    uint32_t id);

/* "ro", "rw", "admin"; static string, "?" if unknown. */
const char *config_role_name(int role);

#endif
