/* ch_control.h - chaos-proxy's control API: list, add and repoint links, set and clear
 * their faults, read the journal (the routes and bodies are in chaos/README.md).
 *
 * Answers are JSON; errors are application/problem+json whose detail names the problem
 * and, for a bad body, the JSON path ("faults[1].jitter: "5x" is not a duration ...").
 * Faults set in the deprecated {"type":...} form are taken, logged at warn, and listed in
 * the answer's "deprecated" array with the way to write each one now.
 * Bodies over CH_CONTROL_BODY_LIMIT are refused with 413 by the server (give the server
 * that body_limit). Handlers are thread-safe; the links and journal are borrowed and must
 * outlive the server.
 */
#ifndef CH_CONTROL_H
#define CH_CONTROL_H

#include "ch_journal.h"
#include "ch_link.h"
#include "cm_err.h"
#include "cm_http_server.h"

#define CH_CONTROL_BODY_LIMIT (64u << 10)

typedef struct {
    ch_links_t *links;     /* borrowed */
    ch_journal_t *journal; /* borrowed */
} ch_control_t;

/* Adds the control routes to srv (before it starts). ctl is borrowed for the server's life. */
cm_err_t ch_control_routes(ch_control_t *ctl, cm_http_server_t *srv) CM_WUR;

/* Where a number is read from: the JSON body at a dotted path ("faults.0.bandwidth": a
 * number segment is an array index), or a query parameter (decimal digits only). */
typedef enum { CH_NUM_BODY = 0, CH_NUM_QUERY } ch_num_in_t;

typedef struct {
    const char *route; /* as routed: "PUT /links/{name}/faults" */
    ch_num_in_t in;
    const char *field;
    int real;         /* any JSON number (else an integer) */
    int64_t min, max; /* inclusive */
} ch_control_number_t;

/* Every number the control API takes and the range it must lie in. One outside it, a real
 * where an integer belongs, or a string where a number belongs is refused with 400 and a
 * detail naming the field, before anything changes. The port and the journal's parameters
 * are read through this table here; faults' numbers are checked by ch_faults_parse against
 * the same limits (ch_fault.h). test_ch_control.c sends extreme values to every entry and
 * the edges of its range, so a number missing here goes untested: list each new one.
 * Read-only. */
extern const ch_control_number_t ch_control_numbers[];
extern const size_t ch_control_nnumbers;

#endif
