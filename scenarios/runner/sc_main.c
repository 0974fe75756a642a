/* sc_main.c - the scenario runner's command line: find the files, validate them, run each
 * scenario, print progress and diagnoses, write the JUnit report, summarise. The only
 * place that exits. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cm_clock.h"
#include "cm_http_client.h"
#include "rp_junit.h"
#include "rp_result.h"
#include "sc_files.h"
#include "sc_opts.h"
#include "sc_run.h"
#include "sc_scenario.h"
#include "sc_signal.h"

/* Exit statuses: 0 all passed, 1 some failed, 2 usage or setup error. */
enum { EXIT_PASS = 0, EXIT_FAILED = 1, EXIT_USAGE = 2 };

static int matches(const sc_opts_t *o, const char *path, const char *name)
{
    return !o->filter || strstr(path, o->filter) || (name && strstr(name, o->filter));
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

static void print_result(const sc_opts_t *o, const rp_case_t *c, const char *kept)
{
    int ok = c->status == RP_PASSED;
    printf("%s %s (%.2f s)\n", ok ? "PASS" : "FAIL", c->name, c->time_s);
    if (!ok)
        print_indented(stdout, c->detail ? c->detail : c->message, "    ");
    if (!ok || o->verbose) {
        char *log = rp_case_log_text(c);
        if (log && *log) {
            printf("    log:\n");
            print_indented(stdout, log, "    ");
        }
        free(log);
    }
    if (*kept)
        printf("    kept %s\n", kept);
    fflush(stdout);
}

/* Records a file that could not be loaded as an errored case (no name: the file's). */
static cm_err_t record_invalid(rp_report_t *r, const char *path, const char *msg)
{
    char cls[1024];
    rp_suite_t *s = rp_report_add_suite(r, path);
    rp_case_t *c = s ? rp_suite_add_case(s, path, rp_classname(path, cls, sizeof cls)) : NULL;
    if (!c)
        return CM_ENOMEM;
    return rp_case_set_outcome(c, RP_ERRORED, "invalid", msg, msg);
}

static int check_program(const char *what, const char *path, const char *flag)
{
    if (access(path, X_OK) == 0)
        return 1;
    fprintf(stderr, "scenario: %s program not found at %s (build it, or pass %s PATH)\n", what,
            path, flag);
    return 0;
}

int main(int argc, char **argv)
{
    sc_opts_t o;
    sc_filelist_t files = {0};
    rp_report_t *report = NULL;
    char err[SC_ERR_LEN];
    int status = EXIT_PASS;
    size_t passed = 0, failed = 0;

    if (sc_opts_parse(argc, argv, NULL, &o, err) != CM_OK) {
        fprintf(stderr, "scenario: %s\n", err);
        sc_opts_free(&o);
        return EXIT_USAGE;
    }
    if (o.help) {
        fputs(sc_opts_usage(), stdout);
        sc_opts_free(&o);
        return EXIT_PASS;
    }
    for (size_t i = 0; i < o.ninputs; i++) {
        if (sc_files_collect(&files, o.inputs[i], err) != CM_OK) {
            fprintf(stderr, "scenario: %s\n", err);
            status = EXIT_USAGE;
            goto out;
        }
    }
    if (files.n == 0) {
        fprintf(stderr, "scenario: no *.json scenario files found\n");
        status = EXIT_USAGE;
        goto out;
    }
    if (!o.check && !(check_program("gateway", o.gateway, "--gateway") &&
                      check_program("simulators", o.simulators, "--simulators"))) {
        status = EXIT_USAGE;
        goto out;
    }
    sc_signal_install();
    if (cm_http_global_init() != CM_OK || !(report = rp_report_new("scenario"))) {
        fprintf(stderr, "scenario: cannot initialise libcurl\n");
        status = EXIT_USAGE;
        goto out;
    }

    size_t selected = 0;
    int64_t t0 = cm_clock_mono_ms();
    for (size_t i = 0; i < files.n; i++) {
        const char *path = files.paths[i];
        sc_scenario_t *sc = NULL;
        char kept[PATH_MAX] = "";
        if (sc_signal_caught()) {
            fprintf(stderr, "scenario: interrupted, %zu file(s) not run\n", files.n - i);
            break;
        }
        if (sc_scenario_load(path, &sc, err) != CM_OK) {
            if (!matches(&o, path, NULL))
                continue;
            selected++;
            failed++;
            if (record_invalid(report, path, err) != CM_OK) {
                fprintf(stderr, "scenario: out of memory\n");
                status = EXIT_USAGE;
                goto out;
            }
            rp_suite_t *s = report->suites[report->nsuites - 1];
            print_result(&o, s->cases[0], kept);
            continue;
        }
        if (!matches(&o, path, sc->name)) {
            sc_scenario_free(&sc);
            continue;
        }
        selected++;
        char cls[1024];
        rp_suite_t *s = rp_report_add_suite(report, path);
        rp_case_t *c =
            s ? rp_suite_add_case(s, sc->name, rp_classname(path, cls, sizeof cls)) : NULL;
        if (!c) {
            sc_scenario_free(&sc);
            fprintf(stderr, "scenario: out of memory\n");
            status = EXIT_USAGE;
            goto out;
        }
        if (o.check) {
            passed++;
            printf("PASS %s (valid)\n", sc->name);
        } else {
            if (sc_run_scenario(&o, sc, c, kept) == RP_PASSED)
                passed++;
            else
                failed++;
            print_result(&o, c, kept);
        }
        sc_scenario_free(&sc);
    }
    if (selected == 0) {
        fprintf(stderr, "scenario: no scenario matches --filter \"%s\"\n", o.filter);
        status = EXIT_USAGE;
        goto out;
    }
    if (!o.check) {
        report->time_s = (double)(cm_clock_mono_ms() - t0) / 1000.0;
        if (rp_junit_write(report, o.junit, err) != CM_OK) {
            fprintf(stderr, "scenario: JUnit report: %s\n", err);
            status = EXIT_USAGE;
        }
    }
    printf("%zu passed, %zu failed\n", passed, failed);
    if (status == EXIT_PASS && (failed || sc_signal_caught()))
        status = EXIT_FAILED;
out:
    rp_report_free(&report);
    sc_files_free(&files);
    sc_opts_free(&o);
    return status;
}
