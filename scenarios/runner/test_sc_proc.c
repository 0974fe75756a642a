/* test_sc_proc.c - children in their own process group, ready files with a deadline, and
 * stopping: clean exit, death before ready, timeout, SIGTERM ignored. Uses /bin/sh. */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cm_clock.h"
#include "sc_files.h"
#include "sc_proc.h"

static char dir[64], ready[128], log_path[128];

static void setup(void)
{
    snprintf(dir, sizeof dir, "/tmp/sc_proc_XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    snprintf(ready, sizeof ready, "%s/x.ready", dir);
    snprintf(log_path, sizeof log_path, "%s/x.log", dir);
}

static void teardown(void)
{
    cr_assert_eq(sc_files_remove_tree(dir), CM_OK);
}

TestSuite(proc, .init = setup, .fini = teardown);

static void start_sh(sc_proc_t *p, const char *script, const char *const *env)
{
    const char *argv[] = {"/bin/sh", "-c", script, "sh", ready, NULL};
    char err[CM_ERR_LEN] = "";
    cr_assert_eq(sc_proc_start(p, "stub", argv, env, log_path, err), CM_OK, "%s", err);
    cr_assert_gt(p->pid, 0);
}

Test(proc, ready_then_clean_stop_in_own_group)
{
    sc_proc_t p;
    const char *env[] = {"SC_TEST_VALUE=from-runner", "PATH=/usr/bin:/bin", NULL};
    start_sh(&p,
             "trap 'echo bye; exit 0' TERM; echo started; "
             "echo \"{\\\"port\\\":$$,\\\"v\\\":\\\"$SC_TEST_VALUE\\\"}\" "
             "> \"$1.tmp\" && mv \"$1.tmp\" \"$1\"; while :; do sleep 0.02; done",
             env);
    cr_assert_eq(getpgid(p.pid), p.pid, "the child leads its own process group");
    cr_assert_eq(getsid(p.pid), p.pid, "and its own session (its own scheduling group)");
    json_t *r = NULL;
    char err[CM_ERR_LEN] = "";
    cr_assert_eq(sc_proc_wait_ready(&p, ready, 5000, &r, err), CM_OK, "%s", err);
    cr_assert_eq(json_integer_value(json_object_get(r, "port")), p.pid);
    cr_assert_str_eq(json_string_value(json_object_get(r, "v")), "from-runner");
    json_decref(r);
    cr_assert(sc_proc_running(&p));
    cr_assert_eq(sc_proc_stop(&p, 3000, err), CM_OK, "%s", err);
    cr_assert(p.exited);
    char *tail = sc_proc_log_tail(log_path, 10, "> ");
    cr_assert_not_null(tail);
    /* The whole group got SIGTERM, so sh may also report its sleep as "Terminated". */
    int ok = strncmp(tail, "> started\n", 10) == 0 && strstr(tail, "> bye\n") != NULL;
    cr_assert(ok, "tail: %s", tail);
    free(tail);
}

Test(proc, death_before_ready_is_reported_at_once)
{
    sc_proc_t p;
    start_sh(&p, "echo 'bad config' >&2; exit 3", NULL);
    json_t *r = NULL;
    char err[CM_ERR_LEN] = "";
    int64_t t0 = cm_clock_mono_ms();
    cr_assert_eq(sc_proc_wait_ready(&p, ready, 5000, &r, err), CM_ESTATE);
    cr_assert_lt(cm_clock_mono_ms() - t0, 2000, "noticed the death long before the deadline");
    cr_assert_null(r);
    cr_assert_not_null(strstr(err, "stub exited with status 3 before writing its ready file"), "%s",
                       err);
    char *tail = sc_proc_log_tail(log_path, 5, "");
    cr_assert_str_eq(tail, "bad config\n");
    free(tail);
    cr_assert_eq(sc_proc_stop(&p, 1000, err), CM_ESTATE);
    cr_assert_not_null(strstr(err, "ended before it was told to stop"), "%s", err);
}

Test(proc, ready_timeout_then_stop)
{
    sc_proc_t p;
    /* "$1.armed" once the trap is set, so that the SIGTERM below finds it. */
    start_sh(&p, "trap 'exit 0' TERM; : > \"$1.armed\"; while :; do sleep 0.02; done", NULL);
    json_t *r = NULL;
    char err[CM_ERR_LEN] = "", armed[160];
    int64_t t0 = cm_clock_mono_ms();
    cr_assert_eq(sc_proc_wait_ready(&p, ready, 200, &r, err), CM_ETIMEOUT);
    int64_t took = cm_clock_mono_ms() - t0;
    cr_assert(took >= 200 && took < 1500, "took %lld ms", (long long)took);
    cr_assert_not_null(strstr(err, "did not write its ready file"), "%s", err);
    cr_assert_not_null(strstr(err, "within 200 ms (still running)"), "%s", err);
    snprintf(armed, sizeof armed, "%s.armed", ready);
    for (int i = 0; i < 1000 && access(armed, F_OK) != 0; i++)
        cm_clock_sleep_ms(10);
    cr_assert_eq(access(armed, F_OK), 0, "the stub never set its trap");
    cr_assert_eq(sc_proc_stop(&p, 3000, err), CM_OK, "%s", err);
}

Test(proc, sigterm_ignored_means_sigkill_for_the_group)
{
    sc_proc_t p;
    /* The shell ignores TERM and has a grandchild (sleep) in its group. */
    start_sh(&p, "trap '' TERM; sleep 30 & echo $! > \"$1.child\"; while :; do sleep 0.02; done",
             NULL);
    char childf[160], buf[32] = "";
    snprintf(childf, sizeof childf, "%s.child", ready);
    for (int i = 0; i < 200 && access(childf, F_OK) != 0; i++)
        cm_clock_sleep_ms(10);
    cm_clock_sleep_ms(20);
    FILE *f = fopen(childf, "r");
    cr_assert_not_null(f);
    cr_assert_not_null(fgets(buf, sizeof buf, f));
    fclose(f);
    pid_t grandchild = (pid_t)atoi(buf);
    cr_assert_gt(grandchild, 0);

    char err[CM_ERR_LEN] = "";
    cr_assert_eq(sc_proc_stop(&p, 200, err), CM_ESTATE);
    cr_assert_not_null(strstr(err, "did not stop within 200 ms of SIGTERM and was killed"), "%s",
                       err);
    /* the grandchild went with the group (it is not our child, so poll with kill 0) */
    int gone = 0;
    for (int i = 0; i < 200 && !gone; i++) {
        gone = kill(grandchild, 0) != 0;
        if (!gone)
            cm_clock_sleep_ms(10);
    }
    cr_assert(gone, "grandchild %d survived", (int)grandchild);
}

Test(proc, unclean_exit_on_sigterm_is_an_error)
{
    sc_proc_t p;
    /* The SIGTERM must come after the trap is set: the shell says so in its ready file (a
     * fixed 50 ms pause here was not always enough on a loaded machine, and the shell died
     * of the signal instead of exiting 7). */
    start_sh(&p,
             "trap 'exit 7' TERM; echo \"{\\\"port\\\":$$}\" > \"$1.tmp\" && mv \"$1.tmp\" "
             "\"$1\"; while :; do sleep 0.02; done",
             NULL);
    json_t *r = NULL;
    char err[CM_ERR_LEN] = "";
    cr_assert_eq(sc_proc_wait_ready(&p, ready, 10000, &r, err), CM_OK, "%s", err);
    json_decref(r);
    cr_assert_eq(sc_proc_stop(&p, 3000, err), CM_ESTATE);
    cr_assert_not_null(strstr(err, "exited with status 7 on SIGTERM"), "%s", err);
}

Test(proc, not_executable)
{
    sc_proc_t p;
    const char *argv[] = {"/nonexistent/gateway", NULL};
    char err[CM_ERR_LEN] = "";
    cr_assert_eq(sc_proc_start(&p, "gateway", argv, NULL, log_path, err), CM_ENOTFOUND);
    cr_assert_eq(p.pid, 0);
    cr_assert_not_null(strstr(err, "/nonexistent/gateway is not an executable file"), "%s", err);
    cr_assert_eq(sc_proc_stop(&p, 100, err), CM_OK, "never started: nothing to stop");
}

Test(proc, log_tail_limits)
{
    FILE *f = fopen(log_path, "w");
    for (int i = 1; i <= 50; i++)
        fprintf(f, "line %d\n", i);
    fclose(f);
    char *t = sc_proc_log_tail(log_path, 3, "  ");
    cr_assert_str_eq(t, "  ...\n  line 48\n  line 49\n  line 50\n");
    free(t);
    f = fopen(log_path, "w");
    fclose(f);
    t = sc_proc_log_tail(log_path, 3, "  ");
    cr_assert_str_eq(t, "");
    free(t);
    cr_assert_null(sc_proc_log_tail("/nonexistent/log", 3, ""));
}

/* sc_proc_run: to the end, its exit status, stdin from a descriptor, a deadline. */
Test(proc, run_to_the_end_with_stdin_and_a_deadline)
{
    char err[CM_ERR_LEN] = "";
    int status = -2;
    const char *exit3[] = {"/bin/sh", "-c", "echo ran; exit 3", NULL};
    cr_assert_eq(sc_proc_run("three", exit3, log_path, -1, 5000, &status, err), CM_OK, "%s", err);
    cr_assert_eq(status, 3, "its exit status, not a failure of the run");
    char *tail = sc_proc_log_tail(log_path, 5, "");
    cr_assert_not_null(tail);
    cr_assert_not_null(strstr(tail, "ran"), "output goes to the log: %s", tail);
    free(tail);

    /* stdin: the read end of a pipe the caller keeps writing to (ci/pg's watchdog) */
    int fds[2];
    cr_assert_eq(pipe(fds), 0);
    cr_assert_eq(write(fds[1], "hello\n", 6), 6);
    close(fds[1]);
    const char *cat[] = {"/bin/sh", "-c", "read line; test \"$line\" = hello", NULL};
    cr_assert_eq(sc_proc_run("reader", cat, log_path, fds[0], 5000, &status, err), CM_OK, "%s",
                 err);
    close(fds[0]);
    cr_assert_eq(status, 0, "the child read what the pipe held");

    const char *slow[] = {"/bin/sh", "-c", "sleep 30", NULL};
    int64_t t0 = cm_clock_mono_ms();
    cr_assert_eq(sc_proc_run("slow", slow, log_path, -1, 200, &status, err), CM_ETIMEOUT);
    cr_assert_lt(cm_clock_mono_ms() - t0, 5000, "killed at the deadline, not waited for");
    cr_assert_not_null(strstr(err, "slow did not finish within 200 ms"), "%s", err);

    const char *killed[] = {"/bin/sh", "-c", "kill -9 $$", NULL};
    cr_assert_eq(sc_proc_run("killed", killed, log_path, -1, 5000, &status, err), CM_ESTATE);
    cr_assert_not_null(strstr(err, "killed by signal 9"), "%s", err);

    const char *missing[] = {"/nonexistent/prog", NULL};
    cr_assert_neq(sc_proc_run("missing", missing, log_path, -1, 5000, &status, err), CM_OK);
    cr_assert_not_null(strstr(err, "not an executable file"), "%s", err);
}
