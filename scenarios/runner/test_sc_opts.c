/* test_sc_opts.c - the command line: defaults, values, and usage errors. */
#include <criterion/criterion.h>
#include <string.h>

#include "sc_attach.h"
#include "sc_opts.h"
#include "sc_scenario.h"

static cm_err_t parse(sc_opts_t *o, char *err, int argc, char **argv)
{
    return sc_opts_parse(argc, argv, "/b/scenarios/scenario", o, err);
}

Test(opts, defaults)
{
    char *argv[] = {"scenario", "scenarios/basic", NULL};
    sc_opts_t o;
    char err[CM_ERR_LEN] = "";
    cr_assert_eq(parse(&o, err, 2, argv), CM_OK, "%s", err);
    /* No report unless asked: a run by hand must not replace another run's reports. */
    cr_assert_null(o.junit);
    cr_assert_null(o.json);
    cr_assert_null(o.html);
    cr_assert_str_eq(o.gateway, "/b/gateway/gateway");
    cr_assert_str_eq(o.simulators, "/b/simulators/simulators");
    cr_assert_eq(o.timeout_ms, 60000);
    cr_assert_not(o.has_seed);
    cr_assert_not(o.keep);
    cr_assert_not(o.verbose);
    cr_assert_eq(o.ninputs, 1);
    cr_assert_str_eq(o.inputs[0], "scenarios/basic");
    sc_opts_free(&o);
}

Test(opts, out_dir_names_three_reports_and_single_files_win)
{
    char *argv[] = {"scenario", "--json", "/x/r.json", "--out", "reports/run1", "s", NULL};
    sc_opts_t o;
    char err[CM_ERR_LEN] = "";
    cr_assert_eq(parse(&o, err, 6, argv), CM_OK, "%s", err);
    cr_assert_str_eq(o.junit, "reports/run1/junit.xml");
    cr_assert_str_eq(o.json, "/x/r.json");
    cr_assert_str_eq(o.html, "reports/run1/report.html");
    sc_opts_free(&o);
}

Test(opts, every_option)
{
    char *argv[] = {"scenario",
                    "--junit",
                    "out.xml",
                    "--filter=dedup",
                    "--seed",
                    "42",
                    "-k",
                    "--gateway",
                    "/g",
                    "--simulators=/s",
                    "--timeout",
                    "2m",
                    "-v",
                    "a.json",
                    "--check",
                    "--",
                    "--odd-name.json",
                    NULL};
    sc_opts_t o;
    char err[CM_ERR_LEN] = "";
    cr_assert_eq(parse(&o, err, 17, argv), CM_OK, "%s", err);
    cr_assert_str_eq(o.junit, "out.xml");
    cr_assert_str_eq(o.filter, "dedup");
    cr_assert(o.has_seed);
    cr_assert_eq(o.seed, 42);
    cr_assert(o.keep);
    cr_assert(o.verbose);
    cr_assert(o.check);
    cr_assert_str_eq(o.gateway, "/g");
    cr_assert_str_eq(o.simulators, "/s");
    cr_assert_eq(o.timeout_ms, 120000);
    cr_assert_eq(o.ninputs, 2);
    cr_assert_str_eq(o.inputs[1], "--odd-name.json");
    sc_opts_free(&o);
}

Test(opts, usage_errors)
{
    struct {
        int argc;
        char *argv[4];
        const char *want;
    } cases[] = {
        {2, {"scenario", "--bogus"}, "unknown option '--bogus'"},
        {2, {"scenario", "-x"}, "unknown option '-x'"},
        {3, {"scenario", "--seedling", "x"}, "unknown option '--seedling'"},
        {2, {"scenario", "--junit"}, "--junit needs a value"},
        {3, {"scenario", "--junit=", "x"}, "--junit needs a non-empty value"},
        {2, {"scenario", "--out"}, "--out needs a value"},
        {4, {"scenario", "--seed", "-3", "x"}, "--seed: '-3' is not a non-negative integer"},
        {4, {"scenario", "--seed", "7x", "x"}, "--seed: '7x'"},
        {4, {"scenario", "--timeout", "60", "x"}, "--timeout: \"60\" is not a duration"},
        {4, {"scenario", "--timeout", "0s", "x"}, "--timeout must be longer than 0"},
        {1, {"scenario"}, "no scenario files or directories given"},
        {2, {"scenario", "-v"}, "no scenario files or directories given"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        sc_opts_t o;
        char err[CM_ERR_LEN] = "";
        cr_assert_eq(parse(&o, err, cases[i].argc, cases[i].argv), CM_EINVAL, "case %zu", i);
        cr_assert_not_null(strstr(err, cases[i].want), "want \"%s\", got \"%s\"", cases[i].want,
                           err);
        sc_opts_free(&o);
    }
}

Test(opts, help_needs_no_inputs)
{
    char *argv[] = {"scenario", "--help", NULL};
    sc_opts_t o;
    cr_assert_eq(parse(&o, NULL, 2, argv), CM_OK);
    cr_assert(o.help);
    cr_assert_not_null(strstr(sc_opts_usage(), "--junit FILE"));
    sc_opts_free(&o);
}

Test(opts, parallel_tags_repeat_reports_and_clock)
{
    char *argv[] = {
        "scenario",       "-j4",    "--tag",  "dedup,retry", "--tag=crash",   "--repeat", "3",
        "--fail-fast",    "-q",     "--json", "r.json",      "--html=r.html", "--speed",  "10",
        "--faketime-lib", "/ft.so", "d",      NULL};
    sc_opts_t o;
    char err[CM_ERR_LEN] = "";
    cr_assert_eq(parse(&o, err, 17, argv), CM_OK, "%s", err);
    cr_assert_eq(o.jobs, 4);
    cr_assert_eq(o.ntags, 3);
    cr_assert(sc_opts_has_tag(&o, "dedup"));
    cr_assert(sc_opts_has_tag(&o, "retry"));
    cr_assert(sc_opts_has_tag(&o, "crash"));
    cr_assert_not(sc_opts_has_tag(&o, "dedu"));
    cr_assert_not(sc_opts_has_tag(&o, "basic"));
    cr_assert_eq(o.repeat, 3);
    cr_assert(o.fail_fast);
    cr_assert(o.quiet);
    cr_assert_str_eq(o.json, "r.json");
    cr_assert_str_eq(o.html, "r.html");
    cr_assert_eq(o.speed, 10);
    cr_assert_str_eq(o.faketime_lib, "/ft.so");
    sc_opts_free(&o);

    char *argv2[] = {"scenario", "-j", "2", "d", NULL};
    cr_assert_eq(parse(&o, err, 4, argv2), CM_OK, "%s", err);
    cr_assert_eq(o.jobs, 2);
    cr_assert_eq(o.repeat, 1);
    cr_assert_eq(o.speed, 0, "no --speed: each scenario's own");
    sc_opts_free(&o);
}

Test(opts, bad_counts)
{
    struct {
        char *a, *b, *want;
    } cases[] = {
        {"-j", "0", "-j: '0' is not a whole number from 1 to 64"},
        {"--jobs", "65", "--jobs: '65' is not a whole number from 1 to 64"},
        {"--repeat", "x", "--repeat: 'x' is not a whole number"},
        {"--speed", "2.5", "--speed: '2.5' is not a whole number from 1 to 100"},
        {"--speed", "-3", "--speed: '-3' is not a whole number"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *argv[] = {"scenario", cases[i].a, cases[i].b, "d", NULL};
        sc_opts_t o;
        char err[CM_ERR_LEN] = "";
        cr_assert_eq(parse(&o, err, 4, argv), CM_EINVAL, "%s %s accepted", cases[i].a, cases[i].b);
        cr_assert_not_null(strstr(err, cases[i].want), "want %s\n got %s", cases[i].want, err);
        sc_opts_free(&o);
    }
}

Test(opts, store_default_postgres_sqlite_and_both)
{
    char *argv[] = {"scenario", "d", NULL};
    sc_opts_t o;
    char err[CM_ERR_LEN] = "";
    cr_assert_eq(parse(&o, err, 2, argv), CM_OK, "%s", err);
    cr_assert_eq(o.nstores, 0, "no --store: once, what each scenario says");
    cr_assert_not(sc_opts_has_store(&o, SC_STORE_POSTGRES));
    cr_assert_str_eq(sc_store_name(SC_STORE_AS_WRITTEN), "as written");
    /* ci/pg of the source tree by default, wherever the runner is run from */
    size_t n = strlen(o.ci_pg);
    cr_assert(n >= 5 && !strcmp(o.ci_pg + n - 5, "ci/pg"), "default --ci-pg: %s", o.ci_pg);
    sc_opts_free(&o);

    char *pg[] = {"scenario", "--store", "postgres", "--ci-pg=/x/pg", "d", NULL};
    cr_assert_eq(parse(&o, err, 5, pg), CM_OK, "%s", err);
    cr_assert_eq(o.nstores, 1);
    cr_assert_eq(o.stores[0], SC_STORE_POSTGRES);
    cr_assert(sc_opts_has_store(&o, SC_STORE_POSTGRES));
    cr_assert_not(sc_opts_has_store(&o, SC_STORE_SQLITE));
    cr_assert_str_eq(sc_store_name(o.stores[0]), "postgres");
    cr_assert_str_eq(o.ci_pg, "/x/pg");
    cr_assert_eq(o.ninputs, 1);
    sc_opts_free(&o);

    char *lite[] = {"scenario", "d", "--store=sqlite", NULL};
    cr_assert_eq(parse(&o, err, 3, lite), CM_OK, "%s", err);
    cr_assert_eq(o.nstores, 1);
    cr_assert_eq(o.stores[0], SC_STORE_SQLITE);
    cr_assert_str_eq(sc_store_name(o.stores[0]), "sqlite");
    sc_opts_free(&o);

    /* both, in the order given; the last --store wins */
    char *both[] = {"scenario", "--store", "sqlite", "--store", "postgres,sqlite", "d", NULL};
    cr_assert_eq(parse(&o, err, 6, both), CM_OK, "%s", err);
    cr_assert_eq(o.nstores, 2);
    cr_assert_eq(o.stores[0], SC_STORE_POSTGRES);
    cr_assert_eq(o.stores[1], SC_STORE_SQLITE);
    cr_assert(sc_opts_has_store(&o, SC_STORE_SQLITE));
    sc_opts_free(&o);
}

Test(opts, store_usage_errors)
{
    struct {
        int argc;
        char *argv[6];
        const char *want;
    } cases[] = {
        {2, {"scenario", "--store"}, "--store needs a value"},
        {3, {"scenario", "--store=", "d"}, "--store needs a non-empty value"},
        {4, {"scenario", "--store", "mysql", "d"}, "--store: 'mysql' is not postgres or sqlite"},
        {4, {"scenario", "--store", "Postgres", "d"}, "'Postgres' is not postgres or sqlite"},
        {4, {"scenario", "--store", "sqlite,", "d"}, "--store: '' is not postgres or sqlite"},
        {4, {"scenario", "--store", ",sqlite", "d"}, "--store: '' is not postgres or sqlite"},
        {4, {"scenario", "--store", "sqlite,mysql", "d"}, "'mysql' is not postgres or sqlite"},
        {4, {"scenario", "--store", "postgres,postgres", "d"}, "'postgres' is named twice"},
        /* attach mode: the parts run already on their own store, before or after --store */
        {5,
         {"scenario", "--store", "postgres", "--attach=gateway=http://127.0.0.1:8080", "d"},
         "--store cannot be used with --attach"},
        {5,
         {"scenario", "--attach", "gateway=http://127.0.0.1:8080", "--store=sqlite", "d"},
         "--store cannot be used with --attach"},
        {2, {"scenario", "--ci-pg"}, "--ci-pg needs a value"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        sc_opts_t o;
        char err[CM_ERR_LEN] = "";
        cr_assert_eq(parse(&o, err, cases[i].argc, cases[i].argv), CM_EINVAL, "case %zu", i);
        cr_assert_not_null(strstr(err, cases[i].want), "want \"%s\", got \"%s\"", cases[i].want,
                           err);
        sc_opts_free(&o);
    }
}

Test(opts, usage_names_store_and_ci_pg)
{
    cr_assert_not_null(strstr(sc_opts_usage(), "--store STORE"));
    cr_assert_not_null(strstr(sc_opts_usage(), "sqlite,postgres"));
    cr_assert_not_null(strstr(sc_opts_usage(), "--ci-pg PATH"));
}

Test(opts, attach_config_and_monitor)
{
    char *argv[] = {"scenario",
                    "--attach",
                    "gateway=http://127.0.0.1:8080/,control=http://127.0.0.1:9000,config=x/gw.json",
                    "--monitor",
                    "--every",
                    "5m",
                    "--listen",
                    "0.0.0.0:9464",
                    "--cycles",
                    "3",
                    "scenarios",
                    NULL};
    sc_opts_t o;
    char err[CM_ERR_LEN] = "";
    cr_assert_eq(parse(&o, err, 11, argv), CM_OK, "%s", err);
    cr_assert(o.attach);
    cr_assert_str_eq(o.attach_url[0], "http://127.0.0.1:8080");
    cr_assert_str_eq(o.attach_url[1], "http://127.0.0.1:9000");
    cr_assert_str_eq(o.attach_config, "x/gw.json");
    cr_assert(o.monitor);
    cr_assert_eq(o.every_ms, 300000);
    cr_assert_str_eq(o.listen_addr, "0.0.0.0");
    cr_assert_eq(o.listen_port, 9464);
    cr_assert_eq(o.cycles, 3);
    sc_opts_free(&o);

    /* The config the scenarios are checked against when none is given. */
    char *plain[] = {"scenario", "--attach", "gateway=http://g", "d", NULL};
    cr_assert_eq(parse(&o, err, 4, plain), CM_OK, "%s", err);
    cr_assert_str_eq(o.attach_config, SC_ATTACH_CONFIG);
    cr_assert_not(o.monitor);
    sc_opts_free(&o);
}

Test(opts, attach_and_monitor_usage_errors)
{
    struct {
        int argc;
        char *argv[10];
        const char *want;
    } cases[] = {
        /* shared parts: one scenario at a time */
        {5,
         {"scenario", "-j", "2", "--attach=gateway=http://g", "d"},
         "-j 2 cannot be used with --attach"},
        {3, {"scenario", "--attach=gateway=http://g,config=", "d"}, "config= needs a path"},
        {9,
         {"scenario", "--monitor", "--every", "5m", "--listen", "127.0.0.1:0", "--cycles", "1",
          "d"},
         "--monitor needs --attach"},
        {6,
         {"scenario", "--attach=gateway=http://g", "--monitor", "--every=5m", "--listen=:9", "d"},
         "--listen: ':9' is not ADDR:PORT"},
        {6,
         {"scenario", "--attach=gateway=http://g", "--monitor", "--every=5m", "--listen=h:70000",
          "d"},
         "has no port from 0 to 65535"},
        {6,
         {"scenario", "--attach=gateway=http://g", "--monitor", "--every=500ms", "--listen=h:1",
          "d"},
         "--every must be at least 1s"},
        {5,
         {"scenario", "--attach=gateway=http://g", "--monitor", "--listen=h:1", "d"},
         "--monitor needs --attach, --every DUR and --listen"},
        {4, {"scenario", "--every", "5m", "d"}, "--every, --listen and --cycles go with --monitor"},
        {8,
         {"scenario", "--attach=gateway=http://g", "--monitor", "--every=5m", "--listen=h:1",
          "--repeat", "2", "d"},
         "--monitor cannot be used with --check, --repeat or --fail-fast"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        sc_opts_t o;
        char err[CM_ERR_LEN] = "";
        cr_assert_eq(parse(&o, err, cases[i].argc, cases[i].argv), CM_EINVAL, "case %zu", i);
        cr_assert_not_null(strstr(err, cases[i].want), "want \"%s\", got \"%s\"", cases[i].want,
                           err);
        sc_opts_free(&o);
    }
}

Test(opts, gateway_cmd_and_health)
{
    char *argv[] = {"scenario", "--gateway-cmd", "python3 gw.py --port {port}", "d", NULL};
    sc_opts_t o;
    char err[CM_ERR_LEN] = "";
    cr_assert_eq(parse(&o, err, 4, argv), CM_OK, "%s", err);
    cr_assert_str_eq(o.gateway_cmd, "python3 gw.py --port {port}");
    cr_assert_str_eq(o.gateway_health, "/health", "the default readiness path");
    sc_opts_free(&o);

    char *argv2[] = {
        "scenario", "--gateway-cmd=./run", "--gateway-health", "/health/ready?x=1", "-j", "2", "d",
        NULL};
    cr_assert_eq(parse(&o, err, 7, argv2), CM_OK, "%s", err);
    cr_assert_str_eq(o.gateway_cmd, "./run");
    cr_assert_str_eq(o.gateway_health, "/health/ready?x=1");
    cr_assert_eq(o.jobs, 2, "each scenario starts its own gateway: -j is fine");
    sc_opts_free(&o);

    char *argv3[] = {"scenario", "d", NULL};
    cr_assert_eq(parse(&o, err, 2, argv3), CM_OK, "%s", err);
    cr_assert_null(o.gateway_cmd, "without the option: our gateway");
    sc_opts_free(&o);
}

Test(opts, gateway_cmd_usage_errors)
{
    struct {
        char *argv[8];
        int argc;
        const char *want;
    } cases[] = {
        {{"scenario", "--gateway-cmd", NULL}, 2, "--gateway-cmd needs a value"},
        {{"scenario", "--gateway-cmd", "", "d"}, 4, "--gateway-cmd needs a non-empty value"},
        {{"scenario", "--gateway-health", "/h", "d"},
         4,
         "--gateway-health goes with --gateway-cmd"},
        {{"scenario", "--gateway-cmd", "x", "--gateway-health", "health", "d"},
         6,
         "--gateway-health: 'health' is not a path starting with '/'"},
        {{"scenario", "--gateway-cmd", "x", "--gateway-health", "/a b", "d"},
         6,
         "--gateway-health: '/a b' is not a path"},
        {{"scenario", "--gateway-cmd", "x", "--attach", "gateway=http://h:1", "d"},
         6,
         "--gateway-cmd cannot be used with --attach"},
        {{"scenario", "--gateway-cmd", "x", "--store", "postgres", "d"},
         6,
         "--store cannot be used with --gateway-cmd"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        sc_opts_t o;
        char err[CM_ERR_LEN] = "";
        cr_assert_eq(parse(&o, err, cases[i].argc, cases[i].argv), CM_EINVAL, "case %zu accepted",
                     i);
        cr_assert_not_null(strstr(err, cases[i].want), "want %s\n got %s", cases[i].want, err);
        sc_opts_free(&o);
    }
}

Test(opts, gateway_cmd_placeholders)
{
    char out[64];
    cr_assert_eq(sc_opts_gateway_cmd_expand("gw --port {port} --data {data_dir} {port}", 4711,
                                            "/tmp/s/data", out, sizeof out),
                 CM_OK);
    cr_assert_str_eq(out, "gw --port 4711 --data /tmp/s/data 4711");
    /* Other braces are the shell's: kept as written. */
    cr_assert_eq(
        sc_opts_gateway_cmd_expand("gw -p ${BB_PORT} {other} {port", 1, "/d", out, sizeof out),
        CM_OK);
    cr_assert_str_eq(out, "gw -p ${BB_PORT} {other} {port");
    cr_assert_eq(sc_opts_gateway_cmd_expand("{data_dir}", 1, "/a/very/long/data/dir", out, 10),
                 CM_ETOOBIG, "a template that does not fit is refused, not cut");
    cr_assert_eq(sc_opts_gateway_cmd_expand("", 1, "/d", out, sizeof out), CM_OK);
    cr_assert_str_eq(out, "");
}

Test(opts, usage_names_gateway_cmd)
{
    cr_assert_not_null(strstr(sc_opts_usage(), "--gateway-cmd TEMPLATE"));
    cr_assert_not_null(strstr(sc_opts_usage(), "--gateway-health PATH"));
}

/* The skip rules for a gateway under --gateway-cmd (sc_attach_unsuitable). */
static const char *foreign_why(const char *text, char *why, size_t cap)
{
    char *argv[] = {"scenario", "--gateway-cmd", "./gw", "d", NULL};
    static sc_opts_t o;
    char err[SC_ERR_LEN] = "";
    sc_scenario_t *sc = NULL;
    cr_assert_eq(parse(&o, err, 4, argv), CM_OK, "%s", err);
    cr_assert_eq(sc_scenario_parse("t/x.json", text, strlen(text), &sc, err), CM_OK, "%s", err);
    const char *r = sc_attach_unsuitable(&o, sc, why, cap);
    sc_scenario_free(&sc);
    sc_opts_free(&o);
    return r;
}

#define SC_HEAD                                                                                    \
    "{\"name\":\"n\",\"tags\":[],\"seed\":1,\"gateway\":{\"config\":"                              \
    "\"fixtures/gateway/default.json\"}"
#define SC_CALL "{\"call\":{\"fixture\":\"fixtures/retell/call_booking.json\"}},"

Test(opts, gateway_cmd_skips_what_needs_our_gateway)
{
    char why[512];
    /* Only the simulators' journal and effects, and the gateway's answers: runs. */
    cr_assert_null(
        foreign_why(SC_HEAD ",\"steps\":[" SC_CALL
                            "{\"webhook\":{\"provider\":\"retell\",\"call\":\"${call.call_id}\"}},"
                            "{\"gateway\":{\"action\":\"restart\"}},"
                            "{\"expect\":{\"effects\":{\"calcom.booking\":1},"
                            "\"journal\":{\"calcom POST /v2/bookings\":1}}}]}",
                    why, sizeof why),
        "%s", why);
    struct {
        const char *text, *want;
    } cases[] = {
        {SC_HEAD ",\"steps\":[" SC_CALL
                 "{\"wait\":{\"call\":\"${call.call_id}\",\"state\":\"booked\"}}]}",
         "steps[1] needs our gateway's own API (GET /admin/calls/${call.call_id})"},
        {SC_HEAD
         ",\"steps\":[{\"expect\":{\"effects\":{\"calcom.booking\":0},\"queue\":{\"dead\":0}}}]}",
         "needs our gateway's own API (GET /admin/queue)"},
        {SC_HEAD ",\"steps\":[{\"request\":{\"to\":\"gateway\",\"path\":\"/metrics\"},"
                 "\"expect\":{\"status\":200}}]}",
         "needs our gateway's own API (GET /metrics)"},
        {SC_HEAD ",\"steps\":[{\"request\":{\"to\":\"gateway\",\"path\":\"/x\",\"auth\":true},"
                 "\"expect\":{\"status\":200}}]}",
         "the admin token (\"auth\": true) on /x"},
        {SC_HEAD ",\"steps\":[{\"repeat\":{\"times\":2,\"step\":{\"request\":{\"to\":\"gateway\","
                 "\"path\":\"/admin/queue\"},\"expect\":{\"status\":200}}}}]}",
         "steps[0].step needs our gateway's own API"},
        {SC_HEAD ",\"steps\":[{\"request\":{\"to\":\"gateway\",\"path\":\"/health\"},"
                 "\"expect\":{\"status\":200}}],\"finally\":[{\"request\":{\"to\":\"gateway\","
                 "\"path\":\"/admin/sagas/x\"},\"expect\":{\"status\":200}}]}",
         "needs our gateway's own API (GET /admin/sagas/x)"},
        {SC_HEAD
         ",\"env\":{\"GW_X\":\"1\"},\"steps\":[{\"expect\":{\"effects\":{\"calcom.booking\":0}}}]}",
         "the gateway needs an environment of its own (\"env\"); --gateway-cmd"},
        {"{\"name\":\"n\",\"tags\":[],\"seed\":1,\"gateway\":{\"config\":"
         "\"fixtures/gateway/short_deadline.json\"},\"steps\":[{\"expect\":{\"effects\":"
         "{\"calcom.booking\":0}}}]}",
         "written for our gateway config fixtures/gateway/short_deadline.json"},
        {SC_HEAD ",\"steps\":[{\"gateway\":{\"action\":\"restart\",\"config\":"
                 "\"fixtures/gateway/short_deadline.json\"}},{\"expect\":{\"effects\":"
                 "{\"calcom.booking\":0}}}]}",
         "steps[0] restarts the gateway on our config"},
        {SC_HEAD
         ",\"store\":\"postgres\",\"steps\":[{\"expect\":{\"effects\":{\"calcom.booking\":0}}}]}",
         "written for our gateway on PostgreSQL"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *r = foreign_why(cases[i].text, why, sizeof why);
        cr_assert_not_null(r, "case %zu runs, want skipped: %s", i, cases[i].want);
        cr_assert_not_null(strstr(r, cases[i].want), "case %zu: want %s\n got %s", i, cases[i].want,
                           r);
    }
}
