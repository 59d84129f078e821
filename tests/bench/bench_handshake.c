/* SPDX-License-Identifier: Apache-2.0 */
/* msce-bench handshake: what a hostile message 1 costs the node that
 * answers it.
 *
 * In process, per attempt on the responder's side of the channel
 * (channel_init, channel_feed of one message 1, channel_destroy), for:
 *   junk         random bytes of message 1's frame length;
 *   other node   a real message 1 made for another node's key;
 *   unknown key  a real message 1 for this node from a key it does not
 *                know (whoever knows a node's public key can make one);
 *   accepted     a message 1 it takes, answered with message 2.
 * Then with a real msced: CPU time of the node (utime + stime of its
 * process) per junk connection, over loopback, one connection at a time:
 * accept, read, refuse, close, all included.
 *
 * Only the public channel API is used, so the same file measures an older
 * build for a before/after figure. */
#include <arpa/inet.h>
#include <getopt.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <sodium.h>

#include "bench.h"
#include "channel.h"
#include "error.h"
#include "version.h"

#define CLUSTER "bench"

static int drop(void *ctx, const uint8_t *m, size_t n)
{
	(void)ctx;
	(void)m;
	(void)n;
	return 0;
}

static int refuse_all(void *ctx, const uint8_t *k, uint64_t ts)
{
	(void)ctx;
	(void)k;
	(void)ts;
	return MSCE_EPERM;
}

static int accept_all(void *ctx, const uint8_t *k, uint64_t ts)
{
	(void)ctx;
	(void)k;
	(void)ts;
	return 0;
}

/* Message 1 (framed) from key `from` to a responder with public key to. */
static int make_msg1(const struct noise_keypair *from, const uint8_t *to,
		     struct channel_buf *out)
{
	struct channel ch;
	struct channel_config cc;
	int rc;

	memset(&cc, 0, sizeof cc);
	cc.role = NOISE_INITIATOR;
	cc.cluster = CLUSTER;
	cc.local = from;
	cc.remote_key = to;
	cc.cb.message = drop;
	if ((rc = channel_init(&ch, &cc, bench_wall_ms())) == 0)
		rc = channel_start(&ch, out);
	channel_destroy(&ch);
	return rc;
}

/* Microseconds per attempt of feeding msg to a fresh responder. */
static double per_attempt(const struct noise_keypair *node,
			  const struct channel_buf *msg, int accept, long n)
{
	struct channel_buf out = {0};
	double t0 = bench_now();

	for (long i = 0; i < n; i++) {
		struct channel ch;
		struct channel_config cc;

		memset(&cc, 0, sizeof cc);
		cc.role = NOISE_RESPONDER;
		cc.cluster = CLUSTER;
		cc.local = node;
		cc.cb.verify = accept ? accept_all : refuse_all;
		cc.cb.message = drop;
		if (channel_init(&ch, &cc, bench_wall_ms()) == 0)
			channel_feed(&ch, msg->data, msg->len, &out);
		out.len = 0;
		channel_destroy(&ch);
	}
	channel_buf_free(&out);
	return (bench_now() - t0) * 1e6 / (double)n;
}

/* The node's CPU seconds so far (utime + stime). */
static double cpu_of(pid_t pid)
{
	char path[64], buf[1024], *p;
	unsigned long ut = 0, st = 0;
	FILE *f;

	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	if ((f = fopen(path, "r")) == NULL)
		return -1;
	if (fgets(buf, sizeof buf, f) == NULL) {
		fclose(f);
		return -1;
	}
	fclose(f);
	/* Fields 14 and 15, after the command name in parentheses. */
	if ((p = strrchr(buf, ')')) == NULL ||
	    sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu",
		   &ut, &st) != 2)
		return -1;
	return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static int listen_port(const char *conf)
{
	char line[512];
	int port = 0;
	FILE *f = fopen(conf, "r");

	while (f && fgets(line, sizeof line, f))
		if (sscanf(line, "listen = 127.0.0.1:%d", &port) == 1)
			break;
	if (f)
		fclose(f);
	return port;
}

/* n junk connections, one at a time: connect, send, wait for the close.
 * Returns the wall seconds, or -1. */
static double junk_connections(int port, long n)
{
	uint8_t junk[CHANNEL_FRAME_HDR + CHANNEL_MSG1_LEN], b[64];
	struct sockaddr_in sa;
	double t0 = bench_now();

	memset(&sa, 0, sizeof sa);
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t)port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	for (long i = 0; i < n; i++) {
		int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

		randombytes_buf(junk, sizeof junk);
		junk[0] = CHANNEL_MSG1_LEN >> 8;
		junk[1] = CHANNEL_MSG1_LEN & 0xff;
		if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) ||
		    send(fd, junk, sizeof junk, MSG_NOSIGNAL) !=
			(ssize_t)sizeof junk) {
			if (fd >= 0)
				close(fd);
			return -1;
		}
		while (recv(fd, b, sizeof b, 0) > 0)
			; /* until the node closes */
		close(fd);
	}
	return bench_now() - t0;
}

int bench_handshake(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"attempts", required_argument, NULL, 'a'},
	    {"connections", required_argument, NULL, 'c'},
	    {"json", no_argument, NULL, 'j'},
	    {NULL, 0, NULL, 0}};
	long attempts = 2000, conns = 2000;
	int json = 0, o, rc = 1, port;
	struct noise_keypair node = {0}, other = {0}, stranger = {0};
	struct channel_buf junk = {0}, for_other = {0}, unknown = {0},
			   good = {0};
	struct bcluster c;
	double us_junk, us_other, us_unknown, us_good, cpu0, cpu1, wall;
	cJSON *r;

	while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (o) {
		case 'a':
			attempts = atol(optarg);
			break;
		case 'c':
			conns = atol(optarg);
			break;
		case 'j':
			json = 1;
			break;
		default:
			return 2;
		}
	}
	if (attempts <= 0 || conns <= 0 || sodium_init() < 0)
		return 2;
	if (noise_keypair_generate(&node) || noise_keypair_generate(&other) ||
	    noise_keypair_generate(&stranger))
		goto out;
	/* Junk: message 1's frame, random body. */
	if (make_msg1(&stranger, node.pub, &junk) ||
	    make_msg1(&stranger, other.pub, &for_other) ||
	    make_msg1(&stranger, node.pub, &unknown) ||
	    make_msg1(&stranger, node.pub, &good))
		goto out;
	randombytes_buf(junk.data + CHANNEL_FRAME_HDR, CHANNEL_MSG1_LEN);

	us_junk = per_attempt(&node, &junk, 0, attempts);
	us_other = per_attempt(&node, &for_other, 0, attempts);
	us_unknown = per_attempt(&node, &unknown, 0, attempts);
	us_good = per_attempt(&node, &good, 1, attempts);

	if (bcluster_start(&c, 1, NULL) != 0) {
		bcluster_stop(&c);
		goto out;
	}
	port = listen_port(c.conf[0]);
	cpu0 = cpu_of(c.pid[0]);
	wall = junk_connections(port, conns);
	cpu1 = cpu_of(c.pid[0]);
	bcluster_stop(&c);
	if (port <= 0 || wall < 0 || cpu0 < 0 || cpu1 < 0) {
		fprintf(stderr, "msce-bench handshake: junk connections to the "
				"node failed\n");
		goto out;
	}

	r = cJSON_CreateObject();
	cJSON_AddStringToObject(r, "bench", "handshake");
	cJSON_AddNumberToObject(r, "channel_version", MSCE_CHANNEL_VERSION);
	cJSON_AddNumberToObject(r, "attempts", (double)attempts);
	cJSON_AddNumberToObject(r, "us_per_junk_message1", us_junk);
	cJSON_AddNumberToObject(r, "us_per_message1_for_another_node",
				us_other);
	cJSON_AddNumberToObject(r, "us_per_message1_unknown_key", us_unknown);
	cJSON_AddNumberToObject(r, "us_per_message1_accepted", us_good);
	cJSON_AddNumberToObject(r, "junk_connections", (double)conns);
	cJSON_AddNumberToObject(r, "node_cpu_us_per_junk_connection",
				(cpu1 - cpu0) * 1e6 / (double)conns);
	cJSON_AddNumberToObject(r, "junk_connections_per_s",
				(double)conns / wall);
	bench_report(r, json);
	cJSON_Delete(r);
	rc = 0;
out:
	channel_buf_free(&junk);
	channel_buf_free(&for_other);
	channel_buf_free(&unknown);
	channel_buf_free(&good);
	noise_keypair_destroy(&node);
	noise_keypair_destroy(&other);
	noise_keypair_destroy(&stranger);
	return rc;
}
