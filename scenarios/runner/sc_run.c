/* sc_run.c - the life of one scenario: temp dir, children, steps, teardown. */
#include "sc_run.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cm_clock.h"
#include "cm_codec.h"
#include "cm_json.h"
#include "sc_collect.h"
#include "sc_ctx.h"
#include "sc_duration.h"
#include "sc_files.h"
#include "sc_http.h"
#include "sc_log.h"
#include "sc_signal.h"
#include "sc_steps.h"
#include "sc_time.h"

/* A gateway config is a hand-written fixture. */
#define SC_CONFIG_MAX (1u << 20)
#define SC_MAX_ENV 64

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

/* Adds the last lines of a child's log to the diagnosis. */
static void add_tail(sc_ctx_t *ctx, const sc_proc_t *p)
{
    if (p->pid <= 0)
        return;
    char *tail = sc_proc_log_tail(p->log_path, SC_LOG_TAIL_LINES, "  ");
    sc_fail_detail(ctx, "last lines of %s:\n", p->log_path);
    sc_fail_text(ctx, !tail ? "  (cannot read it)\n" : *tail ? tail : "  (empty)\n");
    free(tail);
}

/* Reads a port out of a ready file. */
static int ready_port(const json_t *ready, const char *key)
{
    json_int_t v = json_integer_value(json_object_get(ready, key));
    return v > 0 && v < 65536 ? (int)v : 0;
}

static cm_err_t set_endpoint(sc_ctx_t *ctx, sc_target_t t, const char *name, int port)
{
    char var[32];
    snprintf(ctx->url[t], sizeof ctx->url[t], "http://127.0.0.1:%d", port);
    snprintf(var, sizeof var, "%s_url", name);
    cm_err_t rc = sc_vars_set_str(ctx->vars, var, ctx->url[t]);
    snprintf(var, sizeof var, "%s_port", name);
    if (!rc)
        rc = sc_vars_set_int(ctx->vars, var, port);
    return rc;
}

/* Appends LD_PRELOAD and FAKETIME for a child of kind p started now (see sc_time.h), when
 * the scenario speeds clocks up or puts this one off; nothing otherwise. */
static cm_err_t add_faketime_env(sc_ctx_t *ctx, sc_proc_kind_t p, char **env, size_t *nenv)
{
    char ft[64], line[PATH_MAX + 32];
    int64_t skew = ctx->opts->attach ? 0 : ctx->sc->skew_ms[p];
    if (ctx->speed <= 1 && !skew)
        return CM_OK;
    sc_time_faketime(ctx, skew, ft, sizeof ft);
    snprintf(line, sizeof line, "LD_PRELOAD=%s", ctx->opts->faketime_lib);
    if (!(env[*nenv] = strdup(line)))
        return CM_ENOMEM;
    (*nenv)++;
    snprintf(line, sizeof line, "FAKETIME=%s", ft);
    if (!(env[*nenv] = strdup(line)))
        return CM_ENOMEM;
    (*nenv)++;
    /* A sanitizer build wants its runtime first in the preload list and refuses to start
     * otherwise; libfaketime only wraps the clock calls, so the order does not matter. */
    const char *asan = getenv("ASAN_OPTIONS");
    snprintf(line, sizeof line, "ASAN_OPTIONS=%s%sverify_asan_link_order=0", asan ? asan : "",
             asan && *asan ? ":" : "");
    if (!(env[*nenv] = strdup(line)))
        return CM_ENOMEM;
    (*nenv)++;
    sc_log(ctx, "runner", "clock: LD_PRELOAD=%s FAKETIME=\"%s\"", ctx->opts->faketime_lib, ft);
    return CM_OK;
}

static cm_err_t start_child(sc_ctx_t *ctx, sc_proc_t *p, const char *name, const char *actor,
                            const char *const argv[], const char *const env[],
                            const char *ready_path, json_t **ready)
{
    char err[CM_ERR_LEN], log[PATH_MAX + 16];
    snprintf(log, sizeof log, "%s/%s.log", ctx->tmpdir, actor);
    if (sc_proc_start(p, name, argv, env, log, err) != CM_OK)
        return sc_fail(ctx, RP_ERRORED, "startup", "%s", err);
    sc_log(ctx, actor, "started %s (pid %d), log %s", argv[0], (int)p->pid, log);
    int64_t t = cm_clock_mono_ms();
    cm_err_t rc = sc_proc_wait_ready(p, ready_path, SC_READY_TIMEOUT_MS, ready, err);
    if (rc) {
        sc_fail(ctx, RP_ERRORED, sc_signal_caught() ? "interrupted" : "startup", "%s", err);
        add_tail(ctx, p);
        /* Reported: stop (or reap) it now, and let teardown skip it rather than report
         * the same death twice. */
        if (sc_proc_stop(p, SC_STOP_GRACE_MS, err) != CM_OK)
            sc_log(ctx, actor, "%s", err);
        p->pid = 0;
        return rc;
    }
    char *shown = cm_json_dumps(*ready);
    sc_log(ctx, actor, "ready in %lld ms: %s", (long long)(cm_clock_mono_ms() - t),
           shown ? shown : "");
    free(shown);
    return CM_OK;
}

static cm_err_t start_simulators(sc_ctx_t *ctx)
{
    char ready_path[PATH_MAX + 16], seed[32], speed[16];
    json_t *ready = NULL;
    snprintf(ready_path, sizeof ready_path, "%s/sim.ready", ctx->tmpdir);
    snprintf(seed, sizeof seed, "%lld", ctx->seed);
    /* The speed-up, so the providers' answer timeouts keep their real length (a gateway's
     * work does not speed up with the clock): a scenario means the same at any speed. */
    snprintf(speed, sizeof speed, "%d", ctx->speed > 1 ? ctx->speed : 1);
    const char *argv[] = {
        ctx->opts->simulators, "--ready-file", ready_path, "--seed", seed, "--speed", speed, NULL};
    char *env[4] = {NULL};
    size_t nenv = 0;
    cm_err_t rc = CM_OK;
    if (add_faketime_env(ctx, SC_PROC_SIMULATORS, env, &nenv) != CM_OK)
        rc = sc_fail(ctx, RP_ERRORED, "internal", "out of memory");
    if (!rc)
        rc = start_child(ctx, &ctx->sim, "simulators", "sim", argv, (const char *const *)env,
                         ready_path, &ready);
    for (size_t i = 0; i < nenv; i++)
        free(env[i]);
    if (rc)
        return rc;
    static const struct {
        sc_target_t t;
        const char *name;
    } eps[] = {{SC_TO_RETELL, "retell"},
               {SC_TO_CALCOM, "calcom"},
               {SC_TO_STRIPE, "stripe"},
               {SC_TO_CONTROL, "control"}};
    for (size_t i = 0; !rc && i < sizeof eps / sizeof eps[0]; i++) {
        int port = ready_port(ready, eps[i].name);
        if (!port)
            rc = sc_fail(ctx, RP_ERRORED, "startup",
                         "the simulators' ready file has no valid \"%s\" port", eps[i].name);
        else if (set_endpoint(ctx, eps[i].t, eps[i].name, port))
            rc = sc_fail(ctx, RP_ERRORED, "internal", "out of memory");
    }
    json_decref(ready);
    return rc;
}

/* Starts the chaos proxy (chaos/) with one link per proxied connection. The Cal.com and
 * Stripe links forward to the simulators and take over ${calcom_url} / ${stripe_url}, the
 * names gateway configs use, while the runner's own "to": "calcom" requests still go
 * straight to the simulator. The gateway link's upstream is set at each gateway start. */
static cm_err_t start_chaos(sc_ctx_t *ctx)
{
    static const sc_target_t upstream[SC_LINKS] = {SC_TO_CALCOM, SC_TO_STRIPE, SC_TO_GATEWAY};
    char ready_path[PATH_MAX + 16], seed[32], speed[16], links[SC_LINKS][96];
    const char *argv[10 + 2 * SC_LINKS] = {
        ctx->opts->chaos_proxy, "--ready-file", ready_path, "--seed", seed, "--speed", speed};
    size_t argc = 7;
    json_t *ready = NULL;
    snprintf(ready_path, sizeof ready_path, "%s/chaos.ready", ctx->tmpdir);
    snprintf(seed, sizeof seed, "%lld", ctx->seed);
    snprintf(speed, sizeof speed, "%d", ctx->speed > 1 ? ctx->speed : 1);
    for (int l = 0; l < SC_LINKS; l++) {
        if (!(ctx->sc->chaos_links & (1u << l)))
            continue;
        /* Port 9 (discard) until the gateway is up: nothing sends on that link before. */
        const char *up = ctx->url[upstream[l]];
        snprintf(links[l], sizeof links[l], "%s=%s", sc_link_names[l],
                 *up ? up + strlen("http://") : "127.0.0.1:9");
        argv[argc++] = "--link";
        argv[argc++] = links[l];
    }
    char *env[4] = {NULL};
    size_t nenv = 0;
    cm_err_t rc = CM_OK;
    if (add_faketime_env(ctx, SC_PROC_CHAOS, env, &nenv) != CM_OK)
        rc = sc_fail(ctx, RP_ERRORED, "internal", "out of memory");
    if (!rc)
        rc = start_child(ctx, &ctx->chaos, "chaos-proxy", "chaos", argv, (const char *const *)env,
                         ready_path, &ready);
    for (size_t i = 0; i < nenv; i++)
        free(env[i]);
    if (rc)
        return rc;
    int port = ready_port(ready, "control_port");
    if (!port || set_endpoint(ctx, SC_TO_CHAOS, "chaos", port))
        rc = sc_fail(ctx, RP_ERRORED, "startup",
                     "the chaos proxy's ready file has no valid \"control_port\"");
    for (int l = 0; !rc && l < SC_LINKS; l++) {
        if (!(ctx->sc->chaos_links & (1u << l)))
            continue;
        ctx->link_port[l] =
            ready_port(json_object_get(json_object_get(ready, "links"), sc_link_names[l]), "port");
        if (!ctx->link_port[l])
            rc = sc_fail(ctx, RP_ERRORED, "startup",
                         "the chaos proxy's ready file has no port for link \"%s\"",
                         sc_link_names[l]);
        else if (l != SC_LINK_GATEWAY) {
            /* Only the variables: ctx->url keeps the simulator's own address. */
            char var[32];
            snprintf(var, sizeof var, "%s_url", sc_link_names[l]);
            char url[64];
            snprintf(url, sizeof url, "http://127.0.0.1:%d", ctx->link_port[l]);
            snprintf(links[l], sizeof links[l], "%s_port", sc_link_names[l]);
            if (sc_vars_set_str(ctx->vars, var, url) ||
                sc_vars_set_int(ctx->vars, links[l], ctx->link_port[l]))
                rc = sc_fail(ctx, RP_ERRORED, "internal", "out of memory");
            else
                sc_log(ctx, "chaos", "link %s: gateway -> %s -> %s", sc_link_names[l], url,
                       ctx->url[upstream[l]]);
        }
    }
    json_decref(ready);
    return rc;
}

/* Points the chaos proxy's gateway link at the gateway just started. */
static cm_err_t relink_gateway(sc_ctx_t *ctx)
{
    char body[128], path[64], shown[SC_HTTP_SHOW + 128];
    snprintf(body, sizeof body, "{\"upstream\":\"%s\"}",
             ctx->url[SC_TO_GATEWAY] + strlen("http://"));
    snprintf(path, sizeof path, "/links/%s", sc_link_names[SC_LINK_GATEWAY]);
    sc_http_req_t r = {
        .to = SC_TO_CHAOS, .method = "PUT", .path = path, .body = body, .body_len = strlen(body)};
    sc_answer_t a;
    cm_err_t rc = CM_OK;
    sc_http_do(ctx, "runner", &r, 0, &a);
    if (a.transport != CM_OK || a.status != 200)
        rc = sc_fail(ctx, RP_ERRORED, "startup", "PUT %s: expected 200, got %s", path,
                     sc_answer_show(&a, shown, sizeof shown));
    sc_answer_free(&a);
    return rc;
}

/* Expands a gateway config (rel: the scenario's when NULL) into DIR/gateway.json
 * (DIR/gateway-N.json for the Nth start, so a kept dir shows each). */
static cm_err_t write_gateway_config(sc_ctx_t *ctx, const char *rel, char *out, size_t cap)
{
    char src[PATH_MAX], err[SC_ERR_LEN];
    char *text = NULL, *expanded = NULL;
    cm_err_t rc;
    if (sc_scenario_resolve(ctx->sc, rel ? rel : ctx->sc->gateway_config, src, sizeof src, err) !=
        CM_OK)
        return sc_fail(ctx, RP_ERRORED, "startup", "gateway config: %s", err);
    if (sc_files_read(src, SC_CONFIG_MAX, &text, NULL, err) != CM_OK)
        return sc_fail(ctx, RP_ERRORED, "startup", "gateway config: %s", err);
    if (sc_vars_expand(ctx->vars, text, &expanded, err) != CM_OK) {
        free(text);
        return sc_fail(ctx, RP_ERRORED, "startup", "gateway config %s: %s", src, err);
    }
    free(text);
    int n = ctx->gw_starts <= 1
                ? snprintf(out, cap, "%s/gateway.json", ctx->tmpdir)
                : snprintf(out, cap, "%s/gateway-%d.json", ctx->tmpdir, ctx->gw_starts);
    if (n >= (int)cap) {
        free(expanded);
        return sc_fail(ctx, RP_ERRORED, "startup", "temp dir path too long");
    }
    rc = sc_files_write(out, expanded, strlen(expanded), err);
    free(expanded);
    if (rc)
        return sc_fail(ctx, RP_ERRORED, "startup", "%s", err);
    sc_log(ctx, "runner", "gateway config %s expanded into %s", src, out);
    return CM_OK;
}

static cm_err_t connect_webhook(sc_ctx_t *ctx);

cm_err_t sc_run_gateway_start(sc_ctx_t *ctx, const char *config_rel)
{
    char config[PATH_MAX + 16], ready_path[PATH_MAX + 16], err[CM_ERR_LEN];
    char *env[SC_MAX_ENV + 4] = {NULL};
    size_t nenv = 0;
    json_t *ready = NULL;
    if (ctx->gw.pid > 0 && sc_proc_running(&ctx->gw))
        return sc_fail(ctx, RP_FAILED, "invalid",
                       "the gateway is running (pid %d): stop or kill it before starting it",
                       (int)ctx->gw.pid);
    ctx->gw_starts++;
    cm_err_t rc = write_gateway_config(ctx, config_rel, config, sizeof config);
    if (rc)
        return rc;
    /* A killed gateway leaves its ready file behind: it must not pass for the new one. */
    snprintf(ready_path, sizeof ready_path, "%s/gw.ready", ctx->tmpdir);
    if (unlink(ready_path) != 0 && errno != ENOENT)
        return sc_fail(ctx, RP_ERRORED, "startup", "cannot remove %s: %s", ready_path,
                       strerror(errno));
    if (ctx->gw_starts > 1) {
        /* The log continues in gw.log; a marker line shows where each instance begins. */
        char log[PATH_MAX + 16];
        snprintf(log, sizeof log, "%s/gw.log", ctx->tmpdir);
        FILE *f = fopen(log, "a");
        if (f) {
            fprintf(f, "=== scenario runner: gateway start #%d, config %s ===\n", ctx->gw_starts,
                    config);
            fclose(f);
        }
    }

    /* A fresh admin token per run: the gateway reads it from the environment (the config
     * says {"env":"GW_ADMIN_TOKEN"}), we send it as Bearer on /admin/ requests. */
    unsigned char raw[16];
    if (cm_random_bytes(raw, sizeof raw) != 0)
        return sc_fail(ctx, RP_ERRORED, "startup", "no random bytes for the admin token");
    cm_hex_encode(raw, sizeof raw, ctx->admin_token);
    size_t len = strlen("GW_ADMIN_TOKEN=") + sizeof ctx->admin_token;
    if (!(env[nenv] = malloc(len)))
        return sc_fail(ctx, RP_ERRORED, "internal", "out of memory");
    snprintf(env[nenv++], len, "GW_ADMIN_TOKEN=%s", ctx->admin_token);

    const char *k;
    json_t *v;
    json_object_foreach((json_t *)ctx->sc->env, k, v)
    {
        char *val = NULL;
        if (nenv >= SC_MAX_ENV) {
            rc = sc_fail(ctx, RP_ERRORED, "invalid", "\"env\": more than %d variables", SC_MAX_ENV);
            break;
        }
        if (sc_vars_expand(ctx->vars, json_string_value(v), &val, err) != CM_OK) {
            rc = sc_fail(ctx, RP_ERRORED, "startup", "\"env\" %s: %s", k, err);
            break;
        }
        len = strlen(k) + strlen(val) + 2;
        if ((env[nenv] = malloc(len)))
            snprintf(env[nenv++], len, "%s=%s", k, val);
        free(val);
        sc_log(ctx, "runner", "gateway env %s set", k); /* the value may be a secret */
    }
    if (!rc && (rc = add_faketime_env(ctx, SC_PROC_GATEWAY, env, &nenv)) != CM_OK)
        rc = sc_fail(ctx, RP_ERRORED, "internal", "out of memory");
    if (!rc) {
        const char *argv[] = {ctx->opts->gateway, "--config", config,
                              "--ready-file",     ready_path, NULL};
        rc = start_child(ctx, &ctx->gw, "gateway", "gw", argv, (const char *const *)env, ready_path,
                         &ready);
    }
    for (size_t i = 0; i < nenv; i++)
        free(env[i]);
    if (rc)
        return rc;
    int port = ready_port(ready, "port");
    json_decref(ready);
    if (!port)
        return sc_fail(ctx, RP_ERRORED, "startup",
                       "the gateway's ready file has no valid \"port\"");
    if (set_endpoint(ctx, SC_TO_GATEWAY, "gateway", port))
        return sc_fail(ctx, RP_ERRORED, "internal", "out of memory");
    if (ctx->link_port[SC_LINK_GATEWAY] && (rc = relink_gateway(ctx)) != CM_OK)
        return rc;
    return connect_webhook(ctx);
}

/* Points the Retell simulator's webhooks at the gateway. */
static cm_err_t connect_webhook(sc_ctx_t *ctx)
{
    char body[400], shown[SC_HTTP_SHOW + 128];
    if (*ctx->opts->attach_webhook)
        snprintf(body, sizeof body, "{\"url\":\"%s\"}", ctx->opts->attach_webhook);
    else if (ctx->link_port[SC_LINK_GATEWAY])
        snprintf(body, sizeof body, "{\"url\":\"http://127.0.0.1:%d/webhooks/retell\"}",
                 ctx->link_port[SC_LINK_GATEWAY]);
    else
        snprintf(body, sizeof body, "{\"url\":\"%s/webhooks/retell\"}", ctx->url[SC_TO_GATEWAY]);
    sc_http_req_t r = {.to = SC_TO_CONTROL,
                       .method = "PUT",
                       .path = "/control/retell/webhook",
                       .body = body,
                       .body_len = strlen(body)};
    sc_answer_t a;
    cm_err_t rc = CM_OK;
    sc_http_do(ctx, "runner", &r, 0, &a);
    if (a.transport != CM_OK || a.status < 200 || a.status > 299)
        rc =
            sc_fail(ctx, RP_ERRORED, "startup", "PUT /control/retell/webhook: expected 204, got %s",
                    sc_answer_show(&a, shown, sizeof shown));
    sc_answer_free(&a);
    return rc;
}

/* Attach mode: the parts run already; take their URLs and the admin token, and point the
 * Retell simulator at the gateway when its control port is known. */
static cm_err_t attach_parts(sc_ctx_t *ctx)
{
    static const char *const names[] = {"gateway", "control", "retell", "calcom", "stripe"};
    const sc_opts_t *o = ctx->opts;
    for (int t = 0; t < 5; t++) {
        if (!*o->attach_url[t])
            continue;
        char var[32];
        const char *hostport = strstr(o->attach_url[t], "://") + 3;
        const char *colon = strrchr(hostport, ':');
        int port = colon && !strchr(colon, '/')             ? atoi(colon + 1)
                   : !strncmp(o->attach_url[t], "https", 5) ? 443
                                                            : 80;
        snprintf(ctx->url[t], sizeof ctx->url[t], "%s", o->attach_url[t]);
        snprintf(var, sizeof var, "%s_url", names[t]);
        cm_err_t rc = sc_vars_set_str(ctx->vars, var, ctx->url[t]);
        snprintf(var, sizeof var, "%s_port", names[t]);
        if (rc || sc_vars_set_int(ctx->vars, var, port))
            return sc_fail(ctx, RP_ERRORED, "internal", "out of memory");
        sc_log(ctx, "runner", "attached to %s at %s", names[t], ctx->url[t]);
    }
    const char *tok = getenv("SC_ADMIN_TOKEN");
    if (!tok || !*tok)
        tok = getenv("GW_ADMIN_TOKEN");
    if (tok && strlen(tok) >= sizeof ctx->admin_token)
        return sc_fail(ctx, RP_ERRORED, "startup",
                       "the admin token ($SC_ADMIN_TOKEN) is longer than %zu characters",
                       sizeof ctx->admin_token - 1);
    snprintf(ctx->admin_token, sizeof ctx->admin_token, "%s", tok ? tok : "");
    if (!*ctx->admin_token)
        sc_log(ctx, "runner",
               "no $SC_ADMIN_TOKEN / $GW_ADMIN_TOKEN: /admin/ requests go "
               "without a valid token");
    return *ctx->url[SC_TO_CONTROL] ? connect_webhook(ctx) : CM_OK;
}

/* A child that died during a step fails the scenario right there, with its log. */
static cm_err_t check_alive(sc_ctx_t *ctx, sc_proc_t *p, const char *when)
{
    char how[96];
    if (p->pid <= 0 || sc_proc_running(p))
        return CM_OK;
    sc_proc_describe(p, how, sizeof how);
    int first = !ctx->fail.set;
    sc_fail(ctx, RP_FAILED, "process", "%s %s %s", p->name, how, when);
    if (first)
        add_tail(ctx, p);
    p->pid = 0; /* reported; teardown has nothing left to stop */
    return CM_EINVAL;
}

static void stop_child(sc_ctx_t *ctx, sc_proc_t *p, const char *actor)
{
    char err[CM_ERR_LEN];
    if (p->pid <= 0)
        return;
    int64_t t = cm_clock_mono_ms();
    if (sc_proc_stop(p, SC_STOP_GRACE_MS, err) != CM_OK) {
        int first = !ctx->fail.set;
        sc_fail(ctx, RP_FAILED, "process", "%s", err);
        if (first)
            add_tail(ctx, p);
    } else {
        sc_log(ctx, actor, "stopped in %lld ms", (long long)(cm_clock_mono_ms() - t));
    }
}

cm_err_t sc_run_gateway_stop(sc_ctx_t *ctx, const char *label)
{
    char err[CM_ERR_LEN];
    if (ctx->gw.pid <= 0)
        return sc_fail(ctx, RP_FAILED, "invalid",
                       "%s: the gateway is not running (nothing to stop)", label);
    int64_t t = cm_clock_mono_ms();
    cm_err_t rc = sc_proc_stop(&ctx->gw, SC_STOP_GRACE_MS, err);
    ctx->url[SC_TO_GATEWAY][0] = '\0';
    if (rc) {
        sc_fail(ctx, RP_FAILED, "process", "%s: %s", label, err);
        add_tail(ctx, &ctx->gw);
    } else {
        sc_log(ctx, "gw", "stopped in %lld ms (exit status 0)",
               (long long)(cm_clock_mono_ms() - t));
    }
    ctx->gw.pid = 0; /* stopped (or reported): teardown has nothing left to do */
    return rc ? CM_EINVAL : CM_OK;
}

cm_err_t sc_run_gateway_kill(sc_ctx_t *ctx, const char *label)
{
    char err[CM_ERR_LEN];
    if (ctx->gw.pid <= 0)
        return sc_fail(ctx, RP_FAILED, "invalid",
                       "%s: the gateway is not running (nothing to kill)", label);
    int64_t t = cm_clock_mono_ms();
    cm_err_t rc = sc_proc_kill(&ctx->gw, err);
    ctx->url[SC_TO_GATEWAY][0] = '\0';
    if (rc) {
        sc_fail(ctx, RP_FAILED, "process", "%s: %s", label, err);
        add_tail(ctx, &ctx->gw);
    } else {
        sc_log(ctx, "gw", "killed (SIGKILL to pid group %d), gone in %lld ms", (int)ctx->gw.pid,
               (long long)(cm_clock_mono_ms() - t));
    }
    ctx->gw.pid = 0;
    return rc ? CM_EINVAL : CM_OK;
}

cm_err_t sc_run_gateway_wait_exit(sc_ctx_t *ctx, const char *label, int64_t within_ms)
{
    char how[96];
    if (ctx->gw.pid <= 0)
        return sc_fail(ctx, RP_FAILED, "invalid", "%s: the gateway is not running", label);
    if (!ctx->gw_may_exit)
        return sc_fail(ctx, RP_FAILED, "invalid", "%s: wait_exit needs an earlier expect_exit step",
                       label);
    int64_t t0 = cm_clock_mono_ms();
    /* Polls the child (a condition with a deadline, never a fixed sleep). */
    while (sc_proc_running(&ctx->gw)) {
        if (cm_clock_mono_ms() - t0 >= within_ms) {
            sc_fail(ctx, RP_FAILED, "timeout", "%s: the gateway did not exit within %lld ms", label,
                    (long long)within_ms);
            add_tail(ctx, &ctx->gw);
            return CM_EINVAL;
        }
        cm_clock_sleep_ms(10);
    }
    sc_proc_describe(&ctx->gw, how, sizeof how);
    sc_log(ctx, "gw", "%s after %lld ms, as expected", how, (long long)(cm_clock_mono_ms() - t0));
    ctx->url[SC_TO_GATEWAY][0] = '\0';
    ctx->gw.pid = 0;
    ctx->gw_may_exit = 0;
    return CM_OK;
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

rp_status_t sc_run_scenario(const sc_opts_t *o, const sc_scenario_t *sc, rp_case_t *out,
                            char kept[PATH_MAX])
{
    sc_ctx_t ctx;
    memset(&ctx, 0, sizeof ctx);
    ctx.opts = o;
    ctx.sc = sc;
    ctx.rc = out;
    ctx.t0_ms = cm_clock_mono_ms();
    ctx.deadline_ms = ctx.t0_ms + o->timeout_ms;
    ctx.seed = o->has_seed ? o->seed : sc->seed;
    ctx.speed = o->attach ? 1 : o->speed > 0 ? o->speed : sc->speed;
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
    if (!rc)
        rc = make_tmpdir(&ctx);
    if (!rc && o->attach)
        rc = attach_parts(&ctx);
    if (!rc && !o->attach)
        rc = start_simulators(&ctx);
    if (!rc && !o->attach && sc->chaos_links)
        rc = start_chaos(&ctx);
    if (!rc && !o->attach)
        rc = sc_run_gateway_start(&ctx, NULL);
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
        if ((!ctx.gw_may_exit && check_alive(&ctx, &ctx.gw, when)) ||
            check_alive(&ctx, &ctx.sim, when) || check_alive(&ctx, &ctx.chaos, when))
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
    if (!o->attach && !sc_signal_caught())
        sc_collect_events(&ctx);
    /* The gateway first: it must not see its providers vanish while it still works. */
    stop_child(&ctx, &ctx.gw, "gw");
    stop_child(&ctx, &ctx.chaos, "chaos");
    stop_child(&ctx, &ctx.sim, "sim");

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
    return out->status;
}
