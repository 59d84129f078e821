/* SPDX-License-Identifier: Apache-2.0 */
/* Between libmsce's parts and the msce CLI: the raw request/response call
 * and what the domain helpers need of a client. */
#ifndef MSCE_CLIENT_INTERNAL_H
#define MSCE_CLIENT_INTERNAL_H

#include <stdint.h>

#include "client.pb-c.h"
#include "msce.h"

/* Sends req (id is set here) and waits for its response; *resp is freed
 * with msce__client_response__free_unpacked(resp, NULL). Returns 0 when a
 * response arrived (check resp->code), or a transport error. */
int client_call(msce_client *c, Msce__ClientRequest *req,
		Msce__ClientResponse **resp);

/* Sets c's message (msce_errmsg) and returns code. */
int client_fail(msce_client *c, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* The node's name into *name (a status request the first time): 0, or
 * the status request's error. */
int client_node_name(msce_client *c, const char **name);
/* The time of this client's last note (unix ms), for note ids. */
uint64_t *client_last_note_ms(msce_client *c);

#endif
