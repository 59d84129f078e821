/* SPDX-License-Identifier: Apache-2.0 */
/* Input framing for the fuzz targets that take several messages per input
 * (fuzz_peer, fuzz_client): after any target-specific prefix, a sequence
 * of records
 *
 *   header (1 byte, meaning per target) | length (2 bytes, big-endian) | body
 *
 * A record whose length runs past the end takes what is left, so every
 * input means something and a mutation of a length byte stays useful. */
#ifndef MSCE_FUZZ_FRAME_H
#define MSCE_FUZZ_FRAME_H

#include <stddef.h>
#include <stdint.h>

struct fuzz_reader {
	const uint8_t *p;
	size_t left;
};

/* Next record: 1 and *hdr, *body (pointing into the input), *len; 0 at the
 * end. */
static inline int fuzz_next(struct fuzz_reader *r, uint8_t *hdr,
			    const uint8_t **body, size_t *len)
{
	size_t n;

	if (r->left == 0)
		return 0;
	*hdr = r->p[0];
	if (r->left < 3) {
		*body = r->p + 1;
		*len = r->left - 1;
		r->p += r->left;
		r->left = 0;
		return 1;
	}
	n = (size_t)r->p[1] << 8 | r->p[2];
	r->p += 3;
	r->left -= 3;
	if (n > r->left)
		n = r->left;
	*body = r->p;
	*len = n;
	r->p += n;
	r->left -= n;
	return 1;
}

/* Appends a record to buf (cap bytes) at *len; the corpus generator's
 * side. Returns 0, or -1 if it does not fit. */
static inline int fuzz_put(uint8_t *buf, size_t cap, size_t *len, uint8_t hdr,
			   const uint8_t *body, size_t n)
{
	if (n > 0xffff || cap - *len < 3 + n)
		return -1;
	buf[(*len)++] = hdr;
	buf[(*len)++] = (uint8_t)(n >> 8);
	buf[(*len)++] = (uint8_t)n;
	for (size_t i = 0; i < n; i++)
		buf[(*len)++] = body[i];
	return 0;
}

#endif
