/* rp_health.c - the health report (health.json, health.html) over the result model. */
#include "rp_health.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rp_file.h"
#include "rp_xml.h"

#define RP_HEALTH_MAX (64u << 20)

const char *const rp_health_areas[] = {
    "webhook_security", "dedup",    "async_processing",   "retries_dlq",
    "breakers",         "timeouts", "availability_cache", "saga_compensation",
    "idempotency",      "privacy",  "monitoring",         NULL};

#define NAREAS (sizeof rp_health_areas / sizeof rp_health_areas[0] - 1)

/* What the audit says of an area, as a heading. */
static const char *const area_titles[NAREAS] = {"Webhook security",
                                                "Webhook deduplication",
                                                "Asynchronous processing",
                                                "Retries and dead letters",
                                                "Circuit breakers",
                                                "Timeouts",
                                                "Availability cache",
                                                "Saga and compensation",
                                                "Idempotency",
                                                "Privacy of callers' data",
                                                "Monitoring"};

/* What a failure in the area costs, as the audit puts it (shown with each finding). */
static const char *const area_impacts[NAREAS] = {
    "Security vulnerability: anyone can send fake webhooks that book, cancel or refund.",
    "Duplicate bookings and charges when a provider delivers a webhook twice.",
    "A slow provider delays acknowledgements past the sender's timeout: retries, duplicates.",
    "Lost calls when a provider is down for longer than a few fixed retries.",
    "A provider outage cascades: every call keeps hammering it and waits on it.",
    "A hanging provider holds the worker far too long; calls queue up behind it.",
    "Slots shown as free are taken: 'Time slot no longer available', failed bookings.",
    "Inconsistent state: bookings without payment, payments without booking.",
    "Retried calls book or charge twice; Cal.com answers in an older shape.",
    "Callers' personal data in the logs (GDPR exposure).",
    "Failures go unnoticed: no metrics, no alerts.",
};

int rp_health_area_index(const char *area)
{
    for (size_t i = 0; area && i < NAREAS; i++)
        if (!strcmp(area, rp_health_areas[i]))
            return (int)i;
    return -1;
}

int rp_health_has_areas(const rp_report_t *r)
{
    for (size_t i = 0; i < r->nsuites; i++)
        for (size_t j = 0; j < r->suites[i]->ncases; j++)
            if (rp_health_area_index(r->suites[i]->cases[j]->area) >= 0)
                return 1;
    return 0;
}

typedef struct {
    int passed[NAREAS], total[NAREAS];
    int judged; /* areas with total > 0 */
    int score;  /* overall */
} tally_t;

static int area_score(int passed, int total)
{
    return total > 0 ? passed * 100 / total : 0;
}

static const char *area_status(int passed, int total)
{
    return passed == total ? "ok" : passed == 0 ? "broken" : "degraded";
}

static tally_t tally(const rp_report_t *r)
{
    tally_t t;
    memset(&t, 0, sizeof t);
    for (size_t i = 0; i < r->nsuites; i++)
        for (size_t j = 0; j < r->suites[i]->ncases; j++) {
            const rp_case_t *c = r->suites[i]->cases[j];
            int a = rp_health_area_index(c->area);
            if (a < 0 || c->status == RP_SKIPPED)
                continue; /* not a contract scenario, or not judged */
            t.total[a]++;
            t.passed[a] += c->status == RP_PASSED;
        }
    int sum = 0;
    for (size_t a = 0; a < NAREAS; a++)
        if (t.total[a]) {
            t.judged++;
            sum += area_score(t.passed[a], t.total[a]);
        }
    t.score = t.judged ? sum / t.judged : 0;
    return t;
}

static int is_finding(const rp_case_t *c)
{
    return rp_health_area_index(c->area) >= 0 &&
           (c->status == RP_FAILED || c->status == RP_ERRORED);
}

/* Appends a copy of s (its first n bytes; SIZE_MAX: all) to the array; bytes that are not
 * valid UTF-8 (a log line may hold any) become '?'. 0 when out of memory. */
static int push(json_t *arr, const char *s, size_t n)
{
    if (n == SIZE_MAX)
        n = strlen(s);
    json_t *v = json_stringn(s, n);
    if (!v) {
        char *copy = malloc(n + 1);
        if (!copy)
            return 0;
        for (size_t i = 0; i < n; i++)
            copy[i] = (unsigned char)s[i] < 0x80 && s[i] ? s[i] : '?';
        copy[n] = '\0';
        v = json_stringn(copy, n);
        free(copy);
    }
    return v && json_array_append_new(arr, v) == 0;
}

/* The journal lines among the case's events: what the simulators recorded. */
static int is_journal(const rp_line_t *e)
{
    return !strncmp(e->actor, "sim", 3) || !strncmp(e->actor, "deliveries", 10);
}

/* The evidence of one finding: its message, the first lines of its diagnosis (the
 * message's own line left out) and the last journal lines. */
static json_t *evidence(const rp_case_t *c)
{
    json_t *ev = json_array();
    if (!ev)
        return NULL;
    int ok = push(ev, c->message ? c->message : c->type ? c->type : "failed", SIZE_MAX);
    const char *d = c->detail;
    for (int k = 0; ok && d && *d && k < RP_HEALTH_DETAIL_LINES;) {
        size_t n = strcspn(d, "\n");
        const char *s = d;
        size_t m = n;
        while (m && (*s == ' ' || *s == '\t'))
            s++, m--;
        if (m && !(c->message && strlen(c->message) == m && !strncmp(c->message, s, m))) {
            ok = push(ev, s, m);
            k++;
        }
        d += n + (d[n] == '\n');
    }
    size_t first = c->nevents, shown = 0;
    while (first > 0 && shown < RP_HEALTH_JOURNAL_LINES)
        if (is_journal(&c->events[--first]))
            shown++;
    for (size_t i = first; ok && i < c->nevents; i++) {
        const rp_line_t *e = &c->events[i];
        if (!is_journal(e))
            continue;
        char line[RP_MAX_LINE_LEN + 64];
        snprintf(line, sizeof line, "%s +%.3fs %s", e->actor, (double)e->t_ms / 1000.0,
                 e->text ? e->text : "");
        ok = push(ev, line, SIZE_MAX);
    }
    if (!ok)
        json_decref(ev);
    return ok ? ev : NULL;
}

/* The whole document as a jansson value (the HTML page renders from it too). */
static json_t *model(const rp_report_t *r, const char *gateway)
{
    tally_t t = tally(r);
    json_t *areas = json_array(), *findings = json_array();
    json_t *doc = areas && findings
                      ? json_pack("{s:s,s:I,s:i,s:o,s:o}", "gateway", gateway ? gateway : "unknown",
                                  "seed", (json_int_t)(r->has_seed ? r->seed : 0), "score", t.score,
                                  "areas", areas, "findings", findings)
                      : NULL;
    if (!doc) {
        json_decref(areas);
        json_decref(findings);
        return NULL;
    }
    for (size_t a = 0; a < NAREAS; a++) {
        if (!t.total[a])
            continue;
        json_t *o = json_pack("{s:s,s:i,s:i,s:i,s:s}", "area", rp_health_areas[a], "score",
                              area_score(t.passed[a], t.total[a]), "passed", t.passed[a], "total",
                              t.total[a], "status", area_status(t.passed[a], t.total[a]));
        if (!o || json_array_append_new(areas, o)) {
            json_decref(doc);
            return NULL;
        }
    }
    /* Findings grouped by area, in the areas' order, then in the run's order. */
    for (size_t a = 0; a < NAREAS; a++)
        for (size_t i = 0; i < r->nsuites; i++)
            for (size_t j = 0; j < r->suites[i]->ncases; j++) {
                const rp_case_t *c = r->suites[i]->cases[j];
                if (!is_finding(c) || rp_health_area_index(c->area) != (int)a)
                    continue;
                json_t *ev = evidence(c);
                json_t *f = ev ? json_pack("{s:s,s:s,s:s,s:o}", "area", c->area, "scenario",
                                           r->suites[i]->name, "finding",
                                           c->finding ? c->finding : c->name, "evidence", ev)
                               : NULL;
                if (!f || json_array_append_new(findings, f)) {
                    json_decref(doc);
                    return NULL;
                }
            }
    return doc;
}

cm_err_t rp_health_render_json(const rp_report_t *r, const char *gateway, cm_buf_t *out)
{
    json_t *doc = model(r, gateway);
    char *s = doc ? json_dumps(doc, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;
    json_decref(doc);
    if (!s)
        return CM_ENOMEM;
    cm_err_t rc = cm_buf_addstr(out, s);
    free(s);
    return rc ? rc : cm_buf_addstr(out, "\n");
}

static cm_err_t text(cm_buf_t *b, const char *s)
{
    return rp_xml_escape(b, s ? s : "", RP_XML_TEXT);
}

static const char *score_class(int score)
{
    return score >= 100 ? "ok" : score >= 60 ? "degraded" : "broken";
}

static cm_err_t html_areas(cm_buf_t *b, const json_t *doc)
{
    cm_err_t rc = cm_buf_addstr(b, "<h2>Areas</h2>\n<table><tr><th>area</th><th>status</th>"
                                   "<th>score</th><th>passed</th></tr>\n");
    for (size_t a = 0; !rc && a < NAREAS; a++) {
        const json_t *row = NULL, *x;
        size_t i;
        json_array_foreach(json_object_get(doc, "areas"), i,
                           x) if (!strcmp(json_string_value(json_object_get(x, "area")),
                                          rp_health_areas[a])) row = x;
        if (!row) {
            rc = cm_buf_printf(b,
                               "<tr><td>%s</td><td class=\"na\">not judged</td><td>-</td>"
                               "<td>no scenario ran%s</td></tr>\n",
                               area_titles[a],
                               a == NAREAS - 1 ? ": nothing outside the gateway can check it" : "");
            continue;
        }
        const char *st = json_string_value(json_object_get(row, "status"));
        rc = cm_buf_printf(
            b, "<tr><td>%s</td><td class=\"%s\">%s</td><td>%d/100</td><td>%d/%d</td></tr>\n",
            area_titles[a], st, st, (int)json_integer_value(json_object_get(row, "score")),
            (int)json_integer_value(json_object_get(row, "passed")),
            (int)json_integer_value(json_object_get(row, "total")));
    }
    return rc ? rc : cm_buf_addstr(b, "</table>\n");
}

static cm_err_t html_findings(cm_buf_t *b, const json_t *doc)
{
    const json_t *fs = json_object_get(doc, "findings"), *f;
    size_t i;
    cm_err_t rc = cm_buf_printf(b, "<h2>Findings (%zu)</h2>\n", json_array_size(fs));
    if (!rc && json_array_size(fs) == 0)
        rc = cm_buf_addstr(b, "<p>None: every judged scenario passed.</p>\n");
    json_array_foreach(fs, i, f)
    {
        const char *area = json_string_value(json_object_get(f, "area"));
        int a = rp_health_area_index(area);
        if (!rc)
            rc = cm_buf_addstr(b, "<div class=\"finding\"><h3>");
        if (!rc)
            rc = text(b, json_string_value(json_object_get(f, "finding")));
        if (!rc)
            rc = cm_buf_printf(b, "</h3><p>Area: <b>%s</b> &middot; scenario: <code>",
                               a >= 0 ? area_titles[a] : "?");
        if (!rc)
            rc = text(b, json_string_value(json_object_get(f, "scenario")));
        if (!rc)
            rc = cm_buf_printf(b, "</code></p><p>Impact: %s</p><pre>",
                               a >= 0 ? area_impacts[a] : "?");
        const json_t *ev = json_object_get(f, "evidence"), *e;
        size_t k;
        json_array_foreach(ev, k, e)
        {
            if (!rc)
                rc = text(b, json_string_value(e));
            if (!rc)
                rc = cm_buf_addstr(b, "\n");
        }
        if (!rc)
            rc = cm_buf_addstr(b, "</pre></div>\n");
    }
    return rc;
}

cm_err_t rp_health_render_html(const rp_report_t *r, const char *gateway, cm_buf_t *b)
{
    json_t *doc = model(r, gateway);
    if (!doc)
        return CM_ENOMEM;
    int score = (int)json_integer_value(json_object_get(doc, "score"));
    cm_err_t rc = cm_buf_addstr(
        b, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
           "<title>Integration health report</title><style>"
           "body{font:14px/1.4 sans-serif;margin:2em;max-width:70em}"
           "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.3em .6em;"
           "text-align:left}.ok{color:#1a7f37;font-weight:bold}"
           ".degraded{color:#9a6700;font-weight:bold}.broken{color:#cf222e;font-weight:bold}"
           ".na{color:#777}.score{font-size:2em}.finding{border-left:4px solid #cf222e;"
           "padding:0 1em;margin:1em 0}pre{background:#f6f8fa;padding:.5em;overflow-x:auto;"
           "white-space:pre-wrap}</style></head><body>\n<h1>Integration health report</h1>\n"
           "<p>Gateway under test: <code>");
    if (!rc)
        rc = text(b, json_string_value(json_object_get(doc, "gateway")));
    if (!rc)
        rc = cm_buf_printf(b,
                           "</code> &middot; seed: %lld%s</p>\n<p class=\"score\">Overall "
                           "health score: <span class=\"%s\">%d/100</span></p>\n<p>An area's "
                           "score is the share of its contract scenarios that passed; the "
                           "overall score is the mean over the areas judged. Each scenario "
                           "checks only what is visible from outside the gateway: its answers "
                           "to webhooks and what it did at the providers.</p>\n",
                           (long long)json_integer_value(json_object_get(doc, "seed")),
                           r->has_seed ? "" : " (each scenario's own)", score_class(score), score);
    if (!rc)
        rc = html_areas(b, doc);
    if (!rc)
        rc = html_findings(b, doc);
    if (!rc)
        rc = cm_buf_addstr(b, "</body></html>\n");
    json_decref(doc);
    return rc;
}

static cm_err_t write_one(const rp_report_t *r, const char *gateway, const char *dir,
                          const char *name, int html, char *err)
{
    char path[4096];
    if (snprintf(path, sizeof path, "%s/%s", dir, name) >= (int)sizeof path) {
        cm_errf(err, "report directory path too long: %s", dir);
        return CM_EINVAL;
    }
    cm_buf_t b;
    cm_buf_init(&b, RP_HEALTH_MAX);
    cm_err_t rc =
        html ? rp_health_render_html(r, gateway, &b) : rp_health_render_json(r, gateway, &b);
    if (rc)
        cm_errf(err, "cannot render %s: %s", name, cm_strerror(rc));
    else
        rc = rp_write_file(path, b.data, b.len, err);
    cm_buf_free(&b);
    return rc;
}

cm_err_t rp_health_write(const rp_report_t *r, const char *gateway, const char *dir, char *err)
{
    cm_err_t rc = write_one(r, gateway, dir, "health.json", 0, err);
    return rc ? rc : write_one(r, gateway, dir, "health.html", 1, err);
}
