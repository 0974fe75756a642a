/* gw_obs.c - metric families of the gateway. */
#include "gw_obs.h"

#include <stdlib.h>

#include "cm_clock.h"
#include "gw_obs_proc.h"

static double queue_gauge(gw_store_t *store, int which)
{
    gw_queue_stats_t q;
    if (!store || gw_store_queue_stats(store, &q) != CM_OK)
        return -1; /* visible in a scrape, unlike a silent 0 */
    return (double)(which == 0 ? q.pending : which == 1 ? q.running : q.dead);
}

static double pending_fn(void *ud)
{
    return queue_gauge(ud, 0);
}

static double running_fn(void *ud)
{
    return queue_gauge(ud, 1);
}

static double dead_fn(void *ud)
{
    return queue_gauge(ud, 2);
}

/* Seconds the oldest due pending job has waited past its due time: the queue's lag, which
 * a depth alone does not tell (a deep queue that moves is fine, a shallow one stuck is not).
 * A job waiting for a retry later is not late. */
static double lag_fn(void *ud)
{
    gw_queue_stats_t q;
    if (!ud || gw_store_queue_stats(ud, &q) != CM_OK)
        return -1;
    int64_t late = q.pending ? cm_clock_now_ms() - q.oldest_pending_at_ms : 0;
    return late > 0 ? (double)late / 1000.0 : 0.0;
}

/* 1 when the store can write, 0 when it cannot (a full disk: every webhook is answered
 * 503), -1 without a store. */
static double writable_fn(void *ud)
{
    return ud ? (double)gw_store_writable(ud) : -1;
}

/* The counters that alerts and dashboards take rate() or increase() of, shown at 0 from
 * the start for the providers every gateway has: Prometheus sees no increase in a series
 * that first appears at 1, so the first forged webhook, the first breaker opening or the
 * first retry refused by the budget would go unseen. (Standard Webhooks sources, "std",
 * appear when one is configured and used; outbound operations are too many to list. The
 * breaker, budget and rate-limit series of each provider API key are made at 0 by
 * gw_outbound_new, which knows the tenants.) */
static cm_err_t zero_series(gw_obs_t *o)
{
    static const char *const inbound[] = {"retell", "calcom", "stripe"};
    static const char *const results[] = {"accepted",       "duplicate",       "rejected_signature",
                                          "rejected_stale", "rejected_replay", "rejected_malformed",
                                          "rejected_route", "not_stored"};
    for (size_t i = 0; i < sizeof inbound / sizeof inbound[0]; i++)
        for (size_t k = 0; k < sizeof results / sizeof results[0]; k++)
            if (!gw_metrics_with(o->webhooks, GW_LV(inbound[i], results[k])))
                return CM_ENOMEM;
    return CM_OK;
}

cm_err_t gw_obs_new(gw_store_t *store, gw_obs_t **out, char *err)
{
    gw_obs_t *o = calloc(1, sizeof *o);
    const double *lat = gw_metrics_latency_buckets;
    const size_t nlat = GW_METRICS_LATENCY_NBUCKETS;
    cm_err_t rc = o ? gw_metrics_new(4096, &o->reg) : CM_ENOMEM;
    *out = NULL;
    if (!rc)
        rc = gw_metrics_counter(o->reg, "gw_webhooks_total",
                                "Webhooks received, by provider and result "
                                "(accepted, duplicate, rejected_signature, rejected_stale, "
                                "rejected_replay, rejected_malformed, rejected_route, "
                                "not_stored)",
                                "provider,result", &o->webhooks, err);
    if (!rc)
        rc = gw_metrics_histogram(o->reg, "gw_webhook_ack_seconds",
                                  "Time from request to acknowledgement (after the commit)",
                                  "provider", lat, nlat, &o->ack_seconds, err);
    if (!rc)
        rc = gw_metrics_counter(o->reg, "gw_jobs_total", "Jobs finished, by kind and result",
                                "kind,result", &o->jobs, err);
    if (!rc)
        rc = gw_metrics_histogram(o->reg, "gw_job_processing_seconds",
                                  "Time spent processing one job attempt", "kind", lat, nlat,
                                  &o->job_seconds, err);
    if (!rc)
        rc = gw_metrics_counter(o->reg, "gw_job_outcomes_unstored_total",
                                "Job outcomes (done, retry, dead) the store refused on every "
                                "try; the job runs again once its lease expires",
                                "result", &o->unstored, err);
    /* Shown at 0 from the start, so an alert on its increase needs no series to appear. */
    static const char *const outcomes[] = {"done", "retry", "dead"};
    for (size_t i = 0; !rc && i < sizeof outcomes / sizeof outcomes[0]; i++)
        if (!gw_metrics_with(o->unstored, GW_LV(outcomes[i])))
            rc = CM_ENOMEM;
    if (!rc)
        rc = gw_metrics_counter(o->reg, "gw_outbound_calls_total",
                                "Outbound operations, by provider, operation and outcome",
                                "provider,operation,outcome", &o->outbound, err);
    if (!rc)
        rc = gw_metrics_histogram(o->reg, "gw_outbound_call_seconds", "Outbound attempt latency",
                                  "provider,operation", lat, nlat, &o->outbound_seconds, err);
    if (!rc)
        rc = gw_metrics_gauge(o->reg, "gw_breaker_state",
                              "Circuit breaker state: 1 for the current state of each provider API "
                              "key (tenant: the key's first tenant)",
                              "provider,tenant,state", &o->breaker_state, err);
    if (!rc)
        rc = gw_metrics_counter(o->reg, "gw_breaker_transitions_total",
                                "Circuit breaker transitions", "provider,tenant,from,to",
                                &o->breaker_moves, err);
    if (!rc)
        rc = gw_metrics_counter(o->reg, "gw_outbound_retries_total", "Retries of outbound calls",
                                "provider,operation", &o->retries, err);
    if (!rc)
        rc = gw_metrics_counter(o->reg, "gw_retry_budget_rejections_total",
                                "Retries refused by the retry budget", "provider,tenant",
                                &o->budget_rejects, err);
    if (!rc)
        rc = gw_metrics_counter(o->reg, "gw_ratelimit_waits_total",
                                "Outbound calls that waited for a rate-limit token",
                                "provider,tenant", &o->rl_waits, err);
    if (!rc)
        rc = gw_metrics_counter(o->reg, "gw_ratelimit_rejections_total",
                                "Outbound calls refused by the rate limiter", "provider,tenant",
                                &o->rl_rejects, err);
    if (!rc)
        rc = gw_metrics_counter(o->reg, "gw_sagas_total", "Booking sagas ended, by outcome",
                                "outcome", &o->sagas, err);
    static const double saga_buckets[] = {0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600};
    if (!rc)
        rc = gw_metrics_histogram(o->reg, "gw_saga_duration_seconds",
                                  "Time from a saga's start to its end, by outcome", "outcome",
                                  saga_buckets, sizeof saga_buckets / sizeof saga_buckets[0],
                                  &o->saga_seconds, err);
    if (!rc)
        rc = gw_metrics_counter(o->reg, "gw_sagas_started_total", "Booking sagas started", "",
                                &o->sagas_started, err);
    if (!rc)
        rc = gw_metrics_counter(o->reg, "gw_payments_total",
                                "Deposit attempts, by result (succeeded, declined, failed)",
                                "result", &o->payments, err);
    if (!rc)
        rc = gw_metrics_counter(o->reg, "gw_trace_spans_exported_total",
                                "Spans the OTLP collector accepted", "", &o->spans_exported, err);
    if (!rc)
        rc = gw_metrics_counter(o->reg, "gw_trace_spans_dropped_total",
                                "Spans not exported: queue_full (the exporter's queue was full, "
                                "a slow or unreachable collector) or export_failed (the "
                                "collector refused or did not answer the batch)",
                                "reason", &o->spans_dropped, err);
    /* At 0 from the start (tracing on or off), so an alert on an increase needs no series
     * to appear first. */
    if (!rc && (!gw_metrics_with(o->spans_exported, NULL) ||
                !gw_metrics_with(o->spans_dropped, GW_LV("queue_full")) ||
                !gw_metrics_with(o->spans_dropped, GW_LV("export_failed"))))
        rc = CM_ENOMEM;
    /* The outcomes the alerts count (deploy/prometheus/), shown at 0 from the start: a
     * series that first appears at 1 has no increase for Prometheus, so the first saga
     * ending needs_human after a start would page nobody. */
    static const char *const saga_ends[] = {
        "completed",   "failed_no_slot", "failed_payment",       "compensated",
        "needs_human", "failed",         "cancelled_by_attendee"};
    for (size_t i = 0; !rc && i < sizeof saga_ends / sizeof saga_ends[0]; i++)
        if (!gw_metrics_with(o->sagas, GW_LV(saga_ends[i])))
            rc = CM_ENOMEM;
    if (!rc)
        rc = zero_series(o);
    static const char *const pay_results[] = {"succeeded", "declined", "failed"};
    for (size_t i = 0; !rc && i < sizeof pay_results / sizeof pay_results[0]; i++)
        if (!gw_metrics_with(o->payments, GW_LV(pay_results[i])))
            rc = CM_ENOMEM;
    if (!rc)
        rc = gw_metrics_gauge_func(o->reg, "gw_jobs_pending", "Jobs waiting to run", pending_fn,
                                   store, err);
    if (!rc)
        rc = gw_metrics_gauge_func(o->reg, "gw_jobs_running", "Jobs running", running_fn, store,
                                   err);
    if (!rc)
        rc = gw_metrics_gauge_func(o->reg, "gw_dlq_depth", "Dead-lettered jobs", dead_fn, store,
                                   err);
    if (!rc)
        rc = gw_metrics_gauge_func(o->reg, "gw_jobs_queue_lag_seconds",
                                   "How long the oldest due pending job has waited to run", lag_fn,
                                   store, err);
    if (!rc)
        rc = gw_metrics_gauge_func(o->reg, "gw_store_writable",
                                   "1 when the store can write, 0 when it refuses writes "
                                   "(disk full, I/O error)",
                                   writable_fn, store, err);
    if (!rc)
        rc = gw_metrics_gauge(o->reg, "gw_http_connections",
                              "Connections counted against the HTTP server's limits, by state "
                              "(waiting_head: idle or sending a request head; reading_body; "
                              "other: being answered)",
                              "state", &o->http_conns, err);
    if (!rc)
        rc = gw_metrics_counter(o->reg, "gw_http_connections_closed_total",
                                "Connections the HTTP server closed to protect itself, by reason "
                                "(head_timeout, body_timeout, evicted: made room for a newcomer "
                                "at a limit; refused: new and closed unread at a limit; "
                                "body_budget: answered 503 as the bodies held at once were at "
                                "webhooks.body_budget)",
                                "reason", &o->http_closed, err);
    if (!rc)
        rc = gw_metrics_counter(o->reg, "gw_http_requests_too_large_total",
                                "Requests refused for size, by part (head: 431, body: 413)", "part",
                                &o->http_large, err);
    if (!rc)
        rc = gw_metrics_counter(o->reg, "gw_retention_purged_total",
                                "Rows purged by retention, by kind (events: raw webhooks with "
                                "their dedup keys; jobs; saga_steps: ended sagas' history lines)",
                                "kind", &o->retention_purged, err);
    if (!rc)
        rc = gw_metrics_counter(o->reg, "gw_retention_runs_total",
                                "Retention passes, by result (ok, error)", "result",
                                &o->retention_runs, err);
    static const char *const purged[] = {"events", "jobs", "saga_steps"};
    for (size_t i = 0; !rc && i < sizeof purged / sizeof purged[0]; i++)
        if (!gw_metrics_with(o->retention_purged, GW_LV(purged[i])))
            rc = CM_ENOMEM;
    if (!rc && (!gw_metrics_with(o->retention_runs, GW_LV("ok")) ||
                !gw_metrics_with(o->retention_runs, GW_LV("error"))))
        rc = CM_ENOMEM;
    if (!rc)
        rc = gw_obs_proc_register(o->reg, err);
    if (rc) {
        gw_obs_free(&o);
        return rc;
    }
    *out = o;
    return CM_OK;
}

/* Sets a collected counter series to v: the collect function is its only writer and
 * renders are serialised, so adding the difference sets it. */
static void counter_to(gw_mfamily_t *f, const char *label, uint64_t v)
{
    gw_mseries_t *s = gw_metrics_with(f, GW_LV(label));
    gw_counter_add(s, (double)v - gw_mseries_value(s));
}

/* Each family's collect reads the server's counters itself (a scrape renders the
 * families one after the other; the counters are monotonic, so readings a moment apart
 * never show a counter going down). */
static void http_conns_collect(void *ud, gw_mfamily_t *f)
{
    cm_http_server_stats_t st;
    cm_http_server_stats(ud, &st);
    uint64_t busy = st.waiting_head + st.reading_body;
    gw_gauge_set(gw_metrics_with(f, GW_LV("waiting_head")), (double)st.waiting_head);
    gw_gauge_set(gw_metrics_with(f, GW_LV("reading_body")), (double)st.reading_body);
    gw_gauge_set(gw_metrics_with(f, GW_LV("other")), (double)(st.open > busy ? st.open - busy : 0));
}

static void http_closed_collect(void *ud, gw_mfamily_t *f)
{
    cm_http_server_stats_t st;
    cm_http_server_stats(ud, &st);
    counter_to(f, "head_timeout", st.head_timeouts);
    counter_to(f, "body_timeout", st.body_timeouts);
    counter_to(f, "evicted", st.evicted);
    counter_to(f, "refused", st.refused);
    counter_to(f, "body_budget", st.over_budget);
}

static void http_large_collect(void *ud, gw_mfamily_t *f)
{
    cm_http_server_stats_t st;
    cm_http_server_stats(ud, &st);
    counter_to(f, "head", st.heads_too_large);
    counter_to(f, "body", st.bodies_too_large);
}

void gw_obs_watch_server(gw_obs_t *o, cm_http_server_t *srv)
{
    if (!o)
        return;
    gw_metrics_set_collect(o->http_conns, srv ? http_conns_collect : NULL, srv);
    gw_metrics_set_collect(o->http_closed, srv ? http_closed_collect : NULL, srv);
    gw_metrics_set_collect(o->http_large, srv ? http_large_collect : NULL, srv);
}

void gw_obs_free(gw_obs_t **op)
{
    if (!op || !*op)
        return;
    gw_metrics_free(&(*op)->reg);
    free(*op);
    *op = NULL;
}

void gw_obs_count(gw_mfamily_t *f, const char *const *labels)
{
    if (f)
        gw_counter_inc(gw_metrics_with(f, labels));
}

void gw_obs_observe(gw_mfamily_t *f, const char *const *labels, double seconds)
{
    if (f)
        gw_hist_observe(gw_metrics_with(f, labels), seconds);
}
