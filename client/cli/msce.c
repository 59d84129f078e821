/* SPDX-License-Identifier: Apache-2.0 */
/* msce: the operators' command line tool, on libmsce.
 *
 *   msce [OPTIONS] COMMAND [OPTIONS] [ARGUMENTS]
 *
 * Options go before or after the command (getopt_long; `--` ends them).
 * The node is reached through its unix socket, named in its config (-c
 * CONFIG, default $MSCE_CONFIG: the admin role), or over TCP with a client
 * key (--node HOST:PORT --key FILE --node-key BASE64 [--cluster NAME]: the
 * role configured for that key). Every call waits at most --timeout
 * seconds for the node (default 5).
 *
 * Exit codes: 0 ok or healthy; 1 refused, not found, degraded, or nodes
 * that differ; 2 bad usage, node unreachable or not answering in time;
 * 3 permission denied (the socket or the config may not be opened).
 * With --json every outcome is one JSON value on stdout, errors included
 * ({"error": {"code": ..., "message": ..., "exit": ...}}). The commands
 * are in cmd_*.c; this file parses, dispatches and reports. */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "cli.h"
#include "error.h"
#include "keyfile.h"
#include "purpose.h"

/* ---- the commands ------------------------------------------------------ */

enum {
	O_OUT = 1 << 0,
	O_PREFIX = 1 << 1,
	O_LIMIT = 1 << 2,
	O_MAX_LAG = 1 << 3,
	O_AUTHOR = 1 << 4,
	O_FROM_START = 1 << 5,
	O_COUNT = 1 << 6,
	O_AFTER = 1 << 7,
	O_SIGN_PUB = 1 << 8,
	O_RECORD = 1 << 9,
	O_CLIENT = 1 << 10,
	O_SINCE = 1 << 11,
	O_MASTER = 1 << 12,
};

struct command {
	const char *name;
	int (*run)(struct cli *, const struct cli_opts *, int, char **);
	unsigned opts;		/* command options it takes (O_*) */
	int min_args, max_args; /* positional arguments; -1: no limit */
	const char *args;	/* its synopsis */
	const char *help;	/* what it does, its options */
};

static const struct command commands[] = {
    {"status", cmd_status, O_MAX_LAG, 0, 0, "[--max-lag SECONDS]",
     "The node, its links and what it knows of every center. Exit 0\n"
     "healthy, 1 degraded (a link down, a snapshot stalled, the node\n"
     "catching up or not yet writing, the store refusing writes, or a peer\n"
     "behind more than --max-lag), 2 when the node does not answer.\n"
     "  --max-lag SECONDS  degraded when a peer is further behind, or this\n"
     "                     node behind its peers by more\n"},
    {"verify", cmd_verify, 0, 0, 0, "",
     "Waits until every configured center reports the same digest at the\n"
     "same version vector, in reports received during this run. Exit 0\n"
     "when they agree, 1 when they still differ (or a center did not\n"
     "answer) after --timeout (default 30 s here), 2 when the node itself\n"
     "does not answer.\n"},
    {"get", cmd_get, 0, 2, 2, "COLLECTION KEY",
     "Prints a record's fields (--json: with versions and the centers\n"
     "known to hold it). Exit 1 when not found.\n"},
    {"put", cmd_put, 0, 3, -1, "COLLECTION KEY NAME=VALUE...",
     "Writes fields of a record; prints \"ok ORIGIN/SEQ\". Exit 1 when\n"
     "refused, with the reason (which field, which rule).\n"},
    {"del", cmd_del, 0, 2, 2, "COLLECTION KEY", "Deletes a record.\n"},
    {"scan", cmd_scan, O_PREFIX | O_LIMIT | O_AFTER, 1, 1, "COLLECTION",
     "Lists keys of a collection (--json: whole records, one a line).\n"
     "  --prefix P   keys starting with P\n"
     "  --after KEY  keys after KEY (the cursor of a previous page)\n"
     "  --limit N    at most N records (1..10000, default 100)\n"},
    {"conflicts", cmd_conflicts, O_LIMIT, 0, 1, "[COLLECTION]",
     "Open conflicts: which value won over which, at which centers.\n"
     "  --limit N    at most N (1..10000, default 1000)\n"},
    {"resolve", cmd_resolve, 0, 4, 4, "COLLECTION KEY FIELD VALUE",
     "Writes VALUE over the field's winner, closing its conflicts.\n"},
    {"note", cmd_note, O_AUTHOR, 2, 3, "add CASE TEXT | list CASE",
     "Adds a note to a case (prints its id) or lists a case's notes.\n"
     "  --author NAME  who wrote the note\n"},
    {"watch", cmd_watch, O_FROM_START | O_COUNT, 0, 1, "[COLLECTION]",
     "Follows changes live, one JSON line each, from now on (until\n"
     "interrupted).\n"
     "  --from-start  from the oldest change the node holds instead\n"
     "  --count N     stop after N changes\n"},
    {"import", cmd_import, 0, 1, 1, "FILE|-",
     "Writes records from JSON lines ({\"collection\", \"key\", \"fields\":\n"
     "{...}}, optional \"base\": {\"FIELD\": \"HLC/ORIGIN\"}, or \"delete\":\n"
     "true). Each refused or unreadable line is reported with its number\n"
     "and reason, in order; progress shows on a terminal. Exit 1 if any\n"
     "line was refused.\n"},
    {"export", cmd_export, 0, 0, -1, "[COLLECTION...]",
     "Prints records as JSON lines (default: the domain collections);\n"
     "progress shows on a terminal.\n"},
    {"backup", cmd_backup, 0, 1, 1, "PATH",
     "Makes the node write a consistent, compacted copy of its store into\n"
     "the new directory PATH on its machine; progress shows on a terminal.\n"
     "The copy itself may take longer than --timeout.\n"},
    {"audit", cmd_audit, O_RECORD | O_CLIENT | O_SINCE, 0, 0,
     "[--record COLL/KEY] [--client NAME] [--since TIME]",
     "Lists the audit log: who read or wrote which personal record\n"
     "(registration, case, case_note), when, at which center, how and\n"
     "why. Admin only. Reads of it are not audited.\n"
     "  --record COLL/KEY  entries naming this record\n"
     "  --client NAME      entries of this client ([client NAME], local)\n"
     "  --since TIME       from YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ (UTC)\n"},
    {"person", cmd_person, 0, 2, 2, "export NATIONALITY:DOCNUMBER",
     "Prints one JSON document with everything about one person: the\n"
     "registration, the cases that reference it, their notes and the\n"
     "audit entries about them. Admin, or rw with --purpose\n"
     "subject-access. Audited.\n"},
    {"erase", cmd_erase, 0, 2, 2, "registration|case KEY",
     "Deletes a person (their registration, the cases that reference it\n"
     "and those cases' notes) or one case with its notes, at every\n"
     "center, in one batch with an erasure entry in the audit log; prints\n"
     "what it deleted. A write made at another center before the erasure\n"
     "reached it survives as a delete conflict: erase again. Admin only.\n"},
    {"retention", cmd_retention, 0, 1, 1, "preview|apply",
     "What the node's [retention] rules select now (preview), or erases\n"
     "it as erase does (apply). Admin only.\n"},
    {"keygen", cmd_keygen, O_OUT | O_SIGN_PUB | O_MASTER, 0, 0,
     "--out PREFIX | --sign-pub PREFIX | --master FILE",
     "--out makes a key pair: PREFIX.key (secret, mode 0600), PREFIX.pub\n"
     "and PREFIX.sign.pub, the center's origin signing key derived from\n"
     "the secret (the other centers' configs pin it as sign_key).\n"
     "--sign-pub writes PREFIX.sign.pub for an existing PREFIX.key.\n"
     "--master writes FILE (mode 0600): a new master key for encryption\n"
     "at rest ([node] master_key). Keep it outside the data directory and\n"
     "back it up apart from the data: without it the store cannot be\n"
     "read.\n"},
};
#define NCOMMANDS (sizeof commands / sizeof commands[0])

static const char common_help[] =
    "Options of every command:\n"
    "  -c, --config FILE     the node's config: its unix socket, as admin\n"
    "                        (default $MSCE_CONFIG)\n"
    "      --node HOST:PORT  over TCP instead, with --key FILE (a client's\n"
    "                        secret key), --node-key BASE64 (the node's\n"
    "                        public key) and --cluster NAME\n"
    "                        (default shenzhen-msce)\n"
    "  -t, --timeout SECONDS the most to wait for the node (default 5;\n"
    "                        0 waits forever)\n"
    "      --json            JSON on stdout, errors included\n"
    "      --purpose PURPOSE why personal records (registration, case,\n"
    "                        case_note) are read or written: recorded in\n"
    "                        the audit log, required for reads by ro and\n"
    "                        rw clients; one of " PURPOSE_LIST "\n"
    "      --reveal          document and phone numbers in full (admin\n"
    "                        only; masked by default: GL10****01)\n"
    "  -h, --help            this help\n";

static void print_usage(FILE *f)
{
	fprintf(f, "usage: msce [OPTIONS] COMMAND [OPTIONS] [ARGUMENTS]\n\n"
		   "Commands:\n");
	for (size_t i = 0; i < NCOMMANDS; i++)
		fprintf(f, "  %-9s %s\n", commands[i].name, commands[i].args);
	fprintf(f,
		"  help      [COMMAND]\n\n%s"
		"  -V, --version         the version\n\n"
		"Exit: 0 ok or healthy; 1 refused, not found, degraded or "
		"differing;\n2 bad usage or no answer from the node; 3 "
		"permission denied.\n`msce COMMAND --help` or `man msce` "
		"for more.\n",
		common_help);
}

static void print_command_help(const struct command *c)
{
	printf("usage: msce [OPTIONS] %s %s\n\n%s\n%s", c->name, c->args,
	       c->help, common_help);
}

static const struct command *find_command(const char *name)
{
	for (size_t i = 0; i < NCOMMANDS; i++)
		if (strcmp(commands[i].name, name) == 0)
			return &commands[i];
	return NULL;
}

/* ---- reporting ---------------------------------------------------------- */

void cli_print_json(cJSON *j)
{
	char *s = cJSON_PrintUnformatted(j);
	if (s != NULL)
		printf("%s\n", s);
	cJSON_free(s);
	cJSON_Delete(j);
	fflush(stdout);
}

void cli_hex(const uint8_t *p, size_t n, char *out)
{
	for (size_t i = 0; i < n; i++)
		sprintf(out + 2 * i, "%02x", p[i]);
	out[2 * n] = 0;
}

static int vfail(struct cli *x, int exit_code, int code, const char *fmt,
		 va_list ap)
{
	char msg[1024];

	vsnprintf(msg, sizeof msg, fmt, ap);
	fprintf(stderr, "msce%s%s: %s\n", x->cmd ? " " : "",
		x->cmd ? x->cmd : "", msg);
	if (x->json) {
		cJSON *j = cJSON_CreateObject(), *e = cJSON_CreateObject();
		cJSON_AddStringToObject(e, "code",
					code ? err_name(code) : "EUSAGE");
		cJSON_AddStringToObject(e, "message", msg);
		cJSON_AddNumberToObject(e, "exit", exit_code);
		cJSON_AddItemToObject(j, "error", e);
		cli_print_json(j);
	}
	return exit_code;
}

int cli_fail(struct cli *x, int exit_code, int code, const char *fmt, ...)
{
	va_list ap;
	int rc;

	va_start(ap, fmt);
	rc = vfail(x, exit_code, code, fmt, ap);
	va_end(ap);
	return rc;
}

int cli_usage(struct cli *x, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	return cli_fail(x, CLI_FAIL, 0, "%s (see msce %s%s--help)", msg,
			x->cmd ? x->cmd : "", x->cmd ? " " : "");
}

int cli_exit_for(int rc)
{
	switch (rc) {
	/* The node's own refusals (EIO: its disk) are 1. */
	case MSCE_ETIMEOUT:
	case MSCE_ECLOSED:
	case MSCE_EUNAVAIL:
		return CLI_FAIL;
	default:
		return CLI_NO;
	}
}

int cli_call_failed(struct cli *x, int rc)
{
	if (rc == MSCE_ETIMEOUT)
		return cli_fail(x, CLI_FAIL, rc,
				"the node did not answer within %g s (%s; "
				"--timeout)",
				(double)cli_timeout_ms(x) / 1000.0,
				msce_errmsg(x->c));
	return cli_fail(x, cli_exit_for(rc), rc, "%s: %s", msce_strerror(rc),
			msce_errmsg(x->c));
}

/* ---- numbers ------------------------------------------------------------- */

int cli_parse_seconds(const char *s, double *out)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (s[0] == '\0' || *end != '\0' || errno || !isfinite(v) || v < 0 ||
	    v > 1e7)
		return -1;
	*out = v;
	return 0;
}

int cli_parse_uint(const char *s, unsigned long min, unsigned long max,
		   unsigned long *out)
{
	char *end;
	unsigned long v;

	if (s[0] < '0' || s[0] > '9')
		return -1;
	errno = 0;
	v = strtoul(s, &end, 10);
	if (*end != '\0' || errno || v < min || v > max)
		return -1;
	*out = v;
	return 0;
}

/* ---- the connection ---------------------------------------------------- */

unsigned cli_timeout_ms(const struct cli *x)
{
	double t = x->timeout_s < 0 ? CLI_DEFAULT_TIMEOUT_S : x->timeout_s;
	/* 0 waits forever; anything else at least 1 ms. */
	return t == 0 ? 0 : t * 1000 < 1 ? 1 : (unsigned)(t * 1000);
}

/* --reveal is for admins: the node says which role this client has. */
static int check_reveal(struct cli *x)
{
	msce_status *s;
	int rc = msce_status_get(x->c, &s);

	if (rc != 0)
		return cli_call_failed(x, rc);
	if (strcmp(msce_status_role(s), "admin") != 0) {
		rc = cli_fail(x, CLI_NO, MSCE_EPERM,
			      "--reveal shows document and phone numbers in "
			      "full, to admin clients only; this client (%s) "
			      "has role %s",
			      msce_status_client(s),
			      msce_status_role(s)[0] ? msce_status_role(s)
						     : "unknown");
	}
	msce_status_free(s);
	return rc;
}

int cli_connect(struct cli *x)
{
	int rc;

	if (x->node != NULL) {
		if (x->key == NULL || x->node_key == NULL)
			return cli_usage(x, "--node needs --key FILE and "
					    "--node-key BASE64");
		rc = msce_connect_tcp(x->node, x->key, x->node_key,
				      x->cluster ? x->cluster : "shenzhen-msce",
				      &x->c);
	} else if (x->config != NULL) {
		/* A config the user may not read is a permission problem,
		 * not a broken node. */
		if (access(x->config, R_OK) != 0 && errno == EACCES)
			return cli_fail(x, CLI_DENIED, MSCE_EPERM,
					"permission denied: cannot read %s "
					"(operators join group msce: sudo "
					"usermod -aG msce $USER, then log in "
					"again)",
					x->config);
		rc = msce_connect_config(x->config, &x->c);
	} else {
		return cli_usage(x, "no node given: -c CONFIG (or "
				    "MSCE_CONFIG), or --node HOST:PORT");
	}
	if (rc == 0) {
		msce_set_timeout(x->c, cli_timeout_ms(x));
		if (x->purpose != NULL &&
		    msce_set_purpose(x->c, x->purpose) != 0)
			return cli_fail(x, CLI_FAIL, MSCE_EINVAL, "%s",
					msce_errmsg(x->c));
		return x->reveal ? check_reveal(x) : 0;
	}
	if (rc == MSCE_EPERM && x->node == NULL)
		rc = cli_fail(x, CLI_DENIED, rc,
			      "permission denied: %s (operators join group "
			      "msce: sudo usermod -aG msce $USER, then log in "
			      "again)",
			      msce_errmsg(x->c));
	else if (rc == MSCE_ECONFIG || rc == MSCE_ENOTFOUND ||
		 rc == MSCE_EINVAL)
		rc = cli_fail(x, CLI_FAIL, rc, "%s", msce_errmsg(x->c));
	else
		rc = cli_fail(x, CLI_FAIL, rc, "node unreachable: %s",
			      msce_errmsg(x->c));
	msce_close(x->c);
	x->c = NULL;
	return rc;
}

int cli_call(struct cli *x, Msce__ClientRequest *req, Msce__ClientResponse **r)
{
	int rc = client_call(x->c, req, r);
	return rc ? cli_call_failed(x, rc) : 0;
}

int cli_status(struct cli *x, Msce__ClientResponse **r)
{
	Msce__ClientRequest req = MSCE__CLIENT_REQUEST__INIT;
	Msce__StatusRequest s = MSCE__STATUS_REQUEST__INIT;
	int rc;

	req.op_case = MSCE__CLIENT_REQUEST__OP_STATUS;
	req.status = &s;
	if ((rc = cli_call(x, &req, r)) != 0)
		return rc;
	if ((*r)->code != 0 ||
	    (*r)->result_case != MSCE__CLIENT_RESPONSE__RESULT_STATUS) {
		rc = cli_fail(x, CLI_FAIL, (int)(*r)->code, "status: %s",
			      (*r)->error[0] ? (*r)->error : "no status");
		msce__client_response__free_unpacked(*r, NULL);
		*r = NULL;
		return rc;
	}
	cli_names_from(x, (*r)->status);
	return 0;
}

/* ---- center names ------------------------------------------------------- */

void cli_names_from(struct cli *x, const Msce__StatusResult *s)
{
	x->nnames = 0;
	for (size_t i = 0; i < s->n_nodes && x->nnames < CLI_MAX_NAMES; i++) {
		x->name_id[x->nnames] = s->nodes[i]->node;
		snprintf(x->name[x->nnames], sizeof x->name[0], "%s",
			 s->nodes[i]->node == s->node ? s->name
						      : s->nodes[i]->name);
		x->nnames++;
	}
	x->have_names = 1;
}

int cli_names(struct cli *x)
{
	Msce__ClientResponse *r;
	int rc;

	if (x->have_names)
		return 0;
	if ((rc = cli_status(x, &r)) != 0)
		return rc;
	msce__client_response__free_unpacked(r, NULL);
	return 0;
}

int cli_refused(struct cli *x, Msce__ClientResponse *r)
{
	int rc = cli_fail(x, CLI_NO, (int)r->code, "%s: %s",
			  msce_strerror((int)r->code), r->error);
	msce__client_response__free_unpacked(r, NULL);
	return rc;
}

char *cli_strndup(const void *v, size_t len)
{
	return v != NULL ? strndup(v, len) : strdup("");
}

const char *cli_name(const struct cli *x, uint32_t id)
{
	id &= 0xffff;
	for (size_t i = 0; i < x->nnames; i++)
		if (x->name_id[i] == id)
			return x->name[i];
	return "";
}

const char *cli_center(const struct cli *x, uint32_t id, char *buf, size_t len)
{
	const char *n = cli_name(x, id);
	if (n[0] != '\0')
		snprintf(buf, len, "%s (%u)", n, id & 0xffff);
	else
		snprintf(buf, len, "node %u", id & 0xffff);
	return buf;
}

/* ---- keygen -----------------------------------------------------------------
 */

int cmd_keygen(struct cli *x, const struct cli_opts *o, int argc, char **argv)
{
	struct err e;

	(void)argc;
	(void)argv;
	if (o->master != NULL) {
		if (keyfile_generate_master(o->master, &e) != 0)
			return cli_fail(x, CLI_NO, e.code, "%s", e.msg);
		if (x->json) {
			cJSON *j = cJSON_CreateObject();
			cJSON_AddStringToObject(j, "master_key", o->master);
			cli_print_json(j);
		} else {
			printf("wrote %s (secret, mode 0600)\n", o->master);
		}
		return 0;
	}
	if (o->sign_pub != NULL) {
		/* A key made before signatures: derive its signing key. */
		if (keyfile_write_sign_pub(o->sign_pub, &e) != 0)
			return cli_fail(x, CLI_NO, e.code, "%s", e.msg);
		if (x->json) {
			cJSON *j = cJSON_CreateObject();
			char path[4096];
			snprintf(path, sizeof path, "%s.sign.pub", o->sign_pub);
			cJSON_AddStringToObject(j, "sign_pub", path);
			cli_print_json(j);
		} else {
			printf("wrote %s.sign.pub\n", o->sign_pub);
		}
		return 0;
	}
	if (o->out == NULL)
		return cli_usage(x, "--out PREFIX (or --sign-pub PREFIX, or "
				    "--master FILE) is required");
	if (keyfile_generate(o->out, &e) != 0)
		return cli_fail(x, CLI_NO, e.code, "%s", e.msg);
	if (x->json) {
		cJSON *j = cJSON_CreateObject();
		char path[4096];
		snprintf(path, sizeof path, "%s.key", o->out);
		cJSON_AddStringToObject(j, "key", path);
		snprintf(path, sizeof path, "%s.pub", o->out);
		cJSON_AddStringToObject(j, "pub", path);
		snprintf(path, sizeof path, "%s.sign.pub", o->out);
		cJSON_AddStringToObject(j, "sign_pub", path);
		cli_print_json(j);
	} else {
		printf("wrote %s.key (secret, mode 0600), %s.pub and "
		       "%s.sign.pub\n",
		       o->out, o->out, o->out);
	}
	return 0;
}

/* ---- options and main
 * -------------------------------------------------------- */

enum {
	OPT_NODE = 256,
	OPT_KEY,
	OPT_NODE_KEY,
	OPT_CLUSTER,
	OPT_JSON,
	OPT_OUT,
	OPT_PREFIX,
	OPT_LIMIT,
	OPT_MAX_LAG,
	OPT_AUTHOR,
	OPT_FROM_START,
	OPT_COUNT,
	OPT_AFTER,
	OPT_SIGN_PUB,
	OPT_PURPOSE,
	OPT_REVEAL,
	OPT_RECORD,
	OPT_CLIENT,
	OPT_SINCE,
	OPT_MASTER,
};

static const struct option longopts[] = {
    {"config", required_argument, NULL, 'c'},
    {"node", required_argument, NULL, OPT_NODE},
    {"key", required_argument, NULL, OPT_KEY},
    {"node-key", required_argument, NULL, OPT_NODE_KEY},
    {"cluster", required_argument, NULL, OPT_CLUSTER},
    {"timeout", required_argument, NULL, 't'},
    {"json", no_argument, NULL, OPT_JSON},
    {"help", no_argument, NULL, 'h'},
    {"version", no_argument, NULL, 'V'},
    {"out", required_argument, NULL, OPT_OUT},
    {"prefix", required_argument, NULL, OPT_PREFIX},
    {"limit", required_argument, NULL, OPT_LIMIT},
    {"max-lag", required_argument, NULL, OPT_MAX_LAG},
    {"author", required_argument, NULL, OPT_AUTHOR},
    {"from-start", no_argument, NULL, OPT_FROM_START},
    {"count", required_argument, NULL, OPT_COUNT},
    {"after", required_argument, NULL, OPT_AFTER},
    {"sign-pub", required_argument, NULL, OPT_SIGN_PUB},
    {"purpose", required_argument, NULL, OPT_PURPOSE},
    {"reveal", no_argument, NULL, OPT_REVEAL},
    {"record", required_argument, NULL, OPT_RECORD},
    {"client", required_argument, NULL, OPT_CLIENT},
    {"since", required_argument, NULL, OPT_SINCE},
    {"master", required_argument, NULL, OPT_MASTER},
    {NULL, 0, NULL, 0}};

/* Which O_* flag a command option sets, and its name. */
static unsigned opt_flag(int c, const char **name)
{
	switch (c) {
	case OPT_OUT:
		*name = "--out";
		return O_OUT;
	case OPT_PREFIX:
		*name = "--prefix";
		return O_PREFIX;
	case OPT_LIMIT:
		*name = "--limit";
		return O_LIMIT;
	case OPT_MAX_LAG:
		*name = "--max-lag";
		return O_MAX_LAG;
	case OPT_AUTHOR:
		*name = "--author";
		return O_AUTHOR;
	case OPT_FROM_START:
		*name = "--from-start";
		return O_FROM_START;
	case OPT_COUNT:
		*name = "--count";
		return O_COUNT;
	case OPT_AFTER:
		*name = "--after";
		return O_AFTER;
	case OPT_SIGN_PUB:
		*name = "--sign-pub";
		return O_SIGN_PUB;
	case OPT_RECORD:
		*name = "--record";
		return O_RECORD;
	case OPT_CLIENT:
		*name = "--client";
		return O_CLIENT;
	case OPT_SINCE:
		*name = "--since";
		return O_SINCE;
	case OPT_MASTER:
		*name = "--master";
		return O_MASTER;
	default:
		*name = "";
		return 0;
	}
}

int main(int argc, char **argv)
{
	struct cli x = {.timeout_s = -1};
	struct cli_opts o = {.max_lag = -1};
	const struct command *cmd = NULL;
	unsigned given = 0;
	const char *given_name[16] = {0};
	int help = 0, c, rc;
	const char *limit_arg = NULL, *count_arg = NULL, *lag_arg = NULL,
		   *timeout_arg = NULL;

	if (sodium_init() < 0)
		return CLI_FAIL;
	x.config = getenv("MSCE_CONFIG");
	if (x.config != NULL && x.config[0] == '\0')
		x.config = NULL;
	/* For messages about options, before the command is parsed. */
	for (int i = 1; i < argc && x.cmd == NULL; i++)
		if (find_command(argv[i]) != NULL)
			x.cmd = argv[i];
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":c:t:hV", longopts, NULL)) != -1) {
		const char *oname;
		unsigned f;

		switch (c) {
		case 'c':
			x.config = optarg;
			x.node = NULL;
			break;
		case OPT_NODE:
			x.node = optarg;
			break;
		case OPT_KEY:
			x.key = optarg;
			break;
		case OPT_NODE_KEY:
			x.node_key = optarg;
			break;
		case OPT_CLUSTER:
			x.cluster = optarg;
			break;
		case 't':
			timeout_arg = optarg;
			break;
		case OPT_JSON:
			x.json = 1;
			break;
		case OPT_PURPOSE:
			x.purpose = optarg;
			break;
		case OPT_REVEAL:
			x.reveal = 1;
			break;
		case 'h':
			help = 1;
			break;
		case 'V':
			printf("msce %s\n", msce_version());
			return 0;
		case ':':
			return cli_usage(&x, "%s needs a value",
					 argv[optind - 1]);
		case '?':
			if (optopt)
				return cli_usage(&x, "unknown option -%c",
						 optopt);
			return cli_usage(&x, "unknown option %s",
					 argv[optind - 1]);
		default:
			f = opt_flag(c, &oname);
			given |= f;
			for (int b = 0; b < 16; b++)
				if (f == 1u << b)
					given_name[b] = oname;
			switch (c) {
			case OPT_OUT:
				o.out = optarg;
				break;
			case OPT_PREFIX:
				o.prefix = optarg;
				break;
			case OPT_LIMIT:
				limit_arg = optarg;
				break;
			case OPT_MAX_LAG:
				lag_arg = optarg;
				break;
			case OPT_AUTHOR:
				o.author = optarg;
				break;
			case OPT_FROM_START:
				o.from_start = 1;
				break;
			case OPT_COUNT:
				count_arg = optarg;
				break;
			case OPT_AFTER:
				o.after = optarg;
				break;
			case OPT_SIGN_PUB:
				o.sign_pub = optarg;
				break;
			case OPT_RECORD:
				o.record = optarg;
				break;
			case OPT_CLIENT:
				o.client = optarg;
				break;
			case OPT_SINCE:
				o.since = optarg;
				break;
			case OPT_MASTER:
				o.master = optarg;
				break;
			}
		}
	}
	if (optind < argc) {
		if (strcmp(argv[optind], "help") == 0) {
			const struct command *h =
			    optind + 1 < argc ? find_command(argv[optind + 1])
					      : NULL;
			if (optind + 1 < argc && h == NULL)
				return cli_usage(&x, "unknown command \"%s\"",
						 argv[optind + 1]);
			if (h != NULL)
				print_command_help(h);
			else
				print_usage(stdout);
			return 0;
		}
		cmd = find_command(argv[optind]);
		if (cmd == NULL)
			return cli_usage(&x, "unknown command \"%s\"",
					 argv[optind]);
		x.cmd = cmd->name;
		optind++;
	}
	if (help) {
		if (cmd != NULL)
			print_command_help(cmd);
		else
			print_usage(stdout);
		return 0;
	}
	if (cmd == NULL) {
		print_usage(stderr);
		return CLI_FAIL;
	}
	for (int b = 0; b < 16; b++)
		if ((given & (1u << b)) && !(cmd->opts & (1u << b)))
			return cli_usage(&x, "unknown option %s",
					 given_name[b]);
	if (x.purpose != NULL && !purpose_valid(x.purpose))
		return cli_usage(&x, "--purpose: \"%s\" is not one of: %s",
				 x.purpose, PURPOSE_LIST);
	if (timeout_arg != NULL &&
	    cli_parse_seconds(timeout_arg, &x.timeout_s) != 0)
		return cli_usage(&x,
				 "--timeout: \"%s\" is not a number of "
				 "seconds",
				 timeout_arg);
	if (lag_arg != NULL && cli_parse_seconds(lag_arg, &o.max_lag) != 0)
		return cli_usage(&x,
				 "--max-lag: \"%s\" is not a number of "
				 "seconds",
				 lag_arg);
	if (limit_arg != NULL &&
	    cli_parse_uint(limit_arg, 1, 10000, &o.limit) != 0)
		return cli_usage(&x,
				 "--limit: \"%s\" is not a whole number "
				 "from 1 to 10000",
				 limit_arg);
	if (count_arg != NULL &&
	    cli_parse_uint(count_arg, 1, (unsigned long)-1, &o.count) != 0)
		return cli_usage(&x,
				 "--count: \"%s\" is not a whole number "
				 "from 1",
				 count_arg);
	argc -= optind;
	argv += optind;
	if (argc < cmd->min_args)
		return cli_usage(&x, "missing arguments: msce %s %s", cmd->name,
				 cmd->args);
	if (cmd->max_args >= 0 && argc > cmd->max_args)
		return cli_usage(&x, "unexpected argument \"%s\"",
				 argv[cmd->max_args]);
	rc = cmd->run(&x, &o, argc, argv);
	msce_close(x.c);
	return rc;
}
