/* gw_store_be.h - the store's backends as gw_store.c sees them: each implements every
 * function of gw_store.h under its own prefix, on its own handle. Internal to the store:
 * gw_store.c and the backends' files include it; everything else uses gw_store.h.
 *
 *   gw_sq_store_*  SQLite (gw_store_sqlite_*.c, gw_store_sqlite_int.h), always built
 *   gw_pg_store_*  PostgreSQL (gw_store_pg_*.c, gw_store_pg_int.h), built when libpq was
 *                  found (GW_STORE_PG defined)
 *
 * Each function has the contract of the gw_store.h function of the same name; the handle
 * is the backend's, owned by the gw_store_t that gw_store.c wraps around it. gw_store_job_free
 * has no backend part (it frees a buffer).
 */
#ifndef GW_STORE_BE_H
#define GW_STORE_BE_H

#include "gw_store.h"

typedef struct gw_sq_store gw_sq_store_t;
typedef struct gw_pg_store gw_pg_store_t;

/* As gw_store_open (path, sync_full) for SQLite; url is a libpq connection string or URI
 * for PostgreSQL, whose commits are always synchronous (synchronous_commit=on). */
cm_err_t gw_sq_store_open(const char *path, int sync_full, gw_sq_store_t **out, char *err) CM_WUR;
cm_err_t gw_pg_store_open(const char *url, const char *instance, gw_pg_store_t **out,
                          char *err) CM_WUR;
void gw_sq_store_close(gw_sq_store_t **s);
void gw_pg_store_close(gw_pg_store_t **s);

cm_err_t gw_sq_store_ingest_async(gw_sq_store_t *s, const gw_event_in_t *ev, gw_ingest_cb cb,
                                  void *ud) CM_WUR;
cm_err_t gw_pg_store_ingest_async(gw_pg_store_t *s, const gw_event_in_t *ev, gw_ingest_cb cb,
                                  void *ud) CM_WUR;
cm_err_t gw_sq_store_ingest(gw_sq_store_t *s, const gw_event_in_t *ev, gw_ingest_t *result) CM_WUR;
cm_err_t gw_pg_store_ingest(gw_pg_store_t *s, const gw_event_in_t *ev, gw_ingest_t *result) CM_WUR;
void gw_sq_store_stop_intake(gw_sq_store_t *s);
void gw_pg_store_stop_intake(gw_pg_store_t *s);
cm_err_t gw_sq_store_recover(gw_sq_store_t *s, int max_attempts, int64_t now_ms,
                             int *requeued) CM_WUR;
cm_err_t gw_pg_store_recover(gw_pg_store_t *s, int max_attempts, int64_t now_ms,
                             int *requeued) CM_WUR;
cm_err_t gw_sq_store_claim(gw_sq_store_t *s, int64_t now_ms, int64_t lease_ms, gw_job_t *job,
                           int64_t *next_due_ms) CM_WUR;
cm_err_t gw_pg_store_claim(gw_pg_store_t *s, int64_t now_ms, int64_t lease_ms, gw_job_t *job,
                           int64_t *next_due_ms) CM_WUR;
cm_err_t gw_sq_store_done_and_claim(gw_sq_store_t *s, int64_t done_id, const char *after_tenant,
                                    int64_t now_ms, int64_t lease_ms, gw_job_t *job,
                                    int64_t *next_due_ms) CM_WUR;
cm_err_t gw_pg_store_done_and_claim(gw_pg_store_t *s, int64_t done_id, const char *after_tenant,
                                    int64_t now_ms, int64_t lease_ms, gw_job_t *job,
                                    int64_t *next_due_ms) CM_WUR;
cm_err_t gw_sq_store_reclaim(gw_sq_store_t *s, int64_t now_ms, int64_t lease_ms,
                             const int64_t *held, size_t nheld, int *requeued) CM_WUR;
cm_err_t gw_pg_store_reclaim(gw_pg_store_t *s, int64_t now_ms, int64_t lease_ms,
                             const int64_t *held, size_t nheld, int *requeued) CM_WUR;
void gw_sq_store_set_busy_timeout(gw_sq_store_t *s, int ms);
void gw_pg_store_set_busy_timeout(gw_pg_store_t *s, int ms);
cm_err_t gw_sq_store_job_done(gw_sq_store_t *s, int64_t job_id, int64_t now_ms) CM_WUR;
cm_err_t gw_pg_store_job_done(gw_pg_store_t *s, int64_t job_id, int64_t now_ms) CM_WUR;
cm_err_t gw_sq_store_job_retry(gw_sq_store_t *s, int64_t job_id, int64_t retry_at_ms,
                               const char *error, int64_t now_ms) CM_WUR;
cm_err_t gw_pg_store_job_retry(gw_pg_store_t *s, int64_t job_id, int64_t retry_at_ms,
                               const char *error, int64_t now_ms) CM_WUR;
cm_err_t gw_sq_store_job_dead(gw_sq_store_t *s, int64_t job_id, const char *reason,
                              int64_t now_ms) CM_WUR;
cm_err_t gw_pg_store_job_dead(gw_pg_store_t *s, int64_t job_id, const char *reason,
                              int64_t now_ms) CM_WUR;
cm_err_t gw_sq_store_job_dead_call(gw_sq_store_t *s, int64_t job_id, const char *reason,
                                   const char *call_id, const char *tenant_id,
                                   const char *call_state, int64_t now_ms) CM_WUR;
cm_err_t gw_pg_store_job_dead_call(gw_pg_store_t *s, int64_t job_id, const char *reason,
                                   const char *call_id, const char *tenant_id,
                                   const char *call_state, int64_t now_ms) CM_WUR;
cm_err_t gw_sq_store_job_replay(gw_sq_store_t *s, int64_t job_id, int64_t now_ms) CM_WUR;
cm_err_t gw_pg_store_job_replay(gw_pg_store_t *s, int64_t job_id, int64_t now_ms) CM_WUR;
cm_err_t gw_sq_store_job_discard(gw_sq_store_t *s, int64_t job_id, int64_t now_ms) CM_WUR;
cm_err_t gw_pg_store_job_discard(gw_pg_store_t *s, int64_t job_id, int64_t now_ms) CM_WUR;
cm_err_t gw_sq_store_event_rerun(gw_sq_store_t *s, int64_t event_id, int64_t now_ms,
                                 int64_t *job_id) CM_WUR;
cm_err_t gw_pg_store_event_rerun(gw_pg_store_t *s, int64_t event_id, int64_t now_ms,
                                 int64_t *job_id) CM_WUR;
cm_err_t gw_sq_store_queue_stats(gw_sq_store_t *s, gw_queue_stats_t *st) CM_WUR;
cm_err_t gw_sq_store_purge(gw_sq_store_t *s, int64_t cutoff_ms, int batch, gw_purge_t *out) CM_WUR;
cm_err_t gw_pg_store_purge(gw_pg_store_t *s, int64_t cutoff_ms, int batch, gw_purge_t *out) CM_WUR;
cm_err_t gw_sq_store_erase(gw_sq_store_t *s, const char *tenant, const char *phone,
                           const char *email, int64_t now_ms, gw_erase_t *out) CM_WUR;
cm_err_t gw_pg_store_erase(gw_pg_store_t *s, const char *tenant, const char *phone,
                           const char *email, int64_t now_ms, gw_erase_t *out) CM_WUR;
int gw_sq_store_writable(gw_sq_store_t *s);
int gw_pg_store_writable(gw_pg_store_t *s);
cm_err_t gw_pg_store_queue_stats(gw_pg_store_t *s, gw_queue_stats_t *st) CM_WUR;
cm_err_t gw_sq_store_entity_set(gw_sq_store_t *s, const char *kind, const char *id,
                                const char *tenant_id, const char *state, const char *ref,
                                const char *error, int64_t now_ms) CM_WUR;
cm_err_t gw_pg_store_entity_set(gw_pg_store_t *s, const char *kind, const char *id,
                                const char *tenant_id, const char *state, const char *ref,
                                const char *error, int64_t now_ms) CM_WUR;
cm_err_t gw_sq_store_entity_merge(gw_sq_store_t *s, const char *kind, const char *id,
                                  const char *tenant_id, const char *state, int rank,
                                  const char *ref, int64_t flags, int64_t now_ms) CM_WUR;
cm_err_t gw_pg_store_entity_merge(gw_pg_store_t *s, const char *kind, const char *id,
                                  const char *tenant_id, const char *state, int rank,
                                  const char *ref, int64_t flags, int64_t now_ms) CM_WUR;
cm_err_t gw_sq_store_entity_state(gw_sq_store_t *s, const char *kind, const char *id, char *state,
                                  size_t cap, int64_t *flags) CM_WUR;
cm_err_t gw_pg_store_entity_state(gw_pg_store_t *s, const char *kind, const char *id, char *state,
                                  size_t cap, int64_t *flags) CM_WUR;
cm_err_t gw_sq_store_saga_get(gw_sq_store_t *s, const char *id, gw_saga_t *out) CM_WUR;
cm_err_t gw_pg_store_saga_get(gw_pg_store_t *s, const char *id, gw_saga_t *out) CM_WUR;
cm_err_t gw_sq_store_saga_by_booking(gw_sq_store_t *s, const char *uid, gw_saga_t *out) CM_WUR;
cm_err_t gw_pg_store_saga_by_booking(gw_pg_store_t *s, const char *uid, gw_saga_t *out) CM_WUR;
cm_err_t gw_sq_store_saga_put(gw_sq_store_t *s, const gw_saga_t *sg, const char *step,
                              const char *phase, const char *detail, int64_t now_ms) CM_WUR;
cm_err_t gw_pg_store_saga_put(gw_pg_store_t *s, const gw_saga_t *sg, const char *step,
                              const char *phase, const char *detail, int64_t now_ms) CM_WUR;
int gw_sq_store_saga_intent_open(gw_sq_store_t *s, const char *id, const char *step);
int gw_pg_store_saga_intent_open(gw_pg_store_t *s, const char *id, const char *step);
cm_err_t gw_sq_store_saga_json(gw_sq_store_t *s, const char *id, cm_buf_t *out) CM_WUR;
cm_err_t gw_pg_store_saga_json(gw_pg_store_t *s, const char *id, cm_buf_t *out) CM_WUR;
cm_err_t gw_sq_store_sagas_json(gw_sq_store_t *s, const char *state, const char *tenant, int limit,
                                cm_buf_t *out) CM_WUR;
cm_err_t gw_pg_store_sagas_json(gw_pg_store_t *s, const char *state, const char *tenant, int limit,
                                cm_buf_t *out) CM_WUR;
cm_err_t gw_sq_store_entity_json(gw_sq_store_t *s, const char *kind, const char *id,
                                 cm_buf_t *out) CM_WUR;
cm_err_t gw_pg_store_entity_json(gw_pg_store_t *s, const char *kind, const char *id,
                                 cm_buf_t *out) CM_WUR;
cm_err_t gw_sq_store_events_json(gw_sq_store_t *s, const char *provider, const char *entity_id,
                                 const char *tenant, int limit, cm_buf_t *out) CM_WUR;
cm_err_t gw_pg_store_events_json(gw_pg_store_t *s, const char *provider, const char *entity_id,
                                 const char *tenant, int limit, cm_buf_t *out) CM_WUR;
cm_err_t gw_sq_store_jobs_json(gw_sq_store_t *s, const char *state, const char *tenant, int limit,
                               cm_buf_t *out) CM_WUR;
cm_err_t gw_pg_store_jobs_json(gw_pg_store_t *s, const char *state, const char *tenant, int limit,
                               cm_buf_t *out) CM_WUR;
cm_err_t gw_sq_store_job_json(gw_sq_store_t *s, int64_t job_id, cm_buf_t *out) CM_WUR;
cm_err_t gw_pg_store_job_json(gw_pg_store_t *s, int64_t job_id, cm_buf_t *out) CM_WUR;
cm_err_t gw_sq_store_rl_take(gw_sq_store_t *s, const char *key, double rate_per_s, double burst,
                             int64_t max_wait_ms, int *taken, int64_t *wait_ms) CM_WUR;
cm_err_t gw_pg_store_rl_take(gw_pg_store_t *s, const char *key, double rate_per_s, double burst,
                             int64_t max_wait_ms, int *taken, int64_t *wait_ms) CM_WUR;
cm_err_t gw_sq_store_rl_refund(gw_sq_store_t *s, const char *key, double rate_per_s,
                               double burst) CM_WUR;
cm_err_t gw_pg_store_rl_refund(gw_pg_store_t *s, const char *key, double rate_per_s,
                               double burst) CM_WUR;
cm_err_t gw_sq_store_on_notice(gw_sq_store_t *s, gw_notice_fn fn, void *ud) CM_WUR;
cm_err_t gw_pg_store_on_notice(gw_pg_store_t *s, gw_notice_fn fn, void *ud) CM_WUR;
void gw_sq_store_off_notice(gw_sq_store_t *s, gw_notice_fn fn, void *ud);
void gw_pg_store_off_notice(gw_pg_store_t *s, gw_notice_fn fn, void *ud);
cm_err_t gw_sq_store_publish(gw_sq_store_t *s, gw_notice_t what, const char *detail) CM_WUR;
cm_err_t gw_pg_store_publish(gw_pg_store_t *s, gw_notice_t what, const char *detail) CM_WUR;
cm_err_t gw_sq_store_audit_add(gw_sq_store_t *s, const gw_audit_t *a) CM_WUR;
cm_err_t gw_pg_store_audit_add(gw_pg_store_t *s, const gw_audit_t *a) CM_WUR;
cm_err_t gw_sq_store_audit_list(gw_sq_store_t *s, const char *tenant, int64_t before_id, int limit,
                                gw_audit_fn fn, void *ud) CM_WUR;
cm_err_t gw_pg_store_audit_list(gw_pg_store_t *s, const char *tenant, int64_t before_id, int limit,
                                gw_audit_fn fn, void *ud) CM_WUR;
cm_err_t gw_sq_store_event_tenant(gw_sq_store_t *s, int64_t event_id, char *tenant,
                                  size_t cap) CM_WUR;
cm_err_t gw_pg_store_event_tenant(gw_pg_store_t *s, int64_t event_id, char *tenant,
                                  size_t cap) CM_WUR;

/* Reconciliation (gw_store_sqlite_reconcile.c, gw_store_pg_reconcile.c). */
cm_err_t gw_sq_store_finding_add(gw_sq_store_t *s, const gw_finding_t *f, int *is_new) CM_WUR;
cm_err_t gw_pg_store_finding_add(gw_pg_store_t *s, const gw_finding_t *f, int *is_new) CM_WUR;
cm_err_t gw_sq_store_findings_json(gw_sq_store_t *s, const char *provider, const char *action,
                                   const char *tenant, int limit, cm_buf_t *out) CM_WUR;
cm_err_t gw_pg_store_findings_json(gw_pg_store_t *s, const char *provider, const char *action,
                                   const char *tenant, int limit, cm_buf_t *out) CM_WUR;
cm_err_t gw_sq_store_saga_fix(gw_sq_store_t *s, const gw_saga_fix_t *fix, int64_t now_ms,
                              int *changed) CM_WUR;
cm_err_t gw_pg_store_saga_fix(gw_pg_store_t *s, const gw_saga_fix_t *fix, int64_t now_ms,
                              int *changed) CM_WUR;
cm_err_t gw_sq_store_event_exists(gw_sq_store_t *s, const char *event_key, int *exists) CM_WUR;
cm_err_t gw_pg_store_event_exists(gw_pg_store_t *s, const char *event_key, int *exists) CM_WUR;

#endif
