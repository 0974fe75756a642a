/* sc_log.c - buffered scenario log and first-failure record. */
#include "sc_log.h"

#include <stdarg.h>
#include <stdio.h>

#include "cm_clock.h"

void sc_log(sc_ctx_t *ctx, const char *actor, const char *fmt, ...)
{
    char line[RP_MAX_LINE_LEN];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (ctx->log_lock)
        pthread_mutex_lock(ctx->log_lock);
    SC_BEST_EFFORT(rp_case_add_line(ctx->rc, cm_clock_mono_ms() - ctx->t0_ms, actor, line));
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
