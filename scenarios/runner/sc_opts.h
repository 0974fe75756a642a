/* sc_opts.h - the runner's command line.
 *
 *   scenario [--out DIR] [--junit FILE] [--json FILE] [--html FILE] [--filter SUBSTR] [--tag T]
 *            [-j N] [--repeat N] [--fail-fast] [--seed N] [--speed N] [--keep]
 *            [--store sqlite|postgres|sqlite,postgres] [--gateway PATH] [--simulators PATH]
 *            [--chaos-proxy PATH] [--ci-pg PATH] [--timeout 60s] [--check] [-q] [-v]
 *            [--attach gateway=URL,control=URL,...] [--monitor --every DUR --listen ADDR:PORT
 *            [--cycles N]] [--gateway-cmd TEMPLATE [--gateway-health PATH]] FILE_OR_DIR...
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

#define SC_DEFAULT_TIMEOUT_MS 60000
#define SC_DEFAULT_FAKETIME_LIB "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"

/* The gateway config the scenarios fit for monitoring are written for (--attach config=). */
#define SC_ATTACH_CONFIG "fixtures/gateway/default.json"

/* --gateway-health: where a gateway started by --gateway-cmd answers 200 once ready. */
#define SC_DEFAULT_GATEWAY_HEALTH "/health"

#define SC_MAX_TAGS 16
#define SC_MAX_JOBS 64

/* --store: which store the gateways run on. */
#define SC_STORES_MAX 2
typedef enum {
    SC_STORE_AS_WRITTEN = 0, /* what each scenario's "store" and gateway config say */
    SC_STORE_SQLITE,         /* the SQLite scenarios as written; PostgreSQL-only ones skipped */
    SC_STORE_POSTGRES,       /* every scenario on a PostgreSQL database of its own */
} sc_store_t;

/* "sqlite", "postgres" or "as written" (static). */
const char *sc_store_name(sc_store_t s);

typedef struct {
    /* Report paths, or NULL: none is written unless asked (a run by hand must not replace
     * another run's reports). --out DIR sets all three to DIR/junit.xml, DIR/report.json
     * and DIR/report.html; --junit, --json and --html name one each and win over --out. */
    const char *out;
    const char *junit;
    const char *json;
    const char *html;
    char out_paths[3][PATH_MAX];   /* storage for the --out paths */
    const char *tags[SC_MAX_TAGS]; /* --tag (repeatable, or a,b): scenarios with any of them */
    size_t ntags;
    int jobs;      /* -j N: scenarios in parallel (default 1) */
    int repeat;    /* --repeat N: run each scenario N times (default 1) */
    int fail_fast; /* start no new scenario after a failure */
    int quiet;     /* -q: no PASS lines (also when the CI variable is set) */
    /* --attach: run against parts already running, by URL (index sc_target_t; "" when not
     * given); no process is started or stopped. */
    int attach;
    char attach_url[5][256];
    char attach_webhook[256]; /* where the Retell simulator delivers; default gateway's */
    /* config=PATH: the gateway config the attached gateway runs (as a scenario names it);
     * scenarios written for another one are skipped. Default SC_ATTACH_CONFIG. */
    char attach_config[PATH_MAX];
    /* --monitor: run the selected scenarios attached every every_ms, and serve their
     * results as Prometheus metrics on listen_addr:listen_port (sc_monitor.h); cycles > 0
     * stops after that many runs of the set (0: until SIGTERM/SIGINT). */
    int monitor;
    int64_t every_ms;
    char listen_addr[64];
    int listen_port;
    int cycles;
    /* --gateway-cmd: judge a gateway that is not ours. Each scenario (and each gateway
     * start step) runs `sh -c <gateway_cmd>` (borrowed from argv; {port} and {data_dir}
     * expanded by sc_opts_gateway_cmd_expand) with the contract environment
     * (docs/contract.md) instead of our gateway with a config; ready once GET
     * gateway_health answers 200. NULL: our gateway. */
    const char *gateway_cmd;
    char gateway_health[256];
    const char *filter; /* substring of the scenario's name or file path, or NULL */
    int has_seed;       /* --seed given: overrides every scenario's seed */
    long long seed;
    int keep;           /* keep every temp dir (failed ones are always kept) */
    int verbose;        /* print every scenario's log, not only failures' */
    int check;          /* only load and validate the files */
    int help;           /* -h/--help: print usage, exit 0 */
    int64_t timeout_ms; /* whole-scenario deadline */
    int speed;          /* --speed N: overrides every scenario's speed; 0: theirs */
    /* --store: the stores every scenario runs on, in order (each one run per store; "a,b"
     * gives two); none given: once, as written. Refused with --attach (the parts run
     * already). */
    sc_store_t stores[SC_STORES_MAX];
    size_t nstores;
    char gateway[PATH_MAX];
    char simulators[PATH_MAX];
    char chaos_proxy[PATH_MAX];
    char ci_pg[PATH_MAX];        /* ci/pg, for scenarios with a PostgreSQL server of their own */
    char faketime_lib[PATH_MAX]; /* libfaketime for scenarios with "speed" > 1 */
    const char **inputs;         /* files and directories, borrowed from argv */
    size_t ninputs;
} sc_opts_t;

/* Parses argv. self_exe is the runner's own path (for the default program paths:
 * ../gateway/gateway and ../simulators/simulators relative to its directory); NULL reads
 * /proc/self/exe. CM_EINVAL with err (CM_ERR_LEN) for a usage error. inputs is allocated:
 * free with sc_opts_free. */
cm_err_t sc_opts_parse(int argc, char **argv, const char *self_exe, sc_opts_t *o, char *err) CM_WUR;
void sc_opts_free(sc_opts_t *o);

/* 1 when s is one of the --store values. */
int sc_opts_has_store(const sc_opts_t *o, sc_store_t s);

/* 1 when tag is one of the --tag values. */
int sc_opts_has_tag(const sc_opts_t *o, const char *tag);

/* Expands the --gateway-cmd template: every "{port}" becomes port and every "{data_dir}"
 * data_dir, as written (no shell quoting: the runner's data dirs are mkdtemp paths); any
 * other text, braces included (a shell's ${VAR}), is kept. Into out (cap bytes).
 * CM_ETOOBIG, out unspecified, when it does not fit. Thread-safe. */
cm_err_t sc_opts_gateway_cmd_expand(const char *tmpl, int port, const char *data_dir, char *out,
                                    size_t cap) CM_WUR;

/* The usage text (static). */
const char *sc_opts_usage(void);

#endif
