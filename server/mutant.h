/* SPDX-License-Identifier: Apache-2.0 */
/* Deliberate bugs for the tests: a build with MSCE_MUTANTS (only the
 * simulator's msce-sim-mutant is one) turns on the mutant named by the
 * environment variable MSCE_MUTANT, one rule broken at a time, and the
 * simulator's oracle must catch each with its own failure (see
 * tests/sim/CMakeLists.txt). Every other build compiles MUTANT() to 0. */
#ifndef MSCE_MUTANT_H
#define MSCE_MUTANT_H

#ifdef MSCE_MUTANTS
#include <stdlib.h>
#include <string.h>

static inline int mutant_on(const char *name)
{
	const char *m = getenv("MSCE_MUTANT");
	return m != NULL && strcmp(m, name) == 0;
}
#define MUTANT(name) mutant_on(name)
#else
#define MUTANT(name) 0
#endif

#endif
