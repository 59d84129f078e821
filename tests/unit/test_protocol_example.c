/* SPDX-License-Identifier: Apache-2.0 */
/* docs/PROTOCOL.md's worked example, checked against the code: the request
 * and reply bytes decode to what the document says they are (and the
 * protobuf-c encoder makes the same bytes), and over TCP they travel as
 * the frames shown there, in the session of the Noise known-answer test
 * (same keys, same handshake; tests/unit/test_channel.c checks that
 * part). The node's answer to the request is checked live by
 * tests/cluster/test_frontend.py. The hex is read from the document
 * itself, so the two cannot drift apart. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

#include "channel.h"
#include "client.pb-c.h"
#include "error.h"

#define T0 UINT64_C(1767225600000) /* the known-answer test's timestamp */
#define CLUSTER "shenzhen-msce"

struct bytes {
	uint8_t data[4096];
	size_t len;
};

/* The hex of the block "# worked example: NAME" in docs/PROTOCOL.md:
 * every line up to the closing fence, each without its # comment. */
static void example(const char *name, struct bytes *out)
{
	char path[4096], marker[128], *doc, *p, *end;
	FILE *f;
	long n;

	snprintf(path, sizeof path, "%s/docs/PROTOCOL.md", MSCE_SOURCE_DIR);
	assert_non_null(f = fopen(path, "rb"));
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	doc = malloc((size_t)n + 1);
	assert_int_equal(fread(doc, 1, (size_t)n, f), (size_t)n);
	doc[n] = '\0';
	fclose(f);
	snprintf(marker, sizeof marker, "# worked example: %s\n", name);
	p = strstr(doc, marker);
	if (p == NULL)
		fail_msg("docs/PROTOCOL.md has no block \"%s\"", marker);
	p += strlen(marker);
	end = strstr(p, "```");
	assert_non_null(end);
	out->len = 0;
	while (p < end) {
		char *eol = memchr(p, '\n', (size_t)(end - p));
		char *stop = eol ? eol : end;
		char *hash = memchr(p, '#', (size_t)(stop - p));
		if (hash)
			stop = hash;
		for (; p < stop; p++) {
			if (*p == ' ')
				continue;
			unsigned v;
			assert_true(sscanf(p, "%2x", &v) == 1);
			assert_true(out->len < sizeof out->data);
			out->data[out->len++] = (uint8_t)v;
			p++;
		}
		p = eol ? eol + 1 : end;
	}
	free(doc);
}

static void test_message_bytes(void **state)
{
	struct bytes req, rep;
	uint8_t buf[256];
	(void)state;

	example("request", &req);
	example("reply", &rep);

	/* The request: id 7, get registration DEU:C01X00T47 ... */
	Msce__ClientRequest *q =
		msce__client_request__unpack(NULL, req.len, req.data);
	assert_non_null(q);
	assert_int_equal(q->id, 7);
	assert_int_equal(q->op_case, MSCE__CLIENT_REQUEST__OP_GET);
	assert_string_equal(q->get->collection, "registration");
	assert_string_equal(q->get->key, "DEU:C01X00T47");
	assert_int_equal(q->get->n_fields, 0);
	/* ... which is how protobuf-c writes it too. */
	assert_int_equal(msce__client_request__get_packed_size(q), req.len);
	msce__client_request__pack(q, buf);
	assert_memory_equal(buf, req.data, req.len);
	msce__client_request__free_unpacked(q, NULL);

	/* The reply: same id, ENOTFOUND, a message, no result. */
	Msce__ClientResponse *r =
		msce__client_response__unpack(NULL, rep.len, rep.data);
	assert_non_null(r);
	assert_int_equal(r->id, 7);
	assert_int_equal(r->code, MSCE_ENOTFOUND);
	assert_string_equal(r->error, "registration/DEU:C01X00T47 not found");
	assert_int_equal(r->result_case, MSCE__CLIENT_RESPONSE__RESULT__NOT_SET);
	assert_int_equal(msce__client_response__get_packed_size(r), rep.len);
	msce__client_response__pack(r, buf);
	assert_memory_equal(buf, rep.data, rep.len);
	msce__client_response__free_unpacked(r, NULL);
}

struct side {
	struct channel ch;
	struct channel_buf out;
	struct bytes got;
};

static int on_message(void *ctx, const uint8_t *msg, size_t len)
{
	struct side *s = ctx;
	assert_true(len <= sizeof s->got.data);
	memcpy(s->got.data, msg, len);
	s->got.len = len;
	return 0;
}

static int on_verify(void *ctx, const uint8_t key[NOISE_KEY_LEN],
		     uint64_t timestamp_ms)
{
	(void)ctx;
	(void)key;
	assert_int_equal(timestamp_ms, T0);
	return 0;
}

static void fill(uint8_t *p, uint8_t first)
{
	for (int i = 0; i < 32; i++)
		p[i] = (uint8_t)(first + i);
}

/* Hands what from produced to to, and empties from's output. */
static void pump(struct side *from, struct side *to)
{
	assert_int_equal(
		channel_feed(&to->ch, from->out.data, from->out.len, &to->out),
		0);
	from->out.len = 0;
}

static void assert_frame(const struct channel_buf *b, const struct bytes *want)
{
	char got[2 * sizeof want->data + 1], exp[2 * sizeof want->data + 1];
	sodium_bin2hex(got, sizeof got, b->data, b->len);
	sodium_bin2hex(exp, sizeof exp, want->data, want->len);
	assert_string_equal(got, exp);
}

static void test_frames_over_tcp(void **state)
{
	uint8_t si[32], sr[32], ei[32], er[32];
	struct noise_keypair ki = {0}, kr = {0};
	struct side i = {0}, r = {0};
	struct channel_config c = {0};
	struct bytes req, rep, req_frame, rep_frame;
	(void)state;

	assert_true(sodium_init() >= 0);
	example("request", &req);
	example("reply", &rep);
	example("request over TCP", &req_frame);
	example("reply over TCP", &rep_frame);
	/* The known-answer test's keys: bytes 0x00.., 0x20.., 0x40.., 0x60.. */
	fill(si, 0x00);
	fill(sr, 0x20);
	fill(ei, 0x40);
	fill(er, 0x60);
	assert_int_equal(noise_keypair_from_private(&ki, si), 0);
	assert_int_equal(noise_keypair_from_private(&kr, sr), 0);

	c.role = NOISE_INITIATOR;
	c.cluster = CLUSTER;
	c.local = &ki;
	c.remote_key = kr.pub;
	c.cb.message = on_message;
	c.cb.ctx = &i;
	c.test_ephemeral = ei;
	assert_int_equal(channel_init(&i.ch, &c, T0), 0);
	memset(&c, 0, sizeof c);
	c.role = NOISE_RESPONDER;
	c.cluster = CLUSTER;
	c.local = &kr;
	c.cb.verify = on_verify;
	c.cb.message = on_message;
	c.cb.ctx = &r;
	c.test_ephemeral = er;
	assert_int_equal(channel_init(&r.ch, &c, T0), 0);

	assert_int_equal(channel_start(&i.ch, &i.out), 0);
	pump(&i, &r); /* message 1 */
	pump(&r, &i); /* message 2 */
	assert_true(channel_is_open(&i.ch) && channel_is_open(&r.ch));
	/* The client confirms the session first (channel 2): an empty
	 * control message, then its request. */
	assert_true(i.out.len > 0);
	pump(&i, &r);

	/* The client's first request: one frame. */
	assert_int_equal(channel_send(&i.ch, req.data, req.len, &i.out), 0);
	if (getenv("MSCE_PRINT_EXAMPLE")) {
		char hex[8192];
		sodium_bin2hex(hex, sizeof hex, i.out.data, i.out.len);
		printf("request over TCP: %s\n", hex);
	}
	assert_frame(&i.out, &req_frame);
	pump(&i, &r);
	assert_int_equal(r.got.len, req.len);
	assert_memory_equal(r.got.data, req.data, req.len);

	/* The node's first message: the reply. */
	assert_int_equal(channel_send(&r.ch, rep.data, rep.len, &r.out), 0);
	if (getenv("MSCE_PRINT_EXAMPLE")) {
		char hex[8192];
		sodium_bin2hex(hex, sizeof hex, r.out.data, r.out.len);
		printf("reply over TCP: %s\n", hex);
	}
	assert_frame(&r.out, &rep_frame);
	pump(&r, &i);
	assert_int_equal(i.got.len, rep.len);
	assert_memory_equal(i.got.data, rep.data, rep.len);

	channel_destroy(&i.ch);
	channel_destroy(&r.ch);
	channel_buf_free(&i.out);
	channel_buf_free(&r.out);
	noise_keypair_destroy(&ki);
	noise_keypair_destroy(&kr);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_message_bytes),
		cmocka_unit_test(test_frames_over_tcp),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
