/* cm_sig.c - Retell, Cal.com, Stripe and Standard Webhooks signatures: sign and verify. */
#include "cm_sig.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "cm_codec.h"

/* Signatures considered per header; further ones are ignored. Senders put one, or two
 * while a secret rolls, so 8 is generous and bounds the comparisons a forged header buys. */
#define MAX_SIGS 8
/* 18 decimal digits always fit in int64_t, so a capped parse cannot overflow. */
#define MAX_TS_DIGITS 18
#define TS_LIMIT INT64_C(1000000000000000000) /* 10^18: the first 19-digit value */
#define TS_BUF 24                             /* decimal int64_t and a NUL */
#define HEX_SIG_LEN (2 * CM_SHA256_LEN)
#define B64_SIG_LEN 44 /* 4 * ((32 + 2) / 3): base64 of a SHA-256 MAC, padded */
/* Decoded Standard Webhooks secrets are 24 to 64 bytes in practice; anything longer than
 * this cap is refused as an invalid secret rather than truncated. */
#define MAX_KEY_BYTES 256
#define STDWH_PREFIX "whsec_"

/* An empty key would make the MAC forgeable by anyone, so it is treated like a NULL
 * entry: skipped on verify, and not enough on its own to sign or verify with. */
static int key_usable(const char *key)
{
    return key != NULL && key[0] != '\0';
}

static size_t count_usable(const char *const *keys, size_t n)
{
    size_t usable = 0;
    for (size_t i = 0; i < n; i++)
        usable += key_usable(keys[i]) ? 1 : 0;
    return usable;
}

/* Common argument check for the verify functions: no keys or a NULL body with a length
 * is a caller bug, never something the peer can cause. */
static int verify_args_ok(const char *const *keys, size_t n, const void *body, size_t len,
                          int64_t tolerance)
{
    return keys != NULL && count_usable(keys, n) > 0 && (body != NULL || len == 0) &&
           tolerance >= 0;
}

/* HMAC_Update is handed a real pointer even for an empty body. */
static const void *body_ptr(const void *body)
{
    return body != NULL ? body : "";
}

static int is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static int is_lower_hex(char c)
{
    return is_digit(c) || (c >= 'a' && c <= 'f');
}

static int is_b64_char(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || is_digit(c) || c == '+' || c == '/';
}

/* Exactly len lowercase hex digits. The scan stops at a NUL (not hex) before len. */
static int all_lower_hex(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (!is_lower_hex(s[i]))
            return 0;
    }
    return 1;
}

/* A padded base64 SHA-256 MAC: 43 alphabet characters and one '='. */
static int is_b64_sig(const char *s, size_t len)
{
    if (len != B64_SIG_LEN || s[B64_SIG_LEN - 1] != '=')
        return 0;
    for (size_t i = 0; i < B64_SIG_LEN - 1; i++) {
        if (!is_b64_char(s[i]))
            return 0;
    }
    return 1;
}

/* 1 to 18 decimal digits and nothing else. Returns 0, or -1 when s is not such a number. */
static int parse_ts(const char *s, size_t len, int64_t *out)
{
    int64_t v = 0;
    if (len == 0 || len > MAX_TS_DIGITS)
        return -1;
    for (size_t i = 0; i < len; i++) {
        if (!is_digit(s[i]))
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 0;
}

/* The MAC covers the decimal form of the parsed number (as the providers' SDKs do, which
 * sign the number, not the header's digits), so leading zeros cannot change it. */
static size_t format_ts(int64_t ts, char out[TS_BUF])
{
    int n = snprintf(out, TS_BUF, "%" PRId64, ts);
    return n > 0 ? (size_t)n : 0;
}

/* ts is in [0, 10^18) and tolerance >= 0, so neither subtraction below can overflow,
 * whatever now is. */
static cm_err_t check_window(int64_t ts, int64_t now, int64_t tolerance)
{
    if (now >= ts)
        return now - ts > tolerance ? CM_ESIG_STALE : CM_OK;
    return ts - tolerance > now ? CM_ESIG_FUTURE : CM_OK;
}

/* Compares the expected value with every candidate and does not stop at the first match,
 * so the time taken does not tell which candidate matched. */
static int match_any(const char *expected, size_t len, const char *const *sigs, size_t nsigs)
{
    int found = 0;
    for (size_t i = 0; i < nsigs; i++)
        found |= cm_ct_equal(expected, len, sigs[i], len);
    return found;
}

/* Retell, Cal.com and Stripe: hex(HMAC(key bytes, parts)) against each candidate, for each
 * usable key. */
static cm_err_t verify_hex(const char *const *keys, size_t nkeys, const cm_part_t *parts,
                           size_t nparts, const char *const *sigs, size_t nsigs)
{
    int found = 0;
    for (size_t k = 0; k < nkeys && !found; k++) {
        uint8_t mac[CM_SHA256_LEN];
        char hex[HEX_SIG_LEN + 1];
        if (!key_usable(keys[k]))
            continue;
        cm_hmac_sha256(keys[k], strlen(keys[k]), parts, nparts, mac);
        cm_hex_encode(mac, sizeof mac, hex);
        found = match_any(hex, HEX_SIG_LEN, sigs, nsigs);
    }
    return found ? CM_OK : CM_ESIG_MISMATCH;
}

/* ---- Retell ---- */

/* Exactly "v=<1-18 digits>,d=<64 lowercase hex>". Each test short-circuits on the NUL, so
 * nothing past the terminator is read. */
static int parse_retell(const char *h, int64_t *ts, const char **digest)
{
    const char *p = h + 2;
    size_t ndigits = 0;
    if (h[0] != 'v' || h[1] != '=')
        return -1;
    while (is_digit(p[ndigits]))
        ndigits++;
    if (parse_ts(p, ndigits, ts) != 0)
        return -1;
    p += ndigits;
    if (p[0] != ',' || p[1] != 'd' || p[2] != '=')
        return -1;
    p += 3;
    if (!all_lower_hex(p, HEX_SIG_LEN) || p[HEX_SIG_LEN] != '\0')
        return -1;
    *digest = p;
    return 0;
}

cm_err_t cm_sig_retell_sign(const char *api_key, const void *body, size_t len, int64_t ts_ms,
                            char out[CM_SIG_HDR_LEN])
{
    char tsbuf[TS_BUF];
    uint8_t mac[CM_SHA256_LEN];
    char hex[HEX_SIG_LEN + 1];
    if (out == NULL)
        return CM_EINVAL;
    out[0] = '\0';
    /* A timestamp verify would refuse as malformed is refused here too. */
    if (!key_usable(api_key) || (body == NULL && len > 0) || ts_ms < 0 || ts_ms >= TS_LIMIT)
        return CM_EINVAL;
    size_t tslen = format_ts(ts_ms, tsbuf);
    cm_part_t parts[2] = {{body_ptr(body), len}, {tsbuf, tslen}};
    cm_hmac_sha256(api_key, strlen(api_key), parts, 2, mac);
    cm_hex_encode(mac, sizeof mac, hex);
    snprintf(out, CM_SIG_HDR_LEN, "v=%s,d=%s", tsbuf, hex);
    return CM_OK;
}

cm_err_t cm_sig_retell_verify(const char *const *keys, size_t nkeys, const void *body, size_t len,
                              const char *header, int64_t now_ms, int64_t tolerance_ms)
{
    int64_t ts = 0;
    const char *digest = NULL;
    char tsbuf[TS_BUF];
    if (!verify_args_ok(keys, nkeys, body, len, tolerance_ms))
        return CM_EINVAL;
    if (header == NULL || header[0] == '\0')
        return CM_ESIG_MISSING;
    if (parse_retell(header, &ts, &digest) != 0)
        return CM_ESIG_MALFORMED;
    /* Before any HMAC: a replayed old request costs a parse and nothing more. */
    cm_err_t rc = check_window(ts, now_ms, tolerance_ms);
    if (rc != CM_OK)
        return rc;
    size_t tslen = format_ts(ts, tsbuf);
    cm_part_t parts[2] = {{body_ptr(body), len}, {tsbuf, tslen}};
    return verify_hex(keys, nkeys, parts, 2, &digest, 1);
}

/* ---- Cal.com ---- */

cm_err_t cm_sig_calcom_sign(const char *secret, const void *body, size_t len,
                            char out[CM_SIG_HDR_LEN])
{
    uint8_t mac[CM_SHA256_LEN];
    if (out == NULL)
        return CM_EINVAL;
    out[0] = '\0';
    if (!key_usable(secret) || (body == NULL && len > 0))
        return CM_EINVAL;
    cm_part_t part = {body_ptr(body), len};
    cm_hmac_sha256(secret, strlen(secret), &part, 1, mac);
    cm_hex_encode(mac, sizeof mac, out);
    return CM_OK;
}

cm_err_t cm_sig_calcom_verify(const char *const *secrets, size_t n, const void *body, size_t len,
                              const char *header)
{
    /* Cal.com writes lowercase, but hex case carries no meaning, so the header is
     * lowercased into a copy and compared with our lowercase encoding. */
    char sig[HEX_SIG_LEN + 1];
    const char *sigp = sig;
    if (!verify_args_ok(secrets, n, body, len, 0)) /* no timestamp, so no tolerance */
        return CM_EINVAL;
    if (header == NULL || header[0] == '\0')
        return CM_ESIG_MISSING;
    for (size_t i = 0; i < HEX_SIG_LEN; i++) {
        char c = header[i];
        if (c >= 'A' && c <= 'F')
            c = (char)(c - 'A' + 'a');
        /* A NUL is not hex, so a short header stops here before reading past its end. */
        if (!is_lower_hex(c))
            return CM_ESIG_MALFORMED;
        sig[i] = c;
    }
    if (header[HEX_SIG_LEN] != '\0')
        return CM_ESIG_MALFORMED;
    sig[HEX_SIG_LEN] = '\0';
    cm_part_t part = {body_ptr(body), len};
    return verify_hex(secrets, n, &part, 1, &sigp, 1);
}

/* ---- Stripe ---- */

/* Comma-separated "key=value" items. Exactly one t (1-18 digits) and at least one v1
 * (64 lowercase hex) are required; other schemes (v0, future ones) are skipped unread.
 * Only the first MAX_SIGS v1 values are kept; later ones are still checked for form. */
static int parse_stripe(const char *h, int64_t *ts, const char *sigs[MAX_SIGS], size_t *nsigs)
{
    int have_t = 0;
    int have_v1 = 0;
    const char *p = h;
    *nsigs = 0;
    for (;;) {
        size_t item_len = strcspn(p, ",");
        const char *eq = memchr(p, '=', item_len);
        if (eq == NULL || eq == p)
            return -1;
        size_t key_len = (size_t)(eq - p);
        const char *val = eq + 1;
        size_t val_len = item_len - key_len - 1;
        if (key_len == 1 && p[0] == 't') {
            /* Two timestamps would leave it open which one was signed. */
            if (have_t || parse_ts(val, val_len, ts) != 0)
                return -1;
            have_t = 1;
        } else if (key_len == 2 && p[0] == 'v' && p[1] == '1') {
            if (val_len != HEX_SIG_LEN || !all_lower_hex(val, HEX_SIG_LEN))
                return -1;
            have_v1 = 1;
            if (*nsigs < MAX_SIGS)
                sigs[(*nsigs)++] = val;
        }
        if (p[item_len] == '\0')
            break;
        p += item_len + 1;
    }
    return have_t && have_v1 ? 0 : -1;
}

cm_err_t cm_sig_stripe_sign(const char *const *secrets, size_t n, const void *body, size_t len,
                            int64_t ts_s, char out[CM_SIG_HDR_LEN])
{
    char tsbuf[TS_BUF];
    size_t used = 0;
    if (out == NULL)
        return CM_EINVAL;
    out[0] = '\0';
    if (secrets == NULL || count_usable(secrets, n) == 0 || (body == NULL && len > 0) || ts_s < 0 ||
        ts_s >= TS_LIMIT)
        return CM_EINVAL;
    size_t tslen = format_ts(ts_s, tsbuf);
    cm_part_t parts[3] = {{tsbuf, tslen}, {".", 1}, {body_ptr(body), len}};
    used = (size_t)snprintf(out, CM_SIG_HDR_LEN, "t=%s", tsbuf);
    for (size_t i = 0; i < n; i++) {
        uint8_t mac[CM_SHA256_LEN];
        char hex[HEX_SIG_LEN + 1];
        if (!key_usable(secrets[i]))
            continue;
        cm_hmac_sha256(secrets[i], strlen(secrets[i]), parts, 3, mac);
        cm_hex_encode(mac, sizeof mac, hex);
        /* ",v1=" + 64 hex; a half-written header is never handed out. */
        if (used + 4 + HEX_SIG_LEN >= CM_SIG_HDR_LEN) {
            out[0] = '\0';
            return CM_ETOOBIG;
        }
        used += (size_t)snprintf(out + used, CM_SIG_HDR_LEN - used, ",v1=%s", hex);
    }
    return CM_OK;
}

cm_err_t cm_sig_stripe_verify(const char *const *secrets, size_t n, const void *body, size_t len,
                              const char *header, int64_t now_s, int64_t tolerance_s)
{
    int64_t ts = 0;
    const char *sigs[MAX_SIGS];
    size_t nsigs = 0;
    char tsbuf[TS_BUF];
    if (!verify_args_ok(secrets, n, body, len, tolerance_s))
        return CM_EINVAL;
    if (header == NULL || header[0] == '\0')
        return CM_ESIG_MISSING;
    if (parse_stripe(header, &ts, sigs, &nsigs) != 0)
        return CM_ESIG_MALFORMED;
    /* Both directions, before any HMAC (see cm_sig.h on the future side). */
    cm_err_t rc = check_window(ts, now_s, tolerance_s);
    if (rc != CM_OK)
        return rc;
    size_t tslen = format_ts(ts, tsbuf);
    cm_part_t parts[3] = {{tsbuf, tslen}, {".", 1}, {body_ptr(body), len}};
    return verify_hex(secrets, n, parts, 3, sigs, nsigs);
}

/* ---- Standard Webhooks ---- */

/* The key is the base64 after an optional "whsec_" prefix. Returns the key length, or -1
 * when the secret is not base64, decodes to nothing, or is over MAX_KEY_BYTES. */
static long decode_secret(const char *secret, uint8_t key[MAX_KEY_BYTES])
{
    size_t plen = strlen(STDWH_PREFIX);
    const char *b64 = strncmp(secret, STDWH_PREFIX, plen) == 0 ? secret + plen : secret;
    long keylen = cm_b64_decode(b64, strlen(b64), key, MAX_KEY_BYTES);
    return keylen > 0 ? keylen : -1;
}

/* One bad secret in the list is a configuration error; reporting it whatever the request
 * carries keeps it from hiding behind a good key that happens to match first. */
static int secrets_decode(const char *const *secrets, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uint8_t key[MAX_KEY_BYTES];
        if (key_usable(secrets[i]) && decode_secret(secrets[i], key) < 0)
            return 0;
    }
    return 1;
}

/* Space-separated "version,signature" tokens; runs of spaces are tolerated. A token
 * without a version and a comma is malformed; versions other than v1 (v1a, future ones)
 * are skipped unread; a v1 signature must be a padded base64 SHA-256 MAC. At least one v1
 * is required, and the first MAX_SIGS are kept. */
static int parse_stdwh(const char *h, const char *sigs[MAX_SIGS], size_t *nsigs)
{
    int have_v1 = 0;
    const char *p = h;
    *nsigs = 0;
    while (*p != '\0') {
        if (*p == ' ') {
            p++;
            continue;
        }
        size_t tok_len = strcspn(p, " ");
        const char *comma = memchr(p, ',', tok_len);
        if (comma == NULL || comma == p)
            return -1;
        size_t ver_len = (size_t)(comma - p);
        if (ver_len == 2 && p[0] == 'v' && p[1] == '1') {
            if (!is_b64_sig(comma + 1, tok_len - ver_len - 1))
                return -1;
            have_v1 = 1;
            if (*nsigs < MAX_SIGS)
                sigs[(*nsigs)++] = comma + 1;
        }
        p += tok_len;
    }
    return have_v1 ? 0 : -1;
}

/* base64(HMAC(decoded secret, id "." ts "." body)) into out (B64_SIG_LEN + 1 bytes). */
static int stdwh_mac(const char *secret, const cm_part_t parts[5], char out[B64_SIG_LEN + 1])
{
    uint8_t key[MAX_KEY_BYTES];
    uint8_t mac[CM_SHA256_LEN];
    long keylen = decode_secret(secret, key);
    if (keylen < 0)
        return -1;
    cm_hmac_sha256(key, (size_t)keylen, parts, 5, mac);
    cm_b64_encode(mac, sizeof mac, out);
    return 0;
}

cm_err_t cm_sig_stdwh_sign(const char *const *secrets, size_t n, const char *msg_id, int64_t ts_s,
                           const void *body, size_t len, char out[CM_SIG_HDR_LEN])
{
    char tsbuf[TS_BUF];
    size_t used = 0;
    if (out == NULL)
        return CM_EINVAL;
    out[0] = '\0';
    if (secrets == NULL || count_usable(secrets, n) == 0 || msg_id == NULL || msg_id[0] == '\0' ||
        (body == NULL && len > 0) || ts_s < 0 || ts_s >= TS_LIMIT || !secrets_decode(secrets, n))
        return CM_EINVAL;
    size_t tslen = format_ts(ts_s, tsbuf);
    cm_part_t parts[5] = {
        {msg_id, strlen(msg_id)}, {".", 1}, {tsbuf, tslen}, {".", 1}, {body_ptr(body), len}};
    for (size_t i = 0; i < n; i++) {
        char sig[B64_SIG_LEN + 1];
        if (!key_usable(secrets[i]))
            continue;
        if (stdwh_mac(secrets[i], parts, sig) != 0) {
            out[0] = '\0';
            return CM_EINVAL;
        }
        /* Optional separating space, "v1," and the signature. */
        if (used + (used > 0) + 3 + B64_SIG_LEN >= CM_SIG_HDR_LEN) {
            out[0] = '\0';
            return CM_ETOOBIG;
        }
        used += (size_t)snprintf(out + used, CM_SIG_HDR_LEN - used, "%sv1,%s", used > 0 ? " " : "",
                                 sig);
    }
    return CM_OK;
}

cm_err_t cm_sig_stdwh_verify(const char *const *secrets, size_t n, const char *msg_id,
                             const char *ts_header, const char *sig_header, const void *body,
                             size_t len, int64_t now_s, int64_t tolerance_s)
{
    int64_t ts = 0;
    const char *sigs[MAX_SIGS];
    size_t nsigs = 0;
    char tsbuf[TS_BUF];
    if (!verify_args_ok(secrets, n, body, len, tolerance_s) || !secrets_decode(secrets, n))
        return CM_EINVAL;
    if (msg_id == NULL || msg_id[0] == '\0' || ts_header == NULL || ts_header[0] == '\0' ||
        sig_header == NULL || sig_header[0] == '\0')
        return CM_ESIG_MISSING;
    if (parse_ts(ts_header, strlen(ts_header), &ts) != 0 ||
        parse_stdwh(sig_header, sigs, &nsigs) != 0)
        return CM_ESIG_MALFORMED;
    cm_err_t rc = check_window(ts, now_s, tolerance_s);
    if (rc != CM_OK)
        return rc;
    size_t tslen = format_ts(ts, tsbuf);
    cm_part_t parts[5] = {
        {msg_id, strlen(msg_id)}, {".", 1}, {tsbuf, tslen}, {".", 1}, {body_ptr(body), len}};
    rc = CM_ESIG_MISMATCH;
    for (size_t k = 0; k < n && rc != CM_OK; k++) {
        char expected[B64_SIG_LEN + 1];
        /* Every usable secret decoded above, so stdwh_mac cannot fail here. */
        if (!key_usable(secrets[k]) || stdwh_mac(secrets[k], parts, expected) != 0)
            continue;
        if (match_any(expected, B64_SIG_LEN, sigs, nsigs))
            rc = CM_OK;
    }
    return rc;
}
