/* SPDX-License-Identifier: Apache-2.0 */
/* Key files: generate/load round trip, the RFC 7748 vector, and refusal of
 * files others can read or write, symbolic links, low-order keys, garbage,
 * and overwriting. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "keyfile.h"

struct tmp {
	char dir[64];
	uint8_t *sk; /* sodium_malloc'd, as the daemon does */
};

static int setup(void **state)
{
	struct tmp *t = calloc(1, sizeof *t);

	if (t == NULL || sodium_init() < 0)
		return -1;
	snprintf(t->dir, sizeof t->dir, "/tmp/msce-test-keyfile-XXXXXX");
	if (mkdtemp(t->dir) == NULL)
		return -1;
	t->sk = sodium_malloc(32);
	if (t->sk == NULL)
		return -1;
	*state = t;
	return 0;
}

static int teardown(void **state)
{
	struct tmp *t = *state;
	DIR *d = opendir(t->dir);
	struct dirent *de;
	char path[384];

	while (d != NULL && (de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof path, "%s/%s", t->dir, de->d_name);
		unlink(path);
	}
	if (d != NULL)
		closedir(d);
	rmdir(t->dir);
	sodium_free(t->sk);
	free(t);
	return 0;
}

static const char *in_dir(struct tmp *t, const char *name)
{
	static char path[192];

	snprintf(path, sizeof path, "%s/%s", t->dir, name);
	return path;
}

static void write_file(const char *path, const void *data, size_t n,
		       mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, n), (ssize_t)n);
	assert_int_equal(fchmod(fd, mode), 0);
	close(fd);
}

static void test_base64(void **state)
{
	uint8_t k[32], back[32];
	char b64[64];
	struct err e;

	(void)state;
	for (int i = 0; i < 32; i++)
		k[i] = (uint8_t)(i * 37 + 1);
	key_to_base64(k, b64);
	assert_int_equal(strlen(b64), KEY_BASE64_LEN);
	assert_int_equal(key_from_base64(b64, back, &e), 0);
	assert_memory_equal(k, back, 32);

	memset(k, 1, 32);
	key_to_base64(k, b64);
	assert_string_equal(b64, "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=");

	static const char *const bad[] = {
		"",
		"AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE",   /* no pad */
		"AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE= ", /* space */
		"AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQF=",  /* bits */
		"AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQ-_",  /* url */
		"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==",  /* 31 */
		"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8g",  /* 33 */
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		if (key_from_base64(bad[i], back, &e) != MSCE_ECORRUPT)
			fail_msg("\"%s\" accepted", bad[i]);
}

static void test_round_trip(void **state)
{
	struct tmp *t = *state;
	char prefix[128], kpath[160], ppath[160];
	uint8_t pk_derived[32], pk_file[32], pk_check[32];
	struct stat st;
	struct err e;

	snprintf(prefix, sizeof prefix, "%s/shekou", t->dir);
	snprintf(kpath, sizeof kpath, "%s.key", prefix);
	snprintf(ppath, sizeof ppath, "%s.pub", prefix);
	assert_int_equal(keyfile_generate(prefix, &e), 0);

	assert_int_equal(stat(kpath, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	assert_int_equal(stat(ppath, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0644);
	assert_int_equal(st.st_size, KEY_BASE64_LEN + 1); /* one line */

	assert_int_equal(keyfile_load_secret(kpath, t->sk, pk_derived, &e), 0);
	assert_int_equal(keyfile_load_public(ppath, pk_file, &e), 0);
	assert_memory_equal(pk_derived, pk_file, 32);
	assert_int_equal(crypto_scalarmult_base(pk_check, t->sk), 0);
	assert_memory_equal(pk_check, pk_file, 32);

	/* A second key is a different key. */
	snprintf(prefix, sizeof prefix, "%s/bay", t->dir);
	assert_int_equal(keyfile_generate(prefix, &e), 0);
	assert_int_equal(keyfile_load_public(in_dir(t, "bay.pub"), pk_check,
					     &e),
			 0);
	assert_memory_not_equal(pk_check, pk_file, 32);
}

/* RFC 7748 section 6.1, Alice. */
static void test_rfc7748_vector(void **state)
{
	struct tmp *t = *state;
	static const char sk_line[] =
		"dwdtCnMYpX08FsFyUbJmRd9ML4frwJkqsXf7pR25LCo=\r\n";
	static const uint8_t want_pk[32] = {
		0x85, 0x20, 0xf0, 0x09, 0x89, 0x30, 0xa7, 0x54,
		0x74, 0x8b, 0x7d, 0xdc, 0xb4, 0x3e, 0xf7, 0x5a,
		0x0d, 0xbf, 0x3a, 0x0d, 0x26, 0x38, 0x1a, 0xf4,
		0xeb, 0xa4, 0xa9, 0x8e, 0xaa, 0x9b, 0x4e, 0x6a};
	uint8_t pk[32];
	struct err e;
	const char *path = in_dir(t, "alice.key");

	write_file(path, sk_line, strlen(sk_line), 0600); /* CRLF is fine */
	assert_int_equal(keyfile_load_secret(path, t->sk, pk, &e), 0);
	assert_memory_equal(pk, want_pk, 32);
	assert_int_equal(t->sk[0], 0x77);
}

static void test_mode_refused(void **state)
{
	struct tmp *t = *state;
	char prefix[128], kpath[160];
	uint8_t pk[32];
	struct err e;
	static const mode_t modes[] = {0644, 0640, 0604, 0620, 0602, 0660};

	snprintf(prefix, sizeof prefix, "%s/loose", t->dir);
	snprintf(kpath, sizeof kpath, "%s.key", prefix);
	assert_int_equal(keyfile_generate(prefix, &e), 0);

	assert_int_equal(chmod(kpath, 0644), 0);
	memset(t->sk, 0x55, 32);
	assert_int_equal(keyfile_load_secret(kpath, t->sk, pk, &e), MSCE_EPERM);
	assert_non_null(strstr(e.msg, "0644"));
	assert_non_null(strstr(e.msg, "chmod 600"));
	assert_non_null(strstr(e.msg, kpath));
	assert_true(sodium_is_zero(t->sk, 32)); /* wiped on failure */

	for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++) {
		char want[8];
		assert_int_equal(chmod(kpath, modes[i]), 0);
		assert_int_equal(keyfile_load_secret(kpath, t->sk, pk, &e),
				 MSCE_EPERM);
		snprintf(want, sizeof want, "%04o", (unsigned)modes[i]);
		assert_non_null(strstr(e.msg, want));
	}
	/* 0400 is fine: only the owner can read it. */
	assert_int_equal(chmod(kpath, 0400), 0);
	assert_int_equal(keyfile_load_secret(kpath, t->sk, pk, &e), 0);
}

static void test_garbage_refused(void **state)
{
	struct tmp *t = *state;
	static const struct {
		const char *data;
		size_t len;
	} bad[] = {
		{"", 0},
		{"\n", 1},
		{"hello world\n", 12},
		{"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==\n", 45},
		{"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8g\n", 45},
		/* the zero key */
		{"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n", 45},
		/* two keys */
		{"AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=\n"
		 "AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI=\n",
		 90},
		/* a NUL after a good key */
		{"AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=\0\n", 46},
		/* far too long */
		{"AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE="
		 "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE="
		 "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=\n",
		 133},
	};
	uint8_t pk[32];
	struct err e;
	const char *path = in_dir(t, "junk.key");

	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		write_file(path, bad[i].data, bad[i].len, 0600);
		memset(t->sk, 0x55, 32);
		if (keyfile_load_secret(path, t->sk, pk, &e) != MSCE_ECORRUPT)
			fail_msg("bad key file %zu accepted (%s)", i, e.msg);
		assert_non_null(strstr(e.msg, path));
		assert_true(sodium_is_zero(t->sk, 32));
		if (keyfile_load_public(path, pk, &e) != MSCE_ECORRUPT)
			fail_msg("bad public key file %zu accepted", i);
		unlink(path);
	}
	/* Not a regular file. */
	assert_int_equal(keyfile_load_secret(t->dir, t->sk, pk, &e),
			 MSCE_ECORRUPT);
	/* Missing. */
	assert_int_equal(keyfile_load_secret(in_dir(t, "none.key"), t->sk, pk,
					     &e),
			 MSCE_ENOTFOUND);
	assert_int_equal(keyfile_load_public(in_dir(t, "none.pub"), pk, &e),
			 MSCE_ENOTFOUND);
}

/* A key read through a symbolic link, or a public key others may change,
 * is whatever someone else makes it. */
static void test_links_and_writable_refused(void **state)
{
	struct tmp *t = *state;
	char prefix[128], kpath[160], ppath[160], lk[160], lp[160];
	uint8_t pk[32];
	struct err e;

	snprintf(prefix, sizeof prefix, "%s/n1", t->dir);
	snprintf(kpath, sizeof kpath, "%s.key", prefix);
	snprintf(ppath, sizeof ppath, "%s.pub", prefix);
	snprintf(lk, sizeof lk, "%s/link.key", t->dir);
	snprintf(lp, sizeof lp, "%s/link.pub", t->dir);
	assert_int_equal(keyfile_generate(prefix, &e), 0);
	assert_int_equal(symlink(kpath, lk), 0);
	assert_int_equal(symlink(ppath, lp), 0);
	memset(t->sk, 0x55, 32);
	assert_int_equal(keyfile_load_secret(lk, t->sk, pk, &e), MSCE_EPERM);
	assert_non_null(strstr(e.msg, "symbolic link"));
	assert_true(sodium_is_zero(t->sk, 32));
	assert_int_equal(keyfile_load_public(lp, pk, &e), MSCE_EPERM);
	assert_non_null(strstr(e.msg, "symbolic link"));

	assert_int_equal(keyfile_load_public(ppath, pk, &e), 0);
	assert_int_equal(chmod(ppath, 0664), 0);
	assert_int_equal(keyfile_load_public(ppath, pk, &e), MSCE_EPERM);
	assert_non_null(strstr(e.msg, "chmod go-w"));
	assert_int_equal(chmod(ppath, 0646), 0);
	assert_int_equal(keyfile_load_public(ppath, pk, &e), MSCE_EPERM);
	assert_int_equal(chmod(ppath, 0444), 0);
	assert_int_equal(keyfile_load_public(ppath, pk, &e), 0);
}

/* The low-order list: each is refused by libsodium's X25519 too (a
 * Diffie-Hellman with it is all zeros or refused), with bit 255 set or
 * not; real keys are not on it. */
static void test_low_order(void **state)
{
	static const char *const b64[] = {
	    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
	    "AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
	    "4Ot6fDtBuK4WVuP68Z/EatoJjeucMrH9hmIFFl9JuAA=",
	    "X5yVvKNQjCSx0LFVnIPvWwREXMRYHI6G2CJO3dCfEVc=",
	    "7P///////////////////////////////////////38=",
	    "7f///////////////////////////////////////38=",
	    "7v///////////////////////////////////////38=",
	};
	struct tmp *t = *state;
	uint8_t k[32], n[32], q[32], pk[32];
	struct err e;
	const char *path = in_dir(t, "low.pub");

	randombytes_buf(n, sizeof n);
	for (size_t i = 0; i < sizeof b64 / sizeof b64[0]; i++) {
		assert_int_equal(key_from_base64(b64[i], k, &e), 0);
		assert_true(key_low_order(k));
		assert_int_not_equal(crypto_scalarmult(q, n, k), 0);
		k[31] |= 0x80;
		assert_true(key_low_order(k));
		assert_int_not_equal(crypto_scalarmult(q, n, k), 0);
		write_file(path, b64[i], strlen(b64[i]), 0644);
		assert_int_equal(keyfile_load_public(path, pk, &e),
				 MSCE_ECORRUPT);
		assert_non_null(strstr(e.msg, "low-order"));
		unlink(path);
	}
	for (int i = 0; i < 1000; i++) {
		randombytes_buf(n, sizeof n);
		assert_int_equal(crypto_scalarmult_base(pk, n), 0);
		assert_false(key_low_order(pk));
	}
}

static void test_generate_refuses_overwrite(void **state)
{
	struct tmp *t = *state;
	char prefix[128], kpath[160], before[64], after[64];
	struct err e;
	FILE *f;

	snprintf(prefix, sizeof prefix, "%s/futian", t->dir);
	snprintf(kpath, sizeof kpath, "%s.key", prefix);
	assert_int_equal(keyfile_generate(prefix, &e), 0);
	f = fopen(kpath, "r");
	assert_non_null(f);
	assert_non_null(fgets(before, sizeof before, f));
	fclose(f);

	assert_int_equal(keyfile_generate(prefix, &e), MSCE_EINVAL);
	assert_non_null(strstr(e.msg, "already exists"));
	assert_non_null(strstr(e.msg, kpath));
	f = fopen(kpath, "r");
	assert_non_null(f);
	assert_non_null(fgets(after, sizeof after, f));
	fclose(f);
	assert_string_equal(before, after);

	/* Only the .pub exists: refused, and no lone .key is left behind. */
	write_file(in_dir(t, "lonely.pub"), "x\n", 2, 0644);
	snprintf(prefix, sizeof prefix, "%s/lonely", t->dir);
	assert_int_equal(keyfile_generate(prefix, &e), MSCE_EINVAL);
	assert_non_null(strstr(e.msg, "lonely.pub"));
	assert_int_equal(access(in_dir(t, "lonely.key"), F_OK), -1);

	/* A directory that does not exist. */
	snprintf(prefix, sizeof prefix, "%s/no/such", t->dir);
	assert_int_equal(keyfile_generate(prefix, &e), MSCE_ENOTFOUND);
}

/* A master key file: mode 0600, loads as a secret, never overwritten. */
static void test_generate_master(void **state)
{
	struct tmp *t = *state;
	char path[160];
	uint8_t k1[32], k2[32], pk[32];
	struct stat st;
	struct err e;

	snprintf(path, sizeof path, "%s/shekou.master", t->dir);
	assert_int_equal(keyfile_generate_master(path, &e), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(keyfile_load_secret(path, k1, pk, &e), 0);
	assert_int_equal(keyfile_generate_master(path, &e), MSCE_EINVAL);
	assert_non_null(strstr(e.msg, "already exists"));
	assert_int_equal(keyfile_load_secret(path, k2, pk, &e), 0);
	assert_memory_equal(k1, k2, 32);
	snprintf(path, sizeof path, "%s/other.master", t->dir);
	assert_int_equal(keyfile_generate_master(path, &e), 0);
	assert_int_equal(keyfile_load_secret(path, k2, pk, &e), 0);
	assert_memory_not_equal(k1, k2, 32);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_base64),
		cmocka_unit_test_setup_teardown(test_round_trip, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_rfc7748_vector, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_mode_refused, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_garbage_refused, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_links_and_writable_refused,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_low_order, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_generate_master, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_generate_refuses_overwrite,
						setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
