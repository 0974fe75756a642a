/* sc_log.c - buffered scenario log and first-failure record. */
#include "sc_log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "cm_clock.h"

/* Notes a new iteration of the outermost repeat ("i=3" of "i=3 j=5"), or its end. Only in
 * the scenario's own thread: a concurrent repeat's workers run iterations side by side,
 * which no separator can show. Called with the log locked. */
static void note_iteration(sc_ctx_t *ctx, int64_t t_ms)
{
    const rp_case_t *c = ctx->rc;
    char it[sizeof c->iterations[0].label];
    snprintf(it, sizeof it, "%.*s", (int)strcspn(ctx->iter, " "), ctx->iter);
    if (ctx->worker || !strcmp(it, c->niterations ? c->iterations[c->niterations - 1].label : ""))
        return;
    SC_BEST_EFFORT(rp_case_add_iteration(ctx->rc, t_ms, it));
}

void sc_log(sc_ctx_t *ctx, const char *actor, const char *fmt, ...)
{
    char line[RP_MAX_LINE_LEN];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (ctx->log_lock)
        pthread_mutex_lock(ctx->log_lock);
    int64_t t = cm_clock_mono_ms() - ctx->t0_ms;
    note_iteration(ctx, t);
    SC_BEST_EFFORT(rp_case_add_line(ctx->rc, t, actor, line));
    if (ctx->log_lock)
        pthread_mutex_unlock(ctx->log_lock);
}

cm_err_t sc_fail(sc_ctx_t *ctx, rp_status_t status, const char *type, const char *fmt, ...)
{
    char msg[SC_ERR_LEN];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    sc_log(ctx, "runner", "%s: %s", ctx->fail.set ? "also" : "FAIL", msg);
    if (ctx->fail.set) {
        /* Later failures (a crash found at teardown after a failed expectation) are
         * worth a line in the diagnosis, not the headline. */
        ctx->fail.describing = 0;
        SC_BEST_EFFORT(cm_buf_printf(&ctx->fail.detail, "also: %s\n", msg));
        return CM_EINVAL;
    }
    ctx->fail.set = 1;
    ctx->fail.describing = 1;
    ctx->fail.status = status;
    snprintf(ctx->fail.type, sizeof ctx->fail.type, "%s", type);
    snprintf(ctx->fail.message, sizeof ctx->fail.message, "%s", msg);
    cm_buf_init(&ctx->fail.detail, SC_DETAIL_MAX);
    SC_BEST_EFFORT(cm_buf_printf(&ctx->fail.detail, "%s\n", msg));
    return CM_EINVAL;
}

void sc_fail_detail(sc_ctx_t *ctx, const char *fmt, ...)
{
    char buf[8192];
    va_list ap;
    if (!ctx->fail.describing)
        return;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    SC_BEST_EFFORT(cm_buf_addstr(&ctx->fail.detail, buf));
}

const char *sc_step_label(const sc_ctx_t *ctx, const sc_step_t *s, char *out, size_t cap)
{
    const char *it = ctx && *ctx->iter ? ctx->iter : NULL;
    if (s->name)
        snprintf(out, cap, "%s (%s \"%s\")%s%s%s", s->loc, sc_step_kind_name(s->kind), s->name,
                 it ? " [" : "", it ? it : "", it ? "]" : "");
    else
        snprintf(out, cap, "%s (%s)%s%s%s", s->loc, sc_step_kind_name(s->kind), it ? " [" : "",
                 it ? it : "", it ? "]" : "");
    return out;
}

void sc_fail_text(sc_ctx_t *ctx, const char *text)
{
    if (ctx->fail.describing)
        SC_BEST_EFFORT(cm_buf_addstr(&ctx->fail.detail, text));
}

/* What the scenario calls s: its name (quoted when asked), else "steps[3] (wait)". */
static const char *step_name(const sc_step_t *s, int quoted, char *out, size_t cap)
{
    if (s->name)
        snprintf(out, cap, quoted ? "\"%s\"" : "%s", s->name);
    else
        snprintf(out, cap, "%s (%s)", s->loc, sc_step_kind_name(s->kind));
    return out;
}

static void add_lanes(sc_ctx_t *ctx, const sc_step_t *s, const char *label, const char *group,
                      int depth)
{
    SC_BEST_EFFORT(rp_case_add_lane(ctx->rc, s->actor, label, group, depth));
    for (size_t k = 0; k < s->nchildren; k++) {
        const sc_step_t *in = &s->children[k];
        char own[SC_ERR_LEN];
        if (s->kind == SC_STEP_EXPECT)
            SC_BEST_EFFORT(rp_case_join_lane(ctx->rc, in->actor, s->actor));
        else
            add_lanes(ctx, in, step_name(in, 0, own, sizeof own), sc_step_kind_name(in->kind),
                      depth + 1);
    }
}

void sc_log_lanes(sc_ctx_t *ctx, const sc_step_t *s)
{
    char label[SC_ERR_LEN];
    add_lanes(ctx, s, step_name(s, 0, label, sizeof label), sc_step_kind_name(s->kind), 0);
}

/* The deepest step in s whose label (sc_step_label, which every step's failure message
 * starts with) starts msg, or NULL; *rest is what follows that label. */
static const sc_step_t *failed_in(const sc_step_t *s, const char *msg, const char **rest)
{
    char label[240]; /* as sc_step_run's, so that a long label is cut the same way */
    for (size_t k = 0; k < s->nchildren; k++) {
        const sc_step_t *f = failed_in(&s->children[k], msg, rest);
        if (f)
            return f;
    }
    size_t n = strlen(sc_step_label(NULL, s, label, sizeof label));
    if (strncmp(msg, label, n) != 0 || (msg[n] != ':' && strncmp(msg + n, " [", 2) != 0))
        return NULL;
    *rest = msg + n;
    return s;
}

/* A failed exchange's message ends with the first line of what was expected and found
 * (the detail's second line, indented) after the request made; that tail of msg, or NULL
 * when it does not end so. */
static const char *expected_found(const sc_ctx_t *ctx, const char *msg)
{
    static const char more[] = " (and more)";
    const char *d = ctx->fail.detail.data ? strchr(ctx->fail.detail.data, '\n') : NULL;
    if (!d)
        return NULL;
    d += 1 + strspn(d + 1, " ");
    size_t n = strcspn(d, "\n"), len = strlen(msg), m = sizeof more - 1;
    size_t tail = n + (len >= m && !strcmp(msg + len - m, more) ? m : 0);
    if (n == 0 || len < tail + 2)
        return NULL;
    const char *p = msg + len - tail;
    return !strncmp(p - 2, ": ", 2) && !strncmp(p, d, n) ? p : NULL;
}

void sc_log_step_failed(sc_ctx_t *ctx, const sc_step_t *s)
{
    /* Names cut to 300 bytes each, so the line fits a message with room for what failed. */
    char top[300], in[310] = "", iter[sizeof ctx->iter + 4] = "", line[sizeof ctx->fail.message];
    const char *rest = NULL, *msg = ctx->fail.message;
    const sc_step_t *f = failed_in(s, msg, &rest);
    SC_BEST_EFFORT(rp_case_fail_lane(ctx->rc, (f ? f : s)->actor));
    if (!f)
        return; /* the message names no step: it says what happened already */
    if (!strncmp(rest, " [", 2)) {
        size_t n = strcspn(rest + 2, "]");
        snprintf(iter, sizeof iter, " [%.*s]", (int)n, rest + 2);
        rest += 2 + n + (rest[2 + n] == ']');
    }
    if (strncmp(rest, ": ", 2) != 0)
        return;
    const char *what = expected_found(ctx, rest + 2);
    step_name(s, 1, top, sizeof top);
    if (f != s) {
        char inner[300];
        snprintf(in, sizeof in, " > %s", step_name(f, 1, inner, sizeof inner));
    }
    /* A wait's "did not hold within 120014 ms (5569 polls)" sits before what was found. */
    const char *held = what ? strstr(rest, " did not hold within ") : NULL;
    int nheld = held && held < what ? (int)(what - 2 - held) : 0;
    snprintf(line, sizeof line, "%s%s%s%s%s: %s%s%.*s", s->name ? s->loc : "", s->name ? " " : "",
             top, in, iter, what ? what : rest + 2, nheld ? ";" : "", nheld, held ? held : "");
    snprintf(ctx->fail.message, sizeof ctx->fail.message, "%s", line);
}
