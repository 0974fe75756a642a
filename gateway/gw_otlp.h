/* gw_otlp.h - the span exporter: OTLP over HTTP with the JSON encoding
 * (https://opentelemetry.io/docs/specs/otlp/#otlphttp), batched on its own thread.
 *
 * Ended spans are copied into a bounded queue (gw_otlp_submit, any thread, never waits for
 * the collector); the exporter thread takes up to batch_size of them when that many are
 * waiting or flush_ms after the first one came, encodes one ExportTraceServiceRequest
 *
 *   {"resourceSpans":[{"resource":{"attributes":[{"key":"service.name",...}]},
 *     "scopeSpans":[{"scope":{"name":"bookbench.gateway"},"spans":[{"traceId":"<32 hex>",
 *       "spanId":"<16 hex>","parentSpanId":"<16 hex>","name":"...","kind":2,
 *       "startTimeUnixNano":"<decimal>","endTimeUnixNano":"<decimal>",
 *       "attributes":[{"key":"k","value":{"stringValue":"v"}}],"status":{"code":2}}]}]}]}
 *
 * (ids in lowercase hex, not base64, as OTLP/JSON asks; 64-bit integers as decimal
 * strings) and POSTs it with Content-Type application/json and the configured headers,
 * within timeout_ms. A collector that is slow, down or black-holed costs the gateway
 * nothing but the spans: while an export hangs the queue fills and what does not fit is
 * dropped; an export that fails is dropped whole (no retry: a collector that fails now is
 * more likely to fail again than the spans are worth the memory). Both are counted in
 * gw_trace_spans_dropped_total{reason="queue_full"|"export_failed"}, exported ones in
 * gw_trace_spans_exported_total.
 *
 * new/free from one thread (main); gw_otlp_submit and gw_otlp_sample from any thread.
 */
#ifndef GW_OTLP_H
#define GW_OTLP_H

#include <stddef.h>

#include "cm_err.h"
#include "gw_metrics.h"
#include "gw_span.h"

typedef struct gw_otlp gw_otlp_t;

typedef struct {
    const char *endpoint;         /* the full URL POSTed to, e.g. http://host:4318/v1/traces */
    const char *const *headers;   /* "Name: value" lines, NULL-terminated, may be NULL */
    const char *service_name;     /* resource service.name */
    const char *service_instance; /* resource service.instance.id, may be NULL */
    double sample_ratio;          /* share of new traces recorded, 0..1 */
    unsigned queue_size;          /* spans waiting at most */
    unsigned batch_size;          /* spans per export at most */
    long flush_ms;                /* longest wait of a span before its export starts */
    long timeout_ms;              /* one export, connection included */
    gw_mfamily_t *exported;       /* gw_trace_spans_exported_total (borrowed, may be NULL) */
    gw_mfamily_t *dropped;        /* gw_trace_spans_dropped_total{reason} (idem) */
} gw_otlp_cfg_t;

/* Starts the exporter thread. Every string of cfg is copied. err says why on failure
 * (CM_EINVAL for a bad setting, CM_ENOMEM, CM_EIO when the thread cannot start). */
cm_err_t gw_otlp_new(const gw_otlp_cfg_t *cfg, gw_otlp_t **out, char *err) CM_WUR;

/* Exports what is queued (one last round, each export bounded by timeout_ms, what fails
 * dropped), stops the thread and frees. No span may be submitted once this is called.
 * Accepts NULL and clears the pointer. */
void gw_otlp_free(gw_otlp_t **o);

/* Whether a new trace with this id is recorded: its low 56 bits against the ratio (so
 * every instance and every span of one trace decides the same). */
int gw_otlp_sample(const gw_otlp_t *o, const char *trace_id);

/* Queues a copy of the ended span s; drops it (counted) when the queue is full. */
void gw_otlp_submit(gw_otlp_t *o, const gw_span_t *s);

/* Test hook: the number of spans waiting in the queue. */
size_t gw_otlp_queued(gw_otlp_t *o);

#endif
