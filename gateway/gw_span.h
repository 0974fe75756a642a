/* gw_span.h - one traced operation (an OpenTelemetry span): its W3C context, name, kind,
 * times, attributes and status, ended into the OTLP exporter (gw_otlp.h) when its trace
 * is sampled and tracing is on.
 *
 * The context always exists, tracing on or off: a span's `traceparent` is what its
 * children and the provider calls made on its behalf carry, so a trace id runs from a
 * webhook to the provider calls it causes whether or not spans are exported. Only the
 * recording (attributes, the copy handed to the exporter) is skipped when the trace is not
 * sampled or there is no exporter.
 *
 *   gw_span_t s;
 *   gw_span_start(&s, obs->otlp, "calcom.book", GW_SPAN_INTERNAL, parent_traceparent);
 *   gw_span_int(&s, "gw.attempts", 2);
 *   gw_span_error(&s, "breaker_open");
 *   gw_span_end(&s);                     // copied to the exporter's queue, never blocks
 *
 * Ids come from a per-thread generator seeded from the OS: unique, not reproducible by the
 * configured seed on purpose (the same seed after a restart must not give the same trace
 * ids, and tracing must not change the back-off jitter the seed makes reproducible).
 * Times are epoch nanoseconds from one anchor of cm_clock's wall time, advanced by its
 * monotonic clock, so a child never appears to start before its parent.
 *
 * A gw_span_t belongs to the thread that started it, until gw_span_end (or a move: it is
 * a plain value and may be copied to another owner before it ends, ended exactly once).
 */
#ifndef GW_SPAN_H
#define GW_SPAN_H

#include <stdint.h>

#include "gw_trace.h"

struct gw_otlp;

/* OTLP's SpanKind values. */
typedef enum {
    GW_SPAN_INTERNAL = 1,
    GW_SPAN_SERVER = 2,
    GW_SPAN_CLIENT = 3,
    GW_SPAN_CONSUMER = 5,
} gw_span_kind_t;

/* OTLP's Status.code values. Unset is what a successful span keeps (OpenTelemetry's
 * advice: "ok" is for an operator overriding an error). */
typedef enum { GW_SPAN_UNSET = 0, GW_SPAN_OK = 1, GW_SPAN_ERROR = 2 } gw_span_status_t;

#define GW_SPAN_MAX_ATTRS 16
#define GW_SPAN_KEY_LEN 40
#define GW_SPAN_STR_LEN 160

typedef enum { GW_ATTR_STR = 0, GW_ATTR_INT, GW_ATTR_BOOL } gw_attr_type_t;

typedef struct {
    char key[GW_SPAN_KEY_LEN];
    gw_attr_type_t type;
    int64_t i;               /* GW_ATTR_INT, GW_ATTR_BOOL */
    char s[GW_SPAN_STR_LEN]; /* GW_ATTR_STR, cut at the limit */
} gw_span_attr_t;

typedef struct {
    /* read-only */
    gw_traceparent_t ctx;                     /* trace id; parent_id holds THIS span's id; flags */
    char traceparent[GW_TRACEPARENT_LEN + 1]; /* ctx formatted, for children and calls */
    char parent_span_id[17];                  /* "" for a root */
    int recording;                            /* sampled, with an exporter, not ended */
    /* private */
    struct gw_otlp *_exp;
    char _name[64];
    gw_span_kind_t _kind;
    int64_t _start_ns, _end_ns; /* epoch ns */
    gw_span_status_t _status;
    char _status_msg[GW_SPAN_STR_LEN];
    unsigned _nattrs;
    gw_span_attr_t _attrs[GW_SPAN_MAX_ATTRS];
} gw_span_t;

/* Starts a span now. parent is a traceparent header value (a parent span's
 * `traceparent`, a sender's, a stored one) or NULL; a NULL or invalid one starts a new
 * trace, sampled as exp decides (gw_otlp_sample; always flagged sampled without an
 * exporter, so a provider keeps seeing sampled traces when tracing is off). A child keeps
 * its parent's sampled flag (parent-based sampling). exp may be NULL: nothing recorded. */
void gw_span_start(gw_span_t *s, struct gw_otlp *exp, const char *name, gw_span_kind_t kind,
                   const char *parent);

/* Moves the start back to a monotonic time (cm_clock_mono_ns) already past, e.g. when the
 * request was received. */
void gw_span_start_at(gw_span_t *s, int64_t mono_ns);

/* Attributes (the key is cut at GW_SPAN_KEY_LEN - 1 bytes, a string value at
 * GW_SPAN_STR_LEN - 1; setting a key again replaces it; past GW_SPAN_MAX_ATTRS new keys
 * are dropped). No-ops when not recording. */
void gw_span_str(gw_span_t *s, const char *key, const char *value);
void gw_span_int(gw_span_t *s, const char *key, int64_t value);
void gw_span_bool(gw_span_t *s, const char *key, int value);

/* Marks the span failed, with a short reason (copied; NULL: none). */
void gw_span_error(gw_span_t *s, const char *msg);

/* Ends the span and hands a copy to the exporter (dropped, and counted, when its queue is
 * full: never waits). Further calls on s are no-ops. */
void gw_span_end(gw_span_t *s);

/* Epoch nanoseconds on the spans' clock (see above). */
int64_t gw_span_now_ns(void);

#endif
