/* gw_otlp.c - bounded span queue, exporter thread, OTLP/JSON encoding. */
#include "gw_otlp.h"

#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cm_buf.h"
#include "cm_clock.h"
#include "cm_http_client.h"
#include "cm_log.h"

#define MAX_HEADERS 8
#define EXPORT_CAP (64u << 20) /* one request body at most; a batch is far below */

struct gw_otlp {
    /* set at creation, then read-only */
    char *endpoint, *service_name, *service_instance;
    char *headers[MAX_HEADERS + 2]; /* Content-Type, the configured ones, NULL */
    uint64_t sample_below;          /* a trace's low 56 bits below this: recorded */
    unsigned queue_size, batch_size;
    long flush_ms, timeout_ms;
    gw_mfamily_t *exported, *dropped;
    pthread_t thread;
    int started;
    /* under mu */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    gw_span_t **ring; /* queue_size slots, each a malloc'd copy */
    unsigned head, count;
    int64_t first_at_ms; /* monotonic: when the oldest queued span came */
    int stopping;
};

static void count_dropped(gw_otlp_t *o, const char *reason, size_t n)
{
    if (o->dropped && n)
        gw_counter_add(gw_metrics_with(o->dropped, GW_LV(reason)), (double)n);
}

int gw_otlp_sample(const gw_otlp_t *o, const char *trace_id)
{
    /* The last 14 hex digits: W3C Trace Context level 2 makes those the random part. */
    uint64_t v = 0;
    size_t len = trace_id ? strlen(trace_id) : 0;
    for (size_t i = len >= 14 ? len - 14 : 0; i < len; i++) {
        char c = trace_id[i];
        v = v * 16 + (uint64_t)(c >= 'a' ? c - 'a' + 10 : c >= 'A' ? c - 'A' + 10 : c - '0');
    }
    return v < o->sample_below;
}

void gw_otlp_submit(gw_otlp_t *o, const gw_span_t *s)
{
    if (!o)
        return;
    /* The copy is made before the lock: the lock is held for a pointer store only. It
     * stops after the attributes set (a full gw_span_t is 3.9 KB, a typical copy 1 KB),
     * and only those are read from it (encode). */
    size_t size = offsetof(gw_span_t, _attrs) + s->_nattrs * sizeof s->_attrs[0];
    gw_span_t *c = malloc(size);
    if (!c) {
        count_dropped(o, "queue_full", 1);
        return;
    }
    memcpy(c, s, size);
    pthread_mutex_lock(&o->mu);
    int full = o->count == o->queue_size || o->stopping;
    if (!full) {
        o->ring[(o->head + o->count) % o->queue_size] = c;
        if (o->count++ == 0)
            o->first_at_ms = cm_clock_mono_ms();
        if (o->count == 1 || o->count == o->batch_size)
            pthread_cond_signal(&o->cv);
    }
    pthread_mutex_unlock(&o->mu);
    if (full) {
        free(c);
        count_dropped(o, "queue_full", 1);
    }
}

size_t gw_otlp_queued(gw_otlp_t *o)
{
    pthread_mutex_lock(&o->mu);
    size_t n = o->count;
    pthread_mutex_unlock(&o->mu);
    return n;
}

/* ---- encoding ------------------------------------------------------------------- */

static cm_err_t add_kv_str(cm_buf_t *b, const char *key, const char *val)
{
    cm_err_t rc = cm_buf_addstr(b, "{\"key\":");
    if (!rc)
        rc = cm_buf_add_json_str(b, key);
    if (!rc)
        rc = cm_buf_addstr(b, ",\"value\":{\"stringValue\":");
    if (!rc)
        rc = cm_buf_add_json_str(b, val);
    if (!rc)
        rc = cm_buf_addstr(b, "}}");
    return rc;
}

static cm_err_t add_attr(cm_buf_t *b, const gw_span_attr_t *a)
{
    if (a->type == GW_ATTR_STR)
        return add_kv_str(b, a->key, a->s);
    cm_err_t rc = cm_buf_addstr(b, "{\"key\":");
    if (!rc)
        rc = cm_buf_add_json_str(b, a->key);
    if (!rc && a->type == GW_ATTR_INT) /* int64 is a decimal string in OTLP/JSON */
        rc = cm_buf_printf(b, ",\"value\":{\"intValue\":\"%lld\"}}", (long long)a->i);
    else if (!rc)
        rc = cm_buf_printf(b, ",\"value\":{\"boolValue\":%s}}", a->i ? "true" : "false");
    return rc;
}

static cm_err_t add_span(cm_buf_t *b, const gw_span_t *s)
{
    cm_err_t rc = cm_buf_printf(b, "{\"traceId\":\"%s\",\"spanId\":\"%s\"", s->ctx.trace_id,
                                s->ctx.parent_id);
    if (!rc && s->parent_span_id[0])
        rc = cm_buf_printf(b, ",\"parentSpanId\":\"%s\"", s->parent_span_id);
    if (!rc)
        rc = cm_buf_addstr(b, ",\"name\":");
    if (!rc)
        rc = cm_buf_add_json_str(b, s->_name);
    if (!rc)
        rc = cm_buf_printf(b,
                           ",\"kind\":%d,\"startTimeUnixNano\":\"%lld\",\"endTimeUnixNano\":"
                           "\"%lld\",\"attributes\":[",
                           (int)s->_kind, (long long)s->_start_ns, (long long)s->_end_ns);
    for (unsigned i = 0; !rc && i < s->_nattrs; i++) {
        if (i)
            rc = cm_buf_addstr(b, ",");
        if (!rc)
            rc = add_attr(b, &s->_attrs[i]);
    }
    if (!rc)
        rc = cm_buf_addstr(b, "]");
    if (!rc && s->_status != GW_SPAN_UNSET) {
        rc = cm_buf_printf(b, ",\"status\":{\"code\":%d", (int)s->_status);
        if (!rc && s->_status_msg[0]) {
            rc = cm_buf_addstr(b, ",\"message\":");
            if (!rc)
                rc = cm_buf_add_json_str(b, s->_status_msg);
        }
        if (!rc)
            rc = cm_buf_addstr(b, "}");
    }
    if (!rc)
        rc = cm_buf_addstr(b, "}");
    return rc;
}

static cm_err_t encode(const gw_otlp_t *o, gw_span_t *const *spans, size_t n, cm_buf_t *b)
{
    cm_err_t rc = cm_buf_addstr(b, "{\"resourceSpans\":[{\"resource\":{\"attributes\":[");
    if (!rc)
        rc = add_kv_str(b, "service.name", o->service_name);
    if (!rc && o->service_instance) {
        rc = cm_buf_addstr(b, ",");
        if (!rc)
            rc = add_kv_str(b, "service.instance.id", o->service_instance);
    }
    if (!rc)
        rc = cm_buf_addstr(b, "]},\"scopeSpans\":[{\"scope\":{\"name\":\"bookbench.gateway\"},"
                              "\"spans\":[");
    for (size_t i = 0; !rc && i < n; i++) {
        if (i)
            rc = cm_buf_addstr(b, ",");
        if (!rc)
            rc = add_span(b, spans[i]);
    }
    if (!rc)
        rc = cm_buf_addstr(b, "]}]}]}");
    return rc;
}

/* ---- the exporter thread ---------------------------------------------------------- */

/* A collector that stays down would otherwise log once per batch. */
static cm_log_limit_t failure_logs = CM_LOG_LIMIT_INIT(1, 60000);

/* Sends one batch; returns 1 when the collector took it. */
static int export_batch(gw_otlp_t *o, cm_http_client_t *http, gw_span_t *const *spans, size_t n)
{
    cm_buf_t body;
    cm_buf_init(&body, EXPORT_CAP);
    cm_err_t rc = encode(o, spans, n, &body);
    cm_http_response_t resp;
    memset(&resp, 0, sizeof resp);
    if (!rc) {
        cm_http_request_t rq = {.method = "POST",
                                .url = o->endpoint,
                                .headers = (const char *const *)o->headers,
                                .body = body.data,
                                .body_len = body.len,
                                .connect_timeout_ms = o->timeout_ms,
                                .timeout_ms = o->timeout_ms,
                                .max_response = 64 * 1024};
        rc = cm_http_client_do(http, &rq, &resp);
    }
    int ok = !rc && resp.status >= 200 && resp.status < 300;
    uint64_t left_out = 0;
    if (!ok && cm_log_limit_take(&failure_logs, cm_clock_mono_ms(), &left_out)) {
        char why[CM_ERR_LEN + 32];
        if (rc)
            snprintf(why, sizeof why, "%s", resp.err[0] ? resp.err : cm_strerror(rc));
        else
            snprintf(why, sizeof why, "answered %ld", resp.status);
        CM_WARN("gw.otlp",
                "%zu span(s) dropped: collector %s: %s (%llu more failed exports "
                "not logged)",
                n, o->endpoint, why, (unsigned long long)left_out);
    }
    cm_http_response_free(&resp); /* zeroed when no request was made: nothing to free */
    cm_buf_free(&body);
    if (ok && o->exported)
        gw_counter_add(gw_metrics_with(o->exported, NULL), (double)n);
    else if (!ok)
        count_dropped(o, "export_failed", n);
    return ok;
}

static void *exporter(void *arg)
{
    gw_otlp_t *o = arg;
    cm_http_client_t *http = cm_http_client_new();
    gw_span_t **batch = calloc(o->batch_size, sizeof *batch);
    int failed_while_stopping = 0;
    pthread_mutex_lock(&o->mu);
    for (;;) {
        if (o->stopping && (o->count == 0 || failed_while_stopping))
            break;
        if (!o->stopping && o->count == 0) {
            pthread_cond_wait(&o->cv, &o->mu);
            continue;
        }
        int64_t due = o->first_at_ms + o->flush_ms - cm_clock_mono_ms();
        if (!o->stopping && o->count < o->batch_size && due > 0) {
            struct timespec ts = cm_clock_mono_deadline(due);
            (void)pthread_cond_timedwait(&o->cv, &o->mu, &ts);
            continue;
        }
        size_t n = 0;
        while (o->count && n < o->batch_size) {
            batch[n++] = o->ring[o->head];
            o->head = (o->head + 1) % o->queue_size;
            o->count--;
        }
        /* What is left waits for the next round from now on. */
        o->first_at_ms = cm_clock_mono_ms();
        int stopping = o->stopping;
        pthread_mutex_unlock(&o->mu);
        int ok = http && batch && export_batch(o, http, batch, n);
        if (!http || !batch)
            count_dropped(o, "export_failed", n);
        for (size_t i = 0; i < n; i++)
            free(batch[i]);
        pthread_mutex_lock(&o->mu);
        /* Stopping with a collector that fails: the rest would fail too, one timeout each. */
        failed_while_stopping = stopping && !ok;
    }
    /* What is left when stopping after a failure is dropped. */
    size_t left = o->count;
    while (o->count) {
        free(o->ring[o->head]);
        o->head = (o->head + 1) % o->queue_size;
        o->count--;
    }
    pthread_mutex_unlock(&o->mu);
    count_dropped(o, "export_failed", left);
    free(batch);
    cm_http_client_free(&http);
    return NULL;
}

/* ---- life cycle ------------------------------------------------------------------- */

static void destroy(gw_otlp_t *o)
{
    free(o->endpoint);
    free(o->service_name);
    free(o->service_instance);
    for (size_t i = 0; o->headers[i]; i++)
        free(o->headers[i]);
    free(o->ring);
    pthread_cond_destroy(&o->cv);
    pthread_mutex_destroy(&o->mu);
    free(o);
}

cm_err_t gw_otlp_new(const gw_otlp_cfg_t *cfg, gw_otlp_t **out, char *err)
{
    *out = NULL;
    if (!cfg->endpoint ||
        (strncmp(cfg->endpoint, "http://", 7) && strncmp(cfg->endpoint, "https://", 8))) {
        cm_errf(err, "tracing: the endpoint must be an http:// or https:// URL");
        return CM_EINVAL;
    }
    if (!cfg->queue_size || !cfg->batch_size || cfg->batch_size > cfg->queue_size ||
        cfg->flush_ms <= 0 || cfg->timeout_ms <= 0 || !(cfg->sample_ratio >= 0) ||
        cfg->sample_ratio > 1) {
        cm_errf(err, "tracing: queue, batch, flush, timeout or sample ratio out of range");
        return CM_EINVAL;
    }
    size_t nh = 0;
    for (const char *const *h = cfg->headers; h && *h; h++)
        nh++;
    if (nh > MAX_HEADERS) {
        cm_errf(err, "tracing: at most %d headers", MAX_HEADERS);
        return CM_EINVAL;
    }
    gw_otlp_t *o = calloc(1, sizeof *o);
    if (!o)
        return CM_ENOMEM;
    pthread_mutex_init(&o->mu, NULL);
    if (cm_clock_cond_init(&o->cv) != 0) {
        pthread_mutex_destroy(&o->mu);
        free(o);
        return CM_ENOMEM;
    }
    o->endpoint = strdup(cfg->endpoint);
    o->service_name = strdup(cfg->service_name ? cfg->service_name : "bookbench-gateway");
    o->service_instance = cfg->service_instance ? strdup(cfg->service_instance) : NULL;
    o->headers[0] = strdup("Content-Type: application/json");
    for (size_t i = 0; i < nh; i++)
        o->headers[i + 1] = strdup(cfg->headers[i]);
    o->ring = calloc(cfg->queue_size, sizeof *o->ring);
    int oom = !o->endpoint || !o->service_name || (cfg->service_instance && !o->service_instance) ||
              !o->ring;
    for (size_t i = 0; i <= nh; i++)
        oom |= !o->headers[i];
    if (oom) {
        destroy(o);
        return CM_ENOMEM;
    }
    /* ratio of 2^56, the range of the low 56 bits; 1 takes every trace. */
    o->sample_below =
        cfg->sample_ratio >= 1 ? UINT64_MAX : (uint64_t)(cfg->sample_ratio * 72057594037927936.0);
    o->queue_size = cfg->queue_size;
    o->batch_size = cfg->batch_size;
    o->flush_ms = cfg->flush_ms;
    o->timeout_ms = cfg->timeout_ms;
    o->exported = cfg->exported;
    o->dropped = cfg->dropped;
    if (pthread_create(&o->thread, NULL, exporter, o) != 0) {
        cm_errf(err, "tracing: cannot start the exporter thread");
        destroy(o);
        return CM_EIO;
    }
    o->started = 1;
    *out = o;
    return CM_OK;
}

void gw_otlp_free(gw_otlp_t **op)
{
    gw_otlp_t *o = op ? *op : NULL;
    if (!o)
        return;
    pthread_mutex_lock(&o->mu);
    o->stopping = 1;
    pthread_cond_signal(&o->cv);
    pthread_mutex_unlock(&o->mu);
    if (o->started)
        pthread_join(o->thread, NULL);
    destroy(o);
    *op = NULL;
}
