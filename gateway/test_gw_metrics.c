/* test_gw_metrics.c - registry rules, exact text format output, bounds, threads. */
#include <criterion/criterion.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "gw_metrics.h"

static gw_metrics_t *make(size_t max_series)
{
    gw_metrics_t *m = NULL;
    cr_assert_eq(gw_metrics_new(max_series, &m), CM_OK);
    return m;
}

static char *render(gw_metrics_t *m)
{
    static char text[1 << 16];
    cm_buf_t b;
    cm_buf_init(&b, sizeof text - 1);
    cr_assert_eq(gw_metrics_render(m, &b), CM_OK);
    snprintf(text, sizeof text, "%s", b.data ? b.data : "");
    cm_buf_free(&b);
    return text;
}

Test(metrics, doubles_are_formatted_as_prometheus_does)
{
    char s[32];
    cr_assert_str_eq(gw_metrics_fmt_double(0, s), "0");
    cr_assert_str_eq(gw_metrics_fmt_double(42, s), "42");
    cr_assert_str_eq(gw_metrics_fmt_double(0.1, s), "0.1");
    cr_assert_str_eq(gw_metrics_fmt_double(0.005, s), "0.005");
    cr_assert_str_eq(gw_metrics_fmt_double(-2.5, s), "-2.5");
    cr_assert_str_eq(gw_metrics_fmt_double(1e6, s), "1000000");
    cr_assert_str_eq(gw_metrics_fmt_double(1e21, s), "1e+21");
    cr_assert_str_eq(gw_metrics_fmt_double(0.1 + 0.2, s), "0.30000000000000004");
    cr_assert_str_eq(gw_metrics_fmt_double(INFINITY, s), "+Inf");
    cr_assert_str_eq(gw_metrics_fmt_double(-INFINITY, s), "-Inf");
    cr_assert_str_eq(gw_metrics_fmt_double(NAN, s), "NaN");
}

Test(metrics, names_and_labels_are_checked)
{
    gw_metrics_t *m = make(8);
    gw_mfamily_t *f = NULL;
    char err[CM_ERR_LEN];
    double b[] = {1, 2};
    double bad_b[] = {2, 1};
    cr_assert_eq(gw_metrics_counter(m, "9bad_total", "h", NULL, &f, err), CM_EINVAL);
    cr_assert_eq(gw_metrics_counter(m, "bad-name_total", "h", NULL, &f, err), CM_EINVAL);
    cr_assert_eq(gw_metrics_counter(m, "no_suffix", "h", NULL, &f, err), CM_EINVAL);
    cr_assert(strstr(err, "_total"), "%s", err);
    cr_assert_eq(gw_metrics_gauge(m, "gauge_total", "h", NULL, &f, err), CM_EINVAL);
    cr_assert_eq(gw_metrics_counter(m, "x_total", "h", "a,,b", &f, err), CM_EINVAL);
    cr_assert_eq(gw_metrics_counter(m, "x_total", "h", "a,", &f, err), CM_EINVAL);
    cr_assert_eq(gw_metrics_counter(m, "x_total", "h", "a,a", &f, err), CM_EINVAL);
    cr_assert_eq(gw_metrics_counter(m, "x_total", "h", "__reserved", &f, err), CM_EINVAL);
    cr_assert_eq(gw_metrics_counter(m, "x_total", "h", "a-b", &f, err), CM_EINVAL);
    cr_assert_eq(gw_metrics_counter(m, "x_total", "h", "a,b,c,d,e,f,g,h,i", &f, err), CM_EINVAL);
    cr_assert_eq(gw_metrics_histogram(m, "h_seconds", "h", "le", b, 2, &f, err), CM_EINVAL);
    cr_assert_eq(gw_metrics_histogram(m, "h_seconds", "h", NULL, bad_b, 2, &f, err), CM_EINVAL);
    cr_assert_eq(gw_metrics_histogram(m, "h_seconds", "h", NULL, b, 0, &f, err), CM_EINVAL);
    cr_assert_null(f);
    cr_assert_eq(gw_metrics_gauge(m, "le", "a gauge may have an le label", "le", &f, err), CM_OK);
    cr_assert_eq(gw_metrics_counter(m, "ns:x_total", "h", "a,b", &f, err), CM_OK, "%s", err);
    cr_assert_eq(gw_metrics_counter(m, "ns:x_total", "h", NULL, &f, err), CM_EEXISTS);
    /* Wrong kinds of update are ignored, not mixed up. */
    gw_mseries_t *s = gw_metrics_with(f, GW_LV("1", "2"));
    gw_gauge_set(s, 5);
    gw_hist_observe(s, 5);
    gw_counter_add(s, -1);
    gw_counter_add(s, NAN);
    cr_assert_float_eq(gw_mseries_value(s), 0, 0);
    cr_assert_null(gw_metrics_with(f, GW_LV("1", NULL)));
    gw_metrics_free(&m);
    cr_assert_null(m);
    gw_metrics_free(&m);
}

Test(metrics, counters_and_gauges_render_exactly)
{
    gw_metrics_t *m = make(16);
    gw_mfamily_t *calls, *state, *up;
    char err[CM_ERR_LEN];
    cr_assert_eq(gw_metrics_counter(m, "gw_outbound_calls_total", "Outbound calls by outcome.",
                                    "provider,operation,outcome", &calls, err),
                 CM_OK, "%s", err);
    cr_assert_eq(gw_metrics_gauge(m, "gw_breaker_state",
                                  "Breaker state: 0 closed, 1 open, 2 half_open.", "provider",
                                  &state, err),
                 CM_OK);
    cr_assert_eq(gw_metrics_gauge(m, "gw_up", "Whether the gateway is up.", NULL, &up, err), CM_OK);
    /* Created out of order; rendered sorted by label values. */
    gw_counter_inc(gw_metrics_with(calls, GW_LV("stripe", "charge", "ok")));
    gw_mseries_t *cb = gw_metrics_with(calls, GW_LV("calcom", "book", "ok"));
    gw_counter_add(cb, 2);
    gw_counter_inc(cb);
    gw_counter_add(gw_metrics_with(calls, GW_LV("calcom", "book", "timeout")), 0.5);
    cr_assert_eq(gw_metrics_with(calls, GW_LV("calcom", "book", "ok")), cb, "same series");
    gw_gauge_set(gw_metrics_with(state, GW_LV("calcom")), 1);
    gw_mseries_t *st = gw_metrics_with(state, GW_LV("stripe"));
    gw_gauge_set(st, 2);
    gw_gauge_add(st, -2);
    gw_gauge_set(gw_metrics_with(up, NULL), 1);
    const char *want = "# HELP gw_outbound_calls_total Outbound calls by outcome.\n"
                       "# TYPE gw_outbound_calls_total counter\n"
                       "gw_outbound_calls_total{provider=\"calcom\",operation=\"book\","
                       "outcome=\"ok\"} 3\n"
                       "gw_outbound_calls_total{provider=\"calcom\",operation=\"book\","
                       "outcome=\"timeout\"} 0.5\n"
                       "gw_outbound_calls_total{provider=\"stripe\",operation=\"charge\","
                       "outcome=\"ok\"} 1\n"
                       "# HELP gw_breaker_state Breaker state: 0 closed, 1 open, 2 half_open.\n"
                       "# TYPE gw_breaker_state gauge\n"
                       "gw_breaker_state{provider=\"calcom\"} 1\n"
                       "gw_breaker_state{provider=\"stripe\"} 0\n"
                       "# HELP gw_up Whether the gateway is up.\n"
                       "# TYPE gw_up gauge\n"
                       "gw_up 1\n";
    cr_assert_str_eq(render(m), want);
    gw_metrics_free(&m);
}

Test(metrics, unlabelled_families_show_zero_and_empty_labelled_ones_are_omitted)
{
    gw_metrics_t *m = make(4);
    gw_mfamily_t *f;
    char err[CM_ERR_LEN];
    cr_assert_eq(gw_metrics_counter(m, "gw_a_total", "A.", NULL, &f, err), CM_OK);
    cr_assert_eq(gw_metrics_counter(m, "gw_b_total", "B.", "x", &f, err), CM_OK);
    cr_assert_str_eq(render(m), "# HELP gw_a_total A.\n# TYPE gw_a_total counter\ngw_a_total 0\n");
    gw_metrics_free(&m);
}

Test(metrics, escaping_of_help_and_label_values)
{
    gw_metrics_t *m = make(4);
    gw_mfamily_t *f;
    char err[CM_ERR_LEN];
    cr_assert_eq(
        gw_metrics_counter(m, "gw_odd_total", "Back\\slash \"quoted\"\nsecond line", "v", &f, err),
        CM_OK);
    gw_counter_inc(gw_metrics_with(f, GW_LV("a\"b\\c\nd\xc3\xa9")));
    const char *want = "# HELP gw_odd_total Back\\\\slash \"quoted\"\\nsecond line\n"
                       "# TYPE gw_odd_total counter\n"
                       "gw_odd_total{v=\"a\\\"b\\\\c\\nd\xc3\xa9\"} 1\n";
    cr_assert_str_eq(render(m), want);
    gw_metrics_free(&m);
}

Test(metrics, histograms_render_cumulative_buckets_sum_and_count)
{
    gw_metrics_t *m = make(4);
    gw_mfamily_t *h, *plain;
    char err[CM_ERR_LEN];
    double bounds[] = {0.05, 0.1, 0.5, 1};
    cr_assert_eq(gw_metrics_histogram(m, "gw_outbound_seconds", "Outbound call latency.",
                                      "provider", bounds, 4, &h, err),
                 CM_OK, "%s", err);
    cr_assert_eq(
        gw_metrics_histogram(m, "gw_ack_seconds", "Ack latency.", NULL, bounds, 1, &plain, err),
        CM_OK);
    gw_mseries_t *s = gw_metrics_with(h, GW_LV("calcom"));
    gw_hist_observe(s, 0.01);
    gw_hist_observe(s, 0.05); /* on a bound: that bucket (le is inclusive) */
    gw_hist_observe(s, 0.3);
    gw_hist_observe(s, 2);
    gw_hist_observe(s, NAN); /* ignored */
    cr_assert_eq(gw_mseries_count(s), 4);
    gw_hist_observe(gw_metrics_with(plain, NULL), 0.25);
    const char *want = "# HELP gw_outbound_seconds Outbound call latency.\n"
                       "# TYPE gw_outbound_seconds histogram\n"
                       "gw_outbound_seconds_bucket{provider=\"calcom\",le=\"0.05\"} 2\n"
                       "gw_outbound_seconds_bucket{provider=\"calcom\",le=\"0.1\"} 2\n"
                       "gw_outbound_seconds_bucket{provider=\"calcom\",le=\"0.5\"} 3\n"
                       "gw_outbound_seconds_bucket{provider=\"calcom\",le=\"1\"} 3\n"
                       "gw_outbound_seconds_bucket{provider=\"calcom\",le=\"+Inf\"} 4\n"
                       "gw_outbound_seconds_sum{provider=\"calcom\"} 2.36\n"
                       "gw_outbound_seconds_count{provider=\"calcom\"} 4\n"
                       "# HELP gw_ack_seconds Ack latency.\n"
                       "# TYPE gw_ack_seconds histogram\n"
                       "gw_ack_seconds_bucket{le=\"0.05\"} 0\n"
                       "gw_ack_seconds_bucket{le=\"+Inf\"} 1\n"
                       "gw_ack_seconds_sum 0.25\n"
                       "gw_ack_seconds_count 1\n";
    cr_assert_str_eq(render(m), want);
    gw_metrics_free(&m);
}

static double depth(void *ud)
{
    return *(int *)ud;
}

Test(metrics, gauge_functions_are_read_at_render_time)
{
    gw_metrics_t *m = make(4);
    char err[CM_ERR_LEN];
    int dlq = 3;
    cr_assert_eq(gw_metrics_gauge_func(m, "gw_dlq_depth", "Dead letters.", depth, &dlq, err),
                 CM_OK);
    cr_assert_eq(gw_metrics_gauge_func(m, "gw_nofn", "x", NULL, NULL, err), CM_EINVAL);
    cr_assert_str_eq(render(m), "# HELP gw_dlq_depth Dead letters.\n# TYPE gw_dlq_depth gauge\n"
                                "gw_dlq_depth 3\n");
    dlq = 7;
    cr_assert(strstr(render(m), "gw_dlq_depth 7\n"));
    gw_metrics_free(&m);
}

/* A state gauge whose owner says the state at render time: one series per state. */
static void light_state(void *ud, gw_mfamily_t *f)
{
    const char *const names[] = {"closed", "open"};
    int now = *(int *)ud;
    for (int i = 0; i < 2; i++)
        gw_gauge_set(gw_metrics_with(f, GW_LV("calcom", names[i])), i == now);
}

Test(metrics, a_collect_function_sets_its_series_at_render_time)
{
    gw_metrics_t *m = make(8);
    gw_mfamily_t *f;
    char err[CM_ERR_LEN];
    int state = 0;
    cr_assert_eq(gw_metrics_gauge(m, "gw_state", "State.", "provider,state", &f, err), CM_OK);
    cr_assert_str_eq(render(m), "", "no series before the function is set");
    gw_metrics_set_collect(f, light_state, &state);
    const char *head = "# HELP gw_state State.\n# TYPE gw_state gauge\n";
    char want[256];
    snprintf(want, sizeof want,
             "%sgw_state{provider=\"calcom\",state=\"closed\"} 1\n"
             "gw_state{provider=\"calcom\",state=\"open\"} 0\n",
             head);
    cr_assert_str_eq(render(m), want);
    state = 1; /* no update in between: the render asks */
    snprintf(want, sizeof want,
             "%sgw_state{provider=\"calcom\",state=\"closed\"} 0\n"
             "gw_state{provider=\"calcom\",state=\"open\"} 1\n",
             head);
    cr_assert_str_eq(render(m), want);
    /* Removed, it is no longer called: the series keep their last values. */
    gw_metrics_set_collect(f, NULL, NULL);
    state = 0;
    cr_assert_str_eq(render(m), want);
    gw_metrics_free(&m);
}

Test(metrics, label_sets_are_bounded)
{
    gw_metrics_t *m = make(3);
    gw_mfamily_t *f;
    char err[CM_ERR_LEN];
    cr_assert_eq(gw_metrics_counter(m, "gw_x_total", "X.", "id", &f, err), CM_OK);
    cr_assert_not_null(gw_metrics_with(f, GW_LV("a")));
    cr_assert_not_null(gw_metrics_with(f, GW_LV("b")));
    cr_assert_not_null(gw_metrics_with(f, GW_LV("c")));
    gw_mseries_t *d = gw_metrics_with(f, GW_LV("d"));
    cr_assert_null(d);
    gw_counter_inc(d); /* a NULL series is a no-op */
    cr_assert_not_null(gw_metrics_with(f, GW_LV("a")), "existing series are still found");
    cr_assert_eq(gw_metrics_dropped(m), 1);
    gw_metrics_free(&m);
}

typedef struct {
    gw_mfamily_t *c, *h, *g;
    int id;
} th_t;

static void *bump(void *arg)
{
    th_t *t = arg;
    const char *who[] = {"retell", "calcom", "stripe"};
    for (int i = 0; i < 20000; i++) {
        /* Looked up every time on purpose: creation races with lookups and renders. */
        gw_counter_inc(gw_metrics_with(t->c, GW_LV(who[i % 3])));
        gw_hist_observe(gw_metrics_with(t->h, GW_LV(who[(i + t->id) % 3])), (i % 10) * 0.1);
        gw_gauge_add(gw_metrics_with(t->g, NULL), 1);
    }
    return NULL;
}

Test(metrics, updates_from_many_threads_add_up)
{
    gw_metrics_t *m = make(8);
    char err[CM_ERR_LEN];
    double bounds[] = {0.25, 0.5};
    th_t base = {0};
    cr_assert_eq(gw_metrics_counter(m, "gw_n_total", "N.", "p", &base.c, err), CM_OK);
    cr_assert_eq(gw_metrics_histogram(m, "gw_l_seconds", "L.", "p", bounds, 2, &base.h, err),
                 CM_OK);
    cr_assert_eq(gw_metrics_gauge(m, "gw_g", "G.", NULL, &base.g, err), CM_OK);
    enum { N = 8 };
    pthread_t th[N];
    th_t t[N];
    for (int i = 0; i < N; i++) {
        t[i] = base;
        t[i].id = i;
        pthread_create(&th[i], NULL, bump, &t[i]);
    }
    for (int k = 0; k < 20; k++)
        render(m); /* scrapes while updating must be safe */
    for (int i = 0; i < N; i++)
        pthread_join(th[i], NULL);
    double total = 0;
    uint64_t obs = 0;
    const char *who[] = {"retell", "calcom", "stripe"};
    for (int i = 0; i < 3; i++) {
        total += gw_mseries_value(gw_metrics_with(base.c, GW_LV(who[i])));
        obs += gw_mseries_count(gw_metrics_with(base.h, GW_LV(who[i])));
    }
    cr_assert_float_eq(total, N * 20000.0, 0);
    cr_assert_eq(obs, N * 20000);
    cr_assert_float_eq(gw_mseries_value(gw_metrics_with(base.g, NULL)), N * 20000.0, 0);
    cr_assert(strstr(render(m), "gw_n_total{p=\"calcom\"} 53336\n"), "%s", render(m));
    gw_metrics_free(&m);
}
