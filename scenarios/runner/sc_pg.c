/* sc_pg.c - a database per scenario on the server $GW_PG_URL names (see sc_pg.h). */
#include "sc_pg.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef SC_HAVE_LIBPQ
#include <libpq-fe.h>
#endif

int sc_pg_available(char *why, size_t cap)
{
#ifndef SC_HAVE_LIBPQ
    snprintf(why, cap, "needs PostgreSQL: this runner was built without libpq (libpq-dev)");
    return 0;
#else
    const char *u = getenv("GW_PG_URL");
    if (!u || !*u) {
        snprintf(why, cap, "needs PostgreSQL: $GW_PG_URL is not set (run under ci/pg run)");
        return 0;
    }
    return 1;
#endif
}

static int valid_name(const char *name)
{
    size_t n = strlen(name);
    return n > 0 && n < 60 && strspn(name, "abcdefghijklmnopqrstuvwxyz0123456789_") == n;
}

/* The server's URL with its database replaced by name: postgres://u:p@h:port/DB?opts. */
static cm_err_t url_with_db(const char *base, const char *name, char *out, size_t cap, char *err)
{
    const char *scheme = strstr(base, "://");
    const char *slash = scheme ? strchr(scheme + 3, '/') : NULL;
    if (!slash) {
        cm_errf(err, "$GW_PG_URL is not a postgres://user:pass@host:port/db URL");
        return CM_EINVAL;
    }
    const char *q = strchr(slash, '?');
    if (snprintf(out, cap, "%.*s/%s%s", (int)(slash - base), base, name, q ? q : "") >= (int)cap) {
        cm_errf(err, "$GW_PG_URL is too long");
        return CM_EINVAL;
    }
    return CM_OK;
}

#ifdef SC_HAVE_LIBPQ
/* Runs one statement on the server's own database (CREATE/DROP DATABASE cannot run in a
 * transaction, and need a connection to another database). */
static cm_err_t run_admin(const char *sql, char *err)
{
    PGconn *c = PQconnectdb(getenv("GW_PG_URL"));
    cm_err_t rc = CM_OK;
    if (PQstatus(c) != CONNECTION_OK) {
        cm_errf(err, "PostgreSQL: %s", PQerrorMessage(c));
        rc = CM_EIO;
    } else {
        PGresult *r = PQexec(c, sql);
        if (PQresultStatus(r) != PGRES_COMMAND_OK) {
            cm_errf(err, "PostgreSQL: %s: %s", sql, PQresultErrorMessage(r));
            rc = CM_EIO;
        }
        PQclear(r);
    }
    PQfinish(c);
    return rc;
}
#endif

cm_err_t sc_pg_create(const char *name, char *url, size_t cap, char *err)
{
    char why[160], sql[128];
    if (!sc_pg_available(why, sizeof why)) {
        cm_errf(err, "%s", why);
        return CM_EINVAL;
    }
    if (!valid_name(name)) {
        cm_errf(err, "database name \"%s\": letters, digits and _ only", name);
        return CM_EINVAL;
    }
    cm_err_t rc = url_with_db(getenv("GW_PG_URL"), name, url, cap, err);
    if (rc)
        return rc;
    snprintf(sql, sizeof sql, "CREATE DATABASE %s", name);
#ifdef SC_HAVE_LIBPQ
    return run_admin(sql, err);
#else
    return CM_EINVAL;
#endif
}

cm_err_t sc_pg_drop(const char *name, char *err)
{
    char sql[128];
    if (!valid_name(name)) {
        cm_errf(err, "database name \"%s\": letters, digits and _ only", name);
        return CM_EINVAL;
    }
    snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS %s WITH (FORCE)", name);
#ifdef SC_HAVE_LIBPQ
    return run_admin(sql, err);
#else
    cm_errf(err, "built without libpq");
    return CM_EINVAL;
#endif
}

/* ---- the dropper ------------------------------------------------------------------- */

static struct {
    pthread_mutex_t mu;
    pthread_cond_t cv; /* a name arrived, or closing */
    pthread_t thread;
    int started, closing;
    char names[SC_PG_DROP_QUEUE][64]; /* a ring: [head, head + n) wait */
    size_t head, n;
    size_t failed;
    char first_err[CM_ERR_LEN];
} dropper = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};

static void *drop_loop(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&dropper.mu);
    for (;;) {
        while (!dropper.n && !dropper.closing)
            pthread_cond_wait(&dropper.cv, &dropper.mu);
        if (!dropper.n)
            break; /* closing, and nothing left */
        char name[64], err[CM_ERR_LEN];
        snprintf(name, sizeof name, "%s", dropper.names[dropper.head]);
        pthread_mutex_unlock(&dropper.mu);
        cm_err_t rc = sc_pg_drop(name, err);
        pthread_mutex_lock(&dropper.mu);
        /* Taken off the ring only now: a full ring means drops are really pending. */
        dropper.head = (dropper.head + 1) % SC_PG_DROP_QUEUE;
        dropper.n--;
        if (rc && !dropper.failed++)
            snprintf(dropper.first_err, sizeof dropper.first_err, "%s: %.180s", name, err);
    }
    pthread_mutex_unlock(&dropper.mu);
    return NULL;
}

cm_err_t sc_pg_drop_later(const char *name, char *err)
{
    pthread_mutex_lock(&dropper.mu);
    if (!dropper.started && !dropper.closing &&
        pthread_create(&dropper.thread, NULL, drop_loop, NULL) == 0)
        dropper.started = 1;
    int queued = dropper.started && !dropper.closing && dropper.n < SC_PG_DROP_QUEUE &&
                 strlen(name) < sizeof dropper.names[0];
    if (queued) {
        snprintf(dropper.names[(dropper.head + dropper.n) % SC_PG_DROP_QUEUE],
                 sizeof dropper.names[0], "%s", name);
        dropper.n++;
        pthread_cond_signal(&dropper.cv);
    }
    pthread_mutex_unlock(&dropper.mu);
    return queued ? CM_OK : sc_pg_drop(name, err);
}

size_t sc_pg_drop_wait(char *err)
{
    pthread_mutex_lock(&dropper.mu);
    dropper.closing = 1;
    int started = dropper.started;
    pthread_cond_signal(&dropper.cv);
    pthread_mutex_unlock(&dropper.mu);
    if (started)
        pthread_join(dropper.thread, NULL);
    pthread_mutex_lock(&dropper.mu);
    dropper.started = dropper.closing = 0; /* a later sc_pg_drop_later starts it again */
    size_t failed = dropper.failed;
    if (failed)
        cm_errf(err, "%s", dropper.first_err);
    dropper.failed = 0;
    pthread_mutex_unlock(&dropper.mu);
    return failed;
}
