/* sc_scenario.h - a scenario file, parsed and validated before anything is started.
 *
 * The language (docs in scenarios/README.md):
 *   {"name": "...", "description"?: "...", "tags": ["..."], "seed": 7,
 *    "gateway": {"config": "fixtures/gateway/default.json"}, "env"?: {"NAME": "value"},
 *    "steps": [ {"request": {...}, "expect"?: {...}, "capture"?: {...}},
 *               {"call": {...}},
 *               {"webhook": {...}, "expect"?: {...}, "capture"?: {...}},
 *               {"wait": {"request": {...}, "until": {...}, "within"?: "10s", "capture"?}} ]}
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

/* Room for "FILE: steps[12] (webhook): ..." with a long path. */
#define SC_ERR_LEN 1024
/* A scenario file is hand-written; anything bigger is a mistake. */
#define SC_FILE_MAX (4u << 20)
#define SC_MAX_STATUSES 16
#define SC_WAIT_DEFAULT_MS 10000

typedef enum {
    SC_TO_GATEWAY = 0,
    SC_TO_CONTROL,
    SC_TO_RETELL,
    SC_TO_CALCOM,
    SC_TO_STRIPE,
} sc_target_t;

typedef enum {
    SC_STEP_REQUEST = 0,
    SC_STEP_CALL,
    SC_STEP_WEBHOOK,
    SC_STEP_WAIT,
} sc_step_kind_t;

typedef struct {
    sc_target_t to;
    const char *method;    /* GET (default), HEAD, POST, PUT, PATCH, DELETE */
    const char *path;      /* "/admin/queue?x=1", may hold ${...} */
    const json_t *headers; /* object of string values, or NULL */
    const json_t *json;    /* body as JSON, or NULL */
    const char *body;      /* raw body, or NULL (never both json and body) */
    int auth;              /* -1: default (gateway /admin/ paths only), 0: never, 1: always */
} sc_request_t;

typedef struct {
    int present;                   /* "expect" / "until" was written */
    int statuses[SC_MAX_STATUSES]; /* allowed statuses; none listed: any 2xx */
    size_t nstatuses;
    const json_t *json; /* sc_match expectation map, or NULL */
} sc_expect_t;

typedef struct {
    sc_step_kind_t kind;
    size_t index;
    const char *name; /* optional "name", or NULL */

    sc_request_t req;      /* request, wait */
    sc_expect_t expect;    /* request: "expect"; webhook: "expect" (statuses); wait: "until" */
    const json_t *capture; /* request, webhook, wait: variable -> answer path, or NULL */

    /* call */
    const char *fixture; /* path of the call object template */
    const json_t *set;   /* dotted path -> value overrides, or NULL */
    const char *as;      /* variable for the answer; default "call" */

    /* webhook */
    const char *provider; /* "retell" (the only one for now) */
    const char *call_id;
    const char *event; /* default "call_analyzed" */
    long long copies;  /* >= 1 */
    int concurrent, forge;
    long long timestamp_offset_ms;

    /* wait */
    int64_t within_ms;
} sc_step_t;

typedef struct {
    char *path;   /* as given on the command line */
    char *dir;    /* the file's directory */
    json_t *root; /* the whole file */
    const char *name;
    const char *description; /* or NULL */
    const json_t *tags;      /* array of strings */
    long long seed;
    const char *gateway_config; /* path, relative to the repo root or the file's dir */
    const json_t *env;          /* object of strings, or NULL */
    sc_step_t *steps;
    size_t nsteps;
} sc_scenario_t;

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

#endif
