/* SPDX-License-Identifier: Apache-2.0 */
/* The headers moved to <msce/msce.h> (with msce_errors.h, msce_limits.h,
 * msce_domain.h and msce_version.h beside it). This one keeps
 * `#include <msce.h>` working; new code includes <msce/msce.h>. */
#ifndef MSCE_COMPAT_H
#define MSCE_COMPAT_H
#include <msce/msce.h>
#endif
