/* SPDX-License-Identifier: Apache-2.0 */
/* Progress lines on a terminal; see progress.h. */
#include "progress.h"

#include <stdio.h>
#include <time.h>
#include <unistd.h>

#define REDRAW_MS 200

static uint64_t now_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000 + (uint64_t)t.tv_nsec / 1000000;
}

void progress_start(struct progress *p, const char *what, const char *unit,
		    uint64_t total)
{
	*p = (struct progress){0};
	p->on = isatty(STDERR_FILENO);
	p->what = what;
	p->unit = unit;
	p->total = total;
	p->t0_ms = now_ms();
}

static void draw(struct progress *p, uint64_t now)
{
	double s = (double)(now - p->t0_ms) / 1000.0;
	double rate = s > 0 ? (double)p->count / s : 0;

	fprintf(stderr, "\r\033[K%s: %llu %s, %.0f/s", p->what,
		(unsigned long long)p->count, p->unit, rate);
	if (p->total > 0 && p->done > 0 && p->done <= p->total) {
		double frac = (double)p->done / (double)p->total;
		double eta = s / frac - s;
		fprintf(stderr, ", %.0f%%, ETA %.0f s", frac * 100.0,
			eta < 0 ? 0 : eta);
	}
	fflush(stderr);
	p->shown = 1;
	p->shown_ms = now;
}

void progress_update(struct progress *p, uint64_t count, uint64_t done)
{
	uint64_t now;

	p->count = count;
	p->done = done;
	if (!p->on)
		return;
	now = now_ms();
	if (p->shown && now - p->shown_ms < REDRAW_MS)
		return;
	draw(p, now);
}

void progress_clear(struct progress *p)
{
	if (p->on && p->shown) {
		fprintf(stderr, "\r\033[K");
		fflush(stderr);
		p->shown = 0;
		p->shown_ms = 0;
	}
}

void progress_end(struct progress *p)
{
	progress_clear(p);
	p->on = 0;
}
