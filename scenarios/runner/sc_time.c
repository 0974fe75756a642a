/* sc_time.c - simulated time for a scenario run under libfaketime. */
#include "sc_time.h"

#include <stdio.h>

#include "cm_clock.h"

int64_t sc_time_now_ms(const sc_ctx_t *ctx)
{
    int64_t now = cm_clock_now_ms();
    if (ctx->speed <= 1)
        return now;
    return ctx->ref_real_ms + (now - ctx->ref_real_ms) * ctx->speed;
}

int64_t sc_time_real_ms(const sc_ctx_t *ctx, int64_t sim_ms)
{
    if (ctx->speed <= 1 || sim_ms <= 0)
        return sim_ms;
    return (sim_ms + ctx->speed - 1) / ctx->speed;
}

int64_t sc_time_sim_ms(const sc_ctx_t *ctx, int64_t real_ms)
{
    return ctx->speed <= 1 ? real_ms : real_ms * ctx->speed;
}

void sc_time_faketime(const sc_ctx_t *ctx, int64_t skew_ms, char *out, size_t cap)
{
    /* libfaketime (with a rate) computes fake = start + rate * (real - start) + offset,
     * start being the child's own first moment. We want ref + rate * (real - ref), so
     * offset = (rate - 1) * (start - ref); "start" is now, a few ms before the child's
     * libfaketime initialises, which puts it (rate - 1) * those ms ahead (tens of ms). */
    int64_t start = cm_clock_now_ms();
    int64_t off_ms = (int64_t)(ctx->speed - 1) * (start - ctx->ref_real_ms);
    if (off_ms < 0)
        off_ms = 0;
    off_ms += skew_ms; /* a process whose clock is off by skew_ms ("chaos"."skew") */
    int64_t mag = off_ms < 0 ? -off_ms : off_ms;
    snprintf(out, cap, "%c%lld.%03lld x%d", off_ms < 0 ? '-' : '+', (long long)(mag / 1000),
             (long long)(mag % 1000), ctx->speed > 1 ? ctx->speed : 1);
}
