/* SPDX-License-Identifier: Apache-2.0 */
/* The node's status message (msce.StatusResult): built for a client's
 * status request, the status page and /status.json alike. */
#ifndef MSCE_NODE_STATUS_H
#define MSCE_NODE_STATUS_H

#include "arena.h"
#include "client.pb-c.h"
#include "node.h"

/* The whole status, allocated in a (the caller frees it with the arena);
 * NULL when the arena runs out. */
Msce__StatusResult *node_status(struct node *n, struct arena *a);

/* Open conflicts in the store; UINT64_MAX when it cannot be read. */
uint64_t node_open_conflicts(struct node *n);

/* The center name this node's config gives node id ("" if none). Valid
 * while the node runs. */
const char *node_center_name(const struct node *n, uint32_t id);

#endif
