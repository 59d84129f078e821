/* SPDX-License-Identifier: Apache-2.0 */
/* Addresses and listening sockets; see uv_addr.h. */
#include "uv_addr.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "config.h"

int addr_parse(const char *s, struct sockaddr_storage *ss, struct err *e)
{
	char host[256];
	int port, rc;

	memset(ss, 0, sizeof(*ss));
	if ((rc = config_parse_addr(s, host, sizeof(host), &port, e)))
		return rc;
	if (strcmp(host, "localhost") == 0)
		snprintf(host, sizeof(host), "127.0.0.1");
	if (uv_ip4_addr(host, port, (struct sockaddr_in *)ss) == 0)
		return 0;
	if (uv_ip6_addr(host, port, (struct sockaddr_in6 *)ss) == 0)
		return 0;
	return err_set(e, MSCE_ECONFIG,
		       "\"%s\": not an IP address (host names are not "
		       "resolved)",
		       s);
}

void addr_format(const struct sockaddr *sa, char *out, size_t cap)
{
	char ip[INET6_ADDRSTRLEN] = "?";

	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
		uv_ip4_name(in, ip, sizeof(ip));
		snprintf(out, cap, "%s:%u", ip, (unsigned)ntohs(in->sin_port));
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 =
		    (const struct sockaddr_in6 *)sa;
		uv_ip6_name(in6, ip, sizeof(ip));
		snprintf(out, cap, "[%s]:%u", ip,
			 (unsigned)ntohs(in6->sin6_port));
	} else {
		snprintf(out, cap, "?");
	}
}

int addr_listen(const char *what, const char *name, const struct sockaddr *sa,
		int backlog, int *out, struct err *e)
{
	socklen_t len = sa->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
						  : sizeof(struct sockaddr_in);
	int one = 1, fd, saved;

	fd = socket(sa->sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return err_set(e, MSCE_EIO, "%s %s: socket: %s", what, name,
			       strerror(errno));
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
	    bind(fd, sa, len) || listen(fd, backlog)) {
		saved = errno;
		close(fd);
		return err_set(e, MSCE_EIO, "%s %s: %s", what, name,
			       strerror(saved));
	}
	*out = fd;
	return 0;
}
