/* sc_pg_server.c - a scenario's own PostgreSQL server through ci/pg (see sc_pg_server.h). */
#define _GNU_SOURCE /* pipe2 */
#include "sc_pg_server.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sc_files.h"
#include "sc_proc.h"

/* ci/pg's exit status when the PostgreSQL server is not installed (the ctest skip code). */
#define SC_PG_SKIP 77
/* ci/pg start refuses a DIR whose unix socket path would not fit sun_path. */
#define SC_PG_BASE_MAX 60
/* The server's log, copied into a kept temp dir. */
#define SC_PG_LOG_MAX (8u << 20)

/* Runs `ci_pg CMD DIR` (with --until-eof and the pipe's read end as stdin for start). */
static cm_err_t run_ci_pg(const char *ci_pg, const char *cmd, const char *dir, int stdin_fd,
                          const char *log_path, int *status, char *err)
{
    const char *argv[] = {ci_pg, cmd, dir, NULL, NULL};
    if (stdin_fd >= 0) {
        argv[2] = "--until-eof";
        argv[3] = dir;
    }
    char name[32];
    snprintf(name, sizeof name, "ci/pg %s", cmd);
    return sc_proc_run(name, argv, log_path, stdin_fd, SC_PG_SERVER_TIMEOUT_MS, status, err);
}

/* Checks a finished ci/pg command: 0 is CM_OK, anything else an error naming the log. */
static cm_err_t check_status(const char *cmd, cm_err_t rc, int status, const char *log_path,
                             char *err)
{
    if (rc)
        return rc;
    if (status == 0)
        return CM_OK;
    if (status == SC_PG_SKIP) {
        cm_errf(err, "needs a PostgreSQL server of its own: PostgreSQL is not installed here "
                     "(Debian's postgresql package; ci/install-deps installs it)");
        return CM_ENOTFOUND;
    }
    cm_errf(err, "ci/pg %s exited with status %d (its words are in %s)", cmd, status, log_path);
    return CM_EIO;
}

cm_err_t sc_pg_server_start(sc_pg_server_t *s, const char *ci_pg, const char *log_path, char *err)
{
    char path[PATH_MAX + 8], ignored[CM_ERR_LEN];
    int fds[2] = {-1, -1}, status = -1;
    memset(s, 0, sizeof *s);
    s->_watch_fd = -1;
    if (access(ci_pg, X_OK) != 0) {
        cm_errf(err, "%s is not an executable file (%s): pass --ci-pg PATH", ci_pg,
                strerror(errno));
        return CM_EINVAL;
    }
    const char *base = getenv("TMPDIR");
    if (!base || !*base || strlen(base) > SC_PG_BASE_MAX)
        base = "/tmp";
    snprintf(s->dir, sizeof s->dir, "%s/sc-pg-XXXXXX", base);
    if (!mkdtemp(s->dir)) {
        cm_errf(err, "cannot create a directory %s for the server: %s", s->dir, strerror(errno));
        s->dir[0] = '\0';
        return CM_EIO;
    }
    /* Close-on-exec on both ends: only ci/pg start gets the read end (as its stdin, through
     * a dup that clears the flag), and no child of any scenario inherits the write end, so
     * the pipe closes exactly when this runner stops the server or dies. */
    if (pipe2(fds, O_CLOEXEC) != 0) {
        cm_errf(err, "pipe: %s", strerror(errno));
        (void)rmdir(s->dir);
        s->dir[0] = '\0';
        return CM_EIO;
    }
    s->_watch_fd = fds[1];
    cm_err_t rc = run_ci_pg(ci_pg, "start", s->dir, fds[0], log_path, &status, err);
    close(fds[0]);
    rc = check_status("start", rc, status, log_path, err);
    char *url = NULL;
    snprintf(path, sizeof path, "%s/url", s->dir);
    if (!rc && sc_files_read(path, sizeof s->url, &url, NULL, err) != CM_OK)
        rc = CM_EIO;
    if (!rc) {
        url[strcspn(url, "\r\n")] = '\0';
        snprintf(s->url, sizeof s->url, "%s", url);
        s->up = 1;
    }
    free(url);
    if (rc) {
        /* A start that failed cleans up after itself (ci/pg); a killed one leaves the
         * marker, which stop handles. Either way the directory goes. */
        if (sc_pg_server_stop(s, ci_pg, log_path, NULL, ignored) != CM_OK) {
            /* the start's own error says more; the watchdog removes what is left */
        }
    }
    return rc;
}

cm_err_t sc_pg_server_halt(sc_pg_server_t *s, const char *ci_pg, const char *log_path, char *err)
{
    int status = -1;
    if (!*s->dir || !s->up) {
        cm_errf(err, "the scenario's PostgreSQL server is not running (nothing to stop)");
        return CM_ESTATE;
    }
    cm_err_t rc = run_ci_pg(ci_pg, "halt", s->dir, -1, log_path, &status, err);
    rc = check_status("halt", rc, status, log_path, err);
    if (!rc)
        s->up = 0;
    return rc;
}

cm_err_t sc_pg_server_resume(sc_pg_server_t *s, const char *ci_pg, const char *log_path, char *err)
{
    int status = -1;
    if (!*s->dir || s->up) {
        cm_errf(err, "the scenario's PostgreSQL server is %s (nothing to start)",
                *s->dir ? "running" : "not there");
        return CM_ESTATE;
    }
    cm_err_t rc = run_ci_pg(ci_pg, "resume", s->dir, -1, log_path, &status, err);
    rc = check_status("resume", rc, status, log_path, err);
    if (!rc)
        s->up = 1;
    return rc;
}

cm_err_t sc_pg_server_stop(sc_pg_server_t *s, const char *ci_pg, const char *log_path,
                           const char *copy_to, char *err)
{
    char path[PATH_MAX + 8], ferr[CM_ERR_LEN];
    cm_err_t rc = CM_OK;
    int status = -1;
    if (*s->dir) {
        char *text = NULL;
        size_t len = 0;
        snprintf(path, sizeof path, "%s/log", s->dir);
        if (copy_to && sc_files_read(path, SC_PG_LOG_MAX, &text, &len, ferr) == CM_OK &&
            sc_files_write(copy_to, text, len, ferr) != CM_OK) {
            /* a diagnosis aid only: the server is stopped all the same */
        }
        free(text);
        rc = run_ci_pg(ci_pg, "stop", s->dir, -1, log_path, &status, err);
        rc = check_status("stop", rc, status, log_path, err);
    }
    if (s->_watch_fd >= 0)
        close(s->_watch_fd); /* the watchdog finds no marker and ends */
    memset(s, 0, sizeof *s);
    s->_watch_fd = -1;
    return rc;
}
