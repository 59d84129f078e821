/* SPDX-License-Identifier: Apache-2.0 */
/* Rate-limited WARN lines: a flood of bad connections must not flood the
 * log. At most per_sec lines a second; then, when the next second starts,
 * one line saying how many were dropped. Time comes from the caller. */
#ifndef MSCE_RATELOG_H
#define MSCE_RATELOG_H

#include <stdint.h>

struct ratelog {
	const char *what; /* "peer links": prefixes the dropped-count line */
	unsigned per_sec;
	uint64_t window_ms;
	unsigned count;
	uint64_t dropped;
};

void ratelog_init(struct ratelog *r, const char *what, unsigned per_sec);
/* Starts a new window once a second has passed, reporting what the last
 * one dropped; call it on a timer too, so a flood's last count shows. */
void ratelog_tick(struct ratelog *r, uint64_t now_ms);
void ratelog_warn(struct ratelog *r, uint64_t now_ms, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#endif
