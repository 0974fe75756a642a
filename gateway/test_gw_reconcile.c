/* test_gw_reconcile.c - what reconciliation needs of the store, on a real database: SQLite
 * on a real file (the default), or PostgreSQL when GW_STORE_TEST_BACKEND=postgres (ctest's
 * test_gw_reconcile_pg runs this binary under ci/pg run, which exports GW_PG_URL; each test
 * then starts from an empty schema). Findings stored and counted once, the saga repair as a
 * compare-and-set (not over a saga that moved on, nor under a running job) that makes the
 * call's job due at once, and the event look-up. Also the "reconcile" and
 * "providers.retell" configuration sections and their errors. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#ifdef GW_STORE_PG
#include <libpq-fe.h>
#endif

#include "gw_config.h"
#include "gw_store.h"

#define LEASE 60000

static char dir[64];
static gw_store_t *st;

static int on_pg(void)
{
    const char *b = getenv("GW_STORE_TEST_BACKEND");
    return b && !strcmp(b, "postgres");
}

#ifdef GW_STORE_PG
static void pg_reset(void)
{
    PGconn *c = PQconnectdb(getenv("GW_PG_URL"));
    cr_assert_eq(PQstatus(c), CONNECTION_OK, "%s", PQerrorMessage(c));
    PGresult *r = PQexec(
        c, "SET client_min_messages=warning; DROP SCHEMA public CASCADE; CREATE SCHEMA public");
    cr_assert_eq(PQresultStatus(r), PGRES_COMMAND_OK, "%s", PQerrorMessage(c));
    PQclear(r);
    PQfinish(c);
}
#endif

static void setup(void)
{
    char err[CM_ERR_LEN] = "", path[128];
    snprintf(dir, sizeof dir, "/tmp/test_gw_reconcile_XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/gw.db", dir);
    if (on_pg()) {
#ifdef GW_STORE_PG
        cr_assert_not_null(getenv("GW_PG_URL"), "run under ci/pg run");
        pg_reset();
        cr_assert_eq(gw_store_open_pg(getenv("GW_PG_URL"), NULL, &st, err), CM_OK, "%s", err);
#else
        cr_assert_fail("GW_STORE_TEST_BACKEND=postgres, but built without libpq");
#endif
    } else {
        cr_assert_eq(gw_store_open(path, 1, &st, err), CM_OK, "%s", err);
    }
}

static void teardown(void)
{
    char cmd[128];
    gw_store_close(&st);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    cr_assert_eq(system(cmd), 0);
}

TestSuite(reconcile_store, .init = setup, .fini = teardown);

static json_t *findings(const char *provider, const char *action, int limit)
{
    cm_buf_t b;
    cm_buf_init(&b, 1 << 20);
    cr_assert_eq(gw_store_findings_json(st, provider, action, NULL, limit, &b), CM_OK);
    json_t *v = json_loads(b.data, 0, NULL);
    cr_assert_not_null(v, "%s", b.data);
    cm_buf_free(&b);
    return v;
}

static int add(const char *provider, const char *kind, const char *object, const char *action,
               int64_t at)
{
    gw_finding_t f = {.at_ms = at,
                      .tenant_id = "acme",
                      .provider = provider,
                      .kind = kind,
                      .saga_id = "call_1",
                      .object_id = object,
                      .action = action,
                      .detail = "why"};
    int is_new = -1;
    cr_assert_eq(gw_store_finding_add(st, &f, &is_new), CM_OK);
    return is_new;
}

Test(reconcile_store, a_finding_is_stored_once_and_listed_newest_first)
{
    cr_assert_eq(add("calcom", "booking_without_saga", "bk_1", "flagged", 1000), 1);
    cr_assert_eq(add("calcom", "booking_without_saga", "bk_1", "flagged", 2000), 0,
                 "seen again by a later pass: known");
    cr_assert_eq(add("calcom", "booking_unrecorded", "bk_1", "repaired", 3000), 1,
                 "another kind of drift on the same object is another finding");
    cr_assert_eq(add("stripe", "refund_by_hand", "pi_1", "flagged", 4000), 1);
    json_t *v = findings(NULL, NULL, 100);
    cr_assert_eq(json_integer_value(json_object_get(v, "count")), 3);
    json_t *first = json_array_get(json_object_get(v, "findings"), 0);
    cr_assert_str_eq(json_string_value(json_object_get(first, "object_id")), "pi_1");
    cr_assert_eq(json_integer_value(json_object_get(first, "at_ms")), 4000);
    cr_assert_str_eq(json_string_value(json_object_get(first, "tenant_id")), "acme");
    cr_assert_str_eq(json_string_value(json_object_get(first, "detail")), "why");
    json_t *last = json_array_get(json_object_get(v, "findings"), 2);
    cr_assert_eq(json_integer_value(json_object_get(last, "at_ms")), 1000,
                 "the known one keeps its first time");
    json_decref(v);
    v = findings("calcom", "flagged", 100);
    cr_assert_eq(json_integer_value(json_object_get(v, "count")), 1);
    json_decref(v);
    v = findings(NULL, NULL, 1);
    cr_assert_eq(json_integer_value(json_object_get(v, "count")), 1);
    json_decref(v);
    /* A scoped token's list: its tenant's findings only, before the limit. */
    gw_finding_t other = {.at_ms = 5000,
                          .tenant_id = "globex",
                          .provider = "stripe",
                          .kind = "refund_by_hand",
                          .object_id = "pi_2",
                          .action = "flagged"};
    int is_new = -1;
    cr_assert_eq(gw_store_finding_add(st, &other, &is_new), CM_OK);
    cm_buf_t b;
    cm_buf_init(&b, 1 << 20);
    cr_assert_eq(gw_store_findings_json(st, NULL, NULL, "acme", 1, &b), CM_OK);
    cr_assert(strstr(b.data, "\"object_id\":\"pi_1\""), "the newest of acme's: %s", b.data);
    cr_assert(strstr(b.data, "\"count\":1"), "%s", b.data);
    cm_buf_reset(&b);
    cr_assert_eq(gw_store_findings_json(st, "stripe", NULL, "globex", 10, &b), CM_OK);
    cr_assert(strstr(b.data, "\"object_id\":\"pi_2\""), "%s", b.data);
    cr_assert(strstr(b.data, "\"count\":1"), "%s", b.data);
    cm_buf_free(&b);
    gw_finding_t bad = {.provider = "calcom", .kind = "k", .action = "flagged"};
    is_new = 1;
    cr_assert_eq(gw_store_finding_add(st, &bad, &is_new), CM_EINVAL, "no object id");
    cr_assert_eq(is_new, 0);
}

static void saga(const char *id, const char *state)
{
    gw_saga_t sg = {.wanted_ms = 1, .deadline_ms = 999999999, .created_at_ms = 1};
    snprintf(sg.id, sizeof sg.id, "%s", id);
    snprintf(sg.tenant_id, sizeof sg.tenant_id, "acme");
    snprintf(sg.state, sizeof sg.state, "%s", state);
    cr_assert_eq(gw_store_saga_put(st, &sg, "start", "done", NULL, 1000), CM_OK);
}

static int fix_booking(const char *id, const char *expect, const char *uid)
{
    gw_saga_fix_t fx = {.saga_id = id,
                        .expect = expect,
                        .state = "booked",
                        .booking_uid = uid,
                        .step = "book",
                        .detail = "reconciled"};
    int changed = -1;
    cr_assert_eq(gw_store_saga_fix(st, &fx, 5000, &changed), CM_OK);
    return changed;
}

Test(reconcile_store, a_booking_is_recorded_only_on_the_saga_as_it_was_read)
{
    saga("call_1", "slot_chosen");
    cr_assert_eq(fix_booking("call_1", "started", "bk_1"), 0, "the saga is not in that state");
    cr_assert_eq(fix_booking("call_1", "slot_chosen", "bk_1"), 1);
    gw_saga_t sg;
    cr_assert_eq(gw_store_saga_get(st, "call_1", &sg), CM_OK);
    cr_assert_str_eq(sg.state, "booked");
    cr_assert_str_eq(sg.booking_uid, "bk_1");
    cr_assert_eq(fix_booking("call_1", "slot_chosen", "bk_2"), 0, "it has moved on");
    cr_assert_eq(fix_booking("call_none", "slot_chosen", "bk_2"), 0, "no such saga");
    /* One step-log line, "book done", with the detail. */
    cm_buf_t b;
    cm_buf_init(&b, 1 << 20);
    cr_assert_eq(gw_store_saga_json(st, "call_1", &b), CM_OK);
    json_t *v = json_loads(b.data, 0, NULL);
    cr_assert_not_null(v, "%s", b.data);
    json_t *steps = json_object_get(json_object_get(v, "history"), "steps");
    cr_assert_eq(json_array_size(steps), 2, "%s", b.data);
    json_t *s1 = json_array_get(steps, 1);
    cr_assert_str_eq(json_string_value(json_object_get(s1, "step")), "book");
    cr_assert_str_eq(json_string_value(json_object_get(s1, "phase")), "done");
    cr_assert_str_eq(json_string_value(json_object_get(s1, "detail")), "reconciled");
    json_decref(v);
    cm_buf_free(&b);
    /* A booking on a saga that has one is never overwritten, whatever its state. */
    saga("call_2", "failed");
    gw_saga_fix_t rec = {
        .saga_id = "call_2", .expect = "failed", .booking_uid = "bk_3", .step = "reconcile"};
    int changed = -1;
    cr_assert_eq(gw_store_saga_fix(st, &rec, 6000, &changed), CM_OK);
    cr_assert_eq(changed, 1);
    rec.booking_uid = "bk_4";
    cr_assert_eq(gw_store_saga_fix(st, &rec, 6000, &changed), CM_OK);
    cr_assert_eq(changed, 0);
    cr_assert_eq(gw_store_saga_get(st, "call_2", &sg), CM_OK);
    cr_assert_str_eq(sg.booking_uid, "bk_3");
    cr_assert_str_eq(sg.state, "failed", "state kept when none is given");
}

static gw_event_in_t call_event(const char *call_id, char *key, size_t cap)
{
    snprintf(key, cap, "retell:%s:call_analyzed", call_id);
    gw_event_in_t ev = {.provider = "retell",
                        .event_key = key,
                        .event_type = "call_analyzed",
                        .entity_id = call_id,
                        .tenant_id = "acme",
                        .body = "{}",
                        .body_len = 2,
                        .received_at_ms = 1000,
                        .job_kind = "retell.call_analyzed"};
    return ev;
}

Test(reconcile_store, a_saga_whose_job_runs_is_left_and_a_waiting_job_is_made_due)
{
    char key[96];
    gw_ingest_t r;
    gw_job_t job;
    int64_t next = 0;
    saga("call_1", "slot_chosen");
    gw_event_in_t ev = call_event("call_1", key, sizeof key);
    cr_assert_eq(gw_store_ingest(st, &ev, &r), CM_OK);
    cr_assert_eq(gw_store_claim(st, 2000, LEASE, &job, &next), CM_OK);
    cr_assert_eq(fix_booking("call_1", "slot_chosen", "bk_1"), 0,
                 "a worker is on the saga: its own save would overwrite the repair");
    /* The worker's attempt ends: retry in ten minutes. */
    cr_assert_eq(gw_store_job_retry(st, job.id, 602000, "Cal.com reset", 2001), CM_OK);
    gw_store_job_free(&job);
    cr_assert_eq(gw_store_claim(st, 5000, LEASE, &job, &next), CM_ENOTFOUND);
    cr_assert_eq(next, 602000);
    cr_assert_eq(fix_booking("call_1", "slot_chosen", "bk_1"), 1);
    cr_assert_eq(gw_store_claim(st, 5000, LEASE, &job, &next), CM_OK,
                 "the repaired saga's job is due at once");
    cr_assert_str_eq(job.entity_id, "call_1");
    gw_store_job_free(&job);
}

Test(reconcile_store, an_event_is_looked_up_by_its_key)
{
    char key[96];
    gw_ingest_t r;
    int exists = -1;
    cr_assert_eq(gw_store_event_exists(st, "retell:call_1:call_analyzed", &exists), CM_OK);
    cr_assert_eq(exists, 0);
    gw_event_in_t ev = call_event("call_1", key, sizeof key);
    cr_assert_eq(gw_store_ingest(st, &ev, &r), CM_OK);
    cr_assert_eq(gw_store_event_exists(st, "retell:call_1:call_analyzed", &exists), CM_OK);
    cr_assert_eq(exists, 1);
    cr_assert_eq(gw_store_event_exists(st, "retell:call_1:call_ended", &exists), CM_OK);
    cr_assert_eq(exists, 0);
}

/* ---- configuration ------------------------------------------------------------------- */

static const char base[] =
    "{\"data_dir\":\"/tmp\",\"admin_token\":\"t\",\"providers\":{\"calcom\":{\"base_url\":"
    "\"http://127.0.0.1:1\"}%s},\"tenants\":[{\"id\":\"acme\",\"retell\":{\"agent_ids\":[\"a\"],"
    "\"api_keys\":[\"k\"]},\"calcom\":{\"api_key\":\"c\",\"event_type_id\":1}}]%s}";

static gw_config_t *load(const char *providers, const char *rest, char *report, size_t cap, int *n)
{
    char path[64] = "/tmp/test_gw_reconcile_cfg_XXXXXX", text[2048];
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    int len = snprintf(text, sizeof text, base, providers, rest);
    cr_assert_eq(write(fd, text, (size_t)len), len);
    close(fd);
    FILE *rep = fmemopen(report, cap, "w");
    gw_config_t *cfg = NULL;
    *n = 0;
    cm_err_t rc = gw_config_load(path, &cfg, rep, n);
    fclose(rep);
    unlink(path);
    cr_assert_eq(rc == CM_OK, cfg != NULL, "a config exactly when the load succeeds");
    return cfg;
}

Test(reconcile_config, absent_sections_mean_no_retell_and_no_timer)
{
    char rep[1024] = "";
    int n = 0;
    gw_config_t *cfg = load("", "", rep, sizeof rep, &n);
    cr_assert_not_null(cfg, "%s", rep);
    cr_assert_null(cfg->retell.base_url);
    cr_assert_eq(cfg->reconcile_enabled, 0);
    cr_assert_eq(cfg->reconcile_interval_ms, 300000);
    cr_assert_eq(cfg->reconcile_lookback_ms, 86400000);
    cr_assert_eq(cfg->reconcile_grace_ms, 120000);
    gw_config_free(&cfg);
}

Test(reconcile_config, the_sections_are_read)
{
    char rep[1024] = "";
    int n = 0;
    gw_config_t *cfg = load(",\"retell\":{\"base_url\":\"http://127.0.0.1:2\",\"timeout_ms\":700}",
                            ",\"reconcile\":{\"interval_ms\":5000,\"lookback_ms\":3600000,"
                            "\"grace_ms\":0}",
                            rep, sizeof rep, &n);
    cr_assert_not_null(cfg, "%s", rep);
    cr_assert_str_eq(cfg->retell.base_url, "http://127.0.0.1:2");
    cr_assert_eq(cfg->retell.read_timeout_ms, 700);
    cr_assert_eq(cfg->retell.rate_per_min, 60);
    cr_assert_eq(cfg->reconcile_enabled, 1, "the section given: periodic");
    cr_assert_eq(cfg->reconcile_interval_ms, 5000);
    cr_assert_eq(cfg->reconcile_lookback_ms, 3600000);
    cr_assert_eq(cfg->reconcile_grace_ms, 0);
    gw_config_free(&cfg);
    cfg = load("", ",\"reconcile\":{\"enabled\":false}", rep, sizeof rep, &n);
    cr_assert_not_null(cfg, "%s", rep);
    cr_assert_eq(cfg->reconcile_enabled, 0);
    gw_config_free(&cfg);
}

Test(reconcile_config, mistakes_are_named)
{
    char rep[2048] = "";
    int n = 0;
    gw_config_t *cfg =
        load(",\"retell\":{\"base_url\":\"ftp://x\"}",
             ",\"reconcile\":{\"enabled\":1,\"interval_ms\":10,\"lookback_ms\":60000,"
             "\"grace_ms\":60000,\"every\":1}",
             rep, sizeof rep, &n);
    cr_assert_null(cfg);
    cr_assert_eq(n, 5, "%s", rep);
    cr_assert(strstr(rep, "providers.retell: \"base_url\" must start with http://"), "%s", rep);
    cr_assert(strstr(rep, "reconcile.enabled: must be true or false"), "%s", rep);
    cr_assert(strstr(rep, "reconcile: \"interval_ms\" must be an integer from 1000"), "%s", rep);
    cr_assert(strstr(rep, "reconcile.grace_ms: 60000 ms leaves nothing to look at"), "%s", rep);
    cr_assert(strstr(rep, "reconcile: unknown key \"every\""), "%s", rep);
}
