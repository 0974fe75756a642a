/* gw_obs_proc.c - gw_build_info and the process_* families, read from /proc/self. */
#include "gw_obs_proc.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "cm_buf.h"

#ifndef GW_VERSION
#define GW_VERSION "unknown"
#endif
#ifndef GW_REVISION
#define GW_REVISION "unknown"
#endif
#ifdef __VERSION__
#define GW_COMPILER __VERSION__
#else
#define GW_COMPILER "unknown"
#endif

/* /proc/self/stat is one line of a few hundred bytes; /proc/stat grows with the number of
 * CPUs and interrupts (tens of KiB on large machines). */
#define STAT_CAP (16u << 10)
#define PROC_STAT_CAP (1u << 20)

cm_err_t gw_obs_proc_parse_stat(const char *text, gw_proc_stat_t *out)
{
    /* "pid (comm) state ppid ...": comm is whatever the program called itself, so the
     * fields are counted from the last ')'. Field 3 (state) is the first after it. */
    const char *p = text ? strrchr(text, ')') : NULL;
    if (!p)
        return CM_EINVAL;
    p++;
    gw_proc_stat_t st = {0};
    char *end = NULL;
    int field = 2;
    while (field < 24) {
        while (*p == ' ')
            p++;
        if (!*p || *p == '\n')
            return CM_EINVAL;
        field++;
        const char *tok = p;
        while (*p && *p != ' ' && *p != '\n')
            p++;
        if (field < 14 || (field > 15 && field < 22))
            continue;
        errno = 0;
        if (field == 24) {
            long long v = strtoll(tok, &end, 10);
            if (errno || end != p)
                return CM_EINVAL;
            st.rss_pages = v;
        } else {
            unsigned long long v = strtoull(tok, &end, 10);
            if (errno || end != p || *tok == '-')
                return CM_EINVAL;
            if (field == 14)
                st.utime_ticks = v;
            else if (field == 15)
                st.stime_ticks = v;
            else if (field == 22)
                st.start_ticks = v;
            else
                st.vsize_bytes = v;
        }
    }
    *out = st;
    return CM_OK;
}

cm_err_t gw_obs_proc_parse_btime(const char *text, int64_t *out)
{
    for (const char *line = text; line && *line;) {
        if (!strncmp(line, "btime ", 6)) {
            char *end = NULL;
            errno = 0;
            long long v = strtoll(line + 6, &end, 10);
            if (errno || end == line + 6 || (*end && *end != '\n') || v < 0)
                return CM_EINVAL;
            *out = v;
            return CM_OK;
        }
        line = strchr(line, '\n');
        if (line)
            line++;
    }
    return CM_EINVAL;
}

static cm_err_t read_self_stat(gw_proc_stat_t *st)
{
    cm_buf_t b;
    cm_buf_init(&b, STAT_CAP);
    cm_err_t rc = cm_buf_read_file(&b, "/proc/self/stat", NULL);
    if (!rc)
        rc = gw_obs_proc_parse_stat(b.data ? b.data : "", st);
    cm_buf_free(&b);
    return rc;
}

static void cpu_collect(void *ud, gw_mfamily_t *f)
{
    gw_proc_stat_t st;
    long hz = sysconf(_SC_CLK_TCK);
    if (hz <= 0 || read_self_stat(&st) != CM_OK)
        return; /* keeps the last value: a counter cannot show -1 */
    gw_mseries_t *s = gw_metrics_with(f, NULL);
    double now = (double)(st.utime_ticks + st.stime_ticks) / (double)hz;
    /* This is the series' only writer and renders are serialised: adding the difference
     * sets it. */
    gw_counter_add(s, now - gw_mseries_value(s));
}

static double rss_fn(void *ud)
{
    gw_proc_stat_t st;
    long page = sysconf(_SC_PAGESIZE);
    if (page <= 0 || read_self_stat(&st) != CM_OK)
        return -1;
    return (double)st.rss_pages * (double)page;
}

static double vsize_fn(void *ud)
{
    gw_proc_stat_t st;
    return read_self_stat(&st) == CM_OK ? (double)st.vsize_bytes : -1;
}

static double open_fds_fn(void *ud)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return -1;
    double n = 0;
    const struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    /* Less the descriptor the listing itself held open. */
    return n > 0 ? n - 1 : -1;
}

static double max_fds_fn(void *ud)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return -1;
    return rl.rlim_cur == RLIM_INFINITY ? -1 : (double)rl.rlim_cur;
}

/* Start time in seconds since the epoch: boot time plus the start in ticks since boot, as
 * the client libraries compute it. Fixed for the process's life, so read once. */
static double start_time(void)
{
    gw_proc_stat_t st;
    int64_t btime = 0;
    long hz = sysconf(_SC_CLK_TCK);
    cm_buf_t b;
    cm_buf_init(&b, PROC_STAT_CAP);
    cm_err_t rc = hz > 0 ? cm_buf_read_file(&b, "/proc/stat", NULL) : CM_EINVAL;
    if (!rc)
        rc = gw_obs_proc_parse_btime(b.data ? b.data : "", &btime);
    cm_buf_free(&b);
    if (!rc)
        rc = read_self_stat(&st);
    return rc ? -1 : (double)btime + (double)st.start_ticks / (double)hz;
}

cm_err_t gw_obs_proc_register(gw_metrics_t *reg, char *err)
{
    gw_mfamily_t *build = NULL, *cpu = NULL, *start = NULL;
    cm_err_t rc = gw_metrics_gauge(reg, "gw_build_info",
                                   "The gateway's build: always 1, the labels say which",
                                   "version,revision,compiler", &build, err);
    if (!rc) {
        gw_mseries_t *s = gw_metrics_with(build, GW_LV(GW_VERSION, GW_REVISION, GW_COMPILER));
        if (!s)
            rc = CM_ENOMEM;
        gw_gauge_set(s, 1);
    }
    if (!rc)
        rc = gw_metrics_counter(reg, "process_cpu_seconds_total",
                                "Total user and system CPU time spent in seconds", NULL, &cpu, err);
    if (!rc)
        gw_metrics_set_collect(cpu, cpu_collect, NULL);
    if (!rc)
        rc = gw_metrics_gauge_func(reg, "process_resident_memory_bytes",
                                   "Resident memory size in bytes", rss_fn, NULL, err);
    if (!rc)
        rc = gw_metrics_gauge_func(reg, "process_virtual_memory_bytes",
                                   "Virtual memory size in bytes", vsize_fn, NULL, err);
    if (!rc)
        rc = gw_metrics_gauge_func(reg, "process_open_fds", "Number of open file descriptors",
                                   open_fds_fn, NULL, err);
    if (!rc)
        rc =
            gw_metrics_gauge_func(reg, "process_max_fds", "Maximum number of open file descriptors",
                                  max_fds_fn, NULL, err);
    if (!rc)
        rc = gw_metrics_gauge(reg, "process_start_time_seconds",
                              "Start time of the process since unix epoch in seconds", NULL, &start,
                              err);
    if (!rc) {
        gw_mseries_t *s = gw_metrics_with(start, NULL);
        if (!s)
            rc = CM_ENOMEM;
        gw_gauge_set(s, start_time());
    }
    if (rc == CM_ENOMEM)
        cm_errf(err, "process metrics: out of memory");
    return rc;
}
