/* sc_yaml.h - a YAML scenario file read as the JSON document it stands for.
 *
 * Scenario files may be written in YAML (libyaml) as well as JSON; both go through the same
 * validation and the same JSON Schema. The YAML is taken as JSON with another syntax, so
 * what JSON cannot say is refused rather than guessed at:
 *   - one document per file; mapping keys are plain strings, each at most once;
 *   - plain scalars resolve as in YAML 1.2's core schema: null, ~ and nothing are null,
 *     true/false (any case) booleans, decimal integers and floats numbers (.inf and .nan
 *     are refused: JSON has no such numbers); everything else, and every quoted or block
 *     scalar, is a string ("250ms", "2050-09-05T09:00:00.000Z" and "1.5s" stay strings);
 *   - anchors and aliases work (an alias is a copy of the finished node it names);
 *   - tags other than !!str, !!int, !!float, !!bool, !!null, !!map and !!seq are refused.
 * Messages name the line and column. Thread-safe (no shared state).
 */
#ifndef SC_YAML_H
#define SC_YAML_H

#include <jansson.h>
#include <stddef.h>

#include "cm_err.h"

/* 1 when path names a YAML file (".yaml" or ".yml"). */
int sc_yaml_path(const char *path);

/* Parses len bytes of text. On success *out is a new JSON value (the caller owns it); on
 * failure *out is NULL and err (CM_ERR_LEN bytes) says what and where: CM_EINVAL for
 * malformed or unsupported YAML, CM_ENOMEM. */
cm_err_t sc_yaml_parse(const char *text, size_t len, json_t **out, char *err) CM_WUR;

#endif
