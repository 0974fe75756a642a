/* fuzz_sig_stripe.c - the Stripe-Signature parser and verifier (cm_sig_stripe_verify), and
 * a sign-then-verify round trip with one to four secrets, also with other schemes' items
 * around the v1 ones. Input: a header line, '\n', the body. */
#include <string.h>

#include "cm_sig.h"
#include "fuzz.h"

static const char *const secrets[] = {"whsec_test_secret", "whsec_fuzz", NULL, "", "whsec_old"};
enum { NSECRETS = sizeof secrets / sizeof secrets[0] };

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *head, *body;
    size_t hlen, blen;
    fuzz_split(data, size, '\n', &head, &hlen, &body, &blen);
    char *header = fuzz_strndup(head, hlen);
    static const int64_t nows[] = {1492774577, 0, INT64_MIN, INT64_MAX};
    static const int64_t tolerances[] = {300, 0, INT64_MAX};
    for (size_t i = 0; i < sizeof nows / sizeof nows[0]; i++)
        for (size_t t = 0; t < sizeof tolerances / sizeof tolerances[0]; t++) {
            cm_err_t rc =
                cm_sig_stripe_verify(secrets, NSECRETS, body, blen, header, nows[i], tolerances[t]);
            FUZZ_CHECK(rc == CM_ESIG_MISSING || rc == CM_ESIG_MALFORMED || rc == CM_ESIG_STALE ||
                           rc == CM_ESIG_FUTURE || rc == CM_ESIG_MISMATCH || rc == CM_OK,
                       "verify answered %d", rc);
        }

    /* The first byte picks how many secrets sign and the timestamp. */
    size_t nsign = 1 + (size ? data[0] % 4 : 0);
    int64_t ts = 1492774577 + (size > 1 ? data[1] : 0);
    char out[CM_SIG_HDR_LEN];
    cm_err_t rc = cm_sig_stripe_sign(secrets, nsign, body, blen, ts, out);
    FUZZ_CHECK(rc == CM_OK, "sign with %zu secrets failed (%d)", nsign, rc);
    for (size_t k = 0; k < nsign; k++) {
        if (!secrets[k] || !*secrets[k])
            continue;
        rc = cm_sig_stripe_verify(&secrets[k], 1, body, blen, out, ts, 0);
        FUZZ_CHECK(rc == CM_OK, "own signature %s refused for secret %zu (%d)", out, k, rc);
    }
    /* Other schemes and unknown items are skipped unread. */
    char more[2 * CM_SIG_HDR_LEN];
    snprintf(more, sizeof more, "v0=abc,%s,x=y", out);
    rc = cm_sig_stripe_verify(secrets, 1, body, blen, more, ts, 0);
    FUZZ_CHECK(rc == CM_OK, "%s refused (%d)", more, rc);
    const char *other[] = {"whsec_other"};
    rc = cm_sig_stripe_verify(other, 1, body, blen, out, ts, 0);
    FUZZ_CHECK(rc == CM_ESIG_MISMATCH, "another secret verified (%d)", rc);
    free(header);
    return 0;
}
