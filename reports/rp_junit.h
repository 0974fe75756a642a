/* rp_junit.h - the JUnit XML writer (the Ant/Jenkins/GitLab dialect).
 *
 * One <testsuites> with one <testsuite> per suite (per scenario file). A case (scenario)
 * with assertions gives one <testcase> per assertion, named "scenario: step", classname
 * the scenario's; the failed one carries the failure, those not reached are <skipped>.
 * A case without assertions, or whose failure belongs to no assertion (start-up, teardown),
 * gives one <testcase> named after the scenario. A failed testcase gets <failure message
 * type>detail</failure>, an errored one <error>, a skipped one <skipped message/>; failed and
 * errored cases carry their log in <system-out>. The counts on every element are computed from the
 * cases, so they always match the elements. Everything is escaped for XML 1.0 (see rp_xml.h).
 * Thread-safe: the report is only read.
 */
#ifndef RP_JUNIT_H
#define RP_JUNIT_H

#include "cm_buf.h"
#include "cm_err.h"
#include "rp_result.h"

/* The counts the document shows for these cases (testcases per assertion, see above). */
rp_counts_t rp_junit_counts(const rp_case_t *const *cases, size_t n);

/* Appends the whole document to out. On error out may hold part of it. */
cm_err_t rp_junit_render(const rp_report_t *r, cm_buf_t *out) CM_WUR;

/* Renders and writes the document to path (parents created, replaced atomically). err
 * (CM_ERR_LEN, may be NULL) says what failed. */
cm_err_t rp_junit_write(const rp_report_t *r, const char *path, char *err) CM_WUR;

#endif
