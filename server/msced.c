/* msced: one msce node. `msced -c CONFIG`. Runs in the foreground, logs to
 * stderr, and on SIGTERM or SIGINT commits what is in flight, closes its
 * links and exits 0. */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>

#include <sodium.h>
#include <uv.h>

#include "log.h"
#include "node.h"
#include "msce_version.h"
#include "version.h"

static struct node *node;
static uv_signal_t sigterm, sigint;

static void stopped(void *arg)
{
	(void)arg;
	node = NULL;
	uv_close((uv_handle_t *)&sigterm, NULL);
	uv_close((uv_handle_t *)&sigint, NULL);
}

static void on_signal(uv_signal_t *s, int signum)
{
	(void)s;
	log_info("signal %d: shutting down", signum);
	if (node != NULL)
		node_stop(node, stopped, NULL);
}

static void usage(FILE *f)
{
	fprintf(f, "usage: msced -c CONFIG\n"
		   "       msced --version\n"
		   "Runs one msce node (center) from its configuration.\n");
}

int main(int argc, char **argv)
{
	const char *config = NULL;
	struct rlimit nocore = {0, 0};
	uv_loop_t *loop = uv_default_loop();
	struct err e;
	int c;

	static const struct option longopts[] = {
	    {"config", required_argument, NULL, 'c'},
	    {"help", no_argument, NULL, 'h'},
	    {"version", no_argument, NULL, 'V'},
	    {NULL, 0, NULL, 0}};
	while ((c = getopt_long(argc, argv, "c:h", longopts, NULL)) != -1) {
		switch (c) {
		case 'c':
			config = optarg;
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
	if (config == NULL || optind != argc) {
		usage(stderr);
		return 2;
	}
	/* Keys live in this process's memory: no core dumps of it. */
	setrlimit(RLIMIT_CORE, &nocore);
	prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
	signal(SIGPIPE, SIG_IGN);
	if (sodium_init() < 0) {
		fprintf(stderr, "msced: libsodium failed to initialise\n");
		return 1;
	}
	err_clear(&e);
	if (node_start(loop, config, &node, &e) != 0) {
		log_error("%s", e.msg);
		return 1;
	}
	uv_signal_init(loop, &sigterm);
	uv_signal_init(loop, &sigint);
	uv_signal_start(&sigterm, on_signal, SIGTERM);
	uv_signal_start(&sigint, on_signal, SIGINT);
	uv_run(loop, UV_RUN_DEFAULT);
	uv_loop_close(loop);
	log_info("stopped");
	return 0;
}
