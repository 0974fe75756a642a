/* test_rp_report.c - the JSON and HTML reports: valid JSON with every field (bad UTF-8 and
 * "<" made safe), and a self-contained HTML page with one SVG timeline per scenario. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <string.h>

#include "rp_html.h"
#include "rp_json.h"

static rp_report_t *sample(void)
{
    rp_report_t *r = rp_report_new("scenario");
    cr_assert_not_null(r);
    r->started_ms = 1767225600000; /* 2026-01-01 */
    r->time_s = 2.5;
    r->has_seed = 1;
    r->seed = 42;
    r->jobs = 2;
    r->repeat = 1;
    rp_suite_t *s = rp_report_add_suite(r, "scenarios/basic/001_x.json");
    rp_case_t *ok = rp_suite_add_case(s, "passes", "scenarios.basic.001_x");
    rp_case_t *bad = rp_suite_add_case(s, "fails <b>", "scenarios.basic.001_x");
    const char *tags[] = {"basic", "dedup"};
    cr_assert_eq(rp_case_set_tags(ok, tags, 2), CM_OK);
    ok->time_s = 1.0;
    ok->speed = 10;
    ok->sim_time_s = 10.0;
    ok->seed = 42;
    cr_assert_eq(rp_case_add_line(ok, 5, "step[0]", "POST gateway /webhooks/retell -> 204"), CM_OK);
    cr_assert_eq(rp_case_add_line(ok, 900, "gw", "killed (SIGKILL)"), CM_OK);
    cr_assert_eq(rp_case_add_event(ok, 400, "breaker calcom", "closed -> open: 5 failures"), CM_OK);
    cr_assert_eq(rp_case_add_event(ok, 300, "sim calcom", "POST /v2/bookings -> 503, fault: x"),
                 CM_OK);
    bad->time_s = 0.5;
    bad->speed = 1;
    cr_assert_eq(rp_case_set_outcome(bad, RP_FAILED, "expectation", "status: expected 204",
                                     "status: expected 204, got 500\nanswer: \xff</pre>"),
                 CM_OK);
    cr_assert_eq(rp_case_set_kept(bad, "/tmp/scenario-abc"), CM_OK);
    cr_assert_eq(rp_case_add_line(bad, 7, "step[1]", "GET gateway /x -> 500 \"<oops>\""), CM_OK);
    return r;
}

Test(report, json_holds_everything_and_parses)
{
    rp_report_t *r = sample();
    cm_buf_t b;
    cm_buf_init(&b, 1 << 20);
    cr_assert_eq(rp_json_render(r, &b), CM_OK);
    cr_assert_null(strchr(b.data, '<'), "no raw '<' (embeddable): %s", b.data);
    json_error_t je;
    json_t *j = json_loads(b.data, 0, &je);
    cr_assert_not_null(j, "%s: %s", je.text, b.data);
    cr_assert_str_eq(json_string_value(json_object_get(j, "started_at")),
                     "2026-01-01T00:00:00.000Z");
    cr_assert_eq(json_integer_value(json_object_get(json_object_get(j, "options"), "seed")), 42);
    json_t *k = json_object_get(j, "counts");
    cr_assert_eq(json_integer_value(json_object_get(k, "tests")), 2);
    cr_assert_eq(json_integer_value(json_object_get(k, "passed")), 1);
    cr_assert_eq(json_integer_value(json_object_get(k, "failures")), 1);
    cr_assert_float_eq(json_real_value(json_object_get(k, "sim_time_s")), 10.0, 1e-9);
    json_t *c0 = json_array_get(
        json_object_get(json_array_get(json_object_get(j, "suites"), 0), "cases"), 0);
    json_t *c1 = json_array_get(
        json_object_get(json_array_get(json_object_get(j, "suites"), 0), "cases"), 1);
    cr_assert_str_eq(json_string_value(json_array_get(json_object_get(c0, "tags"), 1)), "dedup");
    cr_assert_eq(json_integer_value(json_object_get(c0, "speed")), 10);
    cr_assert_eq(json_array_size(json_object_get(c0, "log")), 2);
    json_t *ev = json_array_get(json_object_get(c0, "events"), 0);
    cr_assert_str_eq(json_string_value(json_object_get(ev, "source")), "breaker calcom");
    cr_assert_eq(json_integer_value(json_object_get(ev, "t_ms")), 400);
    cr_assert_str_eq(json_string_value(json_object_get(c1, "status")), "failed");
    cr_assert_str_eq(json_string_value(json_object_get(c1, "name")), "fails <b>");
    cr_assert_not_null(strstr(json_string_value(json_object_get(c1, "detail")), "\xef\xbf\xbd"),
                       "invalid UTF-8 became U+FFFD");
    cr_assert_str_eq(json_string_value(json_object_get(c1, "kept_dir")), "/tmp/scenario-abc");
    json_decref(j);
    cm_buf_free(&b);
    rp_report_free(&r);
}

Test(report, html_is_self_contained_with_timelines)
{
    rp_report_t *r = sample();
    cm_buf_t b;
    cm_buf_init(&b, 1 << 20);
    cr_assert_eq(rp_html_render(r, &b), CM_OK);
    const char *h = b.data;
    cr_assert_not_null(strstr(h, "<!DOCTYPE html>"));
    cr_assert_not_null(strstr(h, "1 passed, 1 failed"));
    cr_assert_null(strstr(h, "src=\"http"), "nothing is loaded from the network");
    cr_assert_null(strstr(h, "<script"));
    cr_assert_null(strstr(h, "<link"));
    size_t svgs = 0;
    for (const char *p = h; (p = strstr(p, "<svg")); p++)
        svgs++;
    cr_assert_eq(svgs, 2, "one timeline per scenario");
    cr_assert_not_null(strstr(h, "fails &lt;b&gt;"), "names are escaped");
    cr_assert_null(strstr(h, "</pre>\"<"), "log text is escaped");
    cr_assert_not_null(strstr(h, "&lt;oops&gt;"));
    cr_assert_not_null(strstr(h, "#ff7f0e"), "the kill is marked");
    cr_assert_not_null(strstr(h, ">breaker calcom</text>"), "events get lanes of their own");
    cr_assert_not_null(strstr(h, "+0.400 breaker calcom closed -&gt; open"), "%s", h);
    cr_assert_not_null(strstr(h, "--seed 42"));
    cm_buf_free(&b);
    rp_report_free(&r);
}
