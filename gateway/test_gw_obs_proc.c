/* test_gw_obs_proc.c - gw_build_info and the process_* families, read from the registry
 * gw_obs_new builds and renders (what GET /metrics serves), against what this process
 * does: descriptors it opens, memory it touches, CPU it burns. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "gw_obs.h"
#include "gw_obs_proc.h"
#include "gw_saga.h"

static gw_obs_t *obs_new(void)
{
    gw_obs_t *o = NULL;
    char err[CM_ERR_LEN] = "";
    cr_assert_eq(gw_obs_new(NULL, &o, err), CM_OK, "%s", err);
    return o;
}

/* The rendered exposition (caller frees). */
static char *render(gw_obs_t *o)
{
    cm_buf_t b;
    cm_buf_init(&b, 1u << 20);
    cr_assert_eq(gw_metrics_render(o->reg, &b), CM_OK);
    char *text = cm_buf_take(&b);
    cr_assert_not_null(text);
    return text;
}

/* The value of the sample line that starts with "series " (name plus labels, exactly as
 * rendered); fails the test when there is none. */
static double sample(const char *text, const char *series)
{
    size_t n = strlen(series);
    for (const char *line = text; line && *line;) {
        if (!strncmp(line, series, n) && line[n] == ' ')
            return strtod(line + n + 1, NULL);
        line = strchr(line, '\n');
        if (line)
            line++;
    }
    cr_assert_fail("no sample %s in:\n%s", series, text);
    return 0;
}

static double scrape(gw_obs_t *o, const char *series)
{
    char *text = render(o);
    double v = sample(text, series);
    free(text);
    return v;
}

Test(obs_proc, families_are_typed_and_documented)
{
    gw_obs_t *o = obs_new();
    char *text = render(o);
    static const char *const want[] = {
        "# TYPE gw_build_info gauge",
        "# TYPE process_cpu_seconds_total counter",
        "# TYPE process_resident_memory_bytes gauge",
        "# TYPE process_virtual_memory_bytes gauge",
        "# TYPE process_open_fds gauge",
        "# TYPE process_max_fds gauge",
        "# TYPE process_start_time_seconds gauge",
        "# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds\n",
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        cr_expect(strstr(text, want[i]), "no '%s' in:\n%s", want[i], text);
    free(text);
    gw_obs_free(&o);
}

Test(obs_proc, build_info_names_version_revision_and_compiler)
{
    gw_obs_t *o = obs_new();
    char *text = render(o);
    const char *line = strstr(text, "\ngw_build_info{");
    cr_assert_not_null(line, "%s", text);
    char series[512];
    const char *end = strchr(line + 1, ' ');
    cr_assert_not_null(end);
    snprintf(series, sizeof series, "%.*s", (int)(end - line - 1), line + 1);
    cr_expect(strstr(series, "version=\"") && strstr(series, "revision=\"") &&
                  strstr(series, "compiler=\""),
              "%s", series);
    /* Built by CMake from a git checkout: not the fall-back. */
    cr_expect(!strstr(series, "version=\"unknown\""), "%s", series);
    cr_expect_float_eq(sample(text, series), 1, 0);
    free(text);
    gw_obs_free(&o);
}

Test(obs_proc, open_fds_follow_the_descriptors_opened_and_closed)
{
    gw_obs_t *o = obs_new();
    double before = scrape(o, "process_open_fds");
    cr_assert_gt(before, 2, "stdin, stdout, stderr at least: %g", before);
    int fds[7];
    for (int i = 0; i < 7; i++)
        cr_assert_geq(fds[i] = open("/dev/null", O_RDONLY), 0);
    cr_expect_float_eq(scrape(o, "process_open_fds"), before + 7, 0);
    for (int i = 0; i < 7; i++)
        close(fds[i]);
    cr_expect_float_eq(scrape(o, "process_open_fds"), before, 0);
    struct rlimit rl;
    cr_assert_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
    cr_expect_float_eq(scrape(o, "process_max_fds"), (double)rl.rlim_cur, 0);
    gw_obs_free(&o);
}

Test(obs_proc, resident_memory_grows_with_memory_touched)
{
    gw_obs_t *o = obs_new();
    double before = scrape(o, "process_resident_memory_bytes");
    cr_assert_gt(before, 0);
    size_t n = 64u << 20;
    char *big = malloc(n);
    cr_assert_not_null(big);
    memset(big, 1, n); /* touched, so resident */
    double after = scrape(o, "process_resident_memory_bytes");
    /* At least most of it: the allocator may reuse a little that was resident before. */
    cr_expect_geq(after - before, (double)(n / 2), "rss %g -> %g", before, after);
    cr_expect_geq(scrape(o, "process_virtual_memory_bytes"), after);
    cr_expect_eq(big[n - 1], 1);
    free(big);
    gw_obs_free(&o);
}

Test(obs_proc, cpu_seconds_count_the_cpu_burnt)
{
    gw_obs_t *o = obs_new();
    double before = scrape(o, "process_cpu_seconds_total");
    cr_assert_geq(before, 0);
    struct timespec t0, t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t0);
    volatile unsigned long x = 0;
    do {
        for (int i = 0; i < 100000; i++)
            x += (unsigned long)i * 7u;
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    } while ((double)(t.tv_sec - t0.tv_sec) + (double)(t.tv_nsec - t0.tv_nsec) / 1e9 < 0.3);
    double after = scrape(o, "process_cpu_seconds_total");
    /* The kernel counts in ticks (10 ms at 100 Hz): 0.3 s burnt shows as at least 0.2. */
    cr_expect_geq(after - before, 0.2, "cpu %g -> %g", before, after);
    cr_expect_leq(after - before, 5, "cpu %g -> %g", before, after);
    gw_obs_free(&o);
}

Test(obs_proc, start_time_is_this_process_start)
{
    gw_obs_t *o = obs_new();
    double start = scrape(o, "process_start_time_seconds");
    double now = (double)time(NULL);
    /* A test process started moments ago (ticks and btime are whole units: 1 s slack). */
    cr_expect_leq(start, now + 1, "start %f now %f", start, now);
    cr_expect_geq(start, now - 120, "start %f now %f", start, now);
    gw_obs_free(&o);
}

Test(obs_proc, alerted_outcomes_are_shown_at_zero_from_the_start)
{
    gw_obs_t *o = obs_new();
    char *text = render(o);
    static const char *const ends[] = {
        "completed",   "failed_no_slot", "failed_payment",       "compensated",
        "needs_human", "failed",         "cancelled_by_attendee"};
    char series[128];
    for (size_t i = 0; i < sizeof ends / sizeof ends[0]; i++) {
        cr_expect(gw_saga_state_final(ends[i]), "%s is not a final saga state", ends[i]);
        snprintf(series, sizeof series, "gw_sagas_total{outcome=\"%s\"}", ends[i]);
        cr_expect_float_eq(sample(text, series), 0, 0);
    }
    static const char *const pays[] = {"succeeded", "declined", "failed"};
    for (size_t i = 0; i < sizeof pays / sizeof pays[0]; i++) {
        snprintf(series, sizeof series, "gw_payments_total{result=\"%s\"}", pays[i]);
        cr_expect_float_eq(sample(text, series), 0, 0);
    }
    free(text);
    gw_obs_free(&o);
}

Test(obs_proc, stat_lines_parse_from_the_last_parenthesis)
{
    gw_proc_stat_t st;
    /* A command name with spaces and parentheses, as a process may call itself. */
    const char *line = "4242 (gate way) (x)) S 1 4242 4242 0 -1 4194560 100 0 0 0 "
                       "250 75 0 0 20 0 3 0 123456 987654321 2048 18446744073709551615 1 1 0 0 "
                       "0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n";
    cr_assert_eq(gw_obs_proc_parse_stat(line, &st), CM_OK);
    cr_expect_eq(st.utime_ticks, 250);
    cr_expect_eq(st.stime_ticks, 75);
    cr_expect_eq(st.start_ticks, 123456);
    cr_expect_eq(st.vsize_bytes, 987654321);
    cr_expect_eq(st.rss_pages, 2048);

    gw_proc_stat_t kept = {.utime_ticks = 9};
    cr_expect_eq(gw_obs_proc_parse_stat("4242 gateway S 1 2 3", &kept), CM_EINVAL);
    cr_expect_eq(gw_obs_proc_parse_stat("4242 (gateway) S 1 2 3 4 5 6 7 8 9 10\n", &kept),
                 CM_EINVAL, "cut short");
    cr_expect_eq(
        gw_obs_proc_parse_stat("1 (g) S 1 1 1 0 -1 0 0 0 0 0 x 75 0 0 20 0 3 0 1 2 3\n", &kept),
        CM_EINVAL, "not a number");
    cr_expect_eq(gw_obs_proc_parse_stat(NULL, &kept), CM_EINVAL);
    cr_expect_eq(kept.utime_ticks, 9, "left alone on error");

    int64_t btime = 0;
    cr_assert_eq(
        gw_obs_proc_parse_btime("cpu  1 2 3\nintr 5 6\nbtime 1700000000\nprocs 4\n", &btime),
        CM_OK);
    cr_expect_eq(btime, 1700000000);
    cr_expect_eq(gw_obs_proc_parse_btime("cpu 1 2\nprocs 4\n", &btime), CM_EINVAL);
    cr_expect_eq(gw_obs_proc_parse_btime("btime x\n", &btime), CM_EINVAL);
    cr_expect_eq(btime, 1700000000);
}
