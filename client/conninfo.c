/* SPDX-License-Identifier: Apache-2.0 */
/* msce_conninfo; see conninfo.h and msce.h. */
#include "conninfo.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "config.h"
#include "error.h"
#include "keyfile.h"

static int fail(msce_conninfo *ci, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int fail(msce_conninfo *ci, int code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(ci->msg, sizeof ci->msg, fmt, ap);
	va_end(ap);
	return code;
}

msce_conninfo *msce_conninfo_new(void)
{
	msce_conninfo *ci = calloc(1, sizeof *ci);

	if (ci == NULL)
		return NULL;
	ci->connect_ms = CONNINFO_CONNECT_MS;
	ci->request_ms = CONNINFO_REQUEST_MS;
	ci->reconnect = 1;
	ci->retry_min_ms = CONNINFO_RETRY_MIN_MS;
	ci->retry_max_ms = CONNINFO_RETRY_MAX_MS;
	return ci;
}

msce_conninfo *conninfo_single(void)
{
	msce_conninfo *ci = msce_conninfo_new();

	if (ci != NULL) {
		ci->request_ms = 0;
		ci->reconnect = 0;
	}
	return ci;
}

void msce_conninfo_free(msce_conninfo *ci)
{
	if (ci == NULL)
		return;
	if (ci->sk)
		sodium_free(ci->sk); /* wipes it */
	free(ci->centers);
	free(ci);
}

const char *msce_conninfo_errmsg(const msce_conninfo *ci)
{
	return ci ? ci->msg : "out of memory";
}

static struct center *add(msce_conninfo *ci)
{
	struct center *c = realloc(ci->centers, (ci->n + 1) * sizeof *c);

	if (c == NULL)
		return NULL;
	ci->centers = c;
	memset(&c[ci->n], 0, sizeof c[ci->n]);
	return &c[ci->n];
}

int msce_conninfo_add_unix(msce_conninfo *ci, const char *path)
{
	struct center *c;

	if (ci == NULL)
		return MSCE_EINVAL;
	if (path == NULL || path[0] == '\0')
		return fail(ci, MSCE_EINVAL, "no socket path");
	if (strlen(path) >= sizeof c->addr || strlen(path) >= 108)
		return fail(ci, MSCE_EINVAL, "socket path too long: %s", path);
	if ((c = add(ci)) == NULL)
		return fail(ci, MSCE_ENOMEM, "out of memory");
	snprintf(c->addr, sizeof c->addr, "%s", path);
	snprintf(c->label, sizeof c->label, "unix:%s", path);
	ci->n++;
	return 0;
}

int msce_conninfo_add_config(msce_conninfo *ci, const char *config_path)
{
	struct config cfg;
	struct err e;
	int rc;

	if (ci == NULL)
		return MSCE_EINVAL;
	if ((rc = config_load(config_path, &cfg, &e)) != 0)
		return fail(ci, rc, "%s", e.msg);
	if (cfg.socket_path[0] == '\0')
		rc = fail(ci, MSCE_ECONFIG, "%s: [node] socket is not set",
			  config_path);
	else
		rc = msce_conninfo_add_unix(ci, cfg.socket_path);
	config_free(&cfg);
	return rc;
}

int msce_conninfo_add_tcp(msce_conninfo *ci, const char *hostport,
			  const char *node_key_base64)
{
	char host[256];
	struct center *c;
	uint8_t pk[32];
	struct err e;
	int port, rc;

	if (ci == NULL)
		return MSCE_EINVAL;
	if (hostport == NULL || node_key_base64 == NULL)
		return fail(ci, MSCE_EINVAL, "missing argument");
	if (config_parse_addr(hostport, host, sizeof host, &port, &e))
		return fail(ci, MSCE_EINVAL, "%s", e.msg);
	if ((rc = key_from_base64(node_key_base64, pk, &e)) != 0)
		return fail(ci, rc,
			    "node key for %s: %s (the node's public key, "
			    "base64, as in its .pub file)",
			    hostport, e.msg);
	if (strlen(hostport) >= sizeof c->addr)
		return fail(ci, MSCE_EINVAL, "address too long");
	if ((c = add(ci)) == NULL)
		return fail(ci, MSCE_ENOMEM, "out of memory");
	c->tcp = 1;
	memcpy(c->pk, pk, sizeof pk);
	snprintf(c->addr, sizeof c->addr, "%s", hostport);
	snprintf(c->label, sizeof c->label, "tcp:%s", hostport);
	ci->n++;
	return 0;
}

int msce_conninfo_set_client_key(msce_conninfo *ci, const char *key_file,
				 const char *cluster)
{
	uint8_t prologue[CHANNEL_PROLOGUE_MAX], pk[32], *sk;
	size_t plen;
	struct err e;
	int rc;

	if (ci == NULL)
		return MSCE_EINVAL;
	if (key_file == NULL || cluster == NULL)
		return fail(ci, MSCE_EINVAL, "missing argument");
	if (channel_prologue(cluster, prologue, sizeof prologue, &plen))
		return fail(ci, MSCE_EINVAL,
			    "bad cluster name \"%s\" (1..%d printable "
			    "characters, no space)",
			    cluster, CHANNEL_MAX_CLUSTER);
	if (sodium_init() < 0)
		return fail(ci, MSCE_EIO, "libsodium failed to initialise");
	if ((sk = sodium_malloc(32)) == NULL)
		return fail(ci, MSCE_ENOMEM, "out of memory");
	if ((rc = keyfile_load_secret(key_file, sk, pk, &e)) != 0) {
		sodium_free(sk);
		return fail(ci, rc, "%s", e.msg);
	}
	if (ci->sk)
		sodium_free(ci->sk);
	ci->sk = sk;
	snprintf(ci->cluster, sizeof ci->cluster, "%s", cluster);
	return 0;
}

void msce_conninfo_set_timeouts(msce_conninfo *ci, unsigned connect_ms,
				unsigned request_ms)
{
	if (ci == NULL)
		return;
	if (connect_ms)
		ci->connect_ms = connect_ms == MSCE_NO_TIMEOUT ? 0 : connect_ms;
	if (request_ms)
		ci->request_ms = request_ms == MSCE_NO_TIMEOUT ? 0 : request_ms;
}

void msce_conninfo_set_reconnect(msce_conninfo *ci, int enable,
				 unsigned min_ms, unsigned max_ms)
{
	if (ci == NULL)
		return;
	ci->reconnect = enable != 0;
	if (min_ms)
		ci->retry_min_ms = min_ms;
	if (max_ms)
		ci->retry_max_ms = max_ms;
	if (ci->retry_max_ms < ci->retry_min_ms)
		ci->retry_max_ms = ci->retry_min_ms;
}

msce_conninfo *conninfo_copy(const msce_conninfo *ci)
{
	msce_conninfo *c = malloc(sizeof *c);

	if (c == NULL)
		return NULL;
	*c = *ci;
	c->centers = NULL;
	c->sk = NULL;
	if (ci->n) {
		c->centers = malloc(ci->n * sizeof *c->centers);
		if (c->centers == NULL) {
			free(c);
			return NULL;
		}
		memcpy(c->centers, ci->centers, ci->n * sizeof *c->centers);
	}
	if (ci->sk) {
		if ((c->sk = sodium_malloc(32)) == NULL) {
			msce_conninfo_free(c);
			return NULL;
		}
		memcpy(c->sk, ci->sk, 32);
	}
	return c;
}

static int need_key(const msce_conninfo *ci, size_t i, char *err,
		    size_t errlen)
{
	if (ci->sk != NULL)
		return 0;
	snprintf(err, errlen,
		 "%s: a TCP center needs the client's key "
		 "(msce_conninfo_set_client_key)",
		 ci->centers[i].label);
	return MSCE_EINVAL;
}

int conninfo_open(const msce_conninfo *ci, size_t i, struct link **out,
		  char *err, size_t errlen)
{
	const struct center *c = &ci->centers[i];
	int rc;

	if (!c->tcp)
		return link_open_unix(c->addr, out, err, errlen);
	if ((rc = need_key(ci, i, err, errlen)) != 0)
		return rc;
	return link_open_tcp(c->addr, ci->sk, c->pk, ci->cluster,
			     ci->connect_ms, out, err, errlen);
}

int conninfo_connect(const msce_conninfo *ci, size_t i, struct transport **out,
		     char *err, size_t errlen)
{
	const struct center *c = &ci->centers[i];
	int rc;

	if (!c->tcp)
		return transport_unix(c->addr, out, err, errlen);
	if ((rc = need_key(ci, i, err, errlen)) != 0)
		return rc;
	return transport_tcp_timeout(c->addr, ci->sk, c->pk, ci->cluster,
				     ci->connect_ms, out, err, errlen);
}
