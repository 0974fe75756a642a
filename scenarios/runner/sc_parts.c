/* sc_parts.c - the parts a scenario drives, as child processes: start, attach, stop. */
#include "sc_parts.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cm_clock.h"
#include "cm_codec.h"
#include "cm_json.h"
#include "sc_files.h"
#include "sc_http.h"
#include "sc_log.h"
#include "sc_signal.h"
#include "sc_time.h"

/* A gateway config is a hand-written fixture. */
#define SC_CONFIG_MAX (1u << 20)
#define SC_MAX_ENV 64

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

cm_err_t sc_parts_start_simulators(sc_ctx_t *ctx)
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
cm_err_t sc_parts_start_chaos(sc_ctx_t *ctx)
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

const char *sc_parts_gw_actor(int inst, char out[8])
{
    if (inst == 0)
        snprintf(out, 8, "gw");
    else
        snprintf(out, 8, "gw%d", inst % 100);
    return out;
}

/* Points the chaos proxy's gateway link at the instances running now (one: "upstream";
 * several: "upstreams", taken in turn per connection, as a load balancer would). */
static cm_err_t relink_gateway(sc_ctx_t *ctx)
{
    char path[64], shown[SC_HTTP_SHOW + 128];
    json_t *ups = json_array(), *body = NULL;
    for (int g = 0; ups && g < SC_GW_MAX; g++) {
        char hp[32];
        snprintf(hp, sizeof hp, "127.0.0.1:%d", ctx->gw_port[g]);
        if (ctx->gw_port[g] && json_array_append_new(ups, json_string(hp)))
            break;
    }
    if (ups && json_array_size(ups) == 1)
        body = json_pack("{s:O}", "upstream", json_array_get(ups, 0));
    else if (ups && json_array_size(ups) > 1)
        body = json_pack("{s:O}", "upstreams", ups);
    json_decref(ups);
    if (!body) /* none running (all stopped): the link keeps the last, which refuses */
        return CM_OK;
    snprintf(path, sizeof path, "/links/%s", sc_link_names[SC_LINK_GATEWAY]);
    sc_answer_t a;
    cm_err_t rc = sc_http_send_json(ctx, "runner", SC_TO_CHAOS, "PUT", path, body, &a);
    json_decref(body);
    if (rc)
        return sc_fail(ctx, RP_ERRORED, "internal", "out of memory");
    if (a.transport != CM_OK || a.status != 200)
        rc = sc_fail(ctx, RP_ERRORED, "startup", "PUT %s: expected 200, got %s", path,
                     sc_answer_show(&a, shown, sizeof shown));
    sc_answer_free(&a);
    return rc;
}

/* --store postgres, or the scenario's "store": "postgres": the config's "store" member becomes the
 * PostgreSQL one (the URL from GW_PG_URL, which the runner sets to the scenario's own database),
 * whatever it was; the rest of the config is kept as written. Edited as JSON, not as text, so that
 * a "store" written over several lines, or absent, is handled alike. *text is replaced (freed) on
 * success and freed on error. */
static cm_err_t store_on_postgres(sc_ctx_t *ctx, const char *src, char **text)
{
    char err[CM_ERR_LEN];
    json_t *root = NULL, *store = NULL;
    cm_err_t rc = cm_json_parse(*text, strlen(*text), SC_CONFIG_MAX, &root, err);
    free(*text);
    *text = NULL;
    if (rc)
        return sc_fail(ctx, RP_ERRORED, "startup", "gateway config %s: %s", src, err);
    if (!json_is_object(root)) {
        json_decref(root);
        return sc_fail(ctx, RP_ERRORED, "startup", "gateway config %s: not a JSON object", src);
    }
    store = json_pack("{s:s, s:{s:s}}", "backend", "postgres", "url", "env", "GW_PG_URL");
    if (!store || json_object_set_new(root, "store", store) != 0 ||
        !(*text = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER)))
        rc = sc_fail(ctx, RP_ERRORED, "internal", "out of memory");
    json_decref(root);
    return rc;
}

/* Expands a gateway config (rel: the scenario's when NULL) for instance inst into
 * DIR/gateway.json (DIR/gateway-N.json for the Nth start, so a kept dir shows each;
 * DIR/gateway<inst>... for the other instances). */
static cm_err_t write_gateway_config(sc_ctx_t *ctx, int inst, const char *rel, char *out,
                                     size_t cap)
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
    /* The scenario's own "store": "postgres" too: a database made for the scenario is
     * the gateways' store, whatever the fixture says (a fixture written for SQLite would
     * otherwise give each instance a file of its own, and instances that share nothing). */
    if ((ctx->store == SC_STORE_POSTGRES || ctx->sc->store_pg) && !ctx->opts->attach &&
        (rc = store_on_postgres(ctx, src, &expanded)) != CM_OK)
        return rc;
    char tag[8] = "";
    if (inst)
        snprintf(tag, sizeof tag, "%d", inst % 100);
    int n = ctx->gw_starts[inst] <= 1 ? snprintf(out, cap, "%s/gateway%s.json", ctx->tmpdir, tag)
                                      : snprintf(out, cap, "%s/gateway%s-%d.json", ctx->tmpdir, tag,
                                                 ctx->gw_starts[inst]);
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
static cm_err_t gateway_up(sc_ctx_t *ctx, int inst, int port);
static cm_err_t foreign_start(sc_ctx_t *ctx, int inst, const char *actor);

/* ${data_dir} for instance inst: DIR/data for the first, DIR/data<inst> (made here) for the
 * others, so instances on a file store do not share it (SQLite serves one process; a
 * shared store is a database server the config names). */
static cm_err_t instance_data_dir(sc_ctx_t *ctx, int inst)
{
    char path[PATH_MAX + 16];
    if (inst == 0)
        snprintf(path, sizeof path, "%s/data", ctx->tmpdir);
    else
        snprintf(path, sizeof path, "%s/data%d", ctx->tmpdir, inst);
    if (inst && mkdir(path, 0700) != 0 && errno != EEXIST)
        return sc_fail(ctx, RP_ERRORED, "startup", "cannot create %s: %s", path, strerror(errno));
    if (sc_vars_set_str(ctx->vars, "data_dir", path) ||
        sc_vars_set_int(ctx->vars, "instance", inst))
        return sc_fail(ctx, RP_ERRORED, "internal", "out of memory");
    return CM_OK;
}

cm_err_t sc_parts_gateway_start(sc_ctx_t *ctx, int inst, const char *config_rel)
{
    char config[PATH_MAX + 16], ready_path[PATH_MAX + 16], err[CM_ERR_LEN], actor[8];
    char *env[SC_MAX_ENV + 4] = {NULL};
    size_t nenv = 0;
    json_t *ready = NULL;
    sc_proc_t *gw = &ctx->gws[inst];
    sc_parts_gw_actor(inst, actor);
    if (gw->pid > 0 && sc_proc_running(gw))
        return sc_fail(ctx, RP_FAILED, "invalid",
                       "the gateway%s%s is running (pid %d): stop or kill it before starting it",
                       inst ? " instance " : "", inst ? actor + 2 : "", (int)gw->pid);
    ctx->gw_starts[inst]++;
    cm_err_t rc = instance_data_dir(ctx, inst);
    /* A gateway not ours gets the contract environment instead of a config (sc_attach.c
     * skips the scenarios that need another one). */
    if (!rc && ctx->opts->gateway_cmd)
        return foreign_start(ctx, inst, actor);
    if (!rc)
        rc = write_gateway_config(ctx, inst, config_rel, config, sizeof config);
    /* The variables go back to the first instance's, which steps see. */
    if (inst) {
        cm_err_t back = instance_data_dir(ctx, 0);
        rc = rc ? rc : back;
    }
    if (rc)
        return rc;
    /* A killed gateway leaves its ready file behind: it must not pass for the new one. */
    snprintf(ready_path, sizeof ready_path, "%s/%s.ready", ctx->tmpdir, actor);
    if (unlink(ready_path) != 0 && errno != ENOENT)
        return sc_fail(ctx, RP_ERRORED, "startup", "cannot remove %s: %s", ready_path,
                       strerror(errno));
    if (ctx->gw_starts[inst] > 1) {
        /* The log continues in gw.log; a marker line shows where each process begins. */
        char log[PATH_MAX + 16];
        snprintf(log, sizeof log, "%s/%s.log", ctx->tmpdir, actor);
        FILE *f = fopen(log, "a");
        if (f) {
            fprintf(f, "=== scenario runner: gateway start #%d, config %s ===\n",
                    ctx->gw_starts[inst], config);
            fclose(f);
        }
    }

    /* A fresh admin token per run, the same for every instance: the gateway reads it from
     * the environment (the config says {"env":"GW_ADMIN_TOKEN"}), we send it as Bearer on
     * /admin/ requests. */
    unsigned char raw[16];
    if (!*ctx->admin_token && cm_random_bytes(raw, sizeof raw) != 0)
        return sc_fail(ctx, RP_ERRORED, "startup", "no random bytes for the admin token");
    if (!*ctx->admin_token)
        cm_hex_encode(raw, sizeof raw, ctx->admin_token);
    size_t len = strlen("GW_ADMIN_TOKEN=") + sizeof ctx->admin_token;
    if (!(env[nenv] = malloc(len)))
        return sc_fail(ctx, RP_ERRORED, "internal", "out of memory");
    snprintf(env[nenv++], len, "GW_ADMIN_TOKEN=%s", ctx->admin_token);
    if (*ctx->pg_url) { /* the scenario's own database (sc_pg.h), whatever the caller's was */
        len = strlen("GW_PG_URL=") + strlen(ctx->pg_url) + 1;
        if (!(env[nenv] = malloc(len))) {
            free(env[0]);
            return sc_fail(ctx, RP_ERRORED, "internal", "out of memory");
        }
        snprintf(env[nenv++], len, "GW_PG_URL=%s", ctx->pg_url);
    }

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
        rc = start_child(ctx, gw, "gateway", actor, argv, (const char *const *)env, ready_path,
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
    return gateway_up(ctx, inst, port);
}

/* A gateway instance listens on port: its URL variables, the chaos proxy's gateway link
 * and the simulators' webhooks follow it. */
static cm_err_t gateway_up(sc_ctx_t *ctx, int inst, int port)
{
    cm_err_t rc;
    char var[32], url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d", port);
    snprintf(var, sizeof var, "gateway_url_%d", inst);
    ctx->gw_port[inst] = port;
    if ((inst == 0 && set_endpoint(ctx, SC_TO_GATEWAY, "gateway", port)) ||
        sc_vars_set_str(ctx->vars, var, url) ||
        (snprintf(var, sizeof var, "gateway_port_%d", inst), sc_vars_set_int(ctx->vars, var, port)))
        return sc_fail(ctx, RP_ERRORED, "internal", "out of memory");
    if (ctx->link_port[SC_LINK_GATEWAY] && (rc = relink_gateway(ctx)) != CM_OK)
        return rc;
    return connect_webhook(ctx);
}

/* ---- a gateway that is not ours (--gateway-cmd) --------------------------------------- */

/* The readiness poll's pace and the most one poll may take (a gateway that accepts and
 * never answers must not use up the whole ready deadline in one request). */
#define SC_FOREIGN_POLL_MS 20
#define SC_FOREIGN_POLL_TIMEOUT_MS 1000
/* Room for the expanded command. */
#define SC_FOREIGN_CMD_MAX 16384

/* Lowest port BB_PORT is taken from; below it are the well-known and registered services. */
#define SC_FOREIGN_PORT_MIN 10000

/* Whether port is free on 127.0.0.1 now (bound and released). */
static int port_free(int port)
{
    struct sockaddr_in a;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons((uint16_t)port);
    int ok = fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0;
    if (fd >= 0)
        close(fd);
    return ok;
}

/* A port for BB_PORT, which the gateway under test binds itself a moment later: so it is
 * taken from below the kernel's ephemeral range (ip_local_port_range), where every other
 * part of a run binds (port 0). Taken from inside it, a simulator of another test started
 * meanwhile got the same port: the gateway could not listen, and the readiness probe was
 * answered by that simulator (seen in CI). Chosen at random, so runners in parallel seldom
 * try the same one, and checked free. */
static int free_port(char *err)
{
    int lo = 32768, hi = 60999;
    FILE *f = fopen("/proc/sys/net/ipv4/ip_local_port_range", "r");
    if (f) {
        if (fscanf(f, "%d %d", &lo, &hi) != 2)
            lo = 32768;
        fclose(f);
    }
    int top = lo - 1 > SC_FOREIGN_PORT_MIN ? lo - 1 : 65535;
    int bottom = lo - 1 > SC_FOREIGN_PORT_MIN ? SC_FOREIGN_PORT_MIN : hi + 1;
    if (top <= bottom) {
        cm_errf(err, "no port range outside the ephemeral one (%d-%d) for the gateway", lo, hi);
        return 0;
    }
    /* Not a scenario's random choice (no seed): which free port is used changes nothing. */
    uint64_t x = (uint64_t)cm_clock_mono_ns() ^ ((uint64_t)getpid() << 32);
    for (int i = 0; i < 200; i++) {
        x = x * 6364136223846793005ULL + 1442695040888963407ULL;
        int port = bottom + (int)((x >> 33) % (uint64_t)(top - bottom + 1));
        if (port_free(port))
            return port;
    }
    cm_errf(err, "no free port for the gateway in %d-%d after 200 tries", bottom, top);
    return 0;
}

/* Appends "NAME=value" to env (SC_MAX_ENV + 4 slots); value may hold ${...}. */
static cm_err_t add_env(sc_ctx_t *ctx, char **env, size_t *nenv, const char *name,
                        const char *value)
{
    char *val = NULL, err[CM_ERR_LEN];
    if (*nenv >= SC_MAX_ENV)
        return sc_fail(ctx, RP_ERRORED, "internal", "contract environment: too many variables");
    if (sc_vars_expand(ctx->vars, value, &val, err) != CM_OK)
        return sc_fail(ctx, RP_ERRORED, "startup", "contract environment %s: %s", name, err);
    size_t len = strlen(name) + strlen(val) + 2;
    char *line = malloc(len);
    if (line) {
        snprintf(line, len, "%s=%s", name, val);
        env[(*nenv)++] = line;
    }
    free(val);
    return line ? CM_OK : sc_fail(ctx, RP_ERRORED, "internal", "out of memory");
}

/* The contract environment (docs/contract.md): what fixtures/gateway/default.json says to
 * our gateway, as variables any gateway can read. The URLs are the ones a config's
 * ${calcom_url} gets: the chaos proxy's link when the scenario has one. */
static cm_err_t contract_env(sc_ctx_t *ctx, int port, char **env, size_t *nenv)
{
    static const char *const fixed[][2] = {
        {"BB_LISTEN_ADDR", "127.0.0.1"},
        {"BB_DATA_DIR", "${data_dir}"},
        {"BB_TENANT_ID", "acme"},
        {"BB_RETELL_URL", "${retell_url}"},
        {"BB_RETELL_API_KEY", "key_sim_retell"},
        {"BB_RETELL_AGENT_ID", "agent_acme_frontdesk"},
        {"BB_CALCOM_URL", "${calcom_url}"},
        {"BB_CALCOM_API_KEY", "cal_sim_key"},
        {"BB_CALCOM_EVENT_TYPE_ID", "101"},
        {"BB_CALCOM_WEBHOOK_SECRET", "calsecret_sim"},
        {"BB_STRIPE_URL", "${stripe_url}"},
        {"BB_STRIPE_API_KEY", "sk_test_sim"},
        {"BB_STRIPE_WEBHOOK_SECRET", "whsec_sim_secret"},
        {"BB_STRIPE_CURRENCY", "eur"},
        {"BB_STRIPE_PAYMENT_METHOD", "pm_card_visa"},
        {"BB_SEED", "${seed}"},
    };
    char num[16];
    snprintf(num, sizeof num, "%d", port);
    cm_err_t rc = add_env(ctx, env, nenv, "BB_PORT", num);
    for (size_t i = 0; !rc && i < sizeof fixed / sizeof fixed[0]; i++)
        rc = add_env(ctx, env, nenv, fixed[i][0], fixed[i][1]);
    return rc;
}

/* Polls GET --gateway-health until it answers 200, the gateway dies, the ready deadline
 * passes or the runner is interrupted; a failure is recorded with the gateway's log tail
 * and the gateway stopped. */
static cm_err_t foreign_wait_ready(sc_ctx_t *ctx, sc_proc_t *gw, const char *actor, int port)
{
    char err[CM_ERR_LEN], how[96], shown[SC_HTTP_SHOW + 128] = "no answer yet";
    int64_t t0 = cm_clock_mono_ms(), deadline = t0 + SC_READY_TIMEOUT_MS;
    sc_http_req_t r = {.to = SC_TO_GATEWAY,
                       .method = "GET",
                       .path = ctx->opts->gateway_health,
                       .timeout_ms = SC_FOREIGN_POLL_TIMEOUT_MS};
    cm_err_t rc = CM_OK;
    snprintf(ctx->url[SC_TO_GATEWAY], sizeof ctx->url[SC_TO_GATEWAY], "http://127.0.0.1:%d", port);
    for (;;) {
        sc_answer_t a;
        sc_http_do(ctx, actor, &r, 1, &a);
        int ok = a.transport == CM_OK && a.status == 200;
        sc_answer_show(&a, shown, sizeof shown);
        sc_answer_free(&a);
        if (ok) {
            sc_log(ctx, actor, "ready in %lld ms: GET %s answered 200",
                   (long long)(cm_clock_mono_ms() - t0), r.path);
            return CM_OK;
        }
        if (!sc_proc_running(gw)) {
            sc_proc_describe(gw, how, sizeof how);
            rc = sc_fail(ctx, RP_ERRORED, "startup",
                         "the gateway under test (--gateway-cmd) %s before GET %s answered 200 "
                         "(last: %s)",
                         how, r.path, shown);
            break;
        }
        if (sc_signal_caught()) {
            rc = sc_fail(ctx, RP_ERRORED, "interrupted",
                         "interrupted while waiting for the gateway under test to be ready");
            break;
        }
        if (cm_clock_mono_ms() >= deadline) {
            rc = sc_fail(ctx, RP_ERRORED, "startup",
                         "the gateway under test (--gateway-cmd) was not ready within %d ms: "
                         "GET http://127.0.0.1:%d%s last gave %s",
                         SC_READY_TIMEOUT_MS, port, r.path, shown);
            break;
        }
        /* Pacing a poll; the 200 is the event. */
        cm_clock_sleep_ms(SC_FOREIGN_POLL_MS);
    }
    ctx->url[SC_TO_GATEWAY][0] = '\0';
    add_tail(ctx, gw);
    if (sc_proc_stop(gw, SC_STOP_GRACE_MS, err) != CM_OK)
        sc_log(ctx, actor, "%s", err);
    gw->pid = 0; /* reported: teardown has nothing left to stop */
    return rc;
}

/* Starts `sh -c <--gateway-cmd>` ({port}, {data_dir} expanded) in its own process group,
 * from the runner's directory, with the contract environment on a free port and the
 * instance's data dir (the same across restarts), output to the gateway's log. */
static cm_err_t foreign_start(sc_ctx_t *ctx, int inst, const char *actor)
{
    char err[CM_ERR_LEN], log[PATH_MAX + 16];
    char *env[SC_MAX_ENV + 4] = {NULL}, *cmd = NULL;
    size_t nenv = 0;
    sc_proc_t *gw = &ctx->gws[inst];
    const json_t *dd = sc_vars_lookup(ctx->vars, "data_dir");
    int port = free_port(err);
    if (!port)
        return sc_fail(ctx, RP_ERRORED, "startup", "%s", err);
    cm_err_t rc = contract_env(ctx, port, env, &nenv);
    if (!rc && (rc = add_faketime_env(ctx, SC_PROC_GATEWAY, env, &nenv)) != CM_OK)
        rc = sc_fail(ctx, RP_ERRORED, "internal", "out of memory");
    if (!rc && !(cmd = malloc(SC_FOREIGN_CMD_MAX)))
        rc = sc_fail(ctx, RP_ERRORED, "internal", "out of memory");
    if (!rc && sc_opts_gateway_cmd_expand(ctx->opts->gateway_cmd, port,
                                          json_string_value(dd) ? json_string_value(dd) : "", cmd,
                                          SC_FOREIGN_CMD_MAX) != CM_OK)
        rc = sc_fail(ctx, RP_ERRORED, "startup", "--gateway-cmd: longer than %d bytes expanded",
                     SC_FOREIGN_CMD_MAX);
    snprintf(log, sizeof log, "%s/%s.log", ctx->tmpdir, actor);
    if (!rc && ctx->gw_starts[inst] > 1) {
        FILE *f = fopen(log, "a");
        if (f) {
            fprintf(f, "=== scenario runner: gateway start #%d, sh -c %s ===\n",
                    ctx->gw_starts[inst], cmd);
            fclose(f);
        }
    }
    if (!rc) {
        const char *argv[] = {"/bin/sh", "-c", cmd, NULL};
        if (sc_proc_start(gw, "gateway under test", argv, (const char *const *)env, log, err) !=
            CM_OK)
            rc = sc_fail(ctx, RP_ERRORED, "startup", "%s", err);
        else
            sc_log(ctx, actor, "started sh -c '%s' (pid %d) on port %d, data dir %s, log %s", cmd,
                   (int)gw->pid, port, json_string_value(dd) ? json_string_value(dd) : "?", log);
    }
    for (size_t i = 0; i < nenv; i++)
        free(env[i]);
    free(cmd);
    if (!rc)
        rc = foreign_wait_ready(ctx, gw, actor, port);
    return rc ? rc : gateway_up(ctx, inst, port);
}

/* Stops a gateway under test: SIGTERM to its group, SIGKILL after the grace period. Its
 * exit status is not judged (the contract asks for none); that it needed SIGKILL is
 * logged. A gateway that had died before, or survives SIGKILL, fails the scenario. */
static cm_err_t foreign_stop(sc_ctx_t *ctx, sc_proc_t *p, const char *actor, const char *label)
{
    char err[CM_ERR_LEN], how[96];
    int64_t t = cm_clock_mono_ms();
    if (!sc_proc_running(p)) {
        sc_proc_describe(p, how, sizeof how);
        sc_fail(ctx, RP_FAILED, "process", "%s%sthe gateway under test %s before it was stopped",
                label ? label : "", label ? ": " : "", how);
        add_tail(ctx, p);
        return CM_EINVAL;
    }
    if (sc_proc_stop(p, SC_STOP_GRACE_MS, err) != CM_OK && !p->exited) {
        sc_fail(ctx, RP_FAILED, "process", "%s%s%s", label ? label : "", label ? ": " : "", err);
        add_tail(ctx, p);
        return CM_EINVAL;
    }
    sc_proc_describe(p, how, sizeof how);
    int killed = WIFSIGNALED(p->status) && WTERMSIG(p->status) == SIGKILL;
    sc_log(ctx, actor, "stopped in %lld ms (%s%s; a gateway under test's exit is not judged)",
           (long long)(cm_clock_mono_ms() - t), how,
           killed ? ": it did not exit within the grace period of SIGTERM" : "");
    return CM_OK;
}

/* Points one simulator's webhooks (provider: retell, stripe, calcom) at the gateway:
 * through the chaos proxy's gateway link when there is one, else straight to it. */
static cm_err_t connect_one(sc_ctx_t *ctx, const char *provider)
{
    char body[400], path[64], shown[SC_HTTP_SHOW + 128];
    if (*ctx->opts->attach_webhook && !strcmp(provider, "retell"))
        snprintf(body, sizeof body, "{\"url\":\"%s\"}", ctx->opts->attach_webhook);
    else if (ctx->link_port[SC_LINK_GATEWAY])
        snprintf(body, sizeof body, "{\"url\":\"http://127.0.0.1:%d/webhooks/%s\"}",
                 ctx->link_port[SC_LINK_GATEWAY], provider);
    else
        snprintf(body, sizeof body, "{\"url\":\"%s/webhooks/%s\"}", ctx->url[SC_TO_GATEWAY],
                 provider);
    snprintf(path, sizeof path, "/control/%s/webhook", provider);
    sc_http_req_t r = {
        .to = SC_TO_CONTROL, .method = "PUT", .path = path, .body = body, .body_len = strlen(body)};
    sc_answer_t a;
    cm_err_t rc = CM_OK;
    sc_http_do(ctx, "runner", &r, 0, &a);
    if (a.transport != CM_OK || a.status < 200 || a.status > 299)
        rc = sc_fail(ctx, RP_ERRORED, "startup", "PUT %s: expected 2xx, got %s", path,
                     sc_answer_show(&a, shown, sizeof shown));
    sc_answer_free(&a);
    return rc;
}

/* Retell's webhooks always go to the gateway, Stripe's and Cal.com's when the scenario
 * says "webhooks" (their simulators otherwise send nothing: a scenario that does not ask
 * for them sees no extra events). Set again at every gateway start (a new port). */
static cm_err_t connect_webhook(sc_ctx_t *ctx)
{
    cm_err_t rc = connect_one(ctx, "retell");
    if (!rc && (ctx->sc->webhooks & (1u << SC_TO_STRIPE)))
        rc = connect_one(ctx, "stripe");
    if (!rc && (ctx->sc->webhooks & (1u << SC_TO_CALCOM)))
        rc = connect_one(ctx, "calcom");
    return rc;
}

/* Attach mode: the parts run already; take their URLs and the admin token, and point the
 * Retell simulator at the gateway when its control port is known. */
cm_err_t sc_parts_attach(sc_ctx_t *ctx)
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
cm_err_t sc_parts_check_alive(sc_ctx_t *ctx, sc_proc_t *p, const char *when)
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

void sc_parts_stop(sc_ctx_t *ctx, sc_proc_t *p, const char *actor)
{
    char err[CM_ERR_LEN];
    if (p->pid <= 0)
        return;
    if (ctx->opts->gateway_cmd && p >= ctx->gws && p < ctx->gws + SC_GW_MAX) {
        (void)foreign_stop(ctx, p, actor, NULL); /* recorded in ctx */
        return;
    }
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

/* The instance is gone (stopped, killed, exited): its URL and port are forgotten, and the
 * chaos proxy's gateway link sends new connections to the others. */
static void instance_gone(sc_ctx_t *ctx, int inst)
{
    ctx->gws[inst].pid = 0;
    ctx->gw_port[inst] = 0;
    if (inst == 0)
        ctx->url[SC_TO_GATEWAY][0] = '\0';
    if (ctx->link_port[SC_LINK_GATEWAY])
        (void)relink_gateway(ctx); /* a failure is recorded; the step goes on */
}

cm_err_t sc_parts_gateway_stop(sc_ctx_t *ctx, int inst, const char *label)
{
    char err[CM_ERR_LEN], actor[8];
    sc_proc_t *gw = &ctx->gws[inst];
    if (gw->pid <= 0)
        return sc_fail(ctx, RP_FAILED, "invalid",
                       "%s: the gateway is not running (nothing to stop)", label);
    if (ctx->opts->gateway_cmd) {
        cm_err_t frc = foreign_stop(ctx, gw, sc_parts_gw_actor(inst, actor), label);
        instance_gone(ctx, inst);
        return frc;
    }
    int64_t t = cm_clock_mono_ms();
    cm_err_t rc = sc_proc_stop(gw, SC_STOP_GRACE_MS, err);
    if (rc) {
        sc_fail(ctx, RP_FAILED, "process", "%s: %s", label, err);
        add_tail(ctx, gw);
    } else {
        sc_log(ctx, sc_parts_gw_actor(inst, actor), "stopped in %lld ms (exit status 0)",
               (long long)(cm_clock_mono_ms() - t));
    }
    instance_gone(ctx, inst); /* stopped (or reported): teardown has nothing left to do */
    return rc ? CM_EINVAL : CM_OK;
}

cm_err_t sc_parts_gateway_kill(sc_ctx_t *ctx, int inst, const char *label)
{
    char err[CM_ERR_LEN], actor[8];
    sc_proc_t *gw = &ctx->gws[inst];
    if (gw->pid <= 0)
        return sc_fail(ctx, RP_FAILED, "invalid",
                       "%s: the gateway is not running (nothing to kill)", label);
    int64_t t = cm_clock_mono_ms();
    cm_err_t rc = sc_proc_kill(gw, err);
    if (rc) {
        sc_fail(ctx, RP_FAILED, "process", "%s: %s", label, err);
        add_tail(ctx, gw);
    } else {
        sc_log(ctx, sc_parts_gw_actor(inst, actor),
               "killed (SIGKILL to pid group %d), gone in %lld ms", (int)gw->pid,
               (long long)(cm_clock_mono_ms() - t));
    }
    instance_gone(ctx, inst);
    return rc ? CM_EINVAL : CM_OK;
}

cm_err_t sc_parts_gateway_wait_exit(sc_ctx_t *ctx, int inst, const char *label, int64_t within_ms)
{
    char how[96], actor[8];
    sc_proc_t *gw = &ctx->gws[inst];
    if (gw->pid <= 0)
        return sc_fail(ctx, RP_FAILED, "invalid", "%s: the gateway is not running", label);
    if (!ctx->gw_may_exit[inst])
        return sc_fail(ctx, RP_FAILED, "invalid", "%s: wait_exit needs an earlier expect_exit step",
                       label);
    int64_t t0 = cm_clock_mono_ms();
    /* Polls the child (a condition with a deadline, never a fixed sleep). */
    while (sc_proc_running(gw)) {
        if (cm_clock_mono_ms() - t0 >= within_ms) {
            sc_fail(ctx, RP_FAILED, "timeout", "%s: the gateway did not exit within %lld ms", label,
                    (long long)within_ms);
            add_tail(ctx, gw);
            return CM_EINVAL;
        }
        cm_clock_sleep_ms(10);
    }
    sc_proc_describe(gw, how, sizeof how);
    sc_log(ctx, sc_parts_gw_actor(inst, actor), "%s after %lld ms, as expected", how,
           (long long)(cm_clock_mono_ms() - t0));
    ctx->gw_may_exit[inst] = 0;
    instance_gone(ctx, inst);
    return CM_OK;
}
