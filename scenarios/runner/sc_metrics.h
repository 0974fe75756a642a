/* sc_metrics.h - reading values out of a Prometheus text exposition (GET /metrics), for
 * the "metrics" expectation.
 *
 * A selector is a metric name with an optional label subset, labels unquoted or quoted:
 *   gw_jobs_dead_total            every series of that name
 *   gw_http_requests_total{route=/webhooks/retell,status="204"}
 * Its value is the sum over every series whose name is the name and whose labels include
 * each given label with that value (other labels are free), so a bare name counts across
 * all label sets. Thread-safe (no state).
 */
#ifndef SC_METRICS_H
#define SC_METRICS_H

#include <stddef.h>

#include "cm_err.h"

#define SC_METRICS_MAX_LABELS 8

/* Checks a selector's syntax. CM_EINVAL with err (CM_ERR_LEN) saying what is wrong. */
cm_err_t sc_metrics_selector_valid(const char *selector, char *err) CM_WUR;

/* Sums the samples of text (len bytes) that match selector into *sum. Returns how many
 * series matched (0: *sum is 0), or -1 for a selector that does not parse. */
int sc_metrics_sum(const char *text, size_t len, const char *selector, double *sum);

#endif
