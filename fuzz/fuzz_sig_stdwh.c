/* fuzz_sig_stdwh.c - Standard Webhooks: the timestamp and signature header parsers, the
 * secret decoding and the verifier (cm_sig_stdwh_verify), and a sign-then-verify round
 * trip. Input: webhook-id '\n' webhook-timestamp '\n' webhook-signature '\n' a secret '\n'
 * the body. */
#include <string.h>

#include "cm_sig.h"
#include "fuzz.h"

static const char *const secrets[] = {"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", NULL, "",
                                      "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"};
enum { NSECRETS = sizeof secrets / sizeof secrets[0] };

static int verify_rc_ok(cm_err_t rc)
{
    return rc == CM_ESIG_MISSING || rc == CM_ESIG_MALFORMED || rc == CM_ESIG_STALE ||
           rc == CM_ESIG_FUTURE || rc == CM_ESIG_MISMATCH || rc == CM_OK;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *part[4], *rest = data, *body;
    size_t plen[4], rlen = size, blen;
    for (int i = 0; i < 4; i++) {
        fuzz_split(rest, rlen, '\n', &part[i], &plen[i], &body, &blen);
        rest = body;
        rlen = blen;
    }
    char *id = fuzz_strndup(part[0], plen[0]), *ts = fuzz_strndup(part[1], plen[1]);
    char *sig = fuzz_strndup(part[2], plen[2]), *secret = fuzz_strndup(part[3], plen[3]);
    static const int64_t nows[] = {1614265330, 0, INT64_MIN, INT64_MAX};
    static const int64_t tolerances[] = {300, 0, INT64_MAX};
    for (size_t i = 0; i < sizeof nows / sizeof nows[0]; i++)
        for (size_t t = 0; t < sizeof tolerances / sizeof tolerances[0]; t++) {
            cm_err_t rc = cm_sig_stdwh_verify(secrets, NSECRETS, id, ts, sig, body, blen, nows[i],
                                              tolerances[t]);
            FUZZ_CHECK(verify_rc_ok(rc), "verify answered %d", rc);
        }
    /* A secret from the input: CM_EINVAL when it does not decode, else a verdict. */
    const char *mine[] = {secret};
    cm_err_t rc = cm_sig_stdwh_verify(mine, 1, id, ts, sig, body, blen, 1614265330, 300);
    FUZZ_CHECK(rc == CM_EINVAL || verify_rc_ok(rc), "verify with the input's secret: %d", rc);

    /* Round trip, with the input's secret too when it is a usable one. */
    const char *both[] = {secrets[0], secret};
    size_t n = rc == CM_EINVAL ? 1 : 2;
    char out[CM_SIG_HDR_LEN];
    int64_t when = 1614265330;
    rc = cm_sig_stdwh_sign(both, n, *id ? id : "msg_fuzz", when, body, blen, out);
    FUZZ_CHECK(rc == CM_OK || (n == 2 && !*secret), "sign failed (%d)", rc);
    if (rc == CM_OK) {
        rc = cm_sig_stdwh_verify(both, n, *id ? id : "msg_fuzz", "1614265330", out, body, blen,
                                 when, 0);
        FUZZ_CHECK(rc == CM_OK, "own signature %s refused (%d)", out, rc);
        rc = cm_sig_stdwh_verify(both, n, "msg_other", "1614265330", out, body, blen, when, 0);
        FUZZ_CHECK(rc == CM_ESIG_MISMATCH || !strcmp(*id ? id : "msg_fuzz", "msg_other"),
                   "another message id verified (%d)", rc);
    }
    free(id);
    free(ts);
    free(sig);
    free(secret);
    return 0;
}
