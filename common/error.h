/* SPDX-License-Identifier: Apache-2.0 */
/* One error enum for all of msce, with a name and a message per code.
 *
 * Functions return 0 (MSCE_OK) or a positive MSCE_E* code. Where a caller
 * needs to know *what* went wrong (which field, which limit), the callee also
 * fills a struct err: a code plus a message, to which each layer prepends its
 * own context with err_wrap() as the error travels up. */
#ifndef MSCE_ERROR_H
#define MSCE_ERROR_H

#include <stddef.h>

#include "msce_errors.h"

/* Static string for a code: "out of memory". Unknown codes are reported. */
const char *err_str(int code);
/* Static symbolic name for a code: "ENOMEM". */
const char *err_name(int code);

#define ERR_MSG_MAX 512

struct err {
	int code;
	char msg[ERR_MSG_MAX];
};

/* Sets code and a formatted message; returns code so callers can
 * `return err_set(e, MSCE_EINVAL, "...")`. e may be NULL. */
int err_set(struct err *e, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Prepends "context: " to the message. e may be NULL. It returns nothing:
 * with e NULL it would have no code to return, and `return err_wrap(...)`
 * turned a failure into success (0) for callers that pass no err. */
void err_wrap(struct err *e, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Clears e (code 0, empty message). */
void err_clear(struct err *e);

#endif
