/* msce: the operators' command line tool, on libmsce.
 *
 *   msce keygen --out PREFIX
 *   msce -c CONFIG put COLLECTION KEY name=value... 
 *   msce -c CONFIG del COLLECTION KEY
 *   msce -c CONFIG get COLLECTION KEY [--json]
 *   msce -c CONFIG scan COLLECTION [--prefix P] [--limit N] [--json]
 *   msce -c CONFIG status [--json] [--max-lag SECONDS]
 *   msce -c CONFIG verify [--timeout S]
 *
 * Exit codes: 0 ok; 1 refused, not found or degraded; 2 node unreachable
 * or bad usage. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <sodium.h>

#include "client_internal.h"
#include "error.h"
#include "keyfile.h"

static const char *config_path;

static void usage(void)
{
	fprintf(stderr,
		"usage: msce keygen --out PREFIX\n"
		"       msce -c CONFIG put COLLECTION KEY name=value...\n"
		"       msce -c CONFIG del COLLECTION KEY\n"
		"       msce -c CONFIG get COLLECTION KEY [--json]\n"
		"       msce -c CONFIG scan COLLECTION [--prefix P] [--limit N] "
		"[--json]\n"
		"       msce -c CONFIG status [--json] [--max-lag SECONDS]\n"
		"       msce -c CONFIG verify [--timeout SECONDS]\n");
}

static msce_client *connect_or_die(void)
{
	msce_client *c;
	if (config_path == NULL) {
		fprintf(stderr, "msce: -c CONFIG is required\n");
		exit(2);
	}
	if (msce_connect_config(config_path, &c) != 0) {
		fprintf(stderr, "msce: %s\n", msce_errmsg(c));
		msce_close(c);
		exit(2);
	}
	return c;
}

static Msce__ClientResponse *call_or_die(msce_client *c,
					 Msce__ClientRequest *req)
{
	Msce__ClientResponse *r;
	if (msce_call(c, req, &r) != 0) {
		fprintf(stderr, "msce: %s\n", msce_errmsg(c));
		exit(2);
	}
	return r;
}

static void hex(const uint8_t *p, size_t n, char *out)
{
	for (size_t i = 0; i < n; i++)
		sprintf(out + 2 * i, "%02x", p[i]);
	out[2 * n] = 0;
}

static void print_json(cJSON *j)
{
	char *s = cJSON_PrintUnformatted(j);
	printf("%s\n", s);
	cJSON_free(s);
}

/* ---- keygen ----------------------------------------------------------- */

static int cmd_keygen(int argc, char **argv)
{
	const char *out = NULL;
	struct err e;
	for (int i = 1; i < argc; i++)
		if (strcmp(argv[i], "--out") == 0 && i + 1 < argc)
			out = argv[++i];
	if (out == NULL) {
		usage();
		return 2;
	}
	if (keyfile_generate(out, &e) != 0) {
		fprintf(stderr, "msce keygen: %s\n", e.msg);
		return 1;
	}
	printf("wrote %s.key (secret, mode 0600) and %s.pub\n", out, out);
	return 0;
}

/* ---- writes --------------------------------------------------------------- */

static int cmd_put(int argc, char **argv, int del)
{
	msce_client *c;
	struct msce_write_result res;
	struct msce_field *f;
	int n = 0, rc;

	if (argc < 3 || (!del && argc < 4)) {
		usage();
		return 2;
	}
	f = calloc((size_t)argc, sizeof *f);
	for (int i = 3; !del && i < argc; i++) {
		char *eq = strchr(argv[i], '=');
		if (eq == NULL) {
			fprintf(stderr, "msce put: \"%s\" is not name=value\n",
				argv[i]);
			return 2;
		}
		*eq = 0;
		f[n].name = argv[i];
		f[n].value = eq + 1;
		f[n].value_len = strlen(eq + 1);
		n++;
	}
	c = connect_or_die();
	rc = del ? msce_delete(c, argv[1], argv[2], &res)
		 : msce_put(c, argv[1], argv[2], f, (size_t)n, &res);
	if (rc != 0) {
		fprintf(stderr, "msce %s: %s: %s\n", del ? "del" : "put",
			msce_strerror(rc), msce_errmsg(c));
		msce_close(c);
		free(f);
		return rc == MSCE_ECLOSED || rc == MSCE_EUNAVAIL ? 2 : 1;
	}
	printf("ok %u/%llu\n", res.origin, (unsigned long long)res.seq);
	msce_close(c);
	free(f);
	return 0;
}

/* ---- reads ------------------------------------------------------------------ */

static cJSON *record_json(const Msce__Record *rec)
{
	cJSON *j = cJSON_CreateObject(), *fields = cJSON_CreateObject();
	cJSON_AddStringToObject(j, "collection", rec->collection);
	cJSON_AddStringToObject(j, "key", rec->key);
	for (size_t i = 0; i < rec->n_fields; i++) {
		const Msce__FieldVersion *w = rec->fields[i]->winner;
		cJSON *f = cJSON_CreateObject();
		char *v = strndup((const char *)w->value.data, w->value.len);
		cJSON_AddStringToObject(f, "value", v ? v : "");
		free(v);
		/* hlc as a string: 64 bits do not fit a JSON double. */
		char h[24];
		snprintf(h, sizeof h, "%llu", (unsigned long long)w->hlc);
		cJSON_AddStringToObject(f, "hlc", h);
		cJSON_AddNumberToObject(f, "origin", w->origin);
		if (rec->fields[i]->n_losers)
			cJSON_AddNumberToObject(f, "conflicts",
						(double)rec->fields[i]->n_losers);
		cJSON_AddItemToObject(fields, w->name, f);
	}
	cJSON_AddItemToObject(j, "fields", fields);
	return j;
}

static void record_text(const Msce__Record *rec)
{
	for (size_t i = 0; i < rec->n_fields; i++) {
		const Msce__FieldVersion *w = rec->fields[i]->winner;
		printf("%s = %.*s%s\n", w->name, (int)w->value.len,
		       (const char *)w->value.data,
		       rec->fields[i]->n_losers ? "  (conflict)" : "");
	}
}

static int cmd_get(int argc, char **argv)
{
	int json = 0;
	const char *pos[2];
	int np = 0;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0)
			json = 1;
		else if (np < 2)
			pos[np++] = argv[i];
	}
	if (np != 2) {
		usage();
		return 2;
	}
	msce_client *c = connect_or_die();
	Msce__ClientRequest req = MSCE__CLIENT_REQUEST__INIT;
	Msce__GetRequest g = MSCE__GET_REQUEST__INIT;
	g.collection = (char *)pos[0];
	g.key = (char *)pos[1];
	req.op_case = MSCE__CLIENT_REQUEST__OP_GET;
	req.get = &g;
	Msce__ClientResponse *r = call_or_die(c, &req);
	int rc = 0;
	if (r->code != 0) {
		fprintf(stderr, "msce get: %s\n", r->error);
		rc = 1;
	} else if (json) {
		cJSON *j = record_json(r->record->record);
		cJSON *seen = cJSON_CreateArray();
		for (size_t i = 0; i < r->record->n_seen_by; i++)
			cJSON_AddItemToArray(
				seen, cJSON_CreateNumber(r->record->seen_by[i]));
		cJSON_AddItemToObject(j, "seen_by", seen);
		print_json(j);
		cJSON_Delete(j);
	} else {
		record_text(r->record->record);
	}
	msce__client_response__free_unpacked(r, NULL);
	msce_close(c);
	return rc;
}

static int cmd_scan(int argc, char **argv)
{
	int json = 0;
	const char *coll = NULL, *prefix = "";
	unsigned limit = 100;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0)
			json = 1;
		else if (strcmp(argv[i], "--prefix") == 0 && i + 1 < argc)
			prefix = argv[++i];
		else if (strcmp(argv[i], "--limit") == 0 && i + 1 < argc)
			limit = (unsigned)atoi(argv[++i]);
		else if (coll == NULL)
			coll = argv[i];
	}
	if (coll == NULL) {
		usage();
		return 2;
	}
	msce_client *c = connect_or_die();
	Msce__ClientRequest req = MSCE__CLIENT_REQUEST__INIT;
	Msce__ScanRequest s = MSCE__SCAN_REQUEST__INIT;
	s.collection = (char *)coll;
	s.prefix = (char *)prefix;
	s.limit = limit;
	req.op_case = MSCE__CLIENT_REQUEST__OP_SCAN;
	req.scan = &s;
	Msce__ClientResponse *r = call_or_die(c, &req);
	int rc = 0;
	if (r->code != 0) {
		fprintf(stderr, "msce scan: %s\n", r->error);
		rc = 1;
	} else {
		for (size_t i = 0; i < r->scan->n_records; i++) {
			if (json) {
				cJSON *j = record_json(r->scan->records[i]);
				print_json(j);
				cJSON_Delete(j);
			} else {
				printf("%s\n", r->scan->records[i]->key);
			}
		}
	}
	msce__client_response__free_unpacked(r, NULL);
	msce_close(c);
	return rc;
}

/* ---- status and verify ---------------------------------------------------------- */

static Msce__ClientResponse *get_status(msce_client *c)
{
	Msce__ClientRequest req = MSCE__CLIENT_REQUEST__INIT;
	Msce__StatusRequest s = MSCE__STATUS_REQUEST__INIT;
	req.op_case = MSCE__CLIENT_REQUEST__OP_STATUS;
	req.status = &s;
	return call_or_die(c, &req);
}

static cJSON *vv_json(Msce__VVEntry **vv, size_t n)
{
	cJSON *j = cJSON_CreateObject();
	char k[16];
	for (size_t i = 0; i < n; i++) {
		snprintf(k, sizeof k, "%u", vv[i]->origin);
		cJSON_AddNumberToObject(j, k, (double)vv[i]->seq);
	}
	return j;
}

static int cmd_status(int argc, char **argv)
{
	int json = 0;
	double max_lag = -1;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0)
			json = 1;
		else if (strcmp(argv[i], "--max-lag") == 0 && i + 1 < argc)
			max_lag = atof(argv[++i]);
	}
	msce_client *c = connect_or_die();
	Msce__ClientResponse *r = get_status(c);
	if (r->code != 0 || r->result_case != MSCE__CLIENT_RESPONSE__RESULT_STATUS) {
		fprintf(stderr, "msce status: %s\n", r->error);
		return 2;
	}
	const Msce__StatusResult *s = r->status;
	char dig[65];
	int degraded = 0;
	hex(s->digest.data, s->digest.len > 32 ? 32 : s->digest.len, dig);
	for (size_t i = 0; i < s->n_peers; i++) {
		if (!s->peers[i]->connected)
			degraded = 1;
		if (max_lag >= 0 && (double)s->peers[i]->lag_ms / 1000.0 > max_lag)
			degraded = 1;
	}
	if (json) {
		cJSON *j = cJSON_CreateObject();
		cJSON_AddNumberToObject(j, "node", s->node);
		cJSON_AddStringToObject(j, "name", s->name);
		cJSON_AddStringToObject(j, "cluster", s->cluster);
		cJSON_AddItemToObject(j, "vv", vv_json(s->vv, s->n_vv));
		cJSON_AddStringToObject(j, "digest", dig);
		cJSON_AddNumberToObject(j, "conflicts", (double)s->conflicts);
		cJSON_AddNumberToObject(j, "tombstones", (double)s->tombstones);
		cJSON_AddBoolToObject(j, "healthy", !degraded);
		cJSON *peers = cJSON_CreateArray();
		for (size_t i = 0; i < s->n_peers; i++) {
			const Msce__PeerStatus *p = s->peers[i];
			cJSON *pj = cJSON_CreateObject();
			cJSON_AddNumberToObject(pj, "node", p->node);
			cJSON_AddBoolToObject(pj, "connected", p->connected);
			cJSON_AddNumberToObject(pj, "lag_changes",
						(double)p->lag_changes);
			cJSON_AddNumberToObject(pj, "lag_ms", (double)p->lag_ms);
			cJSON_AddNumberToObject(pj, "last_contact_ms",
						(double)p->last_contact_ms);
			cJSON_AddNumberToObject(pj, "clock_offset_ms",
						(double)p->clock_offset_ms);
			cJSON_AddBoolToObject(pj, "clock_refused",
					      p->clock_refused);
			cJSON_AddItemToArray(peers, pj);
		}
		cJSON_AddItemToObject(j, "peers", peers);
		cJSON *nodes = cJSON_CreateArray();
		for (size_t i = 0; i < s->n_nodes; i++) {
			const Msce__NodeReport *n = s->nodes[i];
			cJSON *nj = cJSON_CreateObject();
			char d[65] = "";
			cJSON_AddNumberToObject(nj, "node", n->node);
			cJSON_AddBoolToObject(nj, "known", n->known);
			if (n->known) {
				hex(n->digest.data,
				    n->digest.len > 32 ? 32 : n->digest.len, d);
				cJSON_AddItemToObject(nj, "vv",
						      vv_json(n->vv, n->n_vv));
				cJSON_AddStringToObject(nj, "digest", d);
				cJSON_AddNumberToObject(nj, "age_ms",
							(double)n->age_ms);
			}
			cJSON_AddItemToArray(nodes, nj);
		}
		cJSON_AddItemToObject(j, "nodes", nodes);
		cJSON *cs = cJSON_CreateObject();
		for (size_t i = 0; i < s->n_counters; i++)
			cJSON_AddNumberToObject(cs, s->counters[i]->name,
						(double)s->counters[i]->value);
		cJSON_AddItemToObject(j, "counters", cs);
		print_json(j);
		cJSON_Delete(j);
	} else {
		printf("node %u (%s), cluster %s: %s\n", s->node, s->name,
		       s->cluster, degraded ? "DEGRADED" : "healthy");
		printf("digest %s  conflicts %llu  tombstones %llu\n", dig,
		       (unsigned long long)s->conflicts,
		       (unsigned long long)s->tombstones);
		printf("%-6s %-10s %12s %10s %14s %10s\n", "peer", "link",
		       "lag(chg)", "lag(s)", "last contact", "offset");
		for (size_t i = 0; i < s->n_peers; i++) {
			const Msce__PeerStatus *p = s->peers[i];
			double ago = p->last_contact_ms
					     ? (double)(s->time_ms -
							p->last_contact_ms) /
						       1000.0
					     : -1;
			printf("%-6u %-10s %12llu %10.1f %13.1fs %9lldms%s\n",
			       p->node, p->connected ? "up" : "DOWN",
			       (unsigned long long)p->lag_changes,
			       (double)p->lag_ms / 1000.0, ago,
			       (long long)p->clock_offset_ms,
			       p->clock_refused ? " CLOCK" : "");
		}
		printf("%-6s %-18s %-12s %s\n", "node", "digest", "report age",
		       "vector");
		for (size_t i = 0; i < s->n_nodes; i++) {
			const Msce__NodeReport *n = s->nodes[i];
			char d[65] = "?";
			if (n->known)
				hex(n->digest.data,
				    n->digest.len > 8 ? 8 : n->digest.len, d);
			printf("%-6u %-18s %10.1fs  ", n->node, d,
			       (double)n->age_ms / 1000.0);
			for (size_t k = 0; k < n->n_vv; k++)
				printf("%u:%llu ", n->vv[k]->origin,
				       (unsigned long long)n->vv[k]->seq);
			printf("\n");
		}
	}
	msce__client_response__free_unpacked(r, NULL);
	msce_close(c);
	return degraded ? 1 : 0;
}

/* Every configured node reports the same digest at the same vector. */
static int status_agrees(const Msce__StatusResult *s)
{
	for (size_t i = 0; i < s->n_nodes; i++) {
		const Msce__NodeReport *n = s->nodes[i];
		if (!n->known || n->digest.len != s->digest.len ||
		    memcmp(n->digest.data, s->digest.data, s->digest.len) != 0 ||
		    n->n_vv != s->n_vv)
			return 0;
		for (size_t k = 0; k < n->n_vv; k++)
			if (n->vv[k]->origin != s->vv[k]->origin ||
			    n->vv[k]->seq != s->vv[k]->seq)
				return 0;
	}
	return 1;
}

static int cmd_verify(int argc, char **argv)
{
	double timeout = 30;
	for (int i = 1; i < argc; i++)
		if (strcmp(argv[i], "--timeout") == 0 && i + 1 < argc)
			timeout = atof(argv[++i]);
	msce_client *c = connect_or_die();
	struct timespec t0, t;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		Msce__ClientResponse *r = get_status(c);
		int ok = r->code == 0 && status_agrees(r->status);
		if (ok) {
			char d[65];
			hex(r->status->digest.data, 32, d);
			printf("verified: %zu nodes hold digest %s\n",
			       r->status->n_nodes, d);
			msce__client_response__free_unpacked(r, NULL);
			msce_close(c);
			return 0;
		}
		msce__client_response__free_unpacked(r, NULL);
		clock_gettime(CLOCK_MONOTONIC, &t);
		if ((double)(t.tv_sec - t0.tv_sec) > timeout) {
			fprintf(stderr, "msce verify: nodes still differ after "
					"%.0f s (see msce status)\n",
				timeout);
			msce_close(c);
			return 1;
		}
		usleep(200 * 1000);
	}
}

int main(int argc, char **argv)
{
	int i = 1;
	if (sodium_init() < 0)
		return 2;
	while (i < argc && argv[i][0] == '-') {
		if (strcmp(argv[i], "-c") == 0 && i + 1 < argc) {
			config_path = argv[i + 1];
			i += 2;
		} else if (strcmp(argv[i], "--version") == 0) {
			printf("msce %s\n", msce_version());
			return 0;
		} else {
			usage();
			return 2;
		}
	}
	if (i >= argc) {
		usage();
		return 2;
	}
	const char *cmd = argv[i];
	argc -= i;
	argv += i;
	if (strcmp(cmd, "keygen") == 0)
		return cmd_keygen(argc, argv);
	if (strcmp(cmd, "put") == 0)
		return cmd_put(argc, argv, 0);
	if (strcmp(cmd, "del") == 0)
		return cmd_put(argc, argv, 1);
	if (strcmp(cmd, "get") == 0)
		return cmd_get(argc, argv);
	if (strcmp(cmd, "scan") == 0)
		return cmd_scan(argc, argv);
	if (strcmp(cmd, "status") == 0)
		return cmd_status(argc, argv);
	if (strcmp(cmd, "verify") == 0)
		return cmd_verify(argc, argv);
	fprintf(stderr, "msce: unknown command \"%s\"\n", cmd);
	usage();
	return 2;
}
