/* SPDX-License-Identifier: Apache-2.0 */
/* Key files. Every buffer that held a secret or its base64 is wiped before
 * it goes out of scope. */
#include "keyfile.h"
#include "seg.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#define KEYFILE_MAX 128 /* one base64 line and some slack for whitespace */
#define KEYFILE_PATH_MAX 4096

static int errno_code(int err)
{
	if (err == ENOENT)
		return MSCE_ENOTFOUND;
	if (err == EACCES || err == EPERM)
		return MSCE_EPERM;
	return MSCE_EIO;
}

int key_from_base64(const char *b64, uint8_t out[32], struct err *e)
{
	uint8_t tmp[66];
	size_t len = strlen(b64), n = 0;
	const char *end = NULL;
	int rc = 0;

	if (len == 0)
		return err_set(e, MSCE_ECORRUPT, "key is empty");
	if (len > 88)
		return err_set(e, MSCE_ECORRUPT,
			       "not a key: %zu characters, want %d of base64",
			       len, KEY_BASE64_LEN);
	if (sodium_base642bin(tmp, sizeof tmp, b64, len, NULL, &n, &end,
			      sodium_base64_VARIANT_ORIGINAL) != 0 ||
	    end != b64 + len)
		rc = err_set(e, MSCE_ECORRUPT,
			     "not a key: invalid base64 (want %d characters "
			     "of A-Z a-z 0-9 + / ending in =)",
			     KEY_BASE64_LEN);
	else if (n != 32)
		rc = err_set(e, MSCE_ECORRUPT,
			     "not a key: decodes to %zu bytes, want 32", n);
	else
		memcpy(out, tmp, 32);
	sodium_memzero(tmp, sizeof tmp);
	return rc;
}

void key_to_base64(const uint8_t k[32], char out[64])
{
	sodium_bin2base64(out, 64, k, 32, sodium_base64_VARIANT_ORIGINAL);
}

/* The u-coordinates of the points of order 1, 2, 4 and 8 on Curve25519,
 * and p and p + 1 (0 and 1 again); X25519 ignores bit 255, so it is masked
 * off before comparing (the same list libsodium refuses). */
static const uint8_t low_order[7][32] = {
    {0},
    {1},
    {0xe0, 0xeb, 0x7a, 0x7c, 0x3b, 0x41, 0xb8, 0xae, 0x16, 0x56, 0xe3,
     0xfa, 0xf1, 0x9f, 0xc4, 0x6a, 0xda, 0x09, 0x8d, 0xeb, 0x9c, 0x32,
     0xb1, 0xfd, 0x86, 0x62, 0x05, 0x16, 0x5f, 0x49, 0xb8, 0x00},
    {0x5f, 0x9c, 0x95, 0xbc, 0xa3, 0x50, 0x8c, 0x24, 0xb1, 0xd0, 0xb1,
     0x55, 0x9c, 0x83, 0xef, 0x5b, 0x04, 0x44, 0x5c, 0xc4, 0x58, 0x1c,
     0x8e, 0x86, 0xd8, 0x22, 0x4e, 0xdd, 0xd0, 0x9f, 0x11, 0x57},
    {0xec, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
     0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
     0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f},
    {0xed, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
     0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
     0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f},
    {0xee, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
     0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
     0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f},
};

int key_low_order(const uint8_t k[32])
{
	uint8_t u[32];

	memcpy(u, k, 32);
	u[31] &= 0x7f;
	for (size_t i = 0; i < sizeof(low_order) / sizeof(low_order[0]); i++)
		if (memcmp(u, low_order[i], 32) == 0)
			return 1;
	return 0;
}

/* Reads the one-line key file at path into buf (NUL-terminated, trailing
 * whitespace removed). Refuses a symbolic link (a key read through one is
 * whatever the link's owner points it at) and a file group or others may
 * write; with secret, also one they may read. */
static int read_key_file(const char *path, int secret, char *buf, size_t cap,
			 struct err *e)
{
	struct stat st;
	size_t len = 0;
	int fd, rc = 0;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NOFOLLOW);
	if (fd < 0 && errno == ELOOP)
		return err_set(e, MSCE_EPERM,
			       "key file %s is a symbolic link; refusing to "
			       "follow it (name the file itself)",
			       path);
	if (fd < 0)
		return err_set(e, errno_code(errno), "cannot open key file %s: %s",
			       path, strerror(errno));
	if (fstat(fd, &st) != 0) {
		rc = err_set(e, MSCE_EIO, "cannot stat key file %s: %s", path,
			     strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		rc = err_set(e, MSCE_ECORRUPT,
			     "key file %s is not a regular file", path);
		goto out;
	}
	if (!secret && (st.st_mode & 022) != 0) {
		rc = err_set(e, MSCE_EPERM,
			     "public key file %s has mode %04o, so group or "
			     "others may change it; fix with: chmod go-w %s",
			     path, (unsigned)(st.st_mode & 07777), path);
		goto out;
	}
	if (secret && (st.st_mode & 077) != 0) {
		rc = err_set(e, MSCE_EPERM,
			     "secret key file %s has mode %04o, so group or "
			     "others may read or change it; fix with: "
			     "chmod 600 %s",
			     path, (unsigned)(st.st_mode & 07777), path);
		goto out;
	}
	for (;;) {
		ssize_t r = read(fd, buf + len, cap - len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			rc = err_set(e, MSCE_EIO, "cannot read key file %s: %s",
				     path, strerror(errno));
			goto out;
		}
		if (r == 0)
			break;
		len += (size_t)r;
		if (len == cap) {
			rc = err_set(e, MSCE_ECORRUPT,
				     "key file %s is too long (want one line "
				     "of %d base64 characters)",
				     path, KEY_BASE64_LEN);
			goto out;
		}
	}
	while (len > 0 && (buf[len - 1] == ' ' || buf[len - 1] == '\t' ||
			   buf[len - 1] == '\r' || buf[len - 1] == '\n'))
		len--;
	buf[len] = '\0';
	if (memchr(buf, '\0', len) != NULL) {
		rc = err_set(e, MSCE_ECORRUPT,
			     "key file %s holds binary data, not base64", path);
		goto out;
	}
out:
	close(fd);
	return rc;
}

int keyfile_load_secret(const char *path, uint8_t *sk, uint8_t pk[32],
			struct err *e)
{
	char buf[KEYFILE_MAX];
	struct err ke;
	int rc;

	if (sodium_init() < 0) {
		rc = err_set(e, MSCE_EIO, "libsodium failed to initialise");
		goto fail;
	}
	rc = read_key_file(path, 1, buf, sizeof buf, e);
	if (rc != 0)
		goto fail;
	if (key_from_base64(buf, sk, &ke) != 0) {
		rc = err_set(e, ke.code, "secret key file %s: %s", path,
			     ke.msg);
		goto fail;
	}
	/* The zero scalar gives the zero point: no real key is all zeros. */
	if (sodium_is_zero(sk, 32) ||
	    crypto_scalarmult_base(pk, sk) != 0 || sodium_is_zero(pk, 32)) {
		rc = err_set(e, MSCE_ECORRUPT,
			     "secret key file %s: not a usable X25519 key",
			     path);
		goto fail;
	}
	sodium_memzero(buf, sizeof buf);
	return 0;
fail:
	sodium_memzero(buf, sizeof buf);
	sodium_memzero(sk, 32);
	return rc;
}

int keyfile_load_public(const char *path, uint8_t pk[32], struct err *e)
{
	char buf[KEYFILE_MAX];
	struct err ke;
	int rc;

	rc = read_key_file(path, 0, buf, sizeof buf, e);
	if (rc != 0)
		return rc;
	if (key_from_base64(buf, pk, &ke) != 0)
		return err_set(e, ke.code, "public key file %s: %s", path,
			       ke.msg);
	if (key_low_order(pk))
		return err_set(e, MSCE_ECORRUPT,
			       "public key file %s: a low-order point, not a "
			       "usable X25519 key",
			       path);
	return 0;
}

static int write_all(int fd, const char *s, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, s, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -1;
		s += w;
		n -= (size_t)w;
	}
	return 0;
}

static int create_excl(const char *path, mode_t mode, struct err *e)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW,
		      mode);

	if (fd < 0) {
		if (errno == EEXIST)
			return -err_set(e, MSCE_EINVAL,
					"%s already exists; refusing to "
					"overwrite a key (move it away first)",
					path);
		return -err_set(e, errno_code(errno), "cannot create %s: %s",
				path, strerror(errno));
	}
	/* The umask may have narrowed the mode; we want exactly this. */
	if (fchmod(fd, mode) != 0) {
		err_set(e, MSCE_EIO, "cannot chmod %s: %s", path,
			strerror(errno));
		close(fd);
		unlink(path);
		return -MSCE_EIO;
	}
	return fd;
}

static int finish_file(int fd, const char *path, const char *text,
		       struct err *e)
{
	if (write_all(fd, text, strlen(text)) != 0 || fsync(fd) != 0)
		return err_set(e, MSCE_EIO, "cannot write %s: %s", path,
			       strerror(errno));
	return 0;
}

int keyfile_write_sign_pub(const char *prefix, struct err *e)
{
	char kpath[KEYFILE_PATH_MAX], spath[KEYFILE_PATH_MAX], tmp[KEYFILE_PATH_MAX + 8];
	char line[64 + 2];
	uint8_t pk[32], link_pk[32], spk[32];
	uint8_t *sk = NULL, *ssk = NULL;
	int rc, fd;

	if (snprintf(kpath, sizeof kpath, "%s.key", prefix) >=
		    (int)sizeof kpath ||
	    snprintf(spath, sizeof spath, "%s.sign.pub", prefix) >=
		    (int)sizeof spath)
		return err_set(e, MSCE_EINVAL, "key path prefix is too long");
	snprintf(tmp, sizeof tmp, "%s.tmp", spath);
	sk = sodium_malloc(32);
	ssk = sodium_malloc(64);
	if (sk == NULL || ssk == NULL) {
		rc = err_set(e, MSCE_ENOMEM, "cannot allocate secure memory");
		goto out;
	}
	if ((rc = keyfile_load_secret(kpath, sk, link_pk, e)))
		goto out;
	seg_keypair_from_link(sk, spk, ssk);
	(void)pk;
	key_to_base64(spk, line);
	strcat(line, "\n");
	/* Derived, so rewriting it is harmless: through a temporary file,
	 * so it is never half written. */
	unlink(tmp);
	fd = create_excl(tmp, 0644, e);
	if (fd < 0) {
		rc = -fd;
		goto out;
	}
	rc = finish_file(fd, tmp, line, e);
	close(fd);
	if (rc == 0 && rename(tmp, spath) != 0)
		rc = err_set(e, MSCE_EIO, "cannot rename %s: %s", tmp,
			     strerror(errno));
	if (rc != 0)
		unlink(tmp);
out:
	sodium_free(sk);
	sodium_free(ssk);
	return rc;
}

int keyfile_generate_master(const char *path, struct err *e)
{
	char line[64 + 2];
	uint8_t *k;
	int fd, rc;

	if (sodium_init() < 0)
		return err_set(e, MSCE_EIO, "libsodium failed to initialise");
	k = sodium_malloc(32);
	if (k == NULL)
		return err_set(e, MSCE_ENOMEM, "cannot allocate secure memory");
	fd = create_excl(path, 0600, e);
	if (fd < 0) {
		sodium_free(k);
		return -fd;
	}
	randombytes_buf(k, 32);
	key_to_base64(k, line);
	sodium_free(k);
	strcat(line, "\n");
	rc = finish_file(fd, path, line, e);
	sodium_memzero(line, sizeof line);
	close(fd);
	if (rc != 0)
		unlink(path);
	return rc;
}

int keyfile_generate(const char *prefix, struct err *e)
{
	char kpath[KEYFILE_PATH_MAX], ppath[KEYFILE_PATH_MAX];
	char dir[KEYFILE_PATH_MAX];
	char line[64 + 2];
	uint8_t pk[32];
	uint8_t *sk = NULL;
	int kfd = -1, pfd = -1, rc = 0, dfd;

	if (sodium_init() < 0)
		return err_set(e, MSCE_EIO, "libsodium failed to initialise");
	if (snprintf(kpath, sizeof kpath, "%s.key", prefix) >=
		    (int)sizeof kpath ||
	    snprintf(ppath, sizeof ppath, "%s.pub", prefix) >=
		    (int)sizeof ppath)
		return err_set(e, MSCE_EINVAL, "key path prefix is too long");
	sk = sodium_malloc(32);
	if (sk == NULL)
		return err_set(e, MSCE_ENOMEM, "cannot allocate secure memory");

	kfd = create_excl(kpath, 0600, e);
	if (kfd < 0) {
		rc = -kfd;
		goto out;
	}
	pfd = create_excl(ppath, 0644, e);
	if (pfd < 0) {
		rc = -pfd;
		goto out;
	}

	randombytes_buf(sk, 32);
	if (crypto_scalarmult_base(pk, sk) != 0) {
		rc = err_set(e, MSCE_EIO, "cannot derive the public key");
		goto out;
	}
	key_to_base64(sk, line);
	strcat(line, "\n");
	rc = finish_file(kfd, kpath, line, e);
	sodium_memzero(line, sizeof line);
	if (rc != 0)
		goto out;
	key_to_base64(pk, line);
	strcat(line, "\n");
	rc = finish_file(pfd, ppath, line, e);
	if (rc != 0)
		goto out;

	rc = keyfile_write_sign_pub(prefix, e);
	if (rc != 0)
		goto out;

	/* Make the new names durable too. Best effort: the files are whole
	 * either way, and some file systems refuse fsync on a directory. */
	snprintf(dir, sizeof dir, "%s", kpath);
	dfd = open(dirname(dir), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		(void)fsync(dfd);
		close(dfd);
	}
out:
	if (kfd >= 0)
		close(kfd);
	if (pfd >= 0)
		close(pfd);
	/* Never leave half a pair behind; only remove what we created. */
	if (rc != 0 && kfd >= 0)
		unlink(kpath);
	if (rc != 0 && pfd >= 0)
		unlink(ppath);
	sodium_free(sk);
	return rc;
}
