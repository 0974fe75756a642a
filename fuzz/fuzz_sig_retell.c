/* fuzz_sig_retell.c - the Retell header parser and verifier (cm_sig_retell_verify), and a
 * sign-then-verify round trip on the same body. Input: a header line, '\n', the body. */
#include <string.h>

#include "cm_sig.h"
#include "fuzz.h"

static const char *const keys[] = {"key_fuzz", "", NULL, "test-api-key"};
enum { NKEYS = sizeof keys / sizeof keys[0] };

static int64_t read_i64(const uint8_t *p, size_t n)
{
    uint64_t v = 0;
    for (size_t i = 0; i < n && i < 8; i++)
        v = v << 8 | p[i];
    return (int64_t)v;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *head, *body;
    size_t hlen, blen;
    fuzz_split(data, size, '\n', &head, &hlen, &body, &blen);
    char *header = fuzz_strndup(head, hlen);
    /* The clock and the window at their extremes as well as at ordinary values: the window
     * check must not overflow whatever now is. */
    static const int64_t nows[] = {1700000000000, 0, INT64_MIN, INT64_MAX};
    static const int64_t tolerances[] = {300000, 0, INT64_MAX};
    for (size_t i = 0; i < sizeof nows / sizeof nows[0]; i++)
        for (size_t t = 0; t < sizeof tolerances / sizeof tolerances[0]; t++) {
            cm_err_t rc =
                cm_sig_retell_verify(keys, NKEYS, body, blen, header, nows[i], tolerances[t]);
            FUZZ_CHECK(rc == CM_ESIG_MISSING || rc == CM_ESIG_MALFORMED || rc == CM_ESIG_STALE ||
                           rc == CM_ESIG_FUTURE || rc == CM_ESIG_MISMATCH || rc == CM_OK,
                       "verify answered %d", rc);
        }

    /* Round trip: what sign writes, verify takes with the same key at the same time, and
     * refuses with another key or another body. */
    int64_t ts = read_i64(data, size);
    char out[CM_SIG_HDR_LEN];
    cm_err_t rc = cm_sig_retell_sign("key_fuzz", body, blen, ts, out);
    if (ts < 0 || ts >= INT64_C(1000000000000000000)) {
        FUZZ_CHECK(rc == CM_EINVAL && !out[0], "sign took ts %lld", (long long)ts);
    } else {
        FUZZ_CHECK(rc == CM_OK, "sign failed for ts %lld", (long long)ts);
        rc = cm_sig_retell_verify(keys, NKEYS, body, blen, out, ts, 0);
        FUZZ_CHECK(rc == CM_OK, "own signature %s refused (%d)", out, rc);
        const char *other[] = {"key_other"};
        rc = cm_sig_retell_verify(other, 1, body, blen, out, ts, 0);
        FUZZ_CHECK(rc == CM_ESIG_MISMATCH, "another key verified (%d)", rc);
        if (blen > 0) {
            rc = cm_sig_retell_verify(keys, NKEYS, body, blen - 1, out, ts, 0);
            FUZZ_CHECK(rc == CM_ESIG_MISMATCH, "a shorter body verified (%d)", rc);
        }
    }
    free(header);
    return 0;
}
