/* cm_codec.h - hex and base64 encoding, HMAC-SHA256 and SHA-256 (OpenSSL libcrypto),
 * constant-time comparison and secure random bytes. All functions are thread-safe.
 */
#ifndef CM_CODEC_H
#define CM_CODEC_H

#include <stddef.h>
#include <stdint.h>

#define CM_SHA256_LEN 32

/* Writes 2*len lowercase hex digits and a NUL into out (2*len+1 bytes). */
void cm_hex_encode(const uint8_t *in, size_t len, char *out);

/* Standard base64 with padding; out holds 4*((len+2)/3)+1 bytes. Returns chars written. */
size_t cm_b64_encode(const uint8_t *in, size_t len, char *out);
/* Decodes standard base64 (padding optional, no whitespace). Returns the decoded
 * length, or -1 on bad input or when the result would not fit in cap bytes. */
long cm_b64_decode(const char *in, size_t len, uint8_t *out, size_t cap);

/* HMAC-SHA256 of the concatenation of n parts (each ptr/len) under key. */
typedef struct {
    const void *ptr;
    size_t len;
} cm_part_t;
void cm_hmac_sha256(const void *key, size_t keylen, const cm_part_t *parts, size_t n,
                    uint8_t out[CM_SHA256_LEN]);
void cm_sha256(const void *data, size_t len, uint8_t out[CM_SHA256_LEN]);

/* Compares two equal-length byte strings in time independent of their content.
 * Returns 1 when equal. Different lengths return 0 at once (lengths are not secret). */
int cm_ct_equal(const void *a, size_t alen, const void *b, size_t blen);

/* Fills out with cryptographically secure random bytes. Returns 0, -1 on failure. */
int cm_random_bytes(void *out, size_t len);

#endif
