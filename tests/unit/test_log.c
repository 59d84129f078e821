/* SPDX-License-Identifier: Apache-2.0 */
/* The log: one line per message, whatever the message carries. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <string.h>

#include "log.h"

/* A peer's refusal reason with a newline and an escape sequence (a forged
 * log line, a terminal driven) is logged as one line, its control bytes
 * written as \xNN. */
static void control_bytes_escaped(void **state)
{
	struct log_entry e[1];

	(void)state;
	log_set_level(LOG_WARN);
	log_msg(LOG_WARN, "node 2 refused the link: %s",
		"x\n2026-12-03T00:00:00.000Z msced ERROR store failed\x1b[31m\x7f");
	assert_int_equal(log_recent(e, 1), 1);
	assert_null(strchr(e[0].text, '\n'));
	assert_null(strchr(e[0].text, '\x1b'));
	assert_null(strchr(e[0].text, '\x7f'));
	assert_non_null(strstr(e[0].text, "x\\x0a2026-12-03"));
	assert_non_null(strstr(e[0].text, "\\x1b[31m\\x7f"));
	/* UTF-8 is not control bytes: kept as is. */
	log_msg(LOG_WARN, "client \"%s\"", "G\xc3\xbcnther");
	assert_int_equal(log_recent(e, 1), 1);
	assert_string_equal(e[0].text, "client \"G\xc3\xbcnther\"");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(control_bytes_escaped),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
