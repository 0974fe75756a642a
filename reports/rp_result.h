/* rp_result.h - the in-memory result model of one scenario run, handed to the report
 * writers (JUnit XML now; JSON and HTML later sit beside it and read the same model).
 *
 * A report holds suites (one per scenario file), a suite holds cases (one per scenario),
 * a case holds its outcome, its failure diagnosis and its log as timed lines, so that a
 * timeline writer can place each line without re-parsing text.
 *
 * Ownership: the report owns everything reachable from it; every string given to a setter
 * is copied. Suites and cases are returned as borrowed pointers that stay valid until the
 * report is freed (they are allocated one by one, so adding more never moves them).
 * Not thread-safe: one thread builds a report; give parallel runners one case each and
 * let a single thread add them.
 */
#ifndef RP_RESULT_H
#define RP_RESULT_H

#include <stddef.h>
#include <stdint.h>

#include "cm_err.h"

/* Past this many log lines a case keeps only a count of the dropped ones: a runaway
 * polling loop must not eat the machine's memory or a CI page. */
#define RP_MAX_LINES 20000
#define RP_MAX_LINE_LEN 4096
/* A repeat of a million iterations must not eat memory either: past this many iteration
 * starts a case keeps only a count. */
#define RP_MAX_ITERATIONS 10000

typedef enum {
    RP_PASSED = 0,
    RP_FAILED,  /* an expectation did not hold */
    RP_ERRORED, /* the scenario could not be run as written: invalid file, start failure */
    RP_SKIPPED,
} rp_status_t;

typedef struct {
    int64_t t_ms;   /* since the case started */
    char actor[24]; /* "runner", "sim", "gw", "step[3]", ... */
    char *text;
} rp_line_t;

/* A timeline lane for one actor's lines: the step behind it, as the scenario names it. */
typedef struct {
    char actor[24]; /* "step[3.0]" */
    char *label;    /* "book the slot", "steps[3].steps[0] (request)" */
    char group[24]; /* what lanes share one when there are too many: "request" */
    int depth;      /* how deep the step sits in others (0: a top-level step) */
    int failed;     /* the case's failure happened in this step (rp_case_fail_lane) */
    char joins[24]; /* drawn in this actor's lane (rp_case_join_lane), or "" */
} rp_lane_t;

/* Where an iteration of a repeat began on the case's clock ("i=3"), or where the
 * iterations ended (""). */
typedef struct {
    int64_t t_ms;
    char label[24];
} rp_iteration_t;

/* One assertion of a scenario: a top-level step that holds expectations. */
typedef struct {
    char *name;         /* "steps[3] (request \"no booking made\")" */
    rp_status_t status; /* passed, failed (the case's failure), or skipped (not reached) */
    double time_s;
} rp_assert_t;

typedef struct {
    /* public, read-only for writers */
    char *name;      /* scenario name */
    char *classname; /* file path without .json, '/' -> '.' */
    rp_status_t status;
    double time_s;
    int64_t started_ms; /* wall-clock epoch ms; 0 when not started */
    long long seed;     /* the seed the scenario ran with */
    int speed;          /* clock speed-up (1: real time) */
    double sim_time_s;  /* simulated time covered: time_s * speed */
    char **tags;        /* the scenario's tags (rp_case_set_tags) */
    size_t ntags;
    char *kept_dir; /* the temp dir when it was kept, or NULL */
    /* The health report's area the scenario judges and the finding its failure stands
     * for (rp_health.h), or NULL: a scenario without an area is in no health report. */
    char *area;
    char *finding;
    char *type;    /* failure/error type ("expectation", "timeout", "invalid", ...), or NULL */
    char *message; /* one line: where it failed, what was expected and found; or NULL */
    char *detail;  /* the diagnosis, expected and got; may span lines; or NULL */
    rp_line_t *lines;
    size_t nlines;
    size_t dropped_lines;
    /* What the parts recorded (simulator journal, breaker transitions, saga steps), placed
     * on the case's clock: t_ms since the case started, in real time. For timelines; not
     * part of the log text. */
    rp_line_t *events;
    size_t nevents;
    size_t dropped_events;
    /* The scenario's assertions in order (JUnit writes one testcase each). When the
     * case's failure belongs to one of them, failed_assert is its index + 1; 0 when the
     * failure (setup, teardown, a step without expectations) belongs to the scenario. */
    rp_assert_t *asserts;
    size_t nasserts;
    size_t failed_assert;
    /* The timeline's step lanes, in the order the steps were named (rp_case_add_lane);
     * actors without one (the parts) get a lane named after themselves. */
    rp_lane_t *lanes;
    size_t nlanes;
    /* The iterations of the repeats, in time order (rp_case_add_iteration). */
    rp_iteration_t *iterations;
    size_t niterations;
    size_t dropped_iterations;
    /* private */
    size_t _cap, _ecap, _acap, _lcap, _icap;
} rp_case_t;

typedef struct {
    char *name; /* the scenario file path */
    rp_case_t **cases;
    size_t ncases;
    size_t _cap;
} rp_suite_t;

typedef struct {
    char *name;
    double time_s;
    /* About the run, for the JSON and HTML reports (set by the runner; 0 when unknown). */
    int64_t started_ms; /* wall-clock epoch ms */
    int has_seed;       /* a --seed overrode every scenario's seed */
    long long seed;
    int jobs;   /* scenarios run in parallel */
    int repeat; /* each scenario run this many times */
    int speed;  /* a --speed overrode every scenario's, or 0 */
    rp_suite_t **suites;
    size_t nsuites;
    size_t _cap;
} rp_report_t;

typedef struct {
    size_t tests, failures, errors, skipped;
    double time_s;
} rp_counts_t;

/* New empty report named name (copied). NULL when out of memory. */
rp_report_t *rp_report_new(const char *name);
/* Frees the report and everything in it, sets *r to NULL; accepts NULL. */
void rp_report_free(rp_report_t **r);

/* Appends a suite / a case (name copied). Borrowed result, NULL when out of memory
 * (the report is then unchanged). A new case starts as RP_PASSED with no lines. */
rp_suite_t *rp_report_add_suite(rp_report_t *r, const char *name);
rp_case_t *rp_suite_add_case(rp_suite_t *s, const char *name, const char *classname);

/* Sets the outcome; type, message and detail are copied (each may be NULL). A failure
 * message is cut at its first newline (it becomes an XML attribute); the whole text
 * belongs in detail. Without a message, detail's first line is the message. */
cm_err_t rp_case_set_outcome(rp_case_t *c, rp_status_t st, const char *type, const char *message,
                             const char *detail) CM_WUR;

/* Replaces the case's tags with copies of tags[0..n-1]. On error nothing changes. */
cm_err_t rp_case_set_tags(rp_case_t *c, const char *const *tags, size_t n) CM_WUR;

/* Records the kept temp dir (copied; NULL or "" clears it). */
cm_err_t rp_case_set_kept(rp_case_t *c, const char *dir) CM_WUR;

/* Records the case's area and finding (copied; NULL clears). On error nothing changes. */
cm_err_t rp_case_set_area(rp_case_t *c, const char *area, const char *finding) CM_WUR;

/* Appends one log line (text copied, cut at RP_MAX_LINE_LEN). Past RP_MAX_LINES only
 * dropped_lines grows. */
cm_err_t rp_case_add_line(rp_case_t *c, int64_t t_ms, const char *actor, const char *text) CM_WUR;

/* Appends one event (same rules as rp_case_add_line, its own RP_MAX_LINES). */
cm_err_t rp_case_add_event(rp_case_t *c, int64_t t_ms, const char *actor, const char *text) CM_WUR;

/* Appends an assertion (name copied). */
cm_err_t rp_case_add_assert(rp_case_t *c, const char *name, rp_status_t st, double time_s) CM_WUR;

/* Names the lane of actor's lines label (copied, cut at RP_MAX_LINE_LEN), in group
 * (copied, cut to fit: which lanes share one when there are too many), depth steps deep.
 * An actor named already keeps its lane: CM_OK, nothing changes. On error nothing
 * changes. */
cm_err_t rp_case_add_lane(rp_case_t *c, const char *actor, const char *label, const char *group,
                          int depth) CM_WUR;

/* Draws actor's lines in the lane of into (named already): the checks an expect step
 * stands for are that step. actor gets into's label, group and depth. CM_ENOTFOUND when
 * into has no lane; an actor named already keeps its lane (CM_OK). */
cm_err_t rp_case_join_lane(rp_case_t *c, const char *actor, const char *into) CM_WUR;

/* Marks the lane of actor as the one the case's failure happened in. CM_ENOTFOUND when
 * no lane has that actor. */
cm_err_t rp_case_fail_lane(rp_case_t *c, const char *actor) CM_WUR;

/* The lane named for actor (borrowed), or NULL. */
const rp_lane_t *rp_case_lane(const rp_case_t *c, const char *actor);

/* Appends an iteration start (label cut to fit; "" for the end of a repeat). Past
 * RP_MAX_ITERATIONS only dropped_iterations grows. */
cm_err_t rp_case_add_iteration(rp_case_t *c, int64_t t_ms, const char *label) CM_WUR;

/* The case's log as text, one "  +1.234 actor  text" line per entry: a new string the
 * caller frees, NULL when out of memory. */
char *rp_case_log_text(const rp_case_t *c);

/* The class name for a file path: strips "./" and leading '/', a trailing ".json", and
 * turns '/' into '.'. Writes into out (cap bytes, truncated). Returns out. */
char *rp_classname(const char *path, char *out, size_t cap);

/* Totals over the suite (s) or the whole report (r). */
rp_counts_t rp_suite_counts(const rp_suite_t *s);
rp_counts_t rp_report_counts(const rp_report_t *r);

const char *rp_status_name(rp_status_t st);

#endif
