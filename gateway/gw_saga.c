/* gw_saga.c - the booking saga's steps and compensations. */
#include "gw_saga.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cm_clock.h"
#include "cm_json.h"
#include "cm_log.h"
#include "gw_calcom.h"
#include "gw_span.h"
#include "gw_stripe.h"
#include "gw_testhook.h"

static const char *const final_states[] = {
    "completed",   "failed_no_slot", "failed_payment",        "compensated",
    "needs_human", "failed",         "cancelled_by_attendee", NULL};

int gw_saga_state_final(const char *state)
{
    for (const char *const *p = final_states; *p; p++)
        if (!strcmp(*p, state))
            return 1;
    return 0;
}

/* What the call asked for (call_analysis.custom_analysis_data), with the tenant's defaults. */
typedef struct {
    int64_t event_type_id;
    int64_t wanted_ms;
    const char *name, *email, *phone, *tz, *payment_method;
    int64_t deposit;
} request_t;

static int parse_request(const gw_tenant_t *t, const json_t *cad, request_t *rq, char *err)
{
    const char *start = cm_json_str(cad, "booking_start", NULL);
    memset(rq, 0, sizeof *rq);
    rq->event_type_id = cm_json_int(cad, "event_type_id", t->calcom_event_type_id);
    /* Retell's analysis values are often strings: accept "101" and "2000" too. */
    const char *ets = cm_json_str(cad, "event_type_id", NULL);
    if (ets)
        rq->event_type_id = strtoll(ets, NULL, 10);
    rq->name = cm_json_str(cad, "attendee_name", NULL);
    rq->email = cm_json_str(cad, "attendee_email", NULL);
    rq->phone = cm_json_str(cad, "attendee_phone", NULL);
    rq->tz = cm_json_str(cad, "time_zone", "UTC");
    rq->payment_method = cm_json_str(cad, "payment_method", t->payment_method);
    rq->deposit = cm_json_int(cad, "deposit_cents", t->deposit_amount);
    const char *dep = cm_json_str(cad, "deposit_cents", NULL);
    if (dep)
        rq->deposit = strtoll(dep, NULL, 10);
    if (!start || cm_clock_parse_iso8601(start, &rq->wanted_ms) || !rq->name || !rq->email ||
        !strchr(rq->email, '@') || rq->event_type_id <= 0 || rq->deposit < 0) {
        cm_errf(err, "booking request incomplete or malformed (booking_start, attendee_name, "
                     "attendee_email, event_type_id, deposit_cents)");
        return -1;
    }
    return 0;
}

/* The call-level view of a finished saga. */
static const char *call_state_of(const gw_saga_t *sg)
{
    return !strcmp(sg->state, "completed")        ? "booked"
           : !strcmp(sg->state, "failed_no_slot") ? "no_slot"
                                                  : sg->state;
}

/* Persists the saga with one step-log line; a store failure makes the job retry, and the
 * saga resumes from its last persisted state. */
static int save(gw_saga_env_t *env, gw_saga_t *sg, const char *step, const char *phase,
                const char *detail, char *err)
{
    /* The save that ends gw_saga_run's saga sets the call's state in the same transaction:
     * written apart, a reader could see the saga ended and the call not, and a failed
     * second write left the call's view wrong for good. */
    if (env->mirror_call && gw_saga_state_final(sg->state))
        snprintf(sg->call_state, sizeof sg->call_state, "%s", call_state_of(sg));
    else
        sg->call_state[0] = '\0';
    cm_err_t rc = gw_store_saga_put(env->store, sg, step, phase, detail, cm_clock_now_ms());
    if (!rc && sg->call_state[0])
        env->call_open = 0; /* the call has its outcome: a later dead letter must not undo it */
    sg->call_state[0] = '\0';
    if (rc)
        cm_errf(err, "store: saga %s not saved: %s", sg->id, cm_strerror(rc));
    return rc ? -1 : 0;
}

static void end_metrics(gw_saga_env_t *env, const gw_saga_t *sg)
{
    gw_obs_count(env->obs->sagas, GW_LV(sg->state));
    gw_obs_observe(env->obs->saga_seconds, GW_LV(sg->state),
                   (double)(cm_clock_now_ms() - sg->created_at_ms) / 1000.0);
    CM_INFO("gw.saga", "saga %s ended %s%s%s", sg->id, sg->state, sg->reason[0] ? ": " : "",
            sg->reason);
}

/* Chooses the wanted start, or the nearest free alternative on the tenant's grid (later
 * first, then earlier), skipping starts already tried. */
static gw_saga_result_t choose_slot(gw_saga_env_t *env, gw_calcom_ctx_t *cc, const gw_tenant_t *t,
                                    const request_t *rq, gw_saga_t *sg, int *none, char *err)
{
    *none = 0;
    for (int k = sg->tries; k <= 2 * t->alternatives; k++) {
        /* k = 0: wanted; 1: +step; 2: -step; 3: +2 steps; ... */
        int64_t off = (int64_t)((k + 1) / 2) * t->alternative_step_ms * (k % 2 ? 1 : -1);
        int64_t cand = rq->wanted_ms + off;
        int is_free = 0;
        gw_outcome_t o = gw_calcom_slot_free(cc, rq->event_type_id, cand, &is_free, err);
        if (o != GW_OUT_OK) {
            env->retry_hint_ms = cc->retry_in_ms;
            env->waiting = cc->unavailable;
            return o == GW_OUT_RETRY ? GW_SAGA_RETRY : GW_SAGA_DEAD;
        }
        if (is_free) {
            sg->start_ms = cand;
            sg->tries = k + 1;
            return GW_SAGA_DONE;
        }
    }
    *none = 1;
    return GW_SAGA_DONE;
}

static gw_saga_result_t compensate(gw_saga_env_t *env, const gw_tenant_t *t, gw_saga_t *sg,
                                   gw_calcom_ctx_t *cc, char *err)
{
    char idem[192];
    if (sg->payment_intent[0] && !sg->refunded) {
        gw_stripe_ctx_t sc = {.ob = env->ob,
                              .http = env->http,
                              .rng = env->rng,
                              .api_key = t->stripe_api_key,
                              .traceparent = env->traceparent};
        snprintf(idem, sizeof idem, "saga-%s-refund", sg->id);
        if (save(env, sg, "refund", "intent", sg->payment_intent, err))
            return GW_SAGA_RETRY;
        gw_testhook_point("saga.refund");
        gw_stripe_out_t o = gw_stripe_refund(&sc, idem, sg->payment_intent, sg->reason, err);
        if (o == GW_STRIPE_RETRY) {
            env->retry_hint_ms = sc.retry_in_ms;
            env->waiting = sc.unavailable;
            return GW_SAGA_RETRY;
        }
        if (o != GW_STRIPE_OK) {
            (void)save(env, sg, "refund", "failed", err, err);
            return GW_SAGA_DEAD; /* a refund Stripe refuses needs a person: dead letter */
        }
        sg->refunded = 1;
        if (save(env, sg, "refund", "done", NULL, err))
            return GW_SAGA_RETRY;
    }
    if (sg->booking_uid[0] && !sg->cancelled) {
        if (save(env, sg, "cancel", "intent", sg->booking_uid, err))
            return GW_SAGA_RETRY;
        gw_testhook_point("saga.cancel");
        gw_outcome_t o = gw_calcom_cancel(cc, sg->booking_uid, sg->reason, err);
        if (o == GW_OUT_RETRY) {
            env->retry_hint_ms = cc->retry_in_ms;
            env->waiting = cc->unavailable;
            return GW_SAGA_RETRY;
        }
        if (o != GW_OUT_OK) {
            (void)save(env, sg, "cancel", "failed", err, err);
            return GW_SAGA_DEAD;
        }
        sg->cancelled = 1;
        if (save(env, sg, "cancel", "done", NULL, err))
            return GW_SAGA_RETRY;
    }
    snprintf(sg->state, sizeof sg->state, "%s", sg->final[0] ? sg->final : "compensated");
    if (save(env, sg, "compensate", "done", sg->reason, err))
        return GW_SAGA_RETRY;
    end_metrics(env, sg);
    return GW_SAGA_DONE;
}

/* Starts compensation (persisted first, so a crash continues it). */
static gw_saga_result_t fail_and_compensate(gw_saga_env_t *env, const gw_tenant_t *t, gw_saga_t *sg,
                                            gw_calcom_ctx_t *cc, const char *final,
                                            const char *reason, char *err)
{
    snprintf(sg->state, sizeof sg->state, "compensating");
    snprintf(sg->final, sizeof sg->final, "%s", final);
    snprintf(sg->reason, sizeof sg->reason, "%.255s", reason); /* may be cut */
    if (save(env, sg, "compensate", "intent", reason, err))
        return GW_SAGA_RETRY;
    return compensate(env, t, sg, cc, err);
}

/* ---- A span per saga step ------------------------------------------------------- */

/* The step spans of one run: each pass of the saga's loop is one (named after the state it
 * moves on from), a child of the job's span; the provider calls of the pass are its
 * children, through env->traceparent, which points at the open step's context meanwhile. */
typedef struct {
    gw_saga_env_t *env;
    const char *parent; /* the job's span, restored when a step ends */
    gw_span_t span;
    int open;
    gw_saga_t sg; /* the saga, here so that the last step can be ended after the run */
} steps_t;

static const char *step_name(const char *state)
{
    return !strcmp(state, "started")        ? "saga.find_slot"
           : !strcmp(state, "slot_chosen")  ? "saga.book"
           : !strcmp(state, "booked")       ? "saga.charge"
           : !strcmp(state, "charged")      ? "saga.confirm"
           : !strcmp(state, "compensating") ? "saga.compensate"
                                            : "saga.step";
}

static void step_end(steps_t *st, gw_saga_result_t res, const char *err)
{
    if (!st->open)
        return;
    st->open = 0;
    const char *after = st->sg.state;
    gw_span_str(&st->span, "gw.saga.state_after", after);
    if (res != GW_SAGA_DONE)
        gw_span_error(&st->span, err && *err ? err : res == GW_SAGA_RETRY ? "retry" : "dead");
    else if (!strncmp(after, "failed", 6) || !strcmp(after, "compensating") ||
             !strcmp(after, "needs_human"))
        gw_span_error(&st->span, st->sg.reason[0] ? st->sg.reason : after);
    gw_span_end(&st->span);
    st->env->traceparent = st->parent;
}

static void step_begin(steps_t *st, gw_calcom_ctx_t *cc)
{
    step_end(st, GW_SAGA_DONE, NULL);
    gw_span_start(&st->span, st->env->obs->otlp, step_name(st->sg.state), GW_SPAN_INTERNAL,
                  st->parent);
    gw_span_str(&st->span, "gw.saga.id", st->sg.id);
    gw_span_str(&st->span, "gw.saga.state", st->sg.state);
    st->open = 1;
    st->env->traceparent = st->span.traceparent;
    cc->traceparent = st->span.traceparent;
}

static gw_saga_result_t saga_run(gw_saga_env_t *env, const gw_tenant_t *t, const json_t *ev,
                                 char *err, steps_t *st)
{
    const char *call_id = cm_json_str(ev, "call.call_id", "");
    const json_t *cad = cm_json_path(ev, "call.call_analysis.custom_analysis_data");
    gw_saga_t *sg = &st->sg;
    request_t rq;
    int64_t now = cm_clock_now_ms();
    char idem[192], detail[160];
    env->retry_hint_ms = 0;
    env->waiting = 0;
    env->call_open = 0;

    if (parse_request(t, cad, &rq, err)) {
        env->call_open = 1; /* no saga will ever run: the dead letter is the call's outcome */
        return GW_SAGA_DEAD;
    }
    env->mirror_call = 1;
    cm_err_t rc = gw_store_saga_get(env->store, call_id, sg);
    int was_final = rc == CM_OK && gw_saga_state_final(sg->state);
    /* Only what the store holds counts: a final state set in memory whose save failed has
     * not given the call its outcome (save() clears this once one is saved). */
    env->call_open = rc == CM_ENOTFOUND || (rc == CM_OK && !was_final);
    if (rc == CM_ENOTFOUND) {
        memset(sg, 0, sizeof *sg);
        snprintf(sg->id, sizeof sg->id, "%s", call_id);
        snprintf(sg->tenant_id, sizeof sg->tenant_id, "%s", t->id);
        snprintf(sg->state, sizeof sg->state, "started");
        sg->wanted_ms = rq.wanted_ms;
        sg->deadline_ms = now + env->cfg->saga_deadline_ms;
        sg->created_at_ms = now;
        if (save(env, sg, "start", "done", NULL, err))
            return GW_SAGA_RETRY;
        gw_counter_inc(gw_metrics_with(env->obs->sagas_started, NULL));
    } else if (rc) {
        cm_errf(err, "store: %s", cm_strerror(rc));
        return GW_SAGA_RETRY;
    }
    gw_calcom_ctx_t cc = {.ob = env->ob,
                          .http = env->http,
                          .rng = env->rng,
                          .api_key = t->calcom_api_key,
                          .traceparent = env->traceparent};
    gw_booking_req_t br = {.event_type_id = rq.event_type_id,
                           .attendee_name = rq.name,
                           .attendee_email = rq.email,
                           .attendee_phone = rq.phone,
                           .time_zone = rq.tz,
                           .call_id = call_id,
                           .saga_id = sg->id};
    gw_saga_result_t res = GW_SAGA_DONE;

    /* Each pass moves the saga one state on; the loop ends in a final state or when a
     * provider must be waited for. */
    while (res == GW_SAGA_DONE && !gw_saga_state_final(sg->state)) {
        step_begin(st, &cc);
        if (!strcmp(sg->state, "compensating")) {
            res = compensate(env, t, sg, &cc, err);
        } else if (!strcmp(sg->state, "started")) {
            int none = 0;
            res = choose_slot(env, &cc, t, &rq, sg, &none, err);
            if (res != GW_SAGA_DONE)
                break;
            if (none) {
                snprintf(sg->state, sizeof sg->state, "failed_no_slot");
                snprintf(sg->reason, sizeof sg->reason, "no free slot near the wanted time");
                if (save(env, sg, "find_slot", "failed", sg->reason, err))
                    return GW_SAGA_RETRY;
                end_metrics(env, sg);
                break;
            }
            snprintf(sg->state, sizeof sg->state, "slot_chosen");
            char iso[25];
            if (save(env, sg, "find_slot", "done", cm_clock_iso8601(sg->start_ms, iso), err))
                return GW_SAGA_RETRY;
        } else if (!strcmp(sg->state, "slot_chosen")) {
            char uid[128] = "";
            int found = 0;
            br.start_ms = sg->start_ms;
            /* An intent without a result: the booking may exist (crash or lost answer). */
            int open = gw_store_saga_intent_open(env->store, sg->id, "book");
            if (open < 0) {
                cm_errf(err, "store: cannot read saga %s's step log", sg->id);
                res = GW_SAGA_RETRY;
                break;
            }
            if (open) {
                gw_outcome_t o = gw_calcom_find(&cc, rq.email, sg->start_ms, sg->id, uid,
                                                sizeof uid, &found, err);
                if (o != GW_OUT_OK) {
                    env->retry_hint_ms = cc.retry_in_ms;
                    env->waiting = cc.unavailable;
                    res = o == GW_OUT_RETRY ? GW_SAGA_RETRY : GW_SAGA_DEAD;
                    break;
                }
                if (found)
                    CM_INFO("gw.saga", "saga %s: found booking %s made before a restart", sg->id,
                            uid);
            }
            gw_outcome_t o = GW_OUT_OK;
            if (!found) {
                if (save(env, sg, "book", "intent", NULL, err))
                    return GW_SAGA_RETRY;
                gw_testhook_point("saga.book.before");
                o = gw_calcom_book(&cc, &br, uid, sizeof uid, err);
                gw_testhook_point("saga.book.after");
            }
            if (o == GW_OUT_OK) {
                snprintf(sg->booking_uid, sizeof sg->booking_uid, "%s", uid);
                snprintf(sg->state, sizeof sg->state, "booked");
                if (save(env, sg, "book", "done", uid, err))
                    return GW_SAGA_RETRY;
            } else if (o == GW_OUT_TAKEN) {
                /* The check-then-book race: someone took it meanwhile. Re-read availability
                 * (the booking attempt dropped the cache) and try the next alternative. */
                snprintf(sg->state, sizeof sg->state, "started");
                if (save(env, sg, "book", "taken", err, err))
                    return GW_SAGA_RETRY;
            } else if (o == GW_OUT_RETRY) {
                env->retry_hint_ms = cc.retry_in_ms;
                env->waiting = cc.unavailable;
                res = GW_SAGA_RETRY;
            } else {
                snprintf(sg->state, sizeof sg->state, "failed");
                snprintf(sg->reason, sizeof sg->reason, "%s", err);
                if (save(env, sg, "book", "failed", err, err))
                    return GW_SAGA_RETRY;
                end_metrics(env, sg);
            }
        } else if (!strcmp(sg->state, "booked")) {
            if (rq.deposit <= 0 || !t->stripe_api_key) {
                snprintf(sg->state, sizeof sg->state, "charged");
                if (save(env, sg, "charge", "done", "no deposit", err))
                    return GW_SAGA_RETRY;
                continue;
            }
            gw_stripe_ctx_t sc = {.ob = env->ob,
                                  .http = env->http,
                                  .rng = env->rng,
                                  .api_key = t->stripe_api_key,
                                  .traceparent = env->traceparent};
            char pi[128] = "";
            /* The same key on every try of this step: Stripe replays the first result. */
            snprintf(idem, sizeof idem, "saga-%s-charge", sg->id);
            snprintf(detail, sizeof detail, "%lld %s", (long long)rq.deposit, t->deposit_currency);
            if (save(env, sg, "charge", "intent", detail, err))
                return GW_SAGA_RETRY;
            gw_testhook_point("saga.charge.before");
            gw_stripe_out_t o = gw_stripe_charge(&sc, idem, rq.deposit, t->deposit_currency,
                                                 rq.payment_method, sg->id, pi, sizeof pi, err);
            gw_testhook_point("saga.charge.after");
            if (o == GW_STRIPE_OK) {
                gw_obs_count(env->obs->payments, GW_LV("succeeded"));
                snprintf(sg->payment_intent, sizeof sg->payment_intent, "%s", pi);
                snprintf(sg->state, sizeof sg->state, "charged");
                if (save(env, sg, "charge", "done", pi, err))
                    return GW_SAGA_RETRY;
            } else if (o == GW_STRIPE_RETRY) {
                env->retry_hint_ms = sc.retry_in_ms;
                env->waiting = sc.unavailable;
                res = GW_SAGA_RETRY;
            } else {
                gw_obs_count(env->obs->payments,
                             GW_LV(o == GW_STRIPE_DECLINED ? "declined" : "failed"));
                char reason[CM_ERR_LEN + 32];
                snprintf(reason, sizeof reason, "payment %s: %s",
                         o == GW_STRIPE_DECLINED ? "declined" : "failed", err);
                res = fail_and_compensate(env, t, sg, &cc, "failed_payment", reason, err);
            }
        } else if (!strcmp(sg->state, "charged")) {
            gw_testhook_point("saga.confirm.before");
            snprintf(sg->state, sizeof sg->state, "completed");
            if (save(env, sg, "confirm", "done", sg->booking_uid, err))
                return GW_SAGA_RETRY;
            end_metrics(env, sg);
        } else {
            cm_errf(err, "saga %s in unknown state %s", sg->id, sg->state);
            return GW_SAGA_DEAD;
        }
    }
    if (res == GW_SAGA_RETRY &&
        (cm_clock_now_ms() > sg->deadline_ms || (env->last_attempt && !env->waiting))) {
        /* Waited long enough for a provider: nothing is lost (the booking, if any, and
         * the state are kept), but a person has to finish this call. */
        CM_WARN("gw.saga", "saga %s: deadline passed in state %s (%s); flagged for a person",
                sg->id, sg->state, err);
        snprintf(sg->reason, sizeof sg->reason, "deadline passed in %s: %s", sg->state, err);
        snprintf(sg->state, sizeof sg->state, "needs_human");
        if (save(env, sg, "deadline", "failed", sg->reason, err))
            return GW_SAGA_RETRY;
        end_metrics(env, sg);
        return GW_SAGA_DONE;
    }
    /* A saga that was over before this run (a redelivered or replayed event) had its
     * call's state set when it ended; set it again for one whose call's state an older
     * gateway failed to write. A failure here is retried like any store failure. */
    if (res == GW_SAGA_DONE && was_final &&
        gw_store_entity_set(env->store, "call", sg->id, t->id, call_state_of(sg),
                            sg->booking_uid[0] ? sg->booking_uid : NULL,
                            sg->reason[0] ? sg->reason : NULL, cm_clock_now_ms())) {
        cm_errf(err, "store: call %s state not written", sg->id);
        return GW_SAGA_RETRY;
    }
    return res;
}

gw_saga_result_t gw_saga_run(gw_saga_env_t *env, const gw_tenant_t *t, const json_t *ev, char *err)
{
    steps_t st = {.env = env, .parent = env->traceparent};
    gw_saga_result_t res = saga_run(env, t, ev, err, &st);
    step_end(&st, res, err);
    return res;
}

gw_saga_result_t gw_saga_booking_cancelled(gw_saga_env_t *env, const char *uid, char *err)
{
    gw_saga_t sg;
    env->waiting = 0;
    cm_err_t rc = gw_store_saga_by_booking(env->store, uid, &sg);
    if (rc == CM_ENOTFOUND)
        return GW_SAGA_DONE;
    if (rc) {
        cm_errf(err, "store: %s", cm_strerror(rc));
        return GW_SAGA_RETRY;
    }
    if (gw_saga_state_final(sg.state) && strcmp(sg.state, "completed"))
        return GW_SAGA_DONE; /* already ended without a live booking to pay for */
    if (strcmp(sg.state, "completed") && strcmp(sg.state, "compensating")) {
        /* The saga is still running (it may charge next): come back once it has settled,
         * then refund. Waiting for it is not a failed attempt. */
        cm_errf(err, "saga %s still in %s: cancellation waits for it", sg.id, sg.state);
        env->waiting = 1;
        return GW_SAGA_RETRY;
    }
    const gw_tenant_t *t = NULL;
    for (size_t i = 0; i < env->cfg->ntenants && !t; i++)
        if (!strcmp(env->cfg->tenants[i].id, sg.tenant_id))
            t = &env->cfg->tenants[i];
    if (!t) {
        cm_errf(err, "saga %s: tenant %s no longer configured", sg.id, sg.tenant_id);
        return GW_SAGA_DEAD;
    }
    gw_calcom_ctx_t cc = {.ob = env->ob,
                          .http = env->http,
                          .rng = env->rng,
                          .api_key = t->calcom_api_key,
                          .traceparent = env->traceparent};
    sg.cancelled = 1; /* cancelled at Cal.com already: only the refund is left */
    if (!strcmp(sg.state, "compensating"))
        return compensate(env, t, &sg, &cc, err);
    return fail_and_compensate(env, t, &sg, &cc, "cancelled_by_attendee",
                               "booking cancelled at Cal.com", err);
}
