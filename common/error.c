/* SPDX-License-Identifier: Apache-2.0 */
/* Error codes, names and messages, generated from the MSCE_ERRORS table. */
#include "error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const char *const err_msgs[] = {
#define X(name, msg) msg,
	MSCE_ERRORS(X)
#undef X
};

static const char *const err_names[] = {
#define X(name, msg) #name,
	MSCE_ERRORS(X)
#undef X
};

const char *err_str(int code)
{
	if (code < 0 || code >= MSCE_NERRORS)
		return "unknown error";
	return err_msgs[code];
}

const char *err_name(int code)
{
	if (code < 0 || code >= MSCE_NERRORS)
		return "EUNKNOWN";
	return err_names[code];
}

int err_set(struct err *e, int code, const char *fmt, ...)
{
	va_list ap;

	if (e == NULL)
		return code;
	e->code = code;
	va_start(ap, fmt);
	vsnprintf(e->msg, sizeof e->msg, fmt, ap);
	va_end(ap);
	return code;
}

void err_wrap(struct err *e, const char *fmt, ...)
{
	char ctx[ERR_MSG_MAX];
	char out[2 * ERR_MSG_MAX + 2];
	const char *tail;
	va_list ap;

	if (e == NULL)
		return;
	va_start(ap, fmt);
	vsnprintf(ctx, sizeof ctx, fmt, ap);
	va_end(ap);
	tail = e->msg[0] != '\0' ? e->msg : err_str(e->code);
	/* Built in a buffer big enough for both, then cut to size. */
	size_t n = strlen(ctx), t = strlen(tail);
	memcpy(out, ctx, n);
	memcpy(out + n, ": ", 2);
	memcpy(out + n + 2, tail, t + 1);
	memcpy(e->msg, out, ERR_MSG_MAX - 1);
	e->msg[ERR_MSG_MAX - 1] = '\0';
}

void err_clear(struct err *e)
{
	if (e == NULL)
		return;
	e->code = 0;
	e->msg[0] = '\0';
}
