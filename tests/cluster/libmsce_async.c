/* SPDX-License-Identifier: Apache-2.0 */
/* libmsce's event-loop API and reconnecting clients, against a live node
 * and against fake ones.
 *
 *   msce-asynctest live SOCKET   (a running node: every request kind
 *                      pipelined, watches from now / a cursor / the
 *                      start, cancel, failover past a dead center, free
 *                      inside a callback)
 *   msce-asynctest fake          (no node: fake ones that never answer, hang
 *                      up mid-request or never finish a handshake: request
 *                      and connect timeouts, writes lost with their
 *                      connection, reads sent again, msce_connect clients
 *                      that reconnect, a watch that outlives an outage)
 *
 * Run by test_frontend.py. Every wait is bounded (run_until). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "client.pb-c.h"
#include "error.h"
#include "keyfile.h"
#include "msce.h"

#define WAIT_MS 15000

static const char *sock1;
static char tag[32]; /* keeps keys unique across runs */
static int in_call;  /* set while a request function runs */

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Steps a until *done is reached (or a is closed), for at most ms. */
static void run_until(msce_async *a, const int *done, int want, int ms)
{
	uint64_t end = now_ms() + (uint64_t)ms;

	while (*done < want) {
		struct pollfd p = {.fd = msce_async_fd(a), .events = POLLIN};
		int t = msce_async_timeout(a);
		uint64_t now = now_ms();
		assert_true(now < end);
		if (t < 0 || (uint64_t)t > end - now)
			t = (int)(end - now);
		poll(&p, 1, t);
		if (msce_async_step(a, MSCE_WANT_READ) == MSCE_ECLOSED)
			return;
	}
}

static msce_async *async_to(const char *path, unsigned request_ms)
{
	msce_conninfo *ci = msce_conninfo_new();
	msce_async *a;

	assert_non_null(ci);
	assert_int_equal(msce_conninfo_add_unix(ci, path), 0);
	msce_conninfo_set_timeouts(ci, 0, request_ms);
	msce_conninfo_set_reconnect(ci, 1, 20, 200);
	assert_int_equal(msce_async_new(ci, &a), 0);
	msce_conninfo_free(ci);
	return a;
}

/* ---- results, collected ------------------------------------------------- */

struct got {
	int n;	       /* callbacks run */
	int code[32];  /* their codes, in order */
	char msg[32][256];
	struct msce_write_result res[32];
	char value[32][64]; /* a record's field "a", a page's first key */
	size_t count[32];   /* records in a page, writes in a batch */
	int codes[32][8];   /* a batch's codes */
	char why[32][8][128]; /* and its writes' messages */
	msce_async *a;	    /* for msce_async_batch_errmsg */
	uint64_t node;	    /* a status's node */
	struct msce_cursor cur;
};

static void note(struct got *g, int code, const char *msg)
{
	assert_false(in_call); /* never inside the call that made it */
	assert_true(g->n < 32);
	g->code[g->n] = code;
	snprintf(g->msg[g->n], sizeof g->msg[g->n], "%s", msg ? msg : "");
}

static void on_write(void *ctx, int code, const char *msg,
		     const struct msce_write_result *res)
{
	struct got *g = ctx;
	note(g, code, msg);
	if (res)
		g->res[g->n] = *res;
	else
		assert_int_not_equal(code, 0);
	g->n++;
}

static void on_batch(void *ctx, int code, const char *msg, size_t n,
		     const struct msce_write_result *res, const int *codes)
{
	struct got *g = ctx;
	note(g, code, msg);
	g->count[g->n] = n;
	for (size_t i = 0; i < n && i < 8; i++) {
		g->codes[g->n][i] = codes[i];
		assert_true(codes[i] != 0 || res[i].seq > 0);
		if (g->a != NULL)
			snprintf(g->why[g->n][i], sizeof g->why[g->n][i],
				 "%s", msce_async_batch_errmsg(g->a, i));
	}
	g->n++;
}

static void on_record(void *ctx, int code, const char *msg, msce_record *r)
{
	struct got *g = ctx;
	note(g, code, msg);
	if (code == 0) {
		const struct msce_value *v = msce_record_find(r, "a");
		assert_non_null(v);
		snprintf(g->value[g->n], sizeof g->value[g->n], "%.*s",
			 (int)v->value_len, (const char *)v->value);
		g->count[g->n] = msce_record_nfields(r);
	} else {
		assert_null(r);
	}
	msce_record_free(r);
	g->n++;
}

static void on_page(void *ctx, int code, const char *msg, msce_page *p)
{
	struct got *g = ctx;
	note(g, code, msg);
	if (code == 0) {
		g->count[g->n] = msce_page_count(p);
		if (msce_page_count(p))
			snprintf(g->value[g->n], sizeof g->value[g->n], "%s",
				 msce_record_key(msce_page_record(p, 0)));
	}
	msce_page_free(p);
	g->n++;
}

static void on_status(void *ctx, int code, const char *msg, msce_status *s)
{
	struct got *g = ctx;
	note(g, code, msg);
	if (code == 0) {
		g->node = msce_status_node(s);
		msce_status_cursor(s, &g->cur);
	}
	msce_status_free(s);
	g->n++;
}

static void on_conflicts(void *ctx, int code, const char *msg,
			 msce_conflicts *l)
{
	struct got *g = ctx;
	note(g, code, msg);
	if (code == 0)
		g->count[g->n] = msce_conflicts_count(l);
	msce_conflicts_free(l);
	g->n++;
}

/* ---- live ------------------------------------------------------------- */

static struct msce_field field(const char *name, const char *value)
{
	struct msce_field f = {0};
	f.name = name;
	f.value = value;
	f.value_len = strlen(value);
	return f;
}

static void test_every_request_pipelined(void **state)
{
	(void)state;
	msce_async *a = async_to(sock1, 10000);
	struct got w = {.a = a}, r = {0};
	char k1[64], k2[64], k3[64], pre[64];
	struct msce_field f1 = field("a", "one"), f2[2] = {field("a", "two"),
							   field("b", "2")};
	struct msce_field bad = field("birth_date", "1990-13-45");

	snprintf(k1, sizeof k1, "%s-a1", tag);
	snprintf(k2, sizeof k2, "%s-a2", tag);
	snprintf(k3, sizeof k3, "%s-a3", tag);
	snprintf(pre, sizeof pre, "%s-a", tag);
	struct msce_put batch[3] = {
		{"async", k3, &f1, 1, 0},
		{"registration", "DEU:BAD1", &bad, 1, 0},
		{"async", k2, f2, 2, 0},
	};

	/* Writes, all sent before any answer is read. */
	in_call = 1;
	assert_int_equal(
		msce_async_put(a, "async", k1, &f1, 1, NULL, on_write, &w), 0);
	assert_int_equal(
		msce_async_put(a, "async", k2, f2, 2, NULL, on_write, &w), 0);
	assert_int_equal(msce_async_put_batch(a, batch, 3, NULL, on_batch, &w),
			 0);
	/* Refused before anything is sent: no callback. */
	assert_int_equal(msce_async_put(a, NULL, k1, &f1, 1, NULL, on_write,
					&w),
			 MSCE_EINVAL);
	in_call = 0;
	assert_int_equal(msce_async_pending(a), 3);
	run_until(a, &w.n, 3, WAIT_MS);
	assert_int_equal(msce_async_pending(a), 0);
	assert_int_equal(w.code[0], 0);
	assert_int_equal(w.code[1], 0);
	assert_true(w.res[1].seq > w.res[0].seq); /* committed in order */
	assert_int_equal(w.code[2], 0);
	assert_int_equal(w.count[2], 3);
	assert_int_equal(w.codes[2][0], 0);
	assert_int_equal(w.codes[2][1], MSCE_EINVAL);
	assert_int_equal(w.codes[2][2], 0);
	/* The refused write says why (the bad date); the others say
	 * nothing, and outside the callback there is nothing to say. */
	assert_string_equal(w.why[2][0], "");
	assert_non_null(strstr(w.why[2][1], "birth_date"));
	assert_string_equal(w.why[2][2], "");
	assert_string_equal(msce_async_batch_errmsg(a, 1), "");

	/* Reads of every kind, pipelined. */
	const char *only_a[] = {"a"};
	struct msce_scan_opts so = {pre, NULL, NULL, 2};
	in_call = 1;
	assert_int_equal(msce_async_get(a, "async", k1, NULL, 0, on_record, &r),
			 0);
	assert_int_equal(
		msce_async_get(a, "async", k2, only_a, 1, on_record, &r), 0);
	assert_int_equal(msce_async_scan(a, "async", &so, on_page, &r), 0);
	assert_int_equal(msce_async_status(a, on_status, &r), 0);
	assert_int_equal(msce_async_conflicts(a, NULL, 0, on_conflicts, &r),
			 0);
	assert_int_equal(
		msce_async_get(a, "async", "nothing", NULL, 0, on_record, &r),
		0);
	in_call = 0;
	run_until(a, &r.n, 6, WAIT_MS);
	/* Reads are answered at once, in the order sent. */
	assert_int_equal(r.code[0], 0);
	assert_string_equal(r.value[0], "one");
	assert_int_equal(r.code[1], 0);
	assert_string_equal(r.value[1], "two");
	assert_int_equal(r.count[1], 1); /* only the field asked for */
	assert_int_equal(r.code[2], 0);
	assert_int_equal(r.count[2], 2);
	assert_string_equal(r.value[2], k1);
	assert_int_equal(r.code[3], 0);
	assert_int_equal(r.node, 1);
	assert_true(r.cur.n > 0);
	assert_int_equal(r.code[4], 0);
	assert_int_equal(r.code[5], MSCE_ENOTFOUND);
	assert_true(strlen(r.msg[5]) > 0);

	/* Delete and resolve. */
	struct got d = {0};
	in_call = 1;
	assert_int_equal(msce_async_delete(a, "async", k2, on_write, &d), 0);
	assert_int_equal(msce_async_resolve(a, "async", k1, "a", "uno", 3,
					    on_write, &d),
			 0);
	in_call = 0;
	run_until(a, &d.n, 2, WAIT_MS);
	assert_int_equal(d.code[0], 0);
	assert_int_equal(d.code[1], 0);
	assert_true(msce_async_connected(a));
	assert_non_null(strstr(msce_async_center(a), sock1));
	msce_async_free(a);
}

struct events {
	int n, ended, end_code;
	int mine; /* events of this run's keys */
	char keys[32][64];
	struct msce_cursor cur;
};

static void on_event(void *ctx, int code, const char *msg,
		     const struct msce_event *ev, const struct msce_cursor *cur)
{
	struct events *e = ctx;
	(void)msg;
	assert_false(in_call);
	if (code != 0) {
		assert_null(ev);
		assert_int_equal(e->ended, 0); /* told once */
		e->ended = 1;
		e->end_code = code;
		return;
	}
	assert_string_equal(ev->collection, "awatch");
	e->cur = *cur;
	e->n++;
	if (strncmp(ev->key, tag, strlen(tag)) == 0) {
		assert_true(e->mine < 32);
		snprintf(e->keys[e->mine++], 64, "%s", ev->key);
	}
}

static void put_async(msce_async *a, const char *coll, const char *key,
		      struct got *g)
{
	struct msce_field f = field("a", key);
	assert_int_equal(msce_async_put(a, coll, key, &f, 1, NULL, on_write, g),
			 0);
}

static void test_watches(void **state)
{
	(void)state;
	msce_async *a = async_to(sock1, 10000);
	struct events now = {0}, again = {0}, all = {0};
	struct got w = {0};
	msce_watcher *h;
	char key[64], text[MSCE_CURSOR_TEXT_MAX];
	struct msce_cursor saved;

	/* From now, on the same connection as the writes. */
	assert_int_equal(msce_async_watch(a, "awatch", MSCE_WATCH_FROM_NOW,
					  NULL, on_event, &now, &h),
			 0);
	for (int i = 0; i < 10; i++) {
		snprintf(key, sizeof key, "%s-w%02d", tag, i);
		put_async(a, "awatch", key, &w);
		put_async(a, "other", key, &w); /* not watched */
	}
	run_until(a, &now.mine, 10, WAIT_MS);
	run_until(a, &w.n, 20, WAIT_MS);
	for (int i = 0; i < 10; i++) {
		snprintf(key, sizeof key, "%s-w%02d", tag, i);
		assert_string_equal(now.keys[i], key);
	}
	assert_int_equal(now.n, 10); /* nothing from before, nothing twice */

	/* The cursor survives as text. */
	assert_int_equal(msce_cursor_format(&now.cur, text, sizeof text), 0);
	assert_int_equal(msce_cursor_parse(text, &saved), 0);
	assert_int_equal(saved.n, now.cur.n);
	assert_int_equal(msce_cursor_parse("1:2,x", &saved), MSCE_EINVAL);
	assert_int_equal(msce_cursor_parse("1:2,1:3", &saved), MSCE_EINVAL);
	assert_int_equal(msce_cursor_format(&now.cur, text, 3), MSCE_ETOOBIG);
	assert_int_equal(msce_cursor_format(&now.cur, text, sizeof text), 0);
	assert_int_equal(msce_cursor_parse(text, &saved), 0);

	/* Cancelled: told once, with ECLOSED, in a step. */
	msce_watch_cancel(h);
	assert_int_equal(now.ended, 0);
	run_until(a, &now.ended, 1, WAIT_MS);
	assert_int_equal(now.end_code, MSCE_ECLOSED);

	/* From the saved cursor: only what came after it. */
	assert_int_equal(msce_async_watch(a, "awatch", MSCE_WATCH_FROM_CURSOR,
					  &saved, on_event, &again, NULL),
			 0);
	snprintf(key, sizeof key, "%s-later", tag);
	put_async(a, "awatch", key, &w);
	run_until(a, &again.mine, 1, WAIT_MS);
	assert_string_equal(again.keys[0], key);
	assert_int_equal(again.n, 1);

	/* From the start: all of them again (earlier runs' keys too). */
	assert_int_equal(msce_async_watch(a, "awatch", MSCE_WATCH_FROM_START,
					  NULL, on_event, &all, NULL),
			 0);
	run_until(a, &all.mine, 11, WAIT_MS);
	assert_string_equal(all.keys[10], key);

	/* Freed: open watches are told. */
	msce_async_free(a);
	assert_int_equal(again.ended, 1);
	assert_int_equal(again.end_code, MSCE_ECLOSED);
	assert_int_equal(all.ended, 1);
	assert_int_equal(now.n, 10); /* the cancelled one got nothing more */
}

static void test_failover_past_a_dead_center(void **state)
{
	(void)state;
	msce_conninfo *ci = msce_conninfo_new();
	struct got g = {0};
	msce_async *a;
	msce_client *c;
	msce_status *s;

	assert_int_equal(msce_conninfo_add_unix(ci, "/nonexistent/msce.sock"),
			 0);
	assert_int_equal(msce_conninfo_add_unix(ci, sock1), 0);
	assert_int_equal(msce_async_new(ci, &a), 0);
	assert_int_equal(msce_async_status(a, on_status, &g), 0);
	run_until(a, &g.n, 1, WAIT_MS);
	assert_int_equal(g.code[0], 0);
	assert_non_null(strstr(msce_async_center(a), sock1));
	msce_async_free(a);

	/* The blocking client does the same. */
	assert_int_equal(msce_connect(ci, &c), 0);
	assert_non_null(strstr(msce_center(c), sock1));
	assert_int_equal(msce_status_get(c, &s), 0);
	msce_status_free(s);
	msce_close(c);
	msce_conninfo_free(ci);
}

static msce_async *freed_in_callback;

static void on_record_free(void *ctx, int code, const char *msg,
			   msce_record *r)
{
	struct got *g = ctx;
	on_record(ctx, code, msg, r);
	if (g->n == 1)
		msce_async_free(freed_in_callback);
}

static void test_free_inside_a_callback(void **state)
{
	(void)state;
	msce_async *a = async_to(sock1, 10000);
	struct got g = {0};
	char key[64];

	snprintf(key, sizeof key, "%s-a1", tag);
	freed_in_callback = a;
	for (int i = 0; i < 5; i++)
		assert_int_equal(msce_async_get(a, "async", key, NULL, 0,
						on_record_free, &g),
				 0);
	run_until(a, &g.n, 5, WAIT_MS);
	assert_int_equal(g.n, 5);
	assert_int_equal(g.code[0], 0);
	/* The rest ended when a went, each once (none answered later: a is
	 * gone, and ASan checks nothing touches it). */
	for (int i = 1; i < 5; i++)
		assert_true(g.code[i] == 0 || g.code[i] == MSCE_ECLOSED);
	assert_int_equal(g.code[4], MSCE_ECLOSED);
}

/* ---- fakes ------------------------------------------------------------------ */

/* A fake node on a unix socket, following a script, one letter a step:
 *   r  read one request            a  read one and answer it ENOTFOUND
 *   s  read one and answer a status of a store that cannot be read
 *   c  close this connection and accept the next
 * At the end of the script it closes everything. */
struct fake {
	int lfd;
	char path[108];
	const char *script;
	pthread_t t;
	int accepted;
	int closes; /* 'c' steps done (atomic: the test waits on it) */
};

static int read_full(int fd, void *buf, size_t n)
{
	for (size_t got = 0; got < n;) {
		ssize_t k = recv(fd, (char *)buf + got, n - got, 0);
		if (k <= 0)
			return -1;
		got += (size_t)k;
	}
	return 0;
}

static void *fake_main(void *arg)
{
	struct fake *f = arg;
	int fd = accept(f->lfd, NULL, NULL);

	f->accepted = fd >= 0;
	for (const char *s = f->script; *s && fd >= 0; s++) {
		uint32_t be;
		uint8_t body[65536];
		if (*s == 'c') {
			close(fd);
			__atomic_add_fetch(&f->closes, 1, __ATOMIC_SEQ_CST);
			fd = accept(f->lfd, NULL, NULL);
			f->accepted += fd >= 0;
			continue;
		}
		if (read_full(fd, &be, 4) || ntohl(be) > sizeof body ||
		    read_full(fd, body, ntohl(be)))
			break;
		if (*s == 'a' || *s == 's') {
			Msce__ClientRequest *q = msce__client_request__unpack(
				NULL, ntohl(be), body);
			Msce__ClientResponse r = MSCE__CLIENT_RESPONSE__INIT;
			Msce__StatusResult st = MSCE__STATUS_RESULT__INIT;
			uint8_t out[256];
			size_t n;
			r.id = q ? q->id : 0;
			if (*s == 's') {
				st.node = 1;
				st.conflicts_unknown = 1;
				st.store_failure = "fake: unreadable";
				r.result_case =
				    MSCE__CLIENT_RESPONSE__RESULT_STATUS;
				r.status = &st;
			} else {
				r.code = MSCE_ENOTFOUND;
				r.error = "fake: nothing here";
			}
			msce__client_request__free_unpacked(q, NULL);
			n = msce__client_response__pack(&r, out + 4);
			be = htonl((uint32_t)n);
			memcpy(out, &be, 4);
			send(fd, out, n + 4, MSG_NOSIGNAL);
		}
	}
	if (fd >= 0)
		close(fd);
	return NULL;
}

static void fake_start(struct fake *f, const char *script)
{
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	static int k;

	memset(f, 0, sizeof *f);
	snprintf(f->path, sizeof f->path, "/tmp/msce-afake-%ld-%d.sock",
		 (long)getpid(), k++);
	unlink(f->path);
	snprintf(a.sun_path, sizeof a.sun_path, "%s", f->path);
	f->lfd = socket(AF_UNIX, SOCK_STREAM, 0);
	assert_int_equal(bind(f->lfd, (struct sockaddr *)&a, sizeof a), 0);
	assert_int_equal(listen(f->lfd, 4), 0);
	f->script = script;
	assert_int_equal(pthread_create(&f->t, NULL, fake_main, f), 0);
}

/* Until the fake has closed n connections (at most 10 s): a script step
 * the client must see before its next request. */
static void fake_wait_closes(struct fake *f, int n)
{
	for (int i = 0; i < 10000; i++) {
		if (__atomic_load_n(&f->closes, __ATOMIC_SEQ_CST) >= n)
			return;
		usleep(1000);
	}
	fail_msg("the fake closed %d connections, not %d",
		 __atomic_load_n(&f->closes, __ATOMIC_SEQ_CST), n);
}

static void fake_stop(struct fake *f)
{
	/* A script that waits in accept is woken by a connection. */
	shutdown(f->lfd, SHUT_RDWR);
	pthread_join(f->t, NULL);
	close(f->lfd);
	unlink(f->path);
}

static void test_request_timeout(void **state)
{
	(void)state;
	struct fake f;
	struct got g = {0};
	uint64_t t0;

	fake_start(&f, "rr"); /* reads, never answers */
	msce_async *a = async_to(f.path, 300);
	/* A bad purpose is refused with its reason, as msce_set_purpose. */
	assert_int_equal(msce_async_set_purpose(a, "curiosity"), MSCE_EINVAL);
	assert_non_null(strstr(msce_async_errmsg(a), "is not one of"));
	t0 = now_ms();
	assert_int_equal(msce_async_get(a, "t", "k", NULL, 0, on_record, &g),
			 0);
	run_until(a, &g.n, 1, WAIT_MS);
	assert_int_equal(g.code[0], MSCE_ETIMEOUT);
	assert_non_null(strstr(g.msg[0], "within 300 ms"));
	assert_true(now_ms() - t0 < 5000);
	msce_async_free(a);
	fake_stop(&f);

	/* The blocking client too, once a timeout is set. */
	msce_client *c;
	msce_record *r;
	fake_start(&f, "rr");
	assert_int_equal(msce_connect_unix(f.path, &c), 0);
	msce_set_timeout(c, 300);
	assert_int_equal(msce_get(c, "t", "k", &r), MSCE_ETIMEOUT);
	msce_close(c);
	fake_stop(&f);
}

/* A center that takes the connection and never answers (a stopped msced,
 * a stalled disk) is given up after a request timeout: the next request
 * goes to the next center, for both clients. */
static void test_timeout_moves_to_the_next_center(void **state)
{
	(void)state;
	struct fake hung, good;
	struct got g = {0};
	msce_conninfo *ci = msce_conninfo_new();
	msce_async *a;
	msce_client *c;
	msce_record *r;

	fake_start(&hung, "rrrr"); /* reads, never answers */
	fake_start(&good, "aaaa");
	assert_int_equal(msce_conninfo_add_unix(ci, hung.path), 0);
	assert_int_equal(msce_conninfo_add_unix(ci, good.path), 0);
	msce_conninfo_set_timeouts(ci, 0, 300);
	msce_conninfo_set_reconnect(ci, 1, 20, 200);
	assert_int_equal(msce_async_new(ci, &a), 0);
	assert_int_equal(msce_async_get(a, "t", "k", NULL, 0, on_record, &g),
			 0);
	run_until(a, &g.n, 1, WAIT_MS);
	assert_int_equal(g.code[0], MSCE_ETIMEOUT);
	assert_int_equal(msce_async_get(a, "t", "k", NULL, 0, on_record, &g),
			 0);
	run_until(a, &g.n, 2, WAIT_MS);
	assert_int_equal(g.code[1], MSCE_ENOTFOUND);
	assert_string_equal(g.msg[1], "fake: nothing here");
	assert_non_null(strstr(msce_async_center(a), good.path));
	msce_async_free(a);
	msce_conninfo_free(ci);
	fake_stop(&hung);
	fake_stop(&good);

	/* The blocking client (new fakes: each serves one connection): the
	 * call that timed out says where the next goes, and the next is
	 * answered there. */
	fake_start(&hung, "rrrr");
	fake_start(&good, "aaaa");
	ci = msce_conninfo_new();
	assert_int_equal(msce_conninfo_add_unix(ci, hung.path), 0);
	assert_int_equal(msce_conninfo_add_unix(ci, good.path), 0);
	msce_conninfo_set_reconnect(ci, 1, 20, 200);
	assert_int_equal(msce_connect(ci, &c), 0);
	assert_non_null(strstr(msce_center(c), hung.path));
	msce_set_timeout(c, 300);
	assert_int_equal(msce_get(c, "t", "k", &r), MSCE_ETIMEOUT);
	assert_non_null(strstr(msce_errmsg(c), "the next call goes to"));
	assert_int_equal(msce_get(c, "t", "k", &r), MSCE_ENOTFOUND);
	assert_string_equal(msce_errmsg(c), "fake: nothing here");
	assert_non_null(strstr(msce_center(c), good.path));
	msce_close(c);
	msce_conninfo_free(ci);
	fake_stop(&hung);
	fake_stop(&good);
}

/* Pipelined puts whose connection goes, or whose center stops answering
 * (with another to try), are given up: the client is not left waiting
 * for answers that cannot come, every later call refused EBUSY. */
static void test_pipelined_puts_given_up_with_their_connection(void **state)
{
	(void)state;
	struct fake hung, good, f;
	msce_conninfo *ci = msce_conninfo_new();
	struct msce_field fl = field("v", "1");
	struct msce_write_result res;
	msce_client *c;
	msce_record *r;
	uint64_t id;

	fake_start(&hung, "rrrr"); /* reads, never answers */
	fake_start(&good, "aaaa");
	assert_int_equal(msce_conninfo_add_unix(ci, hung.path), 0);
	assert_int_equal(msce_conninfo_add_unix(ci, good.path), 0);
	msce_conninfo_set_reconnect(ci, 1, 20, 200);
	assert_int_equal(msce_connect(ci, &c), 0);
	msce_set_timeout(c, 300);
	for (int i = 0; i < 3; i++)
		assert_int_equal(msce_put_send(c, "t", "k", &fl, 1, &id), 0);
	assert_int_equal(msce_pending(c), 3);
	assert_int_equal(msce_put_recv(c, &id, &res), MSCE_ETIMEOUT);
	assert_non_null(strstr(msce_errmsg(c), "the next call goes to"));
	assert_int_equal(msce_pending(c), 0);
	msce_set_timeout(c, 5000); /* the good one answers, even slowly */
	assert_int_equal(msce_get(c, "t", "k", &r), MSCE_ENOTFOUND);
	assert_non_null(strstr(msce_center(c), good.path));
	msce_close(c);
	msce_conninfo_free(ci);
	fake_stop(&hung);
	fake_stop(&good);

	/* One center, which answers the first put, reads the second and
	 * closes: the third's answer cannot come; the client connects
	 * again for the next call. */
	fake_start(&f, "arca");
	ci = msce_conninfo_new();
	assert_int_equal(msce_conninfo_add_unix(ci, f.path), 0);
	msce_conninfo_set_reconnect(ci, 1, 20, 200);
	assert_int_equal(msce_connect(ci, &c), 0);
	msce_set_timeout(c, 5000);
	for (int i = 0; i < 3; i++)
		assert_int_equal(msce_put_send(c, "t", "k", &fl, 1, &id), 0);
	assert_int_equal(msce_put_recv(c, &id, &res), MSCE_ENOTFOUND);
	assert_int_equal(msce_pending(c), 2);
	assert_int_equal(msce_put_recv(c, &id, &res), MSCE_ECLOSED);
	assert_int_equal(msce_pending(c), 0);
	assert_int_equal(msce_get(c, "t", "k", &r), MSCE_ENOTFOUND);
	assert_string_equal(msce_errmsg(c), "fake: nothing here");
	msce_close(c);
	msce_conninfo_free(ci);
	fake_stop(&f);

	/* One center that stops answering: the puts are kept, and a later
	 * msce_put_recv may still get their answers. */
	fake_start(&f, "rr");
	ci = msce_conninfo_new();
	assert_int_equal(msce_conninfo_add_unix(ci, f.path), 0);
	assert_int_equal(msce_connect(ci, &c), 0);
	msce_set_timeout(c, 200);
	assert_int_equal(msce_put_send(c, "t", "k", &fl, 1, &id), 0);
	assert_int_equal(msce_put_recv(c, &id, &res), MSCE_ETIMEOUT);
	assert_int_equal(msce_pending(c), 1);
	msce_close(c);
	msce_conninfo_free(ci);
	fake_stop(&f);
}

/* A TCP listener that accepts (in the kernel) and never answers. */
static int silent_tcp(int *port)
{
	struct sockaddr_in a = {.sin_family = AF_INET};
	socklen_t len = sizeof a;
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
	assert_int_equal(listen(fd, 4), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
	*port = ntohs(a.sin_port);
	return fd;
}

static void on_state(void *ctx, enum msce_async_state s, int code,
		     const char *msg, const char *center)
{
	struct got *g = ctx;
	(void)msg;
	(void)center;
	if (s == MSCE_ASYNC_DOWN || s == MSCE_ASYNC_CLOSED) {
		g->codes[0][g->count[0] < 8 ? g->count[0] : 7] = code;
		g->count[0]++;
	}
}

static void test_connect_timeout_and_no_center(void **state)
{
	(void)state;
	char dir[] = "/tmp/msce-akeyXXXXXX", prefix[64], hostport[32];
	char pub[64] = "";
	struct err e;
	int port, lfd = silent_tcp(&port);
	struct got g = {0}, st = {0};
	msce_conninfo *ci = msce_conninfo_new();
	msce_async *a;
	FILE *fp;

	assert_non_null(mkdtemp(dir));
	snprintf(prefix, sizeof prefix, "%s/c", dir);
	assert_int_equal(keyfile_generate(prefix, &e), 0);
	snprintf(hostport, sizeof hostport, "127.0.0.1:%d", port);
	snprintf(prefix, sizeof prefix, "%s/c.pub", dir);
	assert_non_null(fp = fopen(prefix, "r"));
	assert_non_null(fgets(pub, sizeof pub, fp));
	fclose(fp);
	pub[strcspn(pub, "\n")] = '\0';

	/* The node's public key, not a key file: a path is refused. */
	assert_int_equal(msce_conninfo_add_tcp(ci, hostport, prefix),
			 MSCE_ECORRUPT);
	assert_non_null(strstr(msce_conninfo_errmsg(ci), "public key"));
	assert_int_equal(msce_conninfo_add_tcp(ci, hostport, pub), 0);
	/* A TCP center needs the client's key. */
	assert_int_equal(msce_async_new(ci, &a), MSCE_EINVAL);
	snprintf(prefix, sizeof prefix, "%s/c.key", dir);
	assert_int_equal(msce_conninfo_set_client_key(ci, prefix, "test"), 0);
	msce_conninfo_set_timeouts(ci, 300, 0);
	msce_conninfo_set_reconnect(ci, 0, 0, 0);
	assert_int_equal(msce_async_new(ci, &a), 0);
	msce_async_on_state(a, on_state, &st);
	assert_int_equal(msce_async_get(a, "t", "k", NULL, 0, on_record, &g),
			 0);
	run_until(a, &g.n, 1, WAIT_MS);
	/* No handshake reply in time; reconnection off: closed for good. */
	assert_int_equal(g.code[0], MSCE_ETIMEOUT);
	assert_non_null(strstr(g.msg[0], "handshake"));
	assert_int_equal(st.codes[0][0], MSCE_ETIMEOUT);
	assert_int_equal(msce_async_step(a, 0), MSCE_ECLOSED);
	assert_int_equal(msce_async_get(a, "t", "k", NULL, 0, on_record, &g),
			 MSCE_ECLOSED);
	msce_async_free(a);
	msce_conninfo_free(ci);
	close(lfd);

	/* No center at all, reconnecting: requests wait for their timeout. */
	ci = msce_conninfo_new();
	assert_int_equal(msce_conninfo_add_unix(ci, "/nonexistent/a.sock"), 0);
	assert_int_equal(msce_conninfo_add_unix(ci, "/nonexistent/b.sock"), 0);
	msce_conninfo_set_timeouts(ci, 0, 400);
	msce_conninfo_set_reconnect(ci, 1, 50, 100);
	assert_int_equal(msce_async_new(ci, &a), 0);
	memset(&g, 0, sizeof g);
	memset(&st, 0, sizeof st);
	msce_async_on_state(a, on_state, &st);
	assert_int_equal(msce_async_status(a, on_status, &g), 0);
	run_until(a, &g.n, 1, WAIT_MS);
	assert_int_equal(g.code[0], MSCE_ETIMEOUT);
	assert_non_null(strstr(g.msg[0], "no connection to any center"));
	assert_true(st.count[0] >= 2); /* it kept trying */
	msce_async_free(a);
	msce_conninfo_free(ci);

	/* The blocking client says which centers it tried. */
	ci = msce_conninfo_new();
	msce_client *c;
	assert_int_equal(msce_conninfo_add_unix(ci, "/nonexistent/a.sock"), 0);
	assert_int_equal(msce_conninfo_add_unix(ci, "/nonexistent/b.sock"), 0);
	assert_int_equal(msce_connect(ci, &c), MSCE_EUNAVAIL);
	assert_non_null(strstr(msce_errmsg(c), "no center answered (2 tried)"));
	msce_close(c);
	msce_conninfo_free(ci);
	snprintf(prefix, sizeof prefix, "%s/c.key", dir);
	unlink(prefix);
	snprintf(prefix, sizeof prefix, "%s/c.pub", dir);
	unlink(prefix);
	snprintf(prefix, sizeof prefix, "%s/c.sign.pub", dir);
	unlink(prefix);
	assert_int_equal(rmdir(dir), 0);
}

static void test_lost_connection(void **state)
{
	(void)state;
	struct fake f;
	struct got g = {0};
	struct msce_field fl = field("a", "1");

	/* Connection 1 takes a put and a get and dies; connection 2 answers
	 * the get, sent again; the put is not. */
	fake_start(&f, "rrca");
	msce_async *a = async_to(f.path, 10000);
	assert_int_equal(msce_async_put(a, "t", "k", &fl, 1, NULL, on_write,
					&g),
			 0);
	assert_int_equal(msce_async_get(a, "t", "k", NULL, 0, on_record, &g),
			 0);
	run_until(a, &g.n, 2, WAIT_MS);
	assert_int_equal(g.code[0], MSCE_ECLOSED);
	assert_non_null(strstr(g.msg[0], "may or may not have committed"));
	assert_int_equal(g.code[1], MSCE_ENOTFOUND);
	assert_string_equal(g.msg[1], "fake: nothing here");
	msce_async_free(a);
	fake_stop(&f);
	assert_int_equal(f.accepted, 2);

	/* A blocking client from msce_connect: a connection the node closed
	 * while idle is replaced before the next request, and a read lost
	 * in flight is sent again; a write lost in flight is ECLOSED. */
	msce_conninfo *ci = msce_conninfo_new();
	msce_client *c;
	msce_record *r;
	fake_start(&f, "acrcaarc");
	assert_int_equal(msce_conninfo_add_unix(ci, f.path), 0);
	msce_conninfo_set_timeouts(ci, 0, 5000);
	assert_int_equal(msce_connect(ci, &c), 0);
	assert_int_equal(msce_get(c, "t", "k", &r), MSCE_ENOTFOUND);
	/* closed while idle ("c"): reconnects first; "r" drops the get with
	 * its connection: sent again on the third, answered ("a"). The
	 * close must have happened before the get is sent, or the get is
	 * lost twice (on the first connection, then by "r"). */
	fake_wait_closes(&f, 1);
	assert_int_equal(msce_get(c, "t", "k", &r), MSCE_ENOTFOUND);
	assert_int_equal(msce_get(c, "t", "k", &r), MSCE_ENOTFOUND);
	/* The put is read ("r") and its connection closed ("c"). */
	assert_int_equal(msce_put(c, "t", "k", &fl, 1, NULL), MSCE_ECLOSED);
	msce_close(c);
	msce_conninfo_free(ci);
	fake_stop(&f);
	assert_int_equal(f.accepted, 3);
}

/* The node answered a write and closed the connection; the client sends
 * another request before its next step, which fails (EPIPE). The answer
 * that came before the close is still delivered: the write committed,
 * and must not be reported as lost ("may or may not have committed"). */
static void test_answer_before_close_kept(void **state)
{
	(void)state;
	struct fake f;
	struct got g = {0};
	struct msce_field fl = field("a", "1");

	fake_start(&f, "ac"); /* answers the put, closes */
	msce_async *a = async_to(f.path, 2000);
	assert_int_equal(msce_async_put(a, "t", "k1", &fl, 1, NULL, on_write,
					&g),
			 0);
	fake_wait_closes(&f, 1);
	assert_int_equal(msce_async_put(a, "t", "k2", &fl, 1, NULL, on_write,
					&g),
			 0);
	run_until(a, &g.n, 2, WAIT_MS);
	assert_int_equal(g.code[0], MSCE_ENOTFOUND);
	assert_string_equal(g.msg[0], "fake: nothing here");
	assert_int_equal(g.code[1], MSCE_ECLOSED);
	msce_async_free(a);
	fake_stop(&f);
}

/* A blocking watch on a client from msce_connect whose every center is
 * down: msce_watch_next returns the error, and the next call, once a
 * center is back, resumes the watch (it is not dropped). */
static void test_blocking_watch_resumes_after_outage(void **state)
{
	(void)state;
	struct fake f;
	char path[108];
	msce_conninfo *ci = msce_conninfo_new();
	msce_client *c;
	struct msce_event ev;
	int rc;

	fake_start(&f, "r"); /* reads the watch, then goes away */
	snprintf(path, sizeof path, "%s", f.path);
	assert_int_equal(msce_conninfo_add_unix(ci, path), 0);
	msce_conninfo_set_timeouts(ci, 0, 5000);
	msce_conninfo_set_reconnect(ci, 1, 20, 100);
	assert_int_equal(msce_connect(ci, &c), 0);
	assert_int_equal(
		msce_watch_from(c, "t", MSCE_WATCH_FROM_START, NULL), 0);
	fake_stop(&f); /* no center at all now */
	rc = msce_watch_next(c, &ev, 300, NULL);
	assert_int_not_equal(rc, 0);
	assert_int_not_equal(rc, MSCE_EINVAL);

	/* The center is back (same socket path): the watch is sent again. */
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	memset(&f, 0, sizeof f);
	snprintf(f.path, sizeof f.path, "%s", path);
	snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
	f.lfd = socket(AF_UNIX, SOCK_STREAM, 0);
	assert_int_equal(bind(f.lfd, (struct sockaddr *)&sa, sizeof sa), 0);
	assert_int_equal(listen(f.lfd, 4), 0);
	f.script = "rr"; /* reads the watch again, never answers */
	assert_int_equal(pthread_create(&f.t, NULL, fake_main, &f), 0);
	rc = msce_watch_next(c, &ev, 1000, NULL);
	assert_int_equal(rc, MSCE_ETIMEOUT); /* a watch, with no change yet */
	assert_int_equal(f.accepted, 1);
	msce_close(c);
	msce_conninfo_free(ci);
	fake_stop(&f);
}

/* A node whose store cannot be read cannot count its conflicts: the
 * status says unknown, not 0. */
static void test_conflicts_unknown(void **state)
{
	struct fake f;
	msce_conninfo *ci;
	msce_client *c;
	msce_status *s;
	(void)state;

	fake_start(&f, "s");
	ci = msce_conninfo_new();
	assert_int_equal(msce_conninfo_add_unix(ci, f.path), 0);
	assert_int_equal(msce_connect(ci, &c), 0);
	assert_int_equal(msce_status_get(c, &s), 0);
	assert_true(msce_status_conflicts(s) == UINT64_MAX);
	msce_status_free(s);
	msce_close(c);
	msce_conninfo_free(ci);
	fake_stop(&f);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest live[] = {
		cmocka_unit_test(test_every_request_pipelined),
		cmocka_unit_test(test_watches),
		cmocka_unit_test(test_failover_past_a_dead_center),
		cmocka_unit_test(test_free_inside_a_callback),
	};
	const struct CMUnitTest fake[] = {
		cmocka_unit_test(test_request_timeout),
		cmocka_unit_test(test_timeout_moves_to_the_next_center),
		cmocka_unit_test(
		    test_pipelined_puts_given_up_with_their_connection),
		cmocka_unit_test(test_connect_timeout_and_no_center),
		cmocka_unit_test(test_lost_connection),
		cmocka_unit_test(test_answer_before_close_kept),
		cmocka_unit_test(test_blocking_watch_resumes_after_outage),
		cmocka_unit_test(test_conflicts_unknown),
	};
	const char *mode = argc > 1 ? argv[1] : "";

	sock1 = argc > 2 ? argv[2] : NULL;
	snprintf(tag, sizeof tag, "r%ld", (long)time(NULL) % 100000 * 100 +
						  (long)getpid() % 100);
	if (strcmp(mode, "live") == 0 && sock1 != NULL)
		return cmocka_run_group_tests(live, NULL, NULL);
	if (strcmp(mode, "fake") == 0)
		return cmocka_run_group_tests(fake, NULL, NULL);
	fprintf(stderr, "usage: msce-asynctest live SOCKET | fake\n");
	return 2;
}
