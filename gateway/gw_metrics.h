/* gw_metrics.h - a small Prometheus registry: counters, gauges and histograms with labels,
 * rendered in the text exposition format 0.0.4 for GET /metrics.
 *
 * Families are registered once (at start-up) with a name, a help text and their label
 * names; a series is one combination of label values, created on first use and kept until
 * the registry is freed, so a series pointer may be cached and updated without any lookup.
 * The number of series per family is bounded (label values come from a closed set such as
 * provider x operation x outcome, but a bug that puts an id into a label must not eat the
 * memory): past the bound gw_metrics_with returns NULL, the update functions accept NULL
 * and do nothing, and the refusal is counted (gw_metrics_dropped).
 *
 * Names follow Prometheus conventions, checked at registration so that the output passes
 * `promtool check metrics`: [a-zA-Z_:][a-zA-Z0-9_:]* for metrics, [a-zA-Z_][a-zA-Z0-9_]*
 * for labels (no "__" prefix, no "le" on histograms), counters end in "_total" and other
 * types do not. Histogram buckets are fixed at registration; "+Inf" is implicit.
 *
 * Thread-safety: updates (gw_counter_*, gw_gauge_*, gw_hist_observe) are lock-free atomics
 * and safe from any thread; gw_metrics_with and registration take a mutex and are safe from
 * any thread; rendering is safe at any time, one render at a time (a histogram's _count is
 * the sum of the bucket counts it printed, so a scrape is always self-consistent).
 * gw_metrics_free must not race with anything.
 */
#ifndef GW_METRICS_H
#define GW_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "cm_buf.h"
#include "cm_err.h"

#define GW_METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"
#define GW_METRICS_MAX_LABELS 8

/* Label values for gw_metrics_with: GW_LV("calcom", "book", "ok"). */
#define GW_LV(...) ((const char *const[]){__VA_ARGS__})

/* Request latency buckets in seconds (the Prometheus client default, extended to 30 s for
 * slow providers): .005 .01 .025 .05 .1 .25 .5 1 2.5 5 10 30. */
extern const double gw_metrics_latency_buckets[12];
#define GW_METRICS_LATENCY_NBUCKETS 12

typedef struct gw_metrics gw_metrics_t;
typedef struct gw_mfamily gw_mfamily_t;
typedef struct gw_mseries gw_mseries_t;

typedef enum { GW_M_COUNTER = 0, GW_M_GAUGE, GW_M_HISTOGRAM } gw_mtype_t;

/* max_series: the bound per family (>= 1). CM_EINVAL, CM_ENOMEM. */
cm_err_t gw_metrics_new(size_t max_series, gw_metrics_t **out) CM_WUR;
/* Frees the registry and every family and series it made; sets *m to NULL; accepts NULL. */
void gw_metrics_free(gw_metrics_t **m);

/* Registers a family. labels is a comma-separated list of label names ("provider,outcome"),
 * or NULL / "" for none. name, help and labels are copied. *out is borrowed from the
 * registry (valid until gw_metrics_free). CM_EINVAL for a bad name or label (err says
 * which), CM_EEXISTS for a name already registered, CM_ENOMEM. */
cm_err_t gw_metrics_counter(gw_metrics_t *m, const char *name, const char *help, const char *labels,
                            gw_mfamily_t **out, char *err) CM_WUR;
cm_err_t gw_metrics_gauge(gw_metrics_t *m, const char *name, const char *help, const char *labels,
                          gw_mfamily_t **out, char *err) CM_WUR;
/* bounds: nbounds (1..64) strictly increasing finite upper bounds; copied. */
cm_err_t gw_metrics_histogram(gw_metrics_t *m, const char *name, const char *help,
                              const char *labels, const double *bounds, size_t nbounds,
                              gw_mfamily_t **out, char *err) CM_WUR;

/* An unlabelled gauge whose value fn(ud) computes at each render (for values owned by
 * someone else: queue depth, dead letters). fn runs with the registry's lock held and must
 * not call into the registry. ud is borrowed. */
typedef double (*gw_metrics_gauge_fn)(void *ud);
cm_err_t gw_metrics_gauge_func(gw_metrics_t *m, const char *name, const char *help,
                               gw_metrics_gauge_fn fn, void *ud, char *err) CM_WUR;

/* A family whose values are computed when it is rendered, for state owned by someone
 * else that must be shown as it is at the scrape (a breaker's state, one series per
 * state): fn(ud, f) runs at each gw_metrics_render, with the registry's lock held, just
 * before f's series are read, and sets them (gw_metrics_with, gw_gauge_set). Renders are
 * serialised by that lock, so a scrape shows exactly what one call of fn set - provided
 * fn is the only writer of those series. fn must not render or register. Replaces f's
 * previous function; fn NULL removes it. ud is borrowed until it is removed: once this
 * returns, no render is still running the previous fn. Safe from any thread. */
typedef void (*gw_metrics_collect_fn)(void *ud, gw_mfamily_t *f);
void gw_metrics_set_collect(gw_mfamily_t *f, gw_metrics_collect_fn fn, void *ud);

/* The series of f for these label values (exactly as many as f has labels; NULL for an
 * unlabelled family), created on first use with value 0. Values are copied and may be any
 * UTF-8 text (escaped on output). NULL when the family's series bound is reached, when a
 * value is NULL, or out of memory. The result is valid until gw_metrics_free. */
gw_mseries_t *gw_metrics_with(gw_mfamily_t *f, const char *const *values);

/* Series refused because a family was full, since creation. */
uint64_t gw_metrics_dropped(gw_metrics_t *m);

/* Counters only go up: a negative or NaN v is ignored. s may be NULL (no-op). */
void gw_counter_add(gw_mseries_t *s, double v);
void gw_counter_inc(gw_mseries_t *s);
void gw_gauge_set(gw_mseries_t *s, double v);
void gw_gauge_add(gw_mseries_t *s, double v);
/* Adds v to the first bucket whose bound is >= v (or +Inf), to _sum and _count. */
void gw_hist_observe(gw_mseries_t *s, double v);

/* Current value of a counter or gauge series (for tests and health checks); 0 for NULL. */
double gw_mseries_value(const gw_mseries_t *s);
/* Observations in a histogram series; 0 for NULL. */
uint64_t gw_mseries_count(const gw_mseries_t *s);

/* Appends the whole registry in text format 0.0.4 to out: families in registration order,
 * each with # HELP and # TYPE, series sorted by label values; families without any series
 * are left out (as the Go client does). On error (CM_ETOOBIG, CM_ENOMEM) out may hold a
 * partial text: discard it. */
cm_err_t gw_metrics_render(gw_metrics_t *m, cm_buf_t *out) CM_WUR;

/* Formats v as Prometheus does: "+Inf", "-Inf", "NaN", else the shortest form that reads
 * back as the same double ("0.1", "42", "1e+06"). out needs 32 bytes. Returns out. */
char *gw_metrics_fmt_double(double v, char out[32]);

#endif
