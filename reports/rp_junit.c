/* rp_junit.c - JUnit XML from the result model. */
#include "rp_junit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cm_clock.h"
#include "rp_file.h"
#include "rp_xml.h"

/* Reports of a few thousand scenarios with their logs stay far below this. */
#define RP_JUNIT_MAX (256u << 20)

static cm_err_t attr(cm_buf_t *b, const char *name, const char *value)
{
    cm_err_t rc = cm_buf_printf(b, " %s=\"", name);
    if (!rc)
        rc = rp_xml_escape(b, value ? value : "", RP_XML_ATTR);
    if (!rc)
        rc = cm_buf_addstr(b, "\"");
    return rc;
}

static cm_err_t counts_attrs(cm_buf_t *b, rp_counts_t k)
{
    return cm_buf_printf(b,
                         " tests=\"%zu\" failures=\"%zu\" errors=\"%zu\" skipped=\"%zu\" "
                         "time=\"%.3f\"",
                         k.tests, k.failures, k.errors, k.skipped, k.time_s);
}

/* One <testcase>: name (within the scenario's classname), status, time; a failure or
 * error carries the case's message, type and detail, and then its log. */
static cm_err_t render_one(const rp_case_t *c, const char *name, rp_status_t st, double time_s,
                           const char *skip_message, cm_buf_t *b)
{
    cm_err_t rc = cm_buf_addstr(b, "    <testcase");
    if (!rc)
        rc = attr(b, "classname", c->classname);
    if (!rc)
        rc = attr(b, "name", name);
    if (!rc)
        rc = cm_buf_printf(b, " time=\"%.3f\"", time_s);
    if (rc || st == RP_PASSED)
        return rc ? rc : cm_buf_addstr(b, "/>\n");

    rc = cm_buf_addstr(b, ">\n");
    if (!rc && st == RP_SKIPPED) {
        rc = cm_buf_addstr(b, "      <skipped");
        if (!rc)
            rc = attr(b, "message", skip_message);
        if (!rc)
            rc = cm_buf_addstr(b, "/>\n");
        return rc ? rc : cm_buf_addstr(b, "    </testcase>\n");
    }

    const char *el = st == RP_ERRORED ? "error" : "failure";
    if (!rc)
        rc = cm_buf_printf(b, "      <%s", el);
    if (!rc)
        rc = attr(b, "message", c->message ? c->message : rp_status_name(st));
    if (!rc)
        rc = attr(b, "type", c->type ? c->type : el);
    if (!rc)
        rc = cm_buf_addstr(b, ">");
    if (!rc)
        rc = rp_xml_escape(b, c->detail ? c->detail : "", RP_XML_TEXT);
    if (!rc)
        rc = cm_buf_printf(b, "</%s>\n", el);
    if (!rc && (c->nlines || c->dropped_lines)) {
        char *log = rp_case_log_text(c);
        rc = log ? cm_buf_addstr(b, "      <system-out>") : CM_ENOMEM;
        if (!rc)
            rc = rp_xml_escape(b, log, RP_XML_TEXT);
        if (!rc)
            rc = cm_buf_addstr(b, "</system-out>\n");
        free(log);
    }
    return rc ? rc : cm_buf_addstr(b, "    </testcase>\n");
}

/* A scenario with assertions is one testcase per assertion ("scenario name: step"), plus
 * one for the scenario itself only when its outcome belongs to no assertion (it could not
 * start, a process crashed at teardown, a step without expectations failed). */
static int scenario_testcase(const rp_case_t *c)
{
    return c->nasserts == 0 || (c->status != RP_PASSED && c->failed_assert == 0);
}

static cm_err_t render_case(const rp_case_t *c, cm_buf_t *b)
{
    cm_err_t rc = CM_OK;
    for (size_t i = 0; !rc && i < c->nasserts; i++) {
        const rp_assert_t *a = &c->asserts[i];
        char name[1400];
        snprintf(name, sizeof name, "%s: %s", c->name, a->name);
        rc = render_one(c, name, a->status, a->time_s, "not reached: an earlier step failed", b);
    }
    if (!rc && scenario_testcase(c))
        rc = render_one(c, c->name, c->status, c->time_s, c->message, b);
    return rc;
}

rp_counts_t rp_junit_counts(const rp_case_t *const *cases, size_t n)
{
    rp_counts_t k = {0};
    for (size_t i = 0; i < n; i++) {
        const rp_case_t *c = cases[i];
        for (size_t j = 0; j < c->nasserts; j++) {
            k.tests++;
            k.failures += c->asserts[j].status == RP_FAILED;
            k.errors += c->asserts[j].status == RP_ERRORED;
            k.skipped += c->asserts[j].status == RP_SKIPPED;
        }
        if (scenario_testcase(c)) {
            k.tests++;
            k.failures += c->status == RP_FAILED;
            k.errors += c->status == RP_ERRORED;
            k.skipped += c->status == RP_SKIPPED;
        }
        k.time_s += c->time_s;
    }
    return k;
}

static cm_err_t render_suite(const rp_suite_t *s, cm_buf_t *b)
{
    cm_err_t rc = cm_buf_addstr(b, "  <testsuite");
    if (!rc)
        rc = attr(b, "name", s->name);
    if (!rc)
        rc = counts_attrs(b, rp_junit_counts((const rp_case_t *const *)s->cases, s->ncases));
    /* The JUnit schema wants a local date-time without a zone; we write UTC. */
    int64_t started = s->ncases ? s->cases[0]->started_ms : 0;
    if (!rc && started > 0) {
        char iso[25];
        cm_clock_iso8601(started, iso);
        iso[19] = '\0';
        rc = cm_buf_printf(b, " timestamp=\"%s\"", iso);
    }
    if (!rc)
        rc = cm_buf_addstr(b, ">\n");
    for (size_t i = 0; !rc && i < s->ncases; i++)
        rc = render_case(s->cases[i], b);
    return rc ? rc : cm_buf_addstr(b, "  </testsuite>\n");
}

cm_err_t rp_junit_render(const rp_report_t *r, cm_buf_t *b)
{
    rp_counts_t k = {0};
    for (size_t i = 0; i < r->nsuites; i++) {
        rp_counts_t s =
            rp_junit_counts((const rp_case_t *const *)r->suites[i]->cases, r->suites[i]->ncases);
        k.tests += s.tests;
        k.failures += s.failures;
        k.errors += s.errors;
        k.skipped += s.skipped;
        k.time_s += s.time_s;
    }
    if (r->time_s > 0)
        k.time_s = r->time_s; /* wall time of the whole run, when the runner measured it */
    cm_err_t rc = cm_buf_addstr(b, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites");
    if (!rc)
        rc = attr(b, "name", r->name);
    if (!rc)
        rc = counts_attrs(b, k);
    if (!rc)
        rc = cm_buf_addstr(b, ">\n");
    for (size_t i = 0; !rc && i < r->nsuites; i++)
        rc = render_suite(r->suites[i], b);
    return rc ? rc : cm_buf_addstr(b, "</testsuites>\n");
}

cm_err_t rp_junit_write(const rp_report_t *r, const char *path, char *err)
{
    cm_buf_t b;
    cm_buf_init(&b, RP_JUNIT_MAX);
    cm_err_t rc = rp_junit_render(r, &b);
    if (rc)
        cm_errf(err, "cannot render JUnit XML: %s", cm_strerror(rc));
    else
        rc = rp_write_file(path, b.data, b.len, err);
    cm_buf_free(&b);
    return rc;
}
