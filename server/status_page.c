/* SPDX-License-Identifier: Apache-2.0 */
/* The node's status page, served by the metrics listener: `/` is one HTML
 * page (no script, no external asset; it reloads itself every
 * STATUS_PAGE_REFRESH_S seconds) and `/status.json` the same data as JSON.
 *
 * What it shows, from this node's view of the city: whether the node is
 * healthy and why not (health.c, the judgement `msce status` makes); the
 * matrix of who holds what from whom: one row per center (the holder, as
 * its latest report says), one column per origin (a center's writer),
 * each cell the seq held and how far behind the newest known one it is,
 * in changes and seconds; per center the link from this node (up, down
 * since when, never), clock offset, the age of its report and its
 * digest against ours; the first open conflicts; the last warnings and
 * refusals of the log. Both render on the loop thread from the node's
 * status message (node_status.c), built in an arena per request. */
#include "status_page.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "arena.h"
#include "audit.h"
#include "bounds.h"
#include "health.h"
#include "log.h"
#include "mask.h"
#include "msce_version.h"
#include "node_status.h"
#include "uv_metrics.h"

#define STATUS_PAGE_REFRESH_S 5
#define PAGE_CONFLICTS 10 /* open conflicts listed */
/* What a conflict of a personal record shows instead of its values. */
#define PERSONAL_HIDDEN "(personal data: see msce conflicts)"

/* ---- the model: what both views show
 * ----------------------------------------- */

struct origin_col {
	uint32_t origin;
	uint64_t max_seq, max_hlc; /* the newest any center is known to hold */
	uint64_t min_hlc; /* the oldest newest change a center holds (not 0) */
};

struct conflict_row {
	char coll[MSCE_MAX_COLLECTION + 1], key[MSCE_MAX_KEY + 1];
	char field[128];
	char winner[96], loser[96];
	uint32_t winner_origin, loser_origin;
	int deleted;
};

struct model {
	struct node *n;
	struct arena a;
	const Msce__StatusResult *s;
	struct health h;
	struct origin_col cols[MSCE_MAX_ORIGINS];
	size_t ncols;
	struct conflict_row conf[PAGE_CONFLICTS];
	size_t nconf;
	struct log_entry recent[LOG_RECENT_MAX];
	size_t nrecent;
};

static const Msce__PeerStatus *peer_of(const Msce__StatusResult *s, uint32_t id)
{
	for (size_t i = 0; i < s->n_peers; i++)
		if (s->peers[i]->node == id)
			return s->peers[i];
	return NULL;
}

static const Msce__VVEntry *vv_of(const Msce__NodeReport *r, uint32_t origin)
{
	for (size_t i = 0; i < r->n_vv; i++)
		if (r->vv[i]->origin == origin)
			return r->vv[i];
	return NULL;
}

/* An origin is center id (low 16 bits) and incarnation (high 16). */
static uint32_t col_key(uint32_t origin)
{
	return (origin & 0xffff) << 16 | origin >> 16;
}

static void add_origin(struct model *m, const Msce__VVEntry *e)
{
	size_t i;

	for (i = 0; i < m->ncols; i++)
		if (m->cols[i].origin == e->origin)
			break;
	if (i == m->ncols) {
		if (m->ncols == MSCE_MAX_ORIGINS)
			return;
		/* Kept in center order, then incarnation. */
		while (i > 0 &&
		       col_key(m->cols[i - 1].origin) > col_key(e->origin)) {
			m->cols[i] = m->cols[i - 1];
			i--;
		}
		m->cols[i] = (struct origin_col){e->origin, 0, 0, 0};
		m->ncols++;
	}
	if (e->seq > m->cols[i].max_seq) {
		m->cols[i].max_seq = e->seq;
		m->cols[i].max_hlc = e->hlc;
	}
	if (e->hlc != 0 &&
	    (m->cols[i].min_hlc == 0 || e->hlc < m->cols[i].min_hlc))
		m->cols[i].min_hlc = e->hlc;
}

static void copy_text(char *out, size_t cap, const void *p, size_t n)
{
	if (n >= cap)
		n = cap - 1;
	memcpy(out, p, n);
	out[n] = '\0';
}

static int conflict_row(void *ctx, const struct store_conflict_view *v)
{
	struct model *m = ctx;
	struct conflict_row *r;

	if (m->nconf == PAGE_CONFLICTS)
		return 1;
	r = &m->conf[m->nconf++];
	copy_text(r->coll, sizeof r->coll, v->coll, v->coll_len);
	copy_text(r->key, sizeof r->key, v->key, v->key_len);
	copy_text(r->field, sizeof r->field, v->field->name,
		  v->field->name_len);
	copy_text(r->winner, sizeof r->winner, v->field->w.value,
		  v->field->w.value_len);
	copy_text(r->loser, sizeof r->loser, v->loser->value,
		  v->deleted ? 0 : v->loser->value_len);
	r->winner_origin = v->field->w.v.origin;
	r->loser_origin = v->loser->v.origin;
	r->deleted = v->deleted;
	if (audit_personal(v->coll, v->coll_len)) {
		/* The page needs no key and is not audited: a personal
		 * record's values stay out of it, and its key is masked as
		 * the CLI masks it (a registration key holds the document
		 * number). msce conflicts shows them, with a purpose. */
		char mk[MASK_BUF];
		const char *k = mask_key(r->coll, r->key, mk);
		if (k != r->key)
			snprintf(r->key, sizeof r->key, "%s", k);
		snprintf(r->winner, sizeof r->winner, "%s", PERSONAL_HIDDEN);
		snprintf(r->loser, sizeof r->loser, "%s", PERSONAL_HIDDEN);
	}
	return 0;
}

/* 0, or MSCE_ENOMEM (m is then freed). */
static int model_build(struct model *m, struct node *n)
{
	memset(m, 0, sizeof *m);
	m->n = n;
	arena_init(&m->a, 0);
	m->s = node_status(n, &m->a);
	if (m->s == NULL) {
		arena_free(&m->a);
		return MSCE_ENOMEM;
	}
	health_check(m->s, -1, &m->h);
	for (size_t i = 0; i < m->s->n_nodes; i++)
		for (size_t k = 0; k < m->s->nodes[i]->n_vv; k++)
			add_origin(m, m->s->nodes[i]->vv[k]);
	store_conflicts(n->store, PAGE_CONFLICTS, conflict_row, m, NULL);
	m->nrecent = log_recent(m->recent, LOG_RECENT_MAX);
	return 0;
}

static void model_free(struct model *m)
{
	arena_free(&m->a);
}

/* Holder r's cell for column c: seq held, changes and ms behind. */
static void cell(const struct origin_col *c, const Msce__NodeReport *r,
		 uint64_t *seq, uint64_t *lag, uint64_t *lag_ms)
{
	const Msce__VVEntry *e = vv_of(r, c->origin);
	uint64_t hlc = e ? e->hlc : 0;

	*seq = e ? e->seq : 0;
	*lag = c->max_seq > *seq ? c->max_seq - *seq : 0;
	/* hlc: 48 bits of ms, 16 of logical counter. A holder with nothing
	 * of the origin is behind by at least what the others' heads span
	 * (not by the time since 1970). */
	if (hlc == 0)
		hlc = c->min_hlc;
	*lag_ms =
	    *lag && c->max_hlc > hlc ? (c->max_hlc >> 16) - (hlc >> 16) : 0;
}

static const char *name_of(const struct model *m, uint32_t origin)
{
	return node_center_name(m->n, origin & 0xffff);
}

static void hex(const uint8_t *p, size_t n, char *out)
{
	for (size_t i = 0; i < n; i++)
		sprintf(out + 2 * i, "%02x", p[i]);
	out[2 * n] = '\0';
}

static int same_digest(const Msce__StatusResult *s, const Msce__NodeReport *r)
{
	return r->known && r->digest.len == s->digest.len &&
	       memcmp(r->digest.data, s->digest.data, s->digest.len) == 0;
}

/* ---- /status.json
 * ------------------------------------------------------------ */

static cJSON *origin_json(const struct model *m, uint32_t origin)
{
	cJSON *j = cJSON_CreateObject();
	cJSON_AddNumberToObject(j, "origin", origin);
	cJSON_AddNumberToObject(j, "node", origin & 0xffff);
	cJSON_AddNumberToObject(j, "incarnation", origin >> 16);
	cJSON_AddStringToObject(j, "name", name_of(m, origin));
	return j;
}

static cJSON *model_json(const struct model *m)
{
	const Msce__StatusResult *s = m->s;
	cJSON *j = cJSON_CreateObject(), *a;
	char d[65];

	cJSON_AddNumberToObject(j, "node", s->node);
	cJSON_AddStringToObject(j, "name", s->name);
	cJSON_AddStringToObject(j, "cluster", s->cluster);
	cJSON_AddStringToObject(j, "version", MSCE_VERSION);
	cJSON_AddNumberToObject(j, "time_ms", (double)s->time_ms);
	cJSON_AddBoolToObject(j, "healthy", m->h.n == 0);
	a = cJSON_AddArrayToObject(j, "problems");
	for (size_t i = 0; i < m->h.n && i < HEALTH_MAX; i++)
		cJSON_AddItemToArray(a, cJSON_CreateString(m->h.why[i]));
	hex(s->digest.data, s->digest.len, d);
	cJSON_AddStringToObject(j, "digest", d);
	if (s->conflicts_unknown) /* the store cannot be read */
		cJSON_AddNullToObject(j, "open_conflicts");
	else
		cJSON_AddNumberToObject(j, "open_conflicts",
					(double)s->conflicts);
	cJSON_AddNumberToObject(j, "tombstones", (double)s->tombstones);
	cJSON_AddNumberToObject(j, "writer", s->writer);
	cJSON_AddStringToObject(j, "write_gate", s->write_gate);
	cJSON_AddStringToObject(j, "collection_held", s->collection_held);
	cJSON_AddStringToObject(j, "store_failure", s->store_failure);
	cJSON_AddNumberToObject(j, "inbound_lag_changes",
				(double)s->inbound_lag_changes);
	cJSON_AddNumberToObject(j, "inbound_lag_ms", (double)s->inbound_lag_ms);

	a = cJSON_AddArrayToObject(j, "origins");
	for (size_t i = 0; i < m->ncols; i++) {
		cJSON *o = origin_json(m, m->cols[i].origin);
		cJSON_AddNumberToObject(o, "newest_seq",
					(double)m->cols[i].max_seq);
		cJSON_AddItemToArray(a, o);
	}
	a = cJSON_AddArrayToObject(j, "centers");
	for (size_t i = 0; i < s->n_nodes; i++) {
		const Msce__NodeReport *r = s->nodes[i];
		const Msce__PeerStatus *p = peer_of(s, r->node);
		cJSON *c = cJSON_CreateObject(), *cells;
		int self = r->node == s->node;

		cJSON_AddNumberToObject(c, "node", r->node);
		cJSON_AddStringToObject(c, "name", self ? s->name : r->name);
		cJSON_AddBoolToObject(c, "self", self);
		/* Our vector with another digest, for this long (or null). */
		if (r->diverged_ms)
			cJSON_AddNumberToObject(c, "diverged_ms",
						(double)r->diverged_ms);
		else
			cJSON_AddNullToObject(c, "diverged_ms");
		cJSON_AddStringToObject(c, "link",
					self		     ? "self"
					: p == NULL	     ? "none"
					: p->connected	     ? "up"
					: p->last_contact_ms ? "down"
							     : "never");
		if (p != NULL) {
			if (p->last_contact_ms)
				cJSON_AddNumberToObject(
				    c, "last_contact_age_ms",
				    s->time_ms > p->last_contact_ms
					? (double)(s->time_ms -
						   p->last_contact_ms)
					: 0);
			else
				cJSON_AddNullToObject(c, "last_contact_age_ms");
			cJSON_AddNumberToObject(c, "clock_offset_ms",
						(double)p->clock_offset_ms);
			cJSON_AddBoolToObject(c, "clock_refused",
					      p->clock_refused);
			if (p->link_error && p->link_error[0]) {
				cJSON_AddStringToObject(c, "link_error",
							p->link_error);
				cJSON_AddNumberToObject(
				    c, "link_error_ms",
				    (double)p->link_error_ms);
			} else {
				cJSON_AddNullToObject(c, "link_error");
			}
			cJSON_AddBoolToObject(c, "lag_known", !p->lag_unknown);
			if (p->lag_unknown) { /* null: not known */
				cJSON_AddNullToObject(c, "lag_changes");
				cJSON_AddNullToObject(c, "lag_ms");
			} else {
				cJSON_AddNumberToObject(c, "lag_changes",
							(double)p->lag_changes);
				cJSON_AddNumberToObject(c, "lag_ms",
							(double)p->lag_ms);
			}
		}
		cJSON_AddBoolToObject(c, "known", r->known);
		if (r->known) {
			hex(r->digest.data, r->digest.len, d);
			cJSON_AddStringToObject(c, "digest", d);
			cJSON_AddBoolToObject(c, "digest_matches",
					      same_digest(s, r));
			cJSON_AddNumberToObject(c, "report_age_ms",
						(double)r->age_ms);
		}
		cells = cJSON_AddArrayToObject(c, "holds");
		for (size_t k = 0; r->known && k < m->ncols; k++) {
			uint64_t seq, lag, lag_ms;
			cJSON *x = cJSON_CreateObject();
			cell(&m->cols[k], r, &seq, &lag, &lag_ms);
			cJSON_AddNumberToObject(x, "origin", m->cols[k].origin);
			cJSON_AddNumberToObject(x, "seq", (double)seq);
			cJSON_AddNumberToObject(x, "lag_changes", (double)lag);
			cJSON_AddNumberToObject(x, "lag_ms", (double)lag_ms);
			cJSON_AddItemToArray(cells, x);
		}
		cJSON_AddItemToArray(a, c);
	}
	a = cJSON_AddArrayToObject(j, "conflicts");
	for (size_t i = 0; i < m->nconf; i++) {
		const struct conflict_row *r = &m->conf[i];
		cJSON *c = cJSON_CreateObject();
		cJSON_AddStringToObject(c, "collection", r->coll);
		cJSON_AddStringToObject(c, "key", r->key);
		cJSON_AddStringToObject(c, "field", r->field);
		cJSON_AddStringToObject(c, "winner", r->winner);
		cJSON_AddStringToObject(c, "winner_center",
					name_of(m, r->winner_origin));
		cJSON_AddStringToObject(c, "loser", r->loser);
		cJSON_AddStringToObject(c, "loser_center",
					name_of(m, r->loser_origin));
		cJSON_AddBoolToObject(c, "delete", r->deleted);
		cJSON_AddItemToArray(a, c);
	}
	a = cJSON_AddArrayToObject(j, "recent");
	for (size_t i = 0; i < m->nrecent; i++) {
		cJSON *e = cJSON_CreateObject();
		cJSON_AddNumberToObject(e, "time_ms",
					(double)m->recent[i].time_ms);
		cJSON_AddStringToObject(e, "level",
					log_level_name(m->recent[i].level));
		cJSON_AddStringToObject(e, "text", m->recent[i].text);
		cJSON_AddItemToArray(a, e);
	}
	return j;
}

static int render_json(void *ctx, char **buf, size_t *len)
{
	struct model m;
	cJSON *j;
	char *text;

	if (model_build(&m, ctx) != 0)
		return MSCE_ENOMEM;
	j = model_json(&m);
	model_free(&m);
	text = j ? cJSON_PrintUnformatted(j) : NULL;
	cJSON_Delete(j);
	if (text == NULL)
		return MSCE_ENOMEM;
	/* cJSON's allocator is malloc: the server frees it with free(). */
	*buf = text;
	*len = strlen(text);
	return 0;
}

/* ---- /
 * ------------------------------------------------------------------------ */

/* Text into HTML: & < > " ' escaped. */
static void esc(struct metrics_buf *b, const char *s)
{
	for (; *s; s++) {
		switch (*s) {
		case '&':
			metrics_printf(b, "&amp;");
			break;
		case '<':
			metrics_printf(b, "&lt;");
			break;
		case '>':
			metrics_printf(b, "&gt;");
			break;
		case '"':
			metrics_printf(b, "&quot;");
			break;
		case '\'':
			metrics_printf(b, "&#39;");
			break;
		default:
			metrics_printf(b, "%c", *s);
		}
	}
}

static const char page_style[] =
    "body{font:13px/1.35 system-ui,sans-serif;margin:1.2em;color:#222}"
    "h1{font-size:1.3em;margin:0 0 .3em}h2{font-size:1.05em;margin:1.4em 0 "
    ".4em}table{border-collapse:collapse}td,th{border:1px solid #ccc;"
    "padding:.25em .55em;text-align:right;white-space:nowrap}"
    "th{background:#f3f3f3}td.l,th.l{text-align:left}"
    ".ok{background:#e3f4e3}.warn{background:#fff3cd}.bad{background:"
    "#f8d7da}.badge{padding:.1em .5em;border-radius:.3em;font-weight:600}"
    ".muted{color:#777}code{font-size:.95em}ul{margin:.2em 0}";

static void html_center(struct metrics_buf *b, const char *name, uint32_t id)
{
	esc(b, name[0] ? name : "?");
	metrics_printf(b, " <span class=muted>(%u)</span>", id);
}

static void html_matrix(struct metrics_buf *b, const struct model *m)
{
	const Msce__StatusResult *s = m->s;

	metrics_printf(
	    b,
	    "<h2>Who holds what from whom</h2><table id=matrix>"
	    "<tr><th class=l>center</th><th>link</th>"
	    "<th>clock offset</th>"
	    "<th>report age</th><th>digest</th>"
	    "<th colspan=%zu>changes held, from each origin</th></tr>"
	    "<tr><th colspan=5></th>",
	    m->ncols ? m->ncols : 1);
	for (size_t k = 0; k < m->ncols; k++) {
		metrics_printf(b, "<th>");
		esc(b, name_of(m, m->cols[k].origin));
		metrics_printf(b, "<br><span class=muted>%u/%u</span></th>",
			       m->cols[k].origin & 0xffff,
			       m->cols[k].origin >> 16);
	}
	metrics_printf(b, "</tr>\n");
	for (size_t i = 0; i < s->n_nodes; i++) {
		const Msce__NodeReport *r = s->nodes[i];
		const Msce__PeerStatus *p = peer_of(s, r->node);
		int self = r->node == s->node;
		char d[17] = "";

		metrics_printf(b, "<tr data-node=%u><td class=l>", r->node);
		html_center(b, self ? s->name : r->name, r->node);
		if (self)
			metrics_printf(b, " <b>(this node)</b></td><td>"
					  "&mdash;</td><td>&mdash;</td>");
		else if (p == NULL)
			metrics_printf(b, "</td><td>&mdash;</td><td>&mdash;"
					  "</td>");
		else {
			/* Up means heard from lately; down says since when. */
			metrics_printf(b, "</td><td class=%s>%s",
				       p->connected ? "ok" : "bad",
				       p->connected	    ? "up"
				       : p->last_contact_ms ? "DOWN"
							    : "never");
			if (!p->connected && p->last_contact_ms)
				metrics_printf(
				    b,
				    "<br><span class=muted>%.0f s ago</span>",
				    s->time_ms > p->last_contact_ms
					? (double)(s->time_ms -
						   p->last_contact_ms) /
					      1000.0
					: 0.0);
			metrics_printf(b, "</td><td class=%s>%lld ms%s</td>",
				       p->clock_refused ? "bad" : "",
				       (long long)p->clock_offset_ms,
				       p->clock_refused ? " CLOCK" : "");
		}
		if (self)
			metrics_printf(b, "<td>&mdash;</td>");
		else if (r->known)
			metrics_printf(b, "<td>%.1f s</td>",
				       (double)r->age_ms / 1000.0);
		else
			metrics_printf(b, "<td>never</td>");
		if (r->known) {
			hex(r->digest.data,
			    r->digest.len > 6 ? 6 : r->digest.len, d);
			metrics_printf(b, "<td class=%s><code>%s</code></td>",
				       same_digest(s, r) ? "ok" : "warn", d);
		} else {
			metrics_printf(b, "<td>?</td>");
		}
		for (size_t k = 0; k < m->ncols; k++) {
			uint64_t seq, lag, lag_ms;
			if (!r->known) {
				metrics_printf(b, "<td class=muted>?</td>");
				continue;
			}
			cell(&m->cols[k], r, &seq, &lag, &lag_ms);
			metrics_printf(b, "<td class=%s>%llu",
				       lag ? "warn" : "ok",
				       (unsigned long long)seq);
			if (lag)
				metrics_printf(b, "<br>&minus;%llu, %.1f s",
					       (unsigned long long)lag,
					       (double)lag_ms / 1000.0);
			metrics_printf(b, "</td>");
		}
		metrics_printf(b, "</tr>\n");
	}
	metrics_printf(b, "</table><p class=muted>Rows: each center, as its "
			  "latest report to this node says. Columns: each "
			  "origin (a center's writer, center/incarnation). A "
			  "cell: the last change of that origin the center "
			  "holds, and how far behind the newest known one it "
			  "is (&minus;changes, seconds).</p>\n");
}

static void html_page(struct metrics_buf *b, const struct model *m)
{
	const Msce__StatusResult *s = m->s;
	char d[65], nconf[24];

	metrics_printf(b,
		       "<!DOCTYPE html><html lang=en><head><meta "
		       "charset=utf-8><meta http-equiv=refresh "
		       "content=%d><title>",
		       STATUS_PAGE_REFRESH_S);
	esc(b, s->name);
	metrics_printf(b,
		       ": %s &middot; msce</title><style>%s</style></head>"
		       "<body>\n<h1>",
		       m->h.n ? "DEGRADED" : "healthy", page_style);
	html_center(b, s->name, s->node);
	metrics_printf(b, ", cluster ");
	esc(b, s->cluster);
	metrics_printf(b,
		       ": <span id=health class=\"badge %s\">%s</span>"
		       "</h1>\n",
		       m->h.n ? "bad" : "ok", m->h.n ? "DEGRADED" : "healthy");
	if (m->h.n) {
		metrics_printf(b, "<ul id=problems>");
		for (size_t i = 0; i < m->h.n && i < HEALTH_MAX; i++) {
			metrics_printf(b, "<li>");
			esc(b, m->h.why[i]);
			metrics_printf(b, "</li>");
		}
		metrics_printf(b, "</ul>\n");
	}
	hex(s->digest.data, s->digest.len, d);
	snprintf(nconf, sizeof nconf, "%llu", (unsigned long long)s->conflicts);
	metrics_printf(b,
		       "<p>digest <code id=digest>%s</code> &middot; "
		       "<span id=conflicts>%s</span> open conflicts "
		       "&middot; %llu tombstones &middot; inbound lag "
		       "%llu changes, %.1f s &middot; writes under origin "
		       "%u/%u",
		       d, s->conflicts_unknown ? "unknown" : nconf,
		       (unsigned long long)s->tombstones,
		       (unsigned long long)s->inbound_lag_changes,
		       (double)s->inbound_lag_ms / 1000.0, s->writer & 0xffff,
		       s->writer >> 16);
	if (s->write_gate[0]) {
		metrics_printf(b, " &middot; <b>not writing:</b> ");
		esc(b, s->write_gate);
	}
	/* As in msce status: the reason matters while tombstones wait. */
	if (s->tombstones && s->collection_held[0]) {
		metrics_printf(b, " &middot; <span id=collection-held>"
				  "tombstone collection waits: ");
		esc(b, s->collection_held);
		metrics_printf(b, "</span>");
	}
	metrics_printf(b, "</p>\n");
	html_matrix(b, m);

	metrics_printf(b, "<h2>Open conflicts (%s%s)</h2>",
		       s->conflicts_unknown ? "unknown" : nconf,
		       s->conflicts > m->nconf ? ", the first listed" : "");
	if (m->nconf == 0) {
		metrics_printf(b, "<p class=muted>none</p>\n");
	} else {
		metrics_printf(b, "<table id=conflict-list><tr><th class=l>"
				  "record</th><th class=l>field</th><th "
				  "class=l>visible value</th><th class=l>"
				  "concurrent value</th></tr>\n");
		for (size_t i = 0; i < m->nconf; i++) {
			const struct conflict_row *r = &m->conf[i];
			metrics_printf(b, "<tr><td class=l>");
			esc(b, r->coll);
			metrics_printf(b, "/");
			esc(b, r->key);
			metrics_printf(b, "</td><td class=l>");
			esc(b, r->field);
			metrics_printf(b, "</td><td class=l>&ldquo;");
			esc(b, r->winner);
			metrics_printf(b, "&rdquo; (");
			esc(b, name_of(m, r->winner_origin));
			metrics_printf(b, ")</td><td class=l>");
			if (r->deleted) {
				metrics_printf(b, "a delete (");
			} else {
				metrics_printf(b, "&ldquo;");
				esc(b, r->loser);
				metrics_printf(b, "&rdquo; (");
			}
			esc(b, name_of(m, r->loser_origin));
			metrics_printf(b, ")</td></tr>\n");
		}
		metrics_printf(b, "</table><p class=muted>Resolve with "
				  "<code>msce resolve COLLECTION KEY FIELD "
				  "VALUE</code>.</p>\n");
	}

	metrics_printf(b, "<h2>Last warnings and refusals</h2>");
	if (m->nrecent == 0) {
		metrics_printf(b, "<p class=muted>none since the node "
				  "started</p>\n");
	} else {
		metrics_printf(b, "<table id=recent>");
		for (size_t i = 0; i < m->nrecent; i++) {
			const struct log_entry *e = &m->recent[i];
			uint64_t age = s->time_ms > e->time_ms
					   ? s->time_ms - e->time_ms
					   : 0;
			metrics_printf(b,
				       "<tr><td>%.0f s ago</td><td class=%s>"
				       "%s</td><td class=l>",
				       (double)age / 1000.0,
				       e->level == LOG_ERROR ? "bad" : "warn",
				       log_level_name(e->level));
			esc(b, e->text);
			metrics_printf(b, "</td></tr>\n");
		}
		metrics_printf(b, "</table>\n");
	}
	metrics_printf(b,
		       "<p class=muted>msce %s &middot; refreshes every "
		       "%d s &middot; <a href=\"/status.json\">status.json"
		       "</a> &middot; <a href=\"/metrics\">metrics</a></p>"
		       "\n</body></html>\n",
		       MSCE_VERSION, STATUS_PAGE_REFRESH_S);
}

static int render_html(void *ctx, char **buf, size_t *len)
{
	struct metrics_buf b = {0};
	struct model m;

	if (model_build(&m, ctx) != 0)
		return MSCE_ENOMEM;
	html_page(&b, &m);
	model_free(&m);
	if (b.oom) {
		free(b.data);
		return MSCE_ENOMEM;
	}
	*buf = b.data;
	*len = b.len;
	return 0;
}

int status_page_start(struct node *n, struct err *e)
{
	int rc;

	if ((rc = metrics_route(n->metrics, "/", "text/html; charset=utf-8",
				render_html, n)) ||
	    (rc = metrics_route(n->metrics, "/status.json", "application/json",
				render_json, n)))
		return err_set(e, rc, "status page: cannot add its routes");
	return 0;
}
