/* SPDX-License-Identifier: Apache-2.0 */
/* Between api.c and api_person.c: answering client requests, audited
 * answers and erasure. Loop thread only. */
#ifndef MSCE_API_INT_H
#define MSCE_API_INT_H

#include "audit.h"
#include "client.pb-c.h"
#include "subject.h"
#include "uv_client.h"

struct node;

void api_reply(struct client_conn *c, const Msce__ClientResponse *r);
void api_reply_error(struct client_conn *c, uint64_t id, int code,
		     const char *msg);
/* Who acts on c, for audit entries: strings borrowed from c, the node's
 * config and purpose. */
struct audit_who api_who(struct node *n, const struct client_conn *c,
			 const char *purpose);
/* Answers r (copied here) once the audit entry op for refs is durable,
 * at once when refs is empty; refuses the read when the entry cannot be
 * written. Takes refs. */
void api_reply_audited(struct node *n, struct client_conn *c,
		       const char *purpose, const Msce__ClientResponse *r,
		       const char *op, struct audit_refs *refs);

/* rc 0 once committed; erased lists "collection/key" of each record
 * deleted (valid during the call). */
typedef void (*api_erase_done_fn)(void *arg, int rc, const char *msg,
				  const char *const *erased, size_t nerased);
/* api.c: see there. */
void api_erase_person(struct node *n, struct client_conn *c,
		      const char *purpose, const struct subject *subs,
		      size_t nsubs, const char *const *rules,
		      api_erase_done_fn done, void *arg);

/* api_person.c: the person, erase and retention requests. req is
 * borrowed for the call only. */
void api_person(struct node *n, struct client_conn *c,
		const Msce__ClientRequest *req);
void api_erase(struct node *n, struct client_conn *c,
	       const Msce__ClientRequest *req);
void api_retention(struct node *n, struct client_conn *c,
		   const Msce__ClientRequest *req);

#endif
