/* SPDX-License-Identifier: Apache-2.0 */
/* Progress of long work (import, export, backup) on stderr, on one line
 * rewritten in place: what, how many, how fast, and how long is left when
 * the total is known. Only when stderr is a terminal: in a pipe or a file
 * it stays quiet. */
#ifndef MSCE_PROGRESS_H
#define MSCE_PROGRESS_H

#include <stdint.h>

struct progress {
	int on;		  /* stderr is a terminal */
	const char *what; /* "import" */
	const char *unit; /* what is counted: "lines" */
	uint64_t total;	  /* of the work, in its measure; 0 unknown */
	uint64_t count;	  /* units counted so far */
	uint64_t done;	  /* of total so far (may be bytes, not units) */
	uint64_t t0_ms, shown_ms;
	int shown; /* a line is on the screen */
};

void progress_start(struct progress *p, const char *what, const char *unit,
		    uint64_t total);
/* count units done, done of total; redraws at most 5 times a second. */
void progress_update(struct progress *p, uint64_t count, uint64_t done);
/* Clears the line before other output goes to stderr. */
void progress_clear(struct progress *p);
void progress_end(struct progress *p);

#endif
