/* test_gw_worker.c - the worker's handling of a store that refuses a job's outcome, on a
 * real SQLite file locked by a second connection: the outcome write is retried over a
 * bounded time (cut short by stop), then logged and counted, and the job's lease brings it
 * back so that it ends done once the store works again. Includes gw_worker.c to reach
 * finish() and check_leases(). */
#include "gw_worker.c"

#include <criterion/criterion.h>
#include <sqlite3.h>

#include "cm_log.h"

static char dir[64], cfgpath[128];
static gw_config_t *cfg;
static gw_store_t *store;
static gw_obs_t *obs;
static gw_outbound_t *ob;
static gw_worker_t *hand; /* a worker without threads: the test drives its one lane */
static sqlite3 *locker;   /* "another process" holding the write lock */

static void setup(void)
{
    char err[CM_ERR_LEN] = "";
    int n = 0;
    snprintf(dir, sizeof dir, "/tmp/test_gw_worker_XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    snprintf(cfgpath, sizeof cfgpath, "%s/gw.json", dir);
    FILE *f = fopen(cfgpath, "w");
    cr_assert_not_null(f);
    fprintf(f,
            "{\"data_dir\":\"%s\",\"admin_token\":\"tok\","
            "\"worker\":{\"threads\":1,\"lease_ms\":3000},"
            "\"providers\":{\"calcom\":{\"base_url\":\"http://127.0.0.1:9\"}},"
            "\"tenants\":[{\"id\":\"t\",\"retell\":{\"agent_ids\":[\"ag\"],\"api_keys\":"
            "[\"key_t\"]},\"calcom\":{\"api_key\":\"cal_t\",\"event_type_id\":1}}]}",
            dir);
    fclose(f);
    cr_assert_eq(gw_config_load(cfgpath, &cfg, stderr, &n), CM_OK);
    cm_log_set_level("error"); /* the refused writes are expected; keep the output short */
    cr_assert_eq(gw_store_open(cfg->db_path, 1, &store, err), CM_OK, "%s", err);
    /* A lock held past this many ms fails the statement, so each try fails fast. */
    gw_store_set_busy_timeout(store, 20);
    cr_assert_eq(gw_obs_new(store, &obs, err), CM_OK, "%s", err);
    cr_assert_eq(gw_outbound_new(cfg, obs, &ob, err), CM_OK, "%s", err);
    hand = calloc(1, sizeof *hand);
    cr_assert_not_null(hand);
    hand->cfg = cfg;
    hand->store = store;
    hand->ob = ob;
    hand->nlanes = 1;
    cr_assert_eq(cm_clock_cond_init(&hand->cv), 0);
    pthread_mutex_init(&hand->mu, NULL);
    hand->lanes[0] = (lane_t){.w = hand, .cfg = cfg, .store = store, .ob = ob, .obs = obs};
    cm_rand_seed(&hand->lanes[0].rng, 1);
}

static void teardown(void)
{
    char cmd[128];
    if (locker)
        sqlite3_close(locker);
    locker = NULL;
    pthread_cond_destroy(&hand->cv);
    pthread_mutex_destroy(&hand->mu);
    free(hand);
    gw_outbound_free(&ob);
    gw_obs_free(&obs);
    gw_store_close(&store);
    gw_config_free(&cfg);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    cr_assert_eq(system(cmd), 0);
}

TestSuite(worker, .init = setup, .fini = teardown);

static void lock_store(void)
{
    cr_assert_eq(sqlite3_open(cfg->db_path, &locker), SQLITE_OK);
    cr_assert_eq(sqlite3_exec(locker, "BEGIN EXCLUSIVE", NULL, NULL, NULL), SQLITE_OK, "%s",
                 sqlite3_errmsg(locker));
}

static void unlock_store(void)
{
    cr_assert_eq(sqlite3_exec(locker, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(locker);
    locker = NULL;
}

/* Queues a Stripe event the worker records nothing for (an unknown type): its run touches
 * no store, so only the outcome write meets the lock. received_ms puts it in the past when
 * the test needs an already expired lease. */
static void queue_job(int64_t received_ms)
{
    static const char body[] = "{\"type\":\"test.nothing_to_record\"}";
    gw_event_in_t ev = {.provider = "stripe",
                        .event_key = "stripe:evt_1",
                        .event_type = "test.nothing_to_record",
                        .entity_id = "pi_1",
                        .tenant_id = "t",
                        .body = body,
                        .body_len = sizeof body - 1,
                        .received_at_ms = received_ms,
                        .job_kind = "stripe.event"};
    gw_ingest_t r;
    cr_assert_eq(gw_store_ingest(store, &ev, &r), CM_OK);
    cr_assert_eq(r, GW_INGEST_ACCEPTED);
}

/* Claims the queued job as of at_ms, so its lease ends at at_ms + the configured lease. */
static void claim_at(int64_t at_ms, gw_job_t *job)
{
    int64_t next = 0;
    cr_assert_eq(gw_store_claim(store, at_ms, cfg->job_lease_ms, job, &next), CM_OK);
}

static gw_queue_stats_t stats(void)
{
    gw_queue_stats_t q;
    cr_assert_eq(gw_store_queue_stats(store, &q), CM_OK);
    return q;
}

static double unstored(const char *result)
{
    return gw_mseries_value(gw_metrics_with(obs->unstored, GW_LV(result)));
}

Test(worker, a_refused_outcome_is_retried_counted_then_requeued_by_its_lease)
{
    gw_job_t job;
    int64_t now = cm_clock_now_ms();
    /* Claimed a lease ago, as a lane that has been running the job for that long. */
    queue_job(now - 2 * cfg->job_lease_ms);
    claim_at(now - cfg->job_lease_ms - 1, &job);
    lane_t *lane = &hand->lanes[0];
    lane->job_id = job.id;
    lock_store();
    int64_t t0 = cm_clock_mono_ms();
    cm_err_t rc = finish(lane, &job, JOB_DONE, "");
    int64_t took = cm_clock_mono_ms() - t0;
    cr_assert_eq(rc, CM_ESTORE, "the lock outlasts every try: %s", cm_strerror(rc));
    /* Back-offs of 100 + 200 + 400 ms between 4 tries of 20 ms each: bounded. */
    cr_assert(took >= 700 && took < 5000, "outcome tries took %lld ms", (long long)took);
    cr_assert_eq(unstored("done"), 1.0, "counted once, got %g", unstored("done"));
    cr_assert_eq(stats().running, 1, "the job is still running");
    /* While the lane holds it, the lease check renews it instead of requeueing it. */
    check_leases(lane);
    cr_assert_eq(stats().running, 1, "the locked store changed nothing");
    unlock_store();
    hand->next_lease_check_ms = 0;
    check_leases(lane);
    cr_assert_eq(stats().running, 1, "a held job is not requeued, its lease is renewed");
    /* The lane lets go, as lane_main does after finish; once the renewed lease runs out
     * the job goes back to pending. */
    lane->job_id = 0;
    int requeued = -1;
    cr_assert_eq(gw_store_reclaim(store, cm_clock_now_ms(), cfg->job_lease_ms, NULL, 0, &requeued),
                 CM_OK);
    cr_assert_eq(requeued, 0, "renewed a moment ago");
    int64_t later = cm_clock_now_ms() + cfg->job_lease_ms;
    cr_assert_eq(gw_store_reclaim(store, later, cfg->job_lease_ms, NULL, 0, &requeued), CM_OK);
    cr_assert_eq(requeued, 1);
    /* Its next run's outcome is stored: the job ends done. */
    gw_job_t again;
    claim_at(later, &again);
    cr_assert_eq(again.id, job.id);
    cr_assert_eq(finish(lane, &again, JOB_DONE, ""), CM_OK);
    gw_queue_stats_t q = stats();
    cr_assert(q.done == 1 && q.running == 0 && q.pending == 0, "done %lld running %lld",
              (long long)q.done, (long long)q.running);
    gw_store_job_free(&again);
    gw_store_job_free(&job);
}

Test(worker, a_refused_retry_outcome_is_counted_under_its_result)
{
    gw_job_t job;
    queue_job(cm_clock_now_ms());
    claim_at(cm_clock_now_ms(), &job);
    lock_store();
    cr_assert_eq(finish(&hand->lanes[0], &job, JOB_RETRY, "HTTP 503"), CM_ESTORE);
    unlock_store();
    cr_assert_eq(unstored("retry"), 1.0);
    cr_assert_eq(unstored("done"), 0.0);
    gw_store_job_free(&job);
}

typedef struct {
    lane_t *lane;
    gw_job_t *job;
    cm_err_t rc;
} finisher_t;

static void *finish_thread(void *arg)
{
    finisher_t *f = arg;
    f->rc = finish(f->lane, f->job, JOB_DONE, "");
    return NULL;
}

Test(worker, stop_cuts_the_outcome_tries_short)
{
    gw_job_t job;
    pthread_t th;
    queue_job(cm_clock_now_ms());
    claim_at(cm_clock_now_ms(), &job);
    lock_store();
    finisher_t f = {.lane = &hand->lanes[0], .job = &job, .rc = CM_OK};
    int64_t t0 = cm_clock_mono_ms();
    cr_assert_eq(pthread_create(&th, NULL, finish_thread, &f), 0);
    /* Whether stop lands before the first back-off or during it, the wait ends at once. */
    pthread_mutex_lock(&hand->mu);
    hand->stopping = 1;
    pthread_cond_broadcast(&hand->cv);
    pthread_mutex_unlock(&hand->mu);
    pthread_join(th, NULL);
    int64_t took = cm_clock_mono_ms() - t0;
    unlock_store();
    cr_assert_eq(f.rc, CM_ESTORE);
    cr_assert(took < 600, "stop waited for the back-offs: %lld ms", (long long)took);
    cr_assert_eq(unstored("done"), 1.0, "given up on is still counted");
    cr_assert_eq(stats().running, 1, "left for the lease (or the next start's recovery)");
    gw_store_job_free(&job);
}

Test(worker, the_running_worker_requeues_a_job_whose_outcome_was_lost_and_finishes_it)
{
    gw_job_t job;
    gw_worker_t *w = NULL;
    int64_t now = cm_clock_now_ms();
    /* Running, leased until a moment ago, held by nobody: a lost outcome. */
    queue_job(now - 2 * cfg->job_lease_ms);
    claim_at(now - cfg->job_lease_ms - 1, &job);
    gw_store_job_free(&job);
    cr_assert_eq(gw_worker_start(cfg, store, ob, obs, &w), CM_OK);
    /* Wait (bounded) for the lanes' lease check and the job's second run. */
    int64_t deadline = cm_clock_mono_ms() + 10000;
    gw_queue_stats_t q = stats();
    while (q.done != 1 && cm_clock_mono_ms() < deadline) {
        cm_clock_sleep_ms(10); /* pacing between looks at the store */
        q = stats();
    }
    gw_worker_stop(&w);
    cr_assert(q.done == 1 && q.running == 0 && q.pending == 0,
              "done %lld running %lld pending %lld", (long long)q.done, (long long)q.running,
              (long long)q.pending);
    cm_buf_t b;
    cm_buf_init(&b, 1 << 16);
    cr_assert_eq(gw_store_job_json(store, job.id, &b), CM_OK);
    cr_assert(strstr(b.data, "\"attempts\":2"), "%s", b.data);
    cr_assert(strstr(b.data, "not stored (lease expired)"), "%s", b.data);
    cm_buf_free(&b);
}

/* ---- a saga's dead letter and its call's state ------------------------------------- */

/* Queues a call_analyzed event for call c1 of tenant t; request is its
 * custom_analysis_data. */
static void queue_call_analyzed(const char *request)
{
    static char body[1024];
    snprintf(body, sizeof body,
             "{\"event\":\"call_analyzed\",\"call\":{\"call_id\":\"c1\",\"agent_id\":\"ag\","
             "\"call_analysis\":{\"custom_analysis_data\":%s}}}",
             request);
    gw_event_in_t ev = {.provider = "retell",
                        .event_key = "retell:c1:call_analyzed",
                        .event_type = "call_analyzed",
                        .entity_id = "c1",
                        .tenant_id = "t",
                        .body = body,
                        .body_len = strlen(body),
                        .received_at_ms = cm_clock_now_ms(),
                        .job_kind = "retell.call_analyzed"};
    gw_ingest_t r;
    cr_assert_eq(gw_store_ingest(store, &ev, &r), CM_OK);
    cr_assert_eq(r, GW_INGEST_ACCEPTED);
}

/* Runs sql on another connection: the schema changes under the store. */
static void other_connection(const char *sql)
{
    sqlite3 *db = NULL;
    cr_assert_eq(sqlite3_open(cfg->db_path, &db), SQLITE_OK);
    cr_assert_eq(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK, "%s", sqlite3_errmsg(db));
    sqlite3_close(db);
}

/* Every write that sets an entity's state to "failed" is refused (a write the disk
 * refuses while others go through), or allowed again. */
static void refuse_failed_state(int refuse)
{
    other_connection(refuse ? "CREATE TRIGGER refuse_i BEFORE INSERT ON entities WHEN "
                              "NEW.state='failed' BEGIN SELECT RAISE(ABORT,'refused'); END;"
                              "CREATE TRIGGER refuse_u BEFORE UPDATE ON entities WHEN "
                              "NEW.state='failed' BEGIN SELECT RAISE(ABORT,'refused'); END;"
                            : "DROP TRIGGER refuse_i; DROP TRIGGER refuse_u;");
}

static const char *call_state(char *out, size_t cap)
{
    cr_assert_eq(gw_store_entity_state(store, "call", "c1", out, cap, NULL), CM_OK);
    return out;
}

/* A booking request without an e-mail fails for good: the job is dead-lettered and the
 * call's state is "failed". When the store refuses that state, the dead letter must not
 * be stored without it (the call would read "received" for good beside a dead job): the
 * job stays running, its lease brings it back, and its next run stores both. */
Test(worker, a_dead_lettered_sagas_call_state_is_stored_with_the_dead_letter_or_not_at_all)
{
    gw_job_t job;
    char err[CM_ERR_LEN] = "", state[32];
    lane_t *lane = &hand->lanes[0];
    queue_call_analyzed("{\"booking_start\":\"2050-09-05T09:00:00.000Z\",\"attendee_name\":\"A\"}");
    claim_at(cm_clock_now_ms(), &job);
    refuse_failed_state(1);
    job_result_t res = run_job(lane, &job, err);
    cr_assert_eq(res, JOB_DEAD, "%s", err);
    cr_assert_eq(finish(lane, &job, res, err), CM_ESTORE);
    gw_queue_stats_t q = stats();
    cr_assert(q.dead == 0 && q.running == 1,
              "dead %lld running %lld: a dead letter without "
              "the call's state",
              (long long)q.dead, (long long)q.running);
    cr_assert_str_eq(call_state(state, sizeof state), "received");
    refuse_failed_state(0);
    /* The lease runs out; the job's next run dead-letters it with the call's state. */
    int requeued = 0;
    int64_t later = cm_clock_now_ms() + cfg->job_lease_ms;
    cr_assert_eq(gw_store_reclaim(store, later, cfg->job_lease_ms, NULL, 0, &requeued), CM_OK);
    cr_assert_eq(requeued, 1);
    gw_job_t again;
    claim_at(later, &again);
    cr_assert_eq(again.id, job.id);
    res = run_job(lane, &again, err);
    cr_assert_eq(res, JOB_DEAD, "%s", err);
    cr_assert_eq(finish(lane, &again, res, err), CM_OK);
    q = stats();
    cr_assert(q.dead == 1 && q.running == 0, "dead %lld running %lld", (long long)q.dead,
              (long long)q.running);
    cr_assert_str_eq(call_state(state, sizeof state), "failed");
    cm_buf_t b;
    cm_buf_init(&b, 1 << 16);
    cr_assert_eq(gw_store_entity_json(store, "call", "c1", &b), CM_OK);
    cr_assert(strstr(b.data, "booking request incomplete"), "%s", b.data);
    cm_buf_free(&b);
    gw_store_job_free(&again);
    gw_store_job_free(&job);
}

/* A saga's job that gives up after max_attempts (here every save of its saga is refused)
 * is dead-lettered with the call's "failed" state too, in the same transaction. */
Test(worker, a_sagas_job_dead_lettered_after_max_attempts_fails_its_call_with_it)
{
    gw_job_t job;
    char err[CM_ERR_LEN] = "", state[32];
    lane_t *lane = &hand->lanes[0];
    queue_call_analyzed("{\"booking_start\":\"2050-09-05T09:00:00.000Z\",\"attendee_name\":\"A\","
                        "\"attendee_email\":\"a@b.example\"}");
    claim_at(cm_clock_now_ms(), &job);
    other_connection("CREATE TRIGGER refuse_saga BEFORE INSERT ON sagas "
                     "BEGIN SELECT RAISE(ABORT,'refused'); END;");
    job.attempts = cfg->max_attempts; /* this is the job's last attempt */
    lane->last_attempt = 1;
    job_result_t res = run_job(lane, &job, err);
    cr_assert_eq(res, JOB_RETRY, "%s", err);
    cr_assert_eq(finish(lane, &job, res, err), CM_OK);
    gw_queue_stats_t q = stats();
    cr_assert(q.dead == 1 && q.running == 0, "dead %lld running %lld", (long long)q.dead,
              (long long)q.running);
    cr_assert_str_eq(call_state(state, sizeof state), "failed");
    cm_buf_t b;
    cm_buf_init(&b, 1 << 16);
    cr_assert_eq(gw_store_entity_json(store, "call", "c1", &b), CM_OK);
    cr_assert(strstr(b.data, "gave up after"), "%s", b.data);
    cm_buf_free(&b);
    gw_store_job_free(&job);
}

/* A saga that has ended gave its call its state with its final save; a later job of the
 * call that ends in the dead letters (here: every attempt's write of the call refused)
 * must not overwrite it with "failed". */
Test(worker, a_dead_letter_leaves_the_state_of_a_call_whose_saga_ended)
{
    gw_job_t job;
    gw_saga_t sg;
    char err[CM_ERR_LEN] = "", state[32];
    lane_t *lane = &hand->lanes[0];
    memset(&sg, 0, sizeof sg);
    snprintf(sg.id, sizeof sg.id, "c1");
    snprintf(sg.tenant_id, sizeof sg.tenant_id, "t");
    snprintf(sg.state, sizeof sg.state, "completed");
    snprintf(sg.booking_uid, sizeof sg.booking_uid, "uid-1");
    snprintf(sg.call_state, sizeof sg.call_state, "booked");
    sg.deadline_ms = cm_clock_now_ms() + 60000;
    cr_assert_eq(gw_store_saga_put(store, &sg, "confirm", "done", NULL, cm_clock_now_ms()), CM_OK);
    queue_call_analyzed("{\"booking_start\":\"2050-09-05T09:00:00.000Z\",\"attendee_name\":\"A\","
                        "\"attendee_email\":\"a@b.example\"}");
    claim_at(cm_clock_now_ms(), &job);
    /* The replayed saga sets the call's state again: refuse that write (it leaves the
     * flags as they are, unlike the merge of the event's flag before it). */
    other_connection("CREATE TRIGGER refuse_call BEFORE UPDATE ON entities WHEN "
                     "NEW.flags=OLD.flags BEGIN SELECT RAISE(ABORT,'refused'); END;");
    job.attempts = cfg->max_attempts;
    lane->last_attempt = 1;
    job_result_t res = run_job(lane, &job, err);
    cr_assert_eq(res, JOB_RETRY, "%s", err);
    cr_assert_eq(finish(lane, &job, res, err), CM_OK);
    cr_assert_eq(stats().dead, 1);
    cr_assert_str_eq(call_state(state, sizeof state), "booked");
    gw_store_job_free(&job);
}
