/* rp_html.c - the self-contained HTML report with SVG timelines. */
#include "rp_html.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cm_clock.h"
#include "rp_file.h"
#include "rp_timeline.h"
#include "rp_xml.h"

#define RP_HTML_MAX (512u << 20)
#define W 1000   /* timeline width (user units) */
#define LEFT 230 /* room for lane names */
#define LANE 18
#define TOP 14 /* room for iteration labels */
#define BIN 4  /* width of a density bar */
/* Lane names past this many characters are cut (the whole name is the tooltip). */
#define LABEL_CHARS 36

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

/* What a mark says happened, in rising severity: a density bar takes its worst mark's
 * colour, so one failure among a thousand answers still shows. */
typedef enum { K_OTHER, K_OK, K_DELIVERY, K_SAGA, K_START, K_4XX, K_KILL, K_FAIL, K__COUNT } kind_t;

static const struct {
    const char *colour, *name;
} kinds[K__COUNT] = {
    [K_OTHER] = {"#7f7f7f", "other"},
    [K_OK] = {"#2ca02c", "2xx, breaker closed"},
    [K_DELIVERY] = {"#17becf", "webhook deliveries"},
    [K_SAGA] = {"#8c564b", "saga step"},
    [K_START] = {"#9467bd", "start/stop"},
    [K_4XX] = {"#e6b800", "4xx, breaker half-open"},
    [K_KILL] = {"#ff7f0e", "kill, breaker open"},
    [K_FAIL] = {"#d62728", "5xx, no answer, failure"},
};

static kind_t mark_kind(const rp_line_t *l)
{
    const char *t = l->text;
    const char *arrow = strstr(t, "-> ");
    if (!strncmp(l->actor, "breaker", 7) && arrow) {
        if (!strncmp(arrow + 3, "open", 4))
            return K_KILL;
        if (!strncmp(arrow + 3, "closed", 6))
            return K_OK;
        return K_4XX;
    }
    if (!strncmp(l->actor, "saga", 4))
        return strstr(t, "compensat") || strstr(t, "fail") ? K_FAIL : K_SAGA;
    if (strstr(t, "FAIL:") || strstr(t, "also:"))
        return K_FAIL;
    if (strstr(t, "killed") || strstr(t, "kill the gateway") || strstr(t, "ended before"))
        return K_KILL;
    if (strstr(t, "started ") || strstr(t, "ready in") || strstr(t, "stopped in") ||
        strstr(t, "the gateway"))
        return K_START;
    if (arrow) {
        if (strstr(arrow, "no answer"))
            return K_FAIL;
        char d = arrow[3];
        if (d == '2')
            return K_OK;
        if (d == '4')
            return K_4XX;
        if (d == '5')
            return K_FAIL;
    }
    if (strstr(t, "deliveries:"))
        return K_DELIVERY;
    return K_OTHER;
}

/* s cut to max characters (UTF-8), with an ellipsis when cut, into out (cap bytes). */
static const char *cut(const char *s, size_t max, char *out, size_t cap)
{
    size_t n = 0, chars = 0;
    while (s[n] && n + 4 < cap) {
        if (((unsigned char)s[n] & 0xC0) != 0x80 && chars++ == max)
            break;
        n++;
    }
    if (s[n])
        while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
            n--; /* not in the middle of a character */
    snprintf(out, cap, "%.*s%s", (int)n, s, s[n] ? "\xe2\x80\xa6" : "");
    return out;
}

/* Where a time goes; before the case began (a part's clock may be off) is its start. */
static double xpos(int64_t ms, double scale)
{
    return LEFT + (double)(ms > 0 ? ms : 0) * scale;
}

/* The time axis (ten ticks) and the lines where the iterations of repeats began, thinned
 * so that neighbours stay 3 units apart, labelled where there is room. */
static cm_err_t axis(const rp_case_t *c, int64_t end, double scale, int top, int height,
                     cm_buf_t *b)
{
    cm_err_t rc = CM_OK;
    for (int t = 0; !rc && t <= 10; t++) {
        double ms = (double)end * t / 10.0, x = LEFT + ms * scale;
        rc = cm_buf_printf(b,
                           "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" class=\"grid\"/>"
                           "<text x=\"%.1f\" y=\"%d\" class=\"axis\"%s>%.2fs</text>\n",
                           x, top, x, height - 16, x, height - 4,
                           t == 10 ? " text-anchor=\"end\"" : "", ms / 1000.0);
    }
    double last = -1e9, last_label = -1e9;
    for (size_t i = 0; !rc && i < c->niterations; i++) {
        const rp_iteration_t *it = &c->iterations[i];
        double x = xpos(it->t_ms, scale);
        if (x - last < 3 && *it->label)
            continue;
        last = x;
        rc = cm_buf_printf(b,
                           "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" class=\"iter\">"
                           "<title>%s%s +%.3f s</title></line>\n",
                           x, top - 4, x, height - 16, *it->label ? "iteration " : "repeat ended",
                           it->label, (double)it->t_ms / 1000.0);
        if (!rc && *it->label && x - last_label >= 40) {
            last_label = x;
            rc = cm_buf_printf(b, "<text x=\"%.1f\" y=\"%d\" class=\"it\">", x + 1, top - 5);
            if (!rc)
                rc = text(b, it->label);
            if (!rc)
                rc = cm_buf_addstr(b, "</text>\n");
        }
    }
    return rc;
}

/* A lane's band (red when the failure happened there), name and span. */
static cm_err_t lane_row(const rp_tl_lane_t *l, int y, int dense, double scale, cm_buf_t *b)
{
    char shown[LABEL_CHARS * 4 + 8];
    cm_err_t rc = CM_OK;
    if (l->failed)
        rc = cm_buf_printf(
            b, "<rect x=\"0\" y=\"%d\" width=\"%d\" height=\"%d\" class=\"badlane\"/>", y, W, LANE);
    if (!rc)
        rc = cm_buf_printf(b, "<text x=\"%d\" y=\"%d\" class=\"lane%s\">", 2 + 10 * l->depth,
                           y + 13, l->failed ? " bad" : "");
    if (!rc)
        rc = text(b, cut(l->label, LABEL_CHARS - 2 * (size_t)l->depth, shown, sizeof shown));
    if (!rc)
        rc = cm_buf_addstr(b, "<title>");
    if (!rc)
        rc = text(b, l->label);
    if (!rc)
        rc = cm_buf_printf(b, ": %zu mark%s%s%s</title></text>", l->nmarks,
                           l->nmarks == 1 ? "" : "s", dense ? ", drawn as density" : "",
                           l->failed ? "; the failure happened here" : "");
    if (!rc && l->nmarks)
        rc = cm_buf_printf(
            b, "<rect x=\"%.1f\" y=\"%d\" width=\"%.1f\" height=\"%d\" class=\"span\"/>",
            xpos(l->first, scale), y + 3, (double)(l->last - l->first) * scale + 2, LANE - 6);
    return rc ? rc : cm_buf_addstr(b, "\n");
}

/* The bars of a dense lane: counts[bin * K__COUNT + kind]. */
static cm_err_t density(const unsigned *counts, size_t nbins, int y, double scale, cm_buf_t *b)
{
    unsigned max = 1;
    for (size_t i = 0; i < nbins; i++) {
        unsigned n = 0;
        for (int k = 0; k < K__COUNT; k++)
            n += counts[i * K__COUNT + k];
        max = n > max ? n : max;
    }
    cm_err_t rc = CM_OK;
    for (size_t i = 0; !rc && i < nbins; i++) {
        const unsigned *n = &counts[i * K__COUNT];
        unsigned total = 0;
        int worst = K_OTHER;
        for (int k = 0; k < K__COUNT; k++) {
            total += n[k];
            worst = n[k] ? k : worst;
        }
        if (!total)
            continue;
        double h = 3.0 + (LANE - 7) * (double)total / max;
        rc = cm_buf_printf(b,
                           "<rect x=\"%d\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"%s\">"
                           "<title>+%.2f..%.2f s: %u mark%s",
                           LEFT + (int)i * BIN, y + LANE - 2 - h, BIN - 0.6, h, kinds[worst].colour,
                           (double)i * BIN / scale / 1000.0, (double)(i + 1) * BIN / scale / 1000.0,
                           total, total == 1 ? "" : "s");
        for (int k = K__COUNT - 1; !rc && k >= 0; k--)
            if (n[k])
                rc = cm_buf_printf(b, "; %u %s", n[k], kinds[k].name);
        if (!rc)
            rc = cm_buf_addstr(b, "</title></rect>\n");
    }
    return rc;
}

/* The marks: one per line in lanes of at most RP_HTML_LANE_MARKS, density bars in the
 * others. *ndense says how many lanes were dense. */
static cm_err_t marks(const rp_case_t *c, const rp_timeline_t *t, int top, double scale,
                      size_t *ndense, cm_buf_t *b)
{
    size_t nbins = (W - LEFT - 10) / BIN + 1, dense = 0;
    size_t *slot = malloc((t->nlanes ? t->nlanes : 1) * sizeof *slot);
    if (!slot)
        return CM_ENOMEM;
    for (size_t k = 0; k < t->nlanes; k++)
        slot[k] = t->lanes[k].nmarks > RP_HTML_LANE_MARKS ? dense++ : (size_t)-1;
    unsigned *counts = calloc((dense ? dense : 1) * nbins * K__COUNT, sizeof *counts);
    cm_err_t rc = counts ? CM_OK : CM_ENOMEM;
    for (size_t i = 0; !rc && i < t->nmarks; i++) {
        const rp_line_t *l = rp_tl_mark(c, i);
        size_t k = t->lane_of[i];
        kind_t kind = mark_kind(l);
        if (slot[k] != (size_t)-1) {
            size_t bin = (size_t)(xpos(l->t_ms, scale) - LEFT) / BIN;
            counts[(slot[k] * nbins + (bin < nbins ? bin : nbins - 1)) * K__COUNT + kind]++;
            continue;
        }
        rc = cm_buf_printf(b,
                           "<rect x=\"%.1f\" y=\"%d\" width=\"3\" height=\"%d\" fill=\"%s\"%s>"
                           "<title>+%.3f %s ",
                           xpos(l->t_ms, scale), top + (int)k * LANE + 2, LANE - 4,
                           kinds[kind].colour, t->lanes[k].failed ? " class=\"bad\"" : "",
                           (double)l->t_ms / 1000.0, l->actor);
        if (!rc)
            rc = text(b, l->text);
        if (!rc)
            rc = cm_buf_addstr(b, "</title></rect>\n");
    }
    for (size_t k = 0; !rc && k < t->nlanes; k++)
        if (slot[k] != (size_t)-1)
            rc = density(&counts[slot[k] * nbins * K__COUNT], nbins, top + (int)k * LANE, scale, b);
    *ndense = dense;
    free(counts);
    free(slot);
    return rc;
}

static cm_err_t timeline(const rp_case_t *c, cm_buf_t *b)
{
    rp_timeline_t t;
    cm_err_t rc = rp_timeline_build(c, &t);
    if (rc)
        return rc;
    double scale = (double)(W - LEFT - 10) / (double)t.end_ms;
    int top = c->niterations ? TOP : 0;
    int height = top + (int)t.nlanes * LANE + 30;
    size_t ndense = 0;
    rc = cm_buf_printf(b,
                       "<svg class=\"tl\" viewBox=\"0 0 %d %d\" width=\"100%%\" "
                       "role=\"img\" xmlns=\"http://www.w3.org/2000/svg\">\n",
                       W, height);
    for (size_t k = 0; !rc && k < t.nlanes; k++)
        rc = lane_row(&t.lanes[k], top + (int)k * LANE, t.lanes[k].nmarks > RP_HTML_LANE_MARKS,
                      scale, b);
    if (!rc)
        rc = axis(c, t.end_ms, scale, top, height, b);
    if (!rc)
        rc = marks(c, &t, top, scale, &ndense, b);
    if (!rc)
        rc = cm_buf_addstr(b, "</svg>\n");
    if (!rc && ndense)
        rc = cm_buf_printf(b,
                           "<p class=\"note\">Lanes with more than %d marks show their density: "
                           "a bar per %.2f s, as tall as its count and coloured by its worst "
                           "mark (hover for the counts).</p>\n",
                           RP_HTML_LANE_MARKS, BIN / scale / 1000.0);
    if (!rc && t.grouped)
        rc = cm_buf_printf(b,
                           "<p class=\"note\">%zu steps logged, too many for a lane each: a lane "
                           "per kind of step, the failing step on its own.</p>\n",
                           t.nsteps);
    if (!rc && (c->dropped_lines || c->dropped_events))
        rc = cm_buf_printf(b,
                           "<p class=\"note\">%zu log lines and %zu events past the case's "
                           "limit were not kept.</p>\n",
                           c->dropped_lines, c->dropped_events);
    rp_timeline_free(&t);
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
    ".headline{font:bold 13px/1.4 ui-monospace,monospace;color:#cf222e;margin:.5em 0}"
    ".badlane{fill:#fde8e8}.lane.bad{fill:#cf222e;font-weight:bold}"
    ".tl rect.bad{stroke:#cf222e;stroke-width:1}"
    ".iter{stroke:#c8d1dc;stroke-dasharray:2 2}.it{font-size:8px;fill:#8c959f}"
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
    /* What failed, in one line, before anything else about the case. */
    if (!rc && c->status != RP_PASSED && c->message) {
        rc = cm_buf_addstr(b, "<p class=\"headline\">");
        if (!rc)
            rc = text(b, c->message);
        if (!rc)
            rc = cm_buf_addstr(b, "</p>\n");
    }
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
        rc = cm_buf_addstr(b, "</table>\n<p class=\"legend meta\">timeline marks:");
    for (int kind = K__COUNT - 1; !rc && kind >= 0; kind--)
        rc = cm_buf_printf(b, "<span style=\"background:%s\"></span>%s", kinds[kind].colour,
                           kinds[kind].name);
    if (!rc)
        rc = cm_buf_addstr(b, "; hover a mark for its line</p>\n");
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
