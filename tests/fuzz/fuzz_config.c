/* SPDX-License-Identifier: Apache-2.0 */
/* fuzz_config: the node config parser on arbitrary text.
 *
 * The input, NUL-terminated, goes to config_parse_string; on success the
 * lookups run over what it parsed. The same text also goes to the two
 * value parsers the config uses (addresses and durations), which operators
 * reach with a single line. Oracles beyond ASan/UBSan: an error comes with
 * a NUL-terminated message and leaves the config empty. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

static void check_err(const struct err *e, int rc, const char *what)
{
	if (rc != 0 &&
	    (e->code != rc || memchr(e->msg, 0, sizeof e->msg) == NULL ||
	     e->msg[0] == 0)) {
		fprintf(stderr, "fuzz_config: %s: code %d without a message\n",
			what, rc);
		abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = malloc(size + 1);
	struct config c;
	struct err e;
	char host[256];
	uint64_t ms;
	int port, rc;

	if (text == NULL)
		return 0;
	memcpy(text, data, size);
	text[size] = 0;

	memset(&c, 0, sizeof c);
	err_clear(&e);
	rc = config_parse_string(text, "fuzz.conf", &c, &e);
	check_err(&e, rc, "config_parse_string");
	if (rc != 0 &&
	    (c.peers != NULL || c.clients != NULL || c.npeers || c.nclients)) {
		fprintf(stderr, "fuzz_config: failed parse left lists\n");
		abort();
	}
	if (rc == 0) {
		for (size_t i = 0; i < c.npeers; i++) {
			if (config_peer_by_key(&c, c.peers[i].public_key) ==
				NULL ||
			    config_peer_by_id(&c, c.peers[i].id) == NULL) {
				fprintf(stderr, "fuzz_config: peer %zu lost\n",
					i);
				abort();
			}
		}
		for (size_t i = 0; i < c.nclients; i++) {
			if (config_client_by_key(&c, c.clients[i].public_key) ==
			    NULL) {
				fprintf(stderr,
					"fuzz_config: client %zu lost\n", i);
				abort();
			}
			(void)config_role_name(c.clients[i].role);
		}
	}
	config_free(&c);

	err_clear(&e);
	rc = config_parse_addr(text, host, sizeof host, &port, &e);
	check_err(&e, rc, "config_parse_addr");
	if (rc == 0 && (port < 1 || port > 65535 ||
			memchr(host, 0, sizeof host) == NULL)) {
		fprintf(stderr, "fuzz_config: address gave port %d\n", port);
		abort();
	}
	err_clear(&e);
	rc = config_parse_duration_ms(text, &ms, &e);
	check_err(&e, rc, "config_parse_duration_ms");
	free(text);
	return 0;
}
