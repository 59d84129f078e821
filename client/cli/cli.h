/* SPDX-License-Identifier: Apache-2.0 */
/* What the msce commands share: the options every command takes, the
 * connection, the center names, and how an outcome is reported (text for
 * people on stderr/stdout; with --json, one JSON value on stdout for every
 * outcome, errors included).
 *
 * Exit codes (msce(1)): */
#ifndef MSCE_CLI_H
#define MSCE_CLI_H

#include <stdint.h>

#include <cjson/cJSON.h>

#include "client_internal.h"

enum {
	CLI_OK = 0,	/* done; healthy */
	CLI_NO = 1,	/* refused, not found, degraded, differ */
	CLI_FAIL = 2,	/* bad usage, node unreachable or too slow */
	CLI_DENIED = 3, /* permission denied (socket or config) */
};

#define CLI_DEFAULT_TIMEOUT_S 5.0
#define CLI_MAX_NAMES 64

struct cli {
	const char *cmd; /* the command, for messages */
	const char *config, *node, *key, *node_key, *cluster;
	double timeout_s; /* --timeout; < 0 when not given */
	int json;
	const char *purpose; /* --purpose: sent with every request */
	int reveal;	     /* --reveal: unmasked (admins; cli_connect checks) */
	msce_client *c;
	/* Center names from a status of the node (cli_names). */
	int have_names;
	size_t nnames;
	uint32_t name_id[CLI_MAX_NAMES];
	char name[CLI_MAX_NAMES][64];
};

/* Reports a failure (stderr; with --json also {"error":{...}} on stdout)
 * and returns exit_code. code is an msce error code (0: none). */
int cli_fail(struct cli *x, int exit_code, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* A usage error: the message, a hint to --help, exit 2. */
int cli_usage(struct cli *x, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* The exit code for a libmsce call that failed with rc (after connect):
 * 2 when the node did not answer (in time), else 1. */
int cli_exit_for(int rc);
/* Reports a failed libmsce call on x->c: its message, and the exit. */
int cli_call_failed(struct cli *x, int rc);

/* Connects (x->c) with the timeout applied. 0, or the exit code after
 * reporting why not. */
int cli_connect(struct cli *x);
/* The timeout in ms for calls (default CLI_DEFAULT_TIMEOUT_S). */
unsigned cli_timeout_ms(const struct cli *x);
/* One raw request; 0 and *r, or the exit code after reporting. */
int cli_call(struct cli *x, Msce__ClientRequest *req, Msce__ClientResponse **r);
/* A status of the node: 0 and *r (r->status set), or the exit code. */
int cli_status(struct cli *x, Msce__ClientResponse **r);
/* Learns the center names from a status (once); 0 or the exit code. */
int cli_names(struct cli *x);
void cli_names_from(struct cli *x, const Msce__StatusResult *s);
/* The name of center id ("" if unknown). origin: low 16 bits = center. */
const char *cli_name(const struct cli *x, uint32_t id);
/* "luohu (5)" or "node 5". */
const char *cli_center(const struct cli *x, uint32_t id, char *buf, size_t len);

/* Numbers from the command line: the whole string, in range; 0 or -1. */
int cli_parse_seconds(const char *s, double *out);
int cli_parse_uint(const char *s, unsigned long min, unsigned long max,
		   unsigned long *out);

/* What to show of a value or a key, masked (common/mask.h) unless
 * --reveal: a copy to free. Audit entries' record lines are masked too. */
char *cli_value(const struct cli *x, const char *coll, const char *field,
		const void *value, size_t len);
char *cli_key(const struct cli *x, const char *coll, const char *key);
/* {name: value} of a record's fields, as cli_value shows them. */
cJSON *cli_values_json(const struct cli *x, const Msce__Record *rec);
/* A NUL-terminated copy of len bytes at v; "" for an empty value (v may
 * be NULL then, as for a delete). NULL when out of memory. */
char *cli_strndup(const void *v, size_t len);

/* A response's own refusal (not found, bad collection, not allowed):
 * reports its code and reason, frees r, and returns exit code 1. */
int cli_refused(struct cli *x, Msce__ClientResponse *r);

/* Prints j as one line on stdout and frees it. */
void cli_print_json(cJSON *j);
void cli_hex(const uint8_t *p, size_t n, char *out);

/* Commands: argc/argv are the positional arguments after the options. */
struct cli_opts {
	/* command options, parsed by msce.c */
	const char *out, *prefix, *author, *after, *sign_pub, *master;
	const char *record, *client, *since; /* audit */
	unsigned long limit, count;
	double max_lag;
	int from_start;
};
int cmd_keygen(struct cli *x, const struct cli_opts *o, int argc, char **argv);
int cmd_put(struct cli *x, const struct cli_opts *o, int argc, char **argv);
int cmd_del(struct cli *x, const struct cli_opts *o, int argc, char **argv);
int cmd_get(struct cli *x, const struct cli_opts *o, int argc, char **argv);
int cmd_scan(struct cli *x, const struct cli_opts *o, int argc, char **argv);
int cmd_conflicts(struct cli *x, const struct cli_opts *o, int argc,
		  char **argv);
int cmd_resolve(struct cli *x, const struct cli_opts *o, int argc, char **argv);
int cmd_note(struct cli *x, const struct cli_opts *o, int argc, char **argv);
int cmd_watch(struct cli *x, const struct cli_opts *o, int argc, char **argv);
int cmd_status(struct cli *x, const struct cli_opts *o, int argc, char **argv);
int cmd_verify(struct cli *x, const struct cli_opts *o, int argc, char **argv);
int cmd_import(struct cli *x, const struct cli_opts *o, int argc, char **argv);
int cmd_export(struct cli *x, const struct cli_opts *o, int argc, char **argv);
int cmd_backup(struct cli *x, const struct cli_opts *o, int argc, char **argv);
/* privacy.c: personal data (issue 15). */
int cmd_audit(struct cli *x, const struct cli_opts *o, int argc, char **argv);
int cmd_person(struct cli *x, const struct cli_opts *o, int argc, char **argv);
int cmd_erase(struct cli *x, const struct cli_opts *o, int argc, char **argv);
int cmd_retention(struct cli *x, const struct cli_opts *o, int argc,
		  char **argv);

#endif
