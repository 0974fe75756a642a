/* gw_obs_proc.h - what the gateway shows of the build it is and the process it runs in:
 * gw_build_info{version,revision,compiler} (always 1) and the process_* families that the
 * Prometheus client libraries export, under their names and meanings, so that dashboards
 * and alerts written for any service read ours too:
 *
 *   process_cpu_seconds_total      user + system CPU time (counter)
 *   process_resident_memory_bytes  resident set size
 *   process_virtual_memory_bytes   virtual memory size
 *   process_open_fds               open file descriptors
 *   process_max_fds                the soft limit on them (RLIMIT_NOFILE)
 *   process_start_time_seconds     start time, seconds since the Unix epoch
 *
 * The process values are read from /proc/self at each scrape (Linux). A value that cannot
 * be read shows as -1, as the queue gauges do (visible in a scrape, unlike a silent 0);
 * the CPU counter keeps its last value instead (a counter cannot go down).
 *
 * version and revision are the build's (GW_VERSION and GW_REVISION, set by CMake from git
 * when it configures; "unknown" without them).
 */
#ifndef GW_OBS_PROC_H
#define GW_OBS_PROC_H

#include <stdint.h>

#include "cm_err.h"
#include "gw_metrics.h"

/* Registers gw_build_info and the process_* families in reg (borrowed). Called once, from
 * gw_obs_new. CM_EEXISTS when a name is taken, CM_ENOMEM; err says which. On error some
 * families may be registered: the caller frees the registry. */
cm_err_t gw_obs_proc_register(gw_metrics_t *reg, char *err) CM_WUR;

/* The fields of /proc/<pid>/stat this module uses, in the kernel's units. */
typedef struct {
    uint64_t utime_ticks, stime_ticks; /* fields 14 and 15 */
    uint64_t start_ticks;              /* field 22: since boot */
    uint64_t vsize_bytes;              /* field 23 */
    int64_t rss_pages;                 /* field 24 */
} gw_proc_stat_t;

/* Parses the text of /proc/<pid>/stat (NUL-terminated). The command name (field 2) may
 * hold spaces and parentheses: fields are counted from its last ')'. CM_EINVAL when the
 * text is not such a line; *out is then unchanged. */
cm_err_t gw_obs_proc_parse_stat(const char *text, gw_proc_stat_t *out) CM_WUR;

/* The btime line of /proc/stat (boot time, seconds since the epoch). CM_EINVAL without
 * one; *out is then unchanged. */
cm_err_t gw_obs_proc_parse_btime(const char *text, int64_t *out) CM_WUR;

#endif
