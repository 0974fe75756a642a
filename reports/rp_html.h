/* rp_html.h - one self-contained HTML report: no scripts, fonts or images from anywhere,
 * readable offline in any browser.
 *
 * A summary (counts, wall and simulated time, options) and a table of every scenario,
 * then per scenario its diagnosis, an SVG timeline of its log (one lane per actor: the
 * runner, the simulators, the gateway, each step; a mark per logged request or event,
 * coloured by outcome, with the line as a tooltip) and the log itself (collapsed unless
 * the scenario failed). The timeline also draws what the parts recorded (rp_case_t events:
 * provider requests with their faults, webhook deliveries, breaker transitions, saga
 * steps) in lanes of their own. Thread-safe: the report is only read.
 */
#ifndef RP_HTML_H
#define RP_HTML_H

#include "cm_buf.h"
#include "cm_err.h"
#include "rp_result.h"

/* Marks per timeline: beyond this the rest of the log is still listed, not drawn. */
#define RP_HTML_MAX_MARKS 3000
/* Lanes per timeline: further actors share the last lane. */
#define RP_HTML_MAX_LANES 40

cm_err_t rp_html_render(const rp_report_t *r, cm_buf_t *out) CM_WUR;
cm_err_t rp_html_write(const rp_report_t *r, const char *path, char *err) CM_WUR;

#endif
