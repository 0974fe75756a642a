/* sim_main.c - the simulators program: command line, start-up, ready file, signals,
 * orderly shutdown.
 *
 * Four HTTP servers on 127.0.0.1, each on a port of its own (port 0: the kernel picks a
 * free one): Retell, Cal.com and Stripe speak their provider's API, the control server
 * speaks ours (docs/interfaces.md). Once all four listen, their ports go into the ready
 * file, written atomically. The main thread then waits for SIGTERM or SIGINT with
 * sigwait; every other thread has those signals blocked, so no handler runs inside
 * libmicrohttpd or libcurl.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cm_err.h"
#include "cm_http_client.h"
#include "cm_http_server.h"
#include "cm_log.h"
#include "sim_calcom.h"
#include "sim_control.h"
#include "sim_retell.h"
#include "sim_stripe.h"

#define COMP "sim.main"
#define EXIT_USAGE 2

typedef struct {
    const char *ready_file;
    uint64_t seed;
    const char *log_level;
    const char *retell_api_key;
    const char *calcom_api_key;
    const char *calcom_webhook_secret;
    const char *stripe_api_key;
    const char *stripe_webhook_secret;
    int calcom_taken_status;
} sim_opts_t;

static const char usage[] =
    "usage: simulators --ready-file PATH [--seed N] [--log-level debug|info|warn|error]\n"
    "                  [--retell-api-key K] [--calcom-api-key K] [--calcom-webhook-secret S]\n"
    "                  [--stripe-api-key K] [--stripe-webhook-secret S]\n"
    "                  [--calcom-taken-status 400|409]\n"
    "\n"
    "Runs the Retell, Cal.com v2 and Stripe simulators and their control API on free\n"
    "ports of 127.0.0.1, then writes {\"pid\",\"retell\",\"calcom\",\"stripe\",\"control\"} to\n"
    "the ready file (atomically). Stops cleanly on SIGTERM or SIGINT.\n"
    "\n"
    "  --ready-file PATH            where to publish the ports (required)\n"
    "  --seed N                     seed of the simulated ids (default 1)\n"
    "  --log-level L                minimum log level (default info)\n"
    "  --retell-api-key K           signs Retell webhooks, guards its API\n"
    "                               (env SIM_RETELL_API_KEY, default key_sim_retell)\n"
    "  --calcom-api-key K           Cal.com bearer key (env SIM_CALCOM_API_KEY, cal_sim_key)\n"
    "  --calcom-webhook-secret S    (env SIM_CALCOM_WEBHOOK_SECRET, calsecret_sim)\n"
    "  --stripe-api-key K           Stripe bearer key (env SIM_STRIPE_API_KEY, sk_test_sim)\n"
    "  --stripe-webhook-secret S    (env SIM_STRIPE_WEBHOOK_SECRET, whsec_sim_secret)\n"
    "  --calcom-taken-status N      status for a taken Cal.com slot, 400 or 409 (default 400)\n"
    "  --help                       this text\n";

/* The default, overridden by the environment variable when it is set. */
static const char *env_or(const char *name, const char *def)
{
    const char *v = getenv(name);
    return v ? v : def;
}

static int parse_u64(const char *s, uint64_t *out)
{
    char *end;
    if (!*s || *s == '-' || *s == '+')
        return -1;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end)
        return -1;
    *out = v;
    return 0;
}

/* Returns 0 to run, 1 when --help was asked for, -1 on a usage error (err says why). */
static int parse_args(int argc, char **argv, sim_opts_t *o, char *err, size_t cap)
{
    static const char *const key_flags[] = {"--ready-file",
                                            "--log-level",
                                            "--retell-api-key",
                                            "--calcom-api-key",
                                            "--calcom-webhook-secret",
                                            "--stripe-api-key",
                                            "--stripe-webhook-secret"};
    const char **key_dest[] = {&o->ready_file,
                               &o->log_level,
                               &o->retell_api_key,
                               &o->calcom_api_key,
                               &o->calcom_webhook_secret,
                               &o->stripe_api_key,
                               &o->stripe_webhook_secret};
    *o = (sim_opts_t){
        .seed = 1,
        .log_level = "info",
        .retell_api_key = env_or("SIM_RETELL_API_KEY", "key_sim_retell"),
        .calcom_api_key = env_or("SIM_CALCOM_API_KEY", "cal_sim_key"),
        .calcom_webhook_secret = env_or("SIM_CALCOM_WEBHOOK_SECRET", "calsecret_sim"),
        .stripe_api_key = env_or("SIM_STRIPE_API_KEY", "sk_test_sim"),
        .stripe_webhook_secret = env_or("SIM_STRIPE_WEBHOOK_SECRET", "whsec_sim_secret"),
        .calcom_taken_status = 400,
    };
    const char *seed = NULL, *taken = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0)
            return 1;
        /* "--flag value" and "--flag=value" both work. */
        const char *eq = strchr(a, '=');
        size_t nl = eq ? (size_t)(eq - a) : strlen(a);
        const char *val = eq ? eq + 1 : NULL;
        const char **dest = NULL;
        for (size_t k = 0; k < sizeof key_flags / sizeof key_flags[0]; k++)
            if (strlen(key_flags[k]) == nl && strncmp(a, key_flags[k], nl) == 0)
                dest = key_dest[k];
        if (!dest && nl == 6 && strncmp(a, "--seed", nl) == 0)
            dest = &seed;
        if (!dest && nl == 21 && strncmp(a, "--calcom-taken-status", nl) == 0)
            dest = &taken;
        if (!dest) {
            snprintf(err, cap, "unknown option '%.*s'", (int)nl, a);
            return -1;
        }
        if (!val) {
            if (i + 1 >= argc) {
                snprintf(err, cap, "option '%s' needs a value", a);
                return -1;
            }
            val = argv[++i];
        }
        *dest = val;
    }
    if (!o->ready_file || !*o->ready_file) {
        snprintf(err, cap, "--ready-file PATH is required");
        return -1;
    }
    if (seed && parse_u64(seed, &o->seed) != 0) {
        snprintf(err, cap, "--seed must be an unsigned 64-bit integer, not '%s'", seed);
        return -1;
    }
    if (taken) {
        if (strcmp(taken, "400") != 0 && strcmp(taken, "409") != 0) {
            snprintf(err, cap, "--calcom-taken-status must be 400 or 409, not '%s'", taken);
            return -1;
        }
        o->calcom_taken_status = atoi(taken);
    }
    if (cm_log_set_level(o->log_level) != 0) {
        snprintf(err, cap, "--log-level must be debug, info, warn or error, not '%s'",
                 o->log_level);
        return -1;
    }
    const char *const keys[] = {o->retell_api_key, o->calcom_api_key, o->calcom_webhook_secret,
                                o->stripe_api_key, o->stripe_webhook_secret};
    for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++) {
        if (!*keys[k]) {
            snprintf(err, cap,
                     "keys and secrets must not be empty (check the --*-key, "
                     "--*-secret options and the SIM_* environment variables)");
            return -1;
        }
    }
    return 0;
}

/* ---- the running program ----------------------------------------------------------- */

typedef struct {
    sim_retell_t *retell;
    sim_calcom_t *calcom;
    sim_stripe_t *stripe;
    sim_control_t control;
    cm_http_server_t *srv_retell, *srv_calcom, *srv_stripe, *srv_control;
} sim_app_t;

/* Creates one server. The simulators are not benchmarks of themselves: a thread per
 * connection keeps a slow (faulted) answer from holding up the others. */
static cm_http_server_t *new_server(const char *name)
{
    cm_http_server_cfg_t cfg = {.bind_addr = "127.0.0.1", .port = 0, .threads = 0, .name = name};
    return cm_http_server_new(&cfg);
}

static cm_err_t app_start(sim_app_t *app, const sim_opts_t *o, char *err)
{
    cm_err_t rc = CM_OK;
    app->retell =
        sim_retell_new(&(sim_retell_cfg_t){.api_key = o->retell_api_key, .seed = o->seed});
    app->calcom = sim_calcom_new(&(sim_calcom_cfg_t){.api_key = o->calcom_api_key,
                                                     .webhook_secret = o->calcom_webhook_secret,
                                                     .taken_status = o->calcom_taken_status,
                                                     .seed = o->seed});
    app->stripe = sim_stripe_new(&(sim_stripe_cfg_t){
        .api_key = o->stripe_api_key, .webhook_secret = o->stripe_webhook_secret, .seed = o->seed});
    app->control = (sim_control_t){app->retell, app->calcom, app->stripe};
    app->srv_retell = new_server("sim.retell");
    app->srv_calcom = new_server("sim.calcom");
    app->srv_stripe = new_server("sim.stripe");
    app->srv_control = new_server("sim.control");
    if (!app->retell || !app->calcom || !app->stripe || !app->srv_retell || !app->srv_calcom ||
        !app->srv_stripe || !app->srv_control) {
        cm_errf(err, "out of memory while setting up");
        return CM_ENOMEM;
    }
    /* Issue 3 (fault engine) plugs in here: cm_http_server_set_filter(srv, ...) on the
     * three provider servers, never on the control server, so that latency, error
     * statuses, socket faults and sequences stay one concern and the provider handlers
     * never know about them. */
    rc = sim_retell_routes(app->retell, app->srv_retell);
    if (!rc)
        rc = sim_calcom_routes(app->calcom, app->srv_calcom);
    if (!rc)
        rc = sim_stripe_routes(app->stripe, app->srv_stripe);
    if (!rc)
        rc = sim_control_routes(&app->control, app->srv_control);
    if (rc) {
        cm_errf(err, "could not add routes: %s", cm_strerror(rc));
        return rc;
    }
    cm_http_server_t *const all[] = {app->srv_retell, app->srv_calcom, app->srv_stripe,
                                     app->srv_control};
    for (size_t i = 0; !rc && i < 4; i++)
        rc = cm_http_server_start(all[i], err);
    return rc;
}

/* Stops the servers first (each waits for its in-flight handlers, deliveries included),
 * then frees the state they used. */
static void app_stop(sim_app_t *app)
{
    cm_http_server_free(&app->srv_control);
    cm_http_server_free(&app->srv_retell);
    cm_http_server_free(&app->srv_calcom);
    cm_http_server_free(&app->srv_stripe);
    sim_retell_free(&app->retell);
    sim_calcom_free(&app->calcom);
    sim_stripe_free(&app->stripe);
}

/* Writes the ready file as a temporary file renamed into place, so a reader never sees
 * half of it. */
static cm_err_t write_ready_file(const char *path, const sim_app_t *app, char *err)
{
    char tmp[4096], text[256];
    int n = snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    if (n < 0 || (size_t)n >= sizeof tmp) {
        cm_errf(err, "ready file path too long");
        return CM_EINVAL;
    }
    int len = snprintf(text, sizeof text,
                       "{\"pid\":%ld,\"retell\":%u,\"calcom\":%u,\"stripe\":%u,\"control\":%u}\n",
                       (long)getpid(), (unsigned)cm_http_server_port(app->srv_retell),
                       (unsigned)cm_http_server_port(app->srv_calcom),
                       (unsigned)cm_http_server_port(app->srv_stripe),
                       (unsigned)cm_http_server_port(app->srv_control));
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        cm_errf(err, "%s: %s", tmp, strerror(errno));
        return CM_EIO;
    }
    ssize_t w = write(fd, text, (size_t)len);
    int bad = w != len || fsync(fd) != 0;
    bad |= close(fd) != 0;
    if (bad || rename(tmp, path) != 0) {
        cm_errf(err, "%s: %s", path, strerror(errno));
        unlink(tmp);
        return CM_EIO;
    }
    return CM_OK;
}

int main(int argc, char **argv)
{
    sim_opts_t o;
    char err[CM_ERR_LEN] = "";
    int pr = parse_args(argc, argv, &o, err, sizeof err);
    if (pr == 1) {
        fputs(usage, stdout);
        return 0;
    }
    if (pr < 0) {
        fprintf(stderr, "simulators: %s\n(run 'simulators --help' for the options)\n", err);
        return EXIT_USAGE;
    }

    /* Block the stop signals before any thread exists, so every thread inherits the
     * mask and only sigwait below ever sees them. A peer that hangs up mid-answer must
     * not kill the process: SIGPIPE is ignored and shows as a write error instead. */
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGINT);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);
    signal(SIGPIPE, SIG_IGN);

    if (cm_http_global_init() != CM_OK) {
        fprintf(stderr, "simulators: libcurl failed to initialise\n");
        return 1;
    }

    sim_app_t app = {0};
    int status = 0;
    cm_err_t rc = app_start(&app, &o, err);
    if (!rc)
        rc = write_ready_file(o.ready_file, &app, err);
    if (rc) {
        CM_ERROR(COMP, "start-up failed: %s", err);
        fprintf(stderr, "simulators: %s\n", err);
        status = 1;
    } else {
        CM_INFO(COMP, "ready: retell %u, calcom %u, stripe %u, control %u, seed %llu",
                (unsigned)cm_http_server_port(app.srv_retell),
                (unsigned)cm_http_server_port(app.srv_calcom),
                (unsigned)cm_http_server_port(app.srv_stripe),
                (unsigned)cm_http_server_port(app.srv_control), (unsigned long long)o.seed);
        int sig = 0;
        while (sigwait(&stop, &sig) != 0)
            ;
        CM_INFO(COMP, "signal %d: stopping", sig);
    }
    app_stop(&app);
    if (!rc)
        unlink(o.ready_file); /* the ports it names are closed now */
    if (!status)
        CM_INFO(COMP, "stopped");
    return status;
}
