/* cm_sig.h - the four webhook signature schemes: Retell, Cal.com, Stripe and Standard
 * Webhooks. Sign (for the simulators) and verify (for the gateway).
 *
 * Every verify function checks the raw bytes it is given, never a re-serialised body,
 * compares in constant time, accepts any of several keys (secret rotation), and
 * returns one of: CM_OK, CM_ESIG_MISSING (header NULL or empty), CM_ESIG_MALFORMED,
 * CM_ESIG_STALE, CM_ESIG_FUTURE, CM_ESIG_MISMATCH, CM_EINVAL (no keys). A timestamp is
 * checked before any HMAC is computed, so a stale replay costs nothing.
 * Sign functions return CM_OK, CM_EINVAL (no usable key, NULL out, negative or 19+ digit
 * timestamp) or CM_ETOOBIG (the header would exceed CM_SIG_HDR_LEN); on error out is "".
 * Empty keys count as absent: an empty HMAC key would let anyone sign.
 * Keys are borrowed; nothing is retained. All functions are thread-safe.
 */
#ifndef CM_SIG_H
#define CM_SIG_H

#include <stddef.h>
#include <stdint.h>

#include "cm_err.h"

/* Big enough for every header this module writes (Stripe with 4 signatures). */
#define CM_SIG_HDR_LEN 512

/* Retell: "x-retell-signature: v=<unix ms>,d=<64 lowercase hex>",
 * d = hex(HMAC-SHA256(api key, body || decimal ms)). Tolerance applies both ways
 * (the SDK's 5 minutes = 300000 ms). */
cm_err_t cm_sig_retell_sign(const char *api_key, const void *body, size_t len, int64_t ts_ms,
                            char out[CM_SIG_HDR_LEN]);
cm_err_t cm_sig_retell_verify(const char *const *keys, size_t nkeys, const void *body, size_t len,
                              const char *header, int64_t now_ms, int64_t tolerance_ms) CM_WUR;

/* Cal.com: "X-Cal-Signature-256: hex(HMAC-SHA256(secret, body))". No timestamp: replay
 * protection is the receiver's business (event identity + window). */
cm_err_t cm_sig_calcom_sign(const char *secret, const void *body, size_t len,
                            char out[CM_SIG_HDR_LEN]);
cm_err_t cm_sig_calcom_verify(const char *const *secrets, size_t n, const void *body, size_t len,
                              const char *header) CM_WUR;

/* Stripe: "Stripe-Signature: t=<unix s>,v1=<hex>[,v1=<hex>...]", v1 = hex(HMAC-SHA256(
 * whole secret string incl. "whsec_", t "." body)). Sign writes one v1 per secret (as
 * Stripe does while a secret rolls). Verify: only v1 counts, any v1 matching any secret
 * passes; timestamps older than tolerance_s are refused, and so are timestamps more
 * than tolerance_s ahead (stricter than stripe-node, which checks only the past). */
cm_err_t cm_sig_stripe_sign(const char *const *secrets, size_t n, const void *body, size_t len,
                            int64_t ts_s, char out[CM_SIG_HDR_LEN]);
cm_err_t cm_sig_stripe_verify(const char *const *secrets, size_t n, const void *body, size_t len,
                              const char *header, int64_t now_s, int64_t tolerance_s) CM_WUR;

/* Standard Webhooks: headers webhook-id, webhook-timestamp (unix s), webhook-signature
 * (space-separated "v1,<base64>"), v1 = base64(HMAC-SHA256(base64decode(secret minus
 * "whsec_"), id "." ts "." body)). Tolerance applies both ways. A secret that is not
 * valid base64 makes verify return CM_EINVAL. */
cm_err_t cm_sig_stdwh_sign(const char *const *secrets, size_t n, const char *msg_id, int64_t ts_s,
                           const void *body, size_t len, char out[CM_SIG_HDR_LEN]);
cm_err_t cm_sig_stdwh_verify(const char *const *secrets, size_t n, const char *msg_id,
                             const char *ts_header, const char *sig_header, const void *body,
                             size_t len, int64_t now_s, int64_t tolerance_s) CM_WUR;

#endif
