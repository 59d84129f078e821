/* SPDX-License-Identifier: Apache-2.0 */
/* Rate-limited warnings; see ratelog.h. */
#include "ratelog.h"

#include <stdarg.h>
#include <stdio.h>

#include "log.h"

void ratelog_init(struct ratelog *r, const char *what, unsigned per_sec)
{
	r->what = what;
	r->per_sec = per_sec;
	r->window_ms = 0;
	r->count = 0;
	r->dropped = 0;
}

void ratelog_tick(struct ratelog *r, uint64_t now_ms)
{
	if (now_ms - r->window_ms < 1000)
		return;
	if (r->dropped)
		log_warn("%s: %llu more warnings suppressed", r->what,
			 (unsigned long long)r->dropped);
	r->window_ms = now_ms;
	r->count = 0;
	r->dropped = 0;
}

void ratelog_warn(struct ratelog *r, uint64_t now_ms, const char *fmt, ...)
{
	char text[512];
	va_list ap;

	ratelog_tick(r, now_ms);
	if (r->count >= r->per_sec) {
		r->dropped++;
		return;
	}
	r->count++;
	va_start(ap, fmt);
	vsnprintf(text, sizeof text, fmt, ap);
	va_end(ap);
	log_warn("%s", text);
}
