/* libmsce over the node's unix socket: 4-byte big-endian length, then an
 * encoded msce.ClientRequest; the response is framed the same way. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "client_internal.h"
#include "config.h"
#include "error.h"

#define MAX_RESPONSE (64u << 20)

struct msce_client {
	int fd;
	uint64_t next_id;
	char msg[512];
};

static int fail(msce_client *c, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int fail(msce_client *c, int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(c->msg, sizeof c->msg, fmt, ap);
	va_end(ap);
	return code;
}

const char *msce_strerror(int code) { return err_str(code); }
const char *msce_errmsg(const msce_client *c) { return c->msg; }
const char *msce_version(void) { return "0.1.0"; }

int msce_connect_unix(const char *path, msce_client **out)
{
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	msce_client *c;

	*out = NULL;
	c = calloc(1, sizeof *c);
	if (c == NULL)
		return MSCE_ENOMEM;
	c->next_id = 1;
	if (strlen(path) >= sizeof a.sun_path) {
		c->fd = -1;
		*out = c;
		return fail(c, MSCE_EINVAL, "socket path too long: %s", path);
	}
	strcpy(a.sun_path, path);
	c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	*out = c;
	if (c->fd < 0 || connect(c->fd, (struct sockaddr *)&a, sizeof a) != 0)
		return fail(c, MSCE_EUNAVAIL, "cannot reach node at %s: %s",
			    path, strerror(errno));
	return 0;
}

int msce_connect_config(const char *config_path, msce_client **out)
{
	struct config cfg;
	struct err e;
	int rc;

	*out = NULL;
	if ((rc = config_load(config_path, &cfg, &e)) != 0) {
		msce_client *c = calloc(1, sizeof *c);
		if (c == NULL)
			return MSCE_ENOMEM;
		c->fd = -1;
		*out = c;
		return fail(c, rc, "%s", e.msg);
	}
	if (cfg.socket_path[0] == '\0') {
		msce_client *c = calloc(1, sizeof *c);
		config_free(&cfg);
		if (c == NULL)
			return MSCE_ENOMEM;
		c->fd = -1;
		*out = c;
		return fail(c, MSCE_ECONFIG, "%s: [node] socket is not set",
			    config_path);
	}
	rc = msce_connect_unix(cfg.socket_path, out);
	config_free(&cfg);
	return rc;
}

void msce_close(msce_client *c)
{
	if (c == NULL)
		return;
	if (c->fd >= 0)
		close(c->fd);
	free(c);
}

static int write_all(int fd, const uint8_t *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static int read_all(int fd, uint8_t *p, size_t n)
{
	while (n > 0) {
		ssize_t r = read(fd, p, n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		p += r;
		n -= (size_t)r;
	}
	return 0;
}

int msce_call(msce_client *c, Msce__ClientRequest *req,
	      Msce__ClientResponse **resp)
{
	size_t n;
	uint8_t *buf, hdr[4];
	uint32_t len;

	*resp = NULL;
	if (c->fd < 0)
		return fail(c, MSCE_ECLOSED, "not connected");
	req->id = c->next_id++;
	n = msce__client_request__get_packed_size(req);
	buf = malloc(4 + n);
	if (buf == NULL)
		return fail(c, MSCE_ENOMEM, "out of memory");
	buf[0] = (uint8_t)(n >> 24);
	buf[1] = (uint8_t)(n >> 16);
	buf[2] = (uint8_t)(n >> 8);
	buf[3] = (uint8_t)n;
	msce__client_request__pack(req, buf + 4);
	if (write_all(c->fd, buf, 4 + n) != 0) {
		free(buf);
		return fail(c, MSCE_ECLOSED, "node closed the connection");
	}
	free(buf);
	for (;;) {
		if (read_all(c->fd, hdr, 4) != 0)
			return fail(c, MSCE_ECLOSED,
				    "node closed the connection");
		len = (uint32_t)hdr[0] << 24 | (uint32_t)hdr[1] << 16 |
		      (uint32_t)hdr[2] << 8 | hdr[3];
		if (len > MAX_RESPONSE)
			return fail(c, MSCE_EPROTO, "response of %u bytes", len);
		buf = malloc(len ? len : 1);
		if (buf == NULL)
			return fail(c, MSCE_ENOMEM, "out of memory");
		if (read_all(c->fd, buf, len) != 0) {
			free(buf);
			return fail(c, MSCE_ECLOSED,
				    "node closed the connection");
		}
		*resp = msce__client_response__unpack(NULL, len, buf);
		free(buf);
		if (*resp == NULL)
			return fail(c, MSCE_EPROTO, "malformed response");
		if ((*resp)->id == req->id || (*resp)->id == 0)
			break;
		/* A response to an earlier, abandoned request. */
		msce__client_response__free_unpacked(*resp, NULL);
		*resp = NULL;
	}
	if ((*resp)->code != 0)
		fail(c, (int)(*resp)->code, "%s", (*resp)->error);
	else
		c->msg[0] = '\0';
	return 0;
}

static int write_call(msce_client *c, Msce__PutRequest *p,
		      struct msce_write_result *res)
{
	Msce__ClientRequest req = MSCE__CLIENT_REQUEST__INIT;
	Msce__ClientResponse *r;
	int rc;

	req.op_case = MSCE__CLIENT_REQUEST__OP_PUT;
	req.put = p;
	if ((rc = msce_call(c, &req, &r)) != 0)
		return rc;
	rc = (int)r->code;
	if (rc == 0 && res != NULL && r->result_case ==
					      MSCE__CLIENT_RESPONSE__RESULT_PUT) {
		res->origin = r->put->origin;
		res->seq = r->put->seq;
		res->hlc = r->put->hlc;
	}
	msce__client_response__free_unpacked(r, NULL);
	return rc;
}

int msce_put(msce_client *c, const char *collection, const char *key,
	     const struct msce_field *fields, size_t n,
	     struct msce_write_result *res)
{
	Msce__PutRequest p = MSCE__PUT_REQUEST__INIT;
	Msce__FieldIn *fs = calloc(n ? n : 1, sizeof *fs);
	Msce__FieldIn **fp = calloc(n ? n : 1, sizeof *fp);
	int rc;

	if (fs == NULL || fp == NULL) {
		free(fs);
		free(fp);
		return fail(c, MSCE_ENOMEM, "out of memory");
	}
	for (size_t i = 0; i < n; i++) {
		msce__field_in__init(&fs[i]);
		fs[i].name = (char *)fields[i].name;
		fs[i].value.data = (uint8_t *)fields[i].value;
		fs[i].value.len = fields[i].value_len;
		fp[i] = &fs[i];
	}
	p.collection = (char *)collection;
	p.key = (char *)key;
	p.n_fields = n;
	p.fields = fp;
	rc = write_call(c, &p, res);
	free(fs);
	free(fp);
	return rc;
}

int msce_delete(msce_client *c, const char *collection, const char *key,
		struct msce_write_result *res)
{
	Msce__PutRequest p = MSCE__PUT_REQUEST__INIT;
	p.collection = (char *)collection;
	p.key = (char *)key;
	p.delete_ = 1;
	return write_call(c, &p, res);
}

int msce_put_batch(msce_client *c, const struct msce_put *puts, size_t n,
		   struct msce_write_result *res, int *codes)
{
	Msce__ClientRequest req = MSCE__CLIENT_REQUEST__INIT;
	Msce__BatchPutRequest b = MSCE__BATCH_PUT_REQUEST__INIT;
	Msce__PutRequest *ps = calloc(n ? n : 1, sizeof *ps);
	Msce__PutRequest **pp = calloc(n ? n : 1, sizeof *pp);
	size_t nf = 0, k = 0;
	Msce__FieldIn *fs, **fp;
	Msce__ClientResponse *r;
	int rc;

	for (size_t i = 0; i < n; i++)
		nf += puts[i].nfields;
	fs = calloc(nf ? nf : 1, sizeof *fs);
	fp = calloc(nf ? nf : 1, sizeof *fp);
	if (ps == NULL || pp == NULL || fs == NULL || fp == NULL) {
		rc = fail(c, MSCE_ENOMEM, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		msce__put_request__init(&ps[i]);
		ps[i].collection = (char *)puts[i].collection;
		ps[i].key = (char *)puts[i].key;
		ps[i].delete_ = puts[i].is_delete;
		ps[i].fields = fp + k;
		ps[i].n_fields = puts[i].is_delete ? 0 : puts[i].nfields;
		for (size_t j = 0; j < ps[i].n_fields; j++, k++) {
			msce__field_in__init(&fs[k]);
			fs[k].name = (char *)puts[i].fields[j].name;
			fs[k].value.data = (uint8_t *)puts[i].fields[j].value;
			fs[k].value.len = puts[i].fields[j].value_len;
			fp[k] = &fs[k];
		}
		pp[i] = &ps[i];
	}
	b.n_puts = n;
	b.puts = pp;
	req.op_case = MSCE__CLIENT_REQUEST__OP_BATCH;
	req.batch = &b;
	if ((rc = msce_call(c, &req, &r)) != 0)
		goto out;
	rc = (int)r->code;
	if (rc == 0 && (r->result_case != MSCE__CLIENT_RESPONSE__RESULT_BATCH ||
			r->batch->n_results != n)) {
		rc = fail(c, MSCE_EPROTO, "batch answer does not match");
	} else if (rc == 0) {
		for (size_t i = 0; i < n; i++) {
			const Msce__ClientResponse *it = r->batch->results[i];
			if (codes)
				codes[i] = (int)it->code;
			if (res && it->result_case ==
					   MSCE__CLIENT_RESPONSE__RESULT_PUT) {
				res[i].origin = it->put->origin;
				res[i].seq = it->put->seq;
				res[i].hlc = it->put->hlc;
			}
		}
	}
	msce__client_response__free_unpacked(r, NULL);
out:
	free(ps);
	free(pp);
	free(fs);
	free(fp);
	return rc;
}
