/* rp_junit.c - JUnit XML from the result model. */
#include "rp_junit.h"

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

static cm_err_t render_case(const rp_case_t *c, cm_buf_t *b)
{
    cm_err_t rc = cm_buf_addstr(b, "    <testcase");
    if (!rc)
        rc = attr(b, "classname", c->classname);
    if (!rc)
        rc = attr(b, "name", c->name);
    if (!rc)
        rc = cm_buf_printf(b, " time=\"%.3f\"", c->time_s);
    if (rc || c->status == RP_PASSED)
        return rc ? rc : cm_buf_addstr(b, "/>\n");

    rc = cm_buf_addstr(b, ">\n");
    if (!rc && c->status == RP_SKIPPED) {
        rc = cm_buf_addstr(b, "      <skipped");
        if (!rc)
            rc = attr(b, "message", c->message);
        if (!rc)
            rc = cm_buf_addstr(b, "/>\n");
        return rc ? rc : cm_buf_addstr(b, "    </testcase>\n");
    }

    const char *el = c->status == RP_ERRORED ? "error" : "failure";
    if (!rc)
        rc = cm_buf_printf(b, "      <%s", el);
    if (!rc)
        rc = attr(b, "message", c->message ? c->message : rp_status_name(c->status));
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

static cm_err_t render_suite(const rp_suite_t *s, cm_buf_t *b)
{
    cm_err_t rc = cm_buf_addstr(b, "  <testsuite");
    if (!rc)
        rc = attr(b, "name", s->name);
    if (!rc)
        rc = counts_attrs(b, rp_suite_counts(s));
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
    rp_counts_t k = rp_report_counts(r);
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
