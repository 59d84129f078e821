/* SPDX-License-Identifier: Apache-2.0 */
/* The fake network: one FIFO channel per direction between two nodes, as
 * TCP gives, with a random delay per message inside the link's range, so
 * messages reorder only across links.
 *
 * A link carries numbered connections. Connecting queues "up" to both ends;
 * a node may send only on the connection whose "up" it has received, and
 * the peer gets "up" before any message of that connection because both
 * travel the same FIFO. Cutting a link drops what is in flight on it and
 * queues "down" to both ends; a stale "up" or "down" (of an older
 * connection) is ignored on arrival. A crashed node loses everything in
 * flight to or from it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim.h"

/* First byte of an encoded PeerMsg: the oneof field's tag (wire type 2). */
enum {
	TAG_HELLO = 0x0a,
	TAG_CHANGES = 0x12,
	TAG_ACK = 0x1a,
	TAG_SNAPSHOT = 0x22,
	TAG_GOSSIP = 0x2a,
	TAG_REFUSE = 0x32,
};

struct link *net_link(struct sim *s, int a, int b)
{
	int lo = a < b ? a : b, hi = a < b ? b : a;
	return &s->links[lo * s->n + hi];
}

static struct chan *chan(struct sim *s, int from, int to)
{
	return &s->chans[from * s->n + to];
}

int net_init(struct sim *s)
{
	int n = s->n;

	s->links = calloc((size_t)(n * n), sizeof *s->links);
	s->chans = calloc((size_t)(n * n), sizeof *s->chans);
	if (s->links == NULL || s->chans == NULL)
		return -1;
	for (int a = 0; a < n; a++)
		for (int b = a + 1; b < n; b++) {
			struct link *l = net_link(s, a, b);
			l->dmin = rng_range(&s->rng, 1, 10);
			l->dmax = l->dmin + rng_range(&s->rng, 0, 40);
			if (rng_below(&s->rng, 5) == 0) /* a slow link */
				l->dmax += rng_range(&s->rng, 50, 300);
			l->base_dmin = l->dmin;
			l->base_dmax = l->dmax;
		}
	return 0;
}

static void chan_clear(struct chan *c)
{
	while (c->head != NULL) {
		struct item *it = c->head;
		c->head = it->next;
		free(it);
	}
	c->tail = NULL;
}

void net_free(struct sim *s)
{
	if (s->chans != NULL)
		for (int i = 0; i < s->n * s->n; i++)
			chan_clear(&s->chans[i]);
	free(s->chans);
	free(s->links);
	s->chans = NULL;
	s->links = NULL;
}

static void push(struct sim *s, int from, int to, int kind, uint64_t conn,
		 const uint8_t *data, size_t len)
{
	struct chan *c = chan(s, from, to);
	struct link *l = net_link(s, from, to);
	struct item *it = malloc(sizeof *it + len);
	uint64_t due = s->now + rng_range(&s->rng, l->dmin, l->dmax);

	if (it == NULL) {
		sim_fail(s, "out of memory in the network");
		return;
	}
	if (due < c->last_due)
		due = c->last_due;
	c->last_due = due;
	it->next = NULL;
	it->due = due;
	it->seq = ++s->seq;
	it->conn = conn;
	it->kind = kind;
	it->len = len;
	if (len)
		memcpy(it->data, data, len);
	if (c->tail)
		c->tail->next = it;
	else
		c->head = it;
	c->tail = it;
}

/* Drops the messages queued on a channel, keeping "up"/"down" items. */
static void drop_msgs(struct sim *s, struct chan *c)
{
	struct item **pp = &c->head;

	c->tail = NULL;
	while (*pp != NULL) {
		struct item *it = *pp;
		if (it->kind == ITEM_MSG) {
			*pp = it->next;
			free(it);
			s->msgs_dropped++;
			continue;
		}
		c->tail = it;
		pp = &it->next;
	}
}

void net_send(struct sim *s, int from, int to, const uint8_t *buf, size_t len)
{
	struct link *l = net_link(s, from, to);

	s->msgs_sent++;
	if (!l->up || s->nodes[from].sees[to] != l->conn) {
		s->msgs_dropped++; /* the socket is gone; "down" will follow */
		return;
	}
	if (l->dead_conn == l->conn) {
		s->msgs_dropped++; /* a half-open path: nobody is told */
		return;
	}
	if (len > 0 &&
	    (((s->opt.faults & FAULT_FORGE) &&
	      (buf[0] == TAG_CHANGES || buf[0] == TAG_SNAPSHOT) &&
	      rng_ppm(&s->rng, 20000)) ||
	     ((s->opt.faults & FAULT_STATUS) && buf[0] == TAG_GOSSIP &&
	      rng_ppm(&s->status_rng, 10000)))) {
		const char *what = "";
		size_t n = 0;
		uint8_t *f = forge_msg(s, buf, len, &n, &what);
		if (f != NULL) {
			s->forgeries++;
			sim_log(s, "node %u forges a message to node %u: %s",
				s->nodes[from].id, s->nodes[to].id, what);
			push(s, from, to, ITEM_MSG, l->conn, f, n);
			free(f);
			return;
		}
	}
	push(s, from, to, ITEM_MSG, l->conn, buf, len);
}

void net_cut(struct sim *s, int a, int b, uint64_t reconnect_ms)
{
	struct link *l = net_link(s, a, b);

	if (l->up) {
		l->up = 0;
		drop_msgs(s, chan(s, a, b));
		drop_msgs(s, chan(s, b, a));
		if (s->nodes[a].alive)
			push(s, b, a, ITEM_DOWN, l->conn, NULL, 0);
		if (s->nodes[b].alive)
			push(s, a, b, ITEM_DOWN, l->conn, NULL, 0);
		sim_log(s, "link %d-%d down", a + 1, b + 1);
	}
	l->reconnect_at = reconnect_ms ? s->now + reconnect_ms : 0;
}

void net_node_down(struct sim *s, int i)
{
	for (int j = 0; j < s->n; j++) {
		struct link *l;
		if (j == i)
			continue;
		chan_clear(chan(s, j, i));
		drop_msgs(s, chan(s, i, j));
		l = net_link(s, i, j);
		if (l->up) {
			l->up = 0;
			if (s->nodes[j].alive)
				push(s, i, j, ITEM_DOWN, l->conn, NULL, 0);
		}
		l->reconnect_at = 0;
	}
	memset(s->nodes[i].sees, 0, sizeof s->nodes[i].sees);
}

static int can_connect(struct sim *s, int a, int b)
{
	struct link *l = net_link(s, a, b);
	/* Both must list each other, as msced's handshake requires. */
	return !l->up && !l->blocked && l->reconnect_at != 0 &&
	       s->nodes[a].alive && s->nodes[b].alive && s->member[a][b] &&
	       s->member[b][a];
}

/* what: channel index (from*n+to), or -1 - link index for a reconnect. */
int net_peek(struct sim *s, uint64_t *due, uint64_t *seq, int *what)
{
	int n = s->n, found = 0;

	for (int k = 0; k < n * n; k++) {
		const struct item *it = s->chans[k].head;
		if (it == NULL)
			continue;
		if (!found || it->due < *due ||
		    (it->due == *due && it->seq < *seq)) {
			*due = it->due;
			*seq = it->seq;
			*what = k;
			found = 1;
		}
	}
	for (int a = 0; a < n; a++)
		for (int b = a + 1; b < n; b++) {
			const struct link *l = net_link(s, a, b);
			if (!can_connect(s, a, b))
				continue;
			if (!found || l->reconnect_at < *due ||
			    (l->reconnect_at == *due && *seq > 0)) {
				*due = l->reconnect_at;
				*seq = 0;
				*what = -1 - (a * n + b);
				found = 1;
			}
		}
	return found;
}

static void link_connect(struct sim *s, int a, int b)
{
	struct link *l = net_link(s, a, b);

	l->up = 1;
	l->conn = ++s->conn_seq;
	l->reconnect_at = 0;
	push(s, a, b, ITEM_UP, l->conn, NULL, 0);
	push(s, b, a, ITEM_UP, l->conn, NULL, 0);
	sim_log(s, "link %d-%d connecting (conn %llu)", a + 1, b + 1,
		(unsigned long long)l->conn);
}

static void deliver(struct sim *s, int from, int to, struct item *it)
{
	struct node *nd = &s->nodes[to];
	struct link *l = net_link(s, from, to);
	int current = nd->alive && l->up && l->conn == it->conn;

	switch (it->kind) {
	case ITEM_UP:
		if (current) {
			nd->sees[from] = it->conn;
			node_link_up(s, to, from);
		}
		break;
	case ITEM_DOWN:
		if (nd->alive && nd->sees[from] == it->conn) {
			nd->sees[from] = 0;
			node_link_down(s, to, from);
		}
		break;
	default:
		if (current && nd->sees[from] == it->conn) {
			chan(s, from, to)->delivered_at = s->now;
			node_recv(s, to, from, it->data, it->len);
		} else {
			s->msgs_dropped++;
		}
	}
}

void net_run(struct sim *s, int what)
{
	int n = s->n;

	if (what < 0) {
		int k = -1 - what;
		link_connect(s, k / n, k % n);
		return;
	}
	struct chan *c = &s->chans[what];
	struct item *it = c->head;
	if (it == NULL)
		return;
	c->head = it->next;
	if (c->head == NULL)
		c->tail = NULL;
	/* Delivery may cut this link; the item is already off the queue. */
	deliver(s, what / n, what % n, it);
	free(it);
}

int net_quiet(struct sim *s, char *why, size_t whylen)
{
	int n = s->n;

	for (int a = 0; a < n; a++)
		for (int b = a + 1; b < n; b++) {
			const struct link *l = net_link(s, a, b);
			if (!l->up || s->nodes[a].sees[b] != l->conn ||
			    s->nodes[b].sees[a] != l->conn) {
				snprintf(why, whylen, "link %d-%d not up",
					 a + 1, b + 1);
				return 0;
			}
		}
	for (int k = 0; k < n * n; k++)
		for (const struct item *it = s->chans[k].head; it != NULL;
		     it = it->next) {
			int tag = it->len ? it->data[0] : -1;
			if (it->kind == ITEM_MSG &&
			    (tag == TAG_GOSSIP || tag == TAG_ACK))
				continue;
			snprintf(why, whylen,
				 "%s in flight from node %d to node %d",
				 it->kind != ITEM_MSG  ? "link event"
				 : tag == TAG_CHANGES  ? "changes"
				 : tag == TAG_SNAPSHOT ? "a snapshot"
				 : tag == TAG_HELLO    ? "a hello"
						       : "a message",
				 k / n + 1, k % n + 1);
			return 0;
		}
	return 1;
}
