/* gw_reconcile.c - the reconciliation passes (contract in gw_reconcile.h). */
#include "gw_reconcile.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cm_clock.h"
#include "cm_json.h"
#include "cm_log.h"
#include "gw_calcom.h"
#include "gw_periodic.h"
#include "gw_retell.h"
#include "gw_saga.h"

#define PAGE 100
#define MAX_PAGES 100 /* 10,000 objects per provider and tenant in one pass */
#define CALCOM_BOOKINGS_VERSION "cal-api-version: 2024-08-13"
#define STRIPE_VERSION "Stripe-Version: 2024-06-20"

struct gw_reconcile {
    const gw_config_t *cfg;
    gw_store_t *store;
    gw_outbound_t *ob;
    gw_obs_t *obs;
    gw_worker_t *worker;
    gw_mfamily_t *runs, *findings, *recovered;
    pthread_mutex_t pass_mu; /* one pass at a time; guards http and rng */
    cm_http_client_t *http;
    cm_rand_t rng;
    int stop; /* atomic: set before the timer is stopped, read by a pass between items */
    gw_periodic_t *timer; /* the passes every interval, when enabled */
};

/* One pass's report. */
typedef struct {
    gw_reconcile_t *r;
    json_t *findings, *errors;
    int checked_calcom, checked_stripe, checked_retell;
    int recovered;
} pass_t;

static int stopping(gw_reconcile_t *r)
{
    return __atomic_load_n(&r->stop, __ATOMIC_RELAXED);
}

static void pass_error(pass_t *ps, const char *provider, const char *tenant, const char *what)
{
    char line[CM_ERR_LEN + 96];
    snprintf(line, sizeof line, "%s (tenant %s): %s", provider, tenant, what);
    json_array_append_new(ps->errors, json_string(line));
    CM_WARN("gw.reconcile", "%s", line);
}

/* Stores and counts a finding (once per provider, kind and object) and lists it in the
 * report. A store failure is a pass error: the finding is made again next time. */
static void finding(pass_t *ps, const gw_tenant_t *t, const char *provider, const char *kind,
                    const char *saga_id, const char *object_id, const char *action,
                    const char *detail)
{
    gw_finding_t f = {.at_ms = cm_clock_now_ms(),
                      .tenant_id = t->id,
                      .provider = provider,
                      .kind = kind,
                      .saga_id = saga_id,
                      .object_id = object_id,
                      .action = action,
                      .detail = detail};
    int is_new = 0;
    cm_err_t rc = gw_store_finding_add(ps->r->store, &f, &is_new);
    if (rc) {
        pass_error(ps, provider, t->id, "store: a finding was not stored");
        return;
    }
    if (is_new) {
        gw_obs_count(ps->r->findings, GW_LV(provider, kind, action));
        CM_WARN("gw.reconcile", "%s %s: %s %s (saga %s)%s%s", provider, kind, action, object_id,
                saga_id ? saga_id : "-", detail ? ": " : "", detail ? detail : "");
    }
    json_array_append_new(
        ps->findings, json_pack("{s:s,s:s,s:s,s:s?,s:s,s:s,s:s?,s:b}", "provider", provider, "kind",
                                kind, "tenant_id", t->id, "saga_id", saga_id, "object_id",
                                object_id, "action", action, "detail", detail, "new", is_new));
}

/* A GET through provider p's policy stack; *ans the 200's JSON. 0, or -1 with err set. */
static int get_json(pass_t *ps, gw_prov_rt_t *p, const char *op, const char *url,
                    const char *const *hdrs, const char *rl_key, json_t **ans, char *err)
{
    cm_http_response_t resp;
    gw_policy_outcome_t po;
    gw_call_t call = {.operation = op,
                      .safe = 1,
                      .rl_key = rl_key,
                      .req = {.method = "GET", .url = url, .headers = hdrs}};
    *ans = NULL;
    gw_policy_status_t st =
        gw_outbound_call(ps->r->ob, p, ps->r->http, &ps->r->rng, &call, &resp, &po);
    int rc = -1;
    if (st != GW_POL_DONE && !(st == GW_POL_FAILED && po.last.kind == GW_ATT_OK))
        cm_errf(err, "%s %s after %d attempt(s)%s%s", op, gw_policy_status_name(st), po.attempts,
                resp.err[0] ? ": " : "", resp.err);
    else if (resp.status != 200)
        cm_errf(err, "%s: HTTP %ld: %.160s", op, resp.status, resp.body.data ? resp.body.data : "");
    else if (cm_json_parse(resp.body.data, resp.body.len, resp.body.toobig, ans, err) == CM_OK)
        rc = 0;
    cm_http_response_free(&resp);
    return rc;
}

static int in(const char *s, const char *const *set)
{
    for (; *set; set++)
        if (!strcmp(s, *set))
            return 1;
    return 0;
}

/* Sagas that ended without keeping their booking and deposit (compensation ran, or they
 * failed before either). */
static const char *const compensated[] = {"compensated", "failed_payment", "cancelled_by_attendee",
                                          NULL};
static const char *const failed[] = {"failed", "failed_no_slot", "needs_human", NULL};

/* ---- Cal.com ------------------------------------------------------------------------ */

static void calcom_booking(pass_t *ps, const gw_tenant_t *t, const json_t *b)
{
    gw_reconcile_t *r = ps->r;
    const char *sid = cm_json_str(b, "metadata.saga_id", NULL);
    const char *uid = cm_json_str(b, "uid", NULL);
    const char *status = cm_json_str(b, "status", "");
    char detail[384], err[CM_ERR_LEN] = "";
    gw_saga_t sg;
    if (!sid || !uid)
        return; /* not one of ours */
    ps->checked_calcom++;
    int live = strcmp(status, "cancelled") && strcmp(status, "rejected");
    cm_err_t rc = gw_store_saga_get(r->store, sid, &sg);
    if (rc == CM_ENOTFOUND) {
        if (live) {
            snprintf(detail, sizeof detail,
                     "booking %.128s (%s) carries saga id %.128s, which the gateway never had", uid,
                     status, sid);
            finding(ps, t, "calcom", "booking_without_saga", sid, uid, "flagged", detail);
        }
        return;
    }
    if (rc) {
        pass_error(ps, "calcom", t->id, "store: cannot read a saga");
        return;
    }
    if (!live || !strcmp(sg.booking_uid, uid))
        return; /* cancelled, or the saga's own */
    int changed = 0;
    if ((!strcmp(sg.state, "started") || !strcmp(sg.state, "slot_chosen")) && !sg.booking_uid[0]) {
        snprintf(detail, sizeof detail,
                 "reconciled: booking %.128s found at Cal.com while the saga waited in %s", uid,
                 sg.state);
        gw_saga_fix_t fx = {.saga_id = sid,
                            .expect = sg.state,
                            .state = "booked",
                            .booking_uid = uid,
                            .step = "book",
                            .detail = detail};
        if (gw_store_saga_fix(r->store, &fx, cm_clock_now_ms(), &changed))
            pass_error(ps, "calcom", t->id, "store: the booking was not recorded");
        else if (changed) {
            finding(ps, t, "calcom", "booking_unrecorded", sid, uid, "repaired", detail);
            if (r->worker)
                gw_worker_notify(r->worker);
        }
    } else if (in(sg.state, compensated)) {
        /* The saga gave up and compensated without knowing of this booking: nobody expects
         * it, and it holds the slot (and the host's time). */
        gw_calcom_ctx_t cc = {
            .ob = r->ob, .http = r->http, .rng = &r->rng, .api_key = t->calcom_api_key};
        gw_outcome_t o =
            gw_calcom_cancel(&cc, uid, "reconciliation: the booking's saga was compensated", err);
        if (o == GW_OUT_RETRY) {
            pass_error(ps, "calcom", t->id, err);
            return;
        }
        if (o != GW_OUT_OK) {
            snprintf(detail, sizeof detail, "saga %s is %s; cancelling booking %.128s failed: %s",
                     sid, sg.state, uid, err);
            finding(ps, t, "calcom", "booking_after_compensation", sid, uid, "flagged", detail);
            return;
        }
        snprintf(detail, sizeof detail, "reconciled: booking %.128s cancelled, saga was %s", uid,
                 sg.state);
        gw_saga_fix_t fx = {.saga_id = sid,
                            .expect = sg.state,
                            .booking_uid = sg.booking_uid[0] ? NULL : uid,
                            .mark_cancelled = 1,
                            .step = "cancel",
                            .detail = detail};
        if (gw_store_saga_fix(r->store, &fx, cm_clock_now_ms(), &changed))
            pass_error(ps, "calcom", t->id, "store: the cancellation was not recorded");
        finding(ps, t, "calcom", "booking_after_compensation", sid, uid, "repaired", detail);
    } else if (in(sg.state, failed) && !sg.booking_uid[0]) {
        /* Recorded, so that it is not lost, but not acted on: whether the caller keeps the
         * appointment of a call whose saga failed is a person's call. */
        snprintf(detail, sizeof detail,
                 "booking %.128s is live at Cal.com but saga %s ended %s; recorded on the saga, "
                 "a person decides whether it stays",
                 uid, sid, sg.state);
        gw_saga_fix_t fx = {.saga_id = sid,
                            .expect = sg.state,
                            .booking_uid = uid,
                            .step = "reconcile",
                            .detail = detail};
        if (gw_store_saga_fix(r->store, &fx, cm_clock_now_ms(), &changed))
            pass_error(ps, "calcom", t->id, "store: the booking was not recorded");
        finding(ps, t, "calcom", "booking_on_failed_saga", sid, uid, "flagged", detail);
    } else if (sg.booking_uid[0]) {
        snprintf(detail, sizeof detail, "saga %s (%s) has booking %.128s; this is another", sid,
                 sg.state, sg.booking_uid);
        finding(ps, t, "calcom", "duplicate_booking", sid, uid, "flagged", detail);
    }
    /* else: compensating, or a state with the booking step still ahead of it and a booking
     * already there - the saga's own run is on it; the next pass sees where it went. */
}

static void calcom_tenant(pass_t *ps, const gw_tenant_t *t, int64_t since_ms)
{
    gw_reconcile_t *r = ps->r;
    gw_prov_rt_t *p = gw_outbound_provider(r->ob, "calcom");
    char url[768], auth[512], after[25], err[CM_ERR_LEN] = "";
    if (!p || !t->calcom_api_key || t->calcom_event_type_id <= 0)
        return;
    cm_clock_iso8601(since_ms, after);
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", t->calcom_api_key);
    const char *hdrs[] = {auth, CALCOM_BOOKINGS_VERSION, NULL};
    for (int page = 0, skip = 0; page < MAX_PAGES && !stopping(r); page++) {
        json_t *ans = NULL;
        snprintf(url, sizeof url, "%s/v2/bookings?eventTypeId=%lld&afterStart=%s&take=%d&skip=%d",
                 p->cfg->base_url, (long long)t->calcom_event_type_id, after, PAGE, skip);
        if (get_json(ps, p, "list_bookings", url, hdrs, t->calcom_api_key, &ans, err)) {
            pass_error(ps, "calcom", t->id, err);
            return;
        }
        const json_t *list = json_object_get(ans, "data");
        if (json_is_object(list)) /* some versions wrap the list: {"bookings":[...]} */
            list = json_object_get(list, "bookings");
        size_t i, n = json_array_size(list);
        json_t *b;
        json_array_foreach(list, i, b)
        {
            if (stopping(r))
                break;
            calcom_booking(ps, t, b);
        }
        int more = json_is_true(cm_json_path(ans, "pagination.hasNextPage"));
        json_decref(ans);
        if (!more || !n)
            break;
        skip += (int)n;
    }
}

/* ---- Stripe ------------------------------------------------------------------------- */

/* Lists every object of path created since since_ms (paged with starting_after) into all. */
static int stripe_list(pass_t *ps, gw_prov_rt_t *p, const gw_tenant_t *t, const char *op,
                       const char *path, int64_t since_ms, json_t *all, char *err)
{
    char url[768], auth[512], last[160] = "";
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", t->stripe_api_key);
    const char *hdrs[] = {auth, STRIPE_VERSION, NULL};
    for (int page = 0; page < MAX_PAGES && !stopping(ps->r); page++) {
        json_t *ans = NULL;
        int n = snprintf(url, sizeof url, "%s%s?limit=%d&created%%5Bgte%%5D=%lld", p->cfg->base_url,
                         path, PAGE, (long long)(since_ms / 1000));
        if (last[0] && n > 0 && (size_t)n < sizeof url)
            snprintf(url + n, sizeof url - (size_t)n, "&starting_after=%s", last);
        if (get_json(ps, p, op, url, hdrs, t->stripe_api_key, &ans, err))
            return -1;
        const json_t *data = json_object_get(ans, "data");
        size_t i;
        json_t *o;
        json_array_foreach(data, i, o) json_array_append(all, o);
        const char *id =
            json_array_size(data)
                ? cm_json_str(json_array_get(data, json_array_size(data) - 1), "id", "")
                : "";
        snprintf(last, sizeof last, "%s", id);
        int more = json_is_true(json_object_get(ans, "has_more")) && last[0];
        json_decref(ans);
        if (!more)
            break;
    }
    return 0;
}

static void stripe_intent(pass_t *ps, const gw_tenant_t *t, const json_t *pi, const json_t *refunds)
{
    gw_reconcile_t *r = ps->r;
    const char *sid = cm_json_str(pi, "metadata.saga_id", NULL);
    const char *id = cm_json_str(pi, "id", NULL);
    const char *status = cm_json_str(pi, "status", "");
    char detail[384];
    gw_saga_t sg;
    if (!sid || !id)
        return;
    ps->checked_stripe++;
    if (strcmp(status, "succeeded"))
        return; /* nothing was taken (or not yet): nothing to give back or record */
    const json_t *refund = json_object_get(refunds, id);
    cm_err_t rc = gw_store_saga_get(r->store, sid, &sg);
    if (rc == CM_ENOTFOUND) {
        if (!refund) {
            snprintf(detail, sizeof detail,
                     "payment intent %.128s succeeded with saga id %.128s, which the gateway "
                     "never had",
                     id, sid);
            finding(ps, t, "stripe", "charge_without_saga", sid, id, "flagged", detail);
        }
        return;
    }
    if (rc) {
        pass_error(ps, "stripe", t->id, "store: cannot read a saga");
        return;
    }
    if (!strcmp(sg.payment_intent, id)) {
        /* The saga's own charge: refunded at Stripe while the saga believes it is paid? */
        if (refund && !sg.refunded && strcmp(sg.state, "compensating")) {
            snprintf(detail, sizeof detail,
                     "refund %s of payment intent %.128s was made at Stripe, not by the gateway; "
                     "saga %s is %s and believes it is paid",
                     cm_json_str(refund, "id", "?"), id, sid, sg.state);
            finding(ps, t, "stripe", "refund_by_hand", sid, id, "flagged", detail);
        } else if (!refund && !sg.refunded && in(sg.state, compensated)) {
            snprintf(detail, sizeof detail,
                     "saga %s ended %s but payment intent %.128s was never refunded", sid, sg.state,
                     id);
            finding(ps, t, "stripe", "charge_after_compensation", sid, id, "flagged", detail);
        }
        return;
    }
    if (refund)
        return; /* a charge nobody keeps: nothing owed */
    if (!strcmp(sg.state, "booked") && !sg.payment_intent[0]) {
        int changed = 0;
        snprintf(detail, sizeof detail,
                 "reconciled: payment intent %.128s succeeded at Stripe while the saga waited "
                 "to charge",
                 id);
        gw_saga_fix_t fx = {.saga_id = sid,
                            .expect = "booked",
                            .state = "charged",
                            .payment_intent = id,
                            .step = "charge",
                            .detail = detail};
        if (gw_store_saga_fix(r->store, &fx, cm_clock_now_ms(), &changed))
            pass_error(ps, "stripe", t->id, "store: the charge was not recorded");
        else if (changed) {
            finding(ps, t, "stripe", "charge_unrecorded", sid, id, "repaired", detail);
            if (r->worker)
                gw_worker_notify(r->worker);
        }
    } else if (in(sg.state, compensated) || in(sg.state, failed)) {
        snprintf(detail, sizeof detail,
                 "payment intent %.128s succeeded and was never refunded, but saga %s ended %s "
                 "without it",
                 id, sid, sg.state);
        finding(ps, t, "stripe", "charge_after_compensation", sid, id, "flagged", detail);
    } else if (sg.payment_intent[0]) {
        snprintf(detail, sizeof detail, "saga %s (%s) was paid by %.128s; this is a second charge",
                 sid, sg.state, sg.payment_intent);
        finding(ps, t, "stripe", "duplicate_charge", sid, id, "flagged", detail);
    }
}

static void stripe_tenant(pass_t *ps, const gw_tenant_t *t, int64_t since_ms)
{
    gw_prov_rt_t *p = gw_outbound_provider(ps->r->ob, "stripe");
    char err[CM_ERR_LEN] = "";
    if (!p || !t->stripe_api_key)
        return;
    json_t *refunds = json_array(), *intents = json_array(), *by_pi = json_object();
    /* Refunds first: an intent refunded between the two lists is then at worst seen as
     * not refunded, and flagged as such at the next pass, never wrongly as refunded. */
    if (stripe_list(ps, p, t, "list_refunds", "/v1/refunds", since_ms, refunds, err) ||
        stripe_list(ps, p, t, "list_intents", "/v1/payment_intents", since_ms, intents, err)) {
        pass_error(ps, "stripe", t->id, err);
    } else {
        size_t i;
        json_t *o;
        json_array_foreach(refunds, i, o)
        {
            const char *pi = cm_json_str(o, "payment_intent", NULL);
            if (pi && strcmp(cm_json_str(o, "status", "succeeded"), "failed") &&
                strcmp(cm_json_str(o, "status", ""), "canceled"))
                json_object_set(by_pi, pi, o);
        }
        json_array_foreach(intents, i, o)
        {
            if (stopping(ps->r))
                break;
            stripe_intent(ps, t, o, by_pi);
        }
    }
    json_decref(by_pi);
    json_decref(intents);
    json_decref(refunds);
}

/* ---- Retell ------------------------------------------------------------------------- */

/* Feeds a call the gateway never heard of into the intake, as its call_analyzed webhook. */
static void retell_recover(pass_t *ps, const gw_tenant_t *t, gw_retell_ctx_t *rc_,
                           const char *call_id)
{
    gw_reconcile_t *r = ps->r;
    char err[CM_ERR_LEN] = "", key[192], detail[256];
    json_t *call = NULL;
    gw_retell_out_t o = gw_retell_get_call(rc_, call_id, &call, err);
    if (o != GW_RETELL_OK) {
        if (o != GW_RETELL_NOTFOUND)
            pass_error(ps, "retell", t->id, err);
        return;
    }
    if (gw_config_tenant_by_agent(r->cfg, cm_json_str(call, "agent_id", "")) != t) {
        json_decref(call);
        return; /* moved to another agent meanwhile: not this tenant's */
    }
    json_t *ev = json_pack("{s:s,s:O}", "event", "call_analyzed", "call", call);
    char *body = ev ? json_dumps(ev, JSON_COMPACT) : NULL;
    json_decref(ev);
    json_decref(call);
    if (!body) {
        pass_error(ps, "retell", t->id, "cannot encode a recovered call");
        return;
    }
    snprintf(key, sizeof key, "retell:%s:call_analyzed", call_id);
    gw_event_in_t in = {.provider = "retell",
                        .event_key = key,
                        .event_type = "call_analyzed",
                        .entity_id = call_id,
                        .tenant_id = t->id,
                        .headers = "{\"x-gw-source\":\"reconcile\"}",
                        .body = body,
                        .body_len = strlen(body),
                        .received_at_ms = cm_clock_now_ms(),
                        .job_kind = "retell.call_analyzed"};
    gw_ingest_t res = GW_INGEST_DUPLICATE;
    cm_err_t rc = gw_store_ingest(r->store, &in, &res);
    free(body);
    if (rc) {
        pass_error(ps, "retell", t->id, "store: a recovered call was not stored");
        return;
    }
    if (res == GW_INGEST_DUPLICATE)
        return; /* its webhook came in meanwhile */
    ps->recovered++;
    gw_obs_count(r->recovered, GW_LV(t->id));
    if (r->worker)
        gw_worker_notify(r->worker);
    snprintf(detail, sizeof detail,
             "call %.128s ended without its call_analyzed webhook reaching the gateway; taken "
             "from Retell's API (is the agent's webhook URL right?)",
             call_id);
    finding(ps, t, "retell", "call_recovered", call_id, call_id, "repaired", detail);
}

static void retell_call(pass_t *ps, const gw_tenant_t *t, gw_retell_ctx_t *rc_, const json_t *c,
                        int64_t settled_ms)
{
    const char *id = cm_json_str(c, "call_id", NULL);
    char key[192];
    int exists = 0;
    if (!id)
        return;
    ps->checked_retell++;
    /* Only an ended, analysed call has a call_analyzed to miss; one that ended moments ago
     * may have its webhook on the way (Retell retries for a while). */
    if (strcmp(cm_json_str(c, "call_status", ""), "ended") &&
        strcmp(cm_json_str(c, "call_status", ""), "not_connected"))
        return;
    if (!json_is_object(json_object_get(c, "call_analysis")))
        return;
    if (cm_json_int(c, "end_timestamp", 0) > settled_ms)
        return;
    snprintf(key, sizeof key, "retell:%s:call_analyzed", id);
    if (gw_store_event_exists(ps->r->store, key, &exists)) {
        pass_error(ps, "retell", t->id, "store: cannot look an event up");
        return;
    }
    if (!exists)
        retell_recover(ps, t, rc_, id);
}

static void retell_tenant(pass_t *ps, const gw_tenant_t *t, int64_t since_ms, int64_t settled_ms)
{
    gw_reconcile_t *r = ps->r;
    char err[CM_ERR_LEN] = "", key[160] = "";
    if (!gw_outbound_provider(r->ob, "retell") || !t->nretell_keys || !t->nagent_ids)
        return;
    gw_retell_ctx_t rc_ = {
        .ob = r->ob, .http = r->http, .rng = &r->rng, .api_key = t->retell_keys[0]};
    for (int page = 0; page < MAX_PAGES && !stopping(r); page++) {
        json_t *ans = NULL;
        gw_retell_out_t o =
            gw_retell_list_calls(&rc_, (const char *const *)t->agent_ids, t->nagent_ids, since_ms,
                                 PAGE, key[0] ? key : NULL, &ans, err);
        if (o != GW_RETELL_OK) {
            pass_error(ps, "retell", t->id, err);
            return;
        }
        size_t i;
        json_t *c;
        json_array_foreach(json_object_get(ans, "items"), i, c)
        {
            if (stopping(r))
                break;
            retell_call(ps, t, &rc_, c, settled_ms);
        }
        snprintf(key, sizeof key, "%s", cm_json_str(ans, "pagination_key", ""));
        int more = json_is_true(json_object_get(ans, "has_more")) && key[0];
        json_decref(ans);
        if (!more)
            break;
    }
}

/* ---- passes ------------------------------------------------------------------------- */

static cm_err_t run_pass(gw_reconcile_t *r, cm_buf_t *out)
{
    pass_t ps = {.r = r, .findings = json_array(), .errors = json_array()};
    pthread_mutex_lock(&r->pass_mu);
    int64_t t0 = cm_clock_mono_ms(), started = cm_clock_now_ms();
    int64_t since = started - r->cfg->reconcile_lookback_ms;
    int64_t settled = started - r->cfg->reconcile_grace_ms;
    for (size_t i = 0; i < r->cfg->ntenants && !stopping(r); i++) {
        const gw_tenant_t *t = &r->cfg->tenants[i];
        /* Retell first: a recovered call's saga then starts while Cal.com and Stripe are
         * read, and its objects are simply not there yet for this pass. */
        retell_tenant(&ps, t, since, settled);
        calcom_tenant(&ps, t, since);
        stripe_tenant(&ps, t, since);
    }
    int64_t took = cm_clock_mono_ms() - t0;
    pthread_mutex_unlock(&r->pass_mu);
    const char *result = json_array_size(ps.errors) ? "error" : "ok";
    gw_obs_count(r->runs, GW_LV(result));
    CM_INFO("gw.reconcile",
            "pass %s in %lld ms: %d bookings, %d payment intents, %d calls checked; %zu "
            "findings, %d calls recovered",
            result, (long long)took, ps.checked_calcom, ps.checked_stripe, ps.checked_retell,
            json_array_size(ps.findings), ps.recovered);
    cm_err_t rc = CM_OK;
    if (out) {
        json_t *rep = json_pack("{s:s,s:I,s:I,s:{s:i,s:i,s:i},s:i,s:O,s:O}", "result", result,
                                "started_at_ms", (json_int_t)started, "duration_ms",
                                (json_int_t)took, "checked", "calcom", ps.checked_calcom, "stripe",
                                ps.checked_stripe, "retell", ps.checked_retell, "recovered_calls",
                                ps.recovered, "findings", ps.findings, "errors", ps.errors);
        char *text = rep ? json_dumps(rep, JSON_COMPACT) : NULL;
        rc = text ? cm_buf_addstr(out, text) : CM_ENOMEM;
        free(text);
        json_decref(rep);
    }
    json_decref(ps.findings);
    json_decref(ps.errors);
    return rc;
}

cm_err_t gw_reconcile_run(gw_reconcile_t *r, cm_buf_t *out)
{
    return run_pass(r, out);
}

static void timer_pass(gw_periodic_t *p, void *arg)
{
    (void)run_pass(arg, NULL);
}

/* Every finding the passes can make, for the zero series. */
static const char *const kinds[][3] = {
    {"calcom", "booking_without_saga", "flagged"},
    {"calcom", "booking_unrecorded", "repaired"},
    {"calcom", "booking_after_compensation", "repaired"},
    {"calcom", "booking_after_compensation", "flagged"},
    {"calcom", "booking_on_failed_saga", "flagged"},
    {"calcom", "duplicate_booking", "flagged"},
    {"stripe", "charge_without_saga", "flagged"},
    {"stripe", "charge_unrecorded", "repaired"},
    {"stripe", "refund_by_hand", "flagged"},
    {"stripe", "charge_after_compensation", "flagged"},
    {"stripe", "duplicate_charge", "flagged"},
    {"retell", "call_recovered", "repaired"},
};

static cm_err_t metrics(gw_reconcile_t *r, char *err)
{
    cm_err_t rc = gw_metrics_counter(r->obs->reg, "gw_reconcile_runs_total",
                                     "Reconciliation passes, by result (error: a provider or the "
                                     "store could not be read; that part is retried next pass)",
                                     "result", &r->runs, err);
    if (!rc)
        rc = gw_metrics_counter(r->obs->reg, "gw_reconcile_findings_total",
                                "Drifts between the gateway's sagas and the providers found by "
                                "reconciliation, each counted once, by provider, kind and action "
                                "(repaired, or flagged for a person)",
                                "provider,kind,action", &r->findings, err);
    if (!rc)
        rc = gw_metrics_counter(r->obs->reg, "gw_reconcile_recovered_calls_total",
                                "Retell calls whose call_analyzed webhook never arrived, taken "
                                "from Retell's API by reconciliation, by tenant",
                                "tenant", &r->recovered, err);
    /* At 0 from the start: an alert on increase() needs the series before the first. */
    if (!rc &&
        (!gw_metrics_with(r->runs, GW_LV("ok")) || !gw_metrics_with(r->runs, GW_LV("error"))))
        rc = CM_ENOMEM;
    for (size_t i = 0; !rc && i < sizeof kinds / sizeof kinds[0]; i++)
        if (!gw_metrics_with(r->findings, GW_LV(kinds[i][0], kinds[i][1], kinds[i][2])))
            rc = CM_ENOMEM;
    for (size_t i = 0; !rc && i < r->cfg->ntenants; i++)
        if (!gw_metrics_with(r->recovered, GW_LV(r->cfg->tenants[i].id)))
            rc = CM_ENOMEM;
    return rc;
}

cm_err_t gw_reconcile_start(const gw_config_t *cfg, gw_store_t *store, gw_outbound_t *ob,
                            gw_obs_t *obs, gw_worker_t *worker, gw_reconcile_t **out, char *err)
{
    *out = NULL;
    gw_reconcile_t *r = calloc(1, sizeof *r);
    if (!r)
        return CM_ENOMEM;
    r->cfg = cfg;
    r->store = store;
    r->ob = ob;
    r->obs = obs;
    r->worker = worker;
    cm_rand_seed(&r->rng, cfg->seed * 1000003u + 977);
    pthread_mutex_init(&r->pass_mu, NULL);
    cm_err_t rc = (r->http = cm_http_client_new()) ? CM_OK : CM_ENOMEM;
    if (!rc)
        rc = metrics(r, err);
    /* The first pass after one interval, not at start: a gateway just (re)started has
     * webhooks in flight, and Retell's own retries must get their chance first. */
    if (!rc && cfg->reconcile_enabled)
        rc = gw_periodic_start_delayed("gw-reconcile", cfg->reconcile_interval_ms, timer_pass, r,
                                       &r->timer, err);
    if (rc) {
        gw_reconcile_stop(&r);
        return rc;
    }
    *out = r;
    return CM_OK;
}

void gw_reconcile_stop(gw_reconcile_t **rp)
{
    if (!rp || !*rp)
        return;
    gw_reconcile_t *r = *rp;
    /* A pass in progress ends at its next item, then the timer's thread at once. */
    __atomic_store_n(&r->stop, 1, __ATOMIC_RELAXED);
    gw_periodic_stop(&r->timer);
    cm_http_client_free(&r->http);
    pthread_mutex_destroy(&r->pass_mu);
    free(r);
    *rp = NULL;
}
