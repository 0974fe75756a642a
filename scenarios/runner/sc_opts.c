/* sc_opts.c - command-line parsing; every bad value is a usage error naming the option. */
#include "sc_opts.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sc_duration.h"

const char *sc_opts_usage(void)
{
    return "usage: scenario [options] FILE_OR_DIR...\n"
           "Runs scenario files (directories are searched recursively for *.json, in sorted\n"
           "order) against freshly started simulators and gateway.\n"
           "\n"
           "  --junit FILE       JUnit XML report (default " SC_DEFAULT_JUNIT ")\n"
           "  --filter SUBSTR    run only scenarios whose name or file path contains SUBSTR\n"
           "  --seed N           override every scenario's seed\n"
           "  --keep, -k         keep every scenario's temp dir (failed ones are always kept)\n"
           "  --gateway PATH     gateway program (default: ../gateway/gateway next to this one)\n"
           "  --simulators PATH  simulators program (default: ../simulators/simulators)\n"
           "  --timeout DUR      deadline per scenario, e.g. 90s, 2m (default 60s)\n"
           "  --check            only load and validate the files, start nothing\n"
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

cm_err_t sc_opts_parse(int argc, char **argv, const char *self_exe, sc_opts_t *o, char *err)
{
    static const char *const valued[] = {"--junit",      "--filter",  "--seed", "--gateway",
                                         "--simulators", "--timeout", NULL};
    memset(o, 0, sizeof *o);
    o->junit = SC_DEFAULT_JUNIT;
    o->timeout_ms = SC_DEFAULT_TIMEOUT_MS;
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
            } else if (!strcmp(name, "--gateway") || !strcmp(name, "--simulators")) {
                char *dst = name[2] == 'g' ? o->gateway : o->simulators;
                if (strlen(val) >= PATH_MAX) {
                    cm_errf(err, "%s: path too long", name);
                    return CM_EINVAL;
                }
                snprintf(dst, PATH_MAX, "%s", val);
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
    if (!o->help && o->ninputs == 0) {
        cm_errf(err, "no scenario files or directories given (see --help)");
        return CM_EINVAL;
    }
    return CM_OK;
}

void sc_opts_free(sc_opts_t *o)
{
    free(o->inputs);
    o->inputs = NULL;
    o->ninputs = 0;
}
