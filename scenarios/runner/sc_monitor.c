/* sc_monitor.c - the scenarios on a schedule, their results as Prometheus metrics. */
#include "sc_monitor.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cm_buf.h"
#include "cm_clock.h"
#include "cm_http_server.h"
#include "rp_result.h"
#include "sc_attach.h"
#include "sc_run.h"
#include "sc_signal.h"

/* A scrape is small: a few lines per scenario. The cap only guards against a runaway. */
#define SC_MONITOR_SCRAPE_MAX (4u << 20)
/* How often the wait between cycles looks for a signal: pacing, not a condition. */
#define SC_MONITOR_TICK_MS 100

enum { R_PASSED, R_FAILED, R_ERRORED, R_SKIPPED, R_N };
static const char *const result_names[R_N] = {"passed", "failed", "errored", "skipped"};

typedef struct {
    const sc_scenario_t *sc; /* borrowed */
    int ran;                 /* a run ended that was not skipped: the gauges are set */
    int success;
    double duration_s;
    double last_end_s; /* Unix time */
    unsigned long long runs[R_N];
} mon_entry_t;

typedef struct {
    const sc_opts_t *o;
    pthread_mutex_t lock; /* the entries and counters: the scrape reads them on its thread */
    mon_entry_t *e;
    size_t n;
    unsigned long long cycles;
    double last_cycle_end_s;
} mon_t;

/* A label value in the exposition format: \, " and newline escaped. */
static cm_err_t add_label(cm_buf_t *b, const char *s)
{
    cm_err_t rc = CM_OK;
    for (; !rc && *s; s++) {
        if (*s == '\\')
            rc = cm_buf_addstr(b, "\\\\");
        else if (*s == '"')
            rc = cm_buf_addstr(b, "\\\"");
        else if (*s == '\n')
            rc = cm_buf_addstr(b, "\\n");
        else
            rc = cm_buf_add(b, s, 1);
    }
    return rc;
}

static cm_err_t add_labels(cm_buf_t *b, const mon_entry_t *e, const char *result)
{
    cm_err_t rc = cm_buf_addstr(b, "{scenario=\"");
    if (!rc)
        rc = add_label(b, e->sc->name);
    if (!rc)
        rc = cm_buf_addstr(b, "\",file=\"");
    if (!rc)
        rc = add_label(b, e->sc->path);
    if (!rc && result)
        rc = cm_buf_printf(b, "\",result=\"%s", result);
    if (!rc)
        rc = cm_buf_addstr(b, "\"}");
    return rc;
}

/* One family: HELP, TYPE, then a sample per scenario that has one (which: 0 success,
 * 1 duration, 2 last run). */
static cm_err_t add_gauge(cm_buf_t *b, const mon_t *m, const char *name, const char *help,
                          int which)
{
    cm_err_t rc = cm_buf_printf(b, "# HELP %s %s\n# TYPE %s gauge\n", name, help, name);
    for (size_t i = 0; !rc && i < m->n; i++) {
        const mon_entry_t *e = &m->e[i];
        if (!e->ran)
            continue;
        if (!(rc = cm_buf_addstr(b, name)) && !(rc = add_labels(b, e, NULL)))
            rc = which == 0   ? cm_buf_printf(b, " %d\n", e->success)
                 : which == 1 ? cm_buf_printf(b, " %.3f\n", e->duration_s)
                              : cm_buf_printf(b, " %.3f\n", e->last_end_s);
    }
    return rc;
}

static cm_err_t render(const mon_t *m, cm_buf_t *b)
{
    cm_err_t rc = add_gauge(b, m, "scenario_success",
                            "Whether the scenario's last run passed (1) or failed (0).", 0);
    if (!rc)
        rc = add_gauge(b, m, "scenario_duration_seconds",
                       "How long the scenario's last run took, in seconds.", 1);
    if (!rc)
        rc = add_gauge(b, m, "scenario_last_run_timestamp_seconds",
                       "When the scenario's last run ended, in seconds since the epoch.", 2);
    if (!rc)
        rc = cm_buf_addstr(b, "# HELP scenario_runs_total Runs of the scenario by result "
                              "(passed, failed, errored, skipped).\n"
                              "# TYPE scenario_runs_total counter\n");
    for (size_t i = 0; !rc && i < m->n; i++)
        for (int r = 0; !rc && r < R_N; r++)
            if (!(rc = cm_buf_addstr(b, "scenario_runs_total")) &&
                !(rc = add_labels(b, &m->e[i], result_names[r])))
                rc = cm_buf_printf(b, " %llu\n", m->e[i].runs[r]);
    if (!rc)
        rc = cm_buf_printf(b,
                           "# HELP scenario_monitor_cycles_total Runs of the whole set of "
                           "scenarios completed.\n"
                           "# TYPE scenario_monitor_cycles_total counter\n"
                           "scenario_monitor_cycles_total %llu\n"
                           "# HELP scenario_monitor_last_cycle_timestamp_seconds When the last "
                           "cycle ended, in seconds since the epoch (0: none yet).\n"
                           "# TYPE scenario_monitor_last_cycle_timestamp_seconds gauge\n"
                           "scenario_monitor_last_cycle_timestamp_seconds %.3f\n"
                           "# HELP scenario_monitor_every_seconds The period of the cycles, "
                           "in seconds.\n"
                           "# TYPE scenario_monitor_every_seconds gauge\n"
                           "scenario_monitor_every_seconds %.3f\n",
                           m->cycles, m->last_cycle_end_s, (double)m->o->every_ms / 1000.0);
    return rc;
}

static void h_metrics(const cm_http_req_t *req, cm_http_resp_t *resp, void *ud)
{
    mon_t *m = ud;
    cm_buf_t b;
    (void)req;
    cm_buf_init(&b, SC_MONITOR_SCRAPE_MAX);
    pthread_mutex_lock(&m->lock);
    cm_err_t rc = render(m, &b);
    pthread_mutex_unlock(&m->lock);
    if (rc)
        cm_http_resp_problem(resp, 500, "Internal Server Error", "metrics could not be rendered");
    else
        cm_http_resp_text(resp, 200, "text/plain; version=0.0.4; charset=utf-8",
                          b.data ? b.data : "");
    cm_buf_free(&b);
}

static void h_health(const cm_http_req_t *req, cm_http_resp_t *resp, void *ud)
{
    (void)req;
    (void)ud;
    cm_http_resp_text(resp, 200, "text/plain; charset=utf-8", "ok\n");
}

/* One run of one scenario, recorded; *result is its R_*. Returns 0 when it was cut short
 * by a signal (its result is not recorded: it says nothing about the deployment). */
static int run_one(mon_t *m, mon_entry_t *e, unsigned long long cycle, int *result)
{
    char why[512], kept[PATH_MAX] = "";
    const sc_scenario_t *sc = e->sc;
    rp_report_t *rep = rp_report_new("monitor");
    rp_suite_t *suite = rep ? rp_report_add_suite(rep, sc->path) : NULL;
    rp_case_t *c = suite ? rp_suite_add_case(suite, sc->name, sc->path) : NULL;
    if (!c) {
        rp_report_free(&rep);
        fprintf(stderr, "scenario: out of memory for %s\n", sc->path);
        return 1;
    }
    const char *unsuitable = sc_attach_unsuitable(m->o, sc, why, sizeof why);
    rp_status_t st;
    if (unsuitable) {
        st = RP_SKIPPED;
        if (rp_case_set_outcome(c, RP_SKIPPED, "skipped", unsuitable, NULL) != CM_OK)
            c->status = RP_SKIPPED;
    } else {
        st = sc_run_scenario(m->o, sc, SC_STORE_AS_WRITTEN, c, kept);
    }
    int interrupted = sc_signal_caught() != 0 && st != RP_PASSED;
    int r = st == RP_PASSED    ? R_PASSED
            : st == RP_FAILED  ? R_FAILED
            : st == RP_SKIPPED ? R_SKIPPED
                               : R_ERRORED;
    *result = r;
    if (!interrupted) {
        pthread_mutex_lock(&m->lock);
        e->runs[r]++;
        if (r != R_SKIPPED) {
            e->ran = 1;
            e->success = r == R_PASSED;
            e->duration_s = c->time_s;
            e->last_end_s = (double)cm_clock_now_ms() / 1000.0;
        }
        pthread_mutex_unlock(&m->lock);
    }
    printf("%s %s (%.2f s) [cycle %llu]%s\n",
           interrupted        ? "STOP"
           : st == RP_PASSED  ? "PASS"
           : st == RP_SKIPPED ? "SKIP"
           : st == RP_ERRORED ? "ERROR"
                              : "FAIL",
           sc->name, c->time_s, cycle, interrupted ? " interrupted" : "");
    if (st != RP_PASSED && c->message)
        printf("    %s\n", c->message);
    if (*kept)
        printf("    kept %s\n", kept);
    if (st != RP_PASSED && st != RP_SKIPPED && m->o->verbose) {
        char *log = rp_case_log_text(c);
        if (log)
            printf("%s", log);
        free(log);
    }
    fflush(stdout);
    rp_report_free(&rep);
    return !interrupted;
}

int sc_monitor_run(const sc_opts_t *o, sc_scenario_t *const *scenarios, size_t n, char *err)
{
    mon_t m = {.o = o, .n = n};
    cm_http_server_t *srv = NULL;
    int status = 0;
    pthread_mutex_init(&m.lock, NULL);
    if (!(m.e = calloc(n ? n : 1, sizeof *m.e))) {
        snprintf(err, SC_ERR_LEN, "out of memory");
        status = 2;
        goto out;
    }
    for (size_t i = 0; i < n; i++)
        m.e[i].sc = scenarios[i];
    cm_http_server_cfg_t cfg = {.bind_addr = o->listen_addr,
                                .port = (uint16_t)o->listen_port,
                                .threads = 1,
                                .body_limit = 4096,
                                .name = "monitor"};
    char serr[CM_ERR_LEN];
    if (!(srv = cm_http_server_new(&cfg)) ||
        cm_http_server_route(srv, "GET /metrics", h_metrics, &m) != CM_OK ||
        cm_http_server_route(srv, "GET /health", h_health, &m) != CM_OK) {
        snprintf(err, SC_ERR_LEN, "out of memory for the metrics server");
        status = 2;
        goto out;
    }
    if (cm_http_server_start(srv, serr) != CM_OK) {
        snprintf(err, SC_ERR_LEN, "--listen %s:%d: %s", o->listen_addr, o->listen_port, serr);
        status = 2;
        goto out;
    }
    /* A fixed shape: scripts (tests/monitor) read the port from it. */
    printf("monitor: metrics on http://%s:%u/metrics, %zu scenario(s) every %.3f s\n",
           o->listen_addr, (unsigned)cm_http_server_port(srv), n, (double)o->every_ms / 1000.0);
    fflush(stdout);

    for (unsigned long long cycle = 1; !sc_signal_caught(); cycle++) {
        int64_t t0 = cm_clock_mono_ms();
        size_t count[R_N] = {0};
        int whole = 1;
        for (size_t i = 0; i < n && whole; i++) {
            int r = R_ERRORED;
            whole = run_one(&m, &m.e[i], cycle, &r);
            count[r]++;
        }
        if (!whole)
            break;
        pthread_mutex_lock(&m.lock);
        m.cycles++;
        m.last_cycle_end_s = (double)cm_clock_now_ms() / 1000.0;
        pthread_mutex_unlock(&m.lock);
        printf("monitor: cycle %llu: %zu passed, %zu failed, %zu errored, %zu skipped in %.2f s\n",
               cycle, count[R_PASSED], count[R_FAILED], count[R_ERRORED], count[R_SKIPPED],
               (double)(cm_clock_mono_ms() - t0) / 1000.0);
        fflush(stdout);
        if (o->cycles && cycle >= (unsigned long long)o->cycles)
            break;
        while (!sc_signal_caught() && cm_clock_mono_ms() < t0 + o->every_ms)
            cm_clock_sleep_ms(SC_MONITOR_TICK_MS);
    }
    if (sc_signal_caught())
        printf("monitor: stopped by signal %d\n", sc_signal_caught());
    else
        printf("monitor: stopped after %d cycle(s)\n", o->cycles);
    fflush(stdout);
out:
    cm_http_server_free(&srv);
    free(m.e);
    pthread_mutex_destroy(&m.lock);
    return status;
}
