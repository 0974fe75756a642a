/* test_gw_metrics_sample.c - prints a registry shaped like the gateway's /metrics (every
 * family the issue asks for, awkward label values included) so that test_promtool.sh can
 * run `promtool check metrics` on it. The names double as the suggested metric catalogue.
 */
#include <stdio.h>

#include "gw_metrics.h"

static double dlq_depth(void *ud)
{
    (void)ud;
    return 2;
}

#define REG(call)                                                                                  \
    do {                                                                                           \
        if ((rc = (call)) != CM_OK) {                                                              \
            fprintf(stderr, "%s\n", err);                                                          \
            goto done;                                                                             \
        }                                                                                          \
    } while (0)

int main(void)
{
    gw_metrics_t *m = NULL;
    gw_mfamily_t *wh, *ack, *proc, *out, *lat, *bst, *btr, *retr, *rl, *saga, *pay;
    char err[CM_ERR_LEN] = "";
    cm_err_t rc = gw_metrics_new(64, &m);
    cm_buf_t b;
    cm_buf_init(&b, 1 << 20);
    if (rc)
        goto done;
    const double *lb = gw_metrics_latency_buckets;
    const size_t nb = GW_METRICS_LATENCY_NBUCKETS;
    REG(gw_metrics_counter(m, "gw_webhooks_total", "Webhooks by provider, type and result.",
                           "provider,type,result", &wh, err));
    REG(gw_metrics_histogram(m, "gw_webhook_ack_seconds", "Time from request to acknowledgement.",
                             "provider", lb, nb, &ack, err));
    REG(gw_metrics_histogram(m, "gw_job_processing_seconds", "Time to process one job.", "kind", lb,
                             nb, &proc, err));
    REG(gw_metrics_counter(m, "gw_outbound_calls_total",
                           "Outbound calls by provider, operation and outcome.",
                           "provider,operation,outcome", &out, err));
    REG(gw_metrics_histogram(m, "gw_outbound_call_seconds", "Outbound call latency.",
                             "provider,operation", lb, nb, &lat, err));
    REG(gw_metrics_gauge(m, "gw_breaker_state",
                         "Breaker state: 0 closed, 1 open, 2 half_open, 3 forced_open, 4 "
                         "disabled.",
                         "provider", &bst, err));
    REG(gw_metrics_counter(m, "gw_breaker_transitions_total", "Breaker transitions.",
                           "provider,from,to", &btr, err));
    REG(gw_metrics_counter(m, "gw_retries_total",
                           "Retry decisions by verdict (yes, budget, exhausted, ...).",
                           "provider,verdict", &retr, err));
    REG(gw_metrics_counter(m, "gw_ratelimit_total", "Rate-limit verdicts.", "provider,verdict", &rl,
                           err));
    REG(gw_metrics_gauge_func(m, "gw_dlq_depth", "Jobs in the dead-letter queue.", dlq_depth, NULL,
                              err));
    REG(gw_metrics_counter(m, "gw_saga_outcomes_total", "Booking sagas by final state.", "outcome",
                           &saga, err));
    REG(gw_metrics_gauge(m, "gw_payment_success_ratio",
                         "Share of deposits that succeeded over the last hour.", NULL, &pay, err));

    gw_counter_add(gw_metrics_with(wh, GW_LV("retell", "call_analyzed", "accepted")), 12);
    gw_counter_add(gw_metrics_with(wh, GW_LV("retell", "call_analyzed", "duplicate")), 4);
    gw_counter_inc(gw_metrics_with(wh, GW_LV("retell", "unknown \"odd\"\\type\n", "rejected")));
    gw_hist_observe(gw_metrics_with(ack, GW_LV("retell")), 0.0031);
    gw_hist_observe(gw_metrics_with(ack, GW_LV("retell")), 0.012);
    gw_hist_observe(gw_metrics_with(proc, GW_LV("call_analyzed")), 0.4);
    gw_counter_add(gw_metrics_with(out, GW_LV("calcom", "book", "ok")), 10);
    gw_counter_add(gw_metrics_with(out, GW_LV("calcom", "book", "http_503")), 3);
    gw_counter_inc(gw_metrics_with(out, GW_LV("calcom", "slots", "timeout")));
    gw_hist_observe(gw_metrics_with(lat, GW_LV("calcom", "book")), 0.21);
    gw_hist_observe(gw_metrics_with(lat, GW_LV("calcom", "book")), 45);
    gw_gauge_set(gw_metrics_with(bst, GW_LV("calcom")), 2);
    gw_gauge_set(gw_metrics_with(bst, GW_LV("stripe")), 0);
    gw_counter_inc(gw_metrics_with(btr, GW_LV("calcom", "closed", "open")));
    gw_counter_inc(gw_metrics_with(btr, GW_LV("calcom", "open", "half_open")));
    gw_counter_add(gw_metrics_with(retr, GW_LV("calcom", "yes")), 3);
    gw_counter_inc(gw_metrics_with(retr, GW_LV("calcom", "budget")));
    gw_counter_inc(gw_metrics_with(rl, GW_LV("calcom", "wait")));
    gw_counter_inc(gw_metrics_with(saga, GW_LV("completed")));
    gw_gauge_set(gw_metrics_with(pay, NULL), 0.975);

    if ((rc = gw_metrics_render(m, &b)) == CM_OK)
        fputs(b.data, stdout);
done:
    cm_buf_free(&b);
    gw_metrics_free(&m);
    if (rc)
        fprintf(stderr, "sample: %s\n", cm_strerror(rc));
    return rc ? 1 : 0;
}
