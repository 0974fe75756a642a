/* test_sc_metrics.c - selectors over a Prometheus text exposition: names, label subsets,
 * sums across series, quoting and escapes, and what is not a selector. */
#include <criterion/criterion.h>
#include <string.h>

#include "sc_metrics.h"

static const char *const text = "# HELP gw_outbound_calls_total Outbound calls.\n"
                                "# TYPE gw_outbound_calls_total counter\n"
                                "gw_outbound_calls_total{provider=\"calcom\",outcome=\"ok\"} 3\n"
                                "gw_outbound_calls_total{provider=\"calcom\",outcome=\"error\"} 2\n"
                                "gw_outbound_calls_total{provider=\"stripe\",outcome=\"ok\"} 1\n"
                                "gw_breaker_state{provider=\"calcom\"} 1\n"
                                "gw_outbound_seconds_bucket{provider=\"calcom\",le=\"0.5\"} 4\n"
                                "gw_odd_total{path=\"a,b}\\\"c\"} 7 1700000000000\n"
                                "gw_up 1\n";

static double sum_of(const char *sel, int want_n)
{
    double v = -1;
    int n = sc_metrics_sum(text, strlen(text), sel, &v);
    cr_assert_eq(n, want_n, "%s: %d series, want %d", sel, n, want_n);
    return v;
}

Test(metrics, selectors_sum_matching_series)
{
    cr_assert_float_eq(sum_of("gw_outbound_calls_total", 3), 6, 1e-9);
    cr_assert_float_eq(sum_of("gw_outbound_calls_total{provider=calcom}", 2), 5, 1e-9);
    cr_assert_float_eq(sum_of("gw_outbound_calls_total{outcome=\"ok\",provider=calcom}", 1), 3,
                       1e-9);
    cr_assert_float_eq(sum_of("gw_breaker_state{provider=calcom}", 1), 1, 1e-9);
    cr_assert_float_eq(sum_of("gw_outbound_seconds_bucket{le=0.5}", 1), 4, 1e-9);
    cr_assert_float_eq(sum_of("gw_odd_total{path=\"a,b}\\\"c\"}", 1), 7, 1e-9,
                       "quoted values with escapes; a trailing timestamp is ignored");
    cr_assert_float_eq(sum_of("gw_up", 1), 1, 1e-9);
    cr_assert_float_eq(sum_of("gw_outbound_calls", 0), 0, 1e-9, "names match whole");
    cr_assert_float_eq(sum_of("gw_outbound_calls_total{provider=twilio}", 0), 0, 1e-9);
    cr_assert_float_eq(sum_of("gw_missing_total", 0), 0, 1e-9);
}

Test(metrics, bad_selectors)
{
    const char *bad[] = {"", "9lives", "gw_x{", "gw_x{a}", "gw_x{a=1", "gw_x y", "gw_x{}z"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char err[CM_ERR_LEN] = "";
        double v;
        cr_assert_eq(sc_metrics_selector_valid(bad[i], err), CM_EINVAL, "accepted \"%s\"", bad[i]);
        cr_assert_not_null(strstr(err, "is not a metric selector"), "%s", err);
        cr_assert_eq(sc_metrics_sum(text, strlen(text), bad[i], &v), -1, "%s", bad[i]);
    }
    char err[CM_ERR_LEN];
    cr_assert_eq(sc_metrics_selector_valid("gw_x{a=1,b=\"2\"}", err), CM_OK, "%s", err);
    cr_assert_eq(sc_metrics_selector_valid("gw_x{}", err), CM_OK, "%s", err);
}
