/* gw_obs.h - what the gateway shows of itself: the Prometheus families it updates, the
 * /metrics exposition, and where its spans go (gw_span.h, gw_otlp.h).
 *
 * Created once at start-up (all families registered up front, so a name clash or a bad
 * label is a start-up error), then updated from any thread: series handles are looked up
 * per update through gw_metrics_with, which is lock-free after first use. Freed last.
 */
#ifndef GW_OBS_H
#define GW_OBS_H

#include "cm_err.h"
#include "cm_http_server.h"
#include "gw_metrics.h"
#include "gw_store.h"

typedef struct {
    gw_metrics_t *reg;
    gw_mfamily_t *webhooks;         /* gw_webhooks_total{provider,result} */
    gw_mfamily_t *ack_seconds;      /* gw_webhook_ack_seconds{provider} */
    gw_mfamily_t *jobs;             /* gw_jobs_total{kind,result} */
    gw_mfamily_t *job_seconds;      /* gw_job_processing_seconds{kind} */
    gw_mfamily_t *unstored;         /* gw_job_outcomes_unstored_total{result} */
    gw_mfamily_t *outbound;         /* gw_outbound_calls_total{provider,operation,outcome} */
    gw_mfamily_t *outbound_seconds; /* gw_outbound_call_seconds{provider,operation} */
    gw_mfamily_t *breaker_state;    /* gw_breaker_state{provider,tenant,state} 0/1, computed at
                                     * each scrape by gw_outbound (gw_metrics_set_collect) */
    gw_mfamily_t *breaker_moves;    /* gw_breaker_transitions_total{provider,tenant,from,to} */
    gw_mfamily_t *retries;          /* gw_outbound_retries_total{provider,operation} */
    gw_mfamily_t *budget_rejects;   /* gw_retry_budget_rejections_total{provider,tenant} */
    gw_mfamily_t *rl_waits;         /* gw_ratelimit_waits_total{provider,tenant} */
    gw_mfamily_t *rl_rejects;       /* gw_ratelimit_rejections_total{provider,tenant} */
    gw_mfamily_t *sagas;            /* gw_sagas_total{outcome} */
    gw_mfamily_t *saga_seconds;     /* gw_saga_duration_seconds{outcome} */
    gw_mfamily_t *sagas_started;    /* gw_sagas_started_total */
    gw_mfamily_t *payments;         /* gw_payments_total{result} */
    /* The HTTP server's hostile-load guards (cm_http_server_stats), read at each scrape
     * once gw_obs_watch_server has a server: */
    gw_mfamily_t *http_conns;       /* gw_http_connections{state} */
    gw_mfamily_t *http_closed;      /* gw_http_connections_closed_total{reason} */
    gw_mfamily_t *http_large;       /* gw_http_requests_too_large_total{part} */
    gw_mfamily_t *retention_purged; /* gw_retention_purged_total{kind} */
    gw_mfamily_t *retention_runs;   /* gw_retention_runs_total{result} */
    gw_mfamily_t *spans_exported;   /* gw_trace_spans_exported_total */
    gw_mfamily_t *spans_dropped;    /* gw_trace_spans_dropped_total{reason} */
    /* The span exporter every module ends its spans into; NULL when tracing is off.
     * Borrowed: main creates it after this and frees it once nothing makes spans. */
    struct gw_otlp *otlp;
} gw_obs_t;

/* Registers every family; store (borrowed, may be NULL in tests) feeds the queue gauges
 * at scrape time. */
cm_err_t gw_obs_new(gw_store_t *store, gw_obs_t **out, char *err) CM_WUR;
void gw_obs_free(gw_obs_t **o);

/* Shows srv's guard counters (borrowed) in the gw_http_* families from now on; NULL stops
 * it, and once that returns no scrape reads the server: call it before freeing srv. */
void gw_obs_watch_server(gw_obs_t *o, cm_http_server_t *srv);

/* Shorthands: count one event / observe seconds, for label values from closed sets. */
void gw_obs_count(gw_mfamily_t *f, const char *const *labels);
void gw_obs_observe(gw_mfamily_t *f, const char *const *labels, double seconds);

#endif
