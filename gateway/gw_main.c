/* gw_main.c - the gateway program: options, start-up order, signals, shutdown. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cm_clock.h"
#include "cm_codec.h"
#include "cm_http_client.h"
#include "cm_http_server.h"
#include "cm_log.h"
#include "gw_app.h"
#include "gw_evtcheck.h"
#include "gw_reconcile.h"
#include "gw_retention.h"
#include "gw_otlp.h"
#include "gw_testhook.h"

/* How long the start waits for the first event-type check: a Cal.com that answers does so
 * in milliseconds; one that does not must not keep the gateway from taking webhooks. */
#define EVTCHECK_FIRST_WAIT_MS 3000

static void usage(FILE *f)
{
    fputs("usage: gateway --config FILE [--ready-file PATH] [--test-hooks]\n"
          "       gateway --check-config FILE\n"
          "\n"
          "  --config FILE        run with this JSON configuration\n"
          "  --ready-file PATH    once listening, write {\"pid\":N,\"port\":P} there\n"
          "  --check-config FILE  report every problem in FILE and exit (0: valid)\n"
          "  --test-hooks         let the admin API arm crash points (crash tests only;\n"
          "                       GW_TEST_HOOKS=1 in the environment does the same)\n",
          f);
}

/* Writes the ready file atomically (temporary file + rename), so a reader never sees a
 * half-written file. */
static int write_ready(const char *path, uint16_t port)
{
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f)
        return -1;
    fprintf(f, "{\"pid\":%ld,\"port\":%u}\n", (long)getpid(), (unsigned)port);
    if (fclose(f) != 0 || rename(tmp, path) != 0)
        return -1;
    return 0;
}

static int check_config(const char *path)
{
    gw_config_t *cfg = NULL;
    int n = 0;
    if (gw_config_load(path, &cfg, stderr, &n) != CM_OK) {
        fprintf(stderr, "%s: %d problem%s\n", path, n, n == 1 ? "" : "s");
        return 1;
    }
    printf("%s: valid (%zu tenant%s)\n", path, cfg->ntenants, cfg->ntenants == 1 ? "" : "s");
    gw_config_free(&cfg);
    return 0;
}

/* One gateway process per SQLite file: at start, gw_store_recover requeues every job left
 * running, which is right after a crash and wrong if another live process holds them (it
 * would run them twice). An exclusive lock on DB.lock, held until the process ends, makes
 * a second instance refuse to start; several instances belong on a shared database
 * server. Returns the descriptor, or -1 after saying why on stderr. */
static int instance_lock(const char *db_path)
{
    char path[PATH_MAX];
    if (snprintf(path, sizeof path, "%s.lock", db_path) >= (int)sizeof path) {
        fprintf(stderr, "gateway: store: path too long: %s\n", db_path);
        return -1;
    }
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
        fprintf(stderr, "gateway: store: cannot open %s: %s\n", path, strerror(errno));
        return -1;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        int e = errno;
        fprintf(stderr,
                "gateway: store: %s: %s (another gateway uses this data_dir; SQLite serves "
                "one instance, and on PostgreSQL each instance needs a data_dir of its own)\n",
                path, e == EWOULDBLOCK ? "locked" : strerror(e));
        close(fd);
        return -1;
    }
    return fd;
}

/* This instance's name on a shared PostgreSQL store: its host and data_dir, which it holds
 * locked (instance_lock), so no live process has the same name and a gateway started
 * again on the same data_dir after a crash is the one that left its running jobs, and
 * takes them back at once instead of after their lease (gw_store_open_pg). */
static void instance_name(const char *data_dir, char out[GW_STORE_INSTANCE_MAX + 1])
{
    char host[64] = "", dir[PATH_MAX], where[sizeof host + PATH_MAX + 1];
    uint8_t h[CM_SHA256_LEN];
    char hex[2 * CM_SHA256_LEN + 1];
    if (gethostname(host, sizeof host - 1) != 0)
        snprintf(host, sizeof host, "host");
    for (char *p = host; *p; p++) /* only what a name may hold */
        if (!(*p >= 'a' && *p <= 'z') && !(*p >= 'A' && *p <= 'Z') && !(*p >= '0' && *p <= '9') &&
            *p != '.' && *p != '-')
            *p = '-';
    if (!realpath(data_dir, dir))
        snprintf(dir, sizeof dir, "%s", data_dir);
    int n = snprintf(where, sizeof where, "%s:%s", host, dir);
    cm_sha256(where, n > 0 && (size_t)n < sizeof where ? (size_t)n : strlen(where), h);
    cm_hex_encode(h, 8, hex);
    snprintf(out, GW_STORE_INSTANCE_MAX + 1, "%.22s:%.16s", host, hex);
}

/* Raises the soft limit of open files to the hard one: each connection is a descriptor,
 * and the usual soft limit (1024) is what let 1,100 slow connections shut valid senders
 * out. The server lowers its connection limit, and says so, if it still does not fit. */
static void raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
            CM_WARN("gw.main", "cannot raise the open-file limit: %s", strerror(errno));
    }
}

static int run(const char *config_path, const char *ready_path)
{
    gw_config_t *cfg = NULL;
    gw_store_t *store = NULL;
    gw_worker_t *worker = NULL;
    gw_obs_t *obs = NULL;
    gw_outbound_t *ob = NULL;
    gw_retention_t *retention = NULL;
    gw_evtcheck_t *evtcheck = NULL;
    gw_reconcile_t *reconcile = NULL;
    gw_otlp_t *otlp = NULL;
    cm_http_server_t *srv = NULL;
    char err[CM_ERR_LEN] = "";
    int n = 0, status = 1, requeued = 0, lock_fd = -1;

    if (gw_config_load(config_path, &cfg, stderr, &n) != CM_OK) {
        fprintf(stderr, "gateway: refusing to start: %d configuration problem%s in %s\n", n,
                n == 1 ? "" : "s", config_path);
        return 2;
    }
    cm_log_set_level(cfg->log_level);
    if (mkdir(cfg->data_dir, 0700) != 0 && errno != EEXIST) {
        fprintf(stderr, "gateway: cannot create data_dir %s: %s\n", cfg->data_dir, strerror(errno));
        goto out;
    }
    /* One process per data_dir: on SQLite per database; on PostgreSQL, where several
     * instances share one, per instance name (instance_name: recovery takes back the jobs
     * of its own name and those no live instance holds, see gw_store_pg_jobs.c). */
    if ((lock_fd = instance_lock(cfg->db_path)) < 0)
        goto out;
    char instance[GW_STORE_INSTANCE_MAX + 1];
    instance_name(cfg->data_dir, instance);
    if ((cfg->store_pg ? gw_store_open_pg(cfg->store_url, instance, &store, err)
                       : gw_store_open(cfg->db_path, cfg->store_sync_full, &store, err)) != CM_OK) {
        fprintf(stderr, "gateway: store: %s\n", err);
        goto out;
    }
    /* Recovery writes (the jobs a killed process left running), which a full disk refuses.
     * The gateway starts anyway, refusing webhooks with 503 and reporting not ready until
     * the disk has room: those jobs are taken back when their lease lapses (the workers'
     * reclaim), only without being counted as crashed. */
    if (gw_store_recover(store, cfg->max_attempts, cm_clock_now_ms(), &requeued) != CM_OK)
        CM_WARN("gw.main", "store recovery failed; jobs left running are taken back when "
                           "their lease lapses");
    if (requeued)
        CM_WARN("gw.main", "requeued %d job(s) left running by a previous process", requeued);

    /* Signals are blocked before any thread starts, so every thread inherits the mask
     * and only sigwait below sees SIGTERM/SIGINT. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    if (gw_obs_new(store, &obs, err) != CM_OK || gw_outbound_new(cfg, obs, &ob, err) != CM_OK) {
        fprintf(stderr, "gateway: %s\n", err[0] ? err : "out of memory");
        goto out;
    }
    if (cfg->tracing.enabled) {
        gw_otlp_cfg_t tc = {.endpoint = cfg->tracing.endpoint,
                            .headers = (const char *const *)cfg->tracing.headers,
                            .service_name = cfg->tracing.service_name,
                            .service_instance = instance,
                            .sample_ratio = cfg->tracing.sample_ratio,
                            .queue_size = cfg->tracing.queue_size,
                            .batch_size = cfg->tracing.batch_size,
                            .flush_ms = cfg->tracing.flush_ms,
                            .timeout_ms = cfg->tracing.timeout_ms,
                            .exported = obs->spans_exported,
                            .dropped = obs->spans_dropped};
        if (gw_otlp_new(&tc, &otlp, err) != CM_OK) {
            fprintf(stderr, "gateway: %s\n", err[0] ? err : "out of memory");
            goto out;
        }
        obs->otlp = otlp;
        CM_INFO("gw.main", "tracing: spans to %s, %g of new traces", cfg->tracing.endpoint,
                cfg->tracing.sample_ratio);
    }
    /* Rate limits and the slot cache shared with the other instances on the store (on
     * SQLite there are none, and both stay in this process). */
    if (gw_outbound_share(ob, store) != CM_OK) {
        fprintf(stderr, "gateway: cannot listen for the other instances' notices\n");
        goto out;
    }
    if (gw_worker_start(cfg, store, ob, obs, &worker) != CM_OK) {
        fprintf(stderr, "gateway: cannot start workers\n");
        goto out;
    }
    if (gw_retention_start(store, cfg, obs, &retention, err) != CM_OK) {
        fprintf(stderr, "gateway: %s\n", err[0] ? err : "cannot start retention");
        goto out;
    }
    if (gw_reconcile_start(cfg, store, ob, obs, worker, &reconcile, err) != CM_OK) {
        fprintf(stderr, "gateway: %s\n", err[0] ? err : "cannot start reconciliation");
        goto out;
    }
    /* Before the server says it is ready: a deleted event type is in the first answer of
     * /health/ready, not in the first failed booking. */
    if (gw_evtcheck_start(cfg, ob, obs, EVTCHECK_FIRST_WAIT_MS, &evtcheck, err) != CM_OK) {
        fprintf(stderr, "gateway: %s\n", err[0] ? err : "cannot start the event-type check");
        goto out;
    }
    gw_app_t app = {.cfg = cfg,
                    .store = store,
                    .worker = worker,
                    .obs = obs,
                    .ob = ob,
                    .evtcheck = evtcheck,
                    .reconcile = reconcile};
    raise_nofile();
    cm_http_server_cfg_t scfg = {.bind_addr = cfg->listen_addr,
                                 .port = cfg->listen_port,
                                 .threads = cfg->http_threads,
                                 .body_limit = cfg->body_limit,
                                 .body_budget = cfg->body_budget,
                                 .name = "gw.http",
                                 .max_conns = cfg->max_connections,
                                 .max_conns_per_ip = cfg->max_connections_per_ip,
                                 .header_timeout_ms = cfg->header_timeout_ms,
                                 .header_timeout_busy_ms = cfg->header_timeout_busy_ms,
                                 .body_timeout_ms = cfg->body_timeout_ms,
                                 .header_limit = cfg->header_limit};
    srv = cm_http_server_new(&scfg);
    if (!srv || gw_inbound_routes(srv, &app) || gw_admin_routes(srv, &app) ||
        cm_http_server_start(srv, err) != CM_OK) {
        fprintf(stderr, "gateway: http: %s\n", err[0] ? err : "cannot set up routes");
        goto out;
    }
    gw_obs_watch_server(obs, srv);
    CM_INFO("gw.main", "listening on %s:%u, store %s, %zu tenant(s), seed %llu", cfg->listen_addr,
            (unsigned)cm_http_server_port(srv), cfg->store_pg ? "postgres" : cfg->db_path,
            cfg->ntenants, (unsigned long long)cfg->seed);
    if (ready_path && write_ready(ready_path, cm_http_server_port(srv)) != 0) {
        fprintf(stderr, "gateway: cannot write ready file %s\n", ready_path);
        goto out;
    }
    int sig = 0;
    sigwait(&set, &sig);
    CM_INFO("gw.main", "signal %d: stopping", sig);
    status = 0;
out:
    /* Order: commit and answer what is queued and refuse more (so no deferred answer is
     * finished after the server is gone), stop the server, let the workers finish their
     * jobs, then close the store. */
    if (store)
        gw_store_stop_intake(store);
    gw_obs_watch_server(obs, NULL);
    cm_http_server_free(&srv);
    gw_reconcile_stop(&reconcile);
    gw_retention_stop(&retention);
    gw_evtcheck_stop(&evtcheck);
    gw_worker_stop(&worker);
    gw_outbound_free(&ob);
    /* Nothing makes spans any more: the last ones go out (bounded by the export timeout). */
    if (obs)
        obs->otlp = NULL;
    gw_otlp_free(&otlp);
    gw_obs_free(&obs);
    gw_store_close(&store);
    if (lock_fd >= 0)
        close(lock_fd); /* after the store: the next instance may take it over */
    gw_config_free(&cfg);
    return status;
}

int main(int argc, char **argv)
{
    const char *config = NULL, *ready = NULL, *check = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        }
        if (!strcmp(a, "--test-hooks")) {
            gw_testhook_enable();
            continue;
        }
        if (i + 1 >= argc ||
            (strcmp(a, "--config") && strcmp(a, "--ready-file") && strcmp(a, "--check-config"))) {
            fprintf(stderr, "gateway: %s '%s'\n",
                    i + 1 >= argc && a[0] == '-' ? "missing value for" : "unknown option", a);
            usage(stderr);
            return 2;
        }
        const char *v = argv[++i];
        if (!strcmp(a, "--config"))
            config = v;
        else if (!strcmp(a, "--ready-file"))
            ready = v;
        else
            check = v;
    }
    if (check)
        return check_config(check);
    /* The environment can turn the hooks on too, so a test runner that only controls the
     * environment can run crash tests. */
    const char *th = getenv("GW_TEST_HOOKS");
    if (th && !strcmp(th, "1"))
        gw_testhook_enable();
    if (!config) {
        fprintf(stderr, "gateway: --config FILE is required\n");
        usage(stderr);
        return 2;
    }
    if (cm_http_global_init() != CM_OK) {
        fprintf(stderr, "gateway: libcurl initialisation failed\n");
        return 1;
    }
    return run(config, ready);
}
