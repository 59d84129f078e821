/* SPDX-License-Identifier: Apache-2.0 */
/* Config parser on top of libinih.
 *
 * libinih's handler only gets a line number if the library was built with
 * INI_HANDLER_LINENO, which distributions do not promise, so we feed it
 * through ini_parse_stream with our own line reader. The reader counts
 * lines, handles section headers itself (inih merges repeated sections,
 * truncates long section names and never reports empty sections) and strips
 * leading whitespace so an indented line is never taken as a multi-line
 * continuation of the previous value. */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <ini.h>

#include "keyfile.h"
#include "log.h"

#define CONFIG_FILE_MAX (1u << 20) /* a node config is a few KiB */
#define MAX_KEYS 24

struct parser;
typedef int (*setter_fn)(struct parser *p, const char *v);

/* key_def.flags. A list setting may be given on several lines, each adding
 * to the list: a line holds only about four base64 keys. */
enum { KEY_REQUIRED = 1, KEY_LIST = 2 };

struct key_def {
	const char *name;
	int flags;
	setter_fn set;
};

enum sect_kind {
	SECT_NONE,
	SECT_CLUSTER,
	SECT_NODE,
	SECT_PEER,
	SECT_CLIENT,
	SECT_RETENTION
};

/* Where each section instance and each of its settings was seen (0 = not
 * seen), for duplicate and missing-setting messages. */
struct seen {
	int line;
	int key_line[MAX_KEYS];
};

struct parser {
	const char *file;
	const char *text;
	size_t pos;
	int lineno;
	int failed;
	int fail_line; /* line of our first error, 0 if none or no line */
	int code;      /* of our first error */
	struct config *cfg;
	struct err *e;

	enum sect_kind cur;
	size_t cur_index; /* into peers or clients */
	char label[96];   /* "[peer shekou]" */
	const char *key;  /* setting being handled */

	struct seen cluster, node, retention;
	struct seen *peer_seen; /* parallel to cfg->peers */
	struct seen *client_seen;
	size_t peers_cap, clients_cap;
};

static int fail_at(struct parser *p, int line, const char *label,
		   const char *key, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));

static int fail_at(struct parser *p, int line, const char *label,
		   const char *key, const char *fmt, ...)
{
	char why[ERR_MSG_MAX];
	char where[160];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof why, fmt, ap);
	va_end(ap);
	if (line > 0)
		snprintf(where, sizeof where, "%s:%d: ", p->file, line);
	else
		snprintf(where, sizeof where, "%s: ", p->file);
	p->failed = 1;
	p->fail_line = line;
	p->code = MSCE_ECONFIG;
	if (key != NULL)
		return err_set(p->e, MSCE_ECONFIG, "%s%s%s%s: %s", where,
			       label, *label ? " " : "", key, why);
	if (*label == '\0')
		return err_set(p->e, MSCE_ECONFIG, "%s%s", where, why);
	return err_set(p->e, MSCE_ECONFIG, "%s%s: %s", where, label, why);
}

/* Error about the setting being handled, on the current line. */
static int bad(struct parser *p, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static int bad(struct parser *p, const char *fmt, ...)
{
	char why[ERR_MSG_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof why, fmt, ap);
	va_end(ap);
	return fail_at(p, p->lineno, p->label, p->key, "%s", why);
}

/* ---- value parsers ---- */

static int parse_u64(const char *s, uint64_t *out)
{
	uint64_t v = 0;

	if (*s == '\0')
		return -1;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return -1;
		if (v > (UINT64_MAX - (uint64_t)(*s - '0')) / 10)
			return -1;
		v = v * 10 + (uint64_t)(*s - '0');
	}
	*out = v;
	return 0;
}

int config_parse_duration_ms(const char *s, uint64_t *ms, struct err *e)
{
	static const struct {
		const char *suffix;
		uint64_t ms;
	} units[] = {{"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}};
	char num[24];
	size_t n = strspn(s, "0123456789");
	const char *unit = s + n;
	uint64_t v, mult = 1000; /* a plain number is seconds */

	if (n == 0 || n >= sizeof num)
		goto bad;
	memcpy(num, s, n);
	num[n] = '\0';
	if (parse_u64(num, &v) != 0)
		goto bad;
	if (*unit != '\0') {
		size_t i;
		for (i = 0; i < sizeof units / sizeof units[0]; i++)
			if (strcmp(unit, units[i].suffix) == 0)
				break;
		if (i == sizeof units / sizeof units[0])
			goto bad;
		mult = units[i].ms;
	}
	if (v > UINT64_MAX / mult)
		goto bad;
	*ms = v * mult;
	return 0;
bad:
	return err_set(e, MSCE_EINVAL,
		       "\"%s\" is not a duration (e.g. 60s, 500ms, 2m, 1h)", s);
}

int config_parse_size(const char *s, uint64_t *bytes, struct err *e)
{
	static const struct {
		const char *suffix;
		unsigned shift;
	} units[] = {{"", 0},	  {"K", 10},   {"KiB", 10}, {"M", 20},
		     {"MiB", 20}, {"G", 30},   {"GiB", 30}};
	char num[24];
	size_t n = strspn(s, "0123456789"), i;
	uint64_t v;

	if (n == 0 || n >= sizeof num)
		goto bad;
	memcpy(num, s, n);
	num[n] = '\0';
	if (parse_u64(num, &v) != 0)
		goto bad;
	for (i = 0; i < sizeof units / sizeof units[0]; i++)
		if (strcmp(s + n, units[i].suffix) == 0)
			break;
	if (i == sizeof units / sizeof units[0] ||
	    v > (UINT64_MAX >> units[i].shift))
		goto bad;
	*bytes = v << units[i].shift;
	return 0;
bad:
	return err_set(e, MSCE_EINVAL,
		       "\"%s\" is not a size (e.g. 4MiB, 512KiB, 1GiB or a "
		       "number of bytes)",
		       s);
}

static int is_host_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9') || c == '-' || c == '.';
}

int config_parse_addr(const char *s, char *host, size_t hostlen, int *port,
		      struct err *e)
{
	const char *h, *colon, *p;
	size_t hl;
	uint64_t pv;
	unsigned char buf[sizeof(struct in6_addr)];
	char tmp[256];

	if (s[0] == '[') {
		const char *close = strchr(s, ']');
		if (close == NULL)
			return err_set(e, MSCE_EINVAL,
				       "\"%s\" has '[' without ']'", s);
		h = s + 1;
		hl = (size_t)(close - h);
		if (close[1] != ':')
			return err_set(e, MSCE_EINVAL,
				       "\"%s\" has no port (want [v6addr]:port, "
				       "e.g. [::1]:7401)",
				       s);
		colon = close + 1;
		if (hl == 0 || hl >= sizeof tmp)
			return err_set(e, MSCE_EINVAL,
				       "\"%s\" is not an IPv6 address", s);
		memcpy(tmp, h, hl);
		tmp[hl] = '\0';
		if (inet_pton(AF_INET6, tmp, buf) != 1)
			return err_set(e, MSCE_EINVAL,
				       "\"%s\" is not an IPv6 address in \"%s\"",
				       tmp, s);
	} else {
		colon = strrchr(s, ':');
		if (colon == NULL)
			return err_set(e, MSCE_EINVAL,
				       "\"%s\" has no port (want host:port, e.g. "
				       "10.0.2.10:7401)",
				       s);
		if (strchr(s, ':') != colon)
			return err_set(e, MSCE_EINVAL,
				       "\"%s\": IPv6 addresses need brackets, "
				       "e.g. [::1]:7401",
				       s);
		h = s;
		hl = (size_t)(colon - s);
		if (hl == 0)
			return err_set(e, MSCE_EINVAL,
				       "\"%s\" has no host (use 0.0.0.0 or [::] "
				       "for all interfaces)",
				       s);
		if (hl > 253)
			return err_set(e, MSCE_EINVAL,
				       "\"%s\": host name is too long", s);
		for (size_t i = 0; i < hl; i++)
			if (!is_host_char(h[i]))
				return err_set(e, MSCE_EINVAL,
					       "\"%s\": bad character in host "
					       "name",
					       s);
		if (h[0] == '-' || h[0] == '.' || h[hl - 1] == '-')
			return err_set(e, MSCE_EINVAL,
				       "\"%s\" is not a host name", s);
		memcpy(tmp, h, hl);
		tmp[hl] = '\0';
		/* All digits and dots: must be a real dotted quad, so that
		 * 10.0.2.300 is an error, not a host name lookup. */
		if (strspn(tmp, "0123456789.") == hl &&
		    inet_pton(AF_INET, tmp, buf) != 1)
			return err_set(e, MSCE_EINVAL,
				       "\"%s\" is not an IPv4 address in \"%s\"",
				       tmp, s);
	}
	p = colon + 1;
	if (parse_u64(p, &pv) != 0 || pv < 1 || pv > 65535 || strlen(p) > 5)
		return err_set(e, MSCE_EINVAL,
			       "\"%s\": port \"%s\" is not 1..65535", s, p);
	if (hl >= hostlen)
		return err_set(e, MSCE_EINVAL, "\"%s\": host is too long", s);
	memcpy(host, h, hl);
	host[hl] = '\0';
	*port = (int)pv;
	return 0;
}

/* [a-z0-9][a-z0-9-]{0,62} */
static int valid_name(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n >= CONFIG_NAME_MAX || s[0] == '-')
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') ||
		      (s[i] >= '0' && s[i] <= '9') || s[i] == '-'))
			return 0;
	return 1;
}

/* [A-Za-z0-9._-]{1,63} */
static int valid_cluster(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n >= CONFIG_NAME_MAX)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') ||
		      (s[i] >= 'A' && s[i] <= 'Z') ||
		      (s[i] >= '0' && s[i] <= '9') || s[i] == '.' ||
		      s[i] == '_' || s[i] == '-'))
			return 0;
	return 1;
}

static int set_str(struct parser *p, char *dst, size_t cap, const char *v,
		   int may_be_empty)
{
	size_t n = strlen(v);

	if (n == 0 && !may_be_empty)
		return bad(p, "must not be empty");
	if (n >= cap)
		return bad(p, "is too long (%zu bytes, at most %zu)", n,
			   cap - 1);
	memcpy(dst, v, n + 1);
	return 0;
}

static int is_ip_or_localhost(const char *host)
{
	unsigned char buf[sizeof(struct in6_addr)];

	return strcmp(host, "localhost") == 0 ||
	       inet_pton(AF_INET, host, buf) == 1 ||
	       inet_pton(AF_INET6, host, buf) == 1;
}

static int set_addr(struct parser *p, char *dst, size_t cap, const char *v,
		    int may_be_empty)
{
	char host[256];
	int port;
	struct err ae;

	if (*v == '\0' && may_be_empty) {
		dst[0] = '\0';
		return 0;
	}
	if (config_parse_addr(v, host, sizeof host, &port, &ae) != 0)
		return bad(p, "%s", ae.msg);
	/* msced resolves no names: refuse one here, with its line, rather
	 * than when the node listens or dials. */
	if (!is_ip_or_localhost(host))
		return bad(p, "\"%s\": not an IP address (msced does not "
			      "resolve host names; write the address, or "
			      "localhost)",
			   v);
	return set_str(p, dst, cap, v, 0);
}

static int set_key(struct parser *p, uint8_t dst[32], const char *v)
{
	struct err ke;

	if (key_from_base64(v, dst, &ke) != 0)
		return bad(p, "\"%s\": %s", v, ke.msg);
	if (key_low_order(dst))
		return bad(p, "\"%s\" is a low-order point, not a usable "
			      "X25519 public key",
			   v);
	return 0;
}

/* A whole number in lo..hi. */
static int set_count(struct parser *p, size_t *dst, const char *v, uint64_t lo,
		     uint64_t hi)
{
	uint64_t n;

	if (parse_u64(v, &n) != 0 || n < lo || n > hi)
		return bad(p, "\"%s\" is not a number from %llu to %llu", v,
			   (unsigned long long)lo, (unsigned long long)hi);
	*dst = (size_t)n;
	return 0;
}

static int set_duration(struct parser *p, uint64_t *dst, const char *v,
			uint64_t lo_ms)
{
	struct err de;
	uint64_t ms;

	if (config_parse_duration_ms(v, &ms, &de) != 0)
		return bad(p, "%s", de.msg);
	if (ms < lo_ms)
		return bad(p, "\"%s\" is too short (at least %llu ms)", v,
			   (unsigned long long)lo_ms);
	*dst = ms;
	return 0;
}

static int set_size(struct parser *p, size_t *dst, const char *v, size_t lo,
		    size_t hi)
{
	struct err se;
	uint64_t n;

	if (config_parse_size(v, &n, &se) != 0)
		return bad(p, "%s", se.msg);
	if (n < lo || n > hi)
		return bad(p, "\"%s\" is outside %zu..%zu bytes", v, lo, hi);
	*dst = (size_t)n;
	return 0;
}

static int set_id(struct parser *p, uint32_t *dst, const char *v)
{
	uint64_t id;

	if (parse_u64(v, &id) != 0 || id < 1 || id > 65535)
		return bad(p, "\"%s\" is not a node id (1..65535)", v);
	*dst = (uint32_t)id;
	return 0;
}

/* ---- setters, one per key ---- */

static struct config_peer *cur_peer(struct parser *p)
{
	return &p->cfg->peers[p->cur_index];
}

static struct config_client *cur_client(struct parser *p)
{
	return &p->cfg->clients[p->cur_index];
}

static int s_cluster_name(struct parser *p, const char *v)
{
	if (!valid_cluster(v))
		return bad(p, "\"%s\" is not a cluster name (1..63 of "
			      "A-Z a-z 0-9 . _ -)",
			   v);
	return set_str(p, p->cfg->cluster, sizeof p->cfg->cluster, v, 0);
}

static int s_node_id(struct parser *p, const char *v)
{
	return set_id(p, &p->cfg->node_id, v);
}

static int s_node_name(struct parser *p, const char *v)
{
	if (!valid_name(v))
		return bad(p, "\"%s\" is not a node name (1..63 of a-z 0-9 -, "
			      "not starting with -)",
			   v);
	return set_str(p, p->cfg->node_name, sizeof p->cfg->node_name, v, 0);
}

static int s_data_dir(struct parser *p, const char *v)
{
	return set_str(p, p->cfg->data_dir, sizeof p->cfg->data_dir, v, 0);
}

static int s_key(struct parser *p, const char *v)
{
	return set_str(p, p->cfg->key_path, sizeof p->cfg->key_path, v, 0);
}

static int s_listen(struct parser *p, const char *v)
{
	return set_addr(p, p->cfg->listen, sizeof p->cfg->listen, v, 0);
}

static int s_client_listen(struct parser *p, const char *v)
{
	return set_addr(p, p->cfg->client_listen,
			sizeof p->cfg->client_listen, v, 1);
}

static int s_metrics_listen(struct parser *p, const char *v)
{
	return set_addr(p, p->cfg->metrics_listen,
			sizeof p->cfg->metrics_listen, v, 1);
}

static int s_socket(struct parser *p, const char *v)
{
	struct sockaddr_un sun;

	/* bind() would fail much later with a vaguer message. */
	if (strlen(v) >= sizeof sun.sun_path)
		return bad(p, "\"%s\" is too long for a unix socket path "
			      "(at most %zu bytes)",
			   v, sizeof sun.sun_path - 1);
	return set_str(p, p->cfg->socket_path, sizeof p->cfg->socket_path, v,
		       1);
}

static int s_clock_skew(struct parser *p, const char *v)
{
	struct err de;
	uint64_t ms;

	if (config_parse_duration_ms(v, &ms, &de) != 0)
		return bad(p, "%s", de.msg);
	if (ms == 0)
		return bad(p, "\"%s\" must be more than zero", v);
	p->cfg->max_clock_skew_ms = ms;
	return 0;
}

static int s_log_retention(struct parser *p, const char *v)
{
	if (parse_u64(v, &p->cfg->log_retention) != 0)
		return bad(p, "\"%s\" is not a number of changes (0 or more)",
			   v);
	return 0;
}

static int s_log_level(struct parser *p, const char *v)
{
	int level = log_level_parse(v);

	if (level < 0)
		return bad(p, "\"%s\" is not a log level (error, warn, info "
			      "or debug)",
			   v);
	p->cfg->log_level = level;
	return 0;
}

static int s_fsync(struct parser *p, const char *v)
{
	if (!strcmp(v, "true") || !strcmp(v, "yes") || !strcmp(v, "on"))
		p->cfg->fsync = 1;
	else if (!strcmp(v, "false") || !strcmp(v, "no") || !strcmp(v, "off"))
		p->cfg->fsync = 0;
	else
		return bad(p, "\"%s\" is not true or false", v);
	return 0;
}

static int s_max_pending(struct parser *p, const char *v)
{
	return set_count(p, &p->cfg->max_pending_handshakes, v, 1, 65536);
}

static int s_max_pending_per_address(struct parser *p, const char *v)
{
	return set_count(p, &p->cfg->max_pending_per_address, v, 1, 65536);
}

static int s_handshake_timeout(struct parser *p, const char *v)
{
	return set_duration(p, &p->cfg->handshake_timeout_ms, v, 100);
}

static int s_client_idle_timeout(struct parser *p, const char *v)
{
	return set_duration(p, &p->cfg->client_idle_timeout_ms, v, 1000);
}

static int s_client_conns_per_key(struct parser *p, const char *v)
{
	return set_count(p, &p->cfg->client_max_connections_per_key, v, 1,
			 65536);
}

static int s_client_partial(struct parser *p, const char *v)
{
	return set_size(p, &p->cfg->client_max_partial_bytes, v,
			CONFIG_MIN_CLIENT_PARTIAL, CONFIG_MAX_CLIENT_PARTIAL);
}

static int s_client_partial_total(struct parser *p, const char *v)
{
	return set_size(p, &p->cfg->client_max_partial_total, v,
			CONFIG_MIN_CLIENT_PARTIAL, SIZE_MAX / 2);
}

static int s_backup_dir(struct parser *p, const char *v)
{
	if (v[0] != '/')
		return bad(p, "\"%s\" is not an absolute path", v);
	return set_str(p, p->cfg->backup_dir, sizeof p->cfg->backup_dir, v,
		       0);
}

static int s_master_key(struct parser *p, const char *v)
{
	return set_str(p, p->cfg->master_key_path,
		       sizeof p->cfg->master_key_path, v, 0);
}

static int s_peer_id(struct parser *p, const char *v)
{
	return set_id(p, &cur_peer(p)->id, v);
}

static int s_peer_address(struct parser *p, const char *v)
{
	return set_addr(p, cur_peer(p)->address, sizeof cur_peer(p)->address,
			v, 0);
}

static int s_peer_key(struct parser *p, const char *v)
{
	return set_key(p, cur_peer(p)->public_key, v);
}

/* Adds a comma-separated list of base64 keys to keys[0..*n) (at most max
 * in all, over every line of the setting). A key already in the list
 * counts once: it pins nothing new, and a config that repeated one in a
 * line has always been read. */
static int set_key_list(struct parser *p, uint8_t (*keys)[32], size_t max,
			size_t *n, const char *v)
{
	char buf[1024], *save = NULL;
	uint8_t k[32];
	int any = 0;

	if (strlen(v) >= sizeof buf)
		return bad(p, "list too long");
	snprintf(buf, sizeof buf, "%s", v);
	for (char *t = strtok_r(buf, ", \t", &save); t != NULL;
	     t = strtok_r(NULL, ", \t", &save)) {
		size_t j;

		if (set_key(p, k, t))
			return -1;
		any = 1;
		for (j = 0; j < *n; j++)
			if (memcmp(keys[j], k, 32) == 0)
				break;
		if (j < *n)
			continue;
		if (*n == max)
			return bad(p, "more than %zu keys over all its lines",
				   max);
		memcpy(keys[(*n)++], k, 32);
	}
	if (!any)
		return bad(p, "no key given");
	return 0;
}

static int s_old_sign_key(struct parser *p, const char *v)
{
	return set_key_list(p, p->cfg->old_sign_keys, CONFIG_MAX_SIGN_KEYS,
			    &p->cfg->nold_sign_keys, v);
}

static int s_peer_sign_key(struct parser *p, const char *v)
{
	struct config_peer *pe = cur_peer(p);
	return set_key_list(p, pe->sign_keys, CONFIG_MAX_SIGN_KEYS,
			    &pe->nsign_keys, v);
}

/* ID:KEY, ID:KEY, ..., added to the list (see set_key_list). */
static int s_cluster_retired(struct parser *p, const char *v)
{
	char buf[8192], *save = NULL;
	struct config_retired r;
	struct config *c = p->cfg;

	if (strlen(v) >= sizeof buf)
		return bad(p, "list too long");
	snprintf(buf, sizeof buf, "%s", v);
	for (char *t = strtok_r(buf, ", \t", &save); t != NULL;
	     t = strtok_r(NULL, ", \t", &save)) {
		char *colon = strchr(t, ':');
		size_t j;

		if (colon == NULL)
			return bad(p, "\"%s\" is not ID:SIGN_KEY", t);
		*colon = '\0';
		memset(&r, 0, sizeof r); /* padding too: reload memcmps */
		if (set_id(p, &r.id, t) || set_key(p, r.sign_key, colon + 1))
			return -1;
		for (j = 0; j < c->nretired; j++)
			if (memcmp(&c->retired[j], &r, sizeof r) == 0)
				break;
		if (j < c->nretired)
			continue;
		if (c->nretired == CONFIG_MAX_RETIRED)
			return bad(p, "more than %d retired signing keys over "
				      "all its lines",
				   CONFIG_MAX_RETIRED);
		c->retired[c->nretired++] = r;
	}
	return 0;
}

static int s_client_key(struct parser *p, const char *v)
{
	return set_key(p, cur_client(p)->public_key, v);
}

static int s_client_role(struct parser *p, const char *v)
{
	int role;

	if (!strcmp(v, "ro"))
		role = CONFIG_ROLE_RO;
	else if (!strcmp(v, "rw"))
		role = CONFIG_ROLE_RW;
	else if (!strcmp(v, "admin"))
		role = CONFIG_ROLE_ADMIN;
	else
		return bad(p, "\"%s\" is not a role (ro, rw or admin)", v);
	cur_client(p)->role = role;
	return 0;
}

static int set_retention(struct parser *p, const char *coll,
			 struct retention_rule *r, const char *v)
{
	struct err re;

	if (retention_parse(coll, v, r, &re) != 0)
		return bad(p, "%s", re.msg);
	return 0;
}

static int s_ret_registration(struct parser *p, const char *v)
{
	return set_retention(p, "registration",
			     &p->cfg->retention_registration, v);
}

static int s_ret_case(struct parser *p, const char *v)
{
	return set_retention(p, "case", &p->cfg->retention_case, v);
}

/* Indexes into struct seen.key_line for the checks in finish(). */
enum {
	NODE_ID,
	NODE_NAME,
	NODE_DATA_DIR,
	NODE_KEY,
	NODE_LISTEN,
	NODE_CLIENT_LISTEN,
	NODE_SOCKET,
	NODE_METRICS_LISTEN,
	NODE_MAX_PENDING,
	NODE_MAX_PENDING_PER_ADDRESS,
	NODE_CLIENT_PARTIAL,
	NODE_CLIENT_PARTIAL_TOTAL,
	NODE_MASTER_KEY,
};
enum { PEER_ID, PEER_ADDRESS, PEER_KEY };
enum { CLIENT_KEY, CLIENT_ROLE };

static const struct key_def cluster_keys[] = {
	{"name", KEY_REQUIRED, s_cluster_name},
	{"retired", KEY_LIST, s_cluster_retired},
};

static const struct key_def node_keys[] = {
	[NODE_ID] = {"id", KEY_REQUIRED, s_node_id},
	[NODE_NAME] = {"name", KEY_REQUIRED, s_node_name},
	[NODE_DATA_DIR] = {"data_dir", KEY_REQUIRED, s_data_dir},
	[NODE_KEY] = {"key", KEY_REQUIRED, s_key},
	[NODE_LISTEN] = {"listen", KEY_REQUIRED, s_listen},
	[NODE_CLIENT_LISTEN] = {"client_listen", 0, s_client_listen},
	[NODE_SOCKET] = {"socket", 0, s_socket},
	[NODE_METRICS_LISTEN] = {"metrics_listen", 0, s_metrics_listen},
	[NODE_MAX_PENDING] = {"max_pending_handshakes", 0, s_max_pending},
	[NODE_MAX_PENDING_PER_ADDRESS] = {"max_pending_per_address", 0,
					  s_max_pending_per_address},
	[NODE_CLIENT_PARTIAL] = {"client_max_partial_bytes", 0,
				 s_client_partial},
	[NODE_CLIENT_PARTIAL_TOTAL] = {"client_max_partial_total", 0,
				       s_client_partial_total},
	[NODE_MASTER_KEY] = {"master_key", 0, s_master_key},
	{"max_clock_skew", 0, s_clock_skew},
	{"log_retention", 0, s_log_retention},
	{"log_level", 0, s_log_level},
	{"fsync", 0, s_fsync},
	{"handshake_timeout", 0, s_handshake_timeout},
	{"client_idle_timeout", 0, s_client_idle_timeout},
	{"client_max_connections_per_key", 0, s_client_conns_per_key},
	{"backup_dir", 0, s_backup_dir},
	{"old_sign_key", KEY_LIST, s_old_sign_key},
};

static const struct key_def peer_keys[] = {
	[PEER_ID] = {"id", KEY_REQUIRED, s_peer_id},
	[PEER_ADDRESS] = {"address", KEY_REQUIRED, s_peer_address},
	[PEER_KEY] = {"public_key", KEY_REQUIRED, s_peer_key},
	{"sign_key", KEY_LIST, s_peer_sign_key},
};

static const struct key_def client_keys[] = {
	[CLIENT_KEY] = {"public_key", KEY_REQUIRED, s_client_key},
	[CLIENT_ROLE] = {"role", KEY_REQUIRED, s_client_role},
};

/* Collections whose records a center erases when their purpose ends. */
static const struct key_def retention_keys[] = {
	{"registration", 0, s_ret_registration},
	{"case", 0, s_ret_case},
};

#define NKEYS(a) (sizeof(a) / sizeof((a)[0]))
_Static_assert(NKEYS(node_keys) <= MAX_KEYS, "raise MAX_KEYS");

static void section_keys(enum sect_kind k, const struct key_def **keys,
			 size_t *n)
{
	switch (k) {
	case SECT_CLUSTER:
		*keys = cluster_keys, *n = NKEYS(cluster_keys);
		break;
	case SECT_NODE:
		*keys = node_keys, *n = NKEYS(node_keys);
		break;
	case SECT_PEER:
		*keys = peer_keys, *n = NKEYS(peer_keys);
		break;
	case SECT_CLIENT:
		*keys = client_keys, *n = NKEYS(client_keys);
		break;
	case SECT_RETENTION:
		*keys = retention_keys, *n = NKEYS(retention_keys);
		break;
	default:
		*keys = NULL, *n = 0;
	}
}

static struct seen *cur_seen(struct parser *p)
{
	switch (p->cur) {
	case SECT_CLUSTER:
		return &p->cluster;
	case SECT_NODE:
		return &p->node;
	case SECT_PEER:
		return &p->peer_seen[p->cur_index];
	case SECT_CLIENT:
		return &p->client_seen[p->cur_index];
	case SECT_RETENTION:
		return &p->retention;
	default:
		return NULL;
	}
}

/* ---- sections ---- */

static int grow(struct parser *p, void **arr, size_t elem, struct seen **seen,
		size_t *cap, size_t n)
{
	size_t ncap;
	void *na;
	struct seen *ns;

	if (n < *cap)
		return 0;
	ncap = *cap ? *cap * 2 : 8;
	na = realloc(*arr, ncap * elem);
	if (na == NULL)
		goto nomem;
	*arr = na;
	ns = realloc(*seen, ncap * sizeof **seen);
	if (ns == NULL)
		goto nomem;
	*seen = ns;
	*cap = ncap;
	return 0;
nomem:
	p->failed = 1;
	p->code = MSCE_ENOMEM;
	return err_set(p->e, MSCE_ENOMEM, "%s: out of memory", p->file);
}

static int begin_named(struct parser *p, enum sect_kind kind,
		       const char *word, const char *name)
{
	struct config *c = p->cfg;
	size_t i, n = kind == SECT_PEER ? c->npeers : c->nclients;
	size_t max = kind == SECT_PEER ? CONFIG_MAX_PEERS : CONFIG_MAX_CLIENTS;
	struct seen *seen;

	if (*name == '\0')
		return fail_at(p, p->lineno, p->label, NULL,
			       "needs a name: [%s NAME]", word);
	if (!valid_name(name))
		return fail_at(p, p->lineno, p->label, NULL,
			       "\"%s\" is not a %s name (1..63 of a-z 0-9 -, "
			       "not starting with -)",
			       name, word);
	for (i = 0; i < n; i++) {
		const char *other = kind == SECT_PEER ? c->peers[i].name
						      : c->clients[i].name;
		seen = kind == SECT_PEER ? &p->peer_seen[i]
					 : &p->client_seen[i];
		if (strcmp(other, name) == 0)
			return fail_at(p, p->lineno, p->label, NULL,
				       "section appears twice (first on line "
				       "%d)",
				       seen->line);
	}
	if (n >= max)
		return fail_at(p, p->lineno, p->label, NULL,
			       "too many [%s] sections (at most %zu)", word,
			       max);
	if (kind == SECT_PEER) {
		if (grow(p, (void **)&c->peers, sizeof *c->peers,
			 &p->peer_seen, &p->peers_cap, n) != 0)
			return MSCE_ENOMEM;
		memset(&c->peers[n], 0, sizeof c->peers[n]);
		snprintf(c->peers[n].name, sizeof c->peers[n].name, "%s",
			 name);
		seen = &p->peer_seen[n];
		c->npeers++;
	} else {
		if (grow(p, (void **)&c->clients, sizeof *c->clients,
			 &p->client_seen, &p->clients_cap, n) != 0)
			return MSCE_ENOMEM;
		memset(&c->clients[n], 0, sizeof c->clients[n]);
		snprintf(c->clients[n].name, sizeof c->clients[n].name, "%s",
			 name);
		seen = &p->client_seen[n];
		c->nclients++;
	}
	memset(seen, 0, sizeof *seen);
	seen->line = p->lineno;
	p->cur = kind;
	p->cur_index = n;
	return 0;
}

/* Called by the reader for a "[...]" line; inner is what is between the
 * brackets. */
static int begin_section(struct parser *p, const char *inner)
{
	char word[16];
	const char *name;
	size_t wl;

	while (*inner == ' ' || *inner == '\t')
		inner++;
	snprintf(p->label, sizeof p->label, "[%.*s]", 90, inner);
	wl = strcspn(inner, " \t");
	name = inner + wl;
	while (*name == ' ' || *name == '\t')
		name++;
	if (wl >= sizeof word)
		wl = sizeof word - 1;
	memcpy(word, inner, wl);
	word[wl] = '\0';
	p->cur = SECT_NONE;

	if (!strcmp(word, "cluster") || !strcmp(word, "node") ||
	    !strcmp(word, "retention")) {
		struct seen *s = word[0] == 'c'	  ? &p->cluster
				 : word[0] == 'n' ? &p->node
						  : &p->retention;
		if (*name != '\0')
			return fail_at(p, p->lineno, p->label, NULL,
				       "[%s] takes no name", word);
		if (s->line != 0)
			return fail_at(p, p->lineno, p->label, NULL,
				       "section appears twice (first on line "
				       "%d)",
				       s->line);
		s->line = p->lineno;
		p->cur = word[0] == 'c'	  ? SECT_CLUSTER
			 : word[0] == 'n' ? SECT_NODE
					  : SECT_RETENTION;
		return 0;
	}
	if (!strcmp(word, "peer"))
		return begin_named(p, SECT_PEER, word, name);
	if (!strcmp(word, "client"))
		return begin_named(p, SECT_CLIENT, word, name);
	return fail_at(p, p->lineno, p->label, NULL,
		       "unknown section (expected [cluster], [node], "
		       "[peer NAME], [client NAME] or [retention])");
}

/* ---- inih callbacks ---- */

static char *reader(char *str, int num, void *stream)
{
	struct parser *p = stream;
	const char *line, *end, *close;
	size_t len;

	if (p->failed || p->text[p->pos] == '\0')
		return NULL;
	line = p->text + p->pos;
	end = strchr(line, '\n');
	if (end == NULL)
		end = line + strlen(line);
	p->pos = (size_t)(end - p->text) + (*end == '\n');
	p->lineno++;

	if (p->lineno == 1 && strncmp(line, "\xEF\xBB\xBF", 3) == 0)
		line += 3;
	while (line < end && (*line == ' ' || *line == '\t'))
		line++;
	len = (size_t)(end - line);
	if (len > 0 && line[len - 1] == '\r')
		len--;
	if (num < 2 || len >= (size_t)num) {
		fail_at(p, p->lineno, "", NULL,
			"line is too long (at most %d characters)", num - 1);
		return NULL;
	}
	memcpy(str, line, len);
	str[len] = '\0';

	if (str[0] == '[') {
		close = strchr(str, ']');
		if (close == NULL) {
			fail_at(p, p->lineno, "", NULL,
				"section header without ']'");
			return NULL;
		}
		/* Only a comment may follow the header. */
		const char *rest = close + 1;
		rest += strspn(rest, " \t");
		if (*rest != '\0' && *rest != ';' && *rest != '#') {
			fail_at(p, p->lineno, "", NULL,
				"unexpected text after section header: \"%s\"",
				rest);
			return NULL;
		}
		char inner[256];
		size_t il = (size_t)(close - str - 1);
		if (il >= sizeof inner) {
			fail_at(p, p->lineno, "", NULL,
				"section header is too long");
			return NULL;
		}
		memcpy(inner, str + 1, il);
		while (il > 0 && (inner[il - 1] == ' ' || inner[il - 1] == '\t'))
			il--;
		inner[il] = '\0';
		if (begin_section(p, inner) != 0)
			return NULL;
	} else if (str[0] != '\0' && str[0] != ';' && str[0] != '#' &&
		   strpbrk(str, "=:") == NULL) {
		fail_at(p, p->lineno, "", NULL,
			"\"%s\" is not a setting (expected name = value, "
			"[section] or a ; comment)",
			str);
		return NULL;
	}
	return str;
}

static int handler(void *user, const char *section, const char *name,
		   const char *value)
{
	struct parser *p = user;
	const struct key_def *keys;
	struct seen *seen;
	size_t n, i;
	char known[400]; /* every [node] setting's name fits */
	size_t kl = 0;

	(void)section; /* ours, from the reader, is not truncated */
	if (p->failed)
		return 0;
	p->key = name;
	if (p->cur == SECT_NONE) {
		fail_at(p, p->lineno, "", name,
			"setting outside a section (settings go under "
			"[cluster], [node], [peer NAME] or [client NAME])");
		return 0;
	}
	section_keys(p->cur, &keys, &n);
	for (i = 0; i < n; i++)
		if (strcmp(keys[i].name, name) == 0)
			break;
	if (i == n) {
		known[0] = '\0';
		for (size_t j = 0; j < n; j++) {
			int w = snprintf(known + kl, sizeof known - kl, "%s%s",
					 j ? ", " : "", keys[j].name);
			if (w < 0 || (size_t)w >= sizeof known - kl)
				break;
			kl += (size_t)w;
		}
		bad(p, "unknown setting (known: %s)", known);
		return 0;
	}
	seen = cur_seen(p);
	if (seen->key_line[i] != 0 && !(keys[i].flags & KEY_LIST)) {
		bad(p, "set twice (first on line %d)", seen->key_line[i]);
		return 0;
	}
	if (seen->key_line[i] == 0)
		seen->key_line[i] = p->lineno;
	if (keys[i].set(p, value) != 0)
		return 0;
	return 1;
}

/* ---- checks after the whole file is read ---- */

static int check_required(struct parser *p, enum sect_kind kind,
			  const struct seen *s, const char *label)
{
	const struct key_def *keys;
	size_t n;

	section_keys(kind, &keys, &n);
	for (size_t i = 0; i < n; i++)
		if ((keys[i].flags & KEY_REQUIRED) && s->key_line[i] == 0)
			return fail_at(p, s->line, label, keys[i].name,
				       "required setting is missing");
	return 0;
}

static int check_section_present(struct parser *p, const struct seen *s,
				 enum sect_kind kind, const char *label)
{
	const struct key_def *keys;
	size_t n;
	char req[160];
	size_t rl = 0;

	if (s->line != 0)
		return 0;
	section_keys(kind, &keys, &n);
	req[0] = '\0';
	for (size_t i = 0; i < n; i++) {
		if (!(keys[i].flags & KEY_REQUIRED))
			continue;
		int w = snprintf(req + rl, sizeof req - rl, "%s%s",
				 rl ? ", " : "", keys[i].name);
		if (w < 0 || (size_t)w >= sizeof req - rl)
			break;
		rl += (size_t)w;
	}
	return fail_at(p, 0, label, NULL,
		       "section is missing (it needs: %s)", req);
}

static const char *key_owner(struct parser *p, const uint8_t key[32],
			     size_t peer_limit, size_t client_limit,
			     char *label, size_t cap, int *line)
{
	for (size_t i = 0; i < peer_limit; i++)
		if (memcmp(p->cfg->peers[i].public_key, key, 32) == 0) {
			snprintf(label, cap, "[peer %s]", p->cfg->peers[i].name);
			*line = p->peer_seen[i].key_line[PEER_KEY];
			return label;
		}
	for (size_t i = 0; i < client_limit; i++)
		if (memcmp(p->cfg->clients[i].public_key, key, 32) == 0) {
			snprintf(label, cap, "[client %s]",
				 p->cfg->clients[i].name);
			*line = p->client_seen[i].key_line[CLIENT_KEY];
			return label;
		}
	return NULL;
}

/* Two listeners on one address would fail at bind(), far from the
 * config line that caused it. */
static int check_listeners(struct parser *p)
{
	static const int idx[] = {NODE_LISTEN, NODE_CLIENT_LISTEN,
				  NODE_METRICS_LISTEN};
	const char *val[] = {p->cfg->listen, p->cfg->client_listen,
			     p->cfg->metrics_listen};

	for (int i = 1; i < 3; i++)
		for (int j = 0; j < i; j++)
			if (val[i][0] != '\0' && strcmp(val[i], val[j]) == 0)
				return fail_at(
					p, p->node.key_line[idx[i]], "[node]",
					node_keys[idx[i]].name,
					"%s is already used by %s (line %d)",
					val[i], node_keys[idx[j]].name,
					p->node.key_line[idx[j]]);
	return 0;
}

static int finish(struct parser *p)
{
	struct config *c = p->cfg;
	char label[96], other[96];
	int line;

	if (check_section_present(p, &p->cluster, SECT_CLUSTER, "[cluster]") ||
	    check_section_present(p, &p->node, SECT_NODE, "[node]") ||
	    check_required(p, SECT_CLUSTER, &p->cluster, "[cluster]") ||
	    check_required(p, SECT_NODE, &p->node, "[node]"))
		return p->code;
	if (check_listeners(p))
		return p->code;
	if (c->max_pending_per_address > c->max_pending_handshakes)
		return fail_at(p,
			       p->node.key_line[NODE_MAX_PENDING_PER_ADDRESS]
				   ? p->node.key_line[NODE_MAX_PENDING_PER_ADDRESS]
				   : p->node.key_line[NODE_MAX_PENDING],
			       "[node]", "max_pending_per_address",
			       "%zu is more than max_pending_handshakes (%zu)",
			       c->max_pending_per_address,
			       c->max_pending_handshakes);
	if (c->master_key_path[0] != '\0') {
		/* A copy of the data directory (a backup, a stolen disk)
		 * must not carry the key that opens it. */
		size_t dl = strlen(c->data_dir);
		while (dl > 1 && c->data_dir[dl - 1] == '/')
			dl--;
		if (strncmp(c->master_key_path, c->data_dir, dl) == 0 &&
		    (c->master_key_path[dl] == '/' ||
		     c->master_key_path[dl] == '\0'))
			return fail_at(p, p->node.key_line[NODE_MASTER_KEY],
				       "[node]", "master_key",
				       "%s is inside data_dir (%s): a copy of "
				       "the data directory would carry the "
				       "key that opens it; keep the key "
				       "elsewhere (e.g. /etc/msce)",
				       c->master_key_path, c->data_dir);
	}
	if (c->client_max_partial_total < c->client_max_partial_bytes)
		return fail_at(p,
			       p->node.key_line[NODE_CLIENT_PARTIAL_TOTAL]
				   ? p->node.key_line[NODE_CLIENT_PARTIAL_TOTAL]
				   : p->node.key_line[NODE_CLIENT_PARTIAL],
			       "[node]", "client_max_partial_total",
			       "%zu bytes is less than client_max_partial_bytes "
			       "(%zu): not even one request would fit",
			       c->client_max_partial_total,
			       c->client_max_partial_bytes);

	for (size_t i = 0; i < c->npeers; i++) {
		const struct config_peer *pe = &c->peers[i];
		const struct seen *s = &p->peer_seen[i];

		snprintf(label, sizeof label, "[peer %s]", pe->name);
		if (check_required(p, SECT_PEER, s, label))
			return MSCE_ECONFIG;
		if (strcmp(pe->name, c->node_name) == 0)
			return fail_at(p, s->line, label, NULL,
				       "this node's own name ([node] name on "
				       "line %d); a node is not its own peer",
				       p->node.key_line[NODE_NAME]);
		if (pe->id == c->node_id)
			return fail_at(p, s->key_line[PEER_ID], label, "id",
				       "%u is this node's own id ([node] id "
				       "on line %d)",
				       (unsigned)pe->id, p->node.key_line[NODE_ID]);
		for (size_t j = 0; j < i; j++)
			if (strcmp(c->peers[j].address, pe->address) == 0)
				return fail_at(p, s->key_line[PEER_ADDRESS],
					       label, "address",
					       "%s is already the address of "
					       "[peer %s] (line %d)",
					       pe->address, c->peers[j].name,
					       p->peer_seen[j].key_line
						       [PEER_ADDRESS]);
		for (size_t j = 0; j < i; j++)
			if (c->peers[j].id == pe->id)
				return fail_at(p, s->key_line[PEER_ID], label, "id",
					       "%u is already the id of "
					       "[peer %s] (line %d)",
					       (unsigned)pe->id,
					       c->peers[j].name,
					       p->peer_seen[j].key_line[PEER_ID]);
		if (key_owner(p, pe->public_key, i, 0, other, sizeof other,
			      &line))
			return fail_at(p, s->key_line[PEER_KEY], label, "public_key",
				       "same key as %s (line %d)", other,
				       line);
	}
	for (size_t i = 0; i < c->nclients; i++) {
		const struct config_client *cl = &c->clients[i];
		const struct seen *s = &p->client_seen[i];

		snprintf(label, sizeof label, "[client %s]", cl->name);
		if (check_required(p, SECT_CLIENT, s, label))
			return MSCE_ECONFIG;
		/* A key must name one party, or a peer could log in as a
		 * client with that client's role, or the reverse. */
		if (key_owner(p, cl->public_key, c->npeers, i, other,
			      sizeof other, &line))
			return fail_at(p, s->key_line[CLIENT_KEY], label, "public_key",
				       "same key as %s (line %d)", other,
				       line);
	}
	return 0;
}

/* ---- public ---- */

int config_parse_string(const char *text, const char *name_for_errors,
			struct config *out, struct err *e)
{
	struct parser p;
	int r, rc = 0;

	memset(out, 0, sizeof *out);
	out->max_clock_skew_ms = CONFIG_DEFAULT_CLOCK_SKEW_MS;
	out->log_retention = CONFIG_DEFAULT_LOG_RETENTION;
	out->log_level = LOG_INFO;
	out->fsync = 1;
	out->max_pending_handshakes = CONFIG_DEFAULT_MAX_PENDING;
	out->max_pending_per_address = CONFIG_DEFAULT_MAX_PENDING_PER_ADDR;
	out->handshake_timeout_ms = CONFIG_DEFAULT_HANDSHAKE_TIMEOUT_MS;
	out->client_idle_timeout_ms = CONFIG_DEFAULT_CLIENT_IDLE_MS;
	out->client_max_connections_per_key =
	    CONFIG_DEFAULT_CLIENT_CONNS_PER_KEY;
	out->client_max_partial_bytes = CONFIG_DEFAULT_CLIENT_PARTIAL;
	out->client_max_partial_total = CONFIG_DEFAULT_CLIENT_PARTIAL_TOTAL;

	memset(&p, 0, sizeof p);
	p.file = name_for_errors ? name_for_errors : "config";
	p.text = text;
	p.cfg = out;
	p.e = e;

	r = ini_parse_stream(reader, &p, handler, &p);
	/* inih goes on after a syntax error, so ours may come later. */
	if (r == -2)
		rc = err_set(e, MSCE_ENOMEM, "%s: out of memory", p.file);
	else if (p.failed && (r <= 0 || p.fail_line <= r))
		rc = p.code;
	else if (r > 0)
		rc = err_set(e, MSCE_ECONFIG,
			     "%s:%d: syntax error (expected [section], "
			     "name = value or a ; comment)",
			     p.file, r);
	else
		rc = finish(&p);
	if (rc == 0 && e != NULL)
		err_clear(e);
	free(p.peer_seen);
	free(p.client_seen);
	if (rc != 0)
		config_free(out);
	return rc;
}

int config_load(const char *path, struct config *out, struct err *e)
{
	struct stat st;
	char *buf;
	size_t n = 0;
	int fd, rc;

	memset(out, 0, sizeof *out);
	/* Whoever may change this file decides who is admin: no symbolic
	 * link (its target is whatever the link's owner makes it), no file
	 * group or others may write. */
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NOFOLLOW);
	if (fd < 0 && errno == ELOOP)
		return err_set(e, MSCE_EPERM,
			       "config %s is a symbolic link; refusing to "
			       "follow it (name the file itself)",
			       path);
	if (fd < 0)
		return err_set(e, errno == ENOENT ? MSCE_ENOTFOUND : MSCE_EIO,
			       "cannot open config %s: %s", path,
			       strerror(errno));
	if (fstat(fd, &st) != 0) {
		rc = err_set(e, MSCE_EIO, "cannot stat config %s: %s", path,
			     strerror(errno));
		close(fd);
		return rc;
	}
	if (!S_ISREG(st.st_mode)) {
		close(fd);
		return err_set(e, MSCE_ECONFIG, "config %s is not a regular file",
			       path);
	}
	if (st.st_mode & 022) {
		close(fd);
		return err_set(e, MSCE_EPERM,
			       "config %s has mode %04o, so group or others may "
			       "change it (and so who is admin); fix with: "
			       "chmod go-w %s",
			       path, (unsigned)(st.st_mode & 07777), path);
	}
	buf = malloc(CONFIG_FILE_MAX + 1);
	if (buf == NULL) {
		close(fd);
		return err_set(e, MSCE_ENOMEM, "%s: out of memory", path);
	}
	for (;;) {
		ssize_t r = read(fd, buf + n, CONFIG_FILE_MAX + 1 - n);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			rc = err_set(e, MSCE_EIO, "cannot read config %s: %s",
				     path, strerror(errno));
			goto out;
		}
		if (r == 0 || (n += (size_t)r) > CONFIG_FILE_MAX)
			break;
	}
	if (n > CONFIG_FILE_MAX) {
		rc = err_set(e, MSCE_ECONFIG,
			     "%s: config file is over %u bytes", path,
			     CONFIG_FILE_MAX);
		goto out;
	}
	buf[n] = '\0';
	if (strlen(buf) != n) {
		rc = err_set(e, MSCE_ECONFIG,
			     "%s: config file contains a NUL byte (is it "
			     "text?)",
			     path);
		goto out;
	}
	rc = config_parse_string(buf, path, out, e);
out:
	free(buf);
	close(fd);
	return rc;
}

void config_free(struct config *c)
{
	if (c == NULL)
		return;
	free(c->peers);
	free(c->clients);
	memset(c, 0, sizeof *c);
}

const struct config_peer *config_peer_by_key(const struct config *c,
					     const uint8_t key[32])
{
	for (size_t i = 0; i < c->npeers; i++)
		if (memcmp(c->peers[i].public_key, key, 32) == 0)
			return &c->peers[i];
	return NULL;
}

const struct config_client *config_client_by_key(const struct config *c,
						 const uint8_t key[32])
{
	for (size_t i = 0; i < c->nclients; i++)
		if (memcmp(c->clients[i].public_key, key, 32) == 0)
			return &c->clients[i];
	return NULL;
}

const struct config_peer *config_peer_by_id(const struct config *c,
					    uint32_t id)
{
	for (size_t i = 0; i < c->npeers; i++)
		if (c->peers[i].id == id)
			return &c->peers[i];
	return NULL;
}

const char *config_role_name(int role)
{
	switch (role) {
	case CONFIG_ROLE_RO:
		return "ro";
	case CONFIG_ROLE_RW:
		return "rw";
	case CONFIG_ROLE_ADMIN:
		return "admin";
	default:
		return "?";
	}
}

/* A name for one directory: no slash, not "." or "..". */
static int plain_name(const char *s)
{
	return s[0] != '\0' && strchr(s, '/') == NULL && strcmp(s, ".") != 0 &&
	       strcmp(s, "..") != 0;
}

int config_backup_path(const struct config *cfg, const char *requested,
		       int remote, char *out, size_t cap, struct err *e)
{
	char dir[PATH_MAX], real_dir[PATH_MAX], parent[PATH_MAX];
	char real_parent[PATH_MAX], base[PATH_MAX];
	size_t len = strlen(requested);
	int n;

	if (len == 0 || len >= sizeof(dir))
		return err_set(e, MSCE_EINVAL, "backup path is empty or too "
					       "long");
	if (requested[0] == '/' && !remote) {
		if (snprintf(out, cap, "%s", requested) >= (int)cap)
			return err_set(e, MSCE_EINVAL,
				       "backup path is too long");
		return 0;
	}
	if (cfg->backup_dir[0] == '\0')
		return err_set(e, MSCE_EPERM,
			       remote ? "backup over TCP is off: set [node] "
					"backup_dir to the directory backups "
					"may go to"
				      : "backup path must be absolute (or set "
					"[node] backup_dir for names)");
	if (!realpath(cfg->backup_dir, real_dir))
		return err_set(e, MSCE_EPERM, "backup_dir %s: %s",
			       cfg->backup_dir, strerror(errno));
	if (requested[0] != '/') {
		if (!plain_name(requested))
			return err_set(e, MSCE_EPERM,
				       "backup name \"%s\" must be one "
				       "directory name (no /, not . or ..)",
				       requested);
		n = snprintf(out, cap, "%s/%s", real_dir, requested);
		if (n < 0 || (size_t)n >= cap)
			return err_set(e, MSCE_EINVAL,
				       "backup path is too long");
		return 0;
	}
	/* Absolute over TCP: the parent, symlinks resolved, must be
	 * backup_dir itself, and the last part a new name. */
	while (len > 1 && requested[len - 1] == '/')
		len--;
	memcpy(dir, requested, len);
	dir[len] = '\0';
	snprintf(parent, sizeof(parent), "%s", dir);
	snprintf(base, sizeof(base), "%s", basename(dir));
	if (!plain_name(base) || !realpath(dirname(parent), real_parent) ||
	    strcmp(real_parent, real_dir) != 0)
		return err_set(e, MSCE_EPERM,
			       "backup path %s is not directly under backup_dir "
			       "%s",
			       requested, cfg->backup_dir);
	n = snprintf(out, cap, "%s/%s", real_dir, base);
	if (n < 0 || (size_t)n >= cap)
		return err_set(e, MSCE_EINVAL, "backup path is too long");
	return 0;
}

int config_backup_partial(const char *path, char *out, size_t cap)
{
	size_t len = strlen(path), base;
	int n;

	while (len > 1 && path[len - 1] == '/')
		len--;
	base = len;
	while (base > 0 && path[base - 1] != '/')
		base--;
	n = snprintf(out, cap, "%.*s.%.*s.partial", (int)base, path,
		     (int)(len - base), path + base);
	return n < 0 || (size_t)n >= cap || base == len ? -1 : 0;
}
