/* SPDX-License-Identifier: Apache-2.0 */
/* Who may start a handshake on a listener, decided from the source address
 * alone, before a byte is read or a key computed:
 *
 * - at most max_pending connections are in their handshake at once;
 * - at most per_addr of them come from one address (an IPv4 address, or an
 *   IPv6 /64, since one host holds a whole /64);
 * - `reserved` of the max_pending slots are only for reserved addresses
 *   (the configured peers' hosts), so that a flood from anywhere else never
 *   locks the peers out;
 * - under load (half the slots taken) a message 1 must carry a cookie
 *   (channel.h: the listener's admit callback asks for one), and each
 *   address may then start at most ADMISSION_RATE Diffie-Hellman
 *   handshakes a second, ADMISSION_BURST at once.
 *
 * Pure bookkeeping, no sockets and no clock (time is passed in), so that
 * tests drive it step by step. The table of addresses is bounded: entries
 * of addresses with nothing pending are recycled, oldest first. */
#ifndef MSCE_ADMISSION_H
#define MSCE_ADMISSION_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define ADMISSION_RATE 20  /* handshakes a second per address, under load */
#define ADMISSION_BURST 5  /* of which at once */
#define ADMISSION_ADDR_MAX 16

struct admission_config {
	size_t max_pending; /* handshakes at once, >= 1 */
	size_t per_addr;    /* of which from one address, >= 1 */
	size_t reserved;    /* of which only reserved addresses may take */
	size_t reserved_addrs; /* how many addresses admission_reserve marks */
};

/* An address as admission counts it: 4 bytes of IPv4 (also for an
 * IPv4-mapped IPv6 address) or the first 8 bytes of IPv6. */
struct admission_key {
	uint8_t b[8];
	uint8_t len;
};

struct admission_entry; /* private */

enum admission_verdict {
	ADMISSION_OK = 0,
	ADMISSION_FULL,	     /* every slot this address may use is taken */
	ADMISSION_ADDR_FULL, /* per_addr reached for its address */
};

/* Caller-owned; fields private to admission.c. */
struct admission {
	struct admission_config cfg;
	struct admission_entry *entries;
	uint32_t *buckets; /* entry index + 1, 0 = empty */
	size_t cap, nbuckets, used;
	uint32_t free_head; /* entry index + 1 */
	size_t pending, pending_reserved;
	uint8_t hash_key[16]; /* addresses are chosen by strangers */
};

/* Sets a up for cfg (copied). Returns 0, MSCE_EINVAL for a zero limit or
 * reserved >= max_pending, or MSCE_ENOMEM. */
int admission_init(struct admission *a, const struct admission_config *cfg);
void admission_free(struct admission *a);

/* The key of sa (AF_INET or AF_INET6); 0 or MSCE_EINVAL. */
int admission_key_of(const struct sockaddr *sa, struct admission_key *k);

/* Marks k's address as reserved (a configured peer's host). Call before
 * any admission_enter. 0 or MSCE_ENOMEM. */
int admission_reserve(struct admission *a, const struct admission_key *k);

/* A connection from k wants to start its handshake. On ADMISSION_OK a slot
 * is taken and *slot (an opaque handle, valid until admission_leave) names
 * it; the caller must call admission_leave once its handshake ends, either
 * way. Otherwise nothing changes. */
enum admission_verdict admission_enter(struct admission *a,
				       const struct admission_key *k,
				       uint64_t now_ms,
				       struct admission_entry **slot);
/* The handshake of slot is over (established, refused, timed out). */
void admission_leave(struct admission *a, struct admission_entry *slot,
		     uint64_t now_ms);

/* Whether half the slots are taken: message 1 then needs a cookie. */
int admission_under_load(const struct admission *a);
/* Under load, one Diffie-Hellman for slot's address: 1 if its rate
 * allows (a token is spent), 0 if not. */
int admission_take(struct admission *a, struct admission_entry *slot,
		   uint64_t now_ms);

/* Whether slot's address is reserved. */
int admission_is_reserved(const struct admission_entry *slot);
/* Handshakes in progress. */
size_t admission_pending(const struct admission *a);

#endif
