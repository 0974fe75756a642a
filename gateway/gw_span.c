/* gw_span.c - span contexts, attributes and the hand-over to the exporter. */
#include "gw_span.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "cm_clock.h"
#include "cm_codec.h"
#include "gw_otlp.h"

/* Span ids need to be unique, not secret or reproducible: a per-thread generator seeded
 * once from the OS (as the HTTP server's correlation ids are). */
static cm_rand_t *thread_rng(void)
{
    static _Thread_local cm_rand_t gen;
    static _Thread_local int seeded;
    if (!seeded) {
        uint64_t seed = (uint64_t)cm_clock_mono_ns() ^ (uint64_t)(uintptr_t)&gen;
        (void)cm_random_bytes(&seed, sizeof seed);
        cm_rand_seed(&gen, seed);
        seeded = 1;
    }
    return &gen;
}

static pthread_once_t anchor_once = PTHREAD_ONCE_INIT;
static int64_t anchor_wall_ns, anchor_mono_ns;

static void set_anchor(void)
{
    anchor_mono_ns = cm_clock_mono_ns();
    anchor_wall_ns = cm_clock_now_ms() * 1000000;
}

int64_t gw_span_now_ns(void)
{
    pthread_once(&anchor_once, set_anchor);
    return anchor_wall_ns + (cm_clock_mono_ns() - anchor_mono_ns);
}

void gw_span_start(gw_span_t *s, struct gw_otlp *exp, const char *name, gw_span_kind_t kind,
                   const char *parent)
{
    gw_traceparent_t p;
    memset(s, 0, sizeof *s);
    if (parent && gw_trace_parse(parent, &p, NULL) == CM_OK) {
        gw_trace_child(&p, thread_rng(), &s->ctx);
        memcpy(s->parent_span_id, p.parent_id, sizeof s->parent_span_id);
    } else {
        gw_trace_new(thread_rng(), 0, &s->ctx);
        if (!exp || gw_otlp_sample(exp, s->ctx.trace_id))
            s->ctx.flags = GW_TRACE_SAMPLED;
    }
    gw_trace_format(&s->ctx, s->traceparent);
    s->recording = exp && (s->ctx.flags & GW_TRACE_SAMPLED);
    s->_exp = exp;
    snprintf(s->_name, sizeof s->_name, "%s", name ? name : "span");
    s->_kind = kind;
    s->_start_ns = gw_span_now_ns();
}

void gw_span_start_at(gw_span_t *s, int64_t mono_ns)
{
    int64_t back = cm_clock_mono_ns() - mono_ns;
    if (back > 0)
        s->_start_ns -= back;
}

static gw_span_attr_t *slot(gw_span_t *s, const char *key)
{
    if (!s->recording || !key)
        return NULL;
    for (unsigned i = 0; i < s->_nattrs; i++)
        if (!strncmp(s->_attrs[i].key, key, GW_SPAN_KEY_LEN - 1))
            return &s->_attrs[i];
    if (s->_nattrs == GW_SPAN_MAX_ATTRS)
        return NULL;
    gw_span_attr_t *a = &s->_attrs[s->_nattrs++];
    snprintf(a->key, sizeof a->key, "%s", key);
    return a;
}

void gw_span_str(gw_span_t *s, const char *key, const char *value)
{
    gw_span_attr_t *a = slot(s, key);
    if (a) {
        a->type = GW_ATTR_STR;
        snprintf(a->s, sizeof a->s, "%s", value ? value : "");
    }
}

void gw_span_int(gw_span_t *s, const char *key, int64_t value)
{
    gw_span_attr_t *a = slot(s, key);
    if (a) {
        a->type = GW_ATTR_INT;
        a->i = value;
    }
}

void gw_span_bool(gw_span_t *s, const char *key, int value)
{
    gw_span_attr_t *a = slot(s, key);
    if (a) {
        a->type = GW_ATTR_BOOL;
        a->i = value != 0;
    }
}

void gw_span_error(gw_span_t *s, const char *msg)
{
    if (!s->recording)
        return;
    s->_status = GW_SPAN_ERROR;
    snprintf(s->_status_msg, sizeof s->_status_msg, "%s", msg ? msg : "");
}

void gw_span_end(gw_span_t *s)
{
    if (!s->recording)
        return;
    s->recording = 0;
    s->_end_ns = gw_span_now_ns();
    gw_otlp_submit(s->_exp, s);
}
