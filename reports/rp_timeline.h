/* rp_timeline.h - the layout of a case's timeline: which lane each mark (log line or
 * recorded event) goes in, what each lane is called and how many marks it holds.
 *
 * Lanes, top to bottom: the parts that logged (runner, simulators, gateway, chaos proxy),
 * the steps in the order they were named (rp_case_add_lane: the step's name or location,
 * nested steps indented under their repeat, rp_case_join_lane's actors in the lane they
 * join), then the parts that only recorded events (provider requests,
 * deliveries, breakers, sagas, chaos links). An actor without a named lane is a part.
 *   - At most RP_TL_MAX_PARTS parts get a lane of their own; the rest share "other".
 *   - Steps take the rest of RP_TL_MAX_LANES. When they do not fit (a generated
 *     scenario of hundreds of steps), each group (the kind of step) shares one lane,
 *     "403 request steps", and the failing step keeps its own.
 *   - A named lane without marks is left out, unless it failed or holds a nested lane
 *     that is drawn (a repeat's header).
 * Nothing is dropped: every mark belongs to exactly one lane. Thread-safe: the case is
 * only read.
 */
#ifndef RP_TIMELINE_H
#define RP_TIMELINE_H

#include <stddef.h>
#include <stdint.h>

#include "cm_err.h"
#include "rp_result.h"

#define RP_TL_MAX_LANES 48
#define RP_TL_MAX_PARTS 20

typedef struct {
    const char *label; /* borrowed from the case, or name below */
    char name[64];     /* labels the layout makes: "other (3 actors)", "403 request steps" */
    int depth;         /* indentation: nesting of the step (0 for parts and groups) */
    int failed;        /* the failing step's lane */
    int step;          /* a step's lane (else a part's) */
    size_t nmarks;
    int64_t first, last; /* t_ms of its first and last mark (0, 0 without marks) */
} rp_tl_lane_t;

typedef struct {
    rp_tl_lane_t *lanes;
    size_t nlanes;
    size_t *lane_of; /* per mark, log lines first then events: its lane */
    size_t nmarks;   /* c->nlines + c->nevents */
    size_t nsteps;   /* named lanes merged into lanes (steps that logged) */
    int grouped;     /* the steps did not fit: one lane per group */
    int64_t end_ms;  /* the latest mark, or the case's time, at least 1 */
} rp_timeline_t;

/* The i-th mark of c: its log lines first, then the events the parts recorded. */
const rp_line_t *rp_tl_mark(const rp_case_t *c, size_t i);

/* Lays out c's timeline into *t (owned by the caller: rp_timeline_free). On error (out of
 * memory) *t is empty. */
cm_err_t rp_timeline_build(const rp_case_t *c, rp_timeline_t *t) CM_WUR;

/* Frees what rp_timeline_build allocated and empties *t; accepts an empty one. */
void rp_timeline_free(rp_timeline_t *t);

#endif
