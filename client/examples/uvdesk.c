/* SPDX-License-Identifier: Apache-2.0 */
/* uvdesk: a front end on libuv that writes and watches on one loop with
 * libmsce's event-loop API. It watches collection "desk" from now, writes
 * COUNT records (key TAG-i, field n = i) one every INTERVAL ms, and ends
 * once every write is acknowledged and its change has come back through
 * the watch exactly once. When the node restarts (or one center fails
 * and another answers), the connection comes back by itself and the watch
 * resumes where it was; a write whose answer was lost is read back and
 * written again only if it did not commit.
 *
 *   msce-uvdesk [-n COUNT] [-i INTERVAL_MS] [-t TAG] [-s SITES] SOCKET...
 *
 * Each SOCKET is a center's unix socket, in order of preference. With -s,
 * a write is acknowledged once SITES centers hold it (so that every center
 * a desk may fail over to has it); one that times out waiting (a center
 * is down) is read back like a lost one. Prints
 * "state ...", "acked K" (every 25), "change KEY ORIGIN/SEQ" per event,
 * and finally "done: ..." with the cursor to resume from. Exit status 0
 * when every change was seen once, 1 otherwise.
 *
 * Build against an installed libmsce:
 *   cc uvdesk.c $(pkg-config --cflags --libs msce libuv) -o uvdesk */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <msce/msce.h>
#include <uv.h>

#define DEADLINE_MS 90000

struct desk {
	uv_loop_t *loop;
	msce_async *a;
	uv_poll_t poll;
	uv_timer_t writer, deadline;
	const char *tag;
	unsigned count, interval, sites;
	unsigned next;	 /* next record to write */
	unsigned acked;	 /* writes known committed */
	unsigned seen;	 /* distinct changes seen */
	unsigned dups;	 /* changes seen twice */
	unsigned rewrites, reconnects;
	unsigned char *state; /* per record: 1 acked */
	unsigned char *times; /* per record: times its change was seen */
	struct msce_cursor cursor;
	int failed, finished;
};

struct wctx {
	struct desk *d;
	unsigned i;
};

static void put_one(struct desk *d, unsigned i);

static void finish(struct desk *d)
{
	char text[MSCE_CURSOR_TEXT_MAX];

	if (d->finished)
		return;
	d->finished = 1;
	msce_cursor_format(&d->cursor, text, sizeof text);
	printf("done: wrote %u, acked %u, saw %u changes, duplicates %u, "
	       "rewrites %u, reconnects %u, cursor %s\n",
	       d->count, d->acked, d->seen, d->dups, d->rewrites,
	       d->reconnects, text);
	fflush(stdout);
	uv_timer_stop(&d->writer);
	uv_timer_stop(&d->deadline);
	uv_poll_stop(&d->poll);
	uv_close((uv_handle_t *)&d->poll, NULL);
	uv_close((uv_handle_t *)&d->writer, NULL);
	uv_close((uv_handle_t *)&d->deadline, NULL);
	/* Freeing a inside one of its callbacks is allowed: it goes when the
	 * step returns. */
	msce_async_free(d->a);
	d->a = NULL;
}

static void check_done(struct desk *d)
{
	if (d->acked == d->count && d->seen == d->count)
		finish(d);
}

static void acked(struct desk *d, unsigned i)
{
	if (d->state[i])
		return;
	d->state[i] = 1;
	if (++d->acked % 25 == 0) {
		printf("acked %u\n", d->acked);
		fflush(stdout);
	}
	check_done(d);
}

/* A write's answer was lost with its connection: it may have committed.
 * Read it back (reads are resent across reconnects) and write it again
 * only if it is not there. */
static void on_read_back(void *ctx, int code, const char *msg,
			 msce_record *rec)
{
	struct wctx *w = ctx;
	struct desk *d = w->d;

	if (d->finished) {
		msce_record_free(rec);
		free(w);
		return;
	}
	if (code == 0) {
		acked(d, w->i);
	} else if (code == MSCE_ENOTFOUND) {
		d->rewrites++;
		put_one(d, w->i);
	} else {
		fprintf(stderr, "uvdesk: reading %s-%u back: %s: %s\n", d->tag,
			w->i, msce_strerror(code), msg);
		d->failed = 1;
	}
	msce_record_free(rec);
	free(w);
}

static void on_put(void *ctx, int code, const char *msg,
		   const struct msce_write_result *res)
{
	struct wctx *w = ctx;
	struct desk *d = w->d;
	char key[64];

	if (d->finished) {
		free(w);
		return;
	}
	/* ETIMEOUT with a change: committed here, fewer sites than asked. */
	if (code == 0 || (code == MSCE_ETIMEOUT && res != NULL)) {
		acked(d, w->i);
		free(w);
		return;
	}
	if (code == MSCE_ECLOSED || code == MSCE_ETIMEOUT ||
	    code == MSCE_EBUSY) {
		snprintf(key, sizeof key, "%s-%u", d->tag, w->i);
		if (msce_async_get(d->a, "desk", key, NULL, 0, on_read_back,
				   w) == 0)
			return;
	}
	fprintf(stderr, "uvdesk: write %s-%u: %s: %s\n", d->tag, w->i,
		msce_strerror(code), msg);
	d->failed = 1;
	free(w);
}

static void put_one(struct desk *d, unsigned i)
{
	struct wctx *w = malloc(sizeof *w);
	char key[64], val[16];
	struct msce_field f = {0};
	struct msce_put_opts o = {0};

	if (w == NULL) {
		d->failed = 1;
		return;
	}
	*w = (struct wctx){d, i};
	snprintf(key, sizeof key, "%s-%u", d->tag, i);
	snprintf(val, sizeof val, "%u", i);
	f.name = "n";
	f.value = val;
	f.value_len = strlen(val);
	o.min_sites = d->sites;
	o.timeout_ms = 500;
	if (msce_async_put(d->a, "desk", key, &f, 1, d->sites ? &o : NULL,
			   on_put, w) != 0) {
		fprintf(stderr, "uvdesk: cannot queue %s: %s\n", key,
			msce_async_errmsg(d->a));
		d->failed = 1;
		free(w);
	}
}

static void on_change(void *ctx, int code, const char *msg,
		      const struct msce_event *ev,
		      const struct msce_cursor *cursor)
{
	struct desk *d = ctx;
	size_t tl = strlen(d->tag);
	unsigned i;

	if (code != 0) {
		if (!d->finished) {
			fprintf(stderr, "uvdesk: watch ended: %s: %s\n",
				msce_strerror(code), msg);
			d->failed = 1;
		}
		return;
	}
	d->cursor = *cursor; /* what a restarted desk would resume from */
	printf("change %s %u/%llu\n", ev->key, ev->origin,
	       (unsigned long long)ev->seq);
	if (strncmp(ev->key, d->tag, tl) != 0 || ev->key[tl] != '-')
		return;
	i = (unsigned)strtoul(ev->key + tl + 1, NULL, 10);
	if (i >= d->count)
		return;
	if (d->times[i]++ == 0)
		d->seen++;
	else
		d->dups++;
	check_done(d);
}

static void on_state(void *ctx, enum msce_async_state s, int code,
		     const char *msg, const char *center)
{
	struct desk *d = ctx;

	if (s == MSCE_ASYNC_READY)
		printf("state ready %s\n", center);
	else if (s == MSCE_ASYNC_DOWN) {
		d->reconnects++;
		printf("state down %s: %s\n", msce_errname(code), msg);
	} else if (s == MSCE_ASYNC_CLOSED)
		printf("state closed %s: %s\n", msce_errname(code), msg);
	fflush(stdout);
}

static void on_ready(uv_poll_t *h, int status, int events)
{
	struct desk *d = h->data;

	(void)status;
	(void)events;
	if (d->a != NULL)
		msce_async_step(d->a, MSCE_WANT_READ);
	if (d->failed && !d->finished)
		finish(d);
}

static void on_write_tick(uv_timer_t *t)
{
	struct desk *d = t->data;

	if (d->next < d->count)
		put_one(d, d->next++);
	if (d->next == d->count)
		uv_timer_stop(t);
}

static void on_deadline(uv_timer_t *t)
{
	struct desk *d = t->data;

	fprintf(stderr, "uvdesk: not done within %d ms\n", DEADLINE_MS);
	d->failed = 1;
	finish(d);
}

int main(int argc, char **argv)
{
	struct desk d = {.tag = "desk", .count = 100, .interval = 10};
	msce_conninfo *ci;
	int opt, rc;

	while ((opt = getopt(argc, argv, "n:i:t:s:")) != -1) {
		switch (opt) {
		case 'n':
			d.count = (unsigned)atoi(optarg);
			break;
		case 'i':
			d.interval = (unsigned)atoi(optarg);
			break;
		case 't':
			d.tag = optarg;
			break;
		case 's':
			d.sites = (unsigned)atoi(optarg);
			break;
		default:
			goto usage;
		}
	}
	if (optind >= argc || d.count == 0)
		goto usage;
	d.state = calloc(d.count, 1);
	d.times = calloc(d.count, 1);
	if ((ci = msce_conninfo_new()) == NULL || d.state == NULL ||
	    d.times == NULL)
		return 1;
	for (int i = optind; i < argc; i++)
		if (msce_conninfo_add_unix(ci, argv[i]) != 0) {
			fprintf(stderr, "uvdesk: %s\n",
				msce_conninfo_errmsg(ci));
			return 2;
		}
	/* Come back quickly after a restart. */
	msce_conninfo_set_reconnect(ci, 1, 50, 500);
	rc = msce_async_new(ci, &d.a);
	msce_conninfo_free(ci);
	if (rc != 0) {
		fprintf(stderr, "uvdesk: %s\n", msce_strerror(rc));
		return 1;
	}
	msce_async_on_state(d.a, on_state, &d);
	if ((rc = msce_async_watch(d.a, "desk", MSCE_WATCH_FROM_NOW, NULL,
				   on_change, &d, NULL)) != 0) {
		fprintf(stderr, "uvdesk: watch: %s\n", msce_strerror(rc));
		return 1;
	}

	d.loop = uv_default_loop();
	/* One fd for the msce_async's whole life: reconnects need nothing
	 * from the loop. */
	uv_poll_init(d.loop, &d.poll, msce_async_fd(d.a));
	d.poll.data = &d;
	uv_poll_start(&d.poll, UV_READABLE, on_ready);
	uv_timer_init(d.loop, &d.writer);
	d.writer.data = &d;
	uv_timer_start(&d.writer, on_write_tick, d.interval, d.interval);
	uv_timer_init(d.loop, &d.deadline);
	d.deadline.data = &d;
	uv_timer_start(&d.deadline, on_deadline, DEADLINE_MS, 0);

	uv_run(d.loop, UV_RUN_DEFAULT);
	uv_loop_close(d.loop);
	free(d.state);
	free(d.times);
	return !d.failed && d.seen == d.count && d.dups == 0 &&
			       d.acked == d.count
		       ? 0
		       : 1;
usage:
	fprintf(stderr, "usage: msce-uvdesk [-n COUNT] [-i INTERVAL_MS] "
			"[-t TAG] [-s SITES] SOCKET...\n");
	return 2;
}
