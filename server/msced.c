/* SPDX-License-Identifier: Apache-2.0 */
/* msced: one msce node. `msced -c CONFIG [--log-file PATH]`.
 *
 * Runs in the foreground and logs to stderr (with syslog priorities when
 * stderr is the journal), or appends to --log-file. Under systemd
 * (Type=notify) it says when it is ready, reloading and stopping, pings
 * the watchdog from its loop, and keeps a status line with the links and
 * any catch-up. Signals:
 *   SIGTERM, SIGINT  commit what is in flight, close the links, exit 0
 *   SIGHUP           reopen the log file, reload the config (reload.c:
 *                    what can change while running; the log names what
 *                    needs a restart) */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>

#include <sodium.h>
#include <uv.h>

#include "catchup.h"
#include "log.h"
#include "msce_version.h"
#include "node.h"
#include "reload.h"
#include "systemd.h"
#include "version.h"

#define SERVICE_TICK_MS 1000 /* catch-up log and status line; watchdog */

static struct node *node;
static const char *config_path;
static uv_signal_t sigterm, sigint, sighup;
static uv_timer_t service;
static struct catchup catchup;
static char last_status[256];

static void stopped(void *arg)
{
	(void)arg;
	node = NULL;
	uv_close((uv_handle_t *)&sigterm, NULL);
	uv_close((uv_handle_t *)&sigint, NULL);
	uv_close((uv_handle_t *)&sighup, NULL);
	uv_close((uv_handle_t *)&service, NULL);
}

static void on_signal(uv_signal_t *s, int signum)
{
	(void)s;
	log_info("signal %d: shutting down", signum);
	if (node != NULL) {
		systemd_stopping();
		node_stop(node, stopped, NULL);
	}
}

static void on_hup(uv_signal_t *s, int signum)
{
	struct reload_result res;

	(void)s;
	(void)signum;
	if (node == NULL)
		return;
	systemd_reloading();
	if (log_reopen() != 0)
		log_error("reload: cannot reopen the log file: %s",
			  strerror(errno));
	log_info("SIGHUP: reloading %s", config_path);
	node_reload(node, config_path, &res);
	systemd_ready(last_status[0] ? last_status : "running");
}

/* The watchdog is pinged from the loop: a stuck loop stops the pings. */
static void on_service(uv_timer_t *t)
{
	char status[256];
	uint64_t now = node_now_ms();

	(void)t;
	if (node == NULL)
		return;
	systemd_watchdog_ping();
	catchup_tick(&catchup, node, now, status, sizeof status);
	if (strcmp(status, last_status) != 0) {
		systemd_status(status);
		snprintf(last_status, sizeof last_status, "%s", status);
	}
}

static void usage(FILE *f)
{
	fprintf(f, "usage: msced -c CONFIG [--log-file PATH]\n"
		   "       msced -c CONFIG --rotate-master-key NEWFILE\n"
		   "       msced --version | --help\n"
		   "Runs one msce node (center) from its configuration.\n"
		   "  -c, --config FILE   the node's config (msced.conf(5))\n"
		   "  -l, --log-file PATH append the log to PATH (reopened "
		   "on SIGHUP)\n"
		   "                      instead of stderr\n"
		   "      --rotate-master-key NEWFILE\n"
		   "                      with msced stopped: re-wrap the "
		   "store's data keys\n"
		   "                      under NEWFILE (msce keygen --master), "
		   "then exit;\n"
		   "                      point master_key at NEWFILE before "
		   "the next start\n"
		   "  -h, --help          this help\n"
		   "  -V, --version       the version and protocol versions\n"
		   "Signals: TERM/INT stop cleanly; HUP reopens the log and "
		   "reloads the config\n"
		   "(peer addresses, client roles, log_level; the log names "
		   "what needs a restart).\n");
}

int main(int argc, char **argv)
{
	const char *log_file = NULL, *rotate_to = NULL;
	struct rlimit nocore = {0, 0};
	uv_loop_t *loop = uv_default_loop();
	uint64_t tick;
	struct err e;
	int c;

	static const struct option longopts[] = {
	    {"config", required_argument, NULL, 'c'},
	    {"log-file", required_argument, NULL, 'l'},
	    {"help", no_argument, NULL, 'h'},
	    {"version", no_argument, NULL, 'V'},
	    {"rotate-master-key", required_argument, NULL, 'R'},
	    {NULL, 0, NULL, 0}};
	while ((c = getopt_long(argc, argv, "c:l:hV", longopts, NULL)) != -1) {
		switch (c) {
		case 'c':
			config_path = optarg;
			break;
		case 'l':
			log_file = optarg;
			break;
		case 'R':
			rotate_to = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			printf("msced %s (peer protocol %d, channel %d)\n",
			       MSCE_VERSION, MSCE_PROTOCOL_VERSION,
			       MSCE_CHANNEL_VERSION);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (config_path == NULL || optind != argc) {
		usage(stderr);
		return 2;
	}
	log_detect_journal();
	if (log_file != NULL && log_open_file(log_file) != 0) {
		fprintf(stderr, "msced: cannot open log file %s: %s\n",
			log_file, strerror(errno));
		return 1;
	}
	/* Keys live in this process's memory: no core dumps of it. */
	setrlimit(RLIMIT_CORE, &nocore);
	prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
	signal(SIGPIPE, SIG_IGN);
	if (sodium_init() < 0) {
		log_error("libsodium failed to initialise");
		return 1;
	}
	err_clear(&e);
	if (rotate_to != NULL) {
		size_t n = 0;
		if (node_rotate_master_key(config_path, rotate_to, &n, &e)) {
			log_error("%s", e.msg);
			return 1;
		}
		log_info("master key rotated: %zu data keys re-wrapped under "
			 "%s; before starting msced, move it to the path "
			 "master_key names (or set master_key = %s), and "
			 "destroy the old key once no backup needs it",
			 n, rotate_to, rotate_to);
		return 0;
	}
	if (node_start(loop, config_path, &node, &e) != 0) {
		log_error("%s", e.msg);
		return 1;
	}
	uv_signal_init(loop, &sigterm);
	uv_signal_init(loop, &sigint);
	uv_signal_init(loop, &sighup);
	uv_signal_start(&sigterm, on_signal, SIGTERM);
	uv_signal_start(&sigint, on_signal, SIGINT);
	uv_signal_start(&sighup, on_hup, SIGHUP);
	tick = systemd_watchdog_interval_ms();
	if (tick == 0 || tick > SERVICE_TICK_MS)
		tick = SERVICE_TICK_MS;
	uv_timer_init(loop, &service);
	uv_timer_start(&service, on_service, tick, tick);
	catchup_tick(&catchup, node, node_now_ms(), last_status,
		     sizeof last_status);
	systemd_ready(last_status);
	uv_run(loop, UV_RUN_DEFAULT);
	uv_loop_close(loop);
	log_info("stopped");
	return 0;
}
