/* test_rp_health.c - the health report: per-area scores and statuses, the overall score as
 * the mean of the judged areas, findings with their evidence, and the HTML page. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <string.h>
#include <unistd.h>

#include "rp_health.h"

static rp_case_t *add(rp_report_t *r, const char *file, const char *area, const char *finding,
                      rp_status_t st)
{
    rp_suite_t *s = rp_report_add_suite(r, file);
    cr_assert_not_null(s);
    rp_case_t *c = rp_suite_add_case(s, file, "x");
    cr_assert_not_null(c);
    if (area)
        cr_assert_eq(rp_case_set_area(c, area, finding), CM_OK);
    if (st != RP_PASSED)
        cr_assert_eq(
            rp_case_set_outcome(c, st, "expectation",
                                "steps[3] \"booked once\" > \"effects: calcom.booking\": "
                                "\"count\": expected 1, got 2",
                                "steps[3] \"booked once\" > \"effects: calcom.booking\": "
                                "\"count\": expected 1, got 2\n  answer: {\"count\": 2}\n"),
            CM_OK);
    return c;
}

/* Two security scenarios (one fails), one dedup scenario that fails, one breaker scenario
 * that passes, one skipped, and one scenario outside the contract that fails. */
static rp_report_t *sample(void)
{
    rp_report_t *r = rp_report_new("scenario");
    cr_assert_not_null(r);
    add(r, "scenarios/contract/010_a.json", "webhook_security",
        "Webhook signature verification disabled", RP_PASSED);
    rp_case_t *sec = add(r, "scenarios/contract/011_b.json", "webhook_security",
                         "Cal.com webhook signature not verified", RP_FAILED);
    cr_assert_eq(rp_case_add_event(sec, 1200, "sim calcom", "POST /v2/bookings -> 201"), CM_OK);
    cr_assert_eq(rp_case_add_event(sec, 1300, "breaker calcom", "closed -> open"), CM_OK);
    cr_assert_eq(rp_case_add_event(sec, 1400, "deliveries", "retell call_analyzed -> 204"), CM_OK);
    add(r, "scenarios/contract/020_c.json", "dedup", "Race condition in webhook deduplication",
        RP_FAILED);
    add(r, "scenarios/contract/050_d.json", "breakers", "No circuit breaker on Stripe", RP_PASSED);
    add(r, "scenarios/contract/051_e.json", "breakers", "No circuit breaker on Cal.com",
        RP_SKIPPED);
    add(r, "scenarios/basic/001_x.json", NULL, NULL, RP_FAILED);
    return r;
}

static json_t *render(const rp_report_t *r)
{
    cm_buf_t b;
    cm_buf_init(&b, 1 << 20);
    cr_assert_eq(rp_health_render_json(r, "build/gateway/gateway", &b), CM_OK);
    json_error_t je;
    json_t *j = json_loads(b.data, 0, &je);
    cr_assert_not_null(j, "%s: %s", je.text, b.data);
    cm_buf_free(&b);
    return j;
}

Test(health, areas_scored_and_overall_is_their_mean)
{
    rp_report_t *r = sample();
    r->has_seed = 1;
    r->seed = 7;
    cr_assert(rp_health_has_areas(r));
    json_t *j = render(r);
    cr_assert_str_eq(json_string_value(json_object_get(j, "gateway")), "build/gateway/gateway");
    cr_assert_eq(json_integer_value(json_object_get(j, "seed")), 7);
    json_t *areas = json_object_get(j, "areas");
    /* Only judged areas, in the report's order; the skipped case is not judged. */
    cr_assert_eq(json_array_size(areas), 3);
    json_t *sec = json_array_get(areas, 0), *dd = json_array_get(areas, 1),
           *br = json_array_get(areas, 2);
    cr_assert_str_eq(json_string_value(json_object_get(sec, "area")), "webhook_security");
    cr_assert_eq(json_integer_value(json_object_get(sec, "passed")), 1);
    cr_assert_eq(json_integer_value(json_object_get(sec, "total")), 2);
    cr_assert_eq(json_integer_value(json_object_get(sec, "score")), 50);
    cr_assert_str_eq(json_string_value(json_object_get(sec, "status")), "degraded");
    cr_assert_str_eq(json_string_value(json_object_get(dd, "area")), "dedup");
    cr_assert_eq(json_integer_value(json_object_get(dd, "score")), 0);
    cr_assert_str_eq(json_string_value(json_object_get(dd, "status")), "broken");
    cr_assert_str_eq(json_string_value(json_object_get(br, "area")), "breakers");
    cr_assert_eq(json_integer_value(json_object_get(br, "total")), 1);
    cr_assert_eq(json_integer_value(json_object_get(br, "score")), 100);
    cr_assert_str_eq(json_string_value(json_object_get(br, "status")), "ok");
    /* (50 + 0 + 100) / 3 */
    cr_assert_eq(json_integer_value(json_object_get(j, "score")), 50);
    json_decref(j);
    rp_report_free(&r);
}

Test(health, findings_carry_the_failure_and_the_journal)
{
    rp_report_t *r = sample();
    json_t *j = render(r);
    cr_assert_eq(json_integer_value(json_object_get(j, "seed")), 0, "no --seed: 0");
    json_t *fs = json_object_get(j, "findings");
    cr_assert_eq(json_array_size(fs), 2, "the basic scenario has no area: not a finding");
    json_t *f = json_array_get(fs, 0);
    cr_assert_str_eq(json_string_value(json_object_get(f, "area")), "webhook_security");
    cr_assert_str_eq(json_string_value(json_object_get(f, "scenario")),
                     "scenarios/contract/011_b.json");
    cr_assert_str_eq(json_string_value(json_object_get(f, "finding")),
                     "Cal.com webhook signature not verified");
    json_t *ev = json_object_get(f, "evidence");
    cr_assert_eq(json_array_size(ev), 4, "message, one detail line, two journal lines");
    cr_assert_str_eq(json_string_value(json_array_get(ev, 0)),
                     "steps[3] \"booked once\" > \"effects: calcom.booking\": \"count\": expected "
                     "1, got 2");
    cr_assert_str_eq(json_string_value(json_array_get(ev, 1)), "answer: {\"count\": 2}");
    cr_assert_str_eq(json_string_value(json_array_get(ev, 2)),
                     "sim calcom +1.200s POST /v2/bookings -> 201");
    cr_assert_str_eq(json_string_value(json_array_get(ev, 3)),
                     "deliveries +1.400s retell call_analyzed -> 204");
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(fs, 1), "area")), "dedup");
    json_decref(j);
    rp_report_free(&r);
}

Test(health, all_passed_is_full_marks_and_no_area_is_nothing_to_judge)
{
    rp_report_t *r = rp_report_new("scenario");
    add(r, "scenarios/basic/001_x.json", NULL, NULL, RP_PASSED);
    cr_assert_not(rp_health_has_areas(r));
    add(r, "scenarios/contract/010_a.json", "privacy", "Caller data logged in clear", RP_PASSED);
    add(r, "scenarios/contract/030_a.json", "timeouts", "Single 10 s timeout", RP_PASSED);
    json_t *j = render(r);
    cr_assert_eq(json_integer_value(json_object_get(j, "score")), 100);
    cr_assert_eq(json_array_size(json_object_get(j, "findings")), 0);
    json_decref(j);
    rp_report_free(&r);
}

Test(health, an_errored_scenario_is_a_finding_and_bad_bytes_stay_json)
{
    rp_report_t *r = rp_report_new("scenario");
    rp_case_t *c =
        add(r, "scenarios/contract/010_a.json", "webhook_security", "forged <b>", RP_PASSED);
    cr_assert_eq(rp_case_set_outcome(c, RP_ERRORED, "startup", "gateway did not start \xff", NULL),
                 CM_OK);
    json_t *j = render(r);
    json_t *f = json_array_get(json_object_get(j, "findings"), 0);
    cr_assert_not_null(f);
    cr_assert_str_eq(json_string_value(json_array_get(json_object_get(f, "evidence"), 0)),
                     "gateway did not start ?");
    cr_assert_eq(json_integer_value(json_object_get(j, "score")), 0);
    json_decref(j);
    cm_buf_t b;
    cm_buf_init(&b, 1 << 20);
    cr_assert_eq(rp_health_render_html(r, "naive <gw>", &b), CM_OK);
    cr_assert_not_null(strstr(b.data, "naive &lt;gw&gt;"));
    cr_assert_not_null(strstr(b.data, "forged &lt;b&gt;"));
    cr_assert_not_null(strstr(b.data, "Impact: Security vulnerability"));
    cr_assert_not_null(strstr(b.data, "Monitoring</td><td class=\"na\">not judged"));
    cr_assert_null(strstr(b.data, "<script"));
    cr_assert_null(strstr(b.data, "http://"), "self-contained");
    cm_buf_free(&b);
    rp_report_free(&r);
}

Test(health, write_puts_both_files_in_the_directory)
{
    rp_report_t *r = sample();
    char dir[] = "/tmp/test_rp_health_XXXXXX", path[128], err[CM_ERR_LEN] = "";
    cr_assert_not_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/sub", dir);
    cr_assert_eq(rp_health_write(r, "gw", path, err), CM_OK, "%s", err);
    char j[160], h[160];
    snprintf(j, sizeof j, "%s/health.json", path);
    snprintf(h, sizeof h, "%s/health.html", path);
    cr_assert_eq(access(j, R_OK), 0);
    cr_assert_eq(access(h, R_OK), 0);
    unlink(j);
    unlink(h);
    rmdir(path);
    rmdir(dir);
    rp_report_free(&r);
}

Test(health, area_names)
{
    cr_assert_eq(rp_health_area_index("webhook_security"), 0);
    cr_assert_eq(rp_health_area_index("monitoring"), 10);
    cr_assert_eq(rp_health_area_index("security"), -1);
    cr_assert_eq(rp_health_area_index(NULL), -1);
}
