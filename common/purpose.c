/* SPDX-License-Identifier: Apache-2.0 */
#include "purpose.h"

#include <string.h>

static const char *const purposes[] = {
	"service",	  "case-work",	    "verification",
	"legal-request", "subject-access", "maintenance",
};

int purpose_valid(const char *s)
{
	if (s == NULL)
		return 0;
	for (size_t i = 0; i < sizeof purposes / sizeof purposes[0]; i++)
		if (strcmp(s, purposes[i]) == 0)
			return 1;
	return 0;
}
