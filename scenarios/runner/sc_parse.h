/* sc_parse.h - reading and checking the steps of a scenario file (internal to the runner).
 *
 * sc_scenario reads a file's top level and hands its "steps" to sc_parse_steps, which finds
 * each step's kind in the table (sc_step_kinds.h) and calls the kind's parse
 * (sc_step_def.h). The helpers below are what every kind's parse shares: typed fields,
 * unknown keys, requests, expectations, captures. Each failure writes one message to
 * v->err, of the form
 *   FILE: steps[3] (webhook): "copies" must be a positive integer
 * and returns CM_EINVAL; the first failure ends the load.
 *
 * Ownership: parsed steps borrow their strings from the scenario's JSON; JSON a parse
 * makes itself (a desugared step) is handed to sc_parse_keep, which the scenario owns.
 */
#ifndef SC_PARSE_H
#define SC_PARSE_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "cm_err.h"
#include "sc_scenario.h"

/* Where the parse is, for messages and for the rules that depend on the context. */
typedef struct sc_parse {
    const sc_scenario_t *sc;
    char where[224];   /* "steps[3] (webhook)", "" at top level */
    char *err;         /* SC_ERR_LEN bytes */
    int in_concurrent; /* parsing inside a repeat with concurrency > 1 */
    int depth;         /* include depth */
} sc_parse_t;

/* Writes "FILE: WHERE: message" to v->err; returns CM_EINVAL. */
cm_err_t sc_parse_fail(sc_parse_t *v, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Every key of obj must be in allowed (NULL-terminated); what names obj in the message
 * ("\"call\"", "" for the step itself). */
cm_err_t sc_parse_keys(sc_parse_t *v, const json_t *obj, const char *what,
                       const char *const *allowed) CM_WUR;

/* Typed optional fields: absent gives NULL / def; present with another type fails. */
cm_err_t sc_parse_opt_str(sc_parse_t *v, const json_t *obj, const char *key,
                          const char **out) CM_WUR;
cm_err_t sc_parse_req_str(sc_parse_t *v, const json_t *obj, const char *key,
                          const char **out) CM_WUR;
cm_err_t sc_parse_opt_bool(sc_parse_t *v, const json_t *obj, const char *key, int def,
                           int *out) CM_WUR;
cm_err_t sc_parse_opt_object(sc_parse_t *v, const json_t *obj, const char *key,
                             const json_t **out) CM_WUR;
cm_err_t sc_parse_opt_int(sc_parse_t *v, const json_t *obj, const char *key, long long def,
                          long long min, long long max, long long *out) CM_WUR;
/* A relative path must name an existing file unless it is built from variables. */
cm_err_t sc_parse_file(sc_parse_t *v, const char *key, const char *rel) CM_WUR;
/* A name a step may set (capture, "as", "var", "with"): valid and not a built-in. field
 * names the key in the message. */
cm_err_t sc_parse_var_name(sc_parse_t *v, const char *field, const char *name) CM_WUR;
/* An optional duration field (cm_duration grammar, > 0) in ms; def when absent. */
cm_err_t sc_parse_within(sc_parse_t *v, const json_t *obj, const char *key, int64_t def,
                         int64_t *ms) CM_WUR;

/* {"to","method","path","headers","json"|"body","body_repeat","sign","auth"}. */
cm_err_t sc_parse_request(sc_parse_t *v, const json_t *obj, sc_request_t *r) CM_WUR;
/* An "expect"/"until" object; webhook: the webhook dialect ("statuses", "json"). */
cm_err_t sc_parse_expect(sc_parse_t *v, const json_t *x, const char *what, int webhook,
                         sc_expect_t *e) CM_WUR;
/* The step's optional "capture": variable -> answer path. */
cm_err_t sc_parse_capture(sc_parse_t *v, const json_t *step, const json_t **out) CM_WUR;
/* The gateway's admin path of a saga (saga != 0) or a call whose id (may hold ${...}) is x. */
cm_err_t sc_parse_admin_path(sc_parse_t *v, const json_t *x, int saga, char *path,
                             size_t cap) CM_WUR;

/* Hands JSON a parse made to the scenario, which frees it with itself (steps borrow from
 * it). Takes doc. */
cm_err_t sc_parse_keep(sc_parse_t *v, json_t *doc) CM_WUR;
/* A JSON or YAML file (by its name) into *doc; err (CM_ERR_LEN) starts with the path. */
cm_err_t sc_parse_load_doc(const char *path, json_t **doc, char *err) CM_WUR;
/* A chaos link by name; SC_LINKS when there is none. */
sc_link_t sc_parse_link(const char *name);

/* A signed duration ("+6m", "-30s", "90s" is "+90s") in ms; what names it in messages. */
cm_err_t sc_parse_offset(sc_parse_t *v, const char *what, const json_t *x, int64_t *ms) CM_WUR;
/* obj's "timestamp_offset" (a signed duration), or its deprecated form "timestamp_offset_ms"
 * (an integer, with a warning); *present says whether either was written. what ("\"sign\"",
 * "\"webhook\"") starts messages. */
cm_err_t sc_parse_ts_offset(sc_parse_t *v, const json_t *obj, const char *what, int64_t *ms,
                            int *present) CM_WUR;
/* A warning about the file (a deprecated form): "FILE: WHERE: warning: ..." on stderr. The
 * load goes on. */
void sc_parse_warn(sc_parse_t *v, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* A list of steps: loc ("steps", "steps[3].steps") and actor ("step[", "step[3") prefix
 * each step's own. *out is allocated even on failure (free it with its n). */
cm_err_t sc_parse_steps(sc_parse_t *v, const json_t *list, const char *loc, const char *actor,
                        sc_step_t **out, size_t *n) CM_WUR;
/* A step's children (a repeat's, an include's, an expect's), parsed from list under
 * s->loc + suffix; v->where is back to the step's when it returns CM_OK. */
cm_err_t sc_parse_children(sc_parse_t *v, const json_t *list, const char *suffix,
                           sc_step_t *s) CM_WUR;

#endif
