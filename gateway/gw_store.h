/* gw_store.h - the gateway's durable store: events, jobs, entities and dead letters.
 *
 * This header is the storage interface, with two backends behind it (gw_store.c passes
 * each call to the one the handle was opened with): gw_store_sqlite_*.c on one SQLite
 * file in WAL mode, the default (see gw_store_sqlite_int.h), and gw_store_pg_*.c on
 * PostgreSQL through libpq, for several gateway instances sharing one database (see
 * gw_store_pg_int.h). Both pass one test suite (test_gw_store.c).
 *
 * Durability contract: an ingest completes only after the event and its job are committed
 * in ONE transaction; callers acknowledge the webhook only after that. Deduplication is the
 * UNIQUE event key (and the optional alternative key) inside that transaction, never
 * check-then-insert. Concurrent ingests are grouped into one transaction and one fsync
 * (group commit) by a committer thread owned by the store.
 *
 * Thread-safety: every function may be called from any thread. Ingest goes through the
 * committer's connection; workers and admin reads use a second connection, so webhook
 * acknowledgement never waits behind a worker's transaction for long.
 */
#ifndef GW_STORE_H
#define GW_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "cm_buf.h"
#include "cm_err.h"

typedef struct gw_store gw_store_t;

typedef struct {
    const char *provider;   /* "retell", "calcom", "stripe", "std:<source>" */
    const char *event_key;  /* unique identity, e.g. "retell:call_ab12:call_analyzed" */
    const char *alt_key;    /* a second identity (Stripe's twin events), may be NULL */
    const char *event_type; /* "call_analyzed" */
    const char *entity_id;  /* the call, booking or payment the event is about */
    const char *tenant_id;  /* may be NULL when not known */
    const char *headers;    /* JSON object of the headers kept for audit, may be NULL */
    const void *body;       /* raw bytes as received */
    size_t body_len;
    int64_t received_at_ms;
    const char *job_kind; /* the job queued with the event, NULL for none */
} gw_event_in_t;

typedef enum { GW_INGEST_ACCEPTED = 0, GW_INGEST_DUPLICATE = 1 } gw_ingest_t;

/* Called once per ingest from the committer thread, after the commit (rc CM_OK) or the
 * failure. Must be quick: it runs between batches. */
typedef void (*gw_ingest_cb)(void *ud, cm_err_t rc, gw_ingest_t result);

typedef struct {
    int64_t id;
    int64_t event_id;
    char kind[64];
    char entity_id[128];
    char tenant_id[64];
    int attempts;         /* including the current one */
    char traceparent[64]; /* the sender's W3C trace context, "" when none came */
    cm_buf_t body;        /* the event's raw body; owned, freed by gw_store_job_free */
} gw_job_t;

typedef struct {
    int64_t pending, running, done, dead, discarded;
    /* The earliest next_at_ms (wall clock) of a pending job, 0 when none is pending: how
     * long the oldest due job has waited (queue lag) is now minus this, when positive. */
    int64_t oldest_pending_at_ms;
} gw_queue_stats_t;

/* Opens (creating if needed) the database at path, migrates the schema (PRAGMA
 * user_version; CM_ESTATE for a database made by a newer gateway) and starts the
 * committer. sync_full selects synchronous=FULL (every commit fsynced) over NORMAL. */
cm_err_t gw_store_open(const char *path, int sync_full, gw_store_t **out, char *err) CM_WUR;
/* The same on PostgreSQL: url is a libpq connection string or URI (borrowed). Connects,
 * migrates the schema under an advisory lock (several instances starting together migrate
 * once; CM_ESTATE for a schema made by a newer gateway) and starts the committer. Commits
 * are synchronous (synchronous_commit=on). A connection that breaks later fails the call
 * that met it with CM_ESTORE and is made again by the next call, so the store recovers by
 * itself when the server comes back. CM_ECONFIG when the gateway was built without libpq.
 * instance (borrowed; NULL for a random one) names this handle in jobs.holder: a process
 * started again under the name of a dead one takes back the jobs it left running at once
 * (gw_store_recover), where another name waits for their leases to expire. The caller
 * must make sure no live process uses the same name (the gateway derives it from its host
 * and data_dir, which it locks). At most GW_STORE_INSTANCE_MAX bytes of [A-Za-z0-9._:-]. */
#define GW_STORE_INSTANCE_MAX 39
cm_err_t gw_store_open_pg(const char *url, const char *instance, gw_store_t **out,
                          char *err) CM_WUR;
/* Stops intake (see gw_store_stop_intake), then closes. Accepts NULL; clears *s. */
void gw_store_close(gw_store_t **s);

/* Queues the event for the next group commit; cb(ud, ...) reports the outcome. ev and
 * everything it points to must stay valid until cb runs. Returns CM_ESTATE (and never
 * calls cb) when intake has stopped. */
cm_err_t gw_store_ingest_async(gw_store_t *s, const gw_event_in_t *ev, gw_ingest_cb cb,
                               void *ud) CM_WUR;
/* The same, waiting for the commit. */
cm_err_t gw_store_ingest(gw_store_t *s, const gw_event_in_t *ev, gw_ingest_t *result) CM_WUR;
/* Commits what is queued, reports it, then refuses new ingests. Idempotent. After it
 * returns no ingest callback runs any more. */
void gw_store_stop_intake(gw_store_t *s);

/* Crash recovery, called once at start, before any worker runs: every job left 'running'
 * by a dead process counts one attempt cut short by a restart and goes back to 'pending';
 * those that already used max_attempts are dead-lettered instead, so a job that crashes
 * the worker every time cannot loop forever. The dead letter's reason is "worker crashed
 * on every attempt" only when restarts cut short all its attempts; otherwise it is
 * "interrupted by a restart on attempt N of M; previous error: <its last error>".
 * *requeued: jobs requeued. */
cm_err_t gw_store_recover(gw_store_t *s, int max_attempts, int64_t now_ms, int *requeued) CM_WUR;

/* Claims the oldest due job (pending, next_at <= now) whose entity has no job running, so
 * two workers never race on one call: marks it running, counts the attempt, and leases it
 * until now_ms + lease_ms (see gw_store_reclaim).
 * CM_ENOTFOUND when none; *next_due_ms then holds the earliest future due time (-1: none).
 * On error the job is left as it was (the claim and the body read are one transaction). */
cm_err_t gw_store_claim(gw_store_t *s, int64_t now_ms, int64_t lease_ms, gw_job_t *job,
                        int64_t *next_due_ms) CM_WUR;

/* gw_store_job_done(done_id) and gw_store_claim in one transaction: a worker going from one
 * job to the next pays one commit instead of two. On any error neither happened: the
 * finished job is still 'running' and its outcome must be stored some other way.
 *
 * after_tenant (NULL: none) is the tenant of the caller's previous job. With it, the claim
 * is fair between tenants: the oldest due job of a tenant that is neither after_tenant nor
 * running a job comes first, and only when there is none the oldest due job of any, so
 * one tenant's backlog (a burst of calls, or a provider answering slowly) does not hold
 * another tenant's calls behind it. It costs a few index seeks per tenant with jobs
 * waiting (jobs_pending_tenant; at most 256 tenants are looked at, in the order of their
 * ids), so a caller with a single tenant passes NULL. */
cm_err_t gw_store_done_and_claim(gw_store_t *s, int64_t done_id, const char *after_tenant,
                                 int64_t now_ms, int64_t lease_ms, gw_job_t *job,
                                 int64_t *next_due_ms) CM_WUR;
void gw_store_job_free(gw_job_t *job);

/* Leases, for the running process's periodic path: in one transaction, renews the lease of
 * the jobs in held (ids the caller's workers are still on, nheld of them; borrowed) to
 * now_ms + lease_ms, then puts back to 'pending' every other running job whose lease has
 * expired - a job whose outcome could not be stored, which would otherwise stay 'running'
 * (and block its entity) until the next restart. Such a job is requeued whatever its
 * attempts, since the lost outcome says nothing against it, with last_error saying why.
 * *requeued: jobs requeued (0 on error, when nothing is changed). */
cm_err_t gw_store_reclaim(gw_store_t *s, int64_t now_ms, int64_t lease_ms, const int64_t *held,
                          size_t nheld, int *requeued) CM_WUR;

/* How long a statement waits for a lock another connection or process holds before it
 * fails with CM_ESTORE (10 s after open). For tests that hold the lock on purpose, and for
 * callers that would rather retry themselves. */
void gw_store_set_busy_timeout(gw_store_t *s, int ms);

/* Ends a claimed job: done, retried at retry_at_ms, or dead-lettered with the reason.
 * Each is one statement: on error (CM_ESTORE, e.g. the database is locked or failing) the
 * job stays 'running' under its lease, and the call may simply be repeated. */
cm_err_t gw_store_job_done(gw_store_t *s, int64_t job_id, int64_t now_ms) CM_WUR;
cm_err_t gw_store_job_retry(gw_store_t *s, int64_t job_id, int64_t retry_at_ms, const char *error,
                            int64_t now_ms) CM_WUR;
cm_err_t gw_store_job_dead(gw_store_t *s, int64_t job_id, const char *reason,
                           int64_t now_ms) CM_WUR;
/* gw_store_job_dead for a job whose call's view changes with it (a saga's job that ends in
 * the dead letters): in the same transaction the call entity call_id is set to call_state,
 * with reason as its error and tenant_id (may be NULL: kept) as gw_store_entity_set does.
 * A reader sees both or neither. On error (CM_ESTORE) neither is written: the job stays
 * 'running' under its lease, and the call may be repeated. Strings are borrowed. */
cm_err_t gw_store_job_dead_call(gw_store_t *s, int64_t job_id, const char *reason,
                                const char *call_id, const char *tenant_id, const char *call_state,
                                int64_t now_ms) CM_WUR;

/* Dead letters and re-runs (admin). replay: a dead job goes back to pending with its
 * attempts reset; discard: a dead job is set aside for good. CM_ENOTFOUND: no such job;
 * CM_ESTATE: the job is not dead. rerun: queues a new job for a stored event (its
 * original job kind); *job_id is the new job. */
cm_err_t gw_store_job_replay(gw_store_t *s, int64_t job_id, int64_t now_ms) CM_WUR;
cm_err_t gw_store_job_discard(gw_store_t *s, int64_t job_id, int64_t now_ms) CM_WUR;
cm_err_t gw_store_event_rerun(gw_store_t *s, int64_t event_id, int64_t now_ms,
                              int64_t *job_id) CM_WUR;

cm_err_t gw_store_queue_stats(gw_store_t *s, gw_queue_stats_t *st) CM_WUR;

/* What one gw_store_purge removed. */
typedef struct {
    int events;     /* raw webhooks (bodies, headers) and their dedup keys */
    int jobs;       /* their finished jobs (done or discarded) */
    int saga_steps; /* history lines of ended sagas */
} gw_purge_t;

/* Retention: removes, in one short transaction, at most `batch` (1-10000) of each of
 *   - events received before cutoff_ms whose jobs are all finished (done or discarded),
 *     with those jobs: an event with a pending, running or dead job (a dead letter not yet
 *     handled) is kept whatever its age;
 *   - saga_steps of sagas that ended (completed, failed_no_slot, failed_payment,
 *     compensated, failed, cancelled_by_attendee) and were last updated before cutoff_ms;
 *     a saga waiting for a person (needs_human) keeps its history.
 * Saga and entity rows stay: they hold ids, states and amounts, not the callers' data, and
 * a saga row is what stops a late redelivery of its call from booking again. Oldest
 * first (by id); the work per call is bounded by batch plus the old rows kept (dead
 * letters), never the whole table. *out gets the counts (all 0: nothing left to purge).
 * CM_EINVAL for a bad batch; CM_ESTORE when the database fails (nothing removed). */
cm_err_t gw_store_purge(gw_store_t *s, int64_t cutoff_ms, int batch, gw_purge_t *out) CM_WUR;

/* What one gw_store_erase changed. */
#define GW_ERASE_IDS_MAX 100
typedef struct {
    int events;       /* raw webhooks whose body and headers were replaced */
    int dead_letters; /* their dead jobs, discarded (nothing left to replay) */
    int in_progress;  /* matching events left alone: a job of theirs is pending or running */
    int errors;       /* job errors, saga reasons and entity errors that named the person */
    int64_t ids[GW_ERASE_IDS_MAX]; /* the first erased events' ids */
} gw_erase_t;

/* Erasure of one person (GDPR Art. 17): every stored event whose raw
 * body holds phone (exactly, e.g. "+14155550123") or email (ignoring case) - either may be
 * NULL, not both - gets the body {"erased":true,"erased_at_ms":now} and no headers: the
 * whole webhook goes (its transcript, name and every other detail with it), its ids, type
 * and times stay. Its dead jobs are discarded. An event with a pending or running job is
 * left as it is and counted in in_progress (its processing needs the body: erase again once
 * it has finished). Job errors, saga reasons and entity errors holding either are replaced
 * by "[erased]". Saga and entity rows otherwise stay (ids, states, amounts). Bodies are
 * searched whole: the cost is a scan of the events table, which SQLite does on its read
 * connection (intake is not held up by it) and then erases what it found 500 events to a
 * transaction; PostgreSQL does it all in one. An event stored once the erasure began may
 * not be covered. CM_EINVAL when both are NULL or empty; CM_ESTORE when the database fails:
 * what was erased stays erased, *out counts it, and calling again finishes the job. */
cm_err_t gw_store_erase(gw_store_t *s, const char *phone, const char *email, int64_t now_ms,
                        gw_erase_t *out) CM_WUR;
/* gw_store_erase within one tenant's rows (tenant NULL: every tenant's): its events, and
 * the job errors, saga reasons and steps, and entity errors of its jobs, sagas and
 * entities. For the admin API's scoped tokens. */
cm_err_t gw_store_erase_tenant(gw_store_t *s, const char *tenant, const char *phone,
                               const char *email, int64_t now_ms, gw_erase_t *out) CM_WUR;

/* 1 when the store can write now, 0 when it cannot (what /health/ready and the metric
 * gw_store_writable report). SQLite: the outcome of the last write if it is under a
 * second old (the disk refused it: full, I/O error, read-only), else that of a probe
 * written now, so an idle store is checked too; at most one probe a second under no
 * traffic. PostgreSQL: whether the server answers (the queue counts' read). Any thread. */
int gw_store_writable(gw_store_t *s);

/* Entities: one row per (kind, id) - "call", "booking", "payment" - with a state word,
 * a rank, a reference (e.g. the booking uid), an error and event flags.
 * set: overwrites state/error (ref and tenant kept when NULL) - for the single writer of
 * a state, the entity's serialised worker.
 * merge: the state only moves to a higher (rank, state) pair and flags are OR-ed, so
 * webhooks applied in any order and any number of times converge to the same row; with
 * state NULL only the flags (and a missing ref or tenant) are merged. */
cm_err_t gw_store_entity_set(gw_store_t *s, const char *kind, const char *id, const char *tenant_id,
                             const char *state, const char *ref, const char *error,
                             int64_t now_ms) CM_WUR;
cm_err_t gw_store_entity_merge(gw_store_t *s, const char *kind, const char *id,
                               const char *tenant_id, const char *state, int rank, const char *ref,
                               int64_t flags, int64_t now_ms) CM_WUR;
/* The state word into state (cap bytes) and flags (may be NULL); CM_ENOTFOUND if none. */
cm_err_t gw_store_entity_state(gw_store_t *s, const char *kind, const char *id, char *state,
                               size_t cap, int64_t *flags) CM_WUR;

/* Sagas: one booking saga per call, its state persisted before and after every step. */
typedef struct {
    char id[128]; /* the call id */
    char tenant_id[64];
    char state[32];   /* started, slot_chosen, booked, charged, completed, compensating, ... */
    char reason[256]; /* why it failed or is compensating */
    char final[32];   /* the state compensation ends in (failed_payment, compensated, ...) */
    char booking_uid[128];
    char payment_intent[128];
    int64_t wanted_ms;       /* the start the caller asked for */
    int64_t start_ms;        /* the slot chosen (0: none yet) */
    int tries;               /* slots tried so far */
    int64_t deadline_ms;     /* wall time after which a waiting saga goes to a person */
    int64_t created_at_ms;   /* wall time */
    int refunded, cancelled; /* compensations done */
    /* Not stored with the saga: when set, gw_store_saga_put also sets the call entity (id)
     * to this state, with booking_uid as its ref and reason as its error, in the same
     * transaction, so the call's view never disagrees with a finished saga. */
    char call_state[32];
} gw_saga_t;

/* CM_ENOTFOUND when the call has no saga. */
cm_err_t gw_store_saga_get(gw_store_t *s, const char *id, gw_saga_t *out) CM_WUR;
/* The saga whose booking is uid; CM_ENOTFOUND when none. */
cm_err_t gw_store_saga_by_booking(gw_store_t *s, const char *uid, gw_saga_t *out) CM_WUR;
/* Inserts or replaces the saga row and appends one line to its step log (step, phase:
 * "intent", "done", "failed", detail may be NULL) in one transaction, with the call
 * entity's state when sg->call_state is set. */
cm_err_t gw_store_saga_put(gw_store_t *s, const gw_saga_t *sg, const char *step, const char *phase,
                           const char *detail, int64_t now_ms) CM_WUR;
/* Whether the step log's last line for step is an intent (1) or not (0): the step may
 * have run without its result being recorded (a crash in the middle of a call). -1 when
 * the store cannot tell: the caller must not assume the step never ran. */
int gw_store_saga_intent_open(gw_store_t *s, const char *id, const char *step);
cm_err_t gw_store_saga_json(gw_store_t *s, const char *id, cm_buf_t *out) CM_WUR; /* + steps */
cm_err_t gw_store_sagas_json(gw_store_t *s, const char *state, const char *tenant, int limit,
                             cm_buf_t *out) CM_WUR;

/* JSON views for the admin API, appended to out. A list view's tenant (NULL: all) keeps
 * the rows of that tenant only, before the limit: a token scoped to a tenant sees its
 * own rows however many others there are. */
cm_err_t gw_store_entity_json(gw_store_t *s, const char *kind, const char *id,
                              cm_buf_t *out) CM_WUR; /* CM_ENOTFOUND */
cm_err_t gw_store_events_json(gw_store_t *s, const char *provider, const char *entity_id,
                              const char *tenant, int limit,
                              cm_buf_t *out) CM_WUR; /* {"count","events"} */
cm_err_t gw_store_jobs_json(gw_store_t *s, const char *state, const char *tenant, int limit,
                            cm_buf_t *out) CM_WUR; /* {"count","jobs"} */
cm_err_t gw_store_job_json(gw_store_t *s, int64_t job_id, cm_buf_t *out) CM_WUR; /* + body */

/* ---- the audit log of admin actions (gw_store_*_audit.c) -----------------------------
 *
 * Every admin call that changes something is recorded (gw_admin.c): who (the token's
 * name, never the token), when (cm_clock, epoch ms), the action, its target, the tenant it
 * concerned, its outcome and a detail of counts and ids. Never personal data: an erasure
 * is recorded by what it changed, never whom it was for. Durable like a webhook (the
 * configured synchronous mode on SQLite). Retention keeps the entries (gw_store_purge
 * never touches the table): they are the operators' own record, a few per day. */
typedef struct {
    int64_t id; /* assigned by the store; ignored by gw_store_audit_add */
    int64_t at_ms;
    const char *token;   /* the admin token's name */
    const char *tenant;  /* the tenant concerned; NULL: all tenants or none in particular */
    const char *action;  /* "dead_letter.replay", "breaker.reset", "erasure", ... */
    const char *target;  /* "job 42", "calcom", ... */
    const char *outcome; /* "ok", "not_found", "conflict", "error", ... */
    const char *detail;  /* a JSON object's text, or NULL */
} gw_audit_t;

/* Appends one entry (copies what it needs). CM_EINVAL without token, action or outcome. */
cm_err_t gw_store_audit_add(gw_store_t *s, const gw_audit_t *a) CM_WUR;

/* Calls fn with each entry, newest first: those of tenant only when tenant is not NULL,
 * with an id below before_id when before_id > 0, at most limit. The strings are valid
 * during the call only. fn's non-zero return stops the listing (and is returned). */
typedef cm_err_t (*gw_audit_fn)(void *ud, const gw_audit_t *a);
cm_err_t gw_store_audit_list(gw_store_t *s, const char *tenant, int64_t before_id, int limit,
                             gw_audit_fn fn, void *ud) CM_WUR;

/* The tenant of stored event event_id into tenant (cap bytes; "" when it has none), for
 * the admin API's scoped tokens. CM_ENOTFOUND. */
cm_err_t gw_store_event_tenant(gw_store_t *s, int64_t event_id, char *tenant, size_t cap) CM_WUR;

/* ---- shared by the instances on one store ----------------------------------------------
 *
 * Several gateway instances on one PostgreSQL database share what the providers count per
 * API key (rate limits) and tell each other what changed (new jobs, bookings). On SQLite
 * one process owns the file (gw_main.c's lock): nothing is shared, and these functions say
 * so or do nothing, as each one states. */

/* A cluster-wide token bucket named key (an identifier, never a secret: names are stored
 * in the database), created full on first use, refilled at rate_per_s up to burst by the
 * callers' wall clocks (cm_clock: a simulated clock counts; instances' clocks are assumed
 * synchronised, a skew of d letting at most d x rate more through). Takes one token, or
 * reserves it when it comes within max_wait_ms (0: never wait), with
 * gw_ratelimit_acquire's semantics: *taken 1 and *wait_ms the time to wait before using it
 * (0: at once), or *taken 0 (the bucket left as it was) and *wait_ms the wait that would
 * have been needed. One atomic statement: concurrent takes from any instance are served
 * one after the other. rate_per_s and burst come with each call (configure the instances
 * alike). CM_EAGAIN on SQLite (not shared: use a bucket in the process); CM_ESTORE when
 * the database cannot answer (the caller decides; gw_ratelimit falls back to its own). */
cm_err_t gw_store_rl_take(gw_store_t *s, const char *key, double rate_per_s, double burst,
                          int64_t max_wait_ms, int *taken, int64_t *wait_ms) CM_WUR;
/* Gives one token back to key's bucket (capped at burst), for a token whose call was not
 * made. CM_EAGAIN on SQLite, CM_ESTORE. */
cm_err_t gw_store_rl_refund(gw_store_t *s, const char *key, double rate_per_s, double burst) CM_WUR;

/* What a notice is about. */
typedef enum {
    GW_NOTICE_JOBS = 0, /* jobs became runnable: claim (detail NULL) */
    GW_NOTICE_SLOTS,    /* availability changed: detail is the Cal.com event type id in
                         * decimal, or NULL for "any" */
} gw_notice_t;

/* Called on the store's listener thread with the lock that gw_store_off_notice takes held:
 * must be quick and must not call gw_store_on_notice or gw_store_off_notice. detail is
 * borrowed for the call. */
typedef void (*gw_notice_fn)(void *ud, gw_notice_t what, const char *detail);

/* Registers fn(ud, ...) for the notices other instances publish (gw_store_publish), and for
 * the jobs an ingest or a re-run on another instance makes runnable. On PostgreSQL the
 * store listens (LISTEN gw_jobs, gw_slots) on a connection of its own, started by the
 * first registration and made again with back-off when it breaks. Notices sent while it
 * does not listen are lost, so fn is called once for each kind with detail NULL ("anything
 * may have changed") as soon as it listens for fn - during this call when the connection
 * already listens, else when it connects - and again after every reconnection. The call
 * waits up to 2 s for the listener to listen, so that at start-up that first call comes
 * before any work (a slot read cached meanwhile would be dropped and read again). A handle
 * never receives its own publications. At most 8 registrations; CM_ENOMEM past them or
 * when the listener cannot start. On SQLite fn is accepted and never called (no other
 * instance): CM_OK. Safe from any thread. */
cm_err_t gw_store_on_notice(gw_store_t *s, gw_notice_fn fn, void *ud) CM_WUR;
/* Removes the registration of (fn, ud); once it returns fn is not running and will not
 * run for it. Call before ud goes away (and before gw_store_close). Safe from any thread
 * but fn's. */
void gw_store_off_notice(gw_store_t *s, gw_notice_fn fn, void *ud);
/* Tells every other instance on the store (detail as for gw_notice_fn, borrowed, may be
 * NULL; at most 64 bytes). PostgreSQL: NOTIFY, delivered at once (not inside any
 * transaction); CM_ESTORE when the database cannot take it (the notice is lost: the
 * caller's polling or cache lifetime must bound what that costs). SQLite: nobody to tell,
 * CM_OK. */
cm_err_t gw_store_publish(gw_store_t *s, gw_notice_t what, const char *detail) CM_WUR;

/* ---- reconciliation (gw_reconcile; gw_store_*_reconcile.c) ------------------------------
 *
 * What a pass comparing the sagas with the providers found: one row per (provider, kind,
 * object_id), so a drift seen again at every pass is stored (and counted) once. */
typedef struct {
    int64_t at_ms;
    const char *tenant_id; /* may be NULL */
    const char *provider;  /* "calcom", "stripe", "retell" */
    const char *kind;      /* "booking_without_saga", "refund_by_hand", "call_recovered", ... */
    const char *saga_id;   /* may be NULL (no saga) */
    const char *object_id; /* the provider's: booking uid, payment intent, call id */
    const char *action;    /* "repaired" or "flagged" */
    const char *detail;    /* may be NULL */
} gw_finding_t;

/* Stores f (strings borrowed) unless a finding of the same provider, kind and object is
 * stored already: *is_new 1 when it was stored now, 0 when it was known. */
cm_err_t gw_store_finding_add(gw_store_t *s, const gw_finding_t *f, int *is_new) CM_WUR;
/* Appends {"findings":[{id, at_ms, tenant_id, provider, kind, saga_id, object_id, action,
 * detail}...],"count":N} to out, newest first, at most limit; provider, action and tenant
 * (each may be NULL) filter. On error out is as it was. */
cm_err_t gw_store_findings_json(gw_store_t *s, const char *provider, const char *action,
                                const char *tenant, int limit, cm_buf_t *out) CM_WUR;

/* A repair the reconciler makes to a saga, as a compare-and-set: applied only if the saga is
 * still in state expect and no job of its call is running (a worker on it would overwrite
 * the row from its own copy), and - for what it sets - booking_uid or payment_intent is
 * still empty. Sets state (NULL: kept), booking_uid, payment_intent (NULL: kept), cancelled
 * when mark_cancelled, appends the step-log line (step, "done", detail), and makes the
 * call's pending job due now so that the saga goes on from the repaired state at once;
 * all in one transaction. *changed 0 when the saga had moved on (nothing written). */
typedef struct {
    const char *saga_id;
    const char *expect; /* the state the saga was read in */
    const char *state;
    const char *booking_uid;
    const char *payment_intent;
    int mark_cancelled;
    const char *step;
    const char *detail;
} gw_saga_fix_t;
cm_err_t gw_store_saga_fix(gw_store_t *s, const gw_saga_fix_t *fix, int64_t now_ms,
                           int *changed) CM_WUR;

/* Whether an event with this key is stored (*exists 1) - e.g. a call's call_analyzed
 * ("retell:<call_id>:call_analyzed"), to skip asking Retell for a call the gateway has. */
cm_err_t gw_store_event_exists(gw_store_t *s, const char *event_key, int *exists) CM_WUR;

#endif
