/* SPDX-License-Identifier: Apache-2.0 */
/* Handshake admission by source address: the per-address and total caps,
 * the slots kept for the peers' addresses, load and the per-address rate,
 * and a table that never runs out under a flood of addresses. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <arpa/inet.h>
#include <cmocka.h>
#include <netinet/in.h>

#include "admission.h"
#include "error.h"

static struct admission_key v4(const char *ip)
{
	struct sockaddr_in sin = {.sin_family = AF_INET};
	struct admission_key k;

	assert_int_equal(inet_pton(AF_INET, ip, &sin.sin_addr), 1);
	assert_int_equal(admission_key_of((struct sockaddr *)&sin, &k), 0);
	return k;
}

static struct admission_key v6(const char *ip)
{
	struct sockaddr_in6 sin6 = {.sin6_family = AF_INET6};
	struct admission_key k;

	assert_int_equal(inet_pton(AF_INET6, ip, &sin6.sin6_addr), 1);
	assert_int_equal(admission_key_of((struct sockaddr *)&sin6, &k), 0);
	return k;
}

static void test_caps(void **state)
{
	struct admission_config cfg = {
	    .max_pending = 8, .per_addr = 3, .reserved = 2, .reserved_addrs = 1};
	struct admission a;
	struct admission_entry *s[16];
	struct admission_key peer = v4("10.0.0.1"), k;
	int n = 0;

	(void)state;
	assert_int_equal(admission_init(&a, &cfg), 0);
	assert_int_equal(admission_reserve(&a, &peer), 0);
	/* One address: per_addr, then refused. */
	k = v4("192.0.2.1");
	for (int i = 0; i < 3; i++)
		assert_int_equal(admission_enter(&a, &k, 0, &s[n++]),
				 ADMISSION_OK);
	assert_int_equal(admission_enter(&a, &k, 0, &s[n]),
			 ADMISSION_ADDR_FULL);
	/* Others fill what is not reserved: 8 - 2 = 6. */
	k = v4("192.0.2.2");
	for (int i = 0; i < 3; i++)
		assert_int_equal(admission_enter(&a, &k, 0, &s[n++]),
				 ADMISSION_OK);
	assert_false(admission_is_reserved(s[0]));
	k = v4("192.0.2.3");
	assert_int_equal(admission_enter(&a, &k, 0, &s[n]), ADMISSION_FULL);
	assert_int_equal(admission_pending(&a), 6);
	/* The peer's host still gets in, up to the total. */
	assert_int_equal(admission_enter(&a, &peer, 0, &s[n++]), ADMISSION_OK);
	assert_true(admission_is_reserved(s[n - 1]));
	assert_int_equal(admission_enter(&a, &peer, 0, &s[n++]), ADMISSION_OK);
	assert_int_equal(admission_enter(&a, &peer, 0, &s[n]), ADMISSION_FULL);
	/* A slot of a stranger freed: a stranger may take it again. */
	admission_leave(&a, s[0], 10);
	assert_int_equal(admission_enter(&a, &k, 10, &s[0]), ADMISSION_OK);
	/* Leaving twice or a NULL slot does no harm... */
	admission_leave(&a, NULL, 10);
	for (int i = 0; i < n; i++)
		admission_leave(&a, s[i], 20);
	assert_int_equal(admission_pending(&a), 0);
	admission_leave(&a, s[1], 20);
	assert_int_equal(admission_pending(&a), 0);
	admission_free(&a);

	cfg.reserved = 8;
	assert_int_equal(admission_init(&a, &cfg), MSCE_EINVAL);
	cfg.reserved = 0;
	cfg.per_addr = 0;
	assert_int_equal(admission_init(&a, &cfg), MSCE_EINVAL);
}

/* An IPv6 host holds a /64; an IPv4-mapped address is its IPv4 one. */
static void test_keys(void **state)
{
	struct admission_config cfg = {.max_pending = 8, .per_addr = 2};
	struct admission a;
	struct admission_entry *s[4];
	struct admission_key k1 = v6("2001:db8:1:2::1"),
			     k2 = v6("2001:db8:1:2:ffff::9"),
			     k3 = v6("2001:db8:1:3::1");
	struct admission_key m = v6("::ffff:192.0.2.7"), p = v4("192.0.2.7");

	(void)state;
	assert_int_equal(admission_init(&a, &cfg), 0);
	assert_int_equal(admission_enter(&a, &k1, 0, &s[0]), ADMISSION_OK);
	assert_int_equal(admission_enter(&a, &k2, 0, &s[1]), ADMISSION_OK);
	assert_int_equal(admission_enter(&a, &k2, 0, &s[2]),
			 ADMISSION_ADDR_FULL);
	assert_int_equal(admission_enter(&a, &k3, 0, &s[2]), ADMISSION_OK);
	assert_int_equal(m.len, 4);
	assert_memory_equal(m.b, p.b, 4);
	admission_free(&a);
}

static void test_load_and_rate(void **state)
{
	struct admission_config cfg = {.max_pending = 4, .per_addr = 4};
	struct admission a;
	struct admission_entry *s[4];
	struct admission_key k = v4("198.51.100.1");
	uint64_t t = 1000;
	int got = 0;

	(void)state;
	assert_int_equal(admission_init(&a, &cfg), 0);
	assert_int_equal(admission_enter(&a, &k, t, &s[0]), ADMISSION_OK);
	assert_false(admission_under_load(&a));
	assert_int_equal(admission_enter(&a, &k, t, &s[1]), ADMISSION_OK);
	assert_true(admission_under_load(&a));
	/* A burst, then the rate: 20 a second is one per 50 ms. */
	for (int i = 0; i < 10; i++)
		got += admission_take(&a, s[0], t);
	assert_int_equal(got, ADMISSION_BURST);
	assert_false(admission_take(&a, s[1], t + 10));
	assert_true(admission_take(&a, s[1], t + 50));
	assert_false(admission_take(&a, s[1], t + 60));
	/* The bucket survives the address's slots coming and going. */
	admission_leave(&a, s[0], t + 60);
	admission_leave(&a, s[1], t + 60);
	assert_false(admission_under_load(&a));
	assert_int_equal(admission_enter(&a, &k, t + 61, &s[0]), ADMISSION_OK);
	assert_false(admission_take(&a, s[0], t + 61));
	/* and refills to the burst, no more. */
	got = 0;
	for (int i = 0; i < 10; i++)
		got += admission_take(&a, s[0], t + 100000);
	assert_int_equal(got, ADMISSION_BURST);
	admission_free(&a);
}

/* A flood of new addresses, each entering and leaving at once, never finds
 * the table full, and the pending ones are never recycled. */
static void test_many_addresses(void **state)
{
	struct admission_config cfg = {.max_pending = 32, .per_addr = 2};
	struct admission a;
	struct admission_entry *held[8], *s;
	struct admission_key k;
	char ip[32];

	(void)state;
	assert_int_equal(admission_init(&a, &cfg), 0);
	for (int i = 0; i < 8; i++) {
		snprintf(ip, sizeof(ip), "203.0.113.%d", i);
		k = v4(ip);
		assert_int_equal(admission_enter(&a, &k, 0, &held[i]),
				 ADMISSION_OK);
	}
	for (int i = 0; i < 100000; i++) {
		snprintf(ip, sizeof(ip), "10.%d.%d.%d", i >> 16,
			 (i >> 8) & 255, i & 255);
		k = v4(ip);
		assert_int_equal(admission_enter(&a, &k, (uint64_t)i / 100, &s),
				 ADMISSION_OK);
		admission_leave(&a, s, (uint64_t)i / 100);
	}
	assert_int_equal(admission_pending(&a), 8);
	for (int i = 0; i < 8; i++) {
		/* Still counted: a second one each fits, a third not. */
		snprintf(ip, sizeof(ip), "203.0.113.%d", i);
		k = v4(ip);
		assert_int_equal(admission_enter(&a, &k, 2000, &s),
				 ADMISSION_OK);
		assert_int_equal(admission_enter(&a, &k, 2000, &s),
				 ADMISSION_ADDR_FULL);
	}
	admission_free(&a);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_caps),
	    cmocka_unit_test(test_keys),
	    cmocka_unit_test(test_load_and_rate),
	    cmocka_unit_test(test_many_addresses),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
