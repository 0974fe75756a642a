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
#include <pthread.h>
#include <stdint.h>

#include "cm_buf.h"
#include "cm_http_client.h"
#include "rp_result.h"
#include "sc_opts.h"
#include "sc_pg_server.h"
#include "sc_proc.h"
#include "sc_scenario.h"
#include "sc_vars.h"

/* What a scenario changed on parts it shares with others (attach mode, sc_attach.h), to be
 * undone at its end: its fault rules on the simulators, the breakers it forced. Shared by
 * the worker copies of a concurrent repeat (under lock). */
#define SC_UNDO_FAULTS 256
typedef struct {
    pthread_mutex_t lock;
    long long fault_ids[SC_UNDO_FAULTS];
    size_t nfaults;
    int faults_lost;   /* more rules than fit: every rule is deleted at the end */
    unsigned breakers; /* bit 0: calcom, bit 1: stripe, forced open or disabled */
} sc_undo_t;

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

typedef struct sc_ctx {
    const sc_opts_t *opts;   /* borrowed */
    const sc_scenario_t *sc; /* borrowed */
    rp_case_t *rc;           /* borrowed: where log lines go */
    int64_t t0_ms;           /* monotonic start */
    int64_t deadline_ms;     /* monotonic: t0 + --timeout */
    long long seed;

    sc_vars_t *vars;
    cm_http_client_t *http;
    char tmpdir[PATH_MAX];
    sc_proc_t sim, chaos;    /* chaos: only for scenarios with "chaos" */
    int link_port[SC_LINKS]; /* the chaos proxy's listening port per link, 0: not proxied */
    /* The gateway's instances (the scenario's "gateway"."instances", 1 by default); [0] is
     * the one "to": "gateway" and ${gateway_url} reach. */
    sc_proc_t gws[SC_GW_MAX];
    int gw_starts[SC_GW_MAX];   /* how many times each was started */
    int gw_may_exit[SC_GW_MAX]; /* expect_exit: it may die by itself until wait_exit */
    int gw_port[SC_GW_MAX];     /* its port while it runs, 0 otherwise */
    char admin_token[256];      /* never logged */
    char pg_db[64];             /* "store": "postgres": the scenario's own database, "" otherwise */
    char pg_url[1024]; /* its URL, the gateway's GW_PG_URL (holds a password: never logged) */
    sc_store_t store;  /* this run's --store (SC_STORE_AS_WRITTEN: the scenario's) */
    sc_pg_server_t pg_server;  /* "server": "own": the scenario's own PostgreSQL server */
    char skip_why[256];        /* set when the scenario cannot run here (not a failure) */
    char url[SC_TARGETS][256]; /* base URL per sc_target_t, "" until known */

    sc_failure_t fail;

    /* The clock the parts run on (libfaketime, see sc_time.h). speed 1: real time. */
    int speed;
    int64_t ref_real_ms; /* wall-clock epoch ms at which simulated time = real time */

    /* Set in the worker copies of a concurrent repeat (sc_steps.c): they share rc (the
     * log, under log_lock) and read sim/gw without reaping them; everything else (vars,
     * http, fail) is the worker's own. NULL / 0 in the scenario's own context. */
    pthread_mutex_t *log_lock;
    int worker;
    char iter[64]; /* "i=17" inside repeats (nested: "i=3 j=5"), "" outside */

    /* Attach mode (sc_attach.h): the counts the simulators' journal and effects ledger had
     * when the scenario began, so that its checks count only its own records; scoped is 0
     * when they are absolute (the parts are the scenario's own, or no control URL). */
    int scoped;
    long long base_journal_seq;    /* the journal's last seq at the start */
    long long base_effect_seq;     /* the effects ledger's highest seq at the start */
    long long base_effect_dropped; /* the ledger's "dropped" at the start */
    int queue_scoped;              /* the gateway's queue counts below were read */
    long long base_queue[3];       /* its "done", "dead", "discarded" at the start */
    sc_undo_t *undo;               /* borrowed (the scenario's own); NULL outside attach */
} sc_ctx_t;

#endif
