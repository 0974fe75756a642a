/* sc_step_def.h - what a step kind is: how its object is read and checked at load, and how
 * it runs (internal to the runner).
 *
 * One definition per kind, in the kind's own file (sc_step_http.c, sc_step_provider.c,
 * sc_step_flow.c, sc_step_parts.c), listed once in sc_step_kinds.h. sc_parse_steps finds a
 * step's kind and calls its parse; sc_step_run calls its run. The helpers below are what
 * the kinds' runs share (sc_steps.c).
 */
#ifndef SC_STEP_DEF_H
#define SC_STEP_DEF_H

#include <jansson.h>
#include <stddef.h>

#include "sc_ctx.h"
#include "sc_http.h"
#include "sc_parse.h"
#include "sc_steps.h"

typedef struct {
    const char *key;         /* the key that names the kind in a step object */
    const char *const *keys; /* every key its step object may hold ("name" and the kind's) */
    /* Reads the step: obj is the whole step object, body the value of its kind's key.
     * Fails through sc_parse_fail. */
    cm_err_t (*parse)(sc_parse_t *v, const json_t *obj, const json_t *body, sc_step_t *s);
    /* Runs it: label names it in failure messages, actor in log lines. Fails through
     * sc_fail (sc_log.h), returning non-CM_OK. */
    cm_err_t (*run)(sc_ctx_t *ctx, const sc_step_t *s, const char *label, const char *actor);
} sc_step_def_t;

#define SC_STEP_KIND(e, key, def) extern const sc_step_def_t def;
#include "sc_step_kinds.h"
#undef SC_STEP_KIND

/* The definition of kind k, NULL for a value out of range. */
const sc_step_def_t *sc_step_def(sc_step_kind_t k);

/* Shared by the runs. */
/* Fails the step for a ${...} that could not be expanded. */
cm_err_t sc_step_fail_var(sc_ctx_t *ctx, const char *label, const char *err);
/* The status is one of e's, or any 2xx when e lists none. */
int sc_step_status_ok(const sc_expect_t *e, long status);
/* e's statuses for a message ("204 or 200", "2xx"), into out. */
const char *sc_step_statuses_str(const sc_expect_t *e, char *out, size_t cap);
/* A copy of in with ${...} expanded (NULL in, NULL out); fails the step otherwise. */
cm_err_t sc_step_expand_spec(sc_ctx_t *ctx, const char *label, const json_t *in,
                             json_t **out) CM_WUR;
/* The first line of a diagnosis, for the one-line message. */
void sc_step_first_line(const cm_buf_t *diag, char *out, size_t cap);
/* Sets the capture's variables from the answer a; fails the step for a missing path. */
cm_err_t sc_step_capture(sc_ctx_t *ctx, const char *label, const json_t *cap,
                         const sc_answer_t *a) CM_WUR;
/* Percent-encodes in as one URL path segment into out. */
void sc_step_encode_segment(const char *in, char *out, size_t cap);
/* Runs s's children in order in ctx; the first failure ends it. */
cm_err_t sc_step_run_children(sc_ctx_t *ctx, const sc_step_t *s) CM_WUR;

#endif
