/* sc_ctx.h - the state of one scenario run, shared by sc_run (lifecycle), sc_steps
 * (steps), sc_http (requests) and sc_log (log lines and the failure record).
 *
 * Everything a run needs lives here and nowhere global, so that a parallel runner can
 * give each scenario its own context (and its own thread or child process). One thread
 * uses a context at a time.
 */
#ifndef SC_CTX_H
#define SC_CTX_H

#include <limits.h>
#include <stdint.h>

#include "cm_buf.h"
#include "cm_http_client.h"
#include "rp_result.h"
#include "sc_opts.h"
#include "sc_proc.h"
#include "sc_scenario.h"
#include "sc_vars.h"

/* Failure details beyond this are cut: a diagnosis is read by a person. */
#define SC_DETAIL_MAX (256u << 10)

typedef struct {
    int set;            /* the first failure wins; later ones add an "also:" line */
    int describing;     /* sc_fail_detail still appends (the first failure is current) */
    rp_status_t status; /* RP_FAILED or RP_ERRORED */
    char type[32];      /* "expectation", "timeout", "transport", "variable", "startup", ... */
    char message[SC_ERR_LEN];
    cm_buf_t detail; /* expected vs got, the answer, ... */
} sc_failure_t;

typedef struct {
    const sc_opts_t *opts;   /* borrowed */
    const sc_scenario_t *sc; /* borrowed */
    rp_case_t *rc;           /* borrowed: where log lines go */
    int64_t t0_ms;           /* monotonic start */
    int64_t deadline_ms;     /* monotonic: t0 + --timeout */
    long long seed;

    sc_vars_t *vars;
    cm_http_client_t *http;
    char tmpdir[PATH_MAX];
    sc_proc_t sim, gw;
    char admin_token[33]; /* never logged */
    char url[5][64];      /* base URL per sc_target_t, "" until known */

    sc_failure_t fail;
} sc_ctx_t;

#endif
