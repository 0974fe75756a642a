/* gw_retry.c - retry rules, full-jitter back-off, Retry-After parsing, retry budget. */
#include "gw_retry.h"

#include <ctype.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

const char *gw_att_kind_name(gw_att_kind_t k)
{
    static const char *const names[] = {"http", "connect", "timeout", "transport", "refused"};
    return (unsigned)k < 5 ? names[k] : "?";
}

const char *gw_retry_verdict_name(gw_retry_verdict_t v)
{
    static const char *const names[] = {"yes",
                                        "done",
                                        "permanent",
                                        "unsafe",
                                        "provider_said_no",
                                        "exhausted",
                                        "retry_after_too_long",
                                        "budget"};
    return (unsigned)v < 8 ? names[v] : "?";
}

void gw_retry_config_default(gw_retry_config_t *c)
{
    *c = (gw_retry_config_t){.max_attempts = 4,
                             .base_ms = 200,
                             .factor = 2.0,
                             .cap_ms = 10000,
                             .max_retry_after_ms = 60000};
}

cm_err_t gw_retry_config_check(const gw_retry_config_t *c, char *err)
{
    if (c->max_attempts < 1 || c->max_attempts > 100)
        cm_errf(err, "max_attempts: %d not in 1..100", c->max_attempts);
    else if (c->base_ms < 0)
        cm_errf(err, "base_ms: negative");
    else if (!(c->factor >= 1.0 && c->factor <= 100.0))
        cm_errf(err, "factor: %g not in 1..100", c->factor);
    else if (c->cap_ms < c->base_ms)
        cm_errf(err, "cap_ms: %lld below base_ms %lld", (long long)c->cap_ms,
                (long long)c->base_ms);
    else if (c->max_retry_after_ms < 0)
        cm_errf(err, "max_retry_after_ms: negative");
    else
        return CM_OK;
    return CM_EINVAL;
}

int64_t gw_retry_ceiling_ms(const gw_retry_config_t *c, int n)
{
    /* Multiplied step by step and stopped at the cap, so no n overflows. */
    double ceil = (double)c->base_ms;
    for (int i = 1; i < n && ceil < (double)c->cap_ms; i++)
        ceil *= c->factor;
    return ceil >= (double)c->cap_ms ? c->cap_ms : (int64_t)ceil;
}

int64_t gw_retry_backoff_ms(const gw_retry_config_t *c, int n, cm_rand_t *rng)
{
    /* Full jitter (AWS Architecture Blog, "Exponential Backoff And Jitter"): spreading
     * retries over the whole range de-synchronises clients that failed together. */
    return (int64_t)cm_rand_below(rng, (uint64_t)gw_retry_ceiling_ms(c, n) + 1);
}

/* ---- HTTP dates -------------------------------------------------------------------- */

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static int parse_digits(const char **s, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (!isdigit((unsigned char)(*s)[i]))
            return -1;
        v = v * 10 + ((*s)[i] - '0');
    }
    *s += n;
    *out = v;
    return 0;
}

static int expect(const char **s, const char *lit)
{
    size_t n = strlen(lit);
    if (strncmp(*s, lit, n) != 0)
        return -1;
    *s += n;
    return 0;
}

static int parse_month(const char **s, int *m)
{
    static const char *const months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                         "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    for (int i = 0; i < 12; i++)
        if (strncmp(*s, months[i], 3) == 0) {
            *s += 3;
            *m = i + 1;
            return 0;
        }
    return -1;
}

/* Accepts a short ("Sun") or long ("Sunday") day name; which one the form needs is checked
 * by the caller through the length. Returns the length, or -1. */
static int parse_dayname(const char **s)
{
    static const char *const days[] = {"Monday", "Tuesday",  "Wednesday", "Thursday",
                                       "Friday", "Saturday", "Sunday"};
    for (int i = 0; i < 7; i++) {
        size_t n = strlen(days[i]);
        if (strncmp(*s, days[i], n) == 0) {
            *s += n;
            return (int)n;
        }
    }
    for (int i = 0; i < 7; i++)
        if (strncmp(*s, days[i], 3) == 0) {
            *s += 3;
            return 3;
        }
    return -1;
}

static int parse_time(const char **s, int *h, int *mi, int *se)
{
    if (parse_digits(s, 2, h) || expect(s, ":") || parse_digits(s, 2, mi) || expect(s, ":") ||
        parse_digits(s, 2, se))
        return -1;
    return *h <= 23 && *mi <= 59 && *se <= 60 ? 0 : -1;
}

int gw_retry_parse_http_date(const char *v, int64_t *epoch_ms)
{
    static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    const char *s = v;
    int y = 0, m = 0, d = 0, h = 0, mi = 0, se = 0;
    while (*s == ' ' || *s == '\t')
        s++;
    int dn = parse_dayname(&s);
    if (dn < 0)
        return -1;
    if (dn == 3 && *s == ',') {
        /* IMF-fixdate: Sun, 06 Nov 1994 08:49:37 GMT */
        if (expect(&s, ", ") || parse_digits(&s, 2, &d) || expect(&s, " ") || parse_month(&s, &m) ||
            expect(&s, " ") || parse_digits(&s, 4, &y) || expect(&s, " ") ||
            parse_time(&s, &h, &mi, &se) || expect(&s, " GMT"))
            return -1;
    } else if (dn > 3) {
        /* RFC 850: Sunday, 06-Nov-94 08:49:37 GMT. Two-digit years: 70-99 are 19xx, the rest
         * 20xx (RFC 9110 asks for "within 50 years"; no sender still emits this form). */
        if (expect(&s, ", ") || parse_digits(&s, 2, &d) || expect(&s, "-") || parse_month(&s, &m) ||
            expect(&s, "-") || parse_digits(&s, 2, &y) || expect(&s, " ") ||
            parse_time(&s, &h, &mi, &se) || expect(&s, " GMT"))
            return -1;
        y += y >= 70 ? 1900 : 2000;
    } else {
        /* asctime: Sun Nov  6 08:49:37 1994 (day padded with a space) */
        if (expect(&s, " ") || parse_month(&s, &m) || expect(&s, " "))
            return -1;
        if (*s == ' ') {
            s++;
            if (parse_digits(&s, 1, &d))
                return -1;
        } else if (parse_digits(&s, 2, &d)) {
            return -1;
        }
        if (expect(&s, " ") || parse_time(&s, &h, &mi, &se) || expect(&s, " ") ||
            parse_digits(&s, 4, &y))
            return -1;
    }
    while (*s == ' ' || *s == '\t')
        s++;
    if (*s || d < 1 || d > mdays[m - 1])
        return -1;
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (m == 2 && d == 29 && !leap)
        return -1;
    *epoch_ms = ((days_from_civil(y, m, d) * 24 + h) * 60 + mi) * 60000 + (int64_t)se * 1000;
    return 0;
}

int gw_retry_parse_retry_after(const char *v, int64_t now_wall_ms, int64_t *wait_ms)
{
    if (!v)
        return -1;
    const char *s = v;
    while (*s == ' ' || *s == '\t')
        s++;
    if (isdigit((unsigned char)*s)) {
        int64_t secs = 0;
        for (; isdigit((unsigned char)*s); s++)
            /* Saturate: a year-long Retry-After is as good as an endless one. */
            secs = secs > 1000000000 ? secs : secs * 10 + (*s - '0');
        while (*s == ' ' || *s == '\t')
            s++;
        if (*s)
            return -1;
        *wait_ms = secs * 1000;
        return 0;
    }
    int64_t at;
    if (gw_retry_parse_http_date(s, &at))
        return -1;
    *wait_ms = at > now_wall_ms ? at - now_wall_ms : 0;
    return 0;
}

/* ---- decision ---------------------------------------------------------------------- */

/* 1 for "true", 0 for "false", -1 when absent or anything else. */
static int should_retry(const char *v)
{
    if (!v)
        return -1;
    while (*v == ' ')
        v++;
    if (strncasecmp(v, "true", 4) == 0 && (v[4] == '\0' || v[4] == ' '))
        return 1;
    if (strncasecmp(v, "false", 5) == 0 && (v[5] == '\0' || v[5] == ' '))
        return 0;
    return -1;
}

gw_retry_decision_t gw_retry_decide(const gw_retry_config_t *c, int safe, const gw_att_result_t *r,
                                    int attempt, int64_t now_wall_ms, int64_t now_mono_ms,
                                    cm_rand_t *rng, gw_retry_budget_t *budget)
{
    gw_retry_decision_t d = {.verdict = GW_RETRY_YES, .delay_ms = 0, .retry_after_ms = -1};
    int64_t ra;
    if (r->retry_after && gw_retry_parse_retry_after(r->retry_after, now_wall_ms, &ra) == 0)
        d.retry_after_ms = ra;

    if (r->kind == GW_ATT_REFUSED ||
        (r->kind == GW_ATT_OK && r->status >= 200 && r->status < 400)) {
        d.verdict = GW_RETRY_NO_DONE;
        return d;
    }
    int sr = should_retry(r->should_retry);
    if (sr == 0) {
        d.verdict = GW_RETRY_NO_PROVIDER;
    } else if (sr == 1) {
        /* Stripe has looked at its own state: retrying is safe (or pointless) whatever
         * our idempotency and status rules would say. */
    } else if (r->kind == GW_ATT_CONNECT) {
        /* The connection never opened, so the provider cannot have seen the request:
         * repeating it cannot do anything twice. */
    } else if (r->kind == GW_ATT_TIMEOUT || r->kind == GW_ATT_TRANSPORT) {
        /* The request may have been received and executed; only an idempotent operation
         * (or one whose idempotency key makes the provider replay the first result) may
         * be sent again. */
        if (!safe)
            d.verdict = GW_RETRY_NO_UNSAFE;
    } else if (r->status == 429) {
        /* Rate limiters answer before the request is executed (Stripe: "429s are not
         * stored", rate limiting runs before the idempotency layer), so even an unsafe
         * operation may be repeated once the limiter lets it through. */
    } else if (r->status >= 500 || r->status == 409) {
        /* A 5xx may come after the effect (crash while answering); 409 is Stripe's
         * idempotency_key_in_use, which only a keyed retry resolves. */
        if (!safe)
            d.verdict = GW_RETRY_NO_UNSAFE;
    } else {
        d.verdict = GW_RETRY_NO_PERMANENT;
    }
    if (d.verdict != GW_RETRY_YES)
        return d;
    if (attempt >= c->max_attempts) {
        d.verdict = GW_RETRY_NO_EXHAUSTED;
        return d;
    }
    if (d.retry_after_ms > c->max_retry_after_ms) {
        d.verdict = GW_RETRY_NO_RETRY_AFTER;
        return d;
    }
    /* The budget comes last so that it is only spent on retries that will happen. */
    if (budget && !gw_retry_budget_withdraw(budget, now_mono_ms)) {
        d.verdict = GW_RETRY_NO_BUDGET;
        return d;
    }
    d.delay_ms = gw_retry_backoff_ms(c, attempt, rng);
    if (d.delay_ms < d.retry_after_ms)
        d.delay_ms = d.retry_after_ms;
    return d;
}

/* ---- budget ------------------------------------------------------------------------ */

typedef struct {
    int64_t sec;
    int64_t calls, retries;
} bbucket_t;

struct gw_retry_budget {
    pthread_mutex_t mu;
    gw_retry_budget_config_t cfg;
    bbucket_t *b; /* one per second of the window, indexed by sec % window_s */
    uint64_t rejected;
};

void gw_retry_budget_config_default(gw_retry_budget_config_t *c)
{
    *c = (gw_retry_budget_config_t){.ratio = 0.2, .min_per_s = 1.0, .window_s = 10};
}

cm_err_t gw_retry_budget_new(const gw_retry_budget_config_t *c, gw_retry_budget_t **out, char *err)
{
    if (!(c->ratio >= 0 && c->ratio <= 100)) {
        cm_errf(err, "ratio: %g not in 0..100", c->ratio);
        return CM_EINVAL;
    }
    if (!(c->min_per_s >= 0 && c->min_per_s <= 1e6)) {
        cm_errf(err, "min_per_s: %g not in 0..1e6", c->min_per_s);
        return CM_EINVAL;
    }
    if (c->window_s < 1 || c->window_s > 600) {
        cm_errf(err, "window_s: %d not in 1..600", c->window_s);
        return CM_EINVAL;
    }
    gw_retry_budget_t *b = calloc(1, sizeof *b);
    if (!b)
        return CM_ENOMEM;
    b->b = calloc((size_t)c->window_s, sizeof *b->b);
    if (!b->b || pthread_mutex_init(&b->mu, NULL) != 0) {
        free(b->b);
        free(b);
        return CM_ENOMEM;
    }
    for (int i = 0; i < c->window_s; i++)
        b->b[i].sec = INT64_MIN;
    b->cfg = *c;
    *out = b;
    return CM_OK;
}

void gw_retry_budget_free(gw_retry_budget_t **b)
{
    if (!b || !*b)
        return;
    pthread_mutex_destroy(&(*b)->mu);
    free((*b)->b);
    free(*b);
    *b = NULL;
}

static int64_t sec_of(int64_t ms)
{
    return ms >= 0 ? ms / 1000 : (ms - 999) / 1000;
}

static bbucket_t *bucket(gw_retry_budget_t *b, int64_t now_ms)
{
    int64_t s = sec_of(now_ms);
    int n = b->cfg.window_s;
    bbucket_t *k = &b->b[((s % n) + n) % n];
    if (k->sec != s)
        *k = (bbucket_t){.sec = s};
    return k;
}

/* Sums the buckets of the window ending at now_ms; the window is small (<= 600). */
static void totals(gw_retry_budget_t *b, int64_t now_ms, int64_t *calls, int64_t *retries)
{
    int64_t s = sec_of(now_ms);
    *calls = *retries = 0;
    for (int i = 0; i < b->cfg.window_s; i++)
        if (b->b[i].sec > s - b->cfg.window_s && b->b[i].sec <= s) {
            *calls += b->b[i].calls;
            *retries += b->b[i].retries;
        }
}

void gw_retry_budget_deposit(gw_retry_budget_t *b, int64_t now_ms)
{
    pthread_mutex_lock(&b->mu);
    bucket(b, now_ms)->calls++;
    pthread_mutex_unlock(&b->mu);
}

int gw_retry_budget_withdraw(gw_retry_budget_t *b, int64_t now_ms)
{
    int64_t calls, retries;
    int ok;
    pthread_mutex_lock(&b->mu);
    totals(b, now_ms, &calls, &retries);
    double allowed = b->cfg.ratio * (double)calls + b->cfg.min_per_s * b->cfg.window_s;
    ok = (double)(retries + 1) <= allowed + 1e-9;
    if (ok)
        bucket(b, now_ms)->retries++;
    else
        b->rejected++;
    pthread_mutex_unlock(&b->mu);
    return ok;
}

void gw_retry_budget_stats(gw_retry_budget_t *b, int64_t now_ms, gw_retry_budget_stats_t *out)
{
    pthread_mutex_lock(&b->mu);
    totals(b, now_ms, &out->calls, &out->retries);
    out->rejected = b->rejected;
    pthread_mutex_unlock(&b->mu);
}
