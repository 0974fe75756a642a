/* sc_vars.h - the variables of one scenario run and "${name}" / "${name.path}" expansion.
 *
 * A variable holds any JSON value: built-ins are strings or numbers (seed, gateway_url,
 * ...), captures hold whatever the answer had, so "${call.call_id}" reaches into an object.
 * References that name no variable, or a path the value does not have, are errors that
 * name the reference: a typo must fail the step, never expand to "". "$${" writes a
 * literal "${".
 *
 * Ownership: the store keeps its own reference to each value (json_incref); do not modify
 * a value after handing it over. Expansion results are new and belong to the caller.
 * Not thread-safe: one store per scenario run.
 */
#ifndef SC_VARS_H
#define SC_VARS_H

#include <jansson.h>

#include "cm_err.h"

typedef struct sc_vars sc_vars_t;

sc_vars_t *sc_vars_new(void);
void sc_vars_free(sc_vars_t **v);

/* 1 when name is a valid variable name: [A-Za-z_][A-Za-z0-9_]*. */
int sc_vars_valid_name(const char *name);

/* Sets (or replaces) a variable. CM_EINVAL for an invalid name, CM_ENOMEM; on error the
 * store is unchanged. */
cm_err_t sc_vars_set(sc_vars_t *v, const char *name, json_t *value) CM_WUR;
cm_err_t sc_vars_set_str(sc_vars_t *v, const char *name, const char *s) CM_WUR;
cm_err_t sc_vars_set_int(sc_vars_t *v, const char *name, long long n) CM_WUR;

/* Removes a variable (absent: nothing happens). */
void sc_vars_unset(sc_vars_t *v, const char *name);

/* A new store with deep copies of every value (so the copy can be used from another
 * thread while the original is only read). NULL when out of memory. Reads v only. */
sc_vars_t *sc_vars_clone(const sc_vars_t *v);

/* The value a reference ("call" or "call.call_analysis.x", array elements by number)
 * points at: borrowed, or NULL when absent. */
const json_t *sc_vars_lookup(const sc_vars_t *v, const char *ref);

/* Expands every reference in the text in. Non-string values are written as compact JSON
 * (numbers as digits). *out is a new malloc'd string on success, NULL on error; err
 * (CM_ERR_LEN) names the bad reference. */
cm_err_t sc_vars_expand(const sc_vars_t *v, const char *in, char **out, char *err) CM_WUR;

/* Deep copy of in with every string (object keys too) expanded. A string that is exactly
 * one reference, "${n}", becomes the variable's value with its own type, so that
 * {"count": "${n}"} compares numbers. *out is a new value, NULL on error. */
cm_err_t sc_vars_expand_json(const sc_vars_t *v, const json_t *in, json_t **out, char *err) CM_WUR;

#endif
