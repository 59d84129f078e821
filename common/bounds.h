/* SPDX-License-Identifier: Apache-2.0 */
/* Bounded lengths: the public limits (msce_limits.h, installed with
 * msce.h). Every name and value that enters the system is checked against
 * these before it is stored or allocated for. */
#ifndef MSCE_BOUNDS_H
#define MSCE_BOUNDS_H

#include "msce_limits.h"

#endif
