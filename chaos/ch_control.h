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

#endif
