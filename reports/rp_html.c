/* rp_html.c - the self-contained HTML report with SVG timelines. */
#include "rp_html.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cm_clock.h"
#include "rp_file.h"
#include "rp_xml.h"

#define RP_HTML_MAX (512u << 20)
#define W 1000   /* timeline width (user units) */
#define LEFT 110 /* room for lane names */
#define LANE 18

static cm_err_t text(cm_buf_t *b, const char *s)
{
    return rp_xml_escape(b, s ? s : "", RP_XML_TEXT);
}

static const char *status_class(rp_status_t st)
{
    switch (st) {
    case RP_PASSED:
        return "pass";
    case RP_SKIPPED:
        return "skip";
    default:
        return "fail";
    }
}

/* The colour of a mark: what the line says happened. */
static const char *mark_colour(const rp_line_t *l)
{
    const char *t = l->text;
    const char *arrow = strstr(t, "-> ");
    if (!strncmp(l->actor, "breaker", 7) && arrow) {
        if (!strncmp(arrow + 3, "open", 4))
            return "#ff7f0e";
        if (!strncmp(arrow + 3, "closed", 6))
            return "#2ca02c";
        return "#e6b800";
    }
    if (!strncmp(l->actor, "saga", 4))
        return strstr(t, "compensat") || strstr(t, "fail") ? "#d62728" : "#8c564b";
    if (strstr(t, "FAIL:") || strstr(t, "also:"))
        return "#d62728";
    if (strstr(t, "killed") || strstr(t, "kill the gateway") || strstr(t, "ended before"))
        return "#ff7f0e";
    if (strstr(t, "started ") || strstr(t, "ready in") || strstr(t, "stopped in") ||
        strstr(t, "the gateway"))
        return "#9467bd";
    if (arrow) {
        if (strstr(arrow, "no answer"))
            return "#d62728";
        char d = arrow[3];
        if (d == '2')
            return "#2ca02c";
        if (d == '4')
            return "#e6b800";
        if (d == '5')
            return "#d62728";
    }
    if (strstr(t, "deliveries:"))
        return "#17becf";
    return "#7f7f7f";
}

/* The i-th mark: the log lines first, then the events the parts recorded. */
static const rp_line_t *mark_at(const rp_case_t *c, size_t i)
{
    return i < c->nlines ? &c->lines[i] : &c->events[i - c->nlines];
}

static cm_err_t timeline(const rp_case_t *c, cm_buf_t *b)
{
    char lanes[RP_HTML_MAX_LANES][24];
    int64_t first[RP_HTML_MAX_LANES], last[RP_HTML_MAX_LANES];
    size_t nl = 0, total = c->nlines + c->nevents;
    int64_t end = 1;
    for (size_t i = 0; i < total; i++) {
        const rp_line_t *l = mark_at(c, i);
        size_t k = 0;
        while (k < nl && strcmp(lanes[k], l->actor) != 0)
            k++;
        if (k == nl) {
            if (nl < RP_HTML_MAX_LANES) {
                snprintf(lanes[nl], sizeof lanes[nl], "%s", l->actor);
                first[nl] = last[nl] = l->t_ms;
                nl++;
            } else {
                k = nl - 1; /* the rest share the last lane */
            }
        }
        if (k < nl && l->t_ms > last[k])
            last[k] = l->t_ms;
        if (k < nl && l->t_ms < first[k])
            first[k] = l->t_ms;
        if (l->t_ms > end)
            end = l->t_ms;
    }
    if (c->time_s * 1000.0 > (double)end)
        end = (int64_t)(c->time_s * 1000.0);
    double scale = (double)(W - LEFT - 10) / (double)end;
    int height = (int)nl * LANE + 30;
    cm_err_t rc = cm_buf_printf(b,
                                "<svg class=\"tl\" viewBox=\"0 0 %d %d\" width=\"100%%\" "
                                "role=\"img\" xmlns=\"http://www.w3.org/2000/svg\">\n",
                                W, height);
    /* the time axis: ten ticks */
    for (int t = 0; !rc && t <= 10; t++) {
        double ms = (double)end * t / 10.0;
        double x = LEFT + ms * scale;
        rc = cm_buf_printf(b,
                           "<line x1=\"%.1f\" y1=\"0\" x2=\"%.1f\" y2=\"%d\" class=\"grid\"/>"
                           "<text x=\"%.1f\" y=\"%d\" class=\"axis\">%.2fs</text>\n",
                           x, x, height - 16, x, height - 4, ms / 1000.0);
    }
    for (size_t k = 0; !rc && k < nl; k++) {
        int y = (int)k * LANE;
        rc = cm_buf_printf(b, "<text x=\"2\" y=\"%d\" class=\"lane\">", y + 13);
        if (!rc)
            rc = text(b, lanes[k]);
        if (!rc)
            rc = cm_buf_printf(b,
                               "</text><rect x=\"%.1f\" y=\"%d\" width=\"%.1f\" height=\"%d\" "
                               "class=\"span\"/>\n",
                               LEFT + (double)first[k] * scale, y + 3,
                               (double)(last[k] - first[k]) * scale + 2, LANE - 6);
    }
    /* At most RP_HTML_MAX_MARKS marks, shared between the log and the events. */
    size_t lines = c->nlines, events = c->nevents;
    if (lines + events > RP_HTML_MAX_MARKS) {
        events = events < RP_HTML_MAX_MARKS / 2 ? events : RP_HTML_MAX_MARKS / 2;
        lines = RP_HTML_MAX_MARKS - events < lines ? RP_HTML_MAX_MARKS - events : lines;
    }
    for (size_t i = 0; !rc && i < total; i++) {
        if ((i < c->nlines && i >= lines) || (i >= c->nlines && i - c->nlines >= events))
            continue;
        const rp_line_t *l = mark_at(c, i);
        size_t k = 0;
        while (k < nl && strcmp(lanes[k], l->actor) != 0)
            k++;
        if (k == nl)
            k = nl - 1;
        rc = cm_buf_printf(b,
                           "<rect x=\"%.1f\" y=\"%d\" width=\"3\" height=\"%d\" fill=\"%s\">"
                           "<title>+%.3f %s ",
                           LEFT + (double)l->t_ms * scale, (int)k * LANE + 2, LANE - 4,
                           mark_colour(l), (double)l->t_ms / 1000.0, l->actor);
        if (!rc)
            rc = text(b, l->text);
        if (!rc)
            rc = cm_buf_addstr(b, "</title></rect>\n");
    }
    if (!rc)
        rc = cm_buf_addstr(b, "</svg>\n");
    if (!rc && lines + events < total)
        rc =
            cm_buf_printf(b, "<p class=\"note\">%zu more log lines and events are not drawn.</p>\n",
                          total - lines - events);
    return rc;
}

static const char *style =
    "body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222}"
    "h1{font-size:1.4em}h2{font-size:1.1em;margin-top:2em}"
    "table{border-collapse:collapse}td,th{padding:2px 8px;border-bottom:1px solid #ddd;"
    "text-align:left;vertical-align:top}"
    ".pass{color:#1a7f37}.fail{color:#cf222e;font-weight:bold}.skip{color:#8c8c8c}"
    "pre{background:#f6f8fa;padding:8px;overflow-x:auto;font-size:12px;white-space:pre-wrap}"
    ".tl{max-width:1200px;border:1px solid #ddd;background:#fff}"
    ".grid{stroke:#eee}.axis{font-size:9px;fill:#666}.lane{font-size:11px;fill:#333}"
    ".span{fill:#e8eef7}.note,.meta{color:#666;font-size:12px}"
    ".legend span{display:inline-block;width:10px;height:10px;margin:0 4px 0 12px}";

static cm_err_t render_case(const rp_case_t *c, size_t id, cm_buf_t *b)
{
    cm_err_t rc = cm_buf_printf(b, "<h2 id=\"s%zu\"><span class=\"%s\">%s</span> ", id,
                                status_class(c->status), rp_status_name(c->status));
    if (!rc)
        rc = text(b, c->name);
    if (!rc)
        rc = cm_buf_printf(b,
                           "</h2>\n<p class=\"meta\">%.2f s wall, %.1f s simulated (speed x%d), "
                           "seed %lld, ",
                           c->time_s, c->sim_time_s, c->speed > 0 ? c->speed : 1, c->seed);
    if (!rc)
        rc = text(b, c->classname);
    if (!rc && c->kept_dir) {
        rc = cm_buf_addstr(b, ", kept ");
        if (!rc)
            rc = text(b, c->kept_dir);
    }
    if (!rc)
        rc = cm_buf_addstr(b, "</p>\n");
    if (!rc && c->status != RP_PASSED && (c->detail || c->message)) {
        rc = cm_buf_addstr(b, "<pre>");
        if (!rc)
            rc = text(b, c->detail ? c->detail : c->message);
        if (!rc)
            rc = cm_buf_addstr(b, "</pre>\n");
    }
    if (!rc && c->nlines + c->nevents)
        rc = timeline(c, b);
    if (!rc && c->nlines) {
        char *log = rp_case_log_text(c);
        rc = log ? cm_buf_printf(b, "<details%s><summary>log (%zu lines)</summary><pre>",
                                 c->status == RP_PASSED ? "" : " open", c->nlines)
                 : CM_ENOMEM;
        if (!rc)
            rc = text(b, log);
        if (!rc)
            rc = cm_buf_addstr(b, "</pre></details>\n");
        free(log);
    }
    return rc;
}

cm_err_t rp_html_render(const rp_report_t *r, cm_buf_t *b)
{
    rp_counts_t k = rp_report_counts(r);
    double sim = 0, sum = k.time_s;
    for (size_t i = 0; i < r->nsuites; i++)
        for (size_t j = 0; j < r->suites[i]->ncases; j++)
            sim += r->suites[i]->cases[j]->sim_time_s;
    char iso[25] = "";
    if (r->started_ms > 0)
        cm_clock_iso8601(r->started_ms, iso);
    size_t failed = k.failures + k.errors;
    cm_err_t rc =
        cm_buf_printf(b,
                      "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                      "<title>%s scenario report: %zu passed, %zu failed</title>"
                      "<style>%s</style></head><body>\n",
                      failed ? "FAILED" : "passed", k.tests - failed - k.skipped, failed, style);
    if (!rc)
        rc = cm_buf_printf(b,
                           "<h1>Scenario report: <span class=\"%s\">%zu passed, %zu failed"
                           "</span>%s</h1>\n<p class=\"meta\">started %s, %.2f s wall "
                           "(%.2f s of scenarios), %.1f s simulated; ",
                           failed ? "fail" : "pass", k.tests - failed - k.skipped, failed,
                           k.skipped ? ", some not run" : "", *iso ? iso : "?",
                           r->time_s > 0 ? r->time_s : sum, sum, sim);
    if (!rc && r->has_seed)
        rc = cm_buf_printf(b, "--seed %lld; ", r->seed);
    if (!rc && r->speed > 0)
        rc = cm_buf_printf(b, "--speed %d; ", r->speed);
    if (!rc)
        rc = cm_buf_printf(b, "-j %d, --repeat %d</p>\n", r->jobs > 0 ? r->jobs : 1,
                           r->repeat > 0 ? r->repeat : 1);
    if (!rc)
        rc = cm_buf_addstr(b, "<table><tr><th>result</th><th>scenario</th><th>file</th>"
                              "<th>wall s</th><th>sim s</th><th>seed</th><th>tags</th></tr>\n");
    size_t id = 0;
    for (size_t i = 0; !rc && i < r->nsuites; i++) {
        for (size_t j = 0; !rc && j < r->suites[i]->ncases; j++, id++) {
            const rp_case_t *c = r->suites[i]->cases[j];
            rc = cm_buf_printf(b, "<tr><td class=\"%s\">%s</td><td><a href=\"#s%zu\">",
                               status_class(c->status), rp_status_name(c->status), id);
            if (!rc)
                rc = text(b, c->name);
            if (!rc)
                rc = cm_buf_addstr(b, "</a></td><td>");
            if (!rc)
                rc = text(b, r->suites[i]->name);
            if (!rc)
                rc = cm_buf_printf(b, "</td><td>%.2f</td><td>%.1f</td><td>%lld</td><td>", c->time_s,
                                   c->sim_time_s, c->seed);
            for (size_t t = 0; !rc && t < c->ntags; t++) {
                rc = t ? cm_buf_addstr(b, ", ") : CM_OK;
                if (!rc)
                    rc = text(b, c->tags[t]);
            }
            if (!rc)
                rc = cm_buf_addstr(b, "</td></tr>\n");
        }
    }
    if (!rc)
        rc = cm_buf_addstr(
            b, "</table>\n<p class=\"legend meta\">timeline marks:"
               "<span style=\"background:#2ca02c\"></span>2xx"
               "<span style=\"background:#e6b800\"></span>4xx"
               "<span style=\"background:#d62728\"></span>5xx, no answer, failure"
               "<span style=\"background:#ff7f0e\"></span>kill"
               "<span style=\"background:#9467bd\"></span>start/stop"
               "<span style=\"background:#17becf\"></span>webhook deliveries"
               "<span style=\"background:#8c564b\"></span>saga step"
               "<span style=\"background:#7f7f7f\"></span>other; hover a mark for its line</p>\n");
    id = 0;
    for (size_t i = 0; !rc && i < r->nsuites; i++)
        for (size_t j = 0; !rc && j < r->suites[i]->ncases; j++)
            rc = render_case(r->suites[i]->cases[j], id++, b);
    return rc ? rc : cm_buf_addstr(b, "</body></html>\n");
}

cm_err_t rp_html_write(const rp_report_t *r, const char *path, char *err)
{
    cm_buf_t b;
    cm_buf_init(&b, RP_HTML_MAX);
    cm_err_t rc = rp_html_render(r, &b);
    if (rc)
        cm_errf(err, "cannot render the HTML report: %s", cm_strerror(rc));
    else
        rc = rp_write_file(path, b.data, b.len, err);
    cm_buf_free(&b);
    return rc;
}
