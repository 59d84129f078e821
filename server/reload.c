/* SPDX-License-Identifier: Apache-2.0 */
/* SIGHUP: read the config again and apply what can change while running.
 *
 * Applied at once: log_level; a peer's address (the session that is up
 * stays, the next dial goes to the new address); the centers' signing
 * keys (sign_key, retired, and the node's own old_sign_key: a rotation
 * needs no restart); a client's role (its
 * open connections get the new role with their next request). Everything
 * else needs a restart, and the log says which settings: the node's
 * identity, paths and listeners, the clock and log settings the core took
 * at start, the limits and timeouts, backup_dir, the retention rules, and
 * peers or clients added, removed or given new keys (their tables are
 * sized at start). A config that does not parse changes
 * nothing. */
#include "reload.h"

#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "log.h"

/* Appends a setting's name to the restart list. */
static void need(char *list, size_t len, const char *what)
{
	size_t used = strlen(list);
	snprintf(list + used, len - used, "%s%s", used ? ", " : "", what);
}

static const struct config_peer *peer_named(const struct config *c,
					    const char *name)
{
	for (size_t i = 0; i < c->npeers; i++)
		if (strcmp(c->peers[i].name, name) == 0)
			return &c->peers[i];
	return NULL;
}

static const struct config_client *client_named(const struct config *c,
						const char *name)
{
	for (size_t i = 0; i < c->nclients; i++)
		if (strcmp(c->clients[i].name, name) == 0)
			return &c->clients[i];
	return NULL;
}

/* Same peers (names, ids, keys) in both? */
static int same_peers(const struct config *a, const struct config *b)
{
	if (a->npeers != b->npeers)
		return 0;
	for (size_t i = 0; i < a->npeers; i++) {
		const struct config_peer *p = peer_named(b, a->peers[i].name);
		if (p == NULL || p->id != a->peers[i].id ||
		    memcmp(p->public_key, a->peers[i].public_key, 32) != 0)
			return 0;
	}
	return 1;
}

static int same_clients(const struct config *a, const struct config *b)
{
	if (a->nclients != b->nclients)
		return 0;
	for (size_t i = 0; i < a->nclients; i++) {
		const struct config_client *c =
		    client_named(b, a->clients[i].name);
		if (c == NULL ||
		    memcmp(c->public_key, a->clients[i].public_key, 32) != 0)
			return 0;
	}
	return 1;
}

/* Settings taken at start: a change is named as needing a restart. The
 * retention rules and backup_dir are read by requests off the loop
 * thread too, so they are not swapped live either. */
#define AT_START(f, what)                                                      \
	{offsetof(struct config, f), sizeof(((struct config *)0)->f), what}
static const struct {
	size_t off, len;
	const char *what;
} at_start[] = {
    AT_START(cluster, "[cluster] name"),
    AT_START(node_id, "id"),
    AT_START(node_name, "name"),
    AT_START(data_dir, "data_dir"),
    AT_START(key_path, "key"),
    AT_START(master_key_path, "master_key"),
    AT_START(listen, "listen"),
    AT_START(client_listen, "client_listen"),
    AT_START(socket_path, "socket"),
    AT_START(metrics_listen, "metrics_listen"),
    AT_START(max_clock_skew_ms, "max_clock_skew"),
    AT_START(log_retention, "log_retention"),
    AT_START(fsync, "fsync"),
    AT_START(max_pending_handshakes, "max_pending_handshakes"),
    AT_START(max_pending_per_address, "max_pending_per_address"),
    AT_START(handshake_timeout_ms, "handshake_timeout"),
    AT_START(client_idle_timeout_ms, "client_idle_timeout"),
    AT_START(client_max_connections_per_key, "client_max_connections_per_key"),
    AT_START(client_max_partial_bytes, "client_max_partial_bytes"),
    AT_START(client_max_partial_total, "client_max_partial_total"),
    AT_START(backup_dir, "backup_dir"),
    AT_START(retention_registration, "[retention] registration"),
    AT_START(retention_case, "[retention] case"),
};
#undef AT_START

/* Whether anything differs beyond what node_reload names or applies: a
 * setting added to struct config and not to the table above is then
 * still a restart, never "configuration unchanged". Both configs were
 * zeroed before they were filled (config_parse_string), padding too. */
static int others_differ(const struct config *o, const struct config *nc)
{
	static struct config a, b; /* large; reloads run on the loop only */

	memcpy(&a, o, sizeof a);
	memcpy(&b, nc, sizeof b);
	for (size_t i = 0; i < sizeof at_start / sizeof at_start[0]; i++) {
		memset((char *)&a + at_start[i].off, 0, at_start[i].len);
		memset((char *)&b + at_start[i].off, 0, at_start[i].len);
	}
	/* Compared and applied one by one below. */
	a.log_level = b.log_level = 0;
	a.npeers = b.npeers = a.nclients = b.nclients = 0;
	a.peers = b.peers = NULL;
	a.clients = b.clients = NULL;
	a.nretired = b.nretired = 0;
	memset(a.retired, 0, sizeof a.retired);
	memset(b.retired, 0, sizeof b.retired);
	a.nold_sign_keys = b.nold_sign_keys = 0;
	memset(a.old_sign_keys, 0, sizeof a.old_sign_keys);
	memset(b.old_sign_keys, 0, sizeof b.old_sign_keys);
	return memcmp(&a, &b, sizeof a) != 0;
}

int node_reload(struct node *n, const char *path, struct reload_result *res)
{
	struct config nc;
	struct err e;
	char *restart = res->restart;
	size_t rl = sizeof res->restart;
	int rc, keys_changed = 0;

	memset(res, 0, sizeof *res);
	if ((rc = config_load(path, &nc, &e)) != 0) {
		log_error("reload: %s; the running configuration stays", e.msg);
		return rc;
	}
	const struct config *o = &n->cfg;
	for (size_t i = 0; i < sizeof at_start / sizeof at_start[0]; i++)
		if (memcmp((const char *)o + at_start[i].off,
			   (const char *)&nc + at_start[i].off,
			   at_start[i].len) != 0)
			need(restart, rl, at_start[i].what);
	if (others_differ(o, &nc))
		need(restart, rl, "other settings");
	if (o->log_level != nc.log_level) {
		log_info("reload: log_level %s -> %s",
			 log_level_name((enum log_level)o->log_level),
			 log_level_name((enum log_level)nc.log_level));
		n->cfg.log_level = nc.log_level;
		log_set_level((enum log_level)nc.log_level);
		res->applied++;
	}
	if (!same_peers(o, &nc)) {
		need(restart, rl, "peers added, removed or with new keys");
	} else {
		for (size_t i = 0; i < n->cfg.npeers; i++) {
			struct config_peer *p = &n->cfg.peers[i];
			const struct config_peer *q = peer_named(&nc, p->name);
			char old[sizeof p->address];

			if (strcmp(p->address, q->address) == 0)
				continue;
			/* The net parses the address from this config. */
			memcpy(old, p->address, sizeof old);
			memcpy(p->address, q->address, sizeof old);
			if (n->net != NULL &&
			    peer_net_readdress(n->net, p->id, &e) != 0) {
				memcpy(p->address, old, sizeof old);
				log_error("reload: %s; keeping %s", e.msg, old);
				res->failed++;
				continue;
			}
			log_info("reload: peer %s (%u) address %s -> %s",
				 p->name, p->id, old, p->address);
			res->applied++;
		}
	}
	/* Signing keys: a rotation rolls out by config, with no restart.
	 * The node's own earlier keys apply whatever the peers do. */
	if (o->nold_sign_keys != nc.nold_sign_keys ||
	    memcmp(o->old_sign_keys, nc.old_sign_keys,
		   nc.nold_sign_keys * 32) != 0) {
		memcpy(n->cfg.old_sign_keys, nc.old_sign_keys,
		       sizeof n->cfg.old_sign_keys);
		n->cfg.nold_sign_keys = nc.nold_sign_keys;
		keys_changed = 1;
		log_info("reload: this node's old signing keys changed (%zu "
			 "now)",
			 nc.nold_sign_keys);
	}
	if (same_peers(o, &nc)) {
		int changed = o->nretired != nc.nretired ||
			      memcmp(o->retired, nc.retired,
				     nc.nretired * sizeof nc.retired[0]) != 0;
		for (size_t i = 0; i < n->cfg.npeers; i++) {
			struct config_peer *p = &n->cfg.peers[i];
			const struct config_peer *q = peer_named(&nc, p->name);
			if (p->nsign_keys == q->nsign_keys &&
			    memcmp(p->sign_keys, q->sign_keys,
				   q->nsign_keys * 32) == 0)
				continue;
			memcpy(p->sign_keys, q->sign_keys,
			       sizeof p->sign_keys);
			p->nsign_keys = q->nsign_keys;
			changed = 1;
			log_info("reload: peer %s (%u) signing keys changed",
				 p->name, p->id);
		}
		if (changed) {
			n->cfg.nretired = nc.nretired;
			memcpy(n->cfg.retired, nc.retired,
			       sizeof n->cfg.retired);
			keys_changed = 1;
		}
	}
	if (keys_changed) {
		if (node_set_sign_keys(n, &e) != 0) {
			log_error("reload: signing keys: %s", e.msg);
			res->failed++;
		} else {
			res->applied++;
		}
	}
	if (!same_clients(o, &nc)) {
		need(restart, rl, "clients added, removed or with new keys");
	} else {
		for (size_t i = 0; i < n->cfg.nclients; i++) {
			struct config_client *c = &n->cfg.clients[i];
			const struct config_client *q =
			    client_named(&nc, c->name);
			if (c->role == q->role)
				continue;
			log_info("reload: client %s role %s -> %s", c->name,
				 config_role_name(c->role),
				 config_role_name(q->role));
			c->role = q->role;
			res->applied++;
		}
	}
	config_free(&nc);
	if (restart[0] != '\0')
		log_warn("reload: these changes need a restart (systemctl "
			 "restart msced@%s): %s",
			 n->cfg.node_name, restart);
	else if (res->applied == 0 && res->failed == 0)
		log_info("reload: configuration unchanged");
	else
		log_info("reload: done, %u change%s applied", res->applied,
			 res->applied == 1 ? "" : "s");
	return 0;
}
