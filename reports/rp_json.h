/* rp_json.h - the JSON report: everything the result model holds (run options, seeds,
 * speed-ups, timings, outcomes, diagnoses and every timed log line), for tools.
 *
 *   {"format":"bookbench-scenario-report/1","name","started_at","time_s","options":{
 *    "seed","jobs","repeat","speed"},"counts":{"tests","passed","failures","errors",
 *    "skipped","time_s","sim_time_s"},"suites":[{"file","counts":{...},"cases":[{"name",
 *    "classname","status","time_s","sim_time_s","started_at","seed","speed","tags",
 *    "type","message","detail","kept_dir","log":[{"t_ms","actor","text"}],
 *    "dropped_lines","events":[{"t_ms","source","text"}],"dropped_events",
 *    "assertions":[{"name","status","time_s"}],"lanes":[{"actor","label","group","joins",
 *    "depth","failed"}],"iterations":[{"t_ms","label"}],"dropped_iterations"}]}]}
 *
 * "message" is one line (where the case failed, what was expected and found); "lanes"
 * name the timeline's step lanes (rp_case_add_lane), "iterations" where the iterations of
 * repeats began ("label" "" where they ended).
 *
 * Strings are valid UTF-8 (bytes that are not become U+FFFD). Thread-safe: the report
 * is only read.
 */
#ifndef RP_JSON_H
#define RP_JSON_H

#include "cm_buf.h"
#include "cm_err.h"
#include "rp_result.h"

/* Appends the whole document to out. On error out may hold part of it. */
cm_err_t rp_json_render(const rp_report_t *r, cm_buf_t *out) CM_WUR;

/* Renders and writes to path (parents created, replaced atomically); err (CM_ERR_LEN,
 * may be NULL) says what failed. */
cm_err_t rp_json_write(const rp_report_t *r, const char *path, char *err) CM_WUR;

/* Appends s as a JSON string literal, replacing invalid UTF-8 with U+FFFD (shared with
 * the HTML report, which embeds data as JSON). */
cm_err_t rp_json_str(cm_buf_t *b, const char *s) CM_WUR;

#endif
