/* test_cm_sig.c - Criterion tests for the four webhook signature schemes in cm_sig.c. */
#include <criterion/criterion.h>

#include <stdio.h>
#include <string.h>

#include "cm_sig.h"

/* Published or independently computed (openssl dgst -hmac) vectors. */
#define RT_KEY "test-api-key"
#define RT_TS INT64_C(1700000000000)
#define RT_BODY "{\"event\":\"call_ended\"}"
#define RT_HEX "07024cabe7dd8f6d1c6e4a8324ca92c812e6ad4a7ee506c04f7e462e3321823e"
#define RT_HDR "v=1700000000000,d=" RT_HEX
#define RT_TOL INT64_C(300000)

#define CAL_KEY "cal-secret"
#define CAL_BODY "{\"triggerEvent\":\"BOOKING_CREATED\"}"
#define CAL_HEX "cf51df2893fd71b1980d99a59a5eee3d05546826f8dadd9e562d4cde9f50acf4"

#define ST_KEY "whsec_test_secret"
#define ST_KEY2 "whsec_second_secret"
#define ST_TS INT64_C(1492774577)
#define ST_BODY "{\"id\":\"evt_test\"}"
#define ST_HEX "22f7d74836ddad3284a2b80853dd2fe731655c1bfddcff3c3666a500cf3abd80"
#define ST_HEX2 "dfc3f710e1e4672214461f01bdc7828299eb01937c12b0bf192df361518ca118"
#define ST_HDR "t=1492774577,v1=" ST_HEX
#define ST_TOL INT64_C(300)
/* Well-formed but signed by nobody. */
#define ZERO_HEX "0000000000000000000000000000000000000000000000000000000000000000"

#define SW_KEY "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
#define SW_KEY_BARE "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
#define SW_KEY_OTHER "whsec_c2Vjb25kLXNlY3JldC1rZXktMTIzNA=="
#define SW_ID "msg_p5jXN8AQM9LWM0D4loKWxJek"
#define SW_TS_STR "1614265330"
#define SW_TS INT64_C(1614265330)
#define SW_BODY "{\"test\": 2432232314}"
#define SW_B64 "g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
#define SW_SIG "v1," SW_B64
#define SW_TOL INT64_C(300)
#define ZERO_B64 "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="

static const char *const rt_keys[] = {RT_KEY};
static const char *const cal_keys[] = {CAL_KEY};
static const char *const st_keys[] = {ST_KEY};
static const char *const sw_keys[] = {SW_KEY};

/* Shows both codes by name, so a failure says what came back, not just "false". */
#define assert_rc(got, want)                                                                       \
    do {                                                                                           \
        cm_err_t got_ = (got);                                                                     \
        cm_err_t want_ = (want);                                                                   \
        cr_assert_eq(got_, want_, "%s: got %d (%s), want %d (%s)", #got, (int)got_,                \
                     cm_strerror(got_), (int)want_, cm_strerror(want_));                           \
    } while (0)

static cm_err_t rt(const char *header, int64_t now)
{
    return cm_sig_retell_verify(rt_keys, 1, RT_BODY, strlen(RT_BODY), header, now, RT_TOL);
}

static cm_err_t cal(const char *header)
{
    return cm_sig_calcom_verify(cal_keys, 1, CAL_BODY, strlen(CAL_BODY), header);
}

static cm_err_t st(const char *header, int64_t now)
{
    return cm_sig_stripe_verify(st_keys, 1, ST_BODY, strlen(ST_BODY), header, now, ST_TOL);
}

static cm_err_t sw(const char *id, const char *ts, const char *sig, int64_t now)
{
    return cm_sig_stdwh_verify(sw_keys, 1, id, ts, sig, SW_BODY, strlen(SW_BODY), now, SW_TOL);
}

/* ---- Retell ---- */

Test(retell, vector_verifies)
{
    assert_rc(rt(RT_HDR, RT_TS), CM_OK);
}

Test(retell, sign_produces_vector)
{
    char out[CM_SIG_HDR_LEN];
    assert_rc(cm_sig_retell_sign(RT_KEY, RT_BODY, strlen(RT_BODY), RT_TS, out), CM_OK);
    cr_assert_str_eq(out, RT_HDR, "got '%s', want '%s'", out, RT_HDR);
}

Test(retell, sign_verify_round_trip_empty_body)
{
    char out[CM_SIG_HDR_LEN];
    assert_rc(cm_sig_retell_sign(RT_KEY, NULL, 0, RT_TS, out), CM_OK);
    assert_rc(cm_sig_retell_verify(rt_keys, 1, NULL, 0, out, RT_TS, RT_TOL), CM_OK);
    assert_rc(cm_sig_retell_verify(rt_keys, 1, "x", 1, out, RT_TS, RT_TOL), CM_ESIG_MISMATCH);
}

Test(retell, wrong_key)
{
    const char *keys[] = {"test-api-kez"};
    assert_rc(cm_sig_retell_verify(keys, 1, RT_BODY, strlen(RT_BODY), RT_HDR, RT_TS, RT_TOL),
              CM_ESIG_MISMATCH);
}

Test(retell, altered_body)
{
    char body[] = RT_BODY;
    body[3] ^= 1;
    assert_rc(cm_sig_retell_verify(rt_keys, 1, body, strlen(body), RT_HDR, RT_TS, RT_TOL),
              CM_ESIG_MISMATCH);
    /* One byte short is an alteration too. */
    assert_rc(cm_sig_retell_verify(rt_keys, 1, RT_BODY, strlen(RT_BODY) - 1, RT_HDR, RT_TS, RT_TOL),
              CM_ESIG_MISMATCH);
}

Test(retell, altered_digest)
{
    char hdr[] = RT_HDR;
    hdr[strlen(hdr) - 1] = hdr[strlen(hdr) - 1] == '0' ? '1' : '0';
    assert_rc(rt(hdr, RT_TS), CM_ESIG_MISMATCH);
}

Test(retell, tolerance_edges)
{
    assert_rc(rt(RT_HDR, RT_TS + RT_TOL), CM_OK);
    assert_rc(rt(RT_HDR, RT_TS - RT_TOL), CM_OK);
    assert_rc(rt(RT_HDR, RT_TS + RT_TOL + 1), CM_ESIG_STALE);
    assert_rc(rt(RT_HDR, RT_TS - RT_TOL - 1), CM_ESIG_FUTURE);
}

Test(retell, window_checked_before_mac)
{
    /* A wrong key would give MISMATCH; STALE/FUTURE show the window came first. */
    const char *keys[] = {"nope"};
    assert_rc(
        cm_sig_retell_verify(keys, 1, RT_BODY, strlen(RT_BODY), RT_HDR, RT_TS + RT_TOL + 1, RT_TOL),
        CM_ESIG_STALE);
    assert_rc(
        cm_sig_retell_verify(keys, 1, RT_BODY, strlen(RT_BODY), RT_HDR, RT_TS - RT_TOL - 1, RT_TOL),
        CM_ESIG_FUTURE);
}

Test(retell, extreme_now_does_not_overflow)
{
    assert_rc(rt(RT_HDR, INT64_MAX), CM_ESIG_STALE);
    assert_rc(rt(RT_HDR, INT64_MIN), CM_ESIG_FUTURE);
}

Test(retell, malformed)
{
    static const char *const bad[] = {
        "garbage",
        "v=1700000000000",
        "d=" RT_HEX,
        "v=,d=" RT_HEX,
        "v=17000000000x0,d=" RT_HEX,
        "v=1700000000000,d=07024CABE7DD8F6D1C6E4A8324CA92C812E6AD4A7EE506C04F7E462E3321823E",
        "v=1700000000000,d=07024cabe7dd8f6d1c6e4a8324ca92c812e6ad4a7ee506c04f7e462e3321823",
        "v=1700000000000,d=" RT_HEX "0",
        "v=1700000000000,d=" RT_HEX ",x=1",
        "x=1,v=1700000000000,d=" RT_HEX,
        "d=" RT_HEX ",v=1700000000000",
        " v=1700000000000,d=" RT_HEX,
        "v=1700000000000, d=" RT_HEX,
        "v=1700000000000,d=" RT_HEX " ",
        "v=-1700000000000,d=" RT_HEX,
        "v=1000000000000000000,d=" RT_HEX, /* 19 digits */
        "v=1700000000000;d=" RT_HEX,
        "v",
        "v=",
        "v=1,",
        "v=1,d",
        "v=1,d=",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cm_err_t rc = rt(bad[i], RT_TS);
        cr_assert_eq(rc, CM_ESIG_MALFORMED, "'%s': got %d (%s), want MALFORMED", bad[i], (int)rc,
                     cm_strerror(rc));
    }
}

Test(retell, leading_zeros_sign_the_number)
{
    /* The SDK MACs the parsed number, so "01700000000000" is the same timestamp. */
    assert_rc(rt("v=01700000000000,d=" RT_HEX, RT_TS), CM_OK);
}

Test(retell, missing)
{
    assert_rc(rt(NULL, RT_TS), CM_ESIG_MISSING);
    assert_rc(rt("", RT_TS), CM_ESIG_MISSING);
}

Test(retell, rotation_second_key_matches)
{
    const char *keys[] = {"old-key", RT_KEY};
    assert_rc(cm_sig_retell_verify(keys, 2, RT_BODY, strlen(RT_BODY), RT_HDR, RT_TS, RT_TOL),
              CM_OK);
    const char *with_holes[] = {NULL, "", RT_KEY};
    assert_rc(cm_sig_retell_verify(with_holes, 3, RT_BODY, strlen(RT_BODY), RT_HDR, RT_TS, RT_TOL),
              CM_OK);
}

Test(retell, no_keys)
{
    const char *none[] = {NULL, ""};
    assert_rc(cm_sig_retell_verify(rt_keys, 0, RT_BODY, strlen(RT_BODY), RT_HDR, RT_TS, RT_TOL),
              CM_EINVAL);
    assert_rc(cm_sig_retell_verify(NULL, 1, RT_BODY, strlen(RT_BODY), RT_HDR, RT_TS, RT_TOL),
              CM_EINVAL);
    assert_rc(cm_sig_retell_verify(none, 2, RT_BODY, strlen(RT_BODY), RT_HDR, RT_TS, RT_TOL),
              CM_EINVAL);
    /* Argument errors win over a missing header. */
    assert_rc(cm_sig_retell_verify(rt_keys, 0, RT_BODY, strlen(RT_BODY), NULL, RT_TS, RT_TOL),
              CM_EINVAL);
}

Test(retell, sign_rejects_bad_arguments)
{
    char out[CM_SIG_HDR_LEN];
    assert_rc(cm_sig_retell_sign(NULL, RT_BODY, 1, RT_TS, out), CM_EINVAL);
    cr_assert_str_eq(out, "");
    assert_rc(cm_sig_retell_sign(RT_KEY, RT_BODY, 1, -1, out), CM_EINVAL);
    assert_rc(cm_sig_retell_sign(RT_KEY, RT_BODY, 1, INT64_C(1000000000000000000), out), CM_EINVAL);
    assert_rc(cm_sig_retell_sign(RT_KEY, NULL, 1, RT_TS, out), CM_EINVAL);
}

/* ---- Cal.com ---- */

Test(calcom, vector_verifies)
{
    assert_rc(cal(CAL_HEX), CM_OK);
}

Test(calcom, sign_produces_vector)
{
    char out[CM_SIG_HDR_LEN];
    assert_rc(cm_sig_calcom_sign(CAL_KEY, CAL_BODY, strlen(CAL_BODY), out), CM_OK);
    cr_assert_str_eq(out, CAL_HEX, "got '%s', want '%s'", out, CAL_HEX);
}

Test(calcom, uppercase_hex_accepted)
{
    char upper[] = CAL_HEX;
    for (char *p = upper; *p; p++) {
        if (*p >= 'a' && *p <= 'f')
            *p = (char)(*p - 'a' + 'A');
    }
    assert_rc(cal(upper), CM_OK);
}

Test(calcom, wrong_key)
{
    const char *keys[] = {"cal-secreT"};
    assert_rc(cm_sig_calcom_verify(keys, 1, CAL_BODY, strlen(CAL_BODY), CAL_HEX), CM_ESIG_MISMATCH);
}

Test(calcom, altered_body)
{
    char body[] = CAL_BODY;
    body[strlen(body) - 2] = 'E';
    assert_rc(cm_sig_calcom_verify(cal_keys, 1, body, strlen(body), CAL_HEX), CM_ESIG_MISMATCH);
}

Test(calcom, malformed)
{
    static const char *const bad[] = {
        "garbage",
        "sha256=" CAL_HEX,
        "cf51df2893fd71b1980d99a59a5eee3d05546826f8dadd9e562d4cde9f50acf",
        CAL_HEX "0",
        CAL_HEX " ",
        " " CAL_HEX,
        "gf51df2893fd71b1980d99a59a5eee3d05546826f8dadd9e562d4cde9f50acf4",
        "t=1,v1=" CAL_HEX,
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cm_err_t rc = cal(bad[i]);
        cr_assert_eq(rc, CM_ESIG_MALFORMED, "'%s': got %d (%s), want MALFORMED", bad[i], (int)rc,
                     cm_strerror(rc));
    }
}

Test(calcom, missing)
{
    assert_rc(cal(NULL), CM_ESIG_MISSING);
    assert_rc(cal(""), CM_ESIG_MISSING);
}

Test(calcom, rotation_second_key_matches)
{
    const char *keys[] = {"previous", NULL, CAL_KEY};
    assert_rc(cm_sig_calcom_verify(keys, 3, CAL_BODY, strlen(CAL_BODY), CAL_HEX), CM_OK);
}

Test(calcom, no_keys)
{
    const char *none[] = {NULL};
    assert_rc(cm_sig_calcom_verify(cal_keys, 0, CAL_BODY, strlen(CAL_BODY), CAL_HEX), CM_EINVAL);
    assert_rc(cm_sig_calcom_verify(NULL, 1, CAL_BODY, strlen(CAL_BODY), CAL_HEX), CM_EINVAL);
    assert_rc(cm_sig_calcom_verify(none, 1, CAL_BODY, strlen(CAL_BODY), CAL_HEX), CM_EINVAL);
}

/* ---- Stripe ---- */

Test(stripe, vector_verifies)
{
    assert_rc(st(ST_HDR, ST_TS), CM_OK);
}

Test(stripe, sign_produces_vector)
{
    char out[CM_SIG_HDR_LEN];
    assert_rc(cm_sig_stripe_sign(st_keys, 1, ST_BODY, strlen(ST_BODY), ST_TS, out), CM_OK);
    cr_assert_str_eq(out, ST_HDR, "got '%s', want '%s'", out, ST_HDR);
}

Test(stripe, sign_one_v1_per_secret_in_order)
{
    const char *keys[] = {ST_KEY, NULL, ST_KEY2};
    const char *want = ST_HDR ",v1=" ST_HEX2;
    char out[CM_SIG_HDR_LEN];
    assert_rc(cm_sig_stripe_sign(keys, 3, ST_BODY, strlen(ST_BODY), ST_TS, out), CM_OK);
    cr_assert_str_eq(out, want, "got '%s', want '%s'", out, want);
    /* A receiver that knows either secret accepts it. */
    const char *only2[] = {ST_KEY2};
    assert_rc(cm_sig_stripe_verify(only2, 1, ST_BODY, strlen(ST_BODY), out, ST_TS, ST_TOL), CM_OK);
    assert_rc(st(out, ST_TS), CM_OK);
}

Test(stripe, sign_too_many_secrets)
{
    const char *keys[8] = {ST_KEY, ST_KEY, ST_KEY, ST_KEY, ST_KEY, ST_KEY, ST_KEY, ST_KEY};
    char out[CM_SIG_HDR_LEN];
    assert_rc(cm_sig_stripe_sign(keys, 4, ST_BODY, strlen(ST_BODY), ST_TS, out), CM_OK);
    assert_rc(cm_sig_stripe_sign(keys, 8, ST_BODY, strlen(ST_BODY), ST_TS, out), CM_ETOOBIG);
    cr_assert_str_eq(out, "");
}

Test(stripe, wrong_key)
{
    const char *keys[] = {"whsec_test_secreT"};
    assert_rc(cm_sig_stripe_verify(keys, 1, ST_BODY, strlen(ST_BODY), ST_HDR, ST_TS, ST_TOL),
              CM_ESIG_MISMATCH);
    /* The secret is the whole string: without "whsec_" it is a different key. */
    const char *bare[] = {"test_secret"};
    assert_rc(cm_sig_stripe_verify(bare, 1, ST_BODY, strlen(ST_BODY), ST_HDR, ST_TS, ST_TOL),
              CM_ESIG_MISMATCH);
}

Test(stripe, altered_body)
{
    char body[] = ST_BODY;
    body[8] = 'E';
    assert_rc(cm_sig_stripe_verify(st_keys, 1, body, strlen(body), ST_HDR, ST_TS, ST_TOL),
              CM_ESIG_MISMATCH);
}

Test(stripe, altered_timestamp)
{
    /* t is inside the MAC: moving it (even within the window) breaks the signature. */
    assert_rc(st("t=1492774578,v1=" ST_HEX, ST_TS), CM_ESIG_MISMATCH);
}

Test(stripe, tolerance_edges)
{
    assert_rc(st(ST_HDR, ST_TS + ST_TOL), CM_OK);
    assert_rc(st(ST_HDR, ST_TS - ST_TOL), CM_OK);
    assert_rc(st(ST_HDR, ST_TS + ST_TOL + 1), CM_ESIG_STALE);
    assert_rc(st(ST_HDR, ST_TS - ST_TOL - 1), CM_ESIG_FUTURE);
}

Test(stripe, window_checked_before_mac)
{
    assert_rc(st("t=1492774577,v1=" ZERO_HEX, ST_TS + ST_TOL + 1), CM_ESIG_STALE);
}

Test(stripe, second_v1_matches)
{
    assert_rc(st("t=1492774577,v1=" ZERO_HEX ",v1=" ST_HEX, ST_TS), CM_OK);
}

Test(stripe, unknown_schemes_ignored)
{
    assert_rc(st("t=1492774577,v0=" ST_HEX ",v1=" ST_HEX, ST_TS), CM_OK);
    assert_rc(st("v1=" ST_HEX ",t=1492774577,v2=whatever,v0=x", ST_TS), CM_OK);
}

Test(stripe, v0_only_refused)
{
    /* v0 carries the correct MAC, but only v1 counts. */
    assert_rc(st("t=1492774577,v0=" ST_HEX, ST_TS), CM_ESIG_MALFORMED);
}

Test(stripe, only_first_eight_v1_considered)
{
    char hdr[1024];
    int n = snprintf(hdr, sizeof hdr, "t=1492774577");
    for (int i = 0; i < 7; i++)
        n += snprintf(hdr + n, sizeof hdr - (size_t)n, ",v1=" ZERO_HEX);
    snprintf(hdr + n, sizeof hdr - (size_t)n, ",v1=" ST_HEX);
    assert_rc(st(hdr, ST_TS), CM_OK); /* the eighth */

    n = snprintf(hdr, sizeof hdr, "t=1492774577");
    for (int i = 0; i < 8; i++)
        n += snprintf(hdr + n, sizeof hdr - (size_t)n, ",v1=" ZERO_HEX);
    snprintf(hdr + n, sizeof hdr - (size_t)n, ",v1=" ST_HEX);
    assert_rc(st(hdr, ST_TS), CM_ESIG_MISMATCH); /* the ninth is ignored */
}

Test(stripe, malformed)
{
    static const char *const bad[] = {
        "garbage",
        "v1=" ST_HEX,                       /* no t */
        "t=1492774577",                     /* no signature at all */
        "t=1492774577,v2=" ST_HEX,          /* no v1 */
        "t=14927745x7,v1=" ST_HEX,          /* non-digit timestamp */
        "t=,v1=" ST_HEX,                    /* empty timestamp */
        "t=-1492774577,v1=" ST_HEX,         /* signed timestamp */
        "t=1000000000000000000,v1=" ST_HEX, /* 19 digits */
        "t=1492774577,v1=22f7d74836ddad3284a2b80853dd2fe731655c1bfddcff3c3666a500cf3abd8",
        "t=1492774577,v1=" ST_HEX "0",
        "t=1492774577,v1=22F7D74836DDAD3284A2B80853DD2FE731655C1BFDDCFF3C3666A500CF3ABD80",
        "t=1492774577,v1=",
        "t=1492774577,t=1492774577,v1=" ST_HEX, /* two timestamps */
        "t=1492774577,,v1=" ST_HEX,             /* empty item */
        "t=1492774577,v1=" ST_HEX ",",          /* trailing comma */
        "t=1492774577,=x,v1=" ST_HEX,           /* empty key */
        "t=1492774577,v1" ST_HEX,               /* no '=' */
        "t=1492774577, v1=" ST_HEX,             /* " v1" is not v1 */
        ",",
        "=",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cm_err_t rc = st(bad[i], ST_TS);
        cr_assert_eq(rc, CM_ESIG_MALFORMED, "'%s': got %d (%s), want MALFORMED", bad[i], (int)rc,
                     cm_strerror(rc));
    }
}

Test(stripe, missing)
{
    assert_rc(st(NULL, ST_TS), CM_ESIG_MISSING);
    assert_rc(st("", ST_TS), CM_ESIG_MISSING);
}

Test(stripe, rotation_second_key_matches)
{
    const char *keys[] = {ST_KEY2, ST_KEY};
    assert_rc(cm_sig_stripe_verify(keys, 2, ST_BODY, strlen(ST_BODY), ST_HDR, ST_TS, ST_TOL),
              CM_OK);
}

Test(stripe, no_keys)
{
    char out[CM_SIG_HDR_LEN];
    assert_rc(cm_sig_stripe_verify(st_keys, 0, ST_BODY, strlen(ST_BODY), ST_HDR, ST_TS, ST_TOL),
              CM_EINVAL);
    assert_rc(cm_sig_stripe_verify(NULL, 1, ST_BODY, strlen(ST_BODY), ST_HDR, ST_TS, ST_TOL),
              CM_EINVAL);
    assert_rc(cm_sig_stripe_sign(st_keys, 0, ST_BODY, strlen(ST_BODY), ST_TS, out), CM_EINVAL);
    assert_rc(cm_sig_stripe_verify(st_keys, 1, ST_BODY, strlen(ST_BODY), ST_HDR, ST_TS, -1),
              CM_EINVAL);
}

/* ---- Standard Webhooks ---- */

Test(stdwh, vector_verifies)
{
    assert_rc(sw(SW_ID, SW_TS_STR, SW_SIG, SW_TS), CM_OK);
}

Test(stdwh, sign_produces_vector)
{
    char out[CM_SIG_HDR_LEN];
    assert_rc(cm_sig_stdwh_sign(sw_keys, 1, SW_ID, SW_TS, SW_BODY, strlen(SW_BODY), out), CM_OK);
    cr_assert_str_eq(out, SW_SIG, "got '%s', want '%s'", out, SW_SIG);
}

Test(stdwh, secret_prefix_optional)
{
    const char *keys[] = {SW_KEY_BARE};
    assert_rc(cm_sig_stdwh_verify(keys, 1, SW_ID, SW_TS_STR, SW_SIG, SW_BODY, strlen(SW_BODY),
                                  SW_TS, SW_TOL),
              CM_OK);
}

Test(stdwh, sign_two_secrets_space_separated)
{
    const char *keys[] = {SW_KEY_OTHER, SW_KEY};
    char out[CM_SIG_HDR_LEN];
    assert_rc(cm_sig_stdwh_sign(keys, 2, SW_ID, SW_TS, SW_BODY, strlen(SW_BODY), out), CM_OK);
    size_t len = strlen(out);
    cr_assert_eq(len, 2 * 47 + 1, "got %zu chars: '%s'", len, out);
    cr_assert(strncmp(out, "v1,", 3) == 0 && out[47] == ' ', "got '%s'", out);
    cr_assert_str_eq(out + 48, SW_SIG, "got '%s', want '%s'", out + 48, SW_SIG);
    const char *other[] = {SW_KEY_OTHER};
    assert_rc(cm_sig_stdwh_verify(other, 1, SW_ID, SW_TS_STR, out, SW_BODY, strlen(SW_BODY), SW_TS,
                                  SW_TOL),
              CM_OK);
}

Test(stdwh, wrong_key)
{
    const char *keys[] = {SW_KEY_OTHER};
    assert_rc(cm_sig_stdwh_verify(keys, 1, SW_ID, SW_TS_STR, SW_SIG, SW_BODY, strlen(SW_BODY),
                                  SW_TS, SW_TOL),
              CM_ESIG_MISMATCH);
}

Test(stdwh, altered_body)
{
    char body[] = SW_BODY;
    body[strlen(body) - 2] = '5';
    assert_rc(cm_sig_stdwh_verify(sw_keys, 1, SW_ID, SW_TS_STR, SW_SIG, body, strlen(body), SW_TS,
                                  SW_TOL),
              CM_ESIG_MISMATCH);
}

Test(stdwh, altered_id_or_timestamp)
{
    assert_rc(sw("msg_p5jXN8AQM9LWM0D4loKWxJeK", SW_TS_STR, SW_SIG, SW_TS), CM_ESIG_MISMATCH);
    assert_rc(sw(SW_ID, "1614265331", SW_SIG, SW_TS), CM_ESIG_MISMATCH);
}

Test(stdwh, tolerance_edges)
{
    assert_rc(sw(SW_ID, SW_TS_STR, SW_SIG, SW_TS + SW_TOL), CM_OK);
    assert_rc(sw(SW_ID, SW_TS_STR, SW_SIG, SW_TS - SW_TOL), CM_OK);
    assert_rc(sw(SW_ID, SW_TS_STR, SW_SIG, SW_TS + SW_TOL + 1), CM_ESIG_STALE);
    assert_rc(sw(SW_ID, SW_TS_STR, SW_SIG, SW_TS - SW_TOL - 1), CM_ESIG_FUTURE);
}

Test(stdwh, window_checked_before_mac)
{
    assert_rc(sw(SW_ID, SW_TS_STR, "v1," ZERO_B64, SW_TS + SW_TOL + 1), CM_ESIG_STALE);
}

Test(stdwh, several_entries)
{
    assert_rc(sw(SW_ID, SW_TS_STR, "v1," ZERO_B64 " " SW_SIG, SW_TS), CM_OK);
    assert_rc(sw(SW_ID, SW_TS_STR, "v2,whatever v1a,xyz " SW_SIG, SW_TS), CM_OK);
    assert_rc(sw(SW_ID, SW_TS_STR, "  " SW_SIG "  ", SW_TS), CM_OK);
    assert_rc(sw(SW_ID, SW_TS_STR, "v1," ZERO_B64 " v1," ZERO_B64, SW_TS), CM_ESIG_MISMATCH);
}

Test(stdwh, only_other_versions_refused)
{
    assert_rc(sw(SW_ID, SW_TS_STR, "v1a," SW_B64, SW_TS), CM_ESIG_MALFORMED);
    assert_rc(sw(SW_ID, SW_TS_STR, "v2," SW_B64, SW_TS), CM_ESIG_MALFORMED);
}

Test(stdwh, malformed_signature)
{
    static const char *const bad[] = {
        "garbage",
        SW_B64,                                           /* no version */
        ",g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",  /* empty version */
        "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE", /* padding dropped */
        "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1O",  /* truncated */
        "v1," SW_B64 "A",
        "v1,g0hM9SsE-OTPJTGt_tmIKtSyZlE3uFJELVlNIOLJ1OE=", /* base64url */
        "v1,",
        "v1=" SW_B64,
        SW_SIG " junk",
        " ",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cm_err_t rc = sw(SW_ID, SW_TS_STR, bad[i], SW_TS);
        cr_assert_eq(rc, CM_ESIG_MALFORMED, "'%s': got %d (%s), want MALFORMED", bad[i], (int)rc,
                     cm_strerror(rc));
    }
}

Test(stdwh, malformed_timestamp)
{
    static const char *const bad[] = {
        "161426533x",  "-1614265330",  "+1614265330",         " 1614265330",
        "1614265330 ", "1614265330.5", "1000000000000000000", "abc",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cm_err_t rc = sw(SW_ID, bad[i], SW_SIG, SW_TS);
        cr_assert_eq(rc, CM_ESIG_MALFORMED, "'%s': got %d (%s), want MALFORMED", bad[i], (int)rc,
                     cm_strerror(rc));
    }
}

Test(stdwh, missing)
{
    assert_rc(sw(NULL, SW_TS_STR, SW_SIG, SW_TS), CM_ESIG_MISSING);
    assert_rc(sw("", SW_TS_STR, SW_SIG, SW_TS), CM_ESIG_MISSING);
    assert_rc(sw(SW_ID, NULL, SW_SIG, SW_TS), CM_ESIG_MISSING);
    assert_rc(sw(SW_ID, "", SW_SIG, SW_TS), CM_ESIG_MISSING);
    assert_rc(sw(SW_ID, SW_TS_STR, NULL, SW_TS), CM_ESIG_MISSING);
    assert_rc(sw(SW_ID, SW_TS_STR, "", SW_TS), CM_ESIG_MISSING);
}

Test(stdwh, rotation_second_key_matches)
{
    const char *keys[] = {SW_KEY_OTHER, NULL, SW_KEY};
    assert_rc(cm_sig_stdwh_verify(keys, 3, SW_ID, SW_TS_STR, SW_SIG, SW_BODY, strlen(SW_BODY),
                                  SW_TS, SW_TOL),
              CM_OK);
}

Test(stdwh, invalid_secret)
{
    const char *bad[] = {SW_KEY, "whsec_not*base64"};
    const char *empty[] = {"whsec_"};
    char out[CM_SIG_HDR_LEN];
    /* Reported even though the first secret would match. */
    assert_rc(cm_sig_stdwh_verify(bad, 2, SW_ID, SW_TS_STR, SW_SIG, SW_BODY, strlen(SW_BODY), SW_TS,
                                  SW_TOL),
              CM_EINVAL);
    assert_rc(cm_sig_stdwh_verify(empty, 1, SW_ID, SW_TS_STR, SW_SIG, SW_BODY, strlen(SW_BODY),
                                  SW_TS, SW_TOL),
              CM_EINVAL);
    assert_rc(cm_sig_stdwh_sign(bad, 2, SW_ID, SW_TS, SW_BODY, strlen(SW_BODY), out), CM_EINVAL);
    cr_assert_str_eq(out, "");
}

Test(stdwh, no_keys)
{
    char out[CM_SIG_HDR_LEN];
    assert_rc(cm_sig_stdwh_verify(sw_keys, 0, SW_ID, SW_TS_STR, SW_SIG, SW_BODY, strlen(SW_BODY),
                                  SW_TS, SW_TOL),
              CM_EINVAL);
    assert_rc(cm_sig_stdwh_verify(NULL, 1, SW_ID, SW_TS_STR, SW_SIG, SW_BODY, strlen(SW_BODY),
                                  SW_TS, SW_TOL),
              CM_EINVAL);
    assert_rc(cm_sig_stdwh_sign(sw_keys, 1, NULL, SW_TS, SW_BODY, strlen(SW_BODY), out), CM_EINVAL);
}

/* ---- The secrets and the personal data around them stay out of the log ---------- */

#include <stdlib.h>
#include <unistd.h>

#include "cm_log.h"

/* The webhook secrets these functions take, and the caller's e-mail and phone number that
 * travel in the same requests, must never reach a log line in clear (the audit: "sensitive
 * data masking implemented", a property easy to lose). cm_log_mask has its own cases in
 * test_cm_common.c; this one checks the path a gateway's message takes, cm_log_write, into a
 * log file: a writer that skipped the mask (ci/mutants a13) passed every other test and the
 * whole scenario suite, which reads no log. Criterion runs each test in a process of its own,
 * so cm_log_open here redirects no other test's log. */
Test(sig_log, a_logged_secret_email_and_phone_are_masked_in_the_file)
{
    char path[] = "/tmp/test_cm_sig_log_XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    close(fd);
    cr_assert_eq(cm_log_open(path), CM_OK);
    cm_log_write(CM_LOG_WARN, "test.sig",
                 "verify with " ST_KEY " for jane.doe@example.com, caller +14155550123");
    char buf[4096] = "";
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f);
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    unlink(path);
    buf[n] = '\0';
    cr_assert_not_null(strstr(buf, "\"comp\":\"test.sig\""), "no line written: %s", buf);
    cr_assert_null(strstr(buf, ST_KEY), "secret in clear: %s", buf);
    cr_assert_null(strstr(buf, "jane.doe@"), "e-mail in clear: %s", buf);
    cr_assert_null(strstr(buf, "14155550123"), "phone number in clear: %s", buf);
    cr_assert_not_null(strstr(buf, "j***@example.com"), "e-mail not masked as specified: %s", buf);
    cr_assert_not_null(strstr(buf, "+***23"), "phone not masked as specified: %s", buf);
}
