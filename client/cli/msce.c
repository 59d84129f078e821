/* msce: the operators' command line tool, on libmsce.
 *
 *   msce keygen --out PREFIX
 *   msce -c CONFIG put COLLECTION KEY name=value...
 *   msce -c CONFIG del COLLECTION KEY
 *   msce -c CONFIG get COLLECTION KEY [--json]
 *   msce -c CONFIG scan COLLECTION [--prefix P] [--limit N] [--json]
 *   msce -c CONFIG status [--json] [--max-lag SECONDS]
 *   msce -c CONFIG verify [--timeout S]
 *   msce -c CONFIG conflicts [COLLECTION] [--json]
 *   msce -c CONFIG resolve COLLECTION KEY FIELD VALUE
 *   msce -c CONFIG note add CASE TEXT [--author NAME]
 *   msce -c CONFIG note list CASE [--json]
 *   msce -c CONFIG import FILE        (JSON lines; "-" = stdin)
 *   msce -c CONFIG export [COLLECTION...]
 *   msce -c CONFIG backup PATH
 * Instead of -c CONFIG (the node's unix socket, admin):
 *   --node HOST:PORT --key FILE --node-key BASE64 [--cluster NAME]
 *   (TCP with Noise, with the role configured for that client key)
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
static const char *node_addr, *key_file, *node_key, *cluster_name;

static void usage(void)
{
	fprintf(
	    stderr,
	    "usage: msce keygen --out PREFIX\n"
	    "       msce -c CONFIG put COLLECTION KEY name=value...\n"
	    "       msce -c CONFIG del COLLECTION KEY\n"
	    "       msce -c CONFIG get COLLECTION KEY [--json]\n"
	    "       msce -c CONFIG scan COLLECTION [--prefix P] [--limit N] "
	    "[--json]\n"
	    "       msce -c CONFIG status [--json] [--max-lag SECONDS]\n"
	    "       msce -c CONFIG verify [--timeout SECONDS]\n"
	    "       msce -c CONFIG conflicts [COLLECTION] [--json]\n"
	    "       msce -c CONFIG resolve COLLECTION KEY FIELD VALUE\n"
	    "       msce -c CONFIG note add CASE TEXT [--author NAME]\n"
	    "       msce -c CONFIG note list CASE [--json]\n"
	    "       msce -c CONFIG import FILE|-\n"
	    "       msce -c CONFIG export [COLLECTION...]\n"
	    "       msce -c CONFIG backup PATH\n"
	    "  -c CONFIG may be replaced by --node HOST:PORT --key FILE "
	    "--node-key BASE64 [--cluster NAME]\n");
}

static msce_client *connect_or_die(void)
{
	msce_client *c;
	int rc;
	if (node_addr != NULL) {
		if (key_file == NULL || node_key == NULL) {
			fprintf(stderr, "msce: --node needs --key FILE and "
					"--node-key BASE64\n");
			exit(2);
		}
		rc = msce_connect_tcp(node_addr, key_file, node_key,
				      cluster_name ? cluster_name
						   : "shenzhen-msce",
				      &c);
	} else if (config_path != NULL) {
		rc = msce_connect_config(config_path, &c);
	} else {
		fprintf(stderr, "msce: -c CONFIG or --node HOST:PORT is "
				"required\n");
		exit(2);
	}
	if (rc != 0) {
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
	if (client_call(c, req, &r) != 0) {
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
	/* A node that just started on a new or restored store answers "busy"
	 * until its peers have said what they hold of it: wait a little. */
	for (int tries = 0;; tries++) {
		rc = del ? msce_delete(c, argv[1], argv[2], &res)
			 : msce_put(c, argv[1], argv[2], f, (size_t)n, &res);
		if (rc != MSCE_EBUSY || tries == 100)
			break;
		usleep(100 * 1000);
	}
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
		char *v =
		    strndup(w->value.len ? (const char *)w->value.data : "",
			    w->value.len);
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

/* Without --max-lag, a node more than this behind its peers (in hlc
 * seconds), or this many changes, is catching up: degraded. */
#define INBOUND_LAG_S 5.0
#define INBOUND_LAG_CHANGES 1000

static cJSON *snap_json(const Msce__SnapshotProgress *p)
{
	cJSON *j = cJSON_CreateObject();
	cJSON_AddBoolToObject(j, "active", p != NULL && p->active);
	if (p != NULL && p->active) {
		cJSON_AddNumberToObject(j, "chunks", (double)p->chunks);
		cJSON_AddNumberToObject(j, "records", (double)p->records);
		cJSON_AddNumberToObject(j, "started_ms", (double)p->started_ms);
		cJSON_AddNumberToObject(j, "progress_ms",
					(double)p->progress_ms);
		cJSON_AddBoolToObject(j, "stalled", p->stalled);
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
	char dig[65], why[1024] = "";
	size_t wl = 0;
	int degraded = 0;
	hex(s->digest.data, s->digest.len > 32 ? 32 : s->digest.len, dig);
	/* Every reason the node is not healthy, for the text and the JSON. */
#define WHY(...)                                                              \
	do {                                                                  \
		degraded = 1;                                                 \
		if (wl < sizeof why)                                          \
			wl += (size_t)snprintf(why + wl, sizeof why - wl,     \
					       wl ? "; " : "");               \
		if (wl < sizeof why)                                          \
			wl += (size_t)snprintf(why + wl, sizeof why - wl,     \
					       __VA_ARGS__);                  \
	} while (0)
	for (size_t i = 0; i < s->n_peers; i++) {
		const Msce__PeerStatus *p = s->peers[i];
		if (!p->connected)
			WHY("link to node %u down", p->node);
		if (max_lag >= 0 && (double)p->lag_ms / 1000.0 > max_lag)
			WHY("node %u is %.1f s behind us", p->node,
			    (double)p->lag_ms / 1000.0);
		if ((p->snapshot_in && p->snapshot_in->stalled) ||
		    (p->snapshot_out && p->snapshot_out->stalled))
			WHY("snapshot with node %u makes no progress", p->node);
	}
	/* This node behind its peers: catching up is not healthy. */
	if (s->inbound_lag_changes > 0 &&
	    ((double)s->inbound_lag_ms / 1000.0 >
		 (max_lag >= 0 ? max_lag : INBOUND_LAG_S) ||
	     s->inbound_lag_changes >= INBOUND_LAG_CHANGES))
		WHY("catching up: peers hold %llu changes we lack, %.1f s newer",
		    (unsigned long long)s->inbound_lag_changes,
		    (double)s->inbound_lag_ms / 1000.0);
	if (s->write_gate[0])
		WHY("not writing yet: %s", s->write_gate);
	for (size_t i = 0; i < s->n_counters; i++)
		if (strcmp(s->counters[i]->name, "store_failed") == 0 &&
		    s->counters[i]->value)
			WHY("the store refuses writes since a commit failed");
#undef WHY
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
		cJSON_AddStringToObject(j, "problems", why);
		cJSON_AddNumberToObject(j, "writer", s->writer);
		cJSON_AddStringToObject(j, "write_gate", s->write_gate);
		cJSON_AddNumberToObject(j, "inbound_lag_changes",
					(double)s->inbound_lag_changes);
		cJSON_AddNumberToObject(j, "inbound_lag_ms",
					(double)s->inbound_lag_ms);
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
			cJSON_AddNumberToObject(pj, "link_timeouts",
						(double)p->link_timeouts);
			cJSON_AddItemToObject(pj, "snapshot_out",
					      snap_json(p->snapshot_out));
			cJSON_AddItemToObject(pj, "snapshot_in",
					      snap_json(p->snapshot_in));
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
				cJSON_AddNumberToObject(nj, "writer", n->writer);
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
		if (degraded)
			printf("  %s\n", why);
		printf("writes under origin %u/%u; inbound lag %llu changes, "
		       "%.1f s\n",
		       s->writer & 0xffff, s->writer >> 16,
		       (unsigned long long)s->inbound_lag_changes,
		       (double)s->inbound_lag_ms / 1000.0);
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

/* Every configured node reports the same digest at the same vector, in a
 * report that arrived since this verify began (run_ms ago): a stopped
 * node's last report may still match, but it did not answer this run.
 * Gossip brings a fresh report about every second, also through a third
 * node. */
static int status_agrees(const Msce__StatusResult *s, uint64_t run_ms)
{
	for (size_t i = 0; i < s->n_nodes; i++) {
		const Msce__NodeReport *n = s->nodes[i];
		if (!n->known || (n->node != s->node && n->age_ms > run_ms) ||
		    n->digest.len != s->digest.len ||
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
		clock_gettime(CLOCK_MONOTONIC, &t);
		uint64_t run_ms = (uint64_t)((t.tv_sec - t0.tv_sec) * 1000 +
					     (t.tv_nsec - t0.tv_nsec) / 1000000);
		int ok = r->code == 0 && status_agrees(r->status, run_ms);
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
		if ((double)(t.tv_sec - t0.tv_sec) +
			    (double)(t.tv_nsec - t0.tv_nsec) / 1e9 >=
		    timeout) {
			fprintf(stderr, "msce verify: nodes still differ after "
					"%.0f s (see msce status)\n",
				timeout);
			msce_close(c);
			return 1;
		}
		usleep(200 * 1000);
	}
}

/* ---- conflicts ------------------------------------------------------------------ */

static cJSON *value_json(const struct msce_value *v)
{
	cJSON *j = cJSON_CreateObject();
	/* An empty value (a delete as a loser) may come as NULL. */
	char h[24], *val = strndup(v->value ? v->value : "", v->value_len);
	snprintf(h, sizeof h, "%llu", (unsigned long long)v->hlc);
	cJSON_AddStringToObject(j, "value", val ? val : "");
	cJSON_AddStringToObject(j, "hlc", h);
	cJSON_AddNumberToObject(j, "origin", v->origin);
	free(val);
	return j;
}

static int cmd_conflicts(int argc, char **argv)
{
	int json = 0;
	const char *coll = NULL;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0)
			json = 1;
		else
			coll = argv[i];
	}
	msce_client *c = connect_or_die();
	msce_conflicts *l;
	int rc = msce_conflicts_list(c, coll, 0, &l);
	if (rc) {
		fprintf(stderr, "msce conflicts: %s\n", msce_errmsg(c));
		msce_close(c);
		return 1;
	}
	for (size_t i = 0; i < msce_conflicts_count(l); i++) {
		const struct msce_conflict *k = msce_conflicts_get(l, i);
		if (json) {
			cJSON *j = cJSON_CreateObject();
			cJSON_AddStringToObject(j, "collection", k->collection);
			cJSON_AddStringToObject(j, "key", k->key);
			cJSON_AddStringToObject(j, "field", k->field);
			cJSON_AddItemToObject(j, "winner", value_json(&k->winner));
			cJSON_AddItemToObject(j, "loser", value_json(&k->loser));
			cJSON_AddBoolToObject(j, "delete", k->is_delete);
			print_json(j);
			cJSON_Delete(j);
		} else if (k->is_delete) {
			printf("%s/%s %s: \"%.*s\" (node %u) survived a "
			       "concurrent delete (node %u) it had not seen\n",
			       k->collection, k->key, k->field,
			       (int)k->winner.value_len,
			       (const char *)k->winner.value,
			       k->winner.origin & 0xffff,
			       k->loser.origin & 0xffff);
		} else {
			printf("%s/%s %s: \"%.*s\" (node %u) won over "
			       "\"%.*s\" (node %u)\n",
			       k->collection, k->key, k->field,
			       (int)k->winner.value_len,
			       (const char *)k->winner.value,
			       k->winner.origin & 0xffff,
			       (int)k->loser.value_len,
			       (const char *)k->loser.value,
			       k->loser.origin & 0xffff);
		}
	}
	if (!json)
		printf("%zu open conflicts\n", msce_conflicts_count(l));
	msce_conflicts_free(l);
	msce_close(c);
	return 0;
}

static int cmd_resolve(int argc, char **argv)
{
	struct msce_write_result res;
	if (argc != 5) {
		usage();
		return 2;
	}
	msce_client *c = connect_or_die();
	int rc = msce_resolve(c, argv[1], argv[2], argv[3], argv[4],
			      strlen(argv[4]), &res);
	if (rc) {
		fprintf(stderr, "msce resolve: %s\n", msce_errmsg(c));
		msce_close(c);
		return 1;
	}
	printf("ok %u/%llu\n", res.origin, (unsigned long long)res.seq);
	msce_close(c);
	return 0;
}

/* ---- import / export ------------------------------------------------------------ */

#define IMPORT_BATCH 500

struct import_batch {
	struct msce_put puts[IMPORT_BATCH];
	struct msce_field *fields[IMPORT_BATCH];
	cJSON *docs[IMPORT_BATCH];
	long lines[IMPORT_BATCH];
	size_t n;
};

static int flush_batch(msce_client *c, struct import_batch *b, long *ok,
		       long *refused)
{
	int codes[IMPORT_BATCH];
	int rc = 0;
	if (b->n == 0)
		return 0;
	int brc;
	for (int tries = 0;; tries++) {
		brc = msce_put_batch(c, b->puts, b->n, NULL, codes);
		if (brc != MSCE_EBUSY || tries == 100)
			break;
		usleep(100 * 1000);
	}
	if (brc != 0) {
		fprintf(stderr, "msce import: %s\n", msce_errmsg(c));
		rc = 1;
	} else {
		for (size_t i = 0; i < b->n; i++) {
			if (codes[i] == 0) {
				(*ok)++;
			} else {
				(*refused)++;
				fprintf(stderr, "line %ld: %s/%s refused: %s\n",
					b->lines[i], b->puts[i].collection,
					b->puts[i].key, msce_strerror(codes[i]));
			}
		}
	}
	for (size_t i = 0; i < b->n; i++) {
		free(b->fields[i]);
		cJSON_Delete(b->docs[i]);
	}
	b->n = 0;
	return rc;
}

/* ---- case notes (records of collection case_note) ------------------------ */

static cJSON *fields_json(const msce_record *r)
{
	cJSON *fs = cJSON_CreateObject();
	for (size_t f = 0; f < msce_record_nfields(r); f++) {
		const struct msce_value *v = msce_record_field(r, f);
		char *val = strndup(v->value, v->value_len);
		cJSON_AddStringToObject(fs, v->name, val ? val : "");
		free(val);
	}
	return fs;
}

static int print_note(void *ctx, const char *id, const msce_record *r)
{
	const struct msce_value *t = msce_record_find(r, "text");
	const struct msce_value *a = msce_record_find(r, "author");
	if (*(int *)ctx) {
		cJSON *j = cJSON_CreateObject();
		cJSON_AddStringToObject(j, "id", id);
		cJSON_AddItemToObject(j, "fields", fields_json(r));
		print_json(j);
		cJSON_Delete(j);
		return 0;
	}
	printf("%s%s%.*s\n%.*s\n\n", id, a ? " " : "",
	       a ? (int)a->value_len : 0, a ? (const char *)a->value : "",
	       t ? (int)t->value_len : 0, t ? (const char *)t->value : "");
	return 0;
}

static int cmd_note(int argc, char **argv)
{
	struct msce_case_note n = {0};
	const char *pos[3];
	int np = 0, json = 0, rc;
	char id[MSCE_NOTE_ID_SIZE];

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0)
			json = 1;
		else if (strcmp(argv[i], "--author") == 0 && i + 1 < argc)
			n.author = argv[++i];
		else if (np < 3)
			pos[np++] = argv[i];
	}
	int add = np == 3 && strcmp(pos[0], "add") == 0;
	if (!add && !(np == 2 && strcmp(pos[0], "list") == 0)) {
		usage();
		return 2;
	}
	msce_client *c = connect_or_die();
	n.text = add ? pos[2] : NULL;
	rc = add ? msce_case_note_put(c, pos[1], &n, id, NULL)
		 : msce_case_notes(c, pos[1], print_note, &json);
	if (rc != 0)
		fprintf(stderr, "msce note: %s: %s\n", msce_strerror(rc),
			msce_errmsg(c));
	else if (add)
		printf("%s\n", id);
	msce_close(c);
	return rc == 0 ? 0 : rc == MSCE_ECLOSED || rc == MSCE_EUNAVAIL ? 2 : 1;
}

/* One JSON object per line: {"collection":..,"key":..,"fields":{..}}
 * (optionally "base":{"field":"HLC/ORIGIN"}, the version the writer saw)
 * or {"collection":..,"key":..,"delete":true}. */
static int cmd_import(int argc, char **argv)
{
	FILE *f;
	char *line = NULL;
	size_t cap = 0;
	long lineno = 0, ok = 0, refused = 0, bad = 0;
	struct import_batch *b = calloc(1, sizeof *b);
	int rc = 0;

	if (argc != 2 || b == NULL) {
		usage();
		free(b);
		return 2;
	}
	f = strcmp(argv[1], "-") == 0 ? stdin : fopen(argv[1], "r");
	if (f == NULL) {
		fprintf(stderr, "msce import: cannot open %s\n", argv[1]);
		free(b);
		return 1;
	}
	msce_client *c = connect_or_die();
	while (rc == 0 && getline(&line, &cap, f) > 0) {
		lineno++;
		if (line[strspn(line, " \t\r\n")] == '\0')
			continue;
		cJSON *d = cJSON_Parse(line);
		cJSON *coll = cJSON_GetObjectItemCaseSensitive(d, "collection");
		cJSON *key = cJSON_GetObjectItemCaseSensitive(d, "key");
		cJSON *fields = cJSON_GetObjectItemCaseSensitive(d, "fields");
		cJSON *del = cJSON_GetObjectItemCaseSensitive(d, "delete");
		int is_del = cJSON_IsTrue(del);
		if (!cJSON_IsString(coll) || !cJSON_IsString(key) ||
		    (!is_del && !cJSON_IsObject(fields))) {
			fprintf(stderr, "line %ld: not {\"collection\", "
					"\"key\", \"fields\": {...}}\n",
				lineno);
			bad++;
			cJSON_Delete(d);
			continue;
		}
		size_t nf = 0, k = 0;
		cJSON *it;
		cJSON_ArrayForEach(it, fields) nf++;
		struct msce_field *fs = calloc(nf ? nf : 1, sizeof *fs);
		int ok_fields = fs != NULL;
		cJSON *base = cJSON_GetObjectItemCaseSensitive(d, "base");
		cJSON_ArrayForEach(it, fields)
		{
			if (!cJSON_IsString(it)) {
				ok_fields = 0;
				break;
			}
			fs[k].name = it->string;
			fs[k].value = it->valuestring;
			fs[k].value_len = strlen(it->valuestring);
			/* Optional "base": {"field": "HLC/ORIGIN"}: the version
			 * the writer saw (else the node's current one). */
			cJSON *b = cJSON_GetObjectItemCaseSensitive(base,
								    it->string);
			unsigned long long bh;
			unsigned bo;
			if (cJSON_IsString(b) &&
			    sscanf(b->valuestring, "%llu/%u", &bh, &bo) == 2) {
				fs[k].has_base = 1;
				fs[k].base_hlc = bh;
				fs[k].base_origin = bo;
			} else if (b != NULL) {
				ok_fields = 0;
				break;
			}
			k++;
		}
		if (!ok_fields && !is_del) {
			fprintf(stderr, "line %ld: field values must be "
					"strings, bases \"HLC/ORIGIN\"\n",
				lineno);
			bad++;
			free(fs);
			cJSON_Delete(d);
			continue;
		}
		b->puts[b->n] = (struct msce_put){coll->valuestring,
						  key->valuestring, fs, k,
						  is_del};
		b->fields[b->n] = fs;
		b->docs[b->n] = d;
		b->lines[b->n] = lineno;
		if (++b->n == IMPORT_BATCH)
			rc = flush_batch(c, b, &ok, &refused);
	}
	if (rc == 0)
		rc = flush_batch(c, b, &ok, &refused);
	free(line);
	if (f != stdin)
		fclose(f);
	free(b);
	msce_close(c);
	printf("imported %ld, refused %ld, unreadable lines %ld\n", ok,
	       refused, bad);
	return rc ? 2 : (refused || bad) ? 1 : 0;
}

static int cmd_export(int argc, char **argv)
{
	static const char *const domain[] = {"registration", "case",
					     "case_note", "event"};
	const char *const *colls = (const char *const *)argv + 1;
	int ncolls = argc - 1;
	if (ncolls == 0) {
		colls = domain;
		ncolls = 4;
	}
	msce_client *c = connect_or_die();
	for (int i = 0; i < ncolls; i++) {
		char after[512] = "";
		for (;;) {
			struct msce_scan_opts o = {NULL, after[0] ? after : NULL,
						   NULL, 1000};
			msce_page *p;
			if (msce_scan(c, colls[i], &o, &p) != 0) {
				fprintf(stderr, "msce export: %s\n",
					msce_errmsg(c));
				msce_close(c);
				return 1;
			}
			for (size_t k = 0; k < msce_page_count(p); k++) {
				const msce_record *r = msce_page_record(p, k);
				cJSON *j = cJSON_CreateObject();
				cJSON_AddStringToObject(j, "collection", colls[i]);
				cJSON_AddStringToObject(j, "key",
							msce_record_key(r));
				cJSON_AddItemToObject(j, "fields",
						      fields_json(r));
				print_json(j);
				cJSON_Delete(j);
			}
			const char *next = msce_page_next(p);
			if (next == NULL) {
				msce_page_free(p);
				break;
			}
			snprintf(after, sizeof after, "%s", next);
			msce_page_free(p);
		}
	}
	msce_close(c);
	return 0;
}

static int cmd_backup(int argc, char **argv)
{
	uint64_t bytes = 0;
	if (argc != 2) {
		usage();
		return 2;
	}
	msce_client *c = connect_or_die();
	if (msce_backup(c, argv[1], &bytes) != 0) {
		fprintf(stderr, "msce backup: %s\n", msce_errmsg(c));
		msce_close(c);
		return 1;
	}
	printf("backup written to %s (%llu bytes); restore by pointing a "
	       "stopped node's data_dir at a copy of it\n",
	       argv[1], (unsigned long long)bytes);
	msce_close(c);
	return 0;
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
		} else if (strcmp(argv[i], "--node") == 0 && i + 1 < argc) {
			node_addr = argv[i + 1];
			i += 2;
		} else if (strcmp(argv[i], "--key") == 0 && i + 1 < argc) {
			key_file = argv[i + 1];
			i += 2;
		} else if (strcmp(argv[i], "--node-key") == 0 && i + 1 < argc) {
			node_key = argv[i + 1];
			i += 2;
		} else if (strcmp(argv[i], "--cluster") == 0 && i + 1 < argc) {
			cluster_name = argv[i + 1];
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
	if (strcmp(cmd, "conflicts") == 0)
		return cmd_conflicts(argc, argv);
	if (strcmp(cmd, "resolve") == 0)
		return cmd_resolve(argc, argv);
	if (strcmp(cmd, "note") == 0)
		return cmd_note(argc, argv);
	if (strcmp(cmd, "import") == 0)
		return cmd_import(argc, argv);
	if (strcmp(cmd, "export") == 0)
		return cmd_export(argc, argv);
	if (strcmp(cmd, "backup") == 0)
		return cmd_backup(argc, argv);
	fprintf(stderr, "msce: unknown command \"%s\"\n", cmd);
	usage();
	return 2;
}
