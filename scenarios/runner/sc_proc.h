/* sc_proc.h - starting and stopping the programs under test.
 *
 * Each child runs in its own session and process group (its pid is both ids: with
 * autogroup scheduling it competes for the CPU as one group, like a service in its own
 * cgroup, whatever else the machine runs), with stdin from
 * /dev/null and stdout+stderr appended to a log file, so the whole group (the program and
 * anything it spawned) can be stopped at once and its output shown when a scenario fails.
 * Readiness is a file the child writes atomically once it listens; we poll for it with a
 * deadline and notice at once when the child died instead.
 *
 * A sc_proc_t is a plain value owned by the caller; one thread uses it at a time. Starting
 * uses posix_spawn with a prepared environment, so it is safe with other threads running.
 */
#ifndef SC_PROC_H
#define SC_PROC_H

#include <jansson.h>
#include <limits.h>
#include <stdint.h>
#include <sys/types.h>

#include "cm_err.h"

/* Ready-file polling interval: short enough to start fast, long enough not to spin. */
#define SC_PROC_POLL_MS 15

typedef struct {
    /* read-only */
    char name[32]; /* for messages: "simulators", "gateway" */
    pid_t pid;     /* also the process group id; 0 when never started */
    int exited;    /* the child has been reaped */
    int status;    /* its waitpid status, valid when exited */
    char log_path[PATH_MAX];
} sc_proc_t;

/* Starts argv[0] (a path, not searched in PATH) with argv, the runner's environment plus
 * env (NULL-terminated "NAME=value" strings that replace same-named variables; may be
 * NULL), output appended to log_path. On error p->pid is 0 and err (CM_ERR_LEN) says why. */
cm_err_t sc_proc_start(sc_proc_t *p, const char *name, const char *const argv[],
                       const char *const env[], const char *log_path, char *err) CM_WUR;

/* Runs argv[0] to its end as sc_proc_start does (own session, the runner's environment,
 * output appended to log_path), with stdin from stdin_fd (-1: /dev/null; the child gets a
 * copy, the caller keeps its own). *exit_status is its exit status when it exited (CM_OK);
 * killed by a signal is CM_ESTATE; still running after timeout_ms, its group is killed and
 * CM_ETIMEOUT. err (CM_ERR_LEN) says which. For short helper commands (ci/pg). */
cm_err_t sc_proc_run(const char *name, const char *const argv[], const char *log_path, int stdin_fd,
                     int64_t timeout_ms, int *exit_status, char *err) CM_WUR;

/* 1 while the child runs; reaps it (setting exited/status) when it has ended. */
int sc_proc_running(sc_proc_t *p);

/* Waits until ready_path exists and parses as JSON (*ready: new reference), the child
 * dies (CM_ESTATE), timeout_ms passes (CM_ETIMEOUT) or the runner is interrupted
 * (CM_ESTATE). err (CM_ERR_LEN) says which, naming the process and the file. */
cm_err_t sc_proc_wait_ready(sc_proc_t *p, const char *ready_path, int64_t timeout_ms,
                            json_t **ready, char *err) CM_WUR;

/* Stops the child: SIGTERM to its group, up to grace_ms for it to exit, then SIGKILL to
 * the group; stragglers in the group are killed once the leader is gone. Returns CM_OK
 * when it exited with status 0 after SIGTERM, CM_ESTATE when it had died before, exited
 * otherwise or needed SIGKILL (err says how). A never-started child is CM_OK. */
cm_err_t sc_proc_stop(sc_proc_t *p, int64_t grace_ms, char *err) CM_WUR;

/* Kills the child's whole group with SIGKILL (a crash on purpose) and waits until the
 * leader is reaped. CM_OK when it is gone (whatever it was doing), CM_ESTATE when it had
 * ended before (err says how) or survived SIGKILL. A never-started child is CM_OK. */
cm_err_t sc_proc_kill(sc_proc_t *p, char *err) CM_WUR;

/* "exited with status 1", "killed by signal 11 (Segmentation fault)", "running". */
void sc_proc_describe(const sc_proc_t *p, char *out, size_t cap);

/* The last max_lines lines of a log file (at most its last 64 KiB), each prefixed with
 * indent: a new string the caller frees, or NULL when the file cannot be read. An empty
 * file gives "". */
char *sc_proc_log_tail(const char *path, int max_lines, const char *indent);

#endif
