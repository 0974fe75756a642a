/* sc_pg_server.h - a PostgreSQL server of a scenario's own ("store": {"backend":
 * "postgres", "server": "own"}), for scenarios that stop and start the database server
 * itself (the shared server of `ci/pg run` serves other scenarios in parallel: restarting
 * it would break them).
 *
 * The server is made by `ci/pg start --until-eof DIR` (ci/pg: initdb in DIR, a free port, a
 * role and a database; DIR/url is its URL) with a pipe as stdin: the runner keeps the
 * pipe's write end (close-on-exec, so no other child holds it) for the server's life, and
 * ci/pg's watchdog stops the server and removes DIR once the pipe closes, even when the
 * runner is killed. DIR is its own mkdtemp under $TMPDIR (or /tmp), not inside the
 * scenario's temp dir: as root the server runs as the postgres user, who must reach DIR,
 * and the scenario's dir is 0700 root.
 *
 * halt is `ci/pg halt` (immediate shutdown: as a crash, no checkpoint, every connection
 * cut), resume is `ci/pg resume` (the same port and data: the URL does not change, the
 * server recovers from its WAL), stop is `ci/pg stop` (and DIR removed). Each runs ci/pg
 * to its end with its output appended to log_path.
 *
 * A sc_pg_server_t is a plain value owned by one scenario's thread; several servers (one
 * per parallel scenario) are independent.
 */
#ifndef SC_PG_SERVER_H
#define SC_PG_SERVER_H

#include <limits.h>
#include <stdint.h>

#include "cm_err.h"

/* How long one ci/pg command may take (initdb included; a loaded machine is slow). */
#define SC_PG_SERVER_TIMEOUT_MS 120000

typedef struct {
    char dir[PATH_MAX]; /* the server's DIR, "" when none was made */
    char url[1024];     /* postgres://... (holds a password: never logged) */
    int up;             /* running now (started or resumed, not halted) */
    int _watch_fd;      /* write end of the watchdog's pipe, -1 when none */
} sc_pg_server_t;

/* Starts a fresh server with ci_pg (the ci/pg script). CM_OK: s->dir, s->url set, up.
 * CM_ENOTFOUND: PostgreSQL is not installed here (ci/pg's 77), err says so: the scenario
 * is skipped, not failed. Other codes: err (CM_ERR_LEN) says what failed (the log has
 * ci/pg's own words). On error nothing is left running and s->dir is "". */
cm_err_t sc_pg_server_start(sc_pg_server_t *s, const char *ci_pg, const char *log_path,
                            char *err) CM_WUR;

/* Immediate shutdown (halt) / start again (resume). CM_ESTATE when it is already halted /
 * running (err says so); otherwise as start. */
cm_err_t sc_pg_server_halt(sc_pg_server_t *s, const char *ci_pg, const char *log_path,
                           char *err) CM_WUR;
cm_err_t sc_pg_server_resume(sc_pg_server_t *s, const char *ci_pg, const char *log_path,
                             char *err) CM_WUR;

/* Copies the server's own log (DIR/log) to copy_to (when not NULL: kept with the
 * scenario's temp dir), stops it, removes DIR and closes the watchdog's pipe. Nothing when
 * none was started. err says what could not be done; s is cleared either way. */
cm_err_t sc_pg_server_stop(sc_pg_server_t *s, const char *ci_pg, const char *log_path,
                           const char *copy_to, char *err) CM_WUR;

#endif
