/* rp_result.c - the result model: suites, cases, timed log lines. */
#include "rp_result.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cm_buf.h"

/* Grows *arr (of elem-sized items) so that one more fits. */
static cm_err_t grow(void **arr, size_t *cap, size_t n, size_t elem)
{
    if (n < *cap)
        return CM_OK;
    size_t ncap = *cap ? *cap * 2 : 8;
    void *p = realloc(*arr, ncap * elem);
    if (!p)
        return CM_ENOMEM;
    *arr = p;
    *cap = ncap;
    return CM_OK;
}

static void case_free(rp_case_t *c)
{
    if (!c)
        return;
    free(c->name);
    free(c->classname);
    free(c->type);
    free(c->message);
    free(c->detail);
    free(c->kept_dir);
    free(c->area);
    free(c->finding);
    for (size_t i = 0; i < c->ntags; i++)
        free(c->tags[i]);
    free(c->tags);
    for (size_t i = 0; i < c->nlines; i++)
        free(c->lines[i].text);
    free(c->lines);
    for (size_t i = 0; i < c->nevents; i++)
        free(c->events[i].text);
    free(c->events);
    for (size_t i = 0; i < c->nasserts; i++)
        free(c->asserts[i].name);
    free(c->asserts);
    for (size_t i = 0; i < c->nlanes; i++)
        free(c->lanes[i].label);
    free(c->lanes);
    free(c->iterations);
    free(c);
}

static void suite_free(rp_suite_t *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->ncases; i++)
        case_free(s->cases[i]);
    free(s->cases);
    free(s->name);
    free(s);
}

rp_report_t *rp_report_new(const char *name)
{
    rp_report_t *r = calloc(1, sizeof *r);
    if (r && !(r->name = strdup(name ? name : ""))) {
        free(r);
        r = NULL;
    }
    return r;
}

void rp_report_free(rp_report_t **rp)
{
    if (!rp || !*rp)
        return;
    rp_report_t *r = *rp;
    for (size_t i = 0; i < r->nsuites; i++)
        suite_free(r->suites[i]);
    free(r->suites);
    free(r->name);
    free(r);
    *rp = NULL;
}

rp_suite_t *rp_report_add_suite(rp_report_t *r, const char *name)
{
    rp_suite_t *s = calloc(1, sizeof *s);
    if (!s || !(s->name = strdup(name ? name : "")) ||
        grow((void **)&r->suites, &r->_cap, r->nsuites, sizeof *r->suites)) {
        suite_free(s);
        return NULL;
    }
    r->suites[r->nsuites++] = s;
    return s;
}

rp_case_t *rp_suite_add_case(rp_suite_t *s, const char *name, const char *classname)
{
    rp_case_t *c = calloc(1, sizeof *c);
    if (!c || !(c->name = strdup(name ? name : "")) ||
        !(c->classname = strdup(classname ? classname : "")) ||
        grow((void **)&s->cases, &s->_cap, s->ncases, sizeof *s->cases)) {
        case_free(c);
        return NULL;
    }
    c->status = RP_PASSED;
    s->cases[s->ncases++] = c;
    return c;
}

/* strdup that keeps NULL as NULL; *ok is cleared when a copy fails. */
static char *dup_or_null(const char *s, size_t maxlen, int *ok)
{
    if (!s)
        return NULL;
    char *p = strndup(s, maxlen);
    if (!p)
        *ok = 0;
    return p;
}

cm_err_t rp_case_set_outcome(rp_case_t *c, rp_status_t st, const char *type, const char *message,
                             const char *detail)
{
    int ok = 1;
    if (!message)
        message = detail; /* its first line */
    char *t = dup_or_null(type, 128, &ok);
    char *m = dup_or_null(message, message ? strcspn(message, "\n") : 0, &ok);
    char *d = dup_or_null(detail, (size_t)-1, &ok);
    if (!ok) {
        free(t);
        free(m);
        free(d);
        return CM_ENOMEM;
    }
    free(c->type);
    free(c->message);
    free(c->detail);
    c->type = t;
    c->message = m;
    c->detail = d;
    c->status = st;
    return CM_OK;
}

cm_err_t rp_case_set_tags(rp_case_t *c, const char *const *tags, size_t n)
{
    char **t = calloc(n ? n : 1, sizeof *t);
    if (!t)
        return CM_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        if (!(t[i] = strdup(tags[i] ? tags[i] : ""))) {
            for (size_t j = 0; j < i; j++)
                free(t[j]);
            free(t);
            return CM_ENOMEM;
        }
    }
    for (size_t i = 0; i < c->ntags; i++)
        free(c->tags[i]);
    free(c->tags);
    c->tags = t;
    c->ntags = n;
    return CM_OK;
}

cm_err_t rp_case_set_kept(rp_case_t *c, const char *dir)
{
    char *d = NULL;
    if (dir && *dir && !(d = strdup(dir)))
        return CM_ENOMEM;
    free(c->kept_dir);
    c->kept_dir = d;
    return CM_OK;
}

cm_err_t rp_case_set_area(rp_case_t *c, const char *area, const char *finding)
{
    char *a = NULL, *f = NULL;
    if ((area && !(a = strdup(area))) || (finding && !(f = strdup(finding)))) {
        free(a);
        return CM_ENOMEM;
    }
    free(c->area);
    free(c->finding);
    c->area = a;
    c->finding = f;
    return CM_OK;
}

cm_err_t rp_case_add_line(rp_case_t *c, int64_t t_ms, const char *actor, const char *text)
{
    if (c->nlines >= RP_MAX_LINES) {
        c->dropped_lines++;
        return CM_OK;
    }
    if (grow((void **)&c->lines, &c->_cap, c->nlines, sizeof *c->lines))
        return CM_ENOMEM;
    rp_line_t *l = &c->lines[c->nlines];
    l->t_ms = t_ms;
    snprintf(l->actor, sizeof l->actor, "%s", actor ? actor : "");
    if (!(l->text = strndup(text ? text : "", RP_MAX_LINE_LEN)))
        return CM_ENOMEM;
    c->nlines++;
    return CM_OK;
}

cm_err_t rp_case_add_event(rp_case_t *c, int64_t t_ms, const char *actor, const char *text)
{
    if (c->nevents >= RP_MAX_LINES) {
        c->dropped_events++;
        return CM_OK;
    }
    if (grow((void **)&c->events, &c->_ecap, c->nevents, sizeof *c->events))
        return CM_ENOMEM;
    rp_line_t *l = &c->events[c->nevents];
    l->t_ms = t_ms;
    snprintf(l->actor, sizeof l->actor, "%s", actor ? actor : "");
    if (!(l->text = strndup(text ? text : "", RP_MAX_LINE_LEN)))
        return CM_ENOMEM;
    c->nevents++;
    return CM_OK;
}

cm_err_t rp_case_add_assert(rp_case_t *c, const char *name, rp_status_t st, double time_s)
{
    if (grow((void **)&c->asserts, &c->_acap, c->nasserts, sizeof *c->asserts))
        return CM_ENOMEM;
    rp_assert_t *a = &c->asserts[c->nasserts];
    if (!(a->name = strdup(name ? name : "")))
        return CM_ENOMEM;
    a->status = st;
    a->time_s = time_s;
    c->nasserts++;
    return CM_OK;
}

/* The index of actor's lane, or c->nlanes. */
static size_t lane_index(const rp_case_t *c, const char *actor)
{
    size_t i = 0;
    while (actor && i < c->nlanes && strcmp(c->lanes[i].actor, actor) != 0)
        i++;
    return actor ? i : c->nlanes;
}

cm_err_t rp_case_add_lane(rp_case_t *c, const char *actor, const char *label, const char *group,
                          int depth)
{
    if (lane_index(c, actor) < c->nlanes)
        return CM_OK;
    if (grow((void **)&c->lanes, &c->_lcap, c->nlanes, sizeof *c->lanes))
        return CM_ENOMEM;
    rp_lane_t *l = &c->lanes[c->nlanes];
    memset(l, 0, sizeof *l);
    if (!(l->label = strndup(label ? label : "", RP_MAX_LINE_LEN)))
        return CM_ENOMEM;
    snprintf(l->actor, sizeof l->actor, "%s", actor ? actor : "");
    snprintf(l->group, sizeof l->group, "%s", group ? group : "");
    l->depth = depth;
    c->nlanes++;
    return CM_OK;
}

cm_err_t rp_case_join_lane(rp_case_t *c, const char *actor, const char *into)
{
    size_t i = lane_index(c, into), n = c->nlanes;
    if (i == n)
        return CM_ENOTFOUND;
    /* A copy: adding may move the lanes. Joining a lane that joins another joins that. */
    rp_lane_t l = c->lanes[i];
    cm_err_t rc = rp_case_add_lane(c, actor, l.label, l.group, l.depth);
    if (!rc && c->nlanes > n)
        snprintf(c->lanes[n].joins, sizeof c->lanes[n].joins, "%s", l.joins[0] ? l.joins : into);
    return rc;
}

cm_err_t rp_case_fail_lane(rp_case_t *c, const char *actor)
{
    size_t i = lane_index(c, actor);
    if (i == c->nlanes)
        return CM_ENOTFOUND;
    c->lanes[i].failed = 1;
    return CM_OK;
}

const rp_lane_t *rp_case_lane(const rp_case_t *c, const char *actor)
{
    size_t i = lane_index(c, actor);
    return i < c->nlanes ? &c->lanes[i] : NULL;
}

cm_err_t rp_case_add_iteration(rp_case_t *c, int64_t t_ms, const char *label)
{
    if (c->niterations >= RP_MAX_ITERATIONS) {
        c->dropped_iterations++;
        return CM_OK;
    }
    if (grow((void **)&c->iterations, &c->_icap, c->niterations, sizeof *c->iterations))
        return CM_ENOMEM;
    rp_iteration_t *it = &c->iterations[c->niterations++];
    it->t_ms = t_ms;
    snprintf(it->label, sizeof it->label, "%s", label ? label : "");
    return CM_OK;
}

char *rp_case_log_text(const rp_case_t *c)
{
    cm_buf_t b;
    cm_err_t rc = CM_OK;
    cm_buf_init(&b, (size_t)RP_MAX_LINES * (RP_MAX_LINE_LEN + 64));
    for (size_t i = 0; !rc && i < c->nlines; i++) {
        const rp_line_t *l = &c->lines[i];
        rc = cm_buf_printf(&b, "%+9.3f %-8s %s\n", (double)l->t_ms / 1000.0, l->actor, l->text);
    }
    if (!rc && c->dropped_lines)
        rc = cm_buf_printf(&b, "... %zu more lines dropped\n", c->dropped_lines);
    if (rc) {
        cm_buf_free(&b);
        return NULL;
    }
    return cm_buf_take(&b);
}

char *rp_classname(const char *path, char *out, size_t cap)
{
    while (path[0] == '.' && path[1] == '/')
        path += 2;
    while (*path == '/')
        path++;
    size_t n = strlen(path);
    if (n > 5 && strcmp(path + n - 5, ".json") == 0)
        n -= 5;
    if (cap == 0)
        return out;
    if (n >= cap)
        n = cap - 1;
    for (size_t i = 0; i < n; i++)
        out[i] = path[i] == '/' ? '.' : path[i];
    out[n] = '\0';
    return out;
}

rp_counts_t rp_suite_counts(const rp_suite_t *s)
{
    rp_counts_t k = {0};
    for (size_t i = 0; i < s->ncases; i++) {
        const rp_case_t *c = s->cases[i];
        k.tests++;
        k.failures += c->status == RP_FAILED;
        k.errors += c->status == RP_ERRORED;
        k.skipped += c->status == RP_SKIPPED;
        k.time_s += c->time_s;
    }
    return k;
}

rp_counts_t rp_report_counts(const rp_report_t *r)
{
    rp_counts_t k = {0};
    for (size_t i = 0; i < r->nsuites; i++) {
        rp_counts_t s = rp_suite_counts(r->suites[i]);
        k.tests += s.tests;
        k.failures += s.failures;
        k.errors += s.errors;
        k.skipped += s.skipped;
        k.time_s += s.time_s;
    }
    return k;
}

const char *rp_status_name(rp_status_t st)
{
    switch (st) {
    case RP_PASSED:
        return "passed";
    case RP_FAILED:
        return "failed";
    case RP_ERRORED:
        return "error";
    case RP_SKIPPED:
        return "skipped";
    }
    return "unknown";
}
