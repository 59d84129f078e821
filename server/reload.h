/* SPDX-License-Identifier: Apache-2.0 */
/* Reloading a running node's config (SIGHUP); see reload.c for what is
 * applied and what needs a restart. */
#ifndef MSCE_RELOAD_H
#define MSCE_RELOAD_H

#include "node.h"

struct reload_result {
	unsigned applied, failed; /* changes made, changes refused */
	char restart[512];	  /* settings that need a restart, "" none */
};

/* Reads path and applies what it can to n, logging each change and what
 * needs a restart. 0, or the config's error (nothing changed). */
int node_reload(struct node *n, const char *path, struct reload_result *res);

#endif
