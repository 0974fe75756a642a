/* test_rp_report.c - the JSON and HTML reports: valid JSON with every field (bad UTF-8 and
 * "<" made safe), and a self-contained HTML page with one SVG timeline per scenario. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <string.h>

#include "rp_html.h"
#include "rp_json.h"
#include "rp_timeline.h"

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
    cr_assert_not_null(strstr(h, ">breaker calcom<title>"), "events get lanes of their own");
    cr_assert_not_null(strstr(h, "+0.400 breaker calcom closed -&gt; open"), "%s", h);
    cr_assert_not_null(strstr(h, "--seed 42"));
    cm_buf_free(&b);
    rp_report_free(&r);
}

/* --- the failure's one line, step lanes, the failing lane, density, grouping ---------- */

static char *html_of(rp_report_t *r)
{
    cm_buf_t b;
    cm_buf_init(&b, 16 << 20);
    cr_assert_eq(rp_html_render(r, &b), CM_OK);
    return cm_buf_take(&b);
}

static size_t count(const char *h, const char *what)
{
    size_t n = 0;
    for (const char *p = h; (p = strstr(p, what)); p++)
        n++;
    return n;
}

/* A failed case whose step "booked once" sits in a repeat: runner and part lines, three
 * iterations of two nested steps, the second failing in the last. */
static rp_case_t *repeat_case(rp_report_t *r)
{
    rp_case_t *c = rp_suite_add_case(rp_report_add_suite(r, "s.json"), "drill", "s");
    cr_assert_eq(rp_case_add_lane(c, "step[0]", "check the queue", "request", 0), CM_OK);
    cr_assert_eq(rp_case_add_lane(c, "step[1]", "rounds <x> & \"y\"", "repeat", 0), CM_OK);
    cr_assert_eq(rp_case_add_lane(c, "step[1.0]", "steps[1].steps[0] (request)", "request", 1),
                 CM_OK);
    cr_assert_eq(rp_case_add_lane(c, "step[1.1]", "booked once", "expect", 1), CM_OK);
    cr_assert_eq(rp_case_join_lane(c, "step[1.1.0]", "step[1.1]"), CM_OK);
    cr_assert_eq(rp_case_add_lane(c, "step[2]", "never logs", "request", 0), CM_OK);
    cr_assert_eq(rp_case_add_line(c, 1, "runner", "scenario starts"), CM_OK);
    cr_assert_eq(rp_case_add_line(c, 10, "step[0]", "GET gateway /admin/queue -> 200"), CM_OK);
    for (int i = 0; i < 3; i++) {
        char it[8];
        snprintf(it, sizeof it, "i=%d", i);
        cr_assert_eq(rp_case_add_iteration(c, 100 + 100 * i, it), CM_OK);
        cr_assert_eq(rp_case_add_line(c, 110 + 100 * i, "step[1.0]", "POST control /x -> 201"),
                     CM_OK);
        cr_assert_eq(rp_case_add_line(c, 150 + 100 * i, "step[1.1.0]", "GET control /y -> 200"),
                     CM_OK);
    }
    cr_assert_eq(rp_case_add_line(c, 360, "runner", "FAIL: steps[1]..."), CM_OK);
    cr_assert_eq(rp_case_add_event(c, 120, "sim calcom", "POST /v2/bookings -> 201"), CM_OK);
    cr_assert_eq(rp_case_fail_lane(c, "step[1.1.0]"), CM_OK);
    cr_assert_eq(rp_case_set_outcome(c, RP_FAILED, "expectation",
                                     "steps[1] \"rounds\" > \"booked once\" [i=2]: calcom.booking "
                                     "count: expected 1, got 2",
                                     "steps[1].steps[1]:expect[0] (request) [i=2]: GET control "
                                     "/y: \"count\": expected 1, got 2\n  \"count\": expected 1, "
                                     "got 2\nanswer: 200 {\"count\":2}\n"),
                 CM_OK);
    return c;
}

Test(report, failure_in_one_line_before_timeline_and_log)
{
    rp_report_t *r = rp_report_new("scenario");
    repeat_case(r);
    char *h = html_of(r);
    const char *line = "<p class=\"headline\">steps[1] \"rounds\" &gt; \"booked once\" [i=2]: "
                       "calcom.booking count: expected 1, got 2</p>";
    const char *at = strstr(h, line);
    cr_assert_not_null(at, "%s", h);
    const char *head = strstr(h, "<h2 id=\"s0\">");
    cr_assert(head && head < at, "under the case's heading");
    cr_assert(at < strstr(head, "<pre>"), "before the diagnosis");
    cr_assert(at < strstr(head, "<svg"), "before the timeline");
    cr_assert(at < strstr(head, "<details"), "before the log");
    free(h);
    rp_report_free(&r);
}

Test(report, lanes_named_after_steps_and_failing_lane_red)
{
    rp_report_t *r = rp_report_new("scenario");
    repeat_case(r);
    char *h = html_of(r);
    cr_assert_not_null(strstr(h, "class=\"lane\">check the queue<title>"), "%s", h);
    cr_assert_not_null(strstr(h, "class=\"lane\">rounds &lt;x&gt; &amp; \"y\"<title>"),
                       "the repeat heads its steps, escaped");
    const char *nested = strstr(h, "class=\"lane\">steps[1].steps[0] (request)<title>");
    cr_assert(nested && !strncmp(nested - 20, "<text x=\"12\" y=", 15),
              "nested steps indented under it");
    cr_assert_not_null(strstr(h, "class=\"lane bad\">booked once<title>"), "the failing lane");
    cr_assert_eq(count(h, ">booked once<title>"), 1, "an expect's checks share its lane");
    cr_assert_null(strstr(h, "never logs"), "a step without marks has no lane");
    cr_assert_null(strstr(h, ">step["), "no internal actor names a lane");
    cr_assert_not_null(strstr(h, "class=\"lane\">runner<title>"), "the parts keep theirs");
    cr_assert_not_null(strstr(h, "class=\"lane\">sim calcom<title>"));
    cr_assert_eq(count(h, "class=\"badlane\""), 1);
    cr_assert_eq(count(h, " class=\"bad\">"), 3, "the failing lane's three marks are outlined");
    cr_assert_eq(count(h, "class=\"iter\""), 3, "a separator per iteration");
    cr_assert_not_null(strstr(h, "class=\"it\">i=2</text>"));
    free(h);
    rp_report_free(&r);
}

Test(report, many_marks_in_a_lane_are_counted_not_dropped)
{
    rp_report_t *r = rp_report_new("scenario");
    rp_case_t *c = rp_suite_add_case(rp_report_add_suite(r, "s.json"), "load", "s");
    cr_assert_eq(rp_case_add_lane(c, "step[0.0]", "send a webhook", "request", 1), CM_OK);
    for (int i = 0; i < 2000; i++)
        cr_assert_eq(
            rp_case_add_line(c, 5 * i, "step[0.0]",
                             i == 1234 ? "POST gateway /w -> 500" : "POST gateway /w -> 204"),
            CM_OK);
    cr_assert_eq(rp_case_add_line(c, 10, "runner", "start"), CM_OK);
    char *h = html_of(r);
    cr_assert_eq(count(h, "width=\"3\""), 1, "only the runner's line is drawn as a mark");
    cr_assert_not_null(strstr(h, "send a webhook: 2000 marks, drawn as density"), "%s", h);
    cr_assert_not_null(strstr(h, "Lanes with more than 200 marks show their density"));
    size_t total = 0, red = 0;
    for (const char *p = h; (p = strstr(p, " s: ")); p++) {
        unsigned n = 0;
        if (sscanf(p, " s: %u mark", &n) == 1)
            total += n;
    }
    cr_assert_eq(total, 2000, "every mark is counted in a bar");
    for (const char *p = h; (p = strstr(p, "fill=\"#d62728\"><title>+")); p++)
        red += strstr(p, "1 5xx, no answer, failure") != NULL;
    cr_assert_geq(red, 1, "the one 500 colours its bar");
    cr_assert_lt(strlen(h), 200000, "the page stays small");
    free(h);
    rp_report_free(&r);
}

Test(report, too_many_steps_share_a_lane_per_kind)
{
    static const char *const kinds[] = {"call", "request", "chaos"};
    rp_report_t *r = rp_report_new("scenario");
    rp_case_t *c = rp_suite_add_case(rp_report_add_suite(r, "s.json"), "drill", "s");
    for (int i = 0; i < 752; i++) {
        char actor[24], label[48];
        snprintf(actor, sizeof actor, "step[%d]", i);
        snprintf(label, sizeof label, "steps[%d] (%s)", i, kinds[i % 3]);
        cr_assert_eq(rp_case_add_lane(c, actor, label, kinds[i % 3], 0), CM_OK);
        cr_assert_eq(rp_case_add_line(c, i, actor, "x -> 200"), CM_OK);
    }
    for (int i = 0; i < 25; i++) {
        char part[24];
        snprintf(part, sizeof part, "part %d", i);
        cr_assert_eq(rp_case_add_event(c, i, part, "e"), CM_OK);
    }
    cr_assert_eq(rp_case_fail_lane(c, "step[747]"), CM_OK);
    rp_timeline_t t;
    cr_assert_eq(rp_timeline_build(c, &t), CM_OK);
    cr_assert(t.grouped);
    cr_assert_eq(t.nsteps, 752);
    cr_assert_leq(t.nlanes, RP_TL_MAX_LANES);
    size_t sum = 0;
    for (size_t k = 0; k < t.nlanes; k++)
        sum += t.lanes[k].nmarks;
    cr_assert_eq(sum, 752 + 25, "every mark has a lane");
    cr_assert_str_eq(t.lanes[0].label, "250 call steps");
    cr_assert_str_eq(t.lanes[1].label, "251 request steps");
    cr_assert_str_eq(t.lanes[2].label, "250 chaos steps");
    cr_assert_str_eq(t.lanes[3].label, "steps[747] (call)");
    cr_assert(t.lanes[3].failed);
    cr_assert_str_eq(t.lanes[t.nlanes - 1].label, "other (6 actors)");
    cr_assert_eq(t.lanes[t.nlanes - 1].nmarks, 6);
    rp_timeline_free(&t);
    char *h = html_of(r);
    cr_assert_not_null(strstr(h, "752 steps logged, too many for a lane each"));
    free(h);
    rp_report_free(&r);
}

Test(report, json_holds_lanes_and_iterations)
{
    rp_report_t *r = rp_report_new("scenario");
    repeat_case(r);
    cm_buf_t b;
    cm_buf_init(&b, 1 << 20);
    cr_assert_eq(rp_json_render(r, &b), CM_OK);
    json_error_t je;
    json_t *j = json_loads(b.data, 0, &je);
    cr_assert_not_null(j, "%s: %s", je.text, b.data);
    json_t *c = json_array_get(
        json_object_get(json_array_get(json_object_get(j, "suites"), 0), "cases"), 0);
    json_t *lanes = json_object_get(c, "lanes");
    cr_assert_eq(json_array_size(lanes), 6);
    json_t *l = json_array_get(lanes, 4);
    cr_assert_str_eq(json_string_value(json_object_get(l, "actor")), "step[1.1.0]");
    cr_assert_str_eq(json_string_value(json_object_get(l, "label")), "booked once");
    cr_assert_str_eq(json_string_value(json_object_get(l, "group")), "expect");
    cr_assert_str_eq(json_string_value(json_object_get(l, "joins")), "step[1.1]");
    cr_assert(json_is_null(json_object_get(json_array_get(lanes, 3), "joins")));
    cr_assert_eq(json_integer_value(json_object_get(l, "depth")), 1);
    cr_assert(json_is_true(json_object_get(l, "failed")));
    cr_assert(json_is_false(json_object_get(json_array_get(lanes, 0), "failed")));
    json_t *its = json_object_get(c, "iterations");
    cr_assert_eq(json_array_size(its), 3);
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(its, 2), "label")), "i=2");
    cr_assert_eq(json_integer_value(json_object_get(json_array_get(its, 2), "t_ms")), 300);
    cr_assert_str_eq(json_string_value(json_object_get(c, "message")),
                     "steps[1] \"rounds\" > \"booked once\" [i=2]: calcom.booking count: "
                     "expected 1, got 2");
    json_decref(j);
    cm_buf_free(&b);
    rp_report_free(&r);
}

Test(report, steps_of_one_name_keep_their_lanes_checks_join_theirs)
{
    rp_report_t *r = rp_report_new("scenario");
    rp_case_t *c = rp_suite_add_case(rp_report_add_suite(r, "s.json"), "c", "s");
    cr_assert_eq(rp_case_add_lane(c, "step[0]", "the links clear", "chaos", 0), CM_OK);
    cr_assert_eq(rp_case_add_lane(c, "step[1]", "the links clear", "chaos", 0), CM_OK);
    cr_assert_eq(rp_case_add_lane(c, "step[2]", "booked once", "expect", 0), CM_OK);
    cr_assert_eq(rp_case_join_lane(c, "step[2.0]", "step[2]"), CM_OK);
    cr_assert_eq(rp_case_join_lane(c, "step[2.0.0]", "step[2.0]"), CM_OK);
    cr_assert_eq(rp_case_join_lane(c, "step[9]", "step[8]"), CM_ENOTFOUND);
    cr_assert_str_eq(rp_case_lane(c, "step[2.0.0]")->joins, "step[2]", "joins the lane itself");
    for (int i = 0; i < 2; i++) {
        char actor[24];
        snprintf(actor, sizeof actor, "step[%d]", i);
        cr_assert_eq(rp_case_add_line(c, i, actor, "PUT chaos /links/x/faults -> 200"), CM_OK);
    }
    cr_assert_eq(rp_case_add_line(c, 3, "step[2.0]", "GET control /e -> 200"), CM_OK);
    cr_assert_eq(rp_case_add_line(c, 4, "step[2.0.0]", "GET control /e -> 200"), CM_OK);
    rp_timeline_t t;
    cr_assert_eq(rp_timeline_build(c, &t), CM_OK);
    cr_assert_eq(t.nlanes, 3);
    cr_assert_str_eq(t.lanes[0].label, "the links clear");
    cr_assert_str_eq(t.lanes[1].label, "the links clear");
    cr_assert_str_eq(t.lanes[2].label, "booked once");
    cr_assert_eq(t.lanes[2].nmarks, 2);
    cr_assert_eq(t.nsteps, 3);
    rp_timeline_free(&t);
    rp_report_free(&r);
}
