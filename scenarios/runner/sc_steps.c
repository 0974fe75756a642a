/* sc_steps.c - the table of step kinds (sc_step_kinds.h), running a step through it, and
 * the helpers every kind's run shares. */
#include "sc_steps.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cm_clock.h"
#include "cm_json.h"
#include "sc_http.h"
#include "sc_log.h"
#include "sc_match.h"
#include "sc_step_def.h"
#include "sc_time.h"
#include "sc_vars.h"

static const sc_step_def_t *const defs[SC_STEP__COUNT] = {
#define SC_STEP_KIND(e, key, def) [SC_STEP_##e] = &def,
#include "sc_step_kinds.h"
#undef SC_STEP_KIND
};

const sc_step_def_t *sc_step_def(sc_step_kind_t k)
{
    return (unsigned)k < SC_STEP__COUNT ? defs[k] : NULL;
}

const char *sc_step_kind_name(sc_step_kind_t k)
{
    return (unsigned)k < SC_STEP__COUNT ? defs[k]->key : "?";
}

cm_err_t sc_step_fail_var(sc_ctx_t *ctx, const char *label, const char *err)
{
    return sc_fail(ctx, RP_FAILED, "variable", "%s: %s", label, err);
}

int sc_step_status_ok(const sc_expect_t *e, long status)
{
    if (e->nstatuses == 0)
        return status >= 200 && status <= 299;
    for (size_t i = 0; i < e->nstatuses; i++)
        if (e->statuses[i] == status)
            return 1;
    return 0;
}

const char *sc_step_statuses_str(const sc_expect_t *e, char *out, size_t cap)
{
    if (e->nstatuses == 0) {
        snprintf(out, cap, "any 2xx");
    } else if (e->nstatuses == 1) {
        snprintf(out, cap, "%d", e->statuses[0]);
    } else {
        size_t n = (size_t)snprintf(out, cap, "one of [");
        for (size_t i = 0; i < e->nstatuses && n < cap; i++)
            n += (size_t)snprintf(out + n, cap - n, "%s%d", i ? ", " : "", e->statuses[i]);
        if (n < cap)
            snprintf(out + n, cap - n, "]");
    }
    return out;
}

/* The first line of diag without its indent, for the one-line failure message. */
void sc_step_first_line(const cm_buf_t *diag, char *out, size_t cap)
{
    const char *s = diag->data ? diag->data : "";
    while (*s == ' ')
        s++;
    snprintf(out, cap, "%.*s", (int)strcspn(s, "\n"), s);
}

cm_err_t sc_step_expand_spec(sc_ctx_t *ctx, const char *label, const json_t *in, json_t **out)
{
    char err[CM_ERR_LEN];
    *out = NULL;
    if (in && sc_vars_expand_json(ctx->vars, in, out, err) != CM_OK)
        return sc_step_fail_var(ctx, label, err);
    return CM_OK;
}

cm_err_t sc_step_capture(sc_ctx_t *ctx, const char *label, const json_t *cap, const sc_answer_t *a)
{
    const char *var;
    json_t *path;
    if (!cap)
        return CM_OK;
    json_object_foreach((json_t *)cap, var, path)
    {
        const char *p = json_string_value(path);
        const json_t *v = a->json ? sc_match_path(a->json, p) : NULL;
        if (!v) {
            char shown[SC_HTTP_SHOW + 128];
            sc_fail(ctx, RP_FAILED, "sc_step_capture",
                    "%s: sc_step_capture \"%s\": the answer has no \"%s\"", label, var, p);
            sc_fail_detail(ctx, "answer: %s\n", sc_answer_show(a, shown, sizeof shown));
            return CM_EINVAL;
        }
        json_t *copy = json_deep_copy(v);
        cm_err_t rc = copy ? sc_vars_set(ctx->vars, var, copy) : CM_ENOMEM;
        json_decref(copy);
        if (rc)
            return sc_fail(ctx, RP_ERRORED, "internal", "%s: sc_step_capture \"%s\": %s", label,
                           var, cm_strerror(rc));
        char *shown = cm_json_dumps(v);
        sc_log(ctx, "runner", "${%s} = %.200s", var, shown ? shown : "?");
        free(shown);
    }
    return CM_OK;
}

/* Percent-encodes a path segment (RFC 3986 unreserved characters pass). */
void sc_step_encode_segment(const char *in, char *out, size_t cap)
{
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)in; *p && n + 4 < cap; p++) {
        if (isalnum(*p) || strchr("-._~", *p))
            out[n++] = (char)*p;
        else
            n += (size_t)snprintf(out + n, cap - n, "%%%02X", *p);
    }
    out[n] = '\0';
}

/* Runs a repeat's children once, in the calling thread's context. */
cm_err_t sc_step_run_children(sc_ctx_t *ctx, const sc_step_t *s)
{
    for (size_t k = 0; k < s->nchildren; k++) {
        cm_err_t rc = sc_step_run(ctx, &s->children[k]);
        if (rc)
            return rc;
    }
    return CM_OK;
}

cm_err_t sc_step_run(sc_ctx_t *ctx, const sc_step_t *s)
{
    char label[240], iso[25];
    sc_step_label(ctx, s, label, sizeof label);
    /* The simulated now, for payloads that carry their own time (Cal.com createdAt). */
    int64_t now = sc_time_now_ms(ctx);
    if (sc_vars_set_int(ctx->vars, "now_ms", now) != CM_OK ||
        sc_vars_set_str(ctx->vars, "now_iso", cm_clock_iso8601(now, iso)) != CM_OK)
        return sc_fail(ctx, RP_ERRORED, "internal", "%s: out of memory", label);
    const sc_step_def_t *def = sc_step_def(s->kind);
    if (!def)
        return sc_fail(ctx, RP_ERRORED, "internal", "%s: unknown step kind", label);
    return def->run(ctx, s, label, s->actor);
}
