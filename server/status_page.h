/* SPDX-License-Identifier: Apache-2.0 */
/* The status page (`/`, HTML) and `/status.json` on the metrics
 * listener; see status_page.c. */
#ifndef MSCE_STATUS_PAGE_H
#define MSCE_STATUS_PAGE_H

#include "error.h"
#include "node.h"

/* Adds both routes to n->metrics (which must be running). */
int status_page_start(struct node *n, struct err *e);

#endif
