/* test_cm_common.c - unit tests for clock, buffers, JSON helpers and log masking. */
#include <criterion/criterion.h>
#include <string.h>
#include <unistd.h>

#include "cm_buf.h"
#include "cm_clock.h"
#include "cm_codec.h"
#include "cm_duration.h"
#include "cm_json.h"
#include "cm_log.h"

Test(clock, iso8601_round_trip)
{
    char out[25];
    int64_t ms = 0;
    cr_assert_str_eq(cm_clock_iso8601(2545974000123LL, out), "2050-09-05T07:00:00.123Z");
    cr_assert_eq(cm_clock_parse_iso8601(out, &ms), 0);
    cr_assert_eq(ms, 2545974000123LL, "got %lld", (long long)ms);
}

Test(clock, parse_offsets_and_refusals)
{
    int64_t a = 0, b = 0, c = 0;
    cr_assert_eq(cm_clock_parse_iso8601("2050-09-05T09:00:00.000+02:00", &a), 0);
    cr_assert_eq(cm_clock_parse_iso8601("2050-09-05T07:00:00Z", &b), 0);
    cr_assert_eq(cm_clock_parse_iso8601("2050-09-05T02:00:00-0500", &c), 0);
    cr_assert_eq(a, b, "%lld vs %lld", (long long)a, (long long)b);
    cr_assert_eq(b, c, "%lld vs %lld", (long long)b, (long long)c);
    cr_assert_eq(cm_clock_parse_iso8601("2050-09-05", &a), -1);
    cr_assert_eq(cm_clock_parse_iso8601("2050-13-05T07:00:00Z", &a), -1);
    cr_assert_eq(cm_clock_parse_iso8601("2050-09-05T07:00:00", &a), -1);
    cr_assert_eq(cm_clock_parse_iso8601("2050-09-05T07:00:00Zjunk", &a), -1);
    cr_assert_eq(cm_clock_parse_iso8601(NULL, &a), -1);
}

Test(clock, monotonic_advances)
{
    int64_t t0 = cm_clock_mono_ns();
    cm_clock_sleep_ms(2);
    cr_assert_geq(cm_clock_mono_ns() - t0, 2000000);
}

Test(buf, cap_is_enforced_and_state_kept)
{
    cm_buf_t b;
    cm_buf_init(&b, 8);
    cr_assert_eq(cm_buf_addstr(&b, "12345"), CM_OK);
    cr_assert_eq(cm_buf_addstr(&b, "6789"), CM_ETOOBIG);
    cr_assert_str_eq(b.data, "12345");
    cr_assert_eq(cm_buf_printf(&b, "%d", 678), CM_OK);
    cr_assert_str_eq(b.data, "12345678");
    char *s = cm_buf_take(&b);
    cr_assert_str_eq(s, "12345678");
    cr_assert_null(b.data);
    free(s);
}

Test(buf, json_string_escapes)
{
    cm_buf_t b;
    cm_buf_init(&b, 100);
    cr_assert_eq(cm_buf_add_json_str(&b, "a\"b\\c\n\x01"), CM_OK);
    cr_assert_str_eq(b.data, "\"a\\\"b\\\\c\\n\\u0001\"");
    cm_buf_free(&b);
}

Test(codec, base64_round_trip_and_refusal)
{
    uint8_t out[16];
    char enc[32];
    cm_b64_encode((const uint8_t *)"hello!!", 7, enc);
    cr_assert_str_eq(enc, "aGVsbG8hIQ==");
    cr_assert_eq(cm_b64_decode(enc, strlen(enc), out, sizeof out), 7);
    cr_assert_eq(memcmp(out, "hello!!", 7), 0);
    cr_assert_eq(cm_b64_decode("a$==", 4, out, sizeof out), -1);
    cr_assert_eq(cm_b64_decode("aGVsbG8hIQ==", 12, out, 3), -1, "cap must be enforced");
}

Test(json, parse_path_and_errors)
{
    json_t *v = NULL;
    char err[CM_ERR_LEN] = "";
    const char *doc = "{\"call\":{\"id\":\"c1\",\"n\":3,\"items\":[{\"x\":true}]}}";
    cr_assert_eq(cm_json_parse(doc, strlen(doc), 1024, &v, err), CM_OK);
    cr_assert_str_eq(cm_json_str(v, "call.id", NULL), "c1");
    cr_assert_eq(cm_json_int(v, "call.n", -1), 3);
    cr_assert_eq(cm_json_bool(v, "call.items.0.x", 0), 1);
    cr_assert_null(cm_json_path(v, "call.items.1"));
    cr_assert_str_eq(cm_json_str(v, "call.n", "def"), "def");
    json_decref(v);
    const char *reals = "{\"a\":1e300,\"b\":-1e300,\"c\":9223372036854775808.0,\"d\":4.0,"
                        "\"e\":4.5}";
    cr_assert_eq(cm_json_parse(reals, strlen(reals), 1024, &v, err), CM_OK);
    cr_assert_eq(cm_json_int(v, "a", -7), -7, "beyond int64: the default, not UB");
    cr_assert_eq(cm_json_int(v, "b", -7), -7);
    cr_assert_eq(cm_json_int(v, "c", -7), -7, "2^63 itself does not fit");
    cr_assert_eq(cm_json_int(v, "d", -7), 4, "a whole real is an integer");
    cr_assert_eq(cm_json_int(v, "e", -7), -7);
    json_decref(v);

    cr_assert_eq(cm_json_parse("{\"a\":", 5, 1024, &v, err), CM_EINVAL);
    cr_assert(strstr(err, "line 1"), "error should locate the problem: %s", err);
    cr_assert_eq(cm_json_parse("{\"a\":1,\"a\":2}", 13, 1024, &v, err), CM_EINVAL,
                 "duplicate keys are refused");
    cr_assert_eq(cm_json_parse(doc, strlen(doc), 10, &v, err), CM_ETOOBIG);
    cr_assert_null(v);
}

Test(json, strn_counts_the_bytes_after_an_escaped_nul)
{
    json_t *v = NULL;
    size_t len = 99;
    const char *doc = "{\"id\":\"call_1\\u0000x\",\"n\":1}";
    cr_assert_eq(cm_json_parse(doc, strlen(doc), 1024, &v, NULL), CM_OK);
    const char *s = cm_json_strn(v, "id", &len);
    cr_assert_eq(len, 8, "call_1, NUL, x");
    cr_assert_eq(memcmp(s, "call_1\0x", 8), 0);
    cr_assert_null(cm_json_strn(v, "n", &len), "not a string");
    cr_assert_eq(len, 0);
    cr_assert_null(cm_json_strn(v, "missing", &len));
    json_decref(v);
}

Test(log, limit_writes_per_window_and_counts_what_it_drops)
{
    cm_log_limit_t l = CM_LOG_LIMIT_INIT(2, 1000);
    uint64_t sup = 99;
    cr_assert_eq(cm_log_limit_take(&l, 5000, &sup), 1);
    cr_assert_eq(sup, 0);
    cr_assert_eq(cm_log_limit_take(&l, 5001, &sup), 1);
    for (int i = 0; i < 7; i++)
        cr_assert_eq(cm_log_limit_take(&l, 5002 + i, &sup), 0, "over the limit in the window");
    cr_assert_eq(cm_log_limit_take(&l, 5999, &sup), 0);
    cr_assert_eq(cm_log_limit_take(&l, 6000, &sup), 1, "a new window");
    cr_assert_eq(sup, 8, "the next line says how many were dropped");
    cr_assert_eq(cm_log_limit_take(&l, 6001, &sup), 1);
    cr_assert_eq(sup, 0, "and the count starts again");
}

static void mask_eq(const char *in, const char *want)
{
    char out[256];
    cm_log_mask(in, out, sizeof out);
    cr_assert_str_eq(out, want, "mask(%s)", in);
}

Test(log, masks_emails_phones_and_secrets)
{
    mask_eq("attendee jane.doe@example.com booked", "attendee j***@example.com booked");
    mask_eq("from +14155550123 to +49 30 1234567", "from +***23 to +***67");
    mask_eq("call 415-555-0123 now", "call ***23 now");
    mask_eq("key sk_test_51Habc123 and whsec_abcDEF==", "key sk_***"
                                                        " and whsec_***");
    mask_eq("Authorization: Bearer cal_live_abc", "Authorization: Bearer ***");
}

/* Found by fuzz/fuzz_log_mask: a run of digit groups that ends in an address's local part
 * was taken whole for a (non-)phone number and the address went out unmasked; a secret
 * cut short by a character keys do not have hid the address after it. */
Test(log, an_address_after_digit_groups_or_a_secret_is_masked)
{
    mask_eq("ref 2024 12345@corp.example", "ref 2024 1***@corp.example");
    mask_eq("ts 17000 000@00", "ts 17000 0***@00");
    mask_eq("12 34_5@x.example", "12 3***@x.example");
    mask_eq("sk_abc%x@y.example", "sk_***%***@y.example");
    mask_eq("call +49 30 1234567 8@x.example", "call +***67 8***@x.example");
}

Test(log, leaves_ids_times_and_numbers_alone)
{
    mask_eq("ts 1700000000000 id 12345678901", "ts 1700000000000 id 12345678901");
    mask_eq("on 2050-09-05 at 127.0.0.1:8080", "on 2050-09-05 at 127.0.0.1:8080");
    mask_eq("risk_level=3 task_key=9", "risk_level=3 task_key=9");
    mask_eq("2050-09-05T07:00:00.000Z", "2050-09-05T07:00:00.000Z");
}

Test(log, truncates_safely)
{
    char out[8];
    cm_log_mask("abcdefghijklmnop", out, sizeof out);
    cr_assert_str_eq(out, "abcdefg");
}

Test(buf, read_file_whole_capped_and_missing)
{
    char path[] = "/tmp/test_cm_buf_XXXXXX", err[CM_ERR_LEN];
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    cr_assert_eq(write(fd, "0123456789", 10), 10);
    close(fd);
    cm_buf_t b;
    cm_buf_init(&b, 100);
    cr_assert_eq(cm_buf_read_file(&b, path, err), CM_OK, "%s", err);
    cr_assert_str_eq(b.data, "0123456789");
    cm_buf_free(&b);
    cm_buf_init(&b, 5);
    cr_assert_eq(cm_buf_read_file(&b, path, err), CM_ETOOBIG);
    cr_assert(strstr(err, "file too large"), "%s", err);
    cm_buf_free(&b);
    unlink(path);
    cr_assert_eq(cm_buf_read_file(&b, path, err), CM_ENOTFOUND);
    cr_assert(strstr(err, path), "%s", err);
}

Test(duration, one_grammar_accepts)
{
    static const struct {
        const char *s;
        int64_t ms;
    } ok[] = {{"0s", 0},
              {"250ms", 250},
              {"1.5s", 1500},
              {"2m", 120000},
              {"1h", 3600000},
              {"0.25s", 250},
              {"1.5m", 90000},
              {"0.001s", 1},
              {"10s", 10000},
              {"007ms", 7},
              {"1.000000000s", 1000},
              {"0.5h", 1800000},
              {"1.0000000000000h", 3600000}};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        int64_t ms = -1;
        char err[CM_ERR_LEN] = "";
        cr_expect_eq(cm_duration_parse(ok[i].s, 0, &ms, err), CM_OK, "%s: %s", ok[i].s, err);
        cr_expect_eq(ms, ok[i].ms, "%s: got %lld", ok[i].s, (long long)ms);
    }
}

Test(duration, refusals_say_why_and_leave_the_result)
{
    static const struct {
        const char *s;
        int64_t max;
        const char *want;
    } bad[] = {
        {"", 0, "is not a duration"},
        {"10", 0, "the unit must be ms, s, m or h"},
        {"-1s", 0, "is not a duration"},
        {"+1s", 0, "is not a duration"},
        {" 1s", 0, "is not a duration"},
        {"1 s", 0, "the unit must be"},
        {"1s ", 0, "the unit must be"},
        {"1e3ms", 0, "the unit must be"},
        {"1.s", 0, "digits must follow the point"},
        {".5s", 0, "is not a duration"},
        {"0.5ms", 0, "not a whole number of milliseconds"},
        {"1.0001s", 0, "not a whole number of milliseconds"},
        {"1.00000000001h", 0, "not a whole number of milliseconds"},
        {"1d", 0, "the unit must be"},
        {"inf", 0, "is not a duration"},
        {"25h", 24 * 3600000LL, "is longer than 24h"},
        {"1440.001m", 24 * 3600000LL, "is longer than 24h"},
        {"99999999999999999999999h", 0, "is too long"},
        {"3000000000000h", 0, "is too long"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int64_t ms = -7;
        char err[CM_ERR_LEN] = "";
        cr_expect_eq(cm_duration_parse(bad[i].s, bad[i].max, &ms, err), CM_EINVAL, "%s", bad[i].s);
        cr_expect_eq(ms, -7, "%s: result touched", bad[i].s);
        cr_expect(strstr(err, bad[i].want), "%s: \"%s\" lacks \"%s\"", bad[i].s, err, bad[i].want);
    }
    int64_t ms = 0;
    cr_expect_eq(cm_duration_parse("24h", 24 * 3600000LL, &ms, NULL), CM_OK, "the cap itself");
    cr_expect_eq(cm_duration_parse(NULL, 0, &ms, NULL), CM_EINVAL);
}

Test(duration, signed_offsets_take_a_sign_and_cap_the_magnitude)
{
    static const struct {
        const char *s;
        int64_t ms;
    } ok[] = {{"-6m", -360000}, {"+6m", 360000},  {"6m", 360000},
              {"-0s", 0},       {"-1.5s", -1500}, {"-24h", -24 * 3600000LL}};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        int64_t ms = -1;
        char err[CM_ERR_LEN] = "";
        cr_expect_eq(cm_duration_parse_signed(ok[i].s, 24 * 3600000LL, &ms, err), CM_OK, "%s: %s",
                     ok[i].s, err);
        cr_expect_eq(ms, ok[i].ms, "%s: got %lld", ok[i].s, (long long)ms);
    }
    static const struct {
        const char *s;
        const char *want;
    } bad[] = {
        {"-", "\"-\" is not a duration"},
        {"--1s", "\"--1s\" is not a duration"},
        {"+-1s", "is not a duration"},
        {"- 1s", "is not a duration"},
        {"-6 min", "\"-6 min\" is not a duration: the unit must be"},
        {"-0.5ms", "not a whole number of milliseconds"},
        {"-25h", "\"-25h\" is longer than 24h"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int64_t ms = -7;
        char err[CM_ERR_LEN] = "";
        cr_expect_eq(cm_duration_parse_signed(bad[i].s, 24 * 3600000LL, &ms, err), CM_EINVAL, "%s",
                     bad[i].s);
        cr_expect_eq(ms, -7, "%s: result touched", bad[i].s);
        cr_expect(strstr(err, bad[i].want), "%s: \"%s\" lacks \"%s\"", bad[i].s, err, bad[i].want);
    }
    int64_t ms = 0;
    cr_expect_eq(cm_duration_parse_signed(NULL, 0, &ms, NULL), CM_EINVAL);
    cr_expect_eq(cm_duration_parse_signed("-3000000000000h", 0, &ms, NULL), CM_EINVAL,
                 "too long either way");
    char out[32];
    cr_expect_str_eq(cm_duration_format(-360000, out), "-6m", "the sign is written back");
}

Test(duration, format_round_trips)
{
    static const int64_t v[] = {0, 1, 250, 1500, 1000, 60000, 90000, 3600000, 86400000};
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        char out[32];
        int64_t back = -1;
        cr_assert_eq(cm_duration_parse(cm_duration_format(v[i], out), 0, &back, NULL), CM_OK, "%s",
                     out);
        cr_expect_eq(back, v[i], "%s", out);
    }
    char out[32];
    cr_expect_str_eq(cm_duration_format(1500, out), "1500ms");
    cr_expect_str_eq(cm_duration_format(7200000, out), "2h");
}
