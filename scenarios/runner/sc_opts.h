/* sc_opts.h - the runner's command line.
 *
 *   scenario [--junit FILE] [--filter SUBSTR] [--seed N] [--keep] [--gateway PATH]
 *            [--simulators PATH] [--timeout 60s] [--check] [-v] FILE_OR_DIR...
 *
 * Options take their value as the next argument or after '=' (--seed=7); "--" ends the
 * options. The result borrows argv's strings. Thread-safe after parsing (read-only).
 */
#ifndef SC_OPTS_H
#define SC_OPTS_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>

#include "cm_err.h"

#define SC_DEFAULT_JUNIT "reports/out/junit.xml"
#define SC_DEFAULT_TIMEOUT_MS 60000

typedef struct {
    const char *junit;  /* report path; default SC_DEFAULT_JUNIT */
    const char *filter; /* substring of the scenario's name or file path, or NULL */
    int has_seed;       /* --seed given: overrides every scenario's seed */
    long long seed;
    int keep;           /* keep every temp dir (failed ones are always kept) */
    int verbose;        /* print every scenario's log, not only failures' */
    int check;          /* only load and validate the files */
    int help;           /* -h/--help: print usage, exit 0 */
    int64_t timeout_ms; /* whole-scenario deadline */
    char gateway[PATH_MAX];
    char simulators[PATH_MAX];
    const char **inputs; /* files and directories, borrowed from argv */
    size_t ninputs;
} sc_opts_t;

/* Parses argv. self_exe is the runner's own path (for the default program paths:
 * ../gateway/gateway and ../simulators/simulators relative to its directory); NULL reads
 * /proc/self/exe. CM_EINVAL with err (CM_ERR_LEN) for a usage error. inputs is allocated:
 * free with sc_opts_free. */
cm_err_t sc_opts_parse(int argc, char **argv, const char *self_exe, sc_opts_t *o, char *err) CM_WUR;
void sc_opts_free(sc_opts_t *o);

/* The usage text (static). */
const char *sc_opts_usage(void);

#endif
