/* fuzz_sig_calcom.c - the Cal.com header check and verifier (cm_sig_calcom_verify), and a
 * sign-then-verify round trip, in lower and upper case hex. Input: a header line, '\n',
 * the body. */
#include <ctype.h>
#include <string.h>

#include "cm_sig.h"
#include "fuzz.h"

static const char *const secrets[] = {"calsecret_fuzz", NULL, "", "calsecret_old"};
enum { NSECRETS = sizeof secrets / sizeof secrets[0] };

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *head, *body;
    size_t hlen, blen;
    fuzz_split(data, size, '\n', &head, &hlen, &body, &blen);
    char *header = fuzz_strndup(head, hlen);
    cm_err_t rc = cm_sig_calcom_verify(secrets, NSECRETS, body, blen, header);
    FUZZ_CHECK(rc == CM_ESIG_MISSING || rc == CM_ESIG_MALFORMED || rc == CM_ESIG_MISMATCH ||
                   rc == CM_OK,
               "verify answered %d", rc);

    char out[CM_SIG_HDR_LEN];
    rc = cm_sig_calcom_sign("calsecret_old", body, blen, out);
    FUZZ_CHECK(rc == CM_OK, "sign failed (%d)", rc);
    rc = cm_sig_calcom_verify(secrets, NSECRETS, body, blen, out);
    FUZZ_CHECK(rc == CM_OK, "own signature %s refused (%d)", out, rc);
    for (char *p = out; *p; p++)
        *p = (char)toupper((unsigned char)*p);
    rc = cm_sig_calcom_verify(secrets, NSECRETS, body, blen, out);
    FUZZ_CHECK(rc == CM_OK, "own signature in upper case %s refused (%d)", out, rc);
    if (blen > 0) {
        rc = cm_sig_calcom_verify(secrets, NSECRETS, body, blen - 1, out);
        FUZZ_CHECK(rc == CM_ESIG_MISMATCH, "a shorter body verified (%d)", rc);
    }
    free(header);
    return 0;
}
