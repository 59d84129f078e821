/* SPDX-License-Identifier: Apache-2.0 */
/* libmsce against live nodes: every operation and its error paths.
 *
 *   msce-libtest up    SOCKET1 SOCKET2 BACKUP  (both nodes running; the
 *                      backup is written to BACKUP and left for the caller
 *                      to open: "backup PATH TAG DIGEST" is printed)
 *   msce-libtest down  SOCKET1   (node 2 stopped: min_sites times out)
 *   msce-libtest raw   SOCKET1   (a malformed request on the wire: the
 *                      decoded EPROTO answer, then the same connection;
 *                      a request of another client protocol: EVERSION)
 *   msce-libtest floor SOCKET1   (a watch cursor below node 1's log floor)
 *   msce-libtest fake            (no node: a fake one answers garbage, then
 *                      hangs up: libmsce says EPROTO, then ECLOSED)
 *
 * Run by test_client.py and test_snapshot.py, which start and stop the
 * nodes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <pthread.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "client.pb-c.h"
#include "msce.h"
#include "version.h"

static const char *sock1, *sock2, *backup_path;
static char tag[32]; /* keeps keys unique across runs */

static msce_client *conn(const char *path)
{
	msce_client *c;
	int rc = msce_connect_unix(path, &c);
	if (rc)
		fprintf(stderr, "connect %s: %s\n", path, msce_errmsg(c));
	assert_int_equal(rc, 0);
	return c;
}

static void put1(msce_client *c, const char *coll, const char *key,
		 const char *name, const char *value,
		 struct msce_write_result *res)
{
	struct msce_field f = {name, value, strlen(value), 0, 0, 0};
	int rc = msce_put(c, coll, key, &f, 1, res);
	if (rc)
		fprintf(stderr, "put %s/%s: %s\n", coll, key, msce_errmsg(c));
	assert_int_equal(rc, 0);
}

static void test_put_get_delete(void **state)
{
	(void)state;
	msce_client *c = conn(sock1);
	struct msce_write_result res;
	msce_record *r;
	char key[64];
	const uint32_t *seen;

	snprintf(key, sizeof key, "%s-pgd", tag);
	put1(c, "t", key, "color", "blue", &res);
	/* An origin is the node id and the store's incarnation. */
	assert_int_equal(res.origin & 0xffff, 1);
	assert_true(res.seq > 0);
	assert_int_equal(msce_get(c, "t", key, &r), 0);
	assert_string_equal(msce_record_key(r), key);
	const struct msce_value *v = msce_record_find(r, "color");
	assert_non_null(v);
	assert_int_equal(v->value_len, 4);
	assert_memory_equal(v->value, "blue", 4);
	assert_int_equal(v->origin, res.origin);
	assert_int_equal(v->hlc, res.hlc);
	assert_true(msce_record_seen_by(r, &seen) >= 1);
	msce_record_free(r);
	assert_int_equal(msce_delete(c, "t", key, NULL), 0);
	assert_int_equal(msce_get(c, "t", key, &r), MSCE_ENOTFOUND);
	assert_null(r);
	msce_close(c);
}

static void test_errors_name_the_problem(void **state)
{
	(void)state;
	msce_client *c = conn(sock1);
	msce_record *r;
	struct msce_field f = {"birth_date", "1990-13-45", 10, 0, 0, 0};
	char big[70000];

	assert_int_equal(msce_put(c, "registration", "FRA:X1", &f, 1, NULL),
			 MSCE_EINVAL);
	assert_non_null(strstr(msce_errmsg(c), "birth_date"));
	assert_int_equal(msce_put(c, "Bad-Coll", "k", &f, 1, NULL),
			 MSCE_EINVAL);
	assert_non_null(strstr(msce_errmsg(c), "collection"));
	memset(big, 'x', sizeof big);
	f = (struct msce_field){"v", big, sizeof big, 0, 0, 0};
	assert_int_equal(msce_put(c, "t", "k", &f, 1, NULL), MSCE_ETOOBIG);
	assert_non_null(strstr(msce_errmsg(c), "65536"));
	assert_int_equal(msce_get(c, "t", "no-such-key-ever", &r),
			 MSCE_ENOTFOUND);
	/* The registration helper validates locally too. */
	struct msce_registration reg = {.name = "A", .nationality = "XXX",
					.document_type = "passport",
					.document_number = "1"};
	assert_int_equal(msce_registration_put(c, &reg, NULL), MSCE_EINVAL);
	assert_non_null(strstr(msce_errmsg(c), "nationality"));
	msce_close(c);
}

static void test_batch_and_scan_pages(void **state)
{
	(void)state;
	msce_client *c = conn(sock1);
	struct msce_put puts[41];
	struct msce_field f[41];
	char keys[41][64], vals[41][16];
	int codes[41];
	char coll[] = "scan";

	for (int i = 0; i < 40; i++) {
		snprintf(keys[i], 64, "%s-%03d", tag, i);
		snprintf(vals[i], 16, "%d", i);
		f[i] = (struct msce_field){"n", vals[i], strlen(vals[i]), 0, 0, 0};
		puts[i] = (struct msce_put){coll, keys[i], &f[i], 1, 0};
	}
	/* One bad write in the batch is refused alone. */
	f[40] = (struct msce_field){"n", "x", 1, 0, 0, 0};
	puts[40] = (struct msce_put){"Bad-Coll", "k", &f[40], 1, 0};
	assert_int_equal(msce_put_batch(c, puts, 41, NULL, codes), 0);
	for (int i = 0; i < 40; i++)
		assert_int_equal(codes[i], 0);
	assert_int_equal(codes[40], MSCE_EINVAL);

	char prefix[40], after[64] = "";
	snprintf(prefix, sizeof prefix, "%s-", tag);
	int total = 0, pages = 0;
	for (;;) {
		struct msce_scan_opts o = {prefix, after[0] ? after : NULL, NULL,
					   15};
		msce_page *p;
		assert_int_equal(msce_scan(c, coll, &o, &p), 0);
		for (size_t i = 0; i < msce_page_count(p); i++) {
			const msce_record *r = msce_page_record(p, i);
			assert_string_equal(msce_record_key(r), keys[total]);
			total++;
		}
		pages++;
		const char *next = msce_page_next(p);
		if (next == NULL) {
			msce_page_free(p);
			break;
		}
		snprintf(after, sizeof after, "%s", next);
		msce_page_free(p);
	}
	assert_int_equal(total, 40);
	assert_true(pages >= 3);
	msce_close(c);
}

static void test_min_sites_waits(void **state)
{
	(void)state;
	msce_client *c = conn(sock1), *c2 = conn(sock2);
	struct msce_write_result res;
	struct msce_put_opts o = {.min_sites = 2, .timeout_ms = 5000};
	struct msce_field f = {"v", "x", 1, 0, 0, 0};
	char key[64];
	msce_record *r;

	snprintf(key, sizeof key, "%s-sites", tag);
	assert_int_equal(msce_put_opts(c, "t", key, &f, 1, &o, &res), 0);
	assert_int_equal(res.sites, 2);
	/* Acknowledged with 2 sites: node 2 holds it now. */
	assert_int_equal(msce_get(c2, "t", key, &r), 0);
	msce_record_free(r);
	/* A timeout near 2^64 ms waits (it wrapped to an instant ETIMEOUT). */
	o.timeout_ms = UINT64_MAX;
	msce_set_timeout(c, 20000);
	assert_int_equal(msce_put_opts(c, "t", key, &f, 1, &o, &res), 0);
	assert_int_equal(res.sites, 2);
	msce_set_timeout(c, 0);
	o.timeout_ms = 5000;
	o.min_sites = 3; /* more centers than the cluster has */
	assert_int_equal(msce_put_opts(c, "t", key, &f, 1, &o, &res),
			 MSCE_EINVAL);
	msce_close(c);
	msce_close(c2);
}

static void test_watch_every_change_once_in_order(void **state)
{
	(void)state;
	msce_client *w = conn(sock2), *c = conn(sock1);
	struct msce_cursor cur;
	msce_status *s;
	char coll[] = "watched";
	int seen = 0;
	uint64_t last_seq = 0;

	/* Start from node 2's current vector: only new changes come. */
	assert_int_equal(msce_status_get(w, &s), 0);
	msce_status_free(s);
	memset(&cur, 0, sizeof cur);
	/* Read everything so far to learn the cursor, then watch. */
	assert_int_equal(msce_watch(w, coll, NULL), 0);
	for (int i = 0; i < 30; i++) {
		char key[64], val[16];
		snprintf(key, sizeof key, "%s-w%02d", tag, i);
		snprintf(val, sizeof val, "%d", i);
		put1(c, coll, key, "i", val, NULL);
	}
	/* Earlier runs' changes of this collection may come first. */
	while (seen < 30) {
		struct msce_event ev;
		int rc = msce_watch_next(w, &ev, 5000, &cur);
		if (rc)
			fprintf(stderr, "watch: %s\n", msce_errmsg(w));
		assert_int_equal(rc, 0);
		assert_string_equal(ev.collection, coll);
		if ((ev.origin & 0xffff) == 1) {
			assert_true(ev.seq > last_seq); /* in order, once */
			last_seq = ev.seq;
		}
		if (strncmp(ev.key, tag, strlen(tag)) != 0)
			continue;
		char want[64];
		snprintf(want, sizeof want, "%s-w%02d", tag, seen);
		assert_string_equal(ev.key, want);
		seen++;
	}
	/* Nothing more, and no duplicate. */
	struct msce_event ev;
	assert_int_equal(msce_watch_next(w, &ev, 300, &cur), MSCE_ETIMEOUT);
	msce_close(w);

	/* Resuming from the cursor gives nothing already seen. */
	w = conn(sock2);
	assert_int_equal(msce_watch(w, coll, &cur), 0);
	put1(c, coll, "after-cursor", "i", "x", NULL);
	assert_int_equal(msce_watch_next(w, &ev, 5000, &cur), 0);
	assert_string_equal(ev.key, "after-cursor");
	msce_close(w);
	msce_close(c);
}

/* What msce_case_notes listed: copies, in the order called. */
struct notes {
	size_t n, cap, stop_at;
	char (*id)[MSCE_NOTE_ID_SIZE];
	char **text, **center;
};

static char *value_dup(const msce_record *r, const char *name)
{
	const struct msce_value *v = msce_record_find(r, name);
	assert_non_null(v);
	return strndup(v->value, v->value_len);
}

static int collect(void *ctx, const char *note_id, const msce_record *note)
{
	struct notes *g = ctx;
	if (g->n == g->cap) {
		g->cap = g->cap ? 2 * g->cap : 16;
		g->id = realloc(g->id, g->cap * sizeof *g->id);
		g->text = realloc(g->text, g->cap * sizeof *g->text);
		g->center = realloc(g->center, g->cap * sizeof *g->center);
		assert_true(g->id && g->text && g->center);
	}
	assert_true(strlen(note_id) < MSCE_NOTE_ID_SIZE);
	snprintf(g->id[g->n], MSCE_NOTE_ID_SIZE, "%s", note_id);
	g->text[g->n] = value_dup(note, "text");
	g->center[g->n] = value_dup(note, "center");
	g->n++;
	return g->stop_at != 0 && g->n == g->stop_at;
}

static void notes_free(struct notes *g)
{
	for (size_t i = 0; i < g->n; i++) {
		free(g->text[i]);
		free(g->center[i]);
	}
	free(g->id);
	free(g->text);
	free(g->center);
	memset(g, 0, sizeof *g);
}

static void test_status_and_helpers(void **state)
{
	(void)state;
	msce_client *c = conn(sock1);
	msce_status *s;
	struct msce_write_result res;
	char doc[40], key[64], person[64];
	msce_record *r;

	assert_int_equal(msce_status_get(c, &s), 0);
	assert_int_equal(msce_status_node(s), 1);
	assert_int_equal(strlen(msce_status_digest(s)), 64);
	assert_int_equal(msce_status_npeers(s), 1);
	assert_int_equal(msce_status_peer(s, 0)->node, 2);
	msce_status_free(s);

	snprintf(doc, sizeof doc, "D%s", tag);
	for (char *p = doc; *p; p++)
		if (*p >= 'a' && *p <= 'z')
			*p = (char)(*p - 'a' + 'A');
	struct msce_registration reg = {.name = "Test Person",
					.nationality = "DEU",
					.document_type = "passport",
					.document_number = doc};
	assert_int_equal(msce_registration_put(c, &reg, &res), 0);
	snprintf(person, sizeof person, "DEU:%s", doc);
	snprintf(key, sizeof key, "case-%s", tag);
	struct msce_case k = {.person = person, .category = "travel",
			      .status = "open", .center = "shekou"};
	assert_int_equal(msce_case_put(c, key, &k, &res), 0);
	assert_int_equal(msce_case_add_note(c, key, "first", &res), 0);
	assert_int_equal(msce_case_add_note(c, key, "second", &res), 0);
	/* Notes are case_note records now, listed in the order written. */
	struct notes got = {0};
	assert_int_equal(msce_case_notes(c, key, collect, &got), 0);
	assert_int_equal(got.n, 2);
	assert_string_equal(got.text[0], "first");
	assert_string_equal(got.text[1], "second");
	assert_string_equal(got.center[0], "n1"); /* the node's name */
	notes_free(&got);
	/* A note field written before case_note existed is still valid. */
	put1(c, "case", key, "note/1711958400000/1", "legacy", &res);
	assert_int_equal(msce_get(c, "case", key, &r), 0);
	int notes = 0;
	for (size_t i = 0; i < msce_record_nfields(r); i++)
		notes += strncmp(msce_record_field(r, i)->name, "note/", 5) == 0;
	assert_int_equal(notes, 1);
	msce_record_free(r);
	struct msce_event_rec e = {.title = "Visa Q&A", .kind = "qa",
				   .center = "shekou",
				   .starts_at = "2026-12-05T06:00:00Z"};
	assert_int_equal(msce_event_put(c, "2026-12-05", tag, &e, &res), 0);
	e.kind = "party";
	assert_int_equal(msce_event_put(c, "2026-12-05", tag, &e, &res),
			 MSCE_EINVAL);
	assert_non_null(strstr(msce_errmsg(c), "kind"));
	msce_close(c);
}

/* A case that lives for years collects hundreds of notes: 600 notes of
 * 2000 bytes, more than a record may hold, all listed back in order, and
 * the case record itself stays small. */
static void test_case_with_many_notes(void **state)
{
	(void)state;
	enum { N = 600, LEN = 2000 };
	_Static_assert((size_t)N * LEN > 1u << 20,
		       "more than one record may hold (MSCE_MAX_RECORD)");
	msce_client *c = conn(sock1), *c2 = conn(sock2);
	struct msce_write_result res;
	char doc[40], key[64], sub[80], person[64];
	char(*ids)[MSCE_NOTE_ID_SIZE] = calloc(N, MSCE_NOTE_ID_SIZE);
	char *text = malloc(LEN + 1);
	msce_record *r;

	assert_non_null(ids);
	assert_non_null(text);
	snprintf(doc, sizeof doc, "N%s", tag);
	for (char *p = doc; *p; p++)
		if (*p >= 'a' && *p <= 'z')
			*p = (char)(*p - 'a' + 'A');
	struct msce_registration reg = {.name = "Many Notes",
					.nationality = "FRA",
					.document_type = "passport",
					.document_number = doc};
	assert_int_equal(msce_registration_put(c, &reg, &res), 0);
	snprintf(person, sizeof person, "FRA:%s", doc);
	snprintf(key, sizeof key, "notes-%s", tag);
	struct msce_case k = {.person = person,
			      .category = "lease",
			      .status = "open",
			      .center = "shekou"};
	assert_int_equal(msce_case_put(c, key, &k, &res), 0);

	for (int i = 0; i < N; i++) {
		int o = snprintf(text, LEN + 1, "note %03d\n", i);
		memset(text + o, 'a' + i % 26, LEN - (size_t)o);
		text[LEN] = '\0';
		struct msce_case_note n = {.text = text,
					   .center = i % 2 ? "shekou" : NULL,
					   .author = "li.wei",
					   .written_at =
					       "2026-04-05T09:30:12.345Z"};
		int rc = msce_case_note_put(c, key, &n, ids[i], &res);
		if (rc)
			fprintf(stderr, "note %d: %s\n", i, msce_errmsg(c));
		assert_int_equal(rc, 0);
	}
	/* A case whose key extends this one's: its notes are not ours. */
	snprintf(sub, sizeof sub, "%s/sub", key);
	assert_int_equal(msce_case_add_note(c, sub, "other case", &res), 0);

	struct notes got = {0};
	assert_int_equal(msce_case_notes(c, key, collect, &got), 0);
	assert_int_equal(got.n, N);
	for (int i = 0; i < N; i++) {
		assert_string_equal(got.id[i], ids[i]); /* in order written */
		if (i > 0)
			assert_true(strcmp(got.id[i - 1], got.id[i]) < 0);
		assert_int_equal(strlen(got.text[i]), LEN);
		char head[16];
		snprintf(head, sizeof head, "note %03d\n", i);
		assert_memory_equal(got.text[i], head, strlen(head));
		assert_string_equal(got.center[i], i % 2 ? "shekou" : "n1");
	}
	notes_free(&got);

	/* The case record is what it was: four fields, read whole. */
	assert_int_equal(msce_get(c, "case", key, &r), 0);
	assert_int_equal(msce_record_nfields(r), 4);
	assert_non_null(msce_record_find(r, "person"));
	assert_non_null(msce_record_find(r, "status"));
	msce_record_free(r);

	/* The listing can stop early. */
	got.stop_at = 10;
	assert_int_equal(msce_case_notes(c, key, collect, &got), 0);
	assert_int_equal(got.n, 10);
	assert_string_equal(got.id[9], ids[9]);
	notes_free(&got);

	/* Every note replicates as its own record. */
	struct timespec t0, now;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		assert_int_equal(msce_case_notes(c2, key, collect, &got), 0);
		size_t n = got.n;
		int last_ok = n == N && strcmp(got.id[N - 1], ids[N - 1]) == 0;
		notes_free(&got);
		if (last_ok)
			break;
		clock_gettime(CLOCK_MONOTONIC, &now);
		if (now.tv_sec - t0.tv_sec > 60)
			fail_msg("node 2 lists %zu of %d notes after 60 s", n,
				 N);
		usleep(100 * 1000);
	}

	/* Refused before anything is sent, naming the rule. */
	struct msce_case_note bad = {.text = "x", .center = "Shekou"};
	assert_int_equal(msce_case_note_put(c, key, &bad, NULL, NULL),
			 MSCE_EINVAL);
	assert_non_null(strstr(msce_errmsg(c), "case_note.center"));
	bad = (struct msce_case_note){.text = NULL};
	assert_int_equal(msce_case_note_put(c, key, &bad, NULL, NULL),
			 MSCE_EINVAL);
	assert_non_null(strstr(msce_errmsg(c), "case_note.text"));
	char *huge = calloc(8002, 1);
	assert_non_null(huge);
	memset(huge, 'x', 8001);
	struct msce_case_note big = {.text = huge};
	assert_int_equal(msce_case_note_put(c, key, &big, NULL, NULL),
			 MSCE_ETOOBIG);
	assert_non_null(strstr(msce_errmsg(c), "case_note.text"));
	free(huge);
	free(text);
	free(ids);
	msce_close(c);
	msce_close(c2);
}

static void test_pipelined_puts(void **state)
{
	(void)state;
	msce_client *c = conn(sock1);
	uint64_t ids[500], id, last_seq = 0;
	struct msce_write_result res;
	char key[64];
	msce_record *r;

	for (int i = 0; i < 500; i++) {
		struct msce_field f = {"i", "v", 1, 0, 0, 0};
		snprintf(key, sizeof key, "%s-pipe-%03d", tag, i);
		assert_int_equal(msce_put_send(c, "t", key, &f, 1, &ids[i]), 0);
	}
	assert_int_equal(msce_pending(c), 500);
	/* A blocking call would steal a pipelined answer: refused. */
	assert_int_equal(msce_get(c, "t", key, &r), MSCE_EBUSY);
	for (int i = 0; i < 500; i++) {
		assert_int_equal(msce_put_recv(c, &id, &res), 0);
		assert_int_equal(id, ids[i]); /* in the order sent */
		assert_true(res.seq > last_seq);
		last_seq = res.seq;
	}
	assert_int_equal(msce_pending(c), 0);
	assert_int_equal(msce_get(c, "t", key, &r), 0);
	msce_record_free(r);
	msce_close(c);
}

/* The documented batch limit holds: 10,000 puts in one request. */
static void test_largest_batch(void **state)
{
	(void)state;
	msce_client *c = conn(sock1);
	enum { N = 10000 };
	struct msce_put *puts = calloc(N, sizeof *puts);
	struct msce_field *f = calloc(N, sizeof *f);
	char (*keys)[48] = calloc(N, sizeof *keys);
	int *codes = calloc(N, sizeof *codes);

	for (int i = 0; i < N; i++) {
		snprintf(keys[i], 48, "%s-big-%05d", tag, i);
		f[i] = (struct msce_field){"v", "1", 1, 0, 0, 0};
		puts[i] = (struct msce_put){"bulk", keys[i], &f[i], 1, 0};
	}
	int rc = msce_put_batch(c, puts, N, NULL, codes);
	if (rc)
		fprintf(stderr, "batch: %s\n", msce_errmsg(c));
	assert_int_equal(rc, 0);
	for (int i = 0; i < N; i++)
		assert_int_equal(codes[i], 0);
	free(puts);
	free(f);
	free(keys);
	free(codes);
	msce_close(c);
}

/* The backup holds exactly the node's state when it was taken: no write
 * runs meanwhile, so the digest before and after must match it. The caller
 * starts a node on the backup and compares (test_client.py). */
static void test_backup(void **state)
{
	(void)state;
	msce_client *c = conn(sock1);
	msce_status *s;
	char before[65], after[65];
	uint64_t bytes = 0;

	assert_int_equal(msce_status_get(c, &s), 0);
	snprintf(before, sizeof before, "%s", msce_status_digest(s));
	msce_status_free(s);
	assert_int_equal(msce_backup(c, backup_path, &bytes), 0);
	assert_true(bytes > 0);
	assert_int_equal(msce_status_get(c, &s), 0);
	snprintf(after, sizeof after, "%s", msce_status_digest(s));
	msce_status_free(s);
	assert_string_equal(before, after);
	/* Never over an existing directory. */
	assert_int_equal(msce_backup(c, backup_path, &bytes), MSCE_EINVAL);
	printf("backup %s %s %s\n", backup_path, tag, after);
	msce_close(c);
}

static void test_min_sites_times_out(void **state)
{
	(void)state;
	msce_client *c = conn(sock1);
	struct msce_write_result res;
	struct msce_put_opts o = {.min_sites = 2, .timeout_ms = 700};
	struct msce_field f = {"v", "y", 1, 0, 0, 0};
	struct timespec t0, t1;
	msce_record *r;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	assert_int_equal(msce_put_opts(c, "t", "sites-down", &f, 1, &o, &res),
			 MSCE_ETIMEOUT);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	double ms = (double)(t1.tv_sec - t0.tv_sec) * 1000 +
		    (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
	assert_true(ms >= 600);
	assert_non_null(strstr(msce_errmsg(c), "1 of the 2"));
	/* Committed here all the same. */
	assert_int_equal(res.sites, 1);
	assert_int_equal(msce_get(c, "t", "sites-down", &r), 0);
	msce_record_free(r);
	msce_close(c);
}

/* ---- raw: the wire format of an error answer -------------------------- */

static int unix_connect(const char *path)
{
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	struct timeval tv = {10, 0};

	assert_true(fd >= 0);
	snprintf(a.sun_path, sizeof a.sun_path, "%s", path);
	assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	return fd;
}

static void send_frame(int fd, const void *body, uint32_t len)
{
	uint32_t be = htonl(len);
	assert_int_equal(send(fd, &be, 4, MSG_NOSIGNAL), 4);
	if (len)
		assert_int_equal(send(fd, body, len, MSG_NOSIGNAL), (ssize_t)len);
}

static void read_full(int fd, void *buf, size_t n)
{
	for (size_t got = 0; got < n;) {
		ssize_t k = recv(fd, (char *)buf + got, n - got, 0);
		assert_true(k > 0);
		got += (size_t)k;
	}
}

static Msce__ClientResponse *recv_response(int fd)
{
	uint32_t be;
	read_full(fd, &be, 4);
	uint32_t len = ntohl(be);
	uint8_t *body = malloc(len ? len : 1);
	assert_non_null(body);
	read_full(fd, body, len);
	Msce__ClientResponse *r =
		msce__client_response__unpack(NULL, len, body);
	free(body);
	assert_non_null(r);
	return r;
}

static void test_malformed_request_answered(void **state)
{
	(void)state;
	int fd = unix_connect(sock1);
	Msce__ClientResponse *r;

	/* Not a ClientRequest (field 31, wire type 7): id 0, EPROTO. */
	send_frame(fd, "\xff\xff\xff", 3);
	r = recv_response(fd);
	assert_int_equal(r->id, 0);
	assert_int_equal(r->code, MSCE_EPROTO);
	assert_string_equal(r->error,
			    "malformed request: not a msce.ClientRequest");
	msce__client_response__free_unpacked(r, NULL);

	/* The same connection still serves a request. */
	Msce__ClientRequest req = MSCE__CLIENT_REQUEST__INIT;
	Msce__StatusRequest st = MSCE__STATUS_REQUEST__INIT;
	req.id = 7;
	req.op_case = MSCE__CLIENT_REQUEST__OP_STATUS;
	req.status = &st;
	size_t n = msce__client_request__get_packed_size(&req);
	uint8_t buf[64];
	assert_true(n <= sizeof buf);
	msce__client_request__pack(&req, buf);
	send_frame(fd, buf, (uint32_t)n);
	r = recv_response(fd);
	assert_int_equal(r->id, 7);
	assert_int_equal(r->code, 0);
	assert_int_equal(r->result_case, MSCE__CLIENT_RESPONSE__RESULT_STATUS);
	assert_int_equal(r->status->node, 1);
	msce__client_response__free_unpacked(r, NULL);
	close(fd);
}

/* A status request saying client protocol `protocol` (0: none). */
static void send_status(int fd, uint64_t id, uint32_t protocol)
{
	Msce__ClientRequest req = MSCE__CLIENT_REQUEST__INIT;
	Msce__StatusRequest st = MSCE__STATUS_REQUEST__INIT;
	uint8_t buf[64];
	size_t n;

	req.id = id;
	req.protocol = protocol;
	req.op_case = MSCE__CLIENT_REQUEST__OP_STATUS;
	req.status = &st;
	n = msce__client_request__get_packed_size(&req);
	assert_true(n <= sizeof buf);
	msce__client_request__pack(&req, buf);
	send_frame(fd, buf, (uint32_t)n);
}

/* A client of another client protocol is refused by name, both versions
 * in the answer; the node's own version and none at all (clients before
 * 0.2.0) are served. */
static void test_other_client_protocol_refused(void **state)
{
	(void)state;
	int fd = unix_connect(sock1);
	Msce__ClientResponse *r;
	char want[128];

	send_status(fd, 9, MSCE_CLIENT_PROTOCOL + 1);
	r = recv_response(fd);
	assert_int_equal(r->id, 9);
	assert_int_equal(r->code, MSCE_EVERSION);
	assert_int_equal(r->result_case, MSCE__CLIENT_RESPONSE__RESULT__NOT_SET);
	snprintf(want, sizeof want,
		 "client speaks client protocol %u, this node speaks %u",
		 MSCE_CLIENT_PROTOCOL + 1, MSCE_CLIENT_PROTOCOL);
	if (strstr(r->error, want) == NULL)
		fail_msg("refusal \"%s\" does not say \"%s\"", r->error, want);
	msce__client_response__free_unpacked(r, NULL);

	uint32_t ok[] = {MSCE_CLIENT_PROTOCOL, 0};
	for (size_t i = 0; i < 2; i++) {
		send_status(fd, 10 + i, ok[i]);
		r = recv_response(fd);
		assert_int_equal(r->id, 10 + i);
		assert_int_equal(r->code, 0);
		assert_int_equal(r->result_case,
				 MSCE__CLIENT_RESPONSE__RESULT_STATUS);
		msce__client_response__free_unpacked(r, NULL);
	}
	close(fd);
}

/* ---- floor: a watch cursor the log no longer covers ------------------- */

static void test_watch_below_floor(void **state)
{
	(void)state;
	msce_client *w = conn(sock1), *c = conn(sock1);
	struct msce_cursor cur;
	struct msce_event ev;
	msce_status *s;
	uint32_t mine = 0;

	/* Node 1's origin (node id and incarnation), from its vector. */
	assert_int_equal(msce_status_get(c, &s), 0);
	msce_status_cursor(s, &cur);
	msce_status_free(s);
	for (size_t i = 0; i < cur.n; i++)
		if ((cur.origin[i] & 0xffff) == 1 && cur.seq[i] > 1)
			mine = cur.origin[i];
	assert_int_not_equal(mine, 0);
	memset(&cur, 0, sizeof cur);
	cur.n = 1;
	cur.origin[0] = mine;
	cur.seq[0] = 1;

	/* Node 1's log no longer holds its change 2: the stream ends with
	 * ENOTFOUND and says why. */
	assert_int_equal(msce_watch(w, NULL, &cur), 0);
	assert_int_equal(msce_watch_next(w, &ev, 10000, NULL), MSCE_ENOTFOUND);
	assert_non_null(strstr(msce_errmsg(w), "below the log floor"));
	msce_close(w);

	/* From the current vector (what a rescan gives), watching works. */
	assert_int_equal(msce_status_get(c, &s), 0);
	msce_status_cursor(s, &cur);
	int found = 0;
	for (size_t i = 0; i < cur.n; i++)
		found |= cur.origin[i] == mine && cur.seq[i] > 1;
	assert_true(found);
	msce_status_free(s);
	w = conn(sock1);
	assert_int_equal(msce_watch(w, "floored", &cur), 0);
	put1(c, "floored", "after-rescan", "v", "1", NULL);
	assert_int_equal(msce_watch_next(w, &ev, 10000, &cur), 0);
	assert_string_equal(ev.key, "after-rescan");
	msce_close(w);
	msce_close(c);
}

/* ---- fake: a node that answers garbage, then hangs up ------------------ */

static char fake_path[108];
static uint32_t fake_seen_protocol = 0xffffffff;

static void *fake_node(void *arg)
{
	int lfd = *(int *)arg, fd = accept(lfd, NULL, NULL);
	uint32_t be;
	uint8_t body[4096];

	if (fd < 0)
		return NULL;
	/* First request: a frame that is no ClientResponse. */
	read_full(fd, &be, 4);
	read_full(fd, body, ntohl(be));
	Msce__ClientRequest *req =
		msce__client_request__unpack(NULL, ntohl(be), body);
	if (req != NULL) {
		fake_seen_protocol = req->protocol;
		msce__client_request__free_unpacked(req, NULL);
	}
	send_frame(fd, "\xff\xff\xff", 3);
	/* Second request: hang up without answering. */
	read_full(fd, &be, 4);
	read_full(fd, body, ntohl(be));
	close(fd);
	return NULL;
}

static void test_garbage_reply_then_closed(void **state)
{
	(void)state;
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	int lfd = socket(AF_UNIX, SOCK_STREAM, 0);
	pthread_t t;
	msce_client *c;
	msce_record *r;
	msce_status *s;

	snprintf(fake_path, sizeof fake_path, "/tmp/msce-fake-%ld.sock",
		 (long)getpid());
	unlink(fake_path);
	snprintf(a.sun_path, sizeof a.sun_path, "%s", fake_path);
	assert_int_equal(bind(lfd, (struct sockaddr *)&a, sizeof a), 0);
	assert_int_equal(listen(lfd, 1), 0);
	assert_int_equal(pthread_create(&t, NULL, fake_node, &lfd), 0);

	c = conn(fake_path);
	assert_int_equal(msce_get(c, "t", "k", &r), MSCE_EPROTO);
	assert_null(r);
	assert_string_equal(msce_errmsg(c), "malformed response");
	/* libmsce says which client protocol it speaks. */
	assert_int_equal(fake_seen_protocol, MSCE_CLIENT_PROTOCOL);
	assert_int_equal(msce_status_get(c, &s), MSCE_ECLOSED);
	assert_non_null(msce_errmsg(c)[0] ? msce_errmsg(c) : NULL);
	/* And stays closed: no hang, no crash. */
	assert_int_equal(msce_get(c, "t", "k", &r), MSCE_ECLOSED);
	msce_close(c);
	pthread_join(t, NULL);
	close(lfd);
	unlink(fake_path);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest up[] = {
	    cmocka_unit_test(test_put_get_delete),
	    cmocka_unit_test(test_errors_name_the_problem),
	    cmocka_unit_test(test_batch_and_scan_pages),
	    cmocka_unit_test(test_min_sites_waits),
	    cmocka_unit_test(test_watch_every_change_once_in_order),
	    cmocka_unit_test(test_status_and_helpers),
	    cmocka_unit_test(test_case_with_many_notes),
	    cmocka_unit_test(test_pipelined_puts),
	    cmocka_unit_test(test_largest_batch),
	    cmocka_unit_test(test_backup),
	};
	const struct CMUnitTest down[] = {
		cmocka_unit_test(test_min_sites_times_out),
	};
	const struct CMUnitTest raw[] = {
		cmocka_unit_test(test_malformed_request_answered),
		cmocka_unit_test(test_other_client_protocol_refused),
	};
	const struct CMUnitTest floor_[] = {
		cmocka_unit_test(test_watch_below_floor),
	};
	const struct CMUnitTest fake[] = {
		cmocka_unit_test(test_garbage_reply_then_closed),
	};
	const char *mode = argc > 1 ? argv[1] : "";

	sock1 = argc > 2 ? argv[2] : NULL;
	sock2 = argc > 3 ? argv[3] : NULL;
	backup_path = argc > 4 ? argv[4] : NULL;
	snprintf(tag, sizeof tag, "r%ld", (long)time(NULL) % 100000 * 100 +
						  (long)getpid() % 100);
	if (strcmp(mode, "up") == 0 && backup_path != NULL)
		return cmocka_run_group_tests(up, NULL, NULL);
	if (strcmp(mode, "down") == 0 && sock1 != NULL)
		return cmocka_run_group_tests(down, NULL, NULL);
	if (strcmp(mode, "raw") == 0 && sock1 != NULL)
		return cmocka_run_group_tests(raw, NULL, NULL);
	if (strcmp(mode, "floor") == 0 && sock1 != NULL)
		return cmocka_run_group_tests(floor_, NULL, NULL);
	if (strcmp(mode, "fake") == 0)
		return cmocka_run_group_tests(fake, NULL, NULL);
	fprintf(stderr, "usage: msce-libtest up S1 S2 BACKUP | down S1 | "
			"raw S1 | floor S1 | fake\n");
	return 2;
}
