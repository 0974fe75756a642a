/* rp_html.h - one self-contained HTML report: no scripts, fonts or images from anywhere,
 * readable offline in any browser.
 *
 * A summary (counts, wall and simulated time, options) and a table of every scenario,
 * then per scenario: for a failure its message in one line (where, what was expected, what
 * was found) and the diagnosis; an SVG timeline of its log (lanes for the runner, the
 * simulators, the gateway and each step, named as the scenario names the step, the
 * failing step's lane in red; a mark per logged request or event, coloured by outcome,
 * with the line as a tooltip; the iterations of repeats as light separators) and the log
 * itself (collapsed unless the scenario failed). The timeline also draws what the parts
 * recorded (rp_case_t events: provider requests with their faults, webhook deliveries,
 * breaker transitions, saga steps) in lanes of their own. Thread-safe: the report is
 * only read.
 */
#ifndef RP_HTML_H
#define RP_HTML_H

#include "cm_buf.h"
#include "cm_err.h"
#include "rp_result.h"

/* Marks per lane: a lane with more shows its density (a bar per time slice, as tall as
 * its count, coloured by its worst mark, counts as tooltip) instead of a mark per line,
 * so a long drill is neither dropped nor a page of thousands of overlapping marks. Which
 * lanes there are: rp_timeline.h. */
#define RP_HTML_LANE_MARKS 200

cm_err_t rp_html_render(const rp_report_t *r, cm_buf_t *out) CM_WUR;
cm_err_t rp_html_write(const rp_report_t *r, const char *path, char *err) CM_WUR;

#endif
