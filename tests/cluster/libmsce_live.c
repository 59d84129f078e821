/* libmsce against live nodes: every operation and its error paths.
 *
 *   msce-libtest up   SOCKET1 SOCKET2   (both nodes running)
 *   msce-libtest down SOCKET1           (node 2 stopped: min_sites times out)
 *
 * Run by test_client.py, which starts and stops the nodes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "msce.h"

static const char *sock1, *sock2;
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
	assert_int_equal(res.origin, 1);
	assert_true(res.seq > 0);
	assert_int_equal(msce_get(c, "t", key, &r), 0);
	assert_string_equal(msce_record_key(r), key);
	const struct msce_value *v = msce_record_find(r, "color");
	assert_non_null(v);
	assert_int_equal(v->value_len, 4);
	assert_memory_equal(v->value, "blue", 4);
	assert_int_equal(v->origin, 1);
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
	struct msce_put_opts o = {2, 5000};
	struct msce_field f = {"v", "x", 1, 0, 0, 0};
	char key[64];
	msce_record *r;

	snprintf(key, sizeof key, "%s-sites", tag);
	assert_int_equal(msce_put_opts(c, "t", key, &f, 1, &o, &res), 0);
	assert_int_equal(res.sites, 2);
	/* Acknowledged with 2 sites: node 2 holds it now. */
	assert_int_equal(msce_get(c2, "t", key, &r), 0);
	msce_record_free(r);
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
		if (ev.origin == 1) {
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
	assert_int_equal(msce_get(c, "case", key, &r), 0);
	int notes = 0;
	for (size_t i = 0; i < msce_record_nfields(r); i++)
		notes += strncmp(msce_record_field(r, i)->name, "note/", 5) == 0;
	assert_int_equal(notes, 2);
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

static void test_backup(void **state)
{
	(void)state;
	msce_client *c = conn(sock1);
	char path[128];
	char cmd[200];
	uint64_t bytes = 0;
	snprintf(path, sizeof path, "/tmp/msce-backup-%s", tag);
	assert_int_equal(msce_backup(c, path, &bytes), 0);
	assert_true(bytes > 0);
	/* Never over an existing directory. */
	assert_int_equal(msce_backup(c, path, &bytes), MSCE_EINVAL);
	snprintf(cmd, sizeof cmd, "rm -rf '%.150s'", path);
	assert_int_equal(system(cmd), 0);
	msce_close(c);
}

static void test_min_sites_times_out(void **state)
{
	(void)state;
	msce_client *c = conn(sock1);
	struct msce_write_result res;
	struct msce_put_opts o = {2, 700};
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

int main(int argc, char **argv)
{
	const struct CMUnitTest up[] = {
		cmocka_unit_test(test_put_get_delete),
		cmocka_unit_test(test_errors_name_the_problem),
		cmocka_unit_test(test_batch_and_scan_pages),
		cmocka_unit_test(test_min_sites_waits),
		cmocka_unit_test(test_watch_every_change_once_in_order),
		cmocka_unit_test(test_status_and_helpers),
		cmocka_unit_test(test_pipelined_puts),
		cmocka_unit_test(test_largest_batch),
		cmocka_unit_test(test_backup),
	};
	const struct CMUnitTest down[] = {
		cmocka_unit_test(test_min_sites_times_out),
	};
	if (argc < 3) {
		fprintf(stderr, "usage: msce-libtest up S1 S2 | down S1\n");
		return 2;
	}
	sock1 = argv[2];
	sock2 = argc > 3 ? argv[3] : NULL;
	snprintf(tag, sizeof tag, "r%ld", (long)time(NULL) % 100000 * 100 +
						  (long)getpid() % 100);
	if (strcmp(argv[1], "up") == 0 && sock2 != NULL)
		return cmocka_run_group_tests(up, NULL, NULL);
	return cmocka_run_group_tests(down, NULL, NULL);
}
