/* rp_health.h - the health report: a gateway judged from outside, area by area, in the
 * spirit of an integration audit ("Integration Health Report, 45/100").
 *
 * Input: the run's result model (rp_result.h). Every case with an "area" (a scenario of the
 * contract suite, scenarios/contract/) counts in its area; cases without one are not part
 * of it, skipped cases are not judged (neither passed nor failed). Output, health.json:
 *
 *   {"gateway": str, "seed": int, "score": int,
 *    "areas": [{"area": str, "score": int, "passed": int, "total": int,
 *               "status": "ok"|"degraded"|"broken"}],
 *    "findings": [{"area": str, "scenario": str, "finding": str, "evidence": [str]}]}
 *
 * and health.html, the same as one self-contained page (no scripts, nothing fetched).
 *
 * Scores: an area's score is passed / total x 100, rounded down, so anything short of every
 * scenario passing is below 100 ("ok" is 100, "broken" is 0 passed, "degraded" between).
 * The overall score is the mean of the judged areas' scores, rounded down: each area
 * weighs the same however many scenarios it has, as the audit scores each integration
 * once. Areas are listed in the order of rp_health_areas; an area without a judged
 * scenario (monitoring: nothing outside the gateway can check it) is left out of
 * "areas" and of the mean, and the HTML page names it as not judged. "seed" is the run's
 * --seed when one overrode every scenario's, else 0 (each scenario then ran with its own,
 * shown in report.json).
 *
 * A finding is one failed or errored case: its finding text, its area, the scenario file
 * (the suite's name, with its store when the run named one) and the evidence: the failure's
 * one-line message, the first lines of its diagnosis and the last lines the simulators
 * recorded (their journal of provider requests and webhook deliveries: rp_case_t events).
 *
 * Thread-safe: the report is only read.
 */
#ifndef RP_HEALTH_H
#define RP_HEALTH_H

#include "cm_buf.h"
#include "cm_err.h"
#include "rp_result.h"

/* The areas, in report order (NULL-terminated). */
extern const char *const rp_health_areas[];

/* Evidence per finding: at most this many diagnosis lines and journal lines. */
#define RP_HEALTH_DETAIL_LINES 12
#define RP_HEALTH_JOURNAL_LINES 20

/* The index of area in rp_health_areas, or -1. */
int rp_health_area_index(const char *area);

/* Has the report any case with an area (is there anything to judge)? */
int rp_health_has_areas(const rp_report_t *r);

/* Appends health.json's document / health.html's page to out. gateway names the gateway
 * under test (NULL: "unknown"). */
cm_err_t rp_health_render_json(const rp_report_t *r, const char *gateway, cm_buf_t *out) CM_WUR;
cm_err_t rp_health_render_html(const rp_report_t *r, const char *gateway, cm_buf_t *out) CM_WUR;

/* Writes dir/health.json and dir/health.html (dir created, files replaced atomically);
 * err (CM_ERR_LEN, may be NULL) says what failed. */
cm_err_t rp_health_write(const rp_report_t *r, const char *gateway, const char *dir,
                         char *err) CM_WUR;

#endif
