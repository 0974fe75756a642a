/* sim_retell.c - Retell calls, signed webhook deliveries and GET /v2/get-call. */
#include "sim_retell.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cm_clock.h"
#include "cm_http_client.h"
#include "cm_json.h"
#include "cm_log.h"
#include "cm_rand.h"
#include "cm_sig.h"
#include "sim_delivery.h"
#include "sim_http.h"
#include "sim_rng.h"

#define COMP "sim.retell"
#define DEFAULT_DURATION_MS 84000
/* What a forged delivery is signed with: any key but the real one will do. */
#define FORGED_KEY "key_forged_by_the_simulator"

struct job;

struct sim_retell {
    pthread_mutex_t mu;
    pthread_cond_t cv; /* monotonic; signalled at shutdown */
    char *api_key;
    sim_rng_t rng;
    sim_journal_t *journal;
    int stopping; /* read atomically by in-flight transfers (their abort flag) */
    /* guarded by mu */
    json_t *calls;       /* call_id -> call object */
    json_t *call_text;   /* call_id -> the call serialised (calls never change once stored) */
    char *webhook_url;   /* NULL until set; each attempt reads it when it is sent */
    uint64_t generation; /* bumped by each reset: deliveries from before it stop */
    unsigned retries;
    int64_t retry_interval_ms, timeout_ms;
    cm_rand_t order_gen; /* shuffled batches */
    struct job *jobs;    /* newest first */
    int64_t next_delivery;
};

static void jobs_join(sim_retell_t *r, int all);
static void jobs_free_all(sim_retell_t *r);

sim_retell_t *sim_retell_new(const sim_retell_cfg_t *cfg)
{
    if (!cfg->api_key || !*cfg->api_key)
        return NULL;
    sim_retell_t *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    pthread_mutex_init(&r->mu, NULL);
    cm_clock_cond_init(&r->cv);
    r->journal = cfg->journal;
    r->retries = cfg->retries;
    r->retry_interval_ms = cfg->retry_interval_ms;
    r->timeout_ms = cfg->timeout_ms > 0 ? cfg->timeout_ms : SIM_RETELL_WEBHOOK_TIMEOUT_MS;
    cm_rand_seed(&r->order_gen, cfg->seed ^ 0x6f72646572ULL);
    r->next_delivery = 1;
    r->api_key = strdup(cfg->api_key);
    r->calls = json_object();
    r->call_text = json_object();
    sim_rng_init(&r->rng, cfg->seed, 1);
    if (!r->api_key || !r->calls || !r->call_text)
        sim_retell_free(&r);
    return r;
}

void sim_retell_free(sim_retell_t **rp)
{
    sim_retell_t *r = rp ? *rp : NULL;
    if (!r)
        return;
    sim_retell_shutdown(r);
    jobs_join(r, 1);
    jobs_free_all(r);
    pthread_cond_destroy(&r->cv);
    json_decref(r->calls);
    json_decref(r->call_text);
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
    json_object_clear(r->call_text);
    free(r->webhook_url);
    r->webhook_url = NULL;
    r->generation++;
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
    return json_pack(
        "{s:s,s:s,s:i,s:s,s:s,s:s,s:s,s:s,s:I,s:I,s:I,s:s,s:s,"
        "s:{s:s,s:b,s:s,s:b,s:{}},s:s,s:b,s:{s:s}}",
        "agent_id", "agent_sim_booking", "agent_name", "Sim Clinic booking agent", "agent_version",
        1, "call_status", "ended", "call_type", "phone_call", "direction", "inbound", "from_number",
        "+14155550101", "to_number", "+14155550199", "start_timestamp",
        (json_int_t)(now - DEFAULT_DURATION_MS), "end_timestamp", (json_int_t)now, "duration_ms",
        (json_int_t)DEFAULT_DURATION_MS, "transcript",
        "Agent: Hi, thanks for calling Sim Clinic, how can I help?\n"
        "User: I would like to book a consultation.\n"
        "Agent: Done, you will receive a confirmation by e-mail. Goodbye!\n",
        "disconnection_reason", "user_hangup", "call_analysis", "call_summary",
        "The caller booked a consultation.", "in_voicemail", 0, "user_sentiment", "Positive",
        "call_successful", 1, "custom_analysis_data", "data_storage_setting", "everything",
        "opt_in_signed_url", 0, "telephony_identifier", "twilio_call_sid",
        "CA0000000000000000000000000000sim");
}

/* ---- the fields Retell fills in once a call has ended --------------------------------
 * retell-typescript-sdk src/resources/call.ts (PhoneCallResponse): transcript_object and
 * transcript_with_tool_calls (utterances {role, content, words [{word, start, end}]}),
 * recording_url, recording_multi_channel_url, public_log_url, call_cost {product_costs
 * [{product, unit_price, cost}], total_duration_seconds, total_duration_unit_price,
 * combined_cost} (cents), latency {e2e, llm, tts: {p50, p90, p95, p99, max, min, num,
 * values}} (ms), llm_token_usage {values, average, num_requests}. The simulator derives them
 * from the call's own transcript and duration so that the object stays self-consistent
 * whatever the overrides changed; an override of one of them wins. */

/* Seconds of audio per word in the synthetic word timings: a power-of-two fraction, so that
 * every time is written exactly ("12.75", not "12.749999999999998"). */
#define WORD_S 0.25
/* The products of a simulated call and their prices, cents per second. */
static const struct {
    const char *product;
    double unit_price;
} products[] = {
    {"retell_platform", 0.1166667}, {"elevenlabs_tts", 0.1166667}, {"gpt_4o", 0.0833333}};

/* One utterance of the transcript "Agent: ...\nUser: ...\n" with word timings from *t. */
static json_t *utterance(const char *role, const char *text, size_t len, double *t)
{
    json_t *words = json_array();
    const char *p = text, *end = text + len;
    while (words && p < end) {
        while (p < end && *p == ' ')
            p++;
        const char *w = p;
        while (p < end && *p != ' ')
            p++;
        if (p > w) {
            json_array_append_new(words, json_pack("{s:s%,s:f,s:f}", "word", w, (size_t)(p - w),
                                                   "start", *t, "end", *t + WORD_S));
            *t += WORD_S;
        }
    }
    *t += 0.5; /* the turn change */
    return words ? json_pack("{s:s,s:s%,s:o}", "role", role, "content", text, len, "words", words)
                 : NULL;
}

/* transcript_object from the transcript's "Agent:" / "User:" lines; NULL when there is none. */
static json_t *transcript_object(const char *transcript)
{
    json_t *list = json_array();
    double t = 0.5;
    for (const char *line = transcript; list && line && *line;) {
        const char *nl = strchr(line, '\n');
        size_t len = nl ? (size_t)(nl - line) : strlen(line);
        const char *role = NULL;
        size_t skip = 0;
        if (len >= 6 && strncmp(line, "Agent:", 6) == 0)
            role = "agent", skip = 6;
        else if (len >= 5 && strncmp(line, "User:", 5) == 0)
            role = "user", skip = 5;
        while (role && skip < len && line[skip] == ' ')
            skip++;
        if (role && skip < len)
            json_array_append_new(list, utterance(role, line + skip, len - skip, &t));
        line = nl ? nl + 1 : NULL;
    }
    return list;
}

static json_t *latency_of(int p50, int p90, int n)
{
    json_t *values = json_array();
    for (int i = 0; values && i < n; i++)
        json_array_append_new(values, json_integer(i % 4 == 3 ? p90 : p50 + i % 3 * 10));
    return json_pack("{s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:o}", "p50", p50, "p90", p90, "p95", p90 + 40,
                     "p99", p90 + 80, "max", p90 + 80, "min", p50 - 100, "num", n, "values",
                     values ? values : json_array());
}

/* Sets key to v (taken) unless the overrides gave it (then v is dropped). */
static void derive(json_t *call, const json_t *ov, const char *key, json_t *v)
{
    if (ov && json_object_get(ov, key))
        json_decref(v);
    else if (v)
        json_object_set_new(call, key, v);
    else
        json_object_del(call, key);
}

/* Fills the after-the-end fields of call (its call_id set) from its transcript, duration
 * and end; a call that has not ended (no end_timestamp) has none of them. */
static void derive_ended(json_t *call, const json_t *ov)
{
    static const char *const after_end[] = {"transcript_object", "transcript_with_tool_calls",
                                            "recording_url",     "recording_multi_channel_url",
                                            "public_log_url",    "call_cost",
                                            "latency",           "llm_token_usage"};
    if (!json_is_integer(json_object_get(call, "end_timestamp"))) {
        for (size_t i = 0; i < sizeof after_end / sizeof after_end[0]; i++)
            if (!ov || !json_object_get(ov, after_end[i]))
                json_object_del(call, after_end[i]);
        return;
    }
    const char *id = cm_json_str(call, "call_id", "");
    const char *tr = cm_json_str(call, "transcript", NULL);
    char url[256];
    derive(call, ov, "transcript_object", tr ? transcript_object(tr) : NULL);
    derive(call, ov, "transcript_with_tool_calls", tr ? transcript_object(tr) : NULL);
    snprintf(url, sizeof url, "https://recordings.retell.sim.example/%.128s/recording.wav", id);
    derive(call, ov, "recording_url", json_string(url));
    snprintf(url, sizeof url,
             "https://recordings.retell.sim.example/%.128s/recording_multichannel.wav", id);
    derive(call, ov, "recording_multi_channel_url", json_string(url));
    snprintf(url, sizeof url, "https://logs.retell.sim.example/%.128s/public.log", id);
    derive(call, ov, "public_log_url", json_string(url));
    json_int_t ms = cm_json_int(call, "duration_ms", 0);
    double secs = (double)((ms + 999) / 1000);
    json_t *pc = json_array();
    double total = 0, unit = 0;
    for (size_t i = 0; pc && i < sizeof products / sizeof products[0]; i++) {
        /* Rounded to 1/10000 cent so that the value written (10 significant digits) reads
         * back as the very same double: get-call's text and the stored object agree. */
        double cost = round(products[i].unit_price * secs * 1e4) / 1e4;
        json_array_append_new(pc, json_pack("{s:s,s:f,s:f}", "product", products[i].product,
                                            "unit_price", products[i].unit_price, "cost", cost));
        total += cost;
        unit += products[i].unit_price;
    }
    total = round(total * 1e4) / 1e4;
    unit = round(unit * 1e7) / 1e7;
    derive(call, ov, "call_cost",
           pc ? json_pack("{s:o,s:I,s:f,s:f}", "product_costs", pc, "total_duration_seconds",
                          (json_int_t)secs, "total_duration_unit_price", unit, "combined_cost",
                          total)
              : NULL);
    size_t turns = json_array_size(json_object_get(call, "transcript_object"));
    int n = turns > 1 ? (int)(turns / 2) : 1;
    derive(call, ov, "latency",
           json_pack("{s:o,s:o,s:o}", "e2e", latency_of(900, 1300, n), "llm",
                     latency_of(500, 800, n), "tts", latency_of(250, 400, n)));
    derive(
        call, ov, "llm_token_usage",
        json_pack("{s:[i,i],s:f,s:i}", "values", 1800, 2100, "average", 1950.0, "num_requests", 2));
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
        return; /* a caller that removed them (null) wants them that way */
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
    /* Times are milliseconds since 1970 that a JavaScript client can hold exactly (Retell's
     * SDKs are JavaScript and Python): beyond 2^53 - 1 they are no time a call has, and
     * fix_times' sums would overflow int64. */
    static const char *const times[] = {"start_timestamp", "end_timestamp", "duration_ms"};
    for (size_t i = 0; overrides && i < sizeof times / sizeof times[0]; i++) {
        /* null removes the field (a merge patch); anything else must be such a time. */
        const json_t *t = json_object_get(overrides, times[i]);
        if (t && !json_is_null(t) && !json_is_integer(t)) {
            cm_errf(err, "%s must be an integer between 0 and %lld (or null to leave it out)",
                    times[i], (long long)SIM_RETELL_MAX_TIME_MS);
            return CM_EINVAL;
        }
        if (json_is_integer(t) &&
            (json_integer_value(t) < 0 || json_integer_value(t) > SIM_RETELL_MAX_TIME_MS)) {
            cm_errf(err, "%s must be between 0 and %lld", times[i],
                    (long long)SIM_RETELL_MAX_TIME_MS);
            return CM_EINVAL;
        }
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
    if (!rc && !json_object_set_new(call, "call_id", json_string(id)))
        derive_ended(call, overrides);
    if (!rc && (json_object_set_new(call, "call_id", json_string(id)) ||
                json_object_set(r->calls, id, call) ||
                json_object_set_new(r->call_text, id,
                                    json_stringn_nocheck("", 0)))) /* filled just below */
        rc = CM_ENOMEM;
    if (!rc) {
        /* GET /v2/get-call answers this text: no copy, no encoding per request. */
        char *text = json_dumps(call, JSON_COMPACT | JSON_REAL_PRECISION(10));
        if (!text || json_object_set_new(r->call_text, id, json_string_nocheck(text)))
            rc = CM_ENOMEM;
        free(text);
        if (rc) {
            json_object_del(r->calls, id);
            json_object_del(r->call_text, id);
        }
    }
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
    const char *event; /* one of the static event names */
    char *body;
    size_t len;
    /* The signature of the first attempt sent (the report's, and what a replay without
     * resign sends again); under r->mu, since a replay may read it while this job runs. */
    char sig[CM_SIG_HDR_LEN];
    int have_sig;
} ev_t;

struct job;

typedef struct {
    struct job *job;
    unsigned ev, copy;
    cm_http_client_t *client; /* each concurrent copy has its own; sequential ones share */
    gate_t *gate;             /* NULL when sequential */
    const char *presig;       /* concurrent copies: the first attempt's shared signature */
    sim_attempt_t attempts[1 + SIM_RETELL_MAX_RETRIES];
    unsigned nattempts;
} delivery_t;

/* One trigger: its events, their bytes, and (when done) its report. Kept in r->jobs for
 * GET /control/retell/deliveries/{id} and replays, at most HISTORY finished ones. */
typedef struct job {
    sim_retell_t *r;
    char id[32];
    char replay_of[32];
    char *call_id;
    char *url;           /* the webhook URL when triggered (each attempt reads the current one) */
    uint64_t generation; /* r->generation when triggered */
    ev_t evs[SIM_RETELL_MAX_EVENTS];
    unsigned nev;
    unsigned copies;
    int concurrent, forge, resign;
    int64_t ts_offset_ms, delay_ms, timeout_ms, interval_ms;
    unsigned retries;
    delivery_t *ds; /* nev * copies, event-major */
    json_t *report; /* set when done */
    int done, has_thread;
    int reaping; /* being joined: not pruned, not joined twice */
    pthread_t thread;
    struct job *next;
} job_t;

#define HISTORY 256

static void job_free(job_t *j)
{
    if (!j)
        return;
    for (unsigned i = 0; i < j->nev; i++)
        free(j->evs[i].body);
    for (size_t i = 0; j->ds && i < (size_t)j->nev * j->copies; i++)
        for (unsigned k = 0; k < 1 + SIM_RETELL_MAX_RETRIES; k++)
            free(j->ds[i].attempts[k].url);
    free(j->ds);
    free(j->call_id);
    free(j->url);
    json_decref(j->report);
    free(j);
}

/* Waits ms unless the simulator stops. 1 when it stops. The wait is the retry interval
 * (behaviour), not a wait for something to happen. */
static int pause_ms(sim_retell_t *r, int64_t ms)
{
    struct timespec ts = cm_clock_mono_deadline(ms);
    pthread_mutex_lock(&r->mu);
    while (!r->stopping && pthread_cond_timedwait(&r->cv, &r->mu, &ts) != ETIMEDOUT)
        ;
    int stopped = r->stopping;
    pthread_mutex_unlock(&r->mu);
    return stopped;
}

/* Signs body for job j as of now (plus the job's offset): Retell signs each attempt when
 * it sends it, so a delayed first attempt or a late retry is never stale on arrival. */
static cm_err_t sign_now(const job_t *j, const ev_t *e, char out[CM_SIG_HDR_LEN])
{
    return cm_sig_retell_sign(j->forge ? FORGED_KEY : j->r->api_key, e->body, e->len,
                              cm_clock_now_ms() + j->ts_offset_ms, out);
}

/* The URL attempt n goes to, as Retell reads the agent's webhook URL when it sends: a
 * copy of the one configured now. NULL with a->err set when it must not be sent: the
 * simulator was reset since the trigger (its webhook URL and calls belong to the
 * scenario before), or out of memory. *stop is set when no later attempt may go. */
static char *attempt_url(job_t *j, sim_attempt_t *a, int *stop)
{
    sim_retell_t *r = j->r;
    char *url = NULL;
    pthread_mutex_lock(&r->mu);
    int reset = r->generation != j->generation || !r->webhook_url;
    if (!reset)
        url = strdup(r->webhook_url);
    pthread_mutex_unlock(&r->mu);
    if (reset) {
        snprintf(a->err, sizeof a->err, "not sent: the simulator was reset since the trigger");
        *stop = 1;
    } else if (!url) {
        snprintf(a->err, sizeof a->err, "not sent: out of memory");
    }
    return url;
}

static void deliver(delivery_t *d)
{
    job_t *j = d->job;
    sim_retell_t *r = j->r;
    ev_t *e = &j->evs[d->ev];
    int stop = 0;
    for (unsigned n = 0; n <= j->retries && !stop; n++) {
        sim_attempt_t *a = &d->attempts[n];
        if (n > 0 && pause_ms(r, j->interval_ms))
            break;
        d->nattempts = n + 1;
        a->url = attempt_url(j, a, &stop);
        if (!a->url)
            continue;
        cm_err_t rc = CM_OK;
        if (!j->resign) {
            /* A replay: the old bytes with the old signature. */
            pthread_mutex_lock(&r->mu);
            memcpy(a->sig, e->sig, sizeof a->sig);
            pthread_mutex_unlock(&r->mu);
        } else if (n == 0 && d->presig) {
            memcpy(a->sig, d->presig, sizeof a->sig);
        } else {
            rc = sign_now(j, e, a->sig);
        }
        if (rc) {
            snprintf(a->err, sizeof a->err, "not sent: signing failed: %s", cm_strerror(rc));
            continue;
        }
        pthread_mutex_lock(&r->mu);
        if (!e->have_sig) {
            memcpy(e->sig, a->sig, sizeof e->sig);
            e->have_sig = 1;
        }
        pthread_mutex_unlock(&r->mu);
        const char *headers[] = {"Content-Type: application/json", NULL};
        sim_delivery_send(d->client,
                          &(sim_delivery_req_t){.provider = "retell",
                                                .sig_header = "x-retell-signature",
                                                .headers = headers,
                                                .body = e->body,
                                                .len = e->len,
                                                .timeout_ms = j->timeout_ms,
                                                .abort = &r->stopping,
                                                .journal = r->journal,
                                                .delivery_id = j->id,
                                                .event = e->event,
                                                .attempt = (int)n + 1},
                          a);
        if (a->status >= 200 && a->status < 300)
            break;
        if (__atomic_load_n(&r->stopping, __ATOMIC_ACQUIRE))
            break;
    }
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
 * when all of them are there, so the copies leave together and really race. Their
 * first attempts carry one signature, made as the gate opens: they are sent at the
 * same moment, and byte-identical duplicates are what the gateway must absorb. */
static void deliver_concurrently(delivery_t *ds, unsigned n)
{
    gate_t g = {.waiting = 0, .open = 0};
    job_t *j = ds[0].job;
    char presig[CM_SIG_HDR_LEN];
    pthread_t *tids = calloc(n, sizeof *tids);
    int *started = calloc(n, sizeof *started);
    unsigned nstarted = 0;
    pthread_mutex_init(&g.mu, NULL);
    pthread_cond_init(&g.cv, NULL);
    for (unsigned i = 0; tids && started && i < n; i++) {
        ds[i].gate = &g;
        if (pthread_create(&tids[i], NULL, deliver_thread, &ds[i]) == 0) {
            started[i] = 1;
            nstarted++;
        } else {
            snprintf(ds[i].attempts[0].err, sizeof ds[i].attempts[0].err,
                     "could not start a delivery thread");
            ds[i].nattempts = 1;
        }
    }
    pthread_mutex_lock(&g.mu);
    while (g.waiting < nstarted)
        pthread_cond_wait(&g.cv, &g.mu);
    /* Published to the copies by the gate's mutex; one that fails signs on its own. */
    if (j->resign && sign_now(j, &j->evs[ds[0].ev], presig) == CM_OK)
        for (unsigned i = 0; i < n; i++)
            ds[i].presig = presig;
    g.open = 1;
    pthread_cond_broadcast(&g.cv);
    pthread_mutex_unlock(&g.mu);
    for (unsigned i = 0; tids && started && i < n; i++)
        if (started[i])
            pthread_join(tids[i], NULL);
    pthread_cond_destroy(&g.cv);
    pthread_mutex_destroy(&g.mu);
    free(tids);
    free(started);
}

static const char *known_event(const char *ev)
{
    static const char *const names[] = {"call_started", "call_ended", "call_analyzed"};
    for (size_t i = 0; i < 3; i++)
        if (strcmp(ev, names[i]) == 0)
            return names[i];
    return NULL;
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
        /* "Available after call ends" (the SDK's field docs). */
        static const char *const after_end[] = {"transcript_object",
                                                "transcript_with_tool_calls",
                                                "recording_url",
                                                "recording_multi_channel_url",
                                                "public_log_url",
                                                "call_cost",
                                                "latency",
                                                "llm_token_usage",
                                                "collected_dynamic_variables"};
        for (size_t i = 0; i < sizeof after_end / sizeof after_end[0]; i++)
            json_object_del(call, after_end[i]);
    }
    return json_pack("{s:s,s:o}", "event", event, "call", call);
}

/* A call that never connected (dial_failed, dial_no_answer, dial_busy) has no
 * call_started, as on Retell. */
static int undialled(const json_t *call)
{
    const char *why = cm_json_str(call, "disconnection_reason", "");
    return strncmp(why, "dial_", 5) == 0 ||
           strcmp(cm_json_str(call, "call_status", ""), "not_connected") == 0;
}

static json_t *make_report(const job_t *j)
{
    json_t *list = json_array(), *events = json_array();
    for (unsigned i = 0; list && events && i < j->nev * j->copies; i++) {
        const delivery_t *d = &j->ds[i];
        json_t *att = json_array();
        for (unsigned k = 0; att && k < d->nattempts; k++)
            json_array_append_new(att, sim_delivery_attempt_json(&d->attempts[k]));
        json_t *item = sim_delivery_item(att);
        if (item && json_object_set_new(item, "event", json_string(j->evs[d->ev].event))) {
            json_decref(item);
            item = NULL;
        }
        if (!item || json_array_append_new(list, item)) {
            json_decref(list);
            json_decref(events);
            return NULL;
        }
    }
    for (unsigned i = 0; events && i < j->nev; i++)
        json_array_append_new(events, json_string(j->evs[i].event));
    if (!list || !events) {
        json_decref(list);
        json_decref(events);
        return NULL;
    }
    /* Read after every copy has ended: no lock needed for the signature. */
    json_t *v = json_pack("{s:s,s:s,s:s,s:s,s:s,s:o,s:o,s:o}", "delivery_id", j->id, "status",
                          j->done ? "done" : "pending", "event", j->evs[0].event, "call_id",
                          j->call_id, "url", j->url, "signature",
                          j->evs[0].have_sig ? json_string(j->evs[0].sig) : json_null(), "events",
                          events, "deliveries", list);
    if (v && j->replay_of[0])
        json_object_set_new(v, "replay_of", json_string(j->replay_of));
    return v;
}

static void job_run(job_t *j)
{
    sim_retell_t *r = j->r;
    if (j->delay_ms > 0)
        (void)pause_ms(r, j->delay_ms);
    CM_INFO(COMP, "delivery %s: %u event%s of %s (triggered for %s), %u cop%s%s%s, %u retr%s",
            j->id, j->nev, j->nev == 1 ? "" : "s", j->call_id, j->url, j->copies,
            j->copies == 1 ? "y" : "ies", j->concurrent ? ", concurrent" : "",
            j->forge ? ", forged" : "", j->retries, j->retries == 1 ? "y" : "ies");
    /* Events go out in order, each one's copies before the next: "in order, but not
     * blocking" - a failed event does not hold the next one back. */
    for (unsigned e = 0; e < j->nev; e++) {
        delivery_t *ds = &j->ds[e * j->copies];
        if (j->concurrent && j->copies > 1)
            deliver_concurrently(ds, j->copies);
        else
            for (unsigned i = 0; i < j->copies; i++)
                deliver(&ds[i]);
    }
    json_t *report = make_report(j);
    pthread_mutex_lock(&r->mu);
    j->done = 1;
    if (report)
        json_object_set_new(report, "status", json_string("done"));
    j->report = report;
    pthread_mutex_unlock(&r->mu);
}

static void *job_thread(void *arg)
{
    job_run(arg);
    return NULL;
}

/* Links j into the history, dropping the oldest finished jobs beyond HISTORY. Under mu. */
static void job_keep(sim_retell_t *r, job_t *j)
{
    j->next = r->jobs;
    r->jobs = j;
    size_t n = 0;
    for (job_t **pp = &r->jobs; *pp;) {
        job_t *x = *pp;
        if (++n > HISTORY && x->done && !x->has_thread) {
            *pp = x->next;
            job_free(x);
            continue;
        }
        pp = &x->next;
    }
}

/* Creates the clients, then runs the job inline or from its own thread. */
static cm_err_t job_start(sim_retell_t *r, job_t *j, int async, json_t **report)
{
    cm_err_t rc = CM_OK;
    size_t n = (size_t)j->nev * j->copies;
    j->ds = calloc(n, sizeof *j->ds);
    if (!j->ds)
        return CM_ENOMEM;
    cm_http_client_t *shared = NULL;
    for (size_t i = 0; i < n && !rc; i++) {
        j->ds[i] = (delivery_t){
            .job = j, .ev = (unsigned)(i / j->copies), .copy = (unsigned)(i % j->copies)};
        if (j->concurrent || i == 0) {
            j->ds[i].client = cm_http_client_new();
            if (!j->ds[i].client)
                rc = CM_ENOMEM;
            if (i == 0)
                shared = j->ds[0].client;
        } else {
            j->ds[i].client = shared;
        }
    }
    if (!rc) {
        pthread_mutex_lock(&r->mu);
        snprintf(j->id, sizeof j->id, "dlv_%06lld", (long long)r->next_delivery++);
        job_keep(r, j);
        if (async) {
            j->has_thread = pthread_create(&j->thread, NULL, job_thread, j) == 0;
            if (!j->has_thread)
                rc = CM_ENOMEM;
        }
        pthread_mutex_unlock(&r->mu);
        if (!async) {
            job_run(j);
            pthread_mutex_lock(&r->mu);
            *report = j->report ? json_deep_copy(j->report) : NULL;
            pthread_mutex_unlock(&r->mu);
            if (!*report)
                rc = CM_ENOMEM;
        } else if (!rc) {
            *report = json_pack("{s:s,s:s,s:s}", "delivery_id", j->id, "status", "pending",
                                "call_id", j->call_id);
        }
    }
    if (!async || rc) {
        /* Clients are not kept by finished sync jobs; async ones free theirs below. */
        for (size_t i = 0; i < n; i++)
            if ((j->concurrent || i == 0) && (!async || rc))
                cm_http_client_free(&j->ds[i].client);
    }
    return rc;
}

cm_err_t sim_retell_send_webhook(sim_retell_t *r, const char *call_id, const sim_retell_send_t *opt,
                                 json_t **report, char *err)
{
    cm_err_t rc = CM_OK;
    const char *names[SIM_RETELL_MAX_EVENTS];
    unsigned nnames = 0;
    *report = NULL;

    if (opt->events) {
        for (; opt->events[nnames]; nnames++) {
            if (nnames >= SIM_RETELL_MAX_EVENTS) {
                cm_errf(err, "events: at most %d", SIM_RETELL_MAX_EVENTS);
                return CM_EINVAL;
            }
            if (!(names[nnames] = known_event(opt->events[nnames])) &&
                strcmp(opt->events[nnames], "lifecycle") != 0) {
                cm_errf(err, "events[%u] must be call_started, call_ended or call_analyzed",
                        nnames);
                return CM_EINVAL;
            }
        }
        if (!nnames) {
            cm_errf(err, "events must not be empty");
            return CM_EINVAL;
        }
    } else if (opt->event && strcmp(opt->event, "lifecycle") == 0) {
        nnames = 0; /* filled below from the call */
    } else if (!opt->event || !(names[0] = known_event(opt->event))) {
        cm_errf(err, "event must be call_started, call_ended, call_analyzed or lifecycle");
        return CM_EINVAL;
    } else {
        nnames = 1;
    }
    if (opt->copies < 1 || opt->copies > SIM_RETELL_MAX_COPIES) {
        cm_errf(err, "copies must be between 1 and %d", SIM_RETELL_MAX_COPIES);
        return CM_EINVAL;
    }
    if (opt->retries > SIM_RETELL_MAX_RETRIES) {
        cm_errf(err, "retries must be between 0 and %d", SIM_RETELL_MAX_RETRIES);
        return CM_EINVAL;
    }
    /* Bounded first: now plus any int64_t could overflow. */
    if (opt->timestamp_offset_ms < -SIM_RETELL_MAX_OFFSET_MS ||
        opt->timestamp_offset_ms > SIM_RETELL_MAX_OFFSET_MS) {
        cm_errf(err, "timestamp_offset must be within 3650 days either way");
        return CM_EINVAL;
    }
    if (cm_clock_now_ms() + opt->timestamp_offset_ms < 0) {
        cm_errf(err, "timestamp_offset puts the signed time before 1970");
        return CM_EINVAL;
    }

    job_t *j = calloc(1, sizeof *j);
    if (!j)
        return CM_ENOMEM;
    j->r = r;
    j->copies = opt->copies;
    j->concurrent = opt->concurrent;
    j->forge = opt->forge;
    j->resign = 1;
    j->ts_offset_ms = opt->timestamp_offset_ms;
    j->delay_ms = opt->delay_ms;
    j->retries = opt->retries;
    j->interval_ms = opt->retry_interval_ms;

    /* Copy what is needed and let go of the lock: the receiver may call GET
     * /v2/get-call while the delivery is in flight. */
    pthread_mutex_lock(&r->mu);
    j->timeout_ms = opt->timeout_ms > 0 ? opt->timeout_ms : r->timeout_ms;
    json_t *stored = json_object_get(r->calls, call_id);
    json_t *call = stored ? json_deep_copy(stored) : NULL;
    int have_url = r->webhook_url != NULL;
    if (have_url)
        j->url = strdup(r->webhook_url);
    j->generation = r->generation;
    pthread_mutex_unlock(&r->mu);
    j->call_id = strdup(call_id);
    if (!stored) {
        cm_errf(err, "no call with call_id '%s'", call_id);
        rc = CM_ENOTFOUND;
    } else if (!have_url) {
        cm_errf(err, "no webhook URL set (PUT /control/retell/webhook first)");
        rc = CM_ESTATE;
    } else if (!call || !j->url || !j->call_id) {
        rc = CM_ENOMEM;
    }
    /* "lifecycle" (alone or in a list) is the three events Retell sends for the call. */
    const char *expanded[SIM_RETELL_MAX_EVENTS];
    unsigned nexp = 0;
    if (!rc) {
        if (!nnames) {
            names[0] = "lifecycle";
            nnames = 1;
        }
        for (unsigned i = 0; i < nnames && nexp < SIM_RETELL_MAX_EVENTS; i++) {
            const char *ev = opt->events ? opt->events[i] : names[i];
            if (strcmp(ev, "lifecycle") == 0) {
                if (!undialled(call))
                    expanded[nexp++] = "call_started";
                if (nexp < SIM_RETELL_MAX_EVENTS)
                    expanded[nexp++] = "call_ended";
                if (nexp < SIM_RETELL_MAX_EVENTS)
                    expanded[nexp++] = "call_analyzed";
            } else {
                expanded[nexp++] = known_event(ev);
            }
        }
        if (opt->order == SIM_RETELL_ORDER_REVERSE) {
            for (unsigned i = 0; i < nexp / 2; i++) {
                const char *t = expanded[i];
                expanded[i] = expanded[nexp - 1 - i];
                expanded[nexp - 1 - i] = t;
            }
        } else if (opt->order == SIM_RETELL_ORDER_SHUFFLE) {
            pthread_mutex_lock(&r->mu);
            for (unsigned i = nexp; i > 1; i--) { /* Fisher-Yates, seeded */
                unsigned k = (unsigned)cm_rand_below(&r->order_gen, i);
                const char *t = expanded[i - 1];
                expanded[i - 1] = expanded[k];
                expanded[k] = t;
            }
            pthread_mutex_unlock(&r->mu);
        }
    }
    /* One serialisation per event: copies and retries carry the same bytes, as a
     * provider's duplicates do. Signing waits for each attempt (deliver). */
    for (unsigned i = 0; !rc && i < nexp; i++) {
        ev_t *e = &j->evs[j->nev++];
        e->event = expanded[i];
        json_t *env = make_envelope(e->event, json_deep_copy(call));
        /* Ten significant digits, as Retell writes its cents and seconds. */
        e->body = env ? json_dumps(env, JSON_COMPACT | JSON_REAL_PRECISION(10)) : NULL;
        json_decref(env);
        if (!e->body) {
            rc = CM_ENOMEM;
            break;
        }
        e->len = strlen(e->body);
    }
    if (!rc) {
        /* A trial signature refuses now a timestamp the attempts could not sign. */
        char trial[CM_SIG_HDR_LEN];
        rc = sign_now(j, &j->evs[0], trial);
        if (rc)
            cm_errf(err, "signing failed: %s", cm_strerror(rc));
    }
    json_decref(call);
    if (!rc)
        rc = job_start(r, j, opt->async, report);
    else
        job_free(j);
    return rc;
}

cm_err_t sim_retell_replay(sim_retell_t *r, const char *delivery_id, int resign, json_t **report,
                           char *err)
{
    job_t *j = calloc(1, sizeof *j);
    cm_err_t rc = j ? CM_OK : CM_ENOMEM;
    *report = NULL;
    pthread_mutex_lock(&r->mu);
    job_t *old = r->jobs;
    while (old && strcmp(old->id, delivery_id) != 0)
        old = old->next;
    if (!rc && !old) {
        cm_errf(err, "no delivery '%s' (only the last %d are kept)", delivery_id, HISTORY);
        rc = CM_ENOTFOUND;
    }
    if (!rc) {
        j->r = r;
        j->copies = 1;
        j->resign = resign;
        j->timeout_ms = old->timeout_ms;
        j->forge = old->forge;
        j->ts_offset_ms = old->ts_offset_ms;
        snprintf(j->replay_of, sizeof j->replay_of, "%s", old->id);
        j->generation = r->generation;
        j->url = r->webhook_url ? strdup(r->webhook_url) : NULL;
        j->call_id = strdup(old->call_id);
        if (!r->webhook_url) {
            cm_errf(err, "no webhook URL set (PUT /control/retell/webhook first)");
            rc = CM_ESTATE;
        }
        for (unsigned i = 0; !rc && i < old->nev; i++) {
            ev_t *e = &j->evs[j->nev++];
            *e = old->evs[i];
            e->body = strdup(old->evs[i].body);
            if (resign) { /* its own first signature, made when sent */
                e->sig[0] = '\0';
                e->have_sig = 0;
            }
            if (!e->body) {
                rc = CM_ENOMEM;
            } else if (!resign && !e->have_sig) {
                cm_errf(err, "delivery %s never sent %s: there is no signature to replay", old->id,
                        e->event);
                rc = CM_ESTATE;
            }
        }
        if (!rc && (!j->url || !j->call_id))
            rc = CM_ENOMEM;
    }
    pthread_mutex_unlock(&r->mu);
    if (!rc)
        return job_start(r, j, 0, report);
    job_free(j);
    return rc;
}

json_t *sim_retell_delivery(sim_retell_t *r, const char *delivery_id)
{
    json_t *v = NULL;
    pthread_mutex_lock(&r->mu);
    for (job_t *j = r->jobs; j; j = j->next) {
        if (strcmp(j->id, delivery_id) == 0) {
            v = j->done && j->report ? json_deep_copy(j->report)
                                     : json_pack("{s:s,s:s,s:s}", "delivery_id", j->id, "status",
                                                 "pending", "call_id", j->call_id);
            break;
        }
    }
    pthread_mutex_unlock(&r->mu);
    return v;
}

void sim_retell_shutdown(sim_retell_t *r)
{
    pthread_mutex_lock(&r->mu);
    __atomic_store_n(&r->stopping, 1, __ATOMIC_RELEASE);
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
}

/* Joins finished async jobs' threads and frees their clients. */
static void jobs_join(sim_retell_t *r, int all)
{
    for (;;) {
        job_t *t = NULL;
        pthread_mutex_lock(&r->mu);
        for (job_t *j = r->jobs; j && !t; j = j->next)
            if (j->has_thread && !j->reaping && (all || j->done))
                t = j;
        if (t)
            t->reaping = 1; /* has_thread stays set, so job_keep cannot free it meanwhile */
        pthread_mutex_unlock(&r->mu);
        if (!t)
            return;
        pthread_join(t->thread, NULL);
        for (size_t i = 0; i < (size_t)t->nev * t->copies; i++)
            if (t->concurrent || i == 0)
                cm_http_client_free(&t->ds[i].client);
        pthread_mutex_lock(&r->mu);
        t->has_thread = 0;
        pthread_mutex_unlock(&r->mu);
    }
}

static void jobs_free_all(sim_retell_t *r)
{
    while (r->jobs) {
        job_t *n = r->jobs->next;
        job_free(r->jobs);
        r->jobs = n;
    }
}

void sim_retell_delivery_defaults(sim_retell_t *r, sim_retell_send_t *opt)
{
    pthread_mutex_lock(&r->mu);
    opt->retries = r->retries;
    opt->retry_interval_ms = r->retry_interval_ms;
    opt->timeout_ms = r->timeout_ms;
    pthread_mutex_unlock(&r->mu);
    jobs_join(r, 0); /* a convenient moment to reap finished async deliveries */
}

cm_err_t sim_retell_set_delivery_defaults(sim_retell_t *r, unsigned retries, int64_t interval_ms,
                                          int64_t timeout_ms, char *err)
{
    if (retries > SIM_RETELL_MAX_RETRIES || interval_ms < 0 || interval_ms > 3600000 ||
        timeout_ms < 1 || timeout_ms > SIM_TIMEOUT_MAX_MS) {
        cm_errf(err,
                "retries must be 0..%d, retry_interval from 0ms to 1h, timeout from 1ms to %ds",
                SIM_RETELL_MAX_RETRIES, SIM_TIMEOUT_MAX_MS / 1000);
        return CM_EINVAL;
    }
    pthread_mutex_lock(&r->mu);
    r->retries = retries;
    r->retry_interval_ms = interval_ms;
    r->timeout_ms = timeout_ms;
    pthread_mutex_unlock(&r->mu);
    return CM_OK;
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
    pthread_mutex_lock(&r->mu);
    json_t *t = json_object_get(r->call_text, cm_http_req_param(req, "call_id"));
    if (t)
        cm_http_resp_text(resp, 200, "application/json", json_string_value(t));
    pthread_mutex_unlock(&r->mu);
    if (!t)
        answer_error(resp, 404, "Call not found");
}

/* ---- POST /v2/create-phone-call ------------------------------------------------- */

static int e164(const json_t *v)
{
    const char *s = json_string_value(v);
    return s && s[0] == '+' && strlen(s) >= 8 && strlen(s) <= 16 &&
           strspn(s + 1, "0123456789") == strlen(s + 1);
}

static void h_create_phone_call(const cm_http_req_t *req, cm_http_resp_t *resp, void *ud)
{
    sim_retell_t *r = ud;
    char err[CM_ERR_LEN] = "";
    json_t *body = NULL, *call = NULL;
    if (!sim_http_bearer_ok(req, r->api_key)) {
        answer_error(resp, 401, "Unauthorized: invalid or missing API key");
        return;
    }
    if (sim_http_json_object(req, 0, &body, err) != CM_OK) {
        answer_error(resp, 400, err);
        return;
    }
    const json_t *from = json_object_get(body, "from_number");
    const json_t *to = json_object_get(body, "to_number");
    const json_t *agent = json_object_get(body, "override_agent_id");
    const json_t *meta = json_object_get(body, "metadata");
    const json_t *dyn = json_object_get(body, "retell_llm_dynamic_variables");
    const char *bad = !e164(from)                       ? "from_number must be an E.164 number"
                      : !e164(to)                       ? "to_number must be an E.164 number"
                      : agent && !json_is_string(agent) ? "override_agent_id must be a string"
                      : meta && !json_is_object(meta)   ? "metadata must be an object"
                      : dyn && !json_is_object(dyn)
                          ? "retell_llm_dynamic_variables must be an object"
                          : NULL;
    if (bad) {
        json_decref(body);
        answer_error(resp, 400, bad);
        return;
    }
    /* A registered outbound call: nothing about its course or end is known yet. */
    json_t *ov = json_pack("{s:s,s:s,s:O,s:O,s:n,s:n,s:n,s:n,s:n,s:n}", "call_status", "registered",
                           "direction", "outbound", "from_number", from, "to_number", to,
                           "start_timestamp", "end_timestamp", "duration_ms", "transcript",
                           "disconnection_reason", "call_analysis");
    if (ov && agent)
        json_object_set(ov, "agent_id", (json_t *)agent);
    if (ov && meta)
        json_object_set(ov, "metadata", (json_t *)meta);
    if (ov && dyn)
        json_object_set(ov, "retell_llm_dynamic_variables", (json_t *)dyn);
    cm_err_t rc = ov ? sim_retell_create_call(r, ov, &call, err) : CM_ENOMEM;
    json_decref(ov);
    json_decref(body);
    if (rc)
        answer_error(resp, 500, "could not create the call");
    else
        cm_http_resp_json(resp, 201, call);
}

/* ---- POST /v3/list-calls --------------------------------------------------------- */

/* filter_criteria: each given key is a list of accepted values for that call field. */
static int call_passes(const json_t *call, const json_t *criteria)
{
    static const char *const keys[] = {"agent_id",  "call_status",          "direction",
                                       "call_type", "disconnection_reason", "from_number",
                                       "to_number"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        const json_t *allowed = json_object_get(criteria, keys[i]);
        if (!json_is_array(allowed))
            continue;
        const json_t *have = json_object_get(call, keys[i]);
        int ok = 0;
        size_t k;
        json_t *v;
        json_array_foreach(allowed, k, v) ok |= json_equal((json_t *)have, v);
        if (!ok)
            return 0;
    }
    /* start_timestamp: {"lower_threshold": ms, "upper_threshold": ms}, both inclusive, as
     * the real API's range filters are written; a call not started yet has none and is
     * left out by any bound. */
    const json_t *range = json_object_get(criteria, "start_timestamp");
    if (json_is_object(range)) {
        const json_t *lo = json_object_get(range, "lower_threshold");
        const json_t *hi = json_object_get(range, "upper_threshold");
        const json_t *st = json_object_get(call, "start_timestamp");
        json_int_t t = json_is_integer(st) ? json_integer_value(st) : 0;
        if ((json_is_integer(lo) || json_is_integer(hi)) && !json_is_integer(st))
            return 0;
        if (json_is_integer(lo) && t < json_integer_value(lo))
            return 0;
        if (json_is_integer(hi) && t > json_integer_value(hi))
            return 0;
    }
    return 1;
}

static void h_list_calls(const cm_http_req_t *req, cm_http_resp_t *resp, void *ud)
{
    sim_retell_t *r = ud;
    char err[CM_ERR_LEN] = "";
    json_t *body = NULL;
    if (!sim_http_bearer_ok(req, r->api_key)) {
        answer_error(resp, 401, "Unauthorized: invalid or missing API key");
        return;
    }
    if (sim_http_json_object(req, 1, &body, err) != CM_OK) {
        answer_error(resp, 400, err);
        return;
    }
    const json_t *crit = json_object_get(body, "filter_criteria");
    const json_t *lim = json_object_get(body, "limit");
    const json_t *key = json_object_get(body, "pagination_key");
    const char *order = cm_json_str(body, "sort_order", "descending");
    const char *bad = crit && !json_is_object(crit) ? "filter_criteria must be an object"
                      : lim && (!json_is_integer(lim) || json_integer_value(lim) < 1 ||
                                json_integer_value(lim) > 1000)
                          ? "limit must be an integer from 1 to 1000"
                      : key && !json_is_string(key) ? "pagination_key must be a string"
                      : strcmp(order, "ascending") && strcmp(order, "descending")
                          ? "sort_order must be ascending or descending"
                          : NULL;
    if (bad) {
        json_decref(body);
        answer_error(resp, 400, bad);
        return;
    }
    size_t limit = lim ? (size_t)json_integer_value(lim) : 50;
    int desc = strcmp(order, "descending") == 0;
    json_t *all = json_array(), *items = json_array();
    /* Calls are kept in creation order; descending is newest first. */
    pthread_mutex_lock(&r->mu);
    const char *id;
    json_t *c;
    json_object_foreach(r->calls, id, c)
    {
        if (call_passes(c, crit))
            json_array_append_new(all, json_deep_copy(c));
    }
    pthread_mutex_unlock(&r->mu);
    size_t n = json_array_size(all), start = 0;
    if (key) {
        /* The key is the last call_id of the previous page; an unknown one starts over. */
        for (size_t i = 0; i < n; i++) {
            size_t idx = desc ? n - 1 - i : i;
            if (strcmp(cm_json_str(json_array_get(all, idx), "call_id", ""),
                       json_string_value(key)) == 0) {
                start = i + 1;
                break;
            }
        }
    }
    for (size_t i = start; i < n && json_array_size(items) < limit; i++)
        json_array_append(items, json_array_get(all, desc ? n - 1 - i : i));
    int has_more = start + json_array_size(items) < n;
    const char *last =
        json_array_size(items)
            ? cm_json_str(json_array_get(items, json_array_size(items) - 1), "call_id", NULL)
            : NULL;
    json_t *v = json_pack("{s:o,s:b,s:o}", "items", items, "has_more", has_more, "pagination_key",
                          has_more && last ? json_string(last) : json_null());
    json_decref(all);
    json_decref(body);
    cm_http_resp_json(resp, 200, v);
}

cm_err_t sim_retell_routes(sim_retell_t *r, cm_http_server_t *srv)
{
    cm_err_t rc = cm_http_server_route(srv, "GET /v2/get-call/{call_id}", h_get_call, r);
    if (!rc)
        rc = cm_http_server_route(srv, "POST /v2/create-phone-call", h_create_phone_call, r);
    if (!rc)
        rc = cm_http_server_route(srv, "POST /v3/list-calls", h_list_calls, r);
    return rc;
}
