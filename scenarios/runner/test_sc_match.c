/* test_sc_match.c - JSON expectations: exact values, operators, missing paths and the
 * diagnosis text. */
#include <criterion/criterion.h>
#include <string.h>

#include "sc_match.h"

static json_t *answer(void)
{
    json_t *a = json_loads("{\"count\":2,\"ratio\":1.0,\"bookings\":[{\"status\":\"accepted\","
                           "\"start\":\"2050-09-05T09:00:00.000Z\",\"attendees\":[{\"email\":"
                           "\"jane@example.com\"}],\"metadata\":{\"retell_call_id\":\"call_1\"}},"
                           "{\"status\":\"cancelled\"}],\"tags\":[\"a\",\"b\"],\"none\":null,"
                           "\"ok\":true,\"obj\":{\"x\":1,\"y\":[1,2]}}",
                           0, NULL);
    cr_assert_not_null(a);
    return a;
}

/* Runs spec (JSON text) against the sample answer; returns mismatches and the diagnosis. */
static int run(const char *spec_text, char *diag_out, size_t cap)
{
    json_error_t je;
    json_t *spec = json_loads(spec_text, 0, &je);
    cr_assert_not_null(spec, "bad test spec %s: %s", spec_text, je.text);
    char err[CM_ERR_LEN] = "";
    cr_assert_eq(sc_match_validate(spec, err), CM_OK, "%s: %s", spec_text, err);
    json_t *a = answer();
    cm_buf_t diag;
    cm_buf_init(&diag, 1 << 16);
    int bad = sc_match(a, spec, &diag);
    if (diag_out)
        snprintf(diag_out, cap, "%s", diag.data ? diag.data : "");
    cm_buf_free(&diag);
    json_decref(a);
    json_decref(spec);
    return bad;
}

Test(match, exact_values)
{
    cr_assert_eq(run("{\"count\":2,\"bookings.0.status\":\"accepted\","
                     "\"bookings.0.attendees.0.email\":\"jane@example.com\","
                     "\"bookings.-1.status\":\"cancelled\",\"tags\":[\"a\",\"b\"],"
                     "\"none\":null,\"ok\":true,\"obj\":{\"y\":[1,2],\"x\":1}}",
                     NULL, 0),
                 0);
    /* numbers compare by value */
    cr_assert_eq(run("{\"count\":2.0,\"ratio\":1}", NULL, 0), 0);
    /* the empty path is the whole answer */
    cr_assert_eq(run("{\"\":{\"$type\":\"object\"}}", NULL, 0), 0);
}

Test(match, mismatches_show_expected_and_got)
{
    char d[2048];
    cr_assert_eq(
        run("{\"count\":1,\"bookings.0.status\":\"cancelled\",\"obj\":{\"x\":1}}", d, sizeof d), 3);
    cr_assert_not_null(strstr(d, "\"count\": expected 1, got 2"), "%s", d);
    cr_assert_not_null(strstr(d, "\"bookings.0.status\": expected \"cancelled\", got "
                                 "\"accepted\""),
                       "%s", d);
    cr_assert_not_null(strstr(d, "\"obj\": expected {\"x\":1}, got {\"x\":1,\"y\":[1,2]}"), "%s",
                       d);
    /* type matters: "2" is not 2, true is not 1 */
    cr_assert_eq(run("{\"count\":\"2\",\"ok\":1}", NULL, 0), 2);
}

/* "*" maps the rest of a path over an array; one list against the other in the diagnosis. */
Test(match, wildcard_segment)
{
    char d[2048];
    cr_assert_eq(run("{\"bookings.*.status\":[\"accepted\",\"cancelled\"],"
                     "\"bookings.*.attendees.0.email\":[\"jane@example.com\",null],"
                     "\"tags.*\":[\"a\",\"b\"],\"bookings.*\":{\"$len\":2}}",
                     NULL, 0),
                 0);
    cr_assert_eq(run("{\"bookings.*.status\":[\"accepted\"]}", d, sizeof d), 1);
    cr_assert_not_null(strstr(d, "\"bookings.*.status\": expected [\"accepted\"], got "
                                 "[\"accepted\",\"cancelled\"]"),
                       "%s", d);
    /* "*" on something that is not an array reaches nothing */
    cr_assert_eq(run("{\"obj.*.x\":{\"$exists\":false},\"count.*\":{\"$exists\":false}}", NULL, 0),
                 0);
}

/* $each also walks an object's values (maps keyed by an id). */
Test(match, each_over_an_objects_values)
{
    char d[2048];
    cr_assert_eq(run("{\"obj\":{\"$each\":{\"\":{\"$type\":\"number\"}}}}", NULL, 0), 1,
                 "y is an array");
    cr_assert_eq(run("{\"bookings.0.metadata\":{\"$each\":{\"\":\"call_1\"}}}", d, sizeof d), 0,
                 "%s", d);
    cr_assert_eq(run("{\"obj\":{\"$each\":{\"\":1}}}", d, sizeof d), 1);
    cr_assert_not_null(strstr(d, "[\"y\": [1,2]]"), "%s", d);
}

Test(match, missing_paths)
{
    char d[1024];
    cr_assert_eq(run("{\"nope\":1,\"bookings.5.status\":\"x\",\"count.deeper\":1,"
                     "\"bookings.x\":1}",
                     d, sizeof d),
                 4);
    cr_assert_not_null(strstr(d, "\"nope\": expected 1, got nothing (no such path)"), "%s", d);
    cr_assert_eq(run("{\"nope\":{\"$exists\":false},\"count\":{\"$exists\":true}}", NULL, 0), 0);
    cr_assert_eq(run("{\"nope\":{\"$exists\":true}}", NULL, 0), 1);
    cr_assert_eq(run("{\"count\":{\"$exists\":false}}", NULL, 0), 1);
    /* every other operator fails on a missing path, $ne included */
    cr_assert_eq(run("{\"nope\":{\"$ne\":1}}", NULL, 0), 1);
    cr_assert_eq(run("{\"nope\":{\"$gte\":0}}", NULL, 0), 1);
    /* a null value is present */
    cr_assert_eq(run("{\"none\":{\"$exists\":true,\"$type\":\"null\"}}", NULL, 0), 0);
}

Test(match, operators)
{
    cr_assert_eq(run("{\"count\":{\"$gte\":2,\"$lte\":2,\"$gt\":1,\"$lt\":3}}", NULL, 0), 0);
    cr_assert_eq(run("{\"count\":{\"$gt\":2}}", NULL, 0), 1);
    cr_assert_eq(run("{\"count\":{\"$lt\":2}}", NULL, 0), 1);
    cr_assert_eq(run("{\"count\":{\"$eq\":2,\"$ne\":3}}", NULL, 0), 0);
    cr_assert_eq(run("{\"count\":{\"$ne\":2}}", NULL, 0), 1);
    cr_assert_eq(run("{\"bookings\":{\"$len\":2},\"tags\":{\"$len\":{\"$gte\":1}},"
                     "\"bookings.0.status\":{\"$len\":8},\"obj\":{\"$len\":2}}",
                     NULL, 0),
                 0);
    cr_assert_eq(run("{\"bookings\":{\"$len\":3}}", NULL, 0), 1);
    cr_assert_eq(run("{\"count\":{\"$len\":1}}", NULL, 0), 1, "a number has no length");
    cr_assert_eq(run("{\"bookings.0.start\":{\"$contains\":\"2050-09-05\"},"
                     "\"tags\":{\"$contains\":\"b\"}}",
                     NULL, 0),
                 0);
    cr_assert_eq(run("{\"tags\":{\"$contains\":\"c\"}}", NULL, 0), 1);
    cr_assert_eq(run("{\"bookings.1.status\":{\"$in\":[\"cancelled\",\"rejected\"]}}", NULL, 0), 0);
    cr_assert_eq(run("{\"bookings.0.status\":{\"$in\":[\"cancelled\"]}}", NULL, 0), 1);
    cr_assert_eq(run("{\"count\":{\"$type\":\"integer\"},\"ratio\":{\"$type\":\"number\"},"
                     "\"tags\":{\"$type\":\"array\"},"
                     "\"ok\":{\"$type\":\"boolean\"}}",
                     NULL, 0),
                 0);
    cr_assert_eq(run("{\"ratio\":{\"$type\":\"integer\"}}", NULL, 0), 1);
    /* strings order bytewise, so ISO times compare as times */
    cr_assert_eq(run("{\"bookings.0.start\":{\"$gt\":\"2050-09-05T08:59:59.999Z\","
                     "\"$lt\":\"2050-09-05T09:00:00.001Z\"}}",
                     NULL, 0),
                 0);
    /* a number against a string bound cannot be ordered: fails, never passes */
    cr_assert_eq(run("{\"count\":{\"$gt\":\"1\"}}", NULL, 0), 1);
}

Test(match, operator_diagnosis)
{
    char d[1024];
    cr_assert_eq(run("{\"count\":{\"$gte\":5}}", d, sizeof d), 1);
    cr_assert_not_null(strstr(d, "\"count\": expected {\"$gte\":5}, got 2"), "%s", d);
    cr_assert_eq(run("{\"bookings\":{\"$len\":{\"$gte\":3}}}", d, sizeof d), 1);
    cr_assert_not_null(strstr(d, "] (length 2)\n"), "%s", d);
}

Test(match, no_json_answer)
{
    json_t *spec = json_pack("{s:i}", "count", 1);
    cm_buf_t diag;
    cm_buf_init(&diag, 4096);
    cr_assert_eq(sc_match(NULL, spec, &diag), 1);
    cr_assert_not_null(strstr(diag.data, "got no JSON answer"), "%s", diag.data);
    cm_buf_free(&diag);
    json_decref(spec);
}

Test(match, validation)
{
    const char *bad[][2] = {
        {"[1]", "must be an object"},
        {"{\"a\":{\"$gte\":1,\"b\":2}}", "cannot mix operators"},
        {"{\"a\":{\"$regex\":\"x\"}}", "unknown operator \"$regex\""},
        {"{\"a\":{\"$gte\":true}}", "$gte needs a number or a string"},
        {"{\"a\":{\"$exists\":1}}", "$exists needs true or false"},
        {"{\"a\":{\"$len\":-1}}", "$len needs a non-negative integer"},
        {"{\"a\":{\"$len\":{\"$foo\":1}}}", "unknown operator \"$foo\""},
        {"{\"a\":{\"$in\":1}}", "$in needs an array"},
        {"{\"a\":{\"$type\":\"float\"}}", "$type must be one of"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        json_t *spec = json_loads(bad[i][0], JSON_DECODE_ANY, NULL);
        char err[CM_ERR_LEN] = "";
        cr_assert_eq(sc_match_validate(spec, err), CM_EINVAL, "accepted %s", bad[i][0]);
        cr_assert_not_null(strstr(err, bad[i][1]), "%s: got \"%s\"", bad[i][0], err);
        json_decref(spec);
    }
    /* plain objects without $ keys are exact values, not operators */
    json_t *ok = json_loads("{\"a\":{\"b\":1},\"c\":{}}", 0, NULL);
    cr_assert_eq(sc_match_validate(ok, NULL), CM_OK);
    json_decref(ok);
}

Test(match, equality_helper)
{
    json_t *a = json_loads("{\"x\":[1,2.0,{\"y\":null}]}", 0, NULL);
    json_t *b = json_loads("{\"x\":[1.0,2,{\"y\":null}]}", 0, NULL);
    json_t *c = json_loads("{\"x\":[1,2,{\"y\":null,\"z\":1}]}", 0, NULL);
    cr_assert(sc_match_equal(a, b));
    cr_assert_not(sc_match_equal(a, c));
    json_decref(a);
    json_decref(b);
    json_decref(c);
}

/* Runs spec (text) against answer (text): the number of failed paths, diag into out. */
static int run_on(const char *answer, const char *spec, char *out, size_t cap)
{
    json_t *a = json_loads(answer, JSON_DECODE_ANY, NULL);
    json_t *s = json_loads(spec, 0, NULL);
    char err[CM_ERR_LEN] = "";
    cr_assert_not_null(a);
    cr_assert_not_null(s);
    cr_assert_eq(sc_match_validate(s, err), CM_OK, "%s: %s", spec, err);
    cm_buf_t d;
    cm_buf_init(&d, 1 << 16);
    int bad = sc_match(a, s, &d);
    snprintf(out, cap, "%s", d.data ? d.data : "");
    cm_buf_free(&d);
    json_decref(a);
    json_decref(s);
    return bad;
}

Test(match, each_sorted_and_gaps)
{
    char d[2048];
    const char *journal = "{\"entries\":[{\"status\":503,\"at_ms\":1000},"
                          "{\"status\":503,\"at_ms\":1090},{\"status\":201,\"at_ms\":1290},"
                          "{\"status\":201,\"at_ms\":1700}]}";
    cr_assert_eq(
        run_on(journal, "{\"entries\":{\"$each\":{\"status\":{\"$in\":[201,503]}}}}", d, sizeof d),
        0, "%s", d);
    cr_assert_eq(run_on(journal, "{\"entries\":{\"$each\":{\"status\":503}}}", d, sizeof d), 1);
    cr_assert_not_null(strstr(d, "[element 2: {\"status\":201"), "%s", d);
    cr_assert_eq(run_on(journal, "{\"entries\":{\"$sorted\":\"at_ms\"}}", d, sizeof d), 0, "%s", d);
    cr_assert_eq(run_on("[3,1]", "{\"\":{\"$sorted\":\"\"}}", d, sizeof d), 1);
    cr_assert_eq(run_on("[\"a\",\"b\"]", "{\"\":{\"$sorted\":\"\"}}", d, sizeof d), 0);

    /* gaps 90, 200, 410 ms */
    cr_assert_eq(
        run_on(journal, "{\"entries\":{\"$gaps\":{\"field\":\"at_ms\",\"min\":90}}}", d, sizeof d),
        0, "%s", d);
    cr_assert_eq(run_on(journal, "{\"entries\":{\"$gaps\":{\"field\":\"at_ms\",\"min\":\"1s\"}}}",
                        d, sizeof d),
                 1);
    cr_assert_not_null(strstr(d, "[gaps ms: 90!, 200!, 410!]"), "%s", d);
    /* envelope base 100, factor 2: limits 100, 200, 400 (+ slack 10): 410 just fits */
    cr_assert_eq(run_on(journal,
                        "{\"entries\":{\"$gaps\":{\"field\":\"at_ms\",\"envelope\":{\"base\":"
                        "\"100ms\",\"cap\":\"5s\",\"slack\":10}}}}",
                        d, sizeof d),
                 0, "%s", d);
    cr_assert_eq(run_on(journal,
                        "{\"entries\":{\"$gaps\":{\"field\":\"at_ms\",\"envelope\":{\"base\":100,"
                        "\"cap\":300}}}}",
                        d, sizeof d),
                 1);
    cr_assert_not_null(strstr(d, "410! (envelope 300)"), "%s", d);
    cr_assert_eq(run_on("{\"e\":[{\"t\":1}]}", "{\"e\":{\"$gaps\":{\"field\":\"t\",\"max\":1}}}", d,
                        sizeof d),
                 0, "one element: no gaps to break");
    cr_assert_eq(run_on("{\"e\":[{\"t\":1},{\"x\":2}]}",
                        "{\"e\":{\"$gaps\":{\"field\":\"t\",\"max\":1}}}", d, sizeof d),
                 1);
    cr_assert_not_null(strstr(d, "element 1 has no number at \"t\""), "%s", d);
}

Test(match, each_sorted_and_gaps_are_validated)
{
    const char *bad[][2] = {
        {"{\"a\":{\"$each\":1}}", "\"a\": $each: must be an object"},
        {"{\"a\":{\"$each\":{\"b\":{\"$foo\":1}}}}", "$each: \"b\": unknown operator"},
        {"{\"a\":{\"$sorted\":1}}", "$sorted needs the field"},
        {"{\"a\":{\"$gaps\":{\"field\":\"t\"}}}", "say what the gaps must be"},
        {"{\"a\":{\"$gaps\":{\"min\":\"soon\"}}}", "\"min\" must be milliseconds or a duration"},
        {"{\"a\":{\"$gaps\":{\"envelope\":{\"base\":1}}}}", "\"envelope\" needs \"base\" and"},
        {"{\"a\":{\"$gaps\":{\"envelope\":{\"base\":1,\"cap\":2,\"factor\":0.5}}}}",
         "\"factor\" must be a number >= 1"},
        {"{\"a\":{\"$gaps\":{\"every\":1}}}", "unknown key \"every\""},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        json_t *spec = json_loads(bad[i][0], JSON_DECODE_ANY, NULL);
        char err[CM_ERR_LEN] = "";
        cr_assert_not_null(spec, "%s", bad[i][0]);
        cr_assert_eq(sc_match_validate(spec, err), CM_EINVAL, "accepted %s", bad[i][0]);
        cr_assert_not_null(strstr(err, bad[i][1]), "%s: got \"%s\"", bad[i][0], err);
        json_decref(spec);
    }
}
