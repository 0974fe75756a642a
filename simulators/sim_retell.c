/* sim_retell.c - Retell calls, signed webhook deliveries and GET /v2/get-call. */
#include "sim_retell.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cm_clock.h"
#include "cm_http_client.h"
#include "cm_json.h"
#include "cm_log.h"
#include "cm_sig.h"
#include "sim_http.h"
#include "sim_rng.h"

#define COMP "sim.retell"
#define DEFAULT_DURATION_MS 84000
/* What a forged delivery is signed with: any key but the real one will do. */
#define FORGED_KEY "key_forged_by_the_simulator"

struct sim_retell {
    pthread_mutex_t mu;
    char *api_key;
    sim_rng_t rng;
    /* guarded by mu */
    json_t *calls;     /* call_id -> call object */
    char *webhook_url; /* NULL until set */
};

sim_retell_t *sim_retell_new(const sim_retell_cfg_t *cfg)
{
    if (!cfg->api_key || !*cfg->api_key)
        return NULL;
    sim_retell_t *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    pthread_mutex_init(&r->mu, NULL);
    r->api_key = strdup(cfg->api_key);
    r->calls = json_object();
    sim_rng_init(&r->rng, cfg->seed, 1);
    if (!r->api_key || !r->calls)
        sim_retell_free(&r);
    return r;
}

void sim_retell_free(sim_retell_t **rp)
{
    sim_retell_t *r = rp ? *rp : NULL;
    if (!r)
        return;
    json_decref(r->calls);
    free(r->webhook_url);
    free(r->api_key);
    sim_rng_destroy(&r->rng);
    pthread_mutex_destroy(&r->mu);
    free(r);
    *rp = NULL;
}

void sim_retell_reset(sim_retell_t *r)
{
    pthread_mutex_lock(&r->mu);
    json_object_clear(r->calls);
    free(r->webhook_url);
    r->webhook_url = NULL;
    pthread_mutex_unlock(&r->mu);
}

cm_err_t sim_retell_set_webhook_url(sim_retell_t *r, const char *url, char *err)
{
    if (!url || (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0) ||
        strlen(url) > 2048) {
        cm_errf(err, "url must be an http:// or https:// URL of at most 2048 bytes");
        return CM_EINVAL;
    }
    char *copy = strdup(url);
    if (!copy)
        return CM_ENOMEM;
    pthread_mutex_lock(&r->mu);
    free(r->webhook_url);
    r->webhook_url = copy;
    pthread_mutex_unlock(&r->mu);
    CM_INFO(COMP, "webhook URL set to %s", url);
    return CM_OK;
}

/* ---- calls ------------------------------------------------------------------------ */

/* RFC 7396 JSON merge patch of the object patch into the object target, in place. */
static cm_err_t merge_patch(json_t *target, const json_t *patch)
{
    const char *key;
    json_t *val;
    json_object_foreach((json_t *)patch, key, val)
    {
        if (json_is_null(val)) {
            json_object_del(target, key);
            continue;
        }
        json_t *cur = json_object_get(target, key);
        if (json_is_object(val)) {
            if (!json_is_object(cur)) {
                /* Merging into a fresh object drops the patch's nulls, as the RFC says. */
                cur = json_object();
                if (!cur || json_object_set_new(target, key, cur))
                    return CM_ENOMEM;
            }
            cm_err_t rc = merge_patch(cur, val);
            if (rc)
                return rc;
        } else if (json_object_set_new(target, key, json_deep_copy(val))) {
            return CM_ENOMEM;
        }
    }
    return CM_OK;
}

static json_t *default_call(int64_t now)
{
    return json_pack("{s:s,s:i,s:s,s:s,s:s,s:s,s:s,s:I,s:I,s:I,s:s,s:s,"
                     "s:{s:s,s:b,s:s,s:b,s:{}}}",
                     "agent_id", "agent_sim_booking", "agent_version", 1, "call_status", "ended",
                     "call_type", "phone_call", "direction", "inbound", "from_number",
                     "+14155550101", "to_number", "+14155550199", "start_timestamp",
                     (json_int_t)(now - DEFAULT_DURATION_MS), "end_timestamp", (json_int_t)now,
                     "duration_ms", (json_int_t)DEFAULT_DURATION_MS, "transcript",
                     "Agent: Hi, thanks for calling Sim Clinic, how can I help?\n"
                     "User: I would like to book a consultation.\n"
                     "Agent: Done, you will receive a confirmation by e-mail. Goodbye!\n",
                     "disconnection_reason", "user_hangup", "call_analysis", "call_summary",
                     "The caller booked a consultation.", "in_voicemail", 0, "user_sentiment",
                     "Positive", "call_successful", 1, "custom_analysis_data");
}

/* Keeps start_timestamp + duration_ms == end_timestamp when overrides set only some. */
static void fix_times(json_t *call, const json_t *ov)
{
    int hs = json_is_integer(json_object_get(ov, "start_timestamp"));
    int he = json_is_integer(json_object_get(ov, "end_timestamp"));
    int hd = json_is_integer(json_object_get(ov, "duration_ms"));
    json_t *s = json_object_get(call, "start_timestamp");
    json_t *e = json_object_get(call, "end_timestamp");
    json_t *d = json_object_get(call, "duration_ms");
    if (!json_is_integer(s) || !json_is_integer(e) || !json_is_integer(d))
        return; /* a caller that removed or retyped them wants them that way */
    json_int_t sv = json_integer_value(s), ev = json_integer_value(e), dv = json_integer_value(d);
    if (hs && he && !hd)
        json_integer_set(d, ev - sv);
    else if (hs && !he)
        json_integer_set(e, sv + dv);
    else if (!hs)
        json_integer_set(s, ev - dv);
}

cm_err_t sim_retell_create_call(sim_retell_t *r, const json_t *overrides, json_t **out, char *err)
{
    cm_err_t rc = CM_OK;
    *out = NULL;
    if (overrides && !json_is_object(overrides)) {
        cm_errf(err, "the call overrides must be a JSON object");
        return CM_EINVAL;
    }
    const json_t *idv = overrides ? json_object_get(overrides, "call_id") : NULL;
    if (idv && (!json_is_string(idv) || !*json_string_value(idv) ||
                strlen(json_string_value(idv)) > 128)) {
        cm_errf(err, "call_id must be a non-empty string of at most 128 bytes");
        return CM_EINVAL;
    }
    json_t *call = json_object();
    json_t *defaults = default_call(cm_clock_now_ms());
    if (!call || !defaults) {
        rc = CM_ENOMEM;
        goto done;
    }
    /* call_id first, as Retell lists it; the rest in the default order. */
    if (json_object_set_new(call, "call_id", json_string("")) || json_object_update(call, defaults))
        rc = CM_ENOMEM;
    if (!rc && overrides) {
        rc = merge_patch(call, overrides);
        if (!rc)
            fix_times(call, overrides);
    }
    if (rc)
        goto done;

    pthread_mutex_lock(&r->mu);
    char gen[5 + 32 + 1];
    const char *id = idv ? json_string_value(idv) : NULL;
    if (id && json_object_get(r->calls, id)) {
        cm_errf(err, "a call with call_id '%s' exists already", id);
        rc = CM_EEXISTS;
    }
    while (!rc && !id) {
        memcpy(gen, "call_", 5);
        sim_rng_hex(&r->rng, gen + 5, 32);
        if (!json_object_get(r->calls, gen)) /* a collision needs an override that took it */
            id = gen;
    }
    if (!rc && (json_object_set_new(call, "call_id", json_string(id)) ||
                json_object_set(r->calls, id, call)))
        rc = CM_ENOMEM;
    if (!rc)
        *out = json_deep_copy(call);
    pthread_mutex_unlock(&r->mu);
    if (!rc && !*out)
        rc = CM_ENOMEM; /* stored, but the caller cannot be told: still a failure */
    if (!rc)
        CM_INFO(COMP, "call %s created", id);
done:
    json_decref(defaults);
    json_decref(call);
    return rc;
}

json_t *sim_retell_get_call(sim_retell_t *r, const char *call_id)
{
    pthread_mutex_lock(&r->mu);
    json_t *v = json_object_get(r->calls, call_id);
    json_t *copy = v ? json_deep_copy(v) : NULL;
    pthread_mutex_unlock(&r->mu);
    return copy;
}

/* ---- webhook deliveries ----------------------------------------------------------- */

typedef struct gate {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    unsigned waiting; /* threads parked at the gate */
    int open;
} gate_t;

typedef struct {
    const char *url;
    const char *body;
    size_t len;
    const char *const *headers;
    cm_http_client_t *client; /* each concurrent copy has its own; sequential ones share */
    gate_t *gate;             /* NULL when sequential */
    /* results */
    long status; /* 0: no HTTP answer */
    char err[CM_ERR_LEN];
    double ms;
} delivery_t;

static void deliver(delivery_t *d)
{
    cm_http_response_t resp;
    cm_http_request_t req = {.method = "POST",
                             .url = d->url,
                             .headers = d->headers,
                             .body = d->body,
                             .body_len = d->len,
                             .timeout_ms = SIM_RETELL_WEBHOOK_TIMEOUT_MS};
    int64_t t0 = cm_clock_mono_ns();
    cm_err_t rc = cm_http_client_do(d->client, &req, &resp);
    d->ms = (double)(cm_clock_mono_ns() - t0) / 1e6;
    d->status = rc ? 0 : resp.status;
    if (rc)
        snprintf(d->err, sizeof d->err, "%s: %.200s", cm_strerror(rc), resp.err);
    cm_http_response_free(&resp);
}

static void *deliver_thread(void *arg)
{
    delivery_t *d = arg;
    gate_t *g = d->gate;
    pthread_mutex_lock(&g->mu);
    g->waiting++;
    pthread_cond_broadcast(&g->cv);
    while (!g->open)
        pthread_cond_wait(&g->cv, &g->mu);
    pthread_mutex_unlock(&g->mu);
    deliver(d);
    return NULL;
}

/* Runs every copy from its own thread; the threads park at a gate that opens only
 * when all of them are there, so the copies leave together and really race. */
static void deliver_concurrently(delivery_t *ds, unsigned n)
{
    gate_t g = {.waiting = 0, .open = 0};
    pthread_t tids[SIM_RETELL_MAX_COPIES];
    int started[SIM_RETELL_MAX_COPIES] = {0};
    unsigned nstarted = 0;
    pthread_mutex_init(&g.mu, NULL);
    pthread_cond_init(&g.cv, NULL);
    for (unsigned i = 0; i < n; i++) {
        ds[i].gate = &g;
        if (pthread_create(&tids[i], NULL, deliver_thread, &ds[i]) == 0) {
            started[i] = 1;
            nstarted++;
        } else {
            snprintf(ds[i].err, sizeof ds[i].err, "could not start a delivery thread");
        }
    }
    pthread_mutex_lock(&g.mu);
    while (g.waiting < nstarted)
        pthread_cond_wait(&g.cv, &g.mu);
    g.open = 1;
    pthread_cond_broadcast(&g.cv);
    pthread_mutex_unlock(&g.mu);
    for (unsigned i = 0; i < n; i++)
        if (started[i])
            pthread_join(tids[i], NULL);
    pthread_cond_destroy(&g.cv);
    pthread_mutex_destroy(&g.mu);
}

static int known_event(const char *ev)
{
    return strcmp(ev, "call_started") == 0 || strcmp(ev, "call_ended") == 0 ||
           strcmp(ev, "call_analyzed") == 0;
}

/* Shapes the call (taken) as the event carries it and wraps it in the envelope. */
static json_t *make_envelope(const char *event, json_t *call)
{
    if (strcmp(event, "call_analyzed") != 0)
        json_object_del(call, "call_analysis");
    if (strcmp(event, "call_started") == 0) {
        /* At call_started the call is still going: nothing about its end is known. */
        json_object_set_new(call, "call_status", json_string("ongoing"));
        json_object_del(call, "end_timestamp");
        json_object_del(call, "duration_ms");
        json_object_del(call, "disconnection_reason");
        json_object_del(call, "transcript");
    }
    return json_pack("{s:s,s:o}", "event", event, "call", call);
}

static json_t *make_report(const char *event, const char *call_id, const char *url, const char *sig,
                           const delivery_t *ds, unsigned n)
{
    json_t *list = json_array();
    for (unsigned i = 0; list && i < n; i++) {
        double ms = ds[i].ms;
        json_t *item = json_pack("{s:o,s:o,s:f}", "status",
                                 ds[i].status ? json_integer(ds[i].status) : json_null(), "error",
                                 ds[i].err[0] ? json_string(ds[i].err) : json_null(), "ms", ms);
        if (!item || json_array_append_new(list, item)) {
            json_decref(list);
            return NULL;
        }
    }
    if (!list)
        return NULL;
    return json_pack("{s:s,s:s,s:s,s:s,s:o}", "event", event, "call_id", call_id, "url", url,
                     "signature", sig, "deliveries", list);
}

cm_err_t sim_retell_send_webhook(sim_retell_t *r, const char *call_id, const sim_retell_send_t *opt,
                                 json_t **report, char *err)
{
    cm_err_t rc = CM_OK;
    char *url = NULL, *body = NULL;
    json_t *env = NULL;
    delivery_t *ds = NULL;
    char sig[CM_SIG_HDR_LEN], sighdr[CM_SIG_HDR_LEN + 32];
    *report = NULL;

    if (!opt->event || !known_event(opt->event)) {
        cm_errf(err, "event must be call_started, call_ended or call_analyzed");
        return CM_EINVAL;
    }
    if (opt->copies < 1 || opt->copies > SIM_RETELL_MAX_COPIES) {
        cm_errf(err, "copies must be between 1 and %d", SIM_RETELL_MAX_COPIES);
        return CM_EINVAL;
    }
    int64_t ts = cm_clock_now_ms() + opt->timestamp_offset_ms;
    if (ts < 0) {
        cm_errf(err, "timestamp_offset_ms puts the signed time before 1970");
        return CM_EINVAL;
    }

    /* Copy what is needed and let go of the lock: the receiver may call GET
     * /v2/get-call while the delivery is in flight. */
    pthread_mutex_lock(&r->mu);
    json_t *stored = json_object_get(r->calls, call_id);
    json_t *call = stored ? json_deep_copy(stored) : NULL;
    int have_url = r->webhook_url != NULL;
    if (have_url)
        url = strdup(r->webhook_url);
    pthread_mutex_unlock(&r->mu);
    if (!stored) {
        cm_errf(err, "no call with call_id '%s'", call_id);
        rc = CM_ENOTFOUND;
    } else if (!have_url) {
        cm_errf(err, "no webhook URL set (PUT /control/retell/webhook first)");
        rc = CM_ESTATE;
    } else if (!call || !url) {
        rc = CM_ENOMEM;
    }
    if (rc) {
        json_decref(call);
        free(url);
        return rc;
    }

    /* One serialisation for every copy: duplicates are byte-identical, as a provider's
     * retries and replays are. */
    env = make_envelope(opt->event, call);
    body = env ? cm_json_dumps(env) : NULL;
    if (!body) {
        rc = CM_ENOMEM;
        goto done;
    }
    rc = cm_sig_retell_sign(opt->forge ? FORGED_KEY : r->api_key, body, strlen(body), ts, sig);
    if (rc) {
        cm_errf(err, "signing failed: %s", cm_strerror(rc));
        goto done;
    }
    snprintf(sighdr, sizeof sighdr, "x-retell-signature: %s", sig);
    const char *headers[] = {"Content-Type: application/json", sighdr, NULL};

    ds = calloc(opt->copies, sizeof *ds);
    if (!ds) {
        rc = CM_ENOMEM;
        goto done;
    }
    cm_http_client_t *shared = NULL;
    for (unsigned i = 0; i < opt->copies && !rc; i++) {
        ds[i] = (delivery_t){.url = url, .body = body, .len = strlen(body), .headers = headers};
        if (opt->concurrent || i == 0) {
            ds[i].client = cm_http_client_new();
            if (!ds[i].client)
                rc = CM_ENOMEM;
            shared = ds[0].client;
        } else {
            ds[i].client = shared;
        }
    }
    if (!rc) {
        CM_INFO(COMP, "delivering %s of %s to %s: %u cop%s%s%s", opt->event, call_id, url,
                opt->copies, opt->copies == 1 ? "y" : "ies", opt->concurrent ? ", concurrent" : "",
                opt->forge ? ", forged" : "");
        if (opt->concurrent && opt->copies > 1)
            deliver_concurrently(ds, opt->copies);
        else
            for (unsigned i = 0; i < opt->copies; i++)
                deliver(&ds[i]);
        *report = make_report(opt->event, call_id, url, sig, ds, opt->copies);
        if (!*report)
            rc = CM_ENOMEM;
    }
    for (unsigned i = 0; i < opt->copies; i++)
        if (opt->concurrent || i == 0)
            cm_http_client_free(&ds[i].client);

done:
    free(ds);
    free(body);
    json_decref(env);
    free(url);
    return rc;
}

/* ---- GET /v2/get-call/{call_id} --------------------------------------------------- */

/* Retell documents its error statuses but not their bodies; clients must go by the
 * status, so the simulator keeps the body minimal. */
static void answer_error(cm_http_resp_t *resp, int status, const char *msg)
{
    cm_http_resp_json(resp, status, json_pack("{s:s}", "error_message", msg));
}

static void h_get_call(const cm_http_req_t *req, cm_http_resp_t *resp, void *ud)
{
    sim_retell_t *r = ud;
    if (!sim_http_bearer_ok(req, r->api_key)) {
        answer_error(resp, 401, "Unauthorized: invalid or missing API key");
        return;
    }
    json_t *call = sim_retell_get_call(r, cm_http_req_param(req, "call_id"));
    if (!call) {
        answer_error(resp, 404, "Call not found");
        return;
    }
    cm_http_resp_json(resp, 200, call);
}

cm_err_t sim_retell_routes(sim_retell_t *r, cm_http_server_t *srv)
{
    return cm_http_server_route(srv, "GET /v2/get-call/{call_id}", h_get_call, r);
}
