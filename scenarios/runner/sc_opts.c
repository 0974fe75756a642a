/* sc_opts.c - command-line parsing; every bad value is a usage error naming the option. */
#include "sc_opts.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sc_duration.h"

const char *sc_opts_usage(void)
{
    return "usage: scenario [options] FILE_OR_DIR...\n"
           "Runs scenario files, JSON or YAML (directories are searched recursively for\n"
           "*.json, *.yaml and *.yml, in sorted order) against freshly started simulators\n"
           "and gateway.\n"
           "\n"
           "  --out DIR          write the three reports to DIR: junit.xml, report.json,\n"
           "                     report.html (none is written unless asked)\n"
           "  --junit FILE       JUnit XML report (instead of DIR/junit.xml)\n"
           "  --json FILE        JSON report (everything: seeds, timings, logs)\n"
           "  --html FILE        self-contained HTML report with a timeline per scenario\n"
           "  --filter SUBSTR    run only scenarios whose name or file path contains SUBSTR\n"
           "  --tag TAG          run only scenarios with this tag (repeat it, or a,b: any)\n"
           "  -j N, --jobs N     run N scenarios in parallel (default 1)\n"
           "  --repeat N         run every scenario N times (flake hunting)\n"
           "  --fail-fast        start no new scenario after the first failure\n"
           "  -q, --quiet        print failures and the summary only (default when $CI is set)\n"
           "  --seed N           override every scenario's seed\n"
           "  --keep, -k         keep every scenario's temp dir (failed ones are always kept)\n"
           "  --gateway PATH     gateway program (default: ../gateway/gateway next to this one)\n"
           "  --simulators PATH  simulators program (default: ../simulators/simulators)\n"
           "  --chaos-proxy PATH chaos proxy for scenarios with \"chaos\" (default:\n"
           "                     ../chaos/chaos-proxy)\n"
           "  --ci-pg PATH       the ci/pg script, for scenarios with a PostgreSQL server of\n"
           "                     their own (default: ci/pg of the source tree built from)\n"
           "  --timeout DUR      deadline per scenario, e.g. 90s, 2m (default 60s)\n"
           "  --speed N          override every scenario's clock speed-up (1: real time)\n"
           "  --store STORE      postgres: every scenario on a PostgreSQL database of its own\n"
           "                     on the server $GW_PG_URL names (run under ci/pg run), the\n"
           "                     \"store\" of every gateway config replaced by PostgreSQL's.\n"
           "                     sqlite: the scenarios as written, those written for\n"
           "                     PostgreSQL (\"store\": \"postgres\") skipped. sqlite,postgres:\n"
           "                     each scenario on both, one after the other. With --store\n"
           "                     the reports name each scenario's store. Default: what each\n"
           "                     scenario says. Not with --attach\n"
           "  --faketime-lib PATH  libfaketime for speed > 1 (default\n"
           "                     " SC_DEFAULT_FAKETIME_LIB ")\n"
           "  --check            only load and validate the files, start nothing\n"
           "  --attach gateway=URL,control=URL[,retell=URL,calcom=URL,stripe=URL,webhook=URL,\n"
           "                     config=PATH]\n"
           "                     run against parts already running (admin token from\n"
           "                     $SC_ADMIN_TOKEN or $GW_ADMIN_TOKEN), one scenario at a\n"
           "                     time, counts taken from each one's start, its faults and\n"
           "                     forced breakers undone at its end; scenarios that\n"
           "                     kill/restart the gateway, need a speed-up, a clock skew,\n"
           "                     the chaos proxy, an env or a gateway config other than\n"
           "                     config= (default " SC_ATTACH_CONFIG ") are skipped\n"
           "  --gateway-cmd TEMPLATE\n"
           "                     judge a gateway that is not ours: each scenario starts\n"
           "                     `sh -c TEMPLATE` (in its own process group, from the current\n"
           "                     directory, {port} and {data_dir} expanded) with the contract\n"
           "                     environment (BB_PORT, BB_DATA_DIR, BB_*_URL, keys, secrets:\n"
           "                     docs/contract.md); scenarios that need our admin API, our\n"
           "                     config, an env, several instances or PostgreSQL are skipped\n"
           "  --gateway-health PATH  with --gateway-cmd: ready once GET PATH answers 200\n"
           "                     (default " SC_DEFAULT_GATEWAY_HEALTH ")\n"
           "  --monitor          with --attach: run the scenarios every --every, serve\n"
           "                     Prometheus metrics about them on --listen, until SIGTERM\n"
           "  --every DUR        the monitor's period, e.g. 5m (required with --monitor)\n"
           "  --listen ADDR:PORT where the monitor serves GET /metrics (port 0: any free one;\n"
           "                     the address is printed)\n"
           "  --cycles N         the monitor stops after N runs of the set (default: never)\n"
           "  -v, --verbose      print every scenario's log, not only the failures'\n"
           "  -h, --help         this text\n"
           "\n"
           "Exit status: 0 all passed, 1 some failed, 2 usage error.\n";
}

/* Sets *dst to "<dir of the runner's dir>/<rel>": the build tree puts each program in
 * a sibling folder. */
static void sibling(const char *exe, const char *rel, char *dst, size_t cap)
{
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", exe);
    for (int up = 0; up < 2; up++) {
        char *slash = strrchr(dir, '/');
        if (!slash) {
            snprintf(dir, sizeof dir, ".");
            break;
        }
        *slash = '\0';
    }
    if (snprintf(dst, cap, "%s/%s", *dir ? dir : "", rel) >= (int)cap)
        snprintf(dst, cap, "%s", rel); /* absurdly deep build tree: fail later, clearly */
}

/* "gateway=URL,control=URL,...": each URL http(s), without a trailing slash. */
static int parse_attach(sc_opts_t *o, const char *val, char *err)
{
    static const char *const names[] = {"gateway", "control", "retell", "calcom", "stripe"};
    o->attach = 1;
    for (const char *p = val; *p;) {
        size_t n = strcspn(p, ","), k = strcspn(p, "=");
        if (k >= n) {
            cm_errf(err, "--attach: '%.*s' is not NAME=URL", (int)n, p);
            return -1;
        }
        char *dst = NULL;
        if (k == 6 && !strncmp(p, "config", 6)) {
            /* A path, not a URL: taken as written (the scenarios' own form). */
            if (n - k - 1 == 0 || n - k - 1 >= sizeof o->attach_config) {
                cm_errf(err, "--attach: config= needs a path");
                return -1;
            }
            snprintf(o->attach_config, sizeof o->attach_config, "%.*s", (int)(n - k - 1),
                     p + k + 1);
            p += n + (p[n] == ',');
            continue;
        }
        const char *url = p + k + 1;
        size_t ulen = n - k - 1;
        while (ulen && url[ulen - 1] == '/')
            ulen--;
        if ((strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0) ||
            ulen >= sizeof o->attach_webhook) {
            cm_errf(err, "--attach: %.*s must be an http(s) URL", (int)k, p);
            return -1;
        }
        if (k == 7 && !strncmp(p, "webhook", 7))
            dst = o->attach_webhook;
        for (int i = 0; i < 5 && !dst; i++)
            if (strlen(names[i]) == k && !strncmp(p, names[i], k))
                dst = o->attach_url[i];
        if (!dst) {
            cm_errf(err,
                    "--attach: unknown part '%.*s' (gateway, control, retell, calcom, stripe, "
                    "webhook, config)",
                    (int)k, p);
            return -1;
        }
        snprintf(dst, sizeof o->attach_webhook, "%.*s", (int)ulen, url);
        p += n + (p[n] == ',');
    }
    if (!*o->attach_url[0]) {
        cm_errf(err, "--attach needs at least gateway=URL");
        return -1;
    }
    return 0;
}

/* "ADDR:PORT" (an IPv4 address or a name; PORT 0 to 65535, 0: any free one). */
static int parse_listen(sc_opts_t *o, const char *val, char *err)
{
    const char *colon = strrchr(val, ':');
    char *end;
    if (!colon || colon == val || (size_t)(colon - val) >= sizeof o->listen_addr ||
        !isdigit((unsigned char)colon[1])) {
        cm_errf(err, "--listen: '%s' is not ADDR:PORT", val);
        return -1;
    }
    errno = 0;
    long port = strtol(colon + 1, &end, 10);
    if (errno || *end || port < 0 || port > 65535) {
        cm_errf(err, "--listen: '%s' has no port from 0 to 65535", val);
        return -1;
    }
    snprintf(o->listen_addr, sizeof o->listen_addr, "%.*s", (int)(colon - val), val);
    o->listen_port = (int)port;
    return 0;
}

/* "sqlite", "postgres" or both, comma-separated, each once; the last --store wins. */
static int parse_stores(sc_opts_t *o, const char *val, char *err)
{
    o->nstores = 0;
    for (const char *p = val;;) {
        size_t n = strcspn(p, ",");
        sc_store_t s = n == 8 && !strncmp(p, "postgres", n) ? SC_STORE_POSTGRES
                       : n == 6 && !strncmp(p, "sqlite", n) ? SC_STORE_SQLITE
                                                            : SC_STORE_AS_WRITTEN;
        if (s == SC_STORE_AS_WRITTEN) {
            cm_errf(err, "--store: '%.*s' is not postgres or sqlite", (int)n, p);
            return -1;
        }
        for (size_t i = 0; i < o->nstores; i++)
            if (o->stores[i] == s) {
                cm_errf(err, "--store: '%s' is named twice", sc_store_name(s));
                return -1;
            }
        o->stores[o->nstores++] = s;
        if (!p[n])
            return 0;
        p += n + 1;
    }
}

/* A whole number from 1 to max for option name. */
static int parse_count(const char *name, const char *val, int max, int *out, char *err)
{
    char *end;
    errno = 0;
    long n = strtol(val, &end, 10);
    if (errno || *end || n < 1 || n > max || !isdigit((unsigned char)val[0])) {
        cm_errf(err, "%s: '%s' is not a whole number from 1 to %d", name, val, max);
        return -1;
    }
    *out = (int)n;
    return 0;
}

/* Matches "--name" or "--name=value"; takes the value from the next argument if needed.
 * Returns 1 on a match (with *val set), 0 when arg is another option, -1 on a missing
 * value. */
static int opt_value(int argc, char **argv, int *i, const char *name, const char **val)
{
    const char *a = argv[*i];
    size_t n = strlen(name);
    if (strncmp(a, name, n) != 0)
        return 0;
    if (a[n] == '=') {
        *val = a + n + 1;
        return 1;
    }
    if (a[n] != '\0')
        return 0;
    if (*i + 1 >= argc)
        return -1;
    *val = argv[++*i];
    return 1;
}

const char *sc_store_name(sc_store_t s)
{
    return s == SC_STORE_SQLITE ? "sqlite" : s == SC_STORE_POSTGRES ? "postgres" : "as written";
}

int sc_opts_has_store(const sc_opts_t *o, sc_store_t s)
{
    for (size_t i = 0; i < o->nstores; i++)
        if (o->stores[i] == s)
            return 1;
    return 0;
}

int sc_opts_has_tag(const sc_opts_t *o, const char *tag)
{
    for (size_t i = 0; i < o->ntags; i++) {
        size_t n = strcspn(o->tags[i], ",");
        if (strlen(tag) == n && strncmp(tag, o->tags[i], n) == 0)
            return 1;
    }
    return 0;
}

cm_err_t sc_opts_parse(int argc, char **argv, const char *self_exe, sc_opts_t *o, char *err)
{
    static const char *const valued[] = {
        "--junit",   "--filter",      "--seed",           "--gateway", "--simulators",
        "--timeout", "--speed",       "--faketime-lib",   "--json",    "--html",
        "--tag",     "--jobs",        "--repeat",         "--attach",  "--chaos-proxy",
        "--out",     "--store",       "--ci-pg",          "--every",   "--listen",
        "--cycles",  "--gateway-cmd", "--gateway-health", NULL};
    memset(o, 0, sizeof *o);
    o->timeout_ms = SC_DEFAULT_TIMEOUT_MS;
    o->jobs = 1;
    o->repeat = 1;
    snprintf(o->attach_config, sizeof o->attach_config, "%s", SC_ATTACH_CONFIG);
    int health_given = 0;
    o->inputs = calloc((size_t)(argc > 0 ? argc : 1), sizeof *o->inputs);
    if (!o->inputs) {
        cm_errf(err, "out of memory");
        return CM_ENOMEM;
    }

    char exe[PATH_MAX];
    if (self_exe) {
        snprintf(exe, sizeof exe, "%s", self_exe);
    } else {
        ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
        if (n <= 0)
            snprintf(exe, sizeof exe, "%s", argc > 0 ? argv[0] : "scenario");
        else
            exe[n] = '\0';
    }
    sibling(exe, "gateway/gateway", o->gateway, sizeof o->gateway);
    sibling(exe, "simulators/simulators", o->simulators, sizeof o->simulators);
    sibling(exe, "chaos/chaos-proxy", o->chaos_proxy, sizeof o->chaos_proxy);
    snprintf(o->faketime_lib, sizeof o->faketime_lib, "%s", SC_DEFAULT_FAKETIME_LIB);
#ifdef SC_SOURCE_DIR
    snprintf(o->ci_pg, sizeof o->ci_pg, "%s/ci/pg", SC_SOURCE_DIR);
#else
    snprintf(o->ci_pg, sizeof o->ci_pg, "ci/pg"); /* from the repository root */
#endif

    int only_inputs = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *val = NULL;
        if (only_inputs || a[0] != '-' || a[1] == '\0') {
            o->inputs[o->ninputs++] = a;
            continue;
        }
        if (!strcmp(a, "--")) {
            only_inputs = 1;
        } else if (!strcmp(a, "-k") || !strcmp(a, "--keep")) {
            o->keep = 1;
        } else if (!strcmp(a, "-v") || !strcmp(a, "--verbose")) {
            o->verbose = 1;
        } else if (!strcmp(a, "--fail-fast")) {
            o->fail_fast = 1;
        } else if (!strcmp(a, "-q") || !strcmp(a, "--quiet")) {
            o->quiet = 1;
        } else if (!strncmp(a, "-j", 2) && a[1] == 'j' && a[2] != '\0') {
            /* -j4 */
            if (parse_count("-j", a + 2, SC_MAX_JOBS, &o->jobs, err))
                return CM_EINVAL;
        } else if (!strcmp(a, "-j")) {
            if (i + 1 >= argc) {
                cm_errf(err, "-j needs a value");
                return CM_EINVAL;
            }
            if (parse_count("-j", argv[++i], SC_MAX_JOBS, &o->jobs, err))
                return CM_EINVAL;
        } else if (!strcmp(a, "--monitor")) {
            o->monitor = 1;
        } else if (!strcmp(a, "--check")) {
            o->check = 1;
        } else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            o->help = 1;
        } else {
            int hit = 0;
            const char *name = NULL;
            for (const char *const *v = valued; *v && !hit; v++) {
                hit = opt_value(argc, argv, &i, *v, &val);
                name = *v;
            }
            if (hit == 0) {
                cm_errf(err, "unknown option '%s' (see --help)", a);
                return CM_EINVAL;
            }
            if (hit < 0) {
                cm_errf(err, "%s needs a value", name);
                return CM_EINVAL;
            }
            if (!*val) {
                cm_errf(err, "%s needs a non-empty value", name);
                return CM_EINVAL;
            }
            if (!strcmp(name, "--junit")) {
                o->junit = val;
            } else if (!strcmp(name, "--out")) {
                if (strlen(val) + sizeof "/report.html" > PATH_MAX) {
                    cm_errf(err, "--out: path too long");
                    return CM_EINVAL;
                }
                o->out = val;
            } else if (!strcmp(name, "--filter")) {
                o->filter = val;
            } else if (!strcmp(name, "--seed")) {
                char *end;
                errno = 0;
                long long s = strtoll(val, &end, 10);
                if (errno || *end || s < 0 || val[0] == '-' || val[0] == '+' || val[0] == ' ') {
                    cm_errf(err, "--seed: '%s' is not a non-negative integer", val);
                    return CM_EINVAL;
                }
                o->has_seed = 1;
                o->seed = s;
            } else if (!strcmp(name, "--store")) {
                if (parse_stores(o, val, err))
                    return CM_EINVAL;
            } else if (!strcmp(name, "--gateway") || !strcmp(name, "--simulators") ||
                       !strcmp(name, "--chaos-proxy") || !strcmp(name, "--ci-pg")) {
                char *dst = !strcmp(name, "--gateway")      ? o->gateway
                            : !strcmp(name, "--simulators") ? o->simulators
                            : !strcmp(name, "--ci-pg")      ? o->ci_pg
                                                            : o->chaos_proxy;
                if (strlen(val) >= PATH_MAX) {
                    cm_errf(err, "%s: path too long", name);
                    return CM_EINVAL;
                }
                snprintf(dst, PATH_MAX, "%s", val);
            } else if (!strcmp(name, "--gateway-cmd")) {
                o->gateway_cmd = val;
            } else if (!strcmp(name, "--gateway-health")) {
                /* A path on the gateway, sent as written: no spaces or controls in it. */
                int bad = val[0] != '/' || strlen(val) >= sizeof o->gateway_health;
                for (const char *c = val; !bad && *c; c++)
                    bad = (unsigned char)*c <= ' ' || *c == 0x7f;
                if (bad) {
                    cm_errf(err, "--gateway-health: '%s' is not a path starting with '/'", val);
                    return CM_EINVAL;
                }
                snprintf(o->gateway_health, sizeof o->gateway_health, "%s", val);
                health_given = 1;
            } else if (!strcmp(name, "--attach")) {
                if (parse_attach(o, val, err))
                    return CM_EINVAL;
            } else if (!strcmp(name, "--json")) {
                o->json = val;
            } else if (!strcmp(name, "--html")) {
                o->html = val;
            } else if (!strcmp(name, "--jobs")) {
                if (parse_count(name, val, SC_MAX_JOBS, &o->jobs, err))
                    return CM_EINVAL;
            } else if (!strcmp(name, "--repeat")) {
                if (parse_count(name, val, 10000, &o->repeat, err))
                    return CM_EINVAL;
            } else if (!strcmp(name, "--tag")) {
                /* "a,b" or repeated: any of them. The strings stay argv's; split in place
                 * would modify argv, so keep each comma-separated part as a pointer into a
                 * copy-free scan: tags are matched with their length below. */
                for (const char *t = val; *t;) {
                    size_t n = strcspn(t, ",");
                    if (n && o->ntags >= SC_MAX_TAGS) {
                        cm_errf(err, "--tag: more than %d tags", SC_MAX_TAGS);
                        return CM_EINVAL;
                    }
                    if (n)
                        o->tags[o->ntags++] = t;
                    t += n + (t[n] == ',');
                }
            } else if (!strcmp(name, "--speed")) {
                char *end;
                errno = 0;
                long sp = strtol(val, &end, 10);
                if (errno || *end || sp < 1 || sp > 100 || !isdigit((unsigned char)val[0])) {
                    cm_errf(err, "--speed: '%s' is not a whole number from 1 to 100", val);
                    return CM_EINVAL;
                }
                o->speed = (int)sp;
            } else if (!strcmp(name, "--faketime-lib")) {
                if (strlen(val) >= PATH_MAX) {
                    cm_errf(err, "%s: path too long", name);
                    return CM_EINVAL;
                }
                snprintf(o->faketime_lib, sizeof o->faketime_lib, "%s", val);
            } else if (!strcmp(name, "--every")) {
                char derr[CM_ERR_LEN];
                if (sc_duration_parse(val, &o->every_ms, derr) != CM_OK) {
                    cm_errf(err, "--every: %s", derr);
                    return CM_EINVAL;
                }
                if (o->every_ms < 1000) {
                    cm_errf(err, "--every must be at least 1s");
                    return CM_EINVAL;
                }
            } else if (!strcmp(name, "--listen")) {
                if (parse_listen(o, val, err))
                    return CM_EINVAL;
            } else if (!strcmp(name, "--cycles")) {
                if (parse_count(name, val, 1000000, &o->cycles, err))
                    return CM_EINVAL;
            } else if (!strcmp(name, "--timeout")) {
                char derr[CM_ERR_LEN];
                if (sc_duration_parse(val, &o->timeout_ms, derr) != CM_OK) {
                    cm_errf(err, "--timeout: %s", derr);
                    return CM_EINVAL;
                }
                if (o->timeout_ms <= 0) {
                    cm_errf(err, "--timeout must be longer than 0");
                    return CM_EINVAL;
                }
            }
        }
    }
    if (!health_given)
        snprintf(o->gateway_health, sizeof o->gateway_health, "%s", SC_DEFAULT_GATEWAY_HEALTH);
    if (health_given && !o->gateway_cmd) {
        cm_errf(err, "--gateway-health goes with --gateway-cmd");
        return CM_EINVAL;
    }
    /* A gateway the runner starts (--gateway-cmd) and one already running (--attach) are
     * two ways of judging a gateway that is not ours: one at a time. */
    if (o->gateway_cmd && o->attach) {
        cm_errf(err, "--gateway-cmd cannot be used with --attach: the one starts the gateway "
                     "under test, the other judges one already running");
        return CM_EINVAL;
    }
    /* The runner writes no config for a foreign gateway: it keeps its data where it wants
     * (BB_DATA_DIR), so a store chosen by the runner would be a lie. */
    if (o->gateway_cmd && o->nstores) {
        cm_errf(err, "--store cannot be used with --gateway-cmd: the gateway under test keeps "
                     "its data its own way (in BB_DATA_DIR)");
        return CM_EINVAL;
    }
    /* Attached parts run already, on whatever store they were started with: the runner
     * writes no gateway config and makes no database, so the option would be a lie. */
    if (o->attach && o->nstores) {
        cm_errf(err, "--store cannot be used with --attach: the attached gateway runs on the store "
                     "it was started with (the runner writes no config for it)");
        return CM_EINVAL;
    }
    /* Shared parts: one scenario at a time, so the records after a scenario's start are
     * its own (sc_attach.h) and no two scenarios' faults meet. */
    if (o->attach && o->jobs > 1) {
        cm_errf(err,
                "-j %d cannot be used with --attach: attached scenarios share the parts "
                "and run one at a time",
                o->jobs);
        return CM_EINVAL;
    }
    if (o->monitor && (!o->attach || !o->every_ms || !*o->listen_addr)) {
        cm_errf(err, "--monitor needs --attach, --every DUR and --listen ADDR:PORT");
        return CM_EINVAL;
    }
    if (!o->monitor && (o->every_ms || *o->listen_addr || o->cycles)) {
        cm_errf(err, "--every, --listen and --cycles go with --monitor");
        return CM_EINVAL;
    }
    if (o->monitor && (o->check || o->repeat > 1 || o->fail_fast)) {
        cm_errf(err, "--monitor cannot be used with --check, --repeat or --fail-fast");
        return CM_EINVAL;
    }
    if (o->out) {
        static const char *const names[3] = {"junit.xml", "report.json", "report.html"};
        const char **dst[3] = {&o->junit, &o->json, &o->html};
        for (int k = 0; k < 3; k++) {
            snprintf(o->out_paths[k], PATH_MAX, "%s/%s", o->out, names[k]);
            if (!*dst[k])
                *dst[k] = o->out_paths[k];
        }
    }
    const char *ci = getenv("CI");
    if (ci && *ci && strcmp(ci, "0") != 0 && strcmp(ci, "false") != 0)
        o->quiet = 1;
    if (!o->help && o->ninputs == 0) {
        cm_errf(err, "no scenario files or directories given (see --help)");
        return CM_EINVAL;
    }
    return CM_OK;
}

cm_err_t sc_opts_gateway_cmd_expand(const char *tmpl, int port, const char *data_dir, char *out,
                                    size_t cap)
{
    size_t n = 0;
    char num[16];
    snprintf(num, sizeof num, "%d", port);
    if (!cap)
        return CM_ETOOBIG;
    for (const char *p = tmpl; *p;) {
        const char *with = NULL;
        size_t skip = 1;
        if (!strncmp(p, "{port}", 6)) {
            with = num;
            skip = 6;
        } else if (!strncmp(p, "{data_dir}", 10)) {
            with = data_dir;
            skip = 10;
        }
        size_t len = with ? strlen(with) : 1;
        if (n + len >= cap)
            return CM_ETOOBIG;
        memcpy(out + n, with ? with : p, len);
        n += len;
        p += skip;
    }
    out[n] = '\0';
    return CM_OK;
}

void sc_opts_free(sc_opts_t *o)
{
    free(o->inputs);
    o->inputs = NULL;
    o->ninputs = 0;
}
