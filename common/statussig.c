/* SPDX-License-Identifier: Apache-2.0 */
#include "statussig.h"

#include <string.h>

#include <sodium.h>

/* Another context than segments': neither signature passes for the other. */
static const char SIGN_CONTEXT[] = "msce status v1";

#define MSG_LEN (sizeof SIGN_CONTEXT + crypto_generichash_BYTES)

static void message(const uint8_t *status, size_t len, uint8_t m[MSG_LEN])
{
	memcpy(m, SIGN_CONTEXT, sizeof SIGN_CONTEXT); /* with its NUL */
	crypto_generichash(m + sizeof SIGN_CONTEXT, crypto_generichash_BYTES,
			   status, len, NULL, 0);
}

void status_sign(const uint8_t *status, size_t len,
		 const uint8_t sk[SEG_SK_LEN], uint8_t sig[SEG_SIG_LEN])
{
	uint8_t m[MSG_LEN];
	message(status, len, m);
	crypto_sign_detached(sig, NULL, m, sizeof m, sk);
}

int status_verify(const uint8_t *status, size_t len,
		  const uint8_t sig[SEG_SIG_LEN], const uint8_t pk[SEG_PK_LEN])
{
	uint8_t m[MSG_LEN];
	message(status, len, m);
	return crypto_sign_verify_detached(sig, m, sizeof m, pk) == 0 ? 0 : -1;
}
