/* SPDX-License-Identifier: Apache-2.0 */
/* Config parser: a full config, defaults, and every kind of mistake an
 * operator makes, each refused with the file, line and setting named. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "keyfile.h"
#include "log.h"

#define K1 "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE="
#define K2 "AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI="
#define K3 "AwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwM="
#define K4 "BAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQ="

/* DESIGN.md's example, completed. Line numbers matter to the tests. */
static const char VALID[] =
	"; Shekou center\n"                        /* 1 */
	"[cluster]\n"                              /* 2 */
	"name = shenzhen-msce\n"                   /* 3 */
	"\n"                                       /* 4 */
	"[node]\n"                                 /* 5 */
	"id = 1\n"                                 /* 6 */
	"name = shekou\n"                          /* 7 */
	"data_dir = /var/lib/msce/shekou\n"        /* 8 */
	"key = /etc/msce/shekou.key\n"             /* 9 */
	"listen = 0.0.0.0:7401\n"                  /* 10 */
	"client_listen = 127.0.0.1:7402\n"         /* 11 */
	"socket = /run/msce/shekou.sock\n"         /* 12 */
	"metrics_listen = 127.0.0.1:9401\n"        /* 13 */
	"\n"                                       /* 14 */
	"[peer shenzhen-bay]\n"                    /* 15 */
	"id = 2\n"                                 /* 16 */
	"address = 10.0.2.10:7401\n"               /* 17 */
	"public_key = " K1 "\n"                    /* 18 */
	"\n"                                       /* 19 */
	"[peer futian]\n"                          /* 20 */
	"id = 3\n"                                 /* 21 */
	"address = [fd00::3]:7401\n"               /* 22 */
	"public_key = " K2 "\n"                    /* 23 */
	"\n"                                       /* 24 */
	"[client frontdesk-1]\n"                   /* 25 */
	"public_key = " K3 "\n"                    /* 26 */
	"role = rw\n"                              /* 27 */
	"\n"                                       /* 28 */
	"[client ops]\n"                           /* 29 */
	"public_key = " K4 "   ; the ops laptop\n" /* 30 */
	"role = admin\n";                          /* 31 */

/* The least a node needs; extra lines start at line 9. */
#define MIN_HEAD                                                              \
	"[cluster]\n"                     /* 1 */                             \
	"name = c1\n"                     /* 2 */                             \
	"[node]\n"                        /* 3 */                             \
	"id = 1\n"                        /* 4 */                             \
	"name = shekou\n"                 /* 5 */                             \
	"data_dir = /tmp/shekou\n"        /* 6 */                             \
	"key = /tmp/shekou.key\n"         /* 7 */                             \
	"listen = 127.0.0.1:7401\n"       /* 8 */

#define PEER_BAY                                                              \
	"[peer bay]\n"                                                        \
	"id = 2\n"                                                            \
	"address = 10.0.2.10:7401\n"                                          \
	"public_key = " K1 "\n"

static void fill(uint8_t k[32], uint8_t b)
{
	memset(k, b, 32);
}

/* Parses text, expects MSCE_ECONFIG and every non-NULL piece in the
 * message. */
static void expect_fail(const char *text, const char *a, const char *b,
			const char *c)
{
	struct config cfg;
	struct err e;
	int rc;

	memset(&cfg, 0xAB, sizeof cfg); /* must be overwritten, not freed */
	rc = config_parse_string(text, "node.conf", &cfg, &e);
	if (rc != MSCE_ECONFIG)
		fail_msg("want ECONFIG, got %d (%s)\n--- text:\n%s", rc, e.msg,
			 text);
	const char *want[] = {a, b, c};
	for (int i = 0; i < 3; i++)
		if (want[i] && strstr(e.msg, want[i]) == NULL)
			fail_msg("message \"%s\" lacks \"%s\"", e.msg, want[i]);
	assert_null(cfg.peers);
	assert_int_equal(cfg.npeers, 0);
	config_free(&cfg);
}

static void test_valid_full(void **state)
{
	struct config cfg;
	struct err e;
	uint8_t k[32];

	(void)state;
	assert_int_equal(config_parse_string(VALID, "node.conf", &cfg, &e), 0);
	assert_string_equal(cfg.cluster, "shenzhen-msce");
	assert_int_equal(cfg.node_id, 1);
	assert_string_equal(cfg.node_name, "shekou");
	assert_string_equal(cfg.data_dir, "/var/lib/msce/shekou");
	assert_string_equal(cfg.key_path, "/etc/msce/shekou.key");
	assert_string_equal(cfg.listen, "0.0.0.0:7401");
	assert_string_equal(cfg.client_listen, "127.0.0.1:7402");
	assert_string_equal(cfg.socket_path, "/run/msce/shekou.sock");
	assert_string_equal(cfg.metrics_listen, "127.0.0.1:9401");
	assert_int_equal(cfg.max_clock_skew_ms, 60000);
	assert_int_equal(cfg.log_retention, 1000000);
	assert_int_equal(cfg.log_level, LOG_INFO);
	assert_int_equal(cfg.fsync, 1);

	assert_int_equal(cfg.npeers, 2);
	assert_string_equal(cfg.peers[0].name, "shenzhen-bay");
	assert_int_equal(cfg.peers[0].id, 2);
	assert_string_equal(cfg.peers[0].address, "10.0.2.10:7401");
	fill(k, 1);
	assert_memory_equal(cfg.peers[0].public_key, k, 32);
	assert_string_equal(cfg.peers[1].name, "futian");
	assert_int_equal(cfg.peers[1].id, 3);
	assert_string_equal(cfg.peers[1].address, "[fd00::3]:7401");
	fill(k, 2);
	assert_memory_equal(cfg.peers[1].public_key, k, 32);

	assert_int_equal(cfg.nclients, 2);
	assert_string_equal(cfg.clients[0].name, "frontdesk-1");
	assert_int_equal(cfg.clients[0].role, CONFIG_ROLE_RW);
	fill(k, 3);
	assert_memory_equal(cfg.clients[0].public_key, k, 32);
	assert_string_equal(cfg.clients[1].name, "ops");
	assert_int_equal(cfg.clients[1].role, CONFIG_ROLE_ADMIN);
	fill(k, 4);
	assert_memory_equal(cfg.clients[1].public_key, k, 32);
	assert_string_equal(config_role_name(cfg.clients[1].role), "admin");

	config_free(&cfg);
	assert_null(cfg.peers);
	config_free(&cfg); /* twice is harmless */
}

static void test_lookups(void **state)
{
	struct config cfg;
	struct err e;
	uint8_t k[32];

	(void)state;
	assert_int_equal(config_parse_string(VALID, "node.conf", &cfg, &e), 0);
	fill(k, 2);
	assert_string_equal(config_peer_by_key(&cfg, k)->name, "futian");
	assert_null(config_client_by_key(&cfg, k));
	fill(k, 3);
	assert_string_equal(config_client_by_key(&cfg, k)->name,
			    "frontdesk-1");
	assert_null(config_peer_by_key(&cfg, k));
	fill(k, 9);
	assert_null(config_peer_by_key(&cfg, k));
	assert_null(config_client_by_key(&cfg, k));
	assert_string_equal(config_peer_by_id(&cfg, 2)->name, "shenzhen-bay");
	assert_null(config_peer_by_id(&cfg, 1)); /* ourselves */
	assert_null(config_peer_by_id(&cfg, 4));
	config_free(&cfg);
}

static void test_defaults_and_node_settings(void **state)
{
	struct config cfg;
	struct err e;

	(void)state;
	assert_int_equal(config_parse_string(MIN_HEAD, "n", &cfg, &e), 0);
	assert_string_equal(cfg.client_listen, "");
	assert_string_equal(cfg.socket_path, "");
	assert_string_equal(cfg.metrics_listen, "");
	assert_int_equal(cfg.max_clock_skew_ms, 60000);
	assert_int_equal(cfg.log_retention, 1000000);
	assert_int_equal(cfg.log_level, LOG_INFO);
	assert_int_equal(cfg.fsync, 1);
	assert_int_equal(cfg.npeers, 0);
	assert_int_equal(cfg.nclients, 0);
	config_free(&cfg);

	assert_int_equal(config_parse_string(MIN_HEAD
					     "max_clock_skew = 500ms\n"
					     "log_retention = 0\n"
					     "log_level = debug\n"
					     "fsync = false\n"
					     "client_listen =\n"
					     "metrics_listen = [::]:9401\n",
					     "n", &cfg, &e),
			 0);
	assert_int_equal(cfg.max_clock_skew_ms, 500);
	assert_int_equal(cfg.log_retention, 0);
	assert_int_equal(cfg.log_level, LOG_DEBUG);
	assert_int_equal(cfg.fsync, 0);
	assert_string_equal(cfg.client_listen, "");
	assert_string_equal(cfg.metrics_listen, "[::]:9401");
	config_free(&cfg);
}

/* CRLF, a BOM, indentation and comments are all fine; an indented line is
 * a setting of its own, not a continuation of the one before. */
static void test_layout_tolerated(void **state)
{
	struct config cfg;
	struct err e;

	(void)state;
	assert_int_equal(config_parse_string("\xEF\xBB\xBF# comment\r\n"
					     "[cluster]\r\n"
					     "  name = c1\r\n"
					     "[node]   ; mine\r\n"
					     "\tid = 7\r\n"
					     "    name = shekou\r\n"
					     "data_dir = /d\r\n"
					     "key = /k\r\n"
					     "listen = 10.0.0.1:1\r\n"
					     "[ peer  bay ]\r\n"
					     "id=2\r\n"
					     "address = 10.0.2.10:7401\r\n"
					     "public_key = " K1,
					     "n", &cfg, &e),
			 0);
	assert_string_equal(cfg.cluster, "c1");
	assert_int_equal(cfg.node_id, 7);
	assert_string_equal(cfg.node_name, "shekou");
	assert_string_equal(cfg.listen, "10.0.0.1:1");
	assert_int_equal(cfg.npeers, 1);
	assert_string_equal(cfg.peers[0].name, "bay");
	assert_string_equal(cfg.peers[0].address, "10.0.2.10:7401");
	config_free(&cfg);
}

static void test_durations(void **state)
{
	static const struct {
		const char *s;
		uint64_t ms;
	} good[] = {{"60s", 60000}, {"500ms", 500}, {"2m", 120000},
		    {"90", 90000},  {"1h", 3600000}, {"0", 0}};
	static const char *const bad[] = {"",   "s",    "5x",  "1.5s", "-1s",
					  "1 s", "10sec", "ms5", "99999999999999999999s"};
	uint64_t ms;
	struct err e;

	(void)state;
	for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
		assert_int_equal(config_parse_duration_ms(good[i].s, &ms, &e),
				 0);
		assert_int_equal(ms, good[i].ms);
	}
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		if (config_parse_duration_ms(bad[i], &ms, &e) != MSCE_EINVAL)
			fail_msg("duration \"%s\" accepted", bad[i]);
		assert_non_null(strstr(e.msg, "not a duration"));
	}
}

static void test_parse_addr(void **state)
{
	static const struct {
		const char *s, *host;
		int port;
	} good[] = {{"1.2.3.4:7401", "1.2.3.4", 7401},
		    {"[::1]:7401", "::1", 7401},
		    {"localhost:7401", "localhost", 7401},
		    {"0.0.0.0:1", "0.0.0.0", 1},
		    {"[fd00::3]:65535", "fd00::3", 65535},
		    {"db-1.example.org:80", "db-1.example.org", 80}};
	static const char *const bad[] = {
		"",           "1.2.3.4",       ":7401",       "1.2.3.4:",
		"1.2.3.4:0",  "1.2.3.4:65536", "1.2.3.4:7x",  "::1:7401",
		"[::1]7401",  "[::1:7401",     "[zz]:7401",   "10.0.2.300:7401",
		"a b:7401",   "-a:7401",       "1.2.3.4:+80", "[]:1",
		"1.2.3.4:000080"};
	char host[64];
	int port;
	struct err e;

	(void)state;
	for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
		if (config_parse_addr(good[i].s, host, sizeof host, &port,
				      &e) != 0)
			fail_msg("\"%s\" refused: %s", good[i].s, e.msg);
		assert_string_equal(host, good[i].host);
		assert_int_equal(port, good[i].port);
	}
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		if (config_parse_addr(bad[i], host, sizeof host, &port, &e) !=
		    MSCE_EINVAL)
			fail_msg("address \"%s\" accepted", bad[i]);
	/* The host must fit the caller's buffer. */
	assert_int_equal(config_parse_addr("localhost:1", host, 5, &port, &e),
			 MSCE_EINVAL);
}

static void test_load_file(void **state)
{
	char dir[] = "/tmp/msce-test-config-XXXXXX";
	char path[128];
	struct config cfg;
	struct err e;
	FILE *f;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof path, "%s/node.conf", dir);

	assert_int_equal(config_load(path, &cfg, &e), MSCE_ENOTFOUND);
	assert_non_null(strstr(e.msg, path));

	f = fopen(path, "w");
	assert_non_null(f);
	fputs(VALID, f);
	fclose(f);
	assert_int_equal(config_load(path, &cfg, &e), 0);
	assert_string_equal(cfg.node_name, "shekou");
	assert_int_equal(cfg.npeers, 2);
	config_free(&cfg);

	/* Errors name the path as given. */
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(MIN_HEAD "fsync = maybe\n", f);
	fclose(f);
	assert_int_equal(config_load(path, &cfg, &e), MSCE_ECONFIG);
	char want[160];
	snprintf(want, sizeof want, "%s:9: [node] fsync: \"maybe\"", path);
	assert_non_null(strstr(e.msg, want));

	/* A binary file is not a config. */
	f = fopen(path, "w");
	assert_non_null(f);
	fwrite("[cluster]\0\n", 1, 11, f);
	fclose(f);
	assert_int_equal(config_load(path, &cfg, &e), MSCE_ECONFIG);
	assert_non_null(strstr(e.msg, "NUL"));

	assert_int_equal(unlink(path), 0);
	assert_int_equal(rmdir(dir), 0);
}

/* The handshake and client limits: defaults, each setting, and what does
 * not make sense together. */
static void test_limits(void **state)
{
	struct config cfg;
	struct err e;
	uint64_t b;

	(void)state;
	assert_int_equal(config_parse_string(MIN_HEAD, "n.conf", &cfg, &e), 0);
	assert_int_equal(cfg.max_pending_handshakes, 64);
	assert_int_equal(cfg.max_pending_per_address, 8);
	assert_int_equal(cfg.handshake_timeout_ms, 5000);
	assert_int_equal(cfg.client_idle_timeout_ms, 300000);
	assert_int_equal(cfg.client_max_connections_per_key, 32);
	assert_int_equal(cfg.client_max_partial_bytes, 4u << 20);
	assert_int_equal(cfg.client_max_partial_total, 64u << 20);
	assert_string_equal(cfg.backup_dir, "");
	config_free(&cfg);

	assert_int_equal(
	    config_parse_string(MIN_HEAD "max_pending_handshakes = 200\n"
					 "max_pending_per_address = 4\n"
					 "handshake_timeout = 2s\n"
					 "client_idle_timeout = 10m\n"
					 "client_max_connections_per_key = 3\n"
					 "client_max_partial_bytes = 1MiB\n"
					 "client_max_partial_total = 10M\n"
					 "backup_dir = /srv/msce-backups\n",
				"n.conf", &cfg, &e),
	    0);
	assert_int_equal(cfg.max_pending_handshakes, 200);
	assert_int_equal(cfg.max_pending_per_address, 4);
	assert_int_equal(cfg.handshake_timeout_ms, 2000);
	assert_int_equal(cfg.client_idle_timeout_ms, 600000);
	assert_int_equal(cfg.client_max_connections_per_key, 3);
	assert_int_equal(cfg.client_max_partial_bytes, 1u << 20);
	assert_int_equal(cfg.client_max_partial_total, 10u << 20);
	assert_string_equal(cfg.backup_dir, "/srv/msce-backups");
	config_free(&cfg);

	assert_int_equal(config_parse_size("512KiB", &b, &e), 0);
	assert_int_equal(b, 512u << 10);
	assert_int_equal(config_parse_size("3G", &b, &e), 0);
	assert_int_equal(b, UINT64_C(3) << 30);
	assert_int_equal(config_parse_size("77", &b, &e), 0);
	assert_int_equal(b, 77);
	assert_int_equal(config_parse_size("4 MiB", &b, &e), MSCE_EINVAL);
	assert_int_equal(config_parse_size("4MB", &b, &e), MSCE_EINVAL);
	assert_int_equal(config_parse_size("MiB", &b, &e), MSCE_EINVAL);

	expect_fail(MIN_HEAD "max_pending_handshakes = 0\n",
		    "node.conf:9: [node] max_pending_handshakes", "\"0\"",
		    NULL);
	expect_fail(MIN_HEAD "max_pending_handshakes = 4\n"
			     "max_pending_per_address = 5\n",
		    "node.conf:10: [node] max_pending_per_address",
		    "more than max_pending_handshakes", NULL);
	expect_fail(MIN_HEAD "client_max_partial_bytes = 8MiB\n",
		    "node.conf:9: [node] client_max_partial_bytes", "outside",
		    NULL);
	expect_fail(MIN_HEAD "client_max_partial_bytes = 2MiB\n"
			     "client_max_partial_total = 1MiB\n",
		    "node.conf:10: [node] client_max_partial_total",
		    "not even one request", NULL);
	expect_fail(MIN_HEAD "client_max_partial_total = lots\n",
		    "node.conf:9: [node] client_max_partial_total",
		    "not a size", NULL);
	expect_fail(MIN_HEAD "client_idle_timeout = 10ms\n",
		    "node.conf:9: [node] client_idle_timeout", "too short",
		    NULL);
	expect_fail(MIN_HEAD "backup_dir = backups\n",
		    "node.conf:9: [node] backup_dir", "absolute", NULL);
	/* The master key never lives in the data directory it opens. */
	expect_fail(MIN_HEAD "master_key = /tmp/shekou/master.key\n",
		    "node.conf:9: [node] master_key", "inside data_dir", NULL);
	expect_fail(MIN_HEAD "master_key = /tmp/shekou\n",
		    "node.conf:9: [node] master_key", "inside data_dir", NULL);
}

static void test_master_key(void **state)
{
	struct config cfg;
	struct err e;

	(void)state;
	assert_int_equal(config_parse_string(MIN_HEAD, "node.conf", &cfg, &e),
			 0);
	assert_string_equal(cfg.master_key_path, "");
	config_free(&cfg);
	assert_int_equal(config_parse_string(MIN_HEAD "master_key = "
						      "/tmp/shekou-master.key\n",
					     "node.conf", &cfg, &e),
			 0);
	assert_string_equal(cfg.master_key_path, "/tmp/shekou-master.key");
	config_free(&cfg);
}

/* Low-order points are refused as peer and client keys, whatever their
 * encoding. */
static void test_err_low_order_key(void **state)
{
	(void)state;
	expect_fail(MIN_HEAD "[peer bay]\nid = 2\naddress = 10.0.0.2:7401\n"
			     "public_key = "
			     "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n",
		    "node.conf:12: [peer bay] public_key", "low-order", NULL);
	expect_fail(MIN_HEAD "[client desk]\npublic_key = "
			     "AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n",
		    "node.conf:10: [client desk] public_key", "low-order",
		    NULL);
	/* p - 1, and an order-8 point with bit 255 set. */
	expect_fail(MIN_HEAD "[client desk]\npublic_key = "
			     "7P///////////////////////////////////////38=\n",
		    "low-order", NULL, NULL);
	expect_fail(MIN_HEAD "[client desk]\npublic_key = "
			     "4Ot6fDtBuK4WVuP68Z/EatoJjeucMrH9hmIFFl9JuIA=\n",
		    "low-order", NULL, NULL);
}

/* The file decides who is admin: refused when others may change it. */
static void test_load_refuses_unsafe_files(void **state)
{
	char dir[] = "/tmp/msce-test-config-XXXXXX";
	char path[128], link[128];
	struct config cfg;
	struct err e;
	FILE *f;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof path, "%s/node.conf", dir);
	snprintf(link, sizeof link, "%s/link.conf", dir);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(VALID, f);
	fclose(f);
	assert_int_equal(chmod(path, 0640), 0);
	assert_int_equal(config_load(path, &cfg, &e), 0);
	config_free(&cfg);
	static const mode_t bad[] = {0660, 0666, 0602, 0620};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		assert_int_equal(chmod(path, bad[i]), 0);
		assert_int_equal(config_load(path, &cfg, &e), MSCE_EPERM);
		assert_non_null(strstr(e.msg, "chmod go-w"));
		assert_null(cfg.peers);
	}
	assert_int_equal(chmod(path, 0600), 0);
	assert_int_equal(symlink(path, link), 0);
	assert_int_equal(config_load(link, &cfg, &e), MSCE_EPERM);
	assert_non_null(strstr(e.msg, "symbolic link"));
	/* Not a regular file. */
	assert_int_equal(config_load(dir, &cfg, &e), MSCE_ECONFIG);
	assert_int_equal(unlink(link), 0);
	assert_int_equal(unlink(path), 0);
	assert_int_equal(rmdir(dir), 0);
}

/* Backups over TCP go only directly under backup_dir. */
static void test_backup_path(void **state)
{
	char dir[] = "/tmp/msce-test-backup-XXXXXX";
	char other[] = "/tmp/msce-test-other-XXXXXX";
	char out[512], want[512], req[512], ln[512];
	struct config cfg;
	struct err e;

	(void)state;
	assert_int_equal(config_parse_string(MIN_HEAD, "n.conf", &cfg, &e), 0);
	/* Without backup_dir: local absolute only, TCP never. */
	assert_int_equal(config_backup_path(&cfg, "/var/b1", 0, out, sizeof out,
					    &e),
			 0);
	assert_string_equal(out, "/var/b1");
	assert_int_equal(config_backup_path(&cfg, "/var/b1", 1, out, sizeof out,
					    &e),
			 MSCE_EPERM);
	assert_non_null(strstr(e.msg, "backup_dir"));
	assert_int_equal(config_backup_path(&cfg, "b1", 0, out, sizeof out, &e),
			 MSCE_EPERM);

	assert_non_null(mkdtemp(dir));
	assert_non_null(mkdtemp(other));
	snprintf(cfg.backup_dir, sizeof cfg.backup_dir, "%s", dir);
	snprintf(want, sizeof want, "%s/nightly-1", dir);
	assert_int_equal(config_backup_path(&cfg, "nightly-1", 1, out,
					    sizeof out, &e),
			 0);
	assert_string_equal(out, want);
	assert_int_equal(config_backup_path(&cfg, want, 1, out, sizeof out, &e),
			 0);
	assert_string_equal(out, want);
	snprintf(req, sizeof req, "%s/nightly-1/", dir);
	assert_int_equal(config_backup_path(&cfg, req, 1, out, sizeof out, &e),
			 0);
	assert_string_equal(out, want);
	/* Outside, above, below, through a link out: refused. */
	static const char *const names[] = {"..", ".", "a/b", "../x", ""};
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
		assert_true(config_backup_path(&cfg, names[i], 1, out,
					       sizeof out, &e) != 0);
	assert_int_equal(config_backup_path(&cfg, "/etc/cron.d", 1, out,
					    sizeof out, &e),
			 MSCE_EPERM);
	snprintf(req, sizeof req, "%s/../x", dir);
	assert_int_equal(config_backup_path(&cfg, req, 1, out, sizeof out, &e),
			 MSCE_EPERM);
	snprintf(req, sizeof req, "%s/sub/x", dir);
	assert_int_equal(config_backup_path(&cfg, req, 1, out, sizeof out, &e),
			 MSCE_EPERM);
	snprintf(ln, sizeof ln, "%s/out", dir);
	assert_int_equal(symlink(other, ln), 0);
	snprintf(req, sizeof req, "%s/out/x", dir);
	assert_int_equal(config_backup_path(&cfg, req, 1, out, sizeof out, &e),
			 MSCE_EPERM);
	/* The local socket may still write anywhere absolute. */
	assert_int_equal(config_backup_path(&cfg, req, 0, out, sizeof out, &e),
			 0);
	assert_string_equal(out, req);
	assert_int_equal(unlink(ln), 0);
	assert_int_equal(rmdir(dir), 0);
	assert_int_equal(rmdir(other), 0);
	config_free(&cfg);
}

/* ---- each kind of mistake ---- */

static void test_err_missing_required(void **state)
{
	(void)state;
	expect_fail("[cluster]\nname = c\n"
		    "[node]\n"
		    "id = 1\nname = shekou\nkey = /k\nlisten = 1.2.3.4:1\n",
		    "node.conf:3: [node] data_dir: required setting is missing",
		    NULL, NULL);
	expect_fail(MIN_HEAD "[peer bay]\nid = 2\npublic_key = " K1 "\n",
		    "node.conf:9: [peer bay] address: required", NULL, NULL);
	expect_fail(MIN_HEAD "[client desk]\npublic_key = " K1 "\n",
		    "node.conf:9: [client desk] role: required", NULL, NULL);
	expect_fail(MIN_HEAD "[client desk]\nrole = ro\n",
		    "node.conf:9: [client desk] public_key: required", NULL,
		    NULL);
	expect_fail("[cluster]\nname = c\n", "node.conf", "[node]",
		    "missing (it needs: id, name, data_dir, key, listen)");
	expect_fail("[node]\nid = 1\n", "node.conf", "[cluster]",
		    "missing");
	expect_fail("", "node.conf", "[cluster]", "missing");
	expect_fail(MIN_HEAD "data_dir =\n", "node.conf:", "data_dir",
		    "set twice");
	expect_fail("[cluster]\nname = c\n[node]\nid = 1\nname = shekou\n"
		    "data_dir =\n",
		    "node.conf:6: [node] data_dir: must not be empty", NULL,
		    NULL);
}

static void test_err_bad_number(void **state)
{
	(void)state;
	expect_fail("[cluster]\nname = c\n[node]\nid = abc\n",
		    "node.conf:4: [node] id: \"abc\" is not a node id "
		    "(1..65535)",
		    NULL, NULL);
	expect_fail("[cluster]\nname = c\n[node]\nid = 0\n", "node.conf:4:",
		    "[node] id", "\"0\"");
	expect_fail("[cluster]\nname = c\n[node]\nid = 65536\n",
		    "node.conf:4:", "[node] id", "\"65536\"");
	expect_fail("[cluster]\nname = c\n[node]\nid = -1\n", "node.conf:4:",
		    "[node] id", NULL);
	expect_fail("[cluster]\nname = c\n[node]\nid = 1x\n", "node.conf:4:",
		    "[node] id", NULL);
	expect_fail(MIN_HEAD "log_retention = lots\n",
		    "node.conf:9: [node] log_retention: \"lots\"", NULL, NULL);
	expect_fail(MIN_HEAD "log_retention = 99999999999999999999999\n",
		    "node.conf:9: [node] log_retention", NULL, NULL);
	expect_fail(MIN_HEAD "[peer bay]\nid = two\n",
		    "node.conf:10: [peer bay] id: \"two\" is not a node id",
		    NULL, NULL);
}

static void test_err_bad_address(void **state)
{
	(void)state;
	expect_fail("[cluster]\nname = c\n[node]\nlisten = 10.0.2.10\n",
		    "node.conf:4: [node] listen: \"10.0.2.10\" has no port",
		    NULL, NULL);
	expect_fail(MIN_HEAD "client_listen = 127.0.0.1:99999\n",
		    "node.conf:9: [node] client_listen", "99999", NULL);
	expect_fail(MIN_HEAD "metrics_listen = ::1:9401\n",
		    "node.conf:9: [node] metrics_listen", "brackets", NULL);
	expect_fail(MIN_HEAD "[peer bay]\naddress = 10.0.2.300:7401\n",
		    "node.conf:10: [peer bay] address", "10.0.2.300", NULL);
	expect_fail(MIN_HEAD "[peer bay]\naddress =\n",
		    "node.conf:10: [peer bay] address", NULL, NULL);
	/* Host names: msced resolves none; refused at their line. */
	expect_fail("[cluster]\nname = c\n[node]\nlisten = h.example:7401\n",
		    "node.conf:4: [node] listen: \"h.example:7401\": not an "
		    "IP address",
		    NULL, NULL);
	expect_fail(MIN_HEAD "client_listen = desk-host:7402\n",
		    "node.conf:9: [node] client_listen", "not an IP", NULL);
	expect_fail(MIN_HEAD "[peer bay]\naddress = bay.example:7401\n",
		    "node.conf:10: [peer bay] address", "not an IP", NULL);
}

static void test_err_bad_key(void **state)
{
	(void)state;
	expect_fail(MIN_HEAD "[peer bay]\nid = 2\npublic_key = not*base64\n",
		    "node.conf:11: [peer bay] public_key: \"not*base64\"",
		    "base64", NULL);
	/* 31 and 33 bytes */
	expect_fail(MIN_HEAD "[peer bay]\npublic_key = "
			     "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==\n",
		    "node.conf:10: [peer bay] public_key", "31 bytes", NULL);
	expect_fail(MIN_HEAD "[client desk]\npublic_key = "
			     "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8g\n",
		    "node.conf:10: [client desk] public_key", "33 bytes",
		    NULL);
	/* Missing padding is not the standard encoding we write. */
	expect_fail(MIN_HEAD "[peer bay]\npublic_key = "
			     "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE\n",
		    "node.conf:10: [peer bay] public_key", NULL, NULL);
}

static void test_err_unknown_key(void **state)
{
	(void)state;
	expect_fail(MIN_HEAD "lisen = 1.2.3.4:5\n",
		    "node.conf:9: [node] lisen: unknown setting",
		    "known: id, name", NULL);
	expect_fail(MIN_HEAD PEER_BAY "role = rw\n",
		    "node.conf:13: [peer bay] role: unknown setting", NULL,
		    NULL);
	expect_fail("name = c\n", "node.conf:1: name: setting outside a "
				  "section",
		    NULL, NULL);
}

/* [node] old_sign_key: the node's own earlier signing keys, a list like a
 * peer's sign_key; the unknown-setting message lists it with every other
 * [node] setting, the last ones included. */
static void test_old_sign_key(void **state)
{
	struct config cfg;
	struct err e;
	uint8_t k[32];

	(void)state;
	assert_int_equal(config_parse_string(MIN_HEAD "old_sign_key = " K1
						      ", " K2 "\n",
					     "node.conf", &cfg, &e),
			 0);
	assert_int_equal(cfg.nold_sign_keys, 2);
	fill(k, 1);
	assert_memory_equal(cfg.old_sign_keys[0], k, 32);
	fill(k, 2);
	assert_memory_equal(cfg.old_sign_keys[1], k, 32);
	config_free(&cfg);
	assert_int_equal(config_parse_string(MIN_HEAD "old_sign_key = " K1
						      "," K2 "," K3 "," K4 "\n",
					     "node.conf", &cfg, &e),
			 0);
	assert_int_equal(cfg.nold_sign_keys, 4);
	config_free(&cfg);
	assert_int_equal(config_parse_string(MIN_HEAD, "node.conf", &cfg, &e),
			 0);
	assert_int_equal(cfg.nold_sign_keys, 0);
	config_free(&cfg);
	expect_fail(MIN_HEAD "old_sign_key = " K1 ", nope\n",
		    "node.conf:9: [node] old_sign_key", NULL, NULL);
	expect_fail(MIN_HEAD "old_sign_key = ,\n",
		    "node.conf:9: [node] old_sign_key", "no key given", NULL);
	expect_fail(MIN_HEAD "old_sign_keys = " K1 "\n", "unknown setting",
		    "backup_dir, old_sign_key)", NULL);
}

/* Appends lines "name = KEY, KEY, ..." of up to per keys each, so that
 * none passes 199 characters, with keys first..first+n-1 (key i is 32
 * bytes of i; "retired" gets ID:KEY with id i). buf ends with a newline
 * before and after. */
static void key_lines(char *buf, size_t cap, const char *name, int first,
		      int n, int per)
{
	int retired = strcmp(name, "retired") == 0;
	uint8_t k[32];
	char b64[64], id[16];

	for (int i = 0; i < n; i++) {
		size_t used = strlen(buf);

		fill(k, (uint8_t)(first + i));
		key_to_base64(k, b64);
		snprintf(id, sizeof id, "%d:", first + i);
		if (i % per)
			snprintf(buf + used, cap - used, ", %s%s",
				 retired ? id : "", b64);
		else
			snprintf(buf + used, cap - used, "%s%s = %s%s",
				 i ? "\n" : "", name, retired ? id : "", b64);
	}
	strncat(buf, "\n", cap - strlen(buf) - 1);
}

/* The lists of keys ([cluster] retired, [peer] sign_key, [node]
 * old_sign_key) may span lines: a line holds four keys at most (libinih
 * reads 199 characters), and a center's keys pile up over the years.
 * Each line adds to the list, in order; a key given again counts once;
 * the limits count every line; any other setting is still set once. */
static void test_key_lists_span_lines(void **state)
{
	struct config cfg;
	struct err e;
	char text[16384];
	uint8_t k[32];
	const char *node = "[node]\nid = 1\nname = shekou\ndata_dir = /d\n"
			   "key = /k\nlisten = 1.2.3.4:5\n";

	(void)state;
	assert_int_equal(
	    config_parse_string("[cluster]\nname = c1\n"
				"retired = 7:" K1 ", 8:" K2 "\n"
				"retired = 9:" K3 "\n"
				"[node]\nid = 1\nname = shekou\n"
				"data_dir = /d\nkey = /k\nlisten = 1.2.3.4:5\n"
				"old_sign_key = " K4 "\n"
				"old_sign_key = " K3 ", " K2 "\n"
				"[peer bay]\nid = 2\naddress = 10.0.2.10:7401\n"
				"public_key = " K1 "\n"
				"sign_key = " K1 ", " K2 "\n"
				"sign_key = " K3 "\n"
				"sign_key = " K2 ", " K4 "   ; repeated: once\n",
				"node.conf", &cfg, &e),
	    0);
	assert_int_equal(cfg.nretired, 3);
	assert_int_equal(cfg.retired[0].id, 7);
	assert_int_equal(cfg.retired[2].id, 9);
	fill(k, 3);
	assert_memory_equal(cfg.retired[2].sign_key, k, 32);
	assert_int_equal(cfg.nold_sign_keys, 3);
	fill(k, 4);
	assert_memory_equal(cfg.old_sign_keys[0], k, 32);
	fill(k, 2);
	assert_memory_equal(cfg.old_sign_keys[2], k, 32);
	assert_int_equal(cfg.npeers, 1);
	assert_int_equal(cfg.peers[0].nsign_keys, 4);
	for (int i = 0; i < 4; i++) {
		fill(k, (uint8_t)(i + 1));
		assert_memory_equal(cfg.peers[0].sign_keys[i], k, 32);
	}
	config_free(&cfg);

	/* Up to the limits, then one more refused on its line. */
	snprintf(text, sizeof text, MIN_HEAD PEER_BAY);
	key_lines(text, sizeof text, "sign_key", 1, CONFIG_MAX_SIGN_KEYS, 4);
	assert_int_equal(config_parse_string(text, "node.conf", &cfg, &e), 0);
	assert_int_equal(cfg.peers[0].nsign_keys, CONFIG_MAX_SIGN_KEYS);
	fill(k, CONFIG_MAX_SIGN_KEYS);
	assert_memory_equal(cfg.peers[0].sign_keys[CONFIG_MAX_SIGN_KEYS - 1],
			    k, 32);
	config_free(&cfg);
	strcat(text, "sign_key = " K1 "\n"); /* again: counts once */
	assert_int_equal(config_parse_string(text, "node.conf", &cfg, &e), 0);
	config_free(&cfg);
	key_lines(text, sizeof text, "sign_key", 100, 1, 4);
	expect_fail(text, "[peer bay] sign_key: more than 16 keys over all "
			  "its lines",
		    NULL, NULL);

	snprintf(text, sizeof text, MIN_HEAD);
	key_lines(text, sizeof text, "old_sign_key", 1, CONFIG_MAX_SIGN_KEYS,
		  3);
	assert_int_equal(config_parse_string(text, "node.conf", &cfg, &e), 0);
	assert_int_equal(cfg.nold_sign_keys, CONFIG_MAX_SIGN_KEYS);
	config_free(&cfg);
	key_lines(text, sizeof text, "old_sign_key", 100, 1, 3);
	expect_fail(text, "[node] old_sign_key: more than 16 keys", NULL,
		    NULL);

	snprintf(text, sizeof text, "[cluster]\nname = c1\n");
	key_lines(text, sizeof text, "retired", 2, CONFIG_MAX_RETIRED, 3);
	strcat(text, node);
	assert_int_equal(config_parse_string(text, "node.conf", &cfg, &e), 0);
	assert_int_equal(cfg.nretired, CONFIG_MAX_RETIRED);
	assert_int_equal(cfg.retired[CONFIG_MAX_RETIRED - 1].id,
			 CONFIG_MAX_RETIRED + 1);
	config_free(&cfg);
	snprintf(text, sizeof text, "[cluster]\nname = c1\n");
	key_lines(text, sizeof text, "retired", 2, CONFIG_MAX_RETIRED + 1,
		  3);
	strcat(text, node);
	expect_fail(text, "node.conf:24: [cluster] retired: more than 64 "
			  "retired signing keys over all its lines",
		    NULL, NULL);

	/* Each line still names a key, and the other settings are set
	 * once, in any section. */
	expect_fail(MIN_HEAD "old_sign_key = " K1 "\nold_sign_key =\n",
		    "node.conf:10: [node] old_sign_key: no key given", NULL,
		    NULL);
	expect_fail(MIN_HEAD PEER_BAY "sign_key = " K1 "\nsign_key = " K2
				      ", nope\n",
		    "node.conf:14: [peer bay] sign_key: \"nope\"", NULL, NULL);
	expect_fail(MIN_HEAD PEER_BAY "public_key = " K2 "\n",
		    "node.conf:13: [peer bay] public_key: set twice (first on "
		    "line 12)",
		    NULL, NULL);
	expect_fail("[cluster]\nname = c1\nretired = 7:" K1 "\nname = c2\n",
		    "node.conf:4: [cluster] name: set twice (first on line 2)",
		    NULL, NULL);
	expect_fail(MIN_HEAD "[client desk]\nrole = ro\nrole = rw\n",
		    "node.conf:11: [client desk] role: set twice", NULL, NULL);
}

/* libinih reads 199 characters a line (200 with the NUL): a longer line
 * is refused, not cut, lists included. */
static void test_line_length_limit(void **state)
{
	struct config cfg;
	struct err e;
	char text[1024];
	/* "old_sign_key = " and four keys: 15 + 4 * 44 + 3 * 2 = 197. */
	const char *four = "old_sign_key = " K1 ", " K2 ", " K3 ", " K4;

	(void)state;
	assert_int_equal(strlen(four), 197);
	snprintf(text, sizeof text, MIN_HEAD "%s  \n", four); /* 199 */
	assert_int_equal(config_parse_string(text, "node.conf", &cfg, &e), 0);
	assert_int_equal(cfg.nold_sign_keys, 4);
	config_free(&cfg);
	snprintf(text, sizeof text, MIN_HEAD "%s   \n", four); /* 200 */
	expect_fail(text, "node.conf:9: line is too long (at most 199 "
			  "characters)",
		    NULL, NULL);
	snprintf(text, sizeof text, MIN_HEAD "%s, " K1 "\n", four);
	expect_fail(text, "node.conf:9: line is too long", NULL, NULL);
}

static void test_err_unknown_section(void **state)
{
	(void)state;
	expect_fail(MIN_HEAD "[nodes]\n",
		    "node.conf:9: [nodes]: unknown section", NULL, NULL);
	expect_fail(MIN_HEAD "[peers bay]\nid = 2\n",
		    "node.conf:9: [peers bay]: unknown section", NULL, NULL);
	/* An empty unknown section is still an error. */
	expect_fail("[cluster]\nname = c\n[metrics]\n",
		    "node.conf:3: [metrics]: unknown section", NULL, NULL);
	expect_fail(MIN_HEAD "[peer]\n", "node.conf:9: [peer]: needs a name",
		    NULL, NULL);
	expect_fail(MIN_HEAD "[node extra]\n", "node.conf:9: [node extra]",
		    "takes no name", NULL);
	expect_fail(MIN_HEAD "[peer bay\n", "node.conf:9:", "without ']'",
		    NULL);
	expect_fail(MIN_HEAD "[peer bay] id = 2\n", "node.conf:9:",
		    "after section header", NULL);
}

static void test_err_duplicates(void **state)
{
	(void)state;
	expect_fail(MIN_HEAD "listen = 1.2.3.4:5\n",
		    "node.conf:9: [node] listen: set twice (first on line 8)",
		    NULL, NULL);
	expect_fail(MIN_HEAD "[cluster]\n",
		    "node.conf:9: [cluster]: section appears twice (first on "
		    "line 1)",
		    NULL, NULL);
	expect_fail(MIN_HEAD PEER_BAY "[peer bay]\n",
		    "node.conf:13: [peer bay]: section appears twice (first "
		    "on line 9)",
		    NULL, NULL);
	/* Same key for two peers, a peer and a client, two clients. */
	expect_fail(MIN_HEAD PEER_BAY "[peer futian]\nid = 3\n"
				      "address = 10.0.4.10:1\npublic_key = " K1 "\n",
		    "node.conf:16: [peer futian] public_key: same key as "
		    "[peer bay] (line 12)",
		    NULL, NULL);
	expect_fail(MIN_HEAD PEER_BAY "[client desk]\nrole = ro\n"
				      "public_key = " K1 "\n",
		    "node.conf:15: [client desk] public_key: same key as "
		    "[peer bay] (line 12)",
		    NULL, NULL);
	expect_fail(MIN_HEAD "[client a]\nrole = ro\npublic_key = " K2 "\n"
			     "[client b]\nrole = ro\npublic_key = " K2 "\n",
		    "node.conf:14: [client b] public_key: same key as "
		    "[client a] (line 11)",
		    NULL, NULL);
}

static void test_err_same_address(void **state)
{
	(void)state;
	expect_fail(MIN_HEAD "client_listen = 127.0.0.1:7401\n",
		    "node.conf:9: [node] client_listen: 127.0.0.1:7401 is "
		    "already used by listen (line 8)",
		    NULL, NULL);
	expect_fail(MIN_HEAD "metrics_listen = 127.0.0.1:7401\n",
		    "node.conf:9: [node] metrics_listen", "listen (line 8)",
		    NULL);
	expect_fail(MIN_HEAD PEER_BAY "[peer futian]\nid = 3\n"
				      "address = 10.0.2.10:7401\n"
				      "public_key = " K2 "\n",
		    "node.conf:15: [peer futian] address: 10.0.2.10:7401 is "
		    "already the address of [peer bay] (line 11)",
		    NULL, NULL);
}

static void test_err_duplicate_peer_id(void **state)
{
	(void)state;
	expect_fail(MIN_HEAD PEER_BAY "[peer futian]\nid = 2\n"
				      "address = 10.0.4.10:1\npublic_key = " K2 "\n",
		    "node.conf:14: [peer futian] id: 2 is already the id of "
		    "[peer bay] (line 10)",
		    NULL, NULL);
}

static void test_err_own_id_as_peer(void **state)
{
	(void)state;
	expect_fail(MIN_HEAD "[peer bay]\nid = 1\naddress = 10.0.2.10:1\n"
			     "public_key = " K1 "\n",
		    "node.conf:10: [peer bay] id: 1 is this node's own id "
		    "([node] id on line 4)",
		    NULL, NULL);
	/* The order of sections does not matter. */
	expect_fail("[peer bay]\nid = 1\naddress = 10.0.2.10:1\npublic_key = " K1 "\n"
		    "[cluster]\nname = c\n[node]\nid = 1\nname = shekou\n"
		    "data_dir = /d\nkey = /k\nlisten = 1.2.3.4:5\n",
		    "node.conf:2: [peer bay] id: 1 is this node's own id "
		    "([node] id on line 8)",
		    NULL, NULL);
	expect_fail(MIN_HEAD "[peer shekou]\nid = 2\naddress = 10.0.2.10:1\n"
			     "public_key = " K1 "\n",
		    "node.conf:9: [peer shekou]", "own name", NULL);
}

static void test_err_bad_role(void **state)
{
	(void)state;
	expect_fail(MIN_HEAD "[client desk]\npublic_key = " K3 "\n"
			     "role = root\n",
		    "node.conf:11: [client desk] role: \"root\" is not a role "
		    "(ro, rw or admin)",
		    NULL, NULL);
	expect_fail(MIN_HEAD "[client desk]\nrole = RW\n",
		    "node.conf:10: [client desk] role", NULL, NULL);
}

static void test_err_bad_duration(void **state)
{
	(void)state;
	expect_fail(MIN_HEAD "max_clock_skew = 5 minutes\n",
		    "node.conf:9: [node] max_clock_skew: \"5 minutes\" is not "
		    "a duration",
		    NULL, NULL);
	expect_fail(MIN_HEAD "max_clock_skew = 0s\n",
		    "node.conf:9: [node] max_clock_skew", "more than zero",
		    NULL);
}

static void test_err_bad_names_and_values(void **state)
{
	char longline[600];

	(void)state;
	expect_fail("[cluster]\nname = shenzhen msce\n",
		    "node.conf:2: [cluster] name: \"shenzhen msce\"", NULL,
		    NULL);
	expect_fail("[cluster]\nname = c\n[node]\nname = Shekou\n",
		    "node.conf:4: [node] name: \"Shekou\" is not a node name",
		    NULL, NULL);
	expect_fail("[cluster]\nname = c\n[node]\nname = -x\n",
		    "node.conf:4: [node] name", NULL, NULL);
	expect_fail(MIN_HEAD "[peer Bay]\n", "node.conf:9: [peer Bay]",
		    "not a peer name", NULL);
	expect_fail(MIN_HEAD "[client desk_1]\n", "node.conf:9:",
		    "not a client name", NULL);
	expect_fail(MIN_HEAD "log_level = verbose\n",
		    "node.conf:9: [node] log_level: \"verbose\"", NULL, NULL);
	expect_fail(MIN_HEAD "socket = /run/msce/aaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
			     "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
			     "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.sock\n",
		    "node.conf:9: [node] socket", "unix socket path", NULL);

	/* Syntax: a line that is not a setting, a line too long for inih's
	 * buffer (refused, not cut in two). */
	expect_fail(MIN_HEAD "fsync\n", "node.conf:9:", "not a setting",
		    NULL);
	snprintf(longline, sizeof longline, "%s%s%0300d\n", MIN_HEAD,
		 "data_dir = /", 0);
	expect_fail(longline, "node.conf:9:", "too long", NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_valid_full),
		cmocka_unit_test(test_lookups),
		cmocka_unit_test(test_defaults_and_node_settings),
		cmocka_unit_test(test_layout_tolerated),
		cmocka_unit_test(test_durations),
		cmocka_unit_test(test_parse_addr),
		cmocka_unit_test(test_load_file),
		cmocka_unit_test(test_limits),
		cmocka_unit_test(test_err_low_order_key),
		cmocka_unit_test(test_load_refuses_unsafe_files),
		cmocka_unit_test(test_backup_path),
		cmocka_unit_test(test_err_missing_required),
		cmocka_unit_test(test_err_bad_number),
		cmocka_unit_test(test_err_bad_address),
		cmocka_unit_test(test_err_bad_key),
		cmocka_unit_test(test_err_unknown_key),
		cmocka_unit_test(test_old_sign_key),
		cmocka_unit_test(test_key_lists_span_lines),
		cmocka_unit_test(test_line_length_limit),
		cmocka_unit_test(test_err_unknown_section),
		cmocka_unit_test(test_err_duplicates),
		cmocka_unit_test(test_err_same_address),
		cmocka_unit_test(test_err_duplicate_peer_id),
		cmocka_unit_test(test_err_own_id_as_peer),
		cmocka_unit_test(test_err_bad_role),
		cmocka_unit_test(test_err_bad_duration),
		cmocka_unit_test(test_err_bad_names_and_values),
		cmocka_unit_test(test_master_key),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
