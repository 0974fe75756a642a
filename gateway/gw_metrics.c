/* gw_metrics.c - Prometheus registry with atomic updates and text format 0.0.4 output. */
#include "gw_metrics.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_FAMILIES 256
#define MAX_BOUNDS 64
#define MAX_NAME 200

const double gw_metrics_latency_buckets[12] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                               0.5,   1,    2.5,   5,    10,  30};

/* Doubles are kept as their bit patterns in 64-bit atomics: C11 has no atomic add for
 * double, and a compare-and-swap loop on the bits is lock-free on every target we build. */
typedef _Atomic uint64_t adouble_t;

static double load_d(const adouble_t *a)
{
    uint64_t bits = atomic_load_explicit((adouble_t *)a, memory_order_relaxed);
    double d;
    memcpy(&d, &bits, sizeof d);
    return d;
}

static void store_d(adouble_t *a, double d)
{
    uint64_t bits;
    memcpy(&bits, &d, sizeof bits);
    atomic_store_explicit(a, bits, memory_order_relaxed);
}

static void add_d(adouble_t *a, double v)
{
    uint64_t old = atomic_load_explicit(a, memory_order_relaxed), nbits;
    do {
        double d;
        memcpy(&d, &old, sizeof d);
        d += v;
        memcpy(&nbits, &d, sizeof nbits);
    } while (!atomic_compare_exchange_weak_explicit(a, &old, nbits, memory_order_relaxed,
                                                    memory_order_relaxed));
}

struct gw_mseries {
    gw_mfamily_t *f;
    char **values;            /* f->nlabels copies */
    adouble_t value;          /* counter, gauge */
    adouble_t sum;            /* histogram */
    _Atomic uint64_t *counts; /* histogram: nbounds + 1 (the last is +Inf), not cumulative */
};

struct gw_mfamily {
    gw_metrics_t *m;
    gw_mtype_t type;
    char *name, *help;
    char *labels[GW_METRICS_MAX_LABELS];
    size_t nlabels;
    double *bounds;
    size_t nbounds;
    gw_metrics_gauge_fn fn;
    void *fn_ud;
    gw_metrics_collect_fn collect; /* under m->mu, like fn */
    void *collect_ud;

    pthread_mutex_t mu; /* guards series and nseries */
    gw_mseries_t **series;
    size_t nseries;
};

struct gw_metrics {
    pthread_mutex_t mu; /* guards the family list */
    size_t max_series;
    gw_mfamily_t *fam[MAX_FAMILIES];
    size_t nfam;
    _Atomic uint64_t dropped;
};

cm_err_t gw_metrics_new(size_t max_series, gw_metrics_t **out)
{
    if (max_series < 1 || max_series > 100000)
        return CM_EINVAL;
    gw_metrics_t *m = calloc(1, sizeof *m);
    if (!m)
        return CM_ENOMEM;
    if (pthread_mutex_init(&m->mu, NULL) != 0) {
        free(m);
        return CM_ENOMEM;
    }
    m->max_series = max_series;
    *out = m;
    return CM_OK;
}

static void series_free(gw_mseries_t *s, size_t nlabels)
{
    if (!s)
        return;
    if (s->values)
        for (size_t i = 0; i < nlabels; i++)
            free(s->values[i]);
    free(s->values);
    free(s->counts);
    free(s);
}

static void family_free(gw_mfamily_t *f)
{
    if (!f)
        return;
    for (size_t i = 0; i < f->nseries; i++)
        series_free(f->series[i], f->nlabels);
    for (size_t i = 0; i < f->nlabels; i++)
        free(f->labels[i]);
    pthread_mutex_destroy(&f->mu);
    free(f->series);
    free(f->bounds);
    free(f->name);
    free(f->help);
    free(f);
}

void gw_metrics_free(gw_metrics_t **m)
{
    if (!m || !*m)
        return;
    for (size_t i = 0; i < (*m)->nfam; i++)
        family_free((*m)->fam[i]);
    pthread_mutex_destroy(&(*m)->mu);
    free(*m);
    *m = NULL;
}

/* ---- registration ------------------------------------------------------------------ */

static int name_ok(const char *s, int colon)
{
    if (!s || !*s || strlen(s) > MAX_NAME)
        return 0;
    for (const char *p = s; *p; p++) {
        int alpha = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || *p == '_' ||
                    (colon && *p == ':');
        if (!alpha && !(p > s && *p >= '0' && *p <= '9'))
            return 0;
    }
    return 1;
}

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

static cm_err_t family_new(gw_metrics_t *m, gw_mtype_t type, const char *name, const char *help,
                           const char *labels, const double *bounds, size_t nbounds,
                           gw_mfamily_t **out, char *err)
{
    cm_err_t rc = CM_OK;
    gw_mfamily_t *f = NULL;
    if (!name_ok(name, 1)) {
        cm_errf(err, "metric name \"%.64s\" is not [a-zA-Z_:][a-zA-Z0-9_:]*", name ? name : "");
        return CM_EINVAL;
    }
    /* promtool lints these: a counter's samples are <name>_total, nothing else is. */
    if (type == GW_M_COUNTER && !ends_with(name, "_total")) {
        cm_errf(err, "%s: counter names end in _total", name);
        return CM_EINVAL;
    }
    if (type != GW_M_COUNTER && ends_with(name, "_total")) {
        cm_errf(err, "%s: only counter names end in _total", name);
        return CM_EINVAL;
    }
    if (type == GW_M_HISTOGRAM) {
        if (nbounds < 1 || nbounds > MAX_BOUNDS) {
            cm_errf(err, "%s: %zu buckets, expected 1..%d", name, nbounds, MAX_BOUNDS);
            return CM_EINVAL;
        }
        for (size_t i = 0; i < nbounds; i++)
            if (!isfinite(bounds[i]) || (i && bounds[i] <= bounds[i - 1])) {
                cm_errf(err, "%s: bucket bounds must be finite and increasing", name);
                return CM_EINVAL;
            }
    }
    f = calloc(1, sizeof *f);
    if (!f || pthread_mutex_init(&f->mu, NULL) != 0) {
        free(f);
        return CM_ENOMEM;
    }
    f->m = m;
    f->type = type;
    f->name = strdup(name);
    f->help = strdup(help ? help : "");
    f->series = calloc(m->max_series, sizeof *f->series);
    if (!f->name || !f->help || !f->series) {
        rc = CM_ENOMEM;
        goto done;
    }
    if (type == GW_M_HISTOGRAM) {
        f->bounds = malloc(nbounds * sizeof *f->bounds);
        if (!f->bounds) {
            rc = CM_ENOMEM;
            goto done;
        }
        memcpy(f->bounds, bounds, nbounds * sizeof *bounds);
        f->nbounds = nbounds;
    }
    for (const char *p = labels; p && *p;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        char lname[MAX_NAME + 1];
        if (len == 0 || len > MAX_NAME || f->nlabels == GW_METRICS_MAX_LABELS) {
            cm_errf(err, "%s: bad label list \"%.64s\"", name, labels);
            rc = CM_EINVAL;
            goto done;
        }
        memcpy(lname, p, len);
        lname[len] = '\0';
        int dup = 0;
        for (size_t i = 0; i < f->nlabels; i++)
            dup |= strcmp(f->labels[i], lname) == 0;
        if (!name_ok(lname, 0) || strncmp(lname, "__", 2) == 0 || dup ||
            (type == GW_M_HISTOGRAM && strcmp(lname, "le") == 0)) {
            cm_errf(err, "%s: label name \"%s\" is invalid, reserved or repeated", name, lname);
            rc = CM_EINVAL;
            goto done;
        }
        if (!(f->labels[f->nlabels] = strdup(lname))) {
            rc = CM_ENOMEM;
            goto done;
        }
        f->nlabels++;
        p = comma ? comma + 1 : p + len;
        if (comma && !*p) {
            cm_errf(err, "%s: bad label list \"%.64s\"", name, labels);
            rc = CM_EINVAL;
            goto done;
        }
    }
    pthread_mutex_lock(&m->mu);
    for (size_t i = 0; i < m->nfam && !rc; i++)
        if (strcmp(m->fam[i]->name, name) == 0) {
            cm_errf(err, "%s: already registered", name);
            rc = CM_EEXISTS;
        }
    if (!rc && m->nfam == MAX_FAMILIES) {
        cm_errf(err, "%s: more than %d families", name, MAX_FAMILIES);
        rc = CM_ETOOBIG;
    }
    if (!rc)
        m->fam[m->nfam++] = f;
    pthread_mutex_unlock(&m->mu);
done:
    if (rc) {
        family_free(f);
        return rc;
    }
    /* An unlabelled family has exactly one series: create it now so it shows as 0 from
     * the first scrape instead of appearing with the first event. */
    if (f->nlabels == 0)
        (void)gw_metrics_with(f, NULL);
    if (out)
        *out = f;
    return CM_OK;
}

cm_err_t gw_metrics_counter(gw_metrics_t *m, const char *name, const char *help, const char *labels,
                            gw_mfamily_t **out, char *err)
{
    return family_new(m, GW_M_COUNTER, name, help, labels, NULL, 0, out, err);
}

cm_err_t gw_metrics_gauge(gw_metrics_t *m, const char *name, const char *help, const char *labels,
                          gw_mfamily_t **out, char *err)
{
    return family_new(m, GW_M_GAUGE, name, help, labels, NULL, 0, out, err);
}

cm_err_t gw_metrics_histogram(gw_metrics_t *m, const char *name, const char *help,
                              const char *labels, const double *bounds, size_t nbounds,
                              gw_mfamily_t **out, char *err)
{
    return family_new(m, GW_M_HISTOGRAM, name, help, labels, bounds, nbounds, out, err);
}

cm_err_t gw_metrics_gauge_func(gw_metrics_t *m, const char *name, const char *help,
                               gw_metrics_gauge_fn fn, void *ud, char *err)
{
    gw_mfamily_t *f = NULL;
    if (!fn) {
        cm_errf(err, "%s: no function", name ? name : "");
        return CM_EINVAL;
    }
    cm_err_t rc = family_new(m, GW_M_GAUGE, name, help, NULL, NULL, 0, &f, err);
    if (!rc) {
        /* Set under the lock that render holds while reading them. */
        pthread_mutex_lock(&m->mu);
        f->fn = fn;
        f->fn_ud = ud;
        pthread_mutex_unlock(&m->mu);
    }
    return rc;
}

void gw_metrics_set_collect(gw_mfamily_t *f, gw_metrics_collect_fn fn, void *ud)
{
    /* Under the lock render holds: the caller may free ud as soon as this returns. */
    pthread_mutex_lock(&f->m->mu);
    f->collect = fn;
    f->collect_ud = ud;
    pthread_mutex_unlock(&f->m->mu);
}

gw_mseries_t *gw_metrics_with(gw_mfamily_t *f, const char *const *values)
{
    gw_mseries_t *s = NULL;
    if (!f)
        return NULL;
    for (size_t i = 0; i < f->nlabels; i++)
        if (!values || !values[i])
            return NULL;
    pthread_mutex_lock(&f->mu);
    for (size_t i = 0; i < f->nseries && !s; i++) {
        size_t j = 0;
        while (j < f->nlabels && strcmp(f->series[i]->values[j], values[j]) == 0)
            j++;
        if (j == f->nlabels)
            s = f->series[i];
    }
    if (s || f->nseries == f->m->max_series) {
        if (!s)
            atomic_fetch_add(&f->m->dropped, 1);
        goto done;
    }
    s = calloc(1, sizeof *s);
    if (!s)
        goto done;
    s->f = f;
    s->values = calloc(f->nlabels ? f->nlabels : 1, sizeof *s->values);
    if (f->type == GW_M_HISTOGRAM)
        s->counts = calloc(f->nbounds + 1, sizeof *s->counts);
    int ok = s->values && (f->type != GW_M_HISTOGRAM || s->counts);
    for (size_t i = 0; ok && i < f->nlabels; i++)
        ok = (s->values[i] = strdup(values[i])) != NULL;
    if (!ok) {
        series_free(s, f->nlabels);
        s = NULL;
        goto done;
    }
    f->series[f->nseries++] = s;
done:
    pthread_mutex_unlock(&f->mu);
    return s;
}

uint64_t gw_metrics_dropped(gw_metrics_t *m)
{
    return atomic_load(&m->dropped);
}

/* ---- updates ----------------------------------------------------------------------- */

void gw_counter_add(gw_mseries_t *s, double v)
{
    if (s && v > 0 && s->f->type == GW_M_COUNTER) /* also refuses NaN */
        add_d(&s->value, v);
}

void gw_counter_inc(gw_mseries_t *s)
{
    gw_counter_add(s, 1);
}

void gw_gauge_set(gw_mseries_t *s, double v)
{
    if (s && s->f->type == GW_M_GAUGE)
        store_d(&s->value, v);
}

void gw_gauge_add(gw_mseries_t *s, double v)
{
    if (s && s->f->type == GW_M_GAUGE)
        add_d(&s->value, v);
}

void gw_hist_observe(gw_mseries_t *s, double v)
{
    if (!s || s->f->type != GW_M_HISTOGRAM || isnan(v))
        return;
    size_t i = 0;
    while (i < s->f->nbounds && v > s->f->bounds[i])
        i++;
    atomic_fetch_add_explicit(&s->counts[i], 1, memory_order_relaxed);
    add_d(&s->sum, v);
}

double gw_mseries_value(const gw_mseries_t *s)
{
    return s ? load_d(&s->value) : 0;
}

uint64_t gw_mseries_count(const gw_mseries_t *s)
{
    uint64_t n = 0;
    if (s && s->counts)
        for (size_t i = 0; i <= s->f->nbounds; i++)
            n += atomic_load_explicit(&s->counts[i], memory_order_relaxed);
    return n;
}

/* ---- rendering --------------------------------------------------------------------- */

char *gw_metrics_fmt_double(double v, char out[32])
{
    if (isnan(v))
        snprintf(out, 32, "NaN");
    else if (isinf(v))
        snprintf(out, 32, v > 0 ? "+Inf" : "-Inf");
    else {
        /* Shortest of %.15g..%.17g that reads back exactly: "0.1", not
         * "0.10000000000000001". */
        for (int prec = 15; prec <= 17; prec++) {
            snprintf(out, 32, "%.*g", prec, v);
            if (strtod(out, NULL) == v)
                break;
        }
    }
    return out;
}

/* HELP text escapes backslash and newline; label values also the double quote. */
static cm_err_t add_escaped(cm_buf_t *b, const char *s, int quote)
{
    cm_err_t rc = CM_OK;
    const char *run = s;
    for (const char *p = s; !rc && *p; p++) {
        const char *esc = *p == '\\'             ? "\\\\"
                          : *p == '\n'           ? "\\n"
                          : (quote && *p == '"') ? "\\\""
                                                 : NULL;
        if (!esc)
            continue;
        rc = cm_buf_add(b, run, (size_t)(p - run));
        if (!rc)
            rc = cm_buf_addstr(b, esc);
        run = p + 1;
    }
    if (!rc)
        rc = cm_buf_addstr(b, run);
    return rc;
}

/* {a="x",b="y"[,le="0.5"]} or nothing when there are no labels at all. */
static cm_err_t add_labels(cm_buf_t *b, const gw_mseries_t *s, const char *le)
{
    const gw_mfamily_t *f = s->f;
    cm_err_t rc = CM_OK;
    if (f->nlabels == 0 && !le)
        return CM_OK;
    rc = cm_buf_addstr(b, "{");
    for (size_t i = 0; !rc && i < f->nlabels; i++) {
        rc = cm_buf_printf(b, "%s%s=\"", i ? "," : "", f->labels[i]);
        if (!rc)
            rc = add_escaped(b, s->values[i], 1);
        if (!rc)
            rc = cm_buf_addstr(b, "\"");
    }
    if (!rc && le)
        rc = cm_buf_printf(b, "%sle=\"%s\"", f->nlabels ? "," : "", le);
    if (!rc)
        rc = cm_buf_addstr(b, "}");
    return rc;
}

static cm_err_t add_sample(cm_buf_t *b, const char *name, const char *suffix, const gw_mseries_t *s,
                           const char *le, double v)
{
    char num[32];
    cm_err_t rc = cm_buf_printf(b, "%s%s", name, suffix);
    if (!rc)
        rc = add_labels(b, s, le);
    if (!rc)
        rc = cm_buf_printf(b, " %s\n", gw_metrics_fmt_double(v, num));
    return rc;
}

static int cmp_series(const void *a, const void *b)
{
    const gw_mseries_t *x = *(gw_mseries_t *const *)a, *y = *(gw_mseries_t *const *)b;
    for (size_t i = 0; i < x->f->nlabels; i++) {
        int c = strcmp(x->values[i], y->values[i]);
        if (c)
            return c;
    }
    return 0;
}

static cm_err_t render_family(gw_mfamily_t *f, cm_buf_t *b)
{
    static const char *const types[] = {"counter", "gauge", "histogram"};
    cm_err_t rc = CM_OK;
    /* Not under f->mu: it creates and sets series, which takes that lock. */
    if (f->collect)
        f->collect(f->collect_ud, f);
    /* Series are never removed, so the pointers stay valid after the lock is dropped;
     * sorting a copy keeps the output stable whatever order threads created them in. */
    pthread_mutex_lock(&f->mu);
    size_t n = f->nseries;
    gw_mseries_t **v = n ? malloc(n * sizeof *v) : NULL;
    if (v)
        memcpy(v, f->series, n * sizeof *v);
    pthread_mutex_unlock(&f->mu);
    if (n == 0)
        return CM_OK;
    if (!v)
        return CM_ENOMEM;
    qsort(v, n, sizeof *v, cmp_series);

    rc = cm_buf_printf(b, "# HELP %s ", f->name);
    if (!rc)
        rc = add_escaped(b, f->help, 0);
    if (!rc)
        rc = cm_buf_printf(b, "\n# TYPE %s %s\n", f->name, types[f->type]);
    for (size_t i = 0; !rc && i < n; i++) {
        const gw_mseries_t *s = v[i];
        if (f->type != GW_M_HISTOGRAM) {
            double val = f->fn ? f->fn(f->fn_ud) : load_d(&s->value);
            rc = add_sample(b, f->name, "", s, NULL, val);
            continue;
        }
        uint64_t cum = 0;
        char le[32];
        for (size_t k = 0; !rc && k <= f->nbounds; k++) {
            cum += atomic_load_explicit(&s->counts[k], memory_order_relaxed);
            if (k < f->nbounds)
                gw_metrics_fmt_double(f->bounds[k], le);
            else
                snprintf(le, sizeof le, "+Inf");
            rc = add_sample(b, f->name, "_bucket", s, le, (double)cum);
        }
        if (!rc)
            rc = add_sample(b, f->name, "_sum", s, NULL, load_d(&s->sum));
        if (!rc)
            rc = add_sample(b, f->name, "_count", s, NULL, (double)cum);
    }
    free(v);
    return rc;
}

cm_err_t gw_metrics_render(gw_metrics_t *m, cm_buf_t *out)
{
    cm_err_t rc = CM_OK;
    pthread_mutex_lock(&m->mu);
    for (size_t i = 0; !rc && i < m->nfam; i++)
        rc = render_family(m->fam[i], out);
    pthread_mutex_unlock(&m->mu);
    return rc;
}
