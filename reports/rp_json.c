/* rp_json.c - the JSON report from the result model. */
#include "rp_json.h"

#include <stdio.h>

#include "cm_clock.h"
#include "rp_file.h"

#define RP_JSON_MAX (512u << 20)

/* Length of the valid UTF-8 sequence at p (1-4), or 0 when it is not one. */
static size_t utf8_len(const unsigned char *p)
{
    if (p[0] < 0x80)
        return 1;
    size_t n = p[0] >= 0xF0 ? 4 : p[0] >= 0xE0 ? 3 : p[0] >= 0xC2 ? 2 : 0;
    if (n == 0 || p[0] > 0xF4)
        return 0;
    for (size_t i = 1; i < n; i++)
        if ((p[i] & 0xC0) != 0x80)
            return 0;
    if (n == 3 && ((p[0] == 0xE0 && p[1] < 0xA0) || (p[0] == 0xED && p[1] >= 0xA0)))
        return 0; /* overlong, or a surrogate */
    if (n == 4 && ((p[0] == 0xF0 && p[1] < 0x90) || (p[0] == 0xF4 && p[1] >= 0x90)))
        return 0;
    return n;
}

cm_err_t rp_json_str(cm_buf_t *b, const char *s)
{
    cm_err_t rc = cm_buf_add(b, "\"", 1);
    const unsigned char *p = (const unsigned char *)(s ? s : "");
    while (!rc && *p) {
        char esc[8];
        size_t n = utf8_len(p);
        if (n == 0) {
            rc = cm_buf_addstr(b, "\\ufffd");
            p++;
        } else if (n > 1) {
            rc = cm_buf_add(b, p, n);
            p += n;
        } else {
            switch (*p) {
            case '"':
                rc = cm_buf_addstr(b, "\\\"");
                break;
            case '\\':
                rc = cm_buf_addstr(b, "\\\\");
                break;
            case '\n':
                rc = cm_buf_addstr(b, "\\n");
                break;
            case '\r':
                rc = cm_buf_addstr(b, "\\r");
                break;
            case '\t':
                rc = cm_buf_addstr(b, "\\t");
                break;
            case '<': /* so that the HTML report can embed it in a <script> */
                rc = cm_buf_addstr(b, "\\u003c");
                break;
            default:
                if (*p < 0x20) {
                    snprintf(esc, sizeof esc, "\\u%04x", *p);
                    rc = cm_buf_add(b, esc, 6);
                } else {
                    rc = cm_buf_add(b, p, 1);
                }
            }
            p++;
        }
    }
    return rc ? rc : cm_buf_add(b, "\"", 1);
}

static cm_err_t key_str(cm_buf_t *b, const char *key, const char *v, int comma)
{
    cm_err_t rc = cm_buf_printf(b, "%s\"%s\":", comma ? "," : "", key);
    if (!rc)
        rc = v ? rp_json_str(b, v) : cm_buf_addstr(b, "null");
    return rc;
}

static cm_err_t iso_or_null(cm_buf_t *b, const char *key, int64_t ms)
{
    char iso[25];
    if (ms <= 0)
        return cm_buf_printf(b, ",\"%s\":null", key);
    return cm_buf_printf(b, ",\"%s\":\"%s\"", key, cm_clock_iso8601(ms, iso));
}

static cm_err_t counts(cm_buf_t *b, rp_counts_t k, double sim)
{
    return cm_buf_printf(b,
                         "{\"tests\":%zu,\"passed\":%zu,\"failures\":%zu,\"errors\":%zu,"
                         "\"skipped\":%zu,\"time_s\":%.3f,\"sim_time_s\":%.3f}",
                         k.tests, k.tests - k.failures - k.errors - k.skipped, k.failures, k.errors,
                         k.skipped, k.time_s, sim);
}

static double suite_sim(const rp_suite_t *s)
{
    double t = 0;
    for (size_t i = 0; i < s->ncases; i++)
        t += s->cases[i]->sim_time_s;
    return t;
}

static cm_err_t render_case(const rp_case_t *c, cm_buf_t *b)
{
    cm_err_t rc = cm_buf_addstr(b, "{");
    if (!rc)
        rc = key_str(b, "name", c->name, 0);
    if (!rc)
        rc = key_str(b, "classname", c->classname, 1);
    if (!rc)
        rc = key_str(b, "status", rp_status_name(c->status), 1);
    if (!rc)
        rc = cm_buf_printf(b, ",\"time_s\":%.3f,\"sim_time_s\":%.3f", c->time_s, c->sim_time_s);
    if (!rc)
        rc = iso_or_null(b, "started_at", c->started_ms);
    if (!rc)
        rc = cm_buf_printf(b, ",\"seed\":%lld,\"speed\":%d,\"tags\":[", c->seed,
                           c->speed > 0 ? c->speed : 1);
    for (size_t i = 0; !rc && i < c->ntags; i++) {
        if (i)
            rc = cm_buf_addstr(b, ",");
        if (!rc)
            rc = rp_json_str(b, c->tags[i]);
    }
    if (!rc)
        rc = cm_buf_addstr(b, "]");
    if (!rc)
        rc = key_str(b, "type", c->type, 1);
    if (!rc)
        rc = key_str(b, "message", c->message, 1);
    if (!rc)
        rc = key_str(b, "detail", c->detail, 1);
    if (!rc)
        rc = key_str(b, "kept_dir", c->kept_dir, 1);
    if (!rc)
        rc = cm_buf_addstr(b, ",\"log\":[");
    for (size_t i = 0; !rc && i < c->nlines; i++) {
        const rp_line_t *l = &c->lines[i];
        rc = cm_buf_printf(b, "%s{\"t_ms\":%lld", i ? "," : "", (long long)l->t_ms);
        if (!rc)
            rc = key_str(b, "actor", l->actor, 1);
        if (!rc)
            rc = key_str(b, "text", l->text, 1);
        if (!rc)
            rc = cm_buf_addstr(b, "}");
    }
    if (!rc)
        rc = cm_buf_printf(b, "],\"dropped_lines\":%zu,\"events\":[", c->dropped_lines);
    for (size_t i = 0; !rc && i < c->nevents; i++) {
        const rp_line_t *l = &c->events[i];
        rc = cm_buf_printf(b, "%s{\"t_ms\":%lld", i ? "," : "", (long long)l->t_ms);
        if (!rc)
            rc = key_str(b, "source", l->actor, 1);
        if (!rc)
            rc = key_str(b, "text", l->text, 1);
        if (!rc)
            rc = cm_buf_addstr(b, "}");
    }
    if (!rc)
        rc = cm_buf_printf(b, "],\"dropped_events\":%zu,\"assertions\":[", c->dropped_events);
    for (size_t i = 0; !rc && i < c->nasserts; i++) {
        rc = cm_buf_addstr(b, i ? ",{" : "{");
        if (!rc)
            rc = key_str(b, "name", c->asserts[i].name, 0);
        if (!rc)
            rc = key_str(b, "status", rp_status_name(c->asserts[i].status), 1);
        if (!rc)
            rc = cm_buf_printf(b, ",\"time_s\":%.3f}", c->asserts[i].time_s);
    }
    if (!rc)
        rc = cm_buf_addstr(b, "],\"lanes\":[");
    for (size_t i = 0; !rc && i < c->nlanes; i++) {
        const rp_lane_t *l = &c->lanes[i];
        rc = cm_buf_addstr(b, i ? ",{" : "{");
        if (!rc)
            rc = key_str(b, "actor", l->actor, 0);
        if (!rc)
            rc = key_str(b, "label", l->label, 1);
        if (!rc)
            rc = key_str(b, "group", l->group, 1);
        if (!rc)
            rc = key_str(b, "joins", l->joins[0] ? l->joins : NULL, 1);
        if (!rc)
            rc = cm_buf_printf(b, ",\"depth\":%d,\"failed\":%s}", l->depth,
                               l->failed ? "true" : "false");
    }
    if (!rc)
        rc = cm_buf_addstr(b, "],\"iterations\":[");
    for (size_t i = 0; !rc && i < c->niterations; i++) {
        rc = cm_buf_printf(b, "%s{\"t_ms\":%lld", i ? "," : "", (long long)c->iterations[i].t_ms);
        if (!rc)
            rc = key_str(b, "label", c->iterations[i].label, 1);
        if (!rc)
            rc = cm_buf_addstr(b, "}");
    }
    if (!rc)
        rc = cm_buf_printf(b, "],\"dropped_iterations\":%zu}", c->dropped_iterations);
    return rc;
}

cm_err_t rp_json_render(const rp_report_t *r, cm_buf_t *b)
{
    rp_counts_t k = rp_report_counts(r);
    double sim = 0;
    for (size_t i = 0; i < r->nsuites; i++)
        sim += suite_sim(r->suites[i]);
    if (r->time_s > 0)
        k.time_s = r->time_s;
    cm_err_t rc = cm_buf_addstr(b, "{\"format\":\"bookbench-scenario-report/1\"");
    if (!rc)
        rc = key_str(b, "name", r->name, 1);
    if (!rc)
        rc = iso_or_null(b, "started_at", r->started_ms);
    if (!rc)
        rc = cm_buf_printf(b, ",\"time_s\":%.3f,\"options\":{\"seed\":", r->time_s);
    if (!rc)
        rc = r->has_seed ? cm_buf_printf(b, "%lld", r->seed) : cm_buf_addstr(b, "null");
    if (!rc)
        rc = cm_buf_printf(b, ",\"jobs\":%d,\"repeat\":%d,\"speed\":", r->jobs > 0 ? r->jobs : 1,
                           r->repeat > 0 ? r->repeat : 1);
    if (!rc)
        rc = r->speed > 0 ? cm_buf_printf(b, "%d", r->speed) : cm_buf_addstr(b, "null");
    if (!rc)
        rc = cm_buf_addstr(b, "},\"counts\":");
    if (!rc)
        rc = counts(b, k, sim);
    if (!rc)
        rc = cm_buf_addstr(b, ",\"suites\":[");
    for (size_t i = 0; !rc && i < r->nsuites; i++) {
        const rp_suite_t *s = r->suites[i];
        rc = cm_buf_addstr(b, i ? ",{" : "{");
        if (!rc)
            rc = key_str(b, "file", s->name, 0);
        if (!rc)
            rc = cm_buf_addstr(b, ",\"counts\":");
        if (!rc)
            rc = counts(b, rp_suite_counts(s), suite_sim(s));
        if (!rc)
            rc = cm_buf_addstr(b, ",\"cases\":[");
        for (size_t j = 0; !rc && j < s->ncases; j++) {
            if (j)
                rc = cm_buf_addstr(b, ",");
            if (!rc)
                rc = render_case(s->cases[j], b);
        }
        if (!rc)
            rc = cm_buf_addstr(b, "]}");
    }
    return rc ? rc : cm_buf_addstr(b, "]}\n");
}

cm_err_t rp_json_write(const rp_report_t *r, const char *path, char *err)
{
    cm_buf_t b;
    cm_buf_init(&b, RP_JSON_MAX);
    cm_err_t rc = rp_json_render(r, &b);
    if (rc)
        cm_errf(err, "cannot render the JSON report: %s", cm_strerror(rc));
    else
        rc = rp_write_file(path, b.data, b.len, err);
    cm_buf_free(&b);
    return rc;
}
