/* sc_scenario.h - a scenario file, parsed and validated before anything is started.
 *
 * The language (docs in scenarios/README.md):
 *   {"name": "...", "description"?: "...", "tags": ["..."], "seed": 7,
 *    "gateway": {"config": "fixtures/gateway/default.json"}, "env"?: {"NAME": "value"},
 *    "steps": [ {"request": {...}, "expect"?: {...}, "capture"?: {...}},
 *               {"call": {...}},
 *               {"webhook": {...}, "expect"?: {...}, "capture"?: {...}},
 *               {"wait": {"request": {...}, "until": {...}, "within"?: "10s", "capture"?}},
 *               {"gateway": {"action": "kill|stop|start|restart", "config"?: "..."}},
 *               {"postgres": {"action": "stop|start|restart"}},
 *               {"repeat": {"times": N, "step"|"steps": ..., "var"?, "concurrency"?,
 *                           "shuffle_seed"?}},
 *               {"include": "scenarios/_steps/x.json"} ]}
 * every step may also carry "name". Unknown keys, unknown step kinds, missing or mistyped
 * fields are errors of the form
 *   FILE: steps[3] (webhook): "copies" must be a positive integer
 * and so is a scenario without any expectation.
 *
 * Strings are checked for type here and expanded (${var}) only when their step runs, so a
 * field that must be a number must be written as one.
 *
 * Ownership: the scenario owns its parsed JSON; every const pointer in the structs below
 * borrows from it and lives until sc_scenario_free. Read-only after loading, so one
 * scenario may be read from several threads.
 */
#ifndef SC_SCENARIO_H
#define SC_SCENARIO_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "cm_err.h"

/* A scenario runs at most this many gateway instances (on one shared store). */
#define SC_GW_MAX 8
/* Includes may include others, this deep (a cycle ends here with an error). */
#define SC_INCLUDE_DEPTH 8
/* Room for "FILE: steps[12] (webhook): ..." with a long path. */
#define SC_ERR_LEN 1024
/* A scenario file is hand-written; anything bigger is a mistake. */
#define SC_FILE_MAX (4u << 20)
#define SC_MAX_STATUSES 16
#define SC_WAIT_DEFAULT_MS 10000
/* "speed": whole-number clock speed-ups only (libfaketime reads the factor with the
 * locale's decimal mark); beyond 100 real latencies swamp simulated timeouts. */
#define SC_SPEED_MAX 100

typedef enum {
    SC_TO_GATEWAY = 0,
    SC_TO_CONTROL,
    SC_TO_RETELL,
    SC_TO_CALCOM,
    SC_TO_STRIPE,
    SC_TO_CHAOS, /* the chaos proxy's control API (scenarios with "chaos") */
    SC_TARGETS
} sc_target_t;

/* The connections a scenario's "chaos" can route through the chaos proxy (chaos/). */
typedef enum {
    SC_LINK_CALCOM = 0, /* gateway -> Cal.com simulator */
    SC_LINK_STRIPE,     /* gateway -> Stripe simulator */
    SC_LINK_GATEWAY,    /* Retell simulator's webhooks -> gateway */
    SC_LINKS
} sc_link_t;

/* Link names as written in files and as the proxy calls them, index sc_link_t. */
extern const char *const sc_link_names[SC_LINKS];

/* The processes a scenario's "chaos"."skew" can put off the true time. */
typedef enum { SC_PROC_GATEWAY = 0, SC_PROC_SIMULATORS, SC_PROC_CHAOS, SC_PROCS } sc_proc_kind_t;
extern const char *const sc_proc_names[SC_PROCS];

/* The step kinds, in the order of sc_step_kinds.h. */
typedef enum {
#define SC_STEP_KIND(e, key, def) SC_STEP_##e,
#include "sc_step_kinds.h"
#undef SC_STEP_KIND
    SC_STEP__COUNT
} sc_step_kind_t;

/* Provider signature schemes a request can be signed with (common/cm_sig.h). */
typedef enum {
    SC_SIGN_NONE = 0,
    SC_SIGN_RETELL, /* x-retell-signature: v=<ms>,d=<hex> */
    SC_SIGN_CALCOM, /* X-Cal-Signature-256 (no timestamp) */
    SC_SIGN_STRIPE, /* Stripe-Signature: t=<s>,v1=... (one v1 per key) */
    SC_SIGN_STD,    /* Standard Webhooks: webhook-id, webhook-timestamp, webhook-signature */
} sc_sign_scheme_t;

/* At most this many keys in "keys" (Stripe-Signature with 4 v1 fits CM_SIG_HDR_LEN). */
#define SC_SIGN_MAX_KEYS 4
/* body_repeat builds bodies up to this size (oversized-body tests need a few MiB). */
#define SC_BODY_REPEAT_MAX (64u << 20)
/* A repeat runs at most this many iterations, from at most this many threads. */
#define SC_REPEAT_MAX_TIMES 1000000
#define SC_REPEAT_MAX_CONCURRENCY 64

typedef struct {
    sc_sign_scheme_t scheme; /* SC_SIGN_NONE: the request is not signed */
    const char *key;         /* "key", or NULL when "keys" was given; may hold ${...} */
    const json_t *keys;      /* "keys": array of 1..SC_SIGN_MAX_KEYS strings, or NULL */
    long long ts_offset_ms;  /* added to the scenario's (simulated) now */
    int forge;               /* sign with a key nobody configured */
    const char *id;          /* std: webhook-id (required), may hold ${...} */
} sc_sign_t;

typedef enum {
    SC_GW_KILL = 0,    /* SIGKILL the process group, wait until it is gone */
    SC_GW_STOP,        /* SIGTERM, must exit with status 0 */
    SC_GW_START,       /* start again on the same data dir (new port) */
    SC_GW_RESTART,     /* stop + start */
    SC_GW_EXPECT_EXIT, /* from now on the gateway may die by itself (a crash test) */
    SC_GW_WAIT_EXIT,   /* wait (within) until it has died by itself, and reap it */
} sc_gw_action_t;

/* "postgres" step actions on the scenario's own server (sc_pg_server.h). */
typedef enum {
    SC_PG_STOP = 0, /* immediate shutdown (as a crash: no checkpoint, connections cut) */
    SC_PG_START,    /* start it again: same port, same data (recovery from its WAL) */
    SC_PG_RESTART,  /* stop, then start */
} sc_pg_action_t;

typedef struct {
    sc_target_t to;
    const char *method;      /* GET (default), HEAD, POST, PUT, PATCH, DELETE */
    const char *path;        /* "/admin/queue?x=1", may hold ${...} */
    const json_t *headers;   /* object of string values, or NULL */
    const json_t *json;      /* body as JSON, or NULL */
    const char *body;        /* raw body, or NULL (never both json and body) */
    int auth;                /* -1: default (gateway /admin/ paths only), 0: never, 1: always */
    const char *repeat_text; /* "body_repeat": text (may hold ${...}), or NULL */
    long long repeat_times;  /* "body_repeat": how many times */
    sc_sign_t sign;          /* "sign", scheme SC_SIGN_NONE when absent */
} sc_request_t;

typedef struct {
    int present;                   /* "expect" / "until" was written */
    int statuses[SC_MAX_STATUSES]; /* allowed statuses; none listed: any 2xx */
    size_t nstatuses;
    const json_t *json;    /* sc_match expectation map, or NULL */
    const json_t *metrics; /* selector -> value/operators on a Prometheus answer, or NULL */
    const json_t *headers; /* header name (any case) -> value/operators, or NULL */
} sc_expect_t;

typedef struct sc_step sc_step_t;

struct sc_step {
    sc_step_kind_t kind;
    size_t index;     /* in its own list */
    char loc[160];    /* "steps[3]", nested "steps[3].steps[0]", included
                         "steps[3]:x.json[0]" (base name): for messages */
    char actor[24];   /* "step[3]", nested "step[3.0]": for log lines */
    const char *name; /* optional "name", or NULL */

    sc_request_t req;      /* request, wait */
    sc_expect_t expect;    /* request: "expect"; webhook: "expect" (statuses); wait: "until" */
    const json_t *capture; /* request, webhook, wait: variable -> answer path, or NULL */

    /* call */
    const char *fixture; /* path of the call object template */
    const json_t *set;   /* dotted path -> value overrides, or NULL */
    const char *as;      /* variable for the answer; default "call" */

    /* webhook */
    const char *provider; /* "retell", "stripe" or "calcom" */
    const char *call_id;  /* retell: the call */
    const char *event;    /* retell: default "call_analyzed"; stripe: type; calcom: trigger */
    long long copies;     /* >= 1 */
    int concurrent, forge;
    int64_t timestamp_offset_ms; /* added to the signature's time (retell, stripe) */
    const json_t *object;        /* stripe: data.object; calcom: payload; or NULL */
    const char *booking;         /* calcom: uid of a booking the simulator holds, or NULL */
    const char *event_id;        /* stripe: the event's id, or NULL (the simulator's) */
    long long created;           /* stripe: "created" (unix s), 0: now */

    /* wait */
    int64_t within_ms;

    /* gateway */
    sc_gw_action_t action;
    int instance;       /* which of the scenario's gateway instances, 0 by default */
    const char *config; /* start/restart: another gateway config, or NULL (the scenario's) */

    /* postgres */
    sc_pg_action_t pg_action;

    /* repeat: children run times times, with var = 0..times-1 (shuffled when shuffle) */
    sc_step_t *children; /* owned by the step */
    size_t nchildren;
    long long times;
    int concurrency; /* 1: in order on the scenario's thread; >1: that many threads */
    int shuffle;
    unsigned long long shuffle_seed;
    const char *var; /* default "i" */

    /* include: children are the included file's steps; path as written. "with": variable ->
     * value (expanded when the step runs), set before the children run: a template. */
    const char *include;
    const json_t *with;

    /* log: {"excludes", "contains"}, lists of strings the gateway's output must lack / hold */
    const json_t *log;

    /* chaos: replace the faults of one link (an empty list clears them) */
    sc_link_t link;
    const json_t *faults; /* chaos: the proxy fault objects, as written; fault: a rule or a list */
};

typedef struct {
    char *path;       /* as given on the command line */
    char *dir;        /* the file's directory */
    json_t *root;     /* the whole file */
    json_t *included; /* array of the parsed include files (steps borrow from them) */
    const char *name;
    const char *description; /* or NULL */
    /* The health report's area the scenario judges (one of rp_health_areas), and what its failure
     * means in the audit's words ("Webhook signature verification disabled"); both NULL
     * or both set. */
    const char *area;
    const char *finding;
    const json_t *tags; /* array of strings */
    long long seed;
    int speed;                  /* clock speed-up for the parts (libfaketime), 1: none */
    const char *gateway_config; /* path, relative to the repo root or the file's dir */
    int gateway_instances;      /* "gateway"."instances": 1..SC_GW_MAX processes */
    int store_pg;               /* "store": "postgres": a fresh database of its own (sc_pg.h) */
    int store_pg_own;           /* "store": {"backend": "postgres", "server": "own"}: a server
                                   of its own (sc_pg_server.h), which "postgres" steps may
                                   stop and start */
    const json_t *env;          /* object of strings, or NULL */
    unsigned chaos_links;       /* "chaos": bit (1u << sc_link_t) per proxied link, 0: none */
    unsigned webhooks;          /* "webhooks": bit (1u << sc_target_t) per simulator (stripe,
                                   calcom) whose webhooks go to the gateway; Retell's always do */
    int64_t skew_ms[SC_PROCS];  /* "chaos"."skew": each process's clock offset, 0: none */
    sc_step_t *steps;
    size_t nsteps;
    /* "finally": steps run after "steps" whatever happened there (a failure, the deadline):
     * what the scenario changed on parts it may share, undone. Each runs even when one
     * before it failed; none is an assertion of the scenario. NULL / 0 when absent. */
    sc_step_t *finally_steps;
    size_t nfinally;
} sc_scenario_t;

/* The keys a scenario file may have at its top level (NULL-terminated). */
extern const char *const sc_scenario_keys[];

/* The variables the runner defines for every scenario; captures may not overwrite them. */
extern const char *const sc_builtin_vars[];

/* Reads and validates the file at path. On success *out is a new scenario (free with
 * sc_scenario_free). On failure *out is NULL and err (SC_ERR_LEN bytes) holds one message
 * starting with the path; CM_EINVAL for an invalid scenario, CM_ENOTFOUND/CM_EIO/CM_ETOOBIG
 * for an unreadable file. */
cm_err_t sc_scenario_load(const char *path, sc_scenario_t **out, char *err) CM_WUR;

/* Same from text already in memory (for tests); path is used in messages and to resolve
 * relative paths. */
cm_err_t sc_scenario_parse(const char *path, const char *text, size_t len, sc_scenario_t **out,
                           char *err) CM_WUR;

void sc_scenario_free(sc_scenario_t **sc);

/* Finds a file a scenario refers to: absolute paths as they are; relative ones first
 * against the current directory (the repo root), then against the scenario's own
 * directory. Writes the found path into out (cap bytes). CM_ENOTFOUND with err naming
 * both places tried. */
cm_err_t sc_scenario_resolve(const sc_scenario_t *sc, const char *rel, char *out, size_t cap,
                             char *err) CM_WUR;

const char *sc_target_name(sc_target_t t);
const char *sc_step_kind_name(sc_step_kind_t k);
const char *sc_sign_scheme_name(sc_sign_scheme_t s);
const char *sc_gw_action_name(sc_gw_action_t a);
const char *sc_pg_action_name(sc_pg_action_t a);

/* How many expectations ("expect", "until") the steps hold, nested ones included. */
int sc_steps_expectations(const sc_step_t *steps, size_t n);

#endif
