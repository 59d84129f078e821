/* SPDX-License-Identifier: Apache-2.0 */
/* msce error codes, shared by the node, libmsce and the wire protocol
 * (the numbers travel in responses, so they never change). Installed with
 * msce.h as part of the public API. */
#ifndef MSCE_ERRORS_H
#define MSCE_ERRORS_H

#define MSCE_ERRORS(X)                                                        \
	X(OK, "ok")                                                           \
	X(ENOMEM, "out of memory")                                            \
	X(EINVAL, "invalid argument")                                         \
	X(ETOOBIG, "over a size limit")                                       \
	X(ENOTFOUND, "not found")                                             \
	X(ECORRUPT, "malformed or corrupt data")                              \
	X(EIO, "input/output error")                                          \
	X(EFULL, "disk or map full")                                          \
	X(ECLOCK, "clock too far ahead")                                      \
	X(EMISMATCH, "store belongs to another node or cluster")              \
	X(EREADONLY, "store refuses writes after a failed commit")            \
	X(EPROTO, "protocol violation")                                       \
	X(EVERSION, "unsupported version")                                    \
	X(EPERM, "permission denied")                                         \
	X(ETIMEOUT, "timed out")                                              \
	X(ECLOSED, "closed")                                                  \
	X(EAUTH, "authentication failed")                                     \
	X(EBUSY, "busy, try again")                                           \
	X(EGAP, "change out of order (gap in sequence)")                      \
	X(ECONFIG, "bad configuration")                                       \
	X(EUNAVAIL, "unavailable")

enum msce_error {
#define X(name, msg) MSCE_##name,
	MSCE_ERRORS(X)
#undef X
	MSCE_NERRORS
};

#endif
