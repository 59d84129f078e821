/* SPDX-License-Identifier: Apache-2.0 */
/* Socket addresses for the listeners and dialers: parsing "host:port",
 * printing an address for the log, and binding a listening socket by hand
 * (so that "address in use" is reported at start, synchronously: a uv
 * handle, once made, can only be released asynchronously). */
#ifndef MSCE_UV_ADDR_H
#define MSCE_UV_ADDR_H

#include <stddef.h>
#include <sys/socket.h>

#include "error.h"

/* "1.2.3.4:7401", "[::1]:7401" or "localhost:7401"; host names are not
 * resolved (MSCE_ECONFIG). */
int addr_parse(const char *s, struct sockaddr_storage *ss, struct err *e);
/* "1.2.3.4:7401" / "[::1]:7401" into out (cap bytes), "?" if unknown. */
void addr_format(const struct sockaddr *sa, char *out, size_t cap);
/* A bound, listening TCP socket (SO_REUSEADDR, close-on-exec) in *out.
 * Errors read "<what> <name>: <reason>". */
int addr_listen(const char *what, const char *name, const struct sockaddr *sa,
		int backlog, int *out, struct err *e);

#endif
