/* sc_run.c - the life of one scenario: temp dir, children, steps, teardown. */
#include "sc_run.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cm_clock.h"
#include "sc_attach.h"
#include "sc_collect.h"
#include "sc_ctx.h"
#include "sc_duration.h"
#include "sc_files.h"
#include "sc_log.h"
#include "sc_parts.h"
#include "sc_pg.h"
#include "sc_signal.h"
#include "sc_steps.h"

static cm_err_t make_tmpdir(sc_ctx_t *ctx)
{
    const char *base = getenv("TMPDIR");
    char err[CM_ERR_LEN];
    if (!base || !*base)
        base = "/tmp";
    snprintf(ctx->tmpdir, sizeof ctx->tmpdir, "%s/scenario-XXXXXX", base);
    if (!mkdtemp(ctx->tmpdir)) {
        int e = errno;
        char tried[PATH_MAX];
        snprintf(tried, sizeof tried, "%s", ctx->tmpdir);
        ctx->tmpdir[0] = '\0';
        return sc_fail(ctx, RP_ERRORED, "startup", "cannot create a temp dir %s: %s", tried,
                       strerror(e));
    }
    /* As varnishtest does: a kept directory says which test it belonged to. */
    char path[PATH_MAX + 16], info[PATH_MAX * 2 + 600];
    int n = snprintf(info, sizeof info, "name: %s\nfile: %s\nseed: %lld\nspeed: %d\n",
                     ctx->sc->name, ctx->sc->path, ctx->seed, ctx->speed);
    snprintf(path, sizeof path, "%s/INFO", ctx->tmpdir);
    if (sc_files_write(path, info, (size_t)n, err) != CM_OK)
        return sc_fail(ctx, RP_ERRORED, "startup", "%s", err);
    snprintf(path, sizeof path, "%s/data", ctx->tmpdir);
    if (mkdir(path, 0700) != 0)
        return sc_fail(ctx, RP_ERRORED, "startup", "cannot create %s: %s", path, strerror(errno));
    if (sc_vars_set_str(ctx->vars, "tmp_dir", ctx->tmpdir) ||
        sc_vars_set_str(ctx->vars, "data_dir", path))
        return sc_fail(ctx, RP_ERRORED, "internal", "out of memory");
    return CM_OK;
}

/* "store": "postgres": a database of the scenario's own (sc_pg.h), named after the run so
 * parallel scenarios and runners never meet. */
static cm_err_t make_database(sc_ctx_t *ctx)
{
    static atomic_uint seq;
    char err[CM_ERR_LEN];
    snprintf(ctx->pg_db, sizeof ctx->pg_db, "sc_%d_%u", (int)getpid(),
             atomic_fetch_add(&seq, 1) + 1);
    if (sc_pg_create(ctx->pg_db, ctx->pg_url, sizeof ctx->pg_url, err) != CM_OK) {
        ctx->pg_db[0] = '\0';
        return sc_fail(ctx, RP_ERRORED, "startup", "%s", err);
    }
    sc_log(ctx, "runner", "database %s created for this scenario", ctx->pg_db);
    return CM_OK;
}

/* "server": "own": a PostgreSQL server of the scenario's own (sc_pg_server.h); its URL is
 * the gateway's GW_PG_URL. Not installed here: the scenario is skipped. */
static cm_err_t make_own_server(sc_ctx_t *ctx)
{
    char err[CM_ERR_LEN], log[PATH_MAX + 16];
    snprintf(log, sizeof log, "%s/ci-pg.log", ctx->tmpdir);
    cm_err_t rc = sc_pg_server_start(&ctx->pg_server, ctx->opts->ci_pg, log, err);
    if (rc == CM_ENOTFOUND) {
        snprintf(ctx->skip_why, sizeof ctx->skip_why, "%s", err);
        return rc;
    }
    if (rc)
        return sc_fail(ctx, RP_ERRORED, "startup", "PostgreSQL server of its own: %s", err);
    snprintf(ctx->pg_url, sizeof ctx->pg_url, "%s", ctx->pg_server.url);
    sc_log(ctx, "runner", "PostgreSQL server of its own in %s (ci/pg's output: %s)",
           ctx->pg_server.dir, log);
    return CM_OK;
}

/* The gateway's libpq connect_timeout (gw_store_pg_conn.c), in seconds of its clock. */
#define SC_PG_CONNECT_TIMEOUT_S 5

/* libpq measures connect_timeout on the process's clock, which a speed-up runs N times
 * faster: at x100 the gateway's 5 s leave a connection 50 ms of real time, less than a
 * sanitizer build needs for the password handshake (scenario 501 failed to start so). As
 * the simulators' answer timeouts do (sc_parts.c), it keeps its real length: the URL the
 * gateways get sets it to 5 s x N. A URL that sets connect_timeout itself is left alone. */
static cm_err_t keep_connect_timeout_real(sc_ctx_t *ctx)
{
    size_t n = strlen(ctx->pg_url);
    if (ctx->speed <= 1 || strstr(ctx->pg_url, "connect_timeout="))
        return CM_OK;
    if (snprintf(ctx->pg_url + n, sizeof ctx->pg_url - n, "%sconnect_timeout=%d",
                 strchr(ctx->pg_url, '?') ? "&" : "?",
                 SC_PG_CONNECT_TIMEOUT_S * ctx->speed) >= (int)(sizeof ctx->pg_url - n)) {
        ctx->pg_url[n] = '\0';
        return sc_fail(ctx, RP_ERRORED, "startup", "the PostgreSQL URL is too long");
    }
    sc_log(ctx, "runner",
           "PostgreSQL connect_timeout=%d s in the gateways' URL: %d s of real "
           "time at x%d",
           SC_PG_CONNECT_TIMEOUT_S * ctx->speed, SC_PG_CONNECT_TIMEOUT_S, ctx->speed);
    return CM_OK;
}

/* The highest speed-up on PostgreSQL. The gateway and simulators run on a sped-up clock,
 * but the database server runs on the real one, so each of its round trips counts N times
 * in simulated time: at x100 a booking's dozen statements under a loaded sanitizer build
 * took longer than the 60 s (0.6 s real) scenario 501 gives it. At x10 the same wait is 6 s
 * of real time, what the SQLite runs of those scenarios have at x100 for far cheaper
 * statements. Simulated semantics are unchanged; only the run takes longer. */
#define SC_PG_SPEED_MAX 10

/* Why the scenario does not run on this store here, or NULL when it can. */
static const char *store_skip(const sc_opts_t *o, const sc_scenario_t *sc, sc_store_t store,
                              char *why, size_t cap)
{
    if (o->attach)
        return NULL; /* the attached parts run on their own store */
    if (store == SC_STORE_SQLITE && sc->store_pg) {
        snprintf(why, cap,
                 "written for PostgreSQL (\"store\": \"postgres\"): not run with --store "
                 "sqlite");
        return why;
    }
    int pg = sc->store_pg || store == SC_STORE_POSTGRES;
    if (pg && !sc->store_pg_own && !sc_pg_available(why, cap))
        return why;
    return NULL;
}

/* ${run_id}: what makes the ids a scenario writes itself (a call id, an event id) its own.
 * On parts of its own the seed is enough (and keeps a run reproducible); on shared ones
 * (--attach) the same scenario runs again and again against one gateway, which remembers
 * every id it stored, so it is the seed, the time, the process and a count. */
static cm_err_t set_run_id(sc_ctx_t *ctx)
{
    static atomic_uint seq;
    char id[96];
    if (ctx->opts->attach)
        snprintf(id, sizeof id, "%lld_%llx_%x_%u", ctx->seed, (unsigned long long)cm_clock_now_ms(),
                 (unsigned)getpid(), atomic_fetch_add(&seq, 1) + 1);
    else
        snprintf(id, sizeof id, "%lld", ctx->seed);
    if (sc_vars_set_str(ctx->vars, "run_id", id))
        return sc_fail(ctx, RP_ERRORED, "internal", "out of memory");
    sc_log(ctx, "runner", "run_id %s", id);
    return CM_OK;
}

/* The least time "finally" gets, even when the steps used up the scenario's --timeout:
 * undoing a change to a shared deployment matters most after a failure. */
#define SC_FINALLY_MIN_MS 30000

/* Runs every "finally" step, each even when one before it failed; a failure there fails
 * the scenario (as an "also:" after an earlier one). */
static void run_finally(sc_ctx_t *ctx)
{
    const sc_scenario_t *sc = ctx->sc;
    if (!sc->nfinally)
        return;
    int64_t now = cm_clock_mono_ms();
    if (ctx->deadline_ms < now + SC_FINALLY_MIN_MS)
        ctx->deadline_ms = now + SC_FINALLY_MIN_MS;
    sc_log(ctx, "runner", "finally: %zu step(s)", sc->nfinally);
    for (size_t i = 0; i < sc->nfinally; i++) {
        sc_log_lanes(ctx, &sc->finally_steps[i]);
        if (sc_step_run(ctx, &sc->finally_steps[i]) != CM_OK)
            sc_log(ctx, "runner", "finally[%zu] failed; the next ones still run", i);
    }
}

/* A top-level step with expectations is an assertion of the scenario (one JUnit testcase
 * each). owns_failure: the scenario's failure happened in this step. */
static void record_assert(sc_ctx_t *ctx, const sc_step_t *s, rp_status_t st, int64_t ms,
                          int owns_failure)
{
    char label[240];
    if (!sc_steps_expectations(s, 1))
        return;
    sc_step_label(NULL, s, label, sizeof label);
    if (rp_case_add_assert(ctx->rc, label, st, (double)ms / 1000.0) != CM_OK)
        return; /* out of memory: the scenario's own testcase still tells */
    if (owns_failure)
        ctx->rc->failed_assert = ctx->rc->nasserts;
}

static int asserted(const sc_ctx_t *ctx, const sc_step_t *s)
{
    char label[240];
    sc_step_label(NULL, s, label, sizeof label);
    for (size_t i = 0; i < ctx->rc->nasserts; i++)
        if (!strcmp(ctx->rc->asserts[i].name, label))
            return 1;
    return 0;
}

rp_status_t sc_run_scenario(const sc_opts_t *o, const sc_scenario_t *sc, sc_store_t store,
                            rp_case_t *out, char kept[PATH_MAX])
{
    sc_ctx_t ctx;
    sc_undo_t undo;
    memset(&ctx, 0, sizeof ctx);
    memset(&undo, 0, sizeof undo);
    pthread_mutex_init(&undo.lock, NULL);
    ctx.opts = o;
    ctx.sc = sc;
    ctx.store = store;
    ctx.rc = out;
    ctx.t0_ms = cm_clock_mono_ms();
    ctx.deadline_ms = ctx.t0_ms + o->timeout_ms;
    ctx.seed = o->has_seed ? o->seed : sc->seed;
    ctx.speed = o->attach ? 1 : o->speed > 0 ? o->speed : sc->speed;
    int asked_speed = ctx.speed;
    if (ctx.speed > SC_PG_SPEED_MAX && (sc->store_pg || store == SC_STORE_POSTGRES))
        ctx.speed = SC_PG_SPEED_MAX;
    out->started_ms = cm_clock_now_ms();
    ctx.ref_real_ms = out->started_ms; /* simulated time starts as real time */
    out->seed = ctx.seed;
    out->speed = ctx.speed;
    kept[0] = '\0';

    sc_log(&ctx, "runner", "scenario \"%s\" from %s, seed %lld%s", sc->name, sc->path, ctx.seed,
           ctx.speed > 1 ? ", clock speed-up (libfaketime)" : "");
    if (ctx.speed > 1)
        sc_log(&ctx, "runner", "speed x%d: \"within\" and signature times are simulated",
               ctx.speed);
    if (o->gateway_cmd)
        sc_log(&ctx, "runner",
               "gateway under test: sh -c '%s' (--gateway-cmd), ready when GET %s answers 200",
               o->gateway_cmd, o->gateway_health);
    if (ctx.speed != asked_speed)
        sc_log(&ctx, "runner",
               "speed x%d asked, x%d on PostgreSQL: its server runs on the real clock", asked_speed,
               ctx.speed);
    cm_err_t rc = CM_OK;
    if (!(ctx.vars = sc_vars_new()) || !(ctx.http = cm_http_client_new()) ||
        sc_vars_set_int(ctx.vars, "seed", ctx.seed))
        rc = sc_fail(&ctx, RP_ERRORED, "internal", "out of memory");
    int skewed = 0;
    for (int p = 0; p < SC_PROCS; p++)
        skewed |= sc->skew_ms[p] != 0;
    if (!rc && (ctx.speed > 1 || skewed) && access(o->faketime_lib, R_OK) != 0)
        rc = sc_fail(&ctx, RP_ERRORED, "startup",
                     "%s needs libfaketime, not found at %s (install the Debian package "
                     "libfaketime, as ci/install-deps does, or pass --faketime-lib PATH%s)",
                     ctx.speed > 1 ? "a clock speed-up" : "a clock skew", o->faketime_lib,
                     ctx.speed > 1 ? "; --speed 1 runs in real time" : "");
    char why[256];
    if (!rc && store_skip(o, sc, store, why, sizeof why)) {
        /* Not a failure of the gateway: the bench lacks a database server here, or the
         * scenario was written for the other store. */
        sc_log(&ctx, "runner", "skipped: %s", why);
        if (rp_case_set_outcome(out, RP_SKIPPED, "skipped", why, NULL) != CM_OK)
            out->status = RP_SKIPPED;
        out->time_s = (double)(cm_clock_mono_ms() - ctx.t0_ms) / 1000.0;
        cm_http_client_free(&ctx.http);
        sc_vars_free(&ctx.vars);
        pthread_mutex_destroy(&undo.lock);
        return out->status;
    }
    int use_pg = !o->attach && (sc->store_pg || store == SC_STORE_POSTGRES);
    if (use_pg)
        sc_log(&ctx, "runner", "store: PostgreSQL%s%s",
               sc->store_pg_own ? ", a server of its own" : ", a database of its own",
               store == SC_STORE_POSTGRES ? " (--store postgres: every gateway config's "
                                            "\"store\" replaced)"
                                          : "");
    if (!rc)
        rc = make_tmpdir(&ctx);
    if (!rc && use_pg && sc->store_pg_own)
        rc = make_own_server(&ctx);
    else if (!rc && use_pg)
        rc = make_database(&ctx);
    if (!rc && use_pg)
        rc = keep_connect_timeout_real(&ctx);
    if (!rc)
        rc = set_run_id(&ctx);
    if (!rc && o->attach)
        rc = sc_parts_attach(&ctx);
    if (!rc && o->attach)
        rc = sc_attach_begin(&ctx, &undo);
    if (!rc && !o->attach)
        rc = sc_parts_start_simulators(&ctx);
    if (!rc && !o->attach && sc->chaos_links)
        rc = sc_parts_start_chaos(&ctx);
    for (int g = 0; !rc && !o->attach && g < sc->gateway_instances; g++)
        rc = sc_parts_gateway_start(&ctx, g, NULL);
    int started = !rc; /* the parts run: "finally" and the undo have something to act on */
    for (size_t i = 0; !rc && i < sc->nsteps; i++) {
        if (sc_signal_caught()) {
            rc = sc_fail(&ctx, RP_ERRORED, "interrupted",
                         "interrupted by signal %d before steps[%zu]", sc_signal_caught(), i);
            break;
        }
        if (cm_clock_mono_ms() >= ctx.deadline_ms) {
            char d[24];
            rc = sc_fail(&ctx, RP_FAILED, "timeout",
                         "the scenario's --timeout (%s) passed before steps[%zu]",
                         sc_duration_format(o->timeout_ms, d), i);
            break;
        }
        sc_log_lanes(&ctx, &sc->steps[i]);
        int was_failed = ctx.fail.set;
        int64_t t = cm_clock_mono_ms();
        rc = sc_step_run(&ctx, &sc->steps[i]);
        char when[64];
        snprintf(when, sizeof when, "during steps[%zu]", i);
        for (int g = 0; g < SC_GW_MAX; g++)
            if (!ctx.gw_may_exit[g] && sc_parts_check_alive(&ctx, &ctx.gws[g], when))
                rc = CM_EINVAL;
        if (sc_parts_check_alive(&ctx, &ctx.sim, when) ||
            sc_parts_check_alive(&ctx, &ctx.chaos, when))
            rc = CM_EINVAL;
        int owns_failure = rc && !was_failed && ctx.fail.set;
        if (owns_failure)
            sc_log_step_failed(&ctx, &sc->steps[i]);
        record_assert(&ctx, &sc->steps[i], rc ? ctx.fail.status : RP_PASSED, cm_clock_mono_ms() - t,
                      owns_failure);
    }
    /* The assertions a failure kept from running. */
    for (size_t i = 0; i < sc->nsteps; i++)
        if (sc_steps_expectations(&sc->steps[i], 1) && !asserted(&ctx, &sc->steps[i]))
            record_assert(&ctx, &sc->steps[i], RP_SKIPPED, 0, 0);
    if (started) {
        run_finally(&ctx);
        sc_attach_undo(&ctx);
    }
    if (!o->attach && !sc_signal_caught()) {
        /* A gateway under --gateway-cmd has no admin API, and the contract promises it will
         * not be asked: the timeline gets the simulators' records only (sc_collect's
         * gateway look-ups find no gateway URL and send nothing). */
        char gw_url[sizeof ctx.url[SC_TO_GATEWAY]];
        memcpy(gw_url, ctx.url[SC_TO_GATEWAY], sizeof gw_url);
        if (o->gateway_cmd)
            ctx.url[SC_TO_GATEWAY][0] = '\0';
        sc_collect_events(&ctx);
        memcpy(ctx.url[SC_TO_GATEWAY], gw_url, sizeof gw_url);
    }
    /* The gateway first: it must not see its providers vanish while it still works. */
    for (int g = 0; g < SC_GW_MAX; g++) {
        char actor[8];
        sc_parts_stop(&ctx, &ctx.gws[g], sc_parts_gw_actor(g, actor));
    }
    sc_parts_stop(&ctx, &ctx.chaos, "chaos");
    sc_parts_stop(&ctx, &ctx.sim, "sim");
    if (*ctx.pg_db) {
        /* Dropped while the next scenarios run (sc_pg.h): nothing uses it any more. */
        char err[CM_ERR_LEN];
        if (sc_pg_drop_later(ctx.pg_db, err) != CM_OK)
            sc_log(&ctx, "runner", "could not drop database %s: %s", ctx.pg_db, err);
        else
            sc_log(&ctx, "runner", "database %s handed to the dropper", ctx.pg_db);
    }
    if (*ctx.pg_server.dir) {
        char err[CM_ERR_LEN], log[PATH_MAX + 16], copy[PATH_MAX + 16];
        snprintf(log, sizeof log, "%s/ci-pg.log", ctx.tmpdir);
        snprintf(copy, sizeof copy, "%s/postgres.log", ctx.tmpdir);
        if (sc_pg_server_stop(&ctx.pg_server, o->ci_pg, log, copy, err) != CM_OK)
            sc_log(&ctx, "runner", "could not stop the PostgreSQL server of its own: %s", err);
        else
            sc_log(&ctx, "runner", "PostgreSQL server of its own stopped (its log: %s)", copy);
    }
    if (*ctx.skip_why && !ctx.fail.set &&
        rp_case_set_outcome(out, RP_SKIPPED, "skipped", ctx.skip_why, NULL) != CM_OK)
        out->status = RP_SKIPPED;

    if (ctx.fail.set && rp_case_set_outcome(out, ctx.fail.status, ctx.fail.type, ctx.fail.message,
                                            ctx.fail.detail.data) != CM_OK)
        out->status = ctx.fail.status; /* out of memory for the words, not for the verdict */
    if (*ctx.tmpdir) {
        if (o->keep || ctx.fail.set) {
            snprintf(kept, PATH_MAX, "%s", ctx.tmpdir);
            sc_log(&ctx, "runner", "temp dir kept: %s", ctx.tmpdir);
        } else if (sc_files_remove_tree(ctx.tmpdir) != CM_OK) {
            sc_log(&ctx, "runner", "could not remove all of %s", ctx.tmpdir);
        }
    }
    out->time_s = (double)(cm_clock_mono_ms() - ctx.t0_ms) / 1000.0;
    out->sim_time_s = out->time_s * ctx.speed;
    cm_buf_free(&ctx.fail.detail);
    cm_http_client_free(&ctx.http);
    sc_vars_free(&ctx.vars);
    pthread_mutex_destroy(&undo.lock);
    return out->status;
}
