/* sc_main.c - the scenario runner's command line: find the files, validate them, run the
 * scenarios (in parallel with -j), print progress and diagnoses, write the reports,
 * summarise. The only place that exits. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cm_clock.h"
#include "cm_http_client.h"
#include "rp_health.h"
#include "rp_html.h"
#include "rp_json.h"
#include "rp_junit.h"
#include "rp_result.h"
#include "sc_attach.h"
#include "sc_files.h"
#include "sc_monitor.h"
#include "sc_opts.h"
#include "sc_pg.h"
#include "sc_run.h"
#include "sc_scenario.h"
#include "sc_signal.h"

/* Exit statuses: 0 all passed, 1 some failed, 2 usage or setup error. */
enum { EXIT_PASS = 0, EXIT_FAILED = 1, EXIT_USAGE = 2 };

/* One scenario run: the scenario (borrowed from the loaded list), the store it runs on
 * and its case. */
typedef struct {
    const sc_scenario_t *sc;
    sc_store_t store;
    rp_case_t *c;
} job_t;

/* How results are shown: colours and the live count only on a terminal. */
typedef struct {
    const sc_opts_t *o;
    int tty;    /* stdout is a terminal and not CI: a live count line */
    int colour; /* tty and no NO_COLOR */
    pthread_mutex_t lock;
    size_t total, done, passed, failed, running;
    int status_shown; /* the live line is on screen */
} out_t;

static const char *paint(const out_t *u, int ok)
{
    if (!u->colour)
        return "";
    return ok ? "\033[32m" : "\033[31m";
}

static const char *unpaint(const out_t *u)
{
    return u->colour ? "\033[0m" : "";
}

/* Prints text with every line indented. */
static void print_indented(FILE *f, const char *text, const char *indent)
{
    const char *p = text;
    while (p && *p) {
        size_t n = strcspn(p, "\n");
        fprintf(f, "%s%.*s\n", indent, (int)n, p);
        p += n;
        if (*p == '\n')
            p++;
    }
}

static void clear_status(out_t *u)
{
    if (u->status_shown) {
        fputs("\r\033[K", stdout);
        u->status_shown = 0;
    }
}

static void show_status(out_t *u)
{
    if (!u->tty || u->done >= u->total)
        return;
    printf("[%zu/%zu] %zu passed, %zu failed, %zu running", u->done, u->total, u->passed, u->failed,
           u->running);
    u->status_shown = 1;
    fflush(stdout);
}

/* One result: a line (PASS lines only when not quiet), and for failures the diagnosis,
 * the log and the kept dir. Called with u->lock held. */
static void print_result(out_t *u, const rp_case_t *c)
{
    const sc_opts_t *o = u->o;
    int ok = c->status == RP_PASSED;
    clear_status(u);
    if (!ok || !o->quiet || o->verbose) {
        char count[48] = "";
        if (u->total > 1)
            snprintf(count, sizeof count, " [%zu/%zu]", u->done, u->total);
        printf("%s%s%s %s (%.2f s)%s\n", paint(u, ok),
               ok                        ? "PASS"
               : c->status == RP_SKIPPED ? "SKIP"
               : c->status == RP_ERRORED ? "ERROR"
                                         : "FAIL",
               unpaint(u), c->name, c->time_s, count);
    }
    if (c->status == RP_SKIPPED && c->message)
        print_indented(stdout, c->message, "    ");
    if (!ok && c->status != RP_SKIPPED) {
        /* The one line (what was expected and found, named after the step) first, as the
         * reports show it; then the diagnosis, unless it starts with that very line. */
        if (c->message && (!c->detail || strncmp(c->detail, c->message, strlen(c->message))))
            print_indented(stdout, c->message, "    ");
        if (c->detail)
            print_indented(stdout, c->detail, "    ");
    }
    if ((!ok && c->status != RP_SKIPPED) || o->verbose) {
        char *log = rp_case_log_text(c);
        if (log && *log) {
            printf("    log (seed %lld%s):\n", c->seed, c->speed > 1 ? ", speed-up" : "");
            print_indented(stdout, log, "    ");
        }
        free(log);
    }
    if (c->kept_dir)
        printf("    kept %s\n", c->kept_dir);
    show_status(u);
    fflush(stdout);
}

/* Records a file that could not be loaded as an errored case (no name: the file's). */
static rp_case_t *record_invalid(rp_report_t *r, const char *path, const char *msg)
{
    char cls[1024];
    rp_suite_t *s = rp_report_add_suite(r, path);
    rp_case_t *c = s ? rp_suite_add_case(s, path, rp_classname(path, cls, sizeof cls)) : NULL;
    if (!c || rp_case_set_outcome(c, RP_ERRORED, "invalid", msg, msg) != CM_OK)
        return NULL;
    return c;
}

/* The suite of sc on store, and a case and a job per --repeat. */
static cm_err_t add_jobs(rp_report_t *report, const sc_opts_t *o, const sc_scenario_t *sc,
                         sc_store_t store, job_t *jobs, size_t *njobs)
{
    char cls[1100], suite[1100], tag[16] = "";
    if (store != SC_STORE_AS_WRITTEN)
        snprintf(tag, sizeof tag, " [%s]", sc_store_name(store));
    snprintf(suite, sizeof suite, "%s%s", sc->path, tag);
    rp_classname(sc->path, cls, 1024);
    if (store != SC_STORE_AS_WRITTEN)
        snprintf(cls + strlen(cls), sizeof cls - strlen(cls), ".%s", sc_store_name(store));
    rp_suite_t *s = rp_report_add_suite(report, suite);
    const char *tags[64];
    size_t ntags = json_array_size(sc->tags) < 64 ? json_array_size(sc->tags) : 64;
    for (size_t t = 0; t < ntags; t++)
        tags[t] = json_string_value(json_array_get(sc->tags, t));
    for (int r = 1; r <= o->repeat; r++) {
        char name[1200], nth[16] = "";
        if (o->repeat > 1)
            snprintf(nth, sizeof nth, " #%d", r);
        snprintf(name, sizeof name, "%s%s%s", sc->name, tag, nth);
        rp_case_t *c = s ? rp_suite_add_case(s, name, cls) : NULL;
        if (!c || rp_case_set_tags(c, tags, ntags) != CM_OK ||
            rp_case_set_area(c, sc->area, sc->finding) != CM_OK)
            return CM_ENOMEM;
        jobs[*njobs].sc = sc;
        jobs[*njobs].store = store;
        jobs[*njobs].c = c;
        (*njobs)++;
    }
    return CM_OK;
}

static int check_program(const char *what, const char *path, const char *flag)
{
    if (access(path, X_OK) == 0)
        return 1;
    fprintf(stderr, "scenario: %s program not found at %s (build it, or pass %s PATH)\n", what,
            path, flag);
    return 0;
}

static int selected(const sc_opts_t *o, const char *path, const sc_scenario_t *sc)
{
    if (o->filter && !strstr(path, o->filter) && !(sc && strstr(sc->name, o->filter)))
        return 0;
    if (o->ntags == 0)
        return 1;
    if (!sc)
        return 1; /* an invalid file: its tags are unknown, and it must not pass silently */
    for (size_t i = 0; i < json_array_size(sc->tags); i++)
        if (sc_opts_has_tag(o, json_string_value(json_array_get(sc->tags, i))))
            return 1;
    return 0;
}

/* ---- the worker pool ------------------------------------------------------------ */

typedef struct {
    const sc_opts_t *o;
    job_t *jobs;
    size_t njobs;
    atomic_size_t next;
    atomic_int stop; /* --fail-fast after a failure, or a signal */
    out_t *u;
} pool_t;

static void *worker(void *arg)
{
    pool_t *p = arg;
    for (;;) {
        size_t k = atomic_fetch_add(&p->next, 1);
        if (k >= p->njobs)
            break;
        job_t *j = &p->jobs[k];
        char reason[512];
        const char *unsuitable = sc_attach_unsuitable(p->o, j->sc, reason, sizeof reason);
        if (unsuitable || atomic_load(&p->stop) || sc_signal_caught()) {
            const char *why = unsuitable           ? unsuitable
                              : sc_signal_caught() ? "not run: the runner was interrupted"
                                                   : "not run: --fail-fast after a failure";
            if (rp_case_set_outcome(j->c, RP_SKIPPED, "skipped", why, NULL) != CM_OK)
                j->c->status = RP_SKIPPED;
            pthread_mutex_lock(&p->u->lock);
            p->u->done++;
            if (unsuitable)
                print_result(p->u, j->c);
            pthread_mutex_unlock(&p->u->lock);
            continue;
        }
        pthread_mutex_lock(&p->u->lock);
        p->u->running++;
        show_status(p->u);
        pthread_mutex_unlock(&p->u->lock);

        char kept[PATH_MAX] = "";
        rp_status_t st = sc_run_scenario(p->o, j->sc, j->store, j->c, kept);
        if (*kept && rp_case_set_kept(j->c, kept) != CM_OK) {
            /* the path is also in the case's log */
        }
        /* A scenario skipped for what this bench lacks (sc_pg.h) is no failure. */
        if (st != RP_PASSED && st != RP_SKIPPED && p->o->fail_fast)
            atomic_store(&p->stop, 1);

        pthread_mutex_lock(&p->u->lock);
        p->u->running--;
        p->u->done++;
        if (st == RP_PASSED)
            p->u->passed++;
        else if (st != RP_SKIPPED)
            p->u->failed++;
        print_result(p->u, j->c);
        pthread_mutex_unlock(&p->u->lock);
    }
    return NULL;
}

static int run_pool(pool_t *p, int jobs)
{
    pthread_t tids[SC_MAX_JOBS];
    int n = jobs < (int)p->njobs ? jobs : (int)p->njobs, started = 0;
    for (int i = 0; i < n; i++) {
        if (pthread_create(&tids[i], NULL, worker, p) != 0)
            break;
        started++;
    }
    if (started == 0 && p->njobs > 0)
        worker(p); /* no threads at all: run them here, one by one */
    for (int i = 0; i < started; i++)
        pthread_join(tids[i], NULL);
    return started;
}

static int write_reports(const sc_opts_t *o, const rp_report_t *report)
{
    char err[CM_ERR_LEN];
    int ok = 1;
    if (o->junit && rp_junit_write(report, o->junit, err) != CM_OK) {
        fprintf(stderr, "scenario: JUnit report: %s\n", err);
        ok = 0;
    }
    if (o->json && rp_json_write(report, o->json, err) != CM_OK) {
        fprintf(stderr, "scenario: JSON report: %s\n", err);
        ok = 0;
    }
    if (o->html && rp_html_write(report, o->html, err) != CM_OK) {
        fprintf(stderr, "scenario: HTML report: %s\n", err);
        ok = 0;
    }
    /* The health report (reports/rp_health.h) goes with --out's reports when scenarios with
     * an "area" (the contract suite) ran: a run without any has nothing to judge. */
    int health = o->out && rp_health_has_areas(report);
    /* The gateway judged: the foreign one's command, or our gateway's program. */
    const char *judged = o->gateway_cmd ? o->gateway_cmd : o->gateway;
    if (health && rp_health_write(report, judged, o->out, err) != CM_OK) {
        fprintf(stderr, "scenario: health report: %s\n", err);
        ok = 0;
    }
    if (!ok)
        return 0;
    if (!o->junit && !o->json && !o->html)
        printf("no report written (--out DIR writes junit.xml, report.json and report.html)\n");
    const char *const kinds[3] = {"JUnit", "JSON", "HTML"};
    const char *const paths[3] = {o->junit, o->json, o->html};
    for (int k = 0; k < 3; k++)
        if (paths[k])
            printf("%-5s report: %s\n", kinds[k], paths[k]);
    if (health)
        printf("health report: %s/health.json, %s/health.html\n", o->out, o->out);
    return ok;
}

int main(int argc, char **argv)
{
    sc_opts_t o;
    sc_filelist_t files = {0};
    rp_report_t *report = NULL;
    sc_scenario_t **loaded = NULL;
    job_t *jobs = NULL;
    size_t nloaded = 0, njobs = 0, nselected = 0, invalid = 0;
    char err[SC_ERR_LEN];
    int status = EXIT_PASS;
    out_t u;
    memset(&u, 0, sizeof u);
    pthread_mutex_init(&u.lock, NULL);

    if (sc_opts_parse(argc, argv, NULL, &o, err) != CM_OK) {
        fprintf(stderr, "scenario: %s\n", err);
        sc_opts_free(&o);
        pthread_mutex_destroy(&u.lock);
        return EXIT_USAGE;
    }
    if (o.help) {
        fputs(sc_opts_usage(), stdout);
        sc_opts_free(&o);
        pthread_mutex_destroy(&u.lock);
        return EXIT_PASS;
    }
    u.o = &o;
    const char *nc = getenv("NO_COLOR"), *term = getenv("TERM");
    u.tty = isatty(STDOUT_FILENO) && !o.quiet && !(term && !strcmp(term, "dumb"));
    u.colour = u.tty && !(nc && *nc);

    for (size_t i = 0; i < o.ninputs; i++) {
        if (sc_files_collect(&files, o.inputs[i], err) != CM_OK) {
            fprintf(stderr, "scenario: %s\n", err);
            status = EXIT_USAGE;
            goto out;
        }
    }
    if (files.n == 0) {
        fprintf(stderr, "scenario: no *.json, *.yaml or *.yml scenario files found\n");
        status = EXIT_USAGE;
        goto out;
    }
    if (!o.check && !o.attach &&
        !((o.gateway_cmd || check_program("gateway", o.gateway, "--gateway")) &&
          check_program("simulators", o.simulators, "--simulators"))) {
        status = EXIT_USAGE;
        goto out;
    }
    /* Every scenario would be skipped for it: say so once, before anything starts. */
    char why[256];
    if (!o.check && sc_opts_has_store(&o, SC_STORE_POSTGRES) && !sc_pg_available(why, sizeof why)) {
        fprintf(stderr, "scenario: --store postgres %s\n", why);
        status = EXIT_USAGE;
        goto out;
    }
    sc_signal_install();
    /* --gateway-cmd: the reports (JSON "name", JUnit <testsuites name>) and the output name
     * the gateway under test; each case's log says it again, its SKIP line why not run. */
    char under_test[1024] = "scenario";
    if (o.gateway_cmd) {
        snprintf(under_test, sizeof under_test, "scenario --gateway-cmd '%s' --gateway-health %s",
                 o.gateway_cmd, o.gateway_health);
        printf("gateway under test: sh -c '%s' (ready: GET %s answers 200)\n", o.gateway_cmd,
               o.gateway_health);
    }
    if (cm_http_global_init() != CM_OK || !(report = rp_report_new(under_test)) ||
        !(loaded = calloc(files.n, sizeof *loaded)) ||
        !(jobs = calloc(files.n * (size_t)o.repeat * (o.nstores ? o.nstores : 1), sizeof *jobs))) {
        fprintf(stderr, "scenario: cannot initialise (libcurl or memory)\n");
        status = EXIT_USAGE;
        goto out;
    }
    report->started_ms = cm_clock_now_ms();
    report->has_seed = o.has_seed;
    report->seed = o.seed;
    report->jobs = o.jobs;
    report->repeat = o.repeat;
    report->speed = o.speed;

    /* Load and validate everything first: a broken file is reported before anything
     * starts, and the cases exist before the workers fill them in. */
    for (size_t i = 0; i < files.n; i++) {
        const char *path = files.paths[i];
        sc_scenario_t *sc = NULL;
        if (sc_scenario_load(path, &sc, err) != CM_OK) {
            if (!selected(&o, path, NULL))
                continue;
            nselected++;
            invalid++;
            rp_case_t *c = record_invalid(report, path, err);
            if (!c) {
                fprintf(stderr, "scenario: out of memory\n");
                status = EXIT_USAGE;
                goto out;
            }
            u.done++;
            u.failed++;
            print_result(&u, c);
            continue;
        }
        if (!selected(&o, path, sc)) {
            sc_scenario_free(&sc);
            continue;
        }
        nselected++;
        loaded[nloaded++] = sc;
        if (o.check) {
            u.passed++;
            if (!o.quiet)
                printf("PASS %s (valid)\n", sc->name);
            continue;
        }
    }
    /* A suite per file and store, every store's after the other's: with --store the names
     * say which store ("[postgres]"), so that the runs of one scenario on two stores, or
     * the reports of two runs side by side, never look like the same test. */
    for (size_t k = 0; !o.check && k < (o.nstores ? o.nstores : 1); k++) {
        sc_store_t store = o.nstores ? o.stores[k] : SC_STORE_AS_WRITTEN;
        for (size_t i = 0; i < nloaded; i++) {
            if (add_jobs(report, &o, loaded[i], store, jobs, &njobs) != CM_OK) {
                fprintf(stderr, "scenario: out of memory\n");
                status = EXIT_USAGE;
                goto out;
            }
        }
    }
    if (nselected == 0) {
        if (o.ntags)
            fprintf(stderr, "scenario: no scenario matches the --tag/--filter given\n");
        else
            fprintf(stderr, "scenario: no scenario matches --filter \"%s\"\n", o.filter);
        status = EXIT_USAGE;
        goto out;
    }

    if (o.monitor) {
        /* A monitor runs for days: a file that does not load is fixed before it starts. */
        if (invalid) {
            fprintf(stderr, "scenario: --monitor: %zu file(s) did not load (above)\n", invalid);
            status = EXIT_USAGE;
        } else if (sc_monitor_run(&o, loaded, nloaded, err) != 0) {
            fprintf(stderr, "scenario: --monitor: %s\n", err);
            status = EXIT_USAGE;
        }
        goto out;
    }
    if (!o.check) {
        u.total = njobs + invalid;
        int64_t t0 = cm_clock_mono_ms();
        pool_t pool = {.o = &o, .jobs = jobs, .njobs = njobs, .u = &u};
        atomic_init(&pool.next, 0);
        atomic_init(&pool.stop, 0);
        if (o.fail_fast && invalid)
            atomic_store(&pool.stop, 1);
        run_pool(&pool, o.jobs);
        pthread_mutex_lock(&u.lock);
        clear_status(&u);
        pthread_mutex_unlock(&u.lock);
        /* Not part of any scenario: the databases the last ones used (sc_pg.h). */
        char derr[CM_ERR_LEN];
        size_t undropped = sc_pg_drop_wait(derr);
        if (undropped)
            fprintf(stderr, "scenario: could not drop %zu PostgreSQL database(s); the first: %s\n",
                    undropped, derr);
        report->time_s = (double)(cm_clock_mono_ms() - t0) / 1000.0;
        if (!write_reports(&o, report))
            status = EXIT_USAGE;
        rp_counts_t k = rp_report_counts(report);
        double sim = 0;
        for (size_t i = 0; i < njobs; i++)
            sim += jobs[i].c->sim_time_s;
        if (k.skipped)
            printf("%zu skipped or not run (SKIP lines say why: --fail-fast, --attach, an "
                   "interruption, or what the bench lacks)\n",
                   k.skipped);
        /* A fixed shape: ci/bench-suite reads it. */
        printf("ran %zu scenarios in %.2f s wall (-j %d), %.1f s simulated\n", k.tests - k.skipped,
               report->time_s, o.jobs, sim);
    }
    if (sc_signal_caught())
        fprintf(stderr, "scenario: interrupted by signal %d\n", sc_signal_caught());
    printf("%zu passed, %zu failed\n", u.passed, u.failed);
    if (status == EXIT_PASS && (u.failed || sc_signal_caught()))
        status = EXIT_FAILED;
out:
    for (size_t i = 0; i < nloaded; i++)
        sc_scenario_free(&loaded[i]);
    free(loaded);
    free(jobs);
    rp_report_free(&report);
    sc_files_free(&files);
    sc_opts_free(&o);
    pthread_mutex_destroy(&u.lock);
    return status;
}
