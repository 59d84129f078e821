/* Between libmsce and the msce CLI: the raw request/response call. */
#ifndef MSCE_CLIENT_INTERNAL_H
#define MSCE_CLIENT_INTERNAL_H

#include "client.pb-c.h"
#include "msce.h"

/* Sends req (id is set here) and waits for its response; *resp is freed
 * with msce__client_response__free_unpacked(resp, NULL). Returns 0 when a
 * response arrived (check resp->code), or a transport error. */
int client_call(msce_client *c, Msce__ClientRequest *req,
	      Msce__ClientResponse **resp);

#endif
