/* sc_proc.c - posix_spawn into a new session, ready files, group shutdown. */
/* POSIX_SPAWN_SETSID is a GNU extension (glibc 2.26). */
#define _GNU_SOURCE
#include "sc_proc.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cm_buf.h"
#include "cm_clock.h"
#include "cm_json.h"
#include "sc_signal.h"

extern char **environ;

/* How long to wait for a SIGKILLed group leader before giving up on reaping it. */
#define SC_PROC_KILL_WAIT_MS 5000

/* Builds environ minus the names in env, plus env. The array is new; its strings are
 * borrowed from environ and env. */
static char **build_env(const char *const env[])
{
    size_t n = 0, m = 0;
    while (environ && environ[n])
        n++;
    while (env && env[m])
        m++;
    char **out = calloc(n + m + 1, sizeof *out);
    if (!out)
        return NULL;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        size_t len = strcspn(environ[i], "=");
        int replaced = 0;
        for (size_t j = 0; j < m && !replaced; j++)
            replaced = strncmp(environ[i], env[j], len) == 0 && env[j][len] == '=';
        if (!replaced)
            out[k++] = environ[i];
    }
    for (size_t j = 0; j < m; j++)
        out[k++] = (char *)env[j];
    out[k] = NULL;
    return out;
}

/* Polls for the leader's exit until deadline. 1 when it has exited. */
static int reap_until(sc_proc_t *p, int64_t deadline)
{
    while (sc_proc_running(p)) {
        if (cm_clock_mono_ms() >= deadline)
            return 0;
        cm_clock_sleep_ms(5);
    }
    return 1;
}

/* sc_proc_start with stdin from stdin_fd (-1: /dev/null). */
static cm_err_t spawn(sc_proc_t *p, const char *name, const char *const argv[],
                      const char *const env[], const char *log_path, int stdin_fd, char *err)
{
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t at;
    sigset_t none, def;
    cm_err_t rc = CM_OK;
    int e;

    memset(p, 0, sizeof *p);
    snprintf(p->name, sizeof p->name, "%s", name);
    snprintf(p->log_path, sizeof p->log_path, "%s", log_path);
    if (access(argv[0], X_OK) != 0) {
        cm_errf(err, "%s: %s is not an executable file (%s)", name, argv[0], strerror(errno));
        return CM_ENOTFOUND;
    }
    char **envp = build_env(env);
    if (!envp) {
        cm_errf(err, "%s: out of memory", name);
        return CM_ENOMEM;
    }
    posix_spawn_file_actions_init(&fa);
    posix_spawnattr_init(&at);
    if (stdin_fd >= 0)
        posix_spawn_file_actions_adddup2(&fa, stdin_fd, 0); /* clears its close-on-exec */
    else
        posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, log_path, O_WRONLY | O_CREAT | O_APPEND, 0644);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    /* Own session, so own process group (pgid = pid) before exec: no window in which a
     * group kill misses it. The session matters for the CPU: with autogroup scheduling
     * (Debian's default) each session is a scheduling group with a fair share, and nice
     * counts only inside a group, as it does for a service in its own cgroup in
     * production. In the runner's session the gateway's worker lanes (nice 10) competed
     * with every other test and load on the machine and got a tenth of their share; a
     * retry 100 ms late was 1 s late at speed 10 (runner self-test 006 failed under
     * ci/stress). The runner ignores SIGPIPE and catches SIGINT/SIGTERM; the child starts
     * with default dispositions and an empty mask, as if started from a shell. */
    sigemptyset(&none);
    sigemptyset(&def);
    sigaddset(&def, SIGPIPE);
    sigaddset(&def, SIGINT);
    sigaddset(&def, SIGTERM);
    sigaddset(&def, SIGHUP);
    posix_spawnattr_setsigmask(&at, &none);
    posix_spawnattr_setsigdefault(&at, &def);
    posix_spawnattr_setflags(&at,
                             POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    pid_t pid = 0;
    e = posix_spawn(&pid, argv[0], &fa, &at, (char *const *)argv, envp);
    if (e != 0) {
        cm_errf(err, "%s: cannot start %s: %s", name, argv[0], strerror(e));
        rc = CM_EIO;
    } else {
        p->pid = pid;
    }
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&at);
    free(envp);
    return rc;
}

cm_err_t sc_proc_start(sc_proc_t *p, const char *name, const char *const argv[],
                       const char *const env[], const char *log_path, char *err)
{
    return spawn(p, name, argv, env, log_path, -1, err);
}

cm_err_t sc_proc_run(const char *name, const char *const argv[], const char *log_path, int stdin_fd,
                     int64_t timeout_ms, int *exit_status, char *err)
{
    sc_proc_t p;
    char how[96];
    *exit_status = -1;
    cm_err_t rc = spawn(&p, name, argv, NULL, log_path, stdin_fd, err);
    if (rc)
        return rc;
    if (!reap_until(&p, cm_clock_mono_ms() + timeout_ms)) {
        kill(-p.pid, SIGKILL);
        (void)reap_until(&p, cm_clock_mono_ms() + SC_PROC_KILL_WAIT_MS);
        cm_errf(err, "%s did not finish within %lld ms and was killed (see %s)", name,
                (long long)timeout_ms, log_path);
        return CM_ETIMEOUT;
    }
    if (!WIFEXITED(p.status)) {
        sc_proc_describe(&p, how, sizeof how);
        cm_errf(err, "%s %s (see %s)", name, how, log_path);
        return CM_ESTATE;
    }
    *exit_status = WEXITSTATUS(p.status);
    return CM_OK;
}

int sc_proc_running(sc_proc_t *p)
{
    if (p->pid <= 0 || p->exited)
        return 0;
    int st;
    pid_t r = waitpid(p->pid, &st, WNOHANG);
    if (r == p->pid || (r < 0 && errno == ECHILD)) {
        p->exited = 1;
        p->status = r == p->pid ? st : 0;
        return 0;
    }
    return 1;
}

void sc_proc_describe(const sc_proc_t *p, char *out, size_t cap)
{
    if (p->pid <= 0)
        snprintf(out, cap, "not started");
    else if (!p->exited)
        snprintf(out, cap, "running");
    else if (WIFEXITED(p->status))
        snprintf(out, cap, "exited with status %d", WEXITSTATUS(p->status));
    else if (WIFSIGNALED(p->status))
        snprintf(out, cap, "killed by signal %d (%s)", WTERMSIG(p->status),
                 strsignal(WTERMSIG(p->status)));
    else
        snprintf(out, cap, "ended (status 0x%x)", (unsigned)p->status);
}

cm_err_t sc_proc_wait_ready(sc_proc_t *p, const char *ready_path, int64_t timeout_ms,
                            json_t **ready, char *err)
{
    int64_t deadline = cm_clock_mono_ms() + timeout_ms;
    char how[96], jerr[CM_ERR_LEN] = "";
    *ready = NULL;
    for (;;) {
        /* The writer renames a complete file into place, so a file that exists but does
         * not parse is a bug in the child; keep polling and report it at the deadline. */
        if (access(ready_path, F_OK) == 0 &&
            cm_json_load_file(ready_path, 64 << 10, ready, jerr) == CM_OK)
            return CM_OK;
        if (!sc_proc_running(p)) {
            sc_proc_describe(p, how, sizeof how);
            cm_errf(err, "%s %s before writing its ready file %s", p->name, how, ready_path);
            return CM_ESTATE;
        }
        if (sc_signal_caught()) {
            cm_errf(err, "interrupted while waiting for %s to be ready", p->name);
            return CM_ESTATE;
        }
        if (cm_clock_mono_ms() >= deadline) {
            if (*jerr)
                cm_errf(err, "%s wrote an unreadable ready file: %s", p->name, jerr);
            else
                cm_errf(err, "%s did not write its ready file %s within %lld ms (still running)",
                        p->name, ready_path, (long long)timeout_ms);
            return CM_ETIMEOUT;
        }
        /* Pacing a poll, not waiting for an event: the file's appearance is the event. */
        cm_clock_sleep_ms(SC_PROC_POLL_MS);
    }
}

cm_err_t sc_proc_stop(sc_proc_t *p, int64_t grace_ms, char *err)
{
    char how[96];
    if (p->pid <= 0)
        return CM_OK;
    if (!sc_proc_running(p)) {
        sc_proc_describe(p, how, sizeof how);
        kill(-p->pid, SIGKILL); /* whatever it left behind in its group */
        cm_errf(err, "%s ended before it was told to stop: %s", p->name, how);
        return CM_ESTATE;
    }
    kill(-p->pid, SIGTERM);
    int clean = reap_until(p, cm_clock_mono_ms() + grace_ms);
    kill(-p->pid, SIGKILL); /* the leader (if still there) and any stragglers */
    if (!clean && !reap_until(p, cm_clock_mono_ms() + SC_PROC_KILL_WAIT_MS)) {
        cm_errf(err, "%s (pid %d) survived SIGKILL for %d ms", p->name, (int)p->pid,
                SC_PROC_KILL_WAIT_MS);
        return CM_ESTATE;
    }
    if (!clean) {
        cm_errf(err, "%s did not stop within %lld ms of SIGTERM and was killed", p->name,
                (long long)grace_ms);
        return CM_ESTATE;
    }
    if (!WIFEXITED(p->status) || WEXITSTATUS(p->status) != 0) {
        sc_proc_describe(p, how, sizeof how);
        cm_errf(err, "%s %s on SIGTERM (expected a clean exit with status 0)", p->name, how);
        return CM_ESTATE;
    }
    return CM_OK;
}

cm_err_t sc_proc_kill(sc_proc_t *p, char *err)
{
    char how[96];
    if (p->pid <= 0)
        return CM_OK;
    if (!sc_proc_running(p)) {
        sc_proc_describe(p, how, sizeof how);
        kill(-p->pid, SIGKILL);
        cm_errf(err, "%s ended before it was killed: %s", p->name, how);
        return CM_ESTATE;
    }
    kill(-p->pid, SIGKILL);
    if (!reap_until(p, cm_clock_mono_ms() + SC_PROC_KILL_WAIT_MS)) {
        cm_errf(err, "%s (pid %d) survived SIGKILL for %d ms", p->name, (int)p->pid,
                SC_PROC_KILL_WAIT_MS);
        return CM_ESTATE;
    }
    kill(-p->pid, SIGKILL); /* anything the leader left behind in its group */
    return CM_OK;
}

char *sc_proc_log_tail(const char *path, int max_lines, const char *indent)
{
    enum { TAIL_MAX = 64 << 10 };
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *buf = malloc(TAIL_MAX + 1);
    long start = 0;
    size_t n = 0;
    if (buf && fseek(f, 0, SEEK_END) == 0) {
        long size = ftell(f);
        start = size > TAIL_MAX ? size - TAIL_MAX : 0;
        if (fseek(f, start, SEEK_SET) == 0)
            n = fread(buf, 1, TAIL_MAX, f);
    }
    fclose(f);
    if (!buf)
        return NULL;
    buf[n] = '\0';
    /* Count back max_lines line ends from the end (ignoring a final newline). */
    size_t end = n;
    if (end && buf[end - 1] == '\n')
        end--;
    size_t from = end;
    int lines = 0;
    while (from > 0) {
        if (buf[from - 1] == '\n' && ++lines >= max_lines)
            break;
        from--;
    }
    cm_buf_t out;
    cm_buf_init(&out, 2 * TAIL_MAX);
    cm_err_t rc = CM_OK;
    if (from > 0 || start > 0)
        rc = cm_buf_printf(&out, "%s...\n", indent);
    for (size_t i = from; !rc && i < end;) {
        size_t len = strcspn(buf + i, "\n");
        if (i + len > end)
            len = end - i;
        rc = cm_buf_printf(&out, "%s%.*s\n", indent, (int)len, buf + i);
        i += len + 1;
    }
    free(buf);
    if (rc) {
        cm_buf_free(&out);
        return NULL;
    }
    return cm_buf_take(&out);
}
