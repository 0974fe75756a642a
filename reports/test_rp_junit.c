/* test_rp_junit.c - the result model, XML escaping and the JUnit writer. The output is
 * parsed back with a small well-formedness checker and its counts compared with the
 * elements it contains. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rp_file.h"
#include "rp_junit.h"
#include "rp_result.h"
#include "rp_xml.h"

static char *esc(const char *in, rp_xml_mode_t mode)
{
    cm_buf_t b;
    cm_buf_init(&b, 1 << 20);
    cr_assert_eq(rp_xml_escape(&b, in, mode), CM_OK);
    return cm_buf_take(&b);
}

Test(xml, entities_and_controls)
{
    char *s = esc("a<b>&\"c'\x01\x1b[0m\td\ne\rf", RP_XML_TEXT);
    cr_assert_str_eq(s, "a&lt;b&gt;&amp;\"c'\\x01\\x1b[0m\td\ne&#13;f");
    free(s);
    s = esc("\"q' x", RP_XML_ATTR);
    cr_assert_str_eq(s, "&quot;q&apos; x");
    free(s);
    s = esc("x\ty\nz", RP_XML_ATTR);
    cr_assert_str_eq(s, "x&#9;y&#10;z");
    free(s);
}

Test(xml, utf8_kept_invalid_bytes_shown)
{
    /* é, €, an emoji pass; a lone continuation byte, a truncated sequence, an overlong
     * '/', a surrogate and U+FFFF are shown as \xNN per byte. */
    char *s = esc("\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80|\x80|\xe2\x82|\xc0\xaf|\xed\xa0\x80|"
                  "\xef\xbf\xbf",
                  RP_XML_TEXT);
    cr_assert_str_eq(s, "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80|\\x80|\\xe2\\x82|\\xc0\\xaf|"
                        "\\xed\\xa0\\x80|\\xef\\xbf\\xbf");
    free(s);
}

Test(result, classname)
{
    char out[128];
    cr_assert_str_eq(rp_classname("scenarios/basic/001_a.json", out, sizeof out),
                     "scenarios.basic.001_a");
    cr_assert_str_eq(rp_classname("./x/y.json", out, sizeof out), "x.y");
    cr_assert_str_eq(rp_classname("/abs/z.json", out, sizeof out), "abs.z");
    cr_assert_str_eq(rp_classname("noext", out, sizeof out), "noext");
}

Test(result, message_is_one_line_and_lines_capped)
{
    rp_report_t *r = rp_report_new("t");
    rp_case_t *c = rp_suite_add_case(rp_report_add_suite(r, "s"), "c", "k");
    cr_assert_eq(rp_case_set_outcome(c, RP_FAILED, "x", "first\nsecond", "d"), CM_OK);
    cr_assert_str_eq(c->message, "first");
    for (int i = 0; i < RP_MAX_LINES + 5; i++)
        cr_assert_eq(rp_case_add_line(c, i, "a", "l"), CM_OK);
    cr_assert_eq(c->nlines, RP_MAX_LINES);
    cr_assert_eq(c->dropped_lines, 5);
    rp_report_free(&r);
    cr_assert_null(r);
    rp_report_free(&r); /* NULL is fine */
}

/* --- a minimal XML well-formedness checker ------------------------------------------ */

typedef struct {
    int testsuites, testsuite, testcase, failure, error, skipped, system_out;
    long sum_tests, sum_failures, sum_errors, sum_skipped; /* over <testsuite> attributes */
    long top_tests, top_failures, top_errors, top_skipped;
} xml_stats_t;

static long attr_num(const char *tag, size_t len, const char *name)
{
    char pat[64];
    snprintf(pat, sizeof pat, " %s=\"", name);
    char *t = strndup(tag, len);
    char *p = strstr(t, pat);
    long v = p ? strtol(p + strlen(pat), NULL, 10) : -1;
    free(t);
    return v;
}

/* Returns NULL when well formed (and fills st), else a message. Checks: tags nest and
 * match, attribute values are quoted and hold no '<', every '&' starts a known entity or a
 * character reference, no raw control characters other than tab/LF. */
static const char *check_xml(const char *x, xml_stats_t *st)
{
    static char msg[256];
    const char *stack[64];
    size_t stack_len[64];
    int depth = 0, seen_root = 0;
    memset(st, 0, sizeof *st);
    if (strncmp(x, "<?xml ", 6) != 0)
        return "no XML declaration";
    x = strstr(x, "?>") + 2;
    for (const char *p = x; *p; p++) {
        unsigned char ch = (unsigned char)*p;
        if (ch < 0x20 && ch != '\n' && ch != '\t')
            return "raw control character";
        if (ch == '&') {
            if (strncmp(p, "&amp;", 5) && strncmp(p, "&lt;", 4) && strncmp(p, "&gt;", 4) &&
                strncmp(p, "&quot;", 6) && strncmp(p, "&apos;", 6) && strncmp(p, "&#", 2))
                return "bad entity";
            continue;
        }
        if (ch == '>')
            return "raw '>' in text";
        if (ch != '<')
            continue;
        const char *end = p + 1;
        int inq = 0;
        while (*end && (inq || *end != '>')) {
            if (*end == '"')
                inq = !inq;
            else if (inq && *end == '<')
                return "'<' in an attribute";
            end++;
        }
        if (!*end)
            return "unterminated tag";
        int closing = p[1] == '/';
        int selfclose = end[-1] == '/';
        const char *name = p + 1 + closing;
        size_t nlen = strcspn(name, " />");
        if (closing) {
            if (depth == 0 || stack_len[depth - 1] != nlen ||
                strncmp(stack[depth - 1], name, nlen) != 0) {
                snprintf(msg, sizeof msg, "mismatched </%.*s>", (int)nlen, name);
                return msg;
            }
            depth--;
        } else {
            if (depth == 0 && seen_root++)
                return "two root elements";
            size_t tlen = (size_t)(end - p);
#define IS(n) (nlen == strlen(n) && strncmp(name, n, nlen) == 0)
            if (IS("testsuites")) {
                st->testsuites++;
                st->top_tests = attr_num(p, tlen, "tests");
                st->top_failures = attr_num(p, tlen, "failures");
                st->top_errors = attr_num(p, tlen, "errors");
                st->top_skipped = attr_num(p, tlen, "skipped");
            } else if (IS("testsuite")) {
                st->testsuite++;
                st->sum_tests += attr_num(p, tlen, "tests");
                st->sum_failures += attr_num(p, tlen, "failures");
                st->sum_errors += attr_num(p, tlen, "errors");
                st->sum_skipped += attr_num(p, tlen, "skipped");
            } else if (IS("testcase")) {
                st->testcase++;
            } else if (IS("failure")) {
                st->failure++;
            } else if (IS("error")) {
                st->error++;
            } else if (IS("skipped")) {
                st->skipped++;
            } else if (IS("system-out")) {
                st->system_out++;
            }
#undef IS
            if (!selfclose) {
                if (depth == 64)
                    return "too deep";
                stack[depth] = name;
                stack_len[depth++] = nlen;
            }
        }
        p = end;
    }
    return depth ? "unclosed element" : NULL;
}

/* The report as JUnit XML (a string the caller frees), checked to be well formed. */
static char *junit_of(const rp_report_t *r, xml_stats_t *st)
{
    cm_buf_t b;
    cm_buf_init(&b, 1 << 20);
    cr_assert_eq(rp_junit_render(r, &b), CM_OK);
    const char *bad = check_xml(b.data, st);
    cr_assert_null(bad, "%s in:\n%s", bad, b.data);
    return cm_buf_take(&b);
}

static rp_report_t *sample(void)
{
    rp_report_t *r = rp_report_new("scenario");
    rp_suite_t *s1 = rp_report_add_suite(r, "scenarios/basic/001_ok.json");
    rp_case_t *c = rp_suite_add_case(s1, "happy <path> & \"more\"", "scenarios.basic.001_ok");
    c->time_s = 1.25;
    c->started_ms = 2545974000123LL;
    rp_suite_t *s2 = rp_report_add_suite(r, "scenarios/basic/002_bad.json");
    c = rp_suite_add_case(s2, "forged", "scenarios.basic.002_bad");
    c->time_s = 0.5;
    cr_assert_eq(rp_case_set_outcome(c, RP_FAILED, "expectation",
                                     "steps[1] (webhook): delivery 1 answered 204",
                                     "expected: one of [401]\ngot: 204 \x1b[31m<ok>\x01"),
                 CM_OK);
    cr_assert_eq(rp_case_add_line(c, 12, "runner", "started simulators & gateway"), CM_OK);
    cr_assert_eq(rp_case_add_line(c, 1500, "step[1]", "POST <x> ]]> \x02"), CM_OK);
    rp_suite_t *s3 = rp_report_add_suite(r, "scenarios/basic/003_invalid.json");
    c = rp_suite_add_case(s3, "003_invalid", "scenarios.basic.003_invalid");
    cr_assert_eq(rp_case_set_outcome(c, RP_ERRORED, "invalid",
                                     "steps[3] (webhook): \"copies\" "
                                     "must be a positive integer",
                                     NULL),
                 CM_OK);
    c = rp_suite_add_case(s3, "skipped one", "scenarios.basic.003_invalid");
    cr_assert_eq(rp_case_set_outcome(c, RP_SKIPPED, NULL, "needs faketime", NULL), CM_OK);
    return r;
}

Test(junit, render_parses_back_with_matching_counts)
{
    rp_report_t *r = sample();
    xml_stats_t st;
    char *x = junit_of(r, &st);
    cr_assert_eq(st.testsuites, 1);
    cr_assert_eq(st.testsuite, 3);
    cr_assert_eq(st.testcase, 4);
    cr_assert_eq(st.failure, 1);
    cr_assert_eq(st.error, 1);
    cr_assert_eq(st.skipped, 1);
    cr_assert_eq(st.system_out, 1, "only the failed case has a log");
    cr_assert_eq(st.top_tests, 4);
    cr_assert_eq(st.top_failures, 1);
    cr_assert_eq(st.top_errors, 1);
    cr_assert_eq(st.top_skipped, 1);
    cr_assert_eq(st.sum_tests, st.top_tests);
    cr_assert_eq(st.sum_failures, st.top_failures);
    cr_assert_eq(st.sum_errors, st.top_errors);
    cr_assert_eq(st.sum_skipped, st.top_skipped);
    cr_assert_not_null(strstr(x, "name=\"happy &lt;path&gt; &amp; &quot;more&quot;\""));
    cr_assert_not_null(strstr(x, "classname=\"scenarios.basic.001_ok\""));
    cr_assert_not_null(strstr(x, "time=\"1.250\""));
    cr_assert_not_null(strstr(x, "timestamp=\"2050-09-05T07:00:00\""));
    cr_assert_not_null(strstr(x, "got: 204 \\x1b[31m&lt;ok&gt;\\x01</failure>"));
    cr_assert_not_null(strstr(x, "+1.500 step[1]  POST &lt;x&gt; ]]&gt; \\x02"));
    free(x);
    rp_report_free(&r);
}

Test(junit, empty_report)
{
    rp_report_t *r = rp_report_new("empty");
    cm_buf_t b;
    cm_buf_init(&b, 1 << 20);
    cr_assert_eq(rp_junit_render(r, &b), CM_OK);
    xml_stats_t st;
    cr_assert_null(check_xml(b.data, &st));
    cr_assert_eq(st.top_tests, 0);
    cm_buf_free(&b);
    rp_report_free(&r);
}

Test(junit, write_creates_dirs_and_replaces)
{
    char dir[] = "/tmp/rp_test_XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char path[256], err[CM_ERR_LEN] = "";
    snprintf(path, sizeof path, "%s/a/b/junit.xml", dir);
    rp_report_t *r = sample();
    cr_assert_eq(rp_junit_write(r, path, err), CM_OK, "%s", err);
    cr_assert_eq(rp_junit_write(r, path, err), CM_OK, "%s", err);
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f);
    char head[6] = "";
    cr_assert_eq(fread(head, 1, 5, f), 5);
    fclose(f);
    cr_assert_str_eq(head, "<?xml");
    char tmp[300];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    cr_assert_neq(access(tmp, F_OK), 0, "temporary file left behind");
    unlink(path);
    snprintf(path, sizeof path, "%s/a/b", dir);
    rmdir(path);
    snprintf(path, sizeof path, "%s/a", dir);
    rmdir(path);
    rmdir(dir);
    rp_report_free(&r);
}

Test(junit, write_reports_unwritable_path)
{
    char err[CM_ERR_LEN] = "";
    rp_report_t *r = rp_report_new("x");
    cr_assert_neq(rp_junit_write(r, "/proc/nope/junit.xml", err), CM_OK);
    cr_assert_not_null(strstr(err, "/proc/nope"), "%s", err);
    rp_report_free(&r);
}

Test(junit, one_testcase_per_assertion_with_matching_counts)
{
    rp_report_t *r = rp_report_new("scenario");
    rp_suite_t *s = rp_report_add_suite(r, "scenarios/basic/002_x.json");
    /* failed at its second assertion, the third not reached */
    rp_case_t *c = rp_suite_add_case(s, "forged", "scenarios.basic.002_x");
    cr_assert_eq(rp_case_add_assert(c, "steps[1] (webhook)", RP_PASSED, 0.3), CM_OK);
    cr_assert_eq(rp_case_add_assert(c, "steps[2] (request)", RP_FAILED, 0.01), CM_OK);
    cr_assert_eq(rp_case_add_assert(c, "steps[3] (request)", RP_SKIPPED, 0), CM_OK);
    c->failed_assert = 2;
    cr_assert_eq(rp_case_set_outcome(c, RP_FAILED, "expectation", "count: expected 0, got 1",
                                     "count: expected 0, got 1"),
                 CM_OK);
    cr_assert_eq(rp_case_add_line(c, 5, "runner", "log line"), CM_OK);
    /* all assertions passed, then the gateway crashed at teardown: the scenario fails */
    rp_case_t *d = rp_suite_add_case(s, "crashed", "scenarios.basic.002_x");
    cr_assert_eq(rp_case_add_assert(d, "steps[0] (request)", RP_PASSED, 0.1), CM_OK);
    cr_assert_eq(rp_case_set_outcome(d, RP_FAILED, "process", "gateway killed by signal 11", NULL),
                 CM_OK);

    xml_stats_t st;
    char *x = junit_of(r, &st);
    cr_assert_eq(st.testcase, 5, "3 + 1 assertions + the crashed scenario itself:\n%s", x);
    cr_assert_eq(st.failure, 2);
    cr_assert_eq(st.skipped, 1);
    cr_assert_eq(st.top_tests, 5);
    cr_assert_eq(st.top_failures, 2);
    cr_assert_eq(st.top_skipped, 1);
    cr_assert_eq(st.sum_tests, st.top_tests);
    cr_assert_not_null(strstr(x, "name=\"forged: steps[2] (request)\""));
    cr_assert_not_null(strstr(x, "not reached: an earlier step failed"));
    cr_assert_not_null(strstr(x, "name=\"crashed\""), "%s", x);
    cr_assert_null(strstr(x, "name=\"forged\""), "the failure belongs to an assertion");
    free(x);
    rp_report_free(&r);
}

Test(junit, failure_message_is_the_one_line_detail_in_the_body)
{
    rp_report_t *r = rp_report_new("scenario");
    rp_case_t *c = rp_suite_add_case(rp_report_add_suite(r, "s.json"), "booking", "s");
    cr_assert_eq(rp_case_add_assert(c, "steps[4] (expect \"booked once\")", RP_FAILED, 0.1), CM_OK);
    c->failed_assert = 1;
    cr_assert_eq(rp_case_set_outcome(c, RP_FAILED, "expectation",
                                     "steps[4] \"booked once\": calcom.booking count: expected 1, "
                                     "got 2",
                                     "steps[4]:expect[0] (request): GET control /e: \"count\": "
                                     "expected 1, got 2\n  \"count\": expected 1, got 2\n"),
                 CM_OK);
    xml_stats_t st;
    char *x = junit_of(r, &st);
    cr_assert_not_null(strstr(x, "<failure message=\"steps[4] &quot;booked once&quot;: "
                                 "calcom.booking count: expected 1, got 2\" "
                                 "type=\"expectation\">steps[4]:expect[0] (request): GET "
                                 "control /e: \"count\": expected 1, got 2\n  \"count\": "
                                 "expected 1, got 2\n</failure>"),
                       "%s", x);
    free(x);
    rp_report_free(&r);
}

Test(result, message_defaults_to_the_detail_first_line)
{
    rp_report_t *r = rp_report_new("t");
    rp_case_t *c = rp_suite_add_case(rp_report_add_suite(r, "s"), "c", "k");
    cr_assert_eq(
        rp_case_set_outcome(c, RP_FAILED, "x", NULL, "status: expected 204, got 500\nmore"), CM_OK);
    cr_assert_str_eq(c->message, "status: expected 204, got 500");
    cr_assert_str_eq(c->detail, "status: expected 204, got 500\nmore");
    cr_assert_eq(rp_case_set_outcome(c, RP_PASSED, NULL, NULL, NULL), CM_OK);
    cr_assert_null(c->message);
    rp_report_free(&r);
}

Test(result, lanes_and_iterations)
{
    rp_report_t *r = rp_report_new("t");
    rp_case_t *c = rp_suite_add_case(rp_report_add_suite(r, "s"), "c", "k");
    cr_assert_eq(rp_case_add_lane(c, "step[3]", "book", "request", 0), CM_OK);
    cr_assert_eq(rp_case_add_lane(c, "step[3]", "other", "wait", 2), CM_OK);
    cr_assert_eq(c->nlanes, 1, "an actor keeps its first lane");
    cr_assert_str_eq(rp_case_lane(c, "step[3]")->label, "book");
    cr_assert_null(rp_case_lane(c, "step[4]"));
    cr_assert_eq(rp_case_fail_lane(c, "step[4]"), CM_ENOTFOUND);
    cr_assert_eq(rp_case_fail_lane(c, "step[3]"), CM_OK);
    cr_assert(rp_case_lane(c, "step[3]")->failed);
    for (int i = 0; i < RP_MAX_ITERATIONS + 3; i++)
        cr_assert_eq(rp_case_add_iteration(c, i, "i=123456789012345678901234567890"), CM_OK);
    cr_assert_eq(c->niterations, RP_MAX_ITERATIONS);
    cr_assert_eq(c->dropped_iterations, 3);
    cr_assert_str_eq(c->iterations[0].label, "i=123456789012345678901", "cut to fit");
    rp_report_free(&r);
}
