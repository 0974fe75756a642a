/* gw_store_pg_notify.c - what the gateway instances on one PostgreSQL database share besides
 * the tables: notices between them (LISTEN/NOTIFY) and rate-limit buckets (contracts in
 * gw_store.h, "shared by the instances on one store").
 *
 * Notices. Each store handle that registers a callback gets a listener: a thread with a
 * connection of its own that LISTENs on gw_jobs (jobs became runnable: an ingest's group
 * commit, a replay, a re-run) and gw_slots (a booking changed a Cal.com event type's
 * availability), waits on the connection's socket (poll on PQsocket and on a pipe that
 * stop writes to), reads what arrived (PQconsumeInput, PQnotifies) and calls the
 * callbacks. A notice is a wake-up, never the only way to learn something: jobs are also
 * found by the workers' polling and cached slots expire. So a broken connection is made
 * again with back-off (100 ms doubling to 5 s), and once listening again the callbacks are
 * called once for each kind with no detail, standing for whatever was sent meanwhile and
 * lost (PostgreSQL keeps no notices for a session that was not listening). A payload
 * starts with the sending handle's instance name (gw_pg_store_t.instance), by which the
 * listener skips the handle's own notices: the sender has already acted on them.
 *
 * Rate buckets. One row per bucket in rate_buckets (schema version 2), taken from by one
 * INSERT ... ON CONFLICT DO UPDATE ... RETURNING: the row is locked for the statement, so
 * concurrent takes from every instance are applied one after the other, timed by the
 * callers' wall clocks (see the rate buckets below).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "cm_clock.h"
#include "cm_log.h"
#include "gw_store_pg_int.h"

/* ---- rate buckets ------------------------------------------------------------------- */

/* In the take below, b is the stored row and EXCLUDED.at the take's time: the calling
 * gateway's wall clock (cm_clock), not the server's, so that a gateway on a simulated clock
 * (libfaketime, a scenario's speed-up) sees its provider's per-minute limit in its own
 * minutes, as its local bucket and the simulators do. Instances' clocks are assumed to be
 * synchronised (NTP, milliseconds apart): a skew of d lets at most d x rate tokens more
 * through, which the window rate's margin (gw_ratelimit_window_rate) absorbs. A bucket read by a
 * take that queued behind another's lock may find at later than its own time: it then counts no
 * refill and leaves at where it was, which only ever errs on the side of fewer tokens. An at more
 * than a minute ahead is no such queueing but a clock set back: at is then brought to now (no
 * refill counted), or the bucket would refill no more until the clock caught up. (A clock set
 * forward refills the bucket at most to its burst.) */

/* The tokens the bucket holds at the take's time: what it had, refilled since at, capped
 * at the burst ($3); $2 is the rate in tokens per second. */
#define RL_AVAIL                                                                                   \
    "LEAST($3::float8, b.tokens + $2::float8 * "                                                   \
    "GREATEST(0, EXTRACT(EPOCH FROM EXCLUDED.at - b.at)::float8))"
/* Milliseconds until a token is there for this take, counting the reservations ahead of it
 * (tokens below zero), as gw_ratelimit_acquire counts them. */
#define RL_NEED                                                                                    \
    "(CASE WHEN " RL_AVAIL " >= 1 THEN 0 "                                                         \
    "ELSE CEIL((1 - " RL_AVAIL ") * 1000 / $2::float8 - 1e-9)::bigint END)"

/* The bucket's at after a take at EXCLUDED.at. */
#define RL_AT                                                                                      \
    "CASE WHEN b.at > EXCLUDED.at + interval '1 minute' THEN EXCLUDED.at "                         \
    "ELSE GREATEST(b.at, EXCLUDED.at) END"

/* $1 key, $2 rate, $3 burst, $4 the longest wait allowed (ms), $5 the caller's time (ms
 * since 1970). A new bucket starts full and
 * gives its first token at once. RETURNING sees only the row as written, so the answer is
 * written into it (taken, wait_ms) and read back. */
static const char rl_take_sql[] =
    "INSERT INTO rate_buckets AS b(key, tokens, at, taken, wait_ms) "
    "SELECT $1, $3::float8 - 1, to_timestamp($5::float8 / 1000), true, 0 "
    "ON CONFLICT (key) DO UPDATE SET "
    "tokens = " RL_AVAIL " - CASE WHEN " RL_NEED " <= $4 THEN 1 ELSE 0 END, "
    "at = " RL_AT ", "
    "taken = " RL_NEED " <= $4, "
    "wait_ms = " RL_NEED " "
    "RETURNING taken, wait_ms";

/* $1 key, $2 rate, $3 burst, $4 the caller's time; c.t is the refund's time, and at moves
 * as in a take. */
static const char rl_refund_sql[] =
    "UPDATE rate_buckets b SET "
    "tokens = LEAST($3::float8, b.tokens + 1 + $2::float8 * "
    "GREATEST(0, EXTRACT(EPOCH FROM c.t - b.at)::float8)), "
    "at = CASE WHEN b.at > c.t + interval '1 minute' THEN c.t ELSE GREATEST(b.at, c.t) END "
    "FROM (SELECT to_timestamp($4::float8 / 1000) AS t) c WHERE b.key = $1";

/* One statement on the coordination connection. */
static cm_err_t co_query(gw_pg_store_t *s, const char *sql, gw_pg_args_t args, gw_pg_row_fn row,
                         void *arg, int *rows)
{
    pthread_mutex_lock(&s->co.mu);
    cm_err_t rc = gw_pg_conn_use(s, &s->co, NULL);
    if (!rc)
        rc = gw_pg_query(&s->co, sql, args, row, arg, rows);
    pthread_mutex_unlock(&s->co.mu);
    return rc;
}

typedef struct {
    int *taken;
    int64_t *wait_ms;
} take_t;

static cm_err_t take_row(const PGresult *r, int row, void *arg)
{
    take_t *t = arg;
    *t->taken = PQgetvalue(r, row, 0)[0] == 't';
    *t->wait_ms = gw_pg_col_int(r, row, 1);
    return CM_OK;
}

/* The same checks as gw_ratelimit_new's, so the database never sees a division by zero. */
static int rl_valid(const char *key, double rate_per_s, double burst)
{
    return key && *key && rate_per_s > 0 && rate_per_s <= 1e9 && burst >= 1 && burst <= 1e9;
}

cm_err_t gw_pg_store_rl_take(gw_pg_store_t *s, const char *key, double rate_per_s, double burst,
                             int64_t max_wait_ms, int *taken, int64_t *wait_ms)
{
    char rate[32], cap[32];
    int rows = 0;
    take_t t = {.taken = taken, .wait_ms = wait_ms};
    *taken = 0;
    *wait_ms = 0;
    if (!rl_valid(key, rate_per_s, burst))
        return CM_EINVAL;
    /* Bound as text and cast by the server: the exact double, in both directions. */
    snprintf(rate, sizeof rate, "%.17g", rate_per_s);
    snprintf(cap, sizeof cap, "%.17g", burst);
    cm_err_t rc = co_query(s, rl_take_sql,
                           GW_PG_ARGS(gw_pg_text(key), gw_pg_text(rate), gw_pg_text(cap),
                                      gw_pg_int(max_wait_ms > 0 ? max_wait_ms : 0),
                                      gw_pg_int(cm_clock_now_ms())),
                           take_row, &t, &rows);
    if (!rc && rows != 1)
        rc = CM_ESTORE;
    if (rc) {
        *taken = 0;
        *wait_ms = 0;
    }
    return rc;
}

cm_err_t gw_pg_store_rl_refund(gw_pg_store_t *s, const char *key, double rate_per_s, double burst)
{
    char rate[32], cap[32];
    if (!rl_valid(key, rate_per_s, burst))
        return CM_EINVAL;
    snprintf(rate, sizeof rate, "%.17g", rate_per_s);
    snprintf(cap, sizeof cap, "%.17g", burst);
    return co_query(s, rl_refund_sql,
                    GW_PG_ARGS(gw_pg_text(key), gw_pg_text(rate), gw_pg_text(cap),
                               gw_pg_int(cm_clock_now_ms())),
                    NULL, NULL, NULL);
}

/* ---- publishing ------------------------------------------------------------------------ */

enum { DETAIL_MAX = 64 };

static const char *channel_of(gw_notice_t what)
{
    return what == GW_NOTICE_SLOTS ? GW_PG_SLOTS_CHANNEL : GW_PG_JOBS_CHANNEL;
}

/* "<instance>" or "<instance> <detail>" into out (sizeof instance + 1 + DETAIL_MAX + 1). */
static void payload(const gw_pg_store_t *s, const char *detail, char *out, size_t cap)
{
    if (detail && *detail)
        snprintf(out, cap, "%s %.*s", s->instance, DETAIL_MAX, detail);
    else
        snprintf(out, cap, "%s", s->instance);
}

cm_err_t gw_pg_store_publish(gw_pg_store_t *s, gw_notice_t what, const char *detail)
{
    char p[sizeof s->instance + DETAIL_MAX + 2];
    if (detail && strlen(detail) > DETAIL_MAX)
        return CM_EINVAL;
    payload(s, detail, p, sizeof p);
    /* Outside a transaction: the server sends it when the statement ends. */
    return co_query(s, "SELECT pg_notify($1, $2)",
                    GW_PG_ARGS(gw_pg_text(channel_of(what)), gw_pg_text(p)), NULL, NULL, NULL);
}

cm_err_t gw_pg_notify_in_tx(gw_pg_store_t *s, gw_pg_conn_t *c, const char *channel,
                            const char *detail)
{
    char p[sizeof s->instance + DETAIL_MAX + 2];
    payload(s, detail, p, sizeof p);
    return gw_pg_exec(c, "SELECT pg_notify($1, $2)", GW_PG_ARGS(gw_pg_text(channel), gw_pg_text(p)),
                      NULL);
}

/* ---- the listener ---------------------------------------------------------------------- */

enum {
    MAX_CALLBACKS = 8,
    BACKOFF_MIN_MS = 100,
    BACKOFF_MAX_MS = 5000,
    CONNECT_TIMEOUT_MS = 5000,
    /* How long a registration waits for the listener to listen (gw_pg_store_on_notice). */
    FIRST_LISTEN_WAIT_MS = 2000,
};

typedef struct gw_pg_notify {
    gw_pg_store_t *s;
    /* Guards cbs, ncbs and listening, and is held while callbacks run, so that once
     * gw_pg_store_off_notice has it, the callback it removes is not running. */
    pthread_mutex_t mu;
    struct {
        gw_notice_fn fn;
        void *ud;
    } cbs[MAX_CALLBACKS];
    size_t ncbs;
    /* The connection LISTENs: a callback registered now is told at once that notices may
     * have been missed (before, it could hear none); one registered before is told by the
     * listener when it starts listening. Either way once per listening period. */
    int listening;
    pthread_cond_t listening_cv; /* on mu: broadcast when listening becomes 1 */
    int wake[2];                 /* a byte written to wake[1] ends the listener's waits: stop */
    int stopping;                /* atomic */
    pthread_t thread;
    PGconn *db; /* the listener thread's alone */
} gw_pg_notify_t;

/* Creating a handle's listener happens once; this lock makes a race of two first
 * registrations on one handle start one listener. Held only to create or look up. */
static pthread_mutex_t start_mu = PTHREAD_MUTEX_INITIALIZER;

static int stopping(gw_pg_notify_t *n)
{
    return __atomic_load_n(&n->stopping, __ATOMIC_ACQUIRE);
}

/* Waits up to ms (-1: no limit) for fd (-1: none, a plain pause) to be ready for events,
 * or for stop. Returns 1 when fd is ready, 0 on timeout, -1 when stopping. */
static int wait_fd(gw_pg_notify_t *n, int fd, short events, int64_t ms)
{
    /* poll skips an entry whose fd is negative. */
    struct pollfd p[2] = {{.fd = fd, .events = events}, {.fd = n->wake[0], .events = POLLIN}};
    int64_t until = ms < 0 ? -1 : cm_clock_mono_ms() + ms;
    for (;;) {
        int64_t left = until < 0 ? -1 : until - cm_clock_mono_ms();
        if (until >= 0 && left < 0)
            left = 0;
        int r = poll(p, 2, (int)left);
        if (r > 0)
            return p[1].revents ? -1 : 1;
        if (r == 0 || errno != EINTR)
            return 0;
        if (stopping(n))
            return -1;
    }
}

/* The pause between two failed connection attempts, cut short by stop: 1 when stopping. */
static int pause_or_stop(gw_pg_notify_t *n, int64_t ms)
{
    return wait_fd(n, -1, 0, ms) < 0;
}

/* Connects without blocking past CONNECT_TIMEOUT_MS or a stop, then LISTENs. */
static cm_err_t listen_connect(gw_pg_notify_t *n, char *why, size_t cap)
{
    /* Keepalives: a listener only reads, so a server that vanished without closing the
     * connection (a host gone) would otherwise never be noticed. The URL may override. */
    const char *const keys[] = {"application_name",
                                "keepalives",
                                "keepalives_idle",
                                "keepalives_interval",
                                "keepalives_count",
                                "dbname",
                                NULL};
    const char *const vals[] = {"bookbench-gateway-listen", "1", "10", "5", "3", n->s->url, NULL};
    PGconn *c = PQconnectStartParams(keys, vals, 1);
    cm_err_t rc = CM_OK;
    if (!c || PQstatus(c) == CONNECTION_BAD) {
        snprintf(why, cap, "%s", c ? PQerrorMessage(c) : "out of memory");
        rc = CM_ESTORE;
    }
    int64_t until = cm_clock_mono_ms() + CONNECT_TIMEOUT_MS;
    PostgresPollingStatusType st = PGRES_POLLING_WRITING;
    while (!rc && st != PGRES_POLLING_OK) {
        int64_t left = until - cm_clock_mono_ms();
        int r = left > 0
                    ? wait_fd(n, PQsocket(c), st == PGRES_POLLING_READING ? POLLIN : POLLOUT, left)
                    : 0;
        if (r < 0) {
            snprintf(why, cap, "stopping");
            rc = CM_ESTATE;
        } else if (r == 0) {
            snprintf(why, cap, "no connection within %d ms", CONNECT_TIMEOUT_MS);
            rc = CM_ETIMEOUT;
        } else if ((st = PQconnectPoll(c)) == PGRES_POLLING_FAILED) {
            snprintf(why, cap, "%s", PQerrorMessage(c));
            rc = CM_ESTORE;
        }
    }
    if (!rc) {
        PGresult *r = PQexec(c, "LISTEN " GW_PG_JOBS_CHANNEL "; LISTEN " GW_PG_SLOTS_CHANNEL);
        if (PQresultStatus(r) != PGRES_COMMAND_OK) {
            snprintf(why, cap, "LISTEN: %s", PQerrorMessage(c));
            rc = CM_ESTORE;
        }
        PQclear(r);
    }
    if (rc) {
        size_t len = strlen(why);
        while (len && (why[len - 1] == '\n' || why[len - 1] == ' '))
            why[--len] = '\0';
        PQfinish(c);
        return rc;
    }
    n->db = c;
    return CM_OK;
}

/* Calls every callback (under mu: see gw_pg_notify_t). */
static void dispatch(gw_pg_notify_t *n, gw_notice_t what, const char *detail)
{
    pthread_mutex_lock(&n->mu);
    for (size_t i = 0; i < n->ncbs; i++)
        n->cbs[i].fn(n->cbs[i].ud, what, detail);
    pthread_mutex_unlock(&n->mu);
}

/* Whatever was sent while nobody listened is lost: "anything may have changed", once for
 * each kind, to fn (the caller holds mu). */
static void missed(gw_notice_fn fn, void *ud)
{
    fn(ud, GW_NOTICE_JOBS, NULL);
    fn(ud, GW_NOTICE_SLOTS, NULL);
}

/* The connection listens (1) or is gone (0); on 1 every callback hears missed(). */
static void set_listening(gw_pg_notify_t *n, int on)
{
    pthread_mutex_lock(&n->mu);
    n->listening = on;
    for (size_t i = 0; on && i < n->ncbs; i++)
        missed(n->cbs[i].fn, n->cbs[i].ud);
    if (on)
        pthread_cond_broadcast(&n->listening_cv);
    pthread_mutex_unlock(&n->mu);
}

/* One notice as it came: its channel says what it is about, its payload who sent it and
 * the detail (see payload()). */
static void received(gw_pg_notify_t *n, const PGnotify *m)
{
    gw_notice_t what;
    if (!strcmp(m->relname, GW_PG_JOBS_CHANNEL))
        what = GW_NOTICE_JOBS;
    else if (!strcmp(m->relname, GW_PG_SLOTS_CHANNEL))
        what = GW_NOTICE_SLOTS;
    else
        return;
    const char *p = m->extra ? m->extra : "";
    size_t il = strlen(n->s->instance);
    if (!strncmp(p, n->s->instance, il) && (p[il] == '\0' || p[il] == ' '))
        return; /* this handle's own: the sender has acted on it already */
    const char *sp = strchr(p, ' ');
    const char *detail = sp && sp[1] ? sp + 1 : NULL;
    dispatch(n, what, detail);
}

static void *listen_main(void *arg)
{
    gw_pg_notify_t *n = arg;
    int64_t backoff = BACKOFF_MIN_MS;
    int failures = 0;
    char why[256];
    prctl(PR_SET_NAME, "gw-pg-listen");
    while (!stopping(n)) {
        if (!n->db) {
            cm_err_t rc = listen_connect(n, why, sizeof why);
            if (rc == CM_ESTATE)
                break;
            if (rc) {
                /* Said once per outage, then quietly until it ends. */
                if (failures++ == 0)
                    CM_WARN("gw.store",
                            "postgres: the notice listener cannot connect (%s); "
                            "trying again with back-off, polling meanwhile",
                            why);
                else
                    CM_DEBUG("gw.store", "postgres: notice listener: %s", why);
                if (pause_or_stop(n, backoff))
                    break;
                backoff = backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff * 2;
                continue;
            }
            if (failures)
                CM_INFO("gw.store",
                        "postgres: the notice listener listens again (after %d "
                        "failed attempts)",
                        failures);
            failures = 0;
            backoff = BACKOFF_MIN_MS;
            set_listening(n, 1);
        }
        /* No time limit: the wait ends on input (notices, or the connection's end, which
         * reads as input too), or on stop; a poll that fails is taken as a lost
         * connection, as anything else would spin. */
        int r = wait_fd(n, PQsocket(n->db), POLLIN, -1);
        if (r < 0)
            break;
        if (r == 0 || !PQconsumeInput(n->db) || PQstatus(n->db) != CONNECTION_OK) {
            snprintf(why, sizeof why, "%s", r == 0 ? strerror(errno) : PQerrorMessage(n->db));
            why[strcspn(why, "\n")] = '\0';
            CM_WARN("gw.store",
                    "postgres: the notice listener lost its connection (%s); "
                    "connecting again",
                    why);
            set_listening(n, 0);
            PQfinish(n->db);
            n->db = NULL;
            continue;
        }
        PGnotify *m;
        while ((m = PQnotifies(n->db)) != NULL) {
            received(n, m);
            PQfreemem(m);
        }
    }
    return NULL;
}

static void notify_free(gw_pg_notify_t *n)
{
    if (n->wake[0] >= 0)
        close(n->wake[0]);
    if (n->wake[1] >= 0)
        close(n->wake[1]);
    PQfinish(n->db);
    pthread_cond_destroy(&n->listening_cv);
    pthread_mutex_destroy(&n->mu);
    free(n);
}

/* The handle's listener, started when there is none yet. NULL when it cannot start. */
static gw_pg_notify_t *listener(gw_pg_store_t *s)
{
    pthread_mutex_lock(&start_mu);
    gw_pg_notify_t *n = s->notify;
    if (!n && (n = calloc(1, sizeof *n)) != NULL) {
        n->s = s;
        n->wake[0] = n->wake[1] = -1;
        pthread_mutex_init(&n->mu, NULL);
        if (cm_clock_cond_init(&n->listening_cv) != 0 || pipe(n->wake) != 0 ||
            fcntl(n->wake[0], F_SETFD, FD_CLOEXEC) != 0 ||
            fcntl(n->wake[1], F_SETFD, FD_CLOEXEC) != 0 ||
            pthread_create(&n->thread, NULL, listen_main, n) != 0) {
            CM_ERROR("gw.store", "postgres: cannot start the notice listener: %s", strerror(errno));
            notify_free(n);
            n = NULL;
        } else {
            s->notify = n;
        }
    }
    pthread_mutex_unlock(&start_mu);
    return n;
}

cm_err_t gw_pg_store_on_notice(gw_pg_store_t *s, gw_notice_fn fn, void *ud)
{
    if (!fn)
        return CM_EINVAL;
    gw_pg_notify_t *n = listener(s);
    if (!n)
        return CM_ENOMEM;
    cm_err_t rc = CM_OK;
    pthread_mutex_lock(&n->mu);
    if (n->ncbs < MAX_CALLBACKS) {
        n->cbs[n->ncbs].fn = fn;
        n->cbs[n->ncbs].ud = ud;
        n->ncbs++;
        if (n->listening)
            missed(fn, ud);
        /* Waits (bounded) for the listener to listen, so that its "anything may have
         * changed" lands now, at start-up, and not in the middle of the first work: a
         * gateway's first slot read, cached while the listener connected, was dropped by
         * it and read again (scenario 415 saw three reads for two). Past the wait the
         * registration stands and the listener tells fn when it connects. */
        struct timespec dl = cm_clock_mono_deadline(FIRST_LISTEN_WAIT_MS);
        while (!n->listening && !stopping(n) &&
               pthread_cond_timedwait(&n->listening_cv, &n->mu, &dl) == 0)
            ;
        if (!n->listening)
            CM_WARN("gw.store",
                    "postgres: the notice listener does not listen yet after %d ms; "
                    "going on (it tells what may have been missed when it does)",
                    FIRST_LISTEN_WAIT_MS);
    } else {
        rc = CM_ENOMEM;
    }
    pthread_mutex_unlock(&n->mu);
    return rc;
}

void gw_pg_store_off_notice(gw_pg_store_t *s, gw_notice_fn fn, void *ud)
{
    pthread_mutex_lock(&start_mu);
    gw_pg_notify_t *n = s->notify;
    pthread_mutex_unlock(&start_mu);
    if (!n)
        return;
    pthread_mutex_lock(&n->mu);
    for (size_t i = 0; i < n->ncbs; i++)
        if (n->cbs[i].fn == fn && n->cbs[i].ud == ud) {
            memmove(&n->cbs[i], &n->cbs[i + 1], (n->ncbs - i - 1) * sizeof n->cbs[0]);
            n->ncbs--;
            break;
        }
    pthread_mutex_unlock(&n->mu);
}

void gw_pg_notify_stop(gw_pg_store_t *s)
{
    gw_pg_notify_t *n = s->notify;
    if (!n)
        return;
    __atomic_store_n(&n->stopping, 1, __ATOMIC_RELEASE);
    char b = 1;
    if (write(n->wake[1], &b, 1) != 1)
        CM_ERROR("gw.store", "postgres: cannot wake the notice listener: %s", strerror(errno));
    pthread_join(n->thread, NULL);
    s->notify = NULL;
    notify_free(n);
}
