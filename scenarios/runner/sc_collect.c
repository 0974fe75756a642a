/* sc_collect.c - journal, breaker and saga events for the timeline. */
#include "sc_collect.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cm_clock.h"
#include "cm_json.h"
#include "sc_http.h"
#include "sc_log.h"

#define SC_COLLECT_TIMEOUT_MS 2000

/* A part's time on the case's clock: its clock runs speed times as fast from the start
 * and is off by its skew ("chaos"."skew": a drill's simulators run up to 2 minutes off),
 * which would put its events that far before or after the steps that caused them. */
static int64_t rel_ms(const sc_ctx_t *ctx, sc_proc_kind_t part, int64_t at_ms)
{
    int speed = ctx->speed > 1 ? ctx->speed : 1;
    int64_t skew = ctx->opts->attach ? 0 : ctx->sc->skew_ms[part];
    return (at_ms - skew - ctx->ref_real_ms) / speed;
}

static void add(sc_ctx_t *ctx, sc_proc_kind_t part, int64_t at_ms, const char *source,
                const char *text)
{
    SC_BEST_EFFORT(rp_case_add_event(ctx->rc, rel_ms(ctx, part, at_ms), source, text));
}

/* GET to part; the answer's JSON (new reference) or NULL. */
static json_t *get(sc_ctx_t *ctx, sc_target_t to, const char *path)
{
    sc_http_req_t r = {.to = to,
                       .method = "GET",
                       .path = path,
                       .auth = sc_http_default_auth(to, path),
                       .timeout_ms = SC_COLLECT_TIMEOUT_MS};
    sc_answer_t a;
    json_t *j = NULL;
    if (sc_http_do(ctx, "collect", &r, 1, &a) == CM_OK && a.status == 200 && a.json)
        j = json_incref(a.json);
    sc_answer_free(&a);
    return j;
}

static void journal(sc_ctx_t *ctx)
{
    char path[96], text[600];
    snprintf(path, sizeof path, "/control/journal?limit=%d", SC_COLLECT_JOURNAL);
    json_t *j = get(ctx, SC_TO_CONTROL, path);
    const json_t *entries = json_object_get(j, "entries");
    for (size_t i = 0; i < json_array_size(entries); i++) {
        const json_t *e = json_array_get(entries, i);
        const json_t *at = json_object_get(e, "at_ms");
        if (!json_is_integer(at))
            continue;
        const char *kind = cm_json_str(e, "kind", "request");
        const char *fault = cm_json_str(e, "fault", NULL);
        const json_t *st = json_object_get(e, "status");
        char status[48];
        if (json_is_integer(st))
            snprintf(status, sizeof status, "%lld", (long long)json_integer_value(st));
        else
            snprintf(status, sizeof status, "no answer (%s)", cm_json_str(e, "outcome", "?"));
        char source[24];
        if (!strcmp(kind, "delivery")) {
            snprintf(source, sizeof source, "deliveries");
            snprintf(text, sizeof text, "%s delivery %s attempt %lld -> %s%s%s",
                     cm_json_str(e, "event", "?"), cm_json_str(e, "delivery_id", "?"),
                     (long long)cm_json_int(e, "attempt", 0), status, fault ? ", fault: " : "",
                     fault ? fault : "");
        } else {
            snprintf(source, sizeof source, "sim %s", cm_json_str(e, "provider", "?"));
            snprintf(text, sizeof text, "%s %s -> %s%s%s (%.0f ms)", cm_json_str(e, "method", "?"),
                     cm_json_str(e, "path", "?"), status, fault ? ", fault: " : "",
                     fault ? fault : "", json_number_value(json_object_get(e, "duration_ms")));
        }
        add(ctx, SC_PROC_SIMULATORS, json_integer_value(at), source, text);
    }
    json_decref(j);
}

/* The chaos proxy's journal: which fault bit which connection, resets, refusals. Plain
 * opens and closes are left out: they would bury the faults on a busy link. */
static void chaos(sc_ctx_t *ctx)
{
    char path[96], text[600], source[24];
    snprintf(path, sizeof path, "/journal?limit=%d", SC_COLLECT_JOURNAL);
    json_t *j = get(ctx, SC_TO_CHAOS, path);
    const json_t *entries = json_object_get(j, "entries");
    for (size_t i = 0; i < json_array_size(entries); i++) {
        const json_t *e = json_array_get(entries, i);
        const json_t *at = json_object_get(e, "at_ms");
        const char *event = cm_json_str(e, "event", "?");
        if (!json_is_integer(at) || !strcmp(event, "open") || !strcmp(event, "close"))
            continue;
        const char *fault = cm_json_str(e, "fault", NULL), *dir = cm_json_str(e, "direction", NULL);
        const char *detail = cm_json_str(e, "detail", NULL);
        snprintf(source, sizeof source, "chaos %s", cm_json_str(e, "link", "?"));
        snprintf(text, sizeof text, "conn %lld %s%s%s%s%s%s%s",
                 (long long)cm_json_int(e, "conn", 0), event, fault ? " " : "", fault ? fault : "",
                 dir ? " " : "", dir ? dir : "", detail ? ": " : "", detail ? detail : "");
        add(ctx, SC_PROC_CHAOS, json_integer_value(at), source, text);
    }
    json_decref(j);
}

static void breakers(sc_ctx_t *ctx)
{
    char text[600], source[24];
    json_t *j = get(ctx, SC_TO_GATEWAY, "/admin/breakers");
    const char *prov;
    json_t *b;
    json_object_foreach(j, prov, b)
    {
        const json_t *jl = json_object_get(b, "journal");
        snprintf(source, sizeof source, "breaker %s", prov);
        for (size_t i = 0; i < json_array_size(jl); i++) {
            const json_t *e = json_array_get(jl, i);
            if (!json_is_integer(json_object_get(e, "at_ms")))
                continue;
            snprintf(text, sizeof text, "%s -> %s: %s", cm_json_str(e, "from", "?"),
                     cm_json_str(e, "to", "?"), cm_json_str(e, "reason", ""));
            add(ctx, SC_PROC_GATEWAY, json_integer_value(json_object_get(e, "at_ms")), source,
                text);
        }
    }
    json_decref(j);
}

/* Every object with a numeric "at_ms" under v becomes an event (its other fields as
 * text): saga step logs, whatever their exact shape. */
static void walk_at_ms(sc_ctx_t *ctx, const json_t *v, const char *source, int depth)
{
    if (depth > 6)
        return;
    if (json_is_array(v)) {
        for (size_t i = 0; i < json_array_size(v); i++)
            walk_at_ms(ctx, json_array_get(v, i), source, depth + 1);
        return;
    }
    if (!json_is_object(v))
        return;
    const json_t *at = json_object_get(v, "at_ms");
    if (json_is_integer(at)) {
        const char *step = cm_json_str(v, "step", NULL);
        json_t *copy = step ? NULL : json_copy((json_t *)v);
        if (step) {
            /* a saga step: "book intent", "charge done: pi_123" */
            char t[600];
            const char *detail = cm_json_str(v, "detail", NULL);
            snprintf(t, sizeof t, "%s %s%s%s", step, cm_json_str(v, "phase", ""),
                     detail ? ": " : "", detail ? detail : "");
            add(ctx, SC_PROC_GATEWAY, json_integer_value(at), source, t);
        } else if (copy) {
            json_object_del(copy, "at_ms");
            char *t = cm_json_dumps(copy);
            if (t)
                add(ctx, SC_PROC_GATEWAY, json_integer_value(at), source, t);
            free(t);
            json_decref(copy);
        }
    }
    const char *k;
    json_t *x;
    json_object_foreach((json_t *)v, k, x)
    {
        if (json_is_array(x) || json_is_object(x))
            walk_at_ms(ctx, x, source, depth + 1);
    }
}

static void sagas(sc_ctx_t *ctx)
{
    char path[320];
    snprintf(path, sizeof path, "/admin/sagas?limit=%d", SC_COLLECT_SAGAS);
    json_t *j = get(ctx, SC_TO_GATEWAY, path);
    const json_t *list = json_is_array(j) ? j : json_object_get(j, "sagas");
    for (size_t i = 0; i < json_array_size(list) && i < SC_COLLECT_SAGAS; i++) {
        const json_t *s = json_array_get(list, i);
        const char *id = cm_json_str(s, "id", cm_json_str(s, "saga_id", NULL));
        if (!id || strpbrk(id, "/?#% ") || strlen(id) > 200)
            continue;
        snprintf(path, sizeof path, "/admin/sagas/%s", id);
        json_t *one = get(ctx, SC_TO_GATEWAY, path);
        walk_at_ms(ctx, one, "saga", 0);
        json_decref(one);
    }
    json_decref(j);
}

void sc_collect_events(sc_ctx_t *ctx)
{
    /* The scenario's deadline may have passed (that may be why it failed): the timeline
     * is worth a few more seconds. */
    int64_t saved = ctx->deadline_ms;
    ctx->deadline_ms = cm_clock_mono_ms() + 3 * SC_COLLECT_TIMEOUT_MS;
    int64_t t = cm_clock_mono_ms();
    if (*ctx->url[SC_TO_CONTROL])
        journal(ctx);
    if (*ctx->url[SC_TO_CHAOS])
        chaos(ctx);
    if (*ctx->url[SC_TO_GATEWAY]) {
        breakers(ctx);
        sagas(ctx);
    }
    ctx->deadline_ms = saved;
    sc_log(ctx, "runner", "timeline: %zu events recorded by the parts, collected in %lld ms",
           ctx->rc->nevents, (long long)(cm_clock_mono_ms() - t));
    for (int p = 0; p < SC_PROCS && !ctx->opts->attach; p++)
        if (ctx->sc->skew_ms[p])
            sc_log(ctx, "runner",
                   "timeline: the clock of the %s is off by %+.3f s; its events are shown "
                   "at the true time",
                   sc_proc_names[p], (double)ctx->sc->skew_ms[p] / 1000.0);
}
