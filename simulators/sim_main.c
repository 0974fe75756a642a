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
#include "sim_fault.h"
#include "sim_http.h"
#include "sim_journal.h"
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
    const char *faults_file;
    uint64_t journal_size;
    int calcom_rate_limit;
    unsigned threads;
    unsigned retell_retries;
    int64_t retell_retry_interval_ms, retell_timeout_ms;
    unsigned speed; /* the clock speed-up this process runs under (libfaketime); 1: none */
} sim_opts_t;

static const char usage[] =
    "usage: simulators --ready-file PATH [--seed N] [--log-level debug|info|warn|error]\n"
    "                  [--retell-api-key K] [--calcom-api-key K] [--calcom-webhook-secret S]\n"
    "                  [--stripe-api-key K] [--stripe-webhook-secret S]\n"
    "                  [--calcom-taken-status 400|409] [--faults FILE] [--journal-size N]\n"
    "                  [--retell-retries N] [--retell-retry-interval MS] [--retell-timeout-ms MS]\n"
    "                  [--calcom-rate-limit N] [--threads N] [--speed N]\n"
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
    "  --faults FILE                fault rules to start with ([rule...] or {\"faults\":[...]})\n"
    "  --journal-size N             records the journal keeps (default 10000)\n"
    "  --retell-retries N           Retell delivery retries on non-2xx/timeout (default 3)\n"
    "  --retell-retry-interval MS   pause before each retry (default 1000)\n"
    "  --retell-timeout-ms MS       per-attempt timeout (default 10000 x --speed)\n"
    "  --calcom-rate-limit N        Cal.com requests/min per API key, 0: none (default 120)\n"
    "  --threads N                  provider servers: 0 = a thread per connection (default;\n"
    "                               a hang or latency fault holds only its own connection),\n"
    "                               N = an epoll pool of N threads (faster; each hang or\n"
    "                               latency fault in progress holds one of the N)\n"
    "  --speed N                    the clock speed-up these simulators run under\n"
    "                               (libfaketime), 1..1000 (default 1). The providers'\n"
    "                               default answer timeouts (Retell's and Stripe's 10 s\n"
    "                               webhook timeouts) are multiplied by it: the receiver's\n"
    "                               work is real time and does not speed up, so the\n"
    "                               provider's patience must not shrink with the clock.\n"
    "                               Timeouts given explicitly are simulated time.\n"
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
    const char *seed = NULL, *taken = NULL, *jsize = NULL, *rretries = NULL, *rinterval = NULL,
               *rtimeout = NULL, *rate = NULL, *threads = NULL, *speed = NULL;
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
        if (!dest && nl == 8 && strncmp(a, "--faults", nl) == 0)
            dest = &o->faults_file;
        if (!dest && nl == 14 && strncmp(a, "--journal-size", nl) == 0)
            dest = &jsize;
        if (!dest && nl == 16 && strncmp(a, "--retell-retries", nl) == 0)
            dest = &rretries;
        if (!dest && nl == 23 && strncmp(a, "--retell-retry-interval", nl) == 0)
            dest = &rinterval;
        if (!dest && nl == 19 && strncmp(a, "--retell-timeout-ms", nl) == 0)
            dest = &rtimeout;
        if (!dest && nl == 19 && strncmp(a, "--calcom-rate-limit", nl) == 0)
            dest = &rate;
        if (!dest && nl == 9 && strncmp(a, "--threads", nl) == 0)
            dest = &threads;
        if (!dest && nl == 7 && strncmp(a, "--speed", nl) == 0)
            dest = &speed;
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
    o->journal_size = SIM_JOURNAL_DEFAULT_CAPACITY;
    if (jsize && (parse_u64(jsize, &o->journal_size) != 0 || o->journal_size < 1 ||
                  o->journal_size > 10000000)) {
        snprintf(err, cap, "--journal-size must be from 1 to 10000000, not '%s'", jsize);
        return -1;
    }
    uint64_t v;
    o->retell_retries = SIM_RETELL_DEFAULT_RETRIES;
    o->retell_retry_interval_ms = 1000;
    o->retell_timeout_ms = SIM_RETELL_WEBHOOK_TIMEOUT_MS;
    if (rretries) {
        if (parse_u64(rretries, &v) != 0 || v > SIM_RETELL_MAX_RETRIES) {
            snprintf(err, cap, "--retell-retries must be 0..%d, not '%s'", SIM_RETELL_MAX_RETRIES,
                     rretries);
            return -1;
        }
        o->retell_retries = (unsigned)v;
    }
    if (rinterval) {
        if (parse_u64(rinterval, &v) != 0 || v > 3600000) {
            snprintf(err, cap, "--retell-retry-interval must be 0..3600000 ms, not '%s'",
                     rinterval);
            return -1;
        }
        o->retell_retry_interval_ms = (int64_t)v;
    }
    o->speed = 1;
    if (speed) {
        if (parse_u64(speed, &v) != 0 || v < 1 || v > 1000) {
            snprintf(err, cap, "--speed must be 1..1000, not '%s'", speed);
            return -1;
        }
        o->speed = (unsigned)v;
        o->retell_timeout_ms = SIM_RETELL_WEBHOOK_TIMEOUT_MS * (int64_t)v;
    }
    if (rtimeout) {
        if (parse_u64(rtimeout, &v) != 0 || v < 1 || v > SIM_TIMEOUT_MAX_MS) {
            snprintf(err, cap, "--retell-timeout-ms must be 1..%d, not '%s'", SIM_TIMEOUT_MAX_MS,
                     rtimeout);
            return -1;
        }
        o->retell_timeout_ms = (int64_t)v;
    }
    if (threads) {
        if (parse_u64(threads, &v) != 0 || v > 256) {
            snprintf(err, cap, "--threads must be 0..256, not '%s'", threads);
            return -1;
        }
        o->threads = (unsigned)v;
    }
    o->calcom_rate_limit = 120;
    if (rate) {
        if (parse_u64(rate, &v) != 0 || v > 100000) {
            snprintf(err, cap, "--calcom-rate-limit must be 0..100000 requests/min, not '%s'",
                     rate);
            return -1;
        }
        o->calcom_rate_limit = (int)v;
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
    sim_journal_t *journal;
    sim_fault_t *fault;
    sim_control_t control;
    cm_http_server_t *srv_retell, *srv_calcom, *srv_stripe, *srv_control;
} sim_app_t;

/* Creates one server. By default a thread per connection keeps a slow (faulted) answer
 * from holding up the others; --threads N trades that for throughput. */
static cm_http_server_t *new_server(const char *name, unsigned threads)
{
    cm_http_server_cfg_t cfg = {
        .bind_addr = "127.0.0.1", .port = 0, .threads = threads, .name = name};
    return cm_http_server_new(&cfg);
}

/* GET /_sim/health on every provider port: the runner can check each listener. */
static void h_health(const cm_http_req_t *req, cm_http_resp_t *resp, void *ud)
{
    cm_http_resp_json(resp, 200, json_pack("{s:b,s:s}", "ok", 1, "provider", (const char *)ud));
}

static cm_err_t app_start(sim_app_t *app, const sim_opts_t *o, char *err)
{
    cm_err_t rc = CM_OK;
    app->journal = sim_journal_new((size_t)o->journal_size);
    app->fault = app->journal
                     ? sim_fault_new(&(sim_fault_cfg_t){.seed = o->seed, .journal = app->journal})
                     : NULL;
    if (!app->journal || !app->fault) {
        cm_errf(err, "out of memory while setting up");
        return CM_ENOMEM;
    }
    if (o->faults_file) {
        size_t n = 0;
        rc = sim_fault_load_file(app->fault, o->faults_file, &n, err);
        if (rc)
            return rc;
        CM_INFO(COMP, "%zu fault rule%s loaded from %s", n, n == 1 ? "" : "s", o->faults_file);
    }
    app->retell =
        sim_retell_new(&(sim_retell_cfg_t){.api_key = o->retell_api_key,
                                           .seed = o->seed,
                                           .journal = app->journal,
                                           .retries = o->retell_retries,
                                           .retry_interval_ms = o->retell_retry_interval_ms,
                                           .timeout_ms = o->retell_timeout_ms});
    app->calcom = sim_calcom_new(&(sim_calcom_cfg_t){.api_key = o->calcom_api_key,
                                                     .webhook_secret = o->calcom_webhook_secret,
                                                     .taken_status = o->calcom_taken_status,
                                                     .seed = o->seed,
                                                     .journal = app->journal,
                                                     .rate_limit = o->calcom_rate_limit});
    app->stripe = sim_stripe_new(&(sim_stripe_cfg_t){
        .api_key = o->stripe_api_key,
        .webhook_secret = o->stripe_webhook_secret,
        .seed = o->seed,
        .journal = app->journal,
        .webhook_timeout_ms = SIM_STRIPE_WEBHOOK_TIMEOUT_MS * (int64_t)o->speed});
    app->control = (sim_control_t){app->retell, app->calcom, app->stripe, app->fault, app->journal};
    app->srv_retell = new_server("sim.retell", o->threads);
    app->srv_calcom = new_server("sim.calcom", o->threads);
    app->srv_stripe = new_server("sim.stripe", o->threads);
    app->srv_control = new_server("sim.control", 0);
    if (!app->retell || !app->calcom || !app->stripe || !app->srv_retell || !app->srv_calcom ||
        !app->srv_stripe || !app->srv_control) {
        cm_errf(err, "out of memory while setting up");
        return CM_ENOMEM;
    }
    /* The fault engine sits in the three provider servers' filter and after hook, never
     * in the control server's, so latency, error statuses, socket faults and sequences
     * stay one concern and the provider handlers never know about them. */
    rc = sim_fault_attach(app->fault, app->srv_retell, "retell");
    if (!rc)
        rc = sim_fault_attach(app->fault, app->srv_calcom, "calcom");
    if (!rc)
        rc = sim_fault_attach(app->fault, app->srv_stripe, "stripe");
    if (!rc)
        rc = cm_http_server_route(app->srv_retell, "GET /_sim/health", h_health, "retell");
    if (!rc)
        rc = cm_http_server_route(app->srv_calcom, "GET /_sim/health", h_health, "calcom");
    if (!rc)
        rc = cm_http_server_route(app->srv_stripe, "GET /_sim/health", h_health, "stripe");
    if (!rc)
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
    /* Release hangs and slow answers first, or stopping a server would wait for them. */
    if (app->fault)
        sim_fault_shutdown(app->fault);
    if (app->retell)
        sim_retell_shutdown(app->retell);
    if (app->stripe)
        sim_stripe_shutdown(app->stripe);
    if (app->calcom)
        sim_calcom_shutdown(app->calcom);
    cm_http_server_free(&app->srv_control);
    cm_http_server_free(&app->srv_retell);
    cm_http_server_free(&app->srv_calcom);
    cm_http_server_free(&app->srv_stripe);
    sim_retell_free(&app->retell);
    sim_calcom_free(&app->calcom);
    sim_stripe_free(&app->stripe);
    sim_fault_free(&app->fault);
    sim_journal_free(&app->journal);
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
